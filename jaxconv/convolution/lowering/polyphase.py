"""The polyphase input gradient ("phase"): s^D stride-1 correlations, interleaved.

One spatial dim shown (every dim alike): ``dx[i] = sum_{j s + m d = i + lo} g[j] w[m]``. The
outputs i with (i + lo) % s == r only see the taps m with m d % s == r (seed 004's i % s;
seed 002's "deconvolution with factor 2 = two convolutions"; Shi et al. 2016). Each residue
class is a stride-1 full correlation of g with that sub-kernel, rotated 180 degrees with its
in/out channels swapped, so no multiplication by an inserted zero happens; the s^D classes
are interleaved by interior padding.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
from jax import lax

from jaxconv._core.dtypes import widest
from jaxconv.convolution.lowering.geometry import place
from jaxconv.convolution.lowering.xla import fwd_xla, regroup


def swap_kernel(w, groups):
    """(*k, C // G, F) -> (*k, F // G, C): in/out channels swapped and regrouped per group
    (seed 002: D filters of depth C -> C filters of depth D)."""
    if groups > 1:
        w = regroup(w, w.ndim - 1, w.ndim - 2, groups)
    return jnp.swapaxes(w, -1, -2)


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


def dx_phase(g, w, geo):
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
            fwd="xla",
        )
        part = fwd_xla(g, sub, sub_geo).astype(out_t)
        assert part.shape[1:-1] == counts, (part.shape, counts)
        placed = place(part, tuple(p[0] for p in phase), geo, n)
        dx = placed if dx is None else dx + placed
    if dx is None:
        dx = jnp.zeros((*geo.x_shape[:-1], C), out_t)
    return dx
