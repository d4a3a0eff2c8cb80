"""Exact lowerings of the three convolutions of a conv layer: forward, dx and dw.

Everything here works in channels-last form, x ``(N, *n, C)``, w ``(*k, C // G, F)``,
g ``(N, *o, F)``, and is pure jnp/lax: no custom VJPs (the family in `_backward.py` wraps these in
its custom VJPs, so how a value is computed never changes how it is differentiated).
One spatial dim shown; stride s, dilation d, padding (lo, hi); every dim is alike.

Forward ``y[j] = sum_m w[m] x_p[j s + m d]``:
  - "xla": one `lax.conv_general_dilated`.
  - "matmul" (im2col, seed 002's matrix C): the K = prod(k) strided slices of x_p, one per tap,
    side by side -> patches (M, K C); one `dot_general` with w as (K C, F).
  - "shift" (depthwise, C // G == 1): y = sum_m slice_m(x_p) * w[m], a fused multiply-add loop.

Input gradient ``dx[i] = sum_{j s + m d = i + lo} g[j] w[m]``:
  - "transpose" (seeds 000/001/002): g zero-dilated by s, correlated with rot180(w) whose in/out
    channels are swapped and regrouped, one lax convolution with lhs dilation.
  - "phase" (seed 004's i % s; seed 002's "deconvolution = two convolutions"): the outputs i
    with (i + lo) % s == r only see the taps m with m d % s == r; each residue class is a
    stride-1 correlation of g with that sub-kernel (no multiplications by inserted zeros),
    and the s^D classes are interleaved by interior padding.
  - "matmul" (col2im, seed 002's C^T): dP = g w^T, (M, F) x (F, K C), then every tap's
    column is added back at its offset (lax.pad with interior padding s - 1).
  - "taps": the same sums as "matmul" with one (M, F) x (F, C) product per tap, each placed
    at its offset (no column slicing; used for 3-D layers).
  - "shift" (depthwise): dx = sum_m place_m(g * w[m]).

Weight gradient ``dw[m] = sum_j g[j] x_p[j s + m d]`` (seeds 001 Eq. 13-14, 003, 004):
  - "xla": one lax convolution of x with g as kernel (batch and feature axes swapped).
  - "matmul": patches^T g, (K C, M) x (M, F).
  - "shift" (depthwise): dw[m] = sum over batch and space of slice_m(x_p) * g.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from jaxconv import _validate as v
from jaxconv._dtypes import widest
from jaxconv._lax_rules import lax_conv, regroup, transpose_lhs, transpose_rhs
from jaxconv._pool import Geom, block_slices, map_windows, window_blocks
from jaxconv._sharding import replicated
from jaxconv._spec import ConvParams, dimension_numbers


class Geometry(NamedTuple):
    """Static description of one channels-last convolution and the algorithms to use."""

    x_shape: tuple  # (N, *n, C)
    w_shape: tuple  # (*k, C // G, F)
    stride: tuple
    pads: tuple  # (lo, hi) per dim; hi may be negative (conv_transpose's output_padding)
    dilation: tuple
    groups: int
    precision: object
    pet: object  # preferred_element_type or None
    fwd: str  # "xla" | "matmul" | "shift"
    dx: str  # "transpose" | "phase" | "matmul" | "shift"
    dw: str  # "xla" | "matmul" | "shift"
    # (fwd, dx, dw) when lowered for any platform but CPU (GPU, TPU); None: as on CPU.
    elsewhere: tuple | None = None

    @property
    def nd(self):
        return len(self.stride)

    @property
    def k(self):
        return self.w_shape[:-2]

    @property
    def out_shape(self):
        k_eff = v.effective_kernel(self.k, self.dilation)
        o = v.out_size(self.x_shape[1:-1], k_eff, self.stride, self.pads)
        return (self.x_shape[0], *o, self.w_shape[-1])


def lax_params(geo) -> ConvParams:
    """The lax settings of the forward convolution described by `geo` (channels-last)."""
    nd = geo.nd
    return ConvParams(
        geo.stride,
        geo.pads,
        (1,) * nd,
        geo.dilation,
        dimension_numbers(nd, "channels_last"),
        geo.groups,
        1,
        geo.precision,
        geo.pet,
    )


def _dot(a, b, contract, batch, geo, out_sharding=None):
    return lax.dot_general(
        a,
        b,
        (contract, batch),
        precision=geo.precision,
        preferred_element_type=geo.pet,
        out_sharding=out_sharding,
    )


def _pad_x(x, geo):
    cfg = [(0, 0, 0), *((lo, hi, 0) for lo, hi in geo.pads), (0, 0, 0)]
    return lax.pad(x, jnp.zeros((), x.dtype), cfg)


def _taps(geo):
    return list(itertools.product(*(range(kk) for kk in geo.k)))


def _slice(xp, m, geo, o):
    """x_p[:, m d : m d + (o - 1) s + 1 : s, :] -- the inputs tap m reads, (N, *o, C)."""
    start = (0, *(mm * d for mm, d in zip(m, geo.dilation)), 0)
    limit = (
        xp.shape[0],
        *(mm * d + (oo - 1) * s + 1 for mm, d, oo, s in zip(m, geo.dilation, o, geo.stride)),
        xp.shape[-1],
    )
    return lax.slice(xp, start, limit, (1, *geo.stride, 1))


def _place(v, offsets, geo, n):
    """Transpose of `_slice` on the unpadded input: v (N, *o, C) put at i = j s + offset."""
    cfg = [(0, 0, 0)]
    for off, s, oo, nn in zip(offsets, geo.stride, v.shape[1:-1], n):
        cfg.append((max(off, 0), nn - off - (oo - 1) * s - 1, s - 1))
    cfg.append((0, 0, 0))
    out = lax.pad(v, jnp.zeros((), v.dtype), cfg)
    # A negative low pad crops after the pad: XLA's SPMD partitioner aborts the process on a
    # negative low pad with interior padding along a sharded axis, so crop by a slice.
    crop = (0, *(max(-off, 0) for off in offsets), 0)
    return lax.slice(out, crop, out.shape) if any(crop) else out


def _patches(x, geo):
    """(N, *o, K, C): every tap's strided slice of the padded input."""
    xp = _pad_x(x, geo)
    o = geo.out_shape[1:-1]
    return jnp.stack([_slice(xp, m, geo, o) for m in _taps(geo)], axis=-2)


