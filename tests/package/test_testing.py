"""`jaxconv.testing.check_rules` and its input helpers, on user-written rules.

Planted faults it must catch, each named by the check that fails: a ``custom_vjp`` backward off
by a factor of 2, a ``custom_jvp`` with a wrong tangent, a backward right at order 1 but treating
its input as a constant (``stop_gradient``: wrong at order 2 only), a primitive whose transpose
rule is not the transpose of its JVP, a primitive whose compiled lowering differs from its eager
implementation (jit), and a ``custom_vmap`` with a wrong batching rule (vmap). Correct
``custom_vjp`` / ``custom_jvp`` rules pass, against a reference and against finite differences.
Then the message's content, the options, and `random_inputs` / `without_ties` / `distinct` /
`tolerance`.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.custom_batching import custom_vmap
from jax.interpreters import ad, batching, mlir

import jaxconv.testing as jt
from jaxconv.testing import check_rules, distinct, random_inputs, tolerance, without_ties

try:
    from jax.extend.core import Primitive
except ImportError:  # pragma: no cover (older jax)
    from jax.core import Primitive

X = jnp.linspace(-2.0, 2.0, 7)


def first_line(excinfo) -> str:
    return str(excinfo.value).splitlines()[0]


def failure_lines(excinfo) -> list[str]:
    return [line for line in str(excinfo.value).splitlines() if line.startswith("- ")]


# ------------------------------------------------------------------------------ user rules


@jax.custom_vjp
def sin_vjp(x):
    return jnp.sin(x)


sin_vjp.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x),))


@jax.custom_vjp
def sin_twice(x):
    """Fault 1: the backward pass is off by a factor of 2."""
    return jnp.sin(x)


sin_twice.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (2 * g * jnp.cos(x),))


@jax.custom_vjp
def sin_frozen(x):
    """Fault 3: right at order 1; its backward treats x as a constant, so order 2 is 0."""
    return jnp.sin(x)


sin_frozen.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(jax.lax.stop_gradient(x)),))


@jax.custom_jvp
def scaled_sin(x, y):
    """Fault 2: the tangent of y is 1.5 times too large."""
    return jnp.sin(x) * y


@scaled_sin.defjvp
def _scaled_sin_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    return scaled_sin(x, y), jnp.cos(x) * y * tx + 1.5 * jnp.sin(x) * ty


@jax.custom_vjp
def softplus(x):
    return jnp.logaddexp(x, 0.0)


softplus.defvjp(lambda x: (softplus(x), x), lambda x, g: (g * jax.nn.sigmoid(x),))


@jax.custom_jvp
def logsumexp(z, w):
    """log Σ_j w_j exp(z_ij) over the last axis, with a hand-written JVP."""
    m = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    return jnp.log(jnp.sum(w * jnp.exp(z - m), axis=-1)) + m[..., 0]


@logsumexp.defjvp
def _logsumexp_jvp(primals, tangents):
    (z, w), (tz, tw) = primals, tangents
    y = logsumexp(z, w)
    p = w * jnp.exp(z - y[..., None])  # softmax weights, summing to 1
    return y, jnp.sum(p * tz, axis=-1) + jnp.sum(jnp.exp(z - y[..., None]) * tw, axis=-1)


def logsumexp_ref(z, w):
    return jnp.log(jnp.sum(w * jnp.exp(z), axis=-1))


# A primitive t -> a * t, linear in t, whose transpose rule is 2x too large: forward mode right,
# reverse mode (JAX transposes the JVP) wrong -- what the transpose identity catches alone.
scale_p = Primitive("check_rules_test_scale")
scale_p.def_impl(lambda a, t: a * t)
scale_p.def_abstract_eval(lambda a, t: t)
mlir.register_lowering(scale_p, mlir.lower_fun(lambda a, t: a * t, multiple_results=False))
ad.primitive_transposes[scale_p] = lambda ct, a, t: (None, 2 * a * ct)


@jax.custom_jvp
def sin_bad_transpose(x):
    return jnp.sin(x)


@sin_bad_transpose.defjvp
def _sin_bad_transpose_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.sin(x), scale_p.bind(jnp.cos(x), t)


# A primitive whose eager implementation and compiled lowering differ: what jit catches.
drift_p = Primitive("check_rules_test_drift")
drift_p.def_impl(jnp.sin)
drift_p.def_abstract_eval(lambda x: x)
mlir.register_lowering(drift_p, mlir.lower_fun(lambda x: 1.5 * jnp.sin(x), multiple_results=False))
batching.defvectorized(drift_p)


# A function whose batching rule is wrong: what vmap catches.
@custom_vmap
def sin_bad_vmap(x):
    return jnp.sin(x)


@sin_bad_vmap.def_vmap
def _sin_bad_vmap_rule(axis_size, in_batched, x):
    return 2.0 * jnp.sin(x), in_batched[0]


# ------------------------------------------------------------------------------ planted faults


@pytest.mark.parametrize("reference", [jnp.sin, None], ids=["reference", "finite-differences"])
def test_catches_a_backward_off_by_a_factor(reference):
    with pytest.raises(AssertionError) as e:
        check_rules(sin_twice, X, reference=reference, modes=("rev",))
    assert "the first: reverse mode, order 1, argument 0 (`x`)" in first_line(e)


@pytest.mark.parametrize(
    "reference", [lambda x, y: jnp.sin(x) * y, None], ids=["reference", "finite-differences"]
)
def test_catches_a_wrong_tangent(reference):
    with pytest.raises(AssertionError) as e:
        check_rules(scaled_sin, X, X + 1.0, reference=reference)
    # the forward check is reported first, localized to the argument whose tangent is wrong
    assert "the first: forward mode, order 1, argument 1 (`y`)" in first_line(e)
    assert any("reverse mode, order 1, argument 1 (`y`)" in line for line in failure_lines(e))


@pytest.mark.parametrize("reference", [jnp.sin, None], ids=["reference", "finite-differences"])
def test_catches_a_rule_wrong_only_at_order_2(reference):
    check_rules(sin_frozen, X, reference=reference, modes=("rev",), order=1)
    with pytest.raises(AssertionError) as e:
        check_rules(sin_frozen, X, reference=reference, modes=("rev",), order=2)
    assert "1 check failed; the first: reverse mode, order 2, argument 0 (`x`)" in first_line(e)
    assert "hint: reverse mode passes at order 1 and fails at order 2" in str(e.value)


@pytest.mark.parametrize("reference", [jnp.sin, None], ids=["reference", "finite-differences"])
def test_catches_a_transpose_rule_that_is_not_the_jvps_transpose(reference):
    with pytest.raises(AssertionError) as e:
        check_rules(sin_bad_transpose, X, reference=reference, order=1, vmap=False)
    lines = failure_lines(e)
    assert lines[0].startswith("- reverse mode, order 1, argument 0 (`x`)")
    assert lines[-1].startswith("- transpose identity, order 1, argument 0 (`x`)")
    assert not any(line.startswith("- forward mode") for line in lines)


def test_catches_a_lowering_that_differs_from_eager():
    with pytest.raises(AssertionError) as e:
        check_rules(drift_p.bind, X, order=0)
    assert first_line(e).endswith("1 check failed; the first: jit, output")
    assert "(jit " in str(e.value) and "eager " in str(e.value)


def test_catches_a_wrong_batching_rule():
    with pytest.raises(AssertionError) as e:
        check_rules(sin_bad_vmap, X, reference=jnp.sin, modes=("fwd",))
    assert "the first: vmap, output, copy 0" in first_line(e)
    assert all(line.startswith("- vmap") for line in failure_lines(e))


# ------------------------------------------------------------------------------ correct rules


@pytest.mark.parametrize("reference", [jax.nn.softplus, None], ids=["reference", "fd"])
def test_passes_a_correct_custom_vjp(reference):
    check_rules(softplus, X, reference=reference, modes=("rev",))


@pytest.mark.parametrize("reference", [logsumexp_ref, None], ids=["reference", "fd"])
def test_passes_a_correct_custom_jvp(reference):
    z, w = random_inputs(0, (3, 5), (3, 5))
    check_rules(logsumexp, z, jnp.abs(w) + 0.5, reference=reference, order=2)


def test_passes_at_third_order():
    check_rules(jnp.tanh, X, reference=lambda x: jnp.sinh(x) / jnp.cosh(x), order=3)


def test_pytrees_and_integer_arguments():
    """Pytree arguments and outputs; integer leaves held constant (labels), named by path."""

    def loss(params, x, labels):
        logits = x @ params["w"] + params["b"][None, :]
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)
        return {"loss": jnp.mean(nll), "argmax": jnp.argmax(logits, axis=1)}

    w, b, x = random_inputs(3, (4, 3), (3,), (5, 4))
    labels = jnp.asarray([0, 2, 1, 1, 0])
    params = {"w": w, "b": b}
    check_rules(loss, params, x, labels, reference=loss)

    @jax.custom_vjp
    def bad_loss(params, x, labels):
        return loss(params, x, labels)

    def bwd(res, g):
        params, x, labels = res
        grads = jax.vjp(lambda p, x: loss(p, x, labels), params, x)[1](g)
        return ({"w": grads[0]["w"], "b": 3 * grads[0]["b"]}, grads[1], None)

    bad_loss.defvjp(lambda p, x, lab: (loss(p, x, lab), (p, x, lab)), bwd)
    with pytest.raises(AssertionError) as e:
        check_rules(bad_loss, params, x, labels, reference=loss, modes=("rev",))
    assert "the first: reverse mode, order 1, argument 0 (`params`)['b']" in first_line(e)


def test_complex_arguments():
    """A non-holomorphic function: the transpose identity holds in JAX's convention."""
    f = lambda z: z * jnp.conj(z) + z**2
    z = jnp.asarray([1 + 2j, 0.5 - 1j, -0.3 + 0.1j])
    check_rules(f, z, reference=lambda z: (jnp.abs(z) ** 2).astype(z.dtype) + z * z)
    check_rules(f, z)


