"""Progress on the terminal: records/s per source while a long run goes on.

On a terminal, one line per source is rewritten in place; otherwise (CI, a log file) a plain line is printed
every ``interval`` seconds. Nothing is printed for runs shorter than one interval.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, *, enabled: bool = True, interval: float = 2.0, stream=None):
        self.label = label
        self.enabled = enabled
        self.interval = interval
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.perf_counter()
        self._last = self.started
        self._printed = False
        self.count = 0

    def update(self, count: int) -> None:
        self.count = count
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < self.interval:
            return
        self._last = now
        self._emit(now)

    def _emit(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        line = f"[{self.label}] {self.count:,} images, {self.count / elapsed:,.0f}/s, {elapsed:,.0f}s"
        if self.tty:
            self.stream.write("\r" + line.ljust(72))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._printed = True

    def close(self) -> None:
        if self.enabled and self._printed:
            self._emit(time.perf_counter())
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
