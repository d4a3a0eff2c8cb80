"""max_pool: values, explicit VJP, indices, ties, NaN and residuals.

How its backward is proven (docs/testing.md):
- hypothesis over ranks 1-3, windows, strides, every padding form, ceil_mode, layouts,
  float32/float64: the explicit VJP == `jax.vjp` of a plain `lax.reduce_window` forward
  (`oracle.max_pool`; ceil_mode as extra high padding, which lax's autodiff handles);
- window dilation, which lax's autodiff cannot do for max (asserted below), and every tie policy:
  a literal NumPy loop in this file and `jaxconv.reference`;
- NaN, ties, residual bytes and the one-loop residual (`reduce.one_pass`). Cross-op checks (seed
  001's routing, check_grads(order=2), PyTorch, sharding): test_pools.py.
"""

from __future__ import annotations

from itertools import product

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax import lax

from jaxconv import avg_pool, global_max_pool, max_pool, max_unpool, reference
from jaxconv._core.native import pure_jax
from jaxconv.testing import oracle
from tests.pool.cases import (
    MAX_KW,
    assert_close_inf,
    cases,
    distinct,
    from_cl,
    full,
    kwargs,
    out_size,
    run,
    to_cl,
)
from tests.support.numerics import assert_close


@given(cases())
def test_max_pool_vjp_matches_lax_autodiff(case):
    rng = np.random.default_rng(case["seed"])
    x = distinct(case, rng)
    ours = lambda x: max_pool(x, case["window"], **kwargs(case, *MAX_KW))  # noqa: E731
    ref = lambda x: oracle.max_pool(x, case["window"], **kwargs(case, *MAX_KW))  # noqa: E731
    y, g, dx, y_ref, dx_ref = run(ours, x, rng, ref)
    assert y.shape == full(case, out_size(case)) and y.dtype == x.dtype
    assert_close(y, y_ref)
    assert_close(dx, dx_ref)


@given(cases(dilation=True))
def test_max_pool_dilated_matches_reference_indices_and_unpool(case):
    """Window dilation (any padding, ceil_mode): values and VJP against reference.py's loops;
    the returned flat indices point at the maxima; max_unpool(g, indices) equals the VJP."""
    rng = np.random.default_rng(case["seed"])
    x = distinct(case, rng)
    f = lambda x: max_pool(x, case["window"], return_indices=True, **kwargs(case, *MAX_KW))  # noqa: E731
    g = jnp.asarray(rng.normal(size=jax.eval_shape(f, x)[0].shape), x.dtype)

    @jax.jit
    def both(x, g):
        (y, idx), vjp = jax.vjp(f, x)
        dx = vjp((g, np.zeros(idx.shape, jax.dtypes.float0)))[0]
        return y, idx, dx, max_unpool(g, idx, x.shape, layout=case["layout"])

    y, idx, dx, unpooled = both(x, g)
    geo = dict(
        window=case["window"],
        stride=case["s"],
        padding=case["pairs"],
        dilation=case["dilation"],
        ceil_mode=case["ceil_mode"],
    )
    y_ref, offsets = reference.max_pool(to_cl(x, case), **geo)
    assert_close_inf(to_cl(y, case), y_ref, dtype=case["dtype"])
    dx_ref = reference.max_pool_grad(to_cl(x, case).shape, offsets, to_cl(g, case), **geo)
    assert_close(dx, from_cl(dx_ref, case), dtype=case["dtype"])
    assert idx.dtype == jnp.int32 and idx.shape == y.shape
    xf = to_cl(x, case).reshape(x.shape[0], -1, to_cl(x, case).shape[-1])
    i = to_cl(idx, case).reshape(xf.shape[0], -1, xf.shape[-1])
    real = np.isfinite(to_cl(y, case).reshape(i.shape))  # else a window of padding only: -1
    assert ((i >= 0) == real).all()
    picked = np.take_along_axis(xf, np.maximum(i, 0), 1)
    np.testing.assert_array_equal(picked[real], to_cl(y, case).reshape(i.shape)[real])
    assert_close(unpooled, dx)


def test_lax_autodiff_cannot_do_dilated_max_pool():
    """Why the dilated case needs its own oracle: JAX's rule for reduce_window max
    (select_and_gather_add) raises for window dilation; jaxconv's routing has no such limit."""
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    f = lambda x: lax.reduce_window(
        x,
        -jnp.inf,
        lax.max,
        (1, 2, 2, 1),
        (1, 1, 1, 1),
        "VALID",  # noqa: E731
        window_dilation=(1, 2, 2, 1),
    ).sum()
    with pytest.raises(NotImplementedError, match="window dilation"):
        jax.grad(f)(x)
    dx = jax.grad(lambda x: max_pool(x, 2, stride=1, dilation=2).sum())(x)
    assert_close(dx[0, :, :, 0], np.pad(np.ones((2, 2)), ((2, 0), (2, 0))))  # winners: bottom right


