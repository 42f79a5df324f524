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
