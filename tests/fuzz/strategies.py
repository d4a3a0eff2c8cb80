"""The fuzz's hypothesis strategies: building blocks and the conv family (see `harness.py`).

Each `<fn>_calls` strategy draws a whole `Call` (function name, positional args, keywords):
mostly consistent arguments, with edge and bad values mixed in. Half of the examples draw good
values only (`Moody`), so that many calls are valid; the other half mix in edge and bad values.
Pooling, relu, linear and the losses: `strategies_pool.py`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np
from hypothesis import strategies as st
from jax import lax

from jaxconv.convolution.api import BACKWARDS
from tests.fuzz.refs import LAYOUTS, Invalid, conv_setup, join, split, split_w, transpose_sizes


def describe(a) -> str:
    if isinstance(a, (np.ndarray, jax.Array)):
        return f"{a.dtype}{list(a.shape)}"
    if isinstance(a, list) and a and isinstance(a[0], list):
        return "nested-list"
    return repr(a)


class Call(NamedTuple):
    fn: str
    args: tuple
    kwargs: dict
    vjp: bool = True  # also compare one VJP (when the reference says it is cheap)

    def __repr__(self):
        parts = [describe(a) for a in self.args] + [
            f"{k}={describe(v)}" for k, v in self.kwargs.items()
        ]
        return f"{self.fn}({', '.join(parts)})"


BAD_KINDS = ("i32", "bool", "c64", "list", "none", "float", "str", "i8", "scalar")


def make(shape, kind="f64", seed=0, values="normal"):
    """An argument of `shape`: a float64/float32 array (numpy or jax), or something bad."""
    rng = np.random.default_rng(seed)
    if values == "distinct":  # no ties anywhere: max's winner is unique
        a = (rng.permutation(math.prod(shape)).reshape(shape) - math.prod(shape) / 2) * 0.37
    elif values == "ties":
        a = rng.integers(0, 3, shape).astype(np.float64)
    elif values == "positive":
        a = np.abs(rng.standard_normal(shape)) + 0.1
    else:
        a = rng.standard_normal(shape)
    return {
        "f64": lambda: a,
        "f32": lambda: a.astype(np.float32),
        "jax": lambda: jax.device_put(a),  # (jnp.asarray compiles a copy per shape)
        "i32": lambda: (a * 3).astype(np.int32),
        "i8": lambda: (a * 3).astype(np.int8),
        "bool": lambda: a > 0,
        "c64": lambda: a.astype(np.complex64),
        "list": lambda: a.tolist(),
        "none": lambda: None,
        "float": lambda: 1.5,
        "str": lambda: "x",
        "scalar": lambda: np.float64(1.5),  # has a shape and a dtype: 0-d, fine for relu
    }[kind]()


class Moody:
    """A composite's `draw` with how often this example breaks things: 0 (half of the examples:
    good values only, so that many calls are valid), 1 or 2 (edge and bad values as marked)."""

    def __init__(self, draw):
        self.draw = draw
        self.factor = draw(st.sampled_from([0, 0, 1, 2]))

    def __call__(self, strategy):
        return self.draw(strategy)


def rare(draw, percent: int) -> bool:
    """True with about `percent` % (times the example's factor) probability; shrinks to False."""
    return draw(st.integers(0, 99)) >= 100 - percent * getattr(draw, "factor", 1)


def sometimes(draw, percent: int) -> bool:
    """True with `percent` % probability whatever the example's factor (good but uncommon)."""
    return draw(st.integers(0, 99)) >= 100 - percent


def spatial_size(draw, big, k):
    """A spatial size: 1..big, or (25 %) an edge: 0, the window, one less than the window."""
    return draw(st.sampled_from([0, k, k - 1])) if rare(draw, 25) else draw(st.integers(1, big))


def dim(draw):
    """A batch or channel size: 1 or 2, or (10 %) empty."""
    return 0 if rare(draw, 10) else draw(st.integers(1, 2))


def pick(draw, good, bad, percent: int = 8):
    """A draw of `bad` (a list or strategy) with about `percent` % probability, else `good`."""
    if rare(draw, percent):
        return draw(bad if isinstance(bad, st.SearchStrategy) else st.sampled_from(bad))
    return draw(good if isinstance(good, st.SearchStrategy) else st.sampled_from(good))


def arg(draw, shape, dtype="f64", percent=4, values="normal"):
    kind = draw(st.sampled_from(["jax", dtype])) if dtype == "f64" else dtype
    if rare(draw, percent):
        kind = draw(st.sampled_from(BAD_KINDS))
    return make(shape, kind, 0, values)  # values are not the point: repeats are exact


def int_setting(nd, lo=1, hi=3, big=7):
    """An int or one int per dim (tuple, list, numpy ints), occasionally `big`."""
    i = st.integers(lo, hi)
    return st.one_of(
        i,
        i,
        st.tuples(*[i] * nd),
        st.lists(i, min_size=nd, max_size=nd),
        st.builds(np.int64, i),
        st.just(big),
    )


def bad_ints(nd, lo=1):
    return [
        lo - 1,
        -1,
        -5,
        (1,) * (nd + 1),
        (1,) * (nd - 1),
        1.5,
        "2",
        None,
        True,
        (1.0,) * nd,
        2**63,
    ]


def padding_setting(nd, big):
    i = st.integers(0, 2)
    pair = st.tuples(i, i)
    return st.one_of(
        st.sampled_from(["VALID", "SAME", "FULL", "same", "valid", "CAUSAL", "causal"]),
        i,
        st.tuples(*[i] * nd),
        st.tuples(*[pair] * nd),
        st.lists(st.one_of(i, pair), min_size=nd, max_size=nd),
        st.just(big),
    )


def bad_padding(nd):
    return [
        -1,
        "HALF",
        "",
        (1,) * (nd + 1),
        ((1, 1, 1),) * nd,
        ((0, -1),) * nd,
        1.0,
        None,
        ((0,),) * nd,
        (None,) * nd,
        10**9,
        2**64,
    ]


BAD_LAYOUTS = ["NHWC", None, "channels-last", 1, "CHANNELS_LAST"]
PRECISIONS = [None, "highest", lax.Precision.HIGHEST, ("highest", "default")]
PETS = [None, np.float64, "float64", np.float32, np.float16]


def settle(draw, kw, name, good, bad, percent=8, include=50):
    """Maybe (include %) set kw[name] to a good or (percent %) bad value."""
    if draw(st.integers(0, 99)) < include:
        kw[name] = pick(draw, good, bad, percent)


def conv_shapes(draw):
    """Shapes of one convolution, consistent unless an edit (12 %) breaks them."""
    nd = draw(st.sampled_from([1, 2, 1, 2, 3]))
    big = {1: 6, 2: 5, 3: 3}[nd]
    k = tuple(draw(st.integers(1, 3 if nd < 3 else 2)) for _ in range(nd))
    size = tuple(spatial_size(draw, big, kk) for kk in k)
    layout = draw(st.sampled_from(LAYOUTS))
    n = dim(draw)
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin_g, cout_g = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    cout = groups * cout_g
    if rare(draw, 12):
        edit = draw(st.sampled_from(["w_rank-", "w_rank+", "x_rank", "cin", "cout", "k0", "c0"]))
        cin_g = {"cin": cin_g + 1, "c0": 0}.get(edit, cin_g)
        cout = {"cout": cout + 1}.get(edit, cout)
        k = (0, *k[1:]) if edit == "k0" else k
    else:
        edit = None
    x_shape = list(join(n, size, groups * cin_g if edit != "cin" else groups * (cin_g - 1), layout))
    w_shape = list((*k, cin_g, cout) if layout == "channels_last" else (cout, cin_g, *k))
    if edit == "w_rank-":
        w_shape = w_shape[1:]
    if edit == "w_rank+":
        w_shape = [1, *w_shape]
    if edit == "x_rank":
        x_shape = draw(st.sampled_from([x_shape[:2], x_shape[:1], []]))
    return dict(nd=nd, big=big, layout=layout, groups=groups, x=tuple(x_shape), w=tuple(w_shape))


def conv_settings(draw, geo, transpose=False, modes=False, wide_pet=True):
    """The keyword settings of the conv family (each may be absent, good or bad)."""
    nd, kw = geo["nd"], {}
    if geo["layout"] != "channels_last" or draw(st.booleans()):
        kw["layout"] = pick(draw, [geo["layout"]], BAD_LAYOUTS, 6)
    if geo["groups"] != 1 or draw(st.booleans()):
        kw["groups"] = pick(draw, [geo["groups"]], [0, -1, 2.0, True, "1", 4, geo["groups"] + 1])
    settle(draw, kw, "stride", int_setting(nd), bad_ints(nd))
    settle(draw, kw, "dilation", int_setting(nd, 1, 2, 3), bad_ints(nd))
    big = 9 if nd < 3 else 4
    settle(draw, kw, "padding", padding_setting(nd, big), bad_padding(nd), include=70)
    if transpose:
        settle(draw, kw, "output_padding", int_setting(nd, 0, 1, 2), bad_ints(nd, 0), include=30)
    if modes:
        good = ["zeros", "reflect", "replicate", "circular"]
        settle(draw, kw, "padding_mode", good, ["mirror", None, "ZEROS", "wrap"], include=60)
    settle(draw, kw, "flip", [False, True, np.bool_(True)], [1, "yes", None], 6, include=30)
    settle(draw, kw, "backward", BACKWARDS, ["fft", None, "AUTO"], 6, include=60)
    settle(draw, kw, "precision", PRECISIONS, ["bogus", ("highest",), 7], 15, include=10)
    pets = PETS if wide_pet else [p for p in PETS if p not in (np.float64, "float64")]
    settle(draw, kw, "preferred_element_type", pets, [np.int32, "notadtype"], 20, include=10)
    return kw


def vjp_flag(draw, percent):
    return draw(st.integers(0, 99)) < percent


def _bias(draw, c, dtype):
    if draw(st.booleans()):
        return None
    shape = pick(draw, [(c,)], [(c + 1,), (1, c), ()], 10)
    return arg(draw, shape, dtype)


@st.composite
def conv_calls(draw):
    draw = Moody(draw)
    geo = conv_shapes(draw)
    dtype = draw(st.sampled_from(["f64", "f64", "f64", "f32"]))
    x, w = arg(draw, geo["x"], dtype), arg(draw, geo["w"], dtype)
    cout = split_w(geo["w"], geo["layout"])[2] if len(geo["w"]) >= 2 else 1
    kw = conv_settings(draw, geo, modes=True)
    args = (x, w, _bias(draw, cout, dtype))
    return Call("conv", args if args[2] is not None else args[:2], kw, vjp_flag(draw, 25))


def _out_shape(geo, kw, dtype):
    """conv's output shape for these settings, or None where they are invalid."""
    try:
        return conv_setup(geo["x"], geo["w"], dtype, kw).out_shape
    except Invalid:
        return None


def _shape_value(draw, shape, name):
    good = st.sampled_from([tuple(shape), list(shape), np.asarray(shape, np.int64)])
    bad = ["abc", 5, None, (*shape[:-1], 2.0), tuple(shape[:-1]), (-1, *shape[1:])]
    return pick(draw, good, bad, 8)


def _gradient_call_settings(draw, geo):
    """(dtype, conv settings, g's shape) for conv_input_grad / conv_weight_grad: g mostly has
    the conv's output shape, sometimes a wrong one."""
    dtype = draw(st.sampled_from(["f64", "f64", "f64", "f32"]))
    kw = conv_settings(draw, geo)
    out = _out_shape(geo, kw, {"f64": np.float64, "f32": np.float32}[dtype])
    g_shape = (
        out
        if out is not None and not rare(draw, 8)
        else draw(st.sampled_from([geo["x"], (1, 2, 2)]))
    )
    return dtype, kw, g_shape


@st.composite
def conv_input_grad_calls(draw):
    draw = Moody(draw)
    geo = conv_shapes(draw)
    dtype, kw, g_shape = _gradient_call_settings(draw, geo)
    args = (
        _shape_value(draw, geo["x"], "input_shape"),
        arg(draw, geo["w"], dtype),
        arg(draw, g_shape, dtype),
    )
    return Call("conv_input_grad", args, kw, vjp_flag(draw, 25))


@st.composite
def conv_weight_grad_calls(draw):
    draw = Moody(draw)
    geo = conv_shapes(draw)
    dtype, kw, g_shape = _gradient_call_settings(draw, geo)
    args = (
        arg(draw, geo["x"], dtype),
        _shape_value(draw, geo["w"], "weight_shape"),
        arg(draw, g_shape, dtype),
    )
    return Call("conv_weight_grad", args, kw, vjp_flag(draw, 25))


@st.composite
def conv_transpose_calls(draw):
    draw = Moody(draw)
    geo = conv_shapes(draw)  # its x is y here: y has the kernel's C_out channels
    dtype = draw(st.sampled_from(["f64", "f64", "f64", "f32"]))
    layout, w_shape = geo["layout"], geo["w"]
    y_shape = geo["x"]
    if len(w_shape) == len(y_shape) >= 3 and not rare(draw, 8):
        nb, o, _ = split(y_shape, layout)
        y_shape = join(nb, o, split_w(w_shape, layout)[2], layout)
    kw = conv_settings(draw, geo, transpose=True)
    if sometimes(draw, 25) and "output_padding" not in kw:
        nd = geo["nd"]
        o = split(y_shape, layout)[1] if len(y_shape) == nd + 2 else (1,) * nd
        try:  # inside the legal range [n_min, n_min + room) when the rest is valid
            *_, n_min, room = transpose_sizes(o, split_w(w_shape, layout)[0], kw)
            sizes = [st.integers(max(m, 0), max(m + r - 1, 0)) for m, r in zip(n_min, room)]
        except Invalid:
            sizes = [st.integers(0, 9)] * nd
        off = [st.integers(-1, 1)] * nd  # and once in a while just outside
        good = (
            st.builds(
                lambda a, b: tuple(x + y for x, y in zip(a, b)), st.tuples(*sizes), st.tuples(*off)
            )
            if rare(draw, 30)
            else st.tuples(*sizes)
        )
        kw["output_size"] = pick(draw, good, [7, (1,) * (nd + 1), (2.5,) * nd, None])
    args = (arg(draw, y_shape, dtype), arg(draw, w_shape, dtype))
    cin = split_w(w_shape, layout)[1] * geo["groups"] if len(w_shape) >= 2 else 1
    b = _bias(draw, cin, dtype)
    return Call("conv_transpose", args + ((b,) if b is not None else ()), kw, vjp_flag(draw, 25))


@st.composite
def conv_general_dilated_calls(draw):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 1, 2, 3]))
    sp = "DHW"[3 - nd :]
    form = draw(st.sampled_from(["default", "default", "strings", "strings", "numbers", "bad"]))
    perm = lambda s: "".join(draw(st.permutations(s)))  # noqa: E731
    lhs_s, rhs_s, out_s = "NC" + sp, "OI" + sp, "NC" + sp
    if form in ("strings", "numbers"):
        if draw(st.booleans()):
            lhs_s, rhs_s, out_s = "N" + sp + "C", sp + "IO", "N" + sp + "C"
        else:
            lhs_s, rhs_s, out_s = perm(lhs_s), perm(rhs_s), perm(out_s)
    big = {1: 5, 2: 4, 3: 3}[nd]
    k = {c: draw(st.integers(1, 3 if nd < 3 else 2)) for c in sp}
    size = {c: spatial_size(draw, big, k[c]) for c in sp}
    fgc = draw(st.sampled_from([1, 1, 2]))
    bgc = 1 if fgc > 1 else draw(st.sampled_from([1, 1, 2]))
    cin_g, cout_g = (
        draw(st.integers(1, 2)),
        draw(st.integers(0, 2) if rare(draw, 10) else st.integers(1, 2)),
    )
    dims = {"N": bgc * dim(draw), "C": fgc * cin_g, **size}
    rdims = {"O": fgc * bgc * cout_g, "I": cin_g, **k}
    if rare(draw, 8):
        rdims["I"] += 1
    if rare(draw, 5):
        rdims[sp[0]] = 0
    dtype = draw(st.sampled_from(["f64", "f64", "f64", "f32"]))
    lhs_shape = tuple(dims[c] for c in lhs_s)
    rhs_shape = tuple(rdims[c] for c in rhs_s)
    if rare(draw, 6):
        rhs_shape = rhs_shape[1:]
    lhs, rhs = arg(draw, lhs_shape, dtype), arg(draw, rhs_shape, dtype)
    if form == "default":
        dn = draw(st.sampled_from([None, None, (lhs_s, rhs_s, out_s)]))
    elif form == "strings":
        dn = (lhs_s, rhs_s, out_s)
    elif form == "numbers":
        dn = lax.ConvDimensionNumbers(
            tuple(lhs_s.index(c) for c in "NC" + sp),
            tuple(rhs_s.index(c) for c in "OI" + sp),
            tuple(out_s.index(c) for c in "NC" + sp),
        )
    else:
        dn = draw(
            st.sampled_from(
                [
                    (lhs_s, rhs_s),
                    ("NCQ" + sp[1:], rhs_s, out_s),
                    "NCHW",
                    (lhs_s, rhs_s, out_s + "X"),
                    (lhs_s, lhs_s, out_s),
                ]
            )
        )
    i12 = st.integers(1, 2)
    strides = pick(
        draw,
        st.one_of(st.tuples(*[i12] * nd), st.lists(i12, min_size=nd, max_size=nd), i12),
        bad_ints(nd) + [(0,) * nd],
    )
    pi = st.integers(-1, 2)
    padding = pick(
        draw,
        st.one_of(
            st.sampled_from(["VALID", "SAME", "SAME_LOWER", "same"]),
            st.tuples(*[st.tuples(pi, pi)] * nd),
            st.lists(st.tuples(pi, pi), min_size=nd, max_size=nd),
        ),
        ["FULL", 1, ((1,),) * nd, ((1, 1),) * (nd + 1), ((1.0, 1),) * nd, None, ((-9, 0),) * nd],
    )
    kw = {}
    dil = st.one_of(st.none(), st.tuples(*[i12] * nd), i12)
    settle(draw, kw, "lhs_dilation", dil, bad_ints(nd), include=30)
    settle(draw, kw, "rhs_dilation", dil, bad_ints(nd), include=40)
    if dn is not None or draw(st.booleans()):
        kw["dimension_numbers"] = dn
    if fgc > 1 or draw(st.booleans()):
        kw["feature_group_count"] = pick(draw, [fgc], [0, -1, True, 2.0, 3])
    if bgc > 1 or rare(draw, 20):
        kw["batch_group_count"] = pick(draw, [bgc], [0, True, 2, 3], 15)
    settle(draw, kw, "precision", PRECISIONS, ["bogus", 7], 15, include=10)
    settle(draw, kw, "preferred_element_type", PETS, [np.int32, "notadtype"], 20, include=10)
    return Call("conv_general_dilated", (lhs, rhs, strides, padding), kw, vjp_flag(draw, 30))
