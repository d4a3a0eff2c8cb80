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

Public here: `conv_input_grad` and `conv_weight_grad` (like `torch.nn.grad.conv2d_input` /
`conv2d_weight`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv import _validate as v
from jaxconv._auto import geometry
from jaxconv._dtypes import accumulation, widest
from jaxconv._lowering import Geometry, compute
from jaxconv._remat import name
from jaxconv._sharding import auto_partitioned
from jaxconv._spec import ConvSpec, make_spec, output_shape
from jaxconv._types import Array, ArrayLike, DTypeLike, Ints, Padding, Shape


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


# --------------------------------------------------------------------------- layouts


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


# --------------------------------------------------------------------------- public


def _check_g(fn: str, spec: ConvSpec, x_shape, w_shape, g, other: str, a) -> None:
    v.check_inexact(fn, "g", g)
    v.check_same_dtype(fn, **{other: a}, g=g)
    expected = output_shape(spec, x_shape, w_shape)
    if tuple(g.shape) != expected:
        v.fail(
            fn,
            "g.shape",
            tuple(g.shape),
            f"must be the conv output shape {expected} for "
            f"input {tuple(x_shape)} and kernel {tuple(w_shape)}",
        )


def conv_input_grad(
    input_shape: Shape,
    w: ArrayLike,
    g: ArrayLike,
    *,
    stride: Ints = 1,
    padding: Padding = "VALID",
    dilation: Ints = 1,
    groups: int = 1,
    flip: bool = False,
    layout: str = "channels_last",
    backward: str = "auto",
    precision: object = None,
    preferred_element_type: DTypeLike | None = None,
) -> Array:
    """dL/dx of ``y = conv(x, w, ...)`` given g = dL/dy: a transposed convolution.

    .. math:: dx[i] = \\sum_{j, m:\\; j s + m d - lo = i} g[j]\\, w[m]
              = (\\text{dilate}_s(g) \\star \\text{rot180}(w))[i]

    Args:
      input_shape: the shape of x, (N, *spatial, C_in) or (N, C_in, *spatial).
      w: kernel, (*k, C_in // groups, C_out) or (C_out, C_in // groups, *k).
      g: gradient of the output, the shape `conv` gives for `input_shape`.
      stride, padding, dilation, groups, flip, layout, precision, preferred_element_type:
        the forward convolution's settings (zero padding), see `conv`.
      backward: the algorithm: "auto", "lean", "transpose" (zero-dilated g, one lax convolution),
        "phase" (polyphase, stride^D stride-1 convolutions), "matmul" (im2col/col2im).
    Returns:
      dx of shape `input_shape`.

    Example:
      >>> import jax.numpy as jnp
      >>> w, g = jnp.ones((3, 3, 2, 4)), jnp.ones((1, 3, 3, 4))
      >>> conv_input_grad((1, 5, 5, 2), w, g)[0, :, :, 0].tolist()[0]  # taps reaching each x
      [4.0, 8.0, 12.0, 8.0, 4.0]
    """
    fn = "conv_input_grad"
    v.check_inexact(fn, "w", w)
    v.check_pet_width(fn, preferred_element_type, w)
    x_shape = v.as_np_shape(fn, "input_shape", input_shape)
    spec = make_spec(
        fn,
        x_shape,
        w.shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        flip=flip,
        layout=layout,
        backward=backward,
        precision=precision,
        preferred_element_type=preferred_element_type,
        x_arg="input_shape",
    )
    _check_g(fn, spec, x_shape, w.shape, g, "w", w)
    geo = geometry(spec, x_shape, w.shape)

    def run(w, g):
        return from_cl(
            input_grad_cl(geo, kernel_to_cl(w, layout, spec.flip), to_cl(g, layout)), layout
        )

    c_in = (0, kernel_in_axis(layout)) if geo.groups == 1 else None
    return auto_partitioned(run, w, g, out=act_out(g.ndim, layout, 1, c_in), batch=(1,))


def conv_weight_grad(
    x: ArrayLike,
    weight_shape: Shape,
    g: ArrayLike,
    *,
    stride: Ints = 1,
    padding: Padding = "VALID",
    dilation: Ints = 1,
    groups: int = 1,
    flip: bool = False,
    layout: str = "channels_last",
    backward: str = "auto",
    precision: object = None,
    preferred_element_type: DTypeLike | None = None,
) -> Array:
    """dL/dw of ``y = conv(x, w, ...)`` given g = dL/dy: x correlated with g.

    .. math:: dw[m, c, f] = \\sum_{n, j} g[n, j, f]\\, \\tilde x[n, j s + m d, c]

    (x̃ the zero-padded input; weight sharing sums over every window: seeds 001 Eq. 13-14,
    003, 004.)

    Args:
      x: input, (N, *spatial, C_in) or (N, C_in, *spatial).
      weight_shape: the kernel's shape, (*k, C_in // groups, C_out) or (C_out, C_in // groups, *k).
      g: gradient of the output, the shape `conv` gives.
      other settings: as `conv_input_grad`.
    Returns:
      dw of shape `weight_shape`.

    Example:
      >>> import jax.numpy as jnp
      >>> x, g = jnp.ones((1, 5, 5, 2)), jnp.ones((1, 3, 3, 4))
      >>> conv_weight_grad(x, (3, 3, 2, 4), g)[0, 0].tolist()  # 9 windows share each weight
      [[9.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]]
    """
    fn = "conv_weight_grad"
    v.check_inexact(fn, "x", x)
    v.check_pet_width(fn, preferred_element_type, x)
    w_shape = v.as_np_shape(fn, "weight_shape", weight_shape)
    spec = make_spec(
        fn,
        x.shape,
        w_shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        flip=flip,
        layout=layout,
        backward=backward,
        precision=precision,
        preferred_element_type=preferred_element_type,
        w_arg="weight_shape",
    )
    _check_g(fn, spec, x.shape, w_shape, g, "x", x)
    geo = geometry(spec, x.shape, w_shape)

    def run(x, g):
        return kernel_from_cl(
            weight_grad_cl(geo, to_cl(x, layout), to_cl(g, layout)), layout, spec.flip
        )

    c = x.ndim - 1 if layout == "channels_last" else 1
    out = [None] * x.ndim  # dw: C_in // G like x's channels (groups == 1), C_out like g's
    out[-1 if layout == "channels_last" else 0] = (1, c)
    out[kernel_in_axis(layout)] = (0, c) if geo.groups == 1 else None
    return auto_partitioned(run, x, g, out=out, batch=(0, 1))
