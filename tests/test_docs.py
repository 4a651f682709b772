"""Documentation that is executed: every ```python block in README.md and docs/*.md runs.

Blocks of one file run in order in one namespace, in a fresh temporary working
directory, so examples can create files and build on each other.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .ledger_helpers import event

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks(path: Path) -> list[str]:
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "path", [p for p in DOCS if _blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_doc_examples_run(path: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    namespace: dict[str, object] = {"__name__": f"doc:{path.name}"}
    if path.name == "postgres.md":
        # Its examples name a database URL and an event; the run's server gives the database.
        namespace["URL"] = request.getfixturevalue("pg_url")
        namespace["EVENT"] = event(1)
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        for number, code in enumerate(_blocks(path), 1):
            try:
                exec(compile(code, f"{path.name}#block{number}", "exec"), namespace)  # noqa: S102 - running the docs is the point
            except Exception as err:
                raise AssertionError(f"{path.name} block {number} failed: {err!r}") from err
    finally:
        os.chdir(old)


def test_readme_gives_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "disclosure-ledger demo" in text
    assert "python -m pytest" in text
