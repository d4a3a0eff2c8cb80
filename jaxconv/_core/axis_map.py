r"""Static sparse linear maps along axes, as one primitive that is its own transpose's kind.

Every separable resampling (each mode of `interpolate`, and adaptive average pooling) is, per
spatial dim, a fixed O×L matrix A applied along that dim's axis: with the nonzeros of row o at
columns I[o, r] and weights W[o, r],

.. math:: y[\ldots, o, \ldots] = \sum_r W[o, r] \, x[\ldots, I[o, r], \ldots]

`axis_map_p` applies one such A per axis of its static ``axes`` (``tables[k]`` along
``axes[k]``, the maps of different axes commute), each given as a hashable `AxisTable` (its
nonzeros in coordinate form, sorted by row then column, duplicates summed). The map is linear in
x, so

- JVP: the same maps on the tangent;
- transpose (the backward pass): ``dx = A_1^T ... A_k^T g``, the same primitive with the
  transposed tables (rows and columns exchanged: `transposed`). A^T of a banded map is banded,
  so the backward is a gather too, never a scatter; transposing twice gives the original tables
  back, so every derivative order runs on this one primitive;
- batching: the mapped axis folded into axis 0 (N), which the maps never touch.

How one A is applied (decided once per table, in NumPy, at trace time; `_plan`), axis by axis:

- **periodic** ("polyphase"): when the rows repeat with a shift -- row o + P reads row o's
  columns moved by D, with the same weights -- the interior rows are P phases, each a fixed
  combination of strided slices ``x[c + D q]`` (q = 0, 1, ...), interleaved by a reshape; the
  few border rows that break the pattern (clamped indices) are gathered. Integer scale factors
  (2×: P = 2, D = 1), their transposes (P = 1, D = 2) and uniform 'area' windows land here:
  no gather over the interior.
- **gather** otherwise: for each tap r, ``W[:, r] * take(x, I[:, r])`` summed (rows padded to
  the widest with zero weights).

16-bit inputs compute in float32 and are cast back (`_core.dtypes.accumulation`).

On CPU, float32 maps lower instead to the native kernels (native/src/axis_map.cc; each table
densely padded, vectorised multiply-add passes over the contiguous trailing dims) when they are
usable at bind time (`_core.native.use_native`: built, not inside `pure_jax()`), recorded as the
static param ``native``, which the transpose and batching rules keep (`_native_plan`): the last
two maps as one call of ``jaxconv_axis_map2_f32``, which keeps the half-mapped slab of each
output row in a per-thread buffer (an image's H and W: one pass over x and one over y); any
other map alone through ``jaxconv_axis_map_f32`` where its plan is a gather (a periodic plan
keeps XLA's strided slices unless `NATIVE_PERIODIC` is set). The lowering falls back to the
plans above where a custom call cannot go (`lowering_blocker`: jax.export, several devices).
Measured on a 2-core AMD EPYC (AVX-512), fwd+bwd of a 2x bilinear of N8 64² C32, kernels vs
`pure_jax()` in one process, medians of 60 interleaved calls: half-pixel 0.66x, align_corners
0.62x, nearest 0.53x, bicubic 0.98x, area 21² 0.53x the pure plans' time; a single periodic map
alone: 0.5-0.7x upsampling the outer axis, 1.0-1.4x on the transposes (so not by default).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.interpreters import mlir

from jaxconv._core.dtypes import accumulation
from jaxconv._core.linmap import fold_rule
from jaxconv._core.native import lowering_blocker, use_native
from jaxconv._core.primitive import cpu_lowering, linear, primitive

_MAX_PERIOD = 8  # phases tried for the periodic plan
_WEIGHT_ATOL = 1e-13  # weights equal up to rounding count as the same phase


class AxisTable(NamedTuple):
    """The nonzeros of an O×L matrix: ``A[rows[k], cols[k]] = weights[k]``, sorted by (row,
    col), no duplicate (row, col); a row may be empty (a cell no output reads, in A^T)."""

    in_size: int  # L
    out_size: int  # O
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    weights: tuple[float, ...]


def make_table(in_size: int, idx, w) -> AxisTable:
    """The table of ``y[o] = sum_r w[o, r] x[idx[o, r]]`` (idx, w: (O, R) arrays); repeated
    columns of a row (clamped taps) are summed into one entry."""
    idx, w = np.asarray(idx, np.int64), np.asarray(w, np.float64)
    out_size = idx.shape[0]
    rows = np.repeat(np.arange(out_size), idx.shape[1])
    return _canonical(in_size, out_size, rows, idx.ravel(), w.ravel())


def _canonical(in_size, out_size, rows, cols, w) -> AxisTable:
    key = rows * (in_size + 1) + cols
    uniq, inverse = np.unique(key, return_inverse=True)
    summed = np.zeros(len(uniq))
    np.add.at(summed, inverse, w)
    r, c = np.divmod(uniq, in_size + 1)
    return AxisTable(
        int(in_size),
        int(out_size),
        tuple(int(i) for i in r),
        tuple(int(i) for i in c),
        tuple(float(i) for i in summed),
    )


@functools.lru_cache(maxsize=512)
def transposed(t: AxisTable) -> AxisTable:
    """The table of A^T (L×O): rows and columns exchanged."""
    return _canonical(
        t.out_size,
        t.in_size,
        np.asarray(t.cols, np.int64),
        np.asarray(t.rows, np.int64),
        np.asarray(t.weights),
    )


def dense(t: AxisTable) -> np.ndarray:
    """A as a dense float64 (O, L) matrix (tests, small tables)."""
    a = np.zeros((t.out_size, t.in_size))
    a[np.asarray(t.rows, np.int64), np.asarray(t.cols, np.int64)] = t.weights
    return a


# --------------------------------------------------------------------------- plans


class _Gather(NamedTuple):
    rows: tuple[int, ...]  # the output rows this gather produces, in order
    idx: np.ndarray  # (len(rows), R) int
    w: np.ndarray  # (len(rows), R) float64


class _Periodic(NamedTuple):
    lo: _Gather | None  # rows [0, a)
    cols: np.ndarray  # (P, R) first-period columns
    w: np.ndarray  # (P, R)
    step: int  # D
    periods: int  # Q
    hi: _Gather | None  # rows [a + P Q, O)


def _row_lists(t: AxisTable):
    rows = np.asarray(t.rows, np.int64)
    cols = np.asarray(t.cols, np.int64)
    w = np.asarray(t.weights)
    starts = np.searchsorted(rows, np.arange(t.out_size + 1))
    return [(cols[a:b], w[a:b]) for a, b in zip(starts[:-1], starts[1:])]


def _gather(lists, which) -> _Gather | None:
    if len(which) == 0:
        return None
    width = max(1, max(len(lists[o][0]) for o in which))
    idx = np.zeros((len(which), width), np.int64)
    w = np.zeros((len(which), width))
    for k, o in enumerate(which):
        c, ww = lists[o]
        idx[k, : len(c)], w[k, : len(c)] = c, ww
        idx[k, len(c) :] = c[0] if len(c) else 0  # padding taps: weight 0 on a valid index
    return _Gather(tuple(int(o) for o in which), idx, w)


def _same(a, b, shift) -> bool:
    (ca, wa), (cb, wb) = a, b
    return (
        len(ca) == len(cb)
        and bool(np.all(cb == ca + shift))
        and bool(np.all(np.abs(wb - wa) <= _WEIGHT_ATOL))
    )


def _periodic(lists, out_size):
    """The smallest period P (with shift D >= 1) that covers all but a few border rows."""
    if out_size < 4:
        return None
    m = out_size // 2
    for p in range(1, _MAX_PERIOD + 1):
        if m + p >= out_size:
            break
        if not (len(lists[m][0]) and len(lists[m + p][0])):
            continue
        step = int(lists[m + p][0][0] - lists[m][0][0])
        if step < 1:
            continue
        good = [_same(lists[o], lists[o + p], step) for o in range(out_size - p)]
        if not good[m]:
            continue
        lo = m
        while lo > 0 and good[lo - 1]:
            lo -= 1
        hi = m
        while hi + 1 < len(good) and good[hi + 1]:
            hi += 1
        a, b = lo, hi + p + 1  # rows [a, b) follow the period
        periods = (b - a) // p
        b = a + p * periods
        if periods < 2 or out_size - (b - a) > max(8, out_size // 4):
            continue
        width = max(len(lists[a + k][0]) for k in range(p))
        if width == 0 or any(len(lists[a + k][0]) != width for k in range(p)):
            continue
        cols = np.stack([lists[a + k][0] for k in range(p)])
        w = np.stack([lists[a + k][1] for k in range(p)])
        return _Periodic(
            _gather(lists, range(a)),
            cols,
            w,
            step,
            periods,
            _gather(lists, range(b, out_size)),
        )
    return None


@functools.lru_cache(maxsize=512)
def _plan(t: AxisTable):
    lists = _row_lists(t)
    return _periodic(lists, t.out_size) or _gather(lists, range(t.out_size))


# --------------------------------------------------------------------------- application


def _along(v, axis, ndim):
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def _apply_gather(x, g: _Gather, axis):
    y = None
    for r in range(g.idx.shape[1]):
        w = jnp.asarray(_along(g.w[:, r], axis, x.ndim), x.dtype)
        part = w * jnp.take(x, jnp.asarray(g.idx[:, r], jnp.int32), axis=axis, mode="clip")
        y = part if y is None else y + part
    return y


def _apply_periodic(x, plan: _Periodic, axis):
    p, taps = plan.cols.shape
    q, d = plan.periods, plan.step
    phases = []
    for k in range(p):
        y = None
        for r in range(taps):
            c = int(plan.cols[k, r])
            part = lax.slice_in_dim(x, c, c + d * (q - 1) + 1, d, axis)
            part = part * jnp.asarray(plan.w[k, r], x.dtype)
            y = part if y is None else y + part
        phases.append(y)
    if p == 1:
        mid = phases[0]
    else:
        mid = jnp.stack(phases, axis=axis + 1)
        shape = list(x.shape)
        shape[axis] = q * p
        mid = mid.reshape(shape)
    pieces = [_apply_gather(x, g, axis) for g in (plan.lo,) if g is not None]
    pieces.append(mid)
    pieces += [_apply_gather(x, g, axis) for g in (plan.hi,) if g is not None]
    return mid if len(pieces) == 1 else jnp.concatenate(pieces, axis=axis)


def _axis_map(x, *, tables: tuple[AxisTable, ...], axes: tuple[int, ...], native: bool = False):
    """``A_k`` along ``axes[k]`` for each k, one axis after the other (the maps act on different
    axes and commute); the pure-JAX algorithm of `axis_map_p`."""
    del native  # the pure-JAX algorithm; `native` only steers the CPU lowering (`_cpu_rule`)
    acc = accumulation(x.dtype)
    y = x if acc is None else x.astype(acc)
    for table, axis in zip(tables, axes):
        plan = _plan(table)
        if isinstance(plan, _Periodic):
            y = _apply_periodic(y, plan, axis)
        else:
            y = _apply_gather(y, plan, axis)
        assert y.shape[axis] == table.out_size, (y.shape, table.out_size)
    return y.astype(x.dtype)


# --------------------------------------------------------------------------- native kernels


@functools.lru_cache(maxsize=512)
def padded(t: AxisTable) -> tuple[np.ndarray, np.ndarray]:
    """The table densely padded to its widest row: idx (O, R) int64 and weights (O, R) float32,
    padding taps with weight 0 on a valid column (`_gather`'s padding; R >= 1 when L >= 1,
    R = 0 when there is no column to pad with), the native kernels' attributes."""
    g = _gather(_row_lists(t), range(t.out_size)) if t.in_size > 0 else None
    if g is None:  # no output row, or no input column: nothing to read
        width = int(t.in_size > 0)
        return np.zeros((t.out_size, width), np.int64), np.zeros((t.out_size, width), np.float32)
    return g.idx, g.w.astype(np.float32)


