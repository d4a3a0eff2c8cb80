"""Window geometry shared by the pooling ops (`_maxpool.py`, `_avgpool.py`).

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

import functools
import itertools
import math
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv import _validate as v
from jaxconv._sharding import explicit_sharding


class Geom(NamedTuple):
    """Static, hashable geometry of one pooling call (travels through `nondiff_argnums`)."""

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
        return v.effective_kernel(self.window, self.dilation)

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


def geometry(fn, x, window, stride, padding, dilation, ceil_mode, layout) -> Geom:
    """Validate and normalise the pooling arguments of `fn` (raises while tracing)."""
    v.check_layout(fn, layout)
    v.check_float(fn, "x", x)
    nd = v.spatial_rank(fn, x)
    _, size, _ = v.split_layout(x.shape, layout)
    window = v.int_tuple(fn, "window", window, nd)
    stride = window if stride is None else v.int_tuple(fn, "stride", stride, nd)
    dilation = v.int_tuple(fn, "dilation", dilation, nd)
    k_eff = v.effective_kernel(window, dilation)
    pads = v.padding_pairs(fn, padding, nd, k_eff, stride, size)
    v.check_pool_padding(fn, padding, pads, k_eff)
    v.check_window_fits(fn, size, pads, k_eff, arg="window")
    v.check_bool(fn, "ceil_mode", ceil_mode)
    out = []
    for n, k, s, (lo, hi) in zip(size, k_eff, stride, pads):
        span = n + lo + hi - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + lo:
            o -= 1
        out.append(o)
    axes = tuple(range(1, nd + 1)) if layout == "channels_last" else tuple(range(2, nd + 2))
    return Geom(layout, x.ndim, axes, size, window, stride, dilation, pads, tuple(out))


def pad_to_cover(x, geom: Geom, fill):
    """x padded with `fill` (or cropped) to exactly the region the windows cover, E per dim."""
    cfg = geom.config([(lo, hc, 0) for (lo, _), hc in zip(geom.pads, geom.hi_cover)])
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


def window_blocks(x, geom: Geom, fill):
    """The windows of x padded with `fill`, without padding x: (x', geom', runs per dim).

    Per dim, the outputs split into runs of windows that read the same offsets inside the
    input (the border windows and the interior). Within a block of runs (one run per dim),
    every offset is either a strided slice of x itself or all padding (`block_slices`).
    XLA:CPU fuses such slices into the loop that reduces them, where a padded copy of x is
    written out first (it does not fuse one pad into K slices): a 3x3 max pool saves 27 MB of
    temp memory and its page faults, a depthwise layer half its temp and 20 % of its time.
    Windows with many border runs (large padding) get the padded copy: x' is then x padded to
    cover, geom' has no padding and every dim is a single run.
    """
    runs = [
        _runs(n, o, k, s, d, lo)
        for n, o, k, s, d, (lo, _) in zip(
            geom.size, geom.out, geom.window, geom.stride, geom.dilation, geom.pads
        )
    ]
    if math.prod(len(r) for r in runs) * geom.cells > MAX_BLOCK_TERMS:
        x = pad_to_cover(x, geom, fill)
        size = tuple(x.shape[a] for a in geom.axes)
        geom = geom._replace(size=size, pads=((0, 0),) * len(size))
        runs = [[(0, o, (True,) * k)] for o, k in zip(geom.out, geom.window)]
    return x, geom, runs


def block_slices(x, geom: Geom, picked):
    """[(r, slice_r or None)] for the block `picked` (one run per dim): slice_r[i] =
    x[i*s + m*d - lo] over the block's outputs, None where offset m reads only padding."""
    slices = []
    for r, m in enumerate(geom.offsets()):
        if not all(run[2][mm] for run, mm in zip(picked, m)):
            slices.append((r, None))
            continue
        first = [
            u * s + mm * d - lo
            for (u, _, _), mm, s, d, (lo, _) in zip(
                picked, m, geom.stride, geom.dilation, geom.pads
            )
        ]
        last = [f + (v - u - 1) * s + 1 for f, (u, v, _), s in zip(first, picked, geom.stride)]
        start, limit = geom.config(first, 0), geom.config(last, x.shape.__getitem__)
        slices.append((r, lax.slice(x, start, limit, geom.config(geom.stride, 1))))
    return slices


