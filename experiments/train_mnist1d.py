"""MNIST-1D with jaxconv: the paper's CNN, trained with explicit VJPs and with JAX autodiff.

Reproduces the convolutional baseline of Greydanus (2020), "Scaling down deep learning" (CNN 94%
test accuracy on MNIST-1D), built from jaxconv ops only, and trains a plain `lax`/`jax.nn` twin of
the same network from the same initial parameters on the same batches, so the two runs differ only
in how gradients are computed: jaxconv's hand-written backward passes vs JAX's autodiff rules.

Recipe (the paper's `train.py` / `models.py`, PyTorch):
  network   Conv1d(1->25, k5, s2, p1) + ReLU -> Conv1d(25->25, k3, s2, p1) + ReLU
            -> Conv1d(25->25, k3, s2, p1) + ReLU -> flatten -> Linear(125 -> 10)
            lengths 40 -> 19 -> 10 -> 5, and 25 * 5 = 125 features. Here activations are
            channels_last (N, length, channels), so flatten orders features length-major; both
            twins flatten the same way.
  init      PyTorch's default: every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            (kaiming_uniform(a=sqrt(5)) for weights), fan_in = C_in * k or in_features.
  optimiser Adam, lr 1e-2, betas (0.9, 0.999), eps 1e-8 (torch.optim.Adam == optax.adam).
  batches   100 in order: step i uses the training rows (i * 100) % 4000 ... + 100 (the dataset
            comes shuffled once from `make_dataset`), steps 0 .. 6000 (6001 updates).
  metric    test accuracy after the last update.

The data are generated offline by `mnist1d.data.make_dataset(get_dataset_args())` (fixed dataset
seed 42); the `--seeds` vary the parameter initialisation.

Training runs as one jitted `lax.scan` per evaluation interval (`--eval-every`), compiled ahead of
time and warmed up, so the reported training time excludes compilation (reported separately).
Agreement of the two variants is reported three ways: the gradients at init (float32), a short
float64 run of both (`--x64-steps`), and the float32 parameter drift against a control run of
jaxconv itself with a different summation order (see `gradient_agreement`, `float64_agreement`).

Outputs (experiments/results/ or `--out`): mnist1d.md (per-seed table, mean ± std, agreement,
environment) and mnist1d_curves.png (loss and test accuracy vs step, both variants).

Usage::

    python experiments/train_mnist1d.py                # 5 seeds, full run, writes results
    python experiments/train_mnist1d.py --quick --out /tmp/m1d    # smoke test (1 seed, 301 steps)
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

import jaxconv as jc  # noqa: E402

# (kernel, stride, padding, C_in, C_out) of the three conv layers.
CONVS = ((5, 2, 1, 1, 25), (3, 2, 1, 25, 25), (3, 2, 1, 25, 25))
N_CLASSES = 10


# --------------------------------------------------------------------------------------- data
def load_data(quick: bool) -> dict[str, np.ndarray]:
    """MNIST-1D from the package, generated offline (never `get_dataset`, which downloads)."""
    _common.use_agg()  # mnist1d.utils imports pyplot
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    if quick:
        args.num_samples = 1000  # 800 train / 200 test: seconds instead of minutes of CI
    data = make_dataset(args)
    out = {
        "x": np.asarray(data["x"], np.float32),
        "y": np.asarray(data["y"], np.int32),
        "x_test": np.asarray(data["x_test"], np.float32),
        "y_test": np.asarray(data["y_test"], np.int32),
    }
    assert out["x"].ndim == 2 and out["x"].shape[0] == out["y"].shape[0], out["x"].shape
    return out


# ------------------------------------------------------------------------------------ network
def init_params(key: jax.Array, length: int = 40, dtype=jnp.float32) -> dict:
    """PyTorch's default init: weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    def uniform(key, shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    params = {}
    keys = jax.random.split(key, 2 * len(CONVS) + 2)
    for i, (k, s, p, cin, cout) in enumerate(CONVS):
        params[f"conv{i + 1}"] = {
            "w": uniform(
                keys[2 * i], (k, cin, cout), cin * k
            ),  # channels_last kernel (k, C_in, C_out)
            "b": uniform(keys[2 * i + 1], (cout,), cin * k),
        }
        length = (length + 2 * p - k) // s + 1
    n_in = length * CONVS[-1][-1]
    params["linear"] = {
        "w": uniform(keys[-2], (n_in, N_CLASSES), n_in),
        "b": uniform(keys[-1], (N_CLASSES,), n_in),
    }
    return params


