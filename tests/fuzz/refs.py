"""The fuzz's reference semantics: shared rules and the conv family.

Each `ref_<fn>` takes a call's arguments and returns the `Ref` of what the documented semantics
(docs/semantics.md) give it -- plain lax/jnp, the convolutions through `oracle` (testing.oracle),
independent of jaxconv's code -- or raises `Invalid` when they give it no value (then jaxconv
must reject the call). The argument rules are the fuzz's own; where plain lax disagrees with the
documented rules the builder says why in a comment. Pooling, relu, linear and the losses:
`refs_pool.py`; the contract that holds jaxconv to these: `harness.py`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.convolution.api import BACKWARDS
from jaxconv.testing import oracle

LAYOUTS = ("channels_last", "channels_first")
# BACKWARDS: the algorithm names (docs/semantics.md: "auto", "transpose", "phase", ...). Every
# one must give the same values, so the registry itself is the list of good names.


class Invalid(Exception):
    """The documented semantics give this call no value: jaxconv must reject it."""


def need(cond, why: str) -> None:
    if not cond:
        raise Invalid(why)


class Ref(NamedTuple):
    f: Any  # same positional/keyword arrays as the call -> the expected output
    diff: tuple = ()  # names of the array arguments to differentiate (empty: no VJP check)
    post: Any = None  # extra check of the concrete output, f(call, out)


def is_int(v) -> bool:
    """An int (Python or numpy, not a bool) that fits lax's int64 settings."""
    ok = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
    return ok and -(2**63) <= v < 2**63


