"""Benchmark on an accelerator: jaxconv fwd+bwd per `backward=` algorithm vs JAX autodiff and
PyTorch CUDA, in float32 and bfloat16.

The layers, the plain-lax forward (autodiff), the jaxconv forwards, the VJP wrapper, AOT
compilation, the error measure and the interleaved timing loop are experiments/benchmark.py's,
imported from it; this script adds the dtype axis, the device and precision report, and PyTorch
on CUDA. Runs on ``jax.devices()[0]`` (a CUDA GPU on the target; the CPU works too, for tests).
Per layer and dtype:

- ``autodiff``: ``jit(vjp)`` of the plain `lax` forward in that dtype;
- ``auto``, ``lean``, ``transpose``, ``phase``, ``matmul``: ``jit(vjp)`` of `jaxconv.conv` /
  `jaxconv.conv_transpose` with that ``backward=`` (pools: their one algorithm, ``auto``);
  bfloat16 inputs accumulate in float32 inside jaxconv;
- ``torch``: forward + ``torch.autograd.grad`` for dx and dw on CUDA (the CPU without one), for
  contiguous NCHW and channels_last, ``cudnn.benchmark=True``, synchronised around each call; the
  best median is reported. TF32 switches are set to PyTorch's defaults and recorded.

float32 runs with the default matmul precision (what users get; TF32 on recent NVIDIA GPUs) unless
``--matmul-precision`` says otherwise; the precision in effect is measured (a float32 dot and conv
against float64) and written into the table header. Before timing, every variant's (y, dx, dw)
is checked against autodiff's in the same dtype: max |a - b| / max |b| per output <= 1e-3 for
float32, <= 3e-2 for bfloat16; beyond that a variant is marked FAIL. Timing: compile, two
warm-up calls, then ``--rounds`` interleaved rounds (each calls every variant once, rotating the
order), median ms; a variant past ``--budget`` seconds stops after ``--min-rounds``. Layers not
started within ``--max-seconds`` are skipped and listed, so the run ends on time; the outputs are
rewritten after every layer, so a killed run leaves what it measured.

Outputs (``--out``, default experiments/results/gpu/): benchmark.md (environment, table, geometric
means per dtype, the fastest jaxconv algorithm per conv layer) and benchmark.csv (every variant).

Usage::

    python experiments/benchmark_gpu.py [--quick] [--dtypes float32,bfloat16] [--rounds 30]
                                        [--configs a,b] [--no-torch] [--budget 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import benchmark as bench  # noqa: E402 - import only: its main() re-execs, never called here
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

RESULTS = _common.RESULTS / "gpu"
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
RTOL = {"float32": 1e-3, "bfloat16": 3e-2}
# benchmark.QUICK, topped up to three small layers (a 1-d conv and a max pool)
QUICK = tuple(dict.fromkeys((*bench.QUICK, "conv1d_mnist1d", "maxpool_2x2")))[:3]
# the jaxconv algorithms an accelerator runs ("native" is a CPU-only lowering)
ALGORITHMS = tuple(a for a in bench.ALGORITHMS if a not in ("native", "pure"))  # CPU-only columns
TORCH_DEFAULTS = {"matmul.allow_tf32": False, "cudnn.allow_tf32": True}


# ----------------------------------------------------------------------------- precision
def matmul_precision() -> str:
    """The `jax_default_matmul_precision` setting ("default" when unset)."""
    value = jax.config.jax_default_matmul_precision
    return "default" if value is None else str(value)


def measured_precision() -> dict[str, float]:
    """Relative-to-max error of a float32 dot and conv on the default device vs float64 NumPy:
    ~1e-7 is float32 arithmetic, ~1e-4..1e-3 TF32, ~1e-2 bfloat16 passes."""
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((256, 256)).astype(np.float32) for _ in range(2))
    dot = np.asarray(jax.jit(jnp.dot)(a, b))
    x = rng.standard_normal((4, 16, 16, 64)).astype(np.float32)
    w = rng.standard_normal((1, 1, 64, 64)).astype(np.float32)  # 1x1: a dot over channels
    dn = ("NHWC", "HWIO", "NHWC")
    conv = np.asarray(
        jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dn))(
            x, w
        )
    )
    return {
        "dot": bench.rel_error([dot], [a.astype(np.float64) @ b.astype(np.float64)]),
        "conv": bench.rel_error(
            [conv], [np.einsum("nhwc,cf->nhwf", x.astype(np.float64), w[0, 0])]
        ),
    }


def precision_label(err: float) -> str:
    if err < 1e-5:
        return "float32"
    return "TF32-like" if err < 5e-3 else "bfloat16-like"


# ----------------------------------------------------------------------------- PyTorch
def torch_setup(no_torch: bool) -> tuple[object, str | None, dict[str, str]]:
    """(torch module or None, its device, the settings to record)."""
    if no_torch:
        return None, None, {}
    try:
        import torch
    except ImportError:
        return None, None, {"torch": "not installed"}
    cuda = torch.cuda.is_available()
    info = {"torch device": torch.cuda.get_device_name(0) if cuda else "cpu (no CUDA)"}
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = TORCH_DEFAULTS["matmul.allow_tf32"]
        torch.backends.cudnn.allow_tf32 = TORCH_DEFAULTS["cudnn.allow_tf32"]
        info["torch cudnn"] = f"{torch.backends.cudnn.version()}, benchmark=True"
    info["torch tf32"] = (
        f"cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
        f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32} "
        + ("(set to PyTorch's defaults)" if cuda else "(unused on the CPU)")
    )
    conv_fp32 = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv_fp32 is not None:  # PyTorch >= 2.9's names for the same switches
        info["torch tf32"] += (
            f"; cuda.matmul.fp32_precision={torch.backends.cuda.matmul.fp32_precision}, "
            f"cudnn.conv.fp32_precision={conv_fp32}"
        )
    return torch, "cuda" if cuda else "cpu", info


def torch_variants(cfg, arrays, dtype: str, device: str, want, rtol: float):
    """({"nchw"|"channels_last": closure running forward + autograd.grad}, the larger rel error
    of the formats vs want); ({}, 0) where PyTorch has no equivalent (asymmetric padding)."""
    import torch
    import torch.nn.functional as F

    nd = cfg.nd
    pads = bench.pad_pairs(cfg)
    if any(lo != hi for lo, hi in pads):
        return {}, 0.0
    pad = pads[0][0]
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    cuda = device == "cuda"

    def tensor(a, axes_from, axes_to):  # channels-last numpy -> torch layout, dtype, device
        a = np.array(np.moveaxis(np.asarray(a, np.float32), axes_from, axes_to), order="C")
        return torch.from_numpy(a).to(device=device, dtype=tdtype)

    x, g = tensor(arrays[0], -1, 1), tensor(arrays[-1], -1, 1)
    w = tensor(arrays[1], (-1, -2), (0, 1)) if bench.is_conv(cfg) else None
    conv = getattr(F, f"conv{nd}d")
    convt = getattr(F, f"conv_transpose{nd}d")

    def forward(xt, wt):
        if cfg.op == "conv":
            return conv(xt, wt, None, cfg.stride, pad, cfg.dilation, cfg.groups)
        if cfg.op == "conv_transpose":
            return convt(xt, wt, None, cfg.stride, pad, 0, cfg.groups, cfg.dilation)
        return getattr(F, f"{cfg.op}{nd}d")(xt, cfg.window, cfg.stride, pad)

    formats = {"nchw": torch.contiguous_format}
    if nd in (2, 3):
        formats["channels_last"] = torch.channels_last if nd == 2 else torch.channels_last_3d
    variants = {}
    for name, fmt in formats.items():
        xt = x.to(memory_format=fmt).requires_grad_(True)
        gt = g.to(memory_format=fmt)
        wt = None if w is None else w.to(memory_format=fmt).requires_grad_(True)
        inputs = (xt,) if wt is None else (xt, wt)

        def call(xt=xt, wt=wt, gt=gt, inputs=inputs):
            if cuda:
                torch.cuda.synchronize()
            y = forward(xt, wt)
            out = (y, *torch.autograd.grad(y, inputs, gt))
            if cuda:
                torch.cuda.synchronize()
            return out

        variants[name] = call
    err = 0.0
    for call in variants.values():  # correctness of each format, once
        out = call()
        got = [np.moveaxis(t.detach().float().cpu().numpy(), 1, -1) for t in out[:2]]
        if w is not None:
            got.append(np.moveaxis(out[2].float().cpu().numpy(), (0, 1), (-1, -2)))
        err = max(err, bench.rel_error(got, want))
    if err > rtol:
        print(f"   torch {cfg.name} {dtype}: mismatch vs autodiff, rel error {err:.2e}")
    return variants, err


# ----------------------------------------------------------------------------- one layer
def operands(cfg, dtype: str):
    """(x[, w], g) on the default device, drawn as benchmark.py does, rounded to `dtype`."""
    rng = np.random.default_rng(0)
    ops = [rng.standard_normal(cfg.x, dtype=np.float32)]
    if bench.is_conv(cfg):
        fan_in = math.prod(cfg.w[:-1])
        ops.append(rng.standard_normal(cfg.w, dtype=np.float32) / np.float32(fan_in**0.5))
    y_shape = jax.eval_shape(bench.lax_forward(cfg), *ops).shape
    ops.append(rng.standard_normal(y_shape, dtype=np.float32))
    return tuple(jnp.asarray(a, DTYPES[dtype]) for a in ops)


def bench_config(cfg, dtype: str, args, torch_device, bar) -> dict[str, bench.Variant]:
    jargs = operands(cfg, dtype)
    n = len(jargs) - 1
    rtol = RTOL[dtype]
    exe, temp, secs = bench.compile_jax(bench.vjp_function(bench.lax_forward(cfg), n), jargs)
    want = [np.asarray(a) for a in exe(*jargs)]
    variants = [bench.Variant("autodiff", bench.block(exe, jargs), temp, secs)]
    for algo in ALGORITHMS if bench.is_conv(cfg) else ("auto",):
        v = bench.Variant(algo, lambda: None)
        try:
            fwd = bench.jaxconv_forward(cfg, algo)
            exe, v.temp, v.compile_s = bench.compile_jax(bench.vjp_function(fwd, n), jargs)
            v.call = bench.block(exe, jargs)
            v.err = bench.rel_error(exe(*jargs), want)
            if not v.err <= rtol:
                v.status, v.note = "FAIL", f"rel error {v.err:.2e}"
        except Exception as e:  # noqa: BLE001 - record and go on
            v.status, v.note = "n/a", f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        variants.append(v)
    if torch_device is not None:
        try:
            tv, err = torch_variants(cfg, jargs, dtype, torch_device, want, rtol)
        except Exception as e:  # noqa: BLE001 - e.g. a dtype the CPU kernels lack
            print(f"   torch {cfg.name} {dtype}: {type(e).__name__}: {e}")
            tv, err = {}, 0.0
        for name, call in tv.items():
            status = "ok" if err <= rtol else "FAIL"
            variants.append(bench.Variant(f"torch[{name}]", call, err=err, status=status))
    bench.interleave(variants, args.rounds, args.min_rounds, args.budget, bar, pause=0.002)
    for v in variants:  # free the layer's device buffers and executables
        v.call = None
    return {v.name: v for v in variants}


# ----------------------------------------------------------------------------- reporting
HEADER = [
    "config",
    "dtype",  # table_header() adds the float32 precision
    "autodiff ms",
    "auto ms",
    "auto×autodiff",
    *(f"{a} ms" for a in ALGORITHMS[1:]),
    "torch ms (format)",
    "auto×torch",
]
MEM_HEADER = ["config", "dtype", "autodiff", *ALGORITHMS]


def table_header(precision: str) -> list[str]:
    return [HEADER[0], f"dtype (float32: {precision})", *HEADER[2:]]


def table_rows(results) -> list[list[str]]:
    rows = []
    for (name, dtype), res in results.items():
        tb = bench.best_torch(res)
        rows.append(
            [
                f"{name}: {bench.CONFIGS[name].label}",
                dtype,
                bench.ms(res["autodiff"]),
                bench.ms(res["auto"]),
                bench.fmt_ratio(bench.ratio(res["auto"], res["autodiff"])),
                *(bench.ms(res[a]) if a in res else "—" for a in ALGORITHMS[1:]),
                "n/a" if tb is None else f"{bench.ms(tb)} ({tb.name[6:-1]})",
                bench.fmt_ratio(bench.ratio(res["auto"], tb)),
            ]
        )
    return rows


def memory_rows(results) -> list[list[str]]:
    return [
        [name, dtype, *(bench.mb(res.get(a)) if a in res else "—" for a in MEM_HEADER[2:])]
        for (name, dtype), res in results.items()
    ]


def fastest(res) -> bench.Variant | None:
    """The fastest correct jaxconv algorithm of one layer's results."""
    ok = [res[a] for a in ALGORITHMS if a in res and res[a].status == "ok" and res[a].times]
    return min(ok, key=lambda v: v.median_ms) if ok else None


