"""Long runs: memory stays flat over a million matches with live updates.

A leak of even one small object per match (a Match never freed, a reason
list kept alive, a prepared slot cached per call) would grow the process by
tens of megabytes over this loop; the bound below leaves room for allocator
noise only.
"""

from __future__ import annotations

import gc
import os
import resource

import prism_match as pm
from prism_match.synthetic import generate_registry, generate_slots


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak is a looser but still useful bound
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _loop(registry: pm.Registry, prepared: list, mappings: list, rounds: int) -> int:
    ids = registry.backend_ids
    seen = 0
    for i in range(rounds):
        slot = prepared[i % len(prepared)] if i % 4 else mappings[i % len(mappings)]
        found = registry.match(slot, 5)
        seen += len(found)
        if i % 1000 == 0 and found:
            seen += len(found[0].reasons)  # reasons built, then dropped with the match
        if i % 7 == 0:
            registry.update(ids[i % len(ids)], write_rps=float(i % 5000), status="healthy" if i % 2 else "degraded")
    return seen


def test_memory_flat_over_a_million_matches():
    registry = pm.load_registry(generate_registry(500, seed=11))
    mappings = generate_slots(64, seed=12)
    prepared = [registry.prepare(s) for s in mappings]
    assert _loop(registry, prepared, mappings, 100_000) > 0  # warm-up: caches, allocator pools
    gc.collect()
    before = _rss_bytes()
    assert _loop(registry, prepared, mappings, 1_000_000) > 0
    gc.collect()
    growth = _rss_bytes() - before
    assert growth < 8 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB over 1,000,000 matches"


def test_batches_do_not_accumulate_memory():
    registry = pm.load_registry(generate_registry(2_000, seed=13))
    slots = [registry.prepare(s) for s in generate_slots(300, seed=14)]
    registry.match_many(slots, 5)
    registry.assign(slots, allow_unplaced=True)
    gc.collect()
    before = _rss_bytes()
    for _ in range(100):
        registry.match_many(slots, 5)
        registry.assign(slots, allow_unplaced=True)
    gc.collect()
    growth = _rss_bytes() - before
    assert growth < 16 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB over 100 batches"
