"""The scan order (_order.pxi) against the plain scan: the same answers on
every path, and its rows and bounds valid after every live change.

The plain scan (``use_scan_order = False``: every position visited in order,
nothing skipped) is the twin: it is itself held to the plain-Python
reference by test_kernel.py and test_living.py. Registries here are larger
than those tests' (65 to 400 backends, many copies of a few bodies with
their costs and uptimes varied, so static scores tie often) and the blocks
small (1 to 3 words), so that words and blocks are really skipped.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from conftest import RATES, ID_ALPHABET, policies_or_default, registries, slot_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from prism_match import MatchPolicy, PlacementError, load_registry
from prism_match._core import ID_ORDER_RECENT, SCAN_CASCADE_RUNS, SCAN_GAP_EVERY, _by_key_then_label, _sorted_from
from prism_match.schema import HEALTH_STATUSES

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

UPTIMES = (None, 90.0, 99.9, 100.0)
COSTS = (None, 0.001, 0.5)


def grown_docs(case, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` documents: copies of the case's bodies under new ids, about
    half with their cost and uptime drawn again from a few values (so
    backends tie on the static score in groups, not all at once)."""
    rng = random.Random(seed)
    docs = []
    for j in range(n):
        body = dict(case.docs[j % len(case.docs)])
        body["backend_id"] = f"{body['backend_id']}#{j:03d}" if j % 3 else f"{j:03d}{body['backend_id']}"
        if rng.random() < 0.5:
            uptime, cost = rng.choice(UPTIMES), rng.choice(COSTS)
            body["health"] = {**body.get("health", {}), **({"uptime_percent_24h": uptime} if uptime else {})}
            if cost is not None:
                body["cost"] = {**body.get("cost", {}), "cost_per_1k_writes": cost}
        docs.append(body)
    return docs


# One scan slot in so many left free when the order is built: none, every
# other slot, a few a word, the default (one a word).
GAPS = st.sampled_from((0, 2, 5, SCAN_GAP_EVERY))


@st.composite
def big_registries(draw, policy: MatchPolicy | None = None):
    case = draw(registries(min_backends=1))
    docs = grown_docs(case, draw(st.integers(65, 400)), draw(st.integers(0, 2**32 - 1)))
    policy = policy if policy is not None else draw(policies_or_default)
    registry = load_registry(docs, policy=policy)
    registry.engine.core.order_by(policy.w_cost, policy.w_avail, draw(st.sampled_from((1, 2, 3, 64))),
                                  gap_every=draw(GAPS))
    return case, registry


def answers(registry, slot, k: int, *, ordered: bool) -> list[tuple]:
    core = registry.engine.core
    core.use_scan_order = ordered
    try:
        return [(m.backend_id, m.index, m.score, m.performance, m.region, m.available_write_rps)
                for m in registry.match(slot, k)]
    finally:
        core.use_scan_order = True


def assert_same_answers(registry, slot, k: int) -> None:
    assert answers(registry, slot, k, ordered=True) == answers(registry, slot, k, ordered=False)