def summary(results, dtypes) -> list[str]:
    lines = []
    for dtype in dtypes:
        rs = {n: r for (n, d), r in results.items() if d == dtype}
        if not rs:
            continue
        for label, other in (("autodiff", lambda r: r["autodiff"]), ("torch", bench.best_torch)):
            ratios = {n: bench.ratio(r["auto"], other(r)) for n, r in rs.items()}
            known = {n: q for n, q in ratios.items() if q is not None}
            if not known:
                lines.append(f"- {dtype}: auto/{label}: not measured")
                continue
            worst = max(known, key=known.get)
            lines.append(
                f"- {dtype}: geometric mean auto/{label}: **{bench.geomean(known.values()):.2f}×** "
                f"over {len(known)} configs; max {known[worst]:.2f}× ({worst})"
            )
        parts = []
        for n, r in rs.items():
            best = fastest(r)
            if bench.is_conv(bench.CONFIGS[n]) and best is not None:
                vs_auto = bench.ratio(best, r["auto"])
                auto = f"auto = {bench.auto_picks(bench.CONFIGS[n], jax.devices()[0].platform)}"
                if best.name != "auto" and vs_auto is not None:
                    auto += f": {bench.ms(r['auto'])} ms, best {vs_auto:.2f}× of it"
                parts.append(f"{n} **{best.name}** {bench.ms(best)} ms ({auto})")
        if parts:
            lines.append(
                f"- {dtype}: fastest jaxconv algorithm per conv config "
                "(with auto's fwd/dx/dw picks): " + "; ".join(parts)
            )
    bad = [
        f"{n} {d} [{v.name}]: {v.status} {v.note}".rstrip()
        for (n, d), r in results.items()
        for v in r.values()
        if v.status != "ok"
    ]
    if bad:
        lines.append("- not ok: " + "; ".join(bad))
    return lines


