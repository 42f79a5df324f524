"""``Registry.match_many``: the batch answer is the single-match answer of
every slot, laid out as one polars table, whatever the input shape (mappings,
prepared slots, a requirements DataFrame, a slot file) and whatever the
thread count; progress is reported; bad input is a RegistryError naming the
slot and the field."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RegistryCase, registries, slot_for
from prism_match import RegistryError, load_registry, load_slots
from prism_match import batch as batch_module
from prism_match.engine import validate_slot
from prism_match.synthetic import generate_registry, generate_slots

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

SCHEMA = {"slot_index": pl.Int64, "slot_name": pl.String, "rank": pl.Int64, "backend_id": pl.String,
          "score": pl.Float64, "performance": pl.Float64, "cost": pl.Float64, "availability": pl.Float64,
          "region": pl.Float64}
COMPONENTS = ("score", "performance", "cost", "availability", "region")


def loop_frame(registry, slots, k: int) -> pl.DataFrame:
    """What match_many must return, built from one ``registry.match`` per slot."""
    rows = []
    for i, slot in enumerate(slots):
        name = registry.prepare(slot).slot_name
        found = registry.match(slot, k)
        for rank, m in enumerate(found, 1):
            rows.append({"slot_index": i, "slot_name": name, "rank": rank, "backend_id": m.backend_id,
                         **{c: getattr(m, c) for c in COMPONENTS}})
        if not found:
            rows.append({"slot_index": i, "slot_name": name, "rank": None, "backend_id": None,
                         **{c: None for c in COMPONENTS}})
    return pl.DataFrame(rows, schema=SCHEMA)


def assert_frames_equal(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert got.schema == expected.schema
    assert got.to_dicts() == expected.to_dicts()


# --- equivalence with a loop of single matches ------------------------------------------

@SETTINGS
@given(data=st.data())
def test_match_many_equals_a_loop_of_match_for_any_thread_count(data, monkeypatch):
    case: RegistryCase = data.draw(registries())
    registry = load_registry(case.docs)
    slots = [dict(data.draw(slot_for(case)), slot_name=f"s{i}")
             for i in range(data.draw(st.integers(0, 6)))]
    k = data.draw(st.integers(1, 5))
    expected = loop_frame(registry, slots, k)
    # Small batches normally run on one thread; here every thread takes part.
    monkeypatch.setattr(batch_module, "PAIRS_PER_THREAD", 1)

    one = registry.match_many(slots, k, threads=1)
    two = registry.match_many(slots, k, threads=2)
    prepared = registry.match_many([registry.prepare(s) for s in slots], k, threads=2)
    monkeypatch.setenv("PRISM_MATCH_THREADS", "2")
    from_env = registry.match_many(slots, k)
    monkeypatch.delenv("PRISM_MATCH_THREADS")

    assert_frames_equal(one, expected)
    for frame in (two, prepared, from_env):
        assert frame.equals(one)


@pytest.fixture(scope="module")
def synthetic():
    """300 backends and 2,000 slots: eight chunks of CHUNK=256 slots, enough
    work per chunk for every thread to take part."""
    return load_registry(generate_registry(300, seed=11)), generate_slots(2000, seed=12)


def test_a_large_batch_is_identical_across_thread_counts_and_equals_the_loop(synthetic, monkeypatch):
    registry, slots = synthetic
    expected = loop_frame(registry, slots, 5)
    # Repeated, since a data race between threads shows only now and then.
    frames = [registry.match_many(slots, 5, threads=t) for t in (1, 2, 3, 2, 3, 2, 3)]
    monkeypatch.setenv("PRISM_MATCH_THREADS", "1")
    frames.append(registry.match_many(slots, 5))
    monkeypatch.setenv("PRISM_MATCH_THREADS", "2")
    frames.append(registry.match_many(slots, 5))
    assert_frames_equal(frames[0], expected)
    for frame in frames[1:]:
        assert_frames_equal(frame, expected)
    # The batch has both outcomes, so the comparison means something.
    assert frames[0]["rank"].null_count() > 0
    assert (frames[0]["rank"] == 5).sum() > 0


# --- the output table --------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    return load_registry([
        {"backend_id": "pg", "backend_type": "postgres", "capabilities": ["get", "set", "transaction"],
         "interfaces": ["KeyValueBasicInterface", "TransactionalInterface"],
         "capacity": {"max_write_rps": 50000, "max_read_rps": 200000}, "regions": ["us-east-1"],
         "cost": {"cost_per_1k_writes": 0.001}, "health": {"status": "healthy", "uptime_percent_24h": 99.9}},
        {"backend_id": "redis", "backend_type": "redis", "capabilities": ["get", "set", "ttl"],
         "interfaces": ["KeyValueBasicInterface", "TTLInterface"],
         "capacity": {"max_write_rps": 500000, "max_read_rps": 2000000}, "regions": ["us-west-2"]},
        {"backend_id": "kafka", "backend_type": "kafka", "capabilities": ["publish", "subscribe"],
         "interfaces": ["PubSubInterface"], "capacity": {"max_write_rps": 1000000, "max_read_rps": 5000000}},
    ])


KV = {"slot_name": "kv", "interfaces": ["KeyValueBasicInterface"], "performance": {"min_write_rps": 10000},
      "preferred_region": "us-east-1"}
NOTHING = {"slot_name": "graph", "interfaces": ["GraphInterface"]}
PUBSUB = {"slot_name": "events", "interfaces": ["PubSubInterface"]}


def test_output_schema_order_ranks_and_a_row_for_an_unmatched_slot(small):
    frame = small.match_many([KV, NOTHING, PUBSUB], 3)
    assert frame.schema == pl.Schema(SCHEMA)
    assert frame.select("slot_index", "slot_name", "rank", "backend_id").rows() == [
        (0, "kv", 1, "pg"), (0, "kv", 2, "redis"),
        (1, "graph", None, None),
        (2, "events", 1, "kafka"),
    ]
    unmatched = frame.row(2, named=True)
    assert all(unmatched[c] is None for c in COMPONENTS)
    pg = frame.row(0, named=True)
    # SPEC §4 by hand: perf 2.0 (capped), cost 1/1.001, uptime 0.999, region 1.
    assert pg["performance"] == 2.0 and pg["region"] == 1.0 and pg["availability"] == pytest.approx(0.999)
    assert pg["cost"] == pytest.approx(1 / 1.001)
    assert pg["score"] == pytest.approx(0.4 * 2.0 + 0.3 / 1.001 + 0.2 * 0.999 + 0.1)


def test_slots_keep_input_order_and_duplicate_names(small):
    frame = small.match_many([PUBSUB, KV, PUBSUB], 1)
    assert frame.select("slot_index", "slot_name", "backend_id").rows() == [
        (0, "events", "kafka"), (1, "kv", "pg"), (2, "events", "kafka")]


def test_k_larger_than_the_registry_lists_every_eligible_backend_once(small):
    frame = small.match_many([KV], 50)
    assert frame["backend_id"].to_list() == ["pg", "redis"]
    assert frame["rank"].to_list() == [1, 2]


def test_empty_slot_list_gives_an_empty_table_with_the_schema(small):
    calls = []
    frame = small.match_many([], 3, progress=lambda done, total: calls.append((done, total)))
    assert frame.height == 0
    assert frame.schema == pl.Schema(SCHEMA)


def test_empty_registry_gives_one_null_row_per_slot():
    registry = load_registry([])
    frame = registry.match_many([KV, PUBSUB], 3)
    assert frame.schema == pl.Schema(SCHEMA)
    assert frame.select("slot_index", "slot_name", "rank", "backend_id", "score").rows() == [
        (0, "kv", None, None, None), (1, "events", None, None, None)]


# --- progress -----------------------------------------------------------------------------

def test_progress_is_reported_per_chunk_and_ends_at_the_total(synthetic):
    registry, slots = synthetic
    calls: list[tuple[int, int]] = []
    registry.match_many(slots, 2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(256, 2000), (512, 2000), (768, 2000), (1024, 2000), (1280, 2000), (1536, 2000),
                     (1792, 2000), (2000, 2000)]


def test_progress_for_a_small_batch_is_one_call(small):
    calls: list[tuple[int, int]] = []
    small.match_many([KV, PUBSUB], 1, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 2)]


# --- input shapes -------------------------------------------------------------------------

def test_a_requirements_dataframe_with_list_and_flat_performance_columns(synthetic):
    registry, slots = synthetic
    slots = slots[:40]
    frame = pl.DataFrame({
        "slot_name": [s["slot_name"] for s in slots],
        "capabilities": [s["capabilities"] for s in slots],
        "interfaces": [s["interfaces"] for s in slots],
        "min_write_rps": [s["performance"]["min_write_rps"] for s in slots],
        "performance.min_read_rps": [s["performance"]["min_read_rps"] for s in slots],
        "preferred_region": [s.get("preferred_region") for s in slots],
        "regions": [s.get("regions") for s in slots],
        "optional": [s.get("optional") for s in slots],
    })
    plain = [{k: v for k, v in s.items() if k in ("slot_name", "capabilities", "interfaces", "preferred_region",
                                                  "regions", "optional")}
             | {"performance": {k: v for k, v in s["performance"].items() if k != "max_latency_p99"}}
             for s in slots]
    assert_frames_equal(registry.match_many(frame, 3), loop_frame(registry, plain, 3))


def test_a_dataframe_with_a_performance_struct_column_with_nulls(small):
    # A struct column gives every row every field; a null field is "not given".
    frame = pl.DataFrame({
        "slot_name": ["kv", "events"],
        "interfaces": [["KeyValueBasicInterface"], ["PubSubInterface"]],
        "performance": [{"min_write_rps": 10000, "max_latency_p99": None}, {"min_write_rps": None,
                                                                             "max_latency_p99": "25ms"}],
    })
    expected = [{"slot_name": "kv", "interfaces": ["KeyValueBasicInterface"],
                 "performance": {"min_write_rps": 10000}},
                {"slot_name": "events", "interfaces": ["PubSubInterface"],
                 "performance": {"max_latency_p99": "25ms"}}]
    assert_frames_equal(small.match_many(frame, 2), loop_frame(small, expected, 2))


@pytest.mark.parametrize("interfaces, capabilities", [
    ("KeyValueBasicInterface; TTLInterface", "get,set|ttl"),
    ('["KeyValueBasicInterface", "TTLInterface"]', "['get', 'set', 'ttl']"),   # JSON, Python repr
])
def test_a_dataframe_with_list_fields_as_strings(small, interfaces, capabilities):
    frame = pl.DataFrame({"slot_name": ["kv"], "interfaces": [interfaces], "capabilities": [capabilities]})
    expected = [{"slot_name": "kv", "interfaces": ["KeyValueBasicInterface", "TTLInterface"],
                 "capabilities": ["get", "set", "ttl"]}]
    got = small.match_many(frame, 3)
    assert got["backend_id"].to_list() == ["redis"]
    assert_frames_equal(got, loop_frame(small, expected, 3))


def test_slots_from_frame_drops_nulls_at_every_depth_and_keeps_column_order():
    # Columns with and without nulls inside their values, a string list, and
    # performance from a struct, a flat and a dotted column (flat wins over
    # the struct; the struct keeps its place in the row).
    frame = pl.DataFrame({
        "slot_name": ["a", "b", None],
        "capabilities": [["get", None], None, []],
        "interfaces": [["X"], ["Y", "Z"], []],
        "regions": ["us-east-1; eu-west-1", None, ""],
        "performance": [{"min_write_rps": 1, "max_latency_p99": None}, None, {"min_write_rps": None,
                                                                            "max_latency_p99": "5ms"}],
        "extra": [[{"k": "x", "v": [1, None]}], [{"k": None, "v": []}], None],
        "min_write_rps": [7, None, None],
        "performance.min_read_rps": [None, 3, 4],
        "nothing": pl.Series([None, None, None], dtype=pl.Null),
    })
    got = batch_module.slots_from_frame(frame)
    assert [list(s.items()) for s in got] == [
        [("slot_name", "a"), ("capabilities", ["get"]), ("interfaces", ["X"]),
         ("regions", ["us-east-1", "eu-west-1"]), ("performance", {"min_write_rps": 7}),
         ("extra", [{"k": "x", "v": [1]}])],
        [("slot_name", "b"), ("interfaces", ["Y", "Z"]), ("extra", [{"v": []}]),
         ("performance", {"min_read_rps": 3})],
        [("capabilities", []), ("interfaces", []), ("regions", []),
         ("performance", {"max_latency_p99": "5ms", "min_read_rps": 4})],
    ]
    assert list(got[0]["performance"]) == ["min_write_rps"]
    assert batch_module.slots_from_frame(frame.clear()) == []


# --- errors --------------------------------------------------------------------------------

def test_bad_slots_name_their_position_and_field(small):
    with pytest.raises(RegistryError, match=r"^Expected a finite number >= 0, got `-1` - at slots\[1\] slot "
                                            r"`b` \$\.performance\.min_write_rps$"):
        small.match_many([KV, {"slot_name": "b", "performance": {"min_write_rps": -1}}], 1)


def test_every_bad_slot_is_reported_at_once(small):
    with pytest.raises(RegistryError) as info:
        small.match_many([{"slot_name": "a", "capabilites": ["get"]}, KV, {"interfaces": ["X"]}], 1)
    assert info.value.errors == [
        ("slots[0] slot `a` $", "Unknown field `capabilites`; did you mean `capabilities`?"),
        ("slots[2] slot $", "Missing required field `slot_name`"),
    ]


@pytest.mark.parametrize("slots, message", [
    ("kv", r"Expected a list of slots or a DataFrame, got `str` - at slots"),
    (KV, r"Expected a list of slots or a DataFrame, got `dict` - at slots"),
    (7, r"Expected a list of slots or a DataFrame, got `int` - at slots"),
    ([3], r"Expected a slot mapping or a prepared slot, got `int` - at slots\[0\] slot"),
])
def test_what_is_not_a_list_of_slots_is_refused(small, slots, message):
    with pytest.raises(RegistryError, match=message):
        small.match_many(slots, 1)


def test_a_slot_prepared_for_another_registry_is_refused(small):
    other = load_registry([{"backend_id": "x", "backend_type": "redis"}])
    with pytest.raises(RegistryError, match=r"prepared for another registry; prepare it again - at slots\[0\]"):
        small.match_many([other.prepare(KV)], 1)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, None, "2"])
def test_k_below_one_or_not_an_int_is_an_error(small, k):
    with pytest.raises(RegistryError, match=r"^Expected `k` >= 1, got `.*` - at match_many$"):
        small.match_many([KV], k)


@pytest.mark.parametrize("threads", [0, -2, 1.5, True, "2"])
def test_threads_below_one_or_not_an_int_is_an_error(small, threads):
    with pytest.raises(RegistryError, match=r"^Expected `threads` >= 1, got `.*` - at threads$"):
        small.match_many([KV], 1, threads=threads)


@pytest.mark.parametrize("value, message", [
    ("zero", r"^Expected a whole number, got `zero` - at \$PRISM_MATCH_THREADS$"),
    ("0", r"^Expected `threads` >= 1, got `0` - at \$PRISM_MATCH_THREADS$"),
    ("-3", r"^Expected `threads` >= 1, got `-3` - at \$PRISM_MATCH_THREADS$"),
])
def test_a_bad_thread_override_in_the_environment_is_an_error(small, monkeypatch, value, message):
    monkeypatch.setenv("PRISM_MATCH_THREADS", value)
    with pytest.raises(RegistryError, match=message):
        small.match_many([KV], 1)


def test_an_explicit_thread_count_wins_over_the_environment(small, monkeypatch):
    monkeypatch.setenv("PRISM_MATCH_THREADS", "zero")
    assert small.match_many([KV], 1, threads=1)["backend_id"].to_list() == ["pg"]


# --- slot files ----------------------------------------------------------------------------

FILE_SLOTS = [
    {"slot_name": "storage", "capabilities": ["get", "set", "transaction"],
     "interfaces": ["KeyValueBasicInterface", "TransactionalInterface"],
     "performance": {"min_write_rps": 10000, "min_read_rps": 50000, "max_latency_p99": "25ms"},
     "preferred_region": "us-east-1"},
    {"slot_name": "cache", "capabilities": ["get", "ttl"], "interfaces": ["TTLInterface"], "optional": True,
     "regions": ["us-west-2", "us-east-1"]},
    {"slot_name": "events", "interfaces": ["PubSubInterface"], "performance": {"min_write_rps": 2000}},
]
EXPECTED = [validate_slot(s) for s in FILE_SLOTS]


def _rows() -> list[dict]:
    """FILE_SLOTS as flat table rows (performance as dotted columns)."""
    rows = []
    for s in FILE_SLOTS:
        row = {k: v for k, v in s.items() if k != "performance"}
        row.update({f"performance.{k}": v for k, v in s.get("performance", {}).items()})
        rows.append(row)
    return rows


def test_load_slots_from_yaml_in_every_layout(tmp_path):
    listed = tmp_path / "listed.yaml"
    listed.write_text(yaml.safe_dump({"slots": FILE_SLOTS}))
    documents = tmp_path / "documents.yml"
    documents.write_text(yaml.safe_dump_all([{"slot_requirement": s} for s in FILE_SLOTS]))
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(FILE_SLOTS))
    for path in (listed, documents, bare):
        assert load_slots(path) == EXPECTED


def test_load_slots_from_json(tmp_path):
    path = tmp_path / "slots.json"
    path.write_text(json.dumps({"slots": FILE_SLOTS}))
    assert load_slots(str(path)) == EXPECTED


def test_load_slots_from_ndjson_with_nested_performance(tmp_path):
    path = tmp_path / "slots.ndjson"
    path.write_text("\n".join(json.dumps(s) for s in FILE_SLOTS) + "\n")
    assert load_slots(path) == EXPECTED


def test_load_slots_from_csv_with_separated_lists(tmp_path):
    path = tmp_path / "slots.csv"
    pl.DataFrame([{k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()} for row in _rows()]
                 ).write_csv(path)
    assert "get;set;transaction" in path.read_text()
    assert load_slots(path) == EXPECTED


def test_load_slots_from_parquet(tmp_path):
    path = tmp_path / "slots.parquet"
    pl.DataFrame(_rows()).write_parquet(path)
    assert load_slots(path) == EXPECTED


def test_loaded_slots_match_like_the_mappings(small, tmp_path):
    path = tmp_path / "slots.parquet"
    pl.DataFrame(_rows()).write_parquet(path)
    assert small.match_many(load_slots(path), 2).equals(small.match_many(FILE_SLOTS, 2))


def test_a_bad_row_names_the_file_row_and_field(tmp_path):
    path = tmp_path / "slots.csv"
    path.write_text("slot_name,min_write_rps,interfaces\nok,10,A\nbad,-5,B\n")
    with pytest.raises(RegistryError, match=r"^Expected a finite number >= 0, got `-5` - at .*slots\.csv "
                                            r"\$\[1\]\.performance\.min_write_rps$"):
        load_slots(path)


def test_a_bad_yaml_slot_names_the_file_and_path(tmp_path):
    path = tmp_path / "slots.yaml"
    path.write_text(yaml.safe_dump({"slots": [FILE_SLOTS[0], {"slot_name": "x", "optinal": True}]}))
    with pytest.raises(RegistryError, match=r"Unknown field `optinal`; did you mean `optional`\? - at "
                                            r".*slots\.yaml:15:3 \$\.slots\[1\]"):
        load_slots(path)


def test_an_unreadable_table_or_a_missing_file_is_an_error(tmp_path):
    broken = tmp_path / "slots.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(RegistryError, match=r"^Cannot read slot table: .* - at .*slots\.parquet$"):
        load_slots(broken)
    with pytest.raises(RegistryError, match=r"^No such file - at .*nowhere\.csv$"):
        load_slots(tmp_path / "nowhere.csv")
    with pytest.raises(RegistryError, match=r"No such file or directory - at .*nowhere\.yaml"):
        load_slots(tmp_path / "nowhere.yaml")


def test_a_table_column_is_typed_from_every_row_not_the_first_hundred(tmp_path):
    path = tmp_path / "slots.csv"
    path.write_text("slot_name,min_write_rps\n" + "".join(f"s{i},{i}\n" for i in range(300)) + "late,2.5\n")
    slots = load_slots(path)
    assert len(slots) == 301
    assert slots[-1].performance.min_write_rps == 2.5


# --- slots the kernel sees as the same are matched once ------------------------------------

def test_repeated_requirements_under_other_names_are_matched_once_and_answered_for_each(synthetic, monkeypatch):
    registry, slots = synthetic
    repeated = [dict(slots[j % 7], slot_name=f"copy{j}") for j in range(600)] + slots[:50]
    calls = []
    real = batch_module._core.topk_many

    def counting(snap, unique, policy, k, start, stop, *rest):
        calls.append(stop - start)
        return real(snap, unique, policy, k, start, stop, *rest)

    monkeypatch.setattr(batch_module._core, "topk_many", counting)
    progress: list[tuple[int, int]] = []
    frame = registry.match_many(repeated, 4, threads=2, progress=lambda d, t: progress.append((d, t)))
    assert_frames_equal(frame, loop_frame(registry, repeated, 4))
    distinct = len({registry.prepare(s).kernel_key() for s in repeated})
    assert sum(calls) == distinct < len(repeated)
    assert progress == [(256, 650), (512, 650), (650, 650)]  # input slots, as before


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_slots_with_one_kernel_key_get_the_same_answers(data):
    case: RegistryCase = data.draw(registries(min_backends=1))
    registry = load_registry(case.docs)
    a, b = data.draw(slot_for(case)), data.draw(slot_for(case))
    pa, pb = registry.prepare(a), registry.prepare(b)
    assert registry.prepare(dict(a, slot_name="other")).kernel_key() == pa.kernel_key()
    if pa.kernel_key() == pb.kernel_key():
        k = len(case.docs)
        assert [(m.backend_id, m.score) for m in registry.match(pa, k)] == \
            [(m.backend_id, m.score) for m in registry.match(pb, k)]
    view_a, view_b = pa.kernel_view(), pb.kernel_view()
    if view_a != view_b and (view_a["region_filter"] or not view_b["region_filter"]) and \
            view_a["lat_all"] == view_b["lat_all"]:
        relevant = [key for key in view_a if view_a[key] != view_b[key]
                    and key not in ("region_any", "compliance_all", "lat_mask")]
        if relevant:  # a field every slot's kernel reads differs: so do the keys
            assert pa.kernel_key() != pb.kernel_key()


def test_a_one_rps_difference_is_another_key(small):
    base = {"slot_name": "a", "performance": {"min_write_rps": 100}}
    assert small.prepare(base).kernel_key() != small.prepare(
        {"slot_name": "a", "performance": {"min_write_rps": 101}}).kernel_key()
    assert small.prepare(base).kernel_key() == small.prepare(dict(base, slot_name="b")).kernel_key()
