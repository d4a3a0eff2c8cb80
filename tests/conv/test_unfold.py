"""unfold / fold: values and VJPs against the NumPy reference and JAX's autodiff of plain lax
oracles (hypothesis over ranks 1-3, windows, strides, every padding form, dilations, layouts),
PyTorch parity (F.unfold / F.fold, values and gradients), `check_rules` to order 2, the adjoint
identity, fold(unfold(x)) = x times the window coverage, unfold as the conv lowering's im2col,
vmap (size 0 too), jit, JAX's rules switched off, and bad calls."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxconv as jc
from jaxconv.convolution.unfold import fold, unfold
from jaxconv.reference import _spatial as reference
from jaxconv.testing import check_rules, oracle
from tests.properties.test_forward_mode import jax_rules_off
from tests.support.numerics import assert_close, vjp_pair

LAYOUTS = ("channels_last", "channels_first")


def _full(n, spatial, c, layout):
    return (n, *spatial, c) if layout == "channels_last" else (n, c, *spatial)


@st.composite
def cases(draw):
    nd = draw(st.integers(1, 3))
    top = 5 if nd < 3 else 3
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    sizes = []
    for kk, dd, (lo, hi) in zip(k, d, pads):
        k_eff = (kk - 1) * dd + 1
        sizes.append(draw(st.integers(max(1, k_eff - lo - hi), max(top, k_eff))))
    form = draw(st.sampled_from(["pairs", "ints", "int"]))
    padding = pads
    if form == "ints":
        padding = tuple(lo for lo, _ in pads)
    elif form == "int":
        padding = pads[0][0]
    return dict(
        window=k,
        stride=s,
        dilation=d,
        padding=padding,
        size=tuple(sizes),
        c=draw(st.integers(1, 2)),
        n=draw(st.integers(1, 2)),
        layout=draw(st.sampled_from(LAYOUTS)),
        seed=draw(st.integers(0, 2**16)),
    )


def _kw(case):
    return dict(
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        layout=case["layout"],
    )


@settings(max_examples=12)  # CI time: 12 draws (the profile's 18 elsewhere)
@given(cases())
def test_unfold_fold_match_reference_and_autodiff(case):
    rng = np.random.default_rng(case["seed"])
    kw, k = _kw(case), case["window"]
    x = rng.normal(size=_full(case["n"], case["size"], case["c"], case["layout"]))
    ours = lambda x: unfold(x, k, **kw)  # noqa: E731
    ref = lambda x: oracle.unfold(x, k, **kw)  # noqa: E731
    (cols, (dx,)), (cols_ref, (dx_ref,)) = vjp_pair(ours, ref, jnp.asarray(x), seed=1)
    assert_close(cols, reference.unfold(x, k, **kw))
    assert_close(cols, cols_ref)
    assert_close(dx, dx_ref)
    t = jnp.asarray(rng.normal(size=x.shape))
    assert_close(jax.jvp(ours, (jnp.asarray(x),), (t,))[1], ref(t))

    c = rng.normal(size=cols.shape)
    ours = lambda c: fold(c, case["size"], k, **kw)  # noqa: E731
    ref = lambda c: oracle.fold(c, case["size"], k, **kw)  # noqa: E731
    (z, (dc,)), (z_ref, (dc_ref,)) = vjp_pair(ours, ref, jnp.asarray(c), seed=2)
    assert_close(z, reference.fold(c, case["size"], k, **kw))
    assert_close(z, z_ref)
    assert_close(dc, dc_ref)
    # adjoint identity <unfold x, c> = <x, fold c>
    assert_close(jnp.vdot(cols, c), jnp.vdot(jnp.asarray(x), z))
    # fold(unfold(x)) = x times the number of windows covering each cell
    coverage = reference.fold(np.ones(cols.shape), case["size"], k, **kw)
    assert_close(fold(cols, case["size"], k, **kw), x * coverage)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
        dict(kernel_size=3, stride=2, padding=1),
    ],
)
def test_torch_parity(kw):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 6))
    xt = torch.tensor(x, requires_grad=True)
    cols_t = F.unfold(xt, **kw)
    g = rng.normal(size=cols_t.shape)
    cols_t.backward(torch.tensor(g))
    ours = dict(stride=kw.get("stride", 1), padding=kw.get("padding", 0),
                dilation=kw.get("dilation", 1), layout="channels_first")  # fmt: skip
    k = kw["kernel_size"]
    cols, vjp = jax.vjp(lambda x: unfold(x, k, **ours), jnp.asarray(x))
    assert_close(cols, cols_t.detach().numpy())
    assert_close(vjp(jnp.asarray(g))[0], xt.grad.numpy())
    ct = torch.tensor(g, requires_grad=True)
    zt = F.fold(ct, (7, 6), **kw)
    h = rng.normal(size=zt.shape)
    zt.backward(torch.tensor(h))
    z, vjp = jax.vjp(lambda c: fold(c, (7, 6), k, **ours), jnp.asarray(g))
    assert_close(z, zt.detach().numpy())
    assert_close(vjp(jnp.asarray(h))[0], ct.grad.numpy())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_check_rules(layout):
    kw = dict(stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2), layout=layout)
    x = jnp.asarray(np.random.default_rng(0).normal(size=_full(2, (5, 4), 3, layout)))
    check_rules(
        lambda x: unfold(x, (2, 2), **kw),
        x,
        reference=lambda x: oracle.unfold(x, (2, 2), **kw),
        order=2,
    )
    cols = unfold(x, (2, 2), **kw)
    check_rules(
        lambda c: fold(c, (5, 4), (2, 2), **kw),
        cols,
        reference=lambda c: oracle.fold(c, (5, 4), (2, 2), **kw),
        order=2,
    )


def test_channels_first_is_lax_patches():
    """F.unfold's order is lax's `conv_general_dilated_patches` (NCHW) flattened."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 5, 4, 3)))
    kw = dict(stride=(2, 1, 1), padding=((1, 0), (0, 2), (1, 1)), dilation=(1, 2, 1))
    got = unfold(x, (2, 2, 3), layout="channels_first", **kw)
    assert_close(got, oracle.unfold_patches(x, (2, 2, 3), **kw))


