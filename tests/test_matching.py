"""Behaviour of the matching surface on the seed's own examples: match,
reasons, explain, query, patterns' slots, prepared slots, live updates and
their validation, lazy reasons, and matching while another thread updates."""

from __future__ import annotations

import copy
import math
import sys
import threading

import numpy as np
import pytest

import reference
from prism_match import reasons as reasons_module
from prism_match import registry as registry_module
from prism_match import MatchPolicy, PreparedSlot, Registry, RegistryError, load_registry
from prism_match.engine import validate_slot

# The seed's "Example Backend Configurations" (seed/yaml/kafka-prod-short.yaml,
# postgres-primary.yaml, redis-cache.yaml), as dicts so the tests need no seed checkout.
KAFKA = {
    "backend_id": "kafka-prod-us-east-1", "backend_type": "kafka", "display_name": "Production Kafka (US East)",
    "connection": {"endpoint": "kafka-prod.prism.local:9092", "auth": {"type": "mtls"},
                   "tls": {"enabled": True, "verify_server": True}},
    "capabilities": ["publish", "subscribe", "replay"],
    "interfaces": ["PubSubInterface", "StreamingInterface"],
    "capacity": {"max_write_rps": 1000000, "max_read_rps": 5000000, "max_storage": "10TB"},
    "regions": ["us-east-1", "us-west-2"], "compliance": ["pci", "soc2"],
}
POSTGRES = {
    "backend_id": "postgres-primary", "backend_type": "postgres", "display_name": "Primary Postgres Database",
    "connection": {"endpoint": "postgres-primary.prism.local:5432",
                   "auth": {"type": "username_password", "username": "prism"},
                   "pool": {"min_connections": 20, "max_connections": 100}},
    "capabilities": ["get", "set", "delete", "scan", "transaction", "query"],
    "interfaces": ["KeyValueBasicInterface", "TransactionalInterface", "QueryInterface"],
    "capacity": {"max_write_rps": 50000, "max_read_rps": 200000, "max_storage": "5TB"},
    "regions": ["us-east-1"], "compliance": ["pci", "soc2", "hipaa"],
}
REDIS = {
    "backend_id": "redis-cache-us-east-1", "backend_type": "redis", "display_name": "Redis Cache (US East)",
    "connection": {"endpoint": "redis-cache.prism.local:6379", "auth": {"type": "token"},
                   "pool": {"min_connections": 50, "max_connections": 500}},
    "capabilities": ["get", "set", "delete", "ttl", "publish", "subscribe"],
    "interfaces": ["KeyValueBasicInterface", "TTLInterface", "PubSubInterface"],
    "capacity": {"max_write_rps": 500000, "max_read_rps": 2000000, "max_storage": "100GB"},
    "regions": ["us-east-1"],
}
SEED_BACKENDS = [KAFKA, POSTGRES, REDIS]

# seed/yaml/slot-requirement.yaml
STORAGE_SLOT = {"slot_requirement": {
    "slot_name": "storage",
    "capabilities": ["get", "set", "delete", "transaction"],
    "interfaces": ["KeyValueBasicInterface", "TransactionalInterface"],
    "optional": False,
    "performance": {"min_write_rps": 10000, "min_read_rps": 50000, "max_latency_p99": "25ms",
                    "requires_transactions": True, "requires_atomic_writes": True},
}}

# The seed's "Interface Compatibility" pattern.
MULTICAST_REGISTRY = {
    "pattern": "multicast-registry",
    "slots": {
        "registry": {"required_interfaces": ["KeyValueBasicInterface", "WatchInterface"]},
        "messaging": {"required_interfaces": ["PubSubInterface"]},
    },
}

# seed/yaml/query-by-capabilities.yaml and query-by-type.yaml, `response:` included.
QUERY_BY_CAPABILITIES = {
    "query": {
        "required_capabilities": ["transaction", "get", "set"],
        "required_interfaces": ["KeyValueBasicInterface", "TransactionalInterface"],
        "min_capacity": {"min_write_rps": 10000, "min_read_rps": 50000, "min_storage": "1TB"},
        "regions": ["us-east-1", "us-west-2"],
        "health_statuses": ["healthy"],
    },
    "response": {"backends": [{"backend_id": "postgres-primary", "score": 0.92},
                              {"backend_id": "postgres-secondary", "score": 0.78}], "total_count": 2},
}
QUERY_BY_TYPE = {"query": {"backend_types": ["kafka", "nats"], "regions": ["us-east-1"]},
                 "response": {"backends": ["kafka-prod-us-east-1", "nats-prod-us-east-1"]}}


