"""YAML and JSON text → Python documents, safely; where a path stands in a file.

Untrusted input fails fast. Only regular files are read (``open_regular_file``:
a FIFO or a device is refused before it is opened for reading, so nothing
blocks). YAML is parsed and composed by libyaml through PyYAML's C safe
loader (which caps nesting at 1,000), then built into Python objects by this
module's own iterative constructor, which measures every node's expanded
size on the way, so alias expansion past ``MAX_NODES``, a recursive alias or
nesting past ``MAX_DEPTH`` is refused before anything downstream walks the
result (the alias guard); duplicate keys are refused; every tag either
builds its value or is a located error that never quotes the value. JSON
objects that repeat a key are refused where they repeat it. A document's
name is a :class:`Document` that can tell the line and column of a JSON path
in its file, worked out only when an error is reported (YAML composed again,
JSON walked to the path).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from typing import Any

import msgspec
import yaml

from .field_errors import MAX_DEPTH, short, split_path
from .errors import RegistryError
from .redact import printable

__all__ = ["MAX_NODES", "Document", "open_regular_file"]

MAX_NODES = 2_000_000          # expanded YAML nodes per document, aliases counted at full size

try:  # the C loader: ~10x faster; the pure-Python one is the fallback
    _BaseYamlLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _BaseYamlLoader = yaml.SafeLoader

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
    return yaml.constructor.ConstructorError(None, None, f"found duplicate key `{short(str(key.value), 40)}`",
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
        reason = f": {short(reason, 80)}"
    tag = node.tag[len(_TAG):] if node.tag.startswith(_TAG) else node.tag
    return RegistryError(f"Invalid YAML: not a valid {short(tag, 40)}{reason}{_at(node.start_mark)}", name)


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
    return RegistryError(f"Invalid YAML: {short(str(problem), 120)}{where}", name)


def yaml_documents(text: str, name: str) -> list[Any]:
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


def decode_utf8(data: bytes, name: str) -> str:
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
    return RegistryError(f"Invalid JSON: {short(message, 160)}", name)


def json_document(text: str, name: str) -> Any:
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
        raise RegistryError(f"Invalid JSON: found duplicate key `{short(printable(key), 40)}`{where}", name)
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
        parts = split_path(path)
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


def doc_location(doc_name: str, path: str | None) -> str:
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
