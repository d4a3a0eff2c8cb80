"""min_pool, and integer/bool inputs to the max-type pools.

- min_pool: values and explicit VJP == `jax.vjp` of the plain-JAX references
  (`oracle.min_pool`: lax.reduce_window min, or argmin over the stacked window cells for each
  tie policy) over hypothesis-drawn ranks, windows, strides, paddings, dilations, ceil_mode and
  layouts; Flax's `min_pool` values; its own ties (first/last minimum, not -max_pool(-x)'s).
- integer and bool x for max_pool, min_pool and global_max_pool: values equal to lax's
  `reduce_window` max/min (and jnp.max), indices equal to those of the same values as floats,
  and derivatives as JAX gives any integer input: float0 tangents and gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax import lax

from jaxconv import global_max_pool, max_pool, max_unpool, min_pool
from jaxconv.testing import oracle
from tests.pool.cases import MAX_KW, cases, distinct, full, kwargs, out_size, run
from tests.support.numerics import assert_close


@given(cases(dilation=True), st.sampled_from(["first", "last"]))
def test_min_pool_vjp_matches_autodiff(case, ties):
    rng = np.random.default_rng(case["seed"])
    x = distinct(case, rng)
    kw = kwargs(case, *MAX_KW)
    ours = lambda x: min_pool(x, case["window"], ties=ties, **kw)  # noqa: E731
    ref = lambda x: oracle.min_pool(x, case["window"], ties=ties, **kw)  # noqa: E731
    y, g, dx, y_ref, dx_ref = run(ours, x, rng, ref)
    assert y.shape == full(case, out_size(case)) and y.dtype == x.dtype
    assert_close(y, y_ref)
    assert_close(dx, dx_ref)


def test_min_pool_ties_are_its_own():
    """ties="first"/"last" pick the first/last *minimum* in row-major window order; "split"
    shares g among them. -max_pool(-x, ties="last") would pick the same cells (the order of
    -x's maxima is that of x's minima); the routing is checked directly."""
    x = jnp.asarray([[0.0, 0.0], [1.0, 0.0]]).reshape(1, 2, 2, 1)

    def dx(ties):
        return jax.grad(lambda x: min_pool(x, 2, ties=ties).sum())(x).ravel().tolist()

    assert dx("first") == [1.0, 0.0, 0.0, 0.0]
    assert dx("last") == [0.0, 0.0, 0.0, 1.0]
    np.testing.assert_allclose(dx("split"), [1 / 3, 1 / 3, 0.0, 1 / 3])
    y, idx = min_pool(x, 2, ties="last", return_indices=True)
    assert idx.ravel().tolist() == [3]
    assert_close(
        max_unpool(jnp.ones_like(y), idx, x.shape), jnp.asarray(dx("last")).reshape(x.shape)
    )


def test_min_pool_nan_wins_and_padding_never_does():
    x = jnp.asarray([3.0, jnp.nan, 1.0, 2.0]).reshape(1, 4, 1)
    assert np.isnan(min_pool(x, 2)[0, 0, 0]) and min_pool(x, 2)[0, 1, 0] == 1.0
    y = min_pool(jnp.asarray([5.0, 4.0, 6.0]).reshape(1, 3, 1), 3, stride=1, padding=1)
    assert y.ravel().tolist() == [4.0, 4.0, 4.0]


@pytest.mark.parametrize("many_border_runs", [False, True])
def test_padding_never_wins_against_an_equal_input(many_border_runs):
    """An input equal to the padding value (-inf for max_pool, an int's extremes, False)
    still wins its window: its index is returned and its gradient is not dropped -- on the
    no-copy path (static flags) and on the padded-copy path (masks, many border runs)."""
    n, k = (60, 61) if many_border_runs else (5, 3)  # 61 runs x 61 cells: the copy path
    x, pad = jnp.full((1, n, 1), -jnp.inf), k // 2
    real = k - pad  # window 0: `pad` padding cells, then inputs 0 .. real - 1, all -inf
    want = {"first": [0], "last": [real - 1], "split": list(range(real))}
    for ties in ("first", "last", "split"):
        f = lambda x, t=ties: max_pool(x, k, stride=1, padding=pad, ties=t, return_indices=True)  # noqa: E731
        (y, idx), vjp = jax.vjp(f, x)
        assert idx[0, 0, 0] == want[ties][0] and y[0, 0, 0] == -jnp.inf
        g = jnp.zeros_like(y).at[0, 0, 0].set(1.0)
        (dx,) = vjp((g, np.zeros(idx.shape, jax.dtypes.float0)))
        expected = np.zeros(n)
        expected[want[ties]] = 1.0 / len(want[ties])
        np.testing.assert_allclose(dx.ravel(), expected)
    b = jnp.zeros((1, 4, 1), bool)
    _, idx = max_pool(b, 3, stride=1, padding=1, return_indices=True)
    assert idx.ravel().tolist() == [0, 0, 1, 2]
    _, idx = min_pool(~b, 3, stride=1, padding=1, ties="last", return_indices=True)
    assert idx.ravel().tolist() == [1, 2, 3, 3]


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_min_pool_equals_flax(padding):
    pooling = pytest.importorskip("flax.linen.pooling")
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 6, 3)))
    got = min_pool(x, (3, 2), stride=(2, 1), padding=padding)
    assert_close(got, pooling.min_pool(x, (3, 2), strides=(2, 1), padding=padding))


# ------------------------------------------------------------------- integer and bool inputs

INT_DTYPES = [jnp.int8, jnp.uint8, jnp.int16, jnp.int32, jnp.int64, jnp.bool_]


def _ints(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    if dtype == jnp.bool_:
        return jnp.asarray(rng.integers(0, 2, size=shape).astype(bool))
    info = jnp.iinfo(dtype)  # the extremes included: the padding value must not win over them
    return jnp.asarray(rng.integers(info.min, int(info.max) + 1, size=shape), dtype)


@pytest.mark.parametrize(
    "dtype, layout",
    [(d, "channels_last" if i % 2 else "channels_first") for i, d in enumerate(INT_DTYPES)],
)
def test_integer_and_bool_inputs_equal_lax_reduce_window(dtype, layout):
    x = _ints(dtype, (2, 7, 6, 3) if layout == "channels_last" else (2, 3, 7, 6), 1)
    sp = (1, 2) if layout == "channels_last" else (2, 3)
    dims, strides, pads = [1] * 4, [1] * 4, [(0, 0)] * 4
    for a in sp:
        dims[a], strides[a], pads[a] = 3, 2, (1, 1)
    for pool, op, extreme in ((max_pool, lax.max, "min"), (min_pool, lax.min, "max")):
        if dtype == jnp.bool_:
            init = jnp.asarray(extreme == "max")
        else:
            init = jnp.asarray(getattr(jnp.iinfo(dtype), extreme), dtype)
        want = lax.reduce_window(x, init, op, dims, strides, pads)
        for ties in ("first", "last", "split"):
            y, idx = pool(x, 3, stride=2, padding=1, ties=ties, layout=layout, return_indices=True)
            assert y.dtype == x.dtype
            np.testing.assert_array_equal(y, want)
            # the same cells as for the values as floats (exact below 2**24 in float32 ... use
            # float64: every int32 is exact; int64 extremes are not compared this way)
            if dtype != jnp.int64:
                xf = x.astype(jnp.float64)
                _, idx_f = pool(
                    xf, 3, stride=2, padding=1, ties=ties, layout=layout, return_indices=True
                )
                np.testing.assert_array_equal(idx, idx_f)
    want = jnp.max(x, axis=sp)
    np.testing.assert_array_equal(global_max_pool(x, layout=layout), want)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_integer_inputs_have_float0_derivatives(dtype):
    """As JAX for any integer input: jvp's tangent and grad(allow_int=True) are float0; jit
    and vmap (size 0 too) run."""
    x = _ints(dtype, (2, 6, 5, 2), 2)
    zero = np.zeros(x.shape, jax.dtypes.float0)
    for f in (
        lambda x: max_pool(x, 2),
        lambda x: min_pool(x, 2, stride=1, ties="split"),
        global_max_pool,
    ):
        y, t = jax.jvp(f, (x,), (zero,))
        assert t.dtype == jax.dtypes.float0 and t.shape == y.shape
        g = jax.grad(lambda x, f=f: f(x).astype(jnp.float64).sum(), allow_int=True)(x)
        assert g.dtype == jax.dtypes.float0 and g.shape == x.shape
        np.testing.assert_array_equal(jax.jit(f)(x), f(x))
        np.testing.assert_array_equal(jax.vmap(f)(x[:, None]), f(x)[:, None])
        assert jax.vmap(f)(x[:0, None]).shape == (0, *f(x[:1]).shape)


def test_complex_inputs_are_a_type_error():
    x = jnp.ones((1, 4, 4, 1), jnp.complex64)
    for f in (lambda x: max_pool(x, 2), lambda x: min_pool(x, 2), global_max_pool):
        with pytest.raises(TypeError, match=r"`x.dtype` \(='complex64'\) must be a real"):
            f(x)
