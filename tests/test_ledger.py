"""The write path: appends, group commit, proofs, check, concurrency, crashes, bad input."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from disclosure_ledger._core import merkle
from disclosure_ledger._core.checkpoints import cosign_checkpoint, open_checkpoint, verify_receipt
from disclosure_ledger._core.notes import Signer, generate_signer
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._store.sqlite import SQLiteStore, stored_hash_count
from disclosure_ledger.errors import (
    BadSignatureError,
    ChainBreakError,
    DuplicateEventError,
    InconsistentCheckpointError,
    LedgerError,
    MalformedError,
    RollbackError,
    RootMismatchError,
    StorageError,
    UntrustedKeyError,
    ValidationError,
    VerificationError,
)

from .cli_helpers import assert_one_line_error, run
from .ledger_helpers import (
    ORIGIN,
    event,
    forked_ledgers,
    log_key,
    new_ledger,
    release_event,
    witness_key,
    writer_key,
)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = new_ledger(tmp_path)
    yield led
    led.close()


def test_append_returns_durable_receipt_under_checkpoint(ledger: Ledger) -> None:
    r = ledger.append(event(0))
    assert r.index == 0
    assert r.event_id == "ev-00000000"
    assert r.checkpoint.checkpoint.size == 1
    assert r.leaf_hash == merkle.leaf_hash(ledger.leaf(0))
    merkle.verify_inclusion(r.leaf_hash, 0, 1, [], r.checkpoint.checkpoint.root)
    assert ledger.size == 1
    rec = ledger.record(0)
    assert rec.event.event_id == "ev-00000000"
    assert rec.envelope.seq == 0
    assert rec.envelope.key_id == writer_key().key_id


def test_empty_ledger_has_signed_checkpoint(ledger: Ledger) -> None:
    cp = ledger.latest_checkpoint()
    assert cp.checkpoint.size == 0
    assert cp.checkpoint.root == merkle.EMPTY_ROOT
    assert cp.checkpoint.origin == ORIGIN


def test_append_many_is_sequenced_chained_and_checkpointed(ledger: Ledger) -> None:
    receipts = ledger.append_many([event(i) for i in range(50)])
    assert [r.index for r in receipts] == list(range(50))
    assert ledger.size == 50
    envs = [ledger.record(i).envelope for i in range(50)]
    for i in range(1, 50):
        assert envs[i].prev == envs[i - 1].chain_hash
    store = merkle.MemoryHashStore()
    store.extend(merkle.leaf_hash(ledger.leaf(i)) for i in range(50))
    assert ledger.latest_checkpoint().checkpoint.root == merkle.tree_root(50, store)
    report = ledger.check()
    assert report.size == 50


def test_records_signed_by_log_key_without_writers(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "l.ledger", log_key=log_key()) as led:
        led.append(event(1))
        assert led.record(0).envelope.key_id == log_key().key_id
        led.check()


def test_duplicate_event_id_refused_and_nothing_written(ledger: Ledger) -> None:
    ledger.append(event(1))
    with pytest.raises(DuplicateEventError):
        ledger.append(event(1))
    with pytest.raises(DuplicateEventError):
        ledger.append_many([event(2), event(1)])
    with pytest.raises(DuplicateEventError):
        ledger.append_many([event(3), event(3)])
    assert ledger.size == 1
    ledger.append(event(2))
    assert ledger.size == 2
    ledger.check()


def test_invalid_event_names_field_and_appends_nothing(ledger: Ledger) -> None:
    bad = event(1)
    bad["actor"] = {"kind": "martian"}
    with pytest.raises(ValidationError) as info:
        ledger.append_many([event(0), bad])
    assert info.value.field == "$[1].actor.kind"
    assert ledger.size == 0
    with pytest.raises(ValidationError) as info:
        ledger.append(bad)
    assert info.value.field == "$.actor.kind"
    assert ledger.size == 0


def test_proofs_reach_past_the_upper_levels(tmp_path: Path) -> None:
    # Nodes over 64 leaves or more are read from their own table, the rest from
    # runs of hashes; commits of odd sizes put run boundaries everywhere.
    with new_ledger(tmp_path, "l.ledger") as led:
        start = 0
        for n in (1, 255, 256, 3, 64, 121):
            led.append_many([event(start + k) for k in range(n)])
            start += n
        assert led.size == 700
        led.check()
    with Ledger.open(tmp_path / "l.ledger", readonly=True) as led:  # cold caches
        sizes = led.checkpoint_sizes()
        for size in sizes[1:]:
            root = led.checkpoint(size).checkpoint.root
            for i in sorted({0, 1, 63, 64, 127, 255, 256, 511, size // 2, size - 1}):
                if i < size:
                    proof = led.inclusion_proof(i, size)
                    merkle.verify_inclusion(merkle.leaf_hash(led.leaf(i)), i, size, proof, root)
            for old in sizes[1:]:
                if old <= size:
                    old_root = led.checkpoint(old).checkpoint.root
                    proof = led.consistency_proof(old, size)
                    merkle.verify_consistency(old, size, old_root, root, proof)


def test_runs_of_hashes_start_at_blocks_of_64_leaves(tmp_path: Path) -> None:
    # A proof's nodes below level 6 then come from one run.

    with new_ledger(tmp_path, "l.ledger") as led:
        led.append_many([event(i) for i in range(10)])
        led.append_many([event(i) for i in range(10, 210)])
    conn = sqlite3.connect(tmp_path / "l.ledger")
    firsts = [r[0] for r in conn.execute("SELECT first FROM hashes ORDER BY first")]
    conn.close()
    assert firsts == [stored_hash_count(n) for n in (0, 10, 64, 128, 192)]


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        (
            "UPDATE upper_hashes SET hash = zeroblob(32)"
            " WHERE id = (SELECT MIN(id) FROM upper_hashes)",
            RootMismatchError,
        ),
        ("DELETE FROM upper_hashes WHERE id = (SELECT MAX(id) FROM upper_hashes)", StorageError),
        ("INSERT INTO upper_hashes (id, hash) VALUES (1, zeroblob(32))", StorageError),
    ],
    ids=["replaced", "dropped", "added"],
)
def test_check_catches_tampered_upper_hashes(
    tmp_path: Path, sql: str, error: type[Exception]
) -> None:
    path = tmp_path / "l.ledger"
    with new_ledger(tmp_path, "l.ledger") as led:
        led.append_many([event(i) for i in range(130)])
        led.check()
    _tamper(path, sql)
    with Ledger.open(path) as led, pytest.raises(error):
        led.check()


def test_group_commit_threads_share_commits(ledger: Ledger) -> None:
    per_thread = 60
    threads = 8
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for k in range(per_thread):
                ledger.append(event(t * 1000 + k))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert not errors
    assert ledger.size == per_thread * threads
    # Fewer checkpoints than records means commits were shared.
    assert len(ledger.checkpoint_sizes()) - 1 < per_thread * threads
    ledger.check()


def test_inclusion_and_consistency_proofs_at_checkpointed_sizes(ledger: Ledger) -> None:
    for k in range(6):
        ledger.append_many([event(k * 10 + j) for j in range(k + 1)])
    sizes = ledger.checkpoint_sizes()
    assert sizes == [0, 1, 3, 6, 10, 15, 21]
    for size in sizes[1:]:
        root = ledger.checkpoint(size).checkpoint.root
        for i in range(size):
            proof = ledger.inclusion_proof(i, size)
            merkle.verify_inclusion(merkle.leaf_hash(ledger.leaf(i)), i, size, proof, root)
    for old in sizes[1:]:
        for new in sizes:
            if new < old:
                continue
            proof = ledger.consistency_proof(old, new)
            merkle.verify_consistency(
                old,
                new,
                ledger.checkpoint(old).checkpoint.root,
                ledger.checkpoint(new).checkpoint.root,
                proof,
            )
    with pytest.raises(StorageError):
        ledger.inclusion_proof(0, 2)  # 2 is not a checkpointed size
    with pytest.raises(MalformedError):
        ledger.inclusion_proof(21, 21)


def test_receipt_verifies_offline_and_tampered_receipt_fails(ledger: Ledger) -> None:
    ledger.append_many([event(i) for i in range(9)] + [release_event(9)])
    receipt = ledger.receipt(9)
    verified = verify_receipt(receipt, log_key().verifier)
    assert verified.index == 9
    assert verified.leaf == ledger.leaf(9)
    tampered = bytearray(receipt.extra or b"")
    tampered[-70] ^= 1
    from dataclasses import replace

    with pytest.raises(RootMismatchError):
        verify_receipt(replace(receipt, extra=bytes(tampered)), log_key().verifier)


def _assert_queries(led: Ledger) -> None:
    from datetime import UTC, datetime

    assert [r.index for r in led.query(camera_id="cam-0")] == [0, 3, 6, 9, 12]
    assert len(led.query(owner_id="owner-42")) == 13
    assert [r.index for r in led.query(legal_basis="warrant")] == [12]
    assert [r.index for r in led.query(recipient="Springfield PD")] == [12]
    assert [r.index for r in led.query(recipient="law_enforcement")] == [12]
    assert [r.index for r in led.query(actor_kind="vendor_employee", limit=2)] == [0, 1]
    assert [r.index for r in led.query(camera_id="cam-0", limit=4)] == [0, 3, 6, 9]
    since = datetime(2026, 11, 27, 9, 35, tzinfo=UTC)
    until = datetime(2026, 11, 27, 9, 38, tzinfo=UTC)
    assert [r.index for r in led.query(since=since, until=until)] == [5, 6, 7]
    assert [r.index for r in led.query(camera_id="cam-1", since=since, until=until)] == [7]
    assert led.query(camera_id="cam-nowhere") == []
    with pytest.raises(MalformedError):
        led.query(since=datetime(2026, 1, 1))


@pytest.mark.parametrize("indexed_before", [None, 0, 6, 13])
def test_queries(tmp_path: Path, indexed_before: int | None) -> None:
    # None: a writable ledger, which brings its index up to date. Otherwise a
    # read-only one whose index covers only the first `indexed_before` records:
    # the rest are decoded and filtered one by one, with the same answers.
    evs = [event(i) for i in range(12)] + [release_event(12, "warrant")]
    with new_ledger(tmp_path, "l.ledger") as led:
        if indexed_before is None:
            led.append_many(evs)
            _assert_queries(led)
            return
        if indexed_before:
            led.append_many(evs[:indexed_before])
            assert led.update_index() == indexed_before
        led.append_many(evs[indexed_before:])
    store = SQLiteStore.open(tmp_path / "l.ledger", readonly=True)
    assert store.indexed_size() == indexed_before
    store.close()
    with Ledger.open(tmp_path / "l.ledger", readonly=True) as ro:
        _assert_queries(ro)
        with pytest.raises(LedgerError, match="read-only"):
            ro.update_index()


def test_reopen_continues_chain_and_tree(tmp_path: Path) -> None:
    path = tmp_path / "l.ledger"
    with Ledger.create(path, log_key=log_key(), writers=[writer_key()]) as led:
        led.append_many([event(i) for i in range(5)])
    with Ledger.open(path, log_key=log_key(), writers=[writer_key()]) as led:
        led.append_many([event(i) for i in range(5, 9)])
        assert led.size == 9
        led.check()


def test_open_with_wrong_log_key_or_origin_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.ledger"
    new_ledger(tmp_path, "l.ledger").close()
    with pytest.raises(StorageError, match="log key"):
        Ledger.open(path, log_key=generate_signer(ORIGIN))
    with pytest.raises(StorageError, match="origin"):
        Ledger.open(path, log_key=log_key(), origin="other.example/log")
    with Ledger.open(path) as led:
        led.check()


def test_not_a_ledger_missing_and_directory(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ledger"
    junk.write_bytes(b"hello, this is not SQLite\n" * 10)
    with pytest.raises(StorageError, match="not a disclosure ledger"):
        Ledger.open(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StorageError, match="not a disclosure ledger"):
        Ledger.open(other)
    with pytest.raises(StorageError, match="no such"):
        Ledger.open(tmp_path / "missing.ledger")
    with pytest.raises(StorageError, match="directory"):
        Ledger.open(tmp_path)
    with pytest.raises(StorageError, match="exists"):
        Ledger.create(junk, log_key=log_key())
    assert junk.read_bytes().startswith(b"hello")


def test_readonly_file_gets_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "l.ledger"
    new_ledger(tmp_path, "l.ledger").close()
    if os.geteuid() == 0:
        # Root ignores permission bits; open the file read-only explicitly instead.
        with Ledger.open(path, readonly=True, log_key=log_key()) as led:
            with pytest.raises(StorageError, match=r"read-only|readonly"):
                led.append(event(1))
            assert led.size == 0
        return
    path.chmod(0o444)
    with pytest.raises(StorageError, match="read-only"):
        Ledger.open(path, log_key=log_key())


def test_append_only_triggers_refuse_update_and_delete(ledger: Ledger) -> None:
    ledger.append_many([event(i) for i in range(3)])
    conn = sqlite3.connect(ledger.path)
    for sql in (
        "UPDATE records SET leaf = x'00' WHERE seq = 0",
        "DELETE FROM records WHERE seq = 2",
        "UPDATE hashes SET run = x'00' WHERE first = 0",
        "DELETE FROM hashes",
        "DELETE FROM checkpoints",
        "UPDATE checkpoints SET note = 'x'",
        "UPDATE meta SET value = 'x'",
        "DELETE FROM writers",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()
    ledger.check()


# -- the append-only triggers against every SQL path that replaces a row ----------------

# For each table: the columns that pick one stored row, the column a replacement
# would change and its new value. Every table of the file is here.
_TABLE_ROWS: dict[str, tuple[tuple[str, ...], str, object]] = {
    "meta": (("key",), "value", "x"),
    "writers": (("vkey",), "added_at_size", 999),
    "records": (("seq",), "leaf", b"\x00"),
    "event_ids": (("event_id",), "seq", 999),
    "hashes": (("first",), "run", b"\x07" * 32),
    "upper_hashes": (("id",), "hash", b"\x07" * 32),
    "checkpoints": (("size",), "note", "x"),
    "cosignatures": (("size", "line"), "witness", "x"),
    "witness_events": (("id",), "outcome", "x"),
    "record_index": (("seq",), "camera_id", "cam-elsewhere"),
}
# Rowid tables whose rowid is not their key: a REPLACE can name the rowid.
_ROWID_TABLES = ("meta", "writers", "cosignatures")


@pytest.fixture(scope="module")
def full_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with a row in every table (upper hashes need 64 records or more)."""
    path = tmp_path_factory.mktemp("full") / "l.ledger"
    witness = witness_key()
    with Ledger.create(path, log_key=log_key(), writers=[writer_key()]) as led:
        led.append_many([event(i) for i in range(70)])
        led.update_index()
        cp = led.latest_checkpoint().checkpoint
        line = cosign_checkpoint(cp, witness, 1_800_000_000)
        assert led.add_cosignatures(cp.size, [line], [witness.verifier]) == 1
        led.record_witness_event(cp.size, witness.verifier.vkey, "cosigned", "")
    return path


