"""Sub-pixel shuffles: `pixel_shuffle` (channels to space) and `pixel_unshuffle` (space to
channels), N-d, as a pair of linear primitives that are each other's transpose.

Shi et al. 2016 (the sub-pixel convolution of the seeds' deconvolution discussion): a
stride-1 convolution to C r^D channels followed by a periodic shuffle is a strided transposed
convolution without multiplications by inserted zeros. With factors r = (r_1, ..., r_D) and
R = prod(r), channel ``c R + q`` (q the row-major flat index of the offsets (o_1, ..., o_D),
0 <= o_a < r_a: PyTorch's channel order) of input cell i goes to channel c of output cell
``i r + o``::

    shuffle:   y[n, c, i_1 r_1 + o_1, ..., i_D r_D + o_D] = x[n, c R + q(o), i_1, ..., i_D]
    unshuffle: the inverse permutation.

Both are permutations of the cells (a reshape, a transpose, a reshape), so each is linear and
orthogonal: its transpose is its inverse, the other one. The JVP of each is itself on the
tangent (`_core.primitive.linear`); reverse mode transposes with the other: every derivative of
every order runs on these two primitives. Both batch by folding the mapped axis into N.

On CPU, where the native kernels are built, both lower to one custom call,
``jaxconv_pixel_shuffle`` (native/src/shuffle.cc: the same permutation walked in the order in
which both arrays are contiguous, bit for bit, any dtype of 2, 4 or 8 bytes) where it was
measured faster than XLA's loop (`_native_shuffle`); elsewhere, and on other platforms, the
reshape-transpose-reshape above.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import numpy as np
from jax.interpreters import mlir

from jaxconv._core import validate as v
from jaxconv._core.layout import split_layout
from jaxconv._core.linmap import fold_rule
from jaxconv._core.native import lowering_blocker, use_native
from jaxconv._core.primitive import cpu_lowering, linear, primitive
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, Ints


class Shuffle(NamedTuple):
    """Static settings of one shuffle: the factors per spatial dim and the layout."""

    factors: tuple[int, ...]
    layout: str


def pixel_shuffle(
    x: ArrayLike,
    upscale_factor: Ints,
    *,
    layout: str = "channels_last",
) -> Array:
    r"""Rearrange C r^D channels into an r-times finer grid: N-d `F.pixel_shuffle`.

    .. math:: y[n, c, i r + o] = x[n, c R + q(o), i], \qquad R = \prod_a r_a,\;
              q(o) = \text{row-major flat index of } o \in \prod_a [0, r_a)

    Values equal PyTorch's ``F.pixel_shuffle`` for channels_first (2-D there; here any number
    >= 1 of spatial dims, and one factor per dim if wished); channels_last has the same channel
    order on its last axis. The backward is `pixel_unshuffle` of g (the inverse permutation is
    the transpose), forward mode is the shuffle of the tangent.

    Args:
      x: (N, *spatial, C R) for ``layout="channels_last"``, (N, C R, *spatial) for
        "channels_first"; any dtype jnp arrays have (floating or complex to differentiate).
      upscale_factor: r, an int >= 1 or one per spatial dim.

    Returns:
      (N, *spatial * r, C) or (N, C, *spatial * r), x's dtype.

    Raises:
      ValueError: r < 1, or channels not divisible by R.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(4.).reshape(1, 1, 1, 4)  # one cell, four channels
      >>> pixel_shuffle(x, 2)[0, ..., 0].tolist()
      [[0.0, 1.0], [2.0, 3.0]]
    """
    fn = "pixel_shuffle"
    cfg = _settings(fn, x, upscale_factor, "upscale_factor", layout)
    _, _, c = split_layout(x.shape, layout)
    r = math.prod(cfg.factors)
    if c % r:
        v.fail(
            fn,
            "x.shape",
            tuple(x.shape),
            f"must have channels (={c}) divisible by prod(`upscale_factor`) (={r}, "
            f"factors {cfg.factors})",
        )
    return auto_partitioned(lambda x: shuffle_p.bind(x, cfg=cfg, native=use_native()), x, batch=())


def pixel_unshuffle(
    x: ArrayLike,
    downscale_factor: Ints,
    *,
    layout: str = "channels_last",
) -> Array:
    r"""Fold r-by-r blocks of cells into channels: N-d `F.pixel_unshuffle`, the inverse (and
    transpose) of `pixel_shuffle`.

    .. math:: y[n, c R + q(o), i] = x[n, c, i r + o]

    Values equal PyTorch's ``F.pixel_unshuffle`` for channels_first (2-D there; here N-d).
    The backward is `pixel_shuffle` of g.

    Args:
      x: (N, *spatial, C) or (N, C, *spatial); every spatial size divisible by its factor.
      downscale_factor: r, an int >= 1 or one per spatial dim.

    Returns:
      (N, *spatial / r, C R) or (N, C R, *spatial / r), x's dtype.

    Raises:
      ValueError: r < 1, or a spatial size not divisible by its factor.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(4.).reshape(1, 2, 2, 1)
      >>> pixel_unshuffle(x, 2).ravel().tolist()
      [0.0, 1.0, 2.0, 3.0]
    """
    fn = "pixel_unshuffle"
    cfg = _settings(fn, x, downscale_factor, "downscale_factor", layout)
    _, spatial, _ = split_layout(x.shape, layout)
    if any(n % r for n, r in zip(spatial, cfg.factors)):
        v.fail(
            fn,
            "x.shape",
            tuple(x.shape),
            f"must have spatial sizes {spatial} divisible by `downscale_factor` "
            f"(={cfg.factors} per dim)",
        )
    return auto_partitioned(
        lambda x: unshuffle_p.bind(x, cfg=cfg, native=use_native()), x, batch=()
    )


def _settings(fn, x, factor, arg, layout) -> Shuffle:
    v.check_layout(fn, layout)
    v.check_array(fn, "x", x)
    nd = v.spatial_rank(fn, x)
    return Shuffle(v.int_tuple(fn, arg, factor, nd), layout)


# --------------------------------------------------------------------------- the primitives


def _split(shape, cfg: Shuffle):
    """(N, spatial, C) of a shape, spatial a tuple."""
    return split_layout(shape, cfg.layout)


def _shuffle(x, *, cfg: Shuffle, native: bool = False):
    """(N, C R, *n) -> (N, C, *n r): split channels into (C, r_1..r_D), interleave each r_a
    after its spatial dim, merge (channels_last alike, channels on the last axis). `native`
    (static, set when bound: `use_native()`, false inside `pure_jax()`) lets the CPU lowering
    take the kernel; it does not change the values."""
    del native
    r, nd = cfg.factors, len(cfg.factors)
    n, sp, cr = _split(x.shape, cfg)
    c = cr // math.prod(r)
    if cfg.layout == "channels_first":
        a = x.reshape(n, c, *r, *sp)  # axes: 0, 1, 2..2+nd (r), 2+nd.. (sp)
        perm = (0, 1, *(i for d in range(nd) for i in (2 + nd + d, 2 + d)))
        return a.transpose(perm).reshape(n, c, *(s * f for s, f in zip(sp, r)))
    a = x.reshape(n, *sp, c, *r)  # axes: 0, 1..nd (sp), 1+nd (c), 2+nd.. (r)
    perm = (0, *(i for d in range(nd) for i in (1 + d, 2 + nd + d)), 1 + nd)
    return a.transpose(perm).reshape(n, *(s * f for s, f in zip(sp, r)), c)


def _unshuffle(y, *, cfg: Shuffle, native: bool = False):
    """The inverse permutation: (N, C, *n r) -> (N, C R, *n); `native` as `_shuffle`'s."""
    del native
    r, nd = cfg.factors, len(cfg.factors)
    n, sp_r, c = _split(y.shape, cfg)
    sp = tuple(s // f for s, f in zip(sp_r, r))
    inter = tuple(e for s, f in zip(sp, r) for e in (s, f))  # (n_1, r_1, ..., n_D, r_D)
    if cfg.layout == "channels_first":
        a = y.reshape(n, c, *inter)  # s_d at 2 + 2d, r_d at 3 + 2d
        perm = (0, 1, *(3 + 2 * d for d in range(nd)), *(2 + 2 * d for d in range(nd)))
        return a.transpose(perm).reshape(n, c * math.prod(r), *sp)
    a = y.reshape(n, *inter, c)  # s_d at 1 + 2d, r_d at 2 + 2d, c at 1 + 2nd
    perm = (0, *(1 + 2 * d for d in range(nd)), 1 + 2 * nd, *(2 + 2 * d for d in range(nd)))
    return a.transpose(perm).reshape(n, *sp, c * math.prod(r))


shuffle_p = primitive("pixel_shuffle", _shuffle, ("cfg", "native"))
unshuffle_p = primitive("pixel_unshuffle", _unshuffle, ("cfg", "native"))


def _native_shuffle(cfg: Shuffle, to_fine: bool, x) -> bool:
    """Whether the CPU lowering of a shuffle (`to_fine`) or unshuffle of x takes the native
    kernel rather than XLA's loop (x an abstract value; the kernels loaded separately).

    Measured on a 2-core AMD EPYC (AVX-512), one direction at a time, float32, medians of 300
    back-to-back calls (ms, XLA's loop -> the kernel): channels-first, every case measured
    (N16 C64 32² x2: shuffle 0.49 -> 0.09, unshuffle 0.22 -> 0.09; N16 C256 32² x4: 2.0 -> 0.49,
    1.55 -> 0.75; N64 C64 512 x2: 1.03 -> 0.16; 3-D x2: 0.38 -> 0.37, 0.44 -> 0.43);
    channels-last with C >= 16 fine channels, every unshuffle (N16 64² C16 x2: 0.70 -> 0.20;
    N16 128² C16 x4: 2.70 -> 1.20; 3-D x2: 1.79 -> 0.82) and the shuffles with R <= 4 (0.21 ->
    0.15, 1-D x2: 0.38 -> 0.20). XLA's loop stays for channels-last with C < 16 (short runs:
    C = 4, R = 9: 0.11 -> 0.19) and channels-last shuffles with R > 4 (3-D x2: 0.38 -> 0.50;
    R = 16 about even)."""
    width = np.dtype(x.dtype).itemsize
    if width not in (2, 4, 8) or math.prod(x.shape) == 0 or len(cfg.factors) > 8:
        return False  # (the kernel's limits: element widths, up to 8 spatial dims)
    if cfg.layout == "channels_first":
        return True
    big_r = math.prod(cfg.factors)
    c = x.shape[-1] // big_r if to_fine else x.shape[-1]  # the fine channels
    return c >= 16 and (not to_fine or big_r <= 4)


def _kernel(x, *, cfg: Shuffle, to_fine: bool, out_shape):
    return jax.ffi.ffi_call("jaxconv_pixel_shuffle", jax.ShapeDtypeStruct(out_shape, x.dtype))(
        x,
        factors=np.asarray(cfg.factors, np.int64),
        channels_last=np.int64(cfg.layout == "channels_last"),
        to_fine=np.int64(to_fine),
    )


def _cpu_lowering(pure, to_fine: bool):
    """CPU lowering of `shuffle_p` (`to_fine`) or `unshuffle_p`: the native kernel where the
    primitive was bound with `native` (the kernels available, no `pure_jax()` block),
    `_native_shuffle` picks it and a custom call can go (`lowering_blocker`: not exported, not
    partitioned over devices), else `pure`."""

    def lower(ctx, x, *, cfg, native):
        aval = ctx.avals_in[0]
        if native and _native_shuffle(cfg, to_fine, aval) and not lowering_blocker(ctx):
            fun = partial(_kernel, cfg=cfg, to_fine=to_fine, out_shape=ctx.avals_out[0].shape)
        else:
            fun = partial(pure, cfg=cfg)  # (native: values alike)
        return mlir.lower_fun(fun, multiple_results=False)(ctx, x)

    return lower


cpu_lowering(shuffle_p, _cpu_lowering(_shuffle, True), ("cfg", "native"))
cpu_lowering(unshuffle_p, _cpu_lowering(_unshuffle, False), ("cfg", "native"))
linear(shuffle_p, (0,), lambda ct, x, **kw: (unshuffle_p.bind(ct, **kw),), fold_rule(shuffle_p))
linear(unshuffle_p, (0,), lambda ct, y, **kw: (shuffle_p.bind(ct, **kw),), fold_rule(unshuffle_p))
