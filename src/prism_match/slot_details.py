"""A slot requirement or query → a prepared requirement for one registry.

Preparing is the only step that reads names and units: required capability
and interface names become feature bits (``Name`` any version, ``Name@v2``
that version), regions, compliance tags, types, statuses and consistency
become masks and codes, and the numbers are read once. A name no backend
knows makes the slot unmatchable (not an error) and is remembered for the
did-you-mean of ``explain``. The result is valid for the registry that
prepared it, whose vocabularies never change.

Two halves. ``CoreRegistry.prepare`` (``_core.pyx``) builds the C struct the
kernel reads, in a few hundred nanoseconds: a placement loop that prepares a
new slot per call must not pay more for preparing than for matching.
:func:`slot_details` below writes the same rules out in plain Python for
explain, reasons and the numpy path; a ``PreparedSlot`` computes it on first
read. The tests hold the two against each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from ._core import PreparedSlot
from .compiled import CONSISTENCY_CODE, HEALTH_CODE, TYPE_CODE, UNKNOWN_CONSISTENCY, Columns
from .schema import SlotRequirement
from .vocabulary import Vocabulary, requirement_parts, requirement_token

__all__ = ["PreparedSlot", "SlotDetails", "slot_details", "Requirement"]


class Requirement(NamedTuple):
    """One required capability or interface, as written and as a token."""

    kind: str            # "capability" | "interface"
    label: str           # as shown to people: ``get`` or ``get@v2``
    token: str           # ``c:get`` / ``c:get@v2``
    bit: int | None      # feature bit, None when no backend declares it


@dataclass(frozen=True, slots=True)
class SlotDetails:
    """A prepared requirement as explain, reasons and the numpy path read it."""

    requirements: tuple[Requirement, ...]
    min_write_rps: float
    min_read_rps: float
    min_storage: float
    max_latency_ms: float              # +inf: no bound
    min_connections: float             # 0: no bound
    health_codes: frozenset[int]
    region_bits: tuple[int, ...] | None  # None: no region filter
    unknown_regions: tuple[str, ...]
    compliance_bits: tuple[int, ...] | None
    unknown_compliance: tuple[str, ...]
    type_codes: frozenset[int] | None
    max_consistency: int
    preferred_region_bit: int           # -1: none or unknown (a ranked list: its first known region)
    unmatchable: bool
    # Issue 13's opt-in parts (each inert at its default).
    preferred_ranked: tuple[tuple[int, float], ...] = ()   # ranked list: (region bit, term) of known regions
    affinity: tuple[tuple[int, int, float], ...] = ()      # (AFF_TYPE 0 | AFF_TAG 1, code or bit (-1), weight)
    affinity_total: float = 0.0
    max_per_backend: float = math.inf
    max_per_region: float = math.inf
    max_skew: float = math.inf
    current_backend: str | None = None
    # Per-capability performance (issue 13; inert at its defaults).
    max_latency_p50_ms: float = math.inf
    max_latency_p95_ms: float = math.inf
    max_latency_p999_ms: float = math.inf
    needs_batch: bool = False           # requires_batch, or a min_batch_size
    min_batch_size: float = 0.0         # 0: no size asked
    min_concurrency: float = 0.0        # 0: no bound
    per_capability_throughput: bool = False

    @property
    def capability_bounds(self) -> bool:
        """True when a per-capability rule other than p99 applies."""
        return (self.max_latency_p50_ms < math.inf or self.max_latency_p95_ms < math.inf
                or self.max_latency_p999_ms < math.inf or self.needs_batch or self.min_concurrency > 0
                or self.per_capability_throughput)


def _requirement(kind: str, item, vocab: Vocabulary) -> Requirement:
    name, version = requirement_parts(item)
    token = requirement_token(kind, item)
    label = name if version is None else f"{name}@{version}"
    return Requirement(kind, label, token, vocab.index.get(token))


def _ranked_regions(columns: Columns, preferred: list[str]) -> tuple[tuple[int, float], ...]:
    """A ranked list of L regions: the k-th (from 0) scores ``(L - k) / L``;
    regions no backend serves keep their rank and are left out."""
    n = len(preferred)
    return tuple((columns.regions.index[name], float(n - rank) / float(n)) for rank, name in enumerate(preferred)
                 if name in columns.regions.index)


def _affinity_terms(columns: Columns, slot: SlotRequirement) -> tuple[tuple[tuple[int, int, float], ...], float]:
    terms, total = [], 0.0
    for term in slot.preferences or ():
        if term.backend_type is not None:
            terms.append((0, TYPE_CODE[term.backend_type], float(term.weight)))
        else:
            terms.append((1, columns.compliance.index.get(term.tag, -1), float(term.weight)))
        total = total + float(term.weight)
    return tuple(terms), total


def slot_details(columns: Columns, slot: SlotRequirement, default_health: tuple[str, ...]) -> SlotDetails:
    """SPEC §2–§3 as a prepared requirement, in plain Python."""
    perf = slot.performance
    cap_items: list = list(slot.capabilities)
    if perf is not None and (perf.requires_transactions or perf.requires_atomic_writes):
        cap_items.append("transaction")
    reqs: list[Requirement] = []
    seen: set[str] = set()
    for kind, items in (("interface", slot.interfaces), ("capability", cap_items)):
        for item in items:
            req = _requirement(kind, item, columns.features)
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
    statuses = slot.health_statuses if slot.health_statuses is not None else default_health
    min_storage = slot.min_storage if slot.min_storage is not None else (
        perf.min_storage if perf is not None and perf.min_storage is not None else 0.0)
    ranked = _ranked_regions(columns, slot.preferred_region) if isinstance(slot.preferred_region, list) else ()
    if isinstance(slot.preferred_region, list):
        preferred_bit = ranked[0][0] if ranked else -1
    else:
        preferred_bit = columns.regions.index.get(slot.preferred_region, -1) if slot.preferred_region else -1
    affinity, affinity_total = _affinity_terms(columns, slot)

    def limit(value: int | None) -> float:
        return math.inf if value is None else float(value)

    return SlotDetails(
        requirements=tuple(reqs),
        min_write_rps=perf.min_write_rps if perf is not None else 0.0,
        min_read_rps=perf.min_read_rps if perf is not None else 0.0,
        min_storage=min_storage,
        max_latency_ms=perf.max_latency_p99 if perf is not None and perf.max_latency_p99 is not None
        else math.inf,
        min_connections=slot.min_connections if slot.min_connections is not None else 0.0,
        health_codes=frozenset(HEALTH_CODE[s] for s in statuses),
        region_bits=region_bits, unknown_regions=unknown_regions,
        compliance_bits=compliance_bits, unknown_compliance=unknown_compliance,
        type_codes=None if slot.backend_types is None else frozenset(TYPE_CODE[t] for t in slot.backend_types),
        max_consistency=UNKNOWN_CONSISTENCY if slot.consistency is None else CONSISTENCY_CODE[slot.consistency],
        preferred_region_bit=preferred_bit,
        unmatchable=(any(r.bit is None for r in reqs) or bool(unknown_compliance)
                     or (region_bits is not None and not region_bits)),
        preferred_ranked=ranked, affinity=affinity, affinity_total=affinity_total,
        max_per_backend=limit(slot.max_per_backend), max_per_region=limit(slot.max_per_region),
        max_skew=limit(slot.max_skew), current_backend=slot.current_backend,
        **_capability_bounds(perf),
    )


def _capability_bounds(perf) -> dict:
    if perf is None:
        return {}

    def bound(value: float | None) -> float:
        return math.inf if value is None else float(value)

    return {"max_latency_p50_ms": bound(perf.max_latency_p50), "max_latency_p95_ms": bound(perf.max_latency_p95),
            "max_latency_p999_ms": bound(perf.max_latency_p999), "needs_batch": perf.needs_batch,
            "min_batch_size": float(perf.min_batch_size or 0), "min_concurrency": float(perf.min_concurrency or 0),
            "per_capability_throughput": perf.per_capability_throughput}
