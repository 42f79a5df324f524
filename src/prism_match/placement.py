"""Capacity-aware placement: ``assign`` places slots in order, each on its
best backend given what earlier placements consumed (SPEC §6), in the
kernel (``assign_run``), over one snapshot of the live columns. A slot
nothing can take is diagnosed lazily, against the placed state of its turn,
by the kernel's diagnosis pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from . import _core
from .batch import prepare_all
from .diagnosis import diagnose
from .engine import Engine
from .errors import RegistryError
from .results import Diagnosis

if TYPE_CHECKING:
    import polars as pl

    from .slot_details import PreparedSlot

__all__ = ["assign", "Assignment", "Binding", "Unplaced", "PlacementError", "Move"]


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


class Move(msgspec.Struct, frozen=True):
    """A slot whose plan differs from its current binding (``assign(current=...)``):
    ``to_backend`` None when it could not be placed at all."""

    slot_name: str
    from_backend: str
    to_backend: str | None


@dataclasses.dataclass(frozen=True)
class Assignment:
    """``bindings`` in slot order, ``unplaced`` slots with their diagnosis,
    ``utilisation`` per backend after placement, ``committed`` when applied;
    ``moves``: the slots given a current binding that the plan moves."""

    bindings: list[Binding]
    unplaced: list[Unplaced]
    utilisation: pl.DataFrame
    committed: bool
    moves: list[Move] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every non-optional slot was placed."""
        return not any(not u.optional for u in self.unplaced)

    def to_polars(self) -> pl.DataFrame:
        import polars as pl

        return pl.DataFrame([msgspec.structs.asdict(b) for b in self.bindings],
                            schema={"slot_name": pl.String, "backend_id": pl.String, "score": pl.Float64,
                                    "performance": pl.Float64, "cost": pl.Float64,
                                    "availability": pl.Float64, "region": pl.Float64})


class PlacementError(RegistryError):
    """A required slot could not be placed: ``.assignment`` holds the plan
    (from ``assign``), ``.diagnosis`` why (from ``Registry.reserve``)."""

    assignment: Assignment | None = None
    diagnosis: Diagnosis | None = None

    def __init__(self, assignment: Assignment):
        self.assignment = assignment
        super().__init__([(f"slot `{u.slot_name}`", f"Cannot be placed: {u.diagnosis}")
                          for u in assignment.unplaced if not u.optional])

    @classmethod
    def single(cls, slot_name: str, message: str, diagnosis: Diagnosis) -> PlacementError:
        """One slot that ``reserve`` could not place, and why."""
        error = cls.__new__(cls)
        error.diagnosis = diagnosis
        RegistryError.__init__(error, [(f"slot `{slot_name}`", message)])
        return error

    def __reduce__(self) -> tuple:
        # The plan holds lazy diagnoses (closures over the registry) and does
        # not travel between processes; the error does, with its problems.
        return RegistryError, (self.errors,)


