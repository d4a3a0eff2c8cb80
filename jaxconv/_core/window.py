"""Window geometry: the windows of a pooling op (and of a convolution's taps), and reading them.

One spatial dim (each dim is alike): input size n, window k with dilation d (k_eff = (k-1)d + 1),
stride s, padding (lo, hi), o outputs. Window i covers the padded positions
``i*s + m*d`` (m = 0..k-1), i.e. input positions ``i*s + m*d - lo``.

    o = floor((n + lo + hi - k_eff) / s) + 1                      (ceil_mode=False)
    o = ceil((n + lo + hi - k_eff) / s) + 1, minus 1 if the last window would start at or
        beyond n + lo (PyTorch: it must start inside the input or the left padding)

The windows cover the padded extent ``E = (o-1)s + k_eff``; ``hi_cover = E - lo - n`` is the
high padding they actually reach (more than `hi` with ceil_mode, negative when the tail of the
input is never covered). `lax.pad` with (lo, hi_cover) -- negative values crop -- therefore
gives exactly the covered region, and the backward crops with the negated pair.

Everything here is layout-agnostic: `axes` names the spatial axes of x (1..D for
channels_last, 2..D+1 for channels_first) and every op pads/slices only those.
No custom VJPs live here; these helpers are the building blocks of the forward and backward
passes (plain `lax.pad`/`lax.slice`/`lax.concatenate`, so JAX can also differentiate them for
grad-of-grad; `one_pass`, an identity, passes tangents through unchanged).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from jaxconv._core.layout import split_layout
from jaxconv._core.padding import (
    check_pool_padding,
    check_window_fits,
    effective_kernel,
    padding_pairs,
)
from jaxconv._core.sharding import explicit_sharding
from jaxconv._core.validate import (
    check_bool,
    check_float,
    check_layout,
    check_real,
    fail,
    int_tuple,
    spatial_rank,
)


class Window(NamedTuple):
    """Static, hashable windows of one pooling call or of a conv layer's taps (they travel
    through `nondiff_argnums`)."""

    layout: str
    ndim: int  # rank of x
    axes: tuple[int, ...]  # spatial axes of x
    size: tuple[int, ...]  # spatial input size n
    window: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]  # the user's padding (lo, hi)
    out: tuple[int, ...]  # output spatial size o

    @property
    def k_eff(self):
        return effective_kernel(self.window, self.dilation)

    @property
    def hi_cover(self):
        return tuple(
            (o - 1) * s + k - lo - n
            for o, s, k, (lo, _), n in zip(self.out, self.stride, self.k_eff, self.pads, self.size)
        )

    @property
    def cells(self) -> int:
        """Cells per window, K = prod(window)."""
        k = 1
        for w in self.window:
            k *= w
        return k

    def offsets(self):
        """Window offsets m (one int per dim), row-major: flat offset r is their position."""
        return list(itertools.product(*(range(w) for w in self.window)))

    def config(self, per_axis, default=(0, 0, 0)):
        """A full-rank lax.pad / slice config: one entry per spatial axis, `default` elsewhere
        (a callable default gets the axis number)."""
        cfg = [default(i) if callable(default) else default for i in range(self.ndim)]
        for a, c in zip(self.axes, per_axis):
            cfg[a] = c
        return cfg

    def non_overlapping(self) -> bool:
        """stride == window and no dilation: windows tile the covered region exactly."""
        return self.stride == self.window and all(d == 1 for d in self.dilation)


def pool_window(
    fn, x, window, stride, padding, dilation, ceil_mode, layout, *, ordered: bool = False
) -> Window:
    """Validate and normalise the pooling arguments of `fn` (raises while tracing).
    `ordered`: x may also be an integer or bool array (max/min pools only compare)."""
    check_layout(fn, layout)
    (check_real if ordered else check_float)(fn, "x", x)
    nd = spatial_rank(fn, x)
    _, size, _ = split_layout(x.shape, layout)
    window = int_tuple(fn, "window", window, nd)
    stride = window if stride is None else int_tuple(fn, "stride", stride, nd)
    dilation = int_tuple(fn, "dilation", dilation, nd)
    k_eff = effective_kernel(window, dilation)
    if isinstance(padding, str) and padding.upper() == "CAUSAL":
        fail(fn, "padding", padding, "is a convolution padding; pools take at most half the window")
    pads = padding_pairs(fn, padding, nd, k_eff, stride, size)
    check_pool_padding(fn, padding, pads, k_eff)
    check_window_fits(fn, size, pads, k_eff, arg="window")
    check_bool(fn, "ceil_mode", ceil_mode)
    out = []
    for n, k, s, (lo, hi) in zip(size, k_eff, stride, pads):
        span = n + lo + hi - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + lo:
            o -= 1
        out.append(o)
    axes = tuple(range(1, nd + 1)) if layout == "channels_last" else tuple(range(2, nd + 2))
    return Window(
        layout=layout,
        ndim=x.ndim,
        axes=axes,
        size=size,
        window=window,
        stride=stride,
        dilation=dilation,
        pads=pads,
        out=tuple(out),
    )


def pad_to_cover(x, win: Window, fill):
    """x padded with `fill` (or cropped) to exactly the region the windows cover, E per dim."""
    cfg = win.config([(lo, hc, 0) for (lo, _), hc in zip(win.pads, win.hi_cover)])
    return lax.pad(x, lax.convert_element_type(fill, x.dtype), cfg)


# Above this many (block, offset) pairs, `window_blocks` pads instead (trace size).
MAX_BLOCK_TERMS = 2048


def _runs(n, o, k, s, d, lo):
    """Split outputs 0..o-1 of one dim into runs [u, v) with the same in-range offsets m (window
    i reads input i*s + m*d - lo): [(u, v, in_range per m)]."""
    spans = []
    for m in range(k):
        off = m * d - lo
        spans.append((max(0, -(off // s)), min(o - 1, (n - 1 - off) // s)))
    cuts = {0, o, *(min(a, o) for a, _ in spans), *(min(max(b + 1, 0), o) for _, b in spans)}
    cuts = sorted(cuts)
    return [
        (u, v, tuple(a <= u and v - 1 <= b for a, b in spans))
        for u, v in zip(cuts, cuts[1:])
        if u < v
    ]


def window_blocks(x, win: Window, fill):
    """The windows of x padded with `fill`, without padding x: (x', win', runs per dim).

    Per dim, the outputs split into runs of windows that read the same offsets inside the
    input (the border windows and the interior). Within a block of runs (one run per dim),
    every offset is either a strided slice of x itself or all padding (`block_slices`).
    XLA:CPU fuses such slices into the loop that reduces them, where a padded copy of x is
    written out first (it does not fuse one pad into K slices): a 3x3 max pool saves 27 MB of
    temp memory and its page faults, a depthwise layer half its temp and 20 % of its time.
    Windows with many border runs (large padding) get the padded copy: x' is then x padded to
    cover, win' has no padding and every dim is a single run.
    """
    runs = [
        _runs(n, o, k, s, d, lo)
        for n, o, k, s, d, (lo, _) in zip(
            win.size, win.out, win.window, win.stride, win.dilation, win.pads
        )
    ]
    if math.prod(len(r) for r in runs) * win.cells > MAX_BLOCK_TERMS:
        x = pad_to_cover(x, win, fill)
        size = tuple(x.shape[a] for a in win.axes)
        win = win._replace(size=size, pads=((0, 0),) * len(size))
        runs = [[(0, o, (True,) * k)] for o, k in zip(win.out, win.window)]
    return x, win, runs


def block_slices(x, win: Window, picked):
    """[(r, slice_r or None)] for the block `picked` (one run per dim): slice_r[i] =
    x[i*s + m*d - lo] over the block's outputs, None where offset m reads only padding."""
    slices = []
    for r, m in enumerate(win.offsets()):
        if not all(run[2][mm] for run, mm in zip(picked, m)):
            slices.append((r, None))
            continue
        first = [
            u * s + mm * d - lo
            for (u, _, _), mm, s, d, (lo, _) in zip(picked, m, win.stride, win.dilation, win.pads)
        ]
        last = [f + (v - u - 1) * s + 1 for f, (u, v, _), s in zip(first, picked, win.stride)]
        start, limit = win.config(first, 0), win.config(last, x.shape.__getitem__)
        slices.append((r, lax.slice(x, start, limit, win.config(win.stride, 1))))
    return slices


