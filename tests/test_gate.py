"""Receipts and the release gate: what verifies, and each reason the gate refuses.

Receipts come from a real ledger whose checkpoints two in-process witnesses
cosign through the ledger-side client; the gate must release footage only for
a fresh, witnessed release record that names that footage.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
import pytest

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    Receipt,
    format_receipt,
    open_checkpoint,
    parse_receipt,
    sign_checkpoint,
)
from disclosure_ledger._core.merkle import leaf_hash
from disclosure_ledger._core.notes import Signer, Verifier
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._verify.gate import (
    DEFAULT_MAX_RECORD_AGE_SECONDS,
    MAX_CLOCK_SKEW_SECONDS,
    FileGateState,
    FootageNotNamedError,
    MemoryGateState,
    NotAReleaseError,
    QuorumNotMetError,
    ReceiptAlreadyUsedError,
    RecipientMismatchError,
    RecordMismatchError,
    ReleaseGate,
    StaleCheckpointError,
    StaleRecordError,
    verify_record_receipt,
)
from disclosure_ledger._witness.client import LocalWitness, collect_cosignatures
from disclosure_ledger._witness.witness import Witness
from disclosure_ledger.errors import (
    BadSignatureError,
    LedgerError,
    MalformedError,
    ProofError,
    RootMismatchError,
    StorageError,
    UntrustedKeyError,
)

from .ledger_helpers import (
    event,
    log_key,
    new_ledger,
    release_event,
    witness_key,
    writer_key,
)

# Records are logged at the real time, so the gate's "now" is near it: the
# record window (15 minutes by default) is measured from that log time.
NOW = int(time.time()) // 100 * 100 + 100
POLICE = records.Party(records.ActorKind.LAW_ENFORCEMENT, organization="Springfield PD")
INSURER = records.Party(records.ActorKind.THIRD_PARTY, organization="Acme Insurance")


def clip_hash(i: int) -> bytes:
    return hashlib.sha256(f"clip-{i}".encode()).digest()


@dataclass
class World:
    ledger: Ledger
    witnesses: list[Witness]
    policy: Policy  # 2 of 2 witnesses, the writer trusted


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    led = new_ledger(tmp_path)
    ws = [
        Witness.init(tmp_path / f"w{k}", witness_key(f"witness.example/w{k}"), [log_key().verifier])
        for k in (1, 2)
    ]
    led.append_many(
        [
            event(0),
            release_event(1),
            event(
                2,
                action="share",
                recipient={"kind": "third_party", "organization": "Acme Insurance"},
                derived_from=clip_hash(9).hex(),
            ),
        ]
    )
    outcomes = collect_cosignatures(led, [LocalWitness(w) for w in ws], NOW)
    assert [o.outcome for o in outcomes] == ["cosigned", "cosigned"]
    policy = Policy.simple(
        log_key().verifier, [writer_key().verifier], [w.verifier for w in ws], threshold=2
    )
    yield World(led, ws, policy)
    led.close()


def test_a_witnessed_release_passes_the_gate(world: World) -> None:
    gate = ReleaseGate(world.policy, max_age_seconds=600)
    receipt = format_receipt(world.ledger.receipt(1))
    rec = gate.check(receipt, clip_hash(1), POLICE, NOW + 599)
    assert rec.index == 1
    assert rec.event.event_id == "ev-00000001"
    assert rec.event.action is records.Action.RELEASE
    assert rec.writer == writer_key().verifier
    assert rec.quorum_met
    assert {c.witness for c in rec.cosignatures} == {w.verifier for w in world.witnesses}
    assert rec.tree_size == 3
    assert rec.origin == log_key().name
    assert gate.freshness(rec, NOW + 599) == NOW
    summary = rec.to_json()
    assert summary["index"] == 1
    assert summary["event"]["event_id"] == "ev-00000001"
    assert len(summary["cosigned_by"]) == 2


def test_receipts_round_trip_and_verify_offline(world: World) -> None:
    receipt = world.ledger.receipt(1)
    text = format_receipt(receipt)
    assert parse_receipt(text) == receipt
    assert format_receipt(parse_receipt(text)) == text
    rec = verify_record_receipt(text.encode(), world.policy)
    assert rec.leaf == world.ledger.leaf(1)
    assert rec.envelope.seq == 1


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1
    return bytes(out)


def test_tampered_receipts_fail(world: World) -> None:
    r = world.ledger.receipt(1)
    cp_lines = r.checkpoint.split("\n")
    tampered = {
        "index": Receipt(0, r.proof, r.checkpoint, r.extra),
        "proof-hash": Receipt(r.index, (_flip(r.proof[0], 3), *r.proof[1:]), r.checkpoint, r.extra),
        "truncated-proof": Receipt(r.index, r.proof[:-1], r.checkpoint, r.extra),
        "leaf": Receipt(r.index, r.proof, r.checkpoint, _flip(r.extra or b"", 70)),
        "checkpoint-size": Receipt(
            r.index, r.proof, "\n".join([cp_lines[0], "4", *cp_lines[2:]]), r.extra
        ),
    }
    expected: dict[str, type[LedgerError]] = {
        "index": RootMismatchError,
        "proof-hash": RootMismatchError,
        "truncated-proof": ProofError,
        "leaf": RootMismatchError,
        "checkpoint-size": BadSignatureError,
    }
    for name, bad in tampered.items():
        with pytest.raises(expected[name]) as info:
            verify_record_receipt(bad, world.policy)
        # ProofError is RootMismatchError's base: pin the exact class.
        assert type(info.value) is expected[name], (name, info.value)
    with pytest.raises(MalformedError, match="no record"):
        verify_record_receipt(Receipt(r.index, r.proof, r.checkpoint), world.policy)
    with pytest.raises(MalformedError):
        verify_record_receipt("not a receipt", world.policy)


def test_untrusted_logs_and_writers(world: World) -> None:
    receipt = world.ledger.receipt(1)
    other = Signer("other.example/log", bytes(range(3, 35)))
    with pytest.raises(UntrustedKeyError, match="trusts no log"):
        verify_record_receipt(receipt, Policy.simple(other.verifier))
    impostor = Signer(log_key().name, bytes(range(4, 36)))
    with pytest.raises(UntrustedKeyError, match="not signed"):
        verify_record_receipt(receipt, Policy.simple(impostor.verifier))
    someone = Signer("someone.example/writer", bytes(range(6, 38)))
    with pytest.raises(UntrustedKeyError, match="not a trusted writer"):
        verify_record_receipt(receipt, Policy.simple(log_key().verifier, [someone.verifier]))
    # No writers in the policy: the log alone vouches, and the writer is not named.
    rec = verify_record_receipt(receipt, Policy.simple(log_key().verifier))
    assert rec.writer is None
    assert rec.quorum_met  # no quorum asked for


def test_a_leaf_at_the_wrong_index_is_refused() -> None:
    key = log_key()
    ev = records.event_from_json(release_event(1))
    env = records.make_envelope(key.name, key, 5, records.GENESIS_PREV, 0, records.encode_event(ev))
    note = sign_checkpoint(Checkpoint(key.name, 1, leaf_hash(env.leaf)), key)
    with pytest.raises(RecordMismatchError, match="sequence number 5"):
        verify_record_receipt(Receipt(0, (), note, env.leaf), Policy.simple(key.verifier))


def test_gate_refuses_without_the_quorum(tmp_path: Path, world: World) -> None:
    third = Witness.init(tmp_path / "w3", witness_key("witness.example/w3"), [log_key().verifier])
    policy = Policy.simple(
        log_key().verifier,
        [writer_key().verifier],
        [*(w.verifier for w in world.witnesses), third.verifier],
        threshold=3,
    )
    receipt = world.ledger.receipt(1)
    with pytest.raises(QuorumNotMetError, match="3 of 3"):
        ReleaseGate(policy).check(receipt, clip_hash(1), POLICE, NOW)
    with pytest.raises(QuorumNotMetError):
        verify_record_receipt(receipt, policy)
    assert not verify_record_receipt(receipt, policy, require_quorum=False).quorum_met
    collect_cosignatures(world.ledger, [LocalWitness(third)], NOW)
    ReleaseGate(policy).check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW)


def _receipt_for(world: World, ev: dict[str, object]) -> str:
    """Append ``ev``, have both witnesses cosign, and return the new record's receipt."""
    (receipt,) = world.ledger.append_many([ev])
    outcomes = collect_cosignatures(world.ledger, [LocalWitness(w) for w in world.witnesses], NOW)
    assert all(o.ok for o in outcomes), outcomes
    return format_receipt(world.ledger.receipt(receipt.index))


