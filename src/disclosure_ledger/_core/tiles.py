"""C2SP tlog-tiles: tile paths, hash tiles, entry bundles, and proofs read from tiles.

This module owns the static layout a log is published in (https://c2sp.org/tlog-tiles)
and nothing else: it does no I/O. Paths and their strict parsing, the bytes of
hash tiles and entry bundles, which tiles a tree of a given size has (and which
of them are new since a smaller size), and a :class:`TileHashReader` that
answers the :class:`~.merkle.HashReader` contract from tiles, so the planned
proofs of :mod:`.merkle` read a published log exactly as they read a store.

The layout::

    checkpoint                     the signed checkpoint (with cosignatures)
    tile/<L>/<N>[.p/<W>]           hash tile: W (256 when full) hashes of tree level 8*L
    tile/entries/<N>[.p/<W>]       entry bundle: W entries, each a big-endian uint16
                                   length and that many bytes (the record's leaf)

``<N>`` is written in zero-padded three-digit path elements, all but the last
prefixed with ``x``: 1234067 is ``x001/x234/067``. ``<L>`` is 0 to 63 and
``<W>`` 1 to 255, in decimal without leading zeros. The n-th hash of tile
``(L, N)`` is the root of the perfect subtree ``(8L, N*256 + n)``, which is how
:class:`~.merkle.NodeId` names it. Go's ``golang.org/x/mod/sumdb/tlog`` reads the
same hash tiles under paths with a height element, ``tile/8/<L>/<N>``
(:func:`sumdb_tile_path`).

Full tiles never change. A partial tile's path carries its width, so a grown
partial tile is a new file and every file, once written, is immutable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from disclosure_ledger._core.merkle import HASH_SIZE, NodeId
from disclosure_ledger.errors import MalformedError, StorageError

__all__ = [
    "FULL_TILE_BYTES",
    "MAX_ENTRY_SIZE",
    "MAX_TILE_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "TileHashReader",
    "decode_entry_bundle",
    "decode_hash_tile",
    "encode_entry_bundle",
    "encode_hash_tile",
    "format_tile_index",
    "new_tiles",
    "parse_tile_path",
    "subtree_root",
    "sumdb_tile_path",
    "tile_path",
    "tile_width",
    "tiles_for_size",
]

TILE_HEIGHT = 8
"""Levels of the tree one tile spans: a tile holds up to ``2**8`` hashes."""
TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes (or entries) in a full tile (or bundle): 256."""
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
"""The size of a full hash tile: 8,192 bytes."""
MAX_TILE_LEVEL = 63
"""The highest tile level a path may name."""
MAX_ENTRY_SIZE = 0xFFFF
"""The largest entry a bundle can hold: its length prefix is a uint16."""

_sha256 = hashlib.sha256
_ELEMENT = re.compile(r"[0-9]{3}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile: hash tile ``(level, n)`` or, with ``entries``, entry bundle ``n``.

    ``width`` is how many hashes (entries) it holds: 256 for a full tile, 1 to
    255 for a partial one.
    """

    level: int
    n: int
    width: int
    entries: bool = False

    def __post_init__(self) -> None:
        for what, value in (("level", self.level), ("index", self.n), ("width", self.width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise MalformedError(f"tile {what} must be a non-negative integer")
        if self.level > MAX_TILE_LEVEL:
            raise MalformedError(f"tile level {self.level} is above {MAX_TILE_LEVEL}")
        if self.entries and self.level != 0:
            raise MalformedError("an entry bundle has no level other than 0")
        if not 1 <= self.width <= TILE_WIDTH:
            raise MalformedError(f"tile width {self.width} is not between 1 and {TILE_WIDTH}")

    @property
    def full(self) -> bool:
        """Whether the tile is full (256 wide): then it never changes."""
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """The tile's path under the log's prefix (see :func:`tile_path`)."""
        return tile_path(self)

    def node(self, i: int) -> NodeId:
        """The tree node of the tile's ``i``-th hash (or, for a bundle, entry ``i``'s leaf)."""
        return NodeId(self.level * TILE_HEIGHT, self.n * TILE_WIDTH + i)


def format_tile_index(n: int) -> str:
    """Return ``n`` as tlog-tiles path elements: 1234067 is ``x001/x234/067``.

    Raises:
        MalformedError: if ``n`` is not a non-negative integer.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise MalformedError("a tile index must be a non-negative integer")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def tile_path(tile: Tile) -> str:
    """Return the tile's C2SP path: ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``.

    Raises:
        Nothing: a :class:`Tile` was checked when it was made.
    """
    kind = "entries" if tile.entries else str(tile.level)
    suffix = "" if tile.full else f".p/{tile.width}"
    return f"tile/{kind}/{format_tile_index(tile.n)}{suffix}"


def sumdb_tile_path(tile: Tile) -> str:
    """Return a hash tile's path as Go's ``sumdb/tlog`` names it: ``tile/8/<L>/<N>[.p/<W>]``.

    The bytes are the same; only the height element differs.

    Raises:
        MalformedError: for an entry bundle (sumdb's data tiles are another format).
    """
    if tile.entries:
        raise MalformedError("sumdb data tiles are not tlog-tiles entry bundles")
    return f"tile/{TILE_HEIGHT}/" + tile_path(tile)[len("tile/") :]


