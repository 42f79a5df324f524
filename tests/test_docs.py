"""Every code block of README.md and docs/*.md runs as written.

Each ```python block is written to a file and run by this interpreter in a
fresh directory holding a copy of data/ (what a clone has at its root), so a
block that needs a name defined elsewhere, a file that is not there or a
placeholder fails here, not in a newcomer's hands. Every `prism-match …`
line of a ```sh/```console block is run through the CLI's main() in such a
directory and must exit 0.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prism_match.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(language: set[str]) -> list[tuple[str, str]]:
    found = []
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) in language:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(2)))
    return found


PYTHON_BLOCKS = blocks({"python"})
COMMANDS = [(where, command) for where, body in blocks({"sh", "console", "shell", "bash"})
            for command in (line.strip().lstrip("$ ").split("  #")[0].strip() for line in body.splitlines())
            if re.match(r"^(\.venv/bin/)?prism-match\s", command) and not re.search(r"[|<>`]|\$\(", command)]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "data", tmp_path / "data")
    return tmp_path


def test_the_documents_have_blocks_to_check():
    assert len(PYTHON_BLOCKS) >= 4
    assert any("bind" in command for _, command in COMMANDS)


@pytest.mark.parametrize(("where", "code"), PYTHON_BLOCKS, ids=[where for where, _ in PYTHON_BLOCKS])
def test_python_block_runs(where: str, code: str, checkout: Path):
    script = checkout / "block.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=checkout, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{where}\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w} {c}" for w, c in COMMANDS])
def test_cli_line_runs(where: str, command: str, checkout: Path, monkeypatch, capsys):
    monkeypatch.chdir(checkout)
    argv = shlex.split(command)[1:]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, f"{where}: {command}\n{err}"


YAML_BLOCKS = blocks({"yaml"})


@pytest.mark.parametrize(("where", "text"), YAML_BLOCKS, ids=[where for where, _ in YAML_BLOCKS])
def test_yaml_block_is_a_valid_document(where: str, text: str):
    """A document shown in the docs validates as the kind it has (a comment-only block is skipped)."""
    import yaml

    from prism_match.documents import document_kind, validate_document

    doc = yaml.safe_load(text)
    if doc is None:
        return
    kind = document_kind(doc)
    assert kind is not None, where
    assert validate_document(where, doc, kind)
