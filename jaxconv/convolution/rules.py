"""The convolution family's three bilinear maps, as primitives with the rules written here.

With A_w x = conv(x, w) = B_x w, the family is closed under transposition:

- ``conv(x, w)``; transposes: w.r.t. x, ``input_grad(w, g)`` = A_w^T g; w.r.t. w,
  ``weight_grad(x, g)`` = B_x^T g -- the documents' backward passes (seeds 000-004).
- ``input_grad(w, g)``; for a cotangent c of dx's shape: w.r.t. g, <c, A_w^T g> = <A_w c, g>
  gives ``conv(c, w)``; w.r.t. w, <conv(c, w), g> gives ``weight_grad(c, g)``.
- ``weight_grad(x, g)``; for c of w's shape: w.r.t. g, ``conv(x, c)``; w.r.t. x,
  ``input_grad(c, g)``.

Each is bilinear, so its JVP is itself applied to the tangents, one argument at a time:
``d conv(x, w) = conv(dx, w) + conv(x, dw)`` (forward mode: jvp, linearize, jacfwd, the forward
half of jvp-of-grad and hessian); JAX's reverse mode transposes that linear map with the rules
above (the backward passes), so every derivative of every order, in either direction, runs on
these three maps, whatever algorithm computes each value (`lowering/`, chosen per platform by
`lowering.choice`). All three work in channels-last form on a static `Geometry`; the public
functions (`api.py`: conv, conv_transpose, conv_input_grad, conv_weight_grad; `general.py`: the
drop-in) convert layouts at the edge. The residuals of reverse mode are the primal operands
themselves, named for remat policies (`jaxconv.conv.x`, `jaxconv.conv.w`).

This module reads top to bottom: the vmap helpers, then per primitive its forward, its two
transposes and its batching rule, registered together by `_register`.

vmap: a mapped axis folded into an axis a convolution has.

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

B = 0 folds into nothing (0 groups, an extent lost): its empty result comes from abstract
evaluation of the unbatched primitive (`_core.primitive.batching_rule`).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.interpreters import ad, mlir

from jaxconv._core.bias import add_bias
from jaxconv._core.dtypes import accumulation, widest
from jaxconv._core.primitive import (
    batching_rule,
    fold_batch,
    moved,
    primitive,
    unfold_batch,
)
from jaxconv._core.residuals import name
from jaxconv.convolution.lowering.choice import compute, rebatched
from jaxconv.convolution.lowering.geometry import Geometry
from jaxconv.convolution.lowering.native import cpu_lowering


def _out_dtype(geo, *arrays):
    return geo.pet or widest(*arrays)


def _acc(geo, *arrays):
    """`geo` computing with float32 accumulation when the operands are float16/bfloat16 and no
    `preferred_element_type` was asked for (results are cast back to the operands' dtype)."""
    acc = accumulation(widest(*arrays))
    return geo._replace(pet=acc) if geo.pet is None and acc is not None else geo


def common(*arrays, like=()):
    """`arrays` cast to one dtype (also covering the dtypes of the avals `like`): a cotangent
    can be wider than the operands (a wider `preferred_element_type`), and lax convolutions
    take one operand dtype."""
    t = widest(*arrays, *(a.aval.dtype for a in like))
    return tuple(a.astype(t) for a in arrays)


def _adjoint(prim, geo, undefined, a, b):
    """``prim(a, b)`` for the transpose w.r.t. `undefined` (an `ad.UndefinedPrimal`): the two
    operands in one dtype, the result in the undefined primal's dtype."""
    a, b = common(a, b, like=(undefined,))
    return prim.bind(a, b, geo=geo).astype(undefined.aval.dtype)


def _register(prim, transpose_a, transpose_b, batch_rule):
    """`prim`'s rules: bilinear JVP, the two transposes, and `batch_rule(bind, geo, args, dims)`
    for a mapped axis of size > 0. A mapped axis of size 0 is answered by `batching_rule`
    (an empty result from abstract evaluation): folded into N, channels or groups it would
    leave an empty axis whose extent is lost (unfolding divides by 0) or 0 groups."""
    ad.defbilinear(prim, transpose_a, transpose_b)
    bind = lambda a, b, g: prim.bind(a, b, geo=g)  # noqa: E731
    batching_rule(prim, lambda args, dims, geo: batch_rule(bind, geo, args, dims))


# --------------------------------------------------------------------------- vmap helpers


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


# --------------------------------------------------------------------------- conv


def _conv(x, w, *, geo: Geometry):
    """y = A_w x, computed by `geo.fwd` (on CPU; `geo.elsewhere` on other platforms)."""
    return compute("fwd", _acc(geo, x, w), x, w, _out_dtype(geo, x, w))


conv_p = primitive("conv", _conv, ("geo",))
mlir.register_lowering(conv_p, cpu_lowering(_conv), platform="cpu")


def _conv_t_x(ct, x, w, *, geo):  # dx = A_w^T ct: the transposed convolution
    return _adjoint(input_grad_p, geo, x, w, ct)


def _conv_t_w(ct, x, w, *, geo):  # dw = B_x^T ct: x correlated with the gradient
    return _adjoint(weight_grad_p, geo, w, x, ct)


def _batch_conv(bind, geo, args, dims):
    """vmap of ``y = conv(x, w)``; `bind(x, w, geo)` is the unbatched primitive. Only for a
    mapped size > 0: size 0 gets an empty result from `_register` (0 groups, a division by 0)."""
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


_register(conv_p, _conv_t_x, _conv_t_w, _batch_conv)


# --------------------------------------------------------------------------- input_grad


def _input_grad(w, g, *, geo: Geometry):
    """dx = A_w^T g, computed by `geo.dx` ("transpose", "phase", "matmul", "taps", "shift")."""
    dx = compute("dx", _acc(geo, w, g), g, w, _out_dtype(geo, w, g))
    assert dx.shape[:-1] == geo.x_shape[:-1], (dx.shape, geo.x_shape)
    return dx


input_grad_p = primitive("input_grad", _input_grad, ("geo",))
mlir.register_lowering(input_grad_p, cpu_lowering(_input_grad), platform="cpu")


def _input_grad_t_w(c, w, g, *, geo):  # <conv(c, w), g> = <w, weight_grad(c, g)>
    return _adjoint(weight_grad_p, geo, w, c, g)


def _input_grad_t_g(c, w, g, *, geo):  # <c, A_w^T g> = <A_w c, g>
    return _adjoint(conv_p, geo, g, c, w)


def _batch_input_grad(bind, geo, args, dims):
    """vmap of ``dx = input_grad(w, g)``; `bind(w, g, geo)`. Mapped size > 0 only (size 0:
    an empty result, `_register`)."""
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


_register(input_grad_p, _input_grad_t_w, _input_grad_t_g, _batch_input_grad)


# --------------------------------------------------------------------------- weight_grad


def _weight_grad(x, g, *, geo: Geometry):
    """dw = B_x^T g, computed by `geo.dw` ("xla", "matmul", "shift")."""
    dw = compute("dw", _acc(geo, x, g), x, g, _out_dtype(geo, x, g))
    assert dw.shape == geo.w_shape, (dw.shape, geo.w_shape)
    return dw


weight_grad_p = primitive("weight_grad", _weight_grad, ("geo",))
mlir.register_lowering(weight_grad_p, cpu_lowering(_weight_grad), platform="cpu")


def _weight_grad_t_x(c, x, g, *, geo):  # <c, B_x^T g> = <conv(x, c), g> = <x, input_grad(c, g)>
    return _adjoint(input_grad_p, geo, x, c, g)


def _weight_grad_t_g(c, x, g, *, geo):  # <c, B_x^T g> = <conv(x, c), g>
    return _adjoint(conv_p, geo, g, x, c)


def _batch_weight_grad(bind, geo, args, dims):
    """vmap of ``dw = weight_grad(x, g)``; `bind(x, g, geo)`. Mapped size > 0 only (size 0:
    an empty result, `_register`)."""
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


_register(weight_grad_p, _weight_grad_t_x, _weight_grad_t_g, _batch_weight_grad)


# --------------------------------------------------------------------------- entry points


def conv_cl(geo: Geometry, x, w, b):
    """Channels-last convolution plus bias (None allowed)."""
    y = conv_p.bind(name(x, "conv", "x"), name(w, "conv", "w"), geo=geo)
    return add_bias(y, b)


def input_grad_cl(geo: Geometry, w, g):
    return input_grad_p.bind(w, g, geo=geo)


def weight_grad_cl(geo: Geometry, x, g):
    return weight_grad_p.bind(x, g, geo=geo)
