"""Witness, cosign, receipt, gate and evidence commands, and the ledger-side client.

The commands are driven in process through the real ``disclosure-ledger``
group; command witnesses run the real program (``python -m
disclosure_ledger._cli.main``) in a subprocess, so the command-witness protocol
(stdin in, a cosignature line or a 409-style size out) is exercised end to
end. Every failure must be one ``disclosure-ledger: error:`` line and never a
traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from disclosure_ledger._core.checkpoints import format_receipt, format_witness_request
from disclosure_ledger._core.evidence import format_evidence, make_evidence
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Verifier
from disclosure_ledger._core.policy import Policy, format_policy
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._witness.client import (
    OUTCOME_COSIGNED,
    OUTCOME_INVALID,
    OUTCOME_REFUSED,
    OUTCOME_UNAVAILABLE,
    CommandWitness,
    LocalWitness,
    collect_cosignatures,
)
from disclosure_ledger._witness.witness import Witness
from disclosure_ledger.keys import keygen, read_signer_file

from .cli_helpers import assert_one_line_error, run
from .ledger_helpers import ORIGIN, event, release_event


def witness_cmd(directory: Path) -> list[str]:
    return [sys.executable, "-m", "disclosure_ledger", "witness", "add", str(directory), "-"]


@dataclass
class Setup:
    work: Path
    ledger: Path
    w1: Path  # witness directory (key w1.key, follows log.pub)
    w2: Path


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.chdir(tmp_path)
    log = keygen(ORIGIN, tmp_path / "log")
    writer = keygen("vendor.example/writer", tmp_path / "writer")
    for k in (1, 2):
        keygen(f"witness.example/w{k}", tmp_path / f"w{k}", key_type=KEY_TYPE_COSIGNATURE)
    path = tmp_path / "l.ledger"
    with Ledger.create(path, log_key=log, writers=[writer]) as lg:
        lg.append_many([event(0), release_event(1)])
    for k in (1, 2):
        r = run("witness", "init", tmp_path / f"wd{k}", "--key", f"w{k}.key", "--log", "log.pub")
        assert r.exit_code == 0, r.stderr
    return Setup(tmp_path, path, tmp_path / "wd1", tmp_path / "wd2")


def request_file(s: Setup, old: int, name: str = "req") -> Path:
    with Ledger.open(s.ledger, readonly=True) as lg:
        body = format_witness_request(lg.witness_request(old))
    p = s.work / name
    p.write_text(body)
    return p


def bad_log_signature(request: str) -> str:
    """The request with one bit of the log's signature on its checkpoint flipped."""
    head, sep, sig = request.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    return head + sep + base64.b64encode(bytes(raw)).decode() + "\n"


def wpub(s: Setup, k: int) -> Verifier:
    return read_signer_file(s.work / f"w{k}.key").verifier


def write_policy(s: Setup, *witnesses: int, threshold: int | None = None) -> Path:
    log = read_signer_file(s.work / "log.key").verifier
    writer = read_signer_file(s.work / "writer.key").verifier
    policy = Policy.simple(log, [writer], [wpub(s, k) for k in witnesses], threshold)
    p = s.work / "policy"
    p.write_text(format_policy(policy))
    return p


# --- witness init / add ---------------------------------------------------------------------


def test_witness_init_prints_keys_and_refuses_twice(setup: Setup) -> None:
    r = run("witness", "init", setup.work / "wd9", "--key", "w1.key", "--log", "log.pub")
    assert r.exit_code == 0
    assert r.stdout.startswith("witness witness.example/w1+")
    assert "follows " + ORIGIN in r.stdout
    assert_one_line_error(
        run("witness", "init", setup.w1, "--key", "w1.key", "--log", "log.pub"),
        2,
        "already holds a witness",
    )
    assert_one_line_error(
        run("witness", "init", setup.work / "x", "--key", "log.key", "--log", "log.pub"),
        2,
        "cosignature key",
    )
    assert_one_line_error(
        run("witness", "init", setup.work / "x", "--key", "w1.key", "--log", "w2.pub"), 2, "Ed25519"
    )
    assert_one_line_error(
        run("witness", "init", setup.work / "x", "--key", "nope.key", "--log", "log.pub"),
        2,
        "nope.key",
    )


