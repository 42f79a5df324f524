"""``Registry.assign``: capacity-aware placement in slot order (SPEC §6).

Property tests on random registries and slot sequences: no backend is ever
placed beyond its capacity, the plan equals the plain reference
(``tests/reference_assign.py``) and is the same on every run; then the
contract around it: dry run versus ``commit=True``, PlacementError carrying
the plan, optional slots, the lazily built diagnosis of unplaced slots, and
the utilisation table.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_assign
from conftest import RATES, policies_or_default, registries, slot_for
from prism_match import Assignment, MatchPolicy, PlacementError, RegistryError, load_registry
from prism_match import placement as placement_module
from prism_match.engine import validate_slot

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


# --- random cases ------------------------------------------------------------------------

DEMANDS = st.sampled_from(RATES[:6])              # 0 … 50k: some slots fit many times, some once
STORAGE_DEMANDS = st.sampled_from((0, 0, 1000, "100GB", "1TB"))


@st.composite
def assign_cases(draw):
    """A small registry, a policy, and a sequence of slots drawn from a few
    shapes (so the same demand comes back and capacity runs out)."""
    case = draw(registries(wide=False, max_backends=8))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        shape = draw(slot_for(case))
        perf = {k: v for k, v in shape.get("performance", {}).items() if k not in ("min_storage",)}
        perf.update(min_write_rps=draw(DEMANDS), min_read_rps=draw(DEMANDS))
        shape["performance"] = perf
        shape["min_storage"] = draw(STORAGE_DEMANDS)
        shape["optional"] = draw(st.booleans())
        shapes.append(shape)
    picks = draw(st.lists(st.integers(0, len(shapes) - 1), max_size=12))
    slots = [dict(shapes[p], slot_name=f"s{i}") for i, p in enumerate(picks)]
    return case, draw(policies_or_default), slots


def consumed(registry, slots, bindings) -> dict[str, np.ndarray]:
    """Per backend: what the bindings take (from the slots' own demands)."""
    n = len(registry)
    out = {key: np.zeros(n) for key in ("w", "r", "storage", "ns")}
    by_name = {s["slot_name"]: registry.prepare(s) for s in slots}
    for b in bindings:
        i = registry.backend_ids.index(b.backend_id)
        p = by_name[b.slot_name]
        out["w"][i] += p.min_write_rps
        out["r"][i] += p.min_read_rps
        out["storage"][i] += p.min_storage
        out["ns"][i] += 1
    return out


def planned(drawn):
    """(registry, policy, slots, assignment) for a drawn case, unplaced slots allowed."""
    case, policy, slots = drawn
    registry = load_registry(case.docs, policy=policy)
    return registry, policy, slots, registry.assign(slots, allow_unplaced=True)


def within(used: float, limit: float) -> bool:
    return used <= limit or math.isclose(used, limit, rel_tol=1e-12)


@SETTINGS
@given(assign_cases())
def test_no_backend_is_ever_placed_beyond_its_capacity(drawn):
    registry, _, slots, result = planned(drawn)
    c = registry.columns
    took = consumed(registry, slots, result.bindings)
    # A backend that takes some of a resource ends within its capacity for
    # it. (One already over capacity may still take slots that need none of
    # that resource: what it has left is 0, not negative, SPEC §1.)
    for i in np.flatnonzero(took["ns"]):
        bid = c.backend_ids[i]
        if took["w"][i] > 0:
            assert within(c.write_rps[i] + took["w"][i], c.max_write_rps[i]), bid
        if took["r"][i] > 0:
            assert within(c.read_rps[i] + took["r"][i], c.max_read_rps[i]), bid
        if took["storage"][i] > 0:
            assert not math.isnan(c.max_storage[i]), bid
            assert within(c.storage_used[i] + took["storage"][i], c.max_storage[i]), bid
        assert c.namespace_count[i] + took["ns"][i] <= c.max_namespaces[i], bid
    # The utilisation table reports the same usage.
    util = result.utilisation
    assert util["placed_slots"].to_list() == took["ns"].astype(int).tolist()
    assert np.allclose(util["write_rps"].to_numpy(), c.write_rps + took["w"])
    assert np.allclose(util["read_rps"].to_numpy(), c.read_rps + took["r"])
    assert np.allclose(util["storage_used"].to_numpy(), c.storage_used + took["storage"])
    assert np.array_equal(util["namespace_count"].to_numpy(), c.namespace_count + took["ns"])


@SETTINGS
@given(assign_cases())
def test_the_plan_equals_the_plain_reference(drawn):
    registry, policy, slots, result = planned(drawn)
    plan = reference_assign.assign(list(registry), [validate_slot(s) for s in slots], policy)

    assert [(b.slot_name, b.backend_id) for b in result.bindings] == [(s, b) for s, b, _ in plan.bindings]
    for b, (_, _, expected) in zip(result.bindings, plan.bindings):
        assert close(b.score, expected), (b, expected)
    assert [u.slot_name for u in result.unplaced] == [name for name, _ in plan.unplaced]
    for u, (_, rejected) in zip(result.unplaced, plan.unplaced):
        assert u.diagnosis.eligible == 0
        assert u.diagnosis.total == len(registry)
        assert u.diagnosis.rejected == rejected, u.slot_name
    assert result.ok == all(s["optional"] for s in slots if s["slot_name"] in {u.slot_name for u in result.unplaced})


@SETTINGS
@given(assign_cases())
def test_the_same_input_gives_the_same_plan_and_a_dry_run_changes_nothing(drawn):
    case, policy, slots = drawn
    registry = load_registry(case.docs, policy=policy)
    before = registry.to_polars()

    def plan(result: Assignment):
        return ([(b.slot_name, b.backend_id, b.score, b.performance, b.cost, b.availability, b.region)
                 for b in result.bindings], [u.slot_name for u in result.unplaced])

    first = registry.assign(slots, allow_unplaced=True)
    again = registry.assign(slots, allow_unplaced=True)
    fresh = load_registry(case.docs, policy=policy).assign(slots, allow_unplaced=True)
    assert plan(first) == plan(again) == plan(fresh)
    assert first.utilisation.equals(again.utilisation)
    assert not first.committed
    assert registry.to_polars().equals(before)


# --- commit and dry run ---------------------------------------------------------------------

ONE = [{"backend_id": "a", "backend_type": "redis",
        "capacity": {"max_write_rps": 1000, "max_read_rps": 1000, "max_storage": "100GB", "max_namespaces": 3},
        "current": {"write_rps": 100, "namespace_count": 1}}]
SLOT = {"slot_name": "s", "performance": {"min_write_rps": 400, "min_read_rps": 100}, "min_storage": "10GB"}
TWO_SLOTS = [SLOT, dict(SLOT, slot_name="t")]


def live(registry) -> dict:
    return registry.to_polars().select("write_rps", "read_rps", "storage_used", "namespace_count").row(0, named=True)


def test_commit_applies_the_placed_usage_to_the_live_columns():
    registry = load_registry(ONE)
    result = registry.assign(TWO_SLOTS, commit=True)
    assert result.committed
    assert [(b.slot_name, b.backend_id) for b in result.bindings] == [("s", "a"), ("t", "a")]
    assert live(registry) == {"write_rps": 900.0, "read_rps": 200.0, "storage_used": 20e9, "namespace_count": 3.0}
    # The next match sees it: 100 write rps left for a slot that needs 400.
    match = registry.match(SLOT)[0]
    assert match.available_write_rps == 100.0
    assert match.performance == 0.25
    # And the next placement: no namespace and not enough write capacity left.
    with pytest.raises(PlacementError) as info:
        registry.assign([SLOT])
    assert info.value.assignment.unplaced[0].diagnosis.rejected == {
        "insufficient_write_capacity": 1, "namespaces_exhausted": 1}


def test_a_dry_run_changes_nothing():
    registry = load_registry(ONE)
    before = registry.to_polars()
    match_before = registry.match(SLOT)[0].as_dict()
    result = registry.assign(TWO_SLOTS)
    assert not result.committed
    assert len(result.bindings) == 2
    assert registry.to_polars().equals(before)
    assert registry.match(SLOT)[0].as_dict() == match_before
    # Planning again gives the same plan: nothing was consumed.
    assert registry.assign(TWO_SLOTS).bindings == result.bindings


def test_placements_spill_to_the_next_best_backend_when_the_best_is_full():
    registry = load_registry([
        {"backend_id": "big", "backend_type": "redis", "capacity": {"max_write_rps": 1000},
         "cost": {"cost_per_1k_writes": 0}},
        {"backend_id": "small", "backend_type": "redis", "capacity": {"max_write_rps": 500}},
    ])
    slots = [{"slot_name": f"s{i}", "performance": {"min_write_rps": 400}} for i in range(4)]
    result = registry.assign(slots, allow_unplaced=True)
    assert [(b.slot_name, b.backend_id) for b in result.bindings] == [("s0", "big"), ("s1", "big"), ("s2", "small")]
    # s1 saw 600 of 1000 left: perf = 600/400 = 1.5 (SPEC §6: what is left before this slot).
    assert result.bindings[1].performance == 1.5
    assert [u.slot_name for u in result.unplaced] == ["s3"]


# --- what cannot be placed -------------------------------------------------------------------

def test_a_required_slot_that_cannot_be_placed_raises_with_the_plan_and_commits_nothing():
    registry = load_registry(ONE)
    before = registry.to_polars()
    slots = [*TWO_SLOTS, dict(SLOT, slot_name="u")]
    with pytest.raises(PlacementError, match=r"^Cannot be placed: 0/1 backends eligible: 1 insufficient_write_"
                                             r"capacity\(need 400 rps\), 1 namespaces_exhausted\(no namespace "
                                             r"left\) - at slot `u`$") as info:
        registry.assign(slots, commit=True)
    plan = info.value.assignment
    assert isinstance(info.value, RegistryError)
    assert [b.slot_name for b in plan.bindings] == ["s", "t"]
    assert [u.slot_name for u in plan.unplaced] == ["u"]
    assert not plan.committed and not plan.ok
    assert registry.to_polars().equals(before)


def test_a_placement_error_travels_between_processes_as_its_problems():
    registry = load_registry(ONE)
    with pytest.raises(PlacementError) as info:
        registry.assign([*TWO_SLOTS, dict(SLOT, slot_name="u")])
    copy = pickle.loads(pickle.dumps(info.value))
    assert isinstance(copy, RegistryError)
    assert str(copy) == str(info.value) and copy.errors == info.value.errors


def test_allow_unplaced_returns_the_plan_and_optional_slots_never_raise():
    registry = load_registry(ONE)
    slots = [*TWO_SLOTS, dict(SLOT, slot_name="u")]
    result = registry.assign(slots, allow_unplaced=True)
    assert [u.slot_name for u in result.unplaced] == ["u"] and not result.ok
    optional = registry.assign([*TWO_SLOTS, dict(SLOT, slot_name="u", optional=True)], commit=True)
    assert [(u.slot_name, u.optional) for u in optional.unplaced] == [("u", True)]
    assert optional.ok and optional.committed
    assert live(registry)["namespace_count"] == 3.0


def test_the_diagnosis_is_built_only_when_read(monkeypatch):
    calls = []
    real = placement_module.diagnose

    def counting(*args, **kwargs):
        calls.append(args[0].slot_name)
        return real(*args, **kwargs)

    monkeypatch.setattr(placement_module, "diagnose", counting)
    registry = load_registry(ONE)
    slots = [dict(SLOT, slot_name=f"s{i}", optional=True) for i in range(6)]
    result = registry.assign(slots)
    assert len(result.unplaced) == 4
    assert calls == []
    first = result.unplaced[1].diagnosis
    assert calls == ["s3"]
    assert result.unplaced[1].diagnosis is first
    assert calls == ["s3"]


THREE = [
    {"backend_id": "pg", "backend_type": "postgres", "interfaces": ["KeyValueBasicInterface"],
     "capacity": {"max_write_rps": 1000, "max_read_rps": 4000, "max_storage": "1TB", "max_namespaces": 10},
     "current": {"write_rps": 200, "storage_used": "500GB", "namespace_count": 8},
     "health": {"status": "healthy", "uptime_percent_24h": 99.9}, "regions": ["us-east-1"]},
    {"backend_id": "redis", "backend_type": "redis", "interfaces": ["KeyValueBasicInterface"],
     "capacity": {"max_write_rps": 600, "max_read_rps": 1000, "max_storage": "100GB"},
     "health": {"status": "healthy"}, "regions": ["us-west-2"]},
    {"backend_id": "kafka", "backend_type": "kafka", "interfaces": ["PubSubInterface"],
     "capacity": {"max_write_rps": 100000, "max_read_rps": 100000}, "health": {"status": "unhealthy"}},
]
KV_SLOTS = [
    {"slot_name": f"kv{i}", "interfaces": ["KeyValueBasicInterface"], "optional": True,
     "performance": {"min_write_rps": w, "min_read_rps": r}, "min_storage": s}
    for i, (w, r, s) in enumerate([(300, 1000, "200GB"), (300, 1000, "200GB"), (300, 500, 0), (400, 500, 0),
                                   (100, 100, "50GB"), (500, 500, 0)])
]


def test_an_unplaced_diagnosis_is_explain_against_the_state_at_that_slots_turn():
    registry = load_registry(THREE)
    result = registry.assign(KV_SLOTS)
    assert [(b.slot_name, b.backend_id) for b in result.bindings] == [
        ("kv0", "pg"), ("kv1", "pg"), ("kv2", "redis"), ("kv4", "redis")]
    assert [u.slot_name for u in result.unplaced] == ["kv3", "kv5"]
    position = {s["slot_name"]: i for i, s in enumerate(KV_SLOTS)}
    for unplaced in result.unplaced:
        # The registry as it stands when the slot's turn comes: earlier
        # placements applied, rules 3/4/8 on what is left.
        then = load_registry(THREE, policy=MatchPolicy(capacity_basis="available"))
        earlier = {s["slot_name"] for s in KV_SLOTS[:position[unplaced.slot_name]]}
        took = consumed(registry, KV_SLOTS, [b for b in result.bindings if b.slot_name in earlier])
        for i, bid in enumerate(registry.backend_ids):
            c = registry.columns
            then.update(bid, write_rps=c.write_rps[i] + took["w"][i], read_rps=c.read_rps[i] + took["r"][i],
                        storage_used=c.storage_used[i] + took["storage"][i],
                        namespace_count=c.namespace_count[i] + took["ns"][i])
        explained = then.explain(KV_SLOTS[position[unplaced.slot_name]])
        diagnosis = unplaced.diagnosis
        assert explained.eligible == diagnosis.eligible == 0
        assert {k: v for k, v in diagnosis.rejected.items() if k != "namespaces_exhausted"} == explained.rejected
        assert str(diagnosis).startswith("0/3 backends eligible: ")
    assert result.unplaced[0].diagnosis.rejected == {
        "missing_interface": 1, "health_status": 1, "insufficient_write_capacity": 2, "namespaces_exhausted": 1}
    assert str(result.unplaced[0].diagnosis) == (
        "0/3 backends eligible: 2 insufficient_write_capacity(need 400 rps), 1 missing_interface"
        "(KeyValueBasicInterface), 1 health_status(unhealthy), 1 namespaces_exhausted(no namespace left)")


# --- the utilisation table --------------------------------------------------------------------

UTILISATION_COLUMNS = ["backend_id", "placed_slots", "write_rps", "max_write_rps", "write_utilisation", "read_rps",
                       "max_read_rps", "read_utilisation", "storage_used", "max_storage", "storage_utilisation",
                       "namespace_count", "max_namespaces"]


def test_the_utilisation_table_after_placement():
    registry = load_registry(THREE)
    util = registry.assign(KV_SLOTS).utilisation
    assert util.columns == UTILISATION_COLUMNS
    assert util.schema["placed_slots"] == pl.Int64
    assert util.rows() == [
        ("pg", 2, 800.0, 1000.0, 0.8, 2000.0, 4000.0, 0.5, 900e9, 1e12, 0.9, 10.0, 10.0),
        ("redis", 2, 400.0, 600.0, 400 / 600, 600.0, 1000.0, 0.6, 50e9, 100e9, 0.5, 2.0, None),
        ("kafka", 0, 0.0, 100000.0, 0.0, 0.0, 100000.0, 0.0, 0.0, None, None, 0.0, None),
    ]


def test_no_capacity_declared_gives_null_utilisation_not_a_division_by_zero():
    registry = load_registry([{"backend_id": "bare", "backend_type": "sqlite"}])
    result = registry.assign([{"slot_name": "s"}])
    assert [b.backend_id for b in result.bindings] == ["bare"]
    row = result.utilisation.row(0, named=True)
    assert row["placed_slots"] == 1 and row["write_utilisation"] is None and row["read_utilisation"] is None
    assert row["max_storage"] is None and row["max_namespaces"] is None and row["namespace_count"] == 1.0


# --- edges and errors -----------------------------------------------------------------------

def test_no_slots_places_nothing():
    registry = load_registry(THREE)
    result = registry.assign([])
    assert result.bindings == [] and result.unplaced == [] and result.ok
    assert result.utilisation["placed_slots"].to_list() == [0, 0, 0]
    assert result.to_polars().height == 0


def test_an_empty_registry_places_nothing_and_says_so():
    registry = load_registry([])
    result = registry.assign([dict(SLOT, optional=True)])
    assert result.bindings == []
    assert result.unplaced[0].diagnosis.total == 0
    assert str(result.unplaced[0].diagnosis) == "0/0 backends eligible"
    with pytest.raises(PlacementError, match=r"^Cannot be placed: 0/0 backends eligible - at slot `s`$"):
        registry.assign([SLOT])


def test_bindings_as_a_table():
    registry = load_registry(THREE)
    table = registry.assign(KV_SLOTS).to_polars()
    assert table.columns == ["slot_name", "backend_id", "score", "performance", "cost", "availability", "region"]
    assert table.select("slot_name", "backend_id").rows() == [("kv0", "pg"), ("kv1", "pg"), ("kv2", "redis"),
                                                              ("kv4", "redis")]


def test_a_bad_slot_is_a_registry_error_naming_it():
    registry = load_registry(ONE)
    with pytest.raises(RegistryError, match=r"^Expected a finite number >= 0, got `-1` - at slots\[1\] slot `t` "
                                            r"\$\.performance\.min_read_rps$"):
        registry.assign([SLOT, {"slot_name": "t", "performance": {"min_read_rps": -1}}])
