"""interpolate: values and gradients against the NumPy reference (float64) and against PyTorch
(float64 and float32, both memory formats), VJP/JVP against JAX's autodiff of the plain-JAX
oracle over hypothesis-drawn ranks 1-3, sizes, scales, modes, flags and layouts; check_rules to
order 2 per mode; the adjoint identity; the periodic (polyphase) plan; vmap/jit; 16-bit; the
rules-off run; every bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxconv import interpolate, reference
from jaxconv._core import axis_map as am
from jaxconv.resampling.interpolate import dim_table
from jaxconv.testing import check_rules, oracle
from tests.properties.test_forward_mode import jax_rules_off
from tests.support.numerics import assert_close

MODES = ("nearest", "nearest-exact", "linear", "bicubic", "area")
TORCH_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _full(n, spatial, c, layout):
    return (n, *spatial, c) if layout == "channels_last" else (n, c, *spatial)


@st.composite
def cases(draw, max_rank=3, modes=MODES, antialias_rank=None):
    nd = draw(st.integers(1, max_rank))
    mode = draw(st.sampled_from(modes))
    spatial = tuple(draw(st.integers(1, 7 if nd < 3 else 4)) for _ in range(nd))
    kw = dict(mode=mode, layout=draw(st.sampled_from(["channels_last", "channels_first"])))
    if mode in ("linear", "bicubic"):
        kw["align_corners"] = draw(st.sampled_from([None, False, True]))
        if antialias_rank is None or nd == antialias_rank:
            kw["antialias"] = draw(st.booleans())
    if draw(st.booleans()):
        size = tuple(draw(st.integers(1, 9 if nd < 3 else 5)) for _ in range(nd))
        if draw(st.booleans()) and len(set(size)) == 1:
            size = size[0]
    else:
        size = None
        scales = [draw(st.sampled_from([0.5, 0.75, 1.0, 1.1, 1.3, 1.5, 2.0, 2.5, 3.0]))
                  for _ in range(nd)]  # fmt: skip
        scales = [max(s, 1.0 / n) for s, n in zip(scales, spatial)]  # no empty output
        kw["scale_factor"] = tuple(scales) if draw(st.booleans()) or nd == 1 else scales[0]
        if not isinstance(kw["scale_factor"], tuple) and any(
            math.floor(n * kw["scale_factor"]) < 1 for n in spatial
        ):
            kw["scale_factor"] = tuple(scales)
        kw["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).normal(
        size=_full(2, spatial, 2, kw["layout"])
    )
    return x, size, kw


@given(cases())
def test_matches_reference_and_oracle_autodiff(case):
    """Values, VJP and JVP vs JAX's autodiff of the plain-JAX oracle; values and VJP vs the
    NumPy reference (float64)."""
    x, size, kw = case
    f = lambda x: interpolate(x, size, **kw)  # noqa: E731
    ref = lambda x: oracle.interpolate(x, size, **kw)  # noqa: E731
    rng = np.random.default_rng(0)
    g = rng.standard_normal(jax.eval_shape(f, x).shape)
    t = rng.standard_normal(x.shape)

    @jax.jit
    def run(x, g, t):
        out = []
        for h in (f, ref):
            y, vjp = jax.vjp(h, x)
            out.append((y, vjp(g)[0], jax.jvp(h, (x,), (t,))[1]))
        return out

    ours, theirs = run(x, g, t)
    for a, b in zip(ours, theirs):
        assert_close(a, b)
    assert_close(ours[0], reference.interpolate(x, size, **kw))
    assert_close(ours[1], reference.interpolate_grad(x.shape, g, size, **kw))


# --------------------------------------------------------------------------- PyTorch


def _pytorch_gradient_differs(x_spatial, out_spatial, size, kw):
    """The settings where PyTorch's backward is not the derivative of its own forward (ours
    is): a given scale factor that leaves a size unchanged (or doubles it, nearest)."""
    if size is not None or kw.get("recompute_scale_factor"):
        return False
    same = [o == n for n, o in zip(x_spatial, out_spatial)]
    if kw.get("antialias"):
        return any(same)  # PyTorch's forward copies such a dim, its backward filters it
    if kw["mode"] == "bicubic":
        return all(same)  # PyTorch's forward filters, its backward copies
    if kw["mode"] == "nearest" and len(x_spatial) != 2:
        # PyTorch's 1-D/3-D forward reads floor(o / s), its backward the 2-D shortcuts
        return any(o in (n, 2 * n) for n, o in zip(x_spatial, out_spatial))
    return False


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@given(case=cases(antialias_rank=2))
def test_matches_pytorch(dtype, case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, size, kw = case
    nd = x.ndim - 2
    if kw["mode"] == "bicubic" and nd != 2:
        return  # PyTorch's bicubic is 2-D only
    layout = kw.pop("layout")
    xf = x if layout == "channels_first" else np.moveaxis(x, -1, 1)
    tkw = dict(kw, mode=TORCH_MODE[nd] if kw["mode"] == "linear" else kw["mode"])
    xt = torch.tensor(xf.astype(dtype), requires_grad=True)
    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}.get(nd)
    if fmt is not None and layout == "channels_last":  # the memory format of our layout
        xt = xt.detach().contiguous(memory_format=fmt).requires_grad_()
    yt = F.interpolate(xt, size, **tkw)
    g = np.random.default_rng(0).standard_normal(yt.shape).astype(dtype)
    yt.backward(torch.tensor(g))
    y, vjp = jax.vjp(
        lambda x: interpolate(x, size, layout="channels_first", **kw), jnp.asarray(xf, dtype)
    )
    out = tuple(yt.shape[2:])
    tol = 1e-12 if dtype == "float64" else 1e-5
    if not (kw.get("antialias") and out[-1] == 1):  # PyTorch's antialias forward with a last
        assert_close(y, yt.detach().numpy(), tol=tol)  # output size of 1 reads row 0 only
    if not _pytorch_gradient_differs(xf.shape[2:], out, size, kw):
        assert_close(vjp(jnp.asarray(g))[0], xt.grad.numpy(), tol=tol)


def test_pytorch_quirks():
    """The measured quirks: float32 nearest indices, the 2-D nearest shortcuts whatever the
    scale factor, the linear copy, and the gradient cases that differ from PyTorch's."""
    x = jnp.arange(16.0).reshape(1, 16, 1)
    y = interpolate(x, scale_factor=1.3, mode="nearest-exact")
    assert y.shape == (1, 20, 1) and float(y[0, 19, 0]) == 15.0  # float64 arithmetic: 14
    x2 = jnp.arange(5.0).reshape(1, 1, 5, 1)
    assert interpolate(x2, scale_factor=(1, 1.1)).ravel().tolist() == [0, 1, 2, 3, 4]
    assert interpolate(x2, scale_factor=(1, 2.1)).ravel().tolist() == [0, 0, 1, 1, 2, 2, 3, 3,
                                                                        4, 4]  # fmt: skip
    x1 = jnp.arange(5.0).reshape(1, 5, 1)
    assert interpolate(x1, scale_factor=1.1).ravel().tolist() == [0, 0, 1, 2, 3]  # 1-D: no
    assert_close(interpolate(x1, scale_factor=1.1, mode="linear"), x1)
    assert not np.allclose(interpolate(x1, scale_factor=1.1, mode="bicubic"), x1)
    assert_close(interpolate(x1, scale_factor=1.1, mode="bicubic", antialias=True), x1)
    # the gradient is the transpose of the forward, also where PyTorch's is not
    g = jnp.asarray(np.random.default_rng(0).normal(size=(1, 5, 1)))
    for kw in (dict(mode="bicubic"), dict(mode="linear", antialias=True)):
        f = lambda x, kw=kw: interpolate(x, scale_factor=1.1, **kw)  # noqa: E731
        y, vjp = jax.vjp(f, x1)
        a = np.asarray(jax.jacfwd(f)(x1))
        assert_close(vjp(g)[0].ravel(), a.reshape(5, 5).T @ np.asarray(g).ravel())


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    "kw",
    [
        dict(mode="nearest", scale_factor=(1.5, 0.7)),
        dict(mode="nearest-exact", size=(5, 2)),
        dict(mode="linear", scale_factor=2),
        dict(mode="linear", size=(7, 3), align_corners=True, layout="channels_first"),
        dict(mode="bicubic", scale_factor=(1.6, 0.5)),
        dict(mode="area", size=(2, 3)),
        dict(mode="linear", size=(2, 6), antialias=True),
        dict(mode="bicubic", size=(2, 2), antialias=True, align_corners=True),
    ],
    ids=lambda kw: "-".join(str(v) for v in kw.values()),
)
def test_check_rules(kw):
    kw = dict(kw)
    size = kw.pop("size", None)
    x = jnp.asarray(
        np.random.default_rng(0).normal(size=_full(2, (5, 4), 3, kw.get("layout", "channels_last")))
    )
    check_rules(
        lambda x: interpolate(x, size, **kw),
        x,
        reference=lambda x: oracle.interpolate(x, size, **kw),
        order=2,
    )


