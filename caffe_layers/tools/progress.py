"""A tiny progress bar on stderr, shown only on a terminal (no dependency).

Silent when the stream is not a terminal (logs, pipes, CI) or when disabled (``--quiet``), so a
tool's output stays clean wherever it is captured. Redraws at most ten times a second::

    compute-mean [##########----------]  512/1024  50%  310.2/s  ETA 0:00:02
"""

from __future__ import annotations

import sys
import time
from typing import IO

BAR_WIDTH = 20


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` for a duration in seconds."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts ``done`` out of ``total`` items and redraws one line on ``stream``.

    ``enabled=None`` means: only when ``stream`` is a terminal. Use as a context manager, or call
    :meth:`close` to end the line.
    """

    def __init__(self, total: int, label: str, *, enabled: bool | None = None,
                 stream: IO[str] | None = None, min_interval_s: float = 0.1) -> None:
        self.total = max(0, int(total))
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = _is_terminal(self.stream)
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self.done = 0
        self.started = time.perf_counter()
        self._drawn_at = float("-inf")
        self._closed = False

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more items done; redraw if enough time passed."""
        self.done += count
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._drawn_at >= self.min_interval_s or self.done >= self.total:
            self._drawn_at = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The text of the bar for the current count."""
        now = time.perf_counter() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        fraction = self.done / self.total if self.total else 1.0
        filled = int(BAR_WIDTH * min(fraction, 1.0))
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 and self.done < self.total else 0.0
        width = len(str(self.total))
        return (f"{self.label} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] "
                f"{self.done:>{width}}/{self.total}  {fraction:4.0%}  {rate:.1f}/s  "
                f"ETA {format_seconds(left)}")

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now) + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
