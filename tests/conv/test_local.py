"""conv_local / conv_general_dilated_local: values and gradients against the NumPy reference
and JAX's autodiff of lax's `conv_general_dilated_local` (hypothesis over ranks 1-3, windows,
strides, paddings, dilations, layouts, bias), the drop-in against lax for other dimension
numbers, lhs dilation and negative / string padding, a torch computation (unfold + einsum,
values and gradients), `check_rules` to order 2, shared kernels = `conv`, vmap of every
argument (size 0 too), jit, the jaxprs, JAX's rules switched off, and bad calls."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

import jaxconv as jc
from jaxconv.convolution.local import conv_general_dilated_local, conv_local
from jaxconv.reference import _spatial as reference
from jaxconv.testing import check_rules, oracle
from tests.properties.test_forward_mode import jax_rules_off
from tests.support.numerics import assert_close

LAYOUTS = ("channels_last", "channels_first")


def _full(n, spatial, c, layout):
    return (n, *spatial, c) if layout == "channels_last" else (n, c, *spatial)


def _w_shape(o, k, cin, cout, layout):
    return (*o, *k, cin, cout) if layout == "channels_last" else (cout, cin, *k, *o)


@st.composite
def cases(draw):
    nd = draw(st.integers(1, 3))
    top = 5 if nd < 3 else 3
    k = tuple(draw(st.integers(1, 3 if nd < 3 else 2)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 1))) for _ in range(nd))
    size, out = [], []
    for kk, ss, dd, (lo, hi) in zip(k, s, d, pads):
        k_eff = (kk - 1) * dd + 1
        n = draw(st.integers(max(1, k_eff - lo - hi), max(top, k_eff)))
        size.append(n)
        out.append((n + lo + hi - k_eff) // ss + 1)
    return dict(
        window=k,
        stride=s,
        dilation=d,
        padding=pads,
        size=tuple(size),
        out=tuple(out),
        cin=draw(st.integers(1, 2)),
        cout=draw(st.integers(1, 3)),
        n=draw(st.integers(1, 2)),
        bias=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        seed=draw(st.integers(0, 2**16)),
    )


def _args(case, rng):
    layout = case["layout"]
    x = rng.normal(size=_full(case["n"], case["size"], case["cin"], layout))
    w = rng.normal(size=_w_shape(case["out"], case["window"], case["cin"], case["cout"], layout))
    b = rng.normal(size=(case["cout"],)) if case["bias"] else None
    return x, w, b


def _kw(case):
    return dict(
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        layout=case["layout"],
    )


@settings(max_examples=12)  # CI time: 12 draws (the profile's 18 elsewhere)
@given(cases())
def test_conv_local_matches_reference_and_autodiff(case):
    rng = np.random.default_rng(case["seed"])
    x, w, b = _args(case, rng)
    kw = _kw(case)
    args = tuple(jnp.asarray(a) for a in (x, w, b) if a is not None)
    ours = lambda x, w, *b: conv_local(x, w, *b, **kw)  # noqa: E731
    ref = lambda x, w, *b: oracle.conv_local(x, w, *b, **kw)  # noqa: E731
    g = np.random.default_rng(1).standard_normal(_out_shape(case))
    (y, grads, _), (y_ref, grads_ref, _) = _both(ours, ref, args, g, None)
    assert_close(y, reference.conv_local(x, w, b, **kw))
    assert_close(y, y_ref)
    for a, e in zip(grads, grads_ref):
        assert_close(a, e)
    dx, dw = reference.conv_local_grad(x, w, g, **kw)
    assert_close(grads[0], dx)
    assert_close(grads[1], dw)


def _out_shape(case):
    return _full(case["n"], case["out"], case["cout"], case["layout"])


def _both(f, ref, args, g, ts):
    """(value, VJP at g, JVP along ts) of f and of ref, one compiled program (ts None: no
    JVP; the hypothesis sweep leaves forward mode to `check_rules` and the drop-in cases)."""

    def run(fun, args, g, ts):
        y, vjp = jax.vjp(fun, *args)
        return y, vjp(g), None if ts is None else jax.jvp(fun, args, ts)[1]

    return jax.jit(lambda a, g, t: (run(f, a, g, t), run(ref, a, g, t)))(args, g, ts)


DROPIN = [
    # lhs shape, rhs-spec'd dimension numbers, filter, strides, padding, lhs_dil, rhs_dil
    ((2, 3, 7, 6), None, (3, 2), (2, 1), ((1, 0), (2, 1)), None, (1, 2)),
    ((2, 7, 6, 3), ("NHWC", "HWIO", "NHWC"), (2, 3), (1, 2), "SAME", None, None),
    ((2, 6, 7, 3), ("NWHC", "WHIO", "CNHW"), (2, 3), (1, 2), ((1, -1), (0, 2)), (2, 1), None),
    ((1, 2, 9), ("NCW", "OIW", "NCW"), (3,), (2,), "SAME_LOWER", None, (2,)),
    (
        (2, 5, 4, 3, 2),
        ("NDHWC", "DHWIO", "NDHWC"),
        (2, 1, 2),
        (1, 2, 1),
        ((0, 0), (1, 0), (0, -1)),
        (1, 1, 2),
        None,
    ),
    ((3, 2, 5, 4), ("CNHW", "IOWH", "HWNC"), (2, 2), (1, 1), ((0, 1), (1, 0)), None, None),
]


def _rhs_for(lhs_shape, dn, filt, strides, padding, ld, rd, rng, cout=3):
    lhs = jnp.zeros(lhs_shape)
    p = lax.conv_general_dilated_patches(lhs, filt, strides, padding, ld, rd, dn)
    spec = lax.conv_dimension_numbers(lhs_shape, (1, 1, *filt), dn)
    shape = [0] * len(lhs_shape)
    shape[spec.rhs_spec[0]] = cout
    shape[spec.rhs_spec[1]] = lhs_shape[spec.lhs_spec[1]] * math.prod(filt)
    for a, o in zip(spec.rhs_spec[2:], spec.out_spec[2:]):
        shape[a] = p.shape[o]
    return rng.normal(size=shape)


@pytest.mark.parametrize("case", DROPIN, ids=lambda c: f"{c[1]}-{c[4]}")
def test_dropin_matches_lax(case):
    lhs_shape, dn, filt, strides, padding, ld, rd = case
    rng = np.random.default_rng(0)
    lhs = jnp.asarray(rng.normal(size=lhs_shape))
    rhs = jnp.asarray(_rhs_for(*case, rng))
    settings = (strides, padding, filt, ld, rd, dn)
    ours = lambda a, b: conv_general_dilated_local(a, b, *settings)  # noqa: E731
    ref = lambda a, b: lax.conv_general_dilated_local(  # noqa: E731
        a, b, *settings, precision=lax.Precision.HIGHEST
    )
    g = rng.normal(size=jax.eval_shape(ref, lhs, rhs).shape)
    ts = (jnp.asarray(rng.normal(size=lhs.shape)), jnp.asarray(rng.normal(size=rhs.shape)))
    (y, grads, t), (y_ref, grads_ref, t_ref) = _both(ours, ref, (lhs, rhs), g, ts)
    assert_close(y, y_ref)
    assert_close(t, t_ref)
    for a, e in zip(grads, grads_ref):
        assert_close(a, e)


def test_dropin_check_rules_and_precision():
    lhs_shape, dn, filt, strides, padding, ld, rd = DROPIN[2]
    rng = np.random.default_rng(1)
    lhs = jnp.asarray(rng.normal(size=lhs_shape))
    rhs = jnp.asarray(_rhs_for(*DROPIN[2], rng))
    settings = (strides, padding, filt, ld, rd, dn)
    check_rules(
        lambda a, b: conv_general_dilated_local(a, b, *settings),
        lhs,
        rhs,
        reference=lambda a, b: lax.conv_general_dilated_local(
            a, b, *settings, precision=lax.Precision.HIGHEST
        ),
        order=2,
    )
    both = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)
    y = conv_general_dilated_local(lhs, rhs, *settings, precision=both)
    assert_close(y, lax.conv_general_dilated_local(lhs, rhs, *settings, precision=both))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_check_rules(layout):
    rng = np.random.default_rng(0)
    kw = dict(stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2), layout=layout)
    x = jnp.asarray(rng.normal(size=_full(2, (5, 4), 2, layout)))
    w = jnp.asarray(rng.normal(size=_w_shape((3, 3), (2, 2), 2, 3, layout)))
    b = jnp.asarray(rng.normal(size=(3,)))
    check_rules(
        lambda x, w, b: conv_local(x, w, b, **kw),
        x,
        w,
        b,
        reference=lambda x, w, b: oracle.conv_local(x, w, b, **kw),
        order=2,
    )


def test_torch_parity():
    """PyTorch has no locally connected layer: F.unfold and an einsum, with autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(4, 3, 3, 2, 2, 5))  # o = (2, 5)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    cols = torch.nn.functional.unfold(xt, (3, 2), stride=(2, 1), padding=(0, 1), dilation=(1, 2))
    yt = torch.einsum("nfl,ofl->nol", cols, wt.reshape(4, 18, 10)).reshape(2, 4, 2, 5)
    g = rng.normal(size=yt.shape)
    yt.backward(torch.tensor(g))
    kw = dict(stride=(2, 1), padding=(0, 1), dilation=(1, 2), layout="channels_first")
    y, vjp = jax.vjp(lambda x, w: conv_local(x, w, **kw), jnp.asarray(x), jnp.asarray(w))
    assert_close(y, yt.detach().numpy())
    dx, dw = vjp(jnp.asarray(g))
    assert_close(dx, xt.grad.numpy())
    assert_close(dw, wt.grad.numpy())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shared_kernel_is_conv(layout):
    rng = np.random.default_rng(0)
    kw = dict(stride=(2, 1), padding="SAME", dilation=(1, 2), layout=layout)
    x = jnp.asarray(rng.normal(size=_full(2, (6, 5), 3, layout)))
    w_cl = jnp.asarray(rng.normal(size=(3, 2, 3, 4)))
    w = w_cl if layout == "channels_last" else jnp.transpose(w_cl, (3, 2, 0, 1))
    b = jnp.asarray(rng.normal(size=(4,)))
    y = jc.conv(x, w, b, **kw)
    o = y.shape[1:3] if layout == "channels_last" else y.shape[2:]
    if layout == "channels_last":
        wl = jnp.broadcast_to(w_cl, (*o, *w_cl.shape))
    else:
        wl = jnp.broadcast_to(w[..., None, None], (*w.shape, *o))
    assert_close(conv_local(x, wl, b, **kw), y)


