"""The capability vocabulary of the Prism page: the core capabilities, what
each does, and which patterns need them.

A registration may name any capability (vocabularies grow), but a name
close to a core one (``pubish``) is most likely a typo that would make the
backend invisible to every slot requiring the real name: ``check_vocabulary``
warns with a did-you-mean (``CapabilityWarning``, a ``UserWarning``), never
refuses. The catalogue answers "which patterns need this capability?"
(``patterns_needing``) and "what does this pattern need?"
(``pattern_capabilities``); ``Registry.backends_for_pattern`` answers
"which backends can serve it?".

The table is the page's "Core Capabilities" (read/write, messaging,
advanced), described in our own words. A pattern listed with a qualifier
("KeyValue (performance)", "KeyValue (with TTL)") needs that capability
only for the variant: it is optional here.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

import msgspec
import numpy as np

from .errors import RegistryError
from .vocabulary import capability_names

__all__ = ["Capability", "CAPABILITIES", "PATTERNS", "CapabilityWarning", "suggest_capability",
           "patterns_needing", "pattern_capabilities", "check_vocabulary"]


class Capability(msgspec.Struct, frozen=True):
    """A core capability: its group on the page, what it does, the patterns
    that need it (``required``) and those that use it for a variant
    (``optional``: pattern → the variant)."""

    name: str
    group: str
    description: str
    required: tuple[str, ...]
    optional: dict[str, str] = {}


CAPABILITIES: dict[str, Capability] = {c.name: c for c in (
    Capability("get", "read/write", "read one record by its key", ("KeyValue", "Reader")),
    Capability("set", "read/write", "store one record under a key", ("KeyValue", "Writer")),
    Capability("delete", "read/write", "remove one record", ("KeyValue",)),
    Capability("scan", "read/write", "walk the records of a key range", ("Reader", "Query")),
    Capability("batch_get", "read/write", "read many records in one call", (), {"KeyValue": "performance"}),
    Capability("batch_set", "read/write", "store many records in one call", (), {"KeyValue": "performance"}),
    Capability("publish", "messaging", "send a message to a topic", ("PubSub", "Queue")),
    Capability("subscribe", "messaging", "receive the messages of a topic", ("PubSub", "Consumer")),
    Capability("enqueue", "messaging", "put a message on a queue", ("Queue",)),
    Capability("dequeue", "messaging", "take a message off a queue", ("Queue",)),
    Capability("ack", "messaging", "confirm that a message was handled", ("Queue", "Consumer")),
    Capability("nack", "messaging", "turn a message down", ("Queue", "Consumer")),
    Capability("transaction", "advanced", "run several operations as one", ("Transact",)),
    Capability("replay", "advanced", "read a stream again from its start", ("Event Sourcing", "Replay")),
    Capability("ttl", "advanced", "let records expire on their own", (), {"KeyValue": "with TTL"}),
    Capability("watch", "advanced", "be told when something changes", ("Registry", "Live Updates")),
    Capability("query", "advanced", "answer complex queries", ("Mailbox", "Search")),
    Capability("graph_traversal", "advanced", "follow the edges of a graph", ("Graph",)),
)}

# pattern → (required capabilities, optional capability → variant), in table order.
PATTERNS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}
for _cap in CAPABILITIES.values():
    for _pattern in _cap.required:
        PATTERNS.setdefault(_pattern, ((), {}))
        PATTERNS[_pattern] = (PATTERNS[_pattern][0] + (_cap.name,), PATTERNS[_pattern][1])
    for _pattern, _variant in _cap.optional.items():
        PATTERNS.setdefault(_pattern, ((), {}))[1][_cap.name] = _variant
del _cap, _pattern, _variant


class CapabilityWarning(UserWarning):
    """A registration names a capability close to a core one: ``name``, the
    ``suggestion``, and the first ``backend_id`` naming it."""

    def __init__(self, name: str, suggestion: str, backend_id: str | None):
        self.name, self.suggestion, self.backend_id = name, suggestion, backend_id
        where = f" (backend `{backend_id}`)" if backend_id is not None else ""
        super().__init__(f"Unknown capability `{name}`{where}; did you mean `{suggestion}`? "
                         "A slot requiring the core name will not match it")


def suggest_capability(name: str) -> str | None:
    """The core capability ``name`` most likely misspells, or None (an
    exact core name, or nothing close enough)."""
    if name in CAPABILITIES:
        return None
    close = difflib.get_close_matches(name, list(CAPABILITIES), n=1, cutoff=0.8)
    return close[0] if close else None


def _lookup_pattern(pattern: str) -> str:
    by_folded = {p.casefold().replace(" ", "").replace("_", "").replace("-", ""): p for p in PATTERNS}
    key = str(pattern).casefold().replace(" ", "").replace("_", "").replace("-", "")
    if key in by_folded:
        return by_folded[key]
    close = difflib.get_close_matches(str(pattern), list(PATTERNS), n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else f"; known: {', '.join(f'`{p}`' for p in PATTERNS)}"
    raise RegistryError(f"Unknown pattern `{str(pattern)[:60]}`{hint}", "catalogue pattern")


def patterns_needing(capability: str, *, optional: bool = True) -> list[str]:
    """The patterns that need ``capability`` (with ``optional``, also those
    that use it for a variant, as ``"KeyValue (performance)"``). A name that
    is not a core capability is a RegistryError (with a did-you-mean)."""
    found = CAPABILITIES.get(capability)
    if found is None:
        guess = suggest_capability(capability)
        hint = f"; did you mean `{guess}`?" if guess else ""
        raise RegistryError(f"`{str(capability)[:60]}` is not a core capability{hint}", "catalogue capability")
    return [*found.required, *(f"{p} ({v})" for p, v in found.optional.items() if optional)]


def pattern_capabilities(pattern: str, *, optional: bool = False) -> list[str]:
    """The capabilities ``pattern`` needs (case, spaces and dashes ignored
    in its name); ``optional`` adds those its variants use."""
    required, extra = PATTERNS[_lookup_pattern(pattern)]
    return [*required, *(extra if optional else ())]


def check_vocabulary(columns: Any, names: Any = None) -> list[CapabilityWarning]:
    """Warn (``warnings.warn``) once per capability name of the compiled
    ``columns`` (or only ``names``, e.g. what an add brought) that is close
    to a core capability but is not one, naming the first backend that
    declares it. Returns the warnings issued."""
    tokens = columns.features.index
    if names is None:
        names = capability_names(tokens)
    issued = []
    for name in dict.fromkeys(names):
        suggestion = suggest_capability(name)
        if suggestion is None:
            continue
        bit = tokens.get(f"c:{name}")
        backend = None
        if bit is not None:
            row = columns.feature_bits[bit] & columns.store["alive"][:columns.feature_bits.shape[1]]
            words = np.flatnonzero(row)
            if len(words):
                word = int(row[words[0]])
                backend = columns.backend_ids[int(words[0]) * 64 + (word & -word).bit_length() - 1]
        warning = CapabilityWarning(name, suggestion, backend)
        warnings.warn(warning, stacklevel=3)
        issued.append(warning)
    return issued
