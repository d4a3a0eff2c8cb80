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
import math
import string
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


# ------------------------------------------------------------------------------ resampling


def _cubic_keys(t, a):
    t = np.abs(t)
    return np.where(
        t <= 1,
        ((a + 2) * t - (a + 3)) * t * t + 1,
        np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0),
    )


def _floor_f32(c):
    return np.floor(np.asarray(c, np.float64).astype(np.float32)).astype(np.int64)


def _interp_weights(n, o, scale, mode, corners, antialias, rank, f64):
    """(idx, w), each (o, taps), or None for a copied dim."""
    out = np.arange(o)
    if mode in ("nearest", "nearest-exact"):
        if rank == 2 and mode == "nearest" and o in (n, 2 * n):
            idx = out if o == n else out // 2
        else:
            dt = np.float64 if f64 else np.float32
            r = dt(1.0 / scale) if scale is not None else dt(n) / dt(o)
            pos = out.astype(dt) + dt(0.5 if mode == "nearest-exact" else 0.0)
            idx = np.minimum(_floor_f32(pos * r), n - 1)
        return idx[:, None], np.ones((o, 1))
    if mode == "area":
        lo, hi = (out * n) // o, ((out + 1) * n + o - 1) // o
        k = np.arange(int(np.max(hi - lo)))
        valid = k[None] < (hi - lo)[:, None]
        return np.minimum(lo[:, None] + k, n - 1), valid / (hi - lo)[:, None]
    if corners:
        r = (n - 1) / (o - 1) if o > 1 else 0.0
    else:
        r = 1.0 / scale if scale is not None else n / o
    cubic = mode == "bicubic"
    if antialias or (not cubic and o == n):
        if o == n:
            return None
        support = (2.0 if cubic else 1.0) * max(r, 1.0)
        k = np.arange(2 * math.ceil(support) + 1)
        centre = r * (out + 0.5)
        lo = np.maximum(np.trunc(centre - support + 0.5), 0).astype(np.int64)
        hi = np.minimum(np.trunc(centre + support + 0.5).astype(np.int64), n)
        t = (k[None] + lo[:, None] - centre[:, None] + 0.5) / max(r, 1.0)
        w = _cubic_keys(t, -0.5) if cubic else np.maximum(1 - np.abs(t), 0.0)
        w = np.where(k[None] < (hi - lo)[:, None], w, 0.0)
        total = w.sum(1, keepdims=True)
        return np.minimum(lo[:, None] + k, n - 1), w / np.where(total == 0, 1.0, total)
    if not cubic:
        c = r * out if corners else np.maximum(r * (out + 0.5) - 0.5, 0.0)
        i = np.minimum(_floor_f32(c), n - 1)
        lam = np.clip(c - i, 0, 1)
        return np.stack([i, np.minimum(i + 1, n - 1)], 1), np.stack([1 - lam, lam], 1)
    c = r * out if corners else r * (out + 0.5) - 0.5
    i = np.minimum(_floor_f32(c), n - 1)
    t = np.clip(c - i, 0, 1)[:, None]
    w = np.concatenate(
        [
            _cubic_keys(t + 1, -0.75),
            _cubic_keys(t, -0.75),
            _cubic_keys(1 - t, -0.75),
            _cubic_keys(2 - t, -0.75),
        ],
        1,
    )
    return np.clip(i[:, None] + np.arange(-1, 3), 0, n - 1), w


def interpolate(
    x,
    size=None,
    *,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
    layout="channels_last",
):
    """`jaxconv.interpolate` in plain jnp: per dim ``sum_r w[:, r] * take(x, idx[:, r])``."""
    first = 1 if layout == "channels_last" else 2
    nd = x.ndim - 2
    spatial = x.shape[first : first + nd]
    if size is not None:
        out = tuple(size) if isinstance(size, (tuple, list)) else (size,) * nd
        scales = (None,) * nd
    else:
        sf = (
            tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * nd
        )
        out = tuple(math.floor(n * s) for n, s in zip(spatial, sf))
        scales = (None,) * nd if recompute_scale_factor or mode == "area" else sf
    kind = "linear" if mode in ("linear", "bilinear", "trilinear") else mode
    f64 = x.dtype == jnp.float64
    acc = jnp.float32 if x.dtype in (jnp.float16, jnp.bfloat16) else x.dtype
    y = x.astype(acc)
    for d, (n, o, s) in enumerate(zip(spatial, out, scales)):
        table = _interp_weights(n, o, s, kind, bool(align_corners), antialias, nd, f64)
        if table is None:
            continue
        idx, w = table
        axis = first + d
        shape = [1] * x.ndim
        shape[axis] = o
        y = sum(
            jnp.asarray(w[:, r].reshape(shape), acc)
            * jnp.take(y, jnp.asarray(idx[:, r]), axis=axis)
            for r in range(idx.shape[1])
        )
    return y.astype(x.dtype)


