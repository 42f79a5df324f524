"""The command line of the planning features: ``assign --method optimal``,
what-if flags, cost models, the page's slot-binding form and the capability
catalogue. In-process through ``main([...])``, and through the real entry
point where stdout must stay clean JSON (a solver printing a banner would
break it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import yaml

from prism_match.cli import EXIT_INVALID, EXIT_OK, main

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = str(ROOT / "data" / "registry.yaml")
SLOTS = str(ROOT / "data" / "slots.yaml")
PATTERN = str(ROOT / "data" / "pattern.yaml")

TIGHT = [
    {"backend_id": "big", "backend_type": "postgres", "capabilities": ["get"],
     "capacity": {"max_write_rps": 10000, "max_read_rps": 1000000}, "cost": {"cost_per_1k_writes": 0.001}},
    {"backend_id": "small", "backend_type": "postgres", "capabilities": ["get"],
     "capacity": {"max_write_rps": 5000, "max_read_rps": 1000000}, "cost": {"cost_per_1k_writes": 0.5}},
]
ORDERED = [{"slot_name": "first", "capabilities": ["get"], "performance": {"min_write_rps": 5000}},
           {"slot_name": "second", "capabilities": ["get"], "performance": {"min_write_rps": 10000}}]


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def write_yaml(path: Path, value) -> str:
    path.write_text(yaml.safe_dump(value))
    return str(path)


# --- assign --method optimal -------------------------------------------------------------

def test_assign_optimal_places_what_greedy_leaves_out(tmp_path, capsys):
    registry = write_yaml(tmp_path / "r.yaml", TIGHT)
    slots = write_yaml(tmp_path / "s.yaml", ORDERED)
    code, out, _ = call(capsys, "assign", registry, slots, "-o", "json")
    assert code == 2   # greedy: `second` (required) stays out
    assert [b["backend_id"] for b in orjson.loads(out)["bindings"]] == ["big"]

    code, out, _ = call(capsys, "assign", registry, slots, "--method", "optimal", "--time-limit", "5", "-o", "json")
    assert code == EXIT_OK
    doc = orjson.loads(out)
    assert [(b["slot_name"], b["backend_id"]) for b in doc["bindings"]] == [("first", "small"), ("second", "big")]
    solver = doc["solver"]
    assert (solver["greedy_placed"], solver["optimal_placed"], solver["extra_placed"]) == (1, 2, 1)
    assert solver["proved_optimal"] is True and solver["time_limit"] == 5.0

    code, out, _ = call(capsys, "assign", registry, slots, "--method", "optimal")
    assert code == EXIT_OK
    assert "optimal: 2 placed (greedy 1, +1)" in out and "proved optimal" in out


def test_time_limit_without_optimal_is_refused(capsys):
    code, _, err = call(capsys, "assign", REGISTRY, SLOTS, "--time-limit", "5")
    assert code == EXIT_INVALID
    assert "`--time-limit` applies to `--method optimal` only" in err
    code, _, err = call(capsys, "assign", REGISTRY, SLOTS, "--method", "optimal", "--time-limit", "-1")
    assert code == EXIT_INVALID
    assert "Expected `time_limit` a number of seconds > 0, got `-1.0`" in err


def test_assign_optimal_json_on_stdout_is_only_json():
    proc = subprocess.run([sys.executable, "-m", "prism_match", "assign", REGISTRY, SLOTS, "--method", "optimal",
                           "-o", "json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_OK, proc.stderr
    doc = orjson.loads(proc.stdout)
    assert doc["solver"]["optimal_placed"] == len(doc["bindings"])


# --- what-if flags --------------------------------------------------------------------------

def test_assign_what_if_shows_what_moves(capsys):
    code, out, _ = call(capsys, "assign", REGISTRY, SLOTS, "--set", "postgres-primary.status=unhealthy",
                        "--remove", "nats-prod-us-east-1", "-o", "json")
    assert code == EXIT_OK
    doc = orjson.loads(out)
    assert all(b["backend_id"] not in ("postgres-primary", "nats-prod-us-east-1") for b in doc["bindings"])
    moved = {m["slot_name"]: (m["before"], m["after"]) for m in doc["what_if"]["moved"]}
    assert moved["storage"][0] == "postgres-primary"
    assert moved["messaging"][0] == "nats-prod-us-east-1"
    code, out, _ = call(capsys, "assign", REGISTRY, SLOTS, "--set", "postgres-primary.status=unhealthy")
    assert "what-if against today:" in out and "storage: postgres-primary ->" in out


def test_match_and_explain_read_through_the_what_if(capsys):
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "--set", "postgres-primary.status=unhealthy", "-o", "json")
    assert code == EXIT_OK and "postgres-primary" not in out
    code, out, _ = call(capsys, "explain", REGISTRY, SLOTS, "--remove", "postgres-primary", "-o", "json")
    assert code == EXIT_OK
    assert all(d["total"] == 13 for d in orjson.loads(out))
    code, out, _ = call(capsys, "explain", REGISTRY, SLOTS, "-o", "json")
    assert all(d["total"] == 14 for d in orjson.loads(out))


def test_bad_what_if_flags_are_named(capsys):
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--set", "postgres-primary.colour=1")
    assert code == EXIT_INVALID and "Unknown field `colour`" in err and "what_if $.postgres-primary.colour" in err
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--set", "oops")
    assert code == EXIT_INVALID and "Expected `ID.FIELD=VALUE`" in err
    code, _, err = call(capsys, "assign", REGISTRY, SLOTS, "--remove", "ghost")
    assert code == EXIT_INVALID and "Unknown backend `ghost`" in err