# --------------------------------------------------------------------------- forward


def fwd_xla(x, w, geo):
    return lax_conv(lax_params(geo), x, w)


def fwd_matmul(x, w, geo):
    p = _patches(x, geo)  # (N, *o, K, C)
    K, G, F = math.prod(geo.k), geo.groups, w.shape[-1]
    cg = w.shape[-2]
    lead = p.shape[:-2]
    if G == 1:
        y = _dot(
            p.reshape(*lead, K * cg), w.reshape(K * cg, F), ((p.ndim - 2,), (0,)), ((), ()), geo
        )
        return y
    # Batch and spatial axes are never merged (they may be sharded); groups split C only.
    r = len(lead)
    p = p.reshape(*lead, K, G, cg)
    wg = w.reshape(K, cg, G, F // G)
    y = _dot(p, wg, ((r, r + 2), (0, 1)), ((r + 1,), (2,)), geo)  # (G, *lead, F/G)
    return jnp.moveaxis(y, 0, -2).reshape(*lead, F)


def _trailing(a, ndim):
    """`a` with leading unit axes up to rank `ndim`: broadcasts against the trailing axes
    without implicit rank promotion (which ``jax_numpy_rank_promotion="raise"`` forbids)."""
    return a.reshape((1,) * (ndim - a.ndim) + a.shape)


def _windows(geo):
    """The conv's windows as a pooling `Geom` (for `_pool.window_blocks`)."""
    nd = geo.nd
    return Geom(
        "channels_last",
        nd + 2,
        tuple(range(1, nd + 1)),
        geo.x_shape[1:-1],
        geo.k,
        geo.stride,
        geo.dilation,
        geo.pads,
        geo.out_shape[1:-1],
    )


def fwd_shift(x, w, geo):
    """Depthwise (C // G == 1): y[.., c mult + j] = sum_m slice_m(x_p)[.., c] w[m, 0, c mult+j],
    block by block of border runs and interior (`_pool.map_windows`: no padded copy of x)."""
    C, F = x.shape[-1], w.shape[-1]
    mult = F // C
    acc_t = geo.pet or jnp.result_type(x)
    wk = w.reshape(-1, F).astype(acc_t)

    def taps_sum(slices):
        y = None
        for t, s in slices:
            s = s.astype(acc_t)
            term = (
                s * _trailing(wk[t], s.ndim)
                if mult == 1
                else (s[..., None] * _trailing(wk[t].reshape(C, mult), s.ndim + 1)).reshape(
                    *s.shape[:-1], F
                )
            )
            y = term if y is None else y + term
        return (y,)

    return map_windows(x, _windows(geo), 0, taps_sum)[0]


FWD = {"xla": fwd_xla, "matmul": fwd_matmul, "shift": fwd_shift}


# --------------------------------------------------------------------------- input gradient


def swap_kernel(w, groups):
    """(*k, C // G, F) -> (*k, F // G, C): in/out channels swapped and regrouped per group
    (seed 002: D filters of depth C -> C filters of depth D)."""
    if groups > 1:
        w = regroup(w, w.ndim - 1, w.ndim - 2, groups)
    return jnp.swapaxes(w, -1, -2)


def dx_transpose(g, w, geo):
    """g zero-dilated by the stride, correlated with the rot180 swapped kernel (seed 000)."""
    return transpose_lhs(lax_params(geo), g, w, geo.x_shape, conv=lax_conv)


def _phase_plan(n, o, k, s, d, lo):
    """Per residue r of (i + lo) mod s: (first i, count, taps, dilation, (pad lo, pad hi))."""
    plan = []
    for r in sorted({(m * d) % s for m in range(k)}):  # residues no tap reaches stay zero
        i0 = (r - lo) % s
        count = max(0, -(-(n - i0) // s))
        taps = [m for m in range(k) if (m * d) % s == r]
        if not taps or not count:
            plan.append((i0, count, (), 1, (0, 0)))
            continue
        step = taps[1] - taps[0] if len(taps) > 1 else 1
        dil = step * d // s if len(taps) > 1 else 1  # g distance between consecutive taps
        base = (i0 + lo - taps[-1] * d) // s  # g index read by the last tap for the first i
        pad_lo = -base
        pad_hi = count - 1 + (len(taps) - 1) * dil + 1 - o - pad_lo
        plan.append((i0, count, tuple(taps), dil, (pad_lo, pad_hi)))
    return plan


def dx_phase(g, w, geo, fwd="xla"):
    """Polyphase input gradient: s^D stride-1 correlations, interleaved. Exact, no zeros."""
    n = geo.x_shape[1:-1]
    o = geo.out_shape[1:-1]
    plans = [
        _phase_plan(nn, oo, kk, s, d, lo)
        for nn, oo, kk, s, d, (lo, _) in zip(n, o, geo.k, geo.stride, geo.dilation, geo.pads)
    ]
    C = geo.x_shape[-1]
    out_t = geo.pet or widest(g, w)
    dx = None
    for phase in itertools.product(*plans):
        counts = tuple(p[1] for p in phase)
        if any(not p[2] for p in phase) or not all(counts):
            continue  # this residue class receives no gradient: stays zero
        sub = w
        for axis, (_, _, taps, _, _) in enumerate(phase):  # this class's taps, reversed
            step = taps[1] - taps[0] if len(taps) > 1 else 1
            sub = lax.rev(lax.slice_in_dim(sub, taps[0], taps[-1] + 1, step, axis), (axis,))
        sub = swap_kernel(sub, geo.groups)
        sub_geo = geo._replace(
            x_shape=(g.shape[0], *o, g.shape[-1]),
            w_shape=sub.shape,
            stride=(1,) * geo.nd,
            pads=tuple(p[4] for p in phase),
            dilation=tuple(p[3] for p in phase),
            fwd=fwd,
        )
        part = FWD[fwd](g, sub, sub_geo).astype(out_t)
        assert part.shape[1:-1] == counts, (part.shape, counts)
        placed = _place(part, tuple(p[0] for p in phase), geo, n)
        dx = placed if dx is None else dx + placed
    if dx is None:
        dx = jnp.zeros((*geo.x_shape[:-1], C), out_t)
    return dx


def dx_matmul(g, w, geo):
    """col2im: dP = g w^T, then each tap's column is added back where the tap read."""
    K, G, F = math.prod(geo.k), geo.groups, w.shape[-1]
    cg = w.shape[-2]
    lead = g.shape[:-1]
    if G == 1:
        dp = _dot(g, w.reshape(K * cg, F), ((g.ndim - 1,), (1,)), ((), ()), geo)
        dp = dp.reshape(*lead, K, cg)
    else:
        r = len(lead)
        gg = g.reshape(*lead, G, F // G)
        wg = w.reshape(K, cg, G, F // G)
        dp = _dot(gg, wg, ((r + 1,), (3,)), ((r,), (2,)), geo)  # (G, *lead, K, C/G)
        dp = jnp.moveaxis(dp, 0, -2).reshape(*lead, K, G * cg)
    return _sum_placed(lambda t: dp[..., t, :], geo)


def _sum_placed(term, geo):
    """dx = sum over taps m of place_m(term(t)): tap t's (N, *o, C) contribution added back at
    the inputs that tap read (the col2im fold; shared by "matmul", "taps" and "shift")."""
    n = geo.x_shape[1:-1]
    dx = None
    for t, m in enumerate(_taps(geo)):
        off = tuple(mm * d - lo for mm, d, (lo, _) in zip(m, geo.dilation, geo.pads))
        placed = _place(term(t), off, geo, n)
        dx = placed if dx is None else dx + placed
    return dx


def dx_taps(g, w, geo):
    """Per-tap products: dx = sum_m place_m(g w[m]^T), one (N, *o, F) x (F, C) product per tap.
    The same sums as col2im, without slicing columns out of the (N, *o, K, C) product: faster
    on 3-D layers (few channels per tap)."""
    G, F = geo.groups, w.shape[-1]
    cg = w.shape[-2]
    wk = w.reshape(-1, cg, G, F // G)
    r = g.ndim - 1
    gg = g.reshape(*g.shape[:-1], G, F // G)

    def part(t):
        p = _dot(gg, wk[t], ((r + 1,), (2,)), ((r,), (1,)), geo)  # (G, N, *o, C/G)
        return jnp.moveaxis(p, 0, -2).reshape(*g.shape[:-1], G * cg)

    return _sum_placed(part, geo)


def dx_shift(g, w, geo):
    """Depthwise input gradient: dx = sum_m place_m(g * w[m]) (multiplier summed out)."""
    C, F = geo.x_shape[-1], w.shape[-1]
    mult = F // C
    acc_t = geo.pet or jnp.result_type(g)
    wk = w.reshape(-1, F).astype(acc_t)

    def part(t):
        v = g.astype(acc_t) * _trailing(wk[t], g.ndim)
        return v.reshape(*v.shape[:-1], C, mult).sum(-1) if mult > 1 else v

    return _sum_placed(part, geo)


DX = {
    "transpose": dx_transpose,
    "phase": dx_phase,
    "matmul": dx_matmul,
    "taps": dx_taps,
    "shift": dx_shift,
}


# --------------------------------------------------------------------------- weight gradient


def dw_xla(x, g, geo):
    """x correlated with g: batch and feature axes swapped, groups become batch groups."""
    conv = lambda q, a, b: lax_conv(q, a, b, out_sharding=replicated(x))  # noqa: E731
    return transpose_rhs(lax_params(geo), x, g, geo.w_shape, conv=conv)


def dw_matmul(x, g, geo):
    p = _patches(x, geo)  # (N, *o, K, C)
    G, F = geo.groups, g.shape[-1]
    cg = geo.w_shape[-2]
    lead = tuple(range(g.ndim - 1))  # batch and space: contracted, never merged
    r = len(lead)
    p = p.reshape(*p.shape[:-1], G, cg)
    gg = g.reshape(*g.shape[:-1], G, F // G)
    dw = _dot(p, gg, (lead, lead), ((r + 1,), (r,)), geo, replicated(x))  # (G, K, C/G, F/G)
    return jnp.moveaxis(dw, 0, -2).reshape(*geo.k, cg, F)


def dw_shift(x, g, geo):
    """Depthwise weight gradient: dw[m] = sum over batch and space of slice_m(x_p) * g.

    All K taps in one variadic `lax.reduce`: XLA fuses the K products into a single pass over x
    and g (K separate reductions would read both K times; 2-3x slower on XLA:CPU). The reduce
    keeps the batch axis (and the first spatial axis for N-d, N >= 2), summed afterwards: XLA:CPU
    splits a reduction over its kept outer axes across threads, and one to (K, C) runs on one
    core (2x slower on the depthwise benchmark layer). One such reduce per block of border runs
    and interior (`_pool.window_blocks`, no padded copy of x); taps that read only padding add
    nothing there."""
    x, windows, runs = window_blocks(x, _windows(geo), 0)
    C, F = x.shape[-1], g.shape[-1]
    mult = F // C
    acc_t = geo.pet or jnp.result_type(x)
    keep = 2 if g.ndim > 3 else 1  # (N, o_1) for 2-D/3-D, (N,) for 1-D
    total = [jnp.zeros((C, mult), acc_t)] * windows.cells
    for picked in itertools.product(*runs):
        taps = [(t, s) for t, s in block_slices(x, windows, picked) if s is not None]
        if not taps:  # windows of padding only
            continue
        start = windows.config([u for u, _, _ in picked], 0)
        gb = lax.slice(g, start, windows.config([v for _, v, _ in picked], g.shape.__getitem__))
        gm = gb.astype(acc_t).reshape(*gb.shape[:-1], C, mult)
        prods = tuple(s.astype(acc_t)[..., None] * gm for _, s in taps)
        zeros = tuple(jnp.zeros((), acc_t) for _ in prods)
        sums = lax.reduce(prods, zeros, _add_all, tuple(range(keep, g.ndim - 1)))
        for (t, _), part in zip(taps, sums):
            total[t] = total[t] + part.sum(tuple(range(keep)))
    return jnp.stack(total).reshape(*geo.k, 1, F)


def _add_all(a, b):
    return tuple(ai + bi for ai, bi in zip(a, b))


DW = {"xla": dw_xla, "matmul": dw_matmul, "shift": dw_shift}


# --------------------------------------------------------------------------- per platform

_ROLES = {"fwd": (0, FWD), "dx": (1, DX), "dw": (2, DW)}


def compute(role: str, geo: Geometry, a, b, dtype):
    """`role` ("fwd", "dx" or "dw") of the convolution `geo` applied to (a, b), cast to `dtype`,
    by the algorithm chosen for the platform the computation is compiled for: ``geo.<role>`` on
    CPU, ``geo.elsewhere`` on every other platform. With two different choices both are staged
    by `jax.lax.platform_dependent`; each lowering keeps only its own platform's branch (no
    conditional reaches the compiler), so one jitted, exported or AOT-compiled function is
    right on every platform."""
    i, table = _ROLES[role]
    cpu = (geo.fwd, geo.dx, geo.dw)[i]
    other = cpu if geo.elsewhere is None else geo.elsewhere[i]

    def by(algorithm):
        return lambda a, b: table[algorithm](a, b, geo).astype(dtype)

    if other == cpu:
        return by(cpu)(a, b)
    return lax.platform_dependent(a, b, cpu=by(cpu), default=by(other))