def test_channels_last_is_the_conv_im2col():
    """unfold(x) @ w.reshape(K C, F) = conv(x, w) for a channels-last kernel (*k, C, F)."""
    rng = np.random.default_rng(0)
    x, w = jnp.asarray(rng.normal(size=(2, 6, 5, 3))), jnp.asarray(rng.normal(size=(3, 2, 3, 4)))
    kw = dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2))
    cols = unfold(x, (3, 2), **kw)
    assert_close(cols @ w.reshape(-1, 4), jc.conv(x, w, **kw))


def test_string_padding_and_defaults():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 5, 5, 2)))
    same = unfold(x, 3, padding="SAME", stride=2)
    assert same.shape == (1, 3, 3, 18)
    assert_close(same, unfold(x, 3, padding=1, stride=2))
    assert unfold(x, 2, padding="FULL").shape == (1, 6, 6, 8)
    assert unfold(x, 5).shape == (1, 1, 1, 50)
    # channels_first with int output_size and window: D = 2, PyTorch's
    c = unfold(jnp.moveaxis(x, -1, 1), 2, layout="channels_first")
    assert fold(c, 5, 2, layout="channels_first").shape == (1, 2, 5, 5)


def test_vmap_jit_and_empty_axes():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 2, 4, 5, 2)))
    f = lambda x: unfold(x, 2, stride=(1, 2), padding=1)  # noqa: E731
    assert_close(jax.jit(jax.vmap(f))(x), jnp.stack([f(a) for a in x]))
    cols = f(x[0])
    g = lambda c: fold(c, (4, 5), 2, stride=(1, 2), padding=1)  # noqa: E731
    cs = jnp.stack([cols, 2 * cols])
    assert_close(jax.vmap(g, 0, 2)(cs), jnp.stack([g(cols), g(2 * cols)], 2))
    assert jax.vmap(f)(x[:0]).shape == (0, 2, 5, 3, 8)
    assert jax.vmap(g)(cs[:0]).shape == (0, 2, 4, 5, 2)
    h = jax.vmap(jax.grad(lambda x: jnp.sum(f(x) ** 2)))(x[:0])
    assert h.shape == (0, 2, 4, 5, 2)
    assert unfold(jnp.ones((0, 3, 1)), 2).shape == (0, 2, 2)  # empty batch


