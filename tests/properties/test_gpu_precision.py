"""No reduced precision leaks into the suite: float32 conv and its gradients are float32-exact.

tests/conftest.py sets ``jax_default_matmul_precision="highest"``. On XLA:CPU float32 is always
computed in float32; on a recent NVIDIA GPU the default precision would use TF32 (10-bit
mantissa, ~1e-3 relative error here), so these tests fail there if any jaxconv path (forward,
input gradient, weight gradient, per `backward=` algorithm) ignored the setting. The reference
is float64 NumPy on the host, independent of the device and of JAX.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv as jc
from tests.support.numerics import assert_close

BACKWARDS = ["auto", "lean", "transpose", "phase", "matmul"]
X_SHAPE, W_SHAPE = (4, 16, 16, 32), (3, 3, 32, 64)
TOL = 1e-5  # float32 arithmetic: ~1e-7 here; TF32: ~1e-3


def numpy_conv(x, w, g, stride, pad):
    """(y, dx, dw) of a channels-last 2-d conv in float64, one matrix product per kernel tap:
    y[n, i, j] = Σ_taps x̃[n, i s + a, j s + b] @ w[a, b]; dx̃ and dw are the adjoint sums."""
    x, w, g = (np.asarray(a, np.float64) for a in (x, w, g))
    xp = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    (kh, kw), (ho, wo) = w.shape[:2], g.shape[1:3]
    y = np.zeros(g.shape)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for a in range(kh):
        for b in range(kw):
            rows = slice(a, a + stride * (ho - 1) + 1, stride)
            cols = slice(b, b + stride * (wo - 1) + 1, stride)
            y += xp[:, rows, cols] @ w[a, b]
            dw[a, b] = np.einsum("nijc,nijf->cf", xp[:, rows, cols], g)
            dxp[:, rows, cols] += g @ w[a, b].T
    return y, dxp[:, pad : pad + x.shape[1], pad : pad + x.shape[2]], dw


def case(stride, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(X_SHAPE).astype(np.float32)
    w = rng.standard_normal(W_SHAPE).astype(np.float32)
    ho = (X_SHAPE[1] + 2 - 3) // stride + 1
    g = rng.standard_normal((X_SHAPE[0], ho, ho, W_SHAPE[-1])).astype(np.float32)
    return x, w, g


def test_matmul_precision_is_highest():
    assert jax.config.jax_default_matmul_precision == "highest"


@pytest.mark.parametrize(
    "backward, stride", [(b, 1) for b in BACKWARDS] + [("auto", 2)], ids=lambda v: str(v)
)
def test_float32_conv_matches_float64(backward, stride):
    x, w, g = case(stride)

    def loss(x, w):
        y = jc.conv(x, w, stride=stride, padding=1, backward=backward)
        return jnp.sum(y * g), y

    (_, y), (dx, dw) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(x, w)
    y_eager = jc.conv(x, w, stride=stride, padding=1, backward=backward)
    assert y.dtype == dx.dtype == dw.dtype == y_eager.dtype == jnp.float32

    want_y, want_dx, want_dw = numpy_conv(x, w, g, stride, 1)
    assert_close(y_eager, want_y, tol=TOL, err_msg="y (eager)")
    assert_close(y, want_y, tol=TOL, err_msg="y")
    assert_close(dx, want_dx, tol=TOL, err_msg="dx")
    assert_close(dw, want_dw, tol=TOL, err_msg="dw")


def test_results_on_default_device():
    x, w, g = case(1)
    device = jax.devices()[0]
    y = jc.conv(x, w, padding=1)
    dx, dw = jax.jit(jax.grad(lambda x, w: jnp.sum(jc.conv(x, w, padding=1) * g), (0, 1)))(x, w)
    for name, a in (("y", y), ("dx", dx), ("dw", dw)):
        assert a.devices() == {device}, (name, a.devices(), device)