def map_windows(x, win: Window, fill, fn, *, real: bool = False):
    """``fn(slices)`` over every window of x padded with `fill` (`window_blocks`: no padded copy).

    `fn` gets [(r, slice_r)] in offset order, slice_r[i] = x~[i*s + m*d] of the padded x~, and
    returns a tuple of output-shaped arrays; it runs once per block, with a `fill` constant for
    each all-padding offset, and the blocks are concatenated back. With ``real=True`` it gets
    [(r, slice_r, real_r)] instead: real_r says which cells are input rather than padding --
    a Python bool where the whole slice is one or the other (every block of the no-copy path),
    a bool array where padding and input mix (the padded-copy path).
    """
    x0, win0 = x, win
    x, win, runs = window_blocks(x, win, fill)
    copied = real and x is not x0  # the padded-copy path: a mask padded the same way
    mask = pad_to_cover(jnp.ones(x0.shape, bool), win0, False) if copied else None

    def block(picked):
        shape = win.config([v - u for u, v, _ in picked], x.shape.__getitem__)
        sharding = explicit_sharding(x)
        pieces = block_slices(x, win, picked)
        slices = [
            (r, lax.full(shape, fill, x.dtype, sharding=sharding) if s is None else s)
            for r, s in pieces
        ]
        if not real:
            return fn(slices)
        if mask is None:
            flags = [s is not None for _, s in pieces]
        else:
            flags = [m for _, m in block_slices(mask, win, picked)]
        return fn([(r, s, f) for (r, s), f in zip(slices, flags)])

    def assemble(j, picked):
        if j == len(runs):
            return block(picked)
        parts = [assemble(j + 1, picked + (run,)) for run in runs[j]]
        if len(parts) == 1:
            return parts[0]
        return tuple(jnp.concatenate(p, win.axes[j]) for p in zip(*parts))

    return assemble(0, ())


def crop_cover(dxp, win: Window):
    """The adjoint of `pad_to_cover` (drop the padding; zeros for an uncovered tail)."""
    cfg = win.config([(-lo, -hc, 0) for (lo, _), hc in zip(win.pads, win.hi_cover)])
    return lax.pad(dxp, lax.convert_element_type(0, dxp.dtype), cfg)
