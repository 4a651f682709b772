"""Shared test fixtures: where the published vectors live, and small loaders.

The vectors are read in place from ``../shared/vectors`` (next to the project
root), never copied into the project. If the directory is missing the tests
fail loudly: CI has it, and a silently skipped conformance suite proves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """End the run with one loud line if the browser tests were skipped (see tests/browser.py)."""
    from .browser import SKIPPED

    if SKIPPED:
        terminalreporter.write_line(
            f"BROWSER TESTS SKIPPED: {SKIPPED[0]}; the owner's page was not tested in a browser",
            red=True,
            bold=True,
        )
