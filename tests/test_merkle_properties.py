"""Property tests: the fast Merkle code against the naive RFC 6962 reference.

Trees hold up to 2000 leaves. Every mutation of a valid proof (a flipped bit, an
extra or missing hash, index or size moved by one) is checked against the
reference verifier, which is exact: it says whether the mutated statement is
provable, and the fast verifier must agree, failing with a LedgerError.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disclosure_ledger._core import merkle
from disclosure_ledger.errors import LedgerError, ProofError, RootMismatchError

from . import reference
from .conftest import flip_bit

MAX_LEAVES = 2000
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def leaf_data(i: int) -> bytes:
    return f"leaf {i}".encode()


@lru_cache(maxsize=1)
def all_leaves() -> tuple[bytes, ...]:
    return tuple(leaf_data(i) for i in range(MAX_LEAVES))


@lru_cache(maxsize=1)
def full_store() -> merkle.MemoryHashStore:
    # One store of MAX_LEAVES leaves serves every smaller tree: a tree of size n
    # only reads nodes that are complete within its first n leaves.
    store = merkle.MemoryHashStore()
    store.extend(merkle.leaf_hash(d) for d in all_leaves())
    return store


@lru_cache(maxsize=4096)
def ref_root(n: int) -> bytes:
    return reference.mth(all_leaves()[:n])


def outcome(fn: Callable[..., Any], *args: Any) -> bool:
    """True if ``fn`` accepts; False if it refuses with a LedgerError (anything else escapes)."""
    try:
        fn(*args)
    except LedgerError:
        return False
    return True


sizes = st.integers(min_value=1, max_value=MAX_LEAVES)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return n, draw(st.integers(min_value=0, max_value=n - 1))


@st.composite
def old_and_new(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return draw(st.integers(min_value=1, max_value=n)), n


def test_reference_matches_the_8_leaf_vectors() -> None:
    # The oracle itself is checked against published numbers before it judges anything.
    from .conftest import load_json

    tree = load_json("transparency-dev-merkle/reference_tree_8.json")
    leaves = [bytes.fromhex(x) for x in tree["leaf_inputs_hex"]]
    for size, root in tree["root_by_size_hex"].items():
        assert reference.mth(leaves[: int(size)]).hex() == root
    for case in tree["inclusion_proofs"]:
        got = reference.path(case["leaf_index_0based"], leaves[: case["tree_size"]])
        assert [h.hex() for h in got] == case["proof"]
    for case in tree["consistency_proofs"]:
        got = reference.proof(case["size1"], leaves[: case["size2"]])
        assert [h.hex() for h in got] == case["proof"]
    for size, hashes in tree["compact_ranges_by_size_hex"].items():
        assert [h.hex() for h in reference.compact_range(leaves[: int(size)])] == hashes


@PROPS
@given(size_and_index())
def test_inclusion_proof_equals_reference_and_verifies(case: tuple[int, int]) -> None:
    n, index = case
    leaves = all_leaves()[:n]
    proof = merkle.prove_inclusion(index, n, full_store())
    assert proof == reference.path(index, leaves)
    assert merkle.tree_root(n, full_store()) == ref_root(n)
    merkle.verify_inclusion(merkle.leaf_hash(leaves[index]), index, n, proof, ref_root(n))
    assert reference.verify_inclusion(merkle.leaf_hash(leaves[index]), index, n, proof, ref_root(n))


@PROPS
@given(old_and_new())
def test_consistency_proof_equals_reference_and_verifies(case: tuple[int, int]) -> None:
    m, n = case
    proof = merkle.prove_consistency(m, n, full_store())
    assert proof == reference.proof(m, all_leaves()[:n])
    merkle.verify_consistency(m, n, ref_root(m), ref_root(n), proof)
    assert reference.verify_consistency(m, n, ref_root(m), ref_root(n), proof)


INCLUSION_MUTATIONS = [
    "flip-proof-bit",
    "flip-root-bit",
    "flip-leaf-bit",
    "extra-hash",
    "missing-hash",
    "index+1",
    "index-1",
    "size+1",
    "size-1",
]
ALWAYS_FAILS = {
    "flip-proof-bit",
    "flip-root-bit",
    "flip-leaf-bit",
    "flip-old-root-bit",
    "flip-new-root-bit",
    "extra-hash",
    "missing-hash",
}


def mutate_proof(
    proof: list[bytes], mutation: str, bit: int, data: st.DataObject, extras: list[bytes]
) -> bool:
    """Apply a proof-level mutation in place; False when it cannot apply (an empty proof)."""
    if mutation in ("flip-proof-bit", "missing-hash") and not proof:
        return False
    if mutation == "flip-proof-bit":
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="hash")
        proof[i] = flip_bit(proof[i], bit)
    elif mutation == "extra-hash":
        at = data.draw(st.integers(min_value=0, max_value=len(proof)), label="at")
        proof.insert(at, data.draw(st.sampled_from(extras), label="extra"))
    elif mutation == "missing-hash":
        del proof[data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="hash")]
    return True


@PROPS
@given(size_and_index(), st.sampled_from(INCLUSION_MUTATIONS), st.data())
def test_mutated_inclusion_proof_fails_unless_reference_accepts(
    case: tuple[int, int], mutation: str, data: st.DataObject
) -> None:
    n, index = case
    leaf = merkle.leaf_hash(all_leaves()[index])
    proof = merkle.prove_inclusion(index, n, full_store())
    root = ref_root(n)
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    if not mutate_proof(proof, mutation, bit, data, [root, leaf, bytes(32)]):
        return
    if mutation == "flip-root-bit":
        root = flip_bit(root, bit)
    elif mutation == "flip-leaf-bit":
        leaf = flip_bit(leaf, bit)
    elif mutation == "index+1":
        index += 1
    elif mutation == "index-1":
        index -= 1
    elif mutation == "size+1":
        n += 1
    elif mutation == "size-1":
        n -= 1
    if index < 0:
        return  # a negative index is malformed input, covered by the vector tests
    expected = reference.verify_inclusion(leaf, index, n, proof, root)
    assert outcome(merkle.verify_inclusion, leaf, index, n, proof, root) == expected
    if mutation in ALWAYS_FAILS:
        assert not expected


CONSISTENCY_MUTATIONS = [
    "flip-proof-bit",
    "flip-old-root-bit",
    "flip-new-root-bit",
    "extra-hash",
    "missing-hash",
    "old+1",
    "old-1",
    "new+1",
    "new-1",
]


@PROPS
@given(old_and_new(), st.sampled_from(CONSISTENCY_MUTATIONS), st.data())
def test_mutated_consistency_proof_fails_unless_reference_accepts(
    case: tuple[int, int], mutation: str, data: st.DataObject
) -> None:
    m, n = case
    proof = merkle.prove_consistency(m, n, full_store())
    old_root, new_root = ref_root(m), ref_root(n)
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    if not mutate_proof(proof, mutation, bit, data, [old_root, new_root, bytes(32)]):
        return
    if mutation == "flip-old-root-bit":
        old_root = flip_bit(old_root, bit)
    elif mutation == "flip-new-root-bit":
        new_root = flip_bit(new_root, bit)
    elif mutation == "old+1":
        m += 1
    elif mutation == "old-1":
        m -= 1
    elif mutation == "new+1":
        n += 1
    elif mutation == "new-1":
        n -= 1
    expected = reference.verify_consistency(m, n, old_root, new_root, proof)
    assert outcome(merkle.verify_consistency, m, n, old_root, new_root, proof) == expected
    if mutation in ALWAYS_FAILS:
        assert not expected


@PROPS
@given(sizes, st.integers(min_value=1, max_value=64))
def test_compact_range_matches_reference(n: int, batch: int) -> None:
    leaves = all_leaves()[:n]
    hashes = [merkle.leaf_hash(d) for d in leaves]
    one_by_one = merkle.CompactRange()
    for h in hashes:
        one_by_one.append(h)
    batched = merkle.CompactRange()
    for start in range(0, n, batch):
        batched.extend(iter(hashes[start : start + batch]))
    want = reference.compact_range(leaves)
    for cr in (one_by_one, batched):
        assert cr.size == n
        assert cr.hashes == want
        assert cr.root() == ref_root(n)


@PROPS
@given(old_and_new())
def test_frontier_from_consistency_then_extend_reaches_new_root(case: tuple[int, int]) -> None:
    m, n = case
    leaves = all_leaves()
    if m == n:
        # nothing to recover from equal sizes: the caller keeps its compact range
        with pytest.raises(ProofError):
            merkle.frontier_from_consistency(m, n, ref_root(m), ref_root(n), [])
        return
    proof = merkle.prove_consistency(m, n, full_store())
    frontier = merkle.frontier_from_consistency(m, n, ref_root(m), ref_root(n), proof)
    assert frontier.size == m
    assert frontier.hashes == reference.compact_range(leaves[:m])
    assert frontier.root() == ref_root(m)
    frontier.extend(merkle.leaf_hash(d) for d in leaves[m:n])
    assert frontier.root() == ref_root(n)


@PROPS
@given(old_and_new(), st.integers(min_value=0, max_value=255))
def test_frontier_from_tampered_consistency_fails(case: tuple[int, int], bit: int) -> None:
    m, n = case
    if m == n:
        return
    proof = merkle.prove_consistency(m, n, full_store())
    tampered = [flip_bit(proof[0], bit), *proof[1:]]
    with pytest.raises(RootMismatchError) as info:
        merkle.frontier_from_consistency(m, n, ref_root(m), ref_root(n), tampered)
    assert info.value.expected in (ref_root(m), ref_root(n))
    assert info.value.computed != info.value.expected


@PROPS
@given(sizes)
def test_frontier_from_empty_tree_is_empty(n: int) -> None:
    frontier = merkle.frontier_from_consistency(0, n, merkle.EMPTY_ROOT, ref_root(n), [])
    assert frontier.size == 0
    frontier.extend(merkle.leaf_hash(d) for d in all_leaves()[:n])
    assert frontier.root() == ref_root(n)


def test_off_by_one_index_and_size_agree_with_reference_exhaustively() -> None:
    # An index or size moved by one can give a proof of the same shape (say
    # index 0 in sizes 5 and 6): RFC 9162 verification then accepts, as Go's
    # does. Everything else must fail; the exact oracle decides which is which.
    accepted = rejected = 0
    for n in range(1, 41):
        root = ref_root(n)
        for i in range(n):
            proof = merkle.prove_inclusion(i, n, full_store())
            leaf = merkle.leaf_hash(all_leaves()[i])
            for j, size in ((i + 1, n), (i - 1, n), (i, n + 1), (i, n - 1)):
                if j < 0:
                    continue
                want = reference.verify_inclusion(leaf, j, size, proof, root)
                assert outcome(merkle.verify_inclusion, leaf, j, size, proof, root) == want
                accepted, rejected = accepted + want, rejected + (not want)
        for m in range(1, n + 1):
            proof = merkle.prove_consistency(m, n, full_store())
            for old, new in ((m + 1, n), (m - 1, n), (m, n + 1), (m, n - 1)):
                want = reference.verify_consistency(old, new, ref_root(m), root, proof)
                got = outcome(merkle.verify_consistency, old, new, ref_root(m), root, proof)
                assert got == want, (m, n, old, new)
                accepted, rejected = accepted + want, rejected + (not want)
    assert accepted
    assert rejected


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=600))
def test_append_nodes_yields_the_stored_hash_sequence(n: int) -> None:
    # What a writer stores for each leaf is exactly the tlog stored-hash order
    # that storage.stored_hash_index addresses, and the range's root is the tree's.
    from disclosure_ledger._store.sqlite import stored_hash_count, stored_hash_index

    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = merkle.CompactRange()
    stored: list[bytes] = []
    for lh in leaves:
        stored += tree.append_nodes(lh)
    assert len(stored) == stored_hash_count(n)
    full = merkle.MemoryHashStore()
    full.extend(leaves)
    for level, row in enumerate(full.levels):
        for k, h in enumerate(row):
            assert stored[stored_hash_index(level, k)] == h
    assert tree.root() == merkle.tree_root(n, full)