def _parse_decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise MalformedError(f"tile path: {what} {text!r} is not a decimal without leading zeros")
    return int(text)


def parse_tile_path(path: str) -> Tile:
    """Parse a tile or entry bundle path (as :func:`tile_path` writes it), strictly.

    Raises:
        MalformedError: naming what is wrong: not under ``tile/``, a bad level,
            index element, ``x`` prefix or width, a width of 256 or 0 written
            out, or anything left over.
    """
    if not isinstance(path, str) or not path.startswith("tile/"):
        raise MalformedError(f"tile path {path!r} does not start with tile/")
    parts = path.split("/")[1:]
    if len(parts) < 2:
        raise MalformedError(f"tile path {path!r} names no tile")
    kind, rest = parts[0], parts[1:]
    entries = kind == "entries"
    level = 0 if entries else _parse_decimal(kind, "level")
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        width = _parse_decimal(rest[-1], "width")
        if not 1 <= width < TILE_WIDTH:
            raise MalformedError(f"tile path {path!r}: a partial width must be 1 to 255")
        rest = [*rest[:-2], rest[-2][: -len(".p")]]
    n = 0
    for i, element in enumerate(rest):
        last = i == len(rest) - 1
        digits = element if last else element.removeprefix("x")
        if (not last and not element.startswith("x")) or not _ELEMENT.fullmatch(digits):
            raise MalformedError(f"tile path {path!r}: bad index element {element!r}")
        n = n * 1000 + int(digits)
    if len(rest) > 1 and rest[0] == "x000":
        raise MalformedError(f"tile path {path!r}: the index has a leading x000 element")
    try:
        tile = Tile(level, n, width, entries)
    except MalformedError as err:
        raise MalformedError(f"tile path {path!r}: {err}") from err
    return tile


def tile_width(level: int, n: int, size: int) -> int:
    """Return how many hashes tile ``(level, n)`` holds in the tree of ``size`` (0: none yet).

    Raises:
        Nothing: integer arithmetic only.
    """
    count = size >> (level * TILE_HEIGHT)
    return max(0, min(TILE_WIDTH, count - n * TILE_WIDTH))


def tiles_for_size(size: int, *, entries: bool = True) -> list[Tile]:
    """Return every tile of the tree of ``size``: hash tiles by level, then entry bundles.

    Raises:
        MalformedError: if ``size`` is negative.
    """
    return new_tiles(0, size, entries=entries)


