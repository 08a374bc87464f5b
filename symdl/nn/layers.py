"""The built-in layers: MATLAB's layer functions in snake_case, their
properties as keywords, their defaults.  Each layer is a thin object over a
functional operation of :mod:`symdl.ops`; sizes that depend on the input
(``fully_connected_layer``'s input size, a convolution's channels) are set
when a network is built, from the input layer's size, as MATLAB's
``dlnetwork`` does."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from .. import functions as F
from ..array import dlarray, extractdata, stripdims
from ..ops.activations import elu, gelu, leakyrelu, relu, softmax
from ..ops.conv import dlconv, dltranspconv
from ..ops.dropout import dropout
from ..ops.embed import embed
from ..ops.fullyconnect import fullyconnect
from ..ops.losses import crossentropy, mse
from ..ops.norm import batchnorm, layernorm
from ..ops.pool import avgpool, maxpool
from ..core import is_traced
from ..ops.spatial import padding_pairs
from .init import check_initializer, initialize
from .layer import Layer

__all__ = [
    "image_input_layer", "feature_input_layer", "sequence_input_layer", "fully_connected_layer",
    "convolution1d_layer", "convolution2d_layer", "transposed_convolution2d_layer",
    "batch_normalization_layer", "layer_normalization_layer", "relu_layer", "leaky_relu_layer", "elu_layer",
    "gelu_layer", "tanh_layer", "sigmoid_layer", "softmax_layer", "dropout_layer", "max_pooling2d_layer",
    "average_pooling2d_layer", "lstm_layer", "gru_layer", "embedding_layer", "flatten_layer", "addition_layer",
    "concatenation_layer", "classification_layer", "regression_layer", "InputLayer", "OutputLayer",
]

_WEIGHT_INITS = ("glorot", "he", "narrow-normal", "zeros", "ones")
_BIAS_INITS = ("zeros", "ones", "narrow-normal")


# ---------------------------------------------------------------- argument checks

def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _sizes(value, n: int, name: str, where: str) -> tuple[int, ...]:
    """One positive int per spatial dimension (an int is repeated)."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,) * n
    try:
        out = tuple(value)
    except TypeError:
        out = ()
    if len(out) != n or any(isinstance(v, bool) or not isinstance(v, Integral) or v < 1 for v in out):
        raise ValueError(f"{where}: {name} must be a positive integer or {n} of them, got {value!r}")
    return tuple(int(v) for v in out)


def _edges(value, n: int, name: str, where: str):
    """A layer's padding (or cropping) in the form the functional operations
    take: ``'same'``, an int, one int per spatial dimension (MATLAB's
    ``[a b]``), ``(before, after)`` pairs per dimension, or MATLAB's layer
    vector of every edge, ``[t b l r]`` in 2-D (``[l r]`` in 1-D), which
    becomes the pairs.  Checked now, so a bad value fails when the layer is
    made, not when a network is built."""
    every = "[t b l r]" if n == 2 else "[l r]" if n == 1 else f"{2 * n} ints"
    forms = (f"'same', an int, one int per spatial dimension, one (before, after) pair per spatial dimension, "
             f"or MATLAB's {every} (every edge)")
    if isinstance(value, str):
        if value != "same":
            raise ValueError(f"{where}: {name} must be {forms}, got {value!r}")
        return value
    flat = isinstance(value, (tuple, list, np.ndarray)) and all(
        isinstance(v, Integral) and not isinstance(v, bool) for v in value)
    if flat and len(value) == 2 * n and n > 0 and len(value) != n:
        value = tuple((int(value[2 * k]), int(value[2 * k + 1])) for k in range(n))
    try:
        padding_pairs(value, [1] * n, [1] * n, [1] * n, where)
    except TypeError:
        raise TypeError(f"{where}: {name} must be {forms}, of ints; got {value!r}") from None
    except ValueError as err:
        raise ValueError(str(err).replace("padding", name)) from None
    return value