@pytest.fixture
def seed() -> Registry:
    return load_registry(copy.deepcopy(SEED_BACKENDS))


def ids(matches) -> list[str]:
    return [m.backend_id for m in matches]


def reason(match, kind: str) -> str:
    [text] = [r.explanation for r in match.reasons if r.type == kind]
    return text


# --- the seed's slot ------------------------------------------------------------------------

def test_the_seed_storage_slot_binds_postgres(seed):
    matches = seed.match(STORAGE_SLOT, k=3)
    assert ids(matches) == ["postgres-primary"]
    [m] = matches
    # perf = min(50k/10k, 200k/50k, 2.0) = 2; no cost, uptime or preferred region: 0.4 * 2.
    assert (m.score, m.performance, m.cost, m.availability, m.region) == (0.4 * 2.0, 2.0, 0.0, 0.0, 0.0)
    assert m.components == {"performance": 2.0, "cost": 0.0, "availability": 0.0, "region": 0.0}
    assert (m.available_write_rps, m.available_read_rps) == (50000, 200000)
    slot = validate_slot(STORAGE_SLOT)
    assert reference.match(list(seed), slot, 3) == [("postgres-primary", m.score)]


def test_reasons_in_the_seeds_wording(seed):
    [m] = seed.match(dict(STORAGE_SLOT["slot_requirement"], preferred_region="us-east-1"))
    assert [r.type for r in m.reasons] == ["capability_match", "performance", "cost", "availability",
                                           "region_affinity"]
    assert reason(m, "capability_match") == (
        "Backend implements KeyValueBasicInterface, TransactionalInterface and declares get, set, delete, "
        "transaction required by slot `storage`")
    assert reason(m, "performance").startswith("Backend provides 50k write RPS (required: 10k)")
    assert "200k read RPS (required: 50k)" in reason(m, "performance")
    assert reason(m, "region_affinity") == "Backend in same region (us-east-1) as requester"
    # The seed registrations declare no price and no uptime: those parts scored 0, and say why.
    assert reason(m, "cost") == "Backend declares no cost_per_1k_writes: cost scored 0"
    assert reason(m, "availability") == "Backend reports no uptime: availability scored 0"
    assert m.score == 0.4 * 2.0 + 0.1 * 1.0
    assert m.as_dict(reasons=True)["reasons"][4] == {
        "type": "region_affinity", "explanation": "Backend in same region (us-east-1) as requester"}


def test_reasons_for_declared_data_and_other_regions():
    docs = [{"backend_id": "pg-eu", "backend_type": "postgres", "capabilities": ["get"],
             "capacity": {"max_write_rps": 100000, "max_read_rps": 100000}, "current": {"write_rps": 0},
             "cost": {"cost_per_1k_writes": 0.25}, "health": {"status": "healthy", "uptime_percent_24h": 99.5},
             "regions": ["eu-west-1"], "compliance": ["pci", "gdpr"], "consistency": "strong"}]
    registry = load_registry(docs)
    [m] = registry.match({"slot_name": "db", "preferred_region": "us-east-1", "consistency": "session",
                          "compliance": ["pci"], "performance": {"min_write_rps": 10000}})
    assert reason(m, "performance").startswith("Backend provides 100k write RPS (required: 10k)")
    assert reason(m, "cost") == "Backend costs $0.25 per 1k writes; cost 0.800"
    assert reason(m, "availability") == "Backend uptime 99.5% over 24h"
    assert reason(m, "region_affinity") == "Backend not in preferred region us-east-1 (eu-west-1)"
    assert reason(m, "consistency") == "Backend offers strong consistency (required: at least session)"
    assert reason(m, "compliance") == "Backend holds pci (has: gdpr, pci)"
    [bare] = load_registry([{"backend_id": "b", "backend_type": "s3"}]).match({"slot_name": "blob"})
    assert reason(bare, "region_affinity") == "No preferred region given: region scored 0"
    # No capacity declared: the slot sets no minimum, so SPEC §4 gives perf the cap; the text agrees.
    assert bare.performance == 2.0
    assert reason(bare, "performance") == ("Backend declares no capacity and slot `blob` sets no rps minimum; "
                                           "performance 2.00")


# --- explain --------------------------------------------------------------------------------

