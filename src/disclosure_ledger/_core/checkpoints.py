"""C2SP checkpoints, cosignatures, tlog-proof receipts and tlog-witness requests.

This module owns the text formats that carry tree heads between parties. Each
format has a ``format_*`` / ``parse_*`` pair; parsing is strict (canonical
decimals, canonical base64, exact hash lengths, a size cap, nothing left over)
and verification takes trusted keys from the caller, never from the input.

Checkpoint body (C2SP tlog-checkpoint)::

    <origin>\\n<size, canonical decimal>\\n<base64 of the 32-byte root>\\n[<extension line>\\n]...

Receipt (C2SP tlog-proof)::

    c2sp.org/tlog-proof@v1\\n[extra <base64>\\n]index <N>\\n[<base64 hash>\\n]...
    \\n<signed checkpoint>

Witness add-checkpoint request body (C2SP tlog-witness)::

    old <N>\\n[<base64 hash>\\n]...\\n<signed checkpoint>
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from disclosure_ledger._core.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from disclosure_ledger._core.notes import (
    COSIGNATURE_TYPES,
    KEY_TYPE_COSIGNATURE,
    MAX_NOTE_SIZE,
    OpenedNote,
    Signer,
    Verifier,
    b64decode_strict,
    b64encode,
    open_note,
    parse_note,
    parse_signature_line,
    sign_note,
)
from disclosure_ledger.errors import MalformedError, UntrustedKeyError

__all__ = [
    "MAX_SIZE",
    "RECEIPT_HEADER",
    "Checkpoint",
    "Cosignature",
    "Receipt",
    "SignedCheckpoint",
    "VerifiedReceipt",
    "WitnessRequest",
    "add_signature_lines",
    "cosign_checkpoint",
    "format_checkpoint",
    "format_receipt",
    "format_witness_request",
    "open_checkpoint",
    "parse_checkpoint",
    "parse_decimal",
    "parse_receipt",
    "parse_witness_request",
    "peek_checkpoint",
    "sign_checkpoint",
    "verify_receipt",
]

RECEIPT_HEADER = "c2sp.org/tlog-proof@v1"
MAX_SIZE = (1 << 63) - 1
"""The largest tree size or index accepted (int64, as Go implementations use)."""
_MAX_PROOF_LINES = 64


def parse_decimal(text: str, what: str) -> int:
    """Parse a canonical non-negative decimal: ASCII digits, no sign, no leading zero.

    Raises:
        MalformedError: if ``text`` is not canonical or exceeds 2**63-1.
    """
    if not text or len(text) > 19 or not all("0" <= c <= "9" for c in text):
        raise MalformedError(f"{what} must be a decimal number")
    if len(text) > 1 and text[0] == "0":
        raise MalformedError(f"{what} must not have leading zeros")
    value = int(text)
    if value > MAX_SIZE:
        raise MalformedError(f"{what} is larger than 2**63-1")
    return value


def _check_count(value: object, what: str) -> None:
    # A size or index: an int (not a bool, which would format as "True") in int64.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SIZE:
        raise MalformedError(f"{what} must be an integer between 0 and 2**63-1")


def _check_hashes(hashes: object, what: str) -> None:
    # A tuple, so the frozen value stays hashable, of exact 32-byte hashes.
    if not isinstance(hashes, tuple):
        raise MalformedError(f"{what} must be a tuple of hashes")
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise MalformedError(f"{what} must be {HASH_SIZE}-byte hashes")


def _as_text(text: str | bytes, what: str) -> str:
    if isinstance(text, bytes | bytearray):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise MalformedError(f"{what} is not valid UTF-8") from err
    if not isinstance(text, str):
        raise MalformedError(f"{what} must be text")
    return text


def _hash_line(line: str, what: str) -> bytes:
    raw = b64decode_strict(line, what)
    if len(raw) != HASH_SIZE:
        raise MalformedError(f"{what} must be {HASH_SIZE} bytes")
    return raw


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: origin, size and root, with optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise MalformedError("checkpoint origin must be one non-empty line")
        if any(ord(c) < 0x20 for c in self.origin):
            raise MalformedError("checkpoint origin must not contain control characters")
        _check_count(self.size, "checkpoint size")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise MalformedError(f"checkpoint root must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise MalformedError("checkpoint extensions must be a tuple of lines")
        for ext in self.extensions:
            if not ext or "\n" in ext or any(ord(c) < 0x20 for c in ext):
                raise MalformedError("checkpoint extension lines must be non-empty single lines")

    @property
    def body(self) -> str:
        """The note text of this checkpoint (see :func:`format_checkpoint`)."""
        return format_checkpoint(self)


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """Return the checkpoint note text.

    ``<origin>\\n<size>\\n<base64 root>\\n`` followed by one line per extension.
    Later versions may add extension lines; readers keep but do not interpret them.

    Raises:
        Nothing: pure formatting; :class:`Checkpoint` checked its fields when it was built.
    """
    lines = [checkpoint.origin, str(checkpoint.size), b64encode(checkpoint.root)]
    lines.extend(checkpoint.extensions)
    return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text (the body, without signatures).

    Raises:
        MalformedError: if a line is missing, the size is not a canonical
            decimal, or the root is not canonical base64 of 32 bytes.
    """
    if not isinstance(text, str):
        raise MalformedError("checkpoint must be text")
    if len(text) > MAX_NOTE_SIZE:
        raise MalformedError("checkpoint is too large")
    if not text.endswith("\n"):
        raise MalformedError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedError("checkpoint needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    size = parse_decimal(size_text, "checkpoint size")
    root = _hash_line(root_text, "checkpoint root")
    return Checkpoint(origin, size, root, tuple(extensions))


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified witness cosignature: the witness key and its timestamp."""

    witness: Verifier
    timestamp: int
    line: str


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the cosignatures that did.

    ``note`` is the whole signed note as received, unknown lines included.
    """

    checkpoint: Checkpoint
    note: str
    log_key: Verifier
    cosignatures: tuple[Cosignature, ...]

    def cosigned_by(self, witnesses: Iterable[Verifier]) -> list[Cosignature]:
        """Return the cosignatures made by any of ``witnesses``, at most one per public key.

        A cosignature does not sign the witness's name, so one signature can be
        shown under two names (with each name's key ID); it is still one
        witness's, and only the first in the note is returned.

        Raises:
            Nothing: it filters cosignatures that already verified.
        """
        wanted = set(witnesses)
        seen: set[bytes] = set()
        out: list[Cosignature] = []
        for c in self.cosignatures:
            if c.witness in wanted and c.witness.public_key not in seen:
                seen.add(c.witness.public_key)
                out.append(c)
        return out


def sign_checkpoint(checkpoint: Checkpoint, log_signer: Signer) -> str:
    """Return the checkpoint as a note signed by the log key.

    Raises:
        MalformedError: if the log key is a cosignature key.
    """
    if log_signer.key_type == KEY_TYPE_COSIGNATURE:
        raise MalformedError("a checkpoint is signed by a log key, not a cosignature key")
    return sign_note(format_checkpoint(checkpoint), [log_signer])


def peek_checkpoint(note: bytes | str) -> Checkpoint:
    """Return the checkpoint inside a signed note WITHOUT verifying any signature.

    For choosing which key to verify with, or reporting what a refused note
    claims; never for deciding anything.

    Raises:
        MalformedError: if the note or the checkpoint is malformed.
    """
    return parse_checkpoint(parse_note(note).text)


def open_checkpoint(
    note: bytes | str,
    log_key: Verifier,
    witnesses: Iterable[Verifier] = (),
    *,
    origin: str | None = None,
) -> SignedCheckpoint:
    """Verify a signed checkpoint against a trusted log key (and optional witnesses).

    The log's signature is required. Cosignatures by ``witnesses`` are verified
    and returned; other lines are ignored. ``origin`` defaults to the log key's
    name, as for every ledger; pass it when a log's origin differs from its key
    name (sum.golang.org does).

    Raises:
        MalformedError: if the note or checkpoint is malformed.
        BadSignatureError: if a known key's signature does not verify.
        UntrustedKeyError: if the log key did not sign it.
        VerificationError: if the origin is not the expected one.
    """
    witness_list = [w for w in witnesses if w.key_type in COSIGNATURE_TYPES]
    opened: OpenedNote = open_note(note, [log_key, *witness_list])
    if opened.signed_by(log_key) is None:
        raise UntrustedKeyError(f"checkpoint is not signed by the log key {log_key.name}")
    checkpoint = parse_checkpoint(opened.text)
    expected = log_key.name if origin is None else origin
    if checkpoint.origin != expected:
        raise UntrustedKeyError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected {expected!r}"
        )
    cosigs = tuple(
        Cosignature(v.verifier, v.timestamp, v.signature.line)
        for v in opened.verified
        if v.timestamp is not None
    )
    text = note if isinstance(note, str) else bytes(note).decode("utf-8")
    return SignedCheckpoint(checkpoint, text, log_key, cosigs)


