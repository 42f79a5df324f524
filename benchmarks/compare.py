"""prism_match against its peers, on the same workloads, measured in one run.

Contenders: prism_match; the straightforward numpy baseline (baseline.py);
a polars expression pipeline and DuckDB SQL with a window function for top-k
(peers.py); the seed's own pure-Python algorithm adapted to SPEC §3–§4
(seed_algorithm.py). Every contender gets the same registry and the same
slots already prepared in its own terms (names → bits, units → numbers), so
what is timed is matching; preparing is timed separately where it is the
question (mapping slots). Each contender's answer is checked against
``Registry.match`` and the table says whether it agrees.

Timing: timeit-style. Each contender is calibrated (calls per sample so a
sample takes at least ``--min-time``), then samples are taken in interleaved
rounds, so every contender sees the same machine noise; a contender gets up
to ``--repeat`` samples within ``--budget`` seconds. Medians are reported,
and ratios of medians from this one run. These machines are noisy: ratios
travel better than times.

Output: a Markdown table and the machine it ran on on stdout, and the same
as JSON in ``benchmarks/results/latest.json`` (``--json`` to change).

    .venv/bin/python benchmarks/compare.py            # the full comparison (a few minutes)
    .venv/bin/python benchmarks/compare.py --smoke    # tiny sizes, seconds (CI)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the benchmarks package importable
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402
import polars as pl  # noqa: E402

import prism_match  # noqa: E402
from prism_match import RegistryError, load_registry  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.baseline import BaselineRegistry  # noqa: E402
from benchmarks.peers import DuckDBMatcher, PolarsMatcher, slot_tables  # noqa: E402
from benchmarks.seed_algorithm import match_slot_to_backend, seed_backends, seed_requirement  # noqa: E402

K = 5


# --- timing -----------------------------------------------------------------------------

@dataclass
class Timing:
    median: float                 # seconds per call
    samples: list[float]          # seconds per call, one per sample
    number: int                   # calls per sample
    error: str | None = None
    result: Any = None            # what the contender returned (checked against Registry.match)


def race(contenders: dict[str, Callable[[], Any]], *, repeat: int, budget: float,
         min_time: float) -> dict[str, Timing]:
    """Median seconds per call of each contender, sampled in interleaved rounds."""
    numbers: dict[str, int] = {}
    samples: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    results: dict[str, Any] = {}
    gc.collect()  # once: with large registries alive, a collection per sample would cost seconds
    for name, fn in contenders.items():  # calibrate: the first sample of each
        # timeit's autorange: 1, 2, 5, 10, 20, 50, … calls until a sample lasts min_time.
        for number in (10**e * m for e in itertools.count() for m in (1, 2, 5)):
            try:
                t, results[name] = _sample(fn, number)
            except RegistryError as exc:
                errors[name] = f"RegistryError: {str(exc).splitlines()[0][:90]}"
                break
            if t >= min_time or number >= 1_000_000:
                break
        if name not in errors:
            numbers[name] = number
            samples[name] = [t / number]
    for _ in range(repeat - 1):
        active = [n for n in samples if len(samples[n]) < repeat
                  and sum(samples[n]) * numbers[n] + samples[n][0] * numbers[n] <= budget]
        if not active:
            break
        for name in active:
            samples[name].append(_sample(contenders[name], numbers[name])[0] / numbers[name])
    out = {name: Timing(statistics.median(s), s, numbers[name], result=results[name])
           for name, s in samples.items()}
    out |= {name: Timing(float("nan"), [], 0, error) for name, error in errors.items()}
    return out


def _sample(fn: Callable[[], Any], number: int) -> tuple[float, Any]:
    """(seconds for ``number`` calls, the last call's result)."""
    gc.disable()  # as timeit does: a collection is noise, not the contender's cost
    try:
        result = None
        start = time.perf_counter()
        for _ in range(number):
            result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


# --- results ----------------------------------------------------------------------------

@dataclass
class Row:
    workload: str
    contender: str
    seconds: float                # median per call (per whole workload)
    ratio: float | None           # seconds / the workload's reference contender's seconds
    samples: int
    agrees: bool | None = None    # same top-k as Registry.match (None: not checked)
    pairs_per_second: float | None = None
    note: str = ""


@dataclass
class Target:
    issue: int
    what: str
    target: str
    measured: str
    ok: bool | None               # None: could not be measured (API missing)


@dataclass
class Report:
    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, workload: str, timings: dict[str, Timing], reference: str, *,
            agrees: dict[str, bool] | None = None, pairs: int | None = None,
            notes: dict[str, str] | None = None, scale: dict[str, float] | None = None) -> None:
        scale = scale or {}
        ref = timings[reference].median * scale.get(reference, 1.0) if reference in timings else float("nan")
        for name, t in timings.items():
            seconds = t.median * scale.get(name, 1.0)
            note = (notes or {}).get(name, "") if t.error is None else t.error
            self.rows.append(Row(
                workload=workload, contender=name, seconds=seconds,
                ratio=None if t.error else seconds / ref if ref == ref and ref > 0 else None,
                samples=len(t.samples), agrees=(agrees or {}).get(name),
                pairs_per_second=pairs / seconds if pairs and not t.error and seconds > 0 else None,
                note=note))

    def target(self, issue: int, what: str, target: str, measured: str, ok: bool | None) -> None:
        self.targets.append(Target(issue, what, target, measured, ok))


