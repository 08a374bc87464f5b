"""Data-parallel training on a Dask cluster: ``train_network`` with
``training_options(execution_environment='parallel', cluster=client)``.

What happens (SPEC §9.4):

- On the client, the gradient step of one shard (forward, loss,
  ``dlgradient``) is traced and compiled once per shard size with
  :func:`symdl.compile` (at most two sizes: a mini-batch of ``m`` over ``k``
  workers gives shards of ``m // k`` and ``m // k + 1``).
- The compiled steps and the training data travel to every worker once
  (``client.scatter(..., broadcast=True)``): a ``CompiledFunction`` pickles
  with its object code, so the workers neither trace nor run LLVM; a worker
  loads the steps once, kept by their digest.
- Each step sends the current parameters and each worker's shard of the
  mini-batch (indices into its copy of the data); each worker returns its
  shard's mean loss, gradients, batch-normalisation state and correct
  predictions.
- The client weights each shard by its size (the loss is the mean over the
  whole mini-batch), adds the L2 term and applies the solver's update with the
  same code as one-process training, so the parameters equal one-process
  training up to the order of summation.

Batch normalisation normalises each shard with the shard's own statistics
(as MATLAB's parallel training does), so a network with batchnorm layers
differs from one-process training; its running statistics are the
size-weighted means of the workers'.  Random numbers (dropout) are drawn on
the workers with a key per iteration and shard taken from the client's
symdl stream: ``symdl.seed`` makes a parallel run repeat exactly.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import hashlib
import pickle
import threading

import numpy as np

from ..array import dlarray, extractdata
from ..autodiff.api import dlfeval, dlgradient
from ..compiler.accelerate import dlaccelerate
from ..compiler.aot import CompiledFunction, compile as compile_function
from ..ops.losses import crossentropy, mse
from ..random import forced_key, next_key
from ..tree import tree_flatten, tree_unflatten
from .network import forward

__all__ = ["ParallelStep", "check_cluster", "shard_sizes"]


def _distributed(where: str):
    try:
        import distributed
    except ImportError:
        raise ValueError(f"{where}: execution_environment='parallel' needs dask.distributed "
                         f"(pip install 'symdl[dask]')") from None
    return distributed


def check_cluster(cluster, where: str) -> None:
    """``cluster`` must be None (the current client) or a
    ``dask.distributed.Client``; dask must be installed."""
    distributed = _distributed(where)
    if cluster is not None and not isinstance(cluster, distributed.Client):
        raise TypeError(f"{where}: cluster must be a dask.distributed.Client (or None for the current "
                        f"client), got {type(cluster).__name__}")


def _client(cluster, where: str):
    """``cluster``, or the current Dask client; a clear error without one."""
    distributed = _distributed(where)
    if cluster is None:
        try:
            cluster = distributed.get_client()
        except ValueError:
            raise ValueError(f"{where}: execution_environment='parallel' needs a Dask client: pass "
                             f"cluster=dask.distributed.Client(...) to training_options, or create a Client "
                             f"first (none is running)") from None
    if cluster.status != "running":
        raise ValueError(f"{where}: the Dask client of execution_environment='parallel' is not running "
                         f"(status {cluster.status!r})")
    return cluster


def shard_sizes(batch: int, workers: int) -> list[int]:
    """Sizes of the shards of a mini-batch of ``batch`` observations over
    ``workers`` workers, as equal as possible (larger ones first).

    Example:
        >>> from symdl.nn.parallel import shard_sizes
        >>> shard_sizes(10, 3)
        [4, 3, 3]
    """
    k = min(batch, workers)
    return [batch // k + (1 if j < batch % k else 0) for j in range(k)]


@dataclasses.dataclass
class _Payload:
    """What every worker receives once: the compiled shard steps (by shard
    size, pickled, with their SHA-256 digest) and the training data; the
    names of the gradient and state entries in the order the worker returns
    them."""

    functions: bytes
    digest: str
    X: np.ndarray
    targets: np.ndarray
    codes: np.ndarray | None
    fmt: str
    learnable_paths: list[tuple[str, str]]
    state_paths: list[tuple[str, str]]


def _shard_function(treedef, classification: bool):
    """The gradient step of one shard, a function of the network's leaves
    (learnables, then state) so that it compiles without the network object."""
    def shard_step(leaves, X, T):
        net = tree_unflatten(treedef, leaves)
        Y, state = forward(net, X)
        loss = crossentropy(Y, T) if classification else mse(Y, T)
        return loss, dlgradient(loss, net), state, Y
    return shard_step


# On a worker: the compiled shard steps by digest, loaded once whatever Dask
# does with the payload (it may deserialise a scattered object again when it
# moves a copy between workers); a few recent trainings are kept.
_LOADED: collections.OrderedDict[str, dict[int, CompiledFunction]] = collections.OrderedDict()
_LOADED_MAX = 4
_LOADED_LOCK = threading.Lock()


def _compiled_steps(payload: _Payload) -> dict[int, CompiledFunction]:
    with _LOADED_LOCK:
        steps = _LOADED.get(payload.digest)
        if steps is None:
            if hashlib.sha256(payload.functions).hexdigest() != payload.digest:
                raise ValueError("train_network (on a Dask worker): the compiled steps do not match their digest")
            steps = pickle.loads(payload.functions)   # object code: no tracing, no LLVM
            _LOADED[payload.digest] = steps
            while len(_LOADED) > _LOADED_MAX:
                _LOADED.popitem(last=False)
        else:
            _LOADED.move_to_end(payload.digest)
        return steps


def _shard_step(payload: _Payload, idx: np.ndarray, leaves: list[np.ndarray], key: np.ndarray):
    """A Dask task: run the compiled step on this worker's shard ``idx``."""
    return _evaluate_shard(payload, idx, leaves, key)


