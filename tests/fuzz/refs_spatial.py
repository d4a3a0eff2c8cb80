"""The fuzz's reference semantics of the resampling and spatial ops (see `refs.py`): their
documented argument rules, and their values from `jaxconv.testing.oracle` (plain jnp)."""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.testing import oracle
from tests.fuzz.refs import (
    LAYOUTS,
    Ref,
    bias_ok,
    eff,
    float_array,
    inexact_pair,
    ints,
    is_array,
    is_flag,
    is_int,
    is_seq,
    join,
    need,
    pad_pairs,
    split,
)
from tests.fuzz.refs_pool import real_array

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic", "area")


def _number(s) -> bool:
    return isinstance(s, numbers.Real) and not is_flag(s)


def ref_interpolate(
    x,
    size=None,
    *,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
    layout="channels_last",
):
    """PyTorch's F.interpolate rules: exactly one of size / scale_factor (an int >= 1 / a
    finite number > 0, or one per spatial dim); "bilinear"/"trilinear" only at rank 2/3;
    align_corners (a bool) only for the linear and cubic modes; antialias (a bool) only for
    those too; recompute_scale_factor (a bool or None) not with `size`; no empty spatial dim
    in x and no empty output."""
    need(isinstance(layout, str) and layout in LAYOUTS, "layout")
    float_array(x, "x")
    need(x.ndim >= 3, "rank")
    nd = x.ndim - 2
    need(isinstance(mode, str) and mode in MODES, "mode")
    need(mode != "bilinear" or nd == 2, "bilinear rank")
    need(mode != "trilinear" or nd == 3, "trilinear rank")
    if align_corners is not None:
        need(is_flag(align_corners), "align_corners")
        need(mode not in ("nearest", "nearest-exact", "area"), "align_corners with this mode")
    need(recompute_scale_factor is None or is_flag(recompute_scale_factor), "recompute")
    need(is_flag(antialias), "antialias")
    need(not antialias or mode in ("linear", "bilinear", "trilinear", "bicubic"), "antialias")
    spatial = x.shape[1:-1] if layout == "channels_last" else x.shape[2:]
    need(min(spatial) >= 1, "empty spatial dim")
    need((size is None) != (scale_factor is None), "exactly one of size and scale_factor")
    if size is not None:
        need(not recompute_scale_factor, "recompute with size")
        sizes = list(size) if is_seq(size) else [size] * nd
        need(len(sizes) == nd and all(is_int(s) and s >= 1 for s in sizes), "size")
    else:
        factors = list(scale_factor) if is_seq(scale_factor) else [scale_factor] * nd
        need(len(factors) == nd and all(_number(s) for s in factors), "scale_factor type")
        need(all(math.isfinite(s) and s > 0 for s in factors), "scale_factor value")
        need(all(math.floor(n * float(s)) >= 1 for n, s in zip(spatial, factors)), "empty out")
        scale_factor = tuple(float(s) for s in factors)
    kw = dict(
        scale_factor=scale_factor,
        mode=mode,
        align_corners=align_corners,
        recompute_scale_factor=recompute_scale_factor,
        antialias=antialias,
        layout=layout,
    )
    size = None if size is None else tuple(int(s) for s in sizes)

    def f(x, *_, **__):
        return oracle.interpolate(jnp.asarray(x), size, **kw)

    return Ref(f, ("x",))


# --------------------------------------------------------------------------- shared rules


def _empty(shape, dtype):
    """The value of an empty result (an empty batch or channel axis): plain jnp cannot
    reshape an empty array with -1, which the oracles do."""
    return jnp.zeros(shape, dtype)


def _array(x, name: str) -> None:
    need(is_array(x), f"{name} is not an array")


def _layout(layout) -> None:
    need(isinstance(layout, str) and layout in LAYOUTS, "layout")


def _sizes(v, nd: int, name: str, keep=None) -> tuple[int, ...]:
    """An int (every dim) or a tuple/list of nd ints >= 1; `keep`: None entries keep that
    size (adaptive pools)."""
    if is_seq(v):
        need(len(v) == nd, f"{name} length")
        if keep is not None:
            v = [k if e is None else e for e, k in zip(v, keep)]
        return ints(v, nd, 1, name)
    return ints(v, nd, 1, name)


# --------------------------------------------------------------------------- adaptive pools


