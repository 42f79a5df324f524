"""Batches: ``Registry.match_many`` over thousands of slots (issue 4).

Target: 2,000 and 10,000 slots × 10,000 backends, top-5, at least 15× faster
than a Python loop over the numpy baseline, on both cores. Skipped until
``Registry.match_many`` exists.
"""

from . import common


class MatchMany:
    params = ([100, 2_000, 10_000], [10_000], [1, 0])
    param_names = ["slots", "backends", "threads"]  # threads 0: the library's default
    timeout = 600

    def setup(self, m, n, threads):
        common.require_api("match_many")
        self.registry = common.registry(n)
        self.slots = [self.registry.prepare(s) for s in common.slots(m)]
        self.threads = threads or None

    def time_match_many(self, m, n, threads):
        self.registry.match_many(self.slots, 5, threads=self.threads)

    def peakmem_match_many(self, m, n, threads):
        self.registry.match_many(self.slots, 5, threads=self.threads)


class MatchManyMappings:
    """Mappings straight from a file: preparing is part of the cost."""

    params = ([2_000], [10_000])
    param_names = ["slots", "backends"]
    timeout = 600

    def setup(self, m, n):
        common.require_api("match_many")
        self.registry = common.registry(n)
        self.slots = common.slots(m)

    def time_match_many(self, m, n):
        self.registry.match_many(self.slots, 5)
