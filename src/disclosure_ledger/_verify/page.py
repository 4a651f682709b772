"""The owner's report as one self-contained HTML page.

This module owns the page that ``verify --html`` writes: the verdict, what
was checked and what it could not rule out, the disclosures without the
owner's consent (one card each, earliest first), those with it, the vendor's
own accesses, a timeline of accesses by kind, and the counts. It prepares
plain values (texts, numbers, chart geometry) from a :class:`Report` and an
:class:`~.activity.Activity`, and hands them to one Jinja2 template with
autoescaping on, so no string from the ledger can add markup: every such
string is also passed through :func:`~.report.printable` (no control or
bidi-override characters). The page needs nothing from outside itself: CSS is
inline (allowed by its hash in a Content-Security-Policy that forbids
everything else), charts are inline SVG, and there is no script.

A failed verification gets its own page: the reason in plain words and the
record concerned, what was checked, and no list of disclosures, because
nothing in a file that failed can be trusted.

Rendering is pure: the time used to judge an expired notification deferral
(``now``) and the zone to show times in (``tz``) are passed in.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from disclosure_ledger._core import records
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._verify.activity import Activity
from disclosure_ledger._verify.report import printable
from disclosure_ledger._verify.summary import Disclosure, Report
from disclosure_ledger.errors import (
    BadSignatureError,
    ChainBreakError,
    InconsistentCheckpointError,
    LedgerError,
    MalformedError,
    RollbackError,
    RootMismatchError,
    UntrustedKeyError,
    VerificationError,
)

__all__ = [
    "DEFAULT_MAX_CARDS",
    "PAGE_CSP",
    "parse_zone",
    "render_failure_page",
    "render_page",
]

DEFAULT_MAX_CARDS = 500
"""The most cards (and table rows) each list on the page shows; the rest are counted."""

_TOP = 15  # rows in each count table before the rest are summed
_CHART_W, _CHART_H = 760, 220
_PLOT_X, _PLOT_TOP, _PLOT_BOTTOM = 48, 24, 188
_KIND_LABELS = ("Your own views", "Vendor staff", "Vendor systems", "Disclosures")
_KIND_CLASSES = ("owner", "staff", "system", "outside")


def _css() -> str:
    return (resources.files(__package__) / "templates" / "page.css").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _environment() -> tuple[jinja2.Environment, str, str]:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("disclosure_ledger._verify", "templates"),
        autoescape=True,  # every template here is HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["p"] = printable
    css = _css()
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    csp = (
        "default-src 'none'; "
        f"style-src 'sha256-{digest}'; "
        "img-src 'none'; script-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return env, css, csp


def _page_csp() -> str:
    return _environment()[2]


PAGE_CSP = _page_csp()
"""The page's Content-Security-Policy: nothing may load, only the page's own style applies."""


def parse_zone(name: str) -> tzinfo:
    """Return the zone named ``name`` (an IANA name such as ``Europe/Berlin``, or ``UTC``).

    Raises:
        MalformedError: if there is no such zone.
    """
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise MalformedError(
            f"unknown time zone {name!r}; give an IANA name such as Europe/Berlin, or UTC"
        ) from err


# -- times -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Clock:
    tz: tzinfo
    now: datetime

    @property
    def zone_name(self) -> str:
        return "UTC" if self.tz is UTC else str(self.tz)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def when(self, text: str | None) -> str:
        """A record's time (``YYYY-MM-DDTHH:MM:SSZ``) as the owner reads it, zone named."""
        if text is None:
            return "not recorded"
        moment = self.local(records.parse_time(text))
        abbrev = moment.tzname() or self.zone_name
        return moment.strftime("%Y-%m-%d %H:%M:%S ") + abbrev

    def day(self, text: str) -> str:
        return self.local(records.parse_time(text)).strftime("%Y-%m-%d")


# -- cards -------------------------------------------------------------------------------


