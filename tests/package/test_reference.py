"""jaxconv.reference, the NumPy oracle, checked three ways.

1. Self-consistency without jax: finite differences and adjoint identities of its own grads.
2. The source documents' worked examples (seeds 000-004), written out with numbers.
3. Against jax.lax (testing.oracle) and torch, where installed: the oracle's oracle, in float64
   to 1e-12.
"""

import ast
import pathlib

import jax
import numpy as np
import pytest

from jaxconv import reference as ref
from jaxconv.testing import oracle
from tests.support.numerics import assert_close

# (x_shape, w_shape, stride, padding, dilation, groups): tiny, the reference loops are slow.
CONV_CONFIGS = [
    ((2, 9, 3), (3, 3, 4), 1, 0, 1, 1),
    ((1, 10, 4), (2, 2, 6), 3, [(2, 1)], 2, 2),
    ((2, 8, 2), (3, 2, 2), 2, [(0, 2)], 1, 1),
    ((1, 6, 5, 2), (3, 2, 2, 3), (2, 1), 1, 1, 1),
    ((2, 5, 5, 3), (2, 2, 1, 6), 2, [(0, 1), (1, 0)], (2, 1), 3),  # depthwise, multiplier 2
    ((1, 7, 6, 4), (3, 2, 2, 2), (3, 2), [(1, 2), (0, 1)], (1, 2), 2),
    ((1, 4, 5, 4, 2), (2, 2, 2, 2, 2), (1, 2, 2), [(1, 1), (0, 1), (1, 0)], 1, 1),
    ((1, 5, 4, 4, 2), (2, 1, 2, 1, 4), 2, 1, (2, 1, 1), 2),
]
CONV_IDS = [f"{len(c[0]) - 2}d-s{c[2]}-p{c[3]}-d{c[4]}-g{c[5]}" for c in CONV_CONFIGS]


def per_dim(v, nd):
    """Test-side normalisation (independent of reference's own helpers)."""
    return tuple(v) if isinstance(v, tuple) else (v,) * nd


def settings(cfg):
    _, _, stride, padding, dilation, groups = cfg
    return dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f at every entry of x."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        grad[idx] = (f(xp) - f(xm)) / (2 * eps)
    return grad


def test_reference_never_imports_jax():
    tree = ast.parse(pathlib.Path(ref.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "jax" for a in node.names)
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in ("jax", "jaxconv")


# ------------------------------------------------------------- 1. self-consistency, no jax


@pytest.mark.parametrize("cfg", [CONV_CONFIGS[1], CONV_CONFIGS[5]], ids=[CONV_IDS[1], CONV_IDS[5]])
def test_conv_grads_match_finite_differences(cfg, rng):
    x, w = rng.normal(size=cfg[0]), rng.normal(size=cfg[1])
    b = rng.normal(size=cfg[1][-1])
    kw = settings(cfg)
    g = rng.normal(size=ref.conv(x, w, **kw).shape)

    def loss(x, w, b):
        return float(np.sum(ref.conv(x, w, b, **kw) * g))

    dx, dw = ref.conv_input_grad(x.shape, w, g, **kw), ref.conv_weight_grad(x, w.shape, g, **kw)
    assert_close(dx, numeric_grad(lambda v: loss(v, w, b), x), tol=1e-8)
    assert_close(dw, numeric_grad(lambda v: loss(x, v, b), w), tol=1e-8)
    assert_close(ref.conv_bias_grad(g), numeric_grad(lambda v: loss(x, w, v), b), tol=1e-8)


@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=CONV_IDS)
def test_conv_adjoint_identities(cfg, rng):
    """<conv(x, w), g> = <x, conv_input_grad(g)> = <w, conv_weight_grad(x, g)>."""
    x, w = rng.normal(size=cfg[0]), rng.normal(size=cfg[1])
    kw = settings(cfg)
    y = ref.conv(x, w, **kw)
    g = rng.normal(size=y.shape)
    lhs = np.sum(y * g)
    rhs_x = np.sum(x * ref.conv_input_grad(x.shape, w, g, **kw))
    rhs_w = np.sum(w * ref.conv_weight_grad(x, w.shape, g, **kw))
    assert_close(rhs_x, lhs, tol=1e-12)
    assert_close(rhs_w, lhs, tol=1e-12)


