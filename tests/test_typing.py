"""The public surface is typed and discoverable.

`mypy --strict` passes on tests/typed/usage.py (a placement service's use of
the library) and fails on a misuse, so the types are real, not Any; the
example also runs. `dir(prism_match)` is `__all__`; `Registry.update` is
documented for help() yet is the compiled method on every instance.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import prism_match as pm

ROOT = Path(__file__).resolve().parent.parent
USAGE = Path(__file__).parent / "typed" / "usage.py"
CACHE = ROOT / "build" / "mypy-cache"   # warm after the first run (build/ is not committed)


def mypy(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(CACHE), *map(str, paths)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_typed_example_passes_mypy_strict_and_a_misuse_fails(tmp_path):
    misuse = tmp_path / "misuse.py"
    misuse.write_text(
        "import prism_match as pm\n"
        "registry = pm.load_registry('data/registry.yaml')\n"
        "best: list[str] = registry.match({'slot_name': 's'}, 1)\n"   # list[Match], not list[str]
        "score: str = registry.match({'slot_name': 's'})[0].score\n"  # a float
        "registry.update('a', status=3)\n")                            # a str
    proc = mypy(USAGE, misuse)
    assert "usage.py" not in proc.stdout, proc.stdout
    errors = [line for line in proc.stdout.splitlines() if "misuse.py" in line]
    assert len(errors) == 3, proc.stdout
    assert "list[Match]" in errors[0] and '"float"' in errors[1] and '"int"' in errors[2]


def test_the_typed_example_runs():
    proc = subprocess.run([sys.executable, str(USAGE)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 0


def test_dir_is_the_public_surface():
    assert dir(pm) == sorted(pm.__all__)
    assert "batch" not in dir(pm) and "HealthTracker" in dir(pm)
    for name in pm.__all__:
        assert getattr(pm, name) is not None


def test_update_is_documented_and_compiled():
    assert "live state in place" in (pm.Registry.update.__doc__ or "")
    registry = pm.load_registry([{"backend_id": "a", "backend_type": "redis"}])
    assert registry.update.__self__ is registry.engine.core   # the compiled method, no Python frame between
    registry.update("a", status="unhealthy")
    assert registry.match({"slot_name": "s"}) == []


def test_add_remove_reserve_and_release_are_documented_and_compiled():
    # The class's methods document them; each registry's are the compiled
    # ones (no Python frame between), and a what-if view keeps its refusals.
    registry = pm.load_registry([{"backend_id": "a", "backend_type": "redis"}])
    for name, owner in (("add", registry._edits), ("remove", registry._edits), ("reserve", registry._book),
                        ("release", registry._book)):
        assert getattr(registry, name).__self__ is owner, name
        assert getattr(pm.Registry, name).__doc__, name
    registry.add({"backend_id": "b", "backend_type": "redis"})
    registry.remove("a")
    assert registry.backend_ids == ["b"]
    view = registry.what_if(remove=["b"])
    with pytest.raises(pm.RegistryError, match="read-only"):
        view.add({"backend_id": "c", "backend_type": "redis"})
