"""Routing by flat index: `max_unpool` (max pooling's backward as a forward op) and
`global_max_pool` (whose residual is the winner's flat index).

A flat index is row-major over the spatial dims of one (n, c): ``idx = sum_a pos_a prod_{b>a} n_b``.
`max_unpool` is linear in y: a primitive whose JVP is itself on the tangent and whose transpose
is the gather at the indices (`_flat_index.py`). `global_max_pool` is a `jax.custom_jvp` whose
rule returns the tangent at the winner (a linear primitive of the winner's index, the residual)
and whose transpose places the gradient on the winner.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv import _validate as v
from jaxconv._flat_index import flat, pick, scatter
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
    return auto_partitioned(
        lambda y, i: scatter(y, _in_range(i, shape), layout, shape), y, indices, batch=(0, 1)
    )


def _in_range(indices, shape):
    """The indices as int32, those outside the output replaced by its size (then dropped).
    The range is tested in the indices' own dtype (a wide index must not wrap into range);
    a narrow dtype cannot hold `size`, and all its values are compared as they are."""
    size = math.prod(shape)
    if jnp.iinfo(indices.dtype).max >= size:
        inside = (indices >= 0) & (indices < jnp.asarray(size, indices.dtype))
    else:
        inside = indices >= 0
    return jnp.where(inside, indices.astype(_I32), size)


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
    c_axis = -1 if layout == "channels_last" else 1
    return auto_partitioned(lambda x: _global_max_pool(x, layout)[0], x, out=((0, 0), (0, c_axis)))


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _global_max_pool(x, layout: str):
    """y and the flat index of its first (row-major) maximum per (n, c); NaN counts as the
    maximum."""
    x2, ax = flat(x, layout)
    idx = jnp.argmax(x2, axis=ax).astype(_I32)
    y = jnp.take_along_axis(x2, jnp.expand_dims(idx, ax), axis=ax).squeeze(ax)
    return y, idx


@_global_max_pool.defjvp
def _global_max_pool_jvp(layout, primals, tangents):
    """The tangent at the winner (`_flat_index.pick`), whose transpose places g there."""
    (x,), (t,) = primals, tangents
    y, idx = _global_max_pool(x, layout)  # a second derivative runs this rule again
    idx = name(idx, "global_max_pool", "index")
    return (y, idx), (pick(t, idx, layout), np.zeros(idx.shape, jax.dtypes.float0))
