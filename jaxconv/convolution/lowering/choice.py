"""`backward=` names -> the algorithm of each of a layer's three convolutions, per platform.

``"transpose"`` is what JAX's own autodiff computes (lax convolutions throughout: the input
gradient with lhs dilation, the weight gradient as a batch/feature-swapped convolution).
``"phase"`` replaces the input gradient by its polyphase form; ``"matmul"`` lowers all three to
im2col / col2im and one matrix product each; ``"native"`` runs all three on oneDNN's CPU kernels
(`lowering.native`, where the optional package is built). ``"auto"`` takes the native kernels
where `_native_rule` says they were measured faster (float32 and bfloat16 layers but those with
one input channel per group outside depthwise), and otherwise picks per shape and per
convolution by the pure-JAX rule in `auto_algorithms`, measured on XLA:CPU (per-op table there;
whole-layer numbers in experiments/results/benchmark.md, columns auto, auto (pure) and native);
a layer on the kernels carries the pure-JAX picks as its ``fallback``, lowered where a custom
call cannot go (jax.export, several devices). ``"lean"`` picks by `lean_algorithms`, never
above autodiff's compiled temp memory. Both rules hold on CPU only, where they were measured:
lowered for any other platform (GPU, TPU), ``"auto"`` and ``"lean"`` run XLA's own
convolutions (`XLA_CONVOLUTIONS`). The choice is made per platform of the compilation, not of
the machine that traces: `compute` stages both with `jax.lax.platform_dependent`, and each
lowering keeps only its own platform's branch.

The exact algorithms (channels-last on a `Geometry`, pure jnp/lax, no derivative rules: the
rules in `rules.py` call `compute`, so how a value is computed never changes how it is
differentiated):

| role | algorithm | module | what |
|---|---|---|---|
| fwd | "xla" | `lowering.xla` | one `lax.conv_general_dilated` |
| fwd | "matmul" | `lowering.im2col` | patches (M, K C) times w (K C, F) |
| fwd | "shift" | `lowering.depthwise` | sum of K shifted slices times w[m] (C // G == 1) |
| dx | "transpose" | `lowering.xla` | dilate_s(g) correlated with rot180(w), regrouped |
| dx | "phase" | `lowering.polyphase` | s^D stride-1 correlations with sub-kernels |
| dx | "matmul" | `lowering.im2col` | col2im of g w^T |
| dx | "taps" | `lowering.im2col` | one product per tap, placed at its offset |
| dx | "shift" | `lowering.depthwise` | sum of K placed g * w[m] |
| dw | "xla" | `lowering.xla` | x correlated with g (batch and feature axes swapped) |
| dw | "matmul" | `lowering.im2col` | patches^T g |
| dw | "shift" | `lowering.depthwise` | per tap, slice_m(x_p) * g summed over batch and space |
"""

from __future__ import annotations

import math

import numpy as np
from jax import lax

from jaxconv._core.native import batch_sharding, native_status, on_a_mesh, pure_jax, use_native
from jaxconv._core.padding import effective_kernel, out_size
from jaxconv._core.validate import byte_size
from jaxconv.convolution.lowering.depthwise import dw_shift, dx_shift, fwd_shift
from jaxconv.convolution.lowering.geometry import Geometry, lax_params
from jaxconv.convolution.lowering.im2col import dw_matmul, dx_matmul, dx_taps, fwd_matmul
from jaxconv.convolution.lowering.native import dw_native, dx_native, fits, fwd_native, per_shard
from jaxconv.convolution.lowering.polyphase import dx_phase
from jaxconv.convolution.lowering.xla import dw_xla, dx_transpose, fwd_xla

# im2col patches larger than this (bytes) are never materialised by "auto".
PATCH_BYTES_LIMIT = 256 * 2**20
# Layers with one input channel (not depthwise) run on the native kernels from this many
# multiply-adds on: where oneDNN runs its thread team (native/src/conv_onednn.cc, kSmallCall).
ONE_CHANNEL_NATIVE_MACS = 2**22
# col2im (dx "matmul") writes one column per tap and adds them back: worth it up to this size
# for one input channel per group; with more channels, per-tap products ("taps") win above the
# smaller limit (resnet_down and conv_transpose_up: 8-20 % faster per layer; lenet_c2, 2.5 MB of
# columns, stays faster with col2im).
COL2IM_BYTES_LIMIT = 32 * 2**20
COL2IM_MANY_CHANNELS_LIMIT = 4 * 2**20


