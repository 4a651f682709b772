"""The export bundle: a whole ledger, or a range of it, in one file, written and read as a stream.

This module owns the bundle's bytes and nothing about trust: the writer copies
what the ledger holds, the reader checks framing (magic, version, frame order,
every length capped *before* anything is allocated, the record count, nothing
after the end) and hands the verifier plain values. Nothing in a bundle is
trusted because it is in the bundle; :mod:`disclosure_ledger._verify.verifier` decides.

Layout (all integers unsigned big-endian; see docs/format.md, "Export bundle")::

    "DLBUNDLE" (8 bytes) ‖ version (1 byte, 0x01)
    then frames, each: type (1 byte) ‖ length L (4 bytes) ‖ payload (L bytes)

    0x01 HEADER          exactly once, first: from_size u64 ‖ to_size u64 ‖ origin (UTF-8)
    0x02 KEY_HINT        0..256: a verifier key string (a hint, never trusted)
    0x03 CHECKPOINT      exactly once: the signed checkpoint note at to_size, cosignatures included
    0x04 OLD_CHECKPOINT  iff from_size > 0: the signed checkpoint note at from_size
    0x05 CONSISTENCY     iff from_size > 0: the RFC 6962 consistency proof from_size -> to_size
    0x06 ANCHOR          iff from_size > 0: n u8 ‖ n proof hashes ‖ leaf of record from_size-1
    0x10 RECORD          to_size - from_size times: one record envelope (the Merkle leaf)
    0xFF END             exactly once, last: record count u64; nothing may follow

A later format gets a new version byte; a reader refuses versions and frame
types it does not know, so a new frame can never be skipped silently.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from disclosure_ledger._core.merkle import HASH_SIZE
from disclosure_ledger._core.notes import MAX_NOTE_SIZE
from disclosure_ledger._core.records import HEADER_SIZE, MAX_EVENT_SIZE, SIGNATURE_SIZE
from disclosure_ledger.errors import MalformedError

__all__ = [
    "BUNDLE_VERSION",
    "MAGIC",
    "MAX_KEY_HINTS",
    "MAX_LEAF_SIZE",
    "MAX_ORIGIN_SIZE",
    "MAX_PROOF_HASHES",
    "BundleReader",
    "FrameType",
    "Prelude",
    "iter_bundle",
    "write_bundle",
]

MAGIC = b"DLBUNDLE"
BUNDLE_VERSION = 1
MAX_ORIGIN_SIZE = 1024
"""The longest origin a header may carry, in UTF-8 bytes."""
MAX_KEY_HINTS = 256
"""The most key-hint frames a bundle may carry."""
MAX_PROOF_HASHES = 64
"""The most hashes in a consistency or inclusion proof (a tree of 2**63 leaves needs fewer)."""
MAX_LEAF_SIZE = HEADER_SIZE + MAX_EVENT_SIZE + SIGNATURE_SIZE
"""The largest record envelope: a 57-byte header, a 64 KiB event and a signature."""
_MAX_VKEY = 4096  # an ML-DSA-44 (type 0x06) verifier key string is about 1,800 bytes


class FrameType:
    """Frame type bytes, in the order they appear."""

    HEADER = 0x01
    KEY_HINT = 0x02
    CHECKPOINT = 0x03
    OLD_CHECKPOINT = 0x04
    CONSISTENCY = 0x05
    ANCHOR = 0x06
    RECORD = 0x10
    END = 0xFF


_NAMES = {
    FrameType.HEADER: "header",
    FrameType.KEY_HINT: "key hint",
    FrameType.CHECKPOINT: "checkpoint",
    FrameType.OLD_CHECKPOINT: "old checkpoint",
    FrameType.CONSISTENCY: "consistency proof",
    FrameType.ANCHOR: "anchor",
    FrameType.RECORD: "record",
    FrameType.END: "end",
}
# The largest payload each frame type may have: checked before reading it.
_CAPS = {
    FrameType.HEADER: 16 + MAX_ORIGIN_SIZE,
    FrameType.KEY_HINT: _MAX_VKEY,
    FrameType.CHECKPOINT: MAX_NOTE_SIZE,
    FrameType.OLD_CHECKPOINT: MAX_NOTE_SIZE,
    FrameType.CONSISTENCY: MAX_PROOF_HASHES * HASH_SIZE,
    FrameType.ANCHOR: 1 + MAX_PROOF_HASHES * HASH_SIZE + MAX_LEAF_SIZE,
    FrameType.RECORD: MAX_LEAF_SIZE,
    FrameType.END: 8,
}
_FRAME = struct.Struct(">BI")
_SIZES = struct.Struct(">QQ")
_COUNT = struct.Struct(">Q")
_MAX_SIZE = (1 << 63) - 1
_PREAMBLE = MAGIC + bytes([BUNDLE_VERSION])


@dataclass(frozen=True, slots=True)
class Prelude:
    """Everything a bundle says before its records.

    ``checkpoint`` is the signed note at ``to_size``. For a range
    (``from_size > 0``), ``old_checkpoint`` is the signed note at
    ``from_size``, ``consistency_proof`` the proof from it to ``to_size``, and
    ``anchor_leaf`` / ``anchor_proof`` record ``from_size - 1`` with its
    inclusion proof in the tree of ``from_size`` (the link the first record
    chains to). ``key_hints`` are verifier key strings: hints, never trust.
    """

    origin: str
    from_size: int
    to_size: int
    key_hints: tuple[str, ...]
    checkpoint: str
    old_checkpoint: str | None = None
    consistency_proof: tuple[bytes, ...] = ()
    anchor_leaf: bytes | None = None
    anchor_proof: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        """Check the sizes and that the range fields come together.

        Raises:
            MalformedError: if a size is out of range, the origin is empty or
                too long, or the range fields do not match ``from_size``.
        """
        if not isinstance(self.origin, str) or not self.origin:
            raise MalformedError("bundle origin must be a non-empty string")
        if len(self.origin.encode("utf-8", "surrogatepass")) > MAX_ORIGIN_SIZE:
            raise MalformedError(f"bundle origin is longer than {MAX_ORIGIN_SIZE} bytes")
        if not 0 <= self.from_size <= self.to_size <= _MAX_SIZE:
            raise MalformedError(
                f"bundle range {self.from_size}..{self.to_size} is not a valid range"
            )
        if len(self.key_hints) > MAX_KEY_HINTS:
            raise MalformedError(f"a bundle carries at most {MAX_KEY_HINTS} key hints")
        ranged = self.from_size > 0
        if ranged != (self.old_checkpoint is not None) or ranged != (self.anchor_leaf is not None):
            raise MalformedError(
                "a range bundle (from_size > 0) needs the old checkpoint and the anchor record,"
                " and a full bundle has neither"
            )
        if not ranged and self.consistency_proof:
            raise MalformedError("a full bundle carries no consistency proof")
        for proof in (self.consistency_proof, self.anchor_proof):
            if len(proof) > MAX_PROOF_HASHES:
                raise MalformedError(f"a proof holds at most {MAX_PROOF_HASHES} hashes")
            if any(len(h) != HASH_SIZE for h in proof):
                raise MalformedError(f"proof hashes must be {HASH_SIZE} bytes")

    @property
    def record_count(self) -> int:
        """How many record frames follow: ``to_size - from_size``."""
        return self.to_size - self.from_size


# -- writing ------------------------------------------------------------------------------


def _frame(ftype: int, payload: bytes) -> bytes:
    if len(payload) > _CAPS[ftype]:
        raise MalformedError(
            f"{_NAMES[ftype]} frame of {len(payload)} bytes exceeds its cap of {_CAPS[ftype]}"
        )
    return _FRAME.pack(ftype, len(payload)) + payload


def _prelude_bytes(prelude: Prelude) -> bytes:
    out = [
        _PREAMBLE,
        _frame(
            FrameType.HEADER,
            _SIZES.pack(prelude.from_size, prelude.to_size) + prelude.origin.encode("utf-8"),
        ),
    ]
    out += [_frame(FrameType.KEY_HINT, h.encode("utf-8")) for h in prelude.key_hints]
    out.append(_frame(FrameType.CHECKPOINT, prelude.checkpoint.encode("utf-8")))
    if prelude.old_checkpoint is not None and prelude.anchor_leaf is not None:
        out.append(_frame(FrameType.OLD_CHECKPOINT, prelude.old_checkpoint.encode("utf-8")))
        out.append(_frame(FrameType.CONSISTENCY, b"".join(prelude.consistency_proof)))
        anchor = (
            bytes([len(prelude.anchor_proof)])
            + b"".join(prelude.anchor_proof)
            + prelude.anchor_leaf
        )
        out.append(_frame(FrameType.ANCHOR, anchor))
    return b"".join(out)


def write_bundle(out: IO[bytes], prelude: Prelude, leaves: Iterable[bytes]) -> int:
    """Write a bundle to ``out``: the prelude, one frame per leaf, the end frame.

    ``leaves`` is consumed as a stream; memory stays constant however many
    there are. Returns the number of bytes written.

    Raises:
        MalformedError: if a leaf or a note exceeds its frame's cap, or the
            number of leaves is not ``prelude.record_count`` (nothing after the
            offending leaf is written; the caller discards the partial file).
        OSError: if ``out`` cannot be written.
    """
    head = _prelude_bytes(prelude)
    out.write(head)
    written = len(head)
    pack = _FRAME.pack
    record = FrameType.RECORD
    cap = MAX_LEAF_SIZE
    expected = prelude.record_count
    count = 0
    write = out.write
    for leaf in leaves:
        n = len(leaf)
        if n > cap:
            raise MalformedError(
                f"record {prelude.from_size + count} is larger than a record frame"
            )
        count += 1
        if count > expected:
            raise MalformedError(f"more than the {expected} records the bundle header announces")
        write(pack(record, n))
        write(leaf)
        written += 5 + n
    if count != expected:
        raise MalformedError(f"{count} records written, the bundle header announces {expected}")
    tail = _frame(FrameType.END, _COUNT.pack(count))
    out.write(tail)
    return written + len(tail)


def iter_bundle(prelude: Prelude, leaves: Iterable[bytes]) -> Iterator[bytes]:
    """Yield a bundle's bytes in pieces, as :func:`write_bundle` writes them.

    For a reader that pulls (a bundle built on the fly from another source);
    ``leaves`` is consumed lazily, one piece per record.

    Raises:
        MalformedError: as :func:`write_bundle`, when the offending leaf is reached.
    """
    yield _prelude_bytes(prelude)
    expected = prelude.record_count
    count = 0
    for leaf in leaves:
        if len(leaf) > MAX_LEAF_SIZE:
            raise MalformedError(
                f"record {prelude.from_size + count} is larger than a record frame"
            )
        count += 1
        if count > expected:
            raise MalformedError(f"more than the {expected} records the bundle header announces")
        yield _FRAME.pack(FrameType.RECORD, len(leaf)) + leaf
    if count != expected:
        raise MalformedError(f"{count} records given, the bundle header announces {expected}")
    yield _frame(FrameType.END, _COUNT.pack(count))


# -- reading ------------------------------------------------------------------------------


class Readable(Protocol):
    """Anything with a binary ``read(n)``: a file, a pipe, a socket file."""

    def read(self, n: int = -1, /) -> bytes:
        """Return up to ``n`` bytes; fewer only at the end (or for a raw stream).

        Raises:
            OSError: if the stream cannot be read (:class:`BundleReader` passes it on).
        """
        ...


class BundleReader:
    """Reads a bundle from a binary stream, checking its framing as it goes.

    Call :meth:`read_prelude` once, then iterate :meth:`records`; the
    iterator ends only after the end frame has been read, its count matched
    and the stream found to hold nothing more. Every length is compared with
    its cap before the payload is read, so a length claiming gigabytes is
    refused without allocating. ``offset`` is the position reached, for messages.
    """

    __slots__ = ("_prelude", "_stream", "offset")

    def __init__(self, stream: Readable) -> None:
        self._stream: Readable = stream
        self.offset = 0
        self._prelude: Prelude | None = None

    def _complete(self, data: bytes, n: int, what: str) -> bytes:
        # A raw stream (pipe, socket) may return short reads before its end.
        parts = [data]
        got = len(data)
        while got < n and data:
            data = self._stream.read(n - got)
            parts.append(data)
            got += len(data)
        if got != n:
            raise MalformedError(
                f"bundle is truncated: {what} at offset {self.offset} needs {n} bytes,"
                f" only {got} remain"
            )
        return b"".join(parts)

    def _read(self, n: int, what: str) -> bytes:
        data = self._stream.read(n)
        if len(data) != n:
            data = self._complete(data, n, what)
        self.offset += n
        return data

    def _frame_head(self, head: bytes, start: int) -> tuple[int, int]:
        # The type and length of the frame at ``start``, checked before its payload is read.
        ftype, length = _FRAME.unpack(head)
        cap = _CAPS.get(ftype)
        if cap is None:
            raise MalformedError(f"unknown frame type 0x{ftype:02x} at offset {start}")
        if length > cap:
            raise MalformedError(
                f"{_NAMES[ftype]} frame at offset {start} claims {length} bytes;"
                f" the most it may hold is {cap}"
            )
        return ftype, length

    def _frame(self, expected: str) -> tuple[int, bytes]:
        start = self.offset
        ftype, length = self._frame_head(self._read(5, f"a frame header ({expected})"), start)
        return ftype, self._read(length, f"the {_NAMES[ftype]} frame")

    def _text(self, payload: bytes, what: str) -> str:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as err:
            raise MalformedError(f"the {what} is not valid UTF-8") from err

    def read_prelude(self) -> Prelude:
        """Read and check everything before the first record.

        Raises:
            MalformedError: if the magic, version, a frame or the frame order
                is wrong, or the stream ends early.
            OSError: if the stream cannot be read.
        """
        if self._prelude is not None:
            raise MalformedError("the prelude has already been read")
        head = self._stream.read(len(_PREAMBLE))
        while 0 < len(head) < len(_PREAMBLE):
            more = self._stream.read(len(_PREAMBLE) - len(head))
            if not more:
                break
            head += more
        if not head:
            raise MalformedError("bundle is empty")
        if len(head) < len(MAGIC) or head[: len(MAGIC)] != MAGIC:
            if MAGIC.startswith(head):
                raise MalformedError("bundle is truncated inside its magic bytes")
            raise MalformedError("not a disclosure-ledger bundle (bad magic bytes)")
        if len(head) < len(_PREAMBLE):
            raise MalformedError("bundle is truncated before its version byte")
        if head[len(MAGIC)] != BUNDLE_VERSION:
            raise MalformedError(
                f"unsupported bundle version {head[len(MAGIC)]}; this reader knows {BUNDLE_VERSION}"
            )
        self.offset = len(_PREAMBLE)
        ftype, payload = self._frame("header")
        if ftype != FrameType.HEADER:
            raise MalformedError(f"the first frame must be the header, not {_NAMES[ftype]}")
        if len(payload) < 17:
            raise MalformedError("the header frame is too short")
        from_size, to_size = _SIZES.unpack_from(payload)
        origin = self._text(payload[16:], "origin")
        if from_size > _MAX_SIZE or to_size > _MAX_SIZE or from_size > to_size:
            raise MalformedError(f"bundle header range {from_size}..{to_size} is not valid")
        hints: list[str] = []
        ftype, payload = self._frame("key hint or checkpoint")
        while ftype == FrameType.KEY_HINT:
            if len(hints) == MAX_KEY_HINTS:
                raise MalformedError(f"a bundle carries at most {MAX_KEY_HINTS} key hints")
            hints.append(self._text(payload, "key hint"))
            ftype, payload = self._frame("key hint or checkpoint")
        if ftype != FrameType.CHECKPOINT:
            raise MalformedError(f"expected the checkpoint frame, found a {_NAMES[ftype]} frame")
        checkpoint = self._text(payload, "checkpoint")
        old: str | None = None
        proof: tuple[bytes, ...] = ()
        anchor_leaf: bytes | None = None
        anchor_proof: tuple[bytes, ...] = ()
        if from_size > 0:
            old = self._text(self._expect(FrameType.OLD_CHECKPOINT), "old checkpoint")
            raw = self._expect(FrameType.CONSISTENCY)
            if len(raw) % HASH_SIZE:
                raise MalformedError("the consistency proof is not a whole number of hashes")
            proof = tuple(raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE))
            raw = self._expect(FrameType.ANCHOR)
            if not raw:
                raise MalformedError("the anchor frame is empty")
            n = raw[0]
            if n > MAX_PROOF_HASHES or len(raw) < 1 + n * HASH_SIZE:
                raise MalformedError("the anchor's inclusion proof is malformed")
            anchor_proof = tuple(raw[1 + i * HASH_SIZE : 1 + (i + 1) * HASH_SIZE] for i in range(n))
            anchor_leaf = raw[1 + n * HASH_SIZE :]
        self._prelude = Prelude(
            origin,
            from_size,
            to_size,
            tuple(hints),
            checkpoint,
            old,
            proof,
            anchor_leaf,
            anchor_proof,
        )
        return self._prelude

    def _expect(self, ftype: int) -> bytes:
        got, payload = self._frame(_NAMES[ftype])
        if got != ftype:
            raise MalformedError(f"expected the {_NAMES[ftype]} frame, found a {_NAMES[got]} frame")
        return payload

    def records(self) -> Iterator[bytes]:
        """Yield each record frame's payload (a leaf), then check the end frame and EOF.

        Lengths are capped before reading; the leaves are not parsed here.

        Raises:
            MalformedError: if a frame is not a record or the end, the counts
                disagree, the stream ends early or anything follows the end frame.
            OSError: if the stream cannot be read.
        """
        prelude = self._prelude
        if prelude is None:
            raise MalformedError("read the prelude before the records")
        expected = prelude.record_count
        unpack = _FRAME.unpack
        record = FrameType.RECORD
        cap = MAX_LEAF_SIZE
        count = 0
        read = self._stream.read
        while True:
            head = read(5)
            if len(head) != 5:
                # A raw stream's short read, or the end of a truncated bundle.
                head = self._complete(head, 5, "a frame header (a record or the end)")
            ftype, length = unpack(head)
            if ftype != record or length > cap:
                ftype, length = self._frame_head(head, self.offset)
            if ftype == record:
                if count == expected:
                    raise MalformedError(
                        f"record frame at offset {self.offset}: the header announces"
                        f" only {expected} records"
                    )
                self.offset += 5
                leaf = read(length)
                if len(leaf) != length:
                    leaf = self._complete(leaf, length, "a record frame")
                self.offset += length
                count += 1
                yield leaf
                continue
            self.offset += 5
            payload = self._read(length, f"the {_NAMES[ftype]} frame")
            if ftype != FrameType.END:
                raise MalformedError(
                    f"expected a record or the end frame, found a {_NAMES[ftype]} frame"
                )
            if len(payload) != 8:
                raise MalformedError("the end frame must hold an 8-byte record count")
            (claimed,) = _COUNT.unpack(payload)
            if claimed != count or count != expected:
                raise MalformedError(
                    f"the bundle holds {count} records; its header announces {expected} and"
                    f" its end frame {claimed}"
                )
            if read(1):
                raise MalformedError(f"data follows the end frame at offset {self.offset}")
            return
