"""Optimal placement: ``assign(slots, method="optimal")``.

Greedy ``assign`` (placement.py) places slots in order, each on its best
backend given what earlier ones consumed, and can leave slots unplaced that
another plan would place. This module solves the whole plan at once as a
mixed-integer program with HiGHS (``highspy``), under every limit greedy
honours:

* **Candidates** come from the kernel (``_core.placement_pairs``): every
  (slot, backend) pair one step of greedy ``assign`` could choose with
  nothing placed yet — the same rules, the namespace limit, and capacity and
  connections measured as what is left (``max − current − reserved``),
  whatever the policy's capacity basis, exactly as greedy measures them
  while placing. A slot bounding its group's skew never goes to a backend
  that serves no region (the kernel's skew rule rejects it).
* **Variables**: one binary ``x[j, b]`` per candidate pair, and one
  continuous ``low[g]`` per group whose skew is modelled (below).
* **Capacity rows**: each slot at most once; per backend, the placed slots'
  ``min_write_rps``, ``min_read_rps``, ``min_storage`` and
  ``min_connections`` add up to no more than what is left of each, and their
  count to no more than ``max_namespaces − namespace_count`` (what greedy
  consumes per placed slot). A row that cannot bind is left out.
* **Group rows** (a slot's ``group``, else its ``slot_name``; every slot of
  a group that some slot caps counts, as in ``placement.GroupCounts``). The
  kernel checks a slot's own caps against the group's placements *before*
  it in slot order:
  - ``max_per_backend``: with ``K`` the largest cap in the group (none if
    a member has no cap), ``Σ x[j, b] ≤ K`` over the group per backend;
    each member ``j`` whose cap ``k < K`` adds, per candidate backend, the
    indicator row "``x[j, b] = 1`` ⇒ at most ``k − 1`` earlier members on
    ``b``" (``Σ_{i<j} x[i, b] + M·x[j, b] ≤ k − 1 + M``). Together these are
    exactly the kernel's rule in slot order.
  - ``max_per_region``: the same per region (a placement counts in every
    region its backend serves).
  - ``max_skew`` (topology spread): the kernel lets slot ``j`` onto
    backend ``b`` when every region ``r`` of ``b`` has ``count(r) + 1 −
    low ≤ skew`` where ``low`` is the fewest group placements in a region of
    a backend passing every other rule *at that moment* — so ``low`` ranges
    over domains that shrink as capacity fills, in an order-dependent way.
    The model's plan-wide reading: with ``S`` the group's largest skew (none
    if a member has no skew), every region's final count is at most ``S +
    low[g]``, and ``low[g]`` is at most the final count of each *stable*
    domain: a region with a backend that is a candidate of every member
    and whose capacity rows cannot bind (it stays a domain for every slot
    in every plan). Every plan the kernel accepts satisfies this (the last
    placement into a region saw at most ``S + low`` and ``low`` never
    decreases), so greedy's plan stays a feasible warm start and the model
    is a relaxation of the kernel's rules.
* **Replay**: the solver's plan is replayed through the kernel itself in
  slot order (``failure_bits`` with the placed capacity, connections and
  group counts: the exact rule ``assign`` checks). A pair it refuses — the
  solver's feasibility tolerance, or a skew the plan-wide reading let
  through — is counted in ``report.dropped``, and the slot takes its best
  backend (by the pair score below) that passes at its turn, if any. The
  refused plan is cut off the model (a no-good row excluding exactly that
  assignment; every plan the kernel accepts survives it) and the solver
  runs again, a few rounds within the time limit. So every returned plan
  passes the kernel's rules in slot order, and ``proved_optimal`` holds
  only when the solver proved the optimum of a model every valid plan
  satisfies and its plan replayed untouched.
* **Objective**, lexicographic in two solves: first the most slots placed;
  then, holding that count, the highest total score.
* **Score**: each pair scores as ``match`` would score it against the
  registry as it is before placement (the performance term from the
  headroom left now). Greedy's performance term depends on what earlier
  slots took, i.e. on slot order; a plan-wide optimum needs a score that
  does not, so the optimal mode's ``Binding.score`` is this one, and the
  report scores greedy's plan the same way for a like-for-like gap.
* **Warm start**: greedy's plan (on the same snapshot) is handed to the
  solver as its first incumbent, and the answer is the better of the
  replayed plan and greedy's, so it never places fewer slots than greedy,
  even when the time limit cuts the search.

Like greedy ``assign``, group caps count the plan's own placements only
(live reservations of the group are ``reserve``'s concern, not assign's).

Same input, same answer: the model is built in a canonical order (slots in
the given order, each slot's candidates by score, then ``backend_id``
bytes, as the kernel ranks them), and HiGHS is deterministic for a given
model. Only a search the time limit cuts short may end at a different
incumbent on a slower or busier machine (``report.proved_optimal`` says
whether the optimum was proved).
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
from .placement import Assignment, Binding, GroupCounts, PlacementError, Unplaced, utilisation_table
from .results import Diagnosis
from .score_table import region_members

if TYPE_CHECKING:
    from .slot_details import PreparedSlot

__all__ = ["assign_optimal", "OptimalAssignment", "SolverReport", "DEFAULT_TIME_LIMIT", "check_time_limit"]

DEFAULT_TIME_LIMIT = 10.0  # seconds, both solves together
MAX_ROUNDS = 8  # solves per objective when the replay refuses the solver's plan (each cuts that plan off)


class SolverReport(msgspec.Struct, frozen=True):
    """How the optimal plan compares with greedy's, and how it was found.

    ``greedy_score`` and ``optimal_score`` are totals of the same score (each
    pair against the registry before placement); ``greedy_score_as_placed``
    is greedy's own total (its performance term after earlier slots).
    ``status`` is HiGHS's model status of the last solve (``Optimal``,
    ``Time limit reached``, …; ``Not needed`` when greedy placed every slot
    that has a candidate and the score solve was skipped for lack of
    time); ``proved_optimal`` is True when both solves proved their optimum
    (within ``mip_gap``, HiGHS's relative gap of the last solve) and the
    kernel's replay accepted that solve's plan as it was (earlier plans it
    refused were cut off the model, which every valid plan still
    satisfies). ``dropped``: pairs of the solver's plans the replay refused
    (module docstring); ``rounds``: solver runs.
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
    rounds: int = 0

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


def _greedy(snap: Any, prepared: list[PreparedSlot], policy: Any, n: int, live: int, groups: GroupCounts):
    """Greedy assign on ``snap`` (as placement.assign runs it, connections
    and group rules included): chosen int64[m] (-1: unplaced) and its own
    scores float64[m]."""
    m = len(prepared)
    chosen = np.full(m, -1, dtype=np.int64)
    score, perf, region = np.zeros(m), np.zeros(m), np.zeros(m)
    placed = [np.zeros(max(n, 1)) for _ in range(5)]
    start = 0
    while live and start < m:
        start = _core.assign_run(snap, prepared, policy, start, *placed[:4], chosen, score, perf, region, placed[4],
                                 **groups.kernel_args()) + 1
    return chosen, score


class _Capacities:
    """What is left on each backend (float64[n] each, from the snapshot) and
    each slot's demands (float64[m]): the resources greedy consumes while
    placing (``_failed`` with a placement, _kernel.pxi)."""

    def __init__(self, columns: Any, snap: Any, prepared: list[PreparedSlot]):
        used_w, used_r, used_storage, used_ns = snap.arrays[:4]
        amounts = np.array([p.amounts for p in prepared], dtype=np.float64).reshape(-1, 3)
        self.need_w, self.need_r, self.need_storage = amounts[:, 0], amounts[:, 1], amounts[:, 2]
        self.need_conn = np.array([p.min_connections for p in prepared], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            self.left_w = np.maximum(columns.max_write_rps - used_w, 0.0)
            self.left_r = np.maximum(columns.max_read_rps - used_r, 0.0)
            # NaN (no max_storage / max_connections): no candidate needs any, so no row.
            self.left_storage = np.where(np.isnan(columns.max_storage), np.inf,
                                         np.maximum(columns.max_storage - used_storage, 0.0))
            self.left_conn = np.where(np.isnan(columns.max_connections), np.inf,
                                      np.maximum(columns.max_connections - snap.connections, 0.0))
            # A count: at most floor(max − count) placements (+inf: no limit);
            # a backend already over its count takes none (never a negative bound).
            self.left_ns = np.maximum(np.floor(columns.max_namespaces - used_ns), 0.0)

    def resources(self, slot_of: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(demand float64[E] of each pair, what is left float64[n]) per resource."""
        return [(self.need_w[slot_of], self.left_w), (self.need_r[slot_of], self.left_r),
                (self.need_storage[slot_of], self.left_storage), (self.need_conn[slot_of], self.left_conn),
                (np.ones(len(slot_of)), self.left_ns)]


class _Rows:
    """The model's constraint rows, all ``≤ upper``, gathered as (row,
    column, value) triples."""

    def __init__(self) -> None:
        self.row: list[np.ndarray] = []
        self.col: list[np.ndarray] = []
        self.val: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.count = 0

    def add(self, row: Any, col: Any, val: Any, upper: Any) -> None:
        """Rows ``count + 0 .. count + len(upper) − 1``; ``row`` numbers them from 0."""
        upper = np.atleast_1d(np.asarray(upper, dtype=np.float64))
        self.row.append(np.asarray(row, dtype=np.int64) + self.count)
        self.col.append(np.asarray(col, dtype=np.int64))
        self.val.append(np.asarray(val, dtype=np.float64))
        self.upper.append(upper)
        self.count += len(upper)

    def csc(self, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(start int64[C+1], index int32[nnz], value float64[nnz], row_upper float64[R])."""
        row, col, val = np.concatenate(self.row), np.concatenate(self.col), np.concatenate(self.val)
        order = np.lexsort((row, col))
        start = np.concatenate([[0], np.cumsum(np.bincount(col, minlength=columns))]).astype(np.int64)
        return start, row[order].astype(np.int32), val[order], np.concatenate(self.upper)


def _capacity_rows(rows: _Rows, m: int, slot_of: np.ndarray, backend_of: np.ndarray, caps: _Capacities,
                   n: int) -> np.ndarray:
    """Each slot at most once, then per resource one row per backend whose
    candidates could together exceed what is left. Returns bool[n]: the
    backends where some resource may run out (within a rounding margin)."""
    e = len(slot_of)
    rows.add(slot_of, np.arange(e), np.ones(e), np.ones(m))
    tight = np.zeros(n, dtype=bool)
    for demand, left in caps.resources(slot_of):
        total = np.bincount(backend_of, weights=demand, minlength=n)
        with np.errstate(invalid="ignore"):
            tight |= total > left * (1.0 - 1e-9)
        # Rows that can bind (inf never does); a backend no pair demands gets none.
        binding = np.flatnonzero((total > left) & (total > 0))
        if not len(binding):
            continue
        row_of_backend = np.full(n, -1, dtype=np.int64)
        row_of_backend[binding] = np.arange(len(binding))
        take = (row_of_backend[backend_of] >= 0) & (demand > 0)
        rows.add(row_of_backend[backend_of[take]], np.flatnonzero(take), demand[take], left[binding])
    return tight


def _limit(value: int | None) -> float:
    return math.inf if value is None else float(value)


def _cap_rows(rows: _Rows, pair: np.ndarray, unit: np.ndarray, slot: np.ndarray, cap: dict[int, float]) -> None:
    """A group's cap over ``unit``s (backends, or regions): entries (pair
    int64[k], unit int64[k], its slot int64[k]) in slot order, a slot's
    cap in ``cap``. The kernel lets slot j into a unit holding fewer than
    cap[j] earlier placements of the group: with K the largest cap, at most
    K per unit, and for each slot with a smaller cap the indicator row
    "placed there ⇒ at most cap − 1 earlier ones"."""
    if not len(pair):
        return
    big = max(cap[j] for j in np.unique(slot).tolist())
    if big < math.inf:
        distinct = np.unique(np.stack([unit, slot]), axis=1)[0]
        units, counts = np.unique(distinct, return_counts=True)
        binding = units[counts > big]
        if len(binding):
            take = np.isin(unit, binding)
            rows.add(np.searchsorted(binding, unit[take]), pair[take], np.ones(int(take.sum())),
                     np.full(len(binding), big))
    for j in np.unique(slot).tolist():
        k = cap[j]
        if k >= big:
            continue
        mine = slot == j
        for u in np.unique(unit[mine]).tolist():
            earlier = (slot < j) & (unit == u)
            big_m = len(np.unique(slot[earlier])) - (k - 1)
            if big_m <= 0:
                continue   # too few earlier slots could land there to reach the cap
            here = mine & (unit == u)
            cols = np.concatenate([pair[earlier], pair[here]])
            vals = np.concatenate([np.ones(int(earlier.sum())), np.full(int(here.sum()), float(big_m))])
            rows.add(np.zeros(len(cols)), cols, vals, k - 1 + big_m)


@dataclasses.dataclass(frozen=True)
class _Spread:
    """A group whose skew is modelled: its ``low`` column, its stable
    domains (region bits int64[d]) and the group's slots (int64[g])."""

    column: int
    domains: np.ndarray
    slots: np.ndarray


def _group_rows(rows: _Rows, prepared: list[PreparedSlot], groups: GroupCounts, slot_of: np.ndarray,
                backend_of: np.ndarray, member: np.ndarray, tight: np.ndarray, e: int) -> list[_Spread]:
    """The group rows (module docstring); returns the modelled skews, whose
    ``low`` columns follow the E pair columns."""
    spreads: list[_Spread] = []
    pair_group = groups.group_of[slot_of]
    for g in range(len(groups.per_backend)):
        pairs = np.flatnonzero(pair_group == g)
        if not len(pairs):
            continue
        slots = slot_of[pairs]
        requirements = {j: prepared[j].requirement for j in np.unique(slots).tolist()}
        per_backend_cap = {j: _limit(q.max_per_backend) for j, q in requirements.items()}
        _cap_rows(rows, pairs, backend_of[pairs], slots, per_backend_cap)
        at, region = np.nonzero(member[backend_of[pairs]])
        _cap_rows(rows, pairs[at], region, slots[at], {j: _limit(q.max_per_region) for j, q in requirements.items()})
        skew = max(_limit(q.max_skew) for q in requirements.values())
        if skew == math.inf:
            continue
        # Stable domains: regions of a backend every member can use and where nothing runs out.
        per_backend = np.bincount(backend_of[pairs], minlength=len(tight))
        stable = np.flatnonzero((per_backend == len(requirements)) & ~tight)
        domains = np.flatnonzero(member[stable].any(axis=0)) if len(stable) else np.zeros(0, dtype=np.int64)
        distinct = np.unique(np.stack([region, slots[at]]), axis=1)[0]
        units, counts = np.unique(distinct, return_counts=True)
        crowded = units[counts > skew]                   # a region that could exceed the skew over low = 0
        if not len(domains) or not len(crowded):
            continue
        low = e + len(spreads)
        spreads.append(_Spread(low, domains, np.array(sorted(requirements), dtype=np.int64)))
        take = np.isin(region, crowded)
        rows.add(np.concatenate([np.searchsorted(crowded, region[take]), np.arange(len(crowded))]),
                 np.concatenate([pairs[at][take], np.full(len(crowded), low)]),
                 np.concatenate([np.ones(int(take.sum())), -np.ones(len(crowded))]), np.full(len(crowded), skew))
        take = np.isin(region, domains)
        rows.add(np.concatenate([np.searchsorted(domains, region[take]), np.arange(len(domains))]),
                 np.concatenate([pairs[at][take], np.full(len(domains), low)]),
                 np.concatenate([-np.ones(int(take.sum())), np.ones(len(domains))]), np.zeros(len(domains)))
    return spreads


class _Solver:
    """The model in HiGHS: E binary pair columns then the continuous ``low``
    columns; maximised."""

    def __init__(self, rows: _Rows, e: int, spreads: list[_Spread]):
        import highspy

        self.highspy, self.e = highspy, e
        columns = e + len(spreads)
        start, index, value, upper = rows.csc(columns)
        self.constraints = len(upper)
        # The compiled class under highspy.Highs: the Python wrapper's
        # constructor prints HiGHS's banner to stdout before any option can be
        # set, which would corrupt `prism-match assign -o json`.
        h = highspy.Highs.__mro__[1]()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.setOptionValue("random_seed", 0)
        lp = highspy.HighsLp()
        lp.num_col_ = columns
        lp.num_row_ = len(upper)
        self.cost = np.concatenate([np.ones(e), np.zeros(len(spreads))])
        lp.col_cost_ = self.cost
        lp.col_lower_ = np.zeros(columns)
        lp.col_upper_ = np.concatenate([np.ones(e), [float(len(s.slots)) for s in spreads]])
        lp.row_lower_ = np.full(len(upper), -highspy.kHighsInf)
        lp.row_upper_ = upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = start
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = value
        lp.integrality_ = [highspy.HighsVarType.kInteger] * e + [highspy.HighsVarType.kContinuous] * len(spreads)
        lp.sense_ = highspy.ObjSense.kMaximize
        h.passModel(lp)
        self.h = h

    def run(self, limit: float, incumbent: np.ndarray, **options: float) -> tuple[np.ndarray, bool, str, float]:
        """One solve from ``incumbent`` (float64[columns]): (x bool[E], proved, status, mip_gap)."""
        h, highspy = self.h, self.highspy
        for name, option in options.items():
            h.setOptionValue(name, option)
        began = time.perf_counter()
        h.setOptionValue("time_limit", max(limit, 1e-3))
        solution = highspy.HighsSolution()
        solution.col_value = incumbent
        h.setSolution(solution)
        h.run()
        if h.getInfo().primal_solution_status and not math.isclose(
                float(self.cost @ np.asarray(h.getSolution().col_value)), h.getInfo().objective_function_value,
                rel_tol=1e-9, abs_tol=1e-9):
            # HiGHS 1.16 hands back the incumbent given to setSolution, with
            # the optimum's objective, when its presolve solves the MIP
            # outright; solved again without presolve, the values are the optimum's.
            h.setOptionValue("presolve", "off")
            h.setOptionValue("time_limit", max(limit - (time.perf_counter() - began), 1e-3))
            h.run()
            h.setOptionValue("presolve", "choose")
        status = h.getModelStatus()
        found = np.asarray(h.getSolution().col_value)[:self.e] > 0.5 if h.getInfo().primal_solution_status \
            else incumbent[:self.e] > 0.5
        return found, status == highspy.HighsModelStatus.kOptimal, h.modelStatusToString(status), \
            float(h.getInfo().mip_gap)

    def score_objective(self, pair_score: np.ndarray, at_least: int) -> None:
        """Second objective: the total score, holding ``at_least`` slots placed."""
        every = np.arange(self.e, dtype=np.int32)
        self.cost[:self.e] = pair_score
        self.h.changeColsCost(self.e, every, self.cost[:self.e].copy())
        self.h.addRow(float(at_least), self.highspy.kHighsInf, self.e, every, np.ones(self.e))

    def cut(self, x: np.ndarray) -> None:
        """Exclude exactly the assignment ``x`` (bool[E]): Σ_{x} − Σ_{not x} ≤ |x| − 1."""
        every = np.arange(self.e, dtype=np.int32)
        self.h.addRow(-self.highspy.kHighsInf, float(x.sum()) - 1.0, self.e, every, np.where(x, 1.0, -1.0))


class _Replay:
    """The kernel's placement rules replayed over a plan in slot order
    (``failure_bits`` with the placed capacity, connections and group
    counts): the check greedy ``assign`` makes at each slot's turn."""

    def __init__(self, snap: Any, prepared: list[PreparedSlot], policy: Any, caps: _Capacities,
                 groups: GroupCounts, member: np.ndarray, candidates: list[np.ndarray], n: int):
        self.snap, self.prepared, self.policy, self.caps = snap, prepared, policy, caps
        self.groups, self.member, self.candidates, self.n = groups, member, candidates, max(n, 1)

    def __call__(self, plan: np.ndarray) -> tuple[np.ndarray, int, dict[str, np.ndarray], tuple]:
        """(the plan the kernel accepts int64[m], pairs refused, placed
        {w, r, storage, ns, conn: float64[n]}, group counts ([G, n], [G, bits]))."""
        caps, groups = self.caps, self.groups
        placed = {key: np.zeros(self.n) for key in ("w", "r", "storage", "ns", "conn")}
        per_backend, per_region = np.zeros_like(groups.per_backend), np.zeros_like(groups.per_region)
        width = self.member.shape[1]
        out = np.full(len(plan), -1, dtype=np.int64)
        refused = 0
        for j in np.flatnonzero(plan >= 0).tolist():
            b, g = int(plan[j]), int(groups.group_of[j])
            group = (per_backend[g], per_region[g]) if g >= 0 else None
            bits = self.snap.failure_bits(self.prepared[j], self.policy,
                                          (placed["w"], placed["r"], placed["storage"], placed["ns"]), group,
                                          placed["conn"])[0]
            if bits[b]:
                refused += 1
                passing = [c for c in self.candidates[j].tolist() if not bits[c]]
                if not passing:
                    continue
                b = passing[0]   # its best pair (by score, then backend_id) that passes now
            out[j] = b
            placed["w"][b] += caps.need_w[j]
            placed["r"][b] += caps.need_r[j]
            placed["storage"][b] += caps.need_storage[j]
            placed["ns"][b] += 1
            placed["conn"][b] += caps.need_conn[j]
            if g >= 0:
                per_backend[g, b] += 1
                per_region[g, :width] += self.member[b]
        return out, refused, placed, (per_backend, per_region)


def assign_optimal(engine: Engine, slots: Any, *, commit: bool = False, allow_unplaced: bool = False,
                   time_limit: float = DEFAULT_TIME_LIMIT) -> OptimalAssignment:
    """The plan that places the most slots, then the highest total score,
    within every limit greedy ``assign`` respects: capacity, connections,
    namespaces and group caps (module docstring). ``bindings`` in slot
    order, ``unplaced`` with a diagnosis against the finished plan (what
    the other placements left), ``report`` the comparison with greedy.
    ``commit`` and ``allow_unplaced`` as for greedy ``assign``;
    ``time_limit`` in seconds for the solver."""
    time_limit = check_time_limit(time_limit)
    began = time.perf_counter()
    prepared = prepare_all(engine, slots)
    columns = engine.columns
    m, n = len(prepared), columns.n
    snap = _core.LiveSnapshot(engine.core)
    policy = engine.core_policy
    live_w, live_r, live_storage, live_ns, live_avail, live_health = snap.arrays
    groups = GroupCounts(columns, prepared)
    greedy_chosen, greedy_own = _greedy(snap, prepared, policy, n, columns.live, groups)
    slot_of, backend_of, pair_score, pair_perf, pair_region = _core.placement_pairs(snap, prepared, policy)
    member = region_members(columns) if n else np.zeros((0, 64), dtype=bool)   # bool[n, region bits]
    # A slot bounding its skew never goes to a backend outside every region.
    skewed = np.array([p.requirement.max_skew is not None for p in prepared] or [False])
    keep = ~(skewed[slot_of] & ~member[backend_of].any(axis=1)) if len(slot_of) else np.zeros(0, dtype=bool)
    slot_of, backend_of, pair_score, pair_perf, pair_region = (
        a[keep] for a in (slot_of, backend_of, pair_score, pair_perf, pair_region))
    caps = _Capacities(columns, snap, prepared)
    e = len(slot_of)
    width = max(n, 1)
    pair_at = {k: i for i, k in enumerate((slot_of * width + backend_of).tolist())}
    bounds = np.searchsorted(slot_of, np.arange(m + 1))
    candidates = [backend_of[bounds[j]:bounds[j + 1]] for j in range(m)]   # best first
    replay = _Replay(snap, prepared, policy, caps, groups, member, candidates, n)

    rows = _Rows()
    tight = _capacity_rows(rows, m, slot_of, backend_of, caps, n)
    spreads = _group_rows(rows, prepared, groups, slot_of, backend_of, member, tight, e)

    def pairs_of(plan: np.ndarray) -> np.ndarray:
        """The pair columns of a plan (int64[placed])."""
        return np.array([pair_at[j * width + int(b)] for j, b in enumerate(plan.tolist()) if b >= 0],
                        dtype=np.int64)

    def value(plan: np.ndarray) -> tuple[int, float]:
        return int((plan >= 0).sum()), float(pair_score[pairs_of(plan)].sum())

    def vector(plan: np.ndarray) -> np.ndarray:
        """The solver's columns for a plan the kernel accepts: its pairs, and
        each spread's ``low`` at the fewest placements in a stable domain."""
        out = np.zeros(e + len(spreads))
        out[pairs_of(plan)] = 1.0
        for s in spreads:
            at = plan[s.slots]
            counts = member[at[at >= 0]][:, s.domains].sum(axis=0)
            out[s.column] = float(counts.min())
        return out

    def plan_of(x: np.ndarray) -> np.ndarray:
        plan = np.full(m, -1, dtype=np.int64)
        plan[slot_of[x]] = backend_of[x]
        return plan

    best, best_value = greedy_chosen, value(greedy_chosen)
    greedy_value = best_value
    placeable = int(len(np.unique(slot_of)))
    status, proved, gap, rounds, dropped = "Not needed", True, 0.0, 0, 0
    solver = _Solver(rows, e, spreads) if e else None

    def search(by_score: bool, **options: float) -> tuple[bool, str, float]:
        """Solve, replay, keep the better plan; cut a refused plan off and
        solve again (MAX_ROUNDS, time allowing). Returns (proved, status, gap)."""
        nonlocal best, best_value, rounds, dropped
        found_status, found_gap = "Time limit reached", gap
        for _ in range(MAX_ROUNDS):
            left = time_limit - (time.perf_counter() - began)
            if left <= 0:
                break
            x, optimal, found_status, found_gap = solver.run(left, vector(best), **options)
            rounds += 1
            plan, refused, _, _ = replay(plan_of(x))
            candidate = value(plan)
            if (candidate if by_score else candidate[:1]) > (best_value if by_score else best_value[:1]):
                best, best_value = plan, candidate
            if not refused:
                return optimal, found_status, found_gap
            dropped += refused
            solver.cut(x)
        return False, found_status, found_gap

    if solver is not None:
        if best_value[0] < placeable:
            # The count is an integer: a gap below one slot proves it.
            proved, status, gap = search(False, mip_rel_gap=0.0, mip_abs_gap=0.999)
        if time_limit - (time.perf_counter() - began) > 0:
            solver.score_objective(pair_score, best_value[0])
            proved_score, status, gap = search(True, mip_rel_gap=1e-9, mip_abs_gap=1e-9)
            proved = proved and proved_score
        else:
            status, proved = "Time limit reached", False

    chosen, _, placed, (group_backend, group_region) = replay(best)
    took = chosen >= 0
    view = columns.with_usage(used_write_rps=live_w, used_read_rps=live_r, used_storage=live_storage,
                              used_namespaces=live_ns, avail_score=live_avail, health=live_health,
                              used_connections=snap.connections)
    ids = columns.backend_ids
    bindings = []
    for j in np.flatnonzero(took).tolist():
        b = int(chosen[j])
        k = pair_at[j * width + b]
        bindings.append(Binding(prepared[j].slot_name, ids[b], float(pair_score[k]), float(pair_perf[k]),
                                float(columns.cost_score[b]), float(live_avail[b]), float(pair_region[k])))
    unplaced = []
    for j in np.flatnonzero(~took).tolist():
        g = int(groups.group_of[j])
        group = (group_backend[g], group_region[g]) if g >= 0 else None
        unplaced.append(Unplaced(prepared[j].slot_name, prepared[j].optional,
                                 _diagnoser(engine, snap, view, prepared[j], placed, group)))
    report = SolverReport(
        status=status, proved_optimal=bool(proved), time_limit=time_limit,
        seconds=time.perf_counter() - began, slots=m, candidates=e,
        constraints=solver.constraints if solver is not None else 0,
        greedy_placed=greedy_value[0], optimal_placed=len(bindings), greedy_score=greedy_value[1],
        optimal_score=float(sum(b.score for b in bindings)),
        greedy_score_as_placed=float(greedy_own[greedy_chosen >= 0].sum()), mip_gap=gap, dropped=dropped,
        rounds=rounds)
    table = utilisation_table(view, {key: used[:n] for key, used in placed.items()})
    result = OptimalAssignment(bindings, unplaced, table, False, report=report)
    if not result.ok and not allow_unplaced:
        raise PlacementError(result)
    if commit:
        engine.core.add_usage(placed["w"], placed["r"], placed["storage"], placed["ns"], placed["conn"])
        engine.core.record("assign", None, {"placed": len(bindings), "method": "optimal"})
        result = dataclasses.replace(result, committed=True)
    return result


def _diagnoser(engine: Engine, snap: Any, view: Any, slot: PreparedSlot, placed: dict[str, np.ndarray],
               group: tuple[np.ndarray, np.ndarray] | None) -> Callable[[], Diagnosis]:
    """Why a slot stayed out of the optimal plan: the diagnosis against
    what the whole plan took, connections and its group's placements
    included (built on first read)."""
    def make() -> Diagnosis:
        bits, counts, eligible = snap.failure_bits(slot, engine.core_policy,
                                                   (placed["w"], placed["r"], placed["storage"], placed["ns"]),
                                                   group, placed["conn"])
        return diagnose(slot, view, bits, counts, int(eligible))

    return make