def assign(engine: Engine, slots: Any, *, commit: bool = False, allow_unplaced: bool = False,
           current: Any = None) -> Assignment:
    """Capacity-aware placement (SPEC §6): slots in the given order, each on
    its best backend given what earlier placements consumed (rps, storage,
    min_connections, one namespace); no backend is placed beyond its
    capacity. Slots that cap their group (``max_per_backend``,
    ``max_per_region``, ``max_skew``) are held to them against the earlier
    placements of the group (``GroupCounts``).

    A dry run unless ``commit=True``, which adds the placed usage to the live
    columns. A non-optional slot that cannot be placed raises PlacementError
    (with the whole plan in ``.assignment``, nothing committed) unless
    ``allow_unplaced=True``.

    ``current``: ``{slot_name: backend_id}``, the bindings in place now;
    each becomes its slot's ``current_backend`` (the policy's
    ``stickiness`` keeps it unless another is better by more than that
    margin), and ``Assignment.moves`` lists the slots the plan moves.
    """
    prepared = with_current(engine, prepare_all(engine, slots), current)
    columns = engine.columns
    m, n = len(prepared), columns.n
    snap = _core.LiveSnapshot(engine.core)
    placed = {key: np.zeros(n) for key in ("w", "r", "storage", "ns", "conn")}
    groups = GroupCounts(columns, prepared)
    chosen = np.full(m, -1, dtype=np.int64)
    chosen_score, chosen_perf, chosen_region = np.zeros(m), np.zeros(m), np.zeros(m)
    cores = prepared
    live_w, live_r, live_storage, live_ns, live_avail, live_health = snap.arrays
    view = columns.with_usage(used_write_rps=live_w, used_read_rps=live_r, used_storage=live_storage,
                              used_namespaces=live_ns, avail_score=live_avail, health=live_health,
                              used_connections=snap.connections)
    unplaced: list[Unplaced] = []
    start = 0
    while start < m:
        if columns.live:
            start = _core.assign_run(snap, cores, engine.core_policy, start, placed["w"], placed["r"],
                                     placed["storage"], placed["ns"], chosen, chosen_score, chosen_perf,
                                     chosen_region, placed["conn"], **groups.kernel_args())
        if start < m:
            slot = prepared[start]
            unplaced.append(Unplaced(slot.slot_name, slot.optional,
                                     _diagnoser(engine, snap, view, prepared, chosen, start, groups)))
            start += 1
    ids = columns.backend_ids
    bindings = [Binding(p.slot_name, ids[c], float(chosen_score[j]), float(chosen_perf[j]),
                        float(columns.cost_score[c]), float(live_avail[c]), float(chosen_region[j]))
                for j, (p, c) in enumerate(zip(prepared, chosen)) if c >= 0]
    result = Assignment(bindings, unplaced, utilisation_table(view, placed), False,
                        moves_of(prepared, [ids[c] if c >= 0 else None for c in chosen]))
    if not result.ok and not allow_unplaced:
        raise PlacementError(result)
    if commit:
        engine.core.add_usage(placed["w"], placed["r"], placed["storage"], placed["ns"], placed["conn"])
        engine.core.record("assign", None, {"placed": len(bindings)})
        result = dataclasses.replace(result, committed=True)
    return result


def with_current(engine: Engine, prepared: list[PreparedSlot], current: Any) -> list[PreparedSlot]:
    """The slots with ``current[slot_name]`` as their ``current_backend``
    (prepared again, once, for the ones it names)."""
    if current is None:
        return prepared
    if not isinstance(current, Mapping):
        raise RegistryError(f"Expected a mapping of slot_name to backend_id, got `{type(current).__name__}`",
                            "assign current")
    names = {p.slot_name for p in prepared}
    bad = [(f"assign current `{str(k)[:60]}`", "Expected a backend_id (`str`) for a slot of the plan")
           for k, v in current.items() if k not in names or not isinstance(v, str)]
    if bad:
        raise RegistryError(bad)
    return [engine.prepare(msgspec.structs.replace(p.requirement, current_backend=current[p.slot_name]))
            if p.slot_name in current else p for p in prepared]


def moves_of(prepared: list[PreparedSlot], chosen: list[str | None]) -> list[Move]:
    """The slots with a current backend whose plan differs from it."""
    return [Move(p.slot_name, p.requirement.current_backend, to) for p, to in zip(prepared, chosen)
            if p.requirement.current_backend is not None and to != p.requirement.current_backend]


