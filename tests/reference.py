"""The plain reference twin of the matching engine: SPEC §3–§4 in plain Python.

The tests' oracle, in the manner of bottleneck's ``slow`` functions: it reads
the validated ``Registration`` Structs and a validated ``SlotRequirement``
directly (no vocabularies, masks or compiled columns), one backend at a time,
with the SPEC's sentences as its code. Names follow the kernel's:
``eligible`` (the rejection codes of one backend), ``score`` (SPEC §4),
``match`` (best first, ties by ``backend_id`` byte order), ``explain_counts``.

Live state: ``Registry.update`` changes a backend's usage, status and uptime
in place; the tests mirror each update into a :class:`LiveState` and pass it
here, so every answer is the SPEC's answer for the registry *as updated*.

Floats: the score is computed in the SPEC's order
(``w_perf*perf + w_cost*cost + w_avail*avail + w_region*region``, left to
right), so equal inputs give the same bits as the compiled paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prism_match.policy import DEFAULT_POLICY, MatchPolicy
from prism_match.schema import CONSISTENCY_LEVELS, NameRef, Registration, SlotRequirement

__all__ = ["CODES", "LIVE_FIELDS", "LiveState", "required_names", "eligible", "score", "ranked", "match",
           "explain_counts", "eligible_count", "id_order"]

# SPEC §3's rejection codes, in rule order.
CODES = (
    "missing_interface", "missing_capability", "insufficient_write_capacity",
    "insufficient_read_capacity", "latency_too_high", "health_status", "region", "compliance",
    "backend_type", "insufficient_storage", "consistency", "insufficient_connections",
    "latency_percentile_too_high", "no_batch_support", "insufficient_concurrency",
    "insufficient_capability_throughput",
)

# The keyword arguments of ``Registry.update`` (SPEC §5).
LIVE_FIELDS = ("write_rps", "read_rps", "storage_used", "namespace_count", "status", "uptime", "active_connections")


class LiveState:
    """Overrides of live state per backend, as ``Registry.update`` leaves them:
    an argument that is None changes nothing."""

    def __init__(self) -> None:
        self.overrides: dict[str, dict[str, Any]] = {}

    def update(self, backend_id: str, **changes: Any) -> None:
        unknown = set(changes) - set(LIVE_FIELDS)
        if unknown:
            raise TypeError(f"not a live field: {sorted(unknown)}")
        slot = self.overrides.setdefault(backend_id, {})
        slot.update({name: value for name, value in changes.items() if value is not None})

    def of(self, backend_id: str) -> Mapping[str, Any]:
        return self.overrides.get(backend_id, {})

    def copy(self) -> LiveState:
        out = LiveState()
        out.overrides = {bid: dict(fields) for bid, fields in self.overrides.items()}
        return out


Live = Mapping[str, Any] | None          # one backend's overrides
LiveAll = LiveState | Mapping[str, Mapping[str, Any]] | None   # by backend_id


def _live_of(live: LiveAll, backend_id: str) -> Mapping[str, Any]:
    if live is None:
        return {}
    if isinstance(live, LiveState):
        return live.of(backend_id)
    return live.get(backend_id, {})


# --- reading a registration -------------------------------------------------------------

def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def _state(reg: Registration, live: Live) -> dict[str, Any]:
    """What the rules and the score read, with SPEC §3's defaults for missing
    data: a missing maximum or current usage is 0, a missing max_storage, cost
    or uptime stays None, a missing health block means status ``unknown``."""
    live = live or {}
    cap, cur, cost, health = reg.capacity, reg.current, reg.cost, reg.health

    def field(block: Any, name: str) -> float | None:
        return None if block is None else _number(getattr(block, name))

    def current(name: str, live_name: str) -> float:
        if live_name in live:
            return float(live[live_name])
        value = field(cur, name)
        return 0.0 if value is None else value

    uptime = float(live["uptime"]) if "uptime" in live else field(health, "uptime_percent_24h")
    return {
        "max_write_rps": field(cap, "max_write_rps") or 0.0,
        "max_read_rps": field(cap, "max_read_rps") or 0.0,
        "max_storage": field(cap, "max_storage"),
        "write_rps": current("write_rps", "write_rps"),
        "read_rps": current("read_rps", "read_rps"),
        "storage_used": current("storage_used", "storage_used"),
        "cost_per_1k_writes": field(cost, "cost_per_1k_writes"),
        "uptime": uptime,
        "status": live.get("status", health.status if health is not None else "unknown"),
        "max_connections": field(cap, "max_connections"),
        "active_connections": current("active_connections", "active_connections"),
    }


def _parse_required(item: str | NameRef) -> tuple[str, str | None]:
    """``get`` → (get, None: any version); ``get@v2`` and ``{name: get,
    version: v2}`` → (get, v2)."""
    if isinstance(item, NameRef):
        return item.name, item.version
    # The last "@" splits, so a name may itself contain "@" (``a@b@v2``); text
    # with nothing before or after that "@" is a bare name.
    name, sep, version = item.rpartition("@")
    return (name, version) if sep and name and version else (item, None)


def required_names(slot: SlotRequirement) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """(interfaces, capabilities) the slot requires, as (name, version|None);
    ``requires_transactions``/``requires_atomic_writes`` add ``transaction``."""
    interfaces = [_parse_required(i) for i in slot.interfaces]
    capabilities = [_parse_required(c) for c in slot.capabilities]
    perf = slot.performance
    if perf is not None and (perf.requires_transactions or perf.requires_atomic_writes):
        capabilities.append(("transaction", None))
    return interfaces, capabilities


def _declared(items: Iterable[Any]) -> list[tuple[str, str]]:
    """A registration's capabilities or interfaces as (name, version); a bare
    name is version v1."""
    return [(item, "v1") if isinstance(item, str) else (item.name, item.version) for item in items]


def _satisfies(declared: tuple[str, str], required: tuple[str, str | None]) -> bool:
    name, version = required
    return declared[0] == name and (version is None or declared[1] == version)


def _min_storage(slot: SlotRequirement) -> float:
    # SPEC §2 puts min_storage at the top of the slot; the schema also accepts
    # it inside `performance`. The top-level value wins when both are given.
    if slot.min_storage is not None:
        return float(slot.min_storage)
    perf = slot.performance
    return float(perf.min_storage) if perf is not None and perf.min_storage is not None else 0.0


def _minimums(slot: SlotRequirement) -> tuple[float, float]:
    perf = slot.performance
    if perf is None:
        return 0.0, 0.0
    return float(perf.min_write_rps), float(perf.min_read_rps)


# --- SPEC §3 ------------------------------------------------------------------------------

def eligible(reg: Registration, slot: SlotRequirement, policy: MatchPolicy = DEFAULT_POLICY,
             live: Live = None) -> list[str]:
    """The rejection codes of SPEC §3 that ``reg`` fails for ``slot``, in rule
    order; an empty list means eligible."""
    st = _state(reg, live)
    codes: list[str] = []
    req_ifcs, req_caps = required_names(slot)
    ifcs, caps = _declared(reg.interfaces), _declared(reg.capabilities)

    # 1-2: every required interface / capability is declared.
    if not all(any(_satisfies(d, r) for d in ifcs) for r in req_ifcs):
        codes.append("missing_interface")
    if not all(any(_satisfies(d, r) for d in caps) for r in req_caps):
        codes.append("missing_capability")

    # 3-4: capacity, against the maximum (the seed) or what is left.
    min_w, min_r = _minimums(slot)
    if policy.capacity_basis == "available":
        # An overloaded backend has no headroom, not a negative one (SPEC §1).
        have_w = max(0.0, st["max_write_rps"] - st["write_rps"])
        have_r = max(0.0, st["max_read_rps"] - st["read_rps"])
    else:
        have_w, have_r = st["max_write_rps"], st["max_read_rps"]
    if not have_w >= min_w:
        codes.append("insufficient_write_capacity")
    if not have_r >= min_r:
        codes.append("insufficient_read_capacity")

    # 5: latency of the required capabilities (all of them when none is required).
    perf = slot.performance
    if perf is not None and perf.max_latency_p99 is not None:
        bound = float(perf.max_latency_p99)
        for cap in reg.capability_list():
            p99 = cap.p99_ms
            if p99 is None:
                continue  # missing latency data does not reject
            checked = not req_caps or any(_satisfies((cap.name, cap.version), r) for r in req_caps)
            if checked and p99 > bound:
                codes.append("latency_too_high")
                break

    # 6: health status (the policy's default set when the slot names none).
    statuses = slot.health_statuses if slot.health_statuses is not None else policy.health_statuses
    if st["status"] not in statuses:
        codes.append("health_status")

    # 7: regions (serves at least one), compliance (holds all), backend type.
    if slot.regions is not None and not set(reg.regions) & set(slot.regions):
        codes.append("region")
    if slot.compliance is not None and not set(slot.compliance) <= set(reg.compliance):
        codes.append("compliance")
    if slot.backend_types is not None and reg.backend_type not in slot.backend_types:
        codes.append("backend_type")

    # 8: storage; no declared max_storage fails any minimum above 0.
    need = _min_storage(slot)
    if need > 0:
        if st["max_storage"] is None:
            codes.append("insufficient_storage")
        else:
            have = max(0.0, st["max_storage"] - st["storage_used"]) if policy.capacity_basis == "available" \
                else st["max_storage"]
            if not have >= need:
                codes.append("insufficient_storage")

    # 9: consistency at least as strong; unknown fails.
    if slot.consistency is not None:
        if reg.consistency is None or \
                CONSISTENCY_LEVELS.index(reg.consistency) > CONSISTENCY_LEVELS.index(slot.consistency):
            codes.append("consistency")

    # Connections (the rule added through the rule table): like storage, no
    # declared max_connections fails any minimum above 0.
    need = float(slot.min_connections or 0)
    if need > 0:
        if st["max_connections"] is None:
            codes.append("insufficient_connections")
        else:
            have = max(0.0, st["max_connections"] - st["active_connections"]) \
                if policy.capacity_basis == "available" else st["max_connections"]
            if not have >= need:
                codes.append("insufficient_connections")
    codes.extend(_capability_codes(reg, slot, req_caps))
    return codes


def _capability_performance(cap: Any) -> dict[str, Any]:
    """What a declared capability states per capability (unstated: absent);
    a batch field inside ``performance`` wins over the same field beside it."""
    if isinstance(cap, str):
        return {}
    perf, out = cap.performance, {}
    if perf is not None and perf.latency is not None:
        for name in ("p50_ms", "p95_ms", "p99_ms", "p999_ms"):
            if getattr(perf.latency, name) is not None:
                out[name] = float(getattr(perf.latency, name))
    for name in ("max_write_rps", "max_read_rps"):
        if perf is not None and getattr(perf, name) is not None:
            out[name] = float(getattr(perf, name))
    for name in ("supports_batch", "max_batch_size", "max_concurrent_operations"):
        value = getattr(perf, name) if perf is not None else None
        if value is None:
            value = getattr(cap, name)
        if value is not None:
            out[name] = value
    return out


def _capability_codes(reg: Registration, slot: SlotRequirement,
                      req_caps: list[tuple[str, str | None]]) -> list[str]:
    """Issue 13's per-capability rules. The relevant capabilities are those
    the slot requires (every one when it requires none). A latency or a
    throughput limit a capability does not state passes. Batch support and
    concurrency must be proven: a relevant capability that states some
    per-capability performance must state them, and a required capability
    none of whose declarations states any (with no capability required: a
    backend none of whose capabilities does) proves nothing and fails."""
    perf = slot.performance
    if perf is None:
        return []
    bounds = {"p50_ms": perf.max_latency_p50, "p95_ms": perf.max_latency_p95, "p999_ms": perf.max_latency_p999}
    needs_batch = perf.requires_batch or perf.min_batch_size is not None
    min_batch = perf.min_batch_size or 0
    min_conc = perf.min_concurrency or 0
    min_w, min_r = _minimums(slot)
    failed: set[str] = set()
    stating: list[tuple[str, str]] = []   # relevant capabilities that state something
    for cap in reg.capabilities:
        declared = _declared([cap])[0]
        if req_caps and not any(_satisfies(declared, r) for r in req_caps):
            continue
        stated = _capability_performance(cap)
        if not stated:
            continue
        stating.append(declared)
        if any(bound is not None and name in stated and stated[name] > float(bound)
               for name, bound in bounds.items()):
            failed.add("latency_percentile_too_high")
        if needs_batch and (stated.get("supports_batch") is not True
                            or (min_batch > 0 and not stated.get("max_batch_size", -1) >= min_batch)):
            failed.add("no_batch_support")
        if min_conc > 0 and not stated.get("max_concurrent_operations", -1) >= min_conc:
            failed.add("insufficient_concurrency")
        if perf.per_capability_throughput and (stated.get("max_write_rps", float("inf")) < min_w
                                               or stated.get("max_read_rps", float("inf")) < min_r):
            failed.add("insufficient_capability_throughput")
    # A required capability the backend does not declare is missing_capability's to say.
    declared_caps = _declared(reg.capabilities)
    covered = all(any(_satisfies(d, r) for d in stating) for r in req_caps
                  if any(_satisfies(d, r) for d in declared_caps)) if req_caps else bool(stating)
    if not covered:
        if needs_batch:
            failed.add("no_batch_support")
        if min_conc > 0:
            failed.add("insufficient_concurrency")
    return [code for code in CODES if code in failed]


# --- SPEC §4 ------------------------------------------------------------------------------

def fullness(maximum: float, used: float, need: float) -> float:
    """Binpack: the share of a resource in use once the slot is placed
    (``used`` includes what a plan placed before), clamped to [0, 1]; a
    backend that declares no capacity is full of nothing (0)."""
    if not maximum > 0:
        return 0.0
    return min((used + need) / maximum, 1.0)


def performance(st: dict[str, Any], min_w: float, min_r: float, policy: MatchPolicy,
                placed_w: float = 0.0, placed_r: float = 0.0) -> float:
    """The performance term. spread (SPEC §4): headroom over the minimum,
    capped; binpack: ``cap * (fw + fr) / 2`` (see ``fullness``)."""
    cap = float(policy.perf_cap)
    if policy.strategy == "binpack":
        fw = fullness(st["max_write_rps"], st["write_rps"] + placed_w, min_w)
        fr = fullness(st["max_read_rps"], st["read_rps"] + placed_r, min_r)
        return cap * ((fw + fr) * 0.5)
    avail_w = max(0.0, (st["max_write_rps"] - st["write_rps"]) - placed_w)
    avail_r = max(0.0, (st["max_read_rps"] - st["read_rps"]) - placed_r)
    ratio_w = avail_w / min_w if min_w > 0 else cap
    ratio_r = avail_r / min_r if min_r > 0 else cap
    return min(ratio_w, ratio_r, cap)


def region_term(reg: Registration, slot: SlotRequirement) -> float:
    """1 when the backend serves the preferred region; for a ranked list of
    L regions, ``(L - k) / L`` for the first (k-th from 0) it serves."""
    preferred = slot.preferred_region
    if isinstance(preferred, list):
        for rank, name in enumerate(preferred):
            if name in reg.regions:
                return float(len(preferred) - rank) / float(len(preferred))
        return 0.0
    return 1.0 if preferred is not None and preferred in reg.regions else 0.0


def affinity_term(reg: Registration, slot: SlotRequirement) -> float:
    """The preferred terms: the weights of the terms the backend meets (in
    the slot's order) over all the weights."""
    met, total = 0.0, 0.0
    for term in slot.preferences or ():
        if (term.backend_type is not None and reg.backend_type == term.backend_type) or \
                (term.tag is not None and term.tag in reg.compliance):
            met = met + float(term.weight)
        total = total + float(term.weight)
    return met / total


def total_score(reg: Registration, slot: SlotRequirement, policy: MatchPolicy, status: str, perf: float,
                cost: float, avail: float, region: float) -> float:
    """SPEC §4's sum, then the opt-in terms in the kernel's order: the
    preferred terms, stickiness for the current backend, the degraded
    penalty."""
    total = policy.w_perf * perf + policy.w_cost * cost + policy.w_avail * avail + policy.w_region * region
    if slot.preferences:
        total = total + policy.w_affinity * affinity_term(reg, slot)
    if slot.current_backend is not None and slot.current_backend == reg.backend_id:
        total = total + policy.stickiness
    if policy.degraded_penalty > 0 and status == "degraded":
        total = total - policy.degraded_penalty
    if policy.incident_penalty > 0 and any(
            incident.resolved_at is None
            for incident in (*(reg.health.recent_incidents if reg.health is not None else ()), *reg.recent_incidents)):
        total = total - policy.incident_penalty
    return total


def score(reg: Registration, slot: SlotRequirement, policy: MatchPolicy = DEFAULT_POLICY,
          live: Live = None) -> dict[str, float]:
    """SPEC §4 for ``reg`` (eligibility is not checked): ``score`` and the
    components, and the headroom the performance term used."""
    st = _state(reg, live)
    min_w, min_r = _minimums(slot)
    avail_w = max(0.0, st["max_write_rps"] - st["write_rps"])
    avail_r = max(0.0, st["max_read_rps"] - st["read_rps"])
    perf = performance(st, min_w, min_r, policy)
    c = st["cost_per_1k_writes"]
    cost = 0.0 if c is None else 1.0 / (c + 1.0)
    avail = 0.0 if st["uptime"] is None else st["uptime"] / 100.0
    region = region_term(reg, slot)
    total = total_score(reg, slot, policy, st["status"], perf, cost, avail, region)
    out = {"score": total, "performance": perf, "cost": cost, "availability": avail, "region": region,
           "available_write_rps": avail_w, "available_read_rps": avail_r}
    if slot.preferences:
        out["affinity"] = affinity_term(reg, slot)
    return out


# --- ranking ------------------------------------------------------------------------------

def id_order(backend_id: str) -> bytes:
    """The tie-breaker: ``backend_id`` in UTF-8 byte order."""
    return backend_id.encode("utf-8")


def ranked(regs: Iterable[Registration], slot: SlotRequirement, policy: MatchPolicy = DEFAULT_POLICY,
           live: LiveAll = None) -> list[tuple[str, dict[str, float]]]:
    """Every eligible backend with its score parts, best first (score
    descending, then ``backend_id`` ascending by bytes)."""
    out = [(reg.backend_id, score(reg, slot, policy, _live_of(live, reg.backend_id)))
           for reg in regs if not eligible(reg, slot, policy, _live_of(live, reg.backend_id))]
    out.sort(key=lambda item: (-item[1]["score"], id_order(item[0])))
    return out


def match(regs: Iterable[Registration], slot: SlotRequirement, k: int = 1,
          policy: MatchPolicy = DEFAULT_POLICY, live: LiveAll = None) -> list[tuple[str, float]]:
    """The best ``k`` as (backend_id, score)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    return [(bid, parts["score"]) for bid, parts in ranked(regs, slot, policy, live)[:k]]


def explain_counts(regs: Iterable[Registration], slot: SlotRequirement, policy: MatchPolicy = DEFAULT_POLICY,
                   live: LiveAll = None) -> dict[str, int]:
    """``{code: how many backends the rule rejects}`` (a backend counts under
    every rule it fails); codes that reject nobody are left out."""
    counts: dict[str, int] = {}
    for reg in regs:
        for code in eligible(reg, slot, policy, _live_of(live, reg.backend_id)):
            counts[code] = counts.get(code, 0) + 1
    return counts


def eligible_count(regs: Iterable[Registration], slot: SlotRequirement, policy: MatchPolicy = DEFAULT_POLICY,
                   live: LiveAll = None) -> int:
    return sum(1 for reg in regs if not eligible(reg, slot, policy, _live_of(live, reg.backend_id)))
