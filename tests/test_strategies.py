"""Placement strategies (issue 13): binpack or spread, group caps and region
spread, ranked and weighted preferences, the degraded penalty, stickiness.

Each is opt-in: the conformance suite holds the default answers byte for
byte, and the property tests of test_kernel.py / test_rules.py / test_assign.py
draw the new policy knobs and slot fields too. Here: worked examples whose
figures are computed by hand from the documented formulas, and property
tests for what only placement sees (group rules in assign, bind_pattern and
reserve), kernel against the plain reference (tests/reference_assign.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
import reference_assign
from conftest import RATES, policies_or_default, registries, slot_for
from prism_match import MatchPolicy, PlacementError, RegistryError, load_registry, score_table
from prism_match.engine import validate_slot

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def backend(backend_id: str, **fields) -> dict:
    base = {"backend_id": backend_id, "backend_type": "redis", "capabilities": ["get"],
            "capacity": {"max_write_rps": 1000, "max_read_rps": 1000},
            "health": {"status": "healthy", "uptime_percent_24h": 99.0}, "regions": ["us-east-1"]}
    base.update(fields)
    return base


# --- 1. binpack or spread ------------------------------------------------------------------

def test_binpack_prefers_the_backend_fullest_after_placement_and_spread_the_emptiest():
    docs = [backend("empty"), backend("half", current={"write_rps": 500, "read_rps": 500}),
            backend("nearly", current={"write_rps": 800, "read_rps": 100})]
    slot = {"slot_name": "s", "performance": {"min_write_rps": 100, "min_read_rps": 100}}
    spread = load_registry(docs)
    binpack = load_registry(docs, policy=MatchPolicy(strategy="binpack"))
    assert [m.backend_id for m in spread.match(slot, k=3)] == ["empty", "half", "nearly"]
    ranked = binpack.match(slot, k=3)
    assert [m.backend_id for m in ranked] == ["half", "nearly", "empty"]
    # perf = cap * (fw + fr) / 2, f = (used + min) / max
    assert [m.performance for m in ranked] == [2.0 * ((0.6 + 0.6) * 0.5), 2.0 * ((0.9 + 0.2) * 0.5),
                                               2.0 * ((0.1 + 0.1) * 0.5)]


def test_binpack_fills_one_backend_before_the_next_in_assign():
    docs = [backend("a"), backend("b")]
    slot = {"performance": {"min_write_rps": 400}}
    slots = [dict(slot, slot_name=f"s{i}") for i in range(4)]
    spread = load_registry(docs).assign(slots)
    binpack = load_registry(docs, policy=MatchPolicy(strategy="binpack")).assign(slots)
    assert [b.backend_id for b in spread.bindings] == ["a", "b", "a", "b"]
    assert [b.backend_id for b in binpack.bindings] == ["a", "a", "b", "b"]


def test_binpack_gives_a_backend_without_capacity_data_nothing_and_clamps_an_overloaded_one():
    docs = [backend("bare", capacity=None), backend("hot", current={"write_rps": 5000, "read_rps": 5000})]
    ranked = load_registry(docs, policy=MatchPolicy(strategy="binpack")).match({"slot_name": "s"}, k=2)
    assert [(m.backend_id, m.performance) for m in ranked] == [("hot", 2.0), ("bare", 0.0)]


@SETTINGS
@given(data=st.data())
def test_binpack_pruning_never_drops_a_better_backend(data):
    # Many backends and k = 1: the top-k heap is full almost at once, so the
    # upper bound (_perf_upper) decides most backends.
    case = data.draw(registries(min_backends=10, max_backends=30, wide=False))
    registry = load_registry(case.docs, policy=MatchPolicy(strategy="binpack", w_perf=3.0))
    slot = data.draw(slot_for(case))
    prepared = registry.prepare(slot)
    idx, parts = score_table.ranked(registry.columns, prepared, registry.policy, 3)
    assert [m.backend_id for m in registry.match(slot, k=3)] == [registry.columns.backend_ids[i] for i in idx]
    expected = reference.ranked(list(registry), validate_slot(slot), registry.policy)[:3]
    assert [bid for bid, _ in expected] == [registry.columns.backend_ids[i] for i in idx]


def test_a_bad_strategy_is_a_registry_error_naming_it():
    with pytest.raises(RegistryError, match=r"`spread`, `binpack`, got `pack` - at policy \$\.strategy"):
        MatchPolicy(strategy="pack")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match=r"at policy \$\.degraded_penalty"):
        MatchPolicy(degraded_penalty=-1)
