"""Sizes and durations, as the registry writes them, to plain numbers.

Units and digits are ASCII. Sizes become bytes (``B KB MB GB TB PB`` are powers of 1000, ``KiB … PiB``
powers of 1024; a bare number is already bytes). Durations become seconds
(``ns us ms s m h``, combinable as ``1m30s``, each unit once); a bare number in a duration
field is ambiguous and rejected. Parsing happens when a registry is loaded or
a slot prepared, never on the matching path.
"""

from __future__ import annotations

import math
import re

from .redact import quoted

__all__ = ["parse_size", "parse_duration", "parse_duration_ms", "format_size", "format_rate", "format_duration",
           "SIZE_UNITS", "DURATION_UNITS"]

SIZE_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4, "PB": 1000**5,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4, "PiB": 1024**5,
}
DURATION_UNITS: dict[str, float] = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# ASCII digits only: ``\d`` (and float()) would also read ``١٠`` or ``１０``.
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_SIZE_RE = re.compile(rf"\s*({_NUMBER})\s*([A-Za-z]*)\s*")
_DURATION_PART_RE = re.compile(rf"({_NUMBER})(ns|us|ms|s|m|h)")
_DURATION_RE = re.compile(rf"(?:{_NUMBER}(?:ns|us|ms|s|m|h))+")


_SIZE_HELP = "a size in bytes or a string such as `10GB` or `512MiB`"
_UNIT_LIST = " ".join(SIZE_UNITS)


def parse_size(value: object) -> float:
    """Bytes, as a float: ``"2.5TB"`` → ``2.5e12``, ``"1KiB"`` → ``1024.0``.

    Raises ``ValueError`` with the error grammar's text on anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"Expected {_SIZE_HELP}, got `{str(value).lower()}`")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError("Expected a size in bytes, got a number too large for a float") from None
        if not math.isfinite(number):
            raise ValueError(f"Expected a finite size, got `{number!r}`")
        if number < 0:
            raise ValueError(f"Expected a size >= 0, got `{value}`")
        return number + 0.0  # -0.0 → 0.0
    if not isinstance(value, str):
        raise ValueError(f"Expected {_SIZE_HELP}, got `{type(value).__name__}`")
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"Expected {_SIZE_HELP}, got `{quoted(value)}`")
    number, unit = match.groups()
    if unit == "":
        unit = "B"
    scale = SIZE_UNITS.get(unit)
    if scale is None:
        raise ValueError(f"Expected a size unit among `{_UNIT_LIST}`, got `{quoted(value)}`")
    result = float(number) * scale
    if not math.isfinite(result):
        raise ValueError(f"Expected a finite size, got `{quoted(value)}`")
    return result


def _duration_parts(value: object) -> list[tuple[str, str]]:
    """``[(number, unit), ...]`` of a valid duration text, or ValueError."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(
                f"Expected a duration with a unit such as `30s` or `100ms`, got the bare number `{value}`"
            )
        shown = str(value).lower() if isinstance(value, bool) else type(value).__name__
        raise ValueError(f"Expected a duration such as `30s` or `100ms`, got `{shown}`")
    text = value.strip()
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(
            f"Expected a duration such as `30s`, `100ms` or `1m30s` (units ns us ms s m h), got `{quoted(value)}`"
        )
    parts = _DURATION_PART_RE.findall(text)
    units = [unit for _, unit in parts]
    if len(set(units)) != len(units):
        repeated = next(u for u in units if units.count(u) > 1)
        raise ValueError(f"Expected each unit at most once in a duration, got `{repeated}` twice in `{quoted(value)}`")
    return parts


def _duration(value: object, per_unit: dict[str, float]) -> float:
    """A duration text as the sum of its parts, each scaled by ``per_unit``."""
    total = sum(float(num) * per_unit[unit] for num, unit in _duration_parts(value))
    if not math.isfinite(total):
        raise ValueError(f"Expected a finite duration, got `{quoted(str(value))}`")
    return total


def parse_duration(value: object) -> float:
    """Seconds, as a float: ``"100ms"`` → ``0.1``, ``"1m30s"`` → ``90.0``.

    A bare number is rejected: ``30`` could be seconds or milliseconds.
    """
    return _duration(value, DURATION_UNITS)


def parse_duration_ms(value: object) -> float:
    """Milliseconds, each part scaled straight to ms so ``"25ms"`` is exactly
    ``25.0``: a latency bound must compare exactly with a backend's ``p99_ms``."""
    return _duration(value, _MS_PER_UNIT)


_MS_PER_UNIT = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def _compact(value: float, units: tuple[tuple[float, str], ...], tail: str = "") -> str:
    """One decimal at the largest unit that fits; below the smallest, the
    plain number (``%g``) and ``tail``."""
    if not math.isfinite(value):
        return f"{value}{tail}"
    for scale, suffix in units:
        if abs(value) >= scale:
            text = f"{value / scale:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:g}{tail}"


def format_rate(value: float) -> str:
    """``100000`` → ``"100k"``, the seed's way of writing rates."""
    return _compact(value, ((1e9, "G"), (1e6, "M"), (1e3, "k")))


def format_size(value: float) -> str:
    """``2.5e12`` → ``"2.5TB"`` (decimal units), ``512`` → ``"512B"``."""
    return _compact(value, ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")), "B")


def format_duration(seconds: float) -> str:
    """``90.0`` → ``"1m30s"``, ``0.1`` → ``"100ms"``: text that
    :func:`parse_duration` reads back (to float precision)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"Expected a finite duration >= 0, got `{seconds!r}`")
    if seconds == 0:
        return "0s"
    if seconds < 1:
        for suffix, scale in (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
            if seconds >= scale:
                return f"{seconds / scale:.15g}{suffix}"
        return f"{seconds / 1e-9:.15g}ns"
    whole_minutes = int(seconds // 60) if seconds < 1e15 else 0
    hours, minutes = divmod(whole_minutes, 60)
    rest = seconds - whole_minutes * 60
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if rest or not text:
        text += f"{rest:.15g}s"
    return text
