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