def test_float32_uses_float32_tolerances():
    x = X.astype(jnp.float32)
    check_rules(softplus, x, reference=jax.nn.softplus, modes=("rev",))
    with pytest.raises(AssertionError) as e:
        check_rules(sin_twice, x, reference=jnp.sin, modes=("rev",))
    assert "(rtol 1e-05, atol 1e-06: float32 defaults)" in str(e.value)


def test_jit_false_runs_everything_eagerly():
    """Without jit, the primitive's eager implementation alone runs: nothing to tell apart."""
    check_rules(drift_p.bind, X, order=0, jit=False)
    check_rules(sin_vjp, X, reference=jnp.sin, modes=("rev",), jit=False)


# ------------------------------------------------------------------------------ the message


def test_message_names_check_argument_order_and_numbers():
    with pytest.raises(AssertionError) as e:
        check_rules(sin_twice, X, reference=jnp.sin, modes=("rev",), seed=3)
    msg = str(e.value)
    assert msg.startswith("check_rules(sin_twice): 2 checks failed")
    assert "seed=3" in msg
    line, detail = msg.split("\n- ")[1].split("\n", 1)
    assert line.startswith("reverse mode, order 1, argument 0 (`x`) [f's VJP J^T c")
    m = re.search(
        r"max abs error (\S+) at index \((\d+),\) \(f (\S+), reference (\S+)\); max relative "
        r"error (\S+) \(relative to max\(1, max\|reference\|\) = (\S+)\); tolerance atol \+ rtol "
        r"\* \S+ = (\S+) \(rtol 1e-10, atol 1e-12: float64 defaults\)",
        detail,
    )
    assert m, detail
    err, index, actual, expected, rel, scale, bound = m.groups()
    assert float(actual) == pytest.approx(2 * float(expected), rel=1e-5)  # the planted factor
    assert float(err) == pytest.approx(abs(float(actual) - float(expected)), rel=1e-2)
    assert float(rel) == pytest.approx(float(err) / float(scale), rel=1e-2)
    assert float(bound) == pytest.approx(1e-12 + 1e-10 * float(scale), rel=1e-2)
    # f = 2 x reference everywhere, so the worst entry is the reference's largest: there the
    # error equals |expected|, and max(1, max |expected|) is max(1, that error)
    assert float(err) == pytest.approx(abs(float(expected)), rel=1e-2)
    assert float(scale) == pytest.approx(max(1.0, float(err)), rel=1e-2)
    assert 0 <= int(index) < X.size
    assert "reverse mode, order 2, argument 0 (`x`) [f's VJP of the order-1 VJP" in msg


