"""Shared by the pooling tests (test_max_pool.py, test_avg_pool.py, test_lp_pool.py,
test_global_pool.py, test_max_unpool.py, test_pools.py): the hypothesis draw of one pooling
configuration, PyTorch's output size, layout helpers and a one-jit value-and-VJP runner (the
plain lax forwards the explicit VJPs are held to: `oracle`, jaxconv/testing/oracle.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st
from jax import lax

from tests.support.numerics import assert_close

LAYOUTS = ("channels_last", "channels_first")
DTYPES = (np.float32, np.float64)


# ----------------------------------------------------------------------------- case drawing


@st.composite
def cases(draw, *, dilation=False, max_rank=3):
    """One pooling configuration: shapes, window, stride, padding (every form), ceil_mode."""
    nd = draw(st.integers(1, max_rank))
    dims = st.integers(1, 3 if nd < 3 else 2)
    window = tuple(draw(dims) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd)) if dilation else (1,) * nd
    k_eff = tuple((k - 1) * d + 1 for k, d in zip(window, dil))
    half = [k // 2 for k in k_eff]
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(*[st.integers(1, 3)] * nd)))
    s = window if stride is None else (stride,) * nd if isinstance(stride, int) else stride
    form = draw(st.sampled_from(["VALID", "SAME", "int", "ints", "pairs"]))
    if form in ("VALID", "SAME"):
        padding, pairs = form, ((0, 0),) * nd
    elif form == "int":
        p = draw(st.integers(0, min(half)))
        padding, pairs = p, ((p, p),) * nd
    elif form == "ints":
        padding = tuple(draw(st.integers(0, h)) for h in half)
        pairs = tuple((p, p) for p in padding)
    else:
        pairs = padding = tuple((draw(st.integers(0, h)), draw(st.integers(0, h))) for h in half)
    size = tuple(
        draw(st.integers(max(1, k - lo - hi), max(1, k - lo - hi) + (3 if nd < 3 else 2)))
        for k, (lo, hi) in zip(k_eff, pairs)
    )
    if form == "SAME":
        pairs = tuple(lax.padtype_to_pads(size, k_eff, s, "SAME"))
    return dict(
        nd=nd,
        window=window,
        dilation=dil,
        stride=stride,
        s=s,
        padding=padding,
        pairs=pairs,
        size=size,
        ceil_mode=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        n=draw(st.integers(1, 2)),
        c=draw(st.integers(1, 2)),
        dtype=draw(st.sampled_from(DTYPES)),
        seed=draw(st.integers(0, 2**16)),
    )


def out_size(case):
    """PyTorch's output size (ceil_mode: the last window starts inside input or left padding)."""
    out = []
    for n, k, d, s, (lo, hi) in zip(
        case["size"], case["window"], case["dilation"], case["s"], case["pairs"]
    ):
        span = n + lo + hi - (k - 1) * d - 1
        o = (-(-span // s) if case["ceil_mode"] else span // s) + 1
        out.append(o - 1 if case["ceil_mode"] and (o - 1) * s >= n + lo else o)
    return tuple(out)


def full(case, spatial, one=False):
    n, c = (1, 1) if one else (case["n"], case["c"])
    return (n, *spatial, c) if case["layout"] == "channels_last" else (n, c, *spatial)


def distinct(case, rng):
    """A random permutation of 0..size-1 (exact in float32): every window has one maximum."""
    shape = full(case, case["size"])
    return jnp.asarray(rng.permutation(int(np.prod(shape))).reshape(shape), case["dtype"])


def kwargs(case, *names):
    return {k: case[k] for k in names}


def to_cl(a, case):
    """channels_last view of an array of the case's layout (reference.py is channels_last)."""
    a = np.asarray(a)
    return a if case["layout"] == "channels_last" else np.moveaxis(a, 1, -1)


def from_cl(a, case):
    return a if case["layout"] == "channels_last" else np.moveaxis(a, -1, 1)


def assert_close_inf(actual, expected, dtype=None):
    """assert_close where -inf (a window of padding only, possible with dilation) must match."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf])
    assert_close(np.where(inf, 0, actual), np.where(inf, 0, expected), dtype=dtype)


def run(f, x, rng, ref=None):
    """f(x), a random g of f(x)'s shape and the VJP of f at x applied to g, from one jit;
    with `ref`, also ref(x) and its VJP (same jit)."""
    out = jax.eval_shape(f, x)
    y_shape = (out[0] if isinstance(out, tuple) else out).shape
    g = jnp.asarray(rng.normal(size=y_shape), x.dtype)

    def value_and_vjp(f, x, g):
        y, vjp = jax.vjp(f, x)
        if isinstance(y, tuple):  # (y, indices): no cotangent for the indices
            return y, vjp((g, np.zeros(y[1].shape, jax.dtypes.float0)))[0]
        return y, vjp(g)[0]

    if ref is None:
        y, dx = jax.jit(lambda x, g: value_and_vjp(f, x, g))(x, g)
        return y, g, dx
    both = jax.jit(lambda x, g: (value_and_vjp(f, x, g), value_and_vjp(ref, x, g)))
    (y, dx), (y_ref, dx_ref) = both(x, g)
    return y, g, dx, y_ref, dx_ref


MAX_KW = ("stride", "padding", "dilation", "ceil_mode", "layout")
AVG_KW = ("stride", "padding", "ceil_mode", "layout")
