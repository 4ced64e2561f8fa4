"""A plain one-line progress bar with ETA, for training and the final evaluation.

It draws on stderr with carriage returns, so stdout keeps only the
original's lines (`batch ...`, `Train accuracy: ...`) for scripts that parse
them. By default (`progress` "auto") it is drawn only when stderr is a
terminal: logs redirected to a file get no control characters.
"""

import sys
import time
from typing import Callable, TextIO

MODES = ("auto", "on", "off")


def wanted(mode: str, stream: TextIO) -> bool:
    """Whether to draw a bar for progress mode `mode` on `stream`."""
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}; valid: {MODES}")
    if mode == "auto":
        return hasattr(stream, "isatty") and stream.isatty()
    return mode == "on"


def format_duration(seconds: float) -> str:
    """`H:MM:SS` (or `M:SS` under an hour)."""
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """`label  done/total  pct% [#####.....] rate it/s  ETA h:mm:ss`.

    Args:
      label: shown first ("train", "eval test").
      total: the count at completion.
      start: the count already done (a resumed run); the rate and ETA only
        count what this process did.
      stream: where to draw (stderr).
      enabled: False makes every method a no-op.
      min_interval: seconds between redraws.
      clock: the time source (seconds).
    """

    def __init__(self, label: str, total: int, start: int = 0, stream: TextIO | None = None,
                 enabled: bool = True, min_interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.start = label, total, start
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.min_interval = min_interval
        self.clock = clock
        self.done = start
        self._t0 = clock()
        self._last_draw = None
        self._width = 0

    def line(self) -> str:
        """The bar's text for the current count."""
        frac = self.done / self.total if self.total else 1.0
        filled = int(20 * frac)
        text = (f"{self.label} {self.done}/{self.total} {100 * frac:3.0f}% "
                f"[{'#' * filled}{'.' * (20 - filled)}]")
        elapsed = self.clock() - self._t0
        if self.done > self.start and elapsed > 0:
            rate = (self.done - self.start) / elapsed
            text += f" {rate:.2f} it/s ETA {format_duration((self.total - self.done) / rate)}"
        return text

    def update(self, done: int) -> None:
        """Sets the count and redraws (at most every `min_interval` seconds)."""
        self.done = done
        if not self.enabled:
            return
        now = self.clock()
        if (self._last_draw is None or now - self._last_draw >= self.min_interval
                or done >= self.total):
            self._draw()
            self._last_draw = now

    def _draw(self) -> None:
        text = self.line()
        self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Erases the bar (before another line is printed on the terminal)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def close(self) -> None:
        """Draws the final state and ends the line."""
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def wrap(self, log_fn: Callable[[str], None]) -> Callable[[str], None]:
        """`log_fn` that clears the bar before logging and redraws it after."""
        def log(line: str) -> None:
            self.clear()
            log_fn(line)
            if self.enabled:
                self._draw()
        return log
