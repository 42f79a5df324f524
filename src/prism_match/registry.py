"""Registry: the public object that ties the layers together.

``load_registry`` → documents validated into Structs (loading.py) → compiled
columns (compiled.py) → a ``CoreRegistry`` holding raw pointers for the
kernel. Slots come in as mappings, Structs or prepared requirements; mappings
are validated and prepared once (and cached by content), then every call
runs the kernel (match) or the numpy path (explain, query).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import msgspec
import numpy as np
import polars as pl

from ._core import CoreRegistry
from .compiled import Columns, compile_registry, registration_from_columns
from .frames import columns_from_polars, columns_to_polars
from .snapshot import RecordSource, encode_registrations, save_snapshot
from .errors import RegistryError, positive_int
from .loading import gc_paused, load_registrations, validate_documents
from .policy import DEFAULT_POLICY, MatchPolicy
from .prepare import PreparedSlot
from .results import Diagnosis, Match, QueryResult, build_reasons, diagnose
from .schema import Query, Registration, SlotRequirement, decode_hook
from . import batch, patterns, vectorized

__all__ = ["Registry", "load_registry", "coerce_slot"]

_CACHE_SIZE = 4096


def _slot_location(raw: Any) -> str:
    name = raw.get("slot_name") if isinstance(raw, Mapping) else None
    return f"slot `{name[:60]}`" if isinstance(name, str) else "slot"


def coerce_slot(slot: Any) -> SlotRequirement:
    """A mapping (slot requirement, ``slot_requirement:`` wrapper, query or
    ``query:`` wrapper) or Struct → a validated SlotRequirement."""
    if isinstance(slot, SlotRequirement):
        return slot
    if isinstance(slot, Query):
        return slot.to_slot()
    if type(slot) is not dict and not isinstance(slot, Mapping):
        raise RegistryError(f"Expected a slot mapping or a prepared slot, got `{type(slot).__name__}`", "slot")
    if "slot_name" not in slot:  # a wrapper or a query; a plain slot names itself
        if len(slot) == 1 and "slot_requirement" in slot:
            slot = slot["slot_requirement"]
        elif "query" in slot and isinstance(slot.get("query"), Mapping):
            return _validated(slot["query"], Query, "query").to_slot()
        elif "required_capabilities" in slot or "required_interfaces" in slot or "min_capacity" in slot:
            return _validated(slot, Query, "query").to_slot()
    return _validated(slot, SlotRequirement, None)


def _validated(raw: Any, kind: type, where: str | None) -> Any:
    # The valid case is one msgspec call; only a failure goes through the
    # loader's diagnostics, which collect every problem with its path.
    try:
        return msgspec.convert(raw, kind, dec_hook=decode_hook)
    except (msgspec.ValidationError, RecursionError):
        pass
    [(_, value)] = validate_documents([(where or _slot_location(raw), "$", raw)], kind)
    return value


class Registry:
    """The compiled registry. Build it with :func:`load_registry`."""

    def __init__(self, registrations: list[Registration] | None, *, policy: MatchPolicy = DEFAULT_POLICY,
                 columns: Columns | None = None, registration_source: Callable[[int], Registration] | None = None):
        if columns is None:
            if registrations is None:
                raise RegistryError("Expected registrations or compiled columns", "Registry")
            columns = compile_registry(registrations)
        self.columns = columns
        # Registrations are kept when loaded from documents; a registry built
        # from a table or a snapshot makes each one on first request.
        self._by_id: dict[str, Registration] = (
            {r.backend_id: r for r in registrations} if registrations is not None else {})
        self._source = registration_source or partial(registration_from_columns, columns)
        self._core = CoreRegistry(self.columns, self)
        self.policy = policy
        self._ids: pl.Series | None = None
        # The live-state updater is the compiled method itself: no Python
        # frame in between (SPEC §5, constant time).
        self.update = self._core.update
        self._n = self.columns.n

    @classmethod
    def from_polars(cls, frame: pl.DataFrame, *, policy: MatchPolicy = DEFAULT_POLICY) -> Registry:
        """Compile a table of backends (the shape ``to_polars`` returns, or a
        subset of its columns) without a Python object per backend."""
        return cls(None, columns=columns_from_polars(frame), policy=policy)

    def save(self, path: str | os.PathLike) -> None:
        """Store the compiled registry (live values included); reload it with
        ``load_snapshot(path)``."""
        save_snapshot(self, path)

    def _registration_records(self) -> tuple[np.ndarray, np.ndarray] | None:
        if isinstance(self._source, RecordSource):
            return self._source.records()
        if len(self._by_id) == len(self):
            return encode_registrations([self._by_id[b] for b in self.columns.backend_ids])
        return None

    # --- container protocol -------------------------------------------------------------

    def __len__(self) -> int:
        return self.columns.n

    def __contains__(self, backend_id: object) -> bool:
        return backend_id in self._core.index

    def __getitem__(self, backend_id: str) -> Registration:
        found = self._by_id.get(backend_id)
        if found is None:
            i = self._core.index.get(backend_id)
            if i is None:
                raise KeyError(f"Unknown backend `{str(backend_id)[:60]}`")
            found = self._by_id[backend_id] = self._source(i)
        return found

    def __iter__(self) -> Iterator[Registration]:
        return (self[b] for b in self.columns.backend_ids)

    def __repr__(self) -> str:
        return f"<Registry: {len(self)} backends>"

    @property
    def backend_ids(self) -> list[str]:
        return list(self.columns.backend_ids)

    @property
    def policy(self) -> MatchPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: MatchPolicy) -> None:
        if not isinstance(policy, MatchPolicy):
            raise RegistryError(f"Expected a MatchPolicy, got `{type(policy).__name__}`", "policy")
        self._policy = policy
        self._core_policy = policy.core()
        self._core.set_default_health(policy.health_statuses)  # forgets slots prepared under the old ones
        self._reprepared: dict[int, tuple[PreparedSlot, PreparedSlot]] = {}

    # --- preparing ----------------------------------------------------------------------

    def prepare(self, slot: Any) -> PreparedSlot:
        """Compile a slot requirement or query once for this registry."""
        if isinstance(slot, PreparedSlot):
            if slot.columns is not self.columns:
                raise RegistryError("This slot was prepared for another registry; prepare it again", "slot")
            if slot.default_health is not self._policy.health_statuses \
                    and slot.default_health != self._policy.health_statuses \
                    and slot.requirement.health_statuses is None:
                # Prepared under another policy's default statuses: prepared
                # again for this policy, once (kept until the policy changes).
                kept = self._reprepared.get(id(slot))
                if kept is None or kept[0] is not slot:
                    if len(self._reprepared) >= _CACHE_SIZE:
                        self._reprepared.clear()
                    kept = self._reprepared[id(slot)] = (slot, self._prepare(slot.requirement))
                return kept[1]
            return slot
        return self._core.resolve(slot, False)

    def _prepare(self, requirement: SlotRequirement) -> PreparedSlot:
        return self._core.prepare_requirement(requirement)

    def _compile(self, slot: Any) -> PreparedSlot:
        """The general way in (wrappers, queries, Structs, any Mapping), with
        every problem reported; ``CoreRegistry.resolve`` takes plain slot
        dicts a shorter way."""
        return self._prepare(coerce_slot(slot))

    def _prepared(self, slot: Any) -> PreparedSlot:
        """``prepare``, with the hot cases in C (``CoreRegistry.resolve``): a
        slot prepared here is used as is, and a plain dict is cached by
        content, so a placement loop that passes the same mapping again pays
        one encode and a lookup."""
        return self._core.resolve(slot)

    # --- matching -----------------------------------------------------------------------

    def match(self, slot: Any, k: int = 1) -> list[Match]:
        """Up to ``k`` eligible backends, best first (SPEC §3–§4)."""
        if type(k) is not int or k < 1:  # one check on the hot path; the rest only when it fails
            k = positive_int(k, "k", "match")
        return self._core.match(slot, self._core_policy, k if k <= self._n else self._n)

    def explain(self, slot: Any) -> Diagnosis:
        """How many backends each rule rejected, with what was required."""
        prepared = self._prepared(slot)
        masks = vectorized.rule_masks(self.columns, prepared, self._policy)
        return diagnose(self, prepared, masks, int(len(self) - vectorized.rejected_by_any(masks, len(self)).sum()))

    def query(self, query: Any) -> QueryResult:
        """Every eligible backend, best first, and ``total_count``. A mapping
        is read as the seed's query (``query:`` wrapper optional) unless it
        names a ``slot_name``."""
        if isinstance(query, Mapping) and "slot_name" not in query and "query" not in query \
                and "slot_requirement" not in query:
            query = {"query": query}
        prepared = self._prepared(query)
        matches = self._core.topk(prepared, self._core_policy, max(len(self), 1))
        return QueryResult(backends=matches, total_count=len(matches))

    def _build_reasons(self, match: Match) -> list:
        return build_reasons(self, match)

    def _id_series(self) -> pl.Series:
        if self._ids is None:
            self._ids = pl.Series("backend_id", self.columns.backend_ids, dtype=pl.String)
        return self._ids

    # --- batches, placement, patterns, cost -------------------------------------------------

    def match_many(self, slots: Any, k: int = 1, *, threads: int | None = None,
                   progress: Any = None) -> pl.DataFrame:
        """Top-``k`` for every slot (a list of mappings or prepared slots, or a
        polars DataFrame of requirements), in parallel; see batch.match_many."""
        return batch.match_many(self, slots, k, threads=threads, progress=progress)

    def assign(self, slots: Any, *, commit: bool = False, allow_unplaced: bool = False) -> batch.Assignment:
        """Capacity-aware placement; see batch.assign."""
        return batch.assign(self, slots, commit=commit, allow_unplaced=allow_unplaced)

    def bind_pattern(self, pattern: Any) -> patterns.PatternBinding:
        """Bind every slot of a pattern; see patterns.bind_pattern."""
        return patterns.bind_pattern(self, pattern)

    def check_binding(self, pattern: Any, binding: Mapping[str, str]) -> dict[str, list]:
        """What each explicitly bound backend lacks; see patterns.check_binding."""
        return patterns.check_binding(self, pattern, binding)

    def estimate_cost(self, workload: Mapping[str, Any]) -> pl.DataFrame:
        """Monthly cost of ``workload`` on every backend (SPEC §7)."""
        from .cost import estimate_cost

        return estimate_cost(self, workload)

    # --- tables ---------------------------------------------------------------------------

    def to_polars(self) -> pl.DataFrame:
        """One row per backend: the compiled columns, live values included
        (missing data as null); ``from_polars`` reads it back."""
        return columns_to_polars(self.columns)


def load_registry(source: Any, *, strict: bool = True, allow_inline_secrets: bool = False,
                  policy: MatchPolicy = DEFAULT_POLICY) -> Registry:
    """Load, validate and compile a registry (SPEC §1).

    ``source``: a YAML file (one or many documents), a JSON file, a directory
    of such files (sorted by name, recursively), a list of such paths as
    ``pathlib.Path``, a list of mappings, or a mapping ``{"backends": [...]}``. Raises RegistryError listing every
    problem; nothing is half-loaded.
    """
    with gc_paused():  # compiling allocates much and frees nothing: no collections meanwhile
        return Registry(load_registrations(source, strict=strict, allow_inline_secrets=allow_inline_secrets),
                        policy=policy)
