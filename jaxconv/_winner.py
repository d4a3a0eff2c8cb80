"""Max pooling's linear maps: the tangent at the recorded winner and its transpose, the spread.

With r[i] the winner's offset inside window i (the residual of `_maxpool`), one dim::

    pick:    t_y[i] = t~[i*s + r[i]*d]        (ties="split": the mean over the tied cells)
    spread:  dx[t]  = sum_{i : i*s + r[i]*d - lo = t} g[i]

Each is the other's transpose, so forward mode (jvp, linearize, jacfwd) runs `pick`, reverse
mode runs `spread` -- seed 001's routing of the window's error to its winning unit, i.e. the
hand-written backward pass (`_pool.spread`) -- and every higher derivative alternates the
two. The offsets (int8/int16/int32) or, for ties="split", the uint8 tie bitmasks are constant
arguments; both maps batch by folding the mapped axis into N.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jaxconv._dtypes import accumulation
from jaxconv._linmap import fold_rule
from jaxconv._pool import spread
from jaxconv._primitive import linear, primitive
from jaxconv._window import Window, pad_to_cover

_I32 = jnp.int32


def tie_count(words):
    """How many cells of each window tie for its maximum (the popcount of its bitmask)."""
    return sum(lax.population_count(w).astype(_I32) for w in words)


def _tied(words, r):
    return ((words[r // 8] >> (r % 8)) & 1) == 1


def _cells(t, geom: Window):
    """[(r, t_r)]: t_r[i] = t~[i*s + m*d], offset m = r-th of `geom.offsets()`, of t
    zero-padded to the region the windows cover."""
    tp = pad_to_cover(t, geom, 0)
    out = []
    for r, m in enumerate(geom.offsets()):
        first = [mm * d for mm, d in zip(m, geom.dilation)]
        last = [f + (o - 1) * s + 1 for f, o, s in zip(first, geom.out, geom.stride)]
        start, limit = geom.config(first, 0), geom.config(last, tp.shape.__getitem__)
        out.append((r, lax.slice(tp, start, limit, geom.config(geom.stride, 1))))
    return out


def _pick(t, *res, geom: Window, ties: str):
    """The tangent of y: t at each window's winner, or the mean of t over its tied cells."""
    cells = _cells(t, geom)
    if ties != "split":
        (off,) = res
        ty = cells[0][1]  # every offset is in [0, K): no default needed
        for r, tr in cells[1:]:
            ty = jnp.where(off == r, tr, ty)
        return ty
    acc = accumulation(t.dtype) or t.dtype
    zero = jnp.zeros((), acc)
    total = sum(jnp.where(_tied(res, r), tr.astype(acc), zero) for r, tr in cells)
    return (total / tie_count(res).astype(acc)).astype(t.dtype)


def _spread(g, *res, geom: Window, ties: str):
    """dx: g routed to each window's winner (ties="split": g / count to every tied cell),
    overlapping windows accumulating (`_pool.spread`)."""
    zero = jnp.zeros((), g.dtype)
    if ties == "split":
        g = g / tie_count(res).astype(g.dtype)

        def piece(r, *words_g):
            return jnp.where(_tied(words_g, r), words_g[-1], zero)

        return spread(geom, (*res, g), piece)

    def piece(r, off, g):
        return jnp.where(off == r, g, zero)

    return spread(geom, (*res, g), piece)


pick_p = primitive("max_pool_pick", _pick, ("geom", "ties"))
spread_p = primitive("max_pool_spread", _spread, ("geom", "ties"))


def _pick_t(ct, t, *res, geom, ties):
    return (spread_p.bind(ct, *res, geom=geom, ties=ties),)


def _spread_t(ct, g, *res, geom, ties):
    return (pick_p.bind(ct, *res, geom=geom, ties=ties),)


linear(pick_p, (0,), _pick_t, fold_rule(pick_p))
linear(spread_p, (0,), _spread_t, fold_rule(spread_p))


def pick(t, res, geom: Window, ties: str):
    """The tangent of max pooling for the input tangent t, res the offsets or the tie words."""
    res = res if isinstance(res, tuple) else (res,)
    return pick_p.bind(t, *res, geom=geom, ties=ties)
