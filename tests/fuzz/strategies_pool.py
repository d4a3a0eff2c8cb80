"""The fuzz's strategies for pooling, relu, linear and the losses (see `strategies.py`;
resampling and the spatial ops: `strategies_spatial.py`)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from tests.fuzz.refs import LAYOUTS, join
from tests.fuzz.strategies import (
    BAD_LAYOUTS,
    Call,
    Moody,
    arg,
    bad_ints,
    bad_padding,
    dim,
    int_setting,
    pick,
    rare,
    settle,
    sometimes,
    spatial_size,
)


@st.composite
def pool_calls(draw, fn):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 1, 2, 3]))
    big = {1: 6, 2: 5, 3: 3}[nd]
    win = tuple(draw(st.integers(1, 3 if nd < 3 else 2)) for _ in range(nd))
    size = tuple(spatial_size(draw, big, w) for w in win)
    layout = draw(st.sampled_from(LAYOUTS))
    shape = join(dim(draw), size, dim(draw), layout)
    if rare(draw, 6):
        shape = draw(st.sampled_from([shape[:2], shape[:1], ()]))
    values = {
        "max_pool": draw(st.sampled_from(["distinct", "distinct", "ties"])),
        "min_pool": draw(st.sampled_from(["distinct", "distinct", "ties"])),
        "lp_pool": "positive",
    }.get(fn, "normal")
    kinds = ["f64", "f64", "f64", "f32"]
    if fn in ("max_pool", "min_pool"):  # integer and bool inputs are valid there
        kinds += ["i32", "i8", "bool"]
    x = arg(draw, shape, draw(st.sampled_from(kinds)), values=values)
    window = pick(draw, st.one_of(st.just(win), st.just(list(win)), st.just(win[0])), bad_ints(nd))
    kw = {}
    if layout != "channels_last" or draw(st.booleans()):
        kw["layout"] = pick(draw, [layout], BAD_LAYOUTS, 6)
    settle(draw, kw, "stride", st.one_of(st.none(), int_setting(nd, 1, 3, 7)), bad_ints(nd))
    i = st.integers(0, 1)
    good_pad = st.one_of(
        st.sampled_from(["VALID", "SAME", "FULL", "same"]),
        i,
        st.tuples(*[i] * nd),
        st.tuples(*[st.tuples(i, i)] * nd),
    )
    settle(draw, kw, "padding", good_pad, bad_padding(nd) + [2, 3, "CAUSAL"], 12, include=60)
    settle(draw, kw, "ceil_mode", [False, True, np.bool_(True)], [1, "yes", None], 6)
    args = (x, window)
    if fn in ("max_pool", "min_pool"):
        settle(draw, kw, "dilation", int_setting(nd, 1, 2, 3), bad_ints(nd), include=40)
        settle(draw, kw, "ties", ["first", "last", "split"], ["random", None, "FIRST"], 6)
        settle(draw, kw, "return_indices", [False, True], [1, "no", None], 6, include=40)
    if fn == "avg_pool":
        settle(draw, kw, "count_include_pad", [True, False], [0, "yes", None], 6)
        settle(
            draw,
            kw,
            "divisor_override",
            [3, -2, np.int64(5), 1, None],
            [0, 1.5, True, "3", 2**63],
            15,
            include=30,
        )
    if fn == "lp_pool":
        good = [1, 2, 3, 1.5, 0.5, np.float64(2.0), np.int64(2)]
        bad = [0, -1, np.inf, np.nan, True, "2", None, -0.5]
        args = (x, pick(draw, good, bad, 15), window)
    return Call(fn, args, kw, True)


@st.composite
def global_pool_calls(draw, fn):
    draw = Moody(draw)
    ndim = draw(st.sampled_from([3, 4, 3, 4, 5, 2, 1]))
    shape = [draw(st.sampled_from([1, 2, 3, 4, 0])) for _ in range(ndim)]
    layout = draw(st.sampled_from(LAYOUTS))
    values = "distinct" if draw(st.booleans()) else "ties"
    kinds = ["f64", "f64", "f32"] + (["i32", "bool"] if fn == "global_max_pool" else [])
    x = arg(draw, tuple(shape), draw(st.sampled_from(kinds)), values=values)
    kw = {}
    if layout != "channels_last" or draw(st.booleans()):
        kw["layout"] = pick(draw, [layout], BAD_LAYOUTS, 8)
    return Call(fn, (x,), kw, True)


@st.composite
def max_unpool_calls(draw):
    draw = Moody(draw)
    nd = draw(st.sampled_from([1, 2, 1, 3]))
    layout = draw(st.sampled_from(LAYOUTS))
    o = tuple(draw(st.integers(0, 3)) for _ in range(nd))
    out = tuple(0 if rare(draw, 8) else draw(st.integers(1, 4)) for _ in range(nd))
    nb, c = draw(st.sampled_from([1, 2, 0])), draw(st.sampled_from([1, 2, 0]))
    y_shape = join(nb, o, c, layout)
    if rare(draw, 6):
        y_shape = y_shape[:2]
    y = arg(draw, y_shape, draw(st.sampled_from(["f64", "f64", "f32"])))
    size = max(math.prod(out), 1)
    idx_dtype = pick(draw, [np.int32, np.int64, np.uint8, np.int16], [np.float64, np.bool_], 6)
    i_shape = y_shape if not rare(draw, 6) else (*y_shape, 1)
    low = -2 if np.dtype(idx_dtype).kind == "i" else 0
    indices = np.random.default_rng(draw(st.integers(0, 99))).integers(low, size + 2, i_shape)
    indices = indices.astype(idx_dtype)
    full = join(nb, out, c, layout)
    output_shape = pick(
        draw,
        st.sampled_from([out, list(out), full, np.asarray(out)]),
        [(*out, 1, 1, 1), (), "ab", None, (2.0,) * nd, (nb + 1, *full[1:]), (-1,) * nd],
    )
    kw = {}
    if layout != "channels_last" or draw(st.booleans()):
        kw["layout"] = pick(draw, [layout], BAD_LAYOUTS, 6)
    return Call("max_unpool", (y, indices, output_shape), kw, True)


@st.composite
def relu_calls(draw):
    draw = Moody(draw)
    shape = tuple(draw(st.integers(0, 3)) for _ in range(draw(st.integers(0, 3))))
    x = arg(draw, shape, draw(st.sampled_from(["f64", "f64", "f32"])), percent=30)
    if x is not None and isinstance(x, np.ndarray) and x.size and sometimes(draw, 30):
        x.flat[0] = 0.0  # relu'(0) = 0
    return Call("relu", (x,), {}, True)


@st.composite
def linear_calls(draw):
    draw = Moody(draw)
    lead = tuple(draw(st.integers(0, 3)) for _ in range(draw(st.integers(0, 2))))
    n_in, n_out = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    x_shape = (*lead, n_in) if not rare(draw, 5) else ()
    w_shape = pick(draw, [(n_in, n_out)], [(n_in + 1, n_out), (n_in,), (n_in, n_out, 1)], 20)
    dtype = draw(st.sampled_from(["f64", "f64", "f32"]))
    args = (arg(draw, x_shape, dtype), arg(draw, w_shape, dtype))
    if draw(st.booleans()):
        args += (
            arg(
                draw,
                pick(draw, [(n_out,)], [(n_out + 1,), (1, n_out), ()], 20),
                pick(draw, [dtype], ["f32" if dtype == "f64" else "f64"], 10),
            ),
        )
    return Call("linear", args, {}, True)


@st.composite
def mse_loss_calls(draw):
    draw = Moody(draw)
    shape = tuple(draw(st.integers(0, 3)) for _ in range(draw(st.integers(0, 3))))
    dtype = draw(st.sampled_from(["f64", "f64", "f32"]))
    t_shape = pick(draw, [shape], [(*shape, 1), (2,) * (len(shape) + 1), ()], 20)
    t_dtype = pick(draw, [dtype], ["f32", "f64"], 15)
    args = (arg(draw, shape, dtype, 10), arg(draw, t_shape, t_dtype, 10))
    kw = {}
    settle(draw, kw, "reduction", ["sum", "mean"], ["none", None, "MEAN", 1], 20)
    return Call("mse_loss", args, kw, True)


@st.composite
def softmax_cross_entropy_calls(draw):
    draw = Moody(draw)
    n, k = draw(st.sampled_from([1, 2, 3, 0])), draw(st.sampled_from([1, 2, 4, 0]))
    logits_shape = pick(draw, [(n, k)], [(n,), (n, k, 1), ()], 8)
    logits = arg(draw, logits_shape, draw(st.sampled_from(["f64", "f64", "f32"])))
    lab_dtype = pick(draw, [np.int32, np.int64, np.uint8], [np.float64, np.bool_], 8)
    lab_shape = pick(draw, [(n,)], [(n, 1), (n + 1,), ()], 8)
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    low, high = (-1, k + 1) if rare(draw, 15) else (0, max(k, 1))
    labels = rng.integers(max(low, 0) if lab_dtype == np.uint8 else low, high, lab_shape)
    labels = labels.astype(lab_dtype) if not rare(draw, 5) else labels.tolist()
    return Call("softmax_cross_entropy", (logits, labels), {}, True)
