"""Tests for `prism_match.cost`: the seed's cost example, per-term values,
null totals for missing prices, ordering, and workload validation."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_match import RegistryError, load_registry
from prism_match.cost import COST_TERMS, WORKLOAD_KEYS, estimate_cost, validate_workload

DATA = Path(__file__).resolve().parent.parent / "data"

# The seed's "Cost Tracking" block of kafka-prod-us-east-1 (G4: transfer costs under `cost`).
SEED_COST = {
    "cost_model": "pay_per_use",
    "cost_per_1k_writes": 0.001,
    "cost_per_1k_reads": 0.0005,
    "cost_per_gb_month": 0.10,
    "cost_per_connection_hour": 0.01,
    "transfer_costs": {"cost_per_gb_intra_region": 0.01, "cost_per_gb_inter_region": 0.02,
                       "cost_per_gb_internet": 0.09},
}
# The seed's "Cost Calculation" example.
SEED_WORKLOAD = {
    "writes": 1_000_000, "reads": 5_000_000, "storage_gb": 2500, "connections": 2500, "hours": 720,
    "transfer_gb_intra_region": 100, "transfer_gb_inter_region": 50, "transfer_gb_internet": 10,
}
COLUMNS = ["backend_id", *COST_TERMS, "total", "cost_model"]


def backend(backend_id: str, **extra) -> dict:
    return {"backend_id": backend_id, "backend_type": "kafka", **extra}


def row(frame: pl.DataFrame, backend_id: str) -> dict:
    [found] = frame.filter(pl.col("backend_id") == backend_id).to_dicts()
    return found


def test_seed_example_sums_to_18256_40():
    registry = load_registry([backend("kafka-prod-us-east-1", cost=SEED_COST)])
    out = row(estimate_cost(registry, SEED_WORKLOAD), "kafka-prod-us-east-1")
    # The seed prints $18,255.40; its own line items add up to $18,256.40.
    assert round(out["total"], 2) == 18256.40
    assert out["total"] == pytest.approx(18256.40, abs=1e-9)
    assert out["writes"] == pytest.approx(1.00, abs=1e-12)
    assert out["reads"] == pytest.approx(2.50, abs=1e-12)
    assert out["storage"] == pytest.approx(250.00, abs=1e-12)
    assert out["connections"] == pytest.approx(18000.00, abs=1e-9)
    assert out["transfer_intra_region"] == pytest.approx(1.00, abs=1e-12)
    assert out["transfer_inter_region"] == pytest.approx(1.00, abs=1e-12)
    assert out["transfer_internet"] == pytest.approx(0.90, abs=1e-12)


def test_seed_example_on_the_sample_registry():
    """data/registry.yaml holds the seed's full registration unchanged."""
    registry = load_registry(DATA / "registry.yaml")
    frame = estimate_cost(registry, SEED_WORKLOAD)
    assert round(row(frame, "kafka-prod-us-east-1")["total"], 2) == 18256.40
    assert frame.height == len(registry)


def test_columns_and_dtypes():
    registry = load_registry([backend("a", cost=SEED_COST)])
    frame = estimate_cost(registry, {})
    assert frame.columns == COLUMNS
    assert frame.schema["backend_id"] == pl.String
    assert all(frame.schema[c] == pl.Float64 for c in (*COST_TERMS, "total"))


def test_registry_method_gives_the_same_table():
    registry = load_registry(DATA / "registry.yaml")
    assert registry.estimate_cost(SEED_WORKLOAD).equals(estimate_cost(registry, SEED_WORKLOAD))


def test_transfer_costs_at_top_level_price_the_same():
    """G4: `transfer_costs` beside `cost` instead of under it."""
    nested = load_registry([backend("a", cost=SEED_COST)])
    cost = {k: v for k, v in SEED_COST.items() if k != "transfer_costs"}
    top = load_registry([backend("a", cost=cost, transfer_costs=SEED_COST["transfer_costs"])])
    assert estimate_cost(nested, SEED_WORKLOAD).equals(estimate_cost(top, SEED_WORKLOAD))


def test_missing_price_for_a_used_term_gives_null_term_and_total():
    cost = {"cost_per_1k_writes": 0.001, "cost_per_1k_reads": 0.0005}  # no storage, connection, transfer prices
    registry = load_registry([backend("a", cost=cost), backend("none")])
    frame = estimate_cost(registry, {"writes": 1_000_000, "storage_gb": 10})
    a = row(frame, "a")
    assert a["writes"] == pytest.approx(1.0)
    assert a["reads"] == 0.0          # not used by the workload: 0 whatever the price
    assert a["storage"] is None       # used, no price: unknown, not free
    assert a["total"] is None
    none = row(frame, "none")
    assert none["writes"] is None and none["storage"] is None and none["total"] is None


def test_unused_terms_cost_nothing_even_without_prices():
    registry = load_registry([backend("a", cost={"cost_per_1k_writes": 0.002}), backend("bare")])
    frame = estimate_cost(registry, {"writes": 500})
    assert row(frame, "a")["total"] == pytest.approx(0.001)
    assert row(frame, "bare")["total"] is None
    empty = estimate_cost(registry, {})
    assert empty.get_column("total").to_list() == [0.0, 0.0]


