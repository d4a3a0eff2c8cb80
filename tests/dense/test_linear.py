"""linear: y = x @ w + b with the backward of seed 002 (transposed matrix products).

Proven against `jax.vjp` of `jnp.matmul` (+ b) under hypothesis (any number of leading dims,
with and without bias, float32/float64), against `jaxconv.reference.linear_grad`'s loops, with
check_grads(order=2), explicit numbers, and the errors for mismatched shapes and dtypes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

from jaxconv import linear, reference
from jaxconv.testing import oracle
from tests.support.numerics import assert_close, value_and_vjp


@given(
    st.lists(st.integers(1, 3), min_size=0, max_size=3),
    st.integers(1, 5),
    st.integers(1, 5),
    st.booleans(),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**16),
)
def test_linear_vjp_matches_autodiff(lead, n_in, n_out, has_bias, dtype, seed):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(*lead, n_in)), dtype)
    w = jnp.asarray(rng.normal(size=(n_in, n_out)), dtype)
    b = jnp.asarray(rng.normal(size=(n_out,)), dtype) if has_bias else None
    g = jnp.asarray(rng.normal(size=(*lead, n_out)), dtype)
    y, grads = value_and_vjp(linear, x, w, b, g=g)
    y_ref, grads_ref = value_and_vjp(oracle.linear, x, w, b, g=g)
    assert y.dtype == x.dtype
    assert_close(y, y_ref)
    for got, want in zip(grads, grads_ref):
        assert (got is None) == (want is None)
        if got is not None:
            assert_close(got, want)


def test_linear_matches_reference_and_transposed_products():
    """Seed 002: dx = g wᵀ, dw = xᵀ g (summed over every leading dim), db = Σ g."""
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    g = rng.normal(size=(2, 3, 5))
    y, vjp = jax.vjp(linear, jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    assert_close(y, reference.linear(x, w, b))
    for got, want in zip(vjp(jnp.asarray(g)), reference.linear_grad(x, w, g)):
        assert_close(got, want)
    dx, dw, db = vjp(jnp.asarray(g))
    assert_close(dx, g @ w.T)
    assert_close(dw, x.reshape(-1, 4).T @ g.reshape(-1, 5))
    assert_close(db, g.sum((0, 1)))


def test_linear_explicit_numbers():
    x = jnp.array([[1.0, 2.0]])
    w = jnp.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    y, vjp = jax.vjp(linear, x, w, jnp.array([0.5, 0.0, 0.0]))
    np.testing.assert_array_equal(y, [[5.5, 2.0, -1.0]])
    dx, dw, db = vjp(jnp.array([[1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(dx, [[-1.0, 2.0]])
    np.testing.assert_array_equal(dw, [[1.0, 0.0, 2.0], [2.0, 0.0, 4.0]])
    np.testing.assert_array_equal(db, [1.0, 0.0, 2.0])


def test_linear_check_grads_order_2_and_residuals():
    rng = np.random.default_rng(1)
    x, w, b = (jnp.asarray(rng.normal(size=s)) for s in [(3, 4), (4, 2), (2,)])
    check_grads(linear, (x, w, b), order=2, modes=["rev"])
    check_grads(lambda x, w: linear(x, w), (x, w), order=2, modes=["rev"])
    leaves = jax.eval_shape(lambda *a: jax.tree_util.tree_leaves(jax.vjp(linear, *a)[1]), x, w, b)
    assert [a.shape for a in leaves] == [(3, 4), (4, 2)]  # x and w: what dw and dx need
