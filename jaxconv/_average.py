"""Average pooling's linear maps, as primitives that are each other's transpose.

Seed 001 (Jefkine, "Pooling Layer"): for average pooling "the error is multiplied by 1/(N×N) and
assigned to the whole pooling block". With N_i the divisor of window i, one dim, window cells
i*s + m - lo::

    average:  y[i]  = (1 / N_i) sum_m x~[i*s + m]          (`_pool.window_sum`)
    adjoint:  dx[t] = sum_{i : t in window i} g[i] / N_i   (`_pool.window_sum_adjoint` of g / N)

Both are linear, so the JVP of each is itself on the tangent (forward mode), the transpose of
the average is the hand-written backward (the adjoint) and the adjoint's transpose is the
average again: every derivative of every order runs on these two. The same pair for the mean
over all spatial dims (`global_avg_pool`): ``mean`` and ``spread_mean`` (g / S broadcast over
the S cells). 16-bit inputs sum in float32. All four batch by folding the mapped axis into N.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._dtypes import accumulation
from jaxconv._linmap import fold_rule
from jaxconv._pool import window_sum, window_sum_adjoint
from jaxconv._primitive import linear, primitive
from jaxconv._window import Window


class AvgCfg(NamedTuple):
    geom: Window
    counts: tuple[tuple[int, ...], ...] | None  # per-dim divisor factors, N_i = prod_d
    override: int | None


def _divisor(cfg: AvgCfg, dtype):
    """N_i broadcastable against y: a scalar, or the outer product of the per-dim counts."""
    if cfg.counts is None:
        return jnp.asarray(cfg.override, dtype)
    geom, div = cfg.geom, np.ones((1,) * cfg.geom.ndim)
    for a, c in zip(geom.axes, cfg.counts):
        shape = [1] * geom.ndim
        shape[a] = len(c)
        div = div * np.asarray(c, np.float64).reshape(shape)
    return jnp.asarray(div, dtype)


def _x_shape(geom: Window, y_shape):
    return tuple(
        geom.size[geom.axes.index(i)] if i in geom.axes else e for i, e in enumerate(y_shape)
    )


def _average(x, *, cfg: AvgCfg):
    acc = accumulation(x.dtype) or x.dtype  # float32 sums for 16-bit inputs
    y = window_sum(x.astype(acc), cfg.geom) / _divisor(cfg, acc)
    return y.astype(x.dtype)


def _adjoint(g, *, cfg: AvgCfg):
    shape = _x_shape(cfg.geom, g.shape)
    acc = accumulation(g.dtype) or g.dtype
    dx = window_sum_adjoint(g.astype(acc) / _divisor(cfg, acc), cfg.geom, shape)
    return dx.astype(g.dtype)


average_p = primitive("avg_pool", _average, ("cfg",))
adjoint_p = primitive("avg_pool_adjoint", _adjoint, ("cfg",))
linear(average_p, (0,), lambda ct, x, cfg: (adjoint_p.bind(ct, cfg=cfg),), fold_rule(average_p))
linear(adjoint_p, (0,), lambda ct, g, cfg: (average_p.bind(ct, cfg=cfg),), fold_rule(adjoint_p))


def average(x, cfg: AvgCfg):
    return average_p.bind(x, cfg=cfg)


def window_sums(x, geom: Window):
    """y[i] = sum over window i of x (zero padding), as the linear primitive."""
    return average_p.bind(x, cfg=AvgCfg(geom, None, 1))


def window_sums_adjoint(g, geom: Window):
    """The transpose of `window_sums`: every input cell gets the sum of its windows' g."""
    return adjoint_p.bind(g, cfg=AvgCfg(geom, None, 1))


# --------------------------------------------------------------------------- global mean


def spatial_axes(layout, ndim):
    return tuple(range(1, ndim - 1)) if layout == "channels_last" else tuple(range(2, ndim))


def _mean(x, *, layout):
    return jnp.mean(x, axis=spatial_axes(layout, x.ndim))


def _spread_mean(g, *, layout, spatial):
    """g / S broadcast over the S = prod(spatial) cells of each (n, c)."""
    axes = spatial_axes(layout, g.ndim + len(spatial))
    x_shape = list(g.shape)
    for a, n in zip(axes, spatial):
        x_shape.insert(a, n)
    size = 1
    for n in spatial:
        size *= n
    return jnp.broadcast_to(lax.expand_dims(g / size, axes), tuple(x_shape))


mean_p = primitive("global_avg_pool", _mean, ("layout",))
spread_mean_p = primitive("global_avg_pool_adjoint", _spread_mean, ("layout", "spatial"))


def _mean_t(ct, x, *, layout):
    spatial = tuple(x.aval.shape[a] for a in spatial_axes(layout, x.aval.ndim))
    return (spread_mean_p.bind(ct, layout=layout, spatial=spatial),)


linear(mean_p, (0,), _mean_t, fold_rule(mean_p))
linear(
    spread_mean_p,
    (0,),
    lambda ct, g, layout, spatial: (mean_p.bind(ct, layout=layout),),
    fold_rule(spread_mean_p),
)


def mean(x, layout: str):
    return mean_p.bind(x, layout=layout)
