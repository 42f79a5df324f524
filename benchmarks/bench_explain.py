"""Diagnoses: ``Registry.explain`` counts every rule's rejections (the numpy path)."""

from . import common


class Explain:
    params = ([100, 10_000, 100_000], ["broad", "narrow"])
    param_names = ["backends", "selectivity"]
    timeout = 600

    def setup(self, n, selectivity):
        self.registry = common.registry(n)
        self.slot = self.registry.prepare(common.selectivity_slot(selectivity))

    def time_explain(self, n, selectivity):
        self.registry.explain(self.slot)

    def peakmem_explain(self, n, selectivity):
        self.registry.explain(self.slot)


class ExplainText:
    """The diagnosis as text, with a did-you-mean for a name no backend knows."""

    params = [1_000]
    param_names = ["backends"]

    def setup(self, n):
        self.registry = common.registry(n)
        typo = dict(common.selectivity_slot("narrow"), interfaces=["KeyValueBasicInterfce"])
        self.slots = [self.registry.prepare(common.selectivity_slot("narrow")), self.registry.prepare(typo)]

    def time_explain_text(self, n):
        for slot in self.slots:
            str(self.registry.explain(slot))
