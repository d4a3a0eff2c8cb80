"""Pooling: max_pool, max_unpool, avg_pool, lp_pool, global_avg_pool, global_max_pool.

How each backward is proven (DESIGN.md "How correctness is proven"):
- hypothesis over ranks 1-3, windows, strides, every padding form, dilation, ceil_mode, layouts,
  count_include_pad, divisor_override, float32/float64: the explicit VJP == `jax.vjp` of a plain
  `lax.reduce_window` forward (ceil_mode as extra high padding, which lax's autodiff handles);
- window dilation, which lax's autodiff cannot do for max (asserted below), and every tie policy:
  a literal NumPy loop in this file and `jaxconv.reference`;
- seed 001's worked routing (max: the winning unit; average: 1/(N×N)), NaN, ties, residual
  bytes, check_grads(order=2), and PyTorch's values/gradients/indices when torch is installed.
"""

from __future__ import annotations

from itertools import product

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given
from hypothesis import strategies as st
from jax import lax
from jax.test_util import check_grads

from jaxconv import reference
from jaxconv._avgpool import avg_pool, global_avg_pool, lp_pool
from jaxconv._maxpool import global_max_pool, max_pool, max_unpool

LAYOUTS = ("channels_last", "channels_first")
DTYPES = (np.float32, np.float64)


# ----------------------------------------------------------------------------- case drawing


@st.composite
def cases(draw, *, dilation=False, max_rank=3):
    """One pooling configuration: shapes, window, stride, padding (every form), ceil_mode."""
    nd = draw(st.integers(1, max_rank))
    dims = st.integers(1, 3 if nd < 3 else 2)
    window = tuple(draw(dims) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if dilation else (1,) * nd
    k_eff = tuple((k - 1) * d + 1 for k, d in zip(window, dil))
    half = [k // 2 for k in k_eff]
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(*[st.integers(1, 3)] * nd)))
    s = window if stride is None else (stride,) * nd if isinstance(stride, int) else stride
    form = draw(st.sampled_from(["VALID", "SAME", "int", "ints", "pairs"]))
    if form in ("VALID", "SAME"):
        padding, pairs = form, ((0, 0),) * nd
    elif form == "int":
        p = draw(st.integers(0, min(half)))
        padding, pairs = p, ((p, p),) * nd
    elif form == "ints":
        padding = tuple(draw(st.integers(0, h)) for h in half)
        pairs = tuple((p, p) for p in padding)
    else:
        pairs = padding = tuple((draw(st.integers(0, h)), draw(st.integers(0, h))) for h in half)
    size = tuple(
        draw(st.integers(max(1, k - lo - hi), max(1, k - lo - hi) + (3 if nd < 3 else 2)))
        for k, (lo, hi) in zip(k_eff, pairs)
    )
    if form == "SAME":
        pairs = tuple(lax.padtype_to_pads(size, k_eff, s, "SAME"))
    return dict(
        nd=nd,
        window=window,
        dilation=dil,
        stride=stride,
        s=s,
        padding=padding,
        pairs=pairs,
        size=size,
        ceil_mode=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        n=draw(st.integers(1, 2)),
        c=draw(st.integers(1, 2)),
        dtype=draw(st.sampled_from(DTYPES)),
        seed=draw(st.integers(0, 2**16)),
    )


