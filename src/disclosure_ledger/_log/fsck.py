"""The integrity check: rebuild a ledger from its records and compare with what is stored.

This module owns :func:`check_ledger` (``Ledger.check`` and the ``check``
command call it) and its report. It trusts nothing the file stores beside
the records: chain links, signatures, Merkle hashes, checkpoints, the query
index, the event ID register and cosignatures are each recomputed or
verified, streaming, so memory stays bounded whatever the ledger's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from disclosure_ledger._core import records
from disclosure_ledger._core.chain import ChainWalker, WriterKeys
from disclosure_ledger._core.checkpoints import open_checkpoint
from disclosure_ledger._core.merkle import CompactRange
from disclosure_ledger._core.notes import (
    COSIGNATURE_TYPES,
    KEY_TYPE_ED25519,
    Verifier,
    parse_note,
    parse_signature_line,
    parse_verifier,
)
from disclosure_ledger._core.succession import check_successor
from disclosure_ledger._log.index import INDEX_CHUNK, index_columns
from disclosure_ledger._store.base import Store
from disclosure_ledger._store.sqlite import (
    UPPER_LEVEL,
    stored_hash_count,
    upper_hash_count,
)
from disclosure_ledger.errors import (
    BadSignatureError,
    InconsistentCheckpointError,
    LedgerError,
    MalformedError,
    RollbackError,
    RootMismatchError,
    StorageError,
    UntrustedKeyError,
    VerificationError,
)

if TYPE_CHECKING:  # the ledger imports this module for Ledger.check
    from disclosure_ledger._log.ledger import Ledger

__all__ = ["CheckReport", "check_ledger"]


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The result of :func:`check_ledger` (and :meth:`.Ledger.check`): everything matched.

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


def check_ledger(
    ledger: Ledger,
    *,
    log_key: Verifier | None = None,
    writer_keys: Sequence[Verifier] | None = None,
    trusted_checkpoint: str | bytes | None = None,
) -> CheckReport:
    """Rebuild everything in ``ledger`` from its records and compare with what is stored.

    This is :meth:`.Ledger.check`, whose docstring says what is checked, what
    the pinned keys and the trusted checkpoint add, and what each error means.

    Raises:
        LedgerError: a subclass, as :meth:`.Ledger.check` lists.
    """
    store = ledger.store
    log = _trusted_log_key(ledger, log_key)
    writers = ledger.writer_verifiers() if writer_keys is None else list(writer_keys)
    trusted = None
    if trusted_checkpoint is not None:
        try:
            trusted_signed = open_checkpoint(trusted_checkpoint, log)
        except LedgerError as err:
            raise type(err)(f"the trusted checkpoint: {err}") from err
        trusted = trusted_signed.checkpoint
        latest = store.latest_checkpoint()
        if latest is not None:
            # The newest stored checkpoint may replace the trusted one only as a
            # witness or the owner would let it: not smaller, the same root at
            # the same size. A larger one is shown consistent below, by
            # recomputing the tree's root at the trusted size.
            newest = open_checkpoint(latest[1], log)
            check_successor(
                trusted_signed,
                newest,
                held_as="the trusted checkpoint",
                new_as="the ledger's newest checkpoint",
            )
    size = store.size()
    if trusted is not None and trusted.size > size:
        raise RollbackError(
            f"the ledger has {size} records, fewer than the trusted checkpoint of size "
            f"{trusted.size}: records were removed from its end"
        )
    trusted_size = -1 if trusted is None else trusted.size
    checkpoints = store.iter_checkpoints()
    next_cp = next(checkpoints, None)
    checked = 0
    last_cp = -1
    tree = CompactRange()
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
        stored = store.read_hash_range(stored_pos, stored_pos + len(pending))
        for k, (want, got) in enumerate(zip(pending, stored, strict=False)):
            if want != got:
                raise RootMismatchError(
                    f"stored Merkle hash {stored_pos + k} differs from the records",
                    want,
                    got,
                )
        if len(stored) != len(pending):
            raise StorageError(f"stored Merkle hashes end before position {upto}")
        stored_upper = store.read_upper_range(stored_pos, stored_pos + len(pending))
        for (pos, want), (at, got) in zip(pending_upper, stored_upper, strict=False):
            if at != pos:
                raise StorageError(f"the upper Merkle hash at position {min(at, pos)} is misplaced")
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
    store.check_query_schema()
    indexed = store.indexed_size()
    if indexed > size:
        raise StorageError(f"the query index covers {indexed} records; the ledger has {size}")
    index_rows = store.iter_index_rows(0, indexed)
    chunk_ids: list[str] = []
    walker = ChainWalker(
        ledger.origin,
        WriterKeys(
            writers,
            untrusted_as="a given writer key" if writer_keys is not None else "a registered writer",
        ),
        prev=records.GENESIS_PREV,
    )
    for index, leaf in enumerate(store.iter_leaves(0, size)):
        logged_at, end, _writer = walker.step(leaf)
        try:
            event = records.decode_event(leaf[records.HEADER_SIZE : end])
        except MalformedError as err:
            raise MalformedError(f"record {index}: {err}") from err
        # The query index must say what the signed record says, or a query
        # could hide a record (a release filed under another camera).
        if index < indexed and next(index_rows, None) != (
            index,
            (logged_at, *index_columns(event)),
        ):
            raise VerificationError(
                f"record {index}: the query index differs from the signed record",
                index=index,
            )
        chunk_ids.append(event.event_id)
        if len(chunk_ids) == INDEX_CHUNK:
            _check_event_ids(store, index + 1 - len(chunk_ids), chunk_ids)
            chunk_ids = []
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
    _check_event_ids(store, size - len(chunk_ids), chunk_ids)
    flush_hashes(size)
    for stored, wanted, what in (
        (store.event_id_count(), size, "event IDs are registered"),
        (store.upper_count(), upper_hash_count(size), "upper Merkle hashes are stored"),
        (store.hash_count(), stored_hash_count(size), "Merkle hashes are stored"),
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
    cosigned = _check_cosignatures(store)
    return CheckReport(
        size,
        checked,
        tuple(w.vkey for w in writers),
        tree.root(),
        cosigned,
        pinned=log_key is not None or writer_keys is not None,
        trusted_size=None if trusted is None else trusted.size,
    )


def _trusted_log_key(ledger: Ledger, log_key: Verifier | None) -> Verifier:
    """The key checkpoints must verify under: the file's, or the caller's pinned one.

    Raises:
        MalformedError: if the pinned key is not an Ed25519 note key.
        UntrustedKeyError: if the ledger's log key or origin is not the pinned one.
    """
    if log_key is None:
        return ledger.log_verifier
    if log_key.key_type != KEY_TYPE_ED25519:
        raise MalformedError(f"log key {log_key.name} is not an Ed25519 note key")
    if log_key != ledger.log_verifier:
        raise UntrustedKeyError(
            f"the ledger's log key is {_key_label(ledger.log_verifier)}, "
            f"not the trusted {_key_label(log_key)}"
        )
    if ledger.origin != log_key.name:
        raise UntrustedKeyError(
            f"the ledger's origin {ledger.origin!r} is not the trusted log key's name"
            f" {log_key.name!r}"
        )
    return log_key


def _check_cosignatures(store: Store) -> int:
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
    for size, vkey, line in store.iter_cosignatures():
        where = f"the cosignature for checkpoint {size} by witness {vkey[:120]!r}"
        if size != at:
            note = store.checkpoint(size)
            if note is None:
                raise BadSignatureError(f"{where}: there is no checkpoint of that size")
            at, text = size, parse_note(note).text
        try:
            witness = parse_verifier(vkey)
            sig = parse_signature_line(line)
        except MalformedError as err:
            raise BadSignatureError(f"{where}: {err}") from err
        if witness.key_type not in COSIGNATURE_TYPES:
            raise BadSignatureError(f"{where}: not a cosignature (type 0x04 or 0x06) key")
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


def _check_event_ids(store: Store, first: int, event_ids: list[str]) -> None:
    # The event ID register refuses duplicates; each ID must name its own record.
    stored = store.event_id_seqs(event_ids)
    for k, event_id in enumerate(event_ids):
        if stored.get(event_id) != first + k:
            raise VerificationError(
                f"record {first + k}: its event ID is not registered to it", index=first + k
            )