POOL_CONFIGS = [  # (x_shape, window, stride, padding, dilation, ceil_mode)
    ((2, 7, 2), 3, 2, 1, 1, True),
    ((1, 6, 5, 2), (3, 2), (2, 1), [(1, 1), (0, 1)], (1, 2), True),
    ((1, 5, 5, 1), 2, 1, 0, 1, False),  # overlapping windows accumulate
    ((1, 4, 5, 4, 1), 2, (1, 2, 2), 1, 1, False),
]


@pytest.mark.parametrize("cfg", POOL_CONFIGS)
def test_max_pool_grad_matches_finite_differences(cfg, rng):
    shape, window, stride, padding, dilation, ceil_mode = cfg
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.5 - 3.0  # distinct, some negative
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    y, offsets = ref.max_pool(x, window, **kw)
    g = rng.normal(size=y.shape)
    expected = numeric_grad(lambda v: np.sum(ref.max_pool(v, window, **kw)[0] * g), x, eps=1e-3)
    assert_close(ref.max_pool_grad(x.shape, offsets, g, window=window, **kw), expected, tol=1e-9)


def test_max_pool_ties_first_and_padding_never_wins():
    x = np.array([-5.0, -2.0, -2.0, -7.0, -2.0]).reshape(1, 5, 1)
    y, offsets = ref.max_pool(
        x, 3, stride=2, padding=1
    )  # windows [pad x0 x1] [x1 x2 x3] [x3 x4 pad]
    assert y.ravel().tolist() == [-2.0, -2.0, -2.0]  # the -inf padding loses to negative inputs
    assert offsets.ravel().tolist() == [2, 0, 1]  # the tie x1 == x2 goes to the first, x1
    g = np.array([1.0, 10.0, 100.0]).reshape(1, 3, 1)
    dx = ref.max_pool_grad(x.shape, offsets, g, window=3, stride=2, padding=1)
    assert dx.ravel().tolist() == [0.0, 11.0, 0.0, 0.0, 100.0]  # two windows pick x1: accumulate


# (x_shape, window, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CONFIGS = [
    ((2, 6, 2), 3, 2, 1, True, True, None),
    ((2, 6, 2), 3, 2, 1, True, False, None),
    ((1, 5, 6, 1), (2, 3), (2, 2), [(1, 0), (1, 1)], True, True, None),
    ((1, 5, 6, 1), (2, 3), (1, 2), [(0, 1), (1, 1)], False, False, 5),
    ((1, 4, 3, 5, 1), 2, 2, 1, True, False, None),
]


@pytest.mark.parametrize("cfg", AVG_CONFIGS)
def test_avg_pool_grad_matches_finite_differences(cfg, rng):
    shape, window, stride, padding, ceil_mode, include, divisor = cfg
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=include,
              divisor_override=divisor)  # fmt: skip
    x = rng.normal(size=shape)
    g = rng.normal(size=ref.avg_pool(x, window, **kw).shape)
    expected = numeric_grad(lambda v: np.sum(ref.avg_pool(v, window, **kw) * g), x)
    assert_close(ref.avg_pool_grad(x.shape, g, window=window, **kw), expected, tol=1e-8)


def test_avg_pool_divisor_by_hand():
    """Window 3, stride 2, pad 1, ceil: the last window [5, 8) holds x[5], one pad cell, and one
    cell beyond the padded input that never counts."""
    x = np.arange(1.0, 7.0).reshape(1, 6, 1)
    kw = dict(stride=2, padding=1, ceil_mode=True)
    assert ref.avg_pool(x, 3, **kw).ravel().tolist() == [1.0, 3.0, 5.0, 3.0]
    assert ref.avg_pool(x, 3, **kw, count_include_pad=False).ravel().tolist() == [1.5, 3, 5, 6]
    assert ref.avg_pool(x, 3, **kw, divisor_override=2).ravel().tolist() == [1.5, 4.5, 7.5, 3]


