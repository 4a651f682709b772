"""Browsing a ledger from the command line: the query index, records, a database's logs.

This module owns ``index``, ``show`` and ``logs``: the commands that read
what a ledger holds for people and programs, as JSON lines or text, without
checking it (``check`` and ``verify`` do that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from typing import Any

import click

from disclosure_ledger._cli.kit import (
    CommandError,
)
from disclosure_ledger._cli.output import emit, json_option
from disclosure_ledger._cli.target import (
    LedgerTarget,
    is_url,
    ledger_target,
    target_of,
)
from disclosure_ledger._core import records
from disclosure_ledger._core.notes import (
    b64encode,
)
from disclosure_ledger._log.database import LedgerDatabase
from disclosure_ledger._log.index import Record
from disclosure_ledger._verify.report import printable
from disclosure_ledger.errors import (
    ValidationError,
)

__all__ = ["register"]


@click.command()
@ledger_target
@json_option
def index(*, ledger: LedgerTarget, as_json: bool) -> None:
    """Bring the query index up to the records appended since it was last updated.

    Queries (`show --camera/--owner`) then read the index instead of decoding
    each new record. Appends never wait for the index; this can run beside them.

    \f
    Raises:
        StorageError: if the ledger cannot be opened or written.
        MalformedError: if a stored record does not decode (a damaged file).
    """
    with ledger.open() as lg:
        added = lg.update_index()
        data = {"indexed": added, "covers": lg.size}
        emit(data, f"indexed {added} new records; the index covers {lg.size}", as_json=as_json)


def _record_json(rec: Record) -> str:
    return json.dumps(
        {
            "index": rec.index,
            "leaf_hash": b64encode(rec.leaf_hash),
            "event": records.event_to_json(rec.event),
        },
        ensure_ascii=False,
    )


def _record_text(rec: Record) -> str:
    """One record in one line of words: index, time, action, by whom, to whom, on what basis."""
    ev = rec.event
    actor = ev.actor
    who = " ".join(x for x in (actor.organization, actor.id) if x)
    line = f"#{rec.index}  {records.format_time(ev.occurred_at)}  {ev.event_id}: {ev.action.value}"
    line += f" by {actor.kind.value}" + (f" ({who})" if who else "")
    if ev.recipient is not None:
        r = ev.recipient
        line += f" to {r.organization or r.id or r.kind.value}"
    line += f", camera {ev.camera_id}"
    if ev.legal_basis is not None:
        ref = ev.legal_reference
        line += f", basis {ev.legal_basis.value}" + (f" ({ref})" if ref else "")
    return printable(line)


def _time_option(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return records.parse_time(value, option)
    except ValidationError as err:
        raise CommandError(f"{option}: {err.message}") from err


@click.command()
@ledger_target
@click.option("--index", type=click.IntRange(min=0), help="Only record I.")
@click.option("--camera", help="Only records of this camera_id.")
@click.option("--owner", help="Only records of this owner_id.")
@click.option("--action", help="Only records with this action (view, release, ...).")
@click.option(
    "--actor-kind", help="Only records whose actor is of this kind (vendor_employee, ...)."
)
@click.option("--recipient", help="Only records whose recipient has this organization or kind.")
@click.option("--legal-basis", help="Only records with this legal basis (warrant, emergency, ...).")
@click.option("--since", metavar="TIME", help="Only records that occurred at TIME or later.")
@click.option("--until", metavar="TIME", help="Only records that occurred before TIME.")
@click.option("--limit", type=click.IntRange(min=0), help="At most N records.")
@json_option
def show(
    *,
    ledger: LedgerTarget,
    index: int | None,
    camera: str | None,
    owner: str | None,
    action: str | None,
    actor_kind: str | None,
    recipient: str | None,
    legal_basis: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Print records, one a line: in words, or with --json as JSON lines.

    A JSON line holds the index, the leaf hash and the event's JSON form.

    The filters are those of Ledger.query(); every one given must match.
    Times are RFC 3339 with a zone (2026-11-27T09:00:00Z); --since is
    inclusive, --until exclusive.

    \f
    Raises:
        click.UsageError: if --index is combined with a filter.
        CommandError: if a time is not an RFC 3339 time with a zone.
        StorageError: if the ledger cannot be opened or has no record I.
    """
    filters: dict[str, Any] = {
        "camera_id": camera,
        "owner_id": owner,
        "action": action,
        "actor_kind": actor_kind,
        "recipient": recipient,
        "legal_basis": legal_basis,
        "since": _time_option(since, "--since"),
        "until": _time_option(until, "--until"),
    }
    filtered = any(v is not None for v in filters.values())
    with ledger.open(readonly=True) as lg:
        if index is not None:
            if filtered:
                raise click.UsageError("--index cannot be combined with a filter")
            found: Iterator[Record] = iter([lg.record(index)])
        elif filtered:
            found = iter(lg.query(**filters, limit=limit))
        else:
            found = lg.iter_records()
        line = _record_json if as_json else _record_text
        for rec in islice(found, limit):
            click.echo(line(rec))


@click.command()
@click.argument("url", metavar="URL")
@click.option("--keys", is_flag=True, help="Also print each log's public key (for its owner).")
def logs(*, url: str, keys: bool) -> None:
    """List the logs of the PostgreSQL database at URL: origin and size, one a line.

    \f
    Raises:
        CommandError: if URL is not a postgresql:// URL.
        StorageError: if the database cannot be reached or has no ledger schema.
    """
    if not is_url(url):
        raise CommandError(f"{url}: not a postgresql:// URL (logs lists a database's logs)")
    target_of(url, "-")  # refuses a URL of another scheme, in one line
    with LedgerDatabase.connect(url, readonly=True, pool_size=1) as db:
        for origin, size, vkey in db.log_keys() if keys else ((o, s, "") for o, s in db.logs()):
            click.echo(f"{origin}\t{size}" + (f"\t{vkey}" if keys else ""))


def register(cli: click.Group) -> None:
    """Add the ``index``, ``show`` and ``logs`` commands to ``cli``.

    Raises:
        Nothing: :meth:`click.Group.add_command` replaces a command of the same name.
    """
    cli.add_command(index, "index")
    cli.add_command(show, "show")
    cli.add_command(logs, "logs")