def _evaluate_shard(payload: _Payload, idx: np.ndarray, leaves: list[np.ndarray], key: np.ndarray):
    """(mean loss of the shard, gradients, state, correct predictions or None);
    random numbers drawn with ``key``."""
    step = _compiled_steps(payload)[len(idx)]
    X = dlarray(payload.X[..., idx], payload.fmt)
    T = dlarray(payload.targets[:, idx], "CB")
    with forced_key(key):
        loss, grad, state, Y = step([dlarray(v) for v in leaves], X, T)
    gradients = [extractdata(grad[layer][name]) for layer, name in payload.learnable_paths]
    states = [extractdata(state[layer][name]) for layer, name in payload.state_paths]
    correct = None
    if payload.codes is not None:
        correct = int(np.sum(extractdata(Y).argmax(0) == payload.codes[idx]))
    return float(extractdata(loss)), gradients, states, correct


def _client_update(net, grad, state1, state2, iteration, learn_rate, l2: float, solver: str, hyper: tuple):
    """The averaged gradient plus the L2 term (on every learnable but biases,
    as one-process training differentiates it), then the solver's update."""
    from .train import _solver_update
    if l2:
        learnables = net.learnables
        grad = {layer: {name: g if name == "bias" else g + l2 * learnables[layer][name]
                        for name, g in params.items()} for layer, params in grad.items()}
    return _solver_update(net, grad, state1, state2, iteration, learn_rate, solver, hyper)


def _paths(tree: dict) -> list[tuple[str, str]]:
    return [(layer, name) for layer, params in tree.items() for name in params]


def _make_payload(net, Xa: np.ndarray, targets: np.ndarray, codes, fmt: str, sizes: list[int],
                  classification: bool) -> _Payload:
    """The shard step compiled here for each shard size, and the data."""
    leaves, treedef = tree_flatten(net)
    X32 = Xa.astype(np.float32)      # what one-process training converts each mini-batch to
    shard = _shard_function(treedef, classification)
    functions = {size: compile_function(shard, list(leaves), dlarray(X32[..., :size], fmt),
                                        dlarray(targets[:, :size], "CB")) for size in sizes}
    blob = pickle.dumps(functions, protocol=pickle.HIGHEST_PROTOCOL)
    return _Payload(blob, hashlib.sha256(blob).hexdigest(), X32, targets, codes, fmt, _paths(net.learnables),
                    _paths(net.state))