@pytest.mark.parametrize("p", [2, 3, 1.5])
@pytest.mark.parametrize(
    "shape, window, stride, padding, ceil_mode",
    [((2, 7, 2), 3, 2, 0, False), ((1, 5, 4, 2), (2, 3), 1, [(1, 0), (0, 1)], False),
     ((1, 5, 5, 1), 2, 2, 0, True)],
)  # fmt: skip
def test_lp_pool_grad_matches_finite_differences(p, shape, window, stride, padding, ceil_mode, rng):
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode)
    x = rng.uniform(0.5, 2.0, size=shape)
    g = rng.normal(size=ref.lp_pool(x, p, window, **kw).shape)
    expected = numeric_grad(lambda v: np.sum(ref.lp_pool(v, p, window, **kw) * g), x)
    assert_close(ref.lp_pool_grad(x, p, g, window=window, **kw), expected, tol=1e-8)


def test_lp_pool_p2_is_l2_norm_and_zero_window_has_zero_grad():
    x = np.array([3.0, 4.0, 0.0, 0.0]).reshape(1, 4, 1)
    assert ref.lp_pool(x, 2, 2).ravel().tolist() == [5.0, 0.0]
    dx = ref.lp_pool_grad(x, 2, np.ones((1, 2, 1)), window=2)
    assert_close(dx.ravel(), np.array([0.6, 0.8, 0.0, 0.0]))


def test_relu_linear_and_losses_match_finite_differences(rng):
    x = rng.normal(size=(3, 4))
    x[np.abs(x) < 0.1] = 0.5  # keep finite differences away from the kink
    g = rng.normal(size=(3, 4))
    assert_close(ref.relu_grad(x, g), numeric_grad(lambda v: np.sum(ref.relu(v) * g), x), tol=1e-8)
    assert ref.relu_grad(np.zeros(2), np.ones(2)).tolist() == [0.0, 0.0]  # relu'(0) = 0

    w, b = rng.normal(size=(4, 5)), rng.normal(size=5)
    g = rng.normal(size=(3, 5))
    dx, dw, db = ref.linear_grad(x, w, g)
    assert_close(ref.linear(x, w, b), x @ w + b)
    assert_close(dx, numeric_grad(lambda v: np.sum(ref.linear(v, w, b) * g), x), tol=1e-8)
    assert_close(dw, numeric_grad(lambda v: np.sum(ref.linear(x, v, b) * g), w), tol=1e-8)
    assert_close(db, numeric_grad(lambda v: np.sum(ref.linear(x, w, v) * g), b), tol=1e-8)

    y, t = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    assert_close(ref.mse_loss(y, t), 0.5 * np.sum((t - y) ** 2))
    assert_close(ref.mse_loss_grad(y, t), numeric_grad(lambda v: ref.mse_loss(v, t), y), tol=1e-8)

    logits, labels = rng.normal(size=(4, 5)) * 3, np.array([0, 4, 2, 2])
    expected = np.mean(
        [np.log(np.exp(z).sum()) - z[k] for z, k in zip(logits, labels, strict=True)]
    )
    assert_close(ref.softmax_cross_entropy(logits, labels), expected)
    numeric = numeric_grad(lambda v: ref.softmax_cross_entropy(v, labels), logits)
    assert_close(ref.softmax_cross_entropy_grad(logits, labels), numeric, tol=1e-8)


# ---------------------------------------------------------- 2. the documents' worked examples