def test_message_names_argument_by_signature_and_position():
    def two(a, *rest):
        return jnp.sin(a) * sin_twice(rest[0])

    ref = lambda a, b: jnp.sin(a) * jnp.sin(b)
    with pytest.raises(AssertionError) as e:
        check_rules(two, X, X + 1.0, reference=ref, modes=("rev",))
    assert "the first: reverse mode, order 1, argument 1 (`rest[0]`)" in first_line(e)


def test_forward_mode_of_a_custom_vjp_is_refused_by_name():
    with pytest.raises(TypeError, match=r"check_rules: `modes` .* no forward-mode rule"):
        check_rules(softplus, X, reference=jax.nn.softplus)
    with pytest.raises(TypeError, match="the reference has no forward-mode rule"):
        check_rules(jax.nn.softplus, X, reference=softplus, order=1)


def test_given_tolerances_are_used_and_reported():
    check_rules(sin_twice, X, reference=jnp.sin, modes=("rev",), order=1, rtol=3.0)
    with pytest.raises(AssertionError) as e:
        check_rules(sin_twice, X, reference=jnp.sin, modes=("rev",), order=1, atol=1e-3)
    assert "(rtol 1e-10, atol 0.001: atol given)" in str(e.value)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(order=-1), ValueError, r"check_rules: `order` \(=-1\) must be an int >= 0"),
        (dict(modes="rev"), ValueError, r"check_rules: `modes` \(='rev'\) must be a sequence"),
        (dict(modes=("fwd", "bwd")), ValueError, r"check_rules: `modes`"),
        (dict(rtol=-1.0), ValueError, r"check_rules: `rtol` \(=-1.0\)"),
        (dict(reference=3), TypeError, r"check_rules: `reference` \(=3\)"),
        (dict(seed=1.5), TypeError, r"check_rules: `seed` \(=1.5\)"),
    ],
)
def test_invalid_options_are_refused_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_rules(jnp.sin, X, **kwargs)


