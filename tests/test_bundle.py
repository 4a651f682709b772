"""The export bundle: writing, streaming reading, framing checks and the byte layout."""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import pytest

from disclosure_ledger._core.bundle import (
    MAGIC,
    MAX_LEAF_SIZE,
    BundleReader,
    FrameType,
    Prelude,
    write_bundle,
)
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._log import export
from disclosure_ledger._log.export import export_ledger
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._verify.verifier import verify
from disclosure_ledger.errors import MalformedError, StorageError

from .ledger_helpers import ORIGIN, event, log_key, new_ledger, release_event, writer_key

POLICY = Policy.simple(log_key().verifier, [writer_key().verifier])


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    lg = new_ledger(tmp_path)
    lg.append_many([event(i) for i in range(5)])
    lg.append_many([release_event(i) for i in range(5, 8)])
    lg.append_many([event(i) for i in range(8, 12)])
    return lg


def _read_all(data: bytes) -> tuple[Prelude, list[bytes]]:
    reader = BundleReader(io.BytesIO(data))
    prelude = reader.read_prelude()
    return prelude, list(reader.records())


def split_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split a bundle's bytes into (type, payload) frames (no checks: for tampering)."""
    assert data[:9] == MAGIC + b"\x01"
    pos, frames = 9, []
    while pos < len(data):
        ftype, length = struct.unpack_from(">BI", data, pos)
        frames.append((ftype, data[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    return frames


def join_frames(frames: list[tuple[int, bytes]]) -> bytes:
    """The inverse of :func:`split_frames`."""
    return MAGIC + b"\x01" + b"".join(struct.pack(">BI", t, len(p)) + p for t, p in frames)


def test_export_roundtrip_full(ledger: Ledger, tmp_path: Path) -> None:
    summary = export_ledger(ledger, tmp_path / "out.bundle")
    assert (summary.from_size, summary.to_size, summary.record_count) == (0, 12, 12)
    data = (tmp_path / "out.bundle").read_bytes()
    assert summary.bytes_written == len(data)
    prelude, leaves = _read_all(data)
    assert prelude.origin == ORIGIN
    assert (prelude.from_size, prelude.to_size) == (0, 12)
    assert prelude.checkpoint == ledger.latest_checkpoint().note
    assert prelude.old_checkpoint is None
    assert prelude.anchor_leaf is None
    assert leaves == [ledger.leaf(i) for i in range(12)]
    assert {v.vkey for v in ledger.writer_verifiers()} <= set(prelude.key_hints)


def test_export_roundtrip_range(ledger: Ledger, tmp_path: Path) -> None:
    export_ledger(ledger, tmp_path / "r.bundle", from_size=5)
    prelude, leaves = _read_all((tmp_path / "r.bundle").read_bytes())
    assert (prelude.from_size, prelude.to_size, prelude.record_count) == (5, 12, 7)
    assert prelude.old_checkpoint == ledger.checkpoint(5).note
    assert list(prelude.consistency_proof) == ledger.consistency_proof(5, 12)
    assert prelude.anchor_leaf == ledger.leaf(4)
    assert list(prelude.anchor_proof) == ledger.inclusion_proof(4, 5)
    assert leaves == [ledger.leaf(i) for i in range(5, 12)]


def test_export_empty_range_at_the_end(ledger: Ledger, tmp_path: Path) -> None:
    export_ledger(ledger, tmp_path / "e.bundle", from_size=12)
    prelude, leaves = _read_all((tmp_path / "e.bundle").read_bytes())
    assert prelude.record_count == 0
    assert prelude.consistency_proof == ()
    assert leaves == []
    # An honest range with no new records verifies: alone, and against a
    # saved state of that very size.
    report = verify(tmp_path / "e.bundle", POLICY)
    assert (report.from_size, report.size, report.record_count) == (12, 12, 0)
    assert report.root == ledger.latest_checkpoint().checkpoint.root
    state = tmp_path / "state"
    export_ledger(ledger, tmp_path / "full.bundle")
    assert verify(tmp_path / "full.bundle", POLICY, state_dir=state).state_saved
    report = verify(tmp_path / "e.bundle", POLICY, state_dir=state)
    assert report.consistency == ("consistent with the saved state of size 12",)
    assert not report.state_saved
    # The framing is still checked: a record frame where none is announced fails.
    frames = split_frames((tmp_path / "e.bundle").read_bytes())
    extra = join_frames([*frames[:-1], (FrameType.RECORD, ledger.leaf(11)), frames[-1]])
    with pytest.raises(MalformedError, match="announces only 0 records"):
        verify(io.BytesIO(extra), POLICY)


def test_export_of_an_empty_ledger(tmp_path: Path) -> None:
    lg = new_ledger(tmp_path)
    export_ledger(lg, tmp_path / "x.bundle")
    prelude, leaves = _read_all((tmp_path / "x.bundle").read_bytes())
    assert (prelude.to_size, leaves) == (0, [])
    report = verify(tmp_path / "x.bundle", POLICY)
    assert (report.size, report.record_count, report.disclosure_count) == (0, 0, 0)
    assert (report.first_occurred_at, report.first_logged_at) == (None, None)
    assert report.root == lg.latest_checkpoint().checkpoint.root


def test_export_refuses_a_size_that_is_not_a_checkpoint(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"no checkpoint of size 3.*nearest below is 0"):
        export_ledger(ledger, tmp_path / "x.bundle", from_size=3)
    with pytest.raises(MalformedError, match="beyond the latest checkpoint"):
        export_ledger(ledger, tmp_path / "x.bundle", from_size=13)
    with pytest.raises(MalformedError):
        export_ledger(ledger, tmp_path / "x.bundle", from_size=-1)
    assert not list(tmp_path.glob("*.bundle*"))


def test_export_is_atomic_and_leaves_no_temporary_file(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.bundle"
    target.write_bytes(b"previous")

    def broken(*args: object, **kwargs: object) -> int:
        raise MalformedError("boom")

    monkeypatch.setattr(export, "write_bundle", broken)
    with pytest.raises(MalformedError, match="boom"):
        export_ledger(ledger, target)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir() if "bundle" in p.name) == ["out.bundle"]


def test_export_to_a_missing_directory_is_a_storage_error(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot write the bundle: No such file"):
        export_ledger(ledger, tmp_path / "no" / "such" / "dir" / "x.bundle")


def test_byte_layout_of_the_preamble_and_header(ledger: Ledger, tmp_path: Path) -> None:
    export_ledger(ledger, tmp_path / "out.bundle")
    data = (tmp_path / "out.bundle").read_bytes()
    assert data[:8] == b"DLBUNDLE"
    assert data[8] == 1
    assert data[9] == FrameType.HEADER
    (length,) = struct.unpack_from(">I", data, 10)
    assert length == 16 + len(ORIGIN)
    assert struct.unpack_from(">QQ", data, 14) == (0, 12)
    assert data[30 : 30 + len(ORIGIN)] == ORIGIN.encode()
    frames = split_frames(data)
    types = [t for t, _ in frames]
    assert types[0] == FrameType.HEADER
    assert types[-1] == FrameType.END
    assert frames[-1][1] == struct.pack(">Q", 12)
    assert types.count(FrameType.RECORD) == 12
    assert types.index(FrameType.CHECKPOINT) < types.index(FrameType.RECORD)
    assert join_frames(frames) == data


def test_writer_refuses_a_wrong_record_count_and_oversized_leaves() -> None:
    prelude = Prelude(ORIGIN, 0, 2, (), "x\n\n— a AAAAAAA=\n")
    with pytest.raises(MalformedError, match="1 records written"):
        write_bundle(io.BytesIO(), prelude, [b"a"])
    with pytest.raises(MalformedError, match="more than the 2 records"):
        write_bundle(io.BytesIO(), prelude, [b"a", b"b", b"c"])
    with pytest.raises(MalformedError, match="larger than a record frame"):
        write_bundle(io.BytesIO(), prelude, [b"a" * (MAX_LEAF_SIZE + 1), b"b"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"origin": ""}, "origin"),
        ({"origin": "x" * 1025}, "longer than"),
        ({"from_size": 3, "to_size": 2}, "not a valid range"),
        ({"from_size": 1}, "range bundle"),
        ({"consistency_proof": (bytes(32),)}, "no consistency proof"),
        ({"key_hints": ("k",) * 257}, "at most 256"),
    ],
)
def test_prelude_checks(kwargs: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {
        "origin": ORIGIN,
        "from_size": 0,
        "to_size": 2,
        "key_hints": (),
        "checkpoint": "c",
    }
    fields.update(kwargs)
    with pytest.raises(MalformedError, match=match):
        Prelude(**fields)  # type: ignore[arg-type]


@pytest.fixture
def good(ledger: Ledger, tmp_path: Path) -> bytes:
    export_ledger(ledger, tmp_path / "g.bundle")
    return (tmp_path / "g.bundle").read_bytes()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: b"", "empty"),
        (lambda d: d[:5], "truncated inside its magic"),
        (lambda d: b"PK\x03\x04" + d[4:], "bad magic"),
        (lambda d: d[:8], "before its version"),
        (lambda d: d[:8] + b"\x02" + d[9:], "unsupported bundle version 2"),
        (lambda d: d + b"\x00", "data follows the end frame"),
        (lambda d: d + d, "data follows the end frame"),
    ],
)
def test_reader_refuses_bad_files(good: bytes, mutate: object, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        _read_all(mutate(good))  # type: ignore[operator]


def _read_file(path: Path) -> None:
    with path.open("rb") as fh:
        reader = BundleReader(fh)
        reader.read_prelude()
        list(reader.records())


def test_reader_refuses_a_length_claiming_gigabytes_without_allocating(
    good: bytes, tmp_path: Path
) -> None:
    # From a file on disk: a read(n) of a real file allocates n bytes up front
    # (an in-memory stream would not), so the traced peak shows any read of
    # the claimed length.
    frames = split_frames(good)
    rec = next(i for i, (t, _) in enumerate(frames) if t == FrameType.RECORD)
    head = join_frames(frames[:rec])
    path = tmp_path / "giant.bundle"
    cases = [
        head + struct.pack(">BI", ftype, 0xFFFFFFF0) + b"x" * 10
        for ftype in (FrameType.RECORD, FrameType.CHECKPOINT, FrameType.END, FrameType.KEY_HINT)
    ]
    # In the header position too.
    cases.append(MAGIC + b"\x01" + struct.pack(">BI", FrameType.HEADER, 1 << 31) + b"x" * 10)
    for data in cases:
        path.write_bytes(data)
        tracemalloc.start()
        try:
            with pytest.raises(MalformedError, match=r"claims \d+ bytes; the most it may hold"):
                _read_file(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * MAX_LEAF_SIZE, peak


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda f: [(0x42, b""), *f], "unknown frame type 0x42"),
        (lambda f: f[1:], "first frame must be the header"),
        (
            lambda f: [f[0], *[x for x in f[1:] if x[0] != FrameType.CHECKPOINT]],
            "expected the checkpoint",
        ),
        (lambda f: [x for x in f if x[0] != FrameType.END], "truncated"),
        (lambda f: [*f[:-1], (FrameType.END, struct.pack(">Q", 11))], "end frame 11"),
        (lambda f: [*f[:-1], (FrameType.END, b"\x00")], "8-byte"),
        (lambda f: [*f[:-1], (FrameType.CHECKPOINT, b"x"), f[-1]], "found a checkpoint frame"),
        (lambda f: [*f[:-1], (FrameType.RECORD, b"x"), f[-1]], "announces only 12"),
        (
            lambda f: [x for x in f if x[0] != FrameType.RECORD or x is not f[-2]],
            "holds 11 records",
        ),
        (lambda f: [(FrameType.HEADER, b"\x00" * 10), *f[1:]], "too short"),
        (
            lambda f: [(FrameType.HEADER, struct.pack(">QQ", 5, 2) + b"o"), *f[1:]],
            "not valid",
        ),
        (lambda f: [f[0], (FrameType.KEY_HINT, b"\xff"), *f[1:]], "not valid UTF-8"),
    ],
)
def test_reader_refuses_bad_framing(good: bytes, edit: object, match: str) -> None:
    data = join_frames(edit(split_frames(good)))  # type: ignore[operator]
    with pytest.raises(MalformedError, match=match):
        _read_all(data)