def test_explain_counts_each_rule(seed):
    diagnosis = seed.explain(STORAGE_SLOT)
    assert (diagnosis.eligible, diagnosis.total) == (1, 3)
    assert diagnosis.rejected == {"missing_interface": 2, "missing_capability": 2}
    assert str(diagnosis) == ("1/3 backends eligible: 2 missing_interface(KeyValueBasicInterface, "
                              "TransactionalInterface), 2 missing_capability(get, set, delete, transaction)")


def test_explain_reads_like_the_scheduler_message():
    def backend(i: int, **extra) -> dict:
        doc = {"backend_id": f"b{i:02d}", "backend_type": "postgres", "interfaces": ["TransactionalInterface"],
               "capacity": {"max_write_rps": 50000}, "health": {"status": "healthy"}}
        doc.update(extra)
        return doc

    docs = [backend(i, interfaces=["KeyValueBasicInterface"]) for i in range(5)]
    docs += [backend(i, capacity={"max_write_rps": 500}) for i in range(5, 8)]
    docs += [backend(i, health={"status": "unhealthy"}) for i in range(8, 10)]
    registry = load_registry(docs)
    slot = {"slot_name": "wal", "interfaces": ["TransactionalInterface"], "performance": {"min_write_rps": 10000}}
    assert registry.match(slot) == []
    diagnosis = registry.explain(slot)
    assert str(diagnosis) == ("0/10 backends eligible: 5 missing_interface(TransactionalInterface), "
                              "3 insufficient_write_capacity(need 10000 rps), 2 health_status(unhealthy)")
    assert diagnosis.rejected == reference.explain_counts(list(registry), validate_slot(slot))


def test_explain_suggests_the_name_meant(seed):
    slot = {"slot_name": "kv", "interfaces": ["KeyValueBasicInterfce"]}
    assert seed.match(slot) == []
    diagnosis = seed.explain(slot)
    assert diagnosis.rejected == {"missing_interface": 3}
    assert str(diagnosis) == ("0/3 backends eligible: 3 missing_interface(KeyValueBasicInterfce). no backend "
                              "declares interface `KeyValueBasicInterfce`; did you mean `KeyValueBasicInterface`?")
    caps = seed.explain({"slot_name": "kv", "capabilities": ["gett"]})
    assert caps.hints == ["no backend declares capability `gett`; did you mean `get`?"]
    region = seed.explain({"slot_name": "kv", "regions": ["us-east1"]})
    assert region.rejected == {"region": 3}
    assert "did you mean `us-east-1`?" in str(region)


# --- patterns' slots --------------------------------------------------------------------------

def test_the_multicast_registry_slots(seed):
    registry_slot = {"slot_name": "registry", "interfaces": ["KeyValueBasicInterface", "WatchInterface"]}
    messaging_slot = {"slot_name": "messaging", "interfaces": ["PubSubInterface"]}
    # Kafka and Redis both implement PubSubInterface; equal scores (0.8) order by backend_id.
    messaging = seed.match(messaging_slot, k=3)
    assert ids(messaging) == ["kafka-prod-us-east-1", "redis-cache-us-east-1"]
    assert messaging[0].score == messaging[1].score == 0.4 * 2.0
    # None of the three examples implements WatchInterface.
    assert seed.match(registry_slot) == []
    assert str(seed.explain(registry_slot)).startswith(
        "0/3 backends eligible: 3 missing_interface(KeyValueBasicInterface, WatchInterface). "
        "no backend declares interface `WatchInterface`")
    with pytest.raises(RegistryError, match=r"No backend can be bound: 0/3 backends eligible.*"
                                            r"at pattern `multicast-registry` slot `registry`"):
        seed.bind_pattern(MULTICAST_REGISTRY)
    # The pattern section's postgres-primary implements WatchInterface too.
    watched = dict(POSTGRES, interfaces=POSTGRES["interfaces"] + ["WatchInterface"])
    registry = load_registry([KAFKA, watched, REDIS])
    binding = registry.bind_pattern(MULTICAST_REGISTRY)
    assert binding.backend_ids() == {"registry": "postgres-primary", "messaging": "kafka-prod-us-east-1"}
    optional = copy.deepcopy(MULTICAST_REGISTRY)
    optional["slots"]["registry"]["optional"] = True
    assert seed.bind_pattern(optional).backend_ids() == {"registry": None, "messaging": "kafka-prod-us-east-1"}


# --- query ----------------------------------------------------------------------------------

