"""Sub-pixel shuffles, unfold/fold (im2col/col2im) and the locally connected convolution, as
literal loops in float64.

Index conventions: r the shuffle factors per dim, R = prod(r), q(o) the row-major flat index of
an offset o inside an r-block (or of a tap m inside a window, K = prod(k) taps). Padding: an
int, one int per dim or one (lo, hi) pair per dim (zeros). ``layout`` as everywhere in jaxconv:
"channels_last" (N, *spatial, C) or "channels_first" (N, C, *spatial).
"""

from __future__ import annotations

from itertools import product

import numpy as np

from ._grid import _f64, _geometry, _inside, _ints, _tap


def _to_cl(x, layout):
    return x if layout == "channels_last" else np.moveaxis(x, 1, -1)


def _from_cl(x, layout):
    return x if layout == "channels_last" else np.moveaxis(x, -1, 1)


def pixel_shuffle(x, upscale_factor, layout="channels_last"):
    """``y[n, i r + o, c] = x[n, i, c R + q(o)]`` (Shi et al. 2016; PyTorch's channel order)."""
    x = _to_cl(_f64(x), layout)
    nd = x.ndim - 2
    r = _ints(upscale_factor, nd)
    R = int(np.prod(r))
    c_out = x.shape[-1] // R
    y = np.zeros((x.shape[0], *(n * f for n, f in zip(x.shape[1:-1], r)), c_out))
    for n, i, c in product(range(x.shape[0]), np.ndindex(*x.shape[1:-1]), range(c_out)):
        for q, o in enumerate(np.ndindex(*r)):
            y[(n, *(ia * ra + oa for ia, ra, oa in zip(i, r, o)), c)] = x[(n, *i, c * R + q)]
    return _from_cl(y, layout)


