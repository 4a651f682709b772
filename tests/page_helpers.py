"""A small ledger for the page's tests: hostile strings, every notification state, both consents.

The events are chosen so that each part of the page has something to show:
vendor staff views on two days, the owner's own views, a vendor system, and
five disclosures whose order in the ledger is not their order in time (the
page must put the earliest disclosure without consent first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from disclosure_ledger._core import records
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._verify.activity import Activity, ActivityTally, kind_of
from disclosure_ledger._verify.verifier import Report, verify

from .ledger_helpers import event, log_key, new_ledger, release_event, writer_key

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
"""The time the tests' pages are made: after one deferral has expired, before another."""

HOSTILE_ORG = '<script>alert("org")</script>'
HOSTILE_JUSTIFICATION = '"><img src="http://evil.example/x.png" onerror="alert(1)"><a href="x">'
HOSTILE_CAMERA = "<style>body{display:none}</style>cam"
EARLIEST_WITHOUT_CONSENT = "ev-early"


def _at(day: int, hour: int, minute: int = 0) -> str:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def page_events() -> list[dict[str, Any]]:
    """The events, in ledger order."""
    out: list[dict[str, Any]] = []
    for i in range(8):
        out.append(event(i, occurred_at=_at(25 + i % 2, 9 + i)))
    for i in range(8, 12):
        out.append(
            event(
                i,
                occurred_at=_at(26, 8 + i),
                actor={"kind": "owner", "id": "owner-42"},
                justification=None,
            )
        )
    out.append(
        event(
            12,
            action="clip",
            occurred_at=_at(26, 3),
            actor={"kind": "vendor_system", "id": "motion-detector"},
        )
    )
    # Disclosures, not in time order.
    late = release_event(13, basis="warrant")
    late.update(occurred_at=_at(27, 15), owner_notified_at=_at(28, 9))
    hostile = release_event(14)
    hostile.update(
        occurred_at=_at(26, 14),
        camera_id=HOSTILE_CAMERA,
        justification=HOSTILE_JUSTIFICATION,
        notification_deferred_until=_at(29, 0),  # expired by NOW, never notified
    )
    hostile["recipient"] = {"kind": "third_party", "organization": HOSTILE_ORG}
    early = release_event(15)
    early.update(event_id=EARLIEST_WITHOUT_CONSENT, occurred_at=_at(25, 6))  # never notified
    pending = release_event(16, basis="subpoena")
    pending.update(
        occurred_at=_at(27, 10),
        notification_deferred_until="2027-01-15T00:00:00Z",  # still in force at NOW
    )
    consented = event(
        17,
        action="share",
        occurred_at=_at(26, 20),
        recipient={"kind": "third_party", "organization": "Acme Insurance"},
        legal_basis="owner_consent",
        consent=True,
        owner_notified_at=_at(26, 20, 5),
    )
    out += [late, hostile, early, pending, consented]
    return out


def make_bundle(tmp: Path) -> Path:
    """Write the events to a new ledger in ``tmp`` and export it; return the bundle's path."""
    lg = new_ledger(tmp)
    lg.append_many(page_events())
    bundle = tmp / "page.bundle"
    lg.export(bundle)
    lg.close()
    return bundle


def policy() -> Policy:
    return Policy(logs=(log_key().verifier,), writers=(writer_key().verifier,))


def verified(tmp: Path) -> Report:
    return verify(make_bundle(tmp), policy())


def tally(events: list[dict[str, Any]]) -> Activity:
    """The activity counted straight from the events: the oracle for the verifier's counts."""
    t = ActivityTally()
    for obj in events:
        ev = records.event_from_json(obj)
        cls = records.access_class(ev)
        t.add(
            ev.occurred_at,
            ev.camera_id,
            kind_of(cls),
            cls is records.AccessClass.OUTSIDE and records.is_without_consent(ev),
        )
    return t.result()


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text, as a browser would parse it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def names(self) -> set[str]:
        return {tag for tag, _ in self.tags}
