"""Save and reload a compiled registry: ``Registry.save(path)`` and
``load_snapshot(path)``.

A snapshot is one uncompressed ``.npz`` file (numpy's own container, read
without pickle): every compiled column as it is in memory, the vocabularies
and backend ids as UTF-8 buffers with offsets, each registration as its own
msgpack record (decoded only when ``registry[backend_id]`` asks for it), and
a ``manifest``: a BLAKE2b checksum over every member's CRC-32 (which
``zipfile`` verifies as it reads the member), so the content is checked
without a second pass over it. Secrets never go in:
an inline secret (a registry loaded with ``allow_inline_secrets=True``) is
stored as ``redact.REMOVED``, which the reloaded registry shows.

A snapshot is read as untrusted input, as strictly as a registry file. The
members are described once, in :data:`MEMBERS` (name, dtype, shape rule,
value check), in the order they are read: only those members are read, an
unknown one is refused, and each ``.npy`` header's dtype and shape are
checked against the lengths already known *before* its data is read, so
nothing larger than the file itself is ever allocated. Then every value is
checked (ranges, offsets, names, codes), the columns against each other
(the transposed feature bits against the rows, derived scores against
their inputs, latencies against the declared capabilities, ids against
their ranks) and the checksum last; a record is checked against its row
when it is decoded. Anything wrong is a :class:`RegistryError` naming it.
Reloading is a few array reads and vectorized checks, nothing is parsed,
validated or compiled again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import stat
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import msgspec
import numpy as np

from ._types import CODE_DTYPE, INDEX_DTYPE, MASK_DTYPE, RANK_DTYPE, SCORE_DTYPE
from .compiled import (
    BATCH_DTYPE, CAPABILITY_PERF, FLOAT_COLUMNS, OPTIONAL_COLUMNS, RESERVED_COLUMNS, Columns, avail_score, check_mask_limits, cost_score, pack_bits, rank_ids,
)
from .errors import RegistryError
from .output import checked_path, open_output
from .redact import REMOVED, is_inline_secret, mask_url_password, redacted, url_password
from .schema import (
    BACKEND_TYPES, CONSISTENCY_LEVELS, HEALTH_STATUSES, Registration, decode_hook, encode_hook,
)
from .vocabulary import VERSION_SEP, Vocabulary, split_versioned

__all__ = ["save_snapshot", "read_snapshot", "FORMAT", "MEMBERS", "Member", "STORED_COLUMNS"]

# The columns a snapshot stores, of dense columns (Columns.compacted), in
# this order; the reserved ones and the ``extra.*`` members may be absent.
STORED_COLUMNS = ("id_rank", "feature_rows", "feature_bits", "region_rows", "compliance_rows", "backend_type",
                  "health", "consistency", *FLOAT_COLUMNS, "lat_indptr", "lat_token", "lat_vtoken", "lat_p99_ms")

FORMAT = "prism_match.snapshot/3"
# Formats read: /2 had no per-capability performance beyond p99 (its entries
# load with every other value unstated) and no entry without a p99.
_READABLE = (FORMAT, "prism_match.snapshot/2")
_VOCABS = ("features", "regions", "compliance")
_MANIFEST = "manifest"
_MAX_MANIFEST = 4096
_CHUNK = 1 << 18


# --- strings as buffers ------------------------------------------------------------------

def pack_bytes(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """One uint8 buffer and int64[len(blobs)+1] offsets: blob j is buf[off[j]:off[j+1]]."""
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets


def _pack_strings(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return pack_bytes([s.encode("utf-8") for s in items])


def _unpack_strings(buf: np.ndarray, offsets: np.ndarray) -> list[str]:
    if len(offsets) <= 1:
        return []
    text = buf.tobytes()
    if b"\x00" not in text:
        # Fast path: mark the boundaries with NUL (absent from the text), then
        # one decode and one split instead of a slice per string.
        marks = np.zeros(len(text) + len(offsets) - 2, dtype=np.uint8)
        starts = offsets[1:-1] + np.arange(len(offsets) - 2)
        keep = np.ones(len(marks), dtype=bool)
        keep[starts] = False
        marks[keep] = buf
        return marks.tobytes().decode("utf-8").split("\x00")
    return [text[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


# --- records: registrations, without their secrets -----------------------------------------

def _without_secrets(reg: Registration) -> Registration:
    """``reg`` with every inline secret replaced by ``REMOVED`` (the places
    the loader checks: auth password and token, the endpoint's URL password,
    secret-named keys and URL passwords in metadata)."""
    conn, changes = reg.connection, {}
    if conn is not None:
        conn_changes: dict[str, Any] = {}
        auth = conn.auth
        if auth is not None:
            fields = {f: REMOVED for f in ("password", "token") if is_inline_secret(getattr(auth, f, None))}
            if fields:
                conn_changes["auth"] = msgspec.structs.replace(auth, **fields)
        if conn.endpoint is not None and url_password(conn.endpoint):
            conn_changes["endpoint"] = mask_url_password(conn.endpoint, REMOVED)
        if conn_changes:
            changes["connection"] = msgspec.structs.replace(conn, **conn_changes)
    if reg.metadata:
        metadata = redacted("metadata", reg.metadata, REMOVED)
        if metadata != reg.metadata:
            changes["metadata"] = metadata
    return msgspec.structs.replace(reg, **changes) if changes else reg


# A registration as the registry keeps it and a snapshot stores it: its
# record, msgpack (msgspec's Encoder and Decoder are safe to share between
# threads). A record never holds an inline secret.
RECORD_ENCODER = msgspec.msgpack.Encoder(enc_hook=encode_hook)
_RECORD_DECODER = msgspec.msgpack.Decoder(Registration, dec_hook=decode_hook)


def held_record(reg: Registration) -> bytes | Registration:
    """What the registry keeps of a registration whose inline secrets may
    have been allowed: its record, or the Registration itself when it holds
    one."""
    return RECORD_ENCODER.encode(reg) if _without_secrets(reg) is reg else reg


def registration_of(held: bytes | Registration) -> Registration:
    """The registration a kept record (or Registration) stands for."""
    return _RECORD_DECODER.decode(held) if type(held) is bytes else held  # type: ignore[return-value]


def stored_record(held: bytes | Registration) -> bytes:
    """What a snapshot stores of a kept record or Registration."""
    return held if type(held) is bytes else RECORD_ENCODER.encode(_without_secrets(held))  # type: ignore[return-value]


class RecordSource:
    """Registrations decoded one at a time from a snapshot's msgpack records,
    each checked against its row (id and type) when decoded."""

    def __init__(self, buf: np.ndarray, offsets: np.ndarray, columns: Columns, name: str = "snapshot"):
        self._data = buf.tobytes()
        self._offsets = offsets
        self._decoder = _RECORD_DECODER
        # The row of each record as it was read (the registry's rows may move later).
        self.ids: list[str] = list(columns.backend_ids)  # type: ignore[arg-type]
        self._types = columns.backend_type.copy()
        self._name = name

    def __call__(self, i: int) -> Registration:
        try:
            reg = self._decoder.decode(self._data[self._offsets[i]:self._offsets[i + 1]])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RegistryError(f"Snapshot is damaged: record {i} ({str(exc)[:120]})", self._name) from None
        if reg.backend_id != self.ids[i] or reg.backend_type != BACKEND_TYPES[self._types[i]]:
            raise RegistryError(f"Snapshot is damaged: record {i} is not the registration of its row "
                                f"(`{self.ids[i][:60]}`)", self._name)
        return reg

    def record(self, i: int) -> bytes:
        """Record ``i`` as stored (not decoded, not checked)."""
        return self._data[self._offsets[i]:self._offsets[i + 1]]

    def records(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self._data, dtype=np.uint8), self._offsets


# --- the members, described once ------------------------------------------------------------

Known = dict  # what the members read so far tell: sizes ("n", "features", "lat"...), arrays, strings


@dataclasses.dataclass(frozen=True)
class Member:
    """One member of the archive: its dtype, its shape from what is known
    so far (``-1``: any length, to be checked by ``check``), and ``check``,
    which looks at the values (and may record what they tell in ``known``)
    and returns what is wrong, or None."""

    name: str
    dtype: np.dtype
    shape: Callable[[Known], tuple[int, ...]]
    check: Callable[[np.ndarray, Known], str | None] | None = None
    required: bool = True


def _n(k: Known) -> tuple[int, ...]:
    return (k["n"],)


def _offsets(key: str, length: Callable[[Known], int] | None = None):
    """Check of an offsets member: starts at 0, never decreases; records in
    ``known`` how many items it delimits (``key``), the length of their
    buffer (``key.bytes``) and the offsets (``key.off``)."""
    def check(off: np.ndarray, k: Known) -> str | None:
        if len(off) < 1 or off[0] != 0 or (np.diff(off) < 0).any():
            return "is out of range (offsets out of order)"
        if length is not None and len(off) != length(k) + 1:
            return f"is out of range ({len(off)} offsets, expected {length(k) + 1})"
        k[key], k[key + ".bytes"], k[key + ".off"] = len(off) - 1, int(off[-1]), off
        return None
    return check


_CONTROL = re.compile(r"[\x00-\x1f]")  # as schema.Name


def _strings(key: str, token_check: Callable[[list[str]], str | None] | None = None):
    """Check of a string buffer: UTF-8, names without control characters,
    no name twice; the strings are kept in ``known[key.names]``."""
    def check(buf: np.ndarray, k: Known) -> str | None:
        off = k[key + ".off"]
        try:
            items = _unpack_strings(buf, off)
        except UnicodeDecodeError:
            return "is not UTF-8 text"
        # One pass over the bytes (a UTF-8 byte below 0x20 is a control
        # character itself), the strings looked at only when it finds one.
        clean = not (buf < 0x20).any() and not (np.diff(off) == 0).any()
        if len(set(items)) != len(items):
            return "repeats a name" if key != "ids" else "repeats a backend id"
        if token_check is not None:
            problem = token_check(items)
        elif clean:
            problem = None
        else:
            problem = next((f"holds an empty name or one with a control character (`{s[:40]!r}`)"
                            for s in items if not s or _CONTROL.search(s)), None)
        if problem:
            return problem
        k[key + ".names"] = items
        return None
    return check


def _feature_tokens(tokens: list[str]) -> str | None:
    """``c:name`` or ``i:name``, or either with ``<SEP>version``, names
    without control characters, and every versioned token's bare one present."""
    known = set(tokens)
    for token in tokens:
        bare, version = split_versioned(token)
        name = bare[2:]
        if bare[:2] not in ("c:", "i:") or not name or _CONTROL.search(name) \
                or (version is not None and (not version or _CONTROL.search(version))):
            return f"holds an unknown feature token (`{token[:40]!r}`)"
        if version is not None and bare not in known:
            return f"holds `{token[:40]!r}` without its bare name"
    return None


