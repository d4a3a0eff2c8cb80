"""`conv_input_grad` and `conv_weight_grad`: a convolution's two gradients as public functions
(like `torch.nn.grad.conv2d_input` / `conv2d_weight`), on the rules of `_backward.py`."""

from __future__ import annotations

from jaxconv import _validate as v
from jaxconv._auto import geometry
from jaxconv._backward import input_grad_cl, weight_grad_cl
from jaxconv._layout import act_out, from_cl, kernel_from_cl, kernel_in_axis, kernel_to_cl, to_cl
from jaxconv._sharding import auto_partitioned
from jaxconv._spec import ConvOptions, ConvSpec, make_spec, output_shape
from jaxconv._types import Array, ArrayLike, DTypeLike, Ints, Padding, Shape


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
    opts = ConvOptions.of(locals())  # first: the arguments only
    fn = "conv_input_grad"
    v.check_inexact(fn, "w", w)
    v.check_pet_width(fn, preferred_element_type, w)
    x_shape = v.as_np_shape(fn, "input_shape", input_shape)
    spec = make_spec(fn, x_shape, w.shape, opts, x_arg="input_shape")
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
    opts = ConvOptions.of(locals())  # first: the arguments only
    fn = "conv_weight_grad"
    v.check_inexact(fn, "x", x)
    v.check_pet_width(fn, preferred_element_type, x)
    w_shape = v.as_np_shape(fn, "weight_shape", weight_shape)
    spec = make_spec(fn, x.shape, w_shape, opts, w_arg="weight_shape")
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
