"""Shared test setup: float64 on, highest matmul precision, strict rank and dtype promotion,
hypothesis profiles, tolerances."""

import os
from functools import partial

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")
# JAX's strict settings (JAX's, equinox's and many users' suites run with them): no jaxconv path
# may rely on implicit rank or dtype promotion.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# "ci" (default) keeps the whole suite within a few minutes on 2 cores; "thorough" for local runs;
# "quick" (5 examples per property) for the GPU check (experiments/gpu_check.sh), compile-bound.
_PROFILE = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=25, derandomize=True, **_PROFILE)
settings.register_profile("thorough", max_examples=300, **_PROFILE)
settings.register_profile("quick", max_examples=5, derandomize=True, **_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def vjp_jit(f, *args, seed=0):
    """(y, grads) of f at args for a random normal cotangent, as one jitted computation.

    One compile per call instead of one per primitive: keeps the hypothesis sweeps fast.
    """
    out = jax.eval_shape(f, *args)
    g = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)

    def run(args, g):
        y, vjp = jax.vjp(f, *args)
        return y, vjp(g)

    return jax.jit(run)(args, g)


def value_and_vjp(f, *args, g):
    """(f(*args), the VJP of f at args applied to g), forward and backward in one jit (cached
    per f and shapes, so pass module-level functions)."""
    return _value_and_vjp(f, args, g)


@partial(jax.jit, static_argnums=0)
def _value_and_vjp(f, args, g):
    y, vjp = jax.vjp(f, *args)
    return y, vjp(g)
