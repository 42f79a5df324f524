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
from dataclasses import dataclass, fields

import numpy as np

from ._types import CODE_DTYPE, MASK_DTYPE, RANK_DTYPE, SCORE_DTYPE
from .errors import RegistryError
from .schema import BACKEND_TYPES, CONSISTENCY_LEVELS, DEFAULT_VERSION, HEALTH_STATUSES, Registration
from .vocabulary import (Vocabulary, capability_token, interface_token, is_versioned, split_versioned,
                         versioned)

__all__ = ["Columns", "compile_registry", "assemble_columns", "HEALTH_CODE", "TYPE_CODE", "CONSISTENCY_CODE",
           "UNKNOWN_CONSISTENCY", "FLOAT_COLUMNS", "INPUT_FLOATS", "MISSING", "bits_from_rows", "has_bit",
           "cost_score", "avail_score", "MAX_NAMES_PER_BACKEND", "MAX_VOCABULARY", "MAX_MASK_BYTES",
           "check_mask_limits"]

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
    "max_namespaces", "namespace_count", "cost_per_1k_writes", "uptime_percent_24h",
    "cost_score", "avail_score",
)
INPUT_FLOATS = FLOAT_COLUMNS[:-2]  # cost_score and avail_score are derived
# What an input float column holds when the value is not given (module docstring).
MISSING = {"max_write_rps": 0.0, "max_read_rps": 0.0, "write_rps": 0.0, "read_rps": 0.0,
           "max_storage": math.nan, "storage_used": 0.0, "max_namespaces": math.inf, "namespace_count": 0.0,
           "cost_per_1k_writes": math.nan, "uptime_percent_24h": math.nan}


