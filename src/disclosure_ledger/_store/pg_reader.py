"""The reads of one log in a PostgreSQL database: the head, leaves, hashes, checkpoints.

This module owns :class:`PgLogReader`, the ``LogReader`` and ``AuditReader``
halves of the storage contract for one log of a
:class:`~disclosure_ledger._store.pg_database.PostgresDatabase`. Every
statement names the log's ``log_id`` first, so it touches one log (one shard
of a distributed database). Reads run on pooled connections in autocommit
mode: PostgreSQL's MVCC lets them see the last commit without waiting behind
an open append, and the rows below a committed size never change, so a proof
read after the head is of one tree.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from psycopg.types.numeric import Int8

from disclosure_ledger._core.merkle import NodeId
from disclosure_ledger._store.layout import place_nodes, slice_runs
from disclosure_ledger._store.pg_database import PostgresDatabase, in_runs
from disclosure_ledger.errors import StorageError

__all__ = ["PgLogReader"]

_NOTES_KEPT = 256
# Upper nodes kept in memory per log: about 10 MB at the cap, which covers logs
# of up to about 2 million records; beyond it, proofs query the rest by key.
_UPPER_MEMORY_MAX = 1 << 16
# Lower positions further apart than this are read as separate clusters (a
# block of 64 leaves spans about 130 positions).
_CLUSTER_GAP = 256
# Kind 0: upper nodes asked for by position (beyond the memory cap); kind 1: the
# upper nodes committed after the last one in memory, in order; kind 2: the runs
# of hashes covering each cluster of lower positions.
_HASHES_SQL = (
    "SELECT 0, id, hash FROM upper_hashes WHERE log_id = %(log)s AND id = ANY(%(upper)s::bigint[])"
    " UNION ALL (SELECT 1, id, hash FROM upper_hashes WHERE log_id = %(log)s AND id > %(after)s"
    " ORDER BY id LIMIT %(room)s)"
    " UNION ALL SELECT 2, h.first, h.run"
    " FROM unnest(%(lo)s::bigint[], %(hi)s::bigint[]) AS c(lo, hi)"
    " CROSS JOIN LATERAL ((SELECT first, run FROM hashes WHERE log_id = %(log)s AND first <= c.lo"
    " ORDER BY first DESC LIMIT 1) UNION ALL (SELECT first, run FROM hashes"
    " WHERE log_id = %(log)s AND first > c.lo AND first <= c.hi)) AS h"
)

# The same for at most two clusters (an inclusion proof's: its leaf's block and
# the tree's right edge) and no upper node asked for by position: scalars only,
# which psycopg adapts in a fraction of an array's time. An absent second
# cluster is (-1, -1), which no run matches.
_HASHES_2_SQL = (
    "(SELECT 1, id, hash FROM upper_hashes WHERE log_id = %(log)s AND id > %(after)s"
    " ORDER BY id LIMIT %(room)s)"
    " UNION ALL (SELECT 2, first, run FROM hashes WHERE log_id = %(log)s AND first <= %(lo1)s"
    " ORDER BY first DESC LIMIT 1)"
    " UNION ALL SELECT 2, first, run FROM hashes WHERE log_id = %(log)s"
    " AND first > %(lo1)s AND first <= %(hi1)s"
    " UNION ALL (SELECT 2, first, run FROM hashes WHERE log_id = %(log)s AND first <= %(lo2)s"
    " ORDER BY first DESC LIMIT 1)"
    " UNION ALL SELECT 2, first, run FROM hashes WHERE log_id = %(log)s"
    " AND first > %(lo2)s AND first <= %(hi2)s"
)


def _clusters(positions: Sequence[int]) -> tuple[list[int], list[int]]:
    """``(lows, highs)`` of the groups of sorted ``positions`` closer than :data:`_CLUSTER_GAP`."""
    lows: list[int] = []
    highs: list[int] = []
    for pos in positions:
        if highs and pos - highs[-1] < _CLUSTER_GAP:
            highs[-1] = pos
        else:
            lows.append(pos)
            highs.append(pos)
    return lows, highs


class PgLogReader:
    """The reads of one log: every statement is ``... WHERE log_id = %s ...``."""

    def __init__(self, db: PostgresDatabase, log_id: int, origin: str) -> None:
        self.db = db
        self.log_id = log_id
        self.origin = origin
        self.address = f"{db.address}#{origin}"
        self._closed = False
        self._notes: dict[int, str] = {}  # checkpoints read, by size
        # Upper nodes never change once stored (their subtrees are complete):
        # loaded in position order as proofs need them, and kept.
        self._cache_lock = threading.Lock()
        self._upper: dict[int, bytes] = {}
        self._upper_end = -1  # the highest position loaded

    @property
    def path(self) -> Path:
        """The log's address (the database URL without its password, ``#`` and the origin)."""
        return Path(self.address)

    @property
    def readonly(self) -> bool:
        """Whether the database was opened for reading only."""
        return self.db.readonly

    def _rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        if self._closed:
            raise StorageError(f"{self.address}: the log is closed")
        bound = (self.log_id, *args)
        rows: list[tuple[Any, ...]] = self.db.read(
            "reading", lambda c: c.execute(sql, bound).fetchall()
        )
        return rows

    def _rows_prepared(self, sql: str, *params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        # A statement run on every proof: prepared on each connection at once,
        # its results in binary (bytea as raw bytes, not hex text).
        if self._closed:
            raise StorageError(f"{self.address}: the log is closed")
        bound = {k: v for p in params for k, v in p.items()}
        rows: list[tuple[Any, ...]] = self.db.read(
            "reading", lambda c: c.execute(sql, bound, prepare=True, binary=True).fetchall()
        )
        return rows

    def meta(self) -> dict[str, str]:
        """The log's metadata (``origin``, ``log_key``, the format).

        Raises:
            StorageError: if the database cannot be read.
        """
        return {
            str(k): str(v)
            for k, v in self._rows("SELECT key, value FROM log_meta WHERE log_id = %s")
        }

    def size(self) -> int:
        """How many records are committed.

        Raises:
            StorageError: if the log is gone or the database cannot be read.
        """
        rows = self._rows("SELECT size FROM logs WHERE log_id = %s")
        if not rows:
            raise StorageError(f"{self.address}: the log is gone")
        return int(rows[0][0])

    def leaf(self, seq: int) -> bytes:
        """The leaf bytes of record ``seq``.

        Raises:
            StorageError: if there is no such record.
        """
        rows = self._rows("SELECT leaf FROM records WHERE log_id = %s AND seq = %s", seq)
        if not rows:
            raise StorageError(f"no record at index {seq}")
        return bytes(rows[0][0])

    def iter_leaves(self, start: int, end: int, chunk: int = 4096) -> Iterator[bytes]:
        """The leaves of records ``[start, end)``, in order, ``chunk`` rows a round trip.

        Raises:
            StorageError: if one is missing.
        """
        pos = start
        while pos < end:
            stop = min(end, pos + chunk)
            rows = self._rows(
                "SELECT leaf FROM records WHERE log_id = %s AND seq >= %s AND seq < %s"
                " ORDER BY seq",
                pos,
                stop,
            )
            if len(rows) != stop - pos:
                raise StorageError(f"records {pos}..{stop - 1} are not all present")
            for (leaf,) in rows:
                yield bytes(leaf)
            pos = stop

    def read_hashes(self, ids: Sequence[NodeId], /) -> list[bytes]:
        """The stored hashes of ``ids``, in one round trip (none when all are in memory).

        Upper nodes come from memory: stored ones never change, and the ones
        committed since the last read are loaded, in position order, by the
        same statement that reads the lower ones. Each cluster of lower
        positions (a leaf's block of 64, the tree's right edge) is read as the
        run that starts at or before it and any that start inside it: two
        primary-key seeks, whatever the number of positions.

        Raises:
            StorageError: if one is not stored.
        """
        known = self._upper
        out, absent, lower = place_nodes(ids, known)
        if not absent and not lower:
            return out
        after = self._upper_end
        room = max(0, _UPPER_MEMORY_MAX - len(known)) if absent else 0
        wanted = [p for _, p in absent] if absent and not room else []
        lows, highs = _clusters(sorted({p for _, p in lower}))
        head = {"log": Int8(self.log_id), "after": Int8(after), "room": Int8(room)}
        if wanted or len(lows) > 2:
            rows = self._rows_prepared(
                _HASHES_SQL, head, {"upper": wanted, "lo": lows, "hi": highs}
            )
        else:
            lows += [-1] * (2 - len(lows))
            highs += [-1] * (2 - len(highs))
            bounds = zip(("lo1", "lo2", "hi1", "hi2"), [*lows, *highs], strict=True)
            rows = self._rows_prepared(_HASHES_2_SQL, head, {k: Int8(v) for k, v in bounds})
        queried: dict[int, bytes] = {}
        loaded: list[tuple[int, bytes]] = []
        runs: list[tuple[int, bytes]] = []
        for kind, i, h in rows:
            if kind == 0:
                queried[int(i)] = bytes(h)
            else:
                (loaded if kind == 1 else runs).append((int(i), bytes(h)))
        if loaded:
            with self._cache_lock:
                known.update(loaded)
                self._upper_end = max(self._upper_end, loaded[-1][0])
        missing = [p for _, p in absent if p not in known and p not in queried]
        if missing:  # only when the memory cap is crossed by this very read
            rows = self._rows_prepared(
                _HASHES_SQL,
                {"log": Int8(self.log_id), "upper": missing, "after": Int8(after), "room": Int8(0)},
                {"lo": [], "hi": []},
            )
            queried.update((int(i), bytes(h)) for _, i, h in rows)
        for k, pos in absent:
            h = known.get(pos) or queried.get(pos)
            if h is None:
                raise StorageError(f"the Merkle hash at position {pos} is not stored")
            out[k] = h
        runs.sort()
        for k, pos in lower:
            h = in_runs(runs, pos)
            if h is None:
                raise StorageError(f"the Merkle hash at position {pos} is not stored")
            out[k] = h
        return out

    def checkpoint(self, size: int) -> str | None:
        """The signed checkpoint note stored for ``size``, if any.

        Raises:
            StorageError: if the database cannot be read.
        """
        note = self._notes.get(size)
        if note is not None:
            return note
        rows = self._rows("SELECT note FROM checkpoints WHERE log_id = %s AND size = %s", size)
        if not rows:
            return None
        # A stored checkpoint never changes: proofs at one size read it once.
        if len(self._notes) >= _NOTES_KEPT:
            self._notes.clear()
        self._notes[size] = note = str(rows[0][0])
        return note

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """``(size, note)`` of the newest checkpoint, if any.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows(
            "SELECT size, note FROM checkpoints WHERE log_id = %s ORDER BY size DESC LIMIT 1"
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def latest_checkpoint_size(self) -> int | None:
        """The size of the newest checkpoint, if any.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows(
            "SELECT size FROM checkpoints WHERE log_id = %s ORDER BY size DESC LIMIT 1"
        )
        return int(rows[0][0]) if rows else None

    def checkpoint_sizes(self) -> list[int]:
        """Every checkpointed size, ascending.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows("SELECT size FROM checkpoints WHERE log_id = %s ORDER BY size")
        return [int(r[0]) for r in rows]

    def iter_checkpoints(self, chunk: int = 4096) -> Iterator[tuple[int, str]]:
        """``(size, note)`` of every checkpoint, ascending, ``chunk`` a round trip.

        Raises:
            StorageError: if the database cannot be read.
        """
        after = -1
        while True:
            rows = self._rows(
                "SELECT size, note FROM checkpoints WHERE log_id = %s AND size > %s"
                " ORDER BY size LIMIT %s",
                after,
                chunk,
            )
            for size, note in rows:
                yield int(size), str(note)
            if len(rows) < chunk:
                return
            after = int(rows[-1][0])

    def cosignature_lines(self, size: int) -> list[str]:
        """The cosignature lines stored for ``size``, in the order stored.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows(
            "SELECT line FROM cosignatures WHERE log_id = %s AND size = %s ORDER BY n", size
        )
        return [str(r[0]) for r in rows]

    def cosigning_witnesses(self, size: int) -> list[str]:
        """The verifier keys of the witnesses with a stored cosignature for ``size``.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows(
            "SELECT DISTINCT witness FROM cosignatures WHERE log_id = %s AND size = %s", size
        )
        return [str(r[0]) for r in rows]

    def iter_cosignatures(self, chunk: int = 4096) -> Iterator[tuple[int, str, str]]:
        """``(size, witness, line)`` of every cosignature, by size then as stored.

        Raises:
            StorageError: if the database cannot be read.
        """
        after: tuple[int, int] = (-1, 0)
        while True:
            rows = self._rows(
                "SELECT size, n, witness, line FROM cosignatures WHERE log_id = %s"
                " AND (size, n) > (%s, %s) ORDER BY size, n LIMIT %s",
                *after,
                chunk,
            )
            for size, _, witness, line in rows:
                yield int(size), str(witness), str(line)
            if len(rows) < chunk:
                return
            after = (int(rows[-1][0]), int(rows[-1][1]))

    def last_cosigned_size(self, witness: str) -> int | None:
        """The largest size ``witness`` has a stored cosignature for.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows(
            "SELECT MAX(size) FROM cosignatures WHERE log_id = %s AND witness = %s", witness
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def writer_keys(self) -> list[str]:
        """The verifier keys of every registered writer, in the order registered.

        Raises:
            StorageError: if the database cannot be read.
        """
        return [
            str(r[0]) for r in self._rows("SELECT vkey FROM writers WHERE log_id = %s ORDER BY n")
        ]

    def event_id_seqs(self, event_ids: Sequence[str]) -> dict[str, int]:
        """Map those of ``event_ids`` that are committed to their record.

        Raises:
            StorageError: if the database cannot be read.
        """
        if not event_ids:
            return {}
        rows = self._rows(
            "SELECT event_id, seq FROM event_ids WHERE log_id = %s AND event_id = ANY(%s)",
            list(event_ids),
        )
        return {str(e): int(s) for e, s in rows}

    def witness_events(self) -> list[tuple[int, str, str, str]]:
        """Every recorded witness outcome ``(size, witness, outcome, detail)``, in order.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows(
            "SELECT size, witness, outcome, detail FROM witness_events WHERE log_id = %s ORDER BY n"
        )
        return [(int(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    # -- the integrity check's reads -------------------------------------------------

    def read_hash_range(self, start: int, end: int) -> list[bytes]:
        """Stored hashes at positions ``[start, end)``; fewer where the stored ones end.

        Raises:
            StorageError: if the stored runs overlap or leave a gap.
        """
        if end <= start:
            return []
        rows = self._rows(
            "(SELECT first, run FROM hashes WHERE log_id = %s AND first <= %s"
            " ORDER BY first DESC LIMIT 1) UNION ALL (SELECT first, run FROM hashes"
            " WHERE log_id = %s AND first > %s AND first < %s ORDER BY first)",
            start,
            self.log_id,
            start,
            end,
        )
        return slice_runs([(int(f), bytes(r)) for f, r in rows], start, end)

    def hash_count(self) -> int:
        """How many hashes are stored (one past the last stored position).

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows(
            "SELECT first, length(run) FROM hashes WHERE log_id = %s ORDER BY first DESC LIMIT 1"
        )
        return 0 if not rows else int(rows[0][0]) + int(rows[0][1]) // 32

    def read_upper_range(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """``(position, hash)`` of the upper nodes stored at positions ``[start, end)``.

        Raises:
            StorageError: if the database cannot be read.
        """
        rows = self._rows(
            "SELECT id, hash FROM upper_hashes WHERE log_id = %s AND id >= %s AND id < %s"
            " ORDER BY id",
            start,
            end,
        )
        return [(int(i), bytes(h)) for i, h in rows]

    def upper_count(self) -> int:
        """How many upper nodes are stored.

        Raises:
            StorageError: if the database cannot be read.
        """
        return int(self._rows("SELECT COUNT(*) FROM upper_hashes WHERE log_id = %s")[0][0])

    def event_id_count(self) -> int:
        """How many event IDs are registered.

        Raises:
            StorageError: if the database cannot be read.
        """
        return int(self._rows("SELECT COUNT(*) FROM event_ids WHERE log_id = %s")[0][0])
