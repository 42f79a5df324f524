"""A living registry against a plain model: add, remove, replace, update,
reserve, release, match, explain and save/load in any order give the plain
reference's answers, recomputed from scratch after every step (exact ties
included: identical bodies under different ids), and the thread test
reserves from several threads at once without ever overcommitting.
"""

from __future__ import annotations

import collections
import io
import sys
import threading
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

import reference
import reference_assign
from prism_match import MatchPolicy, PlacementError, RegistryError, Reservation, load_registry, load_snapshot
from prism_match._core import ChangeLog
from prism_match.engine import validate_slot
from prism_match.schema import Current, Health, Registration, decode_hook

# Pools larger than 64 so that vocabularies grow past one mask word while the machine runs.
CAPS = [f"cap{j}" for j in range(70)]
REGIONS = [f"r{j}" for j in range(70)]
TAGS = ["pci", "sox", "hipaa"]
IDS = ["a", "b", "b0", "b00", "ba", "c", "m", "z", "zz", "é", "k1", "k10", "k2"]

ints = st.integers(0, 6).map(lambda x: x * 100)


@st.composite
def bodies(draw) -> dict[str, Any]:
    caps = draw(st.lists(st.sampled_from(CAPS[:8] + CAPS[60:]), max_size=4, unique=True))
    body: dict[str, Any] = {
        "backend_type": draw(st.sampled_from(["postgres", "redis", "kafka"])),
        "capabilities": [{"name": c, "performance": {"latency": {"p99_ms": draw(st.sampled_from([5, 30]))}}}
                         if draw(st.booleans()) else c for c in caps],
        "interfaces": draw(st.lists(st.sampled_from(["KV", "Queue"]), max_size=2, unique=True)),
        "capacity": {"max_write_rps": draw(ints), "max_read_rps": draw(ints),
                     "max_storage": draw(st.sampled_from([None, 1000, 5000])),
                     "max_namespaces": draw(st.sampled_from([None, 1, 3]))},
        "regions": draw(st.lists(st.sampled_from(REGIONS[:3] + REGIONS[66:]), max_size=2, unique=True)),
        "compliance": draw(st.lists(st.sampled_from(TAGS), max_size=2, unique=True)),
    }
    if draw(st.booleans()):
        body["current"] = {"write_rps": draw(ints), "read_rps": draw(ints), "namespace_count": draw(st.integers(0, 2))}
    if draw(st.booleans()):
        body["health"] = {"status": draw(st.sampled_from(["healthy", "degraded", "unhealthy"])),
                          "uptime_percent_24h": draw(st.sampled_from([90, 99.5]))}
    if draw(st.booleans()):
        body["cost"] = {"cost_per_1k_writes": draw(st.sampled_from([0, 0.5, 2]))}
    body["capacity"] = {k: v for k, v in body["capacity"].items() if v is not None}
    return body


@st.composite
def slots(draw) -> dict[str, Any]:
    slot: dict[str, Any] = {"slot_name": "s"}
    if draw(st.booleans()):
        slot["capabilities"] = draw(st.lists(st.sampled_from(CAPS[:3] + CAPS[60:62] + ["nosuch"]), max_size=2))
    if draw(st.booleans()):
        slot["interfaces"] = draw(st.lists(st.sampled_from(["KV", "Queue"]), max_size=1))
    if draw(st.booleans()):
        slot["performance"] = {"min_write_rps": draw(ints), "min_read_rps": draw(ints)}
        if draw(st.booleans()):
            slot["performance"]["max_latency_p99"] = "20ms"
    if draw(st.booleans()):
        slot["regions"] = draw(st.lists(st.sampled_from(REGIONS[:3] + REGIONS[66:]), min_size=1, max_size=2))
    if draw(st.booleans()):
        slot["preferred_region"] = draw(st.sampled_from(REGIONS[:2] + REGIONS[68:]))
    if draw(st.booleans()):
        slot["compliance"] = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=2))
    if draw(st.booleans()):
        slot["min_storage"] = draw(st.sampled_from([0, 500, 2000]))
    return slot


def _registration(doc: dict[str, Any]) -> Registration:
    return msgspec.convert(doc, Registration, dec_hook=decode_hook)


