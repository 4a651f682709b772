"""The ledger's side of witnessing: ask each witness to cosign the newest checkpoint.

This module owns the conversation with witnesses after a commit. A witness is
an in-process :class:`~.witness.Witness` (:class:`LocalWitness`), a
command (:class:`CommandWitness`) that reads a C2SP tlog-witness add-checkpoint
body on standard input and prints a ``cosignature/v1`` line, as
``disclosure-ledger witness add DIR -`` does, or a C2SP tlog-witness HTTP
server (:class:`HttpWitness`), whose 409 answer carries the size it holds.
:func:`collect_cosignatures` sends each one the request from the size it
last cosigned, stores what comes back with the checkpoint, and records every
outcome in the ledger's witness events. It never raises for a witness that
is down, slow or refusing: a witness can delay or withhold its cosignature,
never an append.

The command protocol: exit status 0 and the cosignature line on standard
output is success. A witness that holds another size than the request's
``old`` exits non-zero and prints that size, in decimal, alone on standard
output (the body of the protocol's 409 response); the client then retries
once from it. Anything else is a refusal, reported with the first line of
standard error.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from disclosure_ledger._core.checkpoints import (
    WitnessRequest,
    format_witness_request,
    parse_decimal,
)
from disclosure_ledger._core.notes import Verifier, parse_signature_line
from disclosure_ledger._netutil import http_prefix, http_request
from disclosure_ledger._witness.witness import StaleOldSizeError, Witness
from disclosure_ledger.errors import LedgerError, MalformedError

if TYPE_CHECKING:  # the ledger imports this module to run its witnesses
    from disclosure_ledger._log.ledger import Ledger

__all__ = [
    "OUTCOME_COSIGNED",
    "OUTCOME_ERROR",
    "OUTCOME_INVALID",
    "OUTCOME_REFUSED",
    "OUTCOME_UNAVAILABLE",
    "CommandWitness",
    "HttpWitness",
    "LocalWitness",
    "StaleSize",
    "WitnessEndpoint",
    "WitnessOutcome",
    "collect_cosignatures",
]

OUTCOME_COSIGNED = "cosigned"
"""The witness cosigned; its line (one per key) is stored with the checkpoint."""
OUTCOME_REFUSED = "refused"
"""The witness answered and refused (bad proof, stale size, split view, ...)."""
OUTCOME_UNAVAILABLE = "unavailable"
"""The witness did not answer: the command is missing, failed to start or timed out."""
OUTCOME_INVALID = "invalid"
"""The witness answered with a line that does not verify under its key."""
OUTCOME_ERROR = "error"
"""Anything else went wrong (for example the ledger could not build the request)."""

_MAX_OUTPUT = 64 * 1024


class StaleSize(Exception):  # noqa: N818 - a signal between endpoint and client, not an error
    """An endpoint's answer that the witness holds ``current_size``, not the request's ``old``."""

    def __init__(self, current_size: int, detail: str) -> None:
        super().__init__(detail)
        self.current_size = current_size


class WitnessEndpoint(Protocol):
    """How the client talks to one witness.

    An endpoint may also have ``verifiers``, every key whose lines are kept
    from its answers (a witness holding an ML-DSA-44 key beside an Ed25519
    one); without it, only ``verifier``'s line is.
    """

    @property
    def name(self) -> str:
        """A stable name for this witness in the ledger's witness events."""
        ...

    @property
    def verifier(self) -> Verifier:
        """The witness's cosignature key (its first, when it holds two)."""
        ...

    def known_size(self, ledger: Ledger) -> int | None:
        """The size this witness last cosigned for the ledger's log, if the endpoint knows it.

        Raises:
            StorageError: if the state it reads the size from cannot be read;
                :func:`collect_cosignatures` turns any exception into an outcome.
        """
        ...

    def submit(self, body: str, now: int) -> str:
        """Send an add-checkpoint body; return the cosignature line (one per key).

        Raises:
            StaleSize: if the witness holds another old size.
            LedgerError, OSError, subprocess.SubprocessError: on any other refusal or failure.
        """
        ...


