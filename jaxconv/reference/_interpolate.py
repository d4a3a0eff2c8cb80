"""Interpolation (PyTorch's ``F.interpolate``) and its gradient, one output cell at a time.

Per spatial dim, each output cell o reads a few input cells with weights, from PyTorch's
definitions (``aten/src/ATen/native/UpSample.h`` and the CPU kernels' index/weight helpers):
the ratio (``(L - 1) / (O - 1)`` with align_corners, ``1 / s`` for a given scale factor s,
else ``L / O``), nearest's ``floor(o ratio)`` and nearest-exact's ``floor((o + 0.5) ratio)``
(rounded to float32 first, as ``floorf``), linear's two taps, cubic convolution with
A = -0.75 on four border-clamped taps, adaptive average windows for "area", and the
antialias filter (triangle, or cubic with a = -0.5) stretched by the ratio and normalised.
The forward applies the dims one after the other; the gradient spreads g back through the same
taps (dims in reverse order). Float64 throughout; x is (N, *spatial, C) or, with
``layout="channels_first"``, (N, C, *spatial). This module never imports jax.
"""

from __future__ import annotations

import math

import numpy as np


def _per_dim(v, nd):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


def _cubic(t, a):
    t = abs(t)
    if t <= 1:
        return ((a + 2) * t - (a + 3)) * t * t + 1
    if t < 2:
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return 0.0


def _floorf(c):
    return int(math.floor(float(np.float32(c))))


def _taps(n, o_size, scale, mode, align_corners, antialias, rank, float64):
    """For each output cell of one dim: a list of (input cell, weight)."""
    rows = []
    if mode in ("nearest", "nearest-exact"):
        if rank == 2 and mode == "nearest" and o_size == n:
            return [[(o, 1.0)] for o in range(o_size)]
        if rank == 2 and mode == "nearest" and o_size == 2 * n:
            return [[(o // 2, 1.0)] for o in range(o_size)]
        dt = np.float64 if float64 else np.float32
        ratio = dt(1.0 / scale) if scale is not None else dt(n) / dt(o_size)
        for o in range(o_size):
            pos = dt(o) + dt(0.5) if mode == "nearest-exact" else dt(o)
            rows.append([(min(_floorf(pos * ratio), n - 1), 1.0)])
        return rows
    if mode == "area":
        for o in range(o_size):
            start = (o * n) // o_size
            end = ((o + 1) * n + o_size - 1) // o_size
            rows.append([(i, 1.0 / (end - start)) for i in range(start, end)])
        return rows
    if align_corners:
        ratio = (n - 1) / (o_size - 1) if o_size > 1 else 0.0
    else:
        ratio = 1.0 / scale if scale is not None else n / o_size
    cubic = mode == "bicubic"
    if antialias:
        if o_size == n:
            return [[(o, 1.0)] for o in range(o_size)]
        support = (2.0 if cubic else 1.0) * (ratio if ratio >= 1 else 1.0)
        inv = 1.0 / ratio if ratio >= 1 else 1.0
        width = 2 * math.ceil(support) + 1
        for o in range(o_size):
            centre = ratio * (o + 0.5)
            lo = max(int(centre - support + 0.5), 0)
            size = min(max(min(int(centre + support + 0.5), n) - lo, 0), width)
            ws = []
            for j in range(size):
                t = (j + lo - centre + 0.5) * inv
                ws.append(_cubic(t, -0.5) if cubic else max(0.0, 1.0 - abs(t)))
            total = sum(ws)
            rows.append([(lo + j, w / total if total != 0 else w) for j, w in enumerate(ws)])
        return rows
    for o in range(o_size):
        if not cubic:
            if o_size == n:
                rows.append([(o, 1.0)])
                continue
            c = ratio * o if align_corners else max(ratio * (o + 0.5) - 0.5, 0.0)
            i = min(_floorf(c), n - 1)
            lam = min(max(c - i, 0.0), 1.0)
            rows.append([(i, 1.0 - lam), (min(i + 1, n - 1), lam)])
        else:
            c = ratio * o if align_corners else ratio * (o + 0.5) - 0.5
            i = min(_floorf(c), n - 1)
            t = min(max(c - i, 0.0), 1.0)
            ws = [
                _cubic(t + 1, -0.75),
                _cubic(t, -0.75),
                _cubic(1 - t, -0.75),
                _cubic(2 - t, -0.75),
            ]
            rows.append([(min(max(i - 1 + k, 0), n - 1), ws[k]) for k in range(4)])
    return rows


def _geometry(shape, size, scale_factor, mode, align_corners, recompute_scale_factor,
              antialias, layout, float64):  # fmt: skip
    spatial = shape[1:-1] if layout == "channels_last" else shape[2:]
    nd = len(spatial)
    if size is not None:
        out, scales = _per_dim(size, nd), (None,) * nd
    else:
        s = _per_dim(scale_factor, nd)
        out = tuple(math.floor(n * f) for n, f in zip(spatial, s))
        scales = (None,) * nd if recompute_scale_factor or mode == "area" else s
    kind = "linear" if mode in ("linear", "bilinear", "trilinear") else mode
    return [
        _taps(n, o, sc, kind, bool(align_corners), antialias, nd, float64)
        for n, o, sc in zip(spatial, out, scales)
    ]


def _to_cl(a, layout):
    return a if layout == "channels_last" else np.moveaxis(a, 1, -1)


def _from_cl(a, layout):
    return a if layout == "channels_last" else np.moveaxis(a, -1, 1)


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False, layout="channels_last"):  # fmt: skip
    """y[..., o, ...] = sum over the taps (i, w) of o: w x[..., i, ...], one dim after another.

    Nearest indices use float64 arithmetic for a float64 `x`, float32 otherwise (PyTorch)."""
    f64 = np.asarray(x).dtype == np.float64
    taps = _geometry(np.shape(x), size, scale_factor, mode, align_corners,
                     recompute_scale_factor, antialias, layout, f64)  # fmt: skip
    y = _to_cl(np.asarray(x, np.float64), layout)
    for d, rows in enumerate(taps):
        axis = 1 + d
        shape = list(y.shape)
        shape[axis] = len(rows)
        out = np.zeros(shape)
        for o, row in enumerate(rows):
            for i, w in row:
                out[(slice(None),) * axis + (o,)] += w * y[(slice(None),) * axis + (i,)]
        y = out
    return _from_cl(y, layout)


def interpolate_grad(x_shape, g, size=None, scale_factor=None, mode="nearest",
                     align_corners=None, recompute_scale_factor=None, antialias=False,
                     layout="channels_last", dtype=np.float64):  # fmt: skip
    """dx[..., i, ...] = sum over the taps (i, w) of each o: w g[..., o, ...], dims in reverse.

    `dtype`: the forward input's dtype (nearest indices' precision)."""
    f64 = np.dtype(dtype) == np.float64
    taps = _geometry(tuple(x_shape), size, scale_factor, mode, align_corners,
                     recompute_scale_factor, antialias, layout, f64)  # fmt: skip
    spatial = _to_cl(np.zeros(x_shape, np.int8), layout).shape[1:-1]
    dx = _to_cl(np.asarray(g, np.float64), layout)
    for d in reversed(range(len(taps))):
        axis = 1 + d
        shape = list(dx.shape)
        shape[axis] = spatial[d]
        out = np.zeros(shape)
        for o, row in enumerate(taps[d]):
            for i, w in row:
                out[(slice(None),) * axis + (i,)] += w * dx[(slice(None),) * axis + (o,)]
        dx = out
    return _from_cl(dx, layout)
