"""Pooling tests across several ops at once: seed 001's worked routing (max: the winning unit;
average: 1/(N×N)), check_grads(order=2), float16/bfloat16, vmap/jit, PyTorch's values,
gradients and indices when torch is installed, batch sharding, far strides and the window
machinery (`_core.window.map_windows`). One op at a time: test_max_pool.py, test_avg_pool.py,
test_lp_pool.py, test_global_pool.py, test_max_unpool.py; bad calls: test_errors.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from jaxconv import avg_pool, global_avg_pool, global_max_pool, lp_pool, max_pool
from tests.support.devices import host_devices_env
from tests.support.numerics import assert_close


def test_seed_001_worked_routing():
    """Jefkine: max routes the error to the winning unit, average multiplies it by 1/(N×N).

    The 2x2 windows of x and their deltas, and where each delta goes:

        window (rows, cols)   cells        max (at)       mean                        delta
        (0:2, 0:2)            1 2 / 4 3    4 (1, 0)       (1+2+4+3)/4 = 2.5           10
        (0:2, 2:4)            5 0 / 1 2    5 (0, 2)       (5+0+1+2)/4 = 2.0           20
        (2:4, 0:2)            0 1 / 6 2    6 (3, 0)       (0+1+6+2)/4 = 2.25          30
        (2:4, 2:4)            2 7 / 3 1    7 (2, 3)       (2+7+3+1)/4 = 3.25          40

    Max pooling: dx is the delta at each window's winner, 0 elsewhere. Average pooling: every
    cell of a window gets delta / 4 (2.5, 5, 7.5, 10).
    """
    x = jnp.array(
        [[1.0, 2.0, 5.0, 0.0], [4.0, 3.0, 1.0, 2.0], [0.0, 1.0, 2.0, 7.0], [6.0, 2.0, 3.0, 1.0]]
    ).reshape(1, 4, 4, 1)
    deltas = {(1, 0): 10.0, (0, 2): 20.0, (3, 0): 30.0, (2, 3): 40.0}  # winner -> its delta
    delta = jnp.array([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 2, 2, 1)
    y, vjp = jax.vjp(lambda x: max_pool(x, 2), x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[4, 5], [6, 7]])
    routed = np.zeros((4, 4))
    for at, d in deltas.items():
        routed[at] = d
    np.testing.assert_array_equal(vjp(delta)[0][0, :, :, 0], routed)
    y, vjp = jax.vjp(lambda x: avg_pool(x, 2), x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[2.5, 2.0], [2.25, 3.25]])
    spread = np.kron(np.asarray(delta)[0, :, :, 0] / 4, np.ones((2, 2)))  # delta/4 per window
    np.testing.assert_array_equal(vjp(delta)[0][0, :, :, 0], spread)


# ------------------------------------------------------------------- grad-of-grad, dtypes


@pytest.mark.parametrize(
    "fn,kw",
    [
        (avg_pool, dict(window=3, stride=2, padding=1, ceil_mode=True)),
        (avg_pool, dict(window=2, count_include_pad=False, padding=1, layout="channels_first")),
        (lp_pool, dict(p=2, window=(2, 3), stride=1, padding=1)),
        (lp_pool, dict(p=3.5, window=2)),
        (max_pool, dict(window=3, stride=2, padding=1, dilation=1, ceil_mode=True)),
        (max_pool, dict(window=2, stride=1, dilation=2, ties="split")),
    ],
)
def test_check_grads_order_2(fn, kw):
    """Reverse over reverse in float64: positive, distinct inputs (no kinks, no zero sums)."""
    x = jnp.asarray(np.random.default_rng(8).permutation(2 * 7 * 6 * 2).reshape(2, 7, 6, 2) + 1.0)
    check_grads(jax.jit(lambda x: fn(x / x.size, **kw)), (x,), order=2, modes=["rev"])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision(dtype):
    """float16/bfloat16 in, same dtype out (values and gradients), close to float32's."""
    fns = (
        lambda x: max_pool(x, 3, stride=2, padding=1),
        lambda x: avg_pool(x, 2),
        lambda x: lp_pool(x, 2, 2),
        global_avg_pool,
        global_max_pool,
    )

    @jax.jit
    def run_all(x):
        out = []
        for fn in fns:
            y, vjp = jax.vjp(fn, x)
            out.append((y, vjp(jnp.ones_like(y))[0]))
        return out

    x = np.random.default_rng(9).permutation(96).reshape(2, 6, 8, 1) / 16.0
    for (y, dx), (y32, dx32) in zip(run_all(jnp.asarray(x, dtype)), run_all(x.astype("f4"))):
        assert y.dtype == dx.dtype == dtype
        assert_close(y.astype("f4"), y32, tol=2e-2)
        assert_close(dx.astype("f4"), dx32, tol=2e-2)


