"""The ``disclosure-ledger`` command line, a thin layer over the public API.

This module owns the command names, their options and outputs (a contract that
other tools and tests depend on) and one rule: a user's mistake, a missing or
unusable file, or a tampered ledger gets one line on standard error,
``disclosure-ledger: error: <message>``, and a non-zero exit, never a
traceback. Exit codes: 0 success; 1 a failed check or verification, or refused
input (a bad event line, a duplicate ``event_id``); 2 a usage error or an
unusable input (a missing file, a bad key file, a file that is not a ledger).

Passphrases are read from a file (``--passphrase-file``) or an environment
variable (``--passphrase-env``), never from the command line, where other
users could see them in the process list. One passphrase serves every
encrypted key a command reads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from disclosure_ledger._cli import browse as cli_browse
from disclosure_ledger._cli import owner as cli_owner
from disclosure_ledger._cli import tiles as cli_tiles
from disclosure_ledger._cli import witness as cli_witness
from disclosure_ledger._cli.demo import MIN_RECORDS, run_demo
from disclosure_ledger._cli.kit import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CommandError,
    CommandFailedError,
    passphrase_options,
)
from disclosure_ledger._cli.output import emit, json_option
from disclosure_ledger._cli.owner import (  # the key and checkpoint readers verify uses
    _read_checkpoint_file,
    _signing_key,
)
from disclosure_ledger._cli.progress import Counter, bar_progress, stderr_is_terminal
from disclosure_ledger._cli.streams import open_input
from disclosure_ledger._cli.target import (
    LedgerTarget,
    is_url,
    ledger_target,
    ledger_target_optional,
    master_key_option,
    read_log_key,
    target_of,
)
from disclosure_ledger._core.checkpoints import (
    format_receipt,
    format_witness_request,
    open_checkpoint,
    peek_checkpoint,
)
from disclosure_ledger._core.notes import (
    KEY_TYPE_COSIGNATURE,
    KEY_TYPE_ED25519,
    KEY_TYPE_MLDSA44_COSIGNATURE,
    Signer,
    b64encode,
)
from disclosure_ledger._fsutil import SQLITE_COMPANIONS, check_output
from disclosure_ledger._log import pipeline
from disclosure_ledger._log.committer import AppendReceipt, sign_head
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._log.pipeline import ack_lines, append_jsonl
from disclosure_ledger._store.pg_schema import redact_url
from disclosure_ledger.errors import (
    ConflictError,
    DuplicateEventError,
    LedgerError,
    LineError,
    VerificationError,
)
from disclosure_ledger.keys import keygen as _keygen
from disclosure_ledger.keys import read_passphrase, read_signer_file

__all__ = [
    "APPEND_BATCH",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "CommandFailedError",
    "cli",
    "main",
]

_EXIT_INTERNAL = 3

#: The most event lines ``append`` validates and commits as one batch.
APPEND_BATCH = pipeline.APPEND_BATCH
_FORCE_HINT = "; give --force to replace it"

F = TypeVar("F", bound=Callable[..., Any])


def _error(message: str, exit_code: int) -> CommandError:
    return CommandFailedError(message) if exit_code == EXIT_FAILED else CommandError(message)


def _exit_code_for(err: LedgerError) -> int:
    # A record or proof that is false, or input that the ledger refuses, is a
    # "no" (1); anything that stops the command from running at all is 2.
    if isinstance(err, VerificationError | DuplicateEventError | ConflictError):
        return EXIT_FAILED
    return EXIT_USAGE


class _Group(click.Group):
    """A group that turns library and OS errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except LedgerError as err:
            raise _error(str(err), _exit_code_for(err)) from err
        except OSError as err:
            if err.errno == errno.EPIPE:
                # click exits quietly when the reader of our output went away.
                raise
            where = f"{err.filename}: " if err.filename else ""
            raise CommandError(f"{where}{err.strerror or err}") from err


# -- shared options --------------------------------------------------------------------


_key_path = click.Path(path_type=Path)


# -- the commands --------------------------------------------------------------------------


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="disclosure_ledger", prog_name=PROG)
def cli() -> None:
    """Signed, hash-chained, Merkle-proven ledger of every access to camera footage.

    \f
    Raises:
        Nothing: the group callback does no work; the group's ``invoke`` turns a
            subcommand's LedgerError or OSError into a one-line CommandError.
    """


