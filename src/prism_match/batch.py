"""Many slots at once: ``match_many`` (independent choices) and ``assign``
(capacity-aware placement in order).

Both prepare every slot first (mappings through the registry's content
cache), take one snapshot of the live columns, and hand the whole batch to the
kernel: ``topk_many`` runs over slots in parallel (OpenMP, GIL released,
chunks of ``CHUNK`` slots between progress callbacks); ``assign_run`` places
slots one after another, consuming what each placement takes.
``load_slots`` reads slot files (YAML/JSON documents, CSV/NDJSON/Parquet
tables through polars) into validated requirements for either.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import polars as pl

from . import _core, vectorized
from .errors import RegistryError, positive_int
from .loading import load_documents, validate_documents
from .results import Diagnosis, diagnose
from .schema import SlotRequirement

if TYPE_CHECKING:
    from .prepare import PreparedSlot
    from .registry import Registry

__all__ = ["match_many", "assign", "resolve_threads", "Assignment", "Binding", "Unplaced", "PlacementError",
           "slots_from_frame", "load_slots", "slot_table_items", "is_slot_table", "split_list", "CHUNK"]

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


# Requirement fields that hold lists. In a table they may also be one string:
# a CSV cell separated by ``;``, ``,``, ``|`` or spaces, or a list written out
# as JSON or Python (``["get", "set"]``; Dask turns list columns of pandas
# frames into such strings by default). Names never hold these characters.
LIST_FIELDS = ("capabilities", "interfaces", "regions", "compliance", "backend_types", "health_statuses")
_PERFORMANCE_FIELDS = ("min_write_rps", "min_read_rps", "max_latency_p99", "requires_transactions",
                       "requires_atomic_writes")
_LIST_SPLIT = re.compile(r"[\s,;|\[\]'\"]+")


def split_list(text: str) -> list[str]:
    """A list written as one string (``get;set``, ``get, set``, ``["get", "set"]``)."""
    return [part for part in _LIST_SPLIT.split(text) if part]


def _without_nulls(value: Any) -> Any:
    # A struct column gives every row every field, null where a row had none;
    # a null is "not given", never a value, so it is dropped at every depth.
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def slots_from_frame(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of a requirements table → slot mappings, one per row.

    Nulls are dropped (at every depth of struct and list columns); list
    fields are list columns, or strings split on ``;``/``,``/``|``/spaces
    (brackets and quotes of a written-out list are dropped);
    performance fields may be a ``performance`` struct column, flat columns
    (``min_write_rps``) or dotted ones (``performance.min_write_rps``).
    """
    # Each column's role is settled once, not per cell: its key, whether it
    # goes into ``performance``, whether a string in it is a written-out list,
    # and whether its values can hold nulls inside them (nested ones only).
    columns = []
    for name, dtype in frame.schema.items():
        if name.startswith("performance."):
            key, into_perf = name.split(".", 1)[1], True
        else:
            key, into_perf = name, name in _PERFORMANCE_FIELDS
        split = not into_perf and name in LIST_FIELDS
        clean = dtype.is_nested() or dtype == pl.Object
        columns.append((key, into_perf, split, clean))
    out = []
    for row in frame.iter_rows():
        slot: dict[str, Any] = {}
        perf: dict[str, Any] = {}
        for (key, into_perf, split, clean), value in zip(columns, row):
            if value is None:
                continue
            if clean:
                value = _without_nulls(value)
            if into_perf:
                perf[key] = value
            elif split and isinstance(value, str):
                slot[key] = split_list(value)
            else:
                slot[key] = value
        if perf:
            nested = slot.get("performance")
            slot["performance"] = {**nested, **perf} if isinstance(nested, dict) else perf
        out.append(slot)
    return out


_TABLE_READERS = {".csv": "read_csv", ".ndjson": "read_ndjson", ".jsonl": "read_ndjson", ".parquet": "read_parquet"}


