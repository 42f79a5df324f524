"""Tests for the `prism-match` command line: a few runs through the real
entry point (`python -m prism_match` in a subprocess) on data/ and on broken
files, the rest in-process through `main([...])`. Exit codes, key lines of
the output, JSON/CSV/Parquet readable, errors with locations, never a
traceback, never a secret."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import pytest
import yaml

from prism_match import RegistryError, cli, render
from prism_match.cost import WORKLOAD_KEYS
from prism_match.cli import EXIT_INVALID, EXIT_OK, EXIT_UNBOUND, main, read_slots

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = str(ROOT / "data" / "registry.yaml")
SLOTS = str(ROOT / "data" / "slots.yaml")
QUERY = str(ROOT / "data" / "query.yaml")
SECRET = "hunter2-do-not-print"

BROKEN_REGISTRY = f"""\
backend_id: kafka-a
backend_type: kafak
capacity: {{max_write_rps: 10}}
---
backend_id: redis-b
backend_type: redis
connection:
  auth: {{type: username_password, username: prism, password: {SECRET}}}
capacity: {{max_write_rsp: 5, max_read_rps: -1}}
"""

SEED_COST_FLAGS = ["--writes", "1000000", "--reads", "5000000", "--storage-gb", "2500", "--connections", "2500",
                   "--hours", "720", "--transfer-intra-gb", "100", "--transfer-inter-gb", "50",
                   "--transfer-internet-gb", "10"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The real entry point, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "prism_match", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def problem_at(err: str, location: str, *tokens: str) -> None:
    """``err`` reports a problem at ``location`` whose text holds ``tokens``
    (the wording is the loader's, tested with the loader; here: the place;
    the ``:line:column`` a file adds after its name is the loader's too)."""
    doc, _, path = location.partition(" ")
    at = re.compile(rf" - at {re.escape(doc)}(:\d+:\d+)?{' ' + re.escape(path) if path else ''}$")
    lines = [line for line in err.splitlines() if at.search(line)]
    assert lines, f"no problem at {location!r} in:\n{err}"
    assert any(all(t in line for t in tokens) for line in lines), f"{tokens} not in {lines}"


def flat(text: str) -> str:
    """Text with its line wrapping undone, for phrases a narrow table may wrap."""
    return " ".join(text.split())


@pytest.fixture
def broken_registry(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_REGISTRY)
    return path


def write_slots(tmp_path: Path, slots: list[dict], name: str = "slots.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"slots": slots}, sort_keys=False))
    return str(path)


# --- through the real entry point ---------------------------------------------------------

def test_demo_match_on_the_sample_data():
    """What `make demo` runs."""
    proc = run("match", "data/registry.yaml", "data/slots.yaml", "-k", "3")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert "storage  required  → postgres-primary  score 1.0999" in lines
    assert "messaging  required  → nats-prod-us-east-1  score 1.2998" in lines
    assert "wal  required  → kafka-prod-us-east-1  score 1.3996" in lines
    assert "search  optional  unbound (optional: the pattern runs without it)" in lines
    assert "  0/14 backends eligible" in lines
    assert lines[-1] == "7 slots: 6 bound, 1 optional unbound, 0 required unbound"
    # Reasons of the chosen backend, in the seed's wording.
    assert "    region_affinity   Backend in same region (us-east-1) as requester" in lines
    # Plain text on a pipe: no colour codes, no trailing padding.
    assert "\x1b[" not in proc.stdout
    assert all(line == line.rstrip() for line in lines)


def test_validate_the_sample_registry():
    proc = run("validate", "data/registry.yaml")
    assert proc.returncode == EXIT_OK, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "data/registry.yaml: 14 backends, valid"
    assert any(line.startswith("  health          healthy=7  degraded=2  unhealthy=1  maintenance=1  unknown=3")
               for line in lines)


def test_broken_registry_lists_every_error_and_never_the_secret(broken_registry: Path):
    for command in (["validate", str(broken_registry)], ["match", str(broken_registry), SLOTS]):
        proc = run(*command)
        assert proc.returncode == EXIT_INVALID
        assert proc.stdout == ""
        assert proc.stderr.startswith("error: ")
        assert "Traceback" not in proc.stderr
        assert SECRET not in proc.stderr and SECRET not in proc.stdout
        # Every problem, each with its file, document and field (the texts are the loader's).
        lines = proc.stderr.splitlines()
        assert lines[0] == "error: 4 problems:"  # the inline secret among them: one pass reports all
        assert "kafak" in lines[1] and lines[1].endswith(f" - at {broken_registry}#1:2:15 $.backend_type")
        assert "Unknown field `max_write_rsp`" in lines[2] and lines[2].endswith(f" - at {broken_registry}#2:9:11 $.capacity")
        assert lines[3].endswith(f"got `-1` - at {broken_registry}#2:9:44 $.capacity.max_read_rps")
        assert lines[4].startswith("  Inline secret in `password`") and lines[4].endswith(
            f" - at {broken_registry}#2:8:62 $.connection.auth.password")


def test_match_json_through_the_entry_point():
    proc = run("match", "data/registry.yaml", "data/slots.yaml", "-k", "2", "--format", "json")
    assert proc.returncode == EXIT_OK, proc.stderr
    doc = orjson.loads(proc.stdout)
    assert doc["summary"] == {"slots": 7, "bound": 6, "unbound_optional": 1, "unbound_required": 0}
    storage = doc["slots"][0]
    assert storage["slot_name"] == "storage" and storage["status"] == "bound"
    assert [m["backend_id"] for m in storage["matches"]] == ["postgres-primary", "postgres-secondary"]
    assert [m["rank"] for m in storage["matches"]] == [1, 2]
    assert [r["type"] for r in storage["matches"][0]["reasons"]] == [
        "capability_match", "performance", "cost", "availability", "region_affinity"]
    search = doc["slots"][-1]
    assert search["status"] == "unbound" and search["matches"] == []
    assert search["diagnosis"]["eligible"] == 0 and search["diagnosis"]["rejected"]["missing_interface"] == 14


def test_required_unbound_slot_exits_2(tmp_path: Path):
    slots = write_slots(tmp_path, [{"slot_name": "ledger", "interfaces": ["KeyValueBasicInterface"],
                                    "compliance": ["pci", "gdpr"]},
                                   {"slot_name": "messaging", "interfaces": ["PubSubInterface"]}])
    proc = run("match", REGISTRY, slots)
    assert proc.returncode == EXIT_UNBOUND
    assert "ledger  required  UNBOUND: no eligible backend" in proc.stdout
    assert "compliance        need pci, gdpr" in proc.stdout
    assert proc.stderr == "error: 1 required slot(s) with no eligible backend: `ledger`\n"


def test_cost_seed_example_through_the_entry_point():
    proc = run("cost", "data/registry.yaml", *SEED_COST_FLAGS, "--format", "json")
    assert proc.returncode == EXIT_OK, proc.stderr
    doc = orjson.loads(proc.stdout)
    kafka = next(b for b in doc["backends"] if b["backend_id"] == "kafka-prod-us-east-1")
    assert round(kafka["total"], 2) == 18256.40


def test_garbage_files_never_give_a_traceback(tmp_path: Path):
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(b"\x00\xff\xfe garbage: [unclosed\n\t- :")
    proc = run("match", str(garbage), str(garbage))
    assert proc.returncode == EXIT_INVALID
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr




# --- match, in process --------------------------------------------------------------------------

def test_match_explain_adds_the_diagnosis(capsys):
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "--explain")
    assert code == EXIT_OK
    assert "  2/14 backends eligible" in out.splitlines()  # storage
    assert "insufficient_write_capacity need 10000 rps" in out
    assert "latency_too_high            need p99 <= 25ms" in out


def test_match_ndjson_one_line_per_slot(capsys):
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "--format", "ndjson")
    assert code == EXIT_OK
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [d["slot_name"] for d in lines] == ["storage", "registry", "messaging", "wal", "mailbox",
                                               "session-cache", "search"]
    assert all(len(d["matches"]) <= 1 for d in lines)


