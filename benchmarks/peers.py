"""The same matching in the field's general-purpose engines: polars and DuckDB.

Both read the compiled columns of a registry as a table (mask words as
UInt64 columns, one bit column per code so a set test is one ``&``) and a
table of prepared slots, cross-join them, filter by SPEC §3, score by SPEC §4
in the kernel's operation order, and keep the k best per slot — polars with a
sort and ``head`` per slot, DuckDB with ``row_number()`` over a window. Rule 5
(latency) is relational: the (slot, backend) pairs a declared ``p99_ms``
violates are anti-joined away. Batches are cut into chunks of slots so the
cross join stays a few million rows.

These are compare.py's peers; tests/test_benchmarks_smoke.py checks that they
agree with ``Registry.match``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from prism_match import MatchPolicy, PreparedSlot, Registry

__all__ = ["backend_table", "latency_table", "slot_tables", "PolarsMatcher", "DuckDBMatcher"]

# The cross join of one chunk: slots × backends at most about this many rows.
CHUNK_PAIRS = 2_000_000


def backend_table(registry: Registry) -> pl.DataFrame:
    """One row per backend: index ``b``, ``id_rank``, mask words and numbers."""
    c = registry.columns
    data: dict[str, object] = {"b": np.arange(c.n, dtype=np.int64), "id_rank": c.id_rank}
    for prefix, rows in (("f", c.feature_rows), ("r", c.region_rows), ("k", c.compliance_rows)):
        for w in range(rows.shape[1]):
            data[f"{prefix}{w}"] = np.ascontiguousarray(rows[:, w])
    data["type_bit"] = np.left_shift(np.uint64(1), c.backend_type.astype(np.uint64))
    data["health_bit"] = np.left_shift(np.uint64(1), c.health.astype(np.uint64))
    data["consistency"] = c.consistency.astype(np.int64)
    for name in ("max_write_rps", "max_read_rps", "write_rps", "read_rps", "max_storage", "storage_used",
                 "cost_score", "avail_score"):
        data[name] = getattr(c, name)
    df = pl.DataFrame(data)
    # NaN compares greater than everything in polars and DuckDB; a missing
    # max_storage must fail every ``min_storage > 0``, so it becomes null.
    return df.with_columns(pl.col("max_storage").fill_nan(None))


def latency_table(registry: Registry) -> pl.DataFrame:
    """One row per capability that declares ``p99_ms``: (b, tok, vtok, p99)."""
    c = registry.columns
    owner = np.repeat(np.arange(c.n, dtype=np.int64), np.diff(c.lat_indptr))
    return pl.DataFrame({"b": owner, "tok": c.lat_token, "vtok": c.lat_vtoken, "p99": c.lat_p99_ms})


def _word_columns(prefix: str, bits: Sequence[int] | None, n_words: int) -> dict[str, int]:
    words = [0] * max(n_words, 1)
    for bit in bits or ():
        words[bit >> 6] |= 1 << (bit & 63)
    return {f"{prefix}{w}": words[w] for w in range(max(n_words, 1))}


def slot_tables(prepared: Sequence[PreparedSlot]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(slots, slot_caps): one row per slot with its words and numbers, and
    one row per (slot, required capability bit) for the latency rule."""
    rows = []
    caps: dict[str, list[int]] = {"s": [], "tok": []}
    for s_i, p in enumerate(prepared):
        c = p.columns
        cap_bits = [r.bit for r in p.requirements if r.kind == "capability" and r.bit is not None]
        row: dict[str, object] = {"s": s_i, "unmatchable": p.unmatchable}
        row |= _word_columns("q", [r.bit for r in p.requirements if r.bit is not None], c.features.words)
        row["region_filter"] = p.region_bits is not None
        row |= _word_columns("ra", p.region_bits, c.regions.words)
        row["compliance_filter"] = p.compliance_bits is not None
        row |= _word_columns("ka", p.compliance_bits, c.compliance.words)
        row["type_mask"] = (1 << 16) - 1 if p.type_codes is None else sum(1 << t for t in p.type_codes)
        row["health_mask"] = sum(1 << h for h in p.health_codes)
        row["max_consistency"] = p.max_consistency
        row["min_w"], row["min_r"] = p.min_write_rps, p.min_read_rps
        row["min_storage"] = p.min_storage
        row["max_lat"] = p.max_latency_ms
        row["lat_all"] = not any(r.kind == "capability" for r in p.requirements)
        row["pref_filter"] = p.preferred_region_bit >= 0
        row |= _word_columns("pr", [p.preferred_region_bit] if p.preferred_region_bit >= 0 else (),
                             c.regions.words)
        rows.append(row)
        caps["s"] += [s_i] * len(cap_bits)
        caps["tok"] += cap_bits
    words = {name: pl.UInt64 for name in (rows[0] if rows else {})
             if name.rstrip("0123456789") in ("q", "ra", "ka", "pr", "type_mask", "health_mask")}
    slots = pl.DataFrame(rows, schema_overrides=words)
    slot_caps = pl.DataFrame(caps, schema={"s": pl.Int64, "tok": pl.Int64})
    return slots, slot_caps


