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
  (`jax.interpreters.batching`), binding the same primitive again; registered through
  `batching_rule`, which answers a mapped axis of size 0 itself (`empty_batch`).

`cpu_lowering` gives a primitive a CPU lowering of its own (a native kernel where one is
chosen) and evaluates it eagerly under `jax.jit` of the primitive itself, so that eager calls
lower as inside a jit rather than evaluating `impl`.

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


def cpu_lowering(prim, rule, static: tuple[str, ...]):
    """Register `rule` as `prim`'s lowering on CPU, and `prim`'s eager evaluation as the
    primitive itself bound under `jax.jit` (`static`: its params), so that an eager call lowers
    as inside a jit (the native kernel included) rather than evaluating the pure `impl`."""
    mlir.register_lowering(prim, rule, platform="cpu")
    prim.def_impl(jax.jit(partial(_bind, prim), static_argnames=static))


def _bind(prim, *args, **params):
    return prim.bind(*args, **params)


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
    **params)`` is the batching rule for a mapped axis of size > 0 (size 0: an empty result
    from abstract evaluation, `batching_rule`)."""

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
    batching_rule(prim, batch)


def mapped_size(args, dims) -> int:
    """The size of the mapped axis of a batching rule's `args` (`dims`: None where unmapped)."""
    return next(a.shape[d] for a, d in zip(args, dims) if d is not None)


def empty_batch(prim, args, dims, **params):
    """vmap of `prim` over a mapped axis of size 0: zero copies of the unbatched result.

    Its shape and dtype come from abstract evaluation of the unbatched primitive (the mapped
    axes dropped), so nothing runs; the mapped axis is the output's axis 0."""
    avals = [
        jax.ShapeDtypeStruct(a.shape if d is None else a.shape[:d] + a.shape[d + 1 :], a.dtype)
        for a, d in zip(args, dims)
    ]
    out = jax.eval_shape(partial(prim.bind, **params), *avals)
    if prim.multiple_results:
        return [jnp.zeros((0, *o.shape), o.dtype) for o in out], [0] * len(out)
    return jnp.zeros((0, *out.shape), out.dtype), 0


def batching_rule(prim, rule):
    """Register ``rule(args, dims, **params)`` as `prim`'s batching rule for a mapped axis of
    size > 0; a mapped axis of size 0 gets `empty_batch` instead.

    The rules fold the mapped axis into a batch, channel or group axis, and unfold the result
    by dividing that axis by the mapped size; with size 0 the folded axis is empty, its
    original extent is lost (a modulo or division by zero) and a group count would be 0, which
    no convolution accepts. An empty batch has an empty result whose shape and dtype
    abstract evaluation of the unbatched primitive gives, so no rule needs to handle it."""

    def batch(args, dims, **params):
        if mapped_size(args, dims) == 0:
            return empty_batch(prim, args, dims, **params)
        return rule(args, dims, **params)

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