def load_slots(path: str | os.PathLike) -> list[SlotRequirement]:
    """Every slot requirement of a file, validated, in file order.

    YAML/JSON (a file or a directory): a list of slot requirements,
    ``{slots: [...]}`` or the seed's ``slot_requirement:`` wrapper, through
    the registry loader (safe YAML, all errors with file and JSON path).
    CSV, NDJSON (``.ndjson``/``.jsonl``) and Parquet are tables read by
    polars, one slot per row (see :func:`slots_from_frame`); errors name the
    file and the row as ``$[i]``.
    """
    target = Path(path)
    if is_slot_table(target):
        items = slot_table_items(target)
    else:
        items = load_documents(target, list_key="slots", wrapper_keys=("slot_requirement",))
    return [value for _, value in validate_documents(items, SlotRequirement)]


def is_slot_table(path: Path) -> bool:
    return path.suffix.lower() in _TABLE_READERS


def slot_table_items(target: Path) -> list[tuple[str, str, Any]]:
    """Rows of a CSV/NDJSON/Parquet slot table as ``(file, $[i], mapping)``
    items, ready for ``validate_documents``."""
    reader = _TABLE_READERS[target.suffix.lower()]
    if not target.is_file():
        raise RegistryError("No such file", str(target))
    try:
        # Types are inferred from every row: a column of whole numbers
        # with one fraction far down must not fail half way.
        options = {} if reader == "read_parquet" else {"infer_schema_length": None}
        frame = getattr(pl, reader)(target, **options)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RegistryError(f"Cannot read slot table: {first[:200]}", str(target)) from None
    return [(str(target), f"$[{i}]", slot) for i, slot in enumerate(slots_from_frame(frame))]


def _prepare_all(registry: Registry, slots: Any) -> list[PreparedSlot]:
    if isinstance(slots, pl.DataFrame):
        slots = slots_from_frame(slots)
    if isinstance(slots, (str, bytes, Mapping)) or not isinstance(slots, Iterable):
        raise RegistryError(f"Expected a list of slots or a DataFrame, got `{type(slots).__name__}`", "slots")
    prepared = []
    errors: list[tuple[str, str]] = []
    for i, slot in enumerate(slots):
        try:
            prepared.append(registry._prepared(slot))
        except RegistryError as exc:
            errors += [(f"slots[{i}] {loc}", msg) for loc, msg in exc.errors]
    if errors:
        raise RegistryError(errors)
    return prepared


