"""Average and power-average pooling with explicit VJPs: `avg_pool`, `lp_pool`, `global_avg_pool`.

Seed 001 (Jefkine, "Pooling Layer"): for average pooling "the error is multiplied by 1/(N×N) and
assigned to the whole pooling block". With N_i the divisor of window i (its cell count, see
`count_include_pad`/`divisor_override`), one dim, window cells i*s + m - lo::

    y[i]  = (1 / N_i) sum_m x~[i*s + m]
    dx[t] = sum_{i : t in window i} g[i] / N_i

The forward sums each window's slices of x (`_pool.window_sum`). The backward is
`_pool.window_sum_adjoint` of g / N: per dim, g zero-dilated by the stride and summed over k
shifted slices (a broadcast and a reshape when stride == window) -- no scatter.
L2-norm pooling, also named in seed 001, is `lp_pool` with p = 2.
"""

from __future__ import annotations

import numbers
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv import _validate as v
from jaxconv._dtypes import accumulation
from jaxconv._pool import window_sum, window_sum_adjoint
from jaxconv._remat import name
from jaxconv._sharding import auto_partitioned
from jaxconv._types import Array, ArrayLike, Ints, Padding
from jaxconv._window import Window, pool_window


class _AvgCfg(NamedTuple):
    geom: Window
    counts: tuple[tuple[int, ...], ...] | None  # per-dim divisor factors, N_i = prod_d
    override: int | None


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
      window: an int or one per spatial dim (k). stride: same; default `window`.
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
    geom = pool_window(fn, x, window, stride, padding, 1, ceil_mode, layout)
    v.check_bool(fn, "count_include_pad", count_include_pad)
    if divisor_override is not None:
        divisor_override = v.as_int(fn, "divisor_override", divisor_override)
        if divisor_override == 0:
            v.fail(fn, "divisor_override", divisor_override, "must not be 0")
        cfg = _AvgCfg(geom, None, divisor_override)
        return auto_partitioned(lambda x: _avg_pool(x, cfg), x)
    counts = []
    for n, k, s, (lo, hi), o in zip(geom.size, geom.window, geom.stride, geom.pads, geom.out):
        start = np.arange(o) * s - lo
        end = np.minimum(start + k, n + hi)  # PyTorch: the ceil_mode overhang never counts
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(tuple(int(c) for c in end - start))
    cfg = _AvgCfg(geom, tuple(counts), None)
    return auto_partitioned(lambda x: _avg_pool(x, cfg), x)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _avg_pool(x, cfg: _AvgCfg):
    return _avg_pool_fwd(x, cfg)[0]


def _divisor(cfg: _AvgCfg, dtype):
    """N_i broadcastable against y: a scalar, or the outer product of the per-dim counts."""
    if cfg.counts is None:
        return jnp.asarray(cfg.override, dtype)
    geom, div = cfg.geom, np.ones((1,) * cfg.geom.ndim)
    for a, c in zip(geom.axes, cfg.counts):
        shape = [1] * geom.ndim
        shape[a] = len(c)
        div = div * np.asarray(c, np.float64).reshape(shape)
    return jnp.asarray(div, dtype)


def _avg_pool_fwd(x, cfg: _AvgCfg):
    acc = accumulation(x.dtype) or x.dtype  # float32 sums for 16-bit inputs
    y = window_sum(x.astype(acc), cfg.geom) / _divisor(cfg, acc)
    return y.astype(x.dtype), None


def _avg_pool_bwd(cfg: _AvgCfg, _, g):
    shape = _x_shape(cfg.geom, g.shape)
    acc = accumulation(g.dtype) or g.dtype
    dx = window_sum_adjoint(g.astype(acc) / _divisor(cfg, acc), cfg.geom, shape)
    return (dx.astype(g.dtype),)


_avg_pool.defvjp(_avg_pool_fwd, _avg_pool_bwd)


def _x_shape(geom: Window, y_shape):
    return tuple(
        geom.size[geom.axes.index(i)] if i in geom.axes else e for i, e in enumerate(y_shape)
    )