def _snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for table in _TABLE_ROWS:
        rowid = "" if table == "event_ids" else "rowid, "
        out[table] = conn.execute(f"SELECT {rowid}* FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
    return out


def _replacements(conn: sqlite3.Connection, table: str) -> list[tuple[str, tuple[object, ...]]]:
    """Every statement that would replace, rewrite or remove a stored row of ``table``."""
    keys, col, value = _TABLE_ROWS[table]
    rowid = "" if table == "event_ids" else "rowid AS rowid_, "  # event_ids is WITHOUT ROWID
    cur = conn.execute(f"SELECT {rowid}* FROM {table} ORDER BY 1 LIMIT 1")  # noqa: S608
    names = [d[0] for d in cur.description]
    row = dict(zip(names, cur.fetchone(), strict=True))
    cols = [n for n in names if n != "rowid_"]
    changed = tuple(value if c == col else row[c] for c in cols)
    columns, marks = ", ".join(cols), ", ".join("?" * len(cols))
    where = " AND ".join(f"{k} = ?" for k in keys)
    key_args = tuple(row[k] for k in keys)
    insert = f"INTO {table} ({columns}) VALUES ({marks})"
    out = [
        (f"INSERT OR REPLACE {insert}", changed),
        (f"REPLACE {insert}", changed),
        (f"INSERT {insert} ON CONFLICT DO UPDATE SET {col} = excluded.{col}", changed),
        (f"INSERT {insert} ON CONFLICT DO NOTHING", changed),
        (f"INSERT OR IGNORE {insert}", changed),
        (f"INSERT {insert}", changed),
        (f"UPDATE OR REPLACE {table} SET {col} = ? WHERE {where}", (value, *key_args)),  # noqa: S608
        (f"UPDATE {table} SET {col} = ? WHERE {where}", (value, *key_args)),  # noqa: S608
        (f"DELETE FROM {table} WHERE {where}", key_args),  # noqa: S608
    ]
    if table in _ROWID_TABLES:
        # Another key, the same rowid: REPLACE would delete the stored row.
        other = tuple(f"{v}-other" if c in keys else v for c, v in zip(cols, changed, strict=True))
        rowid_insert = f"INTO {table} (rowid, {columns}) VALUES (?, {marks})"
        out.append((f"INSERT OR REPLACE {rowid_insert}", (row["rowid_"], *other)))
    return out


@pytest.mark.parametrize("table", list(_TABLE_ROWS))
def test_append_only_triggers_refuse_every_replacement(full_ledger: Path, table: str) -> None:
    conn = sqlite3.connect(full_ledger, isolation_level=None)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == set(_TABLE_ROWS), "every table of the file must be tested"
        before = _snapshot(conn)
        for sql, args in _replacements(conn, table):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql, args)
            assert _snapshot(conn) == before, sql
    finally:
        conn.close()
    with Ledger.open(full_ledger, readonly=True) as led:
        led.check()


