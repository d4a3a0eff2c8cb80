"""Max, average and Lp pooling and their gradients."""

from __future__ import annotations

from itertools import product

import numpy as np

from ._grid import _f64, _inside, _pool_geometry, _tap


def max_pool(x, window, *, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling with the recorded winner (Jefkine, "Pooling Layer"); padding counts as -inf.

    Returns ``(y, offsets)``: offsets are the row-major flat index of the first maximum inside each
    window ``(N, *O, C)``. ``stride=None`` means ``window``; ceil_mode follows PyTorch.
    """
    x = _f64(x)
    k, s, pad, d, o = _pool_geometry(x.shape, window, stride, padding, dilation, ceil_mode)
    y = np.zeros((x.shape[0], *o, x.shape[-1]))
    offsets = np.zeros(y.shape, dtype=np.int64)
    for n, i, c in product(range(x.shape[0]), np.ndindex(*o), range(x.shape[-1])):
        for off, m in enumerate(np.ndindex(*k)):
            p = _tap(i, m, s, d, pad)
            v = x[(n, *p, c)] if _inside(p, x.shape[1:-1]) else -np.inf
            if off == 0 or v > y[(n, *i, c)]:  # strict: ties keep the first (row-major)
                y[(n, *i, c)], offsets[(n, *i, c)] = v, off
    return y, offsets


def max_pool_grad(
    x_shape, offsets, g, *, window, stride=None, padding=0, dilation=1, ceil_mode=False
):
    """Routes each g to its window's recorded winner; overlapping windows accumulate (Jefkine).

    ``ceil_mode`` is accepted for symmetry with `max_pool`; the output size is read from ``g``.
    """
    g = _f64(g)
    k, s, pad, d, _ = _pool_geometry(x_shape, window, stride, padding, dilation)
    dx = np.zeros(x_shape)
    for n, i, c in product(range(g.shape[0]), np.ndindex(*g.shape[1:-1]), range(g.shape[-1])):
        m = np.unravel_index(int(offsets[(n, *i, c)]), k)
        p = _tap(i, m, s, d, pad)
        if _inside(p, x_shape[1:-1]):
            dx[(n, *p, c)] += g[(n, *i, c)]
    return dx


def _avg_divisor(i, k, s, pad, spatial, count_include_pad, divisor_override):
    """PyTorch's divisor: padded cells count (if asked), cells beyond the padded input never do."""
    if divisor_override is not None:
        return divisor_override
    size = 1
    for ia, ka, sa, (lo, hi), na in zip(i, k, s, pad, spatial, strict=True):
        start = ia * sa - lo
        end = min(start + ka, na + hi)
        if not count_include_pad:
            start, end = max(start, 0), min(end, na)
        size *= end - start
    return size


def avg_pool(
    x, window, *, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None,
):  # fmt: skip
    """Average pooling: ``y[i] = Σ_{p in window i} x[p] / N_i`` (PyTorch's divisor N_i)."""
    x = _f64(x)
    k, s, pad, d, o = _pool_geometry(x.shape, window, stride, padding, 1, ceil_mode)
    y = np.zeros((x.shape[0], *o, x.shape[-1]))
    for n, i, c in product(range(x.shape[0]), np.ndindex(*o), range(x.shape[-1])):
        for m in np.ndindex(*k):
            p = _tap(i, m, s, d, pad)
            if _inside(p, x.shape[1:-1]):
                y[(n, *i, c)] += x[(n, *p, c)]
        y[(n, *i, c)] /= _avg_divisor(i, k, s, pad, x.shape[1:-1], count_include_pad,
                                      divisor_override)  # fmt: skip
    return y


def avg_pool_grad(
    x_shape, g, *, window, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None,
):  # fmt: skip
    """Spreads each g[i] as g[i] / N_i over window i (Jefkine: "multiplied by 1/(N×N)")."""
    g = _f64(g)
    k, s, pad, d, _ = _pool_geometry(x_shape, window, stride, padding)
    dx = np.zeros(x_shape)
    for n, i, c in product(range(g.shape[0]), np.ndindex(*g.shape[1:-1]), range(g.shape[-1])):
        div = _avg_divisor(i, k, s, pad, x_shape[1:-1], count_include_pad, divisor_override)
        for m in np.ndindex(*k):
            p = _tap(i, m, s, d, pad)
            if _inside(p, x_shape[1:-1]):
                dx[(n, *p, c)] += g[(n, *i, c)] / div
    return dx


def lp_pool(x, p, window, *, stride=None, padding=0, ceil_mode=False):
    """L_p-norm pooling, Jefkine's "L2-norm pooling" for p = 2: ``y[i] = (Σ_{win i} x^p)^(1/p)``.

    Padded cells (and cells past the input with ceil_mode) contribute nothing to the sum. Not
    PyTorch's ceil_mode: its lp_pool is avg_pool(x^p) · prod(k), so it scales clipped windows up.
    """
    x = _f64(x)
    k, s, pad, d, o = _pool_geometry(x.shape, window, stride, padding, 1, ceil_mode)
    y = np.zeros((x.shape[0], *o, x.shape[-1]))
    for n, i, c in product(range(x.shape[0]), np.ndindex(*o), range(x.shape[-1])):
        for m in np.ndindex(*k):
            q = _tap(i, m, s, d, pad)
            if _inside(q, x.shape[1:-1]):
                y[(n, *i, c)] += x[(n, *q, c)] ** p
        y[(n, *i, c)] **= 1.0 / p
    return y


def lp_pool_grad(x, p, g, *, window, stride=None, padding=0, ceil_mode=False):
    """dL/dx of `lp_pool`: ``dx[q] += g[i] · x[q]^(p-1) · y[i]^(1-p)``, 0 where y[i] = 0."""
    x, g = _f64(x), _f64(g)
    y = lp_pool(x, p, window, stride=stride, padding=padding, ceil_mode=ceil_mode)
    k, s, pad, d, _ = _pool_geometry(x.shape, window, stride, padding)
    dx = np.zeros(x.shape)
    for n, i, c in product(range(g.shape[0]), np.ndindex(*g.shape[1:-1]), range(g.shape[-1])):
        if y[(n, *i, c)] == 0:
            continue
        for m in np.ndindex(*k):
            q = _tap(i, m, s, d, pad)
            if _inside(q, x.shape[1:-1]):
                dx[(n, *q, c)] += (
                    g[(n, *i, c)] * x[(n, *q, c)] ** (p - 1) * y[(n, *i, c)] ** (1 - p)
                )  # noqa: E501
    return dx
