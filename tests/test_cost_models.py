"""The page's cost models in ``estimate_cost`` (issue 13): what each bills.

pay_per_use and spot bill what is used (the seed's formula); provisioned and
reserved bill the capacity held over the period when it exceeds what is
used; ``hours`` defaults to the page's month, so connections are never
priced at $0 for want of hours. Each expected figure is worked out by hand
below from the formula in cost.py's docstring.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_match import RegistryError, load_registry
from prism_match.cost import MONTH_HOURS, estimate_cost, validate_workload
from prism_match.cli import main

PRICES = {"cost_per_1k_writes": 0.002, "cost_per_1k_reads": 0.001, "cost_per_gb_month": 0.1,
          "cost_per_connection_hour": 0.01}
MODELS = ("pay_per_use", "provisioned", "reserved", "spot", None)


def backend(bid: str, model: str | None) -> dict:
    cost = dict(PRICES, **({"cost_model": model} if model else {}))
    return {"backend_id": bid, "backend_type": "postgres", "cost": cost}


REGISTRY = load_registry([backend(m or "none", m) for m in MODELS])


def rows(workload: dict) -> dict[str, dict]:
    return {r["backend_id"]: r for r in estimate_cost(REGISTRY, workload).to_dicts()}


def test_the_table_names_each_backends_model():
    out = rows({})
    assert {b: r["cost_model"] for b, r in out.items()} == {
        "pay_per_use": "pay_per_use", "provisioned": "provisioned", "reserved": "reserved", "spot": "spot",
        "none": None}


def test_pay_per_use_and_spot_bill_what_is_used():
    # 2,000,000 writes at $0.002/1k = $4; 1,000,000 reads at $0.001/1k = $1; 10 GB at $0.1 = $1.
    workload = {"writes": 2_000_000, "reads": 1_000_000, "storage_gb": 10, "write_rps": 1000}
    out = rows(workload)
    for model in ("pay_per_use", "spot", "none"):
        assert out[model]["writes"] == pytest.approx(4.0)
        assert out[model]["reads"] == pytest.approx(1.0)
        assert out[model]["total"] == pytest.approx(6.0)


def test_provisioned_and_reserved_bill_the_capacity_held():
    # 1,000 write rps held for 720 h = 2,592,000,000 writes -> $5,184 at $0.002/1k,
    # more than the 2,000,000 used; reads provision nothing beyond use: $1.
    workload = {"writes": 2_000_000, "reads": 1_000_000, "storage_gb": 10, "write_rps": 1000}
    out = rows(workload)
    for model in ("provisioned", "reserved"):
        assert out[model]["writes"] == pytest.approx(5184.0)
        assert out[model]["reads"] == pytest.approx(1.0)
        assert out[model]["total"] == pytest.approx(5186.0)
    # Over 24 hours: 1,000 rps * 86,400 s = 86,400,000 writes -> $172.80.
    short = rows({**workload, "hours": 24})
    assert short["provisioned"]["writes"] == pytest.approx(172.8)


def test_capacity_below_use_bills_the_use():
    # 1 rps for 720 h = 2,592,000 reads, fewer than the 10,000,000 used: the use is billed.
    out = rows({"reads": 10_000_000, "read_rps": 1})
    assert out["reserved"]["reads"] == pytest.approx(10.0) == out["pay_per_use"]["reads"]


def test_hours_default_to_the_pages_month():
    assert validate_workload({})["hours"] == MONTH_HOURS == 720.0
    # 2,500 connections * 720 h * $0.01 = $18,000 (the page's example) without `hours`.
    out = rows({"connections": 2500})
    assert all(r["connections"] == pytest.approx(18_000.0) for r in out.values())


@settings(max_examples=100, deadline=None)
@given(writes=st.floats(0, 1e12), rps=st.floats(0, 1e6), hours=st.floats(1, 10_000))
def test_capacity_models_never_bill_less_than_use(writes, rps, hours):
    out = rows({"writes": writes, "write_rps": rps, "hours": hours})
    used = writes / 1000 * PRICES["cost_per_1k_writes"]
    held = rps * 3600 * hours / 1000 * PRICES["cost_per_1k_writes"]
    assert out["pay_per_use"]["writes"] == pytest.approx(used, rel=1e-12, abs=1e-12)
    assert out["provisioned"]["writes"] == pytest.approx(max(used, held), rel=1e-12, abs=1e-12)


def test_bad_rates_are_named():
    with pytest.raises(RegistryError, match=r"Expected a number >= 0, got `-1` - at workload \$\.write_rps"):
        estimate_cost(REGISTRY, {"write_rps": -1})


def test_cli_takes_the_provisioned_rates(capsys):
    import orjson

    registry_path = "data/registry.yaml"
    code = main(["cost", registry_path, "--writes", "1000", "--write-rps", "10", "-o", "json"])
    out, _ = capsys.readouterr()
    assert code == 0
    doc = orjson.loads(out)
    assert doc["workload"]["write_rps"] == 10.0
    models = {r["backend_id"]: r["cost_model"] for r in doc["backends"]}
    assert models["kafka-prod-us-east-1"] == "pay_per_use"
    by_id = {r["backend_id"]: r for r in doc["backends"]}
    provisioned = [b for b, m in models.items() if m == "provisioned" and by_id[b]["writes"] is not None]
    assert provisioned
    assert all(by_id[b]["writes"] > 1000 / 1000 * 0.01 for b in provisioned)  # capacity held, not 1,000 writes
