"""Shared builders for ledger tests: keys, events, a fresh ledger and a forked pair."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer
from disclosure_ledger._log.ledger import Ledger

LOG_SEED = bytes(range(32))
WRITER_SEED = bytes(range(1, 33))
ORIGIN = "vendor.example/ledger/owner-42"


def log_key() -> Signer:
    return Signer(ORIGIN, LOG_SEED)


def writer_key(name: str = "vendor.example/writer/backend-1") -> Signer:
    return Signer(
        name, WRITER_SEED if name.endswith("backend-1") else hashlib.sha256(name.encode()).digest()
    )


def event(i: int, **overrides: Any) -> dict[str, Any]:
    """A valid event in JSON form; ``i`` makes the id and times unique."""
    base = datetime(2026, 11, 27, 9, 0, tzinfo=UTC) + timedelta(minutes=i)
    ev: dict[str, Any] = {
        "event_id": f"ev-{i:08d}",
        "occurred_at": (base + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "camera_id": f"cam-{i % 3}",
        "owner_id": "owner-42",
        "action": "view",
        "actor": {"kind": "vendor_employee", "id": f"emp-{i % 5}", "organization": "Vendor Inc"},
        "footage": [
            {
                "clip_id": f"clip-{i}",
                "sha256": hashlib.sha256(f"clip-{i}".encode()).hexdigest(),
                "start": base.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (base + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ],
        "justification": "support ticket",
    }
    ev.update(overrides)
    return ev


def release_event(i: int, basis: str = "emergency") -> dict[str, Any]:
    return event(
        i,
        action="release",
        recipient={"kind": "law_enforcement", "organization": "Springfield PD"},
        legal_basis=basis,
        legal_reference=f"case 26-{i}",
    )


def new_ledger(tmp: Path, name: str = "test.ledger", **kwargs: Any) -> Ledger:
    return Ledger.create(tmp / name, log_key=log_key(), writers=[writer_key()], **kwargs)


def witness_key(name: str = "witness.example/w1") -> Signer:
    """A cosignature (type 0x04) key whose seed follows from its name."""
    return Signer(name, hashlib.sha256(name.encode()).digest(), KEY_TYPE_COSIGNATURE)


def forked_ledgers(tmp: Path) -> Iterator[tuple[Ledger, Ledger]]:
    """Two empty ledgers under one log key, for a fixture: fill them differently to fork.

    Ledger ``a`` is :func:`new_ledger`'s; ``b`` is a second ledger with the same keys.
    """
    a = new_ledger(tmp, "a.ledger")
    b = Ledger.create(tmp / "b.ledger", log_key=log_key(), writers=[writer_key()])
    yield a, b
    a.close()
    b.close()
