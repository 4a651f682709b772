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
import errno
import os
import sqlite3
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from disclosure_ledger._core.merkle import NodeId
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

FORMAT_NAME = "disclosure-ledger"
FORMAT_VERSION = 3
_APPLICATION_ID = 0x444C4731  # "DLG1": marks the file as a ledger for `file(1)` and for us
_BUSY_TIMEOUT_MS = 60_000

UPPER_LEVEL = 6
"""Nodes at this level and above (over 64 leaves or more) are also stored one row
each in ``upper_hashes``: about 1/32 of the records, so a proof fetches all of
its upper nodes in one query and only its lowest levels from a run."""
_UPPER_WIDTH = 64
_UPPER_SQL = (
    "SELECT id, hash FROM upper_hashes WHERE id IN (" + ",".join("?" * _UPPER_WIDTH) + ")"  # noqa: S608
)
# Upper nodes kept in memory: about 40 MB at the cap, which covers ledgers of
# up to about 8 million records; beyond it, proofs query the rest.
_UPPER_MEMORY_MAX = 1 << 18
_RECENT_RUNS = 8
_RUN_AT_SQL = "SELECT first, run FROM hashes WHERE first <= ? ORDER BY first DESC LIMIT 1"


def stored_hash_index(level: int, n: int) -> int:
    """Return the position of node ``(level, n)`` in the stored-hash sequence.

    Leaf ``k`` is stored after the ``2k - popcount(k)`` hashes of the leaves
    before it and the nodes they completed; each interior node follows the
    leaf that completed it.

    Raises:
        Nothing: integer arithmetic only.
    """
    # The last leaf under the node is n' = n·2^level + 2^level - 1; the hashes
    # before and including it number sum(n' >> k for k >= 0) = 2n' - popcount(n').
    last = ((n + 1) << level) - 1
    return 2 * last - last.bit_count() + level


def stored_hash_count(size: int) -> int:
    """Return how many hashes are stored for a tree of ``size`` leaves.

    Raises:
        Nothing: integer arithmetic only.
    """
    return 2 * size - size.bit_count()


