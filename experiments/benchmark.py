"""Benchmark: jaxconv forward+backward per `backward=` algorithm vs JAX autodiff and PyTorch CPU.

Issue 4's configurations (float32, channels-last for JAX). Each variant computes the forward
output and the gradients with one fixed random cotangent g:

- ``autodiff``: ``jit(vjp)`` of the plain `lax` forward (``conv_general_dilated`` NHWC/HWIO;
  for conv_transpose the lhs-dilated convolution with the flipped kernel; ``reduce_window``
  max/add for the pools) -- what JAX derives by itself;
- ``auto``, ``transpose``, ``phase``, ``matmul``: ``jit(vjp)`` of `jaxconv.conv` /
  `jaxconv.conv_transpose` with that ``backward=`` (the pools have a single algorithm, ``auto``);
- ``torch``: forward + ``torch.autograd.grad`` for dx and dw, for every memory format
  (contiguous NCHW, channels_last) x thread count (``--threads``); the best median is reported.

Before timing, every variant's (y, dx, dw) is checked against autodiff's (max |a - b| over
max |b| per output, <= 1e-3; a variant beyond that is marked FAIL). All variants of one config run
in one process, interleaved round-robin (each round calls each variant once, in a rotating order,
after compile and warm-up); the table holds median milliseconds over the rounds. A variant whose
accumulated time passes ``--budget`` seconds stops after ``--min-rounds`` rounds. A 2 ms pause
precedes each timed call, so OpenMP/Eigen worker threads still spinning after the previous
variant do not steal the next one's cores. The compiled
executables' ``memory_analysis()`` temp bytes are recorded too.

Outputs (``--out``, default experiments/results/): benchmark.md (table, ratios, targets),
benchmark.csv (every variant's raw numbers), benchmark.png (ms per config and variant).

Usage::

    python experiments/benchmark.py [--quick] [--rounds 15] [--configs a,b] [--threads 1,2]
                                    [--no-torch] [--budget 2.5] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from layers import LAYERS, Config, conv_layer, is_conv, pad_pairs  # noqa: E402, F401

import jaxconv as jc  # noqa: E402
from jaxconv.testing import oracle  # noqa: E402

ALGORITHMS = ("auto", "lean", "transpose", "phase", "matmul")
RTOL = 1e-3
GAP = 0.002  # seconds of sleep before each timed call
FAST = ("depthwise", "conv3d_small", "conv_transpose_up", "maxpool_2x2", "maxpool_3x3_s2_p1")


CONFIGS = LAYERS  # experiments/layers.py
QUICK = ("lenet_c2", "avgpool_2x2")


# ----------------------------------------------------------------------------- JAX functions
def lax_forward(cfg: Config) -> Callable:
    """The plain lax forward whose `jax.vjp` is JAX's autodiff (jaxconv/testing/oracle.py)."""
    kw = dict(stride=cfg.stride, padding=pad_pairs(cfg))
    if cfg.op == "conv":
        return lambda x, w: oracle.conv(x, w, dilation=cfg.dilation, groups=cfg.groups, **kw)
    if cfg.op == "conv_transpose":  # jax.vjp of the conv: an lhs-dilated conv, kernel flipped
        return lambda y, w: oracle.conv_transpose(
            y, w, dilation=cfg.dilation, groups=cfg.groups, **kw
        )
    if cfg.op == "max_pool":
        return lambda x: oracle.max_pool(x, cfg.window, **kw)
    return lambda x: oracle.avg_pool(x, cfg.window, **kw)


def jaxconv_forward(cfg: Config, algorithm: str) -> Callable:
    """jaxconv's op with `backward=algorithm` (pools: their one algorithm)."""
    kw = dict(stride=cfg.stride, padding=cfg.padding)
    if cfg.op == "conv":
        return lambda x, w: jc.conv(
            x, w, dilation=cfg.dilation, groups=cfg.groups, backward=algorithm, **kw
        )
    if cfg.op == "conv_transpose":
        return lambda y, w: jc.conv_transpose(
            y, w, dilation=cfg.dilation, groups=cfg.groups, backward=algorithm, **kw
        )
    pool = pool_function(cfg.op)
    return lambda x: pool(x, cfg.window, **kw)


