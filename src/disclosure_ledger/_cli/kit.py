"""Click pieces shared by the command modules (cli, cli_owner, cli_witness).

This module owns what every command has in common: the program name, the exit
codes, and the one-line error a command raises to stop. The main group
(``cli._Group``) turns library and OS errors into these; a command raises
them itself only when it reports an error differently (for example, when
malformed input to a check is a "no", exit 1, rather than a usage error).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from disclosure_ledger._core.policy import MAX_POLICY_SIZE, Policy, parse_policy
from disclosure_ledger._fsutil import read_limited
from disclosure_ledger.errors import MalformedError

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "CommandError",
    "CommandFailedError",
    "passphrase_options",
    "read_policy_file",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
PROG = "disclosure-ledger"

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    """A command cannot run: reported as one ``disclosure-ledger: error: ...`` line, exit 2."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        # One line, whatever the message: tools read the first line of stderr.
        super().__init__(" ".join(part.strip() for part in message.splitlines() if part.strip()))

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the one error line to standard error (or ``file``).

        Raises:
            Nothing on purpose: it writes one line; an OSError from the write passes through.
        """
        click.echo(f"{PROG}: error: {self.format_message()}", file=file, err=file is None)


class CommandFailedError(CommandError):
    """A check or verification failed, or input was refused: one line, exit 1."""

    exit_code = EXIT_FAILED


def passphrase_options(f: F) -> F:
    """Add ``--passphrase-file`` and ``--passphrase-env`` to a command.

    Raises:
        Nothing: it only declares options.
    """
    f = click.option(
        "--passphrase-env",
        metavar="VAR",
        help="Read the key passphrase from environment variable VAR.",
    )(f)
    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the key passphrase from the first line of FILE.",
    )(f)


def read_policy_file(path: Path) -> Policy:
    """Read and parse a policy file for a command.

    Raises:
        CommandError: if it cannot be read or is not a valid policy.
    """
    try:
        return parse_policy(read_limited(path, MAX_POLICY_SIZE, "policy file", CommandError))
    except MalformedError as err:
        raise CommandError(f"{path}: {err}") from err
