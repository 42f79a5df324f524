"""The living registry's figures (issue 11):

    .venv/bin/python benchmarks/living.py            # every figure, as text
    .venv/bin/python benchmarks/living.py --adds     # add and remove only
    .venv/bin/python benchmarks/living.py --adds --json   # the same, one JSON object

Times are medians over rounds (5 unless ``--rounds``). Only the public API
is timed, so the same script measures any commit that has ``add`` and
``remove`` (run it with another checkout's interpreter for a before/after
in one session; see ``--json``).

* add and remove per backend at 1,000 and 100,000 backends, in steady state
  (2,000 backends added first, so the first growth of the columns and the
  ids' order are paid; each round adds 2,000 backends, then removes them,
  so adds reuse the holes removes leave):

  - ``add_own``: ``add`` of validated ``Registration`` structs with the
    validation step stubbed out: the registry's own work (rows, columns,
    order labels, index, change log);
  - ``add_prepared``: ``add`` of ``PreparedRegistration``s
    (``Registry.prepare_registration``, made before: validated and
    encoded), the public way to the registry's own work;
  - ``add_struct``: ``add`` of ``Registration`` structs as given (checked
    again: a Struct's constructor checks nothing);
  - ``add_dict``: ``add`` of one plain dict (validation included);
  - ``add_list``: ``add`` of a list of 1,000 dicts, per backend;
  - ``validate_msgspec``: ``msgspec.convert`` of one dict into a
    Registration alone, the floor under ``add_dict``;
  - ``remove``: ``remove`` of one backend;
  - ``match_top1``: a prepared top-1 match at 1,000 backends, a yardstick
    of how fast the machine is at the moment of the run; each case is also
    given in yardsticks (``case/yardstick``: each round's time over a
    yardstick sample taken just before it, median over rounds), since the
    machine's speed swings by 2x within minutes;
* add and remove in a random churn at 100,000 backends (``churn_add``,
  ``churn_remove``): a random backend leaves and a new one joins, a
  generated body (its key in any run of the scan order) with a new id
  numbered on in its fleet (several fleets growing at once); the mean of
  each round (amortized: every cascade, label spread and relayout of the
  round is in it), validation stubbed out as in ``add_own``, the median
  over rounds; also in yardsticks;
* the same churn on a registry loaded from documents
  (``churn_add_documents``, ``churn_remove_documents``), which keeps each
  backend's record (a registry loaded from a snapshot reads the snapshot's
  until the backend is replaced), and with dicts added, validation
  included (``churn_add_dict``, ``churn_remove_dict``: what a service
  registering backends as they come pays), and with prepared registrations
  (``churn_add_prepared``, ``churn_remove_prepared``: validated and
  encoded before, off the timed loop);
* reserve of a prepared slot and release, each alone (2,000 reservations
  taken, then given back), against a prepared top-1 match timed the same
  way just before (the median of the per-round ratios), at 1,000 backends;
* a prepared top-5 match on a fresh registry and on one where 10% of the
  backends were removed and as many added (1,000 and 1,000,000 backends);
* the same on a registry loaded with half its backends and grown by adds
  one at a time (100,000), with the cost of those adds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec  # noqa: E402

from benchmarks import common  # noqa: E402
from prism_match import load_registry  # noqa: E402
from prism_match.schema import Registration, decode_hook  # noqa: E402
from prism_match.synthetic import generate_registry  # noqa: E402

BATCH = 2_000
LIST = 1_000
HELD = 2_000


def median_time(call, n: int) -> float:
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(n):
            call()
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples)


def _as_validated(registration, strict=True, allow_inline_secrets=False):
    """Stands in for ``Registry._validated`` where the validation step is
    stubbed out: the validated Registration as given (keyword parameters,
    so the stub builds no dict of them on each call)."""
    return [registration]


@contextlib.contextmanager
def validation_stubbed(registry):
    """``registry.add`` takes validated Registrations as given, inside."""
    registry._validated = _as_validated  # type: ignore[method-assign]
    try:
        yield registry
    finally:
        del registry._validated


def _per_item(call, items) -> float:
    start = time.perf_counter()
    for item in items:
        call(item)
    return (time.perf_counter() - start) / len(items)


CASES = ("add_own", "add_prepared", "add_struct", "add_dict", "add_list", "validate_msgspec", "remove")


class Steady:
    """A registry of ``n`` backends in steady state (``BATCH`` backends added
    and the columns grown), and ``BATCH`` more to add: as dicts, and as
    validated Registrations."""

    def __init__(self, n: int):
        self.registry = common.fresh_registry(n)
        docs = generate_registry(BATCH * 2, seed=2)
        for j, doc in enumerate(docs):
            doc["backend_id"] = f"zz-new-{j:05d}"
        self.registry.add(docs[:BATCH])
        self.docs = docs[BATCH:]
        self.structs = [msgspec.convert(d, Registration, dec_hook=decode_hook) for d in self.docs]
        self.prepared = [self.registry.prepare_registration(d) for d in self.docs]
        self.ids = [d["backend_id"] for d in self.docs]

    def per_backend(self, case: str) -> float:
        """Seconds per backend of one case (``CASES``); the registry is left
        as it was found (what was added is removed again)."""
        registry = self.registry
        if case == "remove":
            registry.add(self.structs)
            return _per_item(registry.remove, self.ids)
        if case == "validate_msgspec":
            return _per_item(lambda d: msgspec.convert(d, Registration, dec_hook=decode_hook), self.docs)
        if case == "add_own":
            with validation_stubbed(registry):
                seconds = _per_item(registry.add, self.structs)
        elif case == "add_prepared":
            seconds = _per_item(registry.add, self.prepared)
        elif case == "add_struct":
            seconds = _per_item(registry.add, self.structs)
        elif case == "add_dict":
            seconds = _per_item(registry.add, self.docs)
        elif case == "add_list":
            start = time.perf_counter()
            for first in range(0, len(self.docs), LIST):
                registry.add(self.docs[first:first + LIST])
            seconds = (time.perf_counter() - start) / len(self.docs)
        else:
            raise ValueError(f"unknown case {case!r}")
        for backend_id in self.ids:
            registry.remove(backend_id)
        return seconds


class Yardstick:
    """A prepared top-1 match at 1,000 backends: how fast the machine is at
    the moment (it swings by 2x here within minutes, so each figure is also
    given as a ratio to a yardstick sample taken just before it)."""

    def __init__(self) -> None:
        self.registry = load_registry(generate_registry(1000, seed=3))
        self.slot = self.registry.prepare(common.selectivity_slot("medium"))

    def sample(self, calls: int = 2000) -> float:
        return median_time(lambda: self.registry.match(self.slot, 1), calls)


def add_remove(n: int, rounds: int, yard: Yardstick | None = None) -> dict[str, float]:
    """Seconds per backend of each case (``CASES``, module docstring),
    medians over ``rounds``; the cases take turns within a round. With
    ``yard``, also ``case/yardstick``: the median over rounds of each
    round's time over a yardstick sample taken just before it."""
    steady = Steady(n)
    samples: dict[str, list[float]] = {case: [] for case in CASES}
    ratios: dict[str, list[float]] = {case: [] for case in CASES}
    for _ in range(rounds):
        for case in CASES:
            reference = yard.sample() if yard is not None else None
            seconds = steady.per_backend(case)
            samples[case].append(seconds)
            if reference is not None:
                ratios[case].append(seconds / reference)
    out = {case: statistics.median(values) for case, values in samples.items()}
    if yard is not None:
        out.update({f"{case}/yardstick": statistics.median(values) for case, values in ratios.items()})
    return out


