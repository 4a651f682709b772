"""Publish a ledger as a C2SP tlog-tiles log: static files any web server, CDN or bucket serves.

This module owns what a publication holds and the order it is written in.
:func:`publication` yields ``(path, bytes)`` for everything new since a given
size (hash tiles, entry bundles, then the checkpoint, always last), for code
that uploads to an object store. :func:`publish` writes the same into a
directory, incrementally: it reads the checkpoint already there, refuses a
directory that holds another log (another origin, another key, or a root
that is not this ledger's at that size), and writes only the tiles that
became full or grew since. Every file goes to a temporary name, is fsynced
and renamed into place; the checkpoint goes last, so a reader never sees a
checkpoint whose tiles are missing, and a crash leaves the previous
publication readable. Rerunning completes it. Runs on one directory are
serialized by a lock file.

An entry is the record's leaf bytes (the envelope). The layout and encodings
are :mod:`disclosure_ledger._core.tiles`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from disclosure_ledger._core.checkpoints import SignedCheckpoint, open_checkpoint, peek_checkpoint
from disclosure_ledger._core.merkle import HashReader, leaf_hash, tree_root
from disclosure_ledger._core.notes import MAX_NOTE_SIZE, Verifier
from disclosure_ledger._core.tiles import (
    TILE_WIDTH,
    Tile,
    encode_entry_bundle,
    encode_hash_tile,
    new_tiles,
)
from disclosure_ledger._fsutil import atomic_file, read_limited, read_small
from disclosure_ledger._store.base import LogReader
from disclosure_ledger.errors import LedgerError, MalformedError, StorageError

__all__ = ["PublishSource", "PublishSummary", "publication", "publish"]

CHECKPOINT_PATH = "checkpoint"
_LOCK = ".publish.lock"


class PublishSource(Protocol):
    """What publishing reads from a ledger (a :class:`~.ledger.Ledger` is one)."""

    @property
    def origin(self) -> str:
        """The log's origin."""
        ...

    @property
    def log_verifier(self) -> Verifier:
        """The log's public key."""
        ...

    def latest_checkpoint(self) -> SignedCheckpoint:
        """The newest signed checkpoint, with its cosignatures."""
        ...

    def iter_leaves(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The leaves of records ``[start, end)``."""
        ...

    @property
    def store(self) -> LogReader:
        """The store, for its stored tree hashes."""
        ...


@dataclass(frozen=True, slots=True)
class PublishSummary:
    """What :func:`publish` did: files written to move the publication from one size to another."""

    directory: Path
    origin: str
    from_size: int
    to_size: int
    files_written: int
    bytes_written: int


def publication(
    source: PublishSource, since: int = 0, *, checkpoint: SignedCheckpoint | None = None
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, bytes)`` for what a publication of size ``since`` lacks, checkpoint last.

    The target is ``checkpoint`` (default: the ledger's latest, with its
    cosignatures). Hash tiles and entry bundles come first, each bundle next
    to its level-0 tile, then the upper tiles, then ``checkpoint``. Write them
    in the order given (each file whole), and a reader never sees a checkpoint
    whose tiles are missing. Memory stays bounded: one bundle at a time.

    Raises:
        MalformedError: if ``since`` is negative or beyond the checkpoint.
        StorageError: if the ledger cannot be read.
    """
    signed = source.latest_checkpoint() if checkpoint is None else checkpoint
    size = signed.checkpoint.size
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise MalformedError("the published size must be a non-negative integer")
    if since > size:
        raise MalformedError(f"the publication's size {since} is beyond the checkpoint, {size}")
    tiles = new_tiles(since, size, entries=False)
    for tile in (t for t in tiles if t.level == 0):
        start = tile.n * TILE_WIDTH
        leaves = list(source.iter_leaves(start, start + tile.width))
        if len(leaves) != tile.width:
            raise StorageError(f"the ledger returned {len(leaves)} of {tile.width} records")
        yield Tile(0, tile.n, tile.width, entries=True).path, encode_entry_bundle(leaves)
        yield tile.path, encode_hash_tile([leaf_hash(leaf) for leaf in leaves])
    for tile in (t for t in tiles if t.level > 0):
        hashes = source.store.read_hashes([tile.node(i) for i in range(tile.width)])
        yield tile.path, encode_hash_tile(list(hashes))
    yield CHECKPOINT_PATH, signed.note.encode("utf-8")


def _published_size(directory: Path, source: PublishSource, hashes: HashReader) -> int:
    # The size of the publication already in ``directory``, after checking it is this log's.
    where = directory / CHECKPOINT_PATH
    raw = read_limited(where, MAX_NOTE_SIZE, "published checkpoint", StorageError, missing_ok=True)
    if raw is None:
        return 0
    try:
        text = raw.decode("utf-8")
        claimed = peek_checkpoint(text)
    except (UnicodeDecodeError, MalformedError) as err:
        raise StorageError(f"{where}: not a checkpoint; refusing to publish over it") from err
    if claimed.origin != source.origin:
        raise StorageError(
            f"{directory}: holds the log {claimed.origin!r}, not {source.origin!r};"
            " refusing to publish over another log"
        )
    try:
        cp = open_checkpoint(text, source.log_verifier).checkpoint
    except LedgerError as err:
        raise StorageError(
            f"{where}: not signed by this ledger's log key; refusing to publish over another log"
        ) from err
    latest = source.latest_checkpoint().checkpoint.size
    if cp.size > latest:
        raise StorageError(
            f"{where}: the publication has {cp.size} records, this ledger only {latest}"
        )
    if tree_root(cp.size, hashes) != cp.root:
        raise StorageError(
            f"{where}: its root at size {cp.size} is not this ledger's;"
            " refusing to publish over another history"
        )
    return cp.size


def _write(directory: Path, path: str, data: bytes) -> bool:
    # Write one file atomically; an existing tile must already hold these bytes.
    target = directory / path
    existing = read_small(target, len(data))  # a longer file reads as len(data) + 1 bytes
    if existing == data:
        return False
    if path != CHECKPOINT_PATH and existing is not None:
        raise StorageError(
            f"{target}: already holds other bytes; a published tile never changes"
            " (is this directory another log's?)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target, mode=0o644) as fh:
        fh.write(data)
    return True


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def publish(source: PublishSource, directory: str | os.PathLike[str]) -> PublishSummary:
    """Publish ``source``'s latest checkpoint into ``directory`` as C2SP tlog-tiles.

    Only what is new since the checkpoint already published there is
    written; see the module docstring for the guarantees.

    Raises:
        StorageError: if the directory holds another log (or a file that is not
            this log's), or cannot be written.
    """
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        with _locked(d):
            since = _published_size(d, source, source.store)
            files = total = 0
            signed = source.latest_checkpoint()
            for path, data in publication(source, since, checkpoint=signed):
                if _write(d, path, data):
                    files += 1
                    total += len(data)
    except OSError as err:
        raise StorageError(f"{d}: cannot publish: {err.strerror or err}") from err
    return PublishSummary(d, source.origin, since, signed.checkpoint.size, files, total)
