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

* connections: like storage, on what is left (``max_connections −
  active − placed``); no declared maximum fails any minimum above 0.

A placement consumes the slot's ``min_write_rps``, ``min_read_rps``,
``min_storage``, ``min_connections`` and one namespace.

Groups (issue 13): a slot belongs to its ``group`` (default: its
``slot_name``); while any slot of a group caps it, every placement of the
group is counted per backend and per region (in every region its backend
serves). A slot then fails ``group_backend_limit`` on a backend holding
``max_per_backend`` of its group, ``group_region_limit`` on a backend serving
a region holding ``max_per_region``, and ``group_region_skew`` when, for a
region of the backend, ``count + 1 − low > max_skew`` where ``low`` is the
fewest placements in a region served by a backend passing every other rule
(a backend serving no region fails it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import reference
from prism_match.policy import DEFAULT_POLICY, MatchPolicy
from prism_match.schema import Registration, SlotRequirement

__all__ = ["Placed", "Plan", "eligible", "score", "assign"]

CAPACITY_CODES = ("insufficient_write_capacity", "insufficient_read_capacity", "insufficient_storage",
                  "insufficient_connections")


@dataclass
class Placed:
    """What the plan has consumed on one backend so far."""

    write_rps: float = 0.0
    read_rps: float = 0.0
    storage: float = 0.0
    namespaces: int = 0
    connections: float = 0.0

    def take(self, slot: SlotRequirement) -> None:
        """One placement of ``slot``: its amounts, one namespace and its
        connections."""
        min_w, min_r, need_s = _needs(slot)
        self.write_rps += min_w
        self.read_rps += min_r
        self.storage += need_s
        self.namespaces += 1
        self.connections += float(slot.min_connections or 0)


@dataclass
class Group:
    """A group's placements so far: per backend_id and per region."""

    per_backend: dict[str, int] = field(default_factory=dict)
    per_region: dict[str, int] = field(default_factory=dict)

    def add(self, reg: Registration) -> None:
        self.per_backend[reg.backend_id] = self.per_backend.get(reg.backend_id, 0) + 1
        for region in set(reg.regions):
            self.per_region[region] = self.per_region.get(region, 0) + 1


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


def group_codes(reg: Registration, slot: SlotRequirement, group: Group, low: float) -> list[str]:
    """The group rules (module docstring)."""
    codes = []
    if slot.max_per_backend is not None and group.per_backend.get(reg.backend_id, 0) >= slot.max_per_backend:
        codes.append("group_backend_limit")
    counts = [group.per_region.get(region, 0) for region in set(reg.regions)]
    if slot.max_per_region is not None and any(c >= slot.max_per_region for c in counts):
        codes.append("group_region_limit")
    if slot.max_skew is not None and (not counts or any(c + 1 - low > slot.max_skew for c in counts)):
        codes.append("group_region_skew")
    return codes


def domain_low(regs: list[Registration], slot: SlotRequirement, plan: Plan, policy: MatchPolicy,
               group: Group) -> float:
    """The fewest group placements in a region served by a backend that
    passes every rule but the group's."""
    regions = {region for reg in regs if not eligible(reg, slot, plan.placed[reg.backend_id], policy)
               for region in reg.regions}
    return float(min((group.per_region.get(r, 0) for r in regions), default=0))


def eligible(reg: Registration, slot: SlotRequirement, placed: Placed,
             policy: MatchPolicy = DEFAULT_POLICY, group: Group | None = None, low: float = 0.0,
             bind_only: bool = False) -> list[str]:
    """The rejection codes ``reg`` fails for ``slot`` given what is placed
    (and its group's placements). ``bind_only``: a pattern's binding, which
    consumes nothing: the rules of a match, and the group's."""
    if bind_only:
        codes = reference.eligible(reg, slot, policy)
        return codes + (group_codes(reg, slot, group, low) if group is not None else [])
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
    need_c = float(slot.min_connections or 0)
    if need_c > 0:
        cap, cur = reg.capacity, reg.current
        max_c = _number(cap and cap.max_connections, None)
        if max_c is None or not max(0.0, (max_c - _number(cur and cur.active_connections, 0.0))
                                    - placed.connections) >= need_c:
            codes.append("insufficient_connections")
    if group is not None:
        codes += group_codes(reg, slot, group, low)
    order = {code: j for j, code in enumerate(ALL_CODES)}
    return sorted(codes, key=order.__getitem__)


_SPEC = reference.CODES.index("insufficient_connections")  # the codes before it are SPEC §3's
ALL_CODES = (*reference.CODES[:_SPEC], "namespaces_exhausted", "insufficient_connections", "group_backend_limit",
             "group_region_limit", "group_region_skew", *reference.CODES[_SPEC + 1:])


def score(reg: Registration, slot: SlotRequirement, placed: Placed, policy: MatchPolicy = DEFAULT_POLICY) -> float:
    """SPEC §4 with the headroom left before this slot (binpack: the
    fullness once it is placed)."""
    min_w, min_r, _ = _needs(slot)
    st = reference._state(reg, None)
    perf = reference.performance(st, min_w, min_r, policy, placed.write_rps, placed.read_rps)
    parts = reference.score(reg, slot, policy)  # cost, availability and region do not depend on placement
    return reference.total_score(reg, slot, policy, st["status"], perf, parts["cost"], parts["availability"],
                                 parts["region"])


def assign(regs: list[Registration], slots: list[SlotRequirement], policy: MatchPolicy = DEFAULT_POLICY,
           bind_only: bool = False) -> Plan:
    """Place ``slots`` in order (see the module docstring); ``bind_only``:
    bind a pattern's slots (nothing consumed, the group rules apply)."""
    plan = Plan(placed={reg.backend_id: Placed() for reg in regs})
    capped = {slot.group_name for slot in slots if slot.grouped}
    groups = {name: Group() for name in capped}
    by_id = {reg.backend_id: reg for reg in regs}
    for slot in slots:
        group = groups.get(slot.group_name)
        low = domain_low(regs, slot, plan, policy, group) if group is not None and slot.max_skew is not None \
            else 0.0
        if bind_only and group is not None and slot.max_skew is not None:
            regions = {region for reg in regs if not reference.eligible(reg, slot, policy) for region in reg.regions}
            low = float(min((group.per_region.get(r, 0) for r in regions), default=0))
        candidates = []
        rejected: dict[str, int] = {}
        for reg in regs:
            empty = Placed() if bind_only else plan.placed[reg.backend_id]
            codes = eligible(reg, slot, empty, policy, group, low, bind_only)
            for code in codes:
                rejected[code] = rejected.get(code, 0) + 1
            if not codes:
                candidates.append((score(reg, slot, empty, policy), reg.backend_id))
        if not candidates:
            plan.unplaced.append((slot.slot_name, rejected))
            continue
        best_score, best = min(candidates, key=lambda c: (-c[0], reference.id_order(c[1])))
        plan.placed[best].take(slot)
        if group is not None:
            group.add(by_id[best])
        plan.bindings.append((slot.slot_name, best, best_score))
    return plan
