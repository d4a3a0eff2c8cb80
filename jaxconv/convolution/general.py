"""`conv_general_dilated`: a drop-in for `jax.lax.conv_general_dilated` with explicit VJP rules.

Its derivatives are two more calls of the same general convolution (`convolution.general`, a
primitive whose rules are these), so every order, forward and reverse, runs on them.

The input gradient is the transposed convolution (g zero-dilated by the stride, rot180 kernel,
regrouped channels: seeds 000, 001 Eq. 20-21, 002), the weight gradient the input correlated with
g (seeds 001 Eq. 13-14, 003, 004); their derivation for every lax option is written once, in
`lowering.xla`. Ordinary conv layers run on the conv family instead (`rules`).

The drop-in's general convolution (every lax option) as a primitive with the rules written
here: bilinear, so its JVP is itself on the tangents; its transposes are `lowering.xla`'
`transpose_lhs` / `transpose_rhs` (two more calls of itself, so every order runs on them); vmap
folds the mapped axis into an axis of the same convolution, as lax does for its own.

Batching, with B the mapped size and G = feature (or batch) groups; "into axis a with G
groups" splits axis a into (G, a / G), inserts B after G and merges back, so each group gets
B times its members:

- lhs only: B into lhs's batch axis (within its batch groups); the output's batch splits back;
- rhs only: B into rhs's output-feature axis within the G groups; the output's features split;
- both: B more feature groups (lhs features, rhs output features), or with batch groups, B more
  batch groups (lhs batch, rhs output features); the output's features split back.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.interpreters import ad

from jaxconv._core import validate as v
from jaxconv._core.layout import from_cl, kernel_to_cl, to_cl
from jaxconv._core.padding import effective_kernel
from jaxconv._core.primitive import batching_rule, primitive
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, DTypeLike, Shape
from jaxconv.convolution.lowering.choice import layer_geometry
from jaxconv.convolution.lowering.geometry import ConvParams, dimension_numbers
from jaxconv.convolution.lowering.xla import lax_conv, transpose_lhs, transpose_rhs
from jaxconv.convolution.rules import conv_cl

_FN = "conv_general_dilated"


def conv_general_dilated(
    lhs: ArrayLike,
    rhs: ArrayLike,
    window_strides: Shape,
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Shape | None = None,
    rhs_dilation: Shape | None = None,
    dimension_numbers: object = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: object = None,
    preferred_element_type: DTypeLike | None = None,
    out_sharding: object = None,
) -> Array:
    """Same signature and values as `jax.lax.conv_general_dilated`, with an explicit VJP.

    Use it wherever lax's is used, e.g. ``flax.linen.Conv(..., conv_general_dilated=
    jaxconv.conv_general_dilated)``. The input gradient is the transposed convolution of the
    module docstring (zero-dilated g, rot180 kernel, regrouped channels), the weight gradient the
    correlation of the input with g. Both are calls of this function, so grad-of-grad is explicit.
    Ordinary conv-layer calls (NH..C/H..IO or NC../OI.., no lhs dilation, no batch groups, no
    negative padding) run on the conv family instead (`jaxconv.conv`'s rules and the algorithms
    its ``backward="auto"`` picks): same values, same math, faster lowerings on XLA:CPU.

    Args:
      lhs: input, rank n+2, axes as in ``dimension_numbers`` (default NCHW...).
      rhs: kernel, rank n+2 (default OIHW...).
      window_strides: n ints.
      padding: "VALID", "SAME", "SAME_LOWER" or n (lo, hi) pairs (negative values crop).
      lhs_dilation, rhs_dilation: n ints or None.
      dimension_numbers, feature_group_count, batch_group_count: as in lax.
      precision, preferred_element_type: as in lax.
      out_sharding: the output's sharding, passed to lax (forward) and applied to the
        gradients' inputs' shardings by XLA's partitioner.
    Returns:
      the output, rank n+2, in ``dimension_numbers``' output layout.

    Example:
      >>> import jax.numpy as jnp
      >>> lhs, rhs = jnp.ones((1, 2, 5, 5)), jnp.ones((3, 2, 3, 3))  # NCHW, OIHW (lax's default)
      >>> conv_general_dilated(lhs, rhs, (1, 1), "SAME").shape
      (1, 3, 5, 5)
    """
    args = LaxArgs(
        lhs=lhs,
        rhs=rhs,
        window_strides=window_strides,
        padding=padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    v.check_array(_FN, "lhs", lhs)
    v.check_array(_FN, "rhs", rhs)
    if not (_inexact(lhs) or _inexact(rhs)):
        # Integer and bool convolutions: lax's values (lax checks their dtypes). JAX
        # differentiates neither (their tangents are float0), so there is no rule to write.
        return lax_conv(_normalize(args, integer=True), lhs, rhs, out_sharding)
    p = _normalize(args)
    out_shape, out_dtype = _lax_output(p, lhs, rhs)
    if 0 in (*lhs.shape, *rhs.shape, *out_shape):
        # An empty operand or result: every output cell is an empty sum (or there is none),
        # as lax computes it; nothing depends on lhs or rhs, so every derivative is zero.
        y = jnp.zeros(out_shape, out_dtype)
        return y if out_sharding is None else jax.sharding.reshard(y, out_sharding)
    layout = _layer_layout(p)

    def run(lhs, rhs):
        return general_conv(p, lhs, rhs) if layout is None else _as_layer(p, layout, lhs, rhs)

    lhs_spec, rhs_spec, out_spec = p.dimension_numbers
    out = [None] * lhs.ndim  # batch and space like lhs, features like rhs's output features
    for o, i in zip((out_spec[0], *out_spec[2:]), (lhs_spec[0], *lhs_spec[2:])):
        out[o] = (0, i)
    out[out_spec[1]] = (1, rhs_spec[0])
    y = auto_partitioned(run, lhs, rhs, out=out)
    if out_sharding is not None:
        y = jax.sharding.reshard(y, out_sharding)
    return y


def _inexact(a) -> bool:
    return jnp.issubdtype(jnp.dtype(a.dtype), jnp.inexact)


def _lax_output(p: ConvParams, lhs, rhs):
    """(shape, dtype) of lax's result for the normalised call `p` (abstract: nothing runs)."""
    out = jax.eval_shape(
        partial(lax_conv, p),
        jax.ShapeDtypeStruct(lhs.shape, lhs.dtype),
        jax.ShapeDtypeStruct(rhs.shape, rhs.dtype),
    )
    return tuple(out.shape), out.dtype