def pool_function(op: str) -> Callable:
    """jaxconv.max_pool / avg_pool."""
    return getattr(jc, op)


def vjp_function(forward: Callable, n_args: int) -> Callable:
    """(args..., g) -> (y, *grads): forward output and its VJP with the cotangent g."""

    def f(*args):
        y, pullback = jax.vjp(forward, *args[:n_args])
        return (y, *pullback(args[n_args]))

    return f


def compile_jax(f: Callable, args) -> tuple[Callable, int | None, float]:
    """AOT-compile; (executable, temp bytes or None, compile seconds)."""
    t0 = time.perf_counter()
    exe = jax.jit(f).lower(*args).compile()
    seconds = time.perf_counter() - t0
    try:
        mem = exe.memory_analysis()
        temp = None if mem is None else int(mem.temp_size_in_bytes)
    except Exception:  # noqa: BLE001 - not every backend/version reports it
        temp = None
    return exe, temp, seconds


def rel_error(got, want) -> float:
    """max over outputs of max |got - want| / max |want|."""
    err = 0.0
    for a, b in zip(got, want):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return math.inf
        err = max(err, float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30))
    return err


def auto_picks(cfg: Config) -> str:
    """The (fwd, dx, dw) algorithms `backward="auto"` chooses (conv_transpose: of its conv)."""
    if not is_conv(cfg):
        return "-"
    try:
        from jaxconv.convolution.lowering.choice import auto_algorithms
    except ImportError:
        return "?"
    x, w, stride, pads, dilation, groups = conv_layer(cfg)
    try:
        picks = auto_algorithms(x, w, stride, dilation, groups, pads=pads)
    except Exception:  # noqa: BLE001 - the rule's signature may change
        return "?"
    return ("conv: " if cfg.op == "conv_transpose" else "") + "/".join(picks)


# ----------------------------------------------------------------------------- PyTorch
def torch_variants(cfg: Config, arrays, threads, want) -> tuple[dict[str, Callable], float]:
    """({name: closure running forward + autograd.grad}, rel error of its outputs vs `want`)."""
    import torch
    import torch.nn.functional as F

    nd = cfg.nd
    pads = pad_pairs(cfg)
    if any(lo != hi for lo, hi in pads):
        return {}, 0.0
    pad = pads[0][0]

    def nchw(a):  # channels-last numpy -> torch channels-first tensor
        return torch.from_numpy(np.array(np.moveaxis(np.asarray(a), -1, 1), order="C"))

    x, g = nchw(arrays[0]), nchw(arrays[-1])
    w = None
    if is_conv(cfg):  # (*k, I, O) -> (O, I, *k): conv2d's weight, ConvTranspose's (in, out, *k)
        w = torch.from_numpy(
            np.array(np.moveaxis(np.asarray(arrays[1]), (-1, -2), (0, 1)), order="C")
        )
    conv_fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    convt_fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    pool_fn = {
        ("max_pool", 1): F.max_pool1d,
        ("max_pool", 2): F.max_pool2d,
        ("max_pool", 3): F.max_pool3d,
        ("avg_pool", 1): F.avg_pool1d,
        ("avg_pool", 2): F.avg_pool2d,
        ("avg_pool", 3): F.avg_pool3d,
    }.get((cfg.op, nd))

    def forward(xt, wt):
        if cfg.op == "conv":
            return conv_fn(xt, wt, None, cfg.stride, pad, cfg.dilation, cfg.groups)
        if cfg.op == "conv_transpose":
            return convt_fn(xt, wt, None, cfg.stride, pad, 0, cfg.groups, cfg.dilation)
        return pool_fn(xt, cfg.window, cfg.stride, pad)

    formats = {"nchw": torch.contiguous_format}
    if nd in (2, 3):
        formats["channels_last"] = torch.channels_last if nd == 2 else torch.channels_last_3d
    variants = {}
    for fmt_name, fmt in formats.items():
        xt = x.to(memory_format=fmt).requires_grad_(True)
        gt = g.to(memory_format=fmt)
        wt = w.to(memory_format=fmt).requires_grad_(True) if w is not None else None
        inputs = (xt, wt) if wt is not None else (xt,)

        def run(xt=xt, wt=wt, gt=gt, inputs=inputs):
            y = forward(xt, wt)
            return (y, *torch.autograd.grad(y, inputs, gt))

        for t in threads:

            def call(run=run, t=t):
                torch.set_num_threads(t)
                return run()

            variants[f"{fmt_name}/{t}thr"] = call
    # correctness, once (the outputs back in channels-last numpy)
    out = next(iter(variants.values()))()
    got = [np.moveaxis(out[0].detach().numpy(), 1, -1)]
    got += [np.moveaxis(out[1].numpy(), 1, -1)]
    if w is not None:
        got.append(np.moveaxis(out[2].numpy(), (0, 1), (-1, -2)))
    err = rel_error(got, want)
    if err > RTOL:
        print(f"   torch {cfg.name}: mismatch vs autodiff, rel error {err:.2e}")
    return variants, err


