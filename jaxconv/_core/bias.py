"""Bias addition, ``y + b[f]`` along the channels-last axis: a linear primitive whose transpose
is the bias gradient of the documents, ``db[f] = sum_{n, i} g[n, i, f]`` (accumulated in float32
for float16/bfloat16), shared by the convolution family and `linear`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.interpreters import ad

from jaxconv._core.dtypes import accumulation
from jaxconv._core.primitive import is_zero, linear, moved, primitive, zeros_like_aval


def _bias_add(y, b):
    return y + b.astype(y.dtype).reshape((1,) * (y.ndim - 1) + b.shape)


bias_add_p = primitive("bias_add", _bias_add, ())


def bias_grad(g, dtype):
    """db[f] = g summed over batch and space (channels-last), accumulated in float32 for
    float16/bfloat16."""
    return jnp.sum(g, axis=tuple(range(g.ndim - 1)), dtype=accumulation(g.dtype)).astype(dtype)


def _bias_add_t(ct, y, b):
    return ct.astype(y.aval.dtype), bias_grad(ct, b.aval.dtype)


def _bias_add_batch(args, dims):
    """The mapped copies of y side by side as channels, each with its own bias. A mapped size
    of 0 never gets here (`linear` registers it through `batching_rule`: an empty result from
    abstract evaluation), as reshaping an empty fold back with -1 is ambiguous."""
    (y, b), size = moved(args, dims)
    if dims[1] is None:
        y = y.reshape(size * y.shape[1], *y.shape[2:])
        return bias_add_p.bind(y, b).reshape(size, -1, *y.shape[1:]), 0
    if dims[0] is None:
        y = jnp.broadcast_to(y, (size, *y.shape))
    y2 = jnp.moveaxis(y, 0, -2).reshape(*y.shape[1:-1], size * y.shape[-1])
    out = bias_add_p.bind(y2, b.reshape(-1))
    return jnp.moveaxis(out.reshape(*y.shape[1:-1], size, y.shape[-1]), -2, 0), 0


linear(bias_add_p, (0, 1), _bias_add_t, _bias_add_batch)


def _bias_add_jvp(primals, tangents):
    """d(y + b) = dy + db; without a bias tangent just dy (no zero bias kept as a residual)."""
    out = bias_add_p.bind(*primals)
    dy, db = tangents
    if is_zero(db):
        return out, dy if is_zero(dy) else dy.astype(out.dtype)
    return out, bias_add_p.bind(zeros_like_aval(dy) if is_zero(dy) else dy, db)


ad.primitive_jvps[bias_add_p] = _bias_add_jvp


def add_bias(y, b):
    """y + b[f] along y's last (channels-last) axis; db = g summed over batch and space."""
    return y if b is None else bias_add_p.bind(y, b)
