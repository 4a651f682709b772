"""ML-DSA-44 cosignatures (C2SP tlog-cosignature v1.1, ``subtree/v1``, key type 0x06).

The spec publishes no ML-DSA example with keys, so these tests pin the signed
message byte by byte as the spec's struct gives it, check signatures with
``cryptography`` directly over a message built here independently, and show
every tampered case failing: another root, size, origin or cosigner name, a
flipped signature bit, a truncated signature.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PublicKey

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    cosign_checkpoint,
    format_checkpoint,
    format_receipt,
    open_checkpoint,
    sign_checkpoint,
)
from disclosure_ledger._core.notes import (
    KEY_TYPE_MLDSA44_COSIGNATURE,
    Signer,
    Verifier,
    parse_signature_line,
    parse_signer,
    parse_verifier,
    subtree_message,
)
from disclosure_ledger._core.policy import Policy, format_policy, parse_policy
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._verify.gate import QuorumNotMetError, ReleaseGate
from disclosure_ledger._verify.verifier import verify
from disclosure_ledger._witness.client import HttpWitness, LocalWitness, collect_cosignatures
from disclosure_ledger._witness.server import WitnessServer
from disclosure_ledger._witness.witness import Witness, WitnessConfig, format_config, parse_config
from disclosure_ledger.errors import BadSignatureError, KeyFormatError, MalformedError
from disclosure_ledger.keys import read_signer_file

from .cli_helpers import assert_one_line_error, run
from .conftest import flip_bit
from .ledger_helpers import event, log_key, new_ledger, release_event, witness_key, writer_key

NOW = 1_800_000_000
ROOT = hashlib.sha256(b"root").digest()


def mldsa_key(name: str = "witness.example/pq") -> Signer:
    return Signer(name, hashlib.sha256(name.encode()).digest(), KEY_TYPE_MLDSA44_COSIGNATURE)


def test_subtree_message_is_the_specs_struct() -> None:
    msg = subtree_message("w.example/a", 7, "log.example/x", 0, 10, ROOT)
    expected = (
        b"subtree/v1\n\x00"
        + bytes([11])
        + b"w.example/a"
        + (7).to_bytes(8, "big")
        + bytes([13])
        + b"log.example/x"
        + (0).to_bytes(8, "big")
        + (10).to_bytes(8, "big")
        + ROOT
    )
    assert msg == expected
    assert len(b"subtree/v1\n\x00") == 12
    with pytest.raises(MalformedError, match="timestamp 0"):
        subtree_message("w", 7, "l", 3, 10, ROOT)
    with pytest.raises(MalformedError, match="1 to 255"):
        subtree_message("", 7, "l", 0, 10, ROOT)
    with pytest.raises(MalformedError, match="1 to 255"):
        subtree_message("w", 7, "l" * 256, 0, 10, ROOT)
    with pytest.raises(MalformedError, match="32 bytes"):
        subtree_message("w", 7, "l", 0, 10, ROOT[:31])
    with pytest.raises(MalformedError, match="start <= end"):
        subtree_message("w", 0, "l", 11, 10, ROOT)


def test_key_id_and_key_strings() -> None:
    key = mldsa_key()
    pub = key.verifier.public_key
    assert len(pub) == 1312
    want = hashlib.sha256(b"witness.example/pq\n\x06" + pub).digest()[:4]
    assert key.key_id == int.from_bytes(want, "big")
    assert parse_verifier(key.verifier.vkey) == key.verifier
    again = parse_signer(key.private_key_string())
    assert again.verifier == key.verifier
    with pytest.raises(KeyFormatError, match="1312 bytes"):
        Verifier("w.example/x", KEY_TYPE_MLDSA44_COSIGNATURE, bytes(32))
    # An Ed25519-sized key under type 0x06 in a key string is refused.
    short = witness_key().verifier.vkey.split("+")
    with pytest.raises(KeyFormatError):
        parse_verifier(f"{short[0]}+{short[1]}+BgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")


def _cosigned(key: Signer, checkpoint: Checkpoint) -> tuple[str, str]:
    note = sign_checkpoint(checkpoint, log_key())
    line = cosign_checkpoint(checkpoint, key, NOW)
    return note, line


def test_cosignature_round_trip_and_independent_check() -> None:
    key = mldsa_key()
    cp = Checkpoint(log_key().name, 10, ROOT)
    note, line = _cosigned(key, cp)
    signed = open_checkpoint(note + line, log_key().verifier, [key.verifier])
    [cosig] = signed.cosignatures
    assert (cosig.witness, cosig.timestamp) == (key.verifier, NOW)
    sig = parse_signature_line(line)
    assert (sig.name, sig.key_id) == (key.name, key.key_id)
    assert len(sig.signature) == 8 + 2420
    assert struct.unpack(">Q", sig.signature[:8])[0] == NOW
    # The signature is ML-DSA-44 over the struct, built here without the library.
    message = (
        b"subtree/v1\n\x00"
        + bytes([len(key.name)])
        + key.name.encode()
        + NOW.to_bytes(8, "big")
        + bytes([len(cp.origin)])
        + cp.origin.encode()
        + bytes(8)
        + (10).to_bytes(8, "big")
        + ROOT
    )
    MLDSA44PublicKey.from_public_bytes(key.verifier.public_key).verify(sig.signature[8:], message)


def test_tampered_cosignatures_fail() -> None:
    key = mldsa_key()
    cp = Checkpoint(log_key().name, 10, ROOT)
    note, line = _cosigned(key, cp)
    sig = parse_signature_line(line)
    v = key.verifier
    text = format_checkpoint(cp)
    assert v.verify(text, sig.signature) == NOW
    for bad_text in (
        format_checkpoint(Checkpoint(cp.origin, 11, ROOT)),
        format_checkpoint(Checkpoint(cp.origin, 10, hashlib.sha256(b"other").digest())),
        format_checkpoint(Checkpoint("other.example/log", 10, ROOT)),
        "not a checkpoint\n",
    ):
        with pytest.raises(BadSignatureError):
            v.verify(bad_text, sig.signature)
    for bit in (3, 8 * 8 + 5, 8 * 900):  # the timestamp, and the signature itself
        with pytest.raises(BadSignatureError):
            v.verify(text, flip_bit(sig.signature, bit))
    with pytest.raises(BadSignatureError, match="wrong length"):
        v.verify(text, sig.signature[:-1])
    # The name is signed: the same key under another name does not verify.
    renamed = Verifier("witness.example/other", KEY_TYPE_MLDSA44_COSIGNATURE, v.public_key)
    with pytest.raises(BadSignatureError):
        renamed.verify(text, sig.signature)
    # A flipped bit in the note's line is refused when the checkpoint is opened.
    head, _, blob = line.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[100] ^= 1
    bad_line = f"{head} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(BadSignatureError):
        open_checkpoint(note + bad_line, log_key().verifier, [v])


def test_witness_with_an_mldsa_key_over_http(tmp_path: Path) -> None:
    key = mldsa_key()
    witness = Witness.init(tmp_path / "w", key, [log_key().verifier])
    server = WitnessServer(("127.0.0.1", 0), witness).start()
    try:
        with new_ledger(tmp_path) as lg:
            lg.append_many([event(i) for i in range(4)])
            outcomes = collect_cosignatures(lg, [HttpWitness(server.url, key.verifier)], NOW)
            assert [o.outcome for o in outcomes] == ["cosigned"], outcomes[0].detail
            assert lg.latest_checkpoint().cosigned_by([key.verifier])
    finally:
        server.close()


def test_policy_and_verify_count_either_kind_toward_a_quorum(tmp_path: Path) -> None:
    pq, classic = mldsa_key(), witness_key()
    policy = Policy.simple(
        log_key().verifier, [writer_key().verifier], [pq.verifier, classic.verifier]
    )
    assert parse_policy(format_policy(policy)) == policy
    pq_witness = Witness.init(tmp_path / "pq", pq, [log_key().verifier])
    classic_witness = Witness.init(tmp_path / "classic", classic, [log_key().verifier])
    with new_ledger(tmp_path) as lg:
        lg.append_many([event(i) for i in range(3)])
        collect_cosignatures(lg, [LocalWitness(pq_witness)], NOW)
        lg.export(tmp_path / "one.bundle")
        collect_cosignatures(lg, [LocalWitness(classic_witness)], NOW)
        lg.export(tmp_path / "both.bundle")
        cp = lg.latest_checkpoint()
    assert policy.quorum_met(c.witness for c in cp.cosignatures)
    assert verify(tmp_path / "both.bundle", policy).record_count == 3
    with pytest.raises(Exception, match="quorum"):
        verify(tmp_path / "one.bundle", policy)
    only_pq = Policy.simple(log_key().verifier, [writer_key().verifier], [pq.verifier])
    assert verify(tmp_path / "one.bundle", only_pq).record_count == 3


def test_keygen_ml_dsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = run("keygen", "witness.example/pq", "--witness", "--ml-dsa", "--out", "pq")
    assert r.exit_code == 0, r.stderr
    v = parse_verifier(r.stdout.strip())
    assert v.key_type == KEY_TYPE_MLDSA44_COSIGNATURE
    assert_one_line_error(
        run("keygen", "x.example/pq", "--ml-dsa", "--out", "x"), 2, "--ml-dsa", "--witness"
    )
    assert run("keygen", "vendor.example/ledger/cli", "--out", "log").exit_code == 0
    r = run("witness", "init", "wd", "--key", "pq.key", "--log", "log.pub")
    assert r.exit_code == 0, r.stderr
    with Ledger.create(tmp_path / "l.ledger", log_key=read_signer_file(tmp_path / "log.key")) as lg:
        lg.append_many([event(0)])
    r = run("witness-collect", "l.ledger", "--witness-dir", "wd")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert r.stdout.startswith("cosigned witness.example/pq+")


def test_the_release_gate_counts_an_mldsa_cosignature(tmp_path: Path) -> None:
    now = int(time.time()) // 100 * 100 + 100
    police = records.Party(records.ActorKind.LAW_ENFORCEMENT, organization="Springfield PD")
    pq, classic = mldsa_key(), witness_key()
    witnesses = [Witness.init(tmp_path / k.name.replace("/", "_"), k, [log_key().verifier])
                 for k in (pq, classic)]  # fmt: skip
    policy = Policy.simple(
        log_key().verifier, [writer_key().verifier], [pq.verifier, classic.verifier], threshold=2
    )
    with new_ledger(tmp_path) as lg:
        lg.append_many([event(0), release_event(1)])
        collect_cosignatures(lg, [LocalWitness(witnesses[0])], now)
        gate = ReleaseGate(policy, max_age_seconds=600)
        clip = hashlib.sha256(b"clip-1").digest()
        with pytest.raises(QuorumNotMetError):
            gate.check(format_receipt(lg.receipt(1)), clip, police, now + 1)
        collect_cosignatures(lg, [LocalWitness(witnesses[1])], now)
        rec = gate.check(format_receipt(lg.receipt(1)), clip, police, now + 1)
    assert rec.quorum_met
    assert {c.witness.key_type for c in rec.cosignatures} == {0x04, 0x06}


# -- a witness holding an ML-DSA-44 key beside its Ed25519 one --------------------------------


def test_a_witness_with_both_keys_returns_both_lines(tmp_path: Path) -> None:
    classic, pq = witness_key(), mldsa_key()
    w = Witness.init(tmp_path / "w", classic, [log_key().verifier], also=pq)
    assert w.verifiers == (classic.verifier, pq.verifier)
    config = Witness.read_config(tmp_path / "w")
    assert parse_config(format_config(config)) == config
    assert config.also == pq.verifier
    with new_ledger(tmp_path) as lg:
        lg.append_many([event(i) for i in range(3)])
        out = w.add_checkpoint(lg.witness_request(0), NOW)
        first, second = out.splitlines()
        assert first.startswith(f"— {classic.name} ")
        assert parse_signature_line(second).key_id == pq.key_id
        signed = open_checkpoint(
            lg.latest_checkpoint().note + out, log_key().verifier, [classic.verifier, pq.verifier]
        )
        assert {c.witness for c in signed.cosignatures} == {classic.verifier, pq.verifier}
        # Through the client, both lines are stored with the checkpoint.
        lg.append_many([event(10)])
        [outcome] = collect_cosignatures(lg, [LocalWitness(w)], NOW)
        assert outcome.ok, outcome.detail
        assert outcome.line is not None
        assert len(outcome.line.splitlines()) == 2
        assert len(lg.latest_checkpoint().cosigned_by([classic.verifier, pq.verifier])) == 2
    # Reopening needs both keys; the second must be the one recorded.
    with pytest.raises(KeyFormatError, match="second key"):
        Witness.open(tmp_path / "w", classic)
    with pytest.raises(KeyFormatError, match="second key"):
        Witness.open(tmp_path / "w", classic, mldsa_key("witness.example/other"))
    assert Witness.open(tmp_path / "w", classic, pq).verifiers == w.verifiers


def test_a_second_key_must_be_of_the_other_kind(tmp_path: Path) -> None:
    with pytest.raises(MalformedError, match="other kind"):
        Witness.init(
            tmp_path / "w",
            witness_key(),
            [log_key().verifier],
            also=witness_key("witness.example/w2"),
        )
    text = format_config(
        WitnessConfig(witness_key().verifier, (log_key().verifier,), None, mldsa_key().verifier)
    )
    bad = text.replace(mldsa_key().verifier.vkey, witness_key("witness.example/w9").verifier.vkey)
    with pytest.raises(MalformedError, match="other kind"):
        parse_config(bad)


def test_both_lines_over_http(tmp_path: Path) -> None:
    classic, pq = witness_key(), mldsa_key()
    w = Witness.init(tmp_path / "w", classic, [log_key().verifier], also=pq)
    server = WitnessServer(("127.0.0.1", 0), w).start()
    try:
        with new_ledger(tmp_path) as lg:
            lg.append_many([event(i) for i in range(3)])
            both = HttpWitness(server.url, classic.verifier, also=pq.verifier)
            [outcome] = collect_cosignatures(lg, [both], NOW)
            assert outcome.ok, outcome.detail
            assert len(lg.latest_checkpoint().cosigned_by([classic.verifier, pq.verifier])) == 2
            lg.append_many([event(10)])
            only = HttpWitness(server.url, pq.verifier)  # a client that knows one key
            [outcome] = collect_cosignatures(lg, [only], NOW)
            assert outcome.ok, outcome.detail
            assert outcome.line is not None
            assert parse_signature_line(outcome.line).key_id == pq.key_id
    finally:
        server.close()


def test_witness_init_with_a_second_key_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("keygen", "witness.example/w1", "--witness", "--out", "w1").exit_code == 0
    assert (
        run("keygen", "witness.example/w1", "--witness", "--ml-dsa", "--out", "pq").exit_code == 0
    )
    assert run("keygen", "vendor.example/ledger/cli", "--out", "log").exit_code == 0
    r = run("witness", "init", "wd", "--key", "w1.key", "--also-key", "pq.key", "--log", "log.pub")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("witness witness.example/w1+")
    assert "\nalso witness.example/w1+" in r.stdout
    with Ledger.create(tmp_path / "l.ledger", log_key=read_signer_file(tmp_path / "log.key")) as lg:
        lg.append_many([event(0)])
    r = run("witness-collect", "l.ledger", "--witness-dir", "wd")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    with Ledger.open(tmp_path / "l.ledger", readonly=True) as lg:
        keys = [read_signer_file(tmp_path / f).verifier for f in ("w1.key", "pq.key")]
        assert len(lg.latest_checkpoint().cosigned_by(keys)) == 2
    r = run("witness", "init", "wd2", "--key", "w1.key", "--also-key", "w1.key", "--log", "log.pub")
    assert_one_line_error(r, 2, "other kind")
