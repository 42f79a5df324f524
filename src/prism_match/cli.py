# PYTHON_ARGCOMPLETE_OK  (argcomplete: this entry point answers completion requests)
"""The ``prism-match`` command line (also ``python -m prism_match``): the
commands; their terminal rendering is render.py.

Files in, answers out: a registry (YAML/JSON file or directory, or a
compiled snapshot) and slot requirements (or a pattern, a query, a policy)
are loaded and validated through the library (slot_files.py, documents.py,
registry.py), each command calls one public method (``match``, ``explain``,
``query``, ``assign``, ``estimate_cost``, ``save``) and prints the result as
a table (render.py) or as JSON/YAML/NDJSON (orjson, PyYAML) or CSV/Parquet
(polars). ``-o`` follows kubectl: a format name prints that format, a file
name's extension picks it (``resolve_output``).

Exit status: 0 success; 1 invalid input (registry, slots, query, workload,
command line) or a file that cannot be read or written; 2 a required slot has
no eligible backend (``match``, ``bind``, ``assign``). Problems are printed on stderr as
``error: <text>`` with their locations, never as a traceback; secrets are
never printed (the loader never echoes them and nothing here prints
connection data).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import orjson
import polars as pl
from rich.padding import Padding
from rich.text import Text

from . import __version__
from .cost import COST_TERMS, WORKLOAD_KEYS, estimate_cost, validate_workload
from .documents import KINDS, document_kind, json_schema, validate_document
from .errors import RegistryError
from .health_cli import add_health_parser
from .live_cli import add_live_parsers
from .loading import load_documents, source_documents, validate_documents
from .policy import MatchPolicy
from .registry import Registry, load_registry, load_snapshot
from .render import (DETAIL_MAX_SLOTS, SCORE_COLUMNS, Column, diagnosis_block, match_summary, money, phase, plural,
                     print_table, print_utilisation, progress_bar, quantity, reasons_text, render_outcomes,
                     render_outcomes_compact, render_summary, rich_target, score_cells)
from .results import Match, SlotOutcome
from .schema import BACKEND_TYPES, HEALTH_STATUSES, Query, SlotRequirement
from .slot_files import is_pattern, read_slots, split_list
from .vocabulary import is_versioned
from .output import write_bytes, write_text

__all__ = ["main", "read_slots", "EXIT_OK", "EXIT_INVALID", "EXIT_UNBOUND"]

log = logging.getLogger("prism_match")

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNBOUND = 2

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

def open_registry(path: str, args: argparse.Namespace | None = None) -> Registry:
    """A registry from YAML/JSON (file or directory), or a compiled snapshot:
    any other regular file. ``args`` carries the loading flags
    (``--non-strict``, ``--allow-inline-secrets``) and the policy flags."""
    strict = not getattr(args, "non_strict", False)
    allow = getattr(args, "allow_inline_secrets", False)
    p = Path(path)
    from .catalogue import CapabilityWarning

    with phase(f"loading {path}"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CapabilityWarning)
        if p.is_file() and p.suffix.lower() not in _REGISTRY_SUFFIXES:
            registry = load_snapshot(path)
        else:
            registry = load_registry(path, strict=strict, allow_inline_secrets=allow)
    for warning in caught:  # a capability close to a core one: one line each, then on with the command
        if issubclass(warning.category, CapabilityWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    log.info("%s: %d backends loaded", path, len(registry))
    if args is not None and hasattr(args, "policy"):
        registry.policy = policy_from_args(args)
    return registry


def what_if_from_args(registry: Registry, args: argparse.Namespace) -> Registry:
    """``--set ID.FIELD=VALUE`` and ``--remove ID`` (repeatable): the
    registry as it would be after them (``Registry.what_if``), or the
    registry itself when none is given."""
    sets, removed = getattr(args, "set", None) or [], getattr(args, "remove", None) or []
    if not sets and not removed:
        return registry
    from .what_if import parse_set

    changes: dict[str, dict[str, str]] = {}
    for spec in sets:
        bid, field, value = parse_set(spec)
        changes.setdefault(bid, {})[field] = value
    return registry.what_if(changes, remove=removed)


def _read_slots(args: argparse.Namespace) -> list[SlotRequirement]:
    with phase(f"reading {args.slots}"):
        return read_slots(args.slots, strict=not args.non_strict)


# The policy flags: (dest, MatchPolicy field). `--default-health` is not
# `--health`: on `query` that one filters, this one is the default.
_POLICY_FLAGS = (("w_perf", "--w-perf"), ("w_cost", "--w-cost"), ("w_avail", "--w-avail"),
                 ("w_region", "--w-region"), ("perf_cap", "--perf-cap"), ("capacity_basis", "--capacity-basis"),
                 ("health_statuses", "--default-health"), ("strategy", "--strategy"),
                 ("w_affinity", "--w-affinity"), ("degraded_penalty", "--degraded-penalty"),
                 ("stickiness", "--stickiness"), ("incident_penalty", "--incident-penalty"))


def policy_from_args(args: argparse.Namespace) -> MatchPolicy:
    """``--policy FILE`` (validated as a policy document), then each policy
    flag given on the command line over it."""
    fields: dict[str, Any] = {}
    if args.policy is not None:
        docs = source_documents(args.policy, _REGISTRY_SUFFIXES)
        if len(docs) != 1:
            raise RegistryError(f"Expected one policy document, got {len(docs)}", str(args.policy))
        [document] = validate_document(docs[0][0], docs[0][1], "policy")
        fields = msgspec.structs.asdict(document)
    for dest, flag in _POLICY_FLAGS:
        value = getattr(args, dest, None)
        if value is not None:
            fields[dest] = [v for item in value for v in split_list(item)] if dest == "health_statuses" else value
    if "health_statuses" in fields:
        fields["health_statuses"] = tuple(fields["health_statuses"])
    try:
        return MatchPolicy(**fields)
    except RegistryError as exc:
        flags = dict(_POLICY_FLAGS)
        raise RegistryError([(flags.get(loc.split("$.", 1)[-1].split("[")[0], loc), msg)
                             for loc, msg in exc.errors]) from None


# --- output -------------------------------------------------------------------------------


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


# `-o` in kubectl's manner: a format name chooses the format (stdout); a file
# name is where the output goes, its extension choosing the format when
# `--format` is not given; a format and an extension that disagree is an
# error, never a silent surprise. `-o ./json` writes a file named `json`.
OUTPUT_FORMATS = ("table", "wide", "json", "yaml", "ndjson", "csv", "parquet")
_EXTENSION_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".ndjson": "ndjson", ".jsonl": "ndjson",
                      ".csv": "csv", ".parquet": "parquet", ".txt": "table"}


def resolve_output(args: argparse.Namespace, choices: Sequence[str]) -> None:
    """Settle ``args.format`` and ``args.output`` from ``--format`` and ``-o``."""
    fmt, output = getattr(args, "format", None), args.output
    if output is not None and output in OUTPUT_FORMATS:
        if fmt is not None and fmt != output:
            raise UsageError(f"`--format {fmt}` and `-o {output}` disagree: give one of them")
        fmt, output = output, None
    elif output is not None:
        implied = _EXTENSION_FORMATS.get(Path(output).suffix.lower())
        if fmt is None:
            fmt = implied or "table"
        elif implied is not None and implied != fmt and not (implied == "table" and fmt == "wide"):
            raise UsageError(f"`--format {fmt}` disagrees with the extension of `-o {output}` ({implied}): "
                             f"give a matching extension or drop `--format`")
    fmt = fmt or "table"
    if fmt not in choices:
        raise UsageError(f"Expected an output format in {', '.join(f'`{c}`' for c in choices)}, got `{fmt}`")
    if fmt == "parquet" and output is None:
        raise UsageError("`--format parquet` writes a binary file: give `-o FILE`")
    args.format, args.output = fmt, output


def _check_output(args: argparse.Namespace) -> None:
    resolve_output(args, args.format_choices)


def _write_data(value: Any, fmt: str, output: str | None) -> None:
    """A JSON-shaped value as JSON or YAML."""
    if fmt == "yaml":
        import yaml

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        _write_bytes(yaml.dump(orjson.loads(orjson.dumps(value)), Dumper=dumper, sort_keys=False,
                               allow_unicode=True).encode("utf-8"), output)
    else:
        _write_json(value, output)


# --- match ----------------------------------------------------------------------------------



def match_slots(registry: Registry, slots: Sequence[SlotRequirement], k: int,
                explain: bool) -> list[SlotOutcome]:
    outcomes = []
    with progress_bar(len(slots), "matching") as advance:
        for slot in slots:
            prepared = registry.prepare(slot)
            matches = registry.match(prepared, k)
            diagnosis = registry.explain(prepared) if explain or not matches else None
            outcomes.append(SlotOutcome(slot, matches, diagnosis))
            advance()
    return outcomes


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
        rows["reasons"].append(reasons_text(m) if m else None)
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


def _unbound_required(names: list[str]) -> int:
    shown = ", ".join(f"`{n}`" for n in names[:10]) + (" …" if len(names) > 10 else "")
    print(f"error: {len(names)} required slot(s) with no eligible backend: {shown}", file=sys.stderr)
    return EXIT_UNBOUND


def cmd_match(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UsageError(f"Expected `-k` >= 1, got `{args.k}`")
    _check_output(args)
    registry = what_if_from_args(open_registry(args.registry, args), args)
    slots = _read_slots(args)
    outcomes = match_slots(registry, slots, args.k, args.explain)
    fmt = args.format
    if fmt in ("table", "wide"):
        with rich_target(args.output, wide=fmt == "wide" or len(outcomes) > DETAIL_MAX_SLOTS) as console:
            if len(outcomes) <= DETAIL_MAX_SLOTS:
                render_outcomes(console, outcomes)
            else:
                render_outcomes_compact(console, outcomes)
    elif fmt in ("json", "yaml"):
        _write_data({"slots": [o.as_dict() for o in outcomes], "summary": match_summary(outcomes)}, fmt, args.output)
    elif fmt == "ndjson":
        _write_ndjson((o.as_dict() for o in outcomes), args.output)
    else:
        _write_frame(_outcome_rows(outcomes), fmt, args.output)
    missing = [o.slot.slot_name for o in outcomes if not o.matches and not o.slot.optional]
    return _unbound_required(missing) if missing else EXIT_OK


def cmd_bind(args: argparse.Namespace) -> int:
    """``match`` on a pattern file: every slot of the pattern, each choosing
    independently; exit 2 when a required slot has no eligible backend."""
    if args.k < 1:
        raise UsageError(f"Expected `-k` >= 1, got `{args.k}`")
    _check_output(args)
    docs = source_documents(args.slots, _REGISTRY_SUFFIXES)
    if len(docs) != 1 or not is_pattern(docs[0][1]):
        raise RegistryError("Expected one pattern document (`pattern:` with a mapping of named `slots`), got "
                            + (f"{len(docs)} documents" if len(docs) != 1 else
                               f"a {document_kind(docs[0][1]) or 'document of unknown kind'}"), str(args.slots))
    pattern = docs[0][1]["pattern"]
    registry = open_registry(args.registry, args)
    slots = _read_slots(args)
    outcomes = match_slots(registry, slots, args.k, args.explain)
    if args.slot_bindings:
        from .patterns import slot_binding_documents

        if args.format not in ("json", "yaml", "ndjson"):
            raise UsageError("`--slot-bindings` prints documents: give `-o json`, `-o yaml` or `-o ndjson`")
        documents = slot_binding_documents(docs[0][1].get("pattern_id"),
                                           [(o.slot.slot_name, o.matches[0] if o.matches else None)
                                            for o in outcomes], all_reasons=args.all_reasons)
        if args.format == "ndjson":
            _write_ndjson(documents, args.output)
        else:
            _write_data(documents, args.format, args.output)
        missing = [o.slot.slot_name for o in outcomes if not o.matches and not o.slot.optional]
        return _unbound_required(missing) if missing else EXIT_OK
    if args.format in ("table", "wide"):
        with rich_target(args.output, wide=args.format == "wide") as console:
            console.print(Text(f"pattern {pattern}", style="bold"))
            render_outcomes(console, outcomes)
    elif args.format in ("json", "yaml"):
        _write_data({"pattern": pattern,
                     "bindings": {o.slot.slot_name: o.matches[0].backend_id if o.matches else None
                                  for o in outcomes},
                     "slots": [o.as_dict() for o in outcomes], "summary": match_summary(outcomes)},
                    args.format, args.output)
    elif args.format == "ndjson":
        _write_ndjson((o.as_dict() for o in outcomes), args.output)
    else:
        _write_frame(_outcome_rows(outcomes), args.format, args.output)
    missing = [o.slot.slot_name for o in outcomes if not o.matches and not o.slot.optional]
    return _unbound_required(missing) if missing else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    _write_json(json_schema(args.kind), args.output)
    return EXIT_OK


# --- explain --------------------------------------------------------------------------------

def _explain_all(registry: Registry, slots: Sequence[SlotRequirement], args: argparse.Namespace) -> int:
    """``explain --all``: the score table of every slot, one row per (slot,
    backend), eligible backends first, best first."""
    frames = []
    for slot in slots:
        table = registry.score_table(slot).sort(["eligible", "score", "backend_id"], descending=[True, True, False])
        frames.append(table.select(pl.lit(slot.slot_name).alias("slot_name"), pl.all()))
    frame = pl.concat(frames) if frames else pl.DataFrame({"slot_name": []}, schema={"slot_name": pl.String})
    if args.format in ("json", "yaml"):
        _write_data(frame.to_dicts(), args.format, args.output)
    elif args.format == "ndjson":
        _write_ndjson(frame.to_dicts(), args.output)
    else:
        flat = frame.with_columns(pl.col("failed").list.join(";")) if "failed" in frame.columns else frame
        if args.format in ("csv", "parquet"):
            _write_frame(flat, args.format, args.output)
        else:
            shown = [c for c in ("slot_name", "backend_id", "eligible", "failed", "score", "performance", "cost",
                                 "availability", "region") if c in flat.columns]
            with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=80):
                _write_bytes((str(flat.select(shown)) + "\n").encode("utf-8"), args.output)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    _check_output(args)
    registry = what_if_from_args(open_registry(args.registry, args), args)
    slots = _read_slots(args)
    if args.all:
        return _explain_all(registry, slots, args)
    diagnoses = []
    with progress_bar(len(slots), "explaining") as advance:
        for slot in slots:
            diagnoses.append((slot, registry.explain(slot)))
            advance()
    if args.format in ("table", "wide"):
        with rich_target(args.output, wide=args.format == "wide") as console:
            if len(diagnoses) > DETAIL_MAX_SLOTS:
                console.file.write("".join(f"{slot.slot_name}  {'optional' if slot.optional else 'required'}  "
                                           f"{diag}\n" for slot, diag in diagnoses))
                return EXIT_OK
            for slot, diag in diagnoses:
                head = Text(slot.slot_name, style="bold")
                head.append("  optional" if slot.optional else "  required", style="dim")
                console.print(head)
                console.print(Padding(diagnosis_block(diag), (0, 0, 1, 2), expand=False))
    elif args.format in ("json", "yaml"):
        _write_data([{**d.as_dict(), "optional": s.optional} for s, d in diagnoses], args.format, args.output)
    elif args.format == "ndjson":
        _write_ndjson(({**d.as_dict(), "optional": s.optional} for s, d in diagnoses), args.output)
    else:
        # One row per (slot, rejection code): a spreadsheet sorts and sums these.
        rows = [{"slot_name": s.slot_name, "optional": s.optional, "eligible": d.eligible, "total": d.total,
                 "code": code, "rejected": count, "detail": d.details.get(code, "")}
                for s, d in diagnoses for code, count in (sorted(d.rejected.items(), key=lambda kv: -kv[1])
                                                          or [(None, None)])]
        frame = pl.DataFrame(rows, schema={"slot_name": pl.String, "optional": pl.Boolean, "eligible": pl.Int64,
                                           "total": pl.Int64, "code": pl.String, "rejected": pl.Int64,
                                           "detail": pl.String})
        _write_frame(frame, args.format, args.output)
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
    for key in ("preferred_region", "consistency", "max_latency_p99", "max_latency_p50", "max_latency_p95",
                "max_latency_p999", "min_batch_size", "min_concurrency"):
        if getattr(args, key) is not None:
            query[key] = getattr(args, key)
    for key in ("requires_batch", "per_capability_throughput"):
        if getattr(args, key):
            query[key] = True
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
    registry = open_registry(args.registry, args)
    if args.file is not None:
        query = _read_query(args.file)
    else:
        [(_, query)] = validate_documents([("command line", "$", flags)], Query)
    prepared = registry.prepare(query)
    result = registry.query(prepared)
    diagnosis = registry.explain(prepared) if args.explain or not result.backends else None
    if args.format in ("json", "yaml", "csv", "parquet"):
        seed_shape = [{"backend_id": m.backend_id, "score": m.score, "reasons": [r.type for r in m.reasons]}
                      for m in result.backends]
    if args.format in ("table", "wide"):
        with rich_target(args.output, wide=True) as console:
            if result.backends:
                print_table(console, (Column("#", right=True), Column("backend"), *SCORE_COLUMNS),
                             [[str(rank), m.backend_id, *score_cells(m)]
                              for rank, m in enumerate(result.backends, 1)])
            console.print(Text(f"total_count: {result.total_count}", style="bold"))
            if diagnosis is not None:
                console.print(diagnosis_block(diagnosis))
    elif args.format in ("json", "yaml"):
        out: dict[str, Any] = {"backends": seed_shape, "total_count": result.total_count}
        if args.explain:
            out["diagnosis"] = diagnosis.as_dict()
        _write_data(out, args.format, args.output)
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

def _load_many(paths: Sequence[str], args: argparse.Namespace) -> Registry:
    """One registry from several files (``load_registry`` takes a list of
    paths): every file's problems and ids duplicated across files, together."""
    if len(paths) == 1:
        return open_registry(paths[0], args)
    return load_registry([Path(p) for p in paths], strict=not args.non_strict,
                         allow_inline_secrets=args.allow_inline_secrets)


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


