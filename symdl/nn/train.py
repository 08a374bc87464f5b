"""MATLAB's ``trainingOptions``, ``trainNetwork`` and ``classify``: solvers
'sgdm', 'adam', 'rmsprop'; learn-rate schedules; shuffling; validation
data; the progress table of the seeds, a progress bar on a terminal and the
training-progress plot (a PNG); data-parallel training on a Dask cluster
(``execution_environment='parallel'``, in :mod:`symdl.nn.parallel`)."""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from numbers import Integral, Real

import numpy as np

from .. import functions as F
from ..array import dlarray, extractdata
from ..autodiff.api import dlfeval, dlgradient
from ..compiler.accelerate import dlaccelerate
from ..ops.losses import crossentropy, mse
from ..optim import adamupdate, rmspropupdate, sgdmupdate
from .init import _rng
from ..ops.activations import softmax
from .layers import InputLayer, OutputLayer, _Classification, _Function
from .network import dlnetwork, forward, predict

__all__ = ["training_options", "TrainingOptions", "train_network", "TrainedNetwork", "classify"]

_SOLVERS = ("sgdm", "adam", "rmsprop")


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """The options of :func:`training_options` (MATLAB's names in snake_case)."""

    solver: str
    max_epochs: int
    mini_batch_size: int
    initial_learn_rate: float
    learn_rate_schedule: str
    learn_rate_drop_factor: float
    learn_rate_drop_period: int
    momentum: float
    gradient_decay_factor: float
    squared_gradient_decay_factor: float
    epsilon: float
    l2_regularization: float
    shuffle: str
    verbose: bool
    verbose_frequency: int
    validation_data: tuple | None = None
    validation_frequency: int = 50
    plots: str = "none"
    plots_file: str = "training-progress.png"
    execution_environment: str = "auto"
    cluster: object = dataclasses.field(default=None, compare=False)
    worker_timeout: float = 60.0


def _int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"training_options: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _float(value, name: str, low: float, high: float | None = None, open_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"training_options: {name} must be a real number, got {value!r}")
    value = float(value)
    bad = not value >= low or (high is not None and (value >= high if open_high else value > high))
    if bad or not np.isfinite(value):
        raise ValueError(f"training_options: {name} must be in [{low}, {high}{')' if open_high else ']'}, "
                         f"got {value!r}")
    return value


