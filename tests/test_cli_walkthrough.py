"""docs/writers.md's command-line walkthrough, run line by line in a fresh directory.

Each ``$`` line runs in bash with this environment's scripts first on PATH;
the lines after it must appear in its output (standard output and error), in
order, where ``…`` stands for anything. A command must exit 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "writers.md"
_BLOCK = re.compile(r"^```console\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _walkthrough() -> list[tuple[str, list[str]]]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## From the command line")
    end = text.index("\n## ", start + 1)
    steps: list[tuple[str, list[str]]] = []
    for block in _BLOCK.findall(text[start:end]):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return steps


def _pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in line.split("…")))


def test_the_walkthrough_has_the_steps_the_issue_names() -> None:
    commands = " ".join(cmd for cmd, _ in _walkthrough())
    for step in ("keygen", "init", "append", "checkpoint", "prove", "export", "sqlite-utils"):
        assert f" {step} " in f" {commands} " or f"ledger {step} " in commands, step


def test_the_walkthrough_runs(tmp_path: Path) -> None:
    bindir = str(Path(sys.executable).parent)
    if shutil.which("sqlite-utils", path=bindir) is None:
        pytest.fail("sqlite-utils is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    for command, expected in _walkthrough():
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, (command, done.stderr)
        actual = (done.stdout + done.stderr).splitlines()
        at = 0
        for want in expected:
            pattern = _pattern(want)
            while at < len(actual) and not pattern.fullmatch(actual[at]):
                at += 1
            assert at < len(actual), (command, want, actual)
            at += 1
