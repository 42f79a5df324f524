"""A refactor changes no answer: every answer on the sample data and on seeded
random registries (default and non-default policy) equals, bit for bit, the
one recorded before the refactor (``python -m tests.conformance`` wrote it)."""

from __future__ import annotations

import json

import pytest

from conformance import HERE, answers, cases

CASES = cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_answers_unchanged(name: str) -> None:
    registry, slots = CASES[name]
    expected = json.loads((HERE / f"{name}.json").read_text())
    got = json.loads(json.dumps(answers(registry, slots), sort_keys=True))
    for part in expected:
        assert got[part] == expected[part], part


def test_every_case_recorded() -> None:
    assert sorted(p.stem for p in HERE.glob("*.json")) == sorted(CASES)
