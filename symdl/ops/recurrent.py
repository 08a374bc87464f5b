"""lstm and gru with MATLAB's semantics (gate order, activations, reset-gate
modes, formats), written as a loop over the time steps at trace time: every
step is matrix products, slices and elementwise functions, so derivatives of
every order come from the primitives' rules (MATLAB's lstm and gru stop at
the first)."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..array import dlarray, stripdims
from .args import as_dlarray

__all__ = ["lstm", "gru"]


# ---------------------------------------------------------------- activations

def _softsign(x):
    return x / (F.abs(x) + 1.0)


def _hard_sigmoid(x):
    # MATLAB's: 0 below -2.5, 0.2 x + 0.5 in between, 1 above 2.5
    return F.minimum(F.maximum(x * 0.2 + 0.5, 0.0), 1.0)


STATE_ACTIVATIONS = {"tanh": F.tanh, "softsign": _softsign}
GATE_ACTIVATIONS = {"sigmoid": F.sigmoid, "hard-sigmoid": _hard_sigmoid}
RESET_GATE_MODES = ("after-multiplication", "before-multiplication", "recurrent-bias-after-multiplication")


def _choice(value, table, name: str, where: str):
    if not isinstance(value, str) or value.lower() not in table:
        options = ", ".join(repr(k) for k in table)
        raise ValueError(f"{where}: {name} must be one of {options}, got {value!r}")
    return value.lower()


# ---------------------------------------------------------------- the sequence

class _Sequence:
    """X as an unformatted (InputSize, N, T) array, and how to give Y the
    layout MATLAB returns: X's format (or, for unformatted X, X's dimension
    order) without its 'S' dimensions."""

    def __init__(self, X, data_format, where: str):
        if isinstance(X, dlarray) and X._fmt:
            if data_format is not None:
                raise ValueError(f"{where}: data_format is only for unformatted X; X is already formatted "
                                 f"{X._fmt!r} (got data_format={data_format!r})")
            fmt, canon = X._fmt, X
            self.formatted, self.order = True, None
        else:
            X = as_dlarray(X, "X", where)
            if data_format is None:
                raise ValueError(f"{where}: X must be a formatted dlarray with 'C', 'B' and 'T' labels (e.g. "
                                 f"'CBT'), or give its labels as data_format=; got an unformatted array of shape "
                                 f"{X.shape}")
            if not isinstance(data_format, str) or len(data_format) != X.ndim:
                raise ValueError(f"{where}: data_format must be a string with one label per dimension of X "
                                 f"(shape {X.shape}), got {data_format!r}")
            try:
                canon = dlarray(X, data_format.upper())
            except ValueError as err:
                raise ValueError(f"{where}: data_format {data_format!r} is not a valid format for X: {err}") from None
            fmt = canon._fmt
            self.formatted, self.order = False, [c for c in data_format.upper() if c != "S"]
        if "C" not in fmt or any(c not in "SCBT" for c in fmt):
            raise ValueError(f"{where}: X must have a 'C' dimension and otherwise only 'S', 'B', 'T' dimensions, "
                             f"got fmt {fmt!r} (shape {canon.shape})")
        shape = dict(zip(fmt, canon.shape))
        self.batch = shape.get("B", 1)
        self.steps = shape.get("T", 1)
        self.input_size = int(np.prod([n for c, n in zip(fmt, canon.shape) if c in "SC"], dtype=np.int64))
        if self.steps == 0 or self.batch == 0:
            raise ValueError(f"{where}: X must have at least one observation and one time step, got shape "
                             f"{canon.shape} with fmt {fmt!r}")
        self.out_fmt = "".join(c for c in fmt if c != "S")
        # canonical order puts S before C, so S and C flatten into one channel axis (C order, as fullyconnect)
        self.x = F.reshape(stripdims(canon), (self.input_size, self.batch, self.steps))

    def output(self, Y):
        """Y (H, N, T) in the layout of X."""
        Y = F.reshape(Y, tuple(Y.shape[0] if c == "C" else self.batch if c == "B" else self.steps
                                for c in self.out_fmt))
        if self.formatted:
            return dlarray(Y, self.out_fmt)
        perm = [self.out_fmt.index(c) for c in self.order]
        return F.transpose(Y, perm) if perm != sorted(perm) else Y


def _matrix(value, name: str, rows: int, cols: int, what: str, where: str, like):
    """A weight matrix ``rows x cols`` (labels, if any, are dropped: MATLAB's 'CU');
    numpy data in the dtype of ``like`` (X: float32 data stays float32)."""
    W = as_dlarray(value, name, where, like=like)
    if W.shape != (rows, cols):
        raise ValueError(f"{where}: {name} must be {what} = {rows} x {cols}, got shape {W.shape}")
    return stripdims(W) if W._fmt else W


def _bias(value, size: int, what: str, where: str, like):
    """The bias as a ``(size, 1)`` column; ``(size,)`` and ``(size, 1)`` accepted."""
    b = as_dlarray(value, "bias", where, like=like)
    if b.shape not in ((size,), (size, 1)):
        raise ValueError(f"{where}: bias must have {what} = {size} elements, shape ({size},) or ({size}, 1); "
                         f"got shape {b.shape}")
    return F.reshape(stripdims(b) if b._fmt else b, (size, 1))


def _state(value, name: str, hidden: int, batch: int, where: str, like):
    """An initial state as ``(H, 1)`` (shared by every observation) or ``(H, N)``."""
    S = as_dlarray(value, name, where, like=like)
    if S._fmt and any(c not in "CB" for c in S._fmt):
        raise ValueError(f"{where}: {name} may only have 'C' and 'B' dimensions, got fmt {S._fmt!r}")
    shape = S.shape
    ok = shape in ((hidden,), (hidden, 1), (hidden, batch)) and not (S._fmt == "B")
    if not ok:
        raise ValueError(f"{where}: {name} must be NumHiddenUnits x 1 or NumHiddenUnits x NumObservations = "
                         f"{hidden} x 1 or {hidden} x {batch} (NumHiddenUnits from recurrentWeights), "
                         f"got shape {shape}")
    S = stripdims(S) if S._fmt else S
    return F.reshape(S, (hidden, 1)) if S.ndim == 1 else S


def _hidden_units(recurrentWeights, gates: int, where: str) -> int:
    R = as_dlarray(recurrentWeights, "recurrentWeights", where)
    if R.ndim != 2 or R.shape[1] == 0 or R.shape[0] != gates * R.shape[1]:
        raise ValueError(f"{where}: recurrentWeights must be {gates}*NumHiddenUnits x NumHiddenUnits, "
                         f"got shape {R.shape}")
    return R.shape[1]


def _state_out(S, like):
    """A final state: formatted 'CB' when the initial one was formatted (as MATLAB)."""
    return dlarray(S, "CB") if isinstance(like, dlarray) and like._fmt else S


# ---------------------------------------------------------------- lstm

def lstm(X, H0, C0, weights, recurrentWeights, bias, *, data_format: str | None = None,
         state_activation_function: str = "tanh", gate_activation_function: str = "sigmoid"):
    """Long short-term memory, as MATLAB's ``lstm``: returns
    ``(Y, hiddenState, cellState)``.

    ``X`` is formatted with a ``'C'`` dimension and ``'B'``/``'T'`` (``'S'``
    dimensions flatten into the channels), or unformatted with its labels in
    ``data_format`` (e.g. ``'CBT'``).  With ``H`` hidden units and ``D``
    input channels: ``weights`` is ``4H x D``, ``recurrentWeights`` ``4H x H``,
    ``bias`` ``4H`` (or ``4H x 1``), each the gates stacked in MATLAB's order
    input, forget, cell candidate, output; ``H0`` and ``C0`` are ``H x 1``
    (shared by all observations), ``H x N`` or ``(H,)``.  Per time step::

        i = gate(W_i x + R_i h + b_i)     f = gate(W_f x + R_f h + b_f)
        g = state(W_g x + R_g h + b_g)    o = gate(W_o x + R_o h + b_o)
        c = f * c + i * g                 h = o * state(c)

    with ``gate`` = ``gate_activation_function`` (``'sigmoid'``,
    ``'hard-sigmoid'``) and ``state`` = ``state_activation_function``
    (``'tanh'``, ``'softsign'``).  ``Y`` holds ``h`` of every time step, in
    X's format without ``'S'`` (or X's dimension order when unformatted); the
    states are ``H x N`` (``'CB'`` when ``H0``/``C0`` are formatted).
    Derivatives of every order go through it.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.ones((1, 1, 3)), "CBT")     # 1 channel, 1 observation, 3 steps
        >>> W, R, b = np.ones((4, 1)), np.zeros((4, 1)), np.zeros(4)
        >>> Y, h, c = symdl.lstm(X, np.zeros(1), np.zeros(1), W, R, b)
        >>> Y.fmt, Y.shape, np.round(symdl.extractdata(c), 4)
        ('CBT', (1, 1, 3), array([[1.2614]]))
    """
    where = "lstm"
    state = STATE_ACTIVATIONS[_choice(state_activation_function, STATE_ACTIVATIONS,
                                      "state_activation_function", where)]
    gate = GATE_ACTIVATIONS[_choice(gate_activation_function, GATE_ACTIVATIONS, "gate_activation_function", where)]
    seq = _Sequence(X, data_format, where)
    H = _hidden_units(recurrentWeights, 4, where)
    W = _matrix(weights, "weights", 4 * H, seq.input_size, "4*NumHiddenUnits x InputSize", where, seq.x)
    R = _matrix(recurrentWeights, "recurrentWeights", 4 * H, H, "4*NumHiddenUnits x NumHiddenUnits", where, seq.x)
    b = _bias(bias, 4 * H, "4*NumHiddenUnits", where, seq.x)
    h = _state(H0, "H0", H, seq.batch, where, seq.x)
    c = _state(C0, "C0", H, seq.batch, where, seq.x)
    N, T = seq.batch, seq.steps
    # the input projections of all time steps in one product
    zx = F.reshape(F.matmul(W, F.reshape(seq.x, (seq.input_size, N * T))) + b, (4 * H, N, T))
    hs = []
    for t in range(T):
        z = zx[:, :, t] + F.matmul(R, h)
        i, f, g, o = gate(z[:H]), gate(z[H:2 * H]), state(z[2 * H:3 * H]), gate(z[3 * H:])
        c = f * c + i * g
        h = o * state(c)
        hs.append(h)
    Y = F.stack(hs, axis=2)
    return seq.output(Y), _state_out(h, H0), _state_out(c, C0)


# ---------------------------------------------------------------- gru

def gru(X, H0, weights, recurrentWeights, bias, *, data_format: str | None = None,
        reset_gate_mode: str = "after-multiplication", state_activation_function: str = "tanh",
        gate_activation_function: str = "sigmoid"):
    """Gated recurrent unit, as MATLAB's ``gru``: returns ``(Y, hiddenState)``.

    ``X`` as for :func:`lstm`.  With ``H`` hidden units and ``D`` input
    channels: ``weights`` is ``3H x D``, ``recurrentWeights`` ``3H x H``, each
    the gates stacked in MATLAB's order reset, update, candidate; ``bias`` is
    ``3H`` (input biases), or ``6H`` with
    ``reset_gate_mode='recurrent-bias-after-multiplication'`` (the input
    biases, then the recurrent biases, each in gate order).  Per time step::

        r = gate(W_r x + b_r + R_r h [+ bR_r])
        z = gate(W_z x + b_z + R_z h [+ bR_z])
        'after-multiplication' (default):      c = state(W_c x + b_c + r * (R_c h))
        'before-multiplication':               c = state(W_c x + b_c + R_c (r * h))
        'recurrent-bias-after-multiplication': c = state(W_c x + b_c + r * (R_c h + bR_c))
        h = (1 - z) * c + z * h

    ``gate_activation_function`` (``'sigmoid'``, ``'hard-sigmoid'``) and
    ``state_activation_function`` (``'tanh'``, ``'softsign'``) as in
    :func:`lstm`.  ``Y`` holds ``h`` of every time step; the state is
    ``H x N``.  Derivatives of every order go through it.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.ones((1, 2, 3)), "CBT")     # 1 channel, 2 observations, 3 steps
        >>> W, R, b = np.ones((3, 1)), np.zeros((3, 1)), np.zeros(3)
        >>> Y, h = symdl.gru(X, np.zeros(1), W, R, b)
        >>> Y.shape, np.round(symdl.extractdata(h), 4)
        ((1, 2, 3), array([[0.464, 0.464]]))
    """
    where = "gru"
    mode = _choice(reset_gate_mode, {m: m for m in RESET_GATE_MODES}, "reset_gate_mode", where)
    state = STATE_ACTIVATIONS[_choice(state_activation_function, STATE_ACTIVATIONS,
                                      "state_activation_function", where)]
    gate = GATE_ACTIVATIONS[_choice(gate_activation_function, GATE_ACTIVATIONS, "gate_activation_function", where)]
    seq = _Sequence(X, data_format, where)
    H = _hidden_units(recurrentWeights, 3, where)
    W = _matrix(weights, "weights", 3 * H, seq.input_size, "3*NumHiddenUnits x InputSize", where, seq.x)
    R = _matrix(recurrentWeights, "recurrentWeights", 3 * H, H, "3*NumHiddenUnits x NumHiddenUnits", where, seq.x)
    recurrent_bias = mode == "recurrent-bias-after-multiplication"
    if recurrent_bias:
        b = _bias(bias, 6 * H, "6*NumHiddenUnits (reset_gate_mode 'recurrent-bias-after-multiplication')", where,
                  seq.x)
        b, bR = b[:3 * H], b[3 * H:]
    else:
        b, bR = _bias(bias, 3 * H, "3*NumHiddenUnits", where, seq.x), None
    h = _state(H0, "H0", H, seq.batch, where, seq.x)
    N, T = seq.batch, seq.steps
    zx = F.reshape(F.matmul(W, F.reshape(seq.x, (seq.input_size, N * T))) + b, (3 * H, N, T))
    before = mode == "before-multiplication"
    R_gates, R_cand = (R[:2 * H], R[2 * H:]) if before else (R, None)
    hs = []
    for t in range(T):
        x = zx[:, :, t]
        zh = F.matmul(R_gates, h)
        if recurrent_bias:
            zh = zh + bR
        r = gate(x[:H] + zh[:H])
        z = gate(x[H:2 * H] + zh[H:2 * H])
        if before:
            cand = state(x[2 * H:] + F.matmul(R_cand, r * h))
        else:
            cand = state(x[2 * H:] + r * zh[2 * H:])
        h = (1.0 - z) * cand + z * h
        hs.append(h)
    Y = F.stack(hs, axis=2)
    return seq.output(Y), _state_out(h, H0)