def test_seed002_strided_conv_matrix_and_its_transpose():
    """Seed 002: 12 inputs, kernel w1..w4, stride 2, 5 outputs: C[2j + m, j] = w_m; backward Cᵀ."""
    w1, w2, w3, w4 = 2.0, 3.0, 5.0, 7.0
    C = np.array([
        # y1  y2  y3  y4  y5
        [w1, 0., 0., 0., 0.],  # x1
        [w2, 0., 0., 0., 0.],  # x2
        [w3, w1, 0., 0., 0.],  # x3
        [w4, w2, 0., 0., 0.],  # x4
        [0., w3, w1, 0., 0.],  # x5
        [0., w4, w2, 0., 0.],  # x6
        [0., 0., w3, w1, 0.],  # x7
        [0., 0., w4, w2, 0.],  # x8
        [0., 0., 0., w3, w1],  # x9
        [0., 0., 0., w4, w2],  # x10
        [0., 0., 0., 0., w3],  # x11
        [0., 0., 0., 0., w4],  # x12
    ])  # fmt: skip
    assert np.array_equal(ref.conv_matrix(12, [w1, w2, w3, w4], stride=2), C)
    x, g = np.arange(1.0, 13.0), np.array([1.0, -2.0, 3.0, 5.0, -1.0])
    w = np.array([w1, w2, w3, w4]).reshape(4, 1, 1)
    assert np.array_equal(ref.conv(x.reshape(1, 12, 1), w, stride=2).ravel(), x @ C)
    assert np.array_equal(
        ref.conv_input_grad((1, 12, 1), w, g.reshape(1, 5, 1), stride=2).ravel(), g @ C.T
    )
    # with padding the matrix is the same band, shifted: still forward C, backward Cᵀ
    Cp = ref.conv_matrix(12, [w1, w2, w3, w4], stride=2, padding=(1, 2))
    gp = np.arange(1.0, Cp.shape[1] + 1).reshape(1, -1, 1)
    assert np.array_equal(
        ref.conv(x.reshape(1, 12, 1), w, stride=2, padding=[(1, 2)]).ravel(), x @ Cp
    )
    dx = ref.conv_input_grad((1, 12, 1), w, gp, stride=2, padding=[(1, 2)])
    assert np.array_equal(dx.ravel(), gp.ravel() @ Cp.T)


def test_seed003_weight_gradient_of_a_3x3_input_and_2x2_kernel():
    V1, V2, V3, V4, V5, V6, V7, V8, V9 = 2.0, 3.0, 5.0, 7.0, 11.0, 13.0, 17.0, 19.0, 23.0
    W1, W2, W3, W4 = 1.0, -2.0, 4.0, 0.5
    V = np.array([[V1, V2, V3], [V4, V5, V6], [V7, V8, V9]]).reshape(1, 3, 3, 1)
    W = np.array([[W1, W2], [W3, W4]]).reshape(2, 2, 1, 1)
    G1, G2, G3, G4 = ref.conv(V, W).ravel()
    assert G1 == V1 * W1 + V2 * W2 + V4 * W3 + V5 * W4
    assert G2 == V2 * W1 + V3 * W2 + V5 * W3 + V6 * W4
    assert G3 == V4 * W1 + V5 * W2 + V7 * W3 + V8 * W4
    assert G4 == V5 * W1 + V6 * W2 + V8 * W3 + V9 * W4
    dG1, dG2, dG3, dG4 = 0.5, -1.0, 2.0, 3.0
    dG = np.array([[dG1, dG2], [dG3, dG4]]).reshape(1, 2, 2, 1)
    dW1, dW2, dW3, dW4 = ref.conv_weight_grad(V, W.shape, dG).ravel()
    assert dW1 == dG1 * V1 + dG2 * V2 + dG3 * V4 + dG4 * V5
    assert dW2 == dG1 * V2 + dG2 * V3 + dG3 * V5 + dG4 * V6
    assert dW3 == dG1 * V4 + dG2 * V5 + dG3 * V7 + dG4 * V8
    assert dW4 == dG1 * V5 + dG2 * V6 + dG3 * V8 + dG4 * V9


def test_seed001_convolution_is_correlation_with_rot180_kernel(rng):
    """Eq. 2 (I * K)_ij = Σ I(i−m, j−n) K(m, n) equals Eq. 3, correlation with K rotated 180°."""
    x, w = rng.normal(size=(1, 6, 5, 2)), rng.normal(size=(3, 2, 2, 3))
    true_conv = np.zeros((1, 4, 4, 3))  # Eq. 2 on the valid region i in [k1 − 1, H − 1]
    for i, j, f in np.ndindex(4, 4, 3):
        for m, n, c in np.ndindex(3, 2, 2):
            true_conv[0, i, j, f] += x[0, i + 2 - m, j + 1 - n, c] * w[m, n, c, f]
    assert_close(ref.conv(x, ref.rot180(w)), true_conv)
    assert np.array_equal(ref.rot180(ref.rot180(w)), w)