def test_vmap_and_jit():
    x = jnp.asarray(np.random.default_rng(10).normal(size=(3, 2, 6, 5, 2)))
    f = lambda x: max_pool(x, 2, stride=1, ties="split").sum() + avg_pool(x, 3, padding=1).sum()  # noqa: E731
    per = jax.jit(jax.vmap(jax.grad(f)))(x)
    for b in range(3):
        assert_close(per[b], jax.jit(jax.grad(f))(x[b]))


# ------------------------------------------------------------------------------- PyTorch


TORCH_CONFIGS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(3, 2), dilation=(3, 2), ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1, dilation=2),
]


@pytest.mark.parametrize("cfg", TORCH_CONFIGS)
def test_against_torch(cfg):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    xn = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8).astype(np.float64)
    kw = {k: val for k, val in cfg.items() if k != "kernel_size"}
    xt = torch.tensor(xn, requires_grad=True)
    yt, it = F.max_pool2d(xt, cfg["kernel_size"], return_indices=True, **kw)
    gn = rng.normal(size=tuple(yt.shape))
    yt.backward(torch.tensor(gn))
    f = lambda x: max_pool(
        x,
        cfg["kernel_size"],
        return_indices=True,
        layout="channels_first",  # noqa: E731
        **kw,
    )
    (y, idx), vjp = jax.vjp(jax.jit(f), jnp.asarray(xn))
    assert_close(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    dx = vjp((jnp.asarray(gn), np.zeros(idx.shape, jax.dtypes.float0)))[0]
    assert_close(dx, xt.grad.numpy())
    if "dilation" in kw:
        return
    for include_pad in (True, False):  # same output size as max_pool2d without dilation
        xt = torch.tensor(xn, requires_grad=True)
        yt = F.avg_pool2d(xt, cfg["kernel_size"], count_include_pad=include_pad, **kw)
        yt.backward(torch.tensor(gn))
        f = lambda x, i=include_pad: avg_pool(
            x,
            cfg["kernel_size"],
            count_include_pad=i,  # noqa: E731
            layout="channels_first",
            **kw,
        )
        y, vjp = jax.vjp(jax.jit(f), jnp.asarray(xn))
        assert_close(y, yt.detach().numpy())
        assert_close(vjp(jnp.asarray(gn))[0], xt.grad.numpy())


# ------------------------------------------------------------------------------- sharding

SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from jaxconv import avg_pool, global_avg_pool, global_max_pool, linear, lp_pool, max_pool
from jaxconv import max_unpool, mse_loss, relu, softmax_cross_entropy
jax.config.update("jax_enable_x64", True)
w = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)))
def f(x):
    y = max_pool(x, 3, stride=2, padding=1, ties="split") + max_pool(x, 2, stride=2)[:, :5, :5]
    y = avg_pool(y, 2, ceil_mode=True) + lp_pool(x * x + 1, 2, 3, stride=2)[:, :3, :3]
    up = max_unpool(*max_pool(x, 2, return_indices=True), x.shape)
    z = linear(relu(global_avg_pool(up) + global_max_pool(x) + y.sum((1, 2))), w)
    return mse_loss(z, jnp.ones_like(z)) + softmax_cross_entropy(z, jnp.zeros(8, jnp.int32))
