"""Locally connected convolution (unshared weights): `conv_local` and the drop-in
`conv_general_dilated_local`, on three bilinear primitives with the rules written here.

Every output position p has its own kernel. With P = unfold(x) the patches (`unfold.py`:
P[n, p, f], f = (tap m, channel c)), one output channel o::

    y[n, p, o]   = sum_f P[n, p, f] w[p, f, o]                       (`local_p`)
    dx           = fold(dP),  dP[n, p, f] = sum_o g[n, p, o] w[p, f, o]   (`input_grad_p`)
    dw[p, f, o]  = sum_n P[n, p, f] g[n, p, o]                       (`weight_grad_p`)
    db[o]        = sum_{n, p} g[n, p, o]                             (`_core.bias`)

The conv family's argument (`rules.py`) holds unchanged, with A_w x = local(x, w) = B_x w:
input_grad(w, g) = A_w^T g and weight_grad(x, g) = B_x^T g, and the three maps are closed under
transposition:

- ``local(x, w)``: w.r.t. x ``input_grad(w, ct)``, w.r.t. w ``weight_grad(x, ct)``;
- ``input_grad(w, g)``, c of x's shape: <c, A_w^T g> = <A_w c, g>: w.r.t. g ``local(c, w)``;
  <local(c, w), g> = <w, B_c^T g>: w.r.t. w ``weight_grad(c, g)``;
- ``weight_grad(x, g)``, c of w's shape: <c, B_x^T g> = <local(x, c), g>: w.r.t. g
  ``local(x, c)``, w.r.t. x ``input_grad(c, g)``.

Each is bilinear, so its JVP is itself on the tangents one argument at a time
(``d local(x, w) = local(dx, w) + local(x, dw)``), and reverse mode transposes with the rules
above: every derivative of every order in either direction runs on these three maps (their
values on a patch gather, `unfold.patches`, a `dot_general` batched over the positions and, for
the input gradient, `unfold.place`: no JAX rule of dot_general or of a convolution is ever
used). The patches are recomputed from x in the weight gradient: the residuals are x and w
(named ``jaxconv.conv_local.x`` / ``.w`` for `jax.checkpoint` policies).

Shapes inside (a leading group axis G on w, G = 1 for the public ops; vmap stacks mapped
copies as groups, batch item i using kernel group ``i // (N / G)``), K taps, C in, O out:

- channels_last:  x (G N, *n, C), w (G, *o, K, C, O), y (G N, *o, O)
- channels_first: x (G N, C, *n), w (G, O, C, K, *o), y (G N, O, *o)

vmap: with only the activation mapped (x of local, g of input_grad) B joins the batch inside
each group (order (G, B, N)); otherwise the unmapped operand is broadcast and the B copies
become B G groups. Size 0: an empty result from abstract evaluation (`batching_rule`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax
from jax.interpreters import ad

from jaxconv._core import validate as v
from jaxconv._core.bias import add_bias
from jaxconv._core.dtypes import accumulation, widest
from jaxconv._core.primitive import batching_rule, moved, primitive
from jaxconv._core.residuals import name
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, Ints, Padding, Shape
from jaxconv.convolution.unfold import Patches, patch_geometry, patches, place


class Local(NamedTuple):
    """Static settings of one locally connected layer."""

    geo: Patches
    groups: int  # G: kernel groups along the batch (1 but under vmap)
    precision: object


def conv_local(
    x: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: Ints = 1,
    padding: Padding = "VALID",
    dilation: Ints = 1,
    layout: str = "channels_last",
) -> Array:
    r"""N-d locally connected layer: a convolution with its own kernel at every output position.

    .. math:: y[n, p, o] = \sum_{m, c} w[p, m, c, o]\, \tilde x[n, p s + m d, c] + b[o]

    Reverse mode: dx = fold of dP[n, p, (m, c)] = sum_o g[n, p, o] w[p, m, c, o] (the input
    gradient of a convolution whose kernel changes with p), dw[p, m, c, o] = sum_n
    P[n, p, (m, c)] g[n, p, o] with P = unfold(x) (the weight gradient, per position), db[o] =
    sum_{n, p} g[n, p, o]. Forward mode: local(dx, w) + local(x, dw) (+ db). With every w[p]
    equal, this is `conv(x, w[p])`.

    Args:
      x: (N, *spatial, C_in) for ``layout="channels_last"``, (N, C_in, *spatial) for
        "channels_first"; D >= 1 spatial dims; floating or complex.
      w: channels_last (*o, *k, C_in, C_out): at output position p a conv kernel w[p] in
        jaxconv's channels-last kernel layout (*k, C_in, C_out); reshaped to
        (*o, K C_in, C_out) its rows are `unfold`'s channels-last columns (offset-major).
        channels_first (C_out, C_in, *k, *o): reshaped to (C_out, C_in K, *o) it is lax's
        ``conv_general_dilated_local`` rhs for ("NC..", "OI..", "NC..") and its rows are
        `unfold`'s channels-first columns (channel-major). o is the output grid and must
        equal ``(n + lo + hi - d (k - 1) - 1) // s + 1`` per dim; x's dtype.
      bias: (C_out,) or None.
      stride, dilation: an int >= 1 or one per spatial dim.
      padding: "VALID" (default), "SAME", "FULL", an int, one int per dim, or (lo, hi) pairs.
      layout: "channels_last" or "channels_first".

    Returns:
      y: (N, *o, C_out) or (N, C_out, *o).

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.ones((1, 4, 4, 2)); w = jnp.ones((3, 3, 2, 2, 2, 5))  # o=(3, 3), k=(2, 2)
      >>> conv_local(x, w).shape
      (1, 3, 3, 5)
    """
    fn = "conv_local"
    v.check_layout(fn, layout)
    v.check_inexact(fn, "x", x)
    v.check_inexact(fn, "w", w)
    if bias is not None:
        (v.check_inexact if jnp.iscomplexobj(x) else v.check_float)(fn, "bias", bias)
    v.check_same_dtype(fn, x=x, w=w)
    nd = v.spatial_rank(fn, x)
    if w.ndim != 2 * nd + 2:
        want = "(*o, *k, C_in, C_out)" if layout == "channels_last" else "(C_out, C_in, *k, *o)"
        v.fail(fn, "w.shape", tuple(w.shape),
               f"must be {want}: rank {2 * nd + 2} for {nd} spatial dims")  # fmt: skip
    if layout == "channels_last":
        o_w, k, cin, cout = w.shape[:nd], w.shape[nd : 2 * nd], w.shape[-2], w.shape[-1]
        c = x.shape[-1]
    else:
        cout, cin, k, o_w = w.shape[0], w.shape[1], w.shape[2 : 2 + nd], w.shape[2 + nd :]
        c = x.shape[1]
    if cin != c:
        v.fail(fn, "w.shape", tuple(w.shape),
               f"has {cin} input channels but x has {c}")  # fmt: skip
    v.check_nonempty(fn, "w", w.shape, range(nd, 2 * nd) if layout == "channels_last"
                     else range(2, 2 + nd), "cell in every window dim")  # fmt: skip
    geo = patch_geometry(
        fn, x.shape, tuple(k), stride, padding, dilation, layout, arg="w.shape", value=w.shape
    )
    if tuple(o_w) != geo.out:
        v.fail(fn, "w.shape", tuple(w.shape),
               f"must have one kernel per output position: output grid {geo.out} "
               f"(window {geo.window}, stride {geo.stride}, padding {geo.pads}, "
               f"dilation {geo.dilation}), got {tuple(o_w)}")  # fmt: skip
    v.check_bias(fn, bias, cout)
    cfg = Local(geo, 1, None)
    K = geo.taps

    def run(x, w, bias):
        if layout == "channels_last":
            wk = w.reshape(1, *geo.out, K, cin, cout)
        else:
            wk = w.reshape(1, cout, cin, K, *geo.out)
        y = local_p.bind(name(x, "conv_local", "x"), name(wk, "conv_local", "w"), cfg=cfg)
        if bias is None:
            return y
        if layout == "channels_last":
            return add_bias(y, bias)
        return jnp.moveaxis(add_bias(jnp.moveaxis(y, 1, -1), bias), -1, 1)

    out = ((0, 0), *((None,) * (x.ndim - 1)))  # batch like x's; space, channels: XLA's
    return auto_partitioned(run, x, w, bias, out=out, batch=())


def conv_general_dilated_local(
    lhs: ArrayLike,
    rhs: ArrayLike,
    window_strides: Shape,
    padding: str | Sequence[tuple[int, int]],
    filter_shape: Shape,
    lhs_dilation: Shape | None = None,
    rhs_dilation: Shape | None = None,
    dimension_numbers: object = None,
    precision: object = None,
) -> Array:
    """Same signature and values as `jax.lax.conv_general_dilated_local`, with the rules of
    `conv_local` (hand-written, every order).

    lax's layout: rhs has the output-feature dim O, the input-feature dim I holding
    ``C_in * prod(filter_shape)`` in the order ``(c, filter offsets)`` with the offsets
    row-major in the order the spatial characters appear in ``rhs_spec``, and its spatial dims
    are the *output* positions. Every setting is lax's: window strides, padding pairs, the
    filter shape and the dilations belong to the spatial dims in ``rhs_spec``'s order. The
    call is turned into channels-first form at the edge (transposes of lhs, rhs and the
    result) and computed by the primitives of this module (lhs dilation: zeros between the
    input cells inside the patch gather).

    Args:
      lhs: rank n+2 input. rhs: rank n+2 unshared kernels (see above).
      window_strides: n ints. padding: "VALID", "SAME", "SAME_LOWER" or n (lo, hi) pairs
        (negative crops). filter_shape: n ints, the window.
      lhs_dilation, rhs_dilation: n ints or None.
      dimension_numbers: as in lax (default ("NCH..", "OIH..", "NCH..")).
      precision: as in lax (a single precision or a pair: the second is used for the
        product with rhs, the first has no effect: the patches are copied, not multiplied).
    Returns:
      the output, rank n+2, in ``dimension_numbers``' output layout.

    Example:
      >>> import jax.numpy as jnp
      >>> lhs = jnp.ones((1, 2, 4, 4)); rhs = jnp.ones((5, 2 * 3 * 3, 2, 2))
      >>> conv_general_dilated_local(lhs, rhs, (1, 1), "VALID", (3, 3)).shape
      (1, 5, 2, 2)
    """
    fn = "conv_general_dilated_local"
    v.check_inexact(fn, "lhs", lhs)
    v.check_inexact(fn, "rhs", rhs)
    v.check_same_dtype(fn, lhs=lhs, rhs=rhs)
    if lhs.ndim != rhs.ndim or lhs.ndim < 3:
        v.fail(fn, "rhs.shape", tuple(rhs.shape),
               f"must have the rank of lhs (={tuple(lhs.shape)}), which must be >= 3")  # fmt: skip
    nd = lhs.ndim - 2
    filt = v.int_tuple(fn, "filter_shape", filter_shape, nd)
    try:
        dn = lax.conv_dimension_numbers(lhs.shape, (1, 1, *filt), dimension_numbers)
    except (TypeError, ValueError) as e:
        v.fail(fn, "dimension_numbers", dimension_numbers, f"is invalid: {e}".split("\n")[0])
    lhs_spec, rhs_spec, out_spec = dn
    strides = v.int_tuple(fn, "window_strides", window_strides, nd)
    lhs_dil = v.int_tuple(fn, "lhs_dilation", 1 if lhs_dilation is None else lhs_dilation, nd)
    rhs_dil = v.int_tuple(fn, "rhs_dilation", 1 if rhs_dilation is None else rhs_dilation, nd)
    size = tuple(lhs.shape[a] for a in lhs_spec[2:])
    pads = _lax_padding(fn, padding, size, filt, strides, lhs_dil, rhs_dil)
    prec, _ = v.precision_and_type(fn, precision, None)
    if isinstance(prec, tuple):
        prec = prec[1]
    geo = Patches("channels_first", size, filt, strides, rhs_dil, lhs_dil, pads)
    if any(e < k for e, k in zip(geo.extent, [(k - 1) * d + 1 for k, d in zip(filt, rhs_dil)])):
        v.fail(fn, "filter_shape", filt,
               f"has a window (dilated by {rhs_dil}) larger than the padded input "
               f"(extent {geo.extent})")  # fmt: skip
    cin, K = lhs.shape[lhs_spec[1]], geo.taps
    cout, rin = rhs.shape[rhs_spec[0]], rhs.shape[rhs_spec[1]]
    o_rhs = tuple(rhs.shape[a] for a in rhs_spec[2:])
    if rin != cin * K or o_rhs != geo.out:
        v.fail(fn, "rhs.shape", tuple(rhs.shape),
               f"must have C_in * prod(filter_shape) (={cin} * {K}) input features and the "
               f"output's spatial shape {geo.out} (in rhs_spec's order)")  # fmt: skip
    cfg = Local(geo, 1, prec)

    def run(lhs, rhs):
        x = lhs.transpose(lhs_spec)  # (N, C, *n) in rhs_spec's spatial order
        w = rhs.transpose(rhs_spec).reshape(1, cout, cin, K, *geo.out)
        y = local_p.bind(name(x, "conv_local", "x"), name(w, "conv_local", "w"), cfg=cfg)
        inv = [0] * y.ndim
        for i, a in enumerate(out_spec):
            inv[a] = i
        return y.transpose(inv)

    out = [None] * lhs.ndim
    out[out_spec[0]] = (0, lhs_spec[0])
    return auto_partitioned(run, lhs, rhs, out=out, batch=())


def _lax_padding(fn, padding, size, filt, strides, lhs_dil, rhs_dil):
    """lax's (lo, hi) pairs: "VALID"/"SAME"/"SAME_LOWER" on the dilated input and window, or
    the caller's n pairs (negative crops)."""
    nd = len(size)
    if isinstance(padding, str):
        if padding.upper() not in ("VALID", "SAME", "SAME_LOWER"):
            v.fail(fn, "padding", padding, "must be 'VALID', 'SAME', 'SAME_LOWER' or pairs")
        if any(l > 1 for l in lhs_dil):
            v.fail(fn, "padding", padding,
                   f"must be explicit (lo, hi) pairs when `lhs_dilation` (={lhs_dil}) is > 1 "
                   "(as in lax)")  # fmt: skip
        in_sp = [(n - 1) * l + 1 if n else 0 for n, l in zip(size, lhs_dil)]
        k_eff = [(k - 1) * d + 1 for k, d in zip(filt, rhs_dil)]
        pairs = lax.padtype_to_pads(in_sp, k_eff, strides, padding.upper())
        return tuple((int(lo), int(hi)) for lo, hi in pairs)
    if (
        not isinstance(padding, Sequence)
        or len(padding) != nd
        or any(not isinstance(p, Sequence) or len(p) != 2 for p in padding)
    ):
        v.fail(fn, "padding", padding, f"must be a string or {nd} (lo, hi) pairs")
    return tuple((v.as_int(fn, "padding", lo), v.as_int(fn, "padding", hi)) for lo, hi in padding)


