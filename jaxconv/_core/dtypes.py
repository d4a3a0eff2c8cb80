"""The dtype policy: float16 and bfloat16 inputs accumulate in float32.

Every sum jaxconv computes (convolutions, matrix products, window sums, bias gradients, losses)
runs with float32 accumulation when its operands are float16 or bfloat16, and the result is cast
back to the operands' dtype; float32 and float64 compute in their own precision. An explicit
`preferred_element_type` on the conv family overrides this (results then have that dtype).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

LOW_PRECISION = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def accumulation(dtype):
    """float32 for float16/bfloat16, else None (compute in `dtype` itself)."""
    return jnp.dtype(jnp.float32) if jnp.dtype(dtype) in LOW_PRECISION else None


def widest(*arrays):
    """The common dtype of `arrays` (arrays or dtypes) by JAX's standard promotion lattice.

    jaxconv's operands share one dtype (validated); a cotangent can be wider (a wider
    `preferred_element_type`). Unifying them is a deliberate, explicit cast, so it is computed
    under "standard" promotion and holds under ``jax_numpy_dtype_promotion="strict"`` too.
    """
    dtypes = [jnp.dtype(getattr(a, "dtype", a)) for a in arrays]
    with jax.numpy_dtype_promotion("standard"):
        return functools.reduce(jnp.promote_types, dtypes)
