"""`Geometry`: one channels-last convolution layer, static, with the algorithms chosen for it,
and the slicing and placing of taps that the lowerings share.

Channels-last throughout: x ``(N, *n, C)``, w ``(*k, C // G, F)``, g ``(N, *o, F)``. One spatial
dim shown, every dim alike: stride s, dilation d, padding (lo, hi); tap m of output j reads the
padded input at ``j s + m d``, i.e. input position ``j s + m d - lo``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from jaxconv._core.padding import effective_kernel, out_size
from jaxconv._core.window import Window


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


def dimension_numbers(nd: int, layout: str) -> lax.ConvDimensionNumbers:
    """lax dimension numbers of a layout: NH..C / H..IO, or NC.. / OI.. ."""
    if layout == "channels_last":
        sp = tuple(range(1, nd + 1))
        return lax.ConvDimensionNumbers(
            (0, nd + 1, *sp), (nd + 1, nd, *range(nd)), (0, nd + 1, *sp)
        )
    sp = tuple(range(2, nd + 2))
    return lax.ConvDimensionNumbers((0, 1, *sp), (0, 1, *sp), (0, 1, *sp))


class Geometry(NamedTuple):
    """Static description of one channels-last convolution and the algorithms to use."""

    x_shape: tuple  # (N, *n, C)
    w_shape: tuple  # (*k, C // G, F)
    stride: tuple
    pads: tuple  # (lo, hi) per dim; hi may be negative (conv_transpose's output_padding)
    dilation: tuple
    groups: int
    precision: object
    pet: object  # preferred_element_type or None
    fwd: str  # "xla" | "matmul" | "shift" | "native"
    dx: str  # "transpose" | "phase" | "matmul" | "taps" | "shift" | "native"
    dw: str  # "xla" | "matmul" | "shift" | "native"
    # (fwd, dx, dw) when lowered for any platform but CPU (GPU, TPU); None: as on CPU.
    elsewhere: tuple | None = None
    backward: str = "auto"  # the `backward=` the algorithms were chosen for (re-chosen by vmap)
    dtype: object = None  # the operands' dtype the algorithms were chosen for (None: float32)
    # (fwd, dx, dw) on CPU where the native kernels cannot be lowered (jax.export, a program
    # partitioned over several devices: `_core.native.lowering_blocker`); None: no native pick.
    fallback: tuple | None = None

    @property
    def nd(self):
        return len(self.stride)

    @property
    def k(self):
        return self.w_shape[:-2]

    @property
    def out_shape(self):
        k_eff = effective_kernel(self.k, self.dilation)
        o = out_size(self.x_shape[1:-1], k_eff, self.stride, self.pads)
        return (self.x_shape[0], *o, self.w_shape[-1])


def lax_params(geo) -> ConvParams:
    """The lax settings of the forward convolution described by `geo` (channels-last)."""
    nd = geo.nd
    return ConvParams(
        window_strides=geo.stride,
        padding=geo.pads,
        lhs_dilation=(1,) * nd,
        rhs_dilation=geo.dilation,
        dimension_numbers=dimension_numbers(nd, "channels_last"),
        feature_group_count=geo.groups,
        batch_group_count=1,
        precision=geo.precision,
        preferred_element_type=geo.pet,
    )


def dot(a, b, contract, batch, geo, out_sharding=None):
    return lax.dot_general(
        a,
        b,
        (contract, batch),
        precision=geo.precision,
        preferred_element_type=geo.pet,
        out_sharding=out_sharding,
    )


def pad_x(x, geo):
    cfg = [(0, 0, 0), *((lo, hi, 0) for lo, hi in geo.pads), (0, 0, 0)]
    return lax.pad(x, jnp.zeros((), x.dtype), cfg)


def tap_offsets(geo):
    return list(itertools.product(*(range(kk) for kk in geo.k)))


def tap_slice(xp, m, geo, o):
    """x_p[:, m d : m d + (o - 1) s + 1 : s, :] -- the inputs tap m reads, (N, *o, C)."""
    start = (0, *(mm * d for mm, d in zip(m, geo.dilation)), 0)
    limit = (
        xp.shape[0],
        *(mm * d + (oo - 1) * s + 1 for mm, d, oo, s in zip(m, geo.dilation, o, geo.stride)),
        xp.shape[-1],
    )
    return lax.slice(xp, start, limit, (1, *geo.stride, 1))


def place(v, offsets, geo, n):
    """Transpose of `tap_slice` on the unpadded input: v (N, *o, C) put at i = j s + offset."""
    cfg = [(0, 0, 0)]
    for off, s, oo, nn in zip(offsets, geo.stride, v.shape[1:-1], n):
        cfg.append((max(off, 0), nn - off - (oo - 1) * s - 1, s - 1))
    cfg.append((0, 0, 0))
    out = lax.pad(v, jnp.zeros((), v.dtype), cfg)
    # A negative low pad crops after the pad: XLA's SPMD partitioner aborts the process on a
    # negative low pad with interior padding along a sharded axis, so crop by a slice.
    crop = (0, *(max(-off, 0) for off in offsets), 0)
    return lax.slice(out, crop, out.shape) if any(crop) else out


def trailing(a, ndim):
    """`a` with leading unit axes up to rank `ndim`: broadcasts against the trailing axes
    without implicit rank promotion (which ``jax_numpy_rank_promotion="raise"`` forbids)."""
    return a.reshape((1,) * (ndim - a.ndim) + a.shape)


def conv_windows(geo):
    """The conv's windows as a pooling `Window` (for `_core.window.window_blocks`)."""
    nd = geo.nd
    return Window(
        layout="channels_last",
        ndim=nd + 2,
        axes=tuple(range(1, nd + 1)),
        size=geo.x_shape[1:-1],
        window=geo.k,
        stride=geo.stride,
        dilation=geo.dilation,
        pads=geo.pads,
        out=geo.out_shape[1:-1],
    )


def sum_placed(term, geo):
    """dx = sum over taps m of place_m(term(t)): tap t's (N, *o, C) contribution added back at
    the inputs that tap read (the col2im fold; shared by "matmul", "taps" and "shift")."""
    n = geo.x_shape[1:-1]
    dx = None
    for t, m in enumerate(tap_offsets(geo)):
        off = tuple(mm * d - lo for mm, d, (lo, _) in zip(m, geo.dilation, geo.pads))
        placed = place(term(t), off, geo, n)
        dx = placed if dx is None else dx + placed
    return dx
