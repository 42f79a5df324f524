"""The ``prism-match`` command line (also ``python -m prism_match``).

Files in, answers out: a registry (YAML/JSON file or directory, or a
compiled snapshot) and slot requirements are loaded and validated through
the library (loading.py, registry.py), each command calls one public method
(``match``, ``explain``, ``query``, ``assign``, ``estimate_cost``, ``save``)
and prints the result as a table (rich; colour only on a terminal) or as
JSON/NDJSON (orjson) or CSV/Parquet (polars).

Exit status: 0 success; 1 invalid input (registry, slots, query, workload,
command line) or a file that cannot be read or written; 2 a required slot has
no eligible backend (``match``, ``assign``). Problems are printed on stderr as
``error: <text>`` with their locations, never as a traceback; secrets are
never printed (the loader never echoes them and nothing here prints
connection data).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl
from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from . import __version__
from .vocabulary import is_versioned
from .batch import is_slot_table, slot_table_items, split_list
from .cost import COST_TERMS, WORKLOAD_KEYS, estimate_cost, validate_workload
from .errors import RegistryError
from .loading import MAX_ERRORS, source_documents, load_documents, split_document, validate_documents
from .registry import Registry, load_registry
from .results import Diagnosis, Match
from .units import format_rate, format_size
from .schema import BACKEND_TYPES, HEALTH_STATUSES, Pattern, Query, SlotRequirement
from .snapshot import load_snapshot
from .output import SafeConsole, write_bytes, write_text

__all__ = ["main", "read_slots", "EXIT_OK", "EXIT_INVALID", "EXIT_UNBOUND"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNBOUND = 2

PROGRESS_MIN_SLOTS = 200  # shorter batches finish before a bar is worth drawing
DETAIL_MAX_SLOTS = 50     # per-slot blocks with reasons up to this; a compact table beyond
RICH_MAX_ROWS = 200       # rich measures every cell (~1.5 ms a row): larger tables are laid out plainly
_REGISTRY_SUFFIXES = {".yaml", ".yml", ".json"}

EPILOG = """\
exit status: 0 ok; 1 invalid input or unreadable file; 2 a required slot has no eligible backend.
examples:
  prism-match validate data/registry.yaml
  prism-match match data/registry.yaml data/slots.yaml -k 3
  prism-match query data/registry.yaml --interface PubSubInterface --region us-east-1
  prism-match cost data/registry.yaml --writes 1e6 --reads 5e6 --storage-gb 2500
"""


class UsageError(Exception):
    """A command line argparse rejected; reported with exit status 1, not
    argparse's 2, so that 2 always means "a required slot is unbound"."""

    def __init__(self, message: str, usage: str = ""):
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", self.format_usage())


# --- reading inputs -----------------------------------------------------------------------

