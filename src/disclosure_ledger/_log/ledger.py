"""The write path and the operator's view of a ledger.

This module owns appending: validate, sequence, sign, store, checkpoint,
acknowledge. Appends from every thread of a process go through one committer
thread, which takes whatever is waiting (group commit), sequences it under the
file's write lock, signs the records on a thread pool (the ``cryptography``
package releases the GIL while signing), writes records, Merkle hashes and a
new signed checkpoint in one transaction and makes it durable with one fsync.
Only then are the callers' futures resolved: an acknowledged record is on disk.

Several processes may append to one file: each commit re-reads the committed
size inside the write lock and, if another process moved it, reloads the chain
head and the Merkle frontier before sequencing.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    Receipt,
    SignedCheckpoint,
    WitnessRequest,
    add_signature_lines,
    open_checkpoint,
    sign_checkpoint,
)
from disclosure_ledger._core.merkle import (
    EMPTY_ROOT,
    CompactRange,
    leaf_hash,
    prove_consistency,
    prove_inclusion,
    subtree_ids,
)
from disclosure_ledger._core.notes import (
    KEY_TYPE_COSIGNATURE,
    KEY_TYPE_ED25519,
    Signer,
    Verifier,
    parse_note,
    parse_signature_line,
    parse_verifier,
)
from disclosure_ledger._core.records import Event
from disclosure_ledger._log.export import ExportSummary, export_ledger
from disclosure_ledger._store.base import SequencingTxn, Store
from disclosure_ledger._store.sqlite import (
    INDEX_COLUMNS,
    UPPER_LEVEL,
    SQLiteStore,
    stored_hash_count,
    upper_hash_count,
)
from disclosure_ledger.errors import (
    BadSignatureError,
    ChainBreakError,
    DuplicateEventError,
    InconsistentCheckpointError,
    LedgerError,
    MalformedError,
    RollbackError,
    RootMismatchError,
    StorageError,
    UntrustedKeyError,
    ValidationError,
    VerificationError,
)

__all__ = ["AppendReceipt", "CheckReport", "Ledger", "Record"]

_MAX_BATCH = 8192
_SIGN_CHUNK = 256
_SIGN_HERE = 8  # commits of up to this many records are signed by the committer itself
_RUN_LEAVES = 1 << UPPER_LEVEL


@dataclass(frozen=True, slots=True)
class AppendReceipt:
    """What an acknowledged append returns: the record is durable under ``checkpoint``."""

    index: int
    leaf_hash: bytes
    event_id: str
    checkpoint: SignedCheckpoint


@dataclass(frozen=True, slots=True)
class Record:
    """A stored record, decoded."""

    index: int
    envelope: records.Envelope
    event: Event

    @property
    def leaf(self) -> bytes:
        """The exact leaf bytes."""
        return self.envelope.leaf

    @property
    def leaf_hash(self) -> bytes:
        """The RFC 6962 leaf hash."""
        return leaf_hash(self.envelope.leaf)


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The result of :meth:`Ledger.check`: everything matched.

    ``writers`` are the keys records were checked against; ``pinned`` says
    they and the log key were the caller's rather than the file's, and
    ``trusted_size`` is the size of the trusted checkpoint the ledger was
    found consistent with, if one was given.
    """

    size: int
    checkpoints: int
    writers: tuple[str, ...]
    root: bytes
    cosignatures: int = 0
    pinned: bool = False
    trusted_size: int | None = None


def _key_label(key: Verifier) -> str:
    return f"{key.name}+{key.key_id:08x}"


def _check_writer_verifier(writer: Verifier) -> Verifier:
    if writer.key_type != KEY_TYPE_ED25519:
        raise MalformedError(f"writer key {writer.name} is not an Ed25519 note key")
    return writer


def _check_writer(writer: Signer) -> Signer:
    if writer.key_type != KEY_TYPE_ED25519:
        raise MalformedError(f"writer key {writer.name} is not an Ed25519 note key")
    return writer


def _record(index: int, leaf: bytes) -> Record:
    env = records.parse_envelope(leaf)
    return Record(index, env, env.event())