def _party(kind: str | None, ident: str | None, org: str | None) -> str:
    if kind is None:
        return "nobody named"
    who = org or ident or "unnamed"
    extra = f", {ident}" if org and ident else ""
    return f"{who} ({kind.replace('_', ' ')}{extra})"


def _notification(d: Disclosure, clock: _Clock) -> dict[str, Any]:
    if d.owner_notified_at is not None:
        text = f"You were notified on {clock.when(d.owner_notified_at)}."
        if d.notification_deferred_until is not None:
            deferred = clock.when(d.notification_deferred_until)
            text += f" (Notice had been deferred until {deferred}.)"
        return {"status": "notified", "label": "Notified", "text": text, "flag": False}
    if d.notification_deferred_until is not None:
        until = records.parse_time(d.notification_deferred_until)
        if until <= clock.now:
            return {
                "status": "overdue",
                "label": "Deferral expired, never notified",
                "text": f"Notice was deferred until {clock.when(d.notification_deferred_until)}."
                " That date has passed and the ledger records no notice to you.",
                "flag": True,
            }
        return {
            "status": "deferred",
            "label": "Notice deferred",
            "text": f"Notice is deferred until {clock.when(d.notification_deferred_until)}.",
            "flag": False,
        }
    return {
        "status": "never",
        "label": "Never notified",
        "text": "The ledger records no notice to you, and no deferral.",
        "flag": True,
    }


def _card(d: Disclosure, clock: _Clock) -> dict[str, Any]:
    basis = (d.legal_basis or "not stated").replace("_", " ")
    if d.consent is not None:
        basis_consent = "you consented" if d.consent else "you refused consent"
    else:
        basis_consent = "no consent recorded"
    if d.recipient_kind is None:
        recipient = "nobody named: the footage went to the person who acted"
        organization = d.actor_organization or "not stated"
    else:
        kind = d.recipient_kind.replace("_", " ")
        recipient = f"{kind}: {d.recipient_id}" if d.recipient_id else f"{kind} (no person named)"
        organization = d.recipient_organization or "not stated"
    footage = [
        {
            "clip": c.clip_id,
            "span": f"{clock.when(c.start)} to {clock.when(c.end)}",
            "sha256": c.sha256,
        }
        for c in d.footage
    ]
    return {
        "index": d.index,
        "event_id": d.event_id,
        "when": clock.when(d.occurred_at),
        "action": d.action.replace("_", " "),
        "camera": d.camera_id,
        "recipient": recipient,
        "organization": organization,
        "basis": basis,
        "consent": basis_consent,
        "reference": d.legal_reference or "none given",
        "justification": d.justification or "none given",
        "released_by": _party(d.actor_kind, d.actor_id, d.actor_organization),
        "footage": footage,
        "more_clips": d.footage_count - len(d.footage),
        "notification": _notification(d, clock),
    }


def _row(d: Disclosure, clock: _Clock) -> dict[str, Any]:
    return {
        "index": d.index,
        "when": clock.when(d.occurred_at),
        "who": _party(d.actor_kind, d.actor_id, d.actor_organization),
        "action": d.action.replace("_", " "),
        "camera": d.camera_id,
        "justification": d.justification or "",
    }


# -- charts ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    label: str
    counts: list[int]
    without_consent: int


def _bucket_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _next(start: date, unit: str) -> date:
    if unit == "week":
        return start + timedelta(days=7)
    if unit == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def _label(start: date, unit: str) -> str:
    if unit == "week":
        return f"week of {start.isoformat()}"
    if unit == "month":
        return start.strftime("%Y-%m")
    return start.isoformat()


