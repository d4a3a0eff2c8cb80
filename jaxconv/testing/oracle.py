"""`jaxconv.testing.oracle`: every jaxconv op written with plain `jax.lax` / `jax.numpy`, so
that `jax.vjp` / `jax.jvp` of it is JAX's own autodiff; jaxconv's tests and experiments compare
against these, and users can do the same for models built from jaxconv ops.

One function per jaxconv op, computing what that op computes from `jax.lax`, `jax.numpy` and
`jax.nn` alone: nothing here imports jaxconv, so the references share no code with what they
check. Settings take jaxconv's forms -- an int or one int per spatial dim; padding as an int,
per-dim ints, (lo, hi) pairs, "VALID", "SAME" (lax's: ceil(n / stride) outputs), "FULL" or
"CAUSAL" (Flax's: k_eff - 1 low) --
and are not validated: callers pass valid ones.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxconv.testing import oracle
  >>> oracle.conv(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 8)), padding="SAME").shape
  (1, 5, 5, 8)
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}  # jnp.pad's names

# jaxconv.conv_general_dilated is a drop-in: its reference is lax's function itself.
conv_general_dilated = lax.conv_general_dilated


# ---------------------------------------------------------------------------------- settings


def per_dim(v, nd):
    """An int setting repeated over nd spatial dims; a sequence as a tuple."""
    return (v,) * nd if isinstance(v, int | np.integer) else tuple(v)


def dimension_numbers(nd, layout="channels_last"):
    """lax's (lhs, rhs, out) specs: (N..C, ..IO, N..C) channels_last, (NC.., OI.., NC..)
    channels_first; spatial letters DHW up to 3 dims, then a, b, c, ..."""
    sp = "DHW"[3 - nd :] if nd <= 3 else "".join(chr(ord("a") + i) for i in range(nd))
    if layout == "channels_last":
        return (f"N{sp}C", f"{sp}IO", f"N{sp}C")
    return (f"NC{sp}", f"OI{sp}", f"NC{sp}")


def padding_pairs(padding, size, k_eff, stride):
    """(lo, hi) per spatial dim of jaxconv's padding forms, for inputs of spatial `size` and
    dilated kernel/window extents `k_eff`."""
    nd = len(k_eff)
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return ((0, 0),) * nd
        if padding.upper() == "FULL":
            return tuple((k - 1, k - 1) for k in k_eff)
        if padding.upper() == "CAUSAL":  # Flax's: the whole window on the low side
            return tuple((k - 1, 0) for k in k_eff)
        pads = lax.padtype_to_pads(size, k_eff, per_dim(stride, nd), padding.upper())
        return tuple(tuple(p) for p in pads)
    if isinstance(padding, int | np.integer):
        return ((padding, padding),) * nd
    return tuple((p, p) if isinstance(p, int | np.integer) else tuple(p) for p in padding)


def _cl(layout):
    return layout == "channels_last"


def _spatial(shape, layout):
    return tuple(shape[1:-1]) if _cl(layout) else tuple(shape[2:])


def _full(spatial, fill, layout):
    """A full-rank tuple: `fill` on the batch and channel axes, `spatial` on the others."""
    return (fill, *spatial, fill) if _cl(layout) else (fill, fill, *spatial)


def _spatial_axes(ndim, layout):
    return tuple(range(1, ndim - 1)) if _cl(layout) else tuple(range(2, ndim))


def _add_bias(y, bias, layout):
    if bias is None:
        return y
    shape = [1] * y.ndim
    shape[-1 if _cl(layout) else 1] = -1
    return y + bias.reshape(shape)


# ------------------------------------------------------------------------------ convolutions


def conv(
    x,
    w,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    flip=False,
    layout="channels_last",
    padding_mode="zeros",
    precision=None,
    preferred_element_type=None,
):
    """jaxconv.conv: `jnp.flip` of the kernel's spatial axes for `flip`, `jnp.pad` for a
    reflect/replicate/circular `padding_mode` (then no padding), one lax.conv_general_dilated
    (kernel (*k, C_in // groups, C_out) or (C_out, C_in // groups, *k)), + bias."""
    nd = x.ndim - 2
    stride, dilation = per_dim(stride, nd), per_dim(dilation, nd)
    k = tuple(w.shape[:-2]) if _cl(layout) else tuple(w.shape[2:])
    k_eff = [(kk - 1) * d + 1 for kk, d in zip(k, dilation)]
    pads = padding_pairs(padding, _spatial(x.shape, layout), k_eff, stride)
    if flip:
        w = jnp.flip(w, tuple(range(nd)) if _cl(layout) else tuple(range(2, nd + 2)))
    if padding_mode != "zeros":
        x = jnp.pad(x, _full(pads, (0, 0), layout), mode=_PAD_MODE[padding_mode])
        pads = ((0, 0),) * nd
    y = lax.conv_general_dilated(
        x,
        w,
        stride,
        pads,
        rhs_dilation=dilation,
        dimension_numbers=dimension_numbers(nd, layout),
        feature_group_count=groups,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    return _add_bias(y, bias, layout)


def conv_transpose(
    y,
    w,
    bias=None,
    *,
    stride=1,
    padding=0,
    output_padding=0,
    output_size=None,
    dilation=1,
    groups=1,
    flip=False,
    layout="channels_last",
    precision=None,
    preferred_element_type=None,
):
    """jaxconv.conv_transpose: `jax.vjp` of `conv(., w)` (same settings) at an input of the
    output size, applied to y, + bias. Output size per dim: `output_size`, else o * stride for
    "SAME" and "CAUSAL", else (o - 1) stride + dilation (k - 1) + 1 - lo - hi + output_padding. With
    `preferred_element_type`, y and w are converted to it first (it is never narrower)."""
    nd = y.ndim - 2
    stride, dilation = per_dim(stride, nd), per_dim(dilation, nd)
    if preferred_element_type is not None:
        y, w = y.astype(preferred_element_type), w.astype(preferred_element_type)
    o = _spatial(y.shape, layout)
    k = tuple(w.shape[:-2]) if _cl(layout) else tuple(w.shape[2:])
    k_eff = [(kk - 1) * d + 1 for kk, d in zip(k, dilation)]
    same = tuple(oo * s for oo, s in zip(o, stride))
    pads = padding_pairs(padding, same, k_eff, stride)
    if output_size is not None:
        n = tuple(output_size)
    elif isinstance(padding, str) and padding.upper() in ("SAME", "CAUSAL"):
        n = same
    else:
        n = tuple(
            (oo - 1) * s + ke - lo - hi + op
            for oo, s, ke, (lo, hi), op in zip(o, stride, k_eff, pads, per_dim(output_padding, nd))
        )
    # the high padding that gives exactly o outputs on an n-input (negative: cells out of reach)
    pads = tuple(
        (lo, (oo - 1) * s + ke - nn - lo)
        for (lo, _), oo, s, ke, nn in zip(pads, o, stride, k_eff, n)
    )
    cin = (w.shape[-2] if _cl(layout) else w.shape[1]) * groups
    x_shape = (y.shape[0], *n, cin) if _cl(layout) else (y.shape[0], cin, *n)
    settings = dict(stride=stride, padding=pads, dilation=dilation, groups=groups, flip=flip)
    settings.update(
        layout=layout, precision=precision, preferred_element_type=preferred_element_type
    )
    _, pullback = jax.vjp(lambda x: conv(x, w, **settings), jnp.zeros(x_shape, y.dtype))
    return _add_bias(pullback(y)[0], bias, layout)


# ----------------------------------------------------------------------------------- pooling


class _Pool(NamedTuple):
    window: tuple
    stride: tuple
    dilation: tuple
    pads: tuple  # the user's (lo, hi)
    lax_pads: tuple  # (lo, hi') for lax, hi' >= hi: ceil_mode's overhang included
    out: tuple  # output spatial size
    size: tuple  # input spatial size
    layout: str


def _pool(shape, window, stride, padding, dilation, ceil_mode, layout):
    """PyTorch's pooling geometry: floor (or ceil) output sizes on the padded input; in
    ceil_mode the last window starts inside the input or the left padding."""
    size = _spatial(shape, layout)
    nd = len(size)
    window = per_dim(window, nd)
    stride = window if stride is None else per_dim(stride, nd)
    dilation = per_dim(dilation, nd)
    k_eff = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    pads = padding_pairs(padding, size, k_eff, stride)
    out, lax_pads = [], []
    for n, ke, s, (lo, hi) in zip(size, k_eff, stride, pads):
        span = n + lo + hi - ke
        o = (-(-span // s) if ceil_mode else span // s) + 1
        o -= bool(ceil_mode and (o - 1) * s >= n + lo)
        out.append(o)
        lax_pads.append((lo, max(hi, (o - 1) * s + ke - lo - n)))
    return _Pool(window, stride, dilation, pads, tuple(lax_pads), tuple(out), size, layout)


def _reduce_window(x, init, op, p):
    y = lax.reduce_window(
        x,
        init,
        op,
        _full(p.window, 1, p.layout),
        _full(p.stride, 1, p.layout),
        _full(p.lax_pads, (0, 0), p.layout),
        window_dilation=_full(p.dilation, 1, p.layout),
    )
    if _spatial(y.shape, p.layout) == p.out:
        return y
    return y[tuple(slice(0, e) for e in _full(p.out, None, p.layout))]  # ceil_mode's extra


def max_pool(
    x,
    window,
    *,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode=False,
    ties=None,
    layout="channels_last",
):
    """jaxconv.max_pool's values. ties=None: lax.reduce_window max over -inf padding,
    differentiated by JAX's own rule (which cannot differentiate window dilation). ties="first"
    / "last" / "split": jnp over the stacked window cells -- the gradient to the first or last
    maximum in row-major window order, or shared equally among tied maxima -- any dilation."""
    p = _pool(x.shape, window, stride, padding, dilation, ceil_mode, layout)
    if ties is None:
        return _reduce_window(x, -jnp.inf, lax.max, p)
    xp = jnp.pad(x, _full(p.lax_pads, (0, 0), layout), constant_values=-jnp.inf)
    cells = []
    for m in itertools.product(*(range(k) for k in p.window)):  # one strided slice per offset
        start, limit, steps = [0] * x.ndim, list(xp.shape), [1] * x.ndim
        for a, mm, d, o, s in zip(_spatial_axes(x.ndim, layout), m, p.dilation, p.out, p.stride):
            start[a], limit[a], steps[a] = mm * d, mm * d + (o - 1) * s + 1, s
        cells.append(lax.slice(xp, start, limit, steps))
    win = jnp.stack(cells, axis=-1)
    if ties == "split":
        return jnp.max(win, axis=-1)
    if ties == "last":
        win = win[..., ::-1]
    return jnp.take_along_axis(win, jnp.argmax(win, axis=-1)[..., None], axis=-1)[..., 0]


def min_pool(
    x,
    window,
    *,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode=False,
    ties=None,
    layout="channels_last",
):
    """jaxconv.min_pool's values: lax.reduce_window min over +inf padding (ties=None, JAX's
    rule), or `max_pool`'s stacked cells with argmin (the first or last minimum in row-major
    window order; "split": jnp.min, whose gradient shares ties equally)."""
    p = _pool(x.shape, window, stride, padding, dilation, ceil_mode, layout)
    if ties is None:
        return _reduce_window(x, jnp.inf, lax.min, p)
    return -max_pool(
        -x,
        window,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        ties=ties,
        layout=layout,
    )


def _window_counts(p, include_pad):
    """NumPy: how many cells of each window lie inside [-lo, n + hi) (include_pad) or inside
    the input [0, n); ceil_mode's overhang never counts."""
    count = np.ones(())
    for n, k, s, (lo, hi), o in zip(p.size, p.window, p.stride, p.pads, p.out):
        first, last = (-lo, n + hi) if include_pad else (0, n)
        starts = np.arange(o) * s - lo
        count = np.multiply.outer(count, np.minimum(starts + k, last) - np.maximum(starts, first))
    return count


def avg_pool(
    x,
    window,
    *,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    layout="channels_last",
):
    """jaxconv.avg_pool: lax.reduce_window sum over zero padding / PyTorch's divisor
    (`divisor_override`, else the window's cells counted by `_window_counts`; a Python number
    where every window has the same count)."""
    p = _pool(x.shape, window, stride, padding, 1, ceil_mode, layout)
    total = _reduce_window(x, 0.0, lax.add, p)
    if divisor_override is not None:
        return total / divisor_override
    count = _window_counts(p, count_include_pad)
    if np.all(count == count.flat[0]):
        return total / float(count.flat[0])
    return total / jnp.asarray(count.reshape(_full(count.shape, 1, layout)), x.dtype)


def lp_pool(x, p, window, *, stride=None, padding=0, ceil_mode=False, layout="channels_last"):
    """jaxconv.lp_pool: (lax.reduce_window sum of x ** p over zero padding) ** (1 / p)."""
    g = _pool(x.shape, window, stride, padding, 1, ceil_mode, layout)
    return _reduce_window(x**p, 0.0, lax.add, g) ** (1 / p)


def global_avg_pool(x, *, layout="channels_last"):
    """jaxconv.global_avg_pool: jnp.mean over the spatial axes, (N, C)."""
    return jnp.mean(x, axis=_spatial_axes(x.ndim, layout))


def global_max_pool(x, *, layout="channels_last"):
    """jaxconv.global_max_pool: one lax.reduce_window max over all of space, (N, C) (JAX's rule
    routes each cotangent to one maximum, as jaxconv does; jnp.max's would spread it)."""
    size = _spatial(x.shape, layout)
    y = lax.reduce_window(
        x, -jnp.inf, lax.max, _full(size, 1, layout), _full(size, 1, layout), "VALID"
    )
    return y.reshape(x.shape[0], x.shape[-1] if _cl(layout) else x.shape[1])


def max_unpool(y, indices, output_size, *, layout="channels_last"):
    """jaxconv.max_unpool: y scatter-added into zeros of spatial `output_size` at the flat
    spatial `indices`, per (n, c); indices outside the output are dropped."""
    if _cl(layout):
        y, indices = jnp.moveaxis(y, -1, 1), jnp.moveaxis(indices, -1, 1)
    nb, nc = y.shape[:2]
    size = int(np.prod(output_size))
    flat = jnp.zeros((nb, nc, size), y.dtype)
    idx = indices.reshape(nb, nc, -1)
    idx = jnp.where(idx < 0, size, idx)  # negative: dropped too (jnp would wrap it around)
    flat = flat.at[jnp.arange(nb)[:, None, None], jnp.arange(nc)[None, :, None], idx].add(
        y.reshape(nb, nc, -1), mode="drop"
    )
    out = flat.reshape(nb, nc, *tuple(output_size))
    return jnp.moveaxis(out, 1, -1) if _cl(layout) else out


# ------------------------------------------------------------------------ dense and losses


def relu(x):
    """jax.nn.relu: max(x, 0), NaN stays NaN; its rule gives the gradient 0 at x = 0 (where
    jnp.maximum's autodiff would split it 1/2 : 1/2)."""
    return jax.nn.relu(x)


def linear(x, w, bias=None):
    """x @ w (+ bias over the last axis)."""
    y = x @ w
    return y if bias is None else y + bias.reshape((1,) * (x.ndim - 1) + bias.shape)


def mse_loss(y, t, reduction="sum"):
    """½ Σ (t − y)², or ½ mean((t − y)²)."""
    return 0.5 * (jnp.sum if reduction == "sum" else jnp.mean)((t - y) ** 2)


def softmax_cross_entropy(logits, labels):
    """−mean over the batch of log_softmax(logits)[n, labels[n]], logits (N, K)."""
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=1), labels[:, None], axis=1)
    return -jnp.mean(picked)
