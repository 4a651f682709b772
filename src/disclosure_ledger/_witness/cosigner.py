"""Cosigning as a subscriber of commits: ask witnesses about each new checkpoint.

This module owns the background round that follows a ledger's commits: a
:class:`Cosigner` subscribes to a ledger, wakes after each durable commit, and
asks its witnesses to cosign the newest checkpoint (older ones still waiting
are skipped: a cosignature of the newest covers them). The ledger knows
nothing of witnesses; it only tells its subscribers the size it committed.
A witness that is down, slow or refusing is recorded in the ledger's witness
events and never delays or fails an append.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable

from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._witness.client import WitnessEndpoint, WitnessOutcome, collect_cosignatures
from disclosure_ledger.errors import LedgerError

__all__ = ["Cosigner"]

# One cosigning round at a time per ledger, whoever starts it: two rounds asking
# one witness at once leapfrog each other's old sizes, and the witness refuses one.
_ROUND_LOCKS: weakref.WeakKeyDictionary[Ledger, threading.Lock] = weakref.WeakKeyDictionary()
_ROUND_LOCKS_GUARD = threading.Lock()


def _round_lock(ledger: Ledger) -> threading.Lock:
    with _ROUND_LOCKS_GUARD:
        lock = _ROUND_LOCKS.get(ledger)
        if lock is None:
            lock = _ROUND_LOCKS[ledger] = threading.Lock()
        return lock


class Cosigner:
    """Asks ``witnesses`` to cosign every new checkpoint of ``ledger``, in the background.

    It starts at once and stops with :meth:`close`, or when the ledger closes.
    ``clock`` gives cosignature times to in-process witnesses.
    """

    def __init__(
        self,
        ledger: Ledger,
        witnesses: Iterable[WitnessEndpoint],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Subscribe to ``ledger``'s commits and start the background round.

        Raises:
            LedgerError: if the ledger is closed.
        """
        self._ledger = ledger
        self._witnesses = list(witnesses)
        self._clock = clock
        self._lock = _round_lock(ledger)
        self._wakeup = threading.Condition()
        self._pending = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="ledger-cosigner", daemon=True)
        ledger.subscribe(self)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Cosigner({self._ledger!r}, {len(self._witnesses)} witness(es))"

    @property
    def witnesses(self) -> tuple[WitnessEndpoint, ...]:
        """The witnesses asked."""
        return tuple(self._witnesses)

    def committed(self, size: int) -> None:
        """Called by the ledger after each durable commit: wake the round.

        Raises:
            Nothing: it sets a flag and notifies the thread.
        """
        del size  # the round asks about the newest checkpoint when it starts
        with self._wakeup:
            self._pending = True
            self._wakeup.notify()

    def closing(self) -> None:
        """Called by the ledger when it closes: finish the round in flight and stop.

        Raises:
            Nothing.
        """
        self.close()

    def close(self) -> None:
        """Stop the background round, after the round a commit is still waiting for.

        Raises:
            Nothing.
        """
        with self._wakeup:
            self._stop = True
            self._wakeup.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending and not self._stop:
                    self._wakeup.wait()
                if not self._pending:
                    return  # stopped, with nothing left to ask about
                self._pending = False
            # The newest checkpoint when the round starts covers the commit that
            # woke it, and any after it. Outcomes are recorded in the ledger.
            with self._lock:
                collect_cosignatures(self._ledger, self._witnesses, int(self._clock()))

    def cosign_now(self, *, size: int | None = None) -> list[WitnessOutcome]:
        """Ask the witnesses to cosign a checkpoint now and wait for the answers.

        Never raises for a witness's failure; each outcome says what happened.

        Raises:
            LedgerError: if the cosigner was closed.
        """
        if self._stop:
            raise LedgerError("the cosigner is closed")
        with self._lock:
            return collect_cosignatures(
                self._ledger, self._witnesses, int(self._clock()), size=size
            )