@pytest.mark.parametrize("table", [t for t in _TABLE_ROWS if t != "event_ids"])
def test_append_only_triggers_refuse_negative_rowids(full_ledger: Path, table: str) -> None:
    # In a BEFORE INSERT trigger an automatic rowid reads as -1; a stored row at
    # -1 would make honest inserts look like overwrites, so none may exist.
    conn = sqlite3.connect(full_ledger, isolation_level=None)
    try:
        before = _snapshot(conn)
        cols = [d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 1").description]  # noqa: S608
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(
                f"INSERT INTO {table} (rowid, {', '.join(cols)})"  # noqa: S608
                f" SELECT -1, {', '.join(cols)} FROM {table} ORDER BY rowid LIMIT 1"
            )
        assert _snapshot(conn) == before
    finally:
        conn.close()


def test_appends_and_repeated_cosignatures_pass_the_insert_triggers(tmp_path: Path) -> None:
    witness = witness_key()
    with new_ledger(tmp_path) as led:
        led.append_many([event(i) for i in range(3)])
        led.append(event(3))  # the writer key is registered again: skipped, not refused
        cp = led.latest_checkpoint().checkpoint
        line = cosign_checkpoint(cp, witness, 1_800_000_000)
        assert led.add_cosignatures(cp.size, [line, line], [witness.verifier]) == 1
        assert led.add_cosignatures(cp.size, [line], [witness.verifier]) == 0
        assert led.writer_verifiers()[0] == writer_key().verifier
        assert len(led.writer_verifiers()) == 2  # the writer and the log key
        led.check()


def test_opening_an_older_file_for_writing_adds_the_insert_triggers(tmp_path: Path) -> None:
    path = tmp_path / "l.ledger"
    with new_ledger(tmp_path, "l.ledger") as led:
        led.append_many([event(i) for i in range(3)])
    # A file written before the INSERT triggers existed has only the UPDATE and DELETE ones.
    conn = sqlite3.connect(path, isolation_level=None)
    new = [
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        if not name.endswith(("_no_update", "_no_delete"))
    ]
    assert len(new) == 14
    for name in new:
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.close()

    def replace_refused() -> bool:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN")
            conn.execute("INSERT OR REPLACE INTO records (seq, leaf) VALUES (0, x'00')")
        except sqlite3.DatabaseError as err:
            refused = "append-only" in str(err)
        else:
            refused = False
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return refused

    assert not replace_refused()  # the gap the INSERT triggers close
    with Ledger.open(path, readonly=True) as led:
        led.check()  # a read-only open changes nothing
    assert not replace_refused()
    with Ledger.open(path) as led:
        led.check()
    assert replace_refused()
    conn = sqlite3.connect(path)
    names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    conn.close()
    assert set(new) <= names


def _tamper(path: Path, sql: str, args: tuple[object, ...] = ()) -> None:
    # An attacker with the file can drop the triggers; check() must still notice.
    conn = sqlite3.connect(path)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute(sql, args)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("what", "error"),
    [
        ("flip a signature bit", BadSignatureError),
        ("flip an event bit", BadSignatureError),
        ("swap two records", ChainBreakError),
        ("replace a stored hash", RootMismatchError),
        ("drop a run of stored hashes", StorageError),
        ("add an overlapping run of hashes", StorageError),
        ("rewrite a checkpoint root", (BadSignatureError, RootMismatchError)),
        ("delete the last record", (StorageError, RootMismatchError)),
        ("file a record under another camera", VerificationError),
        ("drop a record from the query index", VerificationError),
        ("register an event ID to another record", VerificationError),
        ("unregister an event ID", VerificationError),
        ("register an extra event ID", StorageError),
        ("index a record that does not exist", StorageError),
    ],
)
def test_check_catches_tampering(tmp_path: Path, what: str, error: type[Exception]) -> None:
    path = tmp_path / "l.ledger"
    with new_ledger(tmp_path, "l.ledger") as led:
        led.append_many([event(i) for i in range(10)])
        led.append_many([event(i) for i in range(10, 13)])
        assert led.update_index() == 13
        led.check()
        leaf5 = led.leaf(5)
        leaf6 = led.leaf(6)
    if what == "flip a signature bit":
        bad = bytearray(leaf5)
        bad[-1] ^= 1
        _tamper(path, "UPDATE records SET leaf = ? WHERE seq = 5", (bytes(bad),))
    elif what == "flip an event bit":
        bad = bytearray(leaf5)
        bad[60] ^= 1
        _tamper(path, "UPDATE records SET leaf = ? WHERE seq = 5", (bytes(bad),))
    elif what == "swap two records":
        _tamper(path, "UPDATE records SET leaf = ? WHERE seq = 5", (leaf6,))
    elif what == "replace a stored hash":
        conn = sqlite3.connect(path)
        first, run = conn.execute(
            "SELECT first, run FROM hashes WHERE first <= 3 ORDER BY first DESC LIMIT 1"
        ).fetchone()
        conn.close()
        bad = bytearray(run)
        bad[(3 - first) * 32] ^= 1
        _tamper(path, "UPDATE hashes SET run = ? WHERE first = ?", (bytes(bad), first))
    elif what == "drop a run of stored hashes":
        _tamper(
            path, "DELETE FROM hashes WHERE first = (SELECT MIN(first) FROM hashes WHERE first > 0)"
        )
    elif what == "add an overlapping run of hashes":
        # A run starting inside another one shadows its later hashes for proofs.
        _tamper(path, "INSERT INTO hashes (first, run) VALUES (5, ?)", (b"\x07" * 64,))
    elif what == "rewrite a checkpoint root":
        conn = sqlite3.connect(path)
        note = conn.execute("SELECT note FROM checkpoints WHERE size = 10").fetchone()[0]
        conn.close()
        lines = note.split("\n")
        lines[2] = "A" * 43 + "="
        _tamper(path, "UPDATE checkpoints SET note = ? WHERE size = 10", ("\n".join(lines),))
    elif what == "delete the last record":
        _tamper(path, "DELETE FROM records WHERE seq = 12")
    elif what == "file a record under another camera":
        _tamper(path, "UPDATE record_index SET camera_id = 'cam-elsewhere' WHERE seq = 5")
    elif what == "drop a record from the query index":
        _tamper(path, "DELETE FROM record_index WHERE seq = 5")
    elif what == "register an event ID to another record":
        _tamper(path, "UPDATE event_ids SET seq = 6 WHERE seq = 5")
    elif what == "unregister an event ID":
        _tamper(path, "DELETE FROM event_ids WHERE seq = 12")
    elif what == "register an extra event ID":
        # Blocks an honest event with that ID from ever being appended.
        _tamper(path, "INSERT INTO event_ids (event_id, seq) VALUES ('evt-future', 3)")
    elif what == "index a record that does not exist":
        _tamper(
            path,
            "INSERT INTO record_index SELECT 13, logged_at, 'evt-x', camera_id, owner_id,"
            " action, actor_kind, recipient_kind, recipient_org, legal_basis, occurred_at"
            " FROM record_index WHERE seq = 12",
        )
    with Ledger.open(path) as led, pytest.raises(error):
        led.check()


