"""Split-view evidence: what proves a log forked, and what is refused as proving nothing.

Two ledgers under one log key that diverge are a simulated split view. Their
checkpoints, with a proof from the larger tree, must check as evidence; two
consistent checkpoints, a forged proof that does not reach the signed root, or
checkpoints not signed by the log are refused.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disclosure_ledger import merkle
from disclosure_ledger.checkpoints import Checkpoint, sign_checkpoint
from disclosure_ledger.errors import (
    BadSignatureError,
    MalformedError,
    ProofError,
    UntrustedKeyError,
)
from disclosure_ledger.evidence import (
    EVIDENCE_HEADER,
    KIND_BAD_EMPTY_ROOT,
    KIND_NOT_AN_EXTENSION,
    KIND_SAME_SIZE_FORK,
    Evidence,
    NotEvidenceError,
    check_evidence,
    detect_split_view,
    format_evidence,
    implied_roots,
    make_evidence,
    parse_evidence,
    self_contained_proof,
    write_evidence_file,
)
from disclosure_ledger.ledger import Ledger
from disclosure_ledger.notes import Signer

from .ledger_helpers import event, forked_ledgers, log_key

LOG = log_key().verifier


@pytest.fixture
def fork(tmp_path: Path) -> Iterator[tuple[Ledger, Ledger]]:
    """Ledger ``a`` holds events 0.., ``b`` events 100..: same log key, different trees."""
    yield from forked_ledgers(tmp_path)


def commit(led: Ledger, sizes: list[int], base: int) -> None:
    """Commit so that checkpoints exist at each of ``sizes``."""
    for size in sizes:
        led.append_many([event(base + i) for i in range(led.size, size)])


def fork_evidence(a: Ledger, b: Ledger, m: int, n: int) -> Evidence:
    """Evidence from a's checkpoint at ``m`` and b's at ``n``, with b's own proof."""
    proof = b.consistency_proof(m, n)
    subtree = b.checkpoint(m).checkpoint.root if m & (m - 1) == 0 else None
    return make_evidence(
        b.checkpoint(n).note, a.checkpoint(m).note, self_contained_proof(m, proof, subtree)
    )


def test_same_size_different_roots(fork: tuple[Ledger, Ledger]) -> None:
    a, b = fork
    commit(a, [6], 0)
    commit(b, [6], 100)
    ev = make_evidence(a.checkpoint(6).note, b.checkpoint(6).note)
    found = check_evidence(ev, LOG)
    assert found.kind == KIND_SAME_SIZE_FORK
    assert found.origin == LOG.name
    assert {found.first_root, found.second_root} == {
        a.checkpoint(6).checkpoint.root,
        b.checkpoint(6).checkpoint.root,
    }
    assert "two different roots for size 6" in found.description


@pytest.mark.parametrize(("m", "n"), [(5, 8), (3, 7), (4, 8), (1, 2), (2, 9), (6, 13)])
def test_a_tree_that_does_not_extend_the_smaller_one(
    fork: tuple[Ledger, Ledger], m: int, n: int
) -> None:
    a, b = fork
    commit(a, [m], 0)
    commit(b, [m, n], 100)
    ev = fork_evidence(a, b, m, n)
    assert ev.first == a.checkpoint(m).note  # ordered by size
    found = check_evidence(format_evidence(ev), LOG)
    assert found.kind == KIND_NOT_AN_EXTENSION
    assert found.implied_root == b.checkpoint(m).checkpoint.root
    assert found.first_root == a.checkpoint(m).checkpoint.root
    assert parse_evidence(format_evidence(ev)) == ev


