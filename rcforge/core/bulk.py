"""Bulk work on many small Python objects, without the cyclic garbage collector's repeated scans.

Turning Arrow rows into Python dicts, parsing annotations and rendering dialogues each allocate millions of small
acyclic objects. Every few hundred allocations the cyclic collector scans the young objects, and every so often
all live ones, which cost more than the work itself: 10,000 Visual Genome image records convert in 0.7 s with it
paused against 3.9 s with it running (measured on the 2-core machine, see bench/RESULTS.md). A unit of work whose
size is bounded (one source's parse, one row group's render) runs with the collector paused; it runs again when
the unit ends, so cyclic garbage is still collected, one unit later.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The block runs with the cyclic collector off (reference counting still frees everything acyclic); it is
    on again afterwards if it was on before, also when the block raises."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
