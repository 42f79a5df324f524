"""msgspec's first error → every problem of one item, in the error grammar.

``validate_item`` (``validate_item``) converts one raw item into its Struct;
msgspec stops at the first error of a document, so the offending field is
set aside (copy on write, the input is never touched) and the item converted
again, up to ``MAX_ERRORS`` times, to report *all* problems with their JSON
paths. Each msgspec message is rewritten here in the project's grammar
(``Expected a finite number >= 0, got `-1` ``), with the valid choices of an
enumeration, a did-you-mean for an unknown field, and never the value of a
secret-named field, whatever the parser said. The JSON path helpers
(``format_path``, ``split_path``) live here too.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from .redact import is_secret_field, quoted
from .schema import ENUM_CHOICES, MAX_COUNT, MAX_FLOAT, decode_hook

__all__ = ["MAX_DEPTH", "MAX_ERRORS", "format_path"]

MAX_DEPTH = 64                 # nesting deeper than any real registration
MAX_ERRORS = 100               # per call: enough to fix a file, bounded work on garbage

T = TypeVar("T")


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def literal(value: Any) -> str:
    """A found value as the error grammar shows it: JSON-like scalars
    (strings quoted, so ``"100"`` is told from ``100``), type names otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 128:  # str() of a huge int is slow, and refused past 4,300 digits
            return f"{'-' if value < 0 else ''}~1e{int(value.bit_length() * 0.30103)}"
        return short(str(value), 40)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