def test_check_catches_record_by_unregistered_key(tmp_path: Path) -> None:
    path = tmp_path / "l.ledger"
    with new_ledger(tmp_path, "l.ledger") as led:
        led.append_many([event(i) for i in range(3)])
    _tamper(path, "DELETE FROM writers")
    with Ledger.open(path) as led, pytest.raises(UntrustedKeyError):
        led.check()


_WRITER_SCRIPT = r"""
import sys
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._core.notes import Signer
from tests.ledger_helpers import event, log_key, writer_key
path, start, count, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with Ledger.open(path, log_key=log_key(), writers=[writer_key()]) as led:
    i = start
    while i < start + count:
        n = min(batch, start + count - i)
        receipts = led.append_many([event(k) for k in range(i, i + n)])
        for r in receipts:
            sys.stdout.write(f"{r.index} {r.event_id}\n")
        sys.stdout.flush()
        i += n
"""


def _writer(path: Path, start: int, count: int, batch: int) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER_SCRIPT, str(path), str(start), str(count), str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )


def test_two_processes_append_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "l.ledger"
    new_ledger(tmp_path, "l.ledger").close()
    procs = [_writer(path, 0, 300, 7), _writer(path, 100_000, 300, 5)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    acked = [line.split() for out in outputs for line in out.splitlines()]
    assert len(acked) == 600
    assert sorted(int(i) for i, _ in acked) == list(range(600))
    with Ledger.open(path) as led:
        assert led.size == 600
        led.check()
        for index, event_id in acked:
            assert led.record(int(index)).event.event_id == event_id


def test_kill_dash_nine_loses_no_acknowledged_record(tmp_path: Path) -> None:
    path = tmp_path / "l.ledger"
    new_ledger(tmp_path, "l.ledger").close()
    acked: dict[int, str] = {}
    start = 0
    for round_ in range(4):
        proc = _writer(path, start, 100_000, 1 + round_ * 3)
        assert proc.stdout is not None
        deadline = time.monotonic() + 0.4 + 0.3 * round_
        # Read acknowledgements until the deadline, then kill without warning.
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            index, event_id = line.split()
            acked[int(index)] = event_id
        proc.send_signal(signal.SIGKILL)
        rest = proc.communicate()[0]
        # Lines already written before the kill were acknowledged too.
        for line in rest.splitlines():
            parts = line.split()
            if len(parts) == 2:
                acked[int(parts[0])] = parts[1]
        with Ledger.open(path) as led:
            led.check()
            size = led.size
            for index, event_id in acked.items():
                assert led.record(index).event.event_id == event_id
        start += 100_000
        assert size >= len(acked)
    assert len(acked) > 0
    with Ledger.open(path, log_key=log_key(), writers=[writer_key()]) as led:
        led.append(event(9_999_999))
        led.check()


def test_writer_key_must_be_note_key(tmp_path: Path) -> None:
    from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE

    with pytest.raises(MalformedError):
        Ledger.create(
            tmp_path / "x.ledger",
            log_key=log_key(),
            writers=[Signer("w.example", bytes(32), KEY_TYPE_COSIGNATURE)],
        )


def test_append_without_log_key_refused(tmp_path: Path) -> None:
    new_ledger(tmp_path, "l.ledger").close()
    with Ledger.open(tmp_path / "l.ledger") as led, pytest.raises(LedgerError):
        led.append(event(1))


def test_checkpoint_notes_open_with_log_key(ledger: Ledger) -> None:
    ledger.append_many([event(i) for i in range(4)])
    for size in ledger.checkpoint_sizes():
        note = ledger.checkpoint(size).note
        assert open_checkpoint(note, log_key().verifier).checkpoint.size == size


def test_full_disk_gets_clear_error_and_ledger_stays_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite reports a capped file exactly as a full disk (SQLITE_FULL). The cap
    # is per connection, so it is set on every connection the store opens (the
    # disk, in effect), not by reaching into the store's own.
    cap: list[int | None] = [None]
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        opened.append(conn)
        if cap[0] is not None:
            conn.execute(f"PRAGMA max_page_count = {cap[0]}")
        return conn

    opened: list[sqlite3.Connection] = []
    monkeypatch.setattr(sqlite3, "connect", connect)
    ledger = new_ledger(tmp_path, "l.ledger")
    ledger.append_many([event(i) for i in range(20)])
    before = ledger.latest_checkpoint().note
    own = real_connect(tmp_path / "l.ledger")
    pages = own.execute("PRAGMA page_count").fetchone()[0] + 2
    own.close()
    cap[0] = pages
    for conn in opened:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
            conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StorageError, match="disk full"):
        ledger.append_many([event(1000 + i) for i in range(2000)])
    assert ledger.size == 20
    assert ledger.latest_checkpoint().note == before
    ledger.check()
    cap[0] = None
    for conn in opened:
        with contextlib.suppress(sqlite3.ProgrammingError):
            conn.execute("PRAGMA max_page_count = 1073741823")
    assert ledger.append(event(5000)).index == 20
    ledger.check()
    ledger.close()


