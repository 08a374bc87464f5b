"""Data-parallel training on a Dask cluster: the same train_network call as
on one machine, with execution_environment='parallel'.

MATLAB                                             symdl
  parpool(2)                                         client = Client(LocalCluster(n_workers=2))
  opts = trainingOptions('adam', ...                 opts = nn.training_options('adam', ...,
      'ExecutionEnvironment', 'parallel')                execution_environment='parallel', cluster=client)
  net = trainNetwork(X, Y, layers, opts)             net, info = nn.train_network(X, Y, layers, opts)

The example starts a local cluster of two worker processes (or connects to
the scheduler given with --scheduler), trains a 64-64-10 MLP on
scikit-learn's 8x8 digits with 'adam', printing MATLAB's progress table and
the test accuracy, then trains the same network in this process alone and
prints the largest difference between the two sets of parameters (they
agree up to the order of summation of the gradients).

The gradient step is compiled here once and sent to each worker with the
training data; the workers neither trace nor compile.

Run:  python examples/train_dask.py [--epochs 20] [--scheduler tcp://host:8786]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symdl
from symdl import nn


def load_digits():
    """The bundled digits as features (64, N) in [0, 1]: 1500 to train, 297 to test."""
    from sklearn.datasets import load_digits as bundled
    digits = bundled()
    X = (digits.data / 16.0).T.astype(np.float32)
    order = np.random.default_rng(0).permutation(X.shape[1])
    train, test = order[:1500], order[1500:]
    return X[:, train], digits.target[train], X[:, test], digits.target[test]


def layers():
    return [nn.feature_input_layer(64), nn.fully_connected_layer(64), nn.relu_layer(),
            nn.fully_connected_layer(10), nn.softmax_layer(), nn.classification_layer()]


def train(X, y, options):
    symdl.seed(0)                  # the same initial weights and data order for both runs
    start = time.perf_counter()
    net, info = nn.train_network(X, y, layers(), options)
    return net, info, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    X_train, y_train, X_test, y_test = load_digits()
    settings = dict(max_epochs=args.epochs, mini_batch_size=128, initial_learn_rate=0.01, shuffle="every-epoch",
                    verbose_frequency=40)
    cluster = None
    if args.scheduler is None:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(args.scheduler or cluster)
    try:
        workers = sorted(client.nthreads())
        print(f"Dask cluster: {len(workers)} workers ({', '.join(workers)})")
        options = nn.training_options("adam", execution_environment="parallel", cluster=client, **settings)
        net, info, seconds = train(X_train, y_train, options)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    accuracy = float(np.mean(nn.classify(net, X_test) == y_test))
    print(f"parallel: {len(info['training_loss'])} iterations in {seconds:.1f} s")
    print(f"test accuracy {accuracy:.4f}")

    alone, _, seconds = train(X_train, y_train, nn.training_options("adam", verbose=False, **settings))
    print(f"one process: the same training in {seconds:.1f} s, test accuracy "
          f"{float(np.mean(nn.classify(alone, X_test) == y_test)):.4f}")
    a, b = net.network.learnables, alone.network.learnables
    difference = max(float(np.max(np.abs(symdl.extractdata(a[k][p]) - symdl.extractdata(b[k][p]))))
                     for k in a for p in a[k])
    print(f"parameters, parallel vs one process: max difference {difference:.1e}")


if __name__ == "__main__":
    main()
