"""A plain one-line progress bar with ETA, for training and the final evaluation.

It draws on stderr with carriage returns, so stdout keeps only the
original's lines (`batch ...`, `Train accuracy: ...`) for scripts that parse
them. By default (`progress` "auto") it is drawn only when stderr is a
terminal: logs redirected to a file get no control characters.

The rate and ETA leave out compilation: the first update of a process ends
the meta-iteration (or evaluation chunk) that traced the `tf.function`s, so
its duration is not counted, and the rate is measured over the updates of the
last `window` seconds (30), so one slow step does not hold the ETA for the whole
run. Until two updates have been timed the bar shows `ETA --:--`.

What can still break into the bar's line: the bar is first drawn at the first
update, after TensorFlow's start-up logging (device and library messages come
at import and while the first step runs), and lines logged through
`Progress.wrap` erase the bar and redraw it after themselves. Nothing else
written to stderr while the bar is shown can erase it first: TensorFlow's C++
logging writes straight to file descriptor 2, bypassing Python, and Python
`warnings` or `logging` output does not pass through the bar. Such a line
starts at the end of the bar's text, and the bar goes on below it. The run
scripts set `TF_CPP_MIN_LOG_LEVEL=2` (C++ errors only) unless it is set;
`TF_CPP_MIN_LOG_LEVEL=3` silences the C++ errors too (the few lines written
before absl logging is initialised ignore it, but they come at import, before
any bar), and `--progress off` draws no bar.
"""

import collections
import sys
import time
from typing import Callable, TextIO

MODES = ("auto", "on", "off")
#: Timed updates kept for the rate at most (bounds the memory of very fast bars).
_MAX_SAMPLES = 1000


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

    Nothing is drawn before the first `update`; `close` draws the last count
    and ends the line. The percentage is rounded down, so 100% means done.

    Args:
      label: shown first ("train", "eval test").
      total: the count at completion.
      start: the count already done (a resumed run); the rate and ETA only
        count what this process did.
      stream: where to draw (stderr).
      enabled: False makes every method a no-op.
      min_interval: seconds between redraws.
      clock: the time source (seconds).
      window: seconds of recent updates the rate is measured over (at least
        the last two timed updates).
      skip: first updates of this process whose duration is not counted
        (tracing and compiling the `tf.function`s happens in the first one).
    """

    def __init__(self, label: str, total: int, start: int = 0, stream: TextIO | None = None,
                 enabled: bool = True, min_interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic, window: float = 30.0,
                 skip: int = 1):
        if skip < 0 or window <= 0:
            raise ValueError(f"skip={skip!r} must be >= 0 and window={window!r} > 0")
        self.label, self.total, self.start = label, total, start
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.min_interval = min_interval
        self.clock = clock
        self.window, self.skip = window, skip
        self.done = start
        self._updates = 0
        # (time, count) of the timed updates in the window, oldest first; the
        # oldest is where the rate's time starts.
        self._samples = collections.deque(maxlen=_MAX_SAMPLES)
        if skip == 0:
            self._samples.append((clock(), start))
        self._last_draw = None
        self._width = 0  # characters of the bar on the terminal now (0: not shown)

    def rate(self) -> float | None:
        """Counts per second over the recent updates; None until two are timed."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None

    def line(self) -> str:
        """The bar's text for the current count."""
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(20 * frac)
        text = (f"{self.label} {self.done}/{self.total} {int(100 * frac):3d}% "
                f"[{'#' * filled}{'.' * (20 - filled)}]")
        rate = self.rate()
        if self.done >= self.total:
            eta = format_duration(0)
        elif rate is None:
            eta = "--:--"
        else:
            eta = format_duration((self.total - self.done) / rate)
        return text + (f" {rate:.2f} it/s" if rate is not None else " -- it/s") + f" ETA {eta}"

    def update(self, done: int) -> None:
        """Sets the count and redraws (at most every `min_interval` seconds)."""
        self.done = done
        if not self.enabled:
            return
        now = self.clock()
        self._updates += 1
        if self._updates >= self.skip:
            self._samples.append((now, done))
            # Keep the newest samples that span at least `window` seconds.
            while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
                self._samples.popleft()
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
        """Draws the final count and ends the line (nothing if never drawn)."""
        if self.enabled and self._last_draw is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
            self._last_draw = None

    def wrap(self, log_fn: Callable[[str], None]) -> Callable[[str], None]:
        """`log_fn` that erases the bar before logging and redraws it after
        (if it was shown: a line logged before the first update draws none)."""
        def log(line: str) -> None:
            shown = self.enabled and self._width > 0
            self.clear()
            log_fn(line)
            if shown:
                self._draw()
        return log