def map_windows(x, geom: Geom, fill, fn):
    """``fn(slices)`` over every window of x padded with `fill` (`window_blocks`: no padded copy).

    `fn` gets [(r, slice_r)] in offset order, slice_r[i] = x~[i*s + m*d] of the padded x~, and
    returns a tuple of output-shaped arrays; it runs once per block, with a `fill` constant for
    each all-padding offset, and the blocks are concatenated back.
    """
    x, geom, runs = window_blocks(x, geom, fill)

    def block(picked):
        shape = geom.config([v - u for u, v, _ in picked], x.shape.__getitem__)
        sharding = explicit_sharding(x)
        return fn(
            [
                (r, lax.full(shape, fill, x.dtype, sharding=sharding) if s is None else s)
                for r, s in block_slices(x, geom, picked)
            ]
        )

    def assemble(j, picked):
        if j == len(runs):
            return block(picked)
        parts = [assemble(j + 1, picked + (run,)) for run in runs[j]]
        if len(parts) == 1:
            return parts[0]
        return tuple(jnp.concatenate(p, geom.axes[j]) for p in zip(*parts))

    return assemble(0, ())


def spread(geom: Geom, arrays, piece):
    """The adjoint of taking every window's offset-m cells: dx = sum_r scatter_r(piece_r).

    ``piece(r, *arrays)`` is elementwise in the output-shaped `arrays` (zero where
    ``arrays[-1]``, the gradient, is zero) and belongs at input positions t = i*s + m*d - lo of
    offset m. Write m*d - lo = q0*s + ph (0 <= ph < s): then t = (i + q0)*s + ph, so piece_r
    is a plain shift by q0 of phase ph of dx (seed 004's i % stride phases). Each piece is
    computed on the unshifted arrays and shifted by one `lax.pad` (negative = crop, never
    interior padding), each phase is the sum of its pieces, and the phases are interleaved by
    a stack and a reshape: XLA:CPU fuses all of it into one loop over dx with no padded copy
    of the arrays (padding g once and slicing it cost a 2x2 max-pool backward 40% more, in
    temp memory and page faults). Overlapping windows accumulate; with stride == window every
    phase holds exactly one offset and this is the tiled layout.
    """
    g = arrays[-1]
    n_q = [-(-n // s) for n, s in zip(geom.size, geom.stride)]  # positions per phase
    shifts = [
        tuple(
            divmod(mm * d - lo, s)
            for mm, d, (lo, _), s in zip(m, geom.dilation, geom.pads, geom.stride)
        )
        for m in geom.offsets()
    ]
    phases = {}
    for r, sh in enumerate(shifts):
        cfg = geom.config([(q, nq - o - q, 0) for (q, _), nq, o in zip(sh, n_q, geom.out)])
        term = piece(r, *arrays)
        term = lax.pad(term, lax.convert_element_type(0, term.dtype), cfg)
        ph = tuple(p for _, p in sh)
        phases[ph] = term if ph not in phases else phases[ph] + term
    shape = tuple(geom.config(n_q, None))

    def interleave(j, prefix):
        """Phases prefix + (ph_j, ...) merged along spatial dims j.. (innermost first)."""
        if j == len(geom.axes):
            if prefix in phases:
                return phases[prefix]
            return jnp.zeros([e or d for e, d in zip(shape, g.shape)], g.dtype)
        parts = [interleave(j + 1, prefix + (ph,)) for ph in range(geom.stride[j])]
        if len(parts) == 1:
            return parts[0]
        a = geom.axes[j]
        out = jnp.stack(parts, axis=a + 1)
        return out.reshape(out.shape[:a] + (out.shape[a] * out.shape[a + 1],) + out.shape[a + 2 :])

    if math.prod(geom.stride) <= 4 * len(phases):
        dx = interleave(0, ())
    else:  # stride far above the window: most phases are empty, place the others by padding
        dx = None
        for ph, term in phases.items():
            cfg = geom.config([(p, st - 1 - p, st - 1) for p, st in zip(ph, geom.stride)])
            placed = lax.pad(term, lax.convert_element_type(0, term.dtype), cfg)
            dx = placed if dx is None else dx + placed
    return lax.slice(dx, [0] * dx.ndim, geom.config(geom.size, dx.shape.__getitem__))


# Padded windows with at most this many cells are summed per block (`map_windows`).
BLOCK_SUM_CELLS = 16


def window_sum(x, geom: Geom):
    """y[i] = sum_m x~[i*s + m] over each window of x zero-padded to cover (no dilation).

    Padded windows of up to `BLOCK_SUM_CELLS` cells: the K slices of `map_windows` summed per
    block, with no padded copy of x (3x3 stride 1 padding 1 on 32x56x56x64: 3.2 -> 1.6 ms).
    Otherwise one spatial dim after the other (sum k_d slices, not prod k_d), also for tiling
    windows (stride == window): XLA:CPU fuses the strided slices into one loop, where a reshape
    and a sum become a reduction twice as slow (avgpool_2x2 forward 1.1 -> 0.55 ms)."""
    padded = any(lo > 0 for lo, _ in geom.pads) or any(h > 0 for h in geom.hi_cover)
    if padded and geom.cells <= BLOCK_SUM_CELLS:
        return map_windows(x, geom, 0, lambda slices: (_add_all(s for _, s in slices),))[0]
    xp = pad_to_cover(x, geom, 0)
    for a, k, s, o in zip(geom.axes, geom.window, geom.stride, geom.out):
        xp = _add_all(lax.slice_in_dim(xp, m, m + (o - 1) * s + 1, s, a) for m in range(k))
    return xp


def window_sum_adjoint(g, geom: Geom, x_shape):
    """The adjoint of ``window_sum(x)``: dx[t] = sum over windows i containing
    t + lo of g[i], for every input position t (seed 001: each unit of a block gets the block's
    error). Per dim: zero-dilate g by s (interior s-1), pad by k-1-lo / k-1-hi_cover, then the
    sum of k shifted slices of length n. With stride == window: a broadcast and a reshape."""
    if geom.non_overlapping():
        for a, k, o in zip(geom.axes, geom.window, geom.out):
            shape = g.shape[:a] + (o, k) + g.shape[a + 1 :]
            g = jnp.broadcast_to(lax.expand_dims(g, (a + 1,)), shape).reshape(
                g.shape[:a] + (o * k,) + g.shape[a + 1 :]
            )
        return _crop_cover(g, geom)
    zero = lax.convert_element_type(0, g.dtype)
    for a, k, s, (lo, _), hc, n in zip(
        geom.axes, geom.window, geom.stride, geom.pads, geom.hi_cover, geom.size
    ):
        cfg = [(0, 0, 0)] * g.ndim
        cfg[a] = (k - 1 - lo, k - 1 - hc, s - 1)
        u = lax.pad(g, zero, cfg)
        g = _add_all(lax.slice_in_dim(u, k - 1 - m, k - 1 - m + n, 1, a) for m in range(k))
    return g


def _add_all(terms):
    return functools.reduce(operator.add, terms)


def _crop_cover(dxp, geom: Geom):
    """The adjoint of `pad_to_cover` (drop the padding; zeros for an uncovered tail)."""
    cfg = geom.config([(-lo, -hc, 0) for (lo, _), hc in zip(geom.pads, geom.hi_cover)])
    return lax.pad(dxp, lax.convert_element_type(0, dxp.dtype), cfg)


@jax.custom_jvp
def one_pass(*arrays):
    """The same-shaped `arrays`, unchanged, but computed by one XLA loop that writes them all.

    XLA:CPU has no sibling multi-output fusion: two outputs of one elementwise chain (max
    pooling's y and its winner offsets) become two loops that each redo the chain, and the
    chain is cheap enough that XLA also re-inlines it into every backward consumer of the
    offsets (a 3x3 window: four 9-way argmax chains per input gradient element). A variadic
    reduce is a single instruction with several outputs, so it gives one loop and stored
    results: each array gets a trailing axis of two, (value, filler), tagged 0 and 1, and the
    reduce keeps the element tagged 0, i.e. the value (the tag is compared, never the values).
    """
    tags = jnp.zeros(arrays[0].shape, jnp.int8)
    ops = (tags, *arrays)
    fill = tuple(lax.convert_element_type(i == 0, a.dtype) for i, a in enumerate(ops))
    cfg = [(0, 0, 0)] * tags.ndim + [(0, 1, 0)]
    ops = tuple(lax.pad(a[..., None], f, cfg) for a, f in zip(ops, fill))

    def keep_tag0(a, b):
        take_b = b[0] < a[0]
        return tuple(jnp.where(take_b, bi, ai) for ai, bi in zip(a, b))

    return lax.reduce(ops, fill, keep_tag0, (tags.ndim,))[1:]


@one_pass.defjvp
def _one_pass_jvp(primals, tangents):
    """An identity: tangents pass through (JAX's JVP of a general variadic reduce fails)."""
    return one_pass(*primals), tuple(tangents)
