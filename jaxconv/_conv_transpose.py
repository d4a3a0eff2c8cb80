"""`conv_transpose`: deconvolution, the exact adjoint of `conv` with the same kernel."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from jaxconv import _validate as v
from jaxconv._auto import geometry
from jaxconv._backward import add_bias, input_grad_cl
from jaxconv._geometry import Geometry
from jaxconv._layout import (
    act_out,
    from_cl,
    join_layout,
    kernel_in_axis,
    kernel_to_cl,
    split_kernel,
    split_layout,
    to_cl,
)
from jaxconv._padding import effective_kernel, padding_pairs
from jaxconv._remat import name
from jaxconv._sharding import auto_partitioned
from jaxconv._spec import ConvOptions, make_spec
from jaxconv._types import Array, ArrayLike, DTypeLike, Ints, Padding, Shape


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
        FULL conv), or "SAME" (output size = input size * stride, as Flax/TF).
      output_padding: extra size at the high end, int or per dim. output_size: the spatial
        output size (overrides output_padding).
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
    k_eff = effective_kernel(k, dilation)
    if isinstance(padding, str) and padding.upper() == "SAME":
        pads = padding_pairs(
            fn, "SAME", nd, k_eff, stride, tuple(oo * s for oo, s in zip(o, stride))
        )
        if output_size is None:
            if any(v.int_tuple(fn, "output_padding", output_padding, nd, minimum=0)):
                v.fail(
                    fn,
                    "output_padding",
                    output_padding,
                    "must be 0 with padding='SAME' "
                    "(the output size is the input size times the stride)",
                )
            output_size = tuple(oo * s for oo, s in zip(o, stride))
    else:
        pads = padding_pairs(fn, padding, nd, k_eff, stride, o)
    n_min = tuple(
        (oo - 1) * s + ke - lo - hi for oo, s, ke, (lo, hi) in zip(o, stride, k_eff, pads)
    )
    room = tuple(max(s, d) for s, d in zip(stride, dilation))
    op = v.int_tuple(fn, "output_padding", output_padding, nd, minimum=0)
    if output_size is not None:
        if any(op):
            v.fail(fn, "output_padding", output_padding, "must be 0 when `output_size` is given")
        size = _output_size(fn, output_size, nd)
        op = tuple(n - m for n, m in zip(size, n_min))
        if any(not 0 <= p < r for p, r in zip(op, room)):
            v.fail(
                fn,
                "output_size",
                output_size,
                f"must lie between {n_min} and {tuple(m + r - 1 for m, r in zip(n_min, room))}",
            )
    if any(p >= r for p, r in zip(op, room)):
        v.fail(
            fn,
            "output_padding",
            output_padding,
            f"must be smaller than max(stride, dilation) (={room}) in every dim",
        )
    n = tuple(m + p for m, p in zip(n_min, op))
    if any(nn < 1 for nn in n):
        v.fail(fn, "padding", padding, f"is too large: the output would have size {n}")
    x_shape = join_layout(n_batch, n, cin_g * groups, layout)
    opts = opts._replace(stride=stride, padding=pads, dilation=dilation, groups=groups)
    spec = make_spec(fn, x_shape, w.shape, opts)
    v.check_bias(fn, bias, cin_g * groups)
    # The conv of an n-sized input with pads (lo, hi_eff) has exactly o outputs (hi_eff may be
    # negative: output_padding cells beyond the kernel's reach get no contribution).
    hi_eff = tuple(
        (oo - 1) * s + ke - nn - lo for oo, s, ke, nn, (lo, _) in zip(o, stride, k_eff, n, pads)
    )
    spec = spec._replace(
        params=spec.params._replace(padding=tuple((lo, h) for (lo, _), h in zip(pads, hi_eff)))
    )
    geo = geometry(spec, x_shape, w.shape)

    def run(y, w, bias):
        x = _conv_transpose(geo, to_cl(y, layout), kernel_to_cl(w, layout, spec.flip), bias)
        return from_cl(x, layout)

    c_in = (1, kernel_in_axis(layout)) if groups == 1 else None  # x's channels: the C_in
    return auto_partitioned(run, y, w, bias, out=act_out(y.ndim, layout, 0, c_in))


def _output_size(fn, output_size, nd):
    if hasattr(output_size, "tolist"):
        output_size = output_size.tolist()
    if not isinstance(output_size, Sequence) or len(output_size) != nd:
        v.fail(fn, "output_size", output_size, f"must be {nd} spatial sizes")
    return tuple(v.as_int(fn, "output_size", s) for s in output_size)


def _conv_transpose(geo: Geometry, y, w, b):
    """Channels-last: the input gradient of the conv `geo` applied to y, plus bias. Its rules
    are the family's (`_backward`): w.r.t. y the adjoint of the adjoint, ``conv(g, w)``; w.r.t.
    w the weight gradient with the roles of x and g exchanged; db = g summed."""
    y = name(y, "conv_transpose", "y")
    return add_bias(input_grad_cl(geo, name(w, "conv", "w"), y), b)