# ------------------------------------------------------------- shuffles, unfold/fold, local


def _sp_per_dim(v, nd):
    return tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v),) * nd


def _sp_pairs(padding, nd):
    if isinstance(padding, (tuple, list)):
        return tuple(
            (int(p), int(p)) if np.ndim(p) == 0 else (int(p[0]), int(p[1])) for p in padding
        )
    return ((int(padding), int(padding)),) * nd


def _sp_to_cl(x, layout):
    return x if layout == "channels_last" else jnp.moveaxis(x, 1, -1)


def _sp_from_cl(x, layout):
    return x if layout == "channels_last" else jnp.moveaxis(x, -1, 1)


def _sp_shuffle_index(sp, c_out, r):
    """Flat source index (into (*sp, C R)) of every cell of the shuffled (*sp r, C) array."""
    R = math.prod(r)
    out_sp = tuple(n * f for n, f in zip(sp, r))
    idx = np.zeros((*out_sp, c_out), np.int64)
    src_shape = (*sp, c_out * R)
    for pos in np.ndindex(*out_sp):
        i = tuple(p // f for p, f in zip(pos, r))
        o = tuple(p % f for p, f in zip(pos, r))
        q = int(np.ravel_multi_index(o, r)) if r else 0
        for c in range(c_out):
            idx[(*pos, c)] = np.ravel_multi_index((*i, c * R + q), src_shape)
    return idx


def pixel_shuffle(x, upscale_factor, layout="channels_last"):
    x = _sp_to_cl(x, layout)
    nd = x.ndim - 2
    r = _sp_per_dim(upscale_factor, nd)
    idx = _sp_shuffle_index(x.shape[1:-1], x.shape[-1] // math.prod(r), r)
    y = jnp.take(x.reshape(x.shape[0], -1), jnp.asarray(idx.ravel()), axis=1)
    return _sp_from_cl(y.reshape(x.shape[0], *idx.shape), layout)


def pixel_unshuffle(x, downscale_factor, layout="channels_last"):
    x = _sp_to_cl(x, layout)
    nd = x.ndim - 2
    r = _sp_per_dim(downscale_factor, nd)
    sp = tuple(n // f for n, f in zip(x.shape[1:-1], r))
    idx = _sp_shuffle_index(sp, x.shape[-1], r)  # shuffled cell <- source flat index
    inv = np.argsort(idx.ravel())  # source flat index -> shuffled flat cell
    y = jnp.take(x.reshape(x.shape[0], -1), jnp.asarray(inv), axis=1)
    return _sp_from_cl(y.reshape(x.shape[0], *sp, x.shape[-1] * math.prod(r)), layout)


def _sp_dn(nd):
    sp = string.ascii_uppercase[:nd].replace("C", "Z").replace("N", "Y")
    return ("N" + sp + "C", sp + "IO", "N" + sp + "C")


def _sp_geometry(size, window, stride, padding, dilation):
    nd = len(size)
    k, s, d, pads = (_sp_per_dim(window, nd), _sp_per_dim(stride, nd), _sp_per_dim(dilation, nd),
                     _sp_pairs(padding, nd))  # fmt: skip
    o = tuple(
        (n + lo + hi - dd * (kk - 1) - 1) // ss + 1
        for n, kk, ss, dd, (lo, hi) in zip(size, k, s, d, pads)
    )
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(size, pads))
    idx = np.zeros((math.prod(o), math.prod(k)), np.int64)  # (block, tap) -> padded flat cell
    for jf, j in enumerate(np.ndindex(*o)):
        for q, m in enumerate(np.ndindex(*k)):
            pos = tuple(jj * ss + mm * dd for jj, mm, ss, dd in zip(j, m, s, d))
            idx[jf, q] = np.ravel_multi_index(pos, padded)
    return o, pads, padded, idx


def unfold(x, window, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    x = _sp_to_cl(x, layout)
    n, size, C = x.shape[0], x.shape[1:-1], x.shape[-1]
    o, pads, padded, idx = _sp_geometry(size, window, stride, padding, dilation)
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0))).reshape(n, -1, C)
    cols = jnp.take(xp, jnp.asarray(idx), axis=1)  # (N, L, K, C)
    K = idx.shape[1]
    if layout == "channels_first":
        return jnp.transpose(cols, (0, 3, 2, 1)).reshape(n, C * K, -1)
    return cols.reshape(n, *o, K * C)