# ----------------------------------------------------------------------------- timing
@dataclass
class Variant:
    name: str  # "autodiff", "auto", ..., "torch[nchw/1thr]"
    call: Callable[[], object]
    temp: int | None = None
    compile_s: float = 0.0
    err: float = 0.0
    status: str = "ok"  # "ok", "FAIL", "n/a"
    note: str = ""
    times: list = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.times) if self.times else math.nan

    @property
    def min_ms(self) -> float:
        return 1e3 * min(self.times) if self.times else math.nan


def interleave(variants: list[Variant], rounds: int, min_rounds: int, budget: float, bar):
    """Round-robin: each round calls every active variant once, starting at a rotating index."""
    live = [v for v in variants if v.status != "n/a"]
    for v in live:  # warm-up
        for _ in range(2):
            v.call()
    for r in range(rounds):
        active = [v for v in live if len(v.times) < min_rounds or sum(v.times) < budget]
        shift = r % max(len(active), 1)
        for v in active[shift:] + active[:shift]:
            time.sleep(GAP)  # let the previous variant's spinning worker threads go idle
            t0 = time.perf_counter()
            v.call()
            v.times.append(time.perf_counter() - t0)
        bar.update(1)


def block(exe, args) -> Callable[[], object]:
    return lambda: jax.block_until_ready(exe(*args))


def bench_config(cfg: Config, args, bar) -> dict[str, Variant]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(cfg.x, dtype=np.float32))
    operands = [x]
    if is_conv(cfg):
        fan_in = math.prod(cfg.w[:-1])
        operands.append(jnp.asarray(rng.standard_normal(cfg.w, dtype=np.float32) / fan_in**0.5))
    y_shape = jax.eval_shape(lax_forward(cfg), *operands).shape
    g = jnp.asarray(rng.standard_normal(y_shape, dtype=np.float32))
    jargs = (*operands, g)
    n = len(operands)

    exe, temp, secs = compile_jax(vjp_function(lax_forward(cfg), n), jargs)
    want = [np.asarray(a) for a in exe(*jargs)]
    variants = [Variant("autodiff", block(exe, jargs), temp, secs)]
    for algo in ALGORITHMS if is_conv(cfg) else ("auto",):
        v = Variant(algo, lambda: None)
        try:
            exe, v.temp, v.compile_s = compile_jax(
                vjp_function(jaxconv_forward(cfg, algo), n), jargs
            )
            v.call = block(exe, jargs)
            v.err = rel_error(exe(*jargs), want)
            if not v.err <= RTOL:
                v.status = "FAIL"
                v.note = f"rel error {v.err:.2e}"
        except Exception as e:  # noqa: BLE001 - record and go on (e.g. pools not written yet)
            v.status, v.note = "n/a", f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        variants.append(v)
    if not args.no_torch:
        try:
            tv, err = torch_variants(cfg, [np.asarray(a) for a in jargs], args.threads, want)
        except ImportError:
            tv, err = {}, 0.0
        for name, call in tv.items():
            variants.append(
                Variant(f"torch[{name}]", call, err=err, status="ok" if err <= RTOL else "FAIL")
            )
    interleave(variants, args.rounds, args.min_rounds, args.budget, bar)
    return {v.name: v for v in variants}


