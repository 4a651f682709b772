"""One output convention for every command: plain text for people, ``--json`` for programs.

This module owns the ``--json`` option and how a command's result is
printed: a command builds its result once, as a JSON-ready dict, and says
how it reads as text; :func:`emit` prints one or the other. A JSON result is
one document (indented, UTF-8, with a final newline), the same shape on
every run, so scripts can rely on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["emit", "json_option", "to_json_text"]

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    """Add ``--json`` (as the ``as_json`` parameter) to a command.

    Raises:
        Nothing: it only declares the option.
    """
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the result as one JSON document."
    )(f)


def to_json_text(data: object) -> str:
    """Return ``data`` as one indented JSON document with a final newline.

    Raises:
        TypeError: if ``data`` holds a value JSON cannot represent (a programming error).
    """
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def emit(data: dict[str, Any], text: str, *, as_json: bool) -> None:
    """Print ``data`` as JSON if ``as_json``, else ``text`` (a final newline is added if missing).

    Raises:
        Nothing on purpose: an OSError from the write passes through to the main group.
    """
    if as_json:
        click.echo(to_json_text(data), nl=False)
    else:
        click.echo(text if text.endswith("\n") else text + "\n", nl=False)
