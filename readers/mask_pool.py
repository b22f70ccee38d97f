"""Masks checked in worker processes beside a reader, in the reader's own order.

Checking a COCO polygon costs about 35 us (pycocotools rasterizes it into RLE, then measures its area and extent):
for LVIS's 1.3M masks that is most of an ingest. The check is a pure function (`rcforge.core.masks.outcome`), so it
can run anywhere: a reader hands its images to `checked` in the order it will build them; chunks of their
segmentations go to worker processes, and each image comes back with its masks' outcomes while the workers are
already checking the chunks after it. The records, the ledger and the error rows are the ones an in-process
check gives (the tests compare the two); only the time differs.

A worker is a plain subprocess (``python -m rcforge.readers.mask_pool``), as the Visual Genome parser processes
are: multiprocessing's spawn re-imports the caller's main module, and forking a process with threads is unsafe.
Chunks travel as pickle files in the reader's scratch folder and the pipes carry one line per chunk, so neither
side can block the other on a full pipe.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections import deque
from typing import Any, Callable, Iterable, Iterator, NamedTuple, TypeVar

from rcforge.core import masks
from rcforge.core.errors import BadRecord

#: fewer masks than this in a source are checked in the reader's own process (not worth a process and the copies)
MIN_MASKS = 20_000
#: masks per chunk: the first is small so that the reader waits little for it; later ones grow to the cap, which
#: bounds a worker (about 100 MB at 8,000 polygon masks)
FIRST_CHUNK, MAX_CHUNK = 2_000, 8_000

Unit = TypeVar("Unit")


class Job(NamedTuple):
    """One object's mask to check: its segmentation (parsed, or JSON text for ``decode``), the image's size, the
    object's raw pixel box (x1, y1, x2, y2). A named tuple: a reader makes one per mask, and pickles them."""

    segmentation: Any
    width: int
    height: int
    xyxy: tuple


def processes(setting: int, n_masks: int) -> int:
    """How many worker processes check ``n_masks`` masks: the reader's setting (0: none, in this process; N: N),
    or with -1 ("auto") one per CPU this process may use when there are at least `MIN_MASKS`, else none."""
    if setting >= 0:
        return setting
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cpus if cpus > 1 and n_masks >= MIN_MASKS else 0


def checked(units: Iterable[Unit], jobs_of: Callable[[Unit], list[Job]], workers: int, work_dir: str,
            decode: Callable[[str], Any] | None = None) -> Iterator[tuple[Unit, list | None]]:
    """Each unit (one image's annotations, say) with the outcomes of its jobs, in the units' order: a list
    parallel to ``jobs_of(unit)`` of `rcforge.core.masks.outcome` values, or None with no workers (the reader then
    checks in its own process). ``decode`` parses a job's segmentation when it is JSON text."""
    if workers <= 0:
        yield from ((unit, None) for unit in units)
        return
    pool = _Pool(workers, work_dir)
    try:
        pending: deque = deque()
        chunk, jobs, size = [], [], FIRST_CHUNK
        for unit in units:
            mine = jobs_of(unit)
            chunk.append((unit, len(mine)))
            jobs.extend(mine)
            if len(jobs) >= size:
                pending.append((chunk, pool.submit(jobs, decode)))
                chunk, jobs, size = [], [], min(2 * size, MAX_CHUNK)
                while len(pending) > workers:
                    yield from _split(*pending.popleft())
        if chunk:
            pending.append((chunk, pool.submit(jobs, decode)))
        while pending:
            yield from _split(*pending.popleft())
    finally:
        pool.close()


def _split(chunk: list, ticket) -> Iterator[tuple[Any, list]]:
    outcomes = ticket.result()
    at = 0
    for unit, n in chunk:
        yield unit, outcomes[at:at + n]
        at += n


def _pack(outcome, polygons: bool) -> tuple | None:
    """An outcome as plain data for the pickle back (a `BadRecord` is an exception with keyword state); a mask's
    polygons only when asked for (``polygons``): a reader that handed over parsed polygons has them already."""
    if isinstance(outcome, masks.Mask):
        return ("mask", outcome.rle, outcome.polygons if polygons else None, outcome.area)
    if isinstance(outcome, BadRecord):
        return ("bad", outcome.reason, outcome.message, outcome.field)
    return None


def _unpack(packed: tuple | None, job: Job):
    if packed is None:
        return None
    if packed[0] == "mask":
        # without polygons from the worker: the reader's own, as parsed (whole numbers stay ints here; the
        # shard's column is float64 either way)
        return masks.Mask(packed[1], job.segmentation if packed[2] is None else packed[2], packed[3])
    return BadRecord(packed[1], packed[2], field=packed[3])


class _Ticket:
    """A submitted chunk: its answer is read from its worker when asked for."""

    def __init__(self, pool: "_Pool", worker: int, path: str, jobs: list[Job]):
        self.pool, self.worker, self.path, self.jobs = pool, worker, path, jobs

    def result(self) -> list:
        return [_unpack(p, job) for p, job in zip(self.pool.answer(self.worker, self.path), self.jobs)]


class _Pool:
    """``n`` worker processes fed round-robin; each answers its chunks in the order it was given them."""

    def __init__(self, n: int, work_dir: str):
        self.dir = tempfile.mkdtemp(prefix="masks-", dir=work_dir)
        self.procs = []
        for i in range(n):
            log = open(os.path.join(self.dir, f"worker-{i}.log"), "w+b")
            proc = subprocess.Popen([sys.executable, "-m", "rcforge.readers.mask_pool"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
            self.procs.append((proc, log))
        self.sent = 0

    def submit(self, jobs: list[Job], decode) -> _Ticket:
        path = os.path.join(self.dir, f"chunk-{self.sent:06d}.pkl")
        with open(path, "wb") as f:
            pickle.dump((decode, [tuple(j) for j in jobs]), f, protocol=pickle.HIGHEST_PROTOCOL)
        worker = self.sent % len(self.procs)
        self.sent += 1
        proc, _ = self.procs[worker]
        try:
            proc.stdin.write(path + "\n")
        except BrokenPipeError:
            self._failed(worker)
        return _Ticket(self, worker, path, jobs)

    def answer(self, worker: int, path: str) -> list:
        proc, _ = self.procs[worker]
        line = proc.stdout.readline().rstrip("\n")
        if line != f"done {path}":
            self._failed(worker, line)
        with open(path + ".out", "rb") as f:
            packed = pickle.load(f)
        os.remove(path)
        os.remove(path + ".out")
        return packed

    def _failed(self, worker: int, line: str = ""):
        proc, log = self.procs[worker]
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"a mask worker process failed ({line or f'exit {proc.poll()}'})"
                           + (f": {tail[-1]}" if tail else ""))

    def close(self) -> None:
        for proc, log in self.procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            log.close()
        for name in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def worker_main() -> None:
    """A worker: for each chunk path read from stdin, writes the chunk's packed outcomes beside it and answers
    ``done PATH``."""
    import gc

    gc.disable()  # a worker holds no cycles; the collector's scans of its chunks cost more than the checks
    for line in sys.stdin:
        path = line.rstrip("\n")
        with open(path, "rb") as f:
            decode, jobs = pickle.load(f)
        packed = [_pack(masks.outcome(decode(s) if decode else s, w, h, xyxy), decode is not None)
                  for s, w, h, xyxy in jobs]
        with open(path + ".out", "wb") as f:
            pickle.dump(packed, f, protocol=pickle.HIGHEST_PROTOCOL)
        sys.stdout.write(f"done {path}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    worker_main()
