"""Fully connected layer with our own rules: backpropagation is the transposed matrix product.

Seed 002: "traditional backpropagation is transposed matrix multiplication". With x of shape
(..., in) flattened to (B, in)::

    y  = x @ w + b          (B, out)
    dx = g @ w^T            (B, in)
    dw = x^T @ g            (in, out)   -- summed over every leading dim of x
    db = sum_B g            (out,)

x @ w is a bilinear primitive whose transposes are the two products above (`dense/linear.py`: JVP
``x' @ w + x @ w'``, every order of derivative on the same three maps); the bias is the linear
primitive of the conv family (`convolution.rules.add_bias`).

The dense layer's three bilinear maps, as primitives closed under transposition.

With x (..., in), w (in, out) and g (..., out) (seed 002: "traditional backpropagation is
transposed matrix multiplication")::

    matmul(x, w)  = x @ w        (..., out)
    dx(g, w)      = g @ w^T      (..., in)
    dw(x, g)      = x^T @ g      (in, out)   -- summed over every leading dim of x

Transposes: matmul w.r.t. x is ``dx(ct, w)``, w.r.t. w ``dw(x, ct)`` (the hand-written backward
of `linear`); dx w.r.t. g is ``matmul(c, w)``, w.r.t. w ``dw(c, g)``; dw w.r.t. x is
``dx(g, c)``, w.r.t. g ``matmul(x, c)``. Each is bilinear (`ad.defbilinear`), so its JVP is
itself on one tangent at a time: forward mode, reverse mode and every higher derivative run on
these three. 16-bit operands accumulate in float32. `nb` leading axes of every operand are a
batch of independent products (vmap over w): a mapped axis of one operand alone joins its
leading or its feature axis, of several the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.interpreters import ad
from jax.sharding import NamedSharding, PartitionSpec

from jaxconv._core import validate as v
from jaxconv._core.bias import add_bias
from jaxconv._core.dtypes import accumulation
from jaxconv._core.primitive import batching_rule, is_zero, moved, primitive
from jaxconv._core.residuals import name
from jaxconv._core.types import Array, ArrayLike


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
    """x @ w (the bilinear `dense.linear.matmul`, x and w its residuals) plus the bias
    (`convolution.rules.add_bias`: db = g summed over every leading axis)."""
    if x.ndim == 1:  # one row: the bias rules want (rows, out)
        return _linear(x.reshape(1, -1), w, b).reshape(w.shape[1])
    return add_bias(matmul(name(x, "linear", "x"), name(w, "linear", "w")), b)


def _batch(nb):
    return tuple(range(nb)), tuple(range(nb))


def _matmul(x, w, *, nb):
    """Contract the last axis of x with the first (non-batch) axis of w."""
    dims = (((x.ndim - 1,), (nb,)), _batch(nb))
    return lax.dot_general(x, w, dims, preferred_element_type=accumulation(x.dtype)).astype(x.dtype)


def _dx(g, w, *, nb, sharding):
    dims = (((g.ndim - 1,), (nb + 1,)), _batch(nb))
    acc = accumulation(g.dtype)
    return lax.dot_general(g, w, dims, out_sharding=sharding, preferred_element_type=acc).astype(
        w.dtype
    )


def _dw(x, g, *, nb, sharding):
    lead = tuple(range(nb, x.ndim - 1))
    acc = accumulation(g.dtype)
    return lax.dot_general(
        x, g, ((lead, lead), _batch(nb)), out_sharding=sharding, preferred_element_type=acc
    ).astype(x.dtype)


matmul_p = primitive("linear", _matmul, ("nb",))
dx_p = primitive("linear_dx", _dx, ("nb", "sharding"))
dw_p = primitive("linear_dw", _dw, ("nb", "sharding"))


def sharding_of(aval):
    """The sharding of an operand (replicated if it carries none) when a mesh is in use, else
    None: the output sharding of its gradient (as JAX's own dot_general transpose does, so
    explicitly sharded inputs keep their shardings)."""
    sharding = getattr(aval, "sharding", None)
    if sharding is not None and not sharding.mesh.empty:
        return sharding
    mesh = jax.sharding.get_abstract_mesh()
    return None if mesh.empty else NamedSharding(mesh, PartitionSpec(*[None] * aval.ndim))


def _aval(a):
    """The aval of an operand, also of an undefined primal of a transpose rule."""
    return a.aval if hasattr(a, "aval") else jax.typeof(a)


def matmul(x, w, nb=0):
    return matmul_p.bind(x, w, nb=nb)


def dx(g, w, nb, like):
    """g @ w^T, laid out as `like` (the x it is the gradient of)."""
    return dx_p.bind(g, w, nb=nb, sharding=sharding_of(_aval(like)))


def dw(x, g, nb, like):
    """x^T @ g, laid out as `like` (the w it is the gradient of)."""
    return dw_p.bind(x, g, nb=nb, sharding=sharding_of(_aval(like)))


ad.defbilinear(
    matmul_p,
    lambda ct, x, w, *, nb: dx(ct, w, nb, x),
    lambda ct, x, w, *, nb: dw(x, ct, nb, w),
)


def _matmul_jvp(primals, tangents, *, nb):
    """x @ w' + x' @ w, the term reading x first: reverse mode's residuals are (x, w)."""
    (x, w), (tx, tw) = primals, tangents
    terms = [matmul(a, b, nb) for a, b, t in ((x, tw, tw), (tx, w, tx)) if not is_zero(t)]
    out = matmul(x, w, nb)
    if not terms:
        return out, ad.Zero(jax.typeof(out).to_tangent_aval())
    return out, terms[0] if len(terms) == 1 else ad.add_tangents(*terms)


