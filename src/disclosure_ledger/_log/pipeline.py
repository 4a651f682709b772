"""Appending a stream of JSON Lines events: read, batch, commit, acknowledge.

This module owns the bulk append path that the ``append`` command wraps:
:func:`append_jsonl` reads events one per line in bounded memory, validates
them, commits them in batches through :meth:`.Ledger.submit` and hands each
batch's receipts to a callback once they are durable. While one batch commits
(signing, writing, fsync) the next is read and validated, and the batch before
is acknowledged; a batch is submitted only after the previous one is durable,
so a refused line never leaves a later line appended. The rule for a refused
line (malformed, invalid, too long, or a duplicate ``event_id``): every line
before it is appended and acknowledged, nothing from it on is, and
:class:`~.errors.LineError` names it.
"""

from __future__ import annotations

import io
import json
import os
import select
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from disclosure_ledger._core import records
from disclosure_ledger._core.notes import b64encode
from disclosure_ledger._log.committer import AppendReceipt
from disclosure_ledger.errors import DuplicateEventError, LineError, MalformedError

if TYPE_CHECKING:  # the ledger is taken as given; this module is above it
    from disclosure_ledger._log.ledger import Ledger

__all__ = [
    "APPEND_BATCH",
    "MAX_LINE",
    "TOO_LONG",
    "AppendSummary",
    "ack_lines",
    "append_jsonl",
    "line_batches",
]

APPEND_BATCH = 1000
"""The most event lines validated and committed as one batch."""

READ_CHUNK = 1 << 16
"""How many bytes one read asks for."""

MAX_LINE = records.MAX_EVENT_SIZE
"""A line longer than this cannot be an event (see records.event_from_json_text)."""

_Line = tuple[int, str, bytes]
"""A line read: its number, its event's ID and the event's canonical encoding."""

TOO_LONG = None
"""In place of a line's bytes: the line is longer than :data:`MAX_LINE`."""


@dataclass(frozen=True, slots=True)
class AppendSummary:
    """What :func:`append_jsonl` did: ``appended`` records, the last from line ``last_line``.

    Lines are numbered from 1 and blank lines count, as in :class:`~.errors.LineError`.
    """

    appended: int
    last_line: int


