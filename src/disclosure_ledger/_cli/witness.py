"""Command-line commands for witnesses, cosignatures, receipts, the release gate and evidence.

This module owns these commands' names, options and outputs; :func:`register`
adds them to the ``disclosure-ledger`` group. They follow the main CLI's rule:
a failure is one line on standard error, ``disclosure-ledger: error:
<message>``, never a traceback; the main group (``cli._Group``) reports
library and OS errors that way. Exit codes: 0 success; 1 a refusal or a
failed verification (a witness refusing a checkpoint, a receipt that does not
verify, a gate that does not release, evidence that proves nothing), including
malformed input to those checks; 2 a usage error or an unusable input (a
missing file, a bad key file).

``witness add`` speaks the command-witness protocol of
:mod:`.witness_client`: on success it prints the cosignature line; when the
witness holds another size than the request's ``old``, it also prints that
size alone on standard output (the protocol's 409 body) before exiting 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from disclosure_ledger._cli.kit import (
    CommandError,
    CommandFailedError,
    passphrase_options,
    read_policy_file,
)
from disclosure_ledger._cli.target import LedgerTarget, ledger_target
from disclosure_ledger._core.checkpoints import peek_checkpoint
from disclosure_ledger._core.evidence import (
    check_evidence,
    format_evidence,
    make_evidence,
    parse_evidence,
    write_evidence_file,
)
from disclosure_ledger._core.notes import (
    COSIGNATURE_TYPES,
    KEY_TYPE_COSIGNATURE,
    KEY_TYPE_ED25519,
    Verifier,
)
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._core.records import ActorKind, Party, check_party
from disclosure_ledger._fsutil import atomic_file
from disclosure_ledger._verify.gate import (
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_RECORD_AGE_SECONDS,
    FileGateState,
    ReleaseGate,
    verify_record_receipt,
)
from disclosure_ledger._verify.verifier import evidence_stem
from disclosure_ledger._witness.client import (
    CommandWitness,
    HttpWitness,
    LocalWitness,
    WitnessEndpoint,
    collect_cosignatures,
)
from disclosure_ledger._witness.server import DEFAULT_REQUEST_TIMEOUT, WitnessServer
from disclosure_ledger._witness.witness import StaleOldSizeError, Witness
from disclosure_ledger.errors import (
    KeyFormatError,
    LedgerError,
    MalformedError,
    StorageError,
    ValidationError,
    VerificationError,
)
from disclosure_ledger.keys import read_passphrase, read_signer_file, read_verifier_file

__all__ = ["register"]

_MAX_INPUT = 4 << 20


@contextlib.contextmanager
def _malformed_is_a_refusal() -> Iterator[None]:
    """Make malformed input to a check a "no" (exit 1), not a usage error (exit 2).

    A bad key file (:class:`KeyFormatError`) still means the check cannot run,
    so it passes through to the main group, which reports it with exit 2.
    """
    try:
        yield
    except KeyFormatError:
        raise
    except MalformedError as err:
        raise CommandFailedError(str(err)) from err


def _read_input(path: str, what: str) -> bytes:
    if path == "-":
        data = sys.stdin.buffer.read(_MAX_INPUT + 1)
    else:
        try:
            with Path(path).open("rb") as fh:
                data = fh.read(_MAX_INPUT + 1)
        except OSError as err:
            raise CommandError(f"{path}: cannot read the {what}: {err.strerror}") from err
    if len(data) > _MAX_INPUT:
        raise CommandError(f"{path}: the {what} is too large")
    return data


def _verifier(path: Path, want: int, what: str) -> Verifier:
    v = read_verifier_file(path)
    if v.key_type != want and not (want in COSIGNATURE_TYPES and v.key_type in COSIGNATURE_TYPES):
        kind = "a cosignature (type 0x04 or 0x06)" if want in COSIGNATURE_TYPES else "an Ed25519"
        raise CommandError(f"{path}: the {what} must be {kind} key")
    return v


_key_path = click.Path(exists=False, dir_okay=False, path_type=Path)


# -- witness init / add -------------------------------------------------------------------


@click.group("witness")
def _witness() -> None:
    """Run a witness: cosign a log's checkpoints only if each extends the last."""