def _real(value, name: str, where: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    value = float(value)
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        raise ValueError(f"{where}: {name} must be in [{low}, {high}], got {value!r}")
    return value


def _given(value, shape: tuple[int, ...], name: str, where: str, dtype: str):
    """A parameter value given by the user (checked against its shape), or None."""
    if value is None:
        return None
    arr = np.asarray(extractdata(value) if isinstance(value, dlarray) else value, dtype=dtype)
    if arr.size == int(np.prod(shape)) and arr.shape != shape:
        arr = arr.reshape(shape)
    if arr.shape != shape:
        raise ValueError(f"{where}: {name} must have shape {shape} for this input, got {arr.shape}")
    return dlarray(arr)


def _channels(X, where: str) -> int:
    if not isinstance(X, dlarray) or "C" not in X.fmt:
        raise ValueError(f"{where}: the input must be a formatted dlarray with a 'C' dimension, got "
                         f"{type(X).__name__} with fmt {getattr(X, 'fmt', None)!r}")
    return X.shape[X.fmt.index("C")]


def _dtype(X) -> str:
    return X.dtype.name


# ---------------------------------------------------------------- input layers

class InputLayer(Layer):
    """An input layer: checks and labels the network's input, then applies
    its normalisation ('zerocenter': X - mean, 'zscore': (X - mean) / std,
    'none'; a mean or std is one number or one value per element of an
    observation).  An unset mean is 0 and std 1 in a dlnetwork;
    ``train_network`` computes them from the training data, as MATLAB's."""

    input_names = ()
    fmt = ""

    def __init__(self, input_size: tuple[int, ...], normalization: str, mean, standard_deviation, name: str,
                 where: str):
        super().__init__(name)
        self.input_size = input_size
        if normalization not in ("zerocenter", "zscore", "none"):
            raise ValueError(f"{where}: normalization must be 'zerocenter', 'zscore' or 'none', got "
                             f"{normalization!r}")
        self.normalization = normalization
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.standard_deviation = None if standard_deviation is None else np.asarray(standard_deviation,
                                                                                     dtype=np.float64)
        self._where = where

    min_length = 1

    def example(self, dtype: str) -> dlarray:
        """A zero input with one observation (and ``min_length`` time steps)."""
        shape = [1 if c == "B" else self.min_length if c == "T" else None for c in self.fmt]
        sizes = iter(self.input_size)
        shape = tuple(next(sizes) if s is None else s for s in shape)
        return dlarray(np.zeros(shape, dtype=dtype), self.fmt)

    def check(self, X, dtype: str) -> dlarray:
        """``X`` as a dlarray labelled ``self.fmt``, in the network's dtype."""
        where = f"{self._where} '{self.name}'"
        if isinstance(X, dlarray):
            if X.fmt and X.fmt != self.fmt:
                raise ValueError(f"{where}: X must be formatted {self.fmt!r}, got {X.fmt!r}")
            if X.dtype.name != dtype:
                X = X.astype(dtype)
            if not X.fmt:
                X = dlarray(X, self.fmt) if X.ndim == len(self.fmt) else X
        else:
            arr = np.asarray(X)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"{where}: X must be a numeric array or dlarray, got {type(X).__name__}")
            X = dlarray(arr.astype(dtype), self.fmt) if arr.ndim == len(self.fmt) else None
        if X is None or X.ndim != len(self.fmt):
            raise ValueError(f"{where}: X must have {len(self.fmt)} dimensions ({self.fmt!r})")
        got = tuple(s for s, c in zip(X.shape, self.fmt) if c not in "BT")
        if got != self.input_size:
            raise ValueError(f"{where}: X must have input size {self.input_size} (fmt {self.fmt!r}), "
                             f"got shape {X.shape}")
        return X

    def _statistic(self, value, dtype):
        """A mean or standard deviation (a number, or one value per element
        of an observation) shaped to broadcast over X."""
        arr = np.asarray(value, dtype=dtype)
        if arr.size == 1:
            return arr.reshape(())
        if arr.size != int(np.prod(self.input_size)):
            raise ValueError(f"{self._where} '{self.name}': mean and standard_deviation must be one number or "
                             f"one per element of an observation {self.input_size}, got shape {arr.shape}")
        return arr.reshape(self._observation_shape())

    def _observation_shape(self) -> tuple[int, ...]:
        sizes = iter(self.input_size)
        return tuple(1 if c in "BT" else next(sizes) for c in self.fmt)

    def predict(self, X):
        if self.normalization == "none":
            return X
        out = X - (0.0 if self.mean is None else self._statistic(self.mean, X.dtype))
        if self.normalization == "zscore" and self.standard_deviation is not None:
            out = out / self._statistic(self.standard_deviation, X.dtype)
        out = dlarray(out, X.fmt) if isinstance(out, dlarray) and out.fmt != X.fmt else out
        return out


class _ImageInput(InputLayer):
    default_name = "imageinput"
    fmt = "SSCB"


class _FeatureInput(InputLayer):
    default_name = "featureinput"
    fmt = "CB"


class _SequenceInput(InputLayer):
    default_name = "sequenceinput"
    fmt = "CBT"


def image_input_layer(input_size, *, normalization: str = "zerocenter", mean=None, standard_deviation=None,
                      name: str = "") -> InputLayer:
    """MATLAB's ``imageInputLayer(inputSize)``: images ``(H, W, C)`` as
    ``'SSCB'`` arrays ``(H, W, C, N)`` (``(H, W)`` means one channel).

    Example:
        >>> from symdl import nn
        >>> nn.image_input_layer((28, 28, 1)).input_size
        (28, 28, 1)
    """
    where = "image_input_layer"
    size = tuple(input_size) if not isinstance(input_size, Integral) else (input_size,)
    if len(size) == 2:
        size = size + (1,)
    return _ImageInput(_sizes(size, 3, "input_size", where), normalization, mean, standard_deviation, name,
                       where)


