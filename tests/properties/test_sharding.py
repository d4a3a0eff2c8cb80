"""Sharded inputs on 4 host devices (explicit and auto meshes): the conv family along N, and a
small jaxconv CNN along N, along its rows (spatial) and with channel-sharded kernels."""

import subprocess
import sys

from tests.support.devices import host_devices_env

SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np
import jaxconv as jc
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

assert jax.device_count() == 4
rng = np.random.default_rng(0)
x0 = jnp.asarray(rng.standard_normal((8, 9, 9, 4)), jnp.float32)
cases = [
    (dict(stride=2, padding=1, groups=2), (3, 3, 2, 6)),
    (dict(padding="SAME"), (3, 3, 4, 6)),
    (dict(padding=1, groups=4, stride=2), (3, 3, 1, 8)),
    (dict(padding=1, padding_mode="reflect"), (3, 3, 4, 5)),
]
weights = [jnp.asarray(rng.standard_normal(w_shape), jnp.float32) for _, w_shape in cases]
fns, refs = {}, {}
for axis_type in (AxisType.Explicit, AxisType.Auto):
    mesh = jax.make_mesh((4,), ("b",), axis_types=(axis_type,))
    x = jax.device_put(x0, NamedSharding(mesh, P("b")))
    for backward in ("auto", "transpose", "phase", "matmul"):
        for i, (kw, _) in enumerate(cases):
            w = weights[i]
            if (backward, i) not in fns:  # one function (and unsharded run) per config

                def loss(x, w, kw=kw, backward=backward):
                    y = jc.conv(x, w, backward=backward, **kw)
                    return jnp.sum(jnp.sin(y)), y

                fns[backward, i] = f = jax.jit(jax.value_and_grad(loss, (0, 1), has_aux=True))
                refs[backward, i] = f(x0, w)
            (l, y), (dx, dw) = fns[backward, i](x, w)
            (l0, _), (dx0, dw0) = refs[backward, i]
            assert y.sharding.spec[0] == "b", (axis_type, backward, kw, y.sharding)
            assert dx.sharding.spec[0] == "b", (axis_type, backward, kw, dx.sharding)
            for a, b in ((l, l0), (dx, dx0), (dw, dw0)):
                scale = max(1.0, float(jnp.abs(b).max()))
                assert float(jnp.abs(a - b).max()) <= 1e-4 * scale, (axis_type, backward, kw)
print("ok")
"""


def test_conv_family_batch_sharded_equals_single_device():
    """Loss, dx and dw with x sharded along N over 4 devices equal the unsharded run, for every
    backward algorithm; the output and dx keep x's batch sharding."""
    env = host_devices_env(4)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


CNN_SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np
import jaxconv as jc
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

