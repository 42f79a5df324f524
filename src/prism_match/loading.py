"""Files, documents and dicts → validated Structs, every error collected.

``load_documents`` reads a source (file, directory, list of dicts, mapping)
into raw items with their document names; ``validate_documents`` converts
them into the requested Struct. The success path is one ``msgspec`` call for
all items; only when that fails does the diagnostic path run, item by item: msgspec stops at the
first error of a document, so the offending field is set aside (copy on
write, the input is never touched) and the item converted again, up to a
bound, to report *all* problems with their JSON paths. Nothing is returned
unless everything is valid: the caller compiles only a registry that loaded
whole.

Every problem of a call is reported in one pass: the rules msgspec cannot
express (secrets, free-form bounds, names per backend) also run on an item
that had schema problems, once its wrong parts are set aside. A problem in a
file is located ``file:line:column $.json.path``: the position is found only
when an error is raised (YAML composed again, JSON walked to the path).

Untrusted input fails fast: only regular files are read (a FIFO or a device
is refused before it is opened for reading, so nothing blocks); files larger
than ``MAX_FILE_BYTES`` are refused before reading; JSON objects that repeat
a key are refused where they repeat it (YAML's are too); every YAML tag
either builds its value or is a located error that never quotes the value;
YAML is parsed and composed by libyaml through PyYAML's C
safe loader (which caps nesting at 1,000), then built into Python objects
by this module's own iterative constructor, which measures every node's
expanded size on the way, so alias expansion past ``MAX_NODES``, a recursive
alias or nesting past ``MAX_DEPTH`` is refused before anything downstream
walks the result; free-form mappings (``metadata``, operation
``parameters``) are walked iteratively with a depth and size bound. Nothing
but :class:`RegistryError` leaves this module for bad input, and no error
shows the value of a secret-named field.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import gc
import json
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
import yaml

from .errors import RegistryError
from .redact import is_inline_secret, is_secret_field, printable, quoted, url_password
from .compiled import MAX_NAMES_PER_BACKEND
from .schema import ENUM_CHOICES, MAX_COUNT, MAX_FLOAT, Registration, decode_hook

__all__ = ["load_documents", "source_documents", "split_document", "validate_documents", "load_registrations", "read_file_documents",
           "registration_problems", "MAX_DEPTH", "MAX_NODES", "MAX_FILE_BYTES", "MAX_ERRORS",
           "MAX_FREEFORM_NODES", "gc_paused", "check_freeform", "format_path"]

try:  # the C loader: ~10x faster; the pure-Python one is the fallback
    _BaseYamlLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _BaseYamlLoader = yaml.SafeLoader

MAX_DEPTH = 64                 # nesting deeper than any real registration
MAX_NODES = 2_000_000          # expanded YAML nodes per document, aliases counted at full size
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ERRORS = 100               # per call: enough to fix a file, bounded work on garbage
MAX_FREEFORM_NODES = 10_000    # values in one free-form mapping (metadata, parameters)
_YAML_SUFFIXES = {".yaml", ".yml"}
_JSON_SUFFIXES = {".json"}

T = TypeVar("T")

# A raw item: (document name, JSON-path prefix of the item, the item).
Item = tuple[str, str, Any]


class _Problem:
    """A problem found while reading or splitting documents (not an item);
    ``path`` is None when the document name alone locates it (a file)."""

    __slots__ = ("path", "message", "strict_only")

    def __init__(self, path: str | None, message: str, strict_only: bool = False):
        self.path, self.message, self.strict_only = path, message, strict_only


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _literal(value: Any) -> str:
    """A found value as the error grammar shows it: JSON-like scalars
    (strings quoted, so ``"100"`` is told from ``100``), type names otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 128:  # str() of a huge int is slow, and refused past 4,300 digits
            return f"{'-' if value < 0 else ''}~1e{int(value.bit_length() * 0.30103)}"
        return _short(str(value), 40)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


# --- reading ------------------------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_STR_TAG, _MAP_TAG, _SEQ_TAG, _MERGE_TAG = _TAG + "str", _TAG + "map", _TAG + "seq", _TAG + "merge"
_INT_TAG = _TAG + "int"
_TOO_LARGE = 10**309  # an int past float range: every numeric field reports it as too large
_RESOLVED: dict[str, str] = {}  # plain scalar text → implicit tag (the resolver's regexes, memoised)
_RESOLVED_LIMIT = 65_536


class _YamlLoader(_BaseYamlLoader):  # type: ignore[misc, valid-type]
    """The safe loader, with duplicate keys refused (a repeated
    ``max_write_rps`` would otherwise silently keep the last value) and tag
    resolution made cheap: libyaml's composer calls back into Python for
    every node, so the implicit tag of a plain scalar is memoised (a
    registry repeats the same few hundred words; the resolver runs a regex
    per scalar) and the path-resolver hooks, unused by the safe loader, are
    C builtins that do nothing."""

    # Called as self.descend_resolver(parent, index) and
    # self.ascend_resolver(); builtins do not bind, and nothing reads the
    # result. The safe loader registers no path resolvers.
    descend_resolver = slice
    ascend_resolver = tuple

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return _STR_TAG
            tag = _RESOLVED.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(_RESOLVED) < _RESOLVED_LIMIT:
                    _RESOLVED[value] = tag
            return tag
        return _SEQ_TAG if kind is yaml.SequenceNode else _MAP_TAG

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep)