def _chunks(n_slots: int, n_backends: int) -> list[tuple[int, int]]:
    step = max(1, CHUNK_PAIRS // max(n_backends, 1))
    return [(lo, min(lo + step, n_slots)) for lo in range(0, n_slots, step)]


class PolarsMatcher:
    """SPEC §3–§4 as one polars lazy pipeline per chunk of slots."""

    def __init__(self, registry: Registry, policy: MatchPolicy | None = None):
        c = registry.columns
        self.policy = policy or registry.policy
        self.backends = backend_table(registry)
        self.latency = latency_table(registry)
        self.wf, self.wr, self.wk = c.features.words, c.regions.words, c.compliance.words
        self.n = c.n

    def _eligible(self) -> pl.Expr:
        col = pl.col
        p = self.policy
        cond = ~col("unmatchable")
        for w in range(self.wf):
            cond &= (col(f"f{w}") & col(f"q{w}")) == col(f"q{w}")
        if p.capacity_basis == "available":  # headroom clamped at 0 (SPEC §1)
            cond &= pl.max_horizontal(pl.lit(0.0), col("max_write_rps") - col("write_rps")) >= col("min_w")
            cond &= pl.max_horizontal(pl.lit(0.0), col("max_read_rps") - col("read_rps")) >= col("min_r")
            storage = (col("max_storage") - col("storage_used")) >= col("min_storage")
        else:
            cond &= col("max_write_rps") >= col("min_w")
            cond &= col("max_read_rps") >= col("min_r")
            storage = col("max_storage") >= col("min_storage")
        cond &= (col("health_bit") & col("health_mask")) != 0
        any_region = pl.any_horizontal([(col(f"r{w}") & col(f"ra{w}")) != 0 for w in range(self.wr)])
        cond &= ~col("region_filter") | any_region
        all_compliance = pl.all_horizontal([(col(f"k{w}") & col(f"ka{w}")) == col(f"ka{w}")
                                            for w in range(self.wk)])
        cond &= ~col("compliance_filter") | all_compliance
        cond &= (col("type_bit") & col("type_mask")) != 0
        cond &= (col("min_storage") <= 0) | storage.fill_null(False)
        cond &= col("consistency") <= col("max_consistency")
        return cond

    def _score(self) -> pl.Expr:
        col = pl.col
        p = self.policy
        cap = float(p.perf_cap)
        avail_w = pl.max_horizontal(pl.lit(0.0), col("max_write_rps") - col("write_rps"))
        avail_r = pl.max_horizontal(pl.lit(0.0), col("max_read_rps") - col("read_rps"))
        ratio_w = pl.when(col("min_w") > 0).then(avail_w / col("min_w")).otherwise(pl.lit(cap))
        ratio_r = pl.when(col("min_r") > 0).then(avail_r / col("min_r")).otherwise(pl.lit(cap))
        perf = pl.min_horizontal(ratio_w, ratio_r, pl.lit(cap))
        in_pref = pl.any_horizontal([(col(f"r{w}") & col(f"pr{w}")) != 0 for w in range(self.wr)])
        region = pl.when(col("pref_filter") & in_pref).then(1.0).otherwise(0.0)
        return (float(p.w_perf) * perf + float(p.w_cost) * col("cost_score")
                + float(p.w_avail) * col("avail_score") + float(p.w_region) * region)

    def _violations(self, slots: pl.LazyFrame, slot_caps: pl.LazyFrame) -> pl.LazyFrame:
        """(s, b) pairs that rule 5 rejects."""
        bounded = slots.filter(pl.col("max_lat") < math.inf).select("s", "max_lat", "lat_all")
        lat = self.latency.lazy()
        every = (bounded.filter(pl.col("lat_all")).join(lat, how="cross")
                 .filter(pl.col("p99") > pl.col("max_lat")).select("s", "b"))
        caps = slot_caps.join(bounded, on="s")
        by_tok = caps.join(lat, on="tok").filter(pl.col("p99") > pl.col("max_lat")).select("s", "b")
        by_vtok = (caps.join(lat.drop("tok"), left_on="tok", right_on="vtok")
                   .filter(pl.col("p99") > pl.col("max_lat")).select("s", "b"))
        return pl.concat([every, by_tok, by_vtok]).unique()

    def topk_chunk(self, slots: pl.DataFrame, slot_caps: pl.DataFrame, k: int) -> pl.DataFrame:
        s_lazy = slots.lazy()
        pairs = s_lazy.join(self.backends.lazy(), how="cross").filter(self._eligible())
        pairs = pairs.join(self._violations(s_lazy, slot_caps.lazy()), on=["s", "b"], how="anti")
        return (pairs.select("s", "b", "id_rank", self._score().alias("score"))
                .sort(["s", "score", "id_rank"], descending=[False, True, False])
                .group_by("s", maintain_order=True).head(k)
                .select("s", "b", "score")
                .collect())

    def topk(self, slots: pl.DataFrame, slot_caps: pl.DataFrame, k: int) -> pl.DataFrame:
        """(s, b, score), best first within each slot, slots in order."""
        return _chunked_topk(self, slots, slot_caps, k)


def _chunked_topk(matcher, slots: pl.DataFrame, slot_caps: pl.DataFrame, k: int) -> pl.DataFrame:
    """Both peers match slots a chunk at a time (their cross join would not fit)."""
    parts = []
    for lo, hi in _chunks(slots.height, matcher.n):
        chunk_caps = slot_caps.filter(pl.col("s").is_between(lo, hi - 1))
        parts.append(matcher.topk_chunk(slots.slice(lo, hi - lo), chunk_caps, k))
    return pl.concat(parts) if parts else pl.DataFrame(schema={"s": pl.Int64, "b": pl.Int64, "score": pl.Float64})


class DuckDBMatcher:
    """SPEC §3–§4 as one SQL query per chunk of slots, top-k by a window function."""

    def __init__(self, registry: Registry, policy: MatchPolicy | None = None, threads: int | None = None):
        import duckdb

        c = registry.columns
        self.policy = policy or registry.policy
        self.n = c.n
        self.con = duckdb.connect()
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.register("backends", backend_table(registry).to_arrow())
        self.con.register("lat", latency_table(registry).to_arrow())
        self.sql = self._query(c.features.words, c.regions.words, c.compliance.words)

    def _query(self, wf: int, wr: int, wk: int) -> str:
        p = self.policy
        cap = repr(float(p.perf_cap))
        available = p.capacity_basis == "available"
        # With the available basis, headroom is clamped at 0 (SPEC §1).
        write = "greatest(0.0, b.max_write_rps - b.write_rps)" if available else "b.max_write_rps"
        read = "greatest(0.0, b.max_read_rps - b.read_rps)" if available else "b.max_read_rps"
        storage = "(b.max_storage - b.storage_used)" if available else "b.max_storage"
        features = " AND ".join(f"(b.f{w} & s.q{w}) = s.q{w}" for w in range(wf))
        regions = " OR ".join(f"(b.r{w} & s.ra{w}) <> 0" for w in range(wr))
        compliance = " AND ".join(f"(b.k{w} & s.ka{w}) = s.ka{w}" for w in range(wk))
        preferred = " OR ".join(f"(b.r{w} & s.pr{w}) <> 0" for w in range(wr))
        # Weights parsed from their shortest repr as DOUBLE (not via DECIMAL),
        # so they are the very doubles the kernel multiplies by.
        w_perf, w_cost, w_avail, w_region = (f"'{float(x)!r}'::DOUBLE"
                                             for x in (p.w_perf, p.w_cost, p.w_avail, p.w_region))
        return f"""
        WITH bounded AS (SELECT s, max_lat, lat_all FROM slots WHERE max_lat < 'inf'::DOUBLE),
        violations AS (
            SELECT bd.s, l.b FROM bounded bd JOIN lat l ON l.p99 > bd.max_lat WHERE bd.lat_all
            UNION
            SELECT c.s, l.b FROM slot_caps c JOIN bounded bd USING (s) JOIN lat l ON l.tok = c.tok
            WHERE l.p99 > bd.max_lat
            UNION
            SELECT c.s, l.b FROM slot_caps c JOIN bounded bd USING (s) JOIN lat l ON l.vtok = c.tok
            WHERE l.p99 > bd.max_lat
        ),
        eligible AS (
            SELECT s.s, b.b, b.id_rank,
                   least(CASE WHEN s.min_w > 0 THEN greatest(0.0, b.max_write_rps - b.write_rps) / s.min_w
                              ELSE {cap} END,
                         CASE WHEN s.min_r > 0 THEN greatest(0.0, b.max_read_rps - b.read_rps) / s.min_r
                              ELSE {cap} END,
                         {cap}) AS perf,
                   b.cost_score, b.avail_score,
                   CASE WHEN s.pref_filter AND ({preferred}) THEN 1.0 ELSE 0.0 END AS region
            FROM slots s, backends b
            WHERE NOT s.unmatchable AND {features}
              AND {write} >= s.min_w AND {read} >= s.min_r
              AND (b.health_bit & s.health_mask) <> 0
              AND (NOT s.region_filter OR {regions})
              AND (NOT s.compliance_filter OR ({compliance}))
              AND (b.type_bit & s.type_mask) <> 0
              AND (s.min_storage <= 0 OR coalesce({storage} >= s.min_storage, false))
              AND b.consistency <= s.max_consistency
        ),
        scored AS (
            SELECT e.s, e.b, e.id_rank,
                   {w_perf} * e.perf + {w_cost} * e.cost_score + {w_avail} * e.avail_score
                   + {w_region} * e.region AS score
            FROM eligible e ANTI JOIN violations v ON e.s = v.s AND e.b = v.b
        )
        SELECT s, b, score FROM scored
        QUALIFY row_number() OVER (PARTITION BY s ORDER BY score DESC, id_rank) <= $k
        ORDER BY s, score DESC, id_rank
        """

    def topk_chunk(self, slots: pl.DataFrame, slot_caps: pl.DataFrame, k: int) -> pl.DataFrame:
        self.con.register("slots", slots.to_arrow())
        self.con.register("slot_caps", slot_caps.to_arrow())
        return pl.from_arrow(self.con.sql(self.sql, params={"k": k}).to_arrow_table())

    def topk(self, slots: pl.DataFrame, slot_caps: pl.DataFrame, k: int) -> pl.DataFrame:
        """(s, b, score), best first within each slot, slots in order."""
        return _chunked_topk(self, slots, slot_caps, k)

    def close(self) -> None:
        self.con.close()
