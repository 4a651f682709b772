"""Owner verification: check an export bundle offline, in bounded memory, and report on it.

This module owns the verifier and the owner's saved state. :func:`verify`
reads a bundle as a stream and trusts only what the owner supplies: the
policy's log, writer and witness keys, and an earlier checkpoint (given, or
saved in a state directory by an earlier run). It checks the framing, every
record's signature by a trusted writer, contiguous sequence numbers, every
chain link, that no ``event_id`` repeats, the Merkle root (recomputed with a
compact range) against a checkpoint signed by the log and cosigned by the
policy's quorum, and that checkpoint's consistency with the earlier one. A
failure raises the precise error (:class:`~.errors.ChainBreakError`,
:class:`~.errors.RootMismatchError`, :class:`~.errors.RollbackError`, ...)
with the record index where there is one; success returns a :class:`Report`.

Signatures are checked on a thread pool (``cryptography`` releases the GIL
while verifying); the main thread reads frames and does the work that must
happen in order. Memory is bounded: at most a few chunks of records are in
flight, duplicate ``event_id`` detection keeps an 8-byte keyed fingerprint per
record, and the report keeps counts and capped lists of the accesses by
others (every record is decoded and classified by :func:`records.access_class`;
an owner's own access leaves only counts behind).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from disclosure_ledger._core import records
from disclosure_ledger._core.bundle import BundleReader, Prelude, Readable
from disclosure_ledger._core.checkpoints import SignedCheckpoint, open_checkpoint, peek_checkpoint
from disclosure_ledger._core.evidence import (
    Evidence,
    SplitViewError,
    check_evidence,
    format_evidence,
    make_evidence,
    write_evidence_file,
)
from disclosure_ledger._core.merkle import (
    CompactRange,
    frontier_from_consistency,
    leaf_hash,
    verify_inclusion,
)
from disclosure_ledger._core.notes import (
    KEY_TYPE_COSIGNATURE,
    KEY_TYPE_ED25519,
    MAX_NOTE_SIZE,
    Verifier,
    parse_note,
    parse_verifier,
)
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._core.records import HEADER, access_class
from disclosure_ledger._fsutil import (
    atomic_file,
    check_not_writable_by_others,
    decode_utf8,
    origin_file,
    read_limited,
    write_atomic,
)
from disclosure_ledger.errors import (
    BadSignatureError,
    ChainBreakError,
    InconsistentCheckpointError,
    KeyFormatError,
    LedgerError,
    MalformedError,
    ProofError,
    RollbackError,
    RootMismatchError,
    UntrustedKeyError,
    VerificationError,
)

__all__ = [
    "DEFAULT_MAX_LISTED",
    "Disclosure",
    "DuplicateRecordError",
    "FootageRef",
    "MalformedRecordError",
    "Report",
    "SplitViewError",
    "VerifyInputError",
    "load_state",
    "save_state",
    "state_file",
    "verify",
]

DEFAULT_MAX_LISTED = 10_000
"""How many disclosures of each kind (without / with consent) a report lists in full."""
_CHUNK = 256
_CHUNK_BYTES = 1 << 20
_MAX_IN_FLIGHT = 6
_MAX_DISTINCT = 1000
_MAX_CLIPS = 16
_MAX_TEXT = 2000
_MAX_KEY_TEXT = 200
_HEADER_SIZE = records.HEADER_SIZE
_MIN_LEAF = records.HEADER_SIZE + records.SIGNATURE_SIZE
_OUTSIDE = records.AccessClass.OUTSIDE
_STAFF = records.AccessClass.VENDOR_STAFF
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OTHER = "(other)"
_NO_BASIS = b"(not stated)"
_NO_RECIPIENT = b"(no recipient)"
_NO_ORG = b"(no organization)"


class VerifyInputError(LedgerError):
    """The verification could not run: the bundle file, a trusted checkpoint or the
    state is missing or unusable. Nothing was learned about the ledger (exit code 2).
    """


class MalformedRecordError(MalformedError):
    """A record in the bundle is not a well-formed envelope or event; ``index`` names it."""

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(message)
        self.index = index


class DuplicateRecordError(VerificationError):
    """Two records in the bundle carry the same ``event_id``; ``index`` is the later one."""


# -- the report ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FootageRef:
    """A piece of footage a disclosure concerns (times as ``YYYY-MM-DDTHH:MM:SSZ``)."""

    clip_id: str
    sha256: str
    start: str
    end: str


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One access to footage by someone other than the owner, in full detail.

    ``access_class`` is :func:`records.access_class` (``outside``,
    ``vendor_staff`` or ``vendor_system``); an ``outside`` access is a
    disclosure. ``without_consent`` is :func:`records.is_without_consent`.
    Long texts are cut to 2000 characters and at most 16 clips are kept
    (``footage_count`` says how many the record names).
    """

    index: int
    event_id: str
    occurred_at: str
    camera_id: str
    action: str
    actor_kind: str
    actor_id: str | None
    actor_organization: str | None
    recipient_kind: str | None
    recipient_id: str | None
    recipient_organization: str | None
    legal_basis: str | None
    legal_reference: str | None
    justification: str | None
    consent: bool | None
    without_consent: bool
    owner_notified_at: str | None
    notification_deferred_until: str | None
    footage: tuple[FootageRef, ...]
    footage_count: int
    access_class: str = records.AccessClass.OUTSIDE.value

    @property
    def notification(self) -> str:
        """Whether and when the owner was told, in words."""
        if self.owner_notified_at is not None:
            return f"owner notified at {self.owner_notified_at}"
        if self.notification_deferred_until is not None:
            return f"notification deferred until {self.notification_deferred_until}"
        return "owner not notified"