def test_vmap_every_argument_and_empty_axes():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 2, 4, 5, 2)))
    w = jnp.asarray(rng.normal(size=(3, 3, 5, 2, 2, 2, 3)))
    b = jnp.asarray(rng.normal(size=(3, 3)))
    f = lambda x, w, b: conv_local(x, w, b, padding=((0, 0), (1, 0)))  # noqa: E731
    for axes in [(0, 0, 0), (0, None, None), (None, 0, None), (None, None, 0), (0, 0, None)]:
        args = [a if ax is not None else a[0] for a, ax in zip((x, w, b), axes)]
        pick = lambda a, ax, i: a if ax is None else a[i]  # noqa: E731
        want = jnp.stack([f(*(pick(a, ax, i) for a, ax in zip(args, axes))) for i in range(3)])
        assert_close(jax.jit(jax.vmap(f, axes))(*args), want, err_msg=str(axes))
        empty = [a[:0] if ax is not None else a for a, ax in zip(args, axes)]
        assert jax.vmap(f, axes)(*empty).shape == (0, 2, 3, 5, 3), axes

    # per-example weight gradients (vmap of grad, x mapped, w shared), and of every order
    def loss(w, x):
        return jnp.sum(jnp.sin(conv_local(x[None], w, padding=((0, 0), (1, 0)))))

    per_example = jax.vmap(jax.grad(loss), (None, 0))(w[0], x[0])
    want = jnp.stack([jax.grad(loss)(w[0], x[0, i]) for i in range(2)])
    assert_close(per_example, want)
    hvp = lambda t: jax.jvp(jax.grad(loss), (w[0], x[0, 0]), (t, x[0, 0]))[1]  # noqa: E731
    assert_close(jax.vmap(hvp)(w[:2]), jnp.stack([hvp(w[0]), hvp(w[1])]))