def auto_algorithms(x_shape, w_shape, stride, dilation, groups, itemsize=4, pads=None):
    """(fwd, dx, dw) for a channels-last convolution: the rule measured on XLA:CPU. `pads`
    ((lo, hi) per dim) gives the exact output size; without it, ceil(n / stride) per dim.

    Per-op medians behind it (ms, float32, 2-core AMD EPYC, jax 0.10.2; the benchmark configs):

    ==============  =====================  ==========================  ==================
    config          fwd xla/matmul/shift   dx transpose/phase/matmul   dw xla/matmul
    ==============  =====================  ==========================  ==================
    lenet_c1        1.96 / 3.60 / 0.59     5.63 / 5.88 / 0.82          1.12 / 4.80
    lenet_c2        0.49 / 0.48 / -        1.91 / 1.00 / 0.92          0.49 / 1.22
    resnet_3x3      31.3 / 80.2 / -        33.0 / 34.4 / 53.4          102 / 95.0
    resnet_down     17.8 / 27.4 / -        12.3 / 16.7 / 9.35          24.9 / 17.9
    stem_7x7_s2     5.79 / 7.07 / -        9.67 / 10.5 / 10.3          15.1 / 15.1
    dilated         3.85 / 5.24 / -        4.06 / 3.89 / 3.08          9.23 / 24.3
    depthwise       65.6 / 101 / 1.54      66.5 / 65.8 / 1.38 (1.21)   101 / 90.0 (37.8)
    conv1d_mnist1d  0.64 / 0.19 / 0.19     0.43 / 0.61 / 0.24          0.25 / 0.25
    conv3d_small    7.84 / 3.48 / -        12.7 / 12.7 / 1.91          13.5 / 5.68
    ==============  =====================  ==========================  ==================

    (depthwise: shift in parentheses; glibc's default allocator.) Single ops measured alone do
    not add up to a layer: in one jitted forward+backward, XLA schedules and fuses them together
    (im2col's patches serve both the forward and the weight gradient), so the rule below was
    settled on whole-layer medians (experiments/results/benchmark.md, columns transpose / phase
    / matmul and auto), and only where a choice wins under both allocator settings of
    docs/performance.md (glibc's defaults and the tuned one the benchmark uses). Per-tap
    forward and weight gradients win some layers with the tuned allocator only (conv3d_small
    8.0 vs 9.2 ms, but 19 vs 8.0 with glibc's defaults, page-faulting their per-tap buffers)
    and are not used; the same holds for im2col on the dilated layer (11.6 vs 18.0 ms tuned,
    21.9 vs 18.4).

    - depthwise: shifted multiply-adds for all three (XLA:CPU's grouped convolutions run at a
      fraction of a GFLOP/s);
    - one input channel (e.g. a first layer on grey images or 1-D signals): shifted
      multiply-adds forward, col2im input gradient, weight gradient by XLA (2-D) or im2col;
    - dilated: XLA throughout (im2col of a dilated window reads too sparsely);
    - 1-D, 3-D and beyond: im2col forward and weight gradient (no fast XLA:CPU convolution),
      per-tap products for the input gradient (conv3d_small: 11.5 ms per layer against 25-35
      with XLA's or col2im's input gradient);
    - 2-D with few input channels (<= 4, an RGB stem): im2col forward and weight gradient (one
      patch matrix serves both), XLA's input gradient (stem_7x7_s2: 21 ms per layer, 28 with an
      XLA forward and the polyphase input gradient);
    - other 2-D layers: im2col forward and weight gradient; col2im input gradient while the
      columns stay under 4 MiB, per-tap products above (resnet_down 30.3 vs 32.0 ms tuned,
      42.9 vs 47.6 default; conv_transpose_up's convolution 7.8 vs 9.7 ms);
    - patches over 256 MiB are never materialised: XLA instead.
    """
    return _auto_rule(x_shape, w_shape, stride, dilation, groups, itemsize, pads)[0]