def np_max_pool_grad(x, g, case, ties):
    """Literal loop (channels_last): g[i] to the window's maximum, NaN above every number;
    ties: the first (row-major), the last, or all tied cells sharing g[i] equally."""
    dx = np.zeros(x.shape)
    for n, i, c in product(range(x.shape[0]), np.ndindex(*g.shape[1:-1]), range(x.shape[-1])):
        cells = []
        for m in np.ndindex(*case["window"]):
            p = tuple(
                ia * s + ma * d - lo
                for ia, ma, s, d, (lo, _) in zip(i, m, case["s"], case["dilation"], case["pairs"])
            )
            inside = all(0 <= pa < na for pa, na in zip(p, x.shape[1:-1]))
            cells.append((x[(n, *p, c)] if inside else -np.inf, p if inside else None))
        vals = np.array([val for val, _ in cells])
        win = (
            np.flatnonzero(np.isnan(vals))
            if np.isnan(vals).any()
            else np.flatnonzero(vals == vals.max())
        )
        chosen = {"first": win[:1], "last": win[-1:], "split": win}[ties]
        for j in chosen:
            if cells[j][1] is not None:
                dx[(n, *cells[j][1], c)] += g[(n, *i, c)] / len(chosen)
    return dx


@given(cases(dilation=True, max_rank=2), st.sampled_from(["first", "last", "split"]))
def test_max_pool_ties_match_loop(case, ties):
    """Values from {0, 1, 2}: most windows hold several maxima."""
    rng = np.random.default_rng(case["seed"])
    x = jnp.asarray(rng.integers(0, 3, size=full(case, case["size"])), case["dtype"])
    f = lambda x: max_pool(x, case["window"], ties=ties, **kwargs(case, *MAX_KW))  # noqa: E731
    y, g, dx, y_ref, _ = run(
        f,
        x,
        rng,
        lambda x: oracle.max_pool(lax.stop_gradient(x), case["window"], **kwargs(case, *MAX_KW)),
    )
    assert_close_inf(y, y_ref)
    dx_ref = np_max_pool_grad(to_cl(x, case).astype(np.float64), to_cl(g, case), case, ties)
    assert_close(dx, from_cl(dx_ref, case), dtype=case["dtype"])


def test_ties_explicit():
    """A 2x2 window holding 5 twice: first/last pick one, split halves g between them."""
    x = jnp.array([[5.0, 1.0], [5.0, 2.0]]).reshape(1, 2, 2, 1)
    grad = {
        t: jax.grad(lambda x, t=t: 4.0 * max_pool(x, 2, ties=t).sum())(x)[0, :, :, 0]
        for t in ("first", "last", "split")
    }
    np.testing.assert_array_equal(grad["first"], [[4, 0], [0, 0]])
    np.testing.assert_array_equal(grad["last"], [[0, 0], [4, 0]])
    np.testing.assert_array_equal(grad["split"], [[2, 0], [2, 0]])
    # all-equal 3x3 window with 1 pixel of padding: split shares among the 4 input cells only
    # (the -inf padding never ties with a finite maximum).
    dx = jax.grad(lambda x: max_pool(x, 3, stride=2, padding=1, ties="split").sum())(
        jnp.ones((1, 2, 2, 1))
    )
    np.testing.assert_allclose(dx[0, :, :, 0], np.full((2, 2), 0.25))


@pytest.mark.parametrize(
    "ties,expected",
    [
        ("first", [[0, 1, 0], [0, 0, 0]]),
        ("last", [[0, 0, 0], [0, 1, 0]]),
        ("split", [[0, 0.5, 0], [0, 0.5, 0]]),
    ],
)
def test_nan_wins_and_takes_the_gradient(ties, expected):
    """PyTorch: a window holding NaN outputs NaN and its gradient goes to the NaN."""
    x = jnp.array([[1.0, jnp.nan, 9.0], [2.0, jnp.nan, 3.0]]).reshape(1, 2, 3, 1)
    f = lambda x: max_pool(x, (2, 3), ties=ties)  # noqa: E731
    assert np.isnan(f(x)).all()
    dx = jax.grad(lambda x: f(x).sum())(x)
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)
    y, idx = max_pool(x, (2, 3), return_indices=True)
    assert int(idx[0, 0, 0, 0]) == 1


def saved(f, x):
    """(dtype, shape) of every array the VJP closure of f at x holds: the custom_vjp residuals.
    Traced only (eval_shape): nothing runs."""
    leaves = jax.eval_shape(lambda x: jax.tree_util.tree_leaves(jax.vjp(f, x)[1]), x)
    return [(jnp.dtype(a.dtype), a.shape) for a in leaves]