def _codes(bound: int):
    def check(codes: np.ndarray, k: Known) -> str | None:
        return "is out of range" if len(codes) and int(codes.max()) >= bound else None
    return check


def _floats(low: float = 0.0, high: float = math.inf, *, nan: bool = False, inf: bool = False):
    """Check of a float column: in [low, high], NaN (missing) and +inf only where allowed."""
    def check(values: np.ndarray, k: Known) -> str | None:
        missing = np.isnan(values)
        bad = ~missing & ((values < low) | (values > high))
        if not inf:
            bad |= np.isposinf(values)
        if not nan:
            bad |= missing
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return f"holds `{float(values[i])!r}` at row {i}, out of range"
        return None
    return check


def _words(vocab: str) -> Callable[[Known], tuple[int, ...]]:
    return lambda k: (k["n"], max(1, (k[vocab] + 63) // 64))


def _padding_clear(vocab: str):
    """Bits past the vocabulary are zero (the kernel would read them as names)."""
    def check(rows: np.ndarray, k: Known) -> str | None:
        used = k[vocab] % 64
        if rows.shape[1] and used:
            if (rows[:, -1] >> MASK_DTYPE(used)).any():
                return "sets bits past its vocabulary"
        elif rows.shape[1] and k[vocab] == 0 and rows.any():
            return "sets bits past its vocabulary"
        return None
    return check


def _lat_tokens(versioned: bool):
    def check(tokens: np.ndarray, k: Known) -> str | None:
        features = k["features.names"]
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= len(features)):
            return "is out of range"
        for t in np.flatnonzero(np.bincount(tokens, minlength=len(features))).tolist():
            bare, version = split_versioned(features[t])
            if not bare.startswith("c:") or (version is not None) != versioned:
                return f"names `{features[t][:40]!r}`, not a capability{' version' if versioned else ''}"
        return None
    return check


def _batch_codes(values: np.ndarray, k: Known) -> str | None:
    bad = (values < -1) | (values > 1)
    return f"holds `{int(values[bad][0])}`, out of range" if bad.any() else None


def _column(name: str) -> Member:
    dtypes = {"feature_rows": MASK_DTYPE, "feature_bits": MASK_DTYPE, "region_rows": MASK_DTYPE,
              "compliance_rows": MASK_DTYPE, "backend_type": CODE_DTYPE, "health": CODE_DTYPE,
              "consistency": CODE_DTYPE, "id_rank": RANK_DTYPE, "lat_indptr": INDEX_DTYPE,
              "lat_token": INDEX_DTYPE, "lat_vtoken": INDEX_DTYPE, "lat_batch": BATCH_DTYPE}
    shapes: dict[str, Callable[[Known], tuple[int, ...]]] = {
        "feature_rows": _words("features"), "region_rows": _words("regions"),
        "compliance_rows": _words("compliance"),
        "feature_bits": lambda k: (max(k["features"], 1), max(1, (k["n"] + 63) // 64)),
        "lat_indptr": lambda k: (k["n"] + 1,),
        # lat_indptr delimits the latency entries as ids.off delimits the id bytes
        "lat_token": lambda k: (k["lat.bytes"],), "lat_vtoken": lambda k: (k["lat.bytes"],),
        "lat_p99_ms": lambda k: (k["lat.bytes"],),
        **{name: (lambda k: (k["lat.bytes"],)) for name in CAPABILITY_PERF},
    }
    checks: dict[str, Callable[[np.ndarray, Known], str | None]] = {
        "feature_rows": _padding_clear("features"), "region_rows": _padding_clear("regions"),
        "compliance_rows": _padding_clear("compliance"),
        "backend_type": _codes(len(BACKEND_TYPES)), "health": _codes(len(HEALTH_STATUSES)),
        "consistency": _codes(len(CONSISTENCY_LEVELS) + 1),
        "lat_indptr": _offsets("lat", lambda k: k["n"]),
        "lat_token": _lat_tokens(False), "lat_vtoken": _lat_tokens(True), "lat_p99_ms": _floats(nan=True),
        **{name: _floats(nan=True) for name in CAPABILITY_PERF if name != "lat_batch"}, "lat_batch": _batch_codes,
        "max_storage": _floats(nan=True), "max_namespaces": _floats(inf=True), "max_connections": _floats(nan=True),
        "cost_per_1k_writes": _floats(nan=True), "uptime_percent_24h": _floats(0.0, 100.0, nan=True),
        "cost_score": _floats(0.0, 1.0), "avail_score": _floats(0.0, 1.0),
        "id_rank": None, "feature_bits": None,  # checked against the ids and the rows (_cross_check)
    }
    dtype = np.dtype(dtypes.get(name, SCORE_DTYPE))
    return Member(f"col.{name}", dtype, shapes.get(name, _n), checks.get(name, _floats()))


def _string_members(prefix: str, key: str, length: Callable[[Known], int] | None = None,
                    token_check: Callable[[list[str]], str | None] | None = None) -> list[Member]:
    return [Member(f"{prefix}.off", np.dtype(np.int64), lambda k: (-1,), _offsets(key, length)),
            Member(f"{prefix}.buf", np.dtype("u1"), lambda k: (k[key + ".bytes"],), _strings(key, token_check))]


def _format_check(value: np.ndarray, k: Known) -> str | None:
    return None if value.tobytes() in tuple(f.encode() for f in _READABLE) else "unknown format"


def _ids_known(off: np.ndarray, k: Known) -> str | None:
    problem = _offsets("ids")(off, k)
    k["n"] = k.get("ids", 0)
    return problem


def _non_negative(value: np.ndarray, k: Known) -> str | None:
    return None if (value >= 0).all() else "is out of range (negative)"


def _bounded_bytes(value: np.ndarray, k: Known) -> str | None:
    # Reservations are a few dozen bytes each: bounded by the registry's size.
    return None if len(value) <= 256 * (k["n"] + 1) * 64 else "is larger than a registry this size can hold"


# Read in this order: each shape rule uses only what the members before it told.
MEMBERS: tuple[Member, ...] = (
    Member("format", np.dtype("u1"), lambda k: (len(FORMAT),), _format_check),
    Member("ids.off", np.dtype(np.int64), lambda k: (-1,), _ids_known),
    Member("ids.buf", np.dtype("u1"), lambda k: (k["ids.bytes"],), _strings("ids")),
    *_string_members("vocab.features", "features", token_check=_feature_tokens),
    *_string_members("vocab.regions", "regions"),
    *_string_members("vocab.compliance", "compliance"),
    *(_column(name) for name in STORED_COLUMNS),
    *(Member(f"col.{name}", np.dtype(SCORE_DTYPE), _n, _floats(), required=False)
      for name in (*RESERVED_COLUMNS, *OPTIONAL_COLUMNS)),
    # Absent from a /2 snapshot: every entry unstated.
    *(dataclasses.replace(_column(name), required=False) for name in CAPABILITY_PERF),
    Member("extra.version", np.dtype(np.int64), lambda k: (1,), _non_negative, required=False),
    Member("extra.reservations", np.dtype("u1"), lambda k: (-1,), _bounded_bytes, required=False),
    Member("reg.off", np.dtype(np.int64), lambda k: (k["n"] + 1,), _offsets("records", lambda k: k["n"]),
           required=False),
    Member("reg.buf", np.dtype("u1"), lambda k: (k["records.bytes"],), required=False),
)
_NAMES = {m.name for m in MEMBERS} | {_MANIFEST}


def _digest(archive: zipfile.ZipFile) -> str:
    """BLAKE2b over the members in MEMBERS order: each one's name, size and
    CRC-32. The content is covered by the CRC-32s, which ``zipfile``
    verifies as each member is read to its end (no second pass over the
    data); the digest ties them together, so a member changed, swapped,
    added or dropped since the save shows."""
    h = hashlib.blake2b(digest_size=32)
    names = set(archive.namelist())
    for member in MEMBERS:
        if member.name + ".npy" in names:
            info = archive.getinfo(member.name + ".npy")
            h.update(f"{member.name}\0{info.file_size}\0{info.CRC:08x}\0".encode())
    return h.hexdigest()


def _write_archive(handle: Any, arrays: dict[str, np.ndarray]) -> None:
    """The members as ``np.savez`` writes them (stored, one ``.npy`` each),
    then the manifest over their CRC-32s."""
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, value in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
        manifest = np.frombuffer(json.dumps({"blake2b": _digest(archive)}).encode(), dtype=np.uint8)
        with archive.open(_MANIFEST + ".npy", "w") as member:
            np.lib.format.write_array(member, manifest, allow_pickle=False)


# --- saving -----------------------------------------------------------------------------------

def save_snapshot(columns: Columns, records: tuple[np.ndarray, np.ndarray] | None,
                  path: str | os.PathLike | BinaryIO, extras: dict[str, np.ndarray] | None = None) -> None:
    """Write dense ``columns`` (live values included), the registrations'
    ``records`` (``pack_bytes`` of ``stored_record``: secrets removed) and ``extras``
    (``extra.*`` members) to ``path`` (``.npz``), or to a binary file
    object. A path is written as ``output.open_output`` writes: a regular
    file atomically (a reader never sees half a snapshot), a FIFO or a
    device through."""
    c = columns
    arrays: dict[str, np.ndarray] = {"format": np.frombuffer(FORMAT.encode(), dtype=np.uint8)}
    arrays["ids.buf"], arrays["ids.off"] = _pack_strings(c.backend_ids)  # type: ignore[arg-type]
    for name in _VOCABS:
        arrays[f"vocab.{name}.buf"], arrays[f"vocab.{name}.off"] = _pack_strings(getattr(c, name).tokens)
    for name in (*STORED_COLUMNS, *RESERVED_COLUMNS, *OPTIONAL_COLUMNS, *CAPABILITY_PERF):
        arrays[f"col.{name}"] = np.ascontiguousarray(getattr(c, name))
    arrays.update(extras or {})
    if records is not None:
        arrays["reg.buf"], arrays["reg.off"] = records
    order = {m.name: j for j, m in enumerate(MEMBERS)}
    arrays = dict(sorted(arrays.items(), key=lambda kv: order[kv[0]]))
    if hasattr(path, "write"):
        _write_archive(path, arrays)
        return
    with open_output(path, "Registry.save") as handle:
        _write_archive(handle, arrays)


# --- loading ----------------------------------------------------------------------------------

class _Damaged(Exception):
    """A member that is not what MEMBERS says (raised inside the reader)."""


def _read_member(archive: zipfile.ZipFile, member: Member, known: Known) -> np.ndarray:
    """The member's array, its header checked before any data is read."""
    info = archive.getinfo(member.name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise _Damaged(f"member `{member.name}` is compressed (snapshots are stored uncompressed)")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=1024)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=1024)
            else:
                raise ValueError(f"version {version}")
        except ValueError as exc:
            raise _Damaged(f"member `{member.name}` has no valid array header ({str(exc)[:80]})") from None
        expected = member.shape(known)
        if dtype != member.dtype or fortran or len(shape) != len(expected) or any(
                want not in (-1, got) for want, got in zip(expected, shape)):
            shown = [s if s >= 0 else "any" for s in expected]
            raise _Damaged(f"column `{member.name[4:]}` is {dtype}{list(shape)}, expected {member.dtype}{shown}"
                           if member.name.startswith("col.") else
                           f"member `{member.name}` is {dtype}{list(shape)}, expected {member.dtype}{shown}")
        nbytes = math.prod(shape) * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            raise _Damaged(f"member `{member.name}` holds {info.file_size - f.tell():,} bytes of data, "
                           f"its header says {nbytes:,}")
        array = np.empty(shape, dtype=dtype.newbyteorder("="))
        if nbytes:
            # In chunks that stay in cache while zipfile checks their CRC and copies them.
            view = memoryview(array).cast("B")
            for start in range(0, nbytes, _CHUNK):
                if f.readinto(view[start:start + _CHUNK]) != min(_CHUNK, nbytes - start):
                    raise _Damaged(f"member `{member.name}` is truncated")
    return array


def _read_members(archive: zipfile.ZipFile, name: str) -> tuple[dict[str, Any], Known]:
    names = archive.namelist()
    stems = [n[:-4] if n.endswith(".npy") else n for n in names]
    if "format.npy" not in names:
        raise RegistryError(f"Not a prism_match snapshot (expected format `{FORMAT}`)", name)
    if len(set(names)) != len(names):
        raise _Damaged("a member appears twice")
    unknown = [s for s, n in zip(stems, names) if s not in _NAMES or not n.endswith(".npy")]
    if unknown:
        raise _Damaged(f"unexpected member `{unknown[0][:60]}`")
    packed = next((i.filename for i in archive.infolist()
                   if i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size), None)
    if packed is not None:
        raise _Damaged(f"member `{packed[:-4]}` is compressed (snapshots are stored uncompressed)")
    known: Known = {}
    arrays: dict[str, np.ndarray] = {}
    present = set(stems)
    for member in MEMBERS:
        if member.name not in present:
            if member.required:
                raise RegistryError(f"Snapshot is incomplete or from another version (no member `{member.name}`)",
                                    name)
            continue
        if member.name == "format":
            try:
                value = _read_member(archive, member, known)
            except _Damaged:
                value = None
            if value is None or _format_check(value, known):
                raise RegistryError(f"Not a prism_match snapshot (expected format `{FORMAT}`; "
                                    "a snapshot of another version is compiled again)", name)
        else:
            value = _read_member(archive, member, known)
        problem = member.check(value, known) if member.check is not None else None
        if problem:
            where = f"column `{member.name[4:]}`" if member.name.startswith("col.") else f"member `{member.name}`"
            raise _Damaged(f"{where} {problem}")
        arrays[member.name] = value
    if ("reg.off" in arrays) != ("reg.buf" in arrays):
        raise _Damaged("registration records are out of range")
    if _MANIFEST not in present:
        raise RegistryError(f"Snapshot is incomplete or from another version (no member `{_MANIFEST}`)", name)
    manifest = _read_member(archive, Member(_MANIFEST, np.dtype("u1"), lambda k: (-1,)), known)
    if len(manifest) > _MAX_MANIFEST:
        raise _Damaged("the manifest is too large")
    try:
        digest = json.loads(manifest.tobytes())["blake2b"]
    except (ValueError, KeyError, TypeError):
        raise _Damaged("the manifest is unreadable") from None
    known["checksum matches"] = digest == _digest(archive)  # judged last: a named problem says more
    return arrays, known


def _cross_check(c: Columns, arrays: dict[str, Any]) -> str | None:
    """What makes the columns disagree with each other, or None."""
    n = c.n
    feature_rows = arrays["col.feature_rows"]  # as stored: the columns keep the transposed bits only
    if n and not np.array_equal(c.id_rank, rank_ids(c.backend_ids)):
        return "column `id_rank` does not rank the backend ids"
    if not np.array_equal(c.cost_score, cost_score(c.cost_per_1k_writes)):
        return "column `cost_score` does not follow from `cost_per_1k_writes`"
    if not np.array_equal(c.avail_score, avail_score(c.uptime_percent_24h)):
        return "column `avail_score` does not follow from `uptime_percent_24h`"
    # The kernel's transposed bits must say what the rows say, block by block.
    tokens, words = c.feature_bits.shape
    block = max(64, (1 << 24) // max(feature_rows.shape[1] * 64, 1) // 64 * 64)
    for first in range(0, n, block):
        rows = feature_rows[first:first + block]
        dense = np.unpackbits(rows.view(np.uint8), axis=1, bitorder="little")[:, :tokens]
        packed = pack_bits(np.ascontiguousarray(dense.T))
        stop = min(words, (first + block + 63) // 64)
        got = c.feature_bits[:, first // 64:stop]
        if not np.array_equal(packed[:, :got.shape[1]], got):
            return "column `feature_bits` does not match `feature_rows`"
    versioned = [(t, c.features.index[split_versioned(tok)[0]]) for t, tok in enumerate(c.features.tokens)
                 if VERSION_SEP in tok]
    for start in range(0, len(versioned), 1024):
        chunk = np.array(versioned[start:start + 1024], dtype=np.int64).reshape(-1, 2)
        if (c.feature_bits[chunk[:, 0]] & ~c.feature_bits[chunk[:, 1]]).any():
            return "column `feature_bits` sets a version without its name"
    if len(c.lat_p99_ms):
        owner = np.repeat(np.arange(n), np.diff(c.lat_indptr))
        bare = np.array([c.features.index[split_versioned(t)[0]] for t in c.features.tokens], dtype=np.int64)
        if not np.array_equal(bare[c.lat_vtoken], c.lat_token):
            return "column `lat_vtoken` names another capability than `lat_token`"
        words_of = feature_rows[owner, c.lat_vtoken >> 6] >> (c.lat_vtoken & 63).astype(MASK_DTYPE)
        if not (words_of & MASK_DTYPE(1)).all():
            return "column `lat_p99_ms` gives a latency for a capability its backend does not declare"
    return None


def _open(path: Any) -> tuple[Any, str]:
    """(a binary file object, the name errors give) for what ``load_snapshot`` takes."""
    from .loading import open_regular_file

    if isinstance(path, (bytes, bytearray, memoryview)):
        return io.BytesIO(path), "<bytes>"
    if hasattr(path, "read"):
        return path, "<file>"
    name = checked_path(path, "load_snapshot")
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        raise RegistryError("No such file", name) from None
    except OSError as exc:
        raise RegistryError(f"Cannot read file: {exc.strerror}", name) from None
    if stat.S_ISDIR(mode):
        raise RegistryError("Expected a snapshot file, got a directory", name)
    return open_regular_file(name, name), name


def read_snapshot(path: str | os.PathLike | bytes | BinaryIO) -> tuple[Columns, RecordSource | None,
                                                                      dict[str, np.ndarray]]:
    """What ``save_snapshot`` wrote (a path, the file's bytes, or a binary
    file object), checked as strictly as a registry file: the columns, the
    registration records (or None) and the ``extra.*`` members."""
    if path is None or isinstance(path, (int, float, list, dict, tuple)):
        raise RegistryError("Expected a snapshot path, its bytes or a binary file, "
                            f"got `{type(path).__name__}`", "load_snapshot")
    handle, name = _open(path)
    try:
        if handle.read(6) == b"\x93NUMPY":
            raise RegistryError("Not a prism_match snapshot (one array, not an archive)", name)
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            arrays, known = _read_members(archive, name)
    except _Damaged as exc:
        raise RegistryError(f"Snapshot is damaged: {exc}", name) from None
    except RegistryError:
        raise
    except zipfile.BadZipFile as exc:
        if "CRC" in str(exc):  # zipfile checks each member's CRC-32 as it reads it
            raise RegistryError(f"Snapshot is damaged: {str(exc)[:80]}", name) from None
        raise RegistryError(f"Not a prism_match snapshot ({type(exc).__name__})", name) from None
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise RegistryError(f"Not a prism_match snapshot ({type(exc).__name__})", name) from None
    finally:
        if handle is not path:
            handle.close()
    fields: dict[str, Any] = {column: arrays[f"col.{column}"]
                              for column in (*STORED_COLUMNS, *RESERVED_COLUMNS, *OPTIONAL_COLUMNS)
                              if f"col.{column}" in arrays}
    fields["backend_ids"] = known["ids.names"]
    fields["capability_perf"] = {name: arrays[f"col.{name}"] for name in CAPABILITY_PERF if f"col.{name}" in arrays}
    columns = Columns(**fields, **{v: Vocabulary(known[f"{v}.names"]) for v in _VOCABS})
    check_mask_limits(columns.n, columns.features, columns.regions, columns.compliance)
    problem = _cross_check(columns, arrays)
    if problem is None and not known["checksum matches"]:
        problem = "its checksum does not match its content (changed since it was saved)"
    if problem:
        # The kernel trusts shapes, dtypes and codes; a damaged file must stop here.
        raise RegistryError(f"Snapshot is damaged: {problem}", name)
    source = RecordSource(arrays["reg.buf"], arrays["reg.off"], columns, name) if "reg.buf" in arrays else None
    return columns, source, {key: value for key, value in arrays.items() if key.startswith("extra.")}
