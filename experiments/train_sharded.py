"""The digits CNN of train_digits.py trained data-parallel over every device with jax.sharding.

A 1-D mesh ("data",) over `jax.devices()`; each global batch is sharded along N with
``NamedSharding(mesh, P("data"))``, the parameters and Adam's state are replicated, and one
jitted train step (jaxconv's explicit VJPs, optax Adam) runs on the mesh: XLA's partitioner
adds the gradient all-reduce. ``--mesh data,height`` adds spatial sharding: a 2-D mesh
("data", "height") with each batch sharded P("data", "height") along N and the image rows
(XLA exchanges the halo rows each convolution and pooling window needs). Meshes are
`AxisType.Explicit` by default (``--axis-type auto`` for auto meshes).

For each mesh (the full run: 1, 2, 4, ... devices on the data axis, and data x height on all
devices) the table lists the test accuracy after training, the median step time, and checks
that the loss and every gradient of the first step equal a single-device run to 1e-5
(relative to the gradient's largest entry); the script exits 1 if one does not.

Multi-host (``--distributed``): run the same command on every host. `jax.distributed.initialize()`
connects the processes (coordinator, process count and id from the flags or the cluster's
environment), the mesh spans `jax.devices()` of all hosts, and each host feeds only the rows
of each global batch that its own devices hold, through
`jax.make_array_from_process_local_data`. Process 0 writes the results.

Usage::

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python experiments/train_sharded.py
    python experiments/train_sharded.py --quick --out /tmp/sharded    # whatever devices there are
    python experiments/train_sharded.py --distributed                 # on every host
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from train_digits import (  # noqa: E402
    ARCH,
    batch_order,
    init_params,
    load_data,
    logits_jaxconv,
    loss_jaxconv,
)

RTOL = 1e-5
HEADER = [
    "mesh",
    "devices",
    "per-device batch",
    "test acc (%)",
    "step ms (median)",
    "compile s",
    "first-step max rel. error",
    f"equal to 1 device ({RTOL:g})",
]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64, help="global batch (all devices)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument(
        "--mesh",
        choices=("data", "data,height", "both"),
        default="both",
        help="data-parallel rows, the data x height row, or both (default)",
    )
    ap.add_argument("--height", type=int, default=2, help="devices on the height axis")
    ap.add_argument("--axis-type", choices=("explicit", "auto"), default="explicit")
    ap.add_argument("--quick", action="store_true", help="CI-sized: 60 steps, all devices only")
    ap.add_argument("--out", default=None, help="output folder (default experiments/results/)")
    ap.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ap.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() first (run on every host)",
    )
    ap.add_argument("--coordinator", default=None, help="host:port of process 0 (--distributed)")
    ap.add_argument("--num-processes", type=int, default=None, help="(--distributed)")
    ap.add_argument("--process-id", type=int, default=None, help="(--distributed)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps = 60
    return args


def meshes(args, devices, quick=False) -> list[tuple[int, ...]]:
    """Mesh shapes to run: (data,) for 1, 2, 4, ... and all devices; (data, height)."""
    n = len(devices)
    check_batch(args.batch_size, n)
    shapes = []
    if args.mesh in ("data", "both"):  # --quick: all devices only
        smaller = set() if quick else {2**i for i in range(n.bit_length()) if 2**i < n}
        shapes += [(k,) for k in sorted(smaller | {n})]
    if args.mesh in ("data,height", "both"):
        fits = args.height > 1 and n % args.height == 0
        if fits:
            shapes.append((n // args.height, args.height))
        elif args.mesh == "data,height":
            raise ValueError(
                f"train_sharded: `--height` (={args.height}) must be > 1 and divide the device "
                f"count (={n})"
            )
        else:
            print(f"no data x height mesh: --height={args.height} does not split {n} devices")
    return shapes


def check_batch(batch: int, n_data: int) -> None:
    if batch % n_data:
        raise ValueError(
            f"train_sharded: the global batch (--batch-size={batch}) must be divisible by the "
            f"number of devices on the 'data' axis (={n_data}); use a multiple of {n_data}"
        )


def make_mesh(shape, devices, axis_type):
    names = ("data", "height")[: len(shape)]
    k = int(np.prod(shape))
    return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape), devices=devices[:k])


def global_array(local_or_global: np.ndarray, sharding) -> jax.Array:
    """A global array from what this process holds of it (everything, on one host).

    Each process passes the block of the global value its own devices hold (the bounding box
    of their shards); `jax.make_array_from_process_local_data` assembles the global array."""
    shape = local_or_global.shape
    boxes = sharding.addressable_devices_indices_map(shape).values()
    block = tuple(
        slice(min(b[d].start or 0 for b in boxes), max(b[d].stop or n for b in boxes))
        for d, n in enumerate(shape)
    )
    return jax.make_array_from_process_local_data(sharding, local_or_global[block], shape)


def to_host(tree):
    """Fetch arrays to NumPy on every process (global ones spanning hosts are all-gathered)."""
    from jax.experimental import multihost_utils

    def get(a):
        if a.is_fully_addressable:
            return np.asarray(a)
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    return jax.tree.map(get, tree)


def rel_error(a, b) -> float:
    """max over leaves of max|a - b| / max|b|."""
    errs = [
        float(np.max(np.abs(u - v)) / max(float(np.max(np.abs(v))), 1e-30))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    ]
    return max(errs)


def run_mesh(shape, devices, args, data, order, init, optimizer, reference, bar) -> dict:
    axis_type = AxisType.Explicit if args.axis_type == "explicit" else AxisType.Auto
    mesh = make_mesh(shape, devices, axis_type)
    check_batch(args.batch_size, shape[0])
    batch_spec = NamedSharding(mesh, P(*mesh.axis_names))  # N over data (, rows over height)
    labels_spec = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    with jax.set_mesh(mesh):
        params = jax.tree.map(lambda a: global_array(a, replicated), init)
        opt_state = jax.jit(optimizer.init, out_shardings=replicated)(params)
        x_test = global_array(data["x_test"], replicated)
        y_test = global_array(data["y_test"], replicated)

        def batch(i):
            rows = order[i]
            return global_array(data["x"][rows], batch_spec), global_array(
                data["y"][rows], labels_spec
            )

        # replicated outputs: on auto meshes XLA would otherwise pick layouts the next call
        # (compiled for replicated parameters) does not take
        @partial(jax.jit, out_shardings=replicated)
        def step(params, opt_state, x, y):
            loss, grads = jax.value_and_grad(loss_jaxconv)(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = jax.tree.map(lambda p, u: p + u, params, updates)
            return params, opt_state, (loss, grads)

        @jax.jit
        def accuracy(params, x, y):
            return jnp.mean(jnp.argmax(logits_jaxconv(params, x), axis=1) == y)

        x0, y0 = batch(0)
        t0 = time.perf_counter()
        exe = step.lower(params, opt_state, x0, y0).compile()
        compile_s = time.perf_counter() - t0
        # warm-up, and the first step's loss and gradients (pure: the update is dropped)
        err = rel_error(to_host(exe(params, opt_state, x0, y0)[2]), reference)
        times = []
        for i in range(args.steps):
            t0 = time.perf_counter()
            params, opt_state, (loss, _) = exe(params, opt_state, *batch(i))
            jax.block_until_ready(loss)
            times.append(time.perf_counter() - t0)
            if i % 50 == 0 or i == args.steps - 1:
                bar.set_postfix_str(f"mesh={shape} loss={float(loss):.3f}", refresh=False)
            bar.update(1)
        acc = float(accuracy(params, x_test, y_test))
    return {
        "shape": shape,
        "names": mesh.axis_names,
        "devices": int(np.prod(shape)),
        "per_device_batch": args.batch_size // shape[0],
        "acc": 100 * acc,
        "step_ms": 1e3 * statistics.median(times),
        "compile_s": compile_s,
        "first_rel_err": err,
        "equal": err <= RTOL,
    }


def main(argv=None) -> dict:
    import optax

    args = parse_args(argv)
    if args.distributed:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    lead = jax.process_index() == 0
    out = _common.results_dir(args.out) if lead else None
    info = _common.environment(extra=("optax", "scikit-learn"))
    info["processes"] = f"{jax.process_count()} (this is process {jax.process_index()})"
    _common.print_banner("digits CNN, data-parallel over jax.sharding meshes", info)
    devices = jax.devices()
    print(f"device count: {len(devices)}")
    print(f"devices: {devices}")
    shapes = meshes(args, devices, args.quick)
    data = load_data()
    n = data["x"].shape[0]
    order = batch_order(n, args.batch_size, args.steps, 0)
    optimizer = optax.adam(args.lr)

    # the single-device reference: first step's loss and gradients, unsharded, on one device
    with jax.default_device(jax.local_devices()[0]):
        init = jax.tree.map(np.asarray, jax.jit(init_params)(jax.random.key(0)))
        x_ref, y_ref = jnp.asarray(data["x"][order[0]]), jnp.asarray(data["y"][order[0]])
        reference = to_host(jax.jit(jax.value_and_grad(loss_jaxconv))(init, x_ref, y_ref))

    results = []
    t_all = time.perf_counter()
    with _common.progress(len(shapes) * args.steps, "train", args.no_progress or not lead) as bar:
        for shape in shapes:
            results.append(
                run_mesh(shape, devices, args, data, order, init, optimizer, reference, bar)
            )
    total = time.perf_counter() - t_all
    rows = [
        [
            " × ".join(f"{a}={k}" for a, k in zip(r["names"], r["shape"])),
            r["devices"],
            r["per_device_batch"],
            f"{r['acc']:.2f}",
            f"{r['step_ms']:.2f}",
            f"{r['compile_s']:.2f}",
            f"{r['first_rel_err']:.1e}",
            "yes" if r["equal"] else "**NO**",
        ]
        for r in results
    ]
    table = _common.markdown_table(HEADER, rows)
    print(table)
    print(f"total {total:.1f} s")
    ok = all(r["equal"] for r in results)
    if lead:
        mode = "--quick" if args.quick else "full run"
        md = out / "train_sharded.md"
        md.write_text(
            "\n".join(
                [
                    "# digits CNN trained data-parallel with jax.sharding",
                    "",
                    f"Written by `experiments/train_sharded.py` ({mode}): {ARCH}, Adam lr "
                    f"{args.lr}, global batch {args.batch_size}, {args.steps} steps from the same "
                    f"init (seed 0) on the same batches; {args.axis_type} meshes over "
                    f"{len(devices)} {devices[0].platform} devices "
                    f"({jax.process_count()} process(es)). Batches sharded "
                    '`P("data")` (N) or `P("data", "height")` (N and image rows); parameters '
                    "and Adam state replicated; one jitted train step.",
                    "",
                    table,
                    "",
                    f"- first-step check: the loss and every gradient of the first batch on the "
                    f"mesh vs the same step unsharded on one device, max |Δ| / max |reference| "
                    f"per array, required ≤ {RTOL:g}",
                    "- step ms: median wall time of one step (host feeds the batch through "
                    "`jax.make_array_from_process_local_data`, the jitted update runs, "
                    "`block_until_ready`); test accuracy after the last step, "
                    f"{len(data['y_test'])} test images",
                    f"- total {total:.1f} s for all meshes",
                    "",
                    "## Environment",
                    "",
                    _common.markdown_environment(info),
                    "",
                ]
            )
        )
        print(f"wrote {md}")
    if not ok:
        print("FAILED: a sharded first step differs from the single-device run", file=sys.stderr)
        raise SystemExit(1)
    return {"results": results, "total": total}


if __name__ == "__main__":
    main()
