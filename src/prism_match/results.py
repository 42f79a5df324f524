"""What a match, a query, an explanation and a placement return.

``Match`` itself is a compiled class (``_core.Match``): the hot path creates
it without building a string; its ``reasons`` are made here, on first read,
in the seed's wording. ``Diagnosis`` counts rejections per rule in the
manner of the Kubernetes scheduler's "0/5 nodes are available" message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ._core import Match
from .compiled import has_bit
from .schema import CONSISTENCY_LEVELS, HEALTH_STATUSES
from .units import format_rate, format_size
from .vocabulary import split_versioned

if TYPE_CHECKING:
    from .prepare import PreparedSlot
    from .registry import Registry

__all__ = ["Match", "Reason", "Diagnosis", "QueryResult", "build_reasons", "diagnose"]


class Reason(msgspec.Struct, frozen=True):
    """One line of "why this backend": ``type`` is the seed's reason type."""

    type: str
    explanation: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "explanation": self.explanation}


def _names(items: list[str]) -> str:
    return ", ".join(items)


def build_reasons(registry: Registry, match: Match) -> list[Reason]:
    """The seed's reasons for ``match``: capability_match, performance, cost,
    availability, region_affinity, and consistency/compliance when asked for.
    A component that scored 0 for missing data says so."""
    slot: PreparedSlot = match.slot
    reg = registry[match.backend_id]
    reasons: list[Reason] = []
    ifcs = [r.label for r in slot.requirements if r.kind == "interface"]
    caps = [r.label for r in slot.requirements if r.kind == "capability"]
    if ifcs or caps:
        parts = []
        if ifcs:
            parts.append(f"implements {_names(ifcs)}")
        if caps:
            parts.append(f"declares {_names(caps)}")
        text = f"Backend {' and '.join(parts)} required by slot `{slot.slot_name}`"
    else:
        text = f"Slot `{slot.slot_name}` requires no capability or interface"
    reasons.append(Reason("capability_match", text))

    if reg.capacity is None or (reg.capacity.max_write_rps is None and reg.capacity.max_read_rps is None):
        # A backend without capacity is eligible only for a slot with no rps
        # minimum, where SPEC §4 sets each ratio to the cap: say so, not "0".
        if match.performance == 0:
            reasons.append(Reason("performance", "Backend declares no capacity: performance scored 0"))
        else:
            reasons.append(Reason("performance", f"Backend declares no capacity and slot `{slot.slot_name}` "
                                                 f"sets no rps minimum; performance {match.performance:.2f}"))
    else:
        w = f"Backend provides {format_rate(match.available_write_rps)} write RPS"
        w += f" (required: {format_rate(slot.min_write_rps)})" if slot.min_write_rps > 0 else " (no minimum)"
        r = f"{format_rate(match.available_read_rps)} read RPS"
        r += f" (required: {format_rate(slot.min_read_rps)})" if slot.min_read_rps > 0 else " (no minimum)"
        reasons.append(Reason("performance", f"{w} and {r}; performance {match.performance:.2f}"))

    if reg.cost is None or reg.cost.cost_per_1k_writes is None:
        reasons.append(Reason("cost", "Backend declares no cost_per_1k_writes: cost scored 0"))
    else:
        reasons.append(Reason("cost", f"Backend costs ${reg.cost.cost_per_1k_writes:g} per 1k writes; "
                                      f"cost {match.cost:.3f}"))

    # The uptime the match was scored with (a later update does not rewrite
    # an earlier answer); NaN in the column means it was never reported.
    if match.availability == 0 and registry.columns.uptime_percent_24h[match.index] != \
            registry.columns.uptime_percent_24h[match.index]:
        reasons.append(Reason("availability", "Backend reports no uptime: availability scored 0"))
    else:
        reasons.append(Reason("availability", f"Backend uptime {match.availability * 100:.4g}% over 24h"))

    preferred = slot.requirement.preferred_region
    if preferred is None:
        reasons.append(Reason("region_affinity", "No preferred region given: region scored 0"))
    elif match.region:
        reasons.append(Reason("region_affinity", f"Backend in same region ({preferred}) as requester"))
    else:
        where = _names(reg.regions) if reg.regions else "no regions declared"
        reasons.append(Reason("region_affinity", f"Backend not in preferred region {preferred} ({where})"))

    wanted = slot.requirement.consistency
    if wanted is not None:
        reasons.append(Reason("consistency", f"Backend offers {reg.consistency} consistency "
                                             f"(required: at least {wanted})"))
    if slot.requirement.compliance:
        reasons.append(Reason("compliance", f"Backend holds {_names(slot.requirement.compliance)} "
                                            f"(has: {_names(sorted(reg.compliance))})"))
    return reasons