def cosign_checkpoint(checkpoint: Checkpoint, witness: Signer, timestamp: int) -> str:
    """Return a cosignature line for ``checkpoint``: ``cosignature/v1`` for an
    Ed25519 witness key (type 0x04), ``subtree/v1`` for an ML-DSA-44 one (0x06).

    Raises:
        MalformedError: if the key is not a cosignature key or the timestamp is
            out of range.
    """
    if witness.key_type not in COSIGNATURE_TYPES:
        raise MalformedError("cosignatures need a cosignature (type 0x04 or 0x06) key")
    return witness.signature_line(format_checkpoint(checkpoint), timestamp)


def add_signature_lines(note: str, lines: Iterable[str]) -> str:
    """Return ``note`` with more signature lines appended, skipping ones it already has.

    Raises:
        MalformedError: if the note or a line is malformed.
    """
    parsed = parse_note(note)
    present = {s.line for s in parsed.signatures}
    out = note
    for raw_line in lines:
        line = raw_line if raw_line.endswith("\n") else raw_line + "\n"
        if line in present:
            continue
        parse_signature_line(line)  # a malformed line is refused
        present.add(line)
        out += line
    parse_note(out)
    return out


def _split_header(text: str, what: str) -> tuple[list[str], str]:
    """Split ``header lines\\n\\nsigned note`` at the first blank line."""
    if len(text) > MAX_NOTE_SIZE + 64 * 1024:
        raise MalformedError(f"{what} is too large")
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise MalformedError(f"{what} has no blank line before the checkpoint")
    return head.split("\n"), note


