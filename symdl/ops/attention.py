"""attention: multi-head scaled dot-product attention with MATLAB's layout
(queries 'CBT'; weights NumKeys x NumQueries x NumHeads x NumObservations),
masks and dropout, as a decomposition into matrix products and a masked,
max-shifted softmax (derivatives of every order, finite for any finite
scores)."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from .. import functions as F
from ..array import dlarray, stripdims
from ..core import apply
from ..formats import canonical_permutation, check_fmt
from .args import as_dlarray
from .dropout import dropout

__all__ = ["attention"]


class _Layout:
    """The layout of the queries: their labels in input order, and how to
    bring an array of that layout to ``(C, sequence, B)`` and back."""

    def __init__(self, queries, data_format, where: str):
        if isinstance(queries, dlarray) and queries._fmt:
            if data_format is not None:
                raise ValueError(f"{where}: data_format is only for unformatted queries; queries are already "
                                 f"formatted {queries._fmt!r} (got data_format={data_format!r})")
            self.in_fmt, self.formatted = queries._fmt, True
        else:
            queries = as_dlarray(queries, "queries", where)
            if data_format is None:
                raise ValueError(f"{where}: queries must be a formatted dlarray (e.g. 'CBT'), or give their labels "
                                 f"as data_format=; got an unformatted array of shape {queries.shape}")
            if not isinstance(data_format, str) or len(data_format) != queries.ndim:
                raise ValueError(f"{where}: data_format must be a string with one label per dimension of queries "
                                 f"(shape {queries.shape}), got {data_format!r}")
            self.in_fmt, self.formatted = data_format.upper(), False
        try:
            fmt = canonical_permutation(check_fmt(self.in_fmt, len(self.in_fmt)))[1]
        except ValueError as err:
            raise ValueError(f"{where}: data_format {data_format!r} is not a valid format: {err}") from None
        seq = [c for c in fmt if c in "ST"]
        if "C" not in fmt or len(seq) > 1 or any(c not in "SCBT" for c in fmt):
            raise ValueError(f"{where}: queries must have a 'C' dimension, at most one 'S' or 'T' dimension and "
                             f"optionally 'B', got fmt {self.in_fmt!r}")
        self.fmt = fmt                        # canonical labels
        self.seq = seq[0] if seq else None

    def split(self, value, name: str, where: str, like=None):
        """``value`` (queries' layout, or formatted alike) as ``(C, sequence, B)``;
        numpy data in the dtype of ``like`` (the queries: float32 stays float32)."""
        x = as_dlarray(value, name, where, like=like)
        if x._fmt:
            if x._fmt != self.fmt:
                raise ValueError(f"{where}: {name} must have the format of the queries, {self.fmt!r}; "
                                 f"got {x._fmt!r} (shape {x.shape})")
        else:
            if x.ndim != len(self.in_fmt):
                raise ValueError(f"{where}: {name} must have the layout of the queries ({self.in_fmt!r}: "
                                 f"{len(self.in_fmt)} dimensions), got shape {x.shape}")
            x = dlarray(x, self.in_fmt)
        sizes = dict(zip(self.fmt, x.shape))
        x = stripdims(x)
        order = [self.fmt.index(c) for c in ("C", self.seq, "B") if c is not None and c in self.fmt]
        x = F.transpose(x, order) if order != list(range(x.ndim)) else x
        return F.reshape(x, (sizes["C"], sizes.get(self.seq, 1), sizes.get("B", 1)))

    def join(self, y):
        """``y`` of shape ``(C, sequence, B)`` in the layout of the queries."""
        sizes = {"C": y.shape[0], self.seq: y.shape[1], "B": y.shape[2]}
        present = [c for c in ("C", self.seq, "B") if c is not None and c in self.fmt]
        y = F.reshape(y, tuple(sizes[c] for c in present))
        canon = F.transpose(y, [present.index(c) for c in self.fmt])     # S before C when the sequence is 'S'
        if self.formatted:
            return dlarray(canon, self.fmt)
        perm = [self.fmt.index(c) for c in self.in_fmt]
        return F.transpose(canon, perm) if perm != sorted(perm) else canon


def _keep_mask(padding_mask, attention_mask, layout: _Layout, nk: int, nq: int, batch: int, where: str):
    """Which (key, query, observation) pairs take part, as a bool array
    ``(B, Nk, Nq)`` (or None: all)."""
    keep = None
    if padding_mask is not None:
        P = as_dlarray(padding_mask, "padding_mask", where)
        given = P.shape
        P = layout.split(P, "padding_mask", where)
        if P.shape[1:] != (nk, batch):
            raise ValueError(f"{where}: padding_mask must match the keys in the sequence and batch dimensions "
                             f"(NumKeys {nk}, NumObservations {batch}), got shape {given}")
        # MATLAB reads the first channel only
        keep = F.reshape(F.transpose(P[0], (1, 0)), (batch, nk, 1)) != 0.0
    if attention_mask is None or (isinstance(attention_mask, str) and attention_mask.lower() == "none"):
        return keep
    if isinstance(attention_mask, str):
        if attention_mask.lower() != "causal":
            raise ValueError(f"{where}: attention_mask must be 'none', 'causal' or an array NumKeys x NumQueries "
                             f"(x NumObservations), got {attention_mask!r}")
        # a query at position m attends to the keys at positions n <= m
        A = dlarray(np.arange(nk)[:, None] <= np.arange(nq)[None, :])
        A = F.reshape(A, (1, nk, nq))
    else:
        A = as_dlarray(attention_mask, "attention_mask", where)
        if A.shape == (nk, nq):
            A = F.reshape(stripdims(A) if A._fmt else A, (1, nk, nq))
        elif A.shape == (nk, nq, batch):
            A = F.transpose(stripdims(A) if A._fmt else A, (2, 0, 1))
        else:
            raise ValueError(f"{where}: attention_mask must be NumKeys x NumQueries = {nk} x {nq} or NumKeys x "
                             f"NumQueries x NumObservations = {nk} x {nq} x {batch}, got shape {A.shape}")
    A = A != 0.0
    return A if keep is None else F.logical_and(keep, A)


def _masked_softmax(scores, keep, axis: int):
    """Softmax along ``axis`` over the entries where ``keep`` holds (the others
    get weight 0): shifted by the maximum of the kept entries (a constant to
    differentiation, softmax does not change with it), and the masked entries
    enter ``exp`` as -inf, so no overflow and no 0 * inf in any derivative.
    A query with every key masked gets NaN weights (MATLAB's softmax of -inf)."""
    if keep is None:
        shifted = scores - apply("stop_gradient", [F.max(scores, axis, keepdims=True)])
    else:
        masked = F.where(keep, scores, -np.inf)
        shifted = F.where(keep, scores - apply("stop_gradient", [F.max(masked, axis, keepdims=True)]), -np.inf)
    e = F.exp(shifted)
    return e / F.sum(e, axis, keepdims=True)


def attention(queries, keys, values, num_heads, scale=None, padding_mask=None, attention_mask=None,
              dropout_probability=0, *, data_format: str | None = None):
    """Multi-head scaled dot-product attention, as MATLAB's ``attention``:
    returns ``(Y, weights)``.

    ``queries`` is formatted (``'CBT'``: channels x observations x queries;
    one ``'S'`` or ``'T'`` dimension at most, ``'B'`` optional), or
    unformatted with its labels in ``data_format``.  ``keys`` and ``values``
    have the queries' format (or, unformatted, their layout) with NumKeys
    along the sequence dimension; keys have the queries' channels.  The
    channels split into ``num_heads`` contiguous blocks, one per head; for each
    head and observation (``K``, ``Q``, ``V`` channels x positions)::

        weights = softmax over the keys of (scale * K' Q), masked entries excluded
        Y       = V @ dropout(weights)

    ``scale`` defaults (``None`` or ``'auto'``) to ``1/sqrt(d)``, ``d`` the
    channels of the keys per head.  ``padding_mask`` has the keys' layout
    (its first channel is used): a 0 excludes that key.
    ``attention_mask`` is ``'none'``, ``'causal'`` (query ``m`` sees keys
    ``n <= m``) or an array ``NumKeys x NumQueries`` (``x NumObservations``)
    where 0 excludes the pair.  A query with every key excluded gets NaN.
    ``dropout_probability`` drops attention weights with fresh random numbers
    (as :func:`symdl.dropout`); the returned ``weights`` are the ones used.

    ``Y`` has the queries' format with the values' channels; ``weights`` is
    unformatted ``NumKeys x NumQueries x NumHeads x NumObservations`` (always
    4-D).  Derivatives of every order go through it.

    Example:
        >>> import numpy as np, symdl
        >>> Q = symdl.dlarray(np.array([[[1.0, 0.0]]]), "CBT")      # 1 channel, 1 observation, 2 queries
        >>> K = np.array([[[0.0, 0.0]]])                              # 2 keys, equal scores
        >>> V = np.array([[[2.0, 4.0]]])
        >>> Y, w = symdl.attention(Q, K, V, 1)
        >>> Y, w.shape
        (dlarray([[[3., 3.]]], fmt='CBT'), (2, 2, 1, 1))
    """
    where = "attention"
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads < 1:
        raise ValueError(f"{where}: num_heads must be a positive integer, got {num_heads!r}")
    if isinstance(dropout_probability, bool) or not isinstance(dropout_probability, Real) or \
            not 0.0 <= dropout_probability < 1.0:
        raise ValueError(f"{where}: dropout_probability must be in [0, 1), got {dropout_probability!r}")
    layout = _Layout(queries, data_format, where)
    q = layout.split(queries, "queries", where)
    k = layout.split(keys, "keys", where, like=q)
    v = layout.split(values, "values", where, like=q)
    h = int(num_heads)
    (cq, nq, batch), (ck, nk, bk), (cv, nv, bv) = q.shape, k.shape, v.shape
    if ck != cq:
        raise ValueError(f"{where}: keys must have the queries' {cq} channels, got {ck} (keys shape {k.shape})")
    if (nv, bv) != (nk, bk):
        raise ValueError(f"{where}: values must have the keys' sequence and batch sizes ({nk}, {bk}), "
                         f"got ({nv}, {bv})")
    if bk != batch:
        raise ValueError(f"{where}: keys must have the queries' {batch} observations, got {bk}")
    for name, c in (("queries and keys", cq), ("values", cv)):
        if c % h:
            raise ValueError(f"{where}: num_heads ({h}) must divide the channels of the {name}, which have {c}")
    if scale is None or (isinstance(scale, str) and scale.lower() == "auto"):
        scale = 1.0 / math.sqrt(ck // h)
    elif isinstance(scale, bool) or not isinstance(scale, Real):
        raise ValueError(f"{where}: scale must be 'auto' (None) or a real number, got {scale!r}")
    dk, dv = cq // h, cv // h
    # (C, N, B) -> (heads, B, per-head channels, N)
    qh = F.transpose(F.reshape(q, (h, dk, nq, batch)), (0, 3, 1, 2))
    kh = F.transpose(F.reshape(k, (h, dk, nk, batch)), (0, 3, 2, 1))       # (h, B, Nk, dk)
    vh = F.transpose(F.reshape(v, (h, dv, nk, batch)), (0, 3, 1, 2))       # (h, B, dv, Nk)
    scores = F.matmul(kh, qh) * float(scale)                                # (h, B, Nk, Nq)
    keep = _keep_mask(padding_mask, attention_mask, layout, nk, nq, batch, where)
    weights = _masked_softmax(scores, keep, axis=2)
    if dropout_probability:
        weights = dropout(weights, float(dropout_probability))
    y = F.matmul(vh, weights)                                               # (h, B, dv, Nq)
    y = F.reshape(F.transpose(y, (0, 2, 3, 1)), (cv, nq, batch))
    return layout.join(y), F.transpose(weights, (2, 3, 0, 1))
