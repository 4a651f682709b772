"""Read a log published as C2SP tlog-tiles, from a directory or an http(s) prefix.

This module owns fetching (bounded: a size cap on every file, a timeout on
every request, a clear error for a missing file, a truncated tile or a
bundle of the wrong length) and what is built from fetched tiles: proofs,
receipts, the entries of a range, and :class:`TileChecker`, which checks
every hash tile it is shown against the hashes of the entries it has seen.
Nothing fetched is trusted: a caller checks the checkpoint's signature and
every root computed from tiles against it.

A partial tile that is gone is read from the full tile that replaced it, as
the spec allows a log to delete partial tiles once the full one exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from disclosure_ledger._core.checkpoints import Receipt, SignedCheckpoint, open_checkpoint
from disclosure_ledger._core.merkle import (
    leaf_hash,
    prove_consistency,
    prove_inclusion,
    verify_inclusion,
)
from disclosure_ledger._core.notes import MAX_NOTE_SIZE, Verifier
from disclosure_ledger._core.tiles import (
    FULL_TILE_BYTES,
    MAX_ENTRY_SIZE,
    TILE_WIDTH,
    Tile,
    TileHashReader,
    decode_entry_bundle,
    decode_hash_tile,
    subtree_root,
    tile_width,
)
from disclosure_ledger._fsutil import read_limited
from disclosure_ledger._netutil import HttpSession, ResponseTooLargeError, http_prefix
from disclosure_ledger.errors import (
    MalformedError,
    NotPublishedError,
    RootMismatchError,
    StorageError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BUNDLE_BYTES",
    "DirectorySource",
    "HttpSource",
    "TileChecker",
    "TileLog",
    "TileSource",
    "open_source",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds a request may stall before it is abandoned."""
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_ENTRY_SIZE)
"""The largest entry bundle: 256 entries of 65,535 bytes with their length prefixes."""
_FETCH_THREADS = 4


class TileSource(Protocol):
    """Where a published log's files come from."""

    @property
    def location(self) -> str:
        """The directory or URL prefix, for messages."""
        ...

    def read(self, path: str, limit: int) -> bytes:
        """Return the file at ``path`` (relative to the log's prefix), at most ``limit`` bytes.

        Raises:
            NotPublishedError: if there is no such file (a 404).
            StorageError: if it is larger than ``limit``, or cannot be fetched.
        """
        ...


