"""The drop-in's general convolution (every lax option) as a primitive with the rules written
here: bilinear, so its JVP is itself on the tangents; its transposes are `_lax_rules`'
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

import jax.numpy as jnp
from jax.interpreters import ad, batching

from jaxconv._lax_rules import lax_conv, transpose_lhs, transpose_rhs
from jaxconv._primitive import primitive
from jaxconv._spec import ConvParams


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


batching.primitive_batchers[general_p] = _batch
