"""How the ``prism-match`` command line shows results on a terminal or in a
text file: rich tables and panels (colour only on a terminal, plain aligned
text past ``RICH_MAX_ROWS``), sizes and money as people write them, and
progress for phases long enough to wait for.

cli.py reads the inputs, runs the library and writes machine formats
(JSON, YAML, NDJSON, CSV, Parquet); this module only turns results that
are already computed into text.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.segment import Segment
from rich.text import Text

from .output import write_text
from .redact import printable
from .results import Diagnosis, Match
from .schema import BACKEND_TYPES, HEALTH_STATUSES, SlotRequirement
from .units import format_rate, format_size

if TYPE_CHECKING:
    import polars as pl

    from .results import SlotOutcome

log = logging.getLogger("prism_match")

PROGRESS_MIN_SLOTS = 200  # shorter batches finish before a bar is worth drawing
DETAIL_MAX_SLOTS = 50     # per-slot blocks with reasons up to this; a compact table beyond
RICH_MAX_ROWS = 200       # rich measures every cell (~1.5 ms a row): larger tables are laid out plainly


class _Rendered(str):
    """What SafeConsole rendered: escaped already, and styled by rich."""


class _EscapingFile:
    """A console's file: rich's own output (``_Rendered``) goes through as it
    is, any other text written to it (a pre-laid-out plain table) escaped."""

    def __init__(self, file: IO[str]):
        self._file = file

    def write(self, text: str) -> int:
        return self._file.write(text if type(text) is _Rendered else printable(text, lines=True))

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, flush, encoding...
        return getattr(self._file, name)


class SafeConsole(Console):
    """A rich Console whose output never carries a control character or a
    bidirectional override from the data: the text of every segment is
    escaped before rich styles it (its own colour codes are added after),
    and plain text written to ``console.file`` is escaped as it goes."""

    def __init__(self, *args: Any, file: IO[str] | None = None, **kwargs: Any):
        super().__init__(*args, file=_EscapingFile(file) if file is not None else None, **kwargs)

    def _render_buffer(self, buffer: Any) -> str:
        return _Rendered(super()._render_buffer(
            Segment(text, style, control) if control else Segment(printable(text, lines=True), style, control)
            for text, style, control in buffer))


def make_console(file: IO[str] | None = None, *, stderr: bool = False) -> Console:
    # highlight=False: rich would otherwise colour numbers and quoted names in
    # backend ids; markup is never used for user data (Text objects only).
    # SafeConsole: control, C1 and bidi characters in names are escaped.
    return SafeConsole(file=file, stderr=stderr, highlight=False, soft_wrap=False)


@contextmanager
def rich_target(output: str | None, *, wide: bool = False) -> Iterator[Console]:
    """A console for table output: straight to a terminal (with colour), else
    rendered plain into a buffer and written with trailing padding removed,
    so files and pipes hold clean text. ``wide``: a file or pipe gets lines
    as long as the table needs (numbers are never cut to fit 80 columns)."""
    if output is None and sys.stdout.isatty():
        yield make_console(sys.stdout)
        return
    buffer = io.StringIO()
    console = make_console(buffer)
    if wide:
        console.width = max(console.width, 200)
    yield console
    write_text("\n".join(line.rstrip() for line in buffer.getvalue().split("\n")), output)


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for long batches, only when stderr is a terminal."""
    if total < PROGRESS_MIN_SLOTS or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=make_console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


PHASE_QUIET_SECONDS = 1.0  # a phase shorter than this shows nothing


@contextmanager
def phase(label: str) -> Iterator[None]:
    """A spinner on stderr for a phase that outlasts ``PHASE_QUIET_SECONDS``
    (only on a terminal), and the phase's time on the ``prism_match`` logger."""
    start = time.perf_counter()
    lock = threading.Lock()
    shown: list[Any] = []
    done = False

    def show() -> None:
        with lock:
            if not done:
                status = make_console(stderr=True).status(label)
                status.start()
                shown.append(status)

    timer = threading.Timer(PHASE_QUIET_SECONDS, show) if sys.stderr.isatty() else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        with lock:
            done = True
            if timer is not None:
                timer.cancel()
            for status in shown:
                status.stop()
        elapsed = time.perf_counter() - start
        log.log(logging.INFO if elapsed >= PHASE_QUIET_SECONDS else logging.DEBUG, "%s took %.2f s", label, elapsed)


