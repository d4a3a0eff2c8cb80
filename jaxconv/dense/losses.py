"""Losses with our own JVPs and VJPs: `mse_loss` (seed 001 Eq. 9) and `softmax_cross_entropy`.

    mse:  E = 1/2 sum_p (t_p - y_p)^2  (/ P for "mean")      dE/dy = (y - t),  dE/dt = (t - y)
    xent: E = 1/N sum_n (logsumexp(z_n) - z_n[l_n])           dE/dz = (softmax(z) - onehot(l)) / N

Both gradients are scaled by the incoming cotangent g (1 under `jax.grad`). Each loss is a
`jax.custom_jvp` whose tangent is a linear primitive of `dense.losses` (mse: sum (y - t)(y' - t')
/ P, xent: sum (softmax - onehot) · z' / N) with the residual as a coefficient; its registered
transpose is the gradient above, so reverse mode runs the hand-written backward.

The losses' linear maps: their tangents (to a scalar) and transposes (the backward passes).

`nb` leading axes of every operand are a batch (vmap); the rest is summed. With c = `count`::

    dot(u, d)      = sum u · d / c          scale(g, d) = d · (g / c)          (bilinear)
    xent(z', p, l) = sum_{n,k} (p - onehot(l)) · z' / N
    xent_t(g, p, l) = (p - onehot(l)) · (g / N)        (N = the rows of p)

`dot` is the tangent of mse_loss (u = y' - t', d = y - t, c = 1 or the element count); its
transpose in u is `scale`, seed 001's dE/dy = (y - t) scaled by the cotangent, and the
transpose of `scale` in g is `dot` again; both are bilinear, so a second derivative that moves
d runs on them too. `xent` is the tangent of softmax_cross_entropy, linear in z' with the
softmax p and the labels l as coefficients (the residuals); its transpose is `xent_t`, the
hand-written backward, and vice versa; moving p gives ``dot(z', p', N)`` and
``scale(g, p', N)``. 16-bit operands sum in float32. Batching: the mapped axis first, a batch
axis more.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.interpreters import ad

from jaxconv._core import validate as v
from jaxconv._core.dtypes import accumulation
from jaxconv._core.linmap import broadcast_moved, coefficients
from jaxconv._core.primitive import batching_rule, linear, primitive
from jaxconv._core.residuals import name
from jaxconv._core.types import Array, ArrayLike


def mse_loss(
    y: ArrayLike,
    t: ArrayLike,
    reduction: str = "sum",
) -> Array:
    r"""Half the squared error (seed 001, Jefkine Eq. 9): E = 1/2 sum_p (t_p - y_p)^2.

    .. math:: E = \frac{1}{2} \sum_p (t_p - y_p)^2, \qquad
              \frac{\partial E}{\partial y} = y - t, \quad \frac{\partial E}{\partial t} = t - y

    Args:
      y: predictions, any shape, floating dtype.
      t: targets, y's shape and dtype (also differentiable).
      reduction: "sum" (Eq. 9 as written) or "mean" (divided by the element count P).
    Returns:
      a scalar of y's dtype. The residual is the difference y - t.

    Example:
      >>> import jax.numpy as jnp
      >>> float(mse_loss(jnp.array([1., 2.]), jnp.array([0., 0.])))
      2.5
    """
    fn = "mse_loss"
    v.check_choice(fn, "reduction", reduction, v.REDUCTIONS)
    v.check_float(fn, "y", y)
    v.check_float(fn, "t", t)
    v.check_same_dtype(fn, y=y, t=t)
    v.check_shape(fn, "t", t.shape, y.shape, "the shape of y")
    return _mse_loss(y, t, 1 if reduction == "sum" else max(y.size, 1))


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _mse_loss(y, t, count: int):
    d = y - t
    acc = accumulation(d.dtype) or d.dtype  # float32 sums for 16-bit inputs
    return (0.5 * jnp.sum(jnp.square(d.astype(acc))) / count).astype(d.dtype)


def _mse_loss_jvp(count, primals, tangents):
    """E' = sum (y - t) · y' / count - sum (y - t) · t' / count: `dot`, whose transpose is
    (y - t) · g / count, and -(y - t) · g / count for t (divided by -count). An argument that is
    not differentiated contributes no term (and no residual)."""
    (y, t), tangents = primals, tangents
    d = name(y - t, "mse_loss", "diff")
    terms = [
        dot(tan, d, c)
        for tan, c in zip(tangents, (count, -count))
        if not isinstance(tan, SymbolicZero)
    ]
    return _mse_loss(y, t, count), terms[0] if len(terms) == 1 else ad.add_tangents(*terms)


_mse_loss.defjvp(_mse_loss_jvp, symbolic_zeros=True)


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
) -> Array:
    r"""Mean negative log-likelihood of integer labels under softmax(logits), numerically stable.

    .. math:: E = \frac{1}{N} \sum_n \Big(\log \sum_k e^{z_{nk}} - z_{n l_n}\Big), \qquad
              \frac{\partial E}{\partial z} = \frac{\mathrm{softmax}(z) - \mathrm{onehot}(l)}{N}

    Args:
      logits: (N, K) floating.
      labels: (N,) integers in [0, K); a label outside gives a NaN loss (checked values cannot
        raise under jit). Labels get no gradient.
    Returns:
      a scalar of logits' dtype. The residual is softmax(z) (N, K) and the labels.

    The log-sum-exp subtracts the row maximum first, so large logits do not overflow.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(softmax_cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))), 6)  # log 4
      1.386294
    """
    fn = "softmax_cross_entropy"
    v.check_float(fn, "logits", logits)
    v.check_int_dtype(fn, "labels", labels)
    if logits.ndim != 2:
        v.fail(fn, "logits.shape", tuple(logits.shape), "must be (N, K)")
    v.check_nonempty(fn, "logits", logits.shape, (1,), "class (K >= 1)")
    v.check_shape(fn, "labels", labels.shape, logits.shape[:1], "one label per row of logits")
    return _softmax_cross_entropy(logits, labels)


@jax.custom_jvp
def _softmax_cross_entropy(logits, labels):
    dtype = logits.dtype
    logp = _log_softmax(logits)
    picked = jnp.sum(jnp.where(_onehot(labels, logp.shape), logp, 0), axis=1)
    valid = (labels >= 0) & (labels < logp.shape[1])
    return jnp.mean(jnp.where(valid, -picked, jnp.nan)).astype(dtype)


@_softmax_cross_entropy.defjvp
def _softmax_cross_entropy_jvp(primals, tangents):
    """E' = sum (softmax(z) - onehot(l)) · z' / N: `xent`, whose transpose is the backward."""
    (logits, labels), (t, _) = primals, tangents
    probs = name(_softmax(logits), "softmax_cross_entropy", "probs")
    return _softmax_cross_entropy(logits, labels), xent(t, probs, labels)


def _onehot(labels, shape):
    return lax.broadcasted_iota(labels.dtype, shape, 1) == labels[:, None]


def _log_softmax(logits):
    """log softmax along axis 1, in float32 for 16-bit logits."""
    logits = logits.astype(accumulation(logits.dtype) or logits.dtype)
    z = logits - lax.stop_gradient(jnp.max(logits, axis=1, keepdims=True))
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=1, keepdims=True))


@jax.custom_jvp
def _softmax(logits):
    return jnp.exp(_log_softmax(logits)).astype(logits.dtype)


@_softmax.defjvp
def _softmax_jvp(primals, tangents):
    """p' = p · (z' - sum_k p z'): only a second derivative of the loss moves p."""
    (logits,), (t,) = primals, tangents
    p = _softmax(logits)
    return p, p * (t - jnp.sum(p * t, axis=1, keepdims=True))