_Item = tuple[str, bytes]  # (event_id, the event's canonical encoding)
_INDEX_CHUNK = 4096


def _index_columns(ev: Event) -> tuple[object, ...]:
    # The query index columns of an event, in AppendTxn.insert_index_rows'
    # order after (seq, logged_at).
    rec = ev.recipient
    basis = ev.legal_basis
    return (
        ev.event_id,
        ev.camera_id,
        ev.owner_id,
        str(ev.action),
        str(ev.actor.kind),
        None if rec is None else str(rec.kind),
        None if rec is None else rec.organization,
        None if basis is None else str(basis),
        _utc_column(ev.occurred_at),
    )


def _index_row(seq: int, leaf: bytes) -> tuple[object, ...]:
    # A record's query index row after its seq: (logged_at, *_index_columns).
    try:
        env = records.parse_envelope(leaf)
        return (env.logged_at, *_index_columns(env.event()))
    except MalformedError as err:
        raise MalformedError(f"record {seq}: {err}") from err


class _Request:
    __slots__ = ("events", "future", "writer")

    def __init__(
        self, events: list[_Item], writer: Signer, future: Future[list[AppendReceipt]]
    ) -> None:
        self.events = events
        self.writer = writer
        self.future = future


def _utc_column(dt: datetime) -> str:
    # Fixed-width UTC form so that string order is time order in the index.
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _coerce_event(event: Event | Mapping[str, Any]) -> Event:
    if isinstance(event, Event):
        return event
    if isinstance(event, Mapping):
        return records.event_from_json(event)
    raise MalformedError(f"expected an Event or its JSON form, got {type(event).__name__}")


class CommitSubscriber(Protocol):
    """What :meth:`Ledger.subscribe` takes: told of each durable commit, and of closing.

    ``committed`` runs on the committer's thread right after a commit is
    acknowledged: it must return at once and never raise (hand the work to a
    thread of its own, as :class:`~disclosure_ledger._witness.cosigner.Cosigner` does).
    ``closing`` runs in :meth:`Ledger.close` before the store closes, so work in
    flight can finish.
    """

    def committed(self, size: int) -> None:
        """The ledger's size after a durable commit."""
        ...

    def closing(self) -> None:
        """The ledger is closing."""
        ...


