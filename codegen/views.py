"""Strided views of buffers: how every value the plan keeps in memory is addressed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["View", "c_strides", "view_extent"]


def c_strides(shape) -> tuple[int, ...]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


@dataclass(frozen=True)
class View:
    """Elements ``buffer[offset + sum(i_k * strides[k])]`` for indices in ``shape``."""

    buffer: int
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    def contiguous(self) -> bool:
        return all(s == c for s, c, d in zip(self.strides, c_strides(self.shape), self.shape) if d != 1)

    def broadcast(self, shape: tuple[int, ...]) -> View:
        """This view read as ``shape`` under numpy broadcasting (stride 0)."""
        lead = len(shape) - len(self.shape)
        strides = [0] * lead + [0 if d == 1 and t != 1 else s
                                for d, s, t in zip(self.shape, self.strides, shape[lead:])]
        return View(self.buffer, self.offset, tuple(shape), tuple(strides))

    def flat(self) -> View:
        """One element per step of a flat loop over a contiguous walk."""
        return View(self.buffer, self.offset, (1,), (1,))


def view_extent(view: View) -> tuple[int, int]:
    """Lowest and highest element offset a view touches (empty: (0, -1))."""
    if any(d == 0 for d in view.shape):
        return 0, -1
    lo = hi = view.offset
    for d, s in zip(view.shape, view.strides):
        if s > 0:
            hi += (d - 1) * s
        else:
            lo += (d - 1) * s
    return lo, hi
