"""The losses' linear maps: their tangents (to a scalar) and transposes (the backward passes).

`nb` leading axes of every operand are a batch (vmap); the rest is summed. With c = `count`::

    dot(u, d)      = sum u · d / c          scale(g, d) = d · (g / c)          (bilinear)
    xent(z', p, l) = sum_{n,k} (p - onehot(l)) · z' / N
    xent_t(g, p, l) = (p - onehot(l)) · (g / N)        (N = the rows of p)

`dot` is the tangent of mse_loss (u = y' - t', d = y - t, c = 1 or the element count); its
transpose in u is `scale`, seed 001's dE/dy = (y - t) scaled by the cotangent, and the
transpose of `scale` in g is `dot` again; both are bilinear, so a second derivative that moves
d runs on them too. `xent` is the tangent of softmax_cross_entropy, linear in z' with the
softmax p and the labels l as coefficients (the residuals); its transpose is `xent_t`, the
hand-written backward, and vice versa; moving p gives ``dot(z', p', N)`` and
``scale(g, p', N)``. 16-bit operands sum in float32. Batching: the mapped axis first, a batch
axis more.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.interpreters import ad, batching

from jaxconv._dtypes import accumulation
from jaxconv._linmap import broadcast_moved, coefficients
from jaxconv._primitive import linear, primitive


def _rest(a, nb):
    return tuple(range(nb, a.ndim))


def _dot(u, d, *, count, nb):
    acc = accumulation(d.dtype) or d.dtype
    total = jnp.sum(u.astype(acc) * d.astype(acc), axis=_rest(d, nb))
    return (total / count).astype(d.dtype)


def _scale(g, d, *, count, nb):
    return d * (g / count).reshape(g.shape + (1,) * (d.ndim - nb))


dot_p = primitive("loss_dot", _dot, ("count", "nb"))
scale_p = primitive("loss_scale", _scale, ("count", "nb"))
ad.defbilinear(
    dot_p,
    lambda ct, u, d, **kw: scale_p.bind(ct, d, **kw),
    lambda ct, u, d, **kw: scale_p.bind(ct, u, **kw),
)
ad.defbilinear(
    scale_p,
    lambda c, g, d, **kw: dot_p.bind(c, d, **kw),
    lambda c, g, d, **kw: scale_p.bind(g, c, **kw),
)


def _batched(prim):
    def rule(args, dims, *, nb, **params):
        args, _ = broadcast_moved(args, dims)
        return prim.bind(*args, nb=nb + 1, **params), 0

    return rule


batching.primitive_batchers[dot_p] = _batched(dot_p)
batching.primitive_batchers[scale_p] = _batched(scale_p)


def dot(u, d, count: int):
    return dot_p.bind(u, d, count=count, nb=0)


# --------------------------------------------------------------------------- cross-entropy


def _minus_onehot(p, labels, nb):
    hot = lax.broadcasted_iota(labels.dtype, p.shape, nb + 1) == labels[..., None]
    return p - hot.astype(p.dtype)


def _xent(z, p, labels, *, nb):
    acc = accumulation(p.dtype) or p.dtype
    total = jnp.sum(_minus_onehot(p, labels, nb).astype(acc) * z.astype(acc), axis=_rest(p, nb))
    return (total / p.shape[nb]).astype(p.dtype)


def _xent_t(g, p, labels, *, nb):
    scale = (g / p.shape[nb]).reshape(g.shape + (1, 1))
    return _minus_onehot(p, labels, nb) * scale


xent_p = primitive("softmax_cross_entropy_tangent", _xent, ("nb",))
xent_t_p = primitive("softmax_cross_entropy_backward", _xent_t, ("nb",))
linear(
    xent_p,
    (0,),
    lambda ct, z, p, labels, *, nb: (xent_t_p.bind(ct, p, labels, nb=nb),),
    _batched(xent_p),
)
linear(
    xent_t_p,
    (0,),
    lambda ct, g, p, labels, *, nb: (xent_p.bind(ct, p, labels, nb=nb),),
    _batched(xent_t_p),
)


def _rows(p, nb):
    return p.shape[nb]


coefficients(
    xent_p,
    (0,),
    lambda prim, tan, *, nb: dot_p.bind(prim[0], tan[1], count=_rows(prim[1], nb), nb=nb),
)
coefficients(
    xent_t_p,
    (0,),
    lambda prim, tan, *, nb: scale_p.bind(prim[0], tan[1], count=_rows(prim[1], nb), nb=nb),
)


def xent(z, p, labels):
    return xent_p.bind(z, p, labels, nb=0)
