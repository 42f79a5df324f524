"""Files, documents and dicts → validated Structs, every error collected.

The entry point of loading, in three rooms beside it:

* ``reading.py``: YAML and JSON text → documents, with the alias guard,
  duplicate keys refused, and line/column positions for errors;
* ``field_errors.py``: msgspec's first error → every problem of an item, in the
  error grammar;
* ``cross_field.py``: the rules msgspec cannot express (secrets, free-form bounds,
  names per backend, pool and backoff ordering).

``load_documents`` reads a source (file, directory, list of dicts, mapping)
into raw items with their document names; ``validate_documents`` converts
them into the requested Struct. The success path is one ``msgspec`` call for
all items; only when that fails does the diagnostic path run, item by item,
to report *all* problems with their JSON paths. Nothing is returned unless
everything is valid: the caller compiles only a registry that loaded whole.

Every problem of a call is reported in one pass: the rules also run on an
item that had schema problems, once its wrong parts are set aside. A problem
in a file is located ``file:line:column $.json.path``. Only regular files
are read, none larger than ``MAX_FILE_BYTES``. Nothing but
:class:`RegistryError` leaves loading for bad input, and no error shows the
value of a secret-named field.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from .field_errors import MAX_DEPTH, MAX_ERRORS, literal, short, split_path, validate_item, format_path
from .errors import RegistryError
from .reading import (
    MAX_NODES, Document, json_document, doc_location, decode_utf8, yaml_documents, open_regular_file,
)
from .cross_field import MAX_FREEFORM_NODES, check_freeform, registration_problems
from .schema import Registration, decode_hook

__all__ = ["load_documents", "source_documents", "split_document", "validate_documents", "load_registrations", "read_file_documents",
           "registration_problems", "MAX_DEPTH", "MAX_NODES", "MAX_FILE_BYTES", "MAX_ERRORS",
           "MAX_FREEFORM_NODES", "gc_paused", "check_freeform", "format_path", "open_regular_file", "Document"]

MAX_FILE_BYTES = 256 * 1024 * 1024
_YAML_SUFFIXES = {".yaml", ".yml"}
_JSON_SUFFIXES = {".json"}

T = TypeVar("T")

# A raw item: (document name, JSON-path prefix of the item, the item).
Item = tuple[str, str, Any]


class Problem:
    """A problem found while reading or splitting documents (not an item);
    ``path`` is None when the document name alone locates it (a file)."""

    __slots__ = ("path", "message", "strict_only")

    def __init__(self, path: str | None, message: str, strict_only: bool = False):
        self.path, self.message, self.strict_only = path, message, strict_only


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
    text = decode_utf8(_read_bytes(path), name)
    if path.suffix.lower() in _JSON_SUFFIXES:
        return [(Document(name, text, "json"), json_document(text, name))]
    docs = yaml_documents(text, name)
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
                            short(repr(text), 60))
    return Path(text)


def source_documents(source: Any, suffixes: set[str]) -> list[tuple[str, Any]]:
    """``[(document name, document)]``; in a directory, a file that cannot
    be read contributes ``(location, Problem)`` entries instead, so the
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
                docs += [(location, Problem(None, message)) for location, message in exc.errors]
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
                    docs += [(location, Problem(None, message)) for location, message in exc.errors]
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
    if isinstance(doc, Problem):
        return [(doc_name, "", doc)]
    if isinstance(doc, Mapping) and list_key in doc:
        entries = doc[list_key]
        items: list[Item] = [(doc_name, "$", Problem(f"$.{k}" if isinstance(k, str) and k.isidentifier() else "$",
                                                      f"Unknown field `{short(str(k), 40)}`", strict_only=True))
                             for k in doc if k != list_key]
        if isinstance(entries, (list, tuple)):
            items += [(doc_name, f"$.{list_key}[{i}]", item) for i, item in enumerate(entries)]
        else:
            items.append((doc_name, "$", Problem(f"$.{list_key}", f"Expected `array`, got `{literal(entries)}`")))
        return items
    if isinstance(doc, (list, tuple)):
        return [(doc_name, f"$[{i}]", item) for i, item in enumerate(doc)]
    if isinstance(doc, Mapping) and len(doc) == 1 and next(iter(doc)) in wrapper_keys:
        key = next(iter(doc))
        return [(doc_name, f"$.{key}", doc[key])]
    return [(doc_name, "$", doc)]


# --- validating many items -----------------------------------------------------------------

def _validate_all(items: list[Item], kind: type[T], strict: bool
                  ) -> tuple[list[tuple[int, Item, T]], list[tuple[int, str, str]], list[tuple[int, Item, T, Any]]]:
    """``([(index, item, value)], [(index, location, message)], partial)``:
    every valid item, every problem tagged with its item's index, and
    ``[(index, item, value, original)]`` for the items that converted only
    once their wrong parts were set aside (``original`` maps a path of the
    value back to the input's)."""
    problems = [i for i, item in enumerate(items) if isinstance(item[2], Problem)]
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
        if isinstance(raw, Problem):
            if strict or not raw.strict_only:
                errors.append((i, doc_location(doc_name, raw.path), raw.message))
            continue
        value, found, state = validate_item(raw, kind, strict)
        errors += [(i, doc_location(doc_name, f"{prefix}{path[1:]}"), msg) for path, msg in found]
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
                parts = split_path(path)
                path = format_path(original(parts)) if parts is not None else path
            errors.append((index, doc_location(doc_name, f"{prefix}{path[1:]}"), message))
        if len(errors) >= MAX_ERRORS:
            break
    regs = [reg for _, _, reg in validated]
    ids = [reg.backend_id for reg in regs]
    if len(set(ids)) != len(ids):
        first_seen: dict[str, tuple[int, str]] = {}
        for (index, (doc_name, prefix, _), _), backend_id in zip(validated, ids):
            here = doc_location(doc_name, f"{prefix}.backend_id")
            first = first_seen.setdefault(backend_id, (index, here))
            if first[0] != index:
                errors.append((index, here, f"Duplicate backend_id `{short(backend_id)}`, first defined at {first[1]}"))
    _raise(errors)
    return regs
