"""The drop-in in fact: every dtype, rank and empty size `lax.conv_general_dilated` accepts.

Integer and bool convolutions give lax's values; complex ones lax's values and, through
jaxconv's own rules, `jax.vjp`'s (the plain transpose: a complex linear map's VJP carries no
conjugation); rank-2 operands are a matrix product; empty operands and results give lax's
(empty or zero) result, through derivatives of every order. The conftest runs all of it under
``jax_numpy_rank_promotion="raise"`` and ``jax_numpy_dtype_promotion="strict"``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

import jaxconv as jc
from jaxconv.testing import oracle
from tests.conv.test_general import general_cases
from tests.support.numerics import assert_close, vjp_pair

INTEGER = [jnp.int8, jnp.int32, jnp.bool_]
COMPLEX_TOL = {jnp.complex64: 1e-5, jnp.complex128: 1e-12}


def _random(rng, shape, dtype):
    dtype = jnp.dtype(dtype)
    if dtype == jnp.bool_:
        return jnp.asarray(rng.integers(0, 2, shape).astype(bool))
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.asarray(rng.integers(-3, 4, shape), dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jnp.asarray(rng.standard_normal(shape) + 1j * rng.standard_normal(shape), dtype)
    return jnp.asarray(rng.standard_normal(shape), dtype)


@st.composite
def rank2_cases(draw):
    """Zero spatial dims: (N, C) x kernel -> (N, O), lax's conv as a dot."""
    fgc = draw(st.sampled_from([1, 2]))
    n, cin, cout = (
        draw(st.integers(1, 3)),
        fgc * draw(st.integers(1, 3)),
        fgc * draw(st.integers(1, 3)),
    )
    dn = draw(st.sampled_from([None, ("NC", "IO", "NC"), ("CN", "OI", "NC")]))
    lhs_spec, rhs_spec, _ = dn or ("NC", "OI", "NC")
    sizes = {"N": n, "C": cin, "O": cout, "I": cin // fgc}
    kw = dict(
        window_strides=(),
        padding=(),
        dimension_numbers=dn,
        feature_group_count=fgc,
    )
    return tuple(sizes[c] for c in lhs_spec), tuple(sizes[c] for c in rhs_spec), kw


@pytest.mark.parametrize("dtype", INTEGER)
@settings(max_examples=10)
@given(case=general_cases(), seed=st.integers(0, 2**16))
def test_integer_and_bool_equal_lax(dtype, case, seed):
    lhs_shape, rhs_shape, kw = case
    rng = np.random.default_rng(seed)
    lhs, rhs = _random(rng, lhs_shape, dtype), _random(rng, rhs_shape, dtype)
    ours = jax.jit(lambda a, b: jc.conv_general_dilated(a, b, **kw))
    try:
        want = oracle.conv_general_dilated(lhs, rhs, **kw)
    except jax.errors.JaxRuntimeError:
        # XLA:GPU lowers integer convolutions to cuDNN, which takes int8 only: lax fails to
        # compile there (docs/platforms.md), and so does the drop-in, which is lax for integers
        if jax.default_backend() == "cpu":
            raise
        with pytest.raises(jax.errors.JaxRuntimeError):
            ours(lhs, rhs)
        return
    got = ours(lhs, rhs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_integer_tangents_are_float0():
    """JAX does not differentiate integer operands: jvp/grad treat them as constants (traced
    only: XLA:GPU compiles no int32 convolution)."""
    x, w = jnp.ones((1, 1, 5, 5), jnp.int32), jnp.ones((1, 1, 3, 3), jnp.int32)
    f = lambda x: jc.conv_general_dilated(x, w, (1, 1), "VALID")
    tangent = np.zeros(x.shape, jax.dtypes.float0)
    y, ydot = jax.eval_shape(lambda x, t: jax.jvp(f, (x,), (t,)), x, tangent)
    assert y.dtype == jnp.int32 and ydot.dtype == jax.dtypes.float0


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
@settings(max_examples=10)
@given(case=st.one_of(general_cases(), rank2_cases()), seed=st.integers(0, 2**16))
def test_complex_vjp_matches_lax(dtype, case, seed):
    lhs_shape, rhs_shape, kw = case
    rng = np.random.default_rng(seed)
    lhs, rhs = _random(rng, lhs_shape, dtype), _random(rng, rhs_shape, dtype)
    y, grads = _complex_vjp(lambda a, b: jc.conv_general_dilated(a, b, **kw), lhs, rhs, seed)
    y_ref, grads_ref = _complex_vjp(
        lambda a, b: oracle.conv_general_dilated(a, b, **kw), lhs, rhs, seed
    )
    assert y.dtype == y_ref.dtype
    tol = COMPLEX_TOL[dtype]
    assert_close(y, y_ref, tol=tol)
    for a, b in zip(grads, grads_ref):
        assert a.dtype == b.dtype
        assert_close(a, b, tol=tol)


def _complex_vjp(f, a, b, seed):
    out = jax.eval_shape(f, a, b)
    rng = np.random.default_rng(seed + 1)
    g = _random(rng, out.shape, out.dtype)
    return jax.jit(lambda a, b, g: (f(a, b), jax.vjp(f, a, b)[1](g)))(a, b, g)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@settings(max_examples=10)
@given(case=rank2_cases(), seed=st.integers(0, 2**16))
def test_rank2_is_a_matrix_product(dtype, case, seed):
    lhs_shape, rhs_shape, kw = case
    rng = np.random.default_rng(seed)
    lhs, rhs = _random(rng, lhs_shape, dtype), _random(rng, rhs_shape, dtype)
    (y, grads), (y_ref, grads_ref) = vjp_pair(
        lambda a, b: jc.conv_general_dilated(a, b, **kw),
        lambda a, b: oracle.conv_general_dilated(a, b, **kw),
        lhs,
        rhs,
        seed=seed,
    )
    assert_close(y, y_ref)
    for a, b in zip(grads, grads_ref):
        assert_close(a, b)


CONV_KW = dict(stride=2, padding=1, dilation=(1, 2), groups=2)


@pytest.mark.parametrize("backward", ["auto", "lean", "transpose", "phase", "matmul"])
def test_conv_family_complex(backward, rng):
    """conv, conv_transpose and the gradient functions over C: values and VJPs equal lax's."""
    x = _random(rng, (2, 9, 8, 4), jnp.complex128)
    w = _random(rng, (3, 2, 2, 6), jnp.complex128)
    kw = dict(CONV_KW, backward=backward)
    ref = lambda x, w: oracle.conv(x, w, **CONV_KW)
    fns = {
        "conv": (lambda x, w: jc.conv(x, w, **kw), ref),
        "conv_transpose": (
            lambda y, w: jc.conv_transpose(y, w, output_size=(9, 8), **kw),
            lambda y, w: oracle.conv_transpose(y, w, output_size=(9, 8), **CONV_KW),
        ),
        "conv_input_grad": (
            lambda y, w: jc.conv_input_grad(x.shape, w, y, **kw),
            lambda y, w: jax.vjp(lambda x: ref(x, w), x)[1](y)[0],
        ),
        "conv_weight_grad": (
            lambda x_, y: jc.conv_weight_grad(x_, w.shape, y, **kw),
            lambda x_, y: jax.vjp(lambda w: ref(x_, w), w)[1](y)[0],
        ),
    }
    y = ref(x, w)
    args = {"conv": (x, w), "conv_transpose": (y, w), "conv_input_grad": (y, w)}
    args["conv_weight_grad"] = (x, y)
    for name, (ours, theirs) in fns.items():
        a, b = args[name]
        got, got_vjp = _complex_vjp(ours, a, b, 0)
        want, want_vjp = _complex_vjp(theirs, a, b, 0)
        assert_close(got, want, tol=1e-12, err_msg=name)
        for p, q in zip(got_vjp, want_vjp):
            assert_close(p, q, tol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: jc.max_pool(x, 2),
        lambda x: jc.avg_pool(x, 2),
        lambda x: jc.lp_pool(x, 2, 2),
        lambda x: jc.global_max_pool(x),
        lambda x: jc.relu(x),
    ],
    ids=["max_pool", "avg_pool", "lp_pool", "global_max_pool", "relu"],
)
def test_ordering_ops_refuse_complex(call):
    x = jnp.ones((1, 4, 4, 2), jnp.complex64)
    with pytest.raises(TypeError, match="complex numbers have no order"):
        call(x)


@st.composite
def empty_cases(draw):
    """Drop-in calls with a zero-size batch, spatial or channel dim, or a window that fits
    nowhere (an empty result)."""
    nd = draw(st.integers(1, 2))
    spatial = "HW"[2 - nd :]
    dn = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
    zero = draw(st.sampled_from(["batch", "space", "cin", "cout", "nofit"]))
    n = [draw(st.integers(1, 4)) for _ in range(nd)]
    k = [draw(st.integers(1, 2)) for _ in range(nd)]
    batch, cin, cout = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    lo, hi = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    ld = draw(st.integers(1, 2))
    if zero == "batch":
        batch = 0
    elif zero == "space":
        n[0] = 0
    elif zero == "cin":
        cin = 0
    elif zero == "cout":
        cout = 0
    else:
        k[0], lo, hi, ld = n[0] + 2, 0, 0, 1
    kw = dict(
        window_strides=(1,) * nd,
        padding=((lo, hi),) + ((0, 0),) * (nd - 1),
        lhs_dilation=(ld,) + (1,) * (nd - 1),
        dimension_numbers=dn,
    )
    return (batch, *n, cin), (*k, cin, cout), kw


@settings(max_examples=10)
@given(case=empty_cases())
def test_empty_sizes_through_second_order(case):
    lhs_shape, rhs_shape, kw = case
    rng = np.random.default_rng(0)
    lhs, rhs = _random(rng, lhs_shape, jnp.float64), _random(rng, rhs_shape, jnp.float64)

    def orders(conv):
        f = lambda a, b: conv(a, b, **kw)
        y, pullback = jax.vjp(f, lhs, rhs)
        g = jnp.ones(y.shape, y.dtype)
        first = pullback(g)
        # second order: the VJP of (a, b) -> <pullback(g), (a, b)>-shaped maps
        second = jax.grad(lambda a, b: jnp.sum(jax.vjp(f, a, b)[1](g)[0] ** 2), argnums=(0, 1))(
            lhs, rhs
        )
        return y, first, second

    ours, theirs = orders(jc.conv_general_dilated), orders(oracle.conv_general_dilated)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert_close(a, b)


def test_dropin_edge_calls_under_strict_settings():
    """Drop-in calls beyond ordinary layers, each equal to lax (strict settings on)."""
    J, L = jc.conv_general_dilated, oracle.conv_general_dilated
    x, w = jnp.ones((1, 1, 5, 5)), jnp.ones((1, 1, 3, 3))
    calls = [
        lambda F: F(x.astype(jnp.complex64), w.astype(jnp.complex64), (1, 1), "VALID"),
        lambda F: F(
            jnp.ones((2, 5)), jnp.ones((5, 7)), (), "VALID", dimension_numbers=("NC", "IO", "NC")
        ),
        lambda F: F(
            jnp.ones((1, 2, 0, 4)), jnp.ones((2, 2, 1, 2)), (1, 1), ((0, 0), (0, 0)), (2, 1), (2, 2)
        ),
        lambda F: F(jnp.ones((1, 1, 28, 28)), w, (1, 1), "VALID"),
        lambda F: F(jnp.ones((1, 1, 2, 2)), w, (1, 1), "VALID"),
    ]
    for call in calls:
        got, want = call(J), call(L)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert_close(got, want, tol=1e-6)

    xb, wb = jnp.ones((1, 8, 4), jnp.bfloat16), jnp.ones((3, 4, 8), jnp.bfloat16)
    grad = lambda F: jax.grad(
        lambda x: F(
            x,
            wb,
            (1,),
            "VALID",
            dimension_numbers=("NLC", "LIO", "NLC"),
            preferred_element_type=jnp.float32,
        ).sum()
    )(xb)
    got, want = grad(J), grad(L)
    assert got.dtype == want.dtype == jnp.bfloat16
    assert_close(got.astype(jnp.float32), want.astype(jnp.float32), tol=1e-2)

    xe, we = jnp.zeros((1, 1, 0, 4)), jnp.ones((1, 1, 1, 2))
    second = lambda F: (
        lambda f: jax.vjp(lambda g: jax.vjp(f, xe)[1](g)[0], jnp.ones(jax.eval_shape(f, xe).shape))[
            1
        ](xe)
    )(lambda x: F(x, we, (1, 1), ((1, 0), (0, 0)), dimension_numbers=("NCHW", "OIHW", "NHWC")))
    for a, b in zip(second(J), second(L)):
        assert a.shape == b.shape
        assert_close(a, b)


def test_lax_rejections_keep_lax_exception_type():
    """Inputs lax rejects raise the same exception type from the drop-in."""
    x, w = jnp.ones((1, 1, 5, 5)), jnp.ones((1, 1, 3, 3))
    bad = [
        lambda F: F(x.astype(jnp.int32), w, (1, 1), "VALID"),  # mixed int/float operands
        lambda F: F(x, w.astype(jnp.complex64), (1, 1), "VALID"),  # mixed real/complex
        lambda F: F(x, jnp.ones((1, 2, 3, 3)), (1, 1), "VALID"),  # feature mismatch
        lambda F: F(x, w, (1,), "VALID"),  # wrong stride count
    ]
    for call in bad:
        with pytest.raises(Exception) as theirs:
            call(lax.conv_general_dilated)
        with pytest.raises(type(theirs.value)):
            call(jc.conv_general_dilated)