@dataclass(frozen=True, slots=True)
class WitnessOutcome:
    """What one witness answered for the checkpoint of ``size``.

    ``outcome`` is one of the ``OUTCOME_*`` values; ``line`` is the stored
    cosignature line on success.
    """

    witness: str
    size: int
    outcome: str
    detail: str
    line: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the witness cosigned."""
        return self.outcome == OUTCOME_COSIGNED


class LocalWitness:
    """An in-process witness (the owner's app or the camera's firmware linking the library)."""

    __slots__ = ("witness",)

    def __init__(self, witness: Witness) -> None:
        """Wrap ``witness``."""
        self.witness = witness

    @property
    def name(self) -> str:
        """The witness's verifier key string."""
        return self.witness.verifier.vkey

    @property
    def verifier(self) -> Verifier:
        """The witness's cosignature key."""
        return self.witness.verifier

    @property
    def verifiers(self) -> tuple[Verifier, ...]:
        """The witness's keys (two when it holds an ML-DSA-44 key beside an Ed25519 one)."""
        return self.witness.verifiers

    def known_size(self, ledger: Ledger) -> int | None:
        """Read the size from the witness's own state.

        Raises:
            StorageError: if the witness's state is unreadable.
        """
        state = self.witness.state(ledger.origin)
        return 0 if state is None else state.size

    def submit(self, body: str, now: int) -> str:
        """Call :meth:`Witness.add_checkpoint`.

        Raises:
            StaleSize: if the witness holds another old size.
            LedgerError: as :meth:`Witness.add_checkpoint`.
        """
        try:
            return self.witness.add_checkpoint(body, now)
        except StaleOldSizeError as err:
            raise StaleSize(err.current_size, str(err)) from err


