"""conv, conv_input_grad, conv_weight_grad: explicit VJPs == autodiff of the plain lax forward."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

import jaxconv as jc
from jaxconv.testing import oracle
from tests.support.numerics import assert_close, vjp_pair

BACKWARDS = ["auto", "lean", "transpose", "phase", "matmul"]


def lax_kw(kw):
    """A case's settings for the oracle: all but jaxconv's `backward`."""
    return {k: v for k, v in kw.items() if k != "backward"}


@st.composite
def conv_cases(draw, modes=True):
    """Random conv settings: rank 1-3, any padding form, groups, layouts, flip, modes."""
    nd = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(["channels_last", "channels_first"]))
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = [draw(st.integers(1, 3)) for _ in range(nd)]
    dilation = [draw(st.integers(1, 2)) for _ in range(nd)]
    stride = [draw(st.integers(1, 3)) for _ in range(nd)]
    k_eff = [(kk - 1) * d + 1 for kk, d in zip(k, dilation)]
    form = draw(st.sampled_from(["VALID", "SAME", "FULL", "int", "pairs"]))
    if form == "int":
        p = draw(st.integers(0, 2))
        pairs, padding = [(p, p)] * nd, p
    elif form == "pairs":
        pairs = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd)]
        padding = pairs
    elif form == "FULL":
        pairs, padding = [(ke - 1, ke - 1) for ke in k_eff], "FULL"
    else:
        pairs, padding = None, form
    size = [draw(st.integers(ke, ke + 4)) for ke in k_eff]
    mode = "zeros"
    if modes and pairs is not None and draw(st.booleans()):
        mode = draw(st.sampled_from(["reflect", "replicate", "circular"]))
        pairs = [(min(lo, n - 1), min(hi, n - 1)) for (lo, hi), n in zip(pairs, size)]
        padding = pairs
    n = draw(st.integers(1, 2))
    x_shape = (n, *size, cin) if layout == "channels_last" else (n, cin, *size)
    w_shape = (*k, cin // groups, cout) if layout == "channels_last" else (cout, cin // groups, *k)
    kw = dict(
        stride=tuple(stride),
        dilation=tuple(dilation),
        groups=groups,
        flip=draw(st.booleans()),
        layout=layout,
        padding_mode=mode,
        backward=draw(st.sampled_from(BACKWARDS)),
    )
    ref_padding = tuple(pairs) if pairs is not None else padding
    return x_shape, w_shape, draw(st.booleans()), padding, ref_padding, kw


def _arrays(rng, dtype, *shapes):
    return [jnp.asarray(rng.standard_normal(s), dtype) for s in shapes]


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv_vjp_matches_autodiff(dtype, case, seed):
    x_shape, w_shape, use_bias, padding, ref_padding, kw = case
    rng = np.random.default_rng(seed)
    cout = w_shape[-1] if kw["layout"] == "channels_last" else w_shape[0]
    x, w, b = _arrays(rng, dtype, x_shape, w_shape, (cout,))
    b = b if use_bias else None
    (y, grads), (y_ref, grads_ref) = vjp_pair(
        lambda x, w, b: jc.conv(x, w, b, padding=padding, **kw),
        lambda x, w, b: oracle.conv(x, w, b, padding=ref_padding, **lax_kw(kw)),
        *(x, w, b),
        seed=seed,
    )
    assert y.dtype == y_ref.dtype
    assert_close(y, y_ref, dtype)
    for got, want in zip(grads, grads_ref):
        if want is None:
            assert got is None
        else:
            assert got.dtype == want.dtype
            assert_close(got, want, dtype)


@settings(max_examples=15)
@given(case=conv_cases(modes=False), seed=st.integers(0, 2**16))
def test_input_and_weight_grad_functions(case, seed):
    """The public gradient functions equal the two halves of jax.vjp of the lax conv."""
    x_shape, w_shape, _, padding, ref_padding, kw = case
    kw = {k: val for k, val in kw.items() if k != "padding_mode"}
    rng = np.random.default_rng(seed)
    x, w = _arrays(rng, jnp.float64, x_shape, w_shape)
    y, vjp_ref = jax.vjp(lambda x, w: oracle.conv(x, w, padding=ref_padding, **lax_kw(kw)), x, w)
    g = jnp.asarray(rng.standard_normal(y.shape))
    dx_ref, dw_ref = vjp_ref(g)
    assert_close(jc.conv_input_grad(x.shape, w, g, padding=padding, **kw), dx_ref)
    assert_close(jc.conv_weight_grad(x, w.shape, g, padding=padding, **kw), dw_ref)


CHECK_GRADS_CASES = [
    dict(stride=2, padding=1),
    dict(stride=(1, 2), padding="SAME", dilation=(2, 1)),
    dict(groups=2, padding=((2, 0), (0, 1)), flip=True),
    dict(groups=4, padding="FULL", stride=3),  # depthwise
    dict(padding=2, padding_mode="reflect", stride=2),
    dict(padding=(1, 2), padding_mode="circular"),
    dict(padding=(2, 1), padding_mode="replicate", layout="channels_first"),
]


@pytest.mark.parametrize("backward", BACKWARDS)
@pytest.mark.parametrize("kw", CHECK_GRADS_CASES, ids=str)
def test_check_grads_order2(kw, backward, rng):
    kw = dict(kw, backward=backward)
    layout = kw.get("layout", "channels_last")
    g = kw.get("groups", 1)
    x_shape = (2, 6, 5, 4) if layout == "channels_last" else (2, 4, 6, 5)
    w_shape = (3, 2, 4 // g, 4) if layout == "channels_last" else (4, 4 // g, 3, 2)
    x, w, b = _arrays(rng, jnp.float64, x_shape, w_shape, (4,))
    jax.test_util.check_grads(
        lambda x, w, b: jc.conv(x, w, b, **kw), (x, w, b), order=2, modes=["rev"]
    )


def test_grad_functions_check_grads_order2(rng):
    x, w = _arrays(rng, jnp.float64, (2, 7, 3), (3, 3, 2))
    kw = dict(stride=2, padding=((1, 0),), dilation=1)
    g = jnp.asarray(rng.standard_normal(jc.conv(x, w, **kw).shape))
    jax.test_util.check_grads(
        lambda w, g: jc.conv_input_grad(x.shape, w, g, **kw), (w, g), order=2, modes=["rev"]
    )
    jax.test_util.check_grads(
        lambda x, g: jc.conv_weight_grad(x, w.shape, g, **kw), (x, g), order=2, modes=["rev"]
    )


def test_high_rank_4d(rng):
    """Spatial rank is x.ndim - 2: a 4-D convolution works the same way."""
    x, w = _arrays(rng, jnp.float64, (1, 4, 3, 4, 3, 2), (2, 1, 2, 2, 2, 3))
    kw = dict(stride=(1, 2, 1, 2), padding=1, dilation=(1, 1, 2, 1))
    f = lambda x, w: jc.conv(x, w, **kw)
    y, vjp = jax.vjp(f, x, w)
    y_ref, vjp_ref = jax.vjp(lambda x, w: oracle.conv(x, w, **kw), x, w)
    assert_close(y, y_ref)
    g = jnp.asarray(rng.standard_normal(y.shape))
    for a, b in zip(vjp(g), vjp_ref(g)):
        assert_close(a, b)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_preferred_element_type_and_precision(dtype, rng):
    x, w = _arrays(rng, dtype, (2, 6, 6, 3), (3, 3, 3, 4))
    kw = dict(padding=1, precision=lax.Precision.HIGHEST, preferred_element_type=dtype)
    y, vjp = jax.vjp(lambda x, w: jc.conv(x, w, **kw), x, w)
    y_ref, vjp_ref = jax.vjp(lambda x, w: oracle.conv(x, w, **kw), x, w)
    assert y.dtype == y_ref.dtype
    assert_close(y, y_ref, dtype)
    g = jnp.ones_like(y)
    for a, b in zip(vjp(g), vjp_ref(g)):
        assert a.dtype == b.dtype
        assert_close(a, b, dtype)


def test_torch_parity(rng):
    """Same numbers as torch.nn.functional.conv2d and torch.nn.grad for a PyTorch-style call."""
    torch = pytest.importorskip("torch")
    x, w, b = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3)), np.ones(6)
    kw = dict(stride=2, padding=1, dilation=(1, 2), groups=2)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, torch.tensor(b), **kw)
    tg = torch.tensor(rng.standard_normal(tuple(ty.shape)))
    ty.backward(tg)
    f = lambda x, w: jc.conv(x, w, jnp.asarray(b), layout="channels_first", **kw)
    y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w))
    dx, dw = vjp(jnp.asarray(tg.numpy()))
    assert_close(y, ty.detach().numpy())
    assert_close(dx, tx.grad.numpy())
    assert_close(dw, tw.grad.numpy())
    for mode in ["reflect", "replicate", "circular"]:
        ty = torch.nn.functional.conv2d(
            torch.nn.functional.pad(torch.tensor(x), (2, 2, 1, 1), mode=mode), tw.detach(), groups=2
        )
        y = jc.conv(
            jnp.asarray(x),
            jnp.asarray(w),
            padding=(1, 2),
            padding_mode=mode,
            groups=2,
            layout="channels_first",
        )
        assert_close(y, ty.numpy())


def test_phase_traces_only_the_residues_with_taps():
    """A huge stride (2-D, stride 1000, 3x3 kernel) makes s^D = 10^6 residue classes, but only
    the k^D = 9 that hold kernel taps produce work: the gradient's jaxpr stays small."""
    x = jnp.ones((1, 5, 5, 2))
    w = jnp.ones((3, 3, 2, 3))
    f = lambda x: jc.conv(x, w, stride=1000, padding=1, backward="phase").sum()  # noqa: E731
    jaxpr = jax.make_jaxpr(jax.grad(f))(x)
    assert len(str(jaxpr)) < 200_000
    np.testing.assert_allclose(
        jax.grad(f)(x),
        jax.grad(lambda x: jc.conv(x, w, stride=1000, padding=1, backward="transpose").sum())(x),
    )


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, pads, dilation, groups",
    [
        ((2, 7, 6, 4), (3, 2, 4, 5), (2, 1), ((1, 0), (0, 2)), (1, 2), 1),
        ((1, 6, 5, 7, 6), (3, 3, 2, 2, 6), (1, 2, 3), ((1, 1), (2, 0), (0, 1)), (1, 1, 2), 3),
        ((3, 9, 2), (4, 1, 6), (3,), ((2, 1),), (1,), 2),
    ],
)
def test_per_tap_input_gradient_equals_lax(x_shape, w_shape, stride, pads, dilation, groups):
    """The "taps" input-gradient lowering (auto's choice for 3-D layers and wide 2-D ones)
    equals the lax transposed convolution (float64)."""
    from jaxconv.convolution.lowering.choice import DX
    from jaxconv.convolution.lowering.geometry import Geometry

    geo = Geometry(
        x_shape=x_shape,
        w_shape=w_shape,
        stride=stride,
        pads=pads,
        dilation=dilation,
        groups=groups,
        precision=None,
        pet=None,
        fwd="xla",
        dx="taps",
        dw="xla",
    )
    rng = np.random.default_rng(0)
    w = rng.standard_normal(w_shape)
    g = rng.standard_normal(geo.out_shape)
    assert_close(DX["taps"](g, w, geo), DX["transpose"](g, w, geo))