def out_size(case):
    """PyTorch's output size (ceil_mode: the last window starts inside input or left padding)."""
    out = []
    for n, k, d, s, (lo, hi) in zip(
        case["size"], case["window"], case["dilation"], case["s"], case["pairs"]
    ):
        span = n + lo + hi - (k - 1) * d - 1
        o = (-(-span // s) if case["ceil_mode"] else span // s) + 1
        out.append(o - 1 if case["ceil_mode"] and (o - 1) * s >= n + lo else o)
    return tuple(out)


def full(case, spatial, one=False):
    n, c = (1, 1) if one else (case["n"], case["c"])
    return (n, *spatial, c) if case["layout"] == "channels_last" else (n, c, *spatial)


def lax_pads(case):
    """Padding for lax.reduce_window that yields exactly `out_size` windows (ceil_mode: more)."""
    pads = []
    for n, k, d, s, (lo, hi), o in zip(
        case["size"], case["window"], case["dilation"], case["s"], case["pairs"], out_size(case)
    ):
        pads.append((lo, max(hi, (o - 1) * s + (k - 1) * d + 1 - lo - n)))
    return (
        [(0, 0)] + pads + [(0, 0)] if case["layout"] == "channels_last" else [(0, 0), (0, 0)] + pads
    )


def lax_window(case, init, op, x):
    return lax.reduce_window(
        x,
        init,
        op,
        full(case, case["window"], one=True),
        full(case, case["s"], one=True),
        lax_pads(case),
        window_dilation=full(case, case["dilation"], one=True),
    )


def distinct(case, rng):
    """A random permutation of 0..size-1 (exact in float32): every window has one maximum."""
    shape = full(case, case["size"])
    return jnp.asarray(rng.permutation(int(np.prod(shape))).reshape(shape), case["dtype"])


def kwargs(case, *names):
    return {k: case[k] for k in names}


def to_cl(a, case):
    """channels_last view of an array of the case's layout (reference.py is channels_last)."""
    a = np.asarray(a)
    return a if case["layout"] == "channels_last" else np.moveaxis(a, 1, -1)


def from_cl(a, case):
    return a if case["layout"] == "channels_last" else np.moveaxis(a, -1, 1)


def assert_close_inf(actual, expected, dtype=None):
    """assert_close where -inf (a window of padding only, possible with dilation) must match."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf])
    assert_close(np.where(inf, 0, actual), np.where(inf, 0, expected), dtype=dtype)


def run(f, x, rng, ref=None):
    """f(x), a random g of f(x)'s shape and the VJP of f at x applied to g, from one jit;
    with `ref`, also ref(x) and its VJP (same jit)."""
    out = jax.eval_shape(f, x)
    y_shape = (out[0] if isinstance(out, tuple) else out).shape
    g = jnp.asarray(rng.normal(size=y_shape), x.dtype)

    def value_and_vjp(f, x, g):
        y, vjp = jax.vjp(f, x)
        if isinstance(y, tuple):  # (y, indices): no cotangent for the indices
            return y, vjp((g, np.zeros(y[1].shape, jax.dtypes.float0)))[0]
        return y, vjp(g)[0]

    if ref is None:
        y, dx = jax.jit(lambda x, g: value_and_vjp(f, x, g))(x, g)
        return y, g, dx
    both = jax.jit(lambda x, g: (value_and_vjp(f, x, g), value_and_vjp(ref, x, g)))
    (y, dx), (y_ref, dx_ref) = both(x, g)
    return y, g, dx, y_ref, dx_ref


MAX_KW = ("stride", "padding", "dilation", "ceil_mode", "layout")
AVG_KW = ("stride", "padding", "ceil_mode", "layout")


# --------------------------------------------------------------------------------- max_pool


@given(cases())
def test_max_pool_vjp_matches_lax_autodiff(case):
    rng = np.random.default_rng(case["seed"])
    x = distinct(case, rng)
    ours = lambda x: max_pool(x, case["window"], **kwargs(case, *MAX_KW))  # noqa: E731
    ref = lambda x: lax_window(case, -jnp.inf, lax.max, x)  # noqa: E731
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
        f, x, rng, lambda x: lax_window(case, -jnp.inf, lax.max, lax.stop_gradient(x))
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


def test_seed_001_worked_routing():
    """Jefkine: max routes the error to the winning unit, average multiplies it by 1/(N×N)."""
    x = jnp.array(
        [[1.0, 2.0, 5.0, 0.0], [4.0, 3.0, 1.0, 2.0], [0.0, 1.0, 2.0, 7.0], [6.0, 2.0, 3.0, 1.0]]
    ).reshape(1, 4, 4, 1)
    delta = jnp.array([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 2, 2, 1)
    y, vjp = jax.vjp(lambda x: max_pool(x, 2), x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[4, 5], [6, 7]])
    np.testing.assert_array_equal(
        vjp(delta)[0][0, :, :, 0], [[0, 0, 20, 0], [10, 0, 0, 0], [0, 0, 0, 40], [30, 0, 0, 0]]
    )
    y, vjp = jax.vjp(lambda x: avg_pool(x, 2), x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[2.5, 2.0], [2.25, 3.25]])
    np.testing.assert_array_equal(
        vjp(delta)[0][0, :, :, 0],
        [[2.5, 2.5, 5, 5], [2.5, 2.5, 5, 5], [7.5, 7.5, 10, 10], [7.5, 7.5, 10, 10]],
    )


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


# -------------------------------------------------------------------------------- avg_pool


def spatial_cfg(case, per_dim, fill):
    return (
        [fill] + list(per_dim) + [fill]
        if case["layout"] == "channels_last"
        else [fill, fill] + list(per_dim)
    )


def avg_oracle(case, include_pad, override):
    """lax.reduce_window sum over zero padding / PyTorch's divisor, built independently: how
    many cells of x (or of x with the user's padding, `include_pad`) the window covers."""

    def f(x):
        total = lax_window(case, 0.0, lax.add, x)
        if override is not None:
            return total / override
        ones = jnp.ones(full(case, case["size"], one=True), x.dtype)
        pads = lax_pads(case)
        if include_pad:  # the user's padding counts, ceil_mode's overhang does not
            ones = lax.pad(
                ones,
                jnp.ones((), x.dtype),
                spatial_cfg(case, [(lo, hi, 0) for lo, hi in case["pairs"]], (0, 0, 0)),
            )
            pads = [
                (0, high - hi)
                for (_, high), (_, hi) in zip(pads, spatial_cfg(case, case["pairs"], (0, 0)))
            ]
        return total / lax.reduce_window(
            ones,
            0.0,
            lax.add,
            full(case, case["window"], one=True),
            full(case, case["s"], one=True),
            pads,
        )

    return f


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

    y, g, dx, y_ref, dx_ref = run(ours, x, rng, avg_oracle(case, include_pad, override))
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


# --------------------------------------------------------------------------------- lp_pool


@given(cases(max_rank=2), st.sampled_from([1.0, 2, 3.0, 1.5]))
def test_lp_pool_vjp_matches_autodiff(case, p):
    rng = np.random.default_rng(case["seed"])
    x = jnp.asarray(rng.uniform(0.5, 2.0, size=full(case, case["size"])), case["dtype"])
    ours = lambda x: lp_pool(x, p, case["window"], **kwargs(case, *AVG_KW))  # noqa: E731
    y, g, dx, y_ref, dx_ref = run(
        ours, x, rng, lambda x: lax_window(case, 0.0, lax.add, x**p) ** (1 / p)
    )
    assert_close(y, y_ref)
    assert_close(dx, dx_ref)


def test_lp_pool_zero_window_has_zero_gradient_and_matches_reference():
    x = np.zeros((1, 4, 4, 1))
    x[0, 2:, 2:, 0] = [[3.0, 4.0], [0.0, 0.0]]
    dx = jax.grad(lambda x: lp_pool(x, 2, 2).sum())(jnp.asarray(x))
    assert np.isfinite(dx).all()
    np.testing.assert_allclose(
        dx[0, :, :, 0], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0.6, 0.8], [0, 0, 0, 0]]
    )
    xr = np.random.default_rng(5).uniform(0.1, 1, size=(2, 7, 5, 2))
    kw = dict(stride=2, padding=1, ceil_mode=True)
    y, vjp = jax.vjp(lambda x: lp_pool(x, 3.0, 3, **kw), jnp.asarray(xr))
    assert_close(y, reference.lp_pool(xr, 3.0, 3, **kw))
    g = np.random.default_rng(6).normal(size=y.shape)
    assert_close(vjp(g)[0], reference.lp_pool_grad(xr, 3.0, g, window=3, **kw))


# ---------------------------------------------------------------------------- global pools


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


# ------------------------------------------------------------------- grad-of-grad, dtypes


@pytest.mark.parametrize(
    "fn,kw",
    [
        (avg_pool, dict(window=3, stride=2, padding=1, ceil_mode=True)),
        (avg_pool, dict(window=2, count_include_pad=False, padding=1, layout="channels_first")),
        (lp_pool, dict(p=2, window=(2, 3), stride=1, padding=1)),
        (lp_pool, dict(p=3.5, window=2)),
        (max_pool, dict(window=3, stride=2, padding=1, dilation=1, ceil_mode=True)),
        (max_pool, dict(window=2, stride=1, dilation=2, ties="split")),
    ],
)
def test_check_grads_order_2(fn, kw):
    """Reverse over reverse in float64: positive, distinct inputs (no kinks, no zero sums)."""
    x = jnp.asarray(np.random.default_rng(8).permutation(2 * 7 * 6 * 2).reshape(2, 7, 6, 2) + 1.0)
    check_grads(jax.jit(lambda x: fn(x / x.size, **kw)), (x,), order=2, modes=["rev"])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision(dtype):
    """float16/bfloat16 in, same dtype out (values and gradients), close to float32's."""
    fns = (
        lambda x: max_pool(x, 3, stride=2, padding=1),
        lambda x: avg_pool(x, 2),
        lambda x: lp_pool(x, 2, 2),
        global_avg_pool,
        global_max_pool,
    )

    @jax.jit
    def run_all(x):
        out = []
        for fn in fns:
            y, vjp = jax.vjp(fn, x)
            out.append((y, vjp(jnp.ones_like(y))[0]))
        return out

    x = np.random.default_rng(9).permutation(96).reshape(2, 6, 8, 1) / 16.0
    for (y, dx), (y32, dx32) in zip(run_all(jnp.asarray(x, dtype)), run_all(x.astype("f4"))):
        assert y.dtype == dx.dtype == dtype
        assert_close(y.astype("f4"), y32, tol=2e-2)
        assert_close(dx.astype("f4"), dx32, tol=2e-2)


def test_vmap_and_jit():
    x = jnp.asarray(np.random.default_rng(10).normal(size=(3, 2, 6, 5, 2)))
    f = lambda x: max_pool(x, 2, stride=1, ties="split").sum() + avg_pool(x, 3, padding=1).sum()  # noqa: E731
    per = jax.jit(jax.vmap(jax.grad(f)))(x)
    for b in range(3):
        assert_close(per[b], jax.jit(jax.grad(f))(x[b]))


# ------------------------------------------------------------------------------- PyTorch


TORCH_CONFIGS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(3, 2), dilation=(3, 2), ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1, dilation=2),
]


