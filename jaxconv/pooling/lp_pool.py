"""Power-average pooling with our own JVP and VJP: `lp_pool`.

With S the window sum (`reduce.window_sum`, zero padding) and y = S(x^p)^(1/p)::

    t_y = y^(1-p) · S(x^(p-1) · t)            (0 where y = 0)   the tangent: forward mode
    dx  = x^(p-1) · S^T(g · y^(1-p))          (0 where y = 0)   its transpose: the backward

`lp_pool` is a `jax.custom_jvp` whose rule returns the tangent as the primitive `tangent_p`,
linear in t with x and y as coefficient arguments (the residuals, named for remat policies);
its registered transpose `backward_p` is the hand-written backward, and the transpose of that
is `tangent_p` again. A second derivative also moves the coefficients: that part of the JVP is
the same formula, differentiated by JAX's elementwise rules around the window sums as linear
primitives (`pooling.avg_pool.window_sums` and its adjoint). L2-norm pooling (seed 001) is p = 2.
"""

from __future__ import annotations

import numbers
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._core import validate as v
from jaxconv._core.dtypes import accumulation
from jaxconv._core.linmap import coefficients, fold_rule, instantiate
from jaxconv._core.primitive import linear, primitive
from jaxconv._core.residuals import name
from jaxconv._core.sharding import auto_partitioned
from jaxconv._core.types import Array, ArrayLike, Ints, Padding
from jaxconv._core.window import Window, pool_window
from jaxconv.pooling.avg_pool import window_sums, window_sums_adjoint
from jaxconv.pooling.reduce import window_sum, window_sum_adjoint


def lp_pool(
    x: ArrayLike,
    p: float,
    window: Ints,
    *,
    stride: Ints = None,
    padding: Padding = "VALID",
    ceil_mode: bool = False,
    layout: str = "channels_last",
) -> Array:
    r"""Power-average pooling (PyTorch's LPPool): y_i = (sum over window i of x^p)^(1/p).

    .. math:: y_i = \Big(\sum_m \tilde x_{i s + m}^{\,p}\Big)^{1/p}, \qquad
              \frac{\partial E}{\partial x_t} = x_t^{\,p-1} \sum_{i \ni t} g_i\, y_i^{\,1-p}

    p = 2 is the L2-norm pooling of seed 001 (for real x; like PyTorch there is no abs, so odd
    or fractional p with negative inputs give what x^p gives). The gradient of a window whose
    sum is 0 is 0 (the norm's subgradient at the origin), not NaN.

    Args:
      x: (N, *spatial, C) ("channels_last") or (N, C, *spatial) ("channels_first"), floating.
      p: a finite number > 0 (static). window, stride, padding, ceil_mode: as `avg_pool`
        (padding cells are zeros and add nothing; with ceil_mode the partial last window sums
        only what it covers -- PyTorch instead rescales its clipped average by k1*k2).
    Returns:
      y: (N, *out, C) or (N, C, *out).

    Example:
      >>> import jax.numpy as jnp
      >>> lp_pool(jnp.array([3., 4.]).reshape(1, 2, 1), 2, 2).ravel().tolist()
      [5.0]
    """
    fn = "lp_pool"
    win = pool_window(fn, x, window, stride, padding, 1, ceil_mode, layout)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < float(p) < np.inf:
        v.fail(
            fn,
            "p",
            p,
            "must be a finite number > 0",
            TypeError if not isinstance(p, numbers.Real) else ValueError,
        )
    return auto_partitioned(lambda x: _lp_pool(x, win, float(p)), x)


def _pow(a, p: float):
    return lax.integer_pow(a, int(p)) if p.is_integer() else jnp.power(a, p)


@partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _lp_pool(x, win: Window, p: float):
    xa = x.astype(accumulation(x.dtype) or x.dtype)  # float32 sums for 16-bit inputs
    total = window_sum(_pow(xa, p), win)
    return (jnp.sqrt(total) if p == 2 else jnp.power(total, 1 / p)).astype(x.dtype)


@_lp_pool.defjvp
def _lp_pool_jvp(win, p, primals, tangents):
    (x,), (t,) = primals, tangents
    y = _lp_pool(x, win, p)  # a second derivative runs this rule again
    x_res, y_res = name(x, "lp_pool", "x"), name(y, "lp_pool", "y")
    return y, tangent_p.bind(t, x_res, y_res, win=win, p=p)


def _tangent(t, x, y, win, p, sums):
    """y^(1-p) · S(x^(p-1) · t), 0 where y = 0; `sums` computes S."""
    acc = accumulation(t.dtype) or t.dtype
    x, y = x.astype(acc), y.astype(acc)
    zero = y == 0
    u = sums(t.astype(acc) * _pow(x, p - 1), win)
    return jnp.where(zero, jnp.zeros((), acc), u * _pow(jnp.where(zero, 1, y), 1 - p)).astype(
        t.dtype
    )


def _backward(g, x, y, win, p, adjoint):
    """x^(p-1) · S^T(g · y^(1-p)) (0 where y = 0); `adjoint(t, win, x_shape)` computes S^T."""
    acc = accumulation(g.dtype) or g.dtype
    x, y = (a.astype(acc) for a in (x, y))
    zero = y == 0
    t = jnp.where(zero, jnp.zeros((), acc), g.astype(acc) * _pow(jnp.where(zero, 1, y), 1 - p))
    return (adjoint(t, win, x.shape) * _pow(x, p - 1)).astype(g.dtype)


tangent_p = primitive(
    "lp_pool_tangent",
    lambda t, x, y, *, win, p: _tangent(t, x, y, win, p, window_sum),
    ("win", "p"),
)
backward_p = primitive(
    "lp_pool_backward",
    lambda g, x, y, *, win, p: _backward(g, x, y, win, p, window_sum_adjoint),
    ("win", "p"),
)


def _coefficient_jvp(formula):
    """The JVP of a map in its coefficients x, y: `formula` differentiated by JAX, its window
    sums being our linear primitives."""

    def jvp(primals, tangents, *, win, p):
        a, x, y = primals
        _, dx, dy = tangents
        f = lambda x, y: formula(a, x, y, win, p)  # noqa: E731
        return jax.jvp(f, (x, y), (instantiate(dx, x), instantiate(dy, y)))[1]

    return jvp


def _sums_adjoint(t, win, x_shape):
    return window_sums_adjoint(t, win)


linear(
    tangent_p,
    (0,),
    lambda ct, t, x, y, *, win, p: (backward_p.bind(ct, x, y, win=win, p=p),),
    fold_rule(tangent_p),
)
linear(
    backward_p,
    (0,),
    lambda ct, g, x, y, *, win, p: (tangent_p.bind(ct, x, y, win=win, p=p),),
    fold_rule(backward_p),
)
coefficients(
    tangent_p,
    (0,),
    _coefficient_jvp(lambda t, x, y, win, p: _tangent(t, x, y, win, p, window_sums)),
)
coefficients(
    backward_p,
    (0,),
    _coefficient_jvp(lambda g, x, y, win, p: _backward(g, x, y, win, p, _sums_adjoint)),
)