def _out_shape(shape, tables, axes):
    shape = list(shape)
    for t, a in zip(tables, axes):
        shape[a] = t.out_size
    return jax.ShapeDtypeStruct(tuple(shape), jnp.float32)


def _native_call(x, *, table: AxisTable, axis: int):
    """One map of a float32 x as one custom call, ``jaxconv_axis_map_f32``
    (native/src/axis_map.cc)."""
    idx, w = padded(table)
    out = _out_shape(x.shape, (table,), (axis,))
    return jax.ffi.ffi_call("jaxconv_axis_map_f32", out)(
        x,
        idx=idx.ravel(),
        weights=w.ravel(),
        taps=np.int64(idx.shape[1]),
        axis=np.int64(axis),
    )


def _native_call2(x, *, tables: tuple[AxisTable, AxisTable], axes: tuple[int, int]):
    """Two maps (``axes[0] < axes[1]``) of a float32 x in one pass, ``jaxconv_axis_map2_f32``
    (native/src/axis_map.cc: the half-mapped array never written out)."""
    (i1, w1), (i2, w2) = padded(tables[0]), padded(tables[1])
    return jax.ffi.ffi_call("jaxconv_axis_map2_f32", _out_shape(x.shape, tables, axes))(
        x,
        idx1=i1.ravel(),
        weights1=w1.ravel(),
        taps1=np.int64(i1.shape[1]),
        axis1=np.int64(axes[0]),
        idx2=i2.ravel(),
        weights2=w2.ravel(),
        taps2=np.int64(i2.shape[1]),
        axis2=np.int64(axes[1]),
    )