def test_gate_refuses_a_record_that_is_not_a_release(world: World) -> None:
    gate = ReleaseGate(world.policy)
    staff = records.Party(records.ActorKind.VENDOR_EMPLOYEE, "emp-0", "Vendor Inc")
    # Vendor staff viewing footage, with no outside recipient: in the report, never a release.
    with pytest.raises(NotAReleaseError, match="'view' by vendor_employee"):
        gate.check(world.ledger.receipt(0), clip_hash(0), staff, NOW)
    owner = {"kind": "owner", "id": "owner-42"}
    the_owner = records.Party(records.ActorKind.OWNER, "owner-42")
    police = {"kind": "law_enforcement", "organization": "Springfield PD"}
    cases = [
        (event(10, action="download", actor=owner), the_owner),  # the owner's own download
        (event(11, action="download"), staff),  # vendor staff downloading, no recipient
        (event(12, action="share", recipient=owner), the_owner),  # staff handing it to the owner
        # The police deleting footage: an access to report, not a hand-over.
        (event(13, action="delete", recipient=police), POLICE),
    ]
    for ev, party in cases:
        receipt = _receipt_for(world, ev)
        with pytest.raises(NotAReleaseError, match="outside owner and vendor"):
            gate.check(receipt, clip_hash(int(str(ev["event_id"])[-2:])), party, NOW)
    # A police live stream is a disclosure in the report, and so it may pass the gate.
    stream = event(14, action="stream", actor={"kind": "law_enforcement", "id": "officer-3"})
    receipt = _receipt_for(world, stream)
    officer = records.Party(records.ActorKind.LAW_ENFORCEMENT, "officer-3")
    rec = gate.check(receipt, clip_hash(14), officer, NOW)
    assert records.is_disclosure(rec.event)


