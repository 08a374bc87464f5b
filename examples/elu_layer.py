"""Defining your own layer (seed 004): an ELU layer with a learnable alpha per
channel and its own backward, trained in a network with train_network.

MATLAB                                           symdl
  classdef eluLayer < nnet.layer.Layer             class ELULayer(nn.Layer):
    properties (Learnable) Alpha                       learnables = ("alpha",)
    function Z = predict(layer, X)                     def predict(self, X):
    function [dLdX, dLdAlpha] = backward(...)          def backward(self, X, Z, dLdZ, memory):
  trainNetwork(X, Y, layers, trainingOptions('sgdm'))  nn.train_network(X, Y, layers, nn.training_options('sgdm'))
  classify(net, X)                                 nn.classify(net, X)

The example
1. draws ELU, leaky ReLU and ReLU (the blog's figure) into a PNG;
2. checks the layer's hand-written backward against automatic differentiation
   of its predict (first derivatives, and second derivatives through the
   backward);
3. trains image input -> convolution -> batch normalisation -> ELU -> fully
   connected -> softmax -> classification on scikit-learn's 8x8 digits with
   'sgdm', printing MATLAB's progress table, the test accuracy and the learned
   alphas.

Run:  python examples/elu_layer.py [--epochs 30] [--out elu.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symdl
from symdl import nn


class ELULayer(nn.Layer):
    """ELU with one learnable alpha per channel: x for x > 0, alpha (e^x - 1)
    otherwise."""

    learnables = ("alpha",)

    def __init__(self, num_channels: int, name: str = "", seed: int = 0):
        super().__init__(name)
        # MATLAB's rand([1 1 numChannels]); numpy broadcasting wants the batch axis as well
        self.alpha = np.random.default_rng(seed).random((1, 1, num_channels, 1))

    def predict(self, X):
        # exp(min(X, 0)): no overflow for large positive X (the blog's remark)
        return symdl.maximum(X, 0.0) + self.alpha * (symdl.exp(symdl.minimum(X, 0.0)) - 1.0)

    def backward(self, X, Z, dLdZ, memory):
        dLdX = dLdZ * symdl.where(X > 0, 1.0, self.alpha + Z)
        dLdAlpha = symdl.sum(dLdZ * (symdl.exp(symdl.minimum(X, 0.0)) - 1.0), axis=(0, 1, 3))
        return dLdX, symdl.reshape(dLdAlpha, (1, 1, -1, 1))


class AutodiffELU(ELULayer):
    """The same layer without a backward: automatic differentiation of predict."""

    backward = nn.Layer.backward


def plot_activations(path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written")
        return
    x = np.linspace(-3, 3, 601)
    xs = symdl.dlarray(x)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, symdl.extractdata(symdl.elu(xs)), label="ELU (alpha = 1)")
    ax.plot(x, symdl.extractdata(symdl.leakyrelu(xs, 0.1)), "--", label="leaky ReLU (scale 0.1)")
    ax.plot(x, symdl.extractdata(symdl.relu(xs)), ":", label="ReLU")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title("ELU, leaky ReLU and ReLU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def check_backward() -> None:
    """The custom backward's gradients (and the second derivatives through it)
    against automatic differentiation of predict."""
    rng = np.random.default_rng(3)
    X = symdl.dlarray(rng.normal(size=(5, 5, 4, 3)), "SSCB")
    weights = rng.normal(size=(5, 5, 4, 3))

    def derivatives(layer_class):
        net = nn.dlnetwork([nn.image_input_layer((5, 5, 4), normalization="none"),
                            layer_class(4, name="elu", seed=1)], dtype="float64")

        def grads(net, X):
            loss = symdl.sum(nn.predict(net, X) * weights)
            g_alpha, g_x = symdl.dlgradient(loss, net.learnables["elu"]["alpha"], X, enable_higher_derivatives=True)
            # a second derivative: the gradient of |dL/dX|^2 through the backward
            g2 = symdl.dlgradient(symdl.sum(g_x * g_x), net.learnables["elu"]["alpha"])
            return g_alpha, g_x, g2
        return [symdl.extractdata(v) for v in symdl.dlfeval(grads, net, X)]

    custom, auto = derivatives(ELULayer), derivatives(AutodiffELU)
    for what, a, b in zip(("dL/dalpha", "dL/dX", "d|dL/dX|^2/dalpha"), custom, auto):
        print(f"backward vs autodiff, {what:18s} max difference {np.max(np.abs(a - b)):.1e}")


def load_digits():
    from sklearn.datasets import load_digits as bundled
    digits = bundled()
    images = (digits.images / 16.0).transpose(1, 2, 0)[:, :, None, :]      # 8 x 8 x 1 x N ('SSCB')
    order = np.random.default_rng(0).permutation(len(digits.target))
    train, test = order[:1500], order[1500:]
    return images[..., train], digits.target[train], images[..., test], digits.target[test]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="elu.png", help="PNG of ELU, leaky ReLU and ReLU")
    args = parser.parse_args()

    plot_activations(args.out)
    check_backward()

    X_train, y_train, X_test, y_test = load_digits()
    symdl.seed(0)
    layers = [nn.image_input_layer((8, 8, 1)), nn.convolution2d_layer(5, 20), nn.batch_normalization_layer(),
              ELULayer(20, name="elu"), nn.fully_connected_layer(10), nn.softmax_layer(),
              nn.classification_layer()]
    options = nn.training_options("sgdm", max_epochs=args.epochs, verbose_frequency=50)
    start = time.perf_counter()
    net, info = nn.train_network(X_train, y_train, layers, options)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(nn.classify(net, X_test) == y_test))
    print(f"trained {len(info['training_loss'])} iterations in {seconds:.1f} s")
    print(f"test accuracy {accuracy:.4f}")
    alpha = symdl.extractdata(net.network.learnables["elu"]["alpha"]).ravel()
    print("learned alphas:", np.array2string(alpha, precision=3, max_line_width=100))


if __name__ == "__main__":
    main()