class CommandWitness:
    """A witness reached by running a command (see the module docstring for the protocol)."""

    __slots__ = ("_name", "_verifier", "argv", "timeout")

    def __init__(
        self,
        argv: Sequence[str],
        verifier: Verifier,
        *,
        timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        """Run ``argv`` (no shell) for each request; give up after ``timeout`` seconds.

        Raises:
            MalformedError: if ``argv`` is empty or the timeout is not positive.
        """
        if not argv:
            raise MalformedError("a witness command needs at least a program name")
        if timeout <= 0:
            raise MalformedError("the witness command timeout must be positive")
        self.argv = tuple(argv)
        self.timeout = timeout
        self._verifier = verifier
        self._name = name if name is not None else verifier.vkey

    @property
    def name(self) -> str:
        """The name used in witness events (the witness's key string unless given)."""
        return self._name

    @property
    def verifier(self) -> Verifier:
        """The witness's cosignature key."""
        return self._verifier

    @property
    def verifiers(self) -> tuple[Verifier, ...]:
        """The witness's key."""
        return (self._verifier,)

    def known_size(self, ledger: Ledger) -> int | None:
        """The largest size with a cosignature by this witness stored in the ledger.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return ledger.last_cosigned_size(self._verifier.vkey)

    def submit(self, body: str, now: int) -> str:
        """Run the command with ``body`` on standard input; it keeps its own clock.

        Raises:
            StaleSize: if the command reports the size it holds.
            LedgerError: if it exits non-zero (a refusal).
            OSError: if it cannot be started.
            subprocess.TimeoutExpired: if it does not finish in time (it is killed).
        """
        proc = subprocess.run(  # noqa: S603 - argv comes from the operator's configuration
            self.argv,
            input=body.encode("utf-8"),
            capture_output=True,
            timeout=self.timeout,
            check=False,
        )
        out = proc.stdout[:_MAX_OUTPUT].decode("utf-8", "replace")
        err_lines = proc.stderr[:_MAX_OUTPUT].decode("utf-8", "replace").strip().splitlines()
        reason = err_lines[0] if err_lines else f"exit status {proc.returncode}"
        if proc.returncode != 0:
            text = out.strip()
            if text and "\n" not in text:
                try:
                    size = parse_decimal(text, "witness size")
                except MalformedError:
                    pass
                else:
                    raise StaleSize(size, reason)
            raise LedgerError(f"witness command refused: {reason}")
        return out


class HttpWitness:
    """A witness reached over HTTP: ``POST <prefix>/add-checkpoint`` (C2SP tlog-witness).

    A 409 answer (``text/x.tlog.size``) is the size the witness holds; the
    client then retries from it. Of the lines a 200 answer carries, those by
    this witness's key are kept. A witness that cannot be reached or times out
    is unavailable; any other answer is a refusal.
    """

    __slots__ = ("_also", "_name", "_verifier", "timeout", "url")

    def __init__(
        self,
        prefix: str,
        verifier: Verifier,
        *,
        timeout: float = 10.0,
        name: str | None = None,
        also: Verifier | None = None,
    ) -> None:
        """Send requests to ``prefix`` + ``/add-checkpoint``; give up after ``timeout`` seconds.

        ``also`` is the witness's second key, when it holds two (its lines are kept too).

        Raises:
            MalformedError: if ``prefix`` is not an http(s) URL or the timeout is not positive.
        """
        try:
            self.url = http_prefix(prefix, timeout, "witness") + "add-checkpoint"
        except ValueError as err:
            raise MalformedError(str(err)) from err
        self.timeout = timeout
        self._verifier = verifier
        self._also = also
        self._name = name if name is not None else prefix

    @property
    def name(self) -> str:
        """The name used in witness events (the URL prefix unless given)."""
        return self._name

    @property
    def verifier(self) -> Verifier:
        """The witness's cosignature key."""
        return self._verifier

    @property
    def verifiers(self) -> tuple[Verifier, ...]:
        """The witness's keys: ``verifier``, and ``also`` when given."""
        return (self._verifier,) if self._also is None else (self._verifier, self._also)

    def known_size(self, ledger: Ledger) -> int | None:
        """The largest size with a cosignature by this witness stored in the ledger.

        Raises:
            StorageError: if the ledger cannot be read.
        """
        return ledger.last_cosigned_size(self._verifier.vkey)

    def submit(self, body: str, now: int) -> str:
        """POST ``body``; the witness keeps its own clock.

        Raises:
            StaleSize: on a 409 with the size the witness holds.
            LedgerError: on any other refusal, or a 200 without this witness's line.
            OSError: if the witness cannot be reached or is too slow (TimeoutError).
        """
        del now
        resp = http_request(
            self.url,
            limit=_MAX_OUTPUT,
            timeout=self.timeout,
            data=body.encode("utf-8"),
            content_type="text/plain; charset=utf-8",
        )
        text = resp.body.decode("utf-8", "replace")
        first = text.strip().splitlines()[0] if text.strip() else ""
        if resp.status == 409 and resp.content_type == "text/x.tlog.size":
            try:
                size = parse_decimal(text.removesuffix("\n"), "witness size")
            except MalformedError as err:
                raise LedgerError(f"the witness answered 409 with a bad size: {err}") from err
            raise StaleSize(size, f"the witness holds size {size}")
        if resp.status != 200:
            raise LedgerError(f"the witness answered HTTP {resp.status}: {first[:200]}")
        keys = {(v.name, v.key_id) for v in self.verifiers}
        mine: list[str] = []
        found: set[tuple[str, int]] = set()
        for line in text.splitlines():
            try:
                sig = parse_signature_line(line + "\n")
            except MalformedError:
                continue
            if (sig.name, sig.key_id) in keys:
                mine.append(line + "\n")
                found.add((sig.name, sig.key_id))
        if (self._verifier.name, self._verifier.key_id) not in found:
            raise LedgerError("the witness answered 200 without a cosignature by its key")
        return "".join(mine)


def _record(ledger: Ledger, outcome: WitnessOutcome) -> WitnessOutcome:
    # The outcome is returned to the caller even if it cannot be recorded;
    # losing the event only costs the next request a retry from a stale size.
    with contextlib.suppress(LedgerError):
        ledger.record_witness_event(outcome.size, outcome.witness, outcome.outcome, outcome.detail)
    return outcome


def _ask(ledger: Ledger, endpoint: WitnessEndpoint, size: int, now: int) -> WitnessOutcome:
    name = endpoint.name
    try:
        old = endpoint.known_size(ledger)
        old = 0 if old is None or old > size else old
        request: WitnessRequest = ledger.witness_request(old, size)
    except Exception as err:  # noqa: BLE001 - our side failed, not the witness
        return WitnessOutcome(name, size, OUTCOME_ERROR, f"cannot build the request: {err}")
    try:
        try:
            line = endpoint.submit(format_witness_request(request), now)
        except StaleSize as stale:
            if stale.current_size > size:
                return WitnessOutcome(
                    name,
                    size,
                    OUTCOME_REFUSED,
                    f"the witness holds size {stale.current_size}, beyond this checkpoint",
                )
            old = stale.current_size
            request = ledger.witness_request(old, size)
            line = endpoint.submit(format_witness_request(request), now)
    except StaleSize as stale:
        return WitnessOutcome(name, size, OUTCOME_REFUSED, str(stale))
    except subprocess.TimeoutExpired:
        return WitnessOutcome(name, size, OUTCOME_UNAVAILABLE, "the witness command timed out")
    except OSError as err:
        return WitnessOutcome(
            name, size, OUTCOME_UNAVAILABLE, f"cannot run the witness: {err.strerror or err}"
        )
    except LedgerError as err:
        return WitnessOutcome(name, size, OUTCOME_REFUSED, str(err))
    except Exception as err:  # noqa: BLE001 - a witness must never break the append path
        return WitnessOutcome(name, size, OUTCOME_ERROR, f"{type(err).__name__}: {err}")
    lines = [text for text in line.split("\n") if text]
    keys: Sequence[Verifier] = getattr(endpoint, "verifiers", None) or (endpoint.verifier,)
    try:
        ledger.add_cosignatures(size, lines, list(keys))
    except LedgerError as err:
        return WitnessOutcome(name, size, OUTCOME_INVALID, f"cosignature rejected: {err}")
    except Exception as err:  # noqa: BLE001 - a witness must never break the append path
        return WitnessOutcome(name, size, OUTCOME_INVALID, f"{type(err).__name__}: {err}")
    stored = "".join(f"{text}\n" for text in lines)
    return WitnessOutcome(name, size, OUTCOME_COSIGNED, f"old {old}", stored)


def collect_cosignatures(
    ledger: Ledger,
    witnesses: Iterable[WitnessEndpoint],
    now: int,
    *,
    size: int | None = None,
) -> list[WitnessOutcome]:
    """Ask every witness to cosign the checkpoint of ``size`` (default: the latest).

    Each witness gets the add-checkpoint request from the size it last
    cosigned (retrying once from the size it reports, if that differs).
    Cosignatures that verify are stored with the checkpoint; every outcome is
    recorded with ``store.add_witness_event`` and returned, in the order of
    ``witnesses``. ``now`` is the cosignature time given to in-process witnesses.

    Never raises: a witness that is down, slow or refusing, and even a ledger
    that cannot say its latest size, yields an outcome, not an exception.

    Raises:
        Nothing: see above; an outcome that cannot be recorded in the ledger is
            still returned.
    """
    endpoints = list(witnesses)
    try:
        target = ledger.latest_checkpoint().checkpoint.size if size is None else size
    except Exception as err:  # noqa: BLE001 - see the docstring: never raises
        detail = f"cannot read the checkpoint: {type(err).__name__}: {err}"
        return [
            WitnessOutcome(e.name, -1 if size is None else size, OUTCOME_ERROR, detail)
            for e in endpoints
        ]
    return [_record(ledger, _ask(ledger, e, target, now)) for e in endpoints]
