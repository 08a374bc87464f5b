"""Keeping Python's cyclic garbage collector off a long trace's back.

Every traced operation allocates a few container objects (a node, a dlarray,
tuples) that live as long as the trace, and the collector keeps
re-examining the heap they join: full collections scan all of it (at 30,000
traced ops they took 22 % of the time), and young collections got slower as
the trace grew (10,000 ops: 29-30 us per op against 22 us with the
collector off).  While the outermost ``dlfeval`` call runs:

- full collections wait until it returns;
- the objects alive when it started are in the collector's permanent
  generation (``gc.freeze()``, as large Python servers use it before forking),
  so collections during the call look at what the call makes; the call
  unfreezes them when it returns.

Measured effect: 22-24 us per traced op from 1,000 to 100,000 ops (was 25 us
at 1,000 and 29-31 us beyond).  Cyclic garbage made during the call is still
collected by young collections (or, once old, after the call).  A program
that froze objects itself, or set thresholds of its own during the call,
keeps its settings.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["calm_collector"]

_NO_FULL_COLLECTIONS = 1 << 30


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.depth = 0             # active dlfeval calls, all threads
        self.threshold = None      # the thresholds to restore
        self.froze = False         # whether this module froze the heap


_STATE = _State()


@contextlib.contextmanager
def calm_collector() -> Iterator[None]:
    """The collector's settings for the duration of a ``dlfeval`` call."""
    s = _STATE
    with s.lock:
        if s.depth == 0:
            s.threshold = gc.get_threshold()
            young, middle, _ = s.threshold
            gc.set_threshold(young, middle, _NO_FULL_COLLECTIONS)
            s.froze = gc.get_freeze_count() == 0  # never on top of the program's own freezing
            if s.froze:
                gc.freeze()
        s.depth += 1
    try:
        yield
    finally:
        with s.lock:
            s.depth -= 1
            if s.depth == 0:
                if gc.get_threshold()[2] == _NO_FULL_COLLECTIONS:
                    gc.set_threshold(*s.threshold)
                if s.froze:
                    gc.unfreeze()
                    s.froze = False
