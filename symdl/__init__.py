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
    abs, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, ceil, clip, concatenate, cos, cosh, cumsum, dot,
    erf, exp, expand_dims, expm1, floor, log, log1p, matmul, max, maximum, mean, min, minimum, power, prod,
    reshape, sigmoid, sign, sin, sinh, sqrt, square, squeeze, stack, sum, tan, tanh, transpose, where,
)
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
from . import nn  # networks: layers, dlnetwork (symdl.nn)

__version__ = "0.1.0"

__all__ = [
    "dlarray", "dims", "extractdata", "finddim", "stripdims", "dlfeval", "dlgradient",
    "dljacobian", "dldivergence", "dllaplacian", "elementwise", "trace", "Graph", "simplify", "linalg",
    "nn", "dlaccelerate", "AcceleratedFunction", "AccelerationWarning", "compile", "load", "export",
    "CompiledFunction", "rand", "randn", "seed", "grad", "value_and_grad", "jacobian", "hessian", "hvp", "derivative",
    "abs", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "ceil", "clip",
    "concatenate", "cos", "cosh",
    "dot", "erf", "exp", "expand_dims", "expm1", "floor", "log", "log1p", "matmul", "max",
    "maximum", "mean", "min", "minimum", "power", "prod", "reshape", "sign", "sin", "sinh",
    "sqrt", "square", "squeeze", "stack", "sum", "tan", "tanh", "transpose", "where", "cumsum", "sigmoid",
    "relu", "leakyrelu", "elu", "gelu", "softmax", "crossentropy", "mse", "l1loss", "l2loss", "huber",
    "onehotencode", "onehotdecode", "sgdmupdate", "adamupdate", "rmspropupdate", "dlupdate", "fullyconnect",
    "batchnorm", "layernorm", "groupnorm", "instancenorm", "dropout", "embed", "crosschannelnorm",
    "maxpool", "avgpool", "maxunpool", "dlconv", "dltranspconv", "interp1", "lstm", "gru", "attention",
]
