"""Fractional max pooling (Graham 2014): `fractional_max_pool`, PyTorch's windows, N-d.

One spatial dim of size L pooled to O outputs with a window of k cells, and a sample u in
[0, 1) drawn per (n, c, dim). PyTorch's pseudo-random interval rule, in x's floating type::

    alpha   = (L - k) / (O - 1)
    start_i = int((i + u) alpha) - int(u alpha)     for i < O - 1
    start_{O-1} = L - k                             (also when O = 1)

window i covers [start_i, start_i + k); a box window is the product of the per-dim ones. Where
alpha is a whole number the starts are i * alpha whatever u (the sample moves nothing). The
windows differ per (n, c) and may depend on traced samples, so they are data: per dim the k
cells of every window are gathered at start + m, the winner (row-major first maximum, or the
last for ties="last"; NaN above every number) found by comparisons over the k^D cells of each
box, and its flat row-major index r into the spatial input of (n, c) recorded::

    y[i]   = x[r[i]]
    t_y[i] = t[r[i]]                      (the tangent: forward mode, `unpool_gather_p`)
    dx[t]  = sum_{i : r[i] = t} g[i]      (the backward: its transpose `scatter_p`)

`fractional_max_pool` is a `jax.custom_jvp` whose tangent is that gather of the input tangent
(linear, the indices constant), so reverse mode runs the registered transpose, g placed on the
winners (windows sharing a winner accumulate): no autodiff of the forward's gathers.
ties="split" records the set T_i of a window's tied cells instead (a bitmask over its k^D
offsets, with the starts): the tangent is the mean of t over T_i and the backward gives each
cell of T_i g[i] / |T_i| (`split.py`'s pair of primitives, each the other's transpose). The
samples get no gradient (the output is piecewise constant in them). Integer and bool x: the
same windows (the starts in the samples' floating dtype) and winners, nothing to
differentiate (JAX's float0).

Windows on a grid: where alpha is a whole number a in every dim (O = 1: k = L), the starts are
i a for every sample in exact arithmetic (PyTorch's output_ratio 0.5 with k = 2 on even L is
such a case), and the windows are `max_pool`'s with window k, stride a. Rounding can still move
a start (u within about (i + 1) 2^-24 of 1 rounds i + u up to i + 1 in float32, as in
PyTorch), so this is checked at run time: the forward computes the starts and, where every
one is i a, takes `max_pool`'s winners (`window_winners`: the native kernel where it runs)
instead of gathering the windows' cells (`lax.cond`; a batched sample turns it into a select
of both). The winners, and so y, the indices and every derivative, are the same either way:
the same comparisons in the same row-major order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._core import validate as v
from jaxconv._core.layout import split_layout
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, Ints
from jaxconv._core.window import pool_window
from jaxconv.pooling import max_pool as mp
from jaxconv.pooling.split import Boxes, equal, pack, winner_tangents

_I32 = jnp.int32


class FractionalCfg(NamedTuple):
    """Static, hashable geometry of one fractional max pooling call."""

    layout: str
    axes: tuple[int, ...]  # spatial axes of x
    size: tuple[int, ...]  # L per dim
    window: tuple[int, ...]  # k per dim
    out: tuple[int, ...]  # O per dim
    sample_of: tuple[int, ...]  # per spatial dim: which column of `samples` drives it


def sample_columns(nd: int) -> tuple[int, ...]:
    """The column of `samples` driving each spatial dim: 2-D reversed (PyTorch:
    ``samples[..., 0]`` drives W, ``[..., 1]`` H), every other rank in order (PyTorch's 3-D
    reads T, H, W)."""
    return (1, 0) if nd == 2 else tuple(range(nd))


def fractional_max_pool(
    x: ArrayLike,
    window: Ints,
    *,
    output_size: Ints | None = None,
    output_ratio: float | Sequence[float] | None = None,
    samples: ArrayLike | None = None,
    key: ArrayLike | None = None,
    ties: str = "first",
    return_indices: bool = False,
    layout: str = "channels_last",
) -> Array | tuple[Array, Array]:
    r"""N-d fractional max pooling (Graham 2014) with PyTorch's windows; gradient to the winner.

    Per dim of size L pooled to O with window k and sample u:
    :math:`\alpha = (L - k)/(O - 1)`, window i starts at
    :math:`\lfloor (i + u)\alpha \rfloor - \lfloor u\alpha \rfloor` (i < O - 1), the last at
    L - k, computed in x's dtype as PyTorch does.

    .. math:: y_i = \max_{t \in W_i} x_t, \qquad
              \frac{\partial E}{\partial x_t} = \sum_{i:\ \mathrm{winner}(i) = t} g_i

    The tangent is the input tangent at the recorded winners (a gather by flat index); the
    backward is its transpose, g placed on the winners. With ``ties="split"`` the winners of
    window i are all its cells :math:`T_i` that hold the maximum: the tangent is the mean of
    the input tangent over them, the backward gives each :math:`g_i / |T_i|` (`max_pool`'s
    "split"). `samples` gets no gradient.

    Args:
      x: (N, *spatial, C) for ``layout="channels_last"``, (N, C, *spatial) for "channels_first";
        any number (>= 1) of spatial dims (PyTorch: 2 or 3); floating, integer or bool dtype
        (integers and bools: the values of lax's max, the derivative JAX gives an integer
        input, float0; the starts computed in the samples' dtype).
      window: k, an int or one per spatial dim.
      output_size: O, an int or one per dim; exactly one of `output_size` and `output_ratio`.
      output_ratio: a number or one per dim in (0, 1); O = int(L * ratio).
      samples: (N, C, D) in [0, 1), D = number of spatial dims: PyTorch's ``_random_samples``
        (cast to x's dtype if x is floating). For D = 2 column 0 drives the last spatial dim
        (W) and column 1 the first (H), as in PyTorch's 2-D op; for every other D column d
        drives spatial dim d (PyTorch's 3-D order: T, H, W).
      key: a `jax.random` key drawing `samples` uniformly (in x's dtype; float32 for an
        integer or bool x) when `samples` is None.
      ties: "first" (row-major first maximum, PyTorch), "last", or "split" (g shared equally
        among the tied maxima of a window; its tangent their mean), as in `max_pool`.
      return_indices: also return each winner's flat row-major index into the spatial input of
        its (n, c), int32, y's shape (the first maximum for "split"; `max_unpool` takes them).

    Returns:
      y: (N, *O, C) or (N, C, *O), and the indices if asked.

    NaN counts as larger than every number: a window holding NaN outputs NaN and its gradient
    goes to its first NaN (its last for "last", shared among its NaNs for "split"; PyTorch's
    index is its last NaN).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([1., 5., 2., 0., 3., 4.]).reshape(1, 6, 1)
      >>> u = jnp.full((1, 1, 1), 0.5)
      >>> fractional_max_pool(x, 2, output_size=3, samples=u).ravel().tolist()
      [5.0, 2.0, 4.0]
      >>> jax.grad(lambda x: fractional_max_pool(x, 2, output_size=3, samples=u).sum())(
      ...     x).ravel().tolist()
      [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    """
    fn = "fractional_max_pool"
    v.check_layout(fn, layout)
    v.check_real(fn, "x", x)
    nd = v.spatial_rank(fn, x)
    n, size, c = split_layout(x.shape, layout)
    win = v.int_tuple(fn, "window", window, nd)
    out = _output_size(fn, size, output_size, output_ratio)
    for d, (l_, k, o) in enumerate(zip(size, win, out)):
        if k > l_ or o + k - 1 > l_:
            v.fail(
                fn,
                "window",
                window,
                f"does not fit: output size + window - 1 (={o} + {k} - 1) must be <= the input "
                f"size (={l_}) in spatial dim {d}",
            )
    v.check_choice(fn, "ties", ties, v.TIES)
    v.check_bool(fn, "return_indices", return_indices)
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    if samples is None:
        if key is None:
            v.fail(fn, "samples", None, "must be given, or a `key` to draw them")
        samples = jax.random.uniform(key, (n, c, nd), x.dtype if floating else jnp.float32)
    elif key is not None:
        v.fail(fn, "key", "a key", "must be None when `samples` is given (one source of samples)")
    else:
        _check_samples(fn, samples, (n, c, nd))
    axes = tuple(range(1, nd + 1)) if layout == "channels_last" else tuple(range(2, nd + 2))
    cfg = FractionalCfg(layout, axes, tuple(size), win, out, sample_columns(nd))
    if ties == "split" and (not floating or math.prod(win) == 1):
        ties = "first"  # no derivative to share, or one-cell windows: the same values

    def body(x, u):
        if floating:
            y, idx, *_ = _fractional_max(x, u, cfg, ties)
        else:  # integers and bools: nothing to differentiate (JAX gives float0 tangents)
            y, idx = _winners(x, u, cfg, ties)
        return (y, idx) if return_indices else y

    return auto_partitioned(body, x, samples, batch=(0, 1))


def _output_size(fn, size, output_size, output_ratio) -> tuple[int, ...]:
    nd = len(size)
    if (output_size is None) == (output_ratio is None):
        v.fail(
            fn,
            "output_size",
            output_size,
            f"and `output_ratio` (={v.show(output_ratio)!r}): exactly one must be given",
        )
    if output_size is not None:
        return v.int_tuple(fn, "output_size", output_size, nd)
    if isinstance(output_ratio, Sequence) and not isinstance(output_ratio, str):
        if len(output_ratio) != nd:
            v.fail(fn, "output_ratio", output_ratio, f"must have one entry per spatial dim ({nd})")
        ratios = tuple(output_ratio)
    else:
        ratios = (output_ratio,) * nd
    for r in ratios:
        if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)):
            v.fail(fn, "output_ratio", output_ratio, "must be a number or one per dim", TypeError)
        if not 0 < r < 1:
            v.fail(fn, "output_ratio", output_ratio, "must be in (0, 1) in every dim")
    out = tuple(int(n * float(r)) for n, r in zip(size, ratios))
    if any(o < 1 for o in out):
        v.fail(
            fn,
            "output_ratio",
            output_ratio,
            f"gives an empty output (int(input size * ratio) = {out} for input size {size})",
        )
    return out


def _check_samples(fn, samples, shape):
    v.check_float(fn, "samples", samples)
    v.check_shape(fn, "samples", samples.shape, shape, "(N, C, number of spatial dims)")
    if isinstance(samples, jax.core.Tracer):
        return
    u = np.asarray(samples, np.float64)
    if u.size and not (np.all(u >= 0) and np.all(u < 1)):
        bad = u[~((u >= 0) & (u < 1))].ravel()[0]
        v.fail(fn, "samples", u, f"must be >= 0 and < 1 (found {float(bad)!r})")


def starts(u, n: int, k: int, o: int):
    """Window starts (..., o) int32 for samples u (...), PyTorch's rule in u's dtype."""
    if o == 1:
        return jnp.full((*u.shape, 1), n - k, _I32)
    dt = u.dtype
    alpha = jnp.asarray(n - k, dt) / jnp.asarray(o - 1, dt)
    i = jnp.arange(o - 1, dtype=dt).reshape((1,) * u.ndim + (o - 1,))
    first = ((i + u[..., None]) * alpha).astype(_I32) - (u * alpha).astype(_I32)[..., None]
    last = jnp.full((*u.shape, 1), n - k, _I32)
    return jnp.clip(jnp.concatenate([first, last], axis=-1), 0, n - k)


def _gt(a, b):
    """a > b with NaN above every number (NaN vs NaN: not greater): the first maximum wins."""
    return (a > b) | (jnp.isnan(a) & ~jnp.isnan(b))


def _ge(a, b):
    """a >= b with NaN above every number: the last maximum wins."""
    return (a >= b) | jnp.isnan(a)


def boxes(cfg: FractionalCfg) -> Boxes:
    """The windows for `split.py`: their starts are operands, (N, C, O_d) per dim."""
    return Boxes(cfg.layout, cfg.axes, cfg.size, cfg.window, cfg.out)


def grid_strides(cfg: FractionalCfg) -> tuple[int, ...] | None:
    """Per dim the stride a = (L - k) / (O - 1) where it is a whole number in every dim (1 for
    O = 1 with k = L): the windows then start at i a whatever the sample, up to rounding
    (checked at run time, `_winners`). None elsewhere."""
    strides = []
    for n, k, o in zip(cfg.size, cfg.window, cfg.out):
        if o == 1:
            if n != k:
                return None
            strides.append(1)
        elif (n - k) % (o - 1):
            return None
        else:
            strides.append((n - k) // (o - 1))
    return tuple(strides)


def _on_grid(u, cfg: FractionalCfg, strides) -> Array:
    """Whether every start the samples give is i * stride (a bool scalar)."""
    ok = jnp.bool_(True)
    for d, (n, k, o, a) in enumerate(zip(cfg.size, cfg.window, cfg.out, strides)):
        s = starts(u[..., cfg.sample_of[d]], n, k, o)
        ok = ok & jnp.all(s == lax.broadcasted_iota(_I32, s.shape, s.ndim - 1) * a)
    return ok


def _grid_winners(x, cfg: FractionalCfg, strides, ties: str):
    """(y, flat winner index) of windows k with stride `strides` from 0: `max_pool`'s forward
    (its winners: the same comparisons, row-major, NaN above every number)."""
    win = pool_window(
        "fractional_max_pool", x, cfg.window, strides, "VALID", 1, False, cfg.layout, ordered=True
    )
    return mp.window_winners(x, win, ties)


def _winners(x, u, cfg: FractionalCfg, ties: str):
    """(y, flat winner index) of every window; for ties="split" also the tie bits of every
    window's cells as uint8 words (`split.pack`; the index: the first maximum's) and the
    starts of each dim, (N, C, O_d) int32. u (N, C, D) already in the dtype of the starts (x's
    when floating). Windows on a grid (`grid_strides`, checked on the samples) take
    `max_pool`'s winners (ties "first" and "last")."""
    strides = grid_strides(cfg)
    if strides is None or ties == "split" or 0 in x.shape:
        return _gathered(x, u, cfg, ties)
    return lax.cond(
        _on_grid(u, cfg, strides),
        lambda x, u: _grid_winners(x, cfg, strides, ties),
        lambda x, u: _gathered(x, u, cfg, ties),
        x,
        u,
    )


def _gathered(x, u, cfg: FractionalCfg, ties: str):
    """`_winners` by gathering every window's cells.

    Per dim the k cells of every window (start + m, start per (n, c)) are gathered along the
    axis (take_along_axis: it holds O * k cells, offset m of every window the slice m::k); the
    k^D cells of each box are then compared row-major."""
    if jnp.issubdtype(x.dtype, jnp.floating):
        better = _ge if ties == "last" else _gt
    else:
        better = lax.ge if ties == "last" else lax.gt
    c_axis = x.ndim - 1 if cfg.layout == "channels_last" else 1

    def along(table, a):  # (N, C, O) per-(n, c) table broadcast to x's rank, O at axis a
        t = jnp.moveaxis(table, 1, -1) if cfg.layout == "channels_last" else table
        shape = [1] * x.ndim
        shape[0], shape[c_axis], shape[a] = table.shape[0], table.shape[1], table.shape[2]
        return t.reshape(shape)

    cells, tables = x, []
    for d, (a, n, k, o) in enumerate(zip(cfg.axes, cfg.size, cfg.window, cfg.out)):
        s = starts(u[..., cfg.sample_of[d]], n, k, o)  # (N, C, O)
        tables.append(s)
        pos = (s[..., None] + jnp.arange(k, dtype=_I32).reshape(1, 1, 1, k)).reshape(
            *s.shape[:2], o * k
        )
        cells = jnp.take_along_axis(cells, along(pos, a), axis=a, mode="clip")
    slices = []
    for m in itertools.product(*(range(k) for k in cfg.window)):
        start, limit, step = [0] * x.ndim, list(cells.shape), [1] * x.ndim
        for a, mm, k in zip(cfg.axes, m, cfg.window):
            start[a], step[a] = mm, k
        slices.append(lax.slice(cells, start, limit, step))
    y, off = slices[0], jnp.zeros(slices[0].shape, _I32)
    for r, xr in enumerate(slices[1:], 1):
        take = better(xr, y)
        y, off = jnp.where(take, xr, y), jnp.where(take, r, off)
    rem, ms = off, []
    for k in reversed(cfg.window):
        ms.append(rem % k)
        rem = rem // k
    idx = jnp.zeros(off.shape, _I32)
    for a, n, s, mm in zip(cfg.axes, cfg.size, tables, reversed(ms)):
        idx = idx * n + along(s, a) + mm
    if ties != "split":
        return y, idx
    return (y, idx, *pack([equal(xr, y) for xr in slices]), *tables)


@partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _fractional_max(x, u, cfg: FractionalCfg, ties: str):
    """(y, flat winner indices, and for "split" the tie words and the starts);
    differentiated only by the rule below."""
    return _winners(x, lax.convert_element_type(u, x.dtype), cfg, ties)


@_fractional_max.defjvp
def _fractional_max_jvp(cfg: FractionalCfg, ties: str, primals, tangents):
    """The tangent at the winners (`unpool_gather_p`, whose transpose places g on them); for
    "split" the mean over the tied cells (`split.split_pick_p`, whose transpose shares g).
    The samples' tangent is dropped (the output is piecewise constant in them)."""
    (x, u), (t, _) = primals, tangents
    out = _fractional_max(x, u, cfg, ties)  # a second derivative runs this rule again
    return out, winner_tangents(t, out, ties, boxes(cfg), "fractional_max_pool")
