"""The exception tree.

Everything the library raises on purpose derives from :class:`LedgerError`, in
three families: :class:`MalformedError` (input that is not well-formed: wrong
length, bad encoding, bad field), :class:`VerificationError` (well-formed input
that is false: a bad signature, a broken chain, a root that does not match) and
:class:`StorageError` (the ledger file or its surroundings), and two that are neither:
:class:`ConflictError` (a state changed under the caller) and
:class:`VerifyInputError` (a verification could not run at all). Every class
the package raises on purpose is defined here, grouped by who finds it; the
two split-view classes live beside the evidence they carry
(``disclosure_ledger._core.evidence``). The CLI maps the families to exit
codes and one line of text.
"""

from __future__ import annotations

__all__ = [
    "BadSignatureError",
    "ChainBreakError",
    "ConflictError",
    "DuplicateEventError",
    "DuplicateRecordError",
    "FootageNotNamedError",
    "InconsistentCheckpointError",
    "KeyFormatError",
    "LedgerError",
    "LineError",
    "MalformedError",
    "MalformedRecordError",
    "NotAReleaseError",
    "NotPublishedError",
    "OldSizeTooLargeError",
    "ProofError",
    "QuorumNotMetError",
    "ReceiptAlreadyUsedError",
    "RecipientMismatchError",
    "RecordMismatchError",
    "RollbackError",
    "RootMismatchError",
    "SizeWentBackwardsError",
    "StaleCheckpointError",
    "StaleOldSizeError",
    "StaleRecordError",
    "StorageError",
    "UnknownOriginError",
    "UntrustedKeyError",
    "ValidationError",
    "VerificationError",
    "VerifyInputError",
]


class LedgerError(Exception):
    """Root of every error this library raises on purpose."""


class MalformedError(LedgerError):
    """Input is not well-formed: wrong length, bad encoding, unknown field."""


class ValidationError(MalformedError, ValueError):
    """An event failed validation. ``field`` names the offending field, by its path.

    The path is JSONPath-like: ``$.actor.kind``, ``$.footage[1].sha256``.

    It is also a ``ValueError``, so that msgspec reports one raised while it builds
    a value under the path of that value.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def under(self, prefix: str) -> ValidationError:
        """The same error for the field as part of ``prefix``.

        ``prefix.field``, or ``$prefix.rest`` for a path ``$.rest``: ``[3]``
        over ``$.actor.kind`` gives ``$[3].actor.kind``.
        """
        if self.field.startswith("$"):
            return ValidationError(f"${prefix}{self.field[1:]}", self.message)
        return ValidationError(f"{prefix}.{self.field}", self.message)


class KeyFormatError(MalformedError):
    """A key string or key file is malformed or cannot be decrypted."""


class VerificationError(LedgerError):
    """Well-formed input that does not verify.

    ``index`` is the record index the failure concerns, when it has one.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class BadSignatureError(VerificationError):
    """A signature by a known key does not verify."""


class UntrustedKeyError(VerificationError):
    """Data is signed only by keys the verifier does not trust."""


class ProofError(VerificationError):
    """A Merkle proof has the wrong shape for its index and sizes."""


class RootMismatchError(ProofError):
    """A proof or a recomputation gives a different root than the one expected.

    ``expected`` is the trusted root, ``computed`` what the evidence yields.
    """

    def __init__(self, message: str, expected: bytes, computed: bytes) -> None:
        super().__init__(f"{message}: expected {expected.hex()}, computed {computed.hex()}")
        self.expected = expected
        self.computed = computed


class ChainBreakError(VerificationError):
    """A record's link to the previous record's signed content is wrong."""


class InconsistentCheckpointError(VerificationError):
    """Two checkpoints of the same log cannot both be true (a fork or split view)."""


class RollbackError(VerificationError):
    """A checkpoint is older than one already seen."""


class DuplicateEventError(LedgerError):
    """An event with this ``event_id`` is already in the ledger."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event_id {event_id!r} is already in the ledger")
        self.event_id = event_id


class LineError(LedgerError):
    """A line of JSON Lines input was refused: malformed, invalid, too long or a duplicate.

    ``line`` is its number, counting from 1 (blank lines count). The lines
    before it are appended; nothing from it on is. The underlying error (a
    :class:`ValidationError`, a :class:`DuplicateEventError`, ...) is the cause.
    """

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class ConflictError(LedgerError):
    """A state changed under the caller (for example a witness's stored size)."""


class StorageError(LedgerError):
    """The ledger file cannot be opened, read or written as required."""


# -- malformed input, by where it was found ------------------------------------------


class MalformedRecordError(MalformedError):
    """A record in the bundle is not a well-formed envelope or event; ``index`` names it."""

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(message)
        self.index = index


class OldSizeTooLargeError(MalformedError):
    """The request's ``old`` is larger than the checkpoint's size (the protocol's 400)."""


# -- what the owner's verifier finds ----------------------------------------------------


class DuplicateRecordError(VerificationError):
    """Two records in the bundle carry the same ``event_id``; ``index`` is the later one."""


class VerifyInputError(LedgerError):
    """The verification could not run: the bundle file, a trusted checkpoint or the
    state is missing or unusable. Nothing was learned about the ledger (exit code 2).
    """


# -- what the release gate refuses -----------------------------------------------------


class QuorumNotMetError(VerificationError):
    """The receipt's checkpoint lacks the policy's witness quorum."""


class NotAReleaseError(VerificationError):
    """The record does not hand footage to someone outside owner and vendor.

    Its action must be one of ``records.HANDOVER_ACTIONS`` and it must be a
    disclosure by :func:`records.is_disclosure`, the definition the owner's
    report uses, so nothing the gate lets out is missing from that report.
    """


class RecipientMismatchError(VerificationError):
    """The record names another recipient than the one about to receive the footage."""


class StaleRecordError(VerificationError):
    """The record was logged too long before ``now`` (or is dated after it).

    ``age`` is how many seconds before ``now`` the record was logged (negative
    when it is dated after ``now``).
    """

    def __init__(self, message: str, *, age: int, index: int | None = None) -> None:
        super().__init__(message, index=index)
        self.age = age


class ReceiptAlreadyUsedError(VerificationError):
    """The gate has already released footage under this record once."""


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


# -- what a witness refuses (each maps to a C2SP tlog-witness status) ------------------


class UnknownOriginError(UntrustedKeyError):
    """The witness does not follow the log the checkpoint names (the protocol's 404)."""


class SizeWentBackwardsError(RollbackError):
    """A checkpoint is smaller than the one already held (by a witness, or in the owner's state).

    ``current_size`` is the size held; ``held_as`` names what holds it.
    """

    def __init__(
        self,
        origin: str,
        size: int,
        current_size: int,
        *,
        held_as: str = "the checkpoint the witness already cosigned",
    ) -> None:
        super().__init__(
            f"rollback: a checkpoint of size {size} for {origin} is older than {held_as},"
            f" of size {current_size} (records were removed, or a stale copy was sent)"
        )
        self.origin = origin
        self.size = size
        self.current_size = current_size


class StaleOldSizeError(ConflictError):
    """The request's ``old`` is not the size last cosigned (the protocol's 409).

    ``current_size`` is the size the witness holds; retry from it.
    """

    def __init__(self, origin: str, old_size: int, current_size: int) -> None:
        super().__init__(
            f"stale old size {old_size} for {origin}: the witness last cosigned size {current_size}"
        )
        self.origin = origin
        self.old_size = old_size
        self.current_size = current_size


class NotPublishedError(StorageError):
    """A published log (C2SP tlog-tiles) lacks a file: a 404, or no such file in its directory."""
