"""Shell completion: `prism-match` answers argcomplete's protocol (what
`eval "$(register-python-argcomplete prism-match)"` makes bash ask)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "prism-match"


def complete(line: str, tmp_path: Path) -> list[str]:
    out = tmp_path / "completions.txt"
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE_IFS": "\n"}
    proc = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [word.strip() for word in out.read_text().split("\n") if word.strip()]


@pytest.mark.skipif(not SCRIPT.exists(), reason="the console script is installed by `make install`")
def test_commands_flags_and_choices_complete(tmp_path):
    assert complete("prism-match va", tmp_path) == ["validate"]
    assert [w for w in complete("prism-match schema ", tmp_path) if not w.startswith("-")] == [
        "registration", "slot", "pattern", "query", "policy"]
    assert complete("prism-match query r.yaml --type k", tmp_path) == ["kafka"]
    assert "--capacity-basis" in complete("prism-match match r.yaml s.yaml --cap", tmp_path)