def test_paths_with_uri_characters_open_read_only(tmp_path: Path) -> None:
    odd = tmp_path / "we ird?#%dir"
    odd.mkdir()
    new_ledger(odd, "x.ledger").close()
    with Ledger.open(odd / "x.ledger", readonly=True) as led:
        assert led.size == 0
        led.check()


def test_queries_while_another_thread_appends(tmp_path: Path) -> None:
    # Indexing runs beside appends: each query sees at least what was committed
    # before it started, and the index ends up matching the records exactly.
    with new_ledger(tmp_path, "l.ledger") as led:
        done = threading.Event()

        def writer() -> None:
            for b in range(20):
                led.append_many([event(b * 50 + k) for k in range(50)])
            done.set()

        th = threading.Thread(target=writer)
        th.start()
        while True:  # at least one query, most of them while the writer runs
            finished = done.is_set()
            before = led.size
            found = [r.index for r in led.query(camera_id="cam-0")]
            # Every cam-0 record committed before the query, in order, no gaps.
            assert found == list(range(0, 3 * len(found), 3))
            assert len(found) >= len(range(0, before, 3))
            if finished:
                break
        th.join()
        led.update_index()
        assert [r.index for r in led.query(camera_id="cam-0")] == list(range(0, 1000, 3))
        led.check()


