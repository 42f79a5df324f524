"""Per-capability performance (issue 13's last point): the slot bounds
``max_latency_p50/p95/p999``, ``requires_batch`` / ``min_batch_size``,
``min_concurrency`` and ``per_capability_throughput`` against what each
capability of a backend states, through every path that holds capability
entries (load, the living registry, snapshots, polars, what-if, the command
line), and the conventions for what a capability does not state."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
from conftest import policies_or_default, registries, slot_for
from prism_match import Registry, RegistryError, load_registry, load_snapshot, score_table
from prism_match import snapshot as snapshot_module
from prism_match.cli import EXIT_INVALID, EXIT_OK, main
from prism_match.engine import validate_slot
from prism_match.rules import BY_CODE, codes_of

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = str(ROOT / "data" / "registry.yaml")

NEW_CODES = ("latency_percentile_too_high", "no_batch_support", "insufficient_concurrency",
             "insufficient_capability_throughput")


def backend(backend_id: str, capabilities: list, **fields) -> dict:
    base = {"backend_id": backend_id, "backend_type": "redis", "capabilities": capabilities,
            "capacity": {"max_write_rps": 1000, "max_read_rps": 1000}, "health": {"status": "healthy"}}
    base.update(fields)
    return base


def eligible_ids(registry, slot: dict) -> list[str]:
    return [m.backend_id for m in registry.match(dict(slot, slot_name="s"), k=100)]


def codes_by_backend(registry, slot: dict) -> dict[str, list[str]]:
    """Each backend's failed rules, from the kernel's diagnosis pass; the
    numpy twin and the plain reference must say the same."""
    prepared = registry.prepare(dict(slot, slot_name="s"))
    bits, _, _ = registry.engine.core.failure_bits(prepared, registry.engine.core_policy)
    numpy_bits = score_table.failure_bits(score_table.rule_masks(registry.columns, prepared, registry.policy),
                                          registry.columns.n)
    assert bits.tolist() == numpy_bits.tolist()
    requirement = validate_slot(dict(slot, slot_name="s"))
    out = {}
    for reg, b in zip(registry, bits.tolist()):
        assert codes_of(b) == reference.eligible(reg, requirement, registry.policy), reg.backend_id
        out[reg.backend_id] = codes_of(b)
    return out


# --- the conventions ---------------------------------------------------------------------

def test_an_unstated_latency_passes_and_a_stated_one_is_bounded():
    reg = load_registry([
        backend("fast", [{"name": "get", "performance": {"latency": {"p50_ms": 1, "p95_ms": 4, "p999_ms": 9}}}]),
        backend("slow", [{"name": "get", "performance": {"latency": {"p95_ms": 30}}}]),
        backend("silent", ["get"]),
        backend("tail", [{"name": "get", "performance": {"latency": {"p999_ms": 120}}}]),
    ])
    slot = {"capabilities": ["get"], "performance": {"max_latency_p95": "10ms", "max_latency_p999": "100ms"}}
    assert eligible_ids(reg, slot) == ["fast", "silent"]
    assert codes_by_backend(reg, slot) == {"fast": [], "slow": ["latency_percentile_too_high"], "silent": [],
                                           "tail": ["latency_percentile_too_high"]}
    # The bound is inclusive.
    assert eligible_ids(reg, {"capabilities": ["get"], "performance": {"max_latency_p95": "4ms"}}) == \
        ["fast", "silent", "tail"]


def test_batch_must_be_proven_an_unstated_one_fails():
    reg = load_registry([
        backend("inside", [{"name": "get", "performance": {"supports_batch": True, "max_batch_size": 500}}]),
        backend("beside", [{"name": "get", "supports_batch": True}]),  # G2
        backend("inner-wins", [{"name": "get", "performance": {"supports_batch": False}, "supports_batch": True}]),
        backend("bare", ["get"]),  # states nothing
        backend("other-data", [{"name": "get", "performance": {"latency": {"p99_ms": 3}}}]),
        backend("says-no", [{"name": "get", "performance": {"supports_batch": False}}]),
    ])
    slot = {"capabilities": ["get"], "performance": {"requires_batch": True}}
    assert eligible_ids(reg, slot) == ["beside", "inside"]
    codes = codes_by_backend(reg, slot)
    assert [b for b, c in codes.items() if c == ["no_batch_support"]] == ["inner-wins", "bare", "other-data",
                                                                          "says-no"]
    # min_batch_size implies batch, and an unstated max_batch_size fails it.
    assert eligible_ids(reg, {"capabilities": ["get"], "performance": {"min_batch_size": 500}}) == ["inside"]
    assert eligible_ids(reg, {"capabilities": ["get"], "performance": {"min_batch_size": 501}}) == []
    # Without the bound nothing is rejected for batch.
    assert len(eligible_ids(reg, {"capabilities": ["get"]})) == 6


def test_concurrency_must_be_proven():
    reg = load_registry([
        backend("many", [{"name": "get", "performance": {"max_concurrent_operations": 100}}]),
        backend("few", [{"name": "get", "max_concurrent_operations": 99}]),
        backend("unstated", [{"name": "get", "performance": {"max_write_rps": 10}}]),
    ])
    slot = {"capabilities": ["get"], "performance": {"min_concurrency": 100}}
    assert eligible_ids(reg, slot) == ["many"]
    assert codes_by_backend(reg, slot) == {"many": [], "few": ["insufficient_concurrency"],
                                           "unstated": ["insufficient_concurrency"]}
    # 0 is no bound, like min_connections.
    assert len(eligible_ids(reg, {"capabilities": ["get"], "performance": {"min_concurrency": 0}})) == 3


def test_bounds_apply_to_required_capabilities_or_to_every_one_when_none_is_required():
    reg = load_registry([
        backend("mixed", [{"name": "get", "performance": {"supports_batch": True, "latency": {"p95_ms": 2}}},
                          {"name": "scan", "performance": {"supports_batch": False, "latency": {"p95_ms": 50}}},
                          "set"]),
        backend("none", ["get"]),
    ])
    batch = {"performance": {"requires_batch": True}}
    assert eligible_ids(reg, dict(batch, capabilities=["get"])) == ["mixed"]
    assert eligible_ids(reg, dict(batch, capabilities=["scan"])) == []
    # `set` states nothing: the required capability proves nothing.
    assert eligible_ids(reg, dict(batch, capabilities=["get", "set"])) == []
    # None required: every capability that states something is read, and a
    # backend none of whose capabilities states anything proves nothing.
    assert codes_by_backend(reg, batch) == {"mixed": ["no_batch_support"], "none": ["no_batch_support"]}
    assert eligible_ids(reg, {"performance": {"max_latency_p95": "10ms"}}) == ["none"]
    assert eligible_ids(reg, {"capabilities": ["get"], "performance": {"max_latency_p95": "10ms"}}) == \
        ["mixed", "none"]


def test_a_bare_name_is_proven_by_the_version_that_states_it():
    # get@v1 states batch, get@v2 states nothing: a bare `get` takes any version.
    reg = load_registry([backend("two", [{"name": "get", "supports_batch": True}, {"name": "get", "version": "v2"}])])
    assert eligible_ids(reg, {"capabilities": ["get"], "performance": {"requires_batch": True}}) == ["two"]
    assert eligible_ids(reg, {"capabilities": ["get@v2"], "performance": {"requires_batch": True}}) == []


def test_per_capability_throughput_is_opt_in():
    reg = load_registry([
        backend("roomy", [{"name": "get", "performance": {"max_write_rps": 1000, "max_read_rps": 5000}}]),
        backend("narrow", [{"name": "get", "performance": {"max_write_rps": 200}}]),
        backend("unstated", ["get"]),
    ])
    slot = {"capabilities": ["get"], "performance": {"min_write_rps": 500}}
    # The default reads the backend's capacity alone: answers as before.
    assert eligible_ids(reg, slot) == ["narrow", "roomy", "unstated"]
    opt_in = {"capabilities": ["get"], "performance": {"min_write_rps": 500, "per_capability_throughput": True}}
    assert eligible_ids(reg, opt_in) == ["roomy", "unstated"]
    assert codes_by_backend(reg, opt_in)["narrow"] == ["insufficient_capability_throughput"]


def test_explain_names_the_new_rejections_with_their_requirement():
    reg = load_registry(REGISTRY)
    diag = reg.explain({"slot_name": "s", "capabilities": ["publish"],
                        "performance": {"max_latency_p50": "1ms", "max_latency_p95": "10ms", "min_batch_size": 5000,
                                        "min_concurrency": 10, "min_write_rps": 900000,
                                        "per_capability_throughput": True}})
    assert diag.details["latency_percentile_too_high"] == "need p50 <= 1ms, need p95 <= 10ms"
    assert diag.details["no_batch_support"] == "need batches of 5000"
    assert diag.details["insufficient_concurrency"] == "need 10 concurrent operations"
    assert diag.details["insufficient_capability_throughput"] == "need 900000 write rps per capability"
    for code in NEW_CODES:
        assert diag.rejected[code] >= 1
        assert BY_CODE[code].reason


def test_the_default_slot_reads_no_new_rule():
    # Every field at its default: the prepared slot is the one it always was.
    reg = load_registry(REGISTRY)
    view = reg.prepare({"slot_name": "s", "capabilities": ["publish"]}).kernel_view()
    assert (view["cap_rules"], view["needs_batch"], view["cap_throughput"]) == (False, False, False)
    assert view["max_p50"] == view["max_p95"] == view["max_p999"] == float("inf")
    assert view["lat_mask"] == [0] * len(view["lat_mask"])


# --- every path that holds the entries -----------------------------------------------------

PERF_DOCS = [
    backend("a", [{"name": "get", "performance": {"latency": {"p50_ms": 1, "p95_ms": 3, "p999_ms": 20},
                                                  "max_write_rps": 800, "supports_batch": True,
                                                  "max_batch_size": 100, "max_concurrent_operations": 64}},
                  "set"]),
    backend("b", [{"name": "get", "supports_batch": False, "max_concurrent_operations": 8}]),
    backend("c", ["get"]),
]
PERF_SLOTS = [
    {"capabilities": ["get"], "performance": {"requires_batch": True}},
    {"capabilities": ["get"], "performance": {"min_concurrency": 10}},
    {"capabilities": ["get"], "performance": {"max_latency_p95": "2ms"}},
    {"capabilities": ["get"], "performance": {"min_write_rps": 900, "per_capability_throughput": True}},
    {"performance": {"min_batch_size": 100}},
]


def answers(registry) -> list[list[str]]:
    return [eligible_ids(registry, slot) for slot in PERF_SLOTS]


def test_the_living_registry_writes_every_entry_field():
    expected = answers(load_registry(PERF_DOCS))
    assert expected == [["a"], ["a"], ["b", "c"], ["b", "c"], ["a"]]
    live = load_registry([backend("c", ["get"])])
    live.add(PERF_DOCS[0])
    live.add([PERF_DOCS[1]])
    assert answers(live) == expected
    # A replace moves the capability's entry: the new values are read.
    live.replace(backend("a", [{"name": "get", "performance": {"supports_batch": False}}]))
    assert eligible_ids(live, PERF_SLOTS[0]) == []
    assert eligible_ids(live, PERF_SLOTS[2]) == ["a", "b", "c"]
    live.replace(PERF_DOCS[0])
    assert answers(live) == expected
    live.remove("b")
    live.add(PERF_DOCS[1])  # into the hole
    assert answers(live) == expected
    live.compact()
    assert answers(live) == expected
    for slot in PERF_SLOTS:
        codes_by_backend(live, slot)


def test_snapshot_round_trip_keeps_every_entry_field(tmp_path: Path):
    reg = load_registry(PERF_DOCS)
    path = tmp_path / "reg.npz"
    reg.save(path)
    back = load_snapshot(path)
    assert answers(back) == answers(reg)
    for name in ("lat_p50_ms", "lat_p95_ms", "lat_p99_ms", "lat_p999_ms", "lat_max_write_rps", "lat_max_read_rps",
                 "lat_batch", "lat_max_batch_size", "lat_concurrency"):
        np.testing.assert_array_equal(getattr(back.columns, name), getattr(reg.columns, name), err_msg=name)
    assert back.to_polars().equals(reg.to_polars())


def _as_format_2(path: Path, out: Path) -> None:
    """The snapshot at ``path`` as a /2 snapshot wrote it: no per-capability
    members beyond p99, every entry stating a p99 (the only kind /2 had)."""
    with zipfile.ZipFile(path) as archive:
        arrays = {name[:-4]: np.load(io.BytesIO(archive.read(name))) for name in archive.namelist()
                  if name != "manifest.npy"}
    arrays["format"] = np.frombuffer(b"prism_match.snapshot/2", dtype=np.uint8)
    for name in list(arrays):
        if name.startswith("col.lat_") and name not in ("col.lat_indptr", "col.lat_token", "col.lat_vtoken",
                                                         "col.lat_p99_ms"):
            del arrays[name]
    arrays.pop("reg.buf", None)
    arrays.pop("reg.off", None)
    with open(out, "wb") as handle:
        snapshot_module._write_archive(handle, arrays)


def test_a_format_2_snapshot_still_loads(tmp_path: Path):
    docs = [backend("a", [{"name": "get", "performance": {"latency": {"p99_ms": 5}}}]), backend("b", ["get"])]
    path, old = tmp_path / "new.npz", tmp_path / "old.npz"
    load_registry(docs).save(path)
    _as_format_2(path, old)
    back = load_snapshot(old)
    assert eligible_ids(back, {"capabilities": ["get"], "performance": {"max_latency_p99": "1ms"}}) == ["b"]
    # Its entries state nothing else: a proven bound fails them, a latency one passes.
    assert back.columns.lat_batch.tolist() == [-1]
    assert eligible_ids(back, {"capabilities": ["get"], "performance": {"requires_batch": True}}) == []
    assert eligible_ids(back, {"capabilities": ["get"], "performance": {"max_latency_p95": "1ms"}}) == ["a", "b"]


def test_to_polars_shows_each_capability_s_performance_and_reads_it_back():
    reg = load_registry(PERF_DOCS)
    frame = reg.to_polars()
    rows = dict(zip(frame["backend_id"].to_list(), frame["capability_performance"].to_list()))
    assert rows["a"] == [{"capability": "get@v1", "p50_ms": 1.0, "p95_ms": 3.0, "p99_ms": None, "p999_ms": 20.0,
                          "max_write_rps": 800.0, "max_read_rps": None, "supports_batch": True,
                          "max_batch_size": 100, "max_concurrent_operations": 64}]
    assert rows["b"] == [{"capability": "get@v1", "p50_ms": None, "p95_ms": None, "p99_ms": None, "p999_ms": None,
                          "max_write_rps": None, "max_read_rps": None, "supports_batch": False,
                          "max_batch_size": None, "max_concurrent_operations": 8}]
    assert rows["c"] is None
    # capability_p99_ms lists the capabilities that state a p99 (none here).
    assert frame["capability_p99_ms"].to_list() == [None, None, None]
    back = Registry.from_polars(frame)
    assert answers(back) == answers(reg)
    assert back.to_polars().equals(frame)
    # A registration rebuilt from the columns states the same.
    assert back["a"].capabilities[0].performance.supports_batch is True
    assert back["a"].capabilities[0].performance.latency.p95_ms == 3.0


def test_from_polars_refuses_bad_performance_entries():
    frame = load_registry(PERF_DOCS).to_polars()
    perf = frame["capability_performance"].to_list()
    perf[0][0]["max_batch_size"] = -3
    with pytest.raises(RegistryError, match=r"max_batch_size.*-3.*frame row 0 column `capability_performance`"):
        Registry.from_polars(frame.with_columns(capability_performance=pl.Series(perf)))
    perf[0][0]["max_batch_size"] = 100
    perf[0][0]["capability"] = "nosuch"
    with pytest.raises(RegistryError, match="does not declare"):
        Registry.from_polars(frame.with_columns(capability_performance=pl.Series(perf)))


def test_what_if_reads_the_entries_through():
    reg = load_registry(PERF_DOCS)
    with reg.what_if({"a": {"status": "unhealthy"}}) as view:
        assert eligible_ids(view, PERF_SLOTS[0]) == []
    assert eligible_ids(reg, PERF_SLOTS[0]) == ["a"]


def test_query_and_pattern_slots_take_the_new_bounds():
    reg = load_registry(PERF_DOCS)
    result = reg.query({"required_capabilities": ["get"], "requires_batch": True, "min_concurrency": 10})
    assert [m.backend_id for m in result.backends] == ["a"]
    result = reg.query({"required_capabilities": ["get"], "max_latency_p999": "10ms"})
    assert [m.backend_id for m in result.backends] == ["b", "c"]
    binding = reg.bind_pattern({"pattern": "p", "slots": {
        "cache": {"required_capabilities": ["get"], "performance": {"min_batch_size": 50}}}})
    assert binding.bindings["cache"].backend_id == "a"


# --- bad values are located --------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "token"), [
    ("max_latency_p95", "fast", "fast"),
    ("max_latency_p50", -1, "-1"),
    ("min_batch_size", -1, ">= 0"),
    ("min_concurrency", 1.5, "whole number"),
    ("requires_batch", "yes", "bool"),
])
def test_bad_bounds_are_errors_naming_the_field(field, value, token):
    reg = load_registry(PERF_DOCS)
    with pytest.raises(RegistryError) as info:
        reg.match({"slot_name": "s", "performance": {field: value}})
    text = str(info.value)
    assert f"$.performance.{field}" in text and token in text


# --- the command line --------------------------------------------------------------------

def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_cli_query_flags(capsys):
    code, out, _ = call(capsys, "query", REGISTRY, "--capability", "publish", "--max-latency-p95", "15ms",
                        "--requires-batch", "-o", "json")
    assert code == EXIT_OK
    assert [m["backend_id"] for m in orjson.loads(out)["backends"]] == ["kafka-prod-us-east-1"]
    code, out, _ = call(capsys, "query", REGISTRY, "--capability", "publish", "--max-latency-p95", "14ms",
                        "--requires-batch", "-o", "json")
    assert code == EXIT_OK and orjson.loads(out)["backends"] == []
    code, out, err = call(capsys, "query", REGISTRY, "--min-concurrency", "-5")
    assert code == EXIT_INVALID and "command line $.min_concurrency" in err


def test_cli_slot_file_with_the_new_bounds(capsys, tmp_path: Path):
    path = tmp_path / "slots.yaml"
    path.write_text(yaml.safe_dump({"slots": [
        {"slot_name": "events", "capabilities": ["subscribe"], "performance": {"requires_batch": True,
                                                                              "min_concurrency": 1000}},
        {"slot_name": "bad", "performance": {"max_latency_p999": "soon"}}]}))
    code, _, err = call(capsys, "match", REGISTRY, str(path))
    assert code == EXIT_INVALID and f"{path}" in err and "$.slots[1].performance.max_latency_p999" in err
    path.write_text(yaml.safe_dump({"slots": [
        {"slot_name": "events", "capabilities": ["subscribe"], "performance": {"requires_batch": True,
                                                                              "min_concurrency": 1000}}]}))
    code, out, _ = call(capsys, "match", REGISTRY, str(path), "-o", "json")
    assert code == EXIT_OK
    assert "kafka-prod-us-east-1" in out
    code, out, _ = call(capsys, "explain", REGISTRY, str(path), "-o", "json")
    assert code == EXIT_OK and "no_batch_support" in out


def test_a_slot_table_takes_the_new_fields_as_flat_columns():
    from prism_match.slot_files import slots_from_frame

    frame = pl.DataFrame({"slot_name": ["s"], "capabilities": ["get"], "requires_batch": [True],
                          "max_latency_p95": ["5ms"], "min_concurrency": [4]})
    [slot] = slots_from_frame(frame)
    reg = load_registry(PERF_DOCS)
    assert eligible_ids(reg, slot) == ["a"]


# --- property: kernel, numpy and reference, the new bounds always drawn -----------------------

BOUNDS = ("100us", "2ms", "25ms", "1s")
capability_bounds = st.fixed_dictionaries({}, optional={
    "max_latency_p50": st.sampled_from(BOUNDS), "max_latency_p95": st.sampled_from(BOUNDS),
    "max_latency_p999": st.sampled_from(BOUNDS), "max_latency_p99": st.sampled_from(BOUNDS),
    "requires_batch": st.booleans(), "min_batch_size": st.sampled_from((0, 100, 500, 1000)),
    "min_concurrency": st.sampled_from((0, 50, 100)), "per_capability_throughput": st.booleans(),
    "min_write_rps": st.sampled_from((0, 500, 10000)), "min_read_rps": st.sampled_from((0, 500, 10000)),
    "requires_transactions": st.booleans()})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_kernel_numpy_and_reference_agree_on_the_capability_bounds(data):
    case = data.draw(registries(min_backends=1))
    slot = data.draw(slot_for(case))
    slot["performance"] = data.draw(capability_bounds)
    policy = data.draw(policies_or_default)
    registry = load_registry(case.docs, policy=policy)
    prepared = registry.prepare(slot)
    bits, counts, eligible = registry.engine.core.failure_bits(prepared, registry.engine.core_policy)
    numpy_bits = score_table.failure_bits(score_table.rule_masks(registry.columns, prepared, policy),
                                          registry.columns.n)
    assert bits.tolist() == numpy_bits.tolist()
    requirement = validate_slot(slot)
    for reg, b in zip(registry, bits.tolist()):
        assert codes_of(b) == reference.eligible(reg, requirement, policy), reg.backend_id
    expected = [bid for bid, _ in reference.ranked(list(registry), requirement, policy)]
    assert [m.backend_id for m in registry.match(slot, k=len(case.docs))] == expected
