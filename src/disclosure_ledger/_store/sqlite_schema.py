"""The SQLite ledger file's schema: tables, the query index, append-only triggers, errors.

This module owns what the file looks like to SQLite: the format name and
version in ``meta``, the tables, the query index and its view, and the
triggers that refuse UPDATE, DELETE and any insert over an existing key on
every table (``INSERT OR REPLACE`` deletes without firing DELETE triggers).
They cannot stop someone who drops them or edits the file's bytes:
``Ledger.check`` and the owner's verification catch what that changes.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from disclosure_ledger.errors import StorageError

__all__ = [
    "APPLICATION_ID",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_COLUMNS",
    "QUERY_COLUMNS",
    "QUERY_INDEX",
    "QUERY_VIEW",
    "SCHEMA",
    "query_schema",
    "storage_error",
    "triggers",
]

FORMAT_NAME = "disclosure-ledger"
FORMAT_VERSION = 3
APPLICATION_ID = 0x444C4731  # "DLG1": marks the file as a ledger for `file(1)` and for us


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS writers (
    key_id INTEGER NOT NULL,
    vkey TEXT NOT NULL UNIQUE,
    added_at_size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS event_ids (
    event_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hashes (
    first INTEGER PRIMARY KEY,
    run BLOB NOT NULL CHECK (length(run) > 0 AND length(run) % 32 = 0)
);
CREATE TABLE IF NOT EXISTS upper_hashes (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (size, line)
);
CREATE TABLE IF NOT EXISTS witness_events (
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


INDEX_COLUMNS = (
    "logged_at",
    "event_id",
    "camera_id",
    "owner_id",
    "action",
    "actor_kind",
    "recipient_kind",
    "recipient_org",
    "legal_basis",
    "occurred_at",
)
"""The columns of the query index after ``seq``, in the order the ledger writes and checks them."""
QUERY_COLUMNS = ", ".join(INDEX_COLUMNS)
QUERY_VIEW = "indexed_records"
"""The view queries read: the query index joined with the records' leaves."""

# The query index is derived from the records, after they are acknowledged and
# off the append path: the ledger fills it in before answering a query, and
# `check` compares it with the signed records.
QUERY_INDEX = """
CREATE TABLE IF NOT EXISTS record_index (
    seq INTEGER PRIMARY KEY,
    logged_at INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    owner_id TEXT,
    action TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    recipient_kind TEXT,
    recipient_org TEXT,
    legal_basis TEXT,
    occurred_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS record_index_camera ON record_index (camera_id, occurred_at);
CREATE INDEX IF NOT EXISTS record_index_owner ON record_index (owner_id, occurred_at);
CREATE INDEX IF NOT EXISTS record_index_time ON record_index (occurred_at);
CREATE VIEW IF NOT EXISTS indexed_records AS
    SELECT record_index.*, records.leaf FROM record_index JOIN records USING (seq);
"""


# Every table, and what makes a row "the same row" in it: an INSERT that matches
# would, under OR REPLACE, delete the row it matches without firing its DELETE
# trigger. The second field says how rowids are guarded (see _triggers):
# "key" for tables whose INTEGER PRIMARY KEY is a position the ledger always
# gives, "auto" for tables whose rowid SQLite picks, None for WITHOUT ROWID.
_ROW_KEYS: dict[str, tuple[str, str | None]] = {
    "meta": ("key = NEW.key", "auto"),
    "writers": ("vkey = NEW.vkey", "auto"),
    "records": ("seq = NEW.seq", "key"),
    "event_ids": ("event_id = NEW.event_id", None),
    "hashes": ("first = NEW.first", "key"),
    "upper_hashes": ("id = NEW.id", "key"),
    "checkpoints": ("size = NEW.size", "key"),
    "cosignatures": ("size = NEW.size AND line = NEW.line", "auto"),
    "witness_events": ("id = NEW.id", "auto"),
    "record_index": ("seq = NEW.seq", "key"),
}


