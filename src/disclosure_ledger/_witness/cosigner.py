"""Witnessing as a subscriber of commits: cosign each new checkpoint in the background.

This module owns :class:`Cosigner`, which subscribes to a ledger's commits
(:meth:`.Ledger.subscribe`) and runs a background thread that asks witnesses,
through :func:`~.witness_client.collect_cosignatures`, to cosign the newest
checkpoint after each commit. Older checkpoints still waiting are skipped: a
cosignature of the newest covers them. A witness that is down, slow or
refusing is recorded in the ledger's witness events and never delays or fails
an append: the commit only sets a flag and wakes the thread.

One cosigning round runs at a time per ledger, whichever :class:`Cosigner`
(or :meth:`Cosigner.cosign_now` caller) starts it: two rounds racing to the
same witness leapfrog each other's old sizes, and the witness refuses one.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from types import TracebackType

from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._witness.client import WitnessEndpoint, WitnessOutcome, collect_cosignatures
from disclosure_ledger.errors import LedgerError

__all__ = ["Cosigner"]

_round_locks: weakref.WeakKeyDictionary[Ledger, threading.Lock] = weakref.WeakKeyDictionary()
_round_locks_guard = threading.Lock()


def _round_lock(ledger: Ledger) -> threading.Lock:
    # The lock every cosigning round on this ledger object takes.
    with _round_locks_guard:
        lock = _round_locks.get(ledger)
        if lock is None:
            lock = _round_locks[ledger] = threading.Lock()
        return lock


class Cosigner:
    """Ask ``witnesses`` to cosign every new checkpoint of ``ledger``, in the background.

    Use it as a context manager or call :meth:`close`; closing the ledger
    closes it too, after the ledger's last commit. ``clock`` gives
    cosignature times (Unix seconds) to in-process witnesses.
    """

    def __init__(
        self,
        ledger: Ledger,
        witnesses: Iterable[WitnessEndpoint],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Subscribe to ``ledger``'s commits and start the background thread.

        Raises:
            LedgerError: if the ledger is closed.
        """
        self._ledger = ledger
        self._witnesses = list(witnesses)
        self._clock = clock
        self._lock = _round_lock(ledger)
        self._wakeup = threading.Condition()
        self._pending = False  # a commit since the last round
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="ledger-witness", daemon=True)
        self._unsubscribe = ledger.subscribe(self._committed, on_close=self.close)
        self._thread.start()

    @property
    def witnesses(self) -> tuple[WitnessEndpoint, ...]:
        """The witnesses asked, in the order their outcomes are returned."""
        return tuple(self._witnesses)

    def _committed(self, size: int) -> None:
        # On the committer thread: wake the background thread, nothing more.
        del size  # the round asks for the newest checkpoint when it starts
        with self._wakeup:
            self._pending = True
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending and not self._stop:
                    self._wakeup.wait()
                if not self._pending:
                    return
                self._pending = False
            # The newest checkpoint when the round starts covers the commit that
            # woke this thread and any after it. Outcomes are recorded in the
            # ledger (witness_events); nothing to keep here.
            with self._lock:
                collect_cosignatures(self._ledger, self._witnesses, int(self._clock()))

    def cosign_now(self, *, size: int | None = None) -> list[WitnessOutcome]:
        """Ask the witnesses to cosign a checkpoint now (default: the newest); wait for them.

        Never raises for a witness's failure; each outcome says what happened.

        Raises:
            LedgerError: if the cosigner is closed.
        """
        with self._wakeup:
            if self._stop:
                raise LedgerError("the cosigner is closed")
        with self._lock:
            return collect_cosignatures(
                self._ledger, self._witnesses, int(self._clock()), size=size
            )

    def close(self) -> None:
        """Finish the round a commit asked for, stop the thread and unsubscribe.

        Raises:
            Nothing: a second call does nothing.
        """
        self._unsubscribe()
        with self._wakeup:
            self._stop = True
            self._wakeup.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Cosigner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
