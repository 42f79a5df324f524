"""``Registry.assign(method="optimal")``: the solver's plan (optimal.py).

Property tests on the random cases of test_assign: the optimal plan never
places fewer slots than greedy, respects every capacity rule greedy does
(replayed with the plain reference, ``tests/reference_assign.py``), scores
each pair as ``match`` does before placement, and is the same on every
run; on small cases it equals a brute-force search over every plan (the
most slots, then the best total score). Then the contract: greedy stays the
default and unchanged, a hand-made case greedy gets wrong, commit, errors,
and the report.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
import reference_assign
from conftest import RATES, policies_or_default, registries, slot_for
from prism_match import PlacementError, RegistryError, load_registry
from prism_match.engine import validate_slot
from prism_match.optimal import OptimalAssignment, SolverReport
from test_assign import assign_cases, consumed, within

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def optimal(registry, slots, **kwargs):
    return registry.assign(slots, allow_unplaced=True, method="optimal", **kwargs)


def replay_is_feasible(registry, policy, slots, bindings) -> bool:
    """Every binding, in slot order, is eligible for the plain reference
    given what the earlier bindings took (what greedy would allow)."""
    regs = {r.backend_id: r for r in registry}
    placed = {b: reference_assign.Placed() for b in regs}
    by_name = {s["slot_name"]: validate_slot(s) for s in slots}
    for b in bindings:
        slot = by_name[b.slot_name]
        if reference_assign.eligible(regs[b.backend_id], slot, placed[b.backend_id], policy):
            return False
        w, r, s = reference_assign._needs(slot)
        taken = placed[b.backend_id]
        taken.write_rps += w
        taken.read_rps += r
        taken.storage += s
        taken.namespaces += 1
    return True


@SETTINGS
@given(assign_cases())
def test_optimal_places_at_least_as_many_as_greedy_within_every_capacity(drawn):
    case, policy, slots = drawn
    registry = load_registry(case.docs, policy=policy)
    greedy = registry.assign(slots, allow_unplaced=True)
    result = optimal(registry, slots)

    assert isinstance(result, OptimalAssignment)
    assert len(result.bindings) >= len(greedy.bindings)
    report = result.report
    assert report.greedy_placed == len(greedy.bindings)
    assert report.optimal_placed == len(result.bindings)
    assert report.extra_placed == len(result.bindings) - len(greedy.bindings)
    assert report.dropped == 0
    if report.proved_optimal and report.optimal_placed == report.greedy_placed:
        assert report.optimal_score >= report.greedy_score - 1e-9 * max(1.0, abs(report.greedy_score))
    assert replay_is_feasible(registry, policy, slots, result.bindings)
    # Capacity, as test_assign checks it for greedy.
    c = registry.columns
    took = consumed(registry, slots, result.bindings)
    for i in np.flatnonzero(took["ns"]):
        if took["w"][i] > 0:
            assert within(c.write_rps[i] + took["w"][i], c.max_write_rps[i])
        if took["r"][i] > 0:
            assert within(c.read_rps[i] + took["r"][i], c.max_read_rps[i])
        if took["storage"][i] > 0:
            assert within(c.storage_used[i] + took["storage"][i], c.max_storage[i])
        assert c.namespace_count[i] + took["ns"][i] <= c.max_namespaces[i]
    # Bindings in slot order; every slot either placed or unplaced, once.
    order = [s["slot_name"] for s in slots]
    assert [b.slot_name for b in result.bindings] == [n for n in order if n in {b.slot_name for b in result.bindings}]
    assert sorted([b.slot_name for b in result.bindings] + [u.slot_name for u in result.unplaced]) == sorted(order)


@SETTINGS
@given(assign_cases())
def test_each_binding_scores_as_match_does_before_placement(drawn):
    case, policy, slots = drawn
    registry = load_registry(case.docs, policy=policy)
    result = optimal(registry, slots)
    by_name = {s["slot_name"]: s for s in slots}
    regs = {r.backend_id: r for r in registry}
    for b in result.bindings:
        slot = validate_slot(by_name[b.slot_name])
        expected = reference_assign.score(regs[b.backend_id], slot, reference_assign.Placed(), policy)
        assert math.isclose(b.score, expected, rel_tol=1e-12, abs_tol=1e-15), b
        parts = reference.score(regs[b.backend_id], slot, policy)
        assert b.region == parts["region"]
        assert math.isclose(b.cost, parts["cost"], rel_tol=1e-12)


@SETTINGS
@given(assign_cases())
def test_the_same_input_gives_the_same_optimal_plan(drawn):
    case, policy, slots = drawn
    first = optimal(load_registry(case.docs, policy=policy), slots)
    again = optimal(load_registry(case.docs, policy=policy), slots)
    assert [(b.slot_name, b.backend_id, b.score) for b in first.bindings] == \
        [(b.slot_name, b.backend_id, b.score) for b in again.bindings]


@st.composite
def small_cases(draw):
    """At most 4 backends and 5 slots: few enough plans to try every one."""
    case = draw(registries(wide=False, max_backends=4, min_backends=1))
    shapes = []
    for _ in range(draw(st.integers(1, 2))):
        shape = draw(slot_for(case))
        perf = {k: v for k, v in shape.get("performance", {}).items() if k != "min_storage"}
        perf.update(min_write_rps=draw(st.sampled_from(RATES[:6])), min_read_rps=draw(st.sampled_from(RATES[:6])))
        shape["performance"] = perf
        shape["min_storage"] = draw(st.sampled_from((0, 0, 1000, "100GB", "1TB")))
        shape["optional"] = True
        shapes.append(shape)
    picks = draw(st.lists(st.integers(0, len(shapes) - 1), min_size=1, max_size=5))
    slots = [dict(shapes[p], slot_name=f"s{i}") for i, p in enumerate(picks)]
    return case, draw(policies_or_default), slots


def brute_force(registry, policy, slots) -> tuple[int, float]:
    """(most slots placed, best total score with that many) over every plan
    that replays feasibly with the plain reference."""
    regs = list(registry)
    validated = [validate_slot(s) for s in slots]
    fresh = reference_assign.Placed()
    static = [{r.backend_id: reference_assign.score(r, s, fresh, policy) for r in regs} for s in validated]
    best = (0, 0.0)
    for plan in itertools.product([None, *range(len(regs))], repeat=len(slots)):
        placed = {r.backend_id: reference_assign.Placed() for r in regs}
        total, count, feasible = 0.0, 0, True
        for slot, choice in zip(validated, plan):
            if choice is None:
                continue
            reg = regs[choice]
            if reference_assign.eligible(reg, slot, placed[reg.backend_id], policy):
                feasible = False
                break
            w, r, s = reference_assign._needs(slot)
            taken = placed[reg.backend_id]
            taken.write_rps += w
            taken.read_rps += r
            taken.storage += s
            taken.namespaces += 1
            count += 1
            total += static[validated.index(slot)][reg.backend_id]
        if feasible and (count, total) > best:
            best = (count, total)
    return best


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(small_cases())
def test_small_cases_equal_a_brute_force_search(drawn):
    case, policy, slots = drawn
    registry = load_registry(case.docs, policy=policy)
    result = optimal(registry, slots)
    count, total = brute_force(registry, policy, slots)
    assert result.report.proved_optimal
    assert len(result.bindings) == count
    assert math.isclose(sum(b.score for b in result.bindings), total, rel_tol=1e-7, abs_tol=1e-9)


# --- a case greedy gets wrong -------------------------------------------------------------

def _backend(bid: str, max_write: float, cost: float) -> dict:
    return {"backend_id": bid, "backend_type": "postgres", "capabilities": ["get", "set"],
            "capacity": {"max_write_rps": max_write, "max_read_rps": 1e6},
            "cost": {"cost_per_1k_writes": cost}, "health": {"status": "healthy", "uptime_percent_24h": 99.9}}


TIGHT = [_backend("big", 10_000, 0.001), _backend("small", 5_000, 0.5)]
# Greedy puts `first` on `big` (more headroom, cheaper); `second` then fits nowhere.
ORDERED = [{"slot_name": "first", "capabilities": ["get"], "performance": {"min_write_rps": 5_000}},
           {"slot_name": "second", "capabilities": ["get"], "performance": {"min_write_rps": 10_000}}]


def test_optimal_places_what_greedy_leaves_out():
    registry = load_registry(TIGHT)
    greedy = registry.assign(ORDERED, allow_unplaced=True)
    assert [(b.slot_name, b.backend_id) for b in greedy.bindings] == [("first", "big")]
    assert [u.slot_name for u in greedy.unplaced] == ["second"]

    result = registry.assign(ORDERED, method="optimal")
    assert [(b.slot_name, b.backend_id) for b in result.bindings] == [("first", "small"), ("second", "big")]
    assert result.unplaced == [] and result.ok
    report = result.report
    assert isinstance(report, SolverReport)
    assert (report.greedy_placed, report.optimal_placed, report.extra_placed) == (1, 2, 1)
    assert report.proved_optimal and report.status == "Optimal"
    assert report.candidates == 3 and report.slots == 2   # `second` cannot fit on `small`
    assert report.as_dict()["extra_placed"] == 1
    # Scores are match's scores before placement.
    first_on_small = {m.backend_id: m.score for m in registry.match(ORDERED[0], k=2)}["small"]
    assert result.bindings[0].score == first_on_small
    assert report.optimal_score == pytest.approx(sum(b.score for b in result.bindings), abs=0)
    # Utilisation: both backends full.
    util = {row["backend_id"]: row for row in result.utilisation.to_dicts()}
    assert util["big"]["write_rps"] == 10_000 and util["small"]["write_rps"] == 5_000


def test_greedy_stays_the_default_and_unchanged():
    registry = load_registry(TIGHT)
    default = registry.assign(ORDERED, allow_unplaced=True)
    named = registry.assign(ORDERED, allow_unplaced=True, method="greedy")
    assert type(default).__name__ == "Assignment"
    assert default.bindings == named.bindings
    assert not hasattr(default, "report")


def test_an_unplaced_slot_is_diagnosed_against_the_finished_plan():
    registry = load_registry(TIGHT)
    # Two of the three fit at most; `third` on `big` scores more than `second`
    # there (more headroom left per rps needed), so `second` stays out.
    three = [*ORDERED, {"slot_name": "third", "capabilities": ["get"], "performance": {"min_write_rps": 6_000}}]
    with pytest.raises(PlacementError) as caught:
        registry.assign(three, method="optimal")
    plan = caught.value.assignment
    assert isinstance(plan, OptimalAssignment)
    assert [(b.slot_name, b.backend_id) for b in plan.bindings] == [("first", "small"), ("third", "big")]
    assert [u.slot_name for u in plan.unplaced] == ["second"]
    diagnosis = plan.unplaced[0].diagnosis
    assert diagnosis.eligible == 0
    assert diagnosis.rejected == {"insufficient_write_capacity": 2}


def test_commit_adds_the_plan_to_live_usage():
    registry = load_registry(TIGHT)
    version = registry.version
    result = registry.assign(ORDERED, method="optimal", commit=True)
    assert result.committed
    assert registry["big"].current.write_rps == 10_000
    assert registry["small"].current.write_rps == 5_000
    assert registry.version == version + 1
    assert registry.changes(since=version)[0].data == {"placed": 2, "method": "optimal"}


def test_namespace_limits_hold():
    backends = [dict(_backend("a", 1e6, 0.001), capacity={"max_write_rps": 1e6, "max_namespaces": 3},
                     current={"namespace_count": 1}),
                dict(_backend("b", 1e6, 0.5), capacity={"max_write_rps": 1e6, "max_namespaces": 1})]
    slots = [{"slot_name": f"s{i}", "capabilities": ["get"]} for i in range(5)]
    result = load_registry(backends).assign(slots, method="optimal", allow_unplaced=True)
    where = [b.backend_id for b in result.bindings]
    assert where.count("a") == 2 and where.count("b") == 1
    assert len(result.unplaced) == 2


def test_an_empty_registry_or_slot_list_is_answered():
    registry = load_registry(TIGHT)
    empty = registry.assign([], method="optimal")
    assert empty.bindings == [] and empty.report.proved_optimal
    nothing = load_registry([]).assign(ORDERED, method="optimal", allow_unplaced=True)
    assert [u.slot_name for u in nothing.unplaced] == ["first", "second"]


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "best"}, "Expected `method` `greedy` or `optimal`, got `best`"),
    ({"method": "optimal", "time_limit": 0}, "Expected `time_limit` a number of seconds > 0, got `0`"),
    ({"method": "optimal", "time_limit": float("nan")}, "Expected `time_limit` a number of seconds > 0"),
    ({"method": "optimal", "time_limit": "5"}, "Expected `time_limit` a number of seconds > 0, got `'5'`"),
    ({"time_limit": 5}, "`time_limit` applies to method='optimal' only"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(RegistryError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_registry(TIGHT).assign(ORDERED, **kwargs)
