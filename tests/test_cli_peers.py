"""The command line as a new user meets it (issue 14): set-up without friction, quiet appends
with a summary, show's filters, and verify's page options, each tried through the CLI.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .cli_helpers import assert_one_line_error, run
from .conftest import flip_bit

LOG = "example.com/log"
WRITER = "vendor-backend"


def _event(n: int, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": f"evt-{n}",
        "occurred_at": f"2026-11-27T10:{n % 60:02d}:00Z",
        "camera_id": f"cam-{n % 3}",
        "owner_id": "owner-42",
        "action": "view",
        "actor": {"kind": "owner", "id": "owner-42"},
    }
    ev.update(extra)
    return ev


def _release(n: int, basis: str, org: str) -> dict[str, Any]:
    return _event(
        n,
        action="release",
        actor={"kind": "vendor_employee", "id": "emp-1", "organization": "Vendor Inc"},
        recipient={"kind": "law_enforcement", "organization": org},
        legal_basis=basis,
    )


def _jsonl(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def ledger(work: Path) -> Path:
    """A ledger made the short way: keys in a folder that did not exist, no --origin."""
    assert run("keygen", LOG, "--out", "keys/log").exit_code == 0
    path = work / "l.db"
    result = run("init", path, "--log-key", "keys/log.key")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"created {path} for {LOG}"
    return path


def _append(ledger: Path, text: str, *extra: str) -> Any:
    return run("append", ledger, "--writer-key", "keys/log.key", *extra, input=text)


# -- set-up --------------------------------------------------------------------------------


def test_keygen_creates_the_folder(work: Path) -> None:
    result = run("keygen", LOG, "--out", "deep/er/log")
    assert result.exit_code == 0, result.stderr
    assert (work / "deep/er/log.key").is_file()
    assert (work / "deep/er/log.pub").read_text().strip() == result.stdout.strip()


def test_keygen_says_when_the_folder_cannot_be_made(work: Path) -> None:
    (work / "file").write_text("x")
    assert_one_line_error(
        run("keygen", LOG, "--out", "file/log"), 2, "file: cannot create the folder"
    )


def test_init_origin_defaults_to_the_key_name_and_a_wrong_one_is_refused(
    ledger: Path, work: Path
) -> None:
    other = run("init", work / "m.db", "--origin", "other.example/log", "--log-key", "keys/log.key")
    assert_one_line_error(other, 2, "differs from the log key's name 'example.com/log'")


# -- append --------------------------------------------------------------------------------


def test_append_ends_with_a_summary_on_stderr(ledger: Path) -> None:
    result = _append(ledger, _jsonl(*(_event(i) for i in range(5))))
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 5
    summary = result.stderr.strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith("appended 5 records in 1 commit (")
    assert summary[0].endswith("records/s)")


def test_append_quiet_prints_nothing(ledger: Path) -> None:
    result = _append(ledger, _jsonl(*(_event(i) for i in range(5))), "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""
    assert run("show", "--json", ledger).stdout.count("\n") == 5


def test_append_error_is_still_one_line_after_quiet(ledger: Path) -> None:
    result = _append(ledger, _jsonl(_event(1)) + "{not json\n", "-q")
    assert_one_line_error(result, 1, "line 2")


# -- show ------------------------------------------------------------------------------------


@pytest.fixture
def mixed(ledger: Path) -> Path:
    events = [
        _event(0),
        _release(1, "warrant", "Springfield PD"),
        _release(2, "emergency", "State Patrol"),
        _event(3, occurred_at="2026-11-28T08:00:00Z"),
        _release(4, "emergency", "Springfield PD"),
    ]
    assert _append(ledger, _jsonl(*events), "-q").exit_code == 0
    return ledger


def _ids(result: Any) -> list[str]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line)["event"]["event_id"] for line in result.stdout.splitlines()]


def test_show_filters_like_query(mixed: Path) -> None:
    assert _ids(run("show", "--json", mixed, "--action", "release")) == ["evt-1", "evt-2", "evt-4"]
    assert _ids(run("show", "--json", mixed, "--legal-basis", "emergency")) == ["evt-2", "evt-4"]
    assert _ids(run("show", "--json", mixed, "--recipient", "Springfield PD")) == ["evt-1", "evt-4"]
    assert _ids(run("show", "--json", mixed, "--actor-kind", "owner")) == ["evt-0", "evt-3"]
    assert _ids(
        run(
            "show",
            "--json",
            mixed,
            "--since",
            "2026-11-27T10:01:00Z",
            "--until",
            "2026-11-27T10:04:00Z",
        )
    ) == ["evt-1", "evt-2"]
    assert _ids(run("show", "--json", mixed, "--since", "2026-11-28T00:00:00Z")) == ["evt-3"]
    both = run(
        "show", "--json", mixed, "--action", "release", "--legal-basis", "emergency", "--limit", "1"
    )
    assert _ids(both) == ["evt-2"]


def test_show_speaks_words_by_default_and_json_with_the_flag(mixed: Path) -> None:
    text = run("show", mixed, "--legal-basis", "warrant")
    assert text.exit_code == 0, text.stderr
    (line,) = text.stdout.splitlines()
    assert line.startswith("#1  ")
    assert "evt-1: release by " in line
    assert " to Springfield PD, " in line
    assert "basis warrant" in line
    assert not line.startswith("{")
    as_json = run("show", mixed, "--legal-basis", "warrant", "--json")
    assert json.loads(as_json.stdout)["event"]["event_id"] == "evt-1"


def test_show_refuses_a_bad_time_and_index_with_a_filter(mixed: Path) -> None:
    assert_one_line_error(
        run("show", "--json", mixed, "--since", "yesterday"),
        2,
        "--since: must be an RFC 3339 time such as",
    )
    assert_one_line_error(
        run("show", "--json", mixed, "--until", "2026-11-27T10:00:00"),
        2,
        "--until: must be an RFC 3339 time with a zone",
    )
    refused = run("show", "--json", mixed, "--index", "1", "--action", "view")
    assert refused.exit_code == 2
    assert "cannot be combined with a filter" in refused.stderr


# -- verify --html ---------------------------------------------------------------------------


@pytest.fixture
def bundle(mixed: Path, work: Path) -> Path:
    assert run("export", mixed, work / "l.bundle").exit_code == 0
    return work / "l.bundle"


def test_verify_writes_the_page_beside_the_text(bundle: Path, work: Path) -> None:
    result = run("verify", bundle, "--log-key", "keys/log.pub", "--html", "r.html")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("VERIFIED")
    html = (work / "r.html").read_text(encoding="utf-8")
    assert "VERIFIED: the ledger is intact" in html
    assert "Springfield PD" in html
    # Again, in the owner's zone: the file is replaced.
    again = run(
        "verify", bundle, "--log-key", "keys/log.pub", "--html", "r.html", "--tz", "Asia/Tokyo"
    )
    assert again.exit_code == 0, again.stderr
    assert "JST" in (work / "r.html").read_text(encoding="utf-8")


def test_verify_html_dash_prints_the_page(bundle: Path) -> None:
    result = run("verify", bundle, "--log-key", "keys/log.pub", "--html", "-")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert "VERIFIED:" not in result.stdout.split("<body>")[0]
    clash = run("verify", bundle, "--log-key", "keys/log.pub", "--html", "-", "--json")
    assert_one_line_error(clash, 2, "give one")


def test_verify_html_failure_page_and_exit_1(bundle: Path, work: Path) -> None:
    data = bundle.read_bytes()
    bad = work / "bad.bundle"
    bad.write_bytes(flip_bit(data, len(data) * 4))
    result = run("verify", bad, "--log-key", "keys/log.pub", "--html", "f.html")
    assert_one_line_error(result, 1, "verification failed")
    html = (work / "f.html").read_text(encoding="utf-8")
    assert "FAILED: this ledger did not verify" in html
    assert "<article" not in html


def test_verify_html_is_never_written_over_an_input(bundle: Path, work: Path) -> None:
    before = bundle.read_bytes()
    for target in (str(bundle), "./l.bundle"):
        result = run("verify", bundle, "--log-key", "keys/log.pub", "--html", target)
        assert_one_line_error(result, 2, "is the bundle", "refusing to write the page")
    assert bundle.read_bytes() == before
    (work / "d").mkdir()
    assert run("verify", bundle, "--log-key", "keys/log.pub", "--html", "d").exit_code == 2


def test_verify_tz_refuses_an_unknown_zone(bundle: Path) -> None:
    result = run("verify", bundle, "--log-key", "keys/log.pub", "--tz", "Mars/Olympus_Mons")
    assert_one_line_error(result, 2, "--tz: unknown time zone 'Mars/Olympus_Mons'")


# -- '-' for standard input and output -----------------------------------------------------


def test_export_dash_and_verify_dash_make_a_pipe(mixed: Path, work: Path) -> None:
    exported = run("export", mixed, "-")
    assert exported.exit_code == 0, exported.stderr
    assert exported.stderr.startswith("exported records 0..5 of example.com/log")
    assert "to standard output" in exported.stderr
    data = exported.stdout_bytes
    (work / "file.bundle").write_bytes(data)
    assert run("export", mixed, "file2.bundle").exit_code == 0
    assert (work / "file2.bundle").read_bytes() == data  # the same bytes as to a file
    verified = run("verify", "-", "--log-key", "keys/log.pub", input=data)
    assert verified.exit_code == 0, verified.stderr
    assert verified.stdout.startswith("VERIFIED")
    cut = run("verify", "-", "--log-key", "keys/log.pub", input=data[: len(data) // 2])
    assert_one_line_error(cut, 1, "truncated")


def test_export_dash_refuses_a_terminal(mixed: Path) -> None:
    main, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "disclosure_ledger", "export", str(mixed), "-"],
            stdout=secondary,
            stderr=subprocess.PIPE,
            check=False,
            timeout=60,
        )
    finally:
        os.close(secondary)
        os.close(main)
    assert proc.returncode == 2
    assert b"standard output is a terminal" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


# -- progress --------------------------------------------------------------------------------


def test_check_shows_progress_only_on_a_terminal(
    mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = run("check", mixed)
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stderr == ""
    from disclosure_ledger._cli import main as cli_main

    calls: list[tuple[int, int]] = []

    def bar(stack: Any, label: str) -> Any:
        assert label == "checking"
        return lambda done, total: calls.append((done, total))

    monkeypatch.setattr(cli_main, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli_main, "bar_progress", bar)
    shown = run("check", mixed)
    assert shown.exit_code == 0, shown.stderr
    assert calls[-1] == (5, 5)


# -- one output convention -------------------------------------------------------------------


def test_every_reporting_command_offers_json(work: Path) -> None:
    def doc(*args: object, code: int = 0, **kw: Any) -> dict[str, Any]:
        result = run(*args, "--json", **kw)
        assert result.exit_code == code, result.stderr
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    key = doc("keygen", LOG, "--out", "k/log")
    assert key["name"] == LOG
    assert key["type"] == "ed25519"
    assert (work / key["public_key_file"]).read_text().strip() == key["verifier_key"]
    created = doc("init", "j.db", "--log-key", "k/log.key")
    assert created == {"ledger": "j.db", "origin": LOG, "log_key": key["verifier_key"]}
    ok = run("append", "j.db", "--writer-key", "k/log.key", "-q", input=_jsonl(_event(3)))
    assert ok.exit_code == 0, ok.stderr
    checked = doc("check", "j.db")
    assert checked["ok"] is True
    assert checked["size"] == 1
    assert doc("index", "j.db") == {"indexed": 1, "covers": 1}
    exported = doc("export", "j.db", "j.bundle")
    assert exported["records"] == 1
    assert exported["bundle"] == "j.bundle"
    report = doc("verify", "j.bundle", "--log-key", "k/log.pub")
    assert report["verdict"] == "verified"
    assert report["counts"]["camera"] == {"cam-0": 1}
    assert report["activity"]["hours"][0]["counts"] == [1, 0, 0, 0]
    # Without --json, the same commands speak to people.
    assert run("check", "j.db").stdout.startswith("ok: 1 records")
    assert run("index", "j.db").stdout.startswith("indexed 0 new records")


# -- errors in the user's terms --------------------------------------------------------------


_BASE = (
    '{"event_id": "x", "camera_id": "c", "action": "view", "actor": {"kind": "owner"},'
    ' "occurred_at": "2026-11-27T10:00:00Z"}'
)


@pytest.mark.parametrize(
    ("line", "says", "never"),
    [
        (_BASE.replace('"2026-11-27T10:00:00Z"', "12"), "must be an RFC 3339 time", "`int`"),
        (_BASE.replace('"2026-11-27T10:00:00Z"', '"soon"'), "time such as 2026-11-27", "RFC3339"),
        (_BASE.replace('"c"', "true"), "camera_id: must be a string, not a boolean", "`bool`"),
        (_BASE.replace('"c"', "7"), "camera_id: must be a string, not an integer", "`int`"),
        (_BASE.replace('"x"', "null"), "event_id: must be a string, not null", "NoneType"),
        (_BASE.replace('{"kind": "owner"}', "[]"), "must be an object, not an array", "`"),
        ("\ufeff{}", "byte order mark", "utf-8-sig"),
    ],
)
def test_append_errors_speak_json(ledger: Path, line: str, says: str, never: str) -> None:
    message = assert_one_line_error(_append(ledger, line + "\n"), 1, "line 1", says)
    assert never not in message


def test_an_empty_receipt_says_it_is_empty(ledger: Path) -> None:
    result = run("verify-receipt", "-", "--log-key", "keys/log.pub", input="")
    assert_one_line_error(result, 1, "the receipt is empty")


def test_cosign_names_the_checkpoint_a_stray_cosignature_belongs_to(mixed: Path) -> None:
    assert _append(mixed, _jsonl(_event(9)), "-q").exit_code == 0  # a checkpoint of size 6
    assert run("keygen", "w.example/w", "--witness", "--out", "keys/w").exit_code == 0
    init = run("witness", "init", "wd", "--key", "keys/w.key", "--log", "keys/log.pub", "--json")
    assert init.exit_code == 0, init.stderr
    assert json.loads(init.stdout)["follows"] == [Path("keys/log.pub").read_text().strip()]
    request = run("prove", mixed, "--consistency", "0", "--size", "5")
    assert request.exit_code == 0, request.stderr
    line = run("witness", "add", "wd", "-", input=request.stdout)
    assert line.exit_code == 0, line.stderr
    Path("cos.txt").write_text(line.stdout)
    stray = run("cosign", mixed, "cos.txt", "--witness-key", "keys/w.pub")
    assert_one_line_error(
        stray, 1, "for the checkpoint of size 5, not the latest (size 6)", "--size 5"
    )
    stored = run("cosign", mixed, "cos.txt", "--witness-key", "keys/w.pub", "--size", "5")
    assert stored.exit_code == 0, stored.stderr
    assert "checkpoint 5" in stored.stdout
    again = run("cosign", mixed, "cos.txt", "--witness-key", "keys/w.pub", "--size", "5", "--json")
    assert json.loads(again.stdout) == {"size": 5, "stored": 0}


def test_public_keys_inline_in_every_command(mixed: Path) -> None:
    vkey = Path("keys/log.pub").read_text().strip()
    receipt = run("prove", mixed, "--index", "1")
    Path("r.txt").write_text(receipt.stdout)
    for key in ("keys/log.pub", vkey):
        verified = run("verify-receipt", "r.txt", "--log-key", key)
        assert verified.exit_code == 0, verified.stderr
        assert verified.stdout.startswith("verified: record #1 is in example.com/log")
        assert run("check", mixed, "--log-key", key).exit_code == 0
    assert run("keygen", "w.example/w", "--witness", "--out", "keys/w").exit_code == 0
    witness = run("witness", "init", "wd", "--key", "keys/w.key", "--log", vkey)
    assert witness.exit_code == 0, witness.stderr
    wkey = Path("keys/w.pub").read_text().strip()
    wrong = run("verify-receipt", "r.txt", "--log-key", wkey)
    assert_one_line_error(wrong, 2, "log key", "needs an Ed25519")
    garbled = run("verify-receipt", "r.txt", "--log-key", vkey[:-4] + "!!!!")
    assert_one_line_error(garbled, 2, "log key")


def test_the_demos_witness_can_be_driven_from_the_cli(work: Path) -> None:
    demo = run("demo", "--dir", "d", "--records", "20")
    assert demo.exit_code == 0, demo.stderr
    assert "report.html" in demo.stdout
    line = _jsonl(_event(1, event_id="after-the-demo"))
    appended = run(
        "append", "d/ledger.db", "--writer-key", "d/writer.key", "--log-key", "d/log.key", "-q",
        input=line,
    )  # fmt: skip
    assert appended.exit_code == 0, appended.stderr
    collected = run("witness-collect", "d/ledger.db", "--witness-dir", "d/witness-state")
    assert collected.exit_code == 0, collected.stderr
    assert collected.stdout.startswith("cosigned owner-app.example/owner-42+")
    assert "size 21" in collected.stdout
    again = run("witness-collect", "d/ledger.db", "--witness-dir", "d/witness-state", "--json")
    assert again.exit_code == 0, again.stderr
    (outcome,) = json.loads(again.stdout)["outcomes"]
    assert outcome["size"] == 21
    assert outcome["witness"].startswith("owner-app.example/owner-42+")


def test_export_shows_progress_only_on_a_terminal(
    mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from disclosure_ledger._cli import owner

    calls: list[tuple[int, int]] = []

    def bar(stack: Any, label: str) -> Any:
        assert label == "exporting"
        return lambda done, total: calls.append((done, total))

    monkeypatch.setattr(owner, "bar_progress", bar)
    assert run("export", mixed, "a.bundle").exit_code == 0
    assert calls == []
    monkeypatch.setattr(owner, "_stderr_is_terminal", lambda: True)
    assert run("export", mixed, "b.bundle").exit_code == 0
    assert calls[-1] == (5, 5)
    assert Path("a.bundle").read_bytes() == Path("b.bundle").read_bytes()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["witness", "add", "wd", "-"], "the witness request is empty"),
        (["evidence", "check", "-", "--log-key", "keys/log.pub"], "the evidence file is empty"),
        (["verify", "-", "--log-key", "keys/log.pub"], "bundle is empty"),
    ],
)
def test_empty_inputs_say_they_are_empty(ledger: Path, args: list[str], says: str) -> None:
    assert run("keygen", "w.example/w", "--witness", "--out", "keys/w").exit_code == 0
    init = run("witness", "init", "wd", "--key", "keys/w.key", "--log", "keys/log.pub")
    assert init.exit_code == 0, init.stderr
    assert_one_line_error(run(*args, input=""), 1, says)


def _with_stderr_on_a_terminal(args: list[str], stdin: bytes = b"") -> tuple[int, str, bytes]:
    """Run the real program with standard error on a pseudo-terminal; return what it drew."""
    main, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "disclosure_ledger", *args],
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=secondary,
            check=False,
            timeout=120,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other side is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace"), proc.stdout


def test_progress_is_drawn_on_a_real_terminal(mixed: Path) -> None:
    code, drawn, out = _with_stderr_on_a_terminal(["check", str(mixed)])
    assert code == 0, drawn
    assert "checking" in drawn
    assert out.startswith(b"ok: 5 records")
    lines = _jsonl(*(_event(100 + i) for i in range(50))).encode()
    code, drawn, out = _with_stderr_on_a_terminal(
        ["append", str(mixed), "--writer-key", "keys/log.key", "-q"], stdin=lines
    )
    assert code == 0, drawn
    assert out == b""
    assert "appending: 50 records" in drawn
