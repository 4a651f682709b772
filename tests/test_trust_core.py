"""The trust core every reader shares: check_successor, the chain walker, the owner's state."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from disclosure_ledger import DirectoryState, MemoryState, Policy, StateStore, verify
from disclosure_ledger._core import merkle, records
from disclosure_ledger._core.chain import ChainWalker, WriterKeys
from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    sign_checkpoint,
)
from disclosure_ledger._core.evidence import SplitViewError, check_evidence
from disclosure_ledger._core.notes import Signer
from disclosure_ledger._core.succession import check_successor
from disclosure_ledger._verify.state import save_state
from disclosure_ledger.errors import (
    BadSignatureError,
    ChainBreakError,
    MalformedError,
    MalformedRecordError,
    ProofError,
    RollbackError,
    RootMismatchError,
    UntrustedKeyError,
    VerifyInputError,
)

from .conftest import flip_bit
from .ledger_helpers import ORIGIN, event, log_key, new_ledger, witness_key, writer_key

# -- check_successor ------------------------------------------------------------------


def _leaves(tag: bytes, n: int) -> list[bytes]:
    return [merkle.leaf_hash(tag + i.to_bytes(4, "big")) for i in range(n)]


def _signed(hashes: list[bytes], key: Signer | None = None) -> SignedCheckpoint:
    key = key or log_key()
    store = merkle.MemoryHashStore()
    store.extend(hashes)
    root = merkle.tree_root(len(hashes), store) if hashes else merkle.EMPTY_ROOT
    note = sign_checkpoint(Checkpoint(key.name, len(hashes), root), key)
    return open_checkpoint(note, key.verifier)


def _proof(hashes: list[bytes], m: int) -> list[bytes]:
    store = merkle.MemoryHashStore()
    store.extend(hashes)
    return merkle.prove_consistency(m, len(hashes), store)


def test_the_same_checkpoint_again_is_no_change() -> None:
    a = _signed(_leaves(b"a", 5))
    assert check_successor(a, a) is False
    assert check_successor(a, a, ()) is False


def test_a_larger_checkpoint_is_accepted_with_a_proof_or_left_to_the_caller() -> None:
    hashes = _leaves(b"a", 13)
    old, new = _signed(hashes[:5]), _signed(hashes)
    assert check_successor(old, new, _proof(hashes, 5)) is True
    assert check_successor(old, new) is True  # the caller recomputes the tree
    assert check_successor(_signed([]), new, ()) is True  # from the empty tree


def test_a_smaller_checkpoint_is_a_rollback() -> None:
    hashes = _leaves(b"a", 13)
    with pytest.raises(RollbackError, match=r"size 5, but the saved state is of size 13"):
        check_successor(_signed(hashes), _signed(hashes[:5]), held_as="the saved state")


def test_one_size_with_two_roots_is_a_split_view_with_evidence() -> None:
    a, b = _signed(_leaves(b"a", 7)), _signed(_leaves(b"b", 7))
    with pytest.raises(SplitViewError, match="both of size 7") as info:
        check_successor(a, b)
    assert info.value.evidence_path is None
    assert check_evidence(info.value.evidence, log_key().verifier).kind


def test_a_proof_that_reaches_a_forked_tree_is_a_split_view() -> None:
    held = _signed(_leaves(b"a", 5))
    forked = _leaves(b"b", 13)
    with pytest.raises(SplitViewError, match="does not extend") as info:
        check_successor(held, _signed(forked), _proof(forked, 5))
    check_evidence(info.value.evidence, log_key().verifier)


def test_a_wrong_proof_proves_nothing_and_is_refused() -> None:
    hashes = _leaves(b"a", 13)
    proof = _proof(hashes, 5)
    bad = [flip_bit(proof[0], 3), *proof[1:]]
    with pytest.raises(RootMismatchError) as info:
        check_successor(_signed(hashes[:5]), _signed(hashes), bad)
    assert not isinstance(info.value, SplitViewError)


def test_proofs_of_the_wrong_shape() -> None:
    hashes = _leaves(b"a", 13)
    junk = [hashlib.sha256(b"junk").digest()]
    with pytest.raises(ProofError, match="already held"):
        check_successor(_signed(hashes), _signed(hashes), junk)
    with pytest.raises(ProofError, match="from size 0"):
        check_successor(_signed([]), _signed(hashes), junk)
    with pytest.raises(ProofError):
        check_successor(_signed(hashes[:5]), _signed(hashes), _proof(hashes, 5)[:-1])


def test_checkpoints_of_two_logs_are_not_successors() -> None:
    other = Signer("other.example/log", bytes(32))
    with pytest.raises(MalformedError, match=r"other\.example/log"):
        check_successor(_signed(_leaves(b"a", 3)), _signed(_leaves(b"a", 4), other))


# -- the chain walker -------------------------------------------------------------------


def _chain(n: int, signer: Signer | None = None, first_event: int = 0) -> list[bytes]:
    signer = signer or writer_key()
    prev, out = records.GENESIS_PREV, []
    for i in range(n):
        body = records.encode_event(records.event_from_json(event(first_event + i)))
        env = records.make_envelope(ORIGIN, signer, i, prev, 1_000 + i, body)
        out.append(env.leaf)
        prev = env.chain_hash
    return out


def _walk(leaves: list[bytes], keys: WriterKeys | None = None, start: int = 0) -> list[str]:
    keys = keys or WriterKeys([writer_key().verifier])
    prev = None if start else records.GENESIS_PREV
    walker = ChainWalker(ORIGIN, keys, start=start, prev=prev)
    return [walker.step(leaf)[2] for leaf in leaves]


def test_the_walker_accepts_a_good_chain_and_names_its_writer() -> None:
    leaves = _chain(4)
    assert _walk(leaves) == [writer_key().name] * 4
    walker = ChainWalker(ORIGIN, WriterKeys([writer_key().verifier]), prev=records.GENESIS_PREV)
    for leaf in leaves:
        logged_at, end, _ = walker.step(leaf)
        assert records.decode_event(leaf[records.HEADER_SIZE : end])
        assert logged_at >= 1_000
    assert walker.prev == records.parse_envelope(leaves[-1]).chain_hash
    assert walker.next_index == 4


@pytest.mark.parametrize("bit", [0, 8 * 9 + 1, 8 * 41 + 2, -1])
def test_every_tampered_record_is_refused(bit: int) -> None:
    leaves = _chain(3)
    target = leaves[1]
    leaves[1] = flip_bit(target, bit if bit >= 0 else len(target) * 8 - 1)
    with pytest.raises((BadSignatureError, MalformedRecordError)) as info:
        _walk(leaves)
    assert info.value.index == 1
    assert str(info.value).startswith("record 1: ")


def test_a_moved_record_breaks_the_chain() -> None:
    leaves = _chain(3)
    with pytest.raises(ChainBreakError, match="record 1: carries sequence number 2"):
        _walk([leaves[0], leaves[2]])
    # Renumbered by its signer, it still does not link.
    body = records.encode_event(records.event_from_json(event(9)))
    stray = records.make_envelope(ORIGIN, writer_key(), 1, bytes(32), 5, body).leaf
    with pytest.raises(ChainBreakError, match="record 1: does not link to record 0"):
        _walk([leaves[0], stray])


def test_unknown_and_foreign_keys() -> None:
    leaves = _chain(2, Signer("someone.example/w", bytes(range(7, 39))))
    keys = WriterKeys([writer_key().verifier], hints={}, untrusted_as="a given writer key")
    with pytest.raises(UntrustedKeyError, match=r"record 0: signed by key .* a given writer key"):
        _walk(leaves, keys)
    key_id = records.parse_envelope(leaves[0]).key_id
    hinted = WriterKeys([writer_key().verifier], hints={key_id: "someone.example/w"})
    with pytest.raises(UntrustedKeyError, match=r"hint names it someone\.example/w"):
        _walk(leaves, hinted)
    with pytest.raises(MalformedError, match="not an Ed25519"):
        WriterKeys([witness_key().verifier])


def test_short_and_oversized_envelopes_are_malformed() -> None:
    leaf = _chain(1)[0]
    for bad in (leaf[:60], leaf + b"\x00", b""):
        with pytest.raises(MalformedRecordError, match="record 0: envelope"):
            _walk([bad])


def test_an_anchor_walk_skips_only_the_first_link() -> None:
    leaves = _chain(5)
    assert len(_walk(leaves[3:], start=3)) == 2
    with pytest.raises(ChainBreakError, match="record 4: does not link"):
        _walk([leaves[3], _chain(5, first_event=50)[4]], start=3)


# -- the owner's state ------------------------------------------------------------------


def test_memory_and_directory_states_swap_only_what_was_read(tmp_path: Path) -> None:
    stores: list[StateStore] = [MemoryState(), DirectoryState(tmp_path / "state")]
    for store in stores:
        assert store.load(ORIGIN) is None
        assert store.compare_and_swap(ORIGIN, None, "a")
        assert not store.compare_and_swap(ORIGIN, None, "b")
        assert store.load(ORIGIN) == "a"
        assert store.compare_and_swap(ORIGIN, "a", "b")
        assert store.load(ORIGIN) == "b"


def test_concurrent_saves_keep_the_largest(tmp_path: Path) -> None:
    hashes = _leaves(b"a", 40)
    notes = [_signed(hashes[:n]) for n in range(1, 41)]
    state = DirectoryState(tmp_path / "state")
    threads = [
        threading.Thread(target=lambda ns=notes[i::4]: [save_state(state, s) for s in ns])
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.load(log_key().name) == notes[-1].note


class _Meddling:
    """A state another run changes between this run's read and its swap."""

    def __init__(self, inner: StateStore, meddle: str) -> None:
        self.inner, self.meddle, self.done = inner, meddle, False

    def load(self, origin: str) -> str | None:
        return self.inner.load(origin)

    def compare_and_swap(self, origin: str, expected: str | None, new: str) -> bool:
        if not self.done:
            self.done = True
            self.inner.compare_and_swap(origin, expected, self.meddle)
        return self.inner.compare_and_swap(origin, expected, new)


