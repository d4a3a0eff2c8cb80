"""jit, vmap, grad-of-grad; and proof that the gradients run on jaxconv's rules, not JAX's."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close
from jax import lax
from jax._src.interpreters import ad

try:
    from jax.extend.core import jaxprs_in_params
except ImportError:  # jax < 0.10 (the oldest supported is 0.7.2; CI's second venv)
    from jax.core import jaxprs_in_params
from test_conv import lax_conv

import jaxconv as jc

KW = dict(stride=2, padding=1, dilation=(1, 2), groups=2)
REF_KW = dict(
    stride=(2, 2),
    padding=((1, 1), (1, 1)),
    dilation=(1, 2),
    groups=2,
    flip=False,
    padding_mode="zeros",
    layout="channels_last",
)


@pytest.fixture
def xw(rng):
    x = jnp.asarray(rng.standard_normal((2, 9, 8, 4)))
    w = jnp.asarray(rng.standard_normal((3, 2, 2, 6)))
    return x, w


def test_jit_equals_eager(xw):
    x, w = xw
    f = lambda x, w: jc.conv(x, w, **KW)
    assert_close(jax.jit(f)(x, w), f(x, w))
    gx = lambda x, w: jax.grad(lambda x: jnp.sum(f(x, w) ** 2))(x)
    assert_close(jax.jit(gx)(x, w), gx(x, w))
    y = f(x, w)
    assert_close(
        jax.jit(lambda y, w: jc.conv_transpose(y, w, output_size=(9, 8), **KW))(y, w),
        jc.conv_transpose(y, w, output_size=(9, 8), **KW),
    )


def test_vmap_over_kernels_and_inputs(xw, rng):
    x, w = xw
    ws = jnp.stack([w, 2 * w, -w])
    f = lambda x, w: jc.conv(x, w, **KW)
    out = jax.vmap(f, in_axes=(None, 0))(x, ws)
    for i in range(3):
        assert_close(out[i], f(x, ws[i]))
    xs = jnp.stack([x, x[::-1]])
    grads = jax.vmap(jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w)))), in_axes=(0, None))(xs, w)
    ref = jax.vmap(
        jax.grad(lambda x, w: jnp.sum(jnp.sin(lax_conv(x, w, None, **REF_KW)))), in_axes=(0, None)
    )(xs, w)
    assert_close(grads, ref)


def test_grad_of_grad_equals_lax(xw):
    """Reverse-over-reverse (a Hessian-vector product) equals lax's, in float64."""
    x, w = xw

    def hvp(conv):
        inner = lambda x, w: jnp.sum(jnp.tanh(conv(x, w)))
        outer = lambda x, w: jnp.sum(jax.grad(inner, argnums=(0, 1))(x, w)[1] ** 2)
        return jax.grad(outer, argnums=(0, 1))(x, w)

    ours = hvp(lambda x, w: jc.conv(x, w, **KW))
    ref = hvp(lambda x, w: lax_conv(x, w, None, **REF_KW))
    for a, b in zip(ours, ref):
        assert_close(a, b)


def _eqns(jaxpr):
    """(eqn, depth) for every equation, descending into sub-jaxprs."""
    for e in jaxpr.eqns:
        yield e
        for sub in jaxprs_in_params(e.params):
            yield from _eqns(sub)


