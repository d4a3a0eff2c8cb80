"""Flax + jaxconv: `Conv(conv_general_dilated=jaxconv.conv_general_dilated)` trains like stock Flax.

`jaxconv.conv_general_dilated` has the signature and values of `jax.lax.conv_general_dilated`,
but its gradient is jaxconv's hand-written VJP. Flax's convolution layers take the function as an
argument, so switching a Flax model to jaxconv's backward passes is one keyword. This script
builds a small CNN twice -- stock Flax and Flax + jaxconv -- from the same initial parameters,
trains both with Adam on the same batches (scikit-learn digits when installed, else random
data), and checks that losses and parameters agree to float32 round-off (~1e-6). Both
`flax.linen.Conv` and `flax.nnx.Conv` are exercised.

Optional: needs the `flax` extra (``pip install -e '.[flax]'``); without it the script says so
and exits 0.

Usage::

    python experiments/flax_example.py [--steps 100] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

import jaxconv as jc  # noqa: E402

TOL = 1e-5  # float32: relative agreement of losses and parameters


def load_data(n: int):
    """Digits (8x8) scaled to [0, 1] when scikit-learn is installed, else seeded random images."""
    try:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images[:n] / 16.0).astype(np.float32)[..., None]
        y = d.target[:n].astype(np.int32)
        return x, y, "sklearn digits"
    except ImportError:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, 8, 8, 1)).astype(np.float32)
        return x, rng.integers(0, 10, n).astype(np.int32), "random images (no scikit-learn)"


def linen_model(conv_fn):
    from flax import linen as nn

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(16, (3, 3), padding="SAME", conv_general_dilated=conv_fn)(x)
            x = nn.relu(x)
            x = nn.Conv(
                32,
                (3, 3),
                strides=2,
                padding=((1, 1), (1, 1)),
                feature_group_count=2,
                conv_general_dilated=conv_fn,
            )(x)
            x = nn.relu(x)
            x = nn.Conv(
                32, (2, 2), kernel_dilation=2, padding="VALID", conv_general_dilated=conv_fn
            )(x)
            x = x.mean(axis=(1, 2))
            return nn.Dense(10)(x)

    return CNN()


def nnx_model(conv_fn, seed: int):
    from flax import nnx

    class CNN(nnx.Module):
        def __init__(self, rngs):
            self.c1 = nnx.Conv(
                1, 16, (3, 3), padding="SAME", conv_general_dilated=conv_fn, rngs=rngs
            )
            self.c2 = nnx.Conv(
                16,
                32,
                (3, 3),
                strides=2,
                padding=((1, 1), (1, 1)),
                feature_group_count=2,
                conv_general_dilated=conv_fn,
                rngs=rngs,
            )
            self.fc = nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x):
            x = nnx.relu(self.c1(x))
            x = nnx.relu(self.c2(x))
            return self.fc(x.mean(axis=(1, 2)))

    return CNN(nnx.Rngs(seed))


def cross_entropy(logits, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def train_linen(conv_fn, params, x, y, steps, batch, lr):
    import optax

    model = linen_model(conv_fn)
    opt = optax.adam(lr)

    @jax.jit
    def run(params, x, y):
        def step(carry, i):
            params, state = carry
            rows = (i * batch + jnp.arange(batch)) % x.shape[0]
            loss, g = jax.value_and_grad(
                lambda p: cross_entropy(model.apply({"params": p}, x[rows]), y[rows])
            )(params)
            upd, state = opt.update(g, state, params)
            return (optax.apply_updates(params, upd), state), loss

        (params, _), losses = lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
        return params, losses

    return jax.block_until_ready(run(params, x, y))


def train_nnx(conv_fn, seed, x, y, steps, batch, lr):
    import optax
    from flax import nnx

    model = nnx_model(conv_fn, seed)
    graphdef, params = nnx.split(model, nnx.Param)
    opt = optax.adam(lr)

    @jax.jit
    def run(params, x, y):
        def step(carry, i):
            params, state = carry
            rows = (i * batch + jnp.arange(batch)) % x.shape[0]

            def loss_fn(p):
                return cross_entropy(nnx.merge(graphdef, p)(x[rows]), y[rows])

            loss, g = jax.value_and_grad(loss_fn)(params)
            upd, state = opt.update(g, state, params)
            return (optax.apply_updates(params, upd), state), loss

        (params, _), losses = lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
        return params, losses

    return jax.block_until_ready(run(params, x, y))


def compare(name, stock, ours) -> dict:
    (p0, l0), (p1, l1) = stock, ours
    l0, l1 = np.asarray(l0), np.asarray(l1)
    dloss = float(np.max(np.abs(l0 - l1)))
    dparam = _common.max_abs_diff(p0, p1)
    pscale = max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(p0))
    ok = dloss <= TOL * max(1.0, float(np.max(np.abs(l0)))) and dparam <= TOL * max(1.0, pscale)
    print(
        f"{name}: loss {l0[0]:.4f} -> {l0[-1]:.4f} (stock) vs {l1[0]:.4f} -> {l1[-1]:.4f} "
        f"(jaxconv); max |Δloss| {dloss:.1e}, max |Δparam| {dparam:.1e}  "
        f"{'OK' if ok else 'MISMATCH'}"
    )
    return {
        "dloss": dloss,
        "dparam": dparam,
        "ok": ok,
        "loss_first": float(l0[0]),
        "loss_last_stock": float(l0[-1]),
        "loss_last_jaxconv": float(l1[-1]),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--quick", action="store_true", help="CI-sized: 5 steps")
    ap.add_argument("--out", default=None, help="output folder (default experiments/results/)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps = 5
    try:
        import flax  # noqa: F401
        import optax  # noqa: F401
    except ImportError as e:
        print(
            f"flax_example: skipped, {e.name} is not installed "
            "(pip install -e '.[flax,experiments]')"
        )
        return {"skipped": str(e)}
    info = _common.environment(extra=("flax", "optax"))
    _common.print_banner("Flax Conv with conv_general_dilated=jaxconv.conv_general_dilated", info)
    x_np, y_np, source = load_data(512)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    print(
        f"data: {source}, x {x.shape} {x.dtype}; {args.steps} Adam steps, batch {args.batch_size}"
    )

    t0 = time.perf_counter()
    params = jax.jit(linen_model(lax.conv_general_dilated).init)(jax.random.key(0), x[:1])["params"]
    res = {}
    res["linen"] = compare(
        "flax.linen",
        train_linen(lax.conv_general_dilated, params, x, y, args.steps, args.batch_size, args.lr),
        train_linen(jc.conv_general_dilated, params, x, y, args.steps, args.batch_size, args.lr),
    )
    res["nnx"] = compare(
        "flax.nnx  ",
        train_nnx(lax.conv_general_dilated, 0, x, y, args.steps, args.batch_size, args.lr),
        train_nnx(jc.conv_general_dilated, 0, x, y, args.steps, args.batch_size, args.lr),
    )
    seconds = time.perf_counter() - t0

    out = _common.results_dir(args.out)
    rows = [
        [
            k,
            f"{r['loss_first']:.4f}",
            f"{r['loss_last_stock']:.4f}",
            f"{r['loss_last_jaxconv']:.4f}",
            f"{r['dloss']:.1e}",
            f"{r['dparam']:.1e}",
            "ok" if r["ok"] else "MISMATCH",
        ]
        for k, r in res.items()
    ]
    md = out / "flax.md"
    md.write_text(
        "\n".join(
            [
                "# Flax with jaxconv.conv_general_dilated",
                "",
                f"Written by `experiments/flax_example.py` ({args.steps} Adam steps, lr {args.lr}, "
                f"batch {args.batch_size}, {source}, float32, {seconds:.1f} s). Same initial "
                "parameters and batches; the only difference is "
                "`conv_general_dilated=jaxconv.conv_general_dilated` (explicit VJP) vs Flax's "
                "default `jax.lax.conv_general_dilated` (autodiff).",
                "",
                _common.markdown_table(
                    [
                        "API",
                        "loss at step 0",
                        "final loss (stock)",
                        "final loss (jaxconv)",
                        "max abs Δloss",
                        "max abs Δparam",
                        "status",
                    ],
                    rows,
                ),
                "",
                "## Environment",
                "",
                _common.markdown_environment(info),
                "",
            ]
        )
    )
    print(f"wrote {md}")
    if not all(r["ok"] for r in res.values()):
        raise SystemExit("flax_example: jaxconv and stock Flax disagree")
    return res


if __name__ == "__main__":
    main()