def test_gate_binds_the_release_to_its_recipient(world: World) -> None:
    gate = ReleaseGate(world.policy)
    receipt = world.ledger.receipt(1)
    for other in (
        msgspec.structs.replace(POLICE, organization="Shelbyville PD"),
        msgspec.structs.replace(POLICE, kind=records.ActorKind.THIRD_PARTY),
        msgspec.structs.replace(POLICE, id="officer-9"),  # the record names no officer
    ):
        with pytest.raises(RecipientMismatchError, match="releases footage to law_enforcement"):
            gate.check(receipt, clip_hash(1), other, NOW)
    assert gate.check(receipt, clip_hash(1), POLICE, NOW).index == 1
    with pytest.raises(MalformedError, match="recipient must be a Party"):
        gate.check(receipt, clip_hash(1), {"kind": "law_enforcement"}, NOW)  # type: ignore[arg-type]


def test_an_old_release_record_does_not_open_the_gate_under_a_fresh_checkpoint(
    world: World,
) -> None:
    # The attack: a release logged long ago, under a checkpoint cosigned just now.
    logged = verify_record_receipt(world.ledger.receipt(1), world.policy).logged_at
    later = logged + 3600
    world.ledger.append(event(3))
    collect_cosignatures(world.ledger, [LocalWitness(w) for w in world.witnesses], later)
    gate = ReleaseGate(world.policy, max_age_seconds=600)
    receipt = world.ledger.receipt(1)
    with pytest.raises(StaleRecordError, match="was logged 3600 s ago") as info:
        gate.check(receipt, clip_hash(1), POLICE, later)
    assert info.value.age == 3600
    # The window is the gate's to set, and its edge is exact.
    wide = ReleaseGate(world.policy, max_age_seconds=600, max_record_age_seconds=3600)
    assert wide.check(receipt, clip_hash(1), POLICE, later).tree_size == 4
    with pytest.raises(StaleRecordError):
        wide.check(receipt, clip_hash(1), POLICE, later + 1)
    assert DEFAULT_MAX_RECORD_AGE_SECONDS == 900


def test_a_record_dated_after_now_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # A log whose clock runs ahead dates the record 1000 s after the gate's now.
    ahead = (NOW + 1000) * 10**9
    with monkeypatch.context() as m:
        m.setattr(time, "time_ns", lambda: ahead)
        receipt = _receipt_for(world, release_event(20))
    gate = ReleaseGate(world.policy)
    with pytest.raises(StaleRecordError, match="1000 s after now") as info:
        gate.check(receipt, clip_hash(20), POLICE, NOW)
    assert info.value.age == -1000
    # Within the allowed clock skew it passes.
    assert gate.check(receipt, clip_hash(20), POLICE, NOW + 1000 - MAX_CLOCK_SKEW_SECONDS)


