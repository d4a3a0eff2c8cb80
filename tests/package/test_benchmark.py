"""Smoke test: experiments/benchmark.py --quick runs in-process and writes its three outputs,
with both tables (conv/pool layers and the spatial ops); --spatial-only runs the second alone.

Only the plumbing is checked (every variant measured and correct, files written); timings are
never asserted. Skips when matplotlib or tqdm (the experiments extra) is missing.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

import jaxconv as jc

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture
def bench(monkeypatch):
    """experiments/benchmark.py as a module (it puts experiments/ on sys.path for _common)."""
    for mod in ("matplotlib", "tqdm"):
        pytest.importorskip(mod)
    spec = importlib.util.spec_from_file_location(
        "_jaxconv_benchmark", EXPERIMENTS / "benchmark.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_benchmark_quick(bench, tmp_path):
    results = bench.main(["--quick", "--no-progress", "--out", str(tmp_path)])

    assert bench.QUICK_SPATIAL and set(bench.QUICK_SPATIAL) <= set(bench.SPATIAL)
    assert set(results) == set(bench.QUICK) | set(bench.QUICK_SPATIAL)
    for name, res in results.items():
        if name in bench.SPATIAL:
            expected = {"autodiff", "jaxconv"}
        else:
            expected = {"autodiff", "auto"}
            if bench.is_conv(bench.CONFIGS[name]):
                expected |= set(bench.ALGORITHMS)
        assert expected <= set(res), (name, sorted(res))
        if "native" in res and not jc.native_available():  # not built here: n/a, with why
            assert res["native"]["status"] == "n/a", res["native"]
            expected.discard("native")
        for variant in expected:
            assert res[variant]["status"] == "ok", (name, variant, res[variant])
            assert res[variant]["median_ms"] > 0, (name, variant)

    md = (tmp_path / "benchmark.md").read_text()
    assert "## Environment" in md and "| config | autodiff ms |" in md
    for name in bench.QUICK:
        assert f"| {name}: " in md
    assert "geometric mean auto/autodiff" in md

    # the spatial ops' table: its header, one row per quick case, correct, its summary
    spatial = md[md.index("### Spatial ops") :]
    assert "| case | jaxconv ms | autodiff ms |" in spatial
    for name in bench.QUICK_SPATIAL:
        row = next(line for line in spatial.splitlines() if line.startswith(f"| {name}: "))
        assert "| ok (" in row, row  # rel error vs autodiff and torch within RTOL
    assert "geometric mean jaxconv/autodiff" in spatial

    with open(tmp_path / "benchmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["config"] for r in rows} == set(bench.QUICK) | set(bench.QUICK_SPATIAL)
    assert all(int(r["rounds"]) >= 1 for r in rows if r["status"] != "n/a")

    png = tmp_path / "benchmark.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_benchmark_spatial_only(bench, tmp_path):
    """--spatial-only runs the spatial ops' table alone (here one case, one round, each timed
    call after an untimed one: --warm 1): no conv table in benchmark.md, only that case in the
    CSV; the header says how calls were timed."""
    name = "adaptive_avg_1x1"
    argv = ["--spatial-only", "--configs", name, "--rounds", "1", "--no-progress", "--warm", "1"]
    results = bench.main([*argv, "--out", str(tmp_path)])

    assert set(results) == {name}
    assert results[name]["jaxconv"]["status"] == "ok"
    md = (tmp_path / "benchmark.md").read_text()
    assert "each timed call after a 20 ms pause and untimed calls of the same variant" in md
    assert "GOMP_SPINCOUNT" in md
    assert "### Spatial ops" in md and f"| {name}: " in md
    assert "| config | autodiff ms |" not in md
    with open(tmp_path / "benchmark.csv") as f:
        assert {r["config"] for r in csv.DictReader(f)} == {name}
    assert (tmp_path / "benchmark.png").read_bytes()[:4] == b"\x89PNG"


def test_malloc_setting_and_reexec(monkeypatch):
    """`_common.reexec_with_tuned_malloc` restarts the script once with MALLOC_ENV added (and
    never again once it is set); `malloc_setting` reports which setting a run had."""
    sys.path.insert(0, str(EXPERIMENTS))
    import _common

    calls = []
    monkeypatch.setattr(_common.os, "execve", lambda *a: calls.append(a))
    monkeypatch.setattr(_common.sys, "platform", "linux")
    for key in _common.MALLOC_ENV:
        monkeypatch.delenv(key, raising=False)
    assert _common.malloc_setting() == "glibc defaults"
    _common.reexec_with_tuned_malloc()
    assert len(calls) == 1
    exe, argv, env = calls[0]
    assert exe == sys.executable and argv[1:] == sys.argv
    assert all(env[k] == v for k, v in _common.MALLOC_ENV.items())

    for key, value in _common.MALLOC_ENV.items():
        monkeypatch.setenv(key, value)
    assert _common.malloc_setting().startswith("tuned (MALLOC_ARENA_MAX=1")
    _common.reexec_with_tuned_malloc()
    assert len(calls) == 1  # already tuned: no restart


def test_reexec_with_keeps_the_users_settings(monkeypatch):
    """`_common.reexec_with` restarts once with the missing entries added (the benchmark's
    tuned allocator) and never overrides a value the user set."""
    sys.path.insert(0, str(EXPERIMENTS))
    import _common

    calls = []
    monkeypatch.setattr(_common.os, "execve", lambda *a: calls.append(a))
    monkeypatch.setattr(_common.sys, "platform", "linux")
    for key in _common.MALLOC_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user's own
    _common.reexec_with(_common.MALLOC_ENV)
    assert len(calls) == 1
    env = calls[0][2]
    assert env["MALLOC_ARENA_MAX"] == "4"  # kept
    assert env["MALLOC_TRIM_THRESHOLD_"] == _common.MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]

    for key, value in _common.MALLOC_ENV.items():  # every entry set: no restart
        monkeypatch.setenv(key, value)
    _common.reexec_with(_common.MALLOC_ENV)
    assert len(calls) == 1
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert _common.spin_setting() == "default"  # the banner's entry
    monkeypatch.setenv("GOMP_SPINCOUNT", "7")
    assert _common.spin_setting() == "7"
