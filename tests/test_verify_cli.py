"""The ``export`` and ``verify`` commands: outputs, exit codes and one-line errors on bad input."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from disclosure_ledger._cli import owner as cli_owner
from disclosure_ledger._core.bundle import MAGIC, FrameType
from disclosure_ledger._core.checkpoints import cosign_checkpoint
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer
from disclosure_ledger._log.ledger import Ledger

from .ledger_helpers import ORIGIN, event, log_key, new_ledger, release_event, writer_key

LOG_VKEY = log_key().verifier.vkey
WRITER_VKEY = writer_key().verifier.vkey
KEYS = ["--log-key", LOG_VKEY, "--writer-key", WRITER_VKEY]


def run(args: list[str]) -> Any:
    group = click.Group()
    cli_owner.register(group)
    return CliRunner().invoke(group, args)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    lg = new_ledger(tmp_path)
    lg.append_many([event(i) for i in range(3)])
    lg.append_many([release_event(3), event(4)])
    lg.close()
    return tmp_path / "test.ledger"


@pytest.fixture
def bundle_path(ledger_path: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out.bundle"
    result = run(["export", str(ledger_path), str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def _one_error_line(result: Any, code: int, *needles: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines: list[str] = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("disclosure-ledger: error: ")
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_export_command(ledger_path: Path, tmp_path: Path) -> None:
    result = run(["export", str(ledger_path), str(tmp_path / "b")])
    assert result.exit_code == 0
    assert result.stdout == (
        f"exported records 0..5 of {ORIGIN} (5 records,"
        f" {(tmp_path / 'b').stat().st_size} bytes) to {tmp_path / 'b'}\n"
    )
    result = run(["export", str(ledger_path), str(tmp_path / "r"), "--from", "3"])
    assert result.exit_code == 0
    assert "records 3..5" in result.stdout


def test_export_errors(ledger_path: Path, tmp_path: Path) -> None:
    _one_error_line(run(["export", str(tmp_path / "nope"), str(tmp_path / "b")]), 2)
    _one_error_line(
        run(["export", str(ledger_path), str(tmp_path / "b"), "--from", "2"]),
        2,
        "no checkpoint of size 2",
    )
    _one_error_line(
        run(["export", str(ledger_path), str(tmp_path / "b"), "--from", "9"]), 2, "beyond"
    )
    not_ledger = tmp_path / "x.ledger"
    not_ledger.write_text("hello")
    _one_error_line(run(["export", str(not_ledger), str(tmp_path / "b")]), 2)
    assert run(["export", str(ledger_path)]).exit_code == 2


def test_verify_text(bundle_path: Path) -> None:
    result = run(["verify", str(bundle_path), *KEYS])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    out = result.stdout
    assert out.startswith(f"VERIFIED: the ledger of {ORIGIN} is intact\n")
    assert "size:         5 records" in out
    assert "DISCLOSURES: 1 (1 without your consent, 0 with it)" in out
    assert "legal basis: emergency, reference case 26-3" in out


def test_verify_json(bundle_path: Path) -> None:
    result = run(["verify", str(bundle_path), *KEYS, "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert (doc["verdict"], doc["origin"], doc["size"]) == ("verified", ORIGIN, 5)
    assert doc["disclosures"][0]["legal_basis"] == "emergency"


def test_verify_json_on_failure(bundle_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(bundle_path.read_bytes()[:-3])
    result = run(["verify", str(bad), *KEYS, "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "failed"
    assert doc["error"]["class"] == "MalformedError"
    _one_error_line(result, 1, "MalformedError", "truncated")


def test_verify_with_key_files_and_a_policy(bundle_path: Path, tmp_path: Path) -> None:
    log_pub = tmp_path / "log.pub"
    log_pub.write_text(LOG_VKEY + "\n")
    writer_pub = tmp_path / "writer.pub"
    writer_pub.write_text(WRITER_VKEY + "\n")
    assert (
        run(
            ["verify", str(bundle_path), "--log-key", str(log_pub), "--writer-key", str(writer_pub)]
        ).exit_code
        == 0
    )
    policy = tmp_path / "policy"
    policy.write_text(f"# mine\nlog {LOG_VKEY}\nwriter {WRITER_VKEY}\nquorum none\n")
    assert run(["verify", str(bundle_path), "--policy", str(policy)]).exit_code == 0
    # No writer given: records must be signed by the log key, and they are not.
    _one_error_line(
        run(["verify", str(bundle_path), "--log-key", LOG_VKEY]), 1, "UntrustedKeyError at record 0"
    )


def test_verify_with_state_and_trusted_checkpoint(
    ledger_path: Path, bundle_path: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = run(["verify", str(bundle_path), *KEYS, "--state", str(state)])
    assert first.exit_code == 0
    assert "state:        saved" in first.stdout
    with Ledger.open(ledger_path, log_key=log_key(), writers=[writer_key()]) as lg:
        lg.append_many([event(i) for i in range(5, 9)])
        seen = lg.checkpoint(5).note
    rng = tmp_path / "range.bundle"
    assert run(["export", str(ledger_path), str(rng), "--from", "5"]).exit_code == 0
    result = run(["verify", str(rng), *KEYS, "--state", str(state)])
    assert result.exit_code == 0, result.stderr
    assert "consistent with the saved state of size 5" in result.stdout
    cp = tmp_path / "seen.checkpoint"
    cp.write_text(seen)
    assert run(["verify", str(rng), *KEYS, "--trusted-checkpoint", str(cp)]).exit_code == 0
    _one_error_line(
        run(["verify", str(bundle_path), *KEYS, "--state", str(state)]), 1, "RollbackError"
    )


def test_bad_input(bundle_path: Path, tmp_path: Path) -> None:
    # Could not run: exit 2.
    _one_error_line(run(["verify", str(tmp_path / "missing"), *KEYS]), 2, "no such bundle file")
    _one_error_line(run(["verify", str(tmp_path), *KEYS]), 2, "is a directory")
    bad_key = tmp_path / "bad.pub"
    bad_key.write_bytes(b"\xff\xfe not utf-8\n")
    _one_error_line(
        run(["verify", str(bundle_path), "--log-key", str(bad_key)]), 2, "not valid UTF-8"
    )
    _one_error_line(run(["verify", str(bundle_path), "--log-key", str(tmp_path / "nokey.pub")]), 2)
    _one_error_line(run(["verify", str(bundle_path), "--log-key", "a+b+c"]), 2, "--log-key")
    policy = tmp_path / "policy"
    policy.write_text(f"log {LOG_VKEY}\ntrust everyone\n")
    _one_error_line(
        run(["verify", str(bundle_path), "--policy", str(policy)]), 2, "unknown keyword 'trust'"
    )
    _one_error_line(run(["verify", str(bundle_path), "--policy", str(tmp_path / "nopolicy")]), 2)
    _one_error_line(run(["verify", str(bundle_path)]), 2, "--log-key")
    _one_error_line(
        run(["verify", str(bundle_path), *KEYS, "--trusted-checkpoint", str(tmp_path / "no")]), 2
    )
    garbage_cp = tmp_path / "garbage.cp"
    garbage_cp.write_text("hello\n")
    _one_error_line(
        run(["verify", str(bundle_path), *KEYS, "--trusted-checkpoint", str(garbage_cp)]),
        2,
        "trusted checkpoint does not verify",
    )
    # The content is at fault: exit 1.
    empty = tmp_path / "empty.bundle"
    empty.write_bytes(b"")
    _one_error_line(run(["verify", str(empty), *KEYS]), 1, "MalformedError", "empty")
    other = tmp_path / "other.bundle"
    other.write_bytes(b"%PDF-1.7\n" + b"x" * 100)
    _one_error_line(run(["verify", str(other), *KEYS]), 1, "not a disclosure-ledger bundle")
    huge = tmp_path / "huge.bundle"
    huge.write_bytes(MAGIC + b"\x01" + struct.pack(">BI", FrameType.HEADER, 0xFFFFFFFF))
    _one_error_line(run(["verify", str(huge), *KEYS]), 1, "claims 4294967295 bytes")


def test_progress_bar_only_on_a_terminal(
    bundle_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(cli_owner, "_stderr_is_terminal", lambda: True)
    original = cli_owner._progress

    def spy(stack: Any) -> Any:
        update = original(stack)

        def wrapped(done: int, total: int) -> None:
            calls.append(done)
            update(done, total)

        return wrapped

    monkeypatch.setattr(cli_owner, "_progress", spy)
    group = click.Group()
    cli_owner.register(group)
    result = CliRunner().invoke(group, ["verify", str(bundle_path), *KEYS])
    assert result.exit_code == 0
    assert calls[-1] == 5
    assert "verifying" in result.stderr


def test_as_a_subprocess(bundle_path: Path, tmp_path: Path) -> None:
    code = (
        "import sys, click\n"
        "from disclosure_ledger._cli import owner as cli_owner\n"
        "g = click.Group()\n"
        "cli_owner.register(g)\n"
        "g.main(sys.argv[1:], prog_name='disclosure-ledger')\n"
    )
    ok = subprocess.run(
        [sys.executable, "-c", code, "verify", str(bundle_path), *KEYS],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("VERIFIED")
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(bundle_path.read_bytes() + b"junk")
    failed = subprocess.run(
        [sys.executable, "-c", code, "verify", str(bad), *KEYS],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("disclosure-ledger: error: verification failed: MalformedError")
    assert "Traceback" not in failed.stderr


WITNESS = Signer("witness.example/w1", bytes(range(90, 122)), KEY_TYPE_COSIGNATURE)


def _cosign(lg: Ledger, size: int) -> None:
    cp = lg.checkpoint(size).checkpoint
    lg.add_cosignatures(size, [cosign_checkpoint(cp, WITNESS, 1_800_000_000)], [WITNESS.verifier])


@pytest.mark.parametrize(
    ("start_cosigned", "end_cosigned", "policy_names_witness"),
    [
        (True, False, True),  # what the review found failing
        (True, False, False),
        (False, True, True),
        (True, True, True),
        (False, False, True),
        (False, False, False),
    ],
)
def test_incremental_check_with_witnesses_at_either_end(
    ledger_path: Path,
    tmp_path: Path,
    start_cosigned: bool,
    end_cosigned: bool,
    policy_names_witness: bool,
) -> None:
    # The documented flow: verify everything once with --state, then ask only
    # for the new records (export --from the saved size) and verify the range.
    lines = [f"log {LOG_VKEY}", f"writer {WRITER_VKEY}"]
    if policy_names_witness:
        lines.append(f"witness w1 {WITNESS.verifier.vkey}")  # named, no quorum required
    policy = tmp_path / "owner.policy"
    policy.write_text("\n".join(lines) + "\n")
    state = tmp_path / "state"
    with Ledger.open(ledger_path, log_key=log_key(), writers=[writer_key()]) as lg:
        if start_cosigned:
            _cosign(lg, 5)
    full = tmp_path / "full.bundle"
    assert run(["export", str(ledger_path), str(full)]).exit_code == 0
    first = run(["verify", str(full), "--policy", str(policy), "--state", str(state)])
    assert first.exit_code == 0, first.stderr
    with Ledger.open(ledger_path, log_key=log_key(), writers=[writer_key()]) as lg:
        lg.append_many([event(i) for i in range(5, 9)])
        if end_cosigned:
            _cosign(lg, 9)
    rng = tmp_path / "range.bundle"
    assert run(["export", str(ledger_path), str(rng), "--from", "5"]).exit_code == 0
    result = run(["verify", str(rng), "--policy", str(policy), "--state", str(state)])
    assert result.exit_code == 0, result.stderr
    assert "consistent with the saved state of size 5" in result.stdout


def test_incremental_check_refuses_a_corrupt_cosignature_on_the_old_checkpoint(
    ledger_path: Path, tmp_path: Path
) -> None:
    with Ledger.open(ledger_path, log_key=log_key(), writers=[writer_key()]) as lg:
        _cosign(lg, 5)
        lg.append_many([event(i) for i in range(5, 9)])
        old = lg.checkpoint(5).note
    rng = tmp_path / "range.bundle"
    assert run(["export", str(ledger_path), str(rng), "--from", "5"]).exit_code == 0
    data = rng.read_bytes()
    sig_line = old.splitlines()[-1]
    assert sig_line.startswith(f"\u2014 {WITNESS.verifier.name} ")
    b64 = sig_line.rsplit(" ", 1)[1]
    flipped = b64[:10] + ("A" if b64[10] != "A" else "B") + b64[11:]
    assert data.count(b64.encode()) == 1
    rng.write_bytes(data.replace(b64.encode(), flipped.encode()))
    for keys in (KEYS, [*KEYS, "--policy", str(_witness_policy(tmp_path))]):
        _one_error_line(run(["verify", str(rng), *keys]), 1, "BadSignatureError")


def _witness_policy(tmp_path: Path) -> Path:
    p = tmp_path / "w.policy"
    p.write_text(f"witness w1 {WITNESS.verifier.vkey}\n")
    return p


def test_a_key_of_the_wrong_type_is_a_usage_error(bundle_path: Path, tmp_path: Path) -> None:
    witness_pub = tmp_path / "witness.pub"
    witness_pub.write_text(WITNESS.verifier.vkey + "\n")
    for key in (WITNESS.verifier.vkey, str(witness_pub)):
        _one_error_line(
            run(["verify", str(bundle_path), "--log-key", key]),
            2,
            "--log-key: witness.example/w1 is a cosignature",
            "needs an Ed25519 (type 0x01) key",
        )
        _one_error_line(
            run(["verify", str(bundle_path), "--log-key", LOG_VKEY, "--writer-key", key]),
            2,
            "--writer-key: witness.example/w1 is a cosignature",
        )
    # In a policy file too: a witness key as the log, the log key as a witness.
    for text in (
        f"log {WITNESS.verifier.vkey}\n",
        f"log {LOG_VKEY}\nwriter {WITNESS.verifier.vkey}\n",
        f"log {LOG_VKEY}\nwitness w1 {LOG_VKEY}\n",
    ):
        policy = tmp_path / "wrong.policy"
        policy.write_text(text)
        _one_error_line(run(["verify", str(bundle_path), "--policy", str(policy)]), 2, "expected a")


def test_a_hand_built_policy_with_a_wrong_key_type_cannot_run(bundle_path: Path) -> None:
    from disclosure_ledger._core.policy import Policy
    from disclosure_ledger._verify.verifier import VerifyInputError, verify

    log, wit = log_key().verifier, WITNESS.verifier
    for policy, needle in (
        (Policy((wit,)), "log key witness.example/w1 is of type 0x04"),
        (Policy((log,), (wit,)), "writer key witness.example/w1 is of type 0x04"),
        (Policy((log,), (), {"w1": writer_key().verifier}), "witness key"),
    ):
        with pytest.raises(VerifyInputError, match=needle):
            verify(bundle_path, policy)


def test_non_canonical_records_are_refused_at_the_cli(tmp_path: Path) -> None:
    from .test_tamper import forge
    from .test_verify import _non_canonical

    for kind, raw in sorted(_non_canonical().items()):
        path = tmp_path / f"{kind}.bundle"
        path.write_bytes(forge([event(0), raw]))
        _one_error_line(run(["verify", str(path), *KEYS]), 1, "MalformedRecordError at record 1")


def test_a_state_others_can_write_is_refused(bundle_path: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run(["verify", str(bundle_path), *KEYS, "--state", str(state)]).exit_code == 0
    (saved,) = (p for p in state.iterdir() if not p.name.startswith("."))
    saved.chmod(0o666)
    _one_error_line(run(["verify", str(bundle_path), *KEYS, "--state", str(state)]), 2, "chmod 600")
    saved.chmod(0o600)
    state.chmod(0o777)
    _one_error_line(run(["verify", str(bundle_path), *KEYS, "--state", str(state)]), 2, "chmod 700")
    state.chmod(0o700)
    assert run(["verify", str(bundle_path), *KEYS, "--state", str(state)]).exit_code == 0
