"""The native pooling kernels (native/src/pool.cc: ``jaxconv_max_pool_f32``, ``..._pick_f32``,
``..._spread_f32``, ``jaxconv_avg_pool_f32``, ``..._adjoint_f32``) against the pure-JAX
algorithms they replace on CPU: hypothesis-drawn geometries (ranks 1-3, window, stride, every
padding form, dilation, ceil_mode, channel counts around the kernels' 16-lane chunks), values
with ties, NaN and -inf; the winner offsets identical, y, the spread (VJP) and the pick (JVP)
equal; average pooling with count_include_pad and divisor_override, values, VJPs and JVPs; each
traced once on the kernels and once inside `pure_jax()` in the same jit. Also: windows of
padding only, int16 offsets, empty arrays, threads, the transformations, where the custom calls
appear in the HLO (float32 channels-last only; not float64, `pure_jax()`, jax.export, other
ties for the forward) and the handlers' errors.

Skipped where the native package is not built (`jaxconv.native_available()`)."""

from __future__ import annotations

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxconv as jc
from jaxconv._core.native import pure_jax
from jaxconv._core.window import pool_window
from jaxconv.pooling import max_pool as mp
from jaxconv.pooling.lowering import native as kernels
from tests.pool.cases import cases
from tests.support.numerics import assert_close

STATUS = jc.native_available()
pytestmark = pytest.mark.skipif(not STATUS, reason=f"native kernels unavailable: {STATUS.reason}")
FORWARD, PICK, SPREAD = (
    "jaxconv_max_pool_f32",
    "jaxconv_max_pool_pick_f32",
    "jaxconv_max_pool_spread_f32",
)
AVERAGE, ADJOINT = "jaxconv_avg_pool_f32", "jaxconv_avg_pool_adjoint_f32"
DEFAULTS = dict(kernels.ADOPTED), kernels.MIN_CHANNELS  # before the fixture below


@pytest.fixture(autouse=True)
def _every_kernel(monkeypatch):
    """Every kernel in use here, adopted by default or not (`lowering.native.ADOPTED`), for
    any channel count (`MIN_CHANNELS`: the lane-by-lane path too)."""
    monkeypatch.setattr(kernels, "ADOPTED", dict.fromkeys(kernels.ADOPTED, True))
    monkeypatch.setattr(kernels, "MIN_CHANNELS", 0)


def _x(case, c, rng, special):
    """Small integers (many ties), some NaN and -inf where `special`."""
    x = rng.integers(-2, 3, size=(case["n"], *case["size"], c)).astype(np.float32)
    if special:
        x[rng.random(x.shape) < 0.05] = np.nan
        x[rng.random(x.shape) < 0.05] = -np.inf
    return jnp.asarray(x)


def _both(run):
    """run() traced on the kernels and inside `pure_jax()`, in one jit."""

    def f(*args):
        native = run(*args)
        with pure_jax():
            pure = run(*args)
        return native, pure

    return f


def _pool_window(case, x):
    return pool_window(
        "max_pool", x, case["window"], case["stride"], case["padding"], case["dilation"],
        case["ceil_mode"], "channels_last", ordered=True,
    )  # fmt: skip


