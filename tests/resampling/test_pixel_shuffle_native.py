"""The native sub-pixel shuffle (``jaxconv_pixel_shuffle``, native/src/shuffle.cc) against the
pure-JAX permutations it replaces on CPU (`pixel_shuffle._shuffle` / `_unshuffle`):
hypothesis-drawn ranks (1-3), factors, channel counts, batch sizes and both layouts, every
element width the kernel takes (bfloat16, float32, int32, float64, complex64), both directions
bit for bit, on every geometry (the handler called directly) and through the public ops (the
lowering's pick); the HLO (where the custom call goes and where not: bool, C < 16 channels-last,
jax.export, 9 spatial dims), a threaded call, the transformations and the handler's errors.

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
from jaxconv.resampling import pixel_shuffle as ps

STATUS = jc.native_available()
pytestmark = pytest.mark.skipif(not STATUS, reason=f"native kernels unavailable: {STATUS.reason}")
TARGET = "jaxconv_pixel_shuffle"
DTYPES = (jnp.bfloat16, jnp.float32, jnp.int32, jnp.float64, jnp.complex64)


def _coarse(rng, n, sizes, c, factors, layout, dtype):
    big_r = int(np.prod(factors))
    shape = (n, *sizes, c * big_r) if layout == "channels_last" else (n, c * big_r, *sizes)
    x = rng.normal(size=shape) * 100
    if jnp.dtype(dtype) == jnp.complex64:
        x = x + 1j * rng.normal(size=shape)
    return jnp.asarray(x.astype(np.int32) if dtype == jnp.int32 else x, dtype)


def _fine_shape(shape, factors, layout):
    big_r = int(np.prod(factors))
    if layout == "channels_last":
        n, *sizes, cr = shape
        return (n, *(s * f for s, f in zip(sizes, factors)), cr // big_r)
    n, cr, *sizes = shape
    return (n, cr // big_r, *(s * f for s, f in zip(sizes, factors)))


@st.composite
def geometries(draw):
    nd = draw(st.integers(1, 3))
    return dict(
        n=draw(st.integers(1, 3)),
        sizes=tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd))),
        factors=tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd))),
        c=draw(st.sampled_from([1, 2, 3, 16, 17])),
        layout=draw(st.sampled_from(["channels_last", "channels_first"])),
        dtype=draw(st.sampled_from(DTYPES)),
        seed=draw(st.integers(0, 2**16)),
    )


@given(geometries())
def test_kernel_matches_the_permutations_bit_for_bit(g):
    """The handler in both directions on every drawn geometry (adopted by the lowering or not)
    equals `_shuffle` / `_unshuffle` exactly, and each direction undoes the other."""
    rng = np.random.default_rng(g["seed"])
    x = _coarse(rng, g["n"], g["sizes"], g["c"], g["factors"], g["layout"], g["dtype"])
    cfg = ps.Shuffle(g["factors"], g["layout"])
    fine = _fine_shape(x.shape, g["factors"], g["layout"])

    def run(x):
        y = ps._kernel(x, cfg=cfg, to_fine=True, out_shape=fine)
        back = ps._kernel(y, cfg=cfg, to_fine=False, out_shape=x.shape)
        return y, back, ps._shuffle(x, cfg=cfg), ps._unshuffle(y, cfg=cfg)

    y, back, y0, back0 = jax.jit(run)(x)
    assert y.dtype == x.dtype and y.shape == fine
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(back, back0)
    np.testing.assert_array_equal(back, x)


@given(geometries())
def test_public_ops_on_cpu_equal_the_pure_permutations(g):
    """`pixel_shuffle` / `pixel_unshuffle` and their VJPs and JVPs as lowered on CPU (the kernel
    where `_native_shuffle` picks it) equal the pure permutations; the HLO holds the custom call
    exactly where the pick says."""
    rng = np.random.default_rng(g["seed"])
    dtype = jnp.float32 if g["dtype"] == jnp.int32 else g["dtype"]
    x = _coarse(rng, g["n"], g["sizes"], g["c"], g["factors"], g["layout"], dtype)
    cfg = ps.Shuffle(g["factors"], g["layout"])
    kw = dict(layout=g["layout"])
    shuffle = lambda x: jc.pixel_shuffle(x, g["factors"], **kw)  # noqa: E731
    y0 = ps._shuffle(x, cfg=cfg)
    t = jnp.asarray(rng.normal(size=x.shape), dtype)
    g_y = jnp.asarray(rng.normal(size=y0.shape), dtype)

    def run(x, t, g_y):
        y, vjp = jax.vjp(shuffle, x)
        u = jc.pixel_unshuffle(y, g["factors"], **kw)
        return y, u, vjp(g_y)[0], jax.jvp(shuffle, (x,), (t,))[1]

    text = jax.jit(run).lower(x, t, g_y).as_text()
    expect = ps._native_shuffle(cfg, True, x) or ps._native_shuffle(cfg, False, y0)
    assert (TARGET in text) == expect
    y, u, dx, ty = jax.jit(run)(x, t, g_y)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(u, x)
    np.testing.assert_array_equal(dx, ps._unshuffle(g_y, cfg=cfg))
    np.testing.assert_array_equal(ty, ps._shuffle(t, cfg=cfg))


def test_where_the_lowering_picks_the_kernel():
    """As measured (`_native_shuffle`): channels-first always; channels-last with C >= 16 fine
    channels for every unshuffle and the shuffles with R <= 4; never for 1-byte dtypes, empty
    arrays, jax.export, more than 8 spatial dims or a trace inside `pure_jax()`."""

    def hlo(f, x):
        return jax.jit(f).lower(x).as_text()

    cl16 = jnp.ones((2, 4, 4, 64))
    assert TARGET in hlo(lambda x: jc.pixel_shuffle(x, 2), cl16)
    assert TARGET in hlo(lambda y: jc.pixel_unshuffle(y, 2), jnp.ones((2, 8, 8, 16)))
    assert TARGET not in hlo(lambda x: jc.pixel_shuffle(x, 3), jnp.ones((2, 4, 4, 36)))  # C 4
    assert TARGET not in hlo(lambda x: jc.pixel_shuffle(x, 2), jnp.ones((1, 2, 2, 2, 128)))
    assert TARGET in hlo(lambda y: jc.pixel_unshuffle(y, 2), jnp.ones((1, 4, 4, 4, 16)))
    cf = jnp.ones((2, 4, 4, 4))
    assert TARGET in hlo(lambda x: jc.pixel_shuffle(x, 2, layout="channels_first"), cf)
    assert TARGET not in hlo(lambda x: jc.pixel_shuffle(x, 2), cl16.astype(bool))
    assert TARGET not in hlo(lambda x: jc.pixel_shuffle(x, 2), jnp.ones((0, 4, 4, 64)))
    nine = jnp.ones((1, *(1,) * 9, 16 * 2**9))
    assert TARGET not in hlo(lambda x: jc.pixel_shuffle(x, 2), nine)
    assert jc.pixel_shuffle(nine, 2).shape == (1, *(2,) * 9, 16)
    with pure_jax():  # decided when traced: the jaxpr made inside, lowered outside
        jaxpr = jax.make_jaxpr(lambda x: jax.vjp(lambda x: jc.pixel_shuffle(x, 2), x)[1](x[..., :16]
                               .repeat(2, 1).repeat(2, 2)))(cl16)  # fmt: skip
    pure = jax.jit(jax.extend.core.jaxpr_as_fun(jaxpr))
    assert TARGET not in pure.lower(cl16).as_text()
    assert TARGET in jax.jit(lambda x: jc.pixel_shuffle(x, 2)).lower(cl16).as_text()
    exported = jax.export.export(jax.jit(lambda x: jc.pixel_shuffle(x, 2)))(cl16)
    assert TARGET not in exported.mlir_module()
    np.testing.assert_array_equal(exported.call(cl16), jc.pixel_shuffle(cl16, 2))


def test_a_threaded_call():
    """Big enough for XLA's intra-op threads (over 2**16 elements): the same as the pure one,
    and the same every call."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(8, 24, 20, 64)), jnp.float32)
    cfg = ps.Shuffle((2, 2), "channels_last")
    f = jax.jit(lambda x: jc.pixel_unshuffle(jc.pixel_shuffle(x, 2), 2))
    assert TARGET in f.lower(x).as_text()
    np.testing.assert_array_equal(jax.jit(jc.pixel_shuffle, static_argnums=1)(x, 2),
                                  ps._shuffle(x, cfg=cfg))  # fmt: skip
    for _ in range(3):
        np.testing.assert_array_equal(f(x), x)


