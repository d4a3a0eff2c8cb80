"""Non-zero padding modes ("reflect", "replicate", "circular") as a gather and its transpose.

Padding one spatial axis of size n by (lo, hi) with these modes reads the padded array at
``x[idx[j]]`` for a static index map idx of length lo + n + hi. The VJP of that gather folds the
gradient of every padded cell back onto the input cell it copied (a scatter-add); the fold's own
VJP is the gather again, so both directions and every order of derivative use these two rules
(the linear primitives `pad_gather_p` and `pad_fold_p`, registered as "pad_gather" and
"pad_fold").
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxconv._core.primitive import linear, moved, primitive
from jaxconv._core.sharding import explicit_sharding


def mode_index(n: int, lo: int, hi: int, mode: str) -> tuple[int, ...]:
    """Source index of every cell of an axis of size n padded by (lo, hi) with `mode`."""
    i = np.arange(-lo, n + hi)
    if mode == "reflect":  # ... x2 x1 | x0 x1 ... x_{n-1} | x_{n-2} ... (edge not repeated)
        i = np.abs(i)
        i = np.where(i >= n, 2 * (n - 1) - i, i)
    elif mode == "replicate":
        i = np.clip(i, 0, n - 1)
    elif mode == "circular":
        i = np.mod(i, n)
    else:
        raise ValueError(f"unknown padding mode {mode!r}")
    return tuple(int(j) for j in i)


def pad(x, pads, mode: str, spatial_axes):
    """Pad `x` along `spatial_axes` by `pads` ((lo, hi) each) with `mode`."""
    index = tuple(mode_index(x.shape[a], lo, hi, mode) for a, (lo, hi) in zip(spatial_axes, pads))
    return _pad_gather(x, index, tuple(spatial_axes))


def _pad_gather_impl(x, *, index, axes):
    for idx, a in zip(index, axes):
        x = jnp.take(x, np.asarray(idx), axis=a)
    return x


def _fold_impl(g, *, index, axes, sizes):
    """Transpose of the gather: add every padded cell's gradient onto its source cell."""
    for idx, a, n in zip(index, axes, sizes):
        shape = list(g.shape)
        shape[a] = n
        where = (slice(None),) * a + (np.asarray(idx),)
        g = jnp.zeros(shape, g.dtype).at[where].add(g, out_sharding=explicit_sharding(g))
    return g


pad_gather_p = primitive("pad_gather", _pad_gather_impl, ("index", "axes"))
pad_fold_p = primitive("pad_fold", _fold_impl, ("index", "axes", "sizes"))


def _pad_gather(x, index, axes):
    return pad_gather_p.bind(x, index=index, axes=axes)


def _pad_gather_t(ct, x, *, index, axes):
    sizes = tuple(x.aval.shape[a] for a in axes)
    return (pad_fold_p.bind(ct, index=index, axes=axes, sizes=sizes),)


def _fold_t(ct, g, *, index, axes, sizes):
    return (pad_gather_p.bind(ct, index=index, axes=axes),)


def _shifted(prim):
    """Batching: the mapped axis first, every padded axis one further."""

    def rule(args, dims, *, axes, **params):
        (a,), _ = moved(args, dims)
        return prim.bind(a, axes=tuple(ax + 1 for ax in axes), **params), 0

    return rule


linear(pad_gather_p, (0,), _pad_gather_t, _shifted(pad_gather_p))
linear(pad_fold_p, (0,), _fold_t, _shifted(pad_fold_p))
