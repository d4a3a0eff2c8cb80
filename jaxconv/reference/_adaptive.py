"""Adaptive average / max pooling and fractional max pooling, and their gradients.

Literal loops in float64, channels_last x ``(N, *spatial, C)``, any number of spatial dims.
Adaptive windows (PyTorch): per dim of size L pooled to O, window i is
``[floor(i L / O), ceil((i + 1) L / O))``. Fractional windows (Graham 2014, PyTorch's rule):
``alpha = (L - k) / (O - 1)``, ``start_i = int((i + u) alpha) - int(u alpha)`` for i < O - 1 and
``start_{O-1} = L - k``; window i is ``[start_i, start_i + k)``. Max (NaN above every
number): ties="first" (default) the row-major first maximum wins, "last" the last one, and the
gradient goes to it alone; ties="split" shares g[i] equally among all the cells of window i
that hold its maximum (its NaNs, if it holds any).
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np


def _windows(n, o):
    return [(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]


def _output_size(spatial, output_size):
    if isinstance(output_size, int):
        return (output_size,) * len(spatial)
    return tuple(n if o is None else o for n, o in zip(spatial, output_size))


def _box(spatial, o, i):
    """The cells (tuples) of adaptive window i, row-major."""
    ranges = [range(*_windows(n, oo)[ii]) for n, oo, ii in zip(spatial, o, i)]
    return list(product(*ranges))


def adaptive_avg_pool(x, output_size):
    """y[n, i, c] = mean of x[n, t, c] over the cells t of adaptive window i."""
    x = np.asarray(x, np.float64)
    spatial = x.shape[1:-1]
    o = _output_size(spatial, output_size)
    y = np.zeros((x.shape[0], *o, x.shape[-1]))
    for n, i, c in product(range(x.shape[0]), np.ndindex(*o), range(x.shape[-1])):
        cells = _box(spatial, o, i)
        y[(n, *i, c)] = sum(x[(n, *t, c)] for t in cells) / len(cells)
    return y


def adaptive_avg_pool_grad(x_shape, g, output_size):
    """dx[t] = sum over the windows i holding t of g[i] / |window i|."""
    g = np.asarray(g, np.float64)
    spatial = tuple(x_shape[1:-1])
    o = _output_size(spatial, output_size)
    dx = np.zeros(x_shape)
    for n, i, c in product(range(g.shape[0]), np.ndindex(*o), range(g.shape[-1])):
        cells = _box(spatial, o, i)
        for t in cells:
            dx[(n, *t, c)] += g[(n, *i, c)] / len(cells)
    return dx


def _better(v, best, ties="first"):
    """v replaces the running winner: strictly larger ("first", "split"), or at least as
    large ("last"); NaN above every number."""
    if ties == "last":
        return (v >= best) or bool(np.isnan(v))
    return (v > best) or (np.isnan(v) and not np.isnan(best))


def _same(v, best):
    return v == best or (np.isnan(v) and np.isnan(best))


def _flat(t, spatial):
    idx = 0
    for p, n in zip(t, spatial):
        idx = idx * n + p
    return idx


def _max_over(x, n, c, cells, spatial, ties="first"):
    """(max, flat index of the winner, flat indices of every cell holding the max)."""
    best, arg = None, None
    for t in cells:
        v = x[(n, *t, c)]
        if best is None or _better(v, best, ties):
            best, arg = v, _flat(t, spatial)
    tied = [_flat(t, spatial) for t in cells if _same(x[(n, *t, c)], best)]
    return best, arg, tied


def adaptive_max_pool(x, output_size, ties="first"):
    """(y, indices): the max of each adaptive window and the flat row-major index of its first
    maximum (its last for ties="last") into the spatial input of (n, c)."""
    x = np.asarray(x, np.float64)
    spatial = x.shape[1:-1]
    o = _output_size(spatial, output_size)
    y = np.zeros((x.shape[0], *o, x.shape[-1]))
    idx = np.zeros(y.shape, np.int64)
    for n, i, c in product(range(x.shape[0]), np.ndindex(*o), range(x.shape[-1])):
        cells = _box(spatial, o, i)
        y[(n, *i, c)], idx[(n, *i, c)], _ = _max_over(x, n, c, cells, spatial, ties)
    return y, idx


def _route(x_shape, indices, g):
    """dx: each g[n, i, c] added at flat index indices[n, i, c] of (n, c)."""
    g = np.asarray(g, np.float64)
    spatial = tuple(x_shape[1:-1])
    dx = np.zeros(x_shape)
    for n, i, c in product(range(g.shape[0]), np.ndindex(*g.shape[1:-1]), range(g.shape[-1])):
        t = np.unravel_index(int(indices[(n, *i, c)]), spatial)
        dx[(n, *t, c)] += g[(n, *i, c)]
    return dx


def adaptive_max_pool_grad(x_shape, indices, g):
    """g routed to each window's winner (windows sharing one accumulate)."""
    return _route(x_shape, indices, g)


