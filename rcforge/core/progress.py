"""Progress on the terminal while a long stage runs: counts, rates and, where the total is known, an ETA.

On a terminal one line per stage is rewritten in place, at most every ``interval`` seconds; elsewhere (CI, a log
file) each stage prints one line when it ends, so logs stay short. Nothing is printed for stages shorter than
one interval on a terminal, or when disabled (``--no-progress``).

A pipeline's work runs in Beam workers, which may be other processes or machines. Workers report through small
JSON files in a folder of the output (`Beacon`: one file per worker process, rewritten at most once a second),
and the driver sums them (`watching`), so the same progress line works on every runner whose workers share the
output folder with the driver.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from typing import Callable, Iterator


class Progress:
    """One stage's progress line. ``counts`` are named numbers (the first is the one the rate, total and ETA are
    about), e.g. ``update(images=5000, dialogues=20000)``."""

    def __init__(self, label: str, *, enabled: bool = True, interval: float = 0.5, stream=None,
                 total: int | None = None, unit: str = "images"):
        self.label = label
        self.enabled = enabled
        self.interval = interval
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.unit = unit
        self.started = time.perf_counter()
        self._last = self.started
        self._printed = False
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {unit: 0}

    @property
    def count(self) -> int:
        return self.counts.get(self.unit, 0)

    def update(self, count: int | None = None, **counts: int) -> None:
        with self._lock:
            if count is not None:
                self.counts[self.unit] = count
            self.counts.update(counts)
            if not (self.enabled and self.tty):
                return
            now = time.perf_counter()
            if now - self._last < self.interval:
                return
            self._last = now
            self._emit(now)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.perf_counter()) - self.started, 1e-9)
        main = self.count
        rate = main / elapsed
        done = f"{main:,}/{self.total:,} {self.unit}" if self.total else f"{main:,} {self.unit}"
        others = "".join(f", {n:,} {name}" for name, n in self.counts.items() if name != self.unit)
        eta = ""
        if self.total and rate > 0 and main < self.total:
            eta = f", ETA {_duration((self.total - main) / rate)}"
        return f"[{self.label}] {done}{others}, {rate:,.0f} {self.unit}/s, {_duration(elapsed)}{eta}"

    def _emit(self, now: float) -> None:
        self.stream.write("\r" + self.line(now).ljust(100))
        self.stream.flush()
        self._printed = True

    def close(self) -> None:
        """The stage's last line: in place on a terminal (if one was shown), else one line for the log."""
        if not self.enabled:
            return
        with self._lock:
            if self.tty:
                if self._printed:
                    self._emit(time.perf_counter())
                    self.stream.write("\n")
                    self.stream.flush()
            else:
                self.stream.write(self.line() + "\n")
                self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Beacon:
    """A worker process's counts for a stage, written to ``folder/<host>-<pid>-<id>.json`` at most once a second
    (and on `flush`), so the driver can sum every worker's progress. Writing never fails a pipeline: progress is
    a convenience, so an unwritable folder only means no progress line."""

    def __init__(self, folder: str, interval: float = 1.0):
        import fsspec

        self.fs, self.folder = fsspec.core.url_to_fs(folder)
        self.path = f"{self.folder}/{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self.interval = interval
        self.counts: dict[str, int] = {}
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self._write()

    def flush(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        try:
            self.fs.makedirs(self.folder, exist_ok=True)
            self.fs.pipe_file(self.path, json.dumps(self.counts).encode())
        except OSError:
            pass


_BEACONS: dict[str, Beacon] = {}
_BEACONS_LOCK = threading.Lock()


def beacon(folder: str) -> Beacon:
    """This process's beacon for ``folder`` (one per process and folder, made on first use in a worker)."""
    with _BEACONS_LOCK:
        if folder not in _BEACONS:
            _BEACONS[folder] = Beacon(folder)
        return _BEACONS[folder]


def flush_beacons() -> None:
    for b in list(_BEACONS.values()):
        b.flush()


def read_counts(folder: str) -> dict[str, int]:
    """The sum of every JSON file's counts in ``folder`` (files half-written or gone are skipped)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(folder)
    total: dict[str, int] = {}
    try:
        files = fs.glob(f"{path}/*.json")
    except OSError:
        return total
    for file in files:
        try:
            counts = json.loads(fs.cat_file(file))
        except (OSError, ValueError):
            continue
        if isinstance(counts, dict):
            for name, n in counts.items():
                if isinstance(n, int):
                    total[name] = total.get(name, 0) + n
    return total


@contextlib.contextmanager
def watching(progress: Progress, read: Callable[[], dict[str, int]], interval: float = 0.5) -> Iterator[None]:
    """While the block runs, a driver thread calls ``read()`` every ``interval`` seconds and shows its counts;
    at the end the counts are read once more and the stage's line closes."""
    stop = threading.Event()

    def poll():
        while not stop.wait(interval):
            try:
                progress.update(**read())
            except Exception:  # noqa: BLE001 (progress never fails a run)
                pass

    thread = None
    if progress.enabled:
        thread = threading.Thread(target=poll, name=f"progress-{progress.label}", daemon=True)
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        try:
            progress.update(**read())
        except Exception:  # noqa: BLE001
            pass
        progress.close()
