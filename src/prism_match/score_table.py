"""The whole-registry view: every backend's rule results and score components
at once, as numpy columns — the design's "scoring as a vectorized numpy
expression".

``rule_masks`` gives one ``bool[n]`` per rule of the rule table (True where
the rule rejects the backend), ``score_arrays`` the SPEC §4 components for
any set of backends, ``score_table`` both as a polars frame (one row per live
backend: ``Registry.score_table``, ``explain --all``, what-if tables).
``match`` and ``query`` run the fused kernel instead; the tests hold the two
paths and the plain reference together, and ``ranked`` is the numpy answer
they compare the kernel's top-k with. Shapes: n positions; holes (removed
backends) are rejected by no rule and dropped from the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .compiled import HEALTH_CODE, Columns, has_bit, lacks_token
from .policy import MatchPolicy
from .rules import BY_CODE, RULES
from .slot_details import PreparedSlot

if TYPE_CHECKING:
    import polars as pl

__all__ = ["rule_masks", "eligible_mask", "failure_bits", "score_arrays", "ranked", "score_table", "headroom"]


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
    return (_left(c.max_write_rps, c.used_write_rps, p.get("w")), _left(c.max_read_rps, c.used_read_rps, p.get("r")),
            _left(c.max_storage, c.used_storage, p.get("storage")))


def rule_masks(columns: Columns, slot: PreparedSlot, policy: MatchPolicy,
               placed: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{code: bool[n]}`` in rule-table order, True where the rule rejects
    the backend. ``namespaces_exhausted`` only while placing (``placed``)."""
    c = columns
    n = c.n
    masks: dict[str, np.ndarray] = {}
    for kind, code in (("interface", "missing_interface"), ("capability", "missing_capability")):
        reqs = [r for r in slot.requirements if r.kind == kind]
        mask = np.zeros(n, dtype=bool)
        if any(r.bit is None for r in reqs):
            mask[:] = True
        else:
            for req in reqs:
                mask |= lacks_token(c, req.bit)  # type: ignore[arg-type]
        masks[code] = mask
    # A pattern's binding (``bind_only``) applies the group rules alone.
    placing = placed is not None and not placed.get("bind_only")
    consumed = placed if placing else None
    left = policy.capacity_basis == "available" or placing
    if left:
        hw, hr, hs = headroom(c, consumed)
        masks["insufficient_write_capacity"] = hw < slot.min_write_rps
        masks["insufficient_read_capacity"] = hr < slot.min_read_rps
        storage_ok = hs >= slot.min_storage
    else:
        masks["insufficient_write_capacity"] = c.max_write_rps < slot.min_write_rps
        masks["insufficient_read_capacity"] = c.max_read_rps < slot.min_read_rps
        storage_ok = c.max_storage >= slot.min_storage
    masks["latency_too_high"] = _latency_rejects(c, slot)
    masks.update(_capability_rejects(c, slot))
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
        held = np.ones(n, dtype=bool)
        for bit in slot.compliance_bits:
            held &= has_bit(c.compliance_rows, bit)
        masks["compliance"] = ~held
    if slot.type_codes is None:
        masks["backend_type"] = np.zeros(n, dtype=bool)
    else:
        masks["backend_type"] = ~np.isin(c.backend_type, np.fromiter(slot.type_codes, dtype=np.int64))
    masks["insufficient_storage"] = (~storage_ok) if slot.min_storage > 0 else np.zeros(n, dtype=bool)
    masks["consistency"] = c.consistency > slot.max_consistency
    if slot.min_connections > 0:
        have = _left(c.max_connections, c.used_connections, consumed.get("conn") if consumed else None) \
            if left else c.max_connections
        masks["insufficient_connections"] = np.isnan(c.max_connections) | ~(have >= slot.min_connections)
    else:
        masks["insufficient_connections"] = np.zeros(n, dtype=bool)
    if consumed is not None:
        masks["namespaces_exhausted"] = c.max_namespaces - c.used_namespaces - consumed["ns"] < 1
    if placed is not None and placed.get("group_backend") is not None:
        masks.update(_group_masks(c, slot, placed, masks))
    if not c.dense:
        alive = c.alive_mask
        for mask in masks.values():
            mask &= alive
    return {code: masks[code] for code in BY_CODE if code in masks}


