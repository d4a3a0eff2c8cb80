"""Benchmark: jaxconv forward+backward per `backward=` algorithm vs JAX autodiff and PyTorch CPU.

Issue 4's configurations (float32, channels-last for JAX). Each variant computes the forward
output and the gradients with one fixed random cotangent g:

- ``autodiff``: ``jit(vjp)`` of the plain `lax` forward (``conv_general_dilated`` NHWC/HWIO;
  for conv_transpose the lhs-dilated convolution with the flipped kernel; ``reduce_window``
  max/add for the pools) -- what JAX derives by itself;
- ``auto``, ``transpose``, ``phase``, ``matmul``: ``jit(vjp)`` of `jaxconv.conv` /
  `jaxconv.conv_transpose` with that ``backward=`` (the pools have a single algorithm, ``auto``,
  which runs the native pooling kernels on CPU where they are adopted, and ``pure`` beside it);
- ``torch``: forward + ``torch.autograd.grad`` for dx and dw, for every memory format
  (contiguous NCHW, channels_last) x thread count (``--threads``); the best median is reported.

Before timing, every variant's (y, dx, dw) is checked against autodiff's (max |a - b| over
max |b| per output, <= 1e-3; a variant beyond that is marked FAIL). All variants of one config run
in one process, interleaved round-robin (each round calls each variant once, in a rotating order,
after compile and warm-up); the table holds median milliseconds over the rounds. A variant whose
accumulated time passes ``--budget`` seconds stops after ``--min-rounds`` rounds.

Each timed call is taken in the variant's steady state, with no other library's threads on the
cores: a 20 ms pause (``--pause``), then untimed calls of the same variant for 10 ms
(``--warm-ms``; at least ``--warm``, 1, of them), then the timed call. The pause outlasts GNU
OpenMP's default spin-wait (PyTorch's and oneDNN's idle threads spin about 9 ms on this VM after
a call: the process's CPU time during a sleep), so the previous variant's threads are asleep;
the untimed calls wake this variant's own (XLA's pool, oneDNN's or PyTorch's OpenMP team) and
run it until it has settled, as inside a training loop: after a 20 ms pause bilinear x2's
forward took 1.61, 1.34, 0.71, 0.65, ... 0.55 ms on jaxconv's kernel (XLA's pool) and 0.91,
0.75, 0.70, ... 0.65 in PyTorch. Every library keeps its default thread settings. (Until
2026-12-05 the script paused 2 ms with no untimed call and set ``GOMP_SPINCOUNT=30000`` so
PyTorch's threads stopped spinning within that pause; that also let oneDNN's worker fall asleep
inside jaxconv's calls and drew slow runs of the small native convs: docs/performance.md.
``--pause 2 --warm 0 --warm-ms 0`` with that variable set gives the old measurement.) The
compiled executables' ``memory_analysis()`` temp bytes are recorded too.

A second table, the spatial ops (issue 22; experiments/layers.py `SPATIAL`): per case
``jaxconv`` (``jit(vjp)`` of the `jaxconv` op), ``autodiff`` (``jit(vjp)`` of the plain-JAX
forward of the same name in `jaxconv.testing.oracle`) and ``torch`` (the `torch.nn.functional`
op, same memory formats x threads; none for conv_local), timed and checked the same way; jaxconv
is also checked against torch's (y, dx) (F.unfold's (N, C K, L) turned into our channels-last
order; fractional_max_pool given the same samples as ``_random_samples``).

Outputs (``--out``, default experiments/results/): benchmark.md (tables, ratios, targets),
benchmark.csv (every variant's raw numbers, both tables), benchmark.png (ms per config and
variant, one panel per table).

Usage::

    python experiments/benchmark.py [--quick] [--spatial-only] [--rounds 15] [--configs a,b]
                                    [--threads 1,2] [--no-torch] [--budget 2.5] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
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
from layers import (  # noqa: E402, F401
    LAYERS,
    SPATIAL,
    Config,
    SpatialCase,
    conv_layer,
    is_conv,
    pad_pairs,
)

import jaxconv as jc  # noqa: E402
from jaxconv._core.native import pure_jax  # noqa: E402
from jaxconv.testing import oracle  # noqa: E402

# "native": the oneDNN kernels (`native/`, CPU); n/a with the reason where they are not built.
# "pure": "auto" traced as if the kernels were not built (`pure_jax()`): the pure-JAX rule,
# side by side with "auto" (which runs the kernels where its rule picks them).
ALGORITHMS = ("auto", "pure", "lean", "transpose", "phase", "matmul", "native")
RTOL = 1e-3
FAST = ("depthwise", "conv3d_small", "conv_transpose_up", "maxpool_2x2", "maxpool_3x3_s2_p1")


CONFIGS = LAYERS  # experiments/layers.py
QUICK = ("lenet_c2", "avgpool_2x2")
QUICK_SPATIAL = ("interp_bilinear_2x", "unfold_3x3")
# issue 22's goal: <= 1.0x autodiff and <= 1.0x PyTorch on these
SPATIAL_GOAL = (
    "interp_bilinear_2x",
    "interp_bilinear_2x_ac",
    "adaptive_avg_7x7",
    "adaptive_avg_1x1",
    "pixel_shuffle_2x",
    "unfold_3x3",
)


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


def auto_picks(cfg: Config, platform: str = "cpu") -> str:
    """The (fwd, dx, dw) algorithms `backward="auto"` chooses on `platform` (conv_transpose: of
    its conv), as `jaxconv.explain` reads them from the traced layer: the measured rule on CPU
    (the native kernels where it picks them and they are built), XLA's convolutions elsewhere."""
    if not is_conv(cfg):
        return "-"
    shapes = [jax.ShapeDtypeStruct(s, jnp.float32) for s in (cfg.x, cfg.w)]
    try:
        rows = [r for r in jc.explain(jaxconv_forward(cfg, "auto"), *shapes) if r.cpu]
        picks = rows[0].cpu if platform == "cpu" else rows[0].elsewhere
    except Exception:  # noqa: BLE001 - explain's rows may change
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

    variants = torch_format_variants(forward, x, g, w, nd, threads)
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


