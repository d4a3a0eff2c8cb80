r"""`interpolate`: PyTorch's ``F.interpolate``, N-d, with its transposed map as the backward.

Every mode is separable: per spatial dim d a fixed O_d×L_d matrix A_d (its rows: which inputs
output o reads and with which weights), applied one dim at a time,

.. math:: y = A_1 \cdot_1 A_2 \cdot_2 \cdots A_D \cdot_D x , \qquad
          \frac{\partial E}{\partial x} = A_D^\top \cdot_D \cdots A_1^\top \cdot_1 g

(``A \cdot_d x``: A applied along dim d). The backward is the transposed interpolation: each
output's gradient spread back onto the inputs it read, with the weights it read them with --
the weighted scatter-add of g, computed as a gather with A^T's table (`axis_map`). The tables
are computed in NumPy at trace time from the shapes and settings (nothing is saved), and the
map is linear, so forward mode is the map itself on the tangent and every order of derivative
runs on the one primitive `axis_map_p`.

The coordinate maps (PyTorch's, L input cells, O output cells, per dim):

- the ratio: ``(L - 1) / (O - 1)`` with `align_corners` (0 when O = 1); else ``1 / s`` when a
  `scale_factor` s was given and `recompute_scale_factor` is not True; else ``L / O``;
- "nearest": ``i = min(floor(o ratio), L - 1)``; "nearest-exact":
  ``min(floor((o + 0.5) ratio), L - 1)``; the product in the input's precision (float64 for
  float64, float32 otherwise), rounded to float32 before the floor (PyTorch's ``floorf``; e.g.
  L = 16, s = 1.3: output 19 reads input 15). With 2 spatial dims "nearest" copies where O = L
  and reads ``o // 2`` where O = 2L, whatever the scale factor (PyTorch's 2-D kernels; its
  1-D and 3-D ones do not, and neither do we there);
- "linear" ("bilinear", "trilinear"): source ``c = o ratio`` (align_corners) or
  ``max((o + 0.5) ratio - 0.5, 0)``; ``i = min(floor(c), L - 1)``, ``lam = c - i`` clamped to
  [0, 1]; weights ``1 - lam`` on i and ``lam`` on ``min(i + 1, L - 1)``. A dim with O = L is
  copied, whatever the scale factor (PyTorch);
- "bicubic": Keys' cubic convolution with A = -0.75 at source ``o ratio`` or
  ``(o + 0.5) ratio - 0.5`` (not clamped), taps i - 1 .. i + 2 clamped to [0, L - 1] (border
  replication). N-d here (PyTorch: 2-D only), separable; no copy shortcut;
- "area": adaptive average pooling, window o spans ``[floor(o L / O), ceil((o + 1) L / O))``,
  weights 1 / its size;
- `antialias` (linear and cubic modes, any rank here; PyTorch: 2-D bilinear/bicubic only): the
  filter (triangle, or Keys' cubic with a = -0.5 as PIL) stretched by ``ratio`` when
  downsampling (ratio >= 1), centred at ``(o + 0.5) ratio`` (also with align_corners, whose
  ratio is then (L - 1) / (O - 1)), truncated to the input and normalised to sum 1; a dim with
  O = L is copied (PyTorch's forward).

Where our gradient differs from PyTorch's (ours is the exact derivative of the values we and
PyTorch compute; PyTorch's backward is not the derivative of its own forward there):

- "bicubic" without antialias, a `scale_factor` that leaves every spatial size unchanged
  but is not 1 (e.g. 1.1 on 5 cells): the forward reads through the 1/s map, PyTorch's
  backward copies g;
- antialias, a `scale_factor` that leaves a dim's size unchanged but is not 1: the forward
  copies that dim, PyTorch's backward spreads g through the 1/s filter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from jaxconv._core import validate as v
from jaxconv._core.axis_map import make_table, separable_map
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic", "area")
_LINEAR = ("linear", "bilinear", "trilinear")
_NO_CORNERS = ("nearest", "nearest-exact", "area")


def interpolate(
    x: ArrayLike,
    size: int | Sequence[int] | None = None,
    *,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
    layout: str = "channels_last",
) -> Array:
    r"""Resize the spatial dims of x (``F.interpolate``), N-d, whose gradient is the transposed
    interpolation.

    .. math:: y_o = \sum_r W_{o r} \, x_{I_{o r}} \ \text{(per dim)}, \qquad
              \frac{\partial E}{\partial x_t} = \sum_{(o, r) : I_{o r} = t} W_{o r} \, g_o

    Args:
      x: (N, *spatial, C) for ``layout="channels_last"``, (N, C, *spatial) for
        "channels_first"; any number (>= 1) of spatial dims, floating dtype.
      size: the output spatial size: an int (every dim) or one per spatial dim.
      scale_factor: instead of `size`: a number or one per dim; the output size is
        ``floor(L s)``. Exactly one of `size` and `scale_factor`.
      mode: "nearest", "nearest-exact", "linear" (any rank; "bilinear" for 2 spatial dims and
        "trilinear" for 3 are its names in PyTorch, accepted at those ranks only), "bicubic"
        (any rank, separable) or "area" (adaptive average pooling).
      align_corners: linear and cubic modes only (None there means False): the corner cells'
        centres of input and output coincide, ratio (L - 1) / (O - 1).
      recompute_scale_factor: True: the coordinate map uses L / O rather than 1 / s (only
        with `scale_factor`).
      antialias: linear and cubic modes: when downsampling, a filter widened by the ratio
        (PIL's, PyTorch's antialias).
      layout: "channels_last" or "channels_first".

    Returns:
      y: (N, *out, C) or (N, C, *out), x's dtype (16-bit inputs are summed in float32).

    The module docstring has each mode's coordinate map (PyTorch's, including its size
    shortcuts and float32 rounding of nearest indices) and the derivation of the backward:
    per dim the transposed table, applied in reverse dim order; the two settings where
    PyTorch's gradient is not the derivative of its own output, and ours is, are listed there.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([1., 3.]).reshape(1, 2, 1)
      >>> interpolate(x, 4, mode="linear").ravel().tolist()
      [1.0, 1.5, 2.5, 3.0]
      >>> jax.grad(lambda x: interpolate(x, 4, mode="linear").sum())(x).ravel().tolist()
      [2.0, 2.0]
    """
    tables = _tables(x, size, scale_factor, mode, align_corners, recompute_scale_factor,
                     antialias, layout)  # fmt: skip
    first = 1 if layout == "channels_last" else 2

    mapped = [(t, first + d) for d, t in enumerate(tables) if t is not None]

    def body(x):
        return separable_map(x, tuple(t for t, _ in mapped), tuple(a for _, a in mapped))

    return auto_partitioned(body, x)


# --------------------------------------------------------------------------- settings


def _tables(x, size, scale_factor, mode, align_corners, recompute, antialias, layout):
    """Validate; one `AxisTable` per spatial dim (None: the dim is copied)."""
    fn = "interpolate"
    v.check_layout(fn, layout)
    v.check_float(fn, "x", x)
    nd = v.spatial_rank(fn, x)
    v.check_choice(fn, "mode", mode, MODES)
    if mode == "bilinear" and nd != 2 or mode == "trilinear" and nd != 3:
        want = 2 if mode == "bilinear" else 3
        v.fail(fn, "mode", mode, f"needs {want} spatial dims, x has {nd} (use 'linear': any rank)")
    if align_corners is not None:
        v.check_bool(fn, "align_corners", align_corners)
        if mode in _NO_CORNERS:
            v.fail(fn, "align_corners", align_corners,
                   f"must be None with mode={mode!r} (linear and cubic modes only)")  # fmt: skip
    if recompute is not None:
        v.check_bool(fn, "recompute_scale_factor", recompute)
    v.check_bool(fn, "antialias", antialias)
    if antialias and mode not in (*_LINEAR, "bicubic"):
        v.fail(fn, "antialias", antialias, f"is for the linear and cubic modes, not {mode!r}")
    spatial = x.shape[1:-1] if layout == "channels_last" else x.shape[2:]
    first = 1 if layout == "channels_last" else 2
    axes = [first + i for i in range(nd)]
    v.check_nonempty(fn, "x", x.shape, axes, "cell in every spatial dim")
    if size is not None and scale_factor is not None:
        v.fail(
            fn, "scale_factor", scale_factor, "must be None when `size` is given (one of the two)"
        )
    if size is None and scale_factor is None:
        v.fail(fn, "size", size, "or `scale_factor` must be given")
    if size is not None:
        if recompute:
            v.fail(fn, "recompute_scale_factor", recompute, "is not meaningful with `size`")
        out = v.int_tuple(fn, "size", size, nd, minimum=1)
        scales = (None,) * nd
    else:
        factors = _factors(fn, scale_factor, nd)
        out = []
        for d, (n, s) in enumerate(zip(spatial, factors)):
            o = math.floor(n * s)
            if o < 1:
                v.fail(fn, "scale_factor", scale_factor,
                       f"gives an empty output in dim {d} (floor({n} * {s}) = {o})")  # fmt: skip
            out.append(o)
        out = tuple(out)
        scales = (None,) * nd if recompute or mode == "area" else factors
    kind = "linear" if mode in _LINEAR else mode
    corners = bool(align_corners)
    f64 = np.dtype(x.dtype) == np.float64
    return tuple(
        dim_table(n, o, s, kind, corners, antialias, nearest_shortcut=nd == 2, float64=f64)
        for n, o, s in zip(spatial, out, scales)
    )


def _factors(fn, scale_factor, nd):
    if isinstance(scale_factor, Sequence) and not isinstance(scale_factor, str):
        if len(scale_factor) != nd:
            v.fail(fn, "scale_factor", scale_factor, f"must have one entry per spatial dim ({nd})")
        items = list(scale_factor)
    else:
        items = [scale_factor] * nd
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)) or not isinstance(
            s, (int, float, np.integer, np.floating)
        ):
            v.fail(fn, "scale_factor", scale_factor, "must be a number or one per spatial dim",
                   TypeError)  # fmt: skip
        s = float(s)
        if not (math.isfinite(s) and s > 0):
            v.fail(fn, "scale_factor", scale_factor, "must be finite and > 0")
        out.append(s)
    return tuple(out)


# --------------------------------------------------------------------------- per-dim maps


def _ratio(n, o, corners, scale):
    """PyTorch's area_pixel_compute_scale."""
    if corners:
        return (n - 1) / (o - 1) if o > 1 else 0.0
    return 1.0 / scale if scale is not None else n / o