@pytest.mark.parametrize("cfg", TORCH_CONFIGS)
def test_against_torch(cfg):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    xn = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8).astype(np.float64)
    kw = {k: val for k, val in cfg.items() if k != "kernel_size"}
    xt = torch.tensor(xn, requires_grad=True)
    yt, it = F.max_pool2d(xt, cfg["kernel_size"], return_indices=True, **kw)
    gn = rng.normal(size=tuple(yt.shape))
    yt.backward(torch.tensor(gn))
    f = lambda x: max_pool(
        x,
        cfg["kernel_size"],
        return_indices=True,
        layout="channels_first",  # noqa: E731
        **kw,
    )
    (y, idx), vjp = jax.vjp(jax.jit(f), jnp.asarray(xn))
    assert_close(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    dx = vjp((jnp.asarray(gn), np.zeros(idx.shape, jax.dtypes.float0)))[0]
    assert_close(dx, xt.grad.numpy())
    if "dilation" in kw:
        return
    for include_pad in (True, False):  # same output size as max_pool2d without dilation
        xt = torch.tensor(xn, requires_grad=True)
        yt = F.avg_pool2d(xt, cfg["kernel_size"], count_include_pad=include_pad, **kw)
        yt.backward(torch.tensor(gn))
        f = lambda x, i=include_pad: avg_pool(
            x,
            cfg["kernel_size"],
            count_include_pad=i,  # noqa: E731
            layout="channels_first",
            **kw,
        )
        y, vjp = jax.vjp(jax.jit(f), jnp.asarray(xn))
        assert_close(y, yt.detach().numpy())
        assert_close(vjp(jnp.asarray(gn))[0], xt.grad.numpy())


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


# -------------------------------------------------------------------------------- errors


X = jnp.ones((2, 5, 5, 3), jnp.float32)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: max_pool(X, (0, 2)), ValueError, r"max_pool: `window` \(=\(0, 2\)\) must be >= 1"),
        (lambda: max_pool(X, 2, stride=0), ValueError, r"max_pool: `stride` \(=0\) must be >= 1"),
        (lambda: max_pool(X, 6), ValueError, r"max_pool: `window` \(=\(6, 6\)\).*larger than"),
        (lambda: max_pool(X, 3, dilation=3), ValueError, r"max_pool: `window` \(=\(7, 7\)\)"),
        (
            lambda: max_pool(X, 2, padding=2),
            ValueError,
            r"max_pool: `padding` \(=2\) must be at "
            r"most half the window",
        ),
        (lambda: avg_pool(X, 3, padding=((0, 2), (0, 0))), ValueError, r"avg_pool: `padding`"),
        (
            lambda: max_pool(X, 2, ties="random"),
            ValueError,
            r"max_pool: `ties` \(='random'\) must "
            r"be one of \['first', 'last', 'split'\]",
        ),
        (lambda: max_pool(X, 2, layout="NHWC"), ValueError, r"max_pool: `layout` \(='NHWC'\)"),
        (lambda: max_pool(X, 2, padding="FOO"), ValueError, r"max_pool: `padding` \(='FOO'\)"),
        (
            lambda: max_pool(X.astype(jnp.int32), 2),
            TypeError,
            r"max_pool: `x.dtype` \(='int32'\) "
            r"must be a floating dtype",
        ),
        (lambda: max_pool(X, 2, ceil_mode=1), TypeError, r"max_pool: `ceil_mode` \(=1\)"),
        (lambda: max_pool(X[0, 0], 2), ValueError, r"max_pool: `x.shape` \(=\(5, 3\)\)"),
        (
            lambda: avg_pool(X, 2, divisor_override=0),
            ValueError,
            r"avg_pool: `divisor_override` "
            r"\(=0\) must not be 0",
        ),
        (
            lambda: avg_pool(X, 2, count_include_pad="yes"),
            TypeError,
            r"avg_pool: "
            r"`count_include_pad`",
        ),
        (lambda: lp_pool(X, 0, 2), ValueError, r"lp_pool: `p` \(=0\) must be a finite number > 0"),
        (lambda: lp_pool(X, "2", 2), TypeError, r"lp_pool: `p` \(='2'\)"),
        (lambda: global_max_pool(X, layout="x"), ValueError, r"global_max_pool: `layout`"),
        (lambda: global_avg_pool(X.astype(jnp.int8)), TypeError, r"global_avg_pool: `x.dtype`"),
        (
            lambda: max_unpool(X, X, (10, 10)),
            TypeError,
            r"max_unpool: `indices.dtype` "
            r"\(='float32'\) must be an integer dtype",
        ),
        (
            lambda: max_unpool(X, jnp.zeros((2, 5, 5), jnp.int32), (10, 10)),
            ValueError,
            r"max_unpool: `indices.shape` \(=\(2, 5, 5\)\) must be \(2, 5, 5, 3\)",
        ),
        (
            lambda: max_unpool(X, jnp.zeros(X.shape, jnp.int32), (10,)),
            ValueError,
            r"max_unpool: `output_shape` \(=\(10,\)\) must be the spatial shape",
        ),
        (
            lambda: max_unpool(X, jnp.zeros(X.shape, jnp.int32), (2, 10, 10, 4)),
            ValueError,
            r"max_unpool: `output_shape` \(=\(2, 10, 10, 4\)\) must be \(2, 10, 10, 3\)",
        ),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and "Traced" not in msg and "(=None)" not in msg
    with pytest.raises(exc, match=match):  # also while tracing, before XLA
        jax.eval_shape(lambda: call())


