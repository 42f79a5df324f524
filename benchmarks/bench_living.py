"""A living registry: add, remove, reserve, release, match after churn
and after growth, and the scan order built again.

Targets (issue 11): ``add`` of one backend under 10 µs amortized at 100,000
backends, ``remove`` under 2 µs; ``reserve`` of a prepared slot at most 2×
a prepared ``match`` at 1,000 backends, ``release`` under 1 µs; ``match``
unchanged after 10% of the backends were removed and as many added.
asv times one call per sample, so each add/remove class cycles through a
pool of new ids made in setup (a remove needs a backend that is there);
``PerBackend`` tracks µs per backend over 2,000 adds or removes in a row
(``benchmarks/living.py`` prints the same figures).
"""

from prism_match import load_registry

from . import common
from .living import Steady, churn_adds

POOL = 2_000


def _new_docs(n: int) -> list[dict]:
    docs = common.documents(POOL, seed=common.SEED + 1)
    return [dict(d, backend_id=f"zz-added-{n}-{j:05d}") for j, d in enumerate(docs)]


class AddRemove:
    params = [1_000, 100_000]
    param_names = ["backends"]
    timeout = 600

    def setup(self, n):
        self.registry = common.fresh_registry(n)
        self.docs = _new_docs(n)
        self.next = 0
        self.added: list[str] = []

    def time_add(self, n):
        doc = self.docs[self.next % POOL]
        if doc["backend_id"] in self.registry:
            self.registry.remove(doc["backend_id"])
        self.registry.add(doc)
        self.next += 1

    def time_add_remove(self, n):
        doc = self.docs[self.next % POOL]
        self.registry.add(doc)
        self.registry.remove(doc["backend_id"])
        self.next += 1


class PerBackend:
    """µs per backend, 2,000 in a row into a registry in steady state:
    ``add`` of Registrations with the validation step stubbed out (the
    registry's own work), of Registrations as given, of dicts, of lists of
    1,000 dicts; ``msgspec.convert`` of one dict alone (the validation
    floor); ``remove``."""

    params = [1_000, 100_000]
    param_names = ["backends"]
    unit = "µs"
    timeout = 600

    def setup(self, n):
        self.steady = Steady(n)

    def track_add_own(self, n):
        return self.steady.per_backend("add_own") * 1e6

    def track_add_registration(self, n):
        return self.steady.per_backend("add_struct") * 1e6

    def track_add_dict(self, n):
        return self.steady.per_backend("add_dict") * 1e6

    def track_add_list(self, n):
        return self.steady.per_backend("add_list") * 1e6

    def track_validate_msgspec(self, n):
        return self.steady.per_backend("validate_msgspec") * 1e6

    def track_remove(self, n):
        return self.steady.per_backend("remove") * 1e6


class RandomChurn:
    """µs per add and per remove in a random churn (``living.churn_adds``):
    a random backend leaves and a new one joins, 2,000 times; means, so
    every cascade, label spread and relayout is in them."""

    params = [1_000, 100_000]
    param_names = ["backends"]
    unit = "µs"
    timeout = 600

    def setup(self, n):
        self.figures = churn_adds(n, 1)

    def track_add(self, n):
        return self.figures["churn_add"] * 1e6

    def track_remove(self, n):
        return self.figures["churn_remove"] * 1e6


class ReserveRelease:
    params = [1_000, 100_000]
    param_names = ["backends"]

    def setup(self, n):
        self.registry = common.fresh_registry(n)
        self.slot = self.registry.prepare(common.selectivity_slot("medium"))

    def time_match(self, n):
        self.registry.match(self.slot, 1)

    def time_reserve_release(self, n):
        self.registry.release(self.registry.reserve(self.slot))


class MatchAfterChurn:
    """A prepared top-5 match on a registry where 10% of the backends were
    removed and as many added (holes reused), against a fresh one."""

    params = ([1_000, 100_000], ["fresh", "churned"])
    param_names = ["backends", "registry"]
    timeout = 600

    def setup(self, n, state):
        self.registry = common.fresh_registry(n)
        if state == "churned":
            ids = self.registry.backend_ids
            for bid in ids[::10]:
                self.registry.remove(bid)
            docs = common.documents(n // 10 + 1, seed=common.SEED + 2)
            self.registry.add([dict(d, backend_id=f"zz-churn-{j:07d}") for j, d in enumerate(docs[:len(ids[::10])])])
        self.slot = self.registry.prepare(common.selectivity_slot("medium"))

    def time_match(self, n, state):
        self.registry.match(self.slot, 5)


class MatchAfterGrowth:
    """A prepared top-5 match on a registry loaded with half its backends
    and grown to ``backends`` by adds one at a time (no hole to fill: the
    scan order is built again each time a sixteenth of it came in beside no
    run of its key), against one loaded whole."""

    params = ([1_000, 100_000], ["whole", "grown"])
    param_names = ["backends", "registry"]
    timeout = 600

    def setup(self, n, state):
        docs = common.documents(n)
        self.registry = load_registry(docs if state == "whole" else docs[:n // 2])
        if state == "grown":
            for doc in docs[n // 2:]:
                self.registry.add(doc)
        self.slot = self.registry.prepare(common.selectivity_slot("medium"))

    def time_match(self, n, state):
        self.registry.match(self.slot, 5)


class Relayout:
    """The scan order built again from the columns (``CoreRegistry.order_by``
    with ``force``): the pause a registry that grows with no hole to fill
    takes on one add each time a sixteenth of it came in beside no run of
    its key (``_relayout_if_misplaced``), and the O(n log n) part of a
    growing registry's add."""

    params = [1_000, 100_000]
    param_names = ["backends"]
    timeout = 600

    def setup(self, n):
        self.registry = common.fresh_registry(n)
        self.registry.match(self.registry.prepare(common.selectivity_slot("medium")), 5)
        self.core = self.registry.engine.core

    def time_order_by(self, n):
        scan = self.core.scan_order
        self.core.order_by(scan.w_cost, scan.w_avail, scan.block_words, True)
