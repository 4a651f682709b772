"""RFC 6962 conformance against published vectors.

* every inclusion and consistency probe of transparency-dev/merkle's testdata,
  named by its path so a failure says which mutation got through;
* the classic 8-leaf reference tree: roots, node hashes, proofs, compact ranges;
* the tessera test log: its entry bundles, level-0 tile and checkpoint roots.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from disclosure_ledger._core import merkle
from disclosure_ledger.errors import LedgerError, MalformedError, ProofError, RootMismatchError

from .conftest import load_json, vectors_dir

PROBES = vectors_dir() / "transparency-dev-merkle" / "testdata"


def _probe_files(kind: str) -> list[Path]:
    files = sorted((PROBES / kind).rglob("*.json"))
    if not files:
        raise FileNotFoundError(f"no {kind} probes under {PROBES}")
    return files


def _ids(files: list[Path]) -> list[str]:
    return [str(f.relative_to(PROBES)) for f in files]


INCLUSION = _probe_files("inclusion")
CONSISTENCY = _probe_files("consistency")


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(probe: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in probe["proof"] or []]


def test_probe_sets_are_complete() -> None:
    # 196 files upstream; guard against the walk silently losing a directory.
    assert len(INCLUSION) + len(CONSISTENCY) == 196
    assert {f.relative_to(PROBES).parts[1] for f in INCLUSION} >= {"0", "4", "single-entry"}


@pytest.mark.parametrize("path", INCLUSION, ids=_ids(INCLUSION))
def test_inclusion_probe(path: Path) -> None:
    probe = load_json(str(path.relative_to(vectors_dir())))
    args = (
        _b64(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        _proof(probe),
        _b64(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(LedgerError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY, ids=_ids(CONSISTENCY))
def test_consistency_probe(path: Path) -> None:
    probe = load_json(str(path.relative_to(vectors_dir())))
    args = (
        probe["size1"],
        probe["size2"],
        _b64(probe["root1"]),
        _b64(probe["root2"]),
        _proof(probe),
    )
    if probe["wantErr"]:
        with pytest.raises(LedgerError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_happy_probes_exist_and_pass() -> None:
    # The parametrized tests above would pass vacuously if every probe wanted an error.
    happy = [
        f
        for f in INCLUSION + CONSISTENCY
        if not load_json(str(f.relative_to(vectors_dir())))["wantErr"]
    ]
    assert len(happy) >= 10


# --- the 8-leaf reference tree -------------------------------------------------

TREE8 = load_json("transparency-dev-merkle/reference_tree_8.json")
LEAVES8 = [bytes.fromhex(x) for x in TREE8["leaf_inputs_hex"]]


def _hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


@pytest.fixture
def store8() -> merkle.MemoryHashStore:
    store = merkle.MemoryHashStore()
    store.extend(merkle.leaf_hash(leaf) for leaf in LEAVES8)
    return store


def test_tree8_hasher_unit_vectors() -> None:
    unit = TREE8["rfc6962_hasher_unit"]
    assert merkle.EMPTY_ROOT.hex() == unit["empty_root"]
    assert merkle.leaf_hash(b"").hex() == unit['leaf_hash("")']
    assert merkle.leaf_hash(b"L123456").hex() == unit['leaf_hash("L123456")']
    # The upstream vector hashes two 4-byte children; node_hash refuses anything
    # but 32-byte hashes, so check the formula directly and the refusal.
    assert hashlib.sha256(b"\x01N123N456").hexdigest() == unit['node_hash("N123","N456")']
    with pytest.raises(MalformedError):
        merkle.node_hash(b"N123", b"N456")
    left, right = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


@pytest.mark.parametrize("size", range(9))
def test_tree8_root_by_size(size: int, store8: merkle.MemoryHashStore) -> None:
    want = bytes.fromhex(TREE8["root_by_size_hex"][str(size)])
    assert merkle.tree_root(size, store8) == want
    cr = merkle.CompactRange()
    cr.extend(merkle.leaf_hash(leaf) for leaf in LEAVES8[:size])
    assert cr.root() == want


def test_tree8_node_hashes_by_level(store8: merkle.MemoryHashStore) -> None:
    for level, row in enumerate(TREE8["node_hashes_by_level_hex"]):
        ids = [merkle.NodeId(level, n) for n in range(len(row))]
        assert store8.read_hashes(ids) == _hexes(row), f"level {level}"


def test_tree8_reading_a_missing_node_is_an_error(store8: merkle.MemoryHashStore) -> None:
    with pytest.raises(MalformedError):
        store8.read_hashes([merkle.NodeId(0, 8)])
    with pytest.raises(MalformedError):
        store8.read_hashes([merkle.NodeId(4, 0)])


@pytest.mark.parametrize(
    "case", TREE8["inclusion_proofs"], ids=lambda c: f"{c['leaf_index_0based']}-of-{c['tree_size']}"
)
def test_tree8_inclusion_proof(case: dict[str, Any], store8: merkle.MemoryHashStore) -> None:
    index, size = case["leaf_index_0based"], case["tree_size"]
    want = _hexes(case["proof"])
    assert merkle.prove_inclusion(index, size, store8) == want
    root = bytes.fromhex(TREE8["root_by_size_hex"][str(size)])
    leaf = merkle.leaf_hash(LEAVES8[index])
    merkle.verify_inclusion(leaf, index, size, want, root)
    with pytest.raises(RootMismatchError):
        merkle.verify_inclusion(merkle.leaf_hash(b"not the leaf"), index, size, want, root)


@pytest.mark.parametrize(
    "case", TREE8["consistency_proofs"], ids=lambda c: f"{c['size1']}-to-{c['size2']}"
)
def test_tree8_consistency_proof(case: dict[str, Any], store8: merkle.MemoryHashStore) -> None:
    old, new = case["size1"], case["size2"]
    want = _hexes(case["proof"])
    assert merkle.prove_consistency(old, new, store8) == want
    old_root = bytes.fromhex(TREE8["root_by_size_hex"][str(old)])
    new_root = bytes.fromhex(TREE8["root_by_size_hex"][str(new)])
    merkle.verify_consistency(old, new, old_root, new_root, want)
    with pytest.raises(RootMismatchError):
        merkle.verify_consistency(old, new, old_root, merkle.leaf_hash(b"forged"), want)


@pytest.mark.parametrize("size", range(9))
def test_tree8_compact_range_by_size(size: int) -> None:
    want = _hexes(TREE8["compact_ranges_by_size_hex"][str(size)])
    one_by_one = merkle.CompactRange()
    for leaf in LEAVES8[:size]:
        one_by_one.append(merkle.leaf_hash(leaf))
    assert one_by_one.size == size
    assert one_by_one.hashes == want
    batch = merkle.CompactRange()
    batch.extend(merkle.leaf_hash(leaf) for leaf in LEAVES8[:size])
    assert batch.hashes == want


def test_tree8_every_proof_pair_verifies(store8: merkle.MemoryHashStore) -> None:
    roots = {int(k): bytes.fromhex(v) for k, v in TREE8["root_by_size_hex"].items()}
    for size in range(1, 9):
        for index in range(size):
            proof = merkle.prove_inclusion(index, size, store8)
            merkle.verify_inclusion(
                merkle.leaf_hash(LEAVES8[index]), index, size, proof, roots[size]
            )
        for old in range(1, size + 1):
            proof = merkle.prove_consistency(old, size, store8)
            merkle.verify_consistency(old, size, roots[old], roots[size], proof)


def test_root_mismatch_carries_expected_and_computed(store8: merkle.MemoryHashStore) -> None:
    root = merkle.tree_root(8, store8)
    proof = merkle.prove_inclusion(3, 8, store8)
    wrong_leaf = merkle.leaf_hash(b"wrong")
    with pytest.raises(RootMismatchError) as info:
        merkle.verify_inclusion(wrong_leaf, 3, 8, proof, root)
    assert info.value.expected == root
    assert info.value.computed == merkle.root_from_inclusion(wrong_leaf, 3, 8, proof)
    assert info.value.computed != root
    assert root.hex() in str(info.value)

    old_root = merkle.tree_root(5, store8)
    forged = bytes(32)
    with pytest.raises(RootMismatchError) as info:
        merkle.verify_consistency(5, 8, old_root, forged, merkle.prove_consistency(5, 8, store8))
    assert info.value.expected == forged
    assert info.value.computed == root


# --- edge-case rules the project chose (see merkle's module docstring) ---------


@pytest.mark.parametrize("new_size", [0, 1, 8])
def test_consistency_from_size_zero_is_refused(
    new_size: int, store8: merkle.MemoryHashStore
) -> None:
    new_root = merkle.tree_root(new_size, store8)
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, new_size, merkle.EMPTY_ROOT, new_root, [])
    with pytest.raises(MalformedError):
        merkle.prove_consistency(0, new_size, store8)


def test_consistency_equal_sizes(store8: merkle.MemoryHashStore) -> None:
    root = merkle.tree_root(5, store8)
    merkle.verify_consistency(5, 5, root, root, [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(5, 5, root, root, [root])
    with pytest.raises(RootMismatchError):
        merkle.verify_consistency(5, 5, root, merkle.tree_root(4, store8), [])
    # Nothing is hashed between equal sizes, so roots are compared as given
    # (transparency-dev's additional/sizes-are-equal-one-and-proof-is-empty)...
    merkle.verify_consistency(1, 1, b"opaque", b"opaque", [])
    with pytest.raises(RootMismatchError):
        merkle.verify_consistency(1, 1, b"opaque", b"other", [])
    # ...but they must still be bytes.
    with pytest.raises(MalformedError):
        merkle.verify_consistency(1, 1, "opaque", "opaque", [])  # type: ignore[arg-type]


def test_consistency_old_larger_than_new_is_refused(store8: merkle.MemoryHashStore) -> None:
    with pytest.raises(ProofError):
        merkle.verify_consistency(
            6, 5, merkle.tree_root(6, store8), merkle.tree_root(5, store8), []
        )
    with pytest.raises(MalformedError):
        merkle.prove_consistency(6, 5, store8)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_wrong_hash_lengths_are_malformed(length: int, store8: merkle.MemoryHashStore) -> None:
    bad = b"\x01" * length
    root = merkle.tree_root(8, store8)
    leaf = merkle.leaf_hash(LEAVES8[2])
    proof = merkle.prove_inclusion(2, 8, store8)
    with pytest.raises(MalformedError):
        merkle.verify_inclusion(bad, 2, 8, proof, root)
    with pytest.raises(MalformedError):
        merkle.verify_inclusion(leaf, 2, 8, proof, bad)
    with pytest.raises(MalformedError):
        merkle.verify_inclusion(leaf, 2, 8, [proof[0], bad, proof[2]], root)
    old_root = merkle.tree_root(3, store8)
    cproof = merkle.prove_consistency(3, 8, store8)
    with pytest.raises(MalformedError):
        merkle.verify_consistency(3, 8, bad, root, cproof)
    with pytest.raises(MalformedError):
        merkle.verify_consistency(3, 8, old_root, bad, cproof)
    with pytest.raises(MalformedError):
        merkle.verify_consistency(3, 8, old_root, root, [*cproof[:-1], bad])
    with pytest.raises(MalformedError):
        merkle.CompactRange().append(bad)
    with pytest.raises(MalformedError):
        merkle.MemoryHashStore().append(bad)


@pytest.mark.parametrize("value", [-1, True, 1.0, "1", None])
def test_sizes_must_be_non_negative_ints(value: Any, store8: merkle.MemoryHashStore) -> None:
    root = merkle.tree_root(8, store8)
    leaf = merkle.leaf_hash(LEAVES8[0])
    with pytest.raises(MalformedError):
        merkle.verify_inclusion(leaf, value, 8, [], root)
    with pytest.raises(MalformedError):
        merkle.verify_consistency(value, 8, root, root, [])
    with pytest.raises(MalformedError):
        merkle.tree_root(value, store8)
    with pytest.raises(MalformedError):
        merkle.prove_inclusion(value, 8, store8)


def test_prove_inclusion_index_out_of_range(store8: merkle.MemoryHashStore) -> None:
    with pytest.raises(MalformedError):
        merkle.prove_inclusion(8, 8, store8)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(b""), 8, 8, [], merkle.tree_root(8, store8))


def test_compact_range_refuses_inconsistent_construction() -> None:
    h = merkle.leaf_hash(b"x")
    with pytest.raises(MalformedError):
        merkle.CompactRange(3, [h])
    with pytest.raises(MalformedError):
        merkle.CompactRange(1, [h[:31]])
    with pytest.raises(MalformedError):
        merkle.CompactRange(-1, [])
    assert merkle.CompactRange().root() == merkle.EMPTY_ROOT


def test_compact_range_copy_is_independent() -> None:
    cr = merkle.CompactRange()
    cr.append(merkle.leaf_hash(b"a"))
    twin = cr.copy()
    twin.append(merkle.leaf_hash(b"b"))
    assert cr.size == 1
    assert twin.size == 2
    assert cr.root() == merkle.leaf_hash(b"a")


def test_compact_range_bad_hash_in_batch_keeps_earlier_leaves() -> None:
    cr = merkle.CompactRange()
    good = [merkle.leaf_hash(bytes([i])) for i in range(3)]
    with pytest.raises(MalformedError):
        cr.extend([*good, b"short"])
    assert cr.size == 3
    assert cr.hashes == [merkle.node_hash(good[0], good[1]), good[2]]


# --- the tessera test log ------------------------------------------------------

LOG = vectors_dir() / "tessera-testdata-log" / "testdata" / "log"


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """Split a tlog-tiles entry bundle: each entry is a big-endian uint16 length, then bytes."""
    entries = []
    pos = 0
    while pos < len(data):
        assert pos + 2 <= len(data), "truncated length prefix"
        n = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        assert pos + n <= len(data), "truncated entry"
        entries.append(data[pos : pos + n])
        pos += n
    return entries


def _checkpoint_root(n: int) -> tuple[int, bytes]:
    lines = (LOG / f"checkpoint.{n}").read_text(encoding="utf-8").split("\n")
    return int(lines[1]), base64.b64decode(lines[2])


def test_tessera_entry_bundles() -> None:
    entries = parse_entry_bundle((LOG / "tile/entries/000.p/15").read_bytes())
    assert len(entries) == 15
    assert entries[0] == b"one"
    for n in range(1, 16):
        assert parse_entry_bundle((LOG / f"tile/entries/000.p/{n}").read_bytes()) == entries[:n]


def test_tessera_level0_tiles_hold_the_leaf_hashes() -> None:
    entries = parse_entry_bundle((LOG / "tile/entries/000.p/15").read_bytes())
    leaves = [merkle.leaf_hash(e) for e in entries]
    for n in range(1, 16):
        tile = (LOG / f"tile/0/000.p/{n}").read_bytes()
        assert len(tile) == 32 * n
        assert [tile[i : i + 32] for i in range(0, len(tile), 32)] == leaves[:n]


@pytest.mark.parametrize("n", range(16))
def test_tessera_checkpoint_root_recomputed(n: int) -> None:
    entries = parse_entry_bundle((LOG / "tile/entries/000.p/15").read_bytes())
    leaves = [merkle.leaf_hash(e) for e in entries[:n]]
    size, root = _checkpoint_root(n)
    assert size == n
    store = merkle.MemoryHashStore()
    store.extend(leaves)
    assert merkle.tree_root(n, store) == root
    cr = merkle.CompactRange()
    cr.extend(leaves)
    assert cr.root() == root
    if n:
        # and the root is provable: the last leaf is included, the previous head consistent
        proof = merkle.prove_inclusion(n - 1, n, store)
        merkle.verify_inclusion(leaves[-1], n - 1, n, proof, root)
    if n > 1:
        _, old_root = _checkpoint_root(n - 1)
        proof = merkle.prove_consistency(n - 1, n, store)
        merkle.verify_consistency(n - 1, n, old_root, root, proof)
        with pytest.raises(RootMismatchError):
            merkle.verify_consistency(n - 1, n, root, root, proof)


def test_wrong_types_are_refused_not_coerced() -> None:
    with pytest.raises(TypeError):
        merkle.leaf_hash(5)  # type: ignore[arg-type]  # bytes(5) would be five zero bytes
    root = merkle.leaf_hash(b"a")
    with pytest.raises(MalformedError):
        merkle.verify_inclusion(root, 0, 2, ["x" * 32], root)  # type: ignore[list-item]
    with pytest.raises(MalformedError):
        merkle.verify_consistency(1, 2, root, root, ["x" * 32])  # type: ignore[list-item]
    cr = merkle.CompactRange()
    with pytest.raises(MalformedError):
        cr.extend(["x" * 32])  # type: ignore[list-item]
    assert cr.size == 0
