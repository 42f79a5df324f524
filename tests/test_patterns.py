"""Patterns: ``Registry.bind_pattern`` binds each named slot of the seed's
``pattern: multicast-registry``; ``Registry.check_binding`` says what each
explicitly bound backend lacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prism_match import BindingProblem, Diagnosis, PatternBinding, RegistryError, load_registry

SEED = Path(__file__).parent / "data" / "seed"  # copies of the seed page's YAML


def seed_doc(name: str) -> dict:
    return yaml.safe_load((SEED / f"{name}.yaml").read_text())


@pytest.fixture(scope="module")
def pattern() -> dict:
    """The seed's pattern declaration (first document of interface-compatibility.yaml)."""
    return next(yaml.safe_load_all((SEED / "interface-compatibility.yaml").read_text()))


SEED_BACKENDS = ("kafka-prod-full", "postgres-primary", "redis-cache")
# The seed's interface-compatibility page binds the registry slot to a
# postgres with KeyValueBasicInterface + WatchInterface; its example
# postgres-primary does not list WatchInterface, so that backend is added here.
PG_WATCH = {"backend_id": "pg-watch", "backend_type": "postgres", "capabilities": ["get", "set", "watch"],
            "interfaces": ["KeyValueBasicInterface", "WatchInterface"],
            "capacity": {"max_write_rps": 50000, "max_read_rps": 200000},
            "health": {"status": "healthy", "uptime_percent_24h": 99.9}}


@pytest.fixture(scope="module")
def seed_registry():
    return load_registry([seed_doc(n) for n in SEED_BACKENDS])


@pytest.fixture(scope="module")
def registry():
    return load_registry([seed_doc(n) for n in SEED_BACKENDS] + [PG_WATCH])


def test_the_seed_pattern_binds_each_slot_to_its_best_backend(registry, pattern):
    bound = registry.bind_pattern(pattern)
    assert isinstance(bound, PatternBinding)
    assert bound.pattern == "multicast-registry"
    assert bound.backend_ids() == {"registry": "pg-watch", "messaging": "kafka-prod-us-east-1"}
    assert bound.diagnoses == {}
    # Each binding is the slot's own best match (slots choose independently).
    messaging = registry.match({"slot_name": "messaging", "interfaces": ["PubSubInterface"]}, 2)
    assert [m.backend_id for m in messaging] == ["kafka-prod-us-east-1", "redis-cache-us-east-1"]
    assert bound.bindings["messaging"].score == messaging[0].score
    assert [r.type for r in bound.bindings["registry"].reasons][0] == "capability_match"


def test_slots_in_the_slot_requirement_spelling_bind_too(registry):
    bound = registry.bind_pattern({"pattern": "p", "slots": {
        "store": {"interfaces": ["KeyValueBasicInterface"], "capabilities": ["transaction"]},
        "queue": {"required_interfaces": ["PubSubInterface"], "performance": {"min_write_rps": 600000}}}})
    assert bound.backend_ids() == {"store": "postgres-primary", "queue": "kafka-prod-us-east-1"}


def test_an_optional_slot_nothing_fits_stays_unbound_with_its_diagnosis(registry, pattern):
    with_cache = {"pattern": "multicast-registry", "slots": {
        **pattern["slots"],
        "cache": {"required_interfaces": ["TTLInterface"], "optional": True,
                  "performance": {"min_write_rps": 10_000_000}}}}
    bound = registry.bind_pattern(with_cache)
    assert bound.backend_ids() == {"registry": "pg-watch", "messaging": "kafka-prod-us-east-1", "cache": None}
    assert bound.bindings["cache"] is None
    diagnosis = bound.diagnoses["cache"]
    assert isinstance(diagnosis, Diagnosis)
    assert (diagnosis.eligible, diagnosis.total) == (0, 4)
    assert diagnosis.rejected == {"missing_interface": 3, "insufficient_write_capacity": 4}
    assert str(diagnosis) == ("0/4 backends eligible: 4 insufficient_write_capacity(need 10000000 rps), "
                              "3 missing_interface(TTLInterface)")


def test_a_required_slot_nothing_fits_is_an_error_carrying_the_diagnosis(seed_registry, pattern):
    # The seed's own example backends: none implements WatchInterface.
    with pytest.raises(RegistryError) as info:
        seed_registry.bind_pattern(pattern)
    [(location, message)] = info.value.errors
    assert location == "pattern `multicast-registry` slot `registry`"
    assert message.startswith("No backend can be bound: 0/3 backends eligible: 3 missing_interface("
                              "KeyValueBasicInterface, WatchInterface). no backend declares interface "
                              "`WatchInterface`")
    explained = seed_registry.explain({"slot_name": "registry",
                                       "interfaces": ["KeyValueBasicInterface", "WatchInterface"]})
    assert message == f"No backend can be bound: {explained}"


def test_every_required_slot_that_fails_is_reported(registry):
    with pytest.raises(RegistryError, match=r"^2 problems:\n  No backend can be bound: 0/4 backends eligible: "
                                            r"4 missing_interface\(GraphInterface\)\. .* - at pattern `p` slot `a`\n"
                                            r"  No backend can be bound: .* - at pattern `p` slot `c`$"):
        registry.bind_pattern({"pattern": "p", "slots": {
            "a": {"required_interfaces": ["GraphInterface"]},
            "b": {"required_interfaces": ["PubSubInterface"]},
            "c": {"required_interfaces": ["QueueInterface"]}}})


