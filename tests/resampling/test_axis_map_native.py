"""The native axis-map kernel (``jaxconv_axis_map_f32``, native/src/axis_map.cc) against the
pure-JAX `_axis_map`: hypothesis-drawn sparse tables (empty rows, their transposes), shapes and
axes; `interpolate` in every mode, values and VJPs, on the native lowering against the same
traced inside `pure_jax()`; the custom call in float32 HLO only; none under jax.export.

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
from jaxconv._core.native import pure_jax
from jaxconv.resampling import axis_map as am
from tests.support.numerics import assert_close

STATUS = jc.native_available()
pytestmark = pytest.mark.skipif(not STATUS, reason=f"native kernels unavailable: {STATUS.reason}")
TARGET = "jaxconv_axis_map_f32"


@pytest.fixture(autouse=True)
def _periodic_too(monkeypatch):
    """The kernel on every table here, periodic plans included (off by default: not faster)."""
    monkeypatch.setattr(am, "NATIVE_PERIODIC", True)


def _bind(x, table, axis, native):
    return am.axis_map_p.bind(x, table=table, axis=axis, native=native)


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
    assert_close(got, np.moveaxis(np.tensordot(am.dense(table), np.asarray(x, np.float64),
                                               axes=(1, axis)), 0, axis), tol=1e-5)  # fmt: skip


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


def test_empty_arrays():
    t = am.make_table(3, [[0, 1], [2, 2]], [[1.0, 2.0], [0.5, 0.0]])
    x = jnp.ones((0, 3, 2), jnp.float32)
    assert jax.jit(partial(_bind, table=t, axis=1, native=True))(x).shape == (0, 2, 2)


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


def test_periodic_plans_stay_pure_by_default(monkeypatch):
    monkeypatch.setattr(am, "NATIVE_PERIODIC", False)
    x = jnp.ones((1, 8, 8, 3), jnp.float32)
    for corners, native in ((False, False), (True, True)):
        f = lambda x, c=corners: jnp.sum(jc.interpolate(x, 16, mode="bilinear", align_corners=c))
        assert (TARGET in jax.jit(jax.grad(f)).lower(x).as_text()) == native