def _adaptive(x, output_size, layout, ordered=False):
    """PyTorch's adaptive windows: x with at least one cell per spatial dim, an output size
    (an int, or one int or None per dim) >= 1; O > L allowed."""
    _layout(layout)
    (real_array if ordered else float_array)(x, "x")
    need(x.ndim >= 3, "rank")
    nb, size, c = split(x.shape, layout)
    need(min(size) >= 1, "an empty spatial dim has no window")
    out = _sizes(output_size, len(size), "output_size", keep=size)
    return nb, size, c, out


def ref_adaptive_avg_pool(x, output_size, *, layout="channels_last"):
    nb, size, c, out = _adaptive(x, output_size, layout)
    shape = join(nb, out, c, layout)

    def f(x, *_, **__):
        if x.size == 0:
            return _empty(shape, x.dtype)
        return oracle.adaptive_avg_pool(x, out, layout=layout)

    return Ref(f, ("x",))


def _adaptive_bounds(n, o):
    return [(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]


def ref_adaptive_max_pool(
    x, output_size, *, ties="first", return_indices=False, layout="channels_last"
):
    """Any real dtype; ties "first" / "last" / "split" (split: the same value, a tie policy of
    the gradient only: jnp.max's, shared among tied cells); return_indices: y's shape, int32,
    the flat row-major winner (split: the first)."""
    nb, size, c, out = _adaptive(x, output_size, layout, ordered=True)
    need(isinstance(ties, str) and ties in ("first", "last", "split"), "ties")
    need(is_flag(return_indices), "return_indices")
    shape = join(nb, out, c, layout)

    def f(x, *_, **__):
        if x.size == 0:
            y = _empty(shape, x.dtype)
            return (y, _empty(shape, jnp.int32)) if return_indices else y
        return oracle.adaptive_max_pool(x, out, ties, return_indices, layout)

    def post(kw, res):  # the winner of each window, flat row-major, first / last maximum
        if not return_indices:
            return
        y, idx = np.asarray(res[0]), np.asarray(res[1])
        assert idx.dtype == np.int32 and idx.shape == y.shape, (idx.dtype, idx.shape)
        if y.size == 0:
            return
        xs = np.asarray(kw["x"])
        if layout == "channels_first":
            xs, y, idx = np.moveaxis(xs, 1, -1), np.moveaxis(y, 1, -1), np.moveaxis(idx, 1, -1)
        per_dim = [_adaptive_bounds(n, o) for n, o in zip(size, out)]
        for i in np.ndindex(*out):
            box = tuple(slice(*per_dim[a][i[a]]) for a in range(len(out)))
            cells = xs[(slice(None), *box, slice(None))].reshape(xs.shape[0], -1, xs.shape[-1])
            flat = np.arange(math.prod(size)).reshape(size)[box].reshape(-1)
            got = idx[(slice(None), *i, slice(None))]
            if ties == "last":
                want = flat[cells.shape[1] - 1 - np.argmax(cells[:, ::-1], axis=1)]
            else:  # "first", and "split" (whose index is the first maximum's)
                want = flat[np.argmax(cells, axis=1)]
            np.testing.assert_array_equal(got, want, f"indices of window {i}")

    distinct = np.unique(np.asarray(x)).size == np.asarray(x).size
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    return Ref(f, ("x",) if distinct and floating else (), post)


# --------------------------------------------------------------------------- fractional


def ref_fractional_max_pool(
    x,
    window,
    *,
    output_size=None,
    output_ratio=None,
    samples=None,
    key=None,
    ties="first",
    return_indices=False,
    layout="channels_last",
):
    """PyTorch's fractional max pool (Graham 2014): any real x (an integer or bool x: the
    starts in the samples' dtype); exactly one of output_size (ints >= 1) and output_ratio
    (numbers in (0, 1), O = int(L r) >= 1); every window fits, O + k - 1 <= L; samples
    (N, C, D) floating in [0, 1), or a key drawing them uniformly in x's dtype (float32 for an
    integer or bool x; exactly one of the two); ties "first" / "last" / "split" (split: the
    same value, jnp.max's gradient; its index the first maximum's)."""
    _layout(layout)
    real_array(x, "x")
    need(x.ndim >= 3, "rank")
    nb, size, c = split(x.shape, layout)
    nd = len(size)
    k = ints(window, nd, 1, "window")
    need((output_size is None) != (output_ratio is None), "exactly one of size and ratio")
    if output_size is not None:
        out = ints(output_size, nd, 1, "output_size")
    else:
        ratios = list(output_ratio) if is_seq(output_ratio) else [output_ratio] * nd
        need(len(ratios) == nd and all(_number(r) for r in ratios), "output_ratio type")
        need(all(0 < r < 1 for r in ratios), "output_ratio range")
        out = tuple(int(n * float(r)) for n, r in zip(size, ratios))
        need(min(out) >= 1, "output_ratio: empty output")
    need(all(kk <= n and o + kk - 1 <= n for n, kk, o in zip(size, k, out)), "window fit")
    need(isinstance(ties, str) and ties in ("first", "last", "split"), "ties")
    need(is_flag(return_indices), "return_indices")
    need((samples is None) != (key is None), "exactly one of samples and key")
    if samples is not None:
        float_array(samples, "samples")
        need(tuple(samples.shape) == (nb, c, nd), "samples shape")
        u = np.asarray(samples, np.float64)
        need(bool(np.all((u >= 0) & (u < 1))), "samples outside [0, 1)")
    shape = join(nb, out, c, layout)

    def f(x, *_, samples=None, **__):
        if x.size == 0:
            y = _empty(shape, x.dtype)
            return (y, _empty(shape, jnp.int32)) if return_indices else y
        floating = jnp.issubdtype(x.dtype, jnp.floating)
        dtype = x.dtype if floating else jnp.float32
        u = samples if key is None else jax.random.uniform(key, (nb, c, nd), dtype)
        return oracle.fractional_max_pool(x, k, out, jnp.asarray(u), return_indices, layout, ties)

    def post(kw, res):  # indices: int32, y's shape, x[n, indices, c] == y
        if not return_indices:
            return
        y, idx = np.asarray(res[0]), np.asarray(res[1])
        assert idx.dtype == np.int32 and idx.shape == y.shape, (idx.dtype, idx.shape)
        if y.size == 0:
            return
        xs = np.asarray(kw["x"])
        if layout == "channels_first":
            xs, y, idx = np.moveaxis(xs, 1, -1), np.moveaxis(y, 1, -1), np.moveaxis(idx, 1, -1)
        flat = xs.reshape(xs.shape[0], -1, xs.shape[-1])
        got = np.take_along_axis(flat, idx.reshape(idx.shape[0], -1, idx.shape[-1]), 1)
        np.testing.assert_array_equal(got.reshape(y.shape), y, "x[indices] == y")

    distinct = np.unique(np.asarray(x)).size == np.asarray(x).size
    floating = jnp.issubdtype(x.dtype, jnp.floating)
    return Ref(f, ("x",) if distinct and floating else (), post)


# --------------------------------------------------------------------------- shuffles


def _shuffle(x, factor, name, layout):
    """Any array dtype (a permutation), rank >= 3, a factor >= 1 per spatial dim."""
    _layout(layout)
    _array(x, "x")
    need(x.ndim >= 3, "rank")
    nb, size, c = split(x.shape, layout)
    return nb, size, c, ints(factor, len(size), 1, name)


def _diff(a, name):
    return (name,) if jnp.issubdtype(a.dtype, jnp.inexact) else ()


def ref_pixel_shuffle(x, upscale_factor, *, layout="channels_last"):
    nb, size, c, r = _shuffle(x, upscale_factor, "upscale_factor", layout)
    need(c % math.prod(r) == 0, "channels not divisible by prod(r)")
    shape = join(nb, tuple(n * f for n, f in zip(size, r)), c // math.prod(r), layout)

    def f(x, *_, **__):
        if x.size == 0:
            return _empty(shape, x.dtype)
        return oracle.pixel_shuffle(x, r, layout=layout)

    return Ref(f, _diff(x, "x"))


def ref_pixel_unshuffle(x, downscale_factor, *, layout="channels_last"):
    nb, size, c, r = _shuffle(x, downscale_factor, "downscale_factor", layout)
    need(all(n % f == 0 for n, f in zip(size, r)), "spatial sizes not divisible by r")
    shape = join(nb, tuple(n // f for n, f in zip(size, r)), c * math.prod(r), layout)

    def f(x, *_, **__):
        if x.size == 0:
            return _empty(shape, x.dtype)
        return oracle.pixel_unshuffle(x, r, layout=layout)

    return Ref(f, _diff(x, "x"))


# --------------------------------------------------------------------------- unfold / fold


def _patches(size, window, stride, padding, dilation):
    """The conv family's window rules (docs/semantics.md; CAUSAL too): k, s, d >= 1, padding
    >= 0 in any of its forms, the dilated window inside the padded input. -> (k, s, d, pads,
    out)."""
    nd = len(size)
    k = ints(window, nd, 1, "window")
    s = ints(stride, nd, 1, "stride")
    d = ints(dilation, nd, 1, "dilation")
    k_eff = eff(k, d)
    pads = pad_pairs(padding, nd, k_eff, s, size)
    need(all(n + lo + hi >= ke for n, (lo, hi), ke in zip(size, pads, k_eff)), "window too big")
    out = tuple((n + lo + hi - ke) // ss + 1 for n, (lo, hi), ke, ss in zip(size, pads, k_eff, s))
    return k, s, d, pads, out


def ref_unfold(x, window, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    """im2col of any array dtype (a gather): channels_first (N, C K, L), channels_last
    (N, *o, K C); an empty spatial dim is fine when the padding makes room for a window."""
    _layout(layout)
    _array(x, "x")
    need(x.ndim >= 3, "rank")
    nb, size, c = split(x.shape, layout)
    k, s, d, pads, out = _patches(size, window, stride, padding, dilation)
    taps = math.prod(k)
    shape = (nb, *out, taps * c) if layout == "channels_last" else (nb, c * taps, math.prod(out))
    kw = dict(stride=s, padding=pads, dilation=d, layout=layout)

    def f(x, *_, **__):
        if x.size == 0:  # no cell or all padding: zeros
            return _empty(shape, x.dtype)
        return oracle.unfold(x, k, **kw)

    return Ref(f, _diff(x, "x"))


def ref_fold(cols, output_size, window, *, stride=1, padding=0, dilation=1, layout="channels_last"):
    """col2im, unfold's adjoint: D from output_size or window where one is a sequence, else
    cols.ndim - 2 (channels_last) or 2 (channels_first, PyTorch's); output_size >= 1 (as
    PyTorch's fold); cols (N, *o, K C) or (N, C K, prod(o)). Bool columns add as numpy's
    bools do (logical or)."""
    _layout(layout)
    _array(cols, "cols")
    if is_seq(output_size):
        nd = len(output_size)
    elif is_seq(window):
        nd = len(window)
    else:
        nd = cols.ndim - 2 if layout == "channels_last" else 2
    need(nd >= 1, "no spatial dim")
    size = ints(output_size, nd, 1, "output_size")
    k, s, d, pads, out = _patches(size, window, stride, padding, dilation)
    taps = math.prod(k)
    need(cols.ndim == (nd + 2 if layout == "channels_last" else 3), "cols rank")
    if layout == "channels_last":
        need(tuple(cols.shape[1:-1]) == out and cols.shape[-1] % taps == 0, "cols shape")
        c = cols.shape[-1] // taps
    else:
        need(cols.shape[2] == math.prod(out) and cols.shape[1] % taps == 0, "cols shape")
        c = cols.shape[1] // taps
    shape = join(cols.shape[0], size, c, layout)
    kw = dict(stride=s, padding=pads, dilation=d, layout=layout)

    def f(cols, *_, **__):
        if cols.size == 0:
            return _empty(shape, cols.dtype)
        if cols.dtype == jnp.bool_:
            return oracle.fold(cols.astype(jnp.int32), size, k, **kw) > 0
        return oracle.fold(cols, size, k, **kw)

    return Ref(f, _diff(cols, "cols"))


# --------------------------------------------------------------------------- local conv


def ref_conv_local(
    x, w, bias=None, *, stride=1, padding="VALID", dilation=1, layout="channels_last"
):
    """A kernel per output position: x, w floating or complex of one dtype, w channels_last
    (*o, *k, C_in, C_out) / channels_first (C_out, C_in, *k, *o), o the conv's output grid
    for window k; a bias (C_out,) as conv's (real floating, complex too for complex x; cast
    to the output's dtype)."""
    _layout(layout)
    inexact_pair(x, w, "x", "w")
    need(x.ndim >= 3, "rank")
    nd = x.ndim - 2
    need(w.ndim == 2 * nd + 2, "w rank")
    nb, size, c = split(x.shape, layout)
    if layout == "channels_last":
        o_w, k, cin, cout = w.shape[:nd], w.shape[nd : 2 * nd], w.shape[-2], w.shape[-1]
    else:
        cout, cin, k, o_w = w.shape[0], w.shape[1], w.shape[2 : 2 + nd], w.shape[2 + nd :]
    need(cin == c, "channels")
    _, s, d, pads, out = _patches(size, tuple(k), stride, padding, dilation)
    need(tuple(o_w) == out, "one kernel per output position")
    bias_ok(bias, cout, x)
    shape = join(nb, out, cout, layout)
    kw = dict(stride=s, padding=pads, dilation=d, layout=layout)

    def f(x, w, bias=None, **_):
        b = None if bias is None else bias.astype(x.dtype)
        if c == 0:  # an empty sum (lax's patches cannot group 0 channels): zeros, + bias
            y = _empty(shape, x.dtype)
            return y if b is None else oracle._add_bias(y, b, layout)
        return oracle.conv_local(x, w, b, **kw)

    return Ref(f, ("x", "w"))


def ref_conv_general_dilated_local(
    lhs,
    rhs,
    window_strides,
    padding,
    filter_shape,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    precision=None,
):
    """lax.conv_general_dilated_local itself (its shape rules, by evaluating it), with these
    documented differences:
    - an int for `window_strides` / `filter_shape` / the dilations means that value in every
      spatial dim (lax: "object is not iterable");
    - floating or complex operands of one dtype, rank >= 3 (jaxconv's dtypes and N-d);
    - C_in = 0 gives zeros (an empty sum; lax's patches cannot group 0 channels);
    - no output window (the dilated window larger than the padded, dilated input) is rejected
      as by every jaxconv convolution; lax returns an empty array (reported: the drop-in
      differs from lax there).
    Everything else lax refuses must be refused."""
    inexact_pair(lhs, rhs, "lhs", "rhs")
    need(lhs.ndim >= 3 and rhs.ndim == lhs.ndim, "ranks")
    nd = lhs.ndim - 2
    filt = ints(filter_shape, nd, 1, "filter_shape")
    strides = ints(window_strides, nd, 1, "window_strides")
    lhs_d = ints(1 if lhs_dilation is None else lhs_dilation, nd, 1, "lhs_dilation")
    rhs_d = ints(1 if rhs_dilation is None else rhs_dilation, nd, 1, "rhs_dilation")
    if is_seq(padding):
        need(len(padding) == nd, "padding length")
        for p in padding:
            need(is_seq(p) and len(p) == 2 and all(is_int(e) for e in p), "padding pairs")
    else:
        need(isinstance(padding, str), "padding")
    dn = lax.conv_dimension_numbers(lhs.shape, (1, 1, *filt), dimension_numbers)
    size = [lhs.shape[a] for a in dn.lhs_spec[2:]]
    cin = lhs.shape[dn.lhs_spec[1]]
    dilated = [(n - 1) * l + 1 if n else 0 for n, l in zip(size, lhs_d)]
    if isinstance(padding, str):
        need(padding.upper() in ("VALID", "SAME", "SAME_LOWER"), "padding string")
        need(max(lhs_d) == 1, "string padding with lhs_dilation (lax: not implemented)")
        pads = lax.padtype_to_pads(dilated, eff(filt, rhs_d), strides, padding.upper())
    else:
        pads = [tuple(int(e) for e in p) for p in padding]
    extent = [e + lo + hi for e, (lo, hi) in zip(dilated, pads)]
    need(all(e >= k for e, k in zip(extent, eff(filt, rhs_d))), "no output window")
    kw = dict(
        lhs_dilation=lhs_d, rhs_dilation=rhs_d, dimension_numbers=dimension_numbers,
        precision=precision,
    )  # fmt: skip
    if cin == 0:  # lax's shapes, for one stand-in channel
        one = jax.ShapeDtypeStruct(
            tuple(1 if a == dn.lhs_spec[1] else e for a, e in enumerate(lhs.shape)), lhs.dtype
        )
        rhs1 = jax.ShapeDtypeStruct(
            tuple(math.prod(filt) if a == dn.rhs_spec[1] else e for a, e in enumerate(rhs.shape)),
            rhs.dtype,
        )
        need(rhs.shape[dn.rhs_spec[1]] == 0, "rhs input features")
        shape = jax.eval_shape(
            lambda a, b: lax.conv_general_dilated_local(a, b, strides, padding, filt, **kw),
            one, rhs1,
        ).shape  # fmt: skip

    def f(lhs, rhs, *_, **__):
        if cin == 0:
            return _empty(shape, lhs.dtype)
        return lax.conv_general_dilated_local(lhs, rhs, strides, padding, filt, **kw)

    return Ref(f, ("lhs", "rhs"))
