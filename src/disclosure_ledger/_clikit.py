"""Click pieces shared by the command modules (cli, cli_owner, cli_witness)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


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