@dataclass(frozen=True, slots=True)
class Report:
    """What a successful :func:`verify` found. Its existence is the verdict: verified.

    Counts are ``(name, count)`` pairs, largest first; a category with more
    than 1000 distinct names lumps the rest under ``(other)``.

    Every record is classified by :func:`records.access_class`, and every
    access by someone other than the owner is listed, in three sections:
    ``disclosures`` (outside parties: those without the owner's consent
    first, then the others), ``staff_accesses`` (the vendor's employees and
    contractors) and ``system_accesses`` (the vendor's automated systems),
    each in ledger order and capped at ``max_listed`` entries per list (per
    consent kind for disclosures). The ``*_count`` fields count them all, so
    the ``unlisted_*`` properties say how many the cap left out.
    ``system_totals`` counts vendor-system accesses by ``(system, action)``,
    every one of them, listed or not. ``consistency`` says what earlier
    checkpoints the ledger was shown consistent with.
    """

    origin: str
    size: int
    from_size: int
    root: bytes
    checkpoint: str
    log_key: str
    cosigners: tuple[str, ...]
    quorum: str
    first_occurred_at: str | None
    last_occurred_at: str | None
    first_logged_at: str | None
    last_logged_at: str | None
    actions: tuple[tuple[str, int], ...]
    legal_bases: tuple[tuple[str, int], ...]
    recipient_organizations: tuple[tuple[str, int], ...]
    writers: tuple[tuple[str, int], ...]
    disclosures: tuple[Disclosure, ...]
    disclosure_count: int
    without_consent_count: int
    consistency: tuple[str, ...]
    staff_accesses: tuple[Disclosure, ...] = ()
    staff_access_count: int = 0
    system_accesses: tuple[Disclosure, ...] = ()
    system_access_count: int = 0
    system_totals: tuple[tuple[str, str, int], ...] = ()
    max_listed: int = DEFAULT_MAX_LISTED
    state_saved: bool = False

    @property
    def verdict(self) -> str:
        """Always ``"verified"``: a failed verification raises instead."""
        return "verified"

    @property
    def record_count(self) -> int:
        """How many records the bundle held and the verifier checked."""
        return self.size - self.from_size

    @property
    def unlisted_disclosures(self) -> int:
        """Disclosures counted but not listed because of the cap."""
        return self.disclosure_count - len(self.disclosures)

    @property
    def unlisted_staff_accesses(self) -> int:
        """Vendor-staff accesses counted but not listed because of the cap."""
        return self.staff_access_count - len(self.staff_accesses)

    @property
    def unlisted_system_accesses(self) -> int:
        """Vendor-system accesses counted (in ``system_totals``) but not listed."""
        return self.system_access_count - len(self.system_accesses)


# -- the state directory -----------------------------------------------------------------


def state_file(state_dir: str | os.PathLike[str], origin: str) -> Path:
    """Return the file that holds the last verified checkpoint of ``origin``.

    Its name is the hex SHA-256 of the origin, so any origin makes a safe name.

    Raises:
        Nothing: a pure path computation that touches no file (an origin read from a
            checkpoint always encodes as UTF-8).
    """
    return origin_file(state_dir, origin)


def load_state(state_dir: str | os.PathLike[str], origin: str) -> str | None:
    """Return the saved checkpoint note of ``origin``, or ``None`` if there is none yet.

    The note is returned as text; :func:`verify` checks its signature.

    Raises:
        VerifyInputError: if the state directory or file cannot be read, is
            writable by others, or is not a text note.
    """
    path = state_file(state_dir, origin)
    if Path(state_dir).exists() and not Path(state_dir).is_dir():
        raise VerifyInputError(f"{state_dir}: the state path is not a directory")
    # Whoever can write the owner's state can roll it back, and with it the
    # rollback and fork checks it exists for.
    check_not_writable_by_others(Path(state_dir), "state directory", VerifyInputError)
    check_not_writable_by_others(path, "saved state", VerifyInputError)
    raw = read_limited(path, MAX_NOTE_SIZE, "saved state", VerifyInputError, missing_ok=True)
    return None if raw is None else decode_utf8(raw, path, "saved state", VerifyInputError)


def save_state(state_dir: str | os.PathLike[str], signed: SignedCheckpoint) -> bool:
    """Remember ``signed`` as the last verified checkpoint of its origin, atomically.

    The file is written beside its final name, fsynced and renamed over it,
    under an exclusive lock, so concurrent runs cannot interleave. The state
    never moves backwards: if a checkpoint at least as large is already saved,
    nothing changes. Returns whether the state was written.

    Raises:
        VerifyInputError: if the directory or file cannot be created or written.
    """
    directory = Path(state_dir)
    origin = signed.checkpoint.origin
    target = state_file(directory, origin)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise VerifyInputError(
            f"{directory}: cannot use the state directory: {err.strerror}"
        ) from err
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        current = load_state(directory, origin)
        if current is not None:
            with contextlib.suppress(LedgerError):
                size = peek_checkpoint(current).size
                if size >= signed.checkpoint.size:
                    return False
        try:
            write_atomic(target, signed.note.encode("utf-8"))
        except OSError as err:
            raise VerifyInputError(f"{target}: cannot save the state: {err.strerror}") from err
        return True
    finally:
        os.close(lock_fd)


# -- per-chunk work (runs on the pool) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    prefix: bytes
    writers: dict[int, tuple[tuple[Ed25519PublicKey, str], ...]]
    hints: dict[int, str]
    fingerprint_key: bytes