def logits_jaxconv(params: dict, x: jax.Array) -> jax.Array:
    """The CNN from jaxconv ops (every backward hand-written). x (N, L) -> logits (N, 10)."""
    h = x[..., None]  # (N, L, 1): channels_last
    for i, (_, s, p, _, _) in enumerate(CONVS):
        layer = params[f"conv{i + 1}"]
        h = jc.relu(jc.conv(h, layer["w"], layer["b"], stride=s, padding=p))
    h = h.reshape(h.shape[0], -1)  # (N, 5 * 25), length-major
    return jc.linear(h, params["linear"]["w"], params["linear"]["b"])


def logits_autodiff(params: dict, x: jax.Array) -> jax.Array:
    """The same CNN from `lax`/`jax.nn`; its gradients come from JAX's autodiff rules."""
    h = x[..., None]
    for i, (_, s, p, _, _) in enumerate(CONVS):
        layer = params[f"conv{i + 1}"]
        h = lax.conv_general_dilated(
            h, layer["w"], (s,), [(p, p)], dimension_numbers=("NWC", "WIO", "NWC")
        )
        h = jax.nn.relu(h + layer["b"])
    h = h.reshape(h.shape[0], -1)
    return h @ params["linear"]["w"] + params["linear"]["b"]


def loss_jaxconv(params, x, y):
    return jc.softmax_cross_entropy(logits_jaxconv(params, x), y)


