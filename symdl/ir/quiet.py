"""numpy's floating-point warnings off, cheaply: the interpreter evaluates
every primitive this way (NaN and Inf are values here, not errors).

``np.errstate(all="ignore")`` costs about 0.5 µs per use, as much as the
arithmetic on a small array; setting numpy's error-state context variable
directly costs a tenth of that.  Where that numpy detail is missing (another
numpy version), ``quiet()`` is ``np.errstate`` itself.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quiet", "quietly", "QUIET_SWITCH"]

try:
    from numpy._core._ufunc_config import _extobj_contextvar, _make_extobj
    _IGNORE = _make_extobj(all="ignore")
except (ImportError, AttributeError, TypeError):  # pragma: no cover - other numpy versions
    _extobj_contextvar = None

#: ``(set, reset, ignore)``: ``token = set(ignore)`` turns numpy's warnings
#: off until ``reset(token)``, for callers that cannot afford a wrapper's
#: frame (the interpreter's elementwise evaluation); None where this numpy
#: detail is missing.
QUIET_SWITCH = None if _extobj_contextvar is None else (_extobj_contextvar.set, _extobj_contextvar.reset, _IGNORE)


class _Quiet:
    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _extobj_contextvar.set(_IGNORE)

    def __exit__(self, *exc) -> None:
        _extobj_contextvar.reset(self._token)


def quiet():
    """A context in which numpy warns about nothing.

    Example:
        >>> import numpy as np
        >>> with quiet():
        ...     float(np.float64(1.0) / np.float64(0.0))
        inf
    """
    return _Quiet() if _extobj_contextvar is not None else np.errstate(all="ignore")


def quietly(fn):
    """``fn`` wrapped to run with numpy's warnings off (the cheapest form, for
    functions on the hot path of every operation).

    Example:
        >>> import numpy as np
        >>> divide = quietly(np.divide)
        >>> float(divide(1.0, 0.0))
        inf
    """
    if _extobj_contextvar is None:  # pragma: no cover - other numpy versions
        return np.errstate(all="ignore")(fn)
    set_state, reset = _extobj_contextvar.set, _extobj_contextvar.reset

    def run(*args):
        token = set_state(_IGNORE)
        try:
            return fn(*args)
        finally:
            reset(token)
    run.__name__ = run.__qualname__ = getattr(fn, "__name__", "quietly")
    run.__doc__ = fn.__doc__
    return run
