"""The PostgreSQL store's own tests: many logs in one database, its schema, its guarantees.

The storage contract itself is tested in test_store_contract.py (its
``postgres`` factory). These are what only a database of many logs has: logs
kept apart, one transaction over several logs, the schema's format version,
the append-only triggers, and errors that never show a password.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from disclosure_ledger._core import merkle
from disclosure_ledger._core.merkle import CompactRange
from disclosure_ledger._store.base import SequencingTxn
from disclosure_ledger._store.pg_database import PostgresDatabase
from disclosure_ledger._store.pg_schema import FORMAT_VERSION, log_id_of, redact_url
from disclosure_ledger._store.postgres import PostgresStore
from disclosure_ledger._store.sqlite import UPPER_LEVEL, stored_hash_count
from disclosure_ledger.errors import DuplicateEventError, StorageError

from . import reference
from .pg_server import PgServer


def _meta(origin: str) -> dict[str, str]:
    return {"origin": origin, "log_key": f"key-of-{origin}"}


@pytest.fixture
def db(pg_url: str) -> Iterator[PostgresDatabase]:
    database = PostgresDatabase.connect(pg_url, create_schema=True, pool_size=4)
    yield database
    database.close()


def _leaf(tag: str, i: int) -> bytes:
    return f"{tag} leaf {i}".encode()


def _fill(txn: SequencingTxn, tag: str, count: int) -> int:
    """Append ``count`` leaves of ``tag`` in a sequencing transaction, as the write path does."""
    size = txn.size()
    tree = CompactRange(size, txn.frontier(merkle.subtree_ids(0, size)))
    first = stored_hash_count(size)
    run: list[bytes] = []
    upper: list[tuple[int, bytes]] = []
    leaves = [_leaf(tag, size + k) for k in range(count)]
    for leaf in leaves:
        new = tree.append_nodes(merkle.leaf_hash(leaf))
        at = first + len(run)
        upper += [(at + j, new[j]) for j in range(UPPER_LEVEL, len(new))]
        run += new
    txn.insert_records(size, leaves, [f"{tag}-{size + k}" for k in range(count)])
    txn.insert_runs([(first, b"".join(run))])
    txn.insert_upper(upper)
    txn.insert_checkpoint(tree.size, f"{tag} checkpoint {tree.size}")
    return tree.size


def _superuser(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True, options="-c search_path=disclosure_ledger")


def test_logs_in_one_database_are_kept_apart(db: PostgresDatabase) -> None:
    a = PostgresStore.create_in(db, _meta("vendor.example/owner-a"))
    b = PostgresStore.create_in(db, _meta("vendor.example/owner-b"))
    with a.append_txn() as txn:
        _fill(txn, "a", 70)
    with b.append_txn() as txn:
        _fill(txn, "b", 3)
    assert (a.size(), b.size()) == (70, 3)
    assert list(b.iter_leaves(0, 3)) == [_leaf("b", i) for i in range(3)]
    assert b.checkpoint_sizes() == [3]
    assert b.hash_count() == stored_hash_count(3)
    assert b.upper_count() == 0
    assert a.upper_count() > 0
    assert b.event_id_seqs(["a-1", "b-1"]) == {"b-1": 1}
    # One log's event IDs do not collide with another's.
    with b.append_txn() as txn:
        txn.insert_records(3, [b"x"], ["a-1"])
        txn.insert_runs([(stored_hash_count(3), merkle.leaf_hash(b"x"))])
        txn.insert_checkpoint(4, "b checkpoint 4")
    leaves = [_leaf("a", i) for i in range(70)]
    assert merkle.tree_root(70, a) == reference.mth(leaves)
    assert db.logs() == [("vendor.example/owner-a", 70), ("vendor.example/owner-b", 4)]


def test_one_transaction_appends_to_several_logs_or_to_none(db: PostgresDatabase) -> None:
    stores = [PostgresStore.create_in(db, _meta(f"vendor.example/owner-{i}")) for i in range(3)]
    logs = [(s.log_id, s.address) for s in stores]
    with db.transaction(logs[::-1]) as txns:  # locked in log ID order whatever the order given
        assert sorted(txns) == sorted(s.log_id for s in stores)
        for i, s in enumerate(stores):
            _fill(txns[s.log_id], f"t{i}", i + 1)
    assert [s.size() for s in stores] == [1, 2, 3]

    def fail_on_the_last() -> None:
        with db.transaction(logs) as txns:
            _fill(txns[stores[0].log_id], "t0", 5)
            _fill(txns[stores[1].log_id], "t1", 5)
            _fill(txns[stores[2].log_id], "t0", 1)  # an event ID of another log: allowed
            txns[stores[2].log_id].insert_checkpoint(3, "a second checkpoint of size 3")

    with pytest.raises(StorageError):
        fail_on_the_last()
    assert [s.size() for s in stores] == [1, 2, 3]
    assert [s.checkpoint_sizes() for s in stores] == [[1], [2], [3]]


def test_a_log_that_exists_or_does_not_is_named(db: PostgresDatabase, pg_url: str) -> None:
    PostgresStore.create_in(db, _meta("vendor.example/owner-a"))
    with pytest.raises(StorageError, match=r"the log 'vendor\.example/owner-a' already exists"):
        PostgresStore.create_in(db, _meta("vendor.example/owner-a"))
    with pytest.raises(StorageError, match=r"no log 'vendor\.example/nobody' in this database"):
        PostgresStore.open(pg_url, "vendor.example/nobody")


def test_a_database_without_the_schema_is_refused_until_init(pg_url: str) -> None:
    with pytest.raises(StorageError, match="no disclosure ledger schema"):
        PostgresStore.open(pg_url, "vendor.example/owner-a")
    with pytest.raises(StorageError, match="no disclosure ledger schema"):
        PostgresDatabase.connect(pg_url, readonly=True, create_schema=True)
    PostgresStore.create(pg_url, _meta("vendor.example/owner-a")).close()
    # Creating the schema again (a second log, another process) is a no-op.
    PostgresStore.create(pg_url, _meta("vendor.example/owner-b")).close()
    store = PostgresStore.open(pg_url, "vendor.example/owner-b", readonly=True)
    assert store.meta()["origin"] == "vendor.example/owner-b"
    store.close()


@pytest.mark.parametrize(
    ("version", "match"),
    [(FORMAT_VERSION + 1, "newer than this library's"), (0, "is not supported")],
    ids=["newer", "older"],
)
def test_a_schema_of_another_format_version_is_refused(
    pg_url: str, version: int, match: str
) -> None:
    PostgresStore.create(pg_url, _meta("vendor.example/owner-a")).close()
    with _superuser(pg_url) as conn:
        # A later release's migration; the trigger guards the row against anyone else.
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("UPDATE format SET version = %s", (version,))
        conn.execute("ALTER TABLE format DISABLE TRIGGER USER")
        conn.execute("UPDATE format SET version = %s", (version,))
    with pytest.raises(StorageError, match=match):
        PostgresStore.open(pg_url, "vendor.example/owner-a")
    with pytest.raises(StorageError, match=match):
        PostgresStore.create(pg_url, _meta("vendor.example/owner-b"))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET leaf = 'x'::bytea",
        "DELETE FROM records",
        "TRUNCATE records",
        "DELETE FROM event_ids",
        "UPDATE hashes SET run = run",
        "DELETE FROM checkpoints",
        "TRUNCATE cosignatures",
        "UPDATE logs SET size = size - 1",
        "UPDATE logs SET origin = 'elsewhere'",
        "UPDATE logs SET log_id = log_id + 1",
        "UPDATE logs SET created_at = created_at - interval '1 day'",
        "DELETE FROM logs",
        "TRUNCATE logs CASCADE",
        "INSERT INTO records (log_id, seq, leaf) SELECT log_id, 0, 'x'::bytea FROM logs",
        "INSERT INTO logs (log_id, origin, log_key) SELECT log_id, origin, 'k' FROM logs"
        " ON CONFLICT (log_id) DO UPDATE SET log_key = 'k'",
    ],
)
def test_every_table_is_append_only(db: PostgresDatabase, pg_url: str, statement: str) -> None:
    store = PostgresStore.create_in(db, _meta("vendor.example/owner-a"))
    with store.append_txn() as txn:
        _fill(txn, "a", 3)
    with _superuser(pg_url) as conn, pytest.raises(psycopg.errors.IntegrityError):
        conn.execute(statement)
    assert list(store.iter_leaves(0, 3)) == [_leaf("a", i) for i in range(3)]
    assert store.size() == 3
    assert store.meta()["log_key"] == "key-of-vendor.example/owner-a"


def test_the_head_row_moves_forward_only_with_records(db: PostgresDatabase) -> None:
    store = PostgresStore.create_in(db, _meta("vendor.example/owner-a"))
    with store.append_txn() as txn:
        _fill(txn, "a", 2)
    with pytest.raises(StorageError, match="must go at 2, not 5"), store.append_txn() as txn:
        txn.insert_records(5, [b"gap"], ["gap"])
    with pytest.raises(DuplicateEventError), store.append_txn() as txn:
        txn.insert_records(2, [b"again"], ["a-0"])
    assert store.size() == 2


def test_a_read_only_database_writes_nothing(db: PostgresDatabase, pg_url: str) -> None:
    PostgresStore.create_in(db, _meta("vendor.example/owner-a"))
    ro = PostgresDatabase.connect(pg_url, readonly=True)
    try:
        with pytest.raises(StorageError, match="read-only"):
            PostgresStore.create_in(ro, _meta("vendor.example/owner-b"))
        store = PostgresStore.open_in(ro, "vendor.example/owner-a")
        with pytest.raises(StorageError, match="read-only"):
            store.add_witness_event(0, "w", "x", "")
    finally:
        ro.close()


def test_errors_name_the_database_but_never_its_password(postgres_server: PgServer) -> None:
    secret = "s3cret-pw"  # noqa: S105 - the point of the test
    url = postgres_server.url_for("postgres").replace("postgres@", f"postgres:{secret}@", 1)
    refused = "postgresql://ledger:" + secret + "@127.0.0.1:1/vendor"
    for bad in (refused, url.replace("/postgres", "/no_such_database"), refused + "?sslmode=bogus"):
        with pytest.raises(StorageError) as caught:
            PostgresStore.open(bad, "vendor.example/owner-a")
        message = str(caught.value)
        assert secret not in message
        assert "***" in message
        assert "\n" not in message
    with pytest.raises(StorageError, match="not a postgresql:// URL"):
        PostgresStore.open("mysql://root:" + secret + "@host/db", "o")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgresql://u@h/db?password=pw&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("postgresql://h/db", "postgresql://h/db"),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_log_ids_are_derived_from_origins() -> None:
    assert log_id_of("vendor.example/owner-a") == log_id_of("vendor.example/owner-a")
    assert log_id_of("vendor.example/owner-a") != log_id_of("vendor.example/owner-b")
    assert -(2**63) <= log_id_of("x") < 2**63


@pytest.mark.parametrize("ci", ["", "true"], ids=["outside-ci", "in-ci"])
def test_without_a_server_the_tests_skip_loudly_or_fail_in_ci(tmp_path: Path, ci: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DL_TEST_POSTGRES_URL", "CI")}
    env |= {"DL_TEST_POSTGRES_BINDIR": str(tmp_path / "no-postgres-here"), "CI": ci}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_postgres_store.py::test_a_read_only_database_writes_nothing"],
        cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert "POSTGRESQL TESTS NOT RUN: no initdb found" in proc.stdout
    if ci:
        assert proc.returncode != 0
        assert "CI=true requires them" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout
        assert proc.stdout.startswith("s")  # the one test, skipped


@pytest.mark.parametrize("cap", [3, 1 << 16])
def test_proofs_read_upper_nodes_from_memory_or_past_its_cap(
    db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    # Upper nodes are kept in memory up to a cap (then queried by key); lower
    # ones are read a cluster at a time, from runs that small commits split.
    from disclosure_ledger._store import pg_reader

    monkeypatch.setattr(pg_reader, "_UPPER_MEMORY_MAX", cap)
    store = PostgresStore.create_in(db, _meta("vendor.example/owner-cap"))
    reader = PostgresStore.open_in(db, "vendor.example/owner-cap")
    size = 0
    for count in (130, 7, 1, 200, 3):
        with store.append_txn() as txn:
            size = _fill(txn, "c", count)
        leaves = [_leaf("c", i) for i in range(size)]
        for index in (0, 63, 64, 129, size // 2, size - 1):
            assert merkle.prove_inclusion(index, size, reader) == reference.path(index, leaves)
        for old in (1, 64, 137, size):
            if old <= size:
                assert merkle.prove_consistency(old, size, reader) == reference.proof(old, leaves)
    assert len(reader._upper) == min(cap, reader.upper_count())  # the cap held
    with pytest.raises(StorageError, match="not stored"):
        reader.read_hashes([merkle.NodeId(UPPER_LEVEL, size >> UPPER_LEVEL)])


def _fill_in_chunks(txn: SequencingTxn, tag: str, chunks: list[int], ids: list[str]) -> int:
    """As _fill, in several insert calls (as the committer stores chunks as they are signed)."""
    size = txn.size()
    tree = CompactRange(size, txn.frontier(merkle.subtree_ids(0, size)))
    for count in chunks:
        first, start = stored_hash_count(tree.size), tree.size
        run: list[bytes] = []
        upper: list[tuple[int, bytes]] = []
        leaves = [_leaf(tag, start + k) for k in range(count)]
        for leaf in leaves:
            new = tree.append_nodes(merkle.leaf_hash(leaf))
            upper += [(first + len(run) + j, new[j]) for j in range(UPPER_LEVEL, len(new))]
            run += new
        txn.insert_records(start, leaves, ids[start - size : start - size + count])
        txn.insert_runs([(first, b"".join(run))])
        txn.insert_upper(upper)
    txn.insert_checkpoint(tree.size, f"{tag} checkpoint {tree.size}")
    return tree.size


def test_a_large_commit_sends_records_ahead_and_still_commits_all_or_nothing(
    db: PostgresDatabase,
) -> None:
    store = PostgresStore.create_in(db, _meta("vendor.example/owner-big"))
    chunks = [300, 300, 5, 400]
    ids = [f"big-{i}" for i in range(sum(chunks))]
    with store.append_txn() as txn:
        size = _fill_in_chunks(txn, "big", chunks, ids)
    leaves = [_leaf("big", i) for i in range(size)]
    assert store.size() == size == 1005
    assert list(store.iter_leaves(0, size)) == leaves
    assert store.event_id_seqs(["big-0", "big-700", "big-1004"]) == {
        "big-0": 0, "big-700": 700, "big-1004": 1004,
    }  # fmt: skip
    for index in (0, 299, 300, 605, 1004):
        assert merkle.prove_inclusion(index, size, store) == reference.path(index, leaves)
    # A duplicate in the last part fails the commit after the first parts were
    # sent: none of it is written.
    more = [f"more-{i}" for i in range(700)]
    more[650] = "big-3"
    with pytest.raises(DuplicateEventError), store.append_txn() as txn:
        _fill_in_chunks(txn, "more", [300, 300, 100], more)
    assert store.size() == size
    assert store.event_id_seqs(["more-0", "more-299"]) == {}
    assert store.hash_count() == stored_hash_count(size)
    assert store.checkpoint_sizes() == [size]
