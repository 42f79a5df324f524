"""What an add writes, against plain readings of it.

* ``_core.Row`` (a registration as the columns hold it, in Cython) against
  ``plain_row`` below, the plain Python it replaced: the same floats, codes,
  tokens, bits and latency entries, and the vocabularies grown the same way.
* A registry grown by adds (one at a time, as lists, into holes a remove
  left) holds what the same registrations compiled at once hold: every
  column of every backend, read back by name (vocabulary bits depend on the
  order names arrived in).
* ``_core.IdOrder`` (ids in byte order with their order labels) against a
  sorted list: after any adds and removes, labels increase strictly with the
  ids, including when neighbours' labels touch and a window is spread out.
* A list add is all or nothing on the paths that refuse before writing (the
  limits) and when a write is interrupted half-way.
"""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import registries
from prism_match import RegistryError, compiled, load_registry, load_snapshot
from prism_match._core import ID_ORDER_RECENT, IdOrder, Row
from prism_match.compiled import (ENTRY_COLUMNS, CONSISTENCY_CODE, FLOAT_COLUMNS, HEALTH_CODE, INPUT_FLOATS, LABEL_GAP, MISSING,
                                  RESERVED_COLUMNS, TYPE_CODE, UNKNOWN_CONSISTENCY, USED_COLUMNS)
from prism_match.schema import DEFAULT_VERSION, Registration, decode_hook
from prism_match.synthetic import generate_registry
from prism_match.vocabulary import Vocabulary, capability_token, interface_token, versioned

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def plain_row(reg: Registration, features: Vocabulary, regions: Vocabulary, compliance: Vocabulary) -> dict:
    """A registration as the columns hold it, in plain Python (the code
    ``Row`` replaced): INPUT_FLOATS with MISSING for what is not given."""
    tokens, latency = [], []
    for cap in reg.capabilities:
        name, version = (cap, DEFAULT_VERSION) if isinstance(cap, str) else (cap.name, cap.version)
        bare, exact = features.add(capability_token(name)), features.add(versioned(capability_token(name), version))
        tokens += (bare, exact)
        stated = None if isinstance(cap, str) else cap.performance_entry()
        if stated is not None:
            # (p99, p50, p95, p999, max_write_rps, max_read_rps, supports_batch, max_batch_size, concurrency)
            nums = [math.nan if v is None else float(v) for v in stated]
            batch = stated[6]
            latency.append((bare, exact, *nums[:6], -1 if batch is None else int(batch), *nums[7:]))
    for ifc in reg.interfaces:
        name, version = (ifc, DEFAULT_VERSION) if isinstance(ifc, str) else (ifc.name, ifc.version)
        tokens += (features.add(interface_token(name)), features.add(versioned(interface_token(name), version)))
    blocks = {"capacity": reg.capacity, "current": reg.current, "cost": reg.cost, "health": reg.health}
    where = {"max_write_rps": "capacity", "max_read_rps": "capacity", "max_storage": "capacity",
             "max_namespaces": "capacity", "max_connections": "capacity", "write_rps": "current",
             "read_rps": "current", "storage_used": "current", "namespace_count": "current",
             "active_connections": "current", "cost_per_1k_writes": "cost", "uptime_percent_24h": "health"}
    floats = []
    for name in INPUT_FLOATS:
        block = blocks[where[name]]
        value = getattr(block, name) if block is not None else None
        floats.append(float(MISSING[name] if value is None else value))
    return {"floats": floats, "tokens": tokens, "latency": latency,
            "regions": [regions.add(r) for r in reg.regions], "compliance": [compliance.add(t) for t in reg.compliance],
            "backend_type": TYPE_CODE[reg.backend_type], "health": HEALTH_CODE[reg.health_status],
            "consistency": UNKNOWN_CONSISTENCY if reg.consistency is None else CONSISTENCY_CODE[reg.consistency]}


def entries(latency: list[tuple]) -> list[tuple]:
    """Latency entries comparable with their NaNs (unstated values)."""
    return [tuple(repr(float(x)) if isinstance(x, float) else x for x in e) for e in latency]


