"""The fuzz's reference semantics of pooling, relu, linear and the losses (see `refs.py`).

PyTorch's pooling rules (docs/semantics.md) on `lax.reduce_window`; relu, linear and
the losses in jnp. Each `ref_<fn>` returns a `Ref` or raises `Invalid` (no documented value).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tests.fuzz.refs import (
    LAYOUTS,
    Ref,
    bias_ok,
    eff,
    float_array,
    float_pair,
    ints,
    is_array,
    is_flag,
    is_int,
    join,
    need,
    pad_pairs,
    shape_arg,
    split,
)


class PoolS(NamedTuple):
    cfg: dict  # lax.reduce_window's window / strides / padding / dilation, full rank
    out_shape: tuple  # crop the lax result to this (ceil_mode pads lax a little more)
    axes: tuple  # spatial axes of x
    pads: tuple  # the user's (lo, hi)
    lax_pads: tuple  # (lo, hi') given to lax, hi' >= hi


def pool_setup(x, window, stride, padding, dilation, ceil_mode, layout, ordered=False) -> PoolS:
    """PyTorch's pooling rules (docs/semantics.md): padding <= half the dilated
    window per side, the window fits the padded input, ceil_mode's last window starts inside
    the input or the left padding. `ordered` (max/min pools): integer and bool x as well."""
    need(isinstance(layout, str) and layout in LAYOUTS, "layout")
    (real_array if ordered else float_array)(x, "x")
    need(not (isinstance(padding, str) and padding.upper() == "CAUSAL"), "CAUSAL pool")
    need(x.ndim >= 3, "rank")
    nd = x.ndim - 2
    nb, size, c = split(x.shape, layout)
    window = ints(window, nd, 1, "window")
    stride = window if stride is None else ints(stride, nd, 1, "stride")
    dilation = ints(dilation, nd, 1, "dilation")
    k_eff = eff(window, dilation)
    pads = pad_pairs(padding, nd, k_eff, stride, size)
    need(all(max(p) <= k // 2 for p, k in zip(pads, k_eff)), "padding > half the window")
    need(all(n + lo + hi >= k for n, (lo, hi), k in zip(size, pads, k_eff)), "window too big")
    need(is_flag(ceil_mode), "ceil_mode")
    out = []
    for n, k, s, (lo, hi) in zip(size, k_eff, stride, pads):
        o = (-(-(n + lo + hi - k) // s) if ceil_mode else (n + lo + hi - k) // s) + 1
        out.append(o - 1 if ceil_mode and (o - 1) * s >= n + lo else o)
    lax_pads = tuple(
        (lo, max(hi, (o - 1) * s + k - lo - n))
        for n, k, s, (lo, hi), o in zip(size, k_eff, stride, pads, out)
    )
    cfg = dict(
        window_dimensions=join(1, window, 1, layout),
        window_strides=join(1, stride, 1, layout),
        padding=join((0, 0), lax_pads, (0, 0), layout),
        window_dilation=join(1, dilation, 1, layout),
    )
    axes = tuple(range(1, nd + 1)) if layout == "channels_last" else tuple(range(2, nd + 2))
    return PoolS(cfg, join(nb, tuple(out), c, layout), axes, pads, lax_pads)


def reduce_window(s: PoolS, x, init, op, cfg=None):
    y = lax.reduce_window(x, np.asarray(init, x.dtype)[()], op, **(cfg or s.cfg))
    return y[tuple(slice(0, e) for e in s.out_shape)]


def real_array(a, name: str) -> None:
    """Floating, integer or bool (what lax's max/min reduce_window takes), not complex."""
    need(is_array(a), f"{name} is not an array")
    kind = np.dtype(a.dtype).kind
    need(kind in "fiub" or a.dtype == jnp.bfloat16, f"{name}.dtype {a.dtype} is not real")


def extreme(dtype, op):
    """The padding value of a max (op="max") or min pool: it never wins."""
    if jnp.issubdtype(dtype, jnp.floating):
        return -np.inf if op == "max" else np.inf
    if dtype == np.bool_:
        return op == "min"
    info = np.iinfo(dtype)
    return info.min if op == "max" else info.max


def ref_max_pool(
    x,
    window,
    *,
    stride=None,
    padding="VALID",
    dilation=1,
    ceil_mode=False,
    ties="first",
    return_indices=False,
    layout="channels_last",
    op="max",
):
    """max_pool (op="max") and min_pool: lax.reduce_window max/min over padding that never
    wins; any real dtype."""
    s = pool_setup(x, window, stride, padding, dilation, ceil_mode, layout, ordered=True)
    need(isinstance(ties, str) and ties in ("first", "last", "split"), "ties")
    need(is_flag(return_indices), "return_indices")
    fill = extreme(x.dtype, op)

    def f(x, *_, **__):
        return reduce_window(s, x, fill, lax.max if op == "max" else lax.min)

    def post(kw, res):  # indices: flat into the unpadded input, at the winner; -1: all padding
        if not return_indices:
            return
        y, idx = np.asarray(res[0]), np.asarray(res[1])
        assert idx.dtype == np.int32 and idx.shape == y.shape, (idx.dtype, idx.shape)
        if y.size == 0:  # nothing to point at (and no -1 to place)
            return
        xs = np.asarray(kw["x"])
        if layout == "channels_first":
            xs, y, idx = np.moveaxis(xs, 1, -1), np.moveaxis(y, 1, -1), np.moveaxis(idx, 1, -1)
        flat = xs.reshape(xs.shape[0], -1, xs.shape[-1])
        assert np.all(y[idx == -1] == fill), "index -1 only for windows of padding"
        got = np.take_along_axis(
            flat, np.maximum(idx, 0).reshape(idx.shape[0], -1, idx.shape[-1]), 1
        )
        got = got.reshape(y.shape)
        np.testing.assert_array_equal(np.where(idx >= 0, got, y), y, "x[indices] == y")

    # lax's max VJP cannot dilate; with ties its winner rule is its own: no VJP check then.
    distinct = np.unique(np.asarray(x)).size == np.asarray(x).size
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    diff = ("x",) if max(s.cfg["window_dilation"]) == 1 and distinct and floating else ()
    return Ref(f, diff, post)


def ref_min_pool(x, window, **kw):
    return ref_max_pool(x, window, **kw, op="min")


def avg_divisor(s: PoolS, x, include_pad):
    """PyTorch's N_i: the cells of window i inside [-lo, n + hi) (count_include_pad), else
    inside the input; the ceil_mode overhang never counts."""
    ones = jnp.ones(x.shape, x.dtype)
    if not include_pad:
        return reduce_window(s, ones, 0, lax.add)
    cfg = [(0, 0)] * x.ndim
    for a, p in zip(s.axes, s.pads):
        cfg[a] = p
    ones = jnp.pad(ones, cfg, constant_values=1)  # the padding cells count
    for a, (_, hi), (_, hi2) in zip(s.axes, s.pads, s.lax_pads):
        cfg[a] = (0, hi2 - hi)  # the overhang does not
    return reduce_window(s, ones, 0, lax.add, {**s.cfg, "padding": tuple(cfg)})


def ref_avg_pool(
    x,
    window,
    *,
    stride=None,
    padding="VALID",
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    layout="channels_last",
):
    s = pool_setup(x, window, stride, padding, 1, ceil_mode, layout)
    need(is_flag(count_include_pad), "count_include_pad")
    if divisor_override is not None:
        need(is_int(divisor_override) and divisor_override != 0, "divisor_override")

    def f(x, *_, **__):
        total = reduce_window(s, x, 0, lax.add)
        if divisor_override is not None:
            return total / divisor_override
        return total / avg_divisor(s, x, count_include_pad)

    return Ref(f, ("x",))


def ref_lp_pool(
    x, p, window, *, stride=None, padding="VALID", ceil_mode=False, layout="channels_last"
):
    s = pool_setup(x, window, stride, padding, 1, ceil_mode, layout)
    need(isinstance(p, numbers.Real) and not is_flag(p), "p type")
    need(0 < float(p) < np.inf, "p value")

    def f(x, *_, **__):
        return reduce_window(s, x ** float(p), 0, lax.add) ** (1 / float(p))

    return Ref(f, ("x",))


def global_setup(x, layout, ordered=False):
    need(isinstance(layout, str) and layout in LAYOUTS, "layout")
    (real_array if ordered else float_array)(x, "x")
    need(x.ndim >= 3, "rank")
    return tuple(range(1, x.ndim - 1)) if layout == "channels_last" else tuple(range(2, x.ndim))


def ref_global_avg_pool(x, *, layout="channels_last"):
    axes = global_setup(x, layout)
    # The mean over no cells is NaN (0/0), as jnp.mean: accepted, the value is defined.
    return Ref(lambda x, **_: jnp.mean(x, axis=axes), ("x",))


def ref_global_max_pool(x, *, layout="channels_last"):
    axes = global_setup(x, layout, ordered=True)
    # The max over no cells has no value (jnp.max raises): must be rejected.
    need(all(x.shape[a] >= 1 for a in axes), "no spatial cells")
    distinct = np.unique(np.asarray(x)).size == np.asarray(x).size
    return Ref(lambda x, **_: jnp.max(x, axis=axes), ("x",) if distinct else ())


def ref_max_unpool(y, indices, output_shape, *, layout="channels_last"):
    """out[n, c, indices[i]] += y[i] for indices inside the output (others dropped)."""
    need(isinstance(layout, str) and layout in LAYOUTS, "layout")
    float_array(y, "y")
    need(is_array(indices) and jnp.issubdtype(indices.dtype, jnp.integer), "indices dtype")
    need(y.ndim >= 3 and tuple(indices.shape) == tuple(y.shape), "shapes")
    shape = shape_arg(output_shape, "output_shape")
    nb, _, c = split(y.shape, layout)
    if len(shape) == y.ndim:
        need(split(shape, layout)[0::2] == (nb, c), "N/C of output_shape")
        shape = split(shape, layout)[1]
    need(len(shape) == y.ndim - 2, "output_shape length")
    # An empty output spatial shape is rejected (docs/semantics.md: max_pool's input has cells).
    need(min(shape) >= 1, "output_shape >= 1")
    size = math.prod(shape)

    def f(y, indices, *_, **__):
        yl = jnp.moveaxis(y, 1, -1) if layout == "channels_first" else y
        il = jnp.moveaxis(indices, 1, -1) if layout == "channels_first" else indices
        q = math.prod(yl.shape[1:-1])
        yl, il = yl.reshape(nb, q, c), il.reshape(nb, q, c)
        hit = il[:, :, None, :] == jnp.arange(size, dtype=il.dtype)[None, None, :, None]
        out = jnp.einsum("nqc,nqpc->npc", yl, hit.astype(y.dtype)).reshape(nb, *shape, c)
        return jnp.moveaxis(out, -1, 1) if layout == "channels_first" else out

    return Ref(f, ("y",))


def ref_relu(x):
    float_array(x, "x")
    return Ref(lambda x: jnp.where(x > 0, x, jnp.zeros((), x.dtype)), ("x",))


def ref_linear(x, w, bias=None):
    float_pair(x, w, "x", "w")
    need(x.ndim >= 1 and w.ndim == 2 and w.shape[0] == x.shape[-1], "shapes")
    bias_ok(bias, w.shape[1])
    need(bias is None or bias.dtype == x.dtype, "bias dtype")  # documented: one dtype

    def f(x, w, bias=None):
        y = x @ w
        return y if bias is None else y + bias.reshape((1,) * (x.ndim - 1) + bias.shape)

    return Ref(f, ("x", "w"))


def ref_mse_loss(y, t, reduction="sum"):
    need(isinstance(reduction, str) and reduction in ("sum", "mean"), "reduction")
    float_pair(y, t, "y", "t")
    need(tuple(t.shape) == tuple(y.shape), "shapes")
    # "mean" over no elements: jaxconv divides the sum (0) by max(P, 1) = 1 and returns 0;
    # jnp.mean would give NaN. Both are defensible; 0 is the documented choice (the count
    # clamp in `mse_loss`), and its gradient (empty) is the same either way.
    count = 1 if reduction == "sum" else max(math.prod(y.shape), 1)
    return Ref(lambda y, t, *_, **__: 0.5 * jnp.sum((t - y) ** 2) / count, ("y", "t"))


def ref_softmax_cross_entropy(logits, labels):
    float_array(logits, "logits")
    need(is_array(labels) and jnp.issubdtype(labels.dtype, jnp.integer), "labels dtype")
    need(logits.ndim == 2 and tuple(labels.shape) == logits.shape[:1], "shapes")
    # No classes: log-sum-exp over nothing has no value (jnp.max raises): must be rejected.
    need(logits.shape[1] >= 1, "no classes")
    lab = np.asarray(labels)
    valid = bool(np.all((lab >= 0) & (lab < logits.shape[1]))) and lab.size > 0

    def f(logits, labels):
        lse = jax.nn.logsumexp(logits, axis=1)
        onehot = labels[:, None] == jnp.arange(logits.shape[1], dtype=labels.dtype)[None]
        inside = (labels >= 0) & (labels < logits.shape[1])
        picked = jnp.sum(jnp.where(onehot, logits, 0), axis=1)
        return jnp.mean(jnp.where(inside, lse - picked, jnp.nan))  # N = 0: NaN (0/0)

    # Labels outside [0, K) give NaN (documented); their gradient is not specified.
    return Ref(f, ("logits",) if valid else ())
