"""The owner's page in a real browser (headless Chromium): what a person would see.

At a desktop and a phone width: the verdict at the top, the first card being
the earliest disclosure without consent, the charts, nothing loaded from the
network, no sideways scrolling on a phone, print styles, and the failure page
of a tampered bundle. Screenshots are kept as artefacts in a temporary
directory. The screenshot in docs/owners.md is regenerated from the demo and
compared by layout (size and key regions), not byte for byte.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from disclosure_ledger._cli.demo import _policy as demo_policy
from disclosure_ledger._cli.demo import run_demo
from disclosure_ledger._verify.page import render_page
from disclosure_ledger._verify.verifier import verify

from .browser import DESKTOP, PHONE, browser, open_page  # noqa: F401 - browser is a fixture
from .cli_helpers import run
from .conftest import flip_bit
from .ledger_helpers import log_key, writer_key
from .page_helpers import EARLIEST_WITHOUT_CONSENT, HOSTILE_ORG, make_bundle

ROOT = Path(__file__).resolve().parents[1]
DOC_SCREENSHOT = ROOT / "docs" / "owners-page.png"
SCREENSHOT_TAKEN = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
KEYS = ["--log-key", log_key().verifier.vkey, "--writer-key", writer_key().verifier.vkey]
VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test ledger's page and the failure page of a tampered copy, made by the CLI."""
    tmp = tmp_path_factory.mktemp("pages")
    bundle = make_bundle(tmp)
    ok = tmp / "report.html"
    result = run("verify", bundle, *KEYS, "--html", ok)
    assert result.exit_code == 0, result.stderr
    data = bundle.read_bytes()
    tampered = tmp / "tampered.bundle"
    tampered.write_bytes(flip_bit(data, len(data) * 4))
    failed = tmp / "failed.html"
    result = run("verify", tampered, *KEYS, "--html", failed)
    assert result.exit_code == 1, result.stderr
    return {"ok": ok, "failed": failed}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: test artefacts, kept with pytest's temporary directories."""
    return tmp_path_factory.mktemp("screenshots")


def _first_visible_text(page: Any) -> str:
    text: str = page.evaluate(
        """() => {
            const els = [...document.querySelectorAll('h1, h2, h3, p, li, dt, dd, td, th')]
              .filter(e => e.offsetParent !== null && e.innerText.trim());
            els.sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
            return els.slice(0, 3).map(e => e.innerText.trim()).join(' | ');
        }"""
    )
    return text


@VIEWPORTS
def test_verdict_first_card_and_charts(
    browser: Any,  # noqa: F811 - the fixture
    pages: dict[str, Path],
    shots: Path,
    viewport: dict[str, int],
) -> None:
    with open_page(browser, pages["ok"], viewport) as opened:
        page = opened.page
        name = f"report-{viewport['width']}"
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        # The verdict is what a person reads first, in words, and fits the first screen.
        assert "VERIFIED: the ledger is intact" in _first_visible_text(page)
        verdict = page.locator("#verdict").bounding_box()
        assert verdict["y"] + verdict["height"] < viewport["height"]
        # The first card is the earliest disclosure without consent.
        first = page.locator("article.card").first
        assert first.is_visible()
        assert "without consent" in first.inner_text().lower()
        assert EARLIEST_WITHOUT_CONSENT in first.inner_text()
        assert "Never notified" in first.inner_text()
        # A hostile organization name is shown as text, and ran nothing.
        assert HOSTILE_ORG in page.locator("#without-h ~ article").nth(1).inner_text()
        assert page.title().startswith("Verified:")
        # The timeline is drawn: bars and disclosure marks with a size on screen.
        chart = page.locator("#timeline svg")
        box = chart.bounding_box()
        assert box["width"] > viewport["width"] * 0.6
        assert box["height"] > 60
        assert page.locator("#timeline svg rect").count() >= 6
        assert page.locator("#timeline svg polygon").count() == 3
        # Nothing is wider than the screen (no sideways scrolling on a phone).
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        # Nothing was loaded but the file itself.
        assert opened.requests == [pages["ok"].resolve().as_uri()]


def test_headings_and_tables_a_screen_reader_can_follow(
    browser: Any,  # noqa: F811 - the fixture
    pages: dict[str, Path],
) -> None:
    with open_page(browser, pages["ok"]) as opened:
        page = opened.page
        assert page.get_by_role("heading", level=1).count() == 1
        h2 = page.get_by_role("heading", level=2).all_inner_texts()
        assert h2[0] == "What was checked"
        assert h2[1].startswith("Disclosures without your consent")
        assert h2[2].startswith("Disclosures with your consent")
        assert h2[3:] == ["Timeline", "Counts", "The vendor's own accesses"]
        assert page.get_by_role("img", name="Accesses per day by kind").count() == 1
        assert page.locator("th[scope=col]").count() > 10


def test_print_keeps_cards_whole_and_the_verdict_first(
    browser: Any,  # noqa: F811 - the fixture
    pages: dict[str, Path],
    shots: Path,
) -> None:
    with open_page(browser, pages["ok"]) as opened:
        page = opened.page
        page.emulate_media(media="print")
        breaks = page.eval_on_selector_all(
            "article.card", "els => els.map(e => getComputedStyle(e).breakInside)"
        )
        assert breaks
        assert set(breaks) == {"avoid"}
        pdf = page.pdf(path=str(shots / "report.pdf"), format="A4")
        assert pdf.startswith(b"%PDF")
        # An A4 page is about 1123 CSS pixels tall: the verdict is on the first one.
        verdict = page.locator("#verdict").bounding_box()
        assert verdict["y"] + verdict["height"] < 1000


