"""Command-line commands for publishing a ledger as C2SP tlog-tiles and reading it back.

This module owns ``publish`` and the tile side of ``prove --tiles``; :func:`register`
adds ``publish`` to the ``disclosure-ledger`` group. Errors follow the main
CLI's rule: one line on standard error and a non-zero exit, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from disclosure_ledger._cli.owner import _signing_key
from disclosure_ledger._cli.target import LedgerTarget, ledger_target
from disclosure_ledger._core.checkpoints import format_receipt
from disclosure_ledger._log.publish import publish
from disclosure_ledger._log.tilereader import DEFAULT_TIMEOUT, TileLog, open_source

__all__ = ["prove_from_tiles", "register"]


@click.command("publish")
@ledger_target
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def _publish(*, ledger: LedgerTarget, directory: Path) -> None:
    """Publish LEDGER into DIRECTORY as C2SP tlog-tiles (checkpoint, tiles, entry bundles).

    LEDGER is a ledger file, or a postgresql:// URL with --log ORIGIN naming
    the log in that database.

    Only what is new since the checkpoint already in DIRECTORY is written; a
    directory holding another log is refused. Serve DIRECTORY from any web
    server, CDN or bucket.

    \f
    Raises:
        StorageError: if the ledger cannot be read, or the directory holds
            another log or cannot be written.
    """
    with ledger.open(readonly=True) as lg:
        summary = publish(lg, directory)
    click.echo(
        f"published {summary.origin} at size {summary.to_size} to {summary.directory}"
        f" (from size {summary.from_size}; {summary.files_written} files,"
        f" {summary.bytes_written} bytes written)"
    )


def prove_from_tiles(
    where: str, log_key: str | None, index: int, *, timeout: float = DEFAULT_TIMEOUT
) -> str:
    """Return the receipt of entry ``index`` of the log published at ``where``, as text.

    Raises:
        click.UsageError: if ``log_key`` is missing.
        LedgerError: if the publication cannot be read or does not match its checkpoint.
    """
    if log_key is None:
        raise click.UsageError("--tiles needs --log-key: the receipt's checkpoint is verified")
    key = _signing_key(log_key, "--log-key")
    return format_receipt(TileLog(open_source(where, timeout=timeout)).receipt(key, index))


def register(cli: click.Group) -> None:
    """Add ``publish`` to ``cli``.

    Raises:
        ValueError: if ``cli`` already has a command of that name.
    """
    if "publish" in cli.commands:
        raise ValueError("the CLI already has a command 'publish'")
    cli.add_command(_publish)
