"""relu: the explicit VJP (gradient only where x > 0, relu'(0) = 0) and its boolean residual.

Proven against `jax.vjp` of `jax.nn.relu` (testing.oracle; JAX's rule gives 0 at x = 0, where
`jnp.maximum`'s autodiff would split the gradient 1/2 : 1/2), against
`jaxconv.reference.relu_grad` (seed 002's rule),
with check_grads(order=2) away from the kink, and by reading what the custom_vjp saves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

from jaxconv import reference, relu
from jaxconv.testing import oracle
from tests.support.numerics import assert_close, value_and_vjp


@given(
    st.lists(st.integers(1, 4), min_size=0, max_size=4),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**16),
)
def test_relu_vjp_matches_autodiff(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    x = jnp.asarray(np.where(rng.random(size=shape) < 0.2, 0.0, x), dtype)  # exact zeros too
    g = jnp.asarray(rng.normal(size=shape), dtype)
    y, (dx,) = value_and_vjp(relu, x, g=g)
    y_ref, (dx_ref,) = value_and_vjp(oracle.relu, x, g=g)
    assert y.dtype == x.dtype
    assert_close(y, y_ref)
    assert_close(dx, dx_ref)
    assert_close(dx, reference.relu_grad(x, g), dtype=dtype)


def test_relu_gradient_at_zero_is_zero_and_nan_stays_nan():
    x = jnp.array([-2.0, -0.0, 0.0, 1e-30, 3.0, jnp.nan])
    y, vjp = jax.vjp(relu, x)
    np.testing.assert_array_equal(y[:5], [0, 0, 0, 1e-30, 3])
    assert np.isnan(y[5])  # like PyTorch
    np.testing.assert_array_equal(vjp(jnp.full(6, 7.0))[0], [0, 0, 0, 7, 7, 0])


def test_relu_residual_is_a_boolean_mask():
    """The VJP closure holds one bool per element: 1/4 of float32's bytes, not x."""
    x = jax.ShapeDtypeStruct((8, 32, 32, 16), jnp.float32)
    leaves = jax.eval_shape(lambda x: jax.tree_util.tree_leaves(jax.vjp(relu, x)[1]), x)
    assert [(jnp.dtype(a.dtype), a.shape) for a in leaves] == [(jnp.dtype(bool), x.shape)]
    assert np.prod(x.shape) * 1 == np.prod(x.shape) * 4 / 4


def test_relu_check_grads_order_2():
    x = jnp.asarray(
        np.random.default_rng(0).choice([-1, 1], (3, 4))
        * np.random.default_rng(1).uniform(0.1, 1.0, (3, 4))
    )
    check_grads(relu, (x,), order=2, modes=["rev"])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_relu_half_precision(dtype):
    x = jnp.array([-1.0, 0.0, 2.0], dtype)
    y, vjp = jax.vjp(relu, x)
    assert y.dtype == dtype and vjp(jnp.ones_like(y))[0].dtype == dtype
