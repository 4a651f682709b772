"""Without a browser, the page's browser tests skip loudly outside CI and fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_browser_tests(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["DISCLOSURE_LEDGER_CHROMIUM"] = str(ROOT / "no-such-browser")
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_page_browser.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_a_missing_browser_is_one_loud_line_outside_ci() -> None:
    done = _run_browser_tests(ci=False)
    assert done.returncode == 0, done.stdout + done.stderr
    loud = [line for line in done.stdout.splitlines() if "BROWSER TESTS SKIPPED" in line]
    assert len(loud) == 1, done.stdout
    assert "Chromium not found" in loud[0]


def test_a_missing_browser_fails_in_ci() -> None:
    done = _run_browser_tests(ci=True)
    assert done.returncode != 0, done.stdout
    assert "browser tests cannot run in CI: Chromium not found" in done.stdout
