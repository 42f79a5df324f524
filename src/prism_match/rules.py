"""The rule table: every eligibility rule, once.

Each row holds a rule's rejection ``code``, its ``bit`` in the kernel's
failed-rule set (``uint32``; ``_rules.pxd`` mirrors the bits for the C
code), how its requirement is shown (``requirement``, for explain's
"3 insufficient_write_capacity(need 10000 rps)"), its did-you-mean ``hint``
for names no backend knows, and the ``reason`` sentence a person reads.
Diagnosis, check_binding, the score table and the CLI read codes and texts
from here only.

The kernel (``_kernel.pxi``) checks the rules in one fused loop: a match
stops at a backend's first failed rule, while explain, ``check_binding`` and
the assign diagnosis collect every failed bit of every backend in one
``nogil`` pass (``failure_bits``). The numpy twin (``score_table.rule_masks``)
and the plain reference (``tests/reference.py``) compute the same sets.

Adding a rule takes four steps, each in one place:

1. the slot field: ``schema.SlotRequirement`` (and the query mapping, if a
   query may say it);
2. its preparation: ``Slot`` in ``_kernel.pxi`` gets the prepared value,
   written by ``CoreRegistry.prepare`` in ``_prepare.pxi`` (and, for
   explain's text, ``slot_details.SlotDetails``);
3. its check: one ``if`` in ``_failed`` (``_kernel.pxi``) that sets the new
   bit, plus its numpy mask in ``score_table.rule_masks``;
4. one row below, with the next free bit, and the bit in ``_rules.pxd``.

``tests/test_rules.py`` holds the table, the C enum, the kernel's bits, the
numpy masks and the reference together for every rule, so a rule missing a
step fails there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .schema import CONSISTENCY_LEVELS, HEALTH_STATUSES
from .units import format_size

if TYPE_CHECKING:
    from .compiled import Columns

__all__ = ["Rule", "RULES", "BY_CODE", "CODES", "codes_of", "RuleScope"]


@dataclass(frozen=True)
class RuleScope:
    """What a requirement text may read: the prepared slot, the columns the
    backends were judged on, the failed-rule bits of the backends in scope
    (``uint32[m]``) and their positions (``int64[m]``)."""

    slot: Any
    columns: Columns
    bits: np.ndarray
    index: np.ndarray

    def rejected_by(self, bit: int) -> np.ndarray:
        """Positions (in the columns) of the backends in scope that ``bit`` rejects."""
        return self.index[(self.bits & bit) != 0]


def _num(value: float) -> str:
    """``10000.0`` → ``10000``; fractions kept; never an exponent for rps."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


def _missing_names(kind: str) -> Callable[[RuleScope], str]:
    def show(scope: RuleScope) -> str:
        # A required name is listed when some backend in scope lacks it (or
        # no backend knows it at all).
        from .compiled import lacks_token

        missing = [req.label for req in scope.slot.requirements if req.kind == kind
                   and (req.bit is None or lacks_token(scope.columns, req.bit, scope.rejected_by(BIT[kind])).any())]
        return ", ".join(missing)
    return show


def _unknown_features(kind: str) -> Callable[[RuleScope], list[str]]:
    def hints(scope: RuleScope) -> list[str]:
        from .vocabulary import split_versioned

        out = []
        for req in scope.slot.requirements:
            if req.kind == kind and req.bit is None:
                guess = scope.columns.features.suggest(split_versioned(req.token)[0])
                text = f"no backend declares {kind} `{req.label}`"
                out.append(f"{text}; did you mean `{guess}`?" if guess else text)
        return out
    return hints


def _unknown_regions(scope: RuleScope) -> list[str]:
    out = []
    for name in scope.slot.unknown_regions:
        guess = scope.columns.regions.suggest(name)
        out.append(f"no backend is in region `{name}`" + (f"; did you mean `{guess}`?" if guess else ""))
    return out


def _unknown_compliance(scope: RuleScope) -> list[str]:
    out = []
    for name in scope.slot.unknown_compliance:
        guess = scope.columns.compliance.suggest(name)
        out.append(f"no backend holds `{name}`" + (f"; did you mean `{guess}`?" if guess else ""))
    return out


def _statuses(scope: RuleScope) -> str:
    seen = {HEALTH_STATUSES[c] for c in scope.columns.health[scope.rejected_by(BIT["health"])]}
    return ", ".join(sorted(seen, key=HEALTH_STATUSES.index))


def _percentiles(scope: RuleScope) -> str:
    slot = scope.slot
    bounds = ((name, getattr(slot, f"max_latency_{name}_ms")) for name in ("p50", "p95", "p999"))
    return ", ".join(f"need {name} <= {bound:g}ms" for name, bound in bounds if bound < float("inf"))


def _batch(scope: RuleScope) -> str:
    size = scope.slot.min_batch_size
    return f"need batches of {_num(size)}" if size > 0 else "need batch support"


def _no_hint(scope: RuleScope) -> list[str]:
    return []


@dataclass(frozen=True)
class Rule:
    """One eligibility rule (SPEC §3; ``namespaces_exhausted`` applies while
    placing)."""

    code: str
    bit: int
    requirement: Callable[[RuleScope], str]
    hint: Callable[[RuleScope], list[str]]
    reason: str


