"""Routing by flat index, as pairs of linear primitives that are each other's transpose.

A flat index is row-major over the spatial dims of one (n, c):
``idx = sum_a pos_a prod_{b>a} n_b``. Two pairs, each batched by folding the mapped axis into N:

- ``scatter(y, idx)``: out[n, c, idx[n, c, i]] += y[n, c, i] (`max_unpool`; indices outside the
  output are dropped), and its transpose ``gather(g, idx)`` = g[n, c, idx[n, c, i]] (0 outside):
  the unpool's backward, seed 001's "the error of a winning unit is the error of its pooled
  output". The transpose of the gather is the scatter again.
- ``pick(t, idx)``: t at one flat index per (n, c) (`global_max_pool`'s tangent: the tangent at
  the winner), and its transpose ``place(g, idx)``: g at that cell of each (n, c), 0 elsewhere
  (the global max pool's backward).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._layout import join_layout, split_layout
from jaxconv._linmap import fold_rule
from jaxconv._primitive import linear, primitive

_I32 = jnp.int32


def flat(a, layout):
    """(N, P, C) or (N, C, P) with the spatial dims flattened; the axis of P."""
    if layout == "channels_last":
        return a.reshape(a.shape[0], math.prod(a.shape[1:-1]), a.shape[-1]), 1
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:])), 2


def _scatter(y, idx, *, layout, shape):
    """out[i] += y[p] for i = idx[p] per (n, c), over `shape` (spatial); idx in [0, size]."""
    size = math.prod(shape)
    y2, ax = flat(y, layout)
    idx2, _ = flat(idx, layout)

    def scatter_add(u, i):  # one (n, c): out[i[p]] += u[p]
        return jnp.zeros(size, u.dtype).at[i].add(u, mode="drop")

    # vmapped over N and C (a batched scatter, no index iotas: explicit sharding allows it)
    c_ax = 3 - ax - 1  # C's axis once N is mapped away
    out = jax.vmap(jax.vmap(scatter_add, (c_ax, c_ax), c_ax))(y2, idx2)
    n, _, c = split_layout(y.shape, layout)
    return out.reshape(join_layout(n, shape, c, layout))


def _gather(g, idx, *, layout, shape):
    g2, ax = flat(g, layout)
    idx2, _ = flat(idx, layout)
    dy = jnp.take_along_axis(g2, idx2, axis=ax, mode="fill", fill_value=0)
    return dy.reshape(idx.shape)


scatter_p = primitive("max_unpool", _scatter, ("layout", "shape"))
gather_p = primitive("max_unpool_gather", _gather, ("layout", "shape"))
linear(
    scatter_p,
    (0,),
    lambda ct, y, idx, **kw: (gather_p.bind(ct, idx, **kw),),
    fold_rule(scatter_p),
)
linear(
    gather_p,
    (0,),
    lambda ct, g, idx, **kw: (scatter_p.bind(ct, idx, **kw),),
    fold_rule(gather_p),
)


def scatter(y, idx, layout: str, shape):
    return scatter_p.bind(y, idx, layout=layout, shape=tuple(shape))


# --------------------------------------------------------------------------- one per (n, c)


def _pick(t, idx, *, layout):
    t2, ax = flat(t, layout)
    return jnp.take_along_axis(t2, jnp.expand_dims(idx, ax), axis=ax).squeeze(ax)


def _place(g, idx, *, layout, spatial):
    """g[n, c] at flat index idx[n, c] of (n, c)'s `spatial` cells, 0 elsewhere."""
    n, c = g.shape
    ax = 1 if layout == "channels_last" else 2
    size = math.prod(spatial)
    shape2 = (n, size, c) if ax == 1 else (n, c, size)
    hit = lax.broadcasted_iota(_I32, shape2, ax) == jnp.expand_dims(idx, ax)
    dx = jnp.where(hit, jnp.expand_dims(g, ax), jnp.zeros((), g.dtype))
    return dx.reshape(join_layout(n, spatial, c, layout))


pick_p = primitive("global_max_pool_pick", _pick, ("layout",))
place_p = primitive("global_max_pool_place", _place, ("layout", "spatial"))


def _pick_t(ct, t, idx, *, layout):
    spatial = split_layout(t.aval.shape, layout)[1]
    return (place_p.bind(ct, idx, layout=layout, spatial=tuple(spatial)),)


linear(pick_p, (0,), _pick_t, fold_rule(pick_p))
linear(
    place_p,
    (0,),
    lambda ct, g, idx, *, layout, spatial: (pick_p.bind(ct, idx, layout=layout),),
    fold_rule(place_p),
)


def pick(t, idx, layout: str):
    return pick_p.bind(t, idx, layout=layout)
