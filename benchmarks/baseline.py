"""The numpy baseline: the straightforward implementation of SPEC §3–§4.

This is the yardstick of issues 3 and 4 ("at least 10× faster than the
baseline"), so it must be both correct and decent numpy: uint64 mask columns,
one boolean array per rule combined with ``&``, ``flatnonzero``, the score of
the survivors as one expression, ``argpartition`` then a sort of the k best,
exact ties broken by ``backend_id`` through an explicit second key (the
registry's byte-order rank of each id).

It reads the compiled columns of a registry (``registry.columns``) and a slot
the registry prepared (``registry.prepare``), as the kernel does: both sides
are measured on matching alone, not on loading or parsing names.
``tests/test_benchmarks_smoke.py`` checks it returns what ``Registry.match``
returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism_match import MatchPolicy, PreparedSlot, Registry

__all__ = ["BaselineRegistry", "BaselineSlot", "baseline_slot"]


@dataclass(frozen=True, eq=False)
class BaselineSlot:
    """A prepared slot in the baseline's terms: whole mask words and plain numbers."""

    unmatchable: bool
    required_words: np.ndarray          # uint64[Wf]: capability and interface bits, all required
    region_words: np.ndarray | None     # uint64[Wr]: any of; None = no region filter
    compliance_words: np.ndarray | None  # uint64[Wk]: all of; None = no compliance filter
    type_ok: np.ndarray                 # bool[n_types]: lookup by backend type code
    health_ok: np.ndarray               # bool[n_statuses]: lookup by health code
    max_consistency: int
    min_write_rps: float
    min_read_rps: float
    min_storage: float
    max_latency_ms: float               # inf = no bound
    latency_bits: np.ndarray | None     # int64 capability bits the latency bound covers; None = all
    preferred_words: np.ndarray | None  # uint64[Wr] with the preferred region's bit; None = none


def _words(bits, n_words: int) -> np.ndarray:
    words = np.zeros(max(n_words, 1), dtype=np.uint64)
    for bit in bits:
        words[bit >> 6] |= np.uint64(1) << np.uint64(bit & 63)
    return words


def _lookup(codes, size: int) -> np.ndarray:
    table = np.zeros(size, dtype=bool)
    table[list(codes)] = True
    return table


def baseline_slot(prepared: PreparedSlot) -> BaselineSlot:
    """The baseline's view of a slot prepared by ``Registry.prepare``."""
    c = prepared.columns
    caps = [r.bit for r in prepared.requirements if r.kind == "capability" and r.bit is not None]
    any_cap_required = any(r.kind == "capability" for r in prepared.requirements)
    return BaselineSlot(
        unmatchable=prepared.unmatchable,
        required_words=_words([r.bit for r in prepared.requirements if r.bit is not None], c.features.words),
        region_words=None if prepared.region_bits is None else _words(prepared.region_bits, c.regions.words),
        compliance_words=None if prepared.compliance_bits is None
        else _words(prepared.compliance_bits, c.compliance.words),
        type_ok=np.ones(256, dtype=bool) if prepared.type_codes is None else _lookup(prepared.type_codes, 256),
        health_ok=_lookup(prepared.health_codes, 256),
        max_consistency=prepared.max_consistency,
        min_write_rps=prepared.min_write_rps,
        min_read_rps=prepared.min_read_rps,
        min_storage=prepared.min_storage,
        max_latency_ms=prepared.max_latency_ms,
        latency_bits=np.asarray(caps, dtype=np.int64) if any_cap_required else None,
        preferred_words=None if prepared.preferred_region_bit < 0
        else _words([prepared.preferred_region_bit], c.regions.words),
    )