def _chunk_reader(stream: IO[bytes]) -> tuple[Callable[[], bytes], Callable[[], bool]]:
    """Return ``read()`` (blocks for at least one byte or EOF) and ``ready()``.

    For a real file descriptor (a file, pipe or terminal) ``read`` returns what
    is available now, and ``ready`` says whether more is, without waiting. For
    other streams (tests) everything counts as available.
    """
    try:
        fd = stream.fileno()
    except (OSError, io.UnsupportedOperation, AttributeError):

        def read_stream() -> bytes:
            return stream.read(READ_CHUNK)

        return read_stream, lambda: True

    def read_fd() -> bytes:
        return os.read(fd, READ_CHUNK)

    def ready() -> bool:
        try:
            readable, _, _ = select.select([fd], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    return read_fd, ready


def line_batches(
    stream: IO[bytes], *, batch_size: int = APPEND_BATCH
) -> Iterator[list[tuple[int, bytes | None]]]:
    """Yield batches of ``(line number, line)``, at most ``batch_size`` each.

    A batch ends when it is full or when no more input is available without
    waiting, so a file or a fast pipe is committed in large batches while a
    person typing at a terminal (or a slow producer) is acknowledged line by
    line. Blank lines are counted but not yielded. An empty batch means the
    input has paused: the caller should acknowledge everything in flight.

    A line longer than :data:`MAX_LINE` bytes is yielded as
    ``(line number, TOO_LONG)`` as soon as that many bytes of it have arrived,
    after the lines before it, and nothing more is read: the rest of a huge
    line is never buffered. The buffer holds at most one line's cap and one
    read, and each byte is scanned for a newline once, so time and memory are
    linear in the input whatever its line lengths.
    """
    read, ready = _chunk_reader(stream)
    buf = bytearray()
    lineno = 0
    pending: list[tuple[int, bytes | None]] = []
    eof = False
    first = True
    too_long = False
    while not eof and not too_long:
        if not first and not ready():
            # About to wait for input: an empty batch tells the caller to
            # acknowledge what it has committed first.
            yield []
        first = False
        chunk = read()
        while True:
            if not chunk:
                eof = True
                break
            scan = len(buf)  # the bytes before this chunk hold no newline
            buf += chunk
            start = 0
            nl = buf.find(b"\n", scan)
            while nl >= 0:
                lineno += 1
                if nl - start > MAX_LINE:
                    too_long = True
                    break
                line = bytes(buf[start:nl])
                if line.strip():
                    pending.append((lineno, line))
                start = nl + 1
                nl = buf.find(b"\n", start)
            if not too_long:
                del buf[:start]
                if len(buf) > MAX_LINE:
                    # No newline yet, and already too long to be an event.
                    lineno += 1
                    too_long = True
            if too_long:
                pending.append((lineno, TOO_LONG))
                buf.clear()
                break
            if len(pending) >= batch_size or not ready():
                break
            chunk = read()
        if eof and buf:
            lineno += 1
            if buf.strip():
                pending.append((lineno, bytes(buf)))
            buf.clear()
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            pending = pending[batch_size:]
        if pending:
            yield pending
            pending = []


def ack_lines(receipts: Sequence[AppendReceipt]) -> str:
    """The acknowledgement lines of ``receipts``, one JSON object a line.

    Each line is exactly what ``json.dumps({"index": ..., "leaf_hash":
    "<base64>", "event_id": ...})`` prints, formatted without building a dict
    per line: index is an int and base64 needs no escaping.
    """
    dumps = json.dumps
    return "".join(
        f'{{"index": {r.index}, "leaf_hash": "{b64encode(r.leaf_hash)}", '
        f'"event_id": {dumps(r.event_id)}}}\n'
        for r in receipts
    )


class _Appender:
    """Commits batches through ``Ledger.submit``, one in flight, and acknowledges them."""

    def __init__(self, ledger: Ledger, on_ack: Callable[[Sequence[AppendReceipt]], None]) -> None:
        self._ledger = ledger
        self._on_ack = on_ack
        self._inflight: tuple[Future[list[AppendReceipt]], list[_Line]] | None
        self._inflight = None
        self.appended = 0

    def submit(self, items: list[_Line]) -> None:
        """Wait for the batch in flight, then queue ``items``; acknowledge the settled batch.

        Raises:
            LineError: if the batch in flight held an event already in the ledger.
            LedgerError: if the batch in flight could not be appended.
        """
        done = self._settle()
        if items:
            future = self._commit([(eid, data) for _, eid, data in items])
            self._inflight = (future, items)
        self._ack(done)

    def _commit(self, events: list[tuple[str, bytes]]) -> Future[list[AppendReceipt]]:
        # The lines were validated and encoded as they were read
        # (records.parse_json_line), their IDs checked distinct: hand them to
        # the committer with the ledger's default writer, without a second pass.
        ledger = self._ledger
        return ledger._ensure_committer().submit(events, ledger._writer(None))

    def finish(self) -> None:
        """Wait for the batch in flight and acknowledge its records.

        Raises:
            LineError: if it held an event already in the ledger (the lines
                before that one are appended and acknowledged).
            LedgerError: if it could not be appended.
        """
        self._ack(self._settle())

    def _settle(self) -> list[AppendReceipt]:
        # Wait for the batch in flight; its receipts are durable, not yet acknowledged.
        if self._inflight is None:
            return []
        future, items = self._inflight
        self._inflight = None
        try:
            return future.result()
        except DuplicateEventError as err:
            # The ledger refuses the whole batch; the lines before the duplicate
            # must still be appended, so append them on their own.
            pos = next((k for k, (_, eid, _) in enumerate(items) if eid == err.event_id), None)
            if pos is None:
                raise
            lineno = items[pos][0]
            if pos > 0:
                try:
                    self._ack(self._commit([(e, d) for _, e, d in items[:pos]]).result())
                except DuplicateEventError as inner:
                    # Another process appended one of them meanwhile: report the first.
                    first = next(
                        (ln for ln, eid, _ in items[:pos] if eid == inner.event_id), lineno
                    )
                    raise LineError(first, str(inner)) from inner
            raise LineError(lineno, str(err)) from err

    def _ack(self, receipts: list[AppendReceipt]) -> None:
        if receipts:
            self._on_ack(receipts)
            self.appended += len(receipts)


def append_jsonl(
    ledger: Ledger,
    stream: IO[bytes],
    on_ack: Callable[[Sequence[AppendReceipt]], None],
    *,
    batch_size: int = APPEND_BATCH,
) -> AppendSummary:
    """Append the events read as JSON Lines from ``stream``; acknowledge them as they are durable.

    ``on_ack`` is called with each batch's receipts, in order, once they are
    durable (format them with :func:`ack_lines` for the ``append`` command's
    output). Batches are at most ``batch_size`` lines; see
    :func:`line_batches` for when a batch ends early.

    Raises:
        LineError: for the first refused line: malformed JSON or UTF-8, an
            invalid event, a line over :data:`MAX_LINE` bytes (refused in
            bounded memory, the rest of it unread), an ``event_id`` that repeats
            an earlier line or is already in the ledger. Every line before it is
            appended and acknowledged; nothing from it on is.
        MalformedError: if ``batch_size`` is not positive.
        LedgerError: if the ledger cannot append (closed, no log key, storage).
    """
    if batch_size < 1:
        raise MalformedError(f"the batch size must be positive, not {batch_size}")
    appender = _Appender(ledger, on_ack)
    parse = records.parse_json_line
    seen: dict[str, int] = {}
    error: LineError | None = None
    last_line = 0
    for batch in line_batches(stream, batch_size=batch_size):
        items: list[_Line] = []
        for lineno, raw in batch:
            last_line = lineno
            if raw is TOO_LONG:
                error = LineError(
                    lineno,
                    f"longer than {MAX_LINE} bytes, the most an event's JSON text may be; "
                    "nothing from this line on is appended",
                )
                break
            try:
                event, data = parse(raw)
            except MalformedError as err:
                error = LineError(lineno, str(err))
                error.__cause__ = err
                break
            eid = event.event_id
            first = seen.get(eid)
            if first is not None:
                error = LineError(lineno, f"event_id {eid!r} repeats line {first}")
                break
            seen[eid] = lineno
            items.append((lineno, eid, data))
        appender.submit(items)
        if error is not None:
            break
        # Every line before this batch is in the ledger now, which refuses a
        # repeat of one itself: remember only the batch in flight, so memory
        # does not grow with the input (a million IDs held 120 MB).
        seen = {eid: lineno for lineno, eid, _ in items}
    appender.finish()
    if error is not None:
        raise error
    return AppendSummary(appender.appended, last_line)