def feature_input_layer(num_features, *, normalization: str = "none", mean=None, standard_deviation=None,
                        name: str = "") -> InputLayer:
    """MATLAB's ``featureInputLayer(numFeatures)``: ``'CB'`` arrays ``(C, N)``
    (normalisation 'none' by default, as MATLAB).

    Example:
        >>> from symdl import nn
        >>> nn.feature_input_layer(4).input_size
        (4,)
    """
    where = "feature_input_layer"
    return _FeatureInput((_positive_int(num_features, "num_features", where),), normalization, mean,
                         standard_deviation, name, where)


def sequence_input_layer(input_size, *, min_length: int = 1, normalization: str = "none", mean=None,
                         standard_deviation=None, name: str = "") -> InputLayer:
    """MATLAB's ``sequenceInputLayer(inputSize)`` for vector sequences:
    ``'CBT'`` arrays ``(C, N, T)``.  ``min_length`` (MATLAB's ``MinLength``)
    is the shortest sequence, used to build the network (a 1-D convolution
    over time needs at least its filter size).

    Example:
        >>> from symdl import nn
        >>> nn.sequence_input_layer(3).fmt
        'CBT'
    """
    where = "sequence_input_layer"
    layer = _SequenceInput((_positive_int(input_size, "input_size", where),), normalization, mean,
                           standard_deviation, name, where)
    layer.min_length = _positive_int(min_length, "min_length", where)
    return layer


# ---------------------------------------------------------------- learnable layers

class _FullyConnected(Layer):
    learnables = ("weights", "bias")
    default_name = "fc"

    def __init__(self, output_size, weights_initializer, bias_initializer, weights, bias, name):
        super().__init__(name)
        where = "fully_connected_layer"
        self.output_size = _positive_int(output_size, "output_size", where)
        self.weights_initializer = check_initializer(weights_initializer, "weights_initializer", where,
                                                     _WEIGHT_INITS)
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", where, _BIAS_INITS)
        self.weights, self.bias, self._given = None, None, (weights, bias)
        self.input_size = None

    def initialize(self, X):
        where = f"fully_connected_layer '{self.name}'"
        n_in = int(np.prod([s for s, c in zip(X.shape, X.fmt) if c not in "BT"]))
        self.input_size = n_in
        dt = _dtype(X)
        w_shape, b_shape = (self.output_size, n_in), (self.output_size, 1)
        self.weights = _given(self._given[0], w_shape, "weights", where, dt)
        self.bias = _given(self._given[1], b_shape, "bias", where, dt)
        if self.weights is None:
            self.weights = dlarray(initialize(self.weights_initializer, w_shape, n_in, self.output_size, dt,
                                              "weights", where))
        if self.bias is None:
            self.bias = dlarray(initialize(self.bias_initializer, b_shape, n_in, self.output_size, dt,
                                           "bias", where))

    def predict(self, X):
        return fullyconnect(X, self.weights, self.bias)


def fully_connected_layer(output_size, *, weights_initializer="glorot", bias_initializer="zeros",
                          weights=None, bias=None, name: str = "") -> Layer:
    """MATLAB's ``fullyConnectedLayer(outputSize)``: ``weights`` is
    ``OutputSize x InputSize`` (Glorot by default, fan-in InputSize, fan-out
    OutputSize), ``bias`` ``OutputSize x 1`` (zeros); InputSize is inferred
    when the network is built.

    Example:
        >>> from symdl import nn
        >>> nn.fully_connected_layer(10).output_size
        10
    """
    return _FullyConnected(output_size, weights_initializer, bias_initializer, weights, bias, name)


