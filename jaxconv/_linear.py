"""Fully connected layer with an explicit VJP: backpropagation is the transposed matrix product.

Seed 002: "traditional backpropagation is transposed matrix multiplication". With x of shape
(..., in) flattened to (B, in)::

    y  = x @ w + b          (B, out)
    dx = g @ w^T            (B, in)
    dw = x^T @ g            (in, out)   -- summed over every leading dim of x
    db = sum_B g            (out,)
"""

from __future__ import annotations

from functools import partial

import jax
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from jaxconv import _validate as v
from jaxconv._dtypes import accumulation
from jaxconv._remat import name
from jaxconv._types import Array, ArrayLike


def linear(
    x: ArrayLike,
    w: ArrayLike,
    bias: ArrayLike | None = None,
) -> Array:
    r"""Affine map over the last axis: y = x @ w + bias.

    .. math:: y = x W + b, \qquad dx = g W^T, \quad dW = x^T g, \quad db = \textstyle\sum g

    Args:
      x: (..., in) -- any number of leading dims (e.g. (N, in) after flattening a CNN's maps).
      w: (in, out) (Flax's Dense kernel layout; PyTorch's Linear weight is its transpose).
      bias: (out,) or None.
    Returns:
      y: (..., out), x's dtype.

    The backward (seed 002) is two transposed matrix products and a sum, each one
    `lax.dot_general`; the residuals are x and w.

    Example:
      >>> import jax.numpy as jnp
      >>> linear(jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.zeros(4)).tolist()
      [[3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0]]
    """
    fn = "linear"
    v.check_float(fn, "x", x)
    v.check_float(fn, "w", w)
    if bias is not None:
        v.check_float(fn, "bias", bias)
    v.check_same_dtype(fn, x=x, w=w, bias=bias)
    if x.ndim < 1:
        v.fail(fn, "x.shape", tuple(x.shape), "must be (..., in) with at least one axis")
    if w.ndim != 2:
        v.fail(fn, "w.shape", tuple(w.shape), "must be (in, out)")
    if w.shape[0] != x.shape[-1]:
        v.fail(
            fn,
            "w.shape",
            tuple(w.shape),
            f"must be (in, out) with in = x.shape[-1] (={x.shape[-1]})",
        )
    v.check_bias(fn, bias, w.shape[1])
    return _linear(x, w, bias, bias is not None)


def _matmul_last(x, w):
    """Contract the last axis of x with the first axis of w."""
    y = lax.dot_general(
        x, w, (((x.ndim - 1,), (0,)), ((), ())), preferred_element_type=accumulation(x.dtype)
    )
    return y.astype(x.dtype)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _linear(x, w, b, has_bias: bool):
    return _linear_fwd(x, w, b, has_bias)[0]


def _linear_fwd(x, w, b, has_bias: bool):
    y = _matmul_last(x, w)
    if has_bias:
        y = y + b.reshape((1,) * (y.ndim - 1) + b.shape)
    return y, (name(x, "linear", "x"), name(w, "linear", "w"))


def _linear_bwd(has_bias: bool, res, g):
    x, w = res
    lead = tuple(range(x.ndim - 1))
    # g @ w^T and x^T @ g (over all leading dims), laid out as x and w are (as JAX's own
    # dot_general transpose does, so explicitly sharded inputs keep their shardings)
    acc = accumulation(g.dtype)
    dx = lax.dot_general(
        g,
        w,
        (((g.ndim - 1,), (1,)), ((), ())),
        out_sharding=_sharding(x),
        preferred_element_type=acc,
    ).astype(x.dtype)
    dw = lax.dot_general(
        x, g, ((lead, lead), ((), ())), out_sharding=_sharding(w), preferred_element_type=acc
    ).astype(w.dtype)
    db = g.sum(lead, dtype=acc).astype(g.dtype) if has_bias else None
    return dx, dw, db


_linear.defvjp(_linear_fwd, _linear_bwd)


def _sharding(a):
    """a's sharding when a mesh is in use (replicated if a itself carries none), else None."""
    sharding = jax.typeof(a).sharding
    if not sharding.mesh.empty:
        return sharding
    mesh = jax.sharding.get_abstract_mesh()
    return None if mesh.empty else NamedSharding(mesh, PartitionSpec(*[None] * a.ndim))
