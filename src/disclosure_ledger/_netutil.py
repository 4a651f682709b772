"""Bounded HTTP requests: a size cap on every response, a deadline on every exchange.

This module owns the one way the library talks HTTP as a client (reading
published tiles, asking witnesses to cosign): the standard library's
``urllib``, with only ``http`` and ``https`` URLs, a cap on the bytes read
(checked while reading, so an endless body is cut off, not buffered), a
per-operation socket timeout and an overall deadline. A response with any
status is returned to the caller, who decides what a 404 or a 409 means;
transport failures are raised as :class:`OSError`.

:class:`HttpSession` keeps connections open between GETs (HTTP/1.1
keep-alive, a few idle connections per server), for a reader that fetches
many small files from one server, as a tile reader does.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPResponse
from urllib.parse import urljoin, urlsplit

__all__ = [
    "HttpResponse",
    "HttpSession",
    "ResponseTooLargeError",
    "check_http_url",
    "http_prefix",
    "http_request",
]

_CHUNK = 64 * 1024


class ResponseTooLargeError(OSError):
    """A response body was larger than the caller's cap."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A response: its status, its media type (lower case, no parameters) and body."""

    status: int
    content_type: str
    body: bytes


def check_http_url(url: str) -> str:
    """Return ``url`` if it is an ``http`` or ``https`` URL with a host.

    Raises:
        ValueError: naming what is wrong.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url


def http_prefix(prefix: str, timeout: float, what: str) -> str:
    """Check a client's http(s) URL prefix and timeout; return the prefix ending in ``/``.

    Raises:
        ValueError: if ``prefix`` is not an http(s) URL with a host, or
            ``timeout`` is not positive (``what`` names whose timeout). Like
            the rest of this module it raises no library error: the caller
            names the family (it sits beside ``errors``, not above it).
    """
    check_http_url(prefix)
    if timeout <= 0:
        raise ValueError(f"the {what} timeout must be positive")
    return prefix.rstrip("/") + "/"


def _read_capped(resp: HTTPResponse | urllib.error.HTTPError, limit: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the response took too long")
        chunk = resp.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise ResponseTooLargeError(f"the response is larger than {limit} bytes")
        chunks.append(chunk)


def http_request(
    url: str,
    *,
    limit: int,
    timeout: float,
    data: bytes | None = None,
    content_type: str | None = None,
    accept: str | None = None,
) -> HttpResponse:
    """GET ``url`` (or POST ``data``) and return the response, whatever its status.

    ``timeout`` bounds each socket operation and, three times over, the whole
    exchange, so a server that dribbles bytes is cut off too.

    Raises:
        ValueError: if ``url`` is not an http(s) URL.
        ResponseTooLargeError: if the body is larger than ``limit`` bytes.
        TimeoutError: if the server is too slow.
        OSError: if the server cannot be reached or the connection breaks.
    """
    check_http_url(url)
    headers = {"User-Agent": "disclosure-ledger"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=data, headers=headers, method="GET" if data is None else "POST"
    )
    deadline = time.monotonic() + 3 * timeout
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - checked
            body = _read_capped(resp, limit, deadline)
            return HttpResponse(resp.status, _media_type(resp.headers.get("Content-Type")), body)
    except urllib.error.HTTPError as err:
        with err:
            body = _read_capped(err, limit, deadline)
            return HttpResponse(err.code, _media_type(err.headers.get("Content-Type")), body)
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, OSError):
            raise reason from err
        raise OSError(f"cannot reach {url}: {reason}") from err


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_IDLE_PER_SERVER = 8


class HttpSession:
    """GETs over kept-alive connections, bounded as :func:`http_request` is.

    Thread-safe: a connection is used by one request at a time and returned
    to a small idle pool per server afterwards. Redirects are followed (at
    most 5). A kept-alive connection the server has closed is retried once
    on a new one.
    """

    def __init__(self, timeout: float) -> None:
        """Time out each socket operation after ``timeout`` seconds (three times over in all)."""
        self.timeout = timeout
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._ssl = ssl.create_default_context()

    def _connect(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop()
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self._ssl)
        return http.client.HTTPConnection(netloc, timeout=self.timeout)

    def _release(self, scheme: str, netloc: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault((scheme, netloc), [])
            if len(idle) < _IDLE_PER_SERVER:
                idle.append(conn)
                return
        conn.close()

    def _once(self, url: str, limit: int, deadline: float) -> tuple[HttpResponse, str | None]:
        parts = urlsplit(check_http_url(url))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": "disclosure-ledger", "Accept-Encoding": "identity"}
        for attempt in (0, 1):
            conn = self._connect(parts.scheme, parts.netloc)
            reused = conn.sock is not None
            try:
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
            except (http.client.HTTPException, OSError) as err:
                conn.close()
                if reused and attempt == 0 and not isinstance(err, TimeoutError):
                    continue  # the server closed an idle connection: try a new one
                if isinstance(err, OSError):
                    raise
                raise OSError(f"{url}: {type(err).__name__}: {err}") from err
            try:
                body = _read_capped(resp, limit, deadline)
            except BaseException:
                conn.close()
                raise
            if resp.will_close:
                conn.close()
            else:
                self._release(parts.scheme, parts.netloc, conn)
            location = resp.getheader("Location") if resp.status in _REDIRECTS else None
            result = HttpResponse(resp.status, _media_type(resp.getheader("Content-Type")), body)
            return result, None if location is None else urljoin(url, location)
        raise OSError(f"{url}: the connection was closed")  # pragma: no cover - loop returns

    def get(self, url: str, *, limit: int) -> HttpResponse:
        """GET ``url`` and return the response, whatever its status.

        Raises:
            ValueError: if ``url`` (or a redirect) is not an http(s) URL.
            ResponseTooLargeError: if the body is larger than ``limit`` bytes.
            TimeoutError: if the server is too slow.
            OSError: if the server cannot be reached, the connection breaks or
                there are too many redirects.
        """
        deadline = time.monotonic() + 3 * self.timeout
        for _ in range(_MAX_REDIRECTS + 1):
            resp, location = self._once(url, limit, deadline)
            if location is None:
                return resp
            url = location
        raise OSError(f"{url}: more than {_MAX_REDIRECTS} redirects")

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()