class _Convolution(Layer):
    learnables = ("weights", "bias")
    default_name = "conv"

    def __init__(self, n, filter_size, num_filters, stride, padding, dilation_factor, num_channels,
                 weights_initializer, bias_initializer, weights, bias, name, where):
        super().__init__(name)
        self._n, self._where = n, where
        self.filter_size = _sizes(filter_size, n, "filter_size", where)
        self.num_filters = _positive_int(num_filters, "num_filters", where)
        self.stride = _sizes(stride, n, "stride", where)
        self.dilation_factor = _sizes(dilation_factor, n, "dilation_factor", where)
        self.padding = _edges(padding, n, "cropping" if isinstance(self, _TransposedConvolution) else "padding",
                              where)
        self.num_channels = None if num_channels == "auto" else _positive_int(num_channels, "num_channels",
                                                                              where)
        self.weights_initializer = check_initializer(weights_initializer, "weights_initializer", where,
                                                     _WEIGHT_INITS)
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", where, _BIAS_INITS)
        self.weights, self.bias, self._given = None, None, (weights, bias)

    def _shapes(self, c: int):
        return self.filter_size + (c, self.num_filters), (1,) * self._n + (self.num_filters,)

    def _fans(self, c: int):
        # MATLAB: numIn = prod(FilterSize) * NumChannels, numOut = prod(FilterSize) * NumFilters
        k = int(np.prod(self.filter_size))
        return k * c, k * self.num_filters

    def initialize(self, X):
        where = f"{self._where} '{self.name}'"
        c = _channels(X, where)
        space = X.fmt.count("S") or (1 if self._n == 1 and "T" in X.fmt else 0)
        if space != self._n:
            raise ValueError(f"{where}: the input must have {self._n} spatial dimension(s), got fmt {X.fmt!r}")
        if self.num_channels is not None and self.num_channels != c:
            raise ValueError(f"{where}: num_channels is {self.num_channels} but the input has {c} channels")
        self.num_channels = c
        dt = _dtype(X)
        w_shape, b_shape = self._shapes(c)
        fan_in, fan_out = self._fans(c)
        self.weights = _given(self._given[0], w_shape, "weights", where, dt)
        self.bias = _given(self._given[1], b_shape, "bias", where, dt)
        if self.weights is None:
            self.weights = dlarray(initialize(self.weights_initializer, w_shape, fan_in, fan_out, dt,
                                              "weights", where))
        if self.bias is None:
            self.bias = dlarray(initialize(self.bias_initializer, b_shape, fan_in, fan_out, dt, "bias", where))

    def predict(self, X):
        if self._n == 1 and "S" not in X.fmt and "T" in X.fmt:
            return self._over_time(X)
        return dlconv(X, self.weights, F.reshape(self.bias, (self.num_filters,)), stride=self.stride,
                      padding=self.padding, dilation=self.dilation_factor)

    def _over_time(self, X):
        """A 1-D convolution of 'CBT' sequences over T (as MATLAB's
        convolution1dLayer): T read as the spatial dimension, then put back."""
        if X.fmt != "CBT":
            raise ValueError(f"{self._where} '{self.name}': sequences must be 'CBT', got {X.fmt!r}")
        x = dlarray(F.transpose(stripdims(X), (2, 0, 1)), "SCB")
        Y = dlconv(x, self.weights, F.reshape(self.bias, (self.num_filters,)), stride=self.stride,
                   padding=self.padding, dilation=self.dilation_factor)
        return dlarray(F.transpose(stripdims(Y), (1, 2, 0)), "CBT")


def convolution2d_layer(filter_size, num_filters, *, stride=1, padding=0, dilation_factor=1,
                        num_channels="auto", weights_initializer="glorot", bias_initializer="zeros",
                        weights=None, bias=None, name: str = "") -> Layer:
    """MATLAB's ``convolution2dLayer(filterSize, numFilters)``: weights
    ``filterH x filterW x C x F`` (Glorot with numIn = filterH*filterW*C,
    numOut = filterH*filterW*F), bias ``1 x 1 x F``; ``padding`` ``'same'``,
    an int, MATLAB's ``[a b]`` (one per dimension) or ``[t b l r]``, or
    ``(before, after)`` pairs.

    Example:
        >>> from symdl import nn
        >>> nn.convolution2d_layer(5, 20).filter_size
        (5, 5)
    """
    return _Convolution(2, filter_size, num_filters, stride, padding, dilation_factor, num_channels,
                        weights_initializer, bias_initializer, weights, bias, name, "convolution2d_layer")


def convolution1d_layer(filter_size, num_filters, *, stride=1, padding=0, dilation_factor=1,
                        num_channels="auto", weights_initializer="glorot", bias_initializer="zeros",
                        weights=None, bias=None, name: str = "") -> Layer:
    """MATLAB's ``convolution1dLayer(filterSize, numFilters)`` over one
    spatial dimension (``'SCB'`` inputs) or over time (``'CBT'`` sequences):
    weights ``filterSize x C x F``; ``padding`` ``'same'``, an int or MATLAB's
    ``[l r]``.

    Example:
        >>> from symdl import nn
        >>> nn.convolution1d_layer(3, 8).filter_size
        (3,)
    """
    return _Convolution(1, filter_size, num_filters, stride, padding, dilation_factor, num_channels,
                        weights_initializer, bias_initializer, weights, bias, name, "convolution1d_layer")


class _TransposedConvolution(_Convolution):
    default_name = "transposed-conv"

    def _shapes(self, c: int):
        # dltranspconv's weights: filterH x filterW x numFilters x numChannels
        return self.filter_size + (self.num_filters, c), (1,) * self._n + (self.num_filters,)

    def _fans(self, c: int):
        # MATLAB: numIn = prod(FilterSize) * NumFilters, numOut = prod(FilterSize) * NumChannels
        k = int(np.prod(self.filter_size))
        return k * self.num_filters, k * c

    def predict(self, X):
        return dltranspconv(X, self.weights, F.reshape(self.bias, (self.num_filters,)), stride=self.stride,
                            cropping=self.padding)


