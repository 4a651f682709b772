"""The release gate: no footage leaves without a receipt for its logged release.

This module owns two checks that need nothing but the receipt text and the
keys a policy trusts, so a recipient, a court or an auditor can run them
offline. :func:`verify_record_receipt` turns a C2SP tlog-proof receipt (the
record's leaf bytes in ``extra``) into a verified record: the checkpoint is
signed by the policy's log, the leaf is included under it, the leaf is a
well-formed record at that index signed by a trusted writer, and (by default)
the checkpoint carries the policy's witness quorum. :class:`ReleaseGate` adds
what code that hands footage over needs: the record's action releases footage,
it names exactly the footage about to leave, and its checkpoint is fresh.

A log alone cannot show that a release which was never logged did not happen.
The gate closes that gap the only way it can be closed: the release path
itself refuses to run without a receipt, and receipts exist only for logged
records. Time is passed in (``now``, seconds since the Unix epoch), never read.

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

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import records
from .checkpoints import (
    Cosignature,
    Receipt,
    SignedCheckpoint,
    parse_receipt,
    peek_checkpoint,
    verify_receipt,
)
from .errors import MalformedError, UntrustedKeyError, VerificationError
from .notes import KEY_TYPE_ED25519, Verifier, b64encode
from .policy import Policy

__all__ = [
    "DEFAULT_MAX_AGE_SECONDS",
    "MAX_CLOCK_SKEW_SECONDS",
    "FootageNotNamedError",
    "NotAReleaseError",
    "QuorumNotMetError",
    "RecordMismatchError",
    "ReleaseGate",
    "StaleCheckpointError",
    "VerifiedRecord",
    "verify_record_receipt",
]

DEFAULT_MAX_AGE_SECONDS = 3600
"""How old (by its freshness time) a receipt's checkpoint may be by default: one hour."""

MAX_CLOCK_SKEW_SECONDS = 300
"""How far after ``now`` a cosignature (or ``logged_at``) may be dated and still count: five
minutes of clock difference between a witness and the gate. Later ones are ignored."""


class QuorumNotMetError(VerificationError):
    """The receipt's checkpoint lacks the policy's witness quorum."""


class NotAReleaseError(VerificationError):
    """The record's action does not release footage (see ``records.HANDOVER_ACTIONS``)."""


class FootageNotNamedError(VerificationError):
    """The record does not name the footage about to be released."""


class StaleCheckpointError(VerificationError):
    """The receipt's checkpoint is older than the freshness bound, or has no time.

    ``freshness`` is the checkpoint's time (see the module docstring), ``age``
    how many seconds before ``now`` it lies; both are ``None`` when the quorum
    is met only by cosignatures dated too far after ``now``.
    """

    def __init__(self, message: str, *, freshness: int | None, age: int | None) -> None:
        super().__init__(message)
        self.freshness = freshness
        self.age = age


class RecordMismatchError(VerificationError):
    """The leaf in the receipt is not the record at the index the proof covers."""


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


class ReleaseGate:
    """Releases nothing unless a receipt proves the release is logged, witnessed and fresh.

    Call :meth:`check` with the receipt of the release record and the SHA-256
    of the footage about to be handed over, right before handing it over.
    """

    __slots__ = ("max_age_seconds", "policy")

    def __init__(self, policy: Policy, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> None:
        """Make a gate that trusts ``policy`` and accepts checkpoints up to ``max_age_seconds`` old.

        Raises:
            MalformedError: if ``max_age_seconds`` is not a positive integer or
                the policy names no log.
        """
        if (
            not isinstance(max_age_seconds, int)
            or isinstance(max_age_seconds, bool)
            or max_age_seconds <= 0
        ):
            raise MalformedError("max_age_seconds must be a positive number of seconds")
        if not policy.logs:
            raise MalformedError("the gate's policy must name the log it trusts")
        self.policy = policy
        self.max_age_seconds = max_age_seconds

    def __repr__(self) -> str:
        return (
            f"ReleaseGate(quorum={self.policy.describe_quorum()!r}, max_age={self.max_age_seconds})"
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
        self, receipt: Receipt | str | bytes, footage_sha256: bytes, now: int
    ) -> VerifiedRecord:
        """Return the verified release record if the footage may be released now.

        Raises:
            MalformedError: if the receipt or its record is malformed, or
                ``footage_sha256`` is not 32 bytes.
            VerificationError: (a subclass) if the receipt does not verify, as
                :func:`verify_record_receipt` says.
            QuorumNotMetError: if the checkpoint lacks the policy's witness quorum.
            StaleCheckpointError: if the checkpoint is older than the freshness bound.
            NotAReleaseError: if the record's action does not release footage.
            FootageNotNamedError: if none of the record's clips has that hash.
        """
        if not isinstance(footage_sha256, bytes) or len(footage_sha256) != 32:
            raise MalformedError("footage_sha256 must be the 32-byte SHA-256 of the footage")
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
        if event.action not in records.HANDOVER_ACTIONS:
            allowed = ", ".join(sorted(a.value for a in records.HANDOVER_ACTIONS))
            raise NotAReleaseError(
                f"record {record.index} is a {event.action.value!r}, not a release ({allowed})",
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
        return record