# ------------------------------------------------------------------------------- sharding

SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from jaxconv._activation import relu
from jaxconv._avgpool import avg_pool, global_avg_pool, lp_pool
from jaxconv._linear import linear
from jaxconv._loss import mse_loss, softmax_cross_entropy
from jaxconv._maxpool import global_max_pool, max_pool, max_unpool
jax.config.update("jax_enable_x64", True)
w = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)))
def f(x):
    y = max_pool(x, 3, stride=2, padding=1, ties="split") + max_pool(x, 2, stride=2)[:, :5, :5]
    y = avg_pool(y, 2, ceil_mode=True) + lp_pool(x * x + 1, 2, 3, stride=2)[:, :3, :3]
    up = max_unpool(*max_pool(x, 2, return_indices=True), x.shape)
    z = linear(relu(global_avg_pool(up) + global_max_pool(x) + y.sum((1, 2))), w)
    return mse_loss(z, jnp.ones_like(z)) + softmax_cross_entropy(z, jnp.zeros(8, jnp.int32))
x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 10, 10, 4)))
mesh = jax.make_mesh((4,), ("b",), axis_types=(jax.sharding.AxisType.Explicit,))
xs = jax.device_put(x, NamedSharding(mesh, P("b")))
with jax.set_mesh(mesh):
    g = jax.jit(jax.grad(f))(xs)
