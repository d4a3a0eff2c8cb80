"""Argument normalisation and validation for every public jaxconv function.

All user-facing checks live here so that the messages read alike:
``conv: `groups` (=4) must divide the input channels (=6)``. Everything raises while tracing
(shapes and static settings only), never inside XLA.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

LAYOUTS = ("channels_last", "channels_first")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("VALID", "SAME", "FULL", "CAUSAL")


def show(value):
    """A short, plain repr of a user value: numpy scalars and arrays as Python numbers/lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 16:
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return type(value)(show(x) for x in value)
    if hasattr(value, "aval"):  # a tracer: say what it is, not its internals
        return f"traced {value.aval.str_short()}"
    return value


def wording(fn: str, arg: str, value, message: str) -> str:
    """The message "fn: `arg` (=value) message", the value's repr cut to 80 characters."""
    text = repr(show(value))
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{fn}: `{arg}` (={text}) {message}"


def fail(fn: str, arg: str, value, message: str, exc=ValueError):
    """Raise ``exc`` worded as "fn: `arg` (=value) message"."""
    raise exc(wording(fn, arg, value, message))


def check_array(fn: str, arg: str, x) -> None:
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        fail(fn, arg, type(x).__name__, "must be an array (jax.Array or numpy.ndarray)", TypeError)


