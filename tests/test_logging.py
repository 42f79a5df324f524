"""The library logs through the standard `logging` module under the
`prism_match` logger (load summaries, ignored columns, health transitions)
and is silent until the application configures logging."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import prism_match as pm

from test_health import BACKEND, INTERVAL, T0, make_tracker, round_of

DATA = Path(__file__).resolve().parent.parent / "data"


def test_silent_by_default():
    # A warning (unknown columns, non-strict) with no logging configured: nothing on stderr.
    code = ("import polars as pl, prism_match as pm\n"
            "r = pm.load_registry('data/registry.yaml')\n"
            "r.match_many(pl.DataFrame({'slot_name': ['a'], 'team': ['x']}), strict=False)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=DATA.parent, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""


def test_load_summary(caplog):
    with caplog.at_level(logging.INFO, logger="prism_match"):
        pm.load_registry(DATA / "registry.yaml")
    [record] = [r for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert record.name == "prism_match" and record.levelno == logging.INFO
    assert record.getMessage().startswith(f"loaded 14 backends from {DATA / 'registry.yaml'} in ")


def test_health_transitions_are_logged(caplog):
    tracker, _ = make_tracker()
    with caplog.at_level(logging.INFO, logger="prism_match"):
        for i in range(6):
            tracker.record(BACKEND, round_of("down", T0 + i * INTERVAL), at=T0 + i * INTERVAL)
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("health: ")]
    assert messages and messages[0].startswith(f"health: `{BACKEND}` ")
    assert " -> unhealthy at " in messages[-1]
