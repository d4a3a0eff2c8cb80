"""adaptive_avg_pool and adaptive_max_pool: values, rules, indices, fast path, PyTorch, errors.

How they are proven:
- hypothesis over ranks 1-3, sizes, output sizes (incl. None and O > L), layouts: values,
  indices and VJPs against the literal NumPy loops (`jaxconv/reference/_adaptive.py`, float64);
- `check_rules(order=2)` against JAX's autodiff of the plain jnp oracle (`oracle_adaptive.py`),
  general and tiling (fast) path, both layouts, every tie policy ("split" also at points full
  of ties, against jnp.max's autodiff); hypothesis over inputs full of ties, every policy,
  against the NumPy loops;
- the tiling fast path equals the general primitives on the same input;
- PyTorch (values, gradients, indices) for ranks 1-3;
- max_unpool of the indices is the VJP; jvp/hessian with JAX's own rules switched off;
  vmap (incl. size 0) and jit; 16-bit dtypes; NaN; every bad argument.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxconv.pooling.adaptive import (
    AdaptiveCfg,
    _adaptive_max,
    adaptive_average_p,
    adaptive_avg_pool,
    adaptive_max_pool,
)
from jaxconv.pooling.unpool import max_unpool
from jaxconv.reference import _adaptive as ref
from jaxconv.testing import check_rules, oracle
from tests.properties.test_forward_mode import jax_rules_off
from tests.support.numerics import assert_close

F0 = jax.dtypes.float0


@st.composite
def adaptive_cases(draw):
    nd = draw(st.integers(1, 3))
    hi = 6 if nd < 3 else 4
    size = tuple(draw(st.integers(1, hi)) for _ in range(nd))
    out = tuple(draw(st.one_of(st.none(), st.integers(1, hi))) for _ in range(nd))
    form = draw(st.sampled_from(["int", "tuple"]))
    output_size = out if form == "tuple" else (out[0] or 1)
    return dict(
        size=size,
        output_size=output_size,
        layout=draw(st.sampled_from(["channels_last", "channels_first"])),
        n=draw(st.integers(1, 2)),
        c=draw(st.integers(1, 2)),
        seed=draw(st.integers(0, 2**16)),
    )


def _shape(case):
    n, c = case["n"], case["c"]
    sp = case["size"]
    return (n, *sp, c) if case["layout"] == "channels_last" else (n, c, *sp)


def _cl(a, layout):
    a = np.asarray(a)
    return a if layout == "channels_last" else np.moveaxis(a, 1, -1)


def _from_cl(a, layout):
    return a if layout == "channels_last" else np.moveaxis(a, -1, 1)


def _distinct(shape, rng, dtype=np.float64):
    return jnp.asarray(rng.permutation(int(np.prod(shape))).reshape(shape), dtype)


def _value_vjp(f, x, g):
    y, vjp = jax.vjp(f, x)
    if isinstance(y, tuple):
        return y, vjp((g, np.zeros(y[1].shape, F0)))[0]
    return y, vjp(g)[0]


_RUN = jax.jit(lambda x, g, f: _value_vjp(f, x, g), static_argnums=2)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int8, jnp.uint8, jnp.bool_])
def test_integer_and_bool_max(dtype):
    """lax's max values and indices, every tie policy ("split": the first maximum's index);
    the tangent JAX gives an integer input (float0)."""
    x = np.random.default_rng(0).integers(-5, 5, size=(2, 7, 5, 3))
    xd = jnp.asarray(x).astype(dtype)
    for o, ties in [((3, 2), "first"), ((7, 5), "first"), ((7, 1), "last"), ((3, 2), "split")]:
        y, i = adaptive_max_pool(xd, o, ties=ties, return_indices=True)
        y_ref, i_ref = ref.adaptive_max_pool(np.asarray(xd).astype(np.float64), o, ties)
        assert y.dtype == dtype
        np.testing.assert_array_equal(np.asarray(y).astype(np.float64), y_ref)
        np.testing.assert_array_equal(i, i_ref)
    t0 = np.zeros(xd.shape, F0)
    for ties in ("first", "split"):
        _, t = jax.jvp(lambda x, ties=ties: adaptive_max_pool(x, (3, 2), ties=ties), (xd,), (t0,))
        assert t.dtype == F0


@settings(max_examples=12)  # CI time: 12 draws (the profile's 18 elsewhere)
@given(adaptive_cases())
def test_against_numpy_reference(case):
    """Values, indices and VJPs of both ops (float64) equal the NumPy loops."""
    rng = np.random.default_rng(case["seed"])
    lay, o = case["layout"], case["output_size"]
    x = _distinct(_shape(case), rng)
    avg = lambda x: adaptive_avg_pool(x, o, layout=lay)  # noqa: E731
    mx = lambda x: adaptive_max_pool(x, o, return_indices=True, layout=lay)  # noqa: E731
    g = jnp.asarray(rng.normal(size=jax.eval_shape(avg, x).shape))

    @jax.jit
    def both(x, g):
        return _value_vjp(avg, x, g), _value_vjp(mx, x, g)

    (ya, dxa), ((ym, idx), dxm) = both(x, g)
    xc, gc = _cl(x, lay), _cl(g, lay)
    assert_close(_cl(ya, lay), ref.adaptive_avg_pool(xc, o))
    assert_close(_cl(dxa, lay), ref.adaptive_avg_pool_grad(xc.shape, gc, o))
    y_ref, idx_ref = ref.adaptive_max_pool(xc, o)
    assert_close(_cl(ym, lay), y_ref)
    np.testing.assert_array_equal(_cl(idx, lay), idx_ref)
    assert idx.dtype == jnp.int32
    assert_close(_cl(dxm, lay), ref.adaptive_max_pool_grad(xc.shape, idx_ref, gc))
    np.testing.assert_allclose(max_unpool(g, idx, x.shape, layout=lay), dxm, rtol=1e-12)


@settings(max_examples=10)  # CI time
@given(adaptive_cases(), st.sampled_from(["first", "last", "split"]))
def test_ties_against_numpy_reference(case, ties):
    """Values from {0, 1, 2}, so most windows hold several maxima: values, indices (the first
    or last maximum; "split": the first), the VJP (to that winner; "split": g / |T| to each
    tied cell) against the NumPy loops, and the JVP as the VJP's transpose (<Jt, g> =
    <t, J^T g> with the reference's J^T)."""
    rng = np.random.default_rng(case["seed"])
    lay, o = case["layout"], case["output_size"]
    x = jnp.asarray(rng.integers(0, 3, size=_shape(case)), jnp.float64)
    f = partial(adaptive_max_pool, output_size=o, ties=ties, return_indices=True, layout=lay)
    y_shape = jax.eval_shape(f, x)[0].shape
    g, t = jnp.asarray(rng.normal(size=y_shape)), jnp.asarray(rng.normal(size=x.shape))

    @jax.jit
    def run(x, g, t):
        return _value_vjp(f, x, g), jax.jvp(lambda x: f(x)[0], (x,), (t,))[1]

    ((y, idx), dx), ty = run(x, g, t)
    xc, gc = _cl(x, lay), _cl(g, lay)
    y_ref, idx_ref = ref.adaptive_max_pool(xc, o, ties)
    assert_close(_cl(y, lay), y_ref)
    np.testing.assert_array_equal(_cl(idx, lay), idx_ref)
    if ties == "split":
        dx_ref = ref.adaptive_max_pool_split_grad(xc, gc, o)
    else:
        dx_ref = ref.adaptive_max_pool_grad(xc.shape, idx_ref, gc)
    assert_close(_cl(dx, lay), dx_ref)
    assert_close(jnp.vdot(ty, g), np.vdot(_cl(t, lay), dx_ref))


