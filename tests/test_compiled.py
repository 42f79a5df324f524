"""The compiled registry says what the registrations say.

Masks are checked against a plain set-based reading of each registration
(pyroaring's habit: every bit operation against Python's ``set``), the
transposed bitsets against the row-wise ones, the float columns and their
missing-data encodings against compiled.py's documentation, and the
container protocol and ``to_polars`` against the registrations.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
from conftest import apply_update, registries, update_ops
from prism_match import RegistryError, load_registry
from prism_match.compiled import FLOAT_COLUMNS, OPTIONAL_COLUMNS, RESERVED_COLUMNS, UNKNOWN_CONSISTENCY
from prism_match.schema import BACKEND_TYPES, CONSISTENCY_LEVELS, HEALTH_STATUSES
from prism_match.vocabulary import capability_token, interface_token, versioned

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def bits_of(row: np.ndarray) -> set[int]:
    """Every set bit of a uint64 row, as positions."""
    return {w * 64 + b for w, word in enumerate(row.tolist()) for b in range(64) if (word >> b) & 1}


def feature_tokens(reg) -> set[str]:
    """What a registration declares, read plainly: bare and versioned tokens."""
    out = set()
    for token, items in ((capability_token, reg.capabilities), (interface_token, reg.interfaces)):
        for name, version in ((i, "v1") if isinstance(i, str) else (i.name, i.version) for i in items):
            out |= {token(name), versioned(token(name), version)}
    return out


def decoded(rows: np.ndarray, i: int, vocab) -> set[str]:
    bits = bits_of(rows[i])
    assert max(bits, default=-1) < len(vocab), "a bit past the vocabulary is set"
    return {vocab.tokens[b] for b in bits}


@SETTINGS
@given(case=registries())
def test_masks_match_a_set_reading_of_the_registrations(case):
    registry = load_registry(case.docs)
    c = registry.columns
    n = len(case.docs)
    assert c.n == n == len(registry)
    assert c.feature_rows.shape == (n, c.features.words)
    assert c.region_rows.shape == (n, c.regions.words)
    assert c.compliance_rows.shape == (n, c.compliance.words)
    for vocab in (c.features, c.regions, c.compliance):
        assert vocab.words == max(1, math.ceil(len(vocab) / 64))
        assert len(set(vocab.tokens)) == len(vocab.tokens)
        assert all(vocab.index[t] == i for i, t in enumerate(vocab.tokens))

    expected_features = set()
    for i, reg in enumerate(registry):
        assert reg.backend_id == c.backend_ids[i]
        assert decoded(c.feature_rows, i, c.features) == feature_tokens(reg)
        assert decoded(c.region_rows, i, c.regions) == set(reg.regions)
        assert decoded(c.compliance_rows, i, c.compliance) == set(reg.compliance)
        expected_features |= feature_tokens(reg)
    # The vocabularies hold exactly what somebody declares.
    assert set(c.features.tokens) == expected_features
    assert set(c.regions.tokens) == {r for reg in registry for r in reg.regions}
    assert set(c.compliance.tokens) == {t for reg in registry for t in reg.compliance}


@SETTINGS
@given(case=registries())
def test_feature_bits_is_the_transpose_of_feature_rows(case):
    c = load_registry(case.docs).columns
    n, n_tokens = c.n, len(c.features)
    assert c.feature_bits.shape == (max(n_tokens, 1), max(1, math.ceil(n / 64)))
    rows = {(i, t) for i in range(n) for t in bits_of(c.feature_rows[i])}
    cols = {(i, t) for t in range(c.feature_bits.shape[0]) for i in bits_of(c.feature_bits[t])}
    assert rows == cols
    assert all(i < n for i, _ in cols)  # no bit past the last backend


@SETTINGS
@given(case=registries(wide=True, min_backends=1))
def test_wide_vocabularies_span_several_words(case):
    c = load_registry(case.docs).columns
    assert len(c.features) > 64 and len(c.regions) > 64 and len(c.compliance) > 64
    assert c.features.words == math.ceil(len(c.features) / 64) >= 2
    for i, reg in enumerate(load_registry(case.docs)):
        assert decoded(c.feature_rows, i, c.features) == feature_tokens(reg)
        assert decoded(c.region_rows, i, c.regions) == set(reg.regions)
        assert decoded(c.compliance_rows, i, c.compliance) == set(reg.compliance)


def _expected_floats(reg) -> dict[str, float]:
    """compiled.py's documented encodings: missing maximum and usage 0,
    missing max_storage/cost/uptime NaN, missing max_namespaces +inf."""
    def get(block, name, missing):
        value = None if block is None else getattr(block, name)
        return missing if value is None else float(value)

    cap, cur, cost, health = reg.capacity, reg.current, reg.cost, reg.health
    out = {
        "max_write_rps": get(cap, "max_write_rps", 0.0), "max_read_rps": get(cap, "max_read_rps", 0.0),
        "write_rps": get(cur, "write_rps", 0.0), "read_rps": get(cur, "read_rps", 0.0),
        "max_storage": get(cap, "max_storage", math.nan), "storage_used": get(cur, "storage_used", 0.0),
        "max_namespaces": get(cap, "max_namespaces", math.inf),
        "namespace_count": get(cur, "namespace_count", 0.0),
        "cost_per_1k_writes": get(cost, "cost_per_1k_writes", math.nan),
        "uptime_percent_24h": get(health, "uptime_percent_24h", math.nan),
    }
    c = out["cost_per_1k_writes"]
    out["cost_score"] = 0.0 if math.isnan(c) else 1.0 / (c + 1.0)
    u = out["uptime_percent_24h"]
    out["avail_score"] = 0.0 if math.isnan(u) else u / 100.0
    return out


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@SETTINGS
@given(case=registries())
def test_columns_and_missing_data_encodings(case):
    registry = load_registry(case.docs)
    c = registry.columns
    for name in FLOAT_COLUMNS:
        column = getattr(c, name)
        assert column.dtype == np.float64 and column.shape == (c.n,) and column.flags.c_contiguous
    for i, reg in enumerate(registry):
        for name, value in _expected_floats(reg).items():
            assert same(float(getattr(c, name)[i]), value), (reg.backend_id, name)
        assert BACKEND_TYPES[c.backend_type[i]] == reg.backend_type
        assert HEALTH_STATUSES[c.health[i]] == reg.health_status
        expected_consistency = UNKNOWN_CONSISTENCY if reg.consistency is None \
            else CONSISTENCY_LEVELS.index(reg.consistency)
        assert c.consistency[i] == expected_consistency
        # Latency CSR: one entry per capability that states any per-capability
        # performance (issue 13), NaN (shown as None) where it states none.
        lo, hi = c.lat_indptr[i], c.lat_indptr[i + 1]
        got = sorted(((c.features.tokens[c.lat_token[e]], c.features.tokens[c.lat_vtoken[e]],
                      *(None if math.isnan(v) else float(v) for v in
                        (c.lat_p99_ms[e], c.lat_p50_ms[e], c.lat_p95_ms[e], c.lat_p999_ms[e], c.lat_max_write_rps[e],
                         c.lat_max_read_rps[e])),
                      None if c.lat_batch[e] < 0 else bool(c.lat_batch[e] == 1),
                      *(None if math.isnan(v) else float(v) for v in (c.lat_max_batch_size[e], c.lat_concurrency[e])))
                     for e in range(lo, hi)), key=repr)
        want = sorted(((capability_token(cap.name), versioned(capability_token(cap.name), cap.version),
                        *(v if v is None or isinstance(v, bool) else float(v) for v in cap.performance_entry()))
                       for cap in reg.capability_list() if cap.performance_entry() is not None), key=repr)
        assert got == want
    assert c.lat_indptr[0] == 0 and c.lat_indptr[-1] == len(c.lat_p99_ms)
    # id_rank is each id's place in UTF-8 byte order.
    by_bytes = sorted(c.backend_ids, key=reference.id_order)
    assert [by_bytes[r] for r in c.id_rank] == c.backend_ids


@SETTINGS
@given(data=st.data())
def test_updates_land_in_the_live_columns(data):
    case = data.draw(registries(min_backends=1))
    registry = load_registry(case.docs)
    live = reference.LiveState()
    for backend_id, changes in data.draw(st.lists(update_ops(case), max_size=6)):
        apply_update(registry, live, backend_id, changes)
    c = registry.columns
    table = registry.to_polars()
    for i, reg in enumerate(registry):
        expected = _expected_floats(reg)
        state = live.of(reg.backend_id)
        for field in ("write_rps", "read_rps", "storage_used", "namespace_count"):
            if field in state:
                expected[field] = float(state[field])
        if "uptime" in state:
            expected["uptime_percent_24h"] = float(state["uptime"])
            expected["avail_score"] = float(state["uptime"]) / 100.0
        status = state.get("status", reg.health_status)
        for name, value in expected.items():
            assert same(float(getattr(c, name)[i]), value), (reg.backend_id, name)
        assert HEALTH_STATUSES[c.health[i]] == status
        assert table["health_status"][i] == status
        assert table["write_rps"][i] == expected["write_rps"]


@SETTINGS
@given(case=registries())
def test_to_polars_lists_what_each_backend_declares(case):
    registry = load_registry(case.docs)
    table = registry.to_polars()
    assert table.height == len(registry)
    assert table["backend_id"].to_list() == registry.backend_ids
    for row, reg in zip(table.iter_rows(named=True), registry):
        caps = {f"{c.name}@{c.version}" for c in reg.capability_list()}
        ifcs = {f"{i.name}@{i.version}" for i in reg.interface_list()}
        assert sorted(row["capabilities"]) == sorted(caps) == row["capabilities"]
        assert sorted(row["interfaces"]) == sorted(ifcs) == row["interfaces"]
        assert row["regions"] == sorted(set(reg.regions))
        assert row["compliance"] == sorted(set(reg.compliance))
        assert row["backend_type"] == reg.backend_type and row["health_status"] == reg.health_status
        assert row["consistency"] == reg.consistency
        latency = sorted((x["capability"], x["p99_ms"]) for x in row["capability_p99_ms"] or [])
        assert latency == sorted((f"{c.name}@{c.version}", c.p99_ms) for c in reg.capability_list()
                                 if c.p99_ms is not None)
        for name, value in _expected_floats(reg).items():
            shown = row[name]
            assert (shown is None and (math.isnan(value) or math.isinf(value))) or shown == value, name


def test_to_polars_has_one_row_per_backend():
    docs = [
        {"backend_id": "pg", "backend_type": "postgres", "capabilities": ["get", {"name": "set", "version": "v2"}],
         "interfaces": ["KV"], "capacity": {"max_write_rps": 10, "max_storage": "1TB", "max_namespaces": 4},
         "current": {"write_rps": 3}, "cost": {"cost_per_1k_writes": 1}, "health": {"status": "healthy",
         "uptime_percent_24h": 99.5}, "regions": ["us"], "compliance": ["pci"], "consistency": "strong"},
        {"backend_id": "bare", "backend_type": "s3"},
    ]
    table = load_registry(docs).to_polars()
    assert table.height == 2
    assert table.columns == ["backend_id", "backend_type", "health_status", "consistency", "capabilities",
                             "interfaces", "regions", "compliance", "capability_p99_ms", "capability_performance",
                             *FLOAT_COLUMNS, *RESERVED_COLUMNS, *OPTIONAL_COLUMNS]
    pg, bare = table.row(0, named=True), table.row(1, named=True)
    assert pg["backend_id"] == "pg" and pg["backend_type"] == "postgres" and pg["health_status"] == "healthy"
    assert pg["capabilities"] == ["get@v1", "set@v2"] and pg["interfaces"] == ["KV@v1"]
    assert (pg["regions"], pg["compliance"], pg["consistency"]) == (["us"], ["pci"], "strong")
    assert pg["capability_p99_ms"] is None or pg["capability_p99_ms"] == []
    assert (pg["max_write_rps"], pg["write_rps"], pg["max_storage"], pg["max_namespaces"]) == (10, 3, 1e12, 4)
    assert (pg["cost_score"], pg["avail_score"]) == (0.5, 0.995)
    # Missing data is null in the table (not NaN, inf or a made-up zero).
    for name in ("max_storage", "max_namespaces", "cost_per_1k_writes", "uptime_percent_24h", "consistency"):
        assert bare[name] is None, name
    assert (bare["max_write_rps"], bare["write_rps"], bare["cost_score"], bare["avail_score"]) == (0, 0, 0, 0)
    assert bare["health_status"] == "unknown"
    assert bare["capabilities"] == [] and bare["regions"] == []


def test_to_polars_keeps_a_name_containing_at_whole():
    docs = [{"backend_id": "named", "backend_type": "redis", "capabilities": ["x@y"]},
            {"backend_id": "versioned", "backend_type": "redis", "capabilities": [{"name": "x", "version": "y"}]}]
    assert load_registry(docs).to_polars()["capabilities"].to_list() == [["x@y@v1"], ["x@y"]]


@pytest.mark.parametrize("docs", [[], [{"backend_id": "a", "backend_type": "s3"}]], ids=["empty", "no-consistency"])
def test_to_polars_column_types_do_not_depend_on_the_data(docs):
    schema = load_registry(docs).to_polars().schema
    for name in ("backend_id", "backend_type", "health_status", "consistency"):
        assert schema[name] == pl.String, name
    for name in ("capabilities", "interfaces", "regions", "compliance"):
        assert schema[name] == pl.List(pl.String), name
    for name in FLOAT_COLUMNS:
        assert schema[name] == pl.Float64, name


def test_container_protocol():
    docs = [{"backend_id": b, "backend_type": "redis"} for b in ("z", "a", "M")]
    registry = load_registry(docs)
    assert len(registry) == 3
    assert registry.backend_ids == ["z", "a", "M"]  # load order
    registry.backend_ids.append("oops")  # a copy: the registry is unchanged
    assert registry.backend_ids == ["z", "a", "M"]
    assert registry["a"].backend_id == "a" and registry["a"].backend_type == "redis"
    assert "a" in registry and "b" not in registry
    assert [r.backend_id for r in registry] == ["z", "a", "M"]
    with pytest.raises(KeyError, match="Unknown backend `b`"):
        registry["b"]
    assert len(load_registry([])) == 0


def test_inline_secrets_never_show():
    secrets = ("hunter2-secret", "tok-XYZ-inline", "meta-s3cret", "k3y-inline", "pw-in-list")
    docs = [
        {"backend_id": "pg", "backend_type": "postgres",
         "connection": {"endpoint": "pg:5432", "auth": {"type": "username_password", "username": "prism",
                                                        "password": secrets[0]}},
         "metadata": {"secret": secrets[2], "nested": {"key": secrets[3]}, "list": [{"password": secrets[4]}]}},
        {"backend_id": "redis", "backend_type": "redis", "capabilities": ["get"],
         "connection": {"auth": {"type": "token", "token": secrets[1]}}},
    ]
    with pytest.raises(RegistryError, match=r"Inline secret in `password`.*\$\[0\]\.connection\.auth\.password") \
            as excinfo:
        load_registry(docs)
    assert len(excinfo.value.errors) == 5
    registry = load_registry(docs, allow_inline_secrets=True)
    shown = [repr(registry["pg"]), str(registry["pg"]), repr(registry["redis"]), repr(registry),
             str(excinfo.value), repr(excinfo.value.errors), str(registry.to_polars()),
             str(registry.explain({"slot_name": "s", "capabilities": ["gett"]}))]
    shown += [repr(r) for r in registry.match({"slot_name": "s"}, k=2)[0].reasons]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    assert "username='prism'" in repr(registry["pg"])  # the rest of the registration does show
    assert registry["pg"].connection.auth.password == secrets[0]  # the data itself is kept
