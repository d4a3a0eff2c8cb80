"""Routing by flat index: `max_unpool` (max pooling's backward as a forward op) and
`global_max_pool` (whose residual is the winner's flat index).

A flat index is row-major over the spatial dims of one (n, c): ``idx = sum_a pos_a prod_{b>a} n_b``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv import _validate as v
from jaxconv._layout import join_layout, split_layout
from jaxconv._remat import name
from jaxconv._sharding import auto_partitioned
from jaxconv._types import Array, ArrayLike, Shape

_I32 = jnp.int32


def max_unpool(
    y: ArrayLike,
    indices: ArrayLike,
    output_shape: Shape,
    *,
    layout: str = "channels_last",
) -> Array:
    """Put each value of `y` back at its flat index (zeros elsewhere): max-pool routing as an op.

    ``out[n, c, indices[n, c, i]] += y[n, c, i]`` (layout aside). Values sharing an index add up
    (PyTorch keeps one of them), which makes this the exact adjoint of the gather
    ``y[i] = out[indices[i]]``, and ``max_unpool(g, idx, x.shape)`` equals the VJP of
    ``max_pool(x, ..., return_indices=True)`` for ties="first". The backward is that gather
    (seed 001: the error of a winning unit is the error of its pooled output). Indices outside
    the output are dropped (and get zero gradient).

    Args:
      y: (N, *o, C) ("channels_last") or (N, C, *o) ("channels_first"), floating.
      indices: integer, y's shape, flat row-major indices into the output's spatial dims.
      output_shape: the output's spatial shape, or its full shape (N and C must match y).
    Returns:
      (N, *output_spatial, C) or (N, C, *output_spatial), y's dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1., 3.], [2., 0.]]).reshape(1, 2, 2, 1)
      >>> from jaxconv import max_pool
      >>> y, idx = max_pool(x, 2, return_indices=True)
      >>> max_unpool(y, idx, x.shape).ravel().tolist()  # the maxima in place, zeros elsewhere
      [0.0, 3.0, 0.0, 0.0]
    """
    fn = "max_unpool"
    v.check_layout(fn, layout)
    v.check_float(fn, "y", y)
    v.check_int_dtype(fn, "indices", indices)
    nd = v.spatial_rank(fn, y, "y")
    v.check_shape(fn, "indices", indices.shape, y.shape, "one index per value of y")
    shape = v.as_np_shape(fn, "output_shape", output_shape)
    n, _, c = split_layout(y.shape, layout)
    if len(shape) == y.ndim:
        full, shape = shape, split_layout(shape, layout)[1]
        if full != join_layout(n, shape, c, layout):
            v.fail(
                fn,
                "output_shape",
                full,
                f"must be {join_layout(n, shape, c, layout)} (N and C of y)",
            )
    elif len(shape) != nd:
        v.fail(
            fn,
            "output_shape",
            output_shape,
            f"must be the spatial shape ({nd} ints) or the full shape ({y.ndim} ints)",
        )
    if any(s < 1 for s in shape):
        v.fail(fn, "output_shape", output_shape, "must be >= 1 in every dim")
    cfg = (layout, shape, tuple(y.shape))
    return auto_partitioned(lambda y, i: _max_unpool(y, i, cfg), y, indices, batch=(0, 1))


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _max_unpool(y, indices, cfg):
    return _max_unpool_fwd(y, indices, cfg)[0]


def _flat(a, layout):
    """(N, P, C) or (N, C, P) with the spatial dims flattened; the axis of P."""
    if layout == "channels_last":
        return a.reshape(a.shape[0], math.prod(a.shape[1:-1]), a.shape[-1]), 1
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:])), 2


def _max_unpool_fwd(y, indices, cfg):
    layout, shape, _ = cfg
    size = 1
    for s in shape:
        size *= s
    y2, ax = _flat(y, layout)
    idx, _ = _flat(indices, layout)
    idx = jnp.where((idx >= 0) & (idx < size), idx, size).astype(_I32)  # out of range: dropped

    def scatter_add(u, i):  # one (n, c): out[i[p]] += u[p]
        return jnp.zeros(size, u.dtype).at[i].add(u, mode="drop")

    # vmapped over N and C (a batched scatter, no index iotas: explicit sharding allows it)
    c_ax = 3 - ax - 1  # C's axis once N is mapped away
    out = jax.vmap(jax.vmap(scatter_add, (c_ax, c_ax), c_ax))(y2, idx)
    n, _, c = split_layout(y.shape, layout)
    return out.reshape(join_layout(n, shape, c, layout)), idx


def _max_unpool_bwd(cfg, idx, g):
    layout, _, y_shape = cfg
    g2, ax = _flat(g, layout)
    dy = jnp.take_along_axis(g2, idx, axis=ax, mode="fill", fill_value=0)
    return dy.reshape(y_shape), None


_max_unpool.defvjp(_max_unpool_fwd, _max_unpool_bwd)


def global_max_pool(
    x: ArrayLike,
    *,
    layout: str = "channels_last",
) -> Array:
    """Max over all spatial dims: (N, *spatial, C) or (N, C, *spatial) -> (N, C).

    The gradient goes to the first (row-major) maximum of each (n, c), or its first NaN (seed
    001's winning unit); the residual is that flat index, int32 of shape (N, C).

    Example:
      >>> import jax.numpy as jnp
      >>> global_max_pool(jnp.arange(8.).reshape(1, 2, 2, 2)).tolist()
      [[6.0, 7.0]]
    """
    fn = "global_max_pool"
    v.check_layout(fn, layout)
    v.check_float(fn, "x", x)
    nd = v.spatial_rank(fn, x)
    sp = range(1, nd + 1) if layout == "channels_last" else range(2, nd + 2)
    v.check_nonempty(fn, "x", x.shape, sp, "spatial cell (the max of none has no value)")
    cfg, c_axis = (layout, tuple(x.shape)), -1 if layout == "channels_last" else 1
    return auto_partitioned(lambda x: _global_max_pool(x, cfg), x, out=((0, 0), (0, c_axis)))


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _global_max_pool(x, cfg):
    return _global_max_pool_fwd(x, cfg)[0]


def _global_max_pool_fwd(x, cfg):
    x2, ax = _flat(x, cfg[0])
    idx = jnp.argmax(x2, axis=ax).astype(_I32)  # first max; NaN counts as the max
    y = jnp.take_along_axis(x2, jnp.expand_dims(idx, ax), axis=ax).squeeze(ax)
    return y, name(idx, "global_max_pool", "index")


def _global_max_pool_bwd(cfg, idx, g):
    layout, x_shape = cfg
    ax = 1 if layout == "channels_last" else 2
    size = 1
    for s in split_layout(x_shape, layout)[1]:
        size *= s
    shape2 = (x_shape[0], size, g.shape[1]) if ax == 1 else (x_shape[0], g.shape[1], size)
    hit = lax.broadcasted_iota(_I32, shape2, ax) == jnp.expand_dims(idx, ax)
    dx = jnp.where(hit, jnp.expand_dims(g, ax), jnp.zeros((), g.dtype))
    return (dx.reshape(x_shape),)


_global_max_pool.defvjp(_global_max_pool_fwd, _global_max_pool_bwd)