def triggers() -> list[tuple[str, str]]:
    """``(name, statement)`` of the append-only triggers: no UPDATE, DELETE or overwriting INSERT.

    UPDATE and DELETE triggers cover ``UPDATE``, ``UPDATE OR REPLACE``,
    ``DELETE`` and upserts (``ON CONFLICT DO UPDATE`` runs an UPDATE). An
    ``INSERT OR REPLACE`` (``REPLACE INTO``) deletes the row it conflicts with
    without firing DELETE triggers, so every table also refuses, before the
    insert, any row whose key is already taken; ``INSERT OR IGNORE`` of such a
    row is refused too, which keeps the rule simple (the ledger itself skips
    known rows with ``WHERE NOT EXISTS``).

    Rowids: ``INSERT OR REPLACE INTO t (rowid, ...)`` can name a stored row by
    its rowid alone, so tables with automatic rowids match on the rowid too.
    In a BEFORE INSERT trigger an automatic rowid reads as -1, so a stored row
    at -1 would make every automatic insert look like an overwrite: negative
    rowids are refused (after the insert, where the real rowid is known; in
    the BEFORE trigger itself for the position-keyed tables, which the ledger
    never fills automatically, so the hot path runs one trigger per row).
    """
    out = []
    for table, (key_match, rowids) in _ROW_KEYS.items():
        for op in ("UPDATE", "DELETE"):
            name = f"{table}_no_{op.lower()}"
            out.append(
                (
                    name,
                    f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'disclosure ledger is append-only: "
                    f"{op} on {table} refused'); END;",
                )
            )
        when = f"EXISTS (SELECT 1 FROM {table} WHERE {key_match})"  # noqa: S608 - fixed names
        if rowids == "auto":
            when = f"EXISTS (SELECT 1 FROM {table} WHERE ({key_match}) OR rowid = NEW.rowid)"  # noqa: S608 - fixed names
        elif rowids == "key":
            when = f"NEW.rowid < 0 OR {when}"
        name = f"{table}_no_overwrite"
        out.append(
            (
                name,
                f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE INSERT ON {table} WHEN {when} "
                f"BEGIN SELECT RAISE(ABORT, 'disclosure ledger is append-only: "
                f"INSERT over an existing row of {table}, or at a negative key, refused'); END;",
            )
        )
        if rowids == "auto":
            name = f"{table}_no_negative_rowid"
            out.append(
                (
                    name,
                    f"CREATE TRIGGER IF NOT EXISTS {name} AFTER INSERT ON {table} "
                    f"WHEN NEW.rowid < 0 "
                    f"BEGIN SELECT RAISE(ABORT, 'disclosure ledger is append-only: "
                    f"a negative rowid in {table} refused'); END;",
                )
            )
    return out


def storage_error(err: BaseException, path: Path, doing: str) -> StorageError:
    text = str(err)
    if isinstance(err, sqlite3.OperationalError):
        if "disk is full" in text or "database or disk is full" in text:
            return StorageError(f"{path}: disk full while {doing}; nothing was written")
        if "readonly" in text or "read-only" in text:
            return StorageError(f"{path}: the ledger file is read-only ({doing})")
        if "locked" in text or "busy" in text:
            return StorageError(f"{path}: the ledger is locked by another writer ({doing})")
    if isinstance(err, sqlite3.DatabaseError) and "not a database" in text:
        return StorageError(f"{path}: not a disclosure ledger (not an SQLite file)")
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return StorageError(f"{path}: disk full while {doing}; nothing was written")
    return StorageError(f"{path}: {doing} failed: {text}")


def query_schema() -> dict[str, tuple[str, str | None]]:
    """``name: (type, sql)`` of what queries read, as :meth:`.SQLiteStore.create` makes them.

    The view's text is taken from a scratch in-memory database built from the
    schema, so it is exactly what SQLite stores for it (SQLite drops ``IF NOT
    EXISTS`` and keeps the rest verbatim). The tables' text is not compared
    (``check`` compares their rows with the signed records); only their type.
    """
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.executescript(SCHEMA + QUERY_INDEX)
        (view_sql,) = scratch.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (QUERY_VIEW,)
        ).fetchone()
    finally:
        scratch.close()
    return {
        QUERY_VIEW: ("view", str(view_sql)),
        "record_index": ("table", None),
        "records": ("table", None),
    }
