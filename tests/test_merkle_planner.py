"""The public proof planner: which stored nodes a proof needs, checked against the RFC recursion.

Each planned node covers a range of leaves; the reference says which range each
proof hash must cover (``path_ranges`` / ``proof_ranges``). So the planner is
tested without hashing anything, for every size up to 130 (past two blocks of
64 and an upper level), and then end to end against the reference hashes.
"""

from __future__ import annotations

import itertools

import pytest

from disclosure_ledger._core import merkle
from disclosure_ledger._core.merkle import NodeId, ProofNodes
from disclosure_ledger.errors import MalformedError

from . import reference

MAX = 130


def _covers(node: NodeId) -> tuple[int, int]:
    return node.n << node.level, (node.n + 1) << node.level


def _ranges(nodes: ProofNodes) -> list[tuple[int, int]]:
    # Each group of perfect subtrees folds into one proof hash: it must be
    # contiguous, and cover what the RFC's hash at that place covers.
    out, pos = [], 0
    for n in nodes.groups:
        group = [_covers(node) for node in nodes.ids[pos : pos + n]]
        for (_, hi), (lo, _) in itertools.pairwise(group):
            assert hi == lo, f"group {group} is not contiguous"
        out.append((group[0][0], group[-1][1]))
        pos += n
    return out


def _store() -> tuple[merkle.MemoryHashStore, list[bytes]]:
    leaves = [f"leaf {i}".encode() for i in range(MAX)]
    store = merkle.MemoryHashStore()
    store.extend(merkle.leaf_hash(x) for x in leaves)
    return store, leaves


def test_inclusion_nodes_cover_the_reference_path_ranges() -> None:
    for size in range(1, MAX + 1):
        for index in range(size):
            nodes = merkle.inclusion_nodes(index, size)
            assert _ranges(nodes) == reference.path_ranges(index, 0, size), (index, size)
            assert all(_covers(node)[1] <= size for node in nodes.ids)  # complete subtrees only


def test_consistency_nodes_cover_the_reference_proof_ranges() -> None:
    for new in range(1, MAX + 1):
        for old in range(1, new + 1):
            nodes = merkle.consistency_nodes(old, new)
            assert _ranges(nodes) == reference.proof_ranges(old, 0, new), (old, new)
            assert all(_covers(node)[1] <= new for node in nodes.ids)


def test_planned_nodes_rehash_to_the_reference_proofs() -> None:
    store, leaves = _store()
    for size in (1, 2, 3, 7, 8, 63, 64, 65, 127, 128, 129, MAX):
        for index in range(size):
            nodes = merkle.inclusion_nodes(index, size)
            got = nodes.rehash(store.read_hashes(nodes.ids))
            assert got == reference.path(index, leaves[:size])
        for old in range(1, size + 1):
            nodes = merkle.consistency_nodes(old, size)
            got = nodes.rehash(store.read_hashes(nodes.ids))
            assert got == reference.proof(old, leaves[:size])


def test_each_proof_is_one_batch_of_o_log_n_nodes() -> None:
    # What "one round trip" rests on: a handful of nodes per level, all named up front.
    for size in (1000, 1 << 20, (1 << 40) + 12345):
        for index in (0, size // 3, size - 1):
            assert len(merkle.inclusion_nodes(index, size).ids) <= 2 * size.bit_length()
        assert len(merkle.consistency_nodes(size // 2 + 1, size).ids) <= 3 * size.bit_length()


@pytest.mark.parametrize(
    ("index", "size", "match"),
    [(3, 3, "not below"), (0, 0, "not below"), (-1, 4, "non-negative"), (0, -2, "non-negative")],
)
def test_inclusion_nodes_refuse_impossible_positions(index: int, size: int, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        merkle.inclusion_nodes(index, size)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [(0, 5, "empty tree"), (0, 0, "empty tree"), (6, 5, "larger"), (-1, 5, "non-negative")],
)
def test_consistency_nodes_refuse_impossible_sizes(old: int, new: int, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        merkle.consistency_nodes(old, new)


def test_equal_sizes_need_no_nodes() -> None:
    assert merkle.consistency_nodes(9, 9) == ProofNodes((), ())


def test_rehash_refuses_a_wrong_count_or_length() -> None:
    store, _ = _store()
    nodes = merkle.inclusion_nodes(5, 77)
    hashes = store.read_hashes(nodes.ids)
    with pytest.raises(MalformedError, match="needs"):
        nodes.rehash(hashes[:-1])
    with pytest.raises(MalformedError, match="32 bytes"):
        nodes.rehash([*hashes[:-1], hashes[-1][:31]])
    # The right total length split wrongly, and a value that is not bytes.
    with pytest.raises(MalformedError, match="32 bytes"):
        nodes.rehash([hashes[0][:31], hashes[1] + b"\x00", *hashes[2:]])
    with pytest.raises(MalformedError, match="32 bytes"):
        nodes.rehash([*hashes[:-1], hashes[-1].hex()[:32]])
    with pytest.raises(MalformedError, match="groups"):
        ProofNodes(nodes.ids, (*nodes.groups, 1))


def test_place_nodes_splits_by_where_a_store_finds_them() -> None:
    from disclosure_ledger._store.layout import UPPER_LEVEL, place_nodes, stored_hash_index

    up_known, up_absent, low = (UPPER_LEVEL, 3), (UPPER_LEVEL + 1, 0), (2, 5)
    known = {stored_hash_index(*up_known): b"k" * 32}
    out, absent, lower = place_nodes([low, up_known, up_absent], known)
    assert out == [b"", b"k" * 32, b""]
    assert absent == [(2, stored_hash_index(*up_absent))]
    assert lower == [(0, stored_hash_index(*low))]