# ----------------------------------------------------------------------------- reporting
def best_torch(res: dict[str, Variant]) -> Variant | None:
    tv = [v for k, v in res.items() if k.startswith("torch[") and v.times]
    return min(tv, key=lambda v: v.median_ms) if tv else None


def ms(v: Variant | None) -> str:
    if v is None or v.status == "n/a" or not v.times:
        return "n/a"
    s = f"{v.median_ms:.3g}" if v.median_ms < 100 else f"{v.median_ms:.0f}"
    return s + (" **FAIL**" if v.status == "FAIL" else "")


def ratio(a: Variant | None, b: Variant | None) -> float | None:
    ok = [v for v in (a, b) if v is not None and v.status == "ok" and v.times]
    return a.median_ms / b.median_ms if len(ok) == 2 else None


def fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}×"


def mb(v: Variant | None) -> str:
    if v is None or v.temp is None or v.status == "n/a":
        return "n/a"
    return f"{v.temp / 2**20:.2f}"


def geomean(values) -> float | None:
    values = [v for v in values if v is not None]
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None


HEADER = [
    "config",
    "autodiff ms",
    "jaxconv auto ms",
    "auto/autodiff",
    "lean ms",
    "transpose ms",
    "phase ms",
    "matmul ms",
    "torch best ms (variant)",
    "auto/torch",
    "temp MB autodiff",
    "temp MB auto",
    "temp MB lean",
    "auto picks (fwd/dx/dw)",
]


def table_rows(results):
    rows = []
    for name, res in results.items():
        cfg = CONFIGS[name]
        tb = best_torch(res)
        rows.append(
            [
                f"{name}: {cfg.label}",
                ms(res["autodiff"]),
                ms(res["auto"]),
                fmt_ratio(ratio(res["auto"], res["autodiff"])),
                *(ms(res.get(a)) if a in res else "—" for a in ALGORITHMS[1:]),
                "n/a" if tb is None else f"{ms(tb)} ({tb.name[6:-1]})",
                fmt_ratio(ratio(res["auto"], tb)),
                mb(res["autodiff"]),
                mb(res["auto"]),
                mb(res.get("lean", res["auto"])),
                auto_picks(cfg),
            ]
        )
    return rows