def test_jaxprs_show_our_primitives():
    rng = np.random.default_rng(0)
    x, w = (
        jnp.asarray(rng.normal(size=(1, 3, 3, 2))),
        jnp.asarray(rng.normal(size=(2, 2) * 2 + (2, 2))),
    )
    f = lambda x, w: jnp.sum(jnp.sin(conv_local(x, w)))  # noqa: E731
    text = str(jax.make_jaxpr(lambda x, w: jax.jvp(jax.grad(f, (0, 1)), (x, w), (x, w)))(x, w))
    assert "dot_general" not in text and "conv_general_dilated" not in text
    for name in ("jaxconv_conv_local", "jaxconv_conv_local_input_grad",
                 "jaxconv_conv_local_weight_grad"):  # fmt: skip
        assert name in text, name


def test_runs_without_jax_rules():
    rng = np.random.default_rng(0)
    x, w = (
        jnp.asarray(rng.normal(size=(1, 2, 3, 3))),
        jnp.asarray(rng.normal(size=(2, 2, 2, 2, 2, 2))),
    )
    b = jnp.asarray(rng.normal(size=(2,)))
    f = lambda x, w, b: jnp.sum(jnp.sin(conv_local(x, w, b, layout="channels_first")))  # noqa: E731
    lhs, rhs = jnp.asarray(rng.normal(size=(1, 2, 4))), jnp.asarray(rng.normal(size=(3, 4, 2)))
    g = lambda a, r: jnp.sum(jnp.sin(conv_general_dilated_local(a, r, (2,), "SAME", (2,))))  # noqa: E731
    jax.clear_caches()
    with jax_rules_off():
        jax.jit(jax.hessian(f, (0, 1, 2)))(x, w, b)
        jax.jit(lambda a, t: jax.jvp(jax.grad(f, (0, 1)), a, t))((x, w, b), (x, w, b))
        jax.jit(jax.hessian(g, (0, 1)))(lhs, rhs)
    jax.clear_caches()