def test_injected_content_is_blocked_and_the_recorder_sees_it(
    browser: Any,  # noqa: F811 - the fixture
    pages: dict[str, Path],
    tmp_path: Path,
) -> None:
    """The controls for the tests above: what the CSP would stop, and that requests are seen.

    Markup that escaped escaping (it cannot; this puts it in by hand) could
    not style, script or fetch: the CSP blocks all three, and the request
    recorder that finds the real page silent does see the attempt.
    """
    html = pages["ok"].read_text(encoding="utf-8")
    injected = (
        "<main>"
        '<img id="probe" src="http://127.0.0.1:9/probe.png" alt="">'
        "<style>body { display: none; }</style>"
        "<script>document.title = 'script ran';</script>"
    )
    bad = tmp_path / "injected.html"
    bad.write_text(html.replace("<main>", injected, 1), encoding="utf-8")
    with open_page(browser, bad) as opened:
        page = opened.page
        assert "http://127.0.0.1:9/probe.png" in opened.requests  # the recorder works
        assert page.locator("#verdict").is_visible()  # the injected style did not apply
        assert page.title() != "script ran"  # the injected script did not run
        assert page.evaluate("document.getElementById('probe').naturalWidth") == 0


@VIEWPORTS
def test_failure_page_of_a_tampered_bundle(
    browser: Any,  # noqa: F811 - the fixture
    pages: dict[str, Path],
    shots: Path,
    viewport: dict[str, int],
) -> None:
    with open_page(browser, pages["failed"], viewport) as opened:
        page = opened.page
        page.screenshot(path=str(shots / f"failed-{viewport['width']}.png"), full_page=True)
        assert "FAILED: this ledger did not verify" in _first_visible_text(page)
        text = page.locator("body").inner_text()
        assert "Nothing in this file can be trusted" in text
        assert page.locator("article.card").count() == 0
        assert "Springfield PD" not in text
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        assert opened.requests == [pages["failed"].resolve().as_uri()]


# -- the screenshot in docs/owners.md ----------------------------------------------------

_REGIONS = ("#verdict", "#checked", "article.card")


def _regions(page: Any) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for selector in _REGIONS:
        box = page.locator(selector).first.bounding_box()
        out[selector] = (
            int(box["x"]),
            int(box["y"]),
            int(box["x"] + box["width"]),
            int(min(box["y"] + box["height"], DESKTOP["height"])),
        )
    return out


VERDICT_GREEN = (0x1A, 0x7F, 0x37)
WITHOUT_RED = (0xB4, 0x23, 0x18)


def _colour_box(image: Image.Image, rgb: tuple[int, int, int]) -> tuple[int, ...] | None:
    """The bounding box of the pixels of (nearly) this colour."""
    diff = ImageChops.difference(image, Image.new("RGB", image.size, rgb)).convert("L")
    box: tuple[int, ...] | None = diff.point(lambda v: 255 if v < 12 else 0).getbbox()
    return box


def _mean(image: Image.Image, box: tuple[int, int, int, int]) -> list[float]:
    return list(ImageStat.Stat(image.convert("RGB").crop(box)).mean)


def test_docs_screenshot_matches_the_demo_page_in_layout(
    browser: Any,  # noqa: F811 - the fixture
    tmp_path: Path,
    shots: Path,
) -> None:
    """Regenerate the screenshot of the demo's page and compare it with the committed one.

    Keys and log times differ on every run, so the comparison is by layout:
    the same size, the key regions (verdict, what was checked, first card) in
    the same places with the same colours, and a coarse thumbnail that
    differs little. ``DISCLOSURE_LEDGER_UPDATE_SCREENSHOT=1`` rewrites the file.
    """
    with open(os.devnull, "w", encoding="utf-8") as sink:
        run_demo(tmp_path, 200, sink)
    # The demo's page as its owner first saw it, on the day the screenshot was taken:
    # later, its notice deferrals expire and the page rightly says so.
    report = verify(tmp_path / "ledger.bundle", demo_policy(tmp_path), state_dir=tmp_path / "s")
    page = tmp_path / "report-then.html"
    page.write_text(render_page(report, now=SCREENSHOT_TAKEN, bundle="ledger.bundle"))
    fresh = shots / "owners-page.png"
    with open_page(browser, page) as opened:
        opened.page.screenshot(path=str(fresh))
        regions = _regions(opened.page)
    if os.environ.get("DISCLOSURE_LEDGER_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(fresh, DOC_SCREENSHOT)
    new = Image.open(fresh).convert("RGB")
    old = Image.open(DOC_SCREENSHOT).convert("RGB")
    assert old.size == new.size == (DESKTOP["width"], DESKTOP["height"])
    # Key regions, found in each image by their colours: the verdict's green frame, and
    # the red edge of the first card without consent. They must be where they were.
    for rgb in (VERDICT_GREEN, WITHOUT_RED):
        a, b = _colour_box(old, rgb), _colour_box(new, rgb)
        assert a is not None, rgb
        assert b is not None, rgb
        if rgb == WITHOUT_RED:
            a, b = a[:2], b[:2]  # where the first card starts; later red runs off the screen
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 4, (rgb, a, b)
    # And what the browser says they are: the same colours in the same places.
    for selector, box in regions.items():
        a, b = _mean(old, box), _mean(new, box)
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 8, (selector, a, b)
    thumb = (50, 70)
    diff = ImageChops.difference(old.convert("L").resize(thumb), new.convert("L").resize(thumb))
    assert ImageStat.Stat(diff).mean[0] < 6
