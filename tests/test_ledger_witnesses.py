"""The ledger side of witnessing: background cosigning that never blocks appends."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer
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
    led.close()  # waits for the witness thread to finish what is pending
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
    # The background round and cosign_now() callers ask the same witness; run
    # at once, their old sizes leapfrog and the witness refuses one of them.
    witness = Witness.init(tmp_path / "w", WITNESS_KEY, [log_key().verifier])
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    cosigner = Cosigner(led, [LocalWitness(witness)], clock=lambda: 1_800_000_000)
    outcomes = []
    lock = threading.Lock()

    def ask() -> None:
        for _ in range(15):
            got = cosigner.cosign_now()
            with lock:
                outcomes.extend(got)

    threads = [threading.Thread(target=ask) for _ in range(2)]
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
    led.close()  # waits for the witness thread, which gives up after TIMEOUT
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
        cosigner = Cosigner(led, [LocalWitness(witness)], clock=lambda: 1_800_000_000)
        cosigner.cosign_now()
        assert led.last_cosigned_size(WITNESS_KEY.verifier.vkey) == 3
        assert led.last_cosigned_size("someone-else") is None


def test_the_ledger_tells_its_subscribers_of_each_commit_and_of_closing(tmp_path: Path) -> None:
    seen: list[object] = []

    class Recorder:
        def committed(self, size: int) -> None:
            seen.append(size)

        def closing(self) -> None:
            seen.append("closing")

    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    led.subscribe(Recorder())
    led.append_many([event(0), event(1)])
    led.append(event(2))
    led.close()
    assert seen == [2, 3, "closing"]
    with pytest.raises(LedgerError, match="closed"):
        led.subscribe(Recorder())
    # A cosigner stops with its ledger, and refuses work afterwards.
    with Ledger.open(tmp_path / "l.ledger") as led:
        witness = Witness.init(tmp_path / "w", WITNESS_KEY, [log_key().verifier])
        cosigner = Cosigner(led, [LocalWitness(witness)], clock=lambda: 1_800_000_000)
        assert [o.ok for o in cosigner.cosign_now()] == [True]
    with pytest.raises(LedgerError, match="closed"):
        cosigner.cosign_now()
