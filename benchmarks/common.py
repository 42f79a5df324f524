"""Seeded, cached workloads shared by the asv suite, compare.py and the micro-benchmarks.

Data flow: ``prism_match.synthetic`` documents (seeded) → a JSON cache on disk
(generating 100,000 documents takes seconds; every asv benchmark runs in its
own process, so an in-memory cache alone would pay that again and again) →
``load_registry`` → a per-process cache of compiled registries. The cache key
includes a hash of the package's source, so a change to the generator or the
compiler never benchmarks stale data.

Nothing here is timed: benchmarks call these in ``setup``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
import yaml

import prism_match
from prism_match import Registry, load_registry
from prism_match.synthetic import generate_registry, generate_slots

__all__ = ["SEED", "DICT_PATH_LIMIT", "SELECTIVITY_SLOTS", "cache_dir", "documents", "registry",
           "registry_source", "backend_frame", "slots", "selectivity_slot", "has_api", "require_api", "has_from_polars"]

SEED = 20240601
# Building a registry goes through one dict and one Struct per backend; past
# this size the library's columnar constructor (``Registry.from_polars``) is
# the way in, and the 1,000,000 benchmarks use it when it exists.
DICT_PATH_LIMIT = 100_000

# Three slots of known selectivity on the synthetic registries: about 91 %,
# 29 % and 0.25 % of backends eligible (measured at 10,000 backends).
SELECTIVITY_SLOTS: dict[str, dict[str, Any]] = {
    "broad": {"slot_name": "cache"},
    "medium": {
        "slot_name": "kv",
        "capabilities": ["get", "set"],
        "interfaces": ["KeyValueBasicInterface"],
        "performance": {"min_write_rps": 1000},
        "preferred_region": "us-east-1",
    },
    "narrow": {  # the seed's storage slot, with region and compliance filters
        "slot_name": "storage",
        "capabilities": ["get", "set", "delete"],
        "interfaces": ["KeyValueBasicInterface", "TransactionalInterface"],
        "performance": {"min_write_rps": 10000, "min_read_rps": 50000, "max_latency_p99": "25ms",
                        "requires_transactions": True},
        "preferred_region": "us-east-1",
        "regions": ["us-east-1", "us-west-2"],
        "compliance": ["pci"],
    },
}


def has_api(name: str) -> bool:
    """Whether ``Registry`` has grown ``name`` yet (match_many, assign, …)."""
    return hasattr(Registry, name)


def has_from_polars() -> bool:
    return has_api("from_polars")


def require_api(name: str) -> None:
    """Skip a benchmark whose API is not built yet (asv skips on NotImplementedError)."""
    if not has_api(name):
        raise NotImplementedError(f"Registry.{name} is not available in this build")


@functools.lru_cache(maxsize=1)
def _source_hash() -> str:
    root = Path(prism_match.__file__).parent
    digest = hashlib.sha256(prism_match.__version__.encode())
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*.pyx")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir() -> Path:
    """``$PRISM_BENCH_CACHE`` or ``benchmarks/.cache`` (git-ignored)."""
    path = Path(os.environ.get("PRISM_BENCH_CACHE") or Path(__file__).resolve().parent / ".cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_file(stem: str, suffix: str, make_bytes) -> Path:
    path = cache_dir() / f"{stem}-{_source_hash()}{suffix}"
    if not path.exists():
        tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
        tmp.write_bytes(make_bytes())
        os.replace(tmp, path)  # atomic: concurrent benchmark processes never read half a file
    return path


def _documents_file(n: int, seed: int) -> Path:
    return _cached_file(f"registry-{n}-{seed}", ".json",
                        lambda: orjson.dumps({"backends": generate_registry(n, seed)}))


def documents(n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``n`` synthetic registration documents (fresh dicts on every call)."""
    return orjson.loads(_documents_file(n, seed).read_bytes())["backends"]


def registry_source(n: int, fmt: str, seed: int = SEED) -> Any:
    """What ``load_registry`` reads in the load benchmarks: a JSON file, a
    multi-document YAML file written as people write it (block style, flow
    lists as in the seed's examples), or a list of dicts."""
    if fmt == "json":
        return str(_documents_file(n, seed))
    if fmt == "yaml":
        def make() -> bytes:
            text = yaml.dump_all(documents(n, seed), Dumper=yaml.CSafeDumper, sort_keys=False)
            return text.encode()
        return str(_cached_file(f"registry-{n}-{seed}", ".yaml", make))
    if fmt == "dicts":
        return documents(n, seed)
    raise ValueError(f"unknown format {fmt!r}")


@functools.lru_cache(maxsize=4)
def registry(n: int, seed: int = SEED) -> Registry:
    """A compiled synthetic registry of ``n`` backends, cached per process.

    Callers that ``update`` it change the shared copy; the update benchmarks
    write values a match never depends on for correctness.
    """
    if n <= DICT_PATH_LIMIT:
        return load_registry(documents(n, seed))
    return _large_registry(n, seed)


def backend_frame(n: int, seed: int = SEED):
    """A polars table of ``n`` backends (``Registry.to_polars`` layout): the
    registry of up to 100,000 backends, tiled with fresh ids past that."""
    import polars as pl

    base = registry(min(n, DICT_PATH_LIMIT), seed).to_polars()
    if n <= base.height:
        return base.head(n)
    copies = -(-n // base.height)
    frames = [base.with_columns(pl.col("backend_id") + f"-{c}") for c in range(copies)]
    return pl.concat(frames).head(n)


def _large_registry(n: int, seed: int) -> Registry:
    """Past the dict path: build through ``Registry.from_polars``."""
    if not has_from_polars():
        raise NotImplementedError(f"{n:,} backends need Registry.from_polars")
    return Registry.from_polars(backend_frame(n, seed))


def slots(m: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``m`` synthetic slot requirements of mixed selectivity (median about 6 %)."""
    return generate_slots(m, seed)


def selectivity_slot(name: str) -> dict[str, Any]:
    return SELECTIVITY_SLOTS[name]
