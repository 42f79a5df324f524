"""The command line's newer habits: every document kind in `validate`,
`bind`, `schema`, policy and loading flags, `-o` in kubectl's manner, and
the small things (binary sizes, summaries, CSV diagnoses, empty files)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import orjson
import polars as pl
import pytest
import yaml

from prism_match.cli import EXIT_INVALID, EXIT_OK, EXIT_UNBOUND, main
from prism_match.render import size_text
from prism_match.slot_files import load_slots

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SEED = Path(__file__).parent / "data" / "seed"
REGISTRY = str(DATA / "registry.yaml")
SLOTS = str(DATA / "slots.yaml")
PATTERN = str(DATA / "pattern.yaml")
SECRET = "hunter2-do-not-print"


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- validate: every kind --------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind"), [
    ("slot-requirement.yaml", "slot"), ("query-by-capabilities.yaml", "query"), ("query-by-type.yaml", "query"),
    ("auth-mtls.yaml", "registration block (auth)"), ("timeouts.yaml", "registration block (timeouts)"),
    ("capability-performance.yaml", "registration block (capability)"),
    ("incident.yaml", "registration block (incident)"),
])
def test_validate_recognises_the_pages_examples_by_shape(capsys, name, kind):
    code, out, err = call(capsys, "validate", str(SEED / name), "--format", "json")
    assert (code, err) == (EXIT_OK, "")
    assert orjson.loads(out) == {"valid": True, "documents": [{"document": str(SEED / name), "kind": kind,
                                                                "items": 1}]}


def test_validate_the_samples_of_every_kind(capsys):
    paths = [str(DATA / n) for n in ("slots.yaml", "pattern.yaml", "query.yaml", "policy.yaml")]
    code, out, _ = call(capsys, "validate", *paths)
    assert code == EXIT_OK
    assert out.splitlines() == [f"{paths[0]}: slot (7), valid", f"{paths[1]}: pattern, valid",
                                f"{paths[2]}: query, valid", f"{paths[3]}: policy, valid"]


def test_validate_checks_a_slot_as_a_slot(capsys, tmp_path):
    path = tmp_path / "slot.yaml"
    path.write_text("slot_name: s\noptinal: true\nperformance: {min_write_rps: -1}\n")
    code, _, err = call(capsys, "validate", str(path))
    assert code == EXIT_INVALID
    assert "Unknown field `optinal`; did you mean `optional`?" in err
    assert f"got `-1` - at {path}:3:30 $.performance.min_write_rps" in err
    assert "backend_id" not in err


def test_validate_kind_flag_forces_the_kind(capsys):
    code, _, err = call(capsys, "validate", str(SEED / "slot-requirement.yaml"), "--kind", "registration")
    assert code == EXIT_INVALID and "Missing required field `backend_id`" in err
    code, out, _ = call(capsys, "validate", str(SEED / "query-by-type.yaml"), "--kind", "query")
    assert code == EXIT_OK and out.endswith("query, valid\n")


def test_validate_names_the_kinds_when_none_fits(capsys):
    code, _, err = call(capsys, "validate", str(SEED / "health-check.yaml"))
    assert code == EXIT_INVALID
    assert err == (f"error: Expected a registration, slot, pattern, query or policy document (none recognised by "
                   f"its keys; `--kind` names one) - at {SEED / 'health-check.yaml'} $\n")


def test_validate_a_bad_policy(capsys, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("policy:\n  w_perf: 0.5\n  perf_cap: 0\n  capacity_basis: most\n")
    code, _, err = call(capsys, "validate", str(path))
    assert code == EXIT_INVALID
    assert "Expected one of `available`, `max`" in err and f"{path}:4:19 $.policy.capacity_basis" in err
    path.write_text("policy:\n  perf_cap: 0\n")
    code, _, err = call(capsys, "validate", str(path))
    assert code == EXIT_INVALID and err == f"error: Expected a number > 0, got `0.0` - at {path} $.policy.perf_cap\n"


# --- bind --------------------------------------------------------------------------------------

def test_bind_a_pattern_file(capsys):
    code, out, _ = call(capsys, "bind", REGISTRY, PATTERN, "-o", "json")
    assert code == EXIT_OK
    doc = orjson.loads(out)
    assert doc["pattern"] == "multicast-registry"
    assert doc["bindings"] == {"registry": "redis-cache-eu-west-1", "messaging": "nats-prod-us-east-1"}
    assert doc["summary"] == {"slots": 2, "bound": 2, "unbound_optional": 0, "unbound_required": 0}
    code, out, _ = call(capsys, "bind", REGISTRY, PATTERN)
    assert code == EXIT_OK and out.splitlines()[0] == "pattern multicast-registry"


def test_bind_refuses_a_file_that_is_no_pattern_and_exits_2_when_a_slot_is_unbound(capsys, tmp_path):
    code, _, err = call(capsys, "bind", REGISTRY, SLOTS)
    assert code == EXIT_INVALID and "Expected one pattern document" in err and "got a slot" in err
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"pattern": "p", "slots": {"graph": {"required_interfaces": ["NoSuch"]}}}))
    code, _, err = call(capsys, "bind", REGISTRY, str(path))
    assert code == EXIT_UNBOUND and "`graph`" in err


# --- -o in kubectl's manner -------------------------------------------------------------------

def test_o_with_a_format_name_prints_that_format(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", "json")
    assert code == EXIT_OK and orjson.loads(out)["summary"]["slots"] == 7
    assert not (tmp_path / "json").exists()
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", "yaml")
    assert yaml.safe_load(out)["summary"]["bound"] == 6
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", "./json")
    assert code == EXIT_OK and out == "" and (tmp_path / "json").read_text().startswith("storage  required")


def test_o_extension_picks_the_format_and_a_disagreement_is_an_error(capsys, tmp_path):
    target = tmp_path / "out.parquet"
    code, _, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", str(target))
    assert code == EXIT_OK and pl.read_parquet(target).height == 7
    code, _, _ = call(capsys, "query", REGISTRY, "--type", "kafka", "-o", str(tmp_path / "q.csv"))
    assert code == EXIT_OK and pl.read_csv(tmp_path / "q.csv").columns[:2] == ["rank", "backend_id"]
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--format", "csv", "-o", str(tmp_path / "x.parquet"))
    assert code == EXIT_INVALID and not (tmp_path / "x.parquet").exists()
    assert "`--format csv` disagrees with the extension of `-o" in err
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--format", "csv", "-o", "json")
    assert code == EXIT_INVALID and "`--format csv` and `-o json` disagree" in err


def test_generate_writes_what_the_extension_says(capsys, tmp_path):
    code, _, _ = call(capsys, "generate", "--slots", "5", "-o", str(tmp_path / "s.parquet"))
    assert code == EXIT_OK
    assert len(load_slots(tmp_path / "s.parquet")) == 5
    code, _, _ = call(capsys, "generate", "--slots", "5", "-o", str(tmp_path / "s.csv"))
    assert code == EXIT_OK and len(load_slots(tmp_path / "s.csv")) == 5
    code, _, err = call(capsys, "generate", "--backends", "3", "-o", str(tmp_path / "b.parquet"))
    assert code == EXIT_INVALID and not (tmp_path / "b.parquet").exists() and "got `" in err
    code, out, _ = call(capsys, "generate", "--backends", "2", "-o", "json")
    assert code == EXIT_OK and len(orjson.loads(out)["backends"]) == 2


# --- policy and loading flags -------------------------------------------------------------------

def test_policy_flags_change_the_score(capsys):
    _, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", "json")
    default = orjson.loads(out)["slots"][0]["matches"][0]
    _, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", "json", "--w-region", "0", "--w-avail", "0")
    changed = orjson.loads(out)["slots"][0]["matches"][0]
    assert changed["backend_id"] == default["backend_id"] == "postgres-primary"
    assert changed["score"] == pytest.approx(default["score"] - 0.1 - 0.2 * 0.9995)


def test_default_health_and_capacity_basis_flags(capsys):
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--default-health", "healthy")
    assert code == EXIT_UNBOUND and "`session-cache`" in err   # its redis backends report no health
    code, out, _ = call(capsys, "query", REGISTRY, "--interface", "TransactionalInterface",
                        "--min-write-rps", "25000", "-o", "json", "--capacity-basis", "available")
    assert [b["backend_id"] for b in orjson.loads(out)["backends"]] == ["postgres-primary"]


def test_policy_file_and_a_flag_over_it(capsys, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("policy:\n  w_region: 0\n")
    _, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", "json", "--policy", str(path))
    assert orjson.loads(out)["slots"][0]["matches"][0]["score"] == pytest.approx(0.9999)
    _, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", "json", "--policy", str(path), "--w-region", "1")
    assert orjson.loads(out)["slots"][0]["matches"][0]["score"] == pytest.approx(1.9999)
    path.write_text("policy:\n  w_regoin: 0\n")
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--policy", str(path))
    assert code == EXIT_INVALID and "Unknown field `w_regoin`; did you mean `w_region`?" in err


def test_a_bad_policy_flag_is_named(capsys):
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--w-perf", "-1")
    assert code == EXIT_INVALID and err == "error: Expected a number in [0, 1,000,000], got `-1.0` - at --w-perf\n"
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--threads", "0")
    assert code == EXIT_INVALID and "`--threads` >= 1" in err


def test_inline_secrets_name_the_flag_and_the_flag_accepts_them(capsys, tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text(f"backend_id: a\nbackend_type: redis\nconnection:\n  auth: {{type: token, token: {SECRET}}}\n")
    code, out, err = call(capsys, "validate", str(path))
    assert code == EXIT_INVALID and SECRET not in out + err
    assert "pass --allow-inline-secrets to accept it" in err and "allow_inline_secrets=True" not in err
    code, out, err = call(capsys, "validate", str(path), "--allow-inline-secrets")
    assert code == EXIT_OK and SECRET not in out + err


def test_non_strict_loading_ignores_unknown_fields_and_columns(capsys, tmp_path, caplog):
    registry = tmp_path / "r.yaml"
    registry.write_text("backend_id: a\nbackend_type: redis\nteam: search\ninterfaces: [KV]\n")
    slots = tmp_path / "slots.csv"
    slots.write_text("slot_name,interfaces,team\ns,KV,search\n")
    code, _, err = call(capsys, "match", str(registry), str(slots))
    assert code == EXIT_INVALID and "Unknown field `team`" in err
    with caplog.at_level(logging.WARNING, logger="prism_match"):
        code, out, _ = call(capsys, "match", str(registry), str(slots), "--non-strict", "-o", "json")
    assert code == EXIT_OK and orjson.loads(out)["slots"][0]["matches"][0]["backend_id"] == "a"
    assert [r.getMessage() for r in caplog.records] == [
        f"{slots}: ignored 1 column(s) that are no slot field: `team`"]


# --- small things -------------------------------------------------------------------------------

def test_binary_sizes_in_binary_units():
    assert size_text(20 * 2**30) == "20GiB"
    assert size_text(1536 * 2**20) == "1.5GiB"
    assert size_text(5e12) == "5TB" and size_text(100e9) == "100GB" and size_text(0) == "0B"


def test_assign_json_has_a_summary_and_explain_has_csv(capsys, tmp_path):
    _, out, _ = call(capsys, "assign", REGISTRY, SLOTS, "-o", "json")
    assert orjson.loads(out)["summary"] == {"slots": 7, "placed": 6, "unplaced_optional": 1,
                                            "unplaced_required": 0}
    code, _, _ = call(capsys, "explain", REGISTRY, SLOTS, "-o", str(tmp_path / "why.csv"))
    frame = pl.read_csv(tmp_path / "why.csv")
    assert code == EXIT_OK and frame.columns == ["slot_name", "optional", "eligible", "total", "code", "rejected",
                                                 "detail"]
    storage = frame.filter(pl.col("slot_name") == "storage")
    assert storage.row(0, named=True)["code"] == "missing_interface" and storage["rejected"][0] == 10


def test_an_empty_slots_file_says_slots(capsys, tmp_path):
    path = tmp_path / "slots.yaml"
    path.write_text("")
    code, _, err = call(capsys, "match", REGISTRY, str(path))
    assert code == EXIT_INVALID and err == f"error: File is empty: expected slot requirements - at {path}\n"
    path.write_text("slots: []\n")
    code, _, err = call(capsys, "match", REGISTRY, str(path))
    assert err == f"error: Expected at least one slot requirement, got none - at {path}\n"


def test_verbose_logs_load_summaries(capsys):
    logger = logging.getLogger("prism_match")
    handlers, level = list(logger.handlers), logger.level
    try:
        code, _, err = call(capsys, "-v", "match", REGISTRY, SLOTS, "-o", "json")
    finally:
        logger.handlers[:], logger.level = handlers, level
    assert code == EXIT_OK
    assert f"INFO prism_match: {REGISTRY}: 14 backends loaded" in err.splitlines()


def test_schema_command_prints_a_json_schema(capsys):
    code, out, _ = call(capsys, "schema", "slot")
    assert code == EXIT_OK and orjson.loads(out)["title"] == "prism_match slot document"


def test_a_long_phase_shows_progress_only_on_a_terminal(capsys, monkeypatch, caplog):
    import sys
    import time

    from prism_match import render

    monkeypatch.setattr(render, "PHASE_QUIET_SECONDS", 0.01)
    with caplog.at_level(logging.DEBUG, logger="prism_match"):
        with render.phase("loading things"):
            time.sleep(0.2)
    assert capsys.readouterr().err == ""                     # not a terminal: quiet
    assert any(r.getMessage().startswith("loading things took ") for r in caplog.records)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with render.phase("loading things"):
        time.sleep(0.5)
    out, err = capsys.readouterr()
    assert out == "" and "loading things" in err             # a terminal: the spinner, on stderr only


def test_validate_a_directory_of_registrations_is_one_registry(capsys, tmp_path):
    for name in ("a.yaml", "b.yaml"):
        shutil.copy(REGISTRY, tmp_path / name)
    code, _, err = call(capsys, "validate", str(tmp_path))
    assert code == EXIT_INVALID
    assert (f"Duplicate backend_id `kafka-prod-us-east-1`, first defined at {tmp_path}/a.yaml#1:15:13 $.backend_id - at "
            f"{tmp_path}/b.yaml#1:15:13 $.backend_id") in err
    (tmp_path / "b.yaml").unlink()
    code, out, _ = call(capsys, "validate", str(tmp_path))
    assert code == EXIT_OK and out.startswith(f"{tmp_path}: 14 backends, valid")


def test_validate_a_mixed_set_still_finds_duplicate_ids(capsys, tmp_path):
    shutil.copy(REGISTRY, tmp_path / "registry.yaml")
    shutil.copy(SLOTS, tmp_path / "slots.yaml")
    (tmp_path / "again.yaml").write_text("backend_id: postgres-primary\nbackend_type: postgres\n")
    code, _, err = call(capsys, "validate", str(tmp_path))
    assert code == EXIT_INVALID
    assert err == (f"error: Duplicate backend_id `postgres-primary`, first defined at {tmp_path}/again.yaml "
                   f"$.backend_id - at {tmp_path}/registry.yaml#2 $.backend_id\n")