# What a churn adds, and the suffix of its figures' names (``churn_add``, ...).
GIVEN = {"structs": "", "dicts": "_dict", "prepared": "_prepared"}


def churn_adds(n: int, rounds: int, yard: Yardstick | None = None, count: int = BATCH,
               documents: bool = False, given: str = "structs") -> dict[str, float]:
    """Seconds per add and per remove in a random churn (module docstring):
    ``count`` leave-and-join pairs a round, on one registry throughout.
    ``documents``: the registry loaded from documents, which keeps each
    backend's record from the start (a registry loaded from a snapshot
    reads the snapshot's). ``given``: what is added (``GIVEN``): validated
    Registrations with the validation stubbed out (``churn_add``, or
    ``churn_add_documents`` from documents), plain dicts, validation
    included (``churn_add_dict``), or PreparedRegistrations made before
    (``churn_add_prepared``); the removes' figures are named alike."""
    registry = load_registry(common.documents(n, common.SEED)) if documents else common.fresh_registry(n)
    slot = registry.prepare(common.selectivity_slot("medium"))
    registry.match(slot, 5)  # the scan order built, as a serving registry has it
    docs = generate_registry(rounds * count, seed=11)
    for j, doc in enumerate(docs):
        doc["backend_id"] = f"{doc['backend_type']}-9{j:06d}"  # after the fleet's loaded ids, in order
    items = {"dicts": lambda: docs,
             "prepared": lambda: [registry.prepare_registration(d) for d in docs],
             "structs": lambda: [msgspec.convert(d, Registration, dec_hook=decode_hook) for d in docs]}[given]()
    suffix = GIVEN[given] or ("_documents" if documents else "")
    add, remove = f"churn_add{suffix}", f"churn_remove{suffix}"
    rng = random.Random(5)
    ids = list(registry.backend_ids)
    out: dict[str, list[float]] = {add: [], remove: [], f"{add}/yardstick": [], f"{remove}/yardstick": []}
    clock = time.perf_counter
    with validation_stubbed(registry) if given == "structs" else contextlib.nullcontext(registry):
        for r in range(rounds):
            reference = yard.sample() if yard is not None else None
            adding, removing = 0.0, 0.0
            for doc, item in zip(docs[r * count:(r + 1) * count], items[r * count:(r + 1) * count]):
                k = rng.randrange(len(ids))
                ids[k], ids[-1] = ids[-1], ids[k]
                gone = ids.pop()
                start = clock()
                registry.remove(gone)
                middle = clock()
                registry.add(item)
                adding += clock() - middle
                removing += middle - start
                ids.append(doc["backend_id"])
            out[add].append(adding / count)
            out[remove].append(removing / count)
            if reference is not None:
                out[f"{add}/yardstick"].append(adding / count / reference)
                out[f"{remove}/yardstick"].append(removing / count / reference)
    return {name: statistics.median(values) for name, values in out.items() if values}


