"""Issue 15's figures: prepared top-5 over slot shapes and sizes, the scan
order (skipping what cannot win) against the plain scan of every position
and the straightforward numpy implementation, medians and ratios of one run.

    .venv/bin/python benchmarks/pruning.py                 # 1,000 / 100,000 / 1,000,000 backends
    .venv/bin/python benchmarks/pruning.py --sizes 1000    # one size
    .venv/bin/python benchmarks/pruning.py --smoke         # tiny, seconds (CI)

Contenders, all answering the same question (the answers are checked equal):
``scan order`` is ``Registry.match`` as shipped; ``plain scan`` the same
kernel with the scan order switched off (``use_scan_order = False``: every
position visited, as before issue 15); ``numpy`` the baseline of
benchmarks/baseline.py. Registries: the synthetic one (``benchmarks.common``),
and for the hard shapes one where 30 % of the backends are copies of others
under new ids (``common.hard_registry``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import prism_match  # noqa: E402
from prism_match import MatchPolicy  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.baseline import BaselineRegistry  # noqa: E402
from benchmarks.compare import K, fmt_time, race  # noqa: E402

NON_DEFAULT = MatchPolicy(w_perf=0.1, w_cost=0.5, w_avail=0.1, w_region=0.3, capacity_basis="available")

# shape -> (registry kind, slot, policy or None)
SHAPES: dict[str, tuple[str, dict, MatchPolicy | None]] = {
    "narrow": ("synthetic", common.SELECTIVITY_SLOTS["narrow"], None),
    "medium": ("synthetic", common.SELECTIVITY_SLOTS["medium"], None),
    "broad": ("synthetic", common.SELECTIVITY_SLOTS["broad"], None),
    "high minimums": ("hard", common.HARD_SLOT, None),
    "rare region": ("synthetic", common.RARE_REGION_SLOT, None),
    "exact ties": ("hard", common.SELECTIVITY_SLOTS["broad"], None),
    "non-default policy": ("synthetic", common.SELECTIVITY_SLOTS["medium"], NON_DEFAULT),
}


def measure(n: int, shape: str, opts: dict) -> dict:
    kind, slot, policy = SHAPES[shape]
    fast = common.registry(n) if kind == "synthetic" else common.hard_registry(n)
    plain = common.fresh_registry(n) if kind == "synthetic" else common.hard_registry(n, fresh=True)
    if policy is not None:
        fast.policy = policy
        plain.policy = policy
    plain.engine.core.use_scan_order = False
    fast_slot, plain_slot = fast.prepare(slot), plain.prepare(slot)
    baseline = BaselineRegistry(fast)
    b_slot = baseline.prepare(fast_slot)
    timings = race({"scan order": lambda: fast.match(fast_slot, K),
                    "plain scan": lambda: plain.match(plain_slot, K),
                    "numpy": lambda: baseline.topk(b_slot, K)}, **opts)
    ids = fast.backend_ids
    answers = {"scan order": [m.backend_id for m in timings["scan order"].result],
               "plain scan": [m.backend_id for m in timings["plain scan"].result],
               "numpy": [ids[i] for i in timings["numpy"].result[0]]}
    if policy is not None:
        fast.policy = prism_match.MatchPolicy()
    agree = answers["scan order"] == answers["plain scan"] == answers["numpy"]
    t = {name: timing.median for name, timing in timings.items()}
    return {"n": n, "shape": shape, **t, "agree": agree}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--budget", type=float, default=3.0)
    args = parser.parse_args(argv)
    opts = dict(repeat=args.repeat, budget=args.budget, min_time=0.05)
    if args.smoke:
        args.sizes, opts = [300], dict(repeat=2, budget=0.5, min_time=0.0)
    rows = []
    print("| backends | slot shape | scan order | plain scan | numpy | × plain scan | × numpy | same answer |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for n in args.sizes:
        for shape in args.shapes:
            row = measure(n, shape, opts)
            rows.append(row)
            print(f"| {n:,} | {shape} | {fmt_time(row['scan order'])} | {fmt_time(row['plain scan'])} | "
                  f"{fmt_time(row['numpy'])} | {row['plain scan'] / row['scan order']:.1f}× | "
                  f"{row['numpy'] / row['scan order']:.0f}× | {'yes' if row['agree'] else 'NO'} |", flush=True)
        common.registry.cache_clear()
        common.hard_registry.cache_clear()
    return rows


if __name__ == "__main__":
    rows = main()
    sys.exit(0 if all(r["agree"] for r in rows) else 1)
