"""Smoke tests: every experiments/ script runs end to end with --quick and writes its outputs.

Each script runs in a subprocess (its own JAX configuration: float32 training, no test-suite
x64 flag) with ``--out`` pointing into pytest's tmp dir, so the repository stays clean. A test
skips when an optional package of the experiments extra (``pip install -e '.[experiments]'``) or
of the flax extra is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.devices import host_devices_env

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
TIMEOUT = 600


def run_script(name: str, out: Path, *args: str) -> str:
    """Run experiments/<name> --quick --out <out>; return its stdout, fail with its output."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    env.pop("XLA_FLAGS", None)  # no forced host devices etc. from a surrounding test run
    cmd = [sys.executable, str(EXPERIMENTS / name), "--quick", "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, (
        f"{name} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    assert path.stat().st_size > 5000, path


def assert_versions_banner(stdout: str) -> None:
    for key in ("jax", "jaxlib", "numpy", "python", "platform", "device"):
        assert re.search(rf"^\s+{key}\s", stdout, re.M), (key, stdout[:2000])


def test_train_mnist1d_quick(tmp_path):
    for mod in ("mnist1d", "optax", "matplotlib"):
        pytest.importorskip(mod)
    stdout = run_script("train_mnist1d.py", tmp_path, "--no-progress")
    assert_versions_banner(stdout)
    md = (tmp_path / "mnist1d.md").read_text()
    assert "| seed | acc jaxconv (%)" in md and "## Environment" in md
    assert_png(tmp_path / "mnist1d_curves.png")
    # explicit and automatic gradients agree at init (same float32 ops, summed alike)
    grad_diff = float(re.search(r"at init, first batch: ([0-9.e+-]+)", stdout).group(1))
    assert grad_diff < 1e-5
    # after 301 quick steps the net has learned something (chance is 10%)
    acc = [float(a) for a in re.findall(r"test accuracy ([0-9.]+) ±", stdout)]
    assert len(acc) == 2 and min(acc) > 30.0, stdout


def test_train_digits_quick(tmp_path):
    for mod in ("sklearn", "optax", "matplotlib"):
        pytest.importorskip(mod)
    stdout = run_script("train_digits.py", tmp_path, "--no-progress")
    assert_versions_banner(stdout)
    assert "| seed | acc jaxconv (%)" in (tmp_path / "digits.md").read_text()
    assert_png(tmp_path / "digits_curves.png")
    acc = [float(a) for a in re.findall(r"test accuracy ([0-9.]+) ±", stdout)]
    assert len(acc) == 2 and min(acc) > 50.0, stdout


def test_figures(tmp_path):
    pytest.importorskip("matplotlib")
    stdout = run_script("figures.py", tmp_path)
    for name in ("fig_rot180", "fig_strided_input_grad", "fig_polyphase", "fig_pool_routing"):
        assert_png(tmp_path / f"{name}.png")
    # every figure's numbers equal jax.vjp through jaxconv (the script exits 1 otherwise)
    assert stdout.count("max |NumPy - jax.vjp| = 0.0e+00") == 4, stdout


def test_gradcheck_quick(tmp_path):
    pytest.importorskip("matplotlib")
    stdout = run_script("gradcheck.py", tmp_path, "--no-progress")
    md = (tmp_path / "gradcheck.md").read_text()
    assert "| op | backward | configs |" in md
    assert_png(tmp_path / "gradcheck_hist.png")
    assert re.search(r"; 0 failures;", stdout), stdout
    assert "missing from jaxconv" not in stdout, stdout


def test_flax_example_quick(tmp_path):
    for mod in ("flax", "optax"):
        pytest.importorskip(mod)
    stdout = run_script("flax_example.py", tmp_path)
    assert stdout.count(" OK") == 2, stdout  # linen and nnx both match stock Flax
    assert "| linen |" in (tmp_path / "flax.md").read_text()


def test_train_sharded_quick(tmp_path):
    """4 host devices: the digits CNN trains on the data and data x height meshes, each first
    step equals the single-device one, and a batch the devices cannot split is refused."""
    for mod in ("sklearn", "optax"):
        pytest.importorskip(mod)
    env = host_devices_env(4, PYTHONWARNINGS="ignore")
    cmd = [sys.executable, str(EXPERIMENTS / "train_sharded.py"), "--quick", "--no-progress"]
    cmd += ["--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert proc.returncode == 0, (
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    assert_versions_banner(proc.stdout)
    assert "device count: 4" in proc.stdout
    md = (tmp_path / "train_sharded.md").read_text()
    rows = re.findall(
        r"^\| (data=4|data=2 × height=2) \| 4 \| (16|32) \| ([0-9.]+) \|.*\| yes \|$", md, re.M
    )
    assert len(rows) == 2 and min(float(r[2]) for r in rows) > 50.0, md
    proc = subprocess.run(cmd + ["--batch-size", "30"], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "must be divisible by the number of devices" in proc.stderr


def test_native_kernels_quick(tmp_path):
    """experiments/native_kernels.py: the threads table (one layer) and the bfloat16 table,
    where the native kernels are built."""
    import jaxconv

    status = jaxconv.native_available()
    if not status:
        pytest.skip(f"native kernels unavailable: {status.reason}")
    stdout = run_script("native_kernels.py", tmp_path)
    assert_versions_banner(stdout)
    md = (tmp_path / "native_kernels.md").read_text()
    assert "| layer | lowering | one ms |" in md and "| layer | bf16 native ms |" in md
    assert "bitwise the same over 4 runs: yes" in md
