"""The native kernels beside the pure-JAX lowerings: threads, and bfloat16.

**Threads: do the native kernels fight XLA's own threads, or each other?** The oneDNN
convolutions run on OpenMP threads (GNU OpenMP, one team per calling thread), XLA:CPU on its
intra-op pool. XLA's thunk runtime may run two independent custom calls at once, each then
starting its own OpenMP team: on a machine with P cores that is 2 P busy threads. Measured
(fwd+bwd medians, float32, interleaved rounds, the tuned allocator):

- ``one``: one layer's forward + backward in a jitted function;
- ``two``: two independent copies of that layer (different inputs and weights) in *one*
  jitted function, where XLA is free to overlap them; compared with 2 x ``one``;
- ``chain``: the same two layers one after the other (the second reads the first's input
  gradient): no overlap possible, the reference for ``two``;
- each also with ``backward="auto"`` traced without the kernels (``pure_jax()``).

``two`` / (2 x ``one``) near 1.0 means the teams do not fight (overlap gains nothing and costs
nothing); well above 1.0 means they oversubscribe the cores. It also checks that the two
layers' results are bitwise the same run to run.

**bfloat16**: the benchmark's layers (experiments/layers.py) forward + backward with bfloat16
operands, on the kernels (oneDNN's bf16 convolutions, float32 accumulation) against the
pure-JAX picks (`pure_jax()`), with float32 on the kernels for scale.

Writes experiments/results/native_kernels.md.

    python experiments/native_kernels.py [--rounds 15] [--quick] [--out experiments/results]
"""

from __future__ import annotations

import argparse
import contextlib
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

import jaxconv as jc  # noqa: E402
from jaxconv._core.native import pure_jax  # noqa: E402

# bfloat16 table: these benchmark layers at full size
BF16_LAYERS = ("resnet_3x3", "resnet_down", "stem_7x7_s2", "dilated", "depthwise", "conv3d_small")
# (name, x (N, H, W, C), w (kh, kw, C, F), conv kwargs): the benchmark's resnet layers, halved
LAYERS = [
    ("resnet_3x3/2", (16, 32, 32, 64), (3, 3, 64, 64), dict(padding=1)),
    ("resnet_down/2", (16, 32, 32, 64), (3, 3, 64, 128), dict(stride=2, padding=1)),
    ("depthwise/2", (16, 32, 32, 64), (3, 3, 1, 64), dict(padding=1, groups=64)),
]


def layer(kw):
    """(x, w, g) -> (y, dx, dw): the layer's forward and its VJP with the cotangent g."""

    def f(x, w, g):
        y, vjp = jax.vjp(lambda x, w: jc.conv(x, w, **kw), x, w)
        return (y, *vjp(g))

    return f


def programs(kw):
    f = layer(kw)

    def one(x, w, g):
        return f(x, w, g)

    def two(x, w, g, x2, w2, g2):
        return f(x, w, g), f(x2, w2, g2)

    def chain(x, w, g, x2, w2, g2):  # the second layer reads the first's input gradient
        first = f(x, w, g)
        return first, f(x2 + 1e-3 * first[1], w2, g2)

    return {"one": one, "two": two, "chain": chain}


