"""Validated registrations → the compiled columnar registry.

One row per backend, in load order. Masks are uint64 words: row-wise
(``feature_rows[n, Wf]``: what backend i declares) for the numpy path and
transposed (``feature_bits[Tf, ceil(n/64)]``: which backends declare token t)
for the kernel, whose filter is then an AND of a few bitsets over all
backends. Missing data is kept apart from zero where SPEC §4 cares: a missing
``max_storage`` is NaN (fails any ``min_storage > 0``), a missing
``max_namespaces`` is +inf (no limit), missing cost and uptime are NaN in the
raw columns and score 0 in the derived ``cost_score``/``avail_score``.

Limits. A bit matrix is inherently backends × names bits (row-wise and
transposed alike), so what a registry may declare is bounded, and going past
a bound is a :class:`RegistryError` naming it, never a ``MemoryError``:

* ``MAX_NAMES_PER_BACKEND`` (1,024) capabilities, interfaces, regions or
  compliance tags in one backend (each list; checked where documents and
  tables are validated);
* ``MAX_VOCABULARY`` (65,536) distinct tokens in one vocabulary: every
  capability or interface declared gives two feature tokens (its name, and
  name@version), so about 32,768 distinct names;
* ``MAX_MASK_BYTES`` (512 MiB) for one bit matrix: backends × tokens / 8
  bytes. At the vocabulary limit that is 65,536 backends; at a typical
  vocabulary of a few hundred tokens, millions. The worst case a registry
  can reach is then about 1 GiB of feature masks (row-wise and transposed).

Building them needs no more than the result and the declared pairs: sparse
pairs are OR-ed straight into their words, dense ones packed from boolean
blocks of at most 16 MiB.
"""

from __future__ import annotations

import math

import numpy as np

from ._core import Row, TokenMemo
from ._types import CODE_DTYPE, INDEX_DTYPE, MASK_DTYPE, RANK_DTYPE, SCORE_DTYPE
from .errors import RegistryError
from .schema import BACKEND_TYPES, CONSISTENCY_LEVELS, HEALTH_STATUSES, Registration
from .vocabulary import Vocabulary, is_versioned, split_versioned

__all__ = ["Columns", "Row", "live_registration", "lacks_token", "RESERVED_COLUMNS", "USED_COLUMNS", "LABEL_GAP",
           "compile_registry", "assemble_columns", "HEALTH_CODE", "TYPE_CODE", "CONSISTENCY_CODE",
           "UNKNOWN_CONSISTENCY", "FLOAT_COLUMNS", "INPUT_FLOATS", "MISSING", "bits_from_rows", "set_bits", "pack_bits", "has_bit",
           "cost_score", "avail_score", "MAX_NAMES_PER_BACKEND", "MAX_VOCABULARY", "MAX_MASK_BYTES",
           "check_mask_limits", "max_positions"]

MAX_NAMES_PER_BACKEND = 1024
MAX_VOCABULARY = 1 << 16
MAX_MASK_BYTES = 1 << 29

HEALTH_CODE = {s: i for i, s in enumerate(HEALTH_STATUSES)}
TYPE_CODE = {t: i for i, t in enumerate(BACKEND_TYPES)}
CONSISTENCY_CODE = {c: i for i, c in enumerate(CONSISTENCY_LEVELS)}
UNKNOWN_CONSISTENCY = len(CONSISTENCY_LEVELS)

# float64[n] columns, in the order to_polars shows them.
FLOAT_COLUMNS = (
    "max_write_rps", "max_read_rps", "write_rps", "read_rps", "max_storage", "storage_used",
    "max_namespaces", "namespace_count", "max_connections", "active_connections", "cost_per_1k_writes",
    "uptime_percent_24h",
    "cost_score", "avail_score",
)
INPUT_FLOATS = FLOAT_COLUMNS[:-2]  # cost_score and avail_score are derived
# What reservations hold (reserve/release), and usage as every rule reads it:
# observed (update) + reserved, kept as its own column so the kernel reads one.
RESERVED_COLUMNS = ("reserved_write_rps", "reserved_read_rps", "reserved_storage", "reserved_namespaces",
                    "reserved_connections")
USED_COLUMNS = ("used_write_rps", "used_read_rps", "used_storage", "used_namespaces", "used_connections")
# Row columns a snapshot or a table may lack (older ones): missing, they read as MISSING says.
OPTIONAL_COLUMNS = ("open_incidents",)
_OBSERVED = dict(zip(USED_COLUMNS, ("write_rps", "read_rps", "storage_used", "namespace_count",
                                    "active_connections")))
_RESERVED = dict(zip(USED_COLUMNS, RESERVED_COLUMNS))
# What an input float column holds when the value is not given (module docstring).
MISSING = {"max_write_rps": 0.0, "max_read_rps": 0.0, "write_rps": 0.0, "read_rps": 0.0,
           "max_storage": math.nan, "storage_used": 0.0, "max_namespaces": math.inf, "namespace_count": 0.0,
           "max_connections": math.nan, "active_connections": 0.0,
           "cost_per_1k_writes": math.nan, "uptime_percent_24h": math.nan,
           **{name: 0.0 for name in RESERVED_COLUMNS}, "open_incidents": 0.0}


