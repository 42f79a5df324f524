"""The placement strategies' figures (issue 13), medians of timed loops:

    .venv/bin/python benchmarks/strategies.py

* a prepared top-5 match on 1,000 synthetic backends (200 slots), under the
  default policy and under binpack with every opt-in term switched on;
* assign of 1,000 slots on 1,000 backends: spread (the default), binpack,
  and every slot in one group capped by max_per_backend=2 and max_skew=1
  (the skew rule's domain pass runs once per slot).
"""

from __future__ import annotations

import statistics
import time

import prism_match as pm
from prism_match.synthetic import generate_registry, generate_slots


def median_of(run, repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    docs = generate_registry(1000, seed=3)
    everything = pm.MatchPolicy(strategy="binpack", degraded_penalty=0.1, incident_penalty=0.1, stickiness=0.05)
    for name, policy in (("default", pm.MatchPolicy()), ("binpack + every term", everything)):
        registry = pm.load_registry(docs, policy=policy)
        slots = [registry.prepare(dict(s, preferences=[{"backend_type": "redis"}]) if name != "default" else s)
                 for s in generate_slots(200, seed=3)]
        seconds = median_of(lambda: [registry.match(s, k=5) for s in slots], 30)
        print(f"match k=5, 1,000 backends, {name}: {seconds / len(slots) * 1e6:.2f} µs")
    slots = generate_slots(1000, seed=3)
    grouped = [dict(s, group="g", max_per_backend=2, max_skew=1) for s in slots]
    for name, policy, batch in (("spread", pm.MatchPolicy(), slots),
                                ("binpack", pm.MatchPolicy(strategy="binpack"), slots),
                                ("grouped (max_per_backend=2, max_skew=1)", pm.MatchPolicy(), grouped)):
        registry = pm.load_registry(docs, policy=policy)
        prepared = [registry.prepare(s) for s in batch]
        seconds = median_of(lambda: registry.assign(prepared, allow_unplaced=True), 7)
        print(f"assign 1,000 slots x 1,000 backends, {name}: {seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
