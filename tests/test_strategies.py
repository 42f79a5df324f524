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


# --- 2. anti-affinity and spread across regions ----------------------------------------------

GROUP_CAPS = st.fixed_dictionaries({}, optional={"max_per_backend": st.integers(1, 3),
                                                 "max_per_region": st.integers(1, 3),
                                                 "max_skew": st.integers(1, 2)})


@st.composite
def group_cases(draw):
    """A small registry, a policy, and replicas of a few slot shapes, in one
    or two groups, some capped."""
    case = draw(registries(wide=False, max_backends=8, min_backends=1))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        shape = draw(slot_for(case))
        shape.pop("current_backend", None)
        perf = {k: v for k, v in shape.get("performance", {}).items() if k != "min_storage"}
        perf.update(min_write_rps=draw(st.sampled_from(RATES[:5])), min_read_rps=draw(st.sampled_from(RATES[:5])))
        shape["performance"] = perf
        shape.update(draw(GROUP_CAPS))
        shape["group"] = draw(st.sampled_from(("g1", "g2")))
        shape["optional"] = True
        shapes.append(shape)
    picks = draw(st.lists(st.integers(0, len(shapes) - 1), max_size=10))
    return case, draw(policies_or_default), [dict(shapes[p], slot_name=f"s{i}") for i, p in enumerate(picks)]


@SETTINGS
@given(group_cases())
def test_assign_under_group_rules_equals_the_plain_reference(drawn):
    case, policy, slots = drawn
    registry = load_registry(case.docs, policy=policy)
    result = registry.assign(slots, allow_unplaced=True)
    plan = reference_assign.assign(list(registry), [validate_slot(s) for s in slots], policy)
    assert [(b.slot_name, b.backend_id) for b in result.bindings] == [(s, b) for s, b, _ in plan.bindings]
    for b, (_, _, expected) in zip(result.bindings, plan.bindings):
        assert close(b.score, expected), (b, expected)
    assert [u.slot_name for u in result.unplaced] == [name for name, _ in plan.unplaced]
    for u, (_, rejected) in zip(result.unplaced, plan.unplaced):
        assert u.diagnosis.rejected == rejected, u.slot_name


@SETTINGS
@given(group_cases())
def test_a_plan_keeps_every_group_cap(drawn):
    # Each placed slot's own caps hold for its group's placements up to and
    # including it (a later slot may bring a looser cap).
    case, policy, slots = drawn
    registry = load_registry(case.docs, policy=policy)
    result = registry.assign(slots, allow_unplaced=True)
    regions = {d["backend_id"]: set(d.get("regions", [])) for d in case.docs}
    where = {b.slot_name: b.backend_id for b in result.bindings}
    for j, slot in enumerate(slots):
        chosen = where.get(slot["slot_name"])
        if chosen is None:
            continue
        group = [where[s["slot_name"]] for s in slots[:j + 1]
                 if s["group"] == slot["group"] and s["slot_name"] in where]
        if "max_per_backend" in slot:
            assert group.count(chosen) <= slot["max_per_backend"]
        if "max_per_region" in slot:
            for region in regions[chosen]:
                assert sum(1 for b in group if region in regions[b]) <= slot["max_per_region"]
        if "max_skew" in slot:
            assert regions[chosen], "a backend serving no region is outside every domain"


def test_max_per_backend_spreads_replicas_and_explain_names_the_rule():
    registry = load_registry([backend("a"), backend("b")])
    replica = {"slot_name": "cache", "max_per_backend": 1, "optional": True}
    plan = registry.assign([replica] * 3, allow_unplaced=True)
    assert [b.backend_id for b in plan.bindings] == ["a", "b"]
    [unplaced] = plan.unplaced
    assert unplaced.diagnosis.rejected == {"group_backend_limit": 2}
    assert str(unplaced.diagnosis) == "0/2 backends eligible: 2 group_backend_limit(at most 1 of group `cache` per backend)"


