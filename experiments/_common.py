"""Helpers shared by the experiment scripts: versions banner, results folder, progress, tables,
and `ScanTrainer`, the jitted `lax.scan` training loop of train_mnist1d.py and train_digits.py.

Scripts put this folder on ``sys.path`` and ``import _common`` (running
``python experiments/<script>.py`` does that already); the smoke tests run the scripts as
subprocesses (tests/test_experiments.py).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


# glibc malloc settings for XLA:CPU runs. XLA allocates each call's temporaries and outputs
# afresh; with glibc's defaults, blocks over 32 MiB (and any block of a worker thread's arena)
# come from mmap and go back to the OS on free, so every call page-faults them in again (4 KiB
# at a time, zero-filled). One arena, no mmap and no trimming keep freed blocks for reuse.
# Measured (resnet_3x3 fwd+bwd): 37,000 page faults and 127 ms per call -> 0 and 72 ms.
MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(2**32),
    "MALLOC_TRIM_THRESHOLD_": str(2**40),
}


def malloc_setting() -> str:
    """ "tuned" when this process runs with `MALLOC_ENV`, else "glibc defaults"."""
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return "tuned (" + ", ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()) + ")"
    return "glibc defaults"


def spin_setting() -> str:
    """GNU OpenMP's spin count this process runs with ("default" when unset)."""
    return os.environ.get("GOMP_SPINCOUNT", "default")


def reexec_with(env: dict[str, str]) -> None:
    """Restart this script with `env` added to its environment (glibc and GNU OpenMP read
    theirs only at start-up); a no-op when every entry is set already (to any value: a user's
    own setting stays) or off Linux."""
    missing = {k: v for k, v in env.items() if k not in os.environ}
    if sys.platform.startswith("linux") and missing:
        _restart(missing)


def reexec_with_tuned_malloc() -> None:
    """Restart this script with `MALLOC_ENV` set (glibc reads it only at start-up); a no-op
    when it is set already or off Linux."""
    if sys.platform.startswith("linux") and malloc_setting() == "glibc defaults":
        _restart(MALLOC_ENV)


def _restart(env: dict[str, str]) -> None:
    """Replace this process by the same script with `env` over its environment."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})


def results_dir(out: str | os.PathLike | None) -> Path:
    """The folder outputs go to: ``--out`` when given, else experiments/results/; created."""
    path = Path(out) if out is not None else RESULTS
    path.mkdir(parents=True, exist_ok=True)
    return path


def use_agg() -> None:
    """Select matplotlib's file-only Agg backend (before pyplot is imported anywhere)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(extra: Sequence[str] = ()) -> dict[str, str]:
    """Versions and machine: jax, jaxlib, numpy, python, platform, device, cores, plus `extra`."""
    import jax

    info = {
        "jaxconv": _version("jaxconv") or "(source tree)",
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib") or "?",
        "numpy": _version("numpy") or "?",
    }
    for dist in extra:
        info[dist] = _version(dist) or "not installed"
    dev = jax.devices()[0]
    info.update(
        {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "device": f"{dev.platform} ({dev.device_kind}) x{jax.device_count()}",
            "cpu": f"{cpu_name()}, {os.cpu_count()} cores",
        }
    )
    return info


def print_banner(title: str, info: dict[str, str]) -> None:
    """Print the script's title and its environment, one `key: value` per line."""
    print(f"== {title}")
    width = max(len(k) for k in info)
    for k, val in info.items():
        print(f"   {k:<{width}}  {val}")
    sys.stdout.flush()


def markdown_environment(info: dict[str, str]) -> str:
    """The environment as a markdown bullet list, for the results files."""
    return "\n".join(f"- {k}: `{val}`" for k, val in info.items())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; cells are formatted with str()."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def eval_points(steps: int, every: int) -> list[int]:
    """Steps after which to evaluate: 0, every, 2*every, ... and the last step (steps - 1).

    Matches the MNIST-1D reference loop ``for step in range(total_steps + 1): ...; if step %
    eval_every == 0: evaluate``, where the evaluation follows that step's update.
    """
    points = list(range(0, steps, every))
    if points[-1] != steps - 1:
        points.append(steps - 1)
    return points


def chunk_lengths(steps: int, every: int) -> list[int]:
    """Lengths of the training chunks (one jitted `lax.scan` each) between evaluations."""
    points = eval_points(steps, every)
    return [points[0] + 1] + [b - a for a, b in zip(points, points[1:])]


