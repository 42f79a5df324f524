"""The one error type of prism_match and its grammar.

Every problem with a registry, slot, query or policy is reported as a
``(location, message)`` pair: the location names the document (file, and
``#index`` for multi-document YAML) and the JSON path of the field
(``$.capacity.max_write_rps``); the message says what was expected and what
was found, names in backticks (``Expected `int` >= 0, got `-3` ``). Problems
are collected and raised together, so loading reports all it can at once.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from .redact import printable

__all__ = ["RegistryError", "positive_int"]


class RegistryError(ValueError):
    """Invalid registry, slot, query or policy.

    ``.errors`` lists every problem found as ``(location, message)`` pairs;
    ``str(err)`` shows them all, one per line. Both parts often quote the
    input, so control characters in them are escaped here, once for every
    source: an error never carries a terminal escape sequence.
    """

    def __init__(self, errors: Iterable[tuple[str, str]] | str, location: str = "$"):
        if isinstance(errors, str):
            errors = [(location, errors)]
        self.errors: list[tuple[str, str]] = [(printable(loc), printable(msg)) for loc, msg in errors]
        super().__init__(self._text())

    def __reduce__(self):  # from a worker process: the same errors, not a re-wrapped text
        return (type(self), (self.errors,))

    def _text(self) -> str:
        if len(self.errors) == 1:
            loc, msg = self.errors[0]
            return f"{msg} - at {loc}"
        lines = [f"{len(self.errors)} problems:"]
        lines += [f"  {msg} - at {loc}" for loc, msg in self.errors]
        return "\n".join(lines)


def positive_int(value: object, name: str, where: str) -> int:
    """``value`` as an int >= 1, the one check of every count argument
    (``k``, ``threads``): Python and numpy integers are accepted, bools,
    floats and strings are not."""
    if not isinstance(value, bool):
        try:
            value = operator.index(value)
        except TypeError:
            pass
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RegistryError(f"Expected `{name}` >= 1, got `{printable(repr(value), 40)}`", where)
    return value
