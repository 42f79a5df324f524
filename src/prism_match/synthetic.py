"""Seeded synthetic registries and slots, for tests, benchmarks and trials.

Realistic by construction: each backend type draws from its own capability
and interface pools, capacity and prices by type, some blocks missing (no
cost, no health, no latency data), usage sometimes above capacity, and a
share of *identical* backends under different ids (exact score ties). The
same seed gives the same documents on every machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from .schema import BACKEND_TYPES

__all__ = ["generate_registry", "generate_slots", "CAPABILITY_POOLS", "INTERFACE_POOLS", "REGIONS", "COMPLIANCE"]

CAPABILITY_POOLS: dict[str, tuple[str, ...]] = {
    "kafka": ("publish", "subscribe", "replay", "ack"),
    "nats": ("publish", "subscribe", "ack", "nack"),
    "postgres": ("get", "set", "delete", "scan", "batch_get", "batch_set", "transaction", "query", "watch"),
    "redis": ("get", "set", "delete", "ttl", "publish", "subscribe", "batch_get", "batch_set", "watch"),
    "sqlite": ("get", "set", "delete", "scan", "transaction", "query"),
    "neptune": ("get", "query", "graph_traversal"),
    "sqs": ("enqueue", "dequeue", "ack", "nack"),
    "s3": ("get", "set", "delete", "scan", "batch_get"),
    "memstore": ("get", "set", "delete", "ttl", "scan"),
}
INTERFACE_POOLS: dict[str, tuple[str, ...]] = {
    "kafka": ("PubSubInterface", "StreamingInterface"),
    "nats": ("PubSubInterface", "RequestReplyInterface"),
    "postgres": ("KeyValueBasicInterface", "KeyValueScanInterface", "TransactionalInterface", "QueryInterface",
                 "WatchInterface"),
    "redis": ("KeyValueBasicInterface", "TTLInterface", "PubSubInterface", "WatchInterface"),
    "sqlite": ("KeyValueBasicInterface", "KeyValueScanInterface", "TransactionalInterface", "QueryInterface"),
    "neptune": ("GraphInterface", "QueryInterface"),
    "sqs": ("QueueInterface",),
    "s3": ("ObjectStoreInterface", "KeyValueBasicInterface"),
    "memstore": ("KeyValueBasicInterface", "TTLInterface"),
}
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1", "ap-northeast-1")
COMPLIANCE = ("pci", "soc2", "hipaa", "gdpr")
_CONSISTENCY = {"postgres": "strong", "sqlite": "strong", "neptune": "session", "redis": "eventual",
                "memstore": "strong", "kafka": "bounded_staleness", "nats": "eventual", "sqs": "eventual",
                "s3": "strong"}
_MAX_WRITE = {"kafka": 1e6, "nats": 5e5, "postgres": 5e4, "redis": 5e5, "sqlite": 5e3, "neptune": 2e4,
              "sqs": 3e5, "s3": 3.5e3, "memstore": 1e6}
_STATUSES = ("healthy", "degraded", "unhealthy", "maintenance")
_STATUS_P = (0.8, 0.1, 0.05, 0.05)


def _rate(rng: np.random.Generator, base: float) -> int:
    return int(base * rng.choice((0.25, 0.5, 1.0, 2.0)))


def generate_registry(n: int, seed: int = 0, *, extra_capabilities: int = 0, duplicate_share: float = 0.05,
                      id_prefix: str = "") -> list[dict[str, Any]]:
    """``n`` registration documents (plain dicts, as a YAML file would give).

    ``extra_capabilities`` adds that many rarely-used capability names
    (``custom_0`` …), widening the vocabulary past one mask word.
    """
    rng = np.random.default_rng(seed)
    docs: list[dict[str, Any]] = []
    for i in range(n):
        if docs and rng.random() < duplicate_share:
            twin = dict(docs[int(rng.integers(len(docs)))])
            twin["backend_id"] = f"{id_prefix}{twin['backend_type']}-{i:07d}"
            docs.append(twin)
            continue
        btype = BACKEND_TYPES[int(rng.integers(len(BACKEND_TYPES)))]
        caps: list[Any] = []
        for name in CAPABILITY_POOLS[btype]:
            if rng.random() < 0.85:
                version = "v2" if rng.random() < 0.1 else "v1"
                if rng.random() < 0.3:
                    caps.append({"name": name, "version": version, "performance": {
                        "latency": {"p99_ms": float(rng.choice((2, 5, 10, 25, 50, 100)))}}})
                elif version == "v1":
                    caps.append(name)
                else:
                    caps.append({"name": name, "version": version})
        for j in range(extra_capabilities):
            if rng.random() < 0.05:
                caps.append(f"custom_{j}")
        ifcs = [name if rng.random() < 0.9 else {"name": name, "version": "v2"}
                for name in INTERFACE_POOLS[btype] if rng.random() < 0.85]
        max_w = _rate(rng, _MAX_WRITE[btype])
        max_r = max_w * int(rng.choice((2, 4, 5)))
        doc: dict[str, Any] = {
            "backend_id": f"{id_prefix}{btype}-{i:07d}",
            "backend_type": btype,
            "capabilities": caps,
            "interfaces": ifcs,
            "capacity": {"max_write_rps": max_w, "max_read_rps": max_r,
                         "max_storage": f"{int(rng.choice((50, 100, 500, 1000, 5000, 10000)))}GB",
                         "max_namespaces": int(rng.choice((50, 100, 500)))},
            "regions": sorted({REGIONS[int(x)] for x in rng.integers(len(REGIONS), size=int(rng.integers(1, 3)))}),
            "compliance": sorted({COMPLIANCE[int(x)] for x in rng.integers(len(COMPLIANCE), size=int(rng.integers(0, 3)))}),
        }
        if rng.random() < 0.9:
            load = float(rng.choice((0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.1)))
            doc["current"] = {"write_rps": int(max_w * load), "read_rps": int(max_r * load),
                              "storage_used": f"{int(rng.integers(0, 50))}GB",
                              "namespace_count": int(rng.integers(0, 50))}
        if rng.random() < 0.8:
            doc["cost"] = {"cost_model": "pay_per_use",
                           "cost_per_1k_writes": float(rng.choice((0.0005, 0.001, 0.002, 0.01, 0.5))),
                           "cost_per_1k_reads": float(rng.choice((0.0001, 0.0005, 0.001))),
                           "cost_per_gb_month": float(rng.choice((0.023, 0.1, 0.25)))}
        if rng.random() < 0.85:
            doc["health"] = {"status": str(rng.choice(_STATUSES, p=_STATUS_P)),
                             "uptime_percent_24h": float(rng.choice((95.0, 99.0, 99.5, 99.9, 99.95, 100.0)))}
        if rng.random() < 0.7:
            doc["consistency"] = _CONSISTENCY[btype]
        docs.append(doc)
    return docs


def generate_slots(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` slot requirements of mixed selectivity, drawn from the same pools."""
    rng = np.random.default_rng(seed + 1_000_003)
    slots: list[dict[str, Any]] = []
    for i in range(n):
        btype = BACKEND_TYPES[int(rng.integers(len(BACKEND_TYPES)))]
        caps = [c for c in CAPABILITY_POOLS[btype] if rng.random() < 0.3]
        ifcs = [x for x in INTERFACE_POOLS[btype] if rng.random() < 0.4]
        slot: dict[str, Any] = {"slot_name": f"slot-{i:06d}", "capabilities": caps, "interfaces": ifcs,
                                "performance": {"min_write_rps": int(rng.choice((0, 100, 1000, 10000))),
                                                "min_read_rps": int(rng.choice((0, 1000, 50000)))}}
        if rng.random() < 0.5:
            slot["preferred_region"] = REGIONS[int(rng.integers(len(REGIONS)))]
        if rng.random() < 0.2:
            slot["regions"] = [REGIONS[int(rng.integers(len(REGIONS)))]]
        if rng.random() < 0.1:
            slot["compliance"] = [COMPLIANCE[int(rng.integers(len(COMPLIANCE)))]]
        if rng.random() < 0.1:
            slot["performance"]["max_latency_p99"] = f"{int(rng.choice((10, 25, 50)))}ms"
        if rng.random() < 0.1:
            slot["min_storage"] = f"{int(rng.choice((10, 100, 1000)))}GB"
        if rng.random() < 0.1:
            slot["optional"] = True
        slots.append(slot)
    return slots


