"""The command line on PostgreSQL: ``URL --log ORIGIN`` wherever a ledger file goes.

Every bad target (a mistyped URL, a refused connection, an unknown log, a log
that exists) is one line on standard error and exit 2; a password in a URL is
never shown.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from disclosure_ledger._core.checkpoints import parse_receipt, verify_receipt
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._store.pg_database import PgAppendTxn
from disclosure_ledger._verify.tiles import verify_published
from disclosure_ledger._verify.verifier import verify
from disclosure_ledger.errors import LedgerError
from disclosure_ledger.keys import derive_log_key, read_signer_file

from .cli_helpers import assert_one_line_error, run
from .ledger_helpers import event

ORIGIN = "vendor.example/ledger/owner-7"
OTHER = "vendor.example/ledger/owner-8"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    assert run("keygen", "vendor.example/log-master", "--out", tmp_path / "master").exit_code == 0
    assert run("keygen", "vendor.example/writer/w1", "--out", tmp_path / "writer").exit_code == 0
    return {"master": tmp_path / "master.key", "writer": tmp_path / "writer.key"}


def _events(tmp_path: Path, start: int, count: int) -> Path:
    path = tmp_path / f"events-{start}.jsonl"
    path.write_text("".join(json.dumps(event(i)) + "\n" for i in range(start, start + count)))
    return path


def test_every_ledger_command_takes_a_url_and_a_log(
    pg_url: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    master = ["--master-key", keys["master"]]
    created = run("init", pg_url, "--origin", ORIGIN, *master)
    assert created.exit_code == 0, created.stderr
    assert run("init", pg_url, "--origin", OTHER, *master).exit_code == 0
    log = [pg_url, "--log", ORIGIN]
    appended = run(
        "append", *log, _events(tmp_path, 0, 30), "--writer-key", keys["writer"], *master
    )
    assert appended.exit_code == 0, appended.stderr
    assert len(appended.stdout.splitlines()) == 30
    shown = run("show", "--json", *log, "--camera", "cam-1")
    assert [json.loads(line)["index"] for line in shown.stdout.splitlines()] == list(
        range(1, 30, 3)
    )
    assert run("index", *log).exit_code == 0
    checked = run("check", *log)
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.startswith("ok: 30 records")
    log_key = derive_log_key(read_signer_file(keys["master"]), ORIGIN)
    receipt = run("prove", *log, "--index", "7")
    assert verify_receipt(parse_receipt(receipt.stdout), log_key.verifier).index == 7
    assert run("checkpoint", *log).stdout.startswith(f"{ORIGIN}\n30\n")
    exported = run("export", *log, tmp_path / "owner-7.bundle")
    assert exported.exit_code == 0, exported.stderr
    writer = read_signer_file(keys["writer"]).verifier
    assert verify(tmp_path / "owner-7.bundle", Policy.simple(log_key.verifier, [writer])).size == 30
    listed = run("logs", pg_url)
    assert listed.stdout.splitlines() == [f"{ORIGIN}\t30", f"{OTHER}\t0"]
    with_keys = run("logs", pg_url, "--keys").stdout.splitlines()
    assert with_keys[0] == f"{ORIGIN}\t30\t{log_key.verifier.vkey}"


def test_checkpoint_sign_covers_records_left_without_one(
    pg_url: str, keys: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_key = derive_log_key(read_signer_file(keys["master"]), ORIGIN)
    with Ledger.create(pg_url, log_key=log_key) as led:
        led.append(event(0))
        # A writer of another make that died between its records and its checkpoint.
        with monkeypatch.context() as patch:
            patch.setattr(PgAppendTxn, "insert_checkpoint", lambda *_args: None)
            led.append(event(1))
    failed = run("check", pg_url, "--log", ORIGIN)
    assert failed.exit_code == 1
    nothing = run("checkpoint", pg_url, "--log", ORIGIN, "--sign")
    assert_one_line_error(nothing, 2, "--sign needs the log key")
    signed = run("checkpoint", pg_url, "--log", ORIGIN, "--sign", "--master-key", keys["master"])
    assert signed.exit_code == 0, signed.stderr
    assert signed.stdout.startswith(f"{ORIGIN}\n2\n")
    assert "signed a checkpoint of size 2" in signed.stderr
    assert run("check", pg_url, "--log", ORIGIN).exit_code == 0
    again = run("checkpoint", pg_url, "--log", ORIGIN, "--sign", "--master-key", keys["master"])
    assert again.exit_code == 0
    assert "signed" not in again.stderr


def test_bad_targets_get_one_line_and_exit_2(
    pg_url: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    master = ["--master-key", keys["master"]]
    assert run("init", pg_url, "--origin", ORIGIN, *master).exit_code == 0
    exists = run("init", pg_url, "--origin", ORIGIN, *master)
    assert_one_line_error(exists, 2, "already exists")
    assert_one_line_error(run("check", pg_url), 2, "name one with --log ORIGIN")
    assert_one_line_error(run("check", pg_url, "--log", OTHER), 2, f"no log '{OTHER}'")
    assert_one_line_error(run("logs", tmp_path / "x.ledger"), 2, "not a postgresql:// URL")
    mistyped = pg_url.replace("postgresql://", "postgresq://")
    assert_one_line_error(run("check", mistyped, "--log", ORIGIN), 2, "not a ledger file")
    assert_one_line_error(
        run("check", tmp_path / "x.ledger", "--log", ORIGIN), 2, "--log names a log"
    )
    secret = "hunter2-secret"  # noqa: S105 - the point of the test
    refused = f"postgresql://ledger:{secret}@127.0.0.1:1/ledgers"
    for args in (
        ("check", refused, "--log", ORIGIN),
        ("logs", refused),
        ("init", refused, "--origin", ORIGIN, *master),
        ("append", refused, "--log", ORIGIN, "--writer-key", keys["writer"], *master),
    ):
        result = run(*args, input="")
        line = assert_one_line_error(result, 2, "***")
        assert secret not in result.stdout + result.stderr, line
    empty = run("logs", pg_url.rsplit("/", 1)[0] + "/postgres")
    assert_one_line_error(empty, 2, "no disclosure ledger schema")


def test_witness_add_and_cosign_on_a_database_log(
    pg_url: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    master = ["--master-key", keys["master"]]
    log = [pg_url, "--log", ORIGIN]
    assert run("init", pg_url, "--origin", ORIGIN, *master).exit_code == 0
    appended = run("append", *log, _events(tmp_path, 0, 3), "--writer-key", keys["writer"], *master)
    assert appended.exit_code == 0, appended.stderr
    assert run("keygen", "witness.example/w1", "--witness", "--out", tmp_path / "w1").exit_code == 0
    listed = run("logs", pg_url, "--keys").stdout.split("\t")
    (tmp_path / "log.pub").write_text(listed[2])
    made = run(
        "witness", "init", tmp_path / "w1dir", "--key", tmp_path / "w1.key",
        "--log", tmp_path / "log.pub",
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    request = run("prove", *log, "--consistency", "0")
    (tmp_path / "req").write_text(request.stdout)
    line = run("witness", "add", tmp_path / "w1dir", tmp_path / "req")
    assert line.exit_code == 0, line.stderr
    (tmp_path / "cosig").write_text(line.stdout)
    stored = run("cosign", *log, tmp_path / "cosig", "--witness-key", tmp_path / "w1.pub")
    assert stored.stdout == "stored 1 new cosignature(s) for checkpoint 3\n", stored.stderr
    assert line.stdout.strip() in run("checkpoint", *log).stdout
    assert "1 cosignatures" in run("check", *log).stdout


def test_publish_a_log_of_a_database_and_verify_it_from_its_tiles(
    pg_url: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    master = ["--master-key", keys["master"]]
    assert run("init", pg_url, "--origin", ORIGIN, *master).exit_code == 0
    assert run("init", pg_url, "--origin", OTHER, *master).exit_code == 0
    log = [pg_url, "--log", ORIGIN]
    appended = run(
        "append", *log, _events(tmp_path, 0, 300), "--writer-key", keys["writer"], *master
    )
    assert appended.exit_code == 0, appended.stderr
    published = run("publish", *log, tmp_path / "pub")
    assert published.exit_code == 0, published.stderr
    assert f"published {ORIGIN} at size 300" in published.stdout
    log_key = derive_log_key(read_signer_file(keys["master"]), ORIGIN)
    writer = read_signer_file(keys["writer"]).verifier
    policy = Policy.simple(log_key.verifier, [writer])
    assert verify_published(str(tmp_path / "pub"), policy).record_count == 300
    # The other log of the same database is not this publication's, nor its key.
    other = run("publish", pg_url, "--log", OTHER, tmp_path / "pub")
    assert other.exit_code == 2
    assert_one_line_error(other, 2, "another log")
    other_key = derive_log_key(read_signer_file(keys["master"]), OTHER)
    with pytest.raises(LedgerError):
        verify_published(str(tmp_path / "pub"), Policy.simple(other_key.verifier, [writer]))