def torch_format_variants(forward, x, g, w, nd: int, threads) -> dict[str, Callable]:
    """{"<format>/<t>thr": closure running ``forward(x, w)`` + ``autograd.grad`` of (x[, w])
    with the cotangent g} for every memory format (contiguous NCHW; channels_last for 2-D/3-D)
    x thread count; x, g, w channels-first tensors (w None: x alone; a g of another rank than
    x, e.g. F.unfold's (N, C K, L), stays contiguous)."""
    import torch

    formats = {"nchw": torch.contiguous_format}
    if nd in (2, 3):
        formats["channels_last"] = torch.channels_last if nd == 2 else torch.channels_last_3d
    variants = {}
    for fmt_name, fmt in formats.items():
        xt = x.to(memory_format=fmt).requires_grad_(True)
        gt = g.to(memory_format=fmt) if g.dim() == x.dim() else g
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
    return variants


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
    torch_err: float | None = None  # spatial table: jaxconv's rel error vs PyTorch's outputs

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.times) if self.times else math.nan

    @property
    def min_ms(self) -> float:
        return 1e3 * min(self.times) if self.times else math.nan


def interleave(
    variants: list[Variant],
    rounds: int,
    min_rounds: int,
    budget: float,
    bar,
    warm: int = 0,
    pause: float = 0.02,
    warm_s: float = 0.0,
):
    """Round-robin: each round calls every active variant once, starting at a rotating index;
    after `pause` seconds of sleep, untimed calls of the same variant precede the timed one: at
    least `warm` of them, and more until `warm_s` seconds have passed."""
    live = [v for v in variants if v.status != "n/a"]
    for v in live:  # warm-up
        for _ in range(2):
            v.call()
    for r in range(rounds):
        active = [v for v in live if len(v.times) < min_rounds or sum(v.times) < budget]
        shift = r % max(len(active), 1)
        for v in active[shift:] + active[:shift]:
            time.sleep(pause)  # let the previous variant's spinning worker threads go idle
            calls, until = 0, time.perf_counter() + warm_s
            while calls < warm or time.perf_counter() < until:  # this variant's steady state
                v.call()
                calls += 1
            t0 = time.perf_counter()
            v.call()
            v.times.append(time.perf_counter() - t0)
        bar.update(1)