@dataclass(frozen=True, slots=True)
class Receipt:
    """A C2SP tlog-proof: a leaf's index, its inclusion proof and the signed checkpoint.

    ``extra`` is opaque and unauthenticated by the format; this library puts the
    record's leaf bytes there, and :func:`verify_receipt` checks them against
    the proof, so they are authenticated in the end.
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        _check_count(self.index, "receipt index")
        _check_hashes(self.proof, "receipt proof")
        if self.extra is not None and not isinstance(self.extra, bytes):
            raise MalformedError("receipt extra must be bytes")
        parse_note(self.checkpoint)


def format_receipt(receipt: Receipt) -> str:
    """Return the tlog-proof text of ``receipt``.

    ``c2sp.org/tlog-proof@v1``, an optional ``extra <base64>`` line,
    ``index <N>``, one base64 proof hash per line (leaf's sibling first),
    a blank line, and the signed checkpoint verbatim.

    Raises:
        Nothing: pure formatting; :class:`Receipt` checked its fields when it was built.
    """
    lines = [RECEIPT_HEADER]
    if receipt.extra is not None:
        lines.append(f"extra {b64encode(receipt.extra)}")
    lines.append(f"index {receipt.index}")
    lines.extend(b64encode(h) for h in receipt.proof)
    return "\n".join(lines) + "\n\n" + receipt.checkpoint


def parse_receipt(text: str | bytes) -> Receipt:
    """Parse tlog-proof text.

    Raises:
        MalformedError: if the header, index, a proof line or the checkpoint
            note is malformed.
    """
    text = _as_text(text, "receipt")
    lines, note = _split_header(text, "receipt")
    if lines[0] != RECEIPT_HEADER:
        raise MalformedError(f"receipt must start with {RECEIPT_HEADER}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = b64decode_strict(lines[pos][len("extra ") :], "receipt extra")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise MalformedError("receipt needs an 'index N' line")
    index = parse_decimal(lines[pos][len("index ") :], "receipt index")
    proof_lines = lines[pos + 1 :]
    if len(proof_lines) > _MAX_PROOF_LINES:
        raise MalformedError("receipt proof is too long")
    proof = tuple(_hash_line(line, "receipt proof hash") for line in proof_lines)
    return Receipt(index, proof, note, extra)


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A receipt whose proof and checkpoint verified: the leaf is in the log."""

    index: int
    leaf: bytes | None
    leaf_hash: bytes
    checkpoint: SignedCheckpoint


def verify_receipt(
    receipt: Receipt,
    log_key: Verifier,
    witnesses: Iterable[Verifier] = (),
    *,
    leaf: bytes | None = None,
    leaf_hash_: bytes | None = None,
    origin: str | None = None,
) -> VerifiedReceipt:
    """Verify a receipt: the checkpoint's log signature and the leaf's inclusion.

    The leaf comes from ``leaf``, else ``leaf_hash_``, else the receipt's
    ``extra`` bytes (which the proof then authenticates).

    Raises:
        MalformedError: if there is no leaf to check or a part is malformed.
        VerificationError: (a subclass) if a signature, the origin or the
            inclusion proof does not verify.
    """
    signed = open_checkpoint(receipt.checkpoint, log_key, witnesses, origin=origin)
    data = leaf if leaf is not None else receipt.extra
    if leaf_hash_ is not None and data is None:
        lh = leaf_hash_
    elif data is not None:
        lh = leaf_hash(data)
        if leaf_hash_ is not None and leaf_hash_ != lh:
            raise MalformedError("leaf and leaf hash disagree")
    else:
        raise MalformedError("receipt has no extra data and no leaf was given")
    cp = signed.checkpoint
    verify_inclusion(lh, receipt.index, cp.size, receipt.proof, cp.root)
    return VerifiedReceipt(receipt.index, data, lh, signed)


@dataclass(frozen=True, slots=True)
class WitnessRequest:
    """A tlog-witness add-checkpoint request: the old size, a proof, the new checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def __post_init__(self) -> None:
        _check_count(self.old_size, "old size")
        _check_hashes(self.proof, "consistency proof")
        parse_note(self.checkpoint)


def format_witness_request(request: WitnessRequest) -> str:
    """Return the add-checkpoint body.

    ``old <N>``, one base64 consistency-proof hash per line, a blank line,
    and the signed checkpoint verbatim.

    Raises:
        Nothing: pure formatting; :class:`WitnessRequest` checked its fields when it was built.
    """
    lines = [f"old {request.old_size}"]
    lines.extend(b64encode(h) for h in request.proof)
    return "\n".join(lines) + "\n\n" + request.checkpoint


def parse_witness_request(text: str | bytes) -> WitnessRequest:
    """Parse an add-checkpoint body.

    Raises:
        MalformedError: if the ``old`` line, a proof line or the checkpoint
            note is malformed.
    """
    text = _as_text(text, "witness request")
    lines, note = _split_header(text, "witness request")
    if not lines[0].startswith("old "):
        raise MalformedError("witness request must start with 'old N'")
    old = parse_decimal(lines[0][len("old ") :], "old size")
    if len(lines) - 1 > _MAX_PROOF_LINES:
        raise MalformedError("consistency proof is too long")
    proof = tuple(_hash_line(line, "consistency proof hash") for line in lines[1:])
    return WitnessRequest(old, proof, note)