def test_dtypes():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, 4, 4, 2)), jnp.bfloat16)
    w = jnp.asarray(rng.normal(size=(2, 2, 3, 3, 2, 3)), jnp.bfloat16)
    y, vjp = jax.vjp(conv_local, x, w)
    assert y.dtype == jnp.bfloat16 and all(d.dtype == jnp.bfloat16 for d in vjp(y))
    want = reference.conv_local(np.asarray(x, np.float64), np.asarray(w, np.float64))
    assert_close(np.asarray(y, np.float64), want, tol=3e-2)
    xc = jnp.asarray(rng.normal(size=(1, 3, 2)) + 1j * rng.normal(size=(1, 3, 2)))
    wc = jnp.asarray(rng.normal(size=(2, 2, 2, 1)) + 1j * rng.normal(size=(2, 2, 2, 1)))
    assert_close(conv_local(xc, wc), oracle.conv_local(xc, wc), tol=1e-12)


X = jnp.ones((1, 4, 4, 2))
W = jnp.ones((3, 3, 2, 2, 2, 5))


@pytest.mark.parametrize(
    "fn, args, kw, exc, match",
    [
        (conv_local, (X, jnp.ones((2, 2, 2, 2, 2, 5))), {}, ValueError,
         r"conv_local: `w.shape` \(=\(2, 2, 2, 2, 2, 5\)\) must have one kernel per output "
         r"position: output grid \(3, 3\)"),
        (conv_local, (X, jnp.ones((3, 3, 2, 2, 3, 5))), {}, ValueError,
         r"conv_local: `w.shape` \(=\(3, 3, 2, 2, 3, 5\)\) has 3 input channels but x has 2"),
        (conv_local, (X, jnp.ones((3, 3, 2, 5))), {}, ValueError,
         r"conv_local: `w.shape` \(=\(3, 3, 2, 5\)\) must be \(\*o, \*k, C_in, C_out\): rank 6"),
        (conv_local, (X, jnp.ones((1, 1, 5, 5, 2, 5))), {}, ValueError,
         r"conv_local: `w.shape` \(=\(1, 1, 5, 5, 2, 5\)\) has a window"),
        (conv_local, (X, W), {"stride": 0}, ValueError, r"conv_local: `stride` \(=0\)"),
        (conv_local, (X, W, jnp.ones((4,))), {}, ValueError,
         r"conv_local: `bias.shape` \(=\(4,\)\) must be \(5,\)"),
        (conv_local, (X, W.astype(jnp.float32)), {}, TypeError,
         r"conv_local: `w.dtype` \(='float32'\) must equal `x.dtype`"),
        (conv_local, (X.astype(jnp.int32), W), {}, TypeError, r"conv_local: `x.dtype`"),
        (conv_local, (X, W), {"layout": "NHWC"}, ValueError, r"conv_local: `layout`"),
        (conv_general_dilated_local, (jnp.ones((1, 2, 4, 4)), jnp.ones((5, 8, 2, 2)),
                                      (1, 1), "VALID", (2, 2)), {}, ValueError,
         r"conv_general_dilated_local: `rhs.shape` \(=\(5, 8, 2, 2\)\) must have C_in \* "
         r"prod\(filter_shape\) \(=2 \* 4\) input features and the output's spatial shape "
         r"\(3, 3\)"),
        (conv_general_dilated_local, (jnp.ones((1, 2, 4, 4)), jnp.ones((5, 8, 3, 3)),
                                      (1, 1), "FULL", (2, 2)), {}, ValueError,
         r"conv_general_dilated_local: `padding` \(='FULL'\)"),
        (conv_general_dilated_local, (jnp.ones((1, 2, 4, 4)), jnp.ones((5, 8, 3, 3)),
                                      (1, 1), "VALID", (2, 2), None, None, ("NCHW", "OIHW")),
         {}, ValueError, r"conv_general_dilated_local: `dimension_numbers`"),
        (conv_general_dilated_local, (jnp.ones((1, 2, 4, 4)), jnp.ones((5, 8, 3, 3)),
                                      (1, 1), "VALID", (0, 2)), {}, ValueError,
         r"conv_general_dilated_local: `filter_shape` \(=\(0, 2\)\) must be >= 1"),
        (conv_general_dilated_local, (jnp.ones((1, 2, 4, 4)), jnp.ones((5, 8, 3, 3)),
                                      (1, 1), "SAME", (2, 2), (2, 1)), {}, ValueError,
         r"conv_general_dilated_local: `padding` \(='SAME'\) must be explicit \(lo, hi\) "
         r"pairs when `lhs_dilation` \(=\(2, 1\)\) is > 1"),
    ],
)  # fmt: skip
def test_bad_calls(fn, args, kw, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kw)
    with pytest.raises(exc, match=match):
        jax.eval_shape(lambda a: fn(a, *args[1:], **kw), args[0])