def _layer_layout(p: ConvParams):
    """ "channels_last" / "channels_first" when the call is an ordinary conv layer (no lhs
    dilation, no batch groups, no cropping, NH..C/H..IO or NC../OI.. with the output like the
    input), else None."""
    if any(a != 1 for a in p.lhs_dilation) or p.batch_group_count != 1:
        return None
    if not p.window_strides:  # rank-2 operands: a matrix product, on the general rules
        return None
    if any(lo < 0 or hi < 0 for lo, hi in p.padding):
        return None
    nd = len(p.window_strides)
    for layout in ("channels_last", "channels_first"):
        if tuple(map(tuple, p.dimension_numbers)) == tuple(
            map(tuple, dimension_numbers(nd, layout))
        ):
            return layout
    return None


def _as_layer(p: ConvParams, layout: str, lhs, rhs):
    """An ordinary conv layer runs on the conv family (`rules`): the same values and the same
    explicit VJP rules, with the algorithms `backward="auto"` picks for the shape."""
    x, w = to_cl(lhs, layout), kernel_to_cl(rhs, layout)
    geo = layer_geometry(x.shape, w.shape, p, dtype=x.dtype)  # as `conv` builds it
    return from_cl(conv_cl(geo, x, w, None), layout)


class LaxArgs(NamedTuple):
    """The arguments of one `jax.lax.conv_general_dilated` call, as the caller gave them."""

    lhs: ArrayLike
    rhs: ArrayLike
    window_strides: object
    padding: object
    lhs_dilation: object
    rhs_dilation: object
    dimension_numbers: object
    feature_group_count: object
    batch_group_count: object
    precision: object
    preferred_element_type: object


def _normalize(a: LaxArgs, integer: bool = False) -> ConvParams:
    """Validated, hashable settings of the call `a`. `integer`: integer/bool operands, whose
    dtypes and `preferred_element_type` lax itself checks (with its own exception types)."""
    if not integer:
        v.check_inexact(_FN, "lhs", a.lhs)
        v.check_inexact(_FN, "rhs", a.rhs)
        v.check_same_dtype(_FN, lhs=a.lhs, rhs=a.rhs)
        v.check_pet_width(_FN, a.preferred_element_type, a.lhs)
    dn = _dimension_numbers(a)
    nd = a.lhs.ndim - 2
    strides = v.int_tuple(_FN, "window_strides", a.window_strides, nd)
    lhs_dil, rhs_dil = _dilations(a, nd)
    fgc, bgc = _group_counts(a)
    pads = _padding(a, dn, strides, lhs_dil, rhs_dil)
    _check_features(a, dn, fgc, bgc)
    precision, pet = _precision(a, integer)
    return ConvParams(
        window_strides=strides,
        padding=pads,
        lhs_dilation=lhs_dil,
        rhs_dilation=rhs_dil,
        dimension_numbers=dn,
        feature_group_count=fgc,
        batch_group_count=bgc,
        precision=precision,
        preferred_element_type=pet,
    )


