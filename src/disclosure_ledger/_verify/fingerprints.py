"""A compact set of 64-bit fingerprints: how the verifier finds a repeated ``event_id``.

The verifier keeps one keyed 8-byte hash of every record's ``event_id`` (the
key is random per run, so a crafted bundle cannot aim collisions at it) in
this set, to refuse a bundle in which an ``event_id`` repeats, in bounded
memory whatever the bundle's size.
"""

from __future__ import annotations

__all__ = ["FingerprintSet"]


class FingerprintSet:
    """An open-addressing set of 64-bit fingerprints in one flat array (8 bytes a slot).

    A Python ``set`` of ints costs about 70 bytes an entry; this costs 16 at
    worst (load factor 1/2), so a million records need 16 MiB.
    """

    __slots__ = ("_count", "_mask", "_table")

    def __init__(self) -> None:
        self._mask = (1 << 16) - 1
        self._table = memoryview(bytearray(8 << 16)).cast("Q")
        self._count = 0

    def add(self, fp: int) -> bool:
        """Add ``fp``; return False if it was already present."""
        fp = fp or 1  # 0 marks an empty slot
        table = self._table
        mask = self._mask
        i = fp & mask
        while True:
            v = table[i]
            if v == 0:
                table[i] = fp
                self._count += 1
                if self._count * 2 > mask:
                    self._grow()
                return True
            if v == fp:
                return False
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self._table
        size = (self._mask + 1) * 2
        self._mask = mask = size - 1
        self._table = table = memoryview(bytearray(8 * size)).cast("Q")
        for v in old:
            if v:
                i = v & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = v
        old.release()
