"""``minibatch_queue``: MATLAB's ``minibatchqueue`` over numpy data
(observations along the last axis of every array)."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral

import numpy as np

from ..array import dlarray
from .init import _rng

__all__ = ["minibatch_queue"]


class minibatch_queue:
    """Mini-batches of numpy arrays, as MATLAB's ``minibatchqueue``.

    ``minibatch_queue(X, T, mini_batch_size=128, mini_batch_format=("SSCB", "CB"))``:
    every array holds its observations along its last axis (one count for
    all).  ``next()`` returns one mini-batch of each array (a tuple, or the
    array itself when there is one), as dlarrays with the given formats
    (``''`` for none; ``output_as_dlarray=False`` for numpy arrays);
    ``mini_batch_fcn(*batches)`` preprocesses each mini-batch first.
    ``partial_mini_batch='return'`` (MATLAB's default) or ``'discard'`` for
    the last, smaller one.  ``has_data()``, ``reset()``, ``shuffle()`` (a
    new random order, drawn from symdl's seeded stream, and a reset) as
    MATLAB's; iterating yields the remaining mini-batches.

    Example:
        >>> import numpy as np
        >>> from symdl import nn
        >>> q = nn.minibatch_queue(np.arange(10.0).reshape(2, 5), np.arange(5.0), mini_batch_size=2,
        ...                        mini_batch_format=("CB", "B"))
        >>> [(x.fmt, x.shape, t.shape) for x, t in q]
        [('CB', (2, 2), (2,)), ('CB', (2, 2), (2,)), ('CB', (2, 1), (1,))]
        >>> q.has_data()
        False
    """

    def __init__(self, *data, mini_batch_size: int = 128, mini_batch_format=None,
                 partial_mini_batch: str = "return", mini_batch_fcn: Callable | None = None,
                 output_as_dlarray: bool = True):
        where = "minibatch_queue"
        if not data:
            raise ValueError(f"{where}: give at least one array of data")
        arrays = []
        for k, d in enumerate(data):
            arr = np.asarray(d)
            if arr.ndim == 0:
                raise ValueError(f"{where}: data[{k}] must have an observation axis (its last), got a scalar")
            arrays.append(arr)
        counts = {a.shape[-1] for a in arrays}
        if len(counts) != 1:
            raise ValueError(f"{where}: every array must hold the same number of observations (last axis), got "
                             f"{[a.shape for a in arrays]}")
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, Integral) or mini_batch_size < 1:
            raise ValueError(f"{where}: mini_batch_size must be a positive integer, got {mini_batch_size!r}")
        if partial_mini_batch not in ("return", "discard"):
            raise ValueError(f"{where}: partial_mini_batch must be 'return' or 'discard', got {partial_mini_batch!r}")
        if mini_batch_fcn is not None and not callable(mini_batch_fcn):
            raise TypeError(f"{where}: mini_batch_fcn must be callable, got {type(mini_batch_fcn).__name__}")
        self._arrays, self._n = arrays, counts.pop()
        self.mini_batch_size = int(mini_batch_size)
        self.partial_mini_batch = partial_mini_batch
        self.mini_batch_fcn = mini_batch_fcn
        self.output_as_dlarray = bool(output_as_dlarray)
        self._formats = self._check_formats(mini_batch_format, where)
        self._order = np.arange(self._n)
        self._next = 0

    def _check_formats(self, fmt, where: str):
        if fmt is None:
            return None
        fmts = (fmt,) if isinstance(fmt, str) else tuple(fmt)
        if not all(isinstance(f, str) for f in fmts):
            raise TypeError(f"{where}: mini_batch_format must be a str or a tuple of str, got {fmt!r}")
        return fmts

    @property
    def num_observations(self) -> int:
        return self._n

    def has_data(self) -> bool:
        """Whether another mini-batch is left (MATLAB's ``hasdata``)."""
        left = self._n - self._next
        return left >= self.mini_batch_size or (left > 0 and self.partial_mini_batch == "return")

    def reset(self) -> None:
        """Back to the first mini-batch (same order)."""
        self._next = 0

    def shuffle(self) -> None:
        """A new random order of the observations, and a reset."""
        self._order = _rng().permutation(self._n)
        self._next = 0

    def next(self):
        """The next mini-batch (MATLAB's ``next``); a ValueError when none is left."""
        if not self.has_data():
            raise ValueError("minibatch_queue.next: no data left; call reset() or shuffle()")
        idx = self._order[self._next:self._next + self.mini_batch_size]
        self._next += len(idx)
        batches = [a[..., idx] for a in self._arrays]
        if self.mini_batch_fcn is not None:
            out = self.mini_batch_fcn(*batches)
            batches = list(out) if isinstance(out, (tuple, list)) else [out]
        if self._formats is not None and len(self._formats) != len(batches):
            raise ValueError(f"minibatch_queue: mini_batch_format has {len(self._formats)} formats for "
                             f"{len(batches)} outputs")
        if self.output_as_dlarray:
            fmts = self._formats or ("",) * len(batches)
            batches = [b if isinstance(b, dlarray) else dlarray(np.asarray(b), f or None)
                       for b, f in zip(batches, fmts)]
        return batches[0] if len(batches) == 1 else tuple(batches)

    def __iter__(self):
        while self.has_data():
            yield self.next()

    def __repr__(self) -> str:
        return (f"minibatch_queue(num_observations={self._n}, mini_batch_size={self.mini_batch_size}, "
                f"partial_mini_batch={self.partial_mini_batch!r})")
