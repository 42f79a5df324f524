"""Past one machine: ``match_many`` over a Dask DataFrame of slots.

The optional extra ``prism_match[dask]``. The compiled registry travels as a
snapshot (``Registry.save``): either a path every worker can read (shared
storage), or the snapshot's bytes, broadcast once to every worker with
``client.scatter`` when a distributed client is running. Each worker process
loads a snapshot once and keeps it in a module-level cache, so partitions
after the first cost no loading. Every partition of slots (pandas) goes
pandas → polars → slot mappings → ``Registry.match_many`` (the same kernel
as on one machine) → pandas, and the result is a Dask DataFrame with the
columns of ``match_many``.

Capacity-aware ``assign`` is sequential by nature (each placement changes
what the next slot sees) and stays on one machine; docs/scaling.md shows
how to split it by disjoint backend pools.
"""

from __future__ import annotations

import io
import os
import threading
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import polars as pl

from .batch import slots_from_frame
from .errors import RegistryError, positive_int
from .registry import Registry, load_snapshot

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

__all__ = ["match_many_dask", "result_meta", "SnapshotRef", "cache_info", "RESULT_DTYPES"]

# The columns of match_many as pandas dtypes: nullable where a slot without
# a match has nulls, so every partition has the same dtypes as the meta.
RESULT_DTYPES = {
    "slot_index": "int64", "slot_name": "string[pyarrow]", "rank": "Int64", "backend_id": "string[pyarrow]",
    "score": "Float64", "performance": "Float64", "cost": "Float64", "availability": "Float64",
    "region": "Float64",
}

_CACHE_SIZE = 4          # registries kept per worker process
_cache: OrderedDict[tuple, Registry] = OrderedDict()
_cache_lock = threading.Lock()
_loads = 0


def cache_info() -> dict[str, int]:
    """This process's snapshot cache: how many snapshots it ``loaded`` in
    all, how many it keeps (``cached``)."""
    with _cache_lock:
        return {"loaded": _loads, "cached": len(_cache)}


class SnapshotRef:
    """A compiled registry in transit: a snapshot path (``data`` None) or the
    snapshot's bytes, with a ``token`` that names it in each worker's cache."""

    __slots__ = ("token", "path", "data")

    def __init__(self, token: str, path: str | None = None, data: bytes | None = None):
        self.token, self.path, self.data = token, path, data

    def __getstate__(self) -> tuple:
        return self.token, self.path, self.data

    def __setstate__(self, state: tuple) -> None:
        self.token, self.path, self.data = state

    def key(self) -> tuple:
        if self.data is not None:
            return ("bytes", self.token)
        # A path is named by its file's identity too: a snapshot saved again
        # under the same name is loaded again.
        st = os.stat(self.path)
        return ("path", self.path, st.st_mtime_ns, st.st_size)

    def registry(self) -> Registry:
        """The registry, loaded at most once per process (per snapshot).
        Loading holds the lock: the tasks of a worker that start together
        wait for one load rather than each doing it."""
        global _loads
        key = self.key()
        with _cache_lock:
            found = _cache.get(key)
            if found is None:
                found = _cache[key] = load_snapshot(self.path if self.data is None else self.data)
                _loads += 1
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
            _cache.move_to_end(key)
            return found


def result_meta() -> pd.DataFrame:
    """An empty pandas frame with the result's columns and dtypes."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in RESULT_DTYPES.items()})


def _match_partition(frame: pd.DataFrame, ref: SnapshotRef, k: int, threads: int) -> pd.DataFrame:
    """One partition: pandas slots → polars → match_many → pandas. ``slot_index``
    is the slot's index label in the partition (its row in the whole frame
    when the Dask DataFrame has a unique index)."""
    registry = ref.registry()
    slots = slots_from_frame(pl.from_pandas(frame.reset_index(drop=True)))
    result = registry.match_many(slots, k, threads=threads)
    labels = pl.Series(frame.index.to_numpy())
    result = result.with_columns(labels.gather(result["slot_index"]).cast(pl.Int64).alias("slot_index"))
    return result.to_pandas().astype(RESULT_DTYPES)


def _active_client() -> Any:
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client running: the local schedulers share memory
        return None


def match_many_dask(registry_or_snapshot_path: Registry | str | os.PathLike, slots_ddf: dd.DataFrame, k: int = 1,
                    *, threads: int = 1, client: Any = None) -> dd.DataFrame:
    """Top-``k`` for every slot of a Dask DataFrame, partition by partition.

    ``registry_or_snapshot_path``: a Registry (its snapshot bytes are
    broadcast once to every worker), or the path of a ``Registry.save``
    snapshot every worker can read (each worker loads it once).
    ``slots_ddf``: requirement columns as ``match_many`` reads a polars
    DataFrame (list columns for capabilities and interfaces, flat
    ``min_write_rps`` or ``performance.min_write_rps`` columns). The index
    must be integers; it becomes ``slot_index`` (use a unique index).
    ``threads``: kernel threads per task (Dask already runs tasks in
    parallel). Returns a Dask DataFrame with the columns of ``match_many``
    (dtypes in RESULT_DTYPES); nothing is computed until asked.
    """
    import dask.dataframe as dd

    k = positive_int(k, "k", "match_many_dask")
    threads = positive_int(threads, "threads", "match_many_dask")
    if not isinstance(slots_ddf, dd.DataFrame):
        raise RegistryError(f"Expected a Dask DataFrame of slots, got `{type(slots_ddf).__name__}`",
                            "match_many_dask")
    if isinstance(registry_or_snapshot_path, Registry):
        buffer = io.BytesIO()
        registry_or_snapshot_path.save(buffer)
        ref: Any = SnapshotRef(uuid.uuid4().hex, data=buffer.getvalue())
        client = client if client is not None else _active_client()
        if client is not None:
            # Once per worker, not once per task.
            ref = client.scatter(ref, broadcast=True, hash=False)
    elif isinstance(registry_or_snapshot_path, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(registry_or_snapshot_path))
        if not os.path.isfile(path):  # fail here rather than in every task
            raise RegistryError("No such file", path)
        ref = SnapshotRef(uuid.uuid4().hex, path=path)
    else:
        raise RegistryError("Expected a Registry or a snapshot path, got "
                            f"`{type(registry_or_snapshot_path).__name__}`", "match_many_dask")
    return slots_ddf.map_partitions(_match_partition, ref, k, threads, meta=result_meta(),
                                    enforce_metadata=False, align_dataframes=False)
