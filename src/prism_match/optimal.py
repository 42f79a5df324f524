"""Optimal placement: ``assign(slots, method="optimal")``.

Greedy ``assign`` (placement.py) places slots in order, each on its best
backend given what earlier ones consumed, and can leave slots unplaced that
another plan would place. This module solves the whole plan at once as a
mixed-integer program with HiGHS (``highspy``):

* **Candidates** come from the kernel (``_core.placement_pairs``): every
  (slot, backend) pair one step of greedy ``assign`` could choose with
  nothing placed yet — the same rules, the namespace limit and capacity
  measured as what is left (``max − current − reserved``), whatever the
  policy's capacity basis, exactly as greedy measures it while placing.
* **Variables**: one binary ``x[j, b]`` per candidate pair.
* **Constraints**: each slot at most once; per backend, the placed slots'
  ``min_write_rps``, ``min_read_rps`` and ``min_storage`` add up to no more
  than what is left of each, and their count to no more than
  ``max_namespaces − namespace_count`` (what greedy consumes per placed
  slot: placement.assign). A row that cannot bind (all candidates together
  fit) is left out.
* **Objective**, lexicographic in two solves: first the most slots placed;
  then, holding that count, the highest total score.
* **Score**: each pair scores as ``match`` would score it against the
  registry as it is before placement (the performance term from the
  headroom left now). Greedy's performance term depends on what earlier
  slots took, i.e. on slot order; a plan-wide optimum needs a score that
  does not, so the optimal mode's ``Binding.score`` is this one, and the
  report scores greedy's plan the same way for a like-for-like gap.
* **Warm start**: greedy's plan (on the same snapshot) is handed to the
  solver as its first incumbent, so the answer is never worse than greedy's,
  even when the time limit cuts the search.

Same input, same answer: the model is built in a canonical order (slots in
the given order, each slot's candidates by score, then ``backend_id``
bytes, as the kernel ranks them), and HiGHS is deterministic for a given
model. Only a search the time limit cuts short may end at a different
incumbent on a slower or busier machine (``report.proved_optimal`` says
whether the optimum was proved).

The solution is checked against the capacity rules in floating point the
way the kernel checks them, in slot order; a pair the solver's feasibility
tolerance let through is dropped (``report.dropped``), so no backend is ever
placed beyond what greedy would allow.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from . import _core
from .batch import prepare_all
from .diagnosis import diagnose
from .engine import Engine
from .errors import RegistryError
from .placement import Assignment, Binding, PlacementError, Unplaced, utilisation_table
from .results import Diagnosis

if TYPE_CHECKING:
    from .slot_details import PreparedSlot

__all__ = ["assign_optimal", "OptimalAssignment", "SolverReport", "DEFAULT_TIME_LIMIT", "check_time_limit"]

DEFAULT_TIME_LIMIT = 10.0  # seconds, both solves together


class SolverReport(msgspec.Struct, frozen=True):
    """How the optimal plan compares with greedy's, and how it was found.

    ``greedy_score`` and ``optimal_score`` are totals of the same score (each
    pair against the registry before placement); ``greedy_score_as_placed``
    is greedy's own total (its performance term after earlier slots).
    ``status`` is HiGHS's model status of the last solve (``Optimal``,
    ``Time limit reached``, …; ``Not needed`` when greedy placed every slot
    that has a candidate and the score solve was skipped for lack of
    time); ``proved_optimal`` is True when both solves proved their optimum
    (within ``mip_gap``, HiGHS's relative gap of the last solve).
    """

    status: str
    proved_optimal: bool
    time_limit: float
    seconds: float
    slots: int
    candidates: int
    constraints: int
    greedy_placed: int
    optimal_placed: int
    greedy_score: float
    optimal_score: float
    greedy_score_as_placed: float
    mip_gap: float
    dropped: int = 0

    @property
    def extra_placed(self) -> int:
        """How many more slots the optimal plan places than greedy's."""
        return self.optimal_placed - self.greedy_placed

    def as_dict(self) -> dict[str, Any]:
        return {**msgspec.structs.asdict(self), "extra_placed": self.extra_placed}


@dataclasses.dataclass(frozen=True)
class OptimalAssignment(Assignment):
    """An ``Assignment`` found by the solver, with ``report`` (SolverReport)."""

    report: SolverReport | None = None


def check_time_limit(time_limit: Any) -> float:
    """A time limit in seconds: a finite number > 0."""
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not math.isfinite(time_limit) \
            or time_limit <= 0:
        raise RegistryError(f"Expected `time_limit` a number of seconds > 0, got `{time_limit!r}`"[:120], "assign")
    return float(time_limit)


def _greedy(snap: Any, prepared: list[PreparedSlot], policy: Any, n: int, live: int):
    """Greedy assign on ``snap`` (as placement.assign runs it): chosen
    int64[m] (-1: unplaced) and its own scores float64[m]."""
    m = len(prepared)
    chosen = np.full(m, -1, dtype=np.int64)
    score, perf, region = np.zeros(m), np.zeros(m), np.zeros(m)
    placed = [np.zeros(max(n, 1)) for _ in range(4)]
    start = 0
    while live and start < m:
        start = _core.assign_run(snap, prepared, policy, start, *placed, chosen, score, perf, region) + 1
    return chosen, score


class _Capacities:
    """What is left on each backend (float64[n] each, from the snapshot),
    and each slot's demands (float64[m]): the rules greedy applies while
    placing (``_failed`` with a placement, _kernel.pxi)."""

    def __init__(self, columns: Any, snap_arrays: tuple, prepared: list[PreparedSlot]):
        used_w, used_r, used_storage, used_ns = snap_arrays[:4]
        self.max_w, self.max_r = columns.max_write_rps, columns.max_read_rps
        self.max_storage, self.max_ns = columns.max_storage, columns.max_namespaces
        self.used_w, self.used_r, self.used_storage, self.used_ns = used_w, used_r, used_storage, used_ns
        amounts = np.array([p.amounts for p in prepared], dtype=np.float64).reshape(-1, 3)
        self.need_w, self.need_r, self.need_storage = amounts[:, 0], amounts[:, 1], amounts[:, 2]
        with np.errstate(invalid="ignore"):
            self.left_w = np.maximum(self.max_w - used_w, 0.0)
            self.left_r = np.maximum(self.max_r - used_r, 0.0)
            # NaN (no max_storage): no candidate needs storage there, so no row.
            self.left_storage = np.where(np.isnan(self.max_storage), np.inf,
                                         np.maximum(self.max_storage - used_storage, 0.0))
            # A count: at most floor(max − count) placements (+inf: no limit).
            self.left_ns = np.floor(self.max_ns - used_ns)

    def fits(self, chosen: np.ndarray) -> np.ndarray:
        """bool[m]: whether each placed slot passes the capacity rules, replayed
        in slot order in the kernel's arithmetic; a slot that fails is
        dropped and takes nothing."""
        n = len(self.max_w)
        placed_w, placed_r, placed_s, placed_ns = (np.zeros(n) for _ in range(4))
        ok = chosen >= 0
        for j in np.flatnonzero(ok).tolist():
            b = int(chosen[j])
            w, r, s = self.need_w[j], self.need_r[j], self.need_storage[j]
            hw = (self.max_w[b] - self.used_w[b]) - placed_w[b]
            hr = (self.max_r[b] - self.used_r[b]) - placed_r[b]
            good = (hw if hw > 0 else 0.0) >= w and (hr if hr > 0 else 0.0) >= r
            if s > 0:
                hs = (self.max_storage[b] - self.used_storage[b]) - placed_s[b]
                good = good and not math.isnan(self.max_storage[b]) and (hs if hs > 0 else 0.0) >= s
            good = good and self.max_ns[b] - self.used_ns[b] - placed_ns[b] >= 1
            if not good:
                ok[j] = False
                continue
            placed_w[b] += w
            placed_r[b] += r
            placed_s[b] += s
            placed_ns[b] += 1
        return ok


def _constraint_matrix(m: int, slot_of: np.ndarray, backend_of: np.ndarray, caps: _Capacities):
    """The model's rows in column-wise (CSC) form.

    Rows 0..m-1: each slot at most once (<= 1). Then, per resource, one row
    per backend whose candidates could together exceed what is left
    (<= left). Returns (start int64[E+1], index int32[nnz], value
    float64[nnz], row_upper float64[R])."""
    e = len(slot_of)
    n = len(caps.max_w)
    rows = [slot_of]
    cols = [np.arange(e)]
    vals = [np.ones(e)]
    upper = [np.ones(m)]
    next_row = m
    resources = ((caps.need_w[slot_of], caps.left_w), (caps.need_r[slot_of], caps.left_r),
                 (caps.need_storage[slot_of], caps.left_storage), (np.ones(e), caps.left_ns))
    for demand, left in resources:
        total = np.bincount(backend_of, weights=demand, minlength=n)
        binding = np.flatnonzero(total > left)          # rows that can bind (inf never does)
        if not len(binding):
            continue
        row_of_backend = np.full(n, -1, dtype=np.int64)
        row_of_backend[binding] = next_row + np.arange(len(binding))
        take = (row_of_backend[backend_of] >= 0) & (demand > 0)
        rows.append(row_of_backend[backend_of[take]])
        cols.append(np.flatnonzero(take))
        vals.append(demand[take])
        upper.append(left[binding])
        next_row += len(binding)
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    val = np.concatenate(vals)
    order = np.lexsort((row, col))
    start = np.concatenate([[0], np.cumsum(np.bincount(col, minlength=e))]).astype(np.int64)
    return start, row[order].astype(np.int32), val[order], np.concatenate(upper)


def _solve(slot_of: np.ndarray, start: np.ndarray, index: np.ndarray, value: np.ndarray, row_upper: np.ndarray,
           warm: np.ndarray, target: int, pair_score: np.ndarray, time_limit: float):
    """Two solves with HiGHS: the most slots, then the best total score with
    that many. Returns (x bool[E], status, proved, mip_gap)."""
    import highspy

    e = len(slot_of)
    # The compiled class under highspy.Highs: the Python wrapper's
    # constructor prints HiGHS's banner to stdout before any option can be
    # set, which would corrupt `prism-match assign -o json`.
    h = highspy.Highs.__mro__[1]()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    lp = highspy.HighsLp()
    lp.num_col_ = e
    lp.num_row_ = len(row_upper)
    lp.col_cost_ = np.ones(e)
    lp.col_lower_ = np.zeros(e)
    lp.col_upper_ = np.ones(e)
    lp.row_lower_ = np.full(len(row_upper), -highspy.kHighsInf)
    lp.row_upper_ = row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    lp.integrality_ = [highspy.HighsVarType.kInteger] * e
    lp.sense_ = highspy.ObjSense.kMaximize
    h.passModel(lp)

    def run(limit: float, incumbent: np.ndarray, **options: float):
        for name, option in options.items():
            h.setOptionValue(name, option)
        h.setOptionValue("time_limit", max(limit, 1e-3))
        solution = highspy.HighsSolution()
        solution.col_value = incumbent.astype(np.float64)
        h.setSolution(solution)
        h.run()
        status = h.getModelStatus()
        found = np.asarray(h.getSolution().col_value) > 0.5 if h.getInfo().primal_solution_status else incumbent
        # Never worse than the incumbent it was given (a cut-short search may
        # report nothing better than it).
        return found, status == highspy.HighsModelStatus.kOptimal, h.modelStatusToString(status), \
            float(h.getInfo().mip_gap)

    began = time.perf_counter()
    x = warm.astype(bool)
    proved_count = int(x.sum()) >= target   # greedy placed every slot that has a candidate
    status, gap = "Not needed", 0.0
    if not proved_count:
        # The count is an integer: a gap below one slot proves it.
        found, proved_count, status, gap = run(time_limit, x, mip_rel_gap=0.0, mip_abs_gap=0.999)
        if found.sum() > x.sum():
            x = found
    left = time_limit - (time.perf_counter() - began)
    if left <= 0:
        return x, "Time limit reached", False, gap
    h.changeColsCost(e, np.arange(e, dtype=np.int32), pair_score.astype(np.float64))
    h.addRow(float(x.sum()), highspy.kHighsInf, e, np.arange(e, dtype=np.int32), np.ones(e))
    found, proved_score, status, gap = run(left, x, mip_rel_gap=1e-9, mip_abs_gap=1e-9)
    if found.sum() >= x.sum() and pair_score[found].sum() >= pair_score[x].sum():
        x = found
    return x, status, proved_count and proved_score, gap


def assign_optimal(engine: Engine, slots: Any, *, commit: bool = False, allow_unplaced: bool = False,
                   time_limit: float = DEFAULT_TIME_LIMIT) -> OptimalAssignment:
    """The plan that places the most slots, then the highest total score,
    within every capacity and namespace limit greedy ``assign`` respects
    (module docstring). ``bindings`` in slot order, ``unplaced`` with a
    diagnosis against the finished plan (what the other placements left),
    ``report`` the comparison with greedy. ``commit`` and ``allow_unplaced``
    as for greedy ``assign``; ``time_limit`` in seconds for the solver."""
    time_limit = check_time_limit(time_limit)
    began = time.perf_counter()
    prepared = prepare_all(engine, slots)
    columns = engine.columns
    m, n = len(prepared), columns.n
    snap = _core.LiveSnapshot(engine.core)
    policy = engine.core_policy
    live_w, live_r, live_storage, live_ns, live_avail, live_health = snap.arrays
    greedy_chosen, greedy_own = _greedy(snap, prepared, policy, n, columns.live)
    slot_of, backend_of, pair_score, pair_perf, pair_region = _core.placement_pairs(snap, prepared, policy)
    caps = _Capacities(columns, snap.arrays, prepared)

    # Greedy's plan as a vector over the candidates (its choices are
    # candidates: placing with something placed is stricter than with nothing).
    key = slot_of * max(n, 1) + backend_of
    where = {k: i for i, k in enumerate(key.tolist())}
    warm = np.zeros(len(key), dtype=bool)
    for j, b in enumerate(greedy_chosen.tolist()):
        if b >= 0:
            warm[where[j * max(n, 1) + b]] = True
    greedy_static = float(pair_score[warm].sum())
    placeable = int(len(np.unique(slot_of)))

    start, index, value, row_upper = _constraint_matrix(m, slot_of, backend_of, caps)
    if len(key):
        x, status, proved, gap = _solve(slot_of, start, index, value, row_upper, warm, placeable, pair_score,
                                        time_limit - (time.perf_counter() - began))
    else:
        x, status, proved, gap = warm, "Not needed", True, 0.0
    chosen = np.full(m, -1, dtype=np.int64)
    pair_at = np.full(m, -1, dtype=np.int64)
    chosen[slot_of[x]] = backend_of[x]
    pair_at[slot_of[x]] = np.flatnonzero(x)
    ok = caps.fits(chosen)
    dropped = int(((chosen >= 0) & ~ok).sum())
    chosen[~ok] = -1

    placed = {"w": np.zeros(n), "r": np.zeros(n), "storage": np.zeros(n), "ns": np.zeros(n)}
    took = chosen >= 0
    if took.any():
        at = chosen[took]
        placed["w"] = np.bincount(at, weights=caps.need_w[took], minlength=n).astype(float)
        placed["r"] = np.bincount(at, weights=caps.need_r[took], minlength=n).astype(float)
        placed["storage"] = np.bincount(at, weights=caps.need_storage[took], minlength=n).astype(float)
        placed["ns"] = np.bincount(at, minlength=n).astype(float)
    view = columns.with_usage(used_write_rps=live_w, used_read_rps=live_r, used_storage=live_storage,
                              used_namespaces=live_ns, avail_score=live_avail, health=live_health)
    ids = columns.backend_ids
    bindings = []
    for j in np.flatnonzero(took).tolist():
        k, b = int(pair_at[j]), int(chosen[j])
        bindings.append(Binding(prepared[j].slot_name, ids[b], float(pair_score[k]), float(pair_perf[k]),
                                float(columns.cost_score[b]), float(live_avail[b]), float(pair_region[k])))
    unplaced = [Unplaced(prepared[j].slot_name, prepared[j].optional,
                         _diagnoser(engine, snap, view, prepared[j], placed))
                for j in np.flatnonzero(~took).tolist()]
    report = SolverReport(
        status=status, proved_optimal=bool(proved) and not dropped, time_limit=time_limit,
        seconds=time.perf_counter() - began, slots=m, candidates=len(key), constraints=len(row_upper),
        greedy_placed=int((greedy_chosen >= 0).sum()), optimal_placed=len(bindings),
        greedy_score=greedy_static, optimal_score=float(sum(b.score for b in bindings)),
        greedy_score_as_placed=float(greedy_own[greedy_chosen >= 0].sum()), mip_gap=gap, dropped=dropped)
    result = OptimalAssignment(bindings, unplaced, utilisation_table(view, placed), False, report=report)
    if not result.ok and not allow_unplaced:
        raise PlacementError(result)
    if commit:
        engine.core.add_usage(placed["w"], placed["r"], placed["storage"], placed["ns"])
        engine.core.record("assign", None, {"placed": len(bindings), "method": "optimal"})
        result = dataclasses.replace(result, committed=True)
    return result


def _diagnoser(engine: Engine, snap: Any, view: Any, slot: PreparedSlot,
               placed: dict[str, np.ndarray]) -> Callable[[], Diagnosis]:
    """Why a slot stayed out of the optimal plan: the diagnosis against
    what the whole plan took (built on first read)."""
    def make() -> Diagnosis:
        bits, counts, eligible = snap.failure_bits(slot, engine.core_policy,
                                                   (placed["w"], placed["r"], placed["storage"], placed["ns"]))
        return diagnose(slot, view, bits, counts, int(eligible))

    return make
