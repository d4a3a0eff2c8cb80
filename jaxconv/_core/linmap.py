"""Rules shared by the tangent maps of the nonlinear ops: linear maps with array coefficients.

A nonlinear op's tangent is a linear map of the input tangent whose coefficients come from the
primal: the winner offsets of max pooling, relu's mask, lp pooling's x and y, the softmax of a
cross-entropy. Each such map is a primitive linear in its tangent argument(s)
(`_core.primitive.linear`: its JVP in the tangent is itself, its transpose the hand-written backward
pass); `coefficients` adds the JVP in the coefficients, for the float ones that a second
derivative moves (integer and boolean coefficients have none). `fold_rule` batches a pooling
map by folding the mapped axis into the batch axis N (axis 0 in both layouts), every argument
alike, unmapped ones broadcast first (every result alike for a primitive with several).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.interpreters import ad

from jaxconv._core.primitive import fold_batch, is_zero, moved, unfold_batch


def nonzero(t) -> bool:
    """Whether the tangent `t` can be nonzero (symbolic zeros and float0 tangents cannot)."""
    return not is_zero(t) and jnp.dtype(t.dtype) != jax.dtypes.float0


def instantiate(t, p):
    """The tangent `t` of the primal `p` as an array (zeros for a symbolic zero)."""
    return t if nonzero(t) else jnp.zeros(jnp.shape(p), jnp.result_type(p))


def coefficients(prim, linear_args: tuple[int, ...], jvp):
    """Extend the JVP of `prim` (registered by `_core.primitive.linear`) to its coefficients:
    ``jvp(primals, tangents, **params)`` is the tangent contributed by the tangents of the
    arguments outside `linear_args`, called only when one of them is nonzero."""
    base = ad.primitive_jvps[prim]

    def rule(primals, tangents, **params):
        out, t = base(primals, tangents, **params)
        moving = [i for i, d in enumerate(tangents) if i not in linear_args and nonzero(d)]
        if not moving:
            return out, t
        extra = jvp(primals, tangents, **params)
        return out, extra if is_zero(t) else ad.add_tangents(t, extra)

    ad.primitive_jvps[prim] = rule


def broadcast_moved(args, dims):
    """`args` with the mapped axis first, the unmapped ones broadcast to it; the mapped size."""
    args, size = moved(args, dims)
    out = [
        a if d is not None else jnp.broadcast_to(a, (size, *a.shape)) for a, d in zip(args, dims)
    ]
    return out, size


def fold_rule(prim):
    """Batching rule of `prim`: the mapped axis folded into axis 0 (N) of every argument, the
    same primitive bound again, its output unfolded. Registered by `_core.primitive.linear`,
    so it only sees a mapped size > 0: an empty mapped axis folded into N loses N (unfolding
    divides by the size), and `batching_rule` answers it with an empty result instead."""

    def rule(args, dims, **params):
        args, size = broadcast_moved(args, dims)
        out = prim.bind(*(fold_batch(a) for a in args), **params)
        if prim.multiple_results:
            return [unfold_batch(o, size) for o in out], [0] * len(out)
        return unfold_batch(out, size), 0

    return rule