_ANY_KEY = object()   # msgspec writes a dict value's key as `[...]`
_AT_RE = re.compile(r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`(?P<path>\$[^`]*)`)?$", re.S)
_PART_RE = re.compile(r"\.([^.\[\]`]+)|\[(\d+)\]|(\[\.\.\.\])")
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(?P<field>.*)`$", re.S)
_MISSING_RE = re.compile(r"^Object missing required field `(?P<field>.*)`$", re.S)
_GOT_TYPE_RE = re.compile(r", got `[A-Za-z_ |]+`$")
_FLOAT_TYPE_RE = re.compile(r"^Expected `(float|int)( \| null)?`, got")
_MISSING = object()

# Known-valid stand-ins for a required field that had to be set aside, so
# the rest of the document is still checked.
_PLACEHOLDERS: dict[str, Any] = {
    "backend_id": "-", "backend_type": "memstore", "name": "-", "slot_name": "-", "pattern": "-",
    "slots": {}, "started_at": _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc),
}


def split_path(path: str) -> list[Any] | None:
    parts: list[Any] = []
    pos = 1  # after "$"
    while pos < len(path):
        m = _PART_RE.match(path, pos)
        if m is None:
            return None
        key, index, any_key = m.groups()
        parts.append(_ANY_KEY if any_key else int(index) if index is not None else key)
        pos = m.end()
    return parts


def format_path(parts: Sequence[Any]) -> str:
    """``["capacity", "max_write_rps"]`` → ``$.capacity.max_write_rps``."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out.append(f".{part}")
        else:
            text = str(part).replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{short(text, 40)}"]')
    return "".join(out)


def _child(node: Any, part: Any) -> Any:
    if isinstance(part, int):
        return node[part] if isinstance(node, list) and 0 <= part < len(node) else _MISSING
    return node.get(part, _MISSING) if isinstance(node, dict) else _MISSING


def _resolve(node: Any, parts: list[Any], accept: Any) -> list[Any] | None:
    """``parts`` with each ``[...]`` replaced by the dict key it stands for:
    the first key (msgspec validates in order) whose value ``accept``s the
    rest of the path."""
    out: list[Any] = []
    for i, part in enumerate(parts):
        if part is _ANY_KEY:
            if not isinstance(node, dict):
                return None
            for key, value in node.items():
                rest = _resolve(value, parts[i + 1:], accept)
                if rest is not None:
                    return out + [key] + rest
            return None
        node = _child(node, part)
        if node is _MISSING:
            return None
        out.append(part)
    return out if accept(node) else None


def _edit(node: Any, parts: list[Any], change: Any) -> Any:
    """A copy of ``node`` with ``change`` applied at ``parts``: only the
    containers on the path are copied (shallow), the input is untouched."""
    if not parts:
        return change(node)
    head = parts[0]
    copy = list(node) if isinstance(node, list) else dict(node)
    copy[head] = _edit(node[head], parts[1:], change)
    return copy


class _Diagnosis:
    """The state of one item's diagnostic pass: the edited copy, and what was
    set aside (in the input's coordinates, so later paths are reported
    against the document the user wrote)."""

    def __init__(self, raw: Any, kind: type):
        self.doc = raw
        self.kind = kind
        self.removed_fields: set[tuple[Any, ...]] = set()
        self.removed_items: dict[tuple[Any, ...], list[int]] = {}

    def original(self, parts: list[Any]) -> list[Any]:
        out: list[Any] = []
        for part in parts:
            if isinstance(part, int):
                for gone in self.removed_items.get(tuple(out), ()):
                    if gone <= part:
                        part += 1
            out.append(part)
        return out

    def remove(self, parts: list[Any]) -> bool:
        """Set the value at ``parts`` aside; False when it cannot be (root)."""
        if not parts:
            return False
        original = self.original(parts)
        *parent, last = parts

        def without(container: Any) -> Any:
            copy = list(container) if isinstance(container, list) else dict(container)
            del copy[last]
            return copy

        try:
            self.doc = _edit(self.doc, parent, without)
        except (KeyError, IndexError, TypeError):
            return False
        if isinstance(last, int):
            gone = self.removed_items.setdefault(tuple(original[:-1]), [])
            gone.append(original[-1])
            gone.sort()
        else:
            self.removed_fields.add(tuple(original))
        return True

    def replace(self, parts: list[Any], change: Any) -> bool:
        try:
            self.doc = _edit(self.doc, parts, change)
        except (KeyError, IndexError, TypeError):
            return False
        return True


_TYPE_INFO: dict[type, Any] = {}


def _unwrap(t: Any) -> list[Any]:
    return list(t.types) if isinstance(t, mi.UnionType) else [t]


def _types_at(kind: type, parts: list[Any]) -> list[Any]:
    """The msgspec types a value at ``parts`` may have (unions unwrapped)."""
    info = _TYPE_INFO.get(kind)
    if info is None:
        info = _TYPE_INFO[kind] = mi.type_info(kind)
    current = [info]
    for part in parts:
        nxt: list[Any] = []
        for t in current:
            for u in _unwrap(t):
                if isinstance(part, int):
                    if isinstance(u, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
                        nxt.append(u.item_type)
                elif isinstance(u, mi.StructType):
                    nxt += [f.type for f in u.fields if f.name == part]
                elif isinstance(u, mi.DictType):
                    nxt.append(u.value_type)
        current = nxt
    return [u for t in current for u in _unwrap(t)]


def _choices(kind: type, parts: list[Any]) -> tuple[str, ...]:
    """The valid values of an enumerated field (a Literal or a union tag)."""
    values: list[Any] = []
    for t in _types_at(kind, parts):
        if isinstance(t, mi.LiteralType):
            values += t.values
    if not values and parts and isinstance(parts[-1], str):
        values = [u.tag for u in _types_at(kind, parts[:-1])
                  if isinstance(u, mi.StructType) and u.tag_field == parts[-1]]
    # The schema's own order where it has one (consistency: strongest first);
    # msgspec keeps Literal values sorted.
    field = next((p for p in reversed(parts) if isinstance(p, str)), "")
    declared = ENUM_CHOICES.get(field, ())
    if values and set(values) <= set(declared):
        values = list(declared)
    return tuple(str(v) for v in values)


def _field_names(kind: type, parts: list[Any], node: Any) -> list[str]:
    """The fields a mapping at ``parts`` may have; in a tagged union (auth),
    those of the struct its tag names."""
    names: list[str] = []
    for t in _types_at(kind, parts):
        if isinstance(t, mi.StructType):
            if t.tag_field is not None and isinstance(node, dict) and node.get(t.tag_field) != t.tag:
                continue
            names += [f.name for f in t.fields]
    return names


def _number_expectation(kind: type, parts: list[Any]) -> str | None:
    """What a numeric field holds, in words, from its msgspec constraints."""
    for t in _types_at(kind, parts):
        if isinstance(t, mi.FloatType):
            if t.le == 100.0:
                return "a percentage in [0, 100]"
            return f"a finite number >= {t.ge:g}" if t.ge is not None else "a finite number"
        if isinstance(t, mi.IntType):
            if t.le == MAX_COUNT:
                return f"a whole number >= {t.ge} that fits in 64 bits"
            return "a whole number"
    return None


def _secret_path(parts: list[Any]) -> bool:
    return any(isinstance(p, str) and is_secret_field(p) for p in parts)


def _describe(message: str, kind: type, parts: list[Any], value: Any) -> str:
    """msgspec's text in the error grammar: what was expected, then what was
    found (a value is shown unless it sits under a secret-named field: there,
    nothing derived from the value is, whatever the parser said)."""
    text = _described(message, kind, parts, value)
    if _secret_path(parts) and any(leaf in text for leaf in _leaf_texts(value)):
        expected = text.split(", got ", 1)[0]
        if any(leaf in expected for leaf in _leaf_texts(value)):
            expected = "Invalid value"
        return f"{short(expected, 200)}, got a value (not shown)"
    return text


def _leaf_texts(value: Any, limit: int = 100) -> list[str]:
    """The text of the scalars in ``value`` (at most ``limit``), as a parser may quote them."""
    out: list[str] = []
    stack = [value]
    while stack and len(out) < limit:
        node = stack.pop()
        if isinstance(node, Mapping):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, (list, tuple)):
            stack += node
        elif isinstance(node, (str, int, float)) and not isinstance(node, bool) and node is not _MISSING:
            text = str(node)
            if len(text) >= 3:
                out.append(text)
    return out


def _described(message: str, kind: type, parts: list[Any], value: Any) -> str:
    secret = _secret_path(parts)
    found = "a value (not shown)" if secret else f"`{literal(value)}`"
    is_number_error = (message.startswith(("Expected `float` ", "Expected `int` ")) and
                       ("=" in message or "<" in message or ">" in message)) or message == "Number out of range"
    if is_number_error and value is not _MISSING:
        expected = _number_expectation(kind, parts) or "a number"
        if isinstance(value, float) and not math.isfinite(value):
            return f"Expected a finite number, got `{literal(value)}`"
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_FLOAT:
            return f"Expected {expected}, got a number too large for a float"
        return f"Expected {expected}, got {found}"
    choices = _choices(kind, parts) if message.startswith(("Invalid enum value", "Invalid value",
                                                            "Expected `str`,")) else None
    if choices:
        return f"Expected one of {', '.join(f'`{c}`' for c in choices)}, got {found}"
    if _FLOAT_TYPE_RE.match(message) and value is not _MISSING:
        expected = _number_expectation(kind, parts) or "a number"
        return f"Expected {expected}, got {found}"
    if message.startswith("Expected `str` matching regex"):
        return f"Expected a name without control characters, got {found}"
    if message.startswith("Invalid RFC3339"):
        return f"Expected an RFC 3339 datetime such as `2025-11-15T14:22:00Z`, got {found}"
    if value is _MISSING:
        return short(message, 300)
    if _GOT_TYPE_RE.search(message):
        # "Expected `str`, got `int`": show the value itself where allowed.
        if not secret and not isinstance(value, (Mapping, list, tuple)):
            return _GOT_TYPE_RE.sub(lambda _: f", got {found}", message)
        return message
    if ", got " in message:  # our own parsers' messages already say it
        return short(message, 300)
    return f"{short(message, 200)}, got {found}"


def _did_you_mean(field: str, names: list[str]) -> str:
    close = difflib.get_close_matches(field, names, n=1, cutoff=0.75)
    return f"; did you mean `{close[0]}`?" if close else ""


def validate_item(raw: Any, kind: type[T], strict: bool
                   ) -> tuple[T | None, list[tuple[str, str]], _Diagnosis | None]:
    """Convert one item; on failure keep going by setting aside what was
    wrong. ``(value, problems, diagnosis)``: with problems, ``value`` is what
    converted once the wrong parts were set aside (None when nothing did),
    so that the rules on whole values (secrets) still check the rest in the
    same pass; ``diagnosis.original`` maps its paths back to the input's."""
    try:
        return msgspec.convert(raw, kind, dec_hook=decode_hook), [], None
    except msgspec.ValidationError as first:
        error: Exception = first
    except RecursionError:
        return None, [("$", f"Nesting deeper than {MAX_DEPTH} levels")], None
    state = _Diagnosis(raw, kind)
    errors: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for _ in range(MAX_ERRORS):
        m = _AT_RE.match(str(error))
        assert m is not None  # the pattern matches any text
        message, path_text, key_error = m.group("msg"), m.group("path") or "$", bool(m.group("key"))
        inner = _AT_RE.match(message)
        if inner is not None and inner.group("path") and not inner.group("key"):
            # A Struct's own check (``__post_init__``) names the field inside it.
            message, path_text = inner.group("msg"), path_text + inner.group("path")[1:]
        parts = split_path(path_text)
        unknown, missing = _UNKNOWN_RE.match(message), _MISSING_RE.match(message)
        if parts is not None:
            if unknown:
                field = unknown.group("field")
                parts = _resolve(state.doc, parts, lambda n: isinstance(n, dict) and field in n)
            elif missing:
                field = missing.group("field")
                parts = _resolve(state.doc, parts, lambda n: isinstance(n, dict) and field not in n)
            else:
                parts = _resolve(state.doc, parts, lambda n: True)
        if parts is None:  # cannot place it: report as msgspec said, and stop
            errors.append((path_text, short(message, 300)))
            break
        where = format_path(state.original(parts))
        if (where, message) in seen:  # no progress: stop rather than loop
            break
        seen.add((where, message))

        if unknown:
            field = unknown.group("field")
            if strict:
                node = state.doc
                for part in parts:
                    node = _child(node, part)
                hint = _did_you_mean(field, _field_names(kind, parts, node))
                errors.append((where, f"Unknown field `{short(field, 40)}`{hint}"))
            ok = state.remove(parts + [field])
        elif missing:
            field = missing.group("field")
            if tuple(state.original(parts) + [field]) not in state.removed_fields:
                errors.append((where, f"Missing required field `{field}`"))
            tags = {u.tag_field for u in _types_at(kind, parts) if isinstance(u, mi.StructType)}
            if field in _PLACEHOLDERS and field not in tags:
                placeholder = _PLACEHOLDERS[field]
                ok = state.replace(parts, lambda node: {**node, field: placeholder})
            else:
                ok = state.remove(parts)
        elif key_error:
            errors.append((where, f"Expected `str` keys, got {message.split(', got ')[-1]} key"
                           if ", got " in message else "Expected `str` keys"))
            ok = state.replace(parts, lambda node: {k: v for k, v in node.items() if isinstance(k, str)})
        else:
            value = state.doc
            for part in parts:
                value = _child(value, part)
            errors.append((where, _describe(message, kind, parts, value)))
            ok = state.remove(parts)
        if not ok:
            break
        try:
            value_ok = msgspec.convert(state.doc, kind, dec_hook=decode_hook)
        except msgspec.ValidationError as again:
            error = again
            continue
        except RecursionError:
            break
        if not errors:  # only unknown fields, ignored (strict=False)
            return value_ok, [], None
        return value_ok, errors, state
    return None, errors, state