# ------------------------------------------------------------------------ padding="CAUSAL"


@given(
    nd=st.integers(1, 3),
    k=st.integers(1, 3),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    n=st.integers(3, 7),
    layout=st.sampled_from(["channels_last", "channels_first"]),
)
def test_causal_padding(nd, k, stride, dilation, n, layout):
    """padding="CAUSAL" is k_eff - 1 on the low side of every spatial dim (Flax's, N-d):
    ceil(n / stride) outputs, output i sees only inputs <= i * stride, the VJP is the explicit
    (k_eff - 1, 0) padding's, and conv_transpose(padding="CAUSAL") is its adjoint."""
    rng = np.random.default_rng(n * 7 + k)
    cl = layout == "channels_last"
    x_shape = (2, *(n,) * nd, 3) if cl else (2, 3, *(n,) * nd)
    w_shape = (*(k,) * nd, 3, 2) if cl else (2, 3, *(k,) * nd)
    x, w = (jnp.asarray(rng.normal(size=s)) for s in (x_shape, w_shape))
    kw = dict(stride=stride, dilation=dilation, layout=layout)
    pads = (((k - 1) * dilation, 0),) * nd
    causal = lambda x, w: jc.conv(x, w, padding="CAUSAL", **kw)  # noqa: E731
    ax, t = (1 if cl else 2), n // 2
    n_t = -(-n // stride) * stride  # conv_transpose's output size, ceil(n / s) * s
    g = jnp.asarray(rng.normal(size=jax.eval_shape(causal, x, w).shape))

    @jax.jit  # one compile per example
    def run(x, w, g):
        y, vjp = jax.vjp(causal, x, w)
        y_ref, vjp_ref = jax.vjp(lambda x, w: oracle.conv(x, w, padding=pads, **kw), x, w)
        # causality along the first spatial dim: changing inputs after t leaves outputs <= t/s
        later = jnp.arange(n).reshape([-1 if i == ax else 1 for i in range(x.ndim)]) > t
        y2 = causal(jnp.where(later, 9.0, x), w)
        # the adjoint: <conv(x), g> = <x, conv_transpose(g)>
        xt = jc.conv_transpose(g, w, padding="CAUSAL", **kw)
        spatial = _sp(x.ndim, cl)
        x_big = lax.pad(
            x,
            jnp.zeros((), x.dtype),
            [(0, n_t - n if i in spatial else 0, 0) for i in range(x.ndim)],
        )
        return (
            y,
            y_ref,
            vjp(g),
            vjp_ref(g),
            y2,
            xt,
            jnp.vdot(causal(x_big, w), g),
            jnp.vdot(x_big, xt),
        )

    y, y_ref, ours, ref, y2, xt, lhs, rhs = run(x, w, g)
    assert y.shape[ax] == -(-n // stride)
    assert_close(y, y_ref)
    for a, b in zip(ours, ref):
        assert_close(a, b)
    keep = t // stride + 1
    assert_close(lax.slice_in_dim(y2, 0, keep, axis=ax), lax.slice_in_dim(y, 0, keep, axis=ax))
    assert xt.shape[ax] == n_t
    assert_close(lhs, rhs)


def _sp(ndim, cl):
    return range(1, ndim - 1) if cl else range(2, ndim)


def test_causal_padding_equals_flax():
    """Flax's `nn.Conv(padding="CAUSAL")` (1-D there) gives the same values as ours."""
    nn = pytest.importorskip("flax.linen")
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 11, 3)), jnp.float32)
    for stride, dilation in ((1, 1), (2, 1), (1, 3), (3, 2)):
        layer = nn.Conv(
            4, (3,), strides=stride, kernel_dilation=dilation, padding="CAUSAL", dtype=jnp.float32
        )
        params = layer.init(jax.random.key(0), x)
        kernel, bias = params["params"]["kernel"], params["params"]["bias"]
        y = jc.conv(x, kernel, bias, stride=stride, dilation=dilation, padding="CAUSAL")
        assert_close(y, layer.apply(params, x))