@pytest.fixture
def bundles(tmp_path: Path) -> dict[int, Path]:
    out = {}
    with new_ledger(tmp_path) as lg:
        for n in (3, 6, 9):
            lg.append_many([event(i) for i in range(lg.size, n)])
            out[n] = lg.export(tmp_path / f"{n}.bundle").path
    return out


def _policy() -> Policy:
    return Policy.simple(log_key().verifier, [writer_key().verifier])


def _note(bundle: Path) -> str:
    return verify(bundle, _policy()).checkpoint


def test_verify_saves_by_compare_and_swap(bundles: dict[int, Path]) -> None:
    state = MemoryState()
    assert verify(bundles[6], _policy(), state=state).state_saved
    assert state.load(ORIGIN) == _note(bundles[6])
    report = verify(bundles[6], _policy(), state=state)
    assert not report.state_saved
    with pytest.raises(RollbackError):
        verify(bundles[3], _policy(), state=state)


def test_a_state_moved_on_meanwhile_is_left_and_said(bundles: dict[int, Path]) -> None:
    state = _Meddling(MemoryState(), _note(bundles[9]))
    report = verify(bundles[6], _policy(), state=state)
    assert not report.state_saved
    assert any("moved on to size 9" in line for line in report.consistency)
    assert state.load(ORIGIN) == _note(bundles[9])


