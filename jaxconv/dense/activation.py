"""ReLU with our own JVP and VJP, whose residual is a boolean mask.

Seed 002: "the ReLU backpropagation ... passes gradient to a previous layer only if the original
input value was positive"; seed 001 Eq. 20-21: the input gradient of a layer is multiplied by
f'(x), which for f = max(0, x) is the indicator [x > 0]::

    y = max(x, 0)          dx = g * [x > 0]          (relu'(0) = 0, as in PyTorch and JAX)

`relu` is a `jax.custom_jvp` whose tangent is ``t * [x > 0]``, the primitive `masked_p` with the
mask as a constant argument; that map is diagonal, so it is its own transpose: reverse mode
runs the backward above, and only the mask is saved: 1 byte per element, not the 2-8 bytes of
the float input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxconv._core import validate as v
from jaxconv._core.linmap import broadcast_moved
from jaxconv._core.primitive import linear, primitive
from jaxconv._core.residuals import name
from jaxconv._core.types import Array, ArrayLike


def relu(
    x: ArrayLike,
) -> Array:
    r"""Rectified linear unit, elementwise: y = max(x, 0).

    .. math:: y = \max(x, 0), \qquad \frac{\partial E}{\partial x} = g \cdot [x > 0]

    Args:
      x: any shape, floating dtype.
    Returns:
      y: x's shape and dtype. NaN stays NaN; its gradient (like that of 0 and of negative
      values) is 0.

    The residual is the boolean mask ``x > 0`` (seed 002: pass the gradient only where the
    input was positive; relu'(0) = 0).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> relu(jnp.array([-1., 0., 2.])).tolist()
      [0.0, 0.0, 2.0]
      >>> jax.grad(lambda x: relu(x).sum())(jnp.array([-1., 0., 2.])).tolist()
      [0.0, 0.0, 1.0]
    """
    v.check_float("relu", "x", x)
    return _relu(x)


@jax.custom_jvp
def _relu(x):
    return jnp.maximum(x, jnp.zeros((), x.dtype))


@_relu.defjvp
def _relu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    mask = name(x > 0, "relu", "mask")
    return _relu(x), masked_p.bind(t, mask)  # a second derivative runs this rule again


def _masked(t, mask):
    return jnp.where(mask, t, jnp.zeros((), t.dtype))


def _masked_batch(args, dims):
    """Elementwise: the mapped axis first in both (the unmapped one broadcast)."""
    (t, mask), _ = broadcast_moved(args, dims)
    return masked_p.bind(t, mask), 0


masked_p = primitive("relu_mask", _masked, ())  # t · [x > 0]: the tangent, and its own transpose
linear(masked_p, (0,), lambda ct, t, mask: (masked_p.bind(ct, mask),), _masked_batch)
