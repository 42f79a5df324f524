"""Every answer the engine gives, as plain JSON, for the before/after check.

``answers`` runs match, reasons, explain, query, match_many, assign and its
diagnoses for a list of slots and returns them in a JSON-able form (floats as
``float.hex`` so equality is bit for bit). ``tests/test_conformance.py``
compares it with ``tests/data/conformance/*.json``, written by this module
from the code before a refactor (``python -m tests.conformance``): a
refactor must change no answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prism_match import MatchPolicy, load_registry
from prism_match.synthetic import generate_registry, generate_slots

HERE = Path(__file__).parent / "data" / "conformance"
ROOT = Path(__file__).parent.parent


def _f(x: Any) -> Any:
    return None if x is None else float(x).hex()


def answers(registry: Any, slots: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"match": [], "explain": [], "query": []}
    for slot in slots:
        matches = registry.match(slot, k=5)
        out["match"].append([[m.backend_id, _f(m.score), _f(m.performance), _f(m.cost), _f(m.availability),
                              _f(m.region), [r.as_dict() for r in m.reasons]] for m in matches])
        out["explain"].append(registry.explain(slot).as_dict())
        q = registry.query({k: v for k, v in slot.items()})
        out["query"].append([q.total_count, [m.backend_id for m in q.backends]])
    frame = registry.match_many(slots, k=3)
    out["match_many"] = [[r["slot_name"], r["rank"], r["backend_id"], _f(r["score"])]
                         for r in frame.iter_rows(named=True)]
    plan = registry.assign(slots, allow_unplaced=True)
    out["assign"] = [[b.slot_name, b.backend_id, _f(b.score)] for b in plan.bindings]
    out["unplaced"] = [[u.slot_name, str(u.diagnosis)] for u in plan.unplaced]
    return out


def cases() -> dict[str, tuple[Any, list[Any]]]:
    """name → (registry, slots): the sample data and seeded random registries,
    under the default and a non-default policy."""
    import yaml

    sample = load_registry(ROOT / "data" / "registry.yaml")
    sample_slots = [d for d in yaml.safe_load_all((ROOT / "data" / "slots.yaml").read_text())]
    flat: list[Any] = []
    for doc in sample_slots:
        flat += doc if isinstance(doc, list) else doc.get("slots", [doc]) if isinstance(doc, dict) else []
    out: dict[str, tuple[Any, list[Any]]] = {}
    if flat and all(isinstance(s, dict) and "slot_name" in s for s in flat):
        out["sample"] = (sample, flat)
    for seed in (1, 2, 3):
        docs = generate_registry(400, seed=seed, duplicate_share=0.2)
        slots = generate_slots(60, seed=seed)
        out[f"random{seed}"] = (load_registry(docs), slots)
    docs = generate_registry(300, seed=7)
    policy = MatchPolicy(w_perf=0.25, w_cost=0.25, w_avail=0.25, w_region=0.25, perf_cap=3.0,
                         capacity_basis="available")
    out["policy"] = (load_registry(docs, policy=policy), generate_slots(60, seed=7))
    return out


def write() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, (registry, slots) in cases().items():
        (HERE / f"{name}.json").write_text(json.dumps(answers(registry, slots), indent=0, sort_keys=True))


if __name__ == "__main__":
    write()
