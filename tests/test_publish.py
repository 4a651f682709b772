"""Publishing as C2SP tlog-tiles, reading a publication back, and verifying through it.

A publication is served over HTTP on 127.0.0.1 by a ``http.server`` thread;
verification through it must pass, and must fail for a tampered tile, a tile
from another log, an entry bundle with trailing bytes and a checkpoint newer
than its tiles.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from disclosure_ledger._core.checkpoints import open_checkpoint, verify_receipt
from disclosure_ledger._core.merkle import leaf_hash, tree_root
from disclosure_ledger._core.notes import Signer
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._core.tiles import (
    Tile,
    decode_entry_bundle,
    decode_hash_tile,
    encode_entry_bundle,
    tiles_for_size,
)
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._log.publish import publication, publish
from disclosure_ledger._log.tilereader import DirectorySource, HttpSource, TileLog, open_source
from disclosure_ledger._verify.state import MemoryState
from disclosure_ledger._verify.tiles import verify_published
from disclosure_ledger.errors import (
    MalformedError,
    NotPublishedError,
    RootMismatchError,
    StorageError,
    ValidationError,
    VerificationError,
)

from .ledger_helpers import event, forked_ledgers, log_key, new_ledger, writer_key

POLICY = Policy.simple(log_key().verifier, [writer_key().verifier])


def _fill(ledger: Ledger, start: int, count: int) -> None:
    ledger.append_many([event(i) for i in range(start, start + count)])


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    lg = new_ledger(tmp_path)
    _fill(lg, 0, 600)
    yield lg
    lg.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_publish_writes_the_tlog_tiles_layout(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "pub"
    summary = publish(ledger, out)
    assert (summary.from_size, summary.to_size) == (0, 600)
    expected = {t.path for t in tiles_for_size(600)} | {"checkpoint"}
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {".publish.lock"}
    assert files == expected
    assert "tile/0/002.p/88" in files
    assert "tile/1/000.p/2" in files
    assert "tile/entries/001" in files
    assert summary.files_written == len(expected)
    note = (out / "checkpoint").read_text()
    assert note == ledger.latest_checkpoint().note
    assert (out / "tile/0/000").stat().st_mode & 0o777 == 0o644
    leaves = decode_entry_bundle((out / "tile/entries/001").read_bytes(), 256)
    assert leaves == list(ledger.iter_leaves(256, 512))
    hashes = decode_hash_tile((out / "tile/0/001").read_bytes(), 256)
    assert hashes == [leaf_hash(x) for x in leaves]


def test_publish_is_incremental(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "pub"
    publish(ledger, out)
    again = publish(ledger, out)
    assert again.files_written == 0
    _fill(ledger, 600, 10)
    summary = publish(ledger, out)
    assert (summary.from_size, summary.to_size) == (600, 610)
    # The grown partial bundle and level-0 tile, and the checkpoint; level 1 is still 2 wide.
    assert summary.files_written == 3
    assert (out / "tile/0/002.p/98").exists()
    assert (out / "tile/0/002.p/88").exists()  # readers of the older checkpoint still find it
    _fill(ledger, 610, 160)
    summary = publish(ledger, out)
    assert (out / "tile/0/002").stat().st_size == 8192
    assert (out / "tile/1/000.p/3").exists()
    log = TileLog(DirectorySource(out))
    cp = log.signed_checkpoint(log_key().verifier).checkpoint
    assert cp.size == 770
    assert tree_root(770, log.hash_reader(770)) == cp.root
    assert list(log.iter_leaves(0, 770, 770)) == list(ledger.iter_leaves())


def test_publication_yields_what_is_new_checkpoint_last(ledger: Ledger) -> None:
    pairs = list(publication(ledger, 300))
    assert pairs[-1][0] == "checkpoint"
    paths = [p for p, _ in pairs]
    assert "tile/0/000" not in paths  # full since 256
    assert "tile/0/001" in paths  # became full
    assert "tile/entries/002.p/88" in paths
    assert len(paths) == len(set(paths))
    with pytest.raises(MalformedError, match="beyond"):
        list(publication(ledger, 601))


def test_a_crash_mid_publish_leaves_a_readable_publication(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "pub"
    publish(ledger, out)
    _fill(ledger, 600, 300)
    # Write some of the new files, as a run that died would have, but not the checkpoint.
    for path, data in list(publication(ledger, 600))[:3]:
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    log = TileLog(DirectorySource(out))
    assert log.signed_checkpoint(log_key().verifier).checkpoint.size == 600
    assert verify_published(str(out), POLICY).record_count == 600
    summary = publish(ledger, out)
    assert (summary.from_size, summary.to_size) == (600, 900)
    assert verify_published(str(out), POLICY).record_count == 900


def test_publishing_over_another_log_is_refused(tmp_path: Path, ledger: Ledger) -> None:
    out = tmp_path / "pub"
    publish(ledger, out)
    other_key = Signer("other.example/log", bytes(32))
    with Ledger.create(tmp_path / "other.ledger", log_key=other_key) as other:
        other.append_many([event(0)])
        with pytest.raises(StorageError, match=r"holds the log 'vendor\.example"):
            publish(other, out)


def test_publishing_over_another_history_is_refused(tmp_path: Path) -> None:
    gen = forked_ledgers(tmp_path)
    a, b = next(gen)
    try:
        _fill(a, 0, 5)
        b.append_many([event(100 + i) for i in range(7)])
        publish(a, tmp_path / "pub")
        with pytest.raises(StorageError, match="another history"):
            publish(b, tmp_path / "pub")
        # A tile of another log, already in place, is never overwritten.
        publish(b, tmp_path / "pub-b")
        shutil.copy(tmp_path / "pub/tile/0/000.p/5", tmp_path / "pub-b/tile/0/000.p/7")
        (tmp_path / "pub-b/checkpoint").unlink()
        with pytest.raises(StorageError, match="never changes"):
            publish(b, tmp_path / "pub-b")
    finally:
        b.close()
        gen.close()


def test_an_event_too_large_for_a_tile_entry_is_refused(tmp_path: Path) -> None:
    with new_ledger(tmp_path) as lg:
        big = event(0, extensions={f"k{i}": "x" * 8000 for i in range(9)})
        with pytest.raises(ValidationError, match="65,535-byte tlog-tiles entry"):
            lg.append_many([big])
        assert lg.size == 0


# -- reading --------------------------------------------------------------------------------


def test_receipt_from_tiles_verifies(ledger: Ledger, tmp_path: Path, serve: Any) -> None:
    publish(ledger, tmp_path / "pub")
    for where in (str(tmp_path / "pub"), serve(tmp_path / "pub")):
        log = TileLog(open_source(where))
        for index in (0, 257, 599):
            receipt = log.receipt(log_key().verifier, index)
            assert receipt.extra == ledger.leaf(index)
            verified = verify_receipt(receipt, log_key().verifier)
            assert verified.index == index
    with pytest.raises(MalformedError, match="not below the published size 600"):
        TileLog(DirectorySource(tmp_path / "pub")).receipt(log_key().verifier, 600)


def test_receipt_from_a_tampered_tile_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "pub"
    publish(ledger, out)
    data = bytearray((out / "tile/0/000").read_bytes())
    data[5 * 32] ^= 1
    (out / "tile/0/000").write_bytes(bytes(data))
    with pytest.raises(RootMismatchError, match="do not lead to the checkpoint"):
        TileLog(DirectorySource(out)).receipt(log_key().verifier, 4)


def test_http_reader_errors(ledger: Ledger, tmp_path: Path, serve: Any) -> None:
    publish(ledger, tmp_path / "pub")
    source = HttpSource(serve(tmp_path / "pub"), timeout=5)
    with pytest.raises(NotPublishedError, match="HTTP 404"):
        source.read("tile/0/999", 8192)
    with pytest.raises(StorageError, match="larger than 100 bytes"):
        source.read("tile/0/000", 100)
    with pytest.raises(MalformedError, match="not an http"):
        HttpSource("ftp://example.com/")
    with pytest.raises(MalformedError, match="only http"):
        open_source("ftp://example.com/")
    with pytest.raises(StorageError, match="not a directory"):
        open_source(str(tmp_path / "nowhere"))


def test_http_reader_times_out() -> None:
    # A server that accepts and never answers.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        source = HttpSource(f"http://127.0.0.1:{sock.getsockname()[1]}/", timeout=0.3)
        with pytest.raises(StorageError, match="timed out"):
            source.read("checkpoint", 100)
    finally:
        sock.close()


def test_a_missing_partial_tile_is_read_from_the_full_one(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "pub"
    _fill(ledger, 600, 0)
    publish(ledger, out)
    log = TileLog(DirectorySource(out))
    # The log replaced tile 0's partial with the full one: an old size's reads still work.
    assert (
        log.hash_tiles([Tile(0, 0, 10)])[0]
        == decode_hash_tile((out / "tile/0/000").read_bytes(), 256)[:10]
    )
    assert log.entries(Tile(0, 1, 3, entries=True)) == list(ledger.iter_leaves(256, 259))
    with pytest.raises(NotPublishedError, match="newer than its tiles"):
        log.entries(Tile(0, 3, 3, entries=True))


# -- verifying through tiles ------------------------------------------------------------------


def test_verify_through_http(ledger: Ledger, tmp_path: Path, serve: Any) -> None:
    publish(ledger, tmp_path / "pub")
    report = verify_published(serve(tmp_path / "pub"), POLICY)
    assert report.record_count == 600


def test_verify_with_state_fetches_only_new_tiles(ledger: Ledger, tmp_path: Path) -> None:
    out, state = tmp_path / "pub", tmp_path / "state"
    publish(ledger, out)
    verify_published(str(out), POLICY, state_dir=state)
    _fill(ledger, 600, 300)
    publish(ledger, out)
    fetched: list[str] = []

    class Counting(DirectorySource):
        def read(self, path: str, limit: int) -> bytes:
            fetched.append(path)
            return super().read(path, limit)

    report = verify_published(Counting(out), POLICY, state_dir=state)
    assert report.record_count == 300
    assert "tile/entries/000" not in fetched
    assert "tile/entries/001" not in fetched
    assert "tile/entries/002" in fetched
    # Nothing new: the checkpoint, and the bundle of the record the range chains to.
    fetched.clear()
    verify_published(Counting(out), POLICY, state_dir=state)
    assert [p for p in fetched if p.startswith("tile/entries")] == ["tile/entries/003.p/132"]


def _published(ledger: Ledger, tmp_path: Path) -> Path:
    out = tmp_path / "pub"
    publish(ledger, out)
    return out


def test_verify_fails_for_a_tampered_tile(ledger: Ledger, tmp_path: Path, serve: Any) -> None:
    out = _published(ledger, tmp_path)
    data = bytearray((out / "tile/0/001").read_bytes())
    data[0] ^= 1
    (out / "tile/0/001").write_bytes(bytes(data))
    with pytest.raises(RootMismatchError, match="tile/0/001 hash 0 does not match"):
        verify_published(serve(out), POLICY)


def test_verify_fails_for_a_tampered_upper_tile(ledger: Ledger, tmp_path: Path) -> None:
    out = _published(ledger, tmp_path)
    data = bytearray((out / "tile/1/000.p/2").read_bytes())
    data[40] ^= 1
    (out / "tile/1/000.p/2").write_bytes(bytes(data))
    with pytest.raises(RootMismatchError, match=r"tile/1/000.p/2 hash 1"):
        verify_published(str(out), POLICY)


def test_verify_fails_for_a_tile_from_another_log(
    ledger: Ledger, tmp_path: Path, serve: Any
) -> None:
    out = _published(ledger, tmp_path)
    with new_ledger(tmp_path, "other.ledger") as other:
        _fill(other, 1000, 600)
        publish(other, tmp_path / "other")
    shutil.copy(tmp_path / "other/tile/0/002.p/88", out / "tile/0/002.p/88")
    with pytest.raises(RootMismatchError, match="does not match the entries"):
        verify_published(serve(out), POLICY)


def test_verify_fails_for_a_bundle_from_another_log(ledger: Ledger, tmp_path: Path) -> None:
    out = _published(ledger, tmp_path)
    with new_ledger(tmp_path, "other.ledger") as other:
        _fill(other, 1000, 600)
        publish(other, tmp_path / "other")
    for path in ("tile/entries/002.p/88", "tile/0/002.p/88"):
        shutil.copy(tmp_path / "other" / path, out / path)
    with pytest.raises(VerificationError):
        verify_published(str(out), POLICY)


def test_verify_fails_for_a_bundle_with_trailing_bytes(
    ledger: Ledger, tmp_path: Path, serve: Any
) -> None:
    out = _published(ledger, tmp_path)
    with (out / "tile/entries/001").open("ab") as fh:
        fh.write(b"\x00")
    with pytest.raises(MalformedError, match="tile/entries/001: the entry bundle has 1 bytes"):
        verify_published(serve(out), POLICY)


def test_verify_fails_for_a_truncated_tile(ledger: Ledger, tmp_path: Path) -> None:
    out = _published(ledger, tmp_path)
    data = (out / "tile/0/000").read_bytes()
    (out / "tile/0/000").write_bytes(data[:-1])
    with pytest.raises(MalformedError, match="tile/0/000: a hash tile of width 256"):
        verify_published(str(out), POLICY)


def test_verify_fails_for_a_checkpoint_newer_than_its_tiles(
    ledger: Ledger, tmp_path: Path, serve: Any
) -> None:
    out = _published(ledger, tmp_path)
    _fill(ledger, 600, 5)
    (out / "checkpoint").write_text(ledger.latest_checkpoint().note)
    with pytest.raises(NotPublishedError, match="newer than its tiles"):
        verify_published(serve(out), POLICY)


def test_verify_fails_for_a_rewritten_entry(ledger: Ledger, tmp_path: Path) -> None:
    out = _published(ledger, tmp_path)
    entries = decode_entry_bundle((out / "tile/entries/000").read_bytes(), 256)
    entries[3] = entries[3][:-1] + bytes([entries[3][-1] ^ 1])
    (out / "tile/entries/000").write_bytes(encode_entry_bundle(entries))
    with pytest.raises(VerificationError):
        verify_published(str(out), POLICY)


def test_checkpoint_of_publication_opens_with_the_log_key(ledger: Ledger, tmp_path: Path) -> None:
    out = _published(ledger, tmp_path)
    signed = open_checkpoint((out / "checkpoint").read_text(), log_key().verifier)
    assert signed.checkpoint.size == 600


def test_verify_with_a_state_store(ledger: Ledger, tmp_path: Path) -> None:
    out = _published(ledger, tmp_path)
    state = MemoryState()
    assert verify_published(str(out), POLICY, state=state).record_count == 600
    assert state.load(ledger.origin) == ledger.latest_checkpoint().note
    _fill(ledger, 600, 10)
    publish(ledger, out)
    assert verify_published(str(out), POLICY, state=state).record_count == 10
    with pytest.raises(ValueError, match="not both"):
        verify_published(str(out), POLICY, state=state, state_dir=tmp_path / "s")


class _KeepAlive(_Quiet):
    protocol_version = "HTTP/1.1"
    connections: list[int] = []  # noqa: RUF012 - one test's counter

    def setup(self) -> None:
        super().setup()
        type(self).connections.append(1)

    def do_GET(self) -> None:
        if self.path.startswith("/old/"):
            self.send_response(301)
            self.send_header("Location", self.path.removeprefix("/old"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


def test_http_reads_keep_connections_alive_and_follow_redirects(
    ledger: Ledger, tmp_path: Path
) -> None:
    out = _published(ledger, tmp_path)
    _KeepAlive.connections = []
    handler = functools.partial(_KeepAlive, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        fetched: list[str] = []

        class Counting(HttpSource):
            def read(self, path: str, limit: int) -> bytes:
                fetched.append(path)
                return super().read(path, limit)

        assert verify_published(Counting(base), POLICY).record_count == 600
        assert len(fetched) >= 8
        assert len(_KeepAlive.connections) <= 2  # the files came over one kept-alive connection
        # A prefix that redirects is followed.
        assert verify_published(base + "/old", POLICY).record_count == 600
    finally:
        server.shutdown()
        server.server_close()


_GO_TLOG = Path("/usr/share/gocode/src/golang.org/x/mod/sumdb/tlog")


@pytest.mark.skipif(
    shutil.which("go") is None or not _GO_TLOG.is_dir(),
    reason="needs Go and golang.org/x/mod (Debian: golang-go golang-golang-x-mod-dev)",
)
def test_go_sumdb_tlog_reads_our_tiles(tmp_path: Path) -> None:
    # Go's tile reader, with its tile/8/<L>/<N> paths mapped onto ours, checks
    # every tile it reads against the tree hash and proves records from them.
    with new_ledger(tmp_path) as lg:
        _fill(lg, 0, 66_000)
        publish(lg, tmp_path / "pub")
    gopath = tmp_path / "gopath"
    (gopath / "src" / "interop").mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "interop" / "sumdb_tiles.go", gopath / "src/interop")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:/usr/share/gocode",
        "GOCACHE": str(tmp_path / "gocache"),
    }

    def go_read() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["go", "run", "sumdb_tiles.go", str(tmp_path / "pub")],
            cwd=gopath / "src" / "interop",
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    result = go_read()
    assert result.returncode == 0, result.stderr
    assert "tree of 66000 verified from tiles" in result.stdout
    tile = tmp_path / "pub/tile/1/000"
    data = bytearray(tile.read_bytes())
    data[0] ^= 1
    tile.write_bytes(bytes(data))
    assert go_read().returncode != 0  # Go's reader notices the tampered tile too