def test_max_skew_spreads_evenly_over_regions():
    docs = [backend("e1", regions=["east"]), backend("e2", regions=["east"]), backend("w1", regions=["west"]),
            backend("bare", regions=[])]
    # `e1` is the best backend by far: without the spread every replica goes east.
    docs[0]["health"]["uptime_percent_24h"] = 100.0
    registry = load_registry(docs)
    replicas = [{"slot_name": f"r{i}", "group": "web", "max_skew": 1} for i in range(4)]
    plan = registry.assign(replicas)
    got = [b.backend_id for b in plan.bindings]
    east = sum(1 for g in got if g.startswith("e"))
    assert east == 2 and got.count("w1") == 2 and "bare" not in got
    unbounded = registry.assign([{"slot_name": f"r{i}", "group": "web"} for i in range(4)])
    assert {b.backend_id for b in unbounded.bindings} == {"e1"}


def test_max_per_region_caps_a_region_and_a_pattern_carries_its_caps():
    docs = [backend("e1", regions=["east"]), backend("e2", regions=["east"]), backend("w1", regions=["west"])]
    registry = load_registry(docs)
    pattern = {"pattern": "ha", "max_per_region": 1,
               "slots": {"primary": {"capabilities": ["get"]}, "replica": {"capabilities": ["get"]},
                         "third": {"capabilities": ["get"], "optional": True}}}
    bound = registry.bind_pattern(pattern)
    ids = bound.backend_ids()
    assert ids["third"] is None and {ids["primary"], ids["replica"]} in ({"e1", "w1"}, {"e2", "w1"})
    assert bound.diagnoses["third"].rejected == {"group_region_limit": 3}
    # Without the caps, each slot binds on its own (the old behaviour).
    free = registry.bind_pattern({"pattern": "free", "slots": pattern["slots"]}).backend_ids()
    assert len(set(free.values())) == 1


@SETTINGS
@given(group_cases())
def test_bind_pattern_under_group_rules_equals_the_plain_reference(drawn):
    case, policy, slots = drawn
    registry = load_registry(case.docs, policy=policy)
    pattern = {"pattern": "p", "max_per_backend": 2,
               "slots": {s["slot_name"]: {k: v for k, v in s.items() if k not in ("slot_name", "group")}
                         for s in slots}}
    bound = registry.bind_pattern(pattern)
    requirements = [validate_slot(dict(s, group="p", max_per_backend=s.get("max_per_backend", 2)))
                    for s in slots]
    plan = reference_assign.assign(list(registry), requirements, policy, bind_only=True)
    assert {k: v for k, v in bound.backend_ids().items() if v is not None} == {s: b for s, b, _ in plan.bindings}
    for slot_name, backend_id, expected in plan.bindings:
        assert close(bound.bindings[slot_name].score, expected)
    for name, rejected in plan.unplaced:
        assert bound.diagnoses[name].rejected == rejected


def test_reserve_honours_the_group_against_live_reservations():
    registry = load_registry([backend("a"), backend("b")])
    replica = {"slot_name": "cache", "max_per_backend": 1}
    first, second = registry.reserve(replica), registry.reserve(replica)
    assert {first.backend_id, second.backend_id} == {"a", "b"} and first.group == "cache"
    with pytest.raises(PlacementError, match="group_backend_limit"):
        registry.reserve(replica)
    with pytest.raises(PlacementError, match="group_backend_limit"):
        registry.reserve(replica, "a")
    registry.reserve({"slot_name": "other", "max_per_backend": 1})  # another group is not held back
    registry.release(first)
    assert registry.reserve(replica).backend_id == first.backend_id