@given(cases(max_rank=2))
def test_adjoint_identity(case):
    """<A x, g> = <x, A^T g>, and the table's transpose is an involution."""
    x, size, kw = case
    f = lambda x: interpolate(x, size, **kw)  # noqa: E731
    g = np.random.default_rng(2).normal(size=jax.eval_shape(f, x).shape)

    @jax.jit
    def sides(x, g):
        y, vjp = jax.vjp(f, x)
        return jnp.vdot(y, g), jnp.vdot(x, vjp(g)[0])

    lhs, rhs = (float(v) for v in sides(x, g))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


@pytest.mark.parametrize(
    "n, o, mode, corners, periodic",
    [
        (8, 16, "linear", False, True),
        (8, 16, "bicubic", False, True),
        (12, 4, "area", False, True),
        (8, 16, "linear", True, False),
        (7, 3, "area", False, False),
    ],  # fmt: skip
)
def test_tables_and_plans(n, o, mode, corners, periodic):
    """2x and uniform windows (and their transposes) run as polyphase slices; the transpose of
    a table is an involution; each plan computes the dense matrix."""
    t = dim_table(n, o, None, mode, corners, False, nearest_shortcut=False, float64=True)
    assert am.transposed(am.transposed(t)) == t
    for table in (t, am.transposed(t)):
        plan = am._plan(table)
        assert isinstance(plan, am._Periodic) == periodic or table is not t
        x = jnp.asarray(np.random.default_rng(0).normal(size=(2, table.in_size, 3)))
        want = np.einsum("ol,nlc->noc", am.dense(table), np.asarray(x))
        assert_close(am.axis_map(x, table, 1), want)
    assert isinstance(am._plan(am.transposed(t)), am._Periodic) == periodic