def test_query_index_is_filled_off_the_append_path(tmp_path: Path) -> None:
    with new_ledger(tmp_path, "l.ledger") as led:
        led.append_many([event(i) for i in range(5)])
        store = SQLiteStore.open(led.path, readonly=True)  # a second reader, as an operator's
        assert store.indexed_size() == 0  # appends do not index
        assert [r.index for r in led.query(camera_id="cam-1")] == [1, 4]
        assert store.indexed_size() == 5
        store.close()
        led.append_many([event(i) for i in range(5, 8)])
        assert led.update_index() == 3
        assert led.update_index() == 0
        led.check()


# -- check: stored cosignatures ----------------------------------------------------------------


def _cosigned_ledger(tmp: Path) -> tuple[Path, str]:
    """A ledger of 13 records (commits at 10 and 13) with one cosignature of size 13."""
    path = tmp / "c.ledger"
    witness = witness_key()
    with new_ledger(tmp, "c.ledger") as led:
        led.append_many([event(i) for i in range(10)])
        led.append_many([event(i) for i in range(10, 13)])
        cp = led.latest_checkpoint().checkpoint
        line = cosign_checkpoint(cp, witness, 1_800_000_000)
        assert led.add_cosignatures(13, [line], [witness.verifier]) == 1
        assert led.check().cosignatures == 1
    return path, line


def _forged(line: str) -> str:
    """The signature line with one bit of its signature flipped."""
    name, blob = line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    return f"{name} {base64.b64encode(bytes(raw)).decode()}\n"


