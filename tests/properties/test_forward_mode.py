"""Every JAX transformation on jaxconv's own rules, in both directions.

The matrix: every public op x {jvp, linearize, jacfwd, jacrev, hessian, jvp-of-grad (the HVP
JAX's docs recommend), grad-of-grad-of-grad, vmap of jvp / jacfwd / grad, checkpoint with the
RESIDUAL_NAMES policy} equals the same transformation of the plain lax/jnp forward
(testing.oracle), float64, each under jit. Then: hypothesis-drawn conv-family layers (ranks
1-3, strides, dilations, groups, every padding form and mode, layouts, flip, every
``backward=``) under jvp, jvp-of-grad and vmap-of-jvp; ``check_grads(order=2, modes=["fwd",
"rev"])`` for every op, eagerly; the same transformations with JAX's own convolution, dot and
reduce-window derivative rules switched off (so both directions run on jaxconv's rules, not on
JAX's autodiff of the forward); the jaxprs show jaxconv's primitives; and batch-sharded inputs
on 4 host devices.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax
from jax.interpreters import ad
from jax.test_util import check_grads

import jaxconv as jc
from jaxconv.testing import oracle
from tests.support.devices import host_devices_env
from tests.support.jaxprs import primitive_names
from tests.support.numerics import assert_close
from tests.support.registry import FIRST, OPS, vjp_w, vjp_x

R = np.random.default_rng(0)


def _scalar(f):
    return lambda *a: jnp.sum(jnp.sin(f(*a)))


def _all(args):
    return tuple(range(len(args)))


def _tangents(args, seed=1):
    r = np.random.default_rng(seed)
    return tuple(jnp.asarray(r.standard_normal(a.shape)) for a in args)


def _stack(args, scale=0.5):
    return tuple(jnp.stack([a, scale * a + 0.25]) for a in args)


def _grad3(f, args, tangents=None):
    g1 = jax.grad(_scalar(f), _all(args))
    g2 = jax.grad(lambda *a: sum(jnp.sum(jnp.sin(g)) for g in g1(*a)), _all(args))
    return jax.grad(lambda *a: sum(jnp.sum(g**2) for g in g2(*a)), _all(args))(*args)


POLICY = jax.checkpoint_policies.save_only_these_names(*jc.RESIDUAL_NAMES)

TRANSFORMS = {
    "jvp": lambda f, a, t: jax.jvp(f, a, t),
    "linearize": lambda f, a, t: jax.linearize(f, *a)[1](*t),
    "jacfwd": lambda f, a, t: jax.jacfwd(f, _all(a))(*a),
    "jacrev": lambda f, a, t: jax.jacrev(f, _all(a))(*a),
    "hessian": lambda f, a, t: jax.hessian(_scalar(f), _all(a))(*a),
    "jvp_of_grad": lambda f, a, t: jax.jvp(jax.grad(_scalar(f), _all(a)), a, t),
    "grad3": _grad3,
    "vmap_jvp": lambda f, a, t: jax.vmap(lambda a, t: jax.jvp(f, a, t))(_stack(a), _stack(t)),
    "vmap_jacfwd": lambda f, a, t: jax.vmap(jax.jacfwd(f, _all(a)))(*_stack(a)),
    "vmap_grad": lambda f, a, t: jax.vmap(jax.grad(_scalar(f), _all(a)))(*_stack(a)),
    "checkpoint_hvp": lambda f, a, t: jax.jvp(
        jax.grad(jax.checkpoint(_scalar(f), policy=POLICY), _all(a)), a, t
    ),
}


def _close(ours, theirs, what):
    leaves, ref = jax.tree.leaves(ours), jax.tree.leaves(theirs)
    assert len(leaves) == len(ref), what
    for a, b in zip(leaves, ref):
        assert_close(a, b, tol=1e-10, err_msg=what)


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("op", list(OPS))
def test_transformation_matrix(op, transform):
    """Each transformation under jit (one compile per case; eager runs: `check_grads` below
    and the rules-off test). The oracle runs on the host CPU wherever ours runs: on a GPU,
    JAX's own float64 max-pool JVP packs value and tangent into 64 bits (reduced precision,
    with a warning), which would make the reference, not our rule, the inexact side."""
    ours, theirs, args = OPS[op].fn, OPS[op].ref, OPS[op].args
    run = lambda f: jax.jit(lambda a, t: TRANSFORMS[transform](f, a, t))  # noqa: E731
    t = _tangents(args)
    ref = run(theirs)(*jax.device_put((args, t), jax.devices("cpu")[0]))
    _close(run(ours)(args, t), ref, op)


@pytest.mark.parametrize("op", list(OPS))
def test_check_grads_both_modes(op):
    check_grads(OPS[op].fn, OPS[op].args, order=2, modes=["fwd", "rev"])


# --------------------------------------------------------------------------- jaxconv's rules


@contextlib.contextmanager
def jax_rules_off():
    """JAX's own JVP and transpose rules of convolutions, matrix products and window
    reductions raise."""
    prims = [lax.conv_general_dilated_p, lax.dot_general_p, lax.reduce_window_sum_p]
    prims += [lax.reduce_window_max_p, lax.select_and_scatter_add_p, lax.argmax_p]

    def boom(*args, **kwargs):
        raise AssertionError("JAX's own derivative rule was used")

    saved = [(ad.primitive_jvps.get(p), ad.primitive_transposes.get(p)) for p in prims]
    for p in prims:
        ad.primitive_jvps[p] = ad.primitive_transposes[p] = boom
    try:
        yield
    finally:
        for p, (jvp, transpose) in zip(prims, saved):
            ad.primitive_jvps[p], ad.primitive_transposes[p] = jvp, transpose


@pytest.mark.parametrize("transform", ["jvp", "hessian", "jvp_of_grad", "vmap_jacfwd", "grad3"])
@pytest.mark.parametrize("op", list(FIRST))  # one variant per public op: the same primitives
def test_transformations_run_without_jax_rules(op, transform):
    """Every op, every transformation, with JAX's convolution / dot / window derivative rules
    switched off: they all still trace and run (caches cleared, so every rule is looked up
    again), and the lax reference fails, which shows the switch is real."""
    jax.clear_caches()
    with jax_rules_off():
        fn, args = FIRST[op].fn, FIRST[op].args
        jax.jit(lambda a, t: TRANSFORMS[transform](fn, a, t))(args, _tangents(args))
        ref, args = OPS["conv"].ref, OPS["conv"].args
        with pytest.raises(AssertionError, match="JAX's own derivative rule"):
            jax.jit(lambda a, t: jax.jvp(ref, a, t))(args, _tangents(args))
    jax.clear_caches()


def test_jaxprs_show_jaxconv_rules():
    """The forward-mode jaxprs of the convolution family are jaxconv's primitives: the HVP of
    a conv layer has the forward, input-gradient and weight-gradient primitives and no lax
    convolution."""
    ours, args = OPS["conv"].fn, OPS["conv"].args
    hvp = TRANSFORMS["jvp_of_grad"]
    names = primitive_names(jax.make_jaxpr(lambda *a: hvp(ours, a, a))(*args).jaxpr)
    assert "conv_general_dilated" not in names and "dot_general" not in names
    assert {"jaxconv_conv", "jaxconv_input_grad", "jaxconv_weight_grad"} <= set(names), names


# --------------------------------------------------------------------------- hypothesis


@st.composite
def conv_layers(draw):
    nd = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(["channels_last", "channels_first"]))
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    size = tuple(
        draw(st.integers((kk - 1) * d + 1, (kk - 1) * d + 3)) for kk, d in zip(k, dilation)
    )
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "circular", "replicate"]))
    if mode == "zeros":
        padding = draw(st.sampled_from(["VALID", "SAME", 1, ((1, 0),) * nd]))
    else:
        padding = tuple((min(1, n - 1), 0) for n in size)
    kw = dict(stride=stride, dilation=dilation, groups=groups, padding=padding, layout=layout)
    kw.update(padding_mode=mode, flip=draw(st.booleans()))
    n = draw(st.integers(1, 2))
    cl = layout == "channels_last"
    x_shape = (n, *size, cin) if cl else (n, cin, *size)
    w_shape = (*k, cin // groups, cout) if cl else (cout, cin // groups, *k)
    return (
        x_shape,
        w_shape,
        kw,
        draw(st.sampled_from(["auto", "lean", "transpose", "phase", "matmul"])),
    )


def _three(f, a, t):
    return [TRANSFORMS[n](f, a, t) for n in ("jvp", "jvp_of_grad", "vmap_jvp")]


@settings(max_examples=max(3, settings.default.max_examples // 3))
@given(conv_layers())
def test_conv_family_forward_mode_hypothesis(layer):
    """conv, conv_transpose and the two gradient functions under jvp, jvp-of-grad and
    vmap-of-jvp on drawn layers, equal to the same transformations of lax."""
    x_shape, w_shape, kw, backward = layer
    x, w = jnp.asarray(R.standard_normal(x_shape)), jnp.asarray(R.standard_normal(w_shape))
    ours = lambda x, w: jc.conv(x, w, backward=backward, **kw)
    theirs = lambda x, w: oracle.conv(x, w, **kw)
    y = theirs(x, w)
    g = jnp.asarray(R.standard_normal(y.shape))
    zkw = {k: v for k, v in kw.items() if k != "padding_mode"}
    cases = [((x, w), ours, theirs)]
    if kw["padding_mode"] == "zeros":
        pad_ok = not isinstance(kw["padding"], str) or kw["padding"] == "VALID"
        cases += [
            (
                (w, g),
                lambda w, g: jc.conv_input_grad(x.shape, w, g, backward=backward, **zkw),
                vjp_x(theirs, x.shape),
            ),
            (
                (x, g),
                lambda x, g: jc.conv_weight_grad(x, w.shape, g, backward=backward, **zkw),
                vjp_w(theirs, w.shape),
            ),
        ]
        if pad_ok:
            ct_kw = {k: v for k, v in zkw.items() if k != "padding"}
            ct_kw["padding"] = 0 if kw["padding"] == "VALID" else kw["padding"]
            ct_kw["output_size"] = x.shape[1:-1] if kw["layout"] == "channels_last" else x.shape[2:]
            cases.append(
                (
                    (g, w),
                    lambda g, w: jc.conv_transpose(g, w, backward=backward, **ct_kw),
                    lambda g, w: oracle.conv_transpose(g, w, **ct_kw),
                )
            )
    for args, f, ref in cases:
        t = _tangents(args, seed=3)
        # ours and the reference in one compiled program (eager lax would compile op by op)
        got, want = jax.jit(lambda a, t, f=f, ref=ref: (_three(f, a, t), _three(ref, a, t)))(
            args, t
        )
        _close(got, want, (kw, backward))


# --------------------------------------------------------------------------- sharding

SHARDED = r"""
import jax, jax.numpy as jnp, numpy as np
import jaxconv as jc
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

