"""avg_pool: explicit VJP == `jax.vjp` of a plain `lax.reduce_window` sum over PyTorch's divisor
(`oracle.avg_pool`; hypothesis over ranks 1-3, every padding form, ceil_mode, layouts,
count_include_pad, divisor_override, float32/float64), and values/VJP against
`jaxconv.reference`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxconv import avg_pool, reference
from jaxconv.testing import oracle
from tests.pool.cases import AVG_KW, cases, full, kwargs, out_size, run
from tests.support.numerics import assert_close


@given(cases(), st.booleans(), st.sampled_from([None, 3, -2]))
def test_avg_pool_vjp_matches_lax_autodiff(case, include_pad, override):
    rng = np.random.default_rng(case["seed"])
    x = jnp.asarray(rng.normal(size=full(case, case["size"])), case["dtype"])

    def ours(x):
        return avg_pool(
            x,
            case["window"],
            count_include_pad=include_pad,
            divisor_override=override,
            **kwargs(case, *AVG_KW),
        )

    def ref(x):
        return oracle.avg_pool(
            x,
            case["window"],
            count_include_pad=include_pad,
            divisor_override=override,
            **kwargs(case, *AVG_KW),
        )

    y, g, dx, y_ref, dx_ref = run(ours, x, rng, ref)
    assert y.shape == full(case, out_size(case)) and y.dtype == x.dtype
    assert_close(y, y_ref)
    assert_close(dx, dx_ref)


@pytest.mark.parametrize(
    "kw",
    [
        dict(window=3, stride=2, padding=1, ceil_mode=True),
        dict(window=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        dict(window=(2, 3), stride=(3, 1), padding=((1, 0), (1, 1)), divisor_override=4),
    ],
)
def test_avg_pool_matches_reference(kw):
    x = np.random.default_rng(3).normal(size=(2, 7, 6, 3))
    y, vjp = jax.vjp(lambda x: avg_pool(x, **kw), jnp.asarray(x))
    assert_close(y, reference.avg_pool(x, **kw))
    g = np.random.default_rng(4).normal(size=y.shape)
    assert_close(vjp(jnp.asarray(g))[0], reference.avg_pool_grad(x.shape, g, **kw))