def write_csv(path: Path, results, precision: str) -> None:
    fields = ["config", "dtype", "matmul_precision", "variant", "status", "median_ms", "min_ms"]
    fields += ["rounds", "temp_bytes", "compile_s", "rel_error", "note"]
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(fields)
        for (name, dtype), res in results.items():
            for v in res.values():
                precision_col = precision if dtype == "float32" else "n/a"
                wr.writerow([name, dtype, precision_col, *bench.csv_fields(v)])


def write_markdown(path: Path, results, args, info, seconds, skipped) -> str:
    table = _common.markdown_table(table_header(args.precision), table_rows(results))
    mem = memory_rows(results)
    has_mem = any(c != "n/a" for row in mem for c in row[2:] if c != "—")
    tols = ", ".join(f"{RTOL[d]:g} ({d})" for d in args.dtypes)
    text = "\n".join(
        [
            *bench.markdown_head(
                "GPU benchmark: fwd+bwd of (y, dx, dw), channels-last, " + ", ".join(args.dtypes),
                "benchmark_gpu.py",
                args,
                info,
                seconds,
            ),
            f"**float32 matmul precision: {info['float32 matmul precision']}.** "
            "autodiff = `jit(vjp)` of plain lax (NHWC/HWIO) in the row's dtype; jaxconv columns = "
            "`backward=` algorithm (pools have one); torch = best of NCHW / channels_last; ratios "
            "< 1 mean jaxconv is faster; FAIL = (y, dx, dw) differs from autodiff by more than "
            f"{tols} relative to the max.",
            "",
            table,
            "",
            *summary(results, args.dtypes),
            *(
                [f"- skipped (past --max-seconds {args.max_seconds:g}): {', '.join(skipped)}"]
                if skipped
                else []
            ),
            "",
            *(
                [
                    "Compiled temp memory (`memory_analysis().temp_size_in_bytes`, MB):",
                    "",
                    _common.markdown_table(MEM_HEADER, mem),
                    "",
                ]
                if has_mem
                else ["Compiled temp memory: not reported by this backend.", ""]
            ),
        ]
    )
    path.write_text(text)
    return table


