"""NaN and Inf in inputs, kernels and cotangents propagate as autodiff propagates them.

A non-finite value reaches exactly the outputs (and gradient entries) whose sums contain a term
it enters, as in JAX's autodiff of the plain lax/jnp computation. Two deliberate differences,
both asserted here against an autodiff model that makes them explicit:

- Groups: XLA:CPU computes grouped convolutions with a dense block-diagonal kernel, so a NaN
  or Inf in one group also turns other groups' outputs into NaN (0 * inf). jaxconv follows the
  definition: a value only reaches its own group. Model: autodiff of the group-by-group lax conv.
- Explicit zero padding: the im2col ("matmul") and shifted multiply-add ("shift") lowerings
  multiply padding cells as zeros, so 0 * inf = NaN where a padded window meets a non-finite
  weight (forward) or cotangent (weight gradient); XLA's convolutions skip padding. Model:
  autodiff of lax conv applied to ``jnp.pad(x)`` with VALID padding.

Off the CPU (a GPU), ``auto``, ``lean`` and ``phase`` compute the forward and the weight gradient
with XLA's convolutions (docs/platforms.md), and cuDNN picks algorithms (Winograd, FFT) that
spread one non-finite *weight* over whole tiles, differently from program to program, also in
autodiff's own gradient. There a NaN/Inf kernel entry is checked for coverage: every entry the
exact model (computed on the host CPU) makes non-finite is non-finite, and the entries finite in
both agree. Non-finite inputs and cotangents keep the exact check on every platform.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv as jc
from jaxconv.convolution.lowering.choice import auto_algorithms, lean_algorithms
from jaxconv.testing import oracle
from tests.support.registry import OPS

VALUES = (np.nan, np.inf, -np.inf)
CONV_VALUES = (np.nan, np.inf)  # -inf behaves as +inf in sums


def pattern(a):
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    a = np.asarray(a)
    return np.select([np.isnan(a), np.isposinf(a), np.isneginf(a)], [1, 2, 3], 0)


def assert_same_nonfinite(actual, expected, what=""):
    """Same non-finite pattern, and the finite entries agree."""
    pa, pe = pattern(actual), pattern(expected)
    assert (pa == pe).all(), f"{what}: {int((pa != pe).sum())} entries differ in NaN/Inf"
    fin = pa == 0
    np.testing.assert_allclose(
        np.asarray(actual)[fin], np.asarray(expected)[fin], rtol=1e-10, atol=1e-10
    )


def assert_covers_nonfinite(actual, exact, what=""):
    """Every entry non-finite in `exact` is non-finite in `actual` (nothing hidden), and the
    entries finite in both agree."""
    pa, pe = pattern(actual), pattern(exact)
    hidden = (pe != 0) & (pa == 0)
    assert not hidden.any(), f"{what}: {int(hidden.sum())} non-finite entries became finite"
    fin = (pa == 0) & (pe == 0)
    np.testing.assert_allclose(
        np.asarray(actual)[fin], np.asarray(exact)[fin], rtol=1e-10, atol=1e-10
    )


ON_HOST = jax.default_backend() == "cpu"


def lax_conv(x, w, stride, pad, groups, split):
    """`oracle.conv`; with `split`, group by group (no values cross groups)."""
    if not split:
        return oracle.conv(x, w, stride=stride, padding=pad, groups=groups)
    cg, fg = x.shape[-1] // groups, w.shape[-1] // groups
    parts = [
        lax_conv(x[..., i * cg : (i + 1) * cg], w[..., i * fg : (i + 1) * fg], stride, pad, 1, 0)
        for i in range(groups)
    ]
    return jnp.concatenate(parts, axis=-1)


def model_vjp(x, w, g, stride, pad, groups, split=False, explicit_pad=False):
    """(y, dx, dw) by autodiff of `lax_conv`; with `explicit_pad` x is zero-padded before a VALID
    conv -- outside jit, or XLA would fold the pad back into the convolution's padding."""
    if explicit_pad:
        xp = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
        y, vjp = jax.vjp(lambda xp, w: lax_conv(xp, w, stride, 0, groups, split), xp, w)
        dxp, dw = vjp(g)
        return y, np.asarray(dxp)[:, pad : pad + x.shape[1], pad : pad + x.shape[2]], dw
    y, vjp = jax.vjp(lambda x, w: lax_conv(x, w, stride, pad, groups, split), x, w)
    return (y, *vjp(g))


CONFIGS = [  # (stride, pad, groups, C_in, C_out)
    ((1, 1), 1, 1, 4, 3),
    ((2, 2), 1, 1, 6, 5),
    ((2, 2), 0, 2, 4, 6),
    ((1, 1), 1, 4, 4, 4),  # depthwise
    ((1, 1), 0, 1, 1, 3),  # one input channel
]


def algorithms(backward, x_shape, w_shape, stride, groups):
    if backward == "transpose":
        return ("xla", "transpose", "xla")
    if backward == "matmul":
        return ("matmul", "matmul", "matmul")
    if not ON_HOST:  # XLA's convolutions off the CPU; "phase" keeps its polyphase dx
        return ("xla", "phase" if backward == "phase" else "transpose", "xla")
    if backward == "lean":
        return lean_algorithms(w_shape, groups, stride)
    algos = auto_algorithms(x_shape, w_shape, stride, (1, 1), groups)
    return (algos[0], "phase", algos[2]) if backward == "phase" else algos


