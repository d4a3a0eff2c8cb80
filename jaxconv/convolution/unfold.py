"""`unfold` (im2col) and `fold` (col2im) as public ops: a pair of linear primitives that are each
other's transpose, N-d, both layouts; their patch helpers are shared with `local.py`.

One spatial dim shown (every dim alike): input size n, lhs dilation l (1 for the public ops:
`conv_general_dilated_local` uses it), padding (lo, hi) (negative crops), window k with
dilation d (k_eff = d (k - 1) + 1), stride s. The padded, dilated input x~ has extent
``E = lo + l (n - 1) + 1 + hi`` and x~[lo + l t] = x[t]; ``o = (E - k_eff) // s + 1`` blocks.
Column (m, c) of block j is tap m of window j (seed 002's matrix C, one row per tap)::

    unfold: cols[n, j, m, c] = x~[n, j s + m d, c]
    fold:   x~[n, e, c] = sum_{(j, m) : j s + m d = e} cols[n, j, m, c],   x[t] = x~[lo + l t]

fold is the transpose of unfold (seed 002's C^T; overlapping windows sum), and unfold the
transpose of fold: both linear, so each one's JVP is itself on the tangent and its transpose
the other (`_core.primitive.linear`); every derivative of every order runs on these two.

Layouts (K = prod(k) taps, offsets m row-major, L = prod(o) blocks):

- channels_first, PyTorch's ``F.unfold`` / ``F.fold``: x (N, C, *n) <-> cols (N, C K, L),
  channel-major ``(c, m)``, blocks row-major;
- channels_last: x (N, *n, C) <-> cols (N, *o, K C), offset-major ``(m, c)``: the im2col patch
  order of the conv lowering (`lowering.im2col.patches`), so that
  ``unfold(x, k) @ w.reshape(K C, F)`` is ``conv(x, w)`` for a channels-last kernel
  w (*k, C, F).

Implementation: unfold pads x once (edge and interior padding) and stacks K strided slices;
fold puts every tap's column back with one `lax.pad` (edge padding to its offset, interior
padding s - 1 between blocks), sums them and crops the padding (every l-th cell). Both batch by
folding the mapped axis into N.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from jaxconv._core import validate as v
from jaxconv._core.dtypes import accumulation
from jaxconv._core.layout import split_layout
from jaxconv._core.linmap import fold_rule
from jaxconv._core.padding import check_window_fits, effective_kernel, padding_pairs
from jaxconv._core.primitive import linear, primitive
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, Ints, Padding


class Patches(NamedTuple):
    """Static, hashable geometry of one unfold (and of a locally connected layer's windows)."""

    layout: str
    size: tuple[int, ...]  # input spatial n
    window: tuple[int, ...]  # k
    stride: tuple[int, ...]
    dilation: tuple[int, ...]  # of the window (rhs dilation)
    lhs_dilation: tuple[int, ...]  # of the input (l: zeros between its cells)
    pads: tuple[tuple[int, int], ...]  # (lo, hi) per dim, of the dilated input; < 0 crops

    @property
    def nd(self) -> int:
        return len(self.size)

    @property
    def taps(self) -> int:
        return math.prod(self.window)

    @property
    def extent(self) -> tuple[int, ...]:
        """E per dim: the padded, dilated input's size (an empty dim dilates to nothing)."""
        return tuple(
            lo + (l * (n - 1) + 1 if n else 0) + hi
            for n, l, (lo, hi) in zip(self.size, self.lhs_dilation, self.pads)
        )

    @property
    def out(self) -> tuple[int, ...]:
        k_eff = effective_kernel(self.window, self.dilation)
        return tuple((e - k) // s + 1 for e, k, s in zip(self.extent, k_eff, self.stride))

    def axes(self, ndim: int) -> tuple[int, ...]:
        """The spatial axes of an array of rank `ndim` in this layout."""
        first = 1 if self.layout == "channels_last" else ndim - self.nd
        return tuple(range(first, first + self.nd))

    def config(self, ndim: int, per_axis, default):
        cfg = [default] * ndim
        for a, c in zip(self.axes(ndim), per_axis):
            cfg[a] = c
        return cfg


def patch_geometry(
    fn, x_shape, window, stride, padding, dilation, layout, *, arg="window", value=None
) -> Patches:
    """Validate and normalise unfold's settings for an input of shape `x_shape`; a window
    that does not fit is blamed on `arg` (=`value`, default the window)."""
    nd = len(x_shape) - 2
    _, size, _ = split_layout(x_shape, layout)
    window = v.int_tuple(fn, "window", window, nd)
    stride = v.int_tuple(fn, "stride", stride, nd)
    dilation = v.int_tuple(fn, "dilation", dilation, nd)
    k_eff = effective_kernel(window, dilation)
    pads = padding_pairs(fn, padding, nd, k_eff, stride, size)
    check_window_fits(fn, size, pads, k_eff, arg=arg, value=window if value is None else value)
    return Patches(layout, size, window, stride, dilation, (1,) * nd, pads)


# --------------------------------------------------------------------------- patch helpers


def patches(x, geo: Patches):
    """The taps of every window: channels_last x (N, *n, C) -> (N, *o, K, C); channels_first
    x (N, C, *n) -> (N, C, K, *o). Taps in row-major order of their offsets m.

    One dim at a time, last to first: the k_a strided slices of dim a stacked on a new axis
    placed before the taps of the later dims, (N, *o, k_1, ..., k_D, C) or (N, C, k_1, ...,
    k_D, *o), then merged to K. XLA:CPU writes each stack in one loop; the K slices of all dims
    at once would each be written out before one concatenation (3x slower for a 3x3 window)."""
    zero = lax.convert_element_type(0, x.dtype)
    cfg = geo.config(x.ndim, [(lo, hi, l - 1) for (lo, hi), l in zip(geo.pads, geo.lhs_dilation)],
                     (0, 0, 0))  # fmt: skip
    p = lax.pad(x, zero, cfg)
    D, last = geo.nd, geo.layout == "channels_last"
    for a in reversed(range(D)):
        # channels_last: dim a at axis 1 + a, new tap axis at 1 + D (before later dims' taps);
        # channels_first: new tap axis at 2, dim a after the D - 1 - a tap axes stacked so far.
        axis = 1 + a if last else 2 + (D - 1 - a) + a
        k, d, s, o = geo.window[a], geo.dilation[a], geo.stride[a], geo.out[a]
        taps = [lax.slice_in_dim(p, m * d, m * d + (o - 1) * s + 1, s, axis=axis) for m in range(k)]
        p = jnp.stack(taps, axis=1 + D if last else 2)
    K = geo.taps
    if last:
        return p.reshape(*p.shape[: 1 + D], K, p.shape[-1])
    return p.reshape(p.shape[0], p.shape[1], K, *p.shape[2 + D :])


def place(cols, geo: Patches, dtype):
    """The transpose of `patches`: every tap's column added back where it was read, (N, *o,
    K, C) -> (N, *n, C) or (N, C, K, *o) -> (N, C, *n); sums in float32 for 16-bit inputs.

    Tap m of block j came from x~[j s + m d]: one `lax.pad` per tap puts its (N, *o, C)
    column there (low m d, interior s - 1, high the rest of E), the K placed arrays are summed
    (overlaps add up), and x = x~[lo + l t] (negative padding: zeros for the cropped cells)."""
    acc = accumulation(dtype) or dtype
    cols = cols.astype(acc)
    zero = lax.convert_element_type(0, acc)
    k_axis = cols.ndim - 2 if geo.layout == "channels_last" else 2
    ndim = cols.ndim - 1
    o, extent = geo.out, geo.extent
    xp = None
    for t, m in enumerate(_offsets(geo)):
        col = lax.index_in_dim(cols, t, k_axis, keepdims=False)
        per = []
        for mm, d, oo, s, e in zip(m, geo.dilation, o, geo.stride, extent):
            low = mm * d
            per.append((low, e - low - (oo - 1) * s - 1, s - 1))
        placed = lax.pad(col, zero, geo.config(ndim, per, (0, 0, 0)))
        xp = placed if xp is None else xp + placed
    x = lax.pad(xp, zero, geo.config(ndim, [(-lo, -hi, 0) for lo, hi in geo.pads], (0, 0, 0)))
    if any(l > 1 for l in geo.lhs_dilation):
        x = lax.slice(x, [0] * ndim, x.shape, geo.config(ndim, geo.lhs_dilation, 1))
    return x.astype(dtype)


def _offsets(geo: Patches):
    """Window offsets m, row-major (tap t is the t-th)."""
    return list(itertools.product(*(range(k) for k in geo.window)))


# --------------------------------------------------------------------------- public ops


def unfold(
    x: ArrayLike,
    window: Ints,
    *,
    stride: Ints = 1,
    padding: Padding = 0,
    dilation: Ints = 1,
    layout: str = "channels_last",
) -> Array:
    r"""Extract every sliding window's cells as columns (im2col): N-d `F.unfold`.

    .. math:: \mathrm{cols}[n, j, (m, c)] = \tilde x[n, j s + m d, c]

    with x~ the zero-padded input, j a block (window position), m an offset inside the window.
    The backward is `fold` of g (the transpose: each column added back where it was read,
    overlapping windows summed); forward mode is unfold of the tangent.

    Args:
      x: (N, *spatial, C) for ``layout="channels_last"``, (N, C, *spatial) for
        "channels_first"; any number >= 1 of spatial dims.
      window: k, an int >= 1 or one per spatial dim.
      stride, dilation: an int >= 1 or one per spatial dim.
      padding: an int, one int per dim, one (lo, hi) pair per dim, "VALID", "SAME" or "FULL"
        (zeros; PyTorch takes symmetric ints).

    Returns:
      channels_first: (N, C K, L), exactly ``F.unfold``: row ``c K + q(m)`` (channel-major,
      offsets m row-major), column j the row-major index of the block. channels_last:
      (N, *o, K C), entry ``q(m) C + c`` (offset-major, channels minor: the conv lowering's
      im2col order), o the block grid, ``o = (n + lo + hi - d (k - 1) - 1) // s + 1`` per dim.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(9.).reshape(1, 1, 3, 3)
      >>> unfold(x, 2, layout="channels_first")[0].tolist()
      [[0.0, 1.0, 3.0, 4.0], [1.0, 2.0, 4.0, 5.0], [3.0, 4.0, 6.0, 7.0], [4.0, 5.0, 7.0, 8.0]]
    """
    fn = "unfold"
    v.check_layout(fn, layout)
    v.check_array(fn, "x", x)
    v.spatial_rank(fn, x)
    geo = patch_geometry(fn, x.shape, window, stride, padding, dilation, layout)
    out = ((0, 0), *((None,) * (x.ndim - 1 if layout == "channels_last" else 2)))
    return auto_partitioned(lambda x: unfold_p.bind(x, geo=geo), x, out=out, batch=())


def fold(
    cols: ArrayLike,
    output_size: Ints,
    window: Ints,
    *,
    stride: Ints = 1,
    padding: Padding = 0,
    dilation: Ints = 1,
    layout: str = "channels_last",
) -> Array:
    r"""Sum columns back into an image (col2im): N-d `F.fold`, the transpose of `unfold`.

    .. math:: \tilde x[n, e, c] = \sum_{(j, m):\, j s + m d = e} \mathrm{cols}[n, j, (m, c)]

    and the padding cropped. ``fold(unfold(x))`` is x times the number of windows covering
    each cell. The backward is `unfold` of g; forward mode is fold of the tangent.

    Args:
      cols: channels_first (N, C K, L) (``F.fold``'s input); channels_last (N, *o, K C), as
        `unfold` returns them.
      output_size: the spatial size of the result, an int or one per dim.
      window, stride, padding, dilation: as in `unfold` (padding relative to `output_size`).
        The number of spatial dims D is ``len(output_size)`` or ``len(window)`` where one is a
        sequence, else ``cols.ndim - 2`` for channels_last and 2 for channels_first (PyTorch's).

    Returns:
      (N, *output_size, C) or (N, C, *output_size), cols' dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 1, 3, 3))
      >>> cols = unfold(x, 2, layout="channels_first")
      >>> fold(cols, 3, 2, layout="channels_first")[0, 0].tolist()  # cells covered 1, 2 or 4 x
      [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    fn = "fold"
    v.check_layout(fn, layout)
    v.check_array(fn, "cols", cols)
    if isinstance(output_size, Sequence) and not isinstance(output_size, str):
        nd = len(output_size)
    elif isinstance(window, Sequence) and not isinstance(window, str):
        nd = len(window)
    else:
        nd = cols.ndim - 2 if layout == "channels_last" else 2
    if nd < 1:
        v.fail(fn, "output_size", output_size, "must have at least one spatial dim")
    size = v.int_tuple(fn, "output_size", output_size, nd)
    ndim = nd + 2 if layout == "channels_last" else 3
    expect = "(N, *blocks, prod(window) * C)" if layout == "channels_last" else "(N, C * K, L)"
    if cols.ndim != ndim:
        v.fail(fn, "cols.shape", tuple(cols.shape),
               f"must be {expect} with {nd} spatial dims for layout={layout!r}")  # fmt: skip
    x_shape = (0, *size, 0) if layout == "channels_last" else (0, 0, *size)
    geo = patch_geometry(fn, x_shape, window, stride, padding, dilation, layout)
    k, o = geo.taps, geo.out
    ck = cols.shape[-1] if layout == "channels_last" else cols.shape[1]
    if ck % k:
        v.fail(fn, "cols.shape", tuple(cols.shape),
               f"must have C * prod(window) columns per block: {ck} is not divisible by "
               f"prod(window) (={k}, window={geo.window})")  # fmt: skip
    blocks = tuple(cols.shape[1:-1]) if layout == "channels_last" else cols.shape[2]
    want = o if layout == "channels_last" else math.prod(o)
    if blocks != want:
        v.fail(fn, "cols.shape", tuple(cols.shape),
               f"must have {' * '.join(map(str, o))} = {math.prod(o)} blocks (output_size="
               f"{size}, window={geo.window}, stride={geo.stride}, padding={geo.pads}, "
               f"dilation={geo.dilation}), got {blocks}")  # fmt: skip
    out = ((0, 0), *((None,) * (nd + 1)))
    return auto_partitioned(lambda c: fold_p.bind(c, geo=geo), cols, out=out, batch=())


# --------------------------------------------------------------------------- the primitives


def _unfold(x, *, geo: Patches):
    p = patches(x, geo)  # (N, *o, K, C) or (N, C, K, *o)
    if geo.layout == "channels_last":
        return p.reshape(*p.shape[:-2], p.shape[-2] * p.shape[-1])
    return p.reshape(p.shape[0], p.shape[1] * p.shape[2], math.prod(geo.out))


def _fold(cols, *, geo: Patches):
    if geo.layout == "channels_last":
        cols = cols.reshape(*cols.shape[:-1], geo.taps, cols.shape[-1] // geo.taps)
    else:
        cols = cols.reshape(cols.shape[0], cols.shape[1] // geo.taps, geo.taps, *geo.out)
    return place(cols, geo, cols.dtype)


unfold_p = primitive("unfold", _unfold, ("geo",))
fold_p = primitive("fold", _fold, ("geo",))
linear(unfold_p, (0,), lambda ct, x, geo: (fold_p.bind(ct, geo=geo),), fold_rule(unfold_p))
linear(fold_p, (0,), lambda ct, c, geo: (unfold_p.bind(ct, geo=geo),), fold_rule(fold_p))