_BINARY_UNITS = ((1024.0**5, "PiB"), (1024.0**4, "TiB"), (1024.0**3, "GiB"), (1024.0**2, "MiB"), (1024.0, "KiB"))


def size_text(value: float) -> str:
    """A size in the units it was most likely written in: a whole number of
    KB is decimal (``5TB``), one of KiB but not of KB is binary (20 GiB is
    ``20GiB``, not ``21.5GB``)."""
    if value >= 1024 and value % 1000 != 0 and value % 1024 == 0:
        for scale, suffix in _BINARY_UNITS:
            if value >= scale:
                return f"{value / scale:.1f}".rstrip("0").rstrip(".") + suffix
    return format_size(value)


def money(value: float | None) -> str:
    if value is None:
        return "—"
    return "<$0.01" if 0 < value < 0.005 else f"${value:,.2f}"


def quantity(value: float) -> str:
    return f"{int(value):,}" if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


def counts_text(counter: Counter, order: Sequence[str] | None = None) -> str:
    keys = [k for k in order if k in counter] if order is not None else sorted(counter)
    return "  ".join(f"{k}={counter[k]}" for k in keys) or "—"


@dataclass(frozen=True)
class Column:
    name: str
    right: bool = False
    style: str | None = None


def print_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
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


def diagnosis_renderable(diag: Diagnosis) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", style="bold")
    grid.add_column(style="magenta", no_wrap=True)
    grid.add_column()
    for code, count in sorted(diag.rejected.items(), key=lambda kv: -kv[1]):
        grid.add_row(str(count), code, Text(diag.details.get(code, "")))
    for hint in diag.hints:
        grid.add_row("", Text("hint", style="yellow"), Text(hint))
    return grid


def diagnosis_block(diag: Diagnosis) -> Group:
    head = Text(f"{diag.eligible}/{diag.total} backends eligible", style="bold")
    return Group(head, Padding(diagnosis_renderable(diag), (0, 0, 0, 2), expand=False))


def reasons_text(match: Match) -> str:
    return " | ".join(f"{r.type}: {r.explanation}" for r in match.reasons)


def slot_header(slot: SlotRequirement, matches: list[Match]) -> Text:
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


SCORE_COLUMNS = (Column("score", right=True), Column("perf", right=True, style="dim"),
                  Column("cost", right=True, style="dim"), Column("avail", right=True, style="dim"),
                  Column("region", right=True, style="dim"))


def score_cells(m: Match) -> list[str]:
    return [f"{m.score:.4f}", f"{m.performance:.2f}", f"{m.cost:.4f}", f"{m.availability:.4f}",
            "yes" if m.region else "no"]


def reasons_grid(match: Match) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column()
    for reason in match.reasons:
        grid.add_row(reason.type, Text(reason.explanation))
    return grid


def render_outcomes(console: Console, outcomes: Sequence[SlotOutcome]) -> None:
    """Per slot: a header naming the choice, the ranked backends with their
    score components, and the chosen backend's reasons (or the diagnosis)."""
    for o in outcomes:
        console.print(slot_header(o.slot, o.matches))
        body: list[Any] = []
        if o.matches:
            table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
            for col in (Column("#", right=True), Column("backend"), *SCORE_COLUMNS):
                table.add_column(col.name, justify="right" if col.right else "left", style=col.style)
            for rank, m in enumerate(o.matches, 1):
                table.add_row(str(rank), Text(m.backend_id, style="bold" if rank == 1 else ""), *score_cells(m))
            why = Text("why ", style="dim")
            why.append(o.matches[0].backend_id, style="dim bold")
            body += [table, why, Padding(reasons_grid(o.matches[0]), (0, 0, 0, 2))]
        if o.diagnosis is not None:
            body.append(diagnosis_block(o.diagnosis))
        console.print(Padding(Group(*body), (0, 0, 1, 2), expand=False))
    print_match_summary(console, outcomes)