assert jax.device_count() == 4
rng = np.random.default_rng(1)
N, H, W, K = 8, 16, 8, 5
x0 = jnp.asarray(rng.standard_normal((N, H, W, 2)), jnp.float32)
y0 = jnp.asarray(rng.integers(0, K, N), jnp.int32)
shapes = {"w1": (3, 3, 2, 8), "b1": (8,), "w2": (3, 3, 8, 8), "b2": (8,),
          "wl": (H // 4 * W // 4 * 8, K), "bl": (K,)}
p0 = {k: jnp.asarray(0.3 * rng.standard_normal(s), jnp.float32) for k, s in shapes.items()}


def layers(p, x):
    # conv -> relu -> max_pool -> conv -> relu -> avg_pool, every activation returned
    h1 = jc.conv(x, p["w1"], p["b1"], padding=1)
    h2 = jc.max_pool(jc.relu(h1), 2)
    h3 = jc.conv(h2, p["w2"], p["b2"], padding=1)
    h4 = jc.avg_pool(jc.relu(h3), 2)
    return h1, h2, h3, h4


def flatten(h):
    # explicit meshes ask where a merged sharded axis goes: keep N's, gather the rest
    s = jax.typeof(h).sharding
    explicit = AxisType.Explicit in s.mesh.axis_types
    flat = NamedSharding(s.mesh, P(s.spec[0])) if explicit else None
    return h.reshape(h.shape[0], -1, out_sharding=flat)


def loss(p, x, y):
    acts = layers(p, x)
    logits = jc.linear(flatten(acts[-1]), p["wl"], p["bl"])
    return jc.softmax_cross_entropy(logits, y), acts


step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
(l_ref, _), (dp_ref, dx_ref) = step(p0, x0, y0)


def close(a, b, what):
    err = float(jnp.abs(a - b).max()) / max(float(jnp.abs(b).max()), 1e-30)
    assert err <= 1e-5, (what, err)


def same(a, spec, what):
    want = NamedSharding(a.sharding.mesh, spec)
    assert a.sharding.is_equivalent_to(want, a.ndim), (what, a.sharding.spec, spec)


# (mesh shape, axis names, x's spec, per-parameter specs, the activations' spec)
conv_out = P(None, None, None, "m")
cases = {
    "batch": ((4,), ("b",), P("b"), {}, P("b")),
    "height": ((4,), ("h",), P(None, "h"), {}, P(None, "h")),
    "batch+channel": ((2, 2), ("b", "m"), P("b"),
                      {"w1": conv_out, "b1": P("m"), "w2": conv_out, "b2": P("m")},
                      P("b", None, None, "m")),
}
for axis_type in (AxisType.Explicit, AxisType.Auto):
    for name, (shape, names, x_spec, p_specs, act_spec) in cases.items():
        what = (axis_type, name)
        mesh = jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))
        x = jax.device_put(x0, NamedSharding(mesh, x_spec))
        y = jax.device_put(y0, NamedSharding(mesh, P(x_spec[0])))
        p = {k: jax.device_put(v, NamedSharding(mesh, p_specs.get(k, P()))) for k, v in p0.items()}
        (l, acts), (dp, dx) = step(p, x, y)
        close(l, l_ref, what + ("loss",))
        close(dx, dx_ref, what + ("dx",))
        same(dx, x_spec, what + ("dx",))
        for k in p0:
            close(dp[k], dp_ref[k], what + (k,))
            if axis_type == AxisType.Explicit:  # auto meshes: XLA picks the gradients' layout
                same(dp[k], p_specs.get(k, P()), what + (k,))
        for i, h in enumerate(acts):
            same(h, act_spec, what + (f"h{i + 1}",))
    # uneven: 7 pooled rows over 4 devices -> the output is replicated, dx keeps x's rows
    mesh = jax.make_mesh((4,), ("h",), axis_types=(axis_type,))
    x = jax.device_put(x0, NamedSharding(mesh, P(None, "h")))
    f = lambda x: jnp.sum(jnp.sin(jc.max_pool(x, 3, stride=2)))
    (l, dx), (l1, dx1) = jax.jit(jax.value_and_grad(f))(x), jax.jit(jax.value_and_grad(f))(x0)
    close(l, l1, (axis_type, "uneven"))
    close(dx, dx1, (axis_type, "uneven dx"))
    same(dx, P(None, "h"), (axis_type, "uneven dx"))
    if axis_type == AxisType.Explicit:
        same(jax.jit(lambda x: jc.max_pool(x, 3, stride=2))(x), P(), "uneven y")
print("ok")
"""


def test_cnn_batch_height_channel_sharded_equals_single_device():
    """A jaxconv CNN (conv, relu, max_pool, conv, relu, avg_pool, linear, softmax cross-entropy)
    on 4 devices, explicit and auto meshes: with x sharded along N, along its rows (XLA
    exchanges the halo rows) and along N with the conv kernels sharded on C_out, the loss and
    every gradient equal the single-device run and each conv/pool output keeps the sharding
    (channel-sharded for C_out-sharded kernels); an uneven pooled size is replicated."""
    env = host_devices_env(4)
    out = subprocess.run(
        [sys.executable, "-c", CNN_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
