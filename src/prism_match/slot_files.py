"""Slot files → validated slot requirements: the one reader of slot input.

Sits between the files a platform team writes and the batch calls
(``match_many``, ``assign``, the CLI's ``match``/``assign``/``explain``):
YAML/JSON documents (a list, ``{slots: [...]}``, the seed's
``slot_requirement:`` wrapper, or a pattern with named ``slots``) go through
the registry loader (safe YAML, every error with file and JSON path);
CSV/NDJSON/Parquet tables are read by polars, one slot per row. The library's
``load_slots`` and the command line read through the same function, so a file
means the same thing to both.

polars is imported only when a table is read: ``import prism_match`` stays
fast for a service that never sees one.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RegistryError
from .loading import MAX_ERRORS, source_documents, split_document, validate_documents
from .schema import Pattern, SlotPerformance, SlotRequirement

if TYPE_CHECKING:
    import polars as pl

__all__ = ["load_slots", "read_slots", "slots_from_frame", "known_slot_columns", "is_slot_table",
           "slot_table_items", "split_list", "is_pattern", "LIST_FIELDS"]

log = logging.getLogger("prism_match")

# Requirement fields that hold lists. In a table they may also be one string:
# a CSV cell separated by ``;``, ``,``, ``|`` or spaces, or a list written out
# as JSON or Python (``["get", "set"]``; Dask turns list columns of pandas
# frames into such strings by default). Names never hold these characters.
LIST_FIELDS = ("capabilities", "interfaces", "regions", "compliance", "backend_types", "health_statuses")
# Bare column names that go into ``performance`` (``min_storage`` is the slot's own).
_PERFORMANCE_FIELDS = frozenset(SlotPerformance.__struct_fields__) - {"min_storage"}
_LIST_SPLIT = re.compile(r"[\s,;|\[\]'\"]+")
_DOCUMENT_SUFFIXES = {".yaml", ".yml", ".json"}
_TABLE_READERS = {".csv": "read_csv", ".ndjson": "read_ndjson", ".jsonl": "read_ndjson", ".parquet": "read_parquet"}


def split_list(text: str) -> list[str]:
    """A list written as one string (``get;set``, ``get, set``, ``["get", "set"]``)."""
    return [part for part in _LIST_SPLIT.split(text) if part]


def _without_nulls(value: Any) -> Any:
    # A struct column gives every row every field, null where a row had none;
    # a null is "not given", never a value, so it is dropped at every depth.
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def _is_known_column(name: str) -> bool:
    if name.startswith("performance."):
        return name.split(".", 1)[1] in SlotPerformance.__struct_fields__
    return name in SlotRequirement.__struct_fields__ or name in _PERFORMANCE_FIELDS


def known_slot_columns(frame: pl.DataFrame, *, where: str = "slots") -> pl.DataFrame:
    """``frame`` without the columns that are no slot field (non-strict
    input: a table that also carries ``team`` or ``ticket``), saying once,
    on the ``prism_match`` logger, which columns were ignored."""
    unknown = [name for name in frame.columns if not _is_known_column(name)]
    if unknown:
        log.warning("%s: ignored %d column(s) that are no slot field: %s", where, len(unknown),
                    ", ".join(f"`{name[:60]}`" for name in unknown[:20]) + (" …" if len(unknown) > 20 else ""))
        frame = frame.drop(unknown)
    return frame


def slots_from_frame(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of a requirements table → slot mappings, one per row.

    Nulls are dropped (at every depth of struct and list columns); list
    fields are list columns, or strings split on ``;``/``,``/``|``/spaces
    (brackets and quotes of a written-out list are dropped);
    performance fields may be a ``performance`` struct column, flat columns
    (``min_write_rps``) or dotted ones (``performance.min_write_rps``).
    """
    import polars as pl

    # Each column's role is settled once, not per cell: its key, whether it
    # goes into ``performance``, whether a string in it is a written-out list,
    # and whether its values can hold nulls inside them (nested ones only).
    columns = []
    for name, dtype in frame.schema.items():
        if name.startswith("performance."):
            key, into_perf = name.split(".", 1)[1], True
        else:
            key, into_perf = name, name in _PERFORMANCE_FIELDS
        split = not into_perf and name in LIST_FIELDS
        clean = dtype.is_nested() or dtype == pl.Object
        columns.append((key, into_perf, split, clean))
    out = []
    # Column by column into Python (polars builds each list in Rust), then
    # zipped: several times faster than iter_rows on nested columns.
    for row in zip(*(frame.get_column(name).to_list() for name in frame.columns)):
        slot: dict[str, Any] = {}
        perf: dict[str, Any] = {}
        for (key, into_perf, split, clean), value in zip(columns, row):
            if value is None:
                continue
            if clean:
                value = _without_nulls(value)
            if into_perf:
                perf[key] = value
            elif split and isinstance(value, str):
                slot[key] = split_list(value)
            elif key == "preferred_region" and isinstance(value, str) and len(split_list(value)) > 1:
                slot[key] = split_list(value)  # a ranked list in one cell (`us-east-1;eu-west-1`)
            else:
                slot[key] = value
        if perf:
            nested = slot.get("performance")
            slot["performance"] = {**nested, **perf} if isinstance(nested, dict) else perf
        out.append(slot)
    return out


