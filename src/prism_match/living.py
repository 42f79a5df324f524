"""Backends join, change and leave a compiled registry without recompiling it.

The columns keep spare room (``Columns.store``): an add writes one row into
it, growing an array by doubling when full (amortized constant time), and
the vocabularies grow with new names. A removed backend leaves a hole: its
``alive`` bit is cleared, so no rule, score or answer sees it again, and the
next add reuses the position (memory is reclaimed without a pause: nothing
is moved on the hot path; ``Layout.compact`` renumbers everything at a time
of the caller's choosing).

Ties order by ``backend_id`` bytes on every path. The kernel compares order
labels (``id_label``): ids in byte order get labels ``LABEL_GAP`` apart at
load, and an added id takes the midpoint of its neighbours' labels (found in
a sorted list of the live ids); when two neighbours touch, a small window
around them is spread out again. A replaced backend keeps its position.

Everything here runs under the GIL without calling back into user code, so
single matches see a backend wholly before or wholly after a change; batches
read a LiveSnapshot that holds the arrays it started with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sortedcontainers import SortedList

from ._types import MASK_DTYPE
from .compiled import INPUT_FLOATS, LABEL_GAP, RESERVED_COLUMNS, Columns, Row, check_mask_limits

if TYPE_CHECKING:
    from ._core import CoreRegistry
    from .schema import Registration

__all__ = ["Layout"]

_OBSERVED = ("write_rps", "read_rps", "storage_used", "namespace_count", "active_connections")
_ROWWISE = ("region_rows", "compliance_rows")
_ENTRIES = ("lat_token", "lat_vtoken", "lat_p99_ms")
_LABEL_MIN, _LABEL_MAX = -(1 << 62), 1 << 62


def _words(positions: int) -> int:
    return max(1, (positions + 63) // 64)


class Layout:
    """The positions of a live registry: adds, removes, replaces."""

    def __init__(self, columns: Columns, core: CoreRegistry):
        self.columns = columns
        self.core = core
        # Ids in byte order with their labels, made on the first add. A
        # removed id stays in the list (its label still marks its place in
        # the order) until the list is rebuilt, so a remove costs no search;
        # the same id added again takes its label back.
        self._order: SortedList | None = None
        self._labels: dict[str, int] = {}
        self._gone: set[str] = set()

    # --- ids in order --------------------------------------------------------------------

    def _ids_in_order(self) -> SortedList:
        if self._order is None or len(self._gone) > 64 + len(self._order) // 2:
            c = self.columns
            live = [i for i, b in enumerate(c.backend_ids) if b is not None]
            labels = c.id_label
            live.sort(key=lambda i: labels[i])
            self._order = SortedList(c.backend_ids[i] for i in live)
            self._labels = {c.backend_ids[i]: int(labels[i]) for i in live}
            self._gone = set()
        return self._order

    def _neighbours(self, at: int) -> tuple[int, int]:
        order, labels = self._order, self._labels
        assert order is not None
        lo = labels[order[at - 1]] if at > 0 else _LABEL_MIN
        hi = labels[order[at]] if at < len(order) else _LABEL_MAX
        return lo, hi

    def _label_for(self, backend_id: str) -> int:
        """The order label of an added id: its own again if it was removed
        (still in the list), else one between its neighbours' (spreading a
        window of labels out first when they touch)."""
        order = self._ids_in_order()
        if backend_id in self._gone:
            self._gone.discard(backend_id)
            return self._labels[backend_id]
        at = order.bisect_left(backend_id)
        lo, hi = self._neighbours(at)
        # At either end, step one gap out (ids often arrive in order), else
        # take the middle.
        if at == len(order) and at and hi - lo > 2 * LABEL_GAP:
            label = lo + LABEL_GAP
        elif at == 0 and len(order) and hi - lo > 2 * LABEL_GAP:
            label = hi - LABEL_GAP
        else:
            if hi - lo < 2:
                self._spread(at)
                lo, hi = self._neighbours(at)
            label = lo + (hi - lo) // 2
        order.add(backend_id)
        self._labels[backend_id] = label
        return label

    def _spread(self, at: int) -> None:
        """Give the ids around ``at`` evenly spaced labels, widening the
        window until it has room for them all (amortized: each doubling
        halves how often it happens). Removed ids in the window get new
        labels too, in the list only."""
        order = self._ids_in_order()
        store = self.columns.store["id_label"]
        index = self.core.index
        width = 8
        while True:
            first, last = max(0, at - width), min(len(order), at + width)
            lo, _ = self._neighbours(first)
            _, hi = self._neighbours(last)
            count = last - first
            if hi - lo > 4 * (count + 2) or (first == 0 and last == len(order)):
                break
            width *= 2
        step = (hi - lo) // (count + 2)
        for j, backend_id in enumerate(order[first:last]):
            # One gap is left free where the new id goes (between at-1 and at).
            label = lo + step * (j + 1 + (first + j >= at))
            self._labels[backend_id] = label
            if backend_id not in self._gone:
                store[index[backend_id]] = label
                self.core.label_written(index[backend_id])

    # --- room ----------------------------------------------------------------------------

    def _room(self, positions: int, entries: int) -> bool:
        """Make the store hold ``positions`` rows, ``entries`` latency
        entries and every vocabulary's words; True when an array was
        replaced (the core must take its pointers again)."""
        c = self.columns
        store = c.store
        grown = False
        capacity = len(store["id_label"])
        if positions > capacity:
            new = max(positions, 2 * capacity, 64)
            grown_by_id: dict[int, np.ndarray] = {}  # columns sharing an array keep sharing it
            for name, array in list(store.items()):
                if name in _ENTRIES or name in ("feature_bits", "alive"):
                    continue
                bigger = grown_by_id.get(id(array))
                if bigger is None:
                    bigger = grown_by_id[id(array)] = np.zeros((new,) + array.shape[1:], dtype=array.dtype)
                    bigger[:capacity] = array
                store[name] = bigger
            alive = np.zeros(_words(new), dtype=MASK_DTYPE)
            alive[:len(store["alive"])] = store["alive"]
            store["alive"] = alive
            grown = True
        tokens = max(len(c.features), 1)
        fb = store["feature_bits"]
        need_words = _words(max(positions, len(store["id_label"])))
        if tokens > fb.shape[0] or need_words > fb.shape[1]:
            rows = max(tokens, 2 * fb.shape[0]) if tokens > fb.shape[0] else fb.shape[0]
            bigger = np.zeros((rows, max(need_words, fb.shape[1])), dtype=MASK_DTYPE)
            bigger[:fb.shape[0], :fb.shape[1]] = fb
            store["feature_bits"] = bigger
            grown = True
        for name, vocab in (("region_rows", c.regions), ("compliance_rows", c.compliance)):
            rows = store[name]
            if vocab.words > rows.shape[1]:
                wider = np.zeros((rows.shape[0], max(vocab.words, 2 * rows.shape[1])), dtype=MASK_DTYPE)
                wider[:, :rows.shape[1]] = rows
                store[name] = wider
                grown = True
        pool = len(store["lat_p99_ms"])
        if entries > pool:
            new = max(entries, 2 * pool, 64)
            for name in _ENTRIES:
                bigger = np.zeros(new, dtype=store[name].dtype)
                bigger[:pool] = store[name]
                store[name] = bigger
            grown = True
        return grown

    # --- changes -------------------------------------------------------------------------

    def _row(self, reg: Registration, positions: int) -> tuple[Row, bool]:
        """``reg`` as a row, its new names added to the vocabularies (within
        the documented limits, checked before any position changes); True
        when a vocabulary grew."""
        c = self.columns
        before = (len(c.features), len(c.regions), len(c.compliance))
        row = Row(reg, c.features, c.regions, c.compliance)
        check_mask_limits(positions, c.features, c.regions, c.compliance)
        return row, before != (len(c.features), len(c.regions), len(c.compliance))

    def _write(self, i: int, reg: Registration, row: Row, grew_vocab: bool, keep_live: bool,
               appended: bool) -> None:
        """Row ``i`` := ``reg``. With ``keep_live``, the observed usage,
        status and uptime stay as they are unless ``reg`` states them.
        ``appended``: ``i`` is a new last position (its latency entries then
        stay in position order)."""
        c = self.columns
        store = c.store
        start = c.entries
        stop = start + len(row.latency)
        if self._room(max(c.size, i + 1), stop) or grew_vocab:
            self.core.refresh(grew_vocab)
        store = c.store
        keep_usage = keep_live and reg.current is None
        keep_health = keep_live and reg.health is None
        for name, value in zip(INPUT_FLOATS, row.floats):
            if keep_usage and name in _OBSERVED:
                continue
            if keep_health and name == "uptime_percent_24h":
                continue
            store[name][i] = value
        cost = store["cost_per_1k_writes"][i]
        store["cost_score"][i] = 0.0 if cost != cost else 1.0 / (cost + 1.0)
        uptime = store["uptime_percent_24h"][i]
        store["avail_score"][i] = 0.0 if uptime != uptime else uptime / 100.0
        if not keep_live:
            for name in RESERVED_COLUMNS:
                store[name][i] = 0.0
        store["backend_type"][i] = row.backend_type
        if not keep_health:
            store["health"][i] = row.health
        store["consistency"][i] = row.consistency
        store["open_incidents"][i] = row.open_incidents
        word, bit = i >> 6, MASK_DTYPE(1) << MASK_DTYPE(i & 63)
        fb = store["feature_bits"]
        fb[:, word] &= ~bit
        if row.tokens:
            fb[row.tokens, word] |= bit
        for name, bits in (("region_rows", row.regions), ("compliance_rows", row.compliance)):
            out = store[name][i]
            out[:] = 0
            for b in bits:
                out[b >> 6] |= MASK_DTYPE(1) << MASK_DTYPE(b & 63)
        if row.latency:
            entries = np.array(row.latency, dtype=np.float64)
            store["lat_token"][start:stop] = entries[:, 0]
            store["lat_vtoken"][start:stop] = entries[:, 1]
            store["lat_p99_ms"][start:stop] = entries[:, 2]
            c.entries = stop
        if not appended:
            c.dense = False  # a hole reused, or entries left behind by a replace
        store["lat_start"][i] = start
        store["lat_stop"][i] = stop
        self.core.recompute_usage(i)

    def add(self, registrations: list[Registration]) -> list[int]:
        """Write each registration into a free position (a hole first, else
        the next one); returns the positions. The ids are new (checked above)."""
        c = self.columns
        self._ids_in_order()  # made (or rebuilt) before any position changes
        positions = []
        for reg in registrations:
            row, grew = self._row(reg, c.size + 1)
            appended = not c.holes
            if appended:
                i = c.size
                if self._room(i + 1, c.entries):
                    self.core.refresh(False)
                c.size = i + 1
                self.core.resize(c.size)
                c.backend_ids.append(reg.backend_id)
            else:
                i = c.holes.pop()
                c.backend_ids[i] = reg.backend_id
            self._write(i, reg, row, grew, keep_live=False, appended=appended)
            c.store["id_label"][i] = self._label_for(reg.backend_id)
            self.core.index[reg.backend_id] = i
            self.core.set_alive(i, True)
            positions.append(i)
        self.core.positions_moved()
        c.ids_changed()
        return positions

    def remove(self, backend_id: str) -> int:
        """Clear the backend's alive bit and free its position; returns it."""
        c = self.columns
        i = self.core.index.pop(backend_id)
        self.core.set_alive(i, False)
        c.backend_ids[i] = None
        c.holes.append(i)
        c.dense = False
        if self._order is not None:
            self._gone.add(backend_id)
        self.core.positions_moved()
        c.ids_changed()
        return i

    def replace(self, reg: Registration) -> int:
        """Re-register a backend in its position, keeping its live usage,
        status and reservations unless the registration states them."""
        i = self.core.index[reg.backend_id]
        row, grew = self._row(reg, self.columns.size)
        self._write(i, reg, row, grew, keep_live=True, appended=False)
        return i
