"""Keeping Python's cyclic garbage collector's full collections off a long
trace's back.

Every traced operation allocates a few container objects (a node, a dlarray,
tuples) that live as long as the trace.  Full collections scan the whole
heap, so with the trace growing they came more often and cost more: at
30,000 traced ops they took 22 % of the time.  While the outermost
``dlfeval`` call runs, full collections wait until it returns; young
collections run as usual, so cyclic garbage made meanwhile is still found
(once old, after the call); young collections come every 10,000
allocations instead of 700.  A program that sets thresholds of its own during
the call keeps them.

(Freezing the heap alive at the start, ``gc.freeze()``, made traces faster
only in a process that had not collected garbage just before; in the
benchmark's setting, a collection before every run, it changed nothing, so
the process's generations are left alone.)
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["calm_collector"]

_NO_FULL_COLLECTIONS = 1 << 30
_YOUNG = 10_000


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.depth = 0             # active dlfeval calls, all threads
        self.threshold = None      # the thresholds to restore


_STATE = _State()


@contextlib.contextmanager
def calm_collector() -> Iterator[None]:
    """The collector's settings for the duration of a ``dlfeval`` call."""
    s = _STATE
    with s.lock:
        if s.depth == 0:
            s.threshold = gc.get_threshold()
            young, middle, _ = s.threshold
            # young collections less often too: nearly everything a trace
            # allocates lives as long as the trace, so each young collection
            # mostly re-scans survivors (about 4 % of a traced op at 700)
            gc.set_threshold(max(young, _YOUNG), middle, _NO_FULL_COLLECTIONS)
        s.depth += 1
    try:
        yield
    finally:
        with s.lock:
            s.depth -= 1
            if s.depth == 0 and gc.get_threshold()[2] == _NO_FULL_COLLECTIONS:
                gc.set_threshold(*s.threshold)