def _duplicate_key(key: Any) -> yaml.YAMLError:
    return yaml.constructor.ConstructorError(None, None, f"found duplicate key `{_short(str(key.value), 40)}`",
                                             key.start_mark)


def _refuse_duplicate_keys(node: Any) -> None:
    keys = [k.value for k, _ in node.value if type(k) is yaml.ScalarNode]
    if len(set(keys)) != len(keys):
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if type(key) is yaml.ScalarNode:
                if (key.tag, key.value) in seen:
                    raise _duplicate_key(key)
                seen.add((key.tag, key.value))


def _too_deep(node: Any, name: str) -> RegistryError:
    return RegistryError(f"Nesting deeper than {MAX_DEPTH} levels (line {node.start_mark.line + 1})", name)


def _too_big(name: str) -> RegistryError:
    return RegistryError(f"Document expands to more than {MAX_NODES:,} nodes (alias expansion?); refused", name)


def _recursive(node: Any, name: str) -> RegistryError:
    return RegistryError(f"Recursive alias: a node contains itself (line {node.start_mark.line + 1})", name)


def _node_graph_size(root: Any, name: str, depth: int = 0) -> int:
    """Expanded size of a composed YAML node graph, refusing expansion past
    MAX_NODES, nesting past MAX_DEPTH and recursive aliases.

    Iterative post-order walk with each node's size memoised, so a "billion
    laughs" costs as many steps as it has distinct nodes.
    """
    in_progress = -1
    sizes: dict[int, int] = {id(root): in_progress}

    def children(node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                yield key
                yield value
        elif isinstance(node, yaml.SequenceNode):
            yield from node.value

    stack: list[list[Any]] = [[root, children(root), 1]]
    while stack:
        frame = stack[-1]
        child = next(frame[1], None)
        if child is None:
            stack.pop()
            sizes[id(frame[0])] = frame[2]
            if stack:
                stack[-1][2] += frame[2]
                if stack[-1][2] > MAX_NODES:
                    raise _too_big(name)
            continue
        if isinstance(child, yaml.ScalarNode):
            frame[2] += 1
            continue
        size = sizes.get(id(child))
        if size is None:
            if depth + len(stack) >= MAX_DEPTH:
                raise _too_deep(child, name)
            sizes[id(child)] = in_progress
            stack.append([child, children(child), 1])
        elif size == in_progress:
            raise _recursive(child, name)
        else:
            frame[2] += size
            if frame[2] > MAX_NODES:
                raise _too_big(name)
    return sizes[id(root)]


_SCALAR_MEMO: dict[tuple[str, str], Any] = {}
_SCALAR_MEMO_LIMIT = 65_536
_IMMUTABLE_SCALARS = {_TAG + t for t in ("int", "float", "bool", "null", "timestamp")}


def _build_document(loader: Any, root: Any, name: str, merges: bool) -> Any:
    """Python objects from a composed YAML document: what PyYAML's safe
    constructor builds, several times faster, in one bounded pass.

    Plain maps, sequences and the core scalar tags are built here,
    iteratively (no recursion), with aliases shared as PyYAML shares them;
    anything else (merge keys — looked for only when ``merges`` —, ``!!binary``,
    ``!!set``, unknown tags) goes to the safe constructor, which also raises
    its errors. The same pass measures each node's expanded size, so alias
    bombs, recursive aliases and deep nesting are refused before anything
    downstream walks the result.
    """
    scalar_node, mapping_node, sequence_node = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode
    str_tag, memo, immutable = _STR_TAG, _SCALAR_MEMO, _IMMUTABLE_SCALARS
    done: dict[int, tuple[Any, int]] = {}

    def scalar(node: Any) -> Any:
        tag = node.tag
        if tag == str_tag:
            return node.value
        if tag not in immutable:
            return constructed(node, deep=True)
        key = (tag, node.value)
        value = memo.get(key, memo)
        if value is memo:
            try:
                value = loader.construct_object(node)
            except (ValueError, OverflowError) as exc:
                if tag == _INT_TAG and "digits" in str(exc):
                    # Thousands of digits (Python refuses to convert them):
                    # far past float range, reported as such where it stands.
                    return -_TOO_LARGE if node.value.startswith("-") else _TOO_LARGE
                raise _tag_error(node, exc, name) from None
            except Exception as exc:  # `!!bool maybe`: PyYAML's KeyError, AttributeError...
                raise _tag_error(node, exc, name) from None
            if len(memo) < _SCALAR_MEMO_LIMIT:
                memo[key] = value
        return value

    def constructed(node: Any, deep: bool) -> Any:
        """The safe constructor's object for ``node`` (merge keys, ``!!binary``,
        ``!!set``, unknown tags): its YAML errors as they are, anything else
        it raises as a located error that never quotes the value."""
        try:
            return loader.construct_object(node, deep=deep)
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, name) from None
        except RecursionError:
            raise
        except Exception as exc:
            raise _tag_error(node, exc, name) from None

    def opened(node: Any) -> list[Any] | None:
        """A frame [node, object, children, size, is_map, pending key], or
        None when the safe constructor must build this node."""
        tag = node.tag
        if tag == _MAP_TAG and type(node) is mapping_node:
            if merges:
                for key, _ in node.value:
                    if type(key) is scalar_node and key.tag == _MERGE_TAG:
                        return None
            return [node, {}, iter(node.value), 1, True, None]
        if tag == _SEQ_TAG and type(node) is sequence_node:
            return [node, [], iter(node.value), 1, False, None]
        return None

    def fallback(node: Any, depth: int) -> tuple[Any, int]:
        size = _node_graph_size(node, name, depth)
        return constructed(node, deep=True), size

    if type(root) is scalar_node:
        return scalar(root)
    first = opened(root)
    if first is None:
        return fallback(root, 0)[0]
    stack = [first]
    open_ids = {id(root)}
    while True:
        frame = stack[-1]
        obj, size, is_map = frame[1], frame[3], frame[4]
        pushed = False
        # Children in a tight loop; leave it only to open a child collection.
        for entry in frame[2]:
            if is_map:
                key_node, child = entry
                if type(key_node) is not scalar_node:
                    raise yaml.constructor.ConstructorError(None, None, "found unhashable key",
                                                            key_node.start_mark)
                key = scalar(key_node)
                if key in obj:
                    raise _duplicate_key(key_node)
            else:
                child = entry
            if type(child) is scalar_node:
                value = child.value if child.tag == str_tag else scalar(child)
                child_size = 1
            else:
                known = done.get(id(child))
                if known is not None:
                    value, child_size = known
                elif id(child) in open_ids:
                    raise _recursive(child, name)
                else:
                    if len(stack) >= MAX_DEPTH:
                        raise _too_deep(child, name)
                    sub = opened(child)
                    if sub is not None:
                        frame[3], frame[5] = size, (key if is_map else None)
                        stack.append(sub)
                        open_ids.add(id(child))
                        pushed = True
                        break
                    value, child_size = fallback(child, len(stack))
                    done[id(child)] = (value, child_size)
            if is_map:
                obj[key] = value
            else:
                obj.append(value)
            size += child_size
            if size > MAX_NODES:
                raise _too_big(name)
        if pushed:
            continue
        # This collection is complete: hand it to its parent.
        stack.pop()
        node = frame[0]
        open_ids.discard(id(node))
        done[id(node)] = (obj, size)
        if not stack:
            return obj
        parent = stack[-1]
        if parent[4]:
            parent[1][parent[5]] = obj
        else:
            parent[1].append(obj)
        parent[3] += size
        if parent[3] > MAX_NODES:
            raise _too_big(name)