@given(cases(dilation=True), st.sampled_from([1, 3, 16, 17, 35]), st.booleans(), st.booleans())
def test_max_pool_kernels_match_pure_jax(case, c, minimum, special):
    """Winner offsets identical; y, the VJP (spread) and the JVP (pick) equal, through the
    public op and on the primitives."""
    rng = np.random.default_rng(case["seed"])
    x = _x(case, c, rng, special)
    win = _pool_window(case, x)
    op = "min" if minimum else "max"
    pool = jc.min_pool if minimum else jc.max_pool
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
              ceil_mode=case["ceil_mode"])  # fmt: skip
    y_shape = jax.eval_shape(lambda x: pool(x, case["window"], **kw), x).shape
    g = jnp.asarray(rng.normal(size=y_shape), jnp.float32)
    t = jnp.asarray(rng.normal(size=x.shape), jnp.float32)

    def run(x, g, t):
        f = lambda x: pool(x, case["window"], **kw)  # noqa: E731
        y, vjp = jax.vjp(f, x)
        return y, vjp(g)[0], jax.jvp(f, (x,), (t,))[1]

    def prims(x, g, t):
        out = {}
        for native in (True, False):
            y, off = mp.winners_p.bind(x, win=win, ties="first", op=op, native=native)
            dx = mp.winner_spread_p.bind(g, off, win=win, ties="first", native=native)
            ty = mp.winner_pick_p.bind(t, off, win=win, ties="first", native=native)
            out[native] = (y, off, dx, ty)
        return out

    both = jax.jit(lambda x, g, t: (_both(run)(x, g, t), prims(x, g, t)))
    text = both.lower(x, g, t).as_text()
    assert all(k in text for k in (FORWARD, PICK, SPREAD))
    (native, pure), p = both(x, g, t)
    for a, b in zip(native, pure):
        np.testing.assert_array_equal(a, b)  # NaN where NaN; the sums in the same order
    (y, off, dx, ty), (y0, off0, dx0, ty0) = p[True], p[False]
    assert off.dtype == off0.dtype == jnp.int8
    np.testing.assert_array_equal(off, off0)
    np.testing.assert_array_equal(y, y0)
    assert_close(dx, dx0, tol=1e-6)
    assert_close(ty, ty0, tol=1e-6)


def _avg_kw(draw):
    return dict(
        count_include_pad=draw(st.booleans()),
        divisor_override=draw(st.sampled_from([None, None, 1, 3, -2])),
    )


@given(cases(), st.sampled_from([1, 16, 19]), st.data())
def test_avg_pool_kernels_match_pure_jax(case, c, data):
    rng = np.random.default_rng(case["seed"])
    x = jnp.asarray(rng.normal(size=(case["n"], *case["size"], c)), jnp.float32)
    kw = dict(stride=case["stride"], padding=case["padding"], ceil_mode=case["ceil_mode"],
              **_avg_kw(data.draw))  # fmt: skip
    f = lambda x: jc.avg_pool(x, case["window"], **kw)  # noqa: E731
    g = jnp.asarray(rng.normal(size=jax.eval_shape(f, x).shape), jnp.float32)

    def run(x, g):
        y, vjp = jax.vjp(f, x)
        return y, vjp(g)[0], jax.jvp(f, (x,), (x * x,))[1]

    both = jax.jit(_both(run))
    text = both.lower(x, g).as_text()
    assert AVERAGE in text and ADJOINT in text
    native, pure = both(x, g)
    for a, b in zip(native, pure):
        assert_close(a, b, tol=1e-6)


def test_ties_nan_and_padding_conventions():
    """The first maximum of a tie, the first NaN, an input -inf beats padding, a window of
    padding only gives -inf with offset 0 (and no gradient), exactly as the pure algorithm."""
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 1, 1, 0] = np.nan
    x[0, 0, 1, 0] = np.nan  # the first NaN of window (0, 0)
    x[0, :2, :2, 1] = -np.inf  # window (0, 0): -inf inputs and padding
    x = jnp.asarray(x)
    win = pool_window("max_pool", x, 3, 2, 1, 1, True, "channels_last", ordered=True)

    def run(x):
        y, off = mp.winners_p.bind(x, win=win, ties="first", op="max", native=True)
        y0, off0 = mp.winners_p.bind(x, win=win, ties="first", op="max", native=False)
        return y, off, y0, off0

    y, off, y0, off0 = jax.jit(run)(x)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(off, off0)
    # window (0, 0) covers rows and columns -1..1: flat offset 3 (row + 1) + (column + 1)
    assert np.isnan(y[0, 0, 0, 0]) and int(off[0, 0, 0, 0]) == 5  # the NaN at (0, 1)
    assert float(y[0, 0, 0, 1]) == -np.inf and int(off[0, 0, 0, 1]) == 4  # input -inf, not pad
    assert float(y[0, 1, 1, 1]) == 0 and int(off[0, 1, 1, 1]) == 1  # first of the tied zeros
    # a window of padding only (dilation 2 over one input cell, padding 1 each side)
    z = jnp.ones((1, 1, 3), jnp.float32)
    w1 = pool_window("max_pool", z, 2, 1, 1, 2, False, "channels_last", ordered=True)
    y, off = jax.jit(lambda z: mp.winners_p.bind(z, win=w1, ties="first", op="max", native=True))(z)
    np.testing.assert_array_equal(y, np.full((1, 1, 3), -np.inf, np.float32))
    np.testing.assert_array_equal(off, np.zeros((1, 1, 3), np.int8))
    dx = jax.jit(jax.grad(lambda z: jnp.sum(jnp.where(jnp.isinf(q := jc.max_pool(
        z, 2, stride=1, padding=1, dilation=2)), 0.0, q))))(z)  # fmt: skip
    np.testing.assert_array_equal(dx, np.zeros_like(z))


