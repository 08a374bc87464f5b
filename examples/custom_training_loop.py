"""A MATLAB custom training loop (seeds 001 and 003), ported by renaming.

A small convolutional network classifies scikit-learn's bundled 8x8 digits
(1,797 images as MATLAB's 'SSCB' arrays): dlconv -> batchnorm -> relu ->
fullyconnect -> softmax, the cross-entropy loss, dlgradient of the parameter
struct, adamupdate.  The model-gradients function runs under dlaccelerate:
after the first mini-batch (trace and compile), each step's forward pass and
gradients are one native call, and the AcceleratedFunction reports how often
its traces were reused.

MATLAB                                        symdl
  accfun = dlaccelerate(@modelGradients)        accfun = symdl.dlaccelerate(model_gradients)
  [loss, grads] = dlfeval(accfun, net, X, T)    loss, grads = symdl.dlfeval(accfun, params, X, T)
  [p, avg, sq] = adamupdate(p, grads, ...)      params, avg, sq = symdl.adamupdate(params, grads, ...)
  accfun.HitRate, accfun.Occupancy              accfun.hit_rate, accfun.occupancy

Run:  python examples/custom_training_loop.py [--epochs 12] [--out digits_loss.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symdl

CLASSES = 10
FILTERS = 8


def load_digits(rng, n_test: int = 360):
    """Train and test images (H x W x C x N, 'SSCB', float32 in [0, 1]) and labels."""
    from sklearn.datasets import load_digits as bundled
    digits = bundled()
    order = rng.permutation(len(digits.target))
    images = (digits.images[order] / 16.0).astype(np.float32)
    labels = digits.target[order]
    sscb = np.transpose(images, (1, 2, 0))[:, :, None, :]
    return sscb[..., n_test:], labels[n_test:], sscb[..., :n_test], labels[:n_test]


def init_params(rng) -> dict:
    """Glorot-uniform weights (MATLAB's default initialiser), zero biases."""
    def glorot(shape, fan_in, fan_out):
        return symdl.dlarray((rng.uniform(-1, 1, shape) * np.sqrt(6 / (fan_in + fan_out))).astype(np.float32))

    def zeros(n):
        return symdl.dlarray(np.zeros(n, np.float32))

    return {"conv": {"weights": glorot((3, 3, 1, FILTERS), 9, 9 * FILTERS), "bias": zeros(FILTERS)},
            "batchnorm": {"offset": zeros(FILTERS), "scale": symdl.dlarray(np.ones(FILTERS, np.float32))},
            "fc": {"weights": glorot((CLASSES, 64 * FILTERS), 64 * FILTERS, CLASSES), "bias": zeros(CLASSES)}}


def model(params, X):
    Y = symdl.dlconv(X, params["conv"]["weights"], params["conv"]["bias"], padding="same")
    Y, _, _ = symdl.batchnorm(Y, params["batchnorm"]["offset"], params["batchnorm"]["scale"])
    Y = symdl.relu(Y)
    Y = symdl.fullyconnect(Y, params["fc"]["weights"], params["fc"]["bias"])
    return symdl.softmax(Y)


def model_gradients(params, X, T):
    loss = symdl.crossentropy(model(params, X), T)
    return loss, symdl.dlgradient(loss, params)


def accuracy(params, images, labels) -> float:
    predicted = symdl.onehotdecode(model(params, symdl.dlarray(images, "SSCB")), list(range(CLASSES)))
    return float(np.mean(predicted == labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=128, help="mini-batch size")
    parser.add_argument("--out", default="digits_loss.png", help="PNG of the loss curve (needs matplotlib)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X_train, y_train, X_test, y_test = load_digits(rng)
    params, avg_g, avg_sq_g = init_params(rng), None, None
    accfun = symdl.dlaccelerate(model_gradients)

    print(f"{X_train.shape[-1]} training and {X_test.shape[-1]} test images of {X_train.shape[:2]} pixels")
    print(f"{'epoch':>5} {'iteration':>9} {'loss':>8} {'test accuracy':>13} {'seconds':>8}")
    losses, iteration, start = [], 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(X_train.shape[-1])
        for first in range(0, len(order), args.batch):   # the last mini-batch is partial, as MATLAB's queue
            idx = order[first:first + args.batch]
            X = symdl.dlarray(X_train[..., idx], "SSCB")
            T = symdl.onehotencode(y_train[idx], classes=list(range(CLASSES)), dtype="float32")
            loss, grads = symdl.dlfeval(accfun, params, X, T)
            iteration += 1
            params, avg_g, avg_sq_g = symdl.adamupdate(params, grads, avg_g, avg_sq_g, iteration, learn_rate=0.01)
            losses.append(float(loss))
        test_accuracy = accuracy(params, X_test, y_test)
        print(f"{epoch:>5} {iteration:>9} {losses[-1]:>8.4f} {test_accuracy:>13.3f} "
              f"{time.perf_counter() - start:>8.2f}")
    print(f"test accuracy {test_accuracy:.3f}; HitRate {accfun.hit_rate:.1f} %, Occupancy {accfun.occupancy:.1f} % "
          f"(two traces: full and partial mini-batches)")

    # the accelerated gradients are the interpreted ones (one check at the end)
    X = symdl.dlarray(X_train[..., :args.batch], "SSCB")
    T = symdl.onehotencode(y_train[:args.batch], classes=list(range(CLASSES)), dtype="float32")
    loss_eager, grads_eager = symdl.dlfeval(model_gradients, params, X, T)
    loss_acc, grads_acc = symdl.dlfeval(accfun, params, X, T)
    diff = max(float(np.max(np.abs(symdl.extractdata(a) - symdl.extractdata(b))))
               for a, b in zip(symdl.tree.tree_flatten(grads_eager)[0], symdl.tree.tree_flatten(grads_acc)[0]))
    print(f"compiled vs interpreted: loss {abs(float(loss_eager) - float(loss_acc)):.1e}, gradients {diff:.1e}")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written")
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("mini-batch loss")
    ax.set_yscale("log")
    ax.set_title(f"digits CNN, custom training loop: test accuracy {test_accuracy:.3f}")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