def test_match_csv_and_parquet_read_back_with_polars(capsys, tmp_path: Path):
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-k", "3", "--format", "csv")
    assert code == EXIT_OK
    from io import StringIO

    frame = pl.read_csv(StringIO(out))
    target = tmp_path / "out.parquet"
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-k", "3", "--format", "parquet", "-o", str(target))
    assert code == EXIT_OK and out == ""
    parquet = pl.read_parquet(target)
    for table in (frame, parquet):
        assert table.columns == ["slot_name", "optional", "status", "rank", "backend_id", "score", "performance",
                                 "cost", "availability", "region", "reasons", "diagnosis"]
        storage = table.filter(pl.col("slot_name") == "storage")
        assert storage.get_column("backend_id").to_list() == ["postgres-primary", "postgres-secondary"]
        assert storage.get_column("rank").to_list() == [1, 2]
        search = table.filter(pl.col("slot_name") == "search").to_dicts()
        assert len(search) == 1 and search[0]["status"] == "unbound" and search[0]["backend_id"] is None
        assert search[0]["diagnosis"].startswith("0/14 backends eligible")
    assert parquet.schema["score"] == pl.Float64 and parquet.schema["rank"] == pl.Int64


def test_match_scores_agree_with_the_library(capsys):
    from prism_match import load_registry

    registry = load_registry(REGISTRY)
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-k", "3", "--format", "json")
    assert code == EXIT_OK
    for slot, result in zip(read_slots(SLOTS), orjson.loads(out)["slots"]):
        expected = registry.match(slot, 3)
        assert [(m["backend_id"], m["score"]) for m in result["matches"]] == [(m.backend_id, m.score)
                                                                              for m in expected]


def test_table_output_to_a_file(capsys, tmp_path: Path):
    target = tmp_path / "plan.txt"
    code, out, _ = call(capsys, "match", REGISTRY, SLOTS, "-o", str(target))
    assert code == EXIT_OK and out == ""
    assert target.read_text().splitlines()[-1] == "7 slots: 6 bound, 1 optional unbound, 0 required unbound"


