"""Every YAML example of the seed page loads as what it is.

The files in ``tests/data/seed/`` are byte-for-byte copies of
``shared/seed/yaml/`` (CI cannot rely on paths outside the repository). The
four backend registrations load through ``load_registry`` with their values
parsed to numbers; the connection, capability, interface and incident
snippets validate as their sub-structures; the slot and query examples
coerce to slot requirements; the rest are not registrations and are refused
with a RegistryError.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest
import yaml

from prism_match import RegistryError, load_registry
from prism_match.loading import read_file_documents, validate_documents
from prism_match.engine import validate_slot
from prism_match.schema import (Capability, Connection, Incident, Interface, IamAuth, MtlsAuth, Pattern, Pool,
                                Retry, Timeouts, TokenAuth, UsernamePasswordAuth, encode_hook)

SEED = Path(__file__).parent / "data" / "seed"
REGISTRATIONS = ("kafka-prod-full.yaml", "kafka-prod-short.yaml", "postgres-primary.yaml", "redis-cache.yaml")


def snippet(name: str) -> object:
    [(_, doc)] = read_file_documents(SEED / name)
    return doc


def validated(raw: object, kind: type, where: str = "seed") -> object:
    [(_, value)] = validate_documents([(where, "$", raw)], kind)
    return value


def test_all_seed_files_are_copied():
    assert len(list(SEED.glob("*.yaml"))) == 23
    for name in REGISTRATIONS:
        assert (SEED / name).stat().st_size > 0


@pytest.mark.parametrize("name", REGISTRATIONS)
def test_every_registration_loads(name):
    registry = load_registry(SEED / name)
    assert len(registry) == 1


def test_seed_registrations_load_together_except_the_duplicate_kafka(tmp_path):
    # The full and the short Kafka examples register the same backend id.
    for name in REGISTRATIONS:
        (tmp_path / name).write_bytes((SEED / name).read_bytes())
    with pytest.raises(RegistryError) as info:
        load_registry(tmp_path)
    assert info.value.errors == [(f"{tmp_path}/kafka-prod-short.yaml:4:13 $.backend_id",
                                  f"Duplicate backend_id `kafka-prod-us-east-1`, first defined at "
                                  f"{tmp_path}/kafka-prod-full.yaml:9:13 $.backend_id")]
    registry = load_registry([*(snippet(n) for n in ("kafka-prod-full.yaml", "postgres-primary.yaml",
                                                     "redis-cache.yaml"))])
    assert registry.backend_ids == ["kafka-prod-us-east-1", "postgres-primary", "redis-cache-us-east-1"]


def test_full_kafka_values():
    reg = load_registry(SEED / "kafka-prod-full.yaml")["kafka-prod-us-east-1"]
    assert reg.backend_type == "kafka"
    assert reg.display_name == "Production Kafka (US East)"
    # Sizes: decimal units.
    assert reg.capacity.max_storage == 1e13
    assert reg.current.storage_used == 2.5e12
    assert reg.capacity.max_write_rps == 1_000_000
    assert reg.capacity.max_read_rps == 5_000_000
    assert reg.capacity.max_connections == 10_000
    assert reg.capacity.max_namespaces == 500
    assert reg.current.write_rps == 250_000
    assert reg.current.namespace_count == 125
    # G1: the connection blocks sit under `connection`.
    conn = reg.connection
    assert conn.endpoint == "kafka-prod.prism.local:9092"
    assert isinstance(conn.auth, MtlsAuth) and conn.auth.key_path == "/etc/prism/certs/kafka-prod-key.pem"
    assert conn.tls.enabled and conn.tls.verify_server and conn.tls.server_name == "kafka-prod.prism.local"
    assert (conn.pool.min_connections, conn.pool.max_connections) == (10, 100)
    assert conn.pool.max_idle_time == 300.0 and conn.pool.max_lifetime == 3600.0
    assert conn.timeouts.connect_timeout == 10.0 and conn.timeouts.idle_timeout == 60.0
    assert conn.retry.initial_backoff == 0.1 and conn.retry.max_backoff == 5.0
    assert conn.retry.backoff_multiplier == 2.0 and conn.retry.max_attempts == 3
    # Capabilities as objects, G2 batch fields inside `performance`.
    publish, subscribe, replay = reg.capability_list()
    assert (publish.name, publish.version) == ("publish", "v1")
    assert publish.p99_ms == 25.0
    assert publish.performance.latency.p50_ms == 5 and publish.performance.latency.p999_ms == 50
    assert publish.performance.supports_batch is True and publish.performance.max_batch_size == 1000
    assert subscribe.performance.max_concurrent_operations == 10_000
    assert replay.p99_ms is None
    assert replay.limitations == ["Replay limited to 7 days retention", "Requires consumer group reset"]
    pubsub, streaming = reg.interface_list()
    assert pubsub.proto_service == "prism.PubSub" and pubsub.transactional is False  # G3
    assert [op.name for op in pubsub.operations] == ["Publish", "Subscribe", "CreateTopic"]
    assert streaming.operations[1].idempotent is True
    # Cost with transfer costs (G4).
    assert reg.cost.cost_model == "pay_per_use"
    assert reg.cost.cost_per_1k_writes == 0.001 and reg.cost.cost_per_connection_hour == 0.01
    assert reg.transfer.cost_per_gb_internet == 0.09
    # Health with incidents (G4); YAML timestamps are datetimes.
    assert reg.health.status == "healthy" and reg.health.uptime_percent_24h == 99.95
    assert reg.health.last_check_at == dt.datetime(2025, 11, 16, 10, 30, tzinfo=dt.timezone.utc)
    [incident] = reg.health.recent_incidents
    assert incident.severity == "warning" and incident.impact.startswith("P99 latency")
    assert incident.resolved_at - incident.started_at == dt.timedelta(minutes=23)
    assert reg.regions == ["us-east-1", "us-west-2"]
    assert reg.compliance == ["pci", "soc2", "hipaa"]
    assert reg.metadata["owner_team"] == "platform-infrastructure"
    assert reg.consistency is None


def test_short_kafka_has_bare_names():
    reg = load_registry(SEED / "kafka-prod-short.yaml")["kafka-prod-us-east-1"]
    assert reg.capabilities == ["publish", "subscribe", "replay"]
    assert [(c.name, c.version) for c in reg.capability_list()] == [
        ("publish", "v1"), ("subscribe", "v1"), ("replay", "v1")]
    assert reg.interfaces == ["PubSubInterface", "StreamingInterface"]
    assert reg.capacity.max_storage == 1e13
    assert isinstance(reg.connection.auth, MtlsAuth) and reg.connection.auth.certificate_path is None
    assert reg.health is None and reg.health_status == "unknown"


def test_postgres_and_redis_values():
    pg = load_registry(SEED / "postgres-primary.yaml")["postgres-primary"]
    assert pg.capacity.max_storage == 5e12 and pg.capacity.max_write_rps == 50_000
    assert isinstance(pg.connection.auth, UsernamePasswordAuth) and pg.connection.auth.password is None
    assert pg.pool_config.min_connections == 20
    assert "transaction" in pg.capabilities and pg.compliance == ["pci", "soc2", "hipaa"]
    redis = load_registry(SEED / "redis-cache.yaml")["redis-cache-us-east-1"]
    assert redis.capacity.max_storage == 100e9
    assert isinstance(redis.connection.auth, TokenAuth) and redis.connection.auth.token is None
    assert redis.compliance == []


@pytest.mark.parametrize(("name", "kind"), [
    ("auth-mtls.yaml", MtlsAuth), ("auth-username-password.yaml", UsernamePasswordAuth),
    ("auth-token.yaml", TokenAuth), ("auth-iam.yaml", IamAuth),
])
def test_auth_snippets_validate_as_connection_auth(name, kind):
    conn = validated(snippet(name), Connection)
    assert isinstance(conn.auth, kind)


def test_auth_secrets_are_references():
    assert validated(snippet("auth-token.yaml"), Connection).auth.token == "${SECRET:prism/backend/redis-cache/token}"
    conn = validated(snippet("auth-username-password.yaml"), Connection)
    assert conn.auth.password == "${SECRET:prism/backend/kafka-prod/password}"
    # and a registration carrying them loads under the default (references only).
    registry = load_registry([{"backend_id": "b", "backend_type": "kafka", "connection": snippet(name)}
                              for name in ("auth-token.yaml",)])
    assert len(registry) == 1


def test_pool_timeouts_retry_snippets():
    pool = validated(snippet("connection-pool.yaml")["pool"], Pool)
    assert (pool.min_connections, pool.max_connections, pool.max_idle_time, pool.max_lifetime) == (10, 100, 300.0, 3600.0)
    timeouts = validated(snippet("timeouts.yaml")["timeouts"], Timeouts)
    assert (timeouts.connect_timeout, timeouts.read_timeout, timeouts.write_timeout, timeouts.idle_timeout) == (
        10.0, 30.0, 30.0, 60.0)
    retry = validated(snippet("retry-policy.yaml")["retry"], Retry)
    assert (retry.max_attempts, retry.initial_backoff, retry.max_backoff, retry.backoff_multiplier) == (3, 0.1, 5.0, 2.0)
    assert retry.retryable_errors == ["connection_timeout", "temporary_failure", "rate_limit_exceeded"]
    # All three together as one connection block (G1).
    conn = validated({**snippet("connection-pool.yaml"), **snippet("timeouts.yaml"), **snippet("retry-policy.yaml")},
                     Connection)
    assert conn.retry.max_backoff == 5.0


def test_capability_snippet():
    cap = validated(snippet("capability-performance.yaml")["capability"], Capability)
    assert cap.p99_ms == 25.0
    assert cap.performance.max_write_rps == 1_000_000 and cap.performance.max_batch_size == 1000


@pytest.mark.parametrize(("name", "operations"), [
    ("interface-keyvalue-basic.yaml", ["Get", "Set", "Delete", "Exists"]),
    ("interface-pubsub.yaml", ["Publish", "Subscribe", "CreateTopic"]),
    ("interface-transactional.yaml", ["BeginTransaction", "CommitTransaction", "RollbackTransaction",
                                      "TransactionalGet", "TransactionalSet"]),
])
def test_interface_snippets(name, operations):
    ifc = validated(snippet(name)["interface"], Interface)
    assert [op.name for op in ifc.operations] == operations


def test_interface_parameters_named_key_are_not_secrets():
    # `key: string (required)` declares a parameter; a registration carrying
    # the interface loads under the default secret rule.
    ifc = snippet("interface-keyvalue-basic.yaml")["interface"]
    registry = load_registry([{"backend_id": "kv", "backend_type": "redis", "interfaces": [ifc]}])
    assert registry["kv"].interface_list()[0].operations[0].parameters["key"] == "string (required)"


def test_transactional_on_operation_g3():
    ifc = validated(snippet("interface-transactional.yaml")["interface"], Interface)
    assert [op.transactional for op in ifc.operations][-2:] == [True, True]
    assert ifc.transactional is None


def test_incident_snippet():
    incident = validated(snippet("incident.yaml")["incident"], Incident)
    assert incident.root_cause == "Network congestion in AZ-1a"
    assert incident.started_at == dt.datetime(2025, 11, 15, 14, 22, tzinfo=dt.timezone.utc)


def test_slot_requirement_example():
    slot = validate_slot(snippet("slot-requirement.yaml"))
    assert slot.slot_name == "storage"
    assert slot.performance.min_write_rps == 10_000 and slot.performance.min_read_rps == 50_000
    assert slot.performance.max_latency_p99 == 25.0  # milliseconds
    assert slot.performance.requires_transactions and slot.optional is False


def test_query_examples():
    by_caps = validate_slot(snippet("query-by-capabilities.yaml"))
    assert by_caps.capabilities == ["transaction", "get", "set"]
    assert by_caps.min_storage == 1e12 and by_caps.performance.min_write_rps == 10_000
    assert by_caps.health_statuses == ["healthy"]
    by_type = validate_slot(snippet("query-by-type.yaml"))
    assert by_type.backend_types == ["kafka", "nats"] and by_type.regions == ["us-east-1"]


def test_interface_compatibility_pattern_g7():
    docs = read_file_documents(SEED / "interface-compatibility.yaml")
    assert [name.rsplit("#", 1)[1] for name, _ in docs] == ["1", "2", "3"]
    pattern = validated(docs[0][1], Pattern)
    assert pattern.pattern == "multicast-registry"
    assert pattern.slots["registry"].required_interfaces == ["KeyValueBasicInterface", "WatchInterface"]


@pytest.mark.parametrize("name", ["cost-calculation.yaml", "health-check.yaml", "slot-binding-reasons.yaml",
                                  "interface-compatibility.yaml", "auth-iam.yaml", "timeouts.yaml"])
def test_non_registrations_are_refused(name):
    with pytest.raises(RegistryError, match=r"Missing required field `backend_id`|Unknown field"):
        load_registry(SEED / name)


def test_seed_yaml_builds_the_same_objects_as_pyyaml():
    """The loader's own YAML constructor agrees with PyYAML's safe loader on
    every seed file (timestamps, comments, multi-document files)."""
    for path in sorted(SEED.glob("*.yaml")):
        ours = [doc for _, doc in read_file_documents(path)]
        theirs = [d for d in yaml.load_all(path.read_text(), Loader=yaml.SafeLoader) if d is not None]
        assert ours == theirs, path.name


def test_registrations_round_trip_through_json(tmp_path):
    """A loaded registration encodes to JSON (durations keep a unit) that
    loads to the same thing."""
    regs = list(load_registry(SEED / "kafka-prod-full.yaml"))
    path = tmp_path / "kafka.json"
    path.write_bytes(msgspec.json.encode(regs, enc_hook=encode_hook))
    assert list(load_registry(path)) == regs