def _share(x, g, windows):
    """dx for ties="split": g[n, i, c] / |T| added to every cell of T, the cells of window i
    holding its maximum; `windows(n, c, i)` lists the cells of window i."""
    x = np.asarray(x, np.float64)
    g = np.asarray(g, np.float64)
    spatial = x.shape[1:-1]
    dx = np.zeros(x.shape)
    for n, i, c in product(range(g.shape[0]), np.ndindex(*g.shape[1:-1]), range(g.shape[-1])):
        _, _, tied = _max_over(x, n, c, windows(n, c, i), spatial)
        for flat in tied:
            dx[(n, *np.unravel_index(flat, spatial), c)] += g[(n, *i, c)] / len(tied)
    return dx


def adaptive_max_pool_split_grad(x, g, output_size):
    """ties="split": g[i] shared equally among the cells of window i that hold its maximum
    (windows sharing a cell accumulate)."""
    spatial = np.shape(x)[1:-1]
    o = _output_size(spatial, output_size)
    return _share(x, g, lambda n, c, i: _box(spatial, o, i))


def fractional_starts(u, n, k, o, dtype=np.float64):
    """PyTorch's window starts for one dim, computed in `dtype` (x's floating type)."""
    dt = np.dtype(dtype).type
    seq = [0] * o
    if o > 1:
        alpha = dt(n - k) / dt(o - 1)
        for i in range(o - 1):
            seq[i] = int(dt(dt(i) + dt(u)) * alpha) - int(dt(u) * alpha)
    seq[o - 1] = n - k
    return seq


def _fractional_windows(spatial, window, output_size, samples, dtype):
    """cells(n, c, i): the cells of fractional window i of (n, c), row-major."""
    d = len(spatial)
    k = (window,) * d if isinstance(window, int) else tuple(window)
    o = (output_size,) * d if isinstance(output_size, int) else tuple(output_size)
    cols = (1, 0) if d == 2 else tuple(range(d))

    def cells(n, c, i):
        seqs = [
            fractional_starts(samples[n, c, cols[a]], spatial[a], k[a], o[a], dtype)
            for a in range(d)
        ]
        return list(product(*(range(seqs[a][i[a]], seqs[a][i[a]] + k[a]) for a in range(d))))

    return o, cells


def fractional_max_pool(x, window, output_size, samples, dtype=np.float64, ties="first"):
    """(y, indices) of fractional max pooling, x (N, *spatial, C), samples (N, C, D).

    Column j of samples drives spatial dim j, except for D = 2 where column 0 drives the last
    dim (W) and column 1 the first (H), as PyTorch's 2-D op. `dtype`: the floating type the
    starts are computed in (x's). The index is the first maximum's (the last's for
    ties="last")."""
    x = np.asarray(x, np.float64)
    spatial = x.shape[1:-1]
    o, cells = _fractional_windows(spatial, window, output_size, samples, dtype)
    y = np.zeros((x.shape[0], *o, x.shape[-1]))
    idx = np.zeros(y.shape, np.int64)
    for n, c in product(range(x.shape[0]), range(x.shape[-1])):
        for i in np.ndindex(*o):
            box = cells(n, c, i)
            y[(n, *i, c)], idx[(n, *i, c)], _ = _max_over(x, n, c, box, spatial, ties)
    assert math.prod(o) == math.prod(y.shape[1:-1])
    return y, idx


def fractional_max_pool_grad(x_shape, indices, g):
    """g routed to each window's winner (windows sharing one accumulate)."""
    return _route(x_shape, indices, g)


def fractional_max_pool_split_grad(x, g, window, output_size, samples, dtype=np.float64):
    """ties="split": g[i] shared equally among the cells of window i that hold its maximum
    (windows sharing a cell accumulate)."""
    spatial = np.shape(x)[1:-1]
    _, cells = _fractional_windows(spatial, window, output_size, samples, dtype)
    return _share(x, g, cells)
