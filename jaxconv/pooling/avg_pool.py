"""Average pooling: `avg_pool` and `global_avg_pool` (`lp_pool.py` builds on its window sums).

Seed 001 (Jefkine, "Pooling Layer"): for average pooling "the error is multiplied by 1/(N×N) and
assigned to the whole pooling block". With N_i the divisor of window i (its cell count, see
`count_include_pad`/`divisor_override`), one dim, window cells i*s + m - lo::

    y[i]  = (1 / N_i) sum_m x~[i*s + m]
    dx[t] = sum_{i : t in window i} g[i] / N_i

Both ops are linear: primitives whose JVP is the op on the tangent and whose transpose is the
backward above (`avg_pool.py`). The forward sums each window's slices of x
(`reduce.window_sum`). The backward is `reduce.window_sum_adjoint` of g / N: per dim, g
zero-dilated by the stride and summed over k shifted slices (a broadcast and a reshape when
stride == window) -- no scatter. L2-norm pooling, also named in seed 001, is `lp_pool` with
p = 2.

Average pooling's linear maps, as primitives that are each other's transpose.

Seed 001 (Jefkine, "Pooling Layer"): for average pooling "the error is multiplied by 1/(N×N) and
assigned to the whole pooling block". With N_i the divisor of window i, one dim, window cells
i*s + m - lo::

    average:  y[i]  = (1 / N_i) sum_m x~[i*s + m]          (`reduce.window_sum`)
    adjoint:  dx[t] = sum_{i : t in window i} g[i] / N_i   (`reduce.window_sum_adjoint` of g / N)

Both are linear, so the JVP of each is itself on the tangent (forward mode), the transpose of
the average is the hand-written backward (the adjoint) and the adjoint's transpose is the
average again: every derivative of every order runs on these two. The same pair for the mean
over all spatial dims (`global_avg_pool`): ``mean`` and ``spread_mean`` (g / S broadcast over
the S cells). 16-bit inputs sum in float32. All four batch by folding the mapped axis into N.

On CPU, the average and its adjoint of float32 channels-last arrays with 1-3 spatial dims and at
least 16 channels can compute on our own kernels (native/src/pool.cc; `pooling.lowering.native`;
the same divisors N_i, passed as per-dim factors), recorded in ``AvgCfg.native`` when bound and
kept by the transposes: only the lowering changes. Measured (2-core AMD EPYC, AVX-512, kernel vs
the pure algorithm traced in `pure_jax()`, interleaved medians of 80 calls with a 2 ms pause
before each / without it): average 2x2 on N64 32² C64 0.96 / 0.96 (1-D 2: 1.01 / 0.92),
adjoint 1.05 / 1.05; 3x3 s2 p1 on N32 56² C64 average 1.00 / 0.96, adjoint 0.35 / 0.31;
3x3 s1 p1 on N32 28² C64 average 1.07 / 1.12, adjoint 0.82 / 0.52. Re-measured on an idle
machine (fwd+bwd, each variant its own jit, 30 interleaved rounds, 2 ms pause, two runs): with
the average and its adjoint both on the kernels against the pure pair, 2x2 on N64 32² C64
1.09-1.42 ms against 1.91-2.18, on N32 14² C256 0.39-0.69 against 0.64-0.86; the adjoint alone
on the kernel took 1.30-1.52 and 0.50-0.79. So by default the average runs on the kernel for
tiling windows (stride >= window), the adjoint for tiling and overlapping windows (avg_pool 3x3
fwd+bwd 0.51-0.82x), and the overlapping average stays pure (the helper's 1.07-1.12x; the rerun
found it faster, 1.45-1.54 ms against the adjoint alone's 1.69-2.01, not yet confirmed).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._core import validate as v
from jaxconv._core.dtypes import accumulation
from jaxconv._core.linmap import fold_rule
from jaxconv._core.primitive import linear, primitive
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, Ints, Padding
from jaxconv._core.window import Window, pool_window
from jaxconv.pooling.lowering import native as kernels
from jaxconv.pooling.reduce import window_sum, window_sum_adjoint


def avg_pool(
    x: ArrayLike,
    window: Ints,
    *,
    stride: Ints = None,
    padding: Padding = "VALID",
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    layout: str = "channels_last",
) -> Array:
    r"""N-d average pooling whose gradient spreads g_i / N_i over window i.

    .. math:: y_i = \frac{1}{N_i} \sum_{m} \tilde x_{i s + m}, \qquad
              \frac{\partial E}{\partial x_t} = \sum_{i \ni t} \frac{g_i}{N_i}

    Args:
      x: (N, *spatial, C) for ``layout="channels_last"``, (N, C, *spatial) for "channels_first";
        any number (>= 1) of spatial dims, floating dtype.
      window: an int or one per spatial dim (k).
      stride: same; default `window`.
      padding: "VALID", "SAME", an int, one int per dim, or one (lo, hi) pair per dim; padding
        cells are zeros. At most half the window per side (PyTorch's rule).
      ceil_mode: round the output size up (PyTorch): an extra, partial last window when it
        starts inside the input or the left padding.
      count_include_pad: N_i counts the padding cells of window i (PyTorch's default; cells
        beyond the padding that only ceil_mode adds never count). False: only input cells
        (TF's "SAME" average).
      divisor_override: a nonzero int used as N_i for every window.

    Returns:
      y: (N, *out, C) or (N, C, *out).

    Seed 001's rule with N_i = k1*k2 for an unpadded k1×k2 window; windows at the border have
    smaller N_i when count_include_pad=False or under ceil_mode, exactly as PyTorch divides.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([[1., 3.], [2., 0.]]).reshape(1, 2, 2, 1)
      >>> avg_pool(x, 2).ravel().tolist()
      [1.5]
      >>> jax.grad(lambda x: avg_pool(x, 2).sum())(x).ravel().tolist()
      [0.25, 0.25, 0.25, 0.25]
    """
    fn = "avg_pool"
    win = pool_window(fn, x, window, stride, padding, 1, ceil_mode, layout)
    v.check_bool(fn, "count_include_pad", count_include_pad)
    if divisor_override is not None:
        divisor_override = v.as_int(fn, "divisor_override", divisor_override)
        if divisor_override == 0:
            v.fail(fn, "divisor_override", divisor_override, "must not be 0")
        cfg = AvgCfg(win, None, divisor_override)
        return auto_partitioned(lambda x: average(x, cfg), x)
    counts = []
    for n, k, s, (lo, hi), o in zip(win.size, win.window, win.stride, win.pads, win.out):
        start = np.arange(o) * s - lo
        end = np.minimum(start + k, n + hi)  # PyTorch: the ceil_mode overhang never counts
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(tuple(int(c) for c in end - start))
    cfg = AvgCfg(win, tuple(counts), None)
    return auto_partitioned(lambda x: average(x, cfg), x)


def global_avg_pool(
    x: ArrayLike,
    *,
    layout: str = "channels_last",
) -> Array:
    """Mean over all spatial dims: (N, *spatial, C) or (N, C, *spatial) -> (N, C).

    The backward spreads g / S over the S = prod(spatial) cells (seed 001's 1/(N×N) for one
    N×N block); nothing is saved.

    Example:
      >>> import jax.numpy as jnp
      >>> global_avg_pool(jnp.arange(8.).reshape(1, 2, 2, 2)).tolist()
      [[3.0, 4.0]]
    """
    fn = "global_avg_pool"
    v.check_layout(fn, layout)
    v.check_float(fn, "x", x)
    v.spatial_rank(fn, x)
    c_axis = -1 if layout == "channels_last" else 1
    return auto_partitioned(lambda x: mean(x, layout), x, out=((0, 0), (0, c_axis)))


class AvgCfg(NamedTuple):
    win: Window
    counts: tuple[tuple[int, ...], ...] | None  # per-dim divisor factors, N_i = prod_d
    override: int | None
    native: bool = False  # on CPU, the native kernels (chosen at bind time: `_bind`)


def _divisor(cfg: AvgCfg, dtype):
    """N_i broadcastable against y: a scalar, or the outer product of the per-dim counts."""
    if cfg.counts is None:
        return jnp.asarray(cfg.override, dtype)
    win, div = cfg.win, np.ones((1,) * cfg.win.ndim)
    for a, c in zip(win.axes, cfg.counts):
        shape = [1] * win.ndim
        shape[a] = len(c)
        div = div * np.asarray(c, np.float64).reshape(shape)
    return jnp.asarray(div, dtype)


def _x_shape(win: Window, y_shape):
    return tuple(win.size[win.axes.index(i)] if i in win.axes else e for i, e in enumerate(y_shape))


def _average(x, *, cfg: AvgCfg):
    acc = accumulation(x.dtype) or x.dtype  # float32 sums for 16-bit inputs
    y = window_sum(x.astype(acc), cfg.win) / _divisor(cfg, acc)
    return y.astype(x.dtype)


def _adjoint(g, *, cfg: AvgCfg):
    shape = _x_shape(cfg.win, g.shape)
    acc = accumulation(g.dtype) or g.dtype
    dx = window_sum_adjoint(g.astype(acc) / _divisor(cfg, acc), cfg.win, shape)
    return dx.astype(g.dtype)


def _chosen(params) -> bool:
    return params["cfg"].native


def _average_native(x, *, cfg: AvgCfg):
    return kernels.average(x, cfg.win, cfg.counts, cfg.override)


def _adjoint_native(g, *, cfg: AvgCfg):
    return kernels.average_adjoint(g, cfg.win, cfg.counts, cfg.override)


average_p = primitive("avg_pool", _average, ("cfg",))
adjoint_p = primitive("avg_pool_adjoint", _adjoint, ("cfg",))


kernels.register(average_p, kernels.key("average"), _average, _average_native, ("cfg",), _chosen)
kernels.register(adjoint_p, kernels.key("adjoint"), _adjoint, _adjoint_native, ("cfg",), _chosen)
linear(average_p, (0,), lambda ct, x, cfg: (adjoint_p.bind(ct, cfg=cfg),), fold_rule(average_p))
linear(adjoint_p, (0,), lambda ct, g, cfg: (average_p.bind(ct, cfg=cfg),), fold_rule(adjoint_p))


def _bind(prim, a, cfg: AvgCfg):
    """`prim` on a with ``cfg.native`` set where the kernels are usable (static, at bind time:
    `lowering.native.usable`); the transposes keep it."""
    return prim.bind(a, cfg=cfg._replace(native=kernels.usable(a, cfg.win)))


def average(x, cfg: AvgCfg):
    return _bind(average_p, x, cfg)


def window_sums(x, win: Window):
    """y[i] = sum over window i of x (zero padding), as the linear primitive."""
    return _bind(average_p, x, AvgCfg(win, None, 1))


def window_sums_adjoint(g, win: Window):
    """The transpose of `window_sums`: every input cell gets the sum of its windows' g."""
    return _bind(adjoint_p, g, AvgCfg(win, None, 1))


# --------------------------------------------------------------------------- global mean


def spatial_axes(layout, ndim):
    return tuple(range(1, ndim - 1)) if layout == "channels_last" else tuple(range(2, ndim))


def _mean(x, *, layout):
    return jnp.mean(x, axis=spatial_axes(layout, x.ndim))


def _spread_mean(g, *, layout, spatial):
    """g / S broadcast over the S = prod(spatial) cells of each (n, c)."""
    axes = spatial_axes(layout, g.ndim + len(spatial))
    x_shape = list(g.shape)
    for a, n in zip(axes, spatial):
        x_shape.insert(a, n)
    size = 1
    for n in spatial:
        size *= n
    return jnp.broadcast_to(lax.expand_dims(g / size, axes), tuple(x_shape))


mean_p = primitive("global_avg_pool", _mean, ("layout",))
spread_mean_p = primitive("global_avg_pool_adjoint", _spread_mean, ("layout", "spatial"))


def _mean_t(ct, x, *, layout):
    spatial = tuple(x.aval.shape[a] for a in spatial_axes(layout, x.aval.ndim))
    return (spread_mean_p.bind(ct, layout=layout, spatial=spatial),)


linear(mean_p, (0,), _mean_t, fold_rule(mean_p))
linear(
    spread_mean_p,
    (0,),
    lambda ct, g, layout, spatial: (mean_p.bind(ct, layout=layout),),
    fold_rule(spread_mean_p),
)


def mean(x, layout: str):
    return mean_p.bind(x, layout=layout)
