"""The fuzz's strategies for resampling and the spatial ops (see `strategies.py`): interpolate,
the adaptive and fractional pools, the pixel shuffles, unfold / fold and the locally connected
convolutions."""

from __future__ import annotations

import math

import jax
import numpy as np
from hypothesis import strategies as st

from tests.fuzz.refs import LAYOUTS, Invalid, join
from tests.fuzz.refs_spatial import _patches
from tests.fuzz.strategies import (
    BAD_LAYOUTS,
    PRECISIONS,
    Call,
    Moody,
    arg,
    bad_ints,
    bad_padding,
    dim,
    int_setting,
    padding_setting,
    pick,
    rare,
    settle,
    sometimes,
    spatial_size,
)

F_KINDS = ["f64", "f64", "f32"]


def _real(a):
    """Complex arrays are valid for the shuffles, unfold / fold and the local convolutions,
    but the harness's comparison (`_compare`) is real-only: their real part instead."""
    return a.real.copy() if isinstance(a, np.ndarray) and np.iscomplexobj(a) else a


def _layout(draw, kw, layout):
    if layout != "channels_last" or draw(st.booleans()):
        kw["layout"] = pick(draw, [layout], BAD_LAYOUTS, 6)


def _sizes_value(draw, sizes, bad):
    """One int per dim as a tuple or list, or an int when they are all equal; or a bad one."""
    forms = [tuple(sizes), list(sizes)] + ([sizes[0]] if len(set(sizes)) == 1 else [])
    return pick(draw, forms, bad)


# --------------------------------------------------------------------------- resampling
INTERP_MODES = ["nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic", "area"]


@st.composite
def interpolate_calls(draw):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    size = tuple(
        0 if rare(draw, 5) else draw(st.integers(1, 5 if nd < 3 else 3)) for _ in range(nd)
    )
    layout = draw(st.sampled_from(LAYOUTS))
    shape = join(dim(draw), size, dim(draw), layout)
    if rare(draw, 5):
        shape = shape[:2]
    x = arg(draw, shape, draw(st.sampled_from(["f64", "f64", "f32"])))
    good_modes = ["linear", "bicubic", "nearest", "nearest-exact", "area"]
    good_modes += ["bilinear"] if nd == 2 else ["trilinear"] if nd == 3 else []
    kw = {"mode": pick(draw, good_modes, ["cubic", "BILINEAR", None, *INTERP_MODES], 10)}
    out = st.integers(1, 6)
    factor = st.sampled_from([0.5, 1, 1.5, 2, 2.0, 3, 0.75, np.float32(1.3), 1.1])
    args = (x,)
    if draw(st.booleans()):
        args = (
            x,
            pick(draw, st.one_of(out, st.tuples(*[out] * nd)), [0, -1, 2.5, (2,) * (nd + 1), "4"]),
        )
        if rare(draw, 6):
            kw["scale_factor"] = 2
    else:
        kw["scale_factor"] = pick(
            draw,
            st.one_of(factor, st.tuples(*[factor] * nd)),
            [0, -2, 0.01, np.inf, np.nan, True, "2", (2,) * (nd + 1), None],
        )
    if layout != "channels_last" or draw(st.booleans()):
        kw["layout"] = pick(draw, [layout], BAD_LAYOUTS, 6)
    settle(draw, kw, "align_corners", [False, True, None], [1, "yes"], 8, include=40)
    settle(draw, kw, "antialias", [False, True], [1, None], 8, include=30)
    settle(draw, kw, "recompute_scale_factor", [None, True, False], [1, "no"], 8, include=25)
    return Call("interpolate", args, kw, True)


# --------------------------------------------------------------------------- adaptive pools


