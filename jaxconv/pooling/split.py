"""ties="split" for the max pools whose windows are given by their starts: the uneven windows of
`adaptive_max_pool` and the drawn windows of `fractional_max_pool` (`max_pool`'s own "split",
on regular windows, is in `max_pool.py`).

Per dim, window i holds the cells start[i] + m, m < k (k the widest window; the offsets past a
shorter window's end are no cells of it), a box window the product of its dims'; its K = prod(k)
offsets are counted row-major. When several cells hold a window's maximum, "split" shares
its gradient equally among them, as `max_pool(ties="split")` does. With T_i the tied cells of
window i (those equal to y[i]; every NaN of a window holding NaN)::

    y[i]   = max_{t in W_i} x[t]
    t_y[i] = (1 / |T_i|) sum_{t in T_i} t[t]         (the tangent: `split_pick_p`)
    dx[t]  = sum_{i : t in T_i} g[i] / |T_i|         (the backward: `split_spread_p`)

the mean of the one-sided derivatives of the max. Each map is the other's transpose:
<pick(t), g> = sum_i sum_{t in T_i} t[t] g[i] / |T_i| = <t, spread(g)>, so forward mode runs
the pick, reverse mode the spread (seed 001's routing of a window's error to its winning units)
and every higher derivative alternates the two. T_i is a constant of both: a bitmask over the
K offsets, ceil(K/8) uint8 arrays of y's shape (`max_pool`'s words), with, where the starts
are data (fractional pooling: one set per (n, c)), the int32 starts of each dim, (N, C, O_d)
(named ``jaxconv.adaptive_max_pool.index`` / ``jaxconv.fractional_max_pool.index`` by the ops).
The cells are addressed by their flat row-major index into the spatial input of their (n, c):
the pick gathers t there (`unpool`'s gather primitive), the spread scatter-adds the K pieces of
g / |T_i| in one scatter (`unpool`'s scatter primitive and its lowerings, overlapping windows
accumulating). Both batch by folding the mapped
axis into N.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._core.dtypes import accumulation
from jaxconv._core.layout import join_layout, split_layout
from jaxconv._core.linmap import fold_rule
from jaxconv._core.primitive import linear, primitive
from jaxconv._core.residuals import name
from jaxconv.pooling.max_pool import _tied, tie_count
from jaxconv.pooling.unpool import flat, scatter, unpool_gather_p

_I32 = jnp.int32


class Boxes(NamedTuple):
    """Static description of windows given by their starts (hashable: a primitive's param)."""

    layout: str
    axes: tuple[int, ...]  # spatial axes of x (and y)
    size: tuple[int, ...]  # L per dim
    window: tuple[int, ...]  # k per dim: the offsets visited (the widest window)
    out: tuple[int, ...]  # O per dim
    # the starts of each dim's O windows, or None: they are operands, (N, C, O_d) per dim
    starts: tuple[tuple[int, ...], ...] | None = None


def words_count(boxes: Boxes) -> int:
    return (math.prod(boxes.window) + 7) // 8


def equal(a, b):
    """a == b for the tie test, NaN equal to NaN (a window's NaNs tie, as in `max_pool`)."""
    if jnp.issubdtype(a.dtype, jnp.floating):
        return (a == b) | (jnp.isnan(a) & jnp.isnan(b))
    return a == b


def pack(tied) -> tuple:
    """The tie bits of the K offsets (one bool array each, y's shape, row-major offset order)
    as ceil(K/8) uint8 words: bit r % 8 of word r // 8 is offset r."""
    words = [jnp.zeros(tied[0].shape, jnp.uint8) for _ in range((len(tied) + 7) // 8)]
    for r, bit in enumerate(tied):
        words[r // 8] = words[r // 8] | (bit.astype(jnp.uint8) << (r % 8))
    return tuple(words)


def _along(start, a, shape, layout):
    """One dim's window starts broadcast to y's rank: static (O,) along axis a, or a per-(n, c)
    table (N, C, O) with N at axis 0, C at the channel axis and O at axis a."""
    if isinstance(start, tuple):
        s = [1] * len(shape)
        s[a] = len(start)
        return np.asarray(start, np.int32).reshape(s)
    c_axis = len(shape) - 1 if layout == "channels_last" else 1
    t = jnp.moveaxis(start, 1, -1) if layout == "channels_last" else start
    s = [1] * len(shape)
    s[0], s[c_axis], s[a] = start.shape
    return t.reshape(s)


def cell_indices(shape, boxes: Boxes, tables=()):
    """[idx_r]: the flat row-major index of offset r of every window, y's shape, int32; an
    offset past a shorter window's end (never tied) is clipped to the input's last cell."""
    starts = boxes.starts if boxes.starts is not None else tables
    per_dim = [_along(s, a, shape, boxes.layout) for s, a in zip(starts, boxes.axes)]
    out = []
    for m in itertools.product(*(range(k) for k in boxes.window)):
        idx = 0
        for s, mm, n in zip(per_dim, m, boxes.size):
            idx = idx * n + jnp.minimum(s + mm, n - 1)
        out.append(jnp.broadcast_to(jnp.asarray(idx, _I32), shape))
    return out


def _parts(res, boxes: Boxes):
    nw = words_count(boxes)
    return tuple(res[:nw]), tuple(res[nw:])


def _pick(t, *res, boxes: Boxes):
    """t_y[i]: the mean of t over the tied cells of window i."""
    words, tables = _parts(res, boxes)
    shape = words[0].shape
    acc = accumulation(t.dtype) or t.dtype
    zero = jnp.zeros((), acc)
    total = jnp.zeros(shape, acc)
    for r, idx in enumerate(cell_indices(shape, boxes, tables)):
        tr = unpool_gather_p.bind(t, idx, layout=boxes.layout, shape=boxes.size)
        total = total + jnp.where(_tied(words, r), tr.astype(acc), zero)
    return (total / tie_count(words).astype(acc)).astype(t.dtype)


def _spread(g, *res, boxes: Boxes):
    """dx: g[i] / |T_i| added to every tied cell of window i, in one scatter-add."""
    words, tables = _parts(res, boxes)
    share = g / tie_count(words).astype(g.dtype)
    zero = jnp.zeros((), g.dtype)
    ax = 1 if boxes.layout == "channels_last" else 2
    pieces, where = [], []
    for r, idx in enumerate(cell_indices(g.shape, boxes, tables)):
        pieces.append(flat(jnp.where(_tied(words, r), share, zero), boxes.layout)[0])
        where.append(flat(idx, boxes.layout)[0])
    # the K pieces side by side along one flat spatial axis of each (n, c)
    dx = scatter(
        jnp.concatenate(pieces, axis=ax), jnp.concatenate(where, axis=ax), boxes.layout, boxes.size
    )
    n, _, c = split_layout(g.shape, boxes.layout)
    assert dx.shape == join_layout(n, boxes.size, c, boxes.layout), (dx.shape, g.shape)
    return dx


split_pick_p = primitive("max_split_pick", _pick, ("boxes",))
split_spread_p = primitive("max_split_spread", _spread, ("boxes",))
linear(
    split_pick_p,
    (0,),
    lambda ct, t, *res, boxes: (split_spread_p.bind(ct, *res, boxes=boxes),),
    fold_rule(split_pick_p),
)
linear(
    split_spread_p,
    (0,),
    lambda ct, g, *res, boxes: (split_pick_p.bind(ct, *res, boxes=boxes),),
    fold_rule(split_spread_p),
)


def split_pick(t, res: tuple, boxes: Boxes):
    """The tangent of a split-ties max pool: res the tie words, then the starts tables (if
    the starts are data)."""
    return split_pick_p.bind(t, *res, boxes=boxes)


def winner_tangents(t, out: tuple, ties: str, boxes: Boxes, op: str) -> tuple:
    """The output tangents of a max pool with recorded winners whose forward returned
    ``out = (y, idx, *res)``: for y the input tangent `t` at the winners (`unpool_gather_p`,
    whose transpose places g on them) or, for ties="split", its mean over the tied cells
    (`split_pick`, res the tie words and starts; its transpose shares g); float0 for the
    integer outputs. The residuals carry `op`'s checkpoint name ``jaxconv.<op>.index``."""
    _, idx, *res = out
    if ties == "split":
        ty = split_pick(t, name(tuple(res), op, "index"), boxes)
    else:
        idx = name(idx, op, "index")
        ty = unpool_gather_p.bind(t, idx, layout=boxes.layout, shape=boxes.size)
    return (ty, *(np.zeros(a.shape, jax.dtypes.float0) for a in out[1:]))
