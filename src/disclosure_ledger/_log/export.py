"""Export: write a ledger, or a range of it, to one bundle file.

This module owns what goes into a bundle from a log: which checkpoints, the
key hints each needs, the consistency proof and anchor record of a range. It
reads the log through :class:`ExportSource`, the few read methods any store's
ledger offers, so it depends on no backend and the ledger can call it without
an import cycle. The file format itself is :mod:`disclosure_ledger._core.bundle`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from disclosure_ledger._core.bundle import MAX_KEY_HINTS, Prelude, write_bundle
from disclosure_ledger._core.checkpoints import SignedCheckpoint
from disclosure_ledger._core.notes import Verifier
from disclosure_ledger._fsutil import check_output, open_output
from disclosure_ledger.errors import MalformedError, StorageError

__all__ = ["ExportSource", "ExportSummary", "export_ledger", "export_to_stream"]


class ExportSource(Protocol):
    """What :func:`export_ledger` reads from a ledger."""

    @property
    def path(self) -> Path:
        """The ledger's file, which the export must never write over."""
        ...

    @property
    def origin(self) -> str:
        """The log's origin."""
        ...

    def latest_checkpoint(self) -> SignedCheckpoint:
        """The newest signed checkpoint, with its stored cosignatures."""
        ...

    def checkpoint(self, size: int) -> SignedCheckpoint:
        """The signed checkpoint of ``size``."""
        ...

    def checkpoint_sizes(self) -> list[int]:
        """Every checkpointed size, ascending."""
        ...

    def writer_verifiers(self) -> list[Verifier]:
        """The keys that signed records."""
        ...

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The RFC 6962 consistency proof from ``old_size``."""
        ...

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 6962 inclusion proof of ``index``."""
        ...

    def leaf(self, index: int) -> bytes:
        """The leaf bytes of record ``index``."""
        ...

    def iter_leaves(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The leaf bytes of records ``start`` to ``end``."""
        ...


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export_ledger` wrote: records ``[from_size, to_size)`` of ``origin``."""

    path: Path
    origin: str
    from_size: int
    to_size: int
    bytes_written: int

    @property
    def record_count(self) -> int:
        """The number of records in the bundle."""
        return self.to_size - self.from_size


def export_ledger(
    ledger: ExportSource,
    path: str | os.PathLike[str],
    from_size: int = 0,
    *,
    force: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Export ``ledger``, or the range from checkpointed size ``from_size``, to one bundle file.

    The latest checkpoint (with its stored cosignatures) is the bundle's end.
    Records are streamed from the store, so memory stays constant; the file
    is written to a temporary name beside ``path``, fsynced and renamed over
    ``path``, so a reader sees the old file or the whole new one, never part.
    An existing ``path`` is replaced only if ``force`` (the CLI asks for
    ``--force``); ``path`` is never the ledger itself or one of its SQLite
    files, however spelled (see :func:`._fsutil.open_output`).
    ``progress(done, total)`` is called every few thousand records.

    Raises:
        MalformedError: if ``from_size`` is negative or beyond the latest checkpoint.
        StorageError: if ``from_size`` is not a checkpointed size (a commit
            end), the ledger cannot be read, ``path`` is the ledger, exists
            (without ``force``) or cannot be written.
    """
    target = Path(path)
    protect = (ledger.path,)
    # Refuse a bad target before the work, and again (atomically) when writing.
    check_output(target, force=force, protect=protect, error=StorageError, what="bundle")
    prelude = _prelude(ledger, from_size)
    with open_output(
        target, force=force, protect=protect, error=StorageError, what="bundle", buffering=1 << 20
    ) as out:
        written = write_bundle(out, prelude, _leaves(ledger, prelude, progress))
    return ExportSummary(target, ledger.origin, from_size, prelude.to_size, written)


def export_to_stream(
    ledger: ExportSource,
    out: IO[bytes],
    from_size: int = 0,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Export as :func:`export_ledger` does, to the binary stream ``out`` (standard output).

    The stream gets the bundle as it is made; a reader that stops early has a
    truncated bundle, which the verifier refuses. The summary's ``path`` is ``-``.

    Raises:
        MalformedError, StorageError: as :func:`export_ledger`, for the range.
        OSError: if the stream cannot be written.
    """
    prelude = _prelude(ledger, from_size)
    written = write_bundle(out, prelude, _leaves(ledger, prelude, progress))
    out.flush()
    return ExportSummary(Path("-"), ledger.origin, from_size, prelude.to_size, written)


def _leaves(
    ledger: ExportSource, prelude: Prelude, progress: Callable[[int, int], None] | None
) -> Iterator[bytes]:
    """The range's leaves, in order, reporting progress every few thousand."""
    leaves = ledger.iter_leaves(prelude.from_size, prelude.to_size)
    if progress is None:
        yield from leaves
        return
    total = prelude.to_size - prelude.from_size
    done = 0
    for leaf in leaves:
        yield leaf
        done += 1
        if not done % 4096:
            progress(done, total)
    progress(done, total)


def _prelude(ledger: ExportSource, from_size: int) -> Prelude:
    """The bundle's prelude: the latest checkpoint, and for a range its start and proofs."""
    if not isinstance(from_size, int) or isinstance(from_size, bool) or from_size < 0:
        raise MalformedError("from_size must be a non-negative integer")
    latest = ledger.latest_checkpoint()
    to_size = latest.checkpoint.size
    if from_size > to_size:
        raise MalformedError(
            f"--from {from_size} is beyond the latest checkpoint, of size {to_size}"
        )
    hints: list[str] = []

    def hint(keys: Iterable[Verifier]) -> None:
        for v in keys:
            if v.vkey not in hints:
                hints.append(v.vkey)

    # Every checkpoint in the bundle gets hints for the keys that signed it.
    hint([*ledger.writer_verifiers(), *(c.witness for c in latest.cosignatures)])
    old_note: str | None = None
    proof: tuple[bytes, ...] = ()
    anchor_leaf: bytes | None = None
    anchor_proof: tuple[bytes, ...] = ()
    if from_size > 0:
        try:
            old_signed = ledger.checkpoint(from_size)
            old_note = old_signed.note
            hint(c.witness for c in old_signed.cosignatures)
        except StorageError as err:
            sizes = ledger.checkpoint_sizes()
            below = [s for s in sizes if s <= from_size][-1:] or [0]
            raise StorageError(
                f"there is no checkpoint of size {from_size} to export from (a range starts"
                f" at a commit end; the nearest below is {below[0]})"
            ) from err
        proof = tuple(ledger.consistency_proof(from_size, to_size))
        anchor_leaf = ledger.leaf(from_size - 1)
        anchor_proof = tuple(ledger.inclusion_proof(from_size - 1, from_size))
    return Prelude(
        ledger.origin,
        from_size,
        to_size,
        tuple(hints[:MAX_KEY_HINTS]),
        latest.note,
        old_note,
        proof,
        anchor_leaf,
        anchor_proof,
    )
