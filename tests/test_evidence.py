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

from disclosure_ledger._core import merkle
from disclosure_ledger._core.checkpoints import Checkpoint, sign_checkpoint
from disclosure_ledger._core.evidence import (
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
from disclosure_ledger._core.notes import Signer
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger.errors import (
    BadSignatureError,
    MalformedError,
    ProofError,
    UntrustedKeyError,
)

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


# -- the owner's verifier writes evidence; the evidence make command --------------------


@pytest.fixture
def forked_bundles(tmp_path: Path) -> dict[str, Path]:
    """Two bundles of one log, both of size 3 but with different records, and their notes."""
    from disclosure_ledger._log.export import export_ledger

    from .ledger_helpers import event, forked_ledgers

    out: dict[str, Path] = {}
    for a, b in forked_ledgers(tmp_path):
        a.append_many([event(i) for i in range(3)])
        b.append_many([event(i) for i in range(10, 13)])
        for name, lg in (("a", a), ("b", b)):
            export_ledger(lg, tmp_path / f"{name}.bundle")
            out[name] = tmp_path / f"{name}.bundle"
            note = tmp_path / f"{name}.checkpoint"
            note.write_text(lg.latest_checkpoint().note)
            out[f"{name}_cp"] = note
    return out


def _owner_policy() -> object:
    from disclosure_ledger._core.policy import Policy

    from .ledger_helpers import log_key, writer_key

    return Policy.simple(log_key().verifier, [writer_key().verifier])


def test_verify_writes_evidence_beside_the_state(
    forked_bundles: dict[str, Path], tmp_path: Path
) -> None:
    from disclosure_ledger._verify.verifier import SplitViewError, verify

    from .ledger_helpers import log_key

    state = tmp_path / "state"
    verify(forked_bundles["a"], _owner_policy(), state_dir=state)  # type: ignore[arg-type]
    paths = []
    for _ in range(2):
        with pytest.raises(SplitViewError) as info:
            verify(forked_bundles["b"], _owner_policy(), state_dir=state)  # type: ignore[arg-type]
        path = info.value.evidence_path
        assert path is not None
        assert path.parent == state / "evidence"
        assert f"evidence written to {path}" in str(info.value)
        assert check_evidence(path.read_bytes(), log_key().verifier).kind == KIND_SAME_SIZE_FORK
        paths.append(path)
    # The second run found the first file and picked a fresh name: nothing was replaced.
    assert paths[0] != paths[1]
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_verify_evidence_file_is_never_overwritten(
    forked_bundles: dict[str, Path], tmp_path: Path
) -> None:
    from disclosure_ledger._verify.verifier import SplitViewError, verify

    from .ledger_helpers import log_key

    trusted = forked_bundles["a_cp"].read_text()
    target = tmp_path / "found.evidence"
    with pytest.raises(SplitViewError) as info:
        verify(forked_bundles["b"], _owner_policy(), trusted=trusted, evidence_file=target)  # type: ignore[arg-type]
    assert info.value.evidence_path == target
    check_evidence(target.read_bytes(), log_key().verifier)
    target.write_text("something the owner keeps\n")
    with pytest.raises(SplitViewError) as info:
        verify(forked_bundles["b"], _owner_policy(), trusted=trusted, evidence_file=target)  # type: ignore[arg-type]
    assert target.read_text() == "something the owner keeps\n"
    fresh = info.value.evidence_path
    assert fresh is not None
    assert fresh != target
    assert fresh.parent == tmp_path
    assert f"{target} exists" in str(info.value)
    check_evidence(fresh.read_bytes(), log_key().verifier)
    # With nowhere to write, the error still carries the evidence and says so.
    with pytest.raises(SplitViewError, match="no evidence file was written") as info:
        verify(forked_bundles["b"], _owner_policy(), trusted=trusted)  # type: ignore[arg-type]
    assert info.value.evidence_path is None
    check_evidence(info.value.evidence, log_key().verifier)


def test_range_bundle_forked_from_the_saved_state_yields_evidence(tmp_path: Path) -> None:
    from disclosure_ledger._log.export import export_ledger
    from disclosure_ledger._verify.verifier import SplitViewError, verify

    from .ledger_helpers import event, forked_ledgers, log_key

    state = tmp_path / "state"
    for a, b in forked_ledgers(tmp_path):
        a.append_many([event(i) for i in range(3)])
        b.append_many([event(i) for i in range(10, 13)])
        b.append_many([event(i) for i in range(13, 15)])
        export_ledger(a, tmp_path / "a.bundle")
        export_ledger(b, tmp_path / "b-range.bundle", 3)
    verify(tmp_path / "a.bundle", _owner_policy(), state_dir=state)  # type: ignore[arg-type]
    with pytest.raises(SplitViewError) as info:
        verify(tmp_path / "b-range.bundle", _owner_policy(), state_dir=state)  # type: ignore[arg-type]
    assert info.value.index == 2
    assert info.value.evidence_path is not None
    check_evidence(info.value.evidence_path.read_bytes(), log_key().verifier)


def test_verify_cli_says_where_the_evidence_is(
    forked_bundles: dict[str, Path], tmp_path: Path
) -> None:
    from .cli_helpers import assert_one_line_error, run
    from .test_tamper import KEYS

    state = tmp_path / "state"
    assert run("verify", forked_bundles["a"], *KEYS, "--state", state).exit_code == 0
    line = assert_one_line_error(
        run("verify", forked_bundles["b"], *KEYS, "--state", state),
        1,
        "SplitViewError",
        "evidence written to",
    )
    written = Path(line.rsplit("evidence written to ", 1)[1])
    assert written.parent == state / "evidence"
    # With only a trusted checkpoint, beside that file; or where --evidence says.
    line = assert_one_line_error(
        run("verify", forked_bundles["b"], *KEYS, "--trusted-checkpoint", forked_bundles["a_cp"]),
        1,
        "SplitViewError",
    )
    assert Path(line.rsplit("evidence written to ", 1)[1]).parent == forked_bundles["a_cp"].parent
    out = tmp_path / "mine.evidence"
    args = [
        "verify",
        forked_bundles["b"],
        *KEYS,
        "--trusted-checkpoint",
        forked_bundles["a_cp"],
        "--evidence",
        out,
    ]
    assert_one_line_error(run(*args), 1, f"evidence written to {out}")
    assert run("evidence", "check", out, "--log-key", _log_pub(tmp_path)).exit_code == 0


def _log_pub(tmp_path: Path) -> Path:
    from .ledger_helpers import log_key

    pub = tmp_path / "log.pub"
    pub.write_text(log_key().verifier.vkey + "\n")
    return pub


def test_evidence_make_command(forked_bundles: dict[str, Path], tmp_path: Path) -> None:
    from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer

    from .cli_helpers import assert_one_line_error, run
    from .ledger_helpers import log_key

    pub = _log_pub(tmp_path)
    out = tmp_path / "made.evidence"
    result = run(
        "evidence",
        "make",
        forked_bundles["a_cp"],
        forked_bundles["b_cp"],
        "--log-key",
        pub,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.stderr
    assert f"proven: {KIND_SAME_SIZE_FORK}" in result.stdout
    assert f"evidence written to {out}" in result.stdout
    assert check_evidence(out.read_bytes(), log_key().verifier).kind == KIND_SAME_SIZE_FORK
    # Never over an existing file: exit 2, the file untouched.
    out.write_text("keep me\n")
    assert_one_line_error(
        run(
            "evidence",
            "make",
            forked_bundles["a_cp"],
            forked_bundles["b_cp"],
            "--log-key",
            pub,
            "--out",
            out,
        ),
        2,
        "exists",
    )
    assert out.read_text() == "keep me\n"
    # Two agreeing checkpoints prove nothing: exit 1, nothing written.
    before = sorted(tmp_path.iterdir())
    assert_one_line_error(
        run("evidence", "make", forked_bundles["a_cp"], forked_bundles["a_cp"], "--log-key", pub),
        1,
        "no evidence",
    )
    assert sorted(tmp_path.iterdir()) == before
    # Not signed by the key given: exit 1.
    other = tmp_path / "other.pub"
    other.write_text(Signer("vendor.example/ledger/owner-42", bytes(32)).verifier.vkey + "\n")
    assert_one_line_error(
        run("evidence", "make", forked_bundles["a_cp"], forked_bundles["b_cp"], "--log-key", other),
        1,
        "no evidence",
    )
    # A witness key as the log key, or a file that is no checkpoint: exit 2.
    wit = tmp_path / "w.pub"
    wit.write_text(Signer("w", bytes(32), KEY_TYPE_COSIGNATURE).verifier.vkey + "\n")
    assert_one_line_error(
        run("evidence", "make", forked_bundles["a_cp"], forked_bundles["b_cp"], "--log-key", wit),
        2,
        "Ed25519",
    )
    junk = tmp_path / "junk.checkpoint"
    junk.write_text("hello\n")
    assert_one_line_error(
        run("evidence", "make", forked_bundles["a_cp"], junk, "--log-key", pub), 2, "malformed"
    )
