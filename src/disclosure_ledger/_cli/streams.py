"""Files and streams for the commands: ``-`` for standard input or output, and safe outputs.

This module owns how a command reads a file argument that may be ``-``
(standard input) and writes an output that may be ``-`` (standard output),
so that every command treats ``-`` the same way. A written file replaces the
old one whole (a temporary file renamed over it), and is never one of the
inputs the command was given (the bundle, a policy, a ledger), however
spelled: a report written over its own bundle would destroy the evidence.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import click

from disclosure_ledger._cli.kit import CommandError
from disclosure_ledger._fsutil import atomic_file, check_output

__all__ = ["STDIO", "OutputTarget", "is_stdio", "open_input"]

STDIO = "-"
"""The file name that means standard input (when read) or standard output (when written)."""


def is_stdio(path: str | os.PathLike[str] | None) -> bool:
    """Whether ``path`` is ``-``.

    Raises:
        Nothing.
    """
    return path is not None and os.fspath(path) == STDIO


class OutputTarget:
    """Where a command writes one text output: a file (replaced whole) or standard output.

    ``None`` means no output was asked for, and :meth:`write` does nothing.
    ``protect`` pairs each input with what it is ("the bundle").
    The file is checked before any work is done (:meth:`__init__`), so a
    refused output costs nothing.

    Raises:
        CommandError: from the constructor, if the file is a directory or one of ``protect``.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        protect: Iterable[tuple[str | os.PathLike[str] | None, str]] = (),
        what: str = "output file",
    ) -> None:
        self.path = path
        self.to_stdout = is_stdio(path)
        if path is None or self.to_stdout:
            return
        for other, name in protect:
            if other is None or is_stdio(other):
                continue
            check_output(
                path,
                force=True,
                protect=(other,),
                error=CommandError,
                what=what,
                protected_what=name,
            )
        check_output(path, force=True, error=CommandError, what=what)

    def write(self, make: Callable[[], str]) -> None:
        """Write the text ``make()`` returns (called only if an output was asked for).

        Raises:
            CommandError: if the file cannot be written.
        """
        if self.path is None:
            return
        text = make()
        if self.to_stdout:
            click.echo(text, nl=False)
            return
        try:
            with atomic_file(self.path) as fh:
                fh.write(text.encode("utf-8"))
        except OSError as err:
            raise CommandError(f"{self.path}: cannot write: {err.strerror or err}") from err


class open_input:  # noqa: N801 - used like open()
    """Open a file for binary reading, or standard input for ``-``.

    Raises:
        CommandError: from ``__enter__``, if the file cannot be opened.
    """

    def __init__(self, name: str | os.PathLike[str], what: str = "file") -> None:
        self._name = os.fspath(name)
        self._what = what
        self._owned: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self._name == STDIO:
            return sys.stdin.buffer
        try:
            self._owned = Path(self._name).open("rb")
        except IsADirectoryError as err:
            raise CommandError(f"{self._name}: is a directory, not {self._what}") from err
        except FileNotFoundError as err:
            raise CommandError(f"{self._name}: no such file") from err
        except OSError as err:
            raise CommandError(f"{self._name}: cannot read: {err.strerror}") from err
        return self._owned

    def __exit__(self, *exc: object) -> None:
        if self._owned is not None:
            self._owned.close()