# ----------------------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}; 3 rounds, float32")
    ap.add_argument(
        "--dtypes",
        default=None,
        help="comma list of float32, bfloat16 (default both; --quick: float32)",
    )
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--min-rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per variant and layer")
    ap.add_argument(
        "--max-seconds", type=float, default=210.0, help="start no layer after this many seconds"
    )
    ap.add_argument("--configs", default=None, help=f"comma list from {', '.join(bench.CONFIGS)}")
    ap.add_argument(
        "--matmul-precision",
        default=None,
        help="set jax_default_matmul_precision (e.g. highest); default: leave it as it is",
    )
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", default=None, help="output folder (default experiments/results/gpu/)")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.dtypes is None:
        args.dtypes = "float32" if args.quick else ",".join(DTYPES)
    args.dtypes = args.dtypes.split(",")
    names = (
        args.configs.split(",") if args.configs else list(QUICK if args.quick else bench.CONFIGS)
    )
    unknown = [n for n in names if n not in bench.CONFIGS] + [
        d for d in args.dtypes if d not in DTYPES
    ]
    if unknown:
        ap.error(f"unknown config(s)/dtype(s) {unknown}; configs {list(bench.CONFIGS)}")
    args.names = names
    if args.quick:
        args.rounds, args.min_rounds = min(args.rounds, 3), min(args.min_rounds, 3)
    args.min_rounds = min(args.min_rounds, args.rounds)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.matmul_precision is not None:
        jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    out = Path(args.out) if args.out is not None else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    _, torch_device, torch_info = torch_setup(args.no_torch)
    info = _common.environment(extra=("torch",))
    info.update(torch_info)
    info["malloc"] = _common.malloc_setting()  # host allocator: matters on XLA:CPU only
    info["dtypes"] = ", ".join(args.dtypes)
    err = measured_precision()
    info["float32 matmul precision"] = (
        f"{matmul_precision()} (jax_default_matmul_precision); measured vs float64: "
        f"dot {err['dot']:.1e} ({precision_label(err['dot'])}), "
        f"1x1 conv {err['conv']:.1e} ({precision_label(err['conv'])})"
    )
    args.precision = (
        f"{matmul_precision()} precision, measured {precision_label(max(err.values()))}"
    )
    _common.print_banner("benchmark_gpu: jaxconv fwd+bwd vs JAX autodiff vs PyTorch", info)
    print(f"   rounds {args.rounds}, configs {', '.join(args.names)}")

    results, skipped = {}, []
    t0 = time.perf_counter()
    jobs = [(n, d) for n in args.names for d in args.dtypes]
    with _common.progress(len(jobs) * args.rounds, "rounds", args.no_progress) as bar:
        for name, dtype in jobs:
            if time.perf_counter() - t0 > args.max_seconds:
                skipped.append(f"{name} {dtype}")
                continue
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"{name} {dtype}")
            results[name, dtype] = bench_config(bench.CONFIGS[name], dtype, args, torch_device, bar)
            seconds = time.perf_counter() - t0
            write_markdown(out / "benchmark.md", results, args, info, seconds, skipped)
            write_csv(out / "benchmark.csv", results, matmul_precision())
    seconds = time.perf_counter() - t0
    table = write_markdown(out / "benchmark.md", results, args, info, seconds, skipped)
    write_csv(out / "benchmark.csv", results, matmul_precision())
    print(table)
    print("\n".join(summary(results, args.dtypes)))
    print(f"{seconds:.0f} s; wrote {out / 'benchmark.md'}, benchmark.csv")
    summary_dict: dict = {}
    for (n, d), r in results.items():
        summary_dict.setdefault(n, {})[d] = {
            k: {"status": v.status, "median_ms": v.median_ms, "temp": v.temp, "err": v.err}
            for k, v in r.items()
        }
    return summary_dict


if __name__ == "__main__":
    main()