@pytest.mark.parametrize("backward", ["transpose", "phase", "matmul", "auto", "lean"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"s{c[0][0]}p{c[1]}g{c[2]}c{c[3]}")
def test_conv_nonfinite_like_autodiff(cfg, backward):
    stride, pad, groups, cin, cout = cfg
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 7, 7, cin))
    w0 = rng.standard_normal((3, 3, cin // groups, cout))
    algos = algorithms(backward, x0.shape, w0.shape, stride, groups)
    fwd, dx_algo, dw_algo = algos
    f = jax.jit(
        lambda x, w: jc.conv(x, w, stride=stride, padding=pad, groups=groups, backward=backward)
    )
    y_shape = jax.eval_shape(f, x0, w0).shape
    for where in ("x", "w", "g"):
        for val in CONV_VALUES:
            x, w, g = x0.copy(), w0.copy(), rng.standard_normal(y_shape)
            {"x": x, "w": w, "g": g}[where][(0, 1, 2, 0) if where != "w" else (1, 2, 0, 0)] = val
            y, vjp = jax.vjp(f, x, w)
            dx, dw = vjp(g)
            covers = not ON_HOST and where == "w"  # cuDNN spreads a non-finite weight
            with jax.default_device(jax.devices("cpu")[0]) if covers else contextlib.nullcontext():
                plain = model_vjp(x, w, g, stride, pad, groups)
                per_group = model_vjp(x, w, g, stride, pad, groups, split=True)
                padded = model_vjp(x, w, g, stride, pad, groups, split=True, explicit_pad=True)
            check = assert_covers_nonfinite if covers else assert_same_nonfinite
            case = f"{where}={val} algos={algos}"
            # XLA-computed pieces match autodiff exactly; our own lowerings the models above
            check(y, (plain if fwd == "xla" else padded)[0], "y " + case)
            own_dx = dx_algo in ("matmul", "taps", "shift")
            check(dx, (per_group if own_dx else plain)[1], "dx " + case)
            check(dw, (plain if dw_algo == "xla" else padded)[2], "dw " + case)


def test_conv_transpose_ungrouped_equals_plain_autodiff_for_x_and_g():
    """No padding multiplied, no groups: exactly autodiff's pattern (the `transpose` algorithm)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 3, 4, 3))
    x = rng.standard_normal((2, 7, 7, 4))
    x[0, 3, 3, 1] = np.nan
    f = lambda x, w: jc.conv(x, w, padding=1, backward="transpose")  # noqa: E731
    y, vjp = jax.vjp(f, x, w)
    ya, vjpa = jax.vjp(lambda x, w: oracle.conv(x, w, padding=1), x, w)
    g = rng.standard_normal(y.shape)
    for a, b in zip((y, *vjp(g)), (ya, *vjpa(g))):
        assert_same_nonfinite(a, b)


NONFINITE = sorted(name for name, op in OPS.items() if op.nonfinite)


@pytest.mark.parametrize("name", NONFINITE)
def test_ops_nonfinite_like_autodiff(name):
    """Each input entry and each cotangent entry set to the op's non-finite values in turn (the
    registry's `nonfinite`: NaN and ±inf within the op's domain; max pooling: the infinities,
    its NaN rule is PyTorch's -- NaN wins and gets the gradient -- tested in tests/pool/)."""
    op = OPS[name]
    ours, plain, n_args, values = op.fn, op.ref, len(op.args), op.nonfinite
    rng = np.random.default_rng(2)
    base = [np.array(a) for a in op.args]
    g_shape = jax.eval_shape(ours, *base).shape
    scalar_out = g_shape == ()
    for i in range(n_args):
        for idx in (0, 7):
            for val in values:
                args = [a.copy() for a in base]
                args[i].flat[idx % args[i].size] = val
                y, vjp = jax.vjp(ours, *args)
                ya, vjpa = jax.vjp(plain, *args)
                g = rng.standard_normal(g_shape)
                assert_same_nonfinite(y, ya, f"{name} y arg{i}={val}")
                for a, b in zip(vjp(g), vjpa(g)):
                    assert_same_nonfinite(a, b, f"{name} grad arg{i}={val}")
    if scalar_out or not op.nonfinite_g:
        return  # an infinite loss cotangent: see test_infinite_loss_cotangent
    for val in VALUES:
        g = rng.standard_normal(g_shape)
        g.flat[1] = val
        _, vjp = jax.vjp(ours, *base)
        _, vjpa = jax.vjp(plain, *base)
        for a, b in zip(vjp(g), vjpa(g)):
            assert_same_nonfinite(a, b, f"{name} g={val}")


def test_infinite_loss_cotangent():
    """A documented difference: softmax_cross_entropy's backward is (softmax - onehot) * g / N,
    so g = inf gives -inf at the label and +inf elsewhere; autodiff's log-softmax rule computes
    inf - inf = NaN at the label. mse_loss matches autodiff."""
    z = np.random.default_rng(3).standard_normal((2, 3))
    labels = jnp.array([0, 2])
    _, vjp = jax.vjp(lambda z: jc.softmax_cross_entropy(z, labels), z)
    (dz,) = vjp(jnp.inf)
    onehot = np.eye(3)[[0, 2]].astype(bool)
    assert np.all(np.isneginf(np.asarray(dz)[onehot])) and np.all(
        np.isposinf(np.asarray(dz)[~onehot])
    )
    y, t = z, np.zeros_like(z)
    _, vjp = jax.vjp(jc.mse_loss, y, t)
    _, vjpa = jax.vjp(oracle.mse_loss, y, t)
    for a, b in zip(vjp(jnp.inf), vjpa(jnp.inf)):
        assert_same_nonfinite(a, b)