@pytest.mark.parametrize(("args", "message"), [
    (["-k", "0"], "error: Expected `-k` >= 1, got `0`"),
    (["--format", "parquet"], "error: `--format parquet` writes a binary file: give `-o FILE`"),
    (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
])
def test_match_bad_arguments_exit_1(capsys, args, message):
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, *args)
    assert code == EXIT_INVALID
    assert message in err


def test_missing_files_exit_1(capsys, tmp_path: Path):
    code, _, err = call(capsys, "match", str(tmp_path / "nope.yaml"), SLOTS)
    assert code == EXIT_INVALID
    assert err == f"error: No such file or directory - at {tmp_path / 'nope.yaml'}\n"
    code, _, err = call(capsys, "match", REGISTRY, str(tmp_path / "nope.yaml"))
    assert code == EXIT_INVALID and "No such file or directory" in err


def test_unwritable_output_exits_1(capsys, tmp_path: Path):
    code, _, err = call(capsys, "match", REGISTRY, SLOTS, "--format", "json", "-o",
                        str(tmp_path / "missing-dir" / "out.json"))
    assert code == EXIT_INVALID
    assert err == f"error: Cannot write file: No such file or directory - at {tmp_path / 'missing-dir' / 'out.json'}\n"


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "File is empty"),
    (b"a: [1, 2\n", "Invalid YAML"),
    (b"a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     b"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
     b"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
     b"h: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n", "alias expansion"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"- 1\n- 2\n", "Expected `object`"),
])
def test_hostile_registry_files_are_errors(capsys, tmp_path: Path, content: bytes, expected: str):
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    code, out, err = call(capsys, "validate", str(path))
    assert code == EXIT_INVALID and out == ""
    assert err.startswith("error: ") and expected in err


# --- slots files --------------------------------------------------------------------------------

def test_slot_errors_name_file_and_field(capsys, tmp_path: Path):
    slots = write_slots(tmp_path, [
        {"slot_name": "a", "performance": {"min_write_rps": -5, "max_latency_p99": 25}, "colour": "blue"},
        {"interfaces": ["X"]},
        {"slot_name": "b", "health_statuses": ["sick"]},
    ])
    code, out, err = call(capsys, "match", REGISTRY, slots)
    assert code == EXIT_INVALID and out == ""
    assert err.startswith("error: 5 problems:")
    problem_at(err, f"{slots} $.slots[0].performance.min_write_rps", "-5")
    problem_at(err, f"{slots} $.slots[0].performance.max_latency_p99", "25")
    problem_at(err, f"{slots} $.slots[0]", "Unknown field `colour`")
    problem_at(err, f"{slots} $.slots[1]", "`slot_name`")
    problem_at(err, f"{slots} $.slots[2].health_statuses[0]", "sick")


def test_duplicate_slot_names_are_an_error(capsys, tmp_path: Path):
    slots = write_slots(tmp_path, [{"slot_name": "a"}, {"slot_name": "a"}])
    code, _, err = call(capsys, "match", REGISTRY, slots)
    assert code == EXIT_INVALID
    assert err == (f"error: Duplicate slot_name `a`, first defined at {slots} $.slots[0] - at "
                   f"{slots} $.slots[1].slot_name\n")


def test_slot_file_shapes(tmp_path: Path):
    """A bare list, the seed's `slot_requirement:` wrapper, and a pattern with named slots."""
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump([{"slot_name": "a"}, {"slot_name": "b"}]))
    assert [s.slot_name for s in read_slots(str(listed))] == ["a", "b"]
    wrapped = tmp_path / "wrapped.yaml"
    wrapped.write_text("slot_requirement:\n  slot_name: storage\n  capabilities: [get]\n")
    assert [s.slot_name for s in read_slots(str(wrapped))] == ["storage"]
    pattern = tmp_path / "pattern.yaml"
    pattern.write_text("pattern: multicast-registry\nslots:\n  registry:\n    required_interfaces:\n"
                       "      - KeyValueBasicInterface\n      - WatchInterface\n  messaging:\n"
                       "    required_interfaces: [PubSubInterface]\n")
    slots = read_slots(str(pattern))
    assert [s.slot_name for s in slots] == ["registry", "messaging"]
    assert slots[0].interfaces == ["KeyValueBasicInterface", "WatchInterface"]


@pytest.mark.parametrize("name, content", [
    ("slots.yaml", "data/slots.yaml\n"),       # relative to the working directory, where it exists
    ("slots.yaml", f"{SLOTS}\n"),
    ("slots.json", '"data/slots.yaml"'),
])
def test_a_slots_document_is_never_read_as_a_path(capsys, tmp_path: Path, monkeypatch, name, content):
    """A document that is only a string is an invalid slot where it stands,
    not the name of another file to read."""
    monkeypatch.chdir(ROOT)
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(RegistryError) as exc:
        read_slots(str(path))
    assert [loc for loc, _ in exc.value.errors] == [f"{path}:1:1 $"]
    code, out, err = call(capsys, "match", REGISTRY, str(path))
    assert code == EXIT_INVALID and out == ""
    problem_at(err, f"{path} $")