def _at(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})"


def _line_column(text: str, offset: int) -> str:
    """`` (line L, column C)`` of a character offset in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return f" (line {line}, column {offset - text.rfind(chr(10), 0, offset)})"


def _tag_error(node: Any, exc: BaseException, name: str) -> RegistryError:
    """A scalar its tag cannot build (``!!int hunter2``, ``!!bool maybe``,
    ``!!timestamp 2025-13-45``): where it is, and the constructor's reason
    only when the reason does not quote the value (a secret, perhaps)."""
    reason = str(exc).split(";")[0].strip() if isinstance(exc, (ValueError, OverflowError)) else ""
    value = str(node.value) if not isinstance(node.value, list) else ""
    if not reason or (value and (value in reason or value.strip() in reason)):
        reason = " (the value is not shown)"
    else:
        reason = f": {_short(reason, 80)}"
    tag = node.tag[len(_TAG):] if node.tag.startswith(_TAG) else node.tag
    return RegistryError(f"Invalid YAML: not a valid {_short(tag, 40)}{reason}{_at(node.start_mark)}", name)


def _yaml_error(exc: yaml.YAMLError, name: str, text: str | None = None) -> RegistryError:
    # Only the position and the problem: PyYAML's snippet would echo file
    # text (possibly a secret) back to the user.
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, ...)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character or 0)
        where = _line_column(text, exc.position) if text is not None else f" (character {exc.position + 1})"
        return RegistryError(f"Invalid YAML: character `{printable(char)}` is not allowed{where}", name)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    where = _at(mark) if mark is not None else ""
    return RegistryError(f"Invalid YAML: {_short(str(problem), 120)}{where}", name)


def _yaml_documents(text: str, name: str) -> list[Any]:
    loader = _YamlLoader(text)
    merges = "<<" in text or "!!merge" in text or "tag:yaml.org,2002:merge" in text
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            docs.append(None if node is None else _build_document(loader, node, name, merges))
            loader.constructed_objects = {}
            loader.recursive_objects = {}
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, name, text) from None
    except RegistryError:
        raise
    except RecursionError:  # only the pure-Python fallback loader recurses
        raise RegistryError(f"Nesting deeper than {MAX_DEPTH} levels", name) from None
    finally:
        loader.dispose()
    return docs


def _utf8(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"File is not UTF-8 text (byte {exc.start})", name) from None


def _json_float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _TOO_LARGE


def _json_int(text: str) -> int:
    # int() of thousands of digits is slow (and refused past 4,300).
    if len(text.lstrip("-")) > 400:
        return -_TOO_LARGE if text.startswith("-") else _TOO_LARGE
    return int(text)


def _json_constant(text: str) -> Any:
    raise ValueError(f"`{text}` is not JSON")


class _Duplicated(dict):
    """A JSON object that repeated a key (``duplicate``): kept so that the
    error can say where, after the parse."""

    duplicate: str = ""


def _unique_keys() -> tuple[Any, list[bool]]:
    """An ``object_pairs_hook`` that marks objects repeating a key, and the
    list it appends to when it does (the document is walked only then)."""
    found: list[bool] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            obj = _Duplicated(obj)
            seen: set[str] = set()
            obj.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            found.append(True)
        return obj

    return hook, found


def _first_duplicate(doc: Any) -> tuple[list[Any], str] | None:
    """(path of the first object in document order that repeats a key, the key)."""
    stack: list[tuple[Any, list[Any]]] = [(doc, [])]
    while stack:
        node, parts = stack.pop()
        if isinstance(node, _Duplicated):
            return parts, node.duplicate
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack += reversed([(child, parts + [key]) for key, child in children if isinstance(child, (dict, list))])
    return None


_BYTE_RE = re.compile(r" \(byte (\d+)\)$")
_BIG_EXPONENT = re.compile(r"[eE]\+?0*[1-9][0-9]{2}|[0-9]{300}")  # a float past range needs one


def _json_syntax_error(text: str, exc: ValueError, name: str) -> RegistryError:
    """msgspec's words for what is wrong (the project's pinned texts), with
    the line and column of where (msgspec says a byte, json a position)."""
    data = text.encode("utf-8", "surrogatepass")
    try:
        msgspec.json.decode(data)
        message = str(exc).split(":")[0]
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        message = str(error).split(" - at ")[0]
    except RecursionError:
        return RegistryError("Invalid JSON: nested too deep", name)
    byte = _BYTE_RE.search(message)
    if byte is not None:
        message = message[:byte.start()]
        offset = len(data[:int(byte.group(1))].decode("utf-8", "replace"))
        message += _line_column(text, offset)
    elif isinstance(exc, json.JSONDecodeError):
        message += f" (line {exc.lineno}, column {exc.colno})"
    return RegistryError(f"Invalid JSON: {_short(message, 160)}", name)


def _json_document(text: str, name: str) -> Any:
    """One JSON document; duplicate keys refused (msgspec and json keep the
    last silently), numbers past float range kept as too large so they are
    reported where they stand."""
    hook, found = _unique_keys()
    # Only a float with a 3-digit exponent (or 300 digits) can pass float range: the hook
    # that keeps it as "too large" (not inf) is needed only then.
    floats = _json_float if _BIG_EXPONENT.search(text) else None
    try:
        try:
            doc = json.loads(text, object_pairs_hook=hook, parse_float=floats, parse_constant=_json_constant)
        except ValueError as exc:
            if "digits" not in str(exc):  # int() refuses thousands of digits: parse again, keeping them
                raise
            doc = json.loads(text, object_pairs_hook=hook, parse_float=_json_float, parse_int=_json_int,
                             parse_constant=_json_constant)
    except RecursionError:
        raise RegistryError("Invalid JSON: nested too deep", name) from None
    except ValueError as exc:
        raise _json_syntax_error(text, exc, name) from None
    duplicate = _first_duplicate(doc) if found else None
    if duplicate is not None:
        parts, key = duplicate
        offset = _JsonLocator(text).offset(parts + [key], occurrence=2, at_key=True)
        where = _line_column(text, offset) if offset is not None else ""
        raise RegistryError(f"Invalid JSON: found duplicate key `{_short(printable(key), 40)}`{where}", name)
    return doc


_WS = re.compile(r"[ \t\n\r]*")
_SKIP = json.JSONDecoder(parse_float=_json_float, parse_int=_json_int, parse_constant=_json_constant)


class _JsonLocator:
    """Where a JSON path starts in the text, found only when an error is
    reported: the text is walked to it (keys read, other values skipped by
    the C scanner), remembering the offsets passed on the way, so the next
    error in the same document starts from there."""

    def __init__(self, text: str):
        self.text = text
        self.known: dict[tuple[Any, ...], int] = {(): _WS.match(text).end()}

    def _skip(self, pos: int) -> int:
        return _WS.match(self.text, _SKIP.raw_decode(self.text, pos)[1]).end()

    def offset(self, parts: list[Any], occurrence: int = 1, at_key: bool = False) -> int | None:
        """The offset of the value at ``parts`` (of its key, with ``at_key``;
        of the ``occurrence``-th repeat of that key), else of the deepest
        container on the way."""
        text, known = self.text, self.known
        depth = len(parts)
        while tuple(parts[:depth]) not in known:
            depth -= 1
        pos = known[tuple(parts[:depth])]
        try:
            for i in range(depth, len(parts)):
                part, path = parts[i], tuple(parts[:i])
                if isinstance(part, int):
                    if text[pos] != "[":
                        return pos
                    start = max((j for j in range(part, -1, -1) if path + (j,) in known), default=None)
                    j, p = (start, known[path + (start,)]) if start is not None else (0, _WS.match(text, pos + 1).end())
                    while j < part:
                        if text[p] == "]":
                            return pos
                        p = self._skip(p)
                        if text[p] == ",":
                            p = _WS.match(text, p + 1).end()
                        j += 1
                        known[path + (j,)] = p
                    if text[p] == "]":
                        return pos
                    known[path + (part,)] = pos = p
                else:
                    if text[pos] != "{":
                        return pos
                    p, seen = _WS.match(text, pos + 1).end(), 0
                    while text[p] != "}":
                        key_start = p
                        key, p = json.decoder.scanstring(text, p + 1)
                        p = _WS.match(text, p).end()
                        p = _WS.match(text, p + 1).end()  # the colon
                        if key == part:
                            seen += 1
                            if seen == (occurrence if i == len(parts) - 1 else 1):
                                if at_key and i == len(parts) - 1:
                                    return key_start
                                break
                        p = self._skip(p)
                        if text[p] == ",":
                            p = _WS.match(text, p + 1).end()
                    else:
                        return pos
                    if occurrence == 1:
                        known[path + (part,)] = p
                    pos = p
        except (ValueError, IndexError, RecursionError):
            return pos
        return pos


class Document(str):
    """A document's name (``r.yaml``, ``r.yaml#2``) that can also tell where
    a JSON path of it stands in its file: ``position("$.backends[3]")`` →
    ``(line, column)``, worked out only when an error is reported."""

    def __new__(cls, name: str, text: str, kind: str, number: int = 1) -> Document:
        self = super().__new__(cls, name)
        self._text, self._kind, self._number, self._locate = text, kind, number, None
        return self

    def position(self, path: str) -> tuple[int, int] | None:
        parts = _split_path(path)
        if parts is None:
            return None
        if self._locate is None:
            self._locate = self._json_position if self._kind == "json" else self._yaml_position
        try:
            return self._locate(parts)
        except Exception:  # the file changed since, say: an error without a line rather than none at all
            return None

    def _json_position(self, parts: list[Any]) -> tuple[int, int] | None:
        if not hasattr(self, "_json"):
            self._json = _JsonLocator(self._text)
        offset = self._json.offset(parts)
        if offset is None:
            return None
        text = self._text
        return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)

    def _yaml_position(self, parts: list[Any]) -> tuple[int, int] | None:
        if not hasattr(self, "_root"):
            loader = _YamlLoader(self._text)
            node = None
            try:
                for _ in range(self._number):
                    node = loader.get_node() if loader.check_node() else None
            finally:
                loader.dispose()
            self._root = node
        node = self._root
        for part in parts:  # down to the value, or the deepest node found on the way
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                             None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
            else:
                child = None
            if child is None:
                break
            node = child
        if node is None:
            return None
        return node.start_mark.line + 1, node.start_mark.column + 1


def _location(doc_name: str, path: str | None) -> str:
    """``doc $.path``, with ``:line:column`` after the document's name when
    its file can tell (a YAML or JSON file; not a list of dicts)."""
    if path is None:
        return doc_name
    position = doc_name.position(path) if isinstance(doc_name, Document) else None
    return f"{doc_name}:{position[0]}:{position[1]} {path}" if position else f"{doc_name} {path}"


def open_regular_file(path: str | os.PathLike, name: str) -> Any:
    """``path`` opened for binary reading, only when it is a regular file: a
    FIFO, a device or a socket would block or never end, so it is refused
    before anything is read (opened non-blocking, checked with fstat)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise RegistryError("Expected a file, got a directory", name) from None
    except OSError as exc:
        raise RegistryError(f"Cannot read file: {exc.strerror or type(exc).__name__}", name) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise RegistryError(f"Expected a regular file, got {_file_kind(mode)}", name)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def _read_bytes(path: Path) -> bytes:
    name = str(path)
    with open_regular_file(path, name) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise RegistryError(f"File is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}", name)
            # Read one byte past the limit: a file that grew since fstat()
            # is still refused without reading it all.
            data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise RegistryError(f"Cannot read file: {exc.strerror or type(exc).__name__}", name) from None
    if len(data) > MAX_FILE_BYTES:
        raise RegistryError(f"File is larger than the limit of {MAX_FILE_BYTES:,} bytes", name)
    if not data.strip():
        raise RegistryError("File is empty: expected backend registrations", name)
    return data


