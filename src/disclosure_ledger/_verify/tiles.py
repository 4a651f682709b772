"""Verify a log published as C2SP tlog-tiles, with the same checks and report as a bundle.

This module owns the bridge from a published log to the verifier: it reads
the published checkpoint, the entry bundles and the hash tiles (from a
directory or an http(s) prefix, bounded, see
:mod:`disclosure_ledger._log.tilereader`) and presents them to
:func:`~.verifier.verify` as the export bundle the log would have written, so
every check, the report and the saved state are the verifier's, unchanged.
With a saved state of size ``m``, the bundle is the range from ``m``: only
the tiles beyond it are fetched (plus the O(log n) tiles of the consistency
proof and of the anchor record's inclusion proof). On the way, every hash
tile of the range is checked against the hashes of the entries
(:class:`~.tilereader.TileChecker`), so a tampered or foreign tile fails
verification even though the verifier reads only entries.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from disclosure_ledger._core.bundle import Prelude, iter_bundle
from disclosure_ledger._core.checkpoints import open_checkpoint, peek_checkpoint
from disclosure_ledger._core.merkle import leaf_hash, prove_inclusion
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._core.tiles import TILE_WIDTH, Tile, tile_width
from disclosure_ledger._log.tilereader import (
    DEFAULT_TIMEOUT,
    TileChecker,
    TileLog,
    TileSource,
    open_source,
)
from disclosure_ledger._verify.state import DirectoryState, StateStore
from disclosure_ledger._verify.summary import DEFAULT_MAX_LISTED, Report
from disclosure_ledger._verify.verifier import verify
from disclosure_ledger.errors import (
    LedgerError,
    MalformedError,
    UntrustedKeyError,
    VerifyInputError,
)

__all__ = ["verify_published"]


class _PullStream:
    """A binary ``read(n)`` over an iterator of byte pieces (the bundle, built as it is read)."""

    __slots__ = ("_buf", "_pieces")

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buf = bytearray()

    def read(self, n: int = -1, /) -> bytes:
        while n < 0 or len(self._buf) < n:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._buf += piece
        if n < 0:
            n = len(self._buf)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def _leaves(log: TileLog, start: int, size: int) -> Iterator[bytes]:
    checker = TileChecker(log, start, size)
    n = start // TILE_WIDTH
    while n * TILE_WIDTH < size and start < size:
        entries = log.entries(Tile(0, n, tile_width(0, n, size), entries=True))
        checker.add_bundle(n, [leaf_hash(e) for e in entries])
        yield from entries[max(start - n * TILE_WIDTH, 0) :]
        n += 1


def verify_published(
    where: str | TileSource,
    policy: Policy,
    *,
    trusted: str | bytes | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    state: StateStore | None = None,
    progress: Callable[[int, int], None] | None = None,
    threads: int = 2,
    max_listed: int = DEFAULT_MAX_LISTED,
    evidence_file: str | os.PathLike[str] | None = None,
    evidence_dir: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Verify the log published at ``where`` (a directory or an http(s) prefix).

    The arguments after ``policy`` are :func:`~.verifier.verify`'s (the saved
    state in ``state_dir`` or ``state``), and so are the checks, the report and
    the compare-and-swap of the state; ``timeout`` bounds each request.

    Raises:
        Everything :func:`~.verifier.verify` raises, and:
        NotPublishedError: if a file the checkpoint needs is missing (a
            checkpoint newer than its tiles).
        MalformedError: if a tile or bundle has the wrong length or bytes left over.
        RootMismatchError: if a hash tile does not match the entries.
        StorageError: if a file cannot be fetched (too large, timed out, HTTP error).
        ValueError: if both ``state`` and ``state_dir`` are given.
    """
    log = TileLog(open_source(where, timeout=timeout) if isinstance(where, str) else where)
    note = log.checkpoint_note()
    try:
        claimed = peek_checkpoint(note)
    except MalformedError as err:
        raise MalformedError(f"{log.source.location}: the published checkpoint: {err}") from err
    log_key = policy.log_for(claimed.origin)
    if log_key is None:
        names = ", ".join(repr(v.name) for v in policy.logs)
        raise UntrustedKeyError(
            f"the published log is {claimed.origin!r}; the policy trusts only {names}"
        )
    size = claimed.size
    from_size = 0
    old_note: str | None = None
    if state is not None and state_dir is not None:
        raise ValueError("give state or state_dir, not both")
    held = DirectoryState(state_dir) if state_dir is not None else state
    if held is not None:
        # Only where the range starts: verify() reads the state again and
        # saves by compare-and-swap, so a state that moves meanwhile is
        # checked there, against this range.
        saved = held.load(claimed.origin)
        if saved is not None:
            try:
                old = open_checkpoint(saved, log_key).checkpoint
            except LedgerError as err:
                raise VerifyInputError(f"the saved state does not verify: {err}") from err
            if 0 < old.size <= size:
                from_size, old_note = old.size, saved
    proof: tuple[bytes, ...] = ()
    anchor_leaf: bytes | None = None
    anchor_proof: tuple[bytes, ...] = ()
    if from_size:
        proof = tuple(log.consistency_proof(from_size, size)) if from_size < size else ()
        anchor_leaf = log.leaf(from_size - 1, size)
        anchor_proof = tuple(prove_inclusion(from_size - 1, from_size, log.hash_reader(from_size)))
    prelude = Prelude(
        claimed.origin, from_size, size, (), note, old_note, proof, anchor_leaf, anchor_proof
    )
    stream = _PullStream(iter_bundle(prelude, _leaves(log, from_size, size)))
    return verify(
        stream,
        policy,
        trusted=trusted,
        state_dir=state_dir,
        state=state,
        progress=progress,
        threads=threads,
        max_listed=max_listed,
        evidence_file=evidence_file,
        evidence_dir=evidence_dir,
    )
