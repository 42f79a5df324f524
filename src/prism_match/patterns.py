"""Patterns: bind each named slot of a pattern, or check an explicit binding.

A pattern (the seed's ``pattern: multicast-registry`` with ``slots:``) is a
set of slot requirements; binding chooses the best backend for each slot
independently (slots may share a backend). Optional slots stay unbound when
nothing fits; a required one that cannot be bound is an error carrying its
diagnosis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from .diagnosis import diagnose, explain
from .engine import Engine
from .errors import RegistryError
from .loading import validate_documents
from .reasons import applicable_reasons
from .results import Diagnosis
from .rules import BY_CODE, RULES
from .schema import Pattern

__all__ = ["PatternBinding", "BindingProblem", "slot_binding_documents", "coerce_pattern", "bind_pattern", "check_binding"]


class PatternBinding(msgspec.Struct, frozen=True):
    """``bindings`` maps every slot to its Match, or None when an optional
    slot stayed unbound; ``diagnoses`` says why for the unbound ones."""

    pattern: str
    bindings: dict[str, Any]
    diagnoses: dict[str, Diagnosis]
    pattern_id: str | None = None

    def backend_ids(self) -> dict[str, str | None]:
        return {slot: (m.backend_id if m is not None else None) for slot, m in self.bindings.items()}

    def slot_bindings(self, *, all_reasons: bool = False) -> list[dict[str, Any]]:
        """The page's ``slot_binding`` form, one per bound slot: pattern_id,
        slot_name, backend_id and the reasons that apply (``all_reasons``:
        every reason, those that scored 0 included)."""
        return slot_binding_documents(self.pattern_id, list(self.bindings.items()), all_reasons=all_reasons)


def slot_binding_documents(pattern_id: str | None, matches: list[tuple[str, Any]], *,
                           all_reasons: bool = False) -> list[dict[str, Any]]:
    """``[{"slot_binding": {pattern_id, slot_name, backend_id, reasons}}]``
    for each (slot name, Match) pair whose Match is not None, in the page's
    "Match Reasons" shape."""
    out = []
    for slot_name, match in matches:
        if match is None:
            continue
        reasons = match.reasons if all_reasons else applicable_reasons(match)
        out.append({"slot_binding": {"pattern_id": pattern_id, "slot_name": slot_name,
                                     "backend_id": match.backend_id,
                                     "reasons": [r.as_dict() for r in reasons]}})
    return out


class BindingProblem(msgspec.Struct, frozen=True):
    """One rule an explicitly bound backend fails, with what was required."""

    code: str
    detail: str

    @property
    def reason(self) -> str:
        """The rule's sentence from the rule table."""
        return BY_CODE[self.code].reason


def coerce_pattern(pattern: Any) -> Pattern:
    """A pattern mapping (or Pattern) → a validated Pattern."""
    if isinstance(pattern, Pattern):
        return pattern
    if not isinstance(pattern, Mapping):
        raise RegistryError(f"Expected a pattern mapping, got `{type(pattern).__name__}`", "pattern")
    name = pattern.get("pattern")
    where = f"pattern `{str(name)[:60]}`" if isinstance(name, str) else "pattern"
    [(_, value)] = validate_documents([(where, "$", pattern)], Pattern)
    return value


def bind_pattern(engine: Engine, pattern: Any) -> PatternBinding:
    """The best backend for each slot of ``pattern`` (a mapping or Pattern),
    each slot choosing independently. An optional slot nothing fits stays
    unbound (None) with its diagnosis; a required one is a RegistryError
    carrying the diagnosis (all such slots reported together)."""
    pat = coerce_pattern(pattern)
    bindings: dict[str, Any] = {}
    diagnoses: dict[str, Diagnosis] = {}
    failures: list[tuple[str, str]] = []
    prepared = {slot_name: engine.prepare(spec.to_slot(slot_name, pat)) for slot_name, spec in pat.slots.items()}
    if any(p.requirement.grouped for p in prepared.values()):
        found_all = _bind_grouped(engine, list(prepared.values()))
    else:
        found_all = {name: engine.core.topk(p, engine.core_policy, 1) for name, p in prepared.items()}
    for slot_name, spec in pat.slots.items():
        found = found_all[slot_name]
        bindings[slot_name] = found[0] if found else None
        if not found:
            diagnoses[slot_name] = found_all.get(("diagnosis", slot_name)) or explain(engine, prepared[slot_name])
            if not spec.optional:
                failures.append((f"pattern `{pat.pattern}` slot `{slot_name}`",
                                 f"No backend can be bound: {diagnoses[slot_name]}"))
    if failures:
        raise RegistryError(failures)
    return PatternBinding(pat.pattern, bindings, diagnoses, pat.pattern_id)


