"""How the command line shows a long task's progress: a redrawn bar on a terminal, a few plain lines otherwise.

A carriage-return bar is right for a person watching a terminal and wrong everywhere else: redirected into a
file or the journal it becomes hundreds of overwritten updates in one line. So the helper asks the stream
whether it is a terminal. On a terminal it redraws one line, at most ``redraw_s`` apart; anywhere else it
writes a line when the task starts, at each quarter of the way (only when ``quiet_s`` have passed since the
last line, so a quick task prints no middle lines), and when it ends.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 28


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or exotic stream is no terminal
        return False


def human(count: float, unit: str) -> str:
    """``12.3 MB`` for bytes, ``12 photos`` for anything else."""
    if unit != "B":
        return f"{count:g} {unit}".rstrip()
    for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if count >= scale:
            return f"{count / scale:.1f} {name}"
    return f"{count:g} B"


class Progress:
    """One task's progress. ``update(done)`` as it goes, ``finish(message)`` at the end (or use it in ``with``)."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        tty: bool | None = None,
        redraw_s: float = 0.1,
        quiet_s: float = 5.0,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = is_terminal(self.stream) if tty is None else tty
        self.redraw_s = redraw_s
        self.quiet_s = quiet_s
        self.done = 0
        self.detail = ""
        self.lines = 0  # lines written (plain mode) or redraws (terminal mode): what a test can count
        self._started = time.monotonic()
        self._last = float("-inf")
        self._quarter = 0
        self._width = 0
        self._finished = False
        if not self.tty:
            size = f" ({human(total, unit)})" if total else ""
            self._line(f"{label}: started{size}")

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.lines += 1
        self._last = time.monotonic()

    def _draw(self) -> None:
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = round(share * BAR_WIDTH)
            bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * share:3.0f}%"
            count = f"{human(self.done, self.unit)}/{human(self.total, self.unit)}"
        else:
            bar, count = "[working]", human(self.done, self.unit)
        text = f"{self.label} {bar} {count} {self.detail}".rstrip()
        pad = max(self._width - len(text), 0)
        self._width = len(text)
        self.stream.write(f"\r{text}{' ' * pad}")
        self.stream.flush()
        self.lines += 1
        self._last = time.monotonic()

    def update(self, done: int, total: int | None = None, detail: str = "") -> None:
        """``done`` units of ``total`` (given here when it is learnt late); ``detail`` names the current item."""
        self.done = done
        self.detail = detail
        if total is not None:
            self.total = total
        now = time.monotonic()
        if self.tty:
            if now - self._last >= self.redraw_s:
                self._draw()
            return
        if not self.total:
            if now - self._last >= max(self.quiet_s, 30.0):  # an unknown size: a sign of life now and then
                self._line(f"{self.label}: {human(done, self.unit)} so far")
            return
        quarter = min(int(4 * done / self.total), 4)
        if 0 < quarter < 4 and quarter > self._quarter:
            self._quarter = quarter
            if now - self._last >= self.quiet_s:
                self._line(
                    f"{self.label}: {25 * quarter}% ({human(done, self.unit)} of {human(self.total, self.unit)})"
                )

    def finish(self, message: str = "done") -> None:
        """The last word on the task: ``<label>: <message>`` on a line of its own (after the bar, on a terminal)."""
        if self._finished:
            return
        self._finished = True
        text = f"{self.label}: {message} ({time.monotonic() - self._started:.1f} s)"
        if self.tty:  # the bar's line becomes the result
            self.stream.write(f"\r{text}{' ' * max(self._width - len(text), 0)}\n")
            self.stream.flush()
            self.lines += 1
        else:
            self._line(text)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.finish()
        elif not self._finished:
            self._finished = True
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