def region_members(columns: Columns) -> np.ndarray:
    """bool[n, wr * 64]: backend i serves the region of bit b."""
    rows = columns.region_rows
    return np.unpackbits(rows.astype("<u8", copy=False).view(np.uint8), axis=1, bitorder="little") \
        .reshape(rows.shape[0], -1).astype(bool)


def _group_masks(c: Columns, slot: PreparedSlot, placed: dict[str, np.ndarray],
                 others: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The group rules given the group's placements so far
    (``placed["group_backend"]`` float64[n], ``placed["group_region"]``
    float64[wr * 64]): see ``_group_failed`` in the kernel."""
    per_backend, per_region = placed["group_backend"], placed["group_region"]
    member = region_members(c)
    counts = per_region[:member.shape[1]]
    out = {"group_backend_limit": per_backend[:c.n] >= slot.max_per_backend,
           "group_region_limit": (member & (counts >= slot.max_per_region)).any(axis=1)}
    passing = ~rejected_by_any(others, c.n)
    if not c.dense:
        passing &= c.alive_mask
    domains = member[passing].any(axis=0)
    low = counts[domains].min() if domains.any() else 0.0
    skew = (member & (counts + 1 - low > slot.max_skew)).any(axis=1)
    if np.isfinite(slot.max_skew):
        skew |= ~member.any(axis=1)
    out["group_region_skew"] = skew
    return out


def _latency_rejects(c: Columns, slot: PreparedSlot) -> np.ndarray:
    out = np.zeros(c.n, dtype=bool)
    if not np.isfinite(slot.max_latency_ms) or c.entries == 0:
        return out
    caps = [r.bit for r in slot.requirements if r.kind == "capability" and r.bit is not None]
    counts = c.lat_stop - c.lat_start
    owner = np.repeat(np.arange(c.n), counts)
    entry = np.concatenate([np.arange(a, b) for a, b in zip(c.lat_start, c.lat_stop)]).astype(np.int64) \
        if not c.dense else np.arange(c.entries)
    token, vtoken, p99 = c.lat_token[entry], c.lat_vtoken[entry], c.lat_p99_ms[entry]
    if any(r.kind == "capability" for r in slot.requirements):
        flagged = np.isin(token, caps) | np.isin(vtoken, caps)
    else:
        flagged = np.ones(len(p99), dtype=bool)
    bad = flagged & (p99 > slot.max_latency_ms)
    out[owner[bad]] = True
    return out


def _capability_rejects(c: Columns, slot: PreparedSlot) -> dict[str, np.ndarray]:
    """Issue 13's per-capability rules (see ``_capability_failed`` in the
    kernel): per relevant entry, then the coverage of the proven ones."""
    codes = ("latency_percentile_too_high", "no_batch_support", "insufficient_concurrency",
             "insufficient_capability_throughput")
    out = {code: np.zeros(c.n, dtype=bool) for code in codes}
    if not slot.details.capability_bounds:
        return out
    counts = c.lat_stop - c.lat_start
    owner = np.repeat(np.arange(c.n), counts)
    entry = np.concatenate([np.arange(a, b) for a, b in zip(c.lat_start, c.lat_stop)]).astype(np.int64) \
        if c.n and not c.dense else np.arange(c.entries)
    token, vtoken = c.lat_token[entry], c.lat_vtoken[entry]
    caps = [r.bit for r in slot.requirements if r.kind == "capability" and r.bit is not None]
    requires_any = any(r.kind == "capability" for r in slot.requirements)
    relevant = (np.isin(token, caps) | np.isin(vtoken, caps)) if requires_any else np.ones(len(entry), dtype=bool)
    with np.errstate(invalid="ignore"):
        slow = ((c.lat_p50_ms[entry] > slot.max_latency_p50_ms) | (c.lat_p95_ms[entry] > slot.max_latency_p95_ms)
                | (c.lat_p999_ms[entry] > slot.max_latency_p999_ms))
        no_batch = np.zeros(len(entry), dtype=bool)
        if slot.needs_batch:
            no_batch = c.lat_batch[entry] != 1
            if slot.min_batch_size > 0:
                no_batch |= ~(c.lat_max_batch_size[entry] >= slot.min_batch_size)
        few = ~(c.lat_concurrency[entry] >= slot.min_concurrency) if slot.min_concurrency > 0 else \
            np.zeros(len(entry), dtype=bool)
        narrow = ((c.lat_max_write_rps[entry] < slot.min_write_rps) | (c.lat_max_read_rps[entry] < slot.min_read_rps)) \
            if slot.per_capability_throughput else np.zeros(len(entry), dtype=bool)
    for code, bad in (("latency_percentile_too_high", slow), ("no_batch_support", no_batch),
                      ("insufficient_concurrency", few), ("insufficient_capability_throughput", narrow)):
        out[code][owner[relevant & bad]] = True
    proven = [code for code, on in (("no_batch_support", slot.needs_batch),
                                    ("insufficient_concurrency", slot.min_concurrency > 0)) if on]
    if proven:
        # Coverage: every required capability (any, when none is required)
        # needs an entry of its own, else it proves nothing.
        uncovered = np.zeros(c.n, dtype=bool)
        if requires_any:
            for bit in caps:
                has = np.zeros(c.n, dtype=bool)
                has[owner[(token == bit) | (vtoken == bit)]] = True
                uncovered |= ~has & ~lacks_token(c, bit)  # not declared: missing_capability's to say
        else:
            uncovered = np.bincount(owner[relevant], minlength=c.n)[:c.n] == 0
        for code in proven:
            out[code] |= uncovered
    return out


def failure_bits(masks: dict[str, np.ndarray], n: int) -> np.ndarray:
    """uint32[n]: the masks as the kernel's failed-rule bits."""
    bits = np.zeros(n, dtype=np.uint32)
    for code, mask in masks.items():
        bits[mask] |= np.uint32(BY_CODE[code].bit)
    return bits


