"""The PostgreSQL store: one log of a database that holds many, appended to by many machines.

This module owns :class:`PostgresStore`, which implements the storage contract
of :mod:`disclosure_ledger._store.base` for one log of a
:class:`~disclosure_ledger._store.pg_database.PostgresDatabase`: the reads of
:class:`~disclosure_ledger._store.pg_reader.PgLogReader`, the query index, and
the writes, each in a sequencing transaction that holds the log's row
``FOR UPDATE`` (see docs/postgres.md and docs/decisions/0007-store-contract.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from disclosure_ledger._store.pg_database import PgAppendTxn, PostgresDatabase
from disclosure_ledger._store.pg_reader import PgLogReader
from disclosure_ledger._store.pg_schema import SCHEMA, is_postgres_url
from disclosure_ledger._store.sqlite_schema import INDEX_COLUMNS
from disclosure_ledger.errors import StorageError

if TYPE_CHECKING:
    from disclosure_ledger._store.base import SequencingTxn, Store

__all__ = ["PgAppendTxn", "PostgresDatabase", "PostgresStore", "is_postgres_url"]

_QUERY_COLUMNS = ", ".join(INDEX_COLUMNS)


class PostgresStore(PgLogReader):
    """One log of a :class:`PostgresDatabase`: the storage contract for that log.

    A store made by :meth:`create` or :meth:`open` owns its database and
    closes it with itself; one made by :meth:`create_in` or :meth:`open_in`
    shares a database the caller opened (and closes), with every other log
    opened through it.
    """

    def __init__(
        self, db: PostgresDatabase, log_id: int, origin: str, *, owns_db: bool = False
    ) -> None:
        super().__init__(db, log_id, origin)
        self._owns_db = owns_db
        self._lock = threading.Lock()  # one append transaction at a time per handle

    @classmethod
    def create_in(cls, db: PostgresDatabase, meta: dict[str, str]) -> PostgresStore:
        """Create the log ``meta["origin"]`` in ``db`` and open it.

        Raises:
            StorageError: if the log exists, ``db`` is read-only or the write fails.
        """
        return cls(db, db.create_log(meta), meta["origin"])

    @classmethod
    def open_in(cls, db: PostgresDatabase, origin: str) -> PostgresStore:
        """Open the existing log ``origin`` of ``db``.

        Raises:
            StorageError: if there is no such log or ``db`` cannot be read.
        """
        return cls(db, db.find_log(origin), origin)

    @classmethod
    def create(cls, url: str, meta: dict[str, str], *, pool_size: int = 8) -> PostgresStore:
        """Create the schema if the database has none, then the log ``meta["origin"]``.

        Raises:
            StorageError: if the database cannot be reached or the log exists.
        """
        db = PostgresDatabase.connect(url, create_schema=True, pool_size=pool_size)
        return _owning(db, lambda: cls.create_in(db, meta))

    @classmethod
    def open(
        cls, url: str, origin: str, *, readonly: bool = False, pool_size: int = 8
    ) -> PostgresStore:
        """Open the log ``origin`` in the database at ``url``.

        Raises:
            StorageError: if the database cannot be reached or has no such log.
        """
        db = PostgresDatabase.connect(url, readonly=readonly, pool_size=pool_size)
        return _owning(db, lambda: cls.open_in(db, origin))

    def close(self) -> None:
        """Stop using the log (and close the database if this store opened it)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_db:
            self.db.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.address!r})"

    # -- the query index --------------------------------------------------------------

    def indexed_size(self) -> int:
        """How many records, from the first, the query index covers.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows("SELECT MAX(seq) FROM record_index WHERE log_id = %s")
        return 0 if rows[0][0] is None else int(rows[0][0]) + 1

    def iter_index_rows(
        self, start: int, end: int, chunk: int = 4096
    ) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """``(seq, columns)`` of the index for records ``[start, end)``, in order.

        Raises:
            StorageError: if the database cannot be read.
        """
        pos = start
        while pos < end:
            stop = min(end, pos + chunk)
            rows = self._rows(
                f"SELECT seq, {_QUERY_COLUMNS} FROM record_index"  # noqa: S608 - fixed columns
                " WHERE log_id = %s AND seq >= %s AND seq < %s ORDER BY seq",
                pos,
                stop,
            )
            for seq, *columns in rows:
                yield int(seq), tuple(columns)
            pos = stop

    def query(
        self, where: str, args: Sequence[object], limit: int | None, *, below: int
    ) -> list[tuple[int, bytes]]:
        """``(seq, leaf)`` of the indexed records below ``below`` that match, ascending.

        ``where`` is built by the ledger from fixed column names with ``?``
        placeholders (the contract's form), turned into psycopg's ``%s`` here;
        values are always bound.

        Raises:
            StorageError: if the database cannot be read or ``where`` is not valid.
        """
        sql = (
            "SELECT i.seq, r.leaf FROM record_index AS i JOIN records AS r"
            " ON r.log_id = i.log_id AND r.seq = i.seq WHERE i.log_id = %s AND i.seq < %s"
        )
        if where:
            sql += " AND (" + where.replace("%", "%%").replace("?", "%s") + ")"
        sql += " ORDER BY i.seq"
        bound: list[object] = [below, *args]
        if limit is not None:
            sql += " LIMIT %s"
            bound.append(limit)
        return [(int(s), bytes(leaf)) for s, leaf in self._rows(sql, *bound)]

    def check_query_schema(self) -> None:
        """Check that what queries read are the library's plain tables, unfiltered.

        Queries read ``record_index`` joined with ``records`` directly (no view
        to redefine). A table swapped for a view, or row-level security that
        could hide rows from the library's role, is reported.

        Raises:
            StorageError: naming what is missing or altered.
        """
        if self._closed:
            raise StorageError(f"{self.address}: the log is closed")
        rows = self.db.read(
            "reading the schema",
            lambda c: c.execute(
                "SELECT c.relname, c.relkind::text, c.relrowsecurity FROM pg_class AS c"
                " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = ANY(%s)",
                (SCHEMA, ["record_index", "records"]),
            ).fetchall(),
        )
        found = {str(name): (str(kind), bool(rls)) for name, kind, rls in rows}
        for name in ("record_index", "records"):
            if name not in found:
                raise StorageError(f"{self.address}: the table {name} that queries read is missing")
            kind, rls = found[name]
            if kind not in ("r", "p"):
                raise StorageError(
                    f"{self.address}: {name}, which queries read, is not a table (relkind {kind})"
                )
            if rls:
                raise StorageError(
                    f"{self.address}: {name}, which queries read, has row-level security;"
                    " queries could leave records out"
                )

    # -- writing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def append_txn(self) -> Iterator[PgAppendTxn]:
        """Hold the log's row ``FOR UPDATE`` for one atomic, durable append.

        Raises:
            StorageError: if the store is read-only or closed, or the transaction fails.
        """
        if self.readonly:
            raise StorageError(f"{self.address}: the log is open read-only; nothing was written")
        if self._closed:
            raise StorageError(f"{self.address}: the log is closed")
        with self._lock, self.db.transaction([(self.log_id, self.address)]) as txns:
            yield txns[self.log_id]

    def add_cosignatures(self, size: int, lines: Sequence[tuple[str, str]]) -> int:
        """Store ``(witness, line)`` cosignatures for ``size``; count the new ones.

        Raises:
            StorageError: if there is no checkpoint of ``size`` or the write fails.
        """
        with self.append_txn() as txn:
            if (
                txn.conn.execute(
                    "SELECT 1 FROM checkpoints WHERE log_id = %s AND size = %s", (self.log_id, size)
                ).fetchone()
                is None
            ):
                raise StorageError(f"no checkpoint of size {size}")
            if not lines:
                return 0
            added = txn.conn.execute(
                "INSERT INTO cosignatures (log_id, size, witness, line)"
                " SELECT %s, %s, w, l FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY"
                " AS t(w, l, k) ORDER BY k ON CONFLICT (log_id, size, line) DO NOTHING"
                " RETURNING 1",
                (self.log_id, size, [w for w, _ in lines], [line for _, line in lines]),
            ).fetchall()
            return len(added)

    def add_witness_event(self, size: int, witness: str, outcome: str, detail: str) -> None:
        """Record what a witness answered for the checkpoint of ``size``.

        Raises:
            StorageError: if the write fails.
        """
        with self.append_txn() as txn:
            txn.conn.execute(
                "INSERT INTO witness_events (log_id, size, witness, outcome, detail)"
                " VALUES (%s, %s, %s, %s, %s)",
                (self.log_id, size, witness, outcome, detail),
            )


if TYPE_CHECKING:

    def _conforms(store: PostgresStore, txn: PgAppendTxn) -> tuple[Store, SequencingTxn]:
        # mypy proves here that the PostgreSQL store meets the contract.
        return store, txn


def _owning(db: PostgresDatabase, make: Callable[[], PostgresStore]) -> PostgresStore:
    """The store ``make`` returns, owning ``db`` (closed with it); ``db`` is closed if it fails."""
    try:
        store = make()
    except BaseException:
        db.close()
        raise
    store._owns_db = True
    return store
