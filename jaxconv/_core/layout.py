"""Layouts: the split and join of shapes, and the moves between a layout and channels-last.

Every rule in jaxconv computes in channels-last form, x ``(N, *spatial, C)``, kernel
``(*k, C_in // G, C_out)``; channels_first (PyTorch's ``(N, C, *spatial)``,
``(C_out, C_in // G, *k)``) is converted at the edge of each public function.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def split_layout(shape, layout):
    """(N, spatial, C) from a shape in either layout."""
    if layout == "channels_last":
        return shape[0], tuple(shape[1:-1]), shape[-1]
    return shape[0], tuple(shape[2:]), shape[1]


def join_layout(n, spatial, c, layout):
    if layout == "channels_last":
        return (n, *spatial, c)
    return (n, c, *spatial)


def split_kernel(shape, layout):
    """(k, C_in // groups, C_out) from a kernel shape in either layout."""
    if layout == "channels_last":
        return tuple(shape[:-2]), shape[-2], shape[-1]
    return tuple(shape[2:]), shape[1], shape[0]


def to_cl(a, layout):
    """An activation (N, C, *sp) -> (N, *sp, C); channels_last passes through."""
    return a if layout == "channels_last" else jnp.moveaxis(a, 1, -1)


def from_cl(a, layout):
    return a if layout == "channels_last" else jnp.moveaxis(a, -1, 1)


def kernel_to_cl(w, layout, flip=False):
    """A kernel (C_out, C_in // G, *k) -> (*k, C_in // G, C_out); rot180 when `flip`."""
    if layout == "channels_first":
        w = jnp.transpose(w, (*range(2, w.ndim), 1, 0))
    return lax.rev(w, tuple(range(w.ndim - 2))) if flip else w


def act_out(ndim, layout, act, channel):
    """`auto_partitioned`'s `out` for an activation: batch and space like ``args[act]``,
    channels from `channel` (an ``(arg, axis)`` pair, or None: replicated)."""
    c = ndim - 1 if layout == "channels_last" else 1
    return tuple(channel if i == c else (act, i) for i in range(ndim))


def kernel_in_axis(layout):
    """The C_in // G axis of a kernel in `layout` (its C_out axis is -1 or 0)."""
    return -2 if layout == "channels_last" else 1


def kernel_from_cl(w, layout, flip=False):
    if flip:
        w = lax.rev(w, tuple(range(w.ndim - 2)))
    if layout == "channels_first":
        w = jnp.transpose(w, (w.ndim - 1, w.ndim - 2, *range(w.ndim - 2)))
    return w