@cli.command()
@click.argument("name")
@click.option(
    "--out", "prefix", required=True, metavar="PREFIX", help="Write PREFIX.key and PREFIX.pub."
)
@click.option("--witness", is_flag=True, help="Make a cosignature (type 0x04) key for a witness.")
@click.option(
    "--ml-dsa",
    "ml_dsa",
    is_flag=True,
    help="With --witness: an ML-DSA-44 (type 0x06, subtree/v1) cosignature key.",
)
@click.option("--force", is_flag=True, help="Replace PREFIX.key and PREFIX.pub if they exist.")
@passphrase_options
@json_option
def keygen(
    *,
    name: str,
    prefix: str,
    witness: bool,
    ml_dsa: bool,
    force: bool,
    as_json: bool,
    passphrase_file: Path | None,
    passphrase_env: str | None,
) -> None:
    """Generate a key: PREFIX.key (mode 0600) and PREFIX.pub; print the verifier key.

    The folder of PREFIX is created if it does not exist.

    An existing key file is never replaced without --force: a lost log key
    cannot sign its log again.

    \f
    Raises:
        CommandError: if a passphrase option is unusable or a file exists (without --force).
        KeyFormatError: if the name is not a key name or a file cannot be written.
    """
    if ml_dsa and not witness:
        raise CommandError("--ml-dsa makes a witness key: give --witness too")
    key_path, pub_path = Path(prefix + ".key"), Path(prefix + ".pub")
    folder = key_path.parent
    if not folder.is_dir():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CommandError(f"{folder}: cannot create the folder: {err.strerror}") from err
    for path, other in ((key_path, pub_path), (pub_path, key_path)):
        check_output(
            path,
            force=force,
            protect=(other,),
            error=CommandError,
            what="key file",
            force_hint=_FORCE_HINT,
            protected_what="the key file",
        )
    passphrase = read_passphrase(passphrase_file, passphrase_env)
    key_type = (
        KEY_TYPE_MLDSA44_COSIGNATURE
        if ml_dsa
        else KEY_TYPE_COSIGNATURE
        if witness
        else KEY_TYPE_ED25519
    )
    signer = _keygen(name, prefix, passphrase=passphrase, key_type=key_type, force=force)
    v = signer.verifier
    data = {
        "name": v.name,
        "key_id": f"{v.key_id:08x}",
        "type": "cosignature" if witness else "ed25519",
        "verifier_key": v.vkey,
        "private_key_file": str(key_path),
        "public_key_file": str(pub_path),
    }
    emit(data, v.vkey, as_json=as_json)


@cli.command()
@click.argument("ledger", metavar="LEDGER")
@click.option(
    "--origin",
    help="The log's origin: the log key's name (the default with --log-key; needed with"
    " --master-key, whose per-log key it names).",
)
@click.option("--log-key", type=_key_path, help="The log's signer key file.")
@master_key_option
@passphrase_options
@json_option
def init(
    *,
    ledger: str,
    origin: str | None,
    log_key: Path | None,
    master_key: Path | None,
    as_json: bool,
    passphrase_file: Path | None,
    passphrase_env: str | None,
) -> None:
    """Create a new ledger LEDGER whose checkpoints the log key signs.

    LEDGER is a new file, or a postgresql:// URL: the database's schema is
    created on first use, then the log ORIGIN in it.

    \f
    Raises:
        CommandError: if ORIGIN is not the log key's name or the key is a witness key.
        KeyFormatError: if the key file is unusable or the passphrase is wrong.
        StorageError: if LEDGER exists or cannot be created.
    """
    key_path = log_key or master_key
    if key_path is None:
        raise CommandError("give --log-key or --master-key: the key that signs checkpoints")
    if log_key is None and origin is None:
        raise CommandError("give --origin: with --master-key, the origin names the log's key")

    def signer() -> Signer:
        passphrase = read_passphrase(passphrase_file, passphrase_env)
        got = read_log_key(log_key, master_key, origin, passphrase)
        assert got is not None  # noqa: S101 - one of the two keys was given
        if got.key_type != KEY_TYPE_ED25519:
            raise CommandError(f"{key_path}: a log key must be an Ed25519 key, not a witness key")
        if origin is not None and origin != got.name:
            raise CommandError(
                f"--origin {origin!r} differs from the log key's name {got.name!r}; "
                "a ledger's origin is its log key's name"
            )
        return got

    if is_url(ledger):
        key = signer()
        target = target_of(ledger, key.name)  # a postgresql:// URL, or a clear refusal
        with Ledger.create(ledger, log_key=key, origin=key.name):
            pass
        shown = redact_url(target.text)
        data = {"ledger": shown, "origin": key.name, "log_key": key.verifier.vkey}
        emit(data, f"created the log {key.name} in {shown}", as_json=as_json)
        return
    path = Path(ledger)
    # Never over an existing file (there is no --force: a ledger is not replaced),
    # the log key, or a leftover -wal/-shm that SQLite would take as this ledger's.
    check_output(
        path,
        force=False,
        protect=(key_path,),
        error=CommandError,
        what="ledger",
        protected_what="the log key file",
    )
    for suffix in SQLITE_COMPANIONS:
        leftover = Path(ledger + suffix)
        if os.path.lexists(leftover):
            raise CommandError(
                f"{leftover}: a leftover SQLite file is in the way of the new ledger {ledger}; "
                "remove it if no ledger of that name exists"
            )
    key = signer()
    with Ledger.create(path, log_key=key, origin=key.name):
        pass
    data = {"ledger": ledger, "origin": key.name, "log_key": key.verifier.vkey}
    emit(data, f"created {ledger} for {key.name}", as_json=as_json)


