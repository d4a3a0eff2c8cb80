"""Fuzz the conv family: conv, conv_transpose, conv_input_grad, conv_weight_grad and the drop-in
conv_general_dilated (the contract: `harness.py`)."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings

from tests.fuzz.harness import check, fuzzes
from tests.fuzz.strategies import (
    Call,
    conv_calls,
    conv_general_dilated_calls,
    conv_input_grad_calls,
    conv_transpose_calls,
    conv_weight_grad_calls,
)

# Regressions: bugs this fuzz found and the validation layer now reports (each was an escaping
# error or a silently accepted call before; `check` holds them to the same contract).
F64 = np.ones((1, 3, 2))
NARROW = {"preferred_element_type": np.float32}  # narrower than float64 operands: lax refuses


@fuzzes("conv")
@settings(max_examples=180)
@given(call=conv_calls())
@example(call=Call("conv", (F64, np.ones((1, 2, 2))), NARROW))
@example(call=Call("conv", (F64, np.ones((1, 2, 2))), {"stride": 2**63}))
@example(
    call=Call(
        "conv",
        (np.ones((1, 0, 2)), np.ones((1, 2, 4))),
        {"padding": 1, "padding_mode": "replicate"},
    )
)
def test_fuzz_conv(call):
    check(call)


@fuzzes("conv_transpose")
@settings(max_examples=130)
@given(call=conv_transpose_calls())
@example(call=Call("conv_transpose", (F64, np.ones((1, 2, 2))), NARROW))
def test_fuzz_conv_transpose(call):
    check(call)


@fuzzes("conv_input_grad")
@settings(max_examples=120)
@given(call=conv_input_grad_calls())
@example(call=Call("conv_input_grad", ((1, 3, 2), np.ones((1, 2, 2)), F64), NARROW))
def test_fuzz_conv_input_grad(call):
    check(call)


@fuzzes("conv_weight_grad")
@settings(max_examples=120)
@given(call=conv_weight_grad_calls())
@example(call=Call("conv_weight_grad", (F64, (1, 2, 2), F64), NARROW))
def test_fuzz_conv_weight_grad(call):
    check(call)


@fuzzes("conv_general_dilated")
@settings(max_examples=160)
@given(call=conv_general_dilated_calls())
@example(call=Call("conv_general_dilated", (F64, np.ones((2, 2, 1)), (1,), "VALID"), NARROW))
@example(
    call=Call(
        "conv_general_dilated", (np.ones((1, 2, 1, 1)), np.ones((1, 2, 0, 1)), (1, 1), "VALID"), {}
    )
)
def test_fuzz_conv_general_dilated(call):
    check(call)
