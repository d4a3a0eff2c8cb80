"""Numerical helpers the tests share: per-dtype tolerances, `assert_close`, and jitted
value-and-VJP evaluation."""

from functools import partial

import jax
import numpy as np

# Relative tolerances of explicit VJP vs autodiff, per dtype (errors are measured against the
# largest magnitude of the reference, so cancellation in single entries does not inflate them).
TOL = {np.dtype("float64"): 1e-12, np.dtype("float32"): 1e-5}


def assert_close(actual, expected, dtype=None, tol=None, err_msg=""):
    """max |actual - expected| <= tol * max(1, max |expected|)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, err_msg)
    if tol is None:
        tol = TOL[np.dtype(dtype or expected.dtype)]
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    wide = np.complex128 if np.iscomplexobj(actual) or np.iscomplexobj(expected) else np.float64
    err = float(np.max(np.abs(actual.astype(wide) - expected.astype(wide)), initial=0.0))
    assert err <= tol * scale, f"max abs err {err:.3g} > {tol:.1g} * {scale:.3g} {err_msg}"


def _cotangent(f, args, seed):
    """A random normal cotangent of f's output shape and dtype."""
    out = jax.eval_shape(f, *args)
    return np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)


def _pullback(f, args, g):
    y, vjp = jax.vjp(f, *args)
    return y, vjp(g.astype(y.dtype))


def vjp_jit(f, *args, seed=0):
    """(y, grads) of f at args for a random normal cotangent, as one jitted computation.

    One compile per call instead of one per primitive: keeps the hypothesis sweeps fast.
    """
    return jax.jit(lambda a, g: _pullback(f, a, g))(args, _cotangent(f, args, seed))


def vjp_pair(f, ref, *args, seed=0):
    """((y, grads), (y_ref, grads_ref)): `vjp_jit` of f and of its reference at the same args
    and cotangent, both in one compiled program (one compile per hypothesis example)."""
    g = _cotangent(ref, args, seed)
    return jax.jit(lambda a, g: (_pullback(f, a, g), _pullback(ref, a, g)))(args, g)


def value_and_vjp(f, *args, g):
    """(f(*args), the VJP of f at args applied to g), forward and backward in one jit (cached
    per f and shapes, so pass module-level functions)."""
    return _value_and_vjp(f, args, g)


@partial(jax.jit, static_argnums=0)
def _value_and_vjp(f, args, g):
    y, vjp = jax.vjp(f, *args)
    return y, vjp(g)
