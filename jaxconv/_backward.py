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
above (today's backward passes), so every derivative of every order, in either direction, runs
on these three maps, whatever algorithm (`_lowering`) computes each value. vmap folds the mapped
axis into a batch, channel or group axis (`_conv_batching`). All three work in channels-last
form on a static `Geometry`; the public functions convert layouts at the edge: `conv`
(`_conv.py`), `conv_transpose` (`_conv_transpose.py`), `conv_input_grad` / `conv_weight_grad`
(`_conv_grads.py`) and the drop-in `conv_general_dilated` (`_general.py`). The residuals of
reverse mode are the primal operands themselves, named for remat policies
(`jaxconv.conv.x`, `jaxconv.conv.w`).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.interpreters import ad, batching

from jaxconv import _conv_batching as batch
from jaxconv._dtypes import accumulation, widest
from jaxconv._geometry import Geometry
from jaxconv._lowering import compute
from jaxconv._primitive import is_zero, linear, moved, primitive, zeros_like_aval
from jaxconv._remat import name


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
    """`prim`'s rules: bilinear JVP, the two transposes, and `batch_rule(bind, geo, args, dims)`."""
    ad.defbilinear(prim, transpose_a, transpose_b)
    bind = lambda a, b, g: prim.bind(a, b, geo=g)  # noqa: E731
    batching.primitive_batchers[prim] = lambda args, dims, geo: batch_rule(bind, geo, args, dims)


# --------------------------------------------------------------------------- conv


def _conv(x, w, *, geo: Geometry):
    """y = A_w x, computed by `geo.fwd` (on CPU; `geo.elsewhere` on other platforms)."""
    return compute("fwd", _acc(geo, x, w), x, w, _out_dtype(geo, x, w))


conv_p = primitive("conv", _conv, ("geo",))


def _conv_t_x(ct, x, w, *, geo):  # dx = A_w^T ct: the transposed convolution
    return _adjoint(input_grad_p, geo, x, w, ct)


def _conv_t_w(ct, x, w, *, geo):  # dw = B_x^T ct: x correlated with the gradient
    return _adjoint(weight_grad_p, geo, w, x, ct)


_register(conv_p, _conv_t_x, _conv_t_w, batch.conv)


# --------------------------------------------------------------------------- input_grad


def _input_grad(w, g, *, geo: Geometry):
    """dx = A_w^T g, computed by `geo.dx` ("transpose", "phase", "matmul", "taps", "shift")."""
    dx = compute("dx", _acc(geo, w, g), g, w, _out_dtype(geo, w, g))
    assert dx.shape[:-1] == geo.x_shape[:-1], (dx.shape, geo.x_shape)
    return dx


input_grad_p = primitive("input_grad", _input_grad, ("geo",))


def _input_grad_t_w(c, w, g, *, geo):  # <conv(c, w), g> = <w, weight_grad(c, g)>
    return _adjoint(weight_grad_p, geo, w, c, g)


def _input_grad_t_g(c, w, g, *, geo):  # <c, A_w^T g> = <A_w c, g>
    return _adjoint(conv_p, geo, g, c, w)


_register(input_grad_p, _input_grad_t_w, _input_grad_t_g, batch.input_grad)


# --------------------------------------------------------------------------- weight_grad


def _weight_grad(x, g, *, geo: Geometry):
    """dw = B_x^T g, computed by `geo.dw` ("xla", "matmul", "shift")."""
    dw = compute("dw", _acc(geo, x, g), x, g, _out_dtype(geo, x, g))
    assert dw.shape == geo.w_shape, (dw.shape, geo.w_shape)
    return dw


weight_grad_p = primitive("weight_grad", _weight_grad, ("geo",))


def _weight_grad_t_x(c, x, g, *, geo):  # <c, B_x^T g> = <conv(x, c), g> = <x, input_grad(c, g)>
    return _adjoint(input_grad_p, geo, x, c, g)


def _weight_grad_t_g(c, x, g, *, geo):  # <c, B_x^T g> = <conv(x, c), g>
    return _adjoint(conv_p, geo, g, x, c)


_register(weight_grad_p, _weight_grad_t_x, _weight_grad_t_g, batch.weight_grad)


# --------------------------------------------------------------------------- bias


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
    """The mapped copies of y side by side as channels, each with its own bias."""
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


# --------------------------------------------------------------------------- entry points


def add_bias(y, b):
    """y + b[f] along y's last (channels-last) axis; db = g summed over batch and space."""
    return y if b is None else bias_add_p.bind(y, b)


def conv_cl(geo: Geometry, x, w, b):
    """Channels-last convolution plus bias (None allowed)."""
    y = conv_p.bind(name(x, "conv", "x"), name(w, "conv", "w"), geo=geo)
    return add_bias(y, b)


def input_grad_cl(geo: Geometry, w, g):
    return input_grad_p.bind(w, g, geo=geo)


def weight_grad_cl(geo: Geometry, x, g):
    return weight_grad_p.bind(x, g, geo=geo)
