"""The transpose rules of one general lax convolution, written as two more lax convolutions.

The derivation of the input and weight gradients for every lax option (lhs and rhs dilation,
padding, feature and batch groups, any dimension numbers), used by the drop-in's general path
(`convolution.general`) and by the conv family's ``"transpose"`` / ``"xla"`` lowerings.

One spatial dim (each dim is alike), input size n, lhs dilation a, padding (lo, hi), kernel k with
dilation d (k_eff = (k-1)d + 1), stride s, output size o::

    y[j] = sum_m w[m] * x_a[j*s + m*d - lo]          x_a: x with a-1 zeros between elements

Input gradient (seeds 000, 001 Eq. 20-21, 002): dilate g by s (s-1 zeros between elements), pad
by k_eff-1-lo low, correlate with rot180(w) at dilation d, keep every a-th output:
``dx = conv(g, rot180(w), strides=a, lhs_dilation=s, rhs_dilation=d, pad=(k_eff-1-lo, hi'))``
with hi' chosen so that exactly n outputs come out: hi' = (n-1)a + 1 + lo - ((o-1)s + 1).
In/out channels of w swap roles; with groups G the kernel's out channels (G, C_out/G) are
regrouped into its in-channel axis (seed 002: "regroup the filters").

Weight gradient (seeds 001 Eq. 13-14, 003, 004): dw[m] = sum_j g[j] x_a[m*d + j*s - lo], i.e. x
correlated with g as the kernel, stride d and kernel dilation s, batch and feature axes swapped:
``dw = conv(x, g, strides=d, lhs_dilation=a, rhs_dilation=s, pad=(lo, (o-1)s+1 - ((n-1)a+1) +
k_eff-1-lo))``; feature groups become batch groups and vice versa.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jaxconv._core.dtypes import widest
from jaxconv._core.padding import effective_kernel
from jaxconv._core.sharding import replicated
from jaxconv.convolution.lowering.geometry import ConvParams, lax_params


def lax_conv(p: ConvParams, lhs, rhs, out_sharding=None):
    """One `lax.conv_general_dilated` call with the settings ``p``."""
    return lax.conv_general_dilated(
        lhs,
        rhs,
        p.window_strides,
        p.padding,
        p.lhs_dilation,
        p.rhs_dilation,
        p.dimension_numbers,
        p.feature_group_count,
        p.batch_group_count,
        p.precision,
        p.preferred_element_type,
        out_sharding=out_sharding,
    )


def regroup(x, src: int, dst: int, groups: int):
    """Split axis ``src`` into (groups, rest) and move the groups into axis ``dst`` (major).

    (S, D) -> (S // groups, groups * D). Seed 002's regrouping of the filters by channel.
    """
    x = jnp.moveaxis(x, (src, dst), (0, 1))
    s, d = x.shape[:2]
    x = x.reshape(groups, s // groups, d, *x.shape[2:])
    x = jnp.swapaxes(x, 0, 1).reshape(s // groups, groups * d, *x.shape[3:])
    return jnp.moveaxis(x, (0, 1), (src, dst))


def _dims(p: ConvParams, lhs_shape, rhs_shape, out_shape):
    lhs_spec, rhs_spec, out_spec = p.dimension_numbers
    n = [lhs_shape[i] for i in lhs_spec[2:]]
    k = [rhs_shape[i] for i in rhs_spec[2:]]
    o = [out_shape[i] for i in out_spec[2:]]
    k_eff = effective_kernel(k, p.rhs_dilation)
    n_dil = [(nn - 1) * a + 1 for nn, a in zip(n, p.lhs_dilation)]
    o_dil = [(oo - 1) * s + 1 for oo, s in zip(o, p.window_strides)]
    return k_eff, n_dil, o_dil


def _to_dtype(a, b):
    """Bring the operands of a gradient convolution to one dtype (g may be wider)."""
    dt = widest(a, b)
    return a.astype(dt), b.astype(dt)


def transpose_lhs(p: ConvParams, g, rhs, lhs_shape, conv):
    """d lhs: g zero-dilated by the stride, fully correlated with the rot180 regrouped kernel.

    `conv(q, a, b)` evaluates the one convolution: `general.general_conv` (differentiable by
    these rules) or `lax_conv`.
    """
    lhs_spec, rhs_spec, out_spec = p.dimension_numbers
    k_eff, n_dil, o_dil = _dims(p, lhs_shape, rhs.shape, g.shape)
    # lo' = k_eff - 1 - lo (the "full" padding less what the forward padded); hi' makes n outputs.
    pads = tuple(
        (ke - 1 - lo, nd - od + lo) for ke, nd, od, (lo, _) in zip(k_eff, n_dil, o_dil, p.padding)
    )
    w = lax.rev(rhs, rhs_spec[2:])
    groups = max(p.feature_group_count, p.batch_group_count)
    if groups > 1:
        w = regroup(w, rhs_spec[0], rhs_spec[1], groups)
    dn = lax.ConvDimensionNumbers(out_spec, (rhs_spec[1], rhs_spec[0], *rhs_spec[2:]), lhs_spec)
    q = ConvParams(
        window_strides=p.lhs_dilation,
        padding=pads,
        lhs_dilation=p.window_strides,
        rhs_dilation=p.rhs_dilation,
        dimension_numbers=dn,
        feature_group_count=groups,
        batch_group_count=1,
        precision=p.precision,
        preferred_element_type=p.preferred_element_type,
    )
    dx = conv(q, *_to_dtype(g, w))
    if p.batch_group_count > 1:
        dx = regroup(dx, lhs_spec[1], lhs_spec[0], p.batch_group_count)
    assert tuple(dx.shape) == tuple(lhs_shape), (dx.shape, lhs_shape)
    return dx


def transpose_rhs(p: ConvParams, lhs, g, rhs_shape, conv):
    """d rhs: the input correlated with g (weight sharing sums over all windows). `conv` as in
    `transpose_lhs`; the batch is contracted, so on an explicit mesh the result is replicated."""
    lhs_spec, rhs_spec, out_spec = p.dimension_numbers
    k_eff, n_dil, o_dil = _dims(p, lhs.shape, rhs_shape, g.shape)
    pads = tuple(
        (lo, od - nd + ke - 1 - lo) for ke, nd, od, (lo, _) in zip(k_eff, n_dil, o_dil, p.padding)
    )
    dn = lax.ConvDimensionNumbers(
        (lhs_spec[1], lhs_spec[0], *lhs_spec[2:]),
        (out_spec[1], out_spec[0], *out_spec[2:]),
        (rhs_spec[1], rhs_spec[0], *rhs_spec[2:]),
    )
    q = ConvParams(
        window_strides=p.rhs_dilation,
        padding=pads,
        lhs_dilation=p.lhs_dilation,
        rhs_dilation=p.window_strides,
        dimension_numbers=dn,
        feature_group_count=p.batch_group_count,
        batch_group_count=p.feature_group_count,
        precision=p.precision,
        preferred_element_type=p.preferred_element_type,
    )
    dw = conv(q, *_to_dtype(lhs, g))
    assert tuple(dw.shape) == tuple(rhs_shape), (dw.shape, rhs_shape)
    return dw


def fwd_xla(x, w, geo):
    return lax_conv(lax_params(geo), x, w)


def dx_transpose(g, w, geo):
    """g zero-dilated by the stride, correlated with the rot180 swapped kernel (seed 000)."""
    return transpose_lhs(lax_params(geo), g, w, geo.x_shape, conv=lax_conv)


def dw_xla(x, g, geo):
    """x correlated with g: batch and feature axes swapped, groups become batch groups."""
    conv = lambda q, a, b: lax_conv(q, a, b, out_sharding=replicated(x))  # noqa: E731
    return transpose_rhs(lax_params(geo), x, g, geo.w_shape, conv=conv)
