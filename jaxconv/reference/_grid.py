"""Index arithmetic of the reference loops: sizes, taps, readers, geometry."""

from __future__ import annotations

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _ints(v, nd: int) -> tuple[int, ...]:
    return tuple(int(a) for a in v) if np.ndim(v) else (int(v),) * nd


def _pads(padding, nd: int) -> tuple[tuple[int, int], ...]:
    if np.ndim(padding) == 0:
        return ((int(padding), int(padding)),) * nd
    return tuple((int(p), int(p)) if np.ndim(p) == 0 else (int(p[0]), int(p[1])) for p in padding)


def _out_size(n, k, s, d, lo, hi, ceil_mode=False) -> int:
    """Windows along one dim: floor((n + lo + hi - d(k-1) - 1) / s) + 1 (ceil: PyTorch's rule)."""
    span = n + lo + hi - d * (k - 1) - 1
    o = -(-span // s) + 1 if ceil_mode else span // s + 1
    if ceil_mode and (o - 1) * s >= n + lo:  # the last window must start inside input or left pad
        o -= 1
    return o


def _tap(i, m, s, d, pad) -> tuple[int, ...]:
    """Input position read by output ``i`` through kernel tap ``m``: i·s + m·d − lo, per dim."""
    per_dim = zip(i, m, s, d, pad, strict=True)
    return tuple(ia * sa + ma * da - lo for ia, ma, sa, da, (lo, _) in per_dim)


def _reader(p, m, s, d, pad, o):
    """The output i that reads input p through tap m (i·s + m·d − lo = p), None if there is none."""
    i = []
    for pa, ma, sa, da, (lo, _), oa in zip(p, m, s, d, pad, o, strict=True):
        ia, rest = divmod(pa + lo - ma * da, sa)
        if rest or not 0 <= ia < oa:  # between two strided windows, or outside: δ is zero-padded
            return None
        i.append(ia)
    return tuple(i)


def _inside(p, spatial) -> bool:
    return all(0 <= pa < na for pa, na in zip(p, spatial, strict=True))


def _geometry(x_shape, k, stride, padding, dilation, ceil_mode=False):
    """(stride, padding pairs, dilation, output spatial shape) for a window of shape ``k``."""
    nd = len(x_shape) - 2
    s, pad, d = _ints(stride, nd), _pads(padding, nd), _ints(dilation, nd)
    o = tuple(
        _out_size(x_shape[1 + a], k[a], s[a], d[a], *pad[a], ceil_mode=ceil_mode) for a in range(nd)
    )
    return s, pad, d, o


def _pool_geometry(x_shape, window, stride, padding, dilation=1, ceil_mode=False):
    """(window, stride, padding pairs, dilation, output spatial shape); stride None = window."""
    k = _ints(window, len(x_shape) - 2)
    s = k if stride is None else stride
    return (k, *_geometry(x_shape, k, s, padding, dilation, ceil_mode))


def _check_g(fn, g, expected):
    if tuple(g.shape) != tuple(expected):
        raise ValueError(f"reference.{fn}: `g.shape` (={g.shape}) must be {tuple(expected)}")