@st.composite
def adaptive_pool_calls(draw, fn):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 1, 2, 3]))
    big = {1: 6, 2: 5, 3: 3}[nd]
    size = tuple(0 if rare(draw, 5) else draw(st.integers(1, big)) for _ in range(nd))
    layout = draw(st.sampled_from(LAYOUTS))
    shape = join(dim(draw), size, dim(draw), layout)
    if rare(draw, 5):
        shape = shape[:2]
    kinds = F_KINDS + (["i32", "i8", "bool"] if fn == "adaptive_max_pool" else [])
    values = draw(st.sampled_from(["distinct", "distinct", "ties"]))
    x = arg(draw, shape, draw(st.sampled_from(kinds)), values=values)
    out = []
    for n in size:  # tiling (a divisor), any size up to a little above L, or None (keep L)
        divisors = [d for d in range(1, n + 1) if n % d == 0] or [1]
        o = st.one_of(st.sampled_from(divisors), st.integers(1, min(big, n + 2) if nd < 3 else 3))
        out.append(draw(o) if not sometimes(draw, 10) else None)
    forms = [tuple(out), list(out)]
    if None not in out and len(set(out)) == 1:
        forms.append(out[0])
    bad = [0, -1, (1,) * (nd + 1), (1,) * (nd - 1), 2.5, "2", None, True, (0,) * nd, (None,)]
    args = (x, pick(draw, forms, bad, 10))
    kw = {}
    _layout(draw, kw, layout)
    if fn == "adaptive_max_pool":
        settle(draw, kw, "ties", ["first", "last", "split"], ["random", None, "FIRST"], 6)
        settle(draw, kw, "return_indices", [False, True], [1, "no", None], 6, include=40)
    return Call(fn, args, kw, True)


# --------------------------------------------------------------------------- fractional


@st.composite
def fractional_max_pool_calls(draw):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    big = {1: 7, 2: 5, 3: 3}[nd]  # (the reference gathers every window's cells one by one)
    size = tuple(0 if rare(draw, 4) else draw(st.integers(1, big)) for _ in range(nd))
    layout = draw(st.sampled_from(LAYOUTS))
    nb, c = dim(draw), dim(draw)
    shape = join(nb, size, c, layout)
    if rare(draw, 5):
        shape = shape[:2]
    values = draw(st.sampled_from(["distinct", "distinct", "ties"]))
    x = arg(draw, shape, draw(st.sampled_from(F_KINDS + ["i32", "i8", "bool"])), values=values)
    k = tuple(draw(st.integers(1, max(1, min(3 if nd == 1 else 2, n)))) for n in size)
    if rare(draw, 15):
        k = tuple(kk + draw(st.integers(0, 2)) for kk in k)
    window = pick(draw, [k, list(k), k[0]] if len(set(k)) == 1 else [k, list(k)], bad_ints(nd))
    kw = {}
    if draw(st.integers(0, 99)) < 75:
        o = tuple(draw(st.integers(1, max(1, n - kk + 1))) for n, kk in zip(size, k))
        if rare(draw, 15):
            o = tuple(oo + 1 for oo in o)
        kw["output_size"] = _sizes_value(draw, o, bad_ints(nd))
        if rare(draw, 5):
            kw["output_ratio"] = 0.5
    else:
        r = st.sampled_from([0.5, 0.25, 0.75, 0.6, np.float32(0.6), np.float64(0.9)])
        kw["output_ratio"] = pick(
            draw,
            st.one_of(r, st.tuples(*[r] * nd), st.lists(r, min_size=nd, max_size=nd)),
            [0, 1, 1.5, -0.5, True, "0.5", np.nan, np.inf, (0.5,) * (nd + 1), 0.01, None],
            12,
        )
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    u = rng.uniform(0, 1, (nb, c, nd))
    if sometimes(draw, 15):  # the edges of [0, 1)
        u.flat[: u.size // 2] = draw(st.sampled_from([0.0, 1 - 2**-40, 0.999]))
    if rare(draw, 12):
        u = draw(
            st.sampled_from(
                [
                    np.full(u.shape, 1.0),
                    np.full(u.shape, -0.25),
                    np.full(u.shape, np.nan),
                    np.zeros((nb, c, nd + 1)),
                    np.zeros((nb, c)),
                    np.zeros((c, nb, nd)) if c != nb else np.zeros((nb, c + 1, nd)),
                    (u * 4).astype(np.int32),
                    u.tolist(),
                    u.astype(np.complex64),
                ]
            )
        )
    elif draw(st.booleans()):
        u = u.astype(draw(st.sampled_from([np.float32, np.float64, np.float16])))
    source = draw(st.sampled_from(["samples", "samples", "samples", "key"]))
    if source == "key" or rare(draw, 5):
        kw["key"] = jax.random.key(draw(st.integers(0, 2)))
    if source == "samples" or rare(draw, 5):
        kw["samples"] = u
    settle(draw, kw, "ties", ["first", "last", "split"], ["random", None, "FIRST"], 6)
    settle(draw, kw, "return_indices", [False, True], [1, "no", None], 6, include=40)
    _layout(draw, kw, layout)
    return Call("fractional_max_pool", (x, window), kw, True)


# --------------------------------------------------------------------------- pixel shuffles


@st.composite
def shuffle_calls(draw, fn):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    r = tuple(draw(st.integers(1, 3 if nd < 3 else 2)) for _ in range(nd))
    layout = draw(st.sampled_from(LAYOUTS))
    nb = dim(draw)
    if fn == "pixel_shuffle":
        size = tuple(draw(st.integers(0, 3 if nd < 3 else 2)) for _ in range(nd))
        c = draw(st.sampled_from([1, 2, 1, 0])) * math.prod(r)
        if rare(draw, 12):
            c += 1
    else:
        size = tuple(ff * draw(st.integers(0, 3 if nd < 3 else 2)) for ff in r)
        if rare(draw, 12):
            size = (size[0] + 1, *size[1:])
        c = dim(draw)
    shape = join(nb, size, c, layout)
    if rare(draw, 5):
        shape = shape[:2]
    kind = draw(st.sampled_from(["f64", "f64", "f32", "i32", "bool"]))
    x = _real(arg(draw, shape, kind))
    name = "upscale_factor" if fn == "pixel_shuffle" else "downscale_factor"
    factor = _sizes_value(draw, r, bad_ints(nd))
    kw = {}
    _layout(draw, kw, layout)
    args = (x, factor) if draw(st.integers(0, 99)) < 80 else (x,)
    if len(args) == 1:
        kw[name] = factor
    return Call(fn, args, kw, True)


# --------------------------------------------------------------------------- unfold / fold


def _window_settings(draw, nd):
    """(window, kw) of unfold/fold/conv_local: stride, padding, dilation (each maybe absent)."""
    k = tuple(draw(st.integers(1, 3 if nd < 3 else 2)) for _ in range(nd))
    kw = {}
    settle(draw, kw, "stride", int_setting(nd, 1, 3, 5), bad_ints(nd))
    settle(draw, kw, "dilation", int_setting(nd, 1, 2, 3), bad_ints(nd), include=40)
    # (10**9 is a valid padding here: no window rule bounds it, but its output cannot exist)
    bad = [p for p in bad_padding(nd) if p != 10**9]
    settle(draw, kw, "padding", padding_setting(nd, 4), bad, include=60)
    return k, kw


def _geometry(size, k, kw):
    """(taps, out grid) of these settings, or None where they are invalid."""
    try:
        k, *_, out = _patches(
            size, k, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1)
        )
    except Invalid:
        return None
    return math.prod(k), out