def test_vmap_jit_and_empty_axis():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 2, 4, 5, 2)))
    f = lambda x: interpolate(x, scale_factor=(2, 1.5), mode="bicubic")  # noqa: E731
    assert_close(jax.jit(jax.vmap(f))(x), jnp.stack([f(a) for a in x]))
    assert_close(jax.vmap(f, 3, 1)(x), jnp.stack([f(x[:, :, :, i]) for i in range(5)], 1))
    assert jax.vmap(f)(x[:0]).shape == (0, 2, 8, 7, 2)
    h = jax.vmap(jax.grad(lambda x: jnp.sum(f(x) ** 2)))(x[:0])
    assert h.shape == (0, 2, 4, 5, 2)
    assert interpolate(jnp.ones((0, 3, 1)), 6, mode="linear").shape == (0, 6, 1)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("mode", ["linear", "bicubic", "area", "nearest"])
def test_16_bit(dtype, mode):
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 3))
    xs = jnp.asarray(x, dtype)
    y, vjp = jax.vjp(lambda x: interpolate(x, (9, 3), mode=mode), xs)
    assert y.dtype == xs.dtype
    x32 = np.asarray(xs, np.float32)
    want = oracle.interpolate(jnp.asarray(x32), (9, 3), mode=mode)
    assert_close(np.asarray(y, np.float32), want, tol=2e-2)
    g = jnp.ones(y.shape, dtype)
    dx = vjp(g)[0]
    assert dx.dtype == xs.dtype
    want = jax.vjp(lambda x: oracle.interpolate(x, (9, 3), mode=mode), jnp.asarray(x32))[1](
        jnp.ones(y.shape, jnp.float32)
    )[0]
    assert_close(np.asarray(dx, np.float32), want, tol=2e-2)


