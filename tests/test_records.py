"""The registrations a registry keeps, as records (``RecordStore``, the
change log's ring of bytes): against plain twins, and through the registry
(what ``registry[id]``, ``changes``, snapshots and ``compact`` give back,
whatever each registration was loaded, added or replaced as).
"""

from __future__ import annotations

import collections
import io
import pickle

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_match import PreparedRegistration, RegistryError, load_registry, load_snapshot
from prism_match._core import ChangeLog, RecordStore
from prism_match.loading import load_registrations
from prism_match.snapshot import REMOVED

GRAIN = 64

lengths = st.sampled_from([0, 1, 63, 64, 65, 127, 600, 923, 4095, 4096, 4097, 9000])


def _record(tag: int, n: int) -> bytes:
    return bytes((tag + j) % 251 for j in range(n))


# --- the store -----------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "drop"]), st.integers(0, 40), lengths), max_size=120))
def test_the_store_gives_back_what_a_dict_would_and_makes_a_slot_only_when_none_is_free(steps):
    store, twin = RecordStore(), {}
    live: collections.Counter[int] = collections.Counter()   # records kept per slot size
    most: collections.Counter[int] = collections.Counter()   # the most kept at once
    slot = lambda n: -(-n // GRAIN) * GRAIN  # noqa: E731
    for tag, (op, i, n) in enumerate(steps):
        if op == "put":
            record = _record(tag, n)
            kept = store.put(i, record)
            assert kept == (0 < n <= store.max_length)
            if kept:  # the new slot is taken before the old one is given back
                live[slot(n)] += 1
                most[slot(n)] = max(most[slot(n)], live[slot(n)])
                if i in twin:
                    live[slot(len(twin[i]))] -= 1
                twin[i] = record
        else:
            store.drop(i)
            if i in twin:
                live[slot(len(twin.pop(i)))] -= 1
        assert store.count == len(twin)
        assert all(store.get(j) == twin.get(j) and (j in store) == (j in twin) for j in range(42))
    assert store.slots_made == {size: count for size, count in most.items() if count}


def test_a_churn_reuses_the_slots_a_remove_gave_back():
    store = RecordStore()
    for i in range(1000):
        store.put(i, _record(i, 600))
    made, size = store.slots_made, store.nbytes
    for step in range(20_000):  # every record replaced many times over, one at a time
        i = (step * 7919) % 1000
        store.drop(i)
        store.put(i, _record(step, 600))
    assert store.slots_made == made and store.nbytes == size
    assert store.get(999) == _record(max(s for s in range(20_000) if (s * 7919) % 1000 == 999), 600)


# --- the change log's ring of bytes --------------------------------------------------------

payloads = st.one_of(st.none(), st.dictionaries(st.sampled_from("xy"), st.integers(0, 3), max_size=2),
                     lengths.map(lambda n: ("record", n)), st.just(("tuple", 2)))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.lists(payloads, max_size=40))
def test_the_log_keeps_records_as_a_bounded_deque_keeps_them(capacity, drawn):
    log, twin = ChangeLog(capacity), collections.deque(maxlen=capacity)
    most = 0
    for version, payload in enumerate(drawn, start=1):
        if isinstance(payload, tuple) and payload[0] == "record":
            payload = _record(version, payload[1])
        elif isinstance(payload, tuple):
            payload = (_record(version, 10), _record(version + 1, 700))
        entry = (version, "add", f"b{version % 3}", payload)
        log.append(entry)
        twin.append(entry)
        assert list(log) == list(twin) and log.first_version == twin[0][0]
        most = max(most, sum(len(p) for _, _, _, p in twin if type(p) is bytes))
    # The ring grows (doubling) only when the records kept outgrow it.
    assert log.nbytes <= max(65536, 2 * most)


# --- through the registry ------------------------------------------------------------------

def body(bid: str, **fields) -> dict:
    doc = {"backend_id": bid, "backend_type": "postgres", "interfaces": ["KV"], "capabilities": ["get", "set"],
           "capacity": {"max_write_rps": 1000, "max_read_rps": 1000, "max_namespaces": 10,
                        "max_storage": "1TB"}, "regions": ["eu-west-1"]}
    doc.update(fields)
    return doc