def summary(results) -> list[str]:
    vs_ad = {n: ratio(r["auto"], r["autodiff"]) for n, r in results.items()}
    vs_t = {n: ratio(r["auto"], best_torch(r)) for n, r in results.items()}
    lines = []
    gm = geomean(vs_ad.values())
    if gm is not None:
        worst = max((r, n) for n, r in vs_ad.items() if r is not None)
        count = sum(r is not None for r in vs_ad.values())
        lines.append(
            f"- geometric mean auto/autodiff: **{gm:.2f}×** over {count} configs; "
            f"max {worst[0]:.2f}× ({worst[1]})"
        )
    gt = geomean(vs_t.values())
    if gt is not None:
        worst = max((r, n) for n, r in vs_t.items() if r is not None)
        lines.append(
            f"- geometric mean auto/torch best: **{gt:.2f}×** (target ≤ 1.5×, stretch ≤ 1.0×); "
            f"max {worst[0]:.2f}× ({worst[1]})"
        )
    else:
        lines.append("- auto/torch: PyTorch not measured")
    meet = [n for n, r in vs_ad.items() if r is not None and r <= 1.0]
    miss = [n for n, r in vs_ad.items() if r is None or r > 1.0]
    lines.append(
        f"- ≤ 1.0× autodiff: {len(meet)}/{len(vs_ad)} configs"
        + (f"; missed: {', '.join(f'{n} ({fmt_ratio(vs_ad[n])})' for n in miss)}" if miss else "")
    )
    fast = [n for n in FAST if n in vs_ad]
    if fast:
        parts = []
        for n in fast:
            r = vs_ad[n]
            mark = "n/a" if r is None else f"{1 / r:.1f}× faster " + ("✓" if r <= 1 / 3 else "✗")
            parts.append(f"{n} {mark}")
        lines.append("- ≥ 3× faster than autodiff (" + ", ".join(parts) + ")")
    lean = {n: r.get("lean", r["auto"]) for n, r in results.items()}
    known = [n for n, v in lean.items() if v.temp is not None and r_temp(results[n]) is not None]
    if known:
        ok = [n for n in known if lean[n].temp <= r_temp(results[n])]
        vs = geomean(max(lean[n].temp, 1) / max(r_temp(results[n]), 1) for n in known)
        lines.append(
            f"- temp memory, lean ≤ autodiff: {len(ok)}/{len(known)} configs "
            f"(geometric mean lean/autodiff {vs:.2f}×); lean/autodiff speed: geometric mean "
            f"{geomean(ratio(lean[n], results[n]['autodiff']) for n in known):.2f}×"
        )
    bad = [
        f"{n} [{v.name}]: {v.status} {v.note}".rstrip()
        for n, r in results.items()
        for v in r.values()
        if v.status != "ok"
    ]
    if bad:
        lines.append("- not ok: " + "; ".join(bad))
    return lines


def r_temp(res) -> int | None:
    """autodiff's compiled temp bytes for one config's results."""
    return res["autodiff"].temp


def csv_fields(v: Variant) -> list:
    """One variant's raw numbers, as the CSV columns variant .. note."""
    return [
        v.name,
        v.status,
        f"{v.median_ms:.4f}",
        f"{v.min_ms:.4f}",
        len(v.times),
        "" if v.temp is None else v.temp,
        f"{v.compile_s:.3f}",
        f"{v.err:.3e}",
        v.note,
    ]


def write_csv(path: Path, results) -> None:
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(
            [
                "config",
                "variant",
                "status",
                "median_ms",
                "min_ms",
                "rounds",
                "temp_bytes",
                "compile_s",
                "rel_error",
                "note",
            ]
        )
        for name, res in results.items():
            for v in res.values():
                wr.writerow([name, *csv_fields(v)])


