"""Small file-system helpers shared by the modules that keep state in files.

Atomic replacement (temporary file, fsync, rename, directory fsync), the one
way a command writes an output file (:func:`open_output`: never over an
existing file unless forced, never over a file it must protect), bounded
reads of small files, the permission checks on secret files and state
directories, and the file name a state directory uses for an origin. Each
caller names the error family its faults are reported in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Literal, overload


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable, where the OS allows it.

    Raises:
        Nothing: a directory that cannot be opened or synced (some file systems
            refuse) is left as it is; the file's own fsync already happened.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(
    path: Path, *, overwrite: bool = True, buffering: int = -1, mode: int = 0o600
) -> Iterator[IO[bytes]]:
    """Yield a file that replaces ``path`` whole, or not at all, when the block ends.

    The data goes to a temporary file beside ``path``, is fsynced, then renamed
    over ``path`` (or, with ``overwrite=False``, linked to it so an existing file
    is never replaced), and the directory is fsynced. On error the temporary
    file is removed and ``path`` is untouched. ``buffering`` is as for :func:`open`
    (a large buffer suits a long streamed export). The file gets permission
    bits ``mode`` (0600 unless asked: a state file or a key is nobody else's).

    Raises:
        FileExistsError: if ``overwrite`` is false and ``path`` exists.
        OSError: if the file cannot be written.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + "-", suffix=".tmp")
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", buffering=buffering) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (see :func:`atomic_file`).

    Raises:
        OSError: if the file cannot be written.
    """
    with atomic_file(path) as fh:
        fh.write(data)


#: The files SQLite keeps beside a database while it is open or after a crash.
#: Writing over one of them damages the ledger as surely as writing over it.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _same_file(a: Path, b: Path) -> bool:
    # Equal after resolving symbolic links and "." / ".." (catches a file that
    # does not exist yet, such as a -wal), or the same inode (catches a hard
    # link, a bind mount, a case-insensitive spelling).
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_output(
    path: Path,
    *,
    force: bool,
    protect: Iterable[str | os.PathLike[str]] = (),
    error: Callable[[str], Exception],
    what: str = "output file",
    force_hint: str = "",
    protected_what: str = "the ledger",
) -> None:
    """Refuse ``path`` as an output if writing it could destroy something.

    ``path`` must not be any file in ``protect`` (nor, for each, its SQLite
    companions: ``-wal``, ``-shm``, ``-journal``), however it is spelled: a
    symbolic link to one, a hard link, ``./`` or ``..`` spellings. ``force``
    does not lift this. Unless ``force``, ``path`` must not exist at all (a
    dangling symbolic link counts as existing). A directory is always refused.
    ``force_hint`` is added to the "already exists" message (a CLI names its
    option there); ``protected_what`` names what the protected files are.

    Raises:
        Exception: ``error("<path>: ...")`` naming the reason.
    """
    for protected in protect:
        base = Path(protected)
        for suffix in ("", *SQLITE_COMPANIONS):
            other = Path(str(base) + suffix)
            if _same_file(path, other):
                which = "" if not suffix else f"'s {suffix[1:]} file"
                raise error(
                    f"{path}: is {protected_what} {base}{which}; "
                    f"refusing to write the {what} over it"
                )
    if os.path.isdir(path):
        raise error(f"{path}: is a directory, not a {what}")
    if not force and os.path.lexists(path):
        raise error(f"{path}: already exists; refusing to overwrite it{force_hint}")


@contextlib.contextmanager
def open_output(
    path: str | os.PathLike[str],
    *,
    force: bool,
    protect: Iterable[str | os.PathLike[str]] = (),
    error: Callable[[str], Exception],
    what: str = "output file",
    force_hint: str = "",
    protected_what: str = "the ledger",
    mode: int = 0o600,
    buffering: int = -1,
) -> Iterator[IO[bytes]]:
    """Yield a file that becomes ``path`` when the block ends, if ``path`` may be written.

    Every command that writes a file writes it here. :func:`check_output`
    refuses ``path`` first; then the data goes to a temporary file beside it
    (:func:`atomic_file`), so a failure leaves nothing half-written and any old
    file intact. Without ``force`` the new file is linked into place, so a file
    that appeared at ``path`` meanwhile is still not replaced. With ``force``
    it is renamed over ``path``: a symbolic link at ``path`` is replaced by the
    file, never written through (and a link to a protected file is refused).

    Raises:
        Exception: ``error("<path>: ...")`` if ``path`` is refused or cannot be written.
    """
    p = Path(path)
    check_output(
        p,
        force=force,
        protect=protect,
        error=error,
        what=what,
        force_hint=force_hint,
        protected_what=protected_what,
    )
    try:
        with atomic_file(p, overwrite=force, buffering=buffering, mode=mode) as fh:
            yield fh
    except FileExistsError as err:
        raise error(f"{p}: already exists; refusing to overwrite it{force_hint}") from err
    except OSError as err:
        raise error(f"{p}: cannot write the {what}: {err.strerror or err}") from err


def check_private(path: Path, what: str, error: Callable[[str], Exception]) -> None:
    """Refuse a secret file (a private key) that users other than its owner can read or write.

    As ssh does with a private key: the key is already exposed, and using it
    without a word hides that. The fix is named in the message.

    Raises:
        Exception: ``error(...)`` naming the mode and the ``chmod`` that fixes it.
            A file that cannot be looked at passes: reading it reports that.
    """
    try:
        st = os.stat(path)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
        how = "readable" if st.st_mode & 0o044 else "writable"
        raise error(
            f"{path}: the {what} is {how} by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run chmod 600 {path}"
        )


def check_not_writable_by_others(path: Path, what: str, error: Callable[[str], Exception]) -> None:
    """Refuse a state directory or file that users other than its owner can write.

    Whoever can write a witness's state can roll it back or swap its
    configuration, and with it what the witness will cosign.

    Raises:
        Exception: ``error(...)`` naming the mode and the ``chmod`` that fixes it.
            A path that does not exist passes.
    """
    try:
        st = os.stat(path)
    except OSError:
        return
    if st.st_mode & 0o022:
        fix = "700" if stat.S_ISDIR(st.st_mode) else "600"
        raise error(
            f"{path}: the {what} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run chmod {fix} {path}"
        )


def read_small(path: Path, limit: int) -> bytes | None:
    """Return the bytes of ``path``, ``None`` if it does not exist.

    Reads at most ``limit + 1`` bytes, so an oversized file is never loaded:
    a result longer than ``limit`` means the file is too large.

    Raises:
        OSError: if the file exists but cannot be read (a directory included).
    """
    try:
        with path.open("rb") as fh:
            return fh.read(limit + 1)
    except FileNotFoundError:
        return None


@overload
def read_limited(
    path: Path,
    limit: int,
    what: str,
    error: Callable[[str], Exception],
    *,
    missing_ok: Literal[False] = False,
) -> bytes: ...


@overload
def read_limited(
    path: Path,
    limit: int,
    what: str,
    error: Callable[[str], Exception],
    *,
    missing_ok: Literal[True],
) -> bytes | None: ...


def read_limited(
    path: Path,
    limit: int,
    what: str,
    error: Callable[[str], Exception],
    *,
    missing_ok: bool = False,
) -> bytes | None:
    """Return the bytes of the small file ``path`` (``None`` if absent and ``missing_ok``).

    Every fault becomes ``error("<path>: ...")``, its message naming the file
    as ``what`` ("key file", "saved state"): a directory, an unreadable file,
    a missing one (unless ``missing_ok``), one larger than ``limit`` bytes.

    Raises:
        Exception: ``error(...)``, as above.
    """
    if path.is_dir():
        raise error(f"{path}: is a directory, not a {what}")
    try:
        raw = read_small(path, limit)
    except OSError as err:
        raise error(f"{path}: cannot read the {what}: {err.strerror}") from err
    if raw is None:
        if missing_ok:
            return None
        raise error(f"{path}: no such {what}")
    if len(raw) > limit:
        raise error(f"{path}: too large to be a {what}")
    return raw


def decode_utf8(raw: bytes, path: Path, what: str, error: Callable[[str], Exception]) -> str:
    """Return ``raw`` decoded as UTF-8, or raise ``error`` naming the file.

    Raises:
        Exception: ``error("<path>: the <what> is not valid UTF-8")``.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: the {what} is not valid UTF-8") from err


def origin_file(directory: str | os.PathLike[str], origin: str) -> Path:
    """The file a state directory keeps for ``origin``: its SHA-256 in hex.

    Raises:
        Nothing: hashing only.
    """
    return Path(directory) / hashlib.sha256(origin.encode("utf-8")).hexdigest()