def match_many(registry: Registry, slots: Any, k: int = 1, *, threads: int | None = None,
               progress: Progress | None = None) -> pl.DataFrame:
    """Top-``k`` per slot, slots choosing independently (no capacity consumed).

    Returns one row per (slot, rank): ``slot_index, slot_name, rank,
    backend_id, score, performance, cost, availability, region``; slots in
    input order, ranks from 1. A slot with no eligible backend gets one row
    with null rank, backend and scores, so every slot appears.

    ``threads``: at most this many (default ``$PRISM_MATCH_THREADS``, else
    every core); a batch too small to share runs on one. The answer is the
    same for any count. ``progress(done, total)`` is called after every
    chunk of ``CHUNK`` slots.
    """
    k = positive_int(k, "k", "match_many")
    n_threads = resolve_threads(threads)
    prepared = _prepare_all(registry, slots)
    m = len(prepared)
    n_threads = max(1, min(n_threads, m * len(registry) // PAIRS_PER_THREAD))
    kk = max(1, min(k, len(registry)))
    idx = np.full((m, kk), -1, dtype=np.int64)
    score = np.zeros((m, kk))
    perf = np.zeros((m, kk))
    region = np.zeros((m, kk))
    count = np.zeros(m, dtype=np.int64)
    snap = _core.LiveSnapshot(registry._core)
    cores = prepared
    policy = registry._core_policy
    # One parallel region for the whole batch unless someone watches progress:
    # every region ends in a barrier, and chunks only exist to report.
    step = CHUNK if progress is not None else max(m, 1)
    for start in range(0, m, step):
        stop = min(m, start + step)
        if len(registry):
            _core.topk_many(snap, cores, policy, kk, start, stop, idx, score, perf, region, count, n_threads)
        if progress is not None:
            progress(stop, m)
    return _frame(registry, prepared, snap, idx, score, perf, region, count)


def _frame(registry: Registry, prepared: list[PreparedSlot], snap: Any, idx: np.ndarray, score: np.ndarray,
           perf: np.ndarray, region: np.ndarray, count: np.ndarray) -> pl.DataFrame:
    m, kk = idx.shape
    rank = np.arange(kk)[None, :]
    keep = (rank < count[:, None]) | ((count[:, None] == 0) & (rank == 0))
    rows_slot, rows_rank = np.nonzero(keep)
    hit = rows_rank < count[rows_slot]
    picked = idx[rows_slot, rows_rank]
    safe = np.where(hit, picked, 0)
    cols = registry.columns
    names = pl.Series("slot_name", [p.slot_name for p in prepared], dtype=pl.String)
    ids = registry._id_series()
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


# --- assign ------------------------------------------------------------------------------

class Binding(msgspec.Struct, frozen=True):
    """A placed slot."""

    slot_name: str
    backend_id: str
    score: float
    performance: float
    cost: float
    availability: float
    region: float


class Unplaced:
    """A slot nothing could take, with why: ``diagnosis`` is computed on
    first read, against what was left when the slot's turn came (the earlier
    bindings are replayed), so a large plan with many unplaced slots costs
    nothing until someone asks why."""

    __slots__ = ("slot_name", "optional", "_make", "_diagnosis")

    def __init__(self, slot_name: str, optional: bool, make: Callable[[], Diagnosis]):
        self.slot_name = slot_name
        self.optional = optional
        self._make = make
        self._diagnosis: Diagnosis | None = None

    @property
    def diagnosis(self) -> Diagnosis:
        if self._diagnosis is None:
            self._diagnosis = self._make()
        return self._diagnosis

    def __repr__(self) -> str:
        return f"Unplaced(slot_name={self.slot_name!r}, optional={self.optional})"


@dataclasses.dataclass(frozen=True)
class Assignment:
    """``bindings`` in slot order, ``unplaced`` slots with their diagnosis,
    ``utilisation`` per backend after placement, ``committed`` when applied."""

    bindings: list[Binding]
    unplaced: list[Unplaced]
    utilisation: pl.DataFrame
    committed: bool

    @property
    def ok(self) -> bool:
        """True when every non-optional slot was placed."""
        return not any(not u.optional for u in self.unplaced)

    def to_polars(self) -> pl.DataFrame:
        return pl.DataFrame([msgspec.structs.asdict(b) for b in self.bindings],
                            schema={"slot_name": pl.String, "backend_id": pl.String, "score": pl.Float64,
                                    "performance": pl.Float64, "cost": pl.Float64,
                                    "availability": pl.Float64, "region": pl.Float64})


class PlacementError(RegistryError):
    """A required slot could not be placed; ``.assignment`` holds the plan."""

    def __init__(self, assignment: Assignment):
        self.assignment = assignment
        super().__init__([(f"slot `{u.slot_name}`", f"Cannot be placed: {u.diagnosis}")
                          for u in assignment.unplaced if not u.optional])

    def __reduce__(self) -> tuple:
        # The plan holds lazy diagnoses (closures over the registry) and does
        # not travel between processes; the error does, with its problems.
        return RegistryError, (self.errors,)


def assign(registry: Registry, slots: Any, *, commit: bool = False, allow_unplaced: bool = False) -> Assignment:
    """Capacity-aware placement (SPEC §6): slots in the given order, each on
    its best backend given what earlier placements consumed (rps, storage,
    one namespace); no backend is placed beyond its capacity.

    A dry run unless ``commit=True``, which adds the placed usage to the live
    columns. A non-optional slot that cannot be placed raises PlacementError
    (with the whole plan in ``.assignment``, nothing committed) unless
    ``allow_unplaced=True``.
    """
    prepared = _prepare_all(registry, slots)
    m, n = len(prepared), len(registry)
    snap = _core.LiveSnapshot(registry._core)
    placed = {key: np.zeros(n) for key in ("w", "r", "storage", "ns")}
    chosen = np.full(m, -1, dtype=np.int64)
    chosen_score, chosen_perf, chosen_region = np.zeros(m), np.zeros(m), np.zeros(m)
    cores = prepared
    live_w, live_r, live_storage, live_ns, live_avail, live_health = snap.arrays
    view = dataclasses.replace(registry.columns, write_rps=live_w, read_rps=live_r, storage_used=live_storage,
                               namespace_count=live_ns, avail_score=live_avail, health=live_health)
    unplaced: list[Unplaced] = []
    start = 0
    while start < m:
        if n:
            start = _core.assign_run(snap, cores, registry._core_policy, start, placed["w"], placed["r"],
                                     placed["storage"], placed["ns"], chosen, chosen_score, chosen_perf,
                                     chosen_region)
        if start < m:
            slot = prepared[start]
            unplaced.append(Unplaced(slot.slot_name, slot.optional,
                                     _diagnoser(registry, view, prepared, chosen, start)))
            start += 1
    ids = registry.columns.backend_ids
    bindings = [Binding(p.slot_name, ids[c], float(chosen_score[j]), float(chosen_perf[j]),
                        float(registry.columns.cost_score[c]), float(live_avail[c]), float(chosen_region[j]))
                for j, (p, c) in enumerate(zip(prepared, chosen)) if c >= 0]
    result = Assignment(bindings, unplaced, _utilisation(registry, view, placed), False)
    if not result.ok and not allow_unplaced:
        raise PlacementError(result)
    if commit:
        registry._core.add_usage(placed["w"], placed["r"], placed["storage"], placed["ns"])
        result = dataclasses.replace(result, committed=True)
    return result


def _diagnoser(registry: Registry, view: Any, prepared: list[PreparedSlot], chosen: np.ndarray,
               position: int) -> Callable[[], Diagnosis]:
    def make() -> Diagnosis:
        n = len(registry)
        before = chosen[:position]
        took = before >= 0
        where = before[took]
        earlier = [prepared[j] for j in np.flatnonzero(took)]
        placed = {
            "w": np.bincount(where, weights=[c.min_write_rps for c in earlier], minlength=n).astype(float),
            "r": np.bincount(where, weights=[c.min_read_rps for c in earlier], minlength=n).astype(float),
            "storage": np.bincount(where, weights=[c.min_storage for c in earlier], minlength=n).astype(float),
            "ns": np.bincount(where, minlength=n).astype(float),
        }
        slot = prepared[position]
        masks = vectorized.rule_masks(view, slot, registry.policy, placed)
        return diagnose(registry, slot, masks, 0, columns=view)

    return make


def _utilisation(registry: Registry, view: Any, placed: dict[str, np.ndarray]) -> pl.DataFrame:
    """Per backend after placement: placements, used and max of each resource."""
    c = view
    with np.errstate(all="ignore"):  # no capacity declared: null; a tiny one: a huge share
        def share(used: np.ndarray, cap: np.ndarray) -> pl.Series:
            out = pl.Series(np.where(cap > 0, used / cap, np.nan))
            return out.fill_nan(None)
        w = c.write_rps + placed["w"]
        r = c.read_rps + placed["r"]
        s = c.storage_used + placed["storage"]
        ns = c.namespace_count + placed["ns"]
        return pl.DataFrame({
            "backend_id": registry._id_series(),
            "placed_slots": placed["ns"].astype(np.int64),
            "write_rps": w, "max_write_rps": c.max_write_rps, "write_utilisation": share(w, c.max_write_rps),
            "read_rps": r, "max_read_rps": c.max_read_rps, "read_utilisation": share(r, c.max_read_rps),
            "storage_used": s, "max_storage": pl.Series(c.max_storage).fill_nan(None),
            "storage_utilisation": share(s, c.max_storage),
            "namespace_count": ns,
            "max_namespaces": pl.Series(np.where(np.isinf(c.max_namespaces), np.nan, c.max_namespaces)).fill_nan(None),
        })
