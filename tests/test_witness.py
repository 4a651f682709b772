"""The witness: every refusal, persistence, races between threads and processes, split views.

A witness cosigns a checkpoint only when it extends the one it cosigned last;
these tests drive it with requests built by real ledgers, including two
ledgers that share a log key and diverge (a simulated split view).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    WitnessRequest,
    format_witness_request,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from disclosure_ledger._core.evidence import (
    KIND_BAD_EMPTY_ROOT,
    KIND_NOT_AN_EXTENSION,
    KIND_SAME_SIZE_FORK,
    check_evidence,
)
from disclosure_ledger._core.evidence import parse_evidence as parse_evidence_file
from disclosure_ledger._core.notes import Signer, parse_note
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._witness.witness import (
    CONFIG_HEADER,
    OldSizeTooLargeError,
    SizeWentBackwardsError,
    SplitViewError,
    StaleOldSizeError,
    UnknownOriginError,
    Witness,
    WitnessConfig,
    format_config,
    parse_config,
)
from disclosure_ledger.errors import (
    BadSignatureError,
    ConflictError,
    KeyFormatError,
    MalformedError,
    ProofError,
    RollbackError,
    RootMismatchError,
    StorageError,
)

from .conftest import load_json
from .ledger_helpers import (
    ORIGIN,
    event,
    forked_ledgers,
    log_key,
    new_ledger,
    witness_key,
    writer_key,
)

NOW = 1_790_000_000
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = new_ledger(tmp_path)
    yield led
    led.close()


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness.init(tmp_path / "w", witness_key(), [log_key().verifier])


def grow(led: Ledger, n: int, start: int = 0) -> int:
    """Append ``n`` events (ids from ``start``) in one commit; return the new size."""
    led.append_many([event(i) for i in range(start, start + n)])
    return led.size


def cosigned(line: str, note: str, key: Signer) -> int:
    """Verify a cosignature line over ``note``; return its timestamp."""
    signed = open_checkpoint(note + line, log_key().verifier, [key.verifier])
    assert len(signed.cosignatures) == 1
    return signed.cosignatures[0].timestamp


# --- the happy path --------------------------------------------------------------------


def test_first_checkpoint_from_old_zero_is_cosigned_and_persisted(
    ledger: Ledger, witness: Witness
) -> None:
    size = grow(ledger, 3)
    req = ledger.witness_request(0, size)
    line = witness.add_checkpoint(format_witness_request(req), NOW)
    assert cosigned(line, req.checkpoint, witness_key()) == NOW
    state = witness.state(ledger.origin)
    assert state is not None
    assert (state.size, state.root) == (size, ledger.checkpoint(size).checkpoint.root)
    # The state is on disk: a fresh instance over the directory sees it.
    again = Witness.open(witness.directory, witness_key())
    assert again.state(ledger.origin) == state
    assert not [p for p in (witness.directory / "state").iterdir() if p.name.startswith(".")]


def test_advances_with_consistency_proofs_and_accepts_bytes_str_and_objects(
    ledger: Ledger, witness: Witness
) -> None:
    s1 = grow(ledger, 3)
    witness.add_checkpoint(ledger.witness_request(0, s1), NOW)
    s2 = grow(ledger, 4, 3)
    body = format_witness_request(ledger.witness_request(s1, s2))
    line = witness.add_checkpoint(body.encode(), NOW + 1)
    assert cosigned(line, ledger.checkpoint(s2).note, witness_key()) == NOW + 1
    s3 = grow(ledger, 9, 7)
    witness.add_checkpoint(format_witness_request(ledger.witness_request(s2, s3)), NOW + 2)
    state = witness.state(ledger.origin)
    assert state is not None
    assert state.size == s3 == 16


def test_empty_ledger_checkpoint_then_growth(ledger: Ledger, witness: Witness) -> None:
    witness.add_checkpoint(ledger.witness_request(0, 0), NOW)
    state = witness.state(ledger.origin)
    assert state is not None
    assert state.size == 0
    size = grow(ledger, 2)
    witness.add_checkpoint(ledger.witness_request(0, size), NOW)


def test_same_checkpoint_again_gets_a_fresh_cosignature(ledger: Ledger, witness: Witness) -> None:
    size = grow(ledger, 5)
    witness.add_checkpoint(ledger.witness_request(0, size), NOW)
    before = (witness.directory / "state").stat().st_mtime_ns
    req = ledger.witness_request(size, size)
    assert req.proof == ()
    line = witness.add_checkpoint(req, NOW + 60)
    assert cosigned(line, req.checkpoint, witness_key()) == NOW + 60
    assert (witness.directory / "state").stat().st_mtime_ns == before


def test_cosignature_message_matches_the_c2sp_example_bytes(tmp_path: Path) -> None:
    vec = load_json("c2sp/format-examples.json")
    message: str = vec["ed25519_cosigned_message"]
    timestamp = vec["cosignature_parsed"]["timestamp"]
    body = message.split("\n", 2)[2]  # drop "cosignature/v1" and "time N"
    cp = parse_checkpoint(body)
    log = Signer(cp.origin, bytes(32))
    wkey = witness_key("witness.example.com/w1")
    w = Witness.init(tmp_path / "w", wkey, [log.verifier])
    line = w.add_checkpoint(WitnessRequest(0, (), sign_checkpoint(cp, log)), timestamp)
    raw = base64.b64decode(line.rstrip("\n").split(" ")[-1])
    assert len(raw) == vec["cosignature_parsed"]["total_decoded_len"]
    assert int.from_bytes(raw[:4], "big") == wkey.key_id
    assert int.from_bytes(raw[4:12], "big") == timestamp
    pub = Ed25519PublicKey.from_public_bytes(wkey.verifier.public_key)
    pub.verify(raw[12:], message.encode())  # raises if the bytes differ


# --- refusals ---------------------------------------------------------------------------


def test_unknown_origin(tmp_path: Path, witness: Witness) -> None:
    other = Signer("other.example/log", bytes(range(5, 37)))
    with Ledger.create(tmp_path / "o.ledger", log_key=other) as led:
        led.append(event(0))
        with pytest.raises(UnknownOriginError, match="does not follow"):
            witness.add_checkpoint(led.witness_request(0, 1), NOW)
    assert witness.state("other.example/log") is None


def test_bad_signature_and_missing_log_signature(ledger: Ledger, witness: Witness) -> None:
    size = grow(ledger, 2)
    note = ledger.checkpoint(size).note
    text, sigs = note.split("\n\n")
    name, b64 = sigs.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    forged = f"{text}\n\n{name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(BadSignatureError):
        witness.add_checkpoint(WitnessRequest(0, (), forged), NOW)
    # Same origin, another key: the log's key did not sign it at all.
    impostor = Signer(ledger.origin, bytes(range(9, 41)))
    cp = ledger.checkpoint(size).checkpoint
    with pytest.raises(BadSignatureError, match="not signed by the log"):
        witness.add_checkpoint(WitnessRequest(0, (), sign_checkpoint(cp, impostor)), NOW)
    # A root changed under a genuine signature.
    bad = Checkpoint(cp.origin, cp.size, hashlib.sha256(b"x").digest())
    tampered = bad.body + "\n" + note.split("\n\n")[1]
    with pytest.raises(BadSignatureError):
        witness.add_checkpoint(WitnessRequest(0, (), tampered), NOW)
    assert witness.state(ledger.origin) is None


def test_stale_old_size_reports_the_current_size(ledger: Ledger, witness: Witness) -> None:
    s1 = grow(ledger, 3)
    s2 = grow(ledger, 2, 3)
    witness.add_checkpoint(ledger.witness_request(0, s1), NOW)
    witness.add_checkpoint(ledger.witness_request(s1, s2), NOW)
    s3 = grow(ledger, 2, 5)
    with pytest.raises(StaleOldSizeError) as info:
        witness.add_checkpoint(ledger.witness_request(s1, s3), NOW)
    assert info.value.current_size == s2
    assert isinstance(info.value, ConflictError)
    with pytest.raises(StaleOldSizeError):
        witness.add_checkpoint(ledger.witness_request(0, s3), NOW)
    witness.add_checkpoint(ledger.witness_request(info.value.current_size, s3), NOW)


def test_old_size_larger_than_new(ledger: Ledger, witness: Witness) -> None:
    size = grow(ledger, 3)
    req = WitnessRequest(4, (), ledger.checkpoint(size).note)
    with pytest.raises(MalformedError, match="larger than") as info:
        witness.add_checkpoint(req, NOW)
    assert type(info.value) is OldSizeTooLargeError
    assert witness.state(ledger.origin) is None  # nothing was cosigned


def test_size_went_backwards(ledger: Ledger, witness: Witness) -> None:
    s1 = grow(ledger, 3)
    s2 = grow(ledger, 3, 3)
    witness.add_checkpoint(ledger.witness_request(0, s2), NOW)
    for old in (0, s1):
        with pytest.raises(SizeWentBackwardsError) as info:
            witness.add_checkpoint(ledger.witness_request(old, s1), NOW)
        assert info.value.current_size == s2
        assert isinstance(info.value, RollbackError)


def test_bad_proofs(ledger: Ledger, witness: Witness) -> None:
    s1 = grow(ledger, 3)
    witness.add_checkpoint(ledger.witness_request(0, s1), NOW)
    s2 = grow(ledger, 6, 3)
    good = ledger.witness_request(s1, s2)
    flipped = bytearray(good.proof[0])
    flipped[0] ^= 0x80
    cases: dict[str, tuple[tuple[bytes, ...], type[ProofError], str]] = {
        "modified-proof": (
            (bytes(flipped), *good.proof[1:]),
            RootMismatchError,
            f"consistency proof from {s1} to {s2}",
        ),
        "truncated-proof": (good.proof[:-1], ProofError, "too short"),
        "extended-proof": ((*good.proof, good.proof[0]), ProofError, "too long"),
        "empty-proof": ((), ProofError, "empty"),
    }
    for name, (proof, error, needle) in cases.items():
        req = WitnessRequest(s1, proof, good.checkpoint)
        with pytest.raises(error, match=needle) as info:
            witness.add_checkpoint(req, NOW)
        # RootMismatchError is a ProofError: pin the exact class.
        assert type(info.value) is error, name
        state = witness.state(ledger.origin)
        assert state is not None
        assert state.size == s1, name
    witness.add_checkpoint(good, NOW)


def test_proofs_that_must_be_empty(ledger: Ledger, witness: Witness) -> None:
    size = grow(ledger, 3)
    note = ledger.checkpoint(size).note
    junk = (hashlib.sha256(b"junk").digest(),)
    with pytest.raises(ProofError, match="from size 0"):
        witness.add_checkpoint(WitnessRequest(0, junk, note), NOW)
    witness.add_checkpoint(WitnessRequest(0, (), note), NOW)
    with pytest.raises(ProofError, match="already held"):
        witness.add_checkpoint(WitnessRequest(size, junk, note), NOW)


def test_a_size_zero_checkpoint_must_have_the_empty_root(witness: Witness) -> None:
    # The log signed a falsehood on its face: that alone is split-view evidence.
    cp = Checkpoint(log_key().name, 0, hashlib.sha256(b"not empty").digest())
    with pytest.raises(SplitViewError, match=r"size 0 .* without the empty root") as info:
        witness.add_checkpoint(WitnessRequest(0, (), sign_checkpoint(cp, log_key())), NOW)
    path = info.value.evidence_path
    assert path is not None
    assert path.parent == witness.directory / "evidence"
    found = check_evidence(parse_evidence_file(path.read_bytes()), log_key().verifier)
    assert found.kind == KIND_BAD_EMPTY_ROOT
    assert witness.state(log_key().name) is None  # nothing was cosigned


def test_malformed_requests(witness: Witness) -> None:
    for body in (b"", b"old 01\n\nx", b"\xff\xfe", "old 1\n\nnot a note\n"):
        with pytest.raises(MalformedError):
            witness.add_checkpoint(body, NOW)


# --- the state directory ---------------------------------------------------------------


def test_init_open_and_key_checks(tmp_path: Path) -> None:
    d = tmp_path / "w"
    Witness.init(d, witness_key(), [log_key().verifier], key_file=tmp_path / "w.key")
    assert Witness.read_config(d).key_file == str((tmp_path / "w.key").resolve())
    with pytest.raises(StorageError, match="already holds a witness"):
        Witness.init(d, witness_key(), [log_key().verifier])
    with pytest.raises(KeyFormatError, match="not the key given"):
        Witness.open(d, witness_key("witness.example/other"))
    with pytest.raises(KeyFormatError, match="cosignature"):
        Witness.init(tmp_path / "x", log_key(), [log_key().verifier])
    with pytest.raises(KeyFormatError, match="Ed25519"):
        Witness.init(tmp_path / "y", witness_key(), [witness_key().verifier])
    with pytest.raises(MalformedError, match="at least one log"):
        Witness.init(tmp_path / "z", witness_key(), [])
    with pytest.raises(StorageError, match="not a witness directory"):
        Witness.open(tmp_path / "nowhere", witness_key())
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config").write_text("something else\n")
    with pytest.raises(StorageError, match="witness-config"):
        Witness.open(tmp_path / "bad", witness_key())


def test_a_tampered_state_file_is_refused(ledger: Ledger, witness: Witness) -> None:
    size = grow(ledger, 3)
    witness.add_checkpoint(ledger.witness_request(0, size), NOW)
    (path,) = [p for p in (witness.directory / "state").iterdir() if p.suffix != ".lock"]
    text = path.read_text()
    path.write_text(text.replace(f"\n{size}\n", f"\n{size + 1}\n", 1))
    with pytest.raises(StorageError, match="does not verify"):
        witness.add_checkpoint(ledger.witness_request(size, size), NOW)
    path.write_text("garbage")
    with pytest.raises(StorageError, match="not a witness state file"):
        witness.state(ledger.origin)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(StorageError, match="witness state is not valid UTF-8"):
        witness.state(ledger.origin)
    path.write_bytes(b"x" * ((2 << 20) + 1))
    with pytest.raises(StorageError, match="too large to be a witness state"):
        witness.state(ledger.origin)


def test_config_round_trip() -> None:
    wit = witness_key().verifier
    logs = (log_key().verifier, writer_key().verifier)
    for config in (WitnessConfig(wit, logs), WitnessConfig(wit, logs[:1], "/keys/w1.key")):
        text = format_config(config)
        assert text.startswith(CONFIG_HEADER + "\n")
        assert parse_config(text) == config
        assert format_config(parse_config(text)) == text


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        ((), "must start with"),
        (("disclosure-ledger/witness-config/v2",), "must start with"),
        (("log {log}",), "needs a cosignature"),
        (("witness {log}", "log {log}"), "needs a cosignature"),
        (("witness {wit}",), "names no log"),
        (("witness {wit}", "witness {wit}", "log {log}"), "line 3: unexpected 'witness'"),
        (("witness {wit}", "key-file a", "key-file b", "log {log}"), "line 4: unexpected"),
        (("witness {wit}", "key-file", "log {log}"), "line 3: unexpected 'key-file'"),
        (("witness {wit}", "log {log}", "logs {log}"), "line 4: unexpected 'logs'"),
        (("witness {wit}", "log not-a-key"), "line 3"),
        (("witness {wit}", "log {log}", ""), "line 4: unexpected ''"),
    ],
)
def test_config_refusals(lines: tuple[str, ...], needle: str) -> None:
    keys = {"wit": witness_key().verifier.vkey, "log": log_key().verifier.vkey}
    body = [line.format(**keys) for line in lines]
    if not lines or not lines[0].startswith("disclosure-ledger/"):
        body = [CONFIG_HEADER, *body] if lines else []
    with pytest.raises(MalformedError) as info:
        parse_config("\n".join(body) + ("\n" if body else ""))
    assert needle in str(info.value)


# --- split views ------------------------------------------------------------------------


@pytest.fixture
def fork(tmp_path: Path) -> Iterator[tuple[Ledger, Ledger]]:
    """Two ledgers under one log key whose contents differ from the first record."""
    yield from forked_ledgers(tmp_path)


def test_same_size_different_root_is_a_split_view_with_evidence(
    fork: tuple[Ledger, Ledger], witness: Witness
) -> None:
    a, b = fork
    grow(a, 5)
    b.append_many([event(i + 100) for i in range(5)])
    witness.add_checkpoint(a.witness_request(0, 5), NOW)
    with pytest.raises(SplitViewError) as info:
        witness.add_checkpoint(b.witness_request(5, 5), NOW)
    err = info.value
    assert err.evidence_path is not None
    assert err.evidence_path.parent == witness.directory / "evidence"
    found = check_evidence(parse_evidence_file(err.evidence_path.read_bytes()), log_key().verifier)
    assert found.kind == KIND_SAME_SIZE_FORK
    state = witness.state(a.origin)
    assert state is not None
    assert state.root == a.checkpoint(5).checkpoint.root  # the witness did not move


def test_a_proof_to_a_diverging_tree_is_a_split_view(
    fork: tuple[Ledger, Ledger], witness: Witness
) -> None:
    a, b = fork
    grow(a, 5)
    b.append_many([event(i + 100) for i in range(8)])
    witness.add_checkpoint(a.witness_request(0, 5), NOW)
    with pytest.raises(SplitViewError) as info:
        witness.add_checkpoint(b.witness_request(5, 8), NOW)
    found = check_evidence(info.value.evidence, log_key().verifier)
    assert found.kind == KIND_NOT_AN_EXTENSION
    assert (found.first_size, found.second_size) == (5, 8)
    assert found.implied_root != a.checkpoint(5).checkpoint.root


def test_a_power_of_two_old_size_fails_the_proof_without_evidence(
    fork: tuple[Ledger, Ledger], witness: Witness
) -> None:
    # RFC 9162 takes the first hash from the witness's own root when the old
    # size is a power of two, so the request's proof cannot show the fork.
    a, b = fork
    grow(a, 4)
    b.append_many([event(i + 100) for i in range(8)])
    witness.add_checkpoint(a.witness_request(0, 4), NOW)
    with pytest.raises(RootMismatchError) as info:
        witness.add_checkpoint(b.witness_request(4, 8), NOW)
    assert type(info.value) is RootMismatchError
    assert list((witness.directory / "evidence").iterdir()) == []
    state = witness.state(a.origin)
    assert state is not None
    assert (state.size, state.root) == (4, a.checkpoint(4).checkpoint.root)


# --- races ------------------------------------------------------------------------------


def test_racing_threads_never_both_succeed_from_one_old_size(
    ledger: Ledger, witness: Witness
) -> None:
    s1 = grow(ledger, 3)
    witness.add_checkpoint(ledger.witness_request(0, s1), NOW)
    sizes = [grow(ledger, 1, 3 + k) for k in range(6)]
    requests = [format_witness_request(ledger.witness_request(s1, n)) for n in sizes]
    # Half the threads share this instance, half open their own over the same directory.
    instances = [
        witness if k % 2 else Witness.open(witness.directory, witness_key()) for k in range(6)
    ]
    barrier = threading.Barrier(len(requests))
    results: list[str] = []
    lock = threading.Lock()

    def run(k: int) -> None:
        barrier.wait()
        try:
            instances[k].add_checkpoint(requests[k], NOW)
            outcome = f"ok {sizes[k]}"
        except (StaleOldSizeError, SizeWentBackwardsError):
            outcome = "refused"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if r.startswith("ok")]
    assert len(wins) == 1, results
    state = witness.state(ledger.origin)
    assert state is not None
    assert wins == [f"ok {state.size}"]


_RACER = """
import os, sys, time
from pathlib import Path
from disclosure_ledger._core.notes import parse_signer
from disclosure_ledger._witness.witness import Witness, StaleOldSizeError, SizeWentBackwardsError
directory, key, request, go = sys.argv[1:5]
w = Witness.open(directory, parse_signer(Path(key).read_text().strip()))
body = Path(request).read_bytes()
while not os.path.exists(go):
    time.sleep(0.001)