class GroupCounts:
    """The groups a plan tracks (issue 13): those that at least one of its
    slots caps (``max_per_backend``, ``max_per_region``, ``max_skew``). A
    slot's group is its ``group``, else its ``slot_name``; every placement
    of a tracked group counts, per backend and per region bit (in each
    region its backend serves)."""

    def __init__(self, columns: Any, prepared: list[PreparedSlot]):
        names = sorted({p.requirement.group_name for p in prepared if p.requirement.grouped})
        row = {name: j for j, name in enumerate(names)}
        self.n, self.bits = columns.n, columns.store["region_rows"].shape[1] * 64
        self.group_of = np.array([row.get(p.requirement.group_name, -1) for p in prepared], dtype=np.int64)
        self.per_backend = np.zeros((len(names), max(self.n, 1)))
        self.per_region = np.zeros((len(names), max(self.bits, 1)))

    def kernel_args(self) -> dict[str, Any]:
        """``assign_run``'s group arguments (none when no slot caps a group)."""
        if not len(self.per_backend):
            return {}
        return {"group_of": self.group_of, "group_backend": self.per_backend, "group_region": self.per_region}

    def before(self, columns: Any, chosen: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The counts of slot ``position``'s group when its turn came (the
        earlier bindings of its group replayed), or None: no group rule."""
        g = self.group_of[position]
        if g < 0:
            return None
        from .score_table import region_members

        mine = np.flatnonzero(self.group_of[:position] == g)
        where = chosen[mine]
        where = where[where >= 0]
        per_backend = np.bincount(where, minlength=max(self.n, 1)).astype(float)
        per_region = np.zeros(max(self.bits, 1))
        members = region_members(columns)
        per_region[:members.shape[1]] = members[where].sum(axis=0)
        return per_backend, per_region


def _diagnoser(engine: Engine, snap: Any, view: Any, prepared: list[PreparedSlot], chosen: np.ndarray,
               position: int, groups: GroupCounts) -> Callable[[], Diagnosis]:
    def make() -> Diagnosis:
        n = max(view.n, 1)  # the kernel takes each array's first element, even of an empty registry
        before = chosen[:position]
        took = before >= 0
        where = before[took]
        earlier = [prepared[j] for j in np.flatnonzero(took)]
        placed = {
            "w": np.bincount(where, weights=[c.min_write_rps for c in earlier], minlength=n).astype(float),
            "r": np.bincount(where, weights=[c.min_read_rps for c in earlier], minlength=n).astype(float),
            "storage": np.bincount(where, weights=[c.min_storage for c in earlier], minlength=n).astype(float),
            "ns": np.bincount(where, minlength=n).astype(float),
            "conn": np.bincount(where, weights=[c.min_connections for c in earlier], minlength=n).astype(float),
        }
        slot = prepared[position]
        bits, counts, eligible = snap.failure_bits(slot, engine.core_policy,
                                                   (placed["w"], placed["r"], placed["storage"], placed["ns"]),
                                                   groups.before(view, chosen, position), placed["conn"])
        return diagnose(slot, view, bits, counts, int(eligible))

    return make


def utilisation_table(view: Any, placed: dict[str, np.ndarray]) -> pl.DataFrame:
    """Per backend after placement: placements, used and max of each resource."""
    import polars as pl

    c = view
    with np.errstate(all="ignore"):  # no capacity declared: null; a tiny one: a huge share
        def share(used: np.ndarray, cap: np.ndarray) -> pl.Series:
            out = pl.Series(np.where(cap > 0, used / cap, np.nan))
            return out.fill_nan(None)
        w = c.used_write_rps + placed["w"]
        r = c.used_read_rps + placed["r"]
        s = c.used_storage + placed["storage"]
        ns = c.used_namespaces + placed["ns"]
        return pl.DataFrame({
            "backend_id": c.id_series(),
            "placed_slots": placed["ns"].astype(np.int64),
            "write_rps": w, "max_write_rps": c.max_write_rps, "write_utilisation": share(w, c.max_write_rps),
            "read_rps": r, "max_read_rps": c.max_read_rps, "read_utilisation": share(r, c.max_read_rps),
            "storage_used": s, "max_storage": pl.Series(c.max_storage).fill_nan(None),
            "storage_utilisation": share(s, c.max_storage),
            "namespace_count": ns,
            "max_namespaces": pl.Series(np.where(np.isinf(c.max_namespaces), np.nan, c.max_namespaces)).fill_nan(None),
        })
