"""Convolution, its two gradients, the bias gradient, the 1-D conv matrix and rot180."""

from __future__ import annotations

from itertools import product

import numpy as np

from ._grid import _check_g, _f64, _geometry, _inside, _out_size, _pads, _reader, _tap


def conv(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Forward convolution (cross-correlation), Jefkine Eq. 4 / Schmidt's strided forward.

    ``y[n, i, f] = Σ_{m, c} w[m, c, f] · x̃[n, i·s + m·d, g(f)·C_g + c] + b[f]``, with x̃ the
    zero-padded input, ``C_g = C_in / groups`` and g(f) the group of filter f. x ``(N, *S, C_in)``,
    w ``(*k, C_g, C_out)``, b ``(C_out,)`` -> y ``(N, *O, C_out)``.
    """
    x, w = _f64(x), _f64(w)
    nd = x.ndim - 2
    k, cg, f_out = w.shape[:nd], w.shape[nd], w.shape[nd + 1]
    s, pad, d, o = _geometry(x.shape, k, stride, padding, dilation)
    y = np.zeros((x.shape[0], *o, f_out))
    for n, i, f in product(range(x.shape[0]), np.ndindex(*o), range(f_out)):
        grp = f // (f_out // groups)
        for m, c in product(np.ndindex(*k), range(cg)):
            p = _tap(i, m, s, d, pad)
            if _inside(p, x.shape[1:-1]):
                y[(n, *i, f)] += w[(*m, c, f)] * x[(n, *p, grp * cg + c)]
        if b is not None:
            y[(n, *i, f)] += _f64(b)[f]
    return y


def conv_input_grad(x_shape, w, g, *, stride=1, padding=0, dilation=1, groups=1):
    """dL/dx of `conv`, Jefkine Eq. 20 generalised to stride, dilation, padding and groups.

    For every input position p, sum over the kernel taps m and the outputs i that read p through m
    (i·s + m·d − lo = p): ``dx[n, p, c] = Σ_{m, f} w[m, c, f] · g[n, (p + lo − m·d) / s, f]``,
    terms with a non-integer or out-of-range output index being zero (Schmidt's zero padding of δ).
    With d = 1 this is Schmidt's strided backward (taps m = p % s + i'·s); with s = 1 it is
    Eq. 21, the full convolution of the deltas with rot180(w). Never calls `conv`.
    """
    w, g = _f64(w), _f64(g)
    nd = len(x_shape) - 2
    k, cg, f_out = w.shape[:nd], w.shape[nd], w.shape[nd + 1]
    s, pad, d, o = _geometry(x_shape, k, stride, padding, dilation)
    _check_g("conv_input_grad", g, (x_shape[0], *o, f_out))
    fg = f_out // groups
    dx = np.zeros(x_shape)
    for n, p, cin in product(range(x_shape[0]), np.ndindex(*x_shape[1:-1]), range(x_shape[-1])):
        grp, c = divmod(cin, cg)
        for m, f in product(np.ndindex(*k), range(grp * fg, (grp + 1) * fg)):
            i = _reader(p, m, s, d, pad, o)
            if i is not None:
                dx[(n, *p, cin)] += w[(*m, c, f)] * g[(n, *i, f)]
    return dx


def conv_weight_grad(x, w_shape, g, *, stride=1, padding=0, dilation=1, groups=1):
    """dL/dw of `conv`, Jefkine Eq. 13/14, Schmidt's strided gradient step, seed 003's dE/dW.

    Sum over all windows of delta × the input pixel the weight touched:
    ``dw[m, c, f] = Σ_{n, i} g[n, i, f] · x̃[n, i·s + m·d, g(f)·C_g + c]``.
    """
    x, g = _f64(x), _f64(g)
    nd = x.ndim - 2
    k, cg, f_out = tuple(w_shape[:nd]), w_shape[nd], w_shape[nd + 1]
    s, pad, d, o = _geometry(x.shape, k, stride, padding, dilation)
    _check_g("conv_weight_grad", g, (x.shape[0], *o, f_out))
    dw = np.zeros(tuple(w_shape))
    for m, c, f in product(np.ndindex(*k), range(cg), range(f_out)):
        grp = f // (f_out // groups)
        for n, i in product(range(x.shape[0]), np.ndindex(*o)):
            p = _tap(i, m, s, d, pad)
            if _inside(p, x.shape[1:-1]):
                dw[(*m, c, f)] += g[(n, *i, f)] * x[(n, *p, grp * cg + c)]
    return dw


def conv_bias_grad(g):
    """dL/db of `conv`, Schmidt's bias step: ``db[f] = Σ_{n, i} g[n, i, f]``."""
    g = _f64(g)
    db = np.zeros(g.shape[-1])
    for idx in np.ndindex(*g.shape[:-1]):
        db += g[idx]
    return db


def conv_matrix(n, w1d, *, stride=1, padding=0):
    """Seed 002's matrix C of a 1-channel 1-D conv: ``C[j·s + m − lo, j] = w[m]``, shape (n, n_out).

    Forward is ``y = x @ C``; backward is ``dx = g @ C.T``.
    """
    w1d = _f64(w1d)
    (lo, hi), k = _pads(padding, 1)[0], len(w1d)
    n_out = _out_size(n, k, stride, 1, lo, hi)
    c_mat = np.zeros((n, n_out))
    for j, m in product(range(n_out), range(k)):
        if 0 <= j * stride + m - lo < n:
            c_mat[j * stride + m - lo, j] = w1d[m]
    return c_mat


def rot180(w):
    """Flip every spatial axis of a channels_last kernel ``(*k, C_in, C_out)`` (Jefkine Eq. 3)."""
    w = _f64(w)
    return w[(slice(None, None, -1),) * (w.ndim - 2)]