RULE_CASES = [
    # (x shape channels_last, output_size, layout)
    ((2, 7, 3), 3, "channels_last"),  # general 1-D
    ((1, 5, 7, 2), (3, 4), "channels_first"),  # general 2-D
    ((1, 3, 5, 4, 1), (2, None, 3), "channels_last"),  # general 3-D, None keeps a dim
    ((1, 3, 2), 7, "channels_last"),  # O > L: windows repeat cells
    ((2, 6, 4, 2), (3, 2), "channels_last"),  # tiling fast path
    ((1, 4, 4, 3), 1, "channels_first"),  # global
    ((1, 12, 10, 1), (5, 3), "channels_last"),  # static slices and padded broadcasts
    ((1, 40, 2), 17, "channels_last"),  # matrix product path (O > SLICE_OUTPUTS)
]


def _x(shape_cl, layout, rng):
    x = _distinct(shape_cl, rng) / 7.0
    return x if layout == "channels_last" else jnp.moveaxis(x, -1, 1)


@pytest.mark.parametrize("shape, o, layout", RULE_CASES)
def test_avg_check_rules(shape, o, layout):
    x = _x(shape, layout, np.random.default_rng(0))
    check_rules(
        lambda x: adaptive_avg_pool(x, o, layout=layout),
        x,
        reference=lambda x: oracle.adaptive_avg_pool(x, o, layout),
        order=2,
    )


