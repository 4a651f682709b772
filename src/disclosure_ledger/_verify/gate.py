"""The release gate: no footage leaves without a receipt for its logged release.

This module owns two checks that need nothing but the receipt text and the
keys a policy trusts, so a recipient, a court or an auditor can run them
offline. :func:`verify_record_receipt` turns a C2SP tlog-proof receipt (the
record's leaf bytes in ``extra``) into a verified record: the checkpoint is
signed by the policy's log, the leaf is included under it, the leaf is a
well-formed record at that index signed by a trusted writer, and (by default)
the checkpoint carries the policy's witness quorum. :class:`ReleaseGate` adds
what code that hands footage over needs: the record's action releases footage,
it hands footage to someone other than the owner and is a disclosure the
owner's report lists (one definition, :func:`records.is_disclosure`), it names
exactly the footage about to leave and exactly who receives it, it was logged
at most ``max_record_age_seconds`` ago, its checkpoint is fresh, and, where the
gate keeps state (:class:`GateState`), it has not been honoured before.

A log alone cannot show that a release which was never logged did not happen.
The gate closes that gap the only way it can be closed: the release path
itself refuses to run without a receipt, and receipts exist only for logged
records. Time is passed in (``now``, seconds since the Unix epoch), never read.

Where the gate runs decides whom it holds to this. Inside the vendor's own
release code it stops mistakes and rogue staff, not the vendor, who can skip
it. It holds against the vendor only where it runs outside the releaser's
control: in the camera firmware that uploads or decrypts a clip, or beside
the keys of end-to-end encrypted footage. That is why it needs nothing but
the receipt, the policy, the clock and a small state.

Freshness: a checkpoint's time is the latest time T such that the
cosignatures dated T or later still meet the policy's quorum. No single
witness can move it, unless the quorum is that one witness: with 2 of 3,
the second-newest timestamp counts, so one witness with a wrong (or lying)
clock cannot keep a receipt fresh. Cosignatures dated more than
:data:`MAX_CLOCK_SKEW_SECONDS` after ``now`` are ignored: they do not count
toward the quorum time, so a future timestamp cannot make a checkpoint look
younger than it is. When the quorum is met only with such cosignatures, the
checkpoint has no time and the gate refuses it. When the policy requires no
quorum, the time is the newest (not future) cosignature by any witness the
policy names and, if there is none, the time the log says it logged the
record (the envelope's ``logged_at``), which then rests on the log's word
alone; it is never used when a quorum is required.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import (
    Cosignature,
    Receipt,
    SignedCheckpoint,
    parse_receipt,
    peek_checkpoint,
    verify_receipt,
)
from disclosure_ledger._core.merkle import leaf_hash
from disclosure_ledger._core.notes import KEY_TYPE_ED25519, Verifier, b64encode
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._fsutil import check_not_writable_by_others
from disclosure_ledger.errors import (
    FootageNotNamedError,
    MalformedError,
    NotAReleaseError,
    QuorumNotMetError,
    ReceiptAlreadyUsedError,
    RecipientMismatchError,
    RecordMismatchError,
    StaleCheckpointError,
    StaleRecordError,
    StorageError,
    UntrustedKeyError,
)

__all__ = [
    "DEFAULT_MAX_AGE_SECONDS",
    "DEFAULT_MAX_RECORD_AGE_SECONDS",
    "MAX_CLOCK_SKEW_SECONDS",
    "FileGateState",
    "FootageNotNamedError",
    "GateState",
    "MemoryGateState",
    "NotAReleaseError",
    "QuorumNotMetError",
    "ReceiptAlreadyUsedError",
    "RecipientMismatchError",
    "RecordMismatchError",
    "ReleaseGate",
    "StaleCheckpointError",
    "StaleRecordError",
    "VerifiedRecord",
    "verify_record_receipt",
]

DEFAULT_MAX_AGE_SECONDS = 3600
"""How old (by its freshness time) a receipt's checkpoint may be by default: one hour."""