@pytest.mark.parametrize("content", ["42\n", "true\n", "1.5\n"])
def test_a_scalar_slots_document_is_reported_at_its_file(capsys, tmp_path: Path, content):
    path = tmp_path / "slots.yaml"
    path.write_text(content)
    code, out, err = call(capsys, "match", REGISTRY, str(path))
    assert code == EXIT_INVALID and out == ""
    problem_at(err, f"{path} $", content.strip())
    assert "<input>" not in err


def test_slots_directory(capsys, tmp_path: Path):
    """Every .yaml/.yml/.json file under it, sorted by path, hidden ones
    skipped; an unreadable file is reported with the other files' problems."""
    root = tmp_path / "slots"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "b.yaml").write_text("- slot_name: b\n")
    (root / "sub" / "a.yml").write_text("slot_requirement:\n  slot_name: a\n")
    (root / "c.json").write_text('{"slots": [{"slot_name": "c"}]}')
    (root / "d.yaml").write_text("pattern: p\nslots:\n  d:\n    required_interfaces: [PubSubInterface]\n")
    (root / ".h.yaml").write_text("- slot_name: hidden\n")
    (root / ".hidden" / "x.yaml").write_text("- slot_name: hidden\n")
    (root / "notes.txt").write_text("- slot_name: text\n")
    assert [s.slot_name for s in read_slots(str(root))] == ["b", "c", "d", "a"]
    (root / "a.yaml").write_text("")
    (root / "b.yaml").write_text("- slot_name: b\n  colour: blue\n")
    code, _, err = call(capsys, "match", REGISTRY, str(root))
    assert code == EXIT_INVALID
    assert any(line.endswith(f" - at {root / 'a.yaml'}") and "empty" in line for line in err.splitlines())
    problem_at(err, f"{root / 'b.yaml'} $[0]", "Unknown field `colour`")
    code, _, err = call(capsys, "match", REGISTRY, str(tmp_path / "sub-less"))
    assert code == EXIT_INVALID and err == f"error: No such file or directory - at {tmp_path / 'sub-less'}\n"
    (tmp_path / "empty").mkdir()
    code, _, err = call(capsys, "match", REGISTRY, str(tmp_path / "empty"))
    assert code == EXIT_INVALID
    assert err == f"error: Directory holds no .json/.yaml/.yml files - at {tmp_path / 'empty'}\n"


def test_slot_tables_csv_and_parquet(capsys, tmp_path: Path):
    csv = tmp_path / "slots.csv"
    csv.write_text("slot_name,interfaces,capabilities,min_write_rps,performance.min_read_rps,optional\n"
                   'storage,KeyValueBasicInterface TransactionalInterface,"get,set,transaction",10000,50000,false\n'
                   "search,SearchInterface,,,,true\n")
    slots = read_slots(str(csv))
    assert [s.slot_name for s in slots] == ["storage", "search"]
    assert slots[0].interfaces == ["KeyValueBasicInterface", "TransactionalInterface"]
    assert slots[0].capabilities == ["get", "set", "transaction"]
    assert (slots[0].performance.min_write_rps, slots[0].performance.min_read_rps) == (10000, 50000)
    assert slots[1].optional is True
    parquet = tmp_path / "slots.parquet"
    pl.DataFrame({"slot_name": ["m"], "interfaces": [["PubSubInterface"]]}).write_parquet(parquet)
    code, out, _ = call(capsys, "match", REGISTRY, str(parquet), "--format", "json")
    assert code == EXIT_OK
    assert orjson.loads(out)["slots"][0]["matches"][0]["backend_id"] == "nats-prod-us-east-1"


def test_bad_slot_tables_are_errors(capsys, tmp_path: Path):
    parquet = tmp_path / "bad.parquet"
    pl.DataFrame({"slot_name": ["a", "b"], "min_write_rps": [-1.0, float("nan")]}).write_parquet(parquet)
    code, _, err = call(capsys, "match", REGISTRY, str(parquet))
    assert code == EXIT_INVALID
    problem_at(err, f"{parquet} $[0].performance.min_write_rps", "-1")
    problem_at(err, f"{parquet} $[1].performance.min_write_rps", "nan")
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    code, _, err = call(capsys, "match", REGISTRY, str(fake))
    assert code == EXIT_INVALID and err.startswith("error: Cannot read slot table: ")


# --- explain, query -------------------------------------------------------------------------------

def test_explain_every_slot(capsys):
    code, out, _ = call(capsys, "explain", REGISTRY, SLOTS)
    assert code == EXIT_OK
    assert "search  optional" in out and "session-cache  required" in out
    # No near name: `Search` shares nothing with any interface but the suffix.
    assert "hint no backend declares interface `SearchInterface`" in flat(out)
    assert "did you mean `WatchInterface`" not in flat(out)
    code, out, _ = call(capsys, "explain", REGISTRY, SLOTS, "--format", "json")
    diagnoses = orjson.loads(out)
    assert [d["slot_name"] for d in diagnoses][:3] == ["storage", "registry", "messaging"]
    assert diagnoses[0]["eligible"] == 2 and diagnoses[0]["total"] == 14
    assert diagnoses[0]["text"].startswith("2/14 backends eligible: ")


