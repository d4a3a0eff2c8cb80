"""`backward=` names -> the algorithm of each of a layer's three convolutions.

``"transpose"`` is what JAX's own autodiff computes (lax convolutions throughout: the input
gradient with lhs dilation, the weight gradient as a batch/feature-swapped convolution).
``"phase"`` replaces the input gradient by its polyphase form; ``"matmul"`` lowers all three to
im2col / col2im and one matrix product each. ``"auto"`` picks per shape by the rule in
`auto_algorithms`, measured on XLA:CPU (see experiments/results/benchmark.md).
"""

from __future__ import annotations

import math

from jaxconv import _validate as v
from jaxconv._lowering import Geometry
from jaxconv._spec import ConvSpec

# im2col patches larger than this (bytes) are not materialised by "auto".
PATCH_BYTES_LIMIT = 256 * 2**20


def auto_algorithms(x_shape, w_shape, stride, dilation, groups, itemsize=4):
    """(fwd, dx, dw) for a channels-last convolution; the measured rule.

    - depthwise (one input channel per group): shifted multiply-adds for all three, XLA:CPU's
      grouped convolutions run at a fraction of a GFLOP/s;
    - input gradient with stride > 1: polyphase (stride^D stride-1 convolutions: the
      lhs-dilated convolution misses XLA:CPU's fast path and multiplies inserted zeros);
    - weight gradient: im2col + one matrix product while the patches stay small (XLA:CPU's
      weight-gradient convolution is slow), else XLA;
    - forward: XLA for 2-D, im2col + matmul for 1-D and 3-D and beyond (no fast conv path).
    """
    nd = len(x_shape) - 2
    cin_g = w_shape[-2]
    depthwise = cin_g == 1 and groups > 1
    k = w_shape[:-2]
    n = x_shape[1:-1]
    o_cells = math.prod(-(-nn // s) for nn, s in zip(n, stride)) * x_shape[0]
    patch_bytes = o_cells * math.prod(k) * x_shape[-1] * itemsize
    small = patch_bytes <= PATCH_BYTES_LIMIT
    if depthwise:
        return "shift", "shift", "shift"
    fwd = "xla" if nd == 2 or not small else "matmul"
    dx = "phase" if any(s > 1 for s in stride) else "transpose"
    dw = "matmul" if small else "xla"
    return fwd, dx, dw


def geometry(spec: ConvSpec, x_shape, w_shape) -> Geometry:
    """The channels-last `Geometry` of a validated spec, with its algorithms chosen."""
    p = spec.params
    n, size, c = v.split_layout(tuple(x_shape), spec.layout)
    k, cin_g, cout = v.split_kernel(tuple(w_shape), spec.layout)
    size = tuple(s + lo + hi for s, (lo, hi) in zip(size, spec.mode_pads))
    x_cl, w_cl = (n, *size, c), (*k, cin_g, cout)
    groups = p.feature_group_count
    if spec.backward == "transpose":
        algos = ("xla", "transpose", "xla")
    elif spec.backward == "matmul":
        algos = ("matmul", "matmul", "matmul")
    else:
        itemsize = 8 if p.preferred_element_type == "float64" else 4
        algos = auto_algorithms(x_cl, w_cl, p.window_strides, p.rhs_dilation, groups, itemsize)
        if spec.backward == "phase":
            algos = (algos[0], "phase", algos[2])
    return Geometry(
        x_cl,
        w_cl,
        p.window_strides,
        p.padding,
        p.rhs_dilation,
        groups,
        p.precision,
        p.preferred_element_type,
        *algos,
    )
