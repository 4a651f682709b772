"""Shared test fixtures: where the published vectors live, and small loaders.

The vectors are read in place from ``../shared/vectors`` (next to the project
root), never copied into the project. If the directory is missing the tests
fail loudly: CI has it, and a silently skipped conformance suite proves nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .pg_server import PgServer, find_bindir

VECTORS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


def vectors_dir() -> Path:
    """Return the vectors directory, raising (never skipping) when it is missing."""
    if not VECTORS_DIR.is_dir():
        raise FileNotFoundError(
            f"published test vectors not found at {VECTORS_DIR}; "
            "they must sit in ../shared/vectors relative to the project root"
        )
    return VECTORS_DIR


def load_json(relative: str) -> Any:
    """Load one JSON vector file, by path relative to the vectors directory."""
    return json.loads((vectors_dir() / relative).read_text(encoding="utf-8"))


def flip_bit(data: bytes, bit: int) -> bytes:
    """Return ``data`` with one bit flipped (``bit`` taken modulo its length)."""
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- PostgreSQL: one server for the whole run (see tests/pg_server.py) ----------


_SKIPPED_POSTGRES: list[str] = []

try:
    import psycopg  # noqa: F401 - only whether it is there
except ImportError:
    # These import the driver; the others reach the server through the fixture below.
    collect_ignore = ["test_postgres_store.py", "test_postgres_cli.py"]
    _SKIPPED_POSTGRES.append(
        'POSTGRESQL TESTS NOT RUN: psycopg is not installed (pip install -e ".[test]")'
    )


def _postgres_unavailable(why: str) -> None:
    message = f"POSTGRESQL TESTS NOT RUN: {why}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true requires them)", pytrace=False)
    if not _SKIPPED_POSTGRES:
        _SKIPPED_POSTGRES.append(message)
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly, once, at the end of the run, which real-service tests were skipped.

    The browser tests (see tests/browser.py) and the PostgreSQL tests each
    skip outside CI when their service cannot be had, and fail under CI=true.
    """
    from .browser import SKIPPED

    if SKIPPED:
        terminalreporter.write_line(
            f"BROWSER TESTS SKIPPED: {SKIPPED[0]}; the owner's page was not tested in a browser",
            red=True,
            bold=True,
        )
    for message in _SKIPPED_POSTGRES:
        terminalreporter.write_line(f"*** {message} ***", red=True, bold=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the run: DL_TEST_POSTGRES_URL's, or a throwaway one of our own."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _postgres_unavailable('psycopg is not installed (pip install -e ".[test]")')
    url = os.environ.get("DL_TEST_POSTGRES_URL")
    if url:
        yield PgServer(url)
        return
    bindir = find_bindir()
    if bindir is None:
        _postgres_unavailable("no initdb found (install postgresql) and DL_TEST_POSTGRES_URL unset")
        return
    try:
        server = PgServer.start_own(bindir)
    except (RuntimeError, OSError, LookupError) as err:
        _postgres_unavailable(f"cannot start a throwaway server: {err}")
        return
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(postgres_server: PgServer) -> str:
    """The URL of a fresh, empty database on the run's server."""
    return postgres_server.new_database()
