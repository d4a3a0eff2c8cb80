"""The conv family with batch-sharded inputs on 4 host devices (explicit and auto meshes)."""

import os
import subprocess
import sys

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
for axis_type in (AxisType.Explicit, AxisType.Auto):
    mesh = jax.make_mesh((4,), ("b",), axis_types=(axis_type,))
    x = jax.device_put(x0, NamedSharding(mesh, P("b")))
    for backward in ("auto", "transpose", "phase", "matmul"):
        for kw, w_shape in cases:
            w = jnp.asarray(rng.standard_normal(w_shape), jnp.float32)
            loss = lambda x, w: jnp.sum(jnp.sin(jc.conv(x, w, backward=backward, **kw)))
            f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
            (l, (dx, dw)) = f(x, w)
            y = jax.jit(lambda x, w: jc.conv(x, w, backward=backward, **kw))(x, w)
            (l0, (dx0, dw0)) = f(x0, w)
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
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
