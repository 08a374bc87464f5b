"""The guard over the whole primitive catalogue: every primitive carries every
rule it needs, and the rules are right on a random instance of each.

Parametrised over ``symdl.ir.ops.PRIMITIVES`` itself, so a new primitive
without its rules, its lowering or an instance here is a failing test.
Compiled == interpreted for every primitive is ``test_codegen.py``'s
``test_primitive_compiled_matches_interpreter`` (same catalogue).

References: the VJP and JVP rules are checked against central differences of
the numpy reference interpreter (independent of every rule), and against each
other (<g, J t> == <J^T g, t>); the batching rule against the interpreter
run once per batch element.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from codegen.lower import has_lowering
from symdl.autodiff.batching import batch_graph
from symdl.autodiff.reverse import jvp, vjp
from symdl.ir import build as B
from symdl.ir.interpret import interpret
from symdl.ir.node import Node, make_node
from symdl.ir.ops import PRIMITIVES, Kind, primitive
from symdl.ir.ops import functions as F

# ---------------------------------------------------------------- one random instance of each primitive
# An instance is (float inputs, other inputs with fixed values, the node, a sampler of input values
# inside the op's domain).  Nodes are built raw (make_node), so canonicalisation cannot replace the op.

Instance = tuple[list[Node], dict[Node, np.ndarray], Node, Callable]


def raw(op: str, inputs, **attrs) -> Node:
    attrs_t = B.as_attrs(attrs)
    shape, dtype = primitive(op).infer(tuple(inputs), attrs)
    return make_node(op, tuple(inputs), attrs_t, tuple(shape), dtype)


def x(name: str, shape) -> Node:
    return B.input_node(name, shape, "float64")


def uniform(lo: float, hi: float) -> Callable:
    return lambda rng, shape: rng.uniform(lo, hi, shape)


# domains of the functions whose derivative exists only on part of the line
DOMAIN = {"log": (0.3, 2.0), "asin": (-0.8, 0.8), "acos": (-0.8, 0.8), "acosh": (1.2, 3.0),
          "atanh": (-0.8, 0.8), "log1p": (-0.5, 2.0), "abs": (0.2, 2.0), "pow": (0.3, 2.0),
          "powc": (0.3, 2.0), "log2": (0.3, 2.0), "log10": (0.3, 2.0), "cbrt": (0.3, 2.0)}


def _elementwise_instance(op: str) -> Instance:
    arity = primitive(op).arity
    shapes = [(3, 1), (1, 4), (3, 4)][:arity] if arity and arity <= 3 else [(3, 4)]
    ins = [x(f"e{k}", s) for k, s in enumerate(shapes)]
    return ins, {}, raw(op, ins), uniform(*DOMAIN.get(op, (-1.5, 1.5)))


def _where_instance() -> Instance:
    cond = B.input_node("c", (3, 4), "bool")
    a, b = x("a", (3, 1)), x("b", (3, 4))
    return [a, b], {cond: np.arange(12).reshape(3, 4) % 3 == 0}, raw("where", (cond, a, b)), uniform(-1, 1)


def _minmax_instance(op: str) -> Instance:
    a, b = x("a", (3, 4)), x("b", (3, 4))
    # well separated operands: the derivative exists everywhere the samples land
    return [a, b], {}, raw(op, (a, b)), lambda rng, shape: rng.uniform(-1, 1, shape) + rng.choice([-3, 3], shape)


def _mod_instance(op: str) -> Instance:
    a, b = x("a", (3, 1)), x("b", (1, 4))
    # a / b in (0.5, 0.97) or its negative: away from the jumps of the remainder
    return [a, b], {}, raw(op, (a, b)), lambda rng, shape: rng.uniform(2.1, 2.9, shape) if shape == (3, 1) \
        else rng.choice([-1.0, 1.0], shape) * rng.uniform(3.0, 4.0, shape)


INSTANCES: dict[str, Callable[[], Instance]] = {
    "mod": lambda: _mod_instance("mod"),
    "fmod": lambda: _mod_instance("fmod"),
    "add": lambda: (lambda a, b: ([a, b], {}, raw("add", (a, b), coeffs=(2.0, -0.5), const=1.0),
                                  uniform(-1, 1)))(x("a", (3, 1)), x("b", (1, 4))),
    "mul": lambda: (lambda a, b: ([a, b], {}, raw("mul", (a, b), exps=(2, -1)), uniform(0.5, 2)))(
        x("a", (3, 1)), x("b", (1, 4))),
    "powc": lambda: (lambda a: ([a], {}, raw("powc", (a,), p=1.5), uniform(0.3, 2)))(x("a", (3, 4))),
    "where": _where_instance,
    "maximum": lambda: _minmax_instance("maximum"),
    "minimum": lambda: _minmax_instance("minimum"),
    "convert": lambda: (lambda a: ([a], {}, raw("convert", (a,), dtype="float32"), uniform(-1, 1)))(
        x("a", (3, 4))),
    "order_limit": lambda: (lambda a: ([a], {}, raw("order_limit", (a,), level=0, limit=4, what="a mark"),
                                       uniform(-1, 1)))(x("a", (3, 4))),
    "broadcast_to": lambda: (lambda a: ([a], {}, raw("broadcast_to", (a,), shape=(2, 3, 4)), uniform(-1, 1)))(
        x("a", (3, 1))),
    "reshape": lambda: (lambda a: ([a], {}, raw("reshape", (a,), shape=(2, 6)), uniform(-1, 1)))(x("a", (3, 4))),
    "transpose": lambda: (lambda a: ([a], {}, raw("transpose", (a,), perm=(2, 0, 1)), uniform(-1, 1)))(
        x("a", (2, 3, 4))),
    "slice": lambda: (lambda a: ([a], {}, raw("slice", (a,), starts=(1, 3), stops=(3, None), steps=(1, -2)),
                                 uniform(-1, 1)))(x("a", (3, 5))),
    "unslice": lambda: (lambda a: ([a], {}, raw("unslice", (a,), starts=(1, 0), stops=(3, 5), steps=(1, 2),
                                                shape=(4, 5)), uniform(-1, 1)))(x("a", (2, 3))),
    "concatenate": lambda: (lambda a, b: ([a, b], {}, raw("concatenate", (a, b), axis=1), uniform(-1, 1)))(
        x("a", (2, 3)), x("b", (2, 1))),
    "reduce_sum": lambda: (lambda a: ([a], {}, raw("reduce_sum", (a,), axes=(0, 2)), uniform(-1, 1)))(
        x("a", (2, 3, 4))),
    "reduce_max": lambda: (lambda a: ([a], {}, raw("reduce_max", (a,), axes=(1,)), uniform(-1, 1)))(
        x("a", (3, 4))),
    "dot_general": lambda: (lambda a, b: ([a, b], {}, raw("dot_general", (a, b), contract=((2,), (1,)),
                                                          batch=((0,), (0,))), uniform(-1, 1)))(
        x("a", (2, 3, 4)), x("b", (2, 4, 5))),
    "cumsum": lambda: (lambda a: ([a], {}, raw("cumsum", (a,), axis=1, reverse=False), uniform(-1, 1)))(
        x("a", (3, 4))),
    "take": lambda: (lambda a, i: ([a], {i: np.array([[2, 0], [1, 2]])}, raw("take", (a, i), axis=1),
                                   uniform(-1, 1)))(x("a", (2, 3)), B.input_node("i", (2, 2), "int64")),
    "take_add": lambda: (lambda g, i: ([g], {i: np.array([[2, 0], [2, 2]])},
                                       raw("take_add", (g, i), axis=1, size=4), uniform(-1, 1)))(
        x("g", (3, 2, 2)), B.input_node("i", (2, 2), "int64")),
}


# linalg: samples where the derivatives exist and central differences are accurate
def _matrices(rng, shape):
    """Well-conditioned (diagonally dominant) square matrices; other shapes uniform."""
    m = rng.uniform(-1, 1, shape)
    return m + 3 * np.eye(shape[-1]) if len(shape) >= 2 and shape[-1] == shape[-2] else m


def _positive_definite(rng, shape):
    m = rng.uniform(-1, 1, shape)
    return m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])


def _linalg_instance(op: str, sampler=_matrices, shape=(2, 3, 3)) -> Instance:
    a = x("a", shape)
    return [a], {}, raw(op, (a,)), sampler


INSTANCES.update({
    "solve": lambda: (lambda a, b: ([a, b], {}, raw("solve", (a, b)), _matrices))(
        x("a", (2, 3, 3)), x("b", (2, 3, 2))),
    "det": lambda: _linalg_instance("det"),
    "logabsdet": lambda: _linalg_instance("logabsdet"),
    "det_sign": lambda: _linalg_instance("det_sign"),
    "cholesky": lambda: _linalg_instance("cholesky", _positive_definite),
    # random matrices (eigh reads the lower triangle): eigenvalues apart, so eigenvectors are differentiable
    "eigh": lambda: _linalg_instance("eigh", lambda rng, shape: rng.uniform(-1, 1, shape), (2, 4, 4)),
})


def instance(op: str) -> Instance:
    if op in INSTANCES:
        return INSTANCES[op]()
    if primitive(op).kind is Kind.ELEMENTWISE and primitive(op).arity:
        return _elementwise_instance(op)
    raise KeyError(op)


DIFFERENTIABLE = sorted(op for op, p in PRIMITIVES.items() if p.differentiable)


# ---------------------------------------------------------------- every rule exists

@pytest.mark.parametrize("op", sorted(PRIMITIVES))
def test_every_primitive_has_its_rules(op):
    prim = PRIMITIVES[op]
    assert isinstance(prim.kind, Kind), f"{op}: kind {prim.kind!r} is not a Kind"
    if prim.kind is not Kind.LEAF:
        assert prim.batch is not None, f"{op}: no batching rule"
    if prim.differentiable:
        assert prim.vjp is not None and prim.jvp is not None, f"{op}: differentiable without VJP/JVP rules"
        if prim.kind is Kind.ELEMENTWISE and prim.vjp.__name__ == "elementwise_vjp":
            assert prim.partials is not None, f"{op}: the generic elementwise rules need partials"
    else:
        assert prim.vjp is None and prim.jvp is None, f"{op}: rules on a primitive declared non-differentiable"
    assert has_lowering(op) or prim.decomposition is not None, \
        f"{op}: neither native lowering nor a declared decomposition"


def test_builtin_functions_lower_natively():
    # only user functions (defined by SymPy at run time) may be decomposed; a
    # built-in must never be silently replaced by the expansion of its definition
    for op, prim in PRIMITIVES.items():
        if prim.decomposition is not None:
            assert op not in _BUILTINS, f"built-in {op} is decomposed instead of lowered"
    for op in _BUILTINS:
        assert has_lowering(op), f"built-in {op} has no native lowering"


_BUILTINS = sorted(op for op in PRIMITIVES if not op.startswith(("ew_", "sympy_")))


def test_undeclared_primitives_are_refused():
    from symdl.ir.ops import define
    from symdl.ir.ops.registry import Primitive
    with pytest.raises(TypeError, match="lacks a VJP or JVP"):
        define(Primitive("catalogue_test_op", Kind.ELEMENTWISE, lambda i, a: ((), "float64"),
                         lambda v, n: v[0]))
    assert "catalogue_test_op" not in PRIMITIVES


# ---------------------------------------------------------------- the rules are right

def _values(inputs, fixed, sampler, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {**{n: sampler(rng, n.shape) for n in inputs}, **fixed}


def _numeric_jvp(node, inputs, bound, tangents, eps=1e-6) -> np.ndarray:
    def at(s):
        moved = dict(bound)
        for n, t in zip(inputs, tangents):
            moved[n] = bound[n] + s * t
        return interpret([node], moved)[0].astype(np.float64)
    return (at(eps) - at(-eps)) / (2 * eps)


@pytest.mark.parametrize("op", DIFFERENTIABLE)
def test_vjp_and_jvp_rules_match_central_differences(op):
    inputs, fixed, node, sampler = instance(op)
    rng = np.random.default_rng(7)
    bound = _values(inputs, fixed, sampler, seed=3)
    tangents = [rng.standard_normal(n.shape) for n in inputs]
    cot = rng.standard_normal(node.shape)
    # a float32 result (convert) rounds a tiny step away: a wide one, loose tolerance
    eps, tol = (1e-2, 1e-3) if node.dtype == "float32" else (1e-6, 1e-6)
    reference = _numeric_jvp(node, inputs, bound, tangents, eps)

    t_nodes = [B.input_node(f"t{k}", n.shape, "float64") for k, n in enumerate(inputs)]
    (tangent_out,) = jvp([node], inputs, t_nodes)
    got_jvp = interpret([tangent_out], {**bound, **dict(zip(t_nodes, tangents))})[0]
    np.testing.assert_allclose(got_jvp, reference, rtol=tol, atol=tol, err_msg=f"{op}: JVP rule")

    g = B.input_node("g", node.shape, node.dtype)
    cots = vjp([node], [g], inputs)
    env = {**bound, g: cot.astype(node.dtype)}
    pulled = sum(float(np.sum(interpret([c], env)[0] * t)) for c, t in zip(cots, tangents) if c is not None)
    # <g, J t> == <J^T g, t>: the VJP rule against the same central difference
    assert pulled == pytest.approx(float(np.sum(cot * reference)), rel=tol, abs=tol), f"{op}: VJP rule"


BATCHABLE = sorted(op for op, p in PRIMITIVES.items()
                   if p.kind not in (Kind.LEAF, Kind.RANDOM) and op != "iota" and p.differentiable
                   or op in INSTANCES or (p.kind is Kind.ELEMENTWISE and p.arity))


@pytest.mark.parametrize("op", BATCHABLE)
def test_batching_rule_matches_a_loop(op):
    inputs, fixed, node, sampler = instance(op)
    n = 3
    bound = _values(inputs, fixed, sampler, seed=5)
    rng = np.random.default_rng(11)
    # batch the first float input; the others stay shared
    first = inputs[0]
    stack = np.stack([sampler(rng, first.shape) for _ in range(n)])
    if first.dtype == "bool":
        stack = stack > 0
    batched_in = B.input_node("batched", (n,) + first.shape, first.dtype)
    (out,) = batch_graph([node], {first: batched_in}, n)
    got = interpret([out], {**bound, batched_in: stack})[0]
    expected = np.stack([interpret([node], {**bound, first: stack[k]})[0] for k in range(n)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=f"{op}: batching")


def test_every_differentiable_primitive_has_an_instance():
    missing = []
    for op in DIFFERENTIABLE:
        try:
            instance(op)
        except KeyError:
            missing.append(op)
    assert not missing, f"add an instance to tests/test_catalogue.py for {missing}"


def test_user_functions_decompose_into_native_ops():
    import sympy
    import symdl
    from codegen.decompose import decompose
    from symdl.ir.rewrite import toposort
    sec = symdl.elementwise(lambda t: sympy.sec(t) + sympy.cot(t), name="catalogue_sec")
    a = x("a", (4,))
    (out,) = decompose([B.emit(sec.op, (a,))])
    assert all(has_lowering(m.op) for m in toposort([out]))
    v = np.array([0.3, 0.7, 1.1, -0.4])
    np.testing.assert_allclose(interpret([out], {a: v})[0], 1 / np.cos(v) + 1 / np.tan(v), rtol=1e-13)
    assert F.FUNCTIONS[sec.op].declared is None
