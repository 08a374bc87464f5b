"""``numpy.linalg`` on dlarrays: ``inv``, ``solve``, ``det``, ``slogdet``,
``cholesky``, ``eigh``, ``eigvalsh``, ``norm``, ``vector_norm`` and
``matrix_norm``, with numpy's signatures.

Matrices are the last two axes; leading axes are a batch (broadcast as numpy
does).  Every function is differentiable to any order and compiles to native
code (the primitives of :mod:`symdl.ir.ops.linalg`).  Where numpy raises
``LinAlgError`` (an exactly singular matrix in ``solve``/``inv``, a matrix
that is not positive definite in ``cholesky``), symdl gives NaN for that
matrix, compiled or not; see ``docs/linalg.md``.

Importing this module also makes ``numpy.linalg.inv(x)`` etc. work on
dlarrays (the numpy protocol table).
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from . import functions as F
from .core import apply, is_traced, to_operands
from .ir.ops import linalg as G
from .ir.shapes import broadcast_shapes, normalize_axes

__all__ = ["inv", "solve", "det", "slogdet", "cholesky", "eigh", "eigvalsh", "norm", "vector_norm",
           "matrix_norm", "EighResult", "SlogdetResult"]

#: numpy's result types, with numpy's field names.
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])


def _array(fn: str, name: str, x):
    """``x`` as a float dlarray without labels (complex data is a TypeError)."""
    x = F._arr(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"linalg.{fn}: {name} must be float32 or float64, got {x.dtype}")
    return x


def _square(fn: str, a, name: str = "a"):
    a = _array(fn, name, a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        # numpy's exception type (a ValueError), so code that catches either works
        raise np.linalg.LinAlgError(f"linalg.{fn}: {name} must be a square matrix or a stack of them "
                                    f"(..., n, n), got shape {a.shape}")
    return a


def _mT(x):
    return F.transpose(x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


def solve(a, b):
    """Solve ``a @ x = b`` (numpy's ``linalg.solve``): ``a`` is (..., n, n);
    ``b`` is a vector (n,) or a stack of matrices (..., n, k), batch axes
    broadcast.  An exactly singular matrix gives NaN (numpy raises).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.linalg.solve(symdl.dlarray([[2.0, 0.0], [0.0, 4.0]]), np.array([1.0, 1.0]))
        dlarray([0.5 , 0.25])
    """
    a = _square("solve", a)
    b = _array("solve", "b", b)
    a, b = (F._arr(v) for v in to_operands([a, b]))
    n = a.shape[-1]
    vector = b.ndim == 1
    if vector:
        if b.shape[0] != n:
            raise ValueError(f"linalg.solve: b of shape {b.shape} does not fit a of shape {a.shape} "
                             f"(expected ({n},) or (..., {n}, k))")
        b = F.reshape(b, (n, 1))
    elif b.shape[-2] != n:
        raise ValueError(f"linalg.solve: b of shape {b.shape} does not fit a of shape {a.shape} "
                         f"(expected ({n},) or (..., {n}, k))")
    batch = broadcast_shapes("linalg.solve", [a.shape[:-2], b.shape[:-2]])
    a = F.broadcast_to(a, batch + a.shape[-2:])
    b = F.broadcast_to(b, batch + b.shape[-2:])
    x = apply("solve", [a, b])
    return F.reshape(x, x.shape[:-1]) if vector else x


def inv(a):
    """The inverse of each square matrix of ``a`` (numpy's ``linalg.inv``);
    an exactly singular matrix gives NaN (numpy raises).

    Example:
        >>> import symdl
        >>> symdl.linalg.inv(symdl.dlarray([[2.0, 0.0], [0.0, 4.0]]))
        dlarray([[0.5 , 0.  ],
                 [0.  , 0.25]])
    """
    a = _square("inv", a)
    if is_traced(a):
        # the identity as index arithmetic in the graph, not a stored constant of a's size
        node = G.solve(a._node, G.eye_like(a._node))
        return F.dlarray._wrap(a._trace.value(node), node, a._trace, None)
    return apply("solve", [a, np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype), a.shape)])


def det(a):
    """Determinant of each square matrix of ``a`` (numpy's ``linalg.det``).
    Its gradient is ``det(a) * inv(a).T``: NaN or inf at a singular matrix.

    Example:
        >>> import symdl
        >>> round(float(symdl.linalg.det(symdl.dlarray([[1.0, 2.0], [3.0, 4.0]]))), 12)
        -2.0
    """
    return apply("det", [_square("det", a)])


def slogdet(a):
    """``(sign, logabsdet)`` of each square matrix (numpy's ``linalg.slogdet``,
    the same named tuple fields); ``sign`` carries no derivative.

    Example:
        >>> import symdl
        >>> sign, logdet = symdl.linalg.slogdet(symdl.dlarray([[-2.0, 0.0], [0.0, 3.0]]))
        >>> float(sign), round(float(logdet), 6)
        (-1.0, 1.791759)
    """
    a = _square("slogdet", a)
    return SlogdetResult(apply("det_sign", [a]), apply("logabsdet", [a]))


def cholesky(a, /, *, upper=False):
    """The Cholesky factor of each symmetric positive-definite matrix
    (numpy's ``linalg.cholesky``): lower-triangular ``L`` with ``a = L @ L.T``
    read from the lower triangle; with ``upper=True`` the upper factor, read
    from the upper triangle.  A matrix that is not positive definite gives NaN
    (numpy raises).

    Example:
        >>> import symdl
        >>> symdl.linalg.cholesky(symdl.dlarray([[4.0, 2.0], [2.0, 5.0]]))
        dlarray([[2., 0.],
                 [1., 2.]])
    """
    a = _square("cholesky", a)
    if upper not in (True, False):
        raise TypeError(f"linalg.cholesky: upper must be True or False, got {upper!r}")
    if upper:
        return _mT(apply("cholesky", [_mT(a)]))
    return apply("cholesky", [a])


def _uplo(fn: str, a, UPLO):
    a = _square(fn, a)
    if UPLO not in ("L", "U"):
        raise ValueError(f"linalg.{fn}: UPLO must be 'L' or 'U', got {UPLO!r}")
    return a if UPLO == "L" else _mT(a)  # the upper triangle of a is the lower one of a.T


def eigh(a, UPLO="L"):
    """Eigenvalues (ascending) and eigenvectors (columns) of each symmetric
    matrix, read from the lower (``UPLO='L'``) or upper triangle (numpy's
    ``linalg.eigh``, the same named tuple fields).  Each eigenvector is
    returned with its largest-magnitude component positive.  At repeated
    eigenvalues the eigenvectors are any basis of the eigenspace: see
    ``docs/linalg.md`` for what their derivatives are there.

    Example:
        >>> import symdl
        >>> w, v = symdl.linalg.eigh(symdl.dlarray([[2.0, 1.0], [1.0, 2.0]]))
        >>> w
        dlarray([1., 3.])
    """
    a = _uplo("eigh", a, UPLO)
    packed = apply("eigh", [a])
    return EighResult(packed[..., 0, :], packed[..., 1:, :])


def eigvalsh(a, UPLO="L"):
    """The eigenvalues (ascending) of each symmetric matrix (numpy's
    ``linalg.eigvalsh``); as :func:`eigh`.

    Example:
        >>> import symdl
        >>> symdl.linalg.eigvalsh(symdl.dlarray([[2.0, 1.0], [1.0, 2.0]]))
        dlarray([1., 3.])
    """
    return eigh(a, UPLO).eigenvalues


# ---------------------------------------------------------------- norms (decompositions)

def _vector_norm(x, ord, axis: int, keepdims: bool):
    if ord is None or ord == 2:
        return F.sqrt(F.sum(x * x, axis, keepdims))
    if isinstance(ord, str) or not isinstance(ord, (int, float, np.integer, np.floating)):
        raise ValueError(f"linalg.norm: invalid norm order {ord!r} for vectors")
    if ord == math.inf:
        return F.max(F.abs(x), axis, keepdims)
    if ord == -math.inf:
        return F.min(F.abs(x), axis, keepdims)
    if ord == 0:  # the number of non-zeros: no derivative
        return F.sum(F.astype(F.compare("ne", x, 0.0), x.dtype), axis, keepdims)
    if ord == 1:
        return F.sum(F.abs(x), axis, keepdims)
    ord = float(ord)
    return F.power(F.sum(F.power(F.abs(x), ord), axis, keepdims), 1.0 / ord)


def _singular_values_by_eigh(x, row: int, col: int):
    """The eigenvalues of [[0, A], [A^T, 0]] (ascending): plus and minus each
    singular value of A (and |m - n| zeros), to eps * |A| like an SVD."""
    rest = [i for i in range(x.ndim) if i not in (row, col)]
    a = F.transpose(x, tuple(rest) + (row, col))
    m, n = a.shape[-2:]
    lead = a.shape[:-2]
    top = F.concatenate([np.zeros(lead + (m, m), a.dtype), a], axis=-1)
    bottom = F.concatenate([_mT(a), np.zeros(lead + (n, n), a.dtype)], axis=-1)
    return eigvalsh(F.concatenate([top, bottom], axis=-2)), min(m, n)


def _matrix_norm(x, ord, row: int, col: int, keepdims: bool):
    if ord is None or ord == "fro":
        out = F.sqrt(F.sum(x * x, (row, col)))
    elif ord in (2, -2, "nuc"):
        lam, k = _singular_values_by_eigh(x, row, col)
        if ord == "nuc":
            out = F.sum(F.abs(lam), -1) * 0.5
        elif ord == 2:
            out = lam[..., -1]
        else:
            out = lam[..., lam.shape[-1] - k] if k else F.min(lam, -1)
    elif ord in (1, -1, math.inf, -math.inf):
        # 1: the largest column sum of |x|; inf: the largest row sum
        summed, other = (row, col) if ord in (1, -1) else (col, row)
        sums = F.sum(F.abs(x), summed)
        other -= other > summed
        out = F.max(sums, other) if ord > 0 else F.min(sums, other)
    else:
        raise ValueError(f"linalg.norm: invalid norm order {ord!r} for matrices "
                         "(None, 'fro', 'nuc', 1, -1, 2, -2, inf, -inf)")
    if keepdims:
        out = F.reshape(out, tuple(1 if i in (row, col) else d for i, d in enumerate(x.shape)))
    return out


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm (numpy's ``linalg.norm``, the same ``ord``,
    ``axis`` and ``keepdims``).  Vector orders: None/2, 1, inf, -inf, 0 (the
    count of non-zeros, no derivative), any other p; matrix orders (a
    2-tuple ``axis`` or a 2-D ``x``): None/'fro', 'nuc', 1, -1, 2, -2, inf,
    -inf ('nuc' and +-2 from the eigenvalues of [[0, A], [A^T, 0]]).
    Like every norm, its derivative does not exist at 0 (there it is NaN
    for the 2-norm).

    Example:
        >>> import symdl
        >>> float(symdl.linalg.norm(symdl.dlarray([3.0, 4.0])))
        5.0
    """
    x = _array("norm", "x", x)
    if axis is None:
        if ord is None:
            flat = F.reshape(x, (x.size,))
            out = F.sqrt(F.sum(flat * flat))
            return F.reshape(out, (1,) * x.ndim) if keepdims else out
        if x.ndim == 1:
            axis = (0,)
        elif x.ndim == 2:
            axis = (0, 1)
        else:
            raise ValueError(f"linalg.norm: ord={ord!r} without axis needs a 1-D or 2-D x, got shape {x.shape}")
    elif isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    elif not isinstance(axis, tuple) or not all(isinstance(i, (int, np.integer)) for i in axis):
        raise TypeError(f"linalg.norm: axis must be None, an int or a tuple of ints, got {axis!r}")
    axes = normalize_axes("linalg.norm", axis, x.ndim)
    if len(axes) != len(axis):
        raise ValueError(f"linalg.norm: duplicate axes in {axis!r}")
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        row, col = (int(i) % x.ndim for i in axis)  # in the order given: rows, then columns
        return _matrix_norm(x, ord, row, col, keepdims)
    raise ValueError(f"linalg.norm: axis must name one or two axes, got {axis!r}")


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """numpy's ``linalg.vector_norm``: the vector norm of order ``ord`` over
    ``axis`` (an int, a tuple of axes taken together as one vector, or None:
    all of ``x``), with the orders of :func:`norm`.

    Example:
        >>> import symdl
        >>> float(symdl.linalg.vector_norm(symdl.dlarray([[3.0], [4.0]])))
        5.0
    """
    x = _array("vector_norm", "x", x)
    if axis is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axis, (int, np.integer)):
        axes = (int(axis),)
    elif isinstance(axis, tuple) and all(isinstance(i, (int, np.integer)) for i in axis):
        axes = tuple(int(i) for i in axis)
    else:
        raise TypeError(f"linalg.vector_norm: axis must be None, an int or a tuple of ints, got {axis!r}")
    axes = normalize_axes("linalg.vector_norm", axes, x.ndim)
    rest = [i for i in range(x.ndim) if i not in axes]
    moved = F.transpose(x, tuple(rest) + axes) if x.ndim else x
    flat = F.reshape(moved, tuple(x.shape[i] for i in rest) + (math.prod(x.shape[i] for i in axes),))
    out = _vector_norm(flat, ord, flat.ndim - 1, False)
    if keepdims:
        out = F.reshape(out, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return out


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """numpy's ``linalg.matrix_norm``: the matrix norm of order ``ord`` of the
    last two axes (the orders of :func:`norm`).

    Example:
        >>> import symdl
        >>> float(symdl.linalg.matrix_norm(symdl.dlarray([[3.0, 0.0], [0.0, 4.0]]), ord=2))
        4.0
    """
    x = _array("matrix_norm", "x", x)
    if x.ndim < 2:
        raise ValueError(f"linalg.matrix_norm: x must have at least 2 dimensions, got shape {x.shape}")
    return _matrix_norm(x, ord, x.ndim - 2, x.ndim - 1, keepdims)


# numpy.linalg.* on dlarrays (the numpy protocol table of symdl.functions)
F.NUMPY_FUNCTIONS.update({
    np.linalg.inv: inv, np.linalg.solve: solve, np.linalg.det: det, np.linalg.slogdet: slogdet,
    np.linalg.cholesky: cholesky, np.linalg.eigh: eigh, np.linalg.eigvalsh: eigvalsh, np.linalg.norm: norm,
    np.linalg.vector_norm: vector_norm, np.linalg.matrix_norm: matrix_norm,
})
