"""The JSON Lines append pipeline, driven without click: batches, acks, refused lines."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from disclosure_ledger._log.committer import AppendReceipt
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._log.pipeline import (
    MAX_LINE,
    READ_CHUNK,
    AppendSummary,
    ack_lines,
    append_jsonl,
    line_batches,
)
from disclosure_ledger.errors import (
    DuplicateEventError,
    LedgerError,
    LineError,
    MalformedError,
    ValidationError,
)

from .ledger_helpers import event, new_ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with new_ledger(tmp_path) as led:
        yield led


def _lines(*items: dict[str, Any] | str) -> io.BytesIO:
    text = "".join((it if isinstance(it, str) else json.dumps(it)) + "\n" for it in items)
    return io.BytesIO(text.encode())


class _Acks:
    """An on_ack callback that keeps each call's receipts."""

    def __init__(self) -> None:
        self.calls: list[list[AppendReceipt]] = []

    def __call__(self, receipts: Sequence[AppendReceipt]) -> None:
        self.calls.append(list(receipts))

    @property
    def ids(self) -> list[str]:
        return [r.event_id for call in self.calls for r in call]


def _ids(ledger: Ledger) -> list[str]:
    return [rec.event.event_id for rec in ledger.iter_records()]


# -- append_jsonl ---------------------------------------------------------------------------


def test_good_lines_are_appended_in_batches_and_acknowledged_in_order(ledger: Ledger) -> None:
    acks = _Acks()
    stream = _lines(*(event(i) for i in range(5)), "", "  ")
    summary = append_jsonl(ledger, stream, acks, batch_size=2)
    assert summary == AppendSummary(appended=5, last_line=5)
    # Batches of 2 are committed one at a time, each acknowledged once durable.
    assert [[r.index for r in call] for call in acks.calls] == [[0, 1], [2, 3], [4]]
    assert acks.ids == [f"ev-{i:08d}" for i in range(5)] == _ids(ledger)
    for call in acks.calls:
        for r in call:
            assert r.checkpoint.checkpoint.size > r.index
            assert r.leaf_hash == ledger.record(r.index).leaf_hash
    ledger.check()


class _Spy:
    """A ledger (and committer) stand-in that logs each commit submitted.

    ``acks`` logs each acknowledgement. The reader hands the lines it encoded
    to the ledger's committer with the ledger's default writer.
    """

    def __init__(self, ledger: Ledger, log: list[str]) -> None:
        self._ledger = ledger
        self._log = log

    def _writer(self, writer: Any) -> Any:
        return self._ledger._writer(writer)

    def _ensure_committer(self) -> _Spy:
        return self

    def submit(self, events: Sequence[Any], writer: Any) -> Future[list[AppendReceipt]]:
        self._log.append(f"submit {len(events)}")
        return self._ledger._ensure_committer().submit(list(events), writer)


def test_a_batch_is_acknowledged_while_the_next_one_commits(ledger: Ledger) -> None:
    log: list[str] = []

    def ack(receipts: Sequence[AppendReceipt]) -> None:
        log.append(f"ack {receipts[0].index}..{receipts[-1].index}")

    stream = _lines(*(event(i) for i in range(5)))
    append_jsonl(_Spy(ledger, log), stream, ack, batch_size=2)  # type: ignore[arg-type]
    # Batch k+1 is queued before batch k is acknowledged, and only once k is durable.
    assert log == ["submit 2", "submit 2", "ack 0..1", "submit 1", "ack 2..3", "ack 4..4"]