def test_a_receipt_opens_a_gate_with_state_once(tmp_path: Path, world: World) -> None:
    receipt = world.ledger.receipt(1)
    for make_state in (MemoryGateState, lambda: FileGateState(tmp_path / "gate.state")):
        state = make_state()
        gate = ReleaseGate(world.policy, state=state)
        # A refused attempt does not use the receipt up.
        with pytest.raises(FootageNotNamedError):
            gate.check(receipt, clip_hash(2), POLICE, NOW)
        with pytest.raises(RecipientMismatchError):
            gate.check(
                receipt, clip_hash(1), msgspec.structs.replace(POLICE, organization="x"), NOW
            )
        assert gate.check(receipt, clip_hash(1), POLICE, NOW).index == 1
        with pytest.raises(ReceiptAlreadyUsedError, match=r"record 1 of .* already been honoured"):
            gate.check(receipt, clip_hash(1), POLICE, NOW + 1)
        # Other records are not affected.
        assert gate.check(world.ledger.receipt(2), clip_hash(2), INSURER, NOW).index == 2
    # Two gates (two processes, say) sharing one state file: the second is refused.
    again = ReleaseGate(world.policy, state=FileGateState(tmp_path / "gate.state"))
    with pytest.raises(ReceiptAlreadyUsedError):
        again.check(receipt, clip_hash(1), POLICE, NOW)
    # Without state the gate remembers nothing (it then relies on the window alone).
    assert ReleaseGate(world.policy).check(receipt, clip_hash(1), POLICE, NOW).index == 1


def test_a_file_state_allows_exactly_one_of_many_concurrent_claims(tmp_path: Path) -> None:
    path = tmp_path / "gate.state"
    FileGateState(path)
    script = (
        "import sys\n"
        "from disclosure_ledger._verify.gate import FileGateState, ReceiptAlreadyUsedError\n"
        "try:\n"
        "    FileGateState(sys.argv[1]).claim('o', 7, bytes(32), 1)\n"
        "except ReceiptAlreadyUsedError:\n"
        "    sys.exit(1)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path)]) for _ in range(6)]
    codes = sorted(p.wait(timeout=60) for p in procs)
    assert codes == [0, 1, 1, 1, 1, 1]


def test_a_gate_state_others_can_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gate.state"
    FileGateState(path)
    path.chmod(0o664)
    with pytest.raises(StorageError, match="chmod 600"):
        FileGateState(path)
    path.chmod(0o600)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(StorageError, match="chmod 700"):
        FileGateState(open_dir / "gate.state")
    (tmp_path / "junk").write_bytes(b"not a database, not at all" * 100)
    (tmp_path / "junk").chmod(0o600)
    with pytest.raises(StorageError, match="not a gate state"):
        FileGateState(tmp_path / "junk")


def test_gate_refuses_footage_the_record_does_not_name(world: World) -> None:
    gate = ReleaseGate(world.policy)
    with pytest.raises(FootageNotNamedError, match="does not name footage"):
        gate.check(world.ledger.receipt(1), clip_hash(2), POLICE, NOW)
    # The share of a derived clip releases that clip, not the original.
    assert gate.check(world.ledger.receipt(2), clip_hash(2), INSURER, NOW).index == 2
    with pytest.raises(FootageNotNamedError, match="original"):
        gate.check(world.ledger.receipt(2), clip_hash(9), INSURER, NOW)


def test_gate_refuses_a_stale_checkpoint(world: World) -> None:
    # The record's own window is set wide here: this test is about the checkpoint.
    gate = ReleaseGate(world.policy, max_age_seconds=600, max_record_age_seconds=3600)
    with pytest.raises(StaleCheckpointError) as info:
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW + 601)
    assert (info.value.freshness, info.value.age) == (NOW, 601)
    # A receipt under a newer checkpoint, cosigned later, is fresh again. The
    # quorum (2 of 2) is met only from the older of the two cosignatures on,
    # so that one sets the time.
    world.ledger.append(event(3))
    ws = world.witnesses
    collect_cosignatures(world.ledger, [LocalWitness(ws[0])], NOW + 1000)
    collect_cosignatures(world.ledger, [LocalWitness(ws[1])], NOW + 900)
    rec = gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW + 1500)
    assert rec.tree_size == 4
    assert gate.freshness(rec, NOW + 1500) == NOW + 900
    with pytest.raises(StaleCheckpointError) as info:
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW + 1501)
    assert (info.value.freshness, info.value.age) == (NOW + 900, 601)


