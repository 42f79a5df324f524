"""The seed's own matching algorithm, in plain Python, adapted to SPEC §3–§4.

The Prism page's ``match_slot_to_backend`` loops over backend objects, skips
those that fail a check, scores the rest and sorts. This is that loop with
the gaps SPEC.md settles filled in (all nine rules, the zero-minimum and
missing-data cases, ``preferred_region`` against a list of regions, ties by
``backend_id``, top-k instead of the first). It is the "before" of
compare.py: what a straightforward port of the page costs.

Backends and slots are turned into plain objects once (units parsed, names
as sets), outside any timing, so the loop measures matching alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prism_match import MatchPolicy, PreparedSlot, Registry
from prism_match.schema import CONSISTENCY_LEVELS

__all__ = ["SeedBackend", "SeedRequirement", "seed_backends", "seed_requirement", "match_slot_to_backend"]

_STRENGTH = {level: i for i, level in enumerate(CONSISTENCY_LEVELS)}  # strongest first
_UNKNOWN_STRENGTH = len(CONSISTENCY_LEVELS)


@dataclass(slots=True)
class SeedBackend:
    backend_id: str
    backend_type: str
    interfaces: frozenset[str]           # "Name" and "Name@version"
    capabilities: frozenset[str]         # "name" and "name@version"
    capability_p99: tuple[tuple[str, str, float], ...]  # (name, name@version, p99_ms)
    max_write_rps: float
    max_read_rps: float
    max_storage: float | None
    write_rps: float
    read_rps: float
    storage_used: float
    cost_per_1k_writes: float | None
    uptime_percent_24h: float | None
    status: str
    regions: frozenset[str]
    compliance: frozenset[str]
    consistency: int                     # index in CONSISTENCY_LEVELS, 4 = unknown


@dataclass(slots=True)
class SeedRequirement:
    slot_name: str
    interfaces: tuple[str, ...]
    capabilities: tuple[str, ...]
    min_write_rps: float
    min_read_rps: float
    max_latency_p99_ms: float | None
    health_statuses: frozenset[str]
    regions: frozenset[str] | None
    compliance: frozenset[str]
    backend_types: frozenset[str] | None
    min_storage: float
    consistency: int | None
    preferred_region: str | None


def _names(items) -> frozenset[str]:
    out = set()
    for item in items:
        out.add(item.name)
        out.add(f"{item.name}@{item.version}")
    return frozenset(out)


def seed_backends(registry: Registry) -> list[SeedBackend]:
    """Every registration of ``registry`` as a plain object, in registry order."""
    out = []
    for reg in registry:
        cap, cur, cost, health = reg.capacity, reg.current, reg.cost, reg.health
        caps = reg.capability_list()
        out.append(SeedBackend(
            backend_id=reg.backend_id,
            backend_type=reg.backend_type,
            interfaces=_names(reg.interface_list()),
            capabilities=_names(caps),
            capability_p99=tuple((c.name, f"{c.name}@{c.version}", c.p99_ms) for c in caps
                                 if c.p99_ms is not None),
            max_write_rps=(cap and cap.max_write_rps) or 0.0,
            max_read_rps=(cap and cap.max_read_rps) or 0.0,
            max_storage=cap.max_storage if cap is not None else None,
            write_rps=(cur and cur.write_rps) or 0.0,
            read_rps=(cur and cur.read_rps) or 0.0,
            storage_used=(cur and cur.storage_used) or 0.0,
            cost_per_1k_writes=cost.cost_per_1k_writes if cost is not None else None,
            uptime_percent_24h=health.uptime_percent_24h if health is not None else None,
            status=reg.health_status,
            regions=frozenset(reg.regions),
            compliance=frozenset(reg.compliance),
            consistency=_UNKNOWN_STRENGTH if reg.consistency is None else _STRENGTH[reg.consistency],
        ))
    return out


def _token(item) -> str:
    if isinstance(item, str):
        return item
    return item.name if item.version is None else f"{item.name}@{item.version}"


def seed_requirement(prepared: PreparedSlot, default_health: tuple[str, ...]) -> SeedRequirement:
    """The validated slot behind ``prepared`` (units already numbers) as a plain object."""
    slot = prepared.requirement
    perf = slot.performance
    caps = [_token(c) for c in slot.capabilities]
    if perf is not None and (perf.requires_transactions or perf.requires_atomic_writes):
        caps.append("transaction")
    min_storage = slot.min_storage if slot.min_storage is not None else (
        perf.min_storage if perf is not None and perf.min_storage is not None else 0.0)
    return SeedRequirement(
        slot_name=slot.slot_name,
        interfaces=tuple(dict.fromkeys(_token(i) for i in slot.interfaces)),
        capabilities=tuple(dict.fromkeys(caps)),
        min_write_rps=perf.min_write_rps if perf is not None else 0.0,
        min_read_rps=perf.min_read_rps if perf is not None else 0.0,
        max_latency_p99_ms=perf.max_latency_p99 if perf is not None else None,
        health_statuses=frozenset(slot.health_statuses if slot.health_statuses is not None else default_health),
        regions=None if slot.regions is None else frozenset(slot.regions),
        compliance=frozenset(slot.compliance or ()),
        backend_types=None if slot.backend_types is None else frozenset(slot.backend_types),
        min_storage=min_storage,
        consistency=None if slot.consistency is None else _STRENGTH[slot.consistency],
        preferred_region=slot.preferred_region,
    )


def _latency_ok(backend: SeedBackend, req: SeedRequirement) -> bool:
    bound = req.max_latency_p99_ms
    if bound is None or math.isinf(bound):
        return True
    for name, versioned, p99 in backend.capability_p99:
        covered = not req.capabilities or name in req.capabilities or versioned in req.capabilities
        if covered and p99 > bound:
            return False
    return True


_DEFAULT_POLICY = MatchPolicy()


def calculate_score(backend: SeedBackend, req: SeedRequirement, policy: MatchPolicy = _DEFAULT_POLICY) -> float:
    """SPEC §4 (the seed's formula with its gaps settled; the weights are the policy's)."""
    cap = policy.perf_cap
    available_write = max(0.0, backend.max_write_rps - backend.write_rps)
    available_read = max(0.0, backend.max_read_rps - backend.read_rps)
    write_ratio = available_write / req.min_write_rps if req.min_write_rps > 0 else cap
    read_ratio = available_read / req.min_read_rps if req.min_read_rps > 0 else cap
    performance = min(write_ratio, read_ratio, cap)
    cost = 0.0 if backend.cost_per_1k_writes is None else 1.0 / (backend.cost_per_1k_writes + 1.0)
    availability = 0.0 if backend.uptime_percent_24h is None else backend.uptime_percent_24h / 100.0
    region = 1.0 if req.preferred_region is not None and req.preferred_region in backend.regions else 0.0
    return (policy.w_perf * performance + policy.w_cost * cost + policy.w_avail * availability
            + policy.w_region * region)


def match_slot_to_backend(req: SeedRequirement, available_backends: list[SeedBackend], k: int = 1,
                          policy: MatchPolicy = _DEFAULT_POLICY) -> list[tuple[str, float]]:
    """The best ``k`` (backend_id, score), best first (score desc, then id)."""
    headroom = policy.capacity_basis == "available"
    candidates = []
    for backend in available_backends:
        # 1. interfaces and 2. capabilities ("Name" matches any version).
        if not all(iface in backend.interfaces for iface in req.interfaces):
            continue
        if not all(cap in backend.capabilities for cap in req.capabilities):
            continue
        # 3., 4. capacity against the maximum, as the seed's algorithm does
        # (or against max - current, with capacity_basis="available").
        if headroom:  # clamped at 0: an overloaded backend has none (SPEC §1)
            if max(0.0, backend.max_write_rps - backend.write_rps) < req.min_write_rps:
                continue
            if max(0.0, backend.max_read_rps - backend.read_rps) < req.min_read_rps:
                continue
        elif backend.max_write_rps < req.min_write_rps or backend.max_read_rps < req.min_read_rps:
            continue
        # The checks the page leaves out (SPEC §3, rules 5-9).
        if not _latency_ok(backend, req):
            continue
        if backend.status not in req.health_statuses:
            continue
        if req.regions is not None and not (backend.regions & req.regions):
            continue
        if not req.compliance <= backend.compliance:
            continue
        if req.backend_types is not None and backend.backend_type not in req.backend_types:
            continue
        if req.min_storage > 0:
            if backend.max_storage is None:
                continue
            storage = backend.max_storage - backend.storage_used if headroom else backend.max_storage
            if storage < req.min_storage:
                continue
        if req.consistency is not None and backend.consistency > req.consistency:
            continue
        candidates.append((backend.backend_id, calculate_score(backend, req, policy)))
    candidates.sort(key=lambda c: (-c[1], c[0]))
    return candidates[:k]
