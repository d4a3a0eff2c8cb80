"""How jaxconv's ops enter JAX: primitives that carry the rules written here.

A jaxconv primitive is a pure jnp/lax function ``impl(*arrays, **params)`` (params static and
hashable) made into a `jax.extend.core.Primitive`, so that JAX differentiates and batches it
only by the rules its op module registers beside its forward:

- evaluation: `impl` under `jax.jit` (compiled once per params);
- lowering: `impl` traced into the surrounding computation (`mlir.lower_fun`): XLA sees
  exactly the lax ops it is made of, as before;
- abstract evaluation: `jax.eval_shape(impl)`, so output shapes, dtypes and (on explicit
  meshes) shardings are impl's own;
- differentiation: a JVP rule (forward mode) and a transpose rule (reverse mode: the
  backward pass; JAX's reverse mode is the transpose of the linearised JVP), through
  `jax.interpreters.ad`;
- batching: a rule that folds the mapped axis into an axis the op already handles
  (`jax.interpreters.batching`), binding the same primitive again.

`linear` registers the rules of a primitive that is linear in some of its arguments (the
others, e.g. integer winner offsets, are constants): its JVP is itself applied to the tangents,
its transpose is the given adjoint.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir


def primitive(name: str, impl, static: tuple[str, ...], multiple_results: bool = False):
    """A primitive ``jaxconv_<name>`` computing ``impl(*arrays, **params)``; `static` names
    its params."""
    prim = Primitive(f"jaxconv_{name}")
    prim.multiple_results = multiple_results
    prim.def_impl(jax.jit(impl, static_argnames=static))

    def abstract(*avals, **params):
        out = jax.eval_shape(partial(impl, **params), *avals)
        return jax.tree.map(_aval, out)

    prim.def_abstract_eval(abstract)
    mlir.register_lowering(prim, mlir.lower_fun(impl, multiple_results=multiple_results))
    return prim


def _aval(s):
    sharding = getattr(s, "sharding", None)
    if sharding is None:
        return jax.core.ShapedArray(s.shape, s.dtype)
    return jax.core.ShapedArray(s.shape, s.dtype, sharding=sharding)


def is_zero(t) -> bool:
    return type(t) is ad.Zero


def zeros_like_aval(t):
    """A zero array for the (symbolic zero) tangent or cotangent `t`."""
    return jnp.zeros(t.aval.shape, t.aval.dtype)


def linear(prim, linear_args: tuple[int, ...], transpose, batch):
    """Rules of `prim`, linear (jointly) in the arguments `linear_args`, constant in the rest.

    ``transpose(ct, *args, **params)`` returns one cotangent per argument of `linear_args`
    (args there are `ad.UndefinedPrimal`s, the others their values); ``batch(args, dims,
    **params)`` is the batching rule."""

    def jvp(primals, tangents, **params):
        out = prim.bind(*primals, **params)
        if all(is_zero(tangents[i]) for i in linear_args):
            return out, ad.Zero(jax.typeof(out).to_tangent_aval())
        args = [
            (zeros_like_aval(t) if is_zero(t) else t) if i in linear_args else p
            for i, (p, t) in enumerate(zip(primals, tangents))
        ]
        return out, prim.bind(*args, **params)

    def transpose_rule(ct, *args, **params):
        if is_zero(ct):
            return [ad.Zero(a.aval) if i in linear_args else None for i, a in enumerate(args)]
        cts = iter(transpose(ct, *args, **params))
        return [next(cts) if i in linear_args else None for i in range(len(args))]

    ad.primitive_jvps[prim] = jvp
    ad.primitive_transposes[prim] = transpose_rule
    batching.primitive_batchers[prim] = batch


def moved(args, dims):
    """`args` with their mapped axis moved to the front (None: not mapped, left as is), and
    the mapped size."""
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    out = [a if d is None else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims)]
    return out, size


def fold_batch(a):
    """(B, N, ...) -> (B N, ...): a mapped axis folded into the batch axis."""
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])


def unfold_batch(a, size: int):
    """(B N, ...) -> (B, N, ...)."""
    return a.reshape(size, a.shape[0] // size, *a.shape[1:])
