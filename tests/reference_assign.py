"""The plain reference twin of ``Registry.assign`` (SPEC §6), the tests' oracle.

Sequential greedy in plain Python over the validated Structs: slots in the
given order, each placed on its best eligible backend given what earlier
placements consumed; nothing compiled, no masks. Rules 1, 2, 5, 6, 7 and 9
come from ``tests/reference.py``; rules 3, 4 and 8 are re-stated here on
*what is left* and the namespace rule is added:

* left write  = max(0, (max_write_rps − current write_rps) − placed write so
  far) (the SPEC's left-to-right order, so equal inputs give equal bits;
  an overloaded backend has nothing left, not a negative amount, SPEC §1),
  and the slot needs ``left ≥ min_write_rps``; read likewise;
* storage: a backend without ``max_storage`` fails any ``min_storage > 0``;
  with one, it needs ``left ≥ min_storage``;
* namespaces: with ``max_namespaces``, ``max − namespace_count − placed ≥ 1``
  [``namespaces_exhausted``];
* the score's ``avail_w``/``avail_r`` are the write/read left before the slot.

A placement consumes the slot's ``min_write_rps``, ``min_read_rps``,
``min_storage`` and one namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import reference
from prism_match.policy import DEFAULT_POLICY, MatchPolicy
from prism_match.schema import Registration, SlotRequirement

__all__ = ["Placed", "Plan", "eligible", "score", "assign"]

CAPACITY_CODES = ("insufficient_write_capacity", "insufficient_read_capacity", "insufficient_storage")


@dataclass
class Placed:
    """What the plan has consumed on one backend so far."""

    write_rps: float = 0.0
    read_rps: float = 0.0
    storage: float = 0.0
    namespaces: int = 0


@dataclass
class Plan:
    bindings: list[tuple[str, str, float]] = field(default_factory=list)   # (slot, backend, score)
    unplaced: list[tuple[str, dict[str, int]]] = field(default_factory=list)  # (slot, rejections at its turn)
    placed: dict[str, Placed] = field(default_factory=dict)


def _number(value: float | None, missing: float | None) -> float | None:
    return missing if value is None else float(value)


def _left(reg: Registration, placed: Placed) -> tuple[float, float, float | None, float | None]:
    """(write, read, storage, namespaces) left; None: no limit declared."""
    cap, cur = reg.capacity, reg.current
    max_w = _number(cap and cap.max_write_rps, 0.0)
    max_r = _number(cap and cap.max_read_rps, 0.0)
    max_s = _number(cap and cap.max_storage, None)
    max_ns = _number(cap and cap.max_namespaces, None)
    cur_w = _number(cur and cur.write_rps, 0.0)
    cur_r = _number(cur and cur.read_rps, 0.0)
    cur_s = _number(cur and cur.storage_used, 0.0)
    cur_ns = _number(cur and cur.namespace_count, 0.0)
    # Clamped at 0: an overloaded backend has no headroom, not a negative one
    # (SPEC §1), so it still takes a slot that needs nothing of it.
    return (max(0.0, (max_w - cur_w) - placed.write_rps),
            max(0.0, (max_r - cur_r) - placed.read_rps),
            None if max_s is None else max(0.0, (max_s - cur_s) - placed.storage),
            None if max_ns is None else (max_ns - cur_ns) - placed.namespaces)


def _needs(slot: SlotRequirement) -> tuple[float, float, float]:
    perf = slot.performance
    min_w = float(perf.min_write_rps) if perf is not None else 0.0
    min_r = float(perf.min_read_rps) if perf is not None else 0.0
    if slot.min_storage is not None:
        need_s = float(slot.min_storage)
    elif perf is not None and perf.min_storage is not None:
        need_s = float(perf.min_storage)
    else:
        need_s = 0.0
    return min_w, min_r, need_s


def eligible(reg: Registration, slot: SlotRequirement, placed: Placed,
             policy: MatchPolicy = DEFAULT_POLICY) -> list[str]:
    """The rejection codes ``reg`` fails for ``slot`` given what is placed."""
    codes = [c for c in reference.eligible(reg, slot, policy) if c not in CAPACITY_CODES]
    min_w, min_r, need_s = _needs(slot)
    left_w, left_r, left_s, left_ns = _left(reg, placed)
    if not left_w >= min_w:
        codes.append("insufficient_write_capacity")
    if not left_r >= min_r:
        codes.append("insufficient_read_capacity")
    if left_s is None:
        if need_s > 0:
            codes.append("insufficient_storage")
    elif not left_s >= need_s:
        codes.append("insufficient_storage")
    if left_ns is not None and not left_ns >= 1:
        codes.append("namespaces_exhausted")
    return codes


def score(reg: Registration, slot: SlotRequirement, placed: Placed, policy: MatchPolicy = DEFAULT_POLICY) -> float:
    """SPEC §4 with the headroom left before this slot."""
    min_w, min_r, _ = _needs(slot)
    left_w, left_r, _, _ = _left(reg, placed)
    cap = float(policy.perf_cap)
    ratio_w = left_w / min_w if min_w > 0 else cap
    ratio_r = left_r / min_r if min_r > 0 else cap
    perf = min(ratio_w, ratio_r, cap)
    parts = reference.score(reg, slot, policy)  # cost, availability and region do not depend on placement
    return (policy.w_perf * perf + policy.w_cost * parts["cost"] + policy.w_avail * parts["availability"]
            + policy.w_region * parts["region"])


def assign(regs: list[Registration], slots: list[SlotRequirement], policy: MatchPolicy = DEFAULT_POLICY) -> Plan:
    """Place ``slots`` in order (see the module docstring)."""
    plan = Plan(placed={reg.backend_id: Placed() for reg in regs})
    for slot in slots:
        candidates = []
        rejected: dict[str, int] = {}
        for reg in regs:
            codes = eligible(reg, slot, plan.placed[reg.backend_id], policy)
            for code in codes:
                rejected[code] = rejected.get(code, 0) + 1
            if not codes:
                candidates.append((score(reg, slot, plan.placed[reg.backend_id], policy), reg.backend_id))
        if not candidates:
            plan.unplaced.append((slot.slot_name, rejected))
            continue
        best_score, best = min(candidates, key=lambda c: (-c[0], reference.id_order(c[1])))
        min_w, min_r, need_s = _needs(slot)
        taken = plan.placed[best]
        taken.write_rps += min_w
        taken.read_rps += min_r
        taken.storage += need_s
        taken.namespaces += 1
        plan.bindings.append((slot.slot_name, best, best_score))
    return plan