def open_registry(path: str) -> Registry:
    """A registry from YAML/JSON (file or directory), or a compiled snapshot:
    any other regular file."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() not in _REGISTRY_SUFFIXES:
        return load_snapshot(path)
    return load_registry(path)


def _is_pattern(doc: Any) -> bool:
    return isinstance(doc, dict) and "pattern" in doc and isinstance(doc.get("slots"), dict)


def _slot_document_items(path: str) -> list[tuple[str, str, Any]]:
    """Items of a YAML/JSON slots file or directory, read as the loader reads
    a registry (a directory file that cannot be read is an item reporting
    it). A pattern document (``pattern:`` with a mapping of named ``slots``)
    is one item; any other is split by ``split_document`` (lists, ``slots:``,
    the ``slot_requirement:`` wrapper), never read as a path."""
    items: list[tuple[str, str, Any]] = []
    for name, doc in source_documents(path, _REGISTRY_SUFFIXES):
        if _is_pattern(doc):
            items.append((name, "$", doc))
        else:
            items += split_document(name, doc, list_key="slots", wrapper_keys=("slot_requirement",))
    return items


def read_slots(path: str) -> list[SlotRequirement]:
    """Every slot requirement of a file or directory, validated, in order.

    YAML/JSON: a list of slot requirements, ``{slots: [...]}``, the seed's
    ``slot_requirement:`` wrapper, or a pattern (``pattern:`` with named
    ``slots``). CSV/Parquet/NDJSON: one slot per row. All problems are raised
    together; duplicate slot names are an error.
    """
    p = Path(path)
    if p.is_file() and is_slot_table(p):
        items = slot_table_items(p)
    else:
        items = _slot_document_items(path)
    errors: list[tuple[str, str]] = []
    slots: list[tuple[str, SlotRequirement]] = []
    for item in items:
        doc_name, prefix, raw = item
        try:
            validated = validate_documents([item], Pattern if _is_pattern(raw) else SlotRequirement)
        except RegistryError as exc:
            errors += exc.errors
            if len(errors) >= MAX_ERRORS:  # enough to fix the file; bounded work on garbage
                errors.append((doc_name, f"Stopped after {MAX_ERRORS} problems"))
                break
            continue
        for _, value in validated:
            if isinstance(value, Pattern):
                slots += [(f"{doc_name} {prefix}.slots.{name}", spec.to_slot(name))
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
        raise RegistryError("No slot requirements found", str(path))
    return [slot for _, slot in slots]


# --- output -------------------------------------------------------------------------------

def _console(file: IO[str] | None = None, *, stderr: bool = False) -> Console:
    # highlight=False: rich would otherwise colour numbers and quoted names in
    # backend ids; markup is never used for user data (Text objects only).
    return SafeConsole(file=file, stderr=stderr, highlight=False, soft_wrap=False)


@contextmanager
def _rich_target(output: str | None, *, wide: bool = False) -> Iterator[Console]:
    """A console for table output: straight to a terminal (with colour), else
    rendered plain into a buffer and written with trailing padding removed,
    so files and pipes hold clean text. ``wide``: a file or pipe gets lines
    as long as the table needs (numbers are never cut to fit 80 columns)."""
    if output is None and sys.stdout.isatty():
        yield _console(sys.stdout)
        return
    buffer = io.StringIO()
    console = _console(buffer)
    if wide:
        console.width = max(console.width, 200)
    yield console
    write_text("\n".join(line.rstrip() for line in buffer.getvalue().split("\n")), output)


def _write_bytes(data: bytes, output: str | None) -> None:
    write_text(data.decode("utf-8"), output)


def _write_json(value: Any, output: str | None) -> None:
    _write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE), output)


def _write_ndjson(values: Iterable[Any], output: str | None) -> None:
    _write_bytes(b"".join(orjson.dumps(v, option=orjson.OPT_APPEND_NEWLINE) for v in values), output)


def _write_frame(frame: pl.DataFrame, fmt: str, output: str | None) -> None:
    if fmt == "csv":
        write_text(frame.write_csv(), output)
    else:  # parquet: binary, so a file is required (checked with the arguments)
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        write_bytes(buffer.getvalue(), output)


def _check_output(args: argparse.Namespace) -> None:
    if getattr(args, "format", None) == "parquet" and args.output is None:
        raise UsageError("`--format parquet` writes a binary file: give `-o FILE`")


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for long batches, only when stderr is a terminal."""
    if total < PROGRESS_MIN_SLOTS or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _money(value: float | None) -> str:
    if value is None:
        return "—"
    return "<$0.01" if 0 < value < 0.005 else f"${value:,.2f}"


def _quantity(value: float) -> str:
    return f"{int(value):,}" if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


def _counts(counter: Counter, order: Sequence[str] | None = None) -> str:
    keys = [k for k in order if k in counter] if order is not None else sorted(counter)
    return "  ".join(f"{k}={counter[k]}" for k in keys) or "—"


@dataclass(frozen=True)
class Column:
    name: str
    right: bool = False
    style: str | None = None


def _print_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
                 title: str | None = None) -> None:
    """A table of text cells: rich's when small, plain aligned text when large."""
    if len(rows) <= RICH_MAX_ROWS:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title_justify="left",
                      title_style="bold")
        for col in columns:
            # fold, never "…": a cut backend id is a wrong backend id.
            table.add_column(col.name, justify="right" if col.right else "left", style=col.style, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))  # Text: names are never read as markup
        console.print(table)
        return
    widths = [max(len(col.name), *(len(row[i]) for row in rows)) for i, col in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "   ".join(cell.rjust(w) if col.right else cell.ljust(w)
                          for cell, w, col in zip(cells, widths, columns)).rstrip()

    lines = [title] if title else []
    lines += [line([col.name for col in columns]), "─" * (sum(widths) + 3 * (len(columns) - 1))]
    lines += [line(row) for row in rows]
    console.file.write("\n".join(lines) + "\n")


def _diagnosis_renderable(diag: Diagnosis) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", style="bold")
    grid.add_column(style="magenta", no_wrap=True)
    grid.add_column()
    for code, count in sorted(diag.rejected.items(), key=lambda kv: -kv[1]):
        grid.add_row(str(count), code, Text(diag.details.get(code, "")))
    for hint in diag.hints:
        grid.add_row("", Text("hint", style="yellow"), Text(hint))
    return grid


def _diagnosis_block(diag: Diagnosis) -> Group:
    head = Text(f"{diag.eligible}/{diag.total} backends eligible", style="bold")
    return Group(head, Padding(_diagnosis_renderable(diag), (0, 0, 0, 2), expand=False))


# --- match ----------------------------------------------------------------------------------

@dataclass
class SlotOutcome:
    """One slot's answer: its matches (best first) and, when asked for or when
    nothing matched, the diagnosis."""

    slot: SlotRequirement
    matches: list[Match]
    diagnosis: Diagnosis | None

    @property
    def status(self) -> str:
        return "bound" if self.matches else "unbound"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slot_name": self.slot.slot_name, "optional": self.slot.optional, "status": self.status,
            "matches": [{"rank": rank, **m.as_dict(reasons=True)} for rank, m in enumerate(self.matches, 1)],
        }
        if self.diagnosis is not None:
            out["diagnosis"] = self.diagnosis.as_dict()
        return out


