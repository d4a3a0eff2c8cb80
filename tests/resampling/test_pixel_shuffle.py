"""pixel_shuffle / pixel_unshuffle: values and VJPs against the NumPy reference and JAX's
autodiff of a gather oracle (hypothesis over ranks 1-3, factors per dim, layouts), PyTorch
parity (values and gradients), `check_rules` to order 2, the adjoint identity, vmap (every
argument, size 0), jit, JAX's rules switched off, and bad calls."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxconv.reference import _spatial as reference
from jaxconv.resampling.pixel_shuffle import pixel_shuffle, pixel_unshuffle
from jaxconv.testing import check_rules, oracle
from tests.properties.test_forward_mode import jax_rules_off
from tests.support.numerics import assert_close, vjp_pair

LAYOUTS = ("channels_last", "channels_first")


def _full(n, spatial, c, layout):
    return (n, *spatial, c) if layout == "channels_last" else (n, c, *spatial)


@st.composite
def cases(draw):
    nd = draw(st.integers(1, 3))
    r = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    if draw(st.booleans()) and len(set(r)) == 1:
        r = r[0]  # one int for every dim
    sp = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    return dict(
        nd=nd,
        r=r,
        sp=sp,
        c=draw(st.integers(1, 2)),
        n=draw(st.integers(1, 2)),
        layout=draw(st.sampled_from(LAYOUTS)),
        seed=draw(st.integers(0, 2**16)),
    )


def _factors(case):
    r = case["r"]
    return r if isinstance(r, tuple) else (r,) * case["nd"]


@settings(max_examples=12)  # CI time: 12 draws (the profile's 18 elsewhere)
@given(cases())
def test_shuffle_matches_reference_and_autodiff(case):
    r, layout = _factors(case), case["layout"]
    shape = _full(case["n"], case["sp"], case["c"] * math.prod(r), layout)
    x = np.random.default_rng(case["seed"]).normal(size=shape)
    ours = lambda x: pixel_shuffle(x, case["r"], layout=layout)  # noqa: E731
    ref = lambda x: oracle.pixel_shuffle(x, case["r"], layout=layout)  # noqa: E731
    (y, (dx,)), (y_ref, (dx_ref,)) = vjp_pair(ours, ref, jnp.asarray(x), seed=case["seed"])
    assert_close(y, reference.pixel_shuffle(x, case["r"], layout))
    assert_close(y, y_ref)
    assert_close(dx, dx_ref)
    t = jnp.asarray(np.random.default_rng(1).normal(size=shape))
    assert_close(jax.jvp(ours, (jnp.asarray(x),), (t,))[1], ref(t))


@settings(max_examples=12)  # CI time: 12 draws (the profile's 18 elsewhere)
@given(cases())
def test_unshuffle_matches_reference_and_autodiff(case):
    r, layout = _factors(case), case["layout"]
    shape = _full(case["n"], tuple(s * f for s, f in zip(case["sp"], r)), case["c"], layout)
    x = np.random.default_rng(case["seed"]).normal(size=shape)
    ours = lambda x: pixel_unshuffle(x, case["r"], layout=layout)  # noqa: E731
    ref = lambda x: oracle.pixel_unshuffle(x, case["r"], layout=layout)  # noqa: E731
    (y, (dx,)), (y_ref, (dx_ref,)) = vjp_pair(ours, ref, jnp.asarray(x), seed=case["seed"])
    assert_close(y, reference.pixel_unshuffle(x, case["r"], layout))
    assert_close(y, y_ref)
    assert_close(dx, dx_ref)
    # the pair: inverse permutations, and the adjoint identity <shuffle x, y> = <x, unshuffle y>
    assert_close(pixel_shuffle(y, case["r"], layout=layout), x)
    z = jnp.asarray(np.random.default_rng(2).normal(size=y.shape))
    lhs = jnp.vdot(pixel_shuffle(z, case["r"], layout=layout), x)
    assert_close(lhs, jnp.vdot(z, y))


@pytest.mark.parametrize("r", [2, 3])
def test_torch_parity(r):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(r)
    x = rng.normal(size=(2, 2 * r * r, 3, 4))
    g = rng.normal(size=(2, 2, 3 * r, 4 * r))
    xt = torch.tensor(x, requires_grad=True)
    yt = F.pixel_shuffle(xt, r)
    yt.backward(torch.tensor(g))
    f = lambda x: pixel_shuffle(x, r, layout="channels_first")  # noqa: E731
    y, vjp = jax.vjp(f, jnp.asarray(x))
    assert_close(y, yt.detach().numpy())
    assert_close(vjp(jnp.asarray(g))[0], xt.grad.numpy())
    # unshuffle, and channels_last with the same channel order on the last axis
    u = rng.normal(size=(2, 3, 2 * r, 3 * r))
    ut = torch.tensor(u, requires_grad=True)
    vt = F.pixel_unshuffle(ut, r)
    h = rng.normal(size=vt.shape)
    vt.backward(torch.tensor(h))
    v, vjp = jax.vjp(lambda u: pixel_unshuffle(u, r, layout="channels_first"), jnp.asarray(u))
    assert_close(v, vt.detach().numpy())
    assert_close(vjp(jnp.asarray(h))[0], ut.grad.numpy())
    cl = pixel_unshuffle(jnp.moveaxis(jnp.asarray(u), 1, -1), r)
    assert_close(jnp.moveaxis(cl, -1, 1), vt.detach().numpy())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_check_rules(layout):
    x = jnp.asarray(np.random.default_rng(0).normal(size=_full(2, (2, 3), 12, layout)))
    check_rules(
        lambda x: pixel_shuffle(x, (2, 3), layout=layout),
        x,
        reference=lambda x: oracle.pixel_shuffle(x, (2, 3), layout=layout),
        order=2,
    )
    y = jnp.asarray(np.random.default_rng(1).normal(size=_full(2, (4, 3), 2, layout)))
    check_rules(
        lambda y: pixel_unshuffle(y, (2, 1), layout=layout),
        y,
        reference=lambda y: oracle.pixel_unshuffle(y, (2, 1), layout=layout),
        order=2,
    )


def test_vmap_jit_and_empty_axes():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2, 2, 3, 8)))
    f = lambda x: pixel_shuffle(x, 2)  # noqa: E731
    assert_close(jax.vmap(f)(x), jnp.stack([f(a) for a in x]))
    assert_close(jax.jit(jax.vmap(f, 1, 1))(x), jnp.stack([f(x[:, i]) for i in range(2)], 1))
    assert jax.vmap(f)(x[:0]).shape == (0, 2, 4, 6, 2)
    gx = jax.vmap(jax.grad(lambda x: jnp.sum(f(x) ** 2)))(x[:0])
    assert gx.shape == (0, 2, 2, 3, 8)
    u = lambda y: pixel_unshuffle(y, (2, 3), layout="channels_first")  # noqa: E731
    y = jnp.ones((0, 1, 2, 4, 6))
    assert jax.vmap(u)(y).shape == (0, 1, 12, 2, 2)
    assert pixel_shuffle(jnp.ones((0, 1, 4)), 2).shape == (0, 2, 2)  # empty batch


def test_any_dtype():
    x = jnp.arange(8, dtype=jnp.int32).reshape(1, 1, 8)
    assert pixel_shuffle(x, 2).tolist() == reference.pixel_shuffle(x, 2).astype(int).tolist()
    b = jnp.asarray(np.random.default_rng(0).normal(size=(1, 2, 2, 4)), jnp.bfloat16)
    assert pixel_unshuffle(pixel_shuffle(b, 2), 2).dtype == jnp.bfloat16
    assert (pixel_unshuffle(pixel_shuffle(b, 2), 2) == b).all()


def test_runs_without_jax_rules():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 2, 2, 8)))
    f = lambda x: jnp.sum(jnp.sin(pixel_unshuffle(pixel_shuffle(x, 2), (1, 2))))  # noqa: E731
    jax.clear_caches()
    with jax_rules_off():
        jax.jit(jax.hessian(f))(x)
        jax.jit(lambda x, t: jax.jvp(jax.grad(f), (x,), (t,)))(x, x)
    jax.clear_caches()


@pytest.mark.parametrize(
    "fn, args, kw, exc, match",
    [
        (pixel_shuffle, (jnp.ones((1, 2, 2, 6)), 2), {}, ValueError,
         r"pixel_shuffle: `x.shape` \(=\(1, 2, 2, 6\)\) must have channels \(=6\) divisible"),
        (pixel_shuffle, (jnp.ones((1, 9, 2, 2)), 2), {"layout": "channels_first"}, ValueError,
         r"channels \(=9\) divisible by prod\(`upscale_factor`\) \(=4"),
        (pixel_shuffle, (jnp.ones((1, 2, 4)), 0), {}, ValueError,
         r"pixel_shuffle: `upscale_factor` \(=0\) must be >= 1"),
        (pixel_shuffle, (jnp.ones((1, 2, 2, 4)), (2, 2, 2)), {}, ValueError,
         r"`upscale_factor` \(=\(2, 2, 2\)\) must have one entry per spatial dim \(2\)"),
        (pixel_shuffle, (jnp.ones((1, 2, 4)), 2.0), {}, TypeError, r"`upscale_factor` \(=2.0\)"),
        (pixel_shuffle, (jnp.ones((2, 4)), 2), {}, ValueError, r"pixel_shuffle: `x.shape`"),
        (pixel_shuffle, (jnp.ones((1, 2, 4)), 2), {"layout": "NHWC"}, ValueError,
         r"pixel_shuffle: `layout` \(='NHWC'\)"),
        (pixel_unshuffle, (jnp.ones((1, 5, 4, 1)), 2), {}, ValueError,
         r"pixel_unshuffle: `x.shape` \(=\(1, 5, 4, 1\)\) must have spatial sizes \(5, 4\) "
         r"divisible by `downscale_factor`"),
        (pixel_unshuffle, (jnp.ones((1, 4, 4, 1)), -1), {}, ValueError,
         r"pixel_unshuffle: `downscale_factor` \(=-1\) must be >= 1"),
    ],
)  # fmt: skip
def test_bad_calls(fn, args, kw, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kw)
    with pytest.raises(exc, match=match):
        jax.eval_shape(lambda a: fn(a, *args[1:], **kw), args[0])
