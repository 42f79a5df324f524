"""Save and reload a compiled registry: ``Registry.save(path)`` and
``load_snapshot(path)``.

A snapshot is one uncompressed ``.npz`` file (numpy's own container, read
without pickle): every compiled column as it is in memory, the vocabularies
and backend ids as UTF-8 buffers with offsets, and each registration as its
own msgpack record, decoded only when ``registry[backend_id]`` asks for it.
Reloading a million backends is a few array reads, well under a second;
nothing is parsed, validated or compiled again; the arrays are only checked
for consistency (dtypes, shapes, index ranges), since the kernel trusts them.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec
import numpy as np

from ._types import CODE_DTYPE, INDEX_DTYPE, MASK_DTYPE, RANK_DTYPE, SCORE_DTYPE
from .compiled import FLOAT_COLUMNS, RESERVED_COLUMNS, Columns
from .errors import RegistryError
from .schema import (
    BACKEND_TYPES, CONSISTENCY_LEVELS, HEALTH_STATUSES, Registration, decode_hook, encode_hook,
)
from .vocabulary import Vocabulary

__all__ = ["save_snapshot", "read_snapshot", "FORMAT", "SNAPSHOT_COLUMNS"]

# The columns a snapshot stores (of dense columns: see Columns.compacted).
SNAPSHOT_COLUMNS = ("id_rank", "feature_bits", "region_rows", "compliance_rows", "backend_type", "health",
                    "consistency", *FLOAT_COLUMNS, *RESERVED_COLUMNS, "lat_indptr", "lat_token", "lat_vtoken",
                    "lat_p99_ms")

FORMAT = "prism_match.snapshot/1"
_VOCABS = ("features", "regions", "compliance")


def _pack_bytes(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """One uint8 buffer and int64[len(blobs)+1] offsets: blob j is buf[off[j]:off[j+1]]."""
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets


def _pack_strings(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return _pack_bytes([s.encode("utf-8") for s in items])


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


def save_snapshot(columns: Columns, records: tuple[np.ndarray, np.ndarray] | None,
                  path: str | os.PathLike | BinaryIO, extras: dict[str, np.ndarray] | None = None) -> None:
    """Write dense ``columns`` (live values included), the registrations'
    ``records`` (or None) and ``extras`` (more arrays, by member name) to
    ``path`` (``.npz``), or to a binary file object. A path is written
    atomically (a temporary file beside it, then renamed), so a reader never
    sees half a snapshot."""
    c = columns
    arrays: dict[str, np.ndarray] = {f"col.{name}": getattr(c, name) for name in SNAPSHOT_COLUMNS}
    arrays.update(extras or {})
    arrays["ids.buf"], arrays["ids.off"] = _pack_strings(c.backend_ids)
    for name in _VOCABS:
        arrays[f"vocab.{name}.buf"], arrays[f"vocab.{name}.off"] = _pack_strings(getattr(c, name).tokens)
    if records is not None:
        arrays["reg.buf"], arrays["reg.off"] = records
    arrays["format"] = np.frombuffer(FORMAT.encode(), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    target = Path(path)
    tmp = None
    try:
        with tempfile.NamedTemporaryFile("wb", dir=target.parent, prefix=f".{target.name}.", delete=False) as fh:
            tmp = fh.name
            np.savez(fh, **arrays)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise RegistryError(f"Cannot write snapshot: {exc.strerror}", str(target)) from None


def encode_registrations(registrations: list[Registration]) -> tuple[np.ndarray, np.ndarray]:
    encoder = msgspec.msgpack.Encoder(enc_hook=encode_hook)
    return _pack_bytes([encoder.encode(r) for r in registrations])


class RecordSource:
    """Registrations decoded one at a time from a snapshot's msgpack records."""

    def __init__(self, buf: np.ndarray, offsets: np.ndarray, ids: list[str]):
        self.ids = ids  # the backend of each record, in record order
        self._data = buf.tobytes()
        self._offsets = offsets
        self._decoder = msgspec.msgpack.Decoder(Registration, dec_hook=decode_hook)

    def __call__(self, i: int) -> Registration:
        try:
            return self._decoder.decode(self._data[self._offsets[i]:self._offsets[i + 1]])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RegistryError(f"Snapshot record {i} is damaged ({str(exc)[:120]})", "snapshot") from None

    def records(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self._data, dtype=np.uint8), self._offsets


_DTYPES = {"feature_rows": MASK_DTYPE, "feature_bits": MASK_DTYPE, "region_rows": MASK_DTYPE,
           "compliance_rows": MASK_DTYPE, "backend_type": CODE_DTYPE, "health": CODE_DTYPE,
           "consistency": CODE_DTYPE, "id_rank": RANK_DTYPE, "lat_indptr": INDEX_DTYPE, "lat_token": INDEX_DTYPE,
           "lat_vtoken": INDEX_DTYPE, "lat_p99_ms": SCORE_DTYPE}