@dataclass(slots=True)
class _Chunk:
    leaf_hashes: list[bytes] = field(default_factory=list)
    fingerprints: list[int] = field(default_factory=list)
    actions: dict[bytes, int] = field(default_factory=dict)
    bases: dict[bytes, int] = field(default_factory=dict)
    orgs: dict[bytes, int] = field(default_factory=dict)
    writers: dict[str, int] = field(default_factory=dict)
    first_occurred: tuple[bytes, bytes] | None = None
    last_occurred: tuple[bytes, bytes] | None = None
    first_logged: int | None = None
    last_logged: int | None = None
    disclosures: list[Disclosure] = field(default_factory=list)
    staff: list[Disclosure] = field(default_factory=list)
    system: list[Disclosure] = field(default_factory=list)
    system_totals: dict[tuple[str, str], int] = field(default_factory=dict)


def _time_key(text: bytes) -> tuple[bytes, bytes]:
    # Canonical times omit a zero fraction, so compare seconds, then fraction.
    return (text[:19], text[19:-1])


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= _MAX_TEXT:
        return text
    return text[: _MAX_TEXT - 1] + "…"


def _disclosure(index: int, event: records.Event, cls: records.AccessClass) -> Disclosure:
    actor = event.actor
    recipient = event.recipient
    clips = tuple(
        FootageRef(
            c.clip_id, c.sha256.hex(), records.format_time(c.start), records.format_time(c.end)
        )
        for c in event.footage[:_MAX_CLIPS]
    )
    return Disclosure(
        index=index,
        event_id=event.event_id,
        occurred_at=records.format_time(event.occurred_at),
        camera_id=event.camera_id,
        action=event.action.value,
        actor_kind=actor.kind.value,
        actor_id=actor.id,
        actor_organization=actor.organization,
        recipient_kind=None if recipient is None else recipient.kind.value,
        recipient_id=None if recipient is None else recipient.id,
        recipient_organization=None if recipient is None else recipient.organization,
        legal_basis=None if event.legal_basis is None else event.legal_basis.value,
        legal_reference=event.legal_reference,
        justification=_cut(event.justification),
        consent=event.consent,
        without_consent=records.is_without_consent(event),
        owner_notified_at=None
        if event.owner_notified_at is None
        else records.format_time(event.owner_notified_at),
        notification_deferred_until=None
        if event.notification_deferred_until is None
        else records.format_time(event.notification_deferred_until),
        footage=clips,
        footage_count=len(event.footage),
        access_class=cls.value,
    )


def _system_name(actor: records.Party) -> str:
    """How a vendor system is named in the per-system totals."""
    return actor.id or actor.organization or "(unnamed system)"


def _decode(index: int, raw: bytes) -> records.Event:
    try:
        return records.decode_event(raw)
    except MalformedError as err:
        raise MalformedRecordError(str(err), index=index) from err


_Fields = tuple[bytes, bytes, bytes, bytes | None, bytes | None]
_T = TypeVar("_T", int, tuple[bytes, bytes])


def _event_fields(event: records.Event) -> _Fields:
    """Return event_id, action, occurred_at, legal basis and recipient organization, as bytes."""
    recipient_org: bytes | None = _NO_RECIPIENT
    if event.recipient is not None:
        o = event.recipient.organization
        recipient_org = None if o is None else o.encode()
    return (
        event.event_id.encode(),
        event.action.value.encode(),
        records.format_time(event.occurred_at).encode(),
        None if event.legal_basis is None else event.legal_basis.value.encode(),
        recipient_org,
    )


def _check_chunk(ctx: _Context, start: int, prev: bytes, leaves: list[bytes]) -> _Chunk:
    """Check records ``start, start+1, ...``: envelope, signature, seq, chain; summarise events.

    ``prev`` is the chain hash the first record must link to. Errors carry
    the record's index, so their messages do not repeat it.
    """
    out = _Chunk()
    blake = hashlib.blake2b
    chain_hash = records.chain_hash
    unpack = HEADER.unpack_from
    writers = ctx.writers
    prefix = ctx.prefix
    fkey = ctx.fingerprint_key
    actions, bases, orgs, writer_counts = out.actions, out.bases, out.orgs, out.writers
    leaf_hashes = out.leaf_hashes
    fingerprints = out.fingerprints
    first_logged = last_logged = -1
    first_occ: tuple[bytes, bytes] | None = None
    last_occ: tuple[bytes, bytes] | None = None
    for i, leaf in enumerate(leaves):
        index = start + i
        n = len(leaf)
        if n < _MIN_LEAF:
            raise MalformedRecordError("envelope is too short", index=index)
        version, seq, link, logged_at, key_id, elen = unpack(leaf)
        if version != records.ENVELOPE_VERSION:
            raise MalformedRecordError(f"unsupported envelope version {version}", index=index)
        if elen > records.MAX_EVENT_SIZE or n != _MIN_LEAF + elen:
            raise MalformedRecordError(
                "envelope length does not match its event length", index=index
            )
        if not 0 <= logged_at <= records.MAX_LOGGED_AT:
            raise MalformedRecordError(
                f"logged_at {logged_at} is outside 0..{records.MAX_LOGGED_AT}", index=index
            )
        keys = writers.get(key_id)
        if keys is None:
            hint = ctx.hints.get(key_id)
            named = f" (the file's hint names it {hint})" if hint else ""
            raise UntrustedKeyError(
                f"signed by key {key_id:08x}{named}, not a trusted writer", index=index
            )
        end = _HEADER_SIZE + elen
        content = leaf[:end]
        message = prefix + content
        signature = leaf[end:]
        signer = None
        for public, name in keys:
            try:
                public.verify(signature, message)
            except InvalidSignature:
                continue
            signer = name
            break
        if signer is None:
            raise BadSignatureError(f"the signature by {keys[0][1]} does not verify", index=index)
        if seq != index:
            raise ChainBreakError(
                f"carries sequence number {seq}: records are missing, duplicated or out of order",
                index=index,
            )
        if link != prev:
            raise ChainBreakError(f"does not link to record {index - 1}", index=index)
        prev = chain_hash(content)
        leaf_hashes.append(leaf_hash(leaf))
        writer_counts[signer] = writer_counts.get(signer, 0) + 1
        if first_logged < 0 or logged_at < first_logged:
            first_logged = logged_at
        last_logged = max(last_logged, logged_at)
        # Every event is decoded in full, and decode_event refuses any encoding
        # but the one canonical form (it re-encodes and compares): a signed
        # record cannot say one thing to the vendor's tools and another here.
        event = _decode(index, leaf[_HEADER_SIZE:end])
        event_id, action, occurred, basis, org = _event_fields(event)
        fingerprints.append(
            int.from_bytes(blake(event_id, digest_size=8, key=fkey).digest(), "big")
        )
        actions[action] = actions.get(action, 0) + 1
        basis = _NO_BASIS if basis is None else basis
        bases[basis] = bases.get(basis, 0) + 1
        org = _NO_ORG if not org else org[:_MAX_KEY_TEXT]
        orgs[org] = orgs.get(org, 0) + 1
        key = _time_key(occurred)
        if first_occ is None or key < first_occ:
            first_occ = key
        if last_occ is None or key > last_occ:
            last_occ = key
        cls = access_class(event)
        if cls is None:
            continue  # the owner's own access
        if cls is _OUTSIDE:
            out.disclosures.append(_disclosure(index, event, cls))
        elif cls is _STAFF:
            out.staff.append(_disclosure(index, event, cls))
        else:
            total = (_system_name(event.actor)[:_MAX_KEY_TEXT], event.action.value)
            out.system_totals[total] = out.system_totals.get(total, 0) + 1
            out.system.append(_disclosure(index, event, cls))
    out.first_occurred, out.last_occurred = first_occ, last_occ
    if leaves:
        out.first_logged, out.last_logged = first_logged, last_logged
    return out


