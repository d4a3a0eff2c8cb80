"""The fuzz's regressions (bugs it found, fixed outside the validation layer) and its coverage
of the public API (the contract: `harness.py`; the case counts are printed at the end of the
session by the `pytest_terminal_summary` hook in tests/conftest.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from tests.fuzz.harness import PUBLIC, REFS, check
from tests.fuzz.strategies import Call
from tests.support import registry

F64 = np.ones((1, 3, 2))
F32 = F64.astype(np.float32)


# Found by this fuzz and fixed outside the validation layer: each must now hold the contract.
FIXED = [
    pytest.param(
        Call("max_unpool", (np.ones((0, 2, 1)), np.zeros((0, 2, 1), np.int32), (3,)), {}),
        id="max_unpool-empty-batch",  # _maxpool._flat reshaped with -1 on size 0
    ),
    pytest.param(
        Call("global_max_pool", (np.ones((2, 3, 0)),), {}),
        id="global_max_pool-no-channels",
    ),
    pytest.param(
        Call("max_unpool", (np.ones((1, 1, 1)), np.full((1, 1, 1), 2**32 + 1), (3,)), {}),
        id="max_unpool-int64-index-wraps",  # indices were cast to int32 before the range test
    ),
    pytest.param(
        Call(
            "conv_input_grad",
            ((1, 3, 2), np.ones((1, 2, 2), np.float32), F32),
            {"backward": "transpose", "preferred_element_type": np.float64},
        ),
        id="conv_input_grad-vjp-wider-preferred-type",  # float64 cotangent, float32 operand
    ),
]


@pytest.mark.parametrize("call", FIXED)
def test_fixed_bugs(call):
    check(call, counts={})


def test_every_public_function_is_fuzzed():
    tests = {
        name[len("test_fuzz_") :]
        for path in sorted(Path(__file__).parent.glob("test_fuzz_*.py"))
        for name in vars(importlib.import_module(f"tests.fuzz.{path.stem}"))
        if name.startswith("test_fuzz_")
    }
    assert set(PUBLIC) == set(REFS) == tests == set(registry.PUBLIC)
