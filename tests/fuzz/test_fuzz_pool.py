"""Fuzz pooling: max_pool, min_pool, avg_pool, lp_pool, the global pools and max_unpool (the
contract: `harness.py`)."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings

from tests.fuzz.harness import check, fuzzes
from tests.fuzz.strategies import Call
from tests.fuzz.strategies_pool import global_pool_calls, max_unpool_calls, pool_calls

# Regressions (the @example calls): bugs this fuzz found and the validation layer now reports
# (each was an escaping error or a silently accepted call before; `check` holds them to the
# same contract).
F64 = np.ones((1, 3, 2))


@fuzzes("max_pool")
@settings(max_examples=150)
@given(call=pool_calls("max_pool"))
@example(call=Call("max_pool", (F64, 2), {"ceil_mode": np.True_, "return_indices": np.True_}))
@example(call=Call("max_pool", (F64, 2), {"stride": (2**64,)}))
def test_fuzz_max_pool(call):
    check(call)


@fuzzes("min_pool")
@settings(max_examples=80)
@given(call=pool_calls("min_pool"))
@example(call=Call("min_pool", (np.zeros((1, 4, 1), np.int8), 3), {"padding": 1}))
def test_fuzz_min_pool(call):
    check(call)


@fuzzes("avg_pool")
@settings(max_examples=120)
@given(call=pool_calls("avg_pool"))
@example(call=Call("avg_pool", (F64, 2), {"ceil_mode": np.True_, "count_include_pad": np.False_}))
def test_fuzz_avg_pool(call):
    check(call)


@fuzzes("lp_pool")
@settings(max_examples=100)
@given(call=pool_calls("lp_pool"))
@example(call=Call("lp_pool", (F64 + 1, 2, 2), {"ceil_mode": np.True_}))
def test_fuzz_lp_pool(call):
    check(call)


@fuzzes("global_avg_pool")
@settings(max_examples=70)
@given(call=global_pool_calls("global_avg_pool"))
def test_fuzz_global_avg_pool(call):
    check(call)


@fuzzes("global_max_pool")
@settings(max_examples=70)
@given(call=global_pool_calls("global_max_pool"))
@example(call=Call("global_max_pool", (np.ones((1, 0, 3)),), {}))
@example(call=Call("global_max_pool", (np.ones((2, 3, 2, 0)),), {"layout": "channels_first"}))
def test_fuzz_global_max_pool(call):
    check(call)


@fuzzes("max_unpool")
@settings(max_examples=90)
@given(call=max_unpool_calls())
@example(call=Call("max_unpool", (F64, [[[0, 1]] * 3], (3,)), {}))
def test_fuzz_max_unpool(call):
    check(call)