ad.primitive_jvps[matmul_p] = _matmul_jvp
ad.defbilinear(
    dx_p,
    lambda c, g, w, *, nb, sharding: matmul(c, w, nb),
    lambda c, g, w, *, nb, sharding: dw(c, g, nb, w),
)
ad.defbilinear(
    dw_p,
    lambda c, x, g, *, nb, sharding: dx(g, c, nb, x),
    lambda c, x, g, *, nb, sharding: matmul(x, c, nb),
)


# --------------------------------------------------------------------------- batching


def _split_last(a, size):
    """(..., size * n) -> (..., size, n)."""
    return a.reshape(*a.shape[:-1], size, a.shape[-1] // size)


def _merge(a, axis):
    """Axes (axis, axis + 1) merged into one."""
    return a.reshape(*a.shape[:axis], a.shape[axis] * a.shape[axis + 1], *a.shape[axis + 2 :])


def _rule(prim, fold):
    """Both operands mapped: one more batch axis. One alone: `fold(a, b, which, size, nb)`,
    the mapped axis of operand `which` first, returns (output, its mapped axis). A mapped axis
    of size 0 gets an empty result from abstract evaluation instead (`batching_rule`): merged
    into a feature axis it would leave an empty axis that `_split_last` divides by 0."""

    def rule(args, dims, *, nb, **params):
        (a, b), size = moved(args, dims)
        if dims[0] is not None and dims[1] is not None:
            a, b = (jnp.moveaxis(t, 0, nb) for t in (a, b))  # batch axes stay in front
            return prim.bind(a, b, nb=nb + 1, **{k: None for k in params}), nb
        which = 0 if dims[0] is not None else 1
        bind = lambda a, b: prim.bind(a, b, nb=nb, **{k: None for k in params})  # noqa: E731
        return fold(bind, a, b, which, size, nb)

    batching_rule(prim, rule)


def _fold_matmul(bind, x, w, which, size, nb):
    if which == 0:  # a leading axis of x
        return bind(jnp.moveaxis(x, 0, nb), w), nb
    w = _merge(jnp.moveaxis(w, 0, w.ndim - 2), w.ndim - 2)  # (*B, in, size * out)
    y = bind(x, w)
    return _split_last(y, size), y.ndim - 1


def _fold_dx(bind, g, w, which, size, nb):
    if which == 0:
        return bind(jnp.moveaxis(g, 0, nb), w), nb
    w = _merge(jnp.moveaxis(w, 0, nb), nb)  # (*B, size * in, out)
    d = bind(g, w)
    return _split_last(d, size), d.ndim - 1


def _fold_dw(bind, x, g, which, size, nb):
    if which == 0:  # x's features: (*B, ..., size * in) -> dw (*B, size * in, out)
        x = _merge(jnp.moveaxis(x, 0, x.ndim - 2), x.ndim - 2)
        d = bind(x, g)
        return d.reshape(*d.shape[:nb], size, -1, d.shape[-1]), nb
    g = _merge(jnp.moveaxis(g, 0, g.ndim - 2), g.ndim - 2)
    d = bind(x, g)
    return _split_last(d, size), nb + 1


_rule(matmul_p, _fold_matmul)
_rule(dx_p, _fold_dx)
_rule(dw_p, _fold_dw)
