"""``prism-match health REGISTRY``: the registry's health checks from the command line.

A registry file → `probes.HealthChecker` (which runs every backend's
``health_check`` probes and feeds a `health.HealthTracker`) → one round
printed as a status table (backend, check, probe, result, latency, status
before → after) or JSON; ``--watch`` keeps every backend on its interval
and prints each round as it ends (NDJSON with ``--format json``) until
Ctrl-C or ``--rounds N``. Probe URLs are shown with their password masked.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import RegistryError
from .health import DEFAULT_CONCURRENCY
from .redact import printable

if TYPE_CHECKING:  # probes brings asyncio: imported when the command runs, not by every command
    from .probes import BackendRound, HealthChecker

__all__ = ["add_health_parser", "cmd_health", "round_rows"]

_COLUMNS = ("backend", "check", "probe", "result", "latency", "status")
_RESULT_STYLE = {"pass": "green", "fail": "red", "timeout": "red", "error": "yellow"}


def add_health_parser(sub: Any, open_registry: Any) -> argparse.ArgumentParser:
    """Register the ``health`` subcommand on ``build_parser``'s subparsers;
    ``open_registry(path, args)`` is the command line's one way to read
    REGISTRY (file, directory, snapshot)."""
    p = sub.add_parser("health", help="run the registry's health checks: one round, or --watch")
    p.set_defaults(open_registry=open_registry)
    p.add_argument("registry", metavar="REGISTRY")
    p.add_argument("--watch", action="store_true", help="keep checking every backend on its interval (Ctrl-C stops)")
    p.add_argument("--rounds", type=int, metavar="N", help="with --watch: stop after N rounds of each backend")
    p.add_argument("--backend", action="append", metavar="ID", help="check only this backend (repeatable)")
    p.add_argument("--allow-commands", action="store_true",
                   help="run checks that are commands (they come from the registry: code you must trust)")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                   help=f"probes in flight at once (default: {DEFAULT_CONCURRENCY})")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    p.set_defaults(run=cmd_health)
    return p


def _latency(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}ms"


def round_rows(rounds: Sequence[BackendRound]) -> list[tuple[str, ...]]:
    """Table cells, one row per check; the status change on each backend's first row."""
    rows = []
    for backend_round in rounds:
        status = f"{backend_round.status_before} → {backend_round.status_after}"
        for index, result in enumerate(backend_round.results):
            rows.append((printable(backend_round.backend_id, 80) if index == 0 else "", printable(result.check, 40),
                         result.probe, f"{result.outcome} ({printable(result.detail, 80)})",
                         _latency(result.latency), status if index == 0 else ""))
    return rows


def _print_table(rounds: Sequence[BackendRound], prefix: str = "") -> None:
    """On a terminal, rich's table with colour; elsewhere the same laid out
    plainly, lines without trailing padding."""
    if sys.stdout.isatty():
        console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
        if prefix:
            console.print(Text(prefix, style="dim"))
        console.print(_table(rounds))
        return
    buffer = io.StringIO()
    Console(file=buffer, highlight=False, soft_wrap=False, width=200).print(_table(rounds))
    text = "\n".join(line.rstrip() for line in buffer.getvalue().split("\n"))
    sys.stdout.write((prefix + "\n" if prefix else "") + text)


def _table(rounds: Sequence[BackendRound]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in _COLUMNS:
        table.add_column(name, justify="right" if name == "latency" else "left", overflow="fold")
    for row in round_rows(rounds):
        outcome = row[3].split(" ", 1)[0]
        # Text cells: backend names and probe details are never read as markup.
        table.add_row(*(Text(cell, style=_RESULT_STYLE.get(outcome) if i == 3 else None)
                        for i, cell in enumerate(row)))
    return table


def _checker(args: argparse.Namespace) -> HealthChecker:
    from .probes import HealthChecker

    if args.rounds is not None and args.rounds < 1:
        raise RegistryError(f"Expected `--rounds` >= 1, got `{args.rounds}`", "command line")
    registry = args.open_registry(args.registry)
    checker = HealthChecker(registry, allow_commands=args.allow_commands, concurrency=args.concurrency)
    known = set(checker.backend_ids)
    if not known:
        raise RegistryError("No backend has a `health_check` block to run", args.registry)
    for backend_id in args.backend or ():
        if backend_id not in known:
            raise RegistryError(f"Expected a backend with a `health_check` block, got `{printable(backend_id, 60)}`",
                                "command line --backend")
    return checker


def cmd_health(args: argparse.Namespace) -> int:
    checker = _checker(args)
    if not args.watch:
        rounds = checker.run_once(args.backend)
        if args.format == "json":
            sys.stdout.write(orjson.dumps([r.to_dict() for r in rounds], option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            _print_table(rounds)
        return 0

    def show(backend_round: BackendRound) -> None:
        if args.format == "json":
            sys.stdout.write(orjson.dumps(backend_round.to_dict()).decode() + "\n")
        else:
            _print_table([backend_round], prefix=backend_round.at.isoformat(timespec="seconds"))
        sys.stdout.flush()

    import asyncio

    try:
        asyncio.run(checker.run(rounds=args.rounds, on_round=show, backend_ids=args.backend))
    except KeyboardInterrupt:  # the way to end --watch: probes in flight end, commands are killed
        pass
    return 0