def _chain_of(leaf: bytes) -> bytes:
    # The chain hash the next record must carry. A malformed leaf gives some
    # hash; its own chunk fails first, so the next chunk's mismatch never shows.
    elen = HEADER.unpack_from(leaf)[-1] if len(leaf) >= _HEADER_SIZE else 0
    return records.chain_hash(leaf[: _HEADER_SIZE + elen])


# -- the fingerprint set -----------------------------------------------------------------


class _FingerprintSet:
    """An open-addressing set of 64-bit fingerprints in one flat array (8 bytes a slot).

    A Python ``set`` of ints costs about 70 bytes an entry; this costs 16 at
    worst (load factor 1/2), so a million records need 16 MiB.
    """

    __slots__ = ("_count", "_mask", "_table")

    def __init__(self) -> None:
        self._mask = (1 << 16) - 1
        self._table = memoryview(bytearray(8 << 16)).cast("Q")
        self._count = 0

    def add(self, fp: int) -> bool:
        """Add ``fp``; return False if it was already present."""
        fp = fp or 1  # 0 marks an empty slot
        table = self._table
        mask = self._mask
        i = fp & mask
        while True:
            v = table[i]
            if v == 0:
                table[i] = fp
                self._count += 1
                if self._count * 2 > mask:
                    self._grow()
                return True
            if v == fp:
                return False
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self._table
        size = (self._mask + 1) * 2
        self._mask = mask = size - 1
        self._table = table = memoryview(bytearray(8 * size)).cast("Q")
        for v in old:
            if v:
                i = v & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = v
        old.release()


# -- split-view evidence -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _EvidenceSink:
    """Where evidence goes: an exact file (``file``), else a fresh name in ``directory``."""

    file: Path | None
    directory: Path | None


def evidence_stem(origin: str, first_size: int, second_size: int) -> str:
    """The default evidence file name (before a counter and ``.evidence``) for two sizes.

    Raises:
        Nothing: a pure name computation.
    """
    tag = hashlib.sha256(origin.encode("utf-8")).hexdigest()[:16]
    return f"split-view-{tag}-{first_size}-{second_size}"


def _write_evidence(sink: _EvidenceSink, ev: Evidence, stem: str) -> tuple[Path | None, str]:
    """Write ``ev`` without ever replacing a file; return the path and what to tell the owner."""
    try:
        if sink.file is not None:
            try:
                with atomic_file(sink.file, overwrite=False) as fh:
                    fh.write(format_evidence(ev).encode("utf-8"))
            except FileExistsError:
                path = write_evidence_file(sink.file.parent, ev, sink.file.name)
                return path, f"{sink.file} exists, so the evidence was written to {path}"
            return sink.file, f"evidence written to {sink.file}"
        if sink.directory is not None:
            path = write_evidence_file(sink.directory, ev, stem)
            return path, f"evidence written to {path}"
    except (OSError, LedgerError) as err:
        return None, f"the evidence could not be written: {err}"
    return None, "no evidence file was written (give --evidence FILE or --state DIR)"


def _split_view(
    sink: _EvidenceSink, message: str, index: int | None, a: str, b: str, *, log_key: Verifier
) -> SplitViewError:
    """The error for two signed notes that cannot both be true, with its evidence written."""
    ev = make_evidence(a, b)
    # The evidence must stand on its own; it always does for two sizes that
    # are equal, which is the only kind built here.
    check_evidence(ev, log_key)
    first, second = peek_checkpoint(ev.first), peek_checkpoint(ev.second)
    path, note = _write_evidence(sink, ev, evidence_stem(first.origin, first.size, second.size))
    return SplitViewError(f"{message}; {note}", ev, path, index=index)