def test_runs_without_jax_rules():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4, 3, 2)))

    def f(x):
        return jnp.sum(jnp.sin(interpolate(jnp.sin(x), scale_factor=(2, 1.5), mode="bicubic")))

    jax.clear_caches()
    with jax_rules_off():
        jax.jit(jax.hessian(f))(x)
        jax.jit(lambda x, t: jax.jvp(jax.grad(f), (x,), (t,)))(x, x)
    jax.clear_caches()


def test_jaxpr_has_only_our_primitive():
    x = jnp.ones((1, 4, 3, 2))
    f = lambda x: jnp.sum(interpolate(x, scale_factor=2.5, mode="linear") ** 2)  # noqa: E731
    names = {e.primitive.name for e in jax.make_jaxpr(jax.grad(f))(x).jaxpr.eqns}
    assert "jaxconv_axis_map" in names
    assert not names & {"gather", "scatter-add", "scatter_add", "dot_general"}, names


# --------------------------------------------------------------------------- errors

X = jnp.ones((1, 4, 4, 2))
X1 = jnp.ones((1, 4, 2))
_fn = "interpolate"


def say(arg, value=None, rest=""):
    head = f"{_fn}: `{arg}`" + ("" if value is None else f" (={value!r})")
    return __import__("re").escape(head) + rest


@pytest.mark.parametrize(
    "args, kw, exc, match",
    [
        ((X, 8), {"scale_factor": 2}, ValueError, say("scale_factor", 2, ".*when `size`")),
        ((X,), {}, ValueError, say("size", None, ".*`scale_factor` must be given")),
        (
            (X, 8),
            {"mode": "linear", "recompute_scale_factor": True},
            ValueError,
            say("recompute_scale_factor", True, ".*with `size`"),
        ),
        ((X, 8), {"align_corners": False}, ValueError, say("align_corners", False, ".*nearest")),
        ((X, 8), {"mode": "area", "align_corners": True}, ValueError, say("align_corners", True)),
        ((X1, 8), {"mode": "bilinear"}, ValueError, say("mode", "bilinear", ".*2 spatial dims")),
        ((X, 8), {"mode": "trilinear"}, ValueError, say("mode", "trilinear", ".*3 spatial dims")),
        ((X, 8), {"mode": "cubic"}, ValueError, say("mode", "cubic", ".*one of")),
        ((X, 8), {"antialias": True}, ValueError, say("antialias", True, ".*'nearest'")),
        ((X, 8), {"mode": "linear", "antialias": 1}, TypeError, say("antialias", 1)),
        ((X, 8), {"mode": "linear", "align_corners": 0}, TypeError, say("align_corners", 0)),
        ((X, 0), {}, ValueError, say("size", 0, ".*>= 1")),
        ((X, (4, 4, 4)), {}, ValueError, say("size", (4, 4, 4), ".*one entry per spatial dim")),
        ((X, 2.5), {}, TypeError, say("size", 2.5)),
        ((X,), {"scale_factor": 0.1}, ValueError, say("scale_factor", 0.1, ".*empty output")),
        ((X,), {"scale_factor": -2}, ValueError, say("scale_factor", -2, ".*> 0")),
        ((X,), {"scale_factor": float("nan")}, ValueError, say("scale_factor")),
        ((X,), {"scale_factor": (2, 2, 2)}, ValueError, say("scale_factor", (2, 2, 2))),
        ((X,), {"scale_factor": "2"}, TypeError, say("scale_factor", "2")),
        ((X,), {"scale_factor": True}, TypeError, say("scale_factor", True)),
        ((X, 8), {"layout": "NHWC"}, ValueError, say("layout", "NHWC")),
        ((jnp.ones((4, 4)), 8), {}, ValueError, say("x.shape", (4, 4))),
        ((jnp.ones((1, 4, 4, 2), jnp.int32), 8), {}, TypeError, say("x.dtype", "int32")),
        ((jnp.ones((1, 0, 4, 2)), 8), {}, ValueError, say("x.shape", (1, 0, 4, 2))),
        (
            (X, 8),
            {"recompute_scale_factor": "yes"},
            TypeError,
            say("recompute_scale_factor", "yes"),
        ),
    ],  # fmt: skip
)
def test_bad_input(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        interpolate(*args, **kw)
