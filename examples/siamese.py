"""A model function with shared weights (seed 001): a Siamese network that
tells whether two handwritten digits are the same digit, trained with a
custom loop.

Both images of a pair go through the same twin subnetwork (one set of
weights): convolution -> ReLU -> fully connected -> ReLU gives a feature
vector per image; the absolute difference of the two vectors goes through a
fully connected layer to two classes (same, different) and softmax.  The
parameters are a plain dict initialised by hand, as a MATLAB model function's
struct is, and the gradient of the shared weights collects both branches.

MATLAB                                          symdl
  F1 = forwardTwin(parameters, X1)                F1 = twin(params, X1)
  [loss, grads] = dlfeval(@modelLoss, ...)        loss, grads = symdl.dlfeval(step, params, X1, X2, T)
  [p, avg, sq] = adamupdate(p, grads, avg, sq, i) params, avg, sq = symdl.adamupdate(params, grads, avg, sq, i)

Run:  python examples/siamese.py [--iterations 600]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symdl

FILTERS, FEATURES, BATCH = 8, 32, 64


def load_digits(rng):
    from sklearn.datasets import load_digits as bundled
    digits = bundled()
    order = rng.permutation(len(digits.target))
    images = (digits.images[order] / 16.0).astype(np.float32).transpose(1, 2, 0)[:, :, None, :]  # 'SSCB'
    labels = digits.target[order]
    return images[..., 360:], labels[360:], images[..., :360], labels[:360]


def pairs(rng, labels, n: int):
    """n pairs of indices, half of the same digit and half of different digits."""
    first = rng.integers(0, len(labels), n)
    same = np.arange(n) < n // 2
    second = np.empty(n, dtype=int)
    for k in range(n):
        pool = np.flatnonzero((labels == labels[first[k]]) == same[k])
        second[k] = rng.choice(pool)
    order = rng.permutation(n)
    return first[order], second[order], same[order]


def init_params(rng) -> dict:
    """Glorot-uniform weights (MATLAB's default initialiser) and zero biases."""
    def glorot(shape, fan_in, fan_out):
        return symdl.dlarray((rng.uniform(-1, 1, shape) * np.sqrt(6 / (fan_in + fan_out))).astype(np.float32))

    def zeros(n):
        return symdl.dlarray(np.zeros(n, np.float32))

    return {"conv": {"weights": glorot((3, 3, 1, FILTERS), 9, 9 * FILTERS), "bias": zeros(FILTERS)},
            "fc": {"weights": glorot((FEATURES, 64 * FILTERS), 64 * FILTERS, FEATURES), "bias": zeros(FEATURES)},
            "out": {"weights": glorot((2, FEATURES), FEATURES, 2), "bias": zeros(2)}}


def twin(params, X):
    """The shared subnetwork: one feature vector ('CB') per image."""
    Y = symdl.relu(symdl.dlconv(X, params["conv"]["weights"], params["conv"]["bias"], padding="same"))
    return symdl.relu(symdl.fullyconnect(Y, params["fc"]["weights"], params["fc"]["bias"]))


def model(params, X1, X2):
    """Probabilities of (same, different) for each pair."""
    distance = symdl.abs(twin(params, X1) - twin(params, X2))
    return symdl.softmax(symdl.fullyconnect(distance, params["out"]["weights"], params["out"]["bias"]))


def model_loss(params, X1, X2, T):
    loss = symdl.crossentropy(model(params, X1, X2), T)
    return loss, symdl.dlgradient(loss, params)


def one_hot(same):
    return symdl.dlarray(np.stack([same, ~same]).astype(np.float32), "CB")


def check_shared_gradient(params, X1, X2, T) -> float:
    """The shared weights' gradient is the sum over the two branches: compare
    with a model whose twins have their own (equal) copies of the weights."""
    def untied_loss(p1, p2, out):
        distance = symdl.abs(twin(p1, X1) - twin(p2, X2))
        Y = symdl.softmax(symdl.fullyconnect(distance, out["weights"], out["bias"]))
        loss = symdl.crossentropy(Y, T)
        return symdl.dlgradient(loss, p1, p2)

    tied = symdl.dlfeval(model_loss, params, X1, X2, T)[1]
    g1, g2 = symdl.dlfeval(untied_loss, params, params, params["out"])
    return max(float(np.max(np.abs(symdl.extractdata(tied[layer][name]) -
                                   symdl.extractdata(g1[layer][name]) - symdl.extractdata(g2[layer][name]))))
               for layer in ("conv", "fc") for name in ("weights", "bias"))


def accuracy(params, images, labels, rng, n: int = 1000) -> float:
    a, b, same = pairs(rng, labels, n)
    Y = symdl.extractdata(model(params, symdl.dlarray(images[..., a], "SSCB"), symdl.dlarray(images[..., b], "SSCB")))
    return float(np.mean((Y[0] > 0.5) == same))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=600)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X_train, y_train, X_test, y_test = load_digits(rng)
    params = init_params(rng)

    a, b, same = pairs(rng, y_train, BATCH)
    batch = (symdl.dlarray(X_train[..., a], "SSCB"), symdl.dlarray(X_train[..., b], "SSCB"), one_hot(same))
    print(f"shared weights' gradient vs the sum of both branches' gradients: max difference "
          f"{check_shared_gradient(params, *batch):.1e}")

    step = symdl.dlaccelerate(model_loss)
    avg, sq = None, None
    print(f"{'iteration':>9s} {'loss':>8s} {'seconds':>8s}")
    start = time.perf_counter()
    for iteration in range(1, args.iterations + 1):
        a, b, same = pairs(rng, y_train, BATCH)
        loss, grads = symdl.dlfeval(step, params, symdl.dlarray(X_train[..., a], "SSCB"),
                                    symdl.dlarray(X_train[..., b], "SSCB"), one_hot(same))
        params, avg, sq = symdl.adamupdate(params, grads, avg, sq, iteration, 0.002)
        if iteration == 1 or iteration % 100 == 0:
            print(f"{iteration:9d} {float(loss):8.4f} {time.perf_counter() - start:8.2f}")
    print(f"same-or-different accuracy on 1000 pairs of unseen digits: {accuracy(params, X_test, y_test, rng):.3f}")
    print(f"HitRate {step.hit_rate:.1f} % (one trace for all {args.iterations} steps)")


if __name__ == "__main__":
    main()
