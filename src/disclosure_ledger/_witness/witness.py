"""A witness: cosign a log's checkpoint only if it extends the last one cosigned.

This module owns the witness's state machine and its small on-disk state,
light enough for camera firmware: no server, no database, a directory of
small text files, and time passed in by the caller. The add-checkpoint step
takes a C2SP tlog-witness request body and follows that protocol: it checks
the log's signature, that ``old`` is the size it last cosigned, the
consistency proof from the root it holds, persists the new size and root
atomically and only then returns a ``cosignature/v1`` line (``subtree/v1`` for
an ML-DSA-44 key). A witness may hold a second key of the other kind beside
the first (an ML-DSA-44 key beside an Ed25519 one, or the reverse); it then
returns one line per key, the first key's first.

Directory layout::

    DIR/config                       the witness's key and the logs it follows
    DIR/state/<sha256(origin)>       the last cosigned checkpoint of one log
    DIR/state/<sha256(origin)>.lock  held (flock) across check-and-update
    DIR/evidence/*.evidence          split-view evidence (see :mod:`.evidence`)

``config`` is::

    disclosure-ledger/witness-config/v1
    witness <the witness's verifier key>
    key-file <path of the signer key file>       (optional, used by the CLI)
    also-witness <a second key, of the other kind>   (optional)
    also-key-file <path of its signer key file>      (optional, used by the CLI)
    log <a followed log's verifier key>          (one or more)

A state file is ``disclosure-ledger/witness-state/v1`` and a newline,
followed by the signed checkpoint note last cosigned, verbatim. Both files are
replaced atomically (temporary file, fsync, ``os.replace``, directory fsync),
so a crash leaves either the old state or the new one. Two add-checkpoint calls
for one origin, from threads or processes, serialise on the lock file, so they
can never both succeed from the same old size.

Whoever can write the state can roll the witness back or change the logs it
follows, so the directory, its ``state`` and ``evidence`` directories, the
config and the state files must not be writable by group or others: such a
witness is refused, with the ``chmod`` that fixes it, when it is opened or
its state read. ``init`` creates the directories with mode 0700.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from disclosure_ledger._core.checkpoints import (
    SignedCheckpoint,
    WitnessRequest,
    cosign_checkpoint,
    open_checkpoint,
    parse_witness_request,
    peek_checkpoint,
)
from disclosure_ledger._core.evidence import (
    Evidence,
    SplitViewError,
    make_evidence,
    write_evidence_file,
)
from disclosure_ledger._core.merkle import EMPTY_ROOT
from disclosure_ledger._core.notes import (
    COSIGNATURE_TYPES,
    KEY_TYPE_ED25519,
    Signer,
    Verifier,
)
from disclosure_ledger._core.notes import parse_verifier as _parse_verifier
from disclosure_ledger._core.succession import check_successor
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
    KeyFormatError,
    MalformedError,
    OldSizeTooLargeError,
    ProofError,
    SizeWentBackwardsError,
    StaleOldSizeError,
    StorageError,
    UnknownOriginError,
    UntrustedKeyError,
    VerificationError,
)

__all__ = [
    "CONFIG_HEADER",
    "STATE_HEADER",
    "OldSizeTooLargeError",
    "SizeWentBackwardsError",
    "SplitViewError",
    "StaleOldSizeError",
    "UnknownOriginError",
    "Witness",
    "WitnessConfig",
    "WitnessState",
    "format_config",
    "parse_config",
]

CONFIG_HEADER = "disclosure-ledger/witness-config/v1"
STATE_HEADER = "disclosure-ledger/witness-state/v1"
_HELD_AS = "the checkpoint the witness already cosigned"
_MAX_FILE = 2 << 20


@dataclass(frozen=True, slots=True)
class WitnessState:
    """What a witness holds for one log: the last checkpoint it cosigned."""

    origin: str
    size: int
    root: bytes
    note: str


@dataclass(frozen=True, slots=True)
class WitnessConfig:
    """A witness directory's configuration (see the module docstring)."""

    witness: Verifier
    logs: tuple[Verifier, ...]
    key_file: str | None = None
    also: Verifier | None = None
    """A second witness key of the other kind (ML-DSA-44 beside Ed25519, or the reverse)."""
    also_key_file: str | None = None


def _check_witness_key(key: Signer) -> None:
    if key.key_type not in COSIGNATURE_TYPES:
        raise KeyFormatError("a witness key must be a cosignature (type 0x04 or 0x06) key")


def _check_permissions(d: Path) -> None:
    """Refuse a witness directory that users other than its owner can write (see above)."""
    check_not_writable_by_others(d, "witness directory", StorageError)
    for name, what in (
        ("state", "witness state directory"),
        ("evidence", "witness evidence directory"),
        ("config", "witness config"),
    ):
        check_not_writable_by_others(d / name, what, StorageError)