DEFAULT_MAX_RECORD_AGE_SECONDS = 900
"""How long after the record was logged the gate still honours it by default: 15 minutes.

A release record authorises one hand-over, made right after it was logged; it
is not a standing permission. The window is measured from the envelope's
``logged_at``, which the log's and the writer's signatures both cover."""

MAX_CLOCK_SKEW_SECONDS = 300
"""How far after ``now`` a cosignature (or ``logged_at``) may be dated and still count: five
minutes of clock difference between a witness and the gate. Later ones are ignored."""


@dataclass(frozen=True, slots=True)
class VerifiedRecord:
    """A record proven to be in the log: what :func:`verify_record_receipt` returns.

    ``writer`` is the trusted key whose signature on the record verified, or
    ``None`` when the policy names no writer keys (then only the log vouches
    for the record). ``cosignatures`` are the verified ones by the policy's
    witnesses; ``quorum_met`` says whether they satisfy the policy's quorum.
    """

    index: int
    leaf: bytes
    envelope: records.Envelope
    event: records.Event
    writer: Verifier | None
    checkpoint: SignedCheckpoint
    cosignatures: tuple[Cosignature, ...]
    quorum_met: bool

    @property
    def tree_size(self) -> int:
        """The size of the checkpoint the record is proven under."""
        return self.checkpoint.checkpoint.size

    @property
    def origin(self) -> str:
        """The log's origin."""
        return self.checkpoint.checkpoint.origin

    @property
    def logged_at(self) -> int:
        """When the log says it logged the record, in whole seconds since the epoch."""
        return self.envelope.logged_at // 1_000_000

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready summary (what ``verify-receipt`` prints).

        Raises:
            ValueError: if the record's ``logged_at`` lies after the year 9999, which
                the envelope allows (int64 microseconds) but :mod:`datetime` cannot show.
        """
        cp = self.checkpoint.checkpoint
        return {
            "origin": cp.origin,
            "index": self.index,
            "tree_size": cp.size,
            "root": b64encode(cp.root),
            "logged_at": datetime.fromtimestamp(self.envelope.logged_at / 1e6, UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "writer": None if self.writer is None else self.writer.vkey,
            "cosigned_by": [
                {"witness": c.witness.vkey, "timestamp": c.timestamp} for c in self.cosignatures
            ],
            "quorum_met": self.quorum_met,
            "event": records.event_to_json(self.event),
        }


def _coerce_receipt(receipt: Receipt | str | bytes) -> Receipt:
    if isinstance(receipt, Receipt):
        return receipt
    if isinstance(receipt, str | bytes | bytearray):
        return parse_receipt(receipt)
    raise MalformedError(f"expected a receipt, not {type(receipt).__name__}")


def verify_record_receipt(
    receipt: Receipt | str | bytes,
    policy: Policy,
    *,
    log_key: Verifier | None = None,
    require_quorum: bool = True,
) -> VerifiedRecord:
    """Verify a receipt against a policy and return the record it proves is logged.

    (This is the issue's ``verify_receipt(receipt, policy)``; it has another
    name so as not to be confused with :func:`checkpoints.verify_receipt`,
    which checks only the proof.) The log key is the policy's log whose name
    is the checkpoint's origin, or ``log_key`` when given. The receipt must
    carry the record's leaf bytes in ``extra``. When the policy names writer
    keys, the record must be signed by one of them or by the log key.

    Raises:
        MalformedError: if the receipt, its leaf or its record is malformed,
            or it carries no leaf.
        UntrustedKeyError: if no trusted log key has the checkpoint's origin,
            the log did not sign it, or the record's writer is not trusted.
        BadSignatureError: if the log's or the writer's signature does not verify.
        ProofError, RootMismatchError: if the inclusion proof does not verify.
        RecordMismatchError: if the leaf's sequence number is not the proven index.
        QuorumNotMetError: if ``require_quorum`` and the quorum is not met.
    """
    rec = _coerce_receipt(receipt)
    origin = peek_checkpoint(rec.checkpoint).origin
    key = log_key if log_key is not None else policy.log_for(origin)
    if key is None:
        raise UntrustedKeyError(f"the policy trusts no log with origin {origin!r}")
    if rec.extra is None:
        raise MalformedError("the receipt carries no record (no 'extra' line)")
    witnesses = policy.witness_keys()
    proven = verify_receipt(rec, key, witnesses)
    leaf = rec.extra
    try:
        env = records.parse_envelope(leaf)
        event = env.event()
    except MalformedError as err:
        raise MalformedError(f"the receipt's leaf is not a record: {err}") from err
    if env.seq != proven.index:
        raise RecordMismatchError(
            f"the record carries sequence number {env.seq}, but the proof is for index "
            f"{proven.index}",
            index=proven.index,
        )
    writer: Verifier | None = None
    if policy.writers:
        writer = records.verify_envelope(origin, env, [*policy.writers, key])
    elif key.key_type == KEY_TYPE_ED25519 and env.key_id == key.key_id:
        writer = records.verify_envelope(origin, env, [key])
    signed = proven.checkpoint
    cosigs = tuple(signed.cosigned_by(witnesses))
    met = policy.quorum_met(c.witness for c in cosigs)
    if require_quorum and not met:
        raise QuorumNotMetError(
            f"checkpoint {signed.checkpoint.size} of {origin} lacks the witness quorum: "
            f"{policy.describe_quorum()} needed, cosigned by "
            f"{', '.join(c.witness.name for c in cosigs) or 'none'}",
            index=proven.index,
        )
    return VerifiedRecord(proven.index, leaf, env, event, writer, signed, cosigs, met)


class GateState(Protocol):
    """Where a gate remembers the records it has honoured, so each opens it once.

    :meth:`claim` must be atomic: of two gates that claim the same record at
    once, across threads or processes, exactly one succeeds.
    """

    def claim(self, origin: str, index: int, leaf_hash: bytes, now: int) -> None:
        """Record that the gate releases under record ``index`` of ``origin``.

        Raises:
            ReceiptAlreadyUsedError: if that record was claimed before.
            StorageError: if the state cannot be read or written.
        """
        ...


def _already_used(origin: str, index: int, when: int | None) -> ReceiptAlreadyUsedError:
    at = "" if when is None else f" at {when}"
    return ReceiptAlreadyUsedError(
        f"record {index} of {origin} has already been honoured{at}; a receipt opens the gate once",
        index=index,
    )


class MemoryGateState:
    """A :class:`GateState` held in memory: for one process that never restarts, and tests."""

    __slots__ = ("_claimed", "_lock")

    def __init__(self) -> None:
        self._claimed: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def claim(self, origin: str, index: int, leaf_hash: bytes, now: int) -> None:
        """Record the claim (see :meth:`GateState.claim`).

        Raises:
            ReceiptAlreadyUsedError: if that record was claimed before.
        """
        with self._lock:
            key = (origin, index)
            if key in self._claimed:
                raise _already_used(origin, index, self._claimed[key])
            self._claimed[key] = now


_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS honoured (
    origin TEXT NOT NULL,
    idx INTEGER NOT NULL,
    leaf_hash BLOB NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (origin, idx)
) WITHOUT ROWID
"""


