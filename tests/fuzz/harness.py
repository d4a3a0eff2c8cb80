"""The fuzz harness: every public function over its whole argument space.

Each test (tests/test_fuzz_*.py) draws whole calls (`Call`: function name, positional args,
keywords) from a composite strategy (strategies*.py) that mixes consistent arguments with
edge and bad values: size-1 and size-0 dims, kernels equal to or larger than the input, large
padding, zero/negative strides, dilations and windows, int/tuple mixes, tuples of the wrong
length, unknown strings, wrong ranks, int/bool/complex arrays, non-arrays. `check` then holds
each call to one contract:

(a) **valid** -- the call returns what the plain lax/jnp computation of the documented semantics
    returns (`REFS`, refs*.py, from `lax.conv_general_dilated`, `lax.reduce_window`, jnp): same
    shape, same dtype, values within 1e-12 relative in float64 (1e-5 in float32); where marked
    cheap, one VJP is taken as well and compared with JAX's autodiff of the reference;
(b) **rejected** -- it raises ValueError, TypeError or NotImplementedError worded
    "<fn>: `<argument>...`" with <argument> one of the function's parameters, and the same
    exception with the same message eagerly, while tracing and under `jax.jit`.

Nothing else may happen: no other exception type (no XLA error, IndexError, AssertionError...),
no call accepted that the reference has no value for (`Invalid`), and no call rejected that the
reference computes. The reference states the documented rules (docs/semantics.md); where plain lax
disagrees with them the builder says why in a comment.

Half of the examples draw good values only (`Moody`), so that many calls are valid; the other
half mix in edge and bad values. Calls hypothesis draws twice are checked once.

Cost: trace-time rejections are cheap; each valid configuration is one compile (ours and the
reference, forward and VJP, in one executable) at XLA backend optimisation level 0, which
compiles ~3x faster than the default and changes no value checked here. The counts per function
are printed by the last test (``pytest -s tests/test_fuzz_*.py``). Bugs found here whose fix lay
outside the validation layer are kept as regression cases in `FIXED` (test_fuzz_regressions.py).
"""

from __future__ import annotations

import inspect
import re
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np

import jaxconv
from tests.fuzz.refs import (
    Invalid,
    ref_conv,
    ref_conv_general_dilated,
    ref_conv_input_grad,
    ref_conv_transpose,
    ref_conv_weight_grad,
)
from tests.fuzz.refs_pool import (
    ref_avg_pool,
    ref_global_avg_pool,
    ref_global_max_pool,
    ref_linear,
    ref_lp_pool,
    ref_max_pool,
    ref_max_unpool,
    ref_min_pool,
    ref_mse_loss,
    ref_relu,
    ref_softmax_cross_entropy,
)
from tests.fuzz.refs_spatial import (
    ref_adaptive_avg_pool,
    ref_adaptive_max_pool,
    ref_conv_general_dilated_local,
    ref_conv_local,
    ref_fold,
    ref_fractional_max_pool,
    ref_interpolate,
    ref_pixel_shuffle,
    ref_pixel_unshuffle,
    ref_unfold,
)
from tests.fuzz.strategies import Call, describe
from tests.support.registry import NOT_OPS

# Every callable public name but the two that are no array op (tests/support/registry.NOT_OPS).
PUBLIC = [n for n in jaxconv.__all__ if callable(getattr(jaxconv, n)) and n not in NOT_OPS]
PARAMS = {name: tuple(inspect.signature(getattr(jaxconv, name)).parameters) for name in PUBLIC}
# Parameters that take arrays: traced under jit (any other argument is closed over).
# fractional_max_pool's `samples` (and `key`) are closed over: their range [0, 1) is checked
# on concrete values only (a traced sample cannot be), so they stay concrete under jit here.
ARRAY_PARAMS = {"x", "w", "bias", "y", "g", "lhs", "rhs", "indices", "t", "logits", "labels"}
ARRAY_PARAMS |= {"cols"}
ALLOWED = (ValueError, TypeError, NotImplementedError)
TOL = {"float64": 1e-12, "float32": 1e-5, "float16": 1e-2, "bfloat16": 2e-2}
FAST = {"xla_backend_optimization_level": 0}

# fn -> Counter(examples, cases, valid, rejected): filled by `check`, printed at the end of the
# session (`summary`, from the `pytest_terminal_summary` hook in tests/conftest.py).
COUNTS: dict[str, Counter] = {name: Counter() for name in PUBLIC}


