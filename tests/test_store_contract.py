"""The storage contract's conformance suite: every backend runs these tests.

Like sumdb's ``TestStorage``, the tests speak only the contract of
``disclosure_ledger._store.base`` and never a backend's private connection. A
backend joins by adding a factory to ``_FACTORIES`` (a PostgreSQL one follows:
it creates a fresh log in a test database and opens further handles to it).
The tests at the end are the SQLite backend's own, about its file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from disclosure_ledger._core import merkle
from disclosure_ledger._core.merkle import CompactRange, NodeId
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._store.base import Store
from disclosure_ledger._store.sqlite import UPPER_LEVEL, SQLiteStore, stored_hash_count
from disclosure_ledger.errors import DuplicateEventError, StorageError

from . import reference
from .ledger_helpers import event, new_ledger

META = {"origin": "vendor.example/ledger/contract", "log_key": "not-parsed-by-the-store"}


class StoreFactory:
    """Makes one fresh log, and opens further handles to it (another process, in effect)."""

    def __init__(self, create: Callable[[], Store], reopen: Callable[[bool], Store]) -> None:
        self._create, self._reopen = create, reopen
        self.opened: list[Store] = []

    def create(self) -> Store:
        store = self._create()
        self.opened.append(store)
        return store

    def open(self, *, readonly: bool = False) -> Store:
        store = self._reopen(readonly)
        self.opened.append(store)
        return store


def _sqlite(tmp_path: Path) -> StoreFactory:
    path = tmp_path / "contract.ledger"
    return StoreFactory(
        lambda: SQLiteStore.create(path, META),
        lambda readonly: SQLiteStore.open(path, readonly=readonly),
    )


def _postgres(request: pytest.FixtureRequest) -> StoreFactory:
    # A fresh database for each test: the schema is created on first use. The
    # fixture first, so that a run without the driver skips instead of failing.
    url = request.getfixturevalue("pg_url")
    from disclosure_ledger._store.postgres import PostgresStore

    origin = META["origin"]
    return StoreFactory(
        lambda: PostgresStore.create(url, META, pool_size=4),
        lambda readonly: PostgresStore.open(url, origin, readonly=readonly, pool_size=4),
    )


_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], StoreFactory]] = {
    "sqlite": lambda _request, tmp_path: _sqlite(tmp_path),
    "postgres": lambda request, _tmp_path: _postgres(request),
}


@pytest.fixture(params=list(_FACTORIES), ids=list(_FACTORIES))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    factory = _FACTORIES[request.param](request, tmp_path)
    yield factory
    for store in factory.opened:
        store.close()


def _leaf(i: int) -> bytes:
    return f"leaf {i}".encode()


def _append(store: Store, count: int, *, ids: Sequence[str] | None = None) -> int:
    """Append ``count`` leaves the way the write path does, in one sequencing transaction.

    The hashes each leaf completes are stored as one run, and those at the
    upper levels also one by one; the checkpoint's note is opaque to a store.
    """
    with store.append_txn() as txn:
        size = txn.size()
        tree = CompactRange(size, txn.frontier(merkle.subtree_ids(0, size)))
        run: list[bytes] = []
        upper: list[tuple[int, bytes]] = []
        first = stored_hash_count(size)
        leaves = [_leaf(size + k) for k in range(count)]
        for leaf in leaves:
            new = tree.append_nodes(merkle.leaf_hash(leaf))
            at = first + len(run)
            upper += [(at + j, new[j]) for j in range(UPPER_LEVEL, len(new))]
            run += new
        event_ids = list(ids) if ids is not None else [f"ev-{size + k}" for k in range(count)]
        txn.insert_records(size, leaves, event_ids)
        txn.insert_runs([(first, b"".join(run))])
        txn.insert_upper(upper)
        txn.insert_checkpoint(tree.size, f"checkpoint {tree.size}")
    return tree.size


def _assert_state(store: Store, size: int) -> None:
    """Everything a store of ``size`` reference leaves must answer."""
    leaves = [_leaf(i) for i in range(size)]
    assert store.size() == size
    assert list(store.iter_leaves(0, size)) == leaves
    assert store.hash_count() == stored_hash_count(size)
    assert store.event_id_count() == size
    if size:
        assert merkle.tree_root(size, store) == reference.mth(leaves)


def test_an_empty_store_has_an_empty_head(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    assert store.meta()["origin"] == META["origin"]
    assert store.size() == 0
    assert store.latest_checkpoint() is None
    assert store.latest_checkpoint_size() is None
    assert store.checkpoint_sizes() == []
    assert list(store.iter_checkpoints()) == []
    assert list(store.iter_leaves(0, 0)) == []
    assert store.hash_count() == 0
    assert store.upper_count() == 0
    assert store.read_hash_range(0, 10) == []
    assert store.indexed_size() == 0
    assert store.event_id_seqs(["ev-0"]) == {}
    assert store.writer_keys() == []
    assert list(store.iter_cosignatures()) == []
    assert store.witness_events() == []
    with pytest.raises(StorageError, match="no record"):
        store.leaf(0)
    with pytest.raises(StorageError, match="not stored"):
        store.read_hashes([NodeId(0, 0)])


def test_leaves_by_range_and_checkpoints_by_size(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    assert _append(store, 3) == 3
    assert _append(store, 5) == 8
    assert store.leaf(4) == _leaf(4)
    assert list(store.iter_leaves(2, 7, chunk=2)) == [_leaf(i) for i in range(2, 7)]
    assert store.checkpoint_sizes() == [3, 8]
    assert store.checkpoint(3) == "checkpoint 3"
    assert store.checkpoint(4) is None
    assert store.latest_checkpoint() == (8, "checkpoint 8")
    assert list(store.iter_checkpoints(chunk=1)) == [(3, "checkpoint 3"), (8, "checkpoint 8")]
    with pytest.raises(StorageError, match="not all present"):
        list(store.iter_leaves(6, 9))  # never fewer leaves than asked


def test_hashes_by_position_equal_the_merkle_reference(store_factory: StoreFactory) -> None:
    # Appends of uneven sizes across two blocks of 64 and the upper level.
    store = store_factory.create()
    size = 0
    for count in (1, 2, 5, 56, 1, 64, 3, 1):
        size = _append(store, count)
        leaves = [_leaf(i) for i in range(size)]
        for level in range(size.bit_length()):
            ids = [NodeId(level, n) for n in range(size >> level)]
            want = [reference.mth(leaves[n << level : (n + 1) << level]) for n in range(len(ids))]
            assert list(store.read_hashes(ids)) == want
        assert merkle.tree_root(size, store) == reference.mth(leaves)
        for index in (0, size // 2, size - 1):
            assert merkle.prove_inclusion(index, size, store) == reference.path(index, leaves)
        for old in (1, size // 3 + 1, size):
            assert merkle.prove_consistency(old, size, store) == reference.proof(old, leaves)
    with pytest.raises(StorageError, match="not stored"):
        store.read_hashes([NodeId(0, size)])
    with pytest.raises(StorageError, match="not stored"):
        store.read_hashes([NodeId(UPPER_LEVEL + 1, 1)])


def test_an_error_inside_the_transaction_leaves_nothing(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    _append(store, 4)

    def fail_midway() -> None:
        with store.append_txn() as txn:
            txn.insert_records(4, [_leaf(4)], ["ev-4"])
            txn.insert_runs([(stored_hash_count(4), merkle.leaf_hash(_leaf(4)))])
            txn.insert_checkpoint(5, "checkpoint 5")
            txn.register_writer(7, "writer-vkey", 4)
            raise RuntimeError("midway")

    def fail_in_storage() -> None:
        # A storage fault inside (a second checkpoint of one size) rolls back the same way.
        with store.append_txn() as txn:
            txn.insert_records(4, [_leaf(4)], ["ev-4"])
            txn.insert_checkpoint(4, "again")

    with pytest.raises(RuntimeError, match="midway"):
        fail_midway()
    with pytest.raises(StorageError):
        fail_in_storage()
    _assert_state(store, 4)
    assert store.checkpoint_sizes() == [4]
    assert store.event_id_seqs(["ev-4"]) == {}
    assert store.writer_keys() == []
    # The lock was released: the next append goes through.
    assert _append(store, 1) == 5
    _assert_state(store, 5)


def test_duplicate_event_ids_are_detected(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    _append(store, 3)
    assert store.event_id_seqs(["ev-1", "ev-9"]) == {"ev-1": 1}
    with store.append_txn() as txn:
        assert txn.existing_event_ids(["ev-2", "ev-3"]) == {"ev-2"}
    with pytest.raises(DuplicateEventError):
        _append(store, 2, ids=["ev-new", "ev-0"])  # already committed
    with pytest.raises(DuplicateEventError):
        _append(store, 2, ids=["twice", "twice"])  # repeated within one append
    _assert_state(store, 3)
    assert store.event_id_seqs(["ev-new", "twice"]) == {}


_NO_RECIPIENT = (None, None, None, "2024-01-01T00:00:00Z")


def test_writers_and_the_query_index(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    _append(store, 3)
    with store.append_txn() as txn:
        txn.register_writer(1, "vkey-a", 0)
        txn.register_writer(1, "vkey-a", 3)  # known: nothing
        txn.register_writer(2, "vkey-b", 3)
        assert txn.indexed_size() == 0
        txn.insert_index_rows(
            [
                (i, 1000 + i, f"ev-{i}", f"cam-{i % 2}", None, "view", "owner", *_NO_RECIPIENT)
                for i in range(3)
            ]
        )
    assert store.writer_keys() == ["vkey-a", "vkey-b"]
    assert store.indexed_size() == 3
    assert [seq for seq, _ in store.iter_index_rows(0, 3)] == [0, 1, 2]
    assert store.query("camera_id = ?", ["cam-0"], None, below=3) == [(0, _leaf(0)), (2, _leaf(2))]
    assert store.query("camera_id = ?", ["cam-0"], 1, below=3) == [(0, _leaf(0))]
    assert store.query("", [], None, below=2) == [(0, _leaf(0)), (1, _leaf(1))]
    store.check_query_schema()


def test_cosignatures_add_and_read_idempotently(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    _append(store, 2)
    _append(store, 2)
    assert store.add_cosignatures(2, [("w1", "line 1"), ("w2", "line 2")]) == 2
    assert store.add_cosignatures(2, [("w1", "line 1")]) == 0  # stored before: nothing new
    assert store.add_cosignatures(4, [("w1", "line 3"), ("w1", "line 3")]) == 1
    assert store.cosignature_lines(2) == ["line 1", "line 2"]
    assert sorted(store.cosigning_witnesses(2)) == ["w1", "w2"]
    assert store.last_cosigned_size("w1") == 4
    assert store.last_cosigned_size("w2") == 2
    assert store.last_cosigned_size("w3") is None
    assert list(store.iter_cosignatures(chunk=1)) == [
        (2, "w1", "line 1"),
        (2, "w2", "line 2"),
        (4, "w1", "line 3"),
    ]
    with pytest.raises(StorageError, match="no checkpoint of size 3"):
        store.add_cosignatures(3, [("w1", "line 4")])
    assert store.cosignature_lines(3) == []
    store.add_witness_event(4, "w1", "cosigned", "")
    assert store.witness_events() == [(4, "w1", "cosigned", "")]


def test_a_read_only_store_refuses_every_write(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    _append(store, 2)
    ro = store_factory.open(readonly=True)
    assert ro.readonly
    with pytest.raises(StorageError, match="read-only"):
        _append(ro, 1)
    with pytest.raises(StorageError, match="read-only"):
        ro.add_cosignatures(2, [("w1", "line")])
    with pytest.raises(StorageError, match="read-only"):
        ro.add_witness_event(2, "w1", "cosigned", "")
    _assert_state(ro, 2)
    assert ro.cosignature_lines(2) == []
    assert ro.witness_events() == []


def test_reopening_sees_the_same_state(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    _append(store, 70)
    store.add_cosignatures(70, [("w1", "line")])
    store.close()
    again = store_factory.open()
    _assert_state(again, 70)
    assert again.latest_checkpoint() == (70, "checkpoint 70")
    assert again.cosignature_lines(70) == ["line"]
    assert _append(again, 1) == 71  # the frontier is read back from the store
    _assert_state(again, 71)


def test_a_second_reader_sees_a_commit(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    _append(store, 60)
    reader = store_factory.open(readonly=True)
    _assert_state(reader, 60)  # loads what it caches of the upper levels
    _append(store, 80)  # past the next upper nodes
    _assert_state(reader, 140)
    leaves = [_leaf(i) for i in range(140)]
    assert merkle.prove_inclusion(7, 140, reader) == reference.path(7, leaves)


def test_two_handles_append_at_once_without_losing_a_record(store_factory: StoreFactory) -> None:
    # Sequencing is the store's: each append reads the size under its lock.
    store = store_factory.create()
    other = store_factory.open()
    errors: list[BaseException] = []

    def appender(s: Store, tag: str) -> None:
        try:
            for k in range(15):
                with s.append_txn() as txn:
                    size = txn.size()
                    tree = CompactRange(size, txn.frontier(merkle.subtree_ids(0, size)))
                    leaf = _leaf(size)
                    first = stored_hash_count(size)
                    new = tree.append_nodes(merkle.leaf_hash(leaf))
                    txn.insert_records(size, [leaf], [f"{tag}-{k}"])
                    txn.insert_runs([(first, b"".join(new))])
                    txn.insert_upper([(first + j, new[j]) for j in range(UPPER_LEVEL, len(new))])
                    txn.insert_checkpoint(size + 1, f"checkpoint {size + 1}")
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [
        threading.Thread(target=appender, args=(s, t)) for s, t in ((store, "a"), (other, "b"))
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    _assert_state(store, 30)
    assert len(store.event_id_seqs([f"{t}-{k}" for t in "ab" for k in range(15)])) == 30


@pytest.mark.parametrize("same_handle", [True, False], ids=["same-handle", "other-handle"])
def test_reads_do_not_wait_behind_an_open_append(
    store_factory: StoreFactory, same_handle: bool
) -> None:
    store = store_factory.create()
    _append(store, 100)
    reader = store if same_handle else store_factory.open(readonly=True)
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with contextlib.suppress(RuntimeError), store.append_txn() as txn:
            txn.insert_records(100, [_leaf(100)], ["ev-100"])
            inside.set()
            release.wait(timeout=30)
            raise RuntimeError("roll back")

    got: dict[str, object] = {}

    def read() -> None:
        got["size"] = reader.size()
        got["latest"] = reader.latest_checkpoint()
        got["proof"] = merkle.prove_inclusion(42, 100, reader)
        got["leaf"] = reader.leaf(99)

    wt = threading.Thread(target=writer)
    wt.start()
    try:
        assert inside.wait(timeout=30)
        rt = threading.Thread(target=read)
        rt.start()
        rt.join(timeout=10)
        assert not rt.is_alive(), "a read waited behind the open append transaction"
    finally:
        release.set()
        wt.join(timeout=30)
    # The read saw the committed head only, not the append in progress.
    leaves = [_leaf(i) for i in range(100)]
    assert got == {
        "size": 100,
        "latest": (100, "checkpoint 100"),
        "proof": reference.path(42, leaves),
        "leaf": _leaf(99),
    }
    _assert_state(store, 100)


def test_a_closed_store_refuses_reads(store_factory: StoreFactory) -> None:
    store = store_factory.create()
    _append(store, 1)
    store.close()
    store.close()  # twice does nothing
    with pytest.raises(StorageError):
        store.size()


# -- the SQLite backend's own: what is stored in the file -------------------------


def _tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for stmt in statements:
            conn.execute(stmt)
    finally:
        conn.close()


_VIEW_FILTERED = (
    "CREATE VIEW indexed_records AS SELECT record_index.*, records.leaf"
    " FROM record_index JOIN records USING (seq) WHERE camera_id <> 'cam-1'"
)


@pytest.mark.parametrize(
    ("statements", "match"),
    [
        (["DROP VIEW indexed_records"], "indexed_records that queries read is missing"),
        (["DROP VIEW indexed_records", _VIEW_FILTERED], "not defined as this library"),
        (
            [
                # Legacy mode keeps the view's text, which still names record_index.
                "PRAGMA legacy_alter_table = ON",
                "ALTER TABLE record_index RENAME TO ri",
                "CREATE VIEW record_index AS SELECT * FROM ri WHERE camera_id <> 'cam-1'",
            ],
            "record_index, which queries read, is a view, not a table",
        ),
    ],
    ids=["dropped", "redefined", "table-swapped-for-a-view"],
)
def test_the_query_schema_check_names_what_was_changed(
    tmp_path: Path, statements: list[str], match: str
) -> None:
    with new_ledger(tmp_path, "l.ledger") as led:
        led.append_many([event(i) for i in range(6)])
        assert len(led.query(camera_id="cam-1")) == 2  # fills the index
    store = SQLiteStore.open(tmp_path / "l.ledger", readonly=True)
    store.check_query_schema()
    store.close()
    _tamper(tmp_path / "l.ledger", *statements)
    store = SQLiteStore.open(tmp_path / "l.ledger", readonly=True)
    try:
        with pytest.raises(StorageError, match=match):
            store.check_query_schema()
    finally:
        store.close()
    # The operator's check reads the same thing, so it fails too.
    with (
        Ledger.open(tmp_path / "l.ledger", readonly=True) as led,
        pytest.raises(StorageError, match=match),
    ):
        led.check()


def test_a_query_fails_loudly_when_its_view_is_dropped(tmp_path: Path) -> None:
    # It used to answer "no records" (sqlite-utils reads a missing table as empty),
    # hiding every disclosure from the camera's owner.
    with new_ledger(tmp_path, "l.ledger") as led:
        led.append_many([event(i) for i in range(6)])
        assert [r.index for r in led.query(camera_id="cam-1")] == [1, 4]
    _tamper(tmp_path / "l.ledger", "DROP VIEW indexed_records")
    for readonly in (False, True):
        with Ledger.open(tmp_path / "l.ledger", readonly=readonly) as led:
            with pytest.raises(StorageError, match="query view indexed_records"):
                led.query(camera_id="cam-1")
            assert led.size == 6  # nothing else was lost or written
