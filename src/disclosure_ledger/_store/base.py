"""The storage contract: what the write path, the readers and the check need from a store.

This module owns the contract and nothing else: it does no I/O. A backend is
one module behind it (:class:`~disclosure_ledger._store.sqlite.SQLiteStore` for the
embedded file; a PostgreSQL store that holds many logs follows), and
tests/test_store_contract.py is the conformance suite every backend runs. The
split follows transparency-dev/tessera (a sequencer that assigns positions in
one transaction, apart from where hashes and leaves are read) and
golang.org/x/mod/sumdb/storage (one transaction that reads what it must and
buffers writes that commit together or not at all). See
docs/decisions/0007-store-contract.md.

What is written once above the store and shared by every backend: batching and
group commit, signing, integrating new leaves into the tree (which hashes a
commit adds, and at which position: :func:`~disclosure_ledger._store.sqlite.stored_hash_index`),
and which nodes a proof needs (:func:`~disclosure_ledger._core.merkle.inclusion_nodes`).
A store only keeps bytes at positions and sequences appends.

Every method may raise :class:`~disclosure_ledger.errors.StorageError` when the
store cannot be read or written; the docstrings name the other errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from disclosure_ledger._core.merkle import NodeId

__all__ = ["AuditReader", "LogReader", "QueryIndex", "SequencingTxn", "Store"]


class LogReader(Protocol):
    """What readers and proofs need: the head, leaves, hashes, checkpoints, cosignatures.

    Everything here is of committed, append-only rows: a row below a committed
    size never changes, so reads made in several round trips (the head, then a
    proof's hashes) are still of one tree. Reads must not wait behind an open
    append transaction.
    """

    @property
    def path(self) -> Path:
        """Where the log lives, for messages (a file; for a database, its log's address)."""
        ...

    @property
    def readonly(self) -> bool:
        """Whether the store was opened for reading only (then every write is refused)."""
        ...

    def meta(self) -> dict[str, str]:
        """The log's metadata, fixed at creation: ``origin``, ``log_key``, the format."""
        ...

    def size(self) -> int:
        """How many records are committed (the head's size)."""
        ...

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """``(size, signed note)`` of the newest checkpoint; None if the store has none."""
        ...

    def latest_checkpoint_size(self) -> int | None:
        """The size of the newest checkpoint, without its note."""
        ...

    def leaf(self, seq: int) -> bytes:
        """The leaf bytes of record ``seq``.

        Raises:
            StorageError: if there is no such record.
        """
        ...

    def iter_leaves(self, start: int, end: int, chunk: int = 4096) -> Iterator[bytes]:
        """The leaves of records ``[start, end)`` in order, in bounded memory.

        Raises:
            StorageError: if one is missing (never fewer leaves than asked).
        """
        ...

    def read_hashes(self, ids: Sequence[NodeId], /) -> Sequence[bytes]:
        """The stored hashes of ``ids``, in order, in one round trip (a ``HashReader``).

        Raises:
            StorageError: if one is not stored.
        """
        ...

    def checkpoint(self, size: int) -> str | None:
        """The signed checkpoint note stored for ``size``, if any."""
        ...

    def checkpoint_sizes(self) -> list[int]:
        """Every checkpointed size, ascending."""
        ...

    def iter_checkpoints(self, chunk: int = 4096) -> Iterator[tuple[int, str]]:
        """``(size, note)`` of every checkpoint, ascending, in bounded memory."""
        ...

    def cosignature_lines(self, size: int) -> list[str]:
        """The cosignature lines stored for the checkpoint of ``size``, in the order stored."""
        ...

    def cosigning_witnesses(self, size: int) -> list[str]:
        """The verifier keys of the witnesses with a stored cosignature for ``size``."""
        ...

    def iter_cosignatures(self, chunk: int = 4096) -> Iterator[tuple[int, str, str]]:
        """``(size, witness verifier key, line)`` of every cosignature, by size."""
        ...

    def last_cosigned_size(self, witness: str) -> int | None:
        """The largest size ``witness`` (a verifier key string) has a stored cosignature for."""
        ...

    def writer_keys(self) -> list[str]:
        """The verifier key strings of every registered writer, in the order registered."""
        ...

    def event_id_seqs(self, event_ids: Sequence[str]) -> dict[str, int]:
        """Map those of ``event_ids`` that are committed to their record (the duplicate check)."""
        ...

    def witness_events(self) -> list[tuple[int, str, str, str]]:
        """Every recorded witness outcome ``(size, witness, outcome, detail)``, in order."""
        ...


class AuditReader(Protocol):
    """What the integrity check reads besides the log: the raw stored hashes and counts.

    The check rebuilds the tree from the leaves and compares, position by
    position, with what is stored, so it reads the stored layout directly.
    """

    def read_hash_range(self, start: int, end: int) -> list[bytes]:
        """Stored hashes at positions ``[start, end)``; fewer where the stored ones end.

        Raises:
            StorageError: if the stored hashes overlap or leave a gap.
        """
        ...

    def hash_count(self) -> int:
        """How many hashes are stored (one past the last stored position)."""
        ...

    def read_upper_range(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """``(position, hash)`` of the upper nodes stored at positions ``[start, end)``."""
        ...

    def upper_count(self) -> int:
        """How many upper nodes are stored."""
        ...

    def event_id_count(self) -> int:
        """How many event IDs are registered."""
        ...


class QueryIndex(Protocol):
    """The query index: derived from the records, off the append path, checked against them."""

    def indexed_size(self) -> int:
        """How many records, from the first, the index covers."""
        ...

    def iter_index_rows(
        self, start: int, end: int, chunk: int = 4096
    ) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """``(seq, columns)`` of the index for records ``[start, end)``, in order."""
        ...

    def query(
        self, where: str, args: Sequence[object], limit: int | None, *, below: int
    ) -> list[tuple[int, bytes]]:
        """``(seq, leaf)`` of the indexed records below ``below`` that match, ascending.

        Raises:
            StorageError: if what the query reads is missing (never an empty answer for that).
        """
        ...

    def check_query_schema(self) -> None:
        """Check that what queries read is defined as the library defines it.

        Raises:
            StorageError: naming what is missing or altered.
        """
        ...


class SequencingTxn(Protocol):
    """One append, inside the store's exclusive sequencing transaction.

    Reads here see the committed head as of the lock (a backend takes the lock
    first: SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's ``SELECT ... FOR UPDATE``
    of the log's row), and every write commits together with the checkpoint, or
    none does.
    """

    def size(self) -> int:
        """The committed size, read under the lock: where this append starts."""
        ...

    def last_leaf(self, size: int) -> bytes | None:
        """The leaf of record ``size - 1`` (the chain's head), None when ``size`` is 0.

        Raises:
            StorageError: if it is missing.
        """
        ...

    def frontier(self, ids: Sequence[NodeId]) -> list[bytes]:
        """The stored hashes of ``ids`` (the tree's frontier at the committed size).

        Raises:
            StorageError: if one is not stored.
        """
        ...

    def existing_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` already committed."""
        ...

    def register_writer(self, key_id: int, vkey: str, size: int) -> None:
        """Remember a writer key, first seen at ``size`` (nothing if it is known)."""
        ...

    def insert_records(self, first: int, leaves: Sequence[bytes], event_ids: Sequence[str]) -> None:
        """Add records ``first, first + 1, ...``: their leaves and event IDs.

        Raises:
            DuplicateEventError: if an event ID is already committed (or repeated here).
            StorageError: if a position is taken.
        """
        ...

    def insert_runs(self, runs: Sequence[tuple[int, bytes]]) -> None:
        """Store runs of hashes ``(first position, hashes concatenated)``, never overlapping."""
        ...

    def insert_upper(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Store ``(position, hash)`` of the nodes at the upper levels, one by one."""
        ...

    def insert_checkpoint(self, size: int, note: str) -> None:
        """Store the signed checkpoint of ``size`` (each size at most once)."""
        ...

    def indexed_size(self) -> int:
        """How many records the query index covers, read under the lock."""
        ...

    def insert_index_rows(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Add query index rows (seq first, then the index columns)."""
        ...


class Store(LogReader, AuditReader, QueryIndex, Protocol):
    """A whole backend: the readers, and the writes that go through the sequencing transaction."""

    def append_txn(self) -> AbstractContextManager[SequencingTxn]:
        """Hold the log's sequencing lock for one atomic append.

        Everything written through the yielded transaction commits together,
        durably, when the block ends without error; on any error nothing is
        written and the error propagates.

        Raises:
            StorageError: if the store is read-only, the lock cannot be had or the commit fails.
        """
        ...

    def add_cosignatures(self, size: int, lines: Sequence[tuple[str, str]]) -> int:
        """Store ``(witness verifier key, line)`` cosignatures for ``size``; count the new ones.

        Storing a line again is not an error and adds nothing.

        Raises:
            StorageError: if there is no checkpoint of ``size``.
        """
        ...

    def add_witness_event(self, size: int, witness: str, outcome: str, detail: str) -> None:
        """Record what a witness answered for the checkpoint of ``size``."""
        ...

    def close(self) -> None:
        """Release the store's connections; closing twice does nothing."""
        ...