def read_file_documents(path: Path) -> list[tuple[str, Any]]:
    """``[(document name, parsed document)]`` for one YAML or JSON file; each
    name is a :class:`Document` that can place an error on a line."""
    path = Path(path)
    name = str(path)
    text = _utf8(_read_bytes(path), name)
    if path.suffix.lower() in _JSON_SUFFIXES:
        return [(Document(name, text, "json"), _json_document(text, name))]
    docs = _yaml_documents(text, name)
    present = [(i, d) for i, d in enumerate(docs, start=1) if d is not None]
    if not present:
        raise RegistryError("File holds no YAML documents", name)
    if len(docs) == 1:
        return [(Document(name, text, "yaml"), present[0][1])]
    return [(Document(f"{name}#{i}", text, "yaml", i), d) for i, d in present]


def _directory_files(root: Path, suffixes: set[str]) -> list[Path]:
    """Files under ``root`` with a known suffix, sorted by path; hidden files
    and directories (``.git``, editor swap files) are skipped, symlinked
    directories are not followed (no loops)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames
                  if not f.startswith(".") and Path(f).suffix.lower() in suffixes]
    return sorted(found)


def _as_path(source: Any) -> Path:
    text = os.fspath(source)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text or "\x00" in text:
        raise RegistryError("Expected a path to a file or directory, got an empty or invalid path",
                            _short(repr(text), 60))
    return Path(text)


def source_documents(source: Any, suffixes: set[str]) -> list[tuple[str, Any]]:
    """``[(document name, document)]``; in a directory, a file that cannot
    be read contributes ``(location, _Problem)`` entries instead, so the
    other files are still checked."""
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, os.PathLike) for s in source):
        # Several paths (``pathlib.Path``; plain strings stay list items, so a
        # string in a list of documents is never echoed back as a file name):
        # one registry from all of them, each one's problems reported.
        docs: list[tuple[str, Any]] = []
        for one in source:
            try:
                docs += source_documents(one, suffixes)
            except RegistryError as exc:
                docs += [(location, _Problem(None, message)) for location, message in exc.errors]
        return docs
    if isinstance(source, (str, os.PathLike)):
        path = _as_path(source)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except (OSError, ValueError):
            is_dir = exists = False
        if is_dir:
            files = _directory_files(path, suffixes)
            if not files:
                raise RegistryError(f"Directory holds no {'/'.join(sorted(suffixes))} files", str(path))
            docs = []
            for file in files:
                try:
                    docs += read_file_documents(file)
                except RegistryError as exc:
                    docs += [(location, _Problem(None, message)) for location, message in exc.errors]
            return docs
        if not exists:
            raise RegistryError("No such file or directory", str(path))
        return read_file_documents(path)
    if isinstance(source, Mapping) or (isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray))):
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
    for doc_name, doc in source_documents(source, _YAML_SUFFIXES | _JSON_SUFFIXES):
        items += split_document(doc_name, doc, list_key=list_key, wrapper_keys=wrapper_keys)
    return items


def split_document(doc_name: str, doc: Any, *, list_key: str, wrapper_keys: Sequence[str] = ()) -> list[Item]:
    """The items of one parsed document (see ``load_documents``); the
    document is never read as a path, whatever it holds."""
    if isinstance(doc, _Problem):
        return [(doc_name, "", doc)]
    if isinstance(doc, Mapping) and list_key in doc:
        entries = doc[list_key]
        items: list[Item] = [(doc_name, "$", _Problem(f"$.{k}" if isinstance(k, str) and k.isidentifier() else "$",
                                                      f"Unknown field `{_short(str(k), 40)}`", strict_only=True))
                             for k in doc if k != list_key]
        if isinstance(entries, (list, tuple)):
            items += [(doc_name, f"$.{list_key}[{i}]", item) for i, item in enumerate(entries)]
        else:
            items.append((doc_name, "$", _Problem(f"$.{list_key}", f"Expected `array`, got `{_literal(entries)}`")))
        return items
    if isinstance(doc, (list, tuple)):
        return [(doc_name, f"$[{i}]", item) for i, item in enumerate(doc)]
    if isinstance(doc, Mapping) and len(doc) == 1 and next(iter(doc)) in wrapper_keys:
        key = next(iter(doc))
        return [(doc_name, f"$.{key}", doc[key])]
    return [(doc_name, "$", doc)]


# --- diagnosing one item ----------------------------------------------------------------

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


def _split_path(path: str) -> list[Any] | None:
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
            out.append(f'["{_short(text, 40)}"]')
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
        return f"{_short(expected, 200)}, got a value (not shown)"
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
    found = "a value (not shown)" if secret else f"`{_literal(value)}`"
    is_number_error = (message.startswith(("Expected `float` ", "Expected `int` ")) and
                       ("=" in message or "<" in message or ">" in message)) or message == "Number out of range"
    if is_number_error and value is not _MISSING:
        expected = _number_expectation(kind, parts) or "a number"
        if isinstance(value, float) and not math.isfinite(value):
            return f"Expected a finite number, got `{_literal(value)}`"
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
        return _short(message, 300)
    if _GOT_TYPE_RE.search(message):
        # "Expected `str`, got `int`": show the value itself where allowed.
        if not secret and not isinstance(value, (Mapping, list, tuple)):
            return _GOT_TYPE_RE.sub(lambda _: f", got {found}", message)
        return message
    if ", got " in message:  # our own parsers' messages already say it
        return _short(message, 300)
    return f"{_short(message, 200)}, got {found}"


def _did_you_mean(field: str, names: list[str]) -> str:
    close = difflib.get_close_matches(field, names, n=1, cutoff=0.75)
    return f"; did you mean `{close[0]}`?" if close else ""


def _validate_item(raw: Any, kind: type[T], strict: bool
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
        parts = _split_path(path_text)
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
            errors.append((path_text, _short(message, 300)))
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
                errors.append((where, f"Unknown field `{_short(field, 40)}`{hint}"))
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


# --- validating many items -----------------------------------------------------------------

def _validate_all(items: list[Item], kind: type[T], strict: bool
                  ) -> tuple[list[tuple[int, Item, T]], list[tuple[int, str, str]], list[tuple[int, Item, T, Any]]]:
    """``([(index, item, value)], [(index, location, message)], partial)``:
    every valid item, every problem tagged with its item's index, and
    ``[(index, item, value, original)]`` for the items that converted only
    once their wrong parts were set aside (``original`` maps a path of the
    value back to the input's)."""
    problems = [i for i, item in enumerate(items) if isinstance(item[2], _Problem)]
    if not problems:
        try:  # the success path: one call for every item
            values = msgspec.convert([raw for _, _, raw in items], list[kind], dec_hook=decode_hook)
            return [(i, item, value) for i, (item, value) in enumerate(zip(items, values))], [], []
        except (msgspec.ValidationError, RecursionError):
            pass
    out: list[tuple[int, Item, T]] = []
    errors: list[tuple[int, str, str]] = []
    partial: list[tuple[int, Item, T, Any]] = []
    for i, item in enumerate(items):
        doc_name, prefix, raw = item
        if isinstance(raw, _Problem):
            if strict or not raw.strict_only:
                errors.append((i, _location(doc_name, raw.path), raw.message))
            continue
        value, found, state = _validate_item(raw, kind, strict)
        errors += [(i, _location(doc_name, f"{prefix}{path[1:]}"), msg) for path, msg in found]
        if value is not None:
            if found:
                partial.append((i, item, value, state.original))
            else:
                out.append((i, item, value))
        if len(errors) >= MAX_ERRORS:
            break
    return out, errors, partial


def _raise(errors: list[tuple[int, str, str]]) -> None:
    if errors:
        errors = sorted(errors, key=lambda e: e[0])  # document order; stable within an item
        shown = [(loc, msg) for _, loc, msg in errors[:MAX_ERRORS]]
        if len(errors) >= MAX_ERRORS:
            shown.append(("<all>", f"Stopped after {MAX_ERRORS} problems"))
        raise RegistryError(shown)


def validate_documents(items: list[Item], kind: type[T], *, strict: bool = True) -> list[tuple[Item, T]]:
    """Validate every item as ``kind``; raise one RegistryError with all problems."""
    out, errors, _ = _validate_all(items, kind, strict)
    _raise(errors)
    return [(item, value) for _, item, value in out]


# --- rules msgspec cannot express ---------------------------------------------------------------

def _inline_secret_message(field: str, url: bool = False) -> str:
    what = f"the password of the URL in `{field}`" if url else f"`{field}`"
    return (f"Inline secret in {what}: expected a reference `${{SECRET:path}}` "
            "(the value is not shown; pass allow_inline_secrets=True to accept it)")


def check_freeform(value: Any, path: str, out: list[tuple[str, str]], *, secrets: bool) -> None:
    """A free-form mapping (metadata, parameters): bounded depth and size,
    no self-reference, and (``secrets``) no inline value under a secret name
    nor a URL with an inline password.

    Iterative, so nesting cannot exhaust the stack; a cycle shows up as depth.
    """
    stack: list[tuple[Any, list[Any], int]] = [(value, [], 0)]
    count = 0
    while stack:
        node, parts, depth = stack.pop()
        if depth >= MAX_DEPTH:
            out.append((path, f"Nesting deeper than {MAX_DEPTH} levels (or a value that contains itself)"))
            return
        if isinstance(node, dict):
            pairs: Any = node.items()
        elif isinstance(node, (list, tuple)):
            pairs = enumerate(node)
        else:
            continue
        count += len(node)
        if count > MAX_FREEFORM_NODES:
            out.append((path, f"Expected at most {MAX_FREEFORM_NODES:,} values in a free-form block"))
            return
        below = []
        for key, child in pairs:
            if secrets and isinstance(key, str) and is_secret_field(key) and is_inline_secret(child):
                out.append((path + format_path(parts + [key])[1:], _inline_secret_message(key)))
            elif secrets and isinstance(child, str) and url_password(child):
                out.append((path + format_path(parts + [key])[1:], _inline_secret_message(str(key), url=True)))
            elif isinstance(child, (dict, list, tuple)):
                below.append((child, parts + [key], depth + 1))
        stack += reversed(below)


def registration_problems(reg: Registration, allow_inline_secrets: bool) -> list[tuple[str, str]]:
    """Rules msgspec cannot express: secrets, free-form bounds, names per
    backend, pool and backoff ordering. Paths are relative to the
    registration (``$...``).

    Runs once per backend on the success path, so each rule first checks
    that its block is present at all.
    """
    problems: list[tuple[str, str]] = []
    for field in ("capabilities", "interfaces", "regions", "compliance"):
        count = len(getattr(reg, field))
        if count > MAX_NAMES_PER_BACKEND:
            problems.append((f"$.{field}", f"Expected at most {MAX_NAMES_PER_BACKEND:,} {field} in one backend, "
                                           f"got {count:,}"))
    conn = reg.connection
    if conn is not None:
        auth = conn.auth
        if auth is not None and not allow_inline_secrets:
            for field in ("password", "token"):
                value = getattr(auth, field, None)
                if is_inline_secret(value):
                    problems.append((f"$.connection.auth.{field}", _inline_secret_message(field)))
        if conn.endpoint is not None and not allow_inline_secrets and url_password(conn.endpoint):
            problems.append(("$.connection.endpoint", _inline_secret_message("endpoint", url=True)))
        if conn.pool is not None:
            _check_pool(conn.pool, "$.connection.pool", problems)
        if conn.retry is not None:
            _check_retry(conn.retry, "$.connection.retry", problems)
    if reg.pool is not None:
        _check_pool(reg.pool, "$.pool", problems)
    if reg.retry is not None:
        _check_retry(reg.retry, "$.retry", problems)
    if reg.metadata:
        check_freeform(reg.metadata, "$.metadata", problems, secrets=not allow_inline_secrets)
    for i, ifc in enumerate(reg.interfaces):
        if type(ifc) is not str and ifc.operations:
            for j, op in enumerate(ifc.operations):
                if op.parameters:
                    # `key: string (required)` declares a parameter, not a secret.
                    check_freeform(op.parameters, f"$.interfaces[{i}].operations[{j}].parameters", problems,
                                   secrets=False)
    return problems


def _check_pool(pool: Any, where: str, problems: list[tuple[str, str]]) -> None:
    if pool.max_connections is not None and pool.min_connections > pool.max_connections:
        problems.append((f"{where}.min_connections",
                         f"Expected `min_connections` <= `max_connections` ({pool.max_connections}), "
                         f"got `{pool.min_connections}`"))


def _check_retry(retry: Any, where: str, problems: list[tuple[str, str]]) -> None:
    if (retry.initial_backoff is not None and retry.max_backoff is not None
            and retry.initial_backoff > retry.max_backoff):
        problems.append((f"{where}.initial_backoff",
                         f"Expected `initial_backoff` <= `max_backoff` ({retry.max_backoff:g}s), "
                         f"got `{retry.initial_backoff:g}s`"))


# --- registrations -----------------------------------------------------------------------------

@contextlib.contextmanager
def gc_paused() -> Any:
    """Pause the cyclic garbage collector while a registry is built.

    Loading allocates hundreds of thousands of containers and nothing of it
    is garbage; each allocation burst would otherwise trigger collections
    that scan it all again (2-3x the load time). Restored on exit, whatever
    happens; nested and concurrent uses only re-enable what they disabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_registrations(source: Any, *, strict: bool = True,
                       allow_inline_secrets: bool = False) -> list[Registration]:
    """Every registration of ``source``, validated; or RegistryError with all problems."""
    with gc_paused():
        return _load_registrations(source, strict, allow_inline_secrets)


def _load_registrations(source: Any, strict: bool, allow_inline_secrets: bool) -> list[Registration]:
    if isinstance(source, Mapping) and "backends" not in source and "backend_id" not in source:
        raise RegistryError("Expected a registration or a mapping with `backends`", "<input> $")
    items = load_documents(source, list_key="backends")
    validated, errors, partial = _validate_all(items, Registration, strict)
    # The registration-level rules run on every item that converted, even
    # only once its wrong parts were set aside, so one pass reports schema
    # problems, secrets and duplicate ids together.
    checked = [(index, item, reg, None) for index, item, reg in validated] + partial
    for index, (doc_name, prefix, _), reg, original in sorted(checked, key=lambda c: c[0]):
        problems = registration_problems(reg, allow_inline_secrets)
        for path, message in problems:
            if original is not None:
                parts = _split_path(path)
                path = format_path(original(parts)) if parts is not None else path
            errors.append((index, _location(doc_name, f"{prefix}{path[1:]}"), message))
        if len(errors) >= MAX_ERRORS:
            break
    regs = [reg for _, _, reg in validated]
    ids = [reg.backend_id for reg in regs]
    if len(set(ids)) != len(ids):
        first_seen: dict[str, tuple[int, str]] = {}
        for (index, (doc_name, prefix, _), _), backend_id in zip(validated, ids):
            here = _location(doc_name, f"{prefix}.backend_id")
            first = first_seen.setdefault(backend_id, (index, here))
            if first[0] != index:
                errors.append((index, here, f"Duplicate backend_id `{_short(backend_id)}`, first defined at {first[1]}"))
    _raise(errors)
    return regs
