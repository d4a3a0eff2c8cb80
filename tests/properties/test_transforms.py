"""jit, vmap, grad-of-grad; and proof that the gradients run on jaxconv's rules, not JAX's.

Every op of the registry (tests/support/registry.py): ``jit(f)`` equals the eager call and
``vmap(f)`` over every argument equals the calls one by one; then the conv family in detail.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax._src.interpreters import ad

import jaxconv as jc
from jaxconv.testing import oracle
from tests.support.jaxprs import eqns
from tests.support.numerics import assert_close
from tests.support.registry import OPS, PUBLIC

KW = dict(stride=2, padding=1, dilation=(1, 2), groups=2)


def test_registry_covers_every_public_op():
    assert sorted({op.public for op in OPS.values()}) == PUBLIC


@pytest.mark.parametrize("name", list(OPS))
def test_jit_and_vmap_equal_plain_calls(name):
    """``jit(f)(*a) == f(*a)``, and ``vmap(f)`` of two stacked argument sets, mapped over every
    argument at once and over each argument alone, equals f of each set."""
    op = OPS[name]
    eager = op.fn(*op.args)
    assert_close(jax.jit(op.fn)(*op.args), eager)
    other = tuple(0.5 * a + 0.25 for a in op.args)
    stacked = tuple(jnp.stack([a, b]) for a, b in zip(op.args, other))
    want = jnp.stack([eager, op.fn(*other)])
    assert_close(jax.vmap(op.fn)(*stacked), want)
    for i in range(len(op.args)):
        axes = tuple(0 if j == i else None for j in range(len(op.args)))
        args = tuple(stacked[j] if j == i else op.args[j] for j in range(len(op.args)))
        one = op.fn(*(other[j] if j == i else op.args[j] for j in range(len(op.args))))
        assert_close(jax.vmap(op.fn, in_axes=axes)(*args), jnp.stack([eager, one]))


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
        jax.grad(lambda x, w: jnp.sum(jnp.sin(oracle.conv(x, w, **KW)))), in_axes=(0, None)
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
    ref = hvp(lambda x, w: oracle.conv(x, w, **KW))
    for a, b in zip(ours, ref):
        assert_close(a, b)


@pytest.mark.parametrize("backward", ["auto", "lean", "transpose", "phase", "matmul"])
def test_gradient_jaxpr_runs_our_rules(xw, backward):
    """Walk the jaxpr of jax.grad: the backward pass is jaxconv's input- and weight-gradient
    primitives (the transposes of `jaxconv_conv`, our rules), one each; no convolution or
    matrix product is a bare one that JAX's own transpose rules emitted. (The same walk over
    the lax version finds exactly those.)"""
    x, w = xw
    loss = lambda conv: lambda x, w: jnp.sum(conv(x, w) ** 2)
    grad = lambda conv: jax.make_jaxpr(jax.grad(loss(conv), argnums=(0, 1)))(x, w).jaxpr

    f = lambda x, w: jc.conv(x, w, backward=backward, **KW)
    ours = grad(f)
    names = [e.primitive.name for e in eqns(ours)]
    bare = [n for n in names if n in ("conv_general_dilated", "dot_general")]
    assert bare == [], "a convolution ran outside jaxconv's rules"
    assert names.count("jaxconv_conv") == 1, names
    assert names.count("jaxconv_input_grad") == 1 and names.count("jaxconv_weight_grad") == 1
    if backward == "transpose":  # forward + dx + dw, what autodiff would run
        text = jax.jit(jax.grad(loss(f), argnums=(0, 1))).lower(x, w).as_text()
        assert text.count("stablehlo.convolution") == 3

    theirs = grad(lambda x, w: oracle.conv(x, w, **KW))
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
    kw = dict(KW, backward=backward)
    b = jnp.ones(6)
    y = jc.conv(x, w, **kw)
    fns = {
        "conv": lambda x, w: jc.conv(x, w, b, **kw),
        "conv_modes": lambda x, w: jc.conv(
            x, w, padding=1, padding_mode="reflect", flip=True, groups=2
        ),
        "conv_transpose": lambda x, w: jc.conv_transpose(y * x.sum(), w, output_size=(9, 8), **kw),
        "conv_input_grad": lambda x, w: jc.conv_input_grad(x.shape, w, y * x.mean(), **kw),
        "conv_weight_grad": lambda x, w: jc.conv_weight_grad(x, w.shape, y, **kw),
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
            jax.grad(lambda x: jnp.sum(oracle.conv(x, w, **KW)))(x)


def test_float32_under_jit_matches_lax(rng):
    x = jnp.asarray(rng.standard_normal((4, 16, 16, 8)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 8, 8)), jnp.float32)
    loss = lambda conv: jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), argnums=(0, 1)))
    ours = loss(lambda x, w: jc.conv(x, w, padding="SAME"))(x, w)
    ref = loss(lambda x, w: oracle.conv(x, w, padding="SAME"))(x, w)
    for a, b in zip(ours, ref):
        assert_close(a, b, np.float32)