def transposed_convolution2d_layer(filter_size, num_filters, *, stride=1, cropping=0, num_channels="auto",
                                   weights_initializer="glorot", bias_initializer="zeros", weights=None,
                                   bias=None, name: str = "") -> Layer:
    """MATLAB's ``transposedConv2dLayer(filterSize, numFilters)``: weights
    ``filterH x filterW x F x C``; ``cropping`` ``'same'``, an int, MATLAB's
    ``[a b]`` or ``[t b l r]``, or ``(before, after)`` pairs.

    Example:
        >>> from symdl import nn
        >>> nn.transposed_convolution2d_layer(2, 4, stride=2).stride
        (2, 2)
    """
    return _TransposedConvolution(2, filter_size, num_filters, stride, cropping, 1, num_channels,
                                  weights_initializer, bias_initializer, weights, bias, name,
                                  "transposed_convolution2d_layer")


class _BatchNorm(Layer):
    learnables = ("offset", "scale")
    state_names = ("trained_mean", "trained_variance")
    default_name = "batchnorm"

    def __init__(self, epsilon, mean_decay, variance_decay, name):
        super().__init__(name)
        where = "batch_normalization_layer"
        self.epsilon = _real(epsilon, "epsilon", where, 1e-5)
        self.mean_decay = _real(mean_decay, "mean_decay", where, 0.0, 1.0)
        self.variance_decay = _real(variance_decay, "variance_decay", where, 0.0, 1.0)
        self.offset = self.scale = self.trained_mean = self.trained_variance = None

    def initialize(self, X):
        c, dt = _channels(X, f"batch_normalization_layer '{self.name}'"), _dtype(X)
        self.offset, self.scale = dlarray(np.zeros((c, 1), dt)), dlarray(np.ones((c, 1), dt))
        self.trained_mean, self.trained_variance = dlarray(np.zeros((c, 1), dt)), dlarray(np.ones((c, 1), dt))

    def predict(self, X):
        return batchnorm(X, self.offset, self.scale, self.trained_mean, self.trained_variance, training=False,
                         epsilon=self.epsilon)

    def _run(self, inputs, training):
        if not training:
            return self.predict(*inputs), {}
        Y, mean, var = batchnorm(inputs[0], self.offset, self.scale, self.trained_mean, self.trained_variance,
                                 training=True, epsilon=self.epsilon, mean_decay=self.mean_decay,
                                 var_decay=self.variance_decay)
        return Y, {"trained_mean": mean, "trained_variance": var}


def batch_normalization_layer(*, epsilon: float = 1e-5, mean_decay: float = 0.1, variance_decay: float = 0.1,
                              name: str = "") -> Layer:
    """MATLAB's ``batchNormalizationLayer``: learnable ``offset`` (zeros)
    and ``scale`` (ones), state ``trained_mean`` (zeros) and
    ``trained_variance`` (ones), each ``C x 1``.  ``forward`` normalises with
    the batch statistics and returns the updated running statistics as the
    new state; ``predict`` uses the running statistics.

    Example:
        >>> from symdl import nn
        >>> nn.batch_normalization_layer().state_names
        ('trained_mean', 'trained_variance')
    """
    return _BatchNorm(epsilon, mean_decay, variance_decay, name)


class _LayerNorm(Layer):
    learnables = ("offset", "scale")
    default_name = "layernorm"

    def __init__(self, epsilon, name):
        super().__init__(name)
        self.epsilon = _real(epsilon, "epsilon", "layer_normalization_layer", 1e-5)
        self.offset = self.scale = None

    def initialize(self, X):
        c, dt = _channels(X, f"layer_normalization_layer '{self.name}'"), _dtype(X)
        self.offset, self.scale = dlarray(np.zeros((c, 1), dt)), dlarray(np.ones((c, 1), dt))

    def predict(self, X):
        return layernorm(X, self.offset, self.scale, epsilon=self.epsilon)


def layer_normalization_layer(*, epsilon: float = 1e-5, name: str = "") -> Layer:
    """MATLAB's ``layerNormalizationLayer``: offset (zeros) and scale (ones), ``C x 1``.

    Example:
        >>> from symdl import nn
        >>> nn.layer_normalization_layer().learnables
        ('offset', 'scale')
    """
    return _LayerNorm(epsilon, name)


# ---------------------------------------------------------------- activations and friends

class _Function(Layer):
    """A layer without parameters: ``fn(X, **options)``."""

    def __init__(self, fn, default_name: str, name: str, **options):
        super().__init__(name)
        self._fn, self.default_name, self.options = fn, default_name, options

    def predict(self, X):
        return self._fn(X, **self.options)


def _tanh(X):
    return dlarray(F.tanh(X), X.fmt)          # a module-level function, so layers pickle


def _sigmoid(X):
    return dlarray(F.sigmoid(X), X.fmt)


def relu_layer(*, name: str = "") -> Layer:
    """MATLAB's ``reluLayer``.

    Example:
        >>> from symdl import nn
        >>> nn.relu_layer(name="r").name
        'r'
    """
    return _Function(relu, "relu", name)


def leaky_relu_layer(scale: float = 0.01, *, name: str = "") -> Layer:
    """MATLAB's ``leakyReluLayer(scale)`` (scale 0.01 by default).

    Example:
        >>> from symdl import nn
        >>> nn.leaky_relu_layer(0.2).options
        {'scale': 0.2}
    """
    return _Function(leakyrelu, "leakyrelu", name, scale=_real(scale, "scale", "leaky_relu_layer"))