def time_variants(variants: list[Variant], args, bar) -> None:
    """`interleave` with the command line's rounds, budget, pause and warm-up."""
    interleave(
        variants,
        args.rounds,
        args.min_rounds,
        args.budget,
        bar,
        args.warm,
        args.pause / 1e3,
        args.warm_ms / 1e3,
    )


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
    status = jc.native_available()
    for algo in ALGORITHMS if is_conv(cfg) else ("auto", "pure"):
        v = Variant(algo, lambda: None)
        if algo == "native" and not status:
            v.status, v.note = "n/a", f"native kernels unavailable: {status.reason[:100]}"
            variants.append(v)
            continue
        try:
            with pure_jax() if algo == "pure" else contextlib.nullcontext():
                exe, v.temp, v.compile_s = compile_jax(
                    vjp_function(jaxconv_forward(cfg, "auto" if algo == "pure" else algo), n),
                    jargs,
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
    time_variants(variants, args, bar)
    return {v.name: v for v in variants}


# ----------------------------------------------------------------------------- spatial ops
def spatial_extras(case: SpatialCase, x) -> dict:
    """Per-case constants shared by jaxconv, the oracle and torch: fractional_max_pool's
    samples (N, C, D) in [0, 1) (PyTorch's ``_random_samples``, the same in all three)."""
    if case.op != "fractional_max_pool":
        return {}
    rng = np.random.default_rng(1)
    shape = (x.shape[0], x.shape[-1], case.nd)
    return {"samples": rng.uniform(0.0, 1.0, shape).astype(np.float32)}


def spatial_forwards(case: SpatialCase, extras: dict) -> tuple[Callable, Callable]:
    """(jaxconv's op, the oracle's plain-JAX op of the same name) with the case's settings, each
    (x[, w]) -> y. The oracle's fractional_max_pool takes `output_size` (here int(L ratio))
    where jaxconv takes `output_ratio`."""
    ours, plain = getattr(jc, case.op), getattr(oracle, case.op)
    kw, okw = dict(case.kwargs), dict(case.kwargs)
    if case.op == "fractional_max_pool":
        samples = jnp.asarray(extras["samples"])
        kw["samples"] = okw["samples"] = samples
        ratio = okw.pop("output_ratio")
        ratios = ratio if isinstance(ratio, (tuple, list)) else (ratio,) * case.nd
        okw["output_size"] = tuple(int(n * r) for n, r in zip(case.x[1:-1], ratios))
    a = case.args
    return (lambda *ops: ours(*ops, *a, **kw)), (lambda *ops: plain(*ops, *a, **okw))


def torch_spatial_forward(case: SpatialCase, extras: dict) -> Callable | None:
    """(x, w) -> y with PyTorch's op on channels-first tensors; None where torch has none."""
    import torch
    import torch.nn.functional as F

    nd, a, kw = case.nd, case.args, case.kwargs
    if case.op == "interpolate":
        return lambda xt, wt: F.interpolate(xt, *a, **kw)
    if case.op in ("adaptive_avg_pool", "adaptive_max_pool"):
        fn = getattr(F, f"{case.op}{nd}d")
        return lambda xt, wt: fn(xt, *a, **kw)
    if case.op == "pixel_shuffle" and nd == 2:
        return lambda xt, wt: F.pixel_shuffle(xt, *a)
    if case.op == "unfold" and nd == 2:
        return lambda xt, wt: F.unfold(xt, *a, **kw)
    if case.op == "fractional_max_pool" and nd in (2, 3):
        fn = getattr(F, f"fractional_max_pool{nd}d")
        ratio = kw["output_ratio"]
        ratio = (
            tuple(ratio) if isinstance(ratio, (tuple, list)) else (ratio,) * nd
        )  # 2.13: no float
        samples = torch.from_numpy(extras["samples"])
        return lambda xt, wt: fn(xt, *a, output_ratio=ratio, _random_samples=samples)
    return None


def unfold_cl_to_cf(cols: np.ndarray, nd: int, window) -> np.ndarray:
    """Our channels_last unfold (N, *o, K C) (offsets major) -> F.unfold's (N, C K, L)."""
    k = math.prod((window,) * nd if isinstance(window, int) else window)
    n, c = cols.shape[0], cols.shape[-1] // k
    cf = np.transpose(cols.reshape(n, -1, k, c), (0, 3, 2, 1))  # (N, C, K, L)
    return np.ascontiguousarray(cf.reshape(n, c * k, -1))


def unfold_cf_to_cl(cols: np.ndarray, o: tuple, window) -> np.ndarray:
    """F.unfold's (N, C K, L) (channels major) -> our channels_last (N, *o, K C)."""
    k = math.prod((window,) * len(o) if isinstance(window, int) else window)
    n, c = cols.shape[0], cols.shape[1] // k
    cl = np.transpose(cols.reshape(n, c, k, -1), (0, 3, 2, 1))  # (N, L, K, C)
    return cl.reshape(n, *o, k * c)


def torch_spatial_variants(case: SpatialCase, arrays, extras, threads):
    """({name: closure}, torch's (y, dx) in channels-last numpy) for a spatial case; ({}, None)
    where PyTorch has no such op."""
    import torch

    forward = torch_spatial_forward(case, extras)
    if forward is None:
        return {}, None
    x, g = np.asarray(arrays[0]), np.asarray(arrays[-1])
    unfold = case.op == "unfold"
    g_cf = unfold_cl_to_cf(g, case.nd, case.args[0]) if unfold else np.moveaxis(g, -1, 1)
    xt = torch.from_numpy(np.array(np.moveaxis(x, -1, 1), order="C"))
    gt = torch.from_numpy(np.array(g_cf, order="C"))
    variants = torch_format_variants(forward, xt, gt, None, case.nd, threads)
    out = next(iter(variants.values()))()
    y = out[0].detach().numpy()
    y = unfold_cf_to_cl(y, g.shape[1:-1], case.args[0]) if unfold else np.moveaxis(y, 1, -1)
    return variants, [y, np.moveaxis(out[1].numpy(), 1, -1)]


def bench_spatial(case: SpatialCase, args, bar) -> dict[str, Variant]:
    """Variants "jaxconv", "autodiff" (jit(vjp) of the oracle's op) and torch[...]; each
    Variant's `err` is its rel error vs autodiff, jaxconv's `note` also vs torch."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(case.x, dtype=np.float32))
    operands = [x]
    if case.w is not None:
        fan_in = math.prod(case.w[case.nd : -1])
        operands.append(jnp.asarray(rng.standard_normal(case.w, dtype=np.float32) / fan_in**0.5))
    extras = spatial_extras(case, x)
    ours, plain = spatial_forwards(case, extras)
    g = jnp.asarray(rng.standard_normal(jax.eval_shape(plain, *operands).shape, dtype=np.float32))
    jargs = (*operands, g)
    n = len(operands)

    exe, temp, secs = compile_jax(vjp_function(plain, n), jargs)
    want = [np.asarray(a) for a in exe(*jargs)]
    autodiff = Variant("autodiff", block(exe, jargs), temp, secs)
    v = Variant("jaxconv", lambda: None)
    got = None
    try:
        exe, v.temp, v.compile_s = compile_jax(vjp_function(ours, n), jargs)
        v.call = block(exe, jargs)
        got = [np.asarray(a) for a in exe(*jargs)]
        v.err = rel_error(got, want)
        if not v.err <= RTOL:
            v.status, v.note = "FAIL", f"rel error {v.err:.2e} vs autodiff"
    except Exception as e:  # noqa: BLE001 - record and go on
        v.status, v.note = "n/a", f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    variants = [v, autodiff]
    if not args.no_torch:
        try:
            tv, tout = torch_spatial_variants(case, [np.asarray(a) for a in jargs], extras,
                                              args.threads)  # fmt: skip
        except ImportError:
            tv, tout = {}, None
        if tout is not None:
            err = rel_error(tout, want[:2])
            if err > RTOL:
                print(f"   torch {case.name}: mismatch vs autodiff, rel error {err:.2e}")
            if got is not None:
                v.torch_err = rel_error(got[:2], tout)
                if not v.torch_err <= RTOL and v.status == "ok":
                    v.status, v.note = "FAIL", f"rel error {v.torch_err:.2e} vs torch"
            for name, call in tv.items():
                status = "ok" if err <= RTOL else "FAIL"
                variants.append(Variant(f"torch[{name}]", call, err=err, status=status))
    time_variants(variants, args, bar)
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
    *(f"{a} ms" for a in ALGORITHMS[1:]),
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


def native_summary(results) -> list[str]:
    """The native kernels' lines (issue 21's goals): native/torch and native/autodiff over the
    conv layers, and every layer with native where it ran ("auto" elsewhere: the pools)."""
    ran = {n: r["native"] for n, r in results.items() if r.get("native") and r["native"].times}
    if not ran:
        return []
    vs_t = {n: ratio(v, best_torch(results[n])) for n, v in ran.items()}
    vs_ad = {n: ratio(v, results[n]["autodiff"]) for n, v in ran.items()}
    lines = []
    if None not in vs_t.values():
        worst = max((r, n) for n, r in vs_t.items())
        lines.append(
            f"- native (oneDNN) conv layers: geometric mean native/torch best "
            f"**{geomean(vs_t.values()):.2f}×**, native/autodiff {geomean(vs_ad.values()):.2f}× "
            f"over {len(ran)} layers; max {worst[0]:.2f}× torch ({worst[1]})"
        )
    auto = {n: r["auto"] for n, r in results.items()}
    pure = {n: r["pure"] for n, r in results.items()}
    t = {n: ratio(v, best_torch(results[n])) for n, v in auto.items()}
    a = {n: ratio(v, results[n]["autodiff"]) for n, v in auto.items()}
    tp = {n: ratio(v, best_torch(results[n])) for n, v in pure.items()}
    if None not in t.values() and None not in tp.values():
        over = [f"{n} ({t[n]:.2f}×)" for n in t if t[n] > 1.2]
        slower = [f"{n} ({a[n]:.2f}×)" for n in a if a[n] is not None and a[n] > 1.0]
        lines.append(
            f"- issue 21's goals, every layer on auto (the kernels where its rule picks them): "
            f"geometric mean /torch best **{geomean(t.values()):.2f}×** (goal ≤ 0.9×); "
            f"> 1.2× torch: {', '.join(over) or 'none'}; > 1.0× autodiff: "
            f"{', '.join(slower) or 'none'}; without the kernels (auto (pure)) "
            f"{geomean(tp.values()):.2f}× torch"
        )
    return lines


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
    lines += native_summary(results)
    bad = [
        f"{n} [{v.name}]: {v.status} {v.note}".rstrip()
        for n, r in results.items()
        for v in r.values()
        if v.status != "ok"
    ]
    if bad:
        lines.append("- not ok: " + "; ".join(bad))
    return lines


SPATIAL_HEADER = [
    "case",
    "jaxconv ms",
    "autodiff ms",
    "torch best ms (variant)",
    "jaxconv/autodiff",
    "jaxconv/torch",
    "rel error vs autodiff / torch",
]


def spatial_rows(spatial):
    rows = []
    for name, res in spatial.items():
        ours, tb = res["jaxconv"], best_torch(res)
        if ours.status == "n/a":
            check = "n/a"
        else:
            vs_t = "n/a" if ours.torch_err is None else f"{ours.torch_err:.1e}"
            check = ("ok" if ours.status == "ok" else "**FAIL**") + f" ({ours.err:.1e} / {vs_t})"
        rows.append(
            [
                f"{name}: {SPATIAL[name].op} {SPATIAL[name].label}",
                ms(ours),
                ms(res["autodiff"]),
                "n/a" if tb is None else f"{ms(tb)} ({tb.name[6:-1]})",
                fmt_ratio(ratio(ours, res["autodiff"])),
                fmt_ratio(ratio(ours, tb)),
                check,
            ]
        )
    return rows


def spatial_summary(spatial) -> list[str]:
    vs_ad = {n: ratio(r["jaxconv"], r["autodiff"]) for n, r in spatial.items()}
    vs_t = {n: ratio(r["jaxconv"], best_torch(r)) for n, r in spatial.items()}
    lines = []
    for label, ratios in (("autodiff", vs_ad), ("torch best", vs_t)):
        known = {n: r for n, r in ratios.items() if r is not None}
        if known:
            worst = max((r, n) for n, r in known.items())
            lines.append(
                f"- geometric mean jaxconv/{label}: **{geomean(known.values()):.2f}×** over "
                f"{len(known)} cases; max {worst[0]:.2f}× ({worst[1]})"
            )
        else:
            lines.append(f"- jaxconv/{label}: not measured")
    goal = [n for n in SPATIAL_GOAL if n in spatial]
    if goal:
        miss = [
            f"{n} ({fmt_ratio(vs_ad[n])} autodiff, {fmt_ratio(vs_t[n])} torch)"
            for n in goal
            if vs_ad[n] is None or vs_ad[n] > 1.0 or vs_t[n] is None or vs_t[n] > 1.0
        ]
        lines.append(
            f"- goal ≤ 1.0× autodiff and ≤ 1.0× torch: {len(goal) - len(miss)}/{len(goal)} cases"
            + (f"; missed: {', '.join(miss)}" if miss else "")
        )
    bad = [
        f"{n} [{v.name}]: {v.status} {v.note}".rstrip()
        for n, r in spatial.items()
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


def write_csv(path: Path, results, spatial=None) -> None:
    """Every variant's raw numbers, the conv/pool layers' then the spatial cases' (rel_error:
    vs autodiff)."""
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
        for name, res in {**results, **(spatial or {})}.items():
            for v in res.values():
                wr.writerow([name, *csv_fields(v)])


def plot(path: Path, results, spatial=None) -> None:
    """Horizontal bars of median ms per variant: the conv/pool layers, then (a second panel)
    the spatial cases; a panel without rows is left out."""
    import matplotlib.pyplot as plt

    series = [("autodiff", "JAX autodiff", "0.55")]
    colors = ("C0", "C7", "C5", "C2", "C1", "C4", "C6")
    series += [(a, f"jaxconv {a}", c) for a, c in zip(ALGORITHMS, colors)]
    series.append(("torch", "PyTorch (best)", "C3"))
    spatial_series = [
        ("autodiff", "JAX autodiff (oracle)", "0.55"),
        ("jaxconv", "jaxconv", "C0"),
        ("torch", "PyTorch (best)", "C3"),
    ]
    panels = [
        (results, series, [f"{n}\n{CONFIGS[n].label}" for n in results],
         "jaxconv vs JAX autodiff vs PyTorch CPU (float32)"),
        (spatial or {}, spatial_series,
         [f"{n}\n{SPATIAL[n].op} {SPATIAL[n].label}" for n in spatial or {}],
         "spatial ops: jaxconv vs JAX autodiff of the oracle vs PyTorch CPU (float32)"),
    ]  # fmt: skip
    panels = [p for p in panels if p[0]]
    sizes = [0.6 + 0.75 * len(p[0]) for p in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, 0.4 + sum(sizes)), squeeze=False,
        gridspec_kw={"height_ratios": sizes},
    )  # fmt: skip
    for ax, (res, ser, labels, title) in zip(axes[:, 0], panels):
        _bars(ax, res, ser)
        ax.set_yticks(range(len(res)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("fwd + bwd median time (ms, log scale; shorter is faster)")
        ax.set_title(title)
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _bars(ax, results, series) -> None:
    """One group of bars per row of `results`, one bar per (key, label, color) of `series`."""
    names = list(results)
    height = 0.8 / len(series)
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


def markdown_head(title: str, script: str, args, info, seconds) -> list[str]:
    """A benchmark table's opening lines: title, how it was generated, environment."""
    warm = getattr(args, "warm", 0)  # (benchmark_gpu.py's arguments have neither)
    pause = getattr(args, "pause", None)
    timed = [f"a {pause:g} ms pause"] if pause is not None else []
    warm_ms = getattr(args, "warm_ms", 0)
    if warm or warm_ms:
        timed.append(
            f"untimed calls of the same variant for {warm_ms:g} ms (at least {warm})"
            if warm_ms
            else f"{warm} untimed one(s)"
        )
    return [
        f"# {title}",
        "",
        f"Generated by `python experiments/{script} {' '.join(args.argv)}`".rstrip()
        + f" on {datetime.datetime.now().isoformat(timespec='seconds')}; "
        f"{args.rounds} interleaved rounds (at least {args.min_rounds} for variants over "
        f"the {args.budget:g} s budget), median ms"
        + (f", each timed call after {' and '.join(timed)}" if timed else "")
        + f"; {seconds:.0f} s in all.",
        "",
        "## Environment",
        "",
        _common.markdown_environment(info),
        "",
        "## Results",
        "",
    ]


