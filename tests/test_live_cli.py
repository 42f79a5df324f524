"""The living registry from the command line: a snapshot changed in place by
add, reserve, release, replace and remove, each printing what it did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prism_match import cli, load_snapshot

DATA = Path(__file__).parent.parent / "data"


def run(capsys, *argv: str) -> dict:
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def snapshot(tmp_path, capsys) -> str:
    path = str(tmp_path / "live.npz")
    assert cli.main(["compile", str(DATA / "registry.yaml"), "-o", path]) == 0
    capsys.readouterr()
    return path


def test_a_placement_script_round_trip(snapshot, tmp_path, capsys):
    new = tmp_path / "new.yaml"
    new.write_text("backend_id: redis-new\nbackend_type: redis\ninterfaces: [KeyValueBasicInterface]\n"
                   "capacity: {max_write_rps: 50000, max_read_rps: 90000}\n")
    slots = tmp_path / "slots.yaml"
    slots.write_text("- slot_name: cache\n  interfaces: [KeyValueBasicInterface]\n"
                     "  performance: {min_write_rps: 40000}\n")
    start = load_snapshot(snapshot).version
    assert run(capsys, "add", snapshot, str(new)) == {"version": start + 1, "added": ["redis-new"]}
    held = run(capsys, "reserve", snapshot, str(slots), "--backend", "redis-new")["reservations"][0]
    assert (held["backend_id"], held["write_rps"]) == ("redis-new", 40000.0)
    registry = load_snapshot(snapshot)
    assert registry["redis-new"].current.write_rps == 40000 and len(registry.reservations) == 1
    # 10,000 write rps left: a second reservation on it must fail, and change nothing.
    assert cli.main(["reserve", snapshot, str(slots), "--backend", "redis-new"]) != 0
    assert "not eligible" in capsys.readouterr().err
    assert len(load_snapshot(snapshot).reservations) == 1
    assert run(capsys, "release", snapshot, str(held["id"]))["released"] == {str(held["id"]): True}
    assert run(capsys, "release", snapshot, str(held["id"]))["released"] == {str(held["id"]): False}
    assert run(capsys, "remove", snapshot, "redis-new")["removed"] == ["redis-new"]
    final = load_snapshot(snapshot)
    assert "redis-new" not in final and final.version == start + 4  # a second release changes nothing


def test_remove_of_an_unknown_backend_is_an_error_and_changes_nothing(snapshot, capsys):
    before = load_snapshot(snapshot).version
    assert cli.main(["remove", snapshot, "no-such-backend"]) != 0
    assert "Unknown backend `no-such-backend`" in capsys.readouterr().err
    assert load_snapshot(snapshot).version == before