def reserve_release(rounds: int = 15) -> None:
    """Reserve and release alone, each timed over a run of ``HELD``
    reservations (reserve them all, then release them all), against a
    prepared top-1 match timed the same way (``HELD`` calls, one sample)
    just before each run: the ratio is the median over ``rounds`` of each
    round's reserve over its match, so both sides of it see the machine at
    the same moment."""
    registry = load_registry(generate_registry(1000, seed=3))
    slot = registry.prepare({"slot_name": "s", "interfaces": ["KeyValueBasicInterface"],
                             "performance": {"min_write_rps": 10, "min_read_rps": 10}})
    registry.release(registry.reserve(slot))  # the first reservation separates the reserved columns
    match, reserve, release = registry.match, registry.reserve, registry.release
    matches, reserves, releases, ratios = [], [], [], []
    clock = time.perf_counter
    for _ in range(rounds):
        start = clock()
        for _ in range(HELD):
            match(slot, 1)
        middle = clock()
        held = [reserve(slot) for _ in range(HELD)]
        end = clock()
        matches.append((middle - start) / HELD)
        reserves.append((end - middle) / HELD)
        ratios.append(reserves[-1] / matches[-1])
        releases.append(_per_item(release, held))
    match_s, reserve_s, release_s = (statistics.median(x) for x in (matches, reserves, releases))
    print(f"    1,000 backends: match top-1 {match_s * 1e6:.2f} µs, reserve {reserve_s * 1e6:.2f} µs "
          f"({statistics.median(ratios):.2f}× the match just before it), release {release_s * 1e6:.2f} µs")


def churn(n: int, reps: int) -> None:
    fresh, churned = common.fresh_registry(n), common.fresh_registry(n)
    gone = churned.backend_ids[::10]
    for backend_id in gone:
        churned.remove(backend_id)
    docs = generate_registry(len(gone), seed=99)
    churned.add([dict(d, backend_id=f"zz-churn-{j:07d}") for j, d in enumerate(docs)])
    slot = common.selectivity_slot("medium")
    a = median_time(lambda s=fresh.prepare(slot): fresh.match(s, 5), reps)
    b = median_time(lambda s=churned.prepare(slot): churned.match(s, 5), reps)
    print(f"{n:>9,} backends: top-5 fresh {a * 1e6:.2f} µs, after 10% removed and added {b * 1e6:.2f} µs "
          f"({b / a:.2f}×)")


