"""The ledger side of witnessing: background cosigning that never blocks appends."""

from __future__ import annotations

import sys
from pathlib import Path

from disclosure_ledger.ledger import Ledger
from disclosure_ledger.notes import KEY_TYPE_COSIGNATURE, Signer
from disclosure_ledger.policy import Policy
from disclosure_ledger.witness import Witness
from disclosure_ledger.witness_client import CommandWitness, LocalWitness

from .ledger_helpers import event, log_key, writer_key

WITNESS_KEY = Signer("witness.example/owner-app", bytes(range(2, 34)), KEY_TYPE_COSIGNATURE)


def test_attached_witness_cosigns_new_checkpoints(tmp_path: Path) -> None:
    witness = Witness.init(tmp_path / "w", WITNESS_KEY, [log_key().verifier])
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    led.attach_witnesses([LocalWitness(witness)], clock=lambda: 1_800_000_000)
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


def test_broken_witness_is_recorded_and_never_blocks_appends(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path / "l.ledger", log_key=log_key(), writers=[writer_key()])
    down = CommandWitness(
        [sys.executable, "-c", "import sys; sys.exit(3)"], WITNESS_KEY.verifier, timeout=5
    )
    led.attach_witnesses([down])
    receipts = led.append_many([event(i) for i in range(4)])
    assert receipts[-1].index == 3
    outcomes = led.cosign_now()
    assert [o.ok for o in outcomes] == [False]
    led.close()
    with Ledger.open(tmp_path / "l.ledger") as led:
        assert led.size == 4
        assert led.latest_checkpoint().cosignatures == ()
        events = led.witness_events()
        assert events
        assert all(outcome != "cosigned" for _, _, outcome, _ in events)
        led.check()
