"""A whole CNN trains on jaxconv's hand-written backward passes alone.

conv -> relu -> max_pool -> conv -> relu -> avg_pool -> flatten -> linear -> softmax_cross_entropy
(seed 001's pipeline: "convolutional and pooling layers ... squashed into a one dimension vector
and fed into a fully-connected MLP ... the last layer ... is a loss layer").

1. Its `jax.grad` equals autodiff of the same network written with jax.lax / jax.nn (float64).
2. Only our rules run: with JAX's autodiff rules (JVP and transpose) of every primitive switched
   off except `reshape` (the network's own flatten, outside any jaxconv op), `jax.grad` of the
   jaxconv network still works and gives the same numbers, while the lax network's fails.
3. The gradient jaxpr of the jaxconv network holds none of the primitives that JAX's own
   pooling/conv autodiff would emit (select_and_scatter_add, select_and_gather_add, ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.interpreters import ad

import jaxconv
from jaxconv import avg_pool, linear, max_pool, relu, softmax_cross_entropy
from jaxconv.testing import oracle
from tests.support.jaxprs import primitive_names
from tests.support.numerics import assert_close

N, H, C0, C1, C2, K = 4, 12, 2, 4, 6, 5
CONFIGS = {  # (layout, max_pool settings, avg_pool settings)
    "channels_last": ("channels_last", dict(window=2), dict(window=2)),
    "channels_first": (
        "channels_first",
        dict(window=3, stride=2, padding=1),
        dict(window=3, ceil_mode=True),
    ),  # 4 -> 2 windows, the last partial
}


def init(layout, seed=0):
    rng = np.random.default_rng(seed)
    conv_w = lambda k, ci, co: (
        (  # noqa: E731
            rng.normal(size=(k, k, ci, co))
            if layout == "channels_last"
            else rng.normal(size=(co, ci, k, k))
        )
        / np.sqrt(k * k * ci)
    )
    x = rng.normal(size=(N, H, H, C0) if layout == "channels_last" else (N, C0, H, H))
    params = dict(
        w1=conv_w(3, C0, C1),
        b1=0.1 * rng.normal(size=C1),
        w2=conv_w(3, C1, C2),
        b2=0.1 * rng.normal(size=C2),
    )
    params = {k: jnp.asarray(v) for k, v in params.items()}
    return jnp.asarray(x), jnp.asarray(rng.integers(0, K, size=N)), params, rng


def ours(params, x, labels, cfg):
    layout, mp, ap = cfg
    h = jaxconv.conv(x, params["w1"], params["b1"], padding=1, layout=layout)
    h = max_pool(relu(h), **mp, layout=layout)
    h = jaxconv.conv(h, params["w2"], params["b2"], layout=layout)
    h = avg_pool(relu(h), **ap, layout=layout)
    h = h.reshape(h.shape[0], -1)
    return softmax_cross_entropy(linear(h, params["w3"], params["b3"]), labels)


def plain(params, x, labels, cfg):
    """The same network from jax.lax / jax.nn (testing.oracle), differentiated by JAX's own
    rules."""
    layout, mp, ap = cfg
    h = oracle.conv(x, params["w1"], params["b1"], padding=1, layout=layout)
    h = oracle.max_pool(oracle.relu(h), **mp, layout=layout)
    h = oracle.conv(h, params["w2"], params["b2"], layout=layout)
    h = oracle.avg_pool(oracle.relu(h), **ap, layout=layout)
    h = h.reshape(h.shape[0], -1)
    return oracle.softmax_cross_entropy(oracle.linear(h, params["w3"], params["b3"]), labels)


def full_params(layout):
    """x, labels and all parameters; w3 sized from the flattened features."""
    x, labels, params, rng = init(layout)
    layout, mp, ap = CONFIGS[layout]

    def features(params, x):
        h = jaxconv.conv(x, params["w1"], params["b1"], padding=1, layout=layout)
        h = max_pool(h, **mp, layout=layout)
        h = jaxconv.conv(h, params["w2"], params["b2"], layout=layout)
        return avg_pool(h, **ap, layout=layout)

    f = int(np.prod(jax.eval_shape(features, params, x).shape[1:]))
    params["w3"] = jnp.asarray(rng.normal(size=(f, K)) / np.sqrt(f))
    params["b3"] = jnp.asarray(0.1 * rng.normal(size=K))
    return x, labels, params


@pytest.mark.parametrize("layout", list(CONFIGS))
def test_cnn_gradient_equals_lax_autodiff(layout):
    x, labels, params = full_params(layout)
    cfg = CONFIGS[layout]
    loss, grads = jax.jit(jax.value_and_grad(lambda *a: ours(*a, cfg)))(params, x, labels)
    loss_ref, grads_ref = jax.jit(jax.value_and_grad(lambda *a: plain(*a, cfg)))(params, x, labels)
    assert_close(loss, loss_ref)
    for name in params:
        assert_close(grads[name], grads_ref[name], err_msg=name)
    assert float(np.abs(grads["w1"]).max()) > 0  # the gradient reaches the first layer


def _autodiff_rules_disabled(keep, keep_prefix="jaxconv_"):
    """Context: every JVP / transpose rule in JAX's tables raises, except for the primitives
    named in `keep` and jaxconv's own (named ``jaxconv_*``), whose rules are written here."""
    tables = [ad.primitive_jvps, ad.primitive_transposes, ad.fancy_transposes]

    class Disabled:
        def __enter__(self):
            self.saved = [dict(t) for t in tables]
            for t in tables:
                for prim in list(t):
                    if prim.name not in keep and not prim.name.startswith(keep_prefix):
                        t[prim] = _refuse(prim)
            return self

        def __exit__(self, *exc):
            for t, saved in zip(tables, self.saved):
                t.clear()
                t.update(saved)

    return Disabled()