class Model:
    """The registry in plain Python: registrations, observed usage, health,
    and what reservations hold, per backend (running sums, as the engine keeps them)."""

    def __init__(self) -> None:
        self.regs: dict[str, Registration] = {}
        self.observed: dict[str, list[float]] = {}
        self.status: dict[str, tuple[str, float | None]] = {}
        self.reserved: dict[str, list[float]] = {}
        self.held: dict[int, Reservation] = {}

    def register(self, reg: Registration, keep: bool) -> None:
        cur, health = reg.current, reg.health
        if not keep or cur is not None:
            self.observed[reg.backend_id] = [float(getattr(cur, f) or 0) if cur is not None else 0.0
                                             for f in ("write_rps", "read_rps", "storage_used", "namespace_count")]
        if not keep or health is not None:
            self.status[reg.backend_id] = (reg.health_status, health.uptime_percent_24h if health else None)
        if not keep:
            self.reserved[reg.backend_id] = [0.0, 0.0, 0.0, 0.0]
        self.regs[reg.backend_id] = reg

    def drop(self, backend_id: str) -> None:
        for table in (self.regs, self.observed, self.status, self.reserved):
            del table[backend_id]
        self.held = {k: v for k, v in self.held.items() if v.backend_id != backend_id}

    def effective(self) -> list[Registration]:
        """Each registration as the rules see it: usage = observed + reserved."""
        out = []
        for bid, reg in self.regs.items():
            used = [o + r for o, r in zip(self.observed[bid], self.reserved[bid])]
            status, uptime = self.status[bid]
            current = Current(write_rps=used[0], read_rps=used[1], storage_used=used[2], namespace_count=used[3])
            health = Health(status=status, uptime_percent_24h=uptime)
            out.append(msgspec.structs.replace(reg, current=current, health=health))
        return out