def check_scan_order(registry) -> None:
    """Every live position's scan slot holds its bits, and every bound
    covers it; dead positions' slots are not alive."""
    core = registry.engine.core
    scan = core.scan_order
    a, c = scan.arrays, registry.columns
    s = c.store
    stride, bw = a["alive"].shape[0], scan.block_words
    perm = scan.perm
    n = c.size
    # One scan slot per position; the other slots (gaps left free when the
    # order was built) have none, and are free.
    taken = perm >= 0
    assert sorted(perm[taken].tolist()) == list(range(n))
    assert len(perm) - n == scan.extra_slots
    slot_of = np.empty(n, dtype=np.int64)
    slot_of[perm[taken]] = np.flatnonzero(taken)
    for j in np.flatnonzero(~taken).tolist():
        assert not int(a["alive"][j >> 6] >> np.uint64(j & 63)) & 1
    # ``free_words`` marks exactly the words with a free slot, and the free
    # count of a range (which reads only the marked words) is the count of
    # the slots not alive in it.
    slots = len(perm)
    free = ~np.unpackbits(a["alive"].view(np.uint8), bitorder="little")[:slots].astype(bool)
    words = (slots + 63) // 64
    marked = np.unpackbits(a["free_words"].view(np.uint8), bitorder="little")[:words].astype(bool)
    assert marked.tolist() == [bool(free[w * 64:(w + 1) * 64].any()) for w in range(words)]
    for lo, hi in ((0, slots), (slots // 3, slots // 3 + 1), (slots // 5, slots - slots // 7), (65, 200)):
        hi = min(hi, slots)
        lo = min(lo, hi)
        assert scan.free_count(lo, hi) == int(free[lo:hi].sum())

    def bit(words, j):
        return int(words[j >> 6] >> np.uint64(j & 63)) & 1

    for i in range(n):
        j = slot_of[i]
        live = bit(s["alive"], i)
        assert bit(a["alive"], j) == live
        if not live:
            continue
        for t in range(len(c.features)):
            assert bit(a["features"][t], j) == bit(s["feature_bits"][t], i)
        for code in range(a["btype"].shape[0]):
            assert bit(a["btype"][code], j) == (s["backend_type"][i] == code)
        for code in range(a["health"].shape[0]):
            assert bit(a["health"][code], j) == (s["health"][i] == code)
        for level in range(a["cons_le"].shape[0]):
            assert bit(a["cons_le"][level], j) == (s["consistency"][i] <= level)
        for name, rows in (("regions", "region_rows"), ("compliance", "compliance_rows")):
            if a[name] is not None:
                for b in range(a[name].shape[0]):
                    assert bit(a[name][b], j) == bit(s[rows][i], b)
        values = (s["cost_score"][i], s["avail_score"][i], s["max_write_rps"][i], s["max_read_rps"][i])
        w, blk = j >> 6, (j >> 6) // bw
        for row, value in enumerate(values):
            assert a["word_bounds"][row, w] >= value
            assert a["block_bounds"][row, blk] >= value
        assert a["word_rank"][w] <= s["id_label"][i]
        assert a["srank"][j] == s["id_label"][i]  # the slot's own rank, read before the backend's columns
        # Room for one more namespace, from the usage reservations included.
        assert bit(a["ns_room"][0], j) == (not s["max_namespaces"][i] - s["used_namespaces"][i] < 1)
        assert a["block_rank"][blk] <= s["id_label"][i]
    assert stride * 64 >= n
    # The slots' layout keys stay sorted in the order as built (an add
    # beside no run of its key leaves its slot the key of the run it sits
    # in), so the binary searches that place the next adds find their runs;
    # only the tail of slots added since may hold keys out of order.
    skey = a["skey"][:scan.built_slots]
    assert np.all(skey[:-1] >= skey[1:])


# --- the same answers ----------------------------------------------------------------------------

@SETTINGS
@given(data=st.data())
def test_the_scan_order_gives_the_plain_scans_answers(data):
    case, registry = data.draw(big_registries())
    check_scan_order(registry)
    for _ in range(3):
        slot = data.draw(slot_for(case))
        assert_same_answers(registry, slot, data.draw(st.sampled_from((1, 2, 5, 17, 500))))


@SETTINGS
@given(data=st.data())
def test_the_same_answers_after_live_changes(data):
    case, registry = data.draw(big_registries())
    ids = registry.backend_ids
    slot_list = [data.draw(slot_for(case)) for _ in range(2)]
    for _ in range(data.draw(st.integers(1, 12))):
        bid = data.draw(st.sampled_from(ids))
        registry.update(bid, status=data.draw(st.sampled_from(HEALTH_STATUSES)),
                        uptime=data.draw(st.sampled_from((0.0, 50.0, 99.99, 100.0))),
                        write_rps=data.draw(st.sampled_from(RATES)))
    check_scan_order(registry)
    for slot in slot_list:
        assert_same_answers(registry, slot, data.draw(st.sampled_from((1, 3, 40))))


@SETTINGS
@given(data=st.data())
def test_batches_and_placement_see_the_same_through_the_scan_order(data):
    case, registry = data.draw(big_registries())
    slot_list = [data.draw(slot_for(case)) | {"slot_name": f"s{j}"} for j in range(data.draw(st.integers(1, 6)))]
    core = registry.engine.core
    ordered = registry.match_many(slot_list, 3, threads=1)
    plan = registry.assign(slot_list, allow_unplaced=True)
    core.use_scan_order = False
    try:
        plain = registry.match_many(slot_list, 3, threads=1)
        plain_plan = registry.assign(slot_list, allow_unplaced=True)
    finally:
        core.use_scan_order = True
    assert ordered.equals(plain)
    assert plan.bindings == plain_plan.bindings


def test_a_status_change_flips_the_bits_a_slot_filters_on():
    docs = [{"backend_id": f"b{i:03d}", "backend_type": "redis", "capabilities": ["get"],
             "capacity": {"max_write_rps": 1000 + i}} for i in range(200)]
    registry = load_registry(docs)
    slot = {"slot_name": "s", "capabilities": ["get"], "health_statuses": ["degraded"]}
    assert registry.match(slot, 3) == []
    registry.update("b150", status="degraded")
    assert [m.backend_id for m in registry.match(slot, 3)] == ["b150"]
    registry.update("b150", status="healthy")
    assert registry.match(slot, 3) == []
    check_scan_order(registry)


def test_an_uptime_raise_is_seen_in_a_skipped_block():
    # Block bounds are raised in place: after the last backend's uptime
    # jumps, its block (skipped before, all its bounds low) must be scanned.
    docs = [{"backend_id": f"b{i:04d}", "backend_type": "redis", "capabilities": ["get"],
             "capacity": {"max_write_rps": 1000}, "health": {"status": "healthy", "uptime_percent_24h": 99.0}}
            for i in range(300)]
    docs[-1]["health"]["uptime_percent_24h"] = 1.0
    registry = load_registry(docs)
    registry.engine.core.order_by(0.3, 0.2, 1)
    assert registry.match({"slot_name": "s"}, 1)[0].backend_id == "b0000"
    registry.update("b0299", uptime=100.0)
    assert registry.match({"slot_name": "s"}, 1)[0].backend_id == "b0299"
    check_scan_order(registry)


def test_a_policy_with_other_weights_orders_again_and_answers_the_same():
    case_docs = [{"backend_id": f"b{i:03d}", "backend_type": "redis", "capabilities": ["get"],
                  "capacity": {"max_write_rps": 100 * (i % 7 + 1)},
                  "cost": {"cost_per_1k_writes": (i % 5) / 10}, "health": {"uptime_percent_24h": 90 + i % 11}}
                 for i in range(500)]
    registry = load_registry(case_docs)
    before = registry.engine.core.scan_order
    registry.policy = MatchPolicy(w_perf=0.1, w_cost=0.0, w_avail=0.9, w_region=0.0)
    after = registry.engine.core.scan_order
    assert after is not before and (after.w_cost, after.w_avail) == (0.0, 0.9)
    # The best static score first: every live backend in scan order has an
    # uptime no higher than the one before.
    uptimes = registry.columns.store["uptime_percent_24h"][after.perm[after.perm >= 0]]
    assert all(np.diff(uptimes) <= 0)
    assert_same_answers(registry, {"slot_name": "s", "performance": {"min_write_rps": 300}}, 7)
    registry.policy = MatchPolicy(w_perf=0.1, w_cost=0.0, w_avail=0.45, w_region=0.0)  # the same ratio
    assert registry.engine.core.scan_order is after


# --- a registry that changes -------------------------------------------------------------------

BODIES = [
    {"backend_type": "redis", "capabilities": ["get", "set"], "interfaces": ["KV"], "regions": ["us", "eu"],
     "compliance": ["pci"], "capacity": {"max_write_rps": 5000, "max_read_rps": 20000},
     "health": {"status": "healthy", "uptime_percent_24h": 99.9}, "cost": {"cost_per_1k_writes": 0.001}},
    {"backend_type": "postgres", "capabilities": ["get", "set", "transaction"], "regions": ["us"],
     "capacity": {"max_write_rps": 2000, "max_read_rps": 8000}, "consistency": "strong",
     "health": {"status": "degraded", "uptime_percent_24h": 99.0}, "cost": {"cost_per_1k_writes": 0.01}},
    {"backend_type": "kafka", "capabilities": ["publish"], "regions": ["ap"], "compliance": ["soc2", "pci"],
     "capacity": {"max_write_rps": 100000, "max_read_rps": 100000}},
    {"backend_type": "memstore", "capabilities": ["get", "ttl"], "interfaces": ["KV"], "regions": ["eu"],
     "capacity": {"max_write_rps": 50000, "max_read_rps": 50000}, "consistency": "eventual",
     "health": {"status": "healthy", "uptime_percent_24h": 100.0}, "cost": {"cost_per_1k_writes": 0.0}},
]
SLOTS = [
    {"slot_name": "kv", "capabilities": ["get"], "preferred_region": "eu"},
    {"slot_name": "fast", "performance": {"min_write_rps": 4000}, "regions": ["us", "ap"]},
    {"slot_name": "pci", "compliance": ["pci"], "health_statuses": ["healthy", "degraded"]},
    {"slot_name": "strong", "consistency": "strong", "capabilities": ["set"]},
    {"slot_name": "any"},
    {"slot_name": "new", "capabilities": ["novel"], "regions": ["mars"]},
]
NEW_BODY = {"backend_type": "nats", "capabilities": ["publish", "novel"], "regions": ["mars", "eu"],
            "compliance": ["hipaa"], "capacity": {"max_write_rps": 7000, "max_read_rps": 7000},
            "health": {"status": "healthy", "uptime_percent_24h": 100.0}, "cost": {"cost_per_1k_writes": 0.0}}
ID_CHARS = st.text(ID_ALPHABET, min_size=1, max_size=4)


class ScanOrderMachine(RuleBasedStateMachine):
    """Adds (new names, ids between others' that make labels spread),
    removes, replaces, updates, reservations: after each, the scan order's
    rows and bounds hold every live backend, and its answers are the plain
    scan's."""

    @initialize(n=st.integers(65, 200), seed=st.integers(0, 1000), block_words=st.sampled_from((1, 2)),
                tied=st.booleans(), cascade=st.sampled_from((0, 1, SCAN_CASCADE_RUNS)), gap_every=GAPS)
    def load(self, n: int, seed: int, block_words: int, tied: bool, cascade: int, gap_every: int) -> None:
        # ``tied``: a run of 300 or more backends of one key first (long
        # enough to be laid out again, ``thin`` and ``add_last``).
        # ``cascade``: the runs a cascade may cross (few: adds beside no run
        # of their key are common). ``gap_every``: the free slots the order
        # is built with (none: adds cascade or go beside no run at once).
        rng = random.Random(seed)
        bodies = [BODIES[0]] * (300 + n) + [rng.choice(BODIES) for _ in range(n)] if tied else \
            [rng.choice(BODIES) for _ in range(n)]
        docs = [dict(body, backend_id=f"b{j * 7:05d}") for j, body in enumerate(bodies)]
        self.registry = load_registry(docs)
        self.registry.engine.core.order_by(0.3, 0.2, block_words, gap_every=gap_every)
        self.registry.engine.core.scan_order.cascade_runs = cascade
        self.held: list = []
        self.last = 0

    @rule(body=st.sampled_from(BODIES + [NEW_BODY]), suffix=ID_CHARS, near=st.integers(0, 10**6))
    def add(self, body: dict, suffix: str, near: int) -> None:
        ids = self.registry.backend_ids
        bid = (sorted(ids)[near % len(ids)] if ids else "b") + suffix  # right after an existing id
        if bid not in self.registry:
            self.registry.add(dict(body, backend_id=bid))

    @rule(body=st.sampled_from(BODIES[:2]))
    def add_last(self, body: dict) -> None:
        # An id after every other (numbered on, as a fleet names new ones).
        self.last += 1
        self.registry.add(dict(body, backend_id=f"zz{self.last:04d}"))

    @precondition(lambda self: len(self.registry) > 100)
    @rule(start=st.integers(0, 20), step=st.integers(3, 12))
    def thin(self, start: int, step: int) -> None:
        # Every step-th backend (by id) from ``start`` leaves, 40 at most.
        for backend_id in sorted(self.registry.backend_ids)[start::step][:40]:
            self.registry.remove(backend_id)

    @precondition(lambda self: len(self.registry) > 1)
    @rule(near=st.integers(0, 10**6))
    def remove(self, near: int) -> None:
        ids = self.registry.backend_ids
        self.registry.remove(ids[near % len(ids)])

    @rule(body=st.sampled_from(BODIES + [NEW_BODY]), near=st.integers(0, 10**6))
    def replace(self, body: dict, near: int) -> None:
        ids = self.registry.backend_ids
        self.registry.replace(dict(body, backend_id=ids[near % len(ids)]))

    @rule(near=st.integers(0, 10**6), status=st.sampled_from(HEALTH_STATUSES),
          uptime=st.sampled_from((0.0, 99.0, 100.0)), w=st.sampled_from(RATES))
    def update(self, near: int, status: str, uptime: float, w: int) -> None:
        ids = self.registry.backend_ids
        self.registry.update(ids[near % len(ids)], status=status, uptime=uptime, write_rps=w)

    @rule(slot=st.sampled_from(SLOTS))
    def reserve(self, slot: dict) -> None:
        try:
            self.held.append(self.registry.reserve(slot))
        except PlacementError:
            pass

    @precondition(lambda self: self.held)
    @rule()
    def release(self) -> None:
        self.registry.release(self.held.pop(0))

    @rule(slot=st.sampled_from(SLOTS), k=st.sampled_from((1, 4, 30)))
    def match(self, slot: dict, k: int) -> None:
        assert_same_answers(self.registry, slot, k)

    @invariant()
    def rows_and_bounds_hold(self) -> None:
        if hasattr(self, "registry"):
            check_scan_order(self.registry)


ScanOrderMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                                              suppress_health_check=[HealthCheck.too_slow])
TestScanOrderMachine = ScanOrderMachine.TestCase


@pytest.mark.parametrize("threads", [1, 2])
def test_a_batch_reads_its_own_copy_of_live_rows(threads):
    # A snapshot's rows and bounds are its own: a status change after it is
    # taken does not change what it answers.
    docs = [dict(BODIES[i % 4], backend_id=f"b{i:04d}") for i in range(300)]
    registry = load_registry(docs)
    core = registry.engine.core
    from prism_match._core import LiveSnapshot

    snap = LiveSnapshot(core)
    before = snap.arrays[5].copy()
    registry.update("b0000", status="unhealthy")
    assert (snap.arrays[5] == before).all()
    frame = registry.match_many([SLOTS[0], SLOTS[2]], 5, threads=threads)
    assert frame.height > 0
    for slot in (SLOTS[0], SLOTS[2]):
        assert_same_answers(registry, slot, 5)


def forget_recent(registry, body: dict, prefix: str) -> None:
    """ID_ORDER_RECENT ids added after every other: the ids added before
    them are not "added lately" any more, so an id squeezed in beside one
    takes the midpoint (the gap halves each time, until labels spread)."""
    for k in range(ID_ORDER_RECENT):
        registry.add(dict(body, backend_id=f"{prefix}-{k:02d}"))


def test_labels_spread_around_an_added_id_keep_the_rank_bounds():
    # Each added id lands right after "b00" (b001 > b0001 > ... > b00): the
    # gap between the order labels there halves every time, until a window
    # of labels around is spread out again, which lowers the label of "b00"
    # itself, the least id of the second scan word. Its rank bound must follow.
    body = BODIES[0]
    ids = [f"a{j:02d}" for j in range(64)] + [f"b{j:02d}" for j in range(20)]
    registry = load_registry([dict(body, backend_id=b) for b in ids])
    registry.engine.core.order_by(0.3, 0.2, 1)
    label_b00 = [int(registry.columns.store["id_label"][64])]
    for j in range(1, 40):
        registry.add(dict(body, backend_id="b00" + "0" * j + "1"))
        label_b00.append(int(registry.columns.store["id_label"][64]))
        forget_recent(registry, body, f"c{j:02d}")
    assert min(label_b00) < label_b00[0]  # a spread moved it down
    check_scan_order(registry)
    for j in range(64):
        registry.remove(f"a{j:02d}")
    assert [m.backend_id for m in registry.match({"slot_name": "s"}, 3)] == ["b00", "b00" + "0" * 39 + "1",
                                                                             "b00" + "0" * 38 + "1"]
    assert_same_answers(registry, {"slot_name": "s"}, 50)


@pytest.mark.parametrize("increasing", [True, False])
def test_ids_arriving_in_order_between_two_neighbours_change_no_other_label(increasing):
    # 150 numbered ids between "k050" and "k051", one after another: each
    # goes beside the one added last, a sixteenth of the room on, so they
    # fit in the gap the load left (a midpoint each time would halve it,
    # and spread a window of labels out, the neighbours' included, every
    # two dozen adds).
    body = BODIES[0]
    registry = load_registry([dict(body, backend_id=f"k{j:03d}") for j in range(100)])
    before = dict(zip(registry.backend_ids, registry.columns.store["id_label"].tolist()))
    new = [f"k050-{m:03d}" for m in range(150)]
    for backend_id in new if increasing else reversed(new):
        registry.add(dict(body, backend_id=backend_id))
    labels = dict(zip(registry.backend_ids, registry.columns.store["id_label"].tolist()))
    assert {b: labels[b] for b in before} == before
    ranks = [labels[b] for b in new]
    assert before["k050"] < ranks[0] and ranks == sorted(set(ranks)) and ranks[-1] < before["k051"]
    check_scan_order(registry)
    assert_same_answers(registry, {"slot_name": "s"}, 60)


def gapped_runs_and_their_adds(order=None):
    """20 runs of 100 tied backends in an order built with the default
    gaps (block of one word), and a new backend of each run's key to add
    (in ``order`` of runs)."""
    registry = grouped_registry(20, 100, 1, gap_every=SCAN_GAP_EVERY)
    added = [dict(BODIES[0], backend_id=f"g{g:02d}-new", cost={"cost_per_1k_writes": 0.01 * (g + 1)})
             for g in (order if order is not None else range(20))]
    return registry, added


def assert_sorted_and_answering(registry) -> None:
    keys = live_slot_keys(registry)
    assert np.all(keys[:-1] >= keys[1:])
    check_scan_order(registry)
    assert_same_answers(registry, {"slot_name": "s"}, 150)


def test_a_fresh_order_leaves_a_free_slot_in_every_word_so_an_add_moves_nothing():
    # The order leaves the last slot of every word free (SCAN_GAP_EVERY),
    # so each run has free slots of its own spread through it. A new
    # backend of each run's key, in shuffled order, takes one in its run:
    # no other backend changes slot, none is misplaced, the keys stay
    # sorted slot by slot.
    order = list(range(20))
    random.Random(3).shuffle(order)
    registry, added = gapped_runs_and_their_adds(order)
    core = registry.engine.core
    scan = core.scan_order
    alive = np.unpackbits(scan.arrays["alive"].view(np.uint8), bitorder="little")[:scan.n_slots].astype(bool)
    per_word = [int(alive[w:w + 64].sum()) for w in range(0, scan.n_slots, 64)]
    assert per_word[:-1] == [SCAN_GAP_EVERY - 1] * (len(per_word) - 1)
    assert scan.extra_slots == len(per_word) - 1  # the gaps: slots with no position
    slots = {b: s for s, b in enumerate(scan.perm.tolist())}
    before = {b: slots[core.index[b]] for b in registry.backend_ids}
    for doc in added:
        registry.add(doc)
    slots = {b: s for s, b in enumerate(scan.perm.tolist())}
    assert {b: slots[core.index[b]] for b in before} == before
    assert scan.misplaced == 0
    assert_sorted_and_answering(registry)


def test_a_growing_registry_fills_the_gaps_of_its_runs_and_leaves_no_free_tail():
    # No hole to fill: each add makes a new position, and a new last slot
    # for it; it takes a gap in its run, and the last slot, left with no
    # position, goes again. The order does not grow while gaps last (a free
    # tail would draw cascades from every run, each moving a run's earliest
    # id to its end).
    registry, added = gapped_runs_and_their_adds()
    scan = registry.engine.core.scan_order
    slots, extra = scan.n_slots, scan.extra_slots
    for doc in added:
        registry.add(doc)
    assert registry.columns.size == 2020 and scan.misplaced == 0
    # The last run's add may take the new last slot itself (right beside
    # the run); every other took a gap. No slot past the order as built is free.
    assert scan.n_slots <= slots + 1 and scan.extra_slots == extra - 20 + (scan.n_slots - slots)
    alive = np.unpackbits(scan.arrays["alive"].view(np.uint8), bitorder="little")
    assert alive[slots:scan.n_slots].all()
    assert_sorted_and_answering(registry)


def test_outside_the_first_preferred_region_the_next_ranked_one_still_scores():
    # Within a word, backends in the first preferred region are scanned
    # first; the rest may still win through the second one's term (0.5 of
    # w_region here): "y" serves only the second region, and its cheaper cost
    # (0.3 * (0.8 - 0.5) = 0.09) outweighs the region terms' difference (0.05).
    docs = [{"backend_id": "x", "backend_type": "redis", "regions": ["a"], "cost": {"cost_per_1k_writes": 1.0}},
            {"backend_id": "y", "backend_type": "redis", "regions": ["b"], "cost": {"cost_per_1k_writes": 0.25}}]
    registry = load_registry(docs)
    slot = {"slot_name": "s", "preferred_region": ["a", "b"]}
    assert [m.backend_id for m in registry.match(slot, 1)] == ["y"]
    assert_same_answers(registry, slot, 1)


def word_key_ranges(registry) -> list[tuple[float, float]]:
    """(max, min) of the static keys of each scan word's live backends, in
    scan order (words with no live backend left out)."""
    scan, store, policy = registry.engine.core.scan_order, registry.columns.store, registry.policy
    a = scan.arrays
    n = scan.n_slots
    alive = np.unpackbits(a["alive"].view(np.uint8), bitorder="little")[:n].astype(bool)
    key = policy.w_cost * store["cost_score"] + policy.w_avail * store["avail_score"]
    perm = a["perm"][:n]
    out = []
    for w in range(0, n, 64):
        live = perm[w:w + 64][alive[w:w + 64]]
        if len(live):
            out.append((float(key[live].max()), float(key[live].min())))
    return out


def test_added_backends_take_free_slots_where_their_key_ranks():
    # 20 groups of 32 backends, one static key each, laid out best first:
    # ten words, each holding two whole groups. Every group loses its last
    # 4 backends and gets 4 new ones with its key, added in shuffled order
    # (a removed position, reused by an add, held a slot of another group):
    # each new backend must land in a free slot of its own group's words,
    # so the words stay sorted by key, as a fresh order's are.
    body = BODIES[0]
    docs = []
    for g in range(20):
        for j in range(32):
            docs.append(dict(body, backend_id=f"g{g:02d}-{j:02d}", cost={"cost_per_1k_writes": 0.01 * (g + 1)}))
    registry = load_registry(docs)
    registry.engine.core.order_by(1.0, 0.0, 1, gap_every=0)
    ranges = word_key_ranges(registry)
    assert all(low >= high for (_, low), (high, _) in zip(ranges, ranges[1:]))  # fresh: sorted by word
    for g in range(20):
        for j in range(28, 32):
            registry.remove(f"g{g:02d}-{j:02d}")
    added = [dict(body, backend_id=f"new-g{g:02d}-{j}", cost={"cost_per_1k_writes": 0.01 * (g + 1)})
             for g in range(20) for j in range(4)]
    random.Random(7).shuffle(added)
    for doc in added[:40]:
        registry.add(doc)
    registry.add(added[40:])
    check_scan_order(registry)
    ranges = word_key_ranges(registry)
    assert all(low >= high for (_, low), (high, _) in zip(ranges, ranges[1:]))
    assert_same_answers(registry, {"slot_name": "s"}, 50)


def grouped_registry(groups: int, per_group: int, block_words: int, gap_every: int = 0):
    """``groups`` runs of ``per_group`` tied backends (``gGG-JJ``), group g
    costing 0.01 * (g + 1), so the lower groups scan first; blocks of
    ``block_words`` words; no free slot left (``gap_every=0``) unless
    asked, so that every run is full and an add with no hole in its run
    must cascade."""
    docs = [dict(BODIES[0], backend_id=f"g{g:02d}-{j:02d}", cost={"cost_per_1k_writes": 0.01 * (g + 1)})
            for g in range(groups) for j in range(per_group)]
    registry = load_registry(docs)
    registry.engine.core.order_by(1.0, 0.0, block_words, gap_every=gap_every)
    return registry


def live_slot_keys(registry) -> np.ndarray:
    """The static key of each live scan slot, in scan order."""
    scan, store, policy = registry.engine.core.scan_order, registry.columns.store, registry.policy
    a, n = scan.arrays, scan.n_slots
    alive = np.unpackbits(a["alive"].view(np.uint8), bitorder="little")[:n].astype(bool)
    key = policy.w_cost * store["cost_score"] + policy.w_avail * store["avail_score"]
    return key[a["perm"][:n][alive]]


@pytest.mark.parametrize("extra_per_even_group", [8, 4])
def test_a_full_run_makes_room_by_moving_one_backend_per_run_between(extra_per_even_group):
    # 20 groups of 32 backends, one key each; every group loses 4, then the
    # even groups get twice as many new ones and the odd groups (8: none; 4:
    # half). An even group's run fills up, and the next add must free the
    # slot right beside it by moving one backend of each run between it and
    # the nearest free slot to the other end of its run: every live slot
    # stays sorted by key, not just every word.
    body = BODIES[0]
    registry = grouped_registry(20, 32, 1)
    for g in range(20):
        for j in range(0, 32, 8):
            registry.remove(f"g{g:02d}-{j:02d}")
    added = [dict(body, backend_id=f"new-g{g:02d}-{j}", cost={"cost_per_1k_writes": 0.01 * (g + 1)})
             for g in range(20) for j in range(extra_per_even_group if g % 2 == 0 else 8 - extra_per_even_group)]
    random.Random(3).shuffle(added)
    for doc in added:
        registry.add(doc)
    check_scan_order(registry)
    keys = live_slot_keys(registry)
    assert len(keys) == 640 and np.all(keys[:-1] >= keys[1:])
    for slot in ({"slot_name": "s"}, {"slot_name": "t", "capabilities": ["get"]}):
        assert_same_answers(registry, slot, 50)


def test_an_add_no_cascade_can_reach_takes_a_free_slot_among_higher_keys():
    # 2R + 20 groups of 16 (R: the runs a cascade reaches); only the first
    # and the last group have a free slot, and a middle group gains one
    # backend: more runs lie between it and either than a cascade moves, so
    # it takes the free slot before its run (among higher keys, where it
    # raises no word's bound), though the one after is nearer; every answer
    # stays exact.
    body = BODIES[0]
    groups, middle = 2 * SCAN_CASCADE_RUNS + 20, SCAN_CASCADE_RUNS + 10
    registry = grouped_registry(groups, 16, 1)
    registry.remove("g00-03")
    registry.remove(f"g{groups - 1:02d}-03")
    registry.add(dict(body, backend_id="new-middle", cost={"cost_per_1k_writes": 0.01 * (middle + 1)}))
    check_scan_order(registry)
    scan = registry.engine.core.scan_order
    assert scan.misplaced == 1
    assert int(np.flatnonzero(scan.perm == registry.engine.core.index["new-middle"])[0]) == 3  # g00-03's slot
    assert_same_answers(registry, {"slot_name": "s"}, 700)


def test_a_cascade_reaches_as_many_runs_as_it_may():
    # The same with the gaining group R runs after the first one: the
    # cascade from the free slot before it moves one backend of each run
    # between, and the new backend lies in its own run.
    body = BODIES[0]
    groups = 2 * SCAN_CASCADE_RUNS + 20
    registry = grouped_registry(groups, 16, 1)
    registry.remove("g00-03")
    registry.remove(f"g{groups - 1:02d}-03")
    registry.add(dict(body, backend_id="new-reached", cost={"cost_per_1k_writes": 0.01 * SCAN_CASCADE_RUNS}))
    check_scan_order(registry)
    assert registry.engine.core.scan_order.misplaced == 0
    keys = live_slot_keys(registry)
    assert np.all(keys[:-1] >= keys[1:])
    assert_same_answers(registry, {"slot_name": "s"}, 700)


def test_an_add_beside_no_run_of_its_key_takes_a_free_slot_whose_word_covers_it():
    # R + 40 groups of 16 (four a word; R: the runs a cascade reaches),
    # group 2 with ten times the capacity of the others. Free slots in word
    # 2 (g10) and word 0 (g02); a backend of a key of its own far down the
    # order (no cascade reaches it) and group 2's capacity goes to word 0,
    # whose bounds already cover its values, not to the nearer word 2,
    # whose capacity bound it would raise (every match wanting that
    # capacity would then visit word 2's block).
    body = BODIES[0]
    big = {"max_write_rps": 500000, "max_read_rps": 500000}
    groups, below = SCAN_CASCADE_RUNS + 40, SCAN_CASCADE_RUNS + 15  # the new key: between group below and the next
    docs = [dict(body, backend_id=f"g{g:02d}-{j:02d}", cost={"cost_per_1k_writes": 0.01 * (g + 1)},
                 **({"capacity": big} if g == 2 else {}))
            for g in range(groups) for j in range(16)]
    registry = load_registry(docs)
    registry.engine.core.order_by(1.0, 0.0, 1, gap_every=0)
    slot_of = {int(p): s for s, p in enumerate(registry.engine.core.scan_order.perm)}
    free = {b: slot_of[registry.engine.core.index[b]] for b in ("g02-03", "g10-03")}
    registry.remove("g02-03")
    registry.remove("g10-03")
    registry.add(dict(body, backend_id="new", cost={"cost_per_1k_writes": 0.01 * (below + 1) + 0.005}, capacity=big))
    check_scan_order(registry)
    perm = registry.engine.core.scan_order.perm
    assert registry.engine.core.scan_order.misplaced == 1
    at = int(np.flatnonzero(perm == registry.engine.core.index["new"])[0])
    assert at == free["g02-03"] and free["g10-03"] > at
    assert_same_answers(registry, {"slot_name": "s", "performance": {"min_write_rps": 100000}}, 20)
    assert_same_answers(registry, {"slot_name": "s"}, 700)


def exact_ranks(registry) -> tuple[np.ndarray, np.ndarray]:
    """Each word's and each block's least id rank over the live scan slots."""
    scan, store = registry.engine.core.scan_order, registry.columns.store
    a, n, bw = scan.arrays, scan.n_slots, scan.block_words
    nw = (n + 63) // 64
    alive = np.unpackbits(a["alive"].view(np.uint8), bitorder="little")[:nw * 64].astype(bool)
    perm = np.full(nw * 64, 0)
    perm[:n] = a["perm"][:n]
    ranks = np.where(alive, store["id_label"][perm], np.iinfo(np.int64).max).reshape(nw, 64).min(axis=1)
    blocks = np.full(-(-nw // bw) * bw, np.iinfo(np.int64).max)
    blocks[:nw] = ranks
    return ranks, blocks.reshape(-1, bw).min(axis=1)


def assert_exact_ranks(registry) -> None:
    words, blocks = exact_ranks(registry)
    a = registry.engine.core.scan_order.arrays
    assert np.array_equal(a["word_rank"][:len(words)], words)
    assert np.array_equal(a["block_rank"][:len(blocks)], blocks)


def test_a_word_losing_its_least_id_rank_takes_the_next_one():
    # Every backend that leaves a word (removed, or moved away by a
    # cascade) and held its least id rank gives the word, and its block,
    # the next least: a stale lower rank would make every tie at the top
    # visit the word. 20 runs of 64 (one word each, 2 words a block); the
    # earliest id of every run leaves, then runs fill up again so that
    # cascades move backends between words.
    body = BODIES[0]
    registry = grouped_registry(20, 64, 2)
    for g in range(20):
        registry.remove(f"g{g:02d}-00")
        registry.remove(f"g{g:02d}-01")
    assert_exact_ranks(registry)
    for g in range(0, 20, 2):  # even runs gain four: two into their holes, two by cascades
        for j in range(4):
            registry.add(dict(body, backend_id=f"g{g:02d}-z{j}", cost={"cost_per_1k_writes": 0.01 * (g + 1)}))
    check_scan_order(registry)
    assert_exact_ranks(registry)
    assert_same_answers(registry, {"slot_name": "s"}, 5)
    # Ids squeezed in one after another between two neighbours: their labels
    # touch, and a window of ids around them (live ones) is labelled again,
    # some later than before; ranks stay exact.
    labels = dict(zip(registry.backend_ids, registry.columns.store["id_label"].tolist()))
    for j in range(1, 40):
        registry.add(dict(body, backend_id="g07-10" + "a" * j, cost={"cost_per_1k_writes": 0.08}))
        forget_recent(registry, dict(body, cost={"cost_per_1k_writes": 0.08}), f"zz{j:02d}")
    after = dict(zip(registry.backend_ids, registry.columns.store["id_label"].tolist()))
    assert any(after[b] > labels[b] for b in labels if b in after)  # a window was spread out
    check_scan_order(registry)
    assert_exact_ranks(registry)
    assert_same_answers(registry, {"slot_name": "s"}, 5)


def test_ids_arriving_in_increasing_order_after_a_full_last_word_lie_in_increasing_order():
    # One run of 640 tied backends (10 words); every 20th of the first nine
    # words leaves (fewer than a sixteenth of the run: it is not laid out
    # again); new ids after every id in the run (its last word full) then
    # take the run's free slots front to back, so they lie in increasing
    # order: a top-k over the tie then evaluates at most k of them before
    # the winners (nearest-first laid them out decreasing).
    body = BODIES[0]
    docs = [dict(body, backend_id=f"b{j:03d}") for j in range(640)]
    registry = load_registry(docs)
    registry.engine.core.order_by(1.0, 0.0, 2, gap_every=0)
    for j in range(0, 576, 20):
        registry.remove(f"b{j:03d}")
    new = [f"z{j:02d}" for j in range(40)]
    for backend_id in new:
        registry.add(dict(body, backend_id=backend_id))
    check_scan_order(registry)
    scan, index = registry.engine.core.scan_order, registry.engine.core.index
    slot_of = {int(p): s for s, p in enumerate(scan.perm)}
    slots = [slot_of[index[b]] for b in new]
    assert slots == sorted(slots)
    assert scan.compactions == 0
    assert_same_answers(registry, {"slot_name": "s"}, 5)


def run_in_scan_order(registry) -> list[str]:
    """The live backend ids in scan order."""
    scan, core = registry.engine.core.scan_order, registry.engine.core
    name_of = {i: b for b, i in core.index.items()}
    alive = np.unpackbits(scan.arrays["alive"].view(np.uint8), bitorder="little")[:scan.n_slots].astype(bool)
    return [name_of[int(p)] for p in scan.perm[alive]]


@pytest.mark.parametrize("one_by_one", [True, False])
def test_a_run_with_a_sixteenth_free_is_laid_out_again_before_a_late_id_goes_in(one_by_one):
    # One run of 640 tied backends; every 10th leaves (a tenth of the run
    # free, spread through it). The first id after every id in the run
    # finds its last word full: the run is laid out again as a fresh order
    # lays it (its ids sorted, its free slots at its end), once; the new ids
    # then go to its end in order, after the winners of the tie, and the
    # whole run reads in id order, as a registry loaded with these backends
    # would.
    body = BODIES[0]
    registry = load_registry([dict(body, backend_id=f"b{j:03d}") for j in range(640)])
    registry.engine.core.order_by(1.0, 0.0, 2, gap_every=0)
    for j in range(0, 640, 10):
        registry.remove(f"b{j:03d}")
    new = [dict(body, backend_id=f"z{j:02d}") for j in range(50)]
    if one_by_one:
        for doc in new:
            registry.add(doc)
    else:
        registry.add(new)
    scan = registry.engine.core.scan_order
    assert scan.compactions == 1
    ids = run_in_scan_order(registry)
    assert ids == sorted(ids) and len(ids) == 626
    check_scan_order(registry)
    assert_exact_ranks(registry)
    assert_same_answers(registry, {"slot_name": "s"}, 5)
    assert_same_answers(registry, {"slot_name": "s"}, 700)


def test_a_short_run_is_not_laid_out_again():
    # A run of 200 (under four words) with a tenth free: late ids take its
    # free slots front to back, and nothing else moves.
    body = BODIES[0]
    registry = load_registry([dict(body, backend_id=f"b{j:03d}") for j in range(200)])
    registry.engine.core.order_by(1.0, 0.0, 2, gap_every=0)
    for j in range(0, 200, 10):
        registry.remove(f"b{j:03d}")
    before = run_in_scan_order(registry)
    for j in range(5):
        registry.add(dict(body, backend_id=f"z{j:02d}"))
    assert registry.engine.core.scan_order.compactions == 0
    assert [b for b in run_in_scan_order(registry) if not b.startswith("z")] == before
    check_scan_order(registry)
    assert_same_answers(registry, {"slot_name": "s"}, 5)


def test_a_registry_that_grows_with_no_hole_has_its_order_built_again():
    # Every backend its own key (a cost of its own), 1,000 of them; 300
    # added among the first third of the keys: with no free slot near its
    # run, each lands beside no run of its key, at the order's tail.
    # Past 256 such adds (and a sixteenth of the positions) the order is
    # built again, sorted, instead of leaving a tail of mixed keys that
    # every match scans.
    body = BODIES[0]
    docs = [dict(body, backend_id=f"b{j:04d}", cost={"cost_per_1k_writes": 0.001 * (2 * j + 1)})
            for j in range(1000)]
    registry = load_registry(docs)
    core = registry.engine.core
    core.order_by(1.0, 0.0, 2, gap_every=0)
    first = core.scan_order
    for j in range(300):
        registry.add(dict(body, backend_id=f"n{j:04d}", cost={"cost_per_1k_writes": 0.001 * (2 * j + 2)}))
    scan = core.scan_order
    assert scan is not first and scan.misplaced < 256  # built again, once past the count
    assert scan.block_words == 2
    check_scan_order(registry)
    for slot in ({"slot_name": "s"}, {"slot_name": "t", "capabilities": ["get"]}):
        assert_same_answers(registry, slot, 20)
    # Built again right now, every live slot is sorted by key.
    core.order_by(1.0, 0.0, 2, force=True, gap_every=0)
    keys = live_slot_keys(registry)
    assert np.all(keys[:-1] >= keys[1:]) and core.scan_order.misplaced == 0


def test_reservations_that_use_up_namespaces_clear_the_room_bits_placing_filters_on():
    # 300 tied backends with room for two namespaces each: reserving takes
    # them in id order, two each; a backend with no room left is filtered
    # out 64 at a time (its bit cleared), and gets it back on release. The
    # same sequence as the plain scan, which reads every backend's columns.
    docs = [{"backend_id": f"b{i:03d}", "backend_type": "redis", "capabilities": ["get"],
             "capacity": {"max_write_rps": 1000, "max_namespaces": 2}} for i in range(300)]
    ordered, plain = load_registry(docs), load_registry(docs)
    ordered.engine.core.order_by(1.0, 0.0, 2)
    plain.engine.core.use_scan_order = False
    slot = {"slot_name": "s", "capabilities": ["get"]}
    taken = [ordered.reserve(slot) for _ in range(450)]
    assert [r.backend_id for r in taken] == [plain.reserve(slot).backend_id for _ in range(450)]
    assert [r.backend_id for r in taken[:4]] == ["b000", "b000", "b001", "b001"]
    check_scan_order(ordered)
    room = ordered.engine.core.scan_order.arrays["ns_room"][0]
    assert sum(bin(int(w)).count("1") for w in room) == 75  # b225..b299
    for r in taken[:10]:
        ordered.release(r)
    check_scan_order(ordered)
    assert ordered.reserve(slot).backend_id == "b000"


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 1e-300, 0.5 + 1e-16]), max_size=200),
       labels=st.lists(st.integers(-(1 << 62), 1 << 62), unique=True, max_size=200))
