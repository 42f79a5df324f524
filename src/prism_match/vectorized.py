"""The numpy path: one boolean mask per rule, the score as one expression.

``rule_masks`` serves ``explain`` and the other diagnoses (which need every
rule's verdict for every backend, not just the survivors); ``match`` and
``query`` run the compiled kernel, and ``ranked`` is the first reference the
kernel is tested against. Shapes: n backends; every mask is ``bool[n]``.
"""

from __future__ import annotations

import numpy as np

from .compiled import Columns, has_bit
from .policy import MatchPolicy
from .prepare import PreparedSlot

__all__ = ["rule_masks", "eligible_mask", "score_arrays", "ranked"]


def _has_bits(rows: np.ndarray, bits: list[int]) -> np.ndarray:
    """bool[n]: every row holds all of ``bits``."""
    ok = np.ones(rows.shape[0], dtype=bool)
    for bit in bits:
        ok &= has_bit(rows, bit)
    return ok


def _has_any(rows: np.ndarray, bits: tuple[int, ...]) -> np.ndarray:
    ok = np.zeros(rows.shape[0], dtype=bool)
    for bit in bits:
        ok |= has_bit(rows, bit)
    return ok


def _left(maximum: np.ndarray, current: np.ndarray, placed: np.ndarray | None, idx=slice(None)) -> np.ndarray:
    """``maximum - current - placed`` of the backends ``idx``, clamped at 0
    (an overloaded backend has no headroom, not a negative one)."""
    h = maximum[idx] - current[idx]
    return np.maximum(h if placed is None else h - placed[idx], 0.0)


def headroom(columns: Columns, placed: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
    """(write, read, storage) left by every backend (see ``_left``)."""
    c, p = columns, placed or {}
    return (_left(c.max_write_rps, c.write_rps, p.get("w")), _left(c.max_read_rps, c.read_rps, p.get("r")),
            _left(c.max_storage, c.storage_used, p.get("storage")))


def rule_masks(columns: Columns, slot: PreparedSlot, policy: MatchPolicy,
               placed: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{code: bool[n]}``, True where the rule *rejects* the backend."""
    c = columns
    n = c.n
    masks: dict[str, np.ndarray] = {}
    for kind, code in (("interface", "missing_interface"), ("capability", "missing_capability")):
        reqs = [r for r in slot.requirements if r.kind == kind]
        if any(r.bit is None for r in reqs):
            masks[code] = np.ones(n, dtype=bool)
        else:
            masks[code] = ~_has_bits(c.feature_rows, [r.bit for r in reqs])  # type: ignore[misc]
    left = policy.capacity_basis == "available" or placed is not None
    if left:
        hw, hr, hs = headroom(c, placed)
        masks["insufficient_write_capacity"] = hw < slot.min_write_rps
        masks["insufficient_read_capacity"] = hr < slot.min_read_rps
        storage_ok = hs >= slot.min_storage
    else:
        masks["insufficient_write_capacity"] = c.max_write_rps < slot.min_write_rps
        masks["insufficient_read_capacity"] = c.max_read_rps < slot.min_read_rps
        storage_ok = c.max_storage >= slot.min_storage
    masks["latency_too_high"] = _latency_rejects(c, slot)
    masks["health_status"] = ~np.isin(c.health, np.fromiter(slot.health_codes, dtype=np.int64))
    if slot.region_bits is None:
        masks["region"] = np.zeros(n, dtype=bool)
    else:
        masks["region"] = ~_has_any(c.region_rows, slot.region_bits)
    if slot.compliance_bits is None:
        masks["compliance"] = np.zeros(n, dtype=bool)
    elif slot.unknown_compliance:
        masks["compliance"] = np.ones(n, dtype=bool)
    else:
        masks["compliance"] = ~_has_bits(c.compliance_rows, list(slot.compliance_bits))
    if slot.type_codes is None:
        masks["backend_type"] = np.zeros(n, dtype=bool)
    else:
        masks["backend_type"] = ~np.isin(c.backend_type, np.fromiter(slot.type_codes, dtype=np.int64))
    masks["insufficient_storage"] = (~storage_ok) if slot.min_storage > 0 else np.zeros(n, dtype=bool)
    masks["consistency"] = c.consistency > slot.max_consistency
    if placed is not None:
        masks["namespaces_exhausted"] = c.max_namespaces - c.namespace_count - placed["ns"] < 1
    return masks


def _latency_rejects(c: Columns, slot: PreparedSlot) -> np.ndarray:
    out = np.zeros(c.n, dtype=bool)
    if not np.isfinite(slot.max_latency_ms) or len(c.lat_p99_ms) == 0:
        return out
    caps = [r.bit for r in slot.requirements if r.kind == "capability" and r.bit is not None]
    if any(r.kind == "capability" for r in slot.requirements):
        flagged = np.isin(c.lat_token, caps) | np.isin(c.lat_vtoken, caps)
    else:
        flagged = np.ones(len(c.lat_p99_ms), dtype=bool)
    bad = flagged & (c.lat_p99_ms > slot.max_latency_ms)
    owner = np.repeat(np.arange(c.n), np.diff(c.lat_indptr))
    out[owner[bad]] = True
    return out


def eligible_mask(columns: Columns, slot: PreparedSlot, policy: MatchPolicy,
                  placed: dict[str, np.ndarray] | None = None) -> np.ndarray:
    return ~rejected_by_any(rule_masks(columns, slot, policy, placed), columns.n)


def rejected_by_any(masks: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Backends that at least one rule rejects."""
    rejected = np.zeros(n, dtype=bool)
    for mask in masks.values():
        rejected |= mask
    return rejected


def score_arrays(columns: Columns, slot: PreparedSlot, policy: MatchPolicy, idx: np.ndarray,
                 placed: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """SPEC §4 for the backends ``idx``: ``{score, performance, cost,
    availability, region}``, each float64[len(idx)], same operation order as
    the kernel."""
    c, p = columns, placed or {}
    aw = _left(c.max_write_rps, c.write_rps, p.get("w"), idx)
    ar = _left(c.max_read_rps, c.read_rps, p.get("r"), idx)
    cap = float(policy.perf_cap)
    rw = aw / slot.min_write_rps if slot.min_write_rps > 0 else np.full(len(idx), cap)
    rr = ar / slot.min_read_rps if slot.min_read_rps > 0 else np.full(len(idx), cap)
    perf = np.minimum(np.minimum(rw, rr), cap)
    if slot.preferred_region_bit >= 0:
        region = has_bit(c.region_rows, slot.preferred_region_bit, idx).astype(np.float64)
    else:
        region = np.zeros(len(idx))
    cost, avail = c.cost_score[idx], c.avail_score[idx]
    score = policy.w_perf * perf + policy.w_cost * cost + policy.w_avail * avail + policy.w_region * region
    return {"score": score, "performance": perf, "cost": cost, "availability": avail, "region": region}


def ranked(columns: Columns, slot: PreparedSlot, policy: MatchPolicy, k: int | None = None,
           placed: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Eligible backends best first (score desc, backend_id byte order asc),
    the first ``k`` of them; returns (indices, score arrays)."""
    idx = np.flatnonzero(eligible_mask(columns, slot, policy, placed))
    parts = score_arrays(columns, slot, policy, idx, placed)
    order = np.lexsort((columns.id_rank[idx], -parts["score"]))
    if k is not None:
        order = order[:k]
    return idx[order], {name: arr[order] for name, arr in parts.items()}