def test_explain_and_a_named_reserve_name_the_group_rule_against_live_reservations():
    registry = load_registry([backend("a"), backend("b", regions=["eu-west-1"])])
    replica = {"slot_name": "cache", "max_per_backend": 2}
    assert registry.explain(replica).eligible == 2
    for _ in range(2):
        registry.reserve(replica, "a")
    diagnosis = registry.explain(replica)
    assert (diagnosis.eligible, diagnosis.rejected) == (1, {"group_backend_limit": 1})
    assert "group_backend_limit(at most 2 of group `cache` per backend)" in str(diagnosis)
    with pytest.raises(PlacementError, match=r"Backend `a` is not eligible: group_backend_limit"):
        registry.reserve(replica, "a")
    # The region cap and another group: counted per group, per region.
    regional = {"slot_name": "db", "max_per_region": 1}
    registry.reserve(regional, "b")
    assert registry.explain(regional).rejected == {"group_region_limit": 1}
    assert registry.explain({"slot_name": "other", "max_per_backend": 1}).eligible == 2
    # A slot that caps no group is explained as before (match's rules only).
    assert registry.explain({"slot_name": "cache"}).eligible == 2


# --- 3. ranked and weighted preferences -----------------------------------------------------

def test_a_ranked_region_list_scores_first_choice_most():
    docs = [backend("east", regions=["us-east-1"]), backend("west", regions=["us-west-2"]),
            backend("eu", regions=["eu-west-1"]), backend("both", regions=["eu-west-1", "us-west-2"])]
    registry = load_registry(docs)
    slot = {"slot_name": "s", "preferred_region": ["us-west-2", "nowhere", "eu-west-1"]}
    matches = {m.backend_id: m.region for m in registry.match(slot, k=4)}
    # L = 3: rank 0 -> 3/3, rank 2 -> 1/3; "nowhere" keeps its rank; the best-ranked region served counts.
    assert matches == {"west": 1.0, "both": 1.0, "eu": 1.0 / 3.0, "east": 0.0}
    # A single region (or a list of one) is the old term: 1 or 0.
    assert registry.match({"slot_name": "s", "preferred_region": ["eu-west-1"]})[0].region == 1.0


def test_preferred_terms_add_their_share_of_the_weights():
    docs = [backend("redis-pci", compliance=["pci"]), backend("pg", backend_type="postgres"),
            backend("plain")]
    policy = MatchPolicy(w_affinity=0.5)
    registry = load_registry(docs, policy=policy)
    slot = {"slot_name": "s", "preferences": [{"backend_type": "postgres", "weight": 3},
                                               {"tag": "pci", "weight": 1}, {"tag": "unknown-tag"}]}
    matches = {m.backend_id: m for m in registry.match(slot, k=3)}
    assert {b: m.affinity for b, m in matches.items()} == {"pg": 3 / 5, "redis-pci": 1 / 5, "plain": 0.0}
    base = load_registry(docs).match({"slot_name": "s"}, k=3)
    for m in base:
        assert matches[m.backend_id].score == m.score + 0.5 * matches[m.backend_id].affinity
    assert [m.backend_id for m in registry.match(slot, k=3)][0] == "pg"


def test_a_preference_names_exactly_one_thing():
    registry = load_registry([backend("a")])
    with pytest.raises(RegistryError, match="exactly one of `backend_type` or `tag`"):
        registry.match({"slot_name": "s", "preferences": [{"weight": 2}]})
    with pytest.raises(RegistryError, match="preferences"):
        registry.match({"slot_name": "s", "preferences": [{"tag": "pci", "weight": 0}]})


# --- 4. degraded backends get less traffic -------------------------------------------------

def test_the_degraded_penalty_lowers_a_degraded_backend_and_is_off_by_default():
    docs = [backend("sick", health={"status": "degraded", "uptime_percent_24h": 100.0}), backend("well")]
    slot = {"slot_name": "s"}
    assert load_registry(docs).match(slot)[0].backend_id == "sick"
    penalised = load_registry(docs, policy=MatchPolicy(degraded_penalty=0.05)).match(slot, k=2)
    assert [m.backend_id for m in penalised] == ["well", "sick"]
    plain = {m.backend_id: m.score for m in load_registry(docs).match(slot, k=2)}
    assert penalised[1].score == plain["sick"] - 0.05 and penalised[0].score == plain["well"]