x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 10, 10, 4)))
mesh = jax.make_mesh((4,), ("b",), axis_types=(jax.sharding.AxisType.Explicit,))
xs = jax.device_put(x, NamedSharding(mesh, P("b")))
with jax.set_mesh(mesh):
    g = jax.jit(jax.grad(f))(xs)
assert g.sharding.spec == P("b", None, None, None), g.sharding
np.testing.assert_allclose(np.asarray(g), np.asarray(jax.grad(f)(x)), rtol=0, atol=1e-12)
print("ok")
"""


def test_batch_sharded_inputs_on_an_explicit_mesh():
    """Every op of this issue under jit + grad with x sharded over 4 host devices along N."""
    import subprocess
    import sys

    env = host_devices_env(4)
    out = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_pool_backward_with_stride_far_above_the_window():
    """stride 100 > window 2 in 2-D: 10^4 phases, of which only 4 hold gradient; they are placed
    by padding instead of interleaving 10^4 arrays (and the values equal lax's autodiff)."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 205, 205, 2)))
    for ours, plain in (
        (
            lambda x: max_pool(x, 2, stride=100),
            lambda x: lax.reduce_window(
                x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 100, 100, 1), "VALID"
            ),
        ),
        (
            lambda x: avg_pool(x, 2, stride=100),
            lambda x: (
                lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 100, 100, 1), "VALID") / 4
            ),
        ),
    ):
        loss = lambda f: lambda x: jnp.sum(jnp.sin(f(x)))  # noqa: E731
        jaxpr = jax.make_jaxpr(jax.grad(loss(ours)))(x)
        assert len(str(jaxpr)) < 200_000
        np.testing.assert_allclose(jax.grad(loss(ours))(x), jax.grad(loss(plain))(x), rtol=1e-12)


@pytest.mark.parametrize(
    "window,stride,padding,dilation,ceil_mode",
    [
        (3, 2, 1, 1, False),
        (3, 2, 1, 1, True),
        ((2, 3), (1, 2), ((1, 0), (1, 1)), (2, 1), False),
        (3, 3, 1, 2, True),
        (7, 1, 3, 1, False),  # 7 x 7 border runs x 49 offsets: the padded fallback
    ],
)
def test_map_windows_equals_reducing_the_padded_slices(
    window, stride, padding, dilation, ceil_mode
):
    """`_core.window.map_windows` (border runs, no padded copy) gives what reducing the slices
    of the padded input gives, offset order included (first-maximum ties decide by it)."""
    from jaxconv._core import window as _window

    x = jnp.asarray(np.random.default_rng(3).integers(-3, 3, (2, 9, 8, 2)), jnp.float32)
    win = _window.pool_window("t", x, window, stride, padding, dilation, ceil_mode, "channels_last")

    def argmax(slices):
        y, off = slices[0][1], jnp.zeros(slices[0][1].shape, jnp.int32)
        for r, s in slices[1:]:
            y, off = jnp.where(s > y, s, y), jnp.where(s > y, r, off)
        return y, off

    xp = _window.pad_to_cover(x, win, -jnp.inf)
    padded = []  # slice_r[i] = xp[i*s + m*d], offsets in row-major order
    for r, m in enumerate(win.offsets()):
        start = win.config([mm * d for mm, d in zip(m, win.dilation)], 0)
        stop = [
            mm * d + (o - 1) * s + 1 for mm, d, o, s in zip(m, win.dilation, win.out, win.stride)
        ]
        padded.append(
            (
                r,
                lax.slice(
                    xp, start, win.config(stop, xp.shape.__getitem__), win.config(win.stride, 1)
                ),
            )
        )
    padded = argmax(padded)
    got = _window.map_windows(x, win, -jnp.inf, argmax)
    for a, b in zip(got, padded):
        np.testing.assert_array_equal(a, b)