def render_outcomes_compact(console: Console, outcomes: Sequence[SlotOutcome]) -> None:
    """Many slots: one table row per (slot, rank), then the diagnoses."""
    rows = []
    for o in outcomes:
        need = "optional" if o.slot.optional else "required"
        if o.matches:
            rows += [[o.slot.slot_name, need, str(rank), m.backend_id, *score_cells(m)]
                     for rank, m in enumerate(o.matches, 1)]
        else:
            rows.append([o.slot.slot_name, need, "—", "unbound", *[""] * len(SCORE_COLUMNS)])
    print_table(console, (Column("slot"), Column("need", style="dim"), Column("#", right=True),
                           Column("backend"), *SCORE_COLUMNS), rows)
    explained = [o for o in outcomes if o.diagnosis is not None]
    if explained:
        console.file.write("\n" + "\n".join(f"{o.slot.slot_name}: {o.diagnosis}" for o in explained) + "\n")
    console.file.write(f"\n(reasons are shown for up to {DETAIL_MAX_SLOTS} slots; "
                       "--format json, ndjson or csv has them for every slot)\n")
    print_match_summary(console, outcomes)


def tally(outcomes: Sequence[SlotOutcome]) -> tuple[int, int, int]:
    """``(bound, unbound optional, unbound required)`` slot counts."""
    bound = sum(1 for o in outcomes if o.matches)
    optional = sum(1 for o in outcomes if not o.matches and o.slot.optional)
    return bound, optional, len(outcomes) - bound - optional


def match_summary(outcomes: Sequence[SlotOutcome]) -> dict[str, int]:
    bound, optional, required = tally(outcomes)
    return {"slots": len(outcomes), "bound": bound, "unbound_optional": optional, "unbound_required": required}


def print_match_summary(console: Console, outcomes: Sequence[SlotOutcome]) -> None:
    bound, optional, required = tally(outcomes)
    summary = Text(f"{plural(len(outcomes), 'slot')}: {bound} bound")
    if optional:
        summary.append(f", {optional} optional unbound", style="yellow")
    summary.append(f", {required} required unbound", style="bold red" if required else "")
    console.print(summary)


def render_summary(console: Console, sources: Sequence[str], summary: dict[str, Any]) -> None:
    head = Text(", ".join(sources), style="bold")
    head.append(f": {summary['backends']} backends, valid", style="green")
    console.print(head, soft_wrap=True)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column()
    v = summary["vocabulary"]
    grid.add_row("types", counts_text(Counter(summary["by_type"]), BACKEND_TYPES))
    grid.add_row("regions", "  ".join(f"{k}={n}" for k, n in summary["by_region"].items()) or "—")
    grid.add_row("health", counts_text(Counter(summary["by_health"]), HEALTH_STATUSES))
    grid.add_row("vocabulary", f"{v['capabilities']} capabilities, {v['interfaces']} interfaces, "
                               f"{v['regions']} regions, {v['compliance']} compliance tags")
    grid.add_row("no cost data", Text(", ".join(summary["without_cost"]) or "—"))
    grid.add_row("no health data", Text(", ".join(summary["without_health"]) or "—"))
    console.print(Padding(grid, (0, 0, 0, 2), expand=False))


def print_utilisation(console: Console, frame: pl.DataFrame) -> None:
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
                     used(row, "storage_used", "max_storage", "storage_utilisation", size_text),
                     f"{row['namespace_count']:g}" + (f"/{ns_cap:g}" if ns_cap is not None else "")])
    print_table(console, (Column("backend"), *(Column(name, right=True) for name in
                                                ("slots", "write rps", "read rps", "storage", "namespaces"))),
                 rows, title="utilisation after placement")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
