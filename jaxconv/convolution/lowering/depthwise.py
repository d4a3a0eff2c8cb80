"""Depthwise convolution (C // G == 1) by shifted multiply-adds ("shift"), no matrix products.

One spatial dim shown, every dim alike; slice_m(x_p) is the strided slice of the padded input
that tap m reads, place_m its transpose:

- forward: ``y = sum_m slice_m(x_p) * w[m]``, a fused multiply-add loop;
- input gradient: ``dx = sum_m place_m(g * w[m])`` (a channel multiplier summed out);
- weight gradient: ``dw[m] = sum over batch and space of slice_m(x_p) * g``.

Each works block by block of border runs and interior (`window_blocks`): no padded
copy of x is written.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
from jax import lax

from jaxconv._core.window import block_slices, map_windows, window_blocks
from jaxconv.convolution.lowering.geometry import conv_windows, sum_placed, trailing


def fwd_shift(x, w, geo):
    """Depthwise (C // G == 1): y[.., c mult + j] = sum_m slice_m(x_p)[.., c] w[m, 0, c mult+j],
    block by block of border runs and interior (`_core.window.map_windows`: no padded copy of x)."""
    C, F = x.shape[-1], w.shape[-1]
    mult = F // C
    acc_t = geo.pet or jnp.result_type(x)
    wk = w.reshape(-1, F).astype(acc_t)

    def taps_sum(slices):
        y = None
        for t, s in slices:
            s = s.astype(acc_t)
            term = (
                s * trailing(wk[t], s.ndim)
                if mult == 1
                else (s[..., None] * trailing(wk[t].reshape(C, mult), s.ndim + 1)).reshape(
                    *s.shape[:-1], F
                )
            )
            y = term if y is None else y + term
        return (y,)

    return map_windows(x, conv_windows(geo), 0, taps_sum)[0]


def dx_shift(g, w, geo):
    """Depthwise input gradient: dx = sum_m place_m(g * w[m]) (multiplier summed out)."""
    C, F = geo.x_shape[-1], w.shape[-1]
    mult = F // C
    acc_t = geo.pet or jnp.result_type(g)
    wk = w.reshape(-1, F).astype(acc_t)

    def part(t):
        v = g.astype(acc_t) * trailing(wk[t], g.ndim)
        return v.reshape(*v.shape[:-1], C, mult).sum(-1) if mult > 1 else v

    return sum_placed(part, geo)


def dw_shift(x, g, geo):
    """Depthwise weight gradient: dw[m] = sum over batch and space of slice_m(x_p) * g.

    All K taps in one variadic `lax.reduce`: XLA fuses the K products into a single pass over x
    and g (K separate reductions would read both K times; 2-3x slower on XLA:CPU). The reduce
    keeps the batch axis (and the first spatial axis for N-d, N >= 2), summed afterwards: XLA:CPU
    splits a reduction over its kept outer axes across threads, and one to (K, C) runs on one
    core (2x slower on the depthwise benchmark layer). One such reduce per block of border runs
    and interior (`window_blocks`, no padded copy of x); taps that read only padding add
    nothing there."""
    x, windows, runs = window_blocks(x, conv_windows(geo), 0)
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
        sums = lax.reduce(prods, zeros, _add_pairs, tuple(range(keep, g.ndim - 1)))
        for (t, _), part in zip(taps, sums):
            total[t] = total[t] + part.sum(tuple(range(keep)))
    return jnp.stack(total).reshape(*geo.k, 1, F)


def _add_pairs(a, b):
    return tuple(ai + bi for ai, bi in zip(a, b))