def swapped_rot180(w):
    """Seed 002's regrouping: D filters × C channels -> C filters of depth D, each rotated 180°."""
    return np.swapaxes(ref.rot180(w), -1, -2)


@pytest.mark.parametrize("x_shape, w_shape", [((2, 7, 3), (3, 3, 2)), ((1, 6, 5, 2), (3, 2, 2, 3))])
def test_seed001_input_grad_is_full_convolution_with_rot180(x_shape, w_shape, rng):
    """Eq. 20-21 (stride 1): dx = correlate g, zero-padded by k − 1, with rot180(w)."""
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    g = rng.normal(size=ref.conv(x, w).shape)
    full = [(k - 1, k - 1) for k in w_shape[:-2]]
    expected = ref.conv(g, swapped_rot180(w), padding=full)
    assert_close(ref.conv_input_grad(x_shape, w, g), expected)


def test_seed001_weight_grad_is_correlation_of_input_with_deltas(rng):
    """Eq. 13-14: dw[m', n'] = Σ_ij δ_ij o_{i+m', j+n'}, the input correlated with δ as kernel."""
    x, w = rng.normal(size=(1, 6, 5, 2)), rng.normal(size=(3, 2, 2, 3))
    g = rng.normal(size=ref.conv(x, w).shape)
    dw = ref.conv_weight_grad(x, w.shape, g)
    for c, f in np.ndindex(2, 3):
        expected = ref.conv(x[..., c : c + 1], g[0, :, :, f, None, None])[0, :, :, 0]
        assert_close(dw[:, :, c, f], expected)


@pytest.mark.parametrize("n", [7, 8])  # 8: the last input row is never read by the forward
def test_seed000_strided_input_grad_is_dilated_deltas_full_convolved(n, rng):
    """Stride 2: insert stride − 1 zeros between the deltas, then full-correlate with rot180(w)."""
    x, w = rng.normal(size=(1, n, n, 2)), rng.normal(size=(3, 3, 2, 4))
    g = rng.normal(size=ref.conv(x, w, stride=2).shape)
    dilated = np.zeros((1, 2 * g.shape[1] - 1, 2 * g.shape[2] - 1, 4))
    dilated[:, ::2, ::2, :] = g
    extra = n - (dilated.shape[1] + 2)  # input rows past the last window: gradient 0
    expected = ref.conv(dilated, swapped_rot180(w), padding=[(2, 2 + extra)] * 2)
    assert_close(ref.conv_input_grad(x.shape, w, g, stride=2), expected)