def measure(fns, rounds):
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, call in fns.items():
            time.sleep(0.002)
            t0 = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="CI-sized: one layer each, 2 rounds")
    args = ap.parse_args(argv)
    _common.reexec_with_tuned_malloc()
    info = _common.environment()
    status = jc.native_available()
    _common.print_banner("native kernels: threads and bfloat16", info)
    if not status:
        print(f"native kernels unavailable: {status.reason}")
        return 1
    rng = np.random.default_rng(0)
    rows, bitwise = [], True
    if args.quick:
        args.rounds = 2
    for name, xs, ws, kw in LAYERS[-1:] if args.quick else LAYERS:
        x, x2 = (jnp.asarray(rng.standard_normal(xs), jnp.float32) for _ in range(2))
        w, w2 = (jnp.asarray(rng.standard_normal(ws) / np.prod(ws[:-1]) ** 0.5, jnp.float32)
                 for _ in range(2))  # fmt: skip
        ys = jax.eval_shape(partial(jc.conv, **kw), x, w).shape
        g, g2 = (jnp.asarray(rng.standard_normal(ys), jnp.float32) for _ in range(2))
        pair = (x, w, g, x2, w2, g2)
        calls = {}
        for mode in ("native", "pure"):
            operands = {"one": (x, w, g), "two": pair, "chain": pair}
            with pure_jax() if mode == "pure" else contextlib.nullcontext():
                compiled = {
                    k: jax.jit(p).lower(*operands[k]).compile() for k, p in programs(kw).items()
                }
            for k, exe in compiled.items():
                a = operands[k]
                calls[f"{mode} {k}"] = lambda exe=exe, a=a: jax.block_until_ready(exe(*a))
            if mode == "native":
                first = jax.tree.map(np.asarray, compiled["two"](*pair))
                for _ in range(3):
                    again = jax.tree.map(np.asarray, compiled["two"](*pair))
                    bitwise &= all(
                        np.array_equal(p, q)
                        for p, q in zip(jax.tree.leaves(first), jax.tree.leaves(again))
                    )
        for c in calls.values():  # warm
            c()
        med = measure(calls, args.rounds)
        for mode in ("native", "pure"):
            one, two = med[f"{mode} one"], med[f"{mode} two"]
            chain = med[f"{mode} chain"]
            rows.append(
                [
                    name,
                    mode,
                    f"{one:.3g}",
                    f"{two:.3g}",
                    f"{chain:.3g}",
                    f"{two / (2 * one):.2f}",
                ]
            )
        print(rows[-2], rows[-1], flush=True)
    header = ["layer", "lowering", "one ms", "two ms", "chain ms", "two / (2 × one)"]
    table = _common.markdown_table(header, rows)
    bf16 = bf16_table(args.rounds, BF16_LAYERS[-1:] if args.quick else BF16_LAYERS)
    text = (
        "# Native kernels: threads and bfloat16\n\n## Two independent convolutions in one jitted "
        "function\n\n"
        "Generated by `python experiments/native_kernels.py`; fwd+bwd medians over "
        f'{args.rounds} interleaved rounds, float32, `native` = `backward="auto"` with the '
        "oneDNN kernels, `pure` = the same traced without them.\n\n"
        + _common.markdown_environment(info)
        + "\n\n## Results\n\n"
        + table
        + "\n\n"
        + f"- results of `two` bitwise the same over 4 runs: {'yes' if bitwise else 'NO'}\n"
        + "\n## bfloat16\n\n"
        "Forward + backward of the benchmark's layers (experiments/layers.py) with bfloat16 "
        'operands: `backward="auto"` on the kernels (oneDNN\'s bf16 convolutions, float32 '
        "accumulation) and traced without them (pure JAX), and float32 on the kernels; "
        f"medians over {args.rounds} interleaved rounds.\n\n" + bf16 + "\n"
    )
    out = _common.results_dir(args.out) / "native_kernels.md"
    out.write_text(text)
    print(table)
    print(bf16)
    print(f"bitwise run to run: {bitwise}; wrote {out}")
    return 0


def bf16_table(rounds: int, names=BF16_LAYERS) -> str:
    """The bfloat16 table: per layer, bf16 on the kernels, bf16 pure JAX, f32 on the kernels."""
    from layers import LAYERS as BENCH
    from layers import conv_layer

    rng = np.random.default_rng(1)
    rows = []
    for name in names:
        cfg = BENCH[name]
        x_shape, w_shape, stride, pads, dilation, groups = conv_layer(cfg)
        kw = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
        calls = {}
        for label, dtype, pure in (
            ("bf16 native", jnp.bfloat16, False),
            ("bf16 pure", jnp.bfloat16, True),
            ("f32 native", jnp.float32, False),
        ):
            x = jnp.asarray(rng.standard_normal(x_shape), dtype)
            w = jnp.asarray(rng.standard_normal(w_shape) / np.prod(w_shape[:-1]) ** 0.5, dtype)
            g = jnp.asarray(
                rng.standard_normal(jax.eval_shape(partial(jc.conv, **kw), x, w).shape), dtype
            )
            with pure_jax() if pure else contextlib.nullcontext():
                exe = jax.jit(layer(kw)).lower(x, w, g).compile()
            calls[label] = lambda exe=exe, a=(x, w, g): jax.block_until_ready(exe(*a))
        for c in calls.values():
            c()
        med = measure(calls, rounds)
        a, b, c = med["bf16 native"], med["bf16 pure"], med["f32 native"]
        rows.append([f"{name}: {cfg.label}", f"{a:.3g}", f"{b:.3g}", f"{c:.3g}", f"{a / b:.2f}×"])
        print(rows[-1], flush=True)
    header = ["layer", "bf16 native ms", "bf16 pure ms", "f32 native ms", "bf16 native / pure"]
    return _common.markdown_table(header, rows)


if __name__ == "__main__":
    sys.exit(main())