def match_slots(registry: Registry, slots: Sequence[SlotRequirement], k: int,
                explain: bool) -> list[SlotOutcome]:
    outcomes = []
    with _progress(len(slots), "matching") as advance:
        for slot in slots:
            prepared = registry.prepare(slot)
            matches = registry.match(prepared, k)
            diagnosis = registry.explain(prepared) if explain or not matches else None
            outcomes.append(SlotOutcome(slot, matches, diagnosis))
            advance()
    return outcomes


def _reasons_text(match: Match) -> str:
    return " | ".join(f"{r.type}: {r.explanation}" for r in match.reasons)


def _outcome_rows(outcomes: Sequence[SlotOutcome]) -> pl.DataFrame:
    """Flat rows for CSV/Parquet: one per (slot, rank); an unbound slot is one
    row with null backend."""
    rows: dict[str, list[Any]] = {c: [] for c in ("slot_name", "optional", "status", "rank", "backend_id", "score",
                                                  "performance", "cost", "availability", "region", "reasons",
                                                  "diagnosis")}

    def add(o: SlotOutcome, rank: int | None, m: Match | None) -> None:
        rows["slot_name"].append(o.slot.slot_name)
        rows["optional"].append(o.slot.optional)
        rows["status"].append(o.status)
        rows["rank"].append(rank)
        rows["backend_id"].append(m.backend_id if m else None)
        for name in ("score", "performance", "cost", "availability", "region"):
            rows[name].append(getattr(m, name) if m else None)
        rows["reasons"].append(_reasons_text(m) if m else None)
        rows["diagnosis"].append(str(o.diagnosis) if o.diagnosis is not None else None)

    for o in outcomes:
        if o.matches:
            for rank, m in enumerate(o.matches, 1):
                add(o, rank, m)
        else:
            add(o, None, None)
    schema = {"slot_name": pl.String, "optional": pl.Boolean, "status": pl.String, "rank": pl.Int64,
              "backend_id": pl.String, "score": pl.Float64, "performance": pl.Float64, "cost": pl.Float64,
              "availability": pl.Float64, "region": pl.Float64, "reasons": pl.String, "diagnosis": pl.String}
    return pl.DataFrame(rows, schema=schema)


def _slot_header(slot: SlotRequirement, matches: list[Match]) -> Text:
    head = Text(slot.slot_name, style="bold")
    head.append("  ")
    head.append("optional" if slot.optional else "required", style="dim")
    head.append("  ")
    if matches:
        head.append("→ ", style="green")
        head.append(matches[0].backend_id, style="bold green")
        head.append(f"  score {matches[0].score:.4f}")
    elif slot.optional:
        head.append("unbound (optional: the pattern runs without it)", style="yellow")
    else:
        head.append("UNBOUND: no eligible backend", style="bold red")
    return head


_SCORE_COLUMNS = (Column("score", right=True), Column("perf", right=True, style="dim"),
                  Column("cost", right=True, style="dim"), Column("avail", right=True, style="dim"),
                  Column("region", right=True, style="dim"))


def _score_cells(m: Match) -> list[str]:
    return [f"{m.score:.4f}", f"{m.performance:.2f}", f"{m.cost:.4f}", f"{m.availability:.4f}",
            "yes" if m.region else "no"]


def _reasons_grid(match: Match) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column()
    for reason in match.reasons:
        grid.add_row(reason.type, Text(reason.explanation))
    return grid


def _render_outcomes(console: Console, outcomes: Sequence[SlotOutcome]) -> None:
    """Per slot: a header naming the choice, the ranked backends with their
    score components, and the chosen backend's reasons (or the diagnosis)."""
    for o in outcomes:
        console.print(_slot_header(o.slot, o.matches))
        body: list[Any] = []
        if o.matches:
            table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
            for col in (Column("#", right=True), Column("backend"), *_SCORE_COLUMNS):
                table.add_column(col.name, justify="right" if col.right else "left", style=col.style)
            for rank, m in enumerate(o.matches, 1):
                table.add_row(str(rank), Text(m.backend_id, style="bold" if rank == 1 else ""), *_score_cells(m))
            why = Text("why ", style="dim")
            why.append(o.matches[0].backend_id, style="dim bold")
            body += [table, why, Padding(_reasons_grid(o.matches[0]), (0, 0, 0, 2))]
        if o.diagnosis is not None:
            body.append(_diagnosis_block(o.diagnosis))
        console.print(Padding(Group(*body), (0, 0, 1, 2), expand=False))
    _print_match_summary(console, outcomes)