try:
    w.add_checkpoint(body, 1)
    print("ok")
except (StaleOldSizeError, SizeWentBackwardsError):
    print("refused")
"""


def test_racing_processes_never_both_succeed_from_one_old_size(
    tmp_path: Path, ledger: Ledger, witness: Witness
) -> None:
    s1 = grow(ledger, 3)
    witness.add_checkpoint(ledger.witness_request(0, s1), NOW)
    key_file = tmp_path / "w.key"
    key_file.write_text(witness_key().private_key_string() + "\n")
    n = 4
    sizes = [grow(ledger, 1, 3 + k) for k in range(n)]
    go = tmp_path / "go"
    procs = []
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for k, size in enumerate(sizes):
        req = tmp_path / f"req{k}"
        req.write_text(format_witness_request(ledger.witness_request(s1, size)))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _RACER,
                    str(witness.directory),
                    str(key_file),
                    str(req),
                    str(go),
                ],
                stdout=subprocess.PIPE,
                env=env,
            )
        )
    time.sleep(0.5)  # let every process import and reach the starting line
    go.touch()
    outs = [p.communicate(timeout=60)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(outs) == ["ok"] + ["refused"] * (n - 1)
    state = witness.state(ledger.origin)
    assert state is not None
    assert state.size in sizes
    assert parse_note(state.note).text == ledger.checkpoint(state.size).checkpoint.body


@pytest.mark.parametrize("where", ["", "state", "evidence", "config"])
def test_a_witness_writable_by_others_is_refused(
    ledger: Ledger, witness: Witness, where: str
) -> None:
    import stat as stat_mod

    d = witness.directory
    for sub in ("", "state", "evidence"):
        assert stat_mod.S_IMODE((d / sub).stat().st_mode) & 0o077 == 0
    path = d / where if where else d
    before = path.stat().st_mode
    path.chmod(0o777 if path.is_dir() else 0o666)
    fix = "chmod 700" if path.is_dir() else "chmod 600"
    with pytest.raises(StorageError, match=rf"writable by others .*{fix}"):
        Witness.open(d, witness_key())
    path.chmod(before)
    Witness.open(d, witness_key())


def test_a_state_file_writable_by_others_is_refused(ledger: Ledger, witness: Witness) -> None:
    grow(ledger, 2)
    witness.add_checkpoint(ledger.witness_request(0), 1_800_000_000)
    state = next(p for p in (witness.directory / "state").iterdir() if p.suffix != ".lock")
    state.chmod(0o622)
    with pytest.raises(StorageError, match=r"writable by others .*chmod 600"):
        witness.state(ORIGIN)
    state.chmod(0o600)
    assert witness.state(ORIGIN) is not None


def test_init_refuses_a_directory_writable_by_others(tmp_path: Path) -> None:
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(StorageError, match="chmod 700"):
        Witness.init(d, witness_key(), [log_key().verifier])
    assert not (d / "config").exists()
