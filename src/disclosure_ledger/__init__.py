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
from disclosure_ledger._core.evidence import (
    Evidence,
    SplitViewError,
    check_evidence,
    format_evidence,
    make_evidence,
    parse_evidence,
)
from disclosure_ledger._core.notes import (
    KEY_TYPE_COSIGNATURE,
    KEY_TYPE_ED25519,
    KEY_TYPE_MLDSA44_COSIGNATURE,
    Signer,
    Verifier,
    generate_signer,
    parse_signer,
    parse_verifier,
)
from disclosure_ledger._core.policy import Policy, parse_policy
from disclosure_ledger._core.records import Action, ActorKind, Clip, Event, LegalBasis, Party
from disclosure_ledger._log.committer import AppendReceipt
from disclosure_ledger._log.database import LedgerDatabase
from disclosure_ledger._log.export import ExportSummary, export_ledger
from disclosure_ledger._log.fsck import CheckReport
from disclosure_ledger._log.index import Record
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._log.pipeline import AppendSummary, append_jsonl
from disclosure_ledger._log.publish import PublishSummary, publication, publish
from disclosure_ledger._log.tilereader import TileLog, open_source
from disclosure_ledger._store.base import Store
from disclosure_ledger._verify.gate import (
    FileGateState,
    GateState,
    MemoryGateState,
    ReleaseGate,
    VerifiedRecord,
    verify_record_receipt,
)
from disclosure_ledger._verify.report import render_json, render_text
from disclosure_ledger._verify.state import DirectoryState, MemoryState, StateStore
from disclosure_ledger._verify.tiles import verify_published
from disclosure_ledger._verify.verifier import Report, verify
from disclosure_ledger._witness.client import (
    CommandWitness,
    HttpWitness,
    LocalWitness,
    WitnessOutcome,
    collect_cosignatures,
)
from disclosure_ledger._witness.cosigner import Cosigner
from disclosure_ledger._witness.server import WitnessServer
from disclosure_ledger._witness.witness import Witness
from disclosure_ledger.errors import (
    BadSignatureError,
    ChainBreakError,
    ConflictError,
    DuplicateEventError,
    DuplicateRecordError,
    FootageNotNamedError,
    InconsistentCheckpointError,
    KeyFormatError,
    LedgerError,
    MalformedError,
    MalformedRecordError,
    NotAReleaseError,
    NotPublishedError,
    OldSizeTooLargeError,
    ProofError,
    QuorumNotMetError,
    ReceiptAlreadyUsedError,
    RecipientMismatchError,
    RecordMismatchError,
    RollbackError,
    RootMismatchError,
    SizeWentBackwardsError,
    StaleCheckpointError,
    StaleOldSizeError,
    StaleRecordError,
    StorageError,
    UnknownOriginError,
    UntrustedKeyError,
    ValidationError,
    VerificationError,
    VerifyInputError,
)
from disclosure_ledger.keys import derive_log_key

__all__ = [
    "KEY_TYPE_COSIGNATURE",
    "KEY_TYPE_ED25519",
    "KEY_TYPE_MLDSA44_COSIGNATURE",
    "Action",
    "ActorKind",
    "AppendReceipt",
    "AppendSummary",
    "BadSignatureError",
    "ChainBreakError",
    "CheckReport",
    "Checkpoint",
    "Clip",
    "CommandWitness",
    "ConflictError",
    "Cosigner",
    "DirectoryState",
    "DuplicateEventError",
    "DuplicateRecordError",
    "Event",
    "Evidence",
    "ExportSummary",
    "FileGateState",
    "FootageNotNamedError",
    "GateState",
    "HttpWitness",
    "InconsistentCheckpointError",
    "KeyFormatError",
    "Ledger",
    "LedgerDatabase",
    "LedgerError",
    "LegalBasis",
    "LocalWitness",
    "MalformedError",
    "MalformedRecordError",
    "MemoryGateState",
    "MemoryState",
    "NotAReleaseError",
    "NotPublishedError",
    "OldSizeTooLargeError",
    "Party",
    "Policy",
    "ProofError",
    "PublishSummary",
    "QuorumNotMetError",
    "Receipt",
    "ReceiptAlreadyUsedError",
    "RecipientMismatchError",
    "Record",
    "RecordMismatchError",
    "ReleaseGate",
    "Report",
    "RollbackError",
    "RootMismatchError",
    "SignedCheckpoint",
    "Signer",
    "SizeWentBackwardsError",
    "SplitViewError",
    "StaleCheckpointError",
    "StaleOldSizeError",
    "StaleRecordError",
    "StateStore",
    "StorageError",
    "Store",
    "TileLog",
    "UnknownOriginError",
    "UntrustedKeyError",
    "ValidationError",
    "VerificationError",
    "VerifiedRecord",
    "Verifier",
    "VerifyInputError",
    "Witness",
    "WitnessOutcome",
    "WitnessRequest",
    "WitnessServer",
    "append_jsonl",
    "check_evidence",
    "collect_cosignatures",
    "derive_log_key",
    "export_ledger",
    "format_checkpoint",
    "format_evidence",
    "format_receipt",
    "format_witness_request",
    "generate_signer",
    "make_evidence",
    "open_checkpoint",
    "open_source",
    "parse_checkpoint",
    "parse_evidence",
    "parse_policy",
    "parse_receipt",
    "parse_signer",
    "parse_verifier",
    "parse_witness_request",
    "publication",
    "publish",
    "render_json",
    "render_text",
    "sign_checkpoint",
    "verify",
    "verify_published",
    "verify_receipt",
    "verify_record_receipt",
]