MAX_RULE_CASES = [(*c, "first") for c in RULE_CASES[:6]] + [
    (*RULE_CASES[1], "last"),
    (*RULE_CASES[3], "last"),
]  # ties="split" on uneven windows at distinct values: the registry's variant


@pytest.mark.parametrize("shape, o, layout, ties", MAX_RULE_CASES)
def test_max_check_rules(shape, o, layout, ties):
    x = _x(shape, layout, np.random.default_rng(1))
    check_rules(
        lambda x: adaptive_max_pool(x, o, ties=ties, layout=layout),
        x,
        reference=lambda x: oracle.adaptive_max_pool(x, o, ties=ties, layout=layout),
        order=2,
    )


def test_ties_against_oracle():
    """All-equal windows: "first"/"last" pick the first/last cell (values, indices, VJP)."""
    x = jnp.asarray(np.round(np.random.default_rng(3).normal(size=(2, 7, 5, 2))))
    for ties in ("first", "last"):
        ours = partial(adaptive_max_pool, output_size=(3, 2), ties=ties, return_indices=True)
        theirs = partial(
            oracle.adaptive_max_pool, output_size=(3, 2), ties=ties, return_indices=True
        )
        g = jnp.ones((2, 3, 2, 2))
        (y, i), dx = _RUN(x, g, ours)
        (y2, i2), dx2 = _RUN(x, g, theirs)
        np.testing.assert_array_equal(i, i2)
        assert_close(dx, dx2)


def test_fast_path_equals_general_path():
    """Where every dim tiles, the tiling pool (avg_pool / max_pool machinery, the global mean
    for a 1-cell output) and the general primitives give the same values, indices and gradients."""
    rng = np.random.default_rng(4)
    for shape, o in [((2, 6, 4, 3), (3, 2)), ((1, 8, 2), 1), ((1, 4, 6, 2, 1), (2, 3, 1))]:
        x = _distinct(shape, rng)
        sp = shape[1:-1]
        out = (o,) * len(sp) if isinstance(o, int) else o
        cfg = AdaptiveCfg("channels_last", tuple(range(1, len(sp) + 1)), sp, out)
        general = partial(adaptive_average_p.bind, cfg=cfg)
        fast = partial(adaptive_avg_pool, output_size=o)
        g = jnp.asarray(rng.normal(size=jax.eval_shape(fast, x).shape))
        run = _RUN
        for a, b in zip(run(x, g, fast), run(x, g, general)):
            assert_close(a, b)
        names = str(jax.make_jaxpr(fast)(x))
        tiling = "jaxconv_global_avg_pool" if set(out) == {1} else "jaxconv_avg_pool"
        assert tiling in names and "adaptive" not in names  # O = 1 everywhere: the global mean
        general_max = partial(_adaptive_max, cfg=cfg, ties="first")
        fast_max = partial(adaptive_max_pool, output_size=o, return_indices=True)
        (y1, i1), d1 = run(x, g, fast_max)
        (y2, i2), d2 = run(x, g, general_max)
        assert_close(y1, y2)
        np.testing.assert_array_equal(i1, i2)
        assert_close(d1, d2)