# -- append ------------------------------------------------------------------------------


def _open_for_append(
    path: LedgerTarget, writer: Signer, log_key: Signer | None, writer_key_path: Path
) -> Ledger:
    if log_key is None:
        with path.open(readonly=True) as probe:
            log_verifier = probe.log_verifier
        if writer.verifier != log_verifier:
            raise CommandError(
                f"{writer_key_path} is not this ledger's log key "
                f"({log_verifier.name}+{log_verifier.key_id:08x}); appending signs a new "
                "checkpoint, so --log-key is needed"
            )
        log_key = writer
    return path.open(log_key=log_key, writers=[writer])


@cli.command()
@ledger_target
@click.argument(
    "file", required=False, default="-", type=click.Path(allow_dash=True, path_type=str)
)
@click.option("--writer-key", required=True, type=_key_path, help="Signs each record.")
@click.option(
    "--log-key",
    type=_key_path,
    help="Signs each commit's checkpoint (default: the writer key, if it is the log key).",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Print no acknowledgement per record, and no summary.",
)
@master_key_option
@passphrase_options
def append(
    *,
    ledger: LedgerTarget,
    file: str,
    writer_key: Path,
    log_key: Path | None,
    quiet: bool,
    master_key: Path | None,
    passphrase_file: Path | None,
    passphrase_env: str | None,
) -> None:
    """Append events read as JSON Lines from FILE (standard input if absent or "-").

    Prints {"index": N, "leaf_hash": "<base64>", "event_id": "..."} for each
    record once it is durable (none with --quiet). Lines are committed in
    batches of up to 1000: a batch ends when it is full or when no more input
    is available without waiting, so a terminal or a slow pipe is
    acknowledged line by line. A bad line stops the command with exit 1:
    every line before it is appended and acknowledged, nothing from it or
    after it is appended. At the end one line on standard error sums up:
    records, commits and rate. On a terminal a running count is shown on
    standard error while acknowledgements go elsewhere (or --quiet).

    \f
    Raises:
        CommandFailedError: for a bad line or a duplicate ``event_id`` (exit 1).
        CommandError: if FILE cannot be read or --log-key is needed.
        KeyFormatError: if a key file is unusable or the passphrase is wrong.
        StorageError: if the ledger cannot be opened or written.
    """
    passphrase = read_passphrase(passphrase_file, passphrase_env)
    writer = read_signer_file(writer_key, passphrase)
    log_signer = read_log_key(log_key, master_key, ledger.log, passphrase)

    drawn = stderr_is_terminal() and (quiet or not sys.stdout.isatty())
    counter = Counter("appending", sys.stderr if drawn else None)
    commits: set[int] = set()

    def ack(receipts: Sequence[AppendReceipt]) -> None:
        if not quiet:
            click.echo(ack_lines(receipts), nl=False)
        commits.update(r.checkpoint.checkpoint.size for r in receipts)
        counter.add(len(receipts))

    with (
        open_input(file, "an events file") as stream,
        _open_for_append(ledger, writer, log_signer, writer_key) as lg,
    ):
        try:
            append_jsonl(lg, stream, ack, batch_size=APPEND_BATCH)
        except LineError as err:
            counter.clear()
            raise CommandFailedError(str(err)) from err
    counter.clear()
    if not quiet:
        click.echo(
            f"appended {counter.count} records in {len(commits)}"
            f" commit{'' if len(commits) == 1 else 's'}"
            f" ({counter.elapsed():.2f} s, {counter.rate():.0f} records/s)",
            err=True,
        )