def _bind_grouped(engine: Engine, prepared: list) -> dict:
    """Bind slots under their group rules (anti-affinity, spread): in the
    pattern's order, each on its best backend given where the earlier slots
    of its group went. Nothing is consumed (a binding, not a placement).
    Returns ``{slot_name: [Match] or []}`` and, for an unbound slot,
    ``{("diagnosis", slot_name): Diagnosis}`` against its group's state then."""
    from . import _core
    from .placement import GroupCounts

    columns = engine.columns
    m, n = len(prepared), max(columns.n, 1)
    snap = _core.LiveSnapshot(engine.core)
    groups = GroupCounts(columns, prepared)
    chosen = np.full(m, -1, dtype=np.int64)
    scratch = [np.zeros(n) for _ in range(4)]
    out: dict[Any, Any] = {}
    start = 0
    while start < m:
        if columns.live:
            start = _core.assign_run(snap, prepared, engine.core_policy, start, *scratch, chosen, np.zeros(m),
                                     np.zeros(m), np.zeros(m), None, bind_only=True, **groups.kernel_args())
        if start < m:
            slot = prepared[start]
            bits, counts, eligible = snap.failure_bits(slot, engine.core_policy, None,
                                                       groups.before(columns, chosen, start))
            out[("diagnosis", slot.slot_name)] = diagnose(slot, columns, bits, counts, int(eligible))
            start += 1
    for j, slot in enumerate(prepared):
        out[slot.slot_name] = [engine.core.match_at(slot, engine.core_policy, int(chosen[j]))] if chosen[j] >= 0 \
            else []
    return out


def check_binding(engine: Engine, pattern: Any, binding: Mapping[str, str]) -> dict[str, list[BindingProblem]]:
    """For each bound slot of ``pattern``: what its backend lacks, one
    BindingProblem per failed rule with what was required (empty list: the
    binding is valid). Unknown slots or backends and unbound required slots
    are RegistryErrors. Group caps are not checked here: they bound how a
    group's slots spread, not what one backend offers."""
    pat = coerce_pattern(pattern)
    if not isinstance(binding, Mapping):
        raise RegistryError(f"Expected a mapping of slot name to backend_id, got `{type(binding).__name__}`",
                            "binding")
    errors = []
    for slot_name in binding:
        if slot_name not in pat.slots:
            errors.append((f"binding `{str(slot_name)[:60]}`",
                           f"Pattern `{pat.pattern}` has no slot `{str(slot_name)[:60]}`"))
    for slot_name, spec in pat.slots.items():
        bid = binding.get(slot_name)
        if bid is None:
            if not spec.optional:
                errors.append((f"binding `{slot_name}`", "Required slot is not bound"))
        elif not isinstance(bid, str):
            errors.append((f"binding `{slot_name}`", f"Expected a backend_id, got `{type(bid).__name__}`"))
        elif bid not in engine.core.index:
            errors.append((f"binding `{slot_name}`", f"Unknown backend `{bid[:60]}`"))
    if errors:
        raise RegistryError(errors)
    out: dict[str, list[BindingProblem]] = {}
    for slot_name, spec in pat.slots.items():
        bid = binding.get(slot_name)
        if bid is None:
            continue
        prepared = engine.prepare(spec.to_slot(slot_name, pat))
        i = engine.core.index[bid]
        failed = engine.core.failed_at(prepared, engine.core_policy, i)
        mine = np.array([failed], dtype=np.uint32)
        counts = np.array([(failed >> b) & 1 for b in range(len(RULES))], dtype=np.int64)
        # The details are worked out against this backend alone (what *it*
        # lacks), not against the whole registry.
        diag = diagnose(prepared, engine.columns, mine, counts, 0, index=np.array([i]))
        out[slot_name] = [BindingProblem(code, diag.details.get(code, "")) for code in diag.rejected]
    return out
