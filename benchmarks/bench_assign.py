"""Capacity-aware placement: ``Registry.assign`` (issue 4).

Target: 10,000 slots on 1,000 backends under 0.5 s. Skipped until
``Registry.assign`` exists.
"""

from . import common


class Assign:
    params = ([1_000, 10_000], [1_000, 10_000])
    param_names = ["slots", "backends"]
    timeout = 600

    def setup(self, m, n):
        common.require_api("assign")
        self.registry = common.registry(n)
        self.slots = [self.registry.prepare(s) for s in common.slots(m)]

    # A dry run (nothing committed), so every call starts from the same state;
    # synthetic slots outgrow small registries, and unplaced ones are part of the work.
    def time_assign(self, m, n):
        self.registry.assign(self.slots, allow_unplaced=True)

    def peakmem_assign(self, m, n):
        self.registry.assign(self.slots, allow_unplaced=True)


class AssignOptimal:
    """``assign(method="optimal")`` on a tight registry: the synthetic slots
    outgrow these backends (greedy leaves 10-15 % unplaced), so the solver
    has real work. ``track_optimal_placed`` / ``track_greedy_placed``
    record the slots each places; the figures with greedy beside them come from
    ``benchmarks/optimal_vs_greedy.py``."""

    params = ([100, 1_000], [50, 200])
    param_names = ["slots", "backends"]
    timeout = 900

    def setup(self, m, n):
        common.require_api("assign")
        self.registry = common.registry(n)
        self.slots = [self.registry.prepare(s) for s in common.slots(m)]

    def _solve(self):
        return self.registry.assign(self.slots, allow_unplaced=True, method="optimal", time_limit=300)

    def time_assign_optimal(self, m, n):
        self._solve()

    # Slots placed by each method (their difference is what optimal adds; asv
    # tracks positive numbers).
    def track_optimal_placed(self, m, n):
        return self._solve().report.optimal_placed

    def track_greedy_placed(self, m, n):
        return self._solve().report.greedy_placed

    track_optimal_placed.unit = track_greedy_placed.unit = "slots"
