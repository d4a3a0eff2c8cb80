"""Output shardings JAX asks for when inputs live on an explicit mesh.

With `jax.sharding.AxisType.Explicit` meshes, an op whose output sharding is ambiguous (a
contraction over a sharded batch axis, a scatter into a fresh array) must be told it. Under auto
meshes or no mesh these return None and XLA's partitioner decides as usual.
"""

from __future__ import annotations

import jax


def explicit_sharding(a):
    """`a`'s sharding where it lives on a mesh with an explicit axis, else None."""
    sharding = getattr(jax.typeof(a), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty:
        return None
    if not any(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types):
        return None
    return sharding


def replicated(a):
    """A fully replicated sharding on `a`'s explicit mesh, else None: the output of a weight
    gradient, which contracts the batch (XLA inserts data parallelism's all-reduce)."""
    sharding = explicit_sharding(a)
    if sharding is None:
        return None
    return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
