"""Fuzz the resampling and spatial ops: interpolate, the adaptive and fractional pools, the
pixel shuffles, unfold / fold and the locally connected convolutions (the contract:
`harness.py`)."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings

from tests.fuzz.harness import check, fuzzes
from tests.fuzz.strategies import Call
from tests.fuzz.strategies_spatial import (
    adaptive_pool_calls,
    conv_general_dilated_local_calls,
    conv_local_calls,
    fold_calls,
    fractional_max_pool_calls,
    interpolate_calls,
    shuffle_calls,
    unfold_calls,
)


@fuzzes("interpolate")
@settings(max_examples=150)
@given(call=interpolate_calls())
def test_fuzz_interpolate(call):
    check(call)


@fuzzes("adaptive_avg_pool")
@settings(max_examples=100)
@given(call=adaptive_pool_calls("adaptive_avg_pool"))
def test_fuzz_adaptive_avg_pool(call):
    check(call)


@fuzzes("adaptive_max_pool")
@settings(max_examples=100)
@given(call=adaptive_pool_calls("adaptive_max_pool"))
def test_fuzz_adaptive_max_pool(call):
    check(call)


@fuzzes("fractional_max_pool")
@settings(max_examples=80)
@given(call=fractional_max_pool_calls())
def test_fuzz_fractional_max_pool(call):
    check(call)


@fuzzes("pixel_shuffle")
@settings(max_examples=100)
@given(call=shuffle_calls("pixel_shuffle"))
def test_fuzz_pixel_shuffle(call):
    check(call)


@fuzzes("pixel_unshuffle")
@settings(max_examples=100)
@given(call=shuffle_calls("pixel_unshuffle"))
def test_fuzz_pixel_unshuffle(call):
    check(call)


@fuzzes("unfold")
@settings(max_examples=100)
@given(call=unfold_calls())
def test_fuzz_unfold(call):
    check(call)


@fuzzes("fold")
@settings(max_examples=100)
@given(call=fold_calls())
def test_fuzz_fold(call):
    check(call)


@fuzzes("conv_local")
@settings(max_examples=100)
@given(call=conv_local_calls())
# regression: a kernel larger than the input was blamed on a `window` argument conv_local lacks
@example(call=Call("conv_local", (np.ones((1, 1, 1)), np.ones((1, 2, 1, 1))), {}))
def test_fuzz_conv_local(call):
    check(call)


@fuzzes("conv_general_dilated_local")
@settings(max_examples=100)
@given(call=conv_general_dilated_local_calls())
# regression: an empty spatial dim under lhs_dilation > 1 had a negative dilated extent
@example(
    call=Call(
        "conv_general_dilated_local",
        (np.ones((1, 1, 0)), np.ones((1, 1, 2)), (1,), ((1, 1),), (1,)),
        {"lhs_dilation": (2,)},
    )
)
def test_fuzz_conv_general_dilated_local(call):
    check(call)