def write_markdown(path: Path, results, args, info, seconds, spatial=None) -> str:
    """benchmark.md: the conv/pool table and its summary, then the spatial ops' table (each
    left out when it has no rows); returns the tables."""
    parts, tables = [], []
    if results:
        table = _common.markdown_table(HEADER, table_rows(results))
        tables.append(table)
        parts += [
            "autodiff = `jit(vjp)` of plain lax (NHWC/HWIO); jaxconv columns = `backward=` "
            "algorithm (pools have one, auto, and auto (pure) beside it); torch best over "
            "{NCHW, channels_last} × "
            f"{{{', '.join(map(str, args.threads))}}} threads; ratios < 1 mean jaxconv is faster; "
            "temp MB = compiled `memory_analysis().temp_size_in_bytes`; FAIL = (y, dx, dw) differs "
            f"from autodiff by more than {RTOL:g} relative.",
            "",
            table,
            "",
            *summary(results),
            "",
        ]
    if spatial:
        table = _common.markdown_table(SPATIAL_HEADER, spatial_rows(spatial))
        tables.append(table)
        parts += [
            "### Spatial ops",
            "",
            "jaxconv = `jit(vjp)` of `jaxconv.<op>` (channels-last); autodiff = `jit(vjp)` of "
            "the plain-JAX forward of the same name in `jaxconv.testing.oracle`; torch = "
            "`torch.nn.functional`'s op on channels-first tensors, best over "
            f"{{NCHW, channels_last}} × {{{', '.join(map(str, args.threads))}}} threads (none for "
            "conv_local: PyTorch has no locally connected convolution); ratios < 1 mean jaxconv "
            "is faster; rel error = max |a - b| / max |b| of (y, dx[, dw]) against autodiff's and "
            f"of (y, dx) against torch's, FAIL beyond {RTOL:g} (unfold compared in F.unfold's "
            "channel-major order; fractional_max_pool given the same samples as "
            "`_random_samples`). Goal (issue 22): ≤ 1.0× autodiff and ≤ 1.0× torch for "
            f"{', '.join(SPATIAL_GOAL)}.",
            "",
            table,
            "",
            *spatial_summary(spatial),
            "",
        ]
    title = "Benchmark: fwd+bwd of (y, dx, dw), float32, channels-last"
    text = "\n".join([*markdown_head(title, "benchmark.py", args, info, seconds), *parts])
    path.write_text(text)
    return "\n\n".join(tables)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"CI-sized: {', '.join(QUICK + QUICK_SPATIAL)}, 3 rounds",
    )
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--min-rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=2.5, help="seconds per variant and config")
    ap.add_argument(
        "--warm",
        type=int,
        default=1,
        help="untimed calls of the same variant between the pause and each timed call "
        "(default 1: the timed call finds the variant's worker threads awake, as inside a "
        "training loop; 0: it wakes them)",
    )
    ap.add_argument(
        "--warm-ms",
        type=float,
        default=10.0,
        help="after the pause, untimed calls of the same variant go on until this many "
        "milliseconds have passed (at least --warm of them; default 10: XLA's pool threads "
        "take 3-5 ms of calls to settle after an idle pause on a 2-core VM)",
    )
    ap.add_argument(
        "--pause",
        type=float,
        default=20.0,
        help="milliseconds of sleep before each timed call and its --warm calls (default 20: "
        "longer than GNU OpenMP's default spin-wait, so no other variant's threads still spin)",
    )
    ap.add_argument(
        "--configs",
        default=None,
        help=f"comma list from {', '.join(CONFIGS)} (conv/pool table) and "
        f"{', '.join(SPATIAL)} (spatial ops' table); only these run",
    )
    ap.add_argument(
        "--spatial-only",
        action="store_true",
        help="only the spatial ops' table (with --quick: its quick cases)",
    )
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
    if argv is None and args.malloc == "tuned":  # (a restart: glibc reads it only at start-up)
        _common.reexec_with(_common.MALLOC_ENV)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    if args.configs:  # only the named ones, of either table
        listed = args.configs.split(",")
        unknown = [n for n in listed if n not in CONFIGS and n not in SPATIAL]
        if unknown:
            ap.error(f"unknown config(s) {unknown}; choose from {[*CONFIGS, *SPATIAL]}")
        names = [n for n in listed if n in CONFIGS]
        spatial_names = [n for n in listed if n in SPATIAL]
    else:
        names = list(QUICK if args.quick else CONFIGS)
        spatial_names = list(QUICK_SPATIAL if args.quick else SPATIAL)
    if args.spatial_only:
        names = []
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
    info["GOMP_SPINCOUNT"] = _common.spin_setting()
    _common.print_banner("benchmark: jaxconv fwd+bwd vs JAX autodiff vs PyTorch", info)
    print(f"   rounds {args.rounds}, configs {', '.join(names + spatial_names)}")

    results, spatial = {}, {}
    torch_threads = None if args.no_torch else sys.modules["torch"].get_num_threads()
    t0 = time.perf_counter()
    total = (len(names) + len(spatial_names)) * args.rounds
    with _common.progress(total, "rounds", args.no_progress) as bar:
        for name in names:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(name)
            results[name] = bench_config(CONFIGS[name], args, bar)
        for name in spatial_names:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(name)
            spatial[name] = bench_spatial(SPATIAL[name], args, bar)
    seconds = time.perf_counter() - t0
    if torch_threads is not None:
        sys.modules["torch"].set_num_threads(torch_threads)

    table = write_markdown(out / "benchmark.md", results, args, info, seconds, spatial)
    write_csv(out / "benchmark.csv", results, spatial)
    plot(out / "benchmark.png", results, spatial)
    print(table)
    if results:
        print("\n".join(summary(results)))
    if spatial:
        print("spatial ops:\n" + "\n".join(spatial_summary(spatial)))
    print(f"{seconds:.0f} s; wrote {out / 'benchmark.md'}, benchmark.csv, benchmark.png")
    return {
        n: {k: {"status": v.status, "median_ms": v.median_ms, "temp": v.temp} for k, v in r.items()}
        for n, r in {**results, **spatial}.items()
    }


if __name__ == "__main__":
    main()
