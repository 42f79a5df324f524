"""A small program using prism_match the way a placement service would,
fully annotated: tests/test_typing.py checks it with `mypy --strict`, so the
public surface stays typed (and runs it, so it stays true)."""

from __future__ import annotations

from pathlib import Path

import prism_match as pm

DATA = Path(__file__).resolve().parents[2] / "data"


def best_backends(registry: pm.Registry, slot: dict[str, object], k: int) -> list[tuple[str, float]]:
    prepared: pm.PreparedSlot = registry.prepare(slot)
    matches: list[pm.Match] = registry.match(prepared, k)
    return [(m.backend_id, m.score) for m in matches]


def why(registry: pm.Registry, slot: dict[str, object]) -> list[str]:
    first: pm.Match = registry.match(slot, 1)[0]
    reasons: list[pm.Reason] = first.reasons
    return [f"{r.type}: {r.explanation}" for r in reasons]


def unbound_text(registry: pm.Registry, slot: dict[str, object]) -> str:
    diagnosis: pm.Diagnosis = registry.explain(slot)
    eligible: int = diagnosis.eligible
    return f"{eligible}/{diagnosis.total}: {diagnosis}"


def main() -> int:
    registry: pm.Registry = pm.load_registry(DATA / "registry.yaml", policy=pm.MatchPolicy(w_region=0.2))
    slot: dict[str, object] = {"slot_name": "kv", "interfaces": ["KeyValueBasicInterface"]}
    ranked = best_backends(registry, slot, 3)
    registry.update(ranked[0][0], write_rps=1_000.0, status="degraded")
    slots: list[pm.SlotRequirement] = pm.load_slots(DATA / "slots.yaml")
    plan: pm.Assignment = registry.assign(slots, allow_unplaced=True)
    placed: list[str] = [b.backend_id for b in plan.bindings]
    result: pm.QueryResult = registry.query({"query": {"backend_types": ["kafka"]}})
    try:
        pm.load_registry([{"backend_id": "x"}])
    except pm.RegistryError as exc:
        problems: list[tuple[str, str]] = exc.errors
        assert problems
    assert why(registry, slot) and unbound_text(registry, {"slot_name": "g", "interfaces": ["NoSuch"]})
    return len(ranked) + len(placed) + result.total_count


if __name__ == "__main__":
    print(main())
