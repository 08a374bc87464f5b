"""A MATLAB-style custom training loop (seeds 000 and 001), ported by renaming.

A model function with hand-initialised parameters classifies three
interleaved spirals: fullyconnect -> relu -> fullyconnect -> softmax, the
cross-entropy loss, dlgradient of the parameter struct, adamupdate.  The
model-gradients function runs under dlaccelerate, so every training step
(forward, gradients, nothing else in Python) is one native call.

MATLAB                                   symdl
  [loss, grads] = dlfeval(@modelLoss,...)  loss, grads = symdl.dlfeval(accloss, ...)
  [params, avg, sq] = adamupdate(...)      params, avg, sq = symdl.adamupdate(...)

Run:  python examples/spirals.py [--out spirals.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symdl


def spirals(n_per_class: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Three interleaved spirals: points (2 x N, MATLAB's 'CB') and labels."""
    points, labels = [], []
    for k in range(3):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class) + rng.normal(0, 0.2, n_per_class)
        points.append(np.stack([r * np.sin(t), r * np.cos(t)]))
        labels += [k] * n_per_class
    return np.concatenate(points, axis=1), np.array(labels)


def init_params(rng, hidden: int = 64) -> dict:
    glorot = lambda o, i: rng.uniform(-1, 1, (o, i)) * np.sqrt(6 / (o + i))  # noqa: E731
    return {"fc1": {"W": symdl.dlarray(glorot(hidden, 2)), "b": symdl.dlarray(np.zeros(hidden))},
            "fc2": {"W": symdl.dlarray(glorot(3, hidden)), "b": symdl.dlarray(np.zeros(3))}}


def model(params, X):
    Y = symdl.fullyconnect(X, params["fc1"]["W"], params["fc1"]["b"])
    Y = symdl.relu(Y)
    Y = symdl.fullyconnect(Y, params["fc2"]["W"], params["fc2"]["b"])
    return symdl.softmax(Y)


def model_loss(params, X, T):
    Y = model(params, X)
    loss = symdl.crossentropy(Y, T)
    return loss, symdl.dlgradient(loss, params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="spirals.png", help="PNG of the decision regions (needs matplotlib)")
    parser.add_argument("--iterations", type=int, default=1500)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    points, labels = spirals(100, rng)
    X = symdl.dlarray(points, "CB")
    T = symdl.onehotencode(labels)
    params, avg_g, avg_sq_g = init_params(rng), None, None
    accloss = symdl.dlaccelerate(model_loss)

    print(f"{'iteration':>9} {'loss':>10} {'accuracy':>9}")
    start = time.perf_counter()
    for iteration in range(1, args.iterations + 1):
        loss, grads = symdl.dlfeval(accloss, params, X, T)
        params, avg_g, avg_sq_g = symdl.adamupdate(params, grads, avg_g, avg_sq_g, iteration, learn_rate=0.01)
        if iteration == 1 or iteration % 300 == 0:
            predicted = symdl.onehotdecode(model(params, X), [0, 1, 2])
            print(f"{iteration:>9} {float(loss):>10.4f} {np.mean(predicted == labels):>9.3f}")
    elapsed = time.perf_counter() - start
    accuracy = float(np.mean(symdl.onehotdecode(model(params, X), [0, 1, 2]) == labels))
    print(f"trained {args.iterations} iterations in {elapsed:.2f} s; training accuracy {accuracy:.3f}; "
          f"{accloss.hit_rate:.1f} % of the loss calls reused a compiled trace")

    # the accelerated gradients are the interpreted ones (one check at the end)
    loss_eager, grads_eager = symdl.dlfeval(model_loss, params, X, T)
    loss_acc, grads_acc = symdl.dlfeval(accloss, params, X, T)
    diff = max(float(np.max(np.abs(symdl.extractdata(a) - symdl.extractdata(b))))
               for a, b in zip(symdl.tree.tree_flatten(grads_eager)[0], symdl.tree.tree_flatten(grads_acc)[0]))
    print(f"compiled vs interpreted: loss {abs(float(loss_eager) - float(loss_acc)):.1e}, gradients {diff:.1e}")

    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written")
        return
    grid = np.linspace(-1.1, 1.1, 200)
    gx, gy = np.meshgrid(grid, grid)
    region = symdl.onehotdecode(model(params, symdl.dlarray(np.stack([gx.ravel(), gy.ravel()]), "CB")), [0, 1, 2])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(gx, gy, region.reshape(gx.shape), levels=[-0.5, 0.5, 1.5, 2.5], alpha=0.3, cmap="viridis")
    ax.scatter(points[0], points[1], c=labels, s=8, cmap="viridis")
    ax.set_title(f"custom training loop: accuracy {accuracy:.3f}")
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
