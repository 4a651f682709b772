"""The committer: group commit, sequencing, parallel signing, one fsync per commit.

This module owns the part of appending that runs after validation. Appends
from every thread of a process go through one committer thread, which takes
whatever is waiting (group commit), sequences it under the log's lock, signs
the records on a thread pool (the signing libraries release the GIL), writes
records, Merkle hashes and a new signed checkpoint in one transaction and
makes it durable. Only then are the callers' futures resolved: an
acknowledged record is durable. Then each log's ``on_commit`` callback hears
its new size, outside the lock.

A :class:`Committer` commits one log's appends (a ledger file). A
:class:`GroupCommitter` commits the appends of many logs of one database
(:class:`LogWriter` each): one transaction per commit holds every log the
commit touches, locked in ascending key order (so no deadlock), and signs
their records and checkpoints on one pool. The store behind a log is any
:class:`~disclosure_ledger._store.base.Store`.

Several processes may append to one log: each commit re-reads the committed
size under the log's lock and, if another process moved it, reloads the chain
head and the Merkle frontier before sequencing.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager

import msgspec

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import Checkpoint, SignedCheckpoint, sign_checkpoint
from disclosure_ledger._core.merkle import CompactRange, subtree_ids
from disclosure_ledger._core.notes import Signer, Verifier
from disclosure_ledger._store.base import SequencingTxn, Store
from disclosure_ledger._store.layout import UPPER_LEVEL, stored_hash_count
from disclosure_ledger.errors import DuplicateEventError

__all__ = [
    "AppendReceipt",
    "BeginTxn",
    "Committer",
    "GroupCommitter",
    "LogWriter",
    "SharedCommitter",
    "sign_head",
]

_MAX_BATCH = 8192
_SIGN_CHUNK = 256
_SIGN_HERE = 8  # commits of up to this many records are signed by the committer itself
_RUN_LEAVES = 1 << UPPER_LEVEL

Item = tuple[str, bytes]
"""One event to append: ``(event_id, the event's canonical encoding)``."""


class AppendReceipt(msgspec.Struct, frozen=True):
    """What an acknowledged append returns: the record is durable under ``checkpoint``."""

    # A frozen msgspec Struct rather than a frozen dataclass: one is made per
    # record, and msgspec sets the fields in C (0.1 µs against 0.8 µs).
    index: int
    leaf_hash: bytes
    event_id: str
    checkpoint: SignedCheckpoint


class LogWriter:
    """One log as the committer sees it: its store, its keys and its cached head.

    ``key`` orders the logs of one commit (their locks are taken in that
    order); ``on_commit`` hears the log's new size after each durable commit.
    Only the committer thread touches the cache.
    """

    __slots__ = (
        "head_prev",
        "head_range",
        "head_size",
        "key",
        "log_key",
        "log_verifier",
        "on_commit",
        "origin",
        "registered",
        "store",
    )

    def __init__(
        self,
        store: Store,
        *,
        origin: str,
        log_key: Signer,
        on_commit: Callable[[int], None] = lambda _size: None,
        key: int = 0,
    ) -> None:
        self.store = store
        self.origin = origin
        self.log_key = log_key
        self.log_verifier: Verifier = log_key.verifier
        self.on_commit = on_commit
        self.key = key
        self.registered: set[str] = set()
        # Cache of the committed head, valid while the size matches the store's.
        self.head_size = -1
        self.head_prev = records.GENESIS_PREV
        self.head_range = CompactRange()


BeginTxn = Callable[[Sequence[LogWriter]], AbstractContextManager[Sequence[SequencingTxn]]]
"""Opens one transaction over ``logs`` (sorted by key): their sequencing transactions, in order."""


class _Request:
    __slots__ = ("events", "future", "log", "writer")

    def __init__(
        self,
        log: LogWriter,
        events: list[Item],
        writer: Signer,
        future: Future[list[AppendReceipt]],
    ) -> None:
        self.log = log
        self.events = events
        self.writer = writer
        self.future = future


class _Staged:
    """One log's part of a commit: sequenced, then written, then acknowledged."""

    __slots__ = (
        "accepted",
        "checkpoint",
        "chunks",
        "futures",
        "leaf_hashes",
        "log",
        "note",
        "prev",
        "refused",
        "size",
        "tree",
    )

    def __init__(self, log: LogWriter, size: int) -> None:
        self.log = log
        self.size = size
        self.accepted: list[_Request] = []
        self.refused: list[tuple[_Request, str]] = []
        self.chunks: list[list[bytes]] = []  # one writer a chunk
        self.futures: list[Future[list[bytes]]] = []
        self.leaf_hashes: list[bytes] = []
        self.prev = records.GENESIS_PREV
        self.tree = CompactRange()
        self.checkpoint: Checkpoint | None = None
        self.note = ""


@contextlib.contextmanager
def _one_log(logs: Sequence[LogWriter]) -> Iterator[Sequence[SequencingTxn]]:
    (log,) = logs
    with log.store.append_txn() as txn:
        yield [txn]


class GroupCommitter:
    """The one thread that commits appends to one or more logs, and its signing pool.

    Appends come with :meth:`submit_to`, already validated and encoded. Each
    commit takes what is waiting, opens one transaction over the logs it
    touches with ``begin``, and after it is durable resolves the futures and
    calls each touched log's ``on_commit`` (which must be quick and must not
    raise).
    """

    def __init__(self, *, threads: int, begin: BeginTxn = _one_log) -> None:
        """Start the committer thread and the signing pool."""
        self._begin = begin
        self.commits = 0  # transactions committed, for monitoring and the tests
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ledger-sign")
        self._thread = threading.Thread(target=self._run, name="ledger-commit", daemon=True)
        self._thread.start()

    def submit_to(
        self, log: LogWriter, events: list[Item], writer: Signer
    ) -> Future[list[AppendReceipt]]:
        """Queue ``events`` (non-empty, distinct IDs) to be appended to ``log`` atomically.

        Raises:
            Nothing: a failure to append is the future's exception.
        """
        future: Future[list[AppendReceipt]] = Future()
        self._queue.put(_Request(log, events, writer, future))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop the thread and the pool.

        Raises:
            Nothing: an append that fails while finishing reports its error
                through its own future.
        """
        self._queue.put(None)
        self._thread.join()
        self._pool.shutdown()

    def _run(self) -> None:
        q = self._queue
        stop = False
        while not stop:
            first = q.get()
            if first is None:
                return
            # Let the callers just woken by the last commit queue their next
            # appends before this one is taken alone: with 8 threads each
            # calling append(), commits grew from 4 to 7 records on average
            # and the rate by about 40 %; a lone caller loses nothing.
            time.sleep(0)
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

    def _sign_chunk(self, contents: list[bytes], signer: Signer, origin: str) -> list[bytes]:
        prefix = records.signing_message(origin, b"")
        sign = signer.sign_raw
        return [sign(prefix + c) for c in contents]

    def _commit(self, batch: list[_Request]) -> None:
        while batch:
            # One handle per log in a transaction: a log opened twice (two
            # LogWriters of one key) has its second handle's appends committed next.
            now: list[_Request] = []
            later: list[_Request] = []
            holder: dict[int, LogWriter] = {}
            for req in batch:
                (now if holder.setdefault(req.log.key, req.log) is req.log else later).append(req)
            # Fast path: let the unique key catch duplicates. If it does, roll back
            # and redo with an explicit check, so only the offending requests fail.
            try:
                self._commit_checked(now, check_duplicates=False)
            except DuplicateEventError:
                self._commit_checked(now, check_duplicates=True)
            batch = later

    def _commit_checked(self, batch: list[_Request], *, check_duplicates: bool) -> None:
        by_log: dict[int, list[_Request]] = {}
        for req in batch:
            by_log.setdefault(id(req.log), []).append(req)
        groups = sorted(by_log.values(), key=lambda reqs: reqs[0].log.key)
        logs = [reqs[0].log for reqs in groups]
        sign_here = sum(len(req.events) for req in batch) <= _SIGN_HERE
        with self._begin(logs) as txns:
            staged = [
                self._sequence(txn, reqs, check_duplicates=check_duplicates, sign_here=sign_here)
                for txn, reqs in zip(txns, groups, strict=True)
            ]
            for st, txn in zip(staged, txns, strict=True):
                if st.accepted:
                    self._write(st, txn)
            work = [st for st in staged if st.accepted]
            notes: list[str]
            if len(work) > _SIGN_HERE:
                notes = list(self._pool.map(_sign_checkpoint, work))
            else:
                notes = [_sign_checkpoint(st) for st in work]
            for st, note in zip(work, notes, strict=True):
                st.note = note
            for st, txn in zip(staged, txns, strict=True):
                if st.accepted:
                    txn.insert_checkpoint(st.tree.size, st.note)
        # Committed and durable: update the caches, then acknowledge.
        self.commits += 1
        for st in staged:
            self._acknowledge(st)

    def _sequence(
        self,
        txn: SequencingTxn,
        reqs: list[_Request],
        *,
        check_duplicates: bool,
        sign_here: bool,
    ) -> _Staged:
        # Under the log's lock: read the head, chain the events, start signing.
        log = reqs[0].log
        size = txn.size()
        st = _Staged(log, size)
        if size == log.head_size:
            prev, st.tree = log.head_prev, log.head_range.copy()
        else:
            last = txn.last_leaf(size)
            prev = records.GENESIS_PREV if last is None else records.parse_envelope(last).chain_hash
            st.tree = CompactRange(size, txn.frontier(subtree_ids(0, size)))
        if check_duplicates:
            existing = txn.existing_event_ids([eid for req in reqs for eid, _ in req.events])
            seen: set[str] = set()
            for req in reqs:
                dup = next(
                    (eid for eid, _ in req.events if eid in existing or eid in seen),
                    None,
                )
                if dup is not None:
                    st.refused.append((req, dup))
                    continue
                seen.update(eid for eid, _ in req.events)
                st.accepted.append(req)
        else:
            st.accepted = reqs
        if not st.accepted:
            return st
        sha = hashlib.sha256
        logged_at = time.time_ns() // 1000
        seq = size
        # encode_content without its checks: the events were validated and
        # encoded by records, the chain hashes are 32 bytes by construction,
        # and a sequence number or clock out of struct's range still raises.
        pack = records.HEADER.pack
        version = records.ENVELOPE_VERSION
        chain_prefix = records.CHAIN_PREFIX
        origin = log.origin
        # Each chunk goes to the signing pool as soon as it is sequenced, and
        # the committer stores the chunks already signed while the pool signs
        # the rest (the drivers and libsodium release the GIL while they work).
        # A small commit is signed here: handing it over costs more. A chunk
        # has one writer.
        current: list[bytes] = []
        signer = st.accepted[0].writer
        for req in st.accepted:
            if req.writer is not signer and current:
                st.chunks.append(current)
                st.futures.append(self._pool.submit(self._sign_chunk, current, signer, origin))
                current = []
            signer = req.writer
            kid = signer.key_id
            for _, evb in req.events:
                content = pack(version, seq, prev, logged_at, kid, len(evb)) + evb
                prev = sha(chain_prefix + content).digest()
                current.append(content)
                seq += 1
                if len(current) == _SIGN_CHUNK:
                    st.chunks.append(current)
                    st.futures.append(self._pool.submit(self._sign_chunk, current, signer, origin))
                    current = []
        if current:
            st.chunks.append(current)
            if sign_here:
                here: Future[list[bytes]] = Future()
                here.set_result(self._sign_chunk(current, signer, origin))
                st.futures.append(here)
            else:
                st.futures.append(self._pool.submit(self._sign_chunk, current, signer, origin))
        st.prev = prev
        for req in st.accepted:
            vkey = req.writer.verifier.vkey
            if vkey not in log.registered:
                txn.register_writer(req.writer.key_id, vkey, size)
        return st

    def _write(self, st: _Staged, txn: SequencingTxn) -> None:
        # Store the signed records and the hashes they add; the root follows.
        sha = hashlib.sha256
        size, tree = st.size, st.tree
        pos = 0
        # Hashes are stored in runs that start where a block of 64 leaves
        # starts, so a proof finds all its nodes below the upper levels in
        # one run (see docs/decisions/0005-lean-append-path.md).
        run_first = stored_hash_count(size)
        run: list[bytes] = []
        event_ids = [eid for req in st.accepted for eid, _ in req.events]
        for chunk, fut in zip(st.chunks, st.futures, strict=True):
            sigs = fut.result()
            leaves: list[bytes] = []
            runs: list[tuple[int, bytes]] = []
            upper: list[tuple[int, bytes]] = []
            seq = size + pos
            for content, sig in zip(chunk, sigs, strict=True):
                if seq % _RUN_LEAVES == 0 and run:
                    runs.append((run_first, b"".join(run)))
                    run_first += len(run)
                    run = []
                leaf = content + sig
                lh = sha(b"\x00" + leaf).digest()
                st.leaf_hashes.append(lh)
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
        st.checkpoint = Checkpoint(st.log.origin, tree.size, tree.root())

    def _acknowledge(self, st: _Staged) -> None:
        for req, dup in st.refused:
            req.future.set_exception(DuplicateEventError(dup))
        if not st.accepted or st.checkpoint is None:
            return
        log = st.log
        for req in st.accepted:
            log.registered.add(req.writer.verifier.vkey)
        new_size = st.tree.size
        log.head_size, log.head_prev, log.head_range = new_size, st.prev, st.tree
        signed = SignedCheckpoint(st.checkpoint, st.note, log.log_verifier, ())
        pos = 0
        for req in st.accepted:
            out = []
            for eid, _ in req.events:
                out.append(AppendReceipt(st.size + pos, st.leaf_hashes[pos], eid, signed))
                pos += 1
            req.future.set_result(out)
        log.on_commit(new_size)


def _sign_checkpoint(st: _Staged) -> str:
    assert st.checkpoint is not None  # set by _write  # noqa: S101 - an invariant
    return sign_checkpoint(st.checkpoint, st.log.log_key)


class Committer(GroupCommitter):
    """The one thread that commits one log's appends (a ledger file), and its signing pool.

    The ledger owns it and gives it validated, encoded events with
    :meth:`submit`. ``on_commit`` is called on the committer thread with the
    new size after each durable commit, once the callers' futures are
    resolved; it must be quick and must not raise (the ledger's subscriber
    fan-out catches what its subscribers raise).
    """

    def __init__(
        self,
        store: Store,
        *,
        origin: str,
        log_key: Signer,
        threads: int,
        on_commit: Callable[[int], None],
    ) -> None:
        """Start the committer thread and the signing pool."""
        self._log = LogWriter(store, origin=origin, log_key=log_key, on_commit=on_commit)
        super().__init__(threads=threads)

    def submit(self, events: list[Item], writer: Signer) -> Future[list[AppendReceipt]]:
        """Queue ``events`` (non-empty, distinct IDs) to be appended atomically by ``writer``.

        Raises:
            Nothing: a failure to append is the future's exception.
        """
        return self.submit_to(self._log, events, writer)


class SharedCommitter:
    """One log's door into a :class:`GroupCommitter` that other logs of its database share.

    A ledger opened through a database of many logs appends through one of
    these: its appends join every other log's in the group's commits. Closing
    it waits for this log's appends only; the group runs on.
    """

    def __init__(
        self, group: GroupCommitter, log: LogWriter, on_commit: Callable[[int], None]
    ) -> None:
        """Join ``group`` with ``log``, whose ``on_commit`` becomes ``on_commit``."""
        log.on_commit = on_commit
        self._group = group
        self._log = log
        self._lock = threading.Lock()
        self._pending: set[Future[list[AppendReceipt]]] = set()

    def submit(self, events: list[Item], writer: Signer) -> Future[list[AppendReceipt]]:
        """Queue ``events`` (non-empty, distinct IDs) to be appended atomically by ``writer``.

        Raises:
            Nothing: a failure to append is the future's exception.
        """
        future = self._group.submit_to(self._log, events, writer)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[list[AppendReceipt]]) -> None:
        with self._lock:
            self._pending.discard(future)

    def close(self) -> None:
        """Wait until this log's queued appends are committed or have failed.

        Raises:
            Nothing: a failed append reports its error through its own future.
        """
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.exception()


def sign_head(store: Store, origin: str, log_key: Signer) -> int | None:
    """Sign a checkpoint of the committed size if none covers it yet; return that size.

    Every commit of this library carries its checkpoint, so this finds
    nothing to do unless records were committed without one (by another
    writer that died in between, or another tool). Under the log's lock, so
    it races no append.

    Raises:
        StorageError: if the store cannot be read or written.
    """
    with store.append_txn() as txn:
        size = txn.size()
        if store.checkpoint(size) is not None:
            return None
        tree = CompactRange(size, txn.frontier(subtree_ids(0, size)))
        txn.insert_checkpoint(size, sign_checkpoint(Checkpoint(origin, size, tree.root()), log_key))
    return size