def unfold_patches(x, window, *, stride=1, padding=0, dilation=1):
    """channels_first unfold by lax's `conv_general_dilated_patches` (an identity-kernel
    convolution; its channel order (c, taps) is F.unfold's)."""
    nd = x.ndim - 2
    p = lax.conv_general_dilated_patches(
        x,
        _sp_per_dim(window, nd),
        _sp_per_dim(stride, nd),
        _sp_pairs(padding, nd),
        rhs_dilation=_sp_per_dim(dilation, nd),
        precision=lax.Precision.HIGHEST,
    )
    return p.reshape(p.shape[0], p.shape[1], -1)


def fold(cols, output_size, window, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    if isinstance(output_size, (tuple, list)):
        nd = len(output_size)
    elif isinstance(window, (tuple, list)):
        nd = len(window)
    else:
        nd = cols.ndim - 2 if layout == "channels_last" else 2
    size = _sp_per_dim(output_size, nd)
    o, pads, padded, idx = _sp_geometry(size, window, stride, padding, dilation)
    N, K = cols.shape[0], idx.shape[1]
    if layout == "channels_last":
        C = cols.shape[-1] // K
        c = cols.reshape(N, math.prod(o), K, C)
    else:
        C = cols.shape[1] // K
        c = jnp.transpose(cols.reshape(N, C, K, math.prod(o)), (0, 3, 2, 1))
    xp = jnp.zeros((N, math.prod(padded), C), cols.dtype)
    xp = xp.at[:, jnp.asarray(idx.ravel())].add(c.reshape(N, -1, C))
    xp = xp.reshape(N, *padded, C)
    x = xp[(slice(None), *(slice(lo, lo + n) for n, (lo, _) in zip(size, pads)), slice(None))]
    return _sp_from_cl(x, layout)


def conv_local(x, w, bias=None, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    """w: channels_last (*o, *k, C_in, C_out), channels_first (C_out, C_in, *k, *o)."""
    nd = x.ndim - 2
    if layout == "channels_last":
        o, k, cin, cout = w.shape[:nd], w.shape[nd : 2 * nd], w.shape[-2], w.shape[-1]
        # (*o, *k, C, O) -> (*o, C, *k, O) -> (*o, C K, O): lax's (c, taps) order
        wl = jnp.moveaxis(w, 2 * nd, nd).reshape(*o, cin * math.prod(k), cout)
        dn = _sp_dn(nd)
    else:
        cout, cin, k, o = w.shape[0], w.shape[1], w.shape[2 : 2 + nd], w.shape[2 + nd :]
        wl = w.reshape(cout, cin * math.prod(k), *o)
        dn = None
    y = lax.conv_general_dilated_local(
        x,
        wl,
        _sp_per_dim(stride, nd),
        _sp_pairs(padding, nd),
        tuple(k),
        rhs_dilation=_sp_per_dim(dilation, nd),
        dimension_numbers=dn,
        precision=lax.Precision.HIGHEST,
    )
    if bias is not None:
        shape = (1,) * (nd + 1) + (cout,) if layout == "channels_last" else (1, cout) + (1,) * nd
        y = y + bias.reshape(shape)
    return y


conv_general_dilated_local = lax.conv_general_dilated_local


# ------------------------------------------------------------- adaptive and fractional pools


def _ad_cl(x, layout):
    return x if layout == "channels_last" else jnp.moveaxis(x, 1, -1)


def _ad_back(y, layout):
    return y if layout == "channels_last" else jnp.moveaxis(y, -1, 1)


def _ad_out(spatial, output_size):
    if isinstance(output_size, int):
        return (output_size,) * len(spatial)
    return tuple(n if o is None else o for n, o in zip(spatial, output_size))


def _ad_window(n, o, i):
    return i * n // o, -(-(i + 1) * n // o)


def _ad_box(x, spatial, out, i):
    """x (N, *spatial, C) cropped to adaptive window i; its start per dim."""
    lims = [_ad_window(n, o, ii) for n, o, ii in zip(spatial, out, i)]
    start = [0, *(s for s, _ in lims), 0]
    limit = [x.shape[0], *(e for _, e in lims), x.shape[-1]]
    return lax.slice(x, start, limit), [s for s, _ in lims]


def adaptive_avg_pool(x, output_size, layout="channels_last"):
    """jnp.mean over each adaptive window."""
    x = _ad_cl(x, layout)
    spatial = x.shape[1:-1]
    out = _ad_out(spatial, output_size)
    axes = tuple(range(1, len(spatial) + 1))
    ys = [jnp.mean(_ad_box(x, spatial, out, i)[0], axis=axes) for i in np.ndindex(*out)]
    y = jnp.stack(ys, axis=1).reshape(x.shape[0], *out, x.shape[-1])
    return _ad_back(y, layout)


def _ad_pick(cells, ties, axis=1):
    """(value, position) of the winner along `axis` of cells: the first or the last maximum
    (its value a gather there, so the gradient goes to it alone); "split": the value jnp.max,
    whose JVP is the mean of the tangent over the tied cells, the position the first's."""
    k = cells.shape[axis]
    if ties == "last":
        pos = k - 1 - jnp.argmax(jnp.flip(cells, axis), axis=axis)
    else:
        pos = jnp.argmax(cells, axis=axis)
    if ties == "split":
        return jnp.max(cells, axis=axis), pos
    value = jnp.take_along_axis(cells, jnp.expand_dims(pos, axis), axis=axis)
    return jnp.squeeze(value, axis), pos


def adaptive_max_pool(x, output_size, ties="first", return_indices=False, layout="channels_last"):
    """Each adaptive window's winner (argmax over its row-major cells, `ties` as in
    `_ad_pick`) and its flat index."""
    x = _ad_cl(x, layout)
    spatial = x.shape[1:-1]
    out = _ad_out(spatial, output_size)
    ys, idxs = [], []
    for i in np.ndindex(*out):
        box, start = _ad_box(x, spatial, out, i)
        value, pos = _ad_pick(box.reshape(x.shape[0], -1, x.shape[-1]), ties)
        local = jnp.unravel_index(pos, box.shape[1:-1])
        flat = 0
        for p, s, n in zip(local, start, spatial):
            flat = flat * n + p + s
        ys.append(value)
        idxs.append(jnp.asarray(flat, jnp.int32))
    shape = (x.shape[0], *out, x.shape[-1])
    y = _ad_back(jnp.stack(ys, axis=1).reshape(shape), layout)
    idx = _ad_back(jnp.stack(idxs, axis=1).reshape(shape), layout)
    return (y, idx) if return_indices else y


def fractional_starts(u, n, k, o):
    """PyTorch's starts (..., o) for samples u (...), in u's dtype."""
    if o == 1:
        return jnp.full((*u.shape, 1), n - k, jnp.int32)
    alpha = jnp.asarray(n - k, u.dtype) / jnp.asarray(o - 1, u.dtype)
    firsts = [
        ((jnp.asarray(i, u.dtype) + u) * alpha).astype(jnp.int32) - (u * alpha).astype(jnp.int32)
        for i in range(o - 1)
    ]
    return jnp.stack([*firsts, jnp.full(u.shape, n - k, jnp.int32)], axis=-1)


def fractional_max_pool(
    x, window, output_size, samples, return_indices=False, layout="channels_last", ties="first"
):
    """Every window's cells gathered by flat index per (n, c), the winner taken (`ties` as in
    `_ad_pick`). The starts are computed in x's dtype, in the samples' for an integer or
    bool x."""
    x = _ad_cl(x, layout)
    spatial = x.shape[1:-1]
    d = len(spatial)
    k = (window,) * d if isinstance(window, int) else tuple(window)
    out = (output_size,) * d if isinstance(output_size, int) else tuple(output_size)
    cols = (1, 0) if d == 2 else tuple(range(d))
    u = samples.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else samples
    st = [fractional_starts(u[..., cols[a]], spatial[a], k[a], out[a]) for a in range(d)]
    n, c = x.shape[0], x.shape[-1]
    flat_x = jnp.moveaxis(x.reshape(n, -1, c), -1, 1)  # (N, C, P)
    ys, idxs = [], []
    for i in np.ndindex(*out):
        cells = []
        for m in itertools.product(*(range(kk) for kk in k)):
            flat = jnp.zeros((n, c), jnp.int32)
            for a in range(d):
                flat = flat * spatial[a] + st[a][..., i[a]] + m[a]
            cells.append(flat)
        pos = jnp.stack(cells, axis=-1)  # (N, C, K)
        vals = jnp.take_along_axis(flat_x, pos, axis=2)
        value, w = _ad_pick(vals, ties, axis=2)
        ys.append(value)
        idxs.append(jnp.take_along_axis(pos, w[..., None], axis=2)[..., 0])
    shape = (n, c, *out)
    y = jnp.stack(ys, axis=-1).reshape(shape)
    idx = jnp.stack(idxs, axis=-1).reshape(shape)
    y, idx = jnp.moveaxis(y, 1, -1), jnp.moveaxis(idx, 1, -1)
    assert math.prod(out) == len(ys)
    y, idx = _ad_back(y, layout), _ad_back(idx, layout)
    return (y, idx) if return_indices else y
