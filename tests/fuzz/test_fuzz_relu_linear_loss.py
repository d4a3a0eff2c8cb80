"""Fuzz relu, linear, mse_loss and softmax_cross_entropy (the contract:
`harness.py`)."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings

from tests.fuzz.harness import check, fuzzes
from tests.fuzz.strategies import Call
from tests.fuzz.strategies_pool import (
    linear_calls,
    mse_loss_calls,
    relu_calls,
    softmax_cross_entropy_calls,
)

# Regressions (the @example calls): bugs this fuzz found and the validation layer now reports
# (each was an escaping error or a silently accepted call before; `check` holds them to the
# same contract).


@fuzzes("relu")
@settings(max_examples=50)
@given(call=relu_calls())
def test_fuzz_relu(call):
    check(call)


@fuzzes("linear")
@settings(max_examples=70)
@given(call=linear_calls())
def test_fuzz_linear(call):
    check(call)


@fuzzes("mse_loss")
@settings(max_examples=70)
@given(call=mse_loss_calls())
def test_fuzz_mse_loss(call):
    check(call)


@fuzzes("softmax_cross_entropy")
@settings(max_examples=70)
@given(call=softmax_cross_entropy_calls())
@example(call=Call("softmax_cross_entropy", (np.ones((2, 0)), np.zeros(2, np.int32)), {}))
@example(call=Call("softmax_cross_entropy", (np.ones((1, 3)), [0]), {}))
def test_fuzz_softmax_cross_entropy(call):
    check(call)
