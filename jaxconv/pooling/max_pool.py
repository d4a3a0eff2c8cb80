"""Max pooling with our own JVP and VJP: `max_pool` (`max_unpool`, `global_max_pool`: `unpool.py`).

Seed 001 (Jefkine, "Pooling Layer") and seed 002 ("the max-pooling passes the gradient flow
through the largest cell"): the forward notes the index of each window's "winning unit" and the
backward assigns the window's error to that unit alone; every other unit gets zero. One dim,
offsets m = 0..k-1 inside window i (padded positions i*s + m*d, see `reduce.py`)::

    y[i]  = max_m x~[i*s + m*d]              r[i] = the winning m (int8 when k <= 127)
    t_y[i] = t~[i*s + r[i]*d]                (the tangent: forward mode)
    dx[t] = sum_{i : i*s + r[i]*d - lo = t} g[i]       (overlapping windows accumulate)

`max_pool` is a `jax.custom_jvp` whose rule computes y and r and returns the tangent as the
linear map `winner_pick` of the input tangent, r a constant argument; JAX's reverse mode
transposes that map with its registered transpose, `winner_spread_p`: the hand-written backward,
with r as the only residual (1 byte per output instead of 4-8 bytes per input). y and r come
out of one loop (`reduce.one_pass`), so the backward reads the stored r instead of XLA
re-inlining the K-way argmax into it. The scatter-add is, per offset m, ``where(r == m, g, 0)``
shifted into its stride phase, the phases interleaved (`reduce.spread`): one loop over dx, no
index array. JAX's own rule for `reduce_window` max (select_and_gather_add) raises
NotImplementedError with window dilation; this one does not care.

Max pooling's linear maps: the tangent at the recorded winner and its transpose, the spread.

With r[i] the winner's offset inside window i (the residual of `pooling.max_pool`), one dim::

    winner_pick (winner_pick_p, "max_pool_pick"):
                 t_y[i] = t~[i*s + r[i]*d]    (ties="split": the mean over the tied cells)
    winner spread (winner_spread_p, "max_pool_spread"):
                 dx[t]  = sum_{i : i*s + r[i]*d - lo = t} g[i]

Each is the other's transpose, so forward mode (jvp, linearize, jacfwd) runs `winner_pick_p`,
reverse mode runs `winner_spread_p` -- seed 001's routing of the window's error to its winning unit,
i.e. the hand-written backward pass (`reduce.spread`) -- and every higher derivative alternates
the two. The offsets (int8/int16/int32) or, for ties="split", the uint8 tie bitmasks are constant
arguments; both maps batch by folding the mapped axis into N.

On CPU, float32 channels-last pools of 1-3 spatial dims and at least 16 channels with
ties="first" (max and min) compute on our own kernels (native/src/pool.cc, through XLA's FFI;
`pooling.lowering.native`): the forward with its offsets is the primitive `winners_p`, which
`_with_residual` binds, and the pick and the spread carry a static ``native`` param chosen at
bind time -- only their lowering changes, every rule above is the same. The kernels follow the
pure algorithm's conventions exactly (the first maximum, NaN wins, padding never beats an
input cell, a window of padding only gives -inf and offset 0): the same offsets, the spread's
sums in the same order. Measured on a 2-core AMD EPYC (AVX-512), kernel vs the pure loop traced
in `pure_jax()`, one process, interleaved medians of 80 calls with a 2 ms pause before each (the
benchmark's protocol) / without the pause:

====================  ===========  ===========  ===========  ==============
window, N 64-ch       forward+r    spread       pick         fwd+bwd (op)
====================  ===========  ===========  ===========  ==============
2x2, N64 32²          0.75 / 0.81  0.70 / 0.79  1.01 / 1.16  0.75 / 0.56
3x3 s2 p1, N32 56²    1.06 / 1.06  0.93 / 0.82  0.45 / 0.43  0.94 / 0.94
3x3 s1 p1, N32 28²    0.86 / 0.72  1.05 / 0.96  0.64 / 0.47  0.67 / 0.57
1-D 2, N64 1024       0.93 / 1.05  0.61 / 0.58  1.01 / 0.95  0.79 / 0.60
====================  ===========  ===========  ===========  ==============

so the forward and the spread run on the kernels by default (max_pool's fwd+bwd: 0.56-0.94x;
experiments/benchmark.py, 3 runs: maxpool_2x2 0.72x, maxpool_3x3_s2_p1 0.90-1.17x, median 0.91x
the pure path), the pick for overlapping windows only, and the forward without a derivative (y
alone, against a pure forward that skips the offsets) only for 2-D/3-D tiling windows (2x2:
0.68-0.70x; 3x3 s2 p1 1.07-1.18x, 1-D 1.2-1.4x: not adopted). Under 16 channels the kernels go
lane by lane (N64 64² C3: 3-6x slower) and the pure algorithm runs.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._core import validate as v
from jaxconv._core.dtypes import accumulation
from jaxconv._core.linmap import fold_rule
from jaxconv._core.primitive import batching_rule, linear, primitive
from jaxconv._core.residuals import name
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, Ints, Padding
from jaxconv._core.window import Window, map_windows, pad_to_cover, pool_window
from jaxconv.pooling.lowering import native as kernels
from jaxconv.pooling.reduce import one_pass, spread

_I32 = jnp.int32


class _Cfg(NamedTuple):
    win: Window
    ties: str
    return_indices: bool
    op: str = "max"  # "min": `min_pool`, the same rules with the order reversed
    owner: str = ""  # the op whose name the residual carries ("": `{op}_pool`)


def max_pool(
    x: ArrayLike,
    window: Ints,
    *,
    stride: Ints = None,
    padding: Padding = "VALID",
    dilation: Ints = 1,
    ceil_mode: bool = False,
    ties: str = "first",
    return_indices: bool = False,
    layout: str = "channels_last",
) -> Array | tuple[Array, Array]:
    r"""N-d max pooling whose gradient goes to the recorded winner of each window.

    Seed 001 (Jefkine, "Pooling Layer") and seed 002: the error of each pooled output is
    assigned to its window's "winning unit" only; overlapping windows accumulate.

    .. math:: y_i = \max_m \tilde x_{i s + m d}, \qquad
              \frac{\partial E}{\partial x_t} = \sum_{i:\ \mathrm{winner}(i) = t} g_i

    Args:
      x: (N, *spatial, C) for ``layout="channels_last"``, (N, C, *spatial) for "channels_first";
        any number (>= 1) of spatial dims; floating, integer or bool dtype (integers and bools
        as lax's max `reduce_window`: nothing to differentiate, JAX's tangents and gradients
        for them are float0).
      window: an int or one per spatial dim (k).
      stride: same; default `window`.
      padding: "VALID", "SAME", an int, one int per dim, or one (lo, hi) pair per dim; padding
        cells are -inf (an integer dtype's smallest value, False for bool) and never win
        against a finite value. At most half the dilated window per side (PyTorch's rule,
        which measures the undilated window).
      dilation: window dilation d (gaps between window cells).
      ceil_mode: round the output size up (PyTorch): an extra, partial last window when it
        starts inside the input or the left padding.
      ties: "first" (row-major first maximum, PyTorch's choice), "last", or "split" (g shared
        equally among the tied maxima).
      return_indices: also return PyTorch-style flat indices into the unpadded spatial input,
        per (n, c), int32, y's shape (the first winner for "split"; -1 for a window that
        holds only padding, possible with dilation). They feed `max_unpool`.

    Returns:
      y: (N, *out, C) or (N, C, *out), and the indices if asked.

    NaN counts as larger than every number, so a window holding NaN outputs NaN and its
    gradient goes to the NaN (the first one; `ties` decides among several), as in PyTorch.
    Residual (what the backward keeps instead of x): the winner's offset inside its window,
    int8 for windows of <= 127 cells (int16, then int32, beyond); for ties="split" a bitmask of
    the tied cells, ceil(K/8) uint8 arrays of y's shape (the count is their popcount).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([[1., 3.], [2., 0.]]).reshape(1, 2, 2, 1)
      >>> max_pool(x, 2).ravel().tolist()
      [3.0]
      >>> jax.grad(lambda x: max_pool(x, 2).sum())(x).ravel().tolist()  # to the winner
      [0.0, 1.0, 0.0, 0.0]
    """
    args = (window, stride, padding, dilation, ceil_mode, ties, return_indices, layout)
    return _pool("max_pool", "max", x, *args)


def min_pool(
    x: ArrayLike,
    window: Ints,
    *,
    stride: Ints = None,
    padding: Padding = "VALID",
    dilation: Ints = 1,
    ceil_mode: bool = False,
    ties: str = "first",
    return_indices: bool = False,
    layout: str = "channels_last",
) -> Array | tuple[Array, Array]:
    r"""N-d min pooling (Flax's `min_pool`): `max_pool` with the order reversed.

    .. math:: y_i = \min_m \tilde x_{i s + m d}, \qquad
              \frac{\partial E}{\partial x_t} = \sum_{i:\ \mathrm{winner}(i) = t} g_i

    The same rules as `max_pool` (the winner's offset as the residual, its gradient routed to
    the winner), with its own ties: "first" is the row-major first minimum (not the first
    maximum of -x, which -max_pool(-x) would give and which differs under ties="last"); NaN
    wins, as in `max_pool`; padding cells are +inf (an integer dtype's largest value, True for
    bool) and never win against a finite value. Arguments, shapes and the residual as
    `max_pool`; integer and bool `x` as there.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([[1., 3.], [2., 0.]]).reshape(1, 2, 2, 1)
      >>> min_pool(x, 2).ravel().tolist()
      [0.0]
      >>> jax.grad(lambda x: min_pool(x, 2).sum())(x).ravel().tolist()  # to the winner
      [0.0, 0.0, 0.0, 1.0]
    """
    args = (window, stride, padding, dilation, ceil_mode, ties, return_indices, layout)
    return _pool("min_pool", "min", x, *args)


def tiling_max_pool(owner: str, x, window, *, ties: str, return_indices: bool, layout: str):
    """`max_pool(x, window)` (stride = window) on behalf of `owner`, whose name its residual
    carries (``jaxconv.<owner>.offsets``): `adaptive_max_pool`'s tiling windows."""
    args = (window, None, "VALID", 1, False, ties, return_indices, layout)
    return _pool(owner, "max", x, *args, owner=owner)


def _pool(
    fn, op, x, window, stride, padding, dilation, ceil_mode, ties, return_indices, layout, owner=""
):
    win = pool_window(fn, x, window, stride, padding, dilation, ceil_mode, layout, ordered=True)
    v.check_choice(fn, "ties", ties, v.TIES)
    v.check_bool(fn, "return_indices", return_indices)
    cfg = _Cfg(win, ties, return_indices, op, owner)
    if not jnp.issubdtype(x.dtype, jnp.floating):  # integers and bools: nothing to differentiate
        return auto_partitioned(lambda x: _forward(x, cfg), x)
    return auto_partitioned(lambda x: (_max_pool if op == "max" else _min_pool)(x, cfg), x)


def _forward(x, cfg: _Cfg):
    """The forward alone (no residual): y, and the flat indices if asked (on the native kernel
    where it is chosen, `_native_max`)."""
    if _native_max(x, cfg.win, cfg.ties) and kernels.ADOPTED[_inference(cfg.win)]:
        y, off = winners_p.bind(x, win=cfg.win, ties=cfg.ties, op=cfg.op, native=True)
    else:
        y, off, *_ = _reduce(x, cfg.win, cfg.ties, cfg.op)
    return (y, _flat_indices(off, cfg.win)) if cfg.return_indices else y


def window_winners(x, win: Window, ties: str = "first"):
    """(y, flat winner index per window) of max pooling over `win`, for other pools whose
    windows are these (fractional max pooling on a grid): the forward alone, on the native
    kernel where it is chosen, no derivative rule (the caller differentiates through the
    indices)."""
    return _forward(x, _Cfg(win, ties, True))


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_pool(x, cfg: _Cfg):
    return _forward(x, cfg)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _min_pool(x, cfg: _Cfg):
    return _forward(x, cfg)


def _pool_jvp(cfg: _Cfg, primals, tangents):
    """y and its residual from one loop (`_with_residual`); the tangent is the input tangent
    at the recorded winners (`winner_pick`), whose transpose is the hand-written backward."""
    (x,), (t,) = primals, tangents
    y, off, *words = _with_residual(x, cfg.win, cfg.ties, cfg.op)
    owner = cfg.owner or f"{cfg.op}_pool"
    res = name(tuple(words) if cfg.ties == "split" else off, owner, "offsets")
    ty = winner_pick(t, res, cfg.win, cfg.ties)
    if not cfg.return_indices:
        return y, ty
    idx = _flat_indices(off, cfg.win)
    return (y, idx), (ty, np.zeros(idx.shape, jax.dtypes.float0))


_max_pool.defjvp(_pool_jvp)
_min_pool.defjvp(_pool_jvp)


@partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _with_residual(x, win: Window, ties: str, op: str):
    """(y, offsets, *tie words) as stored arrays (`winners_p`): the backward reads the stored
    offsets instead of XLA re-inlining the K-way argmax into it."""
    native_ok = _native_max(x, win, ties)
    return tuple(winners_p.bind(x, win=win, ties=ties, op=op, native=native_ok))


@_with_residual.defjvp
def _with_residual_jvp(win, ties, op, primals, tangents):
    (x,), (t,) = primals, tangents
    out = _with_residual(x, win, ties, op)  # a second derivative runs this rule again
    res = tuple(out[2:]) if ties == "split" else out[1]
    zeros = tuple(np.zeros(a.shape, jax.dtypes.float0) for a in out[1:])
    return out, (winner_pick(t, res, win, ties), *zeros)


def _winners(x, *, win: Window, ties: str, op: str, native: bool = False):
    """`winners_p`'s pure-JAX algorithm: `_reduce`'s (y, offsets, *tie words) written by one
    XLA loop (`one_pass`)."""
    del native  # steers the CPU lowering only (`lowering.native.cpu_lowering`)
    out = _reduce(x, win, ties, op)
    # One cell per window: nothing to re-inline, and the offsets are a constant, which with a
    # folded vmap axis crashed XLA:CPU's compiler inside the variadic reduce (jax 0.10.2).
    return one_pass(*out) if win.cells > 1 else tuple(out)


def _winners_native(x, *, win: Window, ties: str, op: str, native: bool):
    """(y, offsets) of a float32 channels-last x on ``jaxconv_max_pool_f32`` (ties="first")."""
    assert native and ties == "first", (native, ties)
    return kernels.max_pool(x, win, op, _offset_dtype(win.cells))


def _inference(win: Window) -> str:
    """The `kernels.ADOPTED` key of the forward alone (y without the offsets a derivative
    needs): measured faster than the pure loop only for tiling windows of 2-D and 3-D pools."""
    tiling = kernels.tiles(win) and len(win.axes) >= 2
    return "max/inference/tiling" if tiling else "max/inference/other"


def _native_max(x, win: Window, ties: str) -> bool:
    """Whether the forward may run on the native kernel (static, at bind time): ties="first"
    and `lowering.native.usable`."""
    return ties == "first" and kernels.usable(x, win)


_WINNERS = ("win", "ties", "op", "native")
# The forward of the rules above: (y, offsets, *tie words), the offsets stored for the backward.
# Only ever bound inside `_with_residual` / `_max_pool` (custom_jvp: no JVP rule of its own).
winners_p = primitive("max_pool_winners", _winners, _WINNERS, multiple_results=True)
kernels.register(winners_p, "max", _winners, _winners_native, _WINNERS)
batching_rule(winners_p, fold_rule(winners_p))


def _gt(a, b):
    """a > b with NaN above every number (NaN vs NaN: not greater)."""
    return (a > b) | (jnp.isnan(a) & ~jnp.isnan(b))


def _ge(a, b):
    return (a >= b) | jnp.isnan(a)


def _lt(a, b):
    """a < b with NaN winning as in `_gt` (min_pool outputs a window's NaN too)."""
    return (a < b) | (jnp.isnan(a) & ~jnp.isnan(b))


def _le(a, b):
    return (a <= b) | jnp.isnan(a)


def _better(dtype, ties: str, op: str):
    """The comparison that replaces the running winner: strict for "first" and "split",
    non-strict for "last"; NaN handling only for floating dtypes."""
    if not jnp.issubdtype(dtype, jnp.floating):
        strict, loose = (lax.gt, lax.ge) if op == "max" else (lax.lt, lax.le)
    else:
        strict, loose = (_gt, _ge) if op == "max" else (_lt, _le)
    return loose if ties == "last" else strict


def _fill(dtype, op: str):
    """The padding value that never wins: -inf/+inf, an integer's extremes, False/True."""
    if jnp.issubdtype(dtype, jnp.floating):
        return -jnp.inf if op == "max" else jnp.inf
    if dtype == jnp.bool_:
        return op == "min"
    info = jnp.iinfo(dtype)
    return int(info.min if op == "max" else info.max)


def _offset_dtype(cells: int):
    return jnp.int8 if cells <= 127 else jnp.int16 if cells <= 32767 else _I32


def _reduce(x, win: Window, ties: str, op: str = "max"):
    """(y, offsets) of every window, and for ties="split" the tie bits as uint8 words.

    A padding cell never wins against an input cell, even an equal one (an input of -inf, an
    integer's extreme value, False): `map_windows` says which cells are padding -- statically
    for the blocks of the no-copy path, so the common case pays nothing for it."""
    better = _better(x.dtype, ties, op)
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    odt = _offset_dtype(win.cells)

    def equal(a, b):
        return (a == b) | (jnp.isnan(a) & jnp.isnan(b)) if floating else a == b

    def reduce(slices):  # the running winner and its offset; for "split", the tie bits
        y = off = None
        y_real = False
        for r, xr, real in slices:
            if y is None:
                y, off, y_real = xr, jnp.zeros(xr.shape, odt), real
                continue
            if real is False and y_real is not False:
                continue  # padding never replaces an input cell
            if real is not False and y_real is False:
                take = True if real is True else real
            elif real is True and y_real is True:
                take = better(xr, y)
            else:  # masks: input beats padding, like beats like by the order
                real_a, y_real_a = jnp.asarray(real), jnp.asarray(y_real)
                take = jnp.where(real_a == y_real_a, better(xr, y), real_a & ~y_real_a)
            if take is True:
                y, off = xr, jnp.full(xr.shape, r, odt)
            else:
                y, off = jnp.where(take, xr, y), jnp.where(take, jnp.asarray(r, odt), off)
            y_real = _either(y_real, real)
        if ties != "split":
            return y, off
        words = [jnp.zeros(y.shape, jnp.uint8) for _ in range((win.cells + 7) // 8)]
        for r, xr, real in slices:
            if real is False and y_real is True:
                continue
            tied = equal(xr, y)
            if not (real is True or y_real is False):
                tied = tied & (jnp.asarray(real) | ~jnp.asarray(y_real))
            words[r // 8] = words[r // 8] | (tied.astype(jnp.uint8) << (r % 8))
        return y, off, *words

    return map_windows(x, win, _fill(x.dtype, op), reduce, real=True)


def _either(a, b):
    """a | b for Python bools or bool arrays (static where both are static)."""
    if a is True or b is True:
        return True
    if a is False:
        return b
    if b is False:
        return a
    return a | b


def _flat_indices(off, win: Window):
    """Row-major flat index into the unpadded spatial input of the cell at offset `off`."""
    rem, ms = off.astype(_I32), []
    for k in reversed(win.window):
        ms.append(rem % k)
        rem = rem // k
    idx, inside = jnp.zeros(off.shape, _I32), jnp.ones(off.shape, bool)
    for a, m, s, d, (lo, _), n in zip(
        win.axes, reversed(ms), win.stride, win.dilation, win.pads, win.size
    ):
        pos = lax.broadcasted_iota(_I32, off.shape, a) * s + m * d - lo
        idx, inside = idx * n + pos, inside & (pos >= 0) & (pos < n)
    return jnp.where(inside, idx, -1)  # -1: the winner is padding (a window of padding only)


_I32 = jnp.int32


def tie_count(words):
    """How many cells of each window tie for its maximum (the popcount of its bitmask)."""
    return sum(lax.population_count(w).astype(_I32) for w in words)


def _tied(words, r):
    return ((words[r // 8] >> (r % 8)) & 1) == 1


def _cells(t, win: Window):
    """[(r, t_r)]: t_r[i] = t~[i*s + m*d], offset m = r-th of `win.offsets()`, of t
    zero-padded to the region the windows cover."""
    tp = pad_to_cover(t, win, 0)
    out = []
    for r, m in enumerate(win.offsets()):
        first = [mm * d for mm, d in zip(m, win.dilation)]
        last = [f + (o - 1) * s + 1 for f, o, s in zip(first, win.out, win.stride)]
        start, limit = win.config(first, 0), win.config(last, tp.shape.__getitem__)
        out.append((r, lax.slice(tp, start, limit, win.config(win.stride, 1))))
    return out


def _winner_pick(t, *res, win: Window, ties: str, native: bool = False):
    """The tangent of y: t at each window's winner, or the mean of t over its tied cells."""
    del native  # steers the CPU lowering only (`lowering.native.cpu_lowering`)
    cells = _cells(t, win)
    if ties != "split":
        (off,) = res
        ty = cells[0][1]  # every offset is in [0, K): no default needed
        for r, tr in cells[1:]:
            ty = jnp.where(off == r, tr, ty)
        return ty
    acc = accumulation(t.dtype) or t.dtype
    zero = jnp.zeros((), acc)
    total = sum(jnp.where(_tied(res, r), tr.astype(acc), zero) for r, tr in cells)
    return (total / tie_count(res).astype(acc)).astype(t.dtype)


def _winner_spread(g, *res, win: Window, ties: str, native: bool = False):
    """dx: g routed to each window's winner (ties="split": g / count to every tied cell),
    overlapping windows accumulating (`reduce.spread`)."""
    del native  # steers the CPU lowering only
    zero = jnp.zeros((), g.dtype)
    if ties == "split":
        g = g / tie_count(res).astype(g.dtype)

        def piece(r, *words_g):
            return jnp.where(_tied(words_g, r), words_g[-1], zero)

        return spread(win, (*res, g), piece)

    def piece(r, off, g):
        return jnp.where(off == r, g, zero)

    return spread(win, (*res, g), piece)


def _pick_native(t, off, *, win: Window, ties: str, native: bool):
    assert native and ties != "split", (native, ties)
    return kernels.pick(t, off, win)


def _spread_native(g, off, *, win: Window, ties: str, native: bool):
    assert native and ties != "split", (native, ties)
    return kernels.spread(g, off, win)


_MAPS = ("win", "ties", "native")
winner_pick_p = primitive("max_pool_pick", _winner_pick, _MAPS)
winner_spread_p = primitive("max_pool_spread", _winner_spread, _MAPS)
kernels.register(winner_pick_p, kernels.key("pick"), _winner_pick, _pick_native, _MAPS)
kernels.register(winner_spread_p, "spread", _winner_spread, _spread_native, _MAPS)


def _winner_pick_t(ct, t, *res, win, ties, native):
    return (winner_spread_p.bind(ct, *res, win=win, ties=ties, native=native),)


def _winner_spread_t(ct, g, *res, win, ties, native):
    return (winner_pick_p.bind(ct, *res, win=win, ties=ties, native=native),)


linear(winner_pick_p, (0,), _winner_pick_t, fold_rule(winner_pick_p))
linear(winner_spread_p, (0,), _winner_spread_t, fold_rule(winner_spread_p))


def winner_pick(t, res, win: Window, ties: str):
    """The tangent of max pooling for the input tangent t, res the offsets or the tie words;
    on the native kernels (and so is its transpose, the spread) where they are usable: offsets,
    not tie words (`lowering.native.usable`)."""
    res = res if isinstance(res, tuple) else (res,)
    native = ties != "split" and kernels.usable(t, win)
    return winner_pick_p.bind(t, *res, win=win, ties=ties, native=native)
