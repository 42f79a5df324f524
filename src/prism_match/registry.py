"""Registry: the public object that ties the layers together (the top layer).

``load_registry`` → documents validated into Structs (loading.py) → compiled
columns (compiled.py) → an ``Engine`` (engine.py: the columns, a
``CoreRegistry`` holding raw pointers for the kernel, the policy). Slots come
in as mappings, Structs or prepared requirements; every question is answered
by a module below that takes the engine: the kernel for match and query,
diagnosis.py for explain, batch.py / placement.py / patterns.py for many
slots, score_table.py for the whole-registry view.

The registry lives: backends are added, removed and replaced in place
(living.py), placements reserve and release capacity, and every change gets
a version and a line in a bounded change log that a second registry can
replay (``changes`` / ``apply``). Nothing below this module imports it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
import numpy as np
from fastrlock.rlock import FastRLock

from . import batch, diagnosis, patterns, placement, score_table
from ._core import (ChangeLog, Match, PreparedRegistration, RegistryEdits, ReservationBook, prepared_registration,
                    update_fields)
from .catalogue import check_vocabulary, pattern_capabilities
from .compiled import Columns, compile_registry, live_registration, registration_from_columns
from .engine import Engine
from .errors import RegistryError, positive_int
from .living import Layout
from .loading import gc_paused, load_registrations, registration_problems
from .policy import DEFAULT_POLICY, MatchPolicy
from .reasons import build_reasons
from .results import Diagnosis, QueryResult
from .schema import Health, Incident, Registration, decode_hook, encode_hook
from .slot_details import PreparedSlot
from .vocabulary import capability_names
from .snapshot import (RECORD_ENCODER, RecordSource, held_record, pack_bytes, read_snapshot, registration_of,
                       save_snapshot, stored_record)

if TYPE_CHECKING:
    import polars as pl

_log = logging.getLogger("prism_match")

__all__ = ["Registry", "WhatIf", "load_registry", "load_snapshot", "Reservation", "Change", "DEFAULT_LOG_SIZE"]

DEFAULT_LOG_SIZE = 4096
_REGISTRATIONS = list[Registration]


class Reservation(msgspec.Struct, frozen=True, gc=False):
    """One placement held by ``Registry.reserve``: what it took from which
    backend. Give it back with ``Registry.release``."""

    id: int
    slot_name: str
    backend_id: str
    score: float
    write_rps: float
    read_rps: float
    storage: float
    namespaces: float = 1.0
    group: str | None = None         # the slot's group (its group rules count the group's reservations)
    connections: float = 0.0


class Change(msgspec.Struct, frozen=True):
    """One line of the change log: the registry's ``version`` after it, what
    happened (``kind``: add, remove, replace, update, reserve, release,
    assign), to which backend (None for a batch), and what a replica needs to
    replay it (``data``)."""

    version: int
    kind: str
    backend_id: str | None
    data: Any


DECODED_KEPT = 256  # registrations kept decoded (Registry._registration)


class Registry:
    """The compiled registry. Build it with :func:`load_registry`,
    :func:`load_snapshot` or :meth:`from_polars`."""

    def __init__(self, registrations: list[Registration] | None, *, policy: MatchPolicy = DEFAULT_POLICY,
                 columns: Columns | None = None, records: RecordSource | None = None,
                 log_size: int = DEFAULT_LOG_SIZE, version: int = 0):
        if columns is None:
            if registrations is None:
                raise RegistryError("Expected registrations or compiled columns", "Registry")
            columns = compile_registry(registrations)
        log_size = positive_int(log_size, "log_size", "Registry") if log_size != 0 else 0
        self._records = records
        self._record_pos: dict[str, int] | None = None
        # The registrations decoded last (``_registration``), while no add,
        # remove, replace or compact came after them (``_decoded_at``).
        self._decoded: dict[str, tuple[int, Registration]] = {}
        self._decoded_at = -1
        self._log: ChangeLog | None = ChangeLog(log_size) if log_size else None
        self._log_start = version  # changes after this version are in the log (while it has not overflowed)
        self._lock = FastRLock()  # reentrant; changes (add, remove, replace, reserve, release) one at a time
        self._book = ReservationBook(self._lock, Reservation, self._reserve_general)
        self._health_notes: dict[str, _HealthNote] = {}
        # add and remove, compiled; with the counters they keep (records_current:
        # the records still match the registrations one to one; structure:
        # grows with add, remove, replace, compact, so what-if views taken
        # before are stale; batches: match_many runs holding the lock, whose
        # progress callback may not add, remove, ...).
        self._edits = RegistryEdits(self, self._lock, self._book, self._health_notes)
        self._edits.records_current = records is not None
        # Registrations are kept by position (the layout's), as records
        # (``Layout``), when loaded from documents or added; a registry built
        # from a table or a snapshot makes each one when asked.
        self._attach(columns, version, [held_record(r) for r in registrations] if registrations is not None else None)
        self.policy = policy

    def _attach(self, columns: Columns, version: int, records: list[bytes | Registration | None] | None) -> None:
        """Build the engine over ``columns`` (at load, and after compact),
        with the record of each position when known (``Layout``)."""
        policy = getattr(self, "engine", None)
        self.engine = Engine(columns, self._registration, partial(build_reasons, self._registration, columns),
                             policy.policy if policy is not None else DEFAULT_POLICY, log=self._log,
                             version=version)
        self.columns = columns
        self._core = self.engine.core
        self._layout = Layout(columns, self._core, records, RECORD_ENCODER, held_record)
        self._book.attach(self._core)
        self._edits.attach(self._layout)
        # The compiled methods themselves, with no Python frame in between
        # (SPEC §5: constant time); the class's methods document them.
        self.update = self._core.update  # type: ignore[method-assign]
        if type(self).reserve is Registry.reserve:  # not a read-only view
            self.reserve = self._book.reserve  # type: ignore[method-assign]
            self.release = self._book.release  # type: ignore[method-assign]
        if type(self).add is Registry.add:
            self.add = self._edits.add  # type: ignore[method-assign]
        if type(self).remove is Registry.remove:
            self.remove = self._edits.remove  # type: ignore[method-assign]

    # --- the compiled fast paths, as methods with their documentation -----------------------

    def update(self, backend_id: str, *, write_rps: float | None = None, read_rps: float | None = None,
               storage_used: float | None = None, namespace_count: float | None = None,
               status: str | None = None, uptime: float | None = None,
               active_connections: float | None = None) -> None:
        """Change a backend's observed live state in place, in constant time;
        the next match sees it (SPEC §5): usage (reservations stay apart and
        are added to it), active connections, health status, uptime (a 24 h
        percentage). Every
        argument is checked before anything is written.

        Documentation only: every Registry's ``update`` attribute is the
        compiled ``CoreRegistry.update`` itself (set when the engine is
        built), so a call goes straight to C with no Python frame in between.
        """
        self._core.update(backend_id, write_rps=write_rps, read_rps=read_rps, storage_used=storage_used,
                          namespace_count=namespace_count, status=status, uptime=uptime,
                          active_connections=active_connections)

    @classmethod
    def from_polars(cls, frame: pl.DataFrame, *, policy: MatchPolicy = DEFAULT_POLICY) -> Registry:
        """Compile a table of backends (the shape ``to_polars`` returns, or a
        subset of its columns) without a Python object per backend."""
        from .frames import columns_from_polars

        return cls(None, columns=columns_from_polars(frame), policy=policy)

    # --- registrations ---------------------------------------------------------------------

    def _registration(self, backend_id: str) -> Registration:
        """The stored registration of a live backend (static parts):
        decoded from its record (kept by position, or the snapshot's), or
        read from the columns (a registry built from a table). The last
        ``DECODED_KEPT`` made are kept while the registry's backends stay
        the same (a match's reasons, ``registry[id]`` again), and let go of
        by the first call after an add, remove, replace or compact, never
        by the change itself.

        With no lock: a reader racing an add that reuses the position of a
        backend removed meanwhile sees an id that is not the one asked for,
        and the backend as unknown. Each kept registration carries the
        stamp read before its record was, so one read while the backends
        changed is never given out after the change, whichever thread
        cleared the others."""
        stamp = self._edits.structure
        decoded = self._decoded
        if stamp != self._decoded_at:
            decoded.clear()
            self._decoded_at = stamp
        entry = decoded.get(backend_id)
        if entry is not None and entry[0] == stamp:
            return entry[1]
        i = self._core.index.get(backend_id)
        if i is None:
            raise KeyError(f"Unknown backend `{str(backend_id)[:60]}`")
        held = self._layout.record_at(i)
        if held is not None:
            found = registration_of(held)
        elif self._records is not None:
            j = self._record_position(backend_id)
            found = self._records(j) if j is not None else registration_from_columns(self.columns, i)
        else:
            found = registration_from_columns(self.columns, i)
        if found.backend_id != backend_id or self._core.index.get(backend_id) != i:
            raise KeyError(f"Unknown backend `{str(backend_id)[:60]}`")  # removed while it was read
        if len(decoded) >= DECODED_KEPT:
            decoded.pop(next(iter(decoded)), None)  # the oldest
        decoded[backend_id] = (stamp, found)
        return found

    def _record_position(self, backend_id: str) -> int | None:
        """Where the snapshot's record of ``backend_id`` is, if it has one."""
        assert self._records is not None
        if self._record_pos is None:
            self._record_pos = {b: j for j, b in enumerate(self._records.ids)}
        return self._record_pos.get(backend_id)

    def _live(self, backend_id: str) -> Registration:
        """The registration with the live values of the columns: usage
        (observed + reserved), health status and uptime."""
        live = live_registration(self._registration(backend_id), self.columns, self._core.index[backend_id])
        note = self._health_notes.get(backend_id)
        if note is None:
            return live
        # The health checker's last check and incidents (after the document's own).
        changes: dict[str, Any] = {}
        if note.checked_at is not None:
            changes["last_check_at"] = note.checked_at
        health = live.health
        if note.incidents:
            changes["recent_incidents"] = [*(health.recent_incidents if health is not None else ()), *note.incidents]
        health = msgspec.structs.replace(health, **changes) if health is not None else Health(**changes)
        return msgspec.structs.replace(live, health=health)

    # --- container protocol -------------------------------------------------------------

    def __len__(self) -> int:
        return self.columns.live

    def __contains__(self, backend_id: object) -> bool:
        return backend_id in self._core.index

    def __getitem__(self, backend_id: str) -> Registration:
        """The registration as it is now: usage (reservations included),
        health status and uptime from the live columns."""
        return self._live(backend_id)

    def __iter__(self) -> Iterator[Registration]:
        return (self[b] for b in self.backend_ids)

    def __repr__(self) -> str:
        return f"<Registry: {len(self)} backends>"

    @property
    def backend_ids(self) -> list[str]:
        """Live ids, in position order (load order; an add fills a removed backend's position first)."""
        return [b for b in self.columns.backend_ids if b is not None]

    @property
    def policy(self) -> MatchPolicy:
        return self.engine.policy

    @policy.setter
    def policy(self, policy: MatchPolicy) -> None:
        self.engine.set_policy(policy)

    # --- preparing and matching ------------------------------------------------------------

    def prepare(self, slot: Any) -> PreparedSlot:
        """Compile a slot requirement or query once for this registry."""
        return self._core.resolve(slot, False)

    def match(self, slot: Any, k: int = 1) -> list[Match]:
        """Up to ``k`` eligible backends, best first (SPEC §3–§4)."""
        if type(k) is not int or k < 1:  # one check on the hot path; the rest only when it fails
            k = positive_int(k, "k", "match")
        n = self.columns.size
        return self._core.match(slot, self.engine.core_policy, k if k <= n else n)

    def explain(self, slot: Any) -> Diagnosis:
        """How many backends each rule rejected, with what was required. A
        slot that caps its group (``max_per_backend``, ``max_per_region``,
        ``max_skew``) is also held to them against the live reservations of
        the same group, as ``reserve`` holds it, so the group rules are named
        among the rejections."""
        prepared = self.engine.prepare(slot)
        if not prepared.requirement.grouped:
            return diagnosis.explain(self.engine, prepared)  # (its pass keeps the GIL: changes land before or after)
        with self._lock:  # the snapshot shares positions and rows with the live registry; its pass releases the GIL
            group = self._group_counts(prepared.requirement.group_name)
            snap = _snapshot(self.engine)
            bits, counts, eligible = snap.failure_bits(prepared, self.engine.core_policy, None, group)
        return diagnosis.diagnose(prepared, self.columns, bits, counts, int(eligible))

    def query(self, query: Any) -> QueryResult:
        """Every eligible backend, best first, and ``total_count``. A mapping
        is read as the seed's query (``query:`` wrapper optional) unless it
        names a ``slot_name``."""
        if isinstance(query, Mapping) and "slot_name" not in query and "query" not in query \
                and "slot_requirement" not in query:
            query = {"query": query}
        prepared = self.engine.prepare(query)
        matches = self._core.topk(prepared, self.engine.core_policy, max(self.columns.n, 1))
        return QueryResult(backends=matches, total_count=len(matches))

    def score_table(self, slot: Any) -> pl.DataFrame:
        """The whole-registry view of one slot: every live backend with each
        rule's verdict, the failed codes and the score components (see
        score_table.score_table)."""
        return score_table.score_table(self.columns, self.engine.prepare(slot), self.policy)

    # --- batches, placement, patterns, cost -------------------------------------------------

    def match_many(self, slots: Any, k: int = 1, *, threads: int | None = None, progress: Any = None,
                   strict: bool = True, diagnose: bool = False, reasons: bool = False) -> pl.DataFrame:
        """Top-``k`` for every slot (a list of mappings or prepared slots, or a
        polars DataFrame of requirements), in parallel; ``strict=False``
        ignores unknown columns, ``diagnose``/``reasons`` add those columns.
        See batch.match_many."""
        with self._lock:  # one view: adds, removes and replaces wait for the batch (as for assign)
            self._edits.batches += 1
            try:
                return batch.match_many(self.engine, slots, k, threads=threads, progress=progress, strict=strict,
                                        diagnose=diagnose, reasons=reasons)
            finally:
                self._edits.batches -= 1

    @staticmethod
    def _during_batch(where: str) -> RegistryError:
        # A change from the thread running a batch (its progress callback,
        # the lock being reentrant) would move the positions and scan slots
        # the batch reads from under it.
        return RegistryError("The registry cannot change while match_many runs (here from its progress "
                             "callback); change it after the batch", where)

    def assign(self, slots: Any, *, commit: bool = False, allow_unplaced: bool = False, method: str = "greedy",
               time_limit: float | None = None, current: Mapping[str, str] | None = None) -> placement.Assignment:
        """Capacity-aware placement. ``method="greedy"`` (the default): slots
        in order, each on its best backend given what earlier ones took (see
        placement.assign; ``current``: the bindings in place, kept under the
        policy's stickiness, and the plan's ``moves`` say what would move).
        ``method="optimal"``: the plan placing the most slots, then the
        highest total score, solved with HiGHS within ``time_limit`` seconds
        (default optimal.DEFAULT_TIME_LIMIT), greedy's plan as the warm
        start; the result's ``.report`` compares the two (see
        optimal.assign_optimal)."""
        if method == "greedy":
            if time_limit is not None:
                raise RegistryError("`time_limit` applies to method='optimal' only", "assign")
            with self._lock:
                return placement.assign(self.engine, slots, commit=commit, allow_unplaced=allow_unplaced,
                                        current=current)
        if method != "optimal":
            raise RegistryError(f"Expected `method` `greedy` or `optimal`, got `{str(method)[:40]}`", "assign")
        if current is not None:
            raise RegistryError("`current` (stickiness) applies to method='greedy' only", "assign")
        from . import optimal

        limit = optimal.DEFAULT_TIME_LIMIT if time_limit is None else time_limit
        with self._lock:
            return optimal.assign_optimal(self.engine, slots, commit=commit, allow_unplaced=allow_unplaced,
                                          time_limit=limit)

    def what_if(self, changes: Mapping[str, Mapping[str, Any]] | None = None, *,
                remove: Iterable[str] = ()) -> WhatIf:
        """A read-only view of this registry as it would be after ``changes``
        ({backend_id: {field: value}}: ``status``, ``uptime``, usage, any
        ``max_*``, ``active_connections``, ``cost_per_1k_writes``, or
        ``capacity: "*1.5"`` for every declared maximum; ``"*F"`` scales
        the current value) and without the backends in ``remove``. The live
        registry is not touched: the view copies the live-state columns and
        what the changes write, and shares the rest. ``match``, ``explain``,
        ``query``, ``assign`` (a dry run), ``match_many``, ``bind_pattern``
        read through it; ``view.diff(slots)`` compares its plan with
        today's. Usable as ``with registry.what_if(...) as view:``."""
        from . import what_if as overlay

        with self._lock:
            checked, removed = overlay.check_changes(changes, remove, self.columns, self._core.index)
            columns = overlay.overlay_columns(self.columns, checked)
            view = WhatIf(self, columns, checked, removed)
        return view

    def backends_for_pattern(self, pattern: str) -> QueryResult:
        """The backends that can serve a pattern of the page's catalogue
        (``KeyValue``, ``PubSub``, ``Queue``, …): every eligible backend
        declaring each capability it needs, best first (catalogue.py)."""
        return self.query({"required_capabilities": pattern_capabilities(pattern)})

    def bind_pattern(self, pattern: Any) -> patterns.PatternBinding:
        """Bind every slot of a pattern; see patterns.bind_pattern."""
        with self._lock:  # a grouped slot's pass reads a snapshot sharing the live positions
            return patterns.bind_pattern(self.engine, pattern)

    def check_binding(self, pattern: Any, binding: Mapping[str, str]) -> dict[str, list]:
        """What each explicitly bound backend lacks; see patterns.check_binding."""
        return patterns.check_binding(self.engine, pattern, binding)

    def estimate_cost(self, workload: Mapping[str, Any]) -> pl.DataFrame:
        """Monthly cost of ``workload`` on every backend (SPEC §7)."""
        from .cost import estimate_cost

        return estimate_cost(self, workload)

    # --- live health (written by health.HealthTracker) --------------------------------------

    def record_health(self, backend_id: str, *, checked_at: _dt.datetime | None = None,
                      incidents: tuple[Incident, ...] | None = None) -> None:
        """Note a backend's latest health check time and its tracker's
        incidents; ``registry[backend_id].health`` shows them (status and
        uptime come from ``update``). None leaves that part as it was."""
        self._core.position(backend_id, "record_health")
        old = self._health_notes.get(backend_id)
        if checked_at is None and old is not None:
            checked_at = old.checked_at
        if incidents is None:
            incidents = old.incidents if old is not None else ()
        self._health_notes[backend_id] = _HealthNote(checked_at, tuple(incidents))
        self._count_incidents(backend_id)
        self._core.record("health", backend_id, (checked_at, tuple(incidents)))

    def _count_incidents(self, backend_id: str) -> None:
        """The open incidents column of a backend: its registration's and its tracker's."""
        from .compiled import open_incidents

        note = self._health_notes.get(backend_id)
        count = open_incidents(self._registration(backend_id), note.incidents if note is not None else ())
        self.columns.store["open_incidents"][self._core.index[backend_id]] = count

    # --- a living registry ---------------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows by one with every change: add, remove, replace, update,
        reserve, release, a committed assign."""
        return self._core.version

    def _validated(self, registration: Any, strict: bool = True,
                   allow_inline_secrets: bool = False) -> list[Registration]:
        """A registration, a mapping or a list of them → Registrations,
        validated as the loader validates (a Registration is checked again:
        its constructor checks nothing)."""
        if type(registration) is PreparedRegistration:  # in a replace, or a list with other items
            registration = registration.registration
        if type(registration) is dict:
            items: list[Any] = [registration]
        elif isinstance(registration, Registration):
            items = [msgspec.to_builtins(registration, enc_hook=encode_hook)]
        elif isinstance(registration, Mapping):
            items = [registration]
        elif isinstance(registration, Iterable) and not isinstance(registration, (str, bytes)):
            items = [r.registration if type(r) is PreparedRegistration else r for r in registration]
            items = [msgspec.to_builtins(r, enc_hook=encode_hook) if isinstance(r, Registration) else r
                     for r in items]
        else:
            raise RegistryError(f"Expected a registration mapping or a list of them, got "
                                f"`{type(registration).__name__}`", "add")
        if strict:
            # The valid case: one typed conversion (of the whole list: msgspec
            # makes the list type's decoder on each call, which one item does
            # not repay) and the loader's cross-field rules per item; any
            # problem goes through the loader for its located report of every
            # problem.
            try:
                regs = [msgspec.convert(items[0], Registration, dec_hook=decode_hook)] if len(items) == 1 else \
                    msgspec.convert(items, _REGISTRATIONS, dec_hook=decode_hook)
            except (msgspec.ValidationError, RecursionError, TypeError):
                regs = None
            if regs is not None:
                if len(regs) == 1:
                    valid = not registration_problems(regs[0], allow_inline_secrets)
                else:
                    valid = not any([registration_problems(r, allow_inline_secrets) for r in regs]) \
                        and len({r.backend_id for r in regs}) == len(regs)
                if valid:
                    return regs
        return load_registrations(items, strict=strict, allow_inline_secrets=allow_inline_secrets)

    def add(self, registration: Any, *, strict: bool = True, allow_inline_secrets: bool = False) -> None:
        """Register new backends (a mapping, a Registration, or a list of
        them), validated exactly as the loader does, matchable at once. A
        list is added all or nothing; an id already registered is an error.
        A ``PreparedRegistration`` (``prepare_registration``), or a list of
        nothing else, goes in as it is: validated and encoded already.

        Documentation only: every Registry's ``add`` attribute is the
        compiled ``RegistryEdits.add`` (set when the engine is built), which
        validates (``_validated``), then under the lock writes the backends
        into the layout (``Layout.add``: all or nothing, logged there) and
        checks the capability names new to the registry, once, when they
        arrive."""
        self._edits.add(registration, strict=strict, allow_inline_secrets=allow_inline_secrets)

    def remove(self, backend_id: str) -> None:
        """Unregister a backend, in constant time: it appears in no answer
        from now on; its reservations are dropped (releasing them later is
        harmless and returns False). An unknown id is a RegistryError.

        Documentation only: every Registry's ``remove`` attribute is the
        compiled ``RegistryEdits.remove`` (set when the engine is built),
        which under the lock frees the position (``Layout.remove``, logged
        there), then forgets the backend's health notes and reservations."""
        self._edits.remove(backend_id)

    def _already_registered(self, regs: list[Registration | PreparedRegistration]) -> RegistryError:
        """The error of an add whose ids are registered already."""
        index = self._core.index
        regs = [r.registration if isinstance(r, PreparedRegistration) else r for r in regs]
        return RegistryError([(f"<input> $[{j}].backend_id", f"Backend `{r.backend_id[:60]}` is already registered")
                              for j, r in enumerate(regs) if r.backend_id in index])

    def prepare_registration(self, registration: Any, *, strict: bool = True,
                             allow_inline_secrets: bool = False) -> Any:
        """Validate a registration as ``add`` does and encode its record, once:
        a ``PreparedRegistration`` (a list of them for a list), which ``add``
        then takes without checking or encoding it again (``prepare`` is
        the same for a slot). Neither step takes the registry's lock, so a
        service can prepare what arrives off its placement loop, or in
        another thread. Duplicate ids within a list are refused here; ids
        already registered, and capability names new to the registry, are
        checked by the add."""
        regs = self._validated(registration, strict=strict, allow_inline_secrets=allow_inline_secrets)
        encode = held_record if allow_inline_secrets else RECORD_ENCODER.encode
        prepared = []
        for reg in regs:
            record = encode(reg)
            prepared.append(prepared_registration(reg, record if type(record) is bytes else None))
        return prepared if isinstance(registration, list) else prepared[0]

    def _check_new_names(self, new_tokens: list[str]) -> None:
        """Capability names an add brought to the registry: checked once."""
        check_vocabulary(self.columns, capability_names(new_tokens))

    def replace(self, registration: Any, *, strict: bool = True, allow_inline_secrets: bool = False) -> None:
        """Re-register a backend (new capabilities, capacity, ...), validated
        as the loader does. Its live usage, status, uptime and reservations
        stay unless the new registration states ``current`` / ``health``."""
        if isinstance(registration, list):
            raise RegistryError("Expected one registration, got a list", "replace")
        [reg] = self._validated(registration, strict=strict, allow_inline_secrets=allow_inline_secrets)
        with self._lock:
            if self._edits.batches:
                raise self._during_batch("replace")
            self._core.position(reg.backend_id, "replace")
            kept = self._layout.replace(reg, allow_inline_secrets)
            if reg.backend_id in self._health_notes:
                self._count_incidents(reg.backend_id)
            self._edits.records_current = False
            self._core.record("replace", reg.backend_id, kept)
            self._edits.structure += 1

    def reserve(self, slot: Any, backend_id: str | None = None) -> Reservation:
        """Take one placement atomically: the best eligible backend under
        what is left (max − current − reserved; the rules and score of one
        step of ``assign``), or ``backend_id`` if it is eligible. Consumes the
        slot's min_write_rps, min_read_rps, min_storage, min_connections and
        one namespace.
        A slot that caps its group (``max_per_backend``, ``max_per_region``,
        ``max_skew``) is held to them against the live reservations of the
        same group. Raises PlacementError with the diagnosis when nothing
        fits (or what the named backend lacks).

        (The registry's ``reserve`` is its ReservationBook's, which runs
        the common case in C and this method for the rest.)"""
        return self._reserve_general(slot, backend_id)

    def _reserve_general(self, slot: Any, backend_id: str | None) -> Reservation:
        prepared = self.engine.prepare(slot)
        at = -1 if backend_id is None else self._core.position(backend_id, "reserve")
        requirement = prepared.requirement
        with self._lock:
            self._hold_reservations()
            group = self._group_counts(requirement.group_name) if requirement.grouped else None
            match, failed = self._core.reserve(prepared, self.engine.core_policy, at, group)
            if match is None:
                raise self._unplaceable(prepared, backend_id, failed, group)
            w, r, storage = prepared.amounts
            reservation = Reservation(self._book.next_id, prepared.slot_name, match.backend_id,
                                      match.score, w, r, storage, group=requirement.group_name,
                                      connections=float(requirement.min_connections or 0.0))
            self._book.hold(reservation)
            self._core.record("reserve", match.backend_id, reservation)
        return reservation

    def _group_counts(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        """The live reservations of ``group``: per backend position and per
        region bit (each reservation counts in every region its backend serves)."""
        from .score_table import region_members

        c = self.columns
        positions = np.array([self._core.index[r.backend_id] for r in self._book.held.values()
                              if r.group == group], dtype=np.int64)
        per_backend = np.bincount(positions, minlength=max(c.n, 1)).astype(float)
        per_region = np.zeros(max(c.store["region_rows"].shape[1] * 64, 1))
        if len(positions):
            members = region_members(c)
            per_region[:members.shape[1]] = members[positions].sum(axis=0)
        return per_backend, per_region

    def _unplaceable(self, prepared: PreparedSlot, backend_id: str | None, failed: int,
                     group: tuple[np.ndarray, np.ndarray] | None = None) -> RegistryError:
        from .placement import PlacementError

        if backend_id is None:
            # Against what is left: the assign diagnosis with nothing placed yet.
            n = max(self.columns.n, 1)  # the kernel takes each array's first element
            snap = _snapshot(self.engine)
            bits, counts, eligible = snap.failure_bits(prepared, self.engine.core_policy,
                                                       tuple(np.zeros(n) for _ in range(4)), group)
            diag = diagnosis.diagnose(prepared, self.columns, bits, counts, int(eligible))
            return PlacementError.single(prepared.slot_name, f"Cannot be placed: {diag}", diag)
        i = self._core.index[backend_id]
        counts = np.array([(failed >> b) & 1 for b in range(32)], dtype=np.int64)
        diag = diagnosis.diagnose(prepared, self.columns, np.array([failed], dtype=np.uint32), counts, 0,
                                  index=np.array([i]))
        lacks = ", ".join(f"{code}({diag.details[code]})" if diag.details.get(code) else code
                          for code in diag.rejected)
        return PlacementError.single(prepared.slot_name, f"Backend `{backend_id}` is not eligible: {lacks}", diag)

    def release(self, reservation: Reservation | int) -> bool:
        """Give a reservation's amounts back. True when released now; False
        when it was released already or its backend was removed (harmless).
        (The registry's ``release`` is its ReservationBook's.)"""
        return self._book.release(reservation)

    @property
    def reservations(self) -> list[Reservation]:
        """The reservations held now, oldest first."""
        return list(self._book.held.values())

    def changes(self, since: int = 0) -> list[Change]:
        """What changed after version ``since``, oldest first. The log keeps
        the last ``log_size`` changes (set at load); asking for more than it
        kept is a RegistryError (start again from a snapshot)."""
        if isinstance(since, bool) or not isinstance(since, (int, np.integer)) or since < 0:
            raise RegistryError(f"Expected `since` >= 0 (a version), got `{since!r}`"[:80], "changes")
        since = int(since)
        if self._log is None:
            raise RegistryError("This registry keeps no change log (log_size=0)", "changes")
        first = self._log.first_version - 1 if len(self._log) else self.version
        if since < max(first, self._log_start):
            raise RegistryError(f"Changes after version {since} are no longer kept (the log holds those after "
                                f"version {max(first, self._log_start)}); load a newer snapshot", "changes")
        return [Change(version, kind, backend_id, _change_data(kind, data))
                for version, kind, backend_id, data in self._log if version > since]

    def apply(self, changes: Iterable[Change]) -> None:
        """Replay another registry's changes (``changes(since=...)``) on this
        one, which must be at the version before the first of them; after
        it, both give the same answers and have the same version."""
        for change in changes:
            if change.version <= self.version:
                continue
            if change.version != self.version + 1:
                raise RegistryError(f"Expected the change after version {self.version}, got version "
                                    f"{change.version}", "apply")
            kind, data = change.kind, change.data
            if kind == "add":
                self.add(list(data), allow_inline_secrets=True)
            elif kind == "remove":
                self.remove(change.backend_id)
            elif kind == "replace":
                self.replace(data, allow_inline_secrets=True)
            elif kind == "update":
                self.update(change.backend_id, **data)
            elif kind == "reserve":
                self._replay_reserve(data)
            elif kind == "release":
                self.release(data)
            elif kind == "health":
                checked_at, incidents = data
                self.record_health(change.backend_id, checked_at=checked_at, incidents=incidents)
            elif kind == "assign":
                raise RegistryError("A committed assign cannot be replayed from the log; load a snapshot",
                                    "apply")
            else:
                raise RegistryError(f"Unknown change `{str(kind)[:40]}`", "apply")

    def _hold_reservations(self) -> None:
        if self.columns.hold_reservations():
            self._core.refresh(False)

    def _replay_reserve(self, held: Reservation) -> None:
        with self._lock:
            self._hold_reservations()
            i = self._core.position(held.backend_id, "apply")
            self._core.hold(i, held.write_rps, held.read_rps, held.storage, held.namespaces, held.connections)
            self._book.hold(held)
            self._core.record("reserve", held.backend_id, held)

    def compact(self) -> None:
        """Renumber the positions so no hole is left and the columns hold no
        spare room (an O(n) pause, when the caller chooses; adds and removes
        never need it)."""
        with self._lock:
            if self._edits.batches:
                raise self._during_batch("compact")
            # Compacted columns keep the live positions in their order.
            layout = self._layout
            kept = [self._kept_record(b, layout.record_at(i)) for i, b in enumerate(self.columns.backend_ids)
                    if b is not None]
            self._records, self._edits.records_current = None, False
            self._attach(self.columns.compacted(), self.version, kept)
            self._edits.structure += 1

    def _kept_record(self, backend_id: str, held: bytes | Registration | None) -> bytes | Registration | None:
        """A live backend's record, ``held`` by its position, else the
        snapshot's (checked: decoded once), else None (read from the
        columns when asked)."""
        if held is not None or self._records is None:
            return held
        j = self._record_position(backend_id)
        if j is None:
            return None
        self._records(j)  # a damaged record is refused here, as when read
        return self._records.record(j)

    def _stored_record(self, backend_id: str, held: bytes | Registration | None) -> bytes:
        """What a snapshot stores of a live backend's registration."""
        held = self._kept_record(backend_id, held)
        return stored_record(held if held is not None else self._registration(backend_id))

    # --- tables and snapshots --------------------------------------------------------------

    def to_polars(self) -> pl.DataFrame:
        """One row per live backend: the compiled columns, live values and
        reservations included (missing data as null); ``from_polars`` reads
        it back."""
        from .frames import columns_to_polars

        return columns_to_polars(self.columns.compacted())

    def save(self, path: str | os.PathLike) -> None:
        """Store the registry (live usage, reservations and version
        included); reload it with ``load_snapshot(path)``."""
        dense = self.columns.compacted()
        ids = dense.backend_ids
        if self._records is not None and self._edits.records_current:
            records = self._records.records()
        else:
            layout, index = self._layout, self._core.index
            records = pack_bytes([self._stored_record(b, layout.record_at(index[b])) for b in ids])
        encoder = msgspec.msgpack.Encoder(enc_hook=encode_hook)
        extras = {
            "extra.version": np.array([self.version], dtype=np.int64),
            "extra.reservations": np.frombuffer(encoder.encode(list(self._book.held.values())), dtype=np.uint8),
        }
        save_snapshot(dense, records, path, extras)


class WhatIf(Registry):
    """A registry as it would be after some changes (``Registry.what_if``):
    read-only, over an overlay of its base's columns. It sees the base as it
    was when taken (later usage updates are not seen); after an add, remove,
    replace or compact of the base every answer is refused (the shared
    columns may have moved): take a new view."""

    def __init__(self, base: Registry, columns: Columns, changes: dict[str, dict[str, Any]], removed: list[str]):
        from . import what_if as overlay

        self._base = base
        self._stamp = base._edits.structure
        self._changes = changes
        # The new limits are written before the engine is built over the
        # columns (the positions are the base's), so its scan order's rows
        # and bounds are made from them.
        for bid, fields in changes.items():
            overlay.write_static(columns, base._core.index[bid], fields)
        super().__init__(None, columns=columns, policy=base.policy, log_size=0, version=base.version)
        for bid, fields in changes.items():
            live = {("uptime" if f == "uptime" else f): v for f, v in fields.items() if f in overlay.LIVE_FIELDS}
            if live:
                self._core.update(bid, **live)
        for bid in removed:
            self._layout.remove(bid)
        self._book.copy_from(base._book, set(removed))
        self._health_notes.update((b, note) for b, note in base._health_notes.items() if b not in removed)
        self.update = self._read_only  # type: ignore[assignment]

    def _registration(self, backend_id: str) -> Registration:
        from .what_if import changed_registration

        if backend_id not in self._core.index:
            raise KeyError(f"Unknown backend `{str(backend_id)[:60]}`")
        reg = self._base._registration(backend_id)
        fields = self._changes.get(backend_id)
        return changed_registration(reg, fields) if fields else reg

    def _current(self) -> None:
        if self._base._edits.structure != self._stamp:
            raise RegistryError("The registry this what-if was taken from has added, removed or replaced backends "
                                "since; take a new what-if", "what_if")

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise RegistryError("A what-if view is read-only: change the registry itself, or take a new what-if",
                            "what_if")

    add = remove = replace = reserve = release = apply = compact = record_health = save = _read_only

    def __enter__(self) -> WhatIf:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def match(self, slot: Any, k: int = 1) -> list[Match]:
        self._current()
        return super().match(slot, k)

    def explain(self, slot: Any) -> Diagnosis:
        self._current()
        return super().explain(slot)

    def query(self, query: Any) -> QueryResult:
        self._current()
        return super().query(query)

    def score_table(self, slot: Any) -> pl.DataFrame:
        self._current()
        return super().score_table(slot)

    def match_many(self, slots: Any, k: int = 1, **kwargs: Any) -> pl.DataFrame:
        self._current()
        return super().match_many(slots, k, **kwargs)

    def assign(self, slots: Any, *, commit: bool = False, **kwargs: Any) -> placement.Assignment:
        if commit:
            self._read_only()
        self._current()
        return super().assign(slots, **kwargs)

    def bind_pattern(self, pattern: Any) -> patterns.PatternBinding:
        self._current()
        return super().bind_pattern(pattern)

    def __getitem__(self, backend_id: str) -> Registration:
        self._current()
        return super().__getitem__(backend_id)

    def to_polars(self) -> pl.DataFrame:
        self._current()
        return super().to_polars()

    def diff(self, slots: Any, *, method: str = "greedy", time_limit: float | None = None) -> Any:
        """The plan for ``slots`` here against today's plan on the base
        registry (both dry runs, unplaced slots allowed): a what_if.PlanDiff
        of the slots that move, that are no longer placed, that are newly
        placed."""
        from .what_if import plan_diff

        self._current()
        options = {"method": method, **({"time_limit": time_limit} if time_limit is not None else {})}
        today = self._base.assign(slots, allow_unplaced=True, **options)
        return plan_diff(today, self.assign(slots, allow_unplaced=True, **options))


class _HealthNote(NamedTuple):
    """What the health checker knows of a backend beyond its status and uptime."""

    checked_at: _dt.datetime | None
    incidents: tuple[Incident, ...]


def _change_data(kind: str, data: Any) -> Any:
    """A logged change's data as ``Registry.changes`` gives it: an add's
    registrations as a tuple, a replace's registration (the log keeps their
    records), an update's fields."""
    if kind == "update":
        return update_fields(data)
    if kind == "add":
        return tuple(registration_of(r) for r in data) if type(data) is tuple else (registration_of(data),)
    if kind == "replace":
        return registration_of(data)
    return data


def _snapshot(engine: Engine) -> Any:
    from ._core import LiveSnapshot

    return LiveSnapshot(engine.core)


def load_registry(source: Any, *, strict: bool = True, allow_inline_secrets: bool = False,
                  policy: MatchPolicy = DEFAULT_POLICY, log_size: int = DEFAULT_LOG_SIZE) -> Registry:
    """Load, validate and compile a registry (SPEC §1).

    ``source``: a YAML file (one or many documents), a JSON file, a directory
    of such files (sorted by name, recursively), a list of such paths as
    ``pathlib.Path``, a list of mappings, or a mapping ``{"backends": [...]}``. Raises RegistryError listing every
    problem; nothing is half-loaded. ``log_size``: how many changes the
    change log keeps (0: none).
    """
    start = time.perf_counter()
    with gc_paused():  # compiling allocates much and frees nothing: no collections meanwhile
        registry = Registry(load_registrations(source, strict=strict, allow_inline_secrets=allow_inline_secrets),
                            policy=policy, log_size=log_size)
    check_vocabulary(registry.columns)  # a capability close to a core one: a warning with a did-you-mean
    _log.info("loaded %d backends%s in %.2f s", len(registry),
              f" from {source}" if isinstance(source, (str, os.PathLike)) else "", time.perf_counter() - start)
    return registry


def load_snapshot(path: str | os.PathLike | bytes, *, policy: MatchPolicy = DEFAULT_POLICY,
                  log_size: int = DEFAULT_LOG_SIZE) -> Registry:
    """A Registry from a file written by ``Registry.save`` (a path, the
    file's bytes, or a binary file object): the same backends, live usage,
    reservations and version."""
    columns, records, extras = read_snapshot(path)
    version = int(extras["extra.version"][0]) if "extra.version" in extras else 0
    registry = Registry(None, columns=columns, records=records, policy=policy, log_size=log_size, version=version)
    if "extra.reservations" in extras:
        decoder = msgspec.msgpack.Decoder(list[Reservation], dec_hook=decode_hook)
        try:
            held = decoder.decode(extras["extra.reservations"].tobytes())
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RegistryError(f"Snapshot is damaged: reservations ({str(exc)[:120]})", "snapshot") from None
        for r in held:
            if r.backend_id not in registry:
                raise RegistryError(f"Snapshot is damaged: a reservation names unknown backend "
                                    f"`{r.backend_id[:60]}`", "snapshot")
            registry._book.hold(r)
    return registry