def _refuse(prim):
    def rule(*args, **kwargs):
        raise RuntimeError(f"JAX's autodiff rule for `{prim}` was used")

    return rule


def test_only_our_backward_rules_run():
    layout = "channels_last"
    x, labels, params = full_params(layout)
    cfg = CONFIGS[layout]

    def grad(net):
        return jax.jit(jax.grad(lambda *a: net(*a, cfg)))(params, x, labels)

    expected = grad(ours)
    jax.clear_caches()  # nothing may come from a cache traced with the rules on
    # custom_lin is how jax.custom_vjp itself enters the backward pass: its transpose calls
    # our `_bwd` functions; the jaxconv_* primitives carry our JVP and transpose rules. reshape
    # is the network's own flatten between avg_pool and linear; `name` is the identity that
    # tags a residual for remat policies (jaxconv.RESIDUAL_NAMES); add_any adds the two
    # tangent contributions of a bilinear map (its transpose copies the cotangent).
    ours_too = {"custom_lin", "reshape", "name", "add_any"}
    with _autodiff_rules_disabled(keep=ours_too, keep_prefix="jaxconv_"):
        grads = grad(ours)
        with pytest.raises(RuntimeError, match="JAX's autodiff rule for `conv_general_dilated`"):
            grad(plain)
    jax.clear_caches()
    for name in params:
        assert_close(grads[name], expected[name], err_msg=name)


def test_gradient_jaxpr_has_no_autodiff_pooling():
    layout = "channels_last"
    x, labels, params = full_params(layout)
    cfg = CONFIGS[layout]
    autodiff_only = {
        "select_and_scatter_add",
        "select_and_gather_add",
        "reduce_window_sum",
        "reduce_window_max",
        "cumsum",
        "argmax",
    }
    grad = lambda f: jax.grad(lambda *a: f(*a, cfg))  # noqa: E731
    got, ref = (
        primitive_names(jax.make_jaxpr(grad(f))(params, x, labels).jaxpr) for f in (ours, plain)
    )
    assert "select_and_gather_add" in ref or "select_and_scatter_add" in ref, ref
    assert not got & autodiff_only, got & autodiff_only