def test_query_file_in_the_seed_format_ignores_its_response(capsys):
    code, out, _ = call(capsys, "query", REGISTRY, "--file", QUERY, "--format", "json")
    assert code == EXIT_OK
    doc = orjson.loads(out)
    # The page's answer: both Postgres backends, the primary first (tests/test_samples.py holds the rest).
    assert doc["total_count"] == 2
    assert [b["backend_id"] for b in doc["backends"]] == ["postgres-primary", "postgres-secondary"]
    assert set(doc["backends"][0]) == {"backend_id", "score", "reasons"}
    assert doc["backends"][0]["reasons"][0] == "capability_match"


def test_query_by_type_flags(capsys):
    code, out, _ = call(capsys, "query", REGISTRY, "--type", "kafka", "--type", "nats", "--region", "us-east-1")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[-1] == "total_count: 2"
    assert [line.split()[1] for line in lines if line[:1].isdigit()] == ["nats-prod-us-east-1",
                                                                       "kafka-prod-us-east-1"]


def test_query_flags_build_the_seed_query(capsys):
    code, out, _ = call(capsys, "query", REGISTRY, "--capability", "transaction", "--capability", "get,set",
                        "--interface", "KeyValueBasicInterface", "--interface", "TransactionalInterface",
                        "--min-write-rps", "10000", "--min-read-rps", "50000", "--min-storage", "1TB",
                        "--region", "us-east-1", "--region", "us-west-2", "--health", "healthy",
                        "--format", "json")
    assert code == EXIT_OK
    flags = orjson.loads(out)
    code, out, _ = call(capsys, "query", REGISTRY, "--file", QUERY, "--format", "json")
    assert flags == orjson.loads(out)


def test_query_with_no_result_shows_why(capsys):
    code, out, _ = call(capsys, "query", REGISTRY, "--interface", "GraphInterfac")
    assert code == EXIT_OK
    assert "total_count: 0" in out
    assert "no backend declares interface `GraphInterfac`; did you mean `GraphInterface`?" in flat(out)


@pytest.mark.parametrize(("args", "location", "token"), [
    (["--min-storage", "1XB"], "command line $.min_capacity.min_storage", "1XB"),
    (["--health", "sick"], "command line $.health_statuses[0]", "sick"),
    (["--consistency", "strongest"], "command line $.consistency", "strongest"),
    (["--max-latency-p99", "25"], "command line $.max_latency_p99", "25"),
])
def test_query_flag_errors_name_the_field(capsys, args, location, token):
    code, out, err = call(capsys, "query", REGISTRY, *args)
    assert code == EXIT_INVALID and out == ""
    assert err.startswith("error: ")
    problem_at(err, location, token)


def test_query_file_and_flags_together_is_a_usage_error(capsys):
    code, _, err = call(capsys, "query", REGISTRY, "--file", QUERY, "--type", "kafka")
    assert code == EXIT_INVALID
    assert err == "error: Give either `--file` or query flags, not both\n"


def test_query_file_with_unknown_keys_is_an_error(capsys, tmp_path: Path):
    path = tmp_path / "q.yaml"
    path.write_text("query:\n  backend_types: [kafka]\n  region: [us-east-1]\nresponse: {}\nextra: 1\n")
    code, _, err = call(capsys, "query", REGISTRY, "--file", str(path))
    assert code == EXIT_INVALID
    assert err == f"error: Unknown field `extra` - at {path} $\n"
    path.write_text("query:\n  backend_types: [kafka]\n  region: [us-east-1]\n")
    code, _, err = call(capsys, "query", REGISTRY, "--file", str(path))
    assert code == EXIT_INVALID
    problem_at(err, f"{path} $.query", "Unknown field `region`")


# --- validate ---------------------------------------------------------------------------------

def test_validate_summary_json(capsys):
    code, out, _ = call(capsys, "validate", REGISTRY, "--format", "json")
    assert code == EXIT_OK
    doc = orjson.loads(out)
    assert doc["valid"] is True and doc["backends"] == 14
    assert set(doc["by_type"]) == {"kafka", "nats", "postgres", "redis", "sqlite", "neptune", "sqs", "s3",
                                   "memstore"}
    assert doc["by_health"] == {"healthy": 7, "degraded": 2, "unhealthy": 1, "maintenance": 1, "unknown": 3}
    assert doc["without_cost"] == ["memstore-local", "postgres-primary", "redis-cache-us-east-1",
                                   "sqlite-edge-local"]
    assert doc["without_health"] == ["memstore-local", "redis-cache-us-east-1", "sqlite-edge-local"]
    assert doc["vocabulary"]["regions"] == 4


