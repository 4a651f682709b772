"""The tamper matrix: every way of altering a bundle fails verification, with its class named.

Each case goes through the ``verify`` command (exit 1, the class in the error
line); the exhaustive loops (every byte of a record, every cut offset) call
:func:`verify` directly for speed and the command for a sample. Hypothesis
then flips random bytes and cuts random lengths: nothing is ever accepted.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disclosure_ledger._cli import owner as cli_owner
from disclosure_ledger._core import records
from disclosure_ledger._core.bundle import FrameType, Prelude, write_bundle
from disclosure_ledger._core.checkpoints import Checkpoint, parse_checkpoint, sign_checkpoint
from disclosure_ledger._core.merkle import CompactRange, leaf_hash
from disclosure_ledger._core.notes import Signer, parse_note
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._log.export import export_ledger
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._verify.verifier import MalformedRecordError, VerifyInputError, verify
from disclosure_ledger.errors import LedgerError, MalformedError

from .ledger_helpers import ORIGIN, event, log_key, new_ledger, release_event, writer_key
from .test_bundle import join_frames, split_frames

# The envelope header, as docs/format.md lays it out: version, seq, prev,
# logged_at, key ID, event length.
_ENVELOPE_HEADER = struct.Struct(">BQ32sqII")
POLICY = Policy.simple(log_key().verifier, [writer_key().verifier])
KEYS = ["--log-key", log_key().verifier.vkey, "--writer-key", writer_key().verifier.vkey]


# -- helpers shared with test_verify ---------------------------------------------------------


def forge(
    events: Sequence[dict[str, Any] | bytes],
    *,
    signers: dict[int, Signer] | None = None,
    log: Signer | None = None,
    origin: str = ORIGIN,
    seqs: dict[int, int] | None = None,
    prevs: dict[int, bytes] | None = None,
    logged_ats: dict[int, int] | None = None,
) -> bytes:
    """A full bundle of ``events``, signed with the real keys unless told otherwise.

    An event given as bytes is used as the event encoding as it is. ``seqs``,
    ``prevs`` and ``logged_ats`` override a record's sequence number, chain
    link and logged_at; the envelope header is then packed here, by the
    format's layout, so values the encoder refuses can be signed too.
    """
    log = log or log_key()
    leaves: list[bytes] = []
    prev = records.GENESIS_PREV
    for i, ev in enumerate(events):
        raw = ev if isinstance(ev, bytes) else records.encode_event(records.event_from_json(ev))
        signer = (signers or {}).get(i, writer_key())
        seq = (seqs or {}).get(i, i)
        link = (prevs or {}).get(i, prev)
        logged_at = (logged_ats or {}).get(i, 1_700_000_000_000_000 + i)
        header = _ENVELOPE_HEADER.pack(
            records.ENVELOPE_VERSION, seq, link, logged_at, signer.key_id, len(raw)
        )
        content = header + raw
        leaves.append(content + records.sign_content(origin, content, signer))
        prev = records.chain_hash(content)
    return bundle_of(leaves, log=log, origin=origin)


def bundle_of(leaves: Sequence[bytes], *, log: Signer | None = None, origin: str = ORIGIN) -> bytes:
    """A full bundle of these exact leaves under a checkpoint the log key signs."""
    log = log or log_key()
    cr = CompactRange()
    cr.extend(leaf_hash(leaf) for leaf in leaves)
    note = sign_checkpoint(Checkpoint(origin, len(leaves), cr.root()), log)
    hints = (log.verifier.vkey, writer_key().verifier.vkey)
    out = io.BytesIO()
    write_bundle(out, Prelude(origin, 0, len(leaves), hints, note), leaves)
    return out.getvalue()


def leaves_of(data: bytes) -> list[bytes]:
    return [p for t, p in split_frames(data) if t == FrameType.RECORD]


def replace_records(data: bytes, leaves: Sequence[bytes]) -> bytes:
    """Put other record frames in, keeping every other frame as it was."""
    frames = split_frames(data)
    first = next(i for i, (t, _) in enumerate(frames) if t == FrameType.RECORD)
    rest = [f for f in frames if f[0] not in (FrameType.RECORD,)]
    head = rest[:first]
    tail = rest[first:]
    return join_frames([*head, *[(FrameType.RECORD, leaf) for leaf in leaves], *tail])


def run_cli(args: list[str]) -> Any:
    group = click.Group()
    cli_owner.register(group)
    return CliRunner().invoke(group, args)


def assert_fails(path: Path, cls: str, *extra: str, index: int | None = None) -> str:
    result = run_cli(["verify", str(path), *KEYS, *extra])
    assert result.exit_code == 1, (result.exit_code, result.output, result.stderr)
    line: str = result.stderr.strip()
    assert line.startswith("disclosure-ledger: error: verification failed: " + cls), line
    assert "\n" not in line
    assert "Traceback" not in result.output + result.stderr
    if index is not None:
        assert f"at record {index}:" in line, line
    return line


def expect_rejected(data: bytes, **kwargs: Any) -> LedgerError:
    try:
        verify(io.BytesIO(data), POLICY, threads=1, **kwargs)
    except VerifyInputError:
        raise
    except LedgerError as err:
        return err
    raise AssertionError("a tampered bundle was accepted")


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("tamper")
    lg = new_ledger(tmp)
    lg.append_many([event(i) for i in range(6)])
    lg.append_many([release_event(i) for i in range(6, 9)])
    lg.append_many([event(i) for i in range(9, 16)])
    export_ledger(lg, tmp / "full.bundle")
    export_ledger(lg, tmp / "range.bundle", from_size=9)
    lg.close()
    return {
        "tmp": tmp,
        "full": (tmp / "full.bundle").read_bytes(),
        "range": (tmp / "range.bundle").read_bytes(),
    }


def write(tmp_path: Path, data: bytes, name: str = "t.bundle") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_the_untampered_bundles_verify(world: dict[str, Any], tmp_path: Path) -> None:
    for name in ("full", "range"):
        result = run_cli(["verify", str(write(tmp_path, world[name])), *KEYS])
        assert result.exit_code == 0, result.stderr
        assert result.stdout.startswith("VERIFIED")


# -- the matrix -------------------------------------------------------------------------------


def test_changed_byte_in_a_record_every_offset(world: dict[str, Any], tmp_path: Path) -> None:
    data = world["full"]
    frames = split_frames(data)
    k = [i for i, (t, _) in enumerate(frames) if t == FrameType.RECORD][7]
    record = frames[k][1]
    classes = set()
    for off in range(len(record)):
        changed = bytearray(record)
        changed[off] ^= 0x01
        frames2 = [*frames[:k], (FrameType.RECORD, bytes(changed)), *frames[k + 1 :]]
        err = expect_rejected(join_frames(frames2))
        assert getattr(err, "index", None) == 7, (off, err)
        classes.add(type(err).__name__)
    assert classes == {"BadSignatureError", "MalformedRecordError", "UntrustedKeyError"}
    # Through the command, a change in the event bytes and in the signature.
    for off in (100, len(record) - 1):
        changed = bytearray(record)
        changed[off] ^= 0x80
        frames2 = [*frames[:k], (FrameType.RECORD, bytes(changed)), *frames[k + 1 :]]
        assert_fails(write(tmp_path, join_frames(frames2)), "BadSignatureError", index=7)


def test_record_removed(world: dict[str, Any], tmp_path: Path) -> None:
    leaves = leaves_of(world["full"])
    data = replace_records(world["full"], leaves[:4] + leaves[5:])
    assert_fails(write(tmp_path, data), "ChainBreakError", index=4)


def test_record_removed_and_everything_resigned_by_the_log(
    world: dict[str, Any], tmp_path: Path
) -> None:
    # Even the log key cannot re-sign its way past the writer's chain.
    leaves = leaves_of(world["full"])
    data = bundle_of(leaves[:4] + leaves[5:])
    assert_fails(write(tmp_path, data), "ChainBreakError", index=4)


def test_two_records_swapped(world: dict[str, Any], tmp_path: Path) -> None:
    leaves = leaves_of(world["full"])
    leaves[3], leaves[4] = leaves[4], leaves[3]
    assert_fails(
        write(tmp_path, replace_records(world["full"], leaves)), "ChainBreakError", index=3
    )


def test_record_with_a_wrong_chain_link_but_a_valid_signature(tmp_path: Path) -> None:
    # The writer's key signs a record whose prev is not the chain hash of the one before.
    data = forge([event(i) for i in range(5)], prevs={3: bytes(range(32))})
    err = expect_rejected(data)
    assert (type(err).__name__, getattr(err, "index", None)) == ("ChainBreakError", 3)
    line = assert_fails(write(tmp_path, data), "ChainBreakError", index=3)
    assert "does not link to record 2" in line


@pytest.mark.parametrize("logged_at", [records.MAX_LOGGED_AT + 1, (1 << 63) - 1, -1])
def test_logged_at_out_of_range_with_a_valid_signature(tmp_path: Path, logged_at: int) -> None:
    data = forge([event(i) for i in range(3)], logged_ats={1: logged_at})
    err = expect_rejected(data)
    assert isinstance(err, MalformedRecordError), err
    assert err.index == 1
    line = assert_fails(write(tmp_path, data), "MalformedRecordError", index=1)
    assert "logged_at" in line
    # At the bound itself it is a valid record.
    ok = forge([event(i) for i in range(3)], logged_ats={2: records.MAX_LOGGED_AT})
    assert verify(io.BytesIO(ok), POLICY).last_logged_at == "9999-12-31T23:59:59.999999Z"


def test_record_duplicated(world: dict[str, Any], tmp_path: Path) -> None:
    leaves = leaves_of(world["full"])
    leaves.insert(6, leaves[5])
    data = bundle_of(leaves)
    assert_fails(write(tmp_path, data), "ChainBreakError", index=6)


def test_event_id_duplicated_in_a_new_record(tmp_path: Path) -> None:
    # A writer key (or a thief of one) appends a second record with an old event_id.
    events: list[dict[str, Any] | bytes] = [event(i) for i in range(5)]
    events.append(event(2))
    assert_fails(write(tmp_path, forge(events)), "DuplicateRecordError", index=5)


def test_tail_truncated_and_resigned_by_the_real_log_key(
    world: dict[str, Any], tmp_path: Path
) -> None:
    truncated = bundle_of(leaves_of(world["full"])[:10])
    path = write(tmp_path, truncated)
    # Without anything seen before, a consistent truncation is a valid, smaller
    # ledger: this is exactly why --state, trusted checkpoints and witnesses exist.
    ok = run_cli(["verify", str(path), *KEYS])
    assert ok.exit_code == 0, ok.stderr
    assert "no earlier checkpoint" in ok.stdout
    # With the state of a run that saw the whole ledger, it is a rollback.
    state = tmp_path / "state"
    full = write(tmp_path, world["full"], "full.bundle")
    assert run_cli(["verify", str(full), *KEYS, "--state", str(state)]).exit_code == 0
    line = assert_fails(path, "RollbackError", "--state", str(state))
    assert "size 10" in line
    assert "size 16" in line
    # And against a trusted checkpoint given by hand.
    cp = write(tmp_path, _checkpoint_note(world["full"]).encode(), "seen.checkpoint")
    assert_fails(path, "RollbackError", "--trusted-checkpoint", str(cp))


def _checkpoint_note(data: bytes) -> str:
    return next(p for t, p in split_frames(data) if t == FrameType.CHECKPOINT).decode()


def test_record_signed_by_an_untrusted_key(tmp_path: Path) -> None:
    rogue = Signer("vendor.example/writer/rogue", bytes(range(7, 39)))
    data = forge([event(i) for i in range(6)], signers={3: rogue})
    line = assert_fails(write(tmp_path, data), "UntrustedKeyError", index=3)
    assert f"{rogue.key_id:08x}" in line


def test_records_signed_by_the_log_key_when_writers_are_required(tmp_path: Path) -> None:
    data = forge([event(i) for i in range(3)], signers={1: log_key()})
    assert_fails(write(tmp_path, data), "UntrustedKeyError", index=1)


def test_checkpoint_from_another_origin(world: dict[str, Any], tmp_path: Path) -> None:
    other_log = Signer("vendor.example/ledger/owner-99", bytes(range(50, 82)))
    other = Ledger.create(tmp_path / "other.ledger", log_key=other_log, writers=[writer_key()])
    other.append_many([event(i) for i in range(16)])
    foreign = other.latest_checkpoint().note
    other.close()
    frames = [
        (t, foreign.encode() if t == FrameType.CHECKPOINT else p)
        for t, p in split_frames(world["full"])
    ]
    line = assert_fails(write(tmp_path, join_frames(frames)), "UntrustedKeyError")
    assert "owner-99" in line
    # The whole bundle of the other log: the policy trusts no log of that origin.
    other = Ledger.open(tmp_path / "other.ledger")
    export_ledger(other, tmp_path / "other.bundle")
    other.close()
    assert_fails(tmp_path / "other.bundle", "UntrustedKeyError")


def test_stale_checkpoint_after_a_newer_one_was_seen(tmp_path: Path) -> None:
    lg = new_ledger(tmp_path)
    lg.append_many([event(i) for i in range(5)])
    export_ledger(lg, tmp_path / "old.bundle")
    lg.append_many([event(i) for i in range(5, 9)])
    export_ledger(lg, tmp_path / "new.bundle")
    lg.close()
    state = tmp_path / "state"
    assert (
        run_cli(["verify", str(tmp_path / "new.bundle"), *KEYS, "--state", str(state)]).exit_code
        == 0
    )
    assert_fails(tmp_path / "old.bundle", "RollbackError", "--state", str(state))


@pytest.mark.parametrize("seen", [16, 12])
def test_fork_same_keys_different_record(tmp_path: Path, seen: int) -> None:
    # The operator rebuilds history with record 7 changed, signed by the real
    # writer and log keys, consistently: only what the owner saw catches it.
    events: list[dict[str, Any] | bytes] = [event(i) for i in range(16)]
    events[7] = event(7, justification="nothing to see here")
    forked = forge(events)
    honest = forge([event(i) for i in range(16)])
    # Alone, the fork is a valid ledger.
    ok = run_cli(["verify", str(write(tmp_path, forked, "fork.bundle")), *KEYS])
    assert ok.exit_code == 0, ok.stderr
    state = tmp_path / "state"
    seen_bundle = bundle_of(leaves_of(honest)[:seen])
    assert (
        run_cli(
            [
                "verify",
                str(write(tmp_path, seen_bundle, "seen.bundle")),
                *KEYS,
                "--state",
                str(state),
            ]
        ).exit_code
        == 0
    )
    # Two roots for one size are portable evidence; a fork inside the range is not.
    cls = "SplitViewError" if seen == 16 else "InconsistentCheckpointError"
    line = assert_fails(tmp_path / "fork.bundle", cls, "--state", str(state))
    assert "fork" in line
    assert ("evidence written to" in line) == (seen == 16)


def test_fork_caught_through_a_range_bundle(world: dict[str, Any], tmp_path: Path) -> None:
    state = tmp_path / "state"
    nine = bundle_of(leaves_of(world["full"])[:9])
    assert (
        run_cli(
            ["verify", str(write(tmp_path, nine, "nine.bundle")), *KEYS, "--state", str(state)]
        ).exit_code
        == 0
    )
    # The honest range bundle from 9 verifies incrementally against that state...
    ok = run_cli(
        [
            "verify",
            str(write(tmp_path, world["range"], "range.bundle")),
            *KEYS,
            "--state",
            str(state),
        ]
    )
    assert ok.exit_code == 0, ok.stderr
    # ...but a range bundle of a forked history does not.
    state2 = tmp_path / "state2"
    assert (
        run_cli(["verify", str(tmp_path / "nine.bundle"), *KEYS, "--state", str(state2)]).exit_code
        == 0
    )
    lg = new_ledger(tmp_path, "fork.ledger")
    lg.append_many([event(i) for i in range(6)])
    lg.append_many([release_event(i, "warrant") for i in range(6, 9)])
    lg.append_many([event(i) for i in range(9, 16)])
    export_ledger(lg, tmp_path / "forkrange.bundle", from_size=9)
    lg.close()
    assert_fails(tmp_path / "forkrange.bundle", "SplitViewError", "--state", str(state2))


def test_checkpoint_root_altered(world: dict[str, Any], tmp_path: Path) -> None:
    note = _checkpoint_note(world["full"])
    parsed = parse_note(note)
    cp = parse_checkpoint(parsed.text)
    forged_root = bytes(32)
    altered_text = Checkpoint(cp.origin, cp.size, forged_root).body
    unsigned = altered_text + note[len(parsed.text) :]

    def with_note(text: str) -> bytes:
        return join_frames(
            [
                (t, text.encode() if t == FrameType.CHECKPOINT else p)
                for t, p in split_frames(world["full"])
            ]
        )

    assert_fails(write(tmp_path, with_note(unsigned)), "BadSignatureError")
    resigned = sign_checkpoint(Checkpoint(cp.origin, cp.size, forged_root), log_key())
    assert_fails(write(tmp_path, with_note(resigned)), "RootMismatchError")


def test_garbage_appended(world: dict[str, Any], tmp_path: Path) -> None:
    line = assert_fails(write(tmp_path, world["full"] + b"\x00garbage"), "MalformedError")
    assert "follows the end frame" in line
    assert_fails(
        write(tmp_path, world["full"] + struct.pack(">BI", FrameType.END, 8) + bytes(8)),
        "MalformedError",
    )


@pytest.mark.parametrize("name", ["full", "range"])
def test_cut_short_at_every_offset(world: dict[str, Any], tmp_path: Path, name: str) -> None:
    data = world[name]
    if name == "full":
        data = bundle_of(leaves_of(data)[:3])  # small, so every offset is fast
    for cut in range(len(data)):
        err = expect_rejected(data[:cut])
        assert isinstance(err, MalformedError), (cut, err)
    for cut in (0, 9, len(data) // 2, len(data) - 1):
        line = assert_fails(write(tmp_path, data[:cut]), "MalformedError")
        assert "empty" in line or "truncated" in line


def test_range_bundle_tampering(world: dict[str, Any], tmp_path: Path) -> None:
    frames = split_frames(world["range"])

    def edit(ftype: int, fn: Callable[[bytes], bytes]) -> bytes:
        return join_frames([(t, fn(p) if t == ftype else p) for t, p in frames])

    def flip(p: bytes, at: int = -1) -> bytes:
        b = bytearray(p)
        b[at] ^= 1
        return bytes(b)

    err = expect_rejected(edit(FrameType.CONSISTENCY, flip))
    assert type(err).__name__ == "RootMismatchError"
    err = expect_rejected(edit(FrameType.ANCHOR, flip))
    assert type(err).__name__ == "RootMismatchError"
    err = expect_rejected(edit(FrameType.ANCHOR, lambda p: flip(p, 40)))
    assert type(err).__name__ == "RootMismatchError"
    err = expect_rejected(edit(FrameType.OLD_CHECKPOINT, lambda p: flip(p, 3)))
    assert type(err).__name__ == "BadSignatureError"


# -- Hypothesis ---------------------------------------------------------------------------------


_SMALL: dict[str, bytes] = {}


def _small(world: dict[str, Any]) -> dict[str, bytes]:
    if not _SMALL:
        _SMALL["full"] = bundle_of(leaves_of(world["full"])[:4])
        _SMALL["range"] = world["range"]
    return _SMALL


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["full", "range"]),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
        min_size=1,
        max_size=4,
    ),
)
def test_random_byte_flips_are_never_accepted(
    world: dict[str, Any], which: str, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(_small(world)[which])
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    if bytes(data) == _small(world)[which]:
        return  # two flips cancelled out
    expect_rejected(bytes(data))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["full", "range"]),
    cut=st.integers(min_value=0),
    extra=st.binary(max_size=8),
)
def test_random_truncations_are_never_accepted(
    world: dict[str, Any], which: str, cut: int, extra: bytes
) -> None:
    good = _small(world)[which]
    data = good[: cut % len(good)] + extra
    if data == good:
        return
    expect_rejected(data)