@_witness.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key", "key_path", required=True, type=_key_path, help="The witness's key file.")
@click.option(
    "--log",
    "logs",
    required=True,
    multiple=True,
    type=_key_path,
    help="A followed log's .pub file (repeatable).",
)
@click.option(
    "--also-key",
    "also_path",
    type=_key_path,
    help="A second witness key of the other kind (an ML-DSA-44 key beside an Ed25519 one).",
)
@passphrase_options
def _witness_init(
    *,
    directory: Path,
    key_path: Path,
    logs: Sequence[Path],
    also_path: Path | None,
    passphrase_file: Path | None,
    passphrase_env: str | None,
) -> None:
    """Create a witness in DIRECTORY that cosigns with KEY the logs given."""
    passphrase = read_passphrase(passphrase_file, passphrase_env)
    key = read_signer_file(key_path, passphrase)
    also = None if also_path is None else read_signer_file(also_path, passphrase)
    for path, k in ((key_path, key), (also_path, also)):
        if k is not None and k.key_type not in COSIGNATURE_TYPES:
            raise CommandError(
                f"{path}: a witness key must be a cosignature key (keygen --witness)"
            )
    log_keys = [_verifier(p, KEY_TYPE_ED25519, "log key") for p in logs]
    try:
        w = Witness.init(
            directory, key, log_keys, key_file=key_path, also=also, also_key_file=also_path
        )
    except MalformedError as err:
        raise CommandError(str(err)) from err
    click.echo(f"witness {w.verifier.vkey}")
    for v in w.verifiers[1:]:
        click.echo(f"also {v.vkey}")
    for log in w.logs:
        click.echo(f"follows {log.vkey}")


def _open_witness(directory: Path, key_path: Path | None, passphrase: str | None) -> Witness:
    config = Witness.read_config(directory)
    path = key_path
    if path is None:
        if config.key_file is None:
            raise CommandError(f"{directory}: the witness records no key file; give --key")
        path = Path(config.key_file)
    also = None
    if config.also is not None:
        if config.also_key_file is None:
            raise CommandError(f"{directory}: the witness records no file for its second key")
        also = read_signer_file(Path(config.also_key_file), passphrase)
    return Witness.open(directory, read_signer_file(path, passphrase), also)


@_witness.command("add")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("request_file", metavar="REQUEST_FILE")
@click.option("--key", "key_path", type=_key_path, help="The witness's key file (default: init's).")
@passphrase_options
def _witness_add(
    *,
    directory: Path,
    request_file: str,
    key_path: Path | None,
    passphrase_file: Path | None,
    passphrase_env: str | None,
) -> None:
    """Check an add-checkpoint request (REQUEST_FILE, or - for stdin) and print the cosignature."""
    with _malformed_is_a_refusal():
        w = _open_witness(directory, key_path, read_passphrase(passphrase_file, passphrase_env))
    body = _read_input(request_file, "witness request")
    try:
        line = w.add_checkpoint(body, int(time.time()))
    except StaleOldSizeError as err:
        click.echo(str(err.current_size))
        raise CommandFailedError(str(err)) from err
    except StorageError as err:
        raise CommandError(str(err)) from err
    except LedgerError as err:
        # Any other refusal of the request, malformed or false, is the protocol's "no".
        raise CommandFailedError(str(err)) from err
    click.echo(line, nl=False)


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--listen")
    return host, int(port)