def test_a_state_changed_to_something_unchecked_saves_nothing(bundles: dict[int, Path]) -> None:
    state = _Meddling(MemoryState(), _note(bundles[3]))
    with pytest.raises(VerifyInputError, match="changed while this run verified"):
        verify(bundles[6], _policy(), state=state)
    assert state.load(ORIGIN) == _note(bundles[3])


def test_a_forked_state_saved_meanwhile_is_a_split_view(tmp_path: Path) -> None:
    with new_ledger(tmp_path, "fork.ledger") as lg:
        lg.append_many([event(100 + i) for i in range(6)])
        forked = lg.latest_checkpoint().note
        bundle = tmp_path / "fork.bundle"
    with new_ledger(tmp_path, "real.ledger") as lg:
        lg.append_many([event(i) for i in range(6)])
        lg.export(bundle)
    state = _Meddling(MemoryState(), forked)
    with pytest.raises(SplitViewError):
        verify(bundle, _policy(), state=state)


def test_state_and_state_dir_are_one_or_the_other(bundles: dict[int, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        verify(bundles[3], _policy(), state=MemoryState(), state_dir=tmp_path / "s")


# -- stored hash runs, as every store reads them back ----------------------------------


def test_slice_runs_reads_positions_across_runs_and_refuses_gaps_and_overlaps() -> None:
    from disclosure_ledger._store.layout import slice_runs
    from disclosure_ledger.errors import StorageError

    h = [bytes([i]) * 32 for i in range(10)]
    runs = [(0, b"".join(h[0:4])), (4, b"".join(h[4:8])), (8, b"".join(h[8:10]))]
    assert slice_runs(runs, 0, 10) == h
    assert slice_runs(runs[1:], 5, 9) == h[5:9]
    assert slice_runs([(0, b"".join(h[0:4])), *runs[1:]], 4, 6) == h[4:6]  # a run before start
    with pytest.raises(StorageError, match="gap at position 4"):
        slice_runs([runs[0], runs[2]], 2, 10)
    with pytest.raises(StorageError, match="overlap at position 3"):
        slice_runs([runs[0], (3, b"".join(h[3:8]))], 0, 8)
