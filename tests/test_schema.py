"""The msgspec schema (SPEC §1): both readings of the seed's ambiguous
layout (G1–G4), the consistency extension, enumerations, number bounds,
redaction in ``repr``, and the decode/encode hooks."""

from __future__ import annotations

import typing

import msgspec
import pytest

from prism_match import load_registry
from prism_match.loading import validate_documents
from prism_match.redact import MASK, is_secret_field, is_secret_reference, redacted
from prism_match.schema import (AUTH_TYPES, BACKEND_TYPES, CONSISTENCY_LEVELS, COST_MODELS, ENUM_CHOICES,
                                HEALTH_STATUSES, SEVERITIES, BackendType, Capacity, Connection, Consistency,
                                CostModel, Duration, DurationMs, HealthStatus, MinCapacity, Pattern, Query,
                                Registration, Retry, Severity, Size, SlotRequirement, decode_hook, encode_hook)

BASE = {"backend_id": "b", "backend_type": "redis"}


def one(raw: dict, **options) -> Registration:
    return load_registry([raw], **options)["b"]


# --- G1–G4: both readings ----------------------------------------------------------------

def test_g1_connection_blocks_nested_or_top_level():
    blocks = {"tls": {"enabled": True}, "pool": {"min_connections": 2, "max_connections": 4},
              "timeouts": {"connect_timeout": "1s"}, "retry": {"initial_backoff": "10ms", "max_backoff": "1s"}}
    nested = one({**BASE, "connection": {"endpoint": "e:1", **blocks}})
    top = one({**BASE, "connection": {"endpoint": "e:1"}, **blocks})
    assert nested.connection.pool == top.pool
    assert nested.pool_config == top.pool_config == nested.connection.pool
    assert nested.retry_config == top.retry_config
    assert top.timeouts.connect_timeout == nested.connection.timeouts.connect_timeout == 1.0


def test_g2_batch_fields_inside_or_beside_performance():
    inside = one({**BASE, "capabilities": [{"name": "set", "performance": {"supports_batch": True,
                                                                        "max_batch_size": 100}}]})
    beside = one({**BASE, "capabilities": [{"name": "set", "supports_batch": True, "max_batch_size": 100,
                                            "max_concurrent_operations": 5}]})
    assert inside.capabilities[0].performance.max_batch_size == 100
    assert beside.capabilities[0].max_batch_size == 100
    assert beside.capabilities[0].max_concurrent_operations == 5


def test_g3_transactional_on_interface_or_operation():
    reg = one({**BASE, "interfaces": [
        {"name": "TransactionalInterface", "transactional": True},
        {"name": "KeyValueBasicInterface", "operations": [{"name": "Get", "transactional": False}]}]})
    first, second = reg.interface_list()
    assert first.transactional is True
    assert second.operations[0].transactional is False


def test_g4_transfer_costs_and_incidents_nested_or_top_level():
    incident = {"started_at": "2025-11-15T14:22:00Z", "severity": "critical"}
    nested = one({**BASE, "cost": {"transfer_costs": {"cost_per_gb_internet": 0.09}},
                  "health": {"status": "degraded", "recent_incidents": [incident]}})
    top = one({**BASE, "transfer_costs": {"cost_per_gb_internet": 0.09}, "recent_incidents": [incident]})
    assert nested.transfer == top.transfer
    assert nested.transfer.cost_per_gb_internet == 0.09
    assert nested.health.recent_incidents == top.recent_incidents


def test_nested_reading_wins_over_top_level_when_both_are_given():
    reg = one({**BASE, "connection": {"pool": {"min_connections": 1}}, "pool": {"min_connections": 9},
               "cost": {"transfer_costs": {"cost_per_gb_internet": 1.0}},
               "transfer_costs": {"cost_per_gb_internet": 2.0}})
    assert reg.pool_config.min_connections == 1
    assert reg.transfer.cost_per_gb_internet == 1.0


