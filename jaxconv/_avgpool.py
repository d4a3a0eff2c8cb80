"""Average pooling: `avg_pool` and `global_avg_pool` (`lp_pool`: `_lppool.py`).

Seed 001 (Jefkine, "Pooling Layer"): for average pooling "the error is multiplied by 1/(N×N) and
assigned to the whole pooling block". With N_i the divisor of window i (its cell count, see
`count_include_pad`/`divisor_override`), one dim, window cells i*s + m - lo::

    y[i]  = (1 / N_i) sum_m x~[i*s + m]
    dx[t] = sum_{i : t in window i} g[i] / N_i

Both ops are linear: primitives whose JVP is the op on the tangent and whose transpose is the
backward above (`_average.py`). The forward sums each window's slices of x
(`_pool.window_sum`). The backward is `_pool.window_sum_adjoint` of g / N: per dim, g
zero-dilated by the stride and summed over k shifted slices (a broadcast and a reshape when
stride == window) -- no scatter. L2-norm pooling, also named in seed 001, is `lp_pool` with
p = 2.
"""

from __future__ import annotations

import numpy as np

from jaxconv import _validate as v
from jaxconv._average import AvgCfg, average, mean
from jaxconv._lppool import lp_pool as lp_pool
from jaxconv._sharding import auto_partitioned
from jaxconv._types import Array, ArrayLike, Ints, Padding
from jaxconv._window import pool_window


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
        cfg = AvgCfg(geom, None, divisor_override)
        return auto_partitioned(lambda x: average(x, cfg), x)
    counts = []
    for n, k, s, (lo, hi), o in zip(geom.size, geom.window, geom.stride, geom.pads, geom.out):
        start = np.arange(o) * s - lo
        end = np.minimum(start + k, n + hi)  # PyTorch: the ceil_mode overhang never counts
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(tuple(int(c) for c in end - start))
    cfg = AvgCfg(geom, tuple(counts), None)
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