def _buckets(activity: Activity, clock: _Clock) -> tuple[str, list[_Bucket]]:
    """Regroup hourly counts into days, weeks or months of the owner's zone, gaps included."""
    if not activity.hours:
        return "day", []
    days = [clock.local(h.start).date() for h in activity.hours]
    span = (days[-1] - days[0]).days + 1
    unit = "day" if span <= 92 else "week" if span <= 7 * 104 else "month"
    table: dict[date, _Bucket] = {}
    for h, day in zip(activity.hours, days, strict=True):
        start = _bucket_start(day, unit)
        b = table.get(start)
        if b is None:
            b = table[start] = _Bucket(_label(start, unit), [0, 0, 0, 0], 0)
        for i, n in enumerate(h.counts):
            b.counts[i] += n
        b.without_consent += h.without_consent
    out: list[_Bucket] = []
    cursor, last = _bucket_start(days[0], unit), _bucket_start(days[-1], unit)
    while cursor <= last:
        out.append(table.get(cursor) or _Bucket(_label(cursor, unit), [0, 0, 0, 0], 0))
        cursor = _next(cursor, unit)
    return unit, out


def _timeline(activity: Activity, clock: _Clock) -> dict[str, Any]:
    unit, buckets = _buckets(activity, clock)
    peak = max((sum(b.counts) for b in buckets), default=0)
    plot_w = _CHART_W - _PLOT_X - 8
    plot_h = _PLOT_BOTTOM - _PLOT_TOP
    step = plot_w / max(len(buckets), 1)
    bar_w = max(step * 0.8, 1.0)
    bars: list[dict[str, Any]] = []
    marks: list[dict[str, Any]] = []
    for i, b in enumerate(buckets):
        x = _PLOT_X + i * step + (step - bar_w) / 2
        y = float(_PLOT_BOTTOM)
        # Disclosures at the bottom of each stack, where they are easiest to see.
        for kind in (3, 1, 2, 0):
            n = b.counts[kind]
            if not n or not peak:
                continue
            h = max(n / peak * plot_h, 1.0)
            y -= h
            bars.append(
                {
                    "x": f"{x:.1f}",
                    "y": f"{y:.1f}",
                    "w": f"{bar_w:.1f}",
                    "h": f"{h:.1f}",
                    "cls": _KIND_CLASSES[kind],
                    "title": f"{b.label}: {n} {_KIND_LABELS[kind].lower()}",
                }
            )
        if b.counts[3]:
            cx = x + bar_w / 2
            marks.append(
                {
                    "points": f"{cx - 5:.1f},{_PLOT_TOP - 14} {cx + 5:.1f},{_PLOT_TOP - 14}"
                    f" {cx:.1f},{_PLOT_TOP - 4}",
                    "title": f"{b.label}: {b.counts[3]} disclosures"
                    f" ({b.without_consent} without your consent)",
                    "without": b.without_consent > 0,
                }
            )
    ticks = []
    if buckets:
        for i in sorted({0, len(buckets) // 2, len(buckets) - 1}):
            anchor = "start" if i == 0 else "end" if i == len(buckets) - 1 else "middle"
            x = _PLOT_X + i * step + (step / 2 if anchor == "middle" else 0 if i == 0 else step)
            ticks.append({"x": f"{x:.1f}", "anchor": anchor, "label": buckets[i].label})
    rows = [
        {"label": b.label, "counts": b.counts, "without": b.without_consent}
        for b in buckets
        if sum(b.counts)
    ]
    return {
        "unit": unit,
        "width": _CHART_W,
        "height": _CHART_H,
        "plot_x": _PLOT_X,
        "plot_right": _CHART_W - 8,
        "plot_top": _PLOT_TOP,
        "plot_bottom": _PLOT_BOTTOM,
        "peak": peak,
        "bars": bars,
        "marks": marks,
        "ticks": ticks,
        "rows": rows,
        "unplaced": activity.unplaced,
        "legend": list(zip(_KIND_LABELS, _KIND_CLASSES, strict=True)),
        "totals": [sum(b.counts[k] for b in buckets) for k in range(4)],
    }


def _count_table(title: str, pairs: Sequence[tuple[str, int]]) -> dict[str, Any]:
    shown = list(pairs[:_TOP])
    rest = pairs[_TOP:]
    peak = max((n for _, n in shown), default=0)
    rows = [
        {"name": name, "count": n, "width": f"{(n / peak * 100) if peak else 0:.1f}"}
        for name, n in shown
    ]
    return {
        "title": title,
        "rows": rows,
        "rest_names": len(rest),
        "rest_count": sum(n for _, n in rest),
        "total": sum(n for _, n in pairs),
    }


def _counts(report: Report, activity: Activity) -> list[dict[str, Any]]:
    return [
        _count_table("By camera", activity.cameras),
        _count_table("By action", report.actions),
        _count_table("By legal basis", report.legal_bases),
        _count_table("By recipient organization", report.recipient_organizations),
        _count_table("By writer key", report.writers),
    ]


# -- the two pages -----------------------------------------------------------------------


def _limits(report: Report) -> list[str]:
    notes = []
    anchored = any(c.startswith("consistent with") for c in report.consistency)
    if not report.cosigners:
        notes.append(
            "No witness cosigned this checkpoint, so nothing independent of the vendor vouches"
            " that you were shown the same history as anyone else."
        )
    if not anchored and not report.cosigners:
        notes.append(
            "There was no earlier checkpoint to compare with (no saved state and no trusted"
            " checkpoint), and no witness. A ledger that was rewritten consistently from the"
            " start cannot be told from the real one."
        )
    elif not anchored:
        notes.append(
            "There was no earlier checkpoint to compare with: that this is the history others"
            " were shown rests on the witnesses that cosigned it."
        )
    if not anchored:
        notes.append(
            "Your state was saved: every later run with the same --state must be consistent"
            " with this one."
            if report.state_saved
            else "Verify with --state, so that the next run can be compared with this one."
        )
    if report.from_size:
        notes.append(
            f"This bundle holds records {report.from_size} onwards only; earlier records were"
            " not checked in this run."
        )
    notes.append(
        "A release that was never logged cannot appear here. Only a release gate that"
        " demands a receipt for each release closes that gap."
    )
    return notes


def _base(clock: _Clock, bundle: str | None) -> dict[str, Any]:
    _, css, csp = _environment()
    return {
        "css": css,
        "csp": csp,
        "zone": clock.zone_name,
        "generated": clock.when(records.format_time(clock.now)),
        "bundle": bundle,
    }


def _clock(tz: tzinfo | None, now: datetime | None) -> _Clock:
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return _Clock(UTC if tz is None else tz, moment.astimezone(UTC).replace(microsecond=0))


def render_page(
    report: Report,
    *,
    tz: tzinfo | None = None,
    now: datetime | None = None,
    bundle: str | None = None,
    max_cards: int = DEFAULT_MAX_CARDS,
) -> str:
    """Return the page for a verified ledger, as one HTML document.

    The timeline and the counts by camera come from ``report.activity``;
    ``tz`` is the zone times are shown in (default UTC); ``now`` judges
    whether a notification deferral has expired (default: the current time);
    ``bundle`` names the file checked. Each list shows at most
    ``max_cards`` entries and says how many more there are and how to get
    them all.

    Raises:
        ValueError: if ``now`` is a naive datetime or ``max_cards`` is negative.
    """
    if max_cards < 0:
        raise ValueError("max_cards must not be negative")
    clock = _clock(tz, now)
    # Earliest first: the ledger's order is when records were logged, not when they happened.
    listed = sorted(report.disclosures, key=lambda d: (records.parse_time(d.occurred_at), d.index))
    without = [d for d in listed if d.without_consent]
    with_consent = [d for d in listed if not d.without_consent]
    others = report.disclosure_count - report.without_consent_count
    env = _environment()[0]
    never = sum(1 for d in without if _notification(d, clock)["flag"])  # of those listed
    context = _base(clock, bundle) | {
        "verified": True,
        "origin": report.origin,
        "size": report.size,
        "from_size": report.from_size,
        "record_count": report.record_count,
        "first": clock.when(report.first_occurred_at) if report.first_occurred_at else None,
        "last": clock.when(report.last_occurred_at) if report.last_occurred_at else None,
        "root": base64.b64encode(report.root).decode(),
        "log_key": report.log_key,
        "writers": [name for name, _ in report.writers],
        "cosigners": list(report.cosigners),
        "quorum": report.quorum,
        "consistency": list(report.consistency),
        "state_saved": report.state_saved,
        "limits": _limits(report),
        "disclosure_count": report.disclosure_count,
        "without_count": report.without_consent_count,
        "with_count": others,
        "unnotified_listed": never,
        "without": _cards(without, report.without_consent_count, clock, max_cards),
        "with_consent": _cards(with_consent, others, clock, max_cards),
        "staff": _rows(report.staff_accesses, report.staff_access_count, clock, max_cards),
        "system": _rows(report.system_accesses, report.system_access_count, clock, max_cards),
        "system_totals": [
            {"name": name, "action": action, "count": n}
            for name, action, n in report.system_totals[:_TOP]
        ],
        "timeline": _timeline(report.activity, clock),
        "counts": _counts(report, report.activity),
    }
    return env.get_template("page.html.j2").render(context)


def _cards(
    listed: Sequence[Disclosure], total: int, clock: _Clock, max_cards: int
) -> dict[str, Any]:
    shown = [_card(d, clock) for d in listed[:max_cards]]
    return {"items": shown, "total": total, "hidden": total - len(shown)}


def _rows(listed: Iterable[Disclosure], total: int, clock: _Clock, cap: int) -> dict[str, Any]:
    shown = [_row(d, clock) for _, d in zip(range(cap), listed, strict=False)]
    return {"items": shown, "total": total, "hidden": total - len(shown)}


_PLAIN_REASONS: tuple[tuple[type[LedgerError], str], ...] = (
    (
        InconsistentCheckpointError,
        "The vendor's log signed a history that differs from the one you saw before:"
        " it has shown two different histories.",
    ),
    (
        RollbackError,
        "This ledger is older than one you verified before: records you already saw are"
        " missing from the end, or this is a stale copy.",
    ),
    (
        RootMismatchError,
        "The records do not add up to what the log signed: records were changed, added or"
        " removed after they were committed.",
    ),
    (
        ChainBreakError,
        "The chain of records is broken: a record was removed, inserted, duplicated or moved.",
    ),
    (
        BadSignatureError,
        "A record or checkpoint was changed after it was signed.",
    ),
    (
        UntrustedKeyError,
        "Something is signed by a key you did not say you trust, or the checkpoint lacks the"
        " signatures your policy requires.",
    ),
    (
        VerificationError,
        "The ledger does not hold together: it failed a check that an intact ledger passes.",
    ),
    (
        MalformedError,
        "The file is damaged, cut short, or not a ledger export: part of it cannot be read"
        " as what it claims to be.",
    ),
)


def _plain_reason(err: LedgerError) -> str:
    for cls, text in _PLAIN_REASONS:
        if isinstance(err, cls):
            return text
    return "The ledger could not be verified."


def render_failure_page(
    err: LedgerError,
    *,
    policy: Policy | None = None,
    tz: tzinfo | None = None,
    now: datetime | None = None,
    bundle: str | None = None,
) -> str:
    """Return the page for a ledger that failed verification, as one HTML document.

    It gives the reason in plain words, the record concerned (if the error
    names one), the technical message, the keys the run trusted (from
    ``policy``), and says that nothing in the file can be trusted. It lists
    no disclosures.

    Raises:
        ValueError: if ``now`` is a naive datetime.
    """
    clock = _clock(tz, now)
    index = getattr(err, "index", None)
    keys: list[tuple[str, str]] = []
    if policy is not None:
        keys += [("log key", v.vkey) for v in policy.logs]
        keys += [("writer key", v.vkey) for v in policy.writers]
        keys += [("witness key", v.vkey) for v in policy.witness_keys()]
    context = _base(clock, bundle) | {
        "verified": False,
        "reason": _plain_reason(err),
        "error_class": type(err).__name__,
        "message": str(err),
        "index": index if isinstance(index, int) else None,
        "keys": keys,
    }
    return _environment()[0].get_template("page.html.j2").render(context)