def test_validate_errors_json(capsys, broken_registry: Path):
    code, out, err = call(capsys, "validate", str(broken_registry), "--format", "json")
    assert code == EXIT_INVALID and err == ""
    doc = orjson.loads(out)
    assert doc["valid"] is False
    locations = [e["location"] for e in doc["errors"]]
    assert f"{broken_registry}#1:2:15 $.backend_type" in locations
    assert f"{broken_registry}#2:9:44 $.capacity.max_read_rps" in locations
    assert SECRET not in out


def test_validate_several_files_finds_duplicates_across_them(capsys, tmp_path: Path):
    copy = tmp_path / "copy.yaml"
    copy.write_text(Path(REGISTRY).read_text())
    code, _, err = call(capsys, "validate", REGISTRY, str(copy))
    assert code == EXIT_INVALID
    assert err.startswith("error: 14 problems:")
    assert (f"Duplicate backend_id `kafka-prod-us-east-1`, first defined at {REGISTRY}#1:15:13 $.backend_id - at "
            f"{copy}#1:15:13 $.backend_id") in err
    extra = tmp_path / "extra.yaml"
    extra.write_text("backend_id: extra-sqs\nbackend_type: sqs\n")
    code, out, _ = call(capsys, "validate", REGISTRY, str(extra))
    assert code == EXIT_OK and "15 backends, valid" in out


# --- cost -------------------------------------------------------------------------------------

def test_cost_table_cheapest_first(capsys):
    code, out, _ = call(capsys, "cost", REGISTRY, *SEED_COST_FLAGS)
    assert code == EXIT_OK
    lines = out.splitlines()
    rows = [line.split() for line in lines[3:] if line and not line.startswith(("─", "11 "))]
    assert rows[0][0] == "postgres-secondary"
    kafka = next(r for r in rows if r[0] == "kafka-prod-us-east-1")
    assert kafka[-1] == "$18,256.40"
    assert kafka[1:8] == ["$1.00", "$2.50", "$250.00", "$18,000.00", "$1.00", "$1.00", "$0.90"]
    assert next(r for r in rows if r[0] == "postgres-primary")[-1] == "—"
    assert lines[-1] == "11 backend(s) declare no price for a term this workload uses: total unknown (—)"


def test_cost_csv_and_parquet(capsys, tmp_path: Path):
    code, out, _ = call(capsys, "cost", REGISTRY, "--writes", "1e6", "--format", "csv")
    assert code == EXIT_OK
    from io import StringIO

    frame = pl.read_csv(StringIO(out))
    assert frame.row(0, named=True)["backend_id"] == "redis-cache-eu-west-1"
    assert frame.get_column("total").null_count() == 4
    target = tmp_path / "cost.parquet"
    code, _, _ = call(capsys, "cost", REGISTRY, *SEED_COST_FLAGS, "--format", "parquet", "-o", str(target))
    parquet = pl.read_parquet(target)
    assert round(parquet.filter(pl.col("backend_id") == "kafka-prod-us-east-1")["total"][0], 2) == 18256.40


def test_cost_flags_cover_the_workload(capsys):
    assert list(cli._COST_FLAGS) == list(WORKLOAD_KEYS)
    code, out, _ = call(capsys, "cost", "--help")
    assert code == EXIT_OK
    for flag in cli._COST_FLAGS.values():
        assert flag in out
    assert "hours the connections are held (default: 720, a 30-day month)" in flat(out)
    args = cli.build_parser().parse_args(["cost", REGISTRY])
    assert {key: getattr(args, key) for key in WORKLOAD_KEYS} == {key: 720.0 if key == "hours" else 0.0
                                                                   for key in WORKLOAD_KEYS}


def test_cost_errors_name_the_flags(capsys):
    code, _, err = call(capsys, "cost", REGISTRY, "--writes", "-1", "--reads", "nan")
    assert code == EXIT_INVALID
    assert err == ("error: 2 problems:\n  Expected a number >= 0, got `-1.0` - at --writes\n"
                   "  Expected a finite number, got `nan` - at --reads\n")
    code, _, err = call(capsys, "cost", REGISTRY, "--writes", "lots")
    assert code == EXIT_INVALID and "argument --writes: invalid float value: 'lots'" in err


# --- generate, compile, assign -------------------------------------------------------------------

def test_generate_then_validate_and_match(capsys, tmp_path: Path):
    registry, slots = tmp_path / "gen.json", tmp_path / "gen-slots.yaml"
    assert call(capsys, "generate", "--backends", "300", "--seed", "3", "-o", str(registry))[0] == EXIT_OK
    code, _, err = call(capsys, "generate", "--slots", "40", "--seed", "3", "-o", str(slots))
    assert code == EXIT_OK and err == f"wrote 40 slots (seed 3) to {slots}\n"
    code, out, _ = call(capsys, "validate", str(registry))
    assert code == EXIT_OK and f"{registry}: 300 backends, valid" in out
    code, out, _ = call(capsys, "match", str(registry), str(slots), "--format", "json")
    assert code in (EXIT_OK, EXIT_UNBOUND)
    assert orjson.loads(out)["summary"]["slots"] == 40
    # Same seed, same file.
    again = tmp_path / "again.json"
    call(capsys, "generate", "--backends", "300", "--seed", "3", "-o", str(again))
    assert again.read_bytes() == registry.read_bytes()