@pytest.mark.parametrize("backward", ["auto", "lean", "transpose", "phase", "matmul"])
def test_gradient_jaxpr_runs_our_rules(xw, backward):
    """Walk the jaxpr of jax.grad: every convolution or matrix product of the backward pass
    sits inside one of jaxconv's custom_vjp calls, traced in its `jaxconv_bwd` scope; none is a
    bare one that JAX's own transpose rules emitted. (The same walk over the lax version finds
    exactly those.)"""
    x, w = xw
    loss = lambda conv: lambda x, w: jnp.sum(conv(x, w) ** 2)
    grad = lambda conv: jax.make_jaxpr(jax.grad(loss(conv), argnums=(0, 1)))(x, w).jaxpr

    ours = grad(lambda x, w: jc.conv(x, w, backward=backward, **KW))
    bare = [e for e in ours.eqns if e.primitive.name in ("conv_general_dilated", "dot_general")]
    assert bare == [], "a convolution ran outside jaxconv's custom_vjp rules"
    bwd = [
        e
        for e in ours.eqns
        if e.primitive.name.startswith("custom_vjp")
        and "jaxconv_bwd" in str(e.source_info.name_stack)
    ]
    assert len(bwd) == 2  # dx and dw, each one call of jaxconv's custom_vjp family
    if backward == "transpose":
        convs = [e for e in _eqns(ours) if e.primitive.name == "conv_general_dilated"]
        assert len(convs) == 3  # forward + dx + dw, what autodiff would run

    theirs = grad(lambda x, w: lax_conv(x, w, None, **REF_KW))
    transposed = [
        e
        for e in theirs.eqns
        if e.primitive.name == "conv_general_dilated"
        and "transpose" in str(e.source_info.name_stack)
    ]
    assert len(transposed) == 2


@contextlib.contextmanager
def jax_conv_rules_disabled():
    """Make JAX's own JVP and transpose rules of convolutions and matrix products raise."""
    prims = [lax.conv_general_dilated_p, lax.dot_general_p]

    def boom(*args, **kwargs):
        raise AssertionError("JAX's own convolution derivative rule was used")

    saved = [(ad.primitive_jvps.get(p), ad.primitive_transposes.get(p)) for p in prims]
    for p in prims:
        ad.primitive_jvps[p], ad.primitive_transposes[p] = boom, boom
    try:
        yield
    finally:
        for p, (jvp, transpose) in zip(prims, saved):
            ad.primitive_jvps[p], ad.primitive_transposes[p] = jvp, transpose


@pytest.mark.parametrize("backward", ["auto", "transpose", "phase", "matmul"])
def test_no_fallback_to_jax_conv_rules(xw, backward):
    """With JAX's conv and dot derivative rules disabled, every jaxconv gradient still works (to
    second order) -- and the plain lax version fails, which shows the switch is real."""
    x, w = xw
    KW = dict(globals()["KW"], backward=backward)
    b = jnp.ones(6)
    y = jc.conv(x, w, **KW)
    fns = {
        "conv": lambda x, w: jc.conv(x, w, b, **KW),
        "conv_modes": lambda x, w: jc.conv(
            x, w, padding=1, padding_mode="reflect", flip=True, groups=2
        ),
        "conv_transpose": lambda x, w: jc.conv_transpose(y * x.sum(), w, output_size=(9, 8), **KW),
        "conv_input_grad": lambda x, w: jc.conv_input_grad(x.shape, w, y * x.mean(), **KW),
        "conv_weight_grad": lambda x, w: jc.conv_weight_grad(x, w.shape, y, **KW),
        "drop_in": lambda x, w: jc.conv_general_dilated(
            x, w, (2, 1), "SAME", (1, 1), (2, 1), ("NHWC", "HWIO", "NHWC"), 2
        ),
    }
    with jax.disable_jit(), jax_conv_rules_disabled():
        for f in fns.values():
            loss = lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w)))
            jax.grad(loss, argnums=(0, 1))(x, w)
            jax.grad(lambda x, w, loss=loss: jnp.sum(jax.grad(loss)(x, w) ** 2), argnums=1)(x, w)
        with pytest.raises(AssertionError, match="JAX's own convolution derivative rule"):
            jax.grad(lambda x: jnp.sum(lax_conv(x, w, None, **REF_KW)))(x)


def test_float32_under_jit_matches_lax(rng):
    x = jnp.asarray(rng.standard_normal((4, 16, 16, 8)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 8, 8)), jnp.float32)
    loss = lambda conv: jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), argnums=(0, 1)))
    ours = loss(lambda x, w: jc.conv(x, w, padding="SAME"))(x, w)
    ref = loss(
        lambda x, w: lax_conv(
            x,
            w,
            None,
            stride=(1, 1),
            padding="SAME",
            dilation=(1, 1),
            groups=1,
            flip=False,
            padding_mode="zeros",
            layout="channels_last",
        )
    )(x, w)
    for a, b in zip(ours, ref):
        assert_close(a, b, np.float32)
