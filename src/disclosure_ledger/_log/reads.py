"""Reading a ledger: records, checkpoints with their cosignatures, proofs, receipts.

This module owns what :class:`~.ledger.Ledger` offers that needs no private
key and writes nothing: records by index or range, signed checkpoints with
the cosignatures stored for them, inclusion and consistency proofs at any
checkpointed size (their hashes fetched from the store through the proof
planner, never rehashed from leaves), C2SP tlog-proof receipts, tlog-witness
requests and queries. :class:`~.ledger.Ledger` adds opening, appending, the
integrity check and witnessing on top.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from disclosure_ledger._core.checkpoints import (
    Receipt,
    SignedCheckpoint,
    WitnessRequest,
    add_signature_lines,
    open_checkpoint,
)
from disclosure_ledger._core.merkle import prove_consistency, prove_inclusion
from disclosure_ledger._core.notes import Verifier, parse_verifier
from disclosure_ledger._log import index
from disclosure_ledger._log.export import ExportSummary, export_ledger
from disclosure_ledger._log.index import Record, record_at
from disclosure_ledger._store.base import Store
from disclosure_ledger.errors import MalformedError, StorageError

__all__ = ["LedgerReads"]


class LedgerReads:
    """The reading half of a ledger: everything that needs no key and writes nothing."""

    _store: Store
    origin: str
    log_verifier: Verifier

    @property
    def size(self) -> int:
        """The number of committed records."""
        return self._store.size()

    def leaf(self, index: int) -> bytes:
        """Return the exact leaf bytes of record ``index``.

        Raises:
            StorageError: if there is no such record.
        """
        return self._store.leaf(index)

    def record(self, index: int) -> Record:
        """Return record ``index``, decoded.

        Raises:
            StorageError: if there is no such record.
            MalformedError: if the stored bytes do not decode.
        """
        return record_at(index, self._store.leaf(index))

    def iter_records(self, start: int = 0, end: int | None = None) -> Iterator[Record]:
        """Yield records ``[start, end)`` in order, in bounded memory.

        Raises:
            StorageError: if a record is missing.
        """
        stop = self.size if end is None else end
        for i, leaf in enumerate(self._store.iter_leaves(start, stop), start):
            yield record_at(i, leaf)

    def iter_leaves(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the exact leaf bytes of records ``[start, end)``, in bounded memory.

        Raises:
            StorageError: if a record is missing.
        """
        return self._store.iter_leaves(start, self.size if end is None else end)

    def export(self, path: str | os.PathLike[str], from_size: int = 0) -> ExportSummary:
        """Write the ledger (or the range from checkpointed size ``from_size``) to one bundle.

        See :func:`disclosure_ledger._log.export.export_ledger`; the format is in docs/format.md.

        Raises:
            MalformedError: if ``from_size`` is negative or beyond the latest checkpoint.
            StorageError: if ``from_size`` is not a checkpointed size or the file
                cannot be written.
        """
        return export_ledger(self, path, from_size)

    def _signed(self, size: int, note: str) -> SignedCheckpoint:
        # Newest first: a note counts one signature per key, and a witness's
        # latest cosignature is the freshest statement it made.
        lines = self._store.cosignature_lines(size)[::-1]
        full = add_signature_lines(note, lines) if lines else note
        witnesses = [parse_verifier(w) for w in self._store.cosigning_witnesses(size)]
        return open_checkpoint(full, self.log_verifier, witnesses)

    def latest_checkpoint(self) -> SignedCheckpoint:
        """Return the newest signed checkpoint, with its stored cosignatures.

        Raises:
            StorageError: if the ledger has no checkpoint (it always has one).
        """
        latest = self._store.latest_checkpoint()
        if latest is None:
            raise StorageError(f"{self.path}: the ledger has no checkpoint")
        return self._signed(*latest)

    def checkpoint(self, size: int) -> SignedCheckpoint:
        """Return the signed checkpoint of ``size``.

        Raises:
            StorageError: if no commit ended at that size.
        """
        note = self._store.checkpoint(size)
        if note is None:
            raise StorageError(f"no checkpoint of size {size}; checkpointed sizes are commit ends")
        return self._signed(size, note)

    def checkpoint_sizes(self) -> list[int]:
        """Return every checkpointed size, ascending.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._store.checkpoint_sizes()

    def query(
        self,
        *,
        camera_id: str | None = None,
        owner_id: str | None = None,
        action: str | None = None,
        actor_kind: str | None = None,
        recipient: str | None = None,
        legal_basis: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        """Return records matching every given filter, in ledger order.

        ``recipient`` matches the recipient's organization or kind. ``since``
        and ``until`` bound ``occurred_at`` (inclusive, exclusive). The query
        index is brought up to date first; on a ledger opened read-only, the
        records it does not cover yet are decoded and filtered one by one.

        Raises:
            MalformedError: if a time is naive.
        """
        return index.query(
            self._store,
            camera_id=camera_id,
            owner_id=owner_id,
            action=action,
            actor_kind=actor_kind,
            recipient=recipient,
            legal_basis=legal_basis,
            since=since,
            until=until,
            limit=limit,
        )

    def _checkpointed(self, size: int | None) -> int:
        if size is None:
            latest = self._store.latest_checkpoint_size()
            if latest is None:
                raise StorageError("the ledger has no checkpoint")
            return latest
        if self._store.checkpoint(size) is None:
            raise StorageError(f"no checkpoint of size {size}")
        return size

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of record ``index`` at a checkpointed size.

        Raises:
            StorageError: if ``size`` is not a checkpointed size.
            MalformedError: if ``index`` is not below it.
        """
        n = self._checkpointed(size)
        return prove_inclusion(index, n, self._store)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return the consistency proof between two sizes (new defaults to the latest).

        Raises:
            MalformedError: if ``old_size`` is 0 or larger than ``new_size``.
            StorageError: if ``new_size`` exceeds the ledger.
        """
        n = self._checkpointed(None) if new_size is None else new_size
        if n > self.size:
            raise StorageError(f"the ledger has only {self.size} records")
        return prove_consistency(old_size, n, self._store)

    def receipt(self, index: int, size: int | None = None) -> Receipt:
        """Return a C2SP tlog-proof receipt for record ``index``, leaf bytes in ``extra``.

        Raises:
            StorageError: if ``size`` is not a checkpointed size.
            MalformedError: if ``index`` is not below it.
        """
        n = self._checkpointed(size)
        proof = prove_inclusion(index, n, self._store)
        signed = self.checkpoint(n)
        return Receipt(index, tuple(proof), signed.note, self._store.leaf(index))

    def witness_request(self, old_size: int, size: int | None = None) -> WitnessRequest:
        """Return a tlog-witness add-checkpoint body from ``old_size`` to a checkpoint.

        Raises:
            StorageError: if ``size`` is not a checkpointed size.
            MalformedError: if ``old_size`` is larger than it.
        """
        n = self._checkpointed(size)
        if old_size > n:
            raise MalformedError(f"old size {old_size} is larger than {n}")
        proof = [] if old_size in (0, n) else prove_consistency(old_size, n, self._store)
        return WitnessRequest(old_size, tuple(proof), self.checkpoint(n).note)

    def writer_verifiers(self) -> list[Verifier]:
        """Return every writer key that has signed records here, and the log key.

        Raises:
            StorageError: if the ledger cannot be read.
            KeyFormatError: if a stored writer key string is malformed (a damaged file).
        """
        keys = [parse_verifier(v) for v in self._store.writer_keys()]
        if self.log_verifier not in keys:
            keys.append(self.log_verifier)
        return keys

    def last_cosigned_size(self, witness_vkey: str) -> int | None:
        """The largest checkpoint size with a stored cosignature by this witness key.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._store.last_cosigned_size(witness_vkey)

    def witness_events(self) -> list[tuple[int, str, str, str]]:
        """Every recorded witness outcome ``(size, witness, outcome, detail)``, oldest first.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._store.witness_events()

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._store.path

    @property
    def store(self) -> Store:
        """The storage behind this ledger, for the library's own modules (fsck, export)."""
        return self._store

    def __repr__(self) -> str:
        return f"Ledger(path={str(self._store.path)!r}, origin={self.origin!r})"