def check_float(fn: str, arg: str, x) -> None:
    """Real floating arrays only (pooling, activations, losses: ops that compare or order)."""
    check_array(fn, arg, x)
    dtype = jnp.dtype(x.dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        fail(
            fn,
            arg + ".dtype",
            str(dtype),
            "must be a real floating dtype (float16, bfloat16, float32 or float64): "
            "complex numbers have no order",
            TypeError,
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        fail(
            fn,
            arg + ".dtype",
            str(dtype),
            "must be a floating dtype (float16, bfloat16, float32 or float64)",
            TypeError,
        )


def check_real(fn: str, arg: str, x) -> None:
    """Real numbers or booleans: floating, integer or bool arrays (ops that only compare,
    like lax's max/min `reduce_window`); not complex."""
    check_array(fn, arg, x)
    dtype = jnp.dtype(x.dtype)
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        if dtype != jnp.bool_:
            fail(
                fn,
                arg + ".dtype",
                str(dtype),
                "must be a real floating, integer or bool dtype (complex numbers have no order)",
                TypeError,
            )


def check_inexact(fn: str, arg: str, x) -> None:
    """Floating or complex arrays (the convolution family: linear maps over R or C)."""
    check_array(fn, arg, x)
    dtype = jnp.dtype(x.dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        fail(
            fn,
            arg + ".dtype",
            str(dtype),
            "must be a floating or complex dtype (float16, bfloat16, float32, float64, "
            "complex64 or complex128)",
            TypeError,
        )


def check_same_dtype(fn: str, **arrays) -> None:
    """Every array given (None skipped) has the dtype of the first one."""
    named = [(k, a) for k, a in arrays.items() if a is not None]
    first, want = named[0][0], jnp.dtype(named[0][1].dtype)
    for name, a in named[1:]:
        if jnp.dtype(a.dtype) != want:
            fail(
                fn,
                name + ".dtype",
                str(jnp.dtype(a.dtype)),
                f"must equal `{first}.dtype` (={str(want)!r})",
                TypeError,
            )


def precision_and_type(fn: str, precision, preferred_element_type):
    """Validate lax's `precision` and `preferred_element_type`; return hashable forms."""

    def one(p):
        if p is None or isinstance(p, lax.Precision):
            return p
        try:
            return lax.Precision(p)
        except (ValueError, TypeError, KeyError):
            fail(
                fn,
                "precision",
                precision,
                "must be None, a jax.lax.Precision, one of "
                "'default', 'high', 'highest', or a pair of those",
            )

    if isinstance(precision, (tuple, list)):
        if len(precision) != 2:
            fail(fn, "precision", precision, "must be a single precision or a pair")
        precision = tuple(one(p) for p in precision)
    elif not isinstance(precision, lax.DotAlgorithmPreset):
        precision = one(precision)
    if preferred_element_type is None:
        return precision, None
    try:
        pet = np.dtype(preferred_element_type)
    except TypeError:
        fail(fn, "preferred_element_type", preferred_element_type, "must be a dtype", TypeError)
    if not jnp.issubdtype(pet, jnp.inexact):
        fail(
            fn, "preferred_element_type", str(pet), "must be a floating or complex dtype", TypeError
        )
    return precision, pet


def check_pet_width(fn: str, preferred_element_type, x) -> None:
    """lax's rule: a floating `preferred_element_type` is not narrower than the operands'
    dtype (other bad values are reported by `precision_and_type`)."""
    if preferred_element_type is None or not hasattr(x, "dtype"):
        return
    try:
        pet = np.dtype(preferred_element_type)
    except TypeError:
        return
    dtype = jnp.dtype(x.dtype)
    if jnp.issubdtype(pet, jnp.inexact) and pet.itemsize < np.dtype(dtype).itemsize:
        fail(
            fn,
            "preferred_element_type",
            str(pet),
            f"must not be narrower than the operands' dtype (={str(dtype)!r}), as in lax",
            TypeError,
        )


def check_choice(fn: str, arg: str, value, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        fail(fn, arg, value, f"must be one of {list(choices)}")


def as_int(fn: str, arg: str, value) -> int:
    if isinstance(value, bool):
        fail(fn, arg, value, "must be an int, not a bool", TypeError)
    try:
        out = operator.index(value)
    except TypeError:
        fail(fn, arg, value, "must be an int", TypeError)
    if not -(2**63) <= out < 2**63:  # lax and XLA index with int64
        fail(fn, arg, value, "must fit in int64")
    return out


def int_tuple(fn: str, arg: str, value, nd: int, *, minimum: int = 1) -> tuple[int, ...]:
    """An int (all dims) or one int per spatial dim -> tuple of ``nd`` ints >= ``minimum``."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != nd:
            fail(fn, arg, value, f"must have one entry per spatial dim ({nd})")
        out = tuple(as_int(fn, arg, v) for v in value)
    else:
        out = (as_int(fn, arg, value),) * nd
    if any(v < minimum for v in out):
        fail(fn, arg, value, f"must be >= {minimum} in every dim")
    return out


def check_layout(fn: str, layout) -> None:
    check_choice(fn, "layout", layout, LAYOUTS)


def spatial_rank(fn: str, x, arg: str = "x", min_ndim: int = 3) -> int:
    if x.ndim < min_ndim:
        fail(
            fn,
            arg + ".shape",
            tuple(x.shape),
            "must be (N, *spatial, C) or (N, C, *spatial) with at least one spatial dim",
        )
    return x.ndim - 2


def check_groups(
    fn: str, groups: int, cin: int, cout: int, cin_g: int, w_arg="w.shape", w_shape=None
) -> None:
    if groups < 1:
        fail(fn, "groups", groups, "must be >= 1")
    if cin % groups:
        fail(fn, "groups", groups, f"must divide the input channels (={cin})")
    if cout % groups:
        fail(fn, "groups", groups, f"must divide the output channels (={cout})")
    if cin // groups != cin_g:
        fail(
            fn,
            w_arg,
            w_shape,
            f"has {cin_g} input channels per group but the "
            f"input has {cin} channels and groups={groups} (expected {cin // groups})",
        )


def check_bias(fn: str, b, cout: int) -> None:
    if b is None:
        return
    if tuple(b.shape) != (cout,):
        fail(fn, "bias.shape", tuple(b.shape), f"must be ({cout},), one per output channel")


def as_np_shape(fn: str, arg: str, shape) -> tuple[int, ...]:
    try:
        return tuple(as_int(fn, arg, s) for s in shape)
    except TypeError:
        fail(fn, arg, shape, "must be a sequence of ints", TypeError)


# --- pooling ---
# Checks used by the pooling and dense families.

TIES = ("first", "last", "split")
REDUCTIONS = ("sum", "mean")


def check_bool(fn: str, arg: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):  # numpy's bool too, as `flip` takes it
        fail(fn, arg, value, "must be True or False", TypeError)


def check_int_dtype(fn: str, arg: str, x) -> None:
    check_array(fn, arg, x)
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.integer):
        fail(fn, arg + ".dtype", str(dtype), "must be an integer dtype", TypeError)


def check_shape(fn: str, arg: str, shape, expected, what: str) -> None:
    if tuple(shape) != tuple(expected):
        fail(fn, arg + ".shape", tuple(shape), f"must be {tuple(expected)} ({what})")


def check_nonempty(fn: str, arg: str, shape, axes, what: str) -> None:
    """Each of `axes` of `shape` has at least one cell (a reduction over it needs one)."""
    if any(shape[a] < 1 for a in axes):
        fail(fn, arg + ".shape", tuple(shape), f"must have at least one {what}")


def byte_size(n: int) -> str:
    """`n` bytes, short, for messages and reports: "400 B", "15.6 KiB", "300 MiB"."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            v = n / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return f"{n} B"
