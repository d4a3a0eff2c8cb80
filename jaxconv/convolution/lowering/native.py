"""The three convolutions of a layer on native CPU kernels (oneDNN, through XLA's FFI).

The same three maps as every other lowering (one spatial dim shown; C_g = C / G input and
F_g = F / G output channels per group g, channel f = g F_g + o):

- forward: ``y[n, j, f] = sum_{m, c} x_p[n, j s + m d, g C_g + c] w[m, c, f]``;
- input gradient (its transpose in x): ``dx = `` g zero-dilated by s, correlated with the
  180-degree rotated kernel, channels regrouped -- the transposed convolution of g;
- weight gradient (its transpose in w): ``dw[m, c, f] = sum_{n, j} x_p[n, j s + m d, g C_g + c]
  g[n, j, f]``.

Each is one custom call (`_core.native.TARGETS`, handlers in ``native/src/conv_onednn.cc``)
on the channels-last arrays; the settings travel as the call's attributes. The operands are
float32 or bfloat16 (the ``_f32`` or ``_bf16`` handlers), the result float32 in both: bfloat16
products accumulate in float32 as in the pure-JAX lowerings (``preferred_element_type``
float32), and the rules cast the result to the dtype they return.
Only the lowering changes: the primitives' JVP, transpose, batching and explicit VJP rules are
the same as for every other algorithm, so every JAX transformation runs on them. `fits` says
statically which layers the kernels take; `choice` picks this lowering only for those and only
where `_core.native.native_available()` is true, and only on CPU. `cpu_lowering` lowers a
primitive with the geometry's pure-JAX `fallback` picks where a custom call cannot go
(`jax.export`, a program partitioned over several devices), except that over an explicit mesh
whose types shard only the batch the kernels run per shard (`per_shard`).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.interpreters import mlir
from jax.sharding import PartitionSpec as P

from jaxconv._core.native import batch_sharding, conv_workspace_bytes, lowering_blocker, on_a_mesh
from jaxconv.convolution.lowering.geometry import Geometry

# The operand dtypes the kernels take, each with its FFI targets' suffix.
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(jnp.bfloat16): "bf16"}


def fits(x_cl, w_cl, params, dtype) -> str:
    """ "" when the native kernels compute this layer, else what they lack (static)."""
    p = params
    nd = len(x_cl) - 2
    if np.dtype(np.float32 if dtype is None else dtype) not in SUFFIX:
        return f"bfloat16 or float32 only (operands are {np.dtype(dtype).name})"
    if p.preferred_element_type is not None and np.dtype(p.preferred_element_type) != np.float32:
        return "no preferred_element_type but float32"
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


_KINDS = {"fwd": 0, "bwd_data": 1, "bwd_weights": 2}


def _call(kernel: str, shape, a, b, geo: Geometry):
    """``jaxconv_conv_<kernel>_bf16`` when both operands are bfloat16, else ``..._f32`` on
    both cast to float32; the result is float32 of `shape` either way. The call's second
    result is its workspace (oneDNN's scratchpad and reordered weights: XLA allocates it and
    counts it in the program's memory analysis), sized now by `conv_workspace_bytes`."""
    t = jnp.bfloat16 if a.dtype == b.dtype == jnp.bfloat16 else jnp.float32
    attrs = _attrs(geo)
    x, w, y = {
        "fwd": (a.shape, b.shape, shape),
        "bwd_data": (shape, b.shape, a.shape),
        "bwd_weights": (a.shape, shape, b.shape),
    }[kernel]
    nbytes = conv_workspace_bytes(_KINDS[kernel], t == jnp.bfloat16, x, w, y, attrs)
    out = (
        jax.ShapeDtypeStruct(tuple(shape), jnp.float32),
        jax.ShapeDtypeStruct((max(nbytes, 0),), jnp.uint8),
    )
    target = f"jaxconv_conv_{kernel}_{SUFFIX[np.dtype(t)]}"
    return jax.ffi.ffi_call(target, out)(a.astype(t), b.astype(t), **attrs)[0]


def fwd_native(x, w, geo: Geometry):
    """y (N, *o, F) of x (N, *n, C) and w (*k, C_g, F): oneDNN's forward convolution."""
    return _call("fwd", geo.out_shape, x, w, geo)


def dx_native(g, w, geo: Geometry):
    """dx (N, *n, C) of g (N, *o, F) and w: oneDNN's backward-data convolution."""
    return _call("bwd_data", geo.x_shape, g, w, geo)


def dw_native(x, g, geo: Geometry):
    """dw (*k, C_g, F) of x and g: oneDNN's backward-weights convolution."""
    return _call("bwd_weights", geo.w_shape, x, g, geo)


def per_shard(kernel, role: str, a, b, geo: Geometry):
    """``kernel(a, b, geo)`` of a program partitioned over a mesh, run per device where the
    operands' types shard only the batch axis (explicit mesh axes; `batch_sharding`): a
    `jax.shard_map` over those axes runs the kernel on each device's shard (the batch divided by
    the shard count) -- forward and input gradient with w replicated, their outputs sharded
    alike; the weight gradient of the local shards summed over the batch axes (``psum``), the
    sum over the batch that dw is -- so nothing is gathered. None where the types shard
    anything else (the caller lowers the pure-JAX fallback, which XLA partitions)."""
    found = batch_sharding(a, b, both=role == "dw")
    if found is None:
        return None
    mesh, names, shards = found
    local = geo._replace(x_shape=(geo.x_shape[0] // shards, *geo.x_shape[1:]))
    batch, whole = P(names), P()
    if role == "dw":
        body = lambda a, b: lax.psum(kernel(a, b, local), names)  # noqa: E731
        specs = ((batch, batch), whole)
    else:
        body = lambda a, b: kernel(a, b, local)  # noqa: E731
        specs = ((batch, whole), batch)
    # check_vma=False: the custom call has no rule for varying-axis types.
    mapped = jax.shard_map(body, mesh=mesh, in_specs=specs[0], out_specs=specs[1], check_vma=False)
    return mapped(a, b)


def cpu_lowering(impl):
    """The CPU lowering rule of a conv-family primitive ``impl(a, b, *, geo)``: `impl` traced
    into the computation (as on every platform), with ``geo.fallback``'s pure-JAX algorithms in
    place of the native ones where `lowering_blocker` says the kernels cannot be lowered -- but
    for a program partitioned over an explicit mesh (the operands' types say how), where
    `choice.compute` decides per role from the types (`per_shard`)."""

    def rule(ctx, *args, geo: Geometry):
        blocker = lowering_blocker(ctx)
        by_types = blocker.startswith("partitioned") and on_a_mesh(*ctx.avals_in)
        if geo.fallback is not None and blocker and not by_types:
            fwd, dx, dw = geo.fallback
            geo = geo._replace(fwd=fwd, dx=dx, dw=dw, fallback=None)
        return mlir.lower_fun(partial(impl, geo=geo), multiple_results=False)(ctx, *args)

    return rule
