"""conv_transpose: the adjoint of conv; explicit VJP == autodiff; PyTorch ConvTranspose parity."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxconv as jc
from jaxconv.testing import oracle
from tests.conv.test_conv import conv_cases, lax_kw
from tests.support.numerics import assert_close, vjp_pair


def _pairs(padding, ref_padding, x_shape, w_shape, kw):
    """Explicit (lo, hi) pairs of a conv case (SAME resolved the lax way)."""
    cl = kw["layout"] == "channels_last"
    k = w_shape[:-2] if cl else w_shape[2:]
    k_eff = [(kk - 1) * d + 1 for kk, d in zip(k, kw["dilation"])]
    return oracle.padding_pairs(ref_padding, _spatial(x_shape, kw["layout"]), k_eff, kw["stride"])


def _spatial(shape, layout):
    return shape[1:-1] if layout == "channels_last" else shape[2:]


@given(case=conv_cases(modes=False), seed=st.integers(0, 2**16))
def test_adjoint_identity(case, seed):
    """<conv(x, w), y> == <x, conv_transpose(y, w)> for every option (output_size = x's)."""
    x_shape, w_shape, _, padding, ref_padding, kw = case
    kw = {k: val for k, val in kw.items() if k != "padding_mode"}
    pairs = _pairs(padding, ref_padding, x_shape, w_shape, kw)
    rng = np.random.default_rng(seed)
    x, w = (jnp.asarray(rng.standard_normal(s)) for s in (x_shape, w_shape))
    y = jnp.asarray(rng.standard_normal(jc.conv(x, w, padding=pairs, **kw).shape))
    xt = jc.conv_transpose(y, w, padding=pairs, output_size=_spatial(x_shape, kw["layout"]), **kw)
    lhs = jnp.vdot(jc.conv(x, w, padding=pairs, **kw), y)
    assert_close(lhs, jnp.vdot(x, xt))


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@given(case=conv_cases(modes=False), extra=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_conv_transpose_vjp_matches_autodiff(dtype, case, extra, seed):
    x_shape, w_shape, use_bias, padding, ref_padding, kw = case
    kw = {k: val for k, val in kw.items() if k != "padding_mode"}
    pairs = _pairs(padding, ref_padding, x_shape, w_shape, kw)
    rng = np.random.default_rng(seed)
    x0 = jnp.zeros(x_shape, dtype)
    w = jnp.asarray(rng.standard_normal(w_shape), dtype)
    y_shape = jax.eval_shape(lambda x, w: jc.conv(x, w, padding=pairs, **kw), x0, w).shape
    y = jnp.asarray(rng.standard_normal(y_shape), dtype)
    # Output sizes: the smallest one (output_padding 0) or one `extra` larger where allowed,
    # at least 1 (n_min may be 0 or less when the padding reaches past x, e.g. x of size 1
    # padded (0, 1) at stride 2; x's own size is then in range, so 1 - n_min is too).
    o = _spatial(y.shape, kw["layout"])
    k = w_shape[:-2] if kw["layout"] == "channels_last" else w_shape[2:]
    n_min = [
        (oo - 1) * s + (kk - 1) * d + 1 - lo - hi
        for oo, s, kk, d, (lo, hi) in zip(o, kw["stride"], k, kw["dilation"], pairs)
    ]
    op = tuple(
        max(min(extra, max(s, d) - 1), 1 - m)
        for s, d, m in zip(kw["stride"], kw["dilation"], n_min)
    )
    n = [m + p for m, p in zip(n_min, op)]
    cin = x_shape[-1] if kw["layout"] == "channels_last" else x_shape[1]
    x_shape = (x_shape[0], *n, cin) if kw["layout"] == "channels_last" else (x_shape[0], cin, *n)
    b = jnp.asarray(rng.standard_normal(cin), dtype) if use_bias else None
    f = lambda y, w, b: jc.conv_transpose(y, w, b, padding=pairs, output_padding=op, **kw)
    ref = lambda y, w, b: oracle.conv_transpose(y, w, b, padding=pairs, output_size=n, **lax_kw(kw))
    (xt, grads), (xt_ref, grads_ref) = vjp_pair(f, ref, y, w, b, seed=seed)
    assert xt.shape == x_shape and xt.dtype == dtype
    assert_close(xt, xt_ref, dtype)
    for got, want in zip(grads, grads_ref):
        if want is None:
            assert got is None
        else:
            assert_close(got, want, dtype)


@pytest.mark.parametrize(
    "s,p,op,d,groups", [(2, 1, 1, 1, 1), (3, 0, 2, 1, 2), (1, 2, 0, 2, 1), (2, 1, 2, 3, 2)]
)
def test_torch_conv_transpose2d_parity(s, p, op, d, groups, rng):
    torch = pytest.importorskip("torch")
    y, w, b = (rng.standard_normal(sh) for sh in [(2, 4, 5, 6), (4, 3, 3, 2), (3 * groups,)])
    ty, tw = torch.tensor(y, requires_grad=True), torch.tensor(w, requires_grad=True)
    kw = dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
    tx = torch.nn.functional.conv_transpose2d(ty, tw, torch.tensor(b), **kw)
    tg = torch.tensor(rng.standard_normal(tuple(tx.shape)))
    tx.backward(tg)
    f = lambda y, w: jc.conv_transpose(y, w, jnp.asarray(b), layout="channels_first", **kw)
    x, vjp = jax.vjp(f, jnp.asarray(y), jnp.asarray(w))
    assert_close(x, tx.detach().numpy())
    dy, dw = vjp(jnp.asarray(tg.numpy()))
    assert_close(dy, ty.grad.numpy())
    assert_close(dw, tw.grad.numpy())


def test_output_size_selects_among_inputs(rng):
    """A stride-3 conv with k=3 maps sizes 12, 13, 14 to 4 outputs; output_size picks each."""
    w = jnp.asarray(rng.standard_normal((3, 2, 5)))
    y = jnp.asarray(rng.standard_normal((1, 4, 5)))
    for n in (12, 13, 14):
        x = jc.conv_transpose(y, w, stride=3, output_size=(n,))
        assert x.shape == (1, n, 2)
        assert_close(x, jc.conv_transpose(y, w, stride=3, output_padding=n - 12))
    assert jc.conv_transpose(y, w, stride=3, padding="SAME").shape == (1, 12, 2)


@pytest.mark.parametrize(
    "kw",
    [
        dict(stride=2, padding=1, output_padding=1),
        dict(stride=(1, 3), padding="SAME", groups=2, flip=True),
        dict(stride=2, dilation=3, output_padding=2),
    ],
    ids=str,
)
def test_check_grads_order2(kw, rng):
    cin = 2 * kw.get("groups", 1)
    y, w, b = (jnp.asarray(rng.standard_normal(s)) for s in [(2, 4, 3, 4), (3, 2, 2, 4), (cin,)])
    jax.test_util.check_grads(
        lambda y, w, b: jc.conv_transpose(y, w, b, **kw), (y, w, b), order=2, modes=["rev"]
    )