def test_int16_offsets_and_threads():
    """A 12x12 window (144 cells: int16 offsets) and a call big enough for several threads."""
    rng = np.random.default_rng(1)
    cases_ = [
        ((2, 14, 13, 5), dict(window=12, stride=1)),
        ((4, 32, 32, 32), dict(window=3, stride=2, padding=1)),  # over `kSmallCall` work:
        ((4, 32, 32, 32), dict(window=2)),  # several threads (pool.cc)
    ]
    for shape, kw in cases_:
        x = jnp.asarray(rng.normal(size=shape), jnp.float32)

        def run(x, kw=kw):
            y, vjp = jax.vjp(lambda x: jc.max_pool(x, **kw), x)
            avg, avjp = jax.vjp(lambda x: jc.avg_pool(x, kw["window"], stride=kw.get("stride")), x)
            return y, vjp(jnp.sin(y))[0], avg, avjp(jnp.sin(avg))[0]

        native, pure = jax.jit(_both(run))(x)
        for a, b in zip(native, pure):
            assert_close(a, b, tol=1e-6)
    assert mp._offset_dtype(12 * 12) == jnp.int16


@pytest.mark.parametrize("shape", [(0, 6, 6, 3), (2, 6, 6, 0)])
def test_empty_arrays(shape):
    x = jnp.ones(shape, jnp.float32)
    for pool in (lambda x: jc.max_pool(x, 3, stride=2, padding=1), lambda x: jc.avg_pool(x, 2)):
        f = jax.jit(lambda x, pool=pool: (pool(x), jax.grad(lambda x: pool(x).sum())(x)))
        assert FORWARD in f.lower(x).as_text() or AVERAGE in f.lower(x).as_text()
        y, dx = f(x)
        assert y.size == 0 and dx.shape == shape