@st.composite
def unfold_calls(draw):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 1, 2, 3]))
    big = {1: 6, 2: 5, 3: 3}[nd]
    k, kw = _window_settings(draw, nd)
    size = tuple(spatial_size(draw, big, kk) for kk in k)
    layout = draw(st.sampled_from(LAYOUTS))
    shape = join(dim(draw), size, dim(draw), layout)
    if rare(draw, 5):
        shape = shape[:2]
    x = _real(arg(draw, shape, draw(st.sampled_from(F_KINDS + ["i32", "bool"]))))
    window = pick(draw, [k, list(k), k[0]] if len(set(k)) == 1 else [k, list(k)], bad_ints(nd))
    _layout(draw, kw, layout)
    return Call("unfold", (x, window), kw, True)


@st.composite
def fold_calls(draw):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    big = {1: 6, 2: 5, 3: 3}[nd]
    k, kw = _window_settings(draw, nd)
    size = tuple(0 if rare(draw, 4) else draw(st.integers(1, big)) for _ in range(nd))
    layout = draw(st.sampled_from(LAYOUTS))
    nb, c = dim(draw), dim(draw)
    geo = _geometry(size, k, kw)
    taps, out = geo if geo is not None else (math.prod(k), (2,) * nd)
    if rare(draw, 10):
        edit = draw(st.sampled_from(["taps", "out", "rank"]))
        taps = taps + 1 if edit == "taps" else taps
        out = (out[0] + 1, *out[1:]) if edit == "out" else out
    else:
        edit = None
    if layout == "channels_last":
        shape = (nb, *out, taps * c)
    else:
        shape = (nb, c * taps, math.prod(out))
    if edit == "rank":
        shape = draw(st.sampled_from([shape[:2], (*shape, 1)]))
    cols = _real(arg(draw, shape, draw(st.sampled_from(F_KINDS + ["i32", "bool"]))))
    # D is len(output_size) or len(window) where one is a sequence, else from cols / 2
    output_size = _sizes_value(draw, size, bad_ints(nd) + [(0,) * nd])
    window = pick(draw, [k, list(k), k[0]] if len(set(k)) == 1 else [k, list(k)], bad_ints(nd))
    _layout(draw, kw, layout)
    return Call("fold", (cols, output_size, window), kw, True)