BIG = {"notes": "x" * 6000}  # a record longer than any slot: the layout keeps it apart


def test_every_registration_comes_back_as_given_however_it_was_kept():
    docs = [body("loaded"), body("big", metadata=BIG)]
    registry = load_registry(docs)
    added = [body("added", capabilities=["get"]), body("added-big", metadata=BIG)]
    for doc in added:
        registry.add(doc)
    registry.add([body("listed-1"), body("listed-2", metadata=BIG)])
    registry.replace(body("loaded", interfaces=["Queue"]))
    expected = {r.backend_id: r for r in load_registrations(
        [docs[1], *added, body("listed-1"), body("listed-2", metadata=BIG), body("loaded", interfaces=["Queue"])])}
    assert {b: registry[b] for b in registry.backend_ids} == expected
    # A snapshot, and a compacted registry, give the same.
    buf = io.BytesIO()
    registry.remove("added")
    del expected["added"]
    registry.save(buf)
    again = load_snapshot(buf.getvalue())
    again.add(body("after", metadata=BIG))
    expected["after"] = load_registrations([body("after", metadata=BIG)])[0]
    for reg in (registry, again):
        reg.compact()
    assert {b: again[b] for b in again.backend_ids} == expected
    del expected["after"]
    assert {b: registry[b] for b in registry.backend_ids} == expected


def test_the_log_gives_back_each_added_and_replaced_registration():
    registry = load_registry([body("a")])
    registry.add(body("b", metadata=BIG))
    registry.add(body("c"))
    registry.add([body("d"), body("e")])
    registry.replace(body("a", regions=["us-east-1"]))
    changes = registry.changes(since=0)
    assert [(c.kind, tuple(r.backend_id for r in c.data) if c.kind == "add" else c.data.backend_id)
            for c in changes] == [("add", ("b",)), ("add", ("c",)), ("add", ("d", "e")), ("replace", "a")]
    assert changes[1].data == tuple(load_registrations([body("c")]))
    assert changes[3].data.regions == ["us-east-1"]
    replica = load_registry([body("a")])
    replica.apply(changes)
    assert {b: replica[b] for b in replica.backend_ids} == {b: registry[b] for b in registry.backend_ids}


def test_inline_secrets_allowed_stay_out_of_every_record_and_snapshot():
    secret = "hunter2-very-secret"
    with_secret = body("s", connection={"endpoint": "db:5432", "auth": {"type": "username_password",
                                                                       "password": secret}})
    registry = load_registry([body("a")])
    registry.add(with_secret, allow_inline_secrets=True)
    assert registry["s"].connection.auth.password == secret  # kept in memory, as given
    position = registry._core.index["s"]
    assert registry._layout.record_at(position).connection.auth.password == secret  # kept as a Registration
    assert position not in registry._layout.records  # no record holds it
    buf = io.BytesIO()
    registry.save(buf)
    assert secret.encode() not in buf.getvalue()
    assert load_snapshot(buf.getvalue())["s"].connection.auth.password == REMOVED
    registry.remove("s")
    assert registry._layout.kept == {}


def test_a_fleet_that_turns_over_keeps_its_records_in_the_slots_it_had():
    registry = load_registry([body(f"b{j}", regions=[f"r{j % 3}"]) for j in range(200)], log_size=16)
    store = registry._layout.records
    made = store.slots_made
    for j in range(2000):
        registry.remove(f"b{j}")
        registry.add(body(f"b{j + 200}", regions=[f"r{j % 3}"]))
    assert store.count == 200 and store.slots_made == made
    assert registry["b2199"] == load_registrations([body("b2199", regions=[f"r{1999 % 3}"])])[0]
    assert [c.data[0].backend_id for c in registry.changes(since=registry.version - 2) if c.kind == "add"] == ["b2199"]


def test_a_record_decodes_to_an_equal_registration_field_by_field():
    # What the store keeps is msgspec's msgpack of the Registration: every
    # field comes back with its type (sizes, durations, thresholds).
    doc = body("h", health_check={"interval": "30s", "timeout": "5s", "healthy_threshold": 2,
                                  "unhealthy_threshold": 3, "checks": [{"name": "connectivity"}]},
               metadata={"team": "core", "n": 3})
    registry = load_registry([body("a")])
    registry.add(doc)
    [reg] = load_registrations([doc])
    got = registry["h"]
    assert got == reg
    assert all(type(getattr(got, f)) is type(getattr(reg, f)) for f in reg.__struct_fields__)
    assert msgspec.structs.asdict(got.health_check) == msgspec.structs.asdict(reg.health_check)


