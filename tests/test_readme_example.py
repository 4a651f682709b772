"""The README's example, run as a new user would: it says what it did, and runs twice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_example_prints_what_it_did_and_runs_twice(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1), encoding="utf-8")
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        lines = run.stdout.splitlines()
        assert lines[0].startswith("appended record 0 to ")
        assert lines[1] == "integrity check: 1 records, 2 checkpoints, ok"
        assert lines[2].startswith("the receipt verifies offline: record 0 is in ")
