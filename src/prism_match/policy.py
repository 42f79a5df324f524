"""MatchPolicy: the score's weights and cap, the capacity basis, the default
health statuses. SPEC §4's numbers are the defaults; a bad policy fails when
it is built, never during a match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from ._core import CorePolicy
from .errors import RegistryError
from .schema import HEALTH_STATUSES

__all__ = ["MatchPolicy", "DEFAULT_POLICY", "MAX_WEIGHT"]

# Weights and the performance cap are bounded so that no score can overflow to inf
# (score <= 4 * MAX_WEIGHT**2 when every factor is at most MAX_WEIGHT).
MAX_WEIGHT = 1e6


class MatchPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """``score = w_perf*perf + w_cost*cost + w_avail*avail + w_region*region``.

    ``capacity_basis="max"`` compares a slot's minimum rps and storage with the
    backend's maximum (the seed's algorithm); ``"available"`` with
    ``max - current``. ``health_statuses`` apply when a slot names none.

    Placement strategies (issue 13; each default leaves every answer as SPEC §4 says):

    * ``strategy``: ``"spread"`` (the default) scores headroom,
      ``perf = min(left_w / min_w, left_r / min_r, perf_cap)``; ``"binpack"``
      prefers the backend that will be fullest once the slot is placed
      (Kubernetes' MostAllocated, Nomad's binpack):
      ``perf = perf_cap * (fw + fr) / 2`` with
      ``fw = min(1, (used_w + placed_w + min_w) / max_w)`` (0 when the backend
      declares no write capacity) and ``fr`` likewise for reads.
    * ``w_affinity``: the weight of a slot's ``preferences`` (met weights over
      all weights, in [0, 1]); added only for slots that state preferences.
    * ``degraded_penalty``: subtracted from the score of a ``degraded`` backend;
      ``incident_penalty``: from one with an open incident (no ``resolved_at``,
      in its registration or from the health tracker).
    * ``stickiness``: added to the score of a slot's ``current_backend``, so
      another backend must beat it by more than this margin to move the slot.

    ``score = w_perf*perf + w_cost*cost + w_avail*avail + w_region*region
    [+ w_affinity*affinity] [+ stickiness] [- degraded_penalty] [- incident_penalty]``,
    left to right.
    """

    w_perf: float = 0.4
    w_cost: float = 0.3
    w_avail: float = 0.2
    w_region: float = 0.1
    perf_cap: float = 2.0
    capacity_basis: Literal["max", "available"] = "max"
    health_statuses: tuple[str, ...] = ("healthy", "degraded", "unknown")
    strategy: Literal["spread", "binpack"] = "spread"
    w_affinity: float = 0.1
    degraded_penalty: float = 0.0
    stickiness: float = 0.0
    incident_penalty: float = 0.0

    def __post_init__(self) -> None:
        errors = []
        for name in ("w_perf", "w_cost", "w_avail", "w_region", "perf_cap", "w_affinity", "degraded_penalty",
                     "stickiness", "incident_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_WEIGHT:
                errors.append((f"policy $.{name}", f"Expected a number in [0, {MAX_WEIGHT:,.0f}], got `{value!r}`"[:120]))
        if not errors and self.perf_cap <= 0:
            errors.append(("policy $.perf_cap", f"Expected a number > 0, got `{self.perf_cap}`"))
        if self.capacity_basis not in ("max", "available"):
            errors.append(("policy $.capacity_basis",
                           f"Expected one of `max`, `available`, got `{str(self.capacity_basis)[:40]}`"))
        if self.strategy not in ("spread", "binpack"):
            errors.append(("policy $.strategy",
                           f"Expected one of `spread`, `binpack`, got `{str(self.strategy)[:40]}`"))
        if isinstance(self.health_statuses, str) or not isinstance(self.health_statuses, Sequence):
            errors.append(("policy $.health_statuses", "Expected a list of health statuses"))
        else:
            for i, status in enumerate(self.health_statuses):
                if status not in HEALTH_STATUSES:
                    errors.append((f"policy $.health_statuses[{i}]",
                                   f"Expected one of {', '.join(f'`{s}`' for s in HEALTH_STATUSES)}, "
                                   f"got `{str(status)[:40]}`"))
        if errors:
            raise RegistryError(errors)
        msgspec.structs.force_setattr(self, "health_statuses", tuple(self.health_statuses))

    def core(self) -> CorePolicy:
        return CorePolicy(float(self.w_perf), float(self.w_cost), float(self.w_avail), float(self.w_region),
                          float(self.perf_cap), self.capacity_basis == "available", self.strategy == "binpack",
                          float(self.w_affinity), float(self.degraded_penalty), float(self.stickiness),
                          float(self.incident_penalty))


DEFAULT_POLICY = MatchPolicy()