def test_witness_add_prints_the_cosignature_and_refuses_with_exit_1(setup: Setup) -> None:
    req = request_file(setup, 0)
    r = run("witness", "add", setup.w1, req)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("— witness.example/w1 ")
    assert r.stdout.count("\n") == 1
    # Again from old 0: stale, and the size the witness holds is printed alone.
    r = run("witness", "add", setup.w1, "-", input=req.read_text())
    assert_one_line_error(r, 1, "stale old size 0", "last cosigned size 2")
    assert r.stdout == "2\n"
    assert_one_line_error(run("witness", "add", setup.w1, "-", input="old x\n\n"), 1, "old size")
    assert_one_line_error(run("witness", "add", setup.work / "nowhere", req), 2, "not a witness")
    # A checkpoint whose log signature does not verify is refused, and w2 cosigns nothing.
    forged = bad_log_signature(req.read_text())
    assert_one_line_error(
        run("witness", "add", setup.w2, "-", input=forged),
        1,
        f"signature by {ORIGIN} does not verify",
    )
    assert run("witness", "add", setup.w2, req).exit_code == 0  # w2 still holds size 0
    assert_one_line_error(run("witness", "add", setup.w1, setup.work / "missing"), 2, "missing")
    assert_one_line_error(
        run("witness", "add", setup.w1, req, "--key", "w2.key"), 2, "not the key given"
    )


# --- cosign ---------------------------------------------------------------------------------


def test_cosign_attaches_lines_from_a_file_or_a_whole_note(setup: Setup) -> None:
    req = request_file(setup, 0)
    line = run("witness", "add", setup.w1, req).stdout
    (setup.work / "cosig").write_text(line)
    r = run("cosign", setup.ledger, "cosig", "--witness-key", "w1.pub")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "stored 1 new cosignature(s) for checkpoint 2\n"
    with Ledger.open(setup.ledger, readonly=True) as lg:
        note = lg.checkpoint(2).note
    assert line in note
    # A whole cosigned note from w2, with the policy naming the witnesses.
    line2 = run("witness", "add", setup.w2, req).stdout
    policy = write_policy(setup, 1, 2)
    r = run("cosign", setup.ledger, "-", "--policy", policy, input=note + line2)
    assert r.stdout == "stored 1 new cosignature(s) for checkpoint 2\n"
    assert_one_line_error(run("cosign", setup.ledger, "cosig"), 2, "--witness-key or --policy")
    assert_one_line_error(
        run("cosign", setup.ledger, "cosig", "--witness-key", "w2.pub"), 1, "no cosignature"
    )
    (setup.work / "empty").write_text("nothing here\n")
    assert_one_line_error(
        run("cosign", setup.ledger, "empty", "--witness-key", "w1.pub"), 1, "no signature lines"
    )
    assert_one_line_error(
        run("cosign", setup.ledger, "cosig", "--witness-key", "w1.pub", "--size", 7),
        2,
        "no checkpoint of size 7",
    )


# --- verify-receipt and gate check --------------------------------------------------------


def cosign_all(setup: Setup) -> None:
    with Ledger.open(setup.ledger) as lg:
        outcomes = collect_cosignatures(
            lg,
            [LocalWitness(Witness.open(d, read_signer_file(setup.work / f"w{k}.key")))
             for k, d in ((1, setup.w1), (2, setup.w2))],
            int(time.time()),
        )  # fmt: skip
    assert all(o.ok for o in outcomes), outcomes


def receipt_file(setup: Setup, index: int) -> Path:
    with Ledger.open(setup.ledger, readonly=True) as lg:
        text = format_receipt(lg.receipt(index))
    p = setup.work / f"receipt{index}"
    p.write_text(text)
    return p


