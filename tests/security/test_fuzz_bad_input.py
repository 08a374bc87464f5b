"""Bad input over the public API (issue 10 item 6, SPEC §7): whatever a
caller passes, a public function either works or raises TypeError or
ValueError (naming what was wrong) - never another exception type, never a
crash of native code.

Hypothesis draws argument lists from a pool of awkward values (wrong types,
shapes, dtypes, labels, NaN, huge and negative numbers, nested containers)
for each public function.  The pure-Python calls run in this process; the
calls that compile and run native code (compile, export, load, the
transforms) run in a child process, so a crash would be seen as a death of
the child, not of the test run.  Bounded for CI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symdl

ALLOWED = (TypeError, ValueError)

# awkward values: each is a valid Python object that some argument might get
_POOL = [
    None, True, 0, -1, 3, 2 ** 70, 0.5, -0.0, float("nan"), float("inf"), 1e308, "abc", "SSCB", "ZZ", b"x",
    [], [1.0, 2.0], [[1.0], [2.0, 3.0]], (), (1, 2), {}, {"a": 1.0}, {1, 2}, object(), print, slice(1, 2),
    np.float16(1.0), np.int64(2), np.array(1.0), np.array([1.0, np.nan]), np.zeros((0,)), np.zeros((2, 0, 3)),
    np.ones((2, 3)), np.ones((3, 2, 1, 4)), np.ones((2, 2), dtype=np.complex128), np.array(["a", "b"]),
    np.ones((2, 3), dtype=np.float32), np.ones((2, 3), dtype=">f8"), np.ones((2, 2), dtype=bool),
    np.arange(6).reshape(2, 3), np.ones(3, dtype=object),
]


def _dl(kind: int):
    return [symdl.dlarray(np.ones((4, 4, 1, 2)), "SSCB"), symdl.dlarray(np.ones((3, 5)), "CB"),
            symdl.dlarray(np.ones(3)), symdl.dlarray(np.ones((2, 3, 4)), "CBT")][kind % 4]


values = st.one_of(st.sampled_from(_POOL), st.integers(0, 3).map(_dl))

# public functions taking positional data arguments, with how many they need
IN_PROCESS = {
    "dlarray": (symdl.dlarray, 1, 3), "extractdata": (symdl.extractdata, 1, 1), "dims": (symdl.dims, 1, 1),
    "finddim": (symdl.finddim, 2, 2), "stripdims": (symdl.stripdims, 1, 1),
    "relu": (symdl.relu, 1, 1), "leakyrelu": (symdl.leakyrelu, 1, 2), "elu": (symdl.elu, 1, 2),
    "gelu": (symdl.gelu, 1, 2), "softmax": (symdl.softmax, 1, 1), "sigmoid": (symdl.sigmoid, 1, 1),
    "crossentropy": (symdl.crossentropy, 2, 2), "mse": (symdl.mse, 2, 2), "l1loss": (symdl.l1loss, 2, 2),
    "l2loss": (symdl.l2loss, 2, 2), "huber": (symdl.huber, 2, 2), "onehotencode": (symdl.onehotencode, 1, 2),
    "onehotdecode": (symdl.onehotdecode, 2, 2), "fullyconnect": (symdl.fullyconnect, 3, 3),
    "dlconv": (symdl.dlconv, 3, 3), "maxpool": (symdl.maxpool, 2, 2), "avgpool": (symdl.avgpool, 2, 2),
    "batchnorm": (symdl.batchnorm, 3, 5), "layernorm": (symdl.layernorm, 3, 3),
    "groupnorm": (symdl.groupnorm, 4, 4), "instancenorm": (symdl.instancenorm, 3, 3),
    "crosschannelnorm": (symdl.crosschannelnorm, 2, 2), "dropout": (symdl.dropout, 1, 2),
    "embed": (symdl.embed, 2, 2), "sgdmupdate": (symdl.sgdmupdate, 3, 4),
    "adamupdate": (symdl.adamupdate, 5, 6), "rmspropupdate": (symdl.rmspropupdate, 3, 4),
    "sum": (symdl.sum, 1, 2), "reshape": (symdl.reshape, 2, 2), "transpose": (symdl.transpose, 1, 2),
    "concatenate": (symdl.concatenate, 1, 2), "stack": (symdl.stack, 1, 2), "matmul": (symdl.matmul, 2, 2),
    "where": (symdl.where, 3, 3), "clip": (symdl.clip, 3, 3), "power": (symdl.power, 2, 2),
    "dlfeval": (symdl.dlfeval, 1, 3),
    "dlgradient": (lambda *a: symdl.dlfeval(lambda: symdl.dlgradient(*a)), 2, 3),  # (outside dlfeval: RuntimeError)
    "grad": (symdl.grad, 1, 2), "jacobian": (symdl.jacobian, 1, 2), "hessian": (symdl.hessian, 1, 2),
    "dlaccelerate": (symdl.dlaccelerate, 1, 1), "elementwise": (symdl.elementwise, 1, 1),
}
IN_PROCESS.update({
    "dltranspconv": (symdl.dltranspconv, 3, 4), "lstm": (symdl.lstm, 6, 6), "gru": (symdl.gru, 5, 5),
    "attention": (symdl.attention, 4, 5), "interp1": (symdl.interp1, 3, 4), "maxunpool": (symdl.maxunpool, 3, 3),
    "einsum": (symdl.einsum, 2, 3), "tensordot": (symdl.tensordot, 2, 3), "pad": (symdl.pad, 2, 3),
    "split": (symdl.split, 2, 3), "sort": (symdl.sort, 1, 2), "var": (symdl.var, 1, 3), "roll": (symdl.roll, 2, 3),
    "repeat": (symdl.repeat, 2, 3), "tile": (symdl.tile, 2, 2), "diag": (symdl.diag, 1, 2),
    "cross": (symdl.cross, 2, 2), "argmax": (symdl.argmax, 1, 2), "select": (symdl.select, 2, 3),
    "linalg.inv": (symdl.linalg.inv, 1, 1), "linalg.solve": (symdl.linalg.solve, 2, 2),
    "linalg.norm": (symdl.linalg.norm, 1, 3), "linalg.eigh": (symdl.linalg.eigh, 1, 2),
    "vmap": (lambda f, *a: symdl.vmap(f)(*a), 1, 3),
    "jvp": (lambda *a: symdl.jvp(lambda x: symdl.sin(x), *a), 2, 2),
    "vjp": (lambda *a: symdl.vjp(lambda x: symdl.sin(x), *a)[1](a[0]), 1, 1),
})


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("name", sorted(IN_PROCESS))
def test_bad_input_is_a_type_or_value_error(name, data):
    fun, lo, hi = IN_PROCESS[name]
    n = data.draw(st.integers(lo, hi), label="number of arguments")
    args = [data.draw(values, label=f"argument {k}") for k in range(n)]
    try:
        fun(*args)
    except ALLOWED:
        pass


# calls that trace, compile and run native code: in a child, many cases per run
CHILD = textwrap.dedent(r'''
    import os, sys, pickle, tempfile, random, traceback
    import numpy as np
    import symdl
    pool = pickle.loads(bytes.fromhex(sys.argv[1]))
    rng = random.Random(int(sys.argv[2]))
    out = tempfile.mkdtemp()
    def f(x):
        return symdl.sum(symdl.sin(x) * x)
    calls = [
        lambda a, b: symdl.compile(f, a),
        lambda a, b: symdl.compile(f, np.ones(3))(a),
        lambda a, b: symdl.grad(f)(a),
        lambda a, b: symdl.value_and_grad(f, argnums=b)(a),
        lambda a, b: symdl.jacobian(lambda x: x * x)(a),
        lambda a, b: symdl.hessian(f)(a),
        lambda a, b: symdl.hvp(f)(a, b),
        lambda a, b: symdl.derivative(lambda x: symdl.sin(x), b)(a),
        lambda a, b: symdl.export(f, a, path=os.path.join(out, "lib.so"), name=b),
        lambda a, b: symdl.export(f, np.ones(2), path=b),
        lambda a, b: symdl.load(a),
        lambda a, b: symdl.dlfeval(symdl.dlaccelerate(lambda x: symdl.dlgradient(f(x), x)), a),
    ]
    bad = 0
    for case in range(int(sys.argv[3])):
        k = rng.randrange(len(calls))
        a, b = rng.choice(pool), rng.choice(pool)
        try:
            calls[k](a, b)
        except (TypeError, ValueError):
            pass
        except Exception as err:
            bad += 1
            print(f"case {case}: call {k} with {a!r:.60} / {b!r:.60}: {type(err).__name__}: {err}"[:400])
    print(f"done {bad}")
''')


def _picklable_pool() -> list:
    import pickle
    keep = []
    for v in _POOL + [_dl(k) for k in range(4)]:
        try:
            pickle.dumps(v)
        except Exception:
            continue
        keep.append(v)
    return keep


@pytest.mark.parametrize("seed", [1, 2])
def test_bad_input_to_compiling_calls_in_a_child(seed, tmp_path):
    import pickle
    env = dict(os.environ, SYMDL_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]),
                                                    env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", CHILD, pickle.dumps(_picklable_pool()).hex(), str(seed), "400"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"the child died ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip().endswith("done 0"), proc.stdout[-3000:]
