"""global_avg_pool and global_max_pool: values and VJP against jnp.mean / jnp.max, grad-of-grad,
and global max's tie and NaN rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxconv import global_avg_pool, global_max_pool
from tests.pool.cases import LAYOUTS
from tests.support.numerics import assert_close


@pytest.mark.parametrize("layout", LAYOUTS)
def test_global_pools(layout):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(2, 3, 4, 5, 3)))
    axes = (1, 2, 3) if layout == "channels_last" else (2, 3, 4)
    g = jnp.asarray(rng.normal(size=(2, 3)))
    for ours, ref in [
        (global_avg_pool, lambda x: jnp.mean(x, axes)),
        (global_max_pool, lambda x: jnp.max(x, axes)),
    ]:
        y, vjp = jax.vjp(lambda x, ours=ours: ours(x, layout=layout), x)
        y_ref, vjp_ref = jax.vjp(ref, x)
        assert_close(y, y_ref)
        assert_close(vjp(g)[0], vjp_ref(g)[0])
        check_grads(
            jax.jit(lambda x, ours=ours: ours(x, layout=layout)), (x,), order=2, modes=["rev"]
        )


def test_global_max_pool_ties_and_nan_go_to_the_first():
    x = jnp.array([[2.0, 1.0], [1.0, jnp.nan], [2.0, 3.0], [0.0, jnp.nan]])[None]  # (1, 4, 2)
    y, vjp = jax.vjp(global_max_pool, x)
    assert y[0, 0] == 2.0 and np.isnan(y[0, 1])
    dx = vjp(jnp.ones((1, 2)))[0][0]
    np.testing.assert_array_equal(dx[:, 0], [1, 0, 0, 0])  # the first of the two 2s
    np.testing.assert_array_equal(dx[:, 1], [0, 1, 0, 0])  # the first NaN