_SNIFF_BYTES = 1 << 16


def _looks_like_registrations(path: str) -> bool:
    """Whether a registry file or directory can skip kind detection: a
    snapshot, or a file whose first 64 KiB carry a registration's keys and
    no other kind's (a second parse of a large YAML registry costs seconds)."""
    p = Path(path)
    if not p.is_file():
        return False
    if p.suffix.lower() not in _REGISTRY_SUFFIXES:
        return True
    with open(p, "rb") as handle:
        head = handle.read(_SNIFF_BYTES).decode("utf-8", "replace")
    import re

    keys = set(re.findall(r'(?m)^(?:- )?([a-z_]+):|"([a-z_]+)"\s*:', head))
    names = {a or b for a, b in keys}
    return bool(names & {"backend_id", "backends"}) and not names & {"slot_name", "slots", "slot_requirement",
                                                                     "pattern", "query", "policy"}


def _holds_only_registrations(path: str) -> bool:
    """A registry to summarise (and to check for ids duplicated across its
    files), not a mix of kinds: decided from the first bytes of a file, else
    from every parsed document of a directory. What cannot be read is left
    to the registry loader, which reports it."""
    if _looks_like_registrations(path):
        return True
    try:
        docs = source_documents(path, _REGISTRY_SUFFIXES)
    except RegistryError:
        return True
    kinds = {document_kind(doc) if isinstance(doc, (dict, list)) else "registration" for _, doc in docs}
    return kinds <= {"registration"}