def same_floats(a: list[float], b: list[float]) -> bool:
    return all((x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


@SETTINGS
@given(case=registries())
def test_row_matches_the_plain_reading(case):
    regs = [msgspec.convert(d, Registration, dec_hook=decode_hook) for d in case.docs]
    mine, plain = [Vocabulary() for _ in range(3)], [Vocabulary() for _ in range(3)]
    for reg in regs:
        row, expected = Row(reg, *mine), plain_row(reg, *plain)
        assert same_floats(row.floats, expected["floats"])
        assert (row.tokens, entries(row.latency), row.regions, row.compliance) == \
            (expected["tokens"], entries(expected["latency"]), expected["regions"], expected["compliance"])
        assert (row.backend_type, row.health, row.consistency) == \
            (expected["backend_type"], expected["health"], expected["consistency"])
    assert [v.tokens for v in mine] == [v.tokens for v in plain]
    assert [v.index for v in mine] == [v.index for v in plain]
    # Row reads the schema classes' slots directly; anything else through
    # getattr, with the same result.
    for reg in regs:
        stand_in = SimpleNamespace(**{f: getattr(reg, f) for f in reg.__struct_fields__})
        a, b = Row(reg, *mine), Row(stand_in, *mine)
        assert same_floats(a.floats, b.floats)
        assert (a.tokens, entries(a.latency), a.regions, a.compliance, a.backend_type, a.health, a.consistency) == \
            (b.tokens, entries(b.latency), b.regions, b.compliance, b.backend_type, b.health, b.consistency)


# --- a registry grown by adds holds what one compiled at once holds ------------------------

def by_name(registry) -> dict[str, dict]:
    """Every live backend's columns, read back by name: the row columns
    (the order label and latency offsets aside), the feature tokens whose bit
    is set, the regions and tags, the latency entries."""
    c = registry.columns
    out = {}
    for backend_id in registry.backend_ids:
        i = registry.engine.core.index[backend_id]
        columns = {name: float(c.store[name][i])
                   for name in (*FLOAT_COLUMNS, *RESERVED_COLUMNS, *USED_COLUMNS, "backend_type", "health", "consistency")}
        regions = np.unpackbits(c.region_rows[i].astype("<u8").view(np.uint8), bitorder="little")
        tags = np.unpackbits(c.compliance_rows[i].astype("<u8").view(np.uint8), bitorder="little")
        out[backend_id] = {
            "columns": {k: ("nan" if v != v else v) for k, v in columns.items()},
            "tokens": sorted(c.features.tokens[t] for t in c.tokens_of(i)),
            "regions": sorted(c.regions.tokens[b] for b in np.flatnonzero(regions).tolist()),
            "compliance": sorted(c.compliance.tokens[b] for b in np.flatnonzero(tags).tolist()),
            "latency": sorted((c.features.tokens[int(c.lat_vtoken[e])],
                               *(repr(float(getattr(c, name)[e])) for name in ENTRY_COLUMNS[2:]))
                              for e in range(int(c.lat_start[i]), int(c.lat_stop[i]))),
        }
    return out


@SETTINGS
@given(case=registries(min_backends=2), data=st.data())
def test_adds_and_removes_hold_what_a_fresh_compile_holds(case, data):
    docs = case.docs
    first = data.draw(st.integers(0, len(docs)), label="loaded")
    registry = load_registry(docs[:first])
    # Some loaded backends leave and come back (holes reused, labels taken back).
    back = data.draw(st.lists(st.sampled_from(docs[:first]), unique_by=lambda d: d["backend_id"]), label="back") \
        if first else []
    for doc in back:
        registry.remove(doc["backend_id"])
    rest = back + docs[first:]
    as_list = data.draw(st.booleans(), label="as one list")
    if as_list:
        registry.add(rest)
    else:
        for doc in rest:
            registry.add(doc)
    fresh = load_registry(docs)
    assert by_name(registry) == by_name(fresh)
    # Ties order by backend_id bytes: the order labels sort as the ids do.
    c = registry.columns
    live = [(registry.engine.core.index[b], b) for b in registry.backend_ids]
    assert sorted(live, key=lambda p: int(c.id_label[p[0]])) == sorted(live, key=lambda p: p[1].encode())


# --- IdOrder ---------------------------------------------------------------------------------

# One, two and four bytes a character in CPython ("é" is Latin-1, "€" and
# "😀" are not): IdOrder compares two one-byte ids by their bytes and any
# other pair through PyUnicode_Compare; both must give code point order.
ID_CHARS = "abz0é€😀"


@settings(max_examples=200, deadline=None)
@given(initial=st.lists(st.text(ID_CHARS, min_size=1, max_size=4), unique=True, max_size=30),
       tight=st.booleans(),
       ops=st.lists(st.tuples(st.sampled_from(["add", "remove", "purge"]), st.text(ID_CHARS, min_size=1, max_size=4)),
                    max_size=120))
def test_id_order_labels_increase_with_the_ids(initial, tight, ops):
    """``tight``: the initial labels are consecutive integers, so most adds
    between two of them spread a window out first. ``purge`` lets the
    removed ids go."""
    initial.sort()
    step = 1 if tight else LABEL_GAP
    positions = {backend_id: j for j, backend_id in enumerate(initial)}
    id_label = np.zeros(len(initial) + len(ops) + 1, dtype=np.int64)
    for j, backend_id in enumerate(initial):
        id_label[j] = j * step
    order = IdOrder(list(initial), [j * step for j in range(len(initial))], LABEL_GAP, -(1 << 62), 1 << 62)
    live = set(initial)
    known = set(initial)  # live or removed: what the order holds
    for op, backend_id in ops:
        if op == "purge":
            kept = order.labels
            labels_before = {b: kept[b] for b in live}
            order.purge(live)
            known = set(live)
            kept = order.labels
            assert order.removed == 0 and {b: kept[b] for b in live} == labels_before
            assert set(kept) == live
        elif op == "add" and backend_id not in live:
            if backend_id in known:  # removed before
                expected = order.labels[backend_id]
                assert backend_id in order  # still in the order, with its label
            else:
                expected = None
            positions.setdefault(backend_id, len(positions))
            label = order.label_for(backend_id, id_label, {b: positions[b] for b in live})
            if expected is not None:
                assert label == expected  # a removed id takes its label back
            id_label[positions[backend_id]] = label
            live.add(backend_id)
            known.add(backend_id)
        elif op == "remove" and backend_id in live:
            order.note_removed()
            live.discard(backend_id)
        held = order.ids()
        assert held == sorted(known) and len(order) == len(known)
        by_id = order.labels
        labels = [by_id[b] for b in held]
        assert all(a < b for a, b in zip(labels, labels[1:])), "labels must increase strictly with the ids"
        assert all(-(1 << 62) < x < (1 << 62) for x in labels)
        for b in live:  # the column holds every live id's label, spreads included
            assert id_label[positions[b]] == by_id[b]
        assert order.removed == len(known - live)
    assert set(order.ids()) - live == known - live


def test_id_order_stays_sorted_when_its_blocks_split():
    """Thousands of ids added in a random order, of every width: an
    IdOrder's blocks split as they fill, and the order and its labels stay
    those of the ids (tested above on orders too small to split)."""
    rng = np.random.default_rng(7)
    names = [f"{rng.choice(['kafka', 'nats', 'pg', 'pgé', 'pg€', 'pg😀'])}-{int(k):05d}"
             for k in rng.integers(0, 100_000, 6_000)]
    names = list(dict.fromkeys(names))
    initial, added = sorted(names[:100]), names[100:]
    order = IdOrder(initial, [j * LABEL_GAP for j in range(len(initial))], LABEL_GAP, -(1 << 62), 1 << 62)
    positions = {backend_id: j for j, backend_id in enumerate(names)}
    id_label = np.zeros(len(names), dtype=np.int64)
    for backend_id in added:
        id_label[positions[backend_id]] = order.label_for(backend_id, id_label, positions)
    held = order.ids()
    assert held == sorted(names) and len(order) == len(names)
    by_id = order.labels
    labels = [by_id[b] for b in held]
    assert all(a < b for a, b in zip(labels, labels[1:]))
    assert all(id_label[positions[b]] == by_id[b] for b in added)


def test_id_order_refuses_bounds_whose_labels_would_not_fit_a_c_integer():
    with pytest.raises(ValueError, match="IdOrder bounds"):
        IdOrder([], [], LABEL_GAP, -(1 << 63), 1 << 62)
    with pytest.raises(ValueError, match="IdOrder bounds"):
        IdOrder([], [], LABEL_GAP, 5, 5)
    order = IdOrder([], [], LABEL_GAP, -(1 << 62), 1 << 62)  # living.Layout's bounds: the first id gets 0
    assert order.label_for("a", np.zeros(1, dtype=np.int64), {}) == 0


def test_id_order_arrivals_past_either_end_step_one_gap_out():
    order = IdOrder(["m"], [0], LABEL_GAP, -(1 << 62), 1 << 62)
    column = np.zeros(4, dtype=np.int64)
    assert order.label_for("z", column, {}) == LABEL_GAP
    assert order.label_for("a", column, {}) == -LABEL_GAP
    # "n" falls beside "z", added lately: a sixteenth of the room before it.
    assert order.label_for("n", column, {}) == LABEL_GAP - LABEL_GAP // 16


def test_id_order_gives_room_after_ids_added_lately_else_the_midpoint():
    order = IdOrder(["m", "z"], [0, LABEL_GAP], LABEL_GAP, -(1 << 62), 1 << 62)
    column = np.zeros(4, dtype=np.int64)
    assert order.label_for("n", column, {}) == LABEL_GAP // 2  # beside no id added lately
    # Beside "n", added lately: a sixteenth of the room on (ids numbered on
    # then find room after it); between two such, after the one before.
    assert order.label_for("o", column, {}) == LABEL_GAP // 2 + LABEL_GAP // 32
    assert order.label_for("nz", column, {}) == LABEL_GAP // 2 + LABEL_GAP // 512
    # Once ID_ORDER_RECENT more ids were added elsewhere, "o" is not recent.
    for j in range(ID_ORDER_RECENT):
        order.label_for(f"zz{j:03d}", column, {})
    lo, hi = order.labels["o"], LABEL_GAP
    assert order.label_for("p", column, {}) == lo + (hi - lo) // 2
    # Before one added lately ("p") and after none: a sixteenth of the room back.
    hi = order.labels["p"]
    assert order.label_for("oz", column, {}) == hi - (hi - lo) // 16


def test_id_order_splits_long_blocks_and_keeps_its_order():
    ids = [f"id-{j:05d}" for j in range(0, 4000, 2)]
    order = IdOrder(ids, [(j + 1) * LABEL_GAP for j in range(len(ids))], LABEL_GAP, -(1 << 62), 1 << 62)
    column = np.zeros(1, dtype=np.int64)
    for j in range(1, 4000, 2):
        order.label_for(f"id-{j:05d}", column, {})
    held = order.ids()
    assert held == sorted(held) and len(held) == 4000
    labels = [order.labels[b] for b in held]
    assert all(a < b for a, b in zip(labels, labels[1:]))


# --- all or nothing ------------------------------------------------------------------------

def docs_for(n: int, prefix: str, seed: int = 5) -> list[dict]:
    return [dict(d, backend_id=f"{prefix}-{j:04d}") for j, d in enumerate(generate_registry(n, seed=seed))]


SLOT = {"slot_name": "s", "capabilities": ["get"], "performance": {"min_write_rps": 10}}


def state(registry) -> tuple:
    """What an add changes, seen from outside (positions left as holes aside)."""
    return (registry.backend_ids, registry.version, len(registry), registry.reservations,
            [(m.backend_id, m.score) for m in registry.match(SLOT, k=10)], registry.explain(SLOT).rejected)


def test_a_list_past_the_mask_limits_adds_nothing(monkeypatch):
    registry = load_registry(docs_for(20, "a"))
    before = state(registry)
    # 70 new regions make region masks two words wide; the limit allows 30 backends of them.
    new = [dict(d, regions=[f"new-region-{k}" for k in range(70)]) for d in docs_for(30, "b")]
    monkeypatch.setattr(compiled, "MAX_MASK_BYTES", 30 * 2 * 8)
    regions = list(registry.columns.regions.tokens)
    with pytest.raises(RegistryError, match="Expected bit masks of at most"):
        registry.add(new)
    assert state(registry) == before
    assert registry.columns.regions.tokens == regions  # the refused names are forgotten
    registry.add(new[:5])  # within the limit
    assert len(registry) == 25


def test_the_columns_attributes_an_add_reads_in_place_are_plain():
    """``_core.LayoutCore`` reads and writes these through the columns'
    instance dict: a property or slot of the same name would be bypassed.
    It forgets the ids' caches only when one is set: set, they go."""
    registry = load_registry(docs_for(3, "a"))
    columns = registry.columns
    for name in ("size", "entries", "dense", "_ids", "_rank_cache"):
        assert name not in dir(compiled.Columns), name
        assert name in vars(columns), name
    entries = columns.entries
    registry.remove("a-0001")
    new = docs_for(2, "b")
    registry.add(new)
    assert (columns.size, columns.dense, columns._ids) == (4, False, None)  # one hole reused, one position added
    rows = [Row(msgspec.convert(d, Registration, dec_hook=decode_hook), columns.features, columns.regions,
                columns.compliance) for d in new]
    assert columns.entries == entries + sum(len(row.latency) for row in rows) > entries

    def ranks_by_position():  # what id_rank must say: each id's place in byte order
        ids = columns.backend_ids
        return [sorted(ids).index(b) for b in ids]

    assert columns.id_series().to_list() == columns.backend_ids and list(columns.id_rank) == ranks_by_position()
    registry.add(docs_for(1, "c"))  # the ids' caches, set just above, are forgotten
    assert columns.id_series().to_list() == columns.backend_ids and list(columns.id_rank) == ranks_by_position()
    assert len(columns.backend_ids) == 5


@pytest.mark.parametrize("holes", [0, 2, 4])
def test_an_add_interrupted_half_way_leaves_nothing_added(monkeypatch, holes):
    """An interruption while the third backend of a list is written (here:
    when a reused hole marks the columns out of position order, or when a
    new last position is counted) undoes the two written before it and
    gives its position back."""
    docs = docs_for(20, "a")
    registry = load_registry(docs)
    gone = [f"a-{j:04d}" for j in range(3, 3 + holes)]
    for backend_id in gone:
        registry.remove(backend_id)
    before = state(registry)
    calls: list[str] = []

    def interrupt_on_third(name):
        def setter(self, value):
            calls.append(name)
            if len(calls) == 3:
                raise KeyboardInterrupt
            self.__dict__[name] = value
        return property(lambda self: self.__dict__[name], setter)

    # Set once per backend written: ``dense`` when a hole is reused, ``size`` when a position is added.
    monkeypatch.setattr(compiled.Columns, "dense", interrupt_on_third("dense"), raising=False)
    monkeypatch.setattr(compiled.Columns, "size", interrupt_on_third("size"), raising=False)
    with pytest.raises(KeyboardInterrupt):
        registry.add(docs_for(5, "c"))
    monkeypatch.undo()
    assert len(calls) >= 3  # the undoing sets them too
    assert state(registry) == before
    assert all(b is None or not b.startswith("c-") for b in registry.columns.backend_ids)
    registry.add(docs_for(5, "c"))  # the same ids go in cleanly afterwards
    assert len(registry) == 25 - holes
    assert by_name(registry) == by_name(load_registry([d for d in docs if d["backend_id"] not in gone]
                                                      + docs_for(5, "c")))


def test_new_last_positions_hold_no_old_bits_after_compaction_and_snapshots():
    """An add into a new last position writes no clearing pass (Columns: no
    feature bit at or past ``size``): true of compiled, compacted and
    reloaded columns alike, and of columns grown by adds."""
    docs = docs_for(150, "a")
    registry = load_registry(docs[:100])
    for j in range(0, 100, 3):
        registry.remove(f"a-{j:04d}")
    registry.compact()
    buf = io.BytesIO()
    registry.save(buf)
    for current in (registry, load_snapshot(buf.getvalue())):
        current.add(docs[100:])  # past the holes' count: new last positions, and the store grows
        expected = [d for j, d in enumerate(docs) if j >= 100 or j % 3]
        assert by_name(current) == by_name(load_registry(expected))


def test_many_removes_let_the_order_forget_them_and_ties_still_follow_the_ids():
    """Once removed ids make up a third of the order it lets them go
    (``IdOrder.purge``); ids added after, new ones and ones that were
    removed, still take labels in byte order."""
    docs = docs_for(200, "m")
    twin = {k: v for k, v in docs[0].items() if k != "backend_id"}  # identical bodies: exact ties
    docs = [dict(twin, backend_id=d["backend_id"]) if j % 2 else d for j, d in enumerate(docs)]
    registry = load_registry(docs)
    registry.add(docs_for(1, "zz"))  # the order is made
    removed = [d["backend_id"] for d in docs[:180]]
    for backend_id in removed:
        registry.remove(backend_id)
    order = registry._layout._order
    assert order.removed == 180
    back = [d for j, d in enumerate(docs[:180]) if j % 6 == 1]
    new = [dict(twin, backend_id=f"m-{j:04d}x") for j in range(0, 200, 7)]
    registry.add(back + new)
    assert registry._layout._order.removed == 0  # let go on that add
    expected = docs[180:] + docs_for(1, "zz") + back + new
    assert by_name(registry) == by_name(load_registry(expected))
    c = registry.columns
    live = [(registry.engine.core.index[b], b) for b in registry.backend_ids]
    assert sorted(live, key=lambda p: int(c.id_label[p[0]])) == sorted(live, key=lambda p: p[1].encode())
    slot = {"slot_name": "s"}
    assert [(m.backend_id, m.score) for m in registry.match(slot, k=50)] == \
        [(m.backend_id, m.score) for m in load_registry(expected).match(slot, k=50)]


def test_remove_says_what_it_cannot_remove_and_takes_a_str_subclass():
    registry = load_registry(docs_for(3, "r"))
    version = registry.version
    with pytest.raises(RegistryError, match=r"Expected a backend_id \(`str`\), got `int` - at remove"):
        registry.remove(5)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="Unknown backend `r-9999` - at remove"):
        registry.remove("r-9999")
    assert registry.version == version and len(registry) == 3

    class Name(str):
        pass

    registry.remove(Name("r-0001"))
    assert registry.backend_ids == ["r-0000", "r-0002"] and registry.version == version + 1