def test_seed004_strided_backward_by_kernel_phase(rng):
    """Schmidt's strided backward: δ_i = Σ_{i'} w[i % s + i'·s] δ_{i/s − i'}, no zero-dilation."""
    s, k, n = 2, 4, 12
    x, w = rng.normal(size=(1, n, 1)), rng.normal(size=(k, 1, 1))
    g = rng.normal(size=ref.conv(x, w, stride=s).shape)
    delta, o = np.zeros(n), g.shape[1]
    for i in range(n):
        for ip in range(k // s):
            if 0 <= i // s - ip < o:
                delta[i] += w[i % s + ip * s, 0, 0] * g[0, i // s - ip, 0]
    assert_close(ref.conv_input_grad(x.shape, w, g, stride=s).ravel(), delta)


# ------------------------------------------------------------- 3. against jax.lax and torch


@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=CONV_IDS)
def test_conv_and_grads_match_lax(cfg, rng):
    x, w = rng.normal(size=cfg[0]), rng.normal(size=cfg[1])
    b = rng.normal(size=cfg[1][-1])
    kw = settings(cfg)
    y, vjp = jax.vjp(lambda x, w: oracle.conv(x, w, **kw), x, w)
    assert_close(ref.conv(x, w, b, **kw), np.asarray(y) + b, tol=1e-12)
    g = rng.normal(size=y.shape)
    dx, dw = vjp(g)
    assert_close(ref.conv_input_grad(x.shape, w, g, **kw), dx, tol=1e-12)
    assert_close(ref.conv_weight_grad(x, w.shape, g, **kw), dw, tol=1e-12)


@pytest.mark.parametrize("cfg", [c for c in POOL_CONFIGS if not c[-1]])
def test_max_and_avg_pool_match_lax_reduce_window(cfg, rng):
    shape, window, stride, padding, dilation, _ = cfg
    kw = dict(stride=stride, padding=padding)
    x = rng.normal(size=shape)
    y, _ = ref.max_pool(x, window, dilation=dilation, **kw)
    assert_close(y, oracle.max_pool(x, window, dilation=dilation, **kw), tol=1e-12)
    if dilation == 1:
        assert_close(ref.avg_pool(x, window, **kw), oracle.avg_pool(x, window, **kw), tol=1e-12)


def to_torch(x):
    torch = pytest.importorskip("torch")
    return torch.from_numpy(np.moveaxis(x, -1, 1).copy())


def from_torch(t):
    return np.moveaxis(t.numpy(), 1, -1)


@pytest.mark.parametrize(
    "shape, window, stride, padding, dilation",
    [((2, 7, 2), 3, 2, 1, 1), ((1, 6, 7, 2), (3, 2), (2, 2), (1, 1), (1, 2)),
     ((1, 5, 4, 4, 1), 2, (2, 1, 2), 1, 1)],
)  # fmt: skip
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_matches_torch(shape, window, stride, padding, dilation, ceil_mode, rng):
    torch = pytest.importorskip("torch")
    nd = len(shape) - 2
    x = rng.permutation(np.prod(shape)).reshape(shape) * 1.0
    x[..., 0] = np.round(x[..., 0] / 4)  # ties
    pool = getattr(torch.nn.functional, f"max_pool{nd}d")
    yt, idx = pool(to_torch(x), window, stride, padding, dilation, ceil_mode, return_indices=True)
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    y, offsets = ref.max_pool(x, window, **kw)
    assert np.array_equal(y, from_torch(yt))
    # torch's index is flat in the input; ours is the offset inside the window: compare the cell
    k, s, d, lo = (per_dim(v, nd) for v in (window, stride, dilation, padding))
    for n, *i, c in np.ndindex(*y.shape):
        m = np.unravel_index(offsets[(n, *i, c)], k)
        p = [i[a] * s[a] + m[a] * d[a] - lo[a] for a in range(nd)]
        assert np.ravel_multi_index(p, shape[1:-1]) == idx[(n, c, *i)].item()


@pytest.mark.parametrize(
    "shape, window, stride, padding",
    [((2, 6, 2), 3, 2, 1), ((1, 5, 6, 2), (2, 3), (2, 2), (1, 1)), ((1, 4, 5, 3, 1), 3, 2, 1)],
)
@pytest.mark.parametrize(
    "ceil_mode, include, divisor", [(False, True, None), (True, True, None), (True, False, None),
                                    (True, True, 5), (False, False, 3)],
)  # fmt: skip
def test_avg_pool_matches_torch(shape, window, stride, padding, ceil_mode, include, divisor, rng):
    torch = pytest.importorskip("torch")
    nd = len(shape) - 2
    x = rng.normal(size=shape)
    pool = getattr(torch.nn.functional, f"avg_pool{nd}d")
    if nd == 1 and divisor is not None:
        pytest.skip("avg_pool1d has no divisor_override")
    args = (window, stride, padding, ceil_mode, include)
    yt = pool(to_torch(x), *args) if nd == 1 else pool(to_torch(x), *args, divisor)
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=include,
              divisor_override=divisor)  # fmt: skip
    assert_close(ref.avg_pool(x, window, **kw), from_torch(yt), tol=1e-12)


@pytest.mark.parametrize(
    "shape, window, stride", [((2, 7, 2), 3, 2), ((1, 5, 6, 2), (2, 3), (1, 2))]
)
@pytest.mark.parametrize("p", [2.0, 3.0])
def test_lp_pool_matches_torch_without_ceil_mode(shape, window, stride, p, rng):
    torch = pytest.importorskip("torch")
    nd = len(shape) - 2
    x = rng.uniform(0.5, 2.0, size=shape)
    pool = getattr(torch.nn.functional, f"lp_pool{nd}d")
    expected = from_torch(pool(to_torch(x), p, window, stride))
    assert_close(ref.lp_pool(x, p, window, stride=stride), expected, tol=1e-12)
