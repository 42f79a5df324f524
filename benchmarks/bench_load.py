"""Load + compile: documents (JSON file, YAML file, list of dicts) → a Registry.

Issue 2's targets: 10,000 backends from JSON under 0.3 s, from YAML under
2 s; compiled columns under 200 bytes per backend (ids excluded).
"""

import prism_match
from prism_match import Registry, load_registry

from . import common


class LoadRegistry:
    params = ([100, 1_000, 10_000], ["json", "yaml", "dicts"])
    param_names = ["backends", "format"]
    timeout = 300

    def setup(self, n, fmt):
        self.source = common.registry_source(n, fmt)

    def time_load(self, n, fmt):
        load_registry(self.source)

    def peakmem_load(self, n, fmt):
        load_registry(self.source)


class CompiledSize:
    params = [100, 1_000, 10_000, 100_000]
    param_names = ["backends"]
    timeout = 300

    def setup(self, n):
        self.registry = common.registry(n)

    def track_bytes_per_backend(self, n):
        return self.registry.columns.nbytes() / len(self.registry)

    track_bytes_per_backend.unit = "bytes"


class FromPolars:
    """The columnar way in (issue 4): a table of backends → a Registry."""

    params = [10_000, 100_000, 1_000_000]
    param_names = ["backends"]
    timeout = 900

    def setup(self, n):
        common.require_api("from_polars")
        self.table = common.backend_frame(n)

    def time_from_polars(self, n):
        Registry.from_polars(self.table)

    def peakmem_from_polars(self, n):
        Registry.from_polars(self.table)


class LoadSnapshot:
    """``load_snapshot``: the compiled columns back from disk (issue 4: well under a second)."""

    params = [10_000, 100_000, 1_000_000]
    param_names = ["backends"]
    timeout = 900

    def setup(self, n):
        if not common.has_snapshots():
            raise NotImplementedError("Registry.save / load_snapshot are not available in this build")
        self.path = common.snapshot_path(n)

    def time_load_snapshot(self, n):
        prism_match.load_snapshot(self.path)

    def peakmem_load_snapshot(self, n):
        prism_match.load_snapshot(self.path)