def test_nothing_to_differentiate_is_refused():
    with pytest.raises(ValueError, match="no floating or complex array"):
        check_rules(lambda i: i * 2, jnp.arange(3))
    check_rules(lambda i: i * 2, jnp.arange(3), modes=())


def test_reference_of_another_shape_fails_on_values():
    with pytest.raises(AssertionError, match="values: f returns"):
        check_rules(jnp.sin, X, reference=lambda x: jnp.sin(x)[:3])


# ------------------------------------------------------------------------------ inputs


def test_random_inputs_match_numpy_default_rng():
    a, b = random_inputs(7, (2, 3), (4,))
    r = np.random.default_rng(7)
    np.testing.assert_array_equal(a, r.standard_normal((2, 3)))
    np.testing.assert_array_equal(b, r.standard_normal(4))
    (p,) = random_inputs(7, (100,), positive=True)
    assert p.dtype == jnp.float64 and 0.5 <= float(p.min()) and float(p.max()) < 1.5
    (k,) = random_inputs(jax.random.key(0), (3, 3), dtype=jnp.float32)
    assert k.dtype == jnp.float32 and k.shape == (3, 3)
    (z,) = random_inputs(0, (5,), dtype=jnp.complex128)
    assert z.dtype == jnp.complex128 and float(jnp.abs(z.imag).max()) > 0


def test_random_inputs_refuses_bad_dtypes():
    with pytest.raises(ValueError, match=r"random_inputs: `dtype` \(=int32\)"):
        random_inputs(0, (3,), dtype=jnp.int32)
    with pytest.raises(ValueError, match="random_inputs: `positive`"):
        random_inputs(0, (3,), dtype=jnp.complex64, positive=True)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32, jnp.bfloat16])
def test_without_ties_has_no_ties_and_a_minimum_gap(dtype):
    x = without_ties((4, 5, 3), 2, dtype=dtype)
    v = np.sort(np.asarray(x, np.float64).ravel())
    assert x.dtype == dtype and x.shape == (4, 5, 3)
    assert v[0] == -1.0 and v[-1] == 1.0
    assert np.min(np.diff(v)) >= 0.5 * 2 / 59
    p = without_ties((10,), jax.random.key(1), dtype=dtype, positive=True)
    assert float(p.min()) == 0.5 and float(p.max()) == 1.5


def test_without_ties_refuses_a_gap_the_dtype_cannot_hold():
    with pytest.raises(ValueError, match=r"without_ties: `gap` .* bfloat16"):
        without_ties((1000,), dtype=jnp.bfloat16)


def test_distinct_keeps_the_order_and_breaks_ties():
    x = jnp.asarray([[3.0, 1.0, 1.0], [0.0, 3.0, -2.0]])
    y = distinct(x)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, [[2.0, 0.0, 1.0], [-1.0, 3.0, -2.0]])
    assert list(np.argsort(np.asarray(y).ravel())) == [5, 3, 1, 2, 0, 4]
    with pytest.raises(ValueError, match="distinct: `x` has non-finite"):
        distinct(jnp.asarray([1.0, jnp.inf]))


def test_max_with_ties_and_without():
    """Why without_ties: with a tie, max's rule (and the reference's) picks one side of a kink,
    and finite differences straddle it; spaced values make all three agree."""
    x = jnp.asarray([1.0, 1.0, 1.0, 0.0])  # the rule splits the tie; central differences don't
    with pytest.raises(AssertionError, match="finite differences"):
        check_rules(jnp.max, x, modes=("rev",), order=1)
    check_rules(jnp.max, distinct(x), modes=("rev",), order=1)


def test_tolerance_table():
    assert tolerance(jnp.float64) == (1e-10, 1e-12)
    assert tolerance(jnp.float32) == tolerance(jnp.complex64) == (1e-5, 1e-6)
    assert tolerance(jnp.float16)[0] == 1e-2 and tolerance(jnp.bfloat16)[0] == 2e-2
    assert tolerance(jnp.int8) == tolerance(jnp.bool_) == (0.0, 0.0)
    with pytest.raises(TypeError, match="tolerance: `dtype`"):
        tolerance("not a dtype")


def test_exports():
    assert set(jt.__all__) == {
        "check_rules",
        "distinct",
        "oracle",
        "random_inputs",
        "tolerance",
        "without_ties",
    }