assert jax.device_count() == 4
rng = np.random.default_rng(0)
x0 = jnp.asarray(rng.standard_normal((8, 7, 6, 4)))
w = jnp.asarray(rng.standard_normal((3, 3, 2, 6)))
t0 = jnp.asarray(rng.standard_normal(x0.shape))

def net(x, w):
    h = jc.relu(jc.conv(x, w, stride=2, padding=1, groups=2))
    h = jc.max_pool(h, 2, ceil_mode=True)
    return jnp.sum(jnp.sin(jc.linear(jc.global_avg_pool(h), jnp.ones((6, 3)))))

hvp = jax.jit(lambda x, t: jax.jvp(jax.grad(net, (0, 1)), (x, w), (t, w))[1])
jvp = jax.jit(lambda x, t: jax.jvp(lambda x: jc.conv(x, w, padding=1, groups=2), (x,), (t,))[1])
ref_h, ref_j = hvp(x0, t0), jvp(x0, t0)
for axis_type in (AxisType.Explicit, AxisType.Auto):
    mesh = jax.make_mesh((4,), ("b",), axis_types=(axis_type,))
    x = jax.device_put(x0, NamedSharding(mesh, P("b")))
    t = jax.device_put(t0, NamedSharding(mesh, P("b")))
    with jax.sharding.use_mesh(mesh) if hasattr(jax.sharding, "use_mesh") else jax.set_mesh(mesh):
        h, j = hvp(x, t), jvp(x, t)
    assert j.sharding.spec[0] == "b", (axis_type, j.sharding)
    for a, b in zip(jax.tree.leaves((h, j)), jax.tree.leaves((ref_h, ref_j))):
        err = float(jnp.max(jnp.abs(a - b)))
        assert err <= 1e-10 * max(1.0, float(jnp.max(jnp.abs(b)))), (axis_type, err)
print("ok")
"""


def test_forward_mode_on_sharded_inputs():
    """jvp and the HVP of a small network, batch-sharded on 4 host devices (explicit and auto
    meshes), equal the single-device values; the tangent keeps the batch sharding."""
    env = host_devices_env(4, JAX_ENABLE_X64="1")
    out = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
