"""A witness over HTTP: C2SP tlog-witness ``POST /add-checkpoint`` for a witness directory.

This module owns the HTTP face of :class:`~.witness.Witness`: the status
codes of the protocol (https://c2sp.org/tlog-witness), request bounds and the
one log line per request. The witness's checks, its atomic check-and-update
(a lock file, so concurrent requests from threads or other processes over one
directory never both succeed from one old size) and its persisting of the
new state before the cosignature is returned are the witness's own.

Answers::

    200  the cosignature line                          text/plain
    400  a malformed body, or old size > checkpoint size
    403  no valid signature by a trusted log key
    404  unknown origin (and any path but /add-checkpoint)
    409  old size is not the witness's size; body "<size>\\n", Content-Type text/x.tlog.size
    422  a bad consistency proof, or the same size with another root (a split view)

The standard library's threaded ``http.server`` serves it: the protocol is one
small POST, so a framework would add dependencies and no safety. Bodies are
capped (``Content-Length`` is required, and larger bodies are refused with
413 before they are read), every socket operation times out, reading a body
has an overall deadline, and at most ``max_connections`` connections are
served at once (more are closed on arrival), so slow or endless clients are
dropped and cannot pile up threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from disclosure_ledger._core.checkpoints import peek_checkpoint
from disclosure_ledger._core.evidence import SplitViewError
from disclosure_ledger._witness.witness import Witness
from disclosure_ledger.errors import (
    LedgerError,
    MalformedError,
    OldSizeTooLargeError,
    ProofError,
    SizeWentBackwardsError,
    StaleOldSizeError,
    UnknownOriginError,
    UntrustedKeyError,
    VerificationError,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_REQUEST_TIMEOUT",
    "WitnessServer",
    "status_for",
]

DEFAULT_MAX_BODY = 64 * 1024
"""The largest request body accepted: an old size, 63 proof lines and a cosigned checkpoint."""
DEFAULT_REQUEST_TIMEOUT = 10.0
"""Seconds a client may stall on any read, and (three times over) on sending its body."""
DEFAULT_MAX_CONNECTIONS = 64
"""Connections served at once; more are closed at once, so slow clients cannot pile up threads."""
SIZE_TYPE = "text/x.tlog.size"
_log = logging.getLogger("disclosure_ledger.witness.http")


def status_for(err: LedgerError) -> int:
    """Return the tlog-witness status code for a refusal by :meth:`Witness.add_checkpoint`.

    Raises:
        Nothing: an error of no known kind is a 500.
    """
    if isinstance(err, UnknownOriginError):
        return 404
    if isinstance(err, StaleOldSizeError | SizeWentBackwardsError):
        return 409
    if isinstance(err, OldSizeTooLargeError):
        return 400
    if isinstance(err, SplitViewError | ProofError):
        return 422
    if isinstance(err, UntrustedKeyError | VerificationError):
        return 403
    if isinstance(err, MalformedError):
        return 400
    return 500


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the protocol recommends
    server_version = "disclosure-ledger-witness"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Every read and write on the connection, idle keep-alive waits included.
        self.connection.settimeout(self.server.request_timeout)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        # http.server's own messages (bad request lines, timeouts) as one line too.
        _log.info("%s %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Replaced by the one line per request written in _reply.
        del code, size

    def _reply(self, status: int, body: str, content_type: str, detail: str) -> None:
        data = body.encode("utf-8")
        # Logged before the answer goes out, so the line is there when the client hears.
        _log.info(
            '%s "%s %s" %d %s', self.address_string(), self.command, self.path, status, detail
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, message: str) -> None:
        self._reply(status, message + "\n", "text/plain; charset=utf-8", message)

    def do_GET(self) -> None:
        if self.path == "/add-checkpoint":
            self.send_response_only(405)
            self.send_header("Allow", "POST")
            self.send_header("Content-Length", "0")
            self.end_headers()
            _log.info('%s "GET %s" 405', self.address_string(), self.path)
            return
        self._refuse(404, "not found")

    def _read_body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            self._refuse(411, "a Content-Length is required")
            return None
        length = int(length_text)
        if length > self.server.max_body:
            self.close_connection = True
            self._refuse(413, f"the body is larger than {self.server.max_body} bytes")
            return None
        deadline = time.monotonic() + 3 * self.server.request_timeout
        chunks: list[bytes] = []
        remaining = length
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError("the client is too slow sending its body")
            chunk = self.rfile.read1(remaining)
            if not chunk:
                raise ConnectionError("the client closed the connection mid-body")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self._refuse(404, "not found")
            return
        try:
            body = self._read_body()
        except (TimeoutError, ConnectionError) as err:
            self.close_connection = True
            _log.info('%s "POST %s" dropped: %s', self.address_string(), self.path, err)
            return
        if body is None:
            return
        try:
            line = self.server.witness.add_checkpoint(body, int(self.server.clock()))
        except (StaleOldSizeError, SizeWentBackwardsError) as err:
            self._reply(409, f"{err.current_size}\n", SIZE_TYPE, str(err))
            return
        except LedgerError as err:
            self._refuse(status_for(err), str(err))
            return
        except Exception as err:  # noqa: BLE001 - the server answers 500 and keeps serving
            _log.exception("add-checkpoint failed")
            self._refuse(500, f"internal error: {type(err).__name__}")
            return
        try:
            detail = _describe(body)
        except LedgerError:
            detail = "cosigned"
        self._reply(200, line, "text/plain; charset=utf-8", detail)


def _describe(body: bytes) -> str:
    # "cosigned <origin> <size>" for the log line; the body was accepted, so it parses.
    text = body.decode("utf-8")
    note = text.split("\n\n", 1)[1] if "\n\n" in text else text
    cp = peek_checkpoint(note)
    return f"cosigned {cp.origin} {cp.size}"


class WitnessServer(ThreadingHTTPServer):
    """A threaded HTTP server answering tlog-witness requests for one :class:`Witness`.

    Use :meth:`serve_forever` (or :meth:`start` for a background thread) and
    :meth:`close`. ``clock`` gives cosignature times in Unix seconds.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        witness: Witness,
        *,
        clock: Callable[[], float] = time.time,
        max_body: int = DEFAULT_MAX_BODY,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        """Bind ``address`` (``("127.0.0.1", 0)`` picks a free port).

        Raises:
            OSError: if the address cannot be bound.
        """
        self.witness = witness
        self.clock = clock
        self.max_body = max_body
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._thread: threading.Thread | None = None
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection on a thread, or close it when every slot is taken."""
        if not self._slots.acquire(blocking=False):
            _log.info("%s refused: every connection slot is taken", client_address[0])
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        """The server's base URL (its submission prefix)."""
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}"

    def start(self) -> WitnessServer:
        """Serve on a background thread; return the server."""
        self._thread = threading.Thread(target=self.serve_forever, name="witness-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the socket (waits for the serving thread)."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
