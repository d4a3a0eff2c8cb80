"""Adaptive pooling: `adaptive_avg_pool` and `adaptive_max_pool` (PyTorch's windows, N-d).

One spatial dim of size L pooled to O outputs (each dim is alike; the windows of a box are the
products of the per-dim windows). Window i spans the input cells::

    [start_i, end_i) = [floor(i L / O), ceil((i + 1) L / O)),    n_i = end_i - start_i

(PyTorch's rule; consecutive windows overlap by at most one cell when O <= L, and O > L repeats
cells). Where L % O == 0 every window has k = L / O cells and stride k: ordinary tiling pooling.

Average (linear)::

    y[i]  = (1 / n_i) sum_{t in window i} x[t]                    (`adaptive_average_p`)
    dx[t] = sum_{i : t in window i} g[i] / n_i                    (`adaptive_adjoint_p`)

Per dim this is a static O x L matrix A (A[i, t] = 1 / n_i on window i) applied along the axis,
and the backward is A^T: the two primitives below are each other's transpose, so every derivative
of every order runs on them (forward mode: the average of the tangent; reverse mode: the
adjoint; second order: the average again). Where every dim divides evenly the op is the tiling
average pool, `avg_pool.average_p` with k = s = L / O (O = 1 everywhere: the global mean), and
its own pair of rules. 16-bit inputs sum in float32. On CPU, float32 pools where the native
kernels are built run the same per-dim matrices as tables of `_core.axis_map`'s primitive
instead (its transpose is A^T too; the kernels take two dims in one pass) unless the windows
tile (those run the tiling pool, on the pooling kernels: measured faster), staged with
`lax.platform_dependent` so that other platforms keep the algorithms above (`_native_average`).

Max::

    y[i]   = max_{t in window i} x[t]        r[i] = the winner (row-major first maximum)
    t_y[i] = t[r[i]]                          (the tangent: forward mode)
    dx[t]  = sum_{i : r[i] = t} g[i]          (the backward: g to the winner)

A `jax.custom_jvp` whose tangent is the input tangent gathered at the winners' flat indices
(`unpool.unpool_gather_p`, linear in the tangent, the indices a constant); its transpose is
`unpool.scatter_p`, g placed on the winners (overlapping windows accumulate): the hand-written
backward. ties="last" takes the last maximum as r[i]; ties="split" shares instead, over the
set T_i of a window's tied cells (`split.py`: t_y[i] the mean of t over T_i, dx[t] the sum of
g[i] / |T_i| over the windows whose T_i holds t; T_i kept as a bitmask over the window's
offsets). The winners are found by comparisons over the cells of each window (the windows'
cells gathered once at static positions, a shorter window's extra cells masked off), never by a
differentiated reduction. Where every dim divides evenly, `max_pool` with k = s = L / O does it
all (its int8 winner offsets as residual, every tie policy).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._core import validate as v
from jaxconv._core.axis_map import AxisTable, make_table, separable_map
from jaxconv._core.dtypes import accumulation
from jaxconv._core.layout import split_layout
from jaxconv._core.linmap import fold_rule
from jaxconv._core.native import on_a_mesh, use_native
from jaxconv._core.primitive import linear, primitive
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike
from jaxconv._core.window import Window
from jaxconv.pooling.avg_pool import AvgCfg, average, mean
from jaxconv.pooling.max_pool import tiling_max_pool
from jaxconv.pooling.split import Boxes, equal, pack, winner_tangents

_I32 = jnp.int32

OutputSize = int | None | Sequence[int | None]


class AdaptiveCfg(NamedTuple):
    """Static, hashable geometry of one adaptive pooling call."""

    layout: str
    axes: tuple[int, ...]  # spatial axes of x
    size: tuple[int, ...]  # L per dim
    out: tuple[int, ...]  # O per dim


def bounds(n: int, o: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of the o adaptive windows over n cells: [floor(i n / o), ceil((i+1) n / o))."""
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def adaptive_geometry(fn: str, x, output_size, layout: str, ordered=False) -> AdaptiveCfg:
    """Validate the arguments shared by the adaptive pools; the static geometry.
    `ordered`: x may also be an integer or bool array (the max only compares)."""
    v.check_layout(fn, layout)
    (v.check_real if ordered else v.check_float)(fn, "x", x)
    nd = v.spatial_rank(fn, x)
    _, size, _ = split_layout(x.shape, layout)
    axes = tuple(range(1, nd + 1)) if layout == "channels_last" else tuple(range(2, nd + 2))
    v.check_nonempty(fn, "x", x.shape, axes, "cell in every spatial dim (a window needs one)")
    if isinstance(output_size, Sequence) and not isinstance(output_size, str):
        if len(output_size) != nd:
            v.fail(fn, "output_size", output_size, f"must have one entry per spatial dim ({nd})")
        out = tuple(
            n if o is None else v.as_int(fn, "output_size", o) for o, n in zip(output_size, size)
        )
    else:
        out = (v.as_int(fn, "output_size", output_size),) * nd
    if any(o < 1 for o in out):
        v.fail(fn, "output_size", output_size, "must be >= 1 in every dim")
    return AdaptiveCfg(layout, axes, tuple(size), out)


