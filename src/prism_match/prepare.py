"""A slot requirement or query → a prepared requirement for one registry.

Preparing is the only step that reads names and units: required capability
and interface names become feature bits (``Name`` any version, ``Name@v2``
that version), regions, compliance tags, types, statuses and consistency
become masks and codes, and the numbers are read once. A name no backend
knows makes the slot unmatchable (not an error) and is remembered for the
did-you-mean of ``explain``. The result is valid for the registry that
prepared it, whose vocabularies never change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ._core import CoreSlot
from ._types import INDEX_DTYPE, MASK_DTYPE
from .compiled import CONSISTENCY_CODE, HEALTH_CODE, TYPE_CODE, UNKNOWN_CONSISTENCY, Columns
from .schema import NameRef, SlotRequirement
from .vocabulary import Vocabulary, capability_token, interface_token, split_requirement, versioned

__all__ = ["PreparedSlot", "prepare_slot", "Requirement"]

_ALL_TYPES = (1 << len(TYPE_CODE)) - 1


class Requirement(NamedTuple):
    """One required capability or interface, as written and as a token."""

    kind: str            # "capability" | "interface"
    label: str           # as shown to people: ``get`` or ``get@v2``
    token: str           # ``c:get`` / ``c:get@v2``
    bit: int | None      # feature bit, None when no backend declares it


@dataclass(eq=False, slots=True)
class PreparedSlot:
    """A compiled requirement. Pass it to ``match``/``explain``/… of the
    registry that made it; shapes: masks are uint64 words of that registry."""

    requirement: SlotRequirement
    columns: Columns
    core: CoreSlot
    requirements: tuple[Requirement, ...]
    min_write_rps: float
    min_read_rps: float
    min_storage: float
    max_latency_ms: float              # +inf: no bound
    health_codes: frozenset[int]
    region_bits: tuple[int, ...] | None  # None: no region filter
    unknown_regions: tuple[str, ...]
    compliance_bits: tuple[int, ...] | None
    unknown_compliance: tuple[str, ...]
    type_codes: frozenset[int] | None
    max_consistency: int
    preferred_region_bit: int           # -1: none or unknown
    default_health: tuple[str, ...]     # the policy's statuses this was prepared with

    @property
    def slot_name(self) -> str:
        return self.requirement.slot_name

    @property
    def optional(self) -> bool:
        return self.requirement.optional

    @property
    def unmatchable(self) -> bool:
        return self.core.unmatchable

    def unknown_names(self) -> list[Requirement]:
        return [r for r in self.requirements if r.bit is None]


def _requirement(kind: str, item: str | NameRef, vocab: Vocabulary) -> Requirement:
    make = capability_token if kind == "capability" else interface_token
    if isinstance(item, NameRef):
        name, version = item.name, item.version
    else:
        name, version = split_requirement(item)
    token = make(name) if version is None else versioned(make(name), version)
    label = name if version is None else f"{name}@{version}"
    return Requirement(kind, label, token, vocab.index.get(token))


# Preparing runs for every new slot, so its small arrays are interned: slots
# share the same few masks (most have no region or compliance filter), and a
# read-only array built once replaces a numpy allocation per slot.
@lru_cache(maxsize=4096)
def _words(bits: tuple[int, ...], n_words: int) -> np.ndarray:
    words = [0] * n_words
    for bit in bits:
        words[bit >> 6] |= 1 << (bit & 63)
    out = np.array(words, dtype=MASK_DTYPE)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=4096)
def _tokens(bits: tuple[int, ...]) -> np.ndarray:
    out = np.array(bits, dtype=INDEX_DTYPE)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=256)
def _codes(names: tuple[str, ...], table: tuple[tuple[str, int], ...]) -> tuple[frozenset[int], int]:
    """(codes, bit mask) of enumeration names."""
    codes = frozenset(dict(table)[name] for name in names)
    return codes, sum(1 << c for c in codes)


_HEALTH_TABLE = tuple(HEALTH_CODE.items())
_TYPE_TABLE = tuple(TYPE_CODE.items())


# (kind, item as written, vocabulary) → Requirement: the same names recur in
# every slot of a placement loop. Checked against the vocabulary on use.
_REQUIREMENTS: dict[tuple, Requirement] = {}


def prepare_slot(columns: Columns, slot: SlotRequirement, default_health: tuple[str, ...]) -> PreparedSlot:
    perf = slot.performance
    cap_items: list[str | NameRef] = list(slot.capabilities)
    if perf is not None and (perf.requires_transactions or perf.requires_atomic_writes):
        cap_items.append("transaction")
    reqs: list[Requirement] = []
    seen: set[str] = set()
    for kind, items in (("interface", slot.interfaces), ("capability", cap_items)):
        for item in items:
            key = (kind, item, id(columns.features))
            req = _REQUIREMENTS.get(key)
            if req is None or req.bit != columns.features.index.get(req.token):
                req = _REQUIREMENTS[key] = _requirement(kind, item, columns.features)
                if len(_REQUIREMENTS) > 65536:
                    _REQUIREMENTS.clear()
            if req.token not in seen:
                seen.add(req.token)
                reqs.append(req)

    region_bits: tuple[int, ...] | None = None
    unknown_regions: tuple[str, ...] = ()
    if slot.regions is not None:
        region_bits = tuple(columns.regions.index[r] for r in slot.regions if r in columns.regions.index)
        unknown_regions = tuple(r for r in slot.regions if r not in columns.regions.index)
    compliance_bits: tuple[int, ...] | None = None
    unknown_compliance: tuple[str, ...] = ()
    if slot.compliance:
        compliance_bits = tuple(columns.compliance.index[c] for c in slot.compliance
                                if c in columns.compliance.index)
        unknown_compliance = tuple(c for c in slot.compliance if c not in columns.compliance.index)
    type_codes, type_mask = (None, _ALL_TYPES) if slot.backend_types is None else \
        _codes(tuple(slot.backend_types), _TYPE_TABLE)
    statuses = slot.health_statuses if slot.health_statuses is not None else default_health
    health_codes, health_mask = _codes(tuple(statuses), _HEALTH_TABLE)
    max_consistency = UNKNOWN_CONSISTENCY if slot.consistency is None else CONSISTENCY_CODE[slot.consistency]
    min_storage = slot.min_storage if slot.min_storage is not None else (
        perf.min_storage if perf is not None and perf.min_storage is not None else 0.0)
    max_latency = perf.max_latency_p99 if perf is not None and perf.max_latency_p99 is not None else math.inf
    pref = columns.regions.index.get(slot.preferred_region, -1) if slot.preferred_region else -1

    known_bits = tuple(sorted({r.bit for r in reqs if r.bit is not None}))
    lat_bits = tuple(r.bit for r in reqs if r.kind == "capability" and r.bit is not None) \
        if max_latency != math.inf else ()
    n_cap_required = sum(1 for r in reqs if r.kind == "capability")
    prepared_core = dict(
        req_tokens=_tokens(known_bits),
        region_any=_words(region_bits or (), columns.regions.words),
        region_filter=region_bits is not None,
        compliance_all=_words(compliance_bits or (), columns.compliance.words),
        compliance_filter=compliance_bits is not None,
        type_mask=type_mask,
        health_mask=health_mask,
        max_consistency=max_consistency,
        min_w=perf.min_write_rps if perf is not None else 0.0,
        min_r=perf.min_read_rps if perf is not None else 0.0,
        min_storage=min_storage,
        max_lat_ms=max_latency,
        lat_all=n_cap_required == 0,
        lat_mask=_words(lat_bits, columns.features.words),
        pref_region=pref,
    )
    unmatchable = (any(r.bit is None for r in reqs) or bool(unknown_compliance)
                   or (region_bits is not None and not region_bits))
    return PreparedSlot(
        requirement=slot, columns=columns, core=CoreSlot(unmatchable=unmatchable, **prepared_core),
        requirements=tuple(reqs),
        min_write_rps=prepared_core["min_w"], min_read_rps=prepared_core["min_r"],
        min_storage=min_storage, max_latency_ms=max_latency, health_codes=health_codes,
        region_bits=region_bits, unknown_regions=unknown_regions,
        compliance_bits=compliance_bits, unknown_compliance=unknown_compliance,
        type_codes=type_codes, max_consistency=max_consistency, preferred_region_bit=pref,
        default_health=default_health,
    )