def test_split_check_rules_at_ties():
    """At a point full of ties, uneven windows: every rule of ties="split" (both modes, order
    2, vmap, jit) against JAX's autodiff of jnp.max over each window (the mean of the tangent
    over the tied cells)."""
    x = jnp.asarray(np.random.default_rng(8).integers(0, 3, size=(2, 3, 7, 5)), jnp.float64)
    check_rules(
        lambda x: adaptive_max_pool(x, (3, 4), ties="split", layout="channels_first"),
        x,
        reference=lambda x: oracle.adaptive_max_pool(
            x, (3, 4), ties="split", layout="channels_first"
        ),
        order=2,
    )


def test_split_ties():
    """Tiling windows (max_pool's split) and uneven ones (`split.py`): g / |T| to each tied
    cell, the tangent their mean."""
    x1 = jnp.ones((1, 4, 4, 1))
    x2 = jnp.array([1.0, 3.0, 3.0, 0.0, 3.0]).reshape(1, 5, 1)  # windows [0,2) [1,4) [3,5)
    t2 = jnp.array([1.0, 2.0, 4.0, 8.0, 16.0]).reshape(x2.shape)
    # a 2-D box (O > L in dim 1: windows repeat cells): window (1, 1), rows [1, 3) x columns
    # [0, 2), holds three tied cells
    x3 = jnp.array([[0.0, 1.0], [5.0, 5.0], [5.0, 2.0]]).reshape(1, 3, 2, 1)
    f = partial(adaptive_max_pool, ties="split")

    @jax.jit
    def run(x1, x2, t2, x3):
        return (
            jax.grad(lambda x: f(x, 2).sum())(x1),
            jax.grad(lambda x: f(x, 3).sum())(x2),
            jax.jvp(lambda x: f(x, 3), (x2,), (t2,))[1],
            jax.grad(lambda x: f(x, (2, 3))[0, 1, 1, 0])(x3),
        )

    g1, g2, ty, g3 = run(x1, x2, t2, x3)
    np.testing.assert_allclose(g1, np.full(x1.shape, 0.25))
    assert g2.ravel().tolist() == [0, 1.5, 0.5, 0, 1]
    assert ty.ravel().tolist() == [2, 3, 16]
    np.testing.assert_allclose(g3[0, :, :, 0], [[0, 0], [1 / 3, 1 / 3], [1 / 3, 0]])


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_against_torch(nd):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(nd)
    sizes = {1: (11,), 2: (9, 7), 3: (5, 6, 7)}[nd]
    outs = {1: [4, 1, 13], 2: [(4, 5), (None, 3), 14], 3: [(2, 4, 3), 1, (3, None, 5)]}[nd]
    avg_t = getattr(F, f"adaptive_avg_pool{nd}d")
    max_t = getattr(F, f"adaptive_max_pool{nd}d")
    for o in outs:
        x = rng.normal(size=(2, 3, *sizes))
        xt = torch.tensor(x, requires_grad=True)
        yt = avg_t(xt, o)
        g = rng.normal(size=tuple(yt.shape))
        yt.backward(torch.tensor(g))
        xt2 = torch.tensor(x, requires_grad=True)
        yt2, it = max_t(xt2, o, return_indices=True)
        yt2.backward(torch.tensor(g))
        avg = partial(adaptive_avg_pool, output_size=o, layout="channels_first")
        mx = partial(adaptive_max_pool, output_size=o, return_indices=True, layout="channels_first")
        xj, gj = jnp.asarray(x), jnp.asarray(g)
        (y, dx), ((y2, idx), dx2) = _RUN(xj, gj, avg), _RUN(xj, gj, mx)
        assert_close(y, yt.detach().numpy())
        assert_close(dx, xt.grad.numpy())
        assert_close(y2, yt2.detach().numpy())
        np.testing.assert_array_equal(idx, it.numpy())
        assert_close(dx2, xt2.grad.numpy())


