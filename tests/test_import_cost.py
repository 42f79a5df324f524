"""`import prism_match` loads what loading and matching need, not polars
(0.3-0.5 s of cold start): a placement service and every CLI call would pay
it. polars is imported by the calls that return or read tables (and, for
now, by compiling a registry: compiled.py ranks the ids with it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"


def modules_after(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                          capture_output=True, text=True, cwd=DATA.parent, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_import_does_not_load_polars():
    loaded = modules_after("import prism_match")
    assert "prism_match.registry" in loaded
    assert not {"polars", "rich", "pyarrow", "pandas"} & loaded


def test_tables_still_come_back_as_polars():
    loaded = modules_after("import prism_match as pm\n"
                           "r = pm.load_registry('data/registry.yaml')\n"
                           "assert r.match_many([{'slot_name': 's'}], 2).height == 2\n")
    assert "polars" in loaded