def _auto_rule(x_shape, w_shape, stride, dilation, groups, itemsize, pads):
    """`auto_algorithms`' (fwd, dx, dw) and the branch's reason, in words: the rule itself."""
    nd = len(x_shape) - 2
    cin_g, k = w_shape[-2], w_shape[:-2]
    n_batch, size, c = x_shape[0], x_shape[1:-1], x_shape[-1]
    if pads is None:
        out = [-(-n // s) for n, s in zip(size, stride)]
    else:
        k_eff = effective_kernel(k, dilation)
        out = out_size(size, k_eff, stride, pads)
    o_cells = n_batch * math.prod(out)
    patch_bytes = o_cells * math.prod(k) * c * itemsize
    patches = f"patches {byte_size(patch_bytes)}"
    if cin_g == 1 and groups > 1:
        return ("shift", "shift", "shift"), "depthwise: shifted multiply-adds for all three"
    if patch_bytes > PATCH_BYTES_LIMIT:
        limit = byte_size(PATCH_BYTES_LIMIT)
        return ("xla", "transpose", "xla"), f"{patches} > {limit} limit: XLA"
    if cin_g == 1 and w_shape[-1] <= 64:
        fits = patch_bytes <= COL2IM_BYTES_LIMIT
        col2im, limit = "matmul" if fits else "taps", byte_size(COL2IM_BYTES_LIMIT)
        dw = "xla" if nd == 2 else "matmul"
        return ("shift", col2im, dw), (
            f"one input channel ({w_shape[-1]} outputs <= 64): shifted multiply-adds forward, "
            + (f"col2im dx ({patches} <= {limit})" if fits else f"per-tap dx ({patches} > {limit})")
            + (", XLA dw (2-D)" if nd == 2 else f", im2col dw ({nd}-D)")
        )
    if any(d > 1 for d in dilation):
        return ("xla", "transpose", "xla"), "dilated: XLA throughout (im2col reads too sparsely)"
    if nd != 2:
        return ("matmul", "taps", "matmul"), f"{nd}-D: im2col forward and dw, per-tap dx"
    if c <= 4:
        return ("matmul", "transpose", "matmul"), (
            f"2-D, {c} input channels (<= 4): im2col forward and dw, XLA dx"
        )
    fits = patch_bytes <= COL2IM_MANY_CHANNELS_LIMIT
    limit = byte_size(COL2IM_MANY_CHANNELS_LIMIT)
    return ("matmul", "matmul" if fits else "taps", "matmul"), (
        "2-D: im2col forward and dw, "
        + (f"col2im dx ({patches} <= {limit})" if fits else f"per-tap dx ({patches} > {limit})")
    )


def _native_rule(x_cl, w_cl, params, dtype) -> str:
    """Why ``"auto"`` runs this layer on the native kernels (given they are available), or ""
    when it keeps its pure-JAX picks.

    Measured per layer in experiments/results/benchmark.md (columns "auto" = this rule, "auto
    (pure)" = `auto_algorithms`, "native"; fwd+bwd medians, float32, 2-core AMD EPYC): oneDNN
    wins every conv layer (0.5-0.85x of the pure-JAX picks: resnet_3x3, resnet_down, stem,
    dilated, depthwise, conv3d_small, conv_transpose_up, lenet_c2). Groups with one input
    channel (not depthwise), where the pure-JAX forward is a handful of fused shifted
    multiply-adds, run the kernels only from `ONE_CHANNEL_NATIVE_MACS` (4 M) multiply-adds on:
    conv1d_mnist1d (1.6 M, oneDNN on one thread) 0.89-1.25 ms native against 0.29-0.44 pure,
    lenet_c1 (5.5 M) 1.55-2.22 ms against 1.96-3.3, native/pure 0.65-0.97 in each of eight runs
    of the benchmark's steady-state protocol (2026-12-05; under the earlier after-pause one
    lenet_c1 was 1.1-1.6x slower native). bfloat16 (oneDNN's AVX-512 BF16 kernels, float32
    accumulation): 0.36-0.71x of the pure-JAX picks on six benchmark layers
    (experiments/results/native_kernels.md). Where the kernels cannot take the layer
    (`native.fits`: float32 only, no lhs dilation, ...) the pure-JAX rule runs.
    """
    if fits(x_cl, w_cl, params, dtype):
        return ""
    groups, cin_g = params.feature_group_count, w_cl[-2]
    if cin_g == 1 and groups == 1:
        k_eff = effective_kernel(w_cl[:-2], params.rhs_dilation)
        out = out_size(x_cl[1:-1], k_eff, params.window_strides, params.padding)
        macs = x_cl[0] * math.prod(out) * math.prod(w_cl[:-2]) * w_cl[-1]
        if macs < ONE_CHANNEL_NATIVE_MACS:
            return ""
        return (
            f"native oneDNN kernels for all three (one input channel, {macs / 2**20:.1f} M "
            f"multiply-adds >= {ONE_CHANNEL_NATIVE_MACS // 2**20} M: measured faster than the "
            "pure-JAX picks there, slower below)"
        )
    return (
        "native oneDNN kernels for all three (float32 and bfloat16 on CPU: measured faster "
        "than the pure-JAX picks on every layer but those with one input channel)"
    )


def lean_algorithms(w_shape, groups, stride=()):
    """(fwd, dx, dw) for ``backward="lean"``: the fastest choice whose compiled temp memory stays
    at or below JAX autodiff's (tests/test_memory.py checks every benchmark config). Nothing is
    materialised beyond the layer's own tensors: XLA's convolutions, the polyphase input
    gradient (no zero-dilated g), shifted multiply-adds where a group has one input channel.

    - depthwise: shifted multiply-adds for all three (below autodiff's memory, and fast);
    - one input channel: shifted multiply-add forward, polyphase dx, XLA weight gradient;
    - strided with more than 4 input channels per group: XLA throughout, autodiff's own
      algorithms (resnet_down: polyphase dx 64 ms per layer against 51 for XLA's transposed
      convolution, which wins once the channels fill its inner loops);
    - otherwise: XLA forward and weight gradient, polyphase dx.
    """
    return _lean_rule(w_shape, groups, stride)[0]


def _lean_rule(w_shape, groups, stride):
    """`lean_algorithms`' (fwd, dx, dw) and the branch's reason, in words."""
    if w_shape[-2] == 1 and groups > 1:
        return ("shift", "shift", "shift"), "depthwise: shifted multiply-adds for all three"
    if w_shape[-2] == 1:
        return ("shift", "phase", "xla"), (
            "one input channel: shifted multiply-add forward, polyphase dx, XLA dw"
        )
    if any(s > 1 for s in stride) and w_shape[-2] > 4:
        return ("xla", "transpose", "xla"), (
            f"strided, {w_shape[-2]} input channels per group (> 4): XLA throughout"
        )
    return ("xla", "phase", "xla"), "XLA forward and dw, polyphase dx (no zero-dilated g)"


# What `auto` and `lean` compute on every platform but CPU: XLA's own convolutions (cuDNN on GPU,
# the convolution units on TPU). The rules above were measured on XLA:CPU only; no other
# platform has measurements that would justify another algorithm there yet
# (experiments/gpu_check.sh records them when a GPU is at hand).
XLA_CONVOLUTIONS = ("xla", "transpose", "xla")


def patch_itemsize(dtype, preferred_element_type) -> int:
    """Bytes per im2col patch cell: the wider of the operands' `dtype` (None: float32's 4)
    and `preferred_element_type` (None: none asked for).

    The patches hold the operands themselves (float64: 8, complex128: 16); a wider
    `preferred_element_type` casts them up before the product.
    """
    dtypes = (np.float32 if dtype is None else dtype, preferred_element_type)
    return max(np.dtype(t).itemsize for t in dtypes if t is not None)


def choose_algorithms(backward: str, x_cl, w_cl, params, *, dtype=None) -> tuple[tuple, tuple]:
    """((fwd, dx, dw) on CPU, (fwd, dx, dw) on every other platform) for `backward`.

    `x_cl` / `w_cl` are the channels-last input (after any `padding_mode` padding) and kernel
    shapes, `params` the `ConvParams` of the forward convolution, `dtype` the operands' dtype
    (None: float32). Explicit algorithms run as asked on every platform; ``"auto"`` and
    ``"lean"`` follow the CPU rules above on CPU and `XLA_CONVOLUTIONS` elsewhere; ``"phase"``
    is the polyphase input gradient with ``"auto"``'s forward and weight gradient.

    ``"auto"``'s byte limits count the im2col patches, (N prod(o)) x (prod(k) C) cells of
    `patch_itemsize` bytes each: the wider of `dtype` and the `preferred_element_type` (a
    float64 layer's patches are twice a float32 one's, a complex128 layer's four times).
    """
    cpu, elsewhere, _ = _choose(backward, x_cl, w_cl, params, dtype)
    return cpu, elsewhere


# Why `auto` and `lean` run `XLA_CONVOLUTIONS` on every platform but CPU.
OFF_CPU = "XLA's own convolutions off CPU (the rule was measured on XLA:CPU only)"


def _choose(backward: str, x_cl, w_cl, params, dtype):
    """`choose_algorithms`' two picks and the reasons for them, (CPU's, elsewhere's): the one
    place the choice per `backward` is written."""
    p = params
    groups = p.feature_group_count
    asked = f"backward={backward!r}: as asked"
    if backward == "native":
        status, lacks = native_status(), fits(x_cl, w_cl, p, dtype)
        if not use_native() and status:
            status = type(status)(False, "inside jaxconv._core.native.pure_jax()")
        if status and not lacks:
            return ("native",) * 3, XLA_CONVOLUTIONS, (asked, f"backward='native': {OFF_CPU}")
        not_here = status.reason if not status else f"the native kernels take {lacks}"
        cpu, elsewhere, (why, why_elsewhere) = _choose("auto", x_cl, w_cl, params, dtype)
        return (
            cpu,
            elsewhere,
            (f"backward='native' not used ({not_here}): 'auto' instead: {why}", why_elsewhere),
        )
    if backward == "transpose":
        return XLA_CONVOLUTIONS, XLA_CONVOLUTIONS, (asked, asked)
    if backward == "matmul":
        return ("matmul",) * 3, ("matmul",) * 3, (asked, asked)
    if backward == "lean":
        picks, why = _lean_rule(w_cl, groups, p.window_strides)
        return picks, XLA_CONVOLUTIONS, (f"backward='lean': {why}", f"backward='lean': {OFF_CPU}")
    if backward == "auto" and use_native():
        why_native = _native_rule(x_cl, w_cl, p, dtype)
        if why_native:
            return ("native",) * 3, XLA_CONVOLUTIONS, (why_native, OFF_CPU)
    itemsize = patch_itemsize(dtype, p.preferred_element_type)
    cpu, why = _auto_rule(x_cl, w_cl, p.window_strides, p.rhs_dilation, groups, itemsize, p.padding)
    if backward == "phase":
        return (
            (cpu[0], "phase", cpu[2]),
            ("xla", "phase", "xla"),
            (
                f"backward='phase': polyphase dx as asked; fwd and dw as 'auto' ({why})",
                "backward='phase': polyphase dx as asked, XLA fwd and dw",
            ),
        )
    return cpu, XLA_CONVOLUTIONS, (why, OFF_CPU)


def explain_geometry(geo: Geometry) -> dict:
    """What was chosen for the convolution `geo` and why: ``{"backward": geo.backward,
    "cpu": (fwd, dx, dw), "elsewhere": (fwd, dx, dw), "cpu_reason": str,
    "elsewhere_reason": str}``, "elsewhere" being every platform but CPU (GPU, TPU).

    The reasons are the rule's own (`_choose`, `_auto_rule`, `_lean_rule`), evaluated again on
    the shapes, settings and operand dtype `geo` records; the picks are the ones `geo` carries
    (those `compute` runs).
    """
    cpu, elsewhere, (why, why_elsewhere) = _choose(
        geo.backward, geo.x_shape, geo.w_shape, lax_params(geo), geo.dtype
    )
    picks = (geo.fwd, geo.dx, geo.dw)
    recorded = picks if geo.elsewhere is None else tuple(geo.elsewhere)
    if (cpu, elsewhere) != (picks, recorded):  # a Geometry not built by `layer_geometry`
        why = why_elsewhere = "as recorded in the geometry"
    elif geo.fallback is not None:
        why += (
            f"; {'/'.join(geo.fallback)} where a custom call cannot go (jax.export, a program "
            "partitioned over several devices)"
        )
    return {
        "backward": geo.backward,
        "cpu": picks,
        "elsewhere": recorded,
        "cpu_reason": why,
        "elsewhere_reason": why_elsewhere,
    }


def layer_geometry(x_cl, w_cl, params, backward: str = "auto", *, dtype=None) -> Geometry:
    """The `Geometry` of a channels-last conv layer with its algorithms per platform: the one
    builder behind `conv`, `conv_transpose`, the gradient functions and the drop-in. `dtype`:
    the operands' dtype (None: float32), which sizes the patches `choose_algorithms` counts."""
    p = params
    dtype = None if dtype is None else np.dtype(dtype)
    (fwd, dx, dw), elsewhere = choose_algorithms(backward, x_cl, w_cl, p, dtype=dtype)
    fallback = None
    if "native" in (fwd, dx, dw):  # for jax.export and multi-device programs
        with pure_jax():
            fallback = choose_algorithms(backward, x_cl, w_cl, p, dtype=dtype)[0]
    return Geometry(
        x_shape=tuple(x_cl),
        w_shape=tuple(w_cl),
        stride=p.window_strides,
        pads=p.padding,
        dilation=p.rhs_dilation,
        groups=p.feature_group_count,
        precision=p.precision,
        pet=p.preferred_element_type,
        fwd=fwd,
        dx=dx,
        dw=dw,
        elsewhere=None if elsewhere == (fwd, dx, dw) else elsewhere,
        backward=backward,
        dtype=dtype,
        fallback=fallback,
    )


def rebatched(geo: Geometry, x_cl, w_cl, groups: int) -> Geometry:
    """`geo` for new channels-last shapes and group count (a vmapped axis folded into the
    batch, channel or group axes), its algorithms chosen again for them (same operand dtype)."""
    params = lax_params(geo)._replace(feature_group_count=groups)
    return layer_geometry(x_cl, w_cl, params, geo.backward, dtype=geo.dtype)


FWD = {"xla": fwd_xla, "matmul": fwd_matmul, "shift": fwd_shift, "native": fwd_native}

DX = {
    "transpose": dx_transpose,
    "phase": dx_phase,
    "matmul": dx_matmul,
    "taps": dx_taps,
    "shift": dx_shift,
    "native": dx_native,
}

DW = {"xla": dw_xla, "matmul": dw_matmul, "shift": dw_shift, "native": dw_native}

_ROLES = {"fwd": (0, FWD), "dx": (1, DX), "dw": (2, DW)}


def compute(role: str, geo: Geometry, a, b, dtype):
    """`role` ("fwd", "dx" or "dw") of the convolution `geo` applied to (a, b), cast to `dtype`,
    by the algorithm chosen for the platform the computation is compiled for: ``geo.<role>`` on
    CPU, ``geo.elsewhere`` on every other platform. With two different choices both are staged
    by `jax.lax.platform_dependent`; each lowering keeps only its own platform's branch (no
    conditional reaches the compiler), so one jitted, exported or AOT-compiled function is
    right on every platform."""
    i, table = _ROLES[role]
    cpu = (geo.fwd, geo.dx, geo.dw)[i]
    other = cpu if geo.elsewhere is None else geo.elsewhere[i]

    def by(algorithm):
        return lambda a, b: table[algorithm](a, b, geo).astype(dtype)

    on_cpu = by(cpu)
    if geo.fallback is not None and on_a_mesh(a, b):
        # sharding in the types: the kernels per batch shard, else the fallback XLA partitions
        if cpu == "native" and batch_sharding(a, b, both=role == "dw") is not None:
            kernel = table["native"]
            on_cpu = lambda a, b: per_shard(kernel, role, a, b, geo).astype(dtype)  # noqa: E731
            cpu = "native per shard"
        else:
            cpu = geo.fallback[i]
            on_cpu = by(cpu)
    if other == cpu:
        return on_cpu(a, b)
    return lax.platform_dependent(a, b, cpu=on_cpu, default=by(other))
