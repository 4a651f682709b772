"""Bounded HTTP requests: a size cap on every response, a deadline on every exchange.

This module owns the one way the library talks HTTP as a client (reading
published tiles, asking witnesses to cosign): the standard library's
``urllib``, with only ``http`` and ``https`` URLs, a cap on the bytes read
(checked while reading, so an endless body is cut off, not buffered), a
per-operation socket timeout and an overall deadline. A response with any
status is returned to the caller, who decides what a 404 or a 409 means;
transport failures are raised as :class:`OSError`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPResponse
from urllib.parse import urlsplit

__all__ = ["HttpResponse", "ResponseTooLargeError", "check_http_url", "http_request"]

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
