"""conv_general_dilated: same values as jax.lax's, explicit VJP == lax's autodiff; Flax drop-in."""

import itertools

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxconv as jc
from jaxconv.testing import oracle
from tests.support.numerics import assert_close, vjp_jit, vjp_pair

LAYOUTS = {  # spatial rank -> a few dimension_numbers spellings (None: lax's NC.. default)
    1: [None, ("NWC", "WIO", "NWC"), ("NCW", "OIW", "NWC")],
    2: [None, ("NHWC", "HWIO", "NHWC"), ("NCHW", "HWIO", "NHWC"), ("HWCN", "OIHW", "CNHW")],
    3: [None, ("NDHWC", "DHWIO", "NDHWC")],
}


def _shape(spec, sizes):
    """Array shape for a dimension-number string and a {letter: size} map."""
    return tuple(sizes[c] for c in spec)


@st.composite
def general_cases(draw):
    nd = draw(st.integers(1, 3))
    dn = draw(st.sampled_from(LAYOUTS[nd]))
    fgc, bgc = draw(st.sampled_from([(1, 1), (2, 1), (3, 1), (1, 2), (1, 3)]))
    k = [draw(st.integers(1, 3)) for _ in range(nd)]
    rd = [draw(st.integers(1, 2)) for _ in range(nd)]
    ld = [draw(st.integers(1, 2)) for _ in range(nd)]
    st_ = [draw(st.integers(1, 3)) for _ in range(nd)]
    k_eff = [(kk - 1) * d + 1 for kk, d in zip(k, rd)]
    n = [draw(st.integers(max(1, ke // a), ke + 3)) for ke, a in zip(k_eff, ld)]
    if all(a == 1 for a in ld) and draw(st.booleans()):  # lax: strings only without lhs dilation
        padding = draw(st.sampled_from(["VALID", "SAME", "SAME_LOWER"]))
        if padding == "VALID":  # must fit without padding
            n = [max(nn, -(-(ke - 1) // a) + 1) for nn, ke, a in zip(n, k_eff, ld)]
    else:
        padding = []
        for nn, ke, a in zip(n, k_eff, ld):
            lo, hi = draw(st.integers(-1, 2)), draw(st.integers(-1, 2))
            while (nn - 1) * a + 1 + lo + hi < ke:
                hi += 1
            padding.append((lo, hi))
    batch = bgc * draw(st.integers(1, 2))
    cin = fgc * draw(st.integers(1, 2))
    cout = fgc * bgc * draw(st.integers(1, 2))
    spatial = "DHW"[3 - nd :]
    lhs_spec, rhs_spec, _ = dn or ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    lhs_sizes = {"N": batch, "C": cin, **dict(zip(spatial, n))}
    rhs_sizes = {"O": cout, "I": cin // fgc, **dict(zip(spatial, k))}
    kw = dict(
        window_strides=st_,
        padding=padding,
        lhs_dilation=ld,
        rhs_dilation=rd,
        dimension_numbers=dn,
        feature_group_count=fgc,
        batch_group_count=bgc,
    )
    return _shape(lhs_spec, lhs_sizes), _shape(rhs_spec, rhs_sizes), kw


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@given(case=general_cases(), seed=st.integers(0, 2**16))
def test_drop_in_vjp_matches_lax(dtype, case, seed):
    lhs_shape, rhs_shape, kw = case
    rng = np.random.default_rng(seed)
    lhs, rhs = (jnp.asarray(rng.standard_normal(s), dtype) for s in (lhs_shape, rhs_shape))
    ref = lambda a, b: oracle.conv_general_dilated(a, b, **kw)  # noqa: E731
    try:
        (y, grads), (y_ref, grads_ref) = vjp_pair(
            lambda a, b: jc.conv_general_dilated(a, b, **kw), ref, lhs, rhs, seed=seed
        )
    except jax.errors.JaxRuntimeError:
        # XLA:GPU (cuDNN) rejects the gradient of some lhs-dilated 1-d convolutions, lax's own
        # autodiff too (docs/platforms.md): allowed off the CPU only where the reference fails
        if jax.default_backend() == "cpu":
            raise
        with pytest.raises(jax.errors.JaxRuntimeError):
            vjp_jit(ref, lhs, rhs, seed=seed)
        return
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    assert_close(y, y_ref, dtype)
    for got, want in zip(grads, grads_ref):
        assert_close(got, want, dtype)


@pytest.mark.parametrize(
    "kw",
    [
        dict(window_strides=(2, 1), padding=((1, -1), (0, 2)), lhs_dilation=(2, 1)),
        dict(window_strides=(1, 2), padding="SAME", rhs_dilation=(2, 1), feature_group_count=2),
        dict(window_strides=(2, 2), padding="VALID", batch_group_count=2),
    ],
    ids=str,
)
def test_drop_in_check_grads_order2(kw, rng):
    lhs = jnp.asarray(rng.standard_normal((2, 4, 6, 5)))
    rhs = jnp.asarray(rng.standard_normal((4, 4 // kw.get("feature_group_count", 1), 3, 2)))
    jax.test_util.check_grads(
        lambda a, b: jc.conv_general_dilated(a, b, **kw), (lhs, rhs), order=2, modes=["rev"]
    )


def test_every_dimension_number_permutation(rng):
    """All 2-D lhs/rhs/out layouts spelled as strings give lax's values and gradients."""
    lhs_specs = ["NCHW", "NHWC", "CHWN", "HNWC"]
    rhs_specs = ["OIHW", "HWIO", "IOHW", "WHOI"]
    sizes = {"N": 2, "C": 3, "H": 5, "W": 4}
    rsizes = {"O": 4, "I": 3, "H": 2, "W": 3}
    for lspec, rspec in itertools.product(lhs_specs, rhs_specs):
        dn = (lspec, rspec, lspec)
        lhs = jnp.asarray(rng.standard_normal(_shape(lspec, sizes)))
        rhs = jnp.asarray(rng.standard_normal(_shape(rspec, rsizes)))
        kw = dict(window_strides=(2, 1), padding=((1, 0), (1, 1)), dimension_numbers=dn)
        (y, grads), (y_ref, grads_ref) = vjp_pair(  # one compile per layout pair
            lambda a, b, kw=kw: jc.conv_general_dilated(a, b, **kw),
            lambda a, b, kw=kw: oracle.conv_general_dilated(a, b, **kw),
            lhs,
            rhs,
        )
        assert_close(y, y_ref)
        for got, want in zip(grads, grads_ref):
            assert_close(got, want, err_msg=str(dn))


def test_out_sharding_is_honoured(rng):
    """out_sharding is passed through: the output carries the requested sharding."""
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    lhs = jnp.asarray(rng.standard_normal((2, 3, 6, 6)))
    rhs = jnp.asarray(rng.standard_normal((4, 3, 3, 3)))
    f = jax.jit(lambda a, b: jc.conv_general_dilated(a, b, (1, 1), "SAME", out_sharding=sharding))
    y = f(lhs, rhs)
    assert y.sharding.is_equivalent_to(sharding, y.ndim)
    assert_close(y, oracle.conv_general_dilated(lhs, rhs, (1, 1), "SAME"))
    dlhs = jax.grad(lambda a: f(a, rhs).sum())(lhs)
    assert_close(
        dlhs, jax.grad(lambda a: oracle.conv_general_dilated(a, rhs, (1, 1), "SAME").sum())(lhs)
    )


def test_flax_linen_conv_drop_in(rng):
    """flax.linen.Conv(conv_general_dilated=jaxconv's) gives stock Flax's values and grads."""
    nn = pytest.importorskip("flax.linen")
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)))
    kw = dict(
        features=5,
        kernel_size=(3, 3),
        strides=(2, 1),
        padding="SAME",
        feature_group_count=1,
        kernel_dilation=(1, 2),
        param_dtype=jnp.float64,
    )
    stock, ours = nn.Conv(**kw), nn.Conv(conv_general_dilated=jc.conv_general_dilated, **kw)
    params = stock.init(jax.random.key(0), x)
    loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
    assert_close(ours.apply(params, x), stock.apply(params, x))
    g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, x)
    g_stock = jax.grad(loss(stock), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(g_ours), jax.tree_util.tree_leaves(g_stock)):
        assert_close(a, b)