def _dimension_numbers(a: LaxArgs) -> lax.ConvDimensionNumbers:
    """lax's dimension numbers of operands of one rank n+2 >= 2, each window dim non-empty."""
    lhs, rhs = a.lhs, a.rhs
    if lhs.ndim != rhs.ndim or lhs.ndim < 2:
        v.fail(
            _FN,
            "rhs.shape",
            tuple(rhs.shape),
            f"must have the rank of lhs (={tuple(lhs.shape)}), which must be >= 2",
        )
    try:
        dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, a.dimension_numbers)
    except (TypeError, ValueError) as e:
        v.fail(_FN, "dimension_numbers", a.dimension_numbers, f"is invalid: {e}".split("\n")[0])
    v.check_nonempty(_FN, "rhs", rhs.shape, dn.rhs_spec[2:], "cell in every window dim (as lax)")
    return dn


def _dilations(a: LaxArgs, nd: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(lhs_dilation, rhs_dilation): `nd` ints >= 1 each, None meaning 1."""
    lhs_dil = 1 if a.lhs_dilation is None else a.lhs_dilation
    rhs_dil = 1 if a.rhs_dilation is None else a.rhs_dilation
    return (
        v.int_tuple(_FN, "lhs_dilation", lhs_dil, nd),
        v.int_tuple(_FN, "rhs_dilation", rhs_dil, nd),
    )


def _group_counts(a: LaxArgs) -> tuple[int, int]:
    """(feature_group_count, batch_group_count): ints >= 1, at most one of them > 1."""
    fgc = v.as_int(_FN, "feature_group_count", a.feature_group_count)
    bgc = v.as_int(_FN, "batch_group_count", a.batch_group_count)
    if fgc < 1:
        v.fail(_FN, "feature_group_count", fgc, "must be >= 1")
    if bgc < 1:
        v.fail(_FN, "batch_group_count", bgc, "must be >= 1")
    if fgc > 1 and bgc > 1:
        v.fail(
            _FN, "batch_group_count", bgc, f"must be 1 when `feature_group_count` (={fgc}) is > 1"
        )
    return fgc, bgc


def _padding(a: LaxArgs, dn, strides, lhs_dil, rhs_dil) -> tuple[tuple[int, int], ...]:
    """(lo, hi) per spatial dim: lax's pairs for "VALID" / "SAME" / "SAME_LOWER" (on the
    dilated kernel, k_eff = d(k-1) + 1), or the caller's pairs as ints (negative ones crop)."""
    padding, nd = a.padding, len(strides)
    if isinstance(padding, str):
        if padding.upper() not in ("VALID", "SAME", "SAME_LOWER"):
            v.fail(_FN, "padding", padding, "must be 'VALID', 'SAME', 'SAME_LOWER' or pairs")
        if any(d > 1 for d in lhs_dil):
            v.fail(
                _FN,
                "padding",
                padding,
                "must be explicit (lo, hi) pairs when "
                f"`lhs_dilation` (={lhs_dil}) is > 1 (as in lax)",
            )
        in_sp = [a.lhs.shape[i] for i in dn.lhs_spec[2:]]
        k_eff = effective_kernel([a.rhs.shape[i] for i in dn.rhs_spec[2:]], rhs_dil)
        return tuple(
            tuple(int(q) for q in pr)
            for pr in lax.padtype_to_pads(in_sp, k_eff, strides, padding.upper())
        )
    if (
        not isinstance(padding, Sequence)
        or len(padding) != nd
        or any(not isinstance(pr, Sequence) or len(pr) != 2 for pr in padding)
    ):
        v.fail(_FN, "padding", padding, f"must be a string or {nd} (lo, hi) pairs")
    return tuple((v.as_int(_FN, "padding", lo), v.as_int(_FN, "padding", hi)) for lo, hi in padding)