def progress(total: int, desc: str, disable: bool = False):
    """A tqdm progress bar (tqdm is in the experiments extra); a silent stand-in without it."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm missing

        class _Quiet:
            def update(self, n=1):
                pass

            def set_postfix(self, *a, **k):
                pass

            def set_postfix_str(self, *a, **k):
                pass

            def close(self):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

        return _Quiet()
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=True)


# ----------------------------------------------------------------------------- training loop
def max_abs_diff(a, b) -> float:
    """Largest |a - b| over all leaves of two pytrees of arrays with the same structure."""
    import jax
    import numpy as np

    return max(
        float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


class ScanTrainer:
    """Trains a classifier with `optimizer`, one jitted `lax.scan` per evaluation interval.

    Each variant is ``name -> (loss_fn(params, x, y), logits_fn(params, x))``. `data` holds device
    arrays, including ``x_test``/``y_test``; ``batch_fn(data, i)`` returns step i's ``(x, y)``.
    The executables are compiled ahead of time, once per variant and distinct chunk length (timed
    separately), and warmed up on the initial state, so `train` times training alone.
    """

    def __init__(self, variants, init_fn, optimizer, data, batch_fn, steps: int, every: int):
        self.variants, self.init_fn, self.optimizer = variants, init_fn, optimizer
        self.data, self.batch_fn = data, batch_fn
        self.lengths = chunk_lengths(steps, every)
        self.points = eval_points(steps, every)
        self.steps = steps
        self.compiled: dict[str, dict[int, object]] = {}
        self.compile_seconds: dict[str, float] = {}

    def _chunk_fn(self, variant: str):
        import jax
        import jax.numpy as jnp
        from jax import lax

        loss_fn, logits_fn = self.variants[variant]
        grad_fn = jax.value_and_grad(loss_fn)
        optimizer, batch_fn = self.optimizer, self.batch_fn

        def chunk(params, opt_state, start, data, length):
            def step(carry, i):
                params, opt_state = carry
                loss, g = grad_fn(params, *batch_fn(data, i))
                updates, opt_state = optimizer.update(g, opt_state, params)
                params = jax.tree.map(lambda p, u: p + u.astype(p.dtype), params, updates)
                return (params, opt_state), loss

            steps = start + jnp.arange(length, dtype=jnp.int32)
            (params, opt_state), losses = lax.scan(step, (params, opt_state), steps)
            logits = logits_fn(params, data["x_test"])
            logp = jax.nn.log_softmax(logits.astype(jnp.float32))
            y = data["y_test"]
            test_loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
            test_acc = jnp.mean(jnp.argmax(logits, axis=1) == y)
            return params, opt_state, losses, test_loss, test_acc

        return jax.jit(chunk, static_argnames="length")

    def compile(self, variant: str) -> None:
        import jax
        import jax.numpy as jnp

        chunk = self._chunk_fn(variant)
        params = self.init_fn(jax.random.key(0))
        opt_state = self.optimizer.init(params)
        start = jnp.int32(0)
        t0 = time.perf_counter()
        exes = {
            n: chunk.lower(params, opt_state, start, self.data, length=n).compile()
            for n in sorted(set(self.lengths))
        }
        self.compile_seconds[variant] = time.perf_counter() - t0
        for exe in exes.values():  # warm-up; pure functions, so the results are just dropped
            jax.block_until_ready(exe(params, opt_state, start, self.data))
        self.compiled[variant] = exes

    def train(self, variant: str, seed: int, bar=None, data=None) -> dict:
        """Train one seed from ``init_fn(key(seed))``; returns params, curves, training seconds.

        `data` replaces the constructor's arrays (same shapes), e.g. a per-seed batch order.
        """
        import jax
        import jax.numpy as jnp
        import numpy as np

        if variant not in self.compiled:
            self.compile(variant)
        exes = self.compiled[variant]
        data = self.data if data is None else data
        params = self.init_fn(jax.random.key(seed))
        opt_state = self.optimizer.init(params)
        losses, test_loss, test_acc, snapshots = [], [], [], []
        start, seconds = 0, 0.0
        for n in self.lengths:
            t0 = time.perf_counter()
            params, opt_state, l, tl, ta = exes[n](params, opt_state, jnp.int32(start), data)
            jax.block_until_ready((params, l, tl, ta))
            seconds += time.perf_counter() - t0
            start += n
            losses.append(np.asarray(l))
            test_loss.append(float(tl))
            test_acc.append(float(ta))
            snapshots.append(params)
            if bar is not None:
                bar.set_postfix_str(
                    f"seed={seed} {variant} step={start - 1} loss={float(l[-1]):.3f} "
                    f"test acc={100 * float(ta):.1f}%",
                    refresh=False,
                )
                bar.update(n)
        return {
            "params": params,
            "snapshots": snapshots,
            "train_loss": np.concatenate(losses),
            "test_loss": np.asarray(test_loss),
            "test_acc": np.asarray(test_acc),
            "seconds": seconds,
        }


def plot_curves(path, points, runs: dict, title: str, reference: tuple[float, str] | None = None):
    """Loss (train moving average, test) and test accuracy vs step, mean over seeds per variant."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(11, 4))
    styles = [dict(color="C0", ls="-", lw=2.0), dict(color="C3", ls="--", lw=1.3)]
    lo = 100.0
    for (variant, rs), st in zip(runs.items(), styles):
        loss = np.stack([r["train_loss"] for r in rs])
        w = max(1, min(50, loss.shape[1] // 10))
        smooth = np.stack([np.convolve(r, np.ones(w) / w, mode="valid") for r in loss])
        steps = np.arange(smooth.shape[1]) + w - 1
        ax_l.plot(steps, smooth.mean(0), label=f"{variant}: train (moving avg {w})", **st)
        tl = np.stack([r["test_loss"] for r in rs]).mean(0)
        ax_l.plot(points, tl, marker="o", ms=3, alpha=0.5, label=f"{variant}: test", **st)
        acc = 100 * np.stack([r["test_acc"] for r in rs])
        ax_a.plot(
            points,
            acc.mean(0),
            marker="o",
            ms=3,
            label=f"{variant} (mean, {len(rs)} seed{'s' if len(rs) != 1 else ''})",
            **st,
        )
        if len(rs) > 1:
            ax_a.fill_between(points, acc.min(0), acc.max(0), color=st["color"], alpha=0.12)
        lo = min(lo, float(acc[:, len(points) // 4 :].min()))
    if reference is not None:
        ax_a.axhline(reference[0], color="gray", lw=0.8, ls=":", label=reference[1])
        lo = min(lo, reference[0])
    ax_l.set(xlabel="step", ylabel="cross-entropy", yscale="log", title=f"{title}: loss")
    ax_a.set(
        xlabel="step",
        ylabel="test accuracy (%)",
        ylim=(max(0.0, lo - 5), 100.5),
        title=f"{title}: test accuracy (band: min-max over seeds)",
    )
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
