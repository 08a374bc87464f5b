"""cnn: the CNN workload of the deep-learning issue, loss and all gradients.

One mini-batch of 128 grey 28x28 images ('SSCB', float32) through seed
003's network: a 5x5 convolution with 20 filters (no padding: 24x24x20),
batch normalisation with the batch's statistics, ELU, a fully connected
layer 11520 -> 10, softmax cross-entropy; the loss and the gradients of all
parameters.  symdl runs it as one native call per step (``dlaccelerate`` of
the model-gradients function); PyTorch eager (float32, one thread as in the
other benchmarks) and JAX ``jit`` run the same computation from the same
parameters, and the losses and gradients are checked against each other.

    python benchmarks/bench_cnn.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import numpy as np

import common
from common import (Report, attempt, first_call, measure, parse_args, peer, symdl_model_gradients)

CASE = "CNN loss + gradients, 128 images 28x28, conv 5x5x20, batchnorm, ELU, fc 11520->10"
N, H, W, F, K, CLASSES = 128, 28, 28, 20, 5, 10
EPS_BN = 1e-5


def data():
    rng = np.random.default_rng(0)
    X = rng.random((H, W, 1, N), dtype=np.float32)                      # SSCB
    labels = rng.integers(0, CLASSES, N)
    T = np.eye(CLASSES, dtype=np.float32)[:, labels]                      # CB
    fan_conv = K * K
    params = {
        "conv_w": (rng.standard_normal((K, K, 1, F)) * np.sqrt(2 / fan_conv)).astype(np.float32),
        "conv_b": np.zeros(F, np.float32),
        "bn_offset": np.zeros(F, np.float32), "bn_scale": np.ones(F, np.float32),
        "fc_w": (rng.standard_normal((CLASSES, (H - K + 1) * (W - K + 1) * F)) * 0.01).astype(np.float32),
        "fc_b": np.zeros(CLASSES, np.float32),
    }
    return params, X, T, labels


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("cnn", "cnn: seed 003's network, loss and all gradients of one mini-batch")
    start = time.perf_counter()
    import symdl
    rep.note(f"import symdl: {(time.perf_counter() - start) * 1e3:.0f} ms (not in any build time)")
    common.warm_up(rep)
    p0, X, T, labels = data()
    results = {}

    def bench_symdl():
        def model_gradients(params, X, T):
            Y = symdl.dlconv(X, params["conv_w"], params["conv_b"])
            Y, _, _ = symdl.batchnorm(Y, params["bn_offset"], params["bn_scale"])
            Y = symdl.elu(Y)
            Y = symdl.fullyconnect(Y, params["fc_w"], params["fc_b"])
            loss = symdl.crossentropy(symdl.softmax(Y), T)
            return loss, symdl.dlgradient(loss, params)

        results["symdl"] = symdl_model_gradients(rep, CASE, model_gradients, p0, symdl.dlarray(X, "SSCB"),
                                                 symdl.dlarray(T, "CB"))

    def bench_torch():
        torch = peer("torch")
        if torch is None:
            return rep.missing(CASE, "PyTorch eager", "torch")
        F_ = torch.nn.functional
        prm = {k: torch.tensor(a, requires_grad=True) for k, a in p0.items()}
        xt = torch.from_numpy(np.ascontiguousarray(np.transpose(X, (3, 2, 0, 1))))   # N C H W
        yt = torch.from_numpy(labels)
        w = lambda: prm["conv_w"].permute(3, 2, 0, 1)                                 # noqa: E731  F C kH kW

        def call():
            for p in prm.values():
                p.grad = None
            y = F_.conv2d(xt, w(), prm["conv_b"])
            y = F_.batch_norm(y, None, None, prm["bn_scale"], prm["bn_offset"], training=True, eps=EPS_BN)
            y = F_.elu(y)
            # MATLAB's fullyconnect flattens each observation's H x W x C in C order: (h, w, c)
            y = y.permute(0, 2, 3, 1).reshape(N, -1) @ prm["fc_w"].T + prm["fc_b"]
            loss = F_.cross_entropy(y, yt)
            loss.backward()
            return loss
        first, loss = first_call(call)
        results["PyTorch"] = (float(loss), {k: p.grad.numpy().copy() for k, p in prm.items()})
        rep.add(CASE, "PyTorch eager (forward + backward)", measure(call), first, note="float32")

    attempt(rep, CASE, "symdl", bench_symdl)
    attempt(rep, CASE, "PyTorch", bench_torch)
    if "symdl" in results and "PyTorch" in results:
        (ls, gs), (lt, gt) = results["symdl"], results["PyTorch"]
        rep.check("loss: symdl vs PyTorch", np.array([ls]), np.array([lt]), tol=1e-4)
        for k in sorted(gs):
            rep.check(f"gradient {k}: symdl vs PyTorch", gs[k].ravel(), gt[k].ravel(), tol=2e-3)
    rep.finish(args)


if __name__ == "__main__":
    main()