def test_transformations_run_on_the_kernels():
    """vmap (size 0 too), grad of grad, jacfwd, hessian, checkpoint and an eager call, on the
    kernels, with the values of the pure path."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)

    def loss(x):
        h = jc.max_pool(jnp.sin(x), 3, stride=2, padding=1)
        return jnp.sum(jc.avg_pool(h * h, 2, ceil_mode=True) ** 2)

    def run(x):
        return (
            jax.grad(lambda x: jnp.sum(jax.grad(loss)(x) ** 2))(x),
            jax.jacfwd(lambda x: jc.max_pool(x, 2))(x[:1, :4, :4, :1]),
            jax.hessian(lambda x: jnp.sum(jc.avg_pool(x, 2) ** 3))(x[:1, :2, :2, :1]),
            jax.grad(jax.checkpoint(loss))(x),
            jax.vmap(jax.grad(loss))(jnp.stack([x, -x])),
        )

    both = jax.jit(_both(run))
    assert FORWARD in both.lower(x).as_text()
    native, pure = both(x)
    for a, b in zip(native, pure):
        assert_close(a, b, tol=1e-6)
    empty = jax.vmap(jax.grad(loss))(jnp.zeros((0, *x.shape), jnp.float32))
    assert empty.shape == (0, *x.shape)
    eager = jc.max_pool(x, 3, stride=2)  # primitives evaluated eagerly lower as under jit
    with pure_jax():
        assert_close(eager, jax.jit(lambda x: jc.max_pool(x, 3, stride=2))(x), tol=0)


def _hlo(f, x):
    return jax.jit(f).lower(x).as_text()


def test_where_the_custom_calls_go():
    x32 = jnp.ones((2, 8, 8, 3), jnp.float32)
    grad = jax.grad(lambda x: jnp.sum(jc.max_pool(x, 3, stride=2, padding=1) ** 2))
    avg = jax.grad(lambda x: jnp.sum(jc.avg_pool(x, 3, stride=2, padding=1) ** 2))
    for f, targets in ((grad, (FORWARD, SPREAD)), (avg, (AVERAGE, ADJOINT))):
        text = _hlo(f, x32)
        assert all(t in text for t in targets)
        assert "jaxconv_" not in _hlo(f, x32.astype(jnp.float64))  # x64: tests/conftest.py
        with pure_jax():
            assert "jaxconv_" not in _hlo(lambda x, f=f: f(x), x32)
        exported = jax.export.export(jax.jit(f))(x32)
        assert "custom_call @jaxconv_" not in exported.mlir_module()
        assert_close(exported.call(x32), jax.jit(f)(x32), tol=1e-6)
    # other ties: the pure forward; "last" keeps the offsets, so its spread is native
    last = _hlo(jax.grad(lambda x: jc.max_pool(x, 2, ties="last").sum()), x32)
    assert FORWARD not in last and SPREAD in last
    split = _hlo(jax.grad(lambda x: jc.max_pool(x, 2, ties="split").sum()), x32)
    assert "jaxconv_max_pool" not in split
    cf = _hlo(jax.grad(lambda x: jc.max_pool(x, 2, layout="channels_first").sum()), x32)
    assert "jaxconv_" not in cf
    ints = _hlo(lambda x: jc.max_pool(x, 2), x32.astype(jnp.int32))
    assert "jaxconv_" not in ints


def test_the_default_choices(monkeypatch):
    """By default (measured, `lowering.native.ADOPTED`): max pooling's forward and spread on
    the kernels (its forward alone, without a derivative, for 2-D/3-D tiling windows only), its
    pick for overlapping windows; the average on them for tiling windows, its adjoint for both;
    fewer channels than `MIN_CHANNELS` on the pure-JAX algorithms."""
    monkeypatch.setattr(kernels, "ADOPTED", DEFAULTS[0])
    monkeypatch.setattr(kernels, "MIN_CHANNELS", DEFAULTS[1])
    x = jnp.ones((2, 8, 8, 16), jnp.float32)

    def hlo(pool):
        return _hlo(jax.grad(lambda x: jnp.sum(jnp.sin(pool(x)))), x)

    text = hlo(lambda x: jc.max_pool(x, 3, stride=2, padding=1))
    assert FORWARD in text and SPREAD in text
    tiling, overlapping = (
        hlo(lambda x: jc.avg_pool(x, 2)),
        hlo(lambda x: jc.avg_pool(x, 3, stride=1, padding=1)),
    )
    assert AVERAGE in tiling and ADJOINT in tiling
    assert AVERAGE not in overlapping and ADJOINT in overlapping
    assert "jaxconv_" not in _hlo(jax.grad(lambda x: jc.max_pool(x, 2).sum()), x[..., :15])
    # forward mode: the pick on the kernel for overlapping windows only
    jvp = lambda w, s: _hlo(lambda x: jax.jvp(lambda x: jc.max_pool(x, w, stride=s), (x,), (x,)), x)  # noqa: E731
    assert PICK not in jvp(2, 2) and PICK in jvp(3, 2)
    # no derivative: the forward alone on the kernel for 2-D/3-D tiling windows only
    assert FORWARD in _hlo(lambda x: jc.max_pool(x, 2), x)
    assert FORWARD not in _hlo(lambda x: jc.max_pool(x, 3, stride=2, padding=1), x)
    assert FORWARD not in _hlo(lambda x: jc.max_pool(x, 2), x[:, 0])


def test_not_adopted_kernels_stay_pure(monkeypatch):
    monkeypatch.setattr(kernels, "ADOPTED", dict.fromkeys(kernels.ADOPTED, False))
    x = jnp.ones((2, 8, 8, 3), jnp.float32)
    text = _hlo(jax.grad(lambda x: jnp.sum(jc.max_pool(x, 2) + jc.avg_pool(x, 2))), x)
    assert "jaxconv_" not in text


def test_cpus_without_avx512_lower_the_pure_pools(monkeypatch):
    """The kernels are built for AVX-512 alone: where the CPU lacks it (`pool_kernels()`
    false; monkeypatched here, the CI machine has AVX-512) neither binding (`usable`) nor a
    jaxpr traced elsewhere (the lowering rule) reaches them, and the values are the pure
    pools'."""
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 8, 8, 16)), jnp.float32)

    def f(x):
        return jnp.sum(jc.max_pool(x, 3, stride=2, padding=1) ** 2 + jc.avg_pool(x, 2).sum())

    bound = jax.make_jaxpr(jax.grad(f))(x)  # bound while the kernels were usable
    assert SPREAD in _hlo(jax.extend.core.jaxpr_as_fun(bound), x)
    monkeypatch.setattr(kernels, "pool_kernels", lambda: False)
    assert not kernels.usable(x, pool_window("t", x, 2, None, 0, 1, False, "channels_last"))
    assert "jaxconv_" not in _hlo(jax.extend.core.jaxpr_as_fun(bound), x)
    assert "jaxconv_" not in _hlo(jax.grad(f), x)
    with pure_jax():
        want = jax.jit(jax.grad(lambda x: f(x)))(x)
    assert_close(jax.jit(jax.grad(f))(x), want, tol=1e-6)


