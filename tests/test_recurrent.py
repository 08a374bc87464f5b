"""lstm and gru: values against a plain numpy loop written in MATLAB's layout
(gate order, activations, reset-gate modes; several shapes; float32 and
float64), formats, derivatives against central differences to second order,
third derivatives against finite differences of second derivatives,
compiled == eager, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import assert_close, assert_same, check_grads

RNG = np.random.default_rng(17)


def data(x):
    return symdl.extractdata(x)


# ---------------------------------------------------------------- numpy references (MATLAB's equations)

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def hard_sigmoid(x):
    return np.where(x < -2.5, 0.0, np.where(x > 2.5, 1.0, 0.2 * x + 0.5))


def softsign(x):
    return x / (1.0 + np.abs(x))


GATES = {"sigmoid": sigmoid, "hard-sigmoid": hard_sigmoid}
STATES = {"tanh": np.tanh, "softsign": softsign}


def lstm_ref(X, H0, C0, W, R, b, state="tanh", gate="sigmoid"):
    """X is D x N x T ('CBT'); one observation and one time step at a time."""
    sa, ga = STATES[state], GATES[gate]
    D, N, T = X.shape
    H = R.shape[1]
    H0 = np.broadcast_to(np.reshape(H0, (H, -1)), (H, N))
    C0 = np.broadcast_to(np.reshape(C0, (H, -1)), (H, N))
    b = np.reshape(b, -1)
    Y = np.zeros((H, N, T))
    hN, cN = np.zeros((H, N)), np.zeros((H, N))
    for n in range(N):
        h, c = H0[:, n].copy(), C0[:, n].copy()
        for t in range(T):
            x = X[:, n, t]
            gi = ga(W[0:H] @ x + R[0:H] @ h + b[0:H])                 # input gate
            gf = ga(W[H:2 * H] @ x + R[H:2 * H] @ h + b[H:2 * H])     # forget gate
            gg = sa(W[2 * H:3 * H] @ x + R[2 * H:3 * H] @ h + b[2 * H:3 * H])   # cell candidate
            go = ga(W[3 * H:] @ x + R[3 * H:] @ h + b[3 * H:])        # output gate
            c = gf * c + gi * gg
            h = go * sa(c)
            Y[:, n, t] = h
        hN[:, n], cN[:, n] = h, c
    return Y, hN, cN


def gru_ref(X, H0, W, R, b, mode="after-multiplication", state="tanh", gate="sigmoid"):
    sa, ga = STATES[state], GATES[gate]
    D, N, T = X.shape
    H = R.shape[1]
    H0 = np.broadcast_to(np.reshape(H0, (H, -1)), (H, N))
    b = np.reshape(b, -1)
    bW, bR = (b[:3 * H], b[3 * H:]) if mode == "recurrent-bias-after-multiplication" else (b, np.zeros(3 * H))
    Wr, Wz, Wc = W[:H], W[H:2 * H], W[2 * H:]
    Rr, Rz, Rc = R[:H], R[H:2 * H], R[2 * H:]
    Y = np.zeros((H, N, T))
    for n in range(N):
        h = H0[:, n].copy()
        for t in range(T):
            x = X[:, n, t]
            r = ga(Wr @ x + bW[:H] + Rr @ h + bR[:H])                 # reset gate
            z = ga(Wz @ x + bW[H:2 * H] + Rz @ h + bR[H:2 * H])       # update gate
            if mode == "before-multiplication":
                cand = sa(Wc @ x + bW[2 * H:] + Rc @ (r * h))
            else:
                cand = sa(Wc @ x + bW[2 * H:] + r * (Rc @ h + bR[2 * H:]))
            h = (1 - z) * cand + z * h
            Y[:, n, t] = h
    return Y, Y[:, :, -1]


def lstm_args(D, N, T, H, dtype=np.float64, shared_state=False):
    s = (H, 1) if shared_state else (H, N)
    return [RNG.standard_normal(shape).astype(dtype) for shape in
            [(D, N, T), s, s, (4 * H, D), (4 * H, H), (4 * H,)]]


def gru_args(D, N, T, H, dtype=np.float64, bias=3):
    return [RNG.standard_normal(shape).astype(dtype) for shape in
            [(D, N, T), (H, N), (3 * H, D), (3 * H, H), (bias * H,)]]


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D,N,T,H,state,gate", [
    (3, 2, 4, 2, "tanh", "sigmoid"), (1, 1, 1, 3, "softsign", "hard-sigmoid"),
    (4, 3, 2, 1, "tanh", "hard-sigmoid"), (2, 2, 3, 3, "softsign", "sigmoid"),
])
def test_lstm_values(dtype, D, N, T, H, state, gate):
    X, H0, C0, W, R, b = lstm_args(D, N, T, H, dtype, shared_state=(N == 3))
    W = W * 2.0                                   # reach the flat parts of hard-sigmoid
    Y, hN, cN = symdl.lstm(symdl.dlarray(X, "CBT"), H0, C0, W, R, b,
                           state_activation_function=state, gate_activation_function=gate)
    eY, eh, ec = lstm_ref(*[a.astype(np.float64) for a in (X, H0, C0, W, R, b)], state=state, gate=gate)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert Y.fmt == "CBT" and Y.dtype == dtype and hN.dtype == dtype
    for got, want, what in ((Y, eY, "Y"), (hN, eh, "hiddenState"), (cN, ec, "cellState")):
        assert_close(data(got), want, tol, tol, what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["after-multiplication", "before-multiplication",
                                  "recurrent-bias-after-multiplication"])
@pytest.mark.parametrize("D,N,T,H,state,gate", [
    (3, 2, 4, 2, "tanh", "sigmoid"), (2, 1, 3, 3, "softsign", "hard-sigmoid"),
])
def test_gru_values(dtype, mode, D, N, T, H, state, gate):
    bias = 6 if mode == "recurrent-bias-after-multiplication" else 3
    X, H0, W, R, b = gru_args(D, N, T, H, dtype, bias)
    Y, hN = symdl.gru(symdl.dlarray(X, "CBT"), H0, W, R, b, reset_gate_mode=mode,
                      state_activation_function=state, gate_activation_function=gate)
    eY, eh = gru_ref(*[a.astype(np.float64) for a in (X, H0, W, R, b)], mode=mode, state=state, gate=gate)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert Y.fmt == "CBT" and Y.dtype == dtype
    assert_close(data(Y), eY, tol, tol, "Y")
    assert_close(data(hN), eh, tol, tol, "hiddenState")


def test_the_reset_gate_modes_differ():
    # a guard on the reference: the three modes are three different functions here
    X, H0, W, R, b = gru_args(2, 2, 3, 2, bias=6)
    outs = [symdl.gru(symdl.dlarray(X, "CBT"), H0, W, R, b[:6] if m != "recurrent-bias-after-multiplication"
                      else b, reset_gate_mode=m)[1] for m in
            ("after-multiplication", "before-multiplication", "recurrent-bias-after-multiplication")]
    assert not np.allclose(data(outs[0]), data(outs[1])) and not np.allclose(data(outs[0]), data(outs[2]))


def test_formats_and_layouts():
    X, H0, C0, W, R, b = lstm_args(3, 2, 4, 2)
    eY, eh, ec = lstm_ref(X, H0, C0, W, R, b)
    # unformatted X with data_format: Y keeps X's dimension order
    Y, hN, cN = symdl.lstm(np.transpose(X, (2, 0, 1)), H0, C0, W, R, b, data_format="TCB")
    assert Y.fmt == "" or Y.fmt is None
    np.testing.assert_allclose(data(Y), np.transpose(eY, (2, 0, 1)), rtol=1e-12, atol=1e-14)
    # formatted initial states give 'CB' states (MATLAB); unformatted ones unformatted
    Y, hN, cN = symdl.lstm(symdl.dlarray(X, "CBT"), symdl.dlarray(H0, "CB"), C0, W, R, b)
    assert hN.fmt == "CB" and not cN.fmt
    np.testing.assert_allclose(data(cN), ec, rtol=1e-12, atol=1e-14)
    # 'CB' is one time step; 'CT' is one observation
    Y, hN, _ = symdl.lstm(symdl.dlarray(X[:, :, 0], "CB"), H0, C0, W, R, b)
    assert Y.fmt == "CB"
    np.testing.assert_allclose(data(Y), lstm_ref(X[:, :, :1], H0, C0, W, R, b)[0][:, :, 0], rtol=1e-12)
    Y, hN, _ = symdl.lstm(symdl.dlarray(X[:, 0, :], "CT"), H0[:, :1], C0[:, 0], W, R, b)
    assert Y.fmt == "CT" and hN.shape == (2, 1)
    np.testing.assert_allclose(data(Y), lstm_ref(X[:, :1], H0[:, :1], C0[:, :1], W, R, b)[0][:, 0], rtol=1e-12)
    # 'S' dimensions flatten into the channels in C order (as fullyconnect); Y drops them
    Xs = RNG.standard_normal((3, 1, 2, 4))                                 # S C B T
    Y, _, _ = symdl.lstm(symdl.dlarray(Xs, "SCBT"), H0, C0, W, R, b)
    assert Y.fmt == "CBT"
    np.testing.assert_allclose(data(Y), lstm_ref(Xs.reshape(3, 2, 4), H0, C0, W, R, b)[0], rtol=1e-12)
    # gru: a shared initial state, bias as a column, weights formatted 'CU' as MATLAB's
    Xg, H0g, Wg, Rg, bg = gru_args(3, 2, 2, 2)
    Y, hN = symdl.gru(symdl.dlarray(Xg, "CBT"), H0g[:, 0], symdl.dlarray(Wg, "CU"), Rg, bg[:, None])
    np.testing.assert_allclose(data(Y), gru_ref(Xg, H0g[:, :1], Wg, Rg, bg)[0], rtol=1e-12)


# ---------------------------------------------------------------- derivatives

def _split(theta, shapes):
    out, k = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(theta[k:k + n].reshape(s))
        k += n
    return out


def test_lstm_gradients_to_second_order():
    args = lstm_args(2, 2, 2, 2)
    w_c = RNG.standard_normal((2, 2))

    def f(x, h0, c0, w, r, b):
        if isinstance(x, symdl.dlarray):
            Y, _, c = symdl.lstm(symdl.dlarray(x, "CBT"), h0, c0, w, r, b)
            return symdl.sum(symdl.stripdims(Y) ** 2) + symdl.sum(c * w_c)
        Y, _, c = lstm_ref(x, h0, c0, w, r, b)
        return np.sum(Y ** 2) + np.sum(c * w_c)
    check_grads(f, args, order=2)


@pytest.mark.parametrize("mode", ["after-multiplication", "before-multiplication",
                                  "recurrent-bias-after-multiplication"])
def test_gru_gradients_to_second_order(mode):
    args = gru_args(2, 2, 2, 2, bias=6 if mode.startswith("recurrent") else 3)

    def f(x, h0, w, r, b):
        if isinstance(x, symdl.dlarray):
            return symdl.gru(symdl.dlarray(x, "CBT"), h0, w, r, b, reset_gate_mode=mode)[0]
        return gru_ref(x, h0, w, r, b, mode=mode)[0]
    check_grads(f, args, order=2)


def test_other_activations_and_float32_gradients():
    args = lstm_args(2, 1, 2, 2, np.float32)

    def f(x, h0, c0, w, r, b):
        if isinstance(x, symdl.dlarray):
            return symdl.lstm(symdl.dlarray(x, "CBT"), h0, c0, w, r, b, state_activation_function="softsign")[0]
        return lstm_ref(x, h0, c0, w, r, b, state="softsign")[0]
    check_grads(f, args, order=2)
    gargs = gru_args(2, 1, 2, 2)

    def g(x, h0, w, r, b):
        if isinstance(x, symdl.dlarray):
            return symdl.gru(symdl.dlarray(x, "CBT"), h0, w, r, b, gate_activation_function="hard-sigmoid",
                             state_activation_function="softsign")[0]
        return gru_ref(x, h0, w, r, b, state="softsign", gate="hard-sigmoid")[0]
    check_grads(g, gargs, order=1)


def _third_order_check(model, theta, u):
    """The gradient of u' H(theta) u, by three nested dlgradient calls, against
    central differences of u' H u (the Hessian-vector product from symdl.hvp,
    itself checked against finite differences above)."""
    def third(t):
        y = model(t)
        g = symdl.dlgradient(y, t, enable_higher_derivatives=True)
        g2 = symdl.dlgradient(symdl.sum(g * u), t, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(g2 * u), t)
    got = data(symdl.dlfeval(third, symdl.dlarray(theta)))
    hv = symdl.hvp(model)

    def q(t):
        return float(np.dot(np.asarray(hv(t, u)), u))
    eps = 1e-4
    want = np.zeros_like(theta)
    for j in range(theta.size):
        def d(h, j=j):
            tp, tm = theta.copy(), theta.copy()
            tp[j] += h
            tm[j] -= h
            return (q(tp) - q(tm)) / (2 * h)
        want[j] = (4 * d(eps / 2) - d(eps)) / 3                  # Richardson
    assert_close(got, want, 1e-6, 1e-7, "third derivative")
    assert np.max(np.abs(want)) > 1e-3                            # a real third derivative, not zeros


def test_third_derivatives_through_lstm_and_gru():
    D, N, T, H = 1, 1, 2, 1
    shapes = [(D, N, T), (H, N), (H, N), (4 * H, D), (4 * H, H), (4 * H,)]
    theta = RNG.standard_normal(sum(int(np.prod(s)) for s in shapes))
    u = RNG.standard_normal(theta.shape)

    def model(t):
        x, h0, c0, w, r, b = _split(t, shapes)
        Y, _, c = symdl.lstm(symdl.dlarray(x, "CBT"), h0, c0, w, r, b)
        return symdl.sum(symdl.stripdims(Y)) + symdl.sum(c)
    _third_order_check(model, theta, u)
    gshapes = [(D, N, T), (H, N), (3 * H, D), (3 * H, H), (6 * H,)]
    theta = RNG.standard_normal(sum(int(np.prod(s)) for s in gshapes))
    u = RNG.standard_normal(theta.shape)

    def gmodel(t):
        x, h0, w, r, b = _split(t, gshapes)
        Y, _ = symdl.gru(symdl.dlarray(x, "CBT"), h0, w, r, b, reset_gate_mode="recurrent-bias-after-multiplication")
        return symdl.sum(symdl.stripdims(Y) ** 2)
    _third_order_check(gmodel, theta, u)


# ---------------------------------------------------------------- compiled == eager

def test_compiled_equals_eager():
    X, H0, C0, W, R, b = lstm_args(2, 2, 3, 2)
    Xg, H0g, Wg, Rg, bg = gru_args(2, 2, 3, 2)

    def step(x, w, r, wg, rg):
        Y, h, c = symdl.lstm(symdl.dlarray(x, "CBT"), H0, C0, w, r, b)
        Yg, hg = symdl.gru(symdl.dlarray(x, "CBT"), H0g, wg, rg, bg, reset_gate_mode="before-multiplication")
        loss = symdl.sum(symdl.stripdims(Y) ** 2) + symdl.sum(c) + symdl.sum(symdl.stripdims(Yg) * 0.5) + \
            symdl.sum(hg ** 3)
        return (loss,) + symdl.dlgradient(loss, x, w, r, wg, rg)
    args = [X, W, R, Wg, Rg]
    eager = symdl.dlfeval(step, *[symdl.dlarray(a) for a in args])
    compiled = symdl.compile(step, *args)(*args)
    accelerated = symdl.dlaccelerate(step)
    again = symdl.dlfeval(accelerated, *[symdl.dlarray(a) for a in args])
    for e, c, a in zip(eager, compiled, again):
        assert_same(np.asarray(data(c) if isinstance(c, symdl.dlarray) else c), data(e), 1e-12, 1e-13, "compiled")
        assert_same(data(a), data(e), 1e-12, 1e-13, "dlaccelerate")
    eY = lstm_ref(X, H0, C0, W, R, b)[0]
    np.testing.assert_allclose(float(data(eager[0])) - np.sum(eY ** 2) - np.sum(lstm_ref(X, H0, C0, W, R, b)[2]),
                               np.sum(gru_ref(X, H0g, Wg, Rg, bg, mode="before-multiplication")[0] * 0.5)
                               + np.sum(gru_ref(X, H0g, Wg, Rg, bg, mode="before-multiplication")[1] ** 3),
                               rtol=1e-10)


# ---------------------------------------------------------------- bad input

def test_bad_input_is_a_clear_error():
    X, H0, C0, W, R, b = lstm_args(3, 2, 4, 2)
    Xf = symdl.dlarray(X, "CBT")
    with pytest.raises(ValueError, match=r"lstm: weights must be 4\*NumHiddenUnits x InputSize = 8 x 3, "
                                         r"got shape \(8, 2\)"):
        symdl.lstm(Xf, H0, C0, W[:, :2], R, b)
    with pytest.raises(ValueError, match=r"lstm: recurrentWeights must be 4\*NumHiddenUnits x NumHiddenUnits"):
        symdl.lstm(Xf, H0, C0, W, R[:6], b)
    with pytest.raises(ValueError, match=r"lstm: bias must have 4\*NumHiddenUnits = 8 elements.*got shape \(7,\)"):
        symdl.lstm(Xf, H0, C0, W, R, b[:7])
    with pytest.raises(ValueError, match=r"lstm: H0 must be NumHiddenUnits x 1 or .* 2 x 2 .*got shape \(3, 2\)"):
        symdl.lstm(Xf, np.zeros((3, 2)), C0, W, R, b)
    with pytest.raises(ValueError, match=r"lstm: C0 must be .*got shape \(2, 3\)"):
        symdl.lstm(Xf, H0, np.zeros((2, 3)), W, R, b)
    with pytest.raises(ValueError, match="lstm: X must be a formatted dlarray .* or give its labels as data_format"):
        symdl.lstm(X, H0, C0, W, R, b)
    with pytest.raises(ValueError, match="lstm: X must have a 'C' dimension"):
        symdl.lstm(symdl.dlarray(X, "UBT"), H0, C0, W, R, b)
    with pytest.raises(ValueError, match="lstm: data_format is only for unformatted X"):
        symdl.lstm(Xf, H0, C0, W, R, b, data_format="CBT")
    with pytest.raises(ValueError, match="lstm: data_format must be a string with one label per dimension"):
        symdl.lstm(X, H0, C0, W, R, b, data_format="CB")
    with pytest.raises(ValueError, match="lstm: state_activation_function must be one of 'tanh', 'softsign', "
                                         "got 'relu'"):
        symdl.lstm(Xf, H0, C0, W, R, b, state_activation_function="relu")
    with pytest.raises(ValueError, match="lstm: gate_activation_function must be one of"):
        symdl.lstm(Xf, H0, C0, W, R, b, gate_activation_function="tanh")
    with pytest.raises(TypeError, match="lstm: weights must be a dlarray or a real numeric array"):
        symdl.lstm(Xf, H0, C0, "w", R, b)
    Xg, H0g, Wg, Rg, bg = gru_args(3, 2, 4, 2)
    Xgf = symdl.dlarray(Xg, "CBT")
    with pytest.raises(ValueError, match=r"gru: bias must have 6\*NumHiddenUnits .*got shape \(6,\)"):
        symdl.gru(Xgf, H0g, Wg, Rg, bg, reset_gate_mode="recurrent-bias-after-multiplication")
    with pytest.raises(ValueError, match=r"gru: bias must have 3\*NumHiddenUnits = 6 elements"):
        symdl.gru(Xgf, H0g, Wg, Rg, np.zeros(12))
    with pytest.raises(ValueError, match="gru: reset_gate_mode must be one of 'after-multiplication'"):
        symdl.gru(Xgf, H0g, Wg, Rg, bg, reset_gate_mode="after")
    with pytest.raises(ValueError, match=r"gru: weights must be 3\*NumHiddenUnits x InputSize = 6 x 3"):
        symdl.gru(Xgf, H0g, Wg.T, Rg, bg)
    with pytest.raises(ValueError, match="gru: H0 must be"):
        symdl.gru(Xgf, np.zeros((2, 5)), Wg, Rg, bg)
    with pytest.raises(ValueError, match="gru: X must have at least one observation and one time step"):
        symdl.gru(symdl.dlarray(np.zeros((3, 2, 0)), "CBT"), H0g, Wg, Rg, bg)


def test_against_pytorch_when_installed():
    # an independent implementation: PyTorch's LSTM has MATLAB's gate order
    # (i, f, g, o), its GRU is MATLAB's 'recurrent-bias-after-multiplication'
    # (r, z, n; bias_ih, then bias_hh)
    torch = pytest.importorskip("torch", reason="PyTorch is an optional second reference (not in the test extra)")
    D, N, T, H = 3, 2, 5, 4
    X, H0, C0, W, R, b = lstm_args(D, N, T, H)
    net = torch.nn.LSTM(D, H).double()
    with torch.no_grad():
        for p, v in ((net.weight_ih_l0, W), (net.weight_hh_l0, R), (net.bias_ih_l0, b), (net.bias_hh_l0, 0 * b)):
            p.copy_(torch.tensor(v))
        y, (h, c) = net(torch.tensor(X.transpose(2, 1, 0)), (torch.tensor(H0.T[None]), torch.tensor(C0.T[None])))
    Y, hN, cN = symdl.lstm(symdl.dlarray(X, "CBT"), H0, C0, W, R, b)
    np.testing.assert_allclose(data(Y), y.numpy().transpose(2, 1, 0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(data(cN), c.numpy()[0].T, rtol=1e-10, atol=1e-12)
    Xg, H0g, Wg, Rg, bg = gru_args(D, N, T, H, bias=6)
    net = torch.nn.GRU(D, H).double()
    with torch.no_grad():
        for p, v in ((net.weight_ih_l0, Wg), (net.weight_hh_l0, Rg), (net.bias_ih_l0, bg[:3 * H]),
                     (net.bias_hh_l0, bg[3 * H:])):
            p.copy_(torch.tensor(v))
        y, h = net(torch.tensor(Xg.transpose(2, 1, 0)), torch.tensor(H0g.T[None]))
    Y, hN = symdl.gru(symdl.dlarray(Xg, "CBT"), H0g, Wg, Rg, bg, reset_gate_mode="recurrent-bias-after-multiplication")
    np.testing.assert_allclose(data(Y), y.numpy().transpose(2, 1, 0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(data(hN), h.numpy()[0].T, rtol=1e-10, atol=1e-12)


def test_bad_format_strings_name_data_format():
    X, H0, C0, W, R, b = lstm_args(3, 2, 4, 2)
    with pytest.raises(ValueError, match="lstm: data_format 'CBQ' is not a valid format for X"):
        symdl.lstm(X, H0, C0, W, R, b, data_format="CBQ")
    with pytest.raises(ValueError, match="lstm: X must have a 'C' dimension"):
        symdl.lstm(X, H0, C0, W, R, b, data_format="UBT")
