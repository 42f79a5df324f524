"""The rule table holds together: rules.RULES, the C enum (``_rules.pxd``),
the kernel's failed-rule bits, the numpy masks (score_table) and the plain
reference agree on every rule; and every rule has a small example that fails
when its check is weakened (all-of read as any-of, the last latency entry
skipped, the region term dropped, a boundary moved)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
import reference_assign
from conftest import policies_or_default, registries, slot_for
from prism_match import MatchPolicy, load_registry, score_table
from prism_match._core import rule_bits
from prism_match.engine import validate_slot
from prism_match.rules import BY_CODE, CODES, RULES, codes_of


def test_bits_are_distinct_powers_of_two_in_table_order():
    assert [rule.bit for rule in RULES] == [1 << j for j in range(len(RULES))]
    assert len(set(CODES)) == len(RULES)


def test_the_c_enum_mirrors_the_table():
    assert list(rule_bits()) == [rule.bit for rule in RULES]


# Rules that apply only while placing (assign, bind_pattern, reserve); their
# reference is tests/reference_assign.py.
PLACING = ("namespaces_exhausted", "group_backend_limit", "group_region_limit", "group_region_skew")


def test_the_reference_knows_the_same_codes_in_the_same_order():
    assert list(reference.CODES) == [c for c in CODES if c not in PLACING]
    assert list(reference_assign.ALL_CODES) == list(CODES)


def test_every_rule_has_a_reason_and_a_requirement_text():
    for rule in RULES:
        assert rule.reason and rule.reason[0].isupper()
        assert callable(rule.requirement) and callable(rule.hint)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_numpy_and_reference_fail_the_same_rules(data):
    case = data.draw(registries(min_backends=1))
    slot = data.draw(slot_for(case))
    policy = data.draw(policies_or_default)
    registry = load_registry(case.docs, policy=policy)
    prepared = registry.prepare(slot)
    bits, counts, eligible = registry.engine.core.failure_bits(prepared, registry.engine.core_policy)
    numpy_bits = score_table.failure_bits(score_table.rule_masks(registry.columns, prepared, policy), registry.columns.n)
    assert bits.tolist() == numpy_bits.tolist()
    requirement = validate_slot(slot)
    for reg, b in zip(registry, bits.tolist()):
        assert codes_of(b) == reference.eligible(reg, requirement, policy), reg.backend_id
    assert int(eligible) == reference.eligible_count(list(registry), requirement, policy)
    assert {code: int(counts[j]) for j, code in enumerate(CODES) if counts[j]} == \
        reference.explain_counts(list(registry), requirement, policy)


# --- one example per rule ----------------------------------------------------------------

def backend(backend_id: str, **fields) -> dict:
    base = {"backend_id": backend_id, "backend_type": "postgres",
            "interfaces": ["KeyValueBasicInterface"], "capabilities": ["get", "set"],
            "capacity": {"max_write_rps": 1000, "max_read_rps": 1000, "max_storage": "1TB", "max_namespaces": 5},
            "health": {"status": "healthy", "uptime_percent_24h": 99.0}, "regions": ["us-east-1"],
            "compliance": ["pci"], "consistency": "strong"}
    base.update(fields)
    return base


def rejected(backends: list[dict], slot: dict) -> dict[str, int]:
    registry = load_registry(backends)
    diag = registry.explain(dict(slot, slot_name="s"))
    eligible = [m.backend_id for m in registry.match(dict(slot, slot_name="s"), k=10)]
    assert diag.eligible == len(eligible)
    return diag.rejected


EXAMPLES = {
    "missing_interface": ([backend("ok"), backend("bad", interfaces=["KeyValueBasicInterface@v2"])],
                          {"interfaces": ["KeyValueBasicInterface@v1"]}),
    "missing_capability": ([backend("ok", capabilities=["get", "set", "delete"]), backend("bad")],
                           {"capabilities": ["get", "set", "delete"]}),
    "insufficient_write_capacity": ([backend("ok"), backend("bad", capacity={"max_write_rps": 999.5})],
                                    {"performance": {"min_write_rps": 1000}}),
    "insufficient_read_capacity": ([backend("ok"), backend("bad", capacity={"max_read_rps": 999.5})],
                                   {"performance": {"min_read_rps": 1000}}),
    # Only the last latency entry of `bad` breaks the bound.
    "latency_too_high": ([backend("ok", capabilities=[{"name": "get", "performance": {"latency": {"p99_ms": 5}}}]),
                          backend("bad", capabilities=[
                              {"name": "get", "performance": {"latency": {"p99_ms": 5}}},
                              {"name": "set", "performance": {"latency": {"p99_ms": 5}}},
                              {"name": "scan", "performance": {"latency": {"p99_ms": 26}}}])],
                         {"performance": {"max_latency_p99": "25ms"}}),
    "health_status": ([backend("ok"), backend("bad", health={"status": "degraded"})],
                      {"health_statuses": ["healthy"]}),
    # Any-of: `ok` serves the second listed region only.
    "region": ([backend("ok", regions=["eu-west-1"]), backend("bad", regions=["ap-south-1"])],
               {"regions": ["us-east-1", "eu-west-1"]}),
    # All-of: `bad` holds one of the two tags.
    "compliance": ([backend("ok", compliance=["pci", "hipaa"]), backend("bad", compliance=["hipaa"])],
                   {"compliance": ["pci", "hipaa"]}),
    "backend_type": ([backend("ok"), backend("bad", backend_type="redis")], {"backend_types": ["postgres", "kafka"]}),
    "insufficient_storage": ([backend("ok"), backend("bad", capacity={"max_write_rps": 1000, "max_read_rps": 1000})],
                             {"min_storage": "1TB"}),
    "consistency": ([backend("ok", consistency="bounded_staleness"), backend("bad", consistency="session")],
                    {"consistency": "bounded_staleness"}),
    # The rule added through the table (rules.py's four steps): `bad` declares too few.
    "insufficient_connections": ([backend("ok", capacity={"max_connections": 500}),
                                  backend("bad", capacity={"max_connections": 499.5})], {"min_connections": 500}),
    # Issue 13's per-capability rules. Only the last entry of `bad` breaks the bound.
    "latency_percentile_too_high": (
        [backend("ok", capabilities=[{"name": "get", "performance": {"latency": {"p95_ms": 25, "p999_ms": 1000}}}]),
         backend("bad", capabilities=[{"name": "get", "performance": {"latency": {"p95_ms": 5}}},
                                      {"name": "set", "performance": {"latency": {"p999_ms": 1000.5}}}])],
        {"performance": {"max_latency_p95": "25ms", "max_latency_p999": "1s"}}),
    # Inside `performance` wins over beside it (G2).
    "no_batch_support": ([backend("ok", capabilities=[{"name": "get", "supports_batch": True}, "set"]),
                          backend("bad", capabilities=[{"name": "get", "supports_batch": True,
                                                        "performance": {"supports_batch": False}}])],
                         {"capabilities": ["get"], "performance": {"requires_batch": True}}),
    "insufficient_concurrency": (
        [backend("ok", capabilities=[{"name": "get", "max_concurrent_operations": 100}]),
         backend("bad", capabilities=[{"name": "get", "performance": {"max_concurrent_operations": 99}}])],
        {"capabilities": ["get"], "performance": {"min_concurrency": 100}}),
    "insufficient_capability_throughput": (
        [backend("ok", capabilities=[{"name": "get", "performance": {"max_read_rps": 1000}}]),
         backend("bad", capabilities=[{"name": "get", "performance": {"max_read_rps": 999.5}}])],
        {"capabilities": ["get"], "performance": {"min_read_rps": 1000, "per_capability_throughput": True}}),
}


@pytest.mark.parametrize("code", sorted(EXAMPLES))
def test_each_rule_rejects_exactly_its_counterexample(code):
    backends, slot = EXAMPLES[code]
    assert rejected(backends, slot) == {code: 1}


def test_latency_with_no_required_capability_checks_every_capability():
    backends, slot = EXAMPLES["latency_too_high"]
    assert rejected(backends, slot) == {"latency_too_high": 1}  # no capability required: all are checked
    assert rejected(backends, dict(slot, capabilities=["get"])) == {}  # only `get` is checked


def test_compliance_needs_every_tag_and_region_any_one():
    backends = [backend("one", compliance=["pci"]), backend("both", compliance=["pci", "sox"])]
    assert rejected(backends, {"compliance": ["pci", "sox"]}) == {"compliance": 1}
    assert rejected(backends, {"compliance": ["pci"]}) == {}


def test_the_namespace_rule_applies_while_placing():
    registry = load_registry([backend("only", capacity={"max_namespaces": 2}, current={"namespace_count": 1})])
    slot = {"slot_name": "s", "interfaces": ["KeyValueBasicInterface"], "optional": True}
    plan = registry.assign([slot, slot], allow_unplaced=True)
    assert [b.backend_id for b in plan.bindings] == ["only"]
    assert plan.unplaced[0].diagnosis.rejected == {"namespaces_exhausted": 1}
    assert plan.unplaced[0].diagnosis.details["namespaces_exhausted"] == BY_CODE["namespaces_exhausted"] \
        .requirement(None)  # type: ignore[arg-type]


def test_the_preferred_region_term_adds_its_weight():
    registry = load_registry([backend("east"), backend("west", regions=["us-west-2"])])
    matches = registry.match({"slot_name": "s", "preferred_region": "us-west-2"}, k=2)
    assert [m.backend_id for m in matches] == ["west", "east"]
    assert matches[0].region == 1.0 and matches[1].region == 0.0
    assert matches[0].score - matches[1].score == pytest.approx(MatchPolicy().w_region)


def test_boundaries_are_inclusive():
    assert rejected([backend("ok")], {"performance": {"min_write_rps": 1000, "min_read_rps": 1000}}) == {}
    assert rejected([backend("ok", capabilities=[{"name": "get", "performance": {"latency": {"p99_ms": 25}}}])],
                    {"performance": {"max_latency_p99": "25ms"}}) == {}


def test_explain_reads_codes_and_texts_from_the_table():
    backends, slot = EXAMPLES["insufficient_write_capacity"]
    diag = load_registry(backends).explain(dict(slot, slot_name="s"))
    assert str(diag) == "1/2 backends eligible: 1 insufficient_write_capacity(need 1000 rps)"


def test_check_binding_names_each_failed_rule_with_its_reason():
    backends, _ = EXAMPLES["compliance"]
    registry = load_registry(backends)
    pattern = {"pattern": "p", "slots": {"db": {"compliance": ["pci", "hipaa"], "backend_types": ["redis"]}}}
    problems = registry.check_binding(pattern, {"db": "bad"})["db"]
    assert [(p.code, p.detail) for p in problems] == [("compliance", "need pci, hipaa"),
                                                      ("backend_type", "need redis")]
    assert problems[0].reason == BY_CODE["compliance"].reason


def test_the_score_table_shows_every_backend_with_its_failed_rules():
    backends, slot = EXAMPLES["compliance"]
    table = load_registry(backends).score_table(dict(slot, slot_name="s"))
    assert table["backend_id"].to_list() == ["ok", "bad"]
    assert table["eligible"].to_list() == [True, False]
    assert table["failed"].to_list() == [[], ["compliance"]]
    assert table["rule_compliance"].to_list() == [False, True]
    assert table["region"].to_list() == [0.0, 0.0]  # the score term, beside the rule_region verdicts
    assert np.all(table["score"].to_numpy() > 0)


def test_explain_all_prints_every_backend_with_its_rules(tmp_path, capsys):
    from prism_match import cli

    backends, slot = EXAMPLES["compliance"]
    registry_file = tmp_path / "r.json"
    slots_file = tmp_path / "s.json"
    import json
    registry_file.write_text(json.dumps(backends))
    slots_file.write_text(json.dumps([dict(slot, slot_name="s")]))
    assert cli.main(["explain", str(registry_file), str(slots_file), "--all", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["backend_id"], r["eligible"], r["failed"], r["rule_compliance"]) for r in rows] == [
        ("ok", True, [], False), ("bad", False, ["compliance"], True)]


def test_connections_count_what_is_left_under_the_available_basis():
    backends = [backend("busy", capacity={"max_write_rps": 1000, "max_read_rps": 1000, "max_connections": 500},
                        current={"active_connections": 450}),
                backend("undeclared")]
    slot = {"min_connections": 100}
    assert rejected(backends, slot) == {"insufficient_connections": 1}  # the maximum is enough; no declaration fails
    registry = load_registry(backends, policy=MatchPolicy(capacity_basis="available"))
    assert registry.explain(dict(slot, slot_name="s")).rejected == {"insufficient_connections": 2}
    assert str(registry.explain(dict(slot, slot_name="s"))) == "0/2 backends eligible: 2 insufficient_connections(need 100 connections)"