def is_slot_table(path: Path) -> bool:
    return path.suffix.lower() in _TABLE_READERS


def slot_table_items(target: Path, *, strict: bool = True) -> list[tuple[str, str, Any]]:
    """Rows of a CSV/NDJSON/Parquet slot table as ``(file, $[i], mapping)``
    items, ready for ``validate_documents``. ``strict=False``: columns that
    are no slot field are dropped (and named once in a warning)."""
    import polars as pl

    reader = _TABLE_READERS[target.suffix.lower()]
    if not target.is_file():
        raise RegistryError("No such file", str(target))
    try:
        # Types are inferred from every row: a column of whole numbers
        # with one fraction far down must not fail half way.
        options = {} if reader == "read_parquet" else {"infer_schema_length": None}
        frame = getattr(pl, reader)(target, **options)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RegistryError(f"Cannot read slot table: {first[:200]}", str(target)) from None
    if not strict:
        frame = known_slot_columns(frame, where=str(target))
    return [(str(target), f"$[{i}]", slot) for i, slot in enumerate(slots_from_frame(frame))]


def is_pattern(doc: Any) -> bool:
    """A pattern document: ``pattern:`` with a mapping of named ``slots``."""
    return isinstance(doc, dict) and "pattern" in doc and isinstance(doc.get("slots"), dict)


def _document_items(path: str | os.PathLike) -> list[tuple[str, str, Any]]:
    """Items of a YAML/JSON slots file or directory, read as the loader reads
    a registry (a directory file that cannot be read is an item reporting
    it). A pattern document is one item; any other is split by
    ``split_document`` (lists, ``slots:``, the ``slot_requirement:``
    wrapper), never read as a path."""
    items: list[tuple[str, str, Any]] = []
    for name, doc in source_documents(path, _DOCUMENT_SUFFIXES):
        if is_pattern(doc):
            items.append((name, "$", doc))
        else:
            items += split_document(name, doc, list_key="slots", wrapper_keys=("slot_requirement",))
    return items


def read_slots(path: str | os.PathLike, *, strict: bool = True) -> list[SlotRequirement]:
    """Every slot requirement of a file or directory, validated, in order.

    YAML/JSON (a file or a directory): a list of slot requirements,
    ``{slots: [...]}``, the seed's ``slot_requirement:`` wrapper, or a
    pattern (``pattern:`` with named ``slots``; each becomes a slot of that
    name). CSV, NDJSON (``.ndjson``/``.jsonl``) and Parquet are tables, one
    slot per row (see :func:`slots_from_frame`); errors name the file and
    the row as ``$[i]``. All problems are raised together; a duplicate slot
    name is an error, and so is a file with no slot at all. ``strict=False``
    ignores unknown fields and columns.
    """
    target = Path(path)
    try:
        items = slot_table_items(target, strict=strict) if is_slot_table(target) else _document_items(target)
    except RegistryError as exc:
        # The loader's wording is a registry's; this file was meant to hold slots.
        raise RegistryError([(loc, msg.replace("expected backend registrations", "expected slot requirements"))
                             for loc, msg in exc.errors]) from None
    errors: list[tuple[str, str]] = []
    slots: list[tuple[str, SlotRequirement]] = []
    for item in items:
        doc_name, prefix, raw = item
        try:
            validated = validate_documents([item], Pattern if is_pattern(raw) else SlotRequirement, strict=strict)
        except RegistryError as exc:
            errors += exc.errors
            if len(errors) >= MAX_ERRORS:  # enough to fix the file; bounded work on garbage
                errors.append((doc_name, f"Stopped after {MAX_ERRORS} problems"))
                break
            continue
        for _, value in validated:
            if isinstance(value, Pattern):
                slots += [(f"{doc_name} {prefix}.slots.{name}", spec.to_slot(name, value))
                          for name, spec in value.slots.items()]
            else:
                slots.append((f"{doc_name} {prefix}", value))
    first: dict[str, str] = {}
    for where, slot in slots:
        if slot.slot_name in first:
            errors.append((f"{where}.slot_name", f"Duplicate slot_name `{slot.slot_name[:60]}`, first defined at "
                                                 f"{first[slot.slot_name]}"))
        else:
            first[slot.slot_name] = where
    if errors:
        raise RegistryError(errors)
    if not slots:
        raise RegistryError("Expected at least one slot requirement, got none", str(path))
    log.info("%s: %d slot requirement(s)", path, len(slots))
    return [slot for _, slot in slots]


def load_slots(path: str | os.PathLike, *, strict: bool = True) -> list[SlotRequirement]:
    """Every slot requirement of a file, validated, in file order (the
    library's name for :func:`read_slots`, which the CLI uses too)."""
    return read_slots(path, strict=strict)