class FileGateState:
    """A :class:`GateState` in one SQLite file, shared safely by threads and processes.

    Each claim is one transaction that inserts the record's key; the primary
    key makes a second claim fail, in this process or any other, and the
    file is synced before the claim returns, so a release survives a crash
    as "used". A file that others can write, or inside a directory that
    others can write, is refused: whoever can delete rows can reuse receipts.
    """

    __slots__ = ("_path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Use (and create, mode 0600, when missing) the state file at ``path``.

        Raises:
            StorageError: if the file or its directory is writable by others,
                or the file is not a gate state.
        """
        self._path = Path(path)
        check_not_writable_by_others(self._path.parent, "gate state directory", StorageError)
        check_not_writable_by_others(self._path, "gate state file", StorageError)
        if not self._path.exists():
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            except OSError as err:
                raise StorageError(f"{self._path}: cannot create the gate state: {err}") from err
            else:
                os.close(fd)
        with self._connect() as conn:
            try:
                conn.execute(_STATE_SCHEMA)
            except sqlite3.DatabaseError as err:
                raise StorageError(f"{self._path}: not a gate state file: {err}") from err

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as err:
            raise StorageError(f"{self._path}: not a gate state file: {err}") from err
        return conn

    def claim(self, origin: str, index: int, leaf_hash: bytes, now: int) -> None:
        """Record the claim (see :meth:`GateState.claim`).

        Raises:
            ReceiptAlreadyUsedError: if that record was claimed before.
            StorageError: if the file cannot be read or written.
        """
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT at FROM honoured WHERE origin = ? AND idx = ?", (origin, index)
            ).fetchone()
            if row is not None:
                conn.execute("ROLLBACK")
                raise _already_used(origin, index, int(row[0]))
            conn.execute(
                "INSERT INTO honoured (origin, idx, leaf_hash, at) VALUES (?, ?, ?, ?)",
                (origin, index, leaf_hash, now),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise StorageError(f"{self._path}: cannot record the release: {err}") from err
        finally:
            conn.close()


def _party_text(party: records.Party) -> str:
    parts = [party.kind.value]
    if party.id is not None:
        parts.append(f"id {party.id!r}")
    if party.organization is not None:
        parts.append(f"organization {party.organization!r}")
    return ", ".join(parts)


class ReleaseGate:
    """Releases nothing unless a fresh receipt proves this very release is logged and witnessed.

    Call :meth:`check` right before handing footage over, with the receipt of
    the release record, the SHA-256 of the footage and the party about to
    receive it. With a :class:`GateState`, each record opens the gate once.
    """

    __slots__ = ("max_age_seconds", "max_record_age_seconds", "policy", "state")

    def __init__(
        self,
        policy: Policy,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
        *,
        max_record_age_seconds: int = DEFAULT_MAX_RECORD_AGE_SECONDS,
        state: GateState | None = None,
    ) -> None:
        """Make a gate that trusts ``policy``.

        ``max_age_seconds`` bounds the checkpoint's age (its freshness time),
        ``max_record_age_seconds`` the time since the record was logged.
        ``state`` makes receipts single-use; without it the gate keeps nothing
        and a receipt opens it again within the record's window.

        Raises:
            MalformedError: if an age is not a positive integer or the policy
                names no log.
        """
        for name, value in (
            ("max_age_seconds", max_age_seconds),
            ("max_record_age_seconds", max_record_age_seconds),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MalformedError(f"{name} must be a positive number of seconds")
        if not policy.logs:
            raise MalformedError("the gate's policy must name the log it trusts")
        self.policy = policy
        self.max_age_seconds = max_age_seconds
        self.max_record_age_seconds = max_record_age_seconds
        self.state = state

    def __repr__(self) -> str:
        return (
            f"ReleaseGate(quorum={self.policy.describe_quorum()!r}, "
            f"max_age={self.max_age_seconds}, max_record_age={self.max_record_age_seconds}, "
            f"single_use={self.state is not None})"
        )

    def freshness(self, record: VerifiedRecord, now: int) -> int | None:
        """Return the time of the record's checkpoint as of ``now`` (see the module docstring).

        ``None`` means the checkpoint has no time: the policy requires a quorum
        and only cosignatures dated more than :data:`MAX_CLOCK_SKEW_SECONDS`
        after ``now`` would meet it.

        Raises:
            Nothing: it reads the record's verified cosignatures and ``logged_at``.
        """
        latest = now + MAX_CLOCK_SKEW_SECONDS
        cosigs = [c for c in record.cosignatures if c.timestamp <= latest]
        if self.policy.quorum is None:
            if cosigs:
                return max(c.timestamp for c in cosigs)
            return record.logged_at if record.logged_at <= latest else None
        for t in sorted({c.timestamp for c in cosigs}, reverse=True):
            if self.policy.quorum_met(c.witness for c in cosigs if c.timestamp >= t):
                return t
        return None

    def check(
        self,
        receipt: Receipt | str | bytes,
        footage_sha256: bytes,
        recipient: records.Party,
        now: int,
    ) -> VerifiedRecord:
        """Return the verified release record if this footage may go to ``recipient`` now.

        The checks run in this order, and the state is claimed only when all
        of them pass, so a refused attempt never uses up a receipt.

        Raises:
            MalformedError: if the receipt or its record is malformed,
                ``footage_sha256`` is not 32 bytes, ``recipient`` is not a
                :class:`records.Party` or ``now`` is not whole seconds.
            VerificationError: (a subclass) if the receipt does not verify, as
                :func:`verify_record_receipt` says.
            QuorumNotMetError: if the checkpoint lacks the policy's witness quorum.
            StaleCheckpointError: if the checkpoint is older than the freshness bound.
            NotAReleaseError: if the record does not hand footage to someone
                outside owner and vendor.
            RecipientMismatchError: if the record names another recipient.
            FootageNotNamedError: if none of the record's clips has that hash.
            StaleRecordError: if the record was logged too long ago, or is
                dated more than :data:`MAX_CLOCK_SKEW_SECONDS` after ``now``.
            ReceiptAlreadyUsedError: if the gate's state has honoured the record.
            StorageError: if the state cannot be read or written.
        """
        if not isinstance(footage_sha256, bytes) or len(footage_sha256) != 32:
            raise MalformedError("footage_sha256 must be the 32-byte SHA-256 of the footage")
        if not isinstance(recipient, records.Party):
            raise MalformedError(
                f"recipient must be a Party (kind, id, organization), not "
                f"{type(recipient).__name__}"
            )
        if not isinstance(now, int) or isinstance(now, bool):
            raise MalformedError("now must be whole seconds since the Unix epoch")
        record = verify_record_receipt(receipt, self.policy)
        fresh = self.freshness(record, now)
        if fresh is None:
            raise StaleCheckpointError(
                f"checkpoint {record.tree_size} of {record.origin} has no witness quorum dated "
                f"before {now + MAX_CLOCK_SKEW_SECONDS} (cosignatures dated more than "
                f"{MAX_CLOCK_SKEW_SECONDS} s after now do not count)",
                freshness=None,
                age=None,
            )
        age = now - fresh
        if age > self.max_age_seconds:
            raise StaleCheckpointError(
                f"checkpoint {record.tree_size} of {record.origin} is {age} s old; "
                f"the gate accepts at most {self.max_age_seconds} s",
                freshness=fresh,
                age=age,
            )
        event = record.event
        named = records.receiving_party(event)
        if event.action not in records.HANDOVER_ACTIONS or not records.is_disclosure(event):
            allowed = ", ".join(sorted(a.value for a in records.HANDOVER_ACTIONS))
            raise NotAReleaseError(
                f"record {record.index} is a {event.action.value!r} "
                f"{'to' if event.recipient is not None else 'by'} "
                f"{_party_text(named)}: the gate opens only for a record that hands footage "
                f"({allowed}) to someone outside owner and vendor",
                index=record.index,
            )
        if named != recipient:
            raise RecipientMismatchError(
                f"record {record.index} releases footage to {_party_text(named)}, "
                f"not to {_party_text(recipient)}",
                index=record.index,
            )
        if not any(clip.sha256 == footage_sha256 for clip in event.footage):
            hint = (
                " (it is the original the released clip was derived from; only the derived "
                "clip may be released)"
                if event.derived_from == footage_sha256
                else ""
            )
            raise FootageNotNamedError(
                f"record {record.index} does not name footage {footage_sha256.hex()}{hint}",
                index=record.index,
            )
        record_age = now - record.logged_at
        if record_age > self.max_record_age_seconds:
            raise StaleRecordError(
                f"record {record.index} was logged {record_age} s ago; the gate honours a "
                f"release record for {self.max_record_age_seconds} s after it is logged",
                age=record_age,
                index=record.index,
            )
        if record_age < -MAX_CLOCK_SKEW_SECONDS:
            raise StaleRecordError(
                f"record {record.index} is logged {-record_age} s after now; more than the "
                f"{MAX_CLOCK_SKEW_SECONDS} s of clock difference the gate allows",
                age=record_age,
                index=record.index,
            )
        if self.state is not None:
            self.state.claim(record.origin, record.index, leaf_hash(record.leaf), now)
        return record