@pytest.mark.parametrize(
    "target, operands, attrs, message",
    [
        (FORWARD, "x", dict(op="mean"), 'op must be "max" or "min"'),
        (FORWARD, "x", dict(op="max", window=np.ones(4, np.int64)), "1 to 3 spatial dims"),
        (FORWARD, "x", dict(op="max", stride=np.zeros(2, np.int64)), "must be >= 1"),
        (AVERAGE, "x", dict(divisor=np.ones(3, np.float32)), "one factor per output index"),
        (AVERAGE, "x", dict(divisor=np.zeros(4, np.float32)), "nonzero"),
        (SPREAD, "g", dict(), "the offsets must have the output's shape"),
    ],
)
def test_handlers_report_bad_input(target, operands, attrs, message):
    """Each handler checks its operands and attributes and names itself in the error."""
    jc.native_available()
    x = jnp.ones((1, 4, 4, 2), jnp.float32)
    base = dict(window=np.full(2, 2, np.int64), stride=np.full(2, 2, np.int64),
                dilation=np.ones(2, np.int64), pad_lo=np.zeros(2, np.int64))  # fmt: skip
    y = jax.ShapeDtypeStruct((1, 2, 2, 2), jnp.float32)
    if target == FORWARD:
        call = jax.ffi.ffi_call(target, (y, jax.ShapeDtypeStruct(y.shape, jnp.int8)))
        args = (x,)
    elif target == AVERAGE:
        call, args = jax.ffi.ffi_call(target, y), (x,)
    else:
        call = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(x.shape, jnp.float32))
        args = (jnp.ones((1, 2, 2, 2), jnp.float32), jnp.zeros((1, 3, 2, 2), jnp.int8))
    with pytest.raises(Exception, match=f"{target}: .*{message}"):
        jax.block_until_ready(jax.jit(lambda *a: call(*a, **{**base, **attrs}))(*args))
