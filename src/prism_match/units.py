"""Sizes and durations, as the registry writes them, to plain numbers.

Sizes become bytes (``B KB MB GB TB PB`` are powers of 1000, ``KiB … PiB``
powers of 1024; a bare number is already bytes). Durations become seconds
(``ns us ms s m h``, combinable as ``1m30s``); a bare number in a duration
field is ambiguous and rejected. Parsing happens when a registry is loaded or
a slot prepared, never on the matching path.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_size", "parse_duration", "parse_duration_ms", "format_size", "format_rate", "SIZE_UNITS", "DURATION_UNITS"]

SIZE_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4, "PB": 1000**5,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4, "PiB": 1024**5,
}
DURATION_UNITS: dict[str, float] = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SIZE_RE = re.compile(rf"\s*({_NUMBER})\s*([A-Za-z]*)\s*")
_DURATION_PART_RE = re.compile(rf"({_NUMBER})(ns|us|ms|s|m|h)")
_DURATION_RE = re.compile(rf"(?:{_NUMBER}(?:ns|us|ms|s|m|h))+")


def _finite(value: float, text: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"Expected a finite size, got `{text}`")
    return value


def parse_size(value: object) -> float:
    """Bytes, as a float: ``"2.5TB"`` → ``2.5e12``, ``"1KiB"`` → ``1024.0``.

    Raises ``ValueError`` with the error grammar's text on anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"Expected a size (bytes or `10GB`), got `{value}`")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError("Expected a size (bytes or `10GB`), got a number too large for a float") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"Expected a size >= 0, got `{value}`")
        return number
    if not isinstance(value, str):
        raise ValueError(f"Expected a size (bytes or `10GB`), got `{type(value).__name__}`")
    match = _SIZE_RE.fullmatch(value)
    shown = value if len(value) <= 40 else value[:37] + "..."
    if match is None:
        raise ValueError(f"Expected a size such as `10GB` or `512MiB`, got `{shown}`")
    number, unit = match.groups()
    if unit == "":
        unit = "B"
    if unit not in SIZE_UNITS:
        raise ValueError(
            f"Unknown size unit `{unit}` in `{shown}`; expected one of {', '.join(SIZE_UNITS)}"
        )
    return _finite(float(number) * SIZE_UNITS[unit], shown)


def parse_duration(value: object) -> float:
    """Seconds, as a float: ``"100ms"`` → ``0.1``, ``"1m30s"`` → ``90.0``.

    A bare number is rejected: ``30`` could be seconds or milliseconds.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, (int, float)):
            raise ValueError(
                f"Expected a duration with a unit such as `30s` or `100ms`, got the bare number `{value}`"
            )
        raise ValueError(f"Expected a duration such as `30s`, got `{type(value).__name__}`")
    text = value.strip()
    shown = value if len(value) <= 40 else value[:37] + "..."
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(
            f"Expected a duration such as `30s`, `100ms` or `1m30s` (units ns us ms s m h), got `{shown}`"
        )
    total = sum(float(num) * DURATION_UNITS[unit] for num, unit in _DURATION_PART_RE.findall(text))
    if not math.isfinite(total):
        raise ValueError(f"Expected a finite duration, got `{shown}`")
    return total


def parse_duration_ms(value: object) -> float:
    """Milliseconds, each part scaled straight to ms so ``"25ms"`` is exactly
    ``25.0``: a latency bound must compare exactly with a backend's ``p99_ms``."""
    parse_duration(value)  # validates, with the same messages
    return sum(float(num) * _MS_PER_UNIT[unit] for num, unit in _DURATION_PART_RE.findall(str(value).strip()))


_MS_PER_UNIT = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def _compact(value: float, units: tuple[tuple[float, str], ...]) -> str:
    for scale, suffix in units:
        if value >= scale:
            scaled = value / scale
            text = f"{scaled:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:g}"


def format_rate(value: float) -> str:
    """``100000`` → ``"100k"``, the seed's way of writing rates."""
    return _compact(value, ((1e9, "G"), (1e6, "M"), (1e3, "k")))


def format_size(value: float) -> str:
    """``2.5e12`` → ``"2.5TB"`` (decimal units)."""
    return _compact(value, ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB"), (0, "B")))