def test_verify_receipt_prints_the_record(setup: Setup) -> None:
    cosign_all(setup)
    rec = receipt_file(setup, 1)
    r = run("verify-receipt", rec, "--log-key", "log.pub", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["index"] == 1
    assert out["tree_size"] == 2
    assert out["event"]["action"] == "release"
    assert out["writer"] is None
    r = run(
        "verify-receipt", "-", "--policy", write_policy(setup, 1, 2), "--json",
        input=rec.read_text(),
    )  # fmt: skip
    out = json.loads(r.stdout)
    assert out["quorum_met"] is True
    assert len(out["cosigned_by"]) == 2
    assert out["writer"].startswith("vendor.example/writer+")
    r = run("verify-receipt", rec, "--log-key", "log.pub", "--writer-key", "writer.pub", "--json")
    assert json.loads(r.stdout)["writer"].startswith("vendor.example/writer+")


def test_verify_receipt_failures(setup: Setup) -> None:
    rec = receipt_file(setup, 1)
    text = rec.read_text()
    lines = text.split("\n")
    lines[2] = "index 0"
    (setup.work / "bad").write_text("\n".join(lines))
    assert_one_line_error(
        run("verify-receipt", "bad", "--log-key", "log.pub"),
        1,
        "inclusion proof does not lead to the root",
    )
    assert_one_line_error(run("verify-receipt", rec, "--log-key", "w1.pub"), 2, "Ed25519")
    assert_one_line_error(
        run("verify-receipt", rec, "--policy", write_policy(setup, 1, 2)), 1, "lacks the witness"
    )
    assert_one_line_error(run("verify-receipt", rec), 2, "--log-key or --policy")
    assert_one_line_error(
        run("verify-receipt", "-", "--log-key", "log.pub", input="junk"),
        1,
        "receipt has no blank line before the checkpoint",
    )


POLICE = ("--recipient-kind", "law_enforcement", "--recipient-org", "Springfield PD")


def test_gate_check(setup: Setup) -> None:
    cosign_all(setup)
    rec = receipt_file(setup, 1)
    policy = write_policy(setup, 1, 2)
    clip = hashlib.sha256(b"clip-1").hexdigest()
    r = run("gate", "check", rec, "--footage-sha256", clip, *POLICE, "--policy", policy, "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["release"] is True
    assert out["index"] == 1
    other = hashlib.sha256(b"clip-0").hexdigest()
    assert_one_line_error(
        run("gate", "check", rec, "--footage-sha256", other, *POLICE, "--policy", policy),
        1,
        "does not name footage",
    )
    assert_one_line_error(
        run("gate", "check", receipt_file(setup, 0), "--footage-sha256", other, *POLICE,
            "--policy", policy),
        1,
        "outside owner and vendor",
    )  # fmt: skip
    assert_one_line_error(
        run("gate", "check", rec, "--footage-sha256", clip, *POLICE, "--policy", policy,
            "--now", 1 << 40),
        1,
        "s old; the gate accepts at most",
    )  # fmt: skip
    assert_one_line_error(
        run("gate", "check", rec, "--footage-sha256", "zz", *POLICE, "--policy", policy),
        2,
        "64 hex",
    )
    (setup.work / "badpolicy").write_text("quorum nobody\n")
    assert_one_line_error(
        run("gate", "check", rec, "--footage-sha256", clip, *POLICE, "--policy", "badpolicy"),
        2,
        "line 1",
    )


def test_gate_check_binds_the_recipient_the_window_and_single_use(setup: Setup) -> None:
    cosign_all(setup)
    rec = receipt_file(setup, 1)
    policy = write_policy(setup, 1, 2)
    clip = hashlib.sha256(b"clip-1").hexdigest()
    base = ("gate", "check", rec, "--footage-sha256", clip, "--policy", policy)
    # Who receives the footage must be who the record names, field by field.
    for who in (
        ("--recipient-kind", "third_party", "--recipient-org", "Springfield PD"),
        ("--recipient-kind", "law_enforcement", "--recipient-org", "Shelbyville PD"),
        ("--recipient-kind", "law_enforcement"),
        (*POLICE, "--recipient-id", "officer-9"),
    ):
        assert_one_line_error(run(*base, *who), 1, "releases footage to law_enforcement")
    for missing_or_owner in ((), ("--recipient-kind", "owner")):
        r = run(*base, *missing_or_owner)
        assert r.exit_code == 2
        assert "--recipient-kind" in r.stderr
    assert_one_line_error(
        run(*base, "--recipient-kind", "law_enforcement", "--recipient-org", "bad\x00org"),
        2,
        "--recipient-org",
    )
    # A record opens the gate only within the window after it was logged.
    later = int(time.time()) + 120
    assert_one_line_error(
        run(*base, *POLICE, "--now", later, "--max-record-age", 60), 1, "was logged"
    )
    # With a state file, a receipt opens the gate once; a refused try does not use it up.
    assert run(*base, *POLICE, "--recipient-id", "x", "--state", "gate.state").exit_code == 1
    assert run(*base, *POLICE, "--state", "gate.state").exit_code == 0
    assert_one_line_error(run(*base, *POLICE, "--state", "gate.state"), 1, "already been honoured")
    assert run(*base, *POLICE).exit_code == 0  # no state: nothing remembered
    (setup.work / "gate.state").chmod(0o666)
    assert_one_line_error(run(*base, *POLICE, "--state", "gate.state"), 2, "chmod 600")


# --- evidence check ------------------------------------------------------------------------


def test_evidence_check(setup: Setup) -> None:
    log = read_signer_file(setup.work / "log.key")
    fork = setup.work / "fork.ledger"
    with Ledger.create(fork, log_key=log) as b, Ledger.open(setup.ledger) as a:
        b.append_many([event(100), event(101)])
        ev = make_evidence(a.checkpoint(2).note, b.checkpoint(2).note)
        consistent = make_evidence(a.checkpoint(2).note, a.checkpoint(2).note)
    (setup.work / "ev").write_text(format_evidence(ev))
    r = run("evidence", "check", "ev", "--log-key", "log.pub")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("proven: same-size-different-roots\n")
    (setup.work / "nothing").write_text(format_evidence(consistent))
    assert_one_line_error(
        run("evidence", "check", "nothing", "--log-key", "log.pub"), 1, "same root"
    )
    (setup.work / "junk").write_text("junk\n")
    assert_one_line_error(run("evidence", "check", "junk", "--log-key", "log.pub"), 1, "evidence")
    assert_one_line_error(run("evidence", "check", "missing", "--log-key", "log.pub"), 2, "missing")


# --- witness-collect and the command-witness protocol ---------------------------------


def test_witness_collect_with_directories_and_commands(setup: Setup) -> None:
    r = run(
        "witness-collect", setup.ledger, "--witness-dir", setup.w1,
        "--witness-cmd", shlex.join(witness_cmd(setup.w2)), "--witness-key", "w2.pub",
    )  # fmt: skip
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert r.stdout.count("cosigned ") == 2
    with Ledger.open(setup.ledger, readonly=True) as lg:
        signed = lg.checkpoint(2)
        assert {c.witness for c in signed.cosignatures} == {wpub(setup, 1), wpub(setup, 2)}
        assert lg.last_cosigned_size(wpub(setup, 2).vkey) == 2
    assert_one_line_error(
        run("witness-collect", setup.ledger, "--witness-cmd", "true"), 2, "--witness-key"
    )
    assert_one_line_error(run("witness-collect", setup.ledger), 2, "at least one")
    failing = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    r = run("witness-collect", setup.ledger, "--witness-cmd", failing, "--witness-key", "w1.pub")
    assert_one_line_error(r, 1, "1 of 1 witnesses did not cosign")
    assert r.stdout.startswith("refused ")


def test_client_retries_from_the_size_a_command_witness_reports(setup: Setup) -> None:
    log = read_signer_file(setup.work / "log.key")
    with Ledger.open(setup.ledger, log_key=log) as lg:
        # w2 already holds size 2 (pushed some other way), but the ledger has
        # no record of it: the first request (old 0) is stale, the retry works.
        w2 = Witness.open(setup.w2, read_signer_file(setup.work / "w2.key"))
        w2.add_checkpoint(lg.witness_request(0), 1)
        lg.append(event(5))
        endpoint = CommandWitness(witness_cmd(setup.w2), wpub(setup, 2))
        (outcome,) = collect_cosignatures(lg, [endpoint], 0)
        assert outcome.outcome == OUTCOME_COSIGNED, outcome
        assert outcome.detail == "old 2"
        events = lg.witness_events()
        assert events[-1][:3] == (3, wpub(setup, 2).vkey, OUTCOME_COSIGNED)
        assert lg.last_cosigned_size(endpoint.verifier.vkey) == 3


def test_client_never_raises_for_witnesses_that_fail(setup: Setup) -> None:
    py = sys.executable
    w1 = wpub(setup, 1)
    endpoints = [
        CommandWitness([str(setup.work / "no-such-program")], w1, name="missing"),
        CommandWitness([py, "-c", "import time; time.sleep(30)"], w1, timeout=0.5, name="slow"),
        CommandWitness(
            [py, "-c", "import sys; print('nope', file=sys.stderr); sys.exit(1)"], w1, name="no"
        ),
        CommandWitness([py, "-c", "print('— witness.example/w1 AAAA')"], w1, name="garbage"),
        CommandWitness(witness_cmd(setup.w2), w1, name="wrong-key"),
    ]
    with Ledger.open(setup.ledger) as lg:
        outcomes = collect_cosignatures(lg, endpoints, 0)
        assert [o.outcome for o in outcomes] == [
            OUTCOME_UNAVAILABLE,
            OUTCOME_UNAVAILABLE,
            OUTCOME_REFUSED,
            OUTCOME_INVALID,
            OUTCOME_INVALID,
        ], outcomes
        assert "timed out" in outcomes[1].detail
        assert "nope" in outcomes[2].detail
        recorded = [(name, outcome) for _, name, outcome, _ in lg.witness_events()]
        assert recorded == [(o.witness, o.outcome) for o in outcomes]
        assert lg.checkpoint(2).cosignatures == ()
    with Ledger.open(setup.ledger, log_key=read_signer_file(setup.work / "log.key")) as lg:
        lg.append(event(7))  # appends are unaffected
        assert lg.size == 3
