"""Smoke test: experiments/benchmark_gpu.py --quick runs in-process (on CPU here) and writes its
two outputs.

Only the plumbing is checked (every variant measured and correct, files written); timings are
never asserted. Skips when matplotlib or tqdm (the experiments extra) is missing.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture
def bench_gpu(monkeypatch):
    """experiments/benchmark_gpu.py as a module (it imports experiments/benchmark.py, whose
    main() would re-exec the process with malloc settings: importing and running must not)."""
    for mod in ("matplotlib", "tqdm"):
        pytest.importorskip(mod)

    def no_exec(*args):
        raise AssertionError(f"benchmark_gpu re-executed itself: {args[:2]}")

    monkeypatch.setattr(os, "execve", no_exec)
    spec = importlib.util.spec_from_file_location(
        "_jaxconv_benchmark_gpu", EXPERIMENTS / "benchmark_gpu.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_benchmark_gpu_quick(bench_gpu, tmp_path):
    bench = bench_gpu.bench
    results = bench_gpu.main(["--quick", "--no-progress", "--no-torch", "--out", str(tmp_path)])

    assert len(bench_gpu.QUICK) == 3 and set(results) == set(bench_gpu.QUICK)
    assert set(bench.QUICK) <= set(bench_gpu.QUICK)
    for name, per_dtype in results.items():
        assert set(per_dtype) == {"float32"}, (name, sorted(per_dtype))
        res = per_dtype["float32"]
        expected = {"autodiff", "auto"}
        if bench.is_conv(bench.CONFIGS[name]):
            expected |= set(bench_gpu.ALGORITHMS)
        assert set(res) == expected, (name, sorted(res))  # --no-torch: no torch variants
        for variant in expected:
            assert res[variant]["status"] == "ok", (name, variant, res[variant])
            assert res[variant]["median_ms"] > 0, (name, variant)
            assert res[variant]["err"] <= bench_gpu.RTOL["float32"], (name, variant)

    md = (tmp_path / "benchmark.md").read_text()
    assert "## Environment" in md and "float32 matmul precision" in md
    assert "| config | dtype (float32: " in md and "| autodiff ms | auto ms | auto×autodiff |" in md
    for name in bench_gpu.QUICK:
        assert f"| {name}: " in md
    assert "float32: geometric mean auto/autodiff" in md
    assert "float32: fastest jaxconv algorithm per conv config" in md

    with open(tmp_path / "benchmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["config"] for r in rows} == set(bench_gpu.QUICK)
    assert {r["dtype"] for r in rows} == {"float32"}
    assert len(rows) == sum(len(r["float32"]) for r in results.values())
    assert all(r["status"] == "ok" and 1 <= int(r["rounds"]) <= 3 for r in rows)


def test_benchmark_gpu_reuses_benchmark(bench_gpu):
    """The layers and builders are benchmark.py's own (imported, not copied); outputs default
    to experiments/results/gpu/."""
    assert Path(bench_gpu.bench.__file__).resolve() == EXPERIMENTS / "benchmark.py"
    assert bench_gpu.bench.lax_forward.__module__ == bench_gpu.bench.__name__
    assert bench_gpu.RESULTS == EXPERIMENTS / "results" / "gpu"


def test_precision_label(bench_gpu):
    assert bench_gpu.precision_label(3e-7) == "float32"
    assert bench_gpu.precision_label(4e-4) == "TF32-like"
    assert bench_gpu.precision_label(2e-2) == "bfloat16-like"
