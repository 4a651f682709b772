"""The owner's commands: ``export`` and ``verify``, added to the main command group.

This module owns those two commands' options, outputs and exit codes:
0 verified (or exported); 1 the ledger failed verification, including
malformed or truncated content; 2 the command could not run (bad usage, a
missing or unreadable file, a bad key, policy, trusted checkpoint or state).
Every error is one line on standard error, ``disclosure-ledger: error:
<message>``, never a traceback; a failed verification names its class and,
where it has one, the record index.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from disclosure_ledger._cli.kit import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    CommandFailedError,
    read_policy_file,
)
from disclosure_ledger._cli.target import LedgerTarget, ledger_target
from disclosure_ledger._core.notes import (
    KEY_TYPE_COSIGNATURE,
    KEY_TYPE_ED25519,
    MAX_NOTE_SIZE,
    Verifier,
    parse_verifier,
)
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._fsutil import check_output, read_limited
from disclosure_ledger._log.export import export_ledger
from disclosure_ledger._log.tilereader import DEFAULT_TIMEOUT
from disclosure_ledger._verify.report import render_failure_json, render_json, render_text
from disclosure_ledger._verify.tiles import verify_published
from disclosure_ledger._verify.verifier import (
    DEFAULT_MAX_LISTED,
    Report,
    VerifyInputError,
    verify,
)
from disclosure_ledger.errors import (
    LedgerError,
    MalformedError,
    NotPublishedError,
    VerificationError,
)
from disclosure_ledger.keys import read_verifier_file

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "register"]


# The shared one-line errors (see _clikit): exit 2, and exit 1 for a failed verification.


def _read_checkpoint_file(path: Path) -> bytes:
    return read_limited(path, MAX_NOTE_SIZE, "checkpoint file", CommandError)


def _verifier(value: str, option: str) -> Verifier:
    """A verifier key from a .pub file, or given inline as a key string."""
    try:
        if not Path(value).exists() and value.count("+") >= 2:
            return parse_verifier(value)
        return read_verifier_file(value)
    except LedgerError as err:
        raise CommandError(f"{option}: {err}") from err


def _signing_key(value: str, option: str) -> Verifier:
    """An Ed25519 (type 0x01) key: a log or writer key. Anything else is a usage error."""
    v = _verifier(value, option)
    if v.key_type != KEY_TYPE_ED25519:
        kind = (
            "a cosignature (type 0x04, witness)"
            if v.key_type == KEY_TYPE_COSIGNATURE
            else (f"a type 0x{v.key_type:02x}")
        )
        raise CommandError(
            f"{option}: {v.name} is {kind} key; {option} needs an Ed25519 (type 0x01) key"
        )
    return v


def _policy(policy_file: Path | None, log_key: str | None, writer_keys: tuple[str, ...]) -> Policy:
    base = Policy()
    if policy_file is not None:
        base = read_policy_file(policy_file)
    logs = list(base.logs)
    if log_key is not None:
        v = _signing_key(log_key, "--log-key")
        if v not in logs:
            logs.append(v)
    writers = list(base.writers)
    for text in writer_keys:
        v = _signing_key(text, "--writer-key")
        if v not in writers:
            writers.append(v)
    if not logs:
        raise CommandError("give --log-key, or a --policy with a 'log' line")
    return Policy(tuple(logs), tuple(writers), base.witnesses, base.groups, base.quorum)


def _failure_message(err: LedgerError) -> str:
    index = getattr(err, "index", None)
    text = str(err)
    where = f" at record {index}" if index is not None else ""
    # The verifier's messages leave the index to ``index``; records.verify_envelope
    # (the anchor record's signature) still starts its message with it.
    prefix = f"record {index}: "
    if where and text.startswith(prefix):
        text = text[len(prefix) :]
    return f"verification failed: {type(err).__name__}{where}: {text}"


@click.command("export")
@ledger_target
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "from_size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="M",
    help="Export only the records from checkpointed size M on (a range bundle).",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never the ledger).")
def export_command(*, ledger: LedgerTarget, out: Path, from_size: int, force: bool) -> None:
    """Write LEDGER (or the range from size M) to the bundle file OUT for its owner.

    OUT must not exist unless --force is given. It is never the ledger or one
    of its SQLite files, however spelled (a symbolic or hard link, ./), even
    with --force. With --force a symbolic link at OUT is replaced by the
    bundle, not written through.

    \f
    Raises:
        CommandError: (exit 2) if LEDGER cannot be opened, M is not a checkpointed
            size, OUT is refused, or OUT cannot be written.
    """
    # Checked before the ledger is opened too: opening it must not be what a
    # refusal depends on, and a refused OUT should cost nothing.
    check_output(
        out,
        force=force,
        protect=() if ledger.is_database else (ledger.path,),
        error=CommandError,
        what="bundle",
        force_hint="; give --force to replace it",
    )
    try:
        with ledger.open(readonly=True) as lg:
            summary = export_ledger(lg, out, from_size, force=force)
    except LedgerError as err:
        raise CommandError(str(err)) from err
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise CommandError(f"{where}{err.strerror or err}") from err
    click.echo(
        f"exported records {summary.from_size}..{summary.to_size} of {summary.origin}"
        f" ({summary.record_count} records, {summary.bytes_written} bytes) to {out}"
    )


@click.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path), required=False)
@click.option(
    "--tiles",
    metavar="URL_OR_DIR",
    help="Verify a log published as C2SP tlog-tiles (a directory or http(s):// prefix)"
    " instead of a bundle.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="With --tiles: seconds a fetch may stall before it is abandoned.",
)
@click.option("--log-key", metavar="PUB", help="The log's public key: a .pub file or key string.")
@click.option(
    "--writer-key",
    "writer_keys",
    multiple=True,
    metavar="PUB",
    help="A writer key trusted to sign records (repeatable). Default: the log key.",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path),
    help="A trust policy file: log, writer, witness, group and quorum lines.",
)
@click.option(
    "--trusted-checkpoint",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="A signed checkpoint you saw before; the bundle must be consistent with it.",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Remember the last verified checkpoint per log in DIR, and check against it.",
)
@click.option(
    "--evidence",
    "evidence_file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Where to write split-view evidence if the log is caught signing two histories"
    " (default: DIR/evidence/ of --state, else beside --trusted-checkpoint). Never overwrites.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option(
    "--max-listed",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_LISTED,
    show_default=True,
    metavar="N",
    help="List at most N accesses of each kind in full (all are counted).",
)
def verify_command(
    *,
    bundle: Path | None,
    tiles: str | None,
    timeout: float,
    log_key: str | None,
    writer_keys: tuple[str, ...],
    policy_file: Path | None,
    trusted_checkpoint: Path | None,
    state_dir: Path | None,
    evidence_file: Path | None,
    as_json: bool,
    max_listed: int,
) -> None:
    """Verify the bundle BUNDLE (or --tiles) with the keys you trust; list every access by others.

    With --tiles, the published log is read from a directory or an http(s)
    prefix; the checks, the report and --state are the same, and with --state
    only the tiles beyond the saved size are fetched.

    Exit status: 0 verified; 1 the ledger failed verification (tampered,
    malformed or truncated); 2 the verification could not run. If the log
    signed a checkpoint that contradicts the one in --state or
    --trusted-checkpoint, the split-view evidence is written (see --evidence)
    and the error line says where.

    \f
    Raises:
        CommandFailedError: (exit 1) for a MalformedError or VerificationError from
            :func:`~.verify.verify`; with --json the failure report is printed first.
        CommandError: (exit 2) if a key, the policy, the trusted checkpoint, the
            state directory or BUNDLE cannot be read or used.
    """
    if (bundle is None) == (tiles is None):
        raise click.UsageError("give either BUNDLE or --tiles URL_OR_DIR")
    policy = _policy(policy_file, log_key, writer_keys)
    trusted = None if trusted_checkpoint is None else _read_checkpoint_file(trusted_checkpoint)
    check: Callable[..., Report] = (
        verify if tiles is None else functools.partial(verify_published, timeout=timeout)
    )
    with contextlib.ExitStack() as stack:
        progress = _progress(stack) if _stderr_is_terminal() else None
        try:
            report = check(
                bundle if tiles is None else tiles,
                policy,
                trusted=trusted,
                state_dir=state_dir,
                progress=progress,
                max_listed=max_listed,
                evidence_file=evidence_file,
                evidence_dir=None
                if state_dir is not None or trusted_checkpoint is None
                else trusted_checkpoint.parent,
            )
        except VerifyInputError as err:
            raise CommandError(str(err)) from err
        except (MalformedError, VerificationError, NotPublishedError) as err:
            # A published log missing a file its checkpoint needs fails verification.
            if as_json:
                click.echo(render_failure_json(err), nl=False)
            raise CommandFailedError(_failure_message(err)) from err
        except LedgerError as err:
            raise CommandError(str(err)) from err
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            raise CommandError(f"{where}{err.strerror or err}") from err
    click.echo(render_json(report) if as_json else render_text(report), nl=False)


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _progress(stack: contextlib.ExitStack) -> Callable[[int, int], None]:
    """A progress callback that draws a bar on standard error, created on first use."""
    bar: list[Any] = []
    shown = [0]

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(
                stack.enter_context(
                    click.progressbar(length=total, label="verifying", file=sys.stderr)
                )
            )
        bar[0].update(done - shown[0])
        shown[0] = done

    return update


def register(cli: click.Group) -> None:
    """Add the ``export`` and ``verify`` commands to ``cli``.

    Raises:
        Nothing: :meth:`click.Group.add_command` replaces a command of the same name.
    """
    cli.add_command(export_command, "export")
    cli.add_command(verify_command, "verify")
