"""The embedded SQLite store: records, Merkle hashes and checkpoints in one file.

This module owns the ledger file and nothing above it: it does not sign, hash
leaves or validate events. The file is opened in WAL mode with
``synchronous=FULL``, so a committed transaction survives a crash or power loss.
Triggers refuse UPDATE, DELETE and any insert over an existing key on every
table (``INSERT OR REPLACE`` deletes without firing DELETE triggers), so the
file is append-only to anyone who changes it through SQL. They cannot stop
someone who drops them or edits the file's bytes: ``Ledger.check`` and the
owner's verification catch what that changes.

Merkle hashes are numbered in the order they become known (the layout of Go's
``sumdb/tlog``): leaf ``n``'s hash, then each interior node it completes. The
hash of node ``(level, n)`` is at one computable position
(:func:`stored_hash_index`). Each commit stores the hashes it adds as runs: one
row per block of 64 leaves, holding consecutive positions concatenated; nodes
at :data:`UPPER_LEVEL` and above are also stored one row each. A proof at any
size reads its upper nodes from memory (loaded once) and its lower ones from
one run, and never rehashes leaves. Records keep only their leaf bytes; the query index is a
separate table derived from them. See docs/decisions/0002-hash-storage.md and
docs/decisions/0005-lean-append-path.md.

:class:`SQLiteStore` implements the storage contract of
:mod:`disclosure_ledger._store.base` (docs/decisions/0007-store-contract.md):
one exclusive append transaction on the writer connection, and reads on
connections of their own (WAL lets them run while a commit is open), so a
proof never waits behind a commit.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from disclosure_ledger._core.merkle import NodeId
from disclosure_ledger._store.layout import (
    UPPER_LEVEL,
    stored_hash_count,
    stored_hash_index,
    upper_hash_count,
)
from disclosure_ledger._store.sqlite_reads import (
    SQLiteReads,
    end_of,
    event_id_seqs,
    hashes_at,
)
from disclosure_ledger._store.sqlite_schema import (
    APPLICATION_ID,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_COLUMNS,
    QUERY_COLUMNS,
    QUERY_INDEX,
    QUERY_VIEW,
    SCHEMA,
    query_schema,
    storage_error,
    triggers,
)
from disclosure_ledger.errors import DuplicateEventError, StorageError

if TYPE_CHECKING:
    from disclosure_ledger._store.base import SequencingTxn, Store

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_COLUMNS",
    "QUERY_VIEW",
    "UPPER_LEVEL",
    "AppendTxn",
    "SQLiteStore",
    "stored_hash_count",
    "stored_hash_index",
    "upper_hash_count",
]
_T = TypeVar("_T")


class SQLiteStore(SQLiteReads):
    """One ledger file: a writer connection, and a pool of reader connections.

    Appends (:meth:`append_txn`) hold the writer connection and its lock for
    the whole transaction. Reads are safe from any thread and never take that
    lock: each borrows a reader connection from a small pool (one is opened
    when none is idle, so there are never more than there are concurrent
    readers). In WAL mode a reader sees the last commit and does not wait for
    an open one. The rows it reads are append-only, so rows below a committed
    size never change: a proof read in several statements is still of one tree.
    """

    def __init__(
        self, path: str | os.PathLike[str], conn: sqlite3.Connection, *, readonly: bool = False
    ) -> None:
        super().__init__(path, readonly=readonly)
        self._conn = conn
        self._lock = threading.RLock()  # the writer connection

    # -- opening -----------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], meta: dict[str, str]) -> SQLiteStore:
        """Create a new ledger file with the given metadata.

        Raises:
            StorageError: if the file exists or cannot be created.
        """
        p = Path(path)
        if p.exists():
            raise StorageError(f"{p}: already exists; refusing to overwrite it")
        if not p.parent.is_dir():
            raise StorageError(f"{p.parent}: no such directory")
        conn = cls._connect(p, readonly=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("BEGIN IMMEDIATE")
            for stmt in (SCHEMA + QUERY_INDEX).split(";\n"):
                if stmt.strip():
                    conn.execute(stmt)
            for _, stmt in triggers():
                conn.execute(stmt)
            rows = [("format", FORMAT_NAME), ("format_version", str(FORMAT_VERSION))]
            rows += sorted(meta.items())
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            conn.close()
            with contextlib.suppress(OSError):
                for suffix in ("", "-wal", "-shm"):
                    Path(str(p) + suffix).unlink()
            raise storage_error(err, p, "creating the ledger") from err
        store = cls(p, conn)
        store._configure()
        return store

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> SQLiteStore:
        """Open an existing ledger file.

        Raises:
            StorageError: if the file is missing, not a ledger, of another
                format version, or cannot be opened as asked.
        """
        p = Path(path)
        if not p.exists():
            raise StorageError(f"{p}: no such ledger file")
        if p.is_dir():
            raise StorageError(f"{p}: is a directory, not a ledger file")
        if not readonly and not os.access(p, os.W_OK):
            raise StorageError(f"{p}: the ledger file is read-only")
        try:
            with p.open("rb") as fh:
                header = fh.read(16)
        except OSError as err:
            raise StorageError(f"{p}: cannot read: {err.strerror}") from err
        if header != b"SQLite format 3\x00":
            raise StorageError(f"{p}: not a disclosure ledger (not an SQLite file)")
        conn = cls._connect(p, readonly=readonly)
        store = cls(p, conn, readonly=readonly)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.Error as err:
            conn.close()
            raise storage_error(err, p, "opening") from err
        if app_id != APPLICATION_ID:
            conn.close()
            raise StorageError(f"{p}: not a disclosure ledger")
        try:
            meta = store.meta()
        except StorageError:
            conn.close()
            raise
        if meta.get("format") != FORMAT_NAME:
            conn.close()
            raise StorageError(f"{p}: not a disclosure ledger")
        if meta.get("format_version") != str(FORMAT_VERSION):
            conn.close()
            raise StorageError(
                f"{p}: ledger format version {meta.get('format_version')} is not supported"
            )
        if not readonly:
            store._configure()
            try:
                store._add_missing_triggers()
            except StorageError:
                conn.close()
                raise
        return store

    def _add_missing_triggers(self) -> None:
        """Create the append-only triggers a file lacks, in one transaction.

        Files written before a trigger existed (the INSERT triggers came after
        the format's version 2) get it the first time they are opened for
        writing; the format does not change, since the triggers only refuse
        writes this library never makes. A read-only open changes nothing.
        """
        try:
            present = {
                str(r[0])
                for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            }
            missing = [stmt for name, stmt in triggers() if name not in present]
            if not missing:
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in missing:
                    self._conn.execute(stmt)
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise storage_error(err, self.path, "adding the append-only triggers") from err

    def _configure(self) -> None:
        c = self._conn
        try:
            c.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is on disk (WAL fsynced) before it returns, which is
            # what "durable once acknowledged" means.
            c.execute("PRAGMA synchronous = FULL")
            c.execute("PRAGMA cache_size = -65536")
            # Fold the WAL back into the database less often: each fold fsyncs.
            c.execute("PRAGMA wal_autocheckpoint = 8192")
        except sqlite3.Error as err:
            raise storage_error(err, self.path, "configuring") from err

    def close(self) -> None:
        """Close every connection: the readers first, then the writer (which folds the WAL back).

        Raises:
            Nothing: closing a closed store does nothing.
        """
        self._close_readers()
        with self._lock:
            self._conn.close()

    # -- reading -------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """Return the metadata table as a dict.

        Raises:
            StorageError: if it cannot be read.
        """
        try:
            with self._lock:
                rows = self._conn.execute("SELECT key, value FROM meta").fetchall()
        except sqlite3.Error as err:
            raise storage_error(err, self.path, "reading metadata") from err
        return dict(rows)

    def indexed_size(self) -> int:
        """Return how many records (from the first) the query index covers.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._with_reader(lambda conn: end_of(conn, "record_index"))

    def iter_index_rows(
        self, start: int, end: int, chunk: int = 4096
    ) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """Yield ``(seq, columns)`` of the query index for records ``[start, end)``.

        ``columns`` are in :meth:`AppendTxn.insert_index_rows` order after the
        seq: (logged_at, event_id, camera_id, owner_id, action, actor_kind,
        recipient_kind, recipient_org, legal_basis, occurred_at).

        Raises:
            StorageError: if the ledger cannot be read.
        """
        pos = start
        while pos < end:
            stop = min(end, pos + chunk)
            rows = self._read(
                f"SELECT seq, {QUERY_COLUMNS} FROM record_index"  # noqa: S608 - fixed columns
                " WHERE seq >= ? AND seq < ? ORDER BY seq",
                (pos, stop),
            )
            for seq, *columns in rows:
                yield int(seq), tuple(columns)
            pos = stop

    def query(
        self, where: str, args: Sequence[object], limit: int | None, *, below: int
    ) -> list[tuple[int, bytes]]:
        """Return ``(seq, leaf)`` of the indexed records matching ``where``, ascending.

        Only records below ``below`` are returned. ``where`` is built by the
        ledger from fixed column names; values are always bound parameters.

        Raises:
            StorageError: if the ledger cannot be read or ``where`` is not valid SQL.
        """
        sql = f"SELECT seq, leaf FROM {QUERY_VIEW} WHERE seq < ?"  # noqa: S608 - fixed names
        if where:
            sql += f" AND ({where})"
        sql += " ORDER BY seq"
        bound = [below, *args]
        if limit is not None:
            sql += " LIMIT ?"
            bound.append(limit)
        try:
            with self._reader() as conn:
                rows = conn.execute(sql, bound).fetchall()
        except sqlite3.OperationalError as err:
            # A missing view or table is a damaged ledger, never "no such records":
            # an answer of nothing would hide every record the query asked for.
            if "no such table" in str(err) or "no such column" in str(err):
                raise StorageError(
                    f"{self.path}: the query view {QUERY_VIEW} or a table it reads is missing"
                    f" or altered ({err}); queries cannot be answered"
                ) from err
            raise storage_error(err, self.path, "querying") from err
        except sqlite3.Error as err:
            raise storage_error(err, self.path, "querying") from err
        return [(int(seq), bytes(leaf)) for seq, leaf in rows]

    def check_query_schema(self) -> None:
        """Check that what queries read is defined exactly as this library creates it.

        Queries read the view :data:`QUERY_VIEW` over ``record_index`` and
        ``records``. The append-only triggers guard rows, not the schema: a view
        redefined with a filter, or a table swapped for a view, would make
        queries leave records out while every row still checks. So the view's
        stored definition must be the library's text, and what it reads must be
        tables.

        Raises:
            StorageError: naming the object that is missing or not as created.
        """
        found = {
            str(name): (str(kind), None if sql is None else str(sql))
            for name, kind, sql in self._read(
                "SELECT name, type, sql FROM sqlite_master WHERE name IN (?, ?, ?)",
                (QUERY_VIEW, "record_index", "records"),
            )
        }
        for name, (kind, sql) in query_schema().items():
            if name not in found:
                raise StorageError(f"{self.path}: the {kind} {name} that queries read is missing")
            if found[name][0] != kind:
                raise StorageError(
                    f"{self.path}: {name}, which queries read, is a {found[name][0]}, not a {kind}"
                )
            if sql is not None and found[name][1] != sql:
                raise StorageError(
                    f"{self.path}: the {kind} {name} that queries read is not defined as this"
                    " library defines it; queries could leave records out"
                )

    # -- writing -------------------------------------------------------------------

    @contextlib.contextmanager
    def append_txn(self) -> Iterator[AppendTxn]:
        """Hold the file's write lock for one atomic append.

        Everything written through the yielded :class:`AppendTxn` commits
        together, durably, when the block ends without error; on error nothing
        is written.

        Raises:
            StorageError: if the store is open read-only, the lock cannot be had
                or the commit fails.
        """
        if self.readonly:
            raise StorageError(f"{self.path}: the ledger is open read-only; nothing was written")
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise storage_error(err, self.path, "starting an append") from err
            txn = AppendTxn(self, conn)
            try:
                yield txn
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise storage_error(err, self.path, "appending") from err
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise storage_error(err, self.path, "committing") from err

    def add_cosignatures(self, size: int, lines: Sequence[tuple[str, str]]) -> int:
        """Store ``(witness name, line)`` cosignatures for the checkpoint of ``size``.

        Returns how many were new.

        Raises:
            StorageError: if there is no such checkpoint or the write fails.
        """
        with self.append_txn() as txn:
            if (
                txn.conn.execute("SELECT 1 FROM checkpoints WHERE size = ?", (size,)).fetchone()
                is None
            ):
                raise StorageError(f"no checkpoint of size {size}")
            before = txn.conn.total_changes
            # Not INSERT OR IGNORE: the append-only trigger refuses a row that
            # is already stored, so a line stored before is skipped here.
            txn.conn.executemany(
                "INSERT INTO cosignatures (size, witness, line) SELECT ?, ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM cosignatures WHERE size = ? AND line = ?)",
                [(size, w, line, size, line) for w, line in lines],
            )
            return txn.conn.total_changes - before

    def add_witness_event(self, size: int, witness: str, outcome: str, detail: str) -> None:
        """Record what a witness answered for the checkpoint of ``size``.

        Raises:
            StorageError: if the write fails.
        """
        with self.append_txn() as txn:
            txn.conn.execute(
                "INSERT INTO witness_events (size, witness, outcome, detail) VALUES (?, ?, ?, ?)",
                (size, witness, outcome, detail),
            )


class AppendTxn:
    """Writes inside one exclusive transaction (see :meth:`SQLiteStore.append_txn`)."""

    __slots__ = ("conn", "store")

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection) -> None:
        self.store = store
        self.conn = conn

    def size(self) -> int:
        """The committed size, read inside the lock.

        Raises:
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        return end_of(self.conn, "records")

    def last_leaf(self, size: int) -> bytes | None:
        """The leaf of record ``size - 1``, if there is one.

        Raises:
            StorageError: if ``size`` is positive and record ``size - 1`` is missing.
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        if size == 0:
            return None
        row = self.conn.execute("SELECT leaf FROM records WHERE seq = ?", (size - 1,)).fetchone()
        if row is None:
            raise StorageError(f"record {size - 1} is missing")
        return bytes(row[0])

    def frontier(self, ids: Sequence[NodeId]) -> list[bytes]:
        """The stored hashes of ``ids``, read inside the lock.

        Raises:
            StorageError: if a hash is not stored.
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        return hashes_at(self.conn, [stored_hash_index(level, n) for level, n in ids])

    def existing_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` already committed.

        Raises:
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        return set(event_id_seqs(self.conn, event_ids))

    def insert_records(self, first: int, leaves: Sequence[bytes], event_ids: Sequence[str]) -> None:
        """Insert records ``first, first + 1, ...``: their leaves and their event IDs.

        Raises:
            DuplicateEventError: if an event_id is already present.
            StorageError: if a record position is already taken.
        """
        try:
            self.conn.executemany(
                "INSERT INTO event_ids (event_id, seq) VALUES (?, ?)",
                zip(event_ids, range(first, first + len(event_ids)), strict=True),
            )
            self.conn.executemany(
                "INSERT INTO records (seq, leaf) VALUES (?, ?)",
                zip(range(first, first + len(leaves)), leaves, strict=True),
            )
        except sqlite3.IntegrityError as err:
            if "event_id" in str(err):
                raise DuplicateEventError("(one of this batch)") from err
            raise StorageError(f"record insert refused: {err}") from err

    def indexed_size(self) -> int:
        """How many records the query index covers, read inside the lock.

        Raises:
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        return end_of(self.conn, "record_index")

    def insert_index_rows(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Add query index rows: (seq, logged_at, event_id, camera_id, owner_id,
        action, actor_kind, recipient_kind, recipient_org, legal_basis, occurred_at).

        Raises:
            sqlite3.Error: if a row is already indexed or the statement fails
                (:meth:`SQLiteStore.append_txn` rolls back and reports it as StorageError).
        """
        self.conn.executemany(
            f"INSERT INTO record_index (seq, {QUERY_COLUMNS})"  # noqa: S608 - fixed columns
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )

    def insert_runs(self, runs: Sequence[tuple[int, bytes]]) -> None:
        """Store runs of hashes: ``(first position, the hashes concatenated)``.

        Raises:
            sqlite3.IntegrityError: if a run already starts at one of those positions.
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        if runs:
            self.conn.executemany("INSERT INTO hashes (first, run) VALUES (?, ?)", runs)

    def insert_upper(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Store ``(position, hash)`` of nodes at :data:`UPPER_LEVEL` or above.

        Raises:
            sqlite3.Error: if a position is already stored or the statement fails
                (:meth:`SQLiteStore.append_txn` rolls back and reports it as StorageError).
        """
        if rows:
            self.conn.executemany("INSERT INTO upper_hashes (id, hash) VALUES (?, ?)", rows)

    def insert_checkpoint(self, size: int, note: str) -> None:
        """Insert the signed checkpoint for ``size``.

        Raises:
            sqlite3.IntegrityError: if ``size`` already has a checkpoint.
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        self.conn.execute("INSERT INTO checkpoints (size, note) VALUES (?, ?)", (size, note))

    def register_writer(self, key_id: int, vkey: str, size: int) -> None:
        """Remember a writer key (no-op if known).

        Raises:
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        # Not INSERT OR IGNORE: the append-only trigger refuses a known key.
        self.conn.execute(
            "INSERT INTO writers (key_id, vkey, added_at_size) SELECT ?, ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM writers WHERE vkey = ?)",
            (key_id, vkey, size, vkey),
        )


if TYPE_CHECKING:

    def _conforms(store: SQLiteStore, txn: AppendTxn) -> tuple[Store, SequencingTxn]:
        # mypy proves here that the SQLite store meets the contract.
        return store, txn
