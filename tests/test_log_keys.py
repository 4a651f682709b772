"""Per-log checkpoint keys derived from one master key (decision 0009)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from disclosure_ledger._core.checkpoints import Checkpoint, open_checkpoint, sign_checkpoint
from disclosure_ledger._core.merkle import EMPTY_ROOT
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer
from disclosure_ledger.errors import KeyFormatError, VerificationError
from disclosure_ledger.keys import derive_log_key

MASTER_SEED = bytes(range(100, 132))
MASTER = Signer("vendor.example/log-master", MASTER_SEED)


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    # RFC 5869 written out with hmac, as the oracle for the library's HKDF.
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()  # one block: 32 bytes


def test_the_derivation_is_hkdf_sha256_of_the_seed_salt_and_origin() -> None:
    origin = "vendor.example/ledger/owner-42"
    seed = _hkdf_sha256(MASTER_SEED, b"disclosure-ledger/log-key/v1", origin.encode())
    derived = derive_log_key(MASTER, origin)
    assert derived.name == origin
    assert derived.verifier == Signer(origin, seed).verifier
    assert derive_log_key(MASTER, origin).verifier == derived.verifier  # deterministic


def test_each_log_has_its_own_key_and_one_does_not_verify_another() -> None:
    a = derive_log_key(MASTER, "vendor.example/ledger/owner-a")
    b = derive_log_key(MASTER, "vendor.example/ledger/owner-b")
    other_master = Signer("vendor.example/log-master", bytes(32))
    assert a.verifier.public_key != b.verifier.public_key
    assert (
        derive_log_key(other_master, "vendor.example/ledger/owner-a").verifier.public_key
        != a.verifier.public_key
    )
    note = sign_checkpoint(Checkpoint(a.name, 0, EMPTY_ROOT), a)
    assert open_checkpoint(note, a.verifier, []).checkpoint.origin == a.name
    with pytest.raises(VerificationError):
        open_checkpoint(note, b.verifier, [])


def test_a_master_key_must_be_an_ed25519_key_other_than_a_log_key() -> None:
    with pytest.raises(KeyFormatError, match="Ed25519"):
        derive_log_key(Signer("w.example/w", MASTER_SEED, KEY_TYPE_COSIGNATURE), "o.example/x")
    with pytest.raises(KeyFormatError, match="must not be a log's origin"):
        derive_log_key(MASTER, MASTER.name)
    with pytest.raises(KeyFormatError):
        derive_log_key(MASTER, "not a key name")