# --------------------------------------------------------------------------- local convs


@st.composite
def conv_local_calls(draw):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 1, 2, 3]))
    big = {1: 6, 2: 4, 3: 3}[nd]
    k, kw = _window_settings(draw, nd)
    kw.pop("padding", None)
    bad = [p for p in bad_padding(nd) if p != 10**9]
    settle(draw, kw, "padding", padding_setting(nd, 3), bad, include=60)
    size = tuple(spatial_size(draw, big, kk) for kk in k)
    layout = draw(st.sampled_from(LAYOUTS))
    cin, cout = draw(st.sampled_from([1, 2, 1, 0])), draw(st.sampled_from([1, 2, 3, 0]))
    x_shape = join(dim(draw), size, cin, layout)
    geo = _geometry(size, k, kw)
    if geo is None and _geometry(tuple(n + 50 for n in size), k, kw) is not None:
        # A window larger than the padded input is left out: conv_local's message names
        # `window`, which is no parameter of conv_local (reported; its k is in w.shape).
        d = kw.get("dilation", 1)
        d = d if isinstance(d, (tuple, list)) else (d,) * nd
        size = tuple(max(n, (kk - 1) * int(dd) + 1) for n, kk, dd in zip(size, k, d))
        x_shape = join(x_shape[0], size, cin, layout)
        geo = _geometry(size, k, kw)
    out = geo[1] if geo is not None else (1,) * nd
    kk = k
    if rare(draw, 12):
        edit = draw(st.sampled_from(["out", "cin", "k0", "rank", "x_rank"]))
        out = (out[0] + 1, *out[1:]) if edit == "out" else out
        kk = (0, *k[1:]) if edit == "k0" else k
    else:
        edit = None
    w_cin = cin + 1 if edit == "cin" else cin
    if layout == "channels_last":
        w_shape = (*out, *kk, w_cin, cout)
    else:
        w_shape = (cout, w_cin, *kk, *out)
    if edit == "rank":
        w_shape = w_shape[1:]
    if edit == "x_rank":
        x_shape = x_shape[:2]
    dtype = draw(st.sampled_from(F_KINDS))
    args = (_real(arg(draw, x_shape, dtype)), _real(arg(draw, w_shape, dtype)))
    if draw(st.booleans()):
        b_shape = pick(draw, [(cout,)], [(cout + 1,), (1, cout), ()], 10)
        b_dtype = pick(draw, [dtype], ["f32" if dtype == "f64" else "f64", "i32"], 10)
        args += (arg(draw, b_shape, b_dtype),)
    _layout(draw, kw, layout)
    return Call("conv_local", args, kw, draw(st.integers(0, 99)) < 40)