def _read_text(path: Path, what: str) -> str | None:
    """A small UTF-8 file's text, ``None`` if it does not exist; every fault is a StorageError."""
    raw = read_limited(path, _MAX_FILE, what, StorageError, missing_ok=True)
    return None if raw is None else decode_utf8(raw, path, what, StorageError)


def format_config(config: WitnessConfig) -> str:
    """Return the ``config`` file text (see the module docstring).

    Raises:
        Nothing: pure formatting of keys that were checked when they were parsed.
    """
    lines = [CONFIG_HEADER, f"witness {config.witness.vkey}"]
    if config.key_file is not None:
        lines.append(f"key-file {config.key_file}")
    if config.also is not None:
        lines.append(f"also-witness {config.also.vkey}")
    if config.also_key_file is not None:
        lines.append(f"also-key-file {config.also_key_file}")
    lines.extend(f"log {v.vkey}" for v in config.logs)
    return "\n".join(lines) + "\n"


def parse_config(text: str) -> WitnessConfig:
    """Parse a witness ``config`` file.

    Raises:
        MalformedError: if the header, a key or a line is malformed, or there
            is no witness key or no log.
    """
    lines = text.splitlines()
    if not lines or lines[0] != CONFIG_HEADER:
        raise MalformedError(f"witness config must start with {CONFIG_HEADER}")
    witness: Verifier | None = None
    also: Verifier | None = None
    key_file: str | None = None
    also_key_file: str | None = None
    logs: list[Verifier] = []
    for n, line in enumerate(lines[1:], 2):
        word, _, rest = line.partition(" ")
        try:
            if word == "witness" and witness is None:
                witness = _parse_verifier(rest)
            elif word == "also-witness" and also is None:
                also = _parse_verifier(rest)
            elif word == "key-file" and key_file is None and rest:
                key_file = rest
            elif word == "also-key-file" and also_key_file is None and rest:
                also_key_file = rest
            elif word == "log":
                logs.append(_parse_verifier(rest))
            else:
                raise MalformedError(f"witness config line {n}: unexpected {word!r}")
        except KeyFormatError as err:
            raise MalformedError(f"witness config line {n}: {err}") from err
    if witness is None or witness.key_type not in COSIGNATURE_TYPES:
        raise MalformedError("witness config needs a cosignature (type 0x04 or 0x06) witness key")
    if also is not None:
        _check_pair(witness, also)
    elif also_key_file is not None:
        raise MalformedError("witness config has an also-key-file but no also-witness key")
    if not logs:
        raise MalformedError("witness config names no log")
    return WitnessConfig(witness, tuple(logs), key_file, also, also_key_file)


def _check_pair(first: Verifier, second: Verifier) -> None:
    # A second key is of the other kind: one Ed25519 and one ML-DSA-44 cosignature key.
    if second.key_type not in COSIGNATURE_TYPES or second.key_type == first.key_type:
        raise MalformedError(
            "a witness's second key must be a cosignature key of the other kind"
            " (ML-DSA-44 beside Ed25519, or the reverse)"
        )


