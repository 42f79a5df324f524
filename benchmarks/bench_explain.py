"""Diagnoses: ``Registry.explain`` counts every rule's rejections (the numpy path)."""

from . import common


class Explain:
    params = ([100, 1_000, 10_000, 100_000], ["broad", "narrow"])
    param_names = ["backends", "selectivity"]
    timeout = 600

    def setup(self, n, selectivity):
        self.registry = common.registry(n)
        self.slot = self.registry.prepare(common.selectivity_slot(selectivity))

    def time_explain(self, n, selectivity):
        self.registry.explain(self.slot)

    def peakmem_explain(self, n, selectivity):
        self.registry.explain(self.slot)

    def time_explain_text(self, n, selectivity):
        str(self.registry.explain(self.slot))
