"""The operator's view of a ledger: open, append, read, prove, check.

This module owns the :class:`Ledger` object and its user-facing methods. The
work behind them lives in modules of their own: the committer (group commit,
sequencing, signing, one fsync per commit) in :mod:`.committer`, the query
index in :mod:`.index`, the integrity check in :mod:`.fsck`. Whatever must
happen after a commit (asking witnesses to cosign, see :mod:`.cosigner`)
subscribes to commits with :meth:`Ledger.subscribe` rather than living here.
"""

from __future__ import annotations

import logging
import os
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    add_signature_lines,
    open_checkpoint,
    sign_checkpoint,
)
from disclosure_ledger._core.merkle import EMPTY_ROOT
from disclosure_ledger._core.notes import KEY_TYPE_ED25519, Signer, Verifier, parse_verifier
from disclosure_ledger._core.records import Event
from disclosure_ledger._log import index
from disclosure_ledger._log.committer import (
    AppendReceipt,
    Committer,
    GroupCommitter,
    Item,
    LogWriter,
    SharedCommitter,
)
from disclosure_ledger._log.fsck import CheckReport, check_ledger
from disclosure_ledger._log.index import Record
from disclosure_ledger._log.reads import LedgerReads
from disclosure_ledger._store.base import Store
from disclosure_ledger._store.pg_schema import is_postgres_url, redact_url
from disclosure_ledger._store.sqlite import SQLiteStore
from disclosure_ledger.errors import (
    DuplicateEventError,
    LedgerError,
    MalformedError,
    StorageError,
    UntrustedKeyError,
    ValidationError,
)

# AppendReceipt, CheckReport and Record live with the code that makes them;
# they are named here too because `from .ledger import ...` predates the split.
__all__ = ["AppendReceipt", "CheckReport", "Ledger", "Record", "postgres_module"]

_log = logging.getLogger(__name__)

CommitCallback = Callable[[int], None]
"""A commit subscriber: called with the ledger's new size after each durable commit."""


def _is_url(path: str | os.PathLike[str]) -> bool:
    return isinstance(path, str) and is_postgres_url(path)


def postgres_module() -> types.ModuleType:
    # Imported on first use: the SQLite default needs no PostgreSQL driver.
    try:
        from disclosure_ledger._store import postgres  # noqa: PLC0415 - optional extra
    except ImportError as err:
        raise StorageError(
            "a postgresql:// ledger needs the PostgreSQL extra:"
            ' pip install "disclosure_ledger[postgres]"'
        ) from err
    return postgres


def _open_store(path: str | os.PathLike[str], origin: str | None, *, readonly: bool) -> Store:
    if not _is_url(path):
        return SQLiteStore.open(path, readonly=readonly)
    if origin is None:
        raise StorageError(
            f"{redact_url(str(path))}: a database holds many logs;"
            " opening one needs the log's origin"
        )
    store: Store = postgres_module().PostgresStore.open(str(path), origin, readonly=readonly)
    return store


def _sign_empty(store: Store, origin: str, log_key: Signer | None) -> None:
    # Size 0 gets a checkpoint too, so the empty ledger has a signed head.
    if log_key is None:
        store.close()
        raise LedgerError("creating a ledger needs its log key")
    with store.append_txn() as txn:
        txn.insert_checkpoint(0, sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), log_key))


def _check_writer(writer: Signer) -> Signer:
    if writer.key_type != KEY_TYPE_ED25519:
        raise MalformedError(f"writer key {writer.name} is not an Ed25519 note key")
    return writer


def _coerce_event(event: Event | Mapping[str, Any]) -> tuple[Event, bytes]:
    if isinstance(event, Event | Mapping):
        return records.event_and_encoding(event)
    raise MalformedError(f"expected an Event or its JSON form, got {type(event).__name__}")


def _create_store(path: str | os.PathLike[str], log_key: Signer, origin: str | None) -> Store:
    """A new store for a ledger whose origin is the log key's name: a file, or a database's log.

    Raises:
        MalformedError: if the key is not an Ed25519 key, or ``origin`` is not its name.
        StorageError: if the store cannot be created.
    """
    if log_key.key_type != KEY_TYPE_ED25519:
        raise MalformedError("the log key must be an Ed25519 note key (type 0x01)")
    if origin is not None and origin != log_key.name:
        raise MalformedError(
            f"the origin must be the log key's name {log_key.name!r}, not {origin!r}"
        )
    meta = {"origin": log_key.name, "log_key": log_key.verifier.vkey}
    if _is_url(path):
        store: Store = postgres_module().PostgresStore.create(str(path), meta)
        return store
    return SQLiteStore.create(path, meta)


