"""Backends join, change and leave a compiled registry without recompiling it.

The columns keep spare room (``Columns.store``): an add writes one row into
it (``_core.write_row``: every column of the position in one call), growing
an array by doubling when full (amortized constant time), and the
vocabularies grow with new names. A list of registrations is added as one
change: its rows are made and the limits and room checked once, before any
position changes. A removed backend leaves a hole: its
``alive`` bit is cleared, so no rule, score or answer sees it again, and the
next add reuses the position (memory is reclaimed without a pause: nothing
is moved on the hot path; ``Layout.compact`` renumbers everything at a time
of the caller's choosing).

Ties order by ``backend_id`` bytes on every path. The kernel compares order
labels (``id_label``): ids in byte order get labels ``LABEL_GAP`` apart at
load, and an added id takes the midpoint of its neighbours' labels (found in
``_core.IdOrder``, the ids in byte order as sorted blocks), or, beside an
id added lately (ids numbered on arrive in order), a sixteenth of the room
away from it, leaving the rest for the next ones; when two neighbours
touch, a small window around them is spread out again. A
replaced backend keeps its position.

Everything here runs under the GIL without calling back into user code, so
single matches see a backend wholly before or wholly after a change; batches
read a LiveSnapshot that holds the arrays it started with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ._types import MASK_DTYPE
from ._core import IdOrder, LayoutCore, Row, TokenMemo, write_row
from .compiled import ENTRY_COLUMNS, LABEL_GAP, Columns, check_mask_limits, max_positions

if TYPE_CHECKING:
    from .schema import Registration

__all__ = ["Layout"]

_ENTRIES = ENTRY_COLUMNS
_LABEL_MIN, _LABEL_MAX = -(1 << 62), 1 << 62


def _words(positions: int) -> int:
    return max(1, (positions + 63) // 64)


class Layout(LayoutCore):
    """The positions of a live registry: adds, removes, replaces. ``add``
    and ``remove`` are ``_core.LayoutCore``'s (compiled, documented there);
    the paths they call back when something does not fit are here.

    ``_order``: the ids in byte order with their labels, made on the first
    add. A removed id stays in it (its label still marks its place in the
    order) until it is made again, so a remove costs no search; the same id
    added again takes its label back. ``_positions_allowed``: positions the
    bit matrices allow under the vocabularies as they are
    (compiled.max_positions): the limits are checked again only when a
    vocabulary grows or an add goes past it. ``_memo``: the feature bits of
    names seen before (``Row``)."""

    # --- ids in order --------------------------------------------------------------------

    def _ids_in_order(self) -> IdOrder:
        """The ids in byte order with their labels (made on the first add;
        the removed ids it keeps are let go once they make up a third of it)."""
        order = self._order
        if order is not None and order.crowded():
            order.purge(self.core.index)
        elif order is None:
            c = self.columns
            live = np.flatnonzero(c.alive_mask)
            live = live[np.argsort(c.id_label[live], kind="stable")]
            ids = c.backend_ids
            self._order = order = IdOrder([ids[i] for i in live.tolist()], c.id_label[live].tolist(), LABEL_GAP,
                                          _LABEL_MIN, _LABEL_MAX)
        return order

    # --- room ----------------------------------------------------------------------------

    def make_room(self, positions: int, entries: int, grew_vocab: bool) -> bool:
        """Make the store hold ``positions`` rows, ``entries`` latency
        entries and every vocabulary's words; True when an array was
        replaced, which the core has then taken its pointers again for
        (``refresh``, while the old arrays were still held). Nothing to look
        at while the positions and entries fit and no vocabulary grew."""
        c = self.columns
        store = c.store
        capacity = len(store["id_label"])
        pool = len(store["lat_p99_ms"])
        if positions <= capacity and entries <= pool and not grew_vocab:
            return False
        # The core points into these arrays without holding them: they stay
        # alive here until it has taken the new ones (below). This is Python
        # code, so another thread may match or explain in the middle of it,
        # through the core's pointers; the arrays it reads must not be freed.
        retired = list(store.values())
        grown = False
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
        if entries > pool:
            new = max(entries, 2 * pool, 64)
            for name in _ENTRIES:
                bigger = np.zeros(new, dtype=store[name].dtype)
                bigger[:pool] = store[name]
                store[name] = bigger
            grown = True
        if grown:
            self.core.refresh(grew_vocab)
        del retired
        return grown

    # --- changes -------------------------------------------------------------------------

    def check_limits(self, positions: int, before: tuple[int, int, int]) -> None:
        """The documented limits for ``positions`` positions under the
        vocabularies as they are now; a RegistryError forgets the names
        added since they had ``before`` tokens each (a refused add leaves
        them as they were)."""
        c = self.columns
        try:
            check_mask_limits(positions, c.features, c.regions, c.compliance)
        except BaseException:
            self.forget_names(before)
            raise
        self._positions_allowed = max_positions(c.features, c.regions, c.compliance)

    def forget_names(self, before: tuple[int, int, int]) -> None:
        """Cut the vocabularies back to ``before`` tokens each (the names of
        an add that was refused or interrupted)."""
        c = self.columns
        vocabularies = (c.features, c.regions, c.compliance)
        if before != tuple(len(v.tokens) for v in vocabularies):
            for vocab, size in zip(vocabularies, before):
                vocab.truncate(size)
            self._memo = TokenMemo()
            # A slot prepared meanwhile may have read a name now gone: slots
            # are prepared again on their next use.
            self.core.refresh(True)

    def abandon(self, backend_id: str, i: int) -> None:
        """Undo a backend's add cut short: its position (if it had one, else
        -1) becomes a hole, its label stays in the order as a removed id's."""
        c = self.columns
        if backend_id in self.core.index:
            self.remove(backend_id)
            return
        if i >= 0:
            self.core.set_alive(i, False)
            if i == len(c.backend_ids):  # cut short before its id had a place
                c.backend_ids.append(None)
            c.backend_ids[i] = None
            self.forget(i)
            c.holes.append(i)
            c.dense = False
        # Its label was given (``label_for`` inserted it, or took a removed
        # one's back): it is a removed id in the order now. (Cut short inside
        # ``label_for`` itself, a removed id may be counted twice: a purge
        # comes a little early.)
        order = self._order
        if order is not None and backend_id in order:
            order.note_removed()

    def replace(self, reg: Registration, secrets: bool = False) -> bytes | Registration:
        """Re-register a backend in its position, keeping its live usage,
        status and reservations unless the registration states them; its
        record kept as an add's (``secrets``: inline secrets allowed). Its
        latency entries go after the last ones (the old ones are left
        behind until a compaction). Returns what is kept (``keep``)."""
        c = self.columns
        core = self.core
        i = core.index[reg.backend_id]
        features, regions, compliance = c.features, c.regions, c.compliance
        before = (len(features.tokens), len(regions.tokens), len(compliance.tokens))
        try:
            row = Row(reg, features, regions, compliance, self._memo)
        except BaseException:
            self.forget_names(before)
            raise
        grew = before != (len(features.tokens), len(regions.tokens), len(compliance.tokens))
        if grew or c.size > self._positions_allowed:
            self.check_limits(c.size, before)
        if not self.make_room(c.size, c.entries + len(row.latency), grew) and grew:
            core.refresh(grew)  # a name added, no array replaced
        c.dense = False
        c.entries = write_row(core, i, row, True, reg.current is None, reg.health is None, 0, False, c.entries, True)
        return self.keep(i, reg, secrets)
