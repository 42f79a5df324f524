"""Pattern ids and the reasons that apply (issue 13): a pattern binding keeps
the page's ``pattern_id``; ``slot_bindings()`` and ``bind --slot-bindings``
give the page's ``slot_binding`` form listing only the reasons whose term
earned points (every reason stays on ``Match.reasons`` and with
``all_reasons``)."""

from __future__ import annotations

import orjson
import yaml
from hypothesis import HealthCheck, given, settings

from conftest import registries, slot_for
from prism_match import load_registry
from prism_match.cli import main
from prism_match.reasons import applicable_reasons

WAL = {"pattern": "wal", "pattern_id": "wal-001",
       "slots": {"storage": {"required_interfaces": ["TransactionalInterface"], "preferred_region": "us-east-1"},
                 "cache": {"optional": True}}}
TERMS = {"performance": "performance", "cost": "cost", "availability": "availability", "region_affinity": "region"}


def test_the_binding_keeps_the_pattern_id_and_lists_the_reasons_that_apply():
    registry = load_registry("data/registry.yaml")
    binding = registry.bind_pattern(WAL)
    assert binding.pattern_id == "wal-001"
    docs = binding.slot_bindings()
    storage = next(d["slot_binding"] for d in docs if d["slot_binding"]["slot_name"] == "storage")
    assert storage["pattern_id"] == "wal-001"
    assert storage["backend_id"] == binding.bindings["storage"].backend_id
    match = binding.bindings["storage"]
    shown = [r["type"] for r in storage["reasons"]]
    # postgres-secondary is not in us-east-1: no region_affinity; the full list keeps it.
    assert match.region == 0 and "region_affinity" not in shown
    assert "region_affinity" in [r.type for r in match.reasons]
    every = next(d["slot_binding"] for d in binding.slot_bindings(all_reasons=True)
                 if d["slot_binding"]["slot_name"] == "storage")
    assert [r["type"] for r in every["reasons"]] == [r.type for r in match.reasons]
    # A slot that requires nothing has no capability_match to report.
    cache = next(d["slot_binding"] for d in docs if d["slot_binding"]["slot_name"] == "cache")
    assert "capability_match" not in [r["type"] for r in cache["reasons"]]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(registries(wide=False, max_backends=6, min_backends=1).flatmap(
    lambda case: slot_for(case).map(lambda slot: (case, slot))))
def test_a_reason_applies_exactly_when_its_term_scored(drawn):
    case, slot = drawn
    registry = load_registry(case.docs)
    for match in registry.match(slot, k=6):
        kept = [r.type for r in applicable_reasons(match)]
        for reason in match.reasons:
            term = TERMS.get(reason.type)
            if term is not None:
                assert (reason.type in kept) == (getattr(match, term) > 0), reason
        assert kept == [r.type for r in match.reasons if r.type in kept]   # order kept, a subset


def test_bind_prints_the_slot_binding_form(tmp_path, capsys):
    path = tmp_path / "wal.yaml"
    path.write_text(yaml.safe_dump(WAL))
    assert main(["bind", "data/registry.yaml", str(path), "--slot-bindings", "-o", "json"]) == 0
    docs = orjson.loads(capsys.readouterr().out)
    assert {d["slot_binding"]["pattern_id"] for d in docs} == {"wal-001"}
    storage = next(d["slot_binding"] for d in docs if d["slot_binding"]["slot_name"] == "storage")
    assert "region_affinity" not in [r["type"] for r in storage["reasons"]]
    assert main(["bind", "data/registry.yaml", str(path), "--slot-bindings", "--all-reasons", "-o", "json"]) == 0
    every = orjson.loads(capsys.readouterr().out)
    storage = next(d["slot_binding"] for d in every if d["slot_binding"]["slot_name"] == "storage")
    assert "region_affinity" in [r["type"] for r in storage["reasons"]]
    assert main(["bind", "data/registry.yaml", str(path), "--slot-bindings"]) == 1
    assert "`--slot-bindings` prints documents" in capsys.readouterr().err