# Bits by rule, for the functions above (filled from RULES below).
BIT: dict[str, int] = {}

# In SPEC §3's order, which is also the order explain lists equal counts in.
RULES: tuple[Rule, ...] = (
    Rule("missing_interface", 1 << 0, _missing_names("interface"), _unknown_features("interface"),
         "Backend does not implement every required interface"),
    Rule("missing_capability", 1 << 1, _missing_names("capability"), _unknown_features("capability"),
         "Backend does not declare every required capability"),
    Rule("insufficient_write_capacity", 1 << 2, lambda s: f"need {_num(s.slot.min_write_rps)} rps", _no_hint,
         "Backend's write capacity is below the slot's min_write_rps"),
    Rule("insufficient_read_capacity", 1 << 3, lambda s: f"need {_num(s.slot.min_read_rps)} rps", _no_hint,
         "Backend's read capacity is below the slot's min_read_rps"),
    Rule("latency_too_high", 1 << 4, lambda s: f"need p99 <= {s.slot.max_latency_ms:g}ms", _no_hint,
         "A relevant capability's p99 latency is above the slot's max_latency_p99"),
    Rule("health_status", 1 << 5, _statuses, _no_hint,
         "Backend's health status is not one the slot accepts"),
    Rule("region", 1 << 6, lambda s: "need one of " + ", ".join(s.slot.requirement.regions or ()),
         _unknown_regions, "Backend serves none of the slot's regions"),
    Rule("compliance", 1 << 7, lambda s: "need " + ", ".join(s.slot.requirement.compliance or ()),
         _unknown_compliance, "Backend does not hold every required compliance tag"),
    Rule("backend_type", 1 << 8, lambda s: "need " + ", ".join(s.slot.requirement.backend_types or ()), _no_hint,
         "Backend's type is not one the slot accepts"),
    Rule("insufficient_storage", 1 << 9, lambda s: f"need {format_size(s.slot.min_storage)}", _no_hint,
         "Backend's storage is below the slot's min_storage"),
    Rule("consistency", 1 << 10, lambda s: f"need {CONSISTENCY_LEVELS[s.slot.max_consistency]} or stronger",
         _no_hint, "Backend's consistency is weaker than the slot requires (or unknown)"),
    Rule("namespaces_exhausted", 1 << 11, lambda s: "no namespace left", _no_hint,
         "Backend has no namespace left for another placement"),
    Rule("insufficient_connections", 1 << 12, lambda s: f"need {_num(s.slot.min_connections)} connections", _no_hint,
         "Backend's connections are below the slot's min_connections (or not declared)"),
    # The group rules (issue 13) apply while placing: assign, bind_pattern, reserve.
    Rule("group_backend_limit", 1 << 13,
         lambda s: f"at most {s.slot.requirement.max_per_backend} of group `{s.slot.requirement.group_name}` "
                   "per backend", _no_hint,
         "Backend already holds max_per_backend slots of the slot's group (anti-affinity)"),
    Rule("group_region_limit", 1 << 14,
         lambda s: f"at most {s.slot.requirement.max_per_region} of group `{s.slot.requirement.group_name}` "
                   "per region", _no_hint,
         "A region the backend serves already holds max_per_region slots of the slot's group"),
    Rule("group_region_skew", 1 << 15,
         lambda s: f"region skew at most {s.slot.requirement.max_skew} for group "
                   f"`{s.slot.requirement.group_name}`", _no_hint,
         "Placing here would spread the slot's group over regions more unevenly than max_skew allows "
         "(or the backend serves no region)"),
    # Per-capability performance (issue 13): over the capabilities the slot
    # requires (every one when it requires none), as latency_too_high reads.
    Rule("latency_percentile_too_high", 1 << 16, _percentiles, _no_hint,
         "A relevant capability's p50, p95 or p999 latency is above the slot's bound "
         "(a latency not stated passes)"),
    Rule("no_batch_support", 1 << 17, _batch, _no_hint,
         "A relevant capability does not state supports_batch: true (or a max_batch_size of at least "
         "min_batch_size); unstated fails"),
    Rule("insufficient_concurrency", 1 << 18,
         lambda s: f"need {_num(s.slot.min_concurrency)} concurrent operations", _no_hint,
         "A relevant capability's max_concurrent_operations is below the slot's min_concurrency; unstated fails"),
    Rule("insufficient_capability_throughput", 1 << 19,
         lambda s: "need " + " / ".join(f"{_num(v)} {kind}" for kind, v in (("write", s.slot.min_write_rps),
                                                                            ("read", s.slot.min_read_rps)) if v > 0)
         + " rps per capability", _no_hint,
         "A relevant capability's own max_write_rps or max_read_rps is below the slot's minimum "
         "(per_capability_throughput; a limit not stated passes)"),
)

BY_CODE: dict[str, Rule] = {rule.code: rule for rule in RULES}
CODES: tuple[str, ...] = tuple(BY_CODE)
BIT.update({"interface": RULES[0].bit, "capability": RULES[1].bit, "health": BY_CODE["health_status"].bit})


def codes_of(bits: int, rules: Sequence[Rule] = RULES) -> list[str]:
    """The codes of the rules set in ``bits``, in table order."""
    return [rule.code for rule in rules if bits & rule.bit]