@pytest.mark.parametrize("o", [(3, 2), (2, 2)])
def test_runs_with_jax_rules_off(o):
    """jvp, hessian and grad-of-grad use only our rules (JAX's rules of dot_general, reduce
    windows and argmax raise inside)."""
    x = _distinct((1, 5, 4, 2), np.random.default_rng(5)) / 10.0
    if o == (2, 2):
        x = x[:, :4]
    jax.clear_caches()
    with jax_rules_off():
        for f in (
            lambda x: adaptive_avg_pool(x, o),
            lambda x: adaptive_max_pool(x, o),
            lambda x: adaptive_max_pool(x, o, ties="last"),
            lambda x: adaptive_max_pool(x, o, ties="split"),
        ):
            s = lambda x, f=f: jnp.sum(jnp.sin(f(x)))  # noqa: E731
            jax.jit(lambda x, f=f: jax.jvp(f, (x,), (x,)))(x)
            jax.jit(jax.hessian(s))(x)
            jax.jit(jax.grad(lambda x, s=s: jnp.sum(jax.grad(s)(x) ** 2)))(x)
    jax.clear_caches()


@pytest.mark.parametrize("size", [0, 3])
def test_vmap_and_jit(size):
    rng = np.random.default_rng(6)
    xs = jnp.asarray(rng.normal(size=(size, 2, 5, 7, 3)))
    for f in (
        lambda x: adaptive_avg_pool(x, (3, 4)),
        lambda x: adaptive_avg_pool(x, (5, 1)),
        lambda x: adaptive_max_pool(x, (3, 4)),
        lambda x: adaptive_max_pool(x, (5, 7)),
        lambda x: adaptive_max_pool(jnp.round(x), (3, 4), ties="split"),
    ):
        loss = lambda x, f=f: jnp.sum(f(x) ** 2)  # noqa: E731

        @jax.jit
        def run(xs, f=f, loss=loss):
            batched = (
                jax.vmap(f)(xs),
                jax.vmap(jax.grad(loss))(xs),
                jax.vmap(lambda x: jax.jvp(f, (x,), (x,))[1])(xs),
            )
            single = [(f(x), jax.grad(loss)(x), jax.jvp(f, (x,), (x,))[1]) for x in xs]
            return batched, single

        batched, single = run(xs)
        assert batched[0].shape[0] == size and batched[1].shape == xs.shape
        for b, one in enumerate(single):
            for a, e in zip(batched, one):
                assert_close(a[b], e)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_low_precision(dtype):
    x64 = jnp.asarray(np.random.default_rng(7).normal(size=(2, 9, 7, 3)))
    x = x64.astype(dtype)
    outs = [(4, 3), (3, 7), 1]

    @jax.jit
    def run(x):
        return [
            (
                adaptive_avg_pool(x, o),
                jax.grad(lambda x, o=o: jnp.sum(adaptive_avg_pool(x, o).astype(jnp.float32)))(x),
                adaptive_max_pool(x, o),
            )
            for o in outs
        ]

    tol = {jnp.float16: 2e-3, jnp.bfloat16: 1.6e-2, jnp.float32: 1e-6}[dtype]
    xr = np.asarray(x.astype(jnp.float64))
    for o, (y, dx, ym) in zip(outs, run(x)):
        assert y.dtype == dtype and dx.dtype == dtype and ym.dtype == dtype
        assert_close(y.astype(jnp.float64), ref.adaptive_avg_pool(xr, o), tol=tol)
        np.testing.assert_array_equal(ym.astype(jnp.float64), ref.adaptive_max_pool(xr, o)[0])