class DirectorySource:
    """A published log in a local directory."""

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Read the log under ``root``."""
        self.root = Path(root)

    @property
    def location(self) -> str:
        """The directory."""
        return str(self.root)

    def read(self, path: str, limit: int) -> bytes:
        """Read ``root/path``.

        Raises:
            NotPublishedError: if it does not exist.
            StorageError: if it is larger than ``limit`` or unreadable.
        """
        target = self.root / path
        raw = read_limited(target, limit, path, StorageError, missing_ok=True)
        if raw is None:
            raise NotPublishedError(f"{target}: not published (no such file)")
        return raw


class HttpSource:
    """A published log under an ``http://`` or ``https://`` prefix."""

    __slots__ = ("_session", "prefix", "timeout")

    def __init__(self, prefix: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Read the log under ``prefix``, giving up on a request after ``timeout`` seconds.

        Raises:
            MalformedError: if ``prefix`` is not an http(s) URL or the timeout is not positive.
        """
        try:
            self.prefix = http_prefix(prefix, timeout, "fetch")
        except ValueError as err:
            raise MalformedError(str(err)) from err
        self.timeout = timeout
        # Kept-alive connections: a verifier fetches thousands of small files.
        self._session = HttpSession(timeout)

    @property
    def location(self) -> str:
        """The URL prefix."""
        return self.prefix

    def read(self, path: str, limit: int) -> bytes:
        """GET ``prefix/path``.

        Raises:
            NotPublishedError: on a 404 (or 410).
            StorageError: on any other status, a body over ``limit``, a timeout
                or a connection failure.
        """
        url = self.prefix + path
        try:
            resp = self._session.get(url, limit=limit)
        except ResponseTooLargeError as err:
            raise StorageError(f"{url}: larger than {limit} bytes") from err
        except TimeoutError as err:
            raise StorageError(f"{url}: timed out after {self.timeout:g} s") from err
        except (OSError, ValueError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            raise StorageError(f"{url}: cannot fetch: {reason}") from err
        if resp.status in (404, 410):
            raise NotPublishedError(f"{url}: not published (HTTP {resp.status})")
        if resp.status != 200:
            raise StorageError(f"{url}: HTTP {resp.status}")
        return resp.body


def open_source(where: str, *, timeout: float = DEFAULT_TIMEOUT) -> TileSource:
    """Return the source for ``where``: an ``http(s)://`` prefix, or else a directory.

    Raises:
        MalformedError: for a URL of another scheme, or a bad timeout.
        StorageError: if a directory does not exist.
    """
    if where.startswith(("http://", "https://")):
        return HttpSource(where, timeout=timeout)
    if "://" in where:
        raise MalformedError(f"{where!r}: only http:// and https:// URLs, or a directory")
    if not Path(where).is_dir():
        raise StorageError(f"{where}: not a directory")
    return DirectorySource(where)


class TileLog:
    """A published log read through a :class:`TileSource`."""

    __slots__ = ("_last_bundle", "source")

    def __init__(self, source: TileSource) -> None:
        """Read through ``source``."""
        self.source = source
        # The bundle read last: a range's anchor record and its first records share one.
        self._last_bundle: tuple[Tile, list[bytes]] | None = None

    def checkpoint_note(self) -> str:
        """Return the published ``checkpoint`` note, as text (unverified).

        Raises:
            NotPublishedError: if there is none.
            StorageError: if it is too large or not UTF-8.
        """
        raw = self.source.read("checkpoint", MAX_NOTE_SIZE)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise StorageError(f"{self.source.location}: the checkpoint is not UTF-8") from err

    def signed_checkpoint(
        self, log_key: Verifier, witnesses: Sequence[Verifier] = ()
    ) -> SignedCheckpoint:
        """Return the published checkpoint, verified under ``log_key``.

        Raises:
            NotPublishedError, StorageError: as :meth:`checkpoint_note`.
            MalformedError, VerificationError: if it is malformed or not signed by ``log_key``.
        """
        return open_checkpoint(self.checkpoint_note(), log_key, witnesses)

    def _read_tile(self, tile: Tile) -> bytes:
        limit = MAX_BUNDLE_BYTES if tile.entries else FULL_TILE_BYTES
        try:
            return self.source.read(tile.path, limit)
        except NotPublishedError:
            if tile.full:
                raise
            # The log may have replaced the partial tile with the full one.
            full = Tile(tile.level, tile.n, TILE_WIDTH, tile.entries)
            try:
                data = self.source.read(full.path, limit)
            except NotPublishedError as err:
                raise NotPublishedError(
                    f"{self.source.location}: neither {tile.path} nor {full.path} is published"
                    " (a checkpoint newer than its tiles?)"
                ) from err
            if tile.entries:
                return _bundle_prefix(data, tile.width, full.path)
            return data[: tile.width * 32]

    def hash_tiles(self, tiles: Sequence[Tile]) -> list[list[bytes]]:
        """Fetch and decode hash tiles (several at a time), in order.

        Raises:
            NotPublishedError: if a tile is missing.
            MalformedError: if a tile has the wrong length (naming it).
            StorageError: if one cannot be fetched.
        """

        def one(tile: Tile) -> list[bytes]:
            data = self._read_tile(tile)
            try:
                return decode_hash_tile(data, tile.width)
            except MalformedError as err:
                raise MalformedError(f"{tile.path}: {err}") from err

        if len(tiles) <= 1:
            return [one(t) for t in tiles]
        with ThreadPoolExecutor(min(_FETCH_THREADS, len(tiles))) as pool:
            return list(pool.map(one, tiles))

    def entries(self, tile: Tile) -> list[bytes]:
        """Fetch and decode entry bundle ``tile``.

        Raises:
            NotPublishedError: if it is missing.
            MalformedError: if it is truncated, short or has bytes left over (naming it).
            StorageError: if it cannot be fetched.
        """
        last = self._last_bundle
        if last is not None and last[0] == tile:
            return list(last[1])
        data = self._read_tile(tile)
        try:
            entries = decode_entry_bundle(data, tile.width)
        except MalformedError as err:
            raise MalformedError(f"{tile.path}: {err}") from err
        self._last_bundle = (tile, entries)
        return list(entries)

    def hash_reader(self, size: int) -> TileHashReader:
        """Return a :class:`TileHashReader` over the tiles of the tree of ``size``."""
        return TileHashReader(size, self.hash_tiles)

    def iter_leaves(self, start: int, end: int, size: int) -> Iterator[bytes]:
        """Yield entries ``[start, end)`` from the bundles of the tree of ``size``.

        Raises:
            MalformedError: if ``start``/``end`` are out of order or beyond ``size``.
            NotPublishedError, StorageError: as :meth:`entries`.
        """
        if not 0 <= start <= end <= size:
            raise MalformedError(f"entries [{start}, {end}) are not within a tree of size {size}")
        n = start // TILE_WIDTH
        while n * TILE_WIDTH < end:
            tile = Tile(0, n, tile_width(0, n, size), entries=True)
            rows = self.entries(tile)
            lo = max(start - n * TILE_WIDTH, 0)
            hi = min(end - n * TILE_WIDTH, len(rows))
            yield from rows[lo:hi]
            n += 1

    def leaf(self, index: int, size: int) -> bytes:
        """Return entry ``index`` of the tree of ``size``.

        Raises:
            MalformedError: if ``index`` is not below ``size``.
            NotPublishedError, StorageError: as :meth:`entries`.
        """
        if not 0 <= index < size:
            raise MalformedError(f"index {index} is not below the published size {size}")
        return next(self.iter_leaves(index, index + 1, size))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the inclusion proof of entry ``index`` in the tree of ``size``, from tiles."""
        return prove_inclusion(index, size, self.hash_reader(size))

    def consistency_proof(self, old_size: int, size: int) -> list[bytes]:
        """Return the consistency proof from ``old_size`` to ``size``, from tiles."""
        return prove_consistency(old_size, size, self.hash_reader(size))

    def receipt(self, log_key: Verifier, index: int) -> Receipt:
        """Build a C2SP tlog-proof receipt for entry ``index`` under the published checkpoint.

        The checkpoint must be signed by ``log_key``, and the proof and entry
        read from tiles must lead to its root: a receipt is never made from
        tiles that disagree with the checkpoint.

        Raises:
            MalformedError: if ``index`` is beyond the checkpoint, or a file is malformed.
            VerificationError: if the checkpoint is not the log's or the tiles do not match it.
            NotPublishedError, StorageError: if a file cannot be fetched.
        """
        signed = self.signed_checkpoint(log_key)
        cp = signed.checkpoint
        if not 0 <= index < cp.size:
            raise MalformedError(f"index {index} is not below the published size {cp.size}")
        proof = self.inclusion_proof(index, cp.size)
        leaf = self.leaf(index, cp.size)
        try:
            verify_inclusion(leaf_hash(leaf), index, cp.size, proof, cp.root)
        except RootMismatchError as err:
            raise RootMismatchError(
                f"{self.source.location}: the published tiles of entry {index} do not lead to"
                " the checkpoint's root",
                err.expected,
                err.computed,
            ) from err
        return Receipt(index, tuple(proof), signed.note, leaf)


def _bundle_prefix(data: bytes, width: int, path: str) -> bytes:
    # The first ``width`` entries of a full bundle, as the partial bundle's bytes.
    try:
        entries = decode_entry_bundle(data, TILE_WIDTH)
    except MalformedError as err:
        raise MalformedError(f"{path}: {err}") from err
    return b"".join(len(e).to_bytes(2, "big") + e for e in entries[:width])


class TileChecker:
    """Check published hash tiles against the entries of ``[start, size)``, as they stream by.

    Feed it the leaf hashes of each entry bundle in order, from the bundle
    holding ``start`` on (:meth:`add_bundle`). Every level-0 tile must equal
    the entries' hashes; each full tile's root is a hash of the tile above,
    which must equal what is published there too. Nodes that cover entries
    before the first bundle fed are not checked (they were checked when those
    entries were). :meth:`finish` says whether every computable hash was seen.
    """

    __slots__ = ("_first", "_log", "_pending", "checked", "size")

    def __init__(self, log: TileLog, start: int, size: int) -> None:
        """Check the tiles of the tree of ``size`` from the bundle holding ``start``."""
        self._log = log
        self.size = size
        aligned = (start // TILE_WIDTH) * TILE_WIDTH
        # At tile level L, nodes with index >= _first[L] cover only entries fed here.
        self._first: list[int] = []
        unit = 1
        for _ in range(64):
            self._first.append(-(-aligned // unit))
            unit *= TILE_WIDTH
            if unit > max(size, 1) * TILE_WIDTH:
                break
        self._pending: dict[int, dict[int, bytes]] = {}
        self.checked = 0

    def add_bundle(self, n: int, hashes: Sequence[bytes]) -> None:
        """Check level-0 tile ``n`` against the leaf hashes of bundle ``n``.

        Raises:
            RootMismatchError: if a published tile differs from what the entries make.
            NotPublishedError, MalformedError, StorageError: if a tile cannot be read.
        """
        for i, h in enumerate(hashes):
            self._add(0, n * TILE_WIDTH + i, h)

    def _add(self, level: int, index: int, h: bytes) -> None:
        tn = index // TILE_WIDTH
        row = self._pending.setdefault(level, {})
        row[index] = h
        width = tile_width(level, tn, self.size)
        if index != tn * TILE_WIDTH + width - 1:
            return
        # The tile's last node is in: compare the tile, then carry its root up.
        first = self._first[level] if level < len(self._first) else 0
        tile = Tile(level, tn, width)
        got = self._log.hash_tiles([tile])[0]
        lo = max(first - tn * TILE_WIDTH, 0)
        for i in range(lo, width):
            want = row.pop(tn * TILE_WIDTH + i, None)
            if want is None:
                continue
            if got[i] != want:
                raise RootMismatchError(
                    f"{self._log.source.location}: {tile.path} hash {i} does not match the entries",
                    want,
                    got[i],
                )
            self.checked += 1
        row.clear()
        if width == TILE_WIDTH and lo == 0:
            self._add(level + 1, tn, subtree_root(got))