class Witness:
    """A witness over a state directory. Create with :meth:`init`, reopen with :meth:`open`.

    Thread-safe, and safe to use from several processes over one directory.
    """

    __slots__ = ("_also", "_config", "_dir", "_key", "_locks", "_locks_guard")

    def __init__(
        self, directory: Path, key: Signer, config: WitnessConfig, also: Signer | None = None
    ) -> None:
        """Use :meth:`init` or :meth:`open` instead.

        Raises:
            KeyFormatError: if ``key`` (or ``also``) is not the witness key named
                in ``config``, or ``also`` is missing for a witness that holds two keys.
        """
        _check_witness_key(key)
        if key.verifier != config.witness:
            raise KeyFormatError(
                f"{directory}: this witness's key is {config.witness.name}+"
                f"{config.witness.key_id:08x}, not the key given"
            )
        want = config.also
        if (also is None) != (want is None) or (
            also is not None and want is not None and also.verifier != want
        ):
            named = "no second key" if want is None else f"{want.name}+{want.key_id:08x}"
            raise KeyFormatError(f"{directory}: this witness's second key is {named}")
        self._dir = directory
        self._key = key
        self._also = also
        self._config = config
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def init(
        cls,
        directory: str | os.PathLike[str],
        key: Signer,
        logs: Iterable[Verifier],
        *,
        key_file: str | os.PathLike[str] | None = None,
        also: Signer | None = None,
        also_key_file: str | os.PathLike[str] | None = None,
    ) -> Witness:
        """Create a witness directory that follows ``logs`` and cosigns with ``key``.

        ``also`` is a second key of the other kind (ML-DSA-44 beside Ed25519,
        or the reverse): the witness then cosigns with both. ``key_file`` and
        ``also_key_file`` (recorded, not read) let the CLI find the keys later.

        Raises:
            KeyFormatError: if ``key`` is not a cosignature key or a log key is
                not an Ed25519 note key.
            MalformedError: if no log is given, or ``also`` is not of the other kind.
            StorageError: if the directory already holds a witness or cannot be written.
        """
        _check_witness_key(key)
        if also is not None:
            _check_pair(key.verifier, also.verifier)
        log_list = tuple(dict.fromkeys(logs))
        if not log_list:
            raise MalformedError("a witness must follow at least one log")
        for log in log_list:
            if log.key_type != KEY_TYPE_ED25519:
                raise KeyFormatError(f"log key {log.name} is not an Ed25519 note key")
        d = Path(directory)
        kf, akf = (None if f is None else str(Path(f).resolve()) for f in (key_file, also_key_file))
        if any(f is not None and "\n" in f for f in (kf, akf)):
            raise MalformedError("the key file path must be one line")
        config = WitnessConfig(
            key.verifier, log_list, kf, None if also is None else also.verifier, akf
        )
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            check_not_writable_by_others(d, "witness directory", StorageError)
            (d / "state").mkdir(mode=0o700, exist_ok=True)
            (d / "evidence").mkdir(mode=0o700, exist_ok=True)
            _check_permissions(d)
            # Created exclusively: of two inits racing over one directory, one fails here.
            with atomic_file(d / "config", overwrite=False) as fh:
                fh.write(format_config(config).encode("utf-8"))
        except FileExistsError as err:
            raise StorageError(f"{d}: already holds a witness; refusing to overwrite it") from err
        except OSError as err:
            raise StorageError(f"{d}: cannot create the witness: {err.strerror or err}") from err
        return cls(d, key, config, also)

    @staticmethod
    def read_config(directory: str | os.PathLike[str]) -> WitnessConfig:
        """Read a witness directory's configuration.

        Raises:
            StorageError: if the directory holds no witness or its config is unreadable.
        """
        d = Path(directory)
        _check_permissions(d)
        text = _read_text(d / "config", "witness config")
        if text is None:
            raise StorageError(f"{d}: not a witness directory (no config)")
        try:
            return parse_config(text)
        except MalformedError as err:
            raise StorageError(f"{d / 'config'}: {err}") from err

    @classmethod
    def open(
        cls, directory: str | os.PathLike[str], key: Signer, also: Signer | None = None
    ) -> Witness:
        """Open an existing witness directory with its key (and its second key, if it has one).

        Raises:
            StorageError: if the directory holds no witness.
            KeyFormatError: if ``key`` or ``also`` is not this witness's.
        """
        d = Path(directory)
        return cls(d, key, cls.read_config(d), also)

    def __repr__(self) -> str:
        return f"Witness(dir={str(self._dir)!r}, key={self._key.name!r})"

    @property
    def directory(self) -> Path:
        """The state directory."""
        return self._dir

    @property
    def verifier(self) -> Verifier:
        """The witness's public cosignature key (the first, when it holds two)."""
        return self._key.verifier

    @property
    def verifiers(self) -> tuple[Verifier, ...]:
        """Every public key the witness cosigns with, the first key first."""
        if self._also is None:
            return (self._key.verifier,)
        return (self._key.verifier, self._also.verifier)

    @property
    def logs(self) -> tuple[Verifier, ...]:
        """The verifier keys of the logs this witness follows."""
        return self._config.logs

    # -- state ---------------------------------------------------------------------------

    def _state_path(self, origin: str) -> Path:
        return origin_file(self._dir / "state", origin)

    def _log_keys(self, origin: str) -> list[Verifier]:
        return [v for v in self._config.logs if v.name == origin]

    def _open_signed(self, note: str, origin: str) -> SignedCheckpoint:
        keys = self._log_keys(origin)
        if not keys:
            raise UnknownOriginError(f"the witness does not follow the log {origin!r}")
        last: VerificationError | None = None
        for key in keys:
            try:
                return open_checkpoint(note, key)
            except UntrustedKeyError as err:
                last = err
        assert last is not None  # noqa: S101 - keys is not empty
        raise BadSignatureError(
            f"checkpoint for {origin} is not signed by the log's key: {last}"
        ) from last

    def state(self, origin: str) -> WitnessState | None:
        """Return the last checkpoint cosigned for ``origin``, or ``None``.

        Raises:
            StorageError: if the state file is unreadable, malformed, or its
                checkpoint is not signed by a followed log key.
        """
        held = self._held(origin)
        if held is None:
            return None
        cp = held.checkpoint
        return WitnessState(origin, cp.size, cp.root, held.note)

    def _held(self, origin: str) -> SignedCheckpoint | None:
        path = self._state_path(origin)
        check_not_writable_by_others(path, "witness state", StorageError)
        text = _read_text(path, "witness state")
        if text is None:
            return None
        header, sep, note = text.partition("\n")
        if header != STATE_HEADER or not sep:
            raise StorageError(f"{path}: not a witness state file")
        try:
            # Verified with keys named ``origin``, so the checkpoint is of ``origin``.
            return self._open_signed(note, origin)
        except (MalformedError, VerificationError) as err:
            raise StorageError(f"{path}: the stored checkpoint does not verify: {err}") from err

    @contextlib.contextmanager
    def _locked(self, origin: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(origin, threading.Lock())
        lock_path = self._state_path(origin).with_suffix(".lock")
        with lock:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise StorageError(f"{lock_path}: cannot open: {err.strerror}") from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    # -- add-checkpoint ------------------------------------------------------------------

    def add_checkpoint(self, request: bytes | str | WitnessRequest, now: int) -> str:
        """Check a tlog-witness add-checkpoint request; persist and cosign it.

        ``now`` (seconds since the Unix epoch) is the cosignature's timestamp.
        A request for the checkpoint already held (same size, same root, empty
        proof) gets a fresh cosignature.

        Returns the cosignature line (ending in a newline): ``cosignature/v1`` for an
        Ed25519 key, ``subtree/v1`` for an ML-DSA-44 key; one line per key when the
        witness holds two, the first key's first.

        Raises:
            MalformedError: if the request is malformed.
            UnknownOriginError: if the witness does not follow the checkpoint's log.
            BadSignatureError: if the log key did not sign the checkpoint.
            OldSizeTooLargeError: if ``old`` is larger than the checkpoint's size.
            SizeWentBackwardsError: if the checkpoint is smaller than the one held.
            StaleOldSizeError: if ``old`` is not the size held (``current_size`` says which).
            ProofError: if the proof has the wrong shape (or is not empty when it must be).
            RootMismatchError: if the proof does not lead from the held root to the new one.
            SplitViewError: if the checkpoint provably contradicts the one held, or
                is of size 0 without the empty root (false on its face);
                evidence is written under ``DIR/evidence``.
            StorageError: if the state cannot be read or written.
        """
        req = request if isinstance(request, WitnessRequest) else parse_witness_request(request)
        origin = peek_checkpoint(req.checkpoint).origin
        signed = self._open_signed(req.checkpoint, origin)
        new = signed.checkpoint
        if req.old_size > new.size:
            raise OldSizeTooLargeError(
                f"old size {req.old_size} is larger than the checkpoint size {new.size}"
            )
        if new.size == 0 and new.root != EMPTY_ROOT:
            # Signed by the log and false on its face: evidence on its own.
            self._raise_split_view(
                make_evidence(req.checkpoint, req.checkpoint),
                new.origin,
                now,
                f"the log signed a checkpoint of size 0 of {new.origin} without the empty root",
            )
        with self._locked(new.origin):
            held = self._held(new.origin)
            held_size = 0 if held is None else held.checkpoint.size
            # The protocol's own refusals first, in its order; check_successor
            # decides the rest as it does for the owner's verifier.
            if new.size < held_size:
                raise SizeWentBackwardsError(new.origin, new.size, held_size)
            if req.old_size != held_size:
                raise StaleOldSizeError(new.origin, req.old_size, held_size)
            if held is None or req.old_size == 0:
                if req.proof:
                    raise ProofError("a request from size 0 must carry no consistency proof")
                if held is not None:
                    check_successor(held, signed, (), held_as=_HELD_AS)
            else:
                try:
                    check_successor(held, signed, req.proof, held_as=_HELD_AS)
                except SplitViewError as err:
                    self._raise_split_view(err.evidence, new.origin, now, str(err))
            if held is None or held_size != new.size:
                state = STATE_HEADER + "\n" + req.checkpoint
                try:
                    write_atomic(self._state_path(new.origin), state.encode("utf-8"))
                except OSError as err:
                    raise StorageError(
                        f"{self._dir}: cannot persist the witness state: {err.strerror or err}"
                    ) from err
            line = cosign_checkpoint(new, self._key, now)
            if self._also is not None:
                line += cosign_checkpoint(new, self._also, now)
            return line

    def _raise_split_view(
        self, evidence: Evidence, origin: str, now: int, message: str
    ) -> NoReturn:
        path: Path | None
        stem = f"{origin_file(self._dir, origin).name[:16]}-{now}"
        try:
            path = write_evidence_file(self._dir / "evidence", evidence, stem)
        except StorageError:
            path = None
        where = f"; evidence written to {path}" if path else ""
        raise SplitViewError(message + where, evidence, path)