# --------------------------------------------------------------------------- the computations


def _dot(a, b, contract, batch, cfg: Local, out_dtype):
    """dot_general with float32 accumulation for 16-bit operands, the result in `out_dtype`."""
    acc = accumulation(out_dtype)
    out = lax.dot_general(a, b, (contract, batch), precision=cfg.precision,
                          preferred_element_type=acc)  # fmt: skip
    return out.astype(out_dtype)


def _grouped(a, G):
    """(G N, ...) -> (G, N, ...)."""
    return a.reshape(G, a.shape[0] // G, *a.shape[1:])


def _local(x, w, *, cfg: Local):
    """y[n, p, o] = sum_{m, c} P[n, p, m, c] w[p, m, c, o] (per group)."""
    geo, G, D = cfg.geo, cfg.groups, cfg.geo.nd
    dtype = widest(x, w)
    P = _grouped(patches(x.astype(dtype), geo), G)
    sp = tuple(range(2, 2 + D))
    if geo.layout == "channels_last":  # P (G, N, *o, K, C), w (G, *o, K, C, O)
        ws = tuple(range(1, 1 + D))
        y = _dot(P, w, ((2 + D, 3 + D), (1 + D, 2 + D)), ((0, *sp), (0, *ws)), cfg, dtype)
        y = jnp.moveaxis(y, 1 + D, 1)  # (G, *o, N, O) -> (G, N, *o, O)
    else:  # P (G, N, C, K, *o), w (G, O, C, K, *o)
        ps, ws = tuple(range(4, 4 + D)), tuple(range(4, 4 + D))
        y = _dot(P, w, ((2, 3), (2, 3)), ((0, *ps), (0, *ws)), cfg, dtype)
        y = jnp.moveaxis(y, (1 + D, 2 + D), (1, 2))  # (G, *o, N, O) -> (G, N, O, *o)
    return y.reshape(y.shape[0] * y.shape[1], *y.shape[2:])


def _input_grad(w, g, *, cfg: Local):
    """dx = fold(dP), dP[n, p, m, c] = sum_o g[n, p, o] w[p, m, c, o]."""
    geo, G, D = cfg.geo, cfg.groups, cfg.geo.nd
    dtype = widest(w, g)
    gg = _grouped(g.astype(dtype), G)
    if geo.layout == "channels_last":  # g (G, N, *o, O), w (G, *o, K, C, O)
        dp = _dot(gg, w, ((2 + D,), (3 + D,)), ((0, *range(2, 2 + D)), (0, *range(1, 1 + D))),
                  cfg, dtype)  # fmt: skip
        dp = jnp.moveaxis(dp, 1 + D, 1)  # (G, *o, N, K, C) -> (G, N, *o, K, C)
    else:  # g (G, N, O, *o), w (G, O, C, K, *o)
        dp = _dot(gg, w, ((2,), (1,)), ((0, *range(3, 3 + D)), (0, *range(4, 4 + D))),
                  cfg, dtype)  # fmt: skip
        dp = jnp.moveaxis(dp, tuple(range(1, 1 + D)), tuple(range(4, 4 + D)))  # (G,N,C,K,*o)
    dp = dp.reshape(dp.shape[0] * dp.shape[1], *dp.shape[2:])
    return place(dp, geo, dtype)


def _weight_grad(x, g, *, cfg: Local):
    """dw[p, m, c, o] = sum_n P[n, p, m, c] g[n, p, o] (per group)."""
    geo, G, D = cfg.geo, cfg.groups, cfg.geo.nd
    dtype = widest(x, g)
    P = _grouped(patches(x.astype(dtype), geo), G)
    gg = _grouped(g.astype(dtype), G)
    if geo.layout == "channels_last":  # P (G, N, *o, K, C), g (G, N, *o, O)
        sp = tuple(range(2, 2 + D))
        return _dot(P, gg, ((1,), (1,)), ((0, *sp), (0, *sp)), cfg, dtype)  # (G, *o, K, C, O)
    # P (G, N, C, K, *o), g (G, N, O, *o) -> (G, *o, C, K, O) -> (G, O, C, K, *o)
    dw = _dot(P, gg, ((1,), (1,)), ((0, *range(4, 4 + D)), (0, *range(3, 3 + D))), cfg, dtype)
    return jnp.moveaxis(dw, (1 + D, 2 + D, 3 + D), (2, 3, 1))


local_p = primitive("conv_local", _local, ("cfg",))
input_grad_p = primitive("conv_local_input_grad", _input_grad, ("cfg",))
weight_grad_p = primitive("conv_local_weight_grad", _weight_grad, ("cfg",))


def _adjoint(prim, cfg, undefined, a, b):
    """``prim(a, b)`` for the transpose w.r.t. `undefined`, in its dtype."""
    return prim.bind(a, b, cfg=cfg).astype(undefined.aval.dtype)


ad.defbilinear(
    local_p,
    lambda ct, x, w, *, cfg: _adjoint(input_grad_p, cfg, x, w, ct),
    lambda ct, x, w, *, cfg: _adjoint(weight_grad_p, cfg, w, x, ct),
)
ad.defbilinear(
    input_grad_p,
    lambda c, w, g, *, cfg: _adjoint(weight_grad_p, cfg, w, c, g),
    lambda c, w, g, *, cfg: _adjoint(local_p, cfg, g, c, w),
)
ad.defbilinear(
    weight_grad_p,
    lambda c, x, g, *, cfg: _adjoint(input_grad_p, cfg, x, c, g),
    lambda c, x, g, *, cfg: _adjoint(local_p, cfg, g, x, c),
)


# --------------------------------------------------------------------------- vmap


def _into_batch(a, size, G):
    """(B, G N, ...) -> (G B N, ...): the mapped copies join the batch inside each group."""
    a = a.reshape(size, G, a.shape[1] // G, *a.shape[2:])
    a = jnp.swapaxes(a, 0, 1)
    return a.reshape(G * size * a.shape[2], *a.shape[3:])


def _out_of_batch(a, size, G):
    """The inverse of `_into_batch`: (G B N, ...) -> (B, G N, ...)."""
    a = a.reshape(G, size, a.shape[0] // (G * size), *a.shape[1:])
    a = jnp.swapaxes(a, 0, 1)
    return a.reshape(size, G * a.shape[2], *a.shape[3:])


def _as_groups(args, dims):
    """Both operands mapped (an unmapped one broadcast), the copies as B G groups."""
    (a, b), size = moved(args, dims)
    a, b = (
        t if d is not None else jnp.broadcast_to(t, (size, *t.shape)) for t, d in zip((a, b), dims)
    )  # noqa
    return [t.reshape(t.shape[0] * t.shape[1], *t.shape[2:]) for t in (a, b)], size


def _batch_with_kernel(prim, act: int):
    """vmap of local(x, w) (`act` = 0) or input_grad(w, g) (`act` = 1): with the kernel
    unmapped, the copies of the activation join each group's batch; else B G groups."""

    def rule(args, dims, *, cfg):
        G = cfg.groups
        if dims[1 - act] is None:
            args, size = moved(args, dims)
            args = list(args)
            args[act] = _into_batch(args[act], size, G)
            return _out_of_batch(prim.bind(*args, cfg=cfg), size, G), 0
        ops, size = _as_groups(args, dims)
        out = prim.bind(*ops, cfg=cfg._replace(groups=size * G))
        return out.reshape(size, out.shape[0] // size, *out.shape[1:]), 0

    return rule


def _batch_weight_grad(args, dims, *, cfg):
    ops, size = _as_groups(args, dims)
    dw = weight_grad_p.bind(*ops, cfg=cfg._replace(groups=size * cfg.groups))
    return dw.reshape(size, cfg.groups, *dw.shape[1:]), 0


batching_rule(local_p, _batch_with_kernel(local_p, 0))
batching_rule(input_grad_p, _batch_with_kernel(input_grad_p, 1))
batching_rule(weight_grad_p, _batch_weight_grad)