def _third_witness_cosigns_at(tmp_path: Path, world: World, when: int) -> Witness:
    third = Witness.init(tmp_path / "w3", witness_key("witness.example/w3"), [log_key().verifier])
    (outcome,) = collect_cosignatures(world.ledger, [LocalWitness(third)], when)
    assert outcome.outcome == "cosigned", outcome
    return third


def test_a_future_dated_cosignature_does_not_keep_a_receipt_fresh(
    tmp_path: Path, world: World
) -> None:
    # w1 and w2 cosigned at NOW; w3's clock runs far ahead.
    third = _third_witness_cosigns_at(tmp_path, world, NOW + 10**9)
    witnesses = [*(w.verifier for w in world.witnesses), third.verifier]
    any_one = Policy.simple(log_key().verifier, [writer_key().verifier], witnesses, threshold=1)
    gate = ReleaseGate(any_one, max_age_seconds=600)
    rec = verify_record_receipt(world.ledger.receipt(1), any_one)
    assert {c.timestamp for c in rec.cosignatures} == {NOW, NOW + 10**9}
    assert gate.freshness(rec, NOW + 601) == NOW
    with pytest.raises(StaleCheckpointError) as info:
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW + 601)
    assert (info.value.freshness, info.value.age) == (NOW, 601)
    # Within the allowed clock skew a cosignature counts; just beyond it, not.
    assert gate.freshness(rec, NOW + 10**9 - MAX_CLOCK_SKEW_SECONDS) == NOW + 10**9
    assert gate.freshness(rec, NOW + 10**9 - MAX_CLOCK_SKEW_SECONDS - 1) == NOW
    # When only the future witness can meet the quorum, the checkpoint has no time.
    only_third = Policy.simple(log_key().verifier, [writer_key().verifier], [third.verifier])
    gate = ReleaseGate(only_third, max_age_seconds=600)
    assert gate.freshness(verify_record_receipt(world.ledger.receipt(1), only_third), NOW) is None
    with pytest.raises(StaleCheckpointError, match="no witness quorum dated") as info:
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW)
    assert (info.value.freshness, info.value.age) == (None, None)


def test_one_witness_with_a_fast_clock_cannot_keep_a_receipt_fresh(
    tmp_path: Path, world: World
) -> None:
    # 2 of 3: w1 and w2 cosigned at NOW, w3 (clock far ahead) at NOW + 10000.
    third = _third_witness_cosigns_at(tmp_path, world, NOW + 10_000)
    policy = Policy.simple(
        log_key().verifier,
        [writer_key().verifier],
        [*(w.verifier for w in world.witnesses), third.verifier],
        threshold=2,
    )
    gate = ReleaseGate(policy, max_age_seconds=600)
    rec = verify_record_receipt(world.ledger.receipt(1), policy)
    assert len(rec.cosignatures) == 3
    # Seen from w3's (future) time, the quorum still dates from NOW.
    assert gate.freshness(rec, NOW + 10_000) == NOW
    with pytest.raises(StaleCheckpointError) as info:
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW + 10_000)
    assert (info.value.freshness, info.value.age) == (NOW, 10_000)
    # Seen from now, w3's cosignature is in the future and is ignored.
    assert gate.freshness(rec, NOW + 601) == NOW
    with pytest.raises(StaleCheckpointError):
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW + 601)
    gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, NOW + 600)


def test_without_a_quorum_freshness_is_the_logged_time(world: World) -> None:
    policy = Policy.simple(log_key().verifier, [writer_key().verifier])
    gate = ReleaseGate(policy, max_age_seconds=60)
    rec = verify_record_receipt(world.ledger.receipt(1), policy)
    assert gate.freshness(rec, rec.logged_at) == rec.logged_at
    gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, rec.logged_at + 60)
    with pytest.raises(StaleCheckpointError):
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, rec.logged_at + 61)
    # A logged_at further in the future than the allowed skew gives no time either.
    gate.check(
        world.ledger.receipt(1), clip_hash(1), POLICE, rec.logged_at - MAX_CLOCK_SKEW_SECONDS
    )
    too_early = rec.logged_at - MAX_CLOCK_SKEW_SECONDS - 1
    assert gate.freshness(rec, too_early) is None
    with pytest.raises(StaleCheckpointError, match="no witness quorum dated"):
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, too_early)


