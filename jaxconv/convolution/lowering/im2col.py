"""im2col, col2im and per-tap products: a convolution as matrix products (seed 002's matrix C).

One spatial dim shown (every dim alike), K = prod(k) taps, M = N prod(o) output positions:

- forward "matmul": the K strided slices of the padded x, one per tap, side by side give the
  patches (M, K C); one `dot_general` with w as (K C, F).
- input gradient "matmul" (col2im, seed 002's C^T): dP = g w^T, (M, F) x (F, K C), then every
  tap's column is added back at its offset (`lax.pad` with interior padding s - 1).
- input gradient "taps": the same sums with one (M, F) x (F, C) product per tap, each placed
  at its offset (no column slicing; used for 3-D layers).
- weight gradient "matmul": patches^T g, (K C, M) x (M, F).

Groups split the channel axes only (batch and space are never merged: they may be sharded).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxconv._core.sharding import replicated
from jaxconv.convolution.lowering.geometry import dot, pad_x, sum_placed, tap_offsets, tap_slice


def patches(x, geo):
    """(N, *o, K, C): every tap's strided slice of the padded input."""
    xp = pad_x(x, geo)
    o = geo.out_shape[1:-1]
    return jnp.stack([tap_slice(xp, m, geo, o) for m in tap_offsets(geo)], axis=-2)


def fwd_matmul(x, w, geo):
    p = patches(x, geo)  # (N, *o, K, C)
    K, G, F = math.prod(geo.k), geo.groups, w.shape[-1]
    cg = w.shape[-2]
    lead = p.shape[:-2]
    if G == 1:
        y = dot(
            p.reshape(*lead, K * cg), w.reshape(K * cg, F), ((p.ndim - 2,), (0,)), ((), ()), geo
        )
        return y
    # Batch and spatial axes are never merged (they may be sharded); groups split C only.
    r = len(lead)
    p = p.reshape(*lead, K, G, cg)
    wg = w.reshape(K, cg, G, F // G)
    y = dot(p, wg, ((r, r + 2), (0, 1)), ((r + 1,), (2,)), geo)  # (G, *lead, F/G)
    return jnp.moveaxis(y, 0, -2).reshape(*lead, F)


def dx_matmul(g, w, geo):
    """col2im: dP = g w^T, then each tap's column is added back where the tap read."""
    K, G, F = math.prod(geo.k), geo.groups, w.shape[-1]
    cg = w.shape[-2]
    lead = g.shape[:-1]
    if G == 1:
        dp = dot(g, w.reshape(K * cg, F), ((g.ndim - 1,), (1,)), ((), ()), geo)
        dp = dp.reshape(*lead, K, cg)
    else:
        r = len(lead)
        gg = g.reshape(*lead, G, F // G)
        wg = w.reshape(K, cg, G, F // G)
        dp = dot(gg, wg, ((r + 1,), (3,)), ((r,), (2,)), geo)  # (G, *lead, K, C/G)
        dp = jnp.moveaxis(dp, 0, -2).reshape(*lead, K, G * cg)
    return sum_placed(lambda t: dp[..., t, :], geo)


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
        p = dot(gg, wk[t], ((r + 1,), (2,)), ((r,), (1,)), geo)  # (G, N, *o, C/G)
        return jnp.moveaxis(p, 0, -2).reshape(*g.shape[:-1], G * cg)

    return sum_placed(part, geo)


def dw_matmul(x, g, geo):
    p = patches(x, geo)  # (N, *o, K, C)
    G, F = geo.groups, g.shape[-1]
    cg = geo.w_shape[-2]
    lead = tuple(range(g.ndim - 1))  # batch and space: contracted, never merged
    r = len(lead)
    p = p.reshape(*p.shape[:-1], G, cg)
    gg = g.reshape(*g.shape[:-1], G, F // G)
    dw = dot(p, gg, (lead, lead), ((r + 1,), (r,)), geo, replicated(x))  # (G, K, C/G, F/G)
    return jnp.moveaxis(dw, 0, -2).reshape(*geo.k, cg, F)