def test_transformations_on_the_kernel():
    """vmap (folded into N), eager calls, grad of grad and jacfwd run on the kernel and equal the
    permutation's exact derivatives."""
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 2, 2, 2, 64)), jnp.float32)
    f = lambda x: jc.pixel_shuffle(x, 2)  # noqa: E731
    assert TARGET in jax.jit(jax.vmap(f)).lower(x).as_text()
    np.testing.assert_array_equal(jax.vmap(f)(x), jnp.stack([f(xi) for xi in x]))
    w = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4, 4, 16)), jnp.float32)
    loss = lambda x: jnp.sum(w * f(x) ** 3)  # noqa: E731
    dx = jax.grad(loss)(x[0])
    np.testing.assert_allclose(dx, jc.pixel_unshuffle(3 * w * f(x[0]) ** 2, 2), rtol=1e-6)
    jac = jax.jacfwd(f)(x[0, :1, :1, :1])  # (1, 2, 2, 16, 1, 1, 1, 64): a permutation matrix
    assert float(jac.sum()) == 64.0 and float(jnp.max(jac)) == 1.0


@pytest.mark.parametrize(
    "fine_shape, factors, match",
    [
        ((1, 4, 4, 16), [2, 2, 2], "rank"),
        ((1, 4, 4, 15), [2, 2], "do not correspond"),
        ((1, 4, 4, 16), [0, 2], "must be >= 1"),
        ((1, 4, 4, 16), [], "1 to 8 entries"),
    ],
)
def test_handler_errors_name_it(fine_shape, factors, match):
    """Inconsistent shapes or factors return an error naming the handler (never a crash)."""
    x = jnp.ones((1, 2, 2, 64), jnp.float32)
    call = jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct(fine_shape, jnp.float32))
    with pytest.raises(Exception, match=f"{TARGET}: .*{match}"):
        jax.block_until_ready(
            call(x, factors=np.asarray(factors, np.int64), channels_last=np.int64(1),
                 to_fine=np.int64(1))
        )  # fmt: skip
    with pytest.raises(Exception, match=f"{TARGET}: .*bytes are not supported"):
        jax.block_until_ready(
            jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct((1, 4, 4, 16), jnp.int8))(
                x.astype(jnp.int8), factors=np.asarray([2, 2], np.int64),
                channels_last=np.int64(1), to_fine=np.int64(1))
        )  # fmt: skip
