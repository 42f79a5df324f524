"""The three paths agree: the Cython kernel (``Registry.match``), the numpy
path (``score_table.ranked``) and the plain reference (``tests/reference.py``)
give the same backends in the same order with the same scores, and
``explain`` counts what the reference counts, on random registries and
slots, under random policies and after random live updates."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
from conftest import RegistryCase, apply_update, policies, policies_or_default, registries, slot_for, update_ops
from prism_match import MatchPolicy, load_registry, score_table
from prism_match.compiled import TYPE_CODE
from prism_match.rules import BY_CODE
from prism_match.engine import validate_slot

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SCORE_PARTS = ("score", "performance", "cost", "availability", "region")
OPT_IN_PARTS = ("affinity",)  # present when the slot states preferences


def close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def _words(bits, n_words: int) -> list[int]:
    words = [0] * n_words
    for bit in bits:
        words[bit >> 6] |= 1 << (bit & 63)
    return words


def expected_kernel_view(columns, details, index=None) -> dict:
    """The C struct ``CoreRegistry.prepare`` should build, derived from the
    plain-Python preparation (``prepare.slot_details``)."""
    caps = [r for r in details.requirements if r.kind == "capability"]
    bounded = math.isfinite(details.max_latency_ms) or details.capability_bounds
    rule_of = {"interface": BY_CODE["missing_interface"].bit, "capability": BY_CODE["missing_capability"].bit}
    kind_of = {r.bit: r.kind for r in details.requirements if r.bit is not None}
    always = 0
    for r in details.requirements:
        if r.bit is None:
            always |= rule_of[r.kind]
    if details.region_bits is not None and not details.region_bits:
        always |= BY_CODE["region"].bit
    if details.unknown_compliance:
        always |= BY_CODE["compliance"].bit
    return {
        "unmatchable": details.unmatchable,
        "always_failed": always,
        "req_tokens": sorted(kind_of),
        "req_rule": [rule_of[kind_of[t]] for t in sorted(kind_of)],
        "region_filter": details.region_bits is not None,
        "region_any": _words(details.region_bits or (), columns.regions.words),
        "compliance_filter": details.compliance_bits is not None,
        "compliance_all": _words(details.compliance_bits or (), columns.compliance.words),
        "type_mask": (1 << len(TYPE_CODE)) - 1 if details.type_codes is None else sum(1 << c for c in details.type_codes),
        "health_mask": sum(1 << c for c in details.health_codes),
        "max_consistency": details.max_consistency,
        "min_w": details.min_write_rps,
        "min_r": details.min_read_rps,
        "min_storage": details.min_storage,
        "max_lat_ms": details.max_latency_ms,
        "min_conn": details.min_connections,
        "lat_all": not caps,
        "lat_mask": _words([r.bit for r in caps if r.bit is not None] if bounded else (), columns.features.words),
        "pref_region": details.preferred_region_bit,
        "pref_ranked": list(details.preferred_ranked),
        "affinity": list(details.affinity),
        "affinity_total": details.affinity_total,
        "current_pos": -1 if details.current_backend is None or index is None
        else index.get(details.current_backend, -1),
        "max_per_backend": details.max_per_backend,
        "max_per_region": details.max_per_region,
        "max_skew": details.max_skew,
        "cap_rules": details.capability_bounds,
        "max_p50": details.max_latency_p50_ms,
        "max_p95": details.max_latency_p95_ms,
        "max_p999": details.max_latency_p999_ms,
        "needs_batch": details.needs_batch,
        "min_batch": details.min_batch_size,
        "min_conc": details.min_concurrency,
        "cap_throughput": details.per_capability_throughput,
    }


def assert_paths_agree(registry, slot_mapping: dict, k: int, live: reference.LiveState | None = None) -> list:
    """Kernel, numpy path and reference agree on ``slot_mapping`` (and the
    kernel answer through a mapping and through a prepared slot is the same)."""
    policy = registry.policy
    slot = validate_slot(slot_mapping)
    regs = list(registry)
    expected_all = reference.ranked(regs, slot, policy, live)
    expected = expected_all[:k]
    expected_ids = [bid for bid, _ in expected]

    prepared = registry.prepare(slot_mapping)
    # The Cython preparation builds what the plain-Python one describes.
    assert prepared.kernel_view() == expected_kernel_view(registry.columns, prepared.details,
                                                          registry.engine.core.index)
    kernel = registry.match(slot_mapping, k)
    kernel_prepared = registry.match(prepared, k)
    idx, parts = score_table.ranked(registry.columns, prepared, policy, k)
    numpy_ids = [registry.columns.backend_ids[i] for i in idx]

    assert [m.backend_id for m in kernel] == expected_ids
    assert [m.backend_id for m in kernel_prepared] == expected_ids
    assert numpy_ids == expected_ids
    assert len(kernel) == min(k, len(expected_all))

    for j, (bid, ref) in enumerate(expected):
        m = kernel[j]
        for name in SCORE_PARTS:
            assert close(getattr(m, name), ref[name]), (bid, name, getattr(m, name), ref[name])
            assert close(float(parts[name][j]), ref[name]), (bid, name, parts[name][j], ref[name])
        for name in OPT_IN_PARTS:
            if name in ref:
                assert close(getattr(m, name), ref[name]) and close(float(parts[name][j]), ref[name]), (bid, name)
        assert close(m.available_write_rps, ref["available_write_rps"])
        assert close(m.available_read_rps, ref["available_read_rps"])
        assert m.score == kernel_prepared[j].score
        assert m.index == registry.columns.backend_ids.index(bid)

    # Exact ties stay exact: backends the reference scores equal, every path
    # scores equal (so they are ordered by id alone).
    for a in range(len(expected) - 1):
        if expected[a][1]["score"] == expected[a + 1][1]["score"]:
            assert kernel[a].score == kernel[a + 1].score
            assert parts["score"][a] == parts["score"][a + 1]
            assert reference.id_order(expected[a][0]) < reference.id_order(expected[a + 1][0])

    diagnosis = registry.explain(prepared)
    assert diagnosis.total == len(regs)
    assert diagnosis.eligible == len(expected_all)
    assert diagnosis.rejected == reference.explain_counts(regs, slot, policy, live)
    return kernel


def agree_on_a_drawn_slot(data, case: RegistryCase, registry) -> None:
    """Draw a slot for ``case`` and a ``k``; the three paths agree on them."""
    slot = data.draw(slot_for(case))
    k = data.draw(st.integers(1, len(case.docs) + 3))
    assert_paths_agree(registry, slot, k)


@SETTINGS
@given(data=st.data())
def test_paths_agree_on_random_registries(data):
    case: RegistryCase = data.draw(registries())
    agree_on_a_drawn_slot(data, case, load_registry(case.docs))


@SETTINGS
@given(data=st.data())
def test_paths_agree_under_custom_policies(data):
    case = data.draw(registries())
    policy = data.draw(policies)
    registry = load_registry(case.docs, policy=policy)
    assert registry.policy is policy
    agree_on_a_drawn_slot(data, case, registry)


@SETTINGS
@given(data=st.data())
def test_paths_agree_on_wide_vocabularies(data):
    case = data.draw(registries(wide=True, min_backends=1))
    registry = load_registry(case.docs)
    cols = registry.columns
    # More than 64 tokens of each kind: the masks really span several words.
    assert cols.feature_rows.shape[1] > 1 and cols.region_rows.shape[1] > 1 and cols.compliance_rows.shape[1] > 1
    agree_on_a_drawn_slot(data, case, registry)


@SETTINGS
@given(data=st.data())
def test_paths_agree_across_interleaved_updates(data):
    case = data.draw(registries(min_backends=1))
    policy = data.draw(policies_or_default)
    registry = load_registry(case.docs, policy=policy)
    live = reference.LiveState()
    slot_list = [data.draw(slot_for(case)) for _ in range(2)]
    steps = data.draw(st.lists(st.one_of(update_ops(case), st.integers(0, len(slot_list) - 1)),
                               min_size=1, max_size=8))
    for step in steps:
        if isinstance(step, int):
            k = data.draw(st.integers(1, len(case.docs) + 2))
            assert_paths_agree(registry, slot_list[step], k, live)
        else:
            apply_update(registry, live, *step)
    for slot in slot_list:
        assert_paths_agree(registry, slot, len(case.docs), live)


@SETTINGS
@given(data=st.data())
def test_query_returns_every_eligible_backend(data):
    case = data.draw(registries())
    registry = load_registry(case.docs)
    slot = data.draw(slot_for(case))
    # The same requirement written as the seed's query (with the `query:` wrapper).
    query = {
        "required_capabilities": slot.get("capabilities", []),
        "required_interfaces": slot.get("interfaces", []),
        "min_capacity": {k: v for k, v in (slot.get("performance") or {}).items()
                         if k in ("min_write_rps", "min_read_rps", "min_storage")},
    }
    for key in ("regions", "health_statuses", "backend_types", "compliance", "preferred_region"):
        if key in slot:
            query[key] = slot[key]
    result = registry.query({"query": query})
    expected = reference.ranked(list(registry), validate_slot({"query": query}), registry.policy)
    assert [m.backend_id for m in result.backends] == [bid for bid, _ in expected]
    assert [m.score for m in result.backends] == pytest.approx([p["score"] for _, p in expected], rel=1e-12)
    assert result.total_count == len(expected)


# --- targeted cases the strategies hit only by luck --------------------------------------

def test_exact_ties_order_by_utf8_bytes():
    ids = ["b", "B", "a10", "a9", "é", "z", "中", "\ue000", "😀", "_", "-", "0"]
    body = {"backend_type": "redis", "capabilities": ["get"],
            "capacity": {"max_write_rps": 1000, "max_read_rps": 1000}, "cost": {"cost_per_1k_writes": 0.5},
            "health": {"status": "healthy", "uptime_percent_24h": 99.9}}
    registry = load_registry([dict(body, backend_id=i) for i in ids])
    expected = sorted(ids, key=lambda s: s.encode("utf-8"))
    assert expected[:4] == ["-", "0", "B", "_"]  # uppercase before underscore before lowercase
    kernel = registry.match({"slot_name": "s", "capabilities": ["get"]}, k=len(ids) + 5)
    assert [m.backend_id for m in kernel] == expected
    assert len({m.score for m in kernel}) == 1
    assert_paths_agree(registry, {"slot_name": "s", "capabilities": ["get"]}, 3)


def test_empty_registry():
    registry = load_registry([])
    assert len(registry) == 0 and registry.backend_ids == []
    assert registry.match({"slot_name": "s"}, k=3) == []
    assert registry.match({"slot_name": "s", "capabilities": ["get"]}) == []
    diagnosis = registry.explain({"slot_name": "s"})
    assert (diagnosis.eligible, diagnosis.total, diagnosis.rejected) == (0, 0, {})
    assert registry.query({"query": {"backend_types": ["kafka"]}}).total_count == 0
    assert_paths_agree(registry, {"slot_name": "s", "performance": {"min_write_rps": 5}}, 1)


@pytest.mark.parametrize("k", [1, 5, 16, 17, 40, 1000])
def test_k_beyond_the_eligible_count(k):
    docs = [{"backend_id": f"b{i:02d}", "backend_type": "kafka", "capabilities": ["publish"],
             "capacity": {"max_write_rps": 1000 * (i % 7)}} for i in range(30)]
    registry = load_registry(docs)
    slot = {"slot_name": "s", "capabilities": ["publish"], "performance": {"min_write_rps": 2000}}
    matches = assert_paths_agree(registry, slot, k)
    assert len(matches) == min(k, sum(1 for i in range(30) if i % 7 >= 2))


def test_versions_bare_and_exact():
    docs = [
        {"backend_id": "plain", "backend_type": "redis", "capabilities": ["get"], "interfaces": ["KV"]},
        {"backend_id": "v1", "backend_type": "redis", "capabilities": [{"name": "get", "version": "v1"}],
         "interfaces": [{"name": "KV"}]},
        {"backend_id": "v2", "backend_type": "redis", "capabilities": [{"name": "get", "version": "v2"}],
         "interfaces": [{"name": "KV", "version": "v2"}]},
    ]
    registry = load_registry(docs)

    def ids(slot: dict) -> list[str]:
        got = [m.backend_id for m in assert_paths_agree(registry, dict(slot, slot_name="s"), 10)]
        return sorted(got)

    assert ids({"capabilities": ["get"]}) == ["plain", "v1", "v2"]
    assert ids({"capabilities": ["get@v1"]}) == ["plain", "v1"]
    assert ids({"capabilities": ["get@v2"]}) == ["v2"]
    assert ids({"capabilities": [{"name": "get", "version": "v2"}]}) == ["v2"]
    assert ids({"capabilities": [{"name": "get"}]}) == ["plain", "v1", "v2"]
    assert ids({"capabilities": ["get@v3"]}) == []
    assert ids({"interfaces": ["KV@v2"]}) == ["v2"]
    assert ids({"interfaces": ["KV@v1"], "capabilities": ["get@v2"]}) == []
    # A capability name never satisfies an interface requirement, nor the reverse.
    assert ids({"interfaces": ["get"]}) == []
    assert ids({"capabilities": ["KV"]}) == []


def test_latency_rule_reads_only_required_capabilities():
    slow_set = {"name": "set", "performance": {"latency": {"p99_ms": 50}}}
    fast_get = {"name": "get", "version": "v2", "performance": {"latency": {"p99_ms": 5}}}
    docs = [
        {"backend_id": "slow-set", "backend_type": "redis", "capabilities": [fast_get, slow_set]},
        {"backend_id": "no-data", "backend_type": "redis", "capabilities": ["get", "set"]},
    ]
    registry = load_registry(docs)
    bound = {"max_latency_p99": "25ms"}

    def ids(slot: dict) -> list[str]:
        return sorted(m.backend_id for m in assert_paths_agree(registry, dict(slot, slot_name="s"), 10))

    assert ids({"capabilities": ["get"], "performance": bound}) == ["no-data", "slow-set"]
    assert ids({"capabilities": ["set"], "performance": bound}) == ["no-data"]
    # No capability required: every capability that declares p99 counts.
    assert ids({"performance": bound}) == ["no-data"]
    assert ids({"interfaces": [], "performance": {"max_latency_p99": "50ms"}}) == ["no-data", "slow-set"]
    # requires_transactions adds `transaction`, which is then a required capability.
    assert ids({"performance": dict(bound, requires_transactions=True)}) == []
    assert registry.explain({"slot_name": "s", "capabilities": ["set"], "performance": bound}).rejected == {
        "latency_too_high": 1}


def test_missing_data_scores_zero_and_fails_storage():
    docs = [{"backend_id": "bare", "backend_type": "sqlite"},
            {"backend_id": "full", "backend_type": "sqlite",
             "capacity": {"max_write_rps": 100, "max_read_rps": 100, "max_storage": "1TB"},
             "current": {"write_rps": 50}, "cost": {"cost_per_1k_writes": 1},
             "health": {"status": "healthy", "uptime_percent_24h": 50}, "regions": ["eu"],
             "consistency": "session"}]
    registry = load_registry(docs)
    [bare] = [m for m in registry.match({"slot_name": "s", "preferred_region": "eu"}, k=2)
              if m.backend_id == "bare"]
    assert (bare.cost, bare.availability, bare.region) == (0.0, 0.0, 0.0)
    assert_paths_agree(registry, {"slot_name": "s", "preferred_region": "eu"}, 2)
    for slot in ({"min_storage": 1}, {"consistency": "eventual"}, {"regions": ["eu"]},
                 {"compliance": ["pci"]}, {"health_statuses": ["healthy"]},
                 {"performance": {"min_write_rps": 1}}, {"performance": {"min_read_rps": 60}}):
        assert "bare" not in [m.backend_id for m in assert_paths_agree(registry, dict(slot, slot_name="s"), 2)]


@pytest.mark.parametrize("basis", ["max", "available"])
def test_overloaded_backend(basis):
    docs = [{"backend_id": "hot", "backend_type": "kafka",
             "capacity": {"max_write_rps": 1000, "max_read_rps": 1000, "max_storage": 100},
             "current": {"write_rps": 5000, "read_rps": 10, "storage_used": 500}}]
    registry = load_registry(docs, policy=MatchPolicy(capacity_basis=basis))
    for slot in ({}, {"performance": {"min_write_rps": 10}}, {"performance": {"min_read_rps": 990}},
                 {"min_storage": 50}):
        matches = assert_paths_agree(registry, dict(slot, slot_name="s"), 1)
        for m in matches:
            assert m.available_write_rps == 0.0  # headroom of an overloaded backend is 0, not negative
    matches = registry.match({"slot_name": "s", "performance": {"min_write_rps": 10}})
    assert [m.backend_id for m in matches] == (["hot"] if basis == "max" else [])
    # With no minimum, an overloaded backend (headroom clamped to 0) still qualifies on either basis.
    assert [m.backend_id for m in registry.match({"slot_name": "s"})] == ["hot"]


def test_update_of_status_and_uptime_changes_the_answer():
    docs = [{"backend_id": i, "backend_type": "redis", "capabilities": ["get"],
             "capacity": {"max_write_rps": 1000, "max_read_rps": 1000},
             "health": {"status": "healthy", "uptime_percent_24h": 90}} for i in ("a", "b")]
    registry = load_registry(docs)
    live = reference.LiveState()
    slot = {"slot_name": "s", "capabilities": ["get"]}
    assert [m.backend_id for m in assert_paths_agree(registry, slot, 2, live)] == ["a", "b"]
    apply_update(registry, live, "b", {"uptime": 99})
    assert [m.backend_id for m in assert_paths_agree(registry, slot, 2, live)] == ["b", "a"]
    apply_update(registry, live, "b", {"status": "unhealthy"})
    assert [m.backend_id for m in assert_paths_agree(registry, slot, 2, live)] == ["a"]
    apply_update(registry, live, "b", {"status": "degraded", "write_rps": 999})
    assert_paths_agree(registry, dict(slot, performance={"min_write_rps": 10}), 2, live)
    with_basis, basis_live = load_registry(docs, policy=MatchPolicy(capacity_basis="available")), reference.LiveState()
    apply_update(with_basis, basis_live, "b", {"write_rps": 999})
    assert [m.backend_id for m in assert_paths_agree(
        with_basis, dict(slot, performance={"min_write_rps": 10}), 2, basis_live)] == ["a"]


def test_policy_weights_apply_in_the_documented_order():
    docs = [{"backend_id": "x", "backend_type": "redis", "regions": ["eu"],
             "capacity": {"max_write_rps": 300, "max_read_rps": 900}, "current": {"write_rps": 100},
             "cost": {"cost_per_1k_writes": 0.25}, "health": {"uptime_percent_24h": 97.5}}]
    policy = MatchPolicy(w_perf=1.5, w_cost=0.7, w_avail=0.3, w_region=2.0, perf_cap=1.25)
    registry = load_registry(docs, policy=policy)
    [m] = registry.match({"slot_name": "s", "preferred_region": "eu",
                          "performance": {"min_write_rps": 150, "min_read_rps": 100}})
    perf = min(200 / 150, 900 / 100, 1.25)
    assert m.performance == perf
    assert m.score == 1.5 * perf + 0.7 * (1 / 1.25) + 0.3 * 0.975 + 2.0 * 1.0
    assert math.isfinite(m.score)


def test_a_name_containing_at_is_not_read_as_a_version():
    # SPEC §2: `Name@version` is that version of `Name`; a registration may
    # still declare a capability whose name contains "@" (names are free text).
    docs = [{"backend_id": "named", "backend_type": "redis", "capabilities": ["x@y"]},
            {"backend_id": "versioned", "backend_type": "redis", "capabilities": [{"name": "x", "version": "y"}]}]
    registry = load_registry(docs)

    def ids(required) -> list[str]:
        return [m.backend_id for m in assert_paths_agree(registry, {"slot_name": "s", "capabilities": [required]}, 5)]

    assert ids("x@y") == ["versioned"]
    assert ids({"name": "x", "version": "y"}) == ["versioned"]
    assert ids({"name": "x@y"}) == ["named"]
    assert ids({"name": "x@y", "version": "v1"}) == ["named"]
    assert ids("x@y@v1") == ["named"]  # the last "@" splits name and version
    assert ids("x@y@v2") == []
