"""Diagnosis: how many backends each rule rejected, and what was required.

The kernel's diagnosis pass (``failure_bits``) gives every backend's failed
rules as bits of the rule table (rules.py) and the count per rule; this
module turns them into a ``Diagnosis`` with each rule's requirement text and
did-you-mean hints, all read from the table. ``explain`` serves
``Registry.explain``, ``check_binding`` and the CLI; ``diagnose`` also serves
the assign diagnosis (against the placed state of the slot's turn).
"""

from __future__ import annotations

import numpy as np

from .compiled import Columns
from .engine import Engine
from .results import Diagnosis
from .rules import RULES, RuleScope
from .slot_details import PreparedSlot

__all__ = ["explain", "diagnose", "failed_rules"]


def diagnose(slot: PreparedSlot, columns: Columns, bits: np.ndarray, counts: np.ndarray, eligible: int,
             index: np.ndarray | None = None) -> Diagnosis:
    """A Diagnosis from the failed-rule ``bits`` (uint32, one per backend in
    ``index``: every position when None) and ``counts`` (backends per rule
    bit, int64[N_RULES])."""
    if index is None:
        index = np.arange(len(bits))
    scope = RuleScope(slot, columns, bits, index)
    rejected: dict[str, int] = {}
    details: dict[str, str] = {}
    hints: list[str] = []
    for position, rule in enumerate(RULES):
        count = int(counts[position])
        if not count:
            continue
        rejected[rule.code] = count
        details[rule.code] = rule.requirement(scope)
        hints += rule.hint(scope)
    return Diagnosis(slot_name=slot.slot_name, eligible=eligible, total=columns.live, rejected=rejected,
                     details=details, hints=hints)


def explain(engine: Engine, slot: PreparedSlot) -> Diagnosis:
    """The slot's diagnosis against the whole live registry."""
    bits, counts, eligible = engine.core.failure_bits(slot, engine.core_policy)
    return diagnose(slot, engine.columns, bits, counts, int(eligible))


def failed_rules(bits: int) -> list[tuple[int, str]]:
    """(bit, code) of each rule set in ``bits``, in table order."""
    return [(rule.bit, rule.code) for rule in RULES if bits & rule.bit]
