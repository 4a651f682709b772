"""verify(): what it checks, where its trust comes from, the state directory and the report."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
from pathlib import Path

import msgpack
import pytest

from disclosure_ledger._core import records
from disclosure_ledger._core.checkpoints import Checkpoint, cosign_checkpoint, sign_checkpoint
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, MAX_NOTE_SIZE, Signer
from disclosure_ledger._core.policy import Policy, parse_policy
from disclosure_ledger._log.export import export_ledger
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._verify.fingerprints import FingerprintSet
from disclosure_ledger._verify.report import (
    failure_to_json,
    printable,
    render_json,
    render_text,
    report_to_json,
)
from disclosure_ledger._verify.verifier import (
    DuplicateRecordError,
    MalformedRecordError,
    Report,
    VerifyInputError,
    load_state,
    save_state,
    state_file,
    verify,
)
from disclosure_ledger.errors import (
    InconsistentCheckpointError,
    MalformedError,
    RollbackError,
    UntrustedKeyError,
    VerificationError,
)

from .ledger_helpers import ORIGIN, event, log_key, new_ledger, release_event, writer_key
from .test_tamper import POLICY, bundle_of, forge, leaves_of

# The package exports the function ``verify`` under the module's name.
verify_module = importlib.import_module("disclosure_ledger._verify.verifier")
WITNESS = Signer("witness.example/w1", bytes(range(90, 122)), KEY_TYPE_COSIGNATURE)
WITNESS2 = Signer("witness.example/w2", bytes(range(130, 162)), KEY_TYPE_COSIGNATURE)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    lg = new_ledger(tmp_path)
    lg.append_many([event(i) for i in range(4)])
    lg.append_many(
        [
            release_event(4, "warrant"),
            release_event(5, "emergency"),
            event(
                6,
                action="share",
                recipient={"kind": "third_party", "organization": "Insurer Ltd"},
                legal_basis="owner_consent",
                consent=True,
                owner_notified_at="2026-11-28T10:00:00Z",
            ),
            event(
                7,
                action="download",
                actor={"kind": "owner", "id": "owner-42"},
            ),
            event(
                8,
                action="release",
                recipient={"kind": "law_enforcement", "organization": "County Sheriff"},
                legal_basis="subpoena",
                notification_deferred_until="2027-01-01T00:00:00Z",
            ),
        ]
    )
    lg.append_many([event(i) for i in range(9, 12)])
    return lg


def _export(lg: Ledger, path: Path, from_size: int = 0) -> Path:
    export_ledger(lg, path, from_size)
    return path


def test_report_contents(ledger: Ledger, tmp_path: Path) -> None:
    report = verify(_export(ledger, tmp_path / "b"), POLICY)
    assert report.verdict == "verified"
    assert (report.origin, report.size, report.from_size, report.record_count) == (
        ORIGIN,
        12,
        0,
        12,
    )
    assert report.root == ledger.latest_checkpoint().checkpoint.root
    assert dict(report.actions) == {"view": 7, "release": 3, "share": 1, "download": 1}
    assert dict(report.legal_bases) == {
        "(not stated)": 8,
        "warrant": 1,
        "emergency": 1,
        "owner_consent": 1,
        "subpoena": 1,
    }
    assert dict(report.recipient_organizations) == {
        "(no recipient)": 8,
        "Springfield PD": 2,
        "Insurer Ltd": 1,
        "County Sheriff": 1,
    }
    assert dict(report.writers) == {writer_key().name: 12}
    assert report.first_occurred_at == "2026-11-27T09:30:00Z"
    assert report.last_occurred_at == "2026-11-27T09:41:00Z"
    assert report.first_logged_at is not None
    # The owner's own download is no disclosure; those without consent lead.
    assert report.disclosure_count == 4
    assert report.without_consent_count == 3
    assert [d.index for d in report.disclosures] == [4, 5, 8, 6]
    assert [d.without_consent for d in report.disclosures] == [True, True, True, False]
    warrant = report.disclosures[0]
    assert (warrant.legal_basis, warrant.legal_reference) == ("warrant", "case 26-4")
    assert warrant.recipient_organization == "Springfield PD"
    assert warrant.footage[0].clip_id == "clip-4"
    assert warrant.notification == "owner not notified"
    assert report.disclosures[2].notification == "notification deferred until 2027-01-01T00:00:00Z"
    assert report.disclosures[3].notification == "owner notified at 2026-11-28T10:00:00Z"
    assert report.unlisted_disclosures == 0
    assert any("no earlier checkpoint" in c for c in report.consistency)


def test_text_and_json_say_the_same(ledger: Ledger, tmp_path: Path) -> None:
    report = verify(_export(ledger, tmp_path / "b"), POLICY)
    text = render_text(report)
    assert text.startswith("VERIFIED")
    assert text.index("Without your consent:") < text.index("With your consent:")
    assert text.index("DISCLOSURES") < text.index("COUNTS")
    for needle in ("case 26-4", "Springfield PD", "deferred until 2027-01-01", "by action"):
        assert needle in text
    doc = json.loads(render_json(report))
    assert doc == report_to_json(report)
    assert doc["verdict"] == "verified"
    assert doc["size"] == 12
    assert doc["counts"]["action"]["release"] == 3
    assert [d["index"] for d in doc["disclosures"]] == [4, 5, 8, 6]
    assert doc["disclosures"][0]["recipient"]["organization"] == "Springfield PD"


def test_failure_json() -> None:
    err = DuplicateRecordError("record 5 repeats", index=5)
    assert failure_to_json(err)["error"] == {
        "class": "DuplicateRecordError",
        "index": 5,
        "message": "record 5 repeats",
    }


def test_printable_neutralises_terminal_controls() -> None:
    assert printable("ok") == "ok"
    assert printable("a\x1b[2Jb\u202e") == "a\ufffd[2Jb\ufffd"


def test_disclosure_list_is_capped_but_counted(ledger: Ledger, tmp_path: Path) -> None:
    report = verify(_export(ledger, tmp_path / "b"), POLICY, max_listed=1)
    assert [d.index for d in report.disclosures] == [4, 6]
    assert (report.disclosure_count, report.unlisted_disclosures) == (4, 2)
    assert "2 more disclosures" in render_text(report)


def test_progress_is_reported(ledger: Ledger, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    verify(_export(ledger, tmp_path / "b"), POLICY, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (12, 12)


def _map(pairs: list[tuple[object, object]]) -> bytes:
    """A msgpack map of ``pairs`` exactly as given: order, duplicates and all."""
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")
    return head + b"".join(
        msgpack.packb(k, use_bin_type=True) + msgpack.packb(v, use_bin_type=True) for k, v in pairs
    )


def _pairs(ev: dict[str, object]) -> list[tuple[object, object]]:
    canonical = records.encode_event(records.event_from_json(ev))
    return list(msgpack.unpackb(canonical, raw=False).items())


def _non_canonical() -> dict[str, bytes]:
    """Encodings of valid events that are not the canonical one, each of a different kind."""
    # "clip" is not a handover action: a verifier that decodes in full only the
    # records it expects to matter would skip these.
    release = _pairs(release_event(1))
    at = [key for key, _ in release].index("action")
    assert release[at][1] == "release"
    clip = event(1, action="clip", extensions={"n": 1})
    clip_pairs = _pairs(clip)
    plain = records.encode_event(records.event_from_json(clip))
    assert plain.count(b"\xa1n\x01") == 1
    assert plain.count(b"\xa5cam-1") == 1
    return {
        # A release to the police that a lenient decoder (last key wins) reads as a clip.
        "duplicate-action": _map(
            [*release[:at], ("action", "release"), ("action", "clip"), *release[at + 1 :]]
        ),
        "reordered-keys": _map(list(reversed(clip_pairs))),
        "non-minimal-int": plain.replace(b"\xa1n\x01", b"\xa1n\xcc\x01"),
        "non-minimal-str-header": plain.replace(b"\xa5cam-1", b"\xd9\x05cam-1"),
        "str-as-bin": plain.replace(b"\xa5cam-1", b"\xc4\x05cam-1"),
        "unknown-field": _map([*clip_pairs, ("zzz", "x")]),
        "extension-type": _map([*clip_pairs[:-1], (clip_pairs[-1][0], msgpack.ExtType(1, b"x"))]),
        "trailing-bytes": plain + b"\xc0",
        "map32-header": b"\xdf" + len(clip_pairs).to_bytes(4, "big") + _map(clip_pairs)[1:],
    }


@pytest.mark.parametrize("kind", sorted(_non_canonical()))
def test_non_canonical_event_is_always_refused(kind: str) -> None:
    # Each encoding is signed by the trusted writer, so only canonicality can catch it.
    data = forge([event(0), _non_canonical()[kind], event(2)])
    with pytest.raises(MalformedRecordError) as info:
        verify(io.BytesIO(data), POLICY)
    assert info.value.index == 1


def test_duplicate_action_key_never_reads_as_another_action() -> None:
    # What the review found: release then another action verified, reported as the other.
    raw = _non_canonical()["duplicate-action"]
    assert msgpack.unpackb(raw, raw=False)["action"] == "clip"
    with pytest.raises(MalformedRecordError, match="not canonical"):
        verify(io.BytesIO(forge([raw])), POLICY)


def test_broken_event_is_refused(tmp_path: Path) -> None:
    bad = msgpack.packb({"event_id": "x", "action": "teleport"}, use_bin_type=True)
    with pytest.raises(MalformedRecordError) as info:
        verify(io.BytesIO(forge([event(0), event(1), bad])), POLICY)
    assert info.value.index == 2
    with pytest.raises(MalformedRecordError):
        verify(io.BytesIO(forge([b"\xc1"])), POLICY)


def test_duplicate_event_id_named(tmp_path: Path) -> None:
    with pytest.raises(DuplicateRecordError, match=r"^repeats the event_id 'ev-00000001'") as info:
        verify(io.BytesIO(forge([event(0), event(1), event(2), event(1)])), POLICY)
    assert info.value.index == 3


def test_earliest_failure_is_reported_across_chunks(tmp_path: Path) -> None:
    # A bad signature at 300 and a truncation much later: the signature wins.
    data = forge([event(i) for i in range(600)])
    leaves = leaves_of(data)
    bad = bytearray(leaves[300])
    bad[-1] ^= 1
    leaves[300] = bytes(bad)
    data = bundle_of(leaves)
    with pytest.raises(VerificationError) as info:
        verify(io.BytesIO(data[:-2000]), POLICY)
    assert (type(info.value).__name__, info.value.index) == ("BadSignatureError", 300)


def test_many_records_many_chunks(tmp_path: Path) -> None:
    data = forge([event(i) for i in range(1100)])
    report = verify(io.BytesIO(data), POLICY, threads=2)
    assert (report.size, dict(report.actions)) == (1100, {"view": 1100})


def test_more_chunks_than_may_be_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks, so that far more than _MAX_IN_FLIGHT of them are read and
    # the reader must wait for the oldest (the back-pressure loop) many times.
    monkeypatch.setattr(verify_module, "_CHUNK", 4)
    n = 4 * (verify_module._MAX_IN_FLIGHT + 1) * 4
    leaves = leaves_of(forge([event(i) for i in range(n)]))
    report = verify(io.BytesIO(bundle_of(leaves)), POLICY, threads=2)
    assert (report.size, report.first_occurred_at) == (n, "2026-11-27T09:30:00Z")
    last = 30 + n - 1  # minutes after 09:00
    assert report.last_occurred_at == f"2026-11-27T{9 + last // 60:02d}:{last % 60:02d}:00Z"
    # The earliest failure still wins when it lies beyond the in-flight window.
    bad = bytearray(leaves[n - 5])
    bad[-1] ^= 1
    leaves[n - 5] = bytes(bad)
    with pytest.raises(VerificationError) as info:
        verify(io.BytesIO(bundle_of(leaves)), POLICY, threads=2)
    assert (type(info.value).__name__, info.value.index) == ("BadSignatureError", n - 5)


def test_threads_below_one_is_a_programming_error(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="threads"):
        verify(_export(ledger, tmp_path / "b"), POLICY, threads=0)


def test_without_writer_keys_records_must_be_signed_by_the_log_key(tmp_path: Path) -> None:
    lg = Ledger.create(tmp_path / "l", log_key=log_key())  # no writers: the log key signs
    lg.append_many([event(i) for i in range(3)])
    path = _export(lg, tmp_path / "b")
    report = verify(path, Policy.simple(log_key().verifier))
    assert dict(report.writers) == {ORIGIN: 3}
    # A ledger written by a writer key fails a policy that names no writer.
    lg2 = new_ledger(tmp_path, "w.ledger")
    lg2.append_many([event(0)])
    with pytest.raises(UntrustedKeyError, match=r"^record 0: signed by key") as info:
        verify(_export(lg2, tmp_path / "w"), Policy.simple(log_key().verifier))
    assert info.value.index == 0


def test_key_hints_are_never_trusted(tmp_path: Path) -> None:
    rogue = Signer("vendor.example/writer/rogue", bytes(range(7, 39)))
    data = forge([event(0)], signers={0: rogue})
    with pytest.raises(UntrustedKeyError, match="not a trusted writer"):
        verify(io.BytesIO(data), POLICY)


def test_bad_key_hint_is_malformed(ledger: Ledger, tmp_path: Path) -> None:
    from .test_bundle import join_frames, split_frames

    frames = split_frames(_export(ledger, tmp_path / "b").read_bytes())
    frames.insert(1, (0x02, b"not a key"))
    with pytest.raises(MalformedError, match="key hint 0"):
        verify(io.BytesIO(join_frames(frames)), POLICY)


def test_policy_without_a_log_for_the_origin(ledger: Ledger, tmp_path: Path) -> None:
    other = Signer("someone.else/log", bytes(32))
    with pytest.raises(UntrustedKeyError, match=r"policy trusts only 'someone\.else/log'"):
        verify(_export(ledger, tmp_path / "b"), Policy.simple(other.verifier))
    with pytest.raises(VerifyInputError, match="no log key"):
        verify(tmp_path / "b", Policy())


# -- witnesses --------------------------------------------------------------------------


def test_witness_quorum(ledger: Ledger, tmp_path: Path) -> None:
    latest = ledger.latest_checkpoint()
    line = cosign_checkpoint(latest.checkpoint, WITNESS, 1_800_000_000)
    ledger.add_cosignatures(latest.checkpoint.size, [line], [WITNESS.verifier])
    path = _export(ledger, tmp_path / "b")
    one = Policy.simple(log_key().verifier, [writer_key().verifier], [WITNESS.verifier])
    report = verify(path, one)
    assert report.cosigners == (WITNESS.name,)
    both = Policy.simple(
        log_key().verifier, [writer_key().verifier], [WITNESS.verifier, WITNESS2.verifier]
    )
    with pytest.raises(UntrustedKeyError, match="lacks the witness quorum"):
        verify(path, both)
    text = (
        f"log {log_key().verifier.vkey}\nwriter {writer_key().verifier.vkey}\n"
        f"witness a {WITNESS.verifier.vkey}\nwitness b {WITNESS2.verifier.vkey}\n"
        "group g any a b\nquorum g\n"
    )
    assert verify(path, parse_policy(text)).quorum.startswith("1 of 2")


def test_unhinted_signature_line_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    from .test_bundle import join_frames, split_frames

    frames = split_frames(_export(ledger, tmp_path / "b").read_bytes())
    note = next(p for t, p in frames if t == 0x03).decode()
    cp = ledger.latest_checkpoint().checkpoint
    extra = note + cosign_checkpoint(cp, WITNESS2, 5)
    frames = [(t, extra.encode() if t == 0x03 else p) for t, p in frames]
    with pytest.raises(MalformedError, match="neither trusted nor hinted"):
        verify(io.BytesIO(join_frames(frames)), POLICY)


# -- state and trusted checkpoints ---------------------------------------------------------


def test_state_file_is_named_by_the_origin_hash(tmp_path: Path) -> None:
    assert state_file(tmp_path, ORIGIN).name == hashlib.sha256(ORIGIN.encode()).hexdigest()


def test_state_advances_and_range_bundles_verify_incrementally(
    ledger: Ledger, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = verify(_export(ledger, tmp_path / "a"), POLICY, state_dir=state)
    assert first.state_saved
    assert load_state(state, ORIGIN) == ledger.latest_checkpoint().note
    ledger.append_many([event(i) for i in range(12, 20)])
    report = verify(_export(ledger, tmp_path / "r", from_size=12), POLICY, state_dir=state)
    assert (report.from_size, report.size, report.record_count) == (12, 20, 8)
    assert report.consistency == ("consistent with the saved state of size 12",)
    assert report.state_saved
    # The same bundle again: consistent, nothing to advance.
    again = verify(tmp_path / "r", POLICY, state_dir=state)
    assert not again.state_saved
    # The old full bundle is now a rollback; the state does not move.
    with pytest.raises(RollbackError):
        verify(tmp_path / "a", POLICY, state_dir=state)
    assert load_state(state, ORIGIN) == ledger.latest_checkpoint().note


def test_range_bundle_that_starts_after_the_state(ledger: Ledger, tmp_path: Path) -> None:
    state = tmp_path / "state"
    lg = ledger
    verify(_export(lg, tmp_path / "a"), POLICY, state_dir=state)  # size 12
    lg.append_many([event(i) for i in range(12, 15)])
    lg.append_many([event(i) for i in range(15, 18)])
    with pytest.raises(VerificationError, match="records in between are missing; export from 12"):
        verify(_export(lg, tmp_path / "r", from_size=15), POLICY, state_dir=state)


def test_range_bundle_with_state_inside_the_range(ledger: Ledger, tmp_path: Path) -> None:
    state = tmp_path / "state"
    verify(_export(ledger, tmp_path / "a"), POLICY, state_dir=state)  # size 12
    ledger.append_many([event(i) for i in range(12, 20)])
    report = verify(_export(ledger, tmp_path / "r", from_size=9), POLICY, state_dir=state)
    assert report.consistency == ("consistent with the saved state of size 12",)


def test_trusted_checkpoint(ledger: Ledger, tmp_path: Path) -> None:
    seen = ledger.checkpoint(9).note
    report = verify(_export(ledger, tmp_path / "a"), POLICY, trusted=seen)
    assert report.consistency == ("consistent with the trusted checkpoint of size 9",)
    forged = sign_checkpoint(Checkpoint(ORIGIN, 9, bytes(32)), log_key())
    with pytest.raises(InconsistentCheckpointError, match="fork"):
        verify(tmp_path / "a", POLICY, trusted=forged.encode())
    with pytest.raises(VerifyInputError, match="trusted checkpoint does not verify"):
        verify(tmp_path / "a", POLICY, trusted="not a note")
    other = Signer("someone.else/log", bytes(32))
    with pytest.raises(VerifyInputError):
        verify(
            tmp_path / "a", POLICY, trusted=sign_checkpoint(Checkpoint(ORIGIN, 9, bytes(32)), other)
        )


def test_state_never_moves_backwards(ledger: Ledger, tmp_path: Path) -> None:
    state = tmp_path / "state"
    newer = ledger.latest_checkpoint()
    older = ledger.checkpoint(4)
    assert save_state(state, newer)
    assert not save_state(state, older)
    assert load_state(state, ORIGIN) == newer.note
    assert not [p for p in state.iterdir() if p.name.endswith(".tmp")]


def test_unusable_state(ledger: Ledger, tmp_path: Path) -> None:
    path = _export(ledger, tmp_path / "a")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(VerifyInputError, match="not a directory"):
        verify(path, POLICY, state_dir=not_a_dir)
    state = tmp_path / "state"
    state.mkdir()
    state_file(state, ORIGIN).write_bytes(b"\xff\xfe")
    with pytest.raises(VerifyInputError, match="saved state is not valid UTF-8"):
        verify(path, POLICY, state_dir=state)
    state_file(state, ORIGIN).write_bytes(b"x" * (MAX_NOTE_SIZE + 1))
    with pytest.raises(VerifyInputError, match="too large to be a saved state"):
        verify(path, POLICY, state_dir=state)
    state_file(state, ORIGIN).write_text("garbage\n")
    with pytest.raises(VerifyInputError, match="saved state does not verify"):
        verify(path, POLICY, state_dir=state)


def test_bundle_file_problems_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(VerifyInputError, match="no such bundle file"):
        verify(tmp_path / "missing", POLICY)
    with pytest.raises(VerifyInputError, match="is a directory"):
        verify(tmp_path, POLICY)
    with pytest.raises(MalformedError, match="empty"):
        verify(io.BytesIO(b""), POLICY)


# -- the fingerprint set ------------------------------------------------------------------


def test_fingerprint_set_grows_and_finds_duplicates() -> None:
    s = FingerprintSet()
    values = [
        int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "big") for i in range(100_000)
    ]
    assert all(s.add(v) for v in values)
    assert not any(s.add(v) for v in values[::997])
    assert s.add(0)
    assert not s.add(0)
    assert not s.add(1)  # 0 is stored as 1


def test_report_is_a_frozen_value(ledger: Ledger, tmp_path: Path) -> None:
    report = verify(_export(ledger, tmp_path / "b"), POLICY)
    assert isinstance(report, Report)
    with pytest.raises(AttributeError):
        report.size = 3  # type: ignore[misc]
    hash(report.disclosures[0])


def _accesses_ledger(tmp_path: Path) -> Path:
    lg = new_ledger(tmp_path, "accesses.ledger")
    system = {"kind": "vendor_system", "id": "motion-ai", "organization": "Vendor Inc"}
    lg.append_many(
        [
            event(0, actor={"kind": "owner", "id": "owner-42"}),  # the owner's own: not listed
            event(
                1,
                action="stream",
                actor={
                    "kind": "law_enforcement",
                    "id": "officer-7",
                    "organization": "Springfield PD",
                },
            ),
            event(2, action="clip", actor=system),
            event(3),  # a vendor employee's view
            event(
                4,
                action="view",
                actor={"kind": "third_party", "organization": "Insurer Ltd"},
                legal_basis="owner_consent",
                consent=True,
            ),
            event(5, action="view", actor=system),
            event(6, action="delete", actor={"kind": "vendor_employee", "id": "emp-9"}),
            event(7, action="clip", actor=system),
            event(
                8,
                action="view",
                actor={"kind": "owner", "id": "owner-42"},
                recipient={"kind": "third_party", "organization": "Neighbour"},
            ),
        ]
    )
    out = tmp_path / "accesses.bundle"
    export_ledger(lg, out)
    lg.close()
    return out


def test_every_access_by_others_is_reported_in_order(tmp_path: Path) -> None:
    report = verify(_accesses_ledger(tmp_path), POLICY)
    # Outside parties, whatever the action: without consent first, then with it.
    assert [(d.index, d.action) for d in report.disclosures] == [
        (1, "stream"),
        (4, "view"),
        (8, "view"),
    ]
    assert [d.without_consent for d in report.disclosures] == [True, False, False]
    police = report.disclosures[0]
    assert (police.actor_kind, police.actor_organization, police.access_class) == (
        "law_enforcement",
        "Springfield PD",
        "outside",
    )
    assert police.footage[0].clip_id == "clip-1"
    assert police.notification == "owner not notified"
    assert (report.disclosure_count, report.without_consent_count) == (3, 1)
    # Then the vendor's staff, then its systems; the owner's own access is not listed.
    assert [(d.index, d.action) for d in report.staff_accesses] == [(3, "view"), (6, "delete")]
    assert {d.access_class for d in report.staff_accesses} == {"vendor_staff"}
    assert report.staff_access_count == 2
    assert [d.index for d in report.system_accesses] == [2, 5, 7]
    assert report.system_access_count == 3
    assert report.system_totals == (("motion-ai", "clip", 2), ("motion-ai", "view", 1))
    listed = [
        d.index for d in (*report.disclosures, *report.staff_accesses, *report.system_accesses)
    ]
    assert 0 not in listed
    text = render_text(report)
    assert "stream to" not in text  # no recipient: the police took it themselves
    assert "stream by Springfield PD (law_enforcement, officer-7)" in text
    assert (
        text.index("DISCLOSURES: 3")
        < text.index("VENDOR STAFF ACCESSES: 2")
        < text.index("VENDOR SYSTEM ACCESSES: 3")
        < text.index("COUNTS")
    )
    assert "motion-ai clip  2" in text
    assert "NOTE:" not in text
    doc = report_to_json(report)
    assert [d["index"] for d in doc["disclosures"]] == [1, 4, 8]
    assert doc["disclosures"][0]["access_class"] == "outside"
    assert [d["index"] for d in doc["vendor_staff_accesses"]] == [3, 6]
    assert [d["index"] for d in doc["vendor_system_accesses"]] == [2, 5, 7]
    assert doc["vendor_system_totals"][0] == {"system": "motion-ai", "action": "clip", "count": 2}
    assert (doc["vendor_staff_access_count"], doc["vendor_system_access_count"]) == (2, 3)
    assert doc["unlisted_note"] is None


def test_capped_access_lists_say_so(tmp_path: Path) -> None:
    report = verify(_accesses_ledger(tmp_path), POLICY, max_listed=1)
    assert [d.index for d in report.system_accesses] == [2]
    assert (report.unlisted_system_accesses, report.unlisted_staff_accesses) == (2, 1)
    # The totals still count every system access, listed or not.
    assert sum(n for _, _, n in report.system_totals) == 3
    text = render_text(report)
    assert "2 more vendor system accesses" in text
    assert "1 more vendor staff accesses" in text
    assert "NOTE: the lists are capped at 1 entries each" in text
    assert "--max-listed" in text
    doc = report_to_json(report)
    assert (doc["unlisted_vendor_system_accesses"], doc["max_listed"]) == (2, 1)
    assert "--max-listed" in doc["unlisted_note"]