def test_without_a_quorum_any_named_witness_sets_the_time(world: World) -> None:
    # The policy names both witnesses but asks for no quorum.
    base = world.policy
    policy = Policy(base.logs, base.writers, base.witnesses)
    gate = ReleaseGate(policy, max_age_seconds=60)
    rec = verify_record_receipt(world.ledger.receipt(1), policy)
    assert rec.logged_at != NOW
    assert gate.freshness(rec, NOW) == NOW


def test_gate_refuses_a_record_with_a_bad_writer_signature() -> None:
    key, writer = log_key(), writer_key()
    ev = records.event_from_json(release_event(1))
    good = records.make_envelope(
        key.name, writer, 0, records.GENESIS_PREV, NOW * 10**6, records.encode_event(ev)
    )
    bad = replace(good, signature=_flip(good.signature, 0))
    policy = Policy.simple(key.verifier, [writer.verifier])

    def receipt_for(env: records.Envelope) -> Receipt:
        note = sign_checkpoint(Checkpoint(key.name, 1, leaf_hash(env.leaf)), key)
        return Receipt(0, (), note, env.leaf)

    assert verify_record_receipt(receipt_for(good), policy).writer == writer.verifier
    receipt = receipt_for(bad)
    with pytest.raises(BadSignatureError):
        verify_record_receipt(receipt, policy)
    with pytest.raises(BadSignatureError):
        ReleaseGate(policy).check(receipt, clip_hash(1), POLICE, NOW)


def test_gate_arguments(world: World) -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(MalformedError):
            ReleaseGate(world.policy, max_age_seconds=bad)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="name the log"):
        ReleaseGate(Policy())
    gate = ReleaseGate(world.policy)
    with pytest.raises(MalformedError, match="32-byte"):
        gate.check(world.ledger.receipt(1), clip_hash(1).hex().encode(), POLICE, NOW)
    with pytest.raises(MalformedError, match="whole seconds"):
        gate.check(world.ledger.receipt(1), clip_hash(1), POLICE, float(NOW))  # type: ignore[arg-type]
    assert "2 of 2" in repr(gate)


def _relabelled(note: str, witness: Verifier, name: str) -> tuple[str, Verifier]:
    """The note with ``witness``'s cosignature line copied under ``name`` (and its key ID)."""
    twin = Verifier(name, witness.key_type, witness.public_key)
    prefix = f"\u2014 {witness.name} "
    (line,) = [ln for ln in note.splitlines() if ln.startswith(prefix)]
    blob = base64.b64decode(line[len(prefix) :])
    forged = twin.key_id.to_bytes(4, "big") + blob[4:]
    return note + f"\u2014 {name} {base64.b64encode(forged).decode()}\n", twin


def test_one_cosignature_under_two_names_does_not_meet_a_quorum_of_two(world: World) -> None:
    w1, w2 = (w.verifier for w in world.witnesses)
    r = world.ledger.receipt(1)
    # Keep the log's and w1's lines only, then add w1's line again under another name.
    kept = [
        ln
        for ln in r.checkpoint.splitlines(keepends=True)
        if not ln.startswith(f"\u2014 {w2.name} ")
    ]
    note, twin = _relabelled("".join(kept), w1, "witness.example/w1-twin")
    opened = open_checkpoint(note, log_key().verifier, [w1, twin])
    assert len(opened.cosignatures) == 2  # both lines verify: the name is not signed
    assert [c.witness for c in opened.cosigned_by([w1, twin])] == [w1]
    # A policy that would count them as two witnesses is refused outright...
    with pytest.raises(MalformedError, match="same public key"):
        Policy.simple(log_key().verifier, [writer_key().verifier], [w1, twin], threshold=2)
    # ...and the honest 2-of-2 policy counts one key once.
    assert not world.policy.quorum_met(c.witness for c in opened.cosignatures)
    forged = Receipt(r.index, r.proof, note, r.extra)
    with pytest.raises(QuorumNotMetError):
        ReleaseGate(world.policy).check(forged, clip_hash(1), POLICE, NOW)
