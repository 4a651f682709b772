"""The committer: group commit, sequencing, parallel signing, one fsync per commit.

This module owns the part of appending that runs after validation. Appends
from every thread of a process go through one :class:`Committer` thread, which
takes whatever is waiting (group commit), sequences it under the file's write
lock, signs the records on a thread pool (the signing libraries release the
GIL), writes records, Merkle hashes and a new signed checkpoint in one
transaction and makes it durable with one fsync. Only then are the callers'
futures resolved: an acknowledged record is on disk. Then the commit's
``on_commit`` callback hears the new size, outside the write lock.

Several processes may append to one file: each commit re-reads the committed
size inside the write lock and, if another process moved it, reloads the chain
head and the Merkle frontier before sequencing.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import msgspec

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import Checkpoint, SignedCheckpoint, sign_checkpoint
from disclosure_ledger._core.merkle import CompactRange, subtree_ids
from disclosure_ledger._core.notes import Signer, Verifier
from disclosure_ledger._store.sqlite import UPPER_LEVEL, SQLiteStore, stored_hash_count
from disclosure_ledger.errors import DuplicateEventError

__all__ = ["AppendReceipt", "Committer"]

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


class _Request:
    __slots__ = ("events", "future", "writer")

    def __init__(
        self, events: list[Item], writer: Signer, future: Future[list[AppendReceipt]]
    ) -> None:
        self.events = events
        self.writer = writer
        self.future = future


class Committer:
    """The one thread that commits a ledger's appends, and its signing pool.

    The ledger owns it and gives it validated, encoded events with
    :meth:`submit`. ``on_commit`` is called on the committer thread with the
    new size after each durable commit, once the callers' futures are
    resolved; it must be quick and must not raise (the ledger's subscriber
    fan-out catches what its subscribers raise).
    """

    def __init__(
        self,
        store: SQLiteStore,
        *,
        origin: str,
        log_key: Signer,
        threads: int,
        on_commit: Callable[[int], None],
    ) -> None:
        """Start the committer thread and the signing pool."""
        self._store = store
        self.origin = origin
        self._log_key = log_key
        self._log_verifier: Verifier = log_key.verifier
        self._on_commit = on_commit
        self._registered: set[str] = set()
        # Cache of the committed head, valid while the size matches the file.
        self._head_size = -1
        self._head_prev = records.GENESIS_PREV
        self._head_range = CompactRange()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ledger-sign")
        self._thread = threading.Thread(target=self._run, name="ledger-commit", daemon=True)
        self._thread.start()

    def submit(self, events: list[Item], writer: Signer) -> Future[list[AppendReceipt]]:
        """Queue ``events`` (non-empty, distinct IDs) to be appended atomically by ``writer``.

        Raises:
            Nothing: a failure to append is the future's exception.
        """
        future: Future[list[AppendReceipt]] = Future()
        self._queue.put(_Request(events, writer, future))
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

    def _load_head(self, txn: Any, size: int) -> tuple[bytes, CompactRange]:
        # The chain head and the tree's frontier at ``size``: from the cache when
        # no other process appended since this one's last commit.
        if size == self._head_size:
            return self._head_prev, self._head_range.copy()
        last = txn.last_leaf(size)
        prev = records.GENESIS_PREV if last is None else records.parse_envelope(last).chain_hash
        return prev, CompactRange(size, txn.frontier(subtree_ids(0, size)))

    def _sign_chunk(self, contents: list[bytes], signer: Signer) -> list[bytes]:
        prefix = records.signing_message(self.origin, b"")
        sign = signer.sign_raw
        return [sign(prefix + c) for c in contents]

    def _commit(self, batch: list[_Request]) -> None:
        # Fast path: let the UNIQUE index catch duplicates. If it does, roll back
        # and redo with an explicit check, so only the offending requests fail.
        try:
            self._commit_checked(batch, check_duplicates=False)
        except DuplicateEventError:
            self._commit_checked(batch, check_duplicates=True)

    def _commit_checked(self, batch: list[_Request], *, check_duplicates: bool) -> None:
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
            # encode_content without its checks: the events were validated and
            # encoded by records, the chain hashes are 32 bytes by construction,
            # and a sequence number or clock out of struct's range still raises.
            pack = records.HEADER.pack
            version = records.ENVELOPE_VERSION
            chain_prefix = records.CHAIN_PREFIX
            total = sum(len(req.events) for req in accepted)
            # Each chunk goes to the signing pool as soon as it is sequenced, and
            # this thread stores the chunks already signed while the pool signs
            # the rest (sqlite3 and libsodium release the GIL while they work).
            # A small commit is signed here: handing it over costs more. A chunk
            # has one writer.
            chunks: list[list[bytes]] = []
            futures: list[Future[list[bytes]]] = []
            current: list[bytes] = []
            signer = accepted[0].writer
            for req in accepted:
                if req.writer is not signer and current:
                    chunks.append(current)
                    futures.append(self._pool.submit(self._sign_chunk, current, signer))
                    current = []
                signer = req.writer
                kid = signer.key_id
                for _, evb in req.events:
                    content = pack(version, seq, prev, logged_at, kid, len(evb)) + evb
                    prev = sha(chain_prefix + content).digest()
                    current.append(content)
                    seq += 1
                    if len(current) == _SIGN_CHUNK:
                        chunks.append(current)
                        futures.append(self._pool.submit(self._sign_chunk, current, signer))
                        current = []
            if current:
                chunks.append(current)
                if total <= _SIGN_HERE:
                    here: Future[list[bytes]] = Future()
                    here.set_result(self._sign_chunk(current, signer))
                    futures.append(here)
                else:
                    futures.append(self._pool.submit(self._sign_chunk, current, signer))
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
                for content, sig in zip(chunk, sigs, strict=True):
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
        signed = SignedCheckpoint(checkpoint, note, self._log_verifier, ())
        pos = 0
        for req in accepted:
            out = []
            for eid, _ in req.events:
                out.append(AppendReceipt(size + pos, leaf_hashes[pos], eid, signed))
                pos += 1
            req.future.set_result(out)
        self._on_commit(new_size)
