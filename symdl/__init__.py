"""symdl: MATLAB-style deep-learning automatic differentiation for Python,
on a symbolic engine (trace -> graph -> symbolic derivatives -> simplify ->
native code)."""

from . import ir as _ir  # noqa: F401  (registers primitives and rules)
from .compiler.accelerate import AcceleratedFunction, AccelerationWarning, dlaccelerate
from .compiler.aot import CompiledFunction, compile, export, load
from .array import dlarray, dims, extractdata, finddim, stripdims
from .autodiff.api import dldivergence, dlfeval, dlgradient, dljacobian, dllaplacian
from .elementwise_api import elementwise
from . import linalg  # numpy.linalg on dlarrays (symdl.linalg.inv, ...)
from .functions import (
    abs, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, ceil, cos, cosh, dot,
    erf, exp, expand_dims, expm1, floor, log, log1p, matmul, maximum, minimum, power,
    reshape, sigmoid, sign, sin, sinh, sqrt, square, squeeze, tan, tanh, transpose,
)
from .np import (  # numpy's breadth (SPEC 9.2), with numpy's keywords; replaces the basic versions above
    allclose, append, argmax, argmin, argpartition, argsort, around, array_equal, array_split, atleast_1d,
    atleast_2d, atleast_3d, cbrt, clip, column_stack, concatenate, copy, count_nonzero, cross, cumprod, cumsum,
    deg2rad, degrees, diag, diagonal, diff, dsplit, dstack, einsum, empty_like, exp2, fabs, fix, flatnonzero, flip,
    fliplr, flipud, floor_divide, fmax, fmin, fmod, full_like, hsplit, hstack, hypot, inner, isclose, isfinite, isinf,
    isnan, kron, linspace, log2, log10, logaddexp, logaddexp2, mod, moveaxis, nan_to_num, nonzero, ones_like,
    outer, pad, partition, rad2deg, radians, ravel, reciprocal, remainder, repeat, result_type, rint, roll, rollaxis,
    rot90, select, sinc, sort, split, stack, std, swapaxes, tensordot, tile, tril, triu,
    trunc, var, vsplit, vstack, where, zeros_like,
)
from .np.reductions import TOP_LEVEL as _REDUCTIONS
from .inspect import trace
from .ops.activations import elu, gelu, leakyrelu, relu, softmax
from .ops.conv import dlconv, dltranspconv
from .ops.interp import interp1
from .ops.dropout import dropout
from .ops.embed import embed
from .ops.fullyconnect import fullyconnect
from .ops.norm import batchnorm, crosschannelnorm, groupnorm, instancenorm, layernorm
from .ops.pool import avgpool, maxpool, maxunpool
from .ops.recurrent import gru, lstm
from .ops.attention import attention
from .ops.losses import crossentropy, huber, l1loss, l2loss, mse, onehotdecode, onehotencode
from .optim import adamupdate, dlupdate, rmspropupdate, sgdmupdate
from .ir.graph import Graph
from .random import rand, randn, seed
from .simplify import simplify
from .compiler.transforms import derivative, grad, hessian, hvp, jacobian, value_and_grad
from .compiler.vmap import vmap
from .compiler.linearize import jvp, vjp

sum, mean, prod, max, min = (_REDUCTIONS[n] for n in ("sum", "mean", "prod", "max", "min"))

from . import nn  # noqa: E402  (networks: layers, dlnetwork; after the top-level functions it uses)

__version__ = "0.1.0"

__all__ = [
    "dlarray", "dims", "extractdata", "finddim", "stripdims", "dlfeval", "dlgradient",
    "dljacobian", "dldivergence", "dllaplacian", "elementwise", "trace", "Graph", "simplify", "linalg",
    "nn", "dlaccelerate", "AcceleratedFunction", "AccelerationWarning", "compile", "load", "export",
    "CompiledFunction", "rand", "randn", "seed", "grad", "value_and_grad", "jacobian", "hessian", "hvp", "derivative",
    "vmap", "jvp", "vjp",
    "abs", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "ceil", "clip",
    "concatenate", "cos", "cosh",
    "dot", "erf", "exp", "expand_dims", "expm1", "floor", "log", "log1p", "matmul", "max",
    "maximum", "mean", "min", "minimum", "power", "prod", "reshape", "sign", "sin", "sinh",
    "sqrt", "square", "squeeze", "stack", "sum", "tan", "tanh", "transpose", "where", "cumsum", "sigmoid",
    "relu", "leakyrelu", "elu", "gelu", "softmax", "crossentropy", "mse", "l1loss", "l2loss", "huber",
    "onehotencode", "onehotdecode", "sgdmupdate", "adamupdate", "rmspropupdate", "dlupdate", "fullyconnect",
    "batchnorm", "layernorm", "groupnorm", "instancenorm", "dropout", "embed", "crosschannelnorm",
    "maxpool", "avgpool", "maxunpool", "dlconv", "dltranspconv", "interp1", "lstm", "gru", "attention",
    # numpy's breadth (symdl.np; symdl.numpy is numpy's whole namespace)
    "allclose", "append", "argmax", "argmin", "argpartition", "argsort", "around", "array_equal", "array_split",
    "atleast_1d", "atleast_2d", "atleast_3d", "cbrt", "column_stack", "copy", "count_nonzero", "cross", "cumprod",
    "deg2rad", "degrees", "diag", "diagonal", "diff", "dsplit", "dstack", "einsum", "empty_like", "exp2", "fabs",
    "fix", "flatnonzero", "flip", "fliplr", "flipud", "floor_divide", "fmax", "fmin", "fmod", "full_like", "hsplit",
    "hstack", "hypot", "inner", "isclose", "isfinite", "isinf", "isnan", "kron", "linspace", "log2", "log10",
    "logaddexp", "logaddexp2", "mod", "moveaxis", "nan_to_num", "nonzero", "ones_like", "outer", "pad", "partition",
    "rad2deg", "radians", "ravel", "reciprocal", "remainder", "repeat", "result_type", "rint", "roll", "rollaxis",
    "rot90", "select", "sinc", "sort", "split", "std", "swapaxes", "tensordot", "tile", "tril", "triu", "trunc",
    "var", "vsplit", "vstack", "zeros_like",
]


def __getattr__(name: str):
    # ``import symdl; symdl.numpy.array(...)`` as ``jax.numpy`` works after
    # ``import jax``; imported on first use, since wrapping numpy's whole
    # namespace is not free and most programs never touch it
    if name == "numpy":
        import importlib
        return importlib.import_module(".numpy", __name__)
    raise AttributeError(f"module 'symdl' has no attribute {name!r}")