def _floor_f32(c):
    """floor after rounding to float32 (PyTorch's ``floorf`` of a double)."""
    return np.floor(np.asarray(c).astype(np.float32)).astype(np.int64)


def _keys(t, a):
    """Keys' cubic convolution kernel at |t| (a = -0.75 PyTorch's bicubic, -0.5 antialias)."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _antialias(n, o, ratio, cubic):
    """PyTorch's separable antialias weights (its _compute_indices_min_size_weights_aa)."""
    half = 2.0 if cubic else 1.0
    support = half * ratio if ratio >= 1.0 else half
    width = int(math.ceil(support)) * 2 + 1
    inv = 1.0 / ratio if ratio >= 1.0 else 1.0
    centre = ratio * (np.arange(o) + 0.5)
    lo = np.maximum(np.trunc(centre - support + 0.5).astype(np.int64), 0)
    size = np.minimum(np.trunc(centre + support + 0.5).astype(np.int64), n) - lo
    size = np.clip(size, 0, width)
    j = np.arange(width)
    t = (j[None, :] + lo[:, None] - centre[:, None] + 0.5) * inv
    if cubic:
        w = _keys(t, -0.5)
    else:
        w = np.maximum(1.0 - np.abs(t), 0.0)
    w = np.where(j[None, :] < size[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total != 0, w / np.where(total != 0, total, 1.0), w)
    idx = np.minimum(lo[:, None] + j[None, :], n - 1)
    return idx, w


def dim_table(n, o, scale, mode, corners, antialias, *, nearest_shortcut, float64):
    """The `AxisTable` of one spatial dim (n cells -> o cells), None where it is a copy.

    `mode`: "nearest", "nearest-exact", "linear", "bicubic" or "area"; `scale`: the given scale
    factor or None (then L / O); `float64`: the input is float64 (nearest indices' precision).
    """
    out = np.arange(o)
    if mode in ("nearest", "nearest-exact"):
        if nearest_shortcut and mode == "nearest" and o == n:
            return None
        if nearest_shortcut and mode == "nearest" and o == 2 * n:
            idx = out // 2
        else:
            dt = np.float64 if float64 else np.float32
            ratio = dt(1.0 / scale) if scale is not None else dt(n) / dt(o)
            pos = out.astype(dt) + (dt(0.5) if mode == "nearest-exact" else dt(0))
            idx = np.minimum(_floor_f32(pos * ratio), n - 1)
        if o == n and np.array_equal(idx, out):
            return None
        return make_table(n, idx[:, None], np.ones((o, 1)))
    if mode == "area":
        start = (out * n) // o
        end = -((-(out + 1) * n) // o)
        width = int(np.max(end - start))
        j = np.arange(width)
        idx = np.minimum(start[:, None] + j[None, :], n - 1)
        w = np.where(j[None, :] < (end - start)[:, None], 1.0 / (end - start)[:, None], 0.0)
        if o == n:
            return None
        return make_table(n, idx, w)
    ratio = _ratio(n, o, corners, scale)
    cubic = mode == "bicubic"
    if antialias:
        if o == n:
            return None  # PyTorch's forward copies such a dim
        return make_table(n, *_antialias(n, o, ratio, cubic))
    if not cubic:
        if o == n:
            return None
        c = ratio * out if corners else np.maximum(ratio * (out + 0.5) - 0.5, 0.0)
        i = np.minimum(_floor_f32(c), n - 1)
        lam = np.clip(c - i, 0.0, 1.0)
        idx = np.stack([i, np.minimum(i + 1, n - 1)], axis=1)
        return make_table(n, idx, np.stack([1.0 - lam, lam], axis=1))
    c = ratio * out if corners else ratio * (out + 0.5) - 0.5
    i = np.minimum(_floor_f32(c), n - 1)
    t = np.clip(c - i, 0.0, 1.0)
    w = np.stack(
        [_keys(t + 1, -0.75), _keys(t, -0.75), _keys(1 - t, -0.75), _keys(2 - t, -0.75)], 1
    )
    idx = np.clip(i[:, None] + np.arange(-1, 3)[None, :], 0, n - 1)
    return make_table(n, idx, w)