def _tiling(x, cfg: AdaptiveCfg) -> Window:
    """The tiling pool (k = s = L / O) of a geometry where every dim divides evenly."""
    k = tuple(n // o for n, o in zip(cfg.size, cfg.out))
    nd = len(k)
    return Window(
        layout=cfg.layout,
        ndim=x.ndim,
        axes=cfg.axes,
        size=cfg.size,
        window=k,
        stride=k,
        dilation=(1,) * nd,
        pads=((0, 0),) * nd,
        out=cfg.out,
    )


def _divides(cfg: AdaptiveCfg) -> bool:
    return all(n % o == 0 for n, o in zip(cfg.size, cfg.out))


def _tiles(cfg: AdaptiveCfg) -> bool:
    """Whether the windows tile every dim and are not one window (the global mean): the tiling
    average pool, whose pair of rules runs on the native pooling kernels on CPU where they
    are adopted. Measured against the axis maps (fwd+bwd, N32 14² C256 -> 7², 2-core AMD
    EPYC, each call after a 20 ms pause and 10 ms of untimed calls, interleaved medians of 40,
    three processes): the pooling kernels 0.33-0.37 ms, the axis maps 0.40-0.43, the
    pure-JAX pool 0.35-0.41, PyTorch 0.42-0.60. (After a 2 ms pause with no untimed call the
    axis maps were ahead, 0.7-0.95x the pooling kernels: the regime the benchmark measured
    before 2026-12-05.)"""
    return _divides(cfg) and not all(o == 1 for o in cfg.out)


# --------------------------------------------------------------------------- average


def adaptive_avg_pool(
    x: ArrayLike,
    output_size: OutputSize,
    *,
    layout: str = "channels_last",
) -> Array:
    r"""N-d adaptive average pooling (PyTorch's windows) whose gradient spreads g_i / n_i.

    Per dim of size L pooled to O, window i spans :math:`[\lfloor iL/O \rfloor,
    \lceil (i+1)L/O \rceil)` with :math:`n_i` cells; a box window is the product of its dims'.

    .. math:: y_i = \frac{1}{n_i} \sum_{t \in W_i} x_t, \qquad
              \frac{\partial E}{\partial x_t} = \sum_{i:\ t \in W_i} \frac{g_i}{n_i}

    The backward is the transpose of the forward's per-dim O x L averaging matrices (each
    input cell gets the averaged gradient of every window holding it); both are primitives that
    are each other's transpose. Where L % O == 0 in every dim this is the tiling average pool
    (window = stride = L / O, `avg_pool`'s rules); O = 1 everywhere is the global mean.

    Args:
      x: (N, *spatial, C) for ``layout="channels_last"``, (N, C, *spatial) for "channels_first";
        any number (>= 1) of spatial dims, floating dtype (16-bit: float32 sums).
      output_size: O, an int (every dim) or one entry per spatial dim, ``None`` keeping that
        dim's size. O > L is allowed (windows repeat cells), as in PyTorch.

    Returns:
      y: (N, *output_size, C) or (N, C, *output_size), x's dtype.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.arange(4.).reshape(1, 4, 1)
      >>> adaptive_avg_pool(x, 3).ravel().tolist()  # windows [0, 2), [1, 3), [2, 4)
      [0.5, 1.5, 2.5]
      >>> jax.grad(lambda x: adaptive_avg_pool(x, 3).sum())(x).ravel().tolist()
      [0.5, 1.0, 1.0, 0.5]
    """
    cfg = adaptive_geometry("adaptive_avg_pool", x, output_size, layout)
    pure = _pure_average(x, cfg)
    maps = _average_maps(cfg)
    if not (maps[0] and _native_average(x)) or _tiles(cfg):
        return auto_partitioned(pure, x)

    def on_cpu(x):
        return separable_map(x, *maps)

    return auto_partitioned(lambda x: lax.platform_dependent(x, cpu=on_cpu, default=pure), x)


def _pure_average(x, cfg: AdaptiveCfg):
    """The pure-JAX adaptive average: the global mean's primitive pair where O = 1 everywhere,
    the tiling average pool where every dim divides evenly, else `adaptive_average_p`."""
    if all(o == 1 for o in cfg.out) and all(n > 0 for n in cfg.size):
        # one window: the global mean (its primitive pair), the pooled dims kept as size 1
        y_shape = tuple(1 if a in cfg.axes else e for a, e in enumerate(x.shape))
        return lambda x: mean(x, cfg.layout).reshape(y_shape)
    if _divides(cfg):
        win = _tiling(x, cfg)
        counts = tuple((k,) * o for k, o in zip(win.window, cfg.out))
        avg = AvgCfg(win, counts, None)
        return lambda x: average(x, avg)
    return lambda x: adaptive_average_p.bind(x, cfg=cfg)


@functools.lru_cache(maxsize=256)
def _average_table(n: int, o: int) -> AxisTable:
    """`_matrix(n, o)` as an `AxisTable` (A[i, t] = 1 / n_i on window i)."""
    start, end = bounds(n, o)
    width = int((end - start).max())
    idx = np.zeros((o, width), np.int64)
    w = np.zeros((o, width))
    for i, (s, e) in enumerate(zip(start, end)):
        idx[i] = s  # padding taps (shorter windows): weight 0 on the window's first cell
        idx[i, : e - s] = np.arange(s, e)
        w[i, : e - s] = 1.0 / (e - s)
    return make_table(n, idx, w)


def _average_maps(cfg: AdaptiveCfg) -> tuple[tuple[AxisTable, ...], tuple[int, ...]]:
    """The averaging tables of the pooled dims (O != L) and their axes."""
    dims = [(a, n, o) for a, n, o in zip(cfg.axes, cfg.size, cfg.out) if n != o]
    return tuple(_average_table(n, o) for _, n, o in dims), tuple(a for a, _, _ in dims)


def _native_average(x) -> bool:
    """Whether a CPU compilation averages on the native axis-map kernels (`separable_map`):
    float32, the kernels usable (`use_native`), not partitioned over a mesh in the types;
    tiling windows take the tiling pool instead (`_tiles`). Measured (fwd+bwd, 2-core AMD
    EPYC; experiments/benchmark.py's spatial table): N32 14² C256 to 5² (overlapping windows)
    0.36x, N32 7² C512 to 1² 0.69x the pure-JAX algorithms' time. Other platforms keep the
    pure algorithms (not measured there)."""
    return jnp.dtype(x.dtype) == jnp.float32 and use_native() and not on_a_mesh(x)


def _matrix(n: int, o: int, dtype) -> np.ndarray:
    """A (o, n): A[i, t] = 1 / n_i on window i (the forward along one dim; A^T the backward)."""
    start, end = bounds(n, o)
    a = np.zeros((o, n))
    for i, (s, e) in enumerate(zip(start, end)):
        a[i, s:e] = 1.0 / (e - s)
    return a.astype(dtype)


def _apply(x, a, axis):
    """Contract axis `axis` of x (length a.shape[1]) with the matrix a: that axis becomes
    a.shape[0] (full precision: these are exact averages, not a learned product)."""
    y = lax.dot_general(
        x, a, (((axis,), (1,)), ((), ())), precision=lax.Precision.HIGHEST
    )  # (..., other axes, a.shape[0])
    return jnp.moveaxis(y, -1, axis)


def _slices(x, n, o, axis):
    """The same average along `axis` as O static slices summed (cheaper than the matrix
    product for a handful of outputs)."""
    start, end = bounds(n, o)
    parts = [
        jnp.sum(lax.slice_in_dim(x, int(s), int(e), axis=axis), axis=axis, keepdims=True)
        / jnp.asarray(e - s, x.dtype)
        for s, e in zip(start, end)
    ]
    return jnp.concatenate(parts, axis=axis)


def _average_along(x, cfg: AdaptiveCfg):
    acc = accumulation(x.dtype) or x.dtype
    y = x.astype(acc)
    for a, n, o in zip(cfg.axes, cfg.size, cfg.out):
        if n == o:
            continue
        if n % o == 0:  # this dim tiles: a reshape and a sum
            k = n // o
            y = y.reshape(y.shape[:a] + (o, k) + y.shape[a + 1 :]).sum(a + 1) / jnp.asarray(k, acc)
        elif o <= SLICE_OUTPUTS:
            y = _slices(y, n, o, a)
        else:
            y = _apply(y, jnp.asarray(_matrix(n, o, acc)), a)
    return y.astype(x.dtype)


def _adjoint_along(g, cfg: AdaptiveCfg):
    acc = accumulation(g.dtype) or g.dtype
    dx = g.astype(acc)
    for a, n, o in zip(cfg.axes, cfg.size, cfg.out):
        if n == o:
            continue
        if n % o == 0:  # every cell of window i gets g_i / k
            k = n // o
            shape = dx.shape[:a] + (o, k) + dx.shape[a + 1 :]
            dx = jnp.broadcast_to(lax.expand_dims(dx / jnp.asarray(k, acc), (a + 1,)), shape)
            dx = dx.reshape(shape[:a] + (n,) + shape[a + 2 :])
        elif o <= SLICE_OUTPUTS:
            dx = _spread(dx, n, o, a)
        else:
            dx = _apply(dx, jnp.asarray(_matrix(n, o, acc).T), a)
    return dx.astype(g.dtype)


def _spread(g, n, o, axis):
    """The adjoint of `_slices`: g_i / n_i broadcast over window i, padded into place, the O
    pieces summed (XLA fuses them into one loop over dx)."""
    start, end = bounds(n, o)
    dx = None
    for i, (s, e) in enumerate(zip(start, end)):
        gi = lax.slice_in_dim(g, i, i + 1, axis=axis) / jnp.asarray(e - s, g.dtype)
        piece = jnp.broadcast_to(gi, g.shape[:axis] + (int(e - s),) + g.shape[axis + 1 :])
        cfg = [(0, 0, 0)] * g.ndim
        cfg[axis] = (int(s), int(n - e), 0)
        piece = lax.pad(piece, jnp.zeros((), g.dtype), cfg)
        dx = piece if dx is None else dx + piece
    return dx


# Dims pooled to at most this many outputs sum static slices (backward: padded broadcasts);
# more outputs: a matrix product (measured on CPU, (32, 14, 14, 256) -> 5x5 fwd+bwd: slices
# 3.1 ms, matrix 20 ms; (8, 30, 30, 64) -> 13x13: about even).
SLICE_OUTPUTS = 16


def _adaptive_average(x, *, cfg: AdaptiveCfg):
    return _average_along(x, cfg)


def _adaptive_adjoint(g, *, cfg: AdaptiveCfg):
    return _adjoint_along(g, cfg)


adaptive_average_p = primitive("adaptive_avg_pool", _adaptive_average, ("cfg",))
adaptive_adjoint_p = primitive("adaptive_avg_pool_adjoint", _adaptive_adjoint, ("cfg",))
linear(
    adaptive_average_p,
    (0,),
    lambda ct, x, cfg: (adaptive_adjoint_p.bind(ct, cfg=cfg),),
    fold_rule(adaptive_average_p),
)
linear(
    adaptive_adjoint_p,
    (0,),
    lambda ct, g, cfg: (adaptive_average_p.bind(ct, cfg=cfg),),
    fold_rule(adaptive_adjoint_p),
)


# --------------------------------------------------------------------------- max


def adaptive_max_pool(
    x: ArrayLike,
    output_size: OutputSize,
    *,
    ties: str = "first",
    return_indices: bool = False,
    layout: str = "channels_last",
) -> Array | tuple[Array, Array]:
    r"""N-d adaptive max pooling (PyTorch's windows) whose gradient goes to each window's winner.

    Windows as `adaptive_avg_pool`'s: per dim of size L pooled to O, window i spans
    :math:`[\lfloor iL/O \rfloor, \lceil (i+1)L/O \rceil)`.

    .. math:: y_i = \max_{t \in W_i} x_t, \qquad
              \frac{\partial E}{\partial x_t} = \sum_{i:\ \mathrm{winner}(i) = t} g_i

    The forward records each window's winner; the tangent is the input tangent at the winners
    (a gather by flat index) and the backward its transpose, g placed on the winners (windows
    sharing a winner accumulate). With ``ties="split"`` the winners of window i are all its
    cells :math:`T_i` that hold the maximum: the tangent is the mean of the input tangent over
    them and the backward gives each :math:`g_i / |T_i|` (`max_pool`'s "split"). Where
    L % O == 0 in every dim this is `max_pool` with window = stride = L / O.

    Args:
      x: (N, *spatial, C) for ``layout="channels_last"``, (N, C, *spatial) for "channels_first";
        any number (>= 1) of spatial dims; floating, integer or bool dtype (integers and bools:
        the values of lax's max, the derivative JAX gives an integer input, float0).
      output_size: an int (every dim) or one entry per spatial dim, ``None`` keeping that dim.
      ties: "first" (row-major first maximum, PyTorch), "last", or "split" (g shared equally
        among the tied maxima of a window; its tangent their mean).
      return_indices: also return the flat row-major index of each winner into the spatial
        input of its (n, c), int32, y's shape (the first maximum for "split"): `max_unpool`
        takes them as it takes `max_pool`'s.

    Returns:
      y: (N, *output_size, C) or (N, C, *output_size), and the indices if asked.

    NaN counts as larger than every number: a window holding NaN outputs NaN and its gradient
    goes to its first NaN (its last for "last", shared among its NaNs for "split"; PyTorch's
    index is its last NaN).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([1., 4., 2., 0., 3.]).reshape(1, 5, 1)
      >>> adaptive_max_pool(x, 3).ravel().tolist()  # windows [0, 2), [1, 4), [3, 5)
      [4.0, 4.0, 3.0]
      >>> jax.grad(lambda x: adaptive_max_pool(x, 3).sum())(x).ravel().tolist()
      [0.0, 2.0, 0.0, 0.0, 1.0]
      >>> x = jnp.array([1., 3., 3., 0., 3.]).reshape(1, 5, 1)  # window [1, 4) ties
      >>> jax.grad(lambda x: adaptive_max_pool(x, 3, ties="split").sum())(x).ravel().tolist()
      [0.0, 1.5, 0.5, 0.0, 1.0]
    """
    fn = "adaptive_max_pool"
    cfg = adaptive_geometry(fn, x, output_size, layout, ordered=True)
    v.check_choice(fn, "ties", ties, v.TIES)
    v.check_bool(fn, "return_indices", return_indices)
    if _divides(cfg) and cfg.size != cfg.out:  # (all-ones windows: the general path copies)
        k = tuple(n // o for n, o in zip(cfg.size, cfg.out))
        kw = dict(ties=ties, return_indices=return_indices, layout=layout)
        return tiling_max_pool(fn, x, k, **kw)  # its residual: jaxconv.adaptive_max_pool.offsets
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    if ties == "split" and (not floating or math.prod(boxes(cfg).window) == 1):
        ties = "first"  # no derivative to share, or no window of two cells: the same values

    def body(x):
        if floating:
            y, idx, *_ = _adaptive_max(x, cfg, ties)
        else:  # integers and bools: nothing to differentiate (JAX gives float0 tangents)
            y, idx = _winners(x, cfg, ties)
        return (y, idx) if return_indices else y

    return auto_partitioned(body, x)


def boxes(cfg: AdaptiveCfg) -> Boxes:
    """The windows as starts and the widest window per dim (`split.Boxes`)."""
    starts, widest = [], []
    for n, o in zip(cfg.size, cfg.out):
        start, end = bounds(n, o)
        starts.append(tuple(int(s) for s in start))
        widest.append(int(np.max(end - start)))
    return Boxes(cfg.layout, cfg.axes, cfg.size, tuple(widest), cfg.out, tuple(starts))


def _gt(a, b):
    """a > b with NaN above every number (NaN vs NaN: not greater): the first maximum wins."""
    return (a > b) | (jnp.isnan(a) & ~jnp.isnan(b))


def _ge(a, b):
    """a >= b with NaN above every number: the last maximum wins."""
    return (a >= b) | jnp.isnan(a)


def _winners(x, cfg: AdaptiveCfg, ties: str):
    """(y, flat index of the winner) of every adaptive window of x; for ties="split" also the
    tie bits of every window's cells, as uint8 words (`split.pack`; the index: the first
    maximum's).

    Per dim, the cells start_i + m (m < kmax, the widest window) are gathered at static
    positions, so axis a holds O * kmax cells; offset m of every window is then the strided
    slice m::kmax. The cells of a box are visited row-major; those beyond a window's own width
    are masked off (never win, never tie); the first cell of each window is always its own."""
    if jnp.issubdtype(x.dtype, jnp.floating):
        better = _ge if ties == "last" else _gt
    else:
        better = lax.ge if ties == "last" else lax.gt
    geo = boxes(cfg)
    widths = []
    cells = x
    for a, n, o, k in zip(cfg.axes, cfg.size, cfg.out, geo.window):
        start, end = bounds(n, o)
        pos = np.minimum(start[:, None] + np.arange(k), n - 1).reshape(-1)
        cells = jnp.take(cells, pos, axis=a, mode="clip")
        widths.append(end - start)

    def along(values, a):  # a 1-D per-window table as an array broadcast along axis a
        shape = [1] * x.ndim
        shape[a] = len(values)
        return np.asarray(values).reshape(shape)

    slices = []  # (offset's cells, where they belong to their window: None everywhere)
    for m in itertools.product(*(range(k) for k in geo.window)):
        start, limit, step = [0] * x.ndim, list(cells.shape), [1] * x.ndim
        for a, mm, k in zip(cfg.axes, m, geo.window):
            start[a], step[a] = mm, k
        valid = np.ones((1,) * x.ndim, bool)
        for a, mm, w in zip(cfg.axes, m, widths):
            valid = valid & along(w > mm, a)
        slices.append((lax.slice(cells, start, limit, step), None if valid.all() else valid))
    y = slices[0][0]
    off = jnp.zeros(y.shape, _I32)
    for r, (xr, valid) in enumerate(slices[1:], 1):
        take = better(xr, y) if valid is None else better(xr, y) & valid
        y, off = jnp.where(take, xr, y), jnp.where(take, r, off)
    idx, rem = jnp.zeros(off.shape, _I32), off
    ms = []
    for k in reversed(geo.window):
        ms.append(rem % k)
        rem = rem // k
    for a, n, start, mm in zip(cfg.axes, cfg.size, geo.starts, reversed(ms)):
        idx = idx * n + jnp.asarray(along(start, a), _I32) + mm
    if ties != "split":
        return y, idx
    tied = [equal(xr, y) if valid is None else equal(xr, y) & valid for xr, valid in slices]
    return (y, idx, *pack(tied))


@partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _adaptive_max(x, cfg: AdaptiveCfg, ties: str):
    """(y, flat winner indices, *tie words for "split"); differentiated only by the rule
    below."""
    return _winners(x, cfg, ties)


@_adaptive_max.defjvp
def _adaptive_max_jvp(cfg: AdaptiveCfg, ties: str, primals, tangents):
    """The tangent at the winners (`unpool_gather_p`, whose transpose places g on them); for
    "split" the mean over the tied cells (`split.split_pick_p`, whose transpose shares g)."""
    (x,), (t,) = primals, tangents
    out = _adaptive_max(x, cfg, ties)  # a second derivative runs this rule again
    return out, winner_tangents(t, out, ties, boxes(cfg), "adaptive_max_pool")
