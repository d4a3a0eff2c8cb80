"""The convolution family's three linear maps and their explicit VJPs.

With A_w x = conv(x, w) = B_x w, the family is closed under transposition:

- ``conv(x, w)``; VJP: dx = ``input_grad(w, g)`` = A_w^T g, dw = ``weight_grad(x, g)`` = B_x^T g.
- ``input_grad(w, g)``; VJP for a cotangent c of dx's shape: w.r.t. g, <c, A_w^T g> =
  <A_w c, g> gives ``conv(c, w)``; w.r.t. w, <conv(c, w), g> gives ``weight_grad(c, g)``.
- ``weight_grad(x, g)``; VJP for c of w's shape: w.r.t. g, ``conv(x, c)``; w.r.t. x,
  ``input_grad(c, g)``.

So every derivative of every order runs on these three rules, whatever algorithm (`_lowering`)
computes each value. All three work in channels-last form on a static `Geometry`; the public
functions convert layouts at the edge.

The public functions on these rules: `conv` (`_conv.py`), `conv_transpose`
(`_conv_transpose.py`), `conv_input_grad` / `conv_weight_grad` (`_conv_grads.py`) and the
drop-in `conv_general_dilated` (`_general.py`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxconv._dtypes import accumulation, widest
from jaxconv._geometry import Geometry
from jaxconv._lowering import compute
from jaxconv._remat import name


def add_bias(y, b):
    """y + b[f] along y's last (channels-last) axis."""
    return y if b is None else y + b.astype(y.dtype).reshape((1,) * (y.ndim - 1) + b.shape)


def bias_grad(g, b):
    """db[f] = g summed over batch and space (channels-last); None without a bias."""
    if b is None:
        return None
    return jnp.sum(g, axis=tuple(range(g.ndim - 1)), dtype=accumulation(g.dtype)).astype(b.dtype)


def _out_dtype(geo, *arrays):
    return geo.pet or widest(*arrays)


def _acc(geo, *arrays):
    """`geo` computing with float32 accumulation when the operands are float16/bfloat16 and no
    `preferred_element_type` was asked for (results are cast back to the operands' dtype)."""
    acc = accumulation(widest(*arrays))
    return geo._replace(pet=acc) if geo.pet is None and acc is not None else geo


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def conv_cl(geo: Geometry, x, w, b):
    """Channels-last convolution plus bias (None allowed), computed by `geo.fwd` (on CPU;
    `geo.elsewhere` on other platforms: `_lowering.compute`)."""
    return add_bias(compute("fwd", _acc(geo, x, w), x, w, _out_dtype(geo, x, w)), b)


def _conv_fwd(geo, x, w, b):
    return conv_cl(geo, x, w, b), (name(x, "conv", "x"), name(w, "conv", "w"), b)


def common(*arrays):
    """`arrays` cast to one dtype: a cotangent can be wider than the operands (a wider
    `preferred_element_type`), and lax convolutions take one operand dtype."""
    t = widest(*arrays)
    return tuple(a.astype(t) for a in arrays)


def _conv_bwd(geo, res, g):
    x0, w0, b = res
    x, w, g = common(x0, w0, g)
    with jax.named_scope("jaxconv_bwd"):
        dx = input_grad_cl(geo, w, g).astype(x0.dtype)
        dw = weight_grad_cl(geo, x, g).astype(w0.dtype)
        db = bias_grad(g, b)
    return dx, dw, db


conv_cl.defvjp(_conv_fwd, _conv_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def input_grad_cl(geo: Geometry, w, g):
    """dx = A_w^T g, computed by `geo.dx` ("transpose", "phase", "matmul", "shift")."""
    dx = compute("dx", _acc(geo, w, g), g, w, _out_dtype(geo, w, g))
    assert dx.shape[:-1] == geo.x_shape[:-1], (dx.shape, geo.x_shape)
    return dx


def _input_grad_fwd(geo, w, g):
    return input_grad_cl(geo, w, g), (w, g)


def _input_grad_bwd(geo, res, c):
    w0, g0 = res
    w, g, c = common(w0, g0, c)
    with jax.named_scope("jaxconv_bwd"):
        dw = weight_grad_cl(geo, c, g).astype(w0.dtype)
        dg = conv_cl(geo, c, w, None).astype(g0.dtype)
    return dw, dg


input_grad_cl.defvjp(_input_grad_fwd, _input_grad_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def weight_grad_cl(geo: Geometry, x, g):
    """dw = B_x^T g, computed by `geo.dw` ("xla", "matmul", "shift")."""
    dw = compute("dw", _acc(geo, x, g), x, g, _out_dtype(geo, x, g))
    assert dw.shape == geo.w_shape, (dw.shape, geo.w_shape)
    return dw


def _weight_grad_fwd(geo, x, g):
    return weight_grad_cl(geo, x, g), (x, g)


def _weight_grad_bwd(geo, res, c):
    x0, g0 = res
    x, g, c = common(x0, g0, c)
    with jax.named_scope("jaxconv_bwd"):
        dx = input_grad_cl(geo, c, g).astype(x0.dtype)
        dg = conv_cl(geo, x, c, None).astype(g0.dtype)
    return dx, dg


weight_grad_cl.defvjp(_weight_grad_fwd, _weight_grad_bwd)