def _render_outcomes_compact(console: Console, outcomes: Sequence[SlotOutcome]) -> None:
    """Many slots: one table row per (slot, rank), then the diagnoses."""
    rows = []
    for o in outcomes:
        need = "optional" if o.slot.optional else "required"
        if o.matches:
            rows += [[o.slot.slot_name, need, str(rank), m.backend_id, *_score_cells(m)]
                     for rank, m in enumerate(o.matches, 1)]
        else:
            rows.append([o.slot.slot_name, need, "—", "unbound", *[""] * len(_SCORE_COLUMNS)])
    _print_table(console, (Column("slot"), Column("need", style="dim"), Column("#", right=True),
                           Column("backend"), *_SCORE_COLUMNS), rows)
    explained = [o for o in outcomes if o.diagnosis is not None]
    if explained:
        console.file.write("\n" + "\n".join(f"{o.slot.slot_name}: {o.diagnosis}" for o in explained) + "\n")
    console.file.write(f"\n(reasons are shown for up to {DETAIL_MAX_SLOTS} slots; "
                       "--format json, ndjson or csv has them for every slot)\n")
    _print_match_summary(console, outcomes)


def _tally(outcomes: Sequence[SlotOutcome]) -> tuple[int, int, int]:
    """``(bound, unbound optional, unbound required)`` slot counts."""
    bound = sum(1 for o in outcomes if o.matches)
    optional = sum(1 for o in outcomes if not o.matches and o.slot.optional)
    return bound, optional, len(outcomes) - bound - optional


def _print_match_summary(console: Console, outcomes: Sequence[SlotOutcome]) -> None:
    bound, optional, required = _tally(outcomes)
    summary = Text(f"{_plural(len(outcomes), 'slot')}: {bound} bound")
    if optional:
        summary.append(f", {optional} optional unbound", style="yellow")
    summary.append(f", {required} required unbound", style="bold red" if required else "")
    console.print(summary)


def _unbound_required(names: list[str]) -> int:
    shown = ", ".join(f"`{n}`" for n in names[:10]) + (" …" if len(names) > 10 else "")
    print(f"error: {len(names)} required slot(s) with no eligible backend: {shown}", file=sys.stderr)
    return EXIT_UNBOUND