def cost_score(cost_per_1k_writes: np.ndarray) -> np.ndarray:
    """SPEC §4: 1/(c+1), and 0 when no price is declared (NaN)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(cost_per_1k_writes), 0.0, 1.0 / (cost_per_1k_writes + 1.0))


def avail_score(uptime: np.ndarray) -> np.ndarray:
    """SPEC §4: uptime/100, and 0 when unknown (NaN)."""
    return np.where(np.isnan(uptime), 0.0, uptime / 100.0)


# Per-position columns: name -> (dtype, what a hole or a fresh slot holds).
_ROW_COLUMNS = {
    "id_label": (RANK_DTYPE, 0), "backend_type": (CODE_DTYPE, 0), "health": (CODE_DTYPE, 0),
    "consistency": (CODE_DTYPE, 0), "lat_start": (INDEX_DTYPE, 0), "lat_stop": (INDEX_DTYPE, 0),
    **{name: (SCORE_DTYPE, 0.0) for name in FLOAT_COLUMNS},
    **{name: (SCORE_DTYPE, 0.0) for name in RESERVED_COLUMNS},
    **{name: (SCORE_DTYPE, 0.0) for name in USED_COLUMNS},
    "open_incidents": (SCORE_DTYPE, 0.0),
}
# Latency entries (a pool the rows point into with lat_start:lat_stop): one
# per capability that states any per-capability performance (issue 13).
# CAPABILITY_PERF: the entry columns beside the tokens and p99, each with
# its dtype and what an unstated value is (NaN; supports_batch -1).
BATCH_DTYPE = np.int8
CAPABILITY_PERF = {"lat_p50_ms": (SCORE_DTYPE, math.nan), "lat_p95_ms": (SCORE_DTYPE, math.nan),
                   "lat_p999_ms": (SCORE_DTYPE, math.nan), "lat_max_write_rps": (SCORE_DTYPE, math.nan),
                   "lat_max_read_rps": (SCORE_DTYPE, math.nan), "lat_batch": (BATCH_DTYPE, -1),
                   "lat_max_batch_size": (SCORE_DTYPE, math.nan), "lat_concurrency": (SCORE_DTYPE, math.nan)}
_ENTRY_COLUMNS = {"lat_token": INDEX_DTYPE, "lat_vtoken": INDEX_DTYPE, "lat_p99_ms": SCORE_DTYPE,
                  **{name: dtype for name, (dtype, _) in CAPABILITY_PERF.items()}}
ENTRY_COLUMNS = tuple(_ENTRY_COLUMNS)
# Order labels: ids in byte order get labels LABEL_GAP apart, so an added id
# fits between two neighbours without renumbering the others.
LABEL_GAP = 1 << 24


class _RowView:
    """A column read as a numpy view of its positions in use (``[:size]``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Columns | None, owner: type | None = None) -> np.ndarray:
        if obj is None:
            return self  # type: ignore[return-value]
        return obj.store[self.name][:obj.size]


class _EntryView(_RowView):
    def __get__(self, obj: Columns | None, owner: type | None = None) -> np.ndarray:
        if obj is None:
            return self  # type: ignore[return-value]
        return obj.store[self.name][:obj.entries]