@pytest.mark.parametrize("bad, message", [
    ({"pattern": "p", "slots": {"x": {"required_interfacs": ["A"]}}},
     r"^Unknown field `required_interfacs`; did you mean `required_interfaces`\? - at pattern `p` \$\.slots\.x$"),
    ({"pattern": "p"}, r"^Missing required field `slots` - at pattern `p` \$$"),
    ({"slots": {}}, r"^Missing required field `pattern` - at pattern \$$"),
    ({"pattern": "p", "slots": {"x": {"optional": "yes"}}},
     r"^Expected `bool`, got `\"yes\"` - at pattern `p` \$\.slots\.x\.optional$"),
    ("multicast-registry", r"^Expected a pattern mapping, got `str` - at pattern$"),
])
def test_an_invalid_pattern_is_an_error_naming_the_field(registry, bad, message):
    with pytest.raises(RegistryError, match=message):
        registry.bind_pattern(bad)


def test_a_pattern_without_slots_binds_nothing(registry):
    assert registry.bind_pattern({"pattern": "empty", "slots": {}}).bindings == {}


# --- check_binding ------------------------------------------------------------------------

def test_a_valid_binding_has_no_problems(registry, pattern):
    assert registry.check_binding(pattern, {"registry": "pg-watch", "messaging": "kafka-prod-us-east-1"}) == {
        "registry": [], "messaging": []}


def test_each_bound_backend_is_told_what_it_lacks(registry, pattern):
    problems = registry.check_binding(pattern, {"registry": "redis-cache-us-east-1",
                                                "messaging": "postgres-primary"})
    # redis has KeyValueBasicInterface: only WatchInterface is missing for it.
    assert problems == {
        "registry": [BindingProblem("missing_interface", "WatchInterface")],
        "messaging": [BindingProblem("missing_interface", "PubSubInterface")],
    }


def test_binding_problems_name_every_failed_rule_with_what_was_required(registry):
    pattern = {"pattern": "p", "slots": {
        "fast": {"required_interfaces": ["PubSubInterface"], "performance": {"min_write_rps": 800000},
                 "regions": ["eu-west-1"], "compliance": ["pci"]},
        "typed": {"backend_types": ["postgres"], "consistency": "strong", "optional": True}}}
    problems = registry.check_binding(pattern, {"fast": "redis-cache-us-east-1", "typed": "kafka-prod-us-east-1"})
    assert problems == {
        "fast": [BindingProblem("insufficient_write_capacity", "need 800000 rps"),
                 BindingProblem("region", "need one of eu-west-1"),
                 BindingProblem("compliance", "need pci")],
        "typed": [BindingProblem("backend_type", "need postgres"),
                  BindingProblem("consistency", "need strong or stronger")],
    }


def test_a_binding_to_an_unhealthy_backend_says_its_status():
    registry = load_registry([dict(PG_WATCH, health={"status": "unhealthy"}),
                              dict(PG_WATCH, backend_id="pg-ok")])
    pattern = {"pattern": "p", "slots": {"registry": {"required_interfaces": ["WatchInterface"]}}}
    assert registry.check_binding(pattern, {"registry": "pg-watch"}) == {
        "registry": [BindingProblem("health_status", "unhealthy")]}
    # Live state counts: once updated, the binding is valid.
    registry.update("pg-watch", status="healthy")
    assert registry.check_binding(pattern, {"registry": "pg-watch"}) == {"registry": []}


def test_an_optional_slot_may_stay_unbound(registry, pattern):
    optional = {"pattern": "p", "slots": {**pattern["slots"], "cache": {"required_interfaces": ["TTLInterface"],
                                                                        "optional": True}}}
    assert registry.check_binding(optional, {"registry": "pg-watch", "messaging": "redis-cache-us-east-1"}) == {
        "registry": [], "messaging": []}


def test_binding_errors_are_reported_together(registry, pattern):
    with pytest.raises(RegistryError) as info:
        registry.check_binding(pattern, {"nope": "pg-watch", "messaging": "zzz"})
    assert info.value.errors == [
        ("binding `nope`", "Pattern `multicast-registry` has no slot `nope`"),
        ("binding `registry`", "Required slot is not bound"),
        ("binding `messaging`", "Unknown backend `zzz`"),
    ]


@pytest.mark.parametrize("binding, message", [
    ({"registry": ["pg-watch"], "messaging": "kafka-prod-us-east-1"},
     r"^Expected a backend_id, got `list` - at binding `registry`$"),
    ([("registry", "pg-watch")], r"^Expected a mapping of slot name to backend_id, got `list` - at binding$"),
    ({"messaging": "kafka-prod-us-east-1"}, r"^Required slot is not bound - at binding `registry`$"),
])
def test_a_malformed_binding_is_an_error(registry, pattern, binding, message):
    with pytest.raises(RegistryError, match=message):
        registry.check_binding(pattern, binding)