def plot(path: Path, results) -> None:
    import matplotlib.pyplot as plt

    series = [("autodiff", "JAX autodiff", "0.55")]
    series += [(a, f"jaxconv {a}", c) for a, c in zip(ALGORITHMS, ("C0", "C5", "C2", "C1", "C4"))]
    series.append(("torch", "PyTorch (best)", "C3"))
    names = list(results)
    height = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.75 * len(names)))
    for j, (key, label, color) in enumerate(series):
        ys, widths, fails = [], [], []
        for i, n in enumerate(names):
            v = best_torch(results[n]) if key == "torch" else results[n].get(key)
            if v is None or not v.times or v.status == "n/a":
                continue
            ys.append(i - 0.4 + (j + 0.5) * height)
            widths.append(v.median_ms)
            fails.append(v.status == "FAIL")
        bars = ax.barh(ys, widths, height=height, color=color, label=label)
        for b, fail in zip(bars, fails):
            if fail:
                b.set_hatch("xx")
                ax.text(b.get_width(), b.get_y() + height / 2, " FAIL", va="center", fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([f"{n}\n{CONFIGS[n].label}" for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("fwd + bwd median time (ms, log scale; shorter is faster)")
    ax.set_title("jaxconv vs JAX autodiff vs PyTorch CPU (float32)")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_head(title: str, script: str, args, info, seconds) -> list[str]:
    """A benchmark table's opening lines: title, how it was generated, environment."""
    return [
        f"# {title}",
        "",
        f"Generated by `python experiments/{script} {' '.join(args.argv)}`".rstrip()
        + f" on {datetime.datetime.now().isoformat(timespec='seconds')}; "
        f"{args.rounds} interleaved rounds (at least {args.min_rounds} for variants over "
        f"the {args.budget:g} s budget), median ms; {seconds:.0f} s in all.",
        "",
        "## Environment",
        "",
        _common.markdown_environment(info),
        "",
        "## Results",
        "",
    ]


def write_markdown(path: Path, results, args, info, seconds) -> str:
    table = _common.markdown_table(HEADER, table_rows(results))
    title = "Benchmark: fwd+bwd of (y, dx, dw), float32, channels-last"
    text = "\n".join(
        [
            *markdown_head(title, "benchmark.py", args, info, seconds),
            "autodiff = `jit(vjp)` of plain lax (NHWC/HWIO); jaxconv columns = `backward=` "
            "algorithm (pools have one); torch best over {NCHW, channels_last} × "
            f"{{{', '.join(map(str, args.threads))}}} threads; ratios < 1 mean jaxconv is faster; "
            "temp MB = compiled `memory_analysis().temp_size_in_bytes`; FAIL = (y, dx, dw) differs "
            f"from autodiff by more than {RTOL:g} relative.",
            "",
            table,
            "",
            *summary(results),
            "",
        ]
    )
    path.write_text(text)
    return table


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"CI-sized: {', '.join(QUICK)}, 3 rounds")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--min-rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=2.5, help="seconds per variant and config")
    ap.add_argument("--configs", default=None, help=f"comma list from {', '.join(CONFIGS)}")
    ap.add_argument("--threads", default="1,2", help="torch thread counts, comma list")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", default=None, help="output folder (default experiments/results/)")
    ap.add_argument(
        "--malloc",
        choices=("tuned", "default"),
        default="tuned",
        help="tuned (default): restart with _common.MALLOC_ENV, so that no variant (jaxconv, "
        "autodiff, torch) page-faults its buffers in afresh on every call; default: glibc's",
    )
    args = ap.parse_args(argv)
    if args.malloc == "tuned" and argv is None:
        _common.reexec_with_tuned_malloc()
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    names = args.configs.split(",") if args.configs else list(QUICK if args.quick else CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")
    if args.quick:
        args.rounds, args.min_rounds = min(args.rounds, 3), min(args.min_rounds, 3)
    args.min_rounds = min(args.min_rounds, args.rounds)
    _common.use_agg()
    out = _common.results_dir(args.out)
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            args.no_torch = True
    info = _common.environment(extra=("torch",))
    info["malloc"] = _common.malloc_setting()
    _common.print_banner("benchmark: jaxconv fwd+bwd vs JAX autodiff vs PyTorch", info)
    print(f"   rounds {args.rounds}, configs {', '.join(names)}")

    results = {}
    torch_threads = None if args.no_torch else sys.modules["torch"].get_num_threads()
    t0 = time.perf_counter()
    with _common.progress(len(names) * args.rounds, "rounds", args.no_progress) as bar:
        for name in names:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(name)
            results[name] = bench_config(CONFIGS[name], args, bar)
    seconds = time.perf_counter() - t0
    if torch_threads is not None:
        sys.modules["torch"].set_num_threads(torch_threads)

    table = write_markdown(out / "benchmark.md", results, args, info, seconds)
    write_csv(out / "benchmark.csv", results)
    plot(out / "benchmark.png", results)
    print(table)
    print("\n".join(summary(results)))
    print(f"{seconds:.0f} s; wrote {out / 'benchmark.md'}, benchmark.csv, benchmark.png")
    return {
        n: {k: {"status": v.status, "median_ms": v.median_ms, "temp": v.temp} for k, v in r.items()}
        for n, r in results.items()
    }


if __name__ == "__main__":
    main()