def training_options(solver: str = "sgdm", *, max_epochs: int = 30, mini_batch_size: int = 128,
                     initial_learn_rate: float | None = None, learn_rate_schedule: str = "none",
                     learn_rate_drop_factor: float = 0.1, learn_rate_drop_period: int = 10,
                     momentum: float = 0.9, gradient_decay_factor: float = 0.9,
                     squared_gradient_decay_factor: float | None = None, epsilon: float = 1e-8,
                     l2_regularization: float = 1e-4, shuffle: str = "once", verbose: bool = True,
                     verbose_frequency: int = 50, validation_data=None, validation_frequency: int = 50,
                     plots: str = "none", plots_file: str = "training-progress.png",
                     execution_environment: str = "auto", cluster=None,
                     worker_timeout: float = 60.0) -> TrainingOptions:
    """MATLAB's ``trainingOptions(solverName, ...)`` with MATLAB's defaults
    (initial learn rate 0.01 for 'sgdm', 0.001 for 'adam' and 'rmsprop';
    squared gradient decay 0.999 for 'adam', 0.9 for 'rmsprop'; L2
    regularisation 1e-4 on every learnable but biases).

    ``validation_data=(X, Y)`` is evaluated every ``validation_frequency``
    iterations and at the end (loss and accuracy, in the progress table and
    ``info``); ``plots='training-progress'`` writes MATLAB's training plot,
    loss and accuracy per iteration with the validation points, to
    ``plots_file`` (a PNG; needs matplotlib).

    ``execution_environment='parallel'`` trains data-parallel on a Dask
    cluster: ``cluster`` is a ``dask.distributed.Client`` (default: the
    current client, ``distributed.get_client()``); each mini-batch is split
    into one shard per worker, the workers run the step compiled once here,
    and the client averages their gradients and applies the update, so the
    parameters match one-process training up to summation order (see
    :mod:`symdl.nn.parallel`).  ``worker_timeout`` (seconds) bounds the wait
    for the workers in each step: a lost or hanging cluster is an error,
    never a hang.

    Example:
        >>> from symdl import nn
        >>> opts = nn.training_options("adam", max_epochs=5)
        >>> opts.initial_learn_rate, opts.squared_gradient_decay_factor
        (0.001, 0.999)
    """
    if solver not in _SOLVERS:
        raise ValueError(f"training_options: solver must be one of {list(_SOLVERS)}, got {solver!r}")
    if validation_data is not None and (not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2):
        raise TypeError(f"training_options: validation_data must be a pair (X, Y), got "
                        f"{type(validation_data).__name__}")
    if plots not in ("none", "training-progress"):
        raise ValueError(f"training_options: plots must be 'none' or 'training-progress', got {plots!r}")
    if plots != "none":
        if not isinstance(plots_file, str) or not plots_file:
            raise TypeError(f"training_options: plots_file must be a file name, got {plots_file!r}")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("training_options: plots='training-progress' needs matplotlib "
                             "(pip install matplotlib)") from None
    if execution_environment not in ("auto", "cpu", "parallel"):
        raise ValueError(f"training_options: execution_environment must be 'auto', 'cpu' or 'parallel', "
                         f"got {execution_environment!r}")
    if execution_environment == "parallel":
        from .parallel import check_cluster
        check_cluster(cluster, "training_options")
    elif cluster is not None:
        raise ValueError(f"training_options: cluster is used by execution_environment='parallel' only, got "
                         f"execution_environment={execution_environment!r}")
    if learn_rate_schedule not in ("none", "piecewise"):
        raise ValueError(f"training_options: learn_rate_schedule must be 'none' or 'piecewise', got "
                         f"{learn_rate_schedule!r}")
    if shuffle not in ("once", "never", "every-epoch"):
        raise ValueError(f"training_options: shuffle must be 'once', 'never' or 'every-epoch', got {shuffle!r}")
    if not isinstance(verbose, (bool, np.bool_)):
        raise TypeError(f"training_options: verbose must be True or False, got {verbose!r}")
    timeout = _float(worker_timeout, "worker_timeout", 0.0)
    if timeout == 0.0:
        raise ValueError(f"training_options: worker_timeout must be a positive number of seconds, got "
                         f"{worker_timeout!r}")
    lr = (0.01 if solver == "sgdm" else 0.001) if initial_learn_rate is None else initial_learn_rate
    sq = (0.999 if solver == "adam" else 0.9) if squared_gradient_decay_factor is None \
        else squared_gradient_decay_factor
    return TrainingOptions(
        solver=solver, max_epochs=_int(max_epochs, "max_epochs"),
        mini_batch_size=_int(mini_batch_size, "mini_batch_size"),
        initial_learn_rate=_float(lr, "initial_learn_rate", 0.0),
        learn_rate_schedule=learn_rate_schedule,
        learn_rate_drop_factor=_float(learn_rate_drop_factor, "learn_rate_drop_factor", 0.0, 1.0),
        learn_rate_drop_period=_int(learn_rate_drop_period, "learn_rate_drop_period"),
        momentum=_float(momentum, "momentum", 0.0, 1.0),
        gradient_decay_factor=_float(gradient_decay_factor, "gradient_decay_factor", 0.0, 1.0, True),
        squared_gradient_decay_factor=_float(sq, "squared_gradient_decay_factor", 0.0, 1.0, True),
        epsilon=_float(epsilon, "epsilon", 0.0), l2_regularization=_float(l2_regularization,
                                                                          "l2_regularization", 0.0),
        shuffle=shuffle, verbose=bool(verbose), verbose_frequency=_int(verbose_frequency, "verbose_frequency"),
        validation_data=None if validation_data is None else tuple(validation_data),
        validation_frequency=_int(validation_frequency, "validation_frequency"), plots=plots,
        plots_file=plots_file, execution_environment=execution_environment, cluster=cluster,
        worker_timeout=timeout)