# -- verification ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Anchor:
    """An earlier checkpoint the bundle must be consistent with, and where it came from."""

    source: str
    signed: SignedCheckpoint


def _open_bundle(
    bundle: str | os.PathLike[str] | Readable,
) -> contextlib.AbstractContextManager[Any]:
    if isinstance(bundle, str | os.PathLike):
        path = Path(bundle)
        try:
            if path.is_dir():
                raise VerifyInputError(f"{path}: is a directory, not a bundle file")
            return path.open("rb", buffering=1 << 20)
        except FileNotFoundError as err:
            raise VerifyInputError(f"{path}: no such bundle file") from err
        except OSError as err:
            raise VerifyInputError(f"{path}: cannot read the bundle: {err.strerror}") from err
    return contextlib.nullcontext(bundle)


def _open_anchor(note: str | bytes, source: str, log_key: Verifier, origin: str) -> _Anchor:
    try:
        signed = open_checkpoint(note, log_key, origin=origin)
    except LedgerError as err:
        raise VerifyInputError(
            f"the {source} does not verify under the log key {log_key.name}: {err}"
        ) from err
    return _Anchor(source, signed)


def _check_note_lines(
    note: str, trusted: Sequence[Verifier], hints: dict[tuple[str, int], Verifier], what: str
) -> None:
    """Refuse a signature line on a bundled note that no trusted or hinted key verifies.

    Lines by trusted keys were verified by :func:`open_checkpoint`. The rest
    are checked against the file's key hints: that proves only that the file
    is intact (hints are not trust), but it means no byte of a bundle goes unchecked.
    """
    known = {(v.name, v.key_id) for v in trusted}
    parsed = parse_note(note)
    for sig in parsed.signatures:
        ident = (sig.name, sig.key_id)
        if ident in known:
            continue
        hinted = hints.get(ident)
        if hinted is None:
            raise MalformedError(
                f"the {what} carries a signature by {sig.name} ({sig.key_id:08x}), a key that"
                " is neither trusted nor hinted in the bundle"
            )
        try:
            hinted.verify(parsed.text, sig.signature)
        except BadSignatureError as err:
            raise BadSignatureError(
                f"the {what}'s signature line by {sig.name} does not verify: the file is corrupt"
            ) from err


def _merge(total: dict[str, int], part: dict[bytes, int] | dict[str, int]) -> None:
    for raw_key, n in part.items():
        key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
        if key in total or len(total) < _MAX_DISTINCT:
            total[key] = total.get(key, 0) + n
        else:
            total[_OTHER] = total.get(_OTHER, 0) + n


def _ranked(table: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(table.items(), key=lambda kv: (-kv[1], kv[0])))


def _micros_text(micros: int | None) -> str | None:
    if micros is None:
        return None
    return records.format_time(_EPOCH + timedelta(microseconds=micros))


def _event_id_at(index: int, start: int, leaves: list[bytes]) -> str:
    leaf = leaves[index - start]
    with contextlib.suppress(LedgerError):
        return records.parse_envelope(leaf).event().event_id
    return "?"


class _Run:
    """The in-order half of one verification: compact range, fingerprints, totals."""

    def __init__(
        self,
        frontier: CompactRange,
        checks: list[_Anchor],
        max_listed: int,
        progress: Callable[[int, int], None] | None,
        total: int,
    ) -> None:
        self.range = frontier
        self.checks = sorted(checks, key=lambda a: a.signed.checkpoint.size)
        self.fingerprints = _FingerprintSet()
        self.actions: dict[str, int] = {}
        self.bases: dict[str, int] = {}
        self.orgs: dict[str, int] = {}
        self.writers: dict[str, int] = {}
        self.first_occurred: tuple[bytes, bytes] | None = None
        self.last_occurred: tuple[bytes, bytes] | None = None
        self.first_logged: int | None = None
        self.last_logged: int | None = None
        self.without_consent: list[Disclosure] = []
        self.with_consent: list[Disclosure] = []
        self.disclosure_count = 0
        self.without_consent_count = 0
        self.staff: list[Disclosure] = []
        self.staff_count = 0
        self.system: list[Disclosure] = []
        self.system_count = 0
        self.system_totals: dict[tuple[str, str], int] = {}
        self.max_listed = max_listed
        self.progress = progress
        self.total = total
        self.done = 0

    def absorb(self, start: int, leaves: list[bytes], chunk: _Chunk) -> None:
        hashes = chunk.leaf_hashes
        cr = self.range
        while self.checks and cr.size + len(hashes) >= self.checks[0].signed.checkpoint.size:
            anchor = self.checks.pop(0)
            want = anchor.signed.checkpoint
            k = want.size - cr.size
            cr.extend(hashes[:k])
            hashes = hashes[k:]
            got = cr.root()
            if got != want.root:
                raise InconsistentCheckpointError(
                    f"fork: the ledger's first {want.size} records do not make the root of the"
                    f" {anchor.source} of that size (the log has shown two histories)",
                    index=want.size - 1,
                )
        cr.extend(hashes)
        add = self.fingerprints.add
        for pos, fp in enumerate(chunk.fingerprints):
            if not add(fp):
                index = start + pos
                raise DuplicateRecordError(
                    f"repeats the event_id {_event_id_at(index, start, leaves)!r}"
                    " of an earlier record",
                    index=index,
                )
        _merge(self.actions, chunk.actions)
        _merge(self.bases, chunk.bases)
        _merge(self.orgs, chunk.orgs)
        _merge(self.writers, chunk.writers)
        self.first_occurred = _least(self.first_occurred, chunk.first_occurred)
        self.last_occurred = _most(self.last_occurred, chunk.last_occurred)
        self.first_logged = _least(self.first_logged, chunk.first_logged)
        self.last_logged = _most(self.last_logged, chunk.last_logged)
        for d in chunk.disclosures:
            self.disclosure_count += 1
            if d.without_consent:
                self.without_consent_count += 1
                if len(self.without_consent) < self.max_listed:
                    self.without_consent.append(d)
            elif len(self.with_consent) < self.max_listed:
                self.with_consent.append(d)
        self.staff_count += len(chunk.staff)
        self.staff += chunk.staff[: max(0, self.max_listed - len(self.staff))]
        self.system_count += len(chunk.system)
        self.system += chunk.system[: max(0, self.max_listed - len(self.system))]
        totals = self.system_totals
        for key, n in chunk.system_totals.items():
            slot = key if key in totals or len(totals) < _MAX_DISTINCT else (_OTHER, key[1])
            totals[slot] = totals.get(slot, 0) + n
        self.done += len(leaves)
        if self.progress is not None:
            self.progress(self.done, self.total)