# Whether single maps with a periodic plan lower to the kernel too (off: measured no faster than
# the strided slices, module docstring; tests turn it on to compare the kernel on them).
NATIVE_PERIODIC = False
# The fused two-axis kernel keeps a (mid, L2, inner) slab per thread; above this many floats the
# two maps run one after the other instead.
FUSED_SLAB = 1 << 18


def _slab(shape, axes) -> int:
    return int(np.prod(shape[axes[0] + 1 :], dtype=np.int64))


def _native_plan(shape, tables, axes):
    """The kernels' steps for the maps `tables` along `axes` (sorted) of an array of `shape`:
    ("pair", k) fuses maps k and k + 1, ("one", k) runs map k alone (kernel for a gather plan
    or `NATIVE_PERIODIC`, else the pure-JAX plan). The last two maps are fused when their slab
    fits `FUSED_SLAB`."""
    steps, k, n = [], 0, len(tables)
    shape = list(shape)
    while k < n:
        if k == n - 2 and _slab(shape, axes[k:]) <= FUSED_SLAB:
            steps.append(("pair", k))
            k += 2
            continue
        steps.append(("one", k))
        shape[axes[k]] = tables[k].out_size
        k += 1
    return tuple(steps)


def _native_maps(x, *, tables, axes):
    """`_axis_map` of a float32 x on the kernels (`_native_plan`)."""
    for step, k in _native_plan(x.shape, tables, axes):
        if step == "pair":
            x = _native_call2(x, tables=tables[k : k + 2], axes=axes[k : k + 2])
        elif NATIVE_PERIODIC or not isinstance(_plan(tables[k]), _Periodic):
            x = _native_call(x, table=tables[k], axis=axes[k])
        else:
            x = _axis_map(x, tables=tables[k : k + 1], axes=axes[k : k + 1])
    return x