def elu_layer(alpha: float = 1.0, *, name: str = "") -> Layer:
    """MATLAB's ``eluLayer(alpha)`` (alpha 1 by default).

    Example:
        >>> from symdl import nn
        >>> nn.elu_layer().options
        {'alpha': 1.0}
    """
    return _Function(elu, "elu", name, alpha=_real(alpha, "alpha", "elu_layer"))


def gelu_layer(*, approximation: str = "none", name: str = "") -> Layer:
    """MATLAB's ``geluLayer`` (``approximation`` 'none' or 'tanh').

    Example:
        >>> from symdl import nn
        >>> nn.gelu_layer(approximation="tanh").options
        {'approximation': 'tanh'}
    """
    if approximation not in ("none", "tanh"):
        raise ValueError(f"gelu_layer: approximation must be 'none' or 'tanh', got {approximation!r}")
    return _Function(gelu, "gelu", name, approximation=approximation)


def tanh_layer(*, name: str = "") -> Layer:
    """MATLAB's ``tanhLayer``.

    Example:
        >>> from symdl import nn
        >>> nn.tanh_layer().default_name
        'tanh'
    """
    return _Function(_tanh, "tanh", name)


def sigmoid_layer(*, name: str = "") -> Layer:
    """MATLAB's ``sigmoidLayer``.

    Example:
        >>> from symdl import nn
        >>> nn.sigmoid_layer().default_name
        'sigmoid'
    """
    return _Function(_sigmoid, "sigmoid", name)


def softmax_layer(*, name: str = "") -> Layer:
    """MATLAB's ``softmaxLayer`` (over the channel dimension).

    Example:
        >>> from symdl import nn
        >>> nn.softmax_layer().default_name
        'softmax'
    """
    return _Function(softmax, "softmax", name)


class _Dropout(Layer):
    default_name = "dropout"

    def __init__(self, probability, name):
        super().__init__(name)
        self.probability = _real(probability, "probability", "dropout_layer", 0.0)
        if not self.probability < 1.0:
            raise ValueError(f"dropout_layer: probability must be in [0, 1), got {probability!r}")

    def predict(self, X):
        return X

    def forward(self, X):
        return dropout(X, self.probability), None


def dropout_layer(probability: float = 0.5, *, name: str = "") -> Layer:
    """MATLAB's ``dropoutLayer(probability)``: inverted dropout in
    ``forward`` (training), the identity in ``predict``.

    Example:
        >>> from symdl import nn
        >>> nn.dropout_layer(0.2).probability
        0.2
    """
    return _Dropout(probability, name)


class _Pool(Layer):
    def __init__(self, fn, default_name, pool_size, stride, padding, name, where):
        super().__init__(name)
        self._fn, self.default_name = fn, default_name
        self.pool_size = _sizes(pool_size, 2, "pool_size", where)
        self.stride = _sizes(stride, 2, "stride", where)
        self.padding = _edges(padding, 2, "padding", where)

    def predict(self, X):
        return self._fn(X, self.pool_size, stride=self.stride, padding=self.padding)


def max_pooling2d_layer(pool_size, *, stride=1, padding=0, name: str = "") -> Layer:
    """MATLAB's ``maxPooling2dLayer(poolSize)`` (stride 1 and no padding by default, as MATLAB;
    ``padding`` in the forms of :func:`convolution2d_layer`).

    Example:
        >>> from symdl import nn
        >>> nn.max_pooling2d_layer(2, stride=2).stride
        (2, 2)
    """
    return _Pool(maxpool, "maxpool", pool_size, stride, padding, name, "max_pooling2d_layer")


def average_pooling2d_layer(pool_size, *, stride=1, padding=0, name: str = "") -> Layer:
    """MATLAB's ``averagePooling2dLayer(poolSize)``.

    Example:
        >>> from symdl import nn
        >>> nn.average_pooling2d_layer(2).pool_size
        (2, 2)
    """
    return _Pool(avgpool, "avgpool", pool_size, stride, padding, name, "average_pooling2d_layer")


class _Flatten(Layer):
    default_name = "flatten"

    def predict(self, X):
        # every non-batch (and non-time) dimension into C, in C order as fullyconnect reads them
        if not isinstance(X, dlarray) or not X.fmt:
            raise ValueError(f"flatten_layer '{self.name}': the input must be a formatted dlarray")
        keep = [k for k, c in enumerate(X.fmt) if c in "BT"]
        feats = [k for k, c in enumerate(X.fmt) if c not in "BT"]
        n = int(np.prod([X.shape[k] for k in feats]))
        Y = F.reshape(F.transpose(X, feats + keep), (n,) + tuple(X.shape[k] for k in keep))
        return dlarray(Y, "C" + "".join(X.fmt[k] for k in keep))


