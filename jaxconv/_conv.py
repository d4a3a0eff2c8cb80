"""`conv`: N-d convolution (cross-correlation by default) with an explicit backward pass."""

from __future__ import annotations

import jax.numpy as jnp

from jaxconv import _padmode
from jaxconv import _validate as v
from jaxconv._auto import geometry
from jaxconv._backward import conv_cl
from jaxconv._layout import act_out, from_cl, kernel_to_cl, split_kernel, to_cl
from jaxconv._sharding import auto_partitioned
from jaxconv._spec import ConvOptions, make_spec
from jaxconv._types import Array, ArrayLike, DTypeLike, Ints, Padding


def conv(
    x: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: Ints = 1,
    padding: Padding = "VALID",
    dilation: Ints = 1,
    groups: int = 1,
    flip: bool = False,
    padding_mode: str = "zeros",
    layout: str = "channels_last",
    backward: str = "auto",
    precision: object = None,
    preferred_element_type: DTypeLike | None = None,
) -> Array:
    """N-d convolution with stride, padding, dilation and groups; explicit VJP.

    Cross-correlation (seed 001 Eq. 1, 4, the convention of every framework), one output
    channel f, spatial index i (a tuple), x̃ the padded input:

    .. math:: y[n, i, f] = \\sum_{m, c} w[m, c, f]\\, \\tilde x[n, i s + m d, g(f) C_g + c] + b[f]

    ``flip=True`` rotates the kernel by 180 degrees first: true convolution (Eq. 2-3).

    Reverse mode (the transposes of `_backward.conv_p`): dx = `conv_input_grad` (g
    zero-dilated by the stride, correlated with the rot180 kernel with regrouped channels:
    seeds 000, 001 Eq. 20-21, 002), dw = `conv_weight_grad` (x correlated with g: Eq. 13-14,
    seed 003), db = g summed over batch and space. Forward mode: the JVP is
    conv(dx, w) + conv(x, dw) (+ db), on the same algorithms. With ``padding_mode`` other than
    zeros the border's gradient is folded back onto the input cells it copied.

    Args:
      x: (N, *spatial, C_in) for ``layout="channels_last"`` (default), (N, C_in, *spatial) for
        ``"channels_first"``. Any number of spatial dims >= 1.
      w: (*k, C_in // groups, C_out), or (C_out, C_in // groups, *k) for channels_first.
      bias: (C_out,) or None.
      stride, dilation: an int or one int per spatial dim (>= 1).
      padding: "VALID", "SAME" (output ceil(n / stride)), "FULL" (k_eff - 1 each side), an int,
        one int per dim, or one (lo, hi) pair per dim.
      groups: feature groups; C_in and C_out divisible by it (groups == C_in: depthwise).
      flip: true convolution instead of cross-correlation.
      padding_mode: "zeros", "reflect", "replicate" or "circular".
      layout: "channels_last" or "channels_first".
      backward: "auto" (default: the fastest exact algorithm for the shape, measured rule in
        `jaxconv._auto`), "lean" (the fastest whose compiled temp memory stays at or below
        autodiff's), "transpose" (lax convolutions, what JAX's autodiff computes),
        "phase" (polyphase input gradient), "matmul" (im2col / col2im + matrix products).
      precision, preferred_element_type: as in `jax.lax.conv_general_dilated`.
    Returns:
      y: (N, *out_spatial, C_out) (or channels-first), out = (n + lo + hi - d(k-1) - 1) // s + 1.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 5, 5, 3)); w = jnp.ones((3, 3, 3, 8))
      >>> conv(x, w, padding="SAME").shape
      (1, 5, 5, 8)
    """
    opts = ConvOptions.of(locals())  # first: the arguments only
    fn = "conv"
    v.check_inexact(fn, "x", x)
    v.check_inexact(fn, "w", w)
    if bias is not None:  # complex only beside complex operands
        (v.check_inexact if jnp.iscomplexobj(x) else v.check_float)(fn, "bias", bias)
    v.check_same_dtype(fn, x=x, w=w)
    v.check_pet_width(fn, preferred_element_type, x)
    spec = make_spec(fn, x.shape, w.shape, opts)
    v.check_bias(fn, bias, split_kernel(w.shape, layout)[2])
    geo = geometry(spec, x.shape, w.shape)

    def run(x, w, bias):
        x = to_cl(x, layout)
        if spec.padding_mode != "zeros":
            x = _padmode.pad(x, spec.mode_pads, spec.padding_mode, range(1, x.ndim - 1))
        y = conv_cl(geo, x, kernel_to_cl(w, layout, spec.flip), bias)
        return from_cl(y, layout)

    c_out = (1, -1 if layout == "channels_last" else 0)  # y's channels: the kernel's C_out
    return auto_partitioned(run, x, w, bias, out=act_out(x.ndim, layout, 0, c_out))