def cmd_match(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UsageError(f"Expected `-k` >= 1, got `{args.k}`")
    _check_output(args)
    registry = open_registry(args.registry)
    slots = read_slots(args.slots)
    outcomes = match_slots(registry, slots, args.k, args.explain)
    fmt = args.format
    if fmt == "table":
        with _rich_target(args.output, wide=len(outcomes) > DETAIL_MAX_SLOTS) as console:
            if len(outcomes) <= DETAIL_MAX_SLOTS:
                _render_outcomes(console, outcomes)
            else:
                _render_outcomes_compact(console, outcomes)
    elif fmt == "json":
        bound, optional, required = _tally(outcomes)
        _write_json({"slots": [o.as_dict() for o in outcomes],
                     "summary": {"slots": len(outcomes), "bound": bound, "unbound_optional": optional,
                                 "unbound_required": required}}, args.output)
    elif fmt == "ndjson":
        _write_ndjson((o.as_dict() for o in outcomes), args.output)
    else:
        _write_frame(_outcome_rows(outcomes), fmt, args.output)
    missing = [o.slot.slot_name for o in outcomes if not o.matches and not o.slot.optional]
    return _unbound_required(missing) if missing else EXIT_OK


# --- explain --------------------------------------------------------------------------------

def cmd_explain(args: argparse.Namespace) -> int:
    registry = open_registry(args.registry)
    slots = read_slots(args.slots)
    diagnoses = []
    with _progress(len(slots), "explaining") as advance:
        for slot in slots:
            diagnoses.append((slot, registry.explain(slot)))
            advance()
    if args.format == "table":
        with _rich_target(args.output) as console:
            if len(diagnoses) > DETAIL_MAX_SLOTS:
                console.file.write("".join(f"{slot.slot_name}  {'optional' if slot.optional else 'required'}  "
                                           f"{diag}\n" for slot, diag in diagnoses))
                return EXIT_OK
            for slot, diag in diagnoses:
                head = Text(slot.slot_name, style="bold")
                head.append("  optional" if slot.optional else "  required", style="dim")
                console.print(head)
                console.print(Padding(_diagnosis_block(diag), (0, 0, 1, 2), expand=False))
    elif args.format == "json":
        _write_json([{**d.as_dict(), "optional": s.optional} for s, d in diagnoses], args.output)
    else:
        _write_ndjson(({**d.as_dict(), "optional": s.optional} for s, d in diagnoses), args.output)
    return EXIT_OK


# --- query ----------------------------------------------------------------------------------

def _query_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for flag, key in (("capability", "required_capabilities"), ("interface", "required_interfaces"),
                      ("region", "regions"), ("health", "health_statuses"), ("type", "backend_types"),
                      ("compliance", "compliance")):
        values = getattr(args, flag)
        if values:
            query[key] = [v for value in values for v in split_list(value)]
    capacity = {key: getattr(args, key) for key in ("min_write_rps", "min_read_rps", "min_storage")
                if getattr(args, key) is not None}
    if capacity:
        query["min_capacity"] = capacity
    for key in ("preferred_region", "consistency", "max_latency_p99"):
        if getattr(args, key) is not None:
            query[key] = getattr(args, key)
    return query


def _read_query(path: str) -> Query:
    """The seed's query document: ``query:`` (its ``response:`` sibling, the
    page's illustration, is ignored) or the query keys at the top level."""
    items = load_documents(path, list_key="queries")
    if len(items) != 1:
        raise RegistryError(f"Expected one query document, found {len(items)}", str(path))
    doc_name, prefix, raw = items[0]
    if isinstance(raw, dict) and isinstance(raw.get("query"), dict):
        extra = [k for k in raw if k not in ("query", "response")]
        if extra:
            raise RegistryError(f"Unknown field `{str(extra[0])[:60]}`", f"{doc_name} {prefix}")
        item = (doc_name, f"{prefix}.query", raw["query"])
    else:
        item = (doc_name, prefix, raw)
    [(_, query)] = validate_documents([item], Query)
    return query


def cmd_query(args: argparse.Namespace) -> int:
    _check_output(args)
    flags = _query_from_flags(args)
    if args.file is not None and flags:
        raise UsageError("Give either `--file` or query flags, not both")
    registry = open_registry(args.registry)
    if args.file is not None:
        query = _read_query(args.file)
    else:
        [(_, query)] = validate_documents([("command line", "$", flags)], Query)
    prepared = registry.prepare(query)
    result = registry.query(prepared)
    diagnosis = registry.explain(prepared) if args.explain or not result.backends else None
    if args.format in ("json", "csv", "parquet"):
        seed_shape = [{"backend_id": m.backend_id, "score": m.score, "reasons": [r.type for r in m.reasons]}
                      for m in result.backends]
    if args.format == "table":
        with _rich_target(args.output, wide=True) as console:
            if result.backends:
                _print_table(console, (Column("#", right=True), Column("backend"), *_SCORE_COLUMNS),
                             [[str(rank), m.backend_id, *_score_cells(m)]
                              for rank, m in enumerate(result.backends, 1)])
            console.print(Text(f"total_count: {result.total_count}", style="bold"))
            if diagnosis is not None:
                console.print(_diagnosis_block(diagnosis))
    elif args.format == "json":
        out: dict[str, Any] = {"backends": seed_shape, "total_count": result.total_count}
        if args.explain:
            out["diagnosis"] = diagnosis.as_dict()
        _write_json(out, args.output)
    elif args.format == "ndjson":
        _write_ndjson(({"rank": rank, **m.as_dict(reasons=True)} for rank, m in enumerate(result.backends, 1)),
                      args.output)
    else:
        frame = pl.DataFrame(
            {"rank": list(range(1, len(result.backends) + 1)),
             "backend_id": [m.backend_id for m in result.backends],
             **{name: [getattr(m, name) for m in result.backends]
                for name in ("score", "performance", "cost", "availability", "region")},
             "reasons": [", ".join(row["reasons"]) for row in seed_shape]},
            schema={"rank": pl.Int64, "backend_id": pl.String, "score": pl.Float64, "performance": pl.Float64,
                    "cost": pl.Float64, "availability": pl.Float64, "region": pl.Float64, "reasons": pl.String})
        _write_frame(frame, args.format, args.output)
    return EXIT_OK


# --- validate -------------------------------------------------------------------------------

def _load_many(paths: Sequence[str]) -> Registry:
    """One registry from several files (``load_registry`` takes a list of
    paths): every file's problems and ids duplicated across files, together."""
    if len(paths) == 1:
        return open_registry(paths[0])
    return load_registry([Path(p) for p in paths])


def registry_summary(registry: Registry) -> dict[str, Any]:
    """Counts an operator checks after editing a registry."""
    regs = list(registry)
    tokens = registry.columns.features.tokens
    vocabulary = {
        "capabilities": sum(1 for t in tokens if t.startswith("c:") and not is_versioned(t)),
        "capability_versions": sum(1 for t in tokens if t.startswith("c:") and is_versioned(t)),
        "interfaces": sum(1 for t in tokens if t.startswith("i:") and not is_versioned(t)),
        "interface_versions": sum(1 for t in tokens if t.startswith("i:") and is_versioned(t)),
        "regions": len(registry.columns.regions),
        "compliance": len(registry.columns.compliance),
    }
    # Types and health from the compiled columns: a snapshot's health is the
    # live status it was saved with, not the document's.
    by_type = Counter(BACKEND_TYPES[code] for code in registry.columns.backend_type.tolist())
    by_health = Counter(HEALTH_STATUSES[code] for code in registry.columns.health.tolist())
    by_region = Counter(region for r in regs for region in r.regions)
    no_cost = sorted(r.backend_id for r in regs
                     if r.cost is None or all(getattr(r.cost, f) is None for f in
                                              ("cost_per_1k_writes", "cost_per_1k_reads", "cost_per_gb_month",
                                               "cost_per_connection_hour")))
    no_health = sorted(r.backend_id for r in regs if r.health is None)
    return {
        "valid": True, "backends": len(regs),
        "by_type": {t: by_type[t] for t in BACKEND_TYPES if t in by_type},
        "by_region": dict(sorted(by_region.items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_health": {s: by_health[s] for s in HEALTH_STATUSES if s in by_health},
        "vocabulary": vocabulary,
        "without_cost": no_cost, "without_health": no_health,
    }


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        registry = _load_many(args.registry)
    except RegistryError as exc:
        if args.format == "json":
            _write_json({"valid": False, "errors": [{"location": loc, "message": msg} for loc, msg in exc.errors]},
                        None)
            return EXIT_INVALID
        raise
    summary = registry_summary(registry)
    if args.format == "json":
        _write_json({"sources": list(args.registry), **summary}, None)
        return EXIT_OK
    with _rich_target(None) as console:
        _render_summary(console, args.registry, summary)
    return EXIT_OK


def _render_summary(console: Console, sources: Sequence[str], summary: dict[str, Any]) -> None:
    head = Text(", ".join(sources), style="bold")
    head.append(f": {summary['backends']} backends, valid", style="green")
    console.print(head, soft_wrap=True)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column()
    v = summary["vocabulary"]
    grid.add_row("types", _counts(Counter(summary["by_type"]), BACKEND_TYPES))
    grid.add_row("regions", "  ".join(f"{k}={n}" for k, n in summary["by_region"].items()) or "—")
    grid.add_row("health", _counts(Counter(summary["by_health"]), HEALTH_STATUSES))
    grid.add_row("vocabulary", f"{v['capabilities']} capabilities, {v['interfaces']} interfaces, "
                               f"{v['regions']} regions, {v['compliance']} compliance tags")
    grid.add_row("no cost data", Text(", ".join(summary["without_cost"]) or "—"))
    grid.add_row("no health data", Text(", ".join(summary["without_health"]) or "—"))
    console.print(Padding(grid, (0, 0, 0, 2), expand=False))


# --- cost -----------------------------------------------------------------------------------

# The `cost` options, in --help order: (workload key = dest, flag, default, metavar, help).
_COST_OPTIONS: tuple[tuple[str, str, float, str, str | None], ...] = (
    ("writes", "--writes", 0.0, "N", "write operations per month"),
    ("reads", "--reads", 0.0, "N", "read operations per month"),
    ("storage_gb", "--storage-gb", 0.0, "GB", "GB stored"),
    ("connections", "--connections", 0.0, "N", "concurrent connections"),
    ("hours", "--hours", 720.0, "H", "hours the connections are held (default: 720, a 30-day month)"),
    ("transfer_gb_intra_region", "--transfer-intra-gb", 0.0, "GB", None),
    ("transfer_gb_inter_region", "--transfer-inter-gb", 0.0, "GB", None),
    ("transfer_gb_internet", "--transfer-internet-gb", 0.0, "GB", None),
)
_COST_FLAGS = {key: flag for key, flag, *_ in _COST_OPTIONS}


def cmd_cost(args: argparse.Namespace) -> int:
    _check_output(args)
    workload = {key: getattr(args, key) for key in WORKLOAD_KEYS}
    try:
        validate_workload(workload)
    except RegistryError as exc:
        # Name the flag the user typed, not the mapping key.
        raise RegistryError([(_COST_FLAGS.get(loc.rsplit(".", 1)[-1], loc), msg) for loc, msg in exc.errors]) \
            from None
    registry = open_registry(args.registry)
    table = estimate_cost(registry, workload)
    if args.format == "table":
        used = [term for term in COST_TERMS if table.get_column(term).fill_null(1.0).abs().sum() > 0]
        with _rich_target(args.output, wide=True) as console:
            shown = ", ".join(f"{_COST_FLAGS[k].lstrip('-')} {_quantity(workload[k])}" for k in WORKLOAD_KEYS
                              if workload[k] and (k != "hours" or workload["connections"]))
            console.print(Text(f"monthly cost for: {shown or 'an empty workload'}", style="bold"))
            columns = [Column("backend"),
                       *(Column(term.replace("transfer_", "xfer ").replace("_region", ""), right=True, style="dim")
                         for term in used),
                       Column("total", right=True, style="bold")]
            _print_table(console, columns, [[row["backend_id"], *(_money(row[t]) for t in used), _money(row["total"])]
                                            for row in table.iter_rows(named=True)])
            unknown = table.get_column("total").null_count()
            if unknown:
                console.print(Text(f"{unknown} backend(s) declare no price for a term this workload uses: "
                                   "total unknown (—)", style="yellow"))
    elif args.format == "json":
        _write_json({"workload": workload, "backends": table.to_dicts()}, args.output)
    elif args.format == "ndjson":
        _write_ndjson(table.to_dicts(), args.output)
    else:
        _write_frame(table, args.format, args.output)
    return EXIT_OK


# --- generate -------------------------------------------------------------------------------

def cmd_generate(args: argparse.Namespace) -> int:
    from .synthetic import generate_registry, generate_slots

    if (args.backends is None) == (args.slots is None):
        raise UsageError("Give one of `--backends N` or `--slots N`")
    count = args.backends if args.backends is not None else args.slots
    if count < 1:
        raise UsageError(f"Expected a count >= 1, got `{count}`")
    if args.backends is not None:
        docs: Any = {"backends": generate_registry(count, args.seed)}
    else:
        docs = {"slots": generate_slots(count, args.seed)}
    if args.output.lower().endswith(".json"):
        Path(args.output).write_bytes(orjson.dumps(docs, option=orjson.OPT_APPEND_NEWLINE))
    else:
        import yaml

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        with open(args.output, "w", encoding="utf-8") as handle:
            yaml.dump(docs, handle, Dumper=dumper, sort_keys=False, default_flow_style=None)
    kind = "backends" if args.backends is not None else "slots"
    print(f"wrote {count} {kind} (seed {args.seed}) to {args.output}", file=sys.stderr)
    return EXIT_OK


# --- assign and compile (capacity-aware placement, snapshots) --------------------------------

def cmd_assign(args: argparse.Namespace) -> int:
    _check_output(args)
    registry = open_registry(args.registry)
    slots = read_slots(args.slots)
    # A dry run: the plan is shown, the registry's live usage is not changed.
    plan = registry.assign(slots, allow_unplaced=True)
    bindings = [{"slot_name": b.slot_name, "backend_id": b.backend_id, "score": b.score} for b in plan.bindings]
    unplaced = [{"slot_name": u.slot_name, "optional": u.optional, "diagnosis": u.diagnosis.as_dict()}
                for u in plan.unplaced]
    utilisation: pl.DataFrame = plan.utilisation
    used = utilisation.filter(pl.col("placed_slots") > 0)
    if args.format == "table":
        with _rich_target(args.output, wide=True) as console:
            _print_table(console, (Column("slot"), Column("backend"), Column("score", right=True)),
                         [[b["slot_name"], b["backend_id"], f"{b['score']:.4f}"] for b in bindings],
                         title="placement")
            if used.height:
                _print_utilisation(console, used)
            if len(plan.unplaced) > DETAIL_MAX_SLOTS:
                console.file.write("".join(f"{u.slot_name}  {'optional' if u.optional else 'required'}  unplaced: "
                                           f"{u.diagnosis}\n" for u in plan.unplaced))
            for u in plan.unplaced if len(plan.unplaced) <= DETAIL_MAX_SLOTS else ():
                head = Text(u.slot_name, style="bold")
                head.append("  unplaced (optional)" if u.optional else "  UNPLACED (required)",
                            style="yellow" if u.optional else "bold red")
                console.print(head)
                console.print(Padding(_diagnosis_block(u.diagnosis), (0, 0, 1, 2), expand=False))
            console.print(Text(f"{_plural(len(slots), 'slot')}: {len(bindings)} placed, "
                               f"{len(unplaced)} unplaced"))
    elif args.format == "json":
        _write_json({"bindings": bindings, "unplaced": unplaced, "utilisation": utilisation.to_dicts()},
                    args.output)
    elif args.format == "ndjson":
        _write_ndjson([*({"status": "placed", **b} for b in bindings),
                       *({"status": "unplaced", **u} for u in unplaced)], args.output)
    else:
        frame = pl.DataFrame(
            {"slot_name": [b["slot_name"] for b in bindings] + [u["slot_name"] for u in unplaced],
             "status": ["placed"] * len(bindings) + ["unplaced"] * len(unplaced),
             "backend_id": [b["backend_id"] for b in bindings] + [None] * len(unplaced),
             "score": [b["score"] for b in bindings] + [None] * len(unplaced),
             "diagnosis": [None] * len(bindings) + [u["diagnosis"]["text"] for u in unplaced]},
            schema={"slot_name": pl.String, "status": pl.String, "backend_id": pl.String, "score": pl.Float64,
                    "diagnosis": pl.String})
        _write_frame(frame, args.format, args.output)
    missing = [u["slot_name"] for u in unplaced if not u["optional"]]
    return _unbound_required(missing) if missing else EXIT_OK


def _print_utilisation(console: Console, frame: pl.DataFrame) -> None:
    """Backends that took a placement: rps, storage and namespaces used of the maximum."""
    def used(row: dict[str, Any], value: str, cap: str, share: str, fmt: Callable[[float], str]) -> str:
        if row.get(cap) is None:
            return fmt(row[value]) if row.get(value) is not None else "—"
        pct = f" ({row[share] * 100:.0f}%)" if row.get(share) is not None else ""
        return f"{fmt(row[value])}/{fmt(row[cap])}{pct}"

    rows = []
    for row in frame.iter_rows(named=True):
        ns_cap = row.get("max_namespaces")
        rows.append([str(row["backend_id"]), str(row["placed_slots"]),
                     used(row, "write_rps", "max_write_rps", "write_utilisation", format_rate),
                     used(row, "read_rps", "max_read_rps", "read_utilisation", format_rate),
                     used(row, "storage_used", "max_storage", "storage_utilisation", format_size),
                     f"{row['namespace_count']:g}" + (f"/{ns_cap:g}" if ns_cap is not None else "")])
    _print_table(console, (Column("backend"), *(Column(name, right=True) for name in
                                                ("slots", "write rps", "read rps", "storage", "namespaces"))),
                 rows, title="utilisation after placement")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def cmd_compile(args: argparse.Namespace) -> int:
    registry = open_registry(args.registry)
    registry.save(args.output)
    print(f"compiled {len(registry)} backends to {args.output}", file=sys.stderr)
    return EXIT_OK


# --- the parser -----------------------------------------------------------------------------

def _formats(parser: argparse.ArgumentParser, choices: Sequence[str]) -> None:
    parser.add_argument("--format", choices=choices, default="table", help="output format (default: table)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the result to FILE instead of stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prism-match", description="Match Prism pattern slots to backends of a registry.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"prism-match {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    all_formats = ("table", "json", "ndjson", "csv", "parquet")

    p = sub.add_parser("validate", help="check registry files; summarise or list every problem")
    p.add_argument("registry", nargs="+", metavar="REGISTRY", help="YAML/JSON file or directory")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(run=cmd_validate)

    def command(name: str, help_text: str, run: Any, *, slots: bool = False, slots_help: str | None = None):
        # A subcommand on one registry (and a slots file), dispatching to ``run``.
        p = sub.add_parser(name, help=help_text)
        p.add_argument("registry", metavar="REGISTRY")
        if slots:
            p.add_argument("slots", metavar="SLOTS", help=slots_help)
        p.set_defaults(run=run)
        return p

    p = command("match", "the best backend(s) for each slot, with scores and reasons", cmd_match, slots=True,
                slots_help="slot requirements: YAML/JSON, or a CSV/Parquet/NDJSON table")
    p.add_argument("-k", type=int, default=1, help="backends per slot (default: 1)")
    p.add_argument("--explain", action="store_true", help="add each slot's diagnosis")
    _formats(p, all_formats)

    _formats(command("assign", "capacity-aware placement of the slots, in order", cmd_assign, slots=True), all_formats)

    p = command("query", "every eligible backend for a query (the seed's Backend Querying)", cmd_query)
    p.add_argument("--file", metavar="QUERY", help="a query document (`query:` wrapper accepted)")
    p.add_argument("--capability", action="append", metavar="NAME", help="required capability (repeatable)")
    p.add_argument("--interface", action="append", metavar="NAME", help="required interface (repeatable)")
    p.add_argument("--region", action="append", metavar="REGION", help="serves one of these regions")
    p.add_argument("--health", action="append", metavar="STATUS", help="health status allowed (repeatable)")
    p.add_argument("--type", action="append", metavar="TYPE", help="backend type allowed (repeatable)")
    p.add_argument("--compliance", action="append", metavar="TAG", help="compliance tag required (repeatable)")
    p.add_argument("--min-write-rps", type=float, metavar="RPS")
    p.add_argument("--min-read-rps", type=float, metavar="RPS")
    p.add_argument("--min-storage", metavar="SIZE", help="e.g. 1TB")
    p.add_argument("--preferred-region", metavar="REGION", help="scored, not filtered")
    p.add_argument("--consistency", metavar="LEVEL", help="strong, bounded_staleness, session or eventual")
    p.add_argument("--max-latency-p99", metavar="DURATION", help="e.g. 25ms")
    p.add_argument("--explain", action="store_true", help="add the diagnosis")
    _formats(p, all_formats)

    _formats(command("explain", "why each slot has the backends it has", cmd_explain, slots=True),
             ("table", "json", "ndjson"))

    p = command("cost", "monthly cost of a workload on every backend, cheapest first", cmd_cost)
    for dest, flag, default, metavar, help_text in _COST_OPTIONS:
        p.add_argument(flag, dest=dest, type=float, default=default, metavar=metavar, help=help_text)
    _formats(p, all_formats)

    p = sub.add_parser("generate", help="a synthetic registry (or slot list) for trials")
    p.add_argument("--backends", type=int, metavar="N")
    p.add_argument("--slots", type=int, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="YAML, or JSON if FILE ends in .json")
    p.set_defaults(run=cmd_generate)

    p = command("compile", "compile a registry into a snapshot that loads fast", cmd_compile)
    p.add_argument("-o", "--output", required=True, metavar="SNAPSHOT")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(exc.usage)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    try:
        return args.run(args)
    except (UsageError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:
        # The reader (`| head`) left: not an error worth a message. Point
        # stdout at devnull so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INVALID
    except OSError as exc:
        where = f" `{exc.filename}`" if exc.filename else ""
        print(f"error: cannot access{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