def flatten_layer(*, name: str = "") -> Layer:
    """MATLAB's ``flattenLayer``: the spatial and channel dimensions of each
    observation into one channel dimension (C order, as fullyconnect reads them).

    Example:
        >>> from symdl import nn
        >>> nn.flatten_layer().default_name
        'flatten'
    """
    return _Flatten(name)


class _Embedding(Layer):
    learnables = ("weights",)
    default_name = "embedding"

    def __init__(self, dimension, num_words, weights_initializer, name):
        super().__init__(name)
        where = "embedding_layer"
        self.dimension = _positive_int(dimension, "dimension", where)
        self.num_words = _positive_int(num_words, "num_words", where)
        self.weights_initializer = check_initializer(weights_initializer, "weights_initializer", where,
                                                     _WEIGHT_INITS)
        self.weights = None

    def initialize(self, X):
        dt = X.dtype.name if X.dtype.kind == "f" else "float32"
        self.weights = dlarray(initialize(self.weights_initializer, (self.dimension, self.num_words),
                                          self.num_words, self.dimension, dt, "weights", "embedding_layer"))

    def predict(self, X):
        if not is_traced(X):
            return embed(X, self.weights)
        # Traced indices stay an operand: symdl.embed reads index values (they
        # would be frozen into an accelerated trace), a one-hot product does not.
        embed(dlarray(X._value, X.fmt), extractdata(self.weights))       # embed's checks, on this call's values
        keep = [k for k, c in enumerate(X.fmt) if c in "BT"]
        sizes = tuple(X.shape[k] for k in keep)
        flat = F.reshape(F.transpose(stripdims(X), keep + [k for k in range(X.ndim) if k not in keep]), (1, -1))
        words = np.arange(self.num_words, dtype=X.dtype).reshape(-1, 1)
        onehot = F.where(flat == words, 1.0, 0.0).astype(self.weights.dtype)   # NumWords x (B * T)
        Y = F.reshape(F.matmul(stripdims(self.weights), onehot), (self.dimension,) + sizes)
        return dlarray(Y, "C" + "".join(X.fmt[k] for k in keep))


def embedding_layer(dimension, num_words, *, weights_initializer="narrow-normal", name: str = "") -> Layer:
    """MATLAB's ``wordEmbeddingLayer(dimension, numWords)``: weights
    ``dimension x numWords`` (narrow-normal, as MATLAB); inputs are 0-based
    word indices.

    Example:
        >>> from symdl import nn
        >>> nn.embedding_layer(8, 100).num_words
        100
    """
    return _Embedding(dimension, num_words, weights_initializer, name)


# ---------------------------------------------------------------- recurrent layers

class _Recurrent(Layer):
    def __init__(self, kind, gates, num_hidden_units, output_mode, name, where):
        super().__init__(name)
        self._kind, self._gates, self._where = kind, gates, where
        self.default_name = kind
        self.num_hidden_units = _positive_int(num_hidden_units, "num_hidden_units", where)
        if output_mode not in ("sequence", "last"):
            raise ValueError(f"{where}: output_mode must be 'sequence' or 'last', got {output_mode!r}")
        self.output_mode = output_mode
        self.input_weights = self.recurrent_weights = self.bias = None

    learnables = ("input_weights", "recurrent_weights", "bias")

    def initialize(self, X):
        from .init import initialize as draw
        c, dt, h, g = _channels(X, f"{self._where} '{self.name}'"), _dtype(X), self.num_hidden_units, self._gates
        self.input_weights = dlarray(draw("glorot", (g * h, c), c, g * h, dt, "input_weights", self._where))
        self.recurrent_weights = dlarray(draw("orthogonal", (g * h, h), h, g * h, dt, "recurrent_weights",
                                              self._where))
        bias = np.zeros((g * h, 1), dt)
        if self._kind == "lstm":
            bias[h:2 * h] = 1.0      # MATLAB's 'unit-forget-gate'
        self.bias = dlarray(bias)

    def predict(self, X):
        from ..ops import recurrent   # imported when used: the recurrent ops are optional here
        h0 = np.zeros((self.num_hidden_units, 1), X.dtype)
        if self._kind == "lstm":
            Y = recurrent.lstm(X, h0, h0, self.input_weights, self.recurrent_weights, self.bias)[0]
        else:
            Y = recurrent.gru(X, h0, self.input_weights, self.recurrent_weights, self.bias)[0]
        if self.output_mode == "last" and "T" in Y.fmt:
            t = Y.fmt.index("T")
            last = Y[(slice(None),) * t + (Y.shape[t] - 1,)]      # the last time step, T dropped
            Y = dlarray(last, Y.fmt.replace("T", ""))
        return Y


