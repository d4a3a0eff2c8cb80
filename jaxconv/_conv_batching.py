"""vmap of the convolution family: a mapped axis folded into an axis a convolution has.

Channels-last, B the mapped size, x ``(B, N, *n, C)``, w ``(B, *k, C_g, F)``, g
``(B, N, *o, F)``, C = G C_g, F = G F_g. Every batched call is one unbatched call of the same
primitive on a layer with other shapes (its algorithms chosen again for them):

- only the activation mapped (x of conv / weight_grad, g of input_grad, ...): B joins N;
- only the kernel mapped, conv: the B kernels side by side as more output channels of each
  group, ``w' (*k, C_g, G B F_g)`` (channel order (group, b, j)); y' splits back;
- only w mapped in input_grad, or only x in weight_grad: the B copies side by side as more
  input channels of each group, order (group, b, c): ``conv(x', w')`` with
  ``w'[.., (b, c), f] = w_b[.., c, f]`` is ``sum_b conv(x_b, w_b)``, whose two gradients are
  the B gradients stacked;
- only g mapped in weight_grad: the B copies as more output channels (as the conv kernel);
- both mapped: B G groups, activations and kernels with channel order (b, group, c).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxconv._auto import rebatched
from jaxconv._primitive import fold_batch, moved, unfold_batch


def _to_channels(a, groups: int, inner: bool):
    """(B, ..., C) -> (..., B C): order (b, c) (``inner=False``) or (group, b, c_g)."""
    size = a.shape[0]
    if not inner:
        a = jnp.moveaxis(a, 0, -2)
        return a.reshape(*a.shape[:-2], size * a.shape[-1])
    a = a.reshape(*a.shape[:-1], groups, a.shape[-1] // groups)
    a = jnp.moveaxis(a, 0, -2)  # (..., G, B, C_g)
    return a.reshape(*a.shape[:-3], -1)


def _from_channels(a, size: int, groups: int, inner: bool):
    """The inverse of `_to_channels`: (..., B C) -> (B, ..., C)."""
    if not inner:
        a = a.reshape(*a.shape[:-1], size, a.shape[-1] // size)
        return jnp.moveaxis(a, -2, 0)
    a = a.reshape(*a.shape[:-1], groups, size, a.shape[-1] // (groups * size))
    a = jnp.moveaxis(a, -2, 0)  # (B, ..., G, C_g)
    return a.reshape(*a.shape[:-2], -1)


def _kernel_in(w):
    """(B, *k, C_g, F) -> (*k, B C_g, F), input channels of each group in order (b, c)."""
    w = jnp.moveaxis(w, 0, -3)
    return w.reshape(*w.shape[:-3], -1, w.shape[-1])


def _kernel_in_back(dw, size: int):
    dw = dw.reshape(*dw.shape[:-2], size, dw.shape[-2] // size, dw.shape[-1])
    return jnp.moveaxis(dw, -3, 0)


def _shape(a):
    return tuple(a.shape)


def conv(bind, geo, args, dims):
    """vmap of ``y = conv(x, w)``; `bind(x, w, geo)` is the unbatched primitive."""
    (x, w), size = moved(args, dims)
    G = geo.groups
    if dims[1] is None:  # activation only
        x = fold_batch(x)
        y = bind(x, w, rebatched(geo, _shape(x), _shape(w), G))
        return unfold_batch(y, size), 0
    if dims[0] is None:  # kernel only: more output channels per group
        w2 = _to_channels(w, G, inner=True)
        y = bind(x, w2, rebatched(geo, _shape(x), _shape(w2), G))
        return _from_channels(y, size, G, inner=True), 0
    x2, w2 = _to_channels(x, G, False), _to_channels(w, G, False)
    y = bind(x2, w2, rebatched(geo, _shape(x2), _shape(w2), size * G))
    return _from_channels(y, size, G, False), 0


def input_grad(bind, geo, args, dims):
    """vmap of ``dx = input_grad(w, g)``; `bind(w, g, geo)`."""
    (w, g), size = moved(args, dims)
    G, (n, *sp, c) = geo.groups, geo.x_shape
    if dims[0] is None:  # gradient only
        g = fold_batch(g)
        dx = bind(w, g, rebatched(geo, (size * n, *sp, c), _shape(w), G))
        return unfold_batch(dx, size), 0
    if dims[1] is None:  # kernel only: B copies of x side by side per group
        w2 = _kernel_in(w)
        dx = bind(w2, g, rebatched(geo, (n, *sp, size * c), _shape(w2), G))
        return _from_channels(dx, size, G, inner=True), 0
    w2, g2 = _to_channels(w, G, False), _to_channels(g, G, False)
    dx = bind(w2, g2, rebatched(geo, (n, *sp, size * c), _shape(w2), size * G))
    return _from_channels(dx, size, G, False), 0


def weight_grad(bind, geo, args, dims):
    """vmap of ``dw = weight_grad(x, g)``; `bind(x, g, geo)`."""
    (x, g), size = moved(args, dims)
    G, (*k, cg, f) = geo.groups, geo.w_shape
    if dims[1] is None:  # input only: B copies side by side as input channels per group
        x2 = _to_channels(x, G, inner=True)
        dw = bind(x2, g, rebatched(geo, _shape(x2), (*k, size * cg, f), G))
        return _kernel_in_back(dw, size), 0
    if dims[0] is None:  # gradient only: B copies as output channels per group
        g2 = _to_channels(g, G, inner=True)
        dw = bind(x, g2, rebatched(geo, _shape(x), (*k, cg, size * f), G))
        return _from_channels(dw, size, G, inner=True), 0
    x2, g2 = _to_channels(x, G, False), _to_channels(g, G, False)
    dw = bind(x2, g2, rebatched(geo, _shape(x2), (*k, cg, size * f), size * G))
    return _from_channels(dw, size, G, False), 0