def test_query_by_capabilities_with_the_query_wrapper(seed):
    # The seed examples declare no health, so `health_statuses: [healthy]` rejects all three.
    result = seed.query(QUERY_BY_CAPABILITIES)
    assert (result.backends, result.total_count) == ([], 0)
    assert seed.explain(QUERY_BY_CAPABILITIES).rejected["health_status"] == 3
    seed.update("postgres-primary", status="healthy")
    result = seed.query(QUERY_BY_CAPABILITIES)
    assert ids(result.backends) == ["postgres-primary"] and result.total_count == 1

    secondary = dict(POSTGRES, backend_id="postgres-secondary", regions=["us-west-2"],
                     capacity={"max_write_rps": 20000, "max_read_rps": 80000, "max_storage": "2TB"},
                     current={"write_rps": 15000}, health={"status": "healthy", "uptime_percent_24h": 99.0})
    primary = dict(POSTGRES, health={"status": "healthy", "uptime_percent_24h": 99.9})
    registry = load_registry([KAFKA, primary, secondary, REDIS])
    result = registry.query(QUERY_BY_CAPABILITIES)
    assert ids(result.backends) == ["postgres-primary", "postgres-secondary"]
    assert result.total_count == 2
    assert result.backends[0].score > result.backends[1].score
    assert result.as_dict(reasons=False)["total_count"] == 2
    expected = reference.match(list(registry), validate_slot(QUERY_BY_CAPABILITIES), 10)
    assert [(m.backend_id, m.score) for m in result.backends] == expected


def test_query_by_type(seed):
    nats = {"backend_id": "nats-prod-us-east-1", "backend_type": "nats", "capabilities": ["publish", "subscribe"],
            "capacity": {"max_write_rps": 2000000, "max_read_rps": 2000000}, "regions": ["us-east-1"]}
    assert ids(seed.query(QUERY_BY_TYPE).backends) == ["kafka-prod-us-east-1"]
    registry = load_registry(SEED_BACKENDS + [nats])
    result = registry.query(QUERY_BY_TYPE)
    assert ids(result.backends) == ["kafka-prod-us-east-1", "nats-prod-us-east-1"]  # as the seed's response
    assert result.total_count == 2
    # The bare query (no wrapper) is the same request.
    assert ids(registry.query(QUERY_BY_TYPE["query"]).backends) == ids(result.backends)


# --- k, prepared slots ----------------------------------------------------------------------

@pytest.mark.parametrize("k, shown", [(0, "0"), (-1, "-1"), (True, "True"), (1.0, "1.0"), ("3", "'3'"),
                                      (None, "None")])
def test_k_below_one_or_not_an_int_is_an_error(seed, k, shown):
    with pytest.raises(RegistryError, match=rf"^Expected `k` >= 1, got `{shown}` - at match$"):
        seed.match(STORAGE_SLOT, k=k)


def test_a_huge_k_lists_every_eligible_backend(seed):
    slot = {"slot_name": "any"}
    assert ids(seed.match(slot, k=2**62)) == ids(seed.match(slot, k=3))
    assert ids(seed.match(slot, k=10**30)) == ids(seed.match(slot, k=3))


def test_a_prepared_slot_is_reused_and_tied_to_its_registry(seed):
    prepared = seed.prepare(STORAGE_SLOT)
    assert isinstance(prepared, PreparedSlot)
    assert prepared.slot_name == "storage" and prepared.optional is False
    assert seed.prepare(prepared) is prepared
    first = seed.match(prepared, k=2)
    assert [(m.backend_id, m.score) for m in seed.match(prepared, k=2)] == [(m.backend_id, m.score) for m in first]
    assert [(m.backend_id, m.score) for m in seed.match(STORAGE_SLOT, k=2)] == [
        (m.backend_id, m.score) for m in first]
    assert seed.explain(prepared).eligible == 1
    # A validated SlotRequirement is accepted as well.
    assert ids(seed.match(validate_slot(STORAGE_SLOT), k=2)) == ids(first)
    other = load_registry(copy.deepcopy(SEED_BACKENDS))
    message = r"^This slot was prepared for another registry; prepare it again - at slot$"
    for call in (lambda: other.match(prepared), lambda: other.explain(prepared), lambda: other.query(prepared),
                 lambda: other.prepare(prepared)):
        with pytest.raises(RegistryError, match=message):
            call()


def test_a_bad_slot_names_the_slot_and_field(seed):
    with pytest.raises(RegistryError, match=r"slot `storage`.*\$\.performance\.min_write_rps"):
        seed.match({"slot_name": "storage", "performance": {"min_write_rps": -5}})
    with pytest.raises(RegistryError, match=r"Expected a slot mapping or a prepared slot, got `str`"):
        seed.match("storage")


