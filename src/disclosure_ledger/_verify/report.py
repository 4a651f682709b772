"""Rendering a verification report: plain text for people, one JSON document for programs.

This module owns how a :class:`~.summary.Report` (or a failed verification)
reads. Both forms say the same things: the verdict, the log and its size, the
range and the time covered, every access by someone other than the owner
(disclosures to outside parties, those without the owner's consent first;
then the vendor staff's; then the vendor systems'), what a cap left unlisted,
and the counts by action, legal basis and recipient organization. Text shown
to a person passes through :func:`printable`, so a string in a record can
never move the cursor or change the terminal.
"""

from __future__ import annotations

import json
from typing import Any

from disclosure_ledger._core.notes import b64encode
from disclosure_ledger._verify.summary import Disclosure, Report
from disclosure_ledger.errors import LedgerError

__all__ = [
    "REPORT_FORMAT",
    "UNLISTED_HINT",
    "failure_to_json",
    "printable",
    "render_failure_json",
    "render_json",
    "render_text",
    "report_to_json",
]

REPORT_FORMAT = "disclosure-ledger/verify-report/v1"
"""The ``format`` member of every JSON report; a later layout gets a new name."""


def printable(text: object) -> str:
    """Return ``text`` with every non-printable character replaced by U+FFFD.

    Raises:
        Nothing: it converts with :class:`str` and replaces characters.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in s)


def _disclosure_json(d: Disclosure) -> dict[str, Any]:
    return {
        "index": d.index,
        "event_id": d.event_id,
        "occurred_at": d.occurred_at,
        "camera_id": d.camera_id,
        "action": d.action,
        "actor": {"kind": d.actor_kind, "id": d.actor_id, "organization": d.actor_organization},
        "recipient": None
        if d.recipient_kind is None
        else {
            "kind": d.recipient_kind,
            "id": d.recipient_id,
            "organization": d.recipient_organization,
        },
        "legal_basis": d.legal_basis,
        "legal_reference": d.legal_reference,
        "justification": d.justification,
        "consent": d.consent,
        "without_consent": d.without_consent,
        "owner_notified_at": d.owner_notified_at,
        "notification_deferred_until": d.notification_deferred_until,
        "footage": [
            {"clip_id": c.clip_id, "sha256": c.sha256, "start": c.start, "end": c.end}
            for c in d.footage
        ],
        "footage_count": d.footage_count,
        "access_class": d.access_class,
    }


UNLISTED_HINT = (
    "the lists are capped at {cap} entries each; verify again with a larger --max-listed,"
    " or export a range bundle (export --from M) and verify that, to list the rest"
)
"""What the report says when a cap left accesses out, and how to see them."""


def _unlisted_note(report: Report) -> str | None:
    unlisted = (
        report.unlisted_disclosures
        + report.unlisted_staff_accesses
        + report.unlisted_system_accesses
    )
    return UNLISTED_HINT.format(cap=report.max_listed) if unlisted else None


def report_to_json(report: Report) -> dict[str, Any]:
    """Return the report as a JSON-ready dict (see docs/owners.md for the members).

    Raises:
        Nothing: it copies fields of a report that :func:`~.verify.verify` built.
    """
    return {
        "format": REPORT_FORMAT,
        "verdict": report.verdict,
        "origin": report.origin,
        "size": report.size,
        "range": {"from": report.from_size, "to": report.size, "records": report.record_count},
        "root": b64encode(report.root),
        "checkpoint": report.checkpoint,
        "log_key": report.log_key,
        "cosigners": list(report.cosigners),
        "quorum": report.quorum,
        "occurred": {"first": report.first_occurred_at, "last": report.last_occurred_at},
        "logged": {"first": report.first_logged_at, "last": report.last_logged_at},
        "consistency": list(report.consistency),
        "state_saved": report.state_saved,
        "disclosure_count": report.disclosure_count,
        "without_consent_count": report.without_consent_count,
        "unlisted_disclosures": report.unlisted_disclosures,
        "disclosures": [_disclosure_json(d) for d in report.disclosures],
        "vendor_staff_access_count": report.staff_access_count,
        "unlisted_vendor_staff_accesses": report.unlisted_staff_accesses,
        "vendor_staff_accesses": [_disclosure_json(d) for d in report.staff_accesses],
        "vendor_system_access_count": report.system_access_count,
        "unlisted_vendor_system_accesses": report.unlisted_system_accesses,
        "vendor_system_accesses": [_disclosure_json(d) for d in report.system_accesses],
        "vendor_system_totals": [
            {"system": name, "action": action, "count": n}
            for name, action, n in report.system_totals
        ],
        "max_listed": report.max_listed,
        "unlisted_note": _unlisted_note(report),
        "counts": {
            "action": dict(report.actions),
            "legal_basis": dict(report.legal_bases),
            "recipient_organization": dict(report.recipient_organizations),
            "writer": dict(report.writers),
        },
    }


def render_json(report: Report) -> str:
    """Return the report as one JSON document (UTF-8 text, with a final newline).

    Raises:
        Nothing: every value :func:`report_to_json` returns is JSON-serializable.
    """
    return json.dumps(report_to_json(report), ensure_ascii=False, indent=2) + "\n"


def failure_to_json(err: LedgerError) -> dict[str, Any]:
    """Return a failed verification as a JSON-ready dict: verdict, error class, index, message.

    Raises:
        Nothing: it reads the error's class, ``index`` and message.
    """
    return {
        "format": REPORT_FORMAT,
        "verdict": "failed",
        "error": {
            "class": type(err).__name__,
            "index": getattr(err, "index", None),
            "message": str(err),
        },
    }


def render_failure_json(err: LedgerError) -> str:
    """Return :func:`failure_to_json` as one JSON document with a final newline.

    Raises:
        Nothing: every value :func:`failure_to_json` returns is JSON-serializable.
    """
    return json.dumps(failure_to_json(err), ensure_ascii=False, indent=2) + "\n"


def _party(kind: str | None, ident: str | None, org: str | None) -> str:
    if kind is None:
        return "nobody named"
    who = org or ident or "unnamed"
    extra = f", {ident}" if org and ident else ""
    return f"{who} ({kind}{extra})"


def _disclosure_lines(d: Disclosure) -> list[str]:
    basis = d.legal_basis or "not stated"
    if d.legal_reference:
        basis += f", reference {d.legal_reference}"
    if d.consent is not None:
        basis += f"; consent recorded as {'yes' if d.consent else 'no'}"
    actor = _party(d.actor_kind, d.actor_id, d.actor_organization)
    if d.recipient_kind is None:
        # No recipient named: the actor took the footage themselves.
        head = f"  #{d.index}  {d.occurred_at}  {d.action} by {actor}"
        by = f"      camera {d.camera_id}, event {d.event_id}"
    else:
        recipient = _party(d.recipient_kind, d.recipient_id, d.recipient_organization)
        head = f"  #{d.index}  {d.occurred_at}  {d.action} to {recipient}"
        by = f"      by {actor}, camera {d.camera_id}, event {d.event_id}"
    lines = [
        head,
        by,
        f"      legal basis: {basis}",
    ]
    if d.justification:
        lines.append(f"      justification: {d.justification}")
    for c in d.footage:
        lines.append(f"      footage: {c.clip_id} {c.start} .. {c.end} (sha256 {c.sha256[:16]}…)")
    if d.footage_count > len(d.footage):
        lines.append(f"      footage: and {d.footage_count - len(d.footage)} more clips")
    if not d.footage_count:
        lines.append("      footage: none named")
    lines.append(f"      notification: {d.notification}")
    return [printable(line) for line in lines]


def _counts(title: str, pairs: tuple[tuple[str, int], ...]) -> list[str]:
    if not pairs:
        return [f"  {title}: none"]
    width = max(len(printable(k)) for k, _ in pairs)
    out = [f"  {title}:"]
    out += [f"    {printable(k):<{width}}  {n}" for k, n in pairs]
    return out


def render_text(report: Report) -> str:
    """Return the report as plain text for a person.

    Verdict, log, size and times first; then every access by someone other
    than the owner: the disclosures (outside parties, those without the
    owner's consent leading), the vendor staff's accesses, the vendor
    systems' accesses (totals by system and action, then the entries); a
    note if a cap left entries out; then the counts.

    Raises:
        Nothing: pure formatting of a report that :func:`~.verify.verify` built.
    """
    r = report
    occurred = (
        f"{r.first_occurred_at} .. {r.last_occurred_at}"
        if r.first_occurred_at is not None
        else "no records"
    )
    logged = f"{r.first_logged_at} .. {r.last_logged_at}" if r.first_logged_at else "no records"
    witnessed = ", ".join(r.cosigners) if r.cosigners else "no witness"
    lines = [
        f"VERIFIED: the ledger of {printable(r.origin)} is intact",
        f"  size:         {r.size} records",
        f"  checked:      records {r.from_size} to {r.size - 1} ({r.record_count} records)"
        if r.record_count
        else f"  checked:      no new records (size {r.size})",
        f"  root:         {b64encode(r.root)}",
        f"  signed by:    the log key {printable(r.log_key)}",
        f"  cosigned by:  {printable(witnessed)} (policy: {printable(r.quorum)})",
        f"  occurred:     {occurred}",
        f"  logged:       {logged}",
    ]
    lines += [f"  consistency:  {printable(c)}" for c in r.consistency]
    if r.state_saved:
        lines.append("  state:        saved; the next run must be consistent with this checkpoint")
    lines.append("")
    others = r.disclosure_count - r.without_consent_count
    lines.append(
        f"DISCLOSURES: {r.disclosure_count}"
        f" ({r.without_consent_count} without your consent, {others} with it)"
    )
    without = [d for d in r.disclosures if d.without_consent]
    with_consent = [d for d in r.disclosures if not d.without_consent]
    if without:
        lines.append("")
        lines.append("Without your consent:")
        for d in without:
            lines += _disclosure_lines(d)
    if with_consent:
        lines.append("")
        lines.append("With your consent:")
        for d in with_consent:
            lines += _disclosure_lines(d)
    if r.unlisted_disclosures:
        lines.append("")
        lines.append(f"  ... and {r.unlisted_disclosures} more disclosures, counted but not listed")
    lines.append("")
    lines.append(
        f"VENDOR STAFF ACCESSES: {r.staff_access_count} (the vendor's employees and contractors)"
    )
    for d in r.staff_accesses:
        lines += _disclosure_lines(d)
    if r.unlisted_staff_accesses:
        lines.append(
            f"  ... and {r.unlisted_staff_accesses} more vendor staff accesses,"
            " counted but not listed"
        )
    lines.append("")
    lines.append(
        f"VENDOR SYSTEM ACCESSES: {r.system_access_count} (the vendor's automated systems)"
    )
    if r.system_totals:
        width = max(len(printable(f"{name} {action}")) for name, action, _ in r.system_totals)
        lines.append("  by system and action:")
        lines += [
            f"    {printable(f'{name} {action}'):<{width}}  {n}"
            for name, action, n in r.system_totals
        ]
    for d in r.system_accesses:
        lines += _disclosure_lines(d)
    if r.unlisted_system_accesses:
        lines.append(
            f"  ... and {r.unlisted_system_accesses} more vendor system accesses,"
            " counted above but not listed"
        )
    note = _unlisted_note(r)
    if note is not None:
        lines.append("")
        lines.append(f"NOTE: {note}")
    lines.append("")
    lines.append("COUNTS")
    lines += _counts("by action", r.actions)
    lines += _counts("by legal basis", r.legal_bases)
    lines += _counts("by recipient organization", r.recipient_organizations)
    lines += _counts("by writer key", r.writers)
    return "\n".join(lines) + "\n"