def is_flag(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def is_seq(v) -> bool:
    return isinstance(v, (tuple, list))


def is_array(a) -> bool:
    return isinstance(a, (np.ndarray, np.generic, jax.Array))


def float_array(a, name: str) -> None:
    need(is_array(a), f"{name} is not an array")
    need(jnp.issubdtype(a.dtype, jnp.floating), f"{name}.dtype {a.dtype} is not floating")


def ints(v, nd: int, minimum: int, name: str) -> tuple[int, ...]:
    """An int or one int per dim (a tuple or list), every entry >= minimum."""
    if is_seq(v):
        need(len(v) == nd and all(is_int(e) for e in v), f"{name} {v!r}")
        out = tuple(int(e) for e in v)
    else:
        need(is_int(v), f"{name} {v!r}")
        out = (int(v),) * nd
    need(all(e >= minimum for e in out), f"{name} {v!r} < {minimum}")
    return out


def pad_pairs(p, nd, k_eff, stride, size, name="padding"):
    """docs/semantics.md: "VALID", "SAME" (ceil(n / s) outputs), "FULL" (k_eff - 1), "CAUSAL"
    (k_eff - 1 low), int, ints, pairs."""
    if isinstance(p, str):
        need(p.upper() in ("VALID", "SAME", "FULL", "CAUSAL"), f"padding {p!r}")
        if p.upper() == "CAUSAL":
            return tuple((k - 1, 0) for k in k_eff)
        if p.upper() == "SAME":
            return tuple(
                tuple(map(int, q)) for q in lax.padtype_to_pads(size, k_eff, stride, "SAME")
            )
        return tuple((k - 1, k - 1) if p.upper() == "FULL" else (0, 0) for k in k_eff)
    if is_seq(p):
        need(len(p) == nd, f"{name} length")
        out = []
        for q in p:
            if is_seq(q):
                need(len(q) == 2 and all(is_int(e) for e in q), f"{name} pair {q!r}")
                out.append((int(q[0]), int(q[1])))
            else:
                need(is_int(q), f"{name} entry {q!r}")
                out.append((int(q), int(q)))
    else:
        need(is_int(p), f"{name} {p!r}")
        out = [(int(p), int(p))] * nd
    need(all(lo >= 0 and hi >= 0 for lo, hi in out), f"{name} negative")
    return tuple(out)


def eff(k, d):
    return tuple((kk - 1) * dd + 1 for kk, dd in zip(k, d))


def split(shape, layout):
    """(N, spatial, C) of an activation shape."""
    if layout == "channels_last":
        return shape[0], tuple(shape[1:-1]), shape[-1]
    return shape[0], tuple(shape[2:]), shape[1]


def join(n, sp, c, layout):
    return (n, *sp, c) if layout == "channels_last" else (n, c, *sp)


def split_w(shape, layout):
    """(k, C_in // groups, C_out) of a kernel shape."""
    if layout == "channels_last":
        return tuple(shape[:-2]), shape[-2], shape[-1]
    return tuple(shape[2:]), shape[1], shape[0]


def precision_ok(p) -> None:
    """lax: None, a Precision or its name, or a pair of those."""

    def one(q):
        names = ("default", "high", "highest", "DEFAULT", "HIGH", "HIGHEST")
        return q is None or isinstance(q, lax.Precision) or (isinstance(q, str) and q in names)

    need(one(p) or (is_seq(p) and len(p) == 2 and all(one(q) for q in p)), f"precision {p!r}")


def pet_dtype(pet, in_dtype):
    """lax: a floating preferred_element_type not narrower than the inputs."""
    if pet is None:
        return None
    try:
        dt = np.dtype(pet)
    except TypeError:
        raise Invalid(f"preferred_element_type {pet!r}") from None
    need(jnp.issubdtype(dt, jnp.floating), f"preferred_element_type {dt}")
    need(dt.itemsize >= np.dtype(in_dtype).itemsize, "preferred_element_type narrower")
    return dt


class ConvS(NamedTuple):
    """A validated convolution: lax settings and the output shape."""

    layout: str
    nd: int
    stride: tuple
    pads: tuple  # zero padding given to lax
    mode_pads: tuple  # applied by padding_mode first
    dilation: tuple
    groups: int
    flip: bool
    mode: str
    out_shape: tuple
    precision: Any
    pet: Any


def conv_setup(x_shape, w_shape, dtype, kw) -> ConvS:
    """The conv family's documented rules (docs/semantics.md and `conv`'s docstring)."""
    layout = kw.get("layout", "channels_last")
    need(isinstance(layout, str) and layout in LAYOUTS, f"layout {layout!r}")
    need(kw.get("backward", "auto") in BACKWARDS, "backward")
    flip = kw.get("flip", False)
    need(is_flag(flip), f"flip {flip!r}")
    need(len(x_shape) >= 3 and len(w_shape) == len(x_shape), "ranks")
    nd = len(x_shape) - 2
    n, size, cin = split(x_shape, layout)
    k, cin_g, cout = split_w(w_shape, layout)
    need(min(k) >= 1 and cout >= 1, "empty kernel")  # jaxconv's rule (lax: verifier error)
    need(min(x_shape) >= 0, "negative size")
    groups = kw.get("groups", 1)
    need(is_int(groups) and groups >= 1, f"groups {groups!r}")
    need(cin % groups == 0 and cout % groups == 0 and cin // groups == cin_g, "groups/channels")
    stride = ints(kw.get("stride", 1), nd, 1, "stride")
    dilation = ints(kw.get("dilation", 1), nd, 1, "dilation")
    k_eff = eff(k, dilation)
    pads = pad_pairs(kw.get("padding", "VALID"), nd, k_eff, stride, size)
    # Convolutions with no output window are rejected (lax would return an empty array).
    need(all(s + lo + hi >= ke for s, (lo, hi), ke in zip(size, pads, k_eff)), "window too big")
    mode = kw.get("padding_mode", "zeros")
    need(mode in ("zeros", "reflect", "replicate", "circular"), f"padding_mode {mode!r}")
    if mode == "reflect":  # numpy's reflect needs a neighbour: pads < n
        need(all(max(p) < s for s, p in zip(size, pads)), "reflect pads >= n")
    if mode == "circular":  # one wrap at most
        need(all(max(p) <= s for s, p in zip(size, pads)), "circular pads > n")
    if mode == "replicate":  # nothing to replicate from an empty input (jnp.pad raises too)
        need(all(s >= 1 or p == (0, 0) for s, p in zip(size, pads)), "replicate an empty dim")
    precision_ok(kw.get("precision"))
    pet = pet_dtype(kw.get("preferred_element_type"), dtype)
    out = tuple(
        (s + lo + hi - ke) // st + 1 for s, (lo, hi), ke, st in zip(size, pads, k_eff, stride)
    )
    mode_pads, zero_pads = (pads, ((0, 0),) * nd) if mode != "zeros" else (((0, 0),) * nd, pads)
    return ConvS(
        layout,
        nd,
        stride,
        zero_pads,
        mode_pads,
        dilation,
        groups,
        bool(flip),
        mode,
        join(n, out, cout, layout),
        kw.get("precision"),
        pet,
    )


def lax_conv(s: ConvS, x, w, pads=None):
    """Plain lax (`oracle.conv`, no bias): padding mode by jnp.pad, flip by jnp.flip, then one
    convolution; `pads`: other zero padding (pairs, negative ones crop)."""
    return oracle.conv(
        x,
        w,
        stride=s.stride,
        padding=s.mode_pads if s.mode != "zeros" else pads or s.pads,
        dilation=s.dilation,
        groups=s.groups,
        flip=s.flip,
        layout=s.layout,
        padding_mode=s.mode,
        precision=s.precision,
        preferred_element_type=s.pet,
    )


def up(s: ConvS, a):
    """A transposed convolution with a preferred_element_type computes in that type: its
    operands, converted exactly (it is never narrower)."""
    return a if s.pet is None else a.astype(s.pet)


def add_bias(y, b, layout):
    if b is None:
        return y
    shape = [1] * y.ndim
    shape[-1 if layout == "channels_last" else 1] = -1
    return y + b.astype(y.dtype).reshape(shape)


def float_pair(a, b, na, nb):
    float_array(a, na)
    float_array(b, nb)
    need(a.dtype == b.dtype, f"{na}/{nb} dtypes differ")


def inexact_pair(a, b, na, nb):
    """The conv family: real or complex floating operands of one dtype (linear maps over R, C)."""
    for v, n in ((a, na), (b, nb)):
        need(is_array(v), f"{n} is not an array")
        need(jnp.issubdtype(v.dtype, jnp.inexact), f"{n}.dtype {v.dtype} is not inexact")
    need(a.dtype == b.dtype, f"{na}/{nb} dtypes differ")


def bias_ok(b, c, x=None) -> None:
    """A real floating bias; complex too when the operand `x` is complex."""
    if b is not None:
        if x is not None and jnp.issubdtype(x.dtype, jnp.complexfloating):
            need(is_array(b) and jnp.issubdtype(b.dtype, jnp.inexact), "bias dtype")
        else:
            float_array(b, "bias")
        need(tuple(b.shape) == (c,), "bias shape")


def ref_conv(x, w, bias=None, **kw):
    inexact_pair(x, w, "x", "w")
    s = conv_setup(x.shape, w.shape, x.dtype, kw)
    bias_ok(bias, split_w(w.shape, s.layout)[2], x)
    return Ref(lambda x, w, bias=None, **_: add_bias(lax_conv(s, x, w), bias, s.layout), ("x", "w"))


def shape_arg(v, name):
    need(is_seq(v) or isinstance(v, np.ndarray), f"{name} {v!r}")
    need(all(is_int(e) for e in v), f"{name} entries")
    return tuple(int(e) for e in v)


def ref_conv_input_grad(input_shape, w, g, **kw):
    inexact_pair(w, g, "w", "g")
    x_shape = shape_arg(input_shape, "input_shape")
    s = conv_setup(x_shape, w.shape, w.dtype, kw)
    need(tuple(g.shape) == s.out_shape, "g shape")

    def f(input_shape, w, g, **_):
        w, g = up(s, w), up(s, g)
        x0 = jnp.zeros(x_shape, w.dtype)
        return jax.vjp(lambda x: lax_conv(s, x, w), x0)[1](g)[0]

    return Ref(f, ("w", "g"))


def ref_conv_weight_grad(x, weight_shape, g, **kw):
    inexact_pair(x, g, "x", "g")
    w_shape = shape_arg(weight_shape, "weight_shape")
    s = conv_setup(x.shape, w_shape, x.dtype, kw)
    need(tuple(g.shape) == s.out_shape, "g shape")

    def f(x, weight_shape, g, **_):
        x, g = up(s, x), up(s, g)
        w0 = jnp.zeros(w_shape, x.dtype)
        return jax.vjp(lambda w: lax_conv(s, x, w), w0)[1](g)[0]

    return Ref(f, ("x", "g"))


def transpose_sizes(o, k, kw):
    """stride, dilation, k_eff, pads, the smallest output size n_min and the room above it
    (max(stride, dilation)) of a transposed convolution of spatial size o."""
    nd = len(o)
    stride = ints(kw.get("stride", 1), nd, 1, "stride")
    dilation = ints(kw.get("dilation", 1), nd, 1, "dilation")
    need(all(kk >= 1 for kk in k), "empty kernel")
    k_eff = eff(k, dilation)
    padding = kw.get("padding", 0)
    if isinstance(padding, str) and padding.upper() in ("SAME", "CAUSAL"):  # n = o s
        pads = pad_pairs(padding, nd, k_eff, stride, tuple(a * b for a, b in zip(o, stride)))
    else:
        pads = pad_pairs(padding, nd, k_eff, stride, o)
    n_min = tuple((a - 1) * s + ke - lo - hi for a, s, ke, (lo, hi) in zip(o, stride, k_eff, pads))
    room = tuple(max(s, d) for s, d in zip(stride, dilation))
    return stride, dilation, k_eff, pads, n_min, room


def ref_conv_transpose(y, w, bias=None, **kw):
    """PyTorch ConvTranspose: the adjoint of the conv of an n-sized input with o outputs,
    n = (o - 1) s + k_eff - lo - hi + output_padding (or output_size); "SAME": n = o s."""
    inexact_pair(y, w, "y", "w")
    layout = kw.get("layout", "channels_last")
    need(isinstance(layout, str) and layout in LAYOUTS, "layout")
    need(y.ndim >= 3 and w.ndim == y.ndim, "ranks")
    nd = y.ndim - 2
    nb, o, c_y = split(y.shape, layout)
    k, cin_g, cout = split_w(w.shape, layout)
    need(c_y == cout, "y channels")
    groups = kw.get("groups", 1)
    need(is_int(groups) and groups >= 1 and cout % groups == 0, "groups")
    stride, dilation, k_eff, pads, n_min, room = transpose_sizes(o, k, kw)
    op = ints(kw.get("output_padding", 0), nd, 0, "output_padding")
    out_size = kw.get("output_size")
    if isinstance(kw.get("padding"), str) and kw["padding"].upper() in ("SAME", "CAUSAL"):
        need(not any(op), "output_padding with SAME/CAUSAL")
        out_size = tuple(a * b for a, b in zip(o, stride)) if out_size is None else out_size
    if out_size is not None:
        need(not any(op), "output_padding with output_size")
        out_size = out_size.tolist() if isinstance(out_size, np.ndarray) else out_size
        need(is_seq(out_size) and len(out_size) == nd, "output_size")
        op = tuple(int(e) - m for e, m in zip(shape_arg(out_size, "output_size"), n_min))
        need(all(0 <= p < r for p, r in zip(op, room)), "output_size range")
    need(all(p < r for p, r in zip(op, room)), "output_padding >= max(stride, dilation)")
    n = tuple(m + p for m, p in zip(n_min, op))
    need(min(n) >= 1, "empty output")
    x_shape = join(nb, n, cin_g * groups, layout)
    kw2 = {**kw, "padding": pads, "stride": stride, "dilation": dilation}
    s = conv_setup(x_shape, w.shape, y.dtype, kw2)
    bias_ok(bias, cin_g * groups, y)
    # exactly o windows: the high padding that makes them (negative: crops the output_padding)
    lax_pads = tuple(
        (lo, (oo - 1) * st + ke - nn - lo)
        for (lo, _), oo, st, ke, nn in zip(pads, o, stride, k_eff, n)
    )

    def f(y, w, bias=None, **_):
        y, w = up(s, y), up(s, w)
        x0 = jnp.zeros(x_shape, y.dtype)
        x = jax.vjp(lambda x: lax_conv(s, x, w, lax_pads), x0)[1](y)[0]
        return add_bias(x, bias, layout)

    return Ref(f, ("y", "w"))


def ref_conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
    out_sharding=None,
):
    """lax.conv_general_dilated itself, with these documented differences:
    - an int for `window_strides` / `lhs_dilation` / `rhs_dilation` means that value in every
      spatial dim (lax raises a bare TypeError "object is not iterable");
    - non-array operands are rejected (lax would convert lists);
    - an integer or bool operand beside a floating or complex one is rejected (lax does too).
    Everything lax itself refuses must be refused (the `check` catches lax's exception):
    integer, bool and complex operands, rank 2 (no spatial dims) and empty results as lax."""
    need(is_array(lhs) and is_array(rhs), "operands are not arrays")
    if jnp.issubdtype(lhs.dtype, jnp.inexact) or jnp.issubdtype(rhs.dtype, jnp.inexact):
        inexact_pair(lhs, rhs, "lhs", "rhs")
    need(lhs.ndim >= 2 and rhs.ndim == lhs.ndim, "ranks")
    nd = lhs.ndim - 2
    strides = ints(window_strides, nd, 1, "window_strides")
    lhs_d = None if lhs_dilation is None else ints(lhs_dilation, nd, 1, "lhs_dilation")
    rhs_d = None if rhs_dilation is None else ints(rhs_dilation, nd, 1, "rhs_dilation")
    for v in (feature_group_count, batch_group_count):
        need(is_int(v), "group count")  # as every int setting: no bools, no floats
    need(isinstance(padding, str) or is_seq(padding), "padding must be a str or pairs")
    if is_seq(padding):
        need(all(is_seq(p) and len(p) == 2 and all(is_int(e) for e in p) for p in padding), "pairs")
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    k = [rhs.shape[i] for i in dn.rhs_spec[2:]]
    need(all(kk >= 1 for kk in k), "empty kernel")
    if isinstance(padding, str):
        need(padding.upper() in ("VALID", "SAME", "SAME_LOWER"), "padding string")
    kw = dict(
        lhs_dilation=lhs_d,
        rhs_dilation=rhs_d,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )

    def f(lhs, rhs, *_, **__):
        return oracle.conv_general_dilated(lhs, rhs, strides, padding, **kw)

    return Ref(f, ("lhs", "rhs"))