def test_max_pool_residual_is_int8_offsets_not_x():
    """max_pool keeps the int8 offsets of the winners (y's shape), not x."""
    x = jax.ShapeDtypeStruct((4, 16, 16, 8), jnp.float32)
    nbytes = 4 * 16 * 16 * 8 * 4
    for kw, fraction in [(dict(window=2), 1 / 16), (dict(window=3, stride=1, padding=1), 1 / 4)]:
        y = jax.eval_shape(lambda x, kw=kw: max_pool(x, **kw), x)
        res = saved(lambda x, kw=kw: max_pool(x, **kw), x)
        assert res == [(jnp.dtype(jnp.int8), y.shape)], res
        assert np.prod(y.shape) == nbytes * fraction <= nbytes / 4
    res = saved(lambda x: max_pool(x, 3, stride=1, padding=1, ties="split"), x)
    assert res == [(jnp.dtype(jnp.uint8), x.shape)] * 2  # 9 cells: 2 bytes of tie bits each
    res = saved(lambda x: max_pool(x, (4, 4, 8), stride=1), jnp.zeros((1, 5, 5, 9, 1)))
    assert res == [(jnp.dtype(jnp.int16), (1, 2, 2, 2, 1))]  # 128 cells do not fit int8
    # the other pools: nothing for avg (static divisors), (N, C) int32 for global max
    assert saved(lambda x: avg_pool(x, 3, padding=1), x) == []
    assert saved(global_max_pool, x) == [(jnp.dtype(jnp.int32), (4, 8))]


def test_one_pass_is_the_identity_with_identity_tangents():
    """`reduce.one_pass` returns its arrays bit for bit (NaN, ±inf, -0.0, ints, bools) and its
    JVP passes the tangents through unchanged."""
    from jaxconv.pooling.reduce import one_pass

    y = jnp.array([[np.nan, -np.inf], [np.inf, -0.0]], jnp.float32)
    off = jnp.array([[3, -1], [127, 0]], jnp.int8)
    mask = jnp.array([[True, False], [False, True]])
    got = jax.jit(one_pass)(y, off, mask)
    for a, b in zip(got, (y, off, mask)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.signbit(np.asarray(got[0])[1, 1])  # -0.0 kept
    t = jnp.arange(4.0).reshape(2, 2)
    _, tangent = jax.jvp(lambda a: one_pass(a, off)[0], (jnp.ones((2, 2)),), (t,))
    np.testing.assert_array_equal(tangent, t)


def test_max_pool_residual_comes_from_the_forward_loop():
    """The backward of a 3x3 stride-2 max pool reads the stored offsets: the compiled
    fwd+bwd holds the argmax chain's comparisons once, as many as the forward alone (the
    pure-JAX algorithm; the kernels' values are test_pool_native.py's)."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 12, 12, 3)), jnp.float32)
    pool = lambda x: max_pool(x, 3, stride=2, padding=1)  # noqa: E731

    def fb(x, g):
        y, pullback = jax.vjp(pool, x)
        return y, pullback(g)[0]

    g = jnp.ones((2, 6, 6, 3), jnp.float32)
    with pure_jax():  # the pure-JAX algorithm (on CPU float32 the native kernels run instead)
        both = jax.jit(lambda x, g: fb(x, g)).lower(x, g).compile().as_text().count("direction=GT")
        forward = jax.jit(lambda x: pool(x)).lower(x).compile().as_text().count("direction=GT")
    assert both == forward > 0, (both, forward)
    window = ((0, 0), (1, 1), (1, 1), (0, 0))
    _, ref = jax.vjp(
        lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), window), x
    )
    np.testing.assert_array_equal(jax.jit(fb)(x, g)[1], ref(g)[0])


@pytest.mark.parametrize("window", [(1, 1), (1, 2)])
def test_one_cell_windows_under_jit_vmap_jvp(window):
    """A window of one cell (constant winner offsets) under jit(vmap(jvp)) and vmap(grad): this
    crashed XLA:CPU's compiler inside `reduce.one_pass` (found by the adaptive pools' tests);
    one-cell windows skip it now."""
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(3, 1, 2, 2, 1)))

    def tangent(x):
        return jax.jvp(lambda x: max_pool(x, window, stride=1), (x,), (x,))[1]

    assert_close(jax.jit(jax.vmap(tangent))(xs), jax.vmap(tangent)(xs))
    dx = jax.jit(jax.vmap(jax.grad(lambda x: max_pool(x, window, stride=1).sum())))(xs)
    assert dx.shape == xs.shape
