"""Small file-system helpers shared by the modules that persist state atomically."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


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