# --- 5. stickiness ------------------------------------------------------------------------

def test_stickiness_keeps_the_current_backend_unless_another_is_better_by_the_margin():
    docs = [backend("a", health={"status": "healthy", "uptime_percent_24h": 99.0}),
            backend("b", health={"status": "healthy", "uptime_percent_24h": 99.5})]
    slot = {"slot_name": "s", "current_backend": "a"}
    # b is better by 0.2 * 0.005 = 0.001
    assert load_registry(docs).match(slot)[0].backend_id == "b"
    assert load_registry(docs, policy=MatchPolicy(stickiness=0.002)).match(slot)[0].backend_id == "a"
    assert load_registry(docs, policy=MatchPolicy(stickiness=0.0005)).match(slot)[0].backend_id == "b"


def test_assign_takes_current_bindings_and_reports_what_would_move():
    docs = [backend("a", health={"status": "healthy", "uptime_percent_24h": 99.0}),
            backend("b", health={"status": "healthy", "uptime_percent_24h": 99.5})]
    slots = [{"slot_name": "x", "performance": {"min_write_rps": 600}},
             {"slot_name": "y", "performance": {"min_write_rps": 600}}]
    current = {"x": "a", "y": "a"}
    loose = load_registry(docs).assign(slots, current=current)
    assert [(m.slot_name, m.from_backend, m.to_backend) for m in loose.moves] == [("x", "a", "b")]
    sticky = load_registry(docs, policy=MatchPolicy(stickiness=0.01)).assign(slots, current=current)
    assert [b.backend_id for b in sticky.bindings] == ["a", "b"]  # x stays; y cannot (a is full)
    assert [(m.slot_name, m.from_backend, m.to_backend) for m in sticky.moves] == [("y", "a", "b")]
    with pytest.raises(RegistryError, match="assign current `z`"):
        load_registry(docs).assign(slots, current={"z": "a"})


def test_a_sticky_slot_follows_its_backend_across_removes_and_adds():
    registry = load_registry([backend("a"), backend("b")], policy=MatchPolicy(stickiness=1.0))
    slot = {"slot_name": "s", "current_backend": "b"}
    prepared = registry.prepare(slot)
    assert registry.match(prepared)[0].backend_id == "b"
    registry.remove("b")
    registry.add(backend("c"))  # takes b's position
    assert registry.match(slot)[0].backend_id == "a"
    assert registry.match(prepared)[0].backend_id == "a"
    registry.add(backend("b"))
    assert registry.match(prepared)[0].backend_id == "b"


# --- 8. the command line --------------------------------------------------------------------

def test_the_policy_flags_and_assign_current_on_the_command_line(tmp_path, capsys):
    import json

    from prism_match import cli

    registry_file, slots_file, current_file = tmp_path / "r.json", tmp_path / "s.json", tmp_path / "c.json"
    registry_file.write_text(json.dumps([backend("a"), backend("b", current={"write_rps": 500})]))
    slots_file.write_text(json.dumps([{"slot_name": "x", "performance": {"min_write_rps": 100}}]))
    current_file.write_text(json.dumps({"x": "a"}))

    def assign(*flags: str) -> dict:
        assert cli.main(["assign", str(registry_file), str(slots_file), "-o", "json", *flags]) == 0
        return json.loads(capsys.readouterr().out)

    assert [b["backend_id"] for b in assign()["bindings"]] == ["a"]
    assert [b["backend_id"] for b in assign("--strategy", "binpack")["bindings"]] == ["b"]
    moved = assign("--strategy", "binpack", "--current", str(current_file))
    assert moved["moves"] == [{"slot_name": "x", "from": "a", "to": "b"}]
    kept = assign("--strategy", "binpack", "--current", str(current_file), "--stickiness", "1")
    assert [b["backend_id"] for b in kept["bindings"]] == ["a"] and kept["moves"] == []
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text("policy:\n  strategy: binpack\n  degraded_penalty: 0.5\n")
    assert [b["backend_id"] for b in assign("--policy", str(policy_file))["bindings"]] == ["b"]
    assert cli.main(["assign", str(registry_file), str(slots_file), "--degraded-penalty", "-1"]) == 1
    assert "--degraded-penalty" in capsys.readouterr().err


