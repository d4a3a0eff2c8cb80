"""The three convolutions of a layer on native CPU kernels (oneDNN, through XLA's FFI).

The same three maps as every other lowering (one spatial dim shown; C_g = C / G input and
F_g = F / G output channels per group g, channel f = g F_g + o):

- forward: ``y[n, j, f] = sum_{m, c} x_p[n, j s + m d, g C_g + c] w[m, c, f]``;
- input gradient (its transpose in x): ``dx = `` g zero-dilated by s, correlated with the
  180-degree rotated kernel, channels regrouped -- the transposed convolution of g;
- weight gradient (its transpose in w): ``dw[m, c, f] = sum_{n, j} x_p[n, j s + m d, g C_g + c]
  g[n, j, f]``.

Each is one custom call (`_core.native.TARGETS`, handlers in ``native/src/conv_onednn.cc``)
on the channels-last arrays, float32 only; the settings travel as the call's attributes.
Only the lowering changes: the primitives' JVP, transpose, batching and explicit VJP rules are
the same as for every other algorithm, so every JAX transformation runs on them. `fits` says
statically which layers the kernels take; `choice` picks this lowering only for those and only
where `_core.native.native_available()` is true, and only on CPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.convolution.lowering.geometry import Geometry


def fits(x_cl, w_cl, params, dtype) -> str:
    """ "" when the native kernels compute this layer, else what they lack (static)."""
    p = params
    nd = len(x_cl) - 2
    if np.dtype(np.float32 if dtype is None else dtype) != np.float32:
        return f"float32 only (operands are {np.dtype(dtype).name})"
    if p.preferred_element_type not in (None, np.float32, jnp.float32):
        return "no preferred_element_type"
    if not 1 <= nd <= 3:
        return f"1-d to 3-d only ({nd}-d)"
    if any(a != 1 for a in p.lhs_dilation) or p.batch_group_count != 1:
        return "no lhs dilation or batch groups"
    if any(lo < 0 or hi < 0 for lo, hi in p.padding):
        return "non-negative padding only"
    if math.prod(x_cl) == 0 or math.prod(w_cl) == 0:
        return "no empty operands"
    return ""


def _attrs(geo: Geometry) -> dict:
    i64 = lambda v: np.asarray(v, np.int64)  # noqa: E731
    return dict(
        stride=i64(geo.stride),
        pad_lo=i64([lo for lo, _ in geo.pads]),
        pad_hi=i64([hi for _, hi in geo.pads]),
        dilation=i64(geo.dilation),
        groups=np.int64(geo.groups),
    )


def _call(target: str, shape, a, b, geo: Geometry):
    out = jax.ShapeDtypeStruct(tuple(shape), jnp.float32)
    f32 = lambda v: v.astype(jnp.float32)  # noqa: E731
    return jax.ffi.ffi_call(target, out)(f32(a), f32(b), **_attrs(geo))


def fwd_native(x, w, geo: Geometry):
    """y (N, *o, F) of x (N, *n, C) and w (*k, C_g, F): oneDNN's forward convolution."""
    return _call("jaxconv_conv_fwd_f32", geo.out_shape, x, w, geo)


def dx_native(g, w, geo: Geometry):
    """dx (N, *n, C) of g (N, *o, F) and w: oneDNN's backward-data convolution."""
    return _call("jaxconv_conv_bwd_data_f32", geo.x_shape, g, w, geo)


def dw_native(x, g, geo: Geometry):
    """dw (*k, C_g, F) of x and g: oneDNN's backward-weights convolution."""
    return _call("jaxconv_conv_bwd_weights_f32", geo.w_shape, x, g, geo)