def _validate_documents(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every document of every path checked as its kind (``--kind`` or its
    shape); all problems raised together."""
    strict, allow = not args.non_strict, args.allow_inline_secrets
    checked: list[dict[str, Any]] = []
    errors: list[tuple[str, str]] = []
    first_id: dict[str, str] = {}
    for path in args.registry:
        for name, doc in source_documents(path, _REGISTRY_SUFFIXES):
            kind = args.kind or document_kind(doc)
            if kind is None and not (isinstance(doc, dict) and doc):
                kind = "registration"  # not a mapping: the registration's own error says what was expected
            if kind is None:
                errors.append((f"{name} $", "Expected a registration, slot, pattern, query or policy document "
                                            "(none recognised by its keys; `--kind` names one)"))
                continue
            try:
                values = validate_document(name, doc, kind, strict=strict, allow_inline_secrets=allow)
            except RegistryError as exc:
                errors += exc.errors
                continue
            if kind == "registration":
                # Ids stay unique across the documents of a mixed set too.
                for value in values:
                    if value.backend_id in first_id:
                        errors.append((f"{name} $.backend_id", f"Duplicate backend_id `{value.backend_id[:60]}`, "
                                                               f"first defined at {first_id[value.backend_id]}"))
                    else:
                        first_id[value.backend_id] = f"{name} $.backend_id"
            label = f"registration block ({', '.join(map(str, doc))})" if kind == "fragment" else kind
            checked.append({"document": name, "kind": label,
                            "items": len(values)})
    if errors:
        raise RegistryError(errors)
    return checked


def cmd_validate(args: argparse.Namespace) -> int:
    _check_output(args)
    registrations = args.kind == "registration" or (
        args.kind is None and all(_holds_only_registrations(path) for path in args.registry))
    try:
        if registrations:
            registry = _load_many(args.registry, args)
        else:
            checked = _validate_documents(args)
    except RegistryError as exc:
        if args.format in ("json", "yaml"):
            exc = _cli_wording(exc)
            _write_data({"valid": False, "errors": [{"location": loc, "message": msg} for loc, msg in exc.errors]},
                        args.format, None)
            return EXIT_INVALID
        raise
    if not registrations:
        if args.format in ("json", "yaml"):
            _write_data({"valid": True, "documents": checked}, args.format, args.output)
        else:
            with rich_target(args.output) as console:
                for doc in checked:
                    line = Text(doc["document"], style="bold")
                    count = f" ({doc['items']})" if doc["items"] != 1 else ""
                    line.append(f": {doc['kind']}{count}, valid", style="green")
                    console.print(line, soft_wrap=True)
        return EXIT_OK
    summary = registry_summary(registry)
    if args.format in ("json", "yaml"):
        _write_data({"sources": list(args.registry), **summary}, args.format, args.output)
        return EXIT_OK
    with rich_target(args.output) as console:
        render_summary(console, args.registry, summary)
    return EXIT_OK


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
    ("write_rps", "--write-rps", 0.0, "RPS", "write rate provisioned (billed by provisioned and reserved backends)"),
    ("read_rps", "--read-rps", 0.0, "RPS", "read rate provisioned (billed by provisioned and reserved backends)"),
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
    registry = open_registry(args.registry, args)
    table = estimate_cost(registry, workload)
    if args.format in ("table", "wide"):
        used = [term for term in COST_TERMS if table.get_column(term).fill_null(1.0).abs().sum() > 0]
        with rich_target(args.output, wide=True) as console:
            shown = ", ".join(f"{_COST_FLAGS[k].lstrip('-')} {quantity(workload[k])}" for k in WORKLOAD_KEYS
                              if workload[k] and (k != "hours" or workload["connections"]))
            console.print(Text(f"monthly cost for: {shown or 'an empty workload'}", style="bold"))
            columns = [Column("backend"),
                       *(Column(term.replace("transfer_", "xfer ").replace("_region", ""), right=True, style="dim")
                         for term in used),
                       Column("total", right=True, style="bold")]
            print_table(console, columns, [[row["backend_id"], *(money(row[t]) for t in used), money(row["total"])]
                                            for row in table.iter_rows(named=True)])
            unknown = table.get_column("total").null_count()
            if unknown:
                console.print(Text(f"{unknown} backend(s) declare no price for a term this workload uses: "
                                   "total unknown (—)", style="yellow"))
    elif args.format in ("json", "yaml"):
        _write_data({"workload": workload, "backends": table.to_dicts()}, args.format, args.output)
    elif args.format == "ndjson":
        _write_ndjson(table.to_dicts(), args.output)
    else:
        _write_frame(table, args.format, args.output)
    return EXIT_OK


# --- generate -------------------------------------------------------------------------------

_GENERATE_FORMATS = ("yaml", "json", "ndjson")


def cmd_generate(args: argparse.Namespace) -> int:
    from .synthetic import generate_registry, generate_slots

    if (args.backends is None) == (args.slots is None):
        raise UsageError("Give one of `--backends N` or `--slots N`")
    count = args.backends if args.backends is not None else args.slots
    if count < 1:
        raise UsageError(f"Expected a count >= 1, got `{count}`")
    kind = "backends" if args.backends is not None else "slots"
    # The format: a name (to stdout) or the file's extension; an unknown
    # extension is refused rather than silently written as YAML.
    output: str | None = args.output
    if output in _GENERATE_FORMATS:
        fmt, output = output, None
    else:
        fmt = _EXTENSION_FORMATS.get(Path(output).suffix.lower(), "")
        allowed = _GENERATE_FORMATS + (("csv", "parquet") if kind == "slots" else ())
        if fmt not in allowed:
            raise UsageError(f"Expected `-o` to be {', '.join(f'`{f}`' for f in _GENERATE_FORMATS)} or a file "
                             f"ending in {', '.join(e for e, f in _EXTENSION_FORMATS.items() if f in allowed)}, "
                             f"got `{output}`")
    with phase(f"generating {count} {kind}"):
        items = generate_registry(count, args.seed) if kind == "backends" else generate_slots(count, args.seed)
    with phase(f"writing {count} {kind}"):
        if fmt == "json":
            _write_bytes(orjson.dumps({kind: items}, option=orjson.OPT_APPEND_NEWLINE), output)
        elif fmt == "ndjson":
            _write_ndjson(items, output)
        elif fmt in ("csv", "parquet"):
            # A slot table: list fields as `;`-separated cells in CSV, lists in Parquet (load_slots reads both).
            frame = pl.DataFrame([{**{k: v for k, v in slot.items() if k != "performance"},
                                   **(slot.get("performance") or {})} for slot in items], infer_schema_length=None)
            if fmt == "csv":
                frame = frame.with_columns(pl.col(c).list.join(";") for c, t in frame.schema.items()
                                           if isinstance(t, pl.List))
            _write_frame(frame, fmt, output)
        else:
            import yaml

            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            _write_bytes(yaml.dump({kind: items}, Dumper=dumper, sort_keys=False,
                                   default_flow_style=None).encode("utf-8"), output)
    if output is not None:
        print(f"wrote {count} {kind} (seed {args.seed}) to {output}", file=sys.stderr)
    return EXIT_OK


# --- assign and compile (capacity-aware placement, snapshots) --------------------------------

def cmd_assign(args: argparse.Namespace) -> int:
    _check_output(args)
    today = open_registry(args.registry, args)
    registry = what_if_from_args(today, args)
    slots = _read_slots(args)
    # A dry run: the plan is shown, the registry's live usage is not changed.
    optimal = args.method == "optimal"
    if args.time_limit is not None and not optimal:
        raise UsageError("`--time-limit` applies to `--method optimal` only")
    current = _read_current(args.current) if getattr(args, "current", None) else None
    if current is not None and optimal:
        raise UsageError("`--current` (stickiness) applies to `--method greedy` only")
    extra = {"time_limit": args.time_limit} if args.time_limit is not None else {}
    if current is not None:
        extra["current"] = current
    with phase(f"placing {len(slots)} slots" + (" (optimal)" if optimal else "")):
        plan = registry.assign(slots, allow_unplaced=True, method=args.method, **extra)
    report = getattr(plan, "report", None)
    diff = None
    if registry is not today:
        from .what_if import plan_diff

        with phase("placing on today's registry"):
            diff = plan_diff(today.assign(slots, allow_unplaced=True, method=args.method, **extra), plan)
    bindings = [{"slot_name": b.slot_name, "backend_id": b.backend_id, "score": b.score} for b in plan.bindings]
    moves = [{"slot_name": m.slot_name, "from": m.from_backend, "to": m.to_backend} for m in plan.moves]
    unplaced = [{"slot_name": u.slot_name, "optional": u.optional, "diagnosis": u.diagnosis.as_dict()}
                for u in plan.unplaced]
    utilisation: pl.DataFrame = plan.utilisation
    used = utilisation.filter(pl.col("placed_slots") > 0)
    if args.format in ("table", "wide"):
        with rich_target(args.output, wide=True) as console:
            print_table(console, (Column("slot"), Column("backend"), Column("score", right=True)),
                         [[b["slot_name"], b["backend_id"], f"{b['score']:.4f}"] for b in bindings],
                         title="placement")
            if used.height:
                print_utilisation(console, used)
            if len(plan.unplaced) > DETAIL_MAX_SLOTS:
                console.file.write("".join(f"{u.slot_name}  {'optional' if u.optional else 'required'}  unplaced: "
                                           f"{u.diagnosis}\n" for u in plan.unplaced))
            for u in plan.unplaced if len(plan.unplaced) <= DETAIL_MAX_SLOTS else ():
                head = Text(u.slot_name, style="bold")
                head.append("  unplaced (optional)" if u.optional else "  UNPLACED (required)",
                            style="yellow" if u.optional else "bold red")
                console.print(head)
                console.print(Padding(diagnosis_block(u.diagnosis), (0, 0, 1, 2), expand=False))
            for m in moves:
                console.print(Text(f"{m['slot_name']}  moves {m['from']} -> {m['to'] or '(unplaced)'}"))
            console.print(Text(f"{plural(len(slots), 'slot')}: {len(bindings)} placed, "
                               f"{len(unplaced)} unplaced" + (f", {len(moves)} moved" if current else "")))
            if report is not None:
                console.print(Text(solver_line(report), style="bold"))
            if diff is not None:
                console.print(Text(f"what-if against today: {diff}", style="bold"))
                for move in (*diff.moved, *diff.unplaced, *diff.placed):
                    console.print(Text(f"  {move.slot_name}: {move.before or 'unplaced'} -> "
                                       f"{move.after or 'unplaced'}"))
    elif args.format in ("json", "yaml"):
        summary = {"slots": len(slots), "placed": len(bindings),
                   "unplaced_optional": sum(1 for u in unplaced if u["optional"]),
                   "unplaced_required": sum(1 for u in unplaced if not u["optional"])}
        data = {"bindings": bindings, "unplaced": unplaced, "utilisation": utilisation.to_dicts(), "summary": summary,
                **({"solver": report.as_dict()} if report is not None else {}),
                **({"what_if": diff.as_dict()} if diff is not None else {})}
        if current is not None:
            data["moves"] = moves
        _write_data(data, args.format, args.output)
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


def solver_line(report: Any) -> str:
    """The optimal plan against greedy's, in one line."""
    proof = "proved optimal" if report.proved_optimal else f"not proved optimal ({report.status})"
    return (f"optimal: {report.optimal_placed} placed (greedy {report.greedy_placed}, "
            f"{report.extra_placed:+d}), total score {report.optimal_score:.4f} (greedy {report.greedy_score:.4f}); "
            f"{proof} in {report.seconds:.2f} s of {report.time_limit:g} s")


def cmd_catalogue(args: argparse.Namespace) -> int:
    """The page's core capabilities and the patterns that need them; with
    ``--capability`` the patterns needing one, with ``--pattern`` what one
    needs (and, given a registry, the backends that can serve it)."""
    from .catalogue import CAPABILITIES, pattern_capabilities, patterns_needing

    _check_output(args)
    if args.capability and args.pattern:
        raise UsageError("Give either `--capability` or `--pattern`, not both")
    if args.registry and not args.pattern:
        raise UsageError("`--registry` answers which backends serve `--pattern`")
    if args.capability:
        value: Any = {"capability": args.capability, "patterns": patterns_needing(args.capability)}
        lines = [f"{args.capability}: needed by {', '.join(value['patterns']) or 'no pattern'}"]
    elif args.pattern:
        value = {"pattern": args.pattern, "capabilities": pattern_capabilities(args.pattern),
                 "variants": pattern_capabilities(args.pattern, optional=True)[len(pattern_capabilities(
                     args.pattern)):]}
        lines = [f"{args.pattern} needs: {', '.join(value['capabilities']) or 'no core capability'}"
                 + (f" (variants also use {', '.join(value['variants'])})" if value["variants"] else "")]
        if args.registry:
            result = open_registry(args.registry, args).backends_for_pattern(args.pattern)
            value["backends"] = [{"backend_id": m.backend_id, "score": m.score} for m in result.backends]
            lines.append(f"backends that can serve it ({result.total_count}): "
                         + (", ".join(m.backend_id for m in result.backends) or "none"))
    else:
        value = [{"capability": c.name, "group": c.group, "description": c.description,
                  "patterns": patterns_needing(c.name)} for c in CAPABILITIES.values()]
        lines = [f"{c['capability']:<16} {c['group']:<11} {c['description']:<36} {', '.join(c['patterns'])}"
                 for c in value]
    if args.format in ("json", "yaml"):
        _write_data(value, args.format, args.output)
    else:
        write_text("".join(line + "\n" for line in lines), args.output)
    return EXIT_OK


def _read_current(path: str) -> dict[str, str]:
    """``--current FILE``: a YAML/JSON mapping of slot_name to the backend_id it is bound to now."""
    docs = source_documents(path, _REGISTRY_SUFFIXES)
    if len(docs) != 1 or not isinstance(docs[0][1], Mapping):
        raise RegistryError("Expected one mapping of slot_name to backend_id", str(path))
    return dict(docs[0][1])


def cmd_compile(args: argparse.Namespace) -> int:
    registry = open_registry(args.registry, args)
    with phase(f"writing {args.output}"):
        registry.save(args.output)
    print(f"compiled {len(registry)} backends to {args.output}", file=sys.stderr)
    return EXIT_OK


def _enable_completion(parser: argparse.ArgumentParser) -> None:
    """Shell completion (argcomplete): answers the shell's completion request
    and exits; a no-op on every ordinary run (one environment lookup)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)


# --- the parser -----------------------------------------------------------------------------

def _formats(parser: argparse.ArgumentParser, choices: Sequence[str]) -> None:
    parser.add_argument("--format", choices=choices, default=None,
                        help="output format (default: from -o's extension, else table)")
    parser.add_argument("-o", "--output", metavar="FORMAT|FILE",
                        help=f"a format ({', '.join(choices)}) printed to stdout, or a file to write "
                             "(its extension picks the format; `-o ./json` for a file named json)")
    parser.set_defaults(format_choices=tuple(choices))


def _loading_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loading")
    group.add_argument("--non-strict", action="store_true",
                       help="ignore unknown fields (and unknown slot-table columns) instead of refusing them")
    group.add_argument("--allow-inline-secrets", action="store_true",
                       help="accept secrets written inline instead of ${SECRET:path} (never printed)")


def _policy_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("policy", "how backends are scored and filtered (docs/contract.md §2)")
    group.add_argument("--policy", metavar="FILE", help="a policy document (YAML/JSON); flags below override it")
    for dest, flag in _POLICY_FLAGS[:5]:
        group.add_argument(flag, dest=dest, type=float, metavar="W" if dest.startswith("w_") else "X",
                           help=f"`{dest}` of the score" + (" (default 2.0)" if dest == "perf_cap" else ""))
    group.add_argument("--capacity-basis", dest="capacity_basis", choices=("max", "available"),
                       help="compare rps/storage minimums with the maximum (default) or with max - current")
    group.add_argument("--default-health", dest="health_statuses", action="append", metavar="STATUS",
                       help="health statuses allowed when a slot names none (repeatable; default healthy, "
                            "degraded, unknown)")
    group.add_argument("--strategy", dest="strategy", choices=("spread", "binpack"),
                       help="performance term: headroom (spread, default) or fullness after placement (binpack)")
    group.add_argument("--w-affinity", dest="w_affinity", type=float, metavar="W",
                       help="weight of a slot's `preferences` (default 0.1)")
    group.add_argument("--degraded-penalty", dest="degraded_penalty", type=float, metavar="X",
                       help="subtracted from a degraded backend's score (default 0: off)")
    group.add_argument("--incident-penalty", dest="incident_penalty", type=float, metavar="X",
                       help="subtracted from the score of a backend with an open incident (default 0: off)")
    group.add_argument("--stickiness", dest="stickiness", type=float, metavar="X",
                       help="margin another backend must beat a slot's current_backend by (default 0)")
    group.add_argument("--threads", type=int, metavar="N",
                       help="threads of the batch kernel (default: $PRISM_MATCH_THREADS, else every core)")


def _what_if_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("what-if", "answer for the registry as it would be, without changing it")
    group.add_argument("--set", action="append", metavar="ID.FIELD=VALUE",
                       help="e.g. kafka-prod.status=unhealthy, pg.capacity=*1.5, pg.max_write_rps=200000 "
                            "(repeatable; `assign` also shows what moves against today)")
    group.add_argument("--remove", action="append", metavar="ID", help="as if this backend were removed (repeatable)")


def _completer(choices: Sequence[str]) -> Callable[..., Sequence[str]]:
    return lambda **_: choices


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prism-match", description="Match Prism pattern slots to backends of a registry.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"prism-match {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr: -v load summaries and slow phases, -vv everything")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    all_formats = ("table", "wide", "json", "yaml", "ndjson", "csv", "parquet")

    p = sub.add_parser("validate", help="check documents of any kind; summarise or list every problem")
    p.add_argument("registry", nargs="+", metavar="FILE",
                   help="YAML/JSON file or directory: registrations, slots, a pattern, a query or a policy")
    p.add_argument("--kind", choices=KINDS, help="validate as this kind (default: recognised by shape)")
    _formats(p, ("table", "json", "yaml"))
    _loading_flags(p)
    p.set_defaults(run=cmd_validate)

    def command(name: str, help_text: str, run: Any, *, slots: bool = False, slots_help: str | None = None,
                policy: bool = True):
        # A subcommand on one registry (and a slots file), dispatching to ``run``.
        p = sub.add_parser(name, help=help_text)
        p.add_argument("registry", metavar="REGISTRY")
        if slots:
            p.add_argument("slots", metavar="SLOTS" if name != "bind" else "PATTERN", help=slots_help)
        _loading_flags(p)
        if policy:
            _policy_flags(p)
        if name in ("match", "explain", "assign"):
            _what_if_flags(p)
        p.set_defaults(run=run)
        return p

    p = command("match", "the best backend(s) for each slot, with scores and reasons", cmd_match, slots=True,
                slots_help="slot requirements: YAML/JSON (a list, slots:, or a pattern), or a CSV/Parquet/NDJSON table")
    p.add_argument("-k", type=int, default=1, help="backends per slot (default: 1)")
    p.add_argument("--explain", action="store_true", help="add each slot's diagnosis")
    _formats(p, all_formats)

    p = command("bind", "bind every slot of a pattern to its best backend", cmd_bind, slots=True,
                slots_help="a pattern document: `pattern:` with named `slots`")
    p.add_argument("--slot-bindings", action="store_true",
                   help="print the page's slot_binding documents (pattern_id, slot, backend, the reasons that "
                        "apply)")
    p.add_argument("--all-reasons", action="store_true",
                   help="with --slot-bindings: every reason, those that scored 0 included")
    p.add_argument("-k", type=int, default=1, help="backends shown per slot (default: 1)")
    p.add_argument("--explain", action="store_true", help="add each slot's diagnosis")
    _formats(p, all_formats)

    p = command("assign", "capacity-aware placement of the slots (greedy in order, or optimal)", cmd_assign,
                slots=True)
    p.add_argument("--method", choices=("greedy", "optimal"), default="greedy",
                   help="greedy: slots in order, each on its best backend (default); optimal: the most slots, "
                        "then the best total score, solved with HiGHS")
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="seconds the optimal solver may take (default 10); the plan found so far is kept")
    p.add_argument("--current", metavar="FILE",
                   help="the bindings in place now (YAML/JSON: slot_name: backend_id); kept under --stickiness, "
                        "and the plan lists what would move (greedy)")
    _formats(p, all_formats)

    p = command("query", "every eligible backend for a query (the seed's Backend Querying)", cmd_query)
    p.add_argument("--file", metavar="QUERY", help="a query document (`query:` wrapper accepted)")
    p.add_argument("--capability", action="append", metavar="NAME", help="required capability (repeatable)")
    p.add_argument("--interface", action="append", metavar="NAME", help="required interface (repeatable)")
    p.add_argument("--region", action="append", metavar="REGION", help="serves one of these regions")
    p.add_argument("--health", action="append", metavar="STATUS",
                   help="health status allowed (repeatable)").completer = _completer(HEALTH_STATUSES)
    p.add_argument("--type", action="append", metavar="TYPE",
                   help="backend type allowed (repeatable)").completer = _completer(BACKEND_TYPES)
    p.add_argument("--compliance", action="append", metavar="TAG", help="compliance tag required (repeatable)")
    p.add_argument("--min-write-rps", type=float, metavar="RPS")
    p.add_argument("--min-read-rps", type=float, metavar="RPS")
    p.add_argument("--min-storage", metavar="SIZE", help="e.g. 1TB")
    p.add_argument("--preferred-region", metavar="REGION", help="scored, not filtered")
    p.add_argument("--consistency", metavar="LEVEL", help="strong, bounded_staleness, session or eventual")
    p.add_argument("--max-latency-p99", metavar="DURATION", help="e.g. 25ms")
    for pct in ("p50", "p95", "p999"):
        p.add_argument(f"--max-latency-{pct}", metavar="DURATION",
                       help=f"bound on each required capability's {pct} (unstated passes)")
    p.add_argument("--requires-batch", action="store_true",
                   help="each required capability states supports_batch: true (unstated fails)")
    p.add_argument("--min-batch-size", type=int, metavar="N", help="implies --requires-batch; max_batch_size >= N")
    p.add_argument("--min-concurrency", type=int, metavar="N",
                   help="each required capability's max_concurrent_operations >= N (unstated fails)")
    p.add_argument("--per-capability-throughput", action="store_true",
                   help="a required capability's own max_write_rps/max_read_rps must hold the minimums too")
    p.add_argument("--explain", action="store_true", help="add the diagnosis")
    _formats(p, all_formats)

    p = command("explain", "why each slot has the backends it has", cmd_explain, slots=True)
    p.add_argument("--all", action="store_true",
                   help="every backend: each rule's verdict and every score term (the score table)")
    _formats(p, ("table", "wide", "json", "yaml", "ndjson", "csv", "parquet"))

    p = command("cost", "monthly cost of a workload on every backend, cheapest first", cmd_cost, policy=False)
    for dest, flag, default, metavar, help_text in _COST_OPTIONS:
        p.add_argument(flag, dest=dest, type=float, default=default, metavar=metavar, help=help_text)
    _formats(p, all_formats)

    p = sub.add_parser("generate", help="a synthetic registry (or slot list) for trials")
    p.add_argument("--backends", type=int, metavar="N")
    p.add_argument("--slots", type=int, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, metavar="FORMAT|FILE",
                   help="yaml, json or ndjson to stdout; or a file: .yaml/.yml, .json, .ndjson, "
                        "and for --slots also .csv/.parquet")
    p.set_defaults(run=cmd_generate)

    p = command("compile", "compile a registry into a snapshot that loads fast", cmd_compile, policy=False)
    p.add_argument("-o", "--output", required=True, metavar="SNAPSHOT")

    p = sub.add_parser("catalogue", help="the page's core capabilities and the patterns that need them")
    p.add_argument("--capability", metavar="NAME", help="which patterns need this capability")
    p.add_argument("--pattern", metavar="NAME", help="which capabilities this pattern needs (e.g. Queue, PubSub)")
    p.add_argument("--registry", metavar="REGISTRY", help="with --pattern: which of its backends can serve it")
    _formats(p, ("table", "json", "yaml"))
    _loading_flags(p)
    p.set_defaults(run=cmd_catalogue)

    p = sub.add_parser("schema", help="the JSON Schema of a document kind (for editors and CI)")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout")
    p.set_defaults(run=cmd_schema)
    add_health_parser(sub, open_registry)
    add_live_parsers(sub, open_registry)
    return parser


def _configure_logging(verbosity: int) -> None:
    """``-v``: INFO (load summaries, slow phases, health transitions) on
    stderr; ``-vv``: DEBUG. Without it the library's logger stays silent."""
    if verbosity <= 0:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)


def _cli_wording(exc: RegistryError) -> RegistryError:
    """The library's advice names keyword arguments; on the command line it
    names the flag instead."""
    errors = [(loc, msg.replace("pass allow_inline_secrets=True", "pass --allow-inline-secrets")
               .replace("strict=False", "--non-strict")) for loc, msg in exc.errors]
    return RegistryError(errors) if errors != list(exc.errors) else exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (see the module docstring)."""
    parser = build_parser()
    _enable_completion(parser)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(exc.usage)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    _configure_logging(args.verbose)
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            print(f"error: Expected `--threads` >= 1, got `{args.threads}`", file=sys.stderr)
            return EXIT_INVALID
        os.environ["PRISM_MATCH_THREADS"] = str(args.threads)
    try:
        return args.run(args)
    except RegistryError as exc:
        print(f"error: {_cli_wording(exc)}", file=sys.stderr)
        return EXIT_INVALID
    except UsageError as exc:
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
