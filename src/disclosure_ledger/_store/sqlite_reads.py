"""Reading the SQLite ledger file: a pool of reader connections, and every read the contract names.

This module owns the read side of :class:`~.sqlite.SQLiteStore`: the
:class:`~.base.LogReader` and :class:`~.base.AuditReader` methods, on
connections of their own. Each read borrows a reader connection from a small
pool (one is opened when none is idle, so there are never more than there are
concurrent readers). In WAL mode a reader sees the last commit and does not
wait for an open one. The rows it reads are append-only, so rows below a
committed size never change: a proof read in several statements is still of
one tree. A proof reads its upper nodes from memory (loaded once) and its
lower ones from one run of the hash table, and never rehashes leaves.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from disclosure_ledger._core.merkle import NodeId
from disclosure_ledger._store.layout import place_nodes, slice_runs
from disclosure_ledger._store.sqlite_schema import storage_error
from disclosure_ledger.errors import StorageError

__all__ = ["SQLiteReads", "end_of", "event_id_seqs", "hashes_at", "upper_at"]

_T = TypeVar("_T")

_BUSY_TIMEOUT_MS = 60_000
_UPPER_WIDTH = 64
_UPPER_SQL = (
    "SELECT id, hash FROM upper_hashes WHERE id IN (" + ",".join("?" * _UPPER_WIDTH) + ")"  # noqa: S608
)
# Upper nodes kept in memory: about 40 MB at the cap, which covers ledgers of
# up to about 8 million records; beyond it, proofs query the rest.
_UPPER_MEMORY_MAX = 1 << 18
_RECENT_RUNS = 8
_RUN_AT_SQL = "SELECT first, run FROM hashes WHERE first <= ? ORDER BY first DESC LIMIT 1"


class SQLiteReads:
    """The reads of one ledger file, on a pool of reader connections, safe from any thread."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
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
                raise storage_error(err, self.path, "opening a reader") from err
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
            raise storage_error(err, path, "opening") from err
        return conn

    def _close_readers(self) -> None:
        with self._pool_lock:
            self._closed = True
            readers, self._readers, self._idle = self._readers, [], []
        for conn in readers:
            conn.close()

    def _with_reader(self, read: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``read`` on a borrowed reader connection; a SQLite error becomes a StorageError."""
        try:
            with self._reader() as conn:
                return read(conn)
        except sqlite3.Error as err:
            raise storage_error(err, self.path, "reading") from err

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._with_reader(lambda conn: conn.execute(sql, args).fetchall())

    def size(self) -> int:
        """Return the number of records committed.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._with_reader(lambda conn: end_of(conn, "records"))

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

    def event_id_seqs(self, event_ids: Sequence[str]) -> dict[str, int]:
        """Map those of ``event_ids`` that are stored to the record they belong to.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._with_reader(lambda conn: event_id_seqs(conn, event_ids))

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
        out, absent, lower = place_nodes(ids, known)
        if not absent and not lower:
            return out
        try:
            with self._reader() as conn:
                if absent:
                    with self._cache_lock:
                        self._load_upper(conn)
                    rest = [p for _, p in absent if p not in known]
                    queried = upper_at(conn, rest) if rest else {}
                    for k, p in absent:
                        out[k] = known.get(p) or queried[p]
                if lower:
                    with self._cache_lock:
                        runs = list(self._recent_runs)
                    got = hashes_at(conn, [p for _, p in lower], runs)
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
            raise storage_error(err, self.path, "reading") from err
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
        return slice_runs(((int(f), bytes(r)) for f, r in rows), start, end)

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

    def witness_events(self) -> list[tuple[int, str, str, str]]:
        """Return every recorded witness outcome ``(size, witness, outcome, detail)``.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        rows = self._read("SELECT size, witness, outcome, detail FROM witness_events ORDER BY id")
        return [(int(a), str(b), str(c), str(d)) for a, b, c, d in rows]


def end_of(conn: sqlite3.Connection, table: str) -> int:
    """One past the highest ``seq`` in ``table`` (records or record_index): its size.

    Raises:
        sqlite3.Error: if the statement fails.
    """
    row = conn.execute(f"SELECT MAX(seq) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
    return 0 if row is None else int(row) + 1


def upper_at(conn: sqlite3.Connection, positions: Sequence[int]) -> dict[int, bytes]:
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


def hashes_at(
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


def event_id_seqs(conn: sqlite3.Connection, event_ids: Sequence[str]) -> dict[str, int]:
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