def grown(n: int, reps: int) -> None:
    """A prepared top-5 match on a registry loaded whole and on one loaded
    with half and grown to ``n`` by adds one at a time (no hole to fill:
    the order is built again each time a sixteenth of it was added out of
    place), and the per-add cost of that growth (validation stubbed out)."""
    docs = generate_registry(n, seed=7)
    whole, grown_ = load_registry(docs), load_registry(docs[:n // 2])
    structs = [msgspec.convert(d, Registration, dec_hook=decode_hook) for d in docs[n // 2:]]
    with validation_stubbed(grown_):
        start = time.perf_counter()
        for reg in structs:
            grown_.add(reg)
        per_add = (time.perf_counter() - start) / len(structs)
    slot = common.selectivity_slot("medium")
    a = median_time(lambda s=whole.prepare(slot): whole.match(s, 5), reps)
    b = median_time(lambda s=grown_.prepare(slot): grown_.match(s, 5), reps)
    print(f"{n:>9,} backends: top-5 loaded whole {a * 1e6:.2f} µs, grown from half by single adds {b * 1e6:.2f} µs "
          f"({b / a:.2f}×); those adds {per_add * 1e6:.2f} µs each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adds", action="store_true", help="add and remove only")
    parser.add_argument("--json", action="store_true", help="print one JSON object (µs per backend)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    yard = Yardstick()
    figures: dict[str, float] = {"match_top1": yard.sample(20000) * 1e6}
    measured = [(size, add_remove(size, args.rounds, yard)) for size in (1_000, 100_000)]
    measured.append((100_000, churn_adds(100_000, args.rounds, yard)))
    measured.append((100_000, churn_adds(100_000, args.rounds, yard, documents=True)))
    measured.append((100_000, churn_adds(100_000, args.rounds, yard, documents=True, given="dicts")))
    measured.append((100_000, churn_adds(100_000, args.rounds, yard, documents=True, given="prepared")))
    for size, values in measured:
        for name, value in values.items():  # seconds in µs; ratios to the yardstick as they are
            figures[f"{name}@{size}"] = value if name.endswith("/yardstick") else value * 1e6
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"yardstick: a prepared top-1 match at 1,000 backends {figures['match_top1']:.2f} µs")
        for size in (1_000, 100_000):
            f = {k.split("@")[0]: v for k, v in figures.items() if k.endswith(f"@{size}")}
            print(f"{size:>9,} backends, µs per backend: add (registry's own work) {f['add_own']:.2f}, "
                  f"add prepared {f['add_prepared']:.2f}, "
                  f"add Registration {f['add_struct']:.2f}, add dict {f['add_dict']:.2f}, "
                  f"add list of {LIST:,} dicts {f['add_list']:.2f}, msgspec.convert alone "
                  f"{f['validate_msgspec']:.2f}; remove {f['remove']:.2f}")
            print(f"{'':>9}  the same in yardsticks taken just before each: add (registry's own work) "
                  f"{f['add_own/yardstick']:.1f}, add prepared {f['add_prepared/yardstick']:.1f}, "
                  f"add dict {f['add_dict/yardstick']:.1f}; "
                  f"remove {f['remove/yardstick']:.1f}")
        c = {name: figures[f"{name}@100000"] for name in ("churn_add", "churn_remove", "churn_add/yardstick",
                                                          "churn_remove/yardstick")}
        print(f"  100,000 backends in a random churn, µs each (mean of a round, median over rounds): "
              f"add (registry's own work) {c['churn_add']:.2f} ({c['churn_add/yardstick']:.1f} yardsticks), "
              f"remove {c['churn_remove']:.2f} ({c['churn_remove/yardstick']:.1f})")
        d = {name: figures[f"{name}_documents@100000"] for name in ("churn_add", "churn_remove")}
        y = {name: figures[f"{name}_documents/yardstick@100000"] for name in ("churn_add", "churn_remove")}
        print(f"  the same, the registry loaded from documents (it keeps every backend's record): "
              f"add {d['churn_add']:.2f} ({y['churn_add']:.1f}), remove {d['churn_remove']:.2f} "
              f"({y['churn_remove']:.1f})")
        d = {name: figures[f"{name}_dict@100000"] for name in ("churn_add", "churn_remove")}
        y = {name: figures[f"{name}_dict/yardstick@100000"] for name in ("churn_add", "churn_remove")}
        print(f"  the same, adding dicts (validation included): add {d['churn_add']:.2f} "
              f"({y['churn_add']:.1f}), remove {d['churn_remove']:.2f} ({y['churn_remove']:.1f})")
        d = {name: figures[f"{name}_prepared@100000"] for name in ("churn_add", "churn_remove")}
        y = {name: figures[f"{name}_prepared/yardstick@100000"] for name in ("churn_add", "churn_remove")}
        print(f"  the same, adding prepared registrations (prepare_registration before): add "
              f"{d['churn_add']:.2f} ({y['churn_add']:.1f}), remove {d['churn_remove']:.2f} ({y['churn_remove']:.1f})")
    if args.adds:
        return
    reserve_release()
    churn(1_000, 20000)
    churn(1_000_000, 20)
    grown(100_000, 2000)


if __name__ == "__main__":
    main()
