"""The command-line contract: names, outputs, exit codes, and one-line errors.

Most tests drive the click group in process (``CliRunner``); a few run the real
program (``python -m disclosure_ledger``) in a subprocess, through real
pipes, to prove the process-level behaviour: exit codes, no traceback, and
acknowledgements that arrive while standard input is still open.
"""

from __future__ import annotations

import base64
import json
import os
import select
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from disclosure_ledger._cli import main as cli_module
from disclosure_ledger._cli.main import cli
from disclosure_ledger._core.checkpoints import (
    open_checkpoint,
    parse_receipt,
    parse_witness_request,
    verify_receipt,
)
from disclosure_ledger._core.merkle import leaf_hash, verify_consistency
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, KEY_TYPE_ED25519, parse_verifier
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._log.pipeline import MAX_LINE
from disclosure_ledger.keys import read_verifier_file

from .cli_helpers import ERROR_PREFIX, assert_one_line_error, run

LOG = "example.com/log"
WRITER = "vendor-backend"


# -- helpers ---------------------------------------------------------------------------


def event(n: int, **extra: Any) -> dict[str, Any]:
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


def jsonl(*events: dict[str, Any] | str) -> str:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)


def acks(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def ledger_size(path: Path) -> int:
    with Ledger.open(path, readonly=True) as lg:
        return lg.size


def ledger_ids(path: Path) -> list[str]:
    with Ledger.open(path, readonly=True) as lg:
        return [r.event.event_id for r in lg.iter_records()]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty working directory for each test (also the current directory)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def ledger(work: Path) -> Path:
    """A fresh ledger with a log key (``log.key``) and a writer key (``w.key``)."""
    assert run("keygen", LOG, "--out", work / "log").exit_code == 0
    assert run("keygen", WRITER, "--out", work / "w").exit_code == 0
    path = work / "l.db"
    assert run("init", path, "--origin", LOG, "--log-key", work / "log.key").exit_code == 0
    return path


def append(path: Path, text: str | bytes, *extra: object) -> Result:
    work = path.parent
    return run(
        "append", path, "--writer-key", work / "w.key", "--log-key", work / "log.key", *extra,
        input=text,
    )  # fmt: skip


# -- keygen -----------------------------------------------------------------------------


def test_keygen_writes_private_key_0600_and_pub(work: Path) -> None:
    result = run("keygen", LOG, "--out", work / "log")
    assert result.exit_code == 0
    vkey = result.stdout.strip()
    key, pub = work / "log.key", work / "log.pub"
    assert key.stat().st_mode & 0o777 == 0o600
    assert pub.read_text() == vkey + "\n"
    verifier = parse_verifier(vkey)
    assert verifier.name == LOG
    assert verifier.key_type == KEY_TYPE_ED25519
    assert key.read_text().startswith(f"PRIVATE+KEY+{LOG}+{verifier.key_id:08x}+")
    # The private key never reaches standard output.
    assert "PRIVATE" not in result.stdout


def test_keygen_witness_makes_cosignature_key(work: Path) -> None:
    result = run("keygen", "witness.example", "--out", work / "wit", "--witness")
    assert result.exit_code == 0
    assert read_verifier_file(work / "wit.pub").key_type == KEY_TYPE_COSIGNATURE


def test_keygen_refuses_to_overwrite_and_bad_names(work: Path) -> None:
    assert run("keygen", LOG, "--out", work / "k").exit_code == 0
    before = (work / "k.key").read_bytes()
    assert_one_line_error(run("keygen", LOG, "--out", work / "k"), 2, "already exists")
    assert (work / "k.key").read_bytes() == before
    assert_one_line_error(run("keygen", "has space", "--out", work / "s"), 2, "key name")
    assert_one_line_error(run("keygen", "a+b", "--out", work / "p"), 2, "key name")


def test_encrypted_key_needs_the_right_passphrase(work: Path) -> None:
    (work / "pass").write_text("correct horse\n")
    (work / "wrong").write_text("battery staple\n")
    result = run("keygen", LOG, "--out", work / "log", "--passphrase-file", work / "pass")
    assert result.exit_code == 0
    key_text = (work / "log.key").read_text()
    assert "PRIVATE+KEY" not in key_text
    assert (work / "log.key").stat().st_mode & 0o777 == 0o600

    base = ["init", work / "l.db", "--origin", LOG, "--log-key", work / "log.key"]
    attempts: list[tuple[list[object], str]] = [
        ([], "passphrase is needed"),
        (["--passphrase-file", work / "wrong"], "wrong passphrase"),
    ]
    for extra, needle in attempts:
        result = run(*base, *extra)
        line = assert_one_line_error(result, 2, needle)
        # No key material, encrypted or not, and no passphrase in the message.
        assert "PRIVATE" not in result.output + result.stderr
        assert key_text.split()[-1][:16] not in line
        assert "battery" not in line
        assert not (work / "l.db").exists()

    assert run(*base, "--passphrase-file", work / "pass").exit_code == 0
    # The same key read through an environment variable appends.
    env_run = CliRunner(env={"DL_PASS": "correct horse"}).invoke(
        cli,
        [
            "append", str(work / "l.db"), "--writer-key", str(work / "log.key"),
            "--passphrase-env", "DL_PASS",
        ],
        input=jsonl(event(1)),
    )  # fmt: skip
    assert env_run.exit_code == 0, env_run.stderr
    assert [a["event_id"] for a in acks(env_run)] == ["evt-1"]


def test_passphrase_options_errors(work: Path) -> None:
    (work / "pass").write_text("pw\n")
    (work / "empty").write_text("\n")
    assert (
        run("keygen", LOG, "--out", work / "a", "--passphrase-file", work / "pass").exit_code == 0
    )
    both = run(
        "keygen", LOG, "--out", work / "b", "--passphrase-file", work / "pass",
        "--passphrase-env", "X",
    )  # fmt: skip
    assert both.exit_code == 2
    assert "not both" in both.stderr
    assert_one_line_error(
        run("keygen", LOG, "--out", work / "c", "--passphrase-file", work / "empty"), 2, "empty"
    )
    missing = run("keygen", LOG, "--out", work / "d", "--passphrase-env", "DL_SURELY_UNSET_VAR")
    assert_one_line_error(missing, 2, "DL_SURELY_UNSET_VAR", "not set")
    assert not (work / "d.key").exists()


# -- init ---------------------------------------------------------------------------------


def test_init_creates_a_ledger(work: Path) -> None:
    run("keygen", LOG, "--out", work / "log")
    result = run("init", work / "l.db", "--origin", LOG, "--log-key", work / "log.key")
    assert result.exit_code == 0
    assert result.stdout == f"created {work / 'l.db'} for {LOG}\n"
    with Ledger.open(work / "l.db", readonly=True) as lg:
        assert lg.origin == LOG
        assert lg.size == 0
        assert lg.log_verifier == read_verifier_file(work / "log.pub")


def test_init_refusals(work: Path) -> None:
    run("keygen", LOG, "--out", work / "log")
    run("keygen", "witness.example", "--out", work / "wit", "--witness")
    init = ["init", work / "l.db", "--origin"]
    mismatch = run(*init, "other.example/log", "--log-key", work / "log.key")
    assert_one_line_error(mismatch, 2, "other.example/log", LOG)
    assert not (work / "l.db").exists()
    witness = run(*init, "witness.example", "--log-key", work / "wit.key")
    assert_one_line_error(witness, 2, "witness")
    assert_one_line_error(
        run("init", work / "l.db", "--origin", LOG, "--log-key", work / "log.pub"), 2, "public"
    )
    assert_one_line_error(
        run("init", work / "l.db", "--origin", LOG, "--log-key", work / "nope.key"), 2, "nope.key"
    )
    assert run("init", work / "l.db", "--origin", LOG, "--log-key", work / "log.key").exit_code == 0
    again = run("init", work / "l.db", "--origin", LOG, "--log-key", work / "log.key")
    assert_one_line_error(again, 2, "already exists")
    no_dir = run("init", work / "no" / "l.db", "--origin", LOG, "--log-key", work / "log.key")
    assert_one_line_error(no_dir, 2)


# -- append -----------------------------------------------------------------------------------


def test_append_from_file_acknowledges_each_durable_record(ledger: Path) -> None:
    events = [event(i) for i in range(5)]
    (ledger.parent / "in.jsonl").write_text(jsonl(*events))
    result = append(ledger, "", ledger.parent / "in.jsonl")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    with Ledger.open(ledger, readonly=True) as lg:
        assert lg.size == 5
        for i, line in enumerate(lines):
            ack = json.loads(line)
            assert list(ack) == ["index", "leaf_hash", "event_id"]
            assert ack["index"] == i
            assert ack["event_id"] == f"evt-{i}"
            assert base64.b64decode(ack["leaf_hash"]) == leaf_hash(lg.leaf(i))
        assert lg.record(3).event.event_id == "evt-3"
    # Exactly the documented shape: {"index": N, "leaf_hash": "...", "event_id": "..."}.
    assert lines[0].startswith('{"index": 0, "leaf_hash": "')


def test_append_from_stdin_and_dash(ledger: Path) -> None:
    first = append(ledger, jsonl(event(0), event(1)))
    assert first.exit_code == 0, first.stderr
    second = append(ledger, "\n" + jsonl(event(2)) + "   \n", "-")
    assert second.exit_code == 0, second.stderr
    assert [a["index"] for a in acks(first) + acks(second)] == [0, 1, 2]
    assert ledger_ids(ledger) == ["evt-0", "evt-1", "evt-2"]
    empty = append(ledger, "")
    assert empty.exit_code == 0
    assert empty.stdout == ""


def test_append_last_line_without_newline(ledger: Path) -> None:
    result = append(ledger, jsonl(event(0)) + json.dumps(event(1)))
    assert result.exit_code == 0
    assert ledger_size(ledger) == 2


def test_append_with_the_log_key_as_writer_needs_no_log_key(ledger: Path) -> None:
    work = ledger.parent
    ok = run("append", ledger, "--writer-key", work / "log.key", input=jsonl(event(0)))
    assert ok.exit_code == 0, ok.stderr
    needs = run("append", ledger, "--writer-key", work / "w.key", input=jsonl(event(1)))
    assert_one_line_error(needs, 2, "--log-key")
    run("keygen", "someone.else/log", "--out", work / "other")
    wrong = run(
        "append", ledger, "--writer-key", work / "w.key", "--log-key", work / "other.key",
        input=jsonl(event(1)),
    )  # fmt: skip
    assert_one_line_error(wrong, 2, "log key")
    assert ledger_ids(ledger) == ["evt-0"]


def test_bad_line_in_the_middle(ledger: Path) -> None:
    bad = event(4, actor={"kind": "robot"})
    text = jsonl(event(1), event(2), event(3)) + "\n" + jsonl(bad, event(6), event(7))
    result = append(ledger, text)
    # Line 5: the blank line 4 counts.
    assert_one_line_error(result, 1, "line 5", "actor.kind")
    assert [a["event_id"] for a in acks(result)] == ["evt-1", "evt-2", "evt-3"]
    assert ledger_ids(ledger) == ["evt-1", "evt-2", "evt-3"]


def test_bad_line_after_several_batches(ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "APPEND_BATCH", 4)
    lines: list[dict[str, Any] | str] = [event(i) for i in range(1, 19)]
    lines.insert(13, "{truncated")  # line 14
    result = append(ledger, jsonl(*lines))
    assert_one_line_error(result, 1, "line 14", "JSON")
    assert [a["index"] for a in acks(result)] == list(range(13))
    assert ledger_size(ledger) == 13


def test_invalid_json_and_utf8_and_shapes(ledger: Path) -> None:
    for text, needle in (
        ("{not json}\n", "JSON"),
        ("[1, 2]\n", "line 1"),
        ('{"event_id": "x"}\n', "line 1"),
        (json.dumps(event(1, occurred_at="2026-11-27T10:00:00")) + "\n", "occurred_at"),
        (json.dumps(event(1, footage=[{"clip_id": "c", "sha256": "AB"}])) + "\n", "footage"),
    ):
        assert_one_line_error(append(ledger, text), 1, needle)
    raw = jsonl(event(1)).encode() + b'{"event_id": "\xff"}\n'
    result = append(ledger, raw)
    assert_one_line_error(result, 1, "line 2", "UTF-8")
    assert ledger_ids(ledger) == ["evt-1"]


def test_duplicate_event_id_within_input(ledger: Path) -> None:
    result = append(ledger, jsonl(event(1), event(2), event(1), event(3)))
    assert_one_line_error(result, 1, "line 3", "evt-1", "line 1")
    assert ledger_ids(ledger) == ["evt-1", "evt-2"]
    assert len(acks(result)) == 2


def test_duplicate_event_id_already_in_ledger(ledger: Path) -> None:
    assert append(ledger, jsonl(event(1), event(2))).exit_code == 0
    result = append(ledger, jsonl(event(10), event(11), event(2), event(12)))
    assert_one_line_error(result, 1, "line 3", "evt-2")
    assert [a["event_id"] for a in acks(result)] == ["evt-10", "evt-11"]
    assert [a["index"] for a in acks(result)] == [2, 3]
    assert ledger_ids(ledger) == ["evt-1", "evt-2", "evt-10", "evt-11"]
    first = append(ledger, jsonl(event(1)))
    assert_one_line_error(first, 1, "line 1")
    assert first.stdout == ""


def test_unusable_ledger_files(ledger: Path) -> None:
    work = ledger.parent
    (work / "notes.txt").write_text("not a ledger at all\n" * 10)
    con = sqlite3.connect(work / "other.sqlite")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    cases = {
        work / "missing.db": "no such",
        work: "directory",
        work / "notes.txt": "not a disclosure ledger",
        work / "other.sqlite": "not a disclosure ledger",
    }
    for path, needle in cases.items():
        for args in (
            ["check", path],
            ["checkpoint", path],
            ["prove", path, "--index", "0"],
            ["show", path],
            ["append", path, "--writer-key", work / "w.key", "--log-key", work / "log.key"],
        ):
            result = run(*args, input=jsonl(event(1)))
            assert_one_line_error(result, 2, needle)
    assert (work / "notes.txt").read_text() == "not a ledger at all\n" * 10
    missing_input = run(
        "append", ledger, "--writer-key", work / "w.key", "--log-key", work / "log.key",
        work / "nope.jsonl",
    )  # fmt: skip
    assert missing_input.exit_code == 2
    assert "Traceback" not in missing_input.stderr


def test_read_only_ledger(ledger: Path) -> None:
    assert append(ledger, jsonl(event(1))).exit_code == 0
    ledger.chmod(0o444)
    try:
        # Reading works on a read-only file, for root and everyone else.
        assert run("check", ledger).exit_code == 0
        assert run("checkpoint", ledger).exit_code == 0
        if os.geteuid() == 0:
            pytest.skip("root writes through permission bits; the append refusal is not testable")
        result = append(ledger, jsonl(event(2)))
        assert_one_line_error(result, 2, "read-only")
        assert result.stdout == ""
    finally:
        ledger.chmod(0o644)
    assert ledger_ids(ledger) == ["evt-1"]


# -- checkpoint, prove, check, show -----------------------------------------------------------


def _log_verifier(ledger: Path) -> Any:
    return read_verifier_file(ledger.parent / "log.pub")


def test_checkpoint_output_opens(ledger: Path) -> None:
    append(ledger, jsonl(event(1), event(2)))
    append(ledger, jsonl(event(3)))
    latest = run("checkpoint", ledger)
    assert latest.exit_code == 0
    signed = open_checkpoint(latest.stdout, _log_verifier(ledger))
    assert signed.checkpoint.origin == LOG
    assert signed.checkpoint.size == 3
    older = run("checkpoint", ledger, "--size", "2")
    assert open_checkpoint(older.stdout, _log_verifier(ledger)).checkpoint.size == 2
    empty = run("checkpoint", ledger, "--size", "0")
    assert open_checkpoint(empty.stdout, _log_verifier(ledger)).checkpoint.size == 0
    assert_one_line_error(run("checkpoint", ledger, "--size", "1"), 2, "size 1")


def test_prove_index_receipt_verifies(ledger: Path) -> None:
    append(ledger, jsonl(*(event(i) for i in range(5))))
    append(ledger, jsonl(*(event(i) for i in range(5, 9))))
    with Ledger.open(ledger, readonly=True) as lg:
        leaves = [lg.leaf(i) for i in range(9)]
    for index, size in ((0, None), (4, None), (8, None), (3, 5)):
        args = ["prove", ledger, "--index", index] + ([] if size is None else ["--size", size])
        result = run(*args)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.startswith("c2sp.org/tlog-proof@v1\nextra ")
        receipt = parse_receipt(result.stdout)
        assert receipt.extra == leaves[index]
        verified = verify_receipt(receipt, _log_verifier(ledger))
        assert verified.index == index
        assert verified.checkpoint.checkpoint.size == (9 if size is None else size)
    assert_one_line_error(run("prove", ledger, "--index", "9"), 2, "9")
    assert_one_line_error(run("prove", ledger, "--index", "0", "--size", "3"), 2, "size 3")
    assert run("prove", ledger).exit_code == 2
    assert run("prove", ledger, "--index", "0", "--consistency", "1").exit_code == 2


def test_prove_consistency_witness_request(ledger: Path) -> None:
    append(ledger, jsonl(*(event(i) for i in range(3))))
    append(ledger, jsonl(*(event(i) for i in range(3, 10))))
    verifier = _log_verifier(ledger)
    old_cp = open_checkpoint(run("checkpoint", ledger, "--size", "3").stdout, verifier).checkpoint
    result = run("prove", ledger, "--consistency", "3")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("old 3\n")
    request = parse_witness_request(result.stdout)
    assert request.old_size == 3
    new_cp = open_checkpoint(request.checkpoint, verifier).checkpoint
    assert new_cp.size == 10
    verify_consistency(3, 10, old_cp.root, new_cp.root, request.proof)
    zero = parse_witness_request(run("prove", ledger, "--consistency", "0").stdout)
    assert zero.old_size == 0
    assert zero.proof == ()
    assert_one_line_error(run("prove", ledger, "--consistency", "11"), 2, "11")


def test_check_ok(ledger: Path) -> None:
    empty = run("check", ledger)
    assert empty.exit_code == 0
    assert empty.stdout.startswith("ok: 0 records, 1 checkpoints, root ")
    append(ledger, jsonl(event(1), event(2)))
    append(ledger, jsonl(event(3)))
    result = run("check", ledger)
    assert result.exit_code == 0
    with Ledger.open(ledger, readonly=True) as lg:
        root = lg.latest_checkpoint().checkpoint.root
    assert (
        result.stdout == f"ok: 3 records, 3 checkpoints, root {base64.b64encode(root).decode()}\n"
    )


def test_check_fails_on_raw_byte_tampering(ledger: Path) -> None:
    marker = "tamper-target-AAAA"
    append(ledger, jsonl(event(1), event(2, justification=marker), event(3)))
    raw = ledger.read_bytes()
    assert raw.count(marker.encode()) == 1, "the record must be in the main file, once"
    ledger.write_bytes(raw.replace(marker.encode(), b"tamper-target-BBBB"))
    result = run("check", ledger)
    assert_one_line_error(result, 1, "check failed", "record 1")
    assert result.stdout == ""


def test_check_fails_on_sql_tampering(ledger: Path) -> None:
    append(ledger, jsonl(event(1), event(2), event(3)))
    con = sqlite3.connect(ledger)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE records SET leaf = x'00' WHERE seq = 0")
    con.execute("DROP TRIGGER records_no_update")
    leaf = con.execute("SELECT leaf FROM records WHERE seq = 2").fetchone()[0]
    flipped = leaf[:-1] + bytes([leaf[-1] ^ 1])
    con.execute("UPDATE records SET leaf = ? WHERE seq = 2", (flipped,))
    con.commit()
    con.close()
    assert_one_line_error(run("check", ledger), 1, "check failed", "record 2")


def test_index_then_show(ledger: Path) -> None:
    append(ledger, jsonl(*[event(i) for i in range(4)]))
    result = run("index", ledger)
    assert result.exit_code == 0
    assert result.stdout == "indexed 4 new records; the index covers 4\n"
    append(ledger, jsonl(event(4)))
    # show reads the index for 0..3 and decodes record 4 itself.
    cam = [
        json.loads(x)
        for x in run("show", "--json", ledger, "--camera", "cam-1").stdout.splitlines()
    ]
    assert [r["event"]["event_id"] for r in cam] == ["evt-1", "evt-4"]
    assert run("index", ledger).stdout == "indexed 1 new records; the index covers 5\n"
    assert_one_line_error(run("index", ledger.with_name("missing.db")), 2, "no such ledger")


def test_show(ledger: Path) -> None:
    evs = [event(i) for i in range(6)]
    evs[4] = event(4, action="release", recipient={"kind": "law_enforcement", "organization": "PD"})
    append(ledger, jsonl(*evs))
    everything = [json.loads(line) for line in run("show", "--json", ledger).stdout.splitlines()]
    assert [r["index"] for r in everything] == list(range(6))
    assert everything[4]["event"]["recipient"] == {"kind": "law_enforcement", "organization": "PD"}
    assert everything[4]["event"] == evs[4]
    one = json.loads(run("show", "--json", ledger, "--index", "2").stdout)
    assert one["event"]["event_id"] == "evt-2"
    cam = [
        json.loads(x)
        for x in run("show", "--json", ledger, "--camera", "cam-1").stdout.splitlines()
    ]
    assert [r["event"]["event_id"] for r in cam] == ["evt-1", "evt-4"]
    limited = run("show", "--json", ledger, "--limit", "2").stdout.splitlines()
    assert len(limited) == 2
    assert_one_line_error(run("show", "--json", ledger, "--index", "6"), 2, "6")


# -- demo ----------------------------------------------------------------------------------------


def test_demo_runs(work: Path) -> None:
    result = run("demo", "--dir", work / "demo", "--records", "40")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "receipt verifies" in out
    assert "c2sp.org/tlog-proof@v1" in out
    assert "ok: 40 records" in out
    assert "VERIFIED" in out
    assert out.index("Without your consent:") < out.index("With your consent:")
    assert "One byte changed in the export" in out
    assert "witness: cosigned" in out
    assert "allowed: record" in out
    assert "refused: FootageNotNamedError" in out
    assert "emergency" in out
    assert "case 26-1193" in out
    assert "notification deferred until" in out
    assert run("check", work / "demo" / "ledger.db").exit_code == 0
    # The same seed gives the same events.
    again = run("demo", "--dir", work / "demo2", "--records", "40")
    assert ledger_ids(work / "demo" / "ledger.db") == ledger_ids(work / "demo2" / "ledger.db")
    assert_one_line_error(run("demo", "--dir", work / "demo"), 2, "already holds")
    assert again.exit_code == 0
    assert run("demo", "--records", "2").exit_code == 2


# -- the real program, in a subprocess --------------------------------------------------------


def program(*args: object, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "disclosure_ledger", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )


def test_subprocess_errors_are_one_line_without_traceback(ledger: Path) -> None:
    work = ledger.parent
    text = jsonl(event(1), event(2)) + "{oops\n" + jsonl(event(3))
    result = program(
        "append", ledger, "--writer-key", work / "w.key", "--log-key", work / "log.key",
        input=text,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(ERROR_PREFIX + "line 3: ")
    assert "Traceback" not in result.stderr
    assert [json.loads(x)["event_id"] for x in result.stdout.splitlines()] == ["evt-1", "evt-2"]

    (work / "wrong").write_text("nope\n")
    run("keygen", "enc", "--out", work / "enc", "--passphrase-file", work / "wrong")
    (work / "wrong").write_text("still nope\n")
    for args, code in (
        (["check", work / "missing.db"], 2),
        (["check", work], 2),
        (["init", work / "x.db", "--origin", "enc", "--log-key", work / "enc.key",
          "--passphrase-file", work / "wrong"], 2),
        (["prove", ledger], 2),
        (["frobnicate"], 2),
    ):  # fmt: skip
        proc = program(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "PRIVATE" not in proc.stderr

    ok = program("check", ledger)
    assert ok.returncode == 0
    assert ok.stdout.startswith("ok: 2 records")


def test_subprocess_acknowledges_while_stdin_is_open(ledger: Path) -> None:
    """Through a pipe, a line is acknowledged before the writer closes its end."""
    work = ledger.parent
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "disclosure_ledger", "append", str(ledger),
            "--writer-key", str(work / "w.key"), "--log-key", str(work / "log.key"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        for i in (1, 2):
            proc.stdin.write(jsonl(event(i)))
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready, "no acknowledgement while standard input is open"
            ack = json.loads(proc.stdout.readline())
            assert ack["event_id"] == f"evt-{i}"
            assert ack["index"] == i - 1
            # Acknowledged means durable: another reader sees it now.
            assert ledger_size(ledger) == i
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()


def test_subprocess_check_after_tampering(ledger: Path) -> None:
    append(ledger, jsonl(event(1), event(2, justification="tamper-target-AAAA")))
    raw = ledger.read_bytes()
    ledger.write_bytes(raw.replace(b"tamper-target-AAAA", b"tamper-target-ZZZZ"))
    proc = program("check", ledger)
    assert proc.returncode == 1
    assert proc.stderr.startswith(ERROR_PREFIX + "check failed")
    assert len(proc.stderr.splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_main_exits_with_the_command_status(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_module.main(["check", str(work / "missing.db")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(ERROR_PREFIX)
    assert len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        cli_module.main(["--version"])
    assert exc.value.code == 0


# -- append: line length cap, bounded memory -----------------------------------------------
# (the line reader itself is tested without click in test_pipeline.py)


def test_a_100_mb_line_is_refused_quickly_in_bounded_memory(ledger: Path) -> None:
    import time
    import tracemalloc

    path = ledger.parent / "huge.jsonl"
    with path.open("wb") as fh:
        fh.write(jsonl(event(1), event(2)).encode())
        fh.write(b'{"event_id": "')
        block = b"x" * (1 << 20)
        for _ in range(100):
            fh.write(block)
        fh.write(b'"}\n' + jsonl(event(4)).encode())
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = append(ledger, "", path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert_one_line_error(result, 1, "line 3", f"longer than {MAX_LINE} bytes")
    assert [a["event_id"] for a in acks(result)] == ["evt-1", "evt-2"]
    assert ledger_ids(ledger) == ["evt-1", "evt-2"]
    assert elapsed < 5, elapsed
    assert peak < 20 << 20, peak


def test_a_huge_line_on_a_pipe_is_refused_without_reading_it(ledger: Path) -> None:
    import threading
    import time

    work = ledger.parent
    out_file, err_file = (work / "out").open("w+b"), (work / "err").open("w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "disclosure_ledger", "append", str(ledger),
         "--writer-key", str(work / "w.key"), "--log-key", str(work / "log.key")],
        stdin=subprocess.PIPE, stdout=out_file, stderr=err_file,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert proc.stdin is not None
    sent = [0]

    def feed() -> None:
        assert proc.stdin is not None
        block = b"x" * (1 << 20)
        try:
            proc.stdin.write(jsonl(event(1)).encode() + b'{"event_id": "')
            for _ in range(1000):  # a gigabyte, if it were all read
                proc.stdin.write(block)
                sent[0] += len(block)
        except (BrokenPipeError, ValueError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    started = time.monotonic()
    feeder.start()
    try:
        proc.wait(timeout=60)
    finally:
        proc.kill()
        feeder.join(timeout=10)
    elapsed = time.monotonic() - started
    out, err = (work / "out").read_bytes(), (work / "err").read_bytes()
    out_file.close()
    err_file.close()
    assert elapsed < 30, elapsed
    assert proc.returncode == 1, err
    assert err.decode().startswith(ERROR_PREFIX + "line 2: longer than")
    assert len(err.decode().splitlines()) == 1
    assert [json.loads(x)["event_id"] for x in out.decode().splitlines()] == ["evt-1"]
    assert sent[0] < 100 << 20
    assert ledger_ids(ledger) == ["evt-1"]


# -- commands that write files: never over an existing file or the ledger -------------------


def _check_ok(ledger: Path) -> None:
    result = run("check", ledger)
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def filled(ledger: Path) -> Path:
    assert append(ledger, jsonl(event(1), event(2))).exit_code == 0
    return ledger


def test_export_refuses_an_existing_file_unless_forced(filled: Path) -> None:
    work = filled.parent
    (work / "b").write_bytes(b"precious")
    refused = run("export", filled, work / "b")
    assert_one_line_error(refused, 2, "already exists", "--force")
    assert (work / "b").read_bytes() == b"precious"
    # A key file is no different: export never writes over it without --force.
    key = (work / "w.key").read_bytes()
    assert_one_line_error(run("export", filled, work / "w.key"), 2, "already exists")
    assert (work / "w.key").read_bytes() == key
    forced = run("export", filled, work / "b", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert (work / "b").read_bytes().startswith(b"DLBUNDLE")
    assert sorted(p.name for p in work.iterdir() if p.name.startswith((".b", "b"))) == ["b"]


@pytest.mark.parametrize("spelling", ["same", "dot", "dotdot", "symlink", "hardlink", "wal", "shm"])
@pytest.mark.parametrize("force", [False, True])
def test_export_never_writes_over_the_ledger(filled: Path, spelling: str, force: bool) -> None:
    work = filled.parent
    before = filled.read_bytes()
    target: Path | str
    if spelling == "same":
        target = filled
    elif spelling == "dot":
        target = f"./{filled.name}"  # the work directory is the current directory
    elif spelling == "dotdot":
        target = f"../{work.name}/{filled.name}"
    elif spelling == "symlink":
        target = work / "link.db"
        target.symlink_to(filled)
    elif spelling == "hardlink":
        target = work / "hard.db"
        os.link(filled, target)
    else:
        target = f"{filled}-{spelling}"
    result = run("export", filled, target, *(["--force"] if force else []))
    assert_one_line_error(result, 2, "is the ledger", str(filled))
    assert filled.read_bytes() == before
    _check_ok(filled)


def test_export_force_replaces_a_symlink_not_its_target(filled: Path) -> None:
    work = filled.parent
    (work / "other").write_bytes(b"someone else's file")
    (work / "link").symlink_to(work / "other")
    assert_one_line_error(run("export", filled, work / "link"), 2, "already exists")
    assert run("export", filled, work / "link", "--force").exit_code == 0
    assert not (work / "link").is_symlink()
    assert (work / "link").read_bytes().startswith(b"DLBUNDLE")
    assert (work / "other").read_bytes() == b"someone else's file"


def test_export_into_a_directory_or_missing_directory(filled: Path) -> None:
    work = filled.parent
    (work / "d").mkdir()
    assert_one_line_error(run("export", filled, work / "d", "--force"), 2, "is a directory")
    assert_one_line_error(run("export", filled, work / "no" / "b"), 2, "No such file")


def test_keygen_force_replaces_both_files(work: Path) -> None:
    first = run("keygen", LOG, "--out", work / "k").stdout.strip()
    refused = run("keygen", LOG, "--out", work / "k")
    assert_one_line_error(refused, 2, "k.key", "already exists", "--force")
    (work / "k.key").rename(work / "aside")
    assert_one_line_error(run("keygen", LOG, "--out", work / "k"), 2, "k.pub", "already exists")
    assert not (work / "k.key").exists()
    second = run("keygen", LOG, "--out", work / "k", "--force")
    assert second.exit_code == 0, second.stderr
    assert second.stdout.strip() != first
    assert read_verifier_file(work / "k.pub").vkey == second.stdout.strip()
    assert (work / "k.key").stat().st_mode & 0o777 == 0o600


def test_keygen_never_writes_pub_over_the_key(work: Path) -> None:
    assert run("keygen", LOG, "--out", work / "k").exit_code == 0
    secret = (work / "k.key").read_bytes()
    (work / "k.pub").unlink()
    (work / "k.pub").symlink_to(work / "k.key")
    assert_one_line_error(run("keygen", LOG, "--out", work / "k", "--force"), 2, "is the key file")
    assert (work / "k.key").read_bytes() == secret


def test_init_never_writes_over_a_file_a_key_or_a_leftover_wal(work: Path) -> None:
    run("keygen", LOG, "--out", work / "log")
    key = (work / "log.key").read_bytes()
    over_key = run("init", work / "log.key", "--origin", LOG, "--log-key", work / "log.key")
    assert_one_line_error(over_key, 2, "log.key")
    (work / "link.db").symlink_to(work / "log.key")
    via_link = run("init", work / "link.db", "--origin", LOG, "--log-key", work / "log.key")
    assert_one_line_error(via_link, 2, "log key file")
    assert (work / "log.key").read_bytes() == key
    (work / "dangling.db").symlink_to(work / "elsewhere.db")
    dangling = run("init", work / "dangling.db", "--origin", LOG, "--log-key", work / "log.key")
    assert_one_line_error(dangling, 2, "already exists")
    assert not (work / "elsewhere.db").exists()
    (work / "l.db-wal").write_bytes(b"left over")
    leftover = run("init", work / "l.db", "--origin", LOG, "--log-key", work / "log.key")
    assert_one_line_error(leftover, 2, "l.db-wal", "leftover")
    assert not (work / "l.db").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o660, 0o606])
def test_a_private_key_open_to_others_is_refused_everywhere(ledger: Path, mode: int) -> None:
    work = ledger.parent
    (work / "w.key").chmod(mode)
    result = append(ledger, jsonl(event(1)))
    line = assert_one_line_error(result, 2, "w.key", f"mode {mode:04o}", "chmod 600")
    assert "PRIVATE" not in line
    assert ledger_size(ledger) == 0
    (work / "log.key").chmod(mode)
    init = run("init", work / "l2.db", "--origin", LOG, "--log-key", work / "log.key")
    assert_one_line_error(init, 2, "log.key", "chmod 600")
    (work / "w.key").chmod(0o600)
    (work / "log.key").chmod(0o600)
    assert append(ledger, jsonl(event(1))).exit_code == 0


def test_passphrase_file_is_capped(work: Path) -> None:
    result = run("keygen", LOG, "--out", work / "k", "--passphrase-file", "/dev/zero")
    assert_one_line_error(result, 2, "/dev/zero", "too large")
    (work / "big").write_bytes(b"p" * 10000)
    result = run("keygen", LOG, "--out", work / "k", "--passphrase-file", work / "big")
    assert_one_line_error(result, 2, "too large")
    assert not (work / "k.key").exists()
