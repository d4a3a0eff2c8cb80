"""The fuzz's regressions and its summary (issue 7; the contract: `fuzz_harness.py`).

Named to sort after the other tests/test_fuzz_*.py files: `test_zz_case_counts` reads the counts
that the fuzz tests before it filled in (and skips when only part of them ran).
"""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import COUNTS, PUBLIC, REFS, check
from fuzz_strategies import Call

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
        for name in vars(importlib.import_module(path.stem))
        if name.startswith("test_fuzz_")
    }
    assert set(PUBLIC) == set(REFS) == tests


def test_zz_case_counts():
    """Last of the fuzz files: every public function was fuzzed with valid and rejected calls.

    examples: calls hypothesis drew; cases: the distinct ones among them (a repeat is skipped),
    each either valid (checked against the reference) or rejected (checked for its message).
    """
    if not all(COUNTS[fn]["cases"] for fn in PUBLIC):
        pytest.skip("only part of the fuzz files ran")
    head = ("examples", "cases", "valid", "rejected")
    lines = [f"{'function':22}" + "".join(f"{h:>10}" for h in head)]
    for fn in [*PUBLIC, "all"]:
        c = COUNTS[fn] if fn != "all" else sum(COUNTS.values(), Counter())
        lines.append(f"{fn:22}" + "".join(f"{c[h]:10d}" for h in head))
    print("\n" + "\n".join(lines))
    for fn in PUBLIC:
        assert COUNTS[fn]["valid"] > 0 and COUNTS[fn]["rejected"] > 0, (fn, COUNTS[fn])
