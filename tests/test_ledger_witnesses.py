"""The ledger side of witnessing: a Cosigner subscribed to commits, never blocking appends."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import pytest

from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer, Verifier
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._witness.client import OUTCOME_UNAVAILABLE, CommandWitness, LocalWitness
from disclosure_ledger._witness.cosigner import Cosigner
from disclosure_ledger._witness.witness import Witness
from disclosure_ledger.errors import LedgerError

from .ledger_helpers import event, log_key, writer_key

TIMEOUT = 3.0
WITNESS_KEY = Signer("witness.example/owner-app", bytes(range(2, 34)), KEY_TYPE_COSIGNATURE)


def test_attached_witness_cosigns_new_checkpoints(tmp_path: Path) -> None:
    witness = Witness.init(tmp_path / "w", WITNESS_KEY, [log_key().verifier])
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    Cosigner(led, [LocalWitness(witness)], clock=lambda: 1_800_000_000)
    for k in range(5):
        led.append_many([event(k * 10 + j) for j in range(3)])
    led.close()  # closes the cosigner, which finishes the round pending
    with Ledger.open(tmp_path / "l.ledger") as led:
        cp = led.latest_checkpoint()
        assert cp.checkpoint.size == 15
        cosigs = cp.cosigned_by([WITNESS_KEY.verifier])
        assert cosigs
        assert cosigs[0].timestamp == 1_800_000_000
        policy = Policy.simple(log_key().verifier, [writer_key().verifier], [WITNESS_KEY.verifier])
        assert policy.quorum_met(c.witness for c in cp.cosignatures)
        assert any(outcome == "cosigned" for _, _, outcome, _ in led.witness_events())


def test_cosigning_rounds_do_not_race_each_other(tmp_path: Path) -> None:
    # The background thread and cosign_now() callers ask the same witness; run
    # at once, their old sizes leapfrog and the witness refuses one of them.
    witness = Witness.init(tmp_path / "w", WITNESS_KEY, [log_key().verifier])
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    cos = Cosigner(led, [LocalWitness(witness)], clock=lambda: 1_800_000_000)
    outcomes = []
    lock = threading.Lock()

    def cosigner() -> None:
        for _ in range(15):
            got = cos.cosign_now()
            with lock:
                outcomes.extend(got)

    threads = [threading.Thread(target=cosigner) for _ in range(2)]
    for th in threads:
        th.start()
    for k in range(60):
        led.append(event(k))
    for th in threads:
        th.join()
    led.close()
    assert outcomes
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
    with Ledger.open(tmp_path / "l.ledger") as led:
        events = led.witness_events()
    assert events
    assert {outcome for _, _, outcome, _ in events} == {"cosigned"}, events[:3]


def test_broken_witness_is_recorded_and_never_blocks_appends(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    # A witness that hangs: each request waits out the whole timeout. Appends
    # that waited for it would take at least TIMEOUT seconds each.
    hung = CommandWitness(
        [sys.executable, "-c", "import time; time.sleep(30)"], WITNESS_KEY.verifier, timeout=TIMEOUT
    )
    Cosigner(led, [hung])
    for batch in range(3):
        start = time.monotonic()
        receipts = led.append_many([event(batch * 10 + i) for i in range(4)])
        elapsed = time.monotonic() - start
        assert elapsed < TIMEOUT / 4, f"append_many took {elapsed:.2f} s"
        assert [r.index for r in receipts] == list(range(batch * 4, batch * 4 + 4))
        for r in receipts:
            assert r.checkpoint.checkpoint.size == batch * 4 + 4
            assert r.checkpoint.cosignatures == ()
    led.close()  # waits for the cosigner's thread, which gives up after TIMEOUT
    with Ledger.open(tmp_path / "l.ledger") as led:
        assert led.size == 12
        assert led.latest_checkpoint().cosignatures == ()
        events = led.witness_events()
        assert events
        for _, witness, outcome, detail in events:
            assert (witness, outcome) == (hung.name, OUTCOME_UNAVAILABLE)
            assert "timed out" in detail
        led.check()


def test_last_cosigned_size_comes_from_stored_cosignatures(tmp_path: Path) -> None:
    witness = Witness.init(tmp_path / "w", WITNESS_KEY, [log_key().verifier])
    with Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()]) as led:
        assert led.last_cosigned_size(WITNESS_KEY.verifier.vkey) is None
        led.append_many([event(i) for i in range(3)])
        with Cosigner(led, [LocalWitness(witness)], clock=lambda: 1_800_000_000) as cos:
            cos.cosign_now()
        assert led.last_cosigned_size(WITNESS_KEY.verifier.vkey) == 3
        assert led.last_cosigned_size("someone-else") is None


# -- the commit-subscriber API -----------------------------------------------------------


def test_subscribers_hear_each_durable_commit_outside_the_write_lock(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    seen: list[tuple[int, int]] = []

    def on_commit(size: int) -> None:
        # Durable: another connection sees it. Outside the write lock: that
        # connection can commit now (it would wait out the busy timeout and
        # fail if the committer still held the lock).
        with Ledger.open(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()]) as other:
            seen.append((size, other.size))
            if size == 2:
                other.append(event(900))

    unsubscribe = led.subscribe(on_commit)
    led.append_many([event(0), event(1)])
    led.append(event(2))
    unsubscribe()
    led.append(event(3))
    led.close()
    assert seen == [(2, 2), (4, 4)]  # the second commit follows the other connection's
    with Ledger.open(tmp_path / "l.ledger") as again:
        assert again.size == 5
        again.check()


def test_a_failing_subscriber_never_fails_an_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def broken(size: int) -> None:
        calls.append(size)
        raise RuntimeError("subscriber bug")

    def broken_close() -> None:
        raise RuntimeError("close bug")

    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    led.subscribe(broken, on_close=broken_close)
    after: list[int] = []
    led.subscribe(after.append)
    with caplog.at_level(logging.ERROR, logger="disclosure_ledger._log.ledger"):
        receipts = led.append_many([event(i) for i in range(3)])
        led.append(event(3))
        led.close()
    assert [r.index for r in receipts] == [0, 1, 2]
    assert calls == after == [3, 4]  # the others still hear every commit
    assert "subscriber bug" in caplog.text
    assert "close bug" in caplog.text
    with Ledger.open(tmp_path / "l.ledger") as again:
        assert again.size == 4


def test_on_close_runs_once_after_the_last_commit_and_before_the_file_closes(
    tmp_path: Path,
) -> None:
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    sizes: list[int] = []
    closed: list[int] = []
    led.subscribe(sizes.append, on_close=lambda: closed.append(led.size))
    future = led.submit([event(i) for i in range(4)])
    led.close()
    led.close()
    assert future.result()[-1].index == 3
    assert sizes == [4]
    assert closed == [4]  # once, and the ledger was still readable
    with pytest.raises(LedgerError, match="closed"):
        led.subscribe(sizes.append)


class _Overlap:
    """A witness endpoint that records how many rounds are inside ``submit`` at once.

    Each call waits (up to a short timeout) for a second one to arrive, so two
    rounds that are not serialised are caught overlapping every time.
    """

    def __init__(self, inner: LocalWitness) -> None:
        self.inner = inner
        self.most = 0
        self._inside = 0
        self._lock = threading.Lock()
        self._two = threading.Event()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def verifier(self) -> Verifier:
        return self.inner.verifier

    def known_size(self, ledger: Ledger) -> int | None:
        return self.inner.known_size(ledger)

    def submit(self, body: str, now: int) -> str:
        with self._lock:
            self._inside += 1
            self.most = max(self.most, self._inside)
            if self._inside == 2:
                self._two.set()
        self._two.wait(0.5)
        try:
            return self.inner.submit(body, now)
        finally:
            with self._lock:
                self._inside -= 1


def test_two_cosigners_on_one_ledger_take_turns(tmp_path: Path) -> None:
    # The round lock is the ledger's, not each Cosigner's: two cosigners asking
    # the same witness at once would leapfrog its old sizes and be refused.
    witness = Witness.init(tmp_path / "w", WITNESS_KEY, [log_key().verifier])
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    led.append_many([event(k) for k in range(3)])
    endpoint = _Overlap(LocalWitness(witness))
    cosigners = [Cosigner(led, [endpoint], clock=lambda: 1_800_000_000) for _ in range(2)]
    outcomes = []
    start = threading.Barrier(2)

    def ask(cos: Cosigner) -> None:
        start.wait()
        outcomes.extend(cos.cosign_now())

    threads = [threading.Thread(target=ask, args=(c,)) for c in cosigners]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    led.close()
    assert endpoint.most == 1
    assert len(outcomes) == 2
    assert all(o.ok for o in outcomes), outcomes


def test_a_closed_cosigner_refuses_and_stops_hearing_commits(tmp_path: Path) -> None:
    witness = Witness.init(tmp_path / "w", WITNESS_KEY, [log_key().verifier])
    with Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()]) as led:
        cos = Cosigner(led, [LocalWitness(witness)], clock=lambda: 1_800_000_000)
        assert cos.witnesses[0].name == WITNESS_KEY.verifier.vkey
        led.append(event(0))
        cos.close()
        cos.close()
        with pytest.raises(LedgerError, match="cosigner is closed"):
            cos.cosign_now()
        events_before = led.witness_events()
        led.append(event(1))
        assert led.last_cosigned_size(WITNESS_KEY.verifier.vkey) == 1
        assert led.witness_events() == events_before
        assert not cos._thread.is_alive()


def test_the_ledger_module_imports_no_witnessing() -> None:
    # ledger.py <-> witness_client.py was an import cycle; witnessing now
    # subscribes to the ledger from above it.
    import ast

    import disclosure_ledger._log.ledger as ledger_module

    tree = ast.parse(Path(ledger_module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    for name in ("witness_client", "cosigner", "witness", "pipeline"):
        assert name not in imported
    assert not hasattr(Ledger, "attach_witnesses")
    assert not hasattr(Ledger, "cosign_now")