def generate_frame(n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` backends as a table for ``Registry.from_polars``, drawn with
    vectorized numpy and polars (a million rows in seconds, where the dict path
    would take minutes). Same pools and
    missing-data shares as :func:`generate_registry`, not the same rows."""
    rng = np.random.default_rng(seed)
    types = np.array(BACKEND_TYPES)
    t = rng.integers(len(types), size=n)

    def as_lists(rows: np.ndarray, items: pl.Series) -> pl.Series:
        # (row, item) pairs → one list per row, in Rust.
        pairs = pl.DataFrame({"row": rows.astype(np.int64), "item": items})
        grouped = pairs.group_by("row", maintain_order=True).agg("item")
        full = pl.DataFrame({"row": np.arange(n, dtype=np.int64)}).join(grouped, on="row", how="left")
        return full["item"].fill_null(pl.lit([], dtype=pl.List(pl.String)))

    def pick_lists(pools: dict[str, tuple[str, ...]], p: float) -> pl.Series:
        table: list[str] = []  # every item as a string once; rows carry codes
        all_rows, all_codes = [], []
        for ti, name in enumerate(BACKEND_TYPES):
            rows = np.flatnonzero(t == ti)
            base = len(table)
            for item in pools[name]:
                table += [item, f"{item}@v2"]
            keep = rng.random((len(rows), len(pools[name]))) < p
            v2 = rng.random((len(rows), len(pools[name]))) < 0.1
            r, c = np.nonzero(keep)
            all_rows.append(rows[r])
            all_codes.append(base + 2 * c + v2[r, c])
        rows = np.concatenate(all_rows)
        order = np.argsort(rows, kind="stable")
        return as_lists(rows[order], pl.Series(table, dtype=pl.String).gather(np.concatenate(all_codes)[order]))

    max_w = np.array([_MAX_WRITE[x] for x in BACKEND_TYPES])[t] * rng.choice((0.25, 0.5, 1.0, 2.0), size=n)
    max_r = max_w * rng.choice((2, 4, 5), size=n)
    load = rng.choice((0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.1), size=n)
    has_cost = rng.random(n) < 0.8
    has_health = rng.random(n) < 0.85
    status = np.where(has_health, rng.choice(_STATUSES, p=_STATUS_P, size=n), "unknown")
    region_lists = as_lists(np.arange(n), pl.Series(REGIONS).gather(rng.integers(len(REGIONS), size=n)))
    comp_rows, comp_cols = np.nonzero(rng.random((n, len(COMPLIANCE))) < 0.25)
    compliance = as_lists(comp_rows, pl.Series(COMPLIANCE).gather(comp_cols))
    ids = pl.Series(types[t]) + "-" + pl.Series(np.arange(n)).cast(pl.String).str.zfill(7)
    return pl.DataFrame({
        "backend_id": ids,
        "backend_type": types[t],
        "health_status": status,
        "capabilities": pick_lists(CAPABILITY_POOLS, 0.85),
        "interfaces": pick_lists(INTERFACE_POOLS, 0.85),
        "regions": region_lists,
        "compliance": compliance,
        "max_write_rps": max_w,
        "max_read_rps": max_r,
        "write_rps": max_w * load,
        "read_rps": max_r * load,
        "max_storage": rng.choice((50, 100, 500, 1000, 5000, 10000), size=n) * 1e9,
        "storage_used": rng.integers(0, 50, size=n) * 1e9,
        "max_namespaces": rng.choice((50.0, 100.0, 500.0), size=n),
        "namespace_count": rng.integers(0, 50, size=n).astype(float),
        "cost_per_1k_writes": pl.Series(np.where(has_cost, rng.choice((0.0005, 0.001, 0.002, 0.01, 0.5), size=n),
                                                 np.nan)).fill_nan(None),
        "uptime_percent_24h": pl.Series(np.where(has_health, rng.choice((95.0, 99.0, 99.9, 100.0), size=n),
                                                 np.nan)).fill_nan(None),
    })