def rejected_by_any(masks: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Backends that at least one rule rejects."""
    rejected = np.zeros(n, dtype=bool)
    for mask in masks.values():
        rejected |= mask
    return rejected


def eligible_mask(columns: Columns, slot: PreparedSlot, policy: MatchPolicy,
                  placed: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """bool[n]: live backends no rule rejects."""
    ok = ~rejected_by_any(rule_masks(columns, slot, policy, placed), columns.n)
    return ok if columns.dense else ok & columns.alive_mask


def score_arrays(columns: Columns, slot: PreparedSlot, policy: MatchPolicy, idx: np.ndarray,
                 placed: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """SPEC §4 for the backends ``idx``: ``{score, performance, cost,
    availability, region}``, each float64[len(idx)], same operation order as
    the kernel."""
    c, p = columns, placed or {}
    if p.get("bind_only"):
        p = {}
    aw = _left(c.max_write_rps, c.used_write_rps, p.get("w"), idx)
    ar = _left(c.max_read_rps, c.used_read_rps, p.get("r"), idx)
    cap = float(policy.perf_cap)
    if policy.strategy == "binpack":
        fw = _fullness(c.max_write_rps[idx], c.used_write_rps[idx], p.get("w"), slot.min_write_rps, idx)
        fr = _fullness(c.max_read_rps[idx], c.used_read_rps[idx], p.get("r"), slot.min_read_rps, idx)
        perf = cap * ((fw + fr) * 0.5)
    else:
        rw = aw / slot.min_write_rps if slot.min_write_rps > 0 else np.full(len(idx), cap)
        rr = ar / slot.min_read_rps if slot.min_read_rps > 0 else np.full(len(idx), cap)
        perf = np.minimum(np.minimum(rw, rr), cap)
    if slot.preferred_ranked:
        region = np.zeros(len(idx))
        taken = np.zeros(len(idx), dtype=bool)
        for bit, value in slot.preferred_ranked:  # the best-ranked region served
            hit = has_bit(c.region_rows, bit, idx) & ~taken
            region[hit] = value
            taken |= hit
    elif slot.preferred_region_bit >= 0:
        region = has_bit(c.region_rows, slot.preferred_region_bit, idx).astype(np.float64)
    else:
        region = np.zeros(len(idx))
    cost, avail = c.cost_score[idx], c.avail_score[idx]
    score = policy.w_perf * perf + policy.w_cost * cost + policy.w_avail * avail + policy.w_region * region
    out = {"score": score, "performance": perf, "cost": cost, "availability": avail, "region": region}
    if slot.affinity:
        affinity = affinity_scores(c, slot, idx)
        out["affinity"] = affinity
        score = score + policy.w_affinity * affinity
    if slot.current_backend is not None and slot.current_backend in c.backend_ids:
        score = np.where(idx == c.backend_ids.index(slot.current_backend), score + policy.stickiness, score)
    if policy.degraded_penalty > 0:
        score = np.where(c.health[idx] == HEALTH_CODE["degraded"], score - policy.degraded_penalty, score)
    if policy.incident_penalty > 0:
        score = np.where(c.open_incidents[idx] > 0, score - policy.incident_penalty, score)
    out["score"] = score
    return out


def _fullness(maximum: np.ndarray, used: np.ndarray, placed: np.ndarray | None, need: float,
              idx: np.ndarray) -> np.ndarray:
    """Binpack's share of one resource in use once the slot is placed, in
    [0, 1]; 0 where no capacity is declared (the kernel's ``_fullness``)."""
    u = used if placed is None else used + placed[idx]
    u = u + need
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(maximum > 0, np.minimum(u / maximum, 1.0), 0.0)


def affinity_scores(columns: Columns, slot: PreparedSlot, idx: np.ndarray) -> np.ndarray:
    """float64[len(idx)]: the preferred-terms score, met weights (summed in
    the slot's order) over all weights."""
    acc = np.zeros(len(idx))
    for kind, code, weight in slot.affinity:
        if kind == 0:
            hit = columns.backend_type[idx] == code
        else:
            hit = has_bit(columns.compliance_rows, code, idx) if code >= 0 else np.zeros(len(idx), dtype=bool)
        acc = np.where(hit, acc + weight, acc)
    return acc / slot.affinity_total


def ranked(columns: Columns, slot: PreparedSlot, policy: MatchPolicy, k: int | None = None,
           placed: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Eligible backends best first (score desc, backend_id byte order asc),
    the first ``k`` of them; returns (indices, score arrays)."""
    idx = np.flatnonzero(eligible_mask(columns, slot, policy, placed))
    parts = score_arrays(columns, slot, policy, idx, placed)
    order = np.lexsort((columns.id_label[idx], -parts["score"]))
    if k is not None:
        order = order[:k]
    return idx[order], {name: arr[order] for name, arr in parts.items()}


def score_table(columns: Columns, slot: PreparedSlot, policy: MatchPolicy) -> pl.DataFrame:
    """One row per live backend, in position order: ``backend_id``,
    ``eligible``, ``failed`` (the rejection codes, table order), one bool
    column per rule (``rule_<code>``, True: rejects), and the score components (computed for
    every backend, eligible or not; rank them with ``eligible`` first)."""
    import polars as pl

    masks = rule_masks(columns, slot, policy)
    live = np.flatnonzero(columns.alive_mask) if not columns.dense else np.arange(columns.n)
    bits = failure_bits(masks, columns.n)[live]
    parts = score_arrays(columns, slot, policy, live)
    codes = [[rule.code for rule in RULES if b & rule.bit] for b in bits.tolist()]
    return pl.DataFrame({
        "backend_id": pl.Series([columns.backend_ids[i] for i in live.tolist()], dtype=pl.String),
        "eligible": bits == 0,
        "failed": pl.Series(codes, dtype=pl.List(pl.String)),
        **{f"rule_{code}": mask[live] for code, mask in masks.items()},
        **parts,
    })
