"""The owner's page as HTML: what it says, that nothing from the ledger becomes markup, that it
needs nothing from outside itself, and the failure page. (What a browser shows: test_page_browser.)
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from disclosure_ledger._verify.activity import MAX_DISTINCT, Activity, ActivityTally
from disclosure_ledger._verify.page import (
    PAGE_CSP,
    parse_zone,
    render_failure_page,
    render_page,
)
from disclosure_ledger._verify.verifier import Report, verify
from disclosure_ledger.errors import BadSignatureError, ChainBreakError, MalformedError

from .conftest import flip_bit
from .ledger_helpers import event, new_ledger, release_event
from .page_helpers import (
    EARLIEST_WITHOUT_CONSENT,
    HOSTILE_CAMERA,
    HOSTILE_JUSTIFICATION,
    HOSTILE_ORG,
    NOW,
    Elements,
    make_bundle,
    page_events,
    policy,
    tally,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return verify(make_bundle(tmp_path_factory.mktemp("page")), policy())


@pytest.fixture(scope="module")
def page(report: Report) -> str:
    return render_page(report, now=NOW, bundle="page.bundle")


def _section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    end = html.find("<section", start)
    return html[start : end if end >= 0 else len(html)]


# -- what it says ------------------------------------------------------------------------


def test_the_verdict_comes_first_in_words(page: str) -> None:
    body = page[page.index("<body>") :]
    verdict = body.index("VERIFIED: the ledger is intact")
    assert verdict < body.index('id="checked"') < body.index('id="without-h"')
    assert "FAILED" not in page


def test_sections_follow_the_issue_order(page: str) -> None:
    order = ["verdict", "checked", "without-h", "with-h", "timeline-h", "counts-h", "vendor-h"]
    positions = [page.index(f'id="{name}"') for name in order]
    assert positions == sorted(positions)


def test_without_consent_cards_are_earliest_first_and_say_so(page: str) -> None:
    without = _section(page, "without-h")
    ids = re.findall(r"event <code>([^<]+)</code>", without)
    assert ids[0] == EARLIEST_WITHOUT_CONSENT
    assert len(ids) == 4
    assert without.count("Without consent</span>") == 4
    with_consent = _section(page, "with-h")
    assert re.findall(r"event <code>([^<]+)</code>", with_consent) == ["ev-00000017"]
    assert "Acme Insurance" in with_consent


def test_a_card_shows_every_field_the_owner_needs(page: str) -> None:
    first = _section(page, "without-h").split("<article")[1]
    for needle in (
        "2026-11-25 06:00:00 UTC",  # date, zone named
        "law enforcement (no person named)",  # recipient
        "Springfield PD",  # organization
        "emergency",  # legal basis
        "case 26-15",  # reference
        "support ticket",  # justification
        "Vendor Inc (vendor employee, emp-0)",  # who released it
        "cam-0",  # camera
        "clip-15",  # clip and its time range
        "2026-11-27 09:15:00 UTC to 2026-11-27 09:20:00 UTC",
        "Never notified",
    ):
        assert needle in first, needle


def test_notification_states(page: str) -> None:
    without = _section(page, "without-h")
    assert "Deferral expired, never notified" in without
    assert "That date has passed" in without
    assert "Notice deferred" in without
    assert "2027-01-15 00:00:00 UTC" in without
    assert "You were notified on 2026-11-28 09:00:00 UTC" in without
    # The expired deferral and the never-notified disclosure are flagged, in words too.
    assert without.count('class="notice flag"') == 2
    verdict = page[page.index('id="verdict"') : page.index('id="checked"')]
    assert "In 2 of them you were never told" in verdict


def test_an_expired_deferral_depends_on_now(report: Report) -> None:
    before = render_page(report, now=datetime(2026, 11, 28, tzinfo=UTC))
    assert "Deferral expired" not in before
    with pytest.raises(ValueError, match="aware"):
        render_page(report, now=datetime(2026, 11, 28))


def test_what_was_checked_and_what_was_not(page: str, report: Report) -> None:
    checked = _section(page, "checked")
    assert report.log_key in checked
    assert "vendor.example/writer/backend-1" in checked
    assert "Witnesses that cosigned" in checked
    assert "none" in checked
    assert "cannot be told from the real one" in checked
    assert "never logged cannot appear here" in checked


def test_timeline_and_counts(page: str) -> None:
    timeline = _section(page, "timeline-h")
    assert "<svg" in timeline
    assert 'role="img"' in timeline
    # Three days with accesses, and disclosures marked on each day that had one.
    assert timeline.count("<polygon") == 3
    for day in ("2026-11-25", "2026-11-26", "2026-11-27"):
        assert f'<th scope="row">{day}</th>' in timeline
    assert "Disclosures: 5" in timeline
    counts = _section(page, "counts-h")
    for title in ("By camera", "By action", "By legal basis", "By recipient organization"):
        assert title in counts
    assert "By writer key" in counts


def test_times_in_the_owners_zone(report: Report) -> None:
    html = render_page(report, now=NOW, tz=parse_zone("America/New_York"))
    assert "2026-11-25 01:00:00 EST" in html  # 06:00 UTC
    assert "Times are shown in America/New_York" in html
    # The timeline regroups hours into the owner's days: 06:00 UTC is still the 25th there,
    # 03:00 UTC on the 26th is the 25th.
    assert '<th scope="row">2026-11-25</th>' in html


def test_parse_zone_refuses_unknown_names() -> None:
    assert parse_zone("utc") is UTC
    with pytest.raises(MalformedError, match="unknown time zone 'Nowhere/Atlantis'"):
        parse_zone("Nowhere/Atlantis")
    with pytest.raises(MalformedError, match="unknown time zone"):
        parse_zone("../etc/passwd")


def test_caps_say_how_many_are_not_shown_and_how_to_get_them(report: Report) -> None:
    html = render_page(report, now=NOW, max_cards=1)
    without = _section(html, "without-h")
    assert without.count("<article") == 1
    assert "3 more disclosures without your consent are counted but not shown" in without
    assert "--json" in without
    with pytest.raises(ValueError, match="max_cards"):
        render_page(report, max_cards=-1)


def test_the_verifier_counts_activity_as_the_events_say(report: Report, tmp_path: Path) -> None:
    assert report.activity == tally(page_events())
    assert sum(sum(h.counts) for h in report.activity.hours) == report.size
    assert dict(report.activity.cameras)[HOSTILE_CAMERA] == 1
    # Chunks are tallied on threads and merged in order: one thread gives the same counts.
    again = verify(make_bundle(tmp_path), policy(), threads=1)
    assert again.activity == report.activity


def test_an_empty_timeline_says_so(report: Report) -> None:
    html = render_page(replace(report, activity=Activity()), now=NOW)
    assert "No accesses to show." in html


# -- safety ------------------------------------------------------------------------------


def test_no_ledger_string_becomes_markup(page: str) -> None:
    parsed = Elements(page)
    text = "".join(parsed.text)
    # The hostile strings are on the page as text, exactly as the ledger has them...
    for hostile in (HOSTILE_ORG, HOSTILE_JUSTIFICATION, HOSTILE_CAMERA):
        assert hostile in text
    # ...and added no element: one style (the page's own), no script, image or link.
    names = [tag for tag, _ in parsed.tags]
    assert names.count("style") == 1
    assert {"script", "img", "a", "iframe", "link", "object", "embed"} & set(names) == set()
    for _, attrs in parsed.tags:
        assert not {k for k in attrs if k.startswith("on")}, attrs
        assert "src" not in attrs, attrs
        assert "href" not in attrs, attrs


def test_the_page_is_self_contained(page: str) -> None:
    parsed = Elements(page)
    csp = [a for t, a in parsed.tags if t == "meta" and a.get("http-equiv")]
    assert csp == [{"http-equiv": "Content-Security-Policy", "content": PAGE_CSP}]
    assert "default-src 'none'" in PAGE_CSP
    assert "unsafe-inline" not in PAGE_CSP
    # The CSP comes before the style it allows, and nothing refers outside the page.
    assert page.index("Content-Security-Policy") < page.index("<style>")
    style = page[page.index("<style>") + 7 : page.index("</style>")]
    assert not re.search(r"url\(|@import|@font-face|://", style)
    for tag, attrs in parsed.tags:
        for name, value in attrs.items():
            if (tag, name) != ("svg", "xmlns"):  # a namespace name, never fetched
                assert "://" not in (value or ""), (tag, name, value)
    # The hash in the policy is the hash of the page's style, so the style applies.
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in PAGE_CSP


def test_a_large_report_stays_small(report: Report) -> None:
    many = replace(
        report,
        disclosures=report.disclosures * 2000,
        disclosure_count=report.disclosure_count * 2000,
        without_consent_count=report.without_consent_count * 2000,
    )
    html = render_page(many, now=NOW)
    assert html.count("<article") == 2 * 500  # the default cap on each list
    assert len(html.encode()) < 4_000_000
    assert "7500 more disclosures without your consent" in html


# -- the tally ---------------------------------------------------------------------------


def test_tally_merges_and_caps_cameras() -> None:
    a, b = ActivityTally(), ActivityTally()
    at = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
    for i in range(MAX_DISTINCT):
        a.add(at, f"cam-{i:04d}", 0, without_consent=False)
    b.add(at, "cam-new", 3, without_consent=True)
    b.add(at, "cam-0000", 1, without_consent=False)
    a.merge(b)
    result = a.result()
    assert dict(result.cameras)["(other)"] == 1
    assert dict(result.cameras)["cam-0000"] == 2
    assert len(result.hours) == 1
    hour = result.hours[0]
    assert hour.counts == (MAX_DISTINCT, 1, 0, 1)
    assert hour.without_consent == 1
    assert hour.start == datetime(2026, 11, 25, 6, tzinfo=UTC)


# -- the failure page --------------------------------------------------------------------


def test_failure_page_of_a_tampered_bundle(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    data = bundle.read_bytes()
    tampered = tmp_path / "tampered.bundle"
    tampered.write_bytes(flip_bit(data, len(data) * 4))
    with pytest.raises((BadSignatureError, ChainBreakError, MalformedError)) as caught:
        verify(tampered, policy())
    html = render_failure_page(caught.value, policy=policy(), now=NOW, bundle="tampered.bundle")
    body = html[html.index("<body>") :]
    assert body.index("FAILED: this ledger did not verify") < body.index("What to do")
    assert "Nothing in this file can be trusted" in html
    assert type(caught.value).__name__ in html
    assert "<article" not in html
    assert "Springfield PD" not in html
    assert policy().logs[0].vkey in html
    index = getattr(caught.value, "index", None)
    if index is not None:
        assert f"record <strong>#{index}</strong>" in html


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ChainBreakError("does not link", index=3), "The chain of records is broken"),
        (BadSignatureError("bad", index=0), "changed after it was signed"),
        (MalformedError("truncated"), "damaged, cut short"),
    ],
)
def test_failure_reasons_in_plain_words(error: Exception, words: str) -> None:
    assert isinstance(error, BadSignatureError | ChainBreakError | MalformedError)
    html = render_failure_page(error, now=NOW)
    assert words in html
    assert "Nothing in this file can be trusted" in html


def test_activity_over_many_chunks_equals_the_events(tmp_path: Path) -> None:
    """600 records make three of the verifier's chunks, tallied on two threads and merged."""
    kinds = [
        {"actor": {"kind": "owner", "id": "owner-42"}, "justification": None},
        {},  # a vendor employee's view
        {"actor": {"kind": "vendor_system", "id": "motion"}, "action": "clip"},
    ]
    events = []
    for i in range(600):
        extra = dict(kinds[i % 3])
        extra["occurred_at"] = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"
        extra["camera_id"] = f"cam-{i % 7}"
        events.append(release_event(i) if i % 50 == 0 else event(i, **extra))
    lg = new_ledger(tmp_path)
    lg.append_many(events)
    lg.export(tmp_path / "many.bundle")
    lg.close()
    report = verify(tmp_path / "many.bundle", policy(), threads=2)
    assert report.activity == tally(events)
    totals = [sum(h.counts[k] for h in report.activity.hours) for k in range(4)]
    assert totals == [196, 196, 196, 12]
    html = render_page(report, now=NOW)
    assert "Disclosures: 12" in html


def test_what_a_run_cannot_rule_out_depends_on_witnesses_and_state(report: Report) -> None:
    def limits(r: Report) -> str:
        html = render_page(r, now=NOW)
        return html[html.index("could not rule out") : html.index('id="without-h"')]

    alone = limits(report)
    assert "cannot be told from the real one" in alone
    assert "Verify with --state" in alone
    witnessed = limits(replace(report, cosigners=("w.example/w",), state_saved=True))
    assert "cannot be told" not in witnessed
    assert "rests on the witnesses that cosigned it" in witnessed
    assert "Your state was saved" in witnessed
    anchored = limits(replace(report, consistency=("consistent with the saved state of size 3",)))
    assert "no earlier checkpoint" not in anchored
    assert "No witness cosigned" in anchored


def test_the_text_report_counts_by_camera_too(report: Report) -> None:
    from disclosure_ledger._verify.report import render_text

    text = render_text(report)
    counts = text[text.index("COUNTS") :]
    assert "by camera:" in counts
    assert "cam-0" in counts
    assert "\ufffd" not in counts  # the hostile camera name is printable, so kept
