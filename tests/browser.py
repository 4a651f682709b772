"""Headless Chromium for the page's tests, driven by Playwright with Debian's own browser.

Playwright is told to use the system's ``chromium`` (``executable_path``), so
nothing is downloaded. When there is no browser the browser tests are
skipped, and the run ends with one loud line saying so (``conftest``); in CI
(``CI=true``) a missing browser is a failure instead, since ``.ci/run``
installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SKIPPED: list[str] = []
"""Why browser tests were skipped in this run (read by ``conftest``'s summary hook)."""

LAUNCH_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

DESKTOP = {"width": 1000, "height": 1400}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    """The system's Chromium: ``$DISCLOSURE_LEDGER_CHROMIUM``, else ``chromium`` on PATH."""
    given = os.environ.get("DISCLOSURE_LEDGER_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    SKIPPED.append(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium with a fresh profile directory, shared by the session's tests."""
    path = chromium_path()
    if path is None:
        _unavailable("Chromium not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        launched = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=path,
            headless=True,
            args=LAUNCH_ARGS,
            viewport=DESKTOP,
        )
        launched.set_default_timeout(10_000)  # a local file: anything slower is a failure
        try:
            yield launched
        finally:
            launched.close()


class Opened:
    """A page opened in the browser, with every request it made recorded."""

    def __init__(self, context: Any, url: str, viewport: dict[str, int]) -> None:
        self.requests: list[str] = []
        self.page = context.new_page()
        self.page.set_viewport_size(viewport)
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(url)

    def close(self) -> None:
        self.page.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_page(context: Any, path: Path, viewport: dict[str, int] = DESKTOP) -> Opened:
    """Open the file ``path`` at ``viewport`` size."""
    return Opened(context, path.resolve().as_uri(), viewport)
