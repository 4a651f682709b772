"""Many ledgers in one PostgreSQL database, with one committer for all of them.

This module owns :class:`LedgerDatabase`: one connection pool to a PostgreSQL
database of many logs (:class:`~disclosure_ledger._store.pg_database.PostgresDatabase`),
and one :class:`~disclosure_ledger._log.committer.GroupCommitter` through which
every ledger opened here appends. So one process's concurrent appends, to one
log or to many, share transactions: each commit locks the rows of the logs it
touches in ascending log ID (no deadlock), writes their records, hashes and
new signed checkpoints, and commits them together. See docs/postgres.md.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from disclosure_ledger._core.notes import KEY_TYPE_ED25519, Signer
from disclosure_ledger._log.committer import GroupCommitter, LogWriter
from disclosure_ledger._log.ledger import Ledger, postgres_module
from disclosure_ledger._store.base import SequencingTxn
from disclosure_ledger.errors import LedgerError, MalformedError

if TYPE_CHECKING:  # imported on first use: the SQLite default needs no PostgreSQL driver
    from disclosure_ledger._store.pg_database import PostgresDatabase

__all__ = ["LedgerDatabase"]


class LedgerDatabase:
    """A PostgreSQL database of many logs: open its ledgers, list them, append to many at once.

    Open it with :meth:`connect`; use it as a context manager or call
    :meth:`close`, which closes the ledgers opened through it too.
    """

    def __init__(self, db: PostgresDatabase, *, signing_threads: int | None = None) -> None:
        self._db = db
        self._threads = signing_threads or max(1, min(4, os.cpu_count() or 1))
        self._group: GroupCommitter | None = None
        self._lock = threading.Lock()
        self._ledgers: list[Ledger] = []
        self._closed = False

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        readonly: bool = False,
        create_schema: bool = False,
        pool_size: int = 8,
        signing_threads: int | None = None,
    ) -> LedgerDatabase:
        """Connect to the database at ``url`` (a ``postgresql://`` URL).

        Raises:
            StorageError: if it cannot be reached, or its schema is missing
                (unless ``create_schema``) or of another format version. The
                message never shows the URL's password.
        """
        db = postgres_module().PostgresDatabase.connect(
            url, readonly=readonly, create_schema=create_schema, pool_size=pool_size
        )
        return cls(db, signing_threads=signing_threads)

    @property
    def address(self) -> str:
        """The database's URL without its password."""
        return self._db.address

    @property
    def commits(self) -> int:
        """How many transactions the shared committer has committed (each may hold many logs)."""
        with self._lock:
            return 0 if self._group is None else self._group.commits

    def __enter__(self) -> LedgerDatabase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every ledger opened here (finishing their appends), then the connections.

        Raises:
            Nothing: closing twice does nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ledgers, group = list(self._ledgers), self._group
        for ledger in ledgers:
            ledger.close()
        if group is not None:
            group.close()
        self._db.close()

    @contextlib.contextmanager
    def _begin(self, logs: Sequence[LogWriter]) -> Iterator[Sequence[SequencingTxn]]:
        # One transaction over the commit's logs, in the order the committer gave.
        with self._db.transaction([(log.key, log.origin) for log in logs]) as txns:
            yield [txns[log.key] for log in logs]

    def _group_committer(self) -> GroupCommitter:
        with self._lock:
            if self._closed:
                raise LedgerError("the database is closed")
            if self._group is None:
                self._group = GroupCommitter(threads=self._threads, begin=self._begin)
            return self._group

    def _track(self, ledger: Ledger) -> Ledger:
        with self._lock:
            self._ledgers.append(ledger)
        return ledger

    def create(self, *, log_key: Signer, writers: Sequence[Signer] = ()) -> Ledger:
        """Create the log whose origin is the log key's name, and open it for appending.

        Raises:
            MalformedError: if the log key is not an Ed25519 note key.
            StorageError: if the log exists or the database cannot be written.
        """
        if log_key.key_type != KEY_TYPE_ED25519:
            raise MalformedError("the log key must be an Ed25519 note key (type 0x01)")
        meta = {"origin": log_key.name, "log_key": log_key.verifier.vkey}
        store = postgres_module().PostgresStore.create_in(self._db, meta)
        return self._track(
            Ledger.on_store(
                store, log_key=log_key, writers=writers, create=True, group=self._group_committer
            )
        )

    def open(
        self,
        origin: str,
        *,
        log_key: Signer | None = None,
        writers: Sequence[Signer] = (),
    ) -> Ledger:
        """Open the log ``origin`` (to append, give its log key).

        Raises:
            StorageError: if there is no such log, or the log key is not its key.
        """
        store = postgres_module().PostgresStore.open_in(self._db, origin)
        return self._track(
            Ledger.on_store(store, log_key=log_key, writers=writers, group=self._group_committer)
        )

    def log_keys(self) -> list[tuple[str, int, str]]:
        """``(origin, size, log public key)`` of every log, by origin (owners verify with it).

        Raises:
            StorageError: if the database cannot be read.
        """
        return self._db.log_keys()

    def logs(self) -> list[tuple[str, int]]:
        """``(origin, size)`` of every log in the database, by origin.

        Raises:
            StorageError: if the database cannot be read.
        """
        return self._db.logs()
