"""Reasons: why a matched backend was chosen, in the seed's wording.

Built on first read of ``Match.reasons`` (the hot path formats no string):
the core calls the function the registry passed it, which is
``build_reasons`` bound to the registration lookup and the columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .results import Match, Reason
from .schema import Registration
from .units import format_rate

if TYPE_CHECKING:
    from .compiled import Columns
    from .slot_details import PreparedSlot

__all__ = ["build_reasons", "applicable_reasons"]

# A reason applies when its term earned points (the page's response lists
# `[capability_match, region_affinity]` for a backend whose performance did
# not count): the Match attribute holding each scored term.
_TERM_OF = {"performance": "performance", "cost": "cost", "availability": "availability",
            "region_affinity": "region"}


def _names(items: list[str]) -> str:
    return ", ".join(items)


def build_reasons(registration: Callable[[str], Registration], columns: Columns, match: Match) -> list[Reason]:
    """The seed's reasons for ``match``: capability_match, performance, cost,
    availability, region_affinity, and consistency/compliance when asked for.
    A component that scored 0 for missing data says so. ``registration``
    gives a backend's registration by id."""
    slot: PreparedSlot = match.slot
    reg = registration(match.backend_id)
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
    if match.availability == 0 and columns.uptime_percent_24h[match.index] != \
            columns.uptime_percent_24h[match.index]:
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


def applicable_reasons(match: Match) -> list[Reason]:
    """``match.reasons`` less those that do not apply, as the page's
    response lists them: a score term that scored 0 (no capacity, no price,
    no uptime, not the preferred region) and a capability match when the
    slot required nothing. Consistency and compliance reasons appear only
    when the slot asked for them, and then apply."""
    slot = match.slot
    out = []
    for reason in match.reasons:
        term = _TERM_OF.get(reason.type)
        if term is not None and not getattr(match, term) > 0:
            continue
        if reason.type == "capability_match" and not slot.requirements:
            continue
        out.append(reason)
    return out
