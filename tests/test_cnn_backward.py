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
from conftest import assert_close
from jax import lax
from jax._src.interpreters import ad

import jaxconv
from jaxconv._activation import relu
from jaxconv._avgpool import avg_pool
from jaxconv._linear import linear
from jaxconv._loss import softmax_cross_entropy
from jaxconv._maxpool import max_pool

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
    """The same network from jax.lax / jax.nn, differentiated by JAX's own rules."""
    layout, mp, ap = cfg
    spec = ("NHWC", "HWIO", "NHWC") if layout == "channels_last" else ("NCHW", "OIHW", "NCHW")
    bshape = (1, 1, 1, -1) if layout == "channels_last" else (1, -1, 1, 1)

    def conv(h, w, b, pad):
        return lax.conv_general_dilated(
            h, w, (1, 1), [(pad, pad)] * 2, dimension_numbers=spec
        ) + b.reshape(bshape)

    def dims(v):
        return (1, v, v, 1) if layout == "channels_last" else (1, 1, v, v)

    def pads(p, extra):
        sp = [(p, p + extra)] * 2
        return [(0, 0)] + sp + [(0, 0)] if layout == "channels_last" else [(0, 0)] * 2 + sp

    h = jax.nn.relu(conv(x, params["w1"], params["b1"], 1))
    k, s, p = mp["window"], mp.get("stride", mp["window"]), mp.get("padding", 0)
    h = lax.reduce_window(h, -jnp.inf, lax.max, dims(k), dims(s), pads(p, 0))
    h = jax.nn.relu(conv(h, params["w2"], params["b2"], 0))
    k, n = ap["window"], h.shape[1 if layout == "channels_last" else 2]
    o = (-(-(n - k) // k) if ap.get("ceil_mode") else (n - k) // k) + 1
    total = lax.reduce_window(h, 0.0, lax.add, dims(k), dims(k), pads(0, max(0, o * k - n)))
    count = np.array([min(i * k + k, n) - i * k for i in range(o)], h.dtype)  # N_i per dim
    grid = count[:, None] * count[None, :]
    h = total / (grid[None, :, :, None] if layout == "channels_last" else grid[None, None])
    h = h.reshape(h.shape[0], -1)
    logits = h @ params["w3"] + params["b3"][None]
    return jnp.mean(
        jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, labels[:, None], 1)[:, 0]
    )


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


def _autodiff_rules_disabled(keep):
    """Context: every JVP / transpose rule in JAX's tables raises, except for the primitives
    named in `keep`."""
    tables = [ad.primitive_jvps, ad.primitive_transposes, ad.fancy_transposes]

    class Disabled:
        def __enter__(self):
            self.saved = [dict(t) for t in tables]
            for t in tables:
                for prim in list(t):
                    if prim.name not in keep:
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
    # our `_bwd` functions. reshape is the network's own flatten between avg_pool and linear.
    with _autodiff_rules_disabled(keep={"custom_lin", "reshape"}):
        grads = grad(ours)
        with pytest.raises(RuntimeError, match="JAX's autodiff rule for `conv_general_dilated`"):
            grad(plain)
    jax.clear_caches()
    for name in params:
        assert_close(grads[name], expected[name], err_msg=name)


def _primitives(jaxpr, out=None):
    out = set() if out is None else out
    for eqn in jaxpr.eqns:
        out.add(eqn.primitive.name)
        for sub in jax.core.jaxprs_in_params(eqn.params):
            _primitives(sub, out)
    return out


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
    got = _primitives(jax.make_jaxpr(jax.grad(lambda *a: ours(*a, cfg)))(params, x, labels).jaxpr)
    ref = _primitives(jax.make_jaxpr(jax.grad(lambda *a: plain(*a, cfg)))(params, x, labels).jaxpr)
    assert "select_and_gather_add" in ref or "select_and_scatter_add" in ref, ref
    assert not got & autodiff_only, got & autodiff_only