def _insert_cosignature(path: Path, size: int, witness: str, line: str) -> None:
    # A new row is an insert the triggers allow: no need to drop them.
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO cosignatures (size, witness, line) VALUES (?, ?, ?)", (size, witness, line)
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "what",
    [
        "forged signature",
        "line by another witness",
        "line of another checkpoint",
        "witness key malformed",
        "witness key not a cosignature key",
        "no checkpoint of that size",
    ],
)
def test_check_verifies_every_stored_cosignature(tmp_path: Path, what: str) -> None:
    path, line = _cosigned_ledger(tmp_path)
    w1, w2 = witness_key(), witness_key("witness.example/w2")
    with Ledger.open(path, readonly=True) as led:
        cp10 = led.checkpoint(10).checkpoint
        cp13 = led.checkpoint(13).checkpoint
    size, vkey = 13, w1.verifier.vkey
    if what == "forged signature":
        line = _forged(line)
    elif what == "line by another witness":
        line = cosign_checkpoint(cp13, w2, 1_800_000_000)
    elif what == "line of another checkpoint":
        line = cosign_checkpoint(cp10, w1, 1_800_000_000)
    elif what == "witness key malformed":
        vkey = "not a key"
    elif what == "witness key not a cosignature key":
        vkey = writer_key().verifier.vkey
    elif what == "no checkpoint of that size":
        size = 12
    if what.startswith("witness key"):
        _tamper(path, "UPDATE cosignatures SET witness = ?", (vkey,))  # the stored row, misfiled
    else:
        _insert_cosignature(path, size, vkey, line)
    with Ledger.open(path, readonly=True) as led, pytest.raises(BadSignatureError) as info:
        led.check()
    message = str(info.value)
    assert f"checkpoint {size}" in message, message
    assert vkey.split("+")[0] in message, message


# -- check: pinned keys ------------------------------------------------------------------------


INSIDER_LOG = Signer(ORIGIN, bytes(range(100, 132)))  # the ledger's name, another key
INSIDER_WRITER = Signer("vendor.example/writer/backend-1", bytes(range(200, 232)))


def _ledger_with(tmp: Path, name: str, log: Signer, writer: Signer) -> Path:
    with Ledger.create(tmp / name, log_key=log, writers=[writer]) as led:
        led.append_many([event(i) for i in range(5)])
    return tmp / name


def test_check_with_pinned_keys_refuses_a_ledger_resigned_under_other_keys(
    tmp_path: Path,
) -> None:
    real = _ledger_with(tmp_path, "real.ledger", log_key(), writer_key())
    resigned = _ledger_with(tmp_path, "resigned.ledger", INSIDER_LOG, INSIDER_WRITER)
    own_writer = _ledger_with(tmp_path, "writer.ledger", log_key(), INSIDER_WRITER)
    pinned_log, pinned_writers = log_key().verifier, [writer_key().verifier]
    with Ledger.open(real, readonly=True) as led:
        report = led.check(log_key=pinned_log, writer_keys=pinned_writers)
        assert report.pinned
        assert report.writers == (writer_key().verifier.vkey,)
        assert not led.check().pinned
    with Ledger.open(resigned, readonly=True) as led:
        led.check()  # the file is self-consistent: nothing inside it can tell
        with pytest.raises(UntrustedKeyError, match="log key"):
            led.check(log_key=pinned_log)
        with pytest.raises(UntrustedKeyError, match="record 0"):
            led.check(writer_keys=pinned_writers)
    with Ledger.open(own_writer, readonly=True) as led:
        led.check(log_key=pinned_log)  # its checkpoints are the real log key's
        with pytest.raises(UntrustedKeyError, match=r"record 0: .* not a given writer key"):
            led.check(log_key=pinned_log, writer_keys=pinned_writers)
        with pytest.raises(MalformedError, match="Ed25519"):
            led.check(writer_keys=[witness_key().verifier])
        with pytest.raises(MalformedError, match="Ed25519"):
            led.check(log_key=witness_key().verifier)


# -- check: a trusted checkpoint catches a file cut back -------------------------------------


def _truncate(path: Path, size: int) -> None:
    """Cut the ledger back to its checkpoint of ``size``, as someone holding the file would."""
    cut = stored_hash_count(size)
    for sql, arg in (
        ("DELETE FROM records WHERE seq >= ?", size),
        ("DELETE FROM event_ids WHERE seq >= ?", size),
        ("DELETE FROM record_index WHERE seq >= ?", size),
        ("DELETE FROM hashes WHERE first >= ?", cut),
        ("DELETE FROM upper_hashes WHERE id >= ?", cut),
        ("DELETE FROM checkpoints WHERE size > ?", size),
        ("DELETE FROM cosignatures WHERE size > ?", size),
        ("DELETE FROM witness_events WHERE size > ?", size),
    ):
        _tamper(path, sql, (arg,))


def test_check_catches_a_cut_back_file_only_with_a_trusted_checkpoint(tmp_path: Path) -> None:
    path, _ = _cosigned_ledger(tmp_path)
    with Ledger.open(path, readonly=True) as led:
        note13, note10 = led.checkpoint(13).note, led.checkpoint(10).note
        assert led.check(trusted_checkpoint=note13).trusted_size == 13
        assert led.check(trusted_checkpoint=note10.encode()).trusted_size == 10
    _truncate(path, 10)
    with Ledger.open(path, readonly=True) as led:
        assert led.check().size == 10  # nothing inside the file shows the cut
        assert led.check(trusted_checkpoint=note10).trusted_size == 10
        with pytest.raises(RollbackError, match="13"):
            led.check(trusted_checkpoint=note13)


