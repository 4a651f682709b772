"""The PostgreSQL database behind the PostgreSQL store: its connections and transactions.

This module owns the connection to one PostgreSQL database that holds many
logs (:class:`PostgresDatabase`: a pool of connections shared by every log a
process opens through it), the creation of its schema and of logs, and the
sequencing transaction (:meth:`PostgresDatabase.transaction`) with its writes
(:class:`PgAppendTxn`). The reads of one log are in
:mod:`disclosure_ledger._store.pg_reader`, the store that joins them in
:mod:`disclosure_ledger._store.postgres`, the DDL in
:mod:`disclosure_ledger._store.pg_schema`.

Sequencing is the database's: a transaction first takes each of its logs' rows
in ``logs`` with ``SELECT ... FOR UPDATE``, one statement per log, in
ascending ``log_id`` (so two transactions never wait for each other), and
moves each row's ``size`` forward before it commits. Appends to one log from
any number of processes and machines are so serialized, while appends to other
logs go on. A commit is durable when it returns: ``synchronous_commit`` is
forced on for the store's connections.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pgerr

from disclosure_ledger._core.merkle import NodeId, subtree_ids
from disclosure_ledger._store.layout import stored_hash_index
from disclosure_ledger._store.pg_schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SCHEMA,
    SCHEMA_DDL,
    is_postgres_url,
    log_id_of,
    redact_url,
    url_password,
)
from disclosure_ledger._store.sqlite_schema import INDEX_COLUMNS
from disclosure_ledger.errors import DuplicateEventError, StorageError

__all__ = ["PgAppendTxn", "PostgresDatabase", "in_runs", "is_postgres_url"]

_T = TypeVar("_T")
_QUERY_COLUMNS = ", ".join(INDEX_COLUMNS)
_CONNECT_TIMEOUT_S = 10
_POOL_TIMEOUT_S = 60.0
_LOCK_SQL = (
    "SELECT l.size, l.frontier, r.leaf FROM logs AS l LEFT JOIN records AS r"
    " ON r.log_id = l.log_id AND r.seq = l.size - 1 WHERE l.log_id = %s FOR UPDATE OF l"
)
_INIT_LOCK = 0x444C4731  # pg_advisory_xact_lock key: one schema creation at a time


def _one_line(text: str, password: str | None) -> str:
    line = "; ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    if password:
        line = line.replace(password, "***")
    return line


class PostgresDatabase:
    """One PostgreSQL database holding many logs, and a pool of connections to it.

    Open it with :meth:`connect`; open its logs with :meth:`create_log` and
    :meth:`open_log`. Every log opened through one database shares its pool,
    and :meth:`transaction` lets one commit append to several of them. The
    password in the URL never appears in :attr:`address` or in an error.
    """

    def __init__(self, url: str, *, readonly: bool, pool_size: int) -> None:
        self.address = redact_url(url)
        self.readonly = readonly
        self._password = url_password(url)
        # Generic plans for prepared statements: the store's statements are
        # few and keyed by primary keys, and PostgreSQL otherwise re-plans
        # them on every run (a proof's query spent more time planned than run).
        options = (
            f"-c search_path={SCHEMA} -c synchronous_commit=on"
            " -c plan_cache_mode=force_generic_plan"
        )
        if readonly:
            options += " -c default_transaction_read_only=on"
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": options,
            "connect_timeout": _CONNECT_TIMEOUT_S,
        }
        self._url = url
        self._closed = False
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_size = pool_size

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        readonly: bool = False,
        create_schema: bool = False,
        pool_size: int = 8,
    ) -> PostgresDatabase:
        """Connect to the database at ``url`` and check its schema (creating it if asked).

        Raises:
            StorageError: if the URL is not a PostgreSQL URL, the server cannot
                be reached or refuses the login, the schema is missing (and
                ``create_schema`` is false) or of another format version.
        """
        if not is_postgres_url(url):
            raise StorageError(f"{redact_url(url)}: not a postgresql:// URL")
        db = cls(url, readonly=readonly, pool_size=pool_size)
        try:
            conn = psycopg.connect(url, **db._kwargs)
        except psycopg.Error as err:
            raise db.error(err, "connecting") from err
        try:
            db._check_schema(conn, create=create_schema)
        finally:
            conn.close()
        db._pool = psycopg_pool.ConnectionPool(
            url,
            kwargs=db._kwargs,
            min_size=1,
            max_size=pool_size,
            open=True,
            timeout=_POOL_TIMEOUT_S,
            num_workers=1,
            name="disclosure-ledger",
        )
        return db

    def error(self, err: BaseException, doing: str) -> StorageError:
        """A one-line :class:`StorageError` for ``err``, naming the database but no password."""
        text = _one_line(str(err), self._password) or type(err).__name__
        where = self.address
        if isinstance(err, pgerr.ReadOnlySqlTransaction):
            return StorageError(f"{where}: the database is open read-only; nothing was written")
        if isinstance(err, pgerr.RestrictViolation | pgerr.RaiseException):
            return StorageError(f"{where}: {doing} refused: {text}")
        if isinstance(err, psycopg.OperationalError | psycopg.InterfaceError):
            return StorageError(f"{where}: {doing} failed, the database connection failed: {text}")
        return StorageError(f"{where}: {doing} failed: {text}")

    def _check_schema(self, conn: psycopg.Connection[Any], *, create: bool) -> None:
        try:
            row = conn.execute(
                "SELECT version FROM format WHERE name = %s", (FORMAT_NAME,)
            ).fetchone()
        except pgerr.UndefinedTable:
            row = None
            if create:
                self._init_schema(conn)
                return
        except psycopg.Error as err:
            raise self.error(err, "reading the schema version") from err
        if row is None:
            raise StorageError(
                f"{self.address}: no disclosure ledger schema in this database"
                " (`disclosure-ledger init URL --origin O --log-key K` creates it)"
            )
        version = int(row[0])
        if version > FORMAT_VERSION:
            raise StorageError(
                f"{self.address}: the schema is of format version {version}, newer than this"
                f" library's {FORMAT_VERSION}; upgrade disclosure_ledger to use it"
            )
        if version != FORMAT_VERSION:
            raise StorageError(
                f"{self.address}: the schema's format version {version} is not supported"
            )

    def _init_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self.readonly:
            raise StorageError(f"{self.address}: no disclosure ledger schema in this database")
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
                exists = conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)
                ).fetchone()
                if exists is None:
                    conn.execute(SCHEMA_DDL.encode())
                    conn.execute(
                        "INSERT INTO format (name, version) VALUES (%s, %s)",
                        (FORMAT_NAME, FORMAT_VERSION),
                    )
        except psycopg.Error as err:
            raise self.error(err, "creating the schema") from err
        # Created here or, meanwhile, by another process: check it either way.
        self._check_schema(conn, create=False)

    def close(self) -> None:
        """Close every pooled connection; closing twice does nothing."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> PostgresDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a pooled connection (autocommit).

        Raises:
            StorageError: if the database is closed or no connection can be had.
        """
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self.address}: the database is closed")
        try:
            cm = pool.connection()
            conn = cm.__enter__()
        except psycopg_pool.PoolTimeout as err:
            raise StorageError(
                f"{self.address}: no database connection within {_POOL_TIMEOUT_S:.0f} s"
            ) from err
        except psycopg_pool.PoolClosed as err:
            raise StorageError(f"{self.address}: the database is closed") from err
        except psycopg.Error as err:
            raise self.error(err, "connecting") from err
        try:
            yield conn
        except BaseException as err:
            cm.__exit__(type(err), err, err.__traceback__)
            raise
        cm.__exit__(None, None, None)

    def read(self, doing: str, run: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """Run ``run(conn)`` on a pooled connection; redo it on another if that one had broken.

        Raises:
            StorageError: if the read fails.
        """
        # Every pooled connection may have broken at once (a server restart);
        # the pool drops each when it comes back, and a read is safe to redo.
        for attempt in range(self._pool_size + 1):
            try:
                with self.connection() as conn:
                    return run(conn)
            except psycopg.OperationalError as err:
                if attempt == self._pool_size or not conn.broken:
                    raise self.error(err, doing) from err
            except psycopg.Error as err:
                raise self.error(err, doing) from err
        raise AssertionError("unreachable")  # pragma: no cover

    # -- logs ------------------------------------------------------------------

    def create_log(self, meta: dict[str, str]) -> int:
        """Create the log ``meta["origin"]`` (one row per table, no DDL); return its log ID.

        Raises:
            StorageError: if the log exists, the database is read-only or the write fails.
        """
        origin, log_key = meta["origin"], meta["log_key"]
        log_id = log_id_of(origin)
        if self.readonly:
            raise StorageError(
                f"{self.address}: the database is open read-only; nothing was written"
            )
        rows = [("format", FORMAT_NAME), ("format_version", str(FORMAT_VERSION))]
        rows += sorted(meta.items())
        with self.connection() as conn:
            try:
                with conn.transaction():
                    made = conn.execute(
                        "INSERT INTO logs (log_id, origin, log_key) VALUES (%s, %s, %s)"
                        " ON CONFLICT (log_id) DO NOTHING RETURNING log_id",
                        (log_id, origin, log_key),
                    ).fetchone()
                    if made is None:
                        raise StorageError(self._exists_message(conn, log_id, origin))
                    with conn.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO log_meta (log_id, key, value) VALUES (%s, %s, %s)",
                            [(log_id, k, v) for k, v in rows],
                        )
            except psycopg.Error as err:
                raise self.error(err, f"creating the log {origin!r}") from err
        return log_id

    def _exists_message(self, conn: psycopg.Connection[Any], log_id: int, origin: str) -> str:
        row = conn.execute("SELECT origin FROM logs WHERE log_id = %s", (log_id,)).fetchone()
        if row is not None and row[0] != origin:
            return (
                f"{self.address}: the log ID of {origin!r} is taken by {row[0]!r};"
                " choose another origin"
            )
        return f"{self.address}: the log {origin!r} already exists"

    def find_log(self, origin: str) -> int:
        """The log ID of the existing log ``origin``.

        Raises:
            StorageError: if there is no such log or the database cannot be read.
        """
        log_id = log_id_of(origin)
        row = self.read(
            "opening a log",
            lambda c: c.execute("SELECT origin FROM logs WHERE log_id = %s", (log_id,)).fetchone(),
        )
        if row is None or row[0] != origin:
            raise StorageError(f"{self.address}: no log {origin!r} in this database")
        return log_id

    def logs(self) -> list[tuple[str, int]]:
        """``(origin, size)`` of every log, by origin.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self.read(
            "listing the logs",
            lambda c: c.execute("SELECT origin, size FROM logs ORDER BY origin").fetchall(),
        )
        return [(str(o), int(s)) for o, s in rows]

    def log_keys(self) -> list[tuple[str, int, str]]:
        """``(origin, size, log public key)`` of every log, by origin.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self.read(
            "listing the logs",
            lambda c: c.execute(
                "SELECT origin, size, log_key FROM logs ORDER BY origin"
            ).fetchall(),
        )
        return [(str(o), int(s), str(k)) for o, s, k in rows]

    @contextlib.contextmanager
    def transaction(self, logs: Sequence[tuple[int, str]]) -> Iterator[dict[int, PgAppendTxn]]:
        """One transaction appending to several logs: a :class:`PgAppendTxn` per log, by log ID.

        ``logs`` holds ``(log_id, address)`` pairs (the address is for messages).

        The logs' rows are locked one statement each, in ascending log ID, so
        two transactions never wait for each other (no deadlock), and no
        statement touches two logs. Everything commits together, durably, when
        the block ends without error; otherwise nothing is written.

        Raises:
            StorageError: if the database is read-only, a log is gone, or the
                transaction or its commit fails (then whether it committed is
                said in the message: a lost connection during COMMIT leaves it
                unknown, and a retry with the same event IDs is refused as a
                duplicate if it did).
        """
        if self.readonly:
            raise StorageError(
                f"{self.address}: the database is open read-only; nothing was written"
            )
        ordered = sorted(dict(logs).items())
        committing = False
        with self.connection() as conn:
            try:
                with conn.pipeline(), conn.transaction():
                    # Every lock is sent at once, one statement per log through
                    # one cursor (executemany: the statement is adapted once,
                    # which halves psycopg's time per lock); the server takes
                    # them in this order.
                    cur = conn.cursor()
                    cur.executemany(_LOCK_SQL, [(i,) for i, _ in ordered], returning=True)
                    txns: dict[int, PgAppendTxn] = {}
                    for n, (log_id, address) in enumerate(ordered):
                        if n:
                            cur.nextset()
                        row = cur.fetchone()
                        if row is None:
                            raise StorageError(f"{address}: the log is gone")
                        leaf = None if row[2] is None else bytes(row[2])
                        head = (int(row[0]), bytes(row[1]), leaf)
                        txns[log_id] = PgAppendTxn(log_id, address, conn, head)
                    yield txns
                    # Each log's writes are one statement; logs whose
                    # statements read alike go through one executemany.
                    alike: dict[str, list[list[object]]] = {}
                    for txn in txns.values():
                        statement = txn.statement()
                        if statement is not None:
                            alike.setdefault(statement[0], []).append(statement[1])
                    for sql, params in alike.items():
                        cur.executemany(sql, params)
                    committing = True
            except pgerr.UniqueViolation as err:
                if err.diag.constraint_name == "event_ids_pkey":
                    raise DuplicateEventError("(one of this batch)") from err
                raise self.error(err, "appending (nothing was written)") from err
            except psycopg.OperationalError as err:
                if committing:
                    raise StorageError(
                        f"{self.address}: the connection failed while committing; the append may"
                        " or may not be in (retrying with the same event IDs is safe:"
                        f" a duplicate is refused): {_one_line(str(err), self._password)}"
                    ) from err
                raise self.error(err, "appending (nothing was written)") from err
            except psycopg.Error as err:
                raise self.error(err, "appending (nothing was written)") from err


def in_runs(runs: Sequence[tuple[int, bytes]], pos: int) -> bytes | None:
    for first, run in runs:
        if first <= pos < first + len(run) // 32:
            off = (pos - first) * 32
            return run[off : off + 32]
    return None


# A column of values of varying length, sent as three parameters: the values
# concatenated (binary), then the offsets and the lengths as array literals.
# _CUT is the piece of row ``o``; _PIECES makes one row per piece.
_CUT = "substring(%b FROM a + 1 FOR n)"
# A commit's records beyond this many go to the server ahead of its end.
_AHEAD_ROWS = 256
_PIECES = "unnest(%s::int[], %s::int[]) WITH ORDINALITY AS t(a, n, o)"


def _int_array(values: Iterable[int]) -> str:
    # An array literal: one string for psycopg to adapt, not one value each.
    return "{" + ",".join(map(str, values)) + "}"


def _pieces(values: Sequence[bytes]) -> tuple[bytes, str, str]:
    """``values`` as :data:`_CUT` and :data:`_PIECES` take them: joined, offsets, lengths."""
    lengths = list(map(len, values))
    offsets = itertools.accumulate(lengths[:-1], initial=0)
    return b"".join(values), _int_array(offsets), _int_array(lengths)


class PgAppendTxn:
    """One log's writes inside a sequencing transaction (:meth:`PostgresDatabase.transaction`).

    The transaction runs in psycopg's pipeline mode, and a log's writes are
    kept until the transaction ends, then sent as one statement (modifying
    common table expressions, all of one log): a commit of several logs costs
    two round trips and two statements a log, the statements of every log
    sent together. The log's row holds the
    Merkle frontier at its size beside the size, and the locking statement
    reads it with the last record's leaf: the chain head and the frontier come
    with the lock.
    """

    __slots__ = (
        "_checkpoints",
        "_end",
        "_event_ids",
        "_frontier",
        "_last_leaf",
        "_leaves",
        "_runs_sent",
        "_sent",
        "_size",
        "_upper",
        "_upper_rows",
        "_upper_sent",
        "_writers",
        "_written",
        "address",
        "conn",
        "log_id",
    )

    def __init__(
        self,
        log_id: int,
        address: str,
        conn: psycopg.Connection[Any],
        head: tuple[int, bytes, bytes | None],
    ) -> None:
        self.log_id = log_id
        self.address = address
        self.conn = conn
        self._size, self._frontier, self._last_leaf = head  # read under the lock
        self._end = self._size  # one past the last record written here
        # What this transaction writes, sent as one statement when it ends
        # (records, runs and upper nodes of a large commit go ahead in
        # statements of their own: see insert_records).
        self._written: list[tuple[int, bytes]] = []  # hash runs
        self._upper: dict[int, bytes] = {}
        self._upper_rows: list[tuple[int, bytes]] = []
        self._leaves: list[bytes] = []  # not sent yet, from record _sent on
        self._event_ids: list[str] = []
        self._sent = self._size  # records before this one were sent ahead
        self._runs_sent = 0  # of _written
        self._upper_sent = 0  # of _upper_rows
        self._checkpoints: list[tuple[int, str]] = []
        self._writers: list[tuple[str, int, int]] = []

    def _exec(self, sql: str, *args: object) -> None:
        # Queued in the pipeline: a failure surfaces at the next sync or the commit.
        self.conn.execute(sql, (self.log_id, *args))

    def _query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, (self.log_id, *args)).fetchall()

    def size(self) -> int:
        """The committed size, read under the lock."""
        return self._size

    def last_leaf(self, size: int) -> bytes | None:
        """The leaf of record ``size - 1``, None when ``size`` is 0.

        Raises:
            StorageError: if it is missing.
        """
        if size == 0:
            return None
        if size == self._size and self._last_leaf is not None:
            return self._last_leaf
        rows = self._query("SELECT leaf FROM records WHERE log_id = %s AND seq = %s", size - 1)
        if not rows:
            raise StorageError(f"record {size - 1} is missing")
        return bytes(rows[0][0])

    def frontier(self, ids: Sequence[NodeId]) -> list[bytes]:
        """The stored hashes of ``ids``: from the log's row when they are its frontier.

        Raises:
            StorageError: if one is not stored.
        """
        if not ids:
            return []
        if list(ids) == subtree_ids(0, self._size) and len(self._frontier) == 32 * len(ids):
            return [self._frontier[k : k + 32] for k in range(0, len(self._frontier), 32)]
        return self._stored([stored_hash_index(level, n) for level, n in ids])

    def _stored(self, positions: Sequence[int]) -> list[bytes]:
        rows = self.conn.execute(
            "SELECT DISTINCT h.first, h.run FROM unnest(%s::bigint[]) AS q(p)"
            " CROSS JOIN LATERAL (SELECT first, run FROM hashes WHERE log_id = %s"
            " AND first <= q.p ORDER BY first DESC LIMIT 1) AS h",
            (list(positions), self.log_id),
        ).fetchall()
        runs = sorted((int(f), bytes(r)) for f, r in rows)
        out = []
        for pos in positions:
            h = in_runs(runs, pos)
            if h is None:
                raise StorageError(f"the Merkle hash at position {pos} is not stored")
            out.append(h)
        return out

    def existing_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` already committed."""
        rows = self._query(
            "SELECT event_id FROM event_ids WHERE log_id = %s AND event_id = ANY(%s)",
            list(event_ids),
        )
        return {str(r[0]) for r in rows}

    def register_writer(self, key_id: int, vkey: str, size: int) -> None:
        """Remember a writer key, first seen at ``size`` (nothing if it is known)."""
        self._writers.append((vkey, key_id, size))

    def insert_records(self, first: int, leaves: Sequence[bytes], event_ids: Sequence[str]) -> None:
        """Add records ``first, first + 1, ...`` with their event IDs.

        Written with the rest of the log's part when the transaction ends; a
        repeated event ID fails it then, as
        :class:`~disclosure_ledger.errors.DuplicateEventError`.

        Raises:
            StorageError: if ``first`` is not where the log ends.
        """
        if first != self._end:
            raise StorageError(f"{self.address}: records must go at {self._end}, not {first}")
        if len(leaves) != len(event_ids):
            raise StorageError(f"{self.address}: {len(leaves)} leaves, {len(event_ids)} event IDs")
        if len(self._leaves) >= _AHEAD_ROWS:
            # A large commit: the records signed so far (and their hashes) go
            # now, in the pipeline, so the server inserts them while the rest
            # are signed; the last part goes with the checkpoint.
            parts: list[str] = []
            args: list[object] = []
            self._row_parts(parts, args)
            self.conn.execute("WITH " + ", ".join(parts) + " SELECT 1", args)
        self._leaves += leaves
        self._event_ids += event_ids
        self._end = first + len(leaves)
        self._last_leaf = leaves[-1] if leaves else self._last_leaf

    def insert_runs(self, runs: Sequence[tuple[int, bytes]]) -> None:
        """Store runs of hashes ``(first position, hashes concatenated)``."""
        self._written += runs

    def insert_upper(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Store ``(position, hash)`` of the nodes at the upper levels."""
        self._upper.update(rows)
        self._upper_rows += rows

    def insert_checkpoint(self, size: int, note: str) -> None:
        """Store the signed checkpoint of ``size`` (each size at most once)."""
        self._checkpoints.append((size, note))

    def indexed_size(self) -> int:
        """How many records the query index covers, read in the transaction."""
        rows = self._query("SELECT MAX(seq) FROM record_index WHERE log_id = %s")
        return 0 if rows[0][0] is None else int(rows[0][0]) + 1

    def insert_index_rows(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Add query index rows (seq first, then the index columns)."""
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        types = ["bigint", "bigint", *["text"] * (len(INDEX_COLUMNS) - 1)]
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        self._exec(
            f"INSERT INTO record_index (log_id, seq, {_QUERY_COLUMNS})"  # noqa: S608 - fixed
            f" SELECT %s, * FROM unnest({arrays})",
            *[list(c) for c in columns],
        )

    def statement(self) -> tuple[str, list[object]] | None:
        """This log's writes as one statement and its parameters (None if there are none).

        The statement moves the log's size and frontier with its writes; the
        transaction sends it when the committer is done with every log.

        Each column goes as one parameter rather than as an array of one
        value per row: psycopg adapts a list element by element in Python,
        which was most of the committer's time when a commit wrote one record
        to each of many logs. Values of varying length go concatenated, in
        binary (``%b``), with an array literal of their offsets and lengths,
        and are cut apart on the server.
        """
        parts: list[str] = []
        args: list[object] = []

        def part(sql: str, *values: object) -> None:
            parts.append(f"w{len(parts)} AS ({sql})")
            args.extend(values)

        if self._writers:
            part(
                "INSERT INTO writers (log_id, vkey, key_id, added_at_size)"
                " SELECT %s, v, k, s FROM unnest(%s::text[], %s::bigint[], %s::bigint[])"
                " WITH ORDINALITY AS t(v, k, s, o) ORDER BY o"
                " ON CONFLICT (log_id, vkey) DO NOTHING",
                self.log_id,
                *(list(c) for c in zip(*self._writers, strict=True)),
            )
        self._row_parts(parts, args)
        if self._checkpoints:
            sizes = _int_array(c for c, _ in self._checkpoints)
            blob, offsets, lengths = _pieces([n.encode() for _, n in self._checkpoints])
            part(
                "INSERT INTO checkpoints (log_id, size, note)"  # noqa: S608 - fixed text
                f" SELECT %s, (%s::bigint[])[o::int], convert_from({_CUT}, 'UTF8') FROM {_PIECES}",
                *(self.log_id, sizes, blob, offsets, lengths),
            )
        if self._end != self._size:
            final = "UPDATE logs SET size = %s, frontier = %b WHERE log_id = %s"
            args += [self._end, self._new_frontier(), self.log_id]
        elif parts:
            final = "SELECT 1"
        else:
            return None
        with_ = ("WITH " + ", ".join(parts) + " ") if parts else ""
        return with_ + final, args

    def _row_parts(self, parts: list[str], args: list[object]) -> None:
        # The records, runs and upper nodes not sent yet, as parts of a WITH.
        def part(sql: str, *values: object) -> None:
            parts.append(f"w{len(parts)} AS ({sql})")
            args.extend(values)

        written = self._written[self._runs_sent :]
        upper = self._upper_rows[self._upper_sent :]
        if self._leaves:
            blob, offsets, lengths = _pieces([e.encode() for e in self._event_ids])
            part(
                "INSERT INTO event_ids (log_id, event_id, seq)"  # noqa: S608 - fixed text
                f" SELECT %s, convert_from({_CUT}, 'UTF8'), %s::bigint + o - 1 FROM {_PIECES}",
                *(self.log_id, blob, self._sent, offsets, lengths),
            )
            blob, offsets, lengths = _pieces(self._leaves)
            part(
                "INSERT INTO records (log_id, seq, leaf)"  # noqa: S608 - fixed text
                f" SELECT %s, %s::bigint + o - 1, {_CUT} FROM {_PIECES}",
                *(self.log_id, self._sent, blob, offsets, lengths),
            )
        if written:
            blob, offsets, lengths = _pieces([h for _, h in written])
            part(
                "INSERT INTO hashes (log_id, first, run)"  # noqa: S608 - fixed text
                f" SELECT %s, (%s::bigint[])[o::int], {_CUT} FROM {_PIECES}",
                *(self.log_id, _int_array(p for p, _ in written), blob, offsets, lengths),
            )
        if upper:
            part(
                "INSERT INTO upper_hashes (log_id, id, hash)"
                " SELECT %s, i, substring(%b FROM o::int * 32 - 31 FOR 32)"
                " FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(i, o)",
                self.log_id,
                b"".join(h for _, h in upper),
                _int_array(p for p, _ in upper),
            )
        self._sent += len(self._leaves)
        self._leaves, self._event_ids = [], []
        self._runs_sent, self._upper_sent = len(self._written), len(self._upper_rows)

    def _new_frontier(self) -> bytes:
        # The new frontier starts with the old one's nodes that are still
        # maximal; each node after them was made here (an upper node, or in a run).
        old_ids = subtree_ids(0, self._size)
        old = self._frontier
        if len(old) != 32 * len(old_ids):  # not cached in the row: read from the runs
            old = b"".join(self.frontier(old_ids))
        new: list[bytes] = []
        for k, node in enumerate(subtree_ids(0, self._end)):
            if k < len(old_ids) and old_ids[k] == node:
                new.append(old[32 * k : 32 * k + 32])
                continue
            pos = stored_hash_index(*node)
            h = self._upper.get(pos) or in_runs(self._written, pos)
            if h is None:
                return b""  # not all written here: the next append reads them from the runs
            new.append(h)
        return b"".join(new)
