"""Optimal placement against greedy on tight registries (issue 13), one run:

    .venv/bin/python benchmarks/optimal_vs_greedy.py [--time-limit S]

For each size, the synthetic registry and slots the asv suite uses
(``benchmarks/common.py``: slots outgrow the backends): slots placed and
total score by greedy ``assign`` and by ``assign(method="optimal")`` (both
totals scored the optimal mode's way, each pair against the registry before
placement), the solver's status, and the wall time of each (median of 3
runs for greedy, one for the solver: it is deterministic).

Then the grouped case: the same slots in ``groups`` groups (slot ``i`` in
group ``i mod groups``), each capped at ``max_per_backend`` slots of its
group on one backend (anti-affinity), so placements are held by the group
caps as well as by capacity.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

SIZES = ((100, 50), (1_000, 50), (1_000, 200), (2_000, 200))
GROUPED = ((1_000, 200, 50, 2),)   # slots, backends, groups, max_per_backend


def grouped_slots(m: int, groups: int, cap: int) -> list[dict]:
    return [dict(s, group=f"g{i % groups}", max_per_backend=cap) for i, s in enumerate(common.slots(m))]


def measure(m: int, n: int, time_limit: float, groups: int = 0, cap: int = 0) -> dict:
    registry = common.registry(n)
    slots = [registry.prepare(s) for s in (grouped_slots(m, groups, cap) if groups else common.slots(m))]
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        registry.assign(slots, allow_unplaced=True)
        samples.append(time.perf_counter() - start)
    start = time.perf_counter()
    plan = registry.assign(slots, allow_unplaced=True, method="optimal", time_limit=time_limit)
    solved = time.perf_counter() - start
    r = plan.report
    return {"slots": m, "backends": n, "groups": groups, "cap": cap, "candidates": r.candidates,
            "greedy_placed": r.greedy_placed,
            "optimal_placed": r.optimal_placed, "extra": r.extra_placed, "greedy_score": r.greedy_score,
            "optimal_score": r.optimal_score, "greedy_s": statistics.median(samples), "optimal_s": solved,
            "status": r.status, "proved": r.proved_optimal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=120.0)
    args = parser.parse_args()
    print("| slots × backends | candidate pairs | greedy placed | optimal placed | extra | greedy score | "
          "optimal score | greedy time | optimal time | solver |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for m, n in SIZES:
        row = measure(m, n, args.time_limit)
        print(f"| {m:,} × {n:,} | {row['candidates']:,} | {row['greedy_placed']:,} | {row['optimal_placed']:,} | "
              f"{row['extra']:+d} | {row['greedy_score']:.2f} | {row['optimal_score']:.2f} | "
              f"{row['greedy_s'] * 1e3:.1f} ms | {row['optimal_s']:.2f} s | "
              f"{row['status']}{', proved' if row['proved'] else ''} |", flush=True)
    print()
    print("| slots × backends (groups, max_per_backend) | candidate pairs | greedy placed | optimal placed | extra | "
          "greedy score | optimal score | greedy time | optimal time | solver |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for m, n, groups, cap in GROUPED:
        row = measure(m, n, args.time_limit, groups, cap)
        print(f"| {m:,} × {n:,} ({groups}, {cap}) | {row['candidates']:,} | {row['greedy_placed']:,} | "
              f"{row['optimal_placed']:,} | {row['extra']:+d} | {row['greedy_score']:.2f} | "
              f"{row['optimal_score']:.2f} | {row['greedy_s'] * 1e3:.1f} ms | {row['optimal_s']:.2f} s | "
              f"{row['status']}{', proved' if row['proved'] else ''} |", flush=True)


if __name__ == "__main__":
    main()