# --- 7. connections consumed ------------------------------------------------------------------

def test_placements_consume_connections_and_update_sets_active_connections():
    docs = [backend("a", capacity={"max_write_rps": 1000, "max_read_rps": 1000, "max_connections": 100})]
    slot = {"slot_name": "s", "min_connections": 40, "optional": True}
    registry = load_registry(docs, policy=MatchPolicy(capacity_basis="available"))
    plan = registry.assign([slot, slot, slot], allow_unplaced=True)
    assert len(plan.bindings) == 2
    assert plan.unplaced[0].diagnosis.rejected == {"insufficient_connections": 1}
    first = registry.reserve(slot)
    second = registry.reserve(slot)
    assert first.connections == 40 and registry.to_polars()["reserved_connections"].to_list() == [80.0]
    with pytest.raises(PlacementError, match="insufficient_connections"):
        registry.reserve(slot)
    registry.release(second)
    registry.update("a", active_connections=30)
    assert registry["a"].current.active_connections == 70.0  # observed 30 + reserved 40
    assert registry.match(slot) == []                         # 100 - 70 < 40
    registry.update("a", active_connections=0)
    assert [m.backend_id for m in registry.match(slot)] == ["a"]
    registry.assign([slot], commit=True)
    frame = registry.to_polars()
    assert frame["active_connections"].to_list() == [40.0] and frame["max_connections"].to_list() == [100.0]


def test_a_replica_replays_connection_updates_and_reservations():
    docs = [backend("a", capacity={"max_write_rps": 1000, "max_read_rps": 1000, "max_connections": 100})]
    leader, follower = load_registry(docs), load_registry(docs)
    leader.update("a", active_connections=25)
    leader.reserve({"slot_name": "s", "min_connections": 10})
    follower.apply(leader.changes())
    assert follower.to_polars().equals(leader.to_polars())


def test_the_incident_penalty_reads_open_incidents_of_the_registration_and_the_tracker(tmp_path):
    import datetime as dt

    from prism_match import load_snapshot
    from prism_match.schema import Incident

    start = "2026-01-01T00:00:00Z"
    docs = [backend("open", recent_incidents=[{"started_at": start}]),
            backend("resolved", recent_incidents=[{"started_at": start, "resolved_at": "2026-01-01T01:00:00Z"}]),
            backend("quiet")]
    slot = {"slot_name": "s"}
    plain = {m.backend_id: m.score for m in load_registry(docs).match(slot, k=3)}
    registry = load_registry(docs, policy=MatchPolicy(incident_penalty=0.25))
    scores = {m.backend_id: m.score for m in registry.match(slot, k=3)}
    assert scores == {"open": plain["open"] - 0.25, "resolved": plain["resolved"], "quiet": plain["quiet"]}
    assert registry.to_polars()["open_incidents"].to_list() == [1.0, 0.0, 0.0]
    # The health tracker's incidents count too, and a snapshot keeps the count.
    registry.record_health("quiet", incidents=(Incident(started_at=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)),))
    assert registry.match(slot, k=3)[-1].score == plain["quiet"] - 0.25
    path = tmp_path / "r.npz"
    registry.save(path)
    again = load_snapshot(path, policy=registry.policy)
    assert [(m.backend_id, m.score) for m in again.match(slot, k=3)] == \
        [(m.backend_id, m.score) for m in registry.match(slot, k=3)]
    registry.replace(backend("quiet"))  # the tracker's incident outlives a replace
    assert registry.to_polars()["open_incidents"].to_list()[2] == 1.0