# --- live updates -----------------------------------------------------------------------------

def test_an_update_is_visible_to_the_next_match():
    docs = [{"backend_id": b, "backend_type": "redis", "capabilities": ["get"],
             "capacity": {"max_write_rps": 100000, "max_read_rps": 100000}} for b in ("a", "b")]
    registry = load_registry(docs)
    slot = {"slot_name": "cache", "performance": {"min_write_rps": 50000}}
    assert ids(registry.match(slot, k=2)) == ["a", "b"]
    registry.update("a", write_rps=75000)  # a has 25k left: perf 0.5
    matches = registry.match(slot, k=2)
    assert ids(matches) == ["b", "a"]
    assert matches[1].performance == 0.5 and matches[1].available_write_rps == 25000
    registry.update("b", status="unhealthy")
    assert ids(registry.match(slot, k=2)) == ["a"]
    registry.update("b", status="healthy", uptime=100)
    assert registry.match(slot, k=2)[0].availability == 1.0
    registry.update("a", write_rps=0, read_rps=0, storage_used=0, namespace_count=0, status="degraded", uptime=0)
    assert [(m.backend_id, m.score) for m in registry.match(slot, k=2)] == reference.match(
        list(registry), validate_slot(slot), 2,
        live={"a": {"write_rps": 0, "status": "degraded", "uptime": 0}, "b": {"status": "healthy", "uptime": 100}})


def _live_columns(registry: Registry) -> list:
    c = registry.columns
    return [a.copy() for a in (c.write_rps, c.read_rps, c.storage_used, c.namespace_count, c.health,
                               c.uptime_percent_24h, c.avail_score)]


@pytest.mark.parametrize("changes, message", [
    ({"write_rps": -1}, r"^Expected a finite number >= 0, got `-1` - at update write_rps$"),
    ({"read_rps": math.nan}, r"^Expected a finite number >= 0, got `nan` - at update read_rps$"),
    ({"storage_used": math.inf}, r"^Expected a finite number >= 0, got `inf` - at update storage_used$"),
    ({"namespace_count": True}, r"^Expected a number, got `bool` - at update namespace_count$"),
    ({"write_rps": "5"}, r"^Expected a number, got `str` - at update write_rps$"),
    ({"uptime": 100.5}, r"^Expected a percentage in \[0, 100\], got `100.5` - at update uptime$"),
    ({"uptime": -0.5}, r"^Expected a finite number >= 0, got `-0.5` - at update uptime$"),
    ({"status": "sick"}, r"^Expected one of `healthy`, `degraded`, `unhealthy`, `maintenance`, `unknown`, "
                         r"got `sick` - at update status$"),
    ({"status": ["healthy"]}, r"Expected one of .* - at update status$"),
    ({"write_rps": 10**400}, r"got a number too large for a float - at update write_rps$"),
])
def test_a_bad_update_is_refused_and_writes_nothing(seed, changes, message):
    before = _live_columns(seed)
    # The good arguments beside the bad one are not written either.
    good = {"write_rps": 7, "read_rps": 7, "storage_used": 7, "namespace_count": 7, "status": "healthy",
            "uptime": 50}
    with pytest.raises(RegistryError, match=message):
        seed.update("postgres-primary", **{**good, **changes})
    for old, new in zip(before, _live_columns(seed)):
        np.testing.assert_array_equal(old, new)  # NaN (no uptime) equals NaN here
    assert ids(seed.match(STORAGE_SLOT)) == ["postgres-primary"]


@pytest.mark.parametrize("backend_id, message", [
    ("nope", r"^Unknown backend `nope` - at update$"),
    ("", r"^Unknown backend `` - at update$"),
    (123, r"Expected a backend_id .*got `int`|Unknown backend `123`"),
    (None, r"Expected a backend_id .*got `NoneType`|Unknown backend `None`"),
])
def test_an_update_of_an_unknown_backend_is_refused(seed, backend_id, message):
    before = _live_columns(seed)
    with pytest.raises(RegistryError, match=message):
        seed.update(backend_id, write_rps=1)
    for old, new in zip(before, _live_columns(seed)):
        np.testing.assert_array_equal(old, new)


# --- reasons are built only when read ----------------------------------------------------------