class Ledger:
    """A disclosure ledger in one SQLite file.

    Open it with :meth:`create` or :meth:`open`; use it as a context manager
    or call :meth:`close`. Appending needs the log key (it signs checkpoints);
    records are signed by the first writer key, or by the log key when no
    writer key is given. Reading, proving and checking need no private key.
    """

    def __init__(
        self,
        store: Store,
        *,
        log_key: Signer | None,
        writers: Sequence[Signer] = (),
        signing_threads: int | None = None,
    ) -> None:
        meta = store.meta()
        self._store: Store = store
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
        self._pool: ThreadPoolExecutor | None = None
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._committer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._registered: set[str] = set()
        # Witnesses: a background thread asks them to cosign the newest checkpoint.
        self._subscribers: list[CommitSubscriber] = []
        # One cosigning round at a time: two rounds racing to the same witness
        # leapfrog each other's old sizes, and one of them is refused.
        # Cache of the committed head, valid while the size matches the file.
        self._head_size = -1
        self._head_prev = records.GENESIS_PREV
        self._head_range = CompactRange()

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
        if log_key.key_type != KEY_TYPE_ED25519:
            raise MalformedError("the log key must be an Ed25519 note key (type 0x01)")
        if origin is not None and origin != log_key.name:
            raise MalformedError(
                f"the origin must be the log key's name {log_key.name!r}, not {origin!r}"
            )
        store = SQLiteStore.create(path, {"origin": log_key.name, "log_key": log_key.verifier.vkey})
        ledger = cls(store, log_key=log_key, writers=writers, signing_threads=signing_threads)
        # Size 0 gets a checkpoint too, so the empty ledger has a signed head.
        with store.append_txn() as txn:
            empty = Checkpoint(ledger.origin, 0, EMPTY_ROOT)
            txn.insert_checkpoint(0, sign_checkpoint(empty, log_key))
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
        """Open an existing ledger.

        Raises:
            StorageError: if the file is not a ledger, cannot be opened, or its
                origin or log key is not the one given.
        """
        store = SQLiteStore.open(path, readonly=readonly)
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
        if committer is not None:
            self._queue.put(None)
            committer.join()
        for sub in list(self._subscribers):
            sub.closing()
        if self._pool is not None:
            self._pool.shutdown()
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

    def __repr__(self) -> str:
        return f"Ledger(path={str(self._store.path)!r}, origin={self.origin!r})"

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._store.path

    # -- appending ---------------------------------------------------------------------

    def _writer(self, writer: Signer | None) -> Signer:
        if writer is not None:
            return _check_writer(writer)
        if self._writers:
            return self._writers[0]
        if self._log_key is None:
            raise LedgerError("this ledger was opened without keys; it cannot append")
        return self._log_key

    def _ensure_committer(self) -> None:
        with self._start_lock:
            if self._closed:
                raise LedgerError("the ledger is closed")
            if self._log_key is None:
                raise LedgerError("appending needs the ledger's log key")
            if self._committer is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._threads, thread_name_prefix="ledger-sign"
                )
                self._committer = threading.Thread(
                    target=self._run, name="ledger-commit", daemon=True
                )
                self._committer.start()

    def append(
        self, event: Event | Mapping[str, Any], *, writer: Signer | None = None
    ) -> AppendReceipt:
        """Append one event and return once it is durable.

        Raises:
            ValidationError: if the event is invalid (nothing is appended).
            DuplicateEventError: if its ``event_id`` is already in the ledger.
            StorageError: if it cannot be written (nothing is appended).
        """
        # Validate here so a single event's error names its field without a position.
        return self.append_many([_coerce_event(event)], writer=writer)[0]

    def submit(
        self, events: Iterable[Event | Mapping[str, Any]], *, writer: Signer | None = None
    ) -> Future[list[AppendReceipt]]:
        """Queue events for appending and return a future of their receipts.

        The events are appended atomically (all or none), in order. The future
        resolves once they are durable.

        Raises:
            ValidationError: if an event is invalid (nothing is queued); the
                field path starts with the event's position, as ``[3].actor.kind``.
        """
        signer = self._writer(writer)
        encoded: list[_Item] = []
        seen: set[str] = set()
        for i, item in enumerate(events):
            try:
                ev = _coerce_event(item)
            except ValidationError as err:
                raise err.under(f"[{i}]") from err
            if ev.event_id in seen:
                raise DuplicateEventError(ev.event_id)
            seen.add(ev.event_id)
            encoded.append((ev.event_id, records.encode_event(ev)))
        future: Future[list[AppendReceipt]] = Future()
        if not encoded:
            future.set_result([])
            return future
        self._ensure_committer()
        self._queue.put(_Request(encoded, signer, future))
        return future

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

    def _run(self) -> None:
        q = self._queue
        stop = False
        while not stop:
            first = q.get()
            if first is None:
                return
            batch = [first]
            count = len(first.events)
            while count < _MAX_BATCH:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                count += len(nxt.events)
            try:
                self._commit(batch)
            except BaseException as err:  # noqa: BLE001 - every waiter must hear of the failure
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(err)

    def _load_head(self, txn: SequencingTxn, size: int) -> tuple[bytes, CompactRange]:
        # The chain head and the tree's frontier at ``size``: from the cache when
        # no other process appended since this one's last commit.
        if size == self._head_size:
            return self._head_prev, self._head_range.copy()
        last = txn.last_leaf(size)
        prev = records.GENESIS_PREV if last is None else records.parse_envelope(last).chain_hash
        return prev, CompactRange(size, txn.frontier(subtree_ids(0, size)))

    def _sign_chunk(self, items: list[tuple[bytes, Signer]]) -> list[bytes]:
        origin = self.origin
        return [signer.sign_raw(records.signing_message(origin, c)) for c, signer in items]

    def _commit(self, batch: list[_Request]) -> None:
        # Fast path: let the UNIQUE index catch duplicates. If it does, roll back
        # and redo with an explicit check, so only the offending requests fail.
        try:
            self._commit_checked(batch, check_duplicates=False)
        except DuplicateEventError:
            self._commit_checked(batch, check_duplicates=True)

    def _commit_checked(self, batch: list[_Request], *, check_duplicates: bool) -> None:
        assert self._log_key is not None  # noqa: S101 - _ensure_committer checked it
        assert self._pool is not None  # noqa: S101
        sha = hashlib.sha256
        origin = self.origin
        log_key = self._log_key
        with self._store.append_txn() as txn:
            size = txn.size()
            prev, tree = self._load_head(txn, size)
            accepted: list[_Request] = []
            refused: list[tuple[_Request, str]] = []
            if check_duplicates:
                ids = [eid for req in batch for eid, _ in req.events]
                existing = txn.existing_event_ids(ids)
                seen: set[str] = set()
                for req in batch:
                    dup = next(
                        (eid for eid, _ in req.events if eid in existing or eid in seen),
                        None,
                    )
                    if dup is not None:
                        refused.append((req, dup))
                        continue
                    seen.update(eid for eid, _ in req.events)
                    accepted.append(req)
            else:
                accepted = batch
            if not accepted:
                for req, dup in refused:
                    req.future.set_exception(DuplicateEventError(dup))
                return
            logged_at = time.time_ns() // 1000
            seq = size
            encode_content = records.encode_content
            chain_prefix = records.CHAIN_PREFIX
            total = sum(len(req.events) for req in accepted)
            # Each chunk goes to the signing pool as soon as it is sequenced, and
            # this thread stores the chunks already signed while the pool signs
            # the rest (sqlite3 and libsodium release the GIL while they work).
            # A small commit is signed here: handing it over costs more.
            chunks: list[list[tuple[bytes, Signer]]] = []
            futures: list[Future[list[bytes]]] = []
            current: list[tuple[bytes, Signer]] = []
            for req in accepted:
                kid = req.writer.key_id
                for _, evb in req.events:
                    content = encode_content(seq, prev, logged_at, kid, evb)
                    prev = sha(chain_prefix + content).digest()
                    current.append((content, req.writer))
                    seq += 1
                    if len(current) == _SIGN_CHUNK:
                        chunks.append(current)
                        futures.append(self._pool.submit(self._sign_chunk, current))
                        current = []
            if current:
                chunks.append(current)
                if total <= _SIGN_HERE:
                    here: Future[list[bytes]] = Future()
                    here.set_result(self._sign_chunk(current))
                    futures.append(here)
                else:
                    futures.append(self._pool.submit(self._sign_chunk, current))
            for req in accepted:
                vkey = req.writer.verifier.vkey
                if vkey not in self._registered:
                    txn.register_writer(req.writer.key_id, vkey, size)
            leaf_hashes: list[bytes] = []
            pos = 0
            # Hashes are stored in runs that start where a block of 64 leaves
            # starts, so a proof finds all its nodes below the upper levels in
            # one run (see docs/decisions/0005-lean-append-path.md).
            run_first = stored_hash_count(size)
            run: list[bytes] = []
            event_ids = [eid for req in accepted for eid, _ in req.events]
            for chunk, fut in zip(chunks, futures, strict=True):
                sigs = fut.result()
                leaves: list[bytes] = []
                runs: list[tuple[int, bytes]] = []
                upper: list[tuple[int, bytes]] = []
                seq = size + pos
                for (content, _), sig in zip(chunk, sigs, strict=True):
                    if seq % _RUN_LEAVES == 0 and run:
                        runs.append((run_first, b"".join(run)))
                        run_first += len(run)
                        run = []
                    leaf = content + sig
                    lh = sha(b"\x00" + leaf).digest()
                    leaf_hashes.append(lh)
                    new = tree.append_nodes(lh)
                    if len(new) > UPPER_LEVEL:
                        at = run_first + len(run)
                        upper += [(at + j, new[j]) for j in range(UPPER_LEVEL, len(new))]
                    run += new
                    leaves.append(leaf)
                    seq += 1
                txn.insert_records(size + pos, leaves, event_ids[pos : pos + len(leaves)])
                txn.insert_runs(runs)
                txn.insert_upper(upper)
                pos += len(leaves)
            if run:
                txn.insert_runs([(run_first, b"".join(run))])
            new_size = tree.size
            checkpoint = Checkpoint(origin, new_size, tree.root())
            note = sign_checkpoint(checkpoint, log_key)
            txn.insert_checkpoint(new_size, note)
        # Committed and durable: update the cache, then acknowledge.
        for req, dup in refused:
            req.future.set_exception(DuplicateEventError(dup))
        for req in accepted:
            self._registered.add(req.writer.verifier.vkey)
        self._head_size, self._head_prev, self._head_range = new_size, prev, tree
        signed = SignedCheckpoint(checkpoint, note, self.log_verifier, ())
        pos = 0
        for req in accepted:
            out = []
            for eid, _ in req.events:
                out.append(AppendReceipt(size + pos, leaf_hashes[pos], eid, signed))
                pos += 1
            req.future.set_result(out)
        for sub in self._subscribers:
            sub.committed(new_size)

    # -- reading -------------------------------------------------------------------------

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
        return _record(index, self._store.leaf(index))

    def iter_records(self, start: int = 0, end: int | None = None) -> Iterator[Record]:
        """Yield records ``[start, end)`` in order, in bounded memory.

        Raises:
            StorageError: if a record is missing.
        """
        stop = self.size if end is None else end
        for i, leaf in enumerate(self._store.iter_leaves(start, stop), start):
            yield _record(i, leaf)

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
        if self._store.readonly:
            raise LedgerError("the ledger was opened read-only; its query index cannot be updated")
        added = 0
        target = self.size  # records appended meanwhile wait for the next call
        while True:
            start = self._store.indexed_size()
            end = min(target, start + _INDEX_CHUNK)
            if start >= end:
                return added
            rows = [
                (seq, *_index_row(seq, leaf))
                for seq, leaf in enumerate(self._store.iter_leaves(start, end), start)
            ]
            with self._store.append_txn() as txn:
                # Another process (or thread) may have indexed them meanwhile.
                if txn.indexed_size() == start:
                    txn.insert_index_rows(rows)
                    added += len(rows)

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
        equal = {
            column: str(value)
            for column, value in (
                ("camera_id", camera_id),
                ("owner_id", owner_id),
                ("action", action),
                ("actor_kind", actor_kind),
                ("legal_basis", legal_basis),
            )
            if value is not None
        }
        bounds: list[tuple[str, str]] = []
        for op, bound in ((">=", since), ("<", until)):
            if bound is not None:
                if bound.tzinfo is None:
                    raise MalformedError("query times must carry a time zone")
                bounds.append((op, _utc_column(bound.astimezone(UTC))))
        where = [f"{column} = ?" for column in equal]
        args: list[object] = list(equal.values())
        if recipient is not None:
            where.append("(recipient_org = ? OR recipient_kind = ?)")
            args += [recipient, recipient]
        for op, value in bounds:
            where.append(f"occurred_at {op} ?")
            args.append(value)
        size = self.size
        if not self._store.readonly:
            self.update_index()
        indexed = min(size, self._store.indexed_size())
        rows = self._store.query(" AND ".join(where), args, limit, below=indexed)
        found = [_record(seq, leaf) for seq, leaf in rows]

        def matches(rec: Record) -> bool:
            columns = dict(zip(INDEX_COLUMNS[1:], _index_columns(rec.event), strict=True))
            if any(columns[c] != v for c, v in equal.items()):
                return False
            if recipient is not None and recipient not in (
                columns["recipient_org"],
                columns["recipient_kind"],
            ):
                return False
            occurred = str(columns["occurred_at"])
            return all(occurred >= v if op == ">=" else occurred < v for op, v in bounds)

        tail = self.iter_records(indexed, size) if indexed < size else iter(())
        for rec in tail:
            if limit is not None and len(found) >= limit:
                break
            if matches(rec):
                found.append(rec)
        return found

    # -- proofs ----------------------------------------------------------------------------

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

    # -- integrity -----------------------------------------------------------------------

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

    def check(
        self,
        *,
        log_key: Verifier | None = None,
        writer_keys: Sequence[Verifier] | None = None,
        trusted_checkpoint: str | bytes | None = None,
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
        have that root.

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
        log = self._trusted_log_key(log_key)
        if writer_keys is None:
            writers = self.writer_verifiers()
        else:
            writers = [_check_writer_verifier(w) for w in writer_keys]
        trusted = None
        if trusted_checkpoint is not None:
            try:
                trusted = open_checkpoint(trusted_checkpoint, log).checkpoint
            except LedgerError as err:
                raise type(err)(f"the trusted checkpoint: {err}") from err
        by_id: dict[int, list[Verifier]] = {}
        for w in writers:
            by_id.setdefault(w.key_id, []).append(w)
        size = self.size
        if trusted is not None and trusted.size > size:
            raise RollbackError(
                f"the ledger has {size} records, fewer than the trusted checkpoint of size "
                f"{trusted.size}: records were removed from its end"
            )
        trusted_size = -1 if trusted is None else trusted.size
        checkpoints = self._store.iter_checkpoints()
        next_cp = next(checkpoints, None)
        checked = 0
        last_cp = -1
        tree = CompactRange()
        prev = records.GENESIS_PREV
        stored_pos = 0
        pending: list[bytes] = []
        pending_upper: list[tuple[int, bytes]] = []
        sha = hashlib.sha256

        def check_trusted(n: int) -> None:
            assert trusted is not None  # noqa: S101 - only called at the trusted size
            root = tree.root()
            if root != trusted.root:
                raise InconsistentCheckpointError(
                    f"the ledger's tree at size {n} has root {root.hex()}; the trusted "
                    f"checkpoint of that size has {trusted.root.hex()}: its history was rewritten"
                )

        def check_checkpoints_at(n: int) -> None:
            nonlocal next_cp, checked, last_cp
            root = tree.root()
            while next_cp is not None and next_cp[0] == n:
                cp_size, note = next_cp
                try:
                    signed = open_checkpoint(note, log)
                except VerificationError as err:
                    raise type(err)(f"checkpoint {cp_size}: {err}", index=None) from err
                if signed.checkpoint.size != cp_size:
                    raise RootMismatchError(
                        f"checkpoint stored under size {cp_size} claims {signed.checkpoint.size}",
                        root,
                        signed.checkpoint.root,
                    )
                if signed.checkpoint.root != root:
                    raise RootMismatchError(
                        f"checkpoint {cp_size} root differs from the records",
                        signed.checkpoint.root,
                        root,
                    )
                checked += 1
                last_cp = cp_size
                next_cp = next(checkpoints, None)

        def flush_hashes(upto: int) -> None:
            nonlocal stored_pos, pending, pending_upper
            if not pending:
                return
            stored = self._store.read_hash_range(stored_pos, stored_pos + len(pending))
            for k, (want, got) in enumerate(zip(pending, stored, strict=False)):
                if want != got:
                    raise RootMismatchError(
                        f"stored Merkle hash {stored_pos + k} differs from the records",
                        want,
                        got,
                    )
            if len(stored) != len(pending):
                raise StorageError(f"stored Merkle hashes end before position {upto}")
            stored_upper = self._store.read_upper_range(stored_pos, stored_pos + len(pending))
            for (pos, want), (at, got) in zip(pending_upper, stored_upper, strict=False):
                if at != pos:
                    raise StorageError(
                        f"the upper Merkle hash at position {min(at, pos)} is misplaced"
                    )
                if want != got:
                    raise RootMismatchError(
                        f"stored upper Merkle hash {pos} differs from the records", want, got
                    )
            if len(stored_upper) != len(pending_upper):
                raise StorageError(
                    f"{len(stored_upper)} upper Merkle hashes are stored in positions "
                    f"{stored_pos}..{stored_pos + len(pending) - 1}; the records make "
                    f"{len(pending_upper)}"
                )
            stored_pos += len(pending)
            pending = []
            pending_upper = []

        check_checkpoints_at(0)
        if trusted_size == 0:
            check_trusted(0)
        # What queries read must be what the library defined: a dropped or
        # redefined view could hide records from query() while the rows below
        # it stay intact.
        self._store.check_query_schema()
        indexed = self._store.indexed_size()
        if indexed > size:
            raise StorageError(f"the query index covers {indexed} records; the ledger has {size}")
        index_rows = self._store.iter_index_rows(0, indexed)
        chunk_ids: list[str] = []
        for index, leaf in enumerate(self._store.iter_leaves(0, size)):
            try:
                env = records.parse_envelope(leaf)
            except MalformedError as err:
                raise MalformedError(f"record {index}: {err}") from err
            if env.seq != index:
                raise ChainBreakError(
                    f"record {index} carries sequence number {env.seq}", index=index
                )
            if env.prev != prev:
                raise ChainBreakError(
                    f"record {index} does not link to record {index - 1}", index=index
                )
            candidates = by_id.get(env.key_id, [])
            if not candidates:
                known = "a given writer key" if writer_keys is not None else "a registered writer"
                raise UntrustedKeyError(
                    f"record {index} is signed by key ID {env.key_id:08x}, not {known}",
                    index=index,
                )
            records.verify_envelope(origin=self.origin, envelope=env, writers=candidates)
            try:
                event = env.event()
            except MalformedError as err:
                raise MalformedError(f"record {index}: {err}") from err
            # The query index must say what the signed record says, or a query
            # could hide a record (a release filed under another camera).
            if index < indexed and next(index_rows, None) != (
                index,
                (env.logged_at, *_index_columns(event)),
            ):
                raise VerificationError(
                    f"record {index}: the query index differs from the signed record",
                    index=index,
                )
            chunk_ids.append(event.event_id)
            if len(chunk_ids) == _INDEX_CHUNK:
                self._check_event_ids(index + 1 - len(chunk_ids), chunk_ids)
                chunk_ids = []
            prev = env.chain_hash
            new = tree.append_nodes(sha(b"\x00" + leaf).digest())
            if len(new) > UPPER_LEVEL:
                at = stored_pos + len(pending)
                pending_upper += [(at + j, new[j]) for j in range(UPPER_LEVEL, len(new))]
            pending += new
            if len(pending) >= 8192:
                flush_hashes(index + 1)
            if next_cp is not None and next_cp[0] == index + 1:
                check_checkpoints_at(index + 1)
            if index + 1 == trusted_size:
                check_trusted(trusted_size)
        self._check_event_ids(size - len(chunk_ids), chunk_ids)
        flush_hashes(size)
        for stored, wanted, what in (
            (self._store.event_id_count(), size, "event IDs are registered"),
            (self._store.upper_count(), upper_hash_count(size), "upper Merkle hashes are stored"),
            (self._store.hash_count(), stored_hash_count(size), "Merkle hashes are stored"),
        ):
            if stored != wanted:
                raise StorageError(f"{stored} {what}; {size} records make {wanted}")
        if next_cp is not None:
            raise StorageError(f"a checkpoint of size {next_cp[0]} is beyond the records")
        if last_cp != size:
            # Every commit writes its checkpoint with its records: records past
            # the newest one were put there around the ledger, signed by no log key.
            raise VerificationError(
                f"records {last_cp}..{size - 1} are under no signed checkpoint"
                if last_cp >= 0
                else "the ledger has no checkpoint"
            )
        cosigned = self._check_cosignatures()
        return CheckReport(
            size,
            checked,
            tuple(w.vkey for w in writers),
            tree.root(),
            cosigned,
            pinned=log_key is not None or writer_keys is not None,
            trusted_size=None if trusted is None else trusted.size,
        )

    def _trusted_log_key(self, log_key: Verifier | None) -> Verifier:
        """The key checkpoints must verify under: the file's, or the caller's pinned one.

        Raises:
            MalformedError: if the pinned key is not an Ed25519 note key.
            UntrustedKeyError: if the ledger's log key or origin is not the pinned one.
        """
        if log_key is None:
            return self.log_verifier
        if log_key.key_type != KEY_TYPE_ED25519:
            raise MalformedError(f"log key {log_key.name} is not an Ed25519 note key")
        if log_key != self.log_verifier:
            raise UntrustedKeyError(
                f"the ledger's log key is {_key_label(self.log_verifier)}, "
                f"not the trusted {_key_label(log_key)}"
            )
        if self.origin != log_key.name:
            raise UntrustedKeyError(
                f"the ledger's origin {self.origin!r} is not the trusted log key's name"
                f" {log_key.name!r}"
            )
        return log_key

    def _check_cosignatures(self) -> int:
        """Verify every stored cosignature line against the witness key stored beside it.

        Each line must be by that key and verify over the stored checkpoint of
        its size; a forged or misfiled row would otherwise pass ``check`` and
        break ``export``, ``prove`` and ``checkpoint`` later. Returns how many
        were checked.

        Raises:
            BadSignatureError: naming the size and the witness, for the first row that fails.
            StorageError: if the file cannot be read.
        """
        count = 0
        at, text = -1, ""
        for size, vkey, line in self._store.iter_cosignatures():
            where = f"the cosignature for checkpoint {size} by witness {vkey[:120]!r}"
            if size != at:
                note = self._store.checkpoint(size)
                if note is None:
                    raise BadSignatureError(f"{where}: there is no checkpoint of that size")
                at, text = size, parse_note(note).text
            try:
                witness = parse_verifier(vkey)
                sig = parse_signature_line(line)
            except MalformedError as err:
                raise BadSignatureError(f"{where}: {err}") from err
            if witness.key_type != KEY_TYPE_COSIGNATURE:
                raise BadSignatureError(f"{where}: not a cosignature (type 0x04) key")
            if (sig.name, sig.key_id) != (witness.name, witness.key_id):
                raise BadSignatureError(
                    f"{where}: the line is signed by {sig.name}+{sig.key_id:08x}, not that witness"
                )
            try:
                witness.verify(text, sig.signature)
            except BadSignatureError as err:
                raise BadSignatureError(f"{where}: {err}") from err
            count += 1
        return count

    def _check_event_ids(self, first: int, event_ids: list[str]) -> None:
        # The event ID register refuses duplicates; each ID must name its own record.
        stored = self._store.event_id_seqs(event_ids)
        for k, event_id in enumerate(event_ids):
            if stored.get(event_id) != first + k:
                raise VerificationError(
                    f"record {first + k}: its event ID is not registered to it", index=first + k
                )

    # -- witnesses -------------------------------------------------------------------------

    def subscribe(self, subscriber: CommitSubscriber) -> None:
        """Tell ``subscriber`` of every durable commit from now on, and of closing.

        Raises:
            LedgerError: if the ledger is closed.
        """
        with self._start_lock:
            if self._closed:
                raise LedgerError("the ledger is closed")
            self._subscribers.append(subscriber)

    def last_cosigned_size(self, witness_vkey: str) -> int | None:
        """The largest checkpoint size with a stored cosignature by this witness key.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._store.last_cosigned_size(witness_vkey)

    def record_witness_event(self, size: int, witness: str, outcome: str, detail: str) -> None:
        """Record what a witness answered for the checkpoint of ``size``.

        Raises:
            StorageError: if the ledger cannot be written.
        """
        self._store.add_witness_event(size, witness, outcome, detail)

    def witness_events(self) -> list[tuple[int, str, str, str]]:
        """Every recorded witness outcome ``(size, witness, outcome, detail)``, oldest first.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return self._store.witness_events()

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
