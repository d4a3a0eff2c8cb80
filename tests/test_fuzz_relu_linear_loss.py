"""Fuzz relu, linear, mse_loss and softmax_cross_entropy (issue 7; the contract:
`fuzz_harness.py`)."""

from __future__ import annotations

import numpy as np
from fuzz_harness import check
from fuzz_strategies import Call
from fuzz_strategies_pool import (
    linear_calls,
    mse_loss_calls,
    relu_calls,
    softmax_cross_entropy_calls,
)
from hypothesis import example, given, settings

# Regressions (the @example calls): bugs this fuzz found and the validation layer now reports
# (each was an escaping error or a silently accepted call before; `check` holds them to the
# same contract).


@settings(max_examples=50)
@given(call=relu_calls())
def test_fuzz_relu(call):
    check(call)


@settings(max_examples=70)
@given(call=linear_calls())
def test_fuzz_linear(call):
    check(call)


@settings(max_examples=70)
@given(call=mse_loss_calls())
def test_fuzz_mse_loss(call):
    check(call)


@settings(max_examples=70)
@given(call=softmax_cross_entropy_calls())
@example(call=Call("softmax_cross_entropy", (np.ones((2, 0)), np.zeros(2, np.int32)), {}))
@example(call=Call("softmax_cross_entropy", (np.ones((1, 3)), [0]), {}))
def test_fuzz_softmax_cross_entropy(call):
    check(call)
