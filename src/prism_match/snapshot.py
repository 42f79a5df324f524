"""Save and reload a compiled registry: ``Registry.save(path)`` and
``load_snapshot(path)``.

A snapshot is one uncompressed ``.npz`` file (numpy's own container, read
without pickle): every compiled column as it is in memory, the vocabularies
and backend ids as UTF-8 buffers with offsets, and each registration as its
own msgpack record, decoded only when ``registry[backend_id]`` asks for it.
Reloading a million backends is a few array reads, well under a second;
nothing is parsed, validated or compiled again.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from .compiled import Columns
from .errors import RegistryError
from .schema import Duration, DurationMs, Registration, decode_hook
from .vocabulary import Vocabulary

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["save_snapshot", "load_snapshot", "FORMAT"]

FORMAT = "prism_match.snapshot/1"
_VOCABS = ("features", "regions", "compliance")


def _pack_strings(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [s.encode("utf-8") for s in items]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


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


def save_snapshot(registry: Registry, path: str | os.PathLike) -> None:
    """Write ``registry`` (live values included) to ``path`` (``.npz``)."""
    c = registry.columns
    arrays: dict[str, np.ndarray] = {}
    for field in dataclasses.fields(Columns):
        value = getattr(c, field.name)
        if isinstance(value, np.ndarray):
            arrays[f"col.{field.name}"] = value
    arrays["ids.buf"], arrays["ids.off"] = _pack_strings(c.backend_ids)
    for name in _VOCABS:
        arrays[f"vocab.{name}.buf"], arrays[f"vocab.{name}.off"] = _pack_strings(getattr(c, name).tokens)
    records = registry._registration_records()
    if records is not None:
        arrays["reg.buf"], arrays["reg.off"] = records
    arrays["format"] = np.frombuffer(FORMAT.encode(), dtype=np.uint8)
    target = Path(path)
    try:
        with open(target, "wb") as fh:
            np.savez(fh, **arrays)
    except OSError as exc:
        raise RegistryError(f"Cannot write snapshot: {exc.strerror}", str(target)) from None


def _encode_hook(value: Any) -> Any:
    # Durations are stored with their unit, so decoding them again goes
    # through the same parser (a bare number is not a duration).
    if isinstance(value, DurationMs):
        return f"{float(value)!r}ms"
    if isinstance(value, Duration):
        return f"{float(value)!r}s"
    if isinstance(value, float):
        return float(value)
    raise NotImplementedError(type(value))


def encode_registrations(registrations: list[Registration]) -> tuple[np.ndarray, np.ndarray]:
    encoder = msgspec.msgpack.Encoder(enc_hook=_encode_hook)
    blobs = [encoder.encode(r) for r in registrations]
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets


class RecordSource:
    """Registrations decoded one at a time from a snapshot's msgpack records."""

    def __init__(self, buf: np.ndarray, offsets: np.ndarray):
        self._data = buf.tobytes()
        self._offsets = offsets
        self._decoder = msgspec.msgpack.Decoder(Registration, dec_hook=decode_hook)

    def __call__(self, i: int) -> Registration:
        return self._decoder.decode(self._data[self._offsets[i]:self._offsets[i + 1]])

    def records(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self._data, dtype=np.uint8), self._offsets


def load_snapshot(path: str | os.PathLike, **registry_options: Any) -> Registry:
    """A Registry from a file written by ``Registry.save``."""
    from .registry import Registry

    name = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise RegistryError(f"Not a prism_match snapshot ({type(exc).__name__})", name) from None
    fmt = arrays.get("format")
    if fmt is None or fmt.tobytes().decode("utf-8", "replace") != FORMAT:
        raise RegistryError(f"Not a prism_match snapshot (expected format `{FORMAT}`)", name)
    try:
        fields = {f.name: arrays[f"col.{f.name}"] for f in dataclasses.fields(Columns)
                  if f"col.{f.name}" in arrays}
        for vocab in _VOCABS:
            fields[vocab] = Vocabulary(_unpack_strings(arrays[f"vocab.{vocab}.buf"], arrays[f"vocab.{vocab}.off"]))
        fields["backend_ids"] = _unpack_strings(arrays["ids.buf"], arrays["ids.off"])
        columns = Columns(**fields)
    except (KeyError, TypeError) as exc:
        raise RegistryError(f"Snapshot is incomplete or from another version ({exc})", name) from None
    source = RecordSource(arrays["reg.buf"], arrays["reg.off"]) if "reg.buf" in arrays else None
    return Registry(None, columns=columns, registration_source=source, **registry_options)