def test_nan_wins():
    x = jnp.asarray([1.0, np.nan, 3.0, np.nan, 0.0, 2.0, 5.0]).reshape(1, 7, 1)
    y, idx = adaptive_max_pool(x, 3, return_indices=True)  # windows [0,3) [2,5) [4,7)
    assert np.isnan(y[0, 0, 0]) and np.isnan(y[0, 1, 0]) and y[0, 2, 0] == 5.0
    assert idx.ravel().tolist() == [1, 3, 6]
    g = jax.grad(lambda x: jnp.nansum(adaptive_max_pool(x, 3)))(x)
    assert g.ravel().tolist() == [0, 0, 0, 0, 0, 0, 1]
    ys = lambda x: adaptive_max_pool(x, 3, ties="split")  # noqa: E731
    w = jnp.asarray([1.0, 1.0, 4.0]).reshape(1, 3, 1)
    g1, g2 = jax.jit(
        lambda x: (
            jax.grad(lambda x: jnp.sum(ys(x) * w))(x),
            jax.grad(lambda x: ys(x)[0, 0, 0])(x.at[0, 0, 0].set(np.nan)),
        )
    )(x)
    assert g1.ravel().tolist() == [0, 1, 0, 1, 0, 0, 4]  # each window's one NaN, or its max
    assert g2.ravel().tolist() == [0.5, 0.5, 0, 0, 0, 0, 0]  # two NaNs share


def test_docstring_windows():
    x = jnp.arange(4.0).reshape(1, 4, 1)
    assert adaptive_avg_pool(x, 3).ravel().tolist() == [0.5, 1.5, 2.5]


X = jnp.ones((1, 4, 4, 2))
AVG, MAX = adaptive_avg_pool, adaptive_max_pool
ERRORS = [
    (AVG, (X, 0), {}, ValueError, r"adaptive_avg_pool: `output_size` \(=0\) must be >= 1"),
    (AVG, (X, (2, 2, 2)), {}, ValueError, r"`output_size` \(=\(2, 2, 2\)\) must have one entry"),
    (AVG, (X, 2.5), {}, TypeError, r"adaptive_avg_pool: `output_size` \(=2.5\) must be an int"),
    (AVG, (X, 2), {"layout": "NHWC"}, ValueError, r"`layout` \(='NHWC'\) must be one of"),
    (AVG, (X.astype(jnp.int32), 2), {}, TypeError, r"`x.dtype` \(='int32'\) must be a floating"),
    (AVG, (jnp.ones((4, 2)), 2), {}, ValueError, r"`x.shape` \(=\(4, 2\)\) must be \(N, \*spatial"),
    (
        AVG,
        (jnp.ones((1, 0, 2)), 2),
        {},
        ValueError,
        r"`x.shape` \(=\(1, 0, 2\)\) must have at least",
    ),
    (MAX, (X, -1), {}, ValueError, r"adaptive_max_pool: `output_size` \(=-1\) must be >= 1"),
    (MAX, (X, True), {}, TypeError, r"`output_size` \(=True\) must be an int, not a bool"),
    (MAX, (X, 2), {"ties": "random"}, ValueError, r"`ties` \(='random'\) must be one of"),
    (MAX, (X, 2), {"return_indices": 1}, TypeError, r"`return_indices` \(=1\) must be True or"),
    (
        MAX,
        (X.astype(jnp.complex64), 2),
        {},
        TypeError,
        r"adaptive_max_pool: `x.dtype` \(='complex64'\) must be a real floating, integer or bool",
    ),
]


@pytest.mark.parametrize("fn, args, kwargs, exc, match", ERRORS)
def test_errors(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
