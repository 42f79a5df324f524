"""Sizes and durations (SPEC §1): parsing, the error texts, and Hypothesis
round-trips (format a number with a unit, parse it back)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_match.units import (DURATION_UNITS, SIZE_UNITS, format_duration, format_rate, format_size,
                               parse_duration, parse_duration_ms, parse_size)

SETTINGS = settings(max_examples=200, deadline=None)


# --- sizes --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("10TB", 10e12),
    ("2.5TB", 2.5e12),
    ("100GB", 100e9),
    ("1KB", 1000.0),
    ("1KiB", 1024.0),
    ("512MiB", 512 * 1024**2),
    ("3GiB", 3 * 1024**3),
    ("1TiB", 1024**4),
    ("2PiB", 2 * 1024**5),
    ("1PB", 1e15),
    ("7B", 7.0),
    ("7", 7.0),
    (" 5 GB ", 5e9),
    (".5KB", 500.0),
    ("1e3MB", 1e9),
    (1024, 1024.0),
    (2.5e12, 2.5e12),
    (0, 0.0),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_size_units_are_decimal_and_binary():
    assert [SIZE_UNITS[u] for u in ("KB", "MB", "GB", "TB", "PB")] == [1000**i for i in range(1, 6)]
    assert [SIZE_UNITS[u] for u in ("KiB", "MiB", "GiB", "TiB", "PiB")] == [1024**i for i in range(1, 6)]


def test_negative_zero_size_is_zero():
    assert math.copysign(1.0, parse_size(-0.0)) == 1.0


@pytest.mark.parametrize(("value", "message"), [
    ("10 XB", 'Expected a size unit among `B KB MB GB TB PB KiB MiB GiB TiB PiB`, got `"10 XB"`'),
    ("5gb", 'Expected a size unit among `B KB MB GB TB PB KiB MiB GiB TiB PiB`, got `"5gb"`'),
    ("-5GB", 'Expected a size in bytes or a string such as `10GB` or `512MiB`, got `"-5GB"`'),
    ("GB", 'Expected a size in bytes or a string such as `10GB` or `512MiB`, got `"GB"`'),
    ("", 'Expected a size in bytes or a string such as `10GB` or `512MiB`, got `""`'),
    (-1, "Expected a size >= 0, got `-1`"),
    (float("nan"), "Expected a finite size, got `nan`"),
    (float("inf"), "Expected a finite size, got `inf`"),
    ("1e400TB", 'Expected a finite size, got `"1e400TB"`'),
    (10**400, "Expected a size in bytes, got a number too large for a float"),
    (True, "Expected a size in bytes or a string such as `10GB` or `512MiB`, got `true`"),
    ([1], "Expected a size in bytes or a string such as `10GB` or `512MiB`, got `list`"),
])
def test_bad_sizes(value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_size(value)


def test_long_size_text_is_shortened_in_the_message():
    with pytest.raises(ValueError) as info:
        parse_size("9" * 1000 + "XB")
    assert len(str(info.value)) < 200
    assert '..."`' in str(info.value)


# --- durations -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("300s", 300.0),
    ("100ms", 0.1),
    ("1m30s", 90.0),
    ("1h", 3600.0),
    ("2h30m", 9000.0),
    ("250us", 250e-6),
    ("10ns", 10e-9),
    ("1.5s", 1.5),
    (" 5s ", 5.0),
    ("0s", 0.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-15)


def test_duration_in_milliseconds_is_exact():
    # A latency bound is compared exactly with a backend's p99_ms.
    assert parse_duration_ms("25ms") == 25.0
    assert parse_duration_ms("1s") == 1000.0
    assert parse_duration_ms("100us") == 0.1
    assert parse_duration_ms("1m30s") == 90_000.0


@pytest.mark.parametrize(("value", "message"), [
    (30, "Expected a duration with a unit such as `30s` or `100ms`, got the bare number `30`"),
    (0.5, "Expected a duration with a unit such as `30s` or `100ms`, got the bare number `0.5`"),
    ("30", r'Expected a duration such as `30s`, `100ms` or `1m30s` \(units ns us ms s m h\), got `"30"`'),
    ("10 sec", r'Expected a duration such as `30s`, `100ms` or `1m30s` \(units ns us ms s m h\), got `"10 sec"`'),
    ("-1s", r'Expected a duration such as `30s`, `100ms` or `1m30s` \(units ns us ms s m h\), got `"-1s"`'),
    ("1d", r'Expected a duration such as `30s`, `100ms` or `1m30s` \(units ns us ms s m h\), got `"1d"`'),
    (True, "Expected a duration such as `30s` or `100ms`, got `true`"),
    (None, "Expected a duration such as `30s` or `100ms`, got `NoneType`"),
    ("9" * 400 + "h", r'Expected a finite duration, got `"9{37}..."`'),
])
def test_bad_durations(value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse_duration(value)


def test_bare_number_is_refused_in_milliseconds_too():
    with pytest.raises(ValueError, match="bare number `25`"):
        parse_duration_ms(25)


def test_pathological_duration_text_fails_fast():
    # Digits without a unit: the regex must not backtrack for ever.
    with pytest.raises(ValueError):
        parse_duration("1" * 200_000 + "x")
    with pytest.raises(ValueError):
        parse_size("1" * 200_000 + "x")


# --- formatting ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "text"), [
    (2.5e12, "2.5TB"), (10e12, "10TB"), (1e9, "1GB"), (1500, "1.5KB"), (999, "999B"), (0, "0B"),
    (5.9e-45, "5.9e-45B"),
])
def test_format_size(value, text):
    assert format_size(value) == text


@pytest.mark.parametrize(("value", "text"), [(100_000, "100k"), (10_000, "10k"), (1_500_000, "1.5M"), (5, "5")])
def test_format_rate(value, text):
    assert format_rate(value) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (90.0, "1m30s"), (0.1, "100ms"), (3600.0, "1h"), (0.0, "0s"), (3725.5, "1h2m5.5s"), (2.5e-7, "250ns"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_format_duration_refuses_negative_and_nan():
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="Expected a finite duration >= 0"):
            format_duration(bad)


# --- Hypothesis round-trips ----------------------------------------------------------------------

finite_sizes = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(number=finite_sizes, unit=st.sampled_from(list(SIZE_UNITS)))
def test_size_round_trip_with_any_unit(number, unit):
    """``f"{x}{unit}"`` parses to x·scale (one rounding: the product)."""
    text = f"{number!r}{unit}"
    if "e" in text.lower():  # repr may write 1e-05: still a valid number
        assert parse_size(text) == pytest.approx(number * SIZE_UNITS[unit], rel=1e-15)
    else:
        assert parse_size(text) == number * SIZE_UNITS[unit]


@SETTINGS
@given(number=st.integers(min_value=0, max_value=10**6), unit=st.sampled_from(list(SIZE_UNITS)))
def test_integer_sizes_are_exact(number, unit):
    assert parse_size(f"{number}{unit}") == float(number * SIZE_UNITS[unit])


@SETTINGS
@given(st.floats(min_value=0, max_value=1e18, allow_nan=False, allow_infinity=False))
def test_format_size_round_trips_within_display_precision(value):
    # One decimal at the largest fitting unit: within 5% (0.05 of a unit ≥ 1).
    back = parse_size(format_size(value))
    assert back == pytest.approx(value, rel=0.05, abs=1e-300)


@SETTINGS
@given(number=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
       unit=st.sampled_from(list(DURATION_UNITS)))
def test_duration_round_trip_with_any_unit(number, unit):
    assert parse_duration(f"{number!r}{unit}") == pytest.approx(number * DURATION_UNITS[unit], rel=1e-15)


@SETTINGS
@given(hours=st.integers(0, 100), minutes=st.integers(0, 59), seconds=st.integers(0, 59))
def test_combined_durations_are_exact(hours, minutes, seconds):
    text = f"{hours}h{minutes}m{seconds}s"
    assert parse_duration(text) == hours * 3600 + minutes * 60 + seconds
    assert parse_duration_ms(text) == (hours * 3600 + minutes * 60 + seconds) * 1000


@SETTINGS
@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-12, abs=1e-18)