def test_check_catches_a_fork_against_a_trusted_checkpoint(tmp_path: Path) -> None:
    for a, b in forked_ledgers(tmp_path):
        a.append_many([event(i) for i in range(10)])
        a.append_many([event(i) for i in range(10, 13)])
        b.append_many([event(i) for i in range(9)] + [release_event(9)])
        with pytest.raises(InconsistentCheckpointError, match="size 10"):
            a.check(trusted_checkpoint=b.checkpoint(10).note)  # a's size is larger
        b.append_many([event(i) for i in range(10, 13)])
        with pytest.raises(InconsistentCheckpointError, match="size 13"):
            a.check(trusted_checkpoint=b.checkpoint(13).note)  # the same size
        a.check(trusted_checkpoint=a.checkpoint(0).note)
        b.check(trusted_checkpoint=a.checkpoint(0).note)  # every tree agrees at 0


def test_check_refuses_a_trusted_checkpoint_not_signed_by_the_log_key(tmp_path: Path) -> None:
    other = _ledger_with(tmp_path, "other.ledger", INSIDER_LOG, writer_key())
    with Ledger.open(other, readonly=True) as led:
        foreign = led.latest_checkpoint().note
    with new_ledger(tmp_path) as led:
        led.append_many([event(i) for i in range(5)])
        with pytest.raises(LedgerError, match="the trusted checkpoint"):
            led.check(trusted_checkpoint=foreign)
        with pytest.raises(MalformedError, match="the trusted checkpoint"):
            led.check(trusted_checkpoint="not a checkpoint")


def test_check_refuses_records_beyond_the_newest_checkpoint(tmp_path: Path) -> None:
    path, _ = _cosigned_ledger(tmp_path)
    # Records the log key never signed for: only someone around the ledger puts them there.
    _tamper(path, "DELETE FROM cosignatures")
    _tamper(path, "DELETE FROM checkpoints WHERE size = 13")
    with (
        Ledger.open(path, readonly=True) as led,
        pytest.raises(VerificationError, match=r"10\.\.12"),
    ):
        led.check()


# -- the check command -----------------------------------------------------------------------


def test_check_command_pins_keys(tmp_path: Path) -> None:
    real = _ledger_with(tmp_path, "real.ledger", log_key(), writer_key())
    resigned = _ledger_with(tmp_path, "resigned.ledger", INSIDER_LOG, INSIDER_WRITER)
    pub = tmp_path / "log.pub"
    pub.write_text(log_key().verifier.vkey + "\n")
    for log in (str(pub), log_key().verifier.vkey):
        ok = run("check", real, "--log-key", log, "--writer-key", writer_key().verifier.vkey)
        assert ok.exit_code == 0, ok.stderr
        assert ok.stdout.startswith("ok: 5 records, 2 checkpoints, root ")
        assert "signed by the given keys" in ok.stdout
        assert run("check", resigned).exit_code == 0
        assert_one_line_error(
            run("check", resigned, "--log-key", log), 1, "check failed", "log key"
        )
    assert_one_line_error(
        run("check", resigned, "--writer-key", writer_key().verifier.vkey),
        1,
        "check failed",
        "record 0",
    )
    assert_one_line_error(run("check", real, "--log-key", "nope+nope"), 2, "--log-key")
    assert_one_line_error(run("check", real, "--log-key", tmp_path / "missing.pub"), 2, "--log-key")
    assert_one_line_error(
        run("check", real, "--writer-key", witness_key().verifier.vkey),
        2,
        "--writer-key",
        "Ed25519",
    )


def test_check_command_with_a_trusted_checkpoint(tmp_path: Path) -> None:
    path, _ = _cosigned_ledger(tmp_path)
    with Ledger.open(path, readonly=True) as led:
        (tmp_path / "13.cp").write_text(led.checkpoint(13).note)
    ok = run("check", path, "--trusted-checkpoint", tmp_path / "13.cp")
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.rstrip("\n").endswith(
        ", 1 cosignatures, consistent with the trusted checkpoint of size 13"
    )
    _truncate(path, 10)
    assert run("check", path).exit_code == 0
    assert_one_line_error(
        run("check", path, "--trusted-checkpoint", tmp_path / "13.cp"), 1, "check failed", "13"
    )
    (tmp_path / "bad.cp").write_text("not a checkpoint\n")
    for bad in (tmp_path / "bad.cp", tmp_path / "missing.cp"):
        assert_one_line_error(run("check", path, "--trusted-checkpoint", bad), 2, str(bad))
    other = _ledger_with(tmp_path, "other.ledger", INSIDER_LOG, writer_key())
    with Ledger.open(other, readonly=True) as led:
        (tmp_path / "other.cp").write_text(led.latest_checkpoint().note)
    pinned = ["--log-key", log_key().verifier.vkey]
    assert_one_line_error(
        run("check", path, *pinned, "--trusted-checkpoint", tmp_path / "other.cp"),
        2,
        "--trusted-checkpoint",
    )
    assert_one_line_error(
        run("check", path, "--trusted-checkpoint", tmp_path / "other.cp"), 1, "trusted checkpoint"
    )


def test_check_command_fails_on_a_forged_cosignature(tmp_path: Path) -> None:
    path, line = _cosigned_ledger(tmp_path)
    _insert_cosignature(path, 13, witness_key().verifier.vkey, _forged(line))
    assert_one_line_error(
        run("check", path), 1, "check failed", "checkpoint 13", "witness.example/w1"
    )
