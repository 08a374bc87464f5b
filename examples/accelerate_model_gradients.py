"""Accelerating a model-gradients function (seed 003): dlaccelerate on a
dlnetwork's loss and gradients.

MATLAB                                            symdl
  accfun = dlaccelerate(@modelGradients)            accfun = symdl.dlaccelerate(model_gradients)
  [grads, state, loss] = dlfeval(accfun, net, X, T) grads, state, loss = symdl.dlfeval(accfun, net, X, T)
  accfun                  (displays properties)     print(accfun)
  clearCache(accfun)                                accfun.clear_cache()

The network is the seed's digits network (28x28x1 images, 5x5 convolution
with 20 filters, batch normalisation, ReLU, fully connected to 10 classes,
softmax) and the inputs are the seed's: X = rand(28, 28, 1, 128) as 'SSCB'
and one-hot targets as 'CB'.  The example prints the AcceleratedFunction as
MATLAB displays it after one call and after many (HitRate and Occupancy are
percentages), checks the accelerated gradients against plain dlfeval, and
times both.

Run:  python examples/accelerate_model_gradients.py [--calls 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symdl
from symdl import nn


def model_gradients(net, X, T):
    Y, state = nn.forward(net, X)
    loss = symdl.crossentropy(Y, T)
    gradients = symdl.dlgradient(loss, net)
    return gradients, state, loss


def seconds_per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="calls timed per variant")
    args = parser.parse_args()

    symdl.seed(0)
    layers = [nn.image_input_layer((28, 28, 1), normalization="none"), nn.convolution2d_layer(5, 20),
              nn.batch_normalization_layer(), nn.relu_layer(), nn.fully_connected_layer(10), nn.softmax_layer()]
    net = nn.dlnetwork(layers)
    rng = np.random.default_rng(0)
    X = symdl.dlarray(rng.random((28, 28, 1, 128), dtype=np.float32), "SSCB")
    T = symdl.dlarray(np.eye(10, dtype=np.float32)[:, rng.integers(0, 10, 128)], "CB")

    accfun = symdl.dlaccelerate(model_gradients)
    print("accfun =")
    print(accfun)

    start = time.perf_counter()
    grads, _, loss = symdl.dlfeval(accfun, net, X, T)
    print(f"\nfirst call (trace, differentiate, compile): {time.perf_counter() - start:.2f} s, "
          f"loss {float(loss):.4f}")
    print(accfun)

    plain_grads, _, plain_loss = symdl.dlfeval(model_gradients, net, X, T)
    # both float32 results against the same computation in float64
    net64 = symdl.dlupdate(lambda p: symdl.dlarray(symdl.extractdata(p).astype(np.float64)), net)
    X64 = symdl.dlarray(symdl.extractdata(X).astype(np.float64), "SSCB")
    T64 = symdl.dlarray(symdl.extractdata(T).astype(np.float64), "CB")
    reference, _, ref_loss = symdl.dlfeval(model_gradients, net64, X64, T64)

    def error(g):
        return max(float(np.max(np.abs(symdl.extractdata(g[layer][name]) - symdl.extractdata(reference[layer][name]))))
                   for layer in g for name in g[layer])
    print(f"\nagainst float64: loss {abs(float(loss) - float(ref_loss)):.1e} accelerated, "
          f"{abs(float(plain_loss) - float(ref_loss)):.1e} plain dlfeval; largest gradient error "
          f"{error(grads):.1e} accelerated, {error(plain_grads):.1e} plain dlfeval (float32 rounding)")

    accelerated = seconds_per_call(lambda: symdl.dlfeval(accfun, net, X, T), args.calls)
    plain = seconds_per_call(lambda: symdl.dlfeval(model_gradients, net, X, T), 2)
    print(f"\nafter {args.calls + 1} accelerated calls:")
    print(accfun)
    print(f"\nper call: dlfeval {plain * 1e3:.1f} ms, accelerated {accelerated * 1e3:.1f} ms, "
          f"speed-up {plain / accelerated:.1f}x")

    accfun.clear_cache()
    print(f"\nafter clear_cache: HitRate {accfun.hit_rate:g}, Occupancy {accfun.occupancy:g}")


if __name__ == "__main__":
    main()
