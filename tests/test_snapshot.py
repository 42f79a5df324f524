"""Compiled registries as files and tables: ``Registry.save`` /
``load_snapshot`` and ``Registry.to_polars`` / ``Registry.from_polars``
give back a registry that answers exactly as the original (live values
included); damaged or foreign input is a RegistryError, never a crash; and
the compiled columns stay under 200 bytes per backend."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from prism_match import MatchPolicy, Registry, RegistryError, load_registry, load_snapshot
from prism_match.schema import Duration
from prism_match.synthetic import generate_frame, generate_registry, generate_slots

SEED = Path(__file__).parent / "data" / "seed"
SEED_BACKENDS = ("kafka-prod-full", "postgres-primary", "redis-cache")
SLOTS = generate_slots(60, seed=7) + [
    yaml.safe_load((SEED / "slot-requirement.yaml").read_text()),
    {"slot_name": "kv-east", "interfaces": ["KeyValueBasicInterface"], "preferred_region": "us-east-1",
     "performance": {"min_write_rps": 1000}},
    {"slot_name": "nothing", "interfaces": ["GraphInterfaec"]},
]


@pytest.fixture(scope="module")
def registry():
    docs = [yaml.safe_load((SEED / f"{name}.yaml").read_text()) for name in SEED_BACKENDS]
    registry = load_registry(docs + generate_registry(60, seed=5))
    # Live state that differs from the documents.
    registry.update("postgres-primary", write_rps=12345.5, read_rps=1000, storage_used=2e12, namespace_count=7,
                    status="degraded", uptime=97.25)
    registry.update(registry.backend_ids[10], status="unhealthy")
    registry.update("kafka-prod-us-east-1", write_rps=900000)
    return registry


def _reasons(match, declared_order: bool) -> list[tuple[str, str]]:
    out = []
    for r in match.reasons:
        text = r.explanation
        if not declared_order and r.type == "compliance":
            # A table has no declaration order: the backend's tags come back
            # sorted, so only the set of tags is compared.
            head, _, held = text.partition("(has: ")
            text = head + ", ".join(sorted(held.rstrip(")").split(", ")))
        out.append((r.type, text))
    return out


def same_answers(a: Registry, b: Registry, *, declared_order: bool = True) -> None:
    """``b`` answers every query exactly as ``a``."""
    assert len(a) == len(b) and a.backend_ids == b.backend_ids
    assert a.match_many(SLOTS, 4).equals(b.match_many(SLOTS, 4))
    for slot in SLOTS:
        mine, theirs = a.match(slot, 3), b.match(slot, 3)
        assert [m.as_dict() for m in mine] == [m.as_dict() for m in theirs]
        assert [_reasons(m, declared_order) for m in mine] == [_reasons(m, declared_order) for m in theirs]
        assert a.explain(slot).as_dict() == b.explain(slot).as_dict()
    assert a.query({"query": {"required_interfaces": ["PubSubInterface"]}}).as_dict() == \
        b.query({"query": {"required_interfaces": ["PubSubInterface"]}}).as_dict()


# --- snapshots --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reloaded(registry, tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "registry.npz"
    registry.save(path)
    return load_snapshot(path)


def test_a_snapshot_answers_as_the_original(registry, reloaded):
    same_answers(registry, reloaded)


def test_a_snapshot_keeps_the_live_values(registry, reloaded):
    assert reloaded.to_polars().equals(registry.to_polars())
    row = reloaded.to_polars().filter(pl.col("backend_id") == "postgres-primary").row(0, named=True)
    assert (row["write_rps"], row["read_rps"], row["storage_used"], row["namespace_count"]) == (12345.5, 1000, 2e12, 7)
    assert (row["health_status"], row["uptime_percent_24h"]) == ("degraded", 97.25)


def test_a_snapshot_keeps_every_registration(registry, reloaded):
    for backend_id in registry.backend_ids:
        assert reloaded[backend_id] == registry[backend_id]
    kafka = reloaded["kafka-prod-us-east-1"]
    # The seed registration's durations come back as durations, in seconds.
    assert kafka.connection.timeouts.connect_timeout == 10.0
    assert kafka.connection.retry.initial_backoff == 0.1
    assert kafka.connection.pool.max_idle_time == 300.0
    assert isinstance(kafka.connection.pool.max_idle_time, Duration)
    assert kafka.health.recent_incidents[0].severity == "warning"
    assert kafka.metadata["owner_team"] == "platform-infrastructure"


def test_a_snapshot_is_independent_of_the_original(registry, tmp_path):
    path = tmp_path / "r.npz"
    registry.save(path)
    copy = load_snapshot(path)
    copy.update("postgres-primary", write_rps=1)
    assert registry.to_polars().filter(pl.col("backend_id") == "postgres-primary")["write_rps"].item() == 12345.5


def test_a_reloaded_snapshot_saves_and_reloads_again(reloaded, tmp_path):
    path = tmp_path / "again.npz"
    reloaded.save(path)
    again = load_snapshot(path)
    same_answers(reloaded, again)
    assert again["kafka-prod-us-east-1"] == reloaded["kafka-prod-us-east-1"]


def test_a_snapshot_of_a_table_built_registry(tmp_path):
    built = Registry.from_polars(generate_frame(500, seed=3))
    path = tmp_path / "table.npz"
    built.save(path)
    loaded = load_snapshot(path)
    same_answers(built, loaded)
    some = built.backend_ids[17]
    assert loaded[some] == built[some]


def test_a_snapshot_in_memory_round_trips(registry):
    buffer = io.BytesIO()
    registry.save(buffer)
    from_bytes = load_snapshot(buffer.getvalue())
    buffer.seek(0)
    from_file_object = load_snapshot(buffer)
    same_answers(registry, from_bytes)
    assert from_file_object.to_polars().equals(registry.to_polars())
    with pytest.raises(RegistryError, match=r"^Not a prism_match snapshot \(\w+\) - at <bytes>$"):
        load_snapshot(b"junk")


def test_saving_replaces_a_snapshot_whole_and_leaves_no_temporary_file(registry, tmp_path):
    path = tmp_path / "r.npz"
    load_registry([{"backend_id": "old", "backend_type": "redis"}]).save(path)
    registry.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]
    assert load_snapshot(path).backend_ids == registry.backend_ids


def test_load_snapshot_takes_registry_options(registry, tmp_path):
    path = tmp_path / "r.npz"
    registry.save(path)
    policy = MatchPolicy(w_perf=1, w_cost=0, w_avail=0, w_region=0)
    loaded = load_snapshot(path, policy=policy)
    assert loaded.policy == policy
    assert all(m.score == m.performance for m in loaded.match(SLOTS[-2], 5))


def test_an_empty_registry_round_trips(tmp_path):
    path = tmp_path / "empty.npz"
    load_registry([]).save(path)
    empty = load_snapshot(path)
    assert len(empty) == 0
    assert empty.match(SLOTS[0], 3) == []
    assert empty.to_polars().height == 0


# --- bad snapshot files ---------------------------------------------------------------------

def test_a_file_that_is_not_a_snapshot_is_an_error(tmp_path):
    text = tmp_path / "registry.yaml"
    text.write_text("backend_id: x\n")
    with pytest.raises(RegistryError, match=r"^Not a prism_match snapshot \(\w+\) - at .*registry\.yaml$"):
        load_snapshot(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.arange(3))
    with pytest.raises(RegistryError, match=r"^Not a prism_match snapshot \(expected format "
                                            r"`prism_match\.snapshot/3`\) - at .*foreign\.npz$"):
        load_snapshot(foreign)
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3))
    with pytest.raises(RegistryError, match=r"^Not a prism_match snapshot \(one array, not an archive\)"):
        load_snapshot(single)


def test_a_missing_file_or_a_directory_is_an_error(tmp_path):
    with pytest.raises(RegistryError, match=r"^No such file - at .*nowhere\.npz$"):
        load_snapshot(tmp_path / "nowhere.npz")
    with pytest.raises(RegistryError, match=r"^Expected a snapshot file, got a directory - at "):
        load_snapshot(tmp_path)


def test_a_truncated_snapshot_is_an_error(registry, tmp_path):
    path = tmp_path / "r.npz"
    registry.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RegistryError, match=r"^Not a prism_match snapshot \(\w+\) - at "):
        load_snapshot(path)


def _tampered(registry, tmp_path: Path, **changes) -> Path:
    path = tmp_path / "r.npz"
    registry.save(path)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, message", [
    ({"col.max_write_rps": np.zeros(3)}, r"column `max_write_rps` is float64\[3\], expected float64\[63\]"),
    ({"col.health": np.zeros(63, dtype=np.int64)}, r"column `health` is int64\[63\], expected uint8\[63\]"),
    ({"col.health": np.full(63, 9, dtype=np.uint8)}, r"column `health` is out of range"),
    ({"col.id_rank": np.zeros(63, dtype=np.int64)}, r"column `id_rank` does not rank the backend ids"),
    ({"col.lat_token": None}, r"column `lat_token` is "),
    ({"col.feature_rows": np.zeros((63, 1), dtype=np.uint64)}, r"column `feature_rows` is uint64\[63, 1\]"),
    ({"reg.off": np.zeros(5, dtype=np.int64)}, r"member `reg.off` is int64\[5\], expected int64\[64\]"),
    ({"reg.off": np.zeros(64, dtype=np.int64)}, r"member `reg.buf` is uint8\[\d+\], expected uint8\[0\]"),
])
def test_a_damaged_snapshot_is_refused_before_the_kernel_sees_it(registry, tmp_path, change, message):
    key = next(iter(change))
    change = {k: (v if v is not None else None) for k, v in change.items()}
    if key == "col.lat_token":
        # A latency index past the vocabulary.
        with np.load(_tampered(registry, tmp_path)) as data:
            tokens = data["col.lat_token"].copy()
        tokens[0] = 10 ** 6
        change = {key: tokens}
        message = r"column `lat_token` is out of range"
    path = _tampered(registry, tmp_path, **change)
    with pytest.raises(RegistryError, match=rf"^Snapshot is damaged: {message}.* - at .*r\.npz$"):
        load_snapshot(path)


def test_a_snapshot_missing_a_part_is_an_error(registry, tmp_path):
    path = _tampered(registry, tmp_path, **{"ids.off": None})
    with pytest.raises(RegistryError, match=r"^Snapshot is incomplete or from another version \(no member `ids\.off`\)"):
        load_snapshot(path)


def test_repeated_ids_in_a_snapshot_are_refused(tmp_path):
    registry = load_registry([{"backend_id": "ab", "backend_type": "redis"},
                              {"backend_id": "cd", "backend_type": "redis"}])
    buf = np.frombuffer(b"abab", dtype=np.uint8)
    path = _tampered(registry, tmp_path, **{"ids.buf": buf})
    with pytest.raises(RegistryError, match=r"^Snapshot is damaged: member `ids.buf` repeats a backend id - at "):
        load_snapshot(path)


def test_saving_to_an_unwritable_place_is_an_error(registry, tmp_path):
    with pytest.raises(RegistryError, match=r"^Cannot write file: No such file or directory - at .*no/such/dir/r\.npz$"):
        registry.save(tmp_path / "no" / "such" / "dir" / "r.npz")


# --- tables ---------------------------------------------------------------------------------------

def test_from_polars_of_to_polars_answers_as_the_original(registry):
    table = registry.to_polars()
    rebuilt = Registry.from_polars(table)
    same_answers(registry, rebuilt, declared_order=False)
    assert rebuilt.to_polars().equals(table)


def test_to_polars_lists_names_in_sorted_order():
    registry = load_registry([{"backend_id": "a", "backend_type": "redis", "capabilities": ["set", "get"],
                               "interfaces": [{"name": "TTLInterface", "version": "v2"}, "KeyValueBasicInterface"],
                               "regions": ["us-west-2", "eu-west-1"], "compliance": ["soc2", "pci"]}])
    row = registry.to_polars().row(0, named=True)
    assert row["capabilities"] == ["get@v1", "set@v1"]
    assert row["interfaces"] == ["KeyValueBasicInterface@v1", "TTLInterface@v2"]
    assert row["regions"] == ["eu-west-1", "us-west-2"] and row["compliance"] == ["pci", "soc2"]


def test_from_polars_with_only_the_required_columns():
    registry = Registry.from_polars(pl.DataFrame({"backend_id": ["a", "b"], "backend_type": ["redis", "kafka"]}))
    row = registry.to_polars().row(1, named=True)
    assert row["health_status"] == "unknown" and row["max_storage"] is None and row["max_namespaces"] is None
    assert [m.backend_id for m in registry.match({"slot_name": "s"}, 5)] == ["a", "b"]


BASE = {"backend_id": ["a", "b"], "backend_type": ["redis", "kafka"]}


@pytest.mark.parametrize("frame, message", [
    (pl.DataFrame({"backend_type": ["redis"]}), r"^Required column is missing - at frame column `backend_id`$"),
    (pl.DataFrame({"backend_id": ["a"]}), r"^Required column is missing - at frame column `backend_type`$"),
    (pl.DataFrame({"backend_id": ["a", "b", "a"], "backend_type": ["redis"] * 3}),
     r"^Duplicate backend_id `a`, first defined at frame row 0 - at frame row 2 column `backend_id`$"),
    (pl.DataFrame({"backend_id": ["a", ""], "backend_type": ["redis"] * 2}),
     r"^Expected a non-empty backend_id - at frame row 1 column `backend_id`$"),
    (pl.DataFrame({"backend_id": ["a", "b"], "backend_type": ["redis", "mysql"]}),
     r"^Expected one of `kafka`, `nats`, `postgres`, `redis`, `sqlite`, `neptune`, `sqs`, `s3`, `memstore`, "
     r"got `mysql` - at frame row 1 column `backend_type`$"),
    (pl.DataFrame({**BASE, "max_write_rps": [1.0, -5.0]}),
     r"^Expected a finite number >= 0, got `-5\.0` - at frame row 1 column `max_write_rps`$"),
    (pl.DataFrame({**BASE, "max_read_rps": [math.nan, 1.0]}),
     r"^Expected a finite number >= 0, got `nan` - at frame row 0 column `max_read_rps`$"),
    (pl.DataFrame({**BASE, "storage_used": [1.0, math.inf]}),
     r"^Expected a finite number >= 0, got `inf` - at frame row 1 column `storage_used`$"),
    (pl.DataFrame({**BASE, "uptime_percent_24h": [100.5, None]}),
     r"^Expected a percentage in \[0, 100\], got `100\.5` - at frame row 0 column `uptime_percent_24h`$"),
    (pl.DataFrame({**BASE, "max_write_rps": ["10k", "1"]}),
     r"^Expected numbers, got `String` - at frame column `max_write_rps`$"),
    (pl.DataFrame({**BASE, "health_status": ["fine", None]}),
     r"^Expected one of `healthy`, .*, got `fine` - at frame row 0 column `health_status`$"),
    (pl.DataFrame({**BASE, "capabilities": ["get", "set"]}),
     r"^Expected a list of names \(`list\[str\]`\), got `String` - at frame column `capabilities`$"),
    (pl.DataFrame({**BASE, "regions": [[""], []]}), r"^Expected non-empty names, got `` - at frame column `regions`$"),
    (pl.DataFrame({**BASE, "capabilities": [["get"], []],
                   "capability_p99_ms": [None, [{"capability": "get", "p99_ms": 3.0}]]}),
     r"^Latency given for a capability the backend does not declare - at frame row 1 column `capability_p99_ms`$"),
    ("not a frame", r"^Expected a polars DataFrame, got `str` - at frame$"),
])
def test_from_polars_refuses_bad_tables(frame, message):
    with pytest.raises(RegistryError, match=message):
        Registry.from_polars(frame)


def test_from_polars_reports_every_problem_at_once():
    frame = pl.DataFrame({"backend_id": ["a", "a"], "backend_type": ["redis", "oracle"],
                          "max_write_rps": [-1.0, 2.0]})
    with pytest.raises(RegistryError) as info:
        Registry.from_polars(frame)
    assert [loc for loc, _ in info.value.errors] == [
        "frame row 1 column `backend_id`", "frame row 1 column `backend_type`", "frame row 0 column `max_write_rps`"]


# --- memory ---------------------------------------------------------------------------------------

def test_the_compiled_registry_stays_under_200_bytes_per_backend():
    registry = Registry.from_polars(generate_frame(100_000, seed=1))
    assert len(registry) == 100_000
    assert registry.columns.nbytes() / len(registry) < 200