# -- reading ------------------------------------------------------------------------------


def _open_readonly(path: LedgerTarget) -> Ledger:
    return path.open(readonly=True)


@cli.command()
@ledger_target
@click.option(
    "--size", type=click.IntRange(min=0), help="The checkpoint of this size (default: latest)."
)
@click.option(
    "--sign",
    is_flag=True,
    help="First sign a checkpoint covering every record if none does (needs the log key).",
)
@click.option("--log-key", type=_key_path, help="With --sign: the log's signer key file.")
@master_key_option
@passphrase_options
def checkpoint(
    *,
    ledger: LedgerTarget,
    size: int | None,
    sign: bool,
    log_key: Path | None,
    master_key: Path | None,
    passphrase_file: Path | None,
    passphrase_env: str | None,
) -> None:
    """Print the latest (or size-N) signed checkpoint, with its stored cosignatures.

    With --sign, records that no checkpoint covers yet (left by a writer that
    died between its commit and its checkpoint) get one first.

    \f
    Raises:
        CommandError: if --sign is given without a log key.
        StorageError: if the ledger cannot be opened or has no checkpoint of that size.
    """
    if sign:
        signer = read_log_key(
            log_key, master_key, ledger.log, read_passphrase(passphrase_file, passphrase_env)
        )
        if signer is None:
            raise CommandError("--sign needs the log key: give --log-key or --master-key")
        with ledger.open(log_key=signer) as lg:
            signed_size = sign_head(lg.store, lg.origin, signer)
        if signed_size is not None:
            click.echo(f"signed a checkpoint of size {signed_size}", err=True)
    with _open_readonly(ledger) as lg:
        signed = lg.latest_checkpoint() if size is None else lg.checkpoint(size)
    click.echo(signed.note, nl=False)


@cli.command()
@ledger_target_optional
@click.option("--index", type=click.IntRange(min=0), help="Print a receipt for record I.")
@click.option(
    "--consistency",
    "old",
    type=click.IntRange(min=0),
    metavar="OLD",
    help="Print a witness add-checkpoint body from size OLD.",
)
@click.option(
    "--size",
    type=click.IntRange(min=0),
    help="Under the checkpoint of this size (default: latest).",
)
@click.option(
    "--tiles",
    metavar="URL_OR_DIR",
    help="Build the receipt from a log published as tlog-tiles instead of LEDGER.",
)
@click.option("--log-key", metavar="PUB", help="With --tiles: the log's public key.")
def prove(
    *,
    ledger: LedgerTarget | None,
    index: int | None,
    old: int | None,
    size: int | None,
    tiles: str | None,
    log_key: str | None,
) -> None:
    """Print a receipt (C2SP tlog-proof) or a witness request (tlog-witness add-checkpoint).

    With --index I: the receipt of record I, its leaf bytes on the extra line.
    With --tiles URL_OR_DIR --log-key PUB --index I: the same receipt, built
    from a published log (under its latest checkpoint) without the database.
    With --consistency OLD: "old OLD", the consistency proof, a blank line and
    the checkpoint.

    \f
    Raises:
        click.UsageError: unless exactly one of --index and --consistency is given.
        MalformedError: if the index or old size is beyond the checkpoint.
        StorageError: if the ledger cannot be opened or has no checkpoint of that size.
    """
    if (index is None) == (old is None):
        raise click.UsageError("give exactly one of --index and --consistency")
    if tiles is not None:
        if ledger is not None or index is None or size is not None:
            raise click.UsageError("--tiles takes --index and --log-key, and no LEDGER or --size")
        click.echo(cli_tiles.prove_from_tiles(tiles, log_key, index), nl=False)
        return
    if ledger is None:
        raise click.UsageError("give LEDGER (or --tiles URL_OR_DIR)")
    with _open_readonly(ledger) as lg:
        if index is not None:
            text = format_receipt(lg.receipt(index, size))
        else:
            assert old is not None  # noqa: S101 - checked above; this informs mypy
            text = format_witness_request(lg.witness_request(old, size))
    click.echo(text, nl=False)


