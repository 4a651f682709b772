"""Where each Merkle hash is stored: positions any backend shares.

This module owns the numbering of stored hashes, the layout of Go's
``sumdb/tlog``: leaf ``n``'s hash, then each interior node it completes, so
the hash of node ``(level, n)`` is at one computable position
(:func:`stored_hash_index`) whatever the backend. Stores keep bytes at these
positions; which nodes a proof needs is :mod:`disclosure_ledger._core.merkle`'s
planner. Nodes at :data:`UPPER_LEVEL` and above are few (about 1/32 of the
records) and are kept apart by stores, so a proof fetches them in one query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from disclosure_ledger.errors import StorageError

__all__ = [
    "UPPER_LEVEL",
    "place_nodes",
    "slice_runs",
    "stored_hash_count",
    "stored_hash_index",
    "upper_hash_count",
]

UPPER_LEVEL = 6
"""Nodes at this level and above (over 64 leaves or more) are also stored one row
each in ``upper_hashes``: about 1/32 of the records, so a proof fetches all of
its upper nodes in one query and only its lowest levels from a run."""


def stored_hash_index(level: int, n: int) -> int:
    """Return the position of node ``(level, n)`` in the stored-hash sequence.

    Leaf ``k`` is stored after the ``2k - popcount(k)`` hashes of the leaves
    before it and the nodes they completed; each interior node follows the
    leaf that completed it.

    Raises:
        Nothing: integer arithmetic only.
    """
    # The last leaf under the node is n' = n·2^level + 2^level - 1; the hashes
    # before and including it number sum(n' >> k for k >= 0) = 2n' - popcount(n').
    last = ((n + 1) << level) - 1
    return 2 * last - last.bit_count() + level


def place_nodes(
    ids: Sequence[tuple[int, int]], known: Mapping[int, bytes]
) -> tuple[list[bytes], list[tuple[int, int]], list[tuple[int, int]]]:
    """Sort the nodes ``ids`` a proof asks for by where a store finds them.

    Returns ``(out, absent, lower)``: ``out`` holds each node's hash where
    ``known`` (the upper nodes a store keeps in memory) has it and ``b""``
    elsewhere; ``absent`` the ``(place in out, position)`` of upper nodes not
    in ``known``; ``lower`` those of nodes below :data:`UPPER_LEVEL`, which
    are read from the stored runs.

    Raises:
        Nothing: integer arithmetic and lookups only.
    """
    out: list[bytes] = []
    absent: list[tuple[int, int]] = []
    lower: list[tuple[int, int]] = []
    for k, (level, n) in enumerate(ids):
        last = ((n + 1) << level) - 1  # stored_hash_index, inline: this runs per node
        pos = 2 * last - last.bit_count() + level
        if level >= UPPER_LEVEL:
            h = known.get(pos)
            if h is None:
                absent.append((k, pos))
            out.append(h or b"")
        else:
            lower.append((k, pos))
            out.append(b"")
    return out, absent, lower


def stored_hash_count(size: int) -> int:
    """Return how many hashes are stored for a tree of ``size`` leaves.

    Raises:
        Nothing: integer arithmetic only.
    """
    return 2 * size - size.bit_count()


def upper_hash_count(size: int) -> int:
    """Return how many nodes at :data:`UPPER_LEVEL` or above a tree of ``size`` leaves completes.

    Raises:
        Nothing: integer arithmetic only.
    """
    return sum(size >> level for level in range(UPPER_LEVEL, size.bit_length()))


def slice_runs(rows: Iterable[tuple[int, bytes]], start: int, end: int) -> list[bytes]:
    """The hashes at positions ``[start, end)`` from stored runs ``(first, concatenated hashes)``.

    ``rows`` are in position order: the run holding ``start`` (or one that
    ends before it, which is skipped), then the runs after it. Every store
    keeps hashes in runs of consecutive positions and reads them back with this.

    Raises:
        StorageError: if the runs leave a gap or overlap.
    """
    out: list[bytes] = []
    pos = start
    for i, (first, run) in enumerate(rows):
        if pos >= end:
            break  # runs past the range are not read
        stop = first + len(run) // 32
        if i == 0 and stop <= pos:
            continue  # the run before ``start`` ends before it
        if first > pos:
            raise StorageError(f"stored Merkle hashes have a gap at position {pos}")
        if first < pos and i > 0:
            raise StorageError(f"stored Merkle hashes overlap at position {first}")
        off = (pos - first) * 32
        take = min(stop, end) - pos
        out += [run[off + 32 * k : off + 32 * k + 32] for k in range(take)]
        pos += take
    return out