def lp_pool(
    x: ArrayLike,
    p: float,
    window: Ints,
    *,
    stride: Ints = None,
    padding: Padding = "VALID",
    ceil_mode: bool = False,
    layout: str = "channels_last",
) -> Array:
    r"""Power-average pooling (PyTorch's LPPool): y_i = (sum over window i of x^p)^(1/p).

    .. math:: y_i = \Big(\sum_m \tilde x_{i s + m}^{\,p}\Big)^{1/p}, \qquad
              \frac{\partial E}{\partial x_t} = x_t^{\,p-1} \sum_{i \ni t} g_i\, y_i^{\,1-p}

    p = 2 is the L2-norm pooling of seed 001 (for real x; like PyTorch there is no abs, so odd
    or fractional p with negative inputs give what x^p gives). The gradient of a window whose
    sum is 0 is 0 (the norm's subgradient at the origin), not NaN.

    Args:
      x: (N, *spatial, C) ("channels_last") or (N, C, *spatial) ("channels_first"), floating.
      p: a finite number > 0 (static). window, stride, padding, ceil_mode: as `avg_pool`
        (padding cells are zeros and add nothing; with ceil_mode the partial last window sums
        only what it covers -- PyTorch instead rescales its clipped average by k1*k2).
    Returns:
      y: (N, *out, C) or (N, C, *out).

    Example:
      >>> import jax.numpy as jnp
      >>> lp_pool(jnp.array([3., 4.]).reshape(1, 2, 1), 2, 2).ravel().tolist()
      [5.0]
    """
    fn = "lp_pool"
    geom = pool_window(fn, x, window, stride, padding, 1, ceil_mode, layout)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < float(p) < np.inf:
        v.fail(
            fn,
            "p",
            p,
            "must be a finite number > 0",
            TypeError if not isinstance(p, numbers.Real) else ValueError,
        )
    return auto_partitioned(lambda x: _lp_pool(x, (geom, float(p))), x)


def _pow(a, p: float):
    return lax.integer_pow(a, int(p)) if p.is_integer() else jnp.power(a, p)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _lp_pool(x, cfg):
    return _lp_pool_fwd(x, cfg)[0]


def _lp_pool_fwd(x, cfg):
    geom, p = cfg
    xa = x.astype(accumulation(x.dtype) or x.dtype)  # float32 sums for 16-bit inputs
    total = window_sum(_pow(xa, p), geom)
    y = (jnp.sqrt(total) if p == 2 else jnp.power(total, 1 / p)).astype(x.dtype)
    return y, (name(x, "lp_pool", "x"), name(y, "lp_pool", "y"))


def _lp_pool_bwd(cfg, res, g):
    geom, p = cfg
    acc = accumulation(g.dtype) or g.dtype
    x, y = (a.astype(acc) for a in res)
    zero = y == 0
    t = jnp.where(zero, jnp.zeros((), acc), g.astype(acc) * _pow(jnp.where(zero, 1, y), 1 - p))
    return ((window_sum_adjoint(t, geom, x.shape) * _pow(x, p - 1)).astype(g.dtype),)


_lp_pool.defvjp(_lp_pool_fwd, _lp_pool_bwd)


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
    cfg, c_axis = (layout, tuple(x.shape)), -1 if layout == "channels_last" else 1
    return auto_partitioned(lambda x: _global_avg_pool(x, cfg), x, out=((0, 0), (0, c_axis)))


def _spatial_axes(layout, ndim):
    return tuple(range(1, ndim - 1)) if layout == "channels_last" else tuple(range(2, ndim))


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _global_avg_pool(x, cfg):
    return _global_avg_pool_fwd(x, cfg)[0]


def _global_avg_pool_fwd(x, cfg):
    return jnp.mean(x, axis=_spatial_axes(cfg[0], x.ndim)), None


def _global_avg_pool_bwd(cfg, _, g):
    layout, x_shape = cfg
    axes = _spatial_axes(layout, len(x_shape))
    size = 1
    for a in axes:
        size *= x_shape[a]
    return (jnp.broadcast_to(lax.expand_dims(g / size, axes), x_shape),)


_global_avg_pool.defvjp(_global_avg_pool_fwd, _global_avg_pool_bwd)