def _rest(a, nb):
    return tuple(range(nb, a.ndim))


def _dot(u, d, *, count, nb):
    acc = accumulation(d.dtype) or d.dtype
    total = jnp.sum(u.astype(acc) * d.astype(acc), axis=_rest(d, nb))
    return (total / count).astype(d.dtype)


def _scale(g, d, *, count, nb):
    return d * (g / count).reshape(g.shape + (1,) * (d.ndim - nb))


dot_p = primitive("loss_dot", _dot, ("count", "nb"))
scale_p = primitive("loss_scale", _scale, ("count", "nb"))
ad.defbilinear(
    dot_p,
    lambda ct, u, d, **kw: scale_p.bind(ct, d, **kw),
    lambda ct, u, d, **kw: scale_p.bind(ct, u, **kw),
)
ad.defbilinear(
    scale_p,
    lambda c, g, d, **kw: dot_p.bind(c, d, **kw),
    lambda c, g, d, **kw: scale_p.bind(g, c, **kw),
)


def _batched(prim):
    """The mapped axis first (unmapped operands broadcast), one more batch axis. Registered
    through `batching_rule` (directly or by `linear`): a mapped axis of size 0 gets an empty
    result from abstract evaluation, as every jaxconv primitive does."""

    def rule(args, dims, *, nb, **params):
        args, _ = broadcast_moved(args, dims)
        return prim.bind(*args, nb=nb + 1, **params), 0

    return rule


batching_rule(dot_p, _batched(dot_p))
batching_rule(scale_p, _batched(scale_p))


def dot(u, d, count: int):
    return dot_p.bind(u, d, count=count, nb=0)


# --------------------------------------------------------------------------- cross-entropy


def _minus_onehot(p, labels, nb):
    hot = lax.broadcasted_iota(labels.dtype, p.shape, nb + 1) == labels[..., None]
    return p - hot.astype(p.dtype)


def _xent(z, p, labels, *, nb):
    acc = accumulation(p.dtype) or p.dtype
    total = jnp.sum(_minus_onehot(p, labels, nb).astype(acc) * z.astype(acc), axis=_rest(p, nb))
    return (total / p.shape[nb]).astype(p.dtype)


def _xent_t(g, p, labels, *, nb):
    scale = (g / p.shape[nb]).reshape(g.shape + (1, 1))
    return _minus_onehot(p, labels, nb) * scale


xent_p = primitive("softmax_cross_entropy_tangent", _xent, ("nb",))
xent_t_p = primitive("softmax_cross_entropy_backward", _xent_t, ("nb",))
linear(
    xent_p,
    (0,),
    lambda ct, z, p, labels, *, nb: (xent_t_p.bind(ct, p, labels, nb=nb),),
    _batched(xent_p),
)
linear(
    xent_t_p,
    (0,),
    lambda ct, g, p, labels, *, nb: (xent_p.bind(ct, p, labels, nb=nb),),
    _batched(xent_t_p),
)


def _rows(p, nb):
    return p.shape[nb]


coefficients(
    xent_p,
    (0,),
    lambda prim, tan, *, nb: dot_p.bind(prim[0], tan[1], count=_rows(prim[1], nb), nb=nb),
)
coefficients(
    xent_t_p,
    (0,),
    lambda prim, tan, *, nb: scale_p.bind(prim[0], tan[1], count=_rows(prim[1], nb), nb=nb),
)


def xent(z, p, labels):
    return xent_p.bind(z, p, labels, nb=0)