REFS = {
    "conv": ref_conv,
    "conv_transpose": ref_conv_transpose,
    "conv_input_grad": ref_conv_input_grad,
    "conv_weight_grad": ref_conv_weight_grad,
    "conv_general_dilated": ref_conv_general_dilated,
    "max_pool": ref_max_pool,
    "max_unpool": ref_max_unpool,
    "min_pool": ref_min_pool,
    "interpolate": ref_interpolate,
    "adaptive_avg_pool": ref_adaptive_avg_pool,
    "adaptive_max_pool": ref_adaptive_max_pool,
    "fractional_max_pool": ref_fractional_max_pool,
    "pixel_shuffle": ref_pixel_shuffle,
    "pixel_unshuffle": ref_pixel_unshuffle,
    "unfold": ref_unfold,
    "fold": ref_fold,
    "conv_local": ref_conv_local,
    "conv_general_dilated_local": ref_conv_general_dilated_local,
    "avg_pool": ref_avg_pool,
    "lp_pool": ref_lp_pool,
    "global_avg_pool": ref_global_avg_pool,
    "global_max_pool": ref_global_max_pool,
    "relu": ref_relu,
    "linear": ref_linear,
    "mse_loss": ref_mse_loss,
    "softmax_cross_entropy": ref_softmax_cross_entropy,
}


def _bind(call: Call) -> dict:
    names = PARAMS[call.fn]
    return {**dict(zip(names, call.args)), **call.kwargs}


def _traced(call: Call):
    """(arrays, rebuild): the array arguments to trace, and a map back to (args, kwargs)."""
    names = PARAMS[call.fn]
    slots = [("a", i, v) for i, v in enumerate(call.args)] + [
        ("k", k, v) for k, v in call.kwargs.items()
    ]
    pick = [
        s
        for s in slots
        if (names[s[1]] if s[0] == "a" else s[1]) in ARRAY_PARAMS
        and isinstance(s[2], (np.ndarray, jax.Array))
    ]
    arrays = tuple(s[2] for s in pick)

    def rebuild(traced):
        args, kwargs = list(call.args), dict(call.kwargs)
        for (kind, key, _), t in zip(pick, traced):
            if kind == "a":
                args[key] = t
            else:
                kwargs[key] = t
        return tuple(args), kwargs

    return arrays, rebuild


def _message_ok(call: Call, e: BaseException) -> None:
    msg = str(e)
    m = re.match(rf"{call.fn}: `(\w+)(\.\w+)?` ", msg)
    assert m and m[1] in PARAMS[call.fn], (
        f"{type(e).__name__} does not start with '{call.fn}: `<argument>`' (arguments: "
        f"{PARAMS[call.fn]}): {msg!r}"
    )
    assert "\n" not in msg and "Traced<" not in msg, msg
    if m[2] == ".dtype" or "must be an array" in msg:  # wrong types are TypeErrors
        assert isinstance(e, TypeError), (type(e).__name__, msg)


def _raises_same(thunk, e: BaseException, where: str) -> None:
    try:
        thunk()
    except ALLOWED as e2:
        assert (type(e2), str(e2)) == (type(e), str(e)), (where, str(e2), str(e))
    else:
        raise AssertionError(f"{where}: no exception, but tracing raised {e!r}")


def _compare(actual, expected, what: str) -> None:
    a, b = np.asarray(actual), np.asarray(expected)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert a.dtype == b.dtype, (what, a.dtype, b.dtype)
    if not jnp.issubdtype(b.dtype, jnp.inexact):
        np.testing.assert_array_equal(a, b, err_msg=what)
        return
    a, b = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{what}: NaN positions")
    fin = np.isfinite(b)
    np.testing.assert_array_equal(a[~fin & ~np.isnan(b)], b[~fin & ~np.isnan(b)], err_msg=what)
    scale = max(1.0, float(np.max(np.abs(b[fin]), initial=0.0)))
    err = float(np.max(np.abs(a[fin] - b[fin]), initial=0.0))
    tol = TOL[str(np.asarray(expected).dtype)]
    assert err <= tol * scale, f"{what}: max abs err {err:.3g} > {tol:.0e} * {scale:.3g}"


def _primary(out):
    return out[0] if isinstance(out, tuple) else out


_COMPILED: dict = {}
_PASSED: set = set()  # the calls that held the contract


def _key(call: Call, values: bool = False) -> str:
    """The call with traced arrays by shape and dtype (and a hash of their `values`), every
    other argument by value."""

    def one(name, v):
        if name in ARRAY_PARAMS and isinstance(v, (np.ndarray, jax.Array)):
            return describe(v) + (str(hash(np.asarray(v).tobytes())) if values else "")
        return repr(v.tolist() if isinstance(v, np.ndarray) else v)

    return call.fn + repr(sorted((k, one(k, v)) for k, v in _bind(call).items()))


