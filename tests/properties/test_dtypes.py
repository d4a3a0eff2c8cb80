"""float16 / bfloat16: float32 accumulation, results in the input dtype, documented tolerances.

Every op takes 16-bit inputs, sums in float32 and returns (and differentiates to) the input
dtype. Tolerance: the error against a float64 computation on the same (rounded) inputs is at
most one unit in the last place of the dtype, relative to the largest magnitude of the result:
``2**-10`` (float16) and ``2**-7`` (bfloat16). Summing in the 16-bit dtype itself would miss
this on the wide layers below (576 terms per output). float64 is exact to 1e-12 (the other test
files) and integer, bool and complex inputs raise TypeError (test_errors, test_fuzz).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv as jc
from jaxconv.testing import oracle

ULP = {jnp.float16: 2.0**-10, jnp.bfloat16: 2.0**-7}
DN = ("NHWC", "HWIO", "NHWC")


def conv_case(backward, stride=1, groups=1, cin=64):
    def ours(x, w, b):
        return jc.conv(x, w, b, stride=stride, padding=1, groups=groups, backward=backward)

    def plain(x, w, b):
        return oracle.conv(x, w, b, stride=stride, padding=1, groups=groups)

    cout = cin if groups == cin else 8
    shapes = [(2, 8, 8, cin), (3, 3, cin // groups, cout), (cout,)]
    return ours, plain, shapes


CASES = {
    **{f"conv_{b}": conv_case(b) for b in ("auto", "transpose", "phase", "matmul")},
    "conv_stride2_groups2": conv_case("auto", stride=2, groups=2),
    "conv_depthwise": conv_case("auto", groups=16, cin=16),
    "conv_transpose": (
        lambda y, w: jc.conv_transpose(y, w, stride=2, padding=1),
        lambda y, w: oracle.conv_transpose(y, w, stride=2, padding=1, output_size=(7, 7)),
        [(2, 4, 4, 8), (3, 3, 64, 8)],
    ),
    "conv_general_dilated": (
        lambda x, w: jc.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN),
        lambda x, w: oracle.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN),
        [(2, 8, 8, 64), (3, 3, 64, 8)],
    ),
    "max_pool": (
        lambda x: jc.max_pool(x, 3, stride=2, padding=1),
        lambda x: oracle.max_pool(x, 3, stride=2, padding=1),
        [(2, 8, 8, 4)],
    ),
    "avg_pool": (
        lambda x: jc.avg_pool(x, 3, stride=1, padding=1),
        lambda x: oracle.avg_pool(x, 3, stride=1, padding=1),
        [(2, 8, 8, 4)],
    ),
    "lp_pool": (
        lambda x: jc.lp_pool(x, 2, 2),
        lambda x: oracle.lp_pool(x, 2, 2),
        [(2, 8, 8, 4)],
    ),
    "global_avg_pool": (jc.global_avg_pool, oracle.global_avg_pool, [(2, 16, 16, 4)]),
    "global_max_pool": (jc.global_max_pool, oracle.global_max_pool, [(2, 8, 8, 4)]),
    "relu": (jc.relu, oracle.relu, [(4, 33)]),
    "linear": (jc.linear, oracle.linear, [(16, 512), (512, 8), (8,)]),
    "mse_loss": (jc.mse_loss, oracle.mse_loss, [(64, 32), (64, 32)]),
    "softmax_cross_entropy": (
        lambda z: jc.softmax_cross_entropy(z, jnp.arange(64) % 10),
        lambda z: oracle.softmax_cross_entropy(z, jnp.arange(64) % 10),
        [(64, 10)],
    ),
}


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_low_precision_values_gradients_and_dtypes(name, dtype):
    ours, plain, shapes = CASES[name]
    rng = np.random.default_rng(0)
    args = [jnp.asarray(rng.standard_normal(s), dtype) for s in shapes]
    y, vjp = jax.vjp(ours, *args)
    g = jnp.asarray(rng.standard_normal(y.shape), dtype)
    grads = vjp(g)
    # the truth: float64 autodiff of the plain computation on the same rounded inputs
    args64 = [a.astype(np.float64) for a in args]
    y64, vjp64 = jax.vjp(plain, *args64)
    grads64 = vjp64(g.astype(np.float64))
    for what, a, b in [
        ("y", y, y64),
        *((f"grad {i}", *p) for i, p in enumerate(zip(grads, grads64))),
    ]:
        assert a.dtype == dtype, (what, a.dtype)
        scale = max(float(jnp.max(jnp.abs(b))), 1e-30)
        err = float(jnp.max(jnp.abs(a.astype(np.float64) - b))) / scale
        assert err <= ULP[dtype], f"{name} {what}: relative error {err:.2e} > {ULP[dtype]:.2e}"


def test_explicit_preferred_element_type_wins():
    """preferred_element_type=float32 on bfloat16 inputs returns float32 (like lax)."""
    x = jnp.ones((1, 5, 5, 3), jnp.bfloat16)
    w = jnp.ones((3, 3, 3, 2), jnp.bfloat16)
    y = jc.conv(x, w, preferred_element_type=jnp.float32)
    assert y.dtype == jnp.float32
    dx, dw = jax.grad(lambda x, w: jc.conv(x, w).astype(jnp.float32).sum(), (0, 1))(x, w)
    assert dx.dtype == dw.dtype == jnp.bfloat16
