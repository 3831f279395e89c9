"""A live one-line view of a load run for the person at the terminal.

``format_line(progress)`` is pure; ``ProgressMonitor`` is a small daemon thread that polls a
``progress()`` callable and hands each ``Progress`` to a callback; ``TerminalProgress`` is the
callback that draws the line: ``\\r``-updated on a TTY, a plain line every ~5 s otherwise (CI logs
stay readable: every line starts on a line of its own, after what pytest printed)::

    load: 2 s baseline, then the scenario's steps, then 2 s tail (the load stops by 120 s at the latest)
    load 12.3 s  412 req/s  failures 0  active: green (98%)  step: drain blue (5 s)

The first line is the plan (``intro``), said once; the running line shows the time the load
has run, never the cap as if it were the planned length.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import IO, Callable

from zerodrop.records.progress import Progress


def format_line(p: Progress, step: str = "") -> str:
    """The progress line; ``step`` names what the scenario is doing now, when known."""
    active = p.active_color
    served = f"active: {active[0]} ({active[1] * 100:.0f}%)" if active else "active: none"
    line = f"load {p.elapsed:.1f} s  {p.rps:.0f} req/s  failures {p.failures}  {served}"
    if p.saturated:
        line += "  [generator CPU > 90%]"
    if step:
        line += f"  step: {step}"
    return line


class TerminalProgress:
    """Draws ``format_line`` to ``stream`` (stderr by default)."""

    def __init__(self, stream: IO[str] | None = None, plain_every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 step: Callable[[], str] | None = None, intro: str = ""):
        self.stream = stream if stream is not None else sys.stderr
        self.step = step or (lambda: "")
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.plain_every = plain_every
        self.clock = clock
        self._last_plain: float | None = None
        self._width = 0
        self._intro = intro
        self._started = False

    def _start(self) -> None:
        """Leave the line pytest is writing (a test's name), then say the plan."""
        self._started = True
        self.stream.write("\n" + (self._intro + "\n" if self._intro else ""))

    def __call__(self, p: Progress) -> None:
        if not self._started:
            self._start()
        line = format_line(p, self.step())
        if self.tty:
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + pad)
            self.stream.flush()
            return
        now = self.clock()
        if self._last_plain is None or now - self._last_plain >= self.plain_every:
            self._last_plain = now
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the redrawn line (idempotent: LoadRun.stop and the caller may both close)."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


class ProgressMonitor:
    """Polls ``source()`` every ``interval`` s on a daemon thread, passing each result to
    ``sink``; ``stop()`` ends it within one interval. An error in either is remembered in
    ``error`` and ends the monitor: a broken progress line never breaks a load run."""

    def __init__(self, source: Callable[[], Progress], sink: Callable[[Progress], None], interval: float = 0.5):
        self.source = source
        self.sink = sink
        self.interval = interval
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zerodrop-load-progress", daemon=True)

    def start(self) -> "ProgressMonitor":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sink(self.source())
            except Exception as exc:  # noqa: BLE001 - see the class docstring
                self.error = exc
                return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
