"""The sums and scatters of pooling: window sums and their adjoint, the winner-offset spread
of max pooling's backward, and `one_pass` (several outputs from one XLA loop).

Windows as in `_core/window.py`: one spatial dim, input size n, window k, dilation d, stride s,
padding (lo, hi), o outputs; window i reads input positions ``i*s + m*d - lo``.
"""

from __future__ import annotations

import functools
import math
import operator

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._core.window import Window, crop_cover, map_windows, pad_to_cover


def spread(win: Window, arrays, piece):
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
    n_q = [-(-n // s) for n, s in zip(win.size, win.stride)]  # positions per phase
    shifts = [
        tuple(
            divmod(mm * d - lo, s)
            for mm, d, (lo, _), s in zip(m, win.dilation, win.pads, win.stride)
        )
        for m in win.offsets()
    ]
    phases = {}
    for r, sh in enumerate(shifts):
        cfg = win.config([(q, nq - o - q, 0) for (q, _), nq, o in zip(sh, n_q, win.out)])
        term = piece(r, *arrays)
        term = lax.pad(term, lax.convert_element_type(0, term.dtype), cfg)
        ph = tuple(p for _, p in sh)
        phases[ph] = term if ph not in phases else phases[ph] + term
    shape = tuple(win.config(n_q, None))

    def interleave(j, prefix):
        """Phases prefix + (ph_j, ...) merged along spatial dims j.. (innermost first)."""
        if j == len(win.axes):
            if prefix in phases:
                return phases[prefix]
            return jnp.zeros([e or d for e, d in zip(shape, g.shape)], g.dtype)
        parts = [interleave(j + 1, prefix + (ph,)) for ph in range(win.stride[j])]
        if len(parts) == 1:
            return parts[0]
        a = win.axes[j]
        out = jnp.stack(parts, axis=a + 1)
        return out.reshape(out.shape[:a] + (out.shape[a] * out.shape[a + 1],) + out.shape[a + 2 :])

    if math.prod(win.stride) <= 4 * len(phases):
        dx = interleave(0, ())
    else:  # stride far above the window: most phases are empty, place the others by padding
        dx = None
        for ph, term in phases.items():
            cfg = win.config([(p, st - 1 - p, st - 1) for p, st in zip(ph, win.stride)])
            placed = lax.pad(term, lax.convert_element_type(0, term.dtype), cfg)
            dx = placed if dx is None else dx + placed
    return lax.slice(dx, [0] * dx.ndim, win.config(win.size, dx.shape.__getitem__))


# Padded windows with at most this many cells are summed per block (`map_windows`).
BLOCK_SUM_CELLS = 16


def window_sum(x, win: Window):
    """y[i] = sum_m x~[i*s + m] over each window of x zero-padded to cover (no dilation).

    Padded windows of up to `BLOCK_SUM_CELLS` cells: the K slices of `map_windows` summed per
    block, with no padded copy of x (3x3 stride 1 padding 1 on 32x56x56x64: 3.2 -> 1.6 ms).
    Otherwise one spatial dim after the other (sum k_d slices, not prod k_d), also for tiling
    windows (stride == window): XLA:CPU fuses the strided slices into one loop, where a reshape
    and a sum become a reduction twice as slow (avgpool_2x2 forward 1.1 -> 0.55 ms)."""
    padded = any(lo > 0 for lo, _ in win.pads) or any(h > 0 for h in win.hi_cover)
    if padded and win.cells <= BLOCK_SUM_CELLS:
        return map_windows(x, win, 0, lambda slices: (_add_all(s for _, s in slices),))[0]
    xp = pad_to_cover(x, win, 0)
    for a, k, s, o in zip(win.axes, win.window, win.stride, win.out):
        xp = _add_all(lax.slice_in_dim(xp, m, m + (o - 1) * s + 1, s, a) for m in range(k))
    return xp


def window_sum_adjoint(g, win: Window, x_shape):
    """The adjoint of ``window_sum(x)``: dx[t] = sum over windows i containing
    t + lo of g[i], for every input position t (seed 001: each unit of a block gets the block's
    error). Per dim: zero-dilate g by s (interior s-1), pad by k-1-lo / k-1-hi_cover, then the
    sum of k shifted slices of length n. With stride == window: a broadcast and a reshape."""
    if win.non_overlapping():
        for a, k, o in zip(win.axes, win.window, win.out):
            shape = g.shape[:a] + (o, k) + g.shape[a + 1 :]
            g = jnp.broadcast_to(lax.expand_dims(g, (a + 1,)), shape).reshape(
                g.shape[:a] + (o * k,) + g.shape[a + 1 :]
            )
        return crop_cover(g, win)
    zero = lax.convert_element_type(0, g.dtype)
    for a, k, s, (lo, _), hc, n in zip(
        win.axes, win.window, win.stride, win.pads, win.hi_cover, win.size
    ):
        cfg = [(0, 0, 0)] * g.ndim
        cfg[a] = (k - 1 - lo, k - 1 - hc, s - 1)
        u = lax.pad(g, zero, cfg)
        g = _add_all(lax.slice_in_dim(u, k - 1 - m, k - 1 - m + n, 1, a) for m in range(k))
    return g


def _add_all(terms):
    return functools.reduce(operator.add, terms)


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
