"""What a match, a query and an explanation return: values, no algorithm.

``Match`` itself is a compiled class (``_core.Match``): the hot path creates
it without building a string; its ``reasons`` (``Reason``) are made by
reasons.py on first read, in the seed's wording. ``Diagnosis`` (made by
diagnosis.py) counts rejections per rule in the manner of the Kubernetes
scheduler's "0/5 nodes are available" message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ._core import Match
from .schema import SlotRequirement

__all__ = ["Match", "Reason", "Diagnosis", "QueryResult", "SlotOutcome"]


class Reason(msgspec.Struct, frozen=True):
    """One line of "why this backend": ``type`` is the seed's reason type."""

    type: str
    explanation: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "explanation": self.explanation}


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


class QueryResult(msgspec.Struct, frozen=True):
    """The seed's query response: ``backends`` best first and ``total_count``."""

    backends: list
    total_count: int

    def as_dict(self, *, reasons: bool = True) -> dict:
        return {"backends": [m.as_dict(reasons=reasons) for m in self.backends], "total_count": self.total_count}


@dataclass
class SlotOutcome:
    """One slot's answer: its matches (best first) and, when asked for or when
    nothing matched, the diagnosis."""

    slot: SlotRequirement
    matches: list[Match]
    diagnosis: Diagnosis | None

    @property
    def status(self) -> str:
        return "bound" if self.matches else "unbound"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slot_name": self.slot.slot_name, "optional": self.slot.optional, "status": self.status,
            "matches": [{"rank": rank, **m.as_dict(reasons=True)} for rank, m in enumerate(self.matches, 1)],
        }
        if self.diagnosis is not None:
            out["diagnosis"] = self.diagnosis.as_dict()
        return out