@_witness.command("serve")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--listen",
    default="127.0.0.1:7380",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to accept C2SP tlog-witness requests (POST /add-checkpoint).",
)
@click.option("--key", "key_path", type=_key_path, help="The witness's key file (default: init's).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_REQUEST_TIMEOUT,
    show_default=True,
    help="Seconds a client may stall before it is dropped.",
)
@passphrase_options
def _witness_serve(
    *,
    directory: Path,
    listen: str,
    key_path: Path | None,
    timeout: float,
    passphrase_file: Path | None,
    passphrase_env: str | None,
) -> None:
    """Serve the witness in DIRECTORY over HTTP (C2SP tlog-witness) until interrupted.

    Logs one line per request on standard error.
    """
    address = _listen_address(listen)
    w = _open_witness(directory, key_path, read_passphrase(passphrase_file, passphrase_env))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        server = WitnessServer(address, w, request_timeout=timeout)
    except OSError as err:
        raise CommandError(f"--listen {listen}: cannot listen: {err.strerror or err}") from err
    click.echo(f"witness {w.verifier.vkey} listening on {server.url}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -- cosign ---------------------------------------------------------------------------------


@click.command("cosign")
@ledger_target
@click.argument("file", metavar="FILE")
@click.option(
    "--witness-key",
    "witness_keys",
    multiple=True,
    type=_key_path,
    help="A trusted witness's .pub file (repeatable).",
)
@click.option("--policy", "policy_path", type=_key_path, help="Trust the policy's witnesses.")
@click.option(
    "--size",
    type=click.IntRange(min=0),
    help="The checkpoint size (default: from FILE, or latest).",
)
def _cosign(
    *,
    ledger: LedgerTarget,
    file: str,
    witness_keys: Sequence[Path],
    policy_path: Path | None,
    size: int | None,
) -> None:
    """Attach cosignature lines from FILE (- for stdin) to a stored checkpoint.

    FILE holds cosignature lines, or a whole cosigned checkpoint note.
    """
    keys = [_verifier(p, KEY_TYPE_COSIGNATURE, "witness key") for p in witness_keys]
    if policy_path is not None:
        keys += read_policy_file(policy_path).witness_keys()
    if not keys:
        raise CommandError("give --witness-key or --policy: the witnesses to trust")
    raw = _read_input(file, "cosignature file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CommandFailedError(f"{file}: not UTF-8 text") from err
    lines = [line for line in text.splitlines() if line.startswith("— ")]
    if not lines:
        raise CommandFailedError(f"{file}: holds no signature lines")
    if size is None and "\n\n" in text:
        try:
            size = peek_checkpoint(text).size
        except MalformedError:
            size = None
    with ledger.open() as lg:
        target = lg.latest_checkpoint().checkpoint.size if size is None else size
        new = lg.add_cosignatures(target, lines, keys)
    click.echo(f"stored {new} new cosignature(s) for checkpoint {target}")


# -- verify-receipt, gate check ---------------------------------------------------------


def _receipt_policy(
    log_key: Path | None, policy_path: Path | None, writer_keys: Sequence[Path]
) -> Policy:
    if log_key is None and policy_path is None:
        raise CommandError("give --log-key or --policy: the log to trust")
    base = Policy() if policy_path is None else read_policy_file(policy_path)
    logs = list(base.logs)
    if log_key is not None:
        v = _verifier(log_key, KEY_TYPE_ED25519, "log key")
        if v not in logs:
            logs.insert(0, v)
    writers = list(base.writers)
    for path in writer_keys:
        v = _verifier(path, KEY_TYPE_ED25519, "writer key")
        if v not in writers:
            writers.append(v)
    return Policy(tuple(logs), tuple(writers), base.witnesses, base.groups, base.quorum)


@click.command("verify-receipt")
@click.argument("receipt", metavar="RECEIPT")
@click.option("--log-key", type=_key_path, help="The log's .pub file.")
@click.option("--policy", "policy_path", type=_key_path, help="A trust policy file.")
@click.option(
    "--writer-key",
    "writer_keys",
    multiple=True,
    type=_key_path,
    help="A trusted writer's .pub file (repeatable).",
)
def _verify_receipt(
    *,
    receipt: str,
    log_key: Path | None,
    policy_path: Path | None,
    writer_keys: Sequence[Path],
) -> None:
    """Verify a receipt (RECEIPT, or - for stdin) and print the record it proves, as JSON.

    With --policy, the checkpoint must carry the policy's witness quorum and,
    if the policy names writers, the record must be signed by one of them.
    """
    policy = _receipt_policy(log_key, policy_path, writer_keys)
    with _malformed_is_a_refusal():
        record = verify_record_receipt(_read_input(receipt, "receipt"), policy)
    click.echo(json.dumps(record.to_json(), indent=2, ensure_ascii=False))


@click.group("gate")
def _gate() -> None:
    """The release gate: may this footage be released under this receipt?"""


@_gate.command("check")
@click.argument("receipt", metavar="RECEIPT")
@click.option(
    "--footage-sha256", "footage", required=True, help="SHA-256 of the footage, 64 hex digits."
)
@click.option(
    "--recipient-kind",
    required=True,
    type=click.Choice([k.value for k in ActorKind if k is not ActorKind.OWNER]),
    help="Who is about to receive the footage; must equal the record's recipient.",
)
@click.option("--recipient-id", help="The recipient's ID, exactly as the record names it.")
@click.option(
    "--recipient-org", help="The recipient's organization, exactly as the record names it."
)
@click.option("--policy", "policy_path", required=True, type=_key_path, help="A trust policy.")
@click.option(
    "--max-age",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_AGE_SECONDS,
    show_default=True,
    help="The oldest checkpoint accepted, in seconds.",
)
@click.option(
    "--max-record-age",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_RECORD_AGE_SECONDS,
    show_default=True,
    help="How long after it was logged a release record is honoured, in seconds.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A gate state file: each receipt then opens the gate once (created if missing).",
)
@click.option("--now", type=click.IntRange(min=0), help="Check as of this Unix time.")
def _gate_check(
    *,
    receipt: str,
    footage: str,
    recipient_kind: str,
    recipient_id: str | None,
    recipient_org: str | None,
    policy_path: Path,
    max_age: int,
    max_record_age: int,
    state_path: Path | None,
    now: int | None,
) -> None:
    """Exit 0 and print the release record if the footage may go to the recipient; else exit 1.

    The recipient's kind, ID and organization must each equal the record's
    (a field the record leaves out must be left out here too).
    """
    text = footage.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise CommandError("--footage-sha256 must be 64 hex digits")
    try:
        party = check_party(Party(ActorKind(recipient_kind), recipient_id, recipient_org))
    except ValidationError as err:
        name = err.field.removeprefix("$.").replace("organization", "org")
        raise CommandError(f"--recipient-{name}: {err.message}") from err
    when = int(time.time()) if now is None else now
    state = None if state_path is None else FileGateState(state_path)
    with _malformed_is_a_refusal():
        gate = ReleaseGate(
            read_policy_file(policy_path),
            max_age_seconds=max_age,
            max_record_age_seconds=max_record_age,
            state=state,
        )
        record = gate.check(_read_input(receipt, "receipt"), bytes.fromhex(text), party, when)
    out = {"release": True, **record.to_json()}
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


# -- evidence check ----------------------------------------------------------------------


@click.group("evidence")
def _evidence() -> None:
    """Split-view evidence: two signed checkpoints of one log that cannot both be true."""


@_evidence.command("check")
@click.argument("file", metavar="FILE")
@click.option("--log-key", required=True, type=_key_path, help="The log's .pub file.")
def _evidence_check(*, file: str, log_key: Path) -> None:
    """Exit 0 and describe the misbehaviour if FILE proves it; else exit 1."""
    key = _verifier(log_key, KEY_TYPE_ED25519, "log key")
    with _malformed_is_a_refusal():
        found = check_evidence(parse_evidence(_read_input(file, "evidence file")), key)
    click.echo(f"proven: {found.kind}")
    click.echo(found.description)


@_evidence.command("make")
@click.argument("checkpoint_a", metavar="CHECKPOINT_A")
@click.argument("checkpoint_b", metavar="CHECKPOINT_B")
@click.option("--log-key", required=True, type=_key_path, help="The log's .pub file.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The evidence file to create (default: a fresh name in the current directory).",
)
def _evidence_make(
    *, checkpoint_a: str, checkpoint_b: str, log_key: Path, out: Path | None
) -> None:
    """Write evidence from two signed checkpoint files that cannot both be true.

    Exit 0 with the evidence written; 1 if the two checkpoints prove nothing
    (they agree, their sizes differ so that only a consistency proof could
    show a conflict, or one is not signed by the log key); 2 if a file or the
    key cannot be read, a checkpoint is malformed, or FILE exists (evidence
    never replaces a file).
    \f
    Raises:
        CommandFailedError: (exit 1) if the checkpoints prove no misbehaviour.
        CommandError: (exit 2) for unreadable or malformed input or an existing FILE.
    """
    key = _verifier(log_key, KEY_TYPE_ED25519, "log key")
    notes = []
    for path in (checkpoint_a, checkpoint_b):
        raw = _read_input(path, "checkpoint file")
        try:
            notes.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise CommandError(f"{path}: the checkpoint file is not UTF-8 text") from err
    try:
        ev = make_evidence(notes[0], notes[1])
    except MalformedError as err:
        raise CommandError(f"a checkpoint file is malformed: {err}") from err
    try:
        found = check_evidence(ev, key)
    except VerificationError as err:
        raise CommandFailedError(f"no evidence: {err}") from err
    if out is not None:
        try:
            with atomic_file(out, overwrite=False) as fh:
                fh.write(format_evidence(ev).encode("utf-8"))
        except FileExistsError as err:
            raise CommandError(f"{out}: exists; evidence never replaces a file") from err
        except OSError as err:
            raise CommandError(f"{out}: cannot write the evidence: {err.strerror}") from err
        written = out
    else:
        first, second = peek_checkpoint(ev.first), peek_checkpoint(ev.second)
        try:
            written = write_evidence_file(
                Path(), ev, evidence_stem(first.origin, first.size, second.size)
            )
        except StorageError as err:
            raise CommandError(str(err)) from err
    click.echo(f"proven: {found.kind}")
    click.echo(found.description)
    click.echo(f"evidence written to {written}")


# -- witness-collect ---------------------------------------------------------------------


@click.command("witness-collect")
@ledger_target
@click.option(
    "--witness-dir",
    "witness_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A local witness directory (repeatable).",
)
@click.option(
    "--witness-cmd",
    "witness_cmds",
    multiple=True,
    help="A witness command reading the request on stdin (repeatable; pair with --witness-key).",
)
@click.option(
    "--witness-key",
    "witness_keys",
    multiple=True,
    type=_key_path,
    help="The .pub file of the witness behind each --witness-cmd, in the same order.",
)
@click.option(
    "--witness-url",
    "witness_urls",
    multiple=True,
    metavar="URL",
    help="An http(s):// C2SP tlog-witness prefix (repeatable; pair with --witness-url-key).",
)
@click.option(
    "--witness-url-key",
    "witness_url_keys",
    multiple=True,
    type=_key_path,
    help="The .pub file of the witness behind each --witness-url, in the same order.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each witness command or URL.",
)
@passphrase_options
def _witness_collect(
    *,
    ledger: LedgerTarget,
    witness_dirs: Sequence[Path],
    witness_cmds: Sequence[str],
    witness_keys: Sequence[Path],
    witness_urls: Sequence[str],
    witness_url_keys: Sequence[Path],
    timeout: float,
    passphrase_file: Path | None,
    passphrase_env: str | None,
) -> None:
    """Push the ledger's latest checkpoint to witnesses and store their cosignatures.

    Prints one line per witness; exits 1 if any did not cosign.
    """
    if not witness_dirs and not witness_cmds and not witness_urls:
        raise CommandError("give at least one --witness-dir, --witness-cmd or --witness-url")
    if len(witness_cmds) != len(witness_keys):
        raise CommandError("give one --witness-key for each --witness-cmd, in the same order")
    if len(witness_urls) != len(witness_url_keys):
        raise CommandError("give one --witness-url-key for each --witness-url, in the same order")
    passphrase = read_passphrase(passphrase_file, passphrase_env)
    endpoints: list[WitnessEndpoint] = [
        LocalWitness(_open_witness(d, None, passphrase)) for d in witness_dirs
    ]
    for cmd, key_path in zip(witness_cmds, witness_keys, strict=True):
        try:
            argv = shlex.split(cmd)
        except ValueError as err:
            raise CommandError(f"--witness-cmd {cmd!r}: {err}") from err
        key = _verifier(key_path, KEY_TYPE_COSIGNATURE, "witness key")
        endpoints.append(CommandWitness(argv, key, timeout=timeout))
    for url, key_path in zip(witness_urls, witness_url_keys, strict=True):
        key = _verifier(key_path, KEY_TYPE_COSIGNATURE, "witness key")
        try:
            endpoints.append(HttpWitness(url, key, timeout=timeout))
        except MalformedError as err:
            raise CommandError(f"--witness-url: {err}") from err
    with ledger.open() as lg:
        outcomes = collect_cosignatures(lg, endpoints, int(time.time()))
    for o in outcomes:
        click.echo(f"{o.outcome} {o.witness} size {o.size}: {o.detail}")
    failed = sum(1 for o in outcomes if not o.ok)
    if failed:
        raise CommandFailedError(f"{failed} of {len(outcomes)} witnesses did not cosign")


def register(cli: click.Group) -> None:
    """Add ``witness``, ``cosign``, ``verify-receipt``, ``gate``, ``evidence`` and
    ``witness-collect`` to ``cli``.

    Raises:
        ValueError: if ``cli`` already has a command of one of these names.
    """
    commands: list[click.Command] = [
        _witness,
        _cosign,
        _verify_receipt,
        _gate,
        _evidence,
        _witness_collect,
    ]
    for cmd in commands:
        assert cmd.name is not None  # noqa: S101 - every command above is named
        if cmd.name in cli.commands:
            raise ValueError(f"the CLI already has a command {cmd.name!r}")
    for cmd in commands:
        cli.add_command(cmd)
