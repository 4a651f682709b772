"""The log keys of the PostgreSQL tests: derived from one master key (decision 0009)."""

from __future__ import annotations

from disclosure_ledger._core.notes import Signer
from disclosure_ledger.keys import derive_log_key

MASTER = Signer("vendor.example/log-master", bytes(range(64, 96)))


def log_key_for(origin: str) -> Signer:
    """The checkpoint key of the log ``origin``."""
    return derive_log_key(MASTER, origin)