class Ledger(LedgerReads):
    """A disclosure ledger: one SQLite file, or one log of a PostgreSQL database.

    Open it with :meth:`create` or :meth:`open` (a path, or a ``postgresql://``
    URL and the log's ``origin``; see also :class:`~.database.LedgerDatabase`);
    use it as a context manager or call :meth:`close`. Appending needs the log
    key (it signs checkpoints); records are signed by the first writer key, or
    by the log key. Reading, proving and checking need no private key.
    """

    def __init__(
        self,
        store: Store,
        *,
        log_key: Signer | None,
        writers: Sequence[Signer] = (),
        signing_threads: int | None = None,
        group: Callable[[], GroupCommitter] | None = None,
    ) -> None:
        meta = store.meta()
        self._store = store
        self.origin: str = meta["origin"]
        self.log_verifier: Verifier = parse_verifier(meta["log_key"])
        if log_key is not None and log_key.verifier != self.log_verifier:
            store.close()
            raise StorageError(
                f"{store.path}: this ledger's log key is {self.log_verifier.name}+"
                f"{self.log_verifier.key_id:08x}, not the key given"
            )
        try:
            for w in writers:
                _check_writer(w)
        except MalformedError:
            store.close()
            raise
        self._log_key = log_key
        self._writers = list(writers)
        self._threads = signing_threads or max(1, min(4, os.cpu_count() or 1))
        self._committer: Committer | SharedCommitter | None = None
        self._group = group  # a committer shared with other logs of one database
        self._start_lock = threading.Lock()
        self._closed = False
        # Commit subscribers: (on_commit, on_close), called outside the write lock.
        self._subscribers: list[tuple[CommitCallback, Callable[[], None] | None]] = []

    # -- opening and closing ---------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        log_key: Signer,
        writers: Sequence[Signer] = (),
        origin: str | None = None,
        signing_threads: int | None = None,
    ) -> Ledger:
        """Create a new ledger whose origin is the log key's name.

        Raises:
            MalformedError: if ``origin`` is given and differs from the log key's name.
            StorageError: if the file exists or cannot be created.
        """
        store = _create_store(path, log_key, origin)
        return cls.on_store(
            store, log_key=log_key, writers=writers, signing_threads=signing_threads, create=True
        )

    @classmethod
    def on_store(
        cls,
        store: Store,
        *,
        log_key: Signer | None,
        writers: Sequence[Signer] = (),
        signing_threads: int | None = None,
        create: bool = False,
        group: Callable[[], GroupCommitter] | None = None,
    ) -> Ledger:
        """A ledger over ``store``, new with ``create``; ``group`` is a shared committer's.

        Raises:
            StorageError: if the log key is not the store's, or the write fails.
        """
        ledger = cls(
            store, log_key=log_key, writers=writers, signing_threads=signing_threads, group=group
        )
        if create:
            _sign_empty(store, ledger.origin, log_key)
        return ledger

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        log_key: Signer | None = None,
        writers: Sequence[Signer] = (),
        origin: str | None = None,
        readonly: bool = False,
        signing_threads: int | None = None,
    ) -> Ledger:
        """Open an existing ledger: a file, or the log ``origin`` of a ``postgresql://`` URL.

        Raises:
            StorageError: if the file is not a ledger, cannot be opened, or its
                origin or log key is not the one given; for a URL, if ``origin``
                is not given or names no log of that database.
        """
        store = _open_store(path, origin, readonly=readonly)
        meta = store.meta()
        if origin is not None and meta.get("origin") != origin:
            store.close()
            raise StorageError(
                f"{path}: this ledger's origin is {meta.get('origin')!r}, not {origin!r}"
            )
        return cls(store, log_key=log_key, writers=writers, signing_threads=signing_threads)

    def close(self) -> None:
        """Finish pending appends, stop the committer and close the file.

        Raises:
            Nothing: a second call does nothing, and an append that fails while
                finishing reports its error through its own future.
        """
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            committer = self._committer
            subscribers = list(self._subscribers)
        if committer is not None:
            committer.close()  # a shared one: waits for this log's appends only
        # After the last commit, before the file closes: a subscriber may
        # still read the ledger to finish what the last commits started.
        for _, on_close in subscribers:
            if on_close is not None:
                try:
                    on_close()
                except Exception:  # noqa: BLE001 - a subscriber must not stop the close
                    _log.exception("a commit subscriber failed while the ledger closed")
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- commit subscribers ----------------------------------------------------------

    def subscribe(
        self, on_commit: CommitCallback, *, on_close: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Call ``on_commit(size)`` after each durable commit; return a function that unsubscribes.

        ``on_commit`` runs on the committer thread once the commit's appends
        are acknowledged, outside the write lock, with the ledger's new size.
        It must be quick (hand work to a thread of its own, as
        :class:`~.cosigner.Cosigner` does): the next commit waits for it. An
        exception it raises is logged and never reaches an append.
        ``on_close`` runs once when the ledger closes, after the last commit
        and before the file closes, so a subscriber can finish reading it.

        Raises:
            LedgerError: if the ledger is closed.
        """
        entry = (on_commit, on_close)
        with self._start_lock:
            if self._closed:
                raise LedgerError("the ledger is closed")
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._start_lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def _committed(self, size: int) -> None:
        # The committer's on_commit: fan out to the subscribers, never raising.
        with self._start_lock:
            subscribers = list(self._subscribers)
        for on_commit, _ in subscribers:
            try:
                on_commit(size)
            except Exception:  # noqa: BLE001 - a subscriber must never fail an append
                _log.exception("a commit subscriber failed at size %d", size)

    # -- appending ---------------------------------------------------------------------

    def _writer(self, writer: Signer | None) -> Signer:
        if writer is not None:
            return _check_writer(writer)
        if self._writers:
            return self._writers[0]
        if self._log_key is None:
            raise LedgerError("this ledger was opened without keys; it cannot append")
        return self._log_key

    def _ensure_committer(self) -> Committer | SharedCommitter:
        with self._start_lock:
            if self._closed:
                raise LedgerError("the ledger is closed")
            if self._log_key is None:
                raise LedgerError("appending needs the ledger's log key")
            if self._committer is None and self._group is not None:
                key = getattr(self._store, "log_id", 0)  # locks are taken in this order
                log = LogWriter(self._store, origin=self.origin, log_key=self._log_key, key=key)
                self._committer = SharedCommitter(self._group(), log, self._committed)
            if self._committer is None:
                self._committer = Committer(
                    self._store,
                    origin=self.origin,
                    log_key=self._log_key,
                    threads=self._threads,
                    on_commit=self._committed,
                )
            return self._committer

    def append(
        self, event: Event | Mapping[str, Any], *, writer: Signer | None = None
    ) -> AppendReceipt:
        """Append one event and return once it is durable.

        Raises:
            ValidationError: if the event is invalid (nothing is appended).
            DuplicateEventError: if its ``event_id`` is already in the ledger.
            StorageError: if it cannot be written (nothing is appended).
        """
        # Validated here so a single event's error names its field without a position.
        signer = self._writer(writer)
        ev, data = _coerce_event(event)
        return self._ensure_committer().submit([(ev.event_id, data)], signer).result()[0]

    def submit(
        self, events: Iterable[Event | Mapping[str, Any]], *, writer: Signer | None = None
    ) -> Future[list[AppendReceipt]]:
        """Queue events for appending and return a future of their receipts.

        The events are appended atomically (all or none), in order. The future
        resolves once they are durable.

        Raises:
            ValidationError: if an event is invalid (nothing is queued); the
                field path starts with the event's position, as ``$[3].actor.kind``.
        """
        signer = self._writer(writer)
        encoded: list[Item] = []
        seen: set[str] = set()
        for i, item in enumerate(events):
            try:
                ev, data = _coerce_event(item)
            except ValidationError as err:
                raise err.under(f"[{i}]") from err
            if ev.event_id in seen:
                raise DuplicateEventError(ev.event_id)
            seen.add(ev.event_id)
            encoded.append((ev.event_id, data))
        if not encoded:
            future: Future[list[AppendReceipt]] = Future()
            future.set_result([])
            return future
        return self._ensure_committer().submit(encoded, signer)

    def append_many(
        self, events: Iterable[Event | Mapping[str, Any]], *, writer: Signer | None = None
    ) -> list[AppendReceipt]:
        """Append events atomically (all or none) and return once they are durable.

        Raises:
            ValidationError: if an event is invalid (nothing is appended).
            DuplicateEventError: if an ``event_id`` repeats or is already present.
            StorageError: if they cannot be written (nothing is appended).
        """
        return self.submit(events, writer=writer).result()

    # -- reading -------------------------------------------------------------------------

    def update_index(self) -> int:
        """Index the records committed when called; return how many it added.

        The index (camera, owner, action, actor kind, recipient, legal basis,
        time) is derived from the signed records and kept off the append path,
        so appends do not pay for it. :meth:`query` calls this first; a writer
        can call it at a quiet moment instead. Records are decoded outside the
        write lock and indexed in short transactions, so appends carry on.

        Raises:
            LedgerError: if the ledger was opened read-only.
            MalformedError: if a stored record does not decode (a damaged file).
            StorageError: if the file cannot be written.
        """
        return index.update_index(self._store)

    # -- proofs ----------------------------------------------------------------------------

    # -- integrity -----------------------------------------------------------------------

    def check(
        self,
        *,
        log_key: Verifier | None = None,
        writer_keys: Sequence[Verifier] | None = None,
        trusted_checkpoint: str | bytes | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> CheckReport:
        """Rebuild everything from the records and compare with what is stored.

        Checks the chain, every record signature, every event's canonical
        encoding, the query columns stored beside each record, every stored
        Merkle hash, every stored checkpoint's signature and root, that the
        newest checkpoint covers every record, and every stored cosignature
        against the witness key stored with it. Streams records and
        checkpoints, so memory stays bounded.

        Trust comes from the file unless the caller pins it: with ``log_key``
        the ledger's log key and origin must be that key and its name, and
        every checkpoint must verify under it; with ``writer_keys`` every
        record must be signed by one of them (without, by a writer key the
        file registers, or the log key). A ledger re-signed under other keys
        passes only the unpinned check.

        Nothing inside the file shows that it was cut back to an earlier
        signed checkpoint. ``trusted_checkpoint`` (a signed checkpoint note
        held elsewhere: the owner's state, a witness, a receipt) catches it:
        the ledger must be at least as large, and its tree at that size must
        have that root. ``progress(done, total)`` is called as records are checked.

        Raises:
            ChainBreakError: if a sequence number or chain link is wrong.
            BadSignatureError: if a record, checkpoint or stored cosignature
                signature fails (the message names the checkpoint's size and
                the witness for a cosignature).
            UntrustedKeyError: if a record or checkpoint is not signed by a
                trusted key, or the ledger's log key or origin is not the
                pinned one.
            RootMismatchError: if a stored hash or checkpoint root is wrong.
            RollbackError: if the ledger is smaller than the trusted checkpoint.
            InconsistentCheckpointError: if the ledger's tree at the trusted
                checkpoint's size has another root (a rewritten history).
            VerificationError: if a record's query columns differ from the
                record, or records are beyond the newest checkpoint.
            MalformedError: if a record or the trusted checkpoint does not
                decode, or a pinned key is not an Ed25519 note key.
            StorageError: if the file cannot be read.
        """
        return check_ledger(
            self,
            log_key=log_key,
            writer_keys=writer_keys,
            trusted_checkpoint=trusted_checkpoint,
            progress=progress,
        )

    # -- cosignatures (stored by witnessing, see cosigner.py) --------------------

    def record_witness_event(self, size: int, witness: str, outcome: str, detail: str) -> None:
        """Record what a witness answered for the checkpoint of ``size``.

        Raises:
            StorageError: if the ledger cannot be written.
        """
        self._store.add_witness_event(size, witness, outcome, detail)

    def add_cosignatures(
        self, size: int, lines: Sequence[str], witnesses: Iterable[Verifier]
    ) -> int:
        """Verify cosignature lines for the checkpoint of ``size`` and store them.

        Only lines by ``witnesses`` that verify are stored. Returns how many
        were new.

        Raises:
            StorageError: if there is no checkpoint of that size.
            BadSignatureError: if a line by a known witness does not verify.
            UntrustedKeyError: if no line is by a known witness.
        """
        note = self._store.checkpoint(size)
        if note is None:
            raise StorageError(f"no checkpoint of size {size}")
        wlist = list(witnesses)
        merged = add_signature_lines(note, lines)
        signed = open_checkpoint(merged, self.log_verifier, wlist)
        if not signed.cosignatures:
            raise UntrustedKeyError("no cosignature by a known witness")
        return self._store.add_cosignatures(
            size, [(c.witness.vkey, c.line) for c in signed.cosignatures]
        )
