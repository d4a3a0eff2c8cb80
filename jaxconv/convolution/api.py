"""`conv`: N-d convolution (cross-correlation by default) with an explicit backward pass.

`conv_transpose`: deconvolution, the exact adjoint of `conv` with the same kernel.

`conv_input_grad` and `conv_weight_grad`: a convolution's two gradients as public functions
(like `torch.nn.grad.conv2d_input` / `conv2d_weight`), on the rules of `rules.py`.

One normalised, hashable description of a convolution, shared by the conv family.

`conv`, `conv_input_grad`, `conv_weight_grad` and `conv_transpose` take the same user-facing
settings (stride, padding, dilation, groups, flip, layout, backward, ...). `make_spec` validates
them once, at trace time, and turns them into the `ConvParams` of the lax call plus the few
settings lax has no notion of.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxconv._core import validate as v
from jaxconv._core.bias import add_bias
from jaxconv._core.layout import (
    act_out,
    from_cl,
    join_layout,
    kernel_from_cl,
    kernel_in_axis,
    kernel_to_cl,
    split_kernel,
    split_layout,
    to_cl,
)
from jaxconv._core.padding import (
    check_padding_mode,
    check_window_fits,
    effective_kernel,
    out_size,
    padding_pairs,
)
from jaxconv._core.residuals import name
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, DTypeLike, Ints, Padding, Shape
from jaxconv.convolution import padding_modes as padding_modes
from jaxconv.convolution.lowering.choice import layer_geometry
from jaxconv.convolution.lowering.geometry import ConvParams, Geometry, dimension_numbers
from jaxconv.convolution.rules import conv_cl, input_grad_cl, weight_grad_cl


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

    Reverse mode (the transposes of `rules.conv_p`): dx = `conv_input_grad` (g
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
      padding: "VALID", "SAME" (output ceil(n / stride)), "FULL" (k_eff - 1 each side),
        "CAUSAL" (Flax's: k_eff - 1 on the low side only, in every spatial dim), an int,
        one int per dim, or one (lo, hi) pair per dim.
      groups: feature groups; C_in and C_out divisible by it (groups == C_in: depthwise).
      flip: true convolution instead of cross-correlation.
      padding_mode: "zeros", "reflect", "replicate" or "circular".
      layout: "channels_last" or "channels_first".
      backward: "auto" (default: the fastest exact algorithm for the shape, measured rule in
        `lowering.choice`), "lean" (the fastest whose compiled temp memory stays at or below
        autodiff's), "transpose" (lax convolutions, what JAX's autodiff computes),
        "phase" (polyphase input gradient), "matmul" (im2col / col2im + matrix products),
        "native" (oneDNN's CPU kernels through XLA's FFI, float32, where
        `jaxconv.native_available()`; elsewhere "auto", and XLA's convolutions off the CPU).
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
    geo = geometry(spec, x.shape, w.shape, x.dtype)

    def run(x, w, bias):
        x = to_cl(x, layout)
        if spec.padding_mode != "zeros":
            x = padding_modes.pad(x, spec.mode_pads, spec.padding_mode, range(1, x.ndim - 1))
        y = conv_cl(geo, x, kernel_to_cl(w, layout, spec.flip), bias)
        return from_cl(y, layout)

    c_out = (1, -1 if layout == "channels_last" else 0)  # y's channels: the kernel's C_out
    return auto_partitioned(run, x, w, bias, out=act_out(x.ndim, layout, 0, c_out))


def conv_transpose(
    y: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: Ints = 1,
    padding: Padding = 0,
    output_padding: Ints = 0,
    output_size: Shape | None = None,
    dilation: Ints = 1,
    groups: int = 1,
    flip: bool = False,
    layout: str = "channels_last",
    backward: str = "auto",
    precision: object = None,
    preferred_element_type: DTypeLike | None = None,
) -> Array:
    """Transposed convolution: the adjoint of ``conv(., w)`` (PyTorch ConvTranspose semantics).

    ``conv_transpose(y, w, ...)`` is the map whose matrix is the transpose of ``conv(., w, ...)``
    with the same `w`, `stride`, `padding`, `dilation`, `groups` (seed 002's Cᵀ; its 1-D, 2-D
    and 3-D deconvolution). One dim, o = input size, s stride, d dilation, (lo, hi) padding:

    .. math:: x[i] = \\sum_{j, m:\\; j s + m d - lo = i} y[j]\\, w[m] + b

    Output size n = (o - 1) s + d (k - 1) + 1 - lo - hi + output_padding. A strided `conv` maps
    several input sizes onto the same output size (its floor division); `output_padding` (in
    [0, max(stride, dilation))) or `output_size` picks which one to return.

    Backward: dy = ``conv(g, w)`` (same settings), dw = ``conv_weight_grad`` with the roles of
    the input and the gradient exchanged (x := g, g := y), db = g summed over batch and space.

    Args:
      y: (N, *spatial, C_out) or (N, C_out, *spatial): C_out is the conv kernel's out channels.
      w: the conv kernel, (*k, C_in // groups, C_out) or (C_out, C_in // groups, *k) -- in
        channels_first this is PyTorch's ConvTranspose weight layout (in, out // groups, *k).
      bias: (C_in,) or None (added to the output, which has C_in channels).
      stride, dilation: int or one int per spatial dim.
      padding: an int, one int per dim, (lo, hi) pairs, "VALID" (0), "FULL" (the adjoint of a
        FULL conv), "SAME" (output size = input size * stride, as Flax/TF) or "CAUSAL" (the
        adjoint of a CAUSAL conv, same output size).
      output_padding: extra size at the high end, int or per dim.
      output_size: the spatial output size (overrides output_padding).
      flip, layout, backward, precision, preferred_element_type: as `conv`.
    Returns:
      x: (N, *out_spatial, C_in) (or channels-first).

    Example:
      >>> import jax.numpy as jnp
      >>> y, w = jnp.ones((1, 3, 3, 8)), jnp.ones((3, 3, 4, 8))  # w: conv's (*k, C_in, C_out)
      >>> conv_transpose(y, w, stride=2, padding=1, output_padding=1).shape
      (1, 6, 6, 4)
    """
    opts = ConvOptions.of(locals())  # first: the arguments only
    fn = "conv_transpose"
    v.check_inexact(fn, "y", y)
    v.check_inexact(fn, "w", w)
    if bias is not None:  # complex only beside complex operands
        (v.check_inexact if jnp.iscomplexobj(y) else v.check_float)(fn, "bias", bias)
    v.check_same_dtype(fn, y=y, w=w)
    v.check_pet_width(fn, preferred_element_type, y)
    v.check_layout(fn, layout)
    nd = v.spatial_rank(fn, y, "y")
    if w.ndim != y.ndim:
        v.fail(fn, "w.shape", tuple(w.shape), f"must have rank {y.ndim} like y")
    n_batch, o, c_y = split_layout(tuple(y.shape), layout)
    k, cin_g, cout = split_kernel(tuple(w.shape), layout)
    if c_y != cout:
        v.fail(
            fn,
            "y.shape",
            tuple(y.shape),
            f"has {c_y} channels but the kernel maps to "
            f"{cout} (its C_out); y must have the conv's output channels",
        )
    groups = v.as_int(fn, "groups", groups)
    if groups < 1 or cout % groups:
        v.fail(fn, "groups", groups, f"must be >= 1 and divide the kernel's C_out (={cout})")
    stride = v.int_tuple(fn, "stride", stride, nd)
    dilation = v.int_tuple(fn, "dilation", dilation, nd)
    pads, n, fwd_pads = _transpose_sizes(
        fn, o, k, stride, dilation, padding, output_padding, output_size
    )
    x_shape = join_layout(n_batch, n, cin_g * groups, layout)
    opts = opts._replace(stride=stride, padding=pads, dilation=dilation, groups=groups)
    spec = make_spec(fn, x_shape, w.shape, opts)
    v.check_bias(fn, bias, cin_g * groups)
    spec = spec._replace(params=spec.params._replace(padding=fwd_pads))
    geo = geometry(spec, x_shape, w.shape, y.dtype)

    def run(y, w, bias):
        x = _conv_transpose(geo, to_cl(y, layout), kernel_to_cl(w, layout, spec.flip), bias)
        return from_cl(x, layout)

    c_in = (1, kernel_in_axis(layout)) if groups == 1 else None  # x's channels: the C_in
    return auto_partitioned(run, y, w, bias, out=act_out(y.ndim, layout, 0, c_in))


def _transpose_sizes(fn, o, k, stride, dilation, padding, output_padding, output_size):
    """`conv_transpose`'s (pads, n, fwd_pads): the user's `padding` as (lo, hi) pairs and
    `transpose_sizes` of the validated `output_padding` / `output_size`, its errors worded
    as fn's. ``padding="SAME"`` ("CAUSAL") is the adjoint of a SAME (CAUSAL) conv of an input
    o * s: that size unless `output_size` says otherwise."""
    nd = len(o)
    k_eff = effective_kernel(k, dilation)
    if isinstance(padding, str) and padding.upper() in ("SAME", "CAUSAL"):
        same_size = tuple(oo * s for oo, s in zip(o, stride))
        pads = padding_pairs(fn, padding, nd, k_eff, stride, same_size)
        if output_size is None:
            if any(v.int_tuple(fn, "output_padding", output_padding, nd, minimum=0)):
                v.fail(
                    fn,
                    "output_padding",
                    output_padding,
                    f"must be 0 with padding={padding!r} "
                    "(the output size is the input size times the stride)",
                )
            output_size = same_size
    else:
        pads = padding_pairs(fn, padding, nd, k_eff, stride, o)
    op = v.int_tuple(fn, "output_padding", output_padding, nd, minimum=0)
    size = None
    if output_size is not None:
        if any(op):
            v.fail(fn, "output_padding", output_padding, "must be 0 when `output_size` is given")
        size = _output_size(fn, output_size, nd)
    try:
        n, fwd_pads = transpose_sizes(o, k, stride, dilation, pads, op, size)
    except SizeError as e:
        given = {"output_padding": output_padding, "output_size": output_size, "padding": padding}
        raise ValueError(v.wording(fn, e.arg, given[e.arg], str(e))) from None
    return pads, n, fwd_pads


def _output_size(fn, output_size, nd):
    if hasattr(output_size, "tolist"):
        output_size = output_size.tolist()
    if not isinstance(output_size, Sequence) or len(output_size) != nd:
        v.fail(fn, "output_size", output_size, f"must be {nd} spatial sizes")
    return tuple(v.as_int(fn, "output_size", s) for s in output_size)


class SizeError(ValueError):
    """`transpose_sizes`' complaint about one argument: `arg` names it ("output_padding",
    "output_size" or "padding"), the message says what is wrong with it."""

    def __init__(self, arg: str, message: str):
        super().__init__(message)
        self.arg = arg


def transpose_sizes(o, k, stride, dilation, pads, output_padding, output_size=None):
    """`conv_transpose`'s output size n and the padding of the conv it is the adjoint of.

    One spatial dim (each dim alike): y's size o, kernel k, stride s, dilation d, padding
    (lo, hi). The conv maps an input of size n to

    .. math:: o = \\lfloor (n + lo + hi - d(k-1) - 1) / s \\rfloor + 1,

    so the floor maps every n in [n_min, n_min + s) onto the same o, with

    .. math:: n_{min} = (o - 1) s - lo - hi + d(k-1) + 1.

    conv_transpose picks n = n_min + output_padding, with 0 <= output_padding < max(s, d) as
    PyTorch requires; `output_size`, when given, is n itself and picks output_padding =
    output_size - n_min (in the same range). With d > s, output_padding may reach s or more:
    the conv with the user's (lo, hi) would then have more than o outputs, so the conv whose
    adjoint is returned pads (lo, hi_eff) with

    .. math:: hi_{eff} = (o - 1) s + d(k-1) + 1 - n - lo = hi - output\\_padding,

    which has exactly o outputs for every output_padding in range (hi_eff < 0 crops: the last
    output_padding cells lie beyond the kernel's reach and get no contribution).

    Args:
      o, k, stride, dilation: one int per spatial dim: y's size, the kernel's, s and d.
      pads: (lo, hi) per dim, the conv's padding.
      output_padding: one int >= 0 per dim.
      output_size: one int per dim (the output's spatial size), or None: from output_padding.
    Returns:
      (n, fwd_pads): the output's spatial size (the conv's input size) and (lo, hi_eff) per
      dim, the padding of the conv of an n-sized input with exactly o outputs.
    Raises:
      SizeError: `output_padding` not below max(s, d) (or not 0 beside `output_size`),
      `output_size` outside [n_min, n_min + max(s, d)), or `padding` so large that n < 1.

    Example:
      >>> transpose_sizes((3,), (3,), (2,), (1,), ((1, 1),), (1,))  # 3 -> 6, hi_eff = 0
      ((6,), ((1, 0),))
    """
    k_eff = effective_kernel(k, dilation)
    n_min = tuple(
        (oo - 1) * s + ke - lo - hi for oo, s, ke, (lo, hi) in zip(o, stride, k_eff, pads)
    )
    room = tuple(max(s, d) for s, d in zip(stride, dilation))
    op = tuple(output_padding)
    if output_size is not None:
        if any(op):
            raise SizeError("output_padding", "must be 0 when `output_size` is given")
        op = tuple(n - m for n, m in zip(output_size, n_min))
        if any(not 0 <= p < r for p, r in zip(op, room)):
            top = tuple(m + r - 1 for m, r in zip(n_min, room))
            raise SizeError("output_size", f"must lie between {n_min} and {top}")
    if any(p >= r for p, r in zip(op, room)):
        raise SizeError(
            "output_padding", f"must be smaller than max(stride, dilation) (={room}) in every dim"
        )
    n = tuple(m + p for m, p in zip(n_min, op))
    if any(nn < 1 for nn in n):
        raise SizeError("padding", f"is too large: the output would have size {n}")
    return n, tuple((lo, hi - p) for (lo, hi), p in zip(pads, op))


def _conv_transpose(geo: Geometry, y, w, b):
    """Channels-last: the input gradient of the conv `geo` applied to y, plus bias. Its rules
    are the family's (`rules`): w.r.t. y the adjoint of the adjoint, ``conv(g, w)``; w.r.t.
    w the weight gradient with the roles of x and g exchanged; db = g summed."""
    y = name(y, "conv_transpose", "y")
    return add_bias(input_grad_cl(geo, name(w, "conv", "w"), y), b)


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
        "phase" (polyphase, stride^D stride-1 convolutions), "matmul" (im2col/col2im),
        "native" (oneDNN through XLA's FFI where available, see `conv`).
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
    geo = geometry(spec, x_shape, w.shape, w.dtype)

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
    geo = geometry(spec, x.shape, w_shape, x.dtype)

    def run(x, g):
        return kernel_from_cl(
            weight_grad_cl(geo, to_cl(x, layout), to_cl(g, layout)), layout, spec.flip
        )

    c = x.ndim - 1 if layout == "channels_last" else 1
    out = [None] * x.ndim  # dw: C_in // G like x's channels (groups == 1), C_out like g's
    out[-1 if layout == "channels_last" else 0] = (1, c)
    out[kernel_in_axis(layout)] = (0, c) if geo.groups == 1 else None
    return auto_partitioned(run, x, g, out=out, batch=(0, 1))


BACKWARDS = ("auto", "lean", "transpose", "phase", "matmul", "native")


class ConvSpec(NamedTuple):
    params: ConvParams  # the lax call of the forward convolution (zero padding)
    flip: bool  # true convolution: the kernel is rotated 180 degrees first
    layout: str
    backward: str
    padding_mode: str
    mode_pads: tuple  # (lo, hi) per dim applied by `padding_mode` before a VALID conv


class ConvOptions(NamedTuple):
    """The conv family's keyword settings as the user gave them, gathered once per call.

    Every public conv-family function starts with ``opts = ConvOptions.of(locals())``: its
    keyword arguments, by name, and the defaults here for the settings it does not take
    (`conv_input_grad` has no `padding_mode`). `make_spec` validates them.
    """

    stride: object = 1
    padding: object = "VALID"
    dilation: object = 1
    groups: object = 1
    flip: object = False
    layout: object = "channels_last"
    backward: object = "auto"
    precision: object = None
    preferred_element_type: object = None
    padding_mode: object = "zeros"

    @classmethod
    def of(cls, arguments: dict) -> ConvOptions:
        """The options among `arguments` (a public function's ``locals()``, taken first)."""
        return cls(**{k: arguments[k] for k in cls._fields if k in arguments})


def make_spec(
    fn: str,
    x_shape,
    w_shape,
    opts: ConvOptions,
    *,
    x_arg="x.shape",
    w_arg="w.shape",
) -> ConvSpec:
    """Validate the settings of a convolution of an input of `x_shape` with a `w_shape` kernel.

    `x_arg` / `w_arg` name the arguments the shapes came from, for the error messages.
    """
    layout, backward, flip = opts.layout, opts.backward, opts.flip
    padding, padding_mode = opts.padding, opts.padding_mode
    v.check_layout(fn, layout)
    v.check_choice(fn, "backward", backward, BACKWARDS)
    if not isinstance(flip, (bool, np.bool_)):
        v.fail(fn, "flip", flip, "must be a bool", TypeError)
    if len(x_shape) < 3:
        v.fail(
            fn,
            x_arg,
            tuple(x_shape),
            "must be (N, *spatial, C) or (N, C, *spatial) with at least one spatial dim",
        )
    nd = len(x_shape) - 2
    if len(w_shape) != nd + 2:
        want = (
            "(*k, C_in // groups, C_out)"
            if layout == "channels_last"
            else "(C_out, C_in // groups, *k)"
        )
        v.fail(
            fn,
            w_arg,
            tuple(w_shape),
            f"must have rank {nd + 2} like the input (={tuple(x_shape)}): {want}",
        )
    _, size, cin = split_layout(tuple(x_shape), layout)
    k, cin_g, cout = split_kernel(tuple(w_shape), layout)
    if any(kk < 1 for kk in k) or cout < 1:
        v.fail(fn, w_arg, tuple(w_shape), "must have non-zero kernel and channel sizes")
    groups = v.as_int(fn, "groups", opts.groups)
    v.check_groups(fn, groups, cin, cout, cin_g, w_arg, tuple(w_shape))
    stride = v.int_tuple(fn, "stride", opts.stride, nd)
    dilation = v.int_tuple(fn, "dilation", opts.dilation, nd)
    k_eff = effective_kernel(k, dilation)
    pads = padding_pairs(fn, padding, nd, k_eff, stride, size)
    check_window_fits(fn, size, pads, k_eff, w_arg, tuple(w_shape))
    mode_pads = ((0, 0),) * nd
    if padding_mode != "zeros":
        check_padding_mode(fn, padding_mode, pads, size)
        mode_pads, pads = pads, ((0, 0),) * nd
    precision, pet = v.precision_and_type(fn, opts.precision, opts.preferred_element_type)
    params = ConvParams(
        window_strides=stride,
        padding=pads,
        lhs_dilation=(1,) * nd,
        rhs_dilation=dilation,
        dimension_numbers=dimension_numbers(nd, layout),
        feature_group_count=groups,
        batch_group_count=1,
        precision=precision,
        preferred_element_type=pet,
    )
    return ConvSpec(
        params=params,
        flip=bool(flip),
        layout=layout,
        backward=backward,
        padding_mode=padding_mode,
        mode_pads=mode_pads,
    )


def output_shape(spec: ConvSpec, x_shape, w_shape) -> tuple[int, ...]:
    """The output shape of the convolution `spec` of an `x_shape` input with a `w_shape` kernel."""
    p = spec.params
    n, size, _ = split_layout(tuple(x_shape), spec.layout)
    k, _, cout = split_kernel(tuple(w_shape), spec.layout)
    size = tuple(s + lo + hi for s, (lo, hi) in zip(size, spec.mode_pads))
    k_eff = effective_kernel(k, p.rhs_dilation)
    return join_layout(n, out_size(size, k_eff, p.window_strides, p.padding), cout, spec.layout)


def geometry(spec: ConvSpec, x_shape, w_shape, dtype) -> Geometry:
    """The channels-last `Geometry` of a validated spec, with its algorithms chosen for
    operands of `dtype`."""
    n, size, c = split_layout(tuple(x_shape), spec.layout)
    k, cin_g, cout = split_kernel(tuple(w_shape), spec.layout)
    size = tuple(s + lo + hi for s, (lo, hi) in zip(size, spec.mode_pads))
    x_cl, w_cl = (n, *size, c), (*k, cin_g, cout)
    return layer_geometry(x_cl, w_cl, spec.params, spec.backward, dtype=dtype)