class Columns:
    """The compiled registry, columnar. Shapes: ``size`` positions (live
    backends and the holes removed ones left; ``alive`` tells which), Wr/Wk
    mask words, Tf feature tokens, NW = ceil(size/64) words of a transposed
    bitset.

    Every column is a view of a ``store`` array with spare room, so adding a
    backend writes into it (amortized constant time, see ``living.py``); the
    kernel reads the store through pointers that ``CoreRegistry.refresh``
    takes again whenever an array is replaced. No feature bit is set at or
    past ``size`` (every builder packs exactly ``size`` positions, spare
    room is zeros, and the snapshot reader checks it), so an add into a new
    last position has no old bits to clear.
    """

    id_label = _RowView()         # int64[n]: order label of backend_id (byte order)
    backend_type = _RowView()     # uint8[n]: index in BACKEND_TYPES
    health = _RowView()           # uint8[n]: index in HEALTH_STATUSES (live)
    consistency = _RowView()      # uint8[n]: index in CONSISTENCY_LEVELS, 4 = unknown
    max_write_rps = _RowView()    # float64[n], missing = 0
    max_read_rps = _RowView()
    write_rps = _RowView()        # observed usage (update), missing = 0
    read_rps = _RowView()
    max_storage = _RowView()      # bytes, missing = NaN
    storage_used = _RowView()     # bytes, observed
    max_namespaces = _RowView()   # missing = +inf
    namespace_count = _RowView()  # observed
    max_connections = _RowView()  # missing = NaN (fails any min_connections > 0)
    active_connections = _RowView()  # observed, missing = 0
    cost_per_1k_writes = _RowView()  # missing = NaN
    uptime_percent_24h = _RowView()  # missing = NaN (live)
    cost_score = _RowView()       # derived
    avail_score = _RowView()      # derived, live
    reserved_write_rps = _RowView()   # held by reservations (reserve/release)
    reserved_read_rps = _RowView()
    reserved_storage = _RowView()
    reserved_namespaces = _RowView()
    reserved_connections = _RowView()  # the min_connections of reservations
    used_write_rps = _RowView()   # observed + reserved: what every rule and score reads
    used_read_rps = _RowView()
    used_storage = _RowView()
    used_namespaces = _RowView()
    used_connections = _RowView()  # active + reserved connections
    open_incidents = _RowView()   # incidents without resolved_at (registration and health tracker)
    lat_start = _RowView()        # int64[n]: latency entries of backend i are lat_start[i]:lat_stop[i]
    lat_stop = _RowView()
    lat_token = _EntryView()      # int64[e]: feature bit of ``c:name``
    lat_vtoken = _EntryView()     # int64[e]: feature bit of ``c:name@version``
    lat_p99_ms = _EntryView()     # float64[e], NaN: not stated
    lat_p50_ms = _EntryView()     # float64[e], NaN: not stated (so are the others)
    lat_p95_ms = _EntryView()
    lat_p999_ms = _EntryView()
    lat_max_write_rps = _EntryView()  # the capability's own throughput limits
    lat_max_read_rps = _EntryView()
    lat_batch = _EntryView()      # int8[e]: supports_batch, -1 not stated, 0 no, 1 yes
    lat_max_batch_size = _EntryView()
    lat_concurrency = _EntryView()    # max_concurrent_operations

    def __init__(self, *, backend_ids: list[str], features: Vocabulary, regions: Vocabulary,
                 compliance: Vocabulary, feature_bits: np.ndarray, region_rows: np.ndarray,
                 compliance_rows: np.ndarray, lat_indptr: np.ndarray, lat_token: np.ndarray,
                 lat_vtoken: np.ndarray, lat_p99_ms: np.ndarray, id_rank: np.ndarray | None = None,
                 feature_rows: np.ndarray | None = None, capability_perf: dict[str, np.ndarray] | None = None,
                 **rows: np.ndarray):
        """Dense columns (no holes, one row per id, as the builders make them).
        ``feature_rows`` is accepted and dropped (the transposed bits hold the
        same); ``id_rank`` (byte-order ranks) is recomputed when missing;
        ``capability_perf`` holds the CAPABILITY_PERF entry columns (any
        missing one: every entry unstated)."""
        n = len(backend_ids)
        self.backend_ids: list[str | None] = list(backend_ids)
        self.features, self.regions, self.compliance = features, regions, compliance
        self.size = n
        self.entries = len(lat_p99_ms)
        rank = rank_ids(backend_ids) if id_rank is None else np.asarray(id_rank, dtype=RANK_DTYPE)
        store: dict[str, np.ndarray] = {}
        for name, (dtype, fill) in _ROW_COLUMNS.items():
            given = rows.get(name)
            store[name] = np.full(n, fill, dtype=dtype) if given is None else np.ascontiguousarray(given, dtype=dtype)
        unknown = set(rows) - set(_ROW_COLUMNS)
        if unknown:
            raise TypeError(f"unknown columns: {sorted(unknown)}")
        store["id_label"] = (rank + 1) * LABEL_GAP
        indptr = np.asarray(lat_indptr, dtype=INDEX_DTYPE)
        store["lat_start"] = indptr[:-1].copy()  # copies: the two overlap in indptr, and an add writes them
        store["lat_stop"] = indptr[1:].copy()
        for name, given in (("lat_token", lat_token), ("lat_vtoken", lat_vtoken), ("lat_p99_ms", lat_p99_ms)):
            store[name] = np.ascontiguousarray(given, dtype=_ENTRY_COLUMNS[name])
        extra = capability_perf or {}
        unknown_entries = set(extra) - set(CAPABILITY_PERF)
        if unknown_entries:
            raise TypeError(f"unknown entry columns: {sorted(unknown_entries)}")
        for name, (dtype, unstated) in CAPABILITY_PERF.items():
            given = extra.get(name)
            store[name] = np.full(self.entries, unstated, dtype=dtype) if given is None else \
                np.array(given, dtype=dtype)  # a copy: an add writes it
        # Until something is reserved, usage is the observed usage: the used
        # columns are the observed arrays themselves and the reserved ones
        # share one zero array (``hold_reservations`` separates them).
        self.reservable = any(name in rows and np.any(store[name]) for name in RESERVED_COLUMNS)
        if self.reservable:
            for name in USED_COLUMNS:  # usage as every rule reads it (observed + reserved, in this order)
                store[name] = store[_OBSERVED[name]] + store[_RESERVED[name]]
        else:
            zero = np.zeros(n, dtype=SCORE_DTYPE)
            for name in USED_COLUMNS:
                store[name] = store[_OBSERVED[name]]
                store[_RESERVED[name]] = zero
        store["region_rows"] = np.ascontiguousarray(region_rows, dtype=MASK_DTYPE)
        store["compliance_rows"] = np.ascontiguousarray(compliance_rows, dtype=MASK_DTYPE)
        words = max(1, (n + 63) // 64)
        store["feature_bits"] = np.ascontiguousarray(feature_bits, dtype=MASK_DTYPE).reshape(-1, words)
        alive = np.zeros(words, dtype=MASK_DTYPE)
        full, rest = divmod(n, 64)
        alive[:full] = ~MASK_DTYPE(0)
        if rest:
            alive[full] = (MASK_DTYPE(1) << MASK_DTYPE(rest)) - MASK_DTYPE(1)
        store["alive"] = alive
        self.store = store
        self.holes: list[int] = []          # free positions, reused by the next add
        self.dense = True                   # no hole, latency entries in position order
        self._rank_cache: np.ndarray | None = rank
        self._ids = None

    # --- shape ---------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Positions in use (live backends and holes)."""
        return self.size

    @property
    def live(self) -> int:
        return self.size - len(self.holes)

    @property
    def feature_bits(self) -> np.ndarray:
        """uint64[Tf, NW]: bit i of row t set when backend i declares token t."""
        return self.store["feature_bits"][:max(len(self.features), 1), :max(1, (self.size + 63) // 64)]

    @property
    def region_rows(self) -> np.ndarray:
        return self.store["region_rows"][:self.size]

    @property
    def compliance_rows(self) -> np.ndarray:
        return self.store["compliance_rows"][:self.size]

    @property
    def alive_mask(self) -> np.ndarray:
        """bool[n]: which positions hold a backend."""
        words = self.store["alive"][:max(1, (self.size + 63) // 64)]
        return np.unpackbits(words.astype("<u8", copy=False).view(np.uint8), bitorder="little")[:self.size] \
            .astype(bool)

    @property
    def id_rank(self) -> np.ndarray:
        """int64[n]: each live id's rank in byte order (holes: -1); the order
        labels the kernel compares sort the same way."""
        if self._rank_cache is None:
            rank = np.full(self.size, -1, dtype=RANK_DTYPE)
            live = np.flatnonzero(self.alive_mask)
            rank[live[np.argsort(self.id_label[live], kind="stable")]] = np.arange(len(live))
            self._rank_cache = rank
        return self._rank_cache

    @property
    def lat_indptr(self) -> np.ndarray:
        """int64[n+1]: the latency entries as CSR (dense columns only; see ``compacted``)."""
        if not self.dense:
            raise ValueError("latency entries are not in position order: use columns.compacted()")
        return np.append(self.lat_start, self.entries).astype(INDEX_DTYPE) if self.size else \
            np.zeros(1, dtype=INDEX_DTYPE)

    @property
    def feature_rows(self) -> np.ndarray:
        """uint64[n, Wf]: what backend i declares (the transpose of ``feature_bits``, made on request)."""
        t, n = len(self.features), self.size
        dense = np.unpackbits(self.feature_bits.astype("<u8", copy=False).view(np.uint8), axis=1,
                              bitorder="little")[:t, :n]
        return pack_bits(np.ascontiguousarray(dense.T.astype(bool)))

    def tokens_of(self, i: int) -> list[int]:
        """The feature tokens backend ``i`` declares, in vocabulary order."""
        t = len(self.features)
        col = (self.store["feature_bits"][:t, i >> 6] >> MASK_DTYPE(i & 63)) & MASK_DTYPE(1)
        return np.flatnonzero(col).tolist()

    def id_series(self):
        """The backend ids by position as a polars String Series (holes
        null), made once until the ids change (``ids_changed``)."""
        import polars as pl

        if self._ids is None:
            self._ids = pl.Series("backend_id", self.backend_ids, dtype=pl.String)
        return self._ids

    def ids_changed(self) -> None:
        """Positions were added, removed or reused: forget what was derived from the ids.
        (``_core.LayoutCore`` calls this only when one of these two is set:
        a cache added here must be named there too.)"""
        self._ids = None
        self._rank_cache = None

    def nbytes(self) -> int:
        """Bytes held by the numpy columns (ids and vocabularies excluded)."""
        return sum(a.nbytes for a in {id(a): a for a in self.store.values()}.values())

    def hold_reservations(self) -> bool:
        """Give the reserved and used columns arrays of their own (before the
        first reservation); True when arrays were replaced (the core must
        take its pointers again)."""
        if self.reservable:
            return False
        for name in USED_COLUMNS:
            self.store[_RESERVED[name]] = np.zeros_like(self.store[_OBSERVED[name]])
            self.store[name] = self.store[_OBSERVED[name]].copy()
        self.reservable = True
        return True

    def with_usage(self, **usage: np.ndarray) -> Columns:
        """A shallow copy whose ``used_*`` columns (and ``avail_score``,
        ``health``) are the given arrays: a batch's snapshot of the live
        state, read by the numpy paths."""
        out = object.__new__(Columns)
        out.__dict__.update(self.__dict__)
        out.store = dict(self.store)
        for name, values in usage.items():
            out.store[name] = values
        return out

    def overlay(self, columns: tuple[str, ...]) -> Columns:
        """A copy that shares every array but ``columns`` (copied, each
        alias kept: observed and used usage may be one array) and the alive
        words, with its own id list and holes: what a what-if view may
        change (remove a backend, write a value) without touching ``self``."""
        out = object.__new__(Columns)
        out.__dict__.update(self.__dict__)
        out.store = dict(self.store)
        copies: dict[int, np.ndarray] = {}
        for name in (*columns, "alive"):
            array = self.store[name]
            if id(array) not in copies:
                copies[id(array)] = array.copy()
            out.store[name] = copies[id(array)]
        for name, array in self.store.items():  # an alias of a copied array follows it
            if id(array) in copies:
                out.store[name] = copies[id(array)]
        out.backend_ids = list(self.backend_ids)
        out.holes = list(self.holes)
        out.ids_changed()
        return out

    def compacted(self) -> Columns:
        """The same registry with no holes: live backends in position order,
        latency entries in that order, ids ranked densely. ``self`` when
        already so."""
        if self.dense:
            return self
        live = np.flatnonzero(self.alive_mask)
        starts, stops = self.lat_start[live], self.lat_stop[live]
        counts = stops - starts
        entry = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if len(live) else \
            np.zeros(0, dtype=INDEX_DTYPE)
        entry = entry.astype(INDEX_DTYPE)
        t = len(self.features)
        bits = np.unpackbits(self.feature_bits.astype("<u8", copy=False).view(np.uint8), axis=1,
                             bitorder="little")[:t, :self.size][:, live]
        rows = {name: getattr(self, name)[live] for name in _ROW_COLUMNS
                if name not in ("id_label", "lat_start", "lat_stop")}
        return Columns(
            backend_ids=[self.backend_ids[i] for i in live.tolist()], features=self.features,
            regions=self.regions, compliance=self.compliance,
            feature_bits=pack_bits(np.ascontiguousarray(bits.astype(bool))) if t else
            np.zeros((1, max(1, (len(live) + 63) // 64)), dtype=MASK_DTYPE),
            region_rows=self.region_rows[live], compliance_rows=self.compliance_rows[live],
            lat_indptr=np.concatenate([[0], np.cumsum(counts)]).astype(INDEX_DTYPE),
            lat_token=self.lat_token[entry], lat_vtoken=self.lat_vtoken[entry], lat_p99_ms=self.lat_p99_ms[entry],
            capability_perf={name: getattr(self, name)[entry] for name in CAPABILITY_PERF}, **rows)


# Dense temporaries are bounded: a block of at most this many booleans is
# scattered and packed at a time (16 MiB), whatever the registry's size.
_DENSE_CELLS = 1 << 24
_ONE = MASK_DTYPE(1)


def pack_bits(dense: np.ndarray) -> np.ndarray:
    """bool[r, c] → uint64[r, ceil(c/64)], bit j of word w = column 64w+j."""
    r, c = dense.shape
    width = max(1, (c + 63) // 64) * 64
    if width != c:
        dense = np.concatenate([dense, np.zeros((r, width - c), dtype=bool)], axis=1)
    return np.packbits(dense, axis=1, bitorder="little").view(MASK_DTYPE).reshape(r, width // 64)


def _blocks(keys: np.ndarray, other: np.ndarray, n: int, size: int):
    """Pairs grouped by blocks of ``size`` consecutive keys: yields
    (first key of the block, keys − first, the matching ``other``)."""
    if np.any(keys[1:] < keys[:-1]):
        order = np.argsort(keys, kind="stable")
        keys, other = keys[order], other[order]
    bounds = np.searchsorted(keys, np.arange(0, n + size, size))
    for block, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if lo < hi:
            first = block * size
            yield first, keys[lo:hi] - first, other[lo:hi]


def _scatter(shape: tuple[int, int], rows: np.ndarray, bits: np.ndarray) -> np.ndarray | None:
    """uint64[shape] with bit ``bits[j]`` of row ``rows[j]`` set, each pair
    OR-ed straight into its word: memory is the output and the pairs, time
    the pairs. None when the pairs are dense enough that packing blocks of
    booleans is faster (a few ns a cell against ~100 ns a pair)."""
    r, words = shape
    if len(rows) >= r * words:
        return None
    out = np.zeros(r * words, dtype=MASK_DTYPE)
    np.bitwise_or.at(out, rows * words + (bits >> 6), _ONE << (bits & 63).astype(MASK_DTYPE))
    return out.reshape(r, words)


def set_bits(shape: tuple[int, int], rows: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """uint64 matrix with bit ``bits[j]`` set in row ``rows[j]`` (row-wise masks).

    Sparse pairs are OR-ed into their words; dense ones scattered into a
    boolean block and packed, a block of rows at a time (at most
    ``_DENSE_CELLS`` booleans): idempotent assignment, so repeated pairs need
    no ``.at``. Memory never grows with the vocabulary squared.
    """
    n, words = shape
    out = _scatter(shape, rows, bits)
    if out is not None:
        return out
    out = np.zeros((n, words), dtype=MASK_DTYPE)
    size = max(1, _DENSE_CELLS // (words * 64))
    for first, local_rows, block_bits in _blocks(rows, bits, n, size):
        dense = np.zeros((min(size, n - first), words * 64), dtype=bool)
        dense[local_rows, block_bits] = True
        out[first:first + len(dense)] = pack_bits(dense)
    return out


def bits_from_rows(n: int, n_tokens: int, backend: np.ndarray, token: np.ndarray) -> np.ndarray:
    """The transposed bitset: uint64[n_tokens, ceil(n/64)], bit i of row t set
    when backend i declares token t. Sparse pairs are OR-ed into their words;
    dense ones packed as in ``set_bits`` with backends along the bits, a
    block of backends at a time (pairs come in backend order: no sort)."""
    tokens = max(n_tokens, 1)
    nw = max(1, (n + 63) // 64)
    out = _scatter((tokens, nw), token, backend)
    if out is not None:
        return out
    out = np.zeros((tokens, nw), dtype=MASK_DTYPE)
    size = max(64, _DENSE_CELLS // tokens // 64 * 64)
    for first, local_backends, block_tokens in _blocks(backend, token, n, size):
        dense = np.zeros((tokens, size), dtype=bool)
        dense[block_tokens, local_backends] = True
        stop = min(nw, (first + size) // 64)
        out[:, first // 64:stop] = pack_bits(dense)[:, :stop - first // 64]
    return out


def has_bit(rows: np.ndarray, bit, which=slice(None)) -> np.ndarray:
    """bool: is ``bit`` set in the row-wise masks ``rows[which]`` (uint64[n, W]).
    ``bit`` is an int or an int array, broadcast against ``which`` (all rows by
    default, or row indices)."""
    return ((rows[which, bit >> 6] >> np.asarray(bit & 63, dtype=MASK_DTYPE)) & MASK_DTYPE(1)).astype(bool)


def lacks_token(columns: Columns, bit: int, index: np.ndarray | None = None) -> np.ndarray:
    """bool[len(index)]: which backends at positions ``index`` (every
    position when None) do not declare feature token ``bit``."""
    row = columns.feature_bits[bit]
    idx = np.arange(columns.n) if index is None else np.asarray(index, dtype=np.int64)
    return ((row[idx >> 6] >> (idx & 63).astype(MASK_DTYPE)) & MASK_DTYPE(1)) == 0


def open_incidents(reg: Registration, extra: tuple = ()) -> int:
    """How many incidents of ``reg`` (its health block's and the top-level
    list) and of ``extra`` (a health tracker's) have no ``resolved_at``."""
    listed = (*(reg.health.recent_incidents if reg.health is not None else ()), *reg.recent_incidents, *extra)
    return sum(1 for incident in listed if incident.resolved_at is None)


def compile_registry(registrations: list[Registration]) -> Columns:
    """Compile validated registrations (ids already checked unique)."""
    n = len(registrations)
    features, regions, compliance = Vocabulary(), Vocabulary(), Vocabulary()
    memo = TokenMemo()
    rows = [Row(reg, features, regions, compliance, memo) for reg in registrations]

    def pairs(bits_of) -> tuple[np.ndarray, np.ndarray]:
        counts = np.fromiter((len(bits_of(row)) for row in rows), dtype=np.int64, count=n)
        backend = np.repeat(np.arange(n, dtype=np.int64), counts)
        flat = [bit for row in rows for bit in bits_of(row)]
        return backend, np.asarray(flat, dtype=np.int64)

    lat = [entry for row in rows for entry in row.latency]
    lat_counts = np.fromiter((len(row.latency) for row in rows), dtype=np.int64, count=n)
    table = np.array([row.floats for row in rows], dtype=SCORE_DTYPE).reshape(n, len(INPUT_FLOATS))
    floats = {name: np.ascontiguousarray(table[:, j]) for j, name in enumerate(INPUT_FLOATS)}
    floats["open_incidents"] = np.fromiter((row.open_incidents for row in rows), dtype=SCORE_DTYPE, count=n)
    return assemble_columns(
        [reg.backend_id for reg in registrations], features, regions, compliance,
        feature_pairs=pairs(lambda row: row.tokens), region_pairs=pairs(lambda row: row.regions),
        compliance_pairs=pairs(lambda row: row.compliance),
        backend_type=np.fromiter((row.backend_type for row in rows), dtype=CODE_DTYPE, count=n),
        health=np.fromiter((row.health for row in rows), dtype=CODE_DTYPE, count=n),
        consistency=np.fromiter((row.consistency for row in rows), dtype=CODE_DTYPE, count=n),
        floats=floats, lat_indptr=np.concatenate([[0], np.cumsum(lat_counts)]).astype(np.int64),
        lat_token=np.array([e[0] for e in lat], dtype=np.int64),
        lat_vtoken=np.array([e[1] for e in lat], dtype=np.int64),
        lat_p99_ms=np.array([e[2] for e in lat], dtype=SCORE_DTYPE),
        capability_perf={name: np.array([e[3 + j] for e in lat], dtype=dtype)
                         for j, (name, (dtype, _)) in enumerate(CAPABILITY_PERF.items())})


Pairs = tuple[np.ndarray, np.ndarray]  # (backend, bit), int64 each


def assemble_columns(ids: list[str], features: Vocabulary, regions: Vocabulary, compliance: Vocabulary, *,
                     feature_pairs: Pairs, region_pairs: Pairs, compliance_pairs: Pairs,
                     backend_type: np.ndarray, health: np.ndarray, consistency: np.ndarray,
                     floats: dict[str, np.ndarray], lat_indptr: np.ndarray, lat_token: np.ndarray,
                     lat_vtoken: np.ndarray, lat_p99_ms: np.ndarray,
                     feature_rows: np.ndarray | None = None,
                     capability_perf: dict[str, np.ndarray] | None = None) -> Columns:
    """The end both builders share (``compile_registry`` and
    ``frames.columns_from_polars``): the masks packed from (backend, bit)
    pairs, the id ranks, the derived scores. ``floats`` holds the
    INPUT_FLOATS; ``feature_rows`` is accepted for the callers that packed
    it, and not kept (the transposed ``feature_bits`` hold the same)."""
    n = len(ids)
    check_mask_limits(n, features, regions, compliance)
    fb, ft = feature_pairs
    return Columns(
        backend_ids=ids, id_rank=rank_ids(ids), features=features, regions=regions, compliance=compliance,
        feature_bits=bits_from_rows(n, len(features), fb, ft),
        region_rows=set_bits((n, regions.words), *region_pairs),
        compliance_rows=set_bits((n, compliance.words), *compliance_pairs),
        backend_type=backend_type, health=health, consistency=consistency,
        **floats,
        cost_score=cost_score(floats["cost_per_1k_writes"]),
        avail_score=avail_score(floats["uptime_percent_24h"]),
        lat_indptr=lat_indptr, lat_token=lat_token, lat_vtoken=lat_vtoken, lat_p99_ms=lat_p99_ms,
        capability_perf=capability_perf,
    )


def check_mask_limits(n: int, features: Vocabulary, regions: Vocabulary, compliance: Vocabulary) -> None:
    """RegistryError when a vocabulary or a bit matrix would pass its limit
    (module docstring); called before any mask is allocated."""
    errors = []
    for what, vocab in (("capability and interface names (each name and name@version)", features),
                        ("regions", regions), ("compliance tags", compliance)):
        if len(vocab) > MAX_VOCABULARY:
            errors.append(("registry", f"Expected at most {MAX_VOCABULARY:,} distinct {what}, got {len(vocab):,}"))
            continue
        size = n * vocab.words * 8
        if vocab.words > 1 and size > MAX_MASK_BYTES:  # one word a backend costs what a float column does
            errors.append(("registry", f"Expected bit masks of at most {MAX_MASK_BYTES:,} bytes, got {size:,} "
                                       f"({n:,} backends × {len(vocab):,} distinct {what})"))
    if errors:
        raise RegistryError(errors)


def max_positions(features: Vocabulary, regions: Vocabulary, compliance: Vocabulary) -> int:
    """The most positions ``check_mask_limits`` allows under these
    vocabularies (-1 when a vocabulary is past its own limit): a live
    registry checks the limits again only when it grows past this or a
    vocabulary grows."""
    allowed = MAX_MASK_BYTES  # any count the memory of a registry allows
    for vocab in (features, regions, compliance):
        if len(vocab) > MAX_VOCABULARY:
            return -1
        if vocab.words > 1:
            allowed = min(allowed, MAX_MASK_BYTES // (vocab.words * 8))
    return allowed


def rank_ids(ids: list[str]) -> np.ndarray:
    """int64[n]: each id's position in byte order, the tie-breaker of every
    path. polars sorts strings by their UTF-8 bytes (which is also Python's
    code-point order), in Rust, a million ids in a few tens of ms."""
    import polars as pl

    if not ids:
        return np.zeros(0, dtype=RANK_DTYPE)
    return (pl.Series(ids, dtype=pl.String).rank("ordinal").to_numpy() - 1).astype(RANK_DTYPE)


def live_registration(reg: Registration, columns: Columns, i: int) -> Registration:
    """``reg`` with the live values of position ``i``: usage as the rules
    read it (observed + reserved), health status and uptime. A field whose
    live value equals what the registration says is left as written."""
    import msgspec

    from .schema import Current, Health

    store = columns.store
    usage = {}
    for field, column in (("write_rps", "used_write_rps"), ("read_rps", "used_read_rps"),
                          ("storage_used", "used_storage"), ("namespace_count", "used_namespaces"),
                          ("active_connections", "used_connections")):
        live = float(store[column][i])
        written = getattr(reg.current, field) if reg.current is not None else None
        if live != (written or 0):
            usage[field] = live
    if usage:
        reg = msgspec.structs.replace(reg, current=Current(**usage) if reg.current is None
                                      else msgspec.structs.replace(reg.current, **usage))
    uptime = float(store["uptime_percent_24h"][i])
    uptime_or_none = uptime if uptime == uptime else None
    status = HEALTH_STATUSES[store["health"][i]]
    health = reg.health
    if health is None:
        if status != "unknown" or uptime_or_none is not None:
            reg = msgspec.structs.replace(reg, health=Health(status=status, uptime_percent_24h=uptime_or_none))
    elif health.status != status or health.uptime_percent_24h != uptime_or_none:
        reg = msgspec.structs.replace(reg, health=msgspec.structs.replace(
            health, status=status, uptime_percent_24h=uptime_or_none))
    return reg


_LATENCY_FIELDS = (("p50_ms", "lat_p50_ms"), ("p95_ms", "lat_p95_ms"), ("p99_ms", "lat_p99_ms"),
                   ("p999_ms", "lat_p999_ms"))
_PERF_FIELDS = (("max_write_rps", "lat_max_write_rps"), ("max_read_rps", "lat_max_read_rps"),
                ("max_batch_size", "lat_max_batch_size"), ("max_concurrent_operations", "lat_concurrency"))


def capability_performance(columns: Columns, e: int) -> dict:
    """Entry ``e`` as a capability's ``performance`` mapping (only what it states)."""
    c = columns
    latency = {key: float(getattr(c, name)[e]) for key, name in _LATENCY_FIELDS
               if not math.isnan(getattr(c, name)[e])}
    out: dict = {"latency": latency} if latency else {}
    for key, name in _PERF_FIELDS:
        value = float(getattr(c, name)[e])
        if not math.isnan(value):
            out[key] = int(value) if key in ("max_batch_size", "max_concurrent_operations") else value
    if c.lat_batch[e] >= 0:
        out["supports_batch"] = bool(c.lat_batch[e])
    return out


def registration_from_columns(columns: Columns, i: int) -> Registration:
    """A Registration rebuilt from row ``i`` (for registries built from a
    table): what the columns hold, nothing more (no connection, no prices
    beyond cost_per_1k_writes)."""
    import msgspec

    from .schema import decode_hook

    c = columns

    def bits(rows: np.ndarray, vocab: Vocabulary) -> list[str]:
        """The tokens set in row ``i`` of ``rows``, in vocabulary order."""
        unpacked = np.unpackbits(rows[i].astype("<u8", copy=False).view(np.uint8), bitorder="little")[:len(vocab)]
        return [vocab.tokens[b] for b in np.flatnonzero(unpacked).tolist()]

    caps, ifcs = [], []
    for token in (c.features.tokens[t] for t in c.tokens_of(i)):
        if is_versioned(token):
            bare, version = split_versioned(token)
            name = bare[2:]
            (caps if token.startswith("c:") else ifcs).append({"name": name, "version": version})
    for e in range(c.lat_start[i], c.lat_stop[i]):
        bare, version = split_versioned(c.features.tokens[c.lat_vtoken[e]])
        name = bare[2:]
        for cap in caps:
            if cap["name"] == name and cap["version"] == version:
                cap["performance"] = capability_performance(c, e)

    def num(name: str) -> float | None:
        value = float(getattr(c, name)[i])
        return value if math.isfinite(value) else None

    doc = {
        "backend_id": c.backend_ids[i], "backend_type": BACKEND_TYPES[c.backend_type[i]],
        "capabilities": caps, "interfaces": ifcs,
        "capacity": {k: v for k, v in (("max_write_rps", num("max_write_rps")), ("max_read_rps", num("max_read_rps")),
                                       ("max_storage", num("max_storage")), ("max_namespaces", num("max_namespaces")),
                                       ("max_connections", num("max_connections")))
                     if v is not None},
        "current": {"write_rps": num("write_rps"), "read_rps": num("read_rps"), "storage_used": num("storage_used"),
                    "namespace_count": num("namespace_count"), "active_connections": num("active_connections")},
        "health": {"status": HEALTH_STATUSES[c.health[i]]},
        "regions": bits(c.region_rows, c.regions), "compliance": bits(c.compliance_rows, c.compliance),
    }
    if num("uptime_percent_24h") is not None:
        doc["health"]["uptime_percent_24h"] = num("uptime_percent_24h")
    if num("cost_per_1k_writes") is not None:
        doc["cost"] = {"cost_per_1k_writes": num("cost_per_1k_writes")}
    if c.consistency[i] < UNKNOWN_CONSISTENCY:
        doc["consistency"] = CONSISTENCY_LEVELS[c.consistency[i]]
    return msgspec.convert(doc, Registration, dec_hook=decode_hook)
