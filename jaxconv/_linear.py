"""Fully connected layer with our own rules: backpropagation is the transposed matrix product.

Seed 002: "traditional backpropagation is transposed matrix multiplication". With x of shape
(..., in) flattened to (B, in)::

    y  = x @ w + b          (B, out)
    dx = g @ w^T            (B, in)
    dw = x^T @ g            (in, out)   -- summed over every leading dim of x
    db = sum_B g            (out,)

x @ w is a bilinear primitive whose transposes are the two products above (`_matmul.py`: JVP
``x' @ w + x @ w'``, every order of derivative on the same three maps); the bias is the linear
primitive of the conv family (`_backward.add_bias`).
"""

from __future__ import annotations

from jaxconv import _validate as v
from jaxconv._backward import add_bias
from jaxconv._matmul import matmul
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
    return _linear(x, w, bias)


def _linear(x, w, b):
    """x @ w (the bilinear `_matmul.matmul`, x and w its residuals) plus the bias
    (`_backward.add_bias`: db = g summed over every leading axis)."""
    if x.ndim == 1:  # one row: the bias rules want (rows, out)
        return _linear(x.reshape(1, -1), w, b).reshape(w.shape[1])
    return add_bias(matmul(name(x, "linear", "x"), name(w, "linear", "w")), b)