def check(call: Call, counts: dict = COUNTS) -> None:
    """Hold one call to the contract of the module docstring."""
    fn = getattr(jaxconv, call.fn)
    counts = counts.setdefault(call.fn, Counter())
    counts["examples"] += 1
    key = _key(call, values=True)
    if key in _PASSED:
        return  # hypothesis drew this exact call already (and it passed)
    counts["cases"] += 1
    arrays, rebuild = _traced(call)

    def ours(*traced):
        args, kwargs = rebuild(traced)
        return fn(*args, **kwargs)

    try:
        ref = REFS[call.fn](**_bind(call))
        jax.eval_shape(lambda *t: ref.f(**_bind(Call(call.fn, *rebuild(t)))), *arrays)
        why = None
    except Invalid as e:
        ref, why = None, str(e)
    except (TypeError, ValueError) as e:  # plain lax/jnp refuses the call itself
        ref, why = None, f"lax/jnp: {type(e).__name__}: {str(e)[:200]}"

    try:
        shape = jax.eval_shape(ours, *arrays)
    except ALLOWED as e:
        counts["rejected"] += 1
        _message_ok(call, e)
        _raises_same(lambda: fn(*call.args, **call.kwargs), e, "eager")
        _raises_same(lambda: jax.jit(ours)(*arrays), e, "jax.jit")
        assert ref is None, f"rejected a call the reference computes: {e}"
        _PASSED.add(key)
        return
    assert ref is not None, f"accepted a call without a value ({why}): gave {shape}"
    counts["valid"] += 1

    out_aval = _primary(shape)
    diff = ref.diff if call.vjp else ()
    g = np.random.default_rng(0).standard_normal(out_aval.shape).astype(out_aval.dtype)

    def run(traced, g):
        def both(f):
            kw = _bind(Call(call.fn, *rebuild(traced)))

            out = f(**kw)
            if not diff:
                return out, ()
            primal = lambda *d: _primary(f(**{**kw, **dict(zip(diff, d))}))  # noqa: E731
            return out, jax.vjp(primal, *[kw[n] for n in diff])[1](g)

        return both(lambda **kw: fn(**kw)), both(ref.f)

    exe = (_key(call), tuple((a.shape, str(a.dtype)) for a in arrays), diff)
    if exe not in _COMPILED:  # one compile per configuration: values do not matter to it
        _COMPILED[exe] = jax.jit(run).lower(arrays, g).compile(FAST)
    (out, dx), (want, dx_ref) = _COMPILED[exe](arrays, g)
    _compare(_primary(out), want if not isinstance(want, tuple) else want[0], "output")
    if ref.post is not None:
        ref.post(_bind(call), out)
    for name, a, b in zip(diff, dx, dx_ref):
        _compare(a, b, f"VJP w.r.t. {name}")
    _PASSED.add(key)


def fuzzes(fn: str):
    """Turn a hypothesis test of `fn`'s calls into a test that also requires the draws to have
    reached both sides of the contract: at least one valid call (checked against the reference)
    and one rejected call (checked for its message)."""

    def wrap(hypothesis_test):
        def test():
            before = Counter(COUNTS[fn])
            hypothesis_test()
            drawn = COUNTS[fn] - before
            assert drawn["valid"] > 0 and drawn["rejected"] > 0, (fn, dict(drawn))

        test.__name__, test.__doc__ = hypothesis_test.__name__, hypothesis_test.__doc__
        test.__module__ = hypothesis_test.__module__
        return test

    return wrap


def summary(counts: dict | None = None) -> list[str]:
    """The table of fuzz counts per public function (`counts`, default this process's `COUNTS`;
    empty when no fuzz test ran).

    examples: calls hypothesis drew; cases: the distinct ones among them (a repeat is skipped),
    each either valid (checked against the reference) or rejected (checked for its message).
    """
    counts = COUNTS if counts is None else counts
    if not any(c["examples"] for c in counts.values()):
        return []
    head = ("examples", "cases", "valid", "rejected")
    lines = [f"{'function':22}" + "".join(f"{h:>10}" for h in head)]
    for fn in [*PUBLIC, "all"]:
        c = counts[fn] if fn != "all" else sum(counts.values(), Counter())
        lines.append(f"{fn:22}" + "".join(f"{c[h]:10d}" for h in head))
    return lines