def _least(a: _T | None, b: _T | None) -> _T | None:
    return b if a is None else a if b is None else min(a, b)


def _most(a: _T | None, b: _T | None) -> _T | None:
    return b if a is None else a if b is None else max(a, b)


def _time_text(key: tuple[bytes, bytes] | None) -> str | None:
    return None if key is None else (key[0] + key[1]).decode("ascii", "replace") + "Z"


def _trusted_writers(policy: Policy, log_key: Verifier) -> list[Verifier]:
    return list(policy.writers) or [log_key]


def _parse_hints(prelude: Prelude) -> dict[tuple[str, int], Verifier]:
    hints: dict[tuple[str, int], Verifier] = {}
    for i, text in enumerate(prelude.key_hints):
        try:
            v = parse_verifier(text)
        except KeyFormatError as err:
            raise MalformedError(f"key hint {i} is not a verifier key: {err}") from err
        hints[(v.name, v.key_id)] = v
    return hints


def verify(
    bundle: str | os.PathLike[str] | Readable,
    policy: Policy,
    *,
    trusted: str | bytes | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    threads: int = 2,
    max_listed: int = DEFAULT_MAX_LISTED,
    evidence_file: str | os.PathLike[str] | None = None,
    evidence_dir: str | os.PathLike[str] | None = None,
) -> Report:
    """Verify an export bundle against what the owner trusts, and report on it.

    ``bundle`` is a path or a binary stream. Trust comes from ``policy`` (its
    log key for the bundle's origin, its writer keys, or the log key when it
    names none, its witnesses and quorum), from ``trusted`` (a signed
    checkpoint note the owner saw before) and from the checkpoint saved in
    ``state_dir`` by an earlier run. Key hints in the bundle are never trusted.
    On success the state (if given) advances atomically to the bundle's
    checkpoint. ``progress(done, total)`` is called as records are checked.
    Every event is decoded in full and must be in its one canonical encoding;
    there is no lenient mode for signed content. ``max_listed`` caps each
    list of accesses in the report (see :class:`Report`).

    When the bundle's log signed a checkpoint that contradicts one the owner
    saw (two roots for one size), the split-view evidence is written to
    ``evidence_file``, or under a fresh name in ``evidence_dir`` (default:
    ``state_dir/evidence``); an existing file is never replaced (a taken
    ``evidence_file`` gets a fresh name beside it). :class:`SplitViewError`
    carries the evidence and says where it went.

    Raises:
        VerifyInputError: if the bundle file, ``trusted`` or the state cannot
            be read or does not verify under the policy's log key (exit 2).
        MalformedError: if the bundle's framing or content is malformed or
            truncated (:class:`MalformedRecordError` names the record).
        UntrustedKeyError: if the policy trusts no log for the bundle's
            origin, a record's key is not a trusted writer's, or the
            checkpoint lacks the log's signature or the witness quorum.
        BadSignatureError: if a record or checkpoint signature does not verify.
        ChainBreakError: if a sequence number or chain link is wrong.
        DuplicateRecordError: if an ``event_id`` repeats.
        RootMismatchError, ProofError: if the records, the anchor or the
            consistency proof do not make the checkpoint's root.
        RollbackError: if the bundle is older than a checkpoint the owner saw.
        SplitViewError: (an InconsistentCheckpointError) if the log signed two
            different roots for one size, in the bundle or against what the owner saw.
        InconsistentCheckpointError: if the bundle is a fork of what the owner saw.
        VerificationError: if a range bundle starts after the owner's saved state.
        ValueError: if ``threads`` is below 1 (a programming error).
    """
    if threads < 1:
        raise ValueError("threads must be at least 1")
    if not policy.logs:
        raise VerifyInputError("the policy names no log key")
    for role, keys in (("log", policy.logs), ("writer", policy.writers)):
        for v in keys:
            if v.key_type != KEY_TYPE_ED25519:
                raise VerifyInputError(
                    f"the policy's {role} key {v.name} is of type 0x{v.key_type:02x},"
                    " not an Ed25519 (type 0x01) key"
                )
    for v in policy.witness_keys():
        if v.key_type != KEY_TYPE_COSIGNATURE:
            raise VerifyInputError(
                f"the policy's witness key {v.name} is of type 0x{v.key_type:02x},"
                " not a cosignature (type 0x04) key"
            )
    with _open_bundle(bundle) as stream:
        reader = BundleReader(stream)
        try:
            prelude = reader.read_prelude()
            return _verify_stream(
                reader,
                prelude,
                policy,
                trusted=trusted,
                state_dir=state_dir,
                progress=progress,
                threads=threads,
                max_listed=max_listed,
                sink=_EvidenceSink(
                    None if evidence_file is None else Path(evidence_file),
                    Path(evidence_dir)
                    if evidence_dir is not None
                    else None
                    if state_dir is None
                    else Path(state_dir) / "evidence",
                ),
            )
        except OSError as err:
            raise VerifyInputError(f"cannot read the bundle: {err.strerror or err}") from err