def test_dtypes():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4, 4, 2)), jnp.bfloat16)
    cols = unfold(x, 3, padding=1)
    assert cols.dtype == jnp.bfloat16
    z = fold(cols, 4, 3, padding=1)
    assert z.dtype == jnp.bfloat16
    want = reference.fold(np.asarray(cols, np.float64), 4, 3, padding=1)
    assert_close(np.asarray(z, np.float64), want, tol=1e-2)


def test_runs_without_jax_rules():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 2, 3, 4)))

    def f(x):
        c = unfold(x, 2, padding=1, layout="channels_first")
        return jnp.sum(jnp.sin(fold(jnp.sin(c), (3, 4), 2, padding=1, layout="channels_first")))

    jax.clear_caches()
    with jax_rules_off():
        jax.jit(jax.hessian(f))(x)
        jax.jit(lambda x, t: jax.jvp(jax.grad(f), (x,), (t,)))(x, x)
    jax.clear_caches()


X = jnp.ones((1, 4, 4, 2))
XC = jnp.ones((1, 2, 4, 4))


@pytest.mark.parametrize(
    "fn, args, kw, exc, match",
    [
        (unfold, (X, 5), {}, ValueError,
         r"unfold: `window` \(=\(5, 5\)\) has a window \(dilated: \(5, 5\)\) larger than the "
         r"padded input"),
        (unfold, (X, 3), {"dilation": 2}, ValueError, r"unfold: `window` \(=\(3, 3\)\)"),
        (unfold, (X, 0), {}, ValueError, r"unfold: `window` \(=0\) must be >= 1"),
        (unfold, (X, 2), {"stride": 0}, ValueError, r"unfold: `stride` \(=0\) must be >= 1"),
        (unfold, (X, 2), {"dilation": (1, 0)}, ValueError, r"unfold: `dilation` \(=\(1, 0\)\)"),
        (unfold, (X, 2), {"padding": -1}, ValueError, r"unfold: `padding` \(=-1\) must be >= 0"),
        (unfold, (X, (2, 2, 2)), {}, ValueError,
         r"unfold: `window` \(=\(2, 2, 2\)\) must have one entry per spatial dim \(2\)"),
        (unfold, (jnp.ones((4, 4)), 2), {}, ValueError, r"unfold: `x.shape` \(=\(4, 4\)\)"),
        (unfold, (X, 2), {"layout": "NCHW"}, ValueError, r"unfold: `layout` \(='NCHW'\)"),
        (fold, (jnp.ones((1, 10, 9)), (4, 4), 2), {"layout": "channels_first"}, ValueError,
         r"fold: `cols.shape` \(=\(1, 10, 9\)\) must have C \* prod\(window\) columns per "
         r"block: 10 is not divisible by prod\(window\) \(=4"),
        (fold, (jnp.ones((1, 8, 8)), (4, 4), 2), {"layout": "channels_first"}, ValueError,
         r"fold: `cols.shape` \(=\(1, 8, 8\)\) must have 3 \* 3 = 9 blocks"),
        (fold, (jnp.ones((1, 3, 3, 8)), (4, 4), 2), {"stride": 2}, ValueError,
         r"fold: `cols.shape` \(=\(1, 3, 3, 8\)\) must have 2 \* 2 = 4 blocks"),
        (fold, (jnp.ones((1, 3, 8)), (4, 4), 2), {}, ValueError,
         r"fold: `cols.shape` \(=\(1, 3, 8\)\) must be \(N, \*blocks, prod\(window\) \* C\)"),
        (fold, (jnp.ones((1, 8, 9)), (1, 1), 2), {"layout": "channels_first"}, ValueError,
         r"fold: `window` \(=\(2, 2\)\) has a window"),
        (fold, (jnp.ones((1, 8, 9)), (4, 0), 2), {"layout": "channels_first"}, ValueError,
         r"fold: `output_size` \(=\(4, 0\)\) must be >= 1"),
    ],
)  # fmt: skip
def test_bad_calls(fn, args, kw, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kw)
    with pytest.raises(exc, match=match):
        jax.eval_shape(lambda a: fn(a, *args[1:], **kw), args[0])


def test_fold_unbatched_window_count_message_reads_well():
    with pytest.raises(ValueError) as e:
        fold(jnp.ones((1, 8, 8)), (4, 4), 2, layout="channels_first")
    msg = str(e.value)
    assert "\n" not in msg and "output_size=(4, 4)" in msg and math.prod((3, 3)) == 9