@st.composite
def conv_general_dilated_local_calls(draw):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 1, 2]))
    sp = "HW"[2 - nd :]
    form = draw(st.sampled_from(["default", "default", "strings", "numbers", "bad"]))
    lhs_s, rhs_s, out_s = "NC" + sp, "OI" + sp, "NC" + sp
    if form in ("strings", "numbers"):
        perm = lambda s: "".join(draw(st.permutations(s)))  # noqa: E731
        lhs_s, rhs_s, out_s = perm(lhs_s), perm(rhs_s), perm(out_s)
    chars = [ch for ch in rhs_s if ch in sp]  # the settings' order: rhs_spec's
    k = {ch: draw(st.integers(1, 3)) for ch in sp}
    size = {ch: spatial_size(draw, 5 if nd == 1 else 4, k[ch]) for ch in sp}
    stride = {ch: draw(st.integers(1, 2)) for ch in sp}
    rdil = {ch: draw(st.integers(1, 2)) for ch in sp}
    ldil = {ch: draw(st.integers(1, 2)) for ch in sp}
    if min(size.values()) == 0:
        # An empty spatial dim with lhs_dilation > 1 is left out: jaxconv sizes the dilated
        # input as l (n - 1) + 1 + lo + hi there (negative for n = 0; reported).
        ldil = dict.fromkeys(sp, 1)
    use_ldil = draw(st.integers(0, 99)) < 30
    if draw(st.booleans()) or use_ldil:
        pi = st.integers(-1, 2)
        padding = {ch: (draw(pi), draw(pi)) for ch in sp}
    else:
        padding = draw(st.sampled_from(["VALID", "SAME", "SAME_LOWER", "same"]))
    # the output grid (lax's rule), to size rhs
    out = {}
    for ch in sp:
        n, l_ = size[ch], ldil[ch] if use_ldil else 1
        e = (n - 1) * l_ + 1 if n else 0
        ke = (k[ch] - 1) * rdil[ch] + 1
        if isinstance(padding, str):
            o = -(-e // stride[ch]) if padding.upper() != "VALID" else (e - ke) // stride[ch] + 1
        else:
            o = (e + sum(padding[ch]) - ke) // stride[ch] + 1
        out[ch] = max(o, 0)
    cin, cout = draw(st.sampled_from([1, 2, 1, 0])), draw(st.sampled_from([1, 2, 0]))
    taps = math.prod(k.values())
    dims = {"N": dim(draw), "C": cin, **size}
    rdims = {"O": cout, "I": cin * taps, **out}
    if rare(draw, 8):
        rdims[draw(st.sampled_from(["I", sp[0]]))] += 1
    lhs_shape = tuple(dims[ch] for ch in lhs_s)
    rhs_shape = tuple(rdims[ch] for ch in rhs_s)
    if rare(draw, 5):
        rhs_shape = rhs_shape[1:]
    dtype = draw(st.sampled_from(F_KINDS))
    lhs, rhs = _real(arg(draw, lhs_shape, dtype)), _real(arg(draw, rhs_shape, dtype))

    def seq(d):
        v = tuple(d[ch] for ch in chars)
        forms = [v, list(v)] + ([v[0]] if len(set(v)) == 1 else [])
        return draw(st.sampled_from(forms))

    strides = pick(draw, [seq(stride)], bad_ints(nd) + [(0,) * nd])
    filt = pick(draw, [seq(k)], bad_ints(nd))
    if not isinstance(padding, str):
        padding = [padding[ch] for ch in chars]
        padding = draw(st.sampled_from([tuple(padding), padding]))
    padding = pick(
        draw,
        [padding],
        ["FULL", "CAUSAL", 1, (1,) * nd, ((1,),) * nd, ((1, 1),) * (nd + 1), ((1.0, 1),) * nd,
         None, ((-9, 0),) * nd, ((True, 0),) * nd],
    )  # fmt: skip
    args = (lhs, rhs, strides, padding, filt)
    kw = {}
    if use_ldil or rare(draw, 10):
        kw["lhs_dilation"] = pick(draw, [seq(ldil), None], bad_ints(nd))
    settle(draw, kw, "rhs_dilation", [seq(rdil), None], bad_ints(nd), include=40)
    if form == "default":
        dn = draw(st.sampled_from([None, (lhs_s, rhs_s, out_s)]))
    elif form == "strings":
        dn = (lhs_s, rhs_s, out_s)
    elif form == "numbers":
        # rhs's spatial axes ascending, as lax makes them from strings. (Unsorted ones: lax's
        # code reads filter_shape in rhs's axis order, its docstring and jaxconv in rhs_spec's.)
        dn = jax.lax.ConvDimensionNumbers(
            tuple(lhs_s.index(ch) for ch in "NC" + "".join(chars)),
            tuple(rhs_s.index(ch) for ch in "OI" + "".join(chars)),
            tuple(out_s.index(ch) for ch in "NC" + "".join(chars)),
        )
    else:
        bad = [(lhs_s, rhs_s), "NCHW", (lhs_s, rhs_s, out_s + "X"), (lhs_s, lhs_s, out_s)]
        dn = draw(st.sampled_from([*bad, ("NCQ", rhs_s, out_s)]))
    if dn is not None or draw(st.booleans()):
        kw["dimension_numbers"] = dn
    settle(draw, kw, "precision", PRECISIONS, ["bogus", 7, ("highest",)], 15, include=15)
    return Call("conv_general_dilated_local", args, kw, draw(st.integers(0, 99)) < 40)
