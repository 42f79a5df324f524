"""Many slots at once: ``match_many`` (independent choices), and reading
slot files.

``match_many`` prepares every slot first (mappings through the core's
content cache), takes one snapshot of the live columns, and hands the whole
batch to the kernel: ``topk_many`` runs over slots in parallel (OpenMP, GIL
released, chunks of ``CHUNK`` slots between progress callbacks).
Slot files are read by slot_files.py (re-exported here for old imports);
capacity-aware placement (``assign``) is placement.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from .engine import Engine
from .errors import RegistryError, positive_int
from .explanations import add_explanations
from .slot_files import known_slot_columns
from .slot_files import LIST_FIELDS, is_slot_table, load_slots, slot_table_items, slots_from_frame, split_list  # noqa: F401

if TYPE_CHECKING:
    import polars as pl

    from .slot_details import PreparedSlot

__all__ = ["match_many", "prepare_all", "resolve_threads", "slots_from_frame", "load_slots", "slot_table_items",
           "is_slot_table", "split_list", "CHUNK"]

CHUNK = 256
# Below this many (slot, backend) pairs per thread, waking another thread
# costs more than the work it takes over (on a busy machine, milliseconds).
PAIRS_PER_THREAD = 1 << 15
Progress = Callable[[int, int], None]


def resolve_threads(threads: int | None) -> int:
    """``threads``, else ``$PRISM_MATCH_THREADS``, else every core."""
    where = "threads"
    if threads is None:
        env = os.environ.get("PRISM_MATCH_THREADS", "").strip()
        if env:
            where = "$PRISM_MATCH_THREADS"
            try:
                threads = int(env)
            except ValueError:
                raise RegistryError(f"Expected a whole number, got `{env[:20]}`", where) from None
        else:
            threads = os.cpu_count() or 1
    return positive_int(threads, "threads", where)


def prepare_all(engine: Engine, slots: Any) -> list[PreparedSlot]:
    """Every slot of a batch prepared (a list of slots or a polars frame of
    requirements); all problems reported together."""
    import polars as pl
    if isinstance(slots, pl.DataFrame):
        slots = slots_from_frame(slots)
    if isinstance(slots, (str, bytes, Mapping)) or not isinstance(slots, Iterable):
        raise RegistryError(f"Expected a list of slots or a DataFrame, got `{type(slots).__name__}`", "slots")
    prepared = []
    errors: list[tuple[str, str]] = []
    for i, slot in enumerate(slots):
        try:
            prepared.append(engine.prepare(slot))
        except RegistryError as exc:
            errors += [(f"slots[{i}] {loc}", msg) for loc, msg in exc.errors]
    if errors:
        raise RegistryError(errors)
    return prepared


def match_many(engine: Engine, slots: Any, k: int = 1, *, threads: int | None = None,
               progress: Progress | None = None, strict: bool = True, diagnose: bool = False,
               reasons: bool = False) -> pl.DataFrame:
    """Top-``k`` per slot, slots choosing independently (no capacity consumed).

    Returns one row per (slot, rank): ``slot_index, slot_name, rank,
    backend_id, score, performance, cost, availability, region``; slots in
    input order, ranks from 1. A slot with no eligible backend gets one row
    with null rank, backend and scores, so every slot appears.

    ``threads``: at most this many (default ``$PRISM_MATCH_THREADS``, else
    every core); a batch too small to share runs on one. The answer is the
    same for any count. ``progress(done, total)`` is called after every
    chunk of ``CHUNK`` slots.

    ``strict=False``: a DataFrame's columns that are no slot field are
    dropped, named once in a warning on the ``prism_match`` logger.
    ``diagnose=True`` adds ``diagnosis`` (an unbound slot's explain text),
    ``reasons=True`` adds ``reasons`` (each match's); see explanations.py.
    """
    import polars as pl

    k = positive_int(k, "k", "match_many")
    n_threads = resolve_threads(threads)
    if not strict and isinstance(slots, pl.DataFrame):
        slots = known_slot_columns(slots)
    prepared = prepare_all(engine, slots)
    m = len(prepared)
    # Slots the kernel sees as the same (names aside) are matched once.
    unique, inverse = _distinct(prepared)
    u = len(unique)
    live = engine.columns.live
    n_threads = max(1, min(n_threads, u * live // PAIRS_PER_THREAD))
    kk = max(1, min(k, live))
    idx = np.full((u, kk), -1, dtype=np.int64)
    score = np.zeros((u, kk))
    perf = np.zeros((u, kk))
    region = np.zeros((u, kk))
    count = np.zeros(u, dtype=np.int64)
    snap = _core.LiveSnapshot(engine.core)
    policy = engine.core_policy
    # One parallel region for the whole batch unless someone watches progress:
    # every region ends in a barrier, and chunks only exist to report. A
    # chunk of input slots runs the distinct slots first seen in it (their
    # numbers grow in input order: a contiguous range).
    step = CHUNK if progress is not None else max(m, 1)
    seen = np.maximum.accumulate(inverse) + 1 if m else inverse
    for start in range(0, m, step):
        stop = min(m, start + step)
        first, last = (int(seen[start - 1]) if start else 0), int(seen[stop - 1])
        if live and last > first:
            _core.topk_many(snap, unique, policy, kk, first, last, idx, score, perf, region, count, n_threads)
        if progress is not None:
            progress(stop, m)
    if u < m:
        idx, score, perf, region, count = idx[inverse], score[inverse], perf[inverse], region[inverse], count[inverse]
    frame = _frame(engine, prepared, snap, idx, score, perf, region, count)
    if diagnose or reasons:
        frame = add_explanations(engine, prepared, frame, kk, diagnose=diagnose, reasons=reasons)
    return frame


def _distinct(prepared: list[PreparedSlot]) -> tuple[list[PreparedSlot], np.ndarray]:
    """The slots with distinct kernel keys (first of each, in order) and,
    for every slot, the index of its distinct one (int64[m])."""
    first: dict[bytes, int] = {}
    inverse = np.fromiter((first.setdefault(p.kernel_key(), len(first)) for p in prepared), dtype=np.int64,
                          count=len(prepared))
    if len(first) == len(prepared):
        return prepared, inverse
    unique: list[PreparedSlot] = []
    seen = 0
    for p, j in zip(prepared, inverse.tolist()):
        if j == seen:
            unique.append(p)
            seen += 1
    return unique, inverse


def _frame(engine: Engine, prepared: list[PreparedSlot], snap: Any, idx: np.ndarray, score: np.ndarray,
           perf: np.ndarray, region: np.ndarray, count: np.ndarray) -> pl.DataFrame:
    import polars as pl

    m, kk = idx.shape
    rank = np.arange(kk)[None, :]
    keep = (rank < count[:, None]) | ((count[:, None] == 0) & (rank == 0))
    rows_slot, rows_rank = np.nonzero(keep)
    hit = rows_rank < count[rows_slot]
    picked = idx[rows_slot, rows_rank]
    safe = np.where(hit, picked, 0)
    cols = engine.columns
    names = pl.Series("slot_name", [p.slot_name for p in prepared], dtype=pl.String)
    ids = cols.id_series()
    avail = snap.arrays[4]

    empty = np.zeros(len(safe))
    frame = pl.DataFrame({
        "slot_index": rows_slot.astype(np.int64),
        "slot_name": names.gather(rows_slot) if m else names,
        "rank": (rows_rank + 1).astype(np.int64),
        "backend_id": ids.gather(safe) if len(ids) else pl.Series([None] * len(safe), dtype=pl.String),
        "score": score[rows_slot, rows_rank],
        "performance": perf[rows_slot, rows_rank],
        "cost": cols.cost_score[safe] if len(ids) else empty,
        "availability": avail[safe] if len(ids) else empty,
        "region": region[rows_slot, rows_rank],
    })
    if not hit.all():
        # Slots without a match keep their one row, with nulls after the name
        # (one pass over the columns).
        found = pl.Series(hit)
        frame = frame.with_columns(pl.when(found).then(pl.col(c)).alias(c) for c in _MATCH_COLUMNS)
    return frame


_MATCH_COLUMNS = ("rank", "backend_id", "score", "performance", "cost", "availability", "region")