# --- enumerations ----------------------------------------------------------------------------

@pytest.mark.parametrize(("alias", "values"), [
    (BackendType, BACKEND_TYPES), (HealthStatus, HEALTH_STATUSES), (Consistency, CONSISTENCY_LEVELS),
    (CostModel, COST_MODELS), (Severity, SEVERITIES),
])
def test_literal_types_match_their_tuples(alias, values):
    assert typing.get_args(alias) == values


def test_backend_types_are_the_nine_of_the_spec():
    assert BACKEND_TYPES == ("kafka", "nats", "postgres", "redis", "sqlite", "neptune", "sqs", "s3", "memstore")


def test_consistency_levels_strongest_first():
    assert CONSISTENCY_LEVELS == ("strong", "bounded_staleness", "session", "eventual")
    for level in CONSISTENCY_LEVELS:
        assert one({**BASE, "consistency": level}).consistency == level
    assert one(BASE).consistency is None


def test_enum_choices_cover_every_enumerated_field():
    assert ENUM_CHOICES["backend_type"] == BACKEND_TYPES
    assert ENUM_CHOICES["consistency"] == CONSISTENCY_LEVELS
    assert ENUM_CHOICES["type"] == AUTH_TYPES
    assert ENUM_CHOICES["severity"] == SEVERITIES


def test_every_auth_type_is_accepted():
    for kind in AUTH_TYPES:
        reg = one({**BASE, "connection": {"auth": {"type": kind}}})
        assert reg.connection.auth.__struct_config__.tag == kind


# --- numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -1, -1e-300, 10**400, True, "5"])
def test_non_negative_numbers_reject(bad):
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_write_rps": bad}, Capacity, dec_hook=decode_hook)


@pytest.mark.parametrize("good", [0, 0.0, 1, 1e300, 2**62])
def test_non_negative_numbers_accept(good):
    assert msgspec.convert({"max_write_rps": good}, Capacity, dec_hook=decode_hook).max_write_rps == good


def test_integers_become_floats_and_stay_exact():
    cap = msgspec.convert({"max_write_rps": 1_000_000, "max_storage": 10**13}, Capacity, dec_hook=decode_hook)
    assert type(cap.max_write_rps) is float and cap.max_write_rps == 1e6
    assert cap.max_storage == 1e13


def test_uptime_bounds_are_inclusive():
    assert one({**BASE, "health": {"uptime_percent_24h": 0}}).health.uptime_percent_24h == 0
    assert one({**BASE, "health": {"uptime_percent_24h": 100}}).health.uptime_percent_24h == 100


def test_backoff_multiplier_of_one_is_fine():
    assert msgspec.convert({"backoff_multiplier": 1}, Retry, dec_hook=decode_hook).backoff_multiplier == 1.0


def test_current_above_capacity_is_allowed():
    reg = one({**BASE, "capacity": {"max_write_rps": 10}, "current": {"write_rps": 50}})
    assert reg.current.write_rps > reg.capacity.max_write_rps


# --- hooks ---------------------------------------------------------------------------------

def test_decode_hook_parses_markers_and_memoises():
    assert decode_hook(Size, "2.5TB") == 2.5e12 and isinstance(decode_hook(Size, "2.5TB"), Size)
    assert decode_hook(Duration, "100ms") == 0.1
    assert decode_hook(DurationMs, "100ms") == 100.0
    assert decode_hook(Size, "1KiB") is decode_hook(Size, "1KiB")
    assert decode_hook(Size, 5) == 5.0


def test_decode_hook_refuses_other_types():
    with pytest.raises(NotImplementedError):
        decode_hook(complex, "1")
    with pytest.raises(NotImplementedError):
        decode_hook(complex, 1)


def test_duration_and_size_are_not_confused_in_the_memo():
    assert decode_hook(Duration, "1s") == 1.0
    assert decode_hook(DurationMs, "1s") == 1000.0


