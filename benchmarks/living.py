"""The living registry's figures (issue 11), medians of 7 timed loops:

    .venv/bin/python benchmarks/living.py

* add and remove per backend at 1,000 and 100,000 backends (steady state:
  after 2,000 adds, so the first growth and the id order list are paid);
* reserve + release of a prepared slot, and release alone, against a
  prepared top-1 match, at 1,000 backends;
* a prepared top-5 match on a fresh registry and on one where 10% of the
  backends were removed and as many added (1,000 and 1,000,000 backends).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from prism_match import load_registry  # noqa: E402
from prism_match.synthetic import generate_registry  # noqa: E402


def median_time(call, n: int) -> float:
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(n):
            call()
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples)


def add_remove(n: int) -> None:
    registry = load_registry(generate_registry(n, seed=1))
    docs = generate_registry(4000, seed=2)
    for j, doc in enumerate(docs):
        doc["backend_id"] = f"zz-new-{j:05d}"
    for doc in docs[:2000]:
        registry.add(doc)
    start = time.perf_counter()
    for doc in docs[2000:]:
        registry.add(doc)
    add = (time.perf_counter() - start) / 2000
    start = time.perf_counter()
    for doc in docs[2000:]:
        registry.remove(doc["backend_id"])
    remove = (time.perf_counter() - start) / 2000
    print(f"{n:>9,} backends: add {add * 1e6:.1f} µs, remove {remove * 1e6:.2f} µs per backend")


def reserve_release() -> None:
    registry = load_registry(generate_registry(1000, seed=3))
    slot = registry.prepare({"slot_name": "s", "interfaces": ["KeyValueBasicInterface"],
                             "performance": {"min_write_rps": 10, "min_read_rps": 10}})
    match = median_time(lambda: registry.match(slot, 1), 20000)

    def cycle() -> None:
        registry.release(registry.reserve(slot))

    both = median_time(cycle, 10000)
    held = [registry.reserve(slot) for _ in range(5000)]
    start = time.perf_counter()
    for reservation in held:
        registry.release(reservation)
    release = (time.perf_counter() - start) / len(held)
    print(f"    1,000 backends: match top-1 {match * 1e6:.2f} µs, reserve + release {both * 1e6:.2f} µs, "
          f"reserve ≈ {(both - release) * 1e6:.2f} µs ({(both - release) / match:.2f}× match), "
          f"release {release * 1e6:.2f} µs")


def churn(n: int, reps: int) -> None:
    fresh, churned = common.fresh_registry(n), common.fresh_registry(n)
    gone = churned.backend_ids[::10]
    for backend_id in gone:
        churned.remove(backend_id)
    docs = generate_registry(len(gone), seed=99)
    churned.add([dict(d, backend_id=f"zz-churn-{j:07d}") for j, d in enumerate(docs)])
    slot = common.selectivity_slot("medium")
    a = median_time(lambda s=fresh.prepare(slot): fresh.match(s, 5), reps)
    b = median_time(lambda s=churned.prepare(slot): churned.match(s, 5), reps)
    print(f"{n:>9,} backends: top-5 fresh {a * 1e6:.2f} µs, after 10% removed and added {b * 1e6:.2f} µs "
          f"({b / a:.2f}×)")


if __name__ == "__main__":
    for size in (1_000, 100_000):
        add_remove(size)
    reserve_release()
    churn(1_000, 20000)
    churn(1_000_000, 20)