def _check_features(a: LaxArgs, dn, fgc: int, bgc: int) -> None:
    """The feature and batch sizes fit the group counts: C_in = fgc * (rhs's input features),
    G = fgc * bgc divides rhs's output features, bgc divides the lhs batch."""
    lhs, rhs = a.lhs, a.rhs
    cin, cout, rin = lhs.shape[dn.lhs_spec[1]], rhs.shape[dn.rhs_spec[0]], rhs.shape[dn.rhs_spec[1]]
    if cin % fgc or cin // fgc != rin:
        v.fail(
            _FN,
            "rhs.shape",
            tuple(rhs.shape),
            f"has {rin} input features, but lhs has "
            f"{cin} features and `feature_group_count` is {fgc}",
        )
    if cout % (fgc * bgc):
        v.fail(
            _FN,
            "rhs.shape",
            tuple(rhs.shape),
            f"output features (={cout}) must be divisible by the group count",
        )
    if lhs.shape[dn.lhs_spec[0]] % bgc:
        v.fail(
            _FN,
            "batch_group_count",
            bgc,
            f"must divide the lhs batch (={lhs.shape[dn.lhs_spec[0]]})",
        )


def _precision(a: LaxArgs, integer: bool):
    """(precision, preferred_element_type) in hashable form; with `integer` operands lax
    checks the `preferred_element_type` itself, so it passes through as given."""
    if integer:
        precision, _ = v.precision_and_type(_FN, a.precision, None)
        return precision, a.preferred_element_type
    return v.precision_and_type(_FN, a.precision, a.preferred_element_type)


def _conv(lhs, rhs, *, p: ConvParams):
    return lax_conv(p, lhs, rhs)


general_p = primitive("conv_general_dilated", _conv, ("p",))


def general_conv(p: ConvParams, lhs, rhs):
    """``lax.conv_general_dilated`` with the normalised settings `p`, on these rules."""
    return general_p.bind(lhs, rhs, p=p)


def _t_lhs(ct, lhs, rhs, *, p):
    dx = transpose_lhs(p, ct, rhs, lhs.aval.shape, general_conv)
    return dx.astype(lhs.aval.dtype)


def _t_rhs(ct, lhs, rhs, *, p):
    dw = transpose_rhs(p, lhs, ct, rhs.aval.shape, general_conv)
    return dw.astype(rhs.aval.dtype)


ad.defbilinear(general_p, _t_lhs, _t_rhs)


def _into(a, bdim: int, axis: int, groups: int):
    """The mapped axis `bdim` of `a` merged into `axis` (of the unmapped array): (G, B, a/G)."""
    a = jnp.moveaxis(a, bdim, 0)
    size, ax = a.shape[0], axis + 1
    a = a.reshape(*a.shape[:ax], groups, a.shape[ax] // groups, *a.shape[ax + 1 :])
    a = jnp.moveaxis(a, 0, ax)  # (..., G, B, a / G, ...) at ax - 1
    return a.reshape(*a.shape[: ax - 1], groups * size * a.shape[ax + 1], *a.shape[ax + 2 :])


def _out_of(a, axis: int, size: int, groups: int):
    """The inverse of `_into`: axis `axis` of (G, B, rest) -> the mapped axis first."""
    a = a.reshape(*a.shape[:axis], groups, size, -1, *a.shape[axis + 1 :])
    a = jnp.moveaxis(a, axis + 1, 0)
    return a.reshape(*a.shape[: axis + 1], -1, *a.shape[axis + 3 :])


def _batch(args, dims, *, p: ConvParams):
    """vmap of the general convolution, folding the mapped axis as the module docstring says.

    Only for a mapped size > 0: folded into a batch or feature axis, a size-0 axis would leave
    an empty axis whose extent is lost (integer modulo by zero), into groups a group count of 0;
    `batching_rule` answers size 0 with the empty result abstract evaluation gives."""
    (lhs, rhs), (bl, br) = args, dims
    lhs_spec, rhs_spec, out_spec = p.dimension_numbers
    fgc, bgc = p.feature_group_count, p.batch_group_count
    if br is None:
        size = lhs.shape[bl]
        out = general_conv(p, _into(lhs, bl, lhs_spec[0], bgc), rhs)
        return _out_of(out, out_spec[0], size, 1), 0
    size = rhs.shape[br]
    if bl is None:
        out = general_conv(p, lhs, _into(rhs, br, rhs_spec[0], fgc * bgc))
        return _out_of(out, out_spec[1], size, fgc * bgc), 0
    rhs = _into(rhs, br, rhs_spec[0], 1)
    if bgc > 1:
        q = p._replace(batch_group_count=size * bgc)
        out = general_conv(q, _into(lhs, bl, lhs_spec[0], 1), rhs)
    else:
        q = p._replace(feature_group_count=size * fgc)
        out = general_conv(q, _into(lhs, bl, lhs_spec[1], 1), rhs)
    return _out_of(out, out_spec[1], size, 1), 0


batching_rule(general_p, _batch)