def test_connections_are_priced_per_connection_hour():
    registry = load_registry([backend("a", cost={"cost_per_connection_hour": 0.01})])
    assert row(estimate_cost(registry, {"connections": 10, "hours": 5}), "a")["connections"] == pytest.approx(0.5)
    # Connections without hours are held for the page's month (720 h), never
    # priced at $0 (issue 13); hours without connections are no connection-hour.
    assert row(estimate_cost(registry, {"connections": 10}), "a")["connections"] == pytest.approx(72.0)
    assert row(estimate_cost(registry, {"hours": 720}), "a")["connections"] == 0.0


def test_a_zero_price_is_a_price():
    registry = load_registry([backend("a", cost={"cost_per_gb_month": 0.0})])
    out = row(estimate_cost(registry, {"storage_gb": 100}), "a")
    assert out["storage"] == 0.0 and out["total"] == 0.0


def test_sorted_cheapest_first_nulls_last_ties_by_backend_id():
    registry = load_registry([
        backend("z-unknown"),
        backend("expensive", cost={"cost_per_1k_writes": 0.5}),
        backend("tie-b", cost={"cost_per_1k_writes": 0.001}),
        backend("a-unknown"),
        backend("tie-a", cost={"cost_per_1k_writes": 0.001}),
    ])
    frame = estimate_cost(registry, {"writes": 1000})
    assert frame.get_column("backend_id").to_list() == ["tie-a", "tie-b", "expensive", "a-unknown", "z-unknown"]


def test_same_input_same_table():
    registry = load_registry(DATA / "registry.yaml")
    assert estimate_cost(registry, SEED_WORKLOAD).equals(estimate_cost(registry, SEED_WORKLOAD))


# --- workload validation ---------------------------------------------------------------

def test_absent_keys_are_zero():
    # ... all but `hours`, which is the page's month (issue 13).
    assert validate_workload({"writes": 3}) == {**dict.fromkeys(WORKLOAD_KEYS, 0.0), "writes": 3.0, "hours": 720.0}


@pytest.mark.parametrize(("workload", "message"), [
    ({"writes": -1}, r"^Expected a number >= 0, got `-1` - at workload \$\.writes$"),
    ({"reads": float("nan")}, r"^Expected a finite number, got `nan` - at workload \$\.reads$"),
    ({"storage_gb": float("inf")}, r"^Expected a finite number, got `inf` - at workload \$\.storage_gb$"),
    ({"hours": "720"}, r"^Expected a number >= 0, got `str` - at workload \$\.hours$"),
    ({"connections": True}, r"^Expected a number >= 0, got `bool` - at workload \$\.connections$"),
    ({"connections": 10**400}, r"^Expected a finite number, got a number too large for a float - at workload "
                               r"\$\.connections$"),
    ({"write": 5}, r"^Unknown field `write`; expected one of `writes`, `reads`, .* - at workload \$\.write$"),
])
def test_bad_workload_is_an_error_with_its_location(workload, message):
    registry = load_registry([backend("a", cost=SEED_COST)])
    with pytest.raises(RegistryError, match=message):
        estimate_cost(registry, workload)


def test_every_workload_problem_is_reported():
    with pytest.raises(RegistryError) as info:
        validate_workload({"writes": -1, "reads": float("nan"), "egress_gb": 3})
    assert [loc for loc, _ in info.value.errors] == ["workload $.writes", "workload $.reads",
                                                     "workload $.egress_gb"]
    assert str(info.value).startswith("3 problems:")


def test_workload_must_be_a_mapping():
    with pytest.raises(RegistryError, match=r"^Expected a mapping of workload quantities, got `list` - at "
                                            r"workload \$$"):
        validate_workload([("writes", 1)])


# --- property: the total is the sum of its terms, null when any term is ------------------

_price = st.one_of(st.none(), st.floats(min_value=0, max_value=10, allow_nan=False))
_quantity = st.one_of(st.just(0), st.floats(min_value=0, max_value=1e9, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(prices=st.lists(_price, min_size=7, max_size=7),
       quantities=st.lists(_quantity, min_size=len(WORKLOAD_KEYS), max_size=len(WORKLOAD_KEYS)))
def test_total_is_the_sum_of_terms_or_null(prices, quantities):
    names = ("cost_per_1k_writes", "cost_per_1k_reads", "cost_per_gb_month", "cost_per_connection_hour")
    cost = {n: p for n, p in zip(names, prices[:4]) if p is not None}
    transfer = {n: p for n, p in zip(("cost_per_gb_intra_region", "cost_per_gb_inter_region",
                                      "cost_per_gb_internet"), prices[4:]) if p is not None}
    if transfer:
        cost["transfer_costs"] = transfer
    registry = load_registry([backend("a", cost=cost)])
    workload = dict(zip(WORKLOAD_KEYS, quantities))
    out = row(estimate_cost(registry, workload), "a")
    q = validate_workload(workload)
    used = {"writes": q["writes"], "reads": q["reads"], "storage": q["storage_gb"],
            "connections": q["connections"] * q["hours"], "transfer_intra_region": q["transfer_gb_intra_region"],
            "transfer_inter_region": q["transfer_gb_inter_region"], "transfer_internet": q["transfer_gb_internet"]}
    for term, price in zip(COST_TERMS, prices):
        if used[term] == 0:
            assert out[term] == 0.0
        elif price is None:
            assert out[term] is None
        else:
            divisor = 1000.0 if term in ("writes", "reads") else 1.0
            assert out[term] == pytest.approx(used[term] / divisor * price, rel=1e-12)
    terms = [out[t] for t in COST_TERMS]
    if any(t is None for t in terms):
        assert out["total"] is None
    else:
        assert out["total"] == pytest.approx(math.fsum(terms), rel=1e-12, abs=1e-12)
