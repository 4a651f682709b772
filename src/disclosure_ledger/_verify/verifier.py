"""Owner verification: check an export bundle offline, in bounded memory.

This module owns the verifier's trust logic. :func:`verify` reads a bundle as
a stream and trusts only what the owner supplies: the policy's log, writer
and witness keys, and an earlier checkpoint (given, or saved by an earlier
run in a :class:`~.state.StateStore`). It checks the framing, and walks every
record with the :class:`~.chain.ChainWalker` (signature by a trusted writer,
contiguous sequence numbers, chain links); it checks that no ``event_id``
repeats, the Merkle root (recomputed with a compact range) against a
checkpoint signed by the log and cosigned by the policy's quorum, and, with
:func:`~.succession.check_successor`, that checkpoint against every earlier
one the owner holds. A failure raises the precise error
(:class:`~.errors.ChainBreakError`, :class:`~.errors.RootMismatchError`,
:class:`~.errors.RollbackError`, ...) with the record index where there is
one; success returns a :class:`~.summary.Report`.

Signatures are checked on a thread pool (``cryptography`` releases the GIL
while verifying); the main thread reads frames and does the work that must
happen in order. Memory is bounded: at most a few chunks of records are in
flight, duplicate ``event_id`` detection keeps an 8-byte keyed fingerprint per
record, and the report keeps counts and capped lists (:mod:`.summary`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from disclosure_ledger._core import records
from disclosure_ledger._core.bundle import BundleReader, Prelude, Readable
from disclosure_ledger._core.chain import ChainWalker, WriterKeys
from disclosure_ledger._core.checkpoints import SignedCheckpoint, open_checkpoint, peek_checkpoint
from disclosure_ledger._core.evidence import (
    Evidence,
    SplitViewError,
    check_evidence,
    format_evidence,
    write_evidence_file,
)
from disclosure_ledger._core.merkle import (
    CompactRange,
    frontier_from_consistency,
    leaf_hash,
    verify_inclusion,
)
from disclosure_ledger._core.notes import (
    COSIGNATURE_TYPES,
    KEY_TYPE_ED25519,
    Verifier,
    parse_note,
    parse_verifier,
)
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._core.succession import check_successor
from disclosure_ledger._fsutil import atomic_file
from disclosure_ledger._verify.fingerprints import FingerprintSet
from disclosure_ledger._verify.state import (
    DirectoryState,
    StateStore,
    load_state,
    save_state,
    state_file,
)
from disclosure_ledger._verify.summary import (
    DEFAULT_MAX_LISTED,
    ChunkTally,
    Disclosure,
    FootageRef,
    Report,
    Tally,
)
from disclosure_ledger.errors import (
    BadSignatureError,
    DuplicateRecordError,
    InconsistentCheckpointError,
    KeyFormatError,
    LedgerError,
    MalformedError,
    MalformedRecordError,
    ProofError,
    RootMismatchError,
    UntrustedKeyError,
    VerificationError,
    VerifyInputError,
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
    "evidence_stem",
    "load_state",
    "save_state",
    "state_file",
    "verify",
]

_CHUNK = 256
_CHUNK_BYTES = 1 << 20
_MAX_IN_FLIGHT = 6
_HEADER_SIZE = records.HEADER_SIZE


# -- per-chunk work (runs on the pool) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    origin: str
    keys: WriterKeys
    fingerprint_key: bytes


@dataclass(slots=True)
class _Chunk:
    leaf_hashes: list[bytes] = field(default_factory=list)
    fingerprints: list[int] = field(default_factory=list)
    tally: ChunkTally = field(default_factory=ChunkTally)


def _check_chunk(ctx: _Context, start: int, prev: bytes, leaves: list[bytes]) -> _Chunk:
    """Walk records ``start, start+1, ...`` from the chain hash ``prev``; tally their events."""
    out = _Chunk()
    blake = hashlib.blake2b
    fkey = ctx.fingerprint_key
    walker = ChainWalker(ctx.origin, ctx.keys, start=start, prev=prev)
    step = walker.step
    add = out.tally.add
    leaf_hashes = out.leaf_hashes
    fingerprints = out.fingerprints
    for i, leaf in enumerate(leaves):
        index = start + i
        logged_at, end, signer = step(leaf)
        leaf_hashes.append(leaf_hash(leaf))
        # Every event is decoded in full, and decode_event refuses any encoding
        # but the one canonical form (it re-encodes and compares): a signed
        # record cannot say one thing to the vendor's tools and another here.
        event = _decode(index, leaf[_HEADER_SIZE:end])
        fingerprints.append(
            int.from_bytes(blake(event.event_id.encode(), digest_size=8, key=fkey).digest(), "big")
        )
        add(index, event, logged_at, signer)
    return out


def _decode(index: int, raw: bytes) -> records.Event:
    try:
        return records.decode_event(raw)
    except MalformedError as err:
        raise MalformedRecordError(f"record {index}: {err}", index=index) from err


def _chain_of(leaf: bytes) -> bytes:
    # The chain hash the next record must carry. A malformed leaf gives some
    # hash; its own chunk fails first, so the next chunk's mismatch never shows.
    elen = records.HEADER.unpack_from(leaf)[-1] if len(leaf) >= _HEADER_SIZE else 0
    return records.chain_hash(leaf[: _HEADER_SIZE + elen])


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


def _with_evidence(sink: _EvidenceSink, err: SplitViewError, log_key: Verifier) -> SplitViewError:
    """``err`` again, its evidence written where the owner asked and its message saying where."""
    ev = err.evidence
    # The evidence must stand on its own; it always does for the two kinds
    # raised here (one size with two roots, and a proof that reaches the
    # larger signed root from another tree).
    check_evidence(ev, log_key)
    first, second = peek_checkpoint(ev.first), peek_checkpoint(ev.second)
    path, note = _write_evidence(sink, ev, evidence_stem(first.origin, first.size, second.size))
    return SplitViewError(f"{err}; {note}", ev, path, index=err.index)


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


def _event_id_at(index: int, start: int, leaves: list[bytes]) -> str:
    leaf = leaves[index - start]
    with contextlib.suppress(LedgerError):
        return records.parse_envelope(leaf).event().event_id
    return "?"


class _Run:
    """The in-order half of one verification: compact range, anchors, fingerprints, tally."""

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
        self.fingerprints = FingerprintSet()
        self.tally = Tally(max_listed)
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
        self.tally.absorb(chunk.tally)
        self.done += len(leaves)
        if self.progress is not None:
            self.progress(self.done, self.total)


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
    state: StateStore | None = None,
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
    checkpoint note the owner saw before) and from the checkpoint saved by an
    earlier run, in ``state`` or in the directory ``state_dir`` (a
    :class:`~.state.DirectoryState`). Key hints in the bundle are never
    trusted. On success the state advances to the bundle's checkpoint by
    compare-and-swap: if another run changed it meanwhile, the bundle is
    checked against the new one before anything is saved.
    ``progress(done, total)`` is called as records are checked.
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
        ValueError: if ``threads`` is below 1, or both ``state`` and
            ``state_dir`` are given (programming errors).
    """
    if threads < 1:
        raise ValueError("threads must be at least 1")
    if state is not None and state_dir is not None:
        raise ValueError("give state or state_dir, not both")
    if state_dir is not None:
        state = DirectoryState(state_dir)
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
        if v.key_type not in COSIGNATURE_TYPES:
            raise VerifyInputError(
                f"the policy's witness key {v.name} is of type 0x{v.key_type:02x},"
                " not a cosignature (type 0x04 or 0x06) key"
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
                state=state,
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
    state: StateStore | None,
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
    # What the owner saw before: each may be replaced by the bundle's
    # checkpoint only as check_successor allows; a larger bundle is shown
    # consistent with it below, by the records themselves.
    anchors: list[_Anchor] = []
    saved: str | None = None
    if state is not None:
        saved = state.load(origin)
        if saved is not None:
            anchors.append(_open_anchor(saved, "saved state", log_key, origin))
    if trusted is not None:
        anchors.append(_open_anchor(trusted, "trusted checkpoint", log_key, origin))
    m, n = prelude.from_size, prelude.to_size
    for anchor in anchors:
        _succeeds(sink, anchor.signed, signed, f"the {anchor.source}", "the bundle's checkpoint")
        seen = anchor.signed.checkpoint
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
            _succeeds(
                sink,
                anchor.signed,
                old,
                f"the {anchor.source}",
                "the checkpoint the bundle starts from",
            )
        if m == n:
            _succeeds(
                sink,
                old,
                signed,
                "the checkpoint the bundle starts from",
                "the bundle's checkpoint",
                proof=prelude.consistency_proof,
            )
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
        origin=origin,
        keys=WriterKeys(writers, hints={v.key_id: v.name for v in hints.values()}),
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
    consistency = [
        f"consistent with the {a.source} of size {a.signed.checkpoint.size}" for a in anchors
    ]
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
    saved_now = False
    if state is not None:
        saved_now, moved = _save(state, saved, signed, log_key, sink)
        if moved:
            consistency.append(moved)
    report = run.tally.report(
        origin,
        n,
        m,
        final.root,
        signed.note,
        log_key.vkey,
        tuple(sorted(c.name for c in cosigners)),
        policy.describe_quorum(),
        tuple(consistency),
    )
    return replace(report, state_saved=saved_now) if saved_now else report


def _succeeds(
    sink: _EvidenceSink,
    held: SignedCheckpoint,
    new: SignedCheckpoint,
    held_as: str,
    new_as: str,
    *,
    proof: Sequence[bytes] | None = None,
) -> bool:
    """:func:`check_successor`, with the evidence of a split view written for the owner."""
    try:
        return check_successor(held, new, proof, held_as=held_as, new_as=new_as)
    except SplitViewError as err:
        raise _with_evidence(sink, err, new.log_key) from err


def _save(
    state: StateStore,
    saved: str | None,
    signed: SignedCheckpoint,
    log_key: Verifier,
    sink: _EvidenceSink,
) -> tuple[bool, str | None]:
    """Swap ``saved`` for ``signed`` in ``state``; return whether it was saved, and a note.

    Another run may have changed the state since it was read. A checkpoint of
    the same size must then have the same root (else that is a split view); a
    larger one is left in place, and said so; a smaller one was never checked
    against this bundle, so this run saves nothing and says to run again.
    """
    origin = signed.checkpoint.origin
    size = signed.checkpoint.size
    expected = saved
    while True:
        if expected is not None and peek_checkpoint(expected).size >= size:
            return False, None  # the same checkpoint again (check_successor saw to that)
        if state.compare_and_swap(origin, expected, signed.note):
            return True, None
        current = state.load(origin)
        if current is None:
            raise VerifyInputError(
                f"the saved state of {origin} was removed while this run verified; run again"
            )
        now = _open_anchor(current, "saved state", log_key, origin).signed
        if now.checkpoint.size < size:
            raise VerifyInputError(
                f"the saved state of {origin} changed while this run verified (to size"
                f" {now.checkpoint.size}), so the bundle was not checked against it; run again"
            )
        if now.checkpoint.size == size:
            _succeeds(sink, now, signed, "the saved state", "the bundle's checkpoint")
            return False, None
        return False, (
            f"the saved state moved on to size {now.checkpoint.size} while this run verified;"
            " it was left as it is"
        )


def _anchor_link(
    prelude: Prelude, old_root: bytes, m: int, origin: str, writers: Sequence[Verifier]
) -> bytes:
    """Check record ``m - 1`` (the anchor) against the old root; return its chain hash."""
    assert prelude.anchor_leaf is not None  # noqa: S101 - only called for ranges
    leaf = prelude.anchor_leaf
    walker = ChainWalker(origin, WriterKeys(writers), start=m - 1, prev=None)
    try:
        records.unpack_header(leaf)
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
    # Its own link is not checked: the record before it is not in the
    # bundle, and the inclusion proof above places it in the signed tree.
    walker.step(leaf)
    return walker.prev


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
