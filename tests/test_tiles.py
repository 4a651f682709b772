"""C2SP tlog-tiles in the core: paths, tile and bundle bytes, and proofs read from tiles.

The Tessera test log in ``../shared/vectors/tessera-testdata-log`` is the
interoperability oracle: its tiles decode here, its entries hash to its level-0
tiles and the roots computed from its tiles are the ones its signed
checkpoints carry.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disclosure_ledger._core.checkpoints import open_checkpoint
from disclosure_ledger._core.merkle import (
    MemoryHashStore,
    NodeId,
    leaf_hash,
    prove_consistency,
    prove_inclusion,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from disclosure_ledger._core.notes import parse_verifier
from disclosure_ledger._core.tiles import (
    FULL_TILE_BYTES,
    MAX_ENTRY_SIZE,
    Tile,
    TileHashReader,
    decode_entry_bundle,
    decode_hash_tile,
    encode_entry_bundle,
    encode_hash_tile,
    format_tile_index,
    new_tiles,
    parse_tile_path,
    subtree_root,
    sumdb_tile_path,
    tile_path,
    tiles_for_size,
)
from disclosure_ledger._log.tilereader import DirectorySource, TileChecker, TileLog
from disclosure_ledger.errors import MalformedError, StorageError
from tests.conftest import vectors_dir

TESSERA_KEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"


def _tessera() -> Path:
    return vectors_dir() / "tessera-testdata-log" / "testdata" / "log"


# -- paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (10**9, "x001/x000/x000/000"),
    ],
)
def test_index_encoding_matches_the_spec(n: int, text: str) -> None:
    assert format_tile_index(n) == text


def test_tile_paths() -> None:
    assert tile_path(Tile(0, 1234067, 256)) == "tile/0/x001/x234/067"
    assert tile_path(Tile(2, 5, 17)) == "tile/2/005.p/17"
    assert tile_path(Tile(0, 0, 3, entries=True)) == "tile/entries/000.p/3"
    assert Tile(1, 1000, 256, entries=False).path == "tile/1/x001/000"
    assert sumdb_tile_path(Tile(1, 2, 5)) == "tile/8/1/002.p/5"
    with pytest.raises(MalformedError, match="sumdb"):
        sumdb_tile_path(Tile(0, 2, 5, entries=True))


@given(
    level=st.integers(0, 63),
    n=st.integers(0, 10**15),
    width=st.integers(1, 256),
    entries=st.booleans(),
)
def test_path_round_trip(level: int, n: int, width: int, entries: bool) -> None:
    tile = Tile(0 if entries else level, n, width, entries)
    assert parse_tile_path(tile_path(tile)) == tile


@pytest.mark.parametrize(
    "path",
    [
        "checkpoint",
        "tile/0",
        "tile/00/000",  # leading zero in the level
        "tile/64/000",  # level out of range
        "tile/-1/000",
        "tile/0/00",  # two digits
        "tile/0/0000",
        "tile/0/001/002",  # a non-last element without x
        "tile/0/x001",  # the last element with x
        "tile/0/x000/005",  # non-canonical index
        "tile/0/000.p/0",
        "tile/0/000.p/256",  # a full tile is not written as partial
        "tile/0/000.p/07",
        "tile/0/000.p/",
        "tile/0/000.q/5",
        "tile/entries/000.p/5/6",
        "tile/0/abc",
        "tile/data/000",
    ],
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(MalformedError, match="tile path"):
        parse_tile_path(path)


def test_bad_tiles_are_refused() -> None:
    with pytest.raises(MalformedError, match="width"):
        Tile(0, 0, 0)
    with pytest.raises(MalformedError, match="width"):
        Tile(0, 0, 257)
    with pytest.raises(MalformedError, match="level"):
        Tile(64, 0, 1)
    with pytest.raises(MalformedError, match="entry bundle"):
        Tile(1, 0, 1, entries=True)
    with pytest.raises(MalformedError, match="index"):
        Tile(0, -1, 1)


# -- which tiles a tree has --------------------------------------------------------------


def test_tiles_of_the_spec_example() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one
    # partial level 0 tile of width 112, one full level 1 tile, one partial
    # level 1 tile of width 17, and one partial level 2 tile of width 1."
    tiles = tiles_for_size(70_000, entries=False)
    level0 = [t for t in tiles if t.level == 0]
    assert sum(t.full for t in level0) == 273
    assert [t.width for t in level0 if not t.full] == [112]
    assert [t.width for t in tiles if t.level == 1] == [256, 17]
    assert [t.width for t in tiles if t.level == 2] == [1]
    assert len(tiles) == 273 + 1 + 2 + 1
    bundles = [t for t in tiles_for_size(70_000) if t.entries]
    assert [t.n for t in bundles] == list(range(274))
    assert bundles[-1].width == 112


def test_size_256_has_a_partial_level_1_tile() -> None:
    assert tiles_for_size(256, entries=False) == [Tile(0, 0, 256), Tile(1, 0, 1)]
    assert tiles_for_size(0) == []


@given(st.integers(0, 200_000), st.integers(0, 200_000))
def test_new_tiles_are_what_the_larger_tree_adds(a: int, b: int) -> None:
    old, new = min(a, b), max(a, b)
    added = set(new_tiles(old, new))
    assert added == set(tiles_for_size(new)) - set(tiles_for_size(old))


def test_new_tiles_refuses_shrinking() -> None:
    with pytest.raises(MalformedError, match="larger"):
        new_tiles(5, 4)
    with pytest.raises(MalformedError, match="non-negative"):
        new_tiles(-1, 4)


# -- tile and bundle bytes ---------------------------------------------------------------


def test_hash_tile_round_trip_and_errors() -> None:
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(256)]
    data = encode_hash_tile(hashes)
    assert len(data) == FULL_TILE_BYTES
    assert decode_hash_tile(data, 256) == hashes
    with pytest.raises(MalformedError, match="not 8191"):
        decode_hash_tile(data[:-1], 256)
    with pytest.raises(MalformedError, match="not 8224"):
        decode_hash_tile(data + bytes(32), 256)
    with pytest.raises(MalformedError, match="1 to 256"):
        encode_hash_tile([])
    with pytest.raises(MalformedError, match="32 bytes"):
        encode_hash_tile([b"short"])


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=40))
def test_bundle_round_trip(entries: list[bytes]) -> None:
    data = encode_entry_bundle(entries)
    assert decode_entry_bundle(data, len(entries)) == entries


def test_bundle_errors() -> None:
    data = encode_entry_bundle([b"one", b"two"])
    assert data == b"\x00\x03one\x00\x03two"
    with pytest.raises(MalformedError, match="after its 2 entries"):
        decode_entry_bundle(data + b"\x00", 2)
    with pytest.raises(MalformedError, match="after its 1 entries"):
        decode_entry_bundle(data, 1)
    with pytest.raises(MalformedError, match="truncated"):
        decode_entry_bundle(data[:-1], 2)
    with pytest.raises(MalformedError, match="ends before entry 2"):
        decode_entry_bundle(data, 3)
    with pytest.raises(MalformedError, match="does not fit"):
        encode_entry_bundle([bytes(MAX_ENTRY_SIZE + 1)])
    assert decode_entry_bundle(encode_entry_bundle([bytes(MAX_ENTRY_SIZE)]), 1) == [
        bytes(MAX_ENTRY_SIZE)
    ]
    with pytest.raises(MalformedError, match="1 to 256"):
        encode_entry_bundle([])


def test_subtree_root_matches_the_tree() -> None:
    store = MemoryHashStore()
    store.extend(leaf_hash(bytes([i])) for i in range(8))
    assert subtree_root(store.levels[0]) == tree_root(8, store)
    with pytest.raises(MalformedError, match="power of two"):
        subtree_root(store.levels[0][:3])


# -- the Tessera test log ----------------------------------------------------------------


def test_tessera_log_reads_and_its_roots_match_its_checkpoints() -> None:
    log = _tessera()
    verifier = parse_verifier(TESSERA_KEY)
    for size in range(1, 16):
        note = (log / f"checkpoint.{size}").read_text(encoding="utf-8")
        checkpoint = open_checkpoint(note, verifier).checkpoint
        assert checkpoint.size == size
        tiles = tiles_for_size(size)
        assert [t.path for t in tiles] == [f"tile/0/000.p/{size}", f"tile/entries/000.p/{size}"]
        hashes = decode_hash_tile((log / tiles[0].path).read_bytes(), size)
        entries = decode_entry_bundle((log / tiles[1].path).read_bytes(), size)
        assert [leaf_hash(e) for e in entries] == hashes

        def fetch(wanted: Sequence[Tile]) -> list[list[bytes]]:
            return [decode_hash_tile((log / t.path).read_bytes(), t.width) for t in wanted]

        reader = TileHashReader(size, fetch)
        assert tree_root(size, reader) == checkpoint.root


def test_tessera_tampered_tile_gives_another_root() -> None:
    log = _tessera()
    note = (log / "checkpoint.15").read_text(encoding="utf-8")
    root = open_checkpoint(note, parse_verifier(TESSERA_KEY)).checkpoint.root
    data = bytearray((log / "tile/0/000.p/15").read_bytes())
    data[100] ^= 1

    def fetch(wanted: Sequence[Tile]) -> list[list[bytes]]:
        return [decode_hash_tile(bytes(data), t.width) for t in wanted]

    assert tree_root(15, TileHashReader(15, fetch)) != root


# -- proofs from tiles equal proofs from every stored hash -------------------------------


def _tiles_of(store: MemoryHashStore) -> dict[Tile, list[bytes]]:
    out: dict[Tile, list[bytes]] = {}
    for tile in tiles_for_size(store.size, entries=False):
        out[tile] = store.read_hashes([tile.node(i) for i in range(tile.width)])
    return out


def test_proofs_from_tiles_match_the_store() -> None:
    rng = random.Random(13)
    store = MemoryHashStore()
    store.extend(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(66_000))
    calls: list[int] = []
    for size in (1, 2, 255, 256, 257, 65_535, 65_536, 65_537, 66_000):
        tiles = _tiles_of_size(store, size)

        def fetch(
            wanted: Sequence[Tile], tiles: dict[Tile, list[bytes]] = tiles
        ) -> list[list[bytes]]:
            calls.append(len(wanted))
            return [tiles[t] for t in wanted]

        reader = TileHashReader(size, fetch)
        assert tree_root(size, reader) == tree_root(size, store)
        for index in {0, size - 1, rng.randrange(size)}:
            assert prove_inclusion(index, size, reader) == prove_inclusion(index, size, store)
        if size > 1:
            old = rng.randrange(1, size)
            assert prove_consistency(old, size, reader) == prove_consistency(old, size, store)
    assert calls
    assert max(calls) <= 6  # one batch per proof, a few tiles each


def _tiles_of_size(store: MemoryHashStore, size: int) -> dict[Tile, list[bytes]]:
    return {
        t: store.read_hashes([t.node(i) for i in range(t.width)])
        for t in tiles_for_size(size, entries=False)
    }


def test_reader_refuses_a_node_beyond_the_tree() -> None:
    reader = TileHashReader(10, lambda tiles: [[bytes(32)] * t.width for t in tiles])
    with pytest.raises(StorageError, match="not a complete subtree"):
        reader.read_hashes([NodeId(0, 10)])
    with pytest.raises(StorageError, match="not a complete subtree"):
        reader.read_hashes([NodeId(4, 0)])


def test_reader_refuses_a_short_fetch() -> None:
    reader = TileHashReader(10, lambda tiles: [])
    with pytest.raises(StorageError, match="got 0"):
        reader.read_hashes([NodeId(0, 1)])


def test_tiles_of_store_cover_every_tile() -> None:
    store = MemoryHashStore()
    store.extend(hashlib.sha256(bytes([i])).digest() for i in range(3))
    assert list(_tiles_of(store)) == [Tile(0, 0, 3)]


def test_tessera_log_through_the_tile_reader() -> None:
    # The same reader `verify --tiles` and `prove --tiles` use, on Tessera's files.
    log = TileLog(DirectorySource(_tessera()))
    verifier = parse_verifier(TESSERA_KEY)
    roots = {}
    for size in range(1, 16):
        note = (_tessera() / f"checkpoint.{size}").read_text(encoding="utf-8")
        roots[size] = open_checkpoint(note, verifier).checkpoint.root
        assert tree_root(size, log.hash_reader(size)) == roots[size]
        entries = list(log.iter_leaves(0, size, size))
        checker = TileChecker(log, 0, size)
        checker.add_bundle(0, [leaf_hash(e) for e in entries])
        assert checker.checked == size
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            verify_inclusion(leaf_hash(entries[index]), index, size, proof, roots[size])
    for old in range(1, 15):
        verify_consistency(old, 15, roots[old], roots[15], log.consistency_proof(old, 15))
