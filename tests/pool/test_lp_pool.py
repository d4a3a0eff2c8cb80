"""lp_pool: explicit VJP == autodiff of a plain `lax.reduce_window` forward (`oracle.lp_pool`),
the zero window's gradient, `jaxconv.reference` and PyTorch's lp_pool2d."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxconv import lp_pool, reference
from jaxconv.testing import oracle
from tests.pool.cases import AVG_KW, cases, full, kwargs, run
from tests.support.numerics import assert_close


@given(cases(max_rank=2), st.sampled_from([1.0, 2, 3.0, 1.5]))
def test_lp_pool_vjp_matches_autodiff(case, p):
    rng = np.random.default_rng(case["seed"])
    x = jnp.asarray(rng.uniform(0.5, 2.0, size=full(case, case["size"])), case["dtype"])
    ours = lambda x: lp_pool(x, p, case["window"], **kwargs(case, *AVG_KW))  # noqa: E731
    y, g, dx, y_ref, dx_ref = run(
        ours, x, rng, lambda x: oracle.lp_pool(x, p, case["window"], **kwargs(case, *AVG_KW))
    )
    assert_close(y, y_ref)
    assert_close(dx, dx_ref)


def test_lp_pool_zero_window_has_zero_gradient_and_matches_reference():
    """p = 2, 2x2 windows: three windows are all zeros (y = 0: gradient 0 by convention, not
    the NaN of 0/0), one holds 3 and 4: y = (3² + 4²)^(1/2) = 5 and dy/dx = x^(p-1) y^(1-p)
    = x / 5, i.e. 0.6 and 0.8 (and 0 for its two zero cells)."""
    x = np.zeros((1, 4, 4, 1))
    x[0, 2:, 2:, 0] = [[3.0, 4.0], [0.0, 0.0]]
    dx = jax.grad(lambda x: lp_pool(x, 2, 2).sum())(jnp.asarray(x))
    assert np.isfinite(dx).all()
    y = np.sqrt(3.0**2 + 4.0**2)
    want = np.zeros((4, 4))
    want[2, 2:] = np.array([3.0, 4.0]) / y
    np.testing.assert_allclose(dx[0, :, :, 0], want)
    xr = np.random.default_rng(5).uniform(0.1, 1, size=(2, 7, 5, 2))
    kw = dict(stride=2, padding=1, ceil_mode=True)
    y, vjp = jax.vjp(lambda x: lp_pool(x, 3.0, 3, **kw), jnp.asarray(xr))
    assert_close(y, reference.lp_pool(xr, 3.0, 3, **kw))
    g = np.random.default_rng(6).normal(size=y.shape)
    assert_close(vjp(g)[0], reference.lp_pool_grad(xr, 3.0, g, window=3, **kw))


def test_lp_pool_against_torch():
    torch = pytest.importorskip("torch")
    xn = np.random.default_rng(12).uniform(0.1, 1, size=(2, 3, 8, 6))
    for p, k, s in [(2.0, 2, 2), (3.0, (3, 2), 1), (1.5, 3, 2)]:
        xt = torch.tensor(xn, requires_grad=True)
        yt = torch.nn.functional.lp_pool2d(xt, p, k, s)
        yt.sum().backward()
        y, vjp = jax.vjp(
            lambda x, p=p, k=k, s=s: lp_pool(x, p, k, stride=s, layout="channels_first"), xn
        )
        assert_close(y, yt.detach().numpy())
        assert_close(vjp(jnp.ones_like(y))[0], xt.grad.numpy())