def test_detect_split_view_from_an_rfc_proof(fork: tuple[Ledger, Ledger]) -> None:
    a, b = fork
    commit(a, [4], 0)
    commit(b, [4, 8], 100)
    proof = b.consistency_proof(4, 8)
    # Power of two: the RFC proof alone cannot show it; the subtree root can.
    assert detect_split_view(a.checkpoint(4).note, b.checkpoint(8).note, proof, LOG) is None
    ev = detect_split_view(
        a.checkpoint(4).note,
        b.checkpoint(8).note,
        proof,
        LOG,
        old_subtree_root=b.checkpoint(4).checkpoint.root,
    )
    assert ev is not None
    assert check_evidence(ev, LOG).kind == KIND_NOT_AN_EXTENSION
    # Consistent checkpoints are not a split view.
    assert detect_split_view(b.checkpoint(4).note, b.checkpoint(8).note, proof, LOG) is None


def test_consistent_checkpoints_prove_nothing(fork: tuple[Ledger, Ledger]) -> None:
    _, b = fork
    commit(b, [5, 11], 100)
    ev = make_evidence(b.checkpoint(5).note, b.checkpoint(11).note, b.consistency_proof(5, 11))
    with pytest.raises(NotEvidenceError, match="consistent"):
        check_evidence(ev, LOG)
    same = make_evidence(b.checkpoint(5).note, b.checkpoint(5).note)
    with pytest.raises(NotEvidenceError, match="same root"):
        check_evidence(same, LOG)


def test_a_forged_proof_that_misses_the_signed_root_proves_nothing(
    fork: tuple[Ledger, Ledger],
) -> None:
    a, b = fork
    commit(a, [5, 11], 0)
    # Anyone can write hashes that imply a different old root; they prove
    # nothing unless they also lead to the log's signed new root.
    length = len(a.consistency_proof(5, 11))
    forged = tuple(hashlib.sha256(bytes([i])).digest() for i in range(length))
    ev = make_evidence(a.checkpoint(5).note, a.checkpoint(11).note, forged)
    with pytest.raises(NotEvidenceError, match="does not lead to the signed root"):
        check_evidence(ev, LOG)
    with pytest.raises(NotEvidenceError, match="need a consistency proof"):
        check_evidence(make_evidence(a.checkpoint(5).note, a.checkpoint(11).note), LOG)
    with pytest.raises(NotEvidenceError, match="wrong shape"):
        check_evidence(make_evidence(a.checkpoint(5).note, a.checkpoint(11).note, forged[:1]), LOG)
    # A real fork's proof with one bit flipped no longer reaches the root.
    commit(b, [5, 11], 100)
    good = fork_evidence(a, b, 5, 11)
    bad = bytearray(good.proof[-1])
    bad[0] ^= 1
    with pytest.raises(NotEvidenceError, match="does not lead to the signed root of size 11"):
        check_evidence(Evidence(good.first, good.second, (*good.proof[:-1], bytes(bad))), LOG)


def test_checkpoints_must_be_signed_by_the_log(fork: tuple[Ledger, Ledger]) -> None:
    a, b = fork
    commit(a, [6], 0)
    commit(b, [6], 100)
    other = Signer(LOG.name, bytes(range(7, 39)))
    fake = sign_checkpoint(b.checkpoint(6).checkpoint, other)
    with pytest.raises(UntrustedKeyError, match="second checkpoint"):
        check_evidence(make_evidence(a.checkpoint(6).note, fake), LOG)
    note = b.checkpoint(6).note
    body, sig = note.split("\n\n")
    root_line = body.split("\n")[2]
    altered = body.replace(root_line, base64.b64encode(merkle.EMPTY_ROOT).decode())
    with pytest.raises(BadSignatureError):
        check_evidence(make_evidence(a.checkpoint(6).note, altered + "\n\n" + sig), LOG)


def test_size_zero_cases() -> None:
    key = log_key()
    empty = sign_checkpoint(Checkpoint(key.name, 0, merkle.EMPTY_ROOT), key)
    other = sign_checkpoint(Checkpoint(key.name, 3, merkle.leaf_hash(b"x")), key)
    with pytest.raises(NotEvidenceError, match="empty tree"):
        check_evidence(make_evidence(other, empty), LOG)
    false_empty = sign_checkpoint(Checkpoint(key.name, 0, merkle.leaf_hash(b"x")), key)
    assert check_evidence(make_evidence(false_empty, other), LOG).kind == KIND_BAD_EMPTY_ROOT