def _inconsistency(fields: dict[str, Any], arrays: dict[str, np.ndarray]) -> str | None:
    """What makes the stored columns unsafe to hand to the kernel, or None:
    every column of its dtype, C-contiguous and of its shape, indices in range."""
    n = len(fields["backend_ids"])
    features = fields["features"]
    words = {name: fields[name].words for name in _VOCABS}
    lat = arrays.get("col.lat_p99_ms")
    entries = len(lat) if isinstance(lat, np.ndarray) else 0
    shapes = {"feature_rows": (n, words["features"]), "region_rows": (n, words["regions"]),
              "compliance_rows": (n, words["compliance"]),
              "feature_bits": (max(len(features), 1), max(1, (n + 63) // 64)), "lat_indptr": (n + 1,)}
    for name in _VOCABS:
        if len(fields[name]) != len(arrays[f"vocab.{name}.off"]) - 1:
            return f"vocabulary `{name}` repeats a name"
    for name in ("id_rank", "lat_indptr", "lat_token", "lat_vtoken", "lat_p99_ms", "feature_bits"):
        if name not in fields:
            raise KeyError(f"col.{name}")
    for name, value in fields.items():
        if not isinstance(value, np.ndarray):
            continue
        dtype = _DTYPES.get(name, SCORE_DTYPE)
        shape = shapes.get(name, (entries,) if name.startswith("lat_") else (n,))
        if value.dtype != dtype or value.shape != shape or not value.flags.c_contiguous:
            return f"column `{name}` is {value.dtype}{list(value.shape)}, expected {np.dtype(dtype)}{list(shape)}"
    rank = fields["id_rank"]
    if n and (rank.min() < 0 or rank.max() >= n or not np.bincount(rank, minlength=n).all()):
        return "column `id_rank` is not a permutation"
    ind = fields["lat_indptr"]
    if ind[0] != 0 or ind[-1] != entries or (np.diff(ind) < 0).any():
        return "column `lat_indptr` is out of range"
    if "reg.off" in arrays or "reg.buf" in arrays:
        off, buf = arrays["reg.off"], arrays["reg.buf"]
        if off.shape != (n + 1,) or off.dtype != np.int64 or buf.dtype != np.uint8 or (n and (
                off[0] != 0 or off[-1] != len(buf) or (np.diff(off) < 0).any())):
            return "registration records are out of range"
    for name in ("lat_token", "lat_vtoken"):
        tokens = fields[name]
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= len(features)):
            return f"column `{name}` is out of range"
    codes = {"backend_type": len(BACKEND_TYPES), "health": len(HEALTH_STATUSES),
             "consistency": len(CONSISTENCY_LEVELS) + 1}
    for name, bound in codes.items():
        if n and name in fields and fields[name].max() >= bound:
            return f"column `{name}` is out of range"
    return None


def read_snapshot(path: str | os.PathLike | bytes | BinaryIO) -> tuple[Columns, RecordSource | None,
                                                                      dict[str, np.ndarray]]:
    """What ``save_snapshot`` wrote (a path, the file's bytes, or a binary
    file object): the columns, the registration records (or None) and the
    other members (``extra.*``), checked for consistency."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        name, path = "<bytes>", io.BytesIO(path)
    else:
        name = "<file>" if hasattr(path, "read") else str(path)
    try:
        data = np.load(path, allow_pickle=False)
        is_archive = hasattr(data, "files")  # a bare .npy file loads as one array
        if is_archive:
            with data:
                arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise RegistryError("No such file", name) from None
    except IsADirectoryError:
        raise RegistryError("Expected a snapshot file, got a directory", name) from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise RegistryError(f"Not a prism_match snapshot ({type(exc).__name__})", name) from None
    if not is_archive:
        raise RegistryError("Not a prism_match snapshot (one array, not an archive)", name)
    fmt = arrays.get("format")
    if fmt is None or fmt.tobytes().decode("utf-8", "replace") != FORMAT:
        raise RegistryError(f"Not a prism_match snapshot (expected format `{FORMAT}`)", name)
    try:
        fields: dict[str, Any] = {name: arrays[f"col.{name}"] for name in SNAPSHOT_COLUMNS
                                  if f"col.{name}" in arrays}
        if "col.feature_rows" in arrays:  # older snapshots: checked, then dropped
            fields["feature_rows"] = arrays["col.feature_rows"]
        for vocab in _VOCABS:
            fields[vocab] = Vocabulary(_unpack_strings(arrays[f"vocab.{vocab}.buf"], arrays[f"vocab.{vocab}.off"]))
        fields["backend_ids"] = _unpack_strings(arrays["ids.buf"], arrays["ids.off"])
        problem = _inconsistency(fields, arrays)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise RegistryError(f"Snapshot is incomplete or from another version ({exc})", name) from None
    if problem:
        # The kernel trusts shapes and dtypes; a damaged file must stop here.
        raise RegistryError(f"Snapshot is damaged: {problem}", name)
    columns = Columns(**fields)
    if len(set(columns.backend_ids)) != columns.n:
        raise RegistryError("Snapshot is damaged: backend ids repeat", name)
    source = RecordSource(arrays["reg.buf"], arrays["reg.off"], list(columns.backend_ids)) \
        if "reg.buf" in arrays else None
    return columns, source, {key: value for key, value in arrays.items() if key.startswith("extra.")}