class TrainedNetwork:
    """What :func:`train_network` returns: the trained ``network``
    (a dlnetwork without the output layer), the output layer, and for
    classification the ``classes`` (in the order of the network's outputs)."""

    def __init__(self, network: dlnetwork, output_layer: OutputLayer, classes):
        self.network, self.output_layer, self.classes = network, output_layer, classes

    def __repr__(self) -> str:
        return f"TrainedNetwork({self.network!r}, classes={None if self.classes is None else list(self.classes)})"


def _observations(X, input_layer: InputLayer, where: str) -> np.ndarray:
    arr = np.asarray(extractdata(X) if isinstance(X, dlarray) else X)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: X must be a numeric array, got dtype {arr.dtype}")
    if input_layer.fmt not in ("SSCB", "CB"):
        raise ValueError(f"{where}: this version trains image ('SSCB') and feature ('CB') networks, the input "
                         f"layer takes {input_layer.fmt!r}")
    if arr.ndim != len(input_layer.fmt) or arr.shape[:-1] != input_layer.input_size:
        raise ValueError(f"{where}: X must be {input_layer.fmt!r} data of shape {input_layer.input_size} + (N,), "
                         f"got shape {arr.shape}")
    return arr


def _with_statistics(layer: InputLayer, X: np.ndarray) -> InputLayer:
    """The input layer with its unset normalisation statistics computed from
    the training data (per element of an observation), as MATLAB's trainNetwork."""
    if layer.normalization == "none" or (layer.mean is not None and (layer.normalization == "zerocenter"
                                                                    or layer.standard_deviation is not None)):
        return layer
    out = copy.copy(layer)
    if out.mean is None:
        out.mean = X.mean(axis=-1)
    if out.normalization == "zscore" and out.standard_deviation is None:
        out.standard_deviation = X.std(axis=-1)
    return out