def test_an_empty_stream_appends_nothing(ledger: Ledger) -> None:
    acks = _Acks()
    assert append_jsonl(ledger, io.BytesIO(b"\n\n"), acks) == AppendSummary(0, 0)
    assert acks.calls == []
    assert ledger.size == 0


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_a_bad_line_in_the_middle_keeps_the_lines_before_it(
    ledger: Ledger, batch_size: int
) -> None:
    acks = _Acks()
    stream = _lines(event(1), event(2), "", event(4, actor={"kind": "robot"}), event(5), event(6))
    with pytest.raises(LineError) as info:
        append_jsonl(ledger, stream, acks, batch_size=batch_size)
    err = info.value
    assert err.line == 4  # the blank line 3 counts
    assert str(err).startswith("line 4: ")
    assert "actor.kind" in str(err)
    assert isinstance(err.__cause__, ValidationError)
    assert acks.ids == ["ev-00000001", "ev-00000002"] == _ids(ledger)


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{truncated", "JSON"),
        ("[1, 2]", "line 2"),
        ('{"event_id": "x"}', "line 2"),
    ],
)
def test_malformed_lines_are_refused_with_their_number(
    ledger: Ledger, line: str, needle: str
) -> None:
    acks = _Acks()
    with pytest.raises(LineError, match=needle) as info:
        append_jsonl(ledger, _lines(event(1), line, event(3)), acks)
    assert info.value.line == 2
    assert isinstance(info.value.__cause__, MalformedError)
    assert _ids(ledger) == acks.ids == ["ev-00000001"]


def test_invalid_utf8_is_refused(ledger: Ledger) -> None:
    stream = io.BytesIO(json.dumps(event(1)).encode() + b"\n" + b'{"event_id": "\xff"}\n')
    with pytest.raises(LineError) as info:
        append_jsonl(ledger, stream, _Acks())
    assert info.value.line == 2
    assert _ids(ledger) == ["ev-00000001"]


def test_a_repeated_event_id_in_the_input_names_both_lines(ledger: Ledger) -> None:
    acks = _Acks()
    stream = _lines(event(1), event(2), event(1), event(3))
    with pytest.raises(LineError, match=r"line 3: event_id 'ev-00000001' repeats line 1"):
        append_jsonl(ledger, stream, acks)
    assert acks.ids == ["ev-00000001", "ev-00000002"] == _ids(ledger)


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_an_event_id_already_in_the_ledger_keeps_the_lines_before_it(
    ledger: Ledger, batch_size: int
) -> None:
    ledger.append(event(3))
    acks = _Acks()
    stream = _lines(event(1), event(2), event(3), event(4))
    with pytest.raises(LineError) as info:
        append_jsonl(ledger, stream, acks, batch_size=batch_size)
    assert info.value.line == 3
    assert "already in the ledger" in str(info.value)
    assert isinstance(info.value.__cause__, DuplicateEventError)
    assert acks.ids == ["ev-00000001", "ev-00000002"]
    assert _ids(ledger) == ["ev-00000003", "ev-00000001", "ev-00000002"]
    ledger.check()


def test_an_oversized_line_is_refused_and_nothing_after_it_is_read(ledger: Ledger) -> None:
    acks = _Acks()
    head = (json.dumps(event(1)) + "\n" + json.dumps(event(2)) + "\n").encode()
    stream = _HugeLine(head, budget=MAX_LINE + 4 * READ_CHUNK)
    with pytest.raises(LineError, match=f"line 3: longer than {MAX_LINE} bytes") as info:
        append_jsonl(ledger, stream, acks)  # type: ignore[arg-type]
    assert info.value.line == 3
    assert stream.read_bytes <= MAX_LINE + 2 * READ_CHUNK
    assert acks.ids == ["ev-00000001", "ev-00000002"] == _ids(ledger)


def test_a_line_at_the_cap_is_read_and_judged_as_an_event(ledger: Ledger) -> None:
    # Exactly MAX_LINE bytes is not refused for its length (it fails as JSON).
    stream = io.BytesIO(b"x" * MAX_LINE + b"\n")
    with pytest.raises(LineError) as info:
        append_jsonl(ledger, stream, _Acks())
    assert "longer than" not in str(info.value)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_a_batch_size_below_one_is_refused_before_reading(ledger: Ledger, batch_size: int) -> None:
    stream = _lines(event(1))
    with pytest.raises(MalformedError, match="batch size"):
        append_jsonl(ledger, stream, _Acks(), batch_size=batch_size)
    assert stream.tell() == 0
    assert ledger.size == 0