def test_format_is_exact_and_parsing_is_strict(fork: tuple[Ledger, Ledger]) -> None:
    a, b = fork
    commit(a, [5], 0)
    commit(b, [5, 8], 100)
    ev = fork_evidence(a, b, 5, 8)
    text = format_evidence(ev)
    lines = text.split("\n")
    assert lines[0] == EVIDENCE_HEADER
    assert lines[1] == f"checkpoint {len(ev.first.encode())}"
    assert text.endswith("\n")
    assert f"\nproof {len(ev.proof)}\n" in text
    bad_inputs: list[str | bytes] = [
        "",
        text.replace(EVIDENCE_HEADER, EVIDENCE_HEADER + "x"),
        text + "extra\n",
        text[:-2],
        text.replace("checkpoint ", "checkpoint 0", 1),
        text.replace("proof ", "proof 9", 1),
        text.replace(f"checkpoint {len(ev.first.encode())}", "checkpoint 99999999", 1),
        b"\xff" + text.encode(),
    ]
    for bad in bad_inputs:
        with pytest.raises(MalformedError):
            parse_evidence(bad)
    with pytest.raises(MalformedError, match="smaller checkpoint first"):
        Evidence(ev.second, ev.first, ev.proof)
    with pytest.raises(MalformedError, match="32 bytes"):
        Evidence(ev.first, ev.second, (b"short",))


def test_write_evidence_file_never_overwrites(tmp_path: Path, fork: tuple[Ledger, Ledger]) -> None:
    a, b = fork
    commit(a, [3], 0)
    commit(b, [3], 100)
    ev = make_evidence(a.checkpoint(3).note, b.checkpoint(3).note)
    p1 = write_evidence_file(tmp_path / "ev", ev, "x")
    p2 = write_evidence_file(tmp_path / "ev", ev, "x")
    assert p1 != p2
    assert parse_evidence(p1.read_bytes()) == parse_evidence(p2.read_bytes()) == ev
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["x-1.evidence", "x.evidence"]


def test_implied_roots_edges() -> None:
    h = merkle.leaf_hash(b"a")
    for m, n in ((0, 1), (2, 2), (3, 1)):
        with pytest.raises(ProofError):
            implied_roots(m, n, [h])
    with pytest.raises(ProofError, match="empty"):
        implied_roots(3, 4, [])
    with pytest.raises(MalformedError):
        implied_roots(3, 4, [b"x"])
    with pytest.raises(MalformedError, match="power of two"):
        self_contained_proof(4, [h], None)
    assert self_contained_proof(3, [h], None) == (h,)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(1, 200))
def test_implied_roots_agree_with_real_trees(m: int, extra: int) -> None:
    n = m + extra
    store = merkle.MemoryHashStore()
    for i in range(n):
        store.append(merkle.leaf_hash(i.to_bytes(4, "big")))
    proof = merkle.prove_consistency(m, n, store)
    full = self_contained_proof(m, proof, merkle.tree_root(m, store))
    fr, sr = implied_roots(m, n, full)
    assert fr == merkle.tree_root(m, store)
    assert sr == merkle.tree_root(n, store)


_ROOTS = st.binary(min_size=32, max_size=32)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    _ROOTS,
    _ROOTS,
    st.lists(_ROOTS, max_size=70),
)
def test_evidence_format_parse_round_trip(
    m: int, n: int, root_a: bytes, root_b: bytes, proof: list[bytes]
) -> None:
    m, n = sorted((m, n))
    key = log_key()
    ev = Evidence(
        sign_checkpoint(Checkpoint(key.name, m, root_a), key),
        sign_checkpoint(Checkpoint(key.name, n, root_b), key),
        tuple(proof),
    )
    text = format_evidence(ev)
    assert parse_evidence(text) == ev
    assert parse_evidence(text.encode("utf-8")) == ev
    assert format_evidence(parse_evidence(text)) == text
