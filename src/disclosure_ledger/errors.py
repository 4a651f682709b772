"""The exception tree.

Everything the library raises on purpose derives from :class:`LedgerError`, in
three families: :class:`MalformedError` (input that is not well-formed: wrong
length, bad encoding, bad field), :class:`VerificationError` (well-formed input
that is false: a bad signature, a broken chain, a root that does not match) and
:class:`StorageError` (the ledger file or its surroundings). The CLI maps the
families to exit codes and one line of text.
"""

from __future__ import annotations

__all__ = [
    "BadSignatureError",
    "ChainBreakError",
    "ConflictError",
    "DuplicateEventError",
    "InconsistentCheckpointError",
    "KeyFormatError",
    "LedgerError",
    "LineError",
    "MalformedError",
    "ProofError",
    "RollbackError",
    "RootMismatchError",
    "StorageError",
    "UntrustedKeyError",
    "ValidationError",
    "VerificationError",
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