def upper_hash_count(size: int) -> int:
    """Return how many nodes at :data:`UPPER_LEVEL` or above a tree of ``size`` leaves completes.

    Raises:
        Nothing: integer arithmetic only.
    """
    return sum(size >> level for level in range(UPPER_LEVEL, size.bit_length()))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS writers (
    key_id INTEGER NOT NULL,
    vkey TEXT NOT NULL UNIQUE,
    added_at_size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS event_ids (
    event_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hashes (
    first INTEGER PRIMARY KEY,
    run BLOB NOT NULL CHECK (length(run) > 0 AND length(run) % 32 = 0)
);
CREATE TABLE IF NOT EXISTS upper_hashes (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (size, line)
);
CREATE TABLE IF NOT EXISTS witness_events (
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


INDEX_COLUMNS = (
    "logged_at",
    "event_id",
    "camera_id",
    "owner_id",
    "action",
    "actor_kind",
    "recipient_kind",
    "recipient_org",
    "legal_basis",
    "occurred_at",
)
"""The columns of the query index after ``seq``, in the order the ledger writes and checks them."""
_QUERY_COLUMNS = ", ".join(INDEX_COLUMNS)
QUERY_VIEW = "indexed_records"
"""The view queries read: the query index joined with the records' leaves."""

# The query index is derived from the records, after they are acknowledged and
# off the append path: the ledger fills it in before answering a query, and
# `check` compares it with the signed records.
_QUERY_INDEX = """
CREATE TABLE IF NOT EXISTS record_index (
    seq INTEGER PRIMARY KEY,
    logged_at INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    owner_id TEXT,
    action TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    recipient_kind TEXT,
    recipient_org TEXT,
    legal_basis TEXT,
    occurred_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS record_index_camera ON record_index (camera_id, occurred_at);
CREATE INDEX IF NOT EXISTS record_index_owner ON record_index (owner_id, occurred_at);
CREATE INDEX IF NOT EXISTS record_index_time ON record_index (occurred_at);
CREATE VIEW IF NOT EXISTS indexed_records AS
    SELECT record_index.*, records.leaf FROM record_index JOIN records USING (seq);
"""


# Every table, and what makes a row "the same row" in it: an INSERT that matches
# would, under OR REPLACE, delete the row it matches without firing its DELETE
# trigger. The second field says how rowids are guarded (see _triggers):
# "key" for tables whose INTEGER PRIMARY KEY is a position the ledger always
# gives, "auto" for tables whose rowid SQLite picks, None for WITHOUT ROWID.
_ROW_KEYS: dict[str, tuple[str, str | None]] = {
    "meta": ("key = NEW.key", "auto"),
    "writers": ("vkey = NEW.vkey", "auto"),
    "records": ("seq = NEW.seq", "key"),
    "event_ids": ("event_id = NEW.event_id", None),
    "hashes": ("first = NEW.first", "key"),
    "upper_hashes": ("id = NEW.id", "key"),
    "checkpoints": ("size = NEW.size", "key"),
    "cosignatures": ("size = NEW.size AND line = NEW.line", "auto"),
    "witness_events": ("id = NEW.id", "auto"),
    "record_index": ("seq = NEW.seq", "key"),
}


def _triggers() -> list[tuple[str, str]]:
    """``(name, statement)`` of the append-only triggers: no UPDATE, DELETE or overwriting INSERT.

    UPDATE and DELETE triggers cover ``UPDATE``, ``UPDATE OR REPLACE``,
    ``DELETE`` and upserts (``ON CONFLICT DO UPDATE`` runs an UPDATE). An
    ``INSERT OR REPLACE`` (``REPLACE INTO``) deletes the row it conflicts with
    without firing DELETE triggers, so every table also refuses, before the
    insert, any row whose key is already taken; ``INSERT OR IGNORE`` of such a
    row is refused too, which keeps the rule simple (the ledger itself skips
    known rows with ``WHERE NOT EXISTS``).

    Rowids: ``INSERT OR REPLACE INTO t (rowid, ...)`` can name a stored row by
    its rowid alone, so tables with automatic rowids match on the rowid too.
    In a BEFORE INSERT trigger an automatic rowid reads as -1, so a stored row
    at -1 would make every automatic insert look like an overwrite: negative
    rowids are refused (after the insert, where the real rowid is known; in
    the BEFORE trigger itself for the position-keyed tables, which the ledger
    never fills automatically, so the hot path runs one trigger per row).
    """
    out = []
    for table, (key_match, rowids) in _ROW_KEYS.items():
        for op in ("UPDATE", "DELETE"):
            name = f"{table}_no_{op.lower()}"
            out.append(
                (
                    name,
                    f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'disclosure ledger is append-only: "
                    f"{op} on {table} refused'); END;",
                )
            )
        when = f"EXISTS (SELECT 1 FROM {table} WHERE {key_match})"  # noqa: S608 - fixed names
        if rowids == "auto":
            when = f"EXISTS (SELECT 1 FROM {table} WHERE ({key_match}) OR rowid = NEW.rowid)"  # noqa: S608 - fixed names
        elif rowids == "key":
            when = f"NEW.rowid < 0 OR {when}"
        name = f"{table}_no_overwrite"
        out.append(
            (
                name,
                f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE INSERT ON {table} WHEN {when} "
                f"BEGIN SELECT RAISE(ABORT, 'disclosure ledger is append-only: "
                f"INSERT over an existing row of {table}, or at a negative key, refused'); END;",
            )
        )
        if rowids == "auto":
            name = f"{table}_no_negative_rowid"
            out.append(
                (
                    name,
                    f"CREATE TRIGGER IF NOT EXISTS {name} AFTER INSERT ON {table} "
                    f"WHEN NEW.rowid < 0 "
                    f"BEGIN SELECT RAISE(ABORT, 'disclosure ledger is append-only: "
                    f"a negative rowid in {table} refused'); END;",
                )
            )
    return out


def _storage_error(err: BaseException, path: Path, doing: str) -> StorageError:
    text = str(err)
    if isinstance(err, sqlite3.OperationalError):
        if "disk is full" in text or "database or disk is full" in text:
            return StorageError(f"{path}: disk full while {doing}; nothing was written")
        if "readonly" in text or "read-only" in text:
            return StorageError(f"{path}: the ledger file is read-only ({doing})")
        if "locked" in text or "busy" in text:
            return StorageError(f"{path}: the ledger is locked by another writer ({doing})")
    if isinstance(err, sqlite3.DatabaseError) and "not a database" in text:
        return StorageError(f"{path}: not a disclosure ledger (not an SQLite file)")
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return StorageError(f"{path}: disk full while {doing}; nothing was written")
    return StorageError(f"{path}: {doing} failed: {text}")


class SQLiteStore:
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
        self.path = Path(path)
        self.readonly = readonly
        self._conn = conn
        self._lock = threading.RLock()  # the writer connection
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._readers: list[sqlite3.Connection] = []  # every reader opened, to close them
        self._closed = False
        self._cache_lock = threading.Lock()  # _upper and _recent_runs, shared by readers
        # Upper nodes never change once stored: they are loaded in position
        # order, the first time a proof needs one, and kept.
        self._upper: dict[int, bytes] = {}
        self._upper_end = -1  # the highest position loaded
        # The runs read most recently, newest last: the run at the tree's right
        # edge is in every proof at the latest size.
        self._recent_runs: list[tuple[int, bytes]] = []

    # -- opening -----------------------------------------------------------------

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """Borrow a reader connection for one read (a few statements), then give it back.

        Raises:
            StorageError: if the store is closed or a new connection cannot be opened.
        """
        with self._pool_lock:
            if self._closed:
                raise StorageError(f"{self.path}: the ledger is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect(self.path, readonly=self.readonly)
            try:
                # A reader never writes, even on a writable store.
                conn.execute("PRAGMA query_only = ON")
            except sqlite3.Error as err:
                conn.close()
                raise _storage_error(err, self.path, "opening a reader") from err
            with self._pool_lock:
                if self._closed:
                    conn.close()
                    raise StorageError(f"{self.path}: the ledger is closed")
                self._readers.append(conn)
        try:
            yield conn
        finally:
            with self._pool_lock:
                if not self._closed:
                    self._idle.append(conn)

    @staticmethod
    def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
        try:
            if readonly:
                uri = "file:" + urllib.request.pathname2url(str(path.resolve())) + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as err:
            raise _storage_error(err, path, "opening") from err
        return conn

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
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            conn.execute("BEGIN IMMEDIATE")
            for stmt in (_SCHEMA + _QUERY_INDEX).split(";\n"):
                if stmt.strip():
                    conn.execute(stmt)
            for _, stmt in _triggers():
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
            raise _storage_error(err, p, "creating the ledger") from err
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
            raise _storage_error(err, p, "opening") from err
        if app_id != _APPLICATION_ID:
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
            missing = [stmt for name, stmt in _triggers() if name not in present]
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
            raise _storage_error(err, self.path, "adding the append-only triggers") from err

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
            raise _storage_error(err, self.path, "configuring") from err

    def close(self) -> None:
        """Close every connection: the readers first, then the writer (which folds the WAL back).

        Raises:
            Nothing: closing a closed store does nothing.
        """
        with self._pool_lock:
            self._closed = True
            readers, self._readers, self._idle = self._readers, [], []
        for conn in readers:
            conn.close()
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
            raise _storage_error(err, self.path, "reading metadata") from err
        return dict(rows)

    def _with_reader(self, read: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``read`` on a borrowed reader connection; a SQLite error becomes a StorageError."""
        try:
            with self._reader() as conn:
                return read(conn)
        except sqlite3.Error as err:
            raise _storage_error(err, self.path, "reading") from err

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._with_reader(lambda conn: conn.execute(sql, args).fetchall())

    def size(self) -> int:
        """Return the number of records committed.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._with_reader(lambda conn: _end_of(conn, "records"))

    def leaf(self, seq: int) -> bytes:
        """Return the leaf bytes of record ``seq``.

        Raises:
            StorageError: if there is no such record.
        """
        rows = self._read("SELECT leaf FROM records WHERE seq = ?", (seq,))
        if not rows:
            raise StorageError(f"no record at index {seq}")
        return bytes(rows[0][0])

    def _iter_rows(
        self, columns: str, start: int, end: int, chunk: int
    ) -> Iterator[tuple[Any, ...]]:
        pos = start
        while pos < end:
            stop = min(end, pos + chunk)
            rows = self._read(
                f"SELECT {columns} FROM records WHERE seq >= ? AND seq < ? ORDER BY seq",  # noqa: S608 - fixed column lists
                (pos, stop),
            )
            if len(rows) != stop - pos:
                raise StorageError(f"records {pos}..{stop - 1} are not all present")
            yield from rows
            pos = stop

    def iter_leaves(self, start: int, end: int, chunk: int = 4096) -> Iterator[bytes]:
        """Yield the leaves of records ``[start, end)`` in order, in bounded memory.

        Raises:
            StorageError: if a record in the range is missing.
        """
        for (leaf,) in self._iter_rows("leaf", start, end, chunk):
            yield bytes(leaf)

    def indexed_size(self) -> int:
        """Return how many records (from the first) the query index covers.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._with_reader(lambda conn: _end_of(conn, "record_index"))

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
                f"SELECT seq, {_QUERY_COLUMNS} FROM record_index"  # noqa: S608 - fixed columns
                " WHERE seq >= ? AND seq < ? ORDER BY seq",
                (pos, stop),
            )
            for seq, *columns in rows:
                yield int(seq), tuple(columns)
            pos = stop

    def event_id_seqs(self, event_ids: Sequence[str]) -> dict[str, int]:
        """Map those of ``event_ids`` that are stored to the record they belong to.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._with_reader(lambda conn: _event_id_seqs(conn, event_ids))

    def event_id_count(self) -> int:
        """Return how many event IDs are stored.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return int(self._read("SELECT COUNT(*) FROM event_ids")[0][0])

    def read_hashes(self, ids: Sequence[NodeId], /) -> list[bytes]:
        """Return the stored hashes of ``ids`` (a :class:`~.merkle.HashReader`).

        Raises:
            StorageError: if a hash is not stored.
        """
        known = self._upper
        out: list[bytes] = []
        absent: list[tuple[int, int]] = []  # (place in out, position) of upper nodes not loaded
        lower: list[tuple[int, int]] = []
        for k, (level, n) in enumerate(ids):
            last = ((n + 1) << level) - 1  # stored_hash_index, inline: this runs per node
            pos = 2 * last - last.bit_count() + level
            if level >= UPPER_LEVEL:
                h = known.get(pos)
                if h is None:
                    absent.append((k, pos))
                out.append(h or b"")
            else:
                lower.append((k, pos))
                out.append(b"")
        if not absent and not lower:
            return out
        try:
            with self._reader() as conn:
                if absent:
                    with self._cache_lock:
                        self._load_upper(conn)
                    rest = [p for _, p in absent if p not in known]
                    queried = _upper_at(conn, rest) if rest else {}
                    for k, p in absent:
                        out[k] = known.get(p) or queried[p]
                if lower:
                    with self._cache_lock:
                        runs = list(self._recent_runs)
                    got = _hashes_at(conn, [p for _, p in lower], runs)
                    for (k, _), h in zip(lower, got, strict=True):
                        out[k] = h
                    # Keep the most recent runs, and always the one furthest
                    # right: it holds the tree's right edge, which every proof
                    # at the latest size folds. Stored runs never change, so
                    # what any reader read is right for all of them.
                    edge = max(runs, key=lambda r: r[0])
                    del runs[:-_RECENT_RUNS]
                    if edge not in runs:
                        runs.insert(0, edge)
                    with self._cache_lock:
                        self._recent_runs = runs
        except sqlite3.Error as err:
            raise _storage_error(err, self.path, "reading") from err
        return out

    def _load_upper(self, conn: sqlite3.Connection) -> None:
        # Load the upper nodes stored since the last load, up to the memory cap.
        # Called with _cache_lock held.
        room = _UPPER_MEMORY_MAX - len(self._upper)
        if room <= 0:
            return
        rows = conn.execute(
            "SELECT id, hash FROM upper_hashes WHERE id > ? ORDER BY id LIMIT ?",
            (self._upper_end, room),
        ).fetchall()
        if rows:
            self._upper.update((int(i), bytes(h)) for i, h in rows)
            self._upper_end = int(rows[-1][0])

    def read_upper_range(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Return ``(position, hash)`` of the upper nodes stored at positions ``[start, end)``.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        rows = self._read(
            "SELECT id, hash FROM upper_hashes WHERE id >= ? AND id < ? ORDER BY id", (start, end)
        )
        return [(int(i), bytes(h)) for i, h in rows]

    def upper_count(self) -> int:
        """Return how many upper nodes are stored.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return int(self._read("SELECT COUNT(*) FROM upper_hashes")[0][0])

    def read_hash_range(self, start: int, end: int) -> list[bytes]:
        """Return stored hashes with positions ``[start, end)`` in order.

        Stops early, returning fewer, where the stored hashes end.

        Raises:
            StorageError: if the stored runs overlap or leave a gap (a damaged
                file), or the ledger cannot be read.
        """
        if end <= start:
            return []
        rows = self._read(_RUN_AT_SQL, (start,))
        rows += self._read(
            "SELECT first, run FROM hashes WHERE first > ? AND first < ? ORDER BY first",
            (start, end),
        )
        out: list[bytes] = []
        pos = start
        for i, (first_at, blob) in enumerate(rows):
            first, run = int(first_at), bytes(blob)
            stop = first + len(run) // 32
            if i == 0 and stop <= pos:
                continue  # the run before ``start`` ends before it
            if first > pos:
                raise StorageError(f"stored Merkle hashes have a gap at position {pos}")
            if first < pos and i > 0:
                raise StorageError(f"stored Merkle hashes overlap at position {first}")
            off = (pos - first) * 32
            take = min(stop, end) - pos
            out += [run[off + 32 * k : off + 32 * k + 32] for k in range(take)]
            pos += take
        return out

    def hash_count(self) -> int:
        """Return the number of stored hashes (the end of the last stored run).

        Raises:
            StorageError: if the ledger cannot be read.
        """
        rows = self._read("SELECT first, length(run) FROM hashes ORDER BY first DESC LIMIT 1")
        return 0 if not rows else int(rows[0][0]) + int(rows[0][1]) // 32

    def checkpoint(self, size: int) -> str | None:
        """Return the signed checkpoint note stored for ``size``, if any.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        rows = self._read("SELECT note FROM checkpoints WHERE size = ?", (size,))
        return str(rows[0][0]) if rows else None

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """Return ``(size, note)`` of the newest checkpoint, if any.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        rows = self._read("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def latest_checkpoint_size(self) -> int | None:
        """Return the size of the newest checkpoint, if any.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        row = self._read("SELECT MAX(size) FROM checkpoints")[0][0]
        return None if row is None else int(row)

    def checkpoint_sizes(self) -> list[int]:
        """Return every checkpointed size, ascending.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return [int(r[0]) for r in self._read("SELECT size FROM checkpoints ORDER BY size")]

    def iter_checkpoints(self, chunk: int = 4096) -> Iterator[tuple[int, str]]:
        """Yield ``(size, note)`` for every checkpoint, ascending, in bounded memory.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        after = -1
        while True:
            rows = self._read(
                "SELECT size, note FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?",
                (after, chunk),
            )
            for size, note in rows:
                yield int(size), str(note)
            if len(rows) < chunk:
                return
            after = int(rows[-1][0])

    def cosignature_lines(self, size: int) -> list[str]:
        """Return the cosignature lines stored for the checkpoint of ``size``.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        rows = self._read("SELECT line FROM cosignatures WHERE size = ? ORDER BY rowid", (size,))
        return [str(r[0]) for r in rows]

    def iter_cosignatures(self, chunk: int = 4096) -> Iterator[tuple[int, str, str]]:
        """Yield ``(size, witness verifier key, line)`` of every stored cosignature, by size.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        after = (-1, 0)
        while True:
            rows = self._read(
                "SELECT size, rowid, witness, line FROM cosignatures WHERE (size, rowid) > (?, ?)"
                " ORDER BY size, rowid LIMIT ?",
                (*after, chunk),
            )
            for size, _, witness, line in rows:
                yield int(size), str(witness), str(line)
            if len(rows) < chunk:
                return
            after = (int(rows[-1][0]), int(rows[-1][1]))

    def cosigning_witnesses(self, size: int) -> list[str]:
        """Return the verifier keys of the witnesses whose cosignatures are stored for ``size``.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        rows = self._read("SELECT DISTINCT witness FROM cosignatures WHERE size = ?", (size,))
        return [str(r[0]) for r in rows]

    def last_cosigned_size(self, witness: str) -> int | None:
        """The largest size with a stored cosignature by ``witness`` (a verifier key string).

        Raises:
            StorageError: if the ledger cannot be read.
        """
        row = self._read("SELECT MAX(size) FROM cosignatures WHERE witness = ?", (witness,))[0]
        return None if row[0] is None else int(row[0])

    def writer_keys(self) -> list[str]:
        """Return the verifier key strings of every registered writer.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return [str(r[0]) for r in self._read("SELECT vkey FROM writers ORDER BY rowid")]

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
            raise _storage_error(err, self.path, "querying") from err
        except sqlite3.Error as err:
            raise _storage_error(err, self.path, "querying") from err
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
        for name, (kind, sql) in _query_schema().items():
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
                raise _storage_error(err, self.path, "starting an append") from err
            txn = AppendTxn(self, conn)
            try:
                yield txn
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise _storage_error(err, self.path, "appending") from err
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise _storage_error(err, self.path, "committing") from err

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

    def witness_events(self) -> list[tuple[int, str, str, str]]:
        """Return every recorded witness outcome ``(size, witness, outcome, detail)``.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        rows = self._read("SELECT size, witness, outcome, detail FROM witness_events ORDER BY id")
        return [(int(a), str(b), str(c), str(d)) for a, b, c, d in rows]


def _query_schema() -> dict[str, tuple[str, str | None]]:
    """``name: (type, sql)`` of what queries read, as :meth:`SQLiteStore.create` makes them.

    The view's text is taken from a scratch in-memory database built from the
    schema, so it is exactly what SQLite stores for it (SQLite drops ``IF NOT
    EXISTS`` and keeps the rest verbatim). The tables' text is not compared
    (``check`` compares their rows with the signed records); only their type.
    """
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.executescript(_SCHEMA + _QUERY_INDEX)
        (view_sql,) = scratch.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (QUERY_VIEW,)
        ).fetchone()
    finally:
        scratch.close()
    return {
        QUERY_VIEW: ("view", str(view_sql)),
        "record_index": ("table", None),
        "records": ("table", None),
    }


def _end_of(conn: sqlite3.Connection, table: str) -> int:
    """One past the highest ``seq`` in ``table`` (records or record_index): its size.

    Raises:
        sqlite3.Error: if the statement fails.
    """
    row = conn.execute(f"SELECT MAX(seq) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
    return 0 if row is None else int(row) + 1


def _upper_at(conn: sqlite3.Connection, positions: Sequence[int]) -> dict[int, bytes]:
    """The stored upper nodes at ``positions``, in fixed-width IN queries (one prepared statement).

    Raises:
        StorageError: if one is not stored.
        sqlite3.Error: if a statement fails.
    """
    found: dict[int, bytes] = {}
    for i in range(0, len(positions), _UPPER_WIDTH):
        part = list(positions[i : i + _UPPER_WIDTH])
        part += [-1] * (_UPPER_WIDTH - len(part))  # -1 is never a position
        found.update((int(p), bytes(h)) for p, h in conn.execute(_UPPER_SQL, part))
    for pos in positions:
        if pos not in found:
            raise StorageError(f"the Merkle hash at position {pos} is not stored")
    return found


def _hashes_at(
    conn: sqlite3.Connection, positions: Sequence[int], runs: list[tuple[int, bytes]] | None = None
) -> list[bytes]:
    """The stored hashes at ``positions``: one primary-key seek per run they fall in.

    ``runs`` holds ``(first, run)`` pairs already read (stored runs never
    change); the runs this call reads are appended to it.

    Raises:
        StorageError: if a position is beyond the stored runs.
        sqlite3.Error: if a statement fails.
    """
    if runs is None:
        runs = []
    out = []
    first, run, stop = -1, b"", -1  # the run the last position was in
    for pos in positions:
        if not first <= pos < stop:
            for first, run in runs:
                stop = first + len(run) // 32
                if first <= pos < stop:
                    break
            else:
                row = conn.execute(_RUN_AT_SQL, (pos,)).fetchone()
                if row is None or int(row[0]) + len(row[1]) // 32 <= pos:
                    raise StorageError(f"the Merkle hash at position {pos} is not stored")
                first, run = int(row[0]), bytes(row[1])
                stop = first + len(run) // 32
                runs.append((first, run))
        off = (pos - first) * 32
        out.append(run[off : off + 32])
    return out


def _event_id_seqs(conn: sqlite3.Connection, event_ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i in range(0, len(event_ids), 500):
        part = list(event_ids[i : i + 500])
        marks = ",".join("?" * len(part))
        found.update(
            (str(eid), int(seq))
            for eid, seq in conn.execute(
                f"SELECT event_id, seq FROM event_ids WHERE event_id IN ({marks})",  # noqa: S608 - "?" only
                part,
            )
        )
    return found


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
        return _end_of(self.conn, "records")

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
        return _hashes_at(self.conn, [stored_hash_index(level, n) for level, n in ids])

    def existing_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` already committed.

        Raises:
            sqlite3.Error: if the statement fails (:meth:`SQLiteStore.append_txn` rolls back
                and reports it as StorageError).
        """
        return set(_event_id_seqs(self.conn, event_ids))

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
        return _end_of(self.conn, "record_index")

    def insert_index_rows(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Add query index rows: (seq, logged_at, event_id, camera_id, owner_id,
        action, actor_kind, recipient_kind, recipient_org, legal_basis, occurred_at).

        Raises:
            sqlite3.Error: if a row is already indexed or the statement fails
                (:meth:`SQLiteStore.append_txn` rolls back and reports it as StorageError).
        """
        self.conn.executemany(
            f"INSERT INTO record_index (seq, {_QUERY_COLUMNS})"  # noqa: S608 - fixed columns
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
