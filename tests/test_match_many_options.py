"""match_many's options for batch input: non-strict columns, and the
diagnosis and reasons as columns."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest

import prism_match as pm

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def registry() -> pm.Registry:
    return pm.load_registry(DATA / "registry.yaml")


def frame() -> pl.DataFrame:
    return pl.DataFrame({"slot_name": ["kv", "graph"], "interfaces": [["KeyValueBasicInterface"], ["NoSuch"]],
                         "team": ["search", "ads"], "ticket": [1, 2]})


def test_an_extra_column_is_an_error_by_default(registry):
    with pytest.raises(pm.RegistryError, match="Unknown field `team`"):
        registry.match_many(frame(), 2)


def test_non_strict_ignores_unknown_columns_and_says_so_once(registry, caplog):
    with caplog.at_level(logging.WARNING, logger="prism_match"):
        got = registry.match_many(frame(), 2, strict=False)
    assert [r.getMessage() for r in caplog.records] == [
        "slots: ignored 2 column(s) that are no slot field: `team`, `ticket`"]
    expected = registry.match_many(frame().drop("team", "ticket"), 2)
    assert got.equals(expected)


def test_diagnose_and_reasons_as_columns(registry):
    plain = registry.match_many(frame().drop("team", "ticket"), 2)
    got = registry.match_many(frame().drop("team", "ticket"), 2, diagnose=True, reasons=True)
    assert got.columns == [*plain.columns, "reasons", "diagnosis"]
    assert got.select(plain.columns).equals(plain)
    kv = got.filter(pl.col("slot_name") == "kv")
    assert kv.height == 2 and kv.get_column("diagnosis").is_null().all()
    first = kv.row(0, named=True)
    expected = registry.match({"slot_name": "kv", "interfaces": ["KeyValueBasicInterface"]}, 1)[0]
    assert first["backend_id"] == expected.backend_id
    assert first["reasons"] == [{"type": r.type, "explanation": r.explanation} for r in expected.reasons]
    graph = got.filter(pl.col("slot_name") == "graph").row(0, named=True)
    assert graph["backend_id"] is None and graph["reasons"] is None
    assert graph["diagnosis"] == str(registry.explain({"slot_name": "graph", "interfaces": ["NoSuch"]}))
    assert graph["diagnosis"].startswith("0/14 backends eligible: 14 missing_interface(NoSuch)")


def test_only_what_is_asked_for(registry):
    got = registry.match_many(frame().drop("team", "ticket"), 1, diagnose=True)
    assert got.columns[-1] == "diagnosis" and "reasons" not in got.columns