def cost_score(cost_per_1k_writes: np.ndarray) -> np.ndarray:
    """SPEC §4: 1/(c+1), and 0 when no price is declared (NaN)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(cost_per_1k_writes), 0.0, 1.0 / (cost_per_1k_writes + 1.0))


def avail_score(uptime: np.ndarray) -> np.ndarray:
    """SPEC §4: uptime/100, and 0 when unknown (NaN)."""
    return np.where(np.isnan(uptime), 0.0, uptime / 100.0)


@dataclass(eq=False)
class Columns:
    """The compiled registry. Shapes: n backends, Wf/Wr/Wk mask words,
    Tf feature tokens, NW = ceil(n/64) words of a transposed bitset."""

    backend_ids: list[str]
    id_rank: np.ndarray           # int64[n]: position of backend_id in byte order
    features: Vocabulary          # capability and interface tokens
    regions: Vocabulary
    compliance: Vocabulary
    feature_rows: np.ndarray      # uint64[n, Wf]
    feature_bits: np.ndarray      # uint64[Tf, NW]
    region_rows: np.ndarray       # uint64[n, Wr]
    compliance_rows: np.ndarray   # uint64[n, Wk]
    backend_type: np.ndarray      # uint8[n]: index in BACKEND_TYPES
    health: np.ndarray            # uint8[n]: index in HEALTH_STATUSES (live)
    consistency: np.ndarray       # uint8[n]: index in CONSISTENCY_LEVELS, 4 = unknown
    max_write_rps: np.ndarray     # float64[n], missing = 0
    max_read_rps: np.ndarray
    write_rps: np.ndarray         # live current usage, missing = 0
    read_rps: np.ndarray
    max_storage: np.ndarray       # bytes, missing = NaN
    storage_used: np.ndarray      # bytes, live
    max_namespaces: np.ndarray    # missing = +inf
    namespace_count: np.ndarray   # live
    cost_per_1k_writes: np.ndarray  # missing = NaN
    uptime_percent_24h: np.ndarray  # missing = NaN (live)
    cost_score: np.ndarray        # derived, float64[n]
    avail_score: np.ndarray       # derived, live
    lat_indptr: np.ndarray        # int64[n+1]: CSR over capabilities that declare p99
    lat_token: np.ndarray         # int64[e]: feature bit of ``c:name``
    lat_vtoken: np.ndarray        # int64[e]: feature bit of ``c:name@version``
    lat_p99_ms: np.ndarray        # float64[e]

    @property
    def n(self) -> int:
        return len(self.backend_ids)

    def nbytes(self) -> int:
        """Bytes held by the numpy columns (ids and vocabularies excluded)."""
        return sum(getattr(self, f.name).nbytes for f in fields(self)
                   if isinstance(getattr(self, f.name), np.ndarray))


# Dense temporaries are bounded: a block of at most this many booleans is
# scattered and packed at a time (16 MiB), whatever the registry's size.
_DENSE_CELLS = 1 << 24
_ONE = MASK_DTYPE(1)


def _pack(dense: np.ndarray) -> np.ndarray:
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


def _set_bits(shape: tuple[int, int], rows: np.ndarray, bits: np.ndarray) -> np.ndarray:
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
        out[first:first + len(dense)] = _pack(dense)
    return out


def bits_from_rows(n: int, n_tokens: int, backend: np.ndarray, token: np.ndarray) -> np.ndarray:
    """The transposed bitset: uint64[n_tokens, ceil(n/64)], bit i of row t set
    when backend i declares token t. Sparse pairs are OR-ed into their words;
    dense ones packed as in ``_set_bits`` with backends along the bits, a
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
        out[:, first // 64:stop] = _pack(dense)[:, :stop - first // 64]
    return out


def has_bit(rows: np.ndarray, bit, which=slice(None)) -> np.ndarray:
    """bool: is ``bit`` set in the row-wise masks ``rows[which]`` (uint64[n, W]).
    ``bit`` is an int or an int array, broadcast against ``which`` (all rows by
    default, or row indices)."""
    return ((rows[which, bit >> 6] >> np.asarray(bit & 63, dtype=MASK_DTYPE)) & MASK_DTYPE(1)).astype(bool)


def _put(floats: dict[str, np.ndarray], i: int, name: str, value: float | None) -> None:
    floats[name][i] = MISSING[name] if value is None else value


def compile_registry(registrations: list[Registration]) -> Columns:
    """Compile validated registrations (ids already checked unique)."""
    n = len(registrations)
    features, regions, compliance = Vocabulary(), Vocabulary(), Vocabulary()
    f_backend: list[int] = []
    f_token: list[int] = []
    r_backend: list[int] = []
    r_bit: list[int] = []
    k_backend: list[int] = []
    k_bit: list[int] = []
    lat_indptr = [0]
    lat_token: list[int] = []
    lat_vtoken: list[int] = []
    lat_p99: list[float] = []
    floats = {name: np.empty(n, dtype=SCORE_DTYPE) for name in INPUT_FLOATS}
    btype = np.empty(n, dtype=CODE_DTYPE)
    health = np.empty(n, dtype=CODE_DTYPE)
    consistency = np.empty(n, dtype=CODE_DTYPE)

    for i, reg in enumerate(registrations):
        for cap in reg.capabilities:
            name, version = (cap, DEFAULT_VERSION) if isinstance(cap, str) else (cap.name, cap.version)
            tok = capability_token(name)
            bare, exact = features.add(tok), features.add(versioned(tok, version))
            f_backend += (i, i)
            f_token += (bare, exact)
            p99 = None if isinstance(cap, str) else cap.p99_ms
            if p99 is not None:
                lat_token.append(bare)
                lat_vtoken.append(exact)
                lat_p99.append(p99)
        lat_indptr.append(len(lat_p99))
        for ifc in reg.interfaces:
            name, version = (ifc, DEFAULT_VERSION) if isinstance(ifc, str) else (ifc.name, ifc.version)
            tok = interface_token(name)
            f_backend += (i, i)
            f_token += (features.add(tok), features.add(versioned(tok, version)))
        for region in reg.regions:
            r_backend.append(i)
            r_bit.append(regions.add(region))
        for tag in reg.compliance:
            k_backend.append(i)
            k_bit.append(compliance.add(tag))

        cap_, cur, cost, hl = reg.capacity, reg.current, reg.cost, reg.health
        _put(floats, i, "max_write_rps", cap_ and cap_.max_write_rps)
        _put(floats, i, "max_read_rps", cap_ and cap_.max_read_rps)
        _put(floats, i, "max_storage", cap_ and cap_.max_storage)
        _put(floats, i, "max_namespaces", cap_ and cap_.max_namespaces)
        _put(floats, i, "write_rps", cur and cur.write_rps)
        _put(floats, i, "read_rps", cur and cur.read_rps)
        _put(floats, i, "storage_used", cur and cur.storage_used)
        _put(floats, i, "namespace_count", cur and cur.namespace_count)
        _put(floats, i, "cost_per_1k_writes", cost and cost.cost_per_1k_writes)
        _put(floats, i, "uptime_percent_24h", hl and hl.uptime_percent_24h)
        btype[i] = TYPE_CODE[reg.backend_type]
        health[i] = HEALTH_CODE[reg.health_status]
        consistency[i] = UNKNOWN_CONSISTENCY if reg.consistency is None else CONSISTENCY_CODE[reg.consistency]

    def pairs(backend: list[int], bit: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(backend, dtype=np.int64), np.asarray(bit, dtype=np.int64)

    return assemble_columns(
        [reg.backend_id for reg in registrations], features, regions, compliance,
        feature_pairs=pairs(f_backend, f_token), region_pairs=pairs(r_backend, r_bit),
        compliance_pairs=pairs(k_backend, k_bit), backend_type=btype, health=health, consistency=consistency,
        floats=floats, lat_indptr=np.asarray(lat_indptr, dtype=np.int64),
        lat_token=np.asarray(lat_token, dtype=np.int64), lat_vtoken=np.asarray(lat_vtoken, dtype=np.int64),
        lat_p99_ms=np.asarray(lat_p99, dtype=SCORE_DTYPE))


Pairs = tuple[np.ndarray, np.ndarray]  # (backend, bit), int64 each


def assemble_columns(ids: list[str], features: Vocabulary, regions: Vocabulary, compliance: Vocabulary, *,
                     feature_pairs: Pairs, region_pairs: Pairs, compliance_pairs: Pairs,
                     backend_type: np.ndarray, health: np.ndarray, consistency: np.ndarray,
                     floats: dict[str, np.ndarray], lat_indptr: np.ndarray, lat_token: np.ndarray,
                     lat_vtoken: np.ndarray, lat_p99_ms: np.ndarray,
                     feature_rows: np.ndarray | None = None) -> Columns:
    """The end both builders share (``compile_registry`` and
    ``frames.columns_from_polars``): the masks packed from (backend, bit)
    pairs, the id ranks, the derived scores. ``floats`` holds the
    INPUT_FLOATS; ``feature_rows`` is passed when the caller has packed it."""
    n = len(ids)
    check_mask_limits(n, features, regions, compliance)
    fb, ft = feature_pairs
    return Columns(
        backend_ids=ids, id_rank=rank_ids(ids), features=features, regions=regions, compliance=compliance,
        feature_rows=_set_bits((n, features.words), fb, ft) if feature_rows is None else feature_rows,
        feature_bits=bits_from_rows(n, len(features), fb, ft),
        region_rows=_set_bits((n, regions.words), *region_pairs),
        compliance_rows=_set_bits((n, compliance.words), *compliance_pairs),
        backend_type=backend_type, health=health, consistency=consistency,
        **floats,
        cost_score=cost_score(floats["cost_per_1k_writes"]),
        avail_score=avail_score(floats["uptime_percent_24h"]),
        lat_indptr=lat_indptr, lat_token=lat_token, lat_vtoken=lat_vtoken, lat_p99_ms=lat_p99_ms,
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


def rank_ids(ids: list[str]) -> np.ndarray:
    """int64[n]: each id's position in byte order, the tie-breaker of every
    path. polars sorts strings by their UTF-8 bytes (which is also Python's
    code-point order), in Rust, a million ids in a few tens of ms."""
    import polars as pl

    if not ids:
        return np.zeros(0, dtype=RANK_DTYPE)
    return (pl.Series(ids, dtype=pl.String).rank("ordinal").to_numpy() - 1).astype(RANK_DTYPE)


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
    for token in bits(c.feature_rows, c.features):
        if is_versioned(token):
            bare, version = split_versioned(token)
            name = bare[2:]
            (caps if token.startswith("c:") else ifcs).append({"name": name, "version": version})
    for e in range(c.lat_indptr[i], c.lat_indptr[i + 1]):
        bare, version = split_versioned(c.features.tokens[c.lat_vtoken[e]])
        name = bare[2:]
        for cap in caps:
            if cap["name"] == name and cap["version"] == version:
                cap["performance"] = {"latency": {"p99_ms": float(c.lat_p99_ms[e])}}

    def num(name: str) -> float | None:
        value = float(getattr(c, name)[i])
        return value if math.isfinite(value) else None

    doc = {
        "backend_id": c.backend_ids[i], "backend_type": BACKEND_TYPES[c.backend_type[i]],
        "capabilities": caps, "interfaces": ifcs,
        "capacity": {k: v for k, v in (("max_write_rps", num("max_write_rps")), ("max_read_rps", num("max_read_rps")),
                                       ("max_storage", num("max_storage")), ("max_namespaces", num("max_namespaces")))
                     if v is not None},
        "current": {"write_rps": num("write_rps"), "read_rps": num("read_rps"), "storage_used": num("storage_used"),
                    "namespace_count": num("namespace_count")},
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