def _cpu_rule(ctx, x, *, tables, axes, native: bool):
    """CPU lowering: the native kernels (`_native_maps`) where `native` was chosen at bind time
    and a custom call can go here (`lowering_blocker`: not under jax.export, one device), else
    `_axis_map`."""
    if native and ctx.avals_in[0].dtype == np.float32 and not lowering_blocker(ctx):
        fun = functools.partial(_native_maps, tables=tables, axes=axes)
    else:
        fun = functools.partial(_axis_map, tables=tables, axes=axes)
    return mlir.lower_fun(fun, multiple_results=False)(ctx, x)


def _choose_native(x) -> bool:
    """Whether the maps lower to the native kernels on CPU (static, at bind time): float32,
    the kernels usable now (`use_native`: built, loaded, not inside `pure_jax()`)."""
    return jnp.dtype(x.dtype) == jnp.float32 and use_native()


STATIC = ("tables", "axes", "native")
axis_map_p = primitive("axis_map", _axis_map, STATIC)
cpu_lowering(axis_map_p, _cpu_rule, STATIC)
linear(
    axis_map_p,
    (0,),
    lambda ct, x, tables, axes, native: (
        axis_map_p.bind(ct, tables=tuple(transposed(t) for t in tables), axes=axes, native=native),
    ),
    fold_rule(axis_map_p),
)


def separable_map(x, tables, axes):
    """``y = A_1 ... A_k x``, ``A_j`` (given by ``tables[j]``) along ``axes[j]`` (distinct, not
    0: the batching rule folds a mapped axis into axis 0); its transpose is the same with every
    ``A_j^T``. One primitive for all the axes, so that on CPU the last two run as one fused
    kernel."""
    if len(tables) != len(axes) or len(set(axes)) != len(axes) or 0 in axes:
        raise ValueError(f"separable_map: bad axes {axes} for {len(tables)} tables")
    if not tables:
        return x
    order = sorted(range(len(axes)), key=lambda k: axes[k])
    tables = tuple(tables[k] for k in order)
    axes = tuple(int(axes[k]) for k in order)
    return axis_map_p.bind(x, tables=tables, axes=axes, native=_choose_native(x))


def axis_map(x, table: AxisTable, axis: int):
    """``y = A x`` along `axis` (A given by `table`); its transpose is ``A^T`` along `axis`."""
    return separable_map(x, (table,), (axis,))