class BaselineRegistry:
    """The compiled columns of a ``Registry``, matched the plain numpy way."""

    def __init__(self, registry: Registry, policy: MatchPolicy | None = None):
        c = registry.columns
        self.registry = registry
        self.columns = c
        self.policy = policy or registry.policy
        self.backend_ids = c.backend_ids
        # Row-wise masks (what backend i declares), made once: the columns
        # keep only the transposed bits the kernel reads.
        self.feature_rows = c.feature_rows
        # The latency CSR as one owner per entry: rule 5 then is a mask over entries.
        self.latency_owner = np.repeat(np.arange(c.n), np.diff(c.lat_indptr))

    def prepare(self, slot) -> BaselineSlot:
        return baseline_slot(self.registry.prepare(slot))

    def eligible(self, s: BaselineSlot) -> np.ndarray:
        """bool[n]: SPEC §3, one boolean array per rule."""
        c, p = self.columns, self.policy
        if s.unmatchable:
            return np.zeros(c.n, dtype=bool)
        ok = ((self.feature_rows & s.required_words) == s.required_words).all(axis=1)  # rules 1, 2
        if p.capacity_basis == "available":
            # Headroom is clamped at 0: an overloaded backend has none, not a
            # negative amount (SPEC §1), so it still passes a minimum of 0.
            ok &= np.maximum(c.max_write_rps - c.write_rps, 0.0) >= s.min_write_rps  # rule 3
            ok &= np.maximum(c.max_read_rps - c.read_rps, 0.0) >= s.min_read_rps     # rule 4
        else:
            ok &= c.max_write_rps >= s.min_write_rps
            ok &= c.max_read_rps >= s.min_read_rps
        ok &= s.health_ok[c.health]                                                    # rule 6
        if s.region_words is not None:                                                 # rule 7
            ok &= (c.region_rows & s.region_words).any(axis=1)
        if s.compliance_words is not None:
            ok &= ((c.compliance_rows & s.compliance_words) == s.compliance_words).all(axis=1)
        ok &= s.type_ok[c.backend_type]
        if s.min_storage > 0:                                                          # rule 8 (NaN fails)
            if p.capacity_basis == "available":
                ok &= (c.max_storage - c.storage_used) >= s.min_storage
            else:
                ok &= c.max_storage >= s.min_storage
        ok &= c.consistency <= s.max_consistency                                       # rule 9
        if np.isfinite(s.max_latency_ms) and len(c.lat_p99_ms):                        # rule 5
            too_slow = c.lat_p99_ms > s.max_latency_ms
            if s.latency_bits is not None:
                too_slow &= np.isin(c.lat_token, s.latency_bits) | np.isin(c.lat_vtoken, s.latency_bits)
            ok[self.latency_owner[too_slow]] = False
        return ok

    def scores(self, s: BaselineSlot, idx: np.ndarray) -> np.ndarray:
        """float64[len(idx)]: SPEC §4 for the backends ``idx``, in the kernel's operation order."""
        c, p = self.columns, self.policy
        # The score always uses the headroom (max - current), whatever the filter's basis.
        avail_w = np.maximum(0.0, c.max_write_rps[idx] - c.write_rps[idx])
        avail_r = np.maximum(0.0, c.max_read_rps[idx] - c.read_rps[idx])
        cap = float(p.perf_cap)
        ratio_w = avail_w / s.min_write_rps if s.min_write_rps > 0 else np.full(len(idx), cap)
        ratio_r = avail_r / s.min_read_rps if s.min_read_rps > 0 else np.full(len(idx), cap)
        perf = np.minimum(np.minimum(ratio_w, ratio_r), cap)
        if s.preferred_words is not None:
            region = (c.region_rows[idx] & s.preferred_words).any(axis=1).astype(np.float64)
        else:
            region = np.zeros(len(idx))
        return (p.w_perf * perf + p.w_cost * c.cost_score[idx] + p.w_avail * c.avail_score[idx]
                + p.w_region * region)

    def topk(self, s: BaselineSlot, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(backend indices, scores) of the best ``k``, best first: score
        descending, then backend_id byte order."""
        idx = np.flatnonzero(self.eligible(s))
        score = self.scores(s, idx)
        if len(idx) > k:
            # argpartition cuts arbitrarily among equal scores: keep every
            # backend tied with the k-th, then let the id rank decide.
            kth = score[np.argpartition(-score, k - 1)[k - 1]]
            keep = np.flatnonzero(score >= kth)
            idx, score = idx[keep], score[keep]
        order = np.lexsort((self.columns.id_rank[idx], -score))[:k]
        return idx[order], score[order]

    def match_ids(self, s: BaselineSlot, k: int) -> list[str]:
        idx, _ = self.topk(s, k)
        return [self.backend_ids[i] for i in idx]