def test_generate_yaml_loads_back(capsys, tmp_path: Path):
    target = tmp_path / "gen.yaml"
    assert call(capsys, "generate", "--backends", "25", "-o", str(target))[0] == EXIT_OK
    code, out, _ = call(capsys, "validate", str(target))
    assert code == EXIT_OK and "25 backends, valid" in out


@pytest.mark.parametrize("args", [["--backends", "3", "--slots", "3"], [], ["--backends", "0"]])
def test_generate_needs_one_count(capsys, tmp_path: Path, args):
    code, _, err = call(capsys, "generate", *args, "-o", str(tmp_path / "x.yaml"))
    assert code == EXIT_INVALID and err.startswith("error: ")


def test_compile_then_match_the_snapshot(capsys, tmp_path: Path):
    snapshot = tmp_path / "registry.snapshot"
    code, _, err = call(capsys, "compile", REGISTRY, "-o", str(snapshot))
    assert code == EXIT_OK and err == f"compiled 14 backends to {snapshot}\n"
    _, from_yaml, _ = call(capsys, "match", REGISTRY, SLOTS, "-k", "3", "--format", "json")
    code, from_snapshot, _ = call(capsys, "match", str(snapshot), SLOTS, "-k", "3", "--format", "json")
    assert code == EXIT_OK and from_snapshot == from_yaml
    code, out, _ = call(capsys, "validate", str(snapshot))
    assert code == EXIT_OK and "14 backends, valid" in out


def test_a_corrupt_snapshot_is_an_error(capsys, tmp_path: Path):
    fake = tmp_path / "registry.snapshot"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = call(capsys, "match", str(fake), SLOTS)
    assert code == EXIT_INVALID and err.startswith("error: Not a prism_match snapshot")


def test_assign_plan(capsys):
    code, out, _ = call(capsys, "assign", REGISTRY, SLOTS)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0] == "placement"
    assert "search  unplaced (optional)" in lines
    assert lines[-1] == "7 slots: 6 placed, 1 unplaced"
    assert any(line.startswith("postgres-primary") and "10k/50k (20%)" in line for line in lines)
    code, out, _ = call(capsys, "assign", REGISTRY, SLOTS, "--format", "json")
    doc = orjson.loads(out)
    assert [b["slot_name"] for b in doc["bindings"]] == ["storage", "registry", "messaging", "wal", "mailbox",
                                                         "session-cache"]
    assert doc["unplaced"][0]["slot_name"] == "search" and doc["unplaced"][0]["optional"] is True
    assert len(doc["utilisation"]) == 14


def test_assign_required_unplaced_exits_2(capsys, tmp_path: Path):
    # Two slots that each need most of postgres-primary's writes: the second cannot be placed.
    slot = {"interfaces": ["TransactionalInterface"], "performance": {"min_write_rps": 30000},
            "health_statuses": ["healthy"]}
    slots = write_slots(tmp_path, [{"slot_name": "first", **slot}, {"slot_name": "second", **slot}])
    code, out, err = call(capsys, "assign", REGISTRY, slots)
    assert code == EXIT_UNBOUND
    assert "second  UNPLACED (required)" in out
    assert err == "error: 1 required slot(s) with no eligible backend: `second`\n"


# --- odds and ends ----------------------------------------------------------------------------

def test_inline_secret_in_a_valid_registration_is_refused_without_echo(capsys, tmp_path: Path):
    path = tmp_path / "secret.yaml"
    path.write_text(f"backend_id: a\nbackend_type: redis\nconnection:\n  auth: {{type: token, token: {SECRET}}}\n"
                    f"metadata:\n  api:\n    key: {SECRET}\n")
    for command in (["validate", str(path)], ["match", str(path), SLOTS], ["cost", str(path), "--writes", "1"]):
        code, out, err = call(capsys, *command)
        assert code == EXIT_INVALID and out == ""
        assert SECRET not in err
        problem_at(err, f"{path} $.connection.auth.token", "Inline secret in `token`")
        problem_at(err, f"{path} $.metadata.api.key", "Inline secret in `key`")
    code, out, err = call(capsys, "validate", str(path), "--format", "json")
    assert code == EXIT_INVALID and err == ""
    assert SECRET not in out
    assert [e["location"] for e in orjson.loads(out)["errors"]] == [f"{path}:4:30 $.connection.auth.token",
                                                                    f"{path}:7:10 $.metadata.api.key"]


def test_usage_error_exits_1_with_usage(capsys):
    code, _, err = call(capsys)
    assert code == EXIT_INVALID
    assert err.startswith("usage: prism-match")
    assert "error: prism-match: the following arguments are required: COMMAND" in err
    code, _, err = call(capsys, "match", REGISTRY)
    assert code == EXIT_INVALID
    assert err.startswith("usage: prism-match match") and "required: SLOTS" in err


