"""Shared test setup: float64 on, highest matmul precision, strict rank and dtype promotion,
hypothesis profiles (tolerances and comparison helpers: `tests/support/numerics.py`)."""

import json
import os
import sys
from collections import Counter

# Under pytest-xdist every worker is one of as many processes as there are cores: the native
# kernels' OpenMP teams (oneDNN) get one thread each, unless the environment says otherwise
# (read by GNU OpenMP when the kernels load, on first use, after this runs).
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")
# JAX's strict settings (JAX's, equinox's and many users' suites run with them): no jaxconv path
# may rely on implicit rank or dtype promotion.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

# "ci" (default) keeps the whole suite within a few minutes on 2 cores; "thorough" for local runs;
# "quick" (5 examples per property) for the GPU check (experiments/gpu_check.sh), compile-bound.
_PROFILE = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=15, derandomize=True, **_PROFILE)
settings.register_profile("thorough", max_examples=300, **_PROFILE)
settings.register_profile("quick", max_examples=5, derandomize=True, **_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# Fuzz counts from pytest-xdist workers, summed on the controller (`pytest -n 2`).
_WORKER_COUNTS: list[dict] = []


def _fuzz_counts() -> dict:
    harness = sys.modules.get("tests.fuzz.harness")
    return {} if harness is None else {k: dict(v) for k, v in harness.COUNTS.items()}


def pytest_sessionfinish(session):
    """On an xdist worker: hand this worker's fuzz counts to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fuzz_counts"] = json.dumps(_fuzz_counts())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the xdist controller: collect a finished worker's fuzz counts."""
    counts = getattr(node, "workeroutput", {}).get("fuzz_counts")
    if counts:
        _WORKER_COUNTS.append(json.loads(counts))


def pytest_terminal_summary(terminalreporter):
    """The fuzz's table of cases per public function, when fuzz tests ran in this session."""
    if "tests.fuzz.harness" not in sys.modules and not _WORKER_COUNTS:
        return
    from tests.fuzz import harness

    counts = [_fuzz_counts(), *_WORKER_COUNTS]
    total = {fn: Counter() for fn in harness.PUBLIC}
    for part in counts:
        for fn, c in part.items():
            total.setdefault(fn, Counter()).update(c)
    lines = harness.summary(total)
    if lines:
        terminalreporter.write_sep("-", "fuzz: cases per public function")
        for line in lines:
            terminalreporter.write_line(line)
