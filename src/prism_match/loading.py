"""Files, documents and dicts → validated Structs, every error collected.

``load_documents`` reads a source (file, directory, list of dicts, mapping)
into raw documents with their names; ``validate_documents`` converts each item
into the requested Struct, collecting *all* problems (msgspec stops at the
first error of a document, so the offending field is removed and the document
validated again, up to a bound). Nothing is returned unless everything is
valid: the caller compiles only a registry that loaded whole.

Untrusted input fails fast: YAML goes through PyYAML's C safe loader after a
scan that bounds nesting depth and alias expansion; JSON through msgspec/
orjson; files larger than ``MAX_FILE_BYTES`` are refused before reading.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from .errors import RegistryError
from .redact import SECRET_FIELDS, is_secret_reference
from .schema import ENUM_CHOICES, Registration, decode_hook

__all__ = ["load_documents", "validate_documents", "load_registrations", "read_file_documents",
           "MAX_DEPTH", "MAX_NODES", "MAX_FILE_BYTES", "MAX_ERRORS"]

try:  # the C loader: ~10x faster; the pure-Python one is the fallback
    _YamlLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _YamlLoader = yaml.SafeLoader

MAX_DEPTH = 64            # nesting deeper than any real registration
MAX_NODES = 2_000_000     # expanded nodes per file, aliases counted at full size
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ERRORS = 100          # per call: enough to fix a file, bounded work on garbage
_YAML_SUFFIXES = {".yaml", ".yml"}
_JSON_SUFFIXES = {".json"}

T = TypeVar("T")

# A raw document: (document name, JSON-path prefix of the item, the item).
Item = tuple[str, str, Any]


# --- reading ------------------------------------------------------------------------

def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _yaml_guard(text: str, name: str) -> None:
    """Reject documents that nest too deep or expand aliases past MAX_NODES.

    Walks the C parser's events (no objects are built), counting each alias at
    the full size of its anchor, so a "billion laughs" is refused after a few
    hundred events. Skipped when the text can hold neither anchors nor deep
    nesting, which is every ordinary registry.
    """
    if "&" not in text and text.count("[") + text.count("{") < MAX_DEPTH:
        widest = max((len(m) for m in re.findall(r"^[ \t-]*", text, flags=re.M)), default=0)
        if widest < MAX_DEPTH:
            return
    stack: list[list[Any]] = []  # [size, anchor] of open collections
    anchors: dict[str, int] = {}
    total = 0
    doc = 0
    for event in yaml.parse(text, Loader=_YamlLoader):
        size = None
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([1, event.anchor])
            if len(stack) > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise RegistryError(f"Nesting deeper than {MAX_DEPTH} levels (line {line})", name)
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            size, anchor = stack.pop()
            if anchor:
                anchors[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                anchors[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size = anchors.get(event.anchor, 1)
        elif isinstance(event, yaml.DocumentStartEvent):
            doc += 1
            continue
        else:
            continue
        total += size
        if total > MAX_NODES:
            raise RegistryError(
                f"Document expands to more than {MAX_NODES:,} nodes (alias expansion?); refused", name)
        if stack:
            stack[-1][0] += size


def _yaml_error(exc: yaml.YAMLError, name: str) -> RegistryError:
    # Only the position and the problem: PyYAML's snippet would echo file
    # text (possibly a secret) back to the user.
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return RegistryError(f"Invalid YAML: {problem}{where}", name)


def read_file_documents(path: Path) -> list[tuple[str, Any]]:
    """``[(document name, parsed document)]`` for one YAML or JSON file."""
    name = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RegistryError(f"Cannot read file: {exc.strerror}", name) from None
    if size > MAX_FILE_BYTES:
        raise RegistryError(f"File is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}", name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"Cannot read file: {exc.strerror}", name) from None
    if not data.strip():
        raise RegistryError("File is empty: expected backend registrations", name)
    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES:
        try:
            return [(name, msgspec.json.decode(data))]
        except (msgspec.DecodeError, RecursionError) as exc:
            raise RegistryError(f"Invalid JSON: {exc}", name) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"File is not UTF-8 text (byte {exc.start})", name) from None
    try:
        _yaml_guard(text, name)
        docs = [d for d in yaml.load_all(text, Loader=_YamlLoader)]
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, name) from None
    except RecursionError:
        raise RegistryError(f"Nesting deeper than {MAX_DEPTH} levels", name) from None
    present = [(i, d) for i, d in enumerate(docs, start=1) if d is not None]
    if not present:
        raise RegistryError("File holds no YAML documents", name)
    if len(docs) == 1:
        return [(name, present[0][1])]
    return [(f"{name}#{i}", d) for i, d in present]


def _source_documents(source: Any, suffixes: set[str]) -> list[tuple[str, Any]]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                raise RegistryError(f"Directory holds no {'/'.join(sorted(suffixes))} files", str(path))
            docs: list[tuple[str, Any]] = []
            errors: list[tuple[str, str]] = []
            for file in files:
                try:
                    docs += read_file_documents(file)
                except RegistryError as exc:
                    errors += exc.errors
            if errors:
                raise RegistryError(errors)
            return docs
        if not path.exists():
            raise RegistryError("No such file or directory", str(path))
        return read_file_documents(path)
    if isinstance(source, (Mapping, Sequence)) and not isinstance(source, (str, bytes)):
        return [("<input>", source)]
    raise RegistryError(f"Expected a path, a list of mappings or a mapping, got `{type(source).__name__}`",
                        "<input>")


def load_documents(source: Any, *, list_key: str, wrapper_keys: Sequence[str] = ()) -> list[Item]:
    """Split a source into items: ``[(document, path prefix, raw item)]``.

    A document may be one item (a mapping), a list of items, or a mapping
    ``{list_key: [...]}``; a mapping ``{wrapper: {...}}`` with one of
    ``wrapper_keys`` (the seed's ``slot_requirement:``) is unwrapped.
    """
    items: list[Item] = []
    for doc_name, doc in _source_documents(source, _YAML_SUFFIXES | _JSON_SUFFIXES):
        if isinstance(doc, Mapping) and list_key in doc and isinstance(doc[list_key], list):
            extra = [k for k in doc if k != list_key]
            if extra:
                items.append((doc_name, "$", {"__unknown_top__": extra[0]}))
            items += [(doc_name, f"$.{list_key}[{i}]", item) for i, item in enumerate(doc[list_key])]
        elif isinstance(doc, list):
            items += [(doc_name, f"$[{i}]", item) for i, item in enumerate(doc)]
        elif isinstance(doc, Mapping) and len(doc) == 1 and next(iter(doc)) in wrapper_keys:
            key = next(iter(doc))
            items.append((doc_name, f"$.{key}", doc[key]))
        else:
            items.append((doc_name, "$", doc))
    return items


# --- validation ---------------------------------------------------------------------

_PATH_RE = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\"((?:[^\"\\]|\\.)*)\"\]|\.\"((?:[^\"\\]|\\.)*)\"")
_AT_RE = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(?P<field>.*)`$", re.S)


def _split_path(path: str) -> list[str | int] | None:
    parts: list[str | int] = []
    pos = 1  # after "$"
    while pos < len(path):
        m = _PATH_RE.match(path, pos)
        if m is None:
            return None
        key, index, quoted, dotted = m.groups()
        parts.append(int(index) if index is not None else (key or quoted or dotted))
        pos = m.end()
    return parts


def _join(prefix: str, path: str) -> str:
    return prefix + path[1:]


def _remove(doc: Any, parts: list[str | int]) -> bool:
    """Delete the field at ``parts`` so validation can go on; False if impossible."""
    if not parts or isinstance(parts[-1], int):
        return False
    node = doc
    for part in parts[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and parts[-1] in node:
        del node[parts[-1]]
        return True
    return False


def _friendly(message: str, parts: list[str | int] | None) -> str:
    """msgspec's text, with enum choices spelled out and long values shortened."""
    if message.startswith("Invalid enum value") or message.startswith("Invalid value"):
        field = next((p for p in reversed(parts or []) if isinstance(p, str)), "")
        choices = ENUM_CHOICES.get(field)
        found = message.split(" ", 3)[-1]
        if choices:
            return f"Expected one of {', '.join(f'`{c}`' for c in choices)}, got `{_short(found.strip(chr(39)), 40)}`"
    if message.startswith("Number out of range"):
        return "Expected a finite number, got a number too large for a float"
    return _short(message, 300)


def _validate_item(raw: Any, kind: type[T], strict: bool) -> tuple[T | None, list[tuple[str, str]]]:
    """Convert one item; on failure keep going by removing what was wrong."""
    try:
        return msgspec.convert(raw, kind, dec_hook=decode_hook), []
    except msgspec.ValidationError as first:
        error: Exception = first
    except RecursionError:
        return None, [("$", f"Nesting deeper than {MAX_DEPTH} levels")]
    errors: list[tuple[str, str]] = []
    doc = copy.deepcopy(raw) if isinstance(raw, (dict, list)) else raw
    for _ in range(MAX_ERRORS):
        m = _AT_RE.match(str(error))
        message, path = m.group("msg"), m.group("path") or "$"
        parts = _split_path(path)
        unknown = _UNKNOWN_RE.match(message)
        if unknown:
            field = unknown.group("field")
            parts = (parts or []) + [field]
            if strict:
                errors.append((path if path != "$" else "$", f"Unknown field `{_short(field, 40)}`"))
        else:
            errors.append((path, _friendly(message, parts)))
        if parts is None or not _remove(doc, parts):
            return None, errors
        try:
            value = msgspec.convert(doc, kind, dec_hook=decode_hook)
        except msgspec.ValidationError as again:
            error = again
            continue
        return (None, errors) if errors else (value, [])
    return None, errors


def _scan_secrets(value: Any, path: str, out: list[tuple[str, str]], depth: int = 0) -> None:
    """Inline secrets below a free-form mapping (metadata): never echo them."""
    if depth > MAX_DEPTH:
        out.append((path, f"Nesting deeper than {MAX_DEPTH} levels"))
        return
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}"
            if k in SECRET_FIELDS and v is not None and not is_secret_reference(v):
                out.append((sub, _inline_secret_message(k)))
            else:
                _scan_secrets(v, sub, out, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _scan_secrets(v, f"{path}[{i}]", out, depth + 1)


def _inline_secret_message(field: str) -> str:
    return (f"Inline secret in `{field}`: expected a reference `${{SECRET:path}}` "
            "(the value is not shown; pass allow_inline_secrets=True to accept it)")


def registration_problems(reg: Registration, allow_inline_secrets: bool) -> list[tuple[str, str]]:
    """Rules msgspec cannot express: secrets, pool and backoff ordering."""
    problems: list[tuple[str, str]] = []
    conn = reg.connection
    auth = conn.auth if conn is not None else None
    if not allow_inline_secrets:
        for field in ("password", "token"):
            value = getattr(auth, field, None)
            if value is not None and not is_secret_reference(value):
                problems.append((f"$.connection.auth.{field}", _inline_secret_message(field)))
        if reg.metadata:
            _scan_secrets(reg.metadata, "$.metadata", problems)
    for where, pool in (("$.connection.pool", conn.pool if conn else None), ("$.pool", reg.pool)):
        if pool is not None and pool.max_connections is not None and pool.min_connections > pool.max_connections:
            problems.append((f"{where}.min_connections",
                             f"Expected `min_connections` <= `max_connections` ({pool.max_connections}), "
                             f"got `{pool.min_connections}`"))
    for where, retry in (("$.connection.retry", conn.retry if conn else None), ("$.retry", reg.retry)):
        if (retry is not None and retry.initial_backoff is not None and retry.max_backoff is not None
                and retry.initial_backoff > retry.max_backoff):
            problems.append((f"{where}.initial_backoff",
                             f"Expected `initial_backoff` <= `max_backoff` ({retry.max_backoff:g}s), "
                             f"got `{retry.initial_backoff:g}s`"))
    return problems


def validate_documents(items: list[Item], kind: type[T], *, strict: bool = True) -> list[tuple[Item, T]]:
    """Validate every item as ``kind``; raise one RegistryError with all problems."""
    out: list[tuple[Item, T]] = []
    errors: list[tuple[str, str]] = []
    for item in items:
        doc_name, prefix, raw = item
        if isinstance(raw, dict) and "__unknown_top__" in raw and len(raw) == 1:
            if strict:
                errors.append((f"{doc_name} $", f"Unknown field `{raw['__unknown_top__']}`"))
            continue
        value, problems = _validate_item(raw, kind, strict)
        errors += [(f"{doc_name} {_join(prefix, path)}", msg) for path, msg in problems]
        if value is not None:
            out.append((item, value))
        if len(errors) >= MAX_ERRORS:
            errors.append((doc_name, f"Stopped after {MAX_ERRORS} problems"))
            break
    if errors:
        raise RegistryError(errors)
    return out


def load_registrations(source: Any, *, strict: bool = True,
                       allow_inline_secrets: bool = False) -> list[Registration]:
    """Every registration of ``source``, validated; or RegistryError with all problems."""
    if isinstance(source, Mapping) and "backends" not in source and "backend_id" not in source:
        raise RegistryError("Expected a registration or a mapping with `backends`", "<input> $")
    items = load_documents(source, list_key="backends")
    validated = validate_documents(items, Registration, strict=strict)
    errors: list[tuple[str, str]] = []
    first_seen: dict[str, str] = {}
    for (doc_name, prefix, _), reg in validated:
        where = f"{doc_name} {prefix}"
        errors += [(f"{doc_name} {_join(prefix, p)}", m) for p, m in registration_problems(reg, allow_inline_secrets)]
        if reg.backend_id in first_seen:
            errors.append((f"{where}.backend_id" if prefix != "$" else f"{doc_name} $.backend_id",
                           f"Duplicate backend_id `{_short(reg.backend_id)}`, first defined at "
                           f"{first_seen[reg.backend_id]}"))
        else:
            first_seen[reg.backend_id] = where
    if errors:
        raise RegistryError(errors)
    return [reg for _, reg in validated]


