"""The native axis-map kernels (``jaxconv_axis_map_f32`` and the fused two-axis
``jaxconv_axis_map2_f32``, native/src/axis_map.cc) against the pure-JAX `_axis_map`:
hypothesis-drawn sparse tables (empty rows, their transposes), shapes and axes (adjacent or
not); `interpolate` in every mode and `adaptive_avg_pool`, values and VJPs, on the native
lowering against the same traced inside `pure_jax()`; the custom calls in float32 HLO only; none
under jax.export.

Skipped where the native package is not built (`jaxconv.native_available()`)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxconv as jc
from jaxconv._core import axis_map as am
from jaxconv._core.native import pool_kernels, pure_jax
from jaxconv.pooling import adaptive
from tests.support.numerics import assert_close

STATUS = jc.native_available()
pytestmark = pytest.mark.skipif(not STATUS, reason=f"native kernels unavailable: {STATUS.reason}")
TARGET = "jaxconv_axis_map"  # either kernel
ONE, PAIR = "jaxconv_axis_map_f32", "jaxconv_axis_map2_f32"


@pytest.fixture(autouse=True)
def _periodic_too(monkeypatch):
    """The kernel on every table here, periodic plans included (off by default: not faster)."""
    monkeypatch.setattr(am, "NATIVE_PERIODIC", True)


def _bind(x, table, axis, native):
    return am.axis_map_p.bind(x, tables=(table,), axes=(axis,), native=native)


def _bind2(x, tables, axes, native):
    return am.axis_map_p.bind(x, tables=tables, axes=axes, native=native)


def _dense_along(x, table, axis):
    """A x along `axis` in float64 NumPy (the reference)."""
    y = np.tensordot(am.dense(table), np.asarray(x, np.float64), axes=(1, axis))
    return np.moveaxis(y, 0, axis)


@st.composite
def tables(draw):
    """A random sparse O x L table (some rows empty, up to 5 nonzeros a row), maybe transposed."""
    in_size, out_size = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    width = draw(st.integers(1, 5))
    idx = rng.integers(0, in_size, size=(out_size, width))
    w = rng.normal(size=(out_size, width))
    w[rng.random(size=(out_size, width)) < draw(st.sampled_from([0.0, 0.3, 0.8]))] = 0.0
    t = am.make_table(in_size, idx, w)
    keep = [k for k, v in enumerate(t.weights) if v != 0.0]  # zero rows: empty
    t = am.AxisTable(
        t.in_size,
        t.out_size,
        tuple(t.rows[k] for k in keep),
        tuple(t.cols[k] for k in keep),
        tuple(t.weights[k] for k in keep),
    )
    return am.transposed(t) if draw(st.booleans()) else t


@given(tables(), st.data())
def test_kernel_matches_pure_jax(table, data):
    nd = data.draw(st.integers(1, 4))
    axis = data.draw(st.integers(0, nd - 1))
    shape = [data.draw(st.integers(1, 4)) for _ in range(nd)]
    shape[axis] = table.in_size
    x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
    got = jax.jit(partial(_bind, table=table, axis=axis, native=True))(x)
    want = jax.jit(partial(_bind, table=table, axis=axis, native=False))(x)
    assert got.dtype == jnp.float32
    assert_close(got, want, tol=1e-6)
    assert_close(got, _dense_along(x, table, axis), tol=1e-5)


@given(tables(), tables(), st.data())
def test_pair_kernel_matches_pure_jax(t1, t2, data):
    """Two maps in one custom call, on adjacent axes or with dims between them (mid > 1)."""
    nd = data.draw(st.integers(2, 5))
    a1 = data.draw(st.integers(0, nd - 2))
    a2 = data.draw(st.integers(a1 + 1, nd - 1))
    shape = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    shape[a1], shape[a2] = t1.in_size, t2.in_size
    x = jnp.asarray(np.random.default_rng(1).normal(size=shape), jnp.float32)
    fused = jax.jit(partial(_bind2, tables=(t1, t2), axes=(a1, a2), native=True))
    assert PAIR in fused.lower(x).as_text()
    got = fused(x)
    assert_close(got, jax.jit(partial(_bind2, tables=(t1, t2), axes=(a1, a2), native=False))(x),
                 tol=1e-6)  # fmt: skip
    assert_close(got, _dense_along(_dense_along(x, t1, a1), t2, a2), tol=1e-5)


def test_kernel_large_and_threaded():
    """Big enough for several threads; the 2x upsampling table and its transpose."""
    t = am.make_table(64, np.stack([np.arange(128) // 2, np.minimum(np.arange(128) // 2 + 1, 63)],
                                   1), np.full((128, 2), 0.5))  # fmt: skip
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 64, 33, 16)), jnp.float32)
    for table, axis in ((t, 1), (am.transposed(am.transposed(t)), 1)):
        got = jax.jit(partial(_bind, table=table, axis=axis, native=True))(x)
        want = jax.jit(partial(_bind, table=table, axis=axis, native=False))(x)
        assert_close(got, want, tol=1e-6)
    g = jnp.asarray(np.random.default_rng(2).normal(size=(4, 128, 33, 16)), jnp.float32)
    tt = am.transposed(t)
    assert_close(jax.jit(partial(_bind, table=tt, axis=1, native=True))(g),
                 jax.jit(partial(_bind, table=tt, axis=1, native=False))(g), tol=1e-6)  # fmt: skip


def test_pair_large_threaded_and_unfused():
    """A pair big enough for several threads, narrow (C = 20: the 16-lane path and its rest)
    and wide rows (C = 300); three maps (one single map, then the pair); a slab over
    `FUSED_SLAB` runs the two maps one after the other, with the same values."""
    up = am.make_table(24, np.stack([np.arange(48) // 2, np.minimum(np.arange(48) // 2 + 1, 23)],
                                    1), np.full((48, 2), 0.5))  # fmt: skip
    down = am.transposed(up)
    rng = np.random.default_rng(4)
    for c in (20, 300):
        for pair in ((up, down), (down, up), (up, up)):
            x = jnp.asarray(rng.normal(size=(3, pair[0].in_size, pair[1].in_size, c)), jnp.float32)
            f = partial(_bind2, tables=pair, axes=(1, 2))
            assert_close(jax.jit(partial(f, native=True))(x), jax.jit(partial(f, native=False))(x),
                         tol=1e-6)  # fmt: skip
    x = jnp.asarray(rng.normal(size=(2, 24, 48, 24, 4)), jnp.float32)
    f = partial(_bind2, tables=(up, down, up), axes=(1, 2, 3))
    assert am._native_plan(x.shape, (up, down, up), (1, 2, 3)) == (("one", 0), ("pair", 1))
    assert_close(jax.jit(partial(f, native=True))(x), jax.jit(partial(f, native=False))(x),
                 tol=1e-6)  # fmt: skip
    assert am._native_plan((2, 24, 24, 10**6), (up, up), (1, 2)) == (("one", 0), ("one", 1))


def test_empty_arrays():
    t = am.make_table(3, [[0, 1], [2, 2]], [[1.0, 2.0], [0.5, 0.0]])
    x = jnp.ones((0, 3, 2), jnp.float32)
    assert jax.jit(partial(_bind, table=t, axis=1, native=True))(x).shape == (0, 2, 2)
    pair = partial(_bind2, tables=(t, t), axes=(1, 2), native=True)
    assert jax.jit(pair)(jnp.ones((0, 3, 3), jnp.float32)).shape == (0, 2, 2)
    assert jax.jit(pair)(jnp.ones((2, 3, 3, 0), jnp.float32)).shape == (2, 2, 2, 0)


CASES = [
    (1, dict(mode="nearest")),
    (2, dict(mode="nearest-exact")),
    (1, dict(mode="linear", align_corners=False)),
    (1, dict(mode="linear", align_corners=True)),
    (2, dict(mode="linear", align_corners=False)),
    (2, dict(mode="linear", align_corners=True)),
    (3, dict(mode="linear", align_corners=False)),
    (3, dict(mode="linear", align_corners=True)),
    (2, dict(mode="bicubic", align_corners=False)),
    (2, dict(mode="bicubic", align_corners=True)),
    (2, dict(mode="linear", antialias=True)),
    (1, dict(mode="area")),
    (2, dict(mode="area")),
    (3, dict(mode="area")),
]


@pytest.mark.parametrize("scale", [2.0, 0.5, 1.5])
@pytest.mark.parametrize("nd, kw", CASES)
def test_interpolate_native_vs_pure(nd, kw, scale):
    spatial = (7, 6, 5)[:nd]
    x = jnp.asarray(np.random.default_rng(nd).normal(size=(2, *spatial, 3)), jnp.float32)

    def f(x):
        y, vjp = jax.vjp(lambda x: jc.interpolate(x, scale_factor=scale, **kw), x)
        return y, vjp(jnp.cos(y))[0]

    native = jax.jit(f)
    with pure_jax():
        pure = jax.jit(lambda x: f(x))  # a fresh function: its own trace
        want = pure(x)
    assert TARGET in native.lower(x).as_text()
    assert TARGET not in pure.lower(x).as_text()
    for a, b in zip(native(x), want):
        assert_close(a, b, tol=1e-5)


def _grad_hlo(dtype):
    x = jnp.ones((1, 8, 8, 3), dtype)
    f = lambda x: jnp.sum(jc.interpolate(x, scale_factor=2, mode="bilinear") ** 2)  # noqa: E731
    return jax.jit(jax.grad(f)).lower(x).compile().as_text(), jax.grad(f), x


def test_float32_grad_uses_kernel_float64_does_not():
    assert TARGET in _grad_hlo(jnp.float32)[0]
    assert TARGET not in _grad_hlo(jnp.float64)[0]  # x64: tests/conftest.py
    with pure_jax():
        assert TARGET not in _grad_hlo(jnp.float32)[0]


def test_eager_call_uses_kernel_and_matches():
    t = am.make_table(4, [[0, 1], [1, 2], [2, 3]], [[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]])
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4, 5)), jnp.float32)
    y = am.axis_map(x, t, 1)
    assert_close(y, np.einsum("ol,nlc->noc", am.dense(t), np.asarray(x)), tol=1e-6)


def test_export_has_no_custom_call():
    _, grad, x = _grad_hlo(jnp.float32)
    exported = jax.export.export(jax.jit(grad))(x)
    assert "custom_call @jaxconv_axis_map" not in exported.mlir_module()
    assert "custom_call @jaxconv_axis_map" in jax.jit(grad).lower(x).as_text()
    assert_close(exported.call(x), jax.jit(grad)(x), tol=1e-5)


def test_periodic_single_maps_stay_pure_by_default(monkeypatch):
    """A single map with a periodic plan keeps XLA's strided slices; a pair runs fused."""
    monkeypatch.setattr(am, "NATIVE_PERIODIC", False)
    x = jnp.ones((1, 8, 3), jnp.float32)
    for corners, native in ((False, False), (True, True)):
        f = lambda x, c=corners: jnp.sum(jc.interpolate(x, 16, mode="linear", align_corners=c))
        assert (TARGET in jax.jit(jax.grad(f)).lower(x).as_text()) == native
    x2 = jnp.ones((1, 8, 8, 3), jnp.float32)
    f = lambda x: jnp.sum(jc.interpolate(x, 16, mode="bilinear"))  # noqa: E731
    assert PAIR in jax.jit(jax.grad(f)).lower(x2).as_text()


