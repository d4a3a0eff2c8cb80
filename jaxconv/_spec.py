"""One normalised, hashable description of a convolution, shared by the conv family.

`conv`, `conv_input_grad`, `conv_weight_grad` and `conv_transpose` take the same user-facing
settings (stride, padding, dilation, groups, flip, layout, backward, ...). `make_spec` validates
them once, at trace time, and turns them into the `ConvParams` of the lax call plus the few
settings lax has no notion of.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from jax import lax

from jaxconv import _validate as v
from jaxconv._layout import join_layout, split_kernel, split_layout
from jaxconv._padding import (
    check_padding_mode,
    check_window_fits,
    effective_kernel,
    out_size,
    padding_pairs,
)

BACKWARDS = ("auto", "lean", "transpose", "phase", "matmul")


class ConvParams(NamedTuple):
    """Static settings of one `lax.conv_general_dilated` call, normalised and hashable."""

    window_strides: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    lhs_dilation: tuple[int, ...]
    rhs_dilation: tuple[int, ...]
    dimension_numbers: lax.ConvDimensionNumbers
    feature_group_count: int
    batch_group_count: int
    precision: object
    preferred_element_type: object


class ConvSpec(NamedTuple):
    params: ConvParams  # the lax call of the forward convolution (zero padding)
    flip: bool  # true convolution: the kernel is rotated 180 degrees first
    layout: str
    backward: str
    padding_mode: str
    mode_pads: tuple  # (lo, hi) per dim applied by `padding_mode` before a VALID conv


def dimension_numbers(nd: int, layout: str) -> lax.ConvDimensionNumbers:
    """lax dimension numbers of a layout: NH..C / H..IO, or NC.. / OI.. ."""
    if layout == "channels_last":
        sp = tuple(range(1, nd + 1))
        return lax.ConvDimensionNumbers(
            (0, nd + 1, *sp), (nd + 1, nd, *range(nd)), (0, nd + 1, *sp)
        )
    sp = tuple(range(2, nd + 2))
    return lax.ConvDimensionNumbers((0, 1, *sp), (0, 1, *sp), (0, 1, *sp))


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
    stride, padding, dilation, groups, flip, layout, backward = opts[:7]
    precision, preferred_element_type, padding_mode = opts[7:]
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
    groups = v.as_int(fn, "groups", groups)
    v.check_groups(fn, groups, cin, cout, cin_g, w_arg, tuple(w_shape))
    stride = v.int_tuple(fn, "stride", stride, nd)
    dilation = v.int_tuple(fn, "dilation", dilation, nd)
    k_eff = effective_kernel(k, dilation)
    pads = padding_pairs(fn, padding, nd, k_eff, stride, size)
    check_window_fits(fn, size, pads, k_eff, w_arg, tuple(w_shape))
    mode_pads = ((0, 0),) * nd
    if padding_mode != "zeros":
        check_padding_mode(fn, padding_mode, pads, size)
        mode_pads, pads = pads, ((0, 0),) * nd
    precision, pet = v.precision_and_type(fn, precision, preferred_element_type)
    params = ConvParams(
        stride, pads, (1,) * nd, dilation, dimension_numbers(nd, layout), groups, 1, precision, pet
    )
    return ConvSpec(params, bool(flip), layout, backward, padding_mode, mode_pads)


def output_shape(spec: ConvSpec, x_shape, w_shape) -> tuple[int, ...]:
    """The output shape of the convolution `spec` of an `x_shape` input with a `w_shape` kernel."""
    p = spec.params
    n, size, _ = split_layout(tuple(x_shape), spec.layout)
    k, _, cout = split_kernel(tuple(w_shape), spec.layout)
    size = tuple(s + lo + hi for s, (lo, hi) in zip(size, spec.mode_pads))
    k_eff = effective_kernel(k, p.rhs_dilation)
    return join_layout(n, out_size(size, k_eff, p.window_strides, p.padding), cout, spec.layout)