def test_reader_refuses_too_many_key_hints(good: bytes) -> None:
    frames = split_frames(good)
    data = join_frames([frames[0], *[(FrameType.KEY_HINT, b"k")] * 257, *frames[1:]])
    with pytest.raises(MalformedError, match="at most 256 key hints"):
        _read_all(data)


class _Trickle:
    """A raw stream that returns at most three bytes a read, as a pipe may."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1, /) -> bytes:
        return self._data.read(min(n, 3) if n >= 0 else 3)


def test_reader_handles_short_reads(tmp_path: Path) -> None:
    # Many records: a reader that stacked state per short read would overflow.
    lg = new_ledger(tmp_path)
    lg.append_many([event(i) for i in range(2000)])
    export_ledger(lg, tmp_path / "many.bundle")
    data = (tmp_path / "many.bundle").read_bytes()
    reader = BundleReader(_Trickle(data))
    prelude = reader.read_prelude()
    leaves = list(reader.records())
    assert (prelude.to_size, len(leaves)) == (2000, 2000)
    assert (prelude, leaves) == _read_all(data)
    # A truncated trickle is still refused.
    reader = BundleReader(_Trickle(data[:-7]))
    reader.read_prelude()
    with pytest.raises(MalformedError, match="truncated"):
        list(reader.records())


def test_reader_offsets_in_messages(good: bytes) -> None:
    with pytest.raises(MalformedError, match=rf"offset {len(good) - 13}"):
        _read_all(good[:-10])


def test_records_before_prelude_and_prelude_twice(good: bytes) -> None:
    reader = BundleReader(io.BytesIO(good))
    with pytest.raises(MalformedError, match="prelude before"):
        list(reader.records())
    reader.read_prelude()
    with pytest.raises(MalformedError, match="already been read"):
        reader.read_prelude()
