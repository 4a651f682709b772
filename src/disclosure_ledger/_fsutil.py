"""Small file-system helpers shared by the modules that keep state in files.

Atomic replacement (temporary file, fsync, rename, directory fsync), bounded
reads of small files, and the file name a state directory uses for an origin.
Each caller names the error family its faults are reported in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
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
def atomic_file(path: Path, *, overwrite: bool = True, buffering: int = -1) -> Iterator[IO[bytes]]:
    """Yield a file that replaces ``path`` whole, or not at all, when the block ends.

    The data goes to a temporary file beside ``path``, is fsynced, then renamed
    over ``path`` (or, with ``overwrite=False``, linked to it so an existing file
    is never replaced), and the directory is fsynced. On error the temporary
    file is removed and ``path`` is untouched. ``buffering`` is as for :func:`open`
    (a large buffer suits a long streamed export).

    Raises:
        FileExistsError: if ``overwrite`` is false and ``path`` exists.
        OSError: if the file cannot be written.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + "-", suffix=".tmp")
    try:
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