def new_tiles(old_size: int, new_size: int, *, entries: bool = True) -> list[Tile]:
    """Return the tiles of the tree of ``new_size`` that the tree of ``old_size`` lacks.

    Those are the tiles that became full or grew: a publisher that wrote the
    tiles of ``old_size`` writes these to publish ``new_size``. Entry bundles
    (when ``entries``) come after the hash tiles, lowest level first.

    Raises:
        MalformedError: if a size is negative or ``old_size`` is above ``new_size``.
    """
    for what, value in (("old size", old_size), ("new size", new_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MalformedError(f"{what} must be a non-negative integer")
    if old_size > new_size:
        raise MalformedError(f"old size {old_size} is larger than new size {new_size}")
    out: list[Tile] = []
    bundles: list[Tile] = []
    level = 0
    while level <= MAX_TILE_LEVEL and new_size >> (level * TILE_HEIGHT):
        first = (old_size >> (level * TILE_HEIGHT)) // TILE_WIDTH
        last = ((new_size >> (level * TILE_HEIGHT)) - 1) // TILE_WIDTH
        for n in range(first, last + 1):
            width = tile_width(level, n, new_size)
            if width > tile_width(level, n, old_size):
                out.append(Tile(level, n, width))
                if level == 0 and entries:
                    bundles.append(Tile(0, n, width, entries=True))
        level += 1
    return out + bundles


def encode_hash_tile(hashes: Sequence[bytes]) -> bytes:
    """Return a hash tile: the hashes concatenated (1 to 256 of them, 32 bytes each).

    Raises:
        MalformedError: if there are none, more than 256, or one is not 32 bytes.
    """
    if not 1 <= len(hashes) <= TILE_WIDTH:
        raise MalformedError(f"a hash tile holds 1 to {TILE_WIDTH} hashes, not {len(hashes)}")
    for h in hashes:
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise MalformedError(f"a tile hash must be {HASH_SIZE} bytes")
    return b"".join(hashes)


def decode_hash_tile(data: bytes, width: int) -> list[bytes]:
    """Split a hash tile of ``width`` hashes.

    Raises:
        MalformedError: if ``data`` is not exactly ``32 * width`` bytes (a
            truncated tile, or one with bytes left over).
    """
    if not 1 <= width <= TILE_WIDTH:
        raise MalformedError(f"tile width {width} is not between 1 and {TILE_WIDTH}")
    if len(data) != width * HASH_SIZE:
        raise MalformedError(
            f"a hash tile of width {width} is {width * HASH_SIZE} bytes, not {len(data)}"
        )
    mv = bytes(data)
    return [mv[i : i + HASH_SIZE] for i in range(0, len(mv), HASH_SIZE)]


def encode_entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Return an entry bundle: each entry as a big-endian uint16 length and its bytes.

    Raises:
        MalformedError: if there are none, more than 256, or an entry is over 65,535 bytes.
    """
    parts: list[bytes] = []
    for entry in entries:
        if not isinstance(entry, bytes | bytearray):
            raise MalformedError("an entry must be bytes")
        if len(entry) > MAX_ENTRY_SIZE:
            raise MalformedError(
                f"an entry of {len(entry)} bytes does not fit a tlog-tiles bundle"
                f" (at most {MAX_ENTRY_SIZE})"
            )
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(bytes(entry))
    count = len(parts) // 2
    if not 1 <= count <= TILE_WIDTH:
        raise MalformedError(f"an entry bundle holds 1 to {TILE_WIDTH} entries, not {count}")
    return b"".join(parts)


def decode_entry_bundle(data: bytes, width: int) -> list[bytes]:
    """Split an entry bundle of ``width`` entries, strictly.

    Raises:
        MalformedError: if an entry is truncated, there are fewer than ``width``
            entries, or bytes are left over after the last.
    """
    if not 1 <= width <= TILE_WIDTH:
        raise MalformedError(f"bundle width {width} is not between 1 and {TILE_WIDTH}")
    buf = bytes(data)
    out: list[bytes] = []
    pos = 0
    for i in range(width):
        if pos + 2 > len(buf):
            raise MalformedError(f"the entry bundle ends before entry {i} of {width}")
        n = int.from_bytes(buf[pos : pos + 2], "big")
        pos += 2
        if pos + n > len(buf):
            raise MalformedError(f"entry {i} of the bundle is truncated ({n} bytes announced)")
        out.append(buf[pos : pos + n])
        pos += n
    if pos != len(buf):
        raise MalformedError(
            f"the entry bundle has {len(buf) - pos} bytes after its {width} entries"
        )
    return out


def subtree_root(hashes: Sequence[bytes]) -> bytes:
    """Return the root of a perfect subtree given its bottom row (a power of two of hashes).

    Raises:
        MalformedError: if the count is not a power of two or a hash is not 32 bytes.
    """
    count = len(hashes)
    if count == 0 or count & (count - 1):
        raise MalformedError(f"a perfect subtree has a power of two of hashes, not {count}")
    row = list(hashes)
    for h in row:
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise MalformedError(f"a tile hash must be {HASH_SIZE} bytes")
    while len(row) > 1:
        row = [_sha256(b"\x01" + row[i] + row[i + 1]).digest() for i in range(0, len(row), 2)]
    return bytes(row[0])


TileFetcher = Callable[[Sequence[Tile]], Sequence[Sequence[bytes]]]
"""Fetch hash tiles and return each one's hashes, in order (one batch per call)."""


class TileHashReader:
    """Stored tree hashes read from the hash tiles of a tree of ``size``.

    A :class:`~.merkle.HashReader`: :func:`~.merkle.prove_inclusion` and
    :func:`~.merkle.tree_root` run on it unchanged. A node at level ``8L + r``
    is folded from the ``2**r`` hashes of tile level ``L`` under it, so a proof
    needs O(log size) tiles, fetched in one call to ``fetch``. Nothing read is
    trusted here: the caller checks what it computes against a signed root.
    """

    __slots__ = ("_fetch", "size")

    def __init__(self, size: int, fetch: TileFetcher) -> None:
        """Read the tiles of the tree of ``size`` through ``fetch``."""
        self.size = size
        self._fetch = fetch

    def read_hashes(self, ids: Sequence[NodeId], /) -> list[bytes]:
        """Return the hashes of ``ids``.

        Raises:
            StorageError: if a node is not a complete subtree of this tree.
            LedgerError: whatever ``fetch`` raises for a missing or malformed tile.
        """
        plan: list[tuple[Tile, int, int]] = []
        wanted: dict[Tile, int] = {}
        for level, n in ids:
            tlevel, r = divmod(level, TILE_HEIGHT)
            first = n << r
            tn, offset = divmod(first, TILE_WIDTH)
            width = tile_width(tlevel, tn, self.size)
            if offset + (1 << r) > width:
                raise StorageError(
                    f"node ({level}, {n}) is not a complete subtree of the tree of size {self.size}"
                )
            tile = Tile(tlevel, tn, width)
            wanted.setdefault(tile, len(wanted))
            plan.append((tile, offset, 1 << r))
        tiles = list(wanted)
        fetched = self._fetch(tiles) if tiles else []
        if len(fetched) != len(tiles):
            raise StorageError(f"asked for {len(tiles)} tiles, got {len(fetched)}")
        out: list[bytes] = []
        for tile, offset, count in plan:
            row = fetched[wanted[tile]]
            out.append(subtree_root(row[offset : offset + count]))
        return out