def _schedule(opts: TrainingOptions, epoch: int) -> float:
    if opts.learn_rate_schedule == "piecewise":
        return opts.initial_learn_rate * opts.learn_rate_drop_factor ** ((epoch - 1) // opts.learn_rate_drop_period)
    return opts.initial_learn_rate


def _loss_step(net, X, T, l2: float, classification: bool):
    Y, state = forward(net, X)
    loss = crossentropy(Y, T) if classification else mse(Y, T)
    data_loss = loss
    if l2:
        for params in net.learnables.values():
            for name, w in params.items():
                if name != "bias":
                    loss = loss + (l2 / 2.0) * _sumsq(w)
    return data_loss, dlgradient(loss, net), state, Y


def _train_step(net, state1, state2, iteration, learn_rate, X, T, l2: float, classification: bool,
                solver: str, hyper: tuple):
    """One whole training step (loss, gradients, the solver's update), run as
    one native call under ``dlaccelerate``: ``iteration`` and ``learn_rate``
    are scalar dlarrays, so one trace serves every step (the first step, with
    the solver's state still None, has its own)."""
    loss, grad, state, Y = _loss_step(net, X, T, l2, classification)
    net = copy.copy(net)
    net.state = state
    net, state1, state2 = _solver_update(net, grad, state1, state2, iteration, learn_rate, solver, hyper)
    return loss, net, state1, state2, Y


def _solver_update(net, grad, state1, state2, iteration, learn_rate, solver: str, hyper: tuple):
    """The solver's update of ``net`` by ``grad`` (shared by the one-process
    step and the client's update in parallel training, so both apply the
    same arithmetic)."""
    if solver == "sgdm":
        (momentum,) = hyper
        net, state1 = sgdmupdate(net, grad, state1, learn_rate=learn_rate, momentum=momentum)
    elif solver == "adam":
        decay, sq_decay, eps = hyper
        net, state1, state2 = adamupdate(net, grad, state1, state2, iteration, learn_rate=learn_rate,
                                         grad_decay=decay, sq_grad_decay=sq_decay, epsilon=eps)
    else:
        sq_decay, eps = hyper
        net, state1 = rmspropupdate(net, grad, state1, learn_rate=learn_rate, sq_grad_decay=sq_decay, epsilon=eps)
    return net, state1, state2


def _sumsq(w):
    return F.sum(w * w)


def _header(validation: bool) -> str:
    cells = [("Epoch", ""), ("Iteration", ""), ("Time Elapsed", "(seconds)"), ("Mini-batch", "Loss"),
             ("Mini-batch", "Accuracy")]
    if validation:
        cells += [("Validation", "Loss"), ("Validation", "Accuracy")]
    cells.append(("Base Learning", "Rate"))
    widths = _widths(validation)
    top = "|" + "|".join(f"{a:^{w}}" for (a, _), w in zip(cells, widths)) + "|"
    bottom = "|" + "|".join(f"{b:^{w}}" for (_, b), w in zip(cells, widths)) + "|"
    line = "|" + "=" * (len(top) - 2) + "|"
    return "\n".join([line, top, bottom, line])


def _widths(validation: bool) -> list[int]:
    return [9, 13, 16, 14, 14] + ([14, 14] if validation else []) + [17]


def _row(epoch, iteration, elapsed, loss, accuracy, lr, validation=None) -> str:
    """One line of the progress table; ``validation``: None (no validation
    data), or (loss, accuracy) with None where this iteration did not validate."""
    def number(v, fmt):
        return "" if v is None else format(v, fmt)
    cells = [f"{epoch:d}", f"{iteration:d}", f"{elapsed:.2f}", f"{loss:.4f}", number(accuracy, ".2f") +
             ("%" if accuracy is not None else "")]
    if validation is not None:
        vl, va = validation
        cells += [number(vl, ".4f"), number(va, ".2f") + ("%" if va is not None else "")]
    cells.append(f"{lr:.4f}")
    return "|" + "|".join(f" {c:>{w - 2}} " for c, w in zip(cells, _widths(validation is not None))) + "|"


def _targets(Y, n: int, classification: bool, classes, where: str, name: str = "Y"):
    """(targets 'CB' float32, class codes or None, classes) of labels or responses ``Y``."""
    Ya = np.asarray(extractdata(Y) if isinstance(Y, dlarray) else Y)
    if classification:
        if Ya.ndim != 1 or Ya.shape[0] != n:
            raise ValueError(f"{where}: {name} must be a 1-D array of {n} class labels, got shape {Ya.shape}")
        if classes is None:
            classes = np.unique(Ya)
        index = {c: k for k, c in enumerate(classes.tolist())}
        try:
            codes = np.array([index[v] for v in Ya.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{where}: label {exc.args[0]!r} of {name} is not among the classes "
                             f"{classes.tolist()}") from None
        return np.eye(len(classes), dtype=np.float32)[:, codes], codes, classes
    if Ya.dtype.kind not in "biuf":
        raise TypeError(f"{where}: regression responses {name} must be numeric, got dtype {Ya.dtype}")
    targets = Ya.reshape(1, -1) if Ya.ndim == 1 else Ya
    if targets.shape[-1] != n:
        raise ValueError(f"{where}: {name} must have {n} observations (last axis), got shape {Ya.shape}")
    return targets.astype(np.float32), None, None


def _validation_loss(net, X, T, classification: bool):
    """Inference behaviour (running statistics, no dropout), as MATLAB validates."""
    Y = predict(net, X)
    return (crossentropy(Y, T) if classification else mse(Y, T)), Y


def _validate(evaluate, net, Xv, Tv, codes, fmt: str, batch: int, classification: bool):
    """(loss, accuracy in % or None) over the whole validation set, in mini-batches."""
    n = Xv.shape[-1]
    total, correct = 0.0, 0
    for s in range(0, n, batch):
        Xb = dlarray(Xv[..., s:s + batch].astype(np.float32), fmt)
        loss, Y = dlfeval(evaluate, net, Xb, dlarray(Tv[:, s:s + batch], "CB"), classification)
        m = Xb.shape[-1]
        total += float(extractdata(loss)) * m      # both losses are means over the observations
        if classification:
            correct += int(np.sum(extractdata(Y).argmax(0) == codes[s:s + batch]))
    return total / n, (100.0 * correct / n if classification else None)


def _progress_bar(done: int, total: int, width: int = 30) -> None:
    """A one-line bar on the terminal (stderr), redrawn in place."""
    filled = int(width * done / total)
    sys.stderr.write(f"\rtraining [{'#' * filled}{'.' * (width - filled)}] {done}/{total} iterations")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _plot(info: dict, path: str, classification: bool) -> None:
    """MATLAB's training-progress figure as a PNG: accuracy (classification)
    and loss per iteration, the validation points on top."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    rows = 2 if classification else 1
    fig, axes = plt.subplots(rows, 1, figsize=(8, 3 * rows), sharex=True, squeeze=False)
    its = np.arange(1, len(info["training_loss"]) + 1)
    panels = ([("training_accuracy", "validation_accuracy", "accuracy (%)")] if classification else []) + \
        [("training_loss", "validation_loss", "loss")]
    for ax, (train, val, label) in zip(axes[:, 0], panels):
        ax.plot(its, info[train], lw=1, label="training (mini-batch)")
        if info.get(val) is not None:
            v = np.asarray(info[val], dtype=float)
            ax.plot(its[~np.isnan(v)], v[~np.isnan(v)], "o--", color="k", ms=4, label="validation")
        ax.set_ylabel(label)
        ax.legend(loc="best")
    axes[-1, 0].set_xlabel("iteration")
    fig.suptitle("training progress")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_network(X, Y, layers, options: TrainingOptions):
    """Train ``layers`` (ending in ``classification_layer`` or
    ``regression_layer``) on ``X``, ``Y`` with ``options`` (MATLAB's
    ``trainNetwork``); returns ``(net, info)``.

    ``X``: images ``(H, W, C, N)`` or features ``(C, N)``; ``Y``: a 1-D array
    of class labels (ints or strings) for classification, responses
    ``(R, N)`` or ``(N,)`` for regression.  Each mini-batch's loss and
    gradients and the solver's update are one call of a ``dlaccelerate``d
    function (one native call per step); with
    ``execution_environment='parallel'`` each mini-batch is split over the
    workers of a Dask cluster (:func:`training_options`).  The last partial
    mini-batch of an epoch is discarded, as MATLAB's.  With ``verbose`` the progress table of MATLAB is
    printed every ``verbose_frequency`` iterations.  ``info`` holds
    ``training_loss``, ``training_accuracy`` (classification) and
    ``base_learn_rate`` per iteration.

    Example:
        >>> import numpy as np, symdl
        >>> from symdl import nn
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, 64)
        >>> X = np.stack([y * 2.0 - 1.0, rng.normal(size=64)]) + 0.1 * rng.normal(size=(2, 64))
        >>> symdl.seed(0)
        >>> layers = [nn.feature_input_layer(2), nn.fully_connected_layer(2), nn.softmax_layer(),
        ...           nn.classification_layer()]
        >>> opts = nn.training_options("adam", max_epochs=20, mini_batch_size=16, initial_learn_rate=0.05,
        ...                            verbose=False)
        >>> net, info = nn.train_network(X, y, layers, opts)
        >>> float((nn.classify(net, X) == y).mean())
        1.0
    """
    where = "train_network"
    if not isinstance(options, TrainingOptions):
        raise TypeError(f"{where}: options must come from training_options, got {type(options).__name__}")
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"{where}: layers must be a list of layers, got {type(layers).__name__}")
    layers = list(layers)
    if not layers or not isinstance(layers[-1], OutputLayer):
        raise ValueError(f"{where}: layers must end with classification_layer() or regression_layer()")
    if not isinstance(layers[0], InputLayer):
        raise ValueError(f"{where}: layers must start with an input layer")
    output = layers[-1]
    classification = isinstance(output, _Classification)
    Xa = _observations(X, layers[0], where)
    n = Xa.shape[-1]
    declared = getattr(output, "classes", "auto")   # a classification layer's classes, or 'auto'
    targets, codes, classes = _targets(Y, n, classification, None if isinstance(declared, str)
                                       else np.asarray(declared), where)
    validation = options.validation_data is not None
    if validation:
        Xv = _observations(options.validation_data[0], layers[0], where + " (validation_data)")
        Tv, codes_v, _ = _targets(options.validation_data[1], Xv.shape[-1], classification, classes,
                                  where + " (validation_data)", "the validation Y")
    layers[0] = _with_statistics(layers[0], Xa)
    net = dlnetwork(layers[:-1])
    _check_output(net, layers, targets, classes, where)
    mb = min(options.mini_batch_size, n)
    rng = _rng()                       # symdl.seed(k) makes the shuffling reproducible
    order = rng.permutation(n) if options.shuffle in ("once", "every-epoch") else np.arange(n)
    fmt = layers[0].fmt
    if options.execution_environment == "parallel":
        from .parallel import ParallelStep
        step = ParallelStep(options, net, Xa, targets, codes, fmt, mb, classification)
    else:
        step = _LocalStep(options, Xa, targets, codes, fmt, classification)
    try:
        return _train_loop(options, step, net, output, classes, order, rng, n, mb, fmt, classification,
                           Xv if validation else None, Tv if validation else None,
                           codes_v if validation else None)
    finally:
        step.close()


def _check_output(net: dlnetwork, layers: list, targets: np.ndarray, classes, where: str) -> None:
    """The network's output must fit the output layer, before any training:
    a classification layer takes the probabilities of a softmax layer (as
    MATLAB's, which refuses a network without one: the cross-entropy of
    anything else is no loss, and would train on NaN; a custom layer is
    trusted to give probabilities), one per class; a regression layer takes
    one value per response."""
    last = layers[-2]
    built_in = type(last).__module__ == _Function.__module__
    if classes is not None and built_in and not (isinstance(last, _Function) and last._fn is softmax):
        raise ValueError(f"{where}: a classification_layer must follow a softmax_layer (its input is the class "
                         f"probabilities), got layer {last.name or last.default_name!r} ({type(last).__name__}) "
                         "before it")
    Y = predict(net, layers[0].example(net.dtype))
    got, want = Y.shape[:-1], targets.shape[:-1]
    if Y.ndim != targets.ndim or got != want:
        what = f"{len(classes)} classes {np.asarray(classes).tolist()[:10]}" if classes is not None else \
            f"responses of shape {want} per observation"
        raise ValueError(f"{where}: the network's output (layer {net.output_names[0]!r}) has shape {got} per "
                         f"observation (fmt {Y.fmt!r}), but Y has {what}; set the size of the last learnable "
                         f"layer to match")


def _hyperparameters(options: TrainingOptions) -> tuple:
    """The solver's constants, static arguments of the compiled update."""
    return {"sgdm": (options.momentum,),
            "adam": (options.gradient_decay_factor, options.squared_gradient_decay_factor, options.epsilon),
            }.get(options.solver, (options.squared_gradient_decay_factor, options.epsilon))


class _LocalStep:
    """Training in this process: loss, gradients and update of a mini-batch
    are one call of a ``dlaccelerate``d function (one native call)."""

    def __init__(self, options: TrainingOptions, Xa, targets, codes, fmt: str, classification: bool):
        self.options, self.Xa, self.targets, self.codes = options, Xa, targets, codes
        self.fmt, self.classification = fmt, classification
        self.hyper = _hyperparameters(options)
        self.step = dlaccelerate(_train_step)
        self.state1 = self.state2 = None

    def __call__(self, net, iteration: int, lr: float, idx):
        """(mini-batch loss, the updated net, correct predictions or None)."""
        Xb = dlarray(self.Xa[..., idx].astype(np.float32), self.fmt)
        Tb = dlarray(self.targets[:, idx], "CB")
        o = self.options
        loss, net, self.state1, self.state2, Yb = dlfeval(
            self.step, net, self.state1, self.state2, dlarray(np.float32(iteration)), dlarray(np.float32(lr)),
            Xb, Tb, o.l2_regularization, self.classification, o.solver, self.hyper)
        correct = int(np.sum(extractdata(Yb).argmax(0) == self.codes[idx])) if self.classification else None
        return float(extractdata(loss)), net, correct

    def close(self) -> None:
        pass


def _train_loop(options, step, net, output, classes, order, rng, n: int, mb: int, fmt: str,
                classification: bool, Xv, Tv, codes_v):
    """The epochs and iterations of :func:`train_network` around ``step``
    (one process or parallel): schedules, shuffling, validation, the
    progress table and bar, ``info`` and the plot."""
    validation = Xv is not None
    per_epoch = n // mb
    info = {"training_loss": [], "training_accuracy": [] if classification else None, "base_learn_rate": []}
    if validation:
        evaluate = dlaccelerate(_validation_loss)
        info["validation_loss"], info["validation_accuracy"] = [], [] if classification else None
    start = time.perf_counter()
    if options.verbose:
        print(_header(validation))
    bar = options.verbose and sys.stderr.isatty()   # a progress bar on a terminal only
    iteration = 0
    total = options.max_epochs * per_epoch
    for epoch in range(1, options.max_epochs + 1):
        if options.shuffle == "every-epoch" and epoch > 1:
            order = rng.permutation(n)
        lr = _schedule(options, epoch)
        for b in range(per_epoch):
            iteration += 1
            idx = order[b * mb:(b + 1) * mb]
            loss_value, net, correct = step(net, iteration, lr, idx)
            accuracy = None
            if classification:
                accuracy = 100.0 * correct / len(idx)
                info["training_accuracy"].append(accuracy)
            info["training_loss"].append(loss_value)
            info["base_learn_rate"].append(lr)
            checked = None
            if validation:
                val_loss = val_acc = None
                if iteration == 1 or iteration % options.validation_frequency == 0 or iteration == total:
                    val_loss, val_acc = _validate(evaluate, net, Xv, Tv, codes_v, fmt, mb, classification)
                info["validation_loss"].append(np.nan if val_loss is None else val_loss)
                if classification:
                    info["validation_accuracy"].append(np.nan if val_acc is None else val_acc)
                checked = (val_loss, val_acc)
            if options.verbose and (iteration == 1 or iteration % options.verbose_frequency == 0
                                    or iteration == total):
                print(_row(epoch, iteration, time.perf_counter() - start, loss_value, accuracy, lr, checked))
            if bar:
                _progress_bar(iteration, total)
    if options.verbose:
        print("|" + "=" * (len(_header(validation).splitlines()[0]) - 2) + "|")
    if options.plots == "training-progress":
        _plot(info, options.plots_file, classification)
    return TrainedNetwork(net, output, classes), info


def classify(net: TrainedNetwork, X, *, mini_batch_size: int = 128):
    """The predicted class labels of ``X`` (MATLAB's ``classify``), of the
    kind of the training labels (ints or strings).

    Example:
        >>> from symdl import nn
        >>> nn.classify.__name__
        'classify'
    """
    where = "classify"
    if not isinstance(net, TrainedNetwork) or net.classes is None:
        raise TypeError(f"{where}: net must be a classification network returned by train_network, got "
                        f"{type(net).__name__}")
    inp = net.network._arch.layers[net.network.input_names[0]]
    Xa = _observations(X, inp, where)
    mb = _int(mini_batch_size, "mini_batch_size")
    codes = []
    for s in range(0, Xa.shape[-1], mb):
        Yb = predict(net.network, dlarray(Xa[..., s:s + mb].astype(np.float32), inp.fmt))
        codes.append(extractdata(Yb).argmax(0))
    return net.classes[np.concatenate(codes)] if codes else net.classes[:0]
