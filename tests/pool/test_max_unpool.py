"""max_unpool: the scatter of max_pool's indices and its gather gradient (the round trip with
max_pool's VJP: test_max_pool.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from jaxconv import max_pool, max_unpool
from tests.support.numerics import assert_close


def test_max_unpool_gradient_is_gather():
    rng = np.random.default_rng(1)
    idx = jnp.asarray([[[0], [3], [3], [-1]]], jnp.int32)  # a repeat and one out of range
    y = jnp.asarray(rng.normal(size=(1, 4, 1)))
    out = max_unpool(y, idx, (5,))
    np.testing.assert_allclose(out[0, :, 0], [y[0, 0, 0], 0, 0, y[0, 1, 0] + y[0, 2, 0], 0])
    d = jnp.asarray(rng.normal(size=(1, 5, 1)))
    dy = jax.vjp(lambda y: max_unpool(y, idx, (1, 5, 1)), y)[1](d)[0]
    np.testing.assert_allclose(dy[0, :, 0], [d[0, 0, 0], d[0, 3, 0], d[0, 3, 0], 0])
    check_grads(lambda y: max_unpool(y, idx, (5,)), (y,), order=2, modes=["rev"])


def test_unpool_channels_first():
    x = jnp.asarray(
        np.random.default_rng(2).permutation(2 * 3 * 6 * 4).reshape(2, 3, 6, 4), jnp.float64
    )
    y, idx = max_pool(x, 2, return_indices=True, layout="channels_first")
    back = max_unpool(y, idx, (6, 4), layout="channels_first")
    assert_close(max_pool(back, 2, layout="channels_first"), y)
    assert int((back != 0).sum()) == y.size
