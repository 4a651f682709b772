"""Progress on standard error, for people only: shown on a terminal, never in a pipe or a log.

This module owns how a long command tells a person it is working. A bar
(known total) or a running count (unknown total, such as a stream of events)
is drawn on standard error when that is a terminal, and nothing at all
otherwise, so scripts and logs see only the command's real output.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import click

__all__ = ["Counter", "bar_progress", "stderr_is_terminal"]


def stderr_is_terminal() -> bool:
    """Whether standard error is a terminal (where progress is drawn).

    Raises:
        Nothing.
    """
    return sys.stderr.isatty()


def bar_progress(stack: contextlib.ExitStack, label: str) -> Callable[[int, int], None]:
    """Return a ``progress(done, total)`` callback drawing a bar on standard error.

    The bar is created on the first call (when the total is known) and closed
    with ``stack``.

    Raises:
        Nothing on creation.
    """
    bar: list[Any] = []
    shown = [0]

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(
                stack.enter_context(click.progressbar(length=total, label=label, file=sys.stderr))
            )
        bar[0].update(done - shown[0])
        shown[0] = done

    return update


class Counter:
    """A running count (``label: N records, R/s``) redrawn in place, at most 10 times a second.

    ``stream`` is where it draws; ``None`` draws nothing (not a terminal).

    Raises:
        Nothing on construction.
    """

    def __init__(self, label: str, stream: IO[str] | None) -> None:
        self._label = label
        self._stream = stream
        self._started = time.perf_counter()
        self._drawn = 0.0
        self.count = 0

    def add(self, n: int) -> None:
        """Count ``n`` more and redraw if a tenth of a second has passed.

        Raises:
            Nothing on purpose: an OSError from the terminal write passes through.
        """
        self.count += n
        if self._stream is None:
            return
        now = time.perf_counter()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self._stream.write(f"\r{self._label}: {self.count} records, {self.rate():.0f}/s")
            self._stream.flush()

    def rate(self) -> float:
        """Records a second so far.

        Raises:
            Nothing.
        """
        elapsed = time.perf_counter() - self._started
        return self.count / elapsed if elapsed > 0 else 0.0

    def elapsed(self) -> float:
        """Seconds since the counter was made.

        Raises:
            Nothing.
        """
        return time.perf_counter() - self._started

    def clear(self) -> None:
        """Erase the drawn count, so the next line starts clean.

        Raises:
            Nothing on purpose: an OSError from the terminal write passes through.
        """
        if self._stream is not None and self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