assert g.sharding.spec == P("b", None, None, None), g.sharding
np.testing.assert_allclose(np.asarray(g), np.asarray(jax.grad(f)(x)), rtol=0, atol=1e-12)
print("ok")
"""


def test_batch_sharded_inputs_on_an_explicit_mesh():
    """Every op of this issue under jit + grad with x sharded over 4 host devices along N."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_pool_backward_with_stride_far_above_the_window():
    """stride 100 > window 2 in 2-D: 10^4 phases, of which only 4 hold gradient; they are placed
    by padding instead of interleaving 10^4 arrays (and the values equal lax's autodiff)."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 205, 205, 2)))
    for ours, plain in (
        (
            lambda x: max_pool(x, 2, stride=100),
            lambda x: lax.reduce_window(
                x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 100, 100, 1), "VALID"
            ),
        ),
        (
            lambda x: avg_pool(x, 2, stride=100),
            lambda x: (
                lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 100, 100, 1), "VALID") / 4
            ),
        ),
    ):
        loss = lambda f: lambda x: jnp.sum(jnp.sin(f(x)))  # noqa: E731
        jaxpr = jax.make_jaxpr(jax.grad(loss(ours)))(x)
        assert len(str(jaxpr)) < 200_000
        np.testing.assert_allclose(jax.grad(loss(ours))(x), jax.grad(loss(plain))(x), rtol=1e-12)


# ------------------------------------------------------------------- one_pass (y + offsets)


def test_one_pass_is_the_identity_with_identity_tangents():
    """`_pool.one_pass` returns its arrays bit for bit (NaN, ±inf, -0.0, ints, bools) and its
    JVP passes the tangents through unchanged."""
    from jaxconv._pool import one_pass

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
    fwd+bwd holds the argmax chain's comparisons once, as many as the forward alone."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 12, 12, 3)), jnp.float32)
    pool = lambda x: max_pool(x, 3, stride=2, padding=1)  # noqa: E731

    def fb(x, g):
        y, pullback = jax.vjp(pool, x)
        return y, pullback(g)[0]

    g = jnp.ones((2, 6, 6, 3), jnp.float32)
    both = jax.jit(fb).lower(x, g).compile().as_text().count("direction=GT")
    forward = jax.jit(pool).lower(x).compile().as_text().count("direction=GT")
    assert both == forward > 0, (both, forward)
    window = ((0, 0), (1, 1), (1, 1), (0, 0))
    _, ref = jax.vjp(
        lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), window), x
    )
    np.testing.assert_array_equal(jax.jit(fb)(x, g)[1], ref(g)[0])


@pytest.mark.parametrize(
    "window,stride,padding,dilation,ceil_mode",
    [
        (3, 2, 1, 1, False),
        (3, 2, 1, 1, True),
        ((2, 3), (1, 2), ((1, 0), (1, 1)), (2, 1), False),
        (3, 3, 1, 2, True),
        (7, 1, 3, 1, False),  # 7 x 7 border runs x 49 offsets: the padded fallback
    ],
)
def test_map_windows_equals_reducing_the_padded_slices(
    window, stride, padding, dilation, ceil_mode
):
    """`_pool.map_windows` (border runs, no padded copy) gives what reducing the slices of the
    padded input gives, offset order included (first-maximum ties decide by it)."""
    from jaxconv import _pool

    x = jnp.asarray(np.random.default_rng(3).integers(-3, 3, (2, 9, 8, 2)), jnp.float32)
    geom = _pool.geometry("t", x, window, stride, padding, dilation, ceil_mode, "channels_last")

    def argmax(slices):
        y, off = slices[0][1], jnp.zeros(slices[0][1].shape, jnp.int32)
        for r, s in slices[1:]:
            y, off = jnp.where(s > y, s, y), jnp.where(s > y, r, off)
        return y, off

    xp = _pool.pad_to_cover(x, geom, -jnp.inf)
    padded = []  # slice_r[i] = xp[i*s + m*d], offsets in row-major order
    for r, m in enumerate(geom.offsets()):
        start = geom.config([mm * d for mm, d in zip(m, geom.dilation)], 0)
        stop = [
            mm * d + (o - 1) * s + 1 for mm, d, o, s in zip(m, geom.dilation, geom.out, geom.stride)
        ]
        padded.append(
            (
                r,
                lax.slice(
                    xp, start, geom.config(stop, xp.shape.__getitem__), geom.config(geom.stride, 1)
                ),
            )
        )
    padded = argmax(padded)
    got = _pool.map_windows(x, geom, -jnp.inf, argmax)
    for a, b in zip(got, padded):
        np.testing.assert_array_equal(a, b)
