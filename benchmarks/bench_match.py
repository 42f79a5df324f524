"""Single matches: prepared slot, mapping slot, selectivity, query, and the numpy baseline.

Issue 3's targets: a prepared top-5 match ≥ 10× faster than the numpy
baseline at 1,000 and 100,000 backends (about 2 µs at 1,000); a mapping slot
at most 3× a prepared one. Issue 4: under 2 ms at 1,000,000 backends.
"""

from . import common
from .baseline import BaselineRegistry

BACKENDS = [100, 1_000, 10_000, 100_000] + ([1_000_000] if common.has_from_polars() else [])


class MatchPrepared:
    params = BACKENDS
    param_names = ["backends"]
    timeout = 600

    def setup(self, n):
        self.registry = common.registry(n)
        self.slot = self.registry.prepare(common.selectivity_slot("medium"))

    def time_match(self, n):
        self.registry.match(self.slot, 5)

    def peakmem_match(self, n):
        self.registry.match(self.slot, 5)


class MatchK:
    params = ([10_000], [1, 5, 100, 1_000])
    param_names = ["backends", "k"]

    def setup(self, n, k):
        self.registry = common.registry(n)
        self.slot = self.registry.prepare(common.selectivity_slot("medium"))

    def time_match(self, n, k):
        self.registry.match(self.slot, k)


class MatchSelectivity:
    params = ([10_000], ["broad", "medium", "narrow"])
    param_names = ["backends", "selectivity"]
    timeout = 300

    def setup(self, n, selectivity):
        self.registry = common.registry(n)
        self.slot = self.registry.prepare(common.selectivity_slot(selectivity))

    def time_match(self, n, selectivity):
        self.registry.match(self.slot, 5)


class MatchMapping:
    """A mapping slot: through the registry's content cache, new on every
    call (a pool of distinct slots larger than the cache), or prepared
    explicitly each time; against a prepared slot."""

    params = ([1_000], ["prepared", "cached_mapping", "new_mapping", "cold_mapping"])
    param_names = ["backends", "slot"]

    def setup(self, n, mode):
        self.registry = common.registry(n)
        self.mapping = common.selectivity_slot("medium")
        self.prepared = self.registry.prepare(self.mapping)
        self.registry.match(self.mapping, 5)  # warm the content cache
        self.next_new = common.slot_stream("medium")  # one per process: it keeps its place across setups

    def time_match(self, n, mode):
        if mode == "prepared":
            self.registry.match(self.prepared, 5)
        elif mode == "cached_mapping":
            self.registry.match(self.mapping, 5)
        elif mode == "new_mapping":
            self.registry.match(self.next_new(), 5)
        else:
            self.registry.match(self.registry.prepare(self.mapping), 5)


class BaselineMatch:
    """The numpy baseline on the same slots, for the ratio."""

    params = [100, 1_000, 10_000, 100_000]
    param_names = ["backends"]
    timeout = 600

    def setup(self, n):
        registry = common.registry(n)
        self.baseline = BaselineRegistry(registry)
        self.slot = self.baseline.prepare(common.selectivity_slot("medium"))

    def time_baseline_match(self, n):
        self.baseline.topk(self.slot, 5)


class Query:
    """Every eligible backend, best first (the seed's "Backend Querying")."""

    params = [1_000, 10_000]
    param_names = ["backends"]

    def setup(self, n):
        self.registry = common.registry(n)
        self.slot = self.registry.prepare(common.selectivity_slot("medium"))

    def time_query(self, n):
        self.registry.query(self.slot)

    def peakmem_query(self, n):
        self.registry.query(self.slot)


class MatchShapes:
    """Issue 15's slot shapes (benchmarks/pruning.py), with the scan order
    (skipping what cannot win) and without it (``plain``: every position
    visited, as before): the hard case (minimums that keep the performance
    term under its cap, 30 % copies), exact ties, a rare region and a
    non-default policy."""

    params = ([1_000, 100_000] + ([1_000_000] if common.has_from_polars() else []),
              ["medium", "high minimums", "exact ties", "rare region", "non-default policy"],
              ["scan order", "plain"])
    param_names = ["backends", "shape", "kernel"]
    timeout = 900

    def setup(self, n, shape, kernel):
        from prism_match import MatchPolicy

        slot = {"medium": common.selectivity_slot("medium"), "high minimums": common.HARD_SLOT,
                "exact ties": common.selectivity_slot("broad"), "rare region": common.RARE_REGION_SLOT,
                "non-default policy": common.selectivity_slot("medium")}[shape]
        hard = shape in ("high minimums", "exact ties")
        # A private copy: the kernel switch and the policy must not reach other benchmarks.
        self.registry = common.hard_registry(n, fresh=True) if hard else common.fresh_registry(n)
        if shape == "non-default policy":
            self.registry.policy = MatchPolicy(w_perf=0.1, w_cost=0.5, w_avail=0.1, w_region=0.3,
                                               capacity_basis="available")
        self.registry.engine.core.use_scan_order = kernel == "scan order"
        self.slot = self.registry.prepare(slot)

    def time_match(self, n, shape, kernel):
        self.registry.match(self.slot, 5)
