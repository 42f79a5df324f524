"""Live state: ``Registry.update`` in place, constant time (SPEC §5).

Target: under 1 µs a call, whatever the registry's size.
"""

from . import common


class Update:
    params = ([1_000, 100_000], ["write_rps", "all"])
    param_names = ["backends", "fields"]
    timeout = 300

    def setup(self, n, fields):
        self.registry = common.fresh_registry(n)
        self.backend_id = self.registry.backend_ids[n // 2]
        self.update = self.registry.update

    def time_update(self, n, fields):
        if fields == "write_rps":
            self.update(self.backend_id, write_rps=1234.0)
        else:
            self.update(self.backend_id, write_rps=1234.0, read_rps=5678.0, storage_used=1e9,
                        namespace_count=3, status="healthy", uptime=99.9)


class UpdateThenMatch:
    """The placement loop's step: record usage, then match again."""

    params = [1_000, 10_000]
    param_names = ["backends"]

    def setup(self, n):
        self.registry = common.fresh_registry(n)
        self.slot = self.registry.prepare(common.selectivity_slot("medium"))
        self.backend_id = self.registry.match(self.slot, 1)[0].backend_id

    def time_update_then_match(self, n):
        self.registry.update(self.backend_id, write_rps=1000.0)
        self.registry.match(self.slot, 5)