def _verify_stream(
    reader: BundleReader,
    prelude: Prelude,
    policy: Policy,
    *,
    trusted: str | bytes | None,
    state_dir: str | os.PathLike[str] | None,
    progress: Callable[[int, int], None] | None,
    threads: int,
    max_listed: int,
    sink: _EvidenceSink,
) -> Report:
    origin = prelude.origin
    log_key = policy.log_for(origin)
    if log_key is None:
        names = ", ".join(repr(v.name) for v in policy.logs)
        raise UntrustedKeyError(
            f"the bundle is for the log {origin!r}; the policy trusts only {names}"
        )
    hints = _parse_hints(prelude)
    witnesses = policy.witness_keys()
    writers = _trusted_writers(policy, log_key)
    # The checkpoint: the log's signature, the origin, the quorum, the size.
    try:
        claimed = peek_checkpoint(prelude.checkpoint)
    except MalformedError as err:
        raise MalformedError(f"the bundle's checkpoint: {err}") from err
    if claimed.origin != origin:
        raise UntrustedKeyError(
            f"the bundle's checkpoint is from the log {claimed.origin!r}, not {origin!r}"
        )
    signed = open_checkpoint(prelude.checkpoint, log_key, witnesses, origin=origin)
    _check_note_lines(prelude.checkpoint, [log_key, *witnesses], hints, "checkpoint")
    final = signed.checkpoint
    if final.size != prelude.to_size:
        raise MalformedError(
            f"the checkpoint is of size {final.size}; the bundle header says {prelude.to_size}"
        )
    cosigners = [c.witness for c in signed.cosignatures]
    if not policy.quorum_met(cosigners):
        got = ", ".join(sorted(c.name for c in cosigners)) or "none"
        raise UntrustedKeyError(
            f"the checkpoint lacks the witness quorum: the policy requires"
            f" {policy.describe_quorum()}; cosigned by: {got}"
        )
    # What the owner saw before.
    anchors: list[_Anchor] = []
    saved: str | None = None
    if state_dir is not None:
        saved = load_state(state_dir, origin)
        if saved is not None:
            anchors.append(_open_anchor(saved, "saved state", log_key, origin))
    if trusted is not None:
        anchors.append(_open_anchor(trusted, "trusted checkpoint", log_key, origin))
    consistency: list[str] = []
    m, n = prelude.from_size, prelude.to_size
    for anchor in anchors:
        seen = anchor.signed.checkpoint
        if seen.size > n:
            raise RollbackError(
                f"rollback: the bundle ends at size {n}, but the {anchor.source} is of size"
                f" {seen.size}; this ledger is older than one you saw (records were removed,"
                " or a stale copy was sent)"
            )
        if seen.size == n and seen.root != final.root:
            raise _split_view(
                sink,
                f"fork: the bundle's checkpoint and the {anchor.source} are both of size {n}"
                " but have different roots (the log has shown two histories)",
                n - 1 if n else None,
                anchor.signed.note,
                signed.note,
                log_key=log_key,
            )
        if seen.size < m:
            raise VerificationError(
                f"the bundle covers records {m}..{n}, but the {anchor.source} is of size"
                f" {seen.size}: the records in between are missing; export from {seen.size}"
            )
    # Where the records start: the empty tree, or the old checkpoint via the proof.
    prev = records.GENESIS_PREV
    frontier = CompactRange()
    if m > 0:
        assert prelude.old_checkpoint is not None  # noqa: S101 - Prelude guarantees it
        assert prelude.anchor_leaf is not None  # noqa: S101
        # The old checkpoint may carry cosignatures (it was the latest once and
        # witnessed then): the policy's witnesses verify them, as at the end.
        old = open_checkpoint(prelude.old_checkpoint, log_key, witnesses, origin=origin)
        _check_note_lines(prelude.old_checkpoint, [log_key, *witnesses], hints, "old checkpoint")
        if old.checkpoint.size != m:
            raise MalformedError(
                f"the old checkpoint is of size {old.checkpoint.size}; the bundle header says {m}"
            )
        anchored = [a for a in anchors if a.signed.checkpoint.size == m]
        for anchor in anchored:
            if anchor.signed.checkpoint.root != old.checkpoint.root:
                raise _split_view(
                    sink,
                    f"fork: the bundle starts from a checkpoint of size {m} whose root differs"
                    f" from the {anchor.source} of that size",
                    m - 1,
                    anchor.signed.note,
                    old.note,
                    log_key=log_key,
                )
        if m == n:
            if old.checkpoint.root != final.root:
                raise _split_view(
                    sink,
                    f"the log signed two different roots for size {m}",
                    m - 1,
                    old.note,
                    signed.note,
                    log_key=log_key,
                )
            if prelude.consistency_proof:
                raise ProofError("a consistency proof between equal sizes must be empty")
        else:
            try:
                frontier = frontier_from_consistency(
                    m, n, old.checkpoint.root, final.root, prelude.consistency_proof
                )
            except (ProofError, RootMismatchError, MalformedError) as err:
                if anchored:
                    raise InconsistentCheckpointError(
                        f"the bundle's checkpoint of size {n} cannot be shown consistent with the"
                        f" {anchored[0].source} of size {m}: {err}"
                    ) from err
                raise
        prev = _anchor_link(prelude, old.checkpoint.root, m, origin, writers)
    ctx = _Context(
        prefix=records.signing_message(origin, b""),
        writers=_writer_table(writers),
        hints={v.key_id: v.name for v in hints.values()},
        fingerprint_key=secrets.token_bytes(32),
    )
    in_range = [a for a in anchors if m < a.signed.checkpoint.size < n]
    run = _Run(frontier, in_range, max_listed, progress, n - m)
    _stream_records(reader, ctx, run, start=m, prev=prev, threads=threads)
    # A range with no new records (0 < m == n) has no compact range: its root
    # was proven above by the old and the new checkpoint having the same root,
    # and the framing (no record frame, the end frame) by the reader.
    if not 0 < m == n:
        root = run.range.root()
        if run.range.size != n or root != final.root:
            raise RootMismatchError(
                f"the records do not make the root of the checkpoint of size {n}",
                final.root,
                root,
            )
    for anchor in anchors:
        consistency.append(
            f"consistent with the {anchor.source} of size {anchor.signed.checkpoint.size}"
        )
    if not anchors:
        consistency.append(
            "no earlier checkpoint to compare with: this run cannot tell a consistently"
            " truncated or forked ledger from the real one (keep --state, or rely on witnesses)"
        )
    if m > 0 and not [a for a in anchors if a.signed.checkpoint.size >= m]:
        consistency.append(
            f"records before {m} are not in this bundle; the link to them rests on the log's"
            f" signature of the checkpoint of size {m}"
        )
    report = Report(
        origin=origin,
        size=n,
        from_size=m,
        root=final.root,
        checkpoint=signed.note,
        log_key=log_key.vkey,
        cosigners=tuple(sorted(c.name for c in cosigners)),
        quorum=policy.describe_quorum(),
        first_occurred_at=_time_text(run.first_occurred),
        last_occurred_at=_time_text(run.last_occurred),
        first_logged_at=_micros_text(run.first_logged),
        last_logged_at=_micros_text(run.last_logged),
        actions=_ranked(run.actions),
        legal_bases=_ranked(run.bases),
        recipient_organizations=_ranked(run.orgs),
        writers=_ranked(run.writers),
        disclosures=tuple(run.without_consent + run.with_consent),
        disclosure_count=run.disclosure_count,
        without_consent_count=run.without_consent_count,
        consistency=tuple(consistency),
        staff_accesses=tuple(run.staff),
        staff_access_count=run.staff_count,
        system_accesses=tuple(run.system),
        system_access_count=run.system_count,
        system_totals=tuple(
            (name, action, count)
            for (name, action), count in sorted(
                run.system_totals.items(), key=lambda kv: (-kv[1], kv[0])
            )
        ),
        max_listed=max_listed,
    )
    if state_dir is not None:
        report = replace(report, state_saved=save_state(state_dir, signed))
    return report