def test_reasons_are_built_only_when_read(seed, monkeypatch):
    built = []
    original = reasons_module.build_reasons

    def counting(registration, columns, match):
        built.append(match.backend_id)
        return original(registration, columns, match)

    monkeypatch.setattr(registry_module, "build_reasons", counting)
    seed = load_registry(copy.deepcopy(SEED_BACKENDS))  # binds the patched builder
    matches = seed.match({"slot_name": "any"}, k=3)
    seed.query(QUERY_BY_TYPE)
    seed.bind_pattern({"pattern": "p", "slots": {"m": {"required_interfaces": ["PubSubInterface"]}}})
    assert [m.as_dict() for m in matches] and repr(matches[0]) and matches[0].components
    assert built == []
    first = matches[0].reasons
    assert built == [matches[0].backend_id]
    assert matches[0].reasons is first  # built once, then kept
    matches[0].as_dict(reasons=True)
    assert built == [matches[0].backend_id]
    matches[1].as_dict(reasons=True)
    assert built == [matches[0].backend_id, matches[1].backend_id]


# --- threads ----------------------------------------------------------------------------------

def test_matching_while_another_thread_updates():
    """Each answer is valid for some state: every backend's score is its
    reference score before or after the updates it may have seen, and the
    answer is ordered."""
    docs = [{"backend_id": f"b{i:02d}", "backend_type": "redis", "capabilities": ["get"],
             "capacity": {"max_write_rps": 10000 + 1000 * i, "max_read_rps": 50000},
             "cost": {"cost_per_1k_writes": 0.1 * (i % 4)}, "health": {"status": "healthy",
                                                                       "uptime_percent_24h": 90 + i % 10},
             "regions": ["us-east-1"] if i % 2 else ["eu-west-1"]} for i in range(40)]
    registry = load_registry(docs)
    slot = {"slot_name": "s", "capabilities": ["get"], "preferred_region": "us-east-1",
            "performance": {"min_write_rps": 4000}}
    hot = ["b03", "b17", "b30"]
    state_a = {"write_rps": 0, "uptime": 99.0, "status": "healthy"}
    state_b = {"write_rps": 9000, "uptime": 40.0, "status": "degraded"}
    requirement = validate_slot(slot)
    regs = {r.backend_id: r for r in registry}
    allowed = {bid: {reference.score(regs[bid], requirement, live=state)["score"] for state in (state_a, state_b)}
               if bid in hot else {reference.score(regs[bid], requirement)["score"]} for bid in regs}
    problems: list[str] = []
    stop = threading.Event()
    for bid in hot:  # the hot backends start in one of the two states the answers may show
        registry.update(bid, **state_a)

    def updater() -> None:
        n = 0
        while not stop.is_set() and n < 20000:
            for bid in hot:
                registry.update(bid, **(state_a if n % 2 else state_b))
            n += 1

    def matcher() -> None:
        prepared = registry.prepare(slot)
        for j in range(1500):
            matches = registry.match(slot if j % 2 else prepared, k=len(docs))
            if len(matches) != len(docs):
                problems.append(f"{len(matches)} matches")
            for m in matches:
                if m.score not in allowed[m.backend_id]:
                    problems.append(f"{m.backend_id}: {m.score}")
            keys = [(-m.score, m.backend_id.encode()) for m in matches]
            if keys != sorted(keys):
                problems.append("out of order")

    threads = [threading.Thread(target=matcher) for _ in range(4)]
    update_thread = threading.Thread(target=updater)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so matches and updates interleave
    try:
        update_thread.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        update_thread.join()
        sys.setswitchinterval(interval)
    assert problems == []
    # And the final state is exactly what the last update wrote.
    final = registry.match(slot, k=len(docs))
    assert all(m.score in allowed[m.backend_id] for m in final)


def test_a_prepared_slot_follows_a_change_of_default_health_statuses():
    registry = load_registry([{"backend_id": "a", "backend_type": "redis"}])  # no health block: unknown
    prepared = registry.prepare({"slot_name": "s"})
    assert [m.backend_id for m in registry.match(prepared)] == ["a"]
    registry.policy = MatchPolicy(health_statuses=["healthy"])
    assert registry.match(prepared) == [] and registry.explain(prepared).rejected == {"health_status": 1}
    assert registry.match(prepared) == []  # prepared again once, then reused
    registry.policy = MatchPolicy()
    assert [m.backend_id for m in registry.match(prepared)] == ["a"]
    # A slot that names its statuses keeps them whatever the policy says.
    own = registry.prepare({"slot_name": "s", "health_statuses": ["unknown"]})
    registry.policy = MatchPolicy(health_statuses=["healthy"])
    assert [m.backend_id for m in registry.match(own)] == ["a"]
