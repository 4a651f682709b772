"""The witness over HTTP (C2SP tlog-witness): every status code, races, restarts, a client.

The server binds 127.0.0.1 on a free port; requests are built by real ledgers.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from disclosure_ledger._core.checkpoints import (
    Checkpoint,
    WitnessRequest,
    format_witness_request,
    sign_checkpoint,
)
from disclosure_ledger._core.notes import Signer
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._witness.client import (
    OUTCOME_COSIGNED,
    OUTCOME_REFUSED,
    OUTCOME_UNAVAILABLE,
    HttpWitness,
    collect_cosignatures,
)
from disclosure_ledger._witness.cosigner import Cosigner
from disclosure_ledger._witness.server import WitnessServer
from disclosure_ledger._witness.witness import Witness
from disclosure_ledger.errors import MalformedError

from .ledger_helpers import event, forked_ledgers, log_key, new_ledger, witness_key

NOW = 1_800_000_000


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness.init(tmp_path / "w", witness_key(), [log_key().verifier])


@pytest.fixture
def server(witness: Witness) -> Iterator[WitnessServer]:
    srv = WitnessServer(("127.0.0.1", 0), witness, clock=lambda: NOW, request_timeout=2.0)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    lg = new_ledger(tmp_path)
    lg.append_many([event(i) for i in range(5)])
    yield lg
    lg.close()


def _post(
    srv: WitnessServer, body: bytes | str, path: str = "/add-checkpoint"
) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=5)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request("POST", path, body=data)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()
    finally:
        conn.close()


def _body(ledger: Ledger, old: int) -> str:
    return format_witness_request(ledger.witness_request(old))


def test_200_returns_the_cosignature_and_persists_first(
    server: WitnessServer, witness: Witness, ledger: Ledger
) -> None:
    status, ctype, text = _post(server, _body(ledger, 0))
    assert status == 200, text
    assert ctype.startswith("text/plain")
    assert text.startswith("— witness.example/w1 ")
    assert text.endswith("\n")
    state = witness.state(ledger.origin)
    assert state is not None
    assert state.size == 5
    n = ledger.add_cosignatures(5, [text.strip()], [witness_key().verifier])
    assert n == 1


def test_404_for_an_unknown_origin_and_path(server: WitnessServer, tmp_path: Path) -> None:
    other = Signer("other.example/log", bytes(32))
    with Ledger.create(tmp_path / "o.ledger", log_key=other) as lg:
        lg.append_many([event(0)])
        status, _, text = _post(server, _body(lg, 0))
    assert status == 404
    assert "does not follow" in text
    assert _post(server, "x", path="/other")[0] == 404


def test_403_without_a_trusted_signature(server: WitnessServer, tmp_path: Path) -> None:
    impostor = Signer(log_key().name, bytes(range(5, 37)))
    note = sign_checkpoint(Checkpoint(log_key().name, 1, bytes(32)), impostor)
    status, _, text = _post(server, format_witness_request(WitnessRequest(0, (), note)))
    assert status == 403, text


def test_400_for_malformed_bodies_and_old_beyond_size(
    server: WitnessServer, ledger: Ledger
) -> None:
    assert _post(server, "not a request")[0] == 400
    assert _post(server, b"\xff\xfe")[0] == 400
    body = _body(ledger, 0).replace("old 0\n", "old 9\n", 1)
    status, _, text = _post(server, body)
    assert status == 400
    assert "larger than the checkpoint size" in text


def test_409_carries_the_witness_size(server: WitnessServer, ledger: Ledger) -> None:
    assert _post(server, _body(ledger, 0))[0] == 200
    ledger.append_many([event(10 + i) for i in range(3)])
    status, ctype, text = _post(server, _body(ledger, 2))
    assert status == 409
    assert ctype == "text/x.tlog.size"
    assert text == "5\n"


def test_422_for_a_bad_proof_and_a_same_size_fork(server: WitnessServer, tmp_path: Path) -> None:
    gen = forked_ledgers(tmp_path)
    a, b = next(gen)
    try:
        a.append_many([event(i) for i in range(4)])
        b.append_many([event(100 + i) for i in range(4)])
        assert _post(server, _body(a, 0))[0] == 200
        status, _, text = _post(server, _body(b, 0).replace("old 0", "old 4"))
        assert status == 422, text
        a.append_many([event(4)])
        request = a.witness_request(4)
        bad = WitnessRequest(4, (bytes(32),) * len(request.proof), request.checkpoint)
        status, _, text = _post(server, format_witness_request(bad))
        assert status == 422, text
    finally:
        b.close()
        gen.close()


def test_bodies_are_capped_and_need_a_length(witness: Witness) -> None:
    srv = WitnessServer(("127.0.0.1", 0), witness, max_body=100).start()
    try:
        assert _post(srv, "x" * 101)[0] == 413
        with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5) as s:
            s.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 411")
    finally:
        srv.close()


def test_a_slow_client_is_dropped(witness: Witness) -> None:
    srv = WitnessServer(("127.0.0.1", 0), witness, request_timeout=0.3).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5) as s:
            s.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nold")
            start = time.monotonic()
            assert s.recv(100) == b""  # the server closed the connection
            assert time.monotonic() - start < 3
        # and keeps serving others
        assert _post(srv, "bad")[0] == 400
    finally:
        srv.close()


def test_one_log_line_per_request(
    server: WitnessServer, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="disclosure_ledger.witness.http"):
        _post(server, _body(ledger, 0))
        _post(server, "bad")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert '"POST /add-checkpoint" 200 cosigned vendor.example/ledger/owner-42 5' in lines[0]
    assert '"POST /add-checkpoint" 400' in lines[1]


def test_a_race_from_one_old_size_has_one_winner(server: WitnessServer, ledger: Ledger) -> None:
    # Two valid requests from the witness's size 5, to sizes 6 and 7: whichever
    # is checked first wins; the other no longer starts at the witness's size.
    assert _post(server, _body(ledger, 0))[0] == 200
    ledger.append_many([event(10)])
    ledger.append_many([event(11)])
    bodies = [
        format_witness_request(ledger.witness_request(5, 6)),
        format_witness_request(ledger.witness_request(5, 7)),
    ]
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(2)

    def go(body: str) -> None:
        barrier.wait()
        status, _, text = _post(server, body)
        results.append((status, text))

    threads = [threading.Thread(target=go, args=(body,)) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in results) == [200, 409]
    [conflict] = [text for status, text in results if status == 409]
    assert conflict in ("6\n", "7\n")


def test_a_restart_in_the_middle_of_a_sequence(
    witness: Witness, ledger: Ledger, tmp_path: Path
) -> None:
    srv = WitnessServer(("127.0.0.1", 0), witness).start()
    assert _post(srv, _body(ledger, 0))[0] == 200
    srv.close()
    ledger.append_many([event(10 + i) for i in range(4)])
    reopened = Witness.open(tmp_path / "w", witness_key())
    srv = WitnessServer(("127.0.0.1", 0), reopened).start()
    try:
        status, _, text = _post(srv, _body(ledger, 0))
        assert (status, text) == (409, "5\n")
        assert _post(srv, _body(ledger, 5))[0] == 200
    finally:
        srv.close()


# -- the client ---------------------------------------------------------------------------


def test_a_ledger_cosigns_through_http(server: WitnessServer, ledger: Ledger) -> None:
    endpoint = HttpWitness(server.url, witness_key().verifier, timeout=5)
    with Cosigner(ledger, [endpoint]) as cosigner:
        outcomes = cosigner.cosign_now()
        assert [o.outcome for o in outcomes] == [OUTCOME_COSIGNED]
        ledger.append_many([event(10 + i) for i in range(3)])
        outcomes = cosigner.cosign_now()
        assert [o.outcome for o in outcomes] == [OUTCOME_COSIGNED]
        # From 5, or from 8 when the background round after the commit came first.
        assert outcomes[0].detail in ("old 5", "old 8")
        assert outcomes[0].size == 8
    cp = ledger.latest_checkpoint()
    assert cp.cosigned_by([witness_key().verifier])


def test_the_client_follows_a_409(server: WitnessServer, ledger: Ledger, witness: Witness) -> None:
    # The witness already holds size 5 (cosigned by another path); the ledger knows nothing.
    witness.add_checkpoint(ledger.witness_request(0), NOW)
    ledger.append_many([event(10)])
    endpoint = HttpWitness(server.url + "/", witness_key().verifier)
    outcome = collect_cosignatures(ledger, [endpoint], NOW)[0]
    assert outcome.outcome == OUTCOME_COSIGNED, outcome.detail
    assert outcome.detail == "old 5"


def test_the_client_reports_refusals_and_unavailability(
    server: WitnessServer, ledger: Ledger
) -> None:
    wrong = HttpWitness(server.url, Signer("x.example/w", bytes(32), 4).verifier)
    outcome = collect_cosignatures(ledger, [wrong], NOW)[0]
    assert outcome.outcome == OUTCOME_REFUSED
    assert "without a cosignature by its key" in outcome.detail
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    down = HttpWitness(f"http://127.0.0.1:{port}", witness_key().verifier, timeout=1)
    outcome = collect_cosignatures(ledger, [down], NOW)[0]
    assert outcome.outcome == OUTCOME_UNAVAILABLE
    with pytest.raises(MalformedError, match="not an http"):
        HttpWitness("file:///etc", witness_key().verifier)


def test_connections_beyond_the_cap_are_closed(witness: Witness) -> None:
    srv = WitnessServer(("127.0.0.1", 0), witness, max_connections=1, request_timeout=5).start()
    port = srv.server_address[1]
    try:
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        time.sleep(0.2)  # the idle connection holds the only slot
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            _post(srv, "bad")
        idle.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                assert _post(srv, "bad")[0] == 400
                break
            except (ConnectionError, http.client.HTTPException):
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        srv.close()


def test_two_servers_over_one_directory_serialize_on_its_lock(
    witness: Witness, ledger: Ledger, tmp_path: Path
) -> None:
    # Two Witness objects share no thread lock: only the directory's lock file
    # (as between processes) keeps both from succeeding from one old size.
    other = Witness.open(tmp_path / "w", witness_key())
    servers = [WitnessServer(("127.0.0.1", 0), w).start() for w in (witness, other)]
    try:
        assert _post(servers[0], _body(ledger, 0))[0] == 200
        ledger.append_many([event(10)])
        ledger.append_many([event(11)])
        bodies = [
            format_witness_request(ledger.witness_request(5, 6)),
            format_witness_request(ledger.witness_request(5, 7)),
        ]
        results: list[int] = []
        barrier = threading.Barrier(2)

        def go(srv: WitnessServer, body: str) -> None:
            barrier.wait()
            results.append(_post(srv, body)[0])

        threads = [
            threading.Thread(target=go, args=(srv, body))
            for srv, body in zip(servers, bodies, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 409]
    finally:
        for srv in servers:
            srv.close()
