"""Non-zero padding modes ("reflect", "replicate", "circular") as a gather and its transpose.

Padding one spatial axis of size n by (lo, hi) with these modes reads the padded array at
``x[idx[j]]`` for a static index map idx of length lo + n + hi. The VJP of that gather folds the
gradient of every padded cell back onto the input cell it copied (a scatter-add); the fold's own
VJP is the gather again, so both directions and every order of derivative use these two rules.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._sharding import explicit_sharding


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
    return _gather(x, index, tuple(spatial_axes))


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _gather(x, index, axes):
    for idx, a in zip(index, axes):
        x = jnp.take(x, np.asarray(idx), axis=a)
    return x


def _gather_fwd(x, index, axes):
    return _gather(x, index, axes), x.shape


def _gather_bwd(index, axes, x_shape, g):
    return (_fold(g, index, axes, tuple(x_shape[a] for a in axes)),)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _fold(g, index, axes, sizes):
    """Transpose of `_gather`: add every padded cell's gradient onto its source cell."""
    for idx, a, n in zip(index, axes, sizes):
        shape = list(g.shape)
        shape[a] = n
        where = (slice(None),) * a + (np.asarray(idx),)
        g = jnp.zeros(shape, g.dtype).at[where].add(g, out_sharding=explicit_sharding(g))
    return g


def _fold_fwd(g, index, axes, sizes):
    return _fold(g, index, axes, sizes), None


def _fold_bwd(index, axes, sizes, _, ct):
    return (_gather(ct, index, axes),)


_gather.defvjp(_gather_fwd, _gather_bwd)
_fold.defvjp(_fold_fwd, _fold_bwd)