def fmt_time(seconds: float) -> str:
    if seconds != seconds:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    try:
        import psutil  # optional

        memory = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages * size / 2**30:.0f} GiB"
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "memory": memory,
        "os": platform.platform(), "python": platform.python_version(),
        "prism_match": prism_match.__version__, "commit": commit,
        "numpy": np.__version__, "polars": pl.__version__, "duckdb": duckdb.__version__,
    }


# --- workloads --------------------------------------------------------------------------

def _agreement(timings: dict[str, Timing], as_ids: dict[str, Callable[[Any], Any]], expect: Any) -> dict[str, bool]:
    """Whether each contender's result (from its timed run) names the backends Registry.match names."""
    return {name: as_ids[name](t.result) == expect for name, t in timings.items() if t.error is None}


class Workloads:
    def __init__(self, args: argparse.Namespace, report: Report):
        self.args = args
        self.report = report
        self.opts = dict(repeat=args.repeat, budget=args.budget, min_time=args.min_time)

    def log(self, text: str) -> None:
        print(f"· {text}", file=sys.stderr, flush=True)

    # load + compile -------------------------------------------------------------------

    def load(self, n: int) -> None:
        self.log(f"load + compile {n:,} backends")
        sources = {fmt: common.registry_source(n, fmt) for fmt in ("json", "yaml")}
        timings = race({
            "prism_match JSON file": lambda: load_registry(sources["json"]),
            "prism_match YAML file": lambda: load_registry(sources["yaml"]),
            "prism_match list of dicts": lambda: load_registry(common.documents(n)),
        }, **{**self.opts, "min_time": 0.0})
        self.report.add(f"load + compile, {n:,} backends", timings, "prism_match JSON file",
                        notes={"prism_match list of dicts": "includes orjson decoding the cached file"})
        registry = common.registry(n)
        per_backend = registry.columns.nbytes() / len(registry)
        self.report.values["bytes_per_backend"] = per_backend
        json_t, yaml_t = timings["prism_match JSON file"], timings["prism_match YAML file"]
        self.report.target(2, f"load + compile {n:,} backends from JSON", "< 0.3 s", fmt_time(json_t.median),
                           json_t.median < 0.3 if not json_t.error else False)
        self.report.target(2, f"load + compile {n:,} backends from YAML", "< 2 s",
                           yaml_t.error or fmt_time(yaml_t.median), yaml_t.median < 2 if not yaml_t.error else False)
        self.report.target(2, "compiled columns per backend (ids excluded)", "< 200 bytes", f"{per_backend:.0f} bytes",
                           per_backend < 200)

    # single matches -------------------------------------------------------------------

    def single(self, n: int, selectivity: str = "medium") -> dict[str, Timing]:
        self.log(f"prepared top-{K} match, {n:,} backends ({selectivity} slot)")
        registry = common.registry(n)
        prepared = registry.prepare(common.selectivity_slot(selectivity))
        baseline = BaselineRegistry(registry)
        b_slot = baseline.prepare(prepared)
        polars_m, duck = PolarsMatcher(registry), DuckDBMatcher(registry)
        s_table, s_caps = slot_tables([prepared])
        seed = seed_backends(registry)
        seed_req = seed_requirement(prepared, registry.policy.health_statuses)
        contenders = {
            "prism_match": lambda: registry.match(prepared, K),
            "numpy baseline": lambda: baseline.topk(b_slot, K),
            "polars": lambda: polars_m.topk_chunk(s_table, s_caps, K),
            "DuckDB SQL": lambda: duck.topk_chunk(s_table, s_caps, K),
            "seed algorithm (Python)": lambda: match_slot_to_backend(seed_req, seed, K),
        }
        timings = race(contenders, **self.opts)
        duck.close()
        ids = registry.backend_ids
        as_ids = {
            "prism_match": lambda r: [m.backend_id for m in r],
            "numpy baseline": lambda r: [ids[i] for i in r[0]],
            "polars": lambda r: [ids[b] for b in r["b"]],
            "DuckDB SQL": lambda r: [ids[b] for b in r["b"]],
            "seed algorithm (Python)": lambda r: [b for b, _ in r],
        }
        agrees = _agreement(timings, as_ids, [m.backend_id for m in registry.match(prepared, K)])
        self.report.add(f"match top-{K}, prepared {selectivity} slot, {n:,} backends", timings, "prism_match",
                        agrees=agrees, pairs=n)
        return timings

    def mapping(self, n: int) -> None:
        self.log(f"mapping slot vs prepared, {n:,} backends")
        registry = common.registry(n)
        mapping = common.selectivity_slot("medium")
        prepared = registry.prepare(mapping)
        registry.match(mapping, K)  # the content cache now holds it
        # A new mapping on every call (as a placement service sees them): a
        # pool of distinct slots, larger than the cache, read in turn.
        next_new = common.slot_stream("medium")
        timings = race({
            "prism_match prepared": lambda: registry.match(prepared, K),
            "prism_match mapping (content cache)": lambda: registry.match(mapping, K),
            "prism_match mapping (new each call)": lambda: registry.match(next_new(), K),
            "prism_match mapping (prepare each time)": lambda: registry.match(registry.prepare(mapping), K),
        }, **self.opts)
        self.report.add(f"match top-{K}, mapping vs prepared slot, {n:,} backends", timings, "prism_match prepared")
        base = timings["prism_match prepared"].median
        for name, label in (("prism_match mapping (content cache)", "cached"),
                            ("prism_match mapping (new each call)", "new each call"),
                            ("prism_match mapping (prepare each time)", "prepared each call")):
            ratio = timings[name].median / base
            self.report.target(3, f"mapping slot ({label}) vs prepared, {n:,} backends", "≤ 3×",
                               f"{ratio:.1f}×", ratio <= 3)

    def update(self, n: int) -> None:
        self.log("update")
        registry = common.fresh_registry(n)
        bid = registry.backend_ids[n // 2]
        update = registry.update
        timings = race({
            "prism_match update(write_rps)": lambda: update(bid, write_rps=1234.0),
            "prism_match update(status)": lambda: update(bid, status="healthy"),
            "prism_match update(all six fields)": lambda: update(bid, write_rps=1234.0, read_rps=5678.0,
                                                                  storage_used=1e9, namespace_count=3,
                                                                  status="healthy", uptime=99.9),
        }, **self.opts)
        self.report.add(f"update live state, {n:,} backends", timings, "prism_match update(write_rps)")
        t = timings["prism_match update(write_rps)"].median
        self.report.target(3, "update (one field)", "< 1 µs", fmt_time(t), t < 1e-6)

    # batches --------------------------------------------------------------------------

    def batch(self, m: int, n: int, *, peers: bool = True) -> None:
        """``peers=False`` leaves polars and DuckDB out (they scale linearly
        in slots, and a 10,000-slot batch costs each half a minute)."""
        self.log(f"match_many: {m:,} slots × {n:,} backends, top-{K}")
        registry = common.registry(n)
        slots = common.slots(m)
        prepared = [registry.prepare(s) for s in slots]
        baseline = BaselineRegistry(registry)
        b_slots = [baseline.prepare(p) for p in prepared]
        seed = seed_backends(registry)
        sample = prepared[: self.args.seed_sample]
        seed_reqs = [seed_requirement(p, registry.policy.health_statuses) for p in sample]
        contenders: dict[str, Callable[[], Any]] = {}
        if common.has_api("match_many"):
            contenders["prism_match match_many"] = lambda: registry.match_many(prepared, K)
            contenders["prism_match match_many, threads=1"] = lambda: registry.match_many(prepared, K, threads=1)
        contenders |= {
            "prism_match loop over match": lambda: [registry.match(p, K) for p in prepared],
            "numpy baseline, Python loop": lambda: [baseline.topk(s, K) for s in b_slots],
        }
        duck = None
        if peers:
            polars_m, duck = PolarsMatcher(registry), DuckDBMatcher(registry)
            s_table, s_caps = slot_tables(prepared)
            contenders["polars (chunked cross join)"] = lambda: polars_m.topk(s_table, s_caps, K)
            contenders["DuckDB SQL (chunked, window top-k)"] = lambda: duck.topk(s_table, s_caps, K)
        contenders["seed algorithm (Python)"] = lambda: [match_slot_to_backend(r, seed, K) for r in seed_reqs]
        timings = race(contenders, **self.opts)
        if duck is not None:
            duck.close()
        ids = registry.backend_ids

        def per_slot(frame: pl.DataFrame) -> list[list[str]]:
            out: list[list[str]] = [[] for _ in prepared]
            for s, b in zip(frame["s"].to_list(), frame["b"].to_list()):
                out[s].append(ids[b])
            return out

        def from_match_many(frame: pl.DataFrame) -> list[list[str]]:
            out: list[list[str]] = [[] for _ in prepared]
            for s, bid in zip(frame["slot_index"].to_list(), frame["backend_id"].to_list()):
                if bid is not None:  # a slot with no match has one row with a null backend
                    out[s].append(bid)
            return out

        expect = [[x.backend_id for x in matches] for matches in timings["prism_match loop over match"].result]
        as_ids = {
            "prism_match match_many": from_match_many,
            "prism_match match_many, threads=1": from_match_many,
            "prism_match loop over match": lambda r: expect,
            "numpy baseline, Python loop": lambda r: [[ids[i] for i in idx] for idx, _ in r],
            "polars (chunked cross join)": per_slot,
            "DuckDB SQL (chunked, window top-k)": per_slot,
            # Only the sampled slots were run through the seed's algorithm.
            "seed algorithm (Python)": lambda r: [[b for b, _ in m] for m in r] + expect[len(sample):],
        }
        agrees = _agreement(timings, as_ids, expect)
        reference = "prism_match match_many" if "prism_match match_many" in timings else "prism_match loop over match"
        scale = {"seed algorithm (Python)": m / max(len(sample), 1)}
        notes = {"seed algorithm (Python)": f"{len(sample)} slots timed, scaled to {m:,}",
                 "polars (chunked cross join)": "all cores", "DuckDB SQL (chunked, window top-k)": "all cores",
                 "numpy baseline, Python loop": "one core"}
        self.report.add(f"match_many top-{K}, {m:,} slots × {n:,} backends", timings, reference,
                        agrees=agrees, pairs=m * n, notes=notes, scale=scale)
        loop = timings["numpy baseline, Python loop"].median
        if "prism_match match_many" in timings:
            for name, label in (("prism_match match_many", "default threads"),
                                ("prism_match match_many, threads=1", "one thread")):
                speedup = loop / timings[name].median
                self.report.target(4, f"match_many {m:,} × {n:,} ({label}) vs Python loop over the baseline",
                                   "≥ 15×", f"{speedup:.1f}× ({m * n / timings[name].median:.3g} pairs/s)",
                                   speedup >= 15)
                if (m, n) == (2_000, 10_000):
                    self.report.target(15, f"match_many {m:,} × {n:,} ({label}) vs Python loop over the baseline",
                                       "≥ 25×", f"{speedup:.1f}×", speedup >= 25)
        else:
            self.report.target(4, f"match_many {m:,} × {n:,} vs Python loop over the baseline", "≥ 15×",
                               "Registry.match_many not built yet (loop over match: "
                               f"{loop / timings['prism_match loop over match'].median:.1f}×)", None)

    def million(self, n: int) -> None:
        what = f"prepared top-{K} match at {n:,} backends"
        if not common.has_from_polars():
            self.report.target(4, what, "< 2 ms", "Registry.from_polars not built yet", None)
            return
        self.log(what)
        registry = common.registry(n)
        prepared = registry.prepare(common.selectivity_slot("medium"))
        baseline = BaselineRegistry(registry)
        b_slot = baseline.prepare(prepared)
        timings = race({"prism_match": lambda: registry.match(prepared, K),
                        "numpy baseline": lambda: baseline.topk(b_slot, K)}, **self.opts)
        ids = registry.backend_ids
        agrees = _agreement(timings, {"prism_match": lambda r: [m.backend_id for m in r],
                                      "numpy baseline": lambda r: [ids[i] for i in r[0]]},
                            [x.backend_id for x in registry.match(prepared, K)])
        self.report.add(f"match top-{K}, prepared medium slot, {n:,} backends", timings, "prism_match",
                        agrees=agrees, pairs=n)
        t = timings["prism_match"].median
        self.report.target(4, what, "< 2 ms", fmt_time(t), t < 2e-3)
        speedup = timings["numpy baseline"].median / t
        self.report.target(15, f"prepared top-{K} at {n:,} backends vs numpy baseline", "≥ 500×",
                           f"{speedup:.0f}×", speedup >= 500)

    def hard(self, n: int) -> None:
        """Issue 15's hard case: minimums that keep the performance term under
        its cap, on a registry where 30 % of the backends are copies."""
        what = f"match top-{K}, high minimums, 30 % copies, {n:,} backends"
        self.log(what)
        registry = common.hard_registry(n)
        prepared = registry.prepare(common.HARD_SLOT)
        baseline = BaselineRegistry(registry)
        b_slot = baseline.prepare(prepared)
        timings = race({"prism_match": lambda: registry.match(prepared, K),
                        "numpy baseline": lambda: baseline.topk(b_slot, K)}, **self.opts)
        ids = registry.backend_ids
        agrees = _agreement(timings, {"prism_match": lambda r: [m.backend_id for m in r],
                                      "numpy baseline": lambda r: [ids[i] for i in r[0]]},
                            [x.backend_id for x in registry.match(prepared, K)])
        self.report.add(what, timings, "prism_match", agrees=agrees, pairs=n)
        speedup = timings["numpy baseline"].median / timings["prism_match"].median
        self.report.target(15, f"hard case at {n:,} backends vs numpy baseline", "≥ 20×", f"{speedup:.0f}×",
                           speedup >= 20)
        common.hard_registry.cache_clear()

    def assign(self, m: int, n: int) -> None:
        what = f"assign {m:,} slots on {n:,} backends"
        if not common.has_api("assign"):
            self.report.target(4, what, "< 0.5 s", "Registry.assign not built yet", None)
            return
        self.log(what)
        registry = common.registry(n)
        prepared = [registry.prepare(s) for s in common.slots(m)]
        timings = race({"prism_match assign": lambda: registry.assign(prepared, allow_unplaced=True)},
                       **self.opts)
        plan = registry.assign(prepared, allow_unplaced=True)
        self.report.add(what, timings, "prism_match assign", pairs=m * n,
                        notes={"prism_match assign": f"dry run: {len(plan.bindings):,} placed, "
                                                     f"{len(plan.unplaced):,} unplaced"})
        t = timings["prism_match assign"].median
        self.report.target(4, what, "< 0.5 s", fmt_time(t), t < 0.5)


# --- output -----------------------------------------------------------------------------

def render(report: Report) -> str:
    m = report.machine
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; {m['os']}",
             f"Python {m['python']}, prism_match {m['prism_match']} ({m['commit'] or 'no commit'}), "
             f"numpy {m['numpy']}, polars {m['polars']}, DuckDB {m['duckdb']}; {m['date']}",
             "Medians of interleaved samples from one run; ratio = time / the workload's first row.", ""]
    lines += ["| workload | contender | median | ratio | pairs/s | same answer | samples | note |",
              "|---|---|---:|---:|---:|:-:|---:|---|"]
    previous = None
    for r in report.rows:
        workload = r.workload if r.workload != previous else ""
        previous = r.workload
        ratio = "—" if r.ratio is None else f"{r.ratio:.3g}×"
        pairs = "" if r.pairs_per_second is None else f"{r.pairs_per_second:.3g}"
        agree = {True: "yes", False: "**NO**", None: ""}[r.agrees]
        lines.append(f"| {workload} | {r.contender} | {fmt_time(r.seconds)} | {ratio} | {pairs} | {agree} | "
                     f"{r.samples} | {r.note} |")
    lines += ["", "| issue | target | aim | measured | met |", "|---|---|---|---|:-:|"]
    for t in report.targets:
        met = {True: "yes", False: "**no**", None: "n/a"}[t.ok]
        lines.append(f"| {t.issue} | {t.what} | {t.target} | {t.measured} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    parser.add_argument("--repeat", type=int, default=5, help="samples per contender at most (default 5)")
    parser.add_argument("--budget", type=float, default=4.0,
                        help="seconds per contender per workload before taking fewer samples (default 4)")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds a sample lasts at least (default 0.1)")
    parser.add_argument("--seed-sample", type=int, default=20,
                        help="slots the pure-Python seed algorithm is timed on in batches (default 20)")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "latest.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeat, args.budget, args.min_time, args.seed_sample = 2, 1.0, 0.0, 3
    sizes = dict(load=100, small=100, large=300, batch=[(20, 200)], million=1_000, assign=(20, 100), hard=[300]) \
        if args.smoke else \
        dict(load=10_000, small=1_000, large=100_000, batch=[(2_000, 10_000), (10_000, 10_000)],
             million=1_000_000, assign=(10_000, 1_000), hard=[100_000, 1_000_000])

    report = Report(machine=machine())
    w = Workloads(args, report)
    started = time.perf_counter()

    def single_vs_baseline(n: int) -> None:
        timings = w.single(n)
        speedup = timings["numpy baseline"].median / timings["prism_match"].median
        report.target(3, f"prepared top-{K} at {n:,} backends vs numpy baseline", "≥ 10×",
                      f"{speedup:.1f}× ({fmt_time(timings['prism_match'].median)} a match)", speedup >= 10)
        aim = {1_000: 20, 100_000: 150}.get(n)
        if aim is not None:
            report.target(15, f"prepared top-{K} at {n:,} backends vs numpy baseline", f"≥ {aim}×",
                          f"{speedup:.1f}×", speedup >= aim)

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("load", lambda: w.load(sizes["load"])),
        ("single small", lambda: single_vs_baseline(sizes["small"])),
        ("single large", lambda: single_vs_baseline(sizes["large"])),
        ("single narrow", lambda: w.single(sizes["small"] * 10, "narrow")),
        ("mapping", lambda: w.mapping(sizes["small"])),
        ("update", lambda: w.update(sizes["small"])),
        *((f"batch {m}x{n}", lambda m=m, n=n, i=i: w.batch(m, n, peers=i == 0))
          for i, (m, n) in enumerate(sizes["batch"])),
        ("million", lambda: w.million(sizes["million"])),
        *((f"hard {n}", lambda n=n: w.hard(n)) for n in sizes["hard"]),
        ("assign", lambda: w.assign(*sizes["assign"])),
    ]
    failed = []
    for name, step in steps:
        t0 = time.perf_counter()
        try:
            step()
        except Exception:  # one broken workload must not lose the others' numbers
            traceback.print_exc()
            failed.append(name)
            report.target(0, f"workload `{name}`", "runs", "crashed (traceback on stderr)", False)
        # Each workload's registries, peers and decoded registrations go before the next.
        common.registry.cache_clear()
        gc.collect()
        w.log(f"  {name}: {time.perf_counter() - t0:.0f} s")
    report.values["elapsed_seconds"] = time.perf_counter() - started
    report.values["failed_workloads"] = failed

    text = render(report)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps({"machine": report.machine, "rows": [asdict(r) for r in report.rows],
                                        "targets": [asdict(t) for t in report.targets], "values": report.values,
                                        "table": text}, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    print(f"\n(JSON: {args.json}; {report.values['elapsed_seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    sys.exit(1 if main().values["failed_workloads"] else 0)
