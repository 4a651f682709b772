"""The command line for tiles and HTTP witnesses: publish, prove --tiles, verify --tiles,
witness serve and witness-collect --witness-url."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from disclosure_ledger._core.checkpoints import format_witness_request, parse_receipt
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._netutil import http_request
from disclosure_ledger.keys import keygen

from .cli_helpers import assert_one_line_error, run
from .ledger_helpers import ORIGIN, event, release_event


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    log = keygen(ORIGIN, tmp_path / "log")
    writer = keygen("vendor.example/writer", tmp_path / "writer")
    keygen("witness.example/w1", tmp_path / "w1", key_type=KEY_TYPE_COSIGNATURE)
    with Ledger.create(tmp_path / "l.ledger", log_key=log, writers=[writer]) as lg:
        lg.append_many([event(i) for i in range(300)] + [release_event(300)])
    return tmp_path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture
def served(work: Path) -> Iterator[str]:
    assert run("publish", "l.ledger", "pub").exit_code == 0
    handler = functools.partial(_Quiet, directory=str(work / "pub"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_publish_then_again(work: Path) -> None:
    r = run("publish", "l.ledger", "pub")
    assert r.exit_code == 0, r.stderr
    assert f"published {ORIGIN} at size 301" in r.stdout
    assert (work / "pub/tile/entries/001.p/45").exists()
    r = run("publish", "l.ledger", "pub")
    assert "from size 301; 0 files" in r.stdout


def test_publish_refuses_another_log(work: Path) -> None:
    other = keygen("other.example/log", work / "other")
    with Ledger.create(work / "o.ledger", log_key=other) as lg:
        lg.append_many([event(0)])
    run("publish", "l.ledger", "pub")
    assert_one_line_error(run("publish", "o.ledger", "pub"), 2, "refusing to publish")


def test_prove_from_tiles(work: Path, served: str) -> None:
    for where in ("pub", served):
        r = run("prove", "--tiles", where, "--log-key", "log.pub", "--index", 300)
        assert r.exit_code == 0, r.stderr
        receipt = parse_receipt(r.stdout)
        assert receipt.index == 300
    r = run("verify-receipt", "-", "--log-key", "log.pub", input=r.stdout)
    assert r.exit_code == 0, r.stderr
    assert_one_line_error(
        run("prove", "--tiles", "pub", "--log-key", "log.pub", "--index", 301),
        2,
        "not below the published size 301",
    )
    assert run("prove", "--tiles", "pub", "--index", 1).exit_code == 2  # needs --log-key
    assert run("prove", "l.ledger", "--tiles", "pub", "--index", 1).exit_code == 2


def test_verify_tiles(work: Path, served: str) -> None:
    r = run("verify", "--tiles", served, "--log-key", "log.pub", "--writer-key", "writer.pub")
    assert r.exit_code == 0, r.stderr
    assert "301" in r.stdout
    r = run(
        "verify",
        "--tiles",
        "pub",
        "--log-key",
        "log.pub",
        "--writer-key",
        "writer.pub",
        "--state",
        "state",
    )
    assert r.exit_code == 0, r.stderr
    data = bytearray((work / "pub/tile/0/000").read_bytes())
    data[7] ^= 1
    (work / "pub/tile/0/000").write_bytes(bytes(data))
    r = run("verify", "--tiles", served, "--log-key", "log.pub", "--writer-key", "writer.pub")
    assert_one_line_error(r, 1, "verification failed", "tile/0/000")
    (work / "pub/tile/entries/001.p/45").unlink()
    (work / "pub/tile/0/000").unlink()
    r = run("verify", "--tiles", "pub", "--log-key", "log.pub", "--writer-key", "writer.pub")
    assert_one_line_error(r, 1, "not published")
    assert run("verify", "--log-key", "log.pub").exit_code == 2
    r = run("verify", "--tiles", "http://127.0.0.1:1", "--log-key", "log.pub")
    assert_one_line_error(r, 2, "cannot fetch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the witness server did not start")


def test_witness_serve_and_collect_over_http(work: Path) -> None:
    r = run("witness", "init", "wd", "--key", "w1.key", "--log", "log.pub")
    assert r.exit_code == 0, r.stderr
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    listen = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "disclosure_ledger", "witness", "serve", "wd", "--listen", listen],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        _wait_listening(port)
        url = f"http://127.0.0.1:{port}"
        r = run("witness-collect", "l.ledger", "--witness-url", url, "--witness-url-key", "w1.pub")
        assert r.exit_code == 0, (r.stdout, r.stderr)
        assert r.stdout.startswith(f"cosigned {url} size 301")
        with Ledger.open(work / "l.ledger", readonly=True) as lg:
            body = format_witness_request(lg.witness_request(0))
        resp = http_request(url + "/add-checkpoint", limit=1000, timeout=5, data=body.encode())
        assert (resp.status, resp.content_type, resp.body) == (409, "text/x.tlog.size", b"301\n")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "listening on http://127.0.0.1:" in err
    assert '"POST /add-checkpoint" 200 cosigned' in err
    assert '"POST /add-checkpoint" 409' in err


def test_witness_serve_errors(work: Path) -> None:
    run("witness", "init", "wd", "--key", "w1.key", "--log", "log.pub")
    assert run("witness", "serve", "wd", "--listen", "nonsense").exit_code == 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        r = run("witness", "serve", "wd", "--listen", f"127.0.0.1:{taken}")
        assert_one_line_error(r, 2, "cannot listen")
    r = run(
        "witness-collect", "l.ledger", "--witness-url", "ftp://x", "--witness-url-key", "w1.pub"
    )
    assert_one_line_error(r, 2, "not an http")
    r = run("witness-collect", "l.ledger", "--witness-url", "http://127.0.0.1:1")
    assert_one_line_error(r, 2, "--witness-url-key")


def test_verify_tiles_times_out(work: Path) -> None:
    with socket.socket() as s:  # accepts, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        start = time.monotonic()
        r = run("verify", "--tiles", url, "--log-key", "log.pub", "--timeout", "0.3")
        assert time.monotonic() - start < 5
    assert_one_line_error(r, 2, "timed out after 0.3 s")
