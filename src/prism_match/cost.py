"""Monthly cost estimate per backend (SPEC §7, the seed's "Cost Calculation").

A workload mapping (writes, reads, storage, connection-hours, transfer, and
optionally the rates it provisions) is validated once, then priced against
every backend's ``cost`` and transfer rates in one vectorised polars pass:
one row per backend, one column per term, its ``cost_model`` and a
``total``. A backend that declares no price for a term the workload uses
gets a null term and a null total — an unknown price is not free. Used by
``Registry.estimate_cost`` and the ``prism-match cost`` command.

The page's cost models decide what is billed (its prices are the prices
under the backend's model):

* ``pay_per_use`` (and a backend that names none), ``spot``: what is used,
  the seed's formula: ``writes/1000·cost_per_1k_writes +
  reads/1000·cost_per_1k_reads + storage_gb·cost_per_gb_month +
  connections·hours·cost_per_connection_hour + Σ transfer_gb·rate``.
  Spot capacity is cheaper because it can be taken away: the same formula
  at its (lower) listed prices; the table says ``spot`` so a caller can
  keep critical work off it.
* ``provisioned``, ``reserved``: the capacity held for the whole period,
  used or not: writes are billed as ``max(writes, write_rps·3600·hours)``
  and reads as ``max(reads, read_rps·3600·hours)``, where ``write_rps`` /
  ``read_rps`` are the rates the workload provisions (absent: none beyond
  what it uses, so the operations themselves are billed). Reserved is a
  long-term commitment at the listed, discounted prices; within a month it
  bills like provisioned capacity. Storage, connections and transfer are
  billed as above.

``hours`` is the period (connection-hours and provisioned capacity); absent,
it is the page's month, 720 hours — never 0, which would price connections
at $0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from .errors import RegistryError

__all__ = ["estimate_cost", "validate_workload", "WORKLOAD_KEYS", "COST_TERMS", "MONTH_HOURS", "CAPACITY_MODELS"]

WORKLOAD_KEYS = ("writes", "reads", "storage_gb", "connections", "hours",
                 "transfer_gb_intra_region", "transfer_gb_inter_region", "transfer_gb_internet",
                 "write_rps", "read_rps")
MONTH_HOURS = 720.0  # the page's month (its example: 2500 conn * 720 hours)
# Models billed on the capacity held for the period rather than on what is used.
CAPACITY_MODELS = ("provisioned", "reserved")

# term → (price field, workload keys whose product is the priced quantity, divisor).
# The seed prices operations per 1,000 and connections per connection-hour.
_TERMS: dict[str, tuple[str, tuple[str, ...], float]] = {
    "writes": ("cost_per_1k_writes", ("writes",), 1000.0),
    "reads": ("cost_per_1k_reads", ("reads",), 1000.0),
    "storage": ("cost_per_gb_month", ("storage_gb",), 1.0),
    "connections": ("cost_per_connection_hour", ("connections", "hours"), 1.0),
    "transfer_intra_region": ("cost_per_gb_intra_region", ("transfer_gb_intra_region",), 1.0),
    "transfer_inter_region": ("cost_per_gb_inter_region", ("transfer_gb_inter_region",), 1.0),
    "transfer_internet": ("cost_per_gb_internet", ("transfer_gb_internet",), 1.0),
}
COST_TERMS = tuple(_TERMS)
_COST_FIELDS = ("cost_per_1k_writes", "cost_per_1k_reads", "cost_per_gb_month", "cost_per_connection_hour")
_TRANSFER_FIELDS = ("cost_per_gb_intra_region", "cost_per_gb_inter_region", "cost_per_gb_internet")


def validate_workload(workload: Any) -> dict[str, float]:
    """The workload as ``{key: float}`` with every key present (absent → 0,
    but ``hours`` → 720, the page's month).

    Raises RegistryError listing every unknown key and every value that is
    not a finite number >= 0, located at ``workload $.key``.
    """
    if not isinstance(workload, Mapping):
        raise RegistryError(f"Expected a mapping of workload quantities, got `{type(workload).__name__}`",
                            "workload $")
    errors: list[tuple[str, str]] = []
    out = dict.fromkeys(WORKLOAD_KEYS, 0.0)
    out["hours"] = MONTH_HOURS
    for key, value in workload.items():
        where = f"workload $.{str(key)[:60]}"
        if key not in out:
            errors.append((where, f"Unknown field `{str(key)[:60]}`; expected one of "
                                  + ", ".join(f"`{k}`" for k in WORKLOAD_KEYS)))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append((where, f"Expected a number >= 0, got `{type(value).__name__}`"))
            continue
        try:
            number = float(value)
        except OverflowError:
            errors.append((where, "Expected a finite number, got a number too large for a float"))
            continue
        if not math.isfinite(number):
            errors.append((where, f"Expected a finite number, got `{value}`"))
        elif number < 0:
            errors.append((where, f"Expected a number >= 0, got `{value}`"))
        else:
            out[key] = number
    if errors:
        raise RegistryError(errors)
    return out


def _price_table(registrations: Iterable[Any]) -> pl.DataFrame:
    """One row per backend: its id and every price (null when not declared)."""
    rows: dict[str, list[Any]] = {"backend_id": [], "cost_model": [],
                                  **{f: [] for f in (*_COST_FIELDS, *_TRANSFER_FIELDS)}}
    for reg in registrations:
        rows["backend_id"].append(reg.backend_id)
        rows["cost_model"].append(reg.cost.cost_model if reg.cost is not None else None)
        for name in _COST_FIELDS:
            value = getattr(reg.cost, name, None) if reg.cost is not None else None
            rows[name].append(None if value is None else float(value))
        transfer = reg.transfer  # G4: under `cost` or at the top level
        for name in _TRANSFER_FIELDS:
            value = getattr(transfer, name, None) if transfer is not None else None
            rows[name].append(None if value is None else float(value))
    schema = {"backend_id": pl.String, "cost_model": pl.String,
              **{f: pl.Float64 for f in (*_COST_FIELDS, *_TRANSFER_FIELDS)}}
    return pl.DataFrame(rows, schema=schema)


def estimate_cost(registry: Any, workload: Mapping[str, Any]) -> pl.DataFrame:
    """Monthly cost of ``workload`` on every backend of ``registry``.

    ``workload`` keys (absent means 0): ``writes``, ``reads`` (operations per
    month), ``storage_gb``, ``connections`` and ``hours`` (priced as
    connection-hours; ``hours`` absent: 720, the page's month),
    ``transfer_gb_intra_region``, ``transfer_gb_inter_region``,
    ``transfer_gb_internet``, and ``write_rps`` / ``read_rps`` (the rates
    provisioned, billed by provisioned and reserved backends: see the
    module docstring for each cost model's formula).

    Returns a DataFrame with ``backend_id`` (String), one Float64 column per
    term (``writes``, ``reads``, ``storage``, ``connections``,
    ``transfer_intra_region``, ``transfer_inter_region``,
    ``transfer_internet``), ``total`` (Float64), in US dollars, unrounded,
    and ``cost_model`` (String, null when the backend names none).
    A term whose quantity is 0 costs 0 whatever the price; a term with a
    quantity but no declared price is null and so is the row's ``total``.
    Rows are sorted cheapest first, null totals last, ties by ``backend_id``.
    """
    quantities = validate_workload(workload)
    prices = _price_table(registry[bid] for bid in registry.backend_ids)
    terms = []
    held = pl.col("cost_model").is_in(list(CAPACITY_MODELS)).fill_null(False)
    for term, (price, keys, divisor) in _TERMS.items():
        quantity = math.prod(quantities[k] for k in keys)
        rate = {"writes": "write_rps", "reads": "read_rps"}.get(term)
        # Capacity models bill what is held over the period when it exceeds what is used.
        capacity = quantities[rate] * 3600.0 * quantities["hours"] if rate is not None else 0.0
        if max(quantity, capacity) == 0.0:
            terms.append(pl.lit(0.0, dtype=pl.Float64).alias(term))
            continue
        # The seed's order of operations: writes/1000 · price; 0 of a term costs 0 whatever the price.
        def billed(amount: float) -> pl.Expr:
            return pl.lit(0.0, dtype=pl.Float64) if amount == 0.0 else \
                pl.lit(amount / divisor, dtype=pl.Float64) * pl.col(price)
        if capacity > quantity:
            terms.append(pl.when(held).then(billed(capacity)).otherwise(billed(quantity)).alias(term))
        else:
            terms.append(billed(quantity).alias(term))
    table = prices.select(pl.col("backend_id"), *terms)
    # `+` propagates nulls (sum_horizontal would skip them and invent a total).
    total = pl.col(COST_TERMS[0])
    for term in COST_TERMS[1:]:
        total = total + pl.col(term)
    table = table.with_columns(total.alias("total"), prices.get_column("cost_model"))
    return table.sort(["total", "backend_id"], nulls_last=True)
