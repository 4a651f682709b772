"""Split-view evidence: two signed checkpoints of one log that cannot both be true.

This module owns the evidence file and the check that turns it into proof of a
log's misbehaviour for anyone who holds the log's public key. It does no I/O
except :func:`write_evidence_file`, and reads no clock.

A log misbehaves when it signs two checkpoints that no single append-only
history explains. Two kinds of evidence prove that, and nothing weaker is
accepted (see docs/decisions/0003-split-view-evidence.md for why):

* **Same size, different roots.** Both checkpoints verify under the log key;
  one tree cannot have two roots.
* **A different tree at the smaller size.** Checkpoints of sizes ``m < n``,
  plus a consistency proof from ``m`` to ``n`` in *self-contained* form (the
  RFC 9162 proof, with the hash of the subtree ``[0, m)`` as its first element
  when ``m`` is a power of two, where RFC 9162 takes it from the verifier's own
  old root). Run through the RFC 9162 algorithm it yields two roots ``(fr,
  sr)``. The evidence proves misbehaviour exactly when ``sr`` equals the signed
  root at ``n`` and ``fr`` differs from the signed root at ``m``: hashes that
  fold to the signed root at ``n`` commit (by SHA-256's collision resistance)
  to the tree of ``n`` leaves, and ``fr`` is that tree's root over its first
  ``m`` leaves. A proof that does not reach the signed root at ``n`` proves
  nothing, because anyone can write down wrong hashes.
* A checkpoint of size 0 whose root is not ``SHA-256("")`` is false on its own.

File format (UTF-8; every count a canonical decimal)::

    disclosure-ledger/split-view-evidence/v1
    checkpoint <L1>
    <exactly L1 bytes: the signed note of the smaller (or equal) size>
    checkpoint <L2>
    <exactly L2 bytes: the other signed note>
    proof <k>
    <k lines: base64 hashes of the self-contained consistency proof>

The notes are length-framed because they contain blank lines of their own.
``k`` is 0 for the same-size kind. Nothing may follow the last proof line. A
later version gets a new header line; readers refuse headers they do not know.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from disclosure_ledger._core import merkle
from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    parse_decimal,
    peek_checkpoint,
)
from disclosure_ledger._core.merkle import EMPTY_ROOT, HASH_SIZE
from disclosure_ledger._core.notes import MAX_NOTE_SIZE, Verifier, b64decode_strict, b64encode
from disclosure_ledger._fsutil import atomic_file
from disclosure_ledger.errors import (
    InconsistentCheckpointError,
    MalformedError,
    ProofError,
    StorageError,
    VerificationError,
)

__all__ = [
    "EVIDENCE_HEADER",
    "KIND_BAD_EMPTY_ROOT",
    "KIND_NOT_AN_EXTENSION",
    "KIND_SAME_SIZE_FORK",
    "Evidence",
    "Misbehaviour",
    "NotEvidenceError",
    "check_evidence",
    "detect_split_view",
    "format_evidence",
    "implied_roots",
    "make_evidence",
    "parse_evidence",
    "self_contained_proof",
    "write_evidence_file",
]

EVIDENCE_HEADER = "disclosure-ledger/split-view-evidence/v1"
KIND_SAME_SIZE_FORK = "same-size-different-roots"
KIND_NOT_AN_EXTENSION = "not-an-extension"
KIND_BAD_EMPTY_ROOT = "bad-empty-root"
_MAX_PROOF = 65  # 64 RFC hashes at most for int64 sizes, plus the explicit first one
_MAX_EVIDENCE = 2 * MAX_NOTE_SIZE + 16 * 1024


class SplitViewError(InconsistentCheckpointError):
    """The log signed a checkpoint that contradicts one held elsewhere: a split view.

    Raised by the owner's verifier and by a witness alike. ``evidence`` proves
    it to anyone who holds the log's key (:func:`check_evidence`);
    ``evidence_path`` is where it was written, or ``None`` if there was
    nowhere to write it or writing failed (the message then says why).
    """

    def __init__(
        self,
        message: str,
        evidence: Evidence,
        evidence_path: Path | None,
        *,
        index: int | None = None,
    ) -> None:
        super().__init__(message, index=index)
        self.evidence = evidence
        self.evidence_path = evidence_path


class NotEvidenceError(VerificationError):
    """The evidence is well-formed and signed, but proves no misbehaviour."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two signed checkpoint notes of one log, smaller size first, and a proof.

    ``proof`` is the self-contained consistency proof from the first size to
    the second (see the module docstring); empty when the sizes are equal.
    """

    first: str
    second: str
    proof: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        """Check that both notes parse and the proof hashes are 32 bytes.

        Raises:
            MalformedError: if a note or a hash is malformed, or the notes are
                out of order.
        """
        if not isinstance(self.first, str) or not isinstance(self.second, str):
            raise MalformedError("evidence checkpoints must be text")
        a = peek_checkpoint(self.first)
        b = peek_checkpoint(self.second)
        if a.size > b.size:
            raise MalformedError("evidence must hold the smaller checkpoint first")
        if len(self.proof) > _MAX_PROOF:
            raise MalformedError("evidence proof is too long")
        for h in self.proof:
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise MalformedError(f"evidence proof hashes must be {HASH_SIZE} bytes")


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """What checked evidence proves: ``kind`` (one of the ``KIND_*`` names) and the trees.

    For :data:`KIND_NOT_AN_EXTENSION`, ``implied_root`` is the root at
    ``first_size`` that the tree signed at ``second_size`` commits to.
    """

    kind: str
    origin: str
    first_size: int
    first_root: bytes
    second_size: int
    second_root: bytes
    implied_root: bytes | None
    description: str


def _misbehaviour(
    kind: str, a: Checkpoint, b: Checkpoint, implied_root: bytes | None, description: str
) -> Misbehaviour:
    return Misbehaviour(kind, a.origin, a.size, a.root, b.size, b.root, implied_root, description)


def self_contained_proof(
    old_size: int, proof: Sequence[bytes], old_subtree_root: bytes | None
) -> tuple[bytes, ...]:
    """Return the self-contained form of an RFC 9162 consistency proof from ``old_size``.

    When ``old_size`` is a power of two, RFC 9162 takes the proof's first hash
    from the verifier's own old root; the self-contained form puts the new
    tree's hash of leaves ``[0, old_size)`` (``old_subtree_root``) in front.
    Otherwise the proof is returned as it is.

    Raises:
        MalformedError: if ``old_size`` is a power of two and
            ``old_subtree_root`` is missing or not 32 bytes, or the size is not positive.
    """
    if not isinstance(old_size, int) or old_size <= 0:
        raise MalformedError("old size must be positive")
    if old_size & (old_size - 1):
        return tuple(proof)
    if not isinstance(old_subtree_root, bytes) or len(old_subtree_root) != HASH_SIZE:
        raise MalformedError(
            f"old size {old_size} is a power of two: the subtree root [0, {old_size}) is needed"
        )
    return (old_subtree_root, *proof)


def implied_roots(old_size: int, new_size: int, proof: Sequence[bytes]) -> tuple[bytes, bytes]:
    """Return ``(fr, sr)``: the old and new roots a self-contained proof implies.

    This is the RFC 9162 §2.1.4.2 computation with the first hash given
    explicitly (see :func:`self_contained_proof`). If ``sr`` is a signed root
    of ``new_size``, ``fr`` is that tree's root over its first ``old_size`` leaves.

    Raises:
        ProofError: if ``0 < old_size < new_size`` does not hold or the proof
            has the wrong length for the sizes.
        MalformedError: if a hash is not 32 bytes.
    """
    if not (isinstance(old_size, int) and isinstance(new_size, int) and 0 < old_size < new_size):
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    for h in proof:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise MalformedError(f"proof hashes must be {HASH_SIZE} bytes")
    fr, sr, _ = merkle.consistency_roots_from_items(old_size, new_size, proof)
    return fr, sr


def make_evidence(note_a: str, note_b: str, proof: Sequence[bytes] = ()) -> Evidence:
    """Return evidence holding two signed checkpoint notes, ordered by size.

    ``proof`` must be the self-contained consistency proof from the smaller
    size to the larger one (empty for equal sizes).

    Raises:
        MalformedError: if a note or a proof hash is malformed.
    """
    a, b = peek_checkpoint(note_a), peek_checkpoint(note_b)
    if a.size > b.size:
        note_a, note_b = note_b, note_a
    return Evidence(note_a, note_b, tuple(proof))


def format_evidence(evidence: Evidence) -> str:
    """Return the evidence file text (see the module docstring for the exact bytes).

    Raises:
        Nothing: pure formatting; :class:`Evidence` checked the notes and hashes when built.
    """
    parts = [EVIDENCE_HEADER + "\n"]
    for note in (evidence.first, evidence.second):
        parts.append(f"checkpoint {len(note.encode('utf-8'))}\n")
        parts.append(note)
    parts.append(f"proof {len(evidence.proof)}\n")
    parts.extend(b64encode(h) + "\n" for h in evidence.proof)
    return "".join(parts)


def _take_line(data: bytes, pos: int, what: str) -> tuple[str, int]:
    end = data.find(b"\n", pos)
    if end < 0:
        raise MalformedError(f"evidence: missing {what} line")
    try:
        return data[pos:end].decode("ascii"), end + 1
    except UnicodeDecodeError as err:
        raise MalformedError(f"evidence: {what} line is not ASCII") from err


def _take_counted(line: str, keyword: str) -> int:
    if not line.startswith(keyword + " "):
        raise MalformedError(f"evidence: expected a '{keyword} N' line")
    return parse_decimal(line[len(keyword) + 1 :], f"evidence {keyword} count")


def parse_evidence(text: str | bytes) -> Evidence:
    """Parse an evidence file.

    Raises:
        MalformedError: if the header, a length, a note, a proof line is
            malformed, or anything follows the last proof line.
    """
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(data) > _MAX_EVIDENCE:
        raise MalformedError("evidence file is too large")
    if not data.strip():
        raise MalformedError("the evidence file is empty")
    header, pos = _take_line(data, 0, "header")
    if header != EVIDENCE_HEADER:
        raise MalformedError(f"evidence must start with {EVIDENCE_HEADER}")
    notes: list[str] = []
    for _ in range(2):
        line, pos = _take_line(data, pos, "checkpoint")
        length = _take_counted(line, "checkpoint")
        if length > MAX_NOTE_SIZE or pos + length > len(data):
            raise MalformedError("evidence: checkpoint length runs past the end")
        try:
            notes.append(data[pos : pos + length].decode("utf-8"))
        except UnicodeDecodeError as err:
            raise MalformedError("evidence: checkpoint is not UTF-8") from err
        pos += length
    line, pos = _take_line(data, pos, "proof")
    count = _take_counted(line, "proof")
    if count > _MAX_PROOF:
        raise MalformedError("evidence proof is too long")
    proof: list[bytes] = []
    for _ in range(count):
        line, pos = _take_line(data, pos, "proof hash")
        raw = b64decode_strict(line, "evidence proof hash")
        if len(raw) != HASH_SIZE:
            raise MalformedError(f"evidence proof hashes must be {HASH_SIZE} bytes")
        proof.append(raw)
    if pos != len(data):
        raise MalformedError("evidence: unexpected data after the proof")
    return Evidence(notes[0], notes[1], tuple(proof))


def _open(note: str, log_key: Verifier, which: str) -> SignedCheckpoint:
    try:
        return open_checkpoint(note, log_key)
    except VerificationError as err:
        raise type(err)(f"evidence {which} checkpoint: {err}") from err


def check_evidence(evidence: Evidence | str | bytes, log_key: Verifier) -> Misbehaviour:
    """Check evidence against the log's key; return the misbehaviour it proves.

    Both checkpoints must be signed by ``log_key`` (with its name as origin).

    Raises:
        MalformedError: if the evidence is malformed.
        BadSignatureError, UntrustedKeyError: if a checkpoint is not validly
            signed by ``log_key``.
        NotEvidenceError: if the checkpoints are consistent, or the proof does
            not reach the signed root of the larger checkpoint (which proves
            nothing), or the proof is missing or has the wrong shape.
    """
    ev = evidence if isinstance(evidence, Evidence) else parse_evidence(evidence)
    a = _open(ev.first, log_key, "first").checkpoint
    b = _open(ev.second, log_key, "second").checkpoint
    origin = a.origin

    for cp in (a, b):
        if cp.size == 0 and cp.root != EMPTY_ROOT:
            return _misbehaviour(
                KIND_BAD_EMPTY_ROOT,
                a,
                b,
                None,
                f"log {origin} signed a checkpoint of size 0 whose root {cp.root.hex()} "
                "is not the empty tree's root",
            )
    if a.size == b.size:
        if ev.proof:
            raise NotEvidenceError("evidence for equal sizes must carry no proof")
        if a.root == b.root:
            raise NotEvidenceError(
                f"both checkpoints of size {a.size} have the same root: nothing is proven"
            )
        return _misbehaviour(
            KIND_SAME_SIZE_FORK,
            a,
            b,
            None,
            f"log {origin} signed two different roots for size {a.size}: "
            f"{a.root.hex()} and {b.root.hex()}",
        )
    if a.size == 0:
        raise NotEvidenceError("the empty tree is consistent with every tree: nothing is proven")
    if not ev.proof:
        raise NotEvidenceError(
            f"checkpoints of sizes {a.size} and {b.size} need a consistency proof to prove anything"
        )
    try:
        fr, sr = implied_roots(a.size, b.size, ev.proof)
    except ProofError as err:
        raise NotEvidenceError(
            f"the proof has the wrong shape, so it proves nothing: {err}"
        ) from err
    if sr != b.root:
        raise NotEvidenceError(
            f"the proof does not lead to the signed root of size {b.size}, so it proves nothing"
        )
    if fr == a.root:
        raise NotEvidenceError(
            f"the checkpoints of sizes {a.size} and {b.size} are consistent: nothing is proven"
        )
    return _misbehaviour(
        KIND_NOT_AN_EXTENSION,
        a,
        b,
        fr,
        f"log {origin} signed size {a.size} with root {a.root.hex()}, but its tree of size "
        f"{b.size} has root {fr.hex()} over its first {a.size} leaves: "
        "the larger tree does not extend the smaller one",
    )


def detect_split_view(
    older_note: str,
    newer_note: str,
    proof: Sequence[bytes],
    log_key: Verifier,
    *,
    old_subtree_root: bytes | None = None,
) -> Evidence | None:
    """Return evidence if two checkpoints and an RFC 9162 proof between them prove a split view.

    ``proof`` is in RFC form (as in a witness request); ``old_subtree_root``
    is the larger tree's hash of the first ``m`` leaves, needed only when the
    smaller size ``m`` is a power of two (without it, that case cannot be
    proven and ``None`` is returned). Returns ``None`` whenever the inputs
    prove nothing, including a proof that is simply wrong.

    Raises:
        MalformedError: if a note is malformed.
    """
    a, b = peek_checkpoint(older_note), peek_checkpoint(newer_note)
    if a.size > b.size:
        older_note, newer_note, a, b = newer_note, older_note, b, a
    if a.size in (b.size, 0):
        ev = Evidence(older_note, newer_note, ())
    else:
        if a.size & (a.size - 1) == 0 and old_subtree_root is None:
            return None
        try:
            ev = Evidence(
                older_note, newer_note, self_contained_proof(a.size, proof, old_subtree_root)
            )
        except MalformedError:
            return None
    try:
        check_evidence(ev, log_key)
    except (VerificationError, MalformedError):
        return None
    return ev


def write_evidence_file(directory: str | os.PathLike[str], evidence: Evidence, stem: str) -> Path:
    """Write ``evidence`` to ``directory/<stem>.evidence`` atomically and return the path.

    An existing file of that name gets a numeric suffix rather than being
    overwritten: evidence is never destroyed.

    Raises:
        StorageError: if the directory cannot be created or the file written.
    """
    d = Path(directory)
    data = format_evidence(evidence).encode("utf-8")
    try:
        d.mkdir(parents=True, exist_ok=True)
        n = 0
        while True:
            path = d / (f"{stem}.evidence" if n == 0 else f"{stem}-{n}.evidence")
            try:
                with atomic_file(path, overwrite=False) as fh:
                    fh.write(data)
            except FileExistsError:
                n += 1
                continue
            return path
    except OSError as err:
        raise StorageError(f"{d}: cannot write evidence: {err.strerror or err}") from err
