"""The explicit gradients of `conv`: `conv_input_grad` (dL/dx) and `conv_weight_grad` (dL/dw).

These are the pieces every backward pass in the convolution family is made of (like
`torch.nn.grad.conv2d_input` / `conv2d_weight`). Each is built from `conv_general_dilated`'s
custom_vjp core, so differentiating them again (grad-of-grad) also runs on explicit rules:
the VJP of `conv_input_grad` is `conv` (w.r.t. g) and `conv_weight_grad` (w.r.t. w); the VJP of
`conv_weight_grad` is `conv_input_grad` (w.r.t. x) and `conv` (w.r.t. g).

Backward algorithms (``backward=``):

- ``"transpose"`` (seeds 000, 001 Eq. 20-21, 002): g zero-dilated by the stride, padded by
  d(k-1) - lo low, correlated with the 180-degree-rotated kernel whose in/out channels are
  swapped and regrouped per group. See `jaxconv._general` for the shape algebra.
- ``"phase"`` (polyphase, seed 004's i % stride) and ``"matmul"`` (im2col, seed 002's C^T):
  not implemented yet; they raise NotImplementedError.
- ``"auto"``: currently always ``"transpose"``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jaxconv import _validate as v
from jaxconv._general import transpose_lhs, transpose_rhs
from jaxconv._spec import ConvSpec, make_spec, output_shape

NOT_YET = ("phase", "matmul")


def check_backward(fn: str, backward: str) -> None:
    if backward in NOT_YET:
        raise NotImplementedError(
            f"{fn}: `backward` (={backward!r}) is not implemented yet; "
            "use 'transpose' or 'auto' (the algorithms 'phase' and 'matmul' are planned)"
        )


def _spatial_kernel_axes(spec: ConvSpec):
    return spec.params.dimension_numbers.rhs_spec[2:]


def input_grad(spec: ConvSpec, w, g, x_shape):
    """dL/dx of the convolution `spec` (after `make_spec`), zero padding."""
    check_backward("conv_input_grad", spec.backward)
    if spec.flip:
        w = lax.rev(w, _spatial_kernel_axes(spec))
    return transpose_lhs(spec.params, g, w, tuple(x_shape))


def weight_grad(spec: ConvSpec, x, g, w_shape):
    """dL/dw of the convolution `spec` (after `make_spec`), zero padding."""
    check_backward("conv_weight_grad", spec.backward)
    dw = transpose_rhs(spec.params, x, g, tuple(w_shape))
    if spec.flip:
        dw = lax.rev(dw, _spatial_kernel_axes(spec))
    return dw


def _check_g(fn: str, spec: ConvSpec, x_shape, w_shape, g, other: str, a) -> None:
    v.check_float(fn, "g", g)
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
    input_shape,
    w,
    g,
    *,
    stride=1,
    padding="VALID",
    dilation=1,
    groups=1,
    flip=False,
    layout="channels_last",
    backward="auto",
    precision=None,
    preferred_element_type=None,
):
    """dL/dx of ``y = conv(x, w, ...)`` given g = dL/dy: a transposed convolution.

    .. math:: dx[i] = \\sum_{j, m:\\; j s + m d - lo = i} g[j]\\, w[m]
              = (\\text{dilate}_s(g) \\star \\text{rot180}(w))[i]

    Args:
      input_shape: the shape of x, (N, *spatial, C_in) or (N, C_in, *spatial).
      w: kernel, (*k, C_in // groups, C_out) or (C_out, C_in // groups, *k).
      g: gradient of the output, the shape `conv` gives for `input_shape`.
      stride, padding, dilation, groups, flip, layout, precision, preferred_element_type:
        the forward convolution's settings (zero padding), see `conv`.
      backward: "auto" | "transpose" (the algorithm, see the module docstring).
    Returns:
      dx of shape `input_shape`, dtype of w.
    """
    fn = "conv_input_grad"
    v.check_float(fn, "w", w)
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
    return input_grad(spec, w, g, x_shape).astype(jnp.result_type(w))


def conv_weight_grad(
    x,
    weight_shape,
    g,
    *,
    stride=1,
    padding="VALID",
    dilation=1,
    groups=1,
    flip=False,
    layout="channels_last",
    backward="auto",
    precision=None,
    preferred_element_type=None,
):
    """dL/dw of ``y = conv(x, w, ...)`` given g = dL/dy: x correlated with g.

    .. math:: dw[m, c, f] = \\sum_{n, j} g[n, j, f]\\, \\tilde x[n, j s + m d, c]

    (x̃ the zero-padded input; weight sharing sums over every window, seeds 001 Eq. 13-14, 003, 004.)

    Args:
      x: input, (N, *spatial, C_in) or (N, C_in, *spatial).
      weight_shape: the kernel's shape, (*k, C_in // groups, C_out) or (C_out, C_in // groups, *k).
      g: gradient of the output, the shape `conv` gives.
      other settings: as `conv_input_grad`.
    Returns:
      dw of shape `weight_shape`, dtype of x.
    """
    fn = "conv_weight_grad"
    v.check_float(fn, "x", x)
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
    return weight_grad(spec, x, g, w_shape).astype(jnp.result_type(x))
