"""Output shardings JAX asks for when inputs live on an explicit mesh, and auto regions.

With `jax.sharding.AxisType.Explicit` meshes, an op whose output sharding is ambiguous (a
contraction over a sharded batch axis, a scatter into a fresh array) must be told it. Under auto
meshes or no mesh these return None and XLA's partitioner decides as usual.

Batch sharding is all explicit typing can follow through a conv or pooling layer: a sharded
spatial axis (its pads, strided slices and windows need halo rows from the neighbouring
device, and uneven results cannot be typed) or a sharded channel axis (contractions) is left to
XLA's partitioner: `auto_partitioned` runs a public op with the mesh's axes switched to auto
and reshards its outputs back to explicit shardings.
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


# --------------------------------------------------------------------------- auto regions


def _entries(a):
    """`a`'s partition spec, one entry per axis (None: not sharded); None when `a` is no array
    on an explicit mesh."""
    sharding = explicit_sharding(a) if hasattr(a, "shape") else None
    if sharding is None:
        return None
    spec = tuple(sharding.spec)
    return spec + (None,) * (len(a.shape) - len(spec))


def _names(entry):
    return () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)


def auto_partitioned(f, *args, out=None, batch=(0,)):
    """`f(*args)`, with XLA's partitioner in charge where explicit sharding rules stop.

    On a mesh with `AxisType.Explicit` axes JAX types every op's output sharding and refuses a
    pad, slice, convolution or gather along a sharded spatial axis whose result would be
    uneven, and a contraction over a sharded channel axis without an `out_sharding`. So when
    an array of `args` lives on an explicit mesh and is sharded along any axis but axis 0 of
    the arguments listed in `batch` (their batch axis, which explicit rules do handle), `f`
    runs with the mesh's explicit axes switched to auto (as `jax.sharding.auto_axes` does):
    XLA inserts the halo exchanges of spatial sharding and the all-reduces of channel sharding
    itself, and every derivative of `f` runs there too. Each output is then resharded to the
    spec `out` names, one entry per output axis: ``(i, a)`` takes the mesh axes of axis `a` of
    ``args[i]``, None replicates; by default `args[0]`'s spec (outputs of its rank). An axis
    keeps its mesh axes only where they divide it evenly and were not used by an earlier axis.
    In every other case (no mesh, auto meshes, batch sharding only) this is ``f(*args)``.
    """
    specs = [_entries(a) for a in args]
    sharded = [
        i
        for i, spec in enumerate(specs)
        if spec is not None and any(e is not None for e in spec[1 if i in batch else 0 :])
    ]
    if not sharded:
        return f(*args)
    mesh = explicit_sharding(args[sharded[0]]).mesh
    auto = mesh.update_axis_types({n: jax.sharding.AxisType.Auto for n in mesh.explicit_axes})
    with jax.sharding.use_abstract_mesh(auto):
        inner = [
            a if s is None else jax.sharding.reshard(a, jax.sharding.PartitionSpec())
            for a, s in zip(args, specs)
        ]
        y = f(*inner)

    def fit(o):
        if out is None:
            wanted = specs[0][: o.ndim] if specs[0] is not None else (None,) * o.ndim
        else:
            wanted = [None if e is None or specs[e[0]] is None else specs[e[0]][e[1]] for e in out]
        used, spec = set(), []
        for n, entry in zip(o.shape, wanted):
            names = _names(entry)
            size = 1
            for name in names:
                size *= mesh.shape[name]
            ok = names and not used.intersection(names) and n % size == 0
            spec.append(entry if ok else None)
            used.update(names if ok else ())
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
        return jax.sharding.reshard(o, sharding)

    return jax.tree.map(fit, y)