def test_the_order_s_sort_is_lexsort_by_key_descending_then_label(keys, labels):
    """``order_by`` sorts the live backends with ``_by_key_then_label``
    (one int64 argsort where ``np.lexsort`` runs two merge sorts): the same
    permutation, exact ties of keys included (0.0 and -0.0 are one key)."""
    n = min(len(keys), len(labels))
    key = np.array(keys[:n], dtype=np.float64)
    label = np.array(labels[:n], dtype=np.int64)
    assert _by_key_then_label(key, label).tolist() == np.lexsort((label, -key)).tolist()


@SETTINGS
@given(keys=st.lists(st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 1e-300, 0.5 + 1e-16, math.inf, -math.inf, math.nan]),
                     max_size=300),
       labels=st.lists(st.integers(-(1 << 62), 1 << 62), unique=True, max_size=300),
       data=st.data())
def test_the_rebuilt_order_s_merge_is_the_full_sort(keys, labels, data):
    """A rebuilt order sorts from the old one (``_sorted_from``): the run of
    it still in order is kept, the rest sorted and merged in. Whatever the
    old order (the sorted one with some moved to its end, as growth leaves
    it; with some swapped; any permutation), the answer is the full
    sort's, exact ties, -0.0, infinities and NaN included."""
    n = min(len(keys), len(labels))
    key = np.array(keys[:n], dtype=np.float64)
    label = np.array(labels[:n], dtype=np.int64)
    chosen = np.array(sorted(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)) if n else []), dtype=np.int64)
    ordered = chosen[np.lexsort((label[chosen], -key[chosen]))]
    shape = data.draw(st.sampled_from(["moved to the end", "swapped", "any"]))
    hint = ordered.tolist()
    if shape == "moved to the end":
        moved = data.draw(st.sets(st.integers(0, max(len(hint) - 1, 0)), max_size=len(hint) // 8 + 1)) if hint else set()
        hint = [p for j, p in enumerate(hint) if j not in moved] + [hint[j] for j in sorted(moved)]
    elif shape == "swapped" and len(hint) > 1:
        for _ in range(data.draw(st.integers(0, 5))):
            a, b = data.draw(st.integers(0, len(hint) - 1)), data.draw(st.integers(0, len(hint) - 1))
            hint[a], hint[b] = hint[b], hint[a]
    else:
        hint = data.draw(st.permutations(hint))
    hint = np.array(hint, dtype=np.int64)
    assert _sorted_from(key, label, hint).tolist() == ordered.tolist()