def test_a_ledger_that_cannot_append_is_a_ledger_error_not_a_line_error(tmp_path: Path) -> None:
    new_ledger(tmp_path).close()
    with Ledger.open(tmp_path / "test.ledger", readonly=True) as ro:
        with pytest.raises(LedgerError) as info:
            append_jsonl(ro, _lines(event(1)), _Acks())
        assert not isinstance(info.value, LineError)
        assert ro.size == 0


@pytest.mark.parametrize("event_id", ["evt-1", 'quo"te', "back\\slash", "x" * 200])
def test_ack_lines_are_exactly_json_dumps(event_id: str) -> None:
    # The acknowledgement lines are formatted by hand for speed; they must be
    # byte for byte what json.dumps of the documented object gives.
    receipt = AppendReceipt(7, b"\x01" * 32, event_id, None)  # type: ignore[arg-type]
    want = json.dumps(
        {"index": 7, "leaf_hash": base64.b64encode(b"\x01" * 32).decode(), "event_id": event_id}
    )
    assert ack_lines([receipt, receipt]) == (want + "\n") * 2


# -- the line reader: the cap, bounded memory -----------------------------------------------


class _Chunks:
    """A stream without a file descriptor that returns ``data`` in reads of ``size`` bytes."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data = data
        self._size = size
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = self._pos + min(n, self._size)
        out = self._data[self._pos : end]
        self._pos = end
        return out


class _HugeLine:
    """``head`` then an endless line of ``x``: it fails the test if read much past the cap."""

    def __init__(self, head: bytes, budget: int) -> None:
        self._head = head
        self.read_bytes = 0
        self._budget = budget

    def read(self, n: int = -1) -> bytes:
        if self.read_bytes > self._budget:
            raise AssertionError(f"read {self.read_bytes} bytes of a line that cannot be an event")
        if self._head:
            out, self._head = self._head, b""
        else:
            out = b"x" * n
        self.read_bytes += len(out)
        return out


def _flatten(stream: Any) -> list[tuple[int, bytes | None]]:
    return [item for batch in line_batches(stream) for item in batch]


def test_an_endless_line_is_refused_after_the_cap_without_reading_on() -> None:
    cap = MAX_LINE
    stream = _HugeLine(b'{"a": 1}\n\n{"b": 2}\n', budget=cap + 4 * READ_CHUNK)
    assert _flatten(stream) == [(1, b'{"a": 1}'), (3, b'{"b": 2}'), (4, None)]
    assert stream.read_bytes <= cap + 2 * READ_CHUNK


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 16])
@pytest.mark.parametrize("end", [b"\n", b""])
def test_the_line_cap_is_exact_whatever_the_read_sizes(size: int, end: bytes) -> None:
    cap = MAX_LINE
    at_cap = b"y" * cap
    data = b"a\n" + at_cap + b"\n" + b"b\n" + b"z" * (cap + 1) + end + b"never\n"
    assert _flatten(_Chunks(data, size)) == [(1, b"a"), (2, at_cap), (3, b"b"), (4, None)]
    # The last line, without a newline, at and over the cap.
    assert _flatten(_Chunks(b"a\n" + at_cap, size)) == [(1, b"a"), (2, at_cap)]
    assert _flatten(_Chunks(b"a\n" + at_cap + b"y", size)) == [(1, b"a"), (2, None)]


def test_a_repeat_of_a_line_from_an_earlier_batch_is_refused_by_the_ledger(
    ledger: Ledger,
) -> None:
    # Only the batch in flight is remembered; the ledger catches older repeats.
    acks = _Acks()
    stream = _lines(event(1), event(2), event(3), event(1), event(4))
    with pytest.raises(LineError, match=r"^line 4: .*ev-00000001") as info:
        append_jsonl(ledger, stream, acks, batch_size=1)
    assert info.value.line == 4
    assert acks.ids == ["ev-00000001", "ev-00000002", "ev-00000003"] == _ids(ledger)
