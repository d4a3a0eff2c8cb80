"""The native max-unpooling scatter (``jaxconv_unpool_scatter_f32``, native/src/unpool.cc)
against the pure-JAX `_scatter`: hypothesis-drawn shapes, layouts and indices (shared winners,
negative and out-of-range ones, which are wrapped or dropped as jnp's scatter does); the
backward passes of `fractional_max_pool`, uneven `adaptive_max_pool` and `max_unpool`'s
forward on it against the same traced inside `pure_jax()`; the custom call in float32 HLO only,
none under jax.export.

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
from jaxconv.pooling import unpool
from tests.support.numerics import assert_close

STATUS = jc.native_available()
pytestmark = pytest.mark.skipif(not STATUS, reason=f"native kernels unavailable: {STATUS.reason}")
TARGET = "jaxconv_unpool_scatter_f32"


def _scatter(y, idx, layout, shape, native):
    if native:
        return unpool.scatter_p.bind(y, idx, layout=layout, shape=shape, native=True)
    return unpool._scatter(y, idx, layout=layout, shape=shape)


@given(st.data())
def test_kernel_matches_pure_scatter(data):
    nd = data.draw(st.integers(1, 3))
    layout = data.draw(st.sampled_from(["channels_last", "channels_first"]))
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5))
    pooled = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    shape = tuple(data.draw(st.integers(1, 5)) for _ in range(nd))
    size = int(np.prod(shape))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    dims = (n, *pooled, c) if layout == "channels_last" else (n, c, *pooled)
    y = jnp.asarray(rng.normal(size=dims), jnp.float32)
    idx = jnp.asarray(rng.integers(-size - 2, size + 3, size=dims), jnp.int32)
    f = partial(_scatter, layout=layout, shape=shape)
    got = jax.jit(partial(f, native=True))(y, idx)
    assert_close(got, jax.jit(partial(f, native=False))(y, idx), tol=1e-6)


def test_large_threaded_and_empty():
    rng = np.random.default_rng(1)
    for layout, dims in (("channels_last", (8, 40, 40, 32)), ("channels_first", (8, 32, 40, 40))):
        y = jnp.asarray(rng.normal(size=dims), jnp.float32)
        idx = jnp.asarray(rng.integers(0, 3600, size=dims), jnp.int32)  # many shared winners
        f = partial(_scatter, layout=layout, shape=(60, 60))
        assert TARGET in jax.jit(partial(f, native=True)).lower(y, idx).as_text()
        assert_close(
            jax.jit(partial(f, native=True))(y, idx),
            jax.jit(partial(f, native=False))(y, idx),
            tol=1e-6,
        )
    y0 = jnp.ones((0, 2, 2, 3), jnp.float32)
    out = jax.jit(partial(_scatter, layout="channels_last", shape=(3, 3), native=True))(
        y0, jnp.zeros(y0.shape, jnp.int32)
    )
    assert out.shape == (0, 3, 3, 3)


CASES = {
    "fractional_max_pool": lambda x: jc.fractional_max_pool(
        x, 2, output_size=(4, 5), samples=jnp.full((x.shape[0], x.shape[-1], 2), 0.3)
    ),
    "adaptive_max_pool": lambda x: jc.adaptive_max_pool(x, (4, 3)),  # uneven windows
    "max_unpool": lambda x: jc.max_unpool(*jc.max_pool(x, 2, return_indices=True), x.shape),
}


@pytest.mark.parametrize("op", list(CASES))
def test_ops_on_the_kernel_equal_pure_jax(op):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 9, 11, 3)), jnp.float32)

    def f(x):
        y, vjp = jax.vjp(CASES[op], x)
        return y, vjp(jnp.cos(y))[0]

    native = jax.jit(f)
    with pure_jax():
        pure = jax.jit(lambda x: f(x))
        assert TARGET not in pure.lower(x).as_text()
        want = pure(x)
    assert TARGET in native.lower(x).as_text()
    for a, b in zip(native(x), want):
        assert_close(a, b, tol=1e-6)
    assert TARGET not in jax.jit(f).lower(x.astype(jnp.float64)).as_text()
    exported = jax.export.export(jax.jit(f))(x)
    assert TARGET not in exported.mlir_module()
    for a, b in zip(exported.call(x), want):
        assert_close(a, b, tol=1e-6)


def test_the_choice_is_made_when_traced():
    """`scatter_p` carries the kernel choice of its trace (static `native`, `use_native()` at
    bind): a jaxpr traced inside `pure_jax()` and lowered outside it has no custom call, one
    traced outside has it; a primitive bound with native=False lowers to XLA's scatter-add,
    with the same values; transposing twice (unpool_gather_p back to scatter_p) keeps it."""
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 8, 8, 4)), jnp.float32)

    def backward(x):  # adaptive max pooling's VJP: g scattered onto the winners
        y, vjp = jax.vjp(CASES["adaptive_max_pool"], x)
        return vjp(jnp.cos(y))[0]

    with pure_jax():  # (a function of its own: jit's trace cache keys on the function)
        inside = jax.make_jaxpr(lambda x: backward(x))(x)
    outside = jax.make_jaxpr(backward)(x)
    assert TARGET not in jax.jit(jax.extend.core.jaxpr_as_fun(inside)).lower(x).as_text()
    assert TARGET in jax.jit(jax.extend.core.jaxpr_as_fun(outside)).lower(x).as_text()
    assert_close(jax.extend.core.jaxpr_as_fun(inside)(x)[0], backward(x), tol=1e-6)

    def f(x):
        y, idx = jc.max_pool(x, 2, return_indices=True)
        return jc.max_unpool(y, idx, x.shape)

    y, idx = jc.max_pool(x, 2, return_indices=True)
    for native in (False, True):
        bound = jax.jit(
            lambda y, native=native: unpool.scatter_p.bind(
                y, idx, layout="channels_last", shape=(8, 8), native=native
            )
        )
        assert (TARGET in bound.lower(y).as_text()) == native
        assert_close(bound(y), f(x), tol=0)

    # scatter's transpose is unpool_gather_p; the gather's transpose binds a scatter again, with
    # the choice of the trace that transposes it
    def twice(y):
        gather = jax.linear_transpose(lambda u: unpool.scatter(u, idx, "channels_last", (8, 8)), y)
        return jax.linear_transpose(lambda c: gather(c)[0], f(x))(y)[0]

    with pure_jax():
        inside = jax.make_jaxpr(lambda y: twice(y))(y)
    assert TARGET not in jax.jit(jax.extend.core.jaxpr_as_fun(inside)).lower(y).as_text()
    assert TARGET in jax.jit(twice).lower(y).as_text()
    assert_close(jax.jit(twice)(y), f(x), tol=0)