def lstm_layer(num_hidden_units, *, output_mode: str = "sequence", name: str = "") -> Layer:
    """MATLAB's ``lstmLayer(numHiddenUnits)``: input weights ``4H x C``
    (Glorot), recurrent weights ``4H x H`` (orthogonal), bias ``4H x 1``
    ('unit-forget-gate': ones for the forget gate); states start at zero.
    ``output_mode`` 'sequence' or 'last'.

    Example:
        >>> from symdl import nn
        >>> nn.lstm_layer(16).num_hidden_units
        16
    """
    return _Recurrent("lstm", 4, num_hidden_units, output_mode, name, "lstm_layer")


def gru_layer(num_hidden_units, *, output_mode: str = "sequence", name: str = "") -> Layer:
    """MATLAB's ``gruLayer(numHiddenUnits)``: input weights ``3H x C``
    (Glorot), recurrent weights ``3H x H`` (orthogonal), bias ``3H x 1`` (zeros).

    Example:
        >>> from symdl import nn
        >>> nn.gru_layer(8, output_mode="last").output_mode
        'last'
    """
    return _Recurrent("gru", 3, num_hidden_units, output_mode, name, "gru_layer")


# ---------------------------------------------------------------- combination layers

class _Addition(Layer):
    default_name = "addition"

    def __init__(self, num_inputs, name):
        super().__init__(name)
        n = _positive_int(num_inputs, "num_inputs", "addition_layer")
        self.input_names = tuple(f"in{k + 1}" for k in range(n))

    def predict(self, *X):
        fmts = {x.fmt for x in X}
        shapes = {x.shape for x in X}
        if len(fmts) != 1 or len(shapes) != 1:
            raise ValueError(f"addition_layer '{self.name}': the inputs must have one shape and format, got "
                             f"{[(x.shape, x.fmt) for x in X]}")
        out = X[0]
        for x in X[1:]:
            out = out + x
        return dlarray(out, X[0].fmt)


def addition_layer(num_inputs: int, *, name: str = "") -> Layer:
    """MATLAB's ``additionLayer(numInputs)``: the elementwise sum of inputs
    ``'in1'``, ``'in2'``, ...

    Example:
        >>> from symdl import nn
        >>> nn.addition_layer(2).input_names
        ('in1', 'in2')
    """
    return _Addition(num_inputs, name)


class _Concatenation(Layer):
    default_name = "concat"

    def __init__(self, dim, num_inputs, name):
        super().__init__(name)
        where = "concatenation_layer"
        if isinstance(dim, str):
            if len(dim) != 1 or dim.upper() not in "SCBTU":
                raise ValueError(f"{where}: dim must be a 0-based axis or a label letter, got {dim!r}")
            dim = dim.upper()
        elif isinstance(dim, bool) or not isinstance(dim, Integral) or dim < 0:
            raise ValueError(f"{where}: dim must be a 0-based axis or a label letter, got {dim!r}")
        self.dim = dim
        n = _positive_int(num_inputs, "num_inputs", where)
        self.input_names = tuple(f"in{k + 1}" for k in range(n))

    def predict(self, *X):
        fmt = X[0].fmt
        if any(x.fmt != fmt for x in X):
            raise ValueError(f"concatenation_layer '{self.name}': the inputs must share one format, got "
                             f"{[x.fmt for x in X]}")
        axis = fmt.index(self.dim) if isinstance(self.dim, str) else self.dim
        if axis >= len(fmt):
            raise ValueError(f"concatenation_layer '{self.name}': dim {self.dim} is out of range for fmt {fmt!r}")
        return dlarray(F.concatenate(list(X), axis=axis), fmt)


def concatenation_layer(dim, num_inputs: int, *, name: str = "") -> Layer:
    """MATLAB's ``concatenationLayer(dim, numInputs)``: ``dim`` is a 0-based
    axis or a label letter (``'C'`` for channels).

    Example:
        >>> from symdl import nn
        >>> nn.concatenation_layer("C", 3).input_names
        ('in1', 'in2', 'in3')
    """
    return _Concatenation(dim, num_inputs, name)


# ---------------------------------------------------------------- output layers

class OutputLayer(Layer):
    """A loss at the end of a layer array for ``train_network``; a
    ``dlnetwork`` refuses it, as MATLAB's (use the loss in the training loop)."""

    output_names = ()

    def predict(self, X):
        return X


class _Classification(OutputLayer):
    default_name = "classoutput"

    def __init__(self, classes, name):
        super().__init__(name)
        self.classes = classes

    def loss(self, Y, T):
        return crossentropy(Y, T)


class _Regression(OutputLayer):
    default_name = "regressionoutput"

    def loss(self, Y, T):
        return mse(Y, T)


def classification_layer(*, classes="auto", name: str = "") -> Layer:
    """MATLAB's ``classificationLayer``: cross-entropy loss of the softmax output.

    Example:
        >>> from symdl import nn
        >>> nn.classification_layer().default_name
        'classoutput'
    """
    return _Classification(classes, name)


def regression_layer(*, name: str = "") -> Layer:
    """MATLAB's ``regressionLayer``: half mean squared error loss.

    Example:
        >>> from symdl import nn
        >>> nn.regression_layer().default_name
        'regressionoutput'
    """
    return _Regression(name)