@pytest.mark.parametrize(
    "shape, out",
    [((2, 7, 7, 5), 1), ((2, 8, 6, 5), (4, 3)), ((2, 9, 7, 5), (4, 5)), ((2, 9, 7, 5), (None, 3)),
     ((2, 5, 6, 7, 3), (2, 4, 3)), ((2, 9, 9), 4)],
)  # fmt: skip
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_adaptive_avg_pool_native_vs_pure(shape, out, layout):
    """Adaptive average pooling runs the axis-map kernels on CPU for float32 (uneven and global
    windows; tiling ones take the tiling average pool instead), with the pure-JAX algorithms'
    values and gradients."""
    x = jnp.asarray(np.random.default_rng(5).normal(size=shape), jnp.float32)
    tiles = adaptive._tiles(adaptive.adaptive_geometry("test", x, out, layout))

    def f(x):
        y, vjp = jax.vjp(lambda x: jc.adaptive_avg_pool(x, out, layout=layout), x)
        return y, vjp(jnp.cos(y))[0]

    native = jax.jit(f)
    with pure_jax():
        pure = jax.jit(lambda x: f(x))
        want = pure(x)
    assert (TARGET in native.lower(x).as_text()) != tiles
    assert TARGET not in pure.lower(x).as_text()
    for a, b in zip(native(x), want):
        assert_close(a, b, tol=1e-5)
    x64 = x.astype(jnp.float64)
    assert TARGET not in jax.jit(f).lower(x64).as_text()  # float64: the pure-JAX algorithms


def test_adaptive_avg_pool_tiling_runs_the_pooling_kernels():
    """Tiling windows (L % O == 0, not one window) run the tiling average pool: on CPU its
    native pooling kernels (channels-last, >= 16 channels), no axis map; values and VJP as the
    pure-JAX pool's."""
    x = jnp.asarray(np.random.default_rng(6).normal(size=(2, 14, 14, 32)), jnp.float32)

    def f(x):
        y, vjp = jax.vjp(lambda x: jc.adaptive_avg_pool(x, 7), x)
        return y, vjp(jnp.cos(y))[0]

    hlo = jax.jit(f).lower(x).as_text()
    assert TARGET not in hlo
    if pool_kernels():  # (an AVX-512 CPU)
        assert "jaxconv_avg_pool_f32" in hlo and "jaxconv_avg_pool_adjoint_f32" in hlo
    with pure_jax():
        want = jax.jit(lambda x: f(x))(x)
    for a, b in zip(jax.jit(f)(x), want):
        assert_close(a, b, tol=1e-6)