class ParallelStep:
    """One training step of ``train_network`` on a Dask cluster (see the
    module's docstring); ``close()`` releases the data on the workers."""

    def __init__(self, options, net, Xa: np.ndarray, targets: np.ndarray, codes, fmt: str, mb: int,
                 classification: bool):
        where = "train_network"
        distributed = _distributed(where)
        self._distributed = distributed
        self.client = _client(options.cluster, where)
        self.timeout = options.worker_timeout
        workers = sorted(self.client.nthreads())
        if not workers:
            raise ValueError(f"{where}: the Dask cluster of execution_environment='parallel' has no workers")
        self.sizes = shard_sizes(mb, len(workers))
        self.workers = workers[:len(self.sizes)]
        from .train import _hyperparameters
        self.options, self.hyper, self.classification = options, _hyperparameters(options), classification
        self.learnable_paths, self.state_paths = _paths(net.learnables), _paths(net.state)
        self._grad_treedef = tree_flatten(net.learnables)[1]
        self._state_treedef = tree_flatten(net.state)[1]
        payload = _make_payload(net, Xa, targets, codes, fmt, sorted(set(self.sizes)), classification)
        # Random numbers (dropout masks) of each shard: a key of its own per
        # iteration and shard, from this process's symdl stream, so that
        # symdl.seed makes a parallel run reproducible and no two shards draw
        # alike (every worker process would otherwise start the same stream).
        key = next_key()
        self._seed = int.from_bytes(hashlib.sha256(key.tobytes()).digest()[:8], "little") >> 1
        try:
            self.payload = self.client.scatter(payload, broadcast=True, hash=False, timeout=self.timeout)
        except Exception as err:
            raise RuntimeError(f"{where}: sending the compiled step and the data to the Dask workers failed "
                               f"within worker_timeout={self.timeout} s: {type(err).__name__}: {err}") from err
        self.update = dlaccelerate(_client_update)
        self.state1 = self.state2 = None

    def __call__(self, net, iteration: int, lr: float, idx: np.ndarray):
        """(mini-batch loss, the updated net, correct predictions or None)."""
        leaves = [np.asarray(extractdata(v)) for v in tree_flatten(net)[0]]
        futures, start = [], 0
        try:
            for k, (size, worker) in enumerate(zip(self.sizes, self.workers)):
                key = np.array([self._seed, (iteration - 1) * len(self.sizes) + k], dtype=np.int64)
                # a shard's preferred worker, or any other (which holds the payload too)
                futures.append(self.client.submit(_shard_step, self.payload, idx[start:start + size], leaves, key,
                                                  workers=[worker], allow_other_workers=True, pure=False))
                start += size
        except Exception as err:
            raise RuntimeError(f"train_network: cannot send iteration {iteration} to the Dask cluster: "
                               f"{type(err).__name__}: {err}") from err
        results = self._gather(futures, iteration)
        mb = len(idx)
        weights = [size / mb for size in self.sizes]   # each shard's loss is its own mean
        loss = sum(w * r[0] for w, r in zip(weights, results))
        dtype = np.dtype(net.dtype)
        grads = [dlarray(_weighted([r[1][j] for r in results], weights, dtype))
                 for j in range(len(self.learnable_paths))]
        grad = tree_unflatten(self._grad_treedef, grads)
        if self.state_paths:
            states = [dlarray(_weighted([r[2][j] for r in results], weights, dtype))
                      for j in range(len(self.state_paths))]
            net = copy.copy(net)
            net.state = tree_unflatten(self._state_treedef, states)
        o = self.options
        net, self.state1, self.state2 = dlfeval(
            self.update, net, grad, self.state1, self.state2, dlarray(np.float32(iteration)),
            dlarray(np.float32(lr)), o.l2_regularization, o.solver, self.hyper)
        correct = sum(r[3] for r in results) if self.classification else None
        return loss, net, correct

    def _gather(self, futures, iteration: int):
        """The workers' results, or an error naming what went wrong: a worker
        raised, or no result came within ``worker_timeout`` seconds."""
        try:
            self._distributed.wait(futures, timeout=self.timeout)
        except TimeoutError:
            self.client.cancel(futures)
            raise RuntimeError(f"train_network: the Dask workers gave no result for iteration {iteration} within "
                               f"worker_timeout={self.timeout} s (workers lost, busy or hanging)") from None
        except Exception as err:   # e.g. every worker holding the compiled step and the data died
            raise RuntimeError(f"train_network: the Dask cluster lost the work of iteration {iteration} (workers "
                               f"died?): {type(err).__name__}: {err}") from err
        try:
            return self.client.gather(futures)
        except Exception as err:
            raise RuntimeError(f"train_network: a Dask worker failed in iteration {iteration}: "
                               f"{type(err).__name__}: {err}") from err

    def close(self) -> None:
        payload, self.payload = getattr(self, "payload", None), None
        if payload is not None:
            try:
                payload.release()
            except Exception:  # noqa: BLE001 (a closed client has released it already)
                pass


def _weighted(parts: list[np.ndarray], weights: list[float], dtype) -> np.ndarray:
    """The size-weighted mean of the workers' arrays, summed in float64."""
    total = np.zeros(np.shape(parts[0]), dtype=np.float64)
    for w, p in zip(weights, parts):
        total += w * np.asarray(p, dtype=np.float64)
    return total.astype(dtype)