def test_encode_hook_round_trips_a_registration():
    raw = {**BASE, "connection": {"pool": {"max_idle_time": "1m30s"}, "retry": {"initial_backoff": "100ms"}},
           "capacity": {"max_storage": "512MiB", "max_write_rps": 5}}
    reg = one(raw)
    again = msgspec.json.decode(msgspec.json.encode(reg, enc_hook=encode_hook), type=Registration,
                                dec_hook=decode_hook)
    assert again == reg
    assert again.connection.pool.max_idle_time == 90.0


# --- slots, queries, patterns --------------------------------------------------------------------

def test_query_maps_onto_a_slot():
    query = msgspec.convert({"required_capabilities": ["get"], "required_interfaces": ["KV@v2"],
                             "min_capacity": {"min_write_rps": 5, "min_storage": "1TB"},
                             "regions": ["r"], "health_statuses": ["healthy"], "backend_types": ["s3"]},
                            Query, dec_hook=decode_hook)
    slot = query.to_slot()
    assert slot == SlotRequirement(slot_name="query", capabilities=["get"], interfaces=["KV@v2"],
                                   performance=slot.performance, min_storage=1e12, regions=["r"],
                                   health_statuses=["healthy"], backend_types=["s3"])
    assert slot.performance.min_write_rps == 5 and slot.performance.min_read_rps == 0
    assert Query().to_slot().performance.min_write_rps == 0 and MinCapacity().min_storage is None


def test_pattern_slot_accepts_both_spellings():
    [(_, pattern)] = validate_documents([("p", "$", {"pattern": "p", "slots": {
        "a": {"required_interfaces": ["A"], "interfaces": ["B"], "optional": True}}})], Pattern)
    slot = pattern.slots["a"].to_slot("a")
    assert slot.interfaces == ["A", "B"] and slot.optional and slot.slot_name == "a"


# --- redaction ----------------------------------------------------------------------------------

def test_repr_and_str_redact_inline_secrets():
    reg = one({**BASE, "connection": {"auth": {"type": "username_password", "username": "svc",
                                               "password": "hunter2"}},
               "metadata": {"Secret": "s3cr3t", "nested": [{"key": "k3y"}], "owner": "team"}},
              allow_inline_secrets=True)
    for text in (repr(reg), str(reg), repr(reg.connection), repr(reg.connection.auth), repr([reg])):
        assert "hunter2" not in text and "s3cr3t" not in text and "k3y" not in text
    assert MASK in repr(reg) and "svc" in repr(reg) and "team" in repr(reg)
    # The values themselves are still there for whoever reads them.
    assert reg.connection.auth.password == "hunter2"


def test_repr_keeps_references():
    reg = one({**BASE, "connection": {"auth": {"type": "token", "token": "${SECRET:a/b}"}}})
    assert "${SECRET:a/b}" in repr(reg)


@pytest.mark.parametrize(("name", "secret"), [("password", True), ("Password", True), ("TOKEN", True),
                                              ("key", True), ("secret", True), ("key_path", False),
                                              ("keys", False), ("owner", False), (3, False)])
def test_secret_field_names(name, secret):
    assert is_secret_field(name) is secret


@pytest.mark.parametrize(("value", "reference"), [("${SECRET:prism/x}", True), ("${SECRET:}", False),
                                                  ("${SECRET:a b}", False), ("x${SECRET:a}", False),
                                                  (None, False), (5, False)])
def test_secret_references(value, reference):
    assert is_secret_reference(value) is reference


def test_redacted_walks_nested_values():
    assert redacted("x", {"a": [{"password": "p"}], "token": "${SECRET:t}"}) == {
        "a": [{"password": MASK}], "token": "${SECRET:t}"}


def test_structs_are_frozen_and_keyword_only():
    reg = one(BASE)
    with pytest.raises(AttributeError):
        reg.backend_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Connection("endpoint")  # type: ignore[misc]
