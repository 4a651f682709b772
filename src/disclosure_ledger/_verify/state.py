"""The owner's saved state: the last checkpoint verified, per log, behind compare-and-swap.

This module owns where the owner's verifier keeps what it has seen, and the
file locking that keeps concurrent runs from interleaving. The verifier reads
the state once before it checks a bundle and, on success, replaces exactly
what it read with the checkpoint it verified, through
:meth:`StateStore.compare_and_swap`: if another run changed the state in
between, the swap fails and the verifier decides again with the new state
(see :func:`~.verifier.verify`), so no run saves a checkpoint it never
checked against what is saved. Trust decisions stay in the verifier; this
module only stores notes.

:class:`DirectoryState` keeps one file per log in a directory (its name is
the hex SHA-256 of the origin), each the signed checkpoint note as received,
and refuses a directory or file that others can write: whoever can write the
owner's state can roll it back, and with it the rollback and fork checks it
exists for. :class:`MemoryState` is for tests and for programs that keep the
state elsewhere.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Protocol

from disclosure_ledger._core.checkpoints import SignedCheckpoint, peek_checkpoint
from disclosure_ledger._core.notes import MAX_NOTE_SIZE
from disclosure_ledger._fsutil import (
    check_not_writable_by_others,
    decode_utf8,
    origin_file,
    read_limited,
    write_atomic,
)
from disclosure_ledger.errors import LedgerError, VerifyInputError

__all__ = [
    "DirectoryState",
    "MemoryState",
    "StateStore",
    "load_state",
    "save_state",
    "state_file",
]


class StateStore(Protocol):
    """Where the owner's verifier keeps the last checkpoint note it verified, per origin."""

    def load(self, origin: str) -> str | None:
        """Return the saved note of ``origin``, or ``None`` when there is none yet."""
        ...

    def compare_and_swap(self, origin: str, expected: str | None, new: str) -> bool:
        """Replace the note of ``origin`` with ``new`` if it is still ``expected``.

        Returns whether it was replaced; ``expected`` ``None`` means "no note yet".
        """
        ...


class MemoryState:
    """A :class:`StateStore` in memory, safe across threads."""

    def __init__(self) -> None:
        self._notes: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self, origin: str) -> str | None:
        """Return the saved note of ``origin``, or ``None``.

        Raises:
            Nothing: a dictionary read.
        """
        with self._lock:
            return self._notes.get(origin)

    def compare_and_swap(self, origin: str, expected: str | None, new: str) -> bool:
        """Replace the note of ``origin`` with ``new`` if it is still ``expected``.

        Raises:
            Nothing: a dictionary update.
        """
        with self._lock:
            if self._notes.get(origin) != expected:
                return False
            self._notes[origin] = new
            return True


class DirectoryState:
    """A :class:`StateStore` in a directory of the owner's: one file per log, under a lock."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"DirectoryState({str(self.directory)!r})"

    def path(self, origin: str) -> Path:
        """The file that holds the note of ``origin`` (nothing is read or created).

        Raises:
            Nothing: a pure path computation.
        """
        return origin_file(self.directory, origin)

    def load(self, origin: str) -> str | None:
        """Return the saved note of ``origin``, or ``None`` if there is none yet.

        Raises:
            VerifyInputError: if the directory or file cannot be read, is
                writable by others, or is not a text note.
        """
        path = self.path(origin)
        if self.directory.exists() and not self.directory.is_dir():
            raise VerifyInputError(f"{self.directory}: the state path is not a directory")
        check_not_writable_by_others(self.directory, "state directory", VerifyInputError)
        check_not_writable_by_others(path, "saved state", VerifyInputError)
        raw = read_limited(path, MAX_NOTE_SIZE, "saved state", VerifyInputError, missing_ok=True)
        return None if raw is None else decode_utf8(raw, path, "saved state", VerifyInputError)

    def compare_and_swap(self, origin: str, expected: str | None, new: str) -> bool:
        """Replace the note of ``origin`` with ``new`` if it is still ``expected``, atomically.

        The directory is created (mode 0700) if missing. Under an exclusive
        ``flock`` on ``DIR/.lock``, the file is read, compared, and written
        beside its final name, fsynced and renamed over it, so concurrent runs
        and processes never interleave and a crash leaves the old note or the new.

        Raises:
            VerifyInputError: if the directory or file cannot be created,
                read or written.
        """
        target = self.path(origin)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise VerifyInputError(
                f"{self.directory}: cannot use the state directory: {err.strerror}"
            ) from err
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if self.load(origin) != expected:
                return False
            try:
                write_atomic(target, new.encode("utf-8"))
            except OSError as err:
                raise VerifyInputError(f"{target}: cannot save the state: {err.strerror}") from err
            return True
        finally:
            os.close(lock_fd)  # closing the descriptor releases the flock


def state_file(state_dir: str | os.PathLike[str], origin: str) -> Path:
    """Return the file that holds the last verified checkpoint of ``origin``.

    Its name is the hex SHA-256 of the origin, so any origin makes a safe name.

    Raises:
        Nothing: a pure path computation that touches no file.
    """
    return DirectoryState(state_dir).path(origin)


def load_state(state_dir: str | os.PathLike[str], origin: str) -> str | None:
    """Return the saved checkpoint note of ``origin`` in ``state_dir``, or ``None``.

    The note is returned as text; :func:`~.verifier.verify` checks its signature.

    Raises:
        VerifyInputError: as :meth:`DirectoryState.load`.
    """
    return DirectoryState(state_dir).load(origin)


def save_state(state: str | os.PathLike[str] | StateStore, signed: SignedCheckpoint) -> bool:
    """Remember ``signed`` as the last verified checkpoint of its origin, never moving back.

    If a checkpoint at least as large is already saved, nothing changes.
    This takes no decision on trust: :func:`~.verifier.verify` checks a
    bundle against the saved state before it saves. Returns whether the
    state was written.

    Raises:
        VerifyInputError: as :meth:`DirectoryState.compare_and_swap`.
    """
    store = state if not isinstance(state, str | os.PathLike) else DirectoryState(state)
    origin = signed.checkpoint.origin
    while True:
        current = store.load(origin)
        if current is not None:
            try:
                if peek_checkpoint(current).size >= signed.checkpoint.size:
                    return False
            except LedgerError:
                pass  # an unreadable note is replaced, as before the swap
        if store.compare_and_swap(origin, current, signed.note):
            return True
