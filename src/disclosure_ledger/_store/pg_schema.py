"""The PostgreSQL schema: many logs in one database, every table keyed by the log first.

This module owns the DDL of the PostgreSQL store (tables, append-only
triggers, the format-version row), how a log's ID is derived from its origin,
and how a database URL is shown without its password. It does no I/O of its
own: :mod:`disclosure_ledger._store.postgres` runs what is here.

Every table lives in the schema :data:`SCHEMA` and starts its primary key with
``log_id``, so a distributed PostgreSQL (Citus) can shard every table by it
and co-locate one log's rows; no statement the library runs touches two logs.
``log_id`` is derived from the origin (:func:`log_id_of`), so finding a log
needs no lookup table that would span shards. The ``logs`` row of a log is its
sequencer: an append takes it ``FOR UPDATE`` and moves its ``size`` forward in
the transaction that writes the records. See docs/postgres.md.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SCHEMA",
    "SCHEMA_DDL",
    "is_postgres_url",
    "log_id_of",
    "redact_url",
    "url_password",
]

SCHEMA = "disclosure_ledger"
"""The PostgreSQL schema (namespace) that holds every table of the store."""
FORMAT_NAME = "disclosure-ledger-postgres"
FORMAT_VERSION = 1
"""The schema's version. A database whose ``format_version`` row is another is refused."""

_LOG_ID_DOMAIN = b"disclosure-ledger log id\n"


def log_id_of(origin: str) -> int:
    """Return the log ID of ``origin``: the first 8 bytes of a SHA-256 of it, as a signed bigint.

    Deriving the ID lets every statement name its log (and a distributed
    database route it to a shard) without first reading a table of all logs.
    Two origins with one ID are caught when the second log is created (the
    ``logs`` row keeps the origin, and every open compares it).

    Raises:
        Nothing: hashing only.
    """
    digest = hashlib.sha256(_LOG_ID_DOMAIN + origin.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return text.startswith(("postgresql://", "postgres://"))


def url_password(url: str) -> str | None:
    """The password a ``postgresql://`` URL carries, in its user part or its query, if any."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if password:
        return password
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password" and value:
            return value
    return None


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and listings.

    Raises:
        Nothing: a URL that does not parse is shown as ``<unparsable URL>``.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            name = user.split(":", 1)[0]
            netloc = f"{name}:***@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparsable URL>"


_APPEND_ONLY_TABLES = (
    "log_meta",
    "writers",
    "records",
    "event_ids",
    "hashes",
    "upper_hashes",
    "checkpoints",
    "cosignatures",
    "witness_events",
    "record_index",
    "format",
)

INDEX_TABLE_COLUMNS = """
    logged_at bigint NOT NULL,
    event_id text NOT NULL,
    camera_id text NOT NULL,
    owner_id text,
    action text NOT NULL,
    actor_kind text NOT NULL,
    recipient_kind text,
    recipient_org text,
    legal_basis text,
    occurred_at text NOT NULL"""

# No foreign keys: each would lock the log's row FOR KEY SHARE per insert, and
# the sequencing transaction already holds it. The integrity check compares
# every table with the records instead.
_TABLES = f"""
CREATE TABLE format (
    name text PRIMARY KEY,
    version integer NOT NULL
);
CREATE TABLE logs (
    log_id bigint PRIMARY KEY,
    origin text NOT NULL,
    log_key text NOT NULL,
    size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    frontier bytea NOT NULL DEFAULT ''::bytea CHECK (length(frontier) % 32 = 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE log_meta (
    log_id bigint NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (log_id, key)
);
CREATE TABLE writers (
    log_id bigint NOT NULL,
    vkey text NOT NULL,
    key_id bigint NOT NULL,
    added_at_size bigint NOT NULL,
    n bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (log_id, vkey)
);
CREATE TABLE records (
    log_id bigint NOT NULL,
    seq bigint NOT NULL CHECK (seq >= 0),
    leaf bytea NOT NULL,
    PRIMARY KEY (log_id, seq)
);
CREATE TABLE event_ids (
    log_id bigint NOT NULL,
    event_id text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (log_id, event_id)
);
CREATE TABLE hashes (
    log_id bigint NOT NULL,
    first bigint NOT NULL CHECK (first >= 0),
    run bytea NOT NULL CHECK (length(run) > 0 AND length(run) % 32 = 0),
    PRIMARY KEY (log_id, first)
);
CREATE TABLE upper_hashes (
    log_id bigint NOT NULL,
    id bigint NOT NULL CHECK (id >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (log_id, id)
);
CREATE TABLE checkpoints (
    log_id bigint NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    note text NOT NULL,
    PRIMARY KEY (log_id, size)
);
CREATE TABLE cosignatures (
    log_id bigint NOT NULL,
    size bigint NOT NULL,
    line text NOT NULL,
    witness text NOT NULL,
    n bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (log_id, size, line)
);
CREATE TABLE witness_events (
    log_id bigint NOT NULL,
    n bigint GENERATED ALWAYS AS IDENTITY,
    size bigint NOT NULL,
    witness text NOT NULL,
    outcome text NOT NULL,
    detail text NOT NULL,
    PRIMARY KEY (log_id, n)
);
CREATE TABLE record_index (
    log_id bigint NOT NULL,
    seq bigint NOT NULL,{INDEX_TABLE_COLUMNS},
    PRIMARY KEY (log_id, seq)
);
CREATE INDEX record_index_camera ON record_index (log_id, camera_id, occurred_at);
CREATE INDEX record_index_owner ON record_index (log_id, owner_id, occurred_at);
CREATE INDEX record_index_time ON record_index (log_id, occurred_at);
CREATE INDEX cosignatures_witness ON cosignatures (log_id, witness, size);
"""

# Row triggers refuse UPDATE and DELETE (an upsert's DO UPDATE fires them too),
# statement triggers refuse TRUNCATE. PostgreSQL has no INSERT OR REPLACE, so a
# primary key refuses an insert over a stored row. The head row may only move
# its size forward: the condition is the trigger's WHEN clause, which the
# executor evaluates without calling PL/pgSQL, so the update every commit makes
# to every log it touches calls no function (about 20 us of server time each).
_TRIGGERS = """
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'disclosure ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE FUNCTION refuse_head_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'disclosure ledger is append-only: % on logs refused'
        ' (only a forward move of a log''s size is allowed)', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER logs_head_only BEFORE UPDATE ON logs FOR EACH ROW
    WHEN (NEW.log_id <> OLD.log_id OR NEW.origin <> OLD.origin OR NEW.log_key <> OLD.log_key
        OR NEW.created_at <> OLD.created_at OR NEW.size < OLD.size)
    EXECUTE FUNCTION refuse_head_change();
CREATE TRIGGER logs_no_delete BEFORE DELETE ON logs
    FOR EACH ROW EXECUTE FUNCTION refuse_head_change();
CREATE TRIGGER logs_no_truncate BEFORE TRUNCATE ON logs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
"""


def _table_triggers() -> str:
    out = []
    for table in _APPEND_ONLY_TABLES:
        out.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION refuse_change();\n"
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();\n"
        )
    return "".join(out)


SCHEMA_DDL = (
    "CREATE SCHEMA disclosure_ledger;\nSET LOCAL search_path = disclosure_ledger;\n"
    + _TABLES
    + _TRIGGERS
    + _table_triggers()
)
"""The DDL of the schema; the store runs it, then adds the format row, in one transaction."""
