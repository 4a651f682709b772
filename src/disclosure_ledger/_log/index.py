"""The query index: columns derived from the signed records, and queries over them.

This module owns what the index holds for each record (camera, owner, action,
actor kind, recipient, legal basis, the time of the access), how it is brought
up to date, and how a query is answered from it. The index is derived from
the signed records and kept off the append path, so appends do not pay for
it; it is a convenience, never a source of truth (the integrity check in
:mod:`.fsck` compares every row with its record). It also defines
:class:`Record`, the decoded stored record that reads and queries return.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from disclosure_ledger._core import records
from disclosure_ledger._core.merkle import leaf_hash
from disclosure_ledger._core.records import Event
from disclosure_ledger._store.base import Store
from disclosure_ledger._store.sqlite import INDEX_COLUMNS
from disclosure_ledger.errors import LedgerError, MalformedError

__all__ = ["INDEX_CHUNK", "Record", "index_columns", "query", "record_at", "update_index"]

INDEX_CHUNK = 4096
"""How many records are decoded and indexed per short transaction."""


@dataclass(frozen=True, slots=True)
class Record:
    """A stored record, decoded."""

    index: int
    envelope: records.Envelope
    event: Event

    @property
    def leaf(self) -> bytes:
        """The exact leaf bytes."""
        return self.envelope.leaf

    @property
    def leaf_hash(self) -> bytes:
        """The RFC 6962 leaf hash."""
        return leaf_hash(self.envelope.leaf)


def record_at(index: int, leaf: bytes) -> Record:
    """Decode the stored leaf of record ``index``.

    Raises:
        MalformedError: if the bytes do not decode.
    """
    env = records.parse_envelope(leaf)
    return Record(index, env, env.event())


def utc_column(dt: datetime) -> str:
    """A time's fixed-width UTC form, so that string order is time order in the index."""
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def index_columns(ev: Event) -> tuple[object, ...]:
    """The query index columns of an event, in ``INDEX_COLUMNS`` order after the seq."""
    rec = ev.recipient
    basis = ev.legal_basis
    return (
        ev.event_id,
        ev.camera_id,
        ev.owner_id,
        str(ev.action),
        str(ev.actor.kind),
        None if rec is None else str(rec.kind),
        None if rec is None else rec.organization,
        None if basis is None else str(basis),
        utc_column(ev.occurred_at),
    )


def _index_row(seq: int, leaf: bytes) -> tuple[object, ...]:
    # A record's query index row after its seq: (logged_at, *index_columns).
    try:
        env = records.parse_envelope(leaf)
        return (env.logged_at, *index_columns(env.event()))
    except MalformedError as err:
        raise MalformedError(f"record {seq}: {err}") from err


def update_index(store: Store) -> int:
    """Index the records committed when called; return how many it added.

    Records are decoded outside the write lock and indexed in short
    transactions, so appends carry on meanwhile.

    Raises:
        LedgerError: if the ledger was opened read-only.
        MalformedError: if a stored record does not decode (a damaged file).
        StorageError: if the file cannot be written.
    """
    if store.readonly:
        raise LedgerError("the ledger was opened read-only; its query index cannot be updated")
    added = 0
    target = store.size()  # records appended meanwhile wait for the next call
    while True:
        start = store.indexed_size()
        end = min(target, start + INDEX_CHUNK)
        if start >= end:
            return added
        rows = [
            (seq, *_index_row(seq, leaf))
            for seq, leaf in enumerate(store.iter_leaves(start, end), start)
        ]
        with store.append_txn() as txn:
            # Another process (or thread) may have indexed them meanwhile.
            if txn.indexed_size() == start:
                txn.insert_index_rows(rows)
                added += len(rows)


def query(
    store: Store,
    *,
    camera_id: str | None = None,
    owner_id: str | None = None,
    action: str | None = None,
    actor_kind: str | None = None,
    recipient: str | None = None,
    legal_basis: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Record]:
    """Return records matching every given filter, in ledger order.

    See :meth:`.Ledger.query`. The index is brought up to date first unless
    the store is read-only; records it does not cover are decoded and
    filtered one by one, so the answer is the same either way.

    Raises:
        MalformedError: if a time is naive.
    """
    equal = {
        column: str(value)
        for column, value in (
            ("camera_id", camera_id),
            ("owner_id", owner_id),
            ("action", action),
            ("actor_kind", actor_kind),
            ("legal_basis", legal_basis),
        )
        if value is not None
    }
    bounds: list[tuple[str, str]] = []
    for op, bound in ((">=", since), ("<", until)):
        if bound is not None:
            if bound.tzinfo is None:
                raise MalformedError("query times must carry a time zone")
            bounds.append((op, utc_column(bound.astimezone(UTC))))
    where = [f"{column} = ?" for column in equal]
    args: list[object] = list(equal.values())
    if recipient is not None:
        where.append("(recipient_org = ? OR recipient_kind = ?)")
        args += [recipient, recipient]
    for op, value in bounds:
        where.append(f"occurred_at {op} ?")
        args.append(value)
    size = store.size()
    if not store.readonly:
        update_index(store)
    indexed = min(size, store.indexed_size())
    rows = store.query(" AND ".join(where), args, limit, below=indexed)
    found = [record_at(seq, leaf) for seq, leaf in rows]

    def matches(rec: Record) -> bool:
        columns = dict(zip(INDEX_COLUMNS[1:], index_columns(rec.event), strict=True))
        if any(columns[c] != v for c, v in equal.items()):
            return False
        if recipient is not None and recipient not in (
            columns["recipient_org"],
            columns["recipient_kind"],
        ):
            return False
        occurred = str(columns["occurred_at"])
        return all(occurred >= v if op == ">=" else occurred < v for op, v in bounds)

    if indexed < size:
        for seq, leaf in enumerate(store.iter_leaves(indexed, size), indexed):
            if limit is not None and len(found) >= limit:
                break
            rec = record_at(seq, leaf)
            if matches(rec):
                found.append(rec)
    return found
