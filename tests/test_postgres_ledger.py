"""The ledger on PostgreSQL: everything a file does, many logs, many writers, crashes.

One server serves the whole run (conftest.py). Writers in other processes are
``tests/pg_writer.py``; they print each event ID once it is acknowledged, so
a test knows exactly what must be in the logs after it kills them.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import cosign_checkpoint, format_receipt, verify_receipt
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._log.database import LedgerDatabase
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._verify.gate import NotAReleaseError, ReleaseGate
from disclosure_ledger._verify.verifier import verify
from disclosure_ledger._witness.client import LocalWitness, collect_cosignatures
from disclosure_ledger._witness.cosigner import Cosigner
from disclosure_ledger._witness.witness import Witness
from disclosure_ledger.errors import (
    DuplicateEventError,
    LedgerError,
    StorageError,
    UntrustedKeyError,
    ValidationError,
    VerificationError,
)

from .ledger_helpers import event, release_event, witness_key, writer_key
from .pg_keys import log_key_for
from .pg_server import PgServer

ROOT = Path(__file__).resolve().parents[1]
A, B, C = (f"vendor.example/ledger/owner-{x}" for x in "abc")


def _ledger(url: str, origin: str = A) -> Ledger:
    return Ledger.create(url, log_key=log_key_for(origin), writers=[writer_key()])


@pytest.fixture
def db(pg_url: str) -> Iterator[LedgerDatabase]:
    database = LedgerDatabase.connect(pg_url, create_schema=True, pool_size=4)
    yield database
    database.close()


def test_a_log_in_postgres_does_what_a_file_does(pg_url: str, tmp_path: Path) -> None:
    with _ledger(pg_url) as led:
        assert led.size == 0
        assert led.latest_checkpoint().checkpoint.size == 0
        led.append_many([event(i) for i in range(60)])
        receipt = led.append(release_event(60))
        led.append_many([event(i) for i in range(61, 140)])
        assert receipt.index == 60
        proof = led.receipt(60)
        assert verify_receipt(proof, log_key_for(A).verifier).leaf_hash == receipt.leaf_hash
        assert len(led.consistency_proof(61)) > 0
        assert led.witness_request(61).old_size == 61
        assert [r.index for r in led.query(camera_id="cam-1", limit=3)] == [1, 4, 7]
        assert [r.index for r in led.query(action="release")] == [60]
        with pytest.raises(DuplicateEventError):
            led.append(event(5))
        report = led.check(log_key=log_key_for(A).verifier, writer_keys=[writer_key().verifier])
        assert report.size == 140
        led.export(tmp_path / "a.bundle")
    with Ledger.open(pg_url, origin=A, readonly=True) as ro:
        assert ro.size == 140
        assert ro.record(60).event.action == "release"
        with pytest.raises(LedgerError):
            ro.append(event(999))
    policy = Policy.simple(log_key_for(A).verifier, [writer_key().verifier])
    assert verify(tmp_path / "a.bundle", policy).size == 140


def test_witnesses_cosign_a_postgres_log(pg_url: str, tmp_path: Path) -> None:
    wkey = witness_key()
    witness = Witness.init(tmp_path / "w", wkey, [log_key_for(A).verifier])
    led = _ledger(pg_url)
    Cosigner(led, [LocalWitness(witness)], clock=lambda: 1_800_000_000)
    for k in range(3):
        led.append_many([event(k * 10 + j) for j in range(4)])
    led.close()
    with Ledger.open(pg_url, origin=A) as led:
        cp = led.latest_checkpoint()
        assert cp.checkpoint.size == 12
        assert cp.cosigned_by([wkey.verifier])
        assert led.check().cosignatures >= 1
        line = cosign_checkpoint(cp.checkpoint, witness_key("witness.example/w2"), 1_800_000_001)
        stored = led.add_cosignatures(12, [line], [witness_key("witness.example/w2").verifier])
        assert stored == 1


def test_logs_are_isolated_exports_and_keys(db: LedgerDatabase, tmp_path: Path) -> None:
    a = db.create(log_key=log_key_for(A), writers=[writer_key()])
    b = db.create(log_key=log_key_for(B), writers=[writer_key()])
    a.append_many([event(i) for i in range(10)])
    b.append_many([event(i, camera_id="cam-of-b") for i in range(3)])  # same event IDs: per log
    assert sorted(db.logs()) == [(A, 10), (B, 3)]
    b.export(tmp_path / "b.bundle")
    writers = [writer_key().verifier]
    report = verify(tmp_path / "b.bundle", Policy.simple(log_key_for(B).verifier, writers))
    assert (report.origin, report.size) == (B, 3)
    data = (tmp_path / "b.bundle").read_bytes()
    assert b"cam-of-b" in data
    assert A.encode() not in data
    assert b"cam-1" not in data
    # One owner's key does not verify another owner's log.
    with pytest.raises((VerificationError, UntrustedKeyError)):
        verify(tmp_path / "b.bundle", Policy.simple(log_key_for(A).verifier, writers))
    with pytest.raises(StorageError, match="log key"):
        db.open(B, log_key=log_key_for(A))
    assert a.check().size == 10
    assert b.check().size == 3


def test_one_process_shares_commits_across_logs(db: LedgerDatabase) -> None:
    ledgers = [
        db.create(log_key=log_key_for(f"vendor.example/ledger/many-{k}"), writers=[writer_key()])
        for k in range(12)
    ]
    errors: list[BaseException] = []

    def appender(t: int) -> None:
        try:
            for i in range(t, 240, 6):
                ledgers[i % 12].append(event(i))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=appender, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors
    for k, led in enumerate(ledgers):
        assert led.size == 20
        assert {r.event.event_id for r in led.iter_records()} == {
            f"ev-{i:08d}" for i in range(k, 240, 12)
        }
        led.check()
    # Fewer transactions than appends: appends to different logs shared them.
    assert db.commits < 240


def _writers(
    url: str, tags_and_origins: list[tuple[str, int, list[str]]]
) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tests.pg_writer", url, tag, str(count), *origins],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag, count, origins in tags_and_origins
    ]


def _acked(lines: str) -> set[tuple[str, str]]:
    return {tuple(line.split(" ", 1)) for line in lines.splitlines() if " " in line}  # type: ignore[misc]


def _read_lines(
    procs: list[subprocess.Popen[str]],
) -> tuple[list[list[str]], list[threading.Thread]]:
    """Read each writer's acknowledgements as they come, on a thread each."""
    seen: list[list[str]] = [[] for _ in procs]

    def read(k: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        seen[k].extend(proc.stdout)  # until the pipe closes, when the process ends

    readers = [threading.Thread(target=read, args=(k, p)) for k, p in enumerate(procs)]
    for th in readers:
        th.start()
    return seen, readers


def _wait_for(seen: list[list[str]], count: int) -> None:
    """Wait until every writer has acknowledged ``count`` appends (they are under way)."""
    deadline = time.monotonic() + 120
    while min(len(lines) for lines in seen) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert min(len(lines) for lines in seen) >= count


def _check_logs(url: str, acked: set[tuple[str, str]], origins: list[str], *, exact: bool) -> None:
    for origin in origins:
        with Ledger.open(url, origin=origin, readonly=True) as led:
            ids = [r.event.event_id for r in led.iter_records()]
            assert len(ids) == len(set(ids)), f"{origin}: a record is duplicated"
            want = {eid for o, eid in acked if o == origin}
            assert want <= set(ids), f"{origin}: acknowledged records lost: {want - set(ids)}"
            if exact:
                assert set(ids) == want
            led.check(log_key=log_key_for(origin).verifier)


def test_processes_append_to_one_log_and_to_several_at_once(pg_url: str) -> None:
    origins = [A, B, C]
    for origin in origins:
        _ledger(pg_url, origin).close()
    procs = _writers(
        pg_url,
        [("one", 120, [A]), ("two", 120, [A]), ("spread", 150, origins), ("more", 150, origins)],
    )
    acked: set[tuple[str, str]] = set()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        acked |= _acked(out)
    assert len(acked) == 540
    _check_logs(pg_url, acked, origins, exact=True)


def test_writers_killed_mid_stream_lose_no_acknowledged_record(pg_url: str) -> None:
    origins = [A, B]
    for origin in origins:
        _ledger(pg_url, origin).close()
    acked: set[tuple[str, str]] = set()
    for round_ in range(3):
        procs = _writers(pg_url, [(f"k{round_}-{n}", 100_000, origins) for n in range(2)])
        seen, readers = _read_lines(procs)
        _wait_for(seen, 20)
        time.sleep(0.1 * round_)  # a different instant each round
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
        for proc, th in zip(procs, readers, strict=True):
            proc.wait(timeout=60)
            th.join(timeout=60)
        for lines in seen:
            assert len(lines) >= 20
            acked |= _acked("".join(lines))
    assert acked
    _check_logs(pg_url, acked, origins, exact=False)
    with Ledger.open(pg_url, origin=A, log_key=log_key_for(A), writers=[writer_key()]) as led:
        led.append(event(10**7))
        led.check()


def test_the_server_stopped_mid_append_loses_no_acknowledged_record(
    postgres_server: PgServer,
) -> None:
    if not postgres_server.own:
        pytest.skip("needs a server this run started (DL_TEST_POSTGRES_URL is set)")
    url = postgres_server.new_database()
    _ledger(url, A).close()
    procs = _writers(url, [("crash", 600, [A])])
    seen, readers = _read_lines(procs)
    _wait_for(seen, 30)
    postgres_server.stop("immediate")  # a crash: no shutdown checkpoint, recovery on start
    time.sleep(0.5)
    postgres_server.start()
    assert procs[0].wait(timeout=300) == 0, procs[0].stderr.read() if procs[0].stderr else ""
    readers[0].join(timeout=60)
    acked = _acked("".join(seen[0]))
    assert len(acked) == 600  # every append went in, once, after retries
    _check_logs(url, acked, [A], exact=True)


def test_a_lost_connection_is_a_clear_error_and_a_retry_is_safe(
    postgres_server: PgServer,
) -> None:
    if not postgres_server.own:
        pytest.skip("needs a server this run started (DL_TEST_POSTGRES_URL is set)")
    url = postgres_server.new_database()
    led = _ledger(url, A)
    reader = Ledger.open(url, origin=A, readonly=True)
    try:
        led.append(event(0))
        assert reader.size == 1
        postgres_server.stop("immediate")
        with pytest.raises(StorageError, match="connection") as caught:
            led.append(event(1))
        assert "\n" not in str(caught.value)
        postgres_server.start()
        assert reader.size == 1  # a read on a connection the restart broke is redone
        for _ in range(50):
            try:
                led.append(event(1))
                break
            except StorageError:
                time.sleep(0.1)
        with pytest.raises(DuplicateEventError):
            led.append(event(1))
        assert led.size == 2
        led.check()
    finally:
        led.close()
        reader.close()


def test_an_old_process_gap_is_checkpointed_by_the_next_writer(pg_url: str) -> None:
    # Two handles append in turn: each re-reads the head the other moved.
    one = _ledger(pg_url, A)
    two = Ledger.open(pg_url, origin=A, log_key=log_key_for(A), writers=[writer_key()])
    try:
        for i in range(0, 20, 2):
            one.append(event(i))
            two.append(event(i + 1))
        assert one.size == two.size == 20
        assert one.latest_checkpoint().checkpoint.size == 20
        one.check()
    finally:
        one.close()
        two.close()


def test_bad_targets_are_named(pg_url: str) -> None:
    with pytest.raises(StorageError, match="needs the log's origin"):
        Ledger.open(pg_url)
    with pytest.raises(StorageError, match="no disclosure ledger schema"):
        Ledger.open(pg_url, origin=A)
    _ledger(pg_url).close()
    with pytest.raises(StorageError, match="no log"):
        Ledger.open(pg_url, origin="vendor.example/nobody")
    with pytest.raises(StorageError, match="already exists"):
        _ledger(pg_url)
    if os.environ.get("DL_TEST_POSTGRES_URL") is None:
        with pytest.raises(StorageError, match="connection"):
            Ledger.open("postgresql://nobody:pw@127.0.0.1:1/x", origin=A)


def test_the_release_gate_takes_a_receipt_from_a_postgres_log(pg_url: str, tmp_path: Path) -> None:
    now = int(time.time()) // 100 * 100 + 100
    police = records.Party(records.ActorKind.LAW_ENFORCEMENT, organization="Springfield PD")
    witnesses = [
        Witness.init(
            tmp_path / f"w{k}", witness_key(f"witness.example/w{k}"), [log_key_for(A).verifier]
        )
        for k in (1, 2)
    ]
    with _ledger(pg_url) as led:
        led.append_many([event(0), release_event(1)])
        outcomes = collect_cosignatures(led, [LocalWitness(w) for w in witnesses], now)
        assert [o.outcome for o in outcomes] == ["cosigned", "cosigned"]
        receipt = format_receipt(led.receipt(1))
        unlogged = format_receipt(led.receipt(0))
    policy = Policy.simple(
        log_key_for(A).verifier, [writer_key().verifier], [w.verifier for w in witnesses], 2
    )
    gate = ReleaseGate(policy, max_age_seconds=600)
    clip = hashlib.sha256(b"clip-1").digest()
    assert gate.check(receipt, clip, police, now + 1).index == 1
    with pytest.raises(NotAReleaseError):  # record 0 is a view by staff
        gate.check(unlogged, hashlib.sha256(b"clip-0").digest(), police, now + 1)


def test_an_invalid_event_appends_nothing(pg_url: str) -> None:
    with _ledger(pg_url) as led:
        led.append(event(0))
        with pytest.raises(ValidationError, match=r"\[1\]\.actor"):
            led.append_many([event(1), event(2, actor={"kind": "alien", "id": "x"})])
        with pytest.raises(DuplicateEventError):
            led.append_many([event(3), event(0)])
        assert led.size == 1
        assert [r.event.event_id for r in led.iter_records()] == ["ev-00000000"]
        led.append(event(3))  # the log goes on
        led.check()


def test_one_log_opened_twice_in_one_database_object(db: LedgerDatabase) -> None:
    first = db.create(log_key=log_key_for(A), writers=[writer_key()])
    second = db.open(A, log_key=log_key_for(A), writers=[writer_key()])
    errors: list[BaseException] = []

    def appender(led: Ledger, start: int) -> None:
        try:
            for i in range(start, start + 40):
                led.append(event(i))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [
        threading.Thread(target=appender, args=(led, k * 1000))
        for k, led in enumerate([first, second, first, second])
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors
    assert first.size == second.size == 160
    first.check()
