"""Every valid numpy array is accepted by the compiled paths (issue 10 item 6):
any byte order, 0-d, strided, Fortran-ordered, read-only, and numbers of
other dtypes follow the dlarray rule (float32/float64 stay, the rest compute
in float64).  Expected values are numpy's."""

import numpy as np
import pytest

import symdl


def _sumsq(x):
    return symdl.sum(x * x)


def _variants():
    base = np.array([[1.5, -2.0, 0.25], [3.0, 0.5, -1.0]])
    read_only = base.copy()
    read_only.flags.writeable = False
    yield "big-endian", base.astype(">f8")
    yield "big-endian float32", base.astype(">f4")
    yield "0-d big-endian", np.array(1.25, dtype=">f8")
    yield "0-d read-only", np.frombuffer(np.array([2.5]).tobytes()).reshape(())
    yield "read-only", read_only
    yield "strided", np.arange(12.0).reshape(3, 4)[::2, ::2]
    yield "fortran", np.asfortranarray(base)
    yield "float16", base.astype(np.float16)
    yield "integer", np.array([[1, -2, 3]])


VARIANTS = dict(_variants())


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("transform", ["grad", "value_and_grad", "hessian", "jacobian", "compile", "dlaccelerate"])
def test_valid_arrays_are_accepted(name, transform):
    x = VARIANTS[name]
    ref = np.asarray(x, dtype=np.float64)
    if transform == "grad":
        np.testing.assert_allclose(symdl.grad(_sumsq)(x), 2 * ref, rtol=1e-6)
    elif transform == "value_and_grad":
        v, g = symdl.value_and_grad(_sumsq)(x)
        np.testing.assert_allclose(v, np.sum(ref * ref), rtol=1e-6)
        np.testing.assert_allclose(g, 2 * ref, rtol=1e-6)
    elif transform == "hessian":
        h = np.asarray(symdl.hessian(_sumsq)(x))
        np.testing.assert_allclose(h.reshape(ref.size, ref.size), 2 * np.eye(ref.size), rtol=1e-6)
    elif transform == "jacobian":
        j = np.asarray(symdl.jacobian(lambda v: v * v)(x))
        np.testing.assert_allclose(j.reshape(ref.size, ref.size), np.diag(2 * ref.ravel()), rtol=1e-6)
    elif transform == "compile":
        f = symdl.compile(_sumsq, x)
        np.testing.assert_allclose(f(x), np.sum(ref * ref), rtol=1e-6)
        # the same values in the other byte order hit the same compiled code
        np.testing.assert_allclose(f(x.astype(x.dtype.newbyteorder())), np.sum(ref * ref), rtol=1e-6)
    else:
        acc = symdl.dlaccelerate(lambda v: symdl.dlgradient(_sumsq(v), v))
        g = symdl.dlfeval(acc, symdl.dlarray(x))
        np.testing.assert_allclose(symdl.extractdata(g), 2 * ref, rtol=1e-6)
