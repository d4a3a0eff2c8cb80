"""jaxconv against the source documents: the seeds' worked examples and `jaxconv.reference`."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv as jc
from jaxconv import reference as ref
from tests.support.numerics import assert_close

# (x shape, w shape, settings): small enough for the NumPy loops, covering 1-D/2-D/3-D,
# stride, uneven padding, dilation, groups and depthwise.
CASES = [
    ((2, 12, 1), (4, 1, 1), dict(stride=2)),
    ((1, 9, 3), (3, 3, 4), dict(stride=3, padding=((2, 1),), dilation=2)),
    ((2, 6, 5, 4), (3, 2, 2, 6), dict(stride=(2, 1), padding=((1, 0), (2, 2)), groups=2)),
    ((1, 7, 7, 3), (3, 3, 1, 3), dict(stride=2, padding=1, groups=3)),
    ((1, 5, 4, 4, 2), (2, 3, 2, 2, 2), dict(stride=(1, 2, 1), padding=1, dilation=(2, 1, 1))),
]


@pytest.mark.parametrize("x_shape,w_shape,kw", CASES, ids=[str(c[2]) for c in CASES])
def test_forward_and_backward_equal_reference(x_shape, w_shape, kw, rng):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[-1])
    y, vjp = jax.vjp(lambda x, w, b: jc.conv(x, w, b, **kw), *map(jnp.asarray, (x, w, b)))
    assert_close(y, ref.conv(x, w, b, **kw))
    g = rng.standard_normal(y.shape)
    dx, dw, db = vjp(jnp.asarray(g))
    assert_close(dx, ref.conv_input_grad(x.shape, w, g, **kw))
    assert_close(dw, ref.conv_weight_grad(x, w.shape, g, **kw))
    assert_close(db, ref.conv_bias_grad(g))
    assert_close(
        jc.conv_input_grad(x.shape, jnp.asarray(w), jnp.asarray(g), **kw),
        ref.conv_input_grad(x.shape, w, g, **kw),
    )
    assert_close(
        jc.conv_transpose(jnp.asarray(g), jnp.asarray(w), output_size=x_shape[1:-1], **kw),
        ref.conv_input_grad(x.shape, w, g, **kw),
    )


def test_seed002_strided_matrix_and_transpose():
    """Seed 002: a 12-input, stride-2, 4-tap 1-D conv is y = x C with C[2j + m, j] = w_m; its
    backward is g Cᵀ and conv_transpose is that same Cᵀ."""
    w = np.array([1.0, 2.0, 3.0, 4.0])
    kernel = jnp.asarray(w.reshape(4, 1, 1))
    conv = lambda x: jc.conv(x.reshape(1, 12, 1), kernel, stride=2).reshape(5)
    C = np.stack([np.asarray(conv(jnp.eye(12)[i])) for i in range(12)])  # row i: x = e_i
    expected = np.zeros((12, 5))
    for j, m in itertools.product(range(5), range(4)):
        expected[2 * j + m, j] = w[m]
    np.testing.assert_array_equal(C, expected)
    g = jnp.arange(1.0, 6.0)
    dx = jax.vjp(conv, jnp.zeros(12))[1](g)[0]
    np.testing.assert_array_equal(dx, expected @ np.asarray(g))
    up = jc.conv_transpose(g.reshape(1, 5, 1), kernel, stride=2).reshape(-1)
    np.testing.assert_array_equal(up, expected @ np.asarray(g))
    # seed 002: "deconvolution with up-sampling factor 2 equals two 1-D convolutions" -- the even
    # and odd outputs are stride-1 correlations of g with the phase sub-kernels w[0::2], w[1::2].
    for phase in (0, 1):
        sub = jnp.asarray(w[phase::2][::-1].reshape(2, 1, 1))
        two = jc.conv(g.reshape(1, 5, 1), sub, padding="FULL").reshape(-1)
        np.testing.assert_array_equal(up[phase::2], two[: len(up[phase::2])])


def test_seed003_weight_gradient_g1_to_g4():
    """Seed 003: 3x3 input V1..V9, 2x2 kernel W1..W4, G1 = V1W1 + V2W2 + V4W3 + V5W4, ...;
    dE/dW1 = dG1 V1 + dG2 V2 + dG3 V4 + dG4 V5 (weight sharing sums over the windows)."""
    V = np.arange(1.0, 10.0)
    W = np.array([2.0, -1.0, 0.5, 3.0])
    x = jnp.asarray(V.reshape(1, 3, 3, 1))
    w = jnp.asarray(W.reshape(2, 2, 1, 1))
    G = np.asarray(jc.conv(x, w)).reshape(4)
    v = dict(enumerate(V, start=1))
    assert G[0] == v[1] * W[0] + v[2] * W[1] + v[4] * W[2] + v[5] * W[3]
    assert G[1] == v[2] * W[0] + v[3] * W[1] + v[5] * W[2] + v[6] * W[3]
    assert G[2] == v[4] * W[0] + v[5] * W[1] + v[7] * W[2] + v[8] * W[3]
    assert G[3] == v[5] * W[0] + v[6] * W[1] + v[8] * W[2] + v[9] * W[3]
    dG = np.array([0.1, -0.2, 0.3, 0.4])
    dW = np.asarray(jc.conv_weight_grad(x, w.shape, jnp.asarray(dG.reshape(1, 2, 2, 1))))
    dW = dW.reshape(4)
    windows = [(1, 2, 4, 5), (2, 3, 5, 6), (4, 5, 7, 8), (5, 6, 8, 9)]  # V indices of each G_j
    for m in range(4):
        assert dW[m] == pytest.approx(sum(dG[j] * v[windows[j][m]] for j in range(4)), abs=1e-15)


def test_seed001_rot180_identities(rng):
    """Seed 001 Eq. 2-3: convolution = cross-correlation with the kernel rotated 180 degrees;
    Eq. 20-21: the (stride-1) input gradient is the full convolution of the deltas with
    rot180(W), i.e. the FULL correlation of g with the channel-swapped rot180 kernel."""
    x = jnp.asarray(rng.standard_normal((2, 6, 7, 3)))
    w = jnp.asarray(rng.standard_normal((3, 2, 3, 4)))
    rot = w[::-1, ::-1]
    assert_close(jc.conv(x, w, flip=True), jc.conv(x, rot))
    g = jnp.asarray(rng.standard_normal(jc.conv(x, w).shape))
    swapped = jnp.swapaxes(rot, -1, -2)  # (*k, C_out, C_in): regrouped filters (seed 002)
    assert_close(jc.conv_input_grad(x.shape, w, g), jc.conv(g, swapped, padding="FULL"))


def test_seed000_strided_gradient_is_dilated_full_correlation(rng):
    """Seed 000: with stride 2 the input gradient is g dilated with stride-1 zeros, then the full
    correlation with rot180(w) (plus zeros for inputs no window reached)."""
    x = jnp.asarray(rng.standard_normal((1, 10, 2)))  # 10 inputs, k=3, s=2: 4 outputs, x[9] unread
    w = jnp.asarray(rng.standard_normal((3, 2, 5)))
    g = jnp.asarray(rng.standard_normal((1, 4, 5)))
    dilated = jnp.zeros((1, 7, 5)).at[:, ::2].set(g)
    full = jc.conv(dilated, jnp.swapaxes(w[::-1], -1, -2), padding="FULL")  # length 9
    dx = jc.conv_input_grad(x.shape, w, g, stride=2)
    assert_close(dx[:, :9], full)
    assert_close(dx[:, 9], jnp.zeros((1, 2)))


def test_seed004_phase_formula(rng):
    """Seed 004 (strided backward): dx[i] = Σ_i' w[i % s + i' s] g[i // s - i'] -- no zeros are
    multiplied. Written out for stride 2 and compared with jaxconv's input gradient."""
    s, k = 2, 4
    w = rng.standard_normal(k)
    g = rng.standard_normal(5)
    dx = np.zeros(12)
    for i in range(12):
        for ip in range(k // s):
            j = i // s - ip
            if 0 <= j < 5:
                dx[i] += w[i % s + ip * s] * g[j]
    got = jc.conv_input_grad(
        (1, 12, 1), jnp.asarray(w.reshape(k, 1, 1)), jnp.asarray(g.reshape(1, 5, 1)), stride=s
    )
    assert_close(got.reshape(-1), dx)