@cli.command()
@ledger_target
@click.option(
    "--log-key",
    metavar="PUB",
    help="Require this log key (a .pub file or key string) and its name as the origin.",
)
@click.option(
    "--writer-key",
    "writer_keys",
    multiple=True,
    metavar="PUB",
    help="Require every record to be signed by one of these keys (repeatable).",
)
@click.option(
    "--trusted-checkpoint",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="A signed checkpoint held elsewhere; the ledger must extend it (catches a cut-back file).",
)
@json_option
def check(
    *,
    ledger: LedgerTarget,
    as_json: bool,
    log_key: str | None,
    writer_keys: tuple[str, ...],
    trusted_checkpoint: Path | None,
) -> None:
    """Rebuild chain, signatures, Merkle hashes, checkpoints and cosignatures; exit 1 on a fault.

    Without keys, trust comes from the file. A file re-signed under other keys
    is refused only with --log-key (and --writer-key); a file cut back to an
    earlier checkpoint only with --trusted-checkpoint.

    \f
    Raises:
        CommandFailedError: with the first fault found (exit 1).
        CommandError: if a key or the trusted checkpoint cannot be read or used (exit 2).
        StorageError: if the file cannot be opened as a ledger (exit 2).
    """
    pinned_log = None if log_key is None else _signing_key(log_key, "--log-key")
    writers = [_signing_key(w, "--writer-key") for w in writer_keys]
    note = None
    if trusted_checkpoint is not None:
        note = _read_checkpoint_file(trusted_checkpoint)
        try:
            peek_checkpoint(note)
            if pinned_log is not None:
                open_checkpoint(note, pinned_log)
        except LedgerError as err:
            raise CommandError(f"--trusted-checkpoint {trusted_checkpoint}: {err}") from err
    with _open_readonly(ledger) as lg, contextlib.ExitStack() as stack:
        try:
            report = lg.check(
                log_key=pinned_log,
                writer_keys=writers or None,
                trusted_checkpoint=note,
                progress=bar_progress(stack, "checking") if stderr_is_terminal() else None,
            )
        except LedgerError as err:
            # Whatever check finds wrong in the file is a failed check, not a usage error.
            raise CommandFailedError(f"check failed: {err}") from err
    extra = ""
    if report.cosignatures:
        extra += f", {report.cosignatures} cosignatures"
    if report.pinned:
        extra += ", signed by the given keys"
    if report.trusted_size is not None:
        extra += f", consistent with the trusted checkpoint of size {report.trusted_size}"
    data = {
        "ok": True,
        "size": report.size,
        "checkpoints": report.checkpoints,
        "root": b64encode(report.root),
        "cosignatures": report.cosignatures,
        "pinned": report.pinned,
        "trusted_size": report.trusted_size,
    }
    text = (
        f"ok: {report.size} records, {report.checkpoints} checkpoints, "
        f"root {b64encode(report.root)}{extra}"
    )
    emit(data, text, as_json=as_json)


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Work here (default: a new temporary directory).",
)
@click.option(
    "--records",
    "count",
    type=click.IntRange(min=MIN_RECORDS),
    default=200,
    show_default=True,
    help="How many events to log.",
)
def demo(*, directory: Path | None, count: int) -> None:
    """Create keys and a ledger, log a realistic mix of footage accesses, and show them.

    \f
    Raises:
        CommandError: if DIR cannot be created.
        StorageError: if DIR already holds a demo.
    """
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="disclosure-ledger-demo-"))
        click.echo(f"working in {directory}")
    else:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CommandError(f"{directory}: cannot create: {err.strerror}") from err
    run_demo(directory, count, sys.stdout)


# The owner's commands (export, verify) and the witness, receipt, gate and
# evidence commands live in their own modules.
cli_owner.register(cli)
cli_browse.register(cli)
cli_witness.register(cli)
cli_tiles.register(cli)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line and exit with its status.

    A bug (an exception that is not a :class:`LedgerError` or an ``OSError``)
    is reported in one line with exit code 3; set ``DISCLOSURE_LEDGER_TRACEBACK=1``
    to see the traceback.

    Raises:
        SystemExit: always, with the exit status.
    """
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name=PROG)
    except Exception as err:
        if os.environ.get("DISCLOSURE_LEDGER_TRACEBACK"):
            raise
        click.echo(
            f"{PROG}: internal error: {type(err).__name__}: {err} "
            "(a bug; set DISCLOSURE_LEDGER_TRACEBACK=1 to see where)",
            err=True,
        )
        sys.exit(_EXIT_INTERNAL)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