def _writer_table(
    writers: Sequence[Verifier],
) -> dict[int, tuple[tuple[Ed25519PublicKey, str], ...]]:
    table: dict[int, list[tuple[Ed25519PublicKey, str]]] = {}
    for w in writers:
        entry = (Ed25519PublicKey.from_public_bytes(w.public_key), w.name)
        table.setdefault(w.key_id, []).append(entry)
    return {k: tuple(v) for k, v in table.items()}


def _anchor_link(
    prelude: Prelude, old_root: bytes, m: int, origin: str, writers: Sequence[Verifier]
) -> bytes:
    """Check record ``m - 1`` (the anchor) against the old root; return its chain hash."""
    assert prelude.anchor_leaf is not None  # noqa: S101 - only called for ranges
    leaf = prelude.anchor_leaf
    try:
        env = records.parse_envelope(leaf)
    except MalformedError as err:
        raise MalformedRecordError(f"the anchor record: {err}", index=m - 1) from err
    try:
        verify_inclusion(leaf_hash(leaf), m - 1, m, prelude.anchor_proof, old_root)
    except (ProofError, MalformedError) as err:
        raise RootMismatchError(
            f"the anchor record is not in the old checkpoint's tree: {err}",
            old_root,
            leaf_hash(leaf),
        ) from err
    if env.seq != m - 1:
        raise ChainBreakError(f"the anchor record carries sequence number {env.seq}", index=m - 1)
    records.verify_envelope(origin, env, writers)
    return env.chain_hash


def _stream_records(
    reader: BundleReader, ctx: _Context, run: _Run, *, start: int, prev: bytes, threads: int
) -> None:
    """Read record frames, check chunks on the pool, absorb results in order.

    A framing error is raised only after every chunk before it has been
    absorbed, so the error reported is always the one nearest the start.
    """
    pending: deque[tuple[int, list[bytes], Future[_Chunk]]] = deque()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dl-verify")
    framing: LedgerError | None = None
    try:
        chunk: list[bytes] = []
        size = 0
        index = start
        leaves: Iterator[bytes] = reader.records()
        while True:
            try:
                leaf = next(leaves)
            except StopIteration:
                break
            except LedgerError as err:
                framing = err
                break
            chunk.append(leaf)
            size += len(leaf)
            if len(chunk) >= _CHUNK or size >= _CHUNK_BYTES:
                pending.append((index, chunk, pool.submit(_check_chunk, ctx, index, prev, chunk)))
                prev = _chain_of(chunk[-1])
                index += len(chunk)
                chunk, size = [], 0
                while len(pending) > _MAX_IN_FLIGHT:
                    s, c, fut = pending.popleft()
                    run.absorb(s, c, fut.result())
        if chunk:
            pending.append((index, chunk, pool.submit(_check_chunk, ctx, index, prev, chunk)))
        while pending:
            s, c, fut = pending.popleft()
            run.absorb(s, c, fut.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if framing is not None:
        raise framing