class LivingRegistry(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    @initialize(docs=st.lists(bodies(), max_size=5), ids=st.permutations(IDS))
    def load(self, docs: list[dict], ids: list[str]) -> None:
        docs = [dict(body, backend_id=bid) for body, bid in zip(docs, ids)]
        self.registry = load_registry(docs)
        self.bodies = {d["backend_id"]: {k: v for k, v in d.items() if k != "backend_id"} for d in docs}
        self.model = Model()
        for doc in docs:
            self.model.register(_registration(doc), keep=False)
        self.version = self.registry.version
        self.replica = load_registry(docs)  # follows the registry's change log (``follow``)

    def _changed(self) -> None:
        assert self.registry.version > self.version
        self.version = self.registry.version

    @rule(body=bodies(), bid=st.sampled_from(IDS), twin=st.booleans(), prepared=st.booleans())
    def add(self, body: dict, bid: str, twin: bool, prepared: bool) -> None:
        if twin and self.model.regs:  # an exact tie: an existing body under another id
            other = sorted(self.model.regs)[0]
            body = self.bodies[other]
        doc = dict(body, backend_id=bid)
        given = self.registry.prepare_registration(doc) if prepared else doc
        if bid in self.model.regs:
            with pytest.raises(RegistryError, match="already registered"):
                self.registry.add(given)
            return
        self.registry.add(given)
        self.bodies[bid] = body
        self.model.register(_registration(doc), keep=False)
        self._changed()

    @rule(bid=st.sampled_from(IDS))
    def remove(self, bid: str) -> None:
        if bid not in self.model.regs:
            with pytest.raises(RegistryError, match="Unknown backend"):
                self.registry.remove(bid)
            return
        self.registry.remove(bid)
        self.model.drop(bid)
        self._changed()

    @rule(body=bodies(), bid=st.sampled_from(IDS))
    def replace(self, body: dict, bid: str) -> None:
        if bid not in self.model.regs:
            return
        doc = dict(body, backend_id=bid)
        self.registry.replace(doc)
        self.bodies[bid] = body
        self.model.register(_registration(doc), keep=True)
        self._changed()

    @rule(bid=st.sampled_from(IDS), w=st.none() | ints, r=st.none() | ints,
          status=st.none() | st.sampled_from(["healthy", "degraded", "unhealthy", "unknown"]))
    def update(self, bid: str, w: int | None, r: int | None, status: str | None) -> None:
        if bid not in self.model.regs:
            return
        self.registry.update(bid, write_rps=w, read_rps=r, status=status)
        obs = self.model.observed[bid]
        if w is not None:
            obs[0] = float(w)
        if r is not None:
            obs[1] = float(r)
        if status is not None:
            self.model.status[bid] = (status, self.model.status[bid][1])
        self._changed()

    @rule(target=reservations, slot=slots(), named=st.none() | st.sampled_from(IDS))
    def reserve(self, slot: dict, named: str | None) -> Any:
        requirement = validate_slot(slot)
        regs = self.model.effective()
        if named is not None:
            regs = [r for r in regs if r.backend_id == named]
        plan = reference_assign.assign(regs, [requirement])
        if named is not None and named not in self.model.regs:
            with pytest.raises(RegistryError, match="Unknown backend"):
                self.registry.reserve(slot, named)
            return None
        if not plan.bindings:
            with pytest.raises(PlacementError):
                self.registry.reserve(slot, named)
            return None
        (_, expected, score), = plan.bindings
        held = self.registry.reserve(slot, named)
        assert (held.backend_id, held.score) == (expected, score)
        w, r, storage = reference_assign._needs(requirement)
        res = self.model.reserved[expected]
        res[0] += w; res[1] += r; res[2] += storage; res[3] += 1.0  # noqa: E702
        self.model.held[held.id] = held
        self._changed()
        return held

    @rule(held=consumes(reservations))
    def release(self, held: Reservation | None) -> None:
        if held is None:
            return
        expected = held.id in self.model.held
        assert self.registry.release(held) is expected
        if expected:
            del self.model.held[held.id]
            res = self.model.reserved[held.backend_id]
            if not any(h.backend_id == held.backend_id for h in self.model.held.values()):
                res[:] = [0.0, 0.0, 0.0, 0.0]
            else:
                for j, amount in enumerate((held.write_rps, held.read_rps, held.storage, held.namespaces)):
                    res[j] = max(res[j] - amount, 0.0)
            self._changed()
        assert self.registry.release(held) is False  # twice is harmless

    @rule(slot=slots(), k=st.integers(1, 4))
    def match(self, slot: dict, k: int) -> None:
        expected = reference.match(self.model.effective(), validate_slot(slot), k)
        got = [(m.backend_id, m.score) for m in self.registry.match(slot, k=k)]
        assert got == expected

    @rule(slot=slots())
    def explain(self, slot: dict) -> None:
        regs = self.model.effective()
        diag = self.registry.explain(slot)
        assert diag.rejected == reference.explain_counts(regs, validate_slot(slot))
        assert (diag.eligible, diag.total) == (reference.eligible_count(regs, validate_slot(slot)), len(regs))

    @rule()
    def follow(self) -> None:
        # A replica replaying the log has the same registrations.
        self.replica.apply(self.registry.changes(since=self.replica.version))
        assert self.replica.version == self.registry.version
        assert {b: self.replica[b] for b in self.replica.backend_ids} == \
            {b: self.registry[b] for b in self.registry.backend_ids}

    @rule()
    def compact(self) -> None:
        self.registry.compact()

    @rule()
    def save_and_load(self) -> None:
        self.follow()  # the snapshot's log starts at its version
        buf = io.BytesIO()
        self.registry.save(buf)
        again = load_snapshot(buf.getvalue())
        assert again.version == self.registry.version
        assert sorted(r.id for r in again.reservations) == sorted(self.model.held)
        self.registry = again

    @invariant()
    def same_backends(self) -> None:
        if not hasattr(self, "registry"):
            return
        assert sorted(self.registry.backend_ids) == sorted(self.model.regs)
        assert len(self.registry) == len(self.model.regs)
        for reg in self.model.effective():
            live = self.registry[reg.backend_id]
            assert ((live.current.write_rps if live.current else None) or 0) == reg.current.write_rps
            assert live.health_status == reg.health.status
            static = [f for f in Registration.__struct_fields__ if f not in ("current", "health")]
            assert [getattr(live, f) for f in static] == [getattr(self.model.regs[reg.backend_id], f) for f in static]


LivingRegistry.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
TestLivingRegistry = LivingRegistry.TestCase


# --- examples -------------------------------------------------------------------------------

def doc(bid: str, **fields: Any) -> dict[str, Any]:
    base = {"backend_id": bid, "backend_type": "postgres", "interfaces": ["KV"],
            "capacity": {"max_write_rps": 1000, "max_read_rps": 1000, "max_namespaces": 10}}
    base.update(fields)
    return base


SLOT = {"slot_name": "s", "interfaces": ["KV"], "performance": {"min_write_rps": 400}}


def test_an_added_backend_matches_at_once_and_a_removed_one_never_again():
    registry = load_registry([doc("a")])
    registry.add(doc("b", capabilities=["brand-new"]))
    assert [m.backend_id for m in registry.match({"slot_name": "s", "capabilities": ["brand-new"]})] == ["b"]
    registry.remove("b")
    assert registry.match({"slot_name": "s", "capabilities": ["brand-new"]}) == []
    assert "b" not in registry and registry.backend_ids == ["a"]


def test_a_prepared_slot_sees_names_that_arrive_later():
    registry = load_registry([doc("a")])
    prepared = registry.prepare({"slot_name": "s", "capabilities": ["later"]})
    assert registry.match(prepared) == []
    registry.add(doc("b", capabilities=["later"]))
    assert [m.backend_id for m in registry.match(prepared)] == ["b"]


def test_a_list_is_added_all_or_nothing():
    registry = load_registry([doc("a")])
    with pytest.raises(RegistryError) as info:
        registry.add([doc("b"), doc("c", backend_type="oracle")])
    assert "$[1].backend_type" in str(info.value)
    assert registry.backend_ids == ["a"] and registry.version == 0
    with pytest.raises(RegistryError, match="already registered"):
        registry.add([doc("d"), doc("a")])
    assert registry.backend_ids == ["a"]


def test_add_refuses_inline_secrets_as_the_loader_does():
    registry = load_registry([doc("a")])
    with pytest.raises(RegistryError, match="Inline secret") as info:
        registry.add(doc("b", connection={"endpoint": "db:5432", "auth": {"type": "username_password", "username": "u", "password": "hunter2"}}))
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("fields, path", [
    ({"backend_id": "b\x07"}, "$[0].backend_id"),
    ({"capabilities": ["get", "se\x1ft"]}, "$[0].capabilities[1]"),
    ({"capabilities": [{"name": "get", "version": "v\x00"}]}, "$[0].capabilities[0].version"),
    ({"interfaces": [{"name": "KV\t"}]}, "$[0].interfaces[0].name"),
    ({"regions": ["us-east-1\n"]}, "$[0].regions[0]"),
    ({"compliance": ["pci", "\x1b[31m"]}, "$[0].compliance[1]"),
])
def test_add_refuses_control_characters_in_names_as_the_loader_does(fields, path):
    registry = load_registry([doc("a")])
    bad = {**doc("b"), **fields}
    with pytest.raises(RegistryError) as by_add:
        registry.add(bad)
    with pytest.raises(RegistryError) as by_loader:
        load_registry([bad])
    [(location, message)] = by_add.value.errors
    assert by_add.value.errors == by_loader.value.errors
    assert location == f"<input> {path}" and message.startswith("Expected a name without control characters")
    assert registry.backend_ids == ["a"] and registry.version == 0


def test_a_registration_built_by_hand_checks_its_names():
    with pytest.raises(ValueError, match=r"without control characters.*\$\.compliance\[0\]"):
        Registration(backend_id="b", backend_type="postgres", compliance=["\x07"])


def test_replace_keeps_live_usage_unless_stated():
    registry = load_registry([doc("a")])
    registry.update("a", write_rps=300)
    registry.replace(doc("a", capacity={"max_write_rps": 5000, "max_read_rps": 1000}))
    assert registry["a"].current.write_rps == 300 and registry["a"].capacity.max_write_rps == 5000
    registry.replace(doc("a", current={"write_rps": 10}))
    assert registry["a"].current.write_rps == 10


def test_reserve_takes_capacity_and_release_gives_it_back():
    registry = load_registry([doc("a"), doc("b", capacity={"max_write_rps": 700, "max_read_rps": 1000})])
    first = registry.reserve(SLOT)
    assert (first.backend_id, first.write_rps, first.namespaces) == ("a", 400.0, 1.0)
    assert registry["a"].current.write_rps == 400
    second = registry.reserve(SLOT)
    third = registry.reserve(SLOT)
    assert sorted([second.backend_id, third.backend_id]) == ["a", "b"]
    with pytest.raises(PlacementError, match="insufficient_write_capacity") as info:
        registry.reserve(SLOT)
    assert info.value.diagnosis.rejected == {"insufficient_write_capacity": 2}
    assert registry.release(first) is True and registry.release(first) is False
    assert registry.reserve(SLOT).backend_id == "a"


def test_reserve_on_a_named_backend_says_what_it_lacks():
    registry = load_registry([doc("a"), doc("small", capacity={"max_write_rps": 100, "max_read_rps": 1000})])
    assert registry.reserve(SLOT, "a").backend_id == "a"
    with pytest.raises(PlacementError, match=r"`small` is not eligible: insufficient_write_capacity\(need 400 rps\)"):
        registry.reserve(SLOT, "small")


def test_releasing_a_reservation_of_a_removed_backend_is_harmless():
    registry = load_registry([doc("a")])
    held = registry.reserve(SLOT)
    registry.remove("a")
    assert registry.release(held) is False


def test_reservations_count_everywhere():
    registry = load_registry([doc("a")])
    registry.reserve(SLOT)
    registry.reserve(SLOT)  # 800 of 1000 write rps held: 200 left
    [m] = registry.match(SLOT)  # the default basis compares the maximum; the score sees what is left
    assert (m.available_write_rps, m.performance) == (200.0, 0.5)
    assert registry.query({"required_interfaces": ["KV"]}).backends[0].available_write_rps == 200.0
    assert registry.match_many([SLOT])["performance"].to_list() == [0.5]
    assert registry.to_polars()["reserved_write_rps"].to_list() == [800.0]
    assert registry["a"].current.write_rps == 800
    plan = registry.assign([SLOT], allow_unplaced=True)
    assert plan.unplaced[0].diagnosis.rejected == {"insufficient_write_capacity": 1}
    registry.policy = MatchPolicy(capacity_basis="available")
    assert registry.match(SLOT) == []
    assert registry.explain(SLOT).rejected == {"insufficient_write_capacity": 1}


def test_versions_and_the_change_log_let_a_replica_follow():
    registry = load_registry([doc("a"), doc("b")])
    start = io.BytesIO()
    registry.save(start)
    registry.add(doc("c", regions=["us-east-1"]))
    registry.update("a", write_rps=700, status="degraded")
    held = registry.reserve(SLOT)
    registry.replace(doc("b", capacity={"max_write_rps": 3000, "max_read_rps": 1000}))
    registry.release(held)
    registry.reserve(SLOT, "c")
    registry.remove("a")
    changes = registry.changes(since=0)
    assert [c.kind for c in changes] == ["add", "update", "reserve", "replace", "release", "reserve", "remove"]
    # An add's data is a tuple of Registrations, one add or a list alike.
    assert type(changes[0].data) is tuple and [r.backend_id for r in changes[0].data] == ["c"]
    assert [c.version for c in changes] == list(range(1, 8)) and registry.version == 7
    assert registry.changes(since=5) == changes[5:]
    replica = load_snapshot(start.getvalue())
    replica.apply(changes)
    assert replica.version == registry.version
    for slot in (SLOT, {"slot_name": "t"}, {"slot_name": "u", "regions": ["us-east-1"]}):
        assert [(m.backend_id, m.score) for m in replica.match(slot, k=5)] == \
            [(m.backend_id, m.score) for m in registry.match(slot, k=5)]


def test_a_bounded_log_says_when_it_forgot():
    registry = load_registry([doc("a")], log_size=2)
    for w in (1, 2, 3):
        registry.update("a", write_rps=w)
    assert [c.version for c in registry.changes(since=1)] == [2, 3]
    with pytest.raises(RegistryError, match="no longer kept"):
        registry.changes(since=0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.lists(st.sampled_from(["add", "update", "reserve", "release"]), max_size=17))
def test_the_change_log_ring_keeps_what_a_bounded_deque_keeps(capacity, kinds):
    # The ring written in place (no tuple per change) against its plain twin.
    log, twin = ChangeLog(capacity), collections.deque(maxlen=capacity)
    for version, kind in enumerate(kinds, start=1):
        entry = (version, kind, f"b{version % 3}", {"n": version})
        log.append(entry)
        twin.append(entry)
        assert list(log) == list(twin) and len(log) == len(twin)
        assert log.first_version == twin[0][0]


def test_a_wrapped_log_replays_reserves_and_releases_in_order():
    registry = load_registry([doc("a"), doc("b")], log_size=3)
    held = [registry.reserve(SLOT) for _ in range(4)]
    registry.release(held[0])
    registry.release(held[0])  # harmless, logs nothing
    changes = registry.changes(since=registry.version - 3)
    assert [(c.version, c.kind) for c in changes] == [(3, "reserve"), (4, "reserve"), (5, "release")]
    assert changes[0].data == held[2] and changes[2].data == held[0].id


def test_a_snapshot_keeps_live_usage_reservations_and_version():
    registry = load_registry([doc("a"), doc("b")])
    registry.update("b", write_rps=100)
    held = registry.reserve(SLOT)
    registry.remove("a")
    registry.add(doc("c"))
    buf = io.BytesIO()
    registry.save(buf)
    again = load_snapshot(buf.getvalue())
    assert again.version == registry.version
    assert again.reservations == registry.reservations
    assert again["b"].current.write_rps == registry["b"].current.write_rps
    assert again.release(held) is (held.backend_id in again)


def test_many_adds_and_removes_keep_answers_and_reuse_positions():
    registry = load_registry([doc(f"k{j:03d}") for j in range(100)])
    size = registry.columns.n
    for j in range(0, 100, 2):
        registry.remove(f"k{j:03d}")
    for j in range(50):
        registry.add(doc(f"n{j:03d}", capacity={"max_write_rps": 2000 + j, "max_read_rps": 1000}))
    assert registry.columns.n == size  # the holes were reused
    slot = {"slot_name": "s", "performance": {"min_write_rps": 1500}}
    assert [m.backend_id for m in registry.match(slot, k=3)] == ["n049", "n048", "n047"]
    assert registry.explain(slot).rejected == {"insufficient_write_capacity": 50}
    registry.compact()
    assert registry.columns.n == 100
    assert [m.backend_id for m in registry.match(slot, k=3)] == ["n049", "n048", "n047"]


def test_each_backend_keeps_its_own_registration_through_removes_adds_and_compaction():
    """Registrations are kept by position: a reused position holds the new
    backend's, and compaction moves each with its backend."""
    registry = load_registry([doc(f"k{j}", capabilities=[f"cap-{j}"]) for j in range(6)])
    registry.remove("k1")
    registry.remove("k4")
    registry.add(doc("n1", capabilities=["cap-new"]))  # into a hole
    registry.add([doc("n2", capabilities=["cap-n2"]), doc("n3", capabilities=["cap-n3"])])  # a hole, then a new one
    registry.replace(doc("k2", capabilities=["cap-replaced"]))
    expected = {"k0": ["cap-0"], "k2": ["cap-replaced"], "k3": ["cap-3"], "k5": ["cap-5"], "n1": ["cap-new"],
                "n2": ["cap-n2"], "n3": ["cap-n3"]}

    def held() -> dict[str, list[str]]:
        return {b: [c if isinstance(c, str) else c.name for c in registry[b].capabilities] for b in registry.backend_ids}

    assert held() == expected
    registry.compact()
    assert held() == expected
    for gone in ("k1", "k4"):
        with pytest.raises(KeyError):
            registry[gone]
    changes = registry.changes(since=2)
    assert [c.kind for c in changes[:2]] == ["add", "add"]
    assert [[r.backend_id for r in c.data] for c in changes[:2]] == [["n1"], ["n2", "n3"]]


def test_threads_reserving_at_once_never_overcommit():
    backends = [doc(f"b{j}", capacity={"max_write_rps": 1000, "max_read_rps": 1000, "max_namespaces": 100})
                for j in range(5)]
    registry = load_registry(backends)
    slot = registry.prepare(SLOT)  # 400 rps each: two fit per backend
    taken: list[Reservation] = []
    failures: list[Exception] = []

    def worker() -> None:
        for _ in range(6):
            try:
                taken.append(registry.reserve(slot))
            except PlacementError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 10 and len(failures) == 14
    per_backend: dict[str, float] = {}
    for held in taken:
        per_backend[held.backend_id] = per_backend.get(held.backend_id, 0.0) + held.write_rps
    assert all(total <= 1000 for total in per_backend.values())
    assert len({h.id for h in taken}) == len(taken)
    frame = registry.to_polars()
    assert frame["reserved_write_rps"].to_list() == [800.0] * 5


def test_threads_adding_removing_and_reserving_at_once_leave_one_consistent_registry():
    # add, remove, reserve and release each take the registry's lock in C
    # (a FastRLock): four threads adding and removing their own backends and
    # one reserving and releasing leave the registry a fresh load of the
    # survivors would be, every change logged once, no backend overcommitted.
    registry = load_registry([doc(f"base{j:02d}") for j in range(20)])
    slot = registry.prepare(SLOT)
    start = registry.version
    reserved: list[Reservation] = []
    errors: list[BaseException] = []

    def churner(t: int) -> None:
        try:
            for j in range(150):
                registry.add(doc(f"t{t}-{j:03d}"))
                if j % 3 == 0:
                    registry.remove(f"t{t}-{j:03d}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def reserver() -> None:
        try:
            for _ in range(300):
                reserved.append(registry.reserve(slot))  # at most 11 held: the 20 first backends take 40
                if len(reserved) > 10:
                    registry.release(reserved.pop(0))  # False when its backend was removed meanwhile
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=churner, args=(t,)) for t in range(4)] + [threading.Thread(target=reserver)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the threads take turns within a change, not after a run of them
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    survivors = {f"base{j:02d}" for j in range(20)} | {f"t{t}-{j:03d}" for t in range(4) for j in range(150) if j % 3}
    assert set(registry.backend_ids) == survivors
    changes = registry.changes(since=start)
    assert len(changes) == registry.version - start  # every change logged once (the log holds them all)
    kinds = collections.Counter(c.kind for c in changes)
    assert kinds["add"] == 600 and kinds["remove"] == 200 and kinds["reserve"] == 300
    frame = registry.to_polars()
    assert (frame["reserved_write_rps"] <= frame["max_write_rps"]).all()
    fresh = load_registry([doc(b) for b in sorted(survivors)])
    for held in reserved:
        registry.release(held)
    assert registry.to_polars()["reserved_write_rps"].sum() == 0
    assert [m.backend_id for m in registry.match(SLOT, k=50)] == [m.backend_id for m in fresh.match(SLOT, k=50)]


def churned_registry():
    """640 backends of one body in one run of the scan order, every 10th
    removed (a run a late id lays out again), and 300 of another body."""
    body = {k: v for k, v in doc("x").items() if k != "backend_id"}
    other = dict(body, capacity={"max_write_rps": 9000, "max_read_rps": 9000})
    registry = load_registry([dict(body, backend_id=f"b{j:03d}") for j in range(640)]
                             + [dict(other, backend_id=f"c{j:03d}") for j in range(300)])
    registry.engine.core.order_by(1.0, 0.0, 2)
    for j in range(0, 640, 10):
        registry.remove(f"b{j:03d}")
    return registry, body


BATCH_SLOTS = [{"slot_name": f"s{j}", "performance": {"min_write_rps": 100 * j}} for j in range(40)]


def test_a_progress_callback_cannot_change_the_registry_under_its_batch(monkeypatch):
    # The batch reads positions and scan slots that an add (filling holes,
    # laying a run out again) or a remove would change under it: from the
    # batch's own thread the change is refused, and the batch's answer is
    # the registry's as the batch began.
    import prism_match.batch as batch

    monkeypatch.setattr(batch, "CHUNK", 8)
    registry, body = churned_registry()
    expected = registry.match_many(BATCH_SLOTS, 5)
    refused: list[str] = []

    def progress(done: int, total: int) -> None:
        for change in (lambda: registry.add(dict(body, backend_id=f"z{done:03d}")),
                       lambda: registry.remove("b001"), lambda: registry.replace(dict(body, backend_id="b002")),
                       registry.compact):
            with pytest.raises(RegistryError, match="while match_many runs") as info:
                change()
            refused.append(info.value.errors[0][0])

    assert registry.match_many(BATCH_SLOTS, 5, progress=progress).equals(expected)
    assert refused == ["add", "remove", "replace", "compact"] * 5
    assert "z008" not in registry and "b001" in registry
    registry.add(dict(body, backend_id="z999"))  # after the batch, changes go through
    assert "z999" in registry


def test_changes_from_another_thread_wait_for_a_running_batch(monkeypatch):
    # Another thread's adds and removes (which fill holes and lay a run out
    # again) wait for the batch to end: every answer in it is the registry's
    # as the batch began, none mixes positions from before and after.
    import prism_match.batch as batch

    monkeypatch.setattr(batch, "CHUNK", 8)
    registry, body = churned_registry()
    expected = registry.match_many(BATCH_SLOTS, 5)
    started, changed = threading.Event(), threading.Event()

    def changer() -> None:
        started.wait()
        registry.add([dict(body, backend_id=f"z{j:02d}") for j in range(50)])
        for j in range(1, 640, 10):
            registry.remove(f"b{j:03d}")
        changed.set()

    seen: list[bool] = []

    def progress(done: int, total: int) -> None:
        started.set()
        seen.append(changed.wait(0.05))  # the other thread is let run; it cannot change anything yet

    thread = threading.Thread(target=changer)
    thread.start()
    got = registry.match_many(BATCH_SLOTS, 5, progress=progress)
    thread.join()
    assert got.equals(expected)
    assert seen == [False] * 5 and changed.is_set()
    assert registry.engine.core.scan_order.compactions == 1  # the run was laid out again, after the batch
    after = registry.match_many(BATCH_SLOTS, 5)
    assert not after.equals(expected)
    assert after["backend_id"].is_in([f"b{j:03d}" for j in range(1, 640, 10)]).sum() == 0


def test_explain_and_match_from_another_thread_beside_adds():
    # One thread explains and matches a slot again and again while another
    # adds and removes backends (the columns and the scan order grow under
    # it). Each diagnosis is of a registry as it was between two changes:
    # only the rules the slot constrains reject, no more eligible than live;
    # each match names live-or-just-removed backends that pass the slot.
    # Before: the explain pass ran without the GIL beside the adds (a
    # consistency rejection for a slot stating none, an IndexError naming
    # it), sized its output before a Python call let another thread add
    # positions (heap corruption: the process aborted), and the arrays the
    # core and the scan order point into were freed while their
    # replacements were being made, in Python code another thread could
    # interrupt (a match then crashed).
    from prism_match.synthetic import generate_registry

    docs = generate_registry(6000, seed=5)
    registry = load_registry(docs[:500])
    slot = {"slot_name": "s", "interfaces": ["KeyValueBasicInterface"], "performance": {"min_write_rps": 10}}
    allowed = {"missing_interface", "health_status", "insufficient_write_capacity"}
    stop = threading.Event()
    seen: list = []
    errors: list[BaseException] = []

    matched: set[str] = set()

    def explainer() -> None:
        while not stop.is_set():
            try:
                seen.append(registry.explain(slot))
                matched.update(m.backend_id for m in registry.match(slot, 5))
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)
                return

    thread = threading.Thread(target=explainer)
    thread.start()
    try:
        for j, doc in enumerate(docs[500:]):
            registry.add(dict(doc, backend_id=f"zz{j:05d}"))
            if j % 3 == 0:
                registry.remove(f"zz{j:05d}")
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(seen) >= 3 and matched
    added = {f"zz{j:05d}" for j in range(len(docs) - 500)}
    assert matched <= {d["backend_id"] for d in docs[:500]} | added
    for diagnosis in seen:
        assert set(diagnosis.rejected) <= allowed
        assert diagnosis.eligible <= diagnosis.total and 500 <= diagnosis.total <= len(registry)
    reloaded = load_registry([registry[b] for b in registry.backend_ids])
    assert registry.explain(slot) == reloaded.explain(slot)
