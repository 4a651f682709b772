"""disclosure_ledger: a signed, hash-chained, Merkle-proven ledger of footage access.

Every access to security-camera footage becomes a record signed by its writer,
chained to the record before it and committed into an RFC 6962 Merkle tree whose
checkpoints are C2SP signed notes. Owners verify an exported ledger offline with
nothing but this library and the keys they trust.
"""

from __future__ import annotations

from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    Receipt,
    SignedCheckpoint,
    WitnessRequest,
    format_checkpoint,
    format_receipt,
    format_witness_request,
    open_checkpoint,
    parse_checkpoint,
    parse_receipt,
    parse_witness_request,
    sign_checkpoint,
    verify_receipt,
)
from disclosure_ledger._core.notes import (
    Signer,
    Verifier,
    generate_signer,
    parse_signer,
    parse_verifier,
)
from disclosure_ledger._core.policy import Policy, parse_policy
from disclosure_ledger._core.records import Action, ActorKind, Clip, Event, LegalBasis, Party
from disclosure_ledger._log.ledger import AppendReceipt, CheckReport, Ledger, Record
from disclosure_ledger._verify.gate import ReleaseGate, VerifiedRecord, verify_record_receipt
from disclosure_ledger._verify.verifier import Report, verify
from disclosure_ledger._witness.witness import Witness
from disclosure_ledger.errors import (
    BadSignatureError,
    ChainBreakError,
    ConflictError,
    DuplicateEventError,
    InconsistentCheckpointError,
    KeyFormatError,
    LedgerError,
    MalformedError,
    ProofError,
    RollbackError,
    RootMismatchError,
    StorageError,
    UntrustedKeyError,
    ValidationError,
    VerificationError,
)

__all__ = [
    "Action",
    "ActorKind",
    "AppendReceipt",
    "BadSignatureError",
    "ChainBreakError",
    "CheckReport",
    "Checkpoint",
    "Clip",
    "ConflictError",
    "DuplicateEventError",
    "Event",
    "InconsistentCheckpointError",
    "KeyFormatError",
    "Ledger",
    "LedgerError",
    "LegalBasis",
    "MalformedError",
    "Party",
    "Policy",
    "ProofError",
    "Receipt",
    "Record",
    "ReleaseGate",
    "Report",
    "RollbackError",
    "RootMismatchError",
    "SignedCheckpoint",
    "Signer",
    "StorageError",
    "UntrustedKeyError",
    "ValidationError",
    "VerificationError",
    "VerifiedRecord",
    "Verifier",
    "Witness",
    "WitnessRequest",
    "format_checkpoint",
    "format_receipt",
    "format_witness_request",
    "generate_signer",
    "open_checkpoint",
    "parse_checkpoint",
    "parse_policy",
    "parse_receipt",
    "parse_signer",
    "parse_verifier",
    "parse_witness_request",
    "sign_checkpoint",
    "verify",
    "verify_receipt",
    "verify_record_receipt",
]