def test_help_and_version_exit_0(capsys):
    code, out, _ = call(capsys, "--help")
    assert code == EXIT_OK and "exit status: 0 ok; 1 invalid input" in out
    code, out, _ = call(capsys, "--version")
    assert code == EXIT_OK and out.startswith("prism-match ")


def test_progress_bar_only_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(render, "PROGRESS_MIN_SLOTS", 1)
    code, out, err = call(capsys, "match", REGISTRY, SLOTS, "--format", "json")
    assert code == EXIT_OK and err == ""          # stderr is not a terminal here: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, again, _ = call(capsys, "match", REGISTRY, SLOTS, "--format", "json")
    assert code == EXIT_OK and again == out        # the bar never touches stdout


def test_markup_in_names_is_printed_as_text(capsys, tmp_path: Path):
    """rich markup in a slot name must not be interpreted (nor crash)."""
    slots = write_slots(tmp_path, [{"slot_name": "[bold red]x[/]", "interfaces": ["PubSubInterface"]}])
    code, out, _ = call(capsys, "match", REGISTRY, slots)
    assert code == EXIT_OK
    assert "[bold red]x[/]  required  → nats-prod-us-east-1" in out


# --- large batches: compact, plain layout ------------------------------------------------------

def test_many_slots_get_a_compact_table(capsys, tmp_path: Path):
    slots = tmp_path / "many.json"
    call(capsys, "generate", "--slots", str(cli.DETAIL_MAX_SLOTS + 10), "--seed", "1", "-o", str(slots))
    code, out, _ = call(capsys, "match", REGISTRY, str(slots), "-k", "2")
    _, as_json, _ = call(capsys, "match", REGISTRY, str(slots), "-k", "2", "--format", "json")
    doc = orjson.loads(as_json)
    assert code == (EXIT_UNBOUND if doc["summary"]["unbound_required"] else EXIT_OK)
    lines = out.splitlines()
    assert lines[0].split() == ["slot", "need", "#", "backend", "score", "perf", "cost", "avail", "region"]
    rows = [line.split() for line in lines[2:lines.index("")]]
    expected = [(s["slot_name"], m["backend_id"]) for s in doc["slots"] for m in s["matches"]]
    assert [(r[0], r[3]) for r in rows if r[3] != "unbound"] == expected
    unbound = [s["slot_name"] for s in doc["slots"] if not s["matches"]]
    assert [r[0] for r in rows if r[3] == "unbound"] == unbound
    for name in unbound:  # each unbound slot's diagnosis follows the table
        assert any(line.startswith(f"{name}: 0/14 backends eligible: ") for line in lines)
    assert "(reasons are shown for up to 50 slots; --format json, ndjson or csv has them for every slot)" in lines
    assert lines[-1].startswith(f"{cli.DETAIL_MAX_SLOTS + 10} slots: {doc['summary']['bound']} bound")


def test_many_slots_explain_one_line_each(capsys, tmp_path: Path):
    slots = tmp_path / "many.json"
    call(capsys, "generate", "--slots", "60", "-o", str(slots))
    code, out, _ = call(capsys, "explain", REGISTRY, str(slots))
    assert code == EXIT_OK
    lines = out.splitlines()
    assert len(lines) == 60
    assert all(line.startswith(f"slot-{i:06d}  ") and "/14 backends eligible" in line for i, line in enumerate(lines))


def test_large_query_result_is_a_plain_table(capsys, tmp_path: Path):
    registry = tmp_path / "big.json"
    call(capsys, "generate", "--backends", "600", "--seed", "2", "-o", str(registry))
    code, out, _ = call(capsys, "query", str(registry), "--health", "healthy")
    assert code == EXIT_OK
    lines = out.splitlines()
    total = int(lines[-1].removeprefix("total_count: "))
    assert total > render.RICH_MAX_ROWS
    assert lines[0].split() == ["#", "backend", "score", "perf", "cost", "avail", "region"]
    assert set(lines[1]) == {"─"}
    rows = [line.split() for line in lines[2:-1]]
    assert [int(r[0]) for r in rows] == list(range(1, total + 1))
    _, as_json, _ = call(capsys, "query", str(registry), "--health", "healthy", "--format", "json")
    assert [r[1] for r in rows] == [b["backend_id"] for b in orjson.loads(as_json)["backends"]]


def test_slots_file_with_an_unknown_top_level_key(capsys, tmp_path: Path):
    path = tmp_path / "slots.yaml"
    path.write_text("slots:\n  - slot_name: a\nextra: 1\n")
    code, _, err = call(capsys, "match", REGISTRY, str(path))
    assert code == EXIT_INVALID
    problem_at(err, f"{path} $.extra", "Unknown field `extra`")


def test_slot_errors_are_bounded(capsys, tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps({"slots": [{"slot_name": f"s{i}", "performance": {"min_write_rps": -1}}
                                             for i in range(500)]}))
    code, _, err = call(capsys, "match", REGISTRY, str(path))
    assert code == EXIT_INVALID
    lines = err.splitlines()
    assert len(lines) == 102  # the count line, 100 problems, and where it stopped
    assert lines[-1] == f"  Stopped after 100 problems - at {path}"