class Diagnosis(msgspec.Struct, frozen=True):
    """Why a slot has the matches it has: ``eligible`` of ``total`` backends,
    ``rejected`` maps each rejection code to how many backends it rejected (a
    backend counts under every rule it fails); ``details`` say what was
    required, ``hints`` are did-you-mean suggestions."""

    slot_name: str
    eligible: int
    total: int
    rejected: dict[str, int]
    details: dict[str, str] = {}
    hints: list[str] = []

    def __str__(self) -> str:
        head = f"{self.eligible}/{self.total} backends eligible"
        items = sorted(self.rejected.items(), key=lambda kv: -kv[1])
        parts = [f"{count} {code}({self.details[code]})" if self.details.get(code) else f"{count} {code}"
                 for code, count in items]
        text = f"{head}: {', '.join(parts)}" if parts else head
        if self.hints:
            text += ". " + "; ".join(self.hints)
        return text

    def as_dict(self) -> dict:
        return {"slot_name": self.slot_name, "eligible": self.eligible, "total": self.total,
                "rejected": dict(self.rejected), "details": dict(self.details), "hints": list(self.hints),
                "text": str(self)}


def _num(value: float) -> str:
    """``10000.0`` → ``10000``; fractions kept; never an exponent for rps."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


def diagnose(registry: Registry, slot: PreparedSlot, masks: Mapping, eligible: int,
             columns: Any = None) -> Diagnosis:
    """Counts per rule from ``vectorized.rule_masks``, with what was required.
    ``columns`` overrides the registry's (a snapshot with placed usage)."""
    cols = registry.columns if columns is None else columns
    rejected: dict[str, int] = {}
    details: dict[str, str] = {}
    for code, mask in masks.items():
        count = int(mask.sum())
        if count:
            rejected[code] = count
    hints: list[str] = []
    for kind, code in (("interface", "missing_interface"), ("capability", "missing_capability")):
        if code not in rejected:
            continue
        missing = []
        for req in (r for r in slot.requirements if r.kind == kind):
            if req.bit is None:
                missing.append(req.label)
                guess = cols.features.suggest(split_versioned(req.token)[0])
                hint = f"no backend declares {kind} `{req.label}`"
                hints.append(f"{hint}; did you mean `{guess}`?" if guess else hint)
            elif not has_bit(cols.feature_rows, req.bit).all():
                missing.append(req.label)
        details[code] = ", ".join(missing)
    if "insufficient_write_capacity" in rejected:
        details["insufficient_write_capacity"] = f"need {_num(slot.min_write_rps)} rps"
    if "insufficient_read_capacity" in rejected:
        details["insufficient_read_capacity"] = f"need {_num(slot.min_read_rps)} rps"
    if "insufficient_storage" in rejected:
        details["insufficient_storage"] = f"need {format_size(slot.min_storage)}"
    if "latency_too_high" in rejected:
        details["latency_too_high"] = f"need p99 <= {slot.max_latency_ms:g}ms"
    if "health_status" in rejected:
        mask = masks["health_status"]
        seen = sorted({HEALTH_STATUSES[c] for c in cols.health[mask]}, key=HEALTH_STATUSES.index)
        details["health_status"] = ", ".join(seen)
    if "region" in rejected:
        details["region"] = "need one of " + ", ".join(slot.requirement.regions or ())
        for name in slot.unknown_regions:
            guess = cols.regions.suggest(name)
            hints.append(f"no backend is in region `{name}`" + (f"; did you mean `{guess}`?" if guess else ""))
    if "compliance" in rejected:
        details["compliance"] = "need " + ", ".join(slot.requirement.compliance or ())
        for name in slot.unknown_compliance:
            guess = cols.compliance.suggest(name)
            hints.append(f"no backend holds `{name}`" + (f"; did you mean `{guess}`?" if guess else ""))
    if "backend_type" in rejected:
        details["backend_type"] = "need " + ", ".join(slot.requirement.backend_types or ())
    if "consistency" in rejected:
        details["consistency"] = f"need {CONSISTENCY_LEVELS[slot.max_consistency]} or stronger"
    if "namespaces_exhausted" in rejected:
        details["namespaces_exhausted"] = "no namespace left"
    return Diagnosis(slot_name=slot.slot_name, eligible=eligible, total=cols.n, rejected=rejected,
                     details=details, hints=hints)


class QueryResult(msgspec.Struct, frozen=True):
    """The seed's query response: ``backends`` best first and ``total_count``."""

    backends: list
    total_count: int

    def as_dict(self, *, reasons: bool = True) -> dict:
        return {"backends": [m.as_dict(reasons=reasons) for m in self.backends], "total_count": self.total_count}