def pixel_unshuffle(x, downscale_factor, layout="channels_last"):
    """``y[n, i, c R + q(o)] = x[n, i r + o, c]``: the inverse of `pixel_shuffle`."""
    x = _to_cl(_f64(x), layout)
    nd = x.ndim - 2
    r = _ints(downscale_factor, nd)
    R = int(np.prod(r))
    sp = tuple(n // f for n, f in zip(x.shape[1:-1], r))
    y = np.zeros((x.shape[0], *sp, x.shape[-1] * R))
    for n, i, c in product(range(x.shape[0]), np.ndindex(*sp), range(x.shape[-1])):
        for q, o in enumerate(np.ndindex(*r)):
            y[(n, *i, c * R + q)] = x[(n, *(ia * ra + oa for ia, ra, oa in zip(i, r, o)), c)]
    return _from_cl(y, layout)


def unfold(x, window, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    """im2col (seed 002's matrix C): ``cols[n, j, m, c] = x~[n, j s + m d, c]`` (zero padding).

    channels_last: (N, *o, K C), index ``q(m) C + c``; channels_first: (N, C K, L), index
    ``(c K + q(m), flat(j))`` (PyTorch's ``F.unfold``).
    """
    x = _to_cl(_f64(x), layout)
    nd = x.ndim - 2
    k = _ints(window, nd)
    s, pad, d, o = _geometry(x.shape, k, stride, padding, dilation)
    K, C = int(np.prod(k)), x.shape[-1]
    cols = np.zeros((x.shape[0], *o, K * C))
    for n, j, c in product(range(x.shape[0]), np.ndindex(*o), range(C)):
        for q, m in enumerate(np.ndindex(*k)):
            p = _tap(j, m, s, d, pad)
            if _inside(p, x.shape[1:-1]):
                cols[(n, *j, q * C + c)] = x[(n, *p, c)]
    if layout == "channels_last":
        return cols
    out = np.zeros((x.shape[0], C * K, int(np.prod(o))))
    for n, (jf, j), c, q in product(
        range(x.shape[0]), enumerate(np.ndindex(*o)), range(C), range(K)
    ):
        out[n, c * K + q, jf] = cols[(n, *j, q * C + c)]
    return out


def fold(cols, output_size, window, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    """col2im (seed 002's C^T): ``x[n, p, c] = sum_{(j, m): j s + m d - lo = p} cols[n, j, m, c]``.

    `cols` in `unfold`'s layout for `layout`; returns (N, *output_size, C) or (N, C, *size).
    """
    cols = _f64(cols)
    if np.ndim(output_size):
        nd = len(output_size)
    elif np.ndim(window):
        nd = len(window)
    else:
        nd = cols.ndim - 2 if layout == "channels_last" else 2
    size = _ints(output_size, nd)
    k = _ints(window, nd)
    K = int(np.prod(k))
    s, pad, d, o = _geometry((0, *size, 0), k, stride, padding, dilation)
    N = cols.shape[0]
    if layout == "channels_last":
        C = cols.shape[-1] // K
        get = lambda n, j, jf, q, c: cols[(n, *j, q * C + c)]  # noqa: E731
    else:
        C = cols.shape[1] // K
        get = lambda n, j, jf, q, c: cols[n, c * K + q, jf]  # noqa: E731
    x = np.zeros((N, *size, C))
    for n, (jf, j), c in product(range(N), enumerate(np.ndindex(*o)), range(C)):
        for q, m in enumerate(np.ndindex(*k)):
            p = _tap(j, m, s, d, pad)
            if _inside(p, size):
                x[(n, *p, c)] += get(n, j, jf, q, c)
    return _from_cl(x, layout)


def _kernel_to_cl(w, layout, nd):
    """channels_first (C_out, C_in, *k, *o) -> channels_last (*o, *k, C_in, C_out)."""
    if layout == "channels_last":
        return w
    return np.transpose(w, (*range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd), 1, 0))


def conv_local(x, w, bias=None, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    """Locally connected layer: ``y[n, p, f] = sum_{m, c} w[p, m, c, f] x~[n, p s + m d, c] + b``.

    w: channels_last (*o, *k, C_in, C_out), channels_first (C_out, C_in, *k, *o).
    """
    x = _to_cl(_f64(x), layout)
    nd = x.ndim - 2
    w = _kernel_to_cl(_f64(w), layout, nd)
    k = w.shape[nd : 2 * nd]
    s, pad, d, o = _geometry(x.shape, k, stride, padding, dilation)
    F = w.shape[-1]
    y = np.zeros((x.shape[0], *o, F))
    for n, p, f in product(range(x.shape[0]), np.ndindex(*o), range(F)):
        for m, c in product(np.ndindex(*k), range(x.shape[-1])):
            t = _tap(p, m, s, d, pad)
            if _inside(t, x.shape[1:-1]):
                y[(n, *p, f)] += w[(*p, *m, c, f)] * x[(n, *t, c)]
        if bias is not None:
            y[(n, *p, f)] += float(bias[f])
    return _from_cl(y, layout)


def conv_local_grad(x, w, g, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    """(dx, dw) of `conv_local` for the output gradient g:
    ``dx[n, t, c] = sum_{p, m: p s + m d - lo = t} sum_f g[n, p, f] w[p, m, c, f]``,
    ``dw[p, m, c, f] = sum_n x~[n, p s + m d, c] g[n, p, f]``; in `layout`'s shapes."""
    x = _to_cl(_f64(x), layout)
    g = _to_cl(_f64(g), layout)
    nd = x.ndim - 2
    w_cl = _kernel_to_cl(_f64(w), layout, nd)
    k = w_cl.shape[nd : 2 * nd]
    s, pad, d, o = _geometry(x.shape, k, stride, padding, dilation)
    dx, dw = np.zeros(x.shape), np.zeros(w_cl.shape)
    for n, p, f in product(range(x.shape[0]), np.ndindex(*o), range(w_cl.shape[-1])):
        for m, c in product(np.ndindex(*k), range(x.shape[-1])):
            t = _tap(p, m, s, d, pad)
            if _inside(t, x.shape[1:-1]):
                dx[(n, *t, c)] += g[(n, *p, f)] * w_cl[(*p, *m, c, f)]
                dw[(*p, *m, c, f)] += g[(n, *p, f)] * x[(n, *t, c)]
    if layout == "channels_first":
        dw = np.transpose(dw, (2 * nd + 1, 2 * nd, *range(nd, 2 * nd), *range(nd)))
    return _from_cl(dx, layout), dw