def loss_autodiff(params, x, y):
    logp = jax.nn.log_softmax(logits_autodiff(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


VARIANTS = {
    "jaxconv": (loss_jaxconv, logits_jaxconv),
    "autodiff": (loss_autodiff, logits_autodiff),
}


# ----------------------------------------------------------------------------------- training
def batch_in_order(data, i):
    """Step i trains on rows (i * B) % n ... + B of the training set (batches cut in order)."""
    b = i % data["xb"].shape[0]
    return data["xb"][b], data["yb"][b]


def make_trainer(data, args, *, steps=None, every=None, dtype=jnp.float32):
    import optax

    bs = args.batch_size
    n = (data["x"].shape[0] // bs) * bs
    length = data["x"].shape[1]
    device_data = {
        "xb": jnp.asarray(data["x"][:n].reshape(-1, bs, length), dtype),
        "yb": jnp.asarray(data["y"][:n].reshape(-1, bs)),
        "x_test": jnp.asarray(data["x_test"], dtype),
        "y_test": jnp.asarray(data["y_test"]),
    }
    return _common.ScanTrainer(
        VARIANTS,
        partial(init_params, length=length, dtype=dtype),
        optax.adam(args.lr),
        device_data,
        batch_in_order,
        args.steps if steps is None else steps,
        args.eval_every if every is None else every,
    )


def gradient_agreement(data, args, dtype) -> float:
    """max |dL/dθ (jaxconv) - dL/dθ (autodiff)| at seed 0's init on the first batch."""
    params = init_params(jax.random.key(0), data["x"].shape[1], dtype)
    x = jnp.asarray(data["x"][: args.batch_size], dtype)
    y = jnp.asarray(data["y"][: args.batch_size])
    g1 = jax.jit(jax.grad(loss_jaxconv))(params, x, y)
    g2 = jax.jit(jax.grad(loss_autodiff))(params, x, y)
    return _common.max_abs_diff(g1, g2)


def float64_agreement(data, args) -> dict:
    """Both variants in float64 for `args.x64_steps` steps (seed 0): how far apart they end up.

    Separates the math from float32 round-off: in float64 the trajectories stay together to
    ~1e-12, while in float32 Adam (which divides by sqrt(v), so round-off in a near-zero
    gradient component becomes a step of size lr) and the chaotic dynamics amplify 1e-8 gradient
    differences over thousands of steps.
    """
    with jax.enable_x64(True):
        grad = gradient_agreement(data, args, jnp.float64)
        steps = args.x64_steps
        trainer = make_trainer(data, args, steps=steps, every=steps, dtype=jnp.float64)
        runs = {v: trainer.train(v, 0) for v in VARIANTS}
        dparam = _common.max_abs_diff(runs["jaxconv"]["params"], runs["autodiff"]["params"])
    return {"grad": grad, "steps": steps, "dparam": dparam}


# ----------------------------------------------------------------------------------- outputs
HEADER = [
    "seed",
    "acc jaxconv (%)",
    "acc autodiff (%)",
    "max abs Δparam",
    "jaxconv train s",
    "jaxconv incl. compile s",
    "autodiff train s",
    "autodiff incl. compile s",
]


def write_markdown(path: Path, args, rows, summary, info, extra) -> None:
    text = [
        "# MNIST-1D CNN: jaxconv (explicit VJPs) vs JAX autodiff",
        "",
        f"Written by `experiments/train_mnist1d.py` ({'--quick' if args.quick else 'full run'}): "
        f"{args.steps} Adam steps (lr {args.lr}, batch {args.batch_size} in order), "
        "paper CNN (Greydanus 2020: 94%), same init and batches for both variants; "
        "accuracy after the last step.",
        "",
        _common.markdown_table(HEADER, rows),
        "",
        *summary,
        "",
        *extra,
        "",
        "## Environment",
        "",
        _common.markdown_environment(info),
        "",
    ]
    path.write_text("\n".join(text))


# ----------------------------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="number of init seeds (0 .. N-1)")
    ap.add_argument("--steps", type=int, default=6001, help="Adam steps (paper: 6001 = 0..6000)")
    ap.add_argument("--eval-every", type=int, default=250, help="steps per jitted scan chunk")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="CI-sized: 1 seed, 301 steps, 1000 samples, no float64 run",
    )
    ap.add_argument("--out", default=None, help="output folder (default experiments/results/)")
    ap.add_argument(
        "--x64-steps",
        type=int,
        default=500,
        help="also train both variants this many steps in float64 (seed 0; 0: skip)",
    )
    ap.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.eval_every = min(args.seeds, 1), 301, 100
        args.x64_steps = 0  # the float64 twin costs more compile time than the quick run
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = _common.results_dir(args.out)
    info = _common.environment(extra=("optax", "mnist1d"))
    _common.print_banner("MNIST-1D CNN: jaxconv explicit VJPs vs JAX autodiff", info)

    t0 = time.perf_counter()
    data = load_data(args.quick)
    print(
        f"data: x {data['x'].shape} {data['x'].dtype}, x_test {data['x_test'].shape}, "
        f"{len(np.unique(data['y']))} classes ({time.perf_counter() - t0:.1f} s to generate)"
    )
    grad_diff = gradient_agreement(data, args, jnp.float32)
    print(f"max |grad jaxconv - grad autodiff| at init, first batch: {grad_diff:.2e}")
    x64 = float64_agreement(data, args) if args.x64_steps > 0 else None
    if x64 is not None:
        print(
            f"float64: max |grad diff| at init {x64['grad']:.1e}, max |Δparam| after "
            f"{x64['steps']} steps {x64['dparam']:.1e}"
        )

    trainer = make_trainer(data, args)
    runs: dict[str, list[dict]] = {"jaxconv": [], "autodiff": []}
    seeds = list(range(args.seeds))
    # Control for float32 round-off: jaxconv again (seed 0) with the rows of every batch reversed.
    # The mean loss and its gradient are mathematically the same; only float32 sums run in
    # another order.
    flipped = {**trainer.data, "xb": trainer.data["xb"][:, ::-1], "yb": trainer.data["yb"][:, ::-1]}
    with _common.progress((args.seeds * 2 + 1) * args.steps, "train", args.no_progress) as bar:
        for seed in seeds:
            for variant in runs:
                runs[variant].append(trainer.train(variant, seed, bar))
        control = trainer.train("jaxconv", 0, bar, data=flipped)

    compile_s = trainer.compile_seconds
    acc = {v: [100 * r["test_acc"][-1] for r in rs] for v, rs in runs.items()}
    secs = {v: [r["seconds"] for r in rs] for v, rs in runs.items()}
    dparams = [
        _common.max_abs_diff(a["params"], b["params"])
        for a, b in zip(runs["jaxconv"], runs["autodiff"])
    ]
    rows = [
        [
            seed,
            f"{acc['jaxconv'][i]:.1f}",
            f"{acc['autodiff'][i]:.1f}",
            f"{dparams[i]:.1e}",
            f"{secs['jaxconv'][i]:.1f}",
            f"{secs['jaxconv'][i] + compile_s['jaxconv']:.1f}",
            f"{secs['autodiff'][i]:.1f}",
            f"{secs['autodiff'][i] + compile_s['autodiff']:.1f}",
        ]
        for i, seed in enumerate(seeds)
    ]
    # How the two parameter trajectories drift apart, at each evaluation point (seed 0).
    drift = [
        _common.max_abs_diff(p, q)
        for p, q in zip(runs["jaxconv"][0]["snapshots"], runs["autodiff"][0]["snapshots"])
    ]
    control_drift = [
        _common.max_abs_diff(p, q)
        for p, q in zip(runs["jaxconv"][0]["snapshots"], control["snapshots"])
    ]
    result = {
        "seeds": seeds,
        "max_dparam": dparams,
        "grad_diff": grad_diff,
        "float64": x64,
        "control_dparam": control_drift[-1],
    }
    summary = []
    for v in runs:
        m, sd = _common.mean_std(acc[v])
        ms, ss = _common.mean_std(secs[v])
        summary.append(
            f"- **{v}**: test accuracy **{m:.2f} ± {sd:.2f} %** over {len(seeds)} seed(s); "
            f"training {ms:.1f} ± {ss:.1f} s per seed ({1e3 * ms / args.steps:.2f} ms/step), "
            f"{ms + compile_s[v]:.1f} s including the {compile_s[v]:.1f} s compile"
        )
        result[v] = {"acc": acc[v], "seconds": secs[v], "compile_seconds": compile_s[v]}
    summary += [
        f"- max |Δparam| between the two after training: {max(dparams):.1e} (worst seed)",
        "- reference: the paper's CNN reaches 94 %; its PyTorch script reruns at 93.7 ± 0.5 % "
        "and ~23 s per seed on a 2-core CPU",
    ]
    extra = [
        "## Agreement of explicit and automatic gradients",
        "",
        f"- float32: max |∇θ jaxconv − ∇θ autodiff| at seed 0's init, first batch: {grad_diff:.1e}",
        "- float32: max |Δparam| at each evaluation point, seed 0 (step: value): "
        + ", ".join(f"{p}: {d:.0e}" for p, d in zip(trainer.points, drift)),
        *(
            [
                f"- float64 (seed 0, `--x64-steps`): max |∇θ| difference at init "
                f"{x64['grad']:.1e}; max |Δparam| after {x64['steps']} steps {x64['dparam']:.1e}"
            ]
            if x64
            else []
        ),
        "- control, float32: jaxconv vs jaxconv with the rows of every batch reversed (same "
        "math, other summation order), seed 0, max |Δparam| at each evaluation point: "
        + ", ".join(f"{p}: {d:.0e}" for p, d in zip(trainer.points, control_drift))
        + f"; test accuracy {100 * control['test_acc'][-1]:.1f} %",
        "",
        "The explicit VJPs and autodiff compute the same gradient; in float32 they differ in the "
        'last bits (jaxconv\'s `backward="auto"` may use other, exact algorithms whose sums run '
        "in another order). Adam divides each gradient component by its running RMS, so in a "
        "component whose gradient is near zero a last-bit difference becomes a step of size lr, "
        "and training dynamics amplify it: the float32 trajectories drift apart over thousands "
        "of steps (with the same accuracy), while in float64 they stay together. The control "
        "row shows the same float32 drift between two runs of jaxconv itself.",
        "",
        "Times: `train` is the jitted training (`lax.scan` chunks of "
        f"{args.eval_every} steps plus a test-set evaluation after each), excluding compilation; "
        "`incl. compile` adds the one-off ahead-of-time compilation of the chunk executables "
        "(what a fresh single-seed run pays).",
    ]

    print(_common.markdown_table(HEADER, rows))
    for line in summary:
        print(line.replace("**", ""))
    md = out / "mnist1d.md"
    png = out / "mnist1d_curves.png"
    write_markdown(md, args, rows, summary, info, extra)
    _common.plot_curves(png, trainer.points, runs, "MNIST-1D CNN", (94.0, "paper CNN (94%)"))
    print(f"wrote {md}\nwrote {png}")
    return result


if __name__ == "__main__":
    main()