def test_a_record_that_cannot_be_put_is_refused_whole():
    store = RecordStore()
    assert store.put(3, b"") is False and 3 not in store
    assert store.put(3, b"x" * (store.max_length + 1)) is False and store.count == 0
    with pytest.raises(IndexError):
        store.put(-1, b"x")


# --- prepared registrations ----------------------------------------------------------------

def test_a_prepared_registration_adds_as_its_document_does():
    docs = [body("p", capabilities=["get", "brand-new"]), body("q", metadata=BIG)]
    by_dict, by_prepared = load_registry([body("a")]), load_registry([body("a")])
    by_dict.add(docs[0])
    by_dict.add([docs[1]])
    by_prepared.add(by_prepared.prepare_registration(docs[0]))
    by_prepared.add(by_prepared.prepare_registration([docs[1]]))
    for reg in (by_dict, by_prepared):
        assert reg.version == 2
    assert {b: by_prepared[b] for b in by_prepared.backend_ids} == {b: by_dict[b] for b in by_dict.backend_ids}
    assert by_prepared.changes(since=0) == by_dict.changes(since=0)
    slot = {"slot_name": "s", "capabilities": ["brand-new"]}
    assert [m.backend_id for m in by_prepared.match(slot)] == ["p"]


def test_a_prepared_registration_is_checked_where_it_is_made_and_refused_when_registered():
    registry = load_registry([body("a")])
    with pytest.raises(RegistryError, match="Inline secret"):
        registry.prepare_registration(body("s", connection={"auth": {"type": "token", "token": "t0p-secret-x"}}))
    with pytest.raises(RegistryError, match="Duplicate backend_id"):
        registry.prepare_registration([body("d"), body("d")])
    again = registry.prepare_registration(body("a"))
    with pytest.raises(RegistryError, match="already registered"):
        registry.add(again)
    mixed = [registry.prepare_registration(body("m1")), body("m2")]  # with other items: validated as a list
    registry.add(mixed)
    assert sorted(registry.backend_ids) == ["a", "m1", "m2"]
    registry.replace(registry.prepare_registration(body("m1", regions=["ap-south-1"])))  # checked again there
    assert registry["m1"].regions == ["ap-south-1"]
    with pytest.raises(TypeError, match="prepare_registration"):
        PreparedRegistration(registry["a"], b"")
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(again)


def test_a_prepared_registration_with_an_allowed_secret_keeps_no_record():
    secret = "hunter2-very-secret"
    doc = body("s", connection={"auth": {"type": "username_password", "password": secret}})
    registry = load_registry([body("a")])
    prepared = registry.prepare_registration(doc, allow_inline_secrets=True)
    assert prepared.record is None and prepared.registration.connection.auth.password == secret
    registry.add(prepared)
    assert registry["s"].connection.auth.password == secret
    # A prepared registration with no secret, added where secrets are allowed: its record kept.
    registry.add(registry.prepare_registration(body("t")), allow_inline_secrets=True)
    assert registry._core.index["t"] in registry._layout.records and registry["t"] == load_registrations([body("t")])[0]
    buf = io.BytesIO()
    registry.save(buf)
    assert secret.encode() not in buf.getvalue()


def test_a_registration_read_while_the_backend_was_replaced_is_not_given_out_after():
    # The interleaving of two readers and a writer, in one thread: the first
    # reader reads the old record; meanwhile the backend is replaced and a
    # second reader reads the new one; then the first keeps what it read.
    registry = load_registry([body("a")])
    layout = registry._layout

    class Racing:
        def record_at(self, i):
            old = layout.record_at(i)
            registry._layout = layout
            registry.replace(body("a", regions=["us-east-1"]))
            assert registry["a"].regions == ["us-east-1"]
            return old

    registry._layout = Racing()
    assert registry["a"].regions == ["eu-west-1"]  # the first reader: what it read
    assert registry["a"].regions == ["us-east-1"]  # after the replace, never the old one
