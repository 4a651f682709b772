"""Where a command's ledger is: a file, or a log of a PostgreSQL database.

This module owns the ``LEDGER`` argument and the ``--log ORIGIN`` option that
go with it. A command decorated with :func:`ledger_target` receives a
:class:`LedgerTarget`: ``LEDGER`` is a ledger file, or a ``postgresql://`` URL
naming a database of many logs, and then ``--log`` names the log. A URL is
only ever shown without its password.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from disclosure_ledger._cli.kit import CommandError
from disclosure_ledger._core.notes import Signer
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._store.pg_schema import redact_url
from disclosure_ledger.keys import derive_log_key, read_signer_file

__all__ = [
    "LedgerTarget",
    "is_url",
    "ledger_target",
    "ledger_target_optional",
    "master_key_option",
    "read_log_key",
    "target_of",
]

F = TypeVar("F", bound=Callable[..., Any])


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``scheme://...``) rather than a file name."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isascii() and scheme.replace("+", "").isalnum()


@dataclass(frozen=True, slots=True)
class LedgerTarget:
    """A ledger file (``log`` is None) or the log ``log`` of the database at ``url``."""

    text: str
    log: str | None

    @property
    def is_database(self) -> bool:
        """Whether this is a log of a PostgreSQL database."""
        return self.log is not None

    @property
    def path(self) -> Path:
        """The ledger file.

        Raises:
            CommandError: if this is a database (a command that takes files only).
        """
        if self.log is not None:
            raise CommandError(f"{self.shown}: this command takes a ledger file, not a database")
        return Path(self.text)

    @property
    def shown(self) -> str:
        """How messages name it: the file, or the URL without its password and the log."""
        if self.log is None:
            return self.text
        return f"{redact_url(self.text)} --log {self.log}"

    def open(
        self,
        *,
        readonly: bool = False,
        log_key: Signer | None = None,
        writers: Sequence[Signer] = (),
    ) -> Ledger:
        """Open the ledger.

        Raises:
            StorageError: if it cannot be opened (the message never shows a password).
        """
        if self.log is None:
            return Ledger.open(Path(self.text), readonly=readonly, log_key=log_key, writers=writers)
        return Ledger.open(
            self.text, origin=self.log, readonly=readonly, log_key=log_key, writers=writers
        )


def target_of(ledger: str, log: str | None) -> LedgerTarget:
    """The target ``LEDGER [--log ORIGIN]`` names.

    Raises:
        CommandError: for a URL of another scheme, a URL without ``--log``, or
            ``--log`` with a file.
    """
    return _target(ledger, log)


def _target(ledger: str, log: str | None) -> LedgerTarget:
    if is_url(ledger):
        scheme = ledger.partition("://")[0]
        if scheme not in ("postgresql", "postgres"):
            raise CommandError(
                f"{redact_url(ledger)}: not a ledger file or a postgresql:// URL"
                f" (the scheme {scheme!r} is not supported)"
            )
        if not log:
            raise CommandError(
                f"{redact_url(ledger)}: a database holds many logs; name one with --log ORIGIN"
            )
        return LedgerTarget(ledger, log)
    if log is not None:
        raise CommandError(f"--log names a log of a postgresql:// database, not of {ledger}")
    return LedgerTarget(ledger, None)


def _ledger_argument(f: F, *, required: bool) -> F:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ledger, log = kwargs.pop("ledger"), kwargs.pop("log")
        if ledger is None and log is not None:
            raise CommandError("--log names a log of a postgresql:// LEDGER; give the LEDGER")
        kwargs["ledger"] = None if ledger is None else _target(ledger, log)
        return f(*args, **kwargs)

    wrapper = click.option(
        "--log",
        metavar="ORIGIN",
        help="With a postgresql:// URL as LEDGER: the log (its origin) in that database.",
    )(wrapper)
    argument = click.argument("ledger", metavar="LEDGER", required=required)
    return argument(wrapper)  # type: ignore[return-value]


def ledger_target(f: F) -> F:
    """Add ``LEDGER`` and ``--log ORIGIN``; the command gets ``ledger: LedgerTarget``."""
    return _ledger_argument(f, required=True)


def ledger_target_optional(f: F) -> F:
    """As :func:`ledger_target`, but ``LEDGER`` may be left out (the command gets None)."""
    return _ledger_argument(f, required=False)


def master_key_option(f: F) -> F:
    """Add ``--master-key FILE``: derive the log key from a master key and the origin."""
    return click.option(
        "--master-key",
        type=click.Path(path_type=Path),
        help="Derive the log key from this master key file and the origin (decision 0009).",
    )(f)


def read_log_key(
    log_key: Path | None, master_key: Path | None, origin: str | None, passphrase: str | None
) -> Signer | None:
    """The log key from ``--log-key``, or derived from ``--master-key`` for ``origin``.

    Raises:
        CommandError: if both are given, or a master key is given without an origin.
        KeyFormatError: if a key file is unusable or the passphrase is wrong.
    """
    if log_key is not None and master_key is not None:
        raise CommandError("give --log-key or --master-key, not both")
    if log_key is not None:
        return read_signer_file(log_key, passphrase)
    if master_key is None:
        return None
    if origin is None:
        raise CommandError("--master-key needs the log's origin (--log, or --origin for init)")
    return derive_log_key(read_signer_file(master_key, passphrase), origin)
