"""Every bad call of the conv family and of pooling raises ValueError/TypeError at trace time,
worded alike.

One table of bad calls (`CASES`, one id per case) for `conv`, `conv_transpose`,
`conv_input_grad`, `conv_weight_grad`, `conv_general_dilated` and the pools (`max_pool`,
`avg_pool`, `lp_pool`, `global_max_pool`, `global_avg_pool`, `max_unpool`). Each case pins the
exception type and a regex that must be found in the message: the function name, the argument
name in backticks and, where the message echoes it, the bad value, as in
``conv: `groups` (=4) must divide the input channels (=6)``.

- `test_bad_call_raises`: the call, eagerly.
- `test_raised_at_trace_time`: the same call inside `jax.jit` and under `jax.eval_shape` raises
  the same exception with the same message (nothing reaches XLA).
- `test_messages_read_well`: each message is one line, starts with "<fn>: `", echoes no
  placeholder "(=None)" and no numpy/tracer reprs, and has balanced brackets.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import (
    adaptive_avg_pool,
    adaptive_max_pool,
    avg_pool,
    conv,
    conv_general_dilated,
    conv_general_dilated_local,
    conv_input_grad,
    conv_local,
    conv_transpose,
    conv_weight_grad,
    fold,
    fractional_max_pool,
    global_avg_pool,
    global_max_pool,
    interpolate,
    linear,
    lp_pool,
    max_pool,
    max_unpool,
    min_pool,
    mse_loss,
    pixel_shuffle,
    pixel_unshuffle,
    relu,
    softmax_cross_entropy,
    unfold,
)
from tests.support import registry

F32 = jnp.float32


def ones(shape, dtype=F32):
    return jnp.ones(shape, dtype)


# channels_last 2-D: x (N, H, W, C_in), w (kh, kw, C_in // groups, C_out), conv output 3x3.
X = ones((2, 5, 5, 4))
W = ones((3, 3, 4, 6))
G = ones((2, 3, 3, 6))  # dL/dy of conv(X, W), also the `y` of conv_transpose(G, W) -> (2,5,5,4)
B = ones((6,))
# channels_last 1-D.
X1 = ones((2, 7, 3))
W1 = ones((3, 3, 6))
# channels_first 2-D (lax's default NCHW / OIHW for conv_general_dilated).
XC = ones((2, 4, 5, 5))
WC = ones((6, 4, 3, 3))
# pooling: channels_last 2-D, 3 channels.
XP = ones((2, 5, 5, 3))
IP = jnp.zeros(XP.shape, jnp.int32)  # max_unpool's indices


class Case(NamedTuple):
    id: str
    fn: Any
    args: tuple
    kwargs: dict
    exc: type
    match: str


def say(fn: str, arg: str, *value, rest: str = "") -> str:
    """Regex for "fn: `arg` (=value!r)" (value optional) followed by the regex `rest`."""
    head = f"{fn}: `{arg}`" + (f" (={value[0]!r})" if value else "")
    return re.escape(head) + rest


def case(id, fn, args, kwargs, exc, match) -> Case:
    return Case(id, fn, tuple(args), dict(kwargs), exc, match)


V, T, NI = ValueError, TypeError, NotImplementedError

# The table is aligned by hand for reading; ruff format would put every argument on its own line.
# fmt: off

# ------------------------------------------------------------------------------------------- conv
_c = "conv"
CONV = [
    # channels
    case("conv-channels-mismatch", conv, (X, ones((3, 3, 3, 6))), {}, V,
         say(_c, "w.shape", rest=r".*3 input channels per group.*4 channels")),
    case("conv-channels-mismatch-echoes-w-shape", conv, (X, ones((3, 3, 3, 6))), {}, V,
         say(_c, "w.shape", (3, 3, 3, 6))),
    case("conv-channels-mismatch-channels-first", conv, (XC, ones((6, 3, 3, 3))),
         {"layout": "channels_first"}, V, say(_c, "w.shape", rest=r".*4 channels")),
    # groups
    case("conv-groups-not-dividing-in", conv, (ones((2, 5, 5, 6)), ones((3, 3, 1, 8))),
         {"groups": 4}, V, say(_c, "groups", 4, rest=r" must divide the input channels \(=6\)")),
    case("conv-groups-not-dividing-out", conv, (ones((2, 5, 5, 6)), ones((3, 3, 2, 4))),
         {"groups": 3}, V, say(_c, "groups", 3, rest=r" must divide the output channels \(=4\)")),
    case("conv-groups-zero", conv, (X, W), {"groups": 0}, V, say(_c, "groups", 0)),
    case("conv-groups-negative", conv, (X, W), {"groups": -2}, V, say(_c, "groups", -2)),
    case("conv-groups-float", conv, (X, W), {"groups": 2.0}, T, say(_c, "groups", 2.0)),
    case("conv-groups-bool", conv, (X, W), {"groups": True}, T, say(_c, "groups", True)),
    case("conv-groups-str", conv, (X, W), {"groups": "1"}, T, say(_c, "groups", "1")),
    # kernel larger than the padded input
    case("conv-kernel-too-large", conv, (X, ones((7, 7, 4, 6))), {}, V,
         r"^conv: `\w+(\.shape)?` .*larger than the padded input"),
    case("conv-kernel-too-large-names-w", conv, (X, ones((7, 7, 4, 6))), {}, V,
         say(_c, "w.shape", (7, 7, 4, 6))),
    case("conv-kernel-too-large-by-dilation", conv, (X, W), {"dilation": 3}, V,
         r"^conv: `w\.shape` \(=\(3, 3, 4, 6\)\).*\(dilated: \(7, 7\)\).*larger than the padded"),
    case("conv-kernel-too-large-1d", conv, (ones((2, 2, 3)), W1), {}, V,
         r"^conv: .*larger than the padded input"),
    case("conv-kernel-zero-size", conv, (X, ones((0, 3, 4, 6))), {}, V,
         say(_c, "w.shape", (0, 3, 4, 6))),
    # stride / dilation
    case("conv-stride-zero", conv, (X, W), {"stride": 0}, V, say(_c, "stride", 0)),
    case("conv-stride-negative-one-dim", conv, (X, W), {"stride": (1, -1)}, V,
         say(_c, "stride", (1, -1))),
    case("conv-stride-wrong-length", conv, (X, W), {"stride": (1, 1, 1)}, V,
         say(_c, "stride", (1, 1, 1), rest=r" must have one entry per spatial dim \(2\)")),
    case("conv-stride-wrong-length-1d", conv, (X1, W1), {"stride": (1, 1)}, V,
         say(_c, "stride", (1, 1))),
    case("conv-stride-float", conv, (X, W), {"stride": 1.5}, T, say(_c, "stride", 1.5)),
    case("conv-stride-str", conv, (X, W), {"stride": "2"}, T, say(_c, "stride", "2")),
    case("conv-stride-numpy-int", conv, (X, W), {"stride": np.int64(0)}, V, say(_c, "stride")),
    case("conv-dilation-zero", conv, (X, W), {"dilation": 0}, V, say(_c, "dilation", 0)),
    case("conv-dilation-negative-one-dim", conv, (X, W), {"dilation": (1, -2)}, V,
         say(_c, "dilation", (1, -2))),
    # padding
    case("conv-padding-unknown-string", conv, (X, W), {"padding": "HALF"}, V,
         say(_c, "padding", "HALF")),
    case("conv-padding-wrong-length", conv, (X, W), {"padding": (1, 1, 1)}, V,
         say(_c, "padding", (1, 1, 1))),
    case("conv-padding-pair-wrong-length", conv, (X, W), {"padding": ((1, 1, 1), (1, 1))}, V,
         say(_c, "padding", ((1, 1, 1), (1, 1)), rest=r" pairs must be \(lo, hi\)")),
    case("conv-padding-negative", conv, (X, W), {"padding": -1}, V,
         say(_c, "padding", -1, rest=" must be >= 0")),
    case("conv-padding-negative-in-pair", conv, (X, W), {"padding": ((0, -1), (0, 0))}, V,
         say(_c, "padding", ((0, -1), (0, 0)), rest=" must be >= 0")),
    case("conv-padding-float", conv, (X, W), {"padding": 1.0}, T, say(_c, "padding", 1.0)),
    case("conv-padding-none", conv, (X, W), {"padding": None}, T, say(_c, "padding", None)),
    # padding_mode
    case("conv-padding-mode-unknown", conv, (X, W), {"padding": 1, "padding_mode": "mirror"},
         V, say(_c, "padding_mode", "mirror")),
    case("conv-padding-mode-none", conv, (X, W), {"padding": 1, "padding_mode": None}, V,
         say(_c, "padding_mode", None)),
    case("conv-reflect-padding-equals-size", conv, (X1, W1),
         {"padding": 7, "padding_mode": "reflect"}, V,
         say(_c, "padding", ((7, 7),), rest=r" must be < the input size \(7,\)")),
    case("conv-reflect-padding-exceeds-size", conv, (X, W),
         {"padding": 6, "padding_mode": "reflect"}, V, say(_c, "padding", ((6, 6), (6, 6)))),
    case("conv-reflect-same-on-size-1", conv, (ones((2, 1, 4)), ones((3, 4, 6))),
         {"padding": "SAME", "padding_mode": "reflect"}, V, say(_c, "padding", ((1, 1),))),
    case("conv-reflect-channels-first", conv, (ones((2, 4, 3, 3)), ones((6, 4, 3, 3))),
         {"padding": 3, "padding_mode": "reflect", "layout": "channels_first"}, V,
         say(_c, "padding", ((3, 3), (3, 3)), rest=r" must be < the input size \(3, 3\)")),
    case("conv-circular-padding-exceeds-size", conv, (X1, W1),
         {"padding": 8, "padding_mode": "circular"}, V,
         say(_c, "padding", ((8, 8),), rest=r" must be <= the input size \(7,\)")),
    case("conv-circular-padding-pair-exceeds-size", conv, (ones((2, 3, 4)), ones((3, 4, 6))),
         {"padding": ((0, 4),), "padding_mode": "circular"}, V, say(_c, "padding", ((0, 4),))),
    # (test_fuzz) replicate on an empty dim was an IndexError from jnp.take
    case("conv-replicate-empty-dim", conv, (ones((2, 0, 4)), ones((1, 4, 6))),
         {"padding": 1, "padding_mode": "replicate"}, V,
         say(_c, "padding_mode", "replicate", rest=" has no cell to replicate")),
    # rank
    case("conv-x-rank-too-low", conv, (ones((5, 4)), ones((3, 4, 6))), {}, V,
         say(_c, "x.shape", (5, 4))),
    case("conv-x-scalar", conv, (jnp.float32(1.0), W), {}, V, say(_c, "x.shape", ())),
    case("conv-rank-mixed-w-lower", conv, (X, W1), {}, V,
         say(_c, "w.shape", (3, 3, 6), rest=" must have rank 4")),
    case("conv-rank-mixed-w-higher", conv, (X1, W), {}, V,
         say(_c, "w.shape", (3, 3, 4, 6), rest=" must have rank 3")),
    # bias
    case("conv-bias-wrong-length", conv, (X, W, ones((4,))), {}, V,
         say(_c, "bias.shape", (4,), rest=r" must be \(6,\)")),
    case("conv-bias-2d", conv, (X, W, ones((1, 6))), {}, V, say(_c, "bias.shape", (1, 6))),
    case("conv-bias-scalar-array", conv, (X, W, jnp.float32(1.0)), {}, V,
         say(_c, "bias.shape", ())),
    case("conv-bias-python-float", conv, (X, W, 1.0), {}, T, say(_c, "bias")),
    # dtypes
    case("conv-x-int32", conv, (X.astype(jnp.int32), W), {}, T,
         say(_c, "x.dtype", "int32", rest=" must be a floating or complex dtype")),
    case("conv-x-int64-numpy", conv, (np.ones((2, 5, 5, 4), np.int64), W), {}, T,
         say(_c, "x.dtype", "int64")),
    case("conv-w-bool", conv, (X, W.astype(bool)), {}, T, say(_c, "w.dtype", "bool")),
    case("conv-w-complex", conv, (X, W.astype(jnp.complex64)), {}, T,
         say(_c, "w.dtype", "complex64")),
    case("conv-bias-int", conv, (X, W, B.astype(jnp.int32)), {}, T,
         say(_c, "bias.dtype", "int32")),
    case("conv-mixed-float-dtypes", conv, (X, W.astype(jnp.float64)), {}, T,
         r"^conv: `w\.dtype` \(='float64'\) must equal `x\.dtype` \(='float32'\)"),
    case("conv-x-none", conv, (None, W), {}, T, say(_c, "x")),
    case("conv-x-list", conv, (np.ones((2, 5, 5, 4)).tolist(), W), {}, T, r"^conv: `x`"),
    # layout / backward / flip
    case("conv-layout-unknown", conv, (X, W), {"layout": "NHWC"}, V,
         say(_c, "layout", "NHWC", rest=r" must be one of \['channels_last', 'channels_first'\]")),
    case("conv-layout-none", conv, (X, W), {"layout": None}, V, say(_c, "layout", None)),
    case("conv-backward-unknown", conv, (X, W), {"backward": "fft"}, V,
         say(_c, "backward", "fft")),
    case("conv-backward-none", conv, (X, W), {"backward": None}, V, say(_c, "backward", None)),
    case("conv-flip-int", conv, (X, W), {"flip": 1}, T, say(_c, "flip", 1)),
    case("conv-flip-str", conv, (X, W), {"flip": "yes"}, T, say(_c, "flip", "yes")),
    case("conv-flip-none", conv, (X, W), {"flip": None}, T, say(_c, "flip", None)),
    # lax settings passed through
    case("conv-precision-unknown", conv, (X, W), {"precision": "bogus"}, V,
         say(_c, "precision", "bogus")),
    case("conv-preferred-element-type-unknown", conv, (X, W),
         {"preferred_element_type": "notadtype"}, T, say(_c, "preferred_element_type")),
    case("conv-preferred-element-type-int", conv, (X, W),
         {"preferred_element_type": jnp.int32}, T, say(_c, "preferred_element_type")),
    # (test_fuzz) narrower than the operands: lax refuses it; accepted (or a lax error) before
    case("conv-preferred-element-type-narrower", conv, (X, W),
         {"preferred_element_type": jnp.float16}, T,
         say(_c, "preferred_element_type", "float16", rest=" must not be narrower")),
    # (test_fuzz) beyond int64: an OverflowError/TypeError from lax or MLIR before
    case("conv-stride-beyond-int64", conv, (X, W), {"stride": 2**63}, V,
         say(_c, "stride", 2**63, rest=" must fit in int64")),
]

# ---------------------------------------------------------------------------------- conv_transpose
_t = "conv_transpose"
CT = [
    case("ct-channels-mismatch", conv_transpose, (ones((2, 3, 3, 4)), W), {}, V,
         say(_t, "y.shape", (2, 3, 3, 4), rest=r" has 4 channels.*6")),
    case("ct-groups-not-dividing", conv_transpose, (G, W), {"groups": 4}, V,
         say(_t, "groups", 4)),
    case("ct-groups-zero", conv_transpose, (G, W), {"groups": 0}, V, say(_t, "groups", 0)),
    case("ct-groups-float", conv_transpose, (G, W), {"groups": 1.0}, T, say(_t, "groups", 1.0)),
    case("ct-output-padding-equals-stride", conv_transpose, (G, W),
         {"stride": 2, "output_padding": 2}, V,
         say(_t, "output_padding", 2, rest=r" must be smaller than max\(stride, dilation\)")),
    case("ct-output-padding-exceeds-stride-one-dim", conv_transpose, (G, W),
         {"stride": 2, "output_padding": (0, 2)}, V, say(_t, "output_padding", (0, 2))),
    case("ct-output-padding-with-causal", conv_transpose, (G, W),
         {"padding": "CAUSAL", "stride": 2, "output_padding": 1}, V,
         r"conv_transpose: `output_padding` \(=1\) must be 0 with padding='CAUSAL'"),
    case("ct-output-padding-with-stride-1", conv_transpose, (G, W), {"output_padding": 1}, V,
         say(_t, "output_padding", 1)),
    case("ct-output-padding-equals-dilation", conv_transpose, (G, W),
         {"dilation": 2, "output_padding": 2}, V, say(_t, "output_padding", 2)),
    case("ct-output-padding-negative", conv_transpose, (G, W),
         {"stride": 2, "output_padding": -1}, V, say(_t, "output_padding", -1)),
    case("ct-output-padding-wrong-length", conv_transpose, (G, W),
         {"stride": 2, "output_padding": (1, 1, 1)}, V, say(_t, "output_padding", (1, 1, 1))),
    case("ct-output-padding-float", conv_transpose, (G, W),
         {"stride": 2, "output_padding": 0.5}, T, say(_t, "output_padding", 0.5)),
    case("ct-output-size-too-large", conv_transpose, (G, W),
         {"stride": 2, "output_size": (9, 9)}, V,
         say(_t, "output_size", (9, 9), rest=r" must lie between \(7, 7\) and \(8, 8\)")),
    case("ct-output-size-too-small", conv_transpose, (G, W),
         {"stride": 2, "output_size": (6, 7)}, V, say(_t, "output_size", (6, 7))),
    case("ct-output-size-with-output-padding", conv_transpose, (G, W),
         {"stride": 2, "output_size": (7, 7), "output_padding": 1}, V,
         say(_t, "output_padding", 1, rest=" must be 0 when `output_size` is given")),
    case("ct-output-size-wrong-length", conv_transpose, (G, W),
         {"stride": 2, "output_size": (7,)}, V, say(_t, "output_size", (7,))),
    case("ct-output-size-int", conv_transpose, (G, W), {"stride": 2, "output_size": 7}, V,
         say(_t, "output_size", 7)),
    case("ct-output-size-float-entry", conv_transpose, (G, W),
         {"stride": 2, "output_size": (7.5, 7)}, T, say(_t, "output_size")),
    case("ct-same-padding-with-output-padding", conv_transpose, (G, W),
         {"stride": 2, "padding": "SAME", "output_padding": 1}, V,
         say(_t, "output_padding", 1, rest=".*SAME")),
    case("ct-padding-too-large", conv_transpose, (G, W), {"padding": 3}, V,
         say(_t, "padding", 3, rest=" is too large")),
    case("ct-padding-full-too-large", conv_transpose, (ones((2, 1, 1, 6)), W),
         {"padding": "FULL"}, V, say(_t, "padding", "FULL")),
    case("ct-padding-negative", conv_transpose, (G, W), {"padding": -1}, V,
         say(_t, "padding", -1, rest=" must be >= 0")),
    case("ct-padding-unknown-string", conv_transpose, (G, W), {"padding": "HALF"}, V,
         say(_t, "padding", "HALF")),
    case("ct-padding-pair-wrong-length", conv_transpose, (G, W),
         {"padding": ((1, 1, 1), (0, 0))}, V, say(_t, "padding", ((1, 1, 1), (0, 0)))),
    case("ct-stride-zero", conv_transpose, (G, W), {"stride": 0}, V, say(_t, "stride", 0)),
    case("ct-stride-wrong-length", conv_transpose, (G, W), {"stride": (1, 1, 1)}, V,
         say(_t, "stride", (1, 1, 1))),
    case("ct-dilation-zero", conv_transpose, (G, W), {"dilation": 0}, V,
         say(_t, "dilation", 0)),
    case("ct-rank-mixed", conv_transpose, (ones((2, 3, 6)), W), {}, V,
         say(_t, "w.shape", (3, 3, 4, 6), rest=" must have rank 3")),
    case("ct-y-rank-too-low", conv_transpose, (ones((3, 6)), ones((3, 4, 6))), {}, V,
         say(_t, "y.shape", (3, 6))),
    case("ct-bias-wrong-length", conv_transpose, (G, W, ones((6,))), {}, V,
         say(_t, "bias.shape", (6,), rest=r" must be \(4,\)")),
    case("ct-y-int32", conv_transpose, (G.astype(jnp.int32), W), {}, T,
         say(_t, "y.dtype", "int32")),
    case("ct-w-int8", conv_transpose, (G, W.astype(jnp.int8)), {}, T,
         say(_t, "w.dtype", "int8")),
    case("ct-y-bool", conv_transpose, (G.astype(bool), W), {}, T, say(_t, "y.dtype", "bool")),
    case("ct-bias-int", conv_transpose, (G, W, ones((4,), jnp.int32)), {}, T,
         say(_t, "bias.dtype", "int32")),
    case("ct-layout-unknown", conv_transpose, (G, W), {"layout": "NCHW"}, V,
         say(_t, "layout", "NCHW")),
    case("ct-backward-unknown", conv_transpose, (G, W), {"backward": "fft"}, V,
         say(_t, "backward", "fft")),
    case("ct-flip-int", conv_transpose, (G, W), {"flip": 0}, T, say(_t, "flip", 0)),
    case("ct-preferred-element-type-narrower", conv_transpose, (G, W),
         {"preferred_element_type": jnp.float16}, T, say(_t, "preferred_element_type", "float16")),
]

# --------------------------------------------------------------------------------- conv_input_grad
_i = "conv_input_grad"
IG = [
    case("ig-g-wrong-shape", conv_input_grad, (X.shape, W, ones((2, 4, 4, 6))), {}, V,
         say(_i, "g.shape", (2, 4, 4, 6), rest=r" must be the conv output shape \(2, 3, 3, 6\)")),
    case("ig-g-wrong-channels", conv_input_grad, (X.shape, W, ones((2, 3, 3, 5))), {}, V,
         say(_i, "g.shape", (2, 3, 3, 5))),
    case("ig-g-wrong-rank", conv_input_grad, (X.shape, W, ones((2, 9, 6))), {}, V,
         say(_i, "g.shape", (2, 9, 6))),
    case("ig-g-wrong-shape-for-stride", conv_input_grad, (X.shape, W, G), {"stride": 2}, V,
         say(_i, "g.shape", (2, 3, 3, 6), rest=r".*\(2, 2, 2, 6\)")),
    case("ig-g-int32", conv_input_grad, (X.shape, W, G.astype(jnp.int32)), {}, T,
         say(_i, "g.dtype", "int32")),
    case("ig-g-complex", conv_input_grad, (X.shape, W, G.astype(jnp.complex64)), {}, T,
         say(_i, "g.dtype", "complex64")),
    case("ig-w-int32", conv_input_grad, (X.shape, W.astype(jnp.int32), G), {}, T,
         say(_i, "w.dtype", "int32")),
    case("ig-g-none", conv_input_grad, (X.shape, W, None), {}, T, say(_i, "g")),
    case("ig-input-shape-str", conv_input_grad, ("abc", W, G), {}, T,
         say(_i, "input_shape", "abc")),
    case("ig-input-shape-int", conv_input_grad, (5, W, G), {}, T, say(_i, "input_shape", 5)),
    case("ig-input-shape-float-entry", conv_input_grad, ((2, 5.0, 5, 4), W, G), {}, T,
         say(_i, "input_shape", (2, 5.0, 5, 4))),
    case("ig-input-shape-rank-too-low", conv_input_grad, ((2, 4), W, G), {}, V,
         r"^conv_input_grad: `\w+(\.shape)?` \(=\(2, 4\)\)"),
    case("ig-input-shape-rank-too-low-names-input-shape", conv_input_grad, ((2, 4), W, G), {}, V,
         say(_i, "input_shape", (2, 4))),
    case("ig-rank-mixed", conv_input_grad, ((2, 5, 4), W, ones((2, 3, 6))), {}, V,
         say(_i, "w.shape", (3, 3, 4, 6), rest=" must have rank 3")),
    case("ig-channels-mismatch", conv_input_grad, ((2, 5, 5, 3), W, G), {}, V,
         say(_i, "w.shape", rest=r".*4 input channels per group")),
    case("ig-kernel-too-large", conv_input_grad, ((2, 2, 2, 4), W, ones((2, 1, 1, 6))), {}, V,
         r"^conv_input_grad: .*larger than the padded input"),
    case("ig-groups-not-dividing", conv_input_grad, (X.shape, W, G), {"groups": 4}, V,
         say(_i, "groups", 4)),
    case("ig-stride-zero", conv_input_grad, (X.shape, W, G), {"stride": 0}, V,
         say(_i, "stride", 0)),
    case("ig-dilation-zero", conv_input_grad, (X.shape, W, G), {"dilation": 0}, V,
         say(_i, "dilation", 0)),
    case("ig-padding-negative", conv_input_grad, (X.shape, W, G), {"padding": -1}, V,
         say(_i, "padding", -1)),
    case("ig-padding-unknown-string", conv_input_grad, (X.shape, W, G), {"padding": "HALF"}, V,
         say(_i, "padding", "HALF")),
    case("ig-layout-unknown", conv_input_grad, (X.shape, W, G), {"layout": "NHWC"}, V,
         say(_i, "layout", "NHWC")),
    case("ig-backward-unknown", conv_input_grad, (X.shape, W, G), {"backward": "nope"}, V,
         say(_i, "backward", "nope")),
    case("ig-flip-str", conv_input_grad, (X.shape, W, G), {"flip": "no"}, T,
         say(_i, "flip", "no")),
    case("ig-preferred-element-type-narrower", conv_input_grad, (X.shape, W, G),
         {"preferred_element_type": jnp.bfloat16}, T, say(_i, "preferred_element_type")),
]

# -------------------------------------------------------------------------------- conv_weight_grad
_w = "conv_weight_grad"
WG = [
    case("wg-g-wrong-shape", conv_weight_grad, (X, W.shape, ones((2, 3, 3, 5))), {}, V,
         say(_w, "g.shape", (2, 3, 3, 5), rest=r" must be the conv output shape \(2, 3, 3, 6\)")),
    case("wg-g-wrong-shape-for-padding", conv_weight_grad, (X, W.shape, G), {"padding": 1}, V,
         say(_w, "g.shape", (2, 3, 3, 6), rest=r".*\(2, 5, 5, 6\)")),
    case("wg-x-int32", conv_weight_grad, (X.astype(jnp.int32), W.shape, G), {}, T,
         say(_w, "x.dtype", "int32")),
    case("wg-g-int32", conv_weight_grad, (X, W.shape, G.astype(jnp.int32)), {}, T,
         say(_w, "g.dtype", "int32")),
    case("wg-weight-shape-none", conv_weight_grad, (X, None, G), {}, T,
         say(_w, "weight_shape", None)),
    case("wg-weight-shape-float-entry", conv_weight_grad, (X, (3, 3, 4.0, 6), G), {}, T,
         say(_w, "weight_shape", (3, 3, 4.0, 6))),
    case("wg-rank-mixed", conv_weight_grad, (X, (3, 3, 4), G), {}, V,
         r"^conv_weight_grad: `\w+(\.shape)?` \(=\(3, 3, 4\)\) must have rank 4"),
    case("wg-rank-mixed-names-weight-shape", conv_weight_grad, (X, (3, 3, 4), G), {}, V,
         say(_w, "weight_shape", (3, 3, 4))),
    case("wg-x-rank-too-low", conv_weight_grad, (ones((5, 4)), (3, 4, 6), ones((3, 6))), {}, V,
         say(_w, "x.shape", (5, 4))),
    case("wg-channels-mismatch", conv_weight_grad, (X, (3, 3, 3, 6), G), {}, V,
         say(_w, "weight_shape", (3, 3, 3, 6), rest=r".*3 input channels per group")),
    case("wg-kernel-too-large", conv_weight_grad, (ones((2, 2, 2, 4)), W.shape, ones((2, 1, 1, 6))),
         {}, V, r"^conv_weight_grad: .*larger than the padded input"),
    case("wg-groups-not-dividing", conv_weight_grad, (X, W.shape, G), {"groups": 4}, V,
         say(_w, "groups", 4)),
    case("wg-stride-negative", conv_weight_grad, (X, W.shape, G), {"stride": -1}, V,
         say(_w, "stride", -1)),
    case("wg-padding-pair-wrong-length", conv_weight_grad, (X, W.shape, G),
         {"padding": ((1,), (1, 1))}, V, say(_w, "padding", ((1,), (1, 1)))),
    case("wg-layout-unknown", conv_weight_grad, (X, W.shape, G), {"layout": 1}, V,
         say(_w, "layout", 1)),
    case("wg-backward-unknown", conv_weight_grad, (X, W.shape, G), {"backward": "fft"}, V,
         say(_w, "backward", "fft")),
    case("wg-flip-int", conv_weight_grad, (X, W.shape, G), {"flip": 1}, T, say(_w, "flip", 1)),
    case("wg-preferred-element-type-narrower", conv_weight_grad, (X, W.shape, G),
         {"preferred_element_type": jnp.float16}, T, say(_w, "preferred_element_type")),
]

# ---------------------------------------------------------------------------- conv_general_dilated
_g = "conv_general_dilated"
S11 = (1, 1)
CGD = [
    case("cgd-lhs-int32", conv_general_dilated, (XC.astype(jnp.int32), WC, S11, "VALID"), {}, T,
         say(_g, "lhs.dtype", "int32")),
    case("cgd-rhs-bool", conv_general_dilated, (XC, WC.astype(bool), S11, "VALID"), {}, T,
         say(_g, "rhs.dtype", "bool")),
    case("cgd-mixed-float-dtypes", conv_general_dilated,
         (XC, WC.astype(jnp.float64), S11, "VALID"), {}, T, r"^conv_general_dilated: .*float64"),
    case("cgd-rank-mixed", conv_general_dilated, (XC, ones((6, 4, 3)), (1,), "VALID"), {}, V,
         say(_g, "rhs.shape", (6, 4, 3), rest=" must have the rank of lhs")),
    case("cgd-rank-too-low", conv_general_dilated, (ones((4,)), ones((4,)), (), "VALID"), {},
         V, say(_g, "rhs.shape", (4,))),
    case("cgd-window-strides-zero", conv_general_dilated, (XC, WC, (1, 0), "VALID"), {}, V,
         say(_g, "window_strides", (1, 0))),
    case("cgd-window-strides-negative", conv_general_dilated, (XC, WC, (-1, 1), "VALID"), {}, V,
         say(_g, "window_strides", (-1, 1))),
    case("cgd-window-strides-wrong-length", conv_general_dilated, (XC, WC, (1,), "VALID"), {}, V,
         say(_g, "window_strides", (1,))),
    case("cgd-padding-unknown-string", conv_general_dilated, (XC, WC, S11, "FULL"), {}, V,
         say(_g, "padding", "FULL")),
    case("cgd-padding-pair-wrong-length", conv_general_dilated,
         (XC, WC, S11, ((1, 1, 1), (1, 1))), {}, V, say(_g, "padding", ((1, 1, 1), (1, 1)))),
    case("cgd-padding-wrong-count", conv_general_dilated, (XC, WC, S11, ((1, 1),)), {}, V,
         say(_g, "padding", ((1, 1),), rest=r" must be a string or 2 \(lo, hi\) pairs")),
    case("cgd-padding-int", conv_general_dilated, (XC, WC, S11, 1), {}, V,
         say(_g, "padding", 1)),
    case("cgd-padding-float-entry", conv_general_dilated, (XC, WC, S11, ((1.0, 1), (1, 1))),
         {}, T, say(_g, "padding", 1.0)),
    case("cgd-rhs-dilation-zero", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"rhs_dilation": (0, 1)}, V, say(_g, "rhs_dilation", (0, 1))),
    case("cgd-lhs-dilation-zero", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"lhs_dilation": (1, 0)}, V, say(_g, "lhs_dilation", (1, 0))),
    case("cgd-channels-mismatch", conv_general_dilated, (XC, ones((6, 3, 3, 3)), S11, "VALID"),
         {}, V, say(_g, "rhs.shape", (6, 3, 3, 3), rest=r".*lhs has 4 features")),
    case("cgd-feature-group-count-not-dividing", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"feature_group_count": 2}, V, say(_g, "rhs.shape", rest=r".*`feature_group_count` is 2")),
    case("cgd-feature-group-count-zero", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"feature_group_count": 0}, V, say(_g, "feature_group_count")),
    case("cgd-feature-group-count-zero-echo", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"feature_group_count": 0}, V, say(_g, "feature_group_count", 0)),
    case("cgd-feature-group-count-bool", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"feature_group_count": True}, T, say(_g, "feature_group_count", True)),
    case("cgd-batch-group-count-zero", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"batch_group_count": 0}, V, say(_g, "batch_group_count", 0)),
    case("cgd-both-group-counts", conv_general_dilated,
         (ones((4, 4, 5, 5)), ones((4, 2, 3, 3)), S11, "VALID"),
         {"feature_group_count": 2, "batch_group_count": 2}, V, say(_g, "batch_group_count", 2)),
    case("cgd-batch-group-count-not-dividing-batch", conv_general_dilated,
         (ones((3, 4, 5, 5)), WC, S11, "VALID"), {"batch_group_count": 2}, V,
         say(_g, "batch_group_count", 2, rest=r" must divide the lhs batch \(=3\)")),
    case("cgd-out-features-not-divisible", conv_general_dilated,
         (XC, ones((5, 2, 3, 3)), S11, "VALID"), {"feature_group_count": 2}, V,
         say(_g, "rhs.shape", (5, 2, 3, 3))),
    case("cgd-dimension-numbers-wrong-length", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"dimension_numbers": ("NCHW", "OIHW", "NCHWX")}, V, say(_g, "dimension_numbers")),
    case("cgd-dimension-numbers-bad-chars", conv_general_dilated, (XC, WC, S11, "VALID"),
         {"dimension_numbers": ("NCHQ", "OIHW", "NCHW")}, V, say(_g, "dimension_numbers")),
    # (test_fuzz) an empty window was "Need at least one array to stack" or a silent output
    case("cgd-rhs-empty-window", conv_general_dilated, (XC, ones((6, 4, 0, 3)), S11, "VALID"),
         {}, V, say(_g, "rhs.shape", (6, 4, 0, 3), rest=" must have at least one cell")),
    case("cgd-preferred-element-type-narrower", conv_general_dilated,
         (XC.astype(jnp.float64), WC.astype(jnp.float64), S11, "VALID"),
         {"preferred_element_type": jnp.float32}, T, say(_g, "preferred_element_type", "float32")),
]

# ---------------------------------------------------------------------------------------- pooling
POOL = [
    case("max-pool-window-zero", max_pool, (XP, (0, 2)), {}, V,
         r"max_pool: `window` \(=\(0, 2\)\) must be >= 1"),
    case("max-pool-stride-zero", max_pool, (XP, 2), {"stride": 0}, V,
         r"max_pool: `stride` \(=0\) must be >= 1"),
    case("max-pool-window-too-large", max_pool, (XP, 6), {}, V,
         r"max_pool: `window` \(=\(6, 6\)\).*larger than"),
    case("max-pool-window-too-large-by-dilation", max_pool, (XP, 3), {"dilation": 3}, V,
         r"max_pool: `window` \(=\(7, 7\)\)"),
    case("max-pool-padding-over-half-the-window", max_pool, (XP, 2), {"padding": 2}, V,
         r"max_pool: `padding` \(=2\) must be at most half the window"),
    case("avg-pool-padding-pair-over-half-the-window", avg_pool, (XP, 3),
         {"padding": ((0, 2), (0, 0))}, V, r"avg_pool: `padding`"),
    case("max-pool-ties-unknown", max_pool, (XP, 2), {"ties": "random"}, V,
         r"max_pool: `ties` \(='random'\) must be one of \['first', 'last', 'split'\]"),
    case("max-pool-layout-unknown", max_pool, (XP, 2), {"layout": "NHWC"}, V,
         r"max_pool: `layout` \(='NHWC'\)"),
    case("max-pool-padding-unknown-string", max_pool, (XP, 2), {"padding": "FOO"}, V,
         r"max_pool: `padding` \(='FOO'\)"),
    case("max-pool-x-complex", max_pool, (XP.astype(jnp.complex64), 2), {}, T,
         r"max_pool: `x.dtype` \(='complex64'\) must be a real floating, integer or bool"),
    case("max-pool-padding-causal", max_pool, (XP, 2), {"padding": "CAUSAL"}, V,
         r"max_pool: `padding` \(='CAUSAL'\) is a convolution padding"),
    case("min-pool-ties-unknown", min_pool, (XP, 2), {"ties": "middle"}, V,
         r"min_pool: `ties` \(='middle'\)"),
    case("min-pool-x-complex", min_pool, (XP.astype(jnp.complex64), 2), {}, T,
         r"min_pool: `x.dtype` \(='complex64'\) must be a real"),
    case("min-pool-window-too-large", min_pool, (XP, 6), {}, V,
         r"min_pool: `window` \(=\(6, 6\)\)"),
    case("max-pool-ceil-mode-int", max_pool, (XP, 2), {"ceil_mode": 1}, T,
         r"max_pool: `ceil_mode` \(=1\)"),
    case("max-pool-x-rank-too-low", max_pool, (XP[0, 0], 2), {}, V,
         r"max_pool: `x.shape` \(=\(5, 3\)\)"),
    case("avg-pool-divisor-override-zero", avg_pool, (XP, 2), {"divisor_override": 0}, V,
         r"avg_pool: `divisor_override` \(=0\) must not be 0"),
    case("avg-pool-count-include-pad-str", avg_pool, (XP, 2), {"count_include_pad": "yes"}, T,
         r"avg_pool: `count_include_pad`"),
    case("lp-pool-p-zero", lp_pool, (XP, 0, 2), {}, V,
         r"lp_pool: `p` \(=0\) must be a finite number > 0"),
    case("lp-pool-p-str", lp_pool, (XP, "2", 2), {}, T, r"lp_pool: `p` \(='2'\)"),
    case("global-max-pool-layout-unknown", global_max_pool, (XP,), {"layout": "x"}, V,
         r"global_max_pool: `layout`"),
    case("global-avg-pool-x-int8", global_avg_pool, (XP.astype(jnp.int8),), {}, T,
         r"global_avg_pool: `x.dtype`"),
    case("max-unpool-indices-float", max_unpool, (XP, XP, (10, 10)), {}, T,
         r"max_unpool: `indices.dtype` \(='float32'\) must be an integer dtype"),
    case("max-unpool-indices-wrong-shape", max_unpool,
         (XP, jnp.zeros((2, 5, 5), jnp.int32), (10, 10)), {}, V,
         r"max_unpool: `indices.shape` \(=\(2, 5, 5\)\) must be \(2, 5, 5, 3\)"),
    case("max-unpool-output-shape-wrong-length", max_unpool, (XP, IP, (10,)), {}, V,
         r"max_unpool: `output_shape` \(=\(10,\)\) must be the spatial shape"),
    case("max-unpool-output-shape-wrong-channels", max_unpool, (XP, IP, (2, 10, 10, 4)), {}, V,
         r"max_unpool: `output_shape` \(=\(2, 10, 10, 4\)\) must be \(2, 10, 10, 3\)"),
]

# ------------------------------------------------------------------------------------------ dense
XD, WD = ones((2, 3)), ones((3, 4))
DENSE = [
    case("relu-x-int32", relu, (jnp.arange(3, dtype=jnp.int32),), {}, T,
         r"relu: `x.dtype` \(='int32'\) must be a floating dtype"),
    case("linear-w-in-mismatch", linear, (XD, ones((4, 4))), {}, V,
         r"linear: `w.shape` \(=\(4, 4\)\) must be \(in, out\) with in = x.shape\[-1\] \(=3\)"),
    case("linear-w-rank-1", linear, (XD, ones((3,))), {}, V,
         r"linear: `w.shape` \(=\(3,\)\) must be"),
    case("linear-bias-wrong-shape", linear, (XD, WD, ones((3,))), {}, V,
         r"linear: `bias.shape` \(=\(3,\)\) must be \(4,\)"),
    case("linear-x-scalar", linear, (ones(()), WD), {}, V, r"linear: `x.shape` \(=\(\)\)"),
    case("linear-x-int32", linear, (XD.astype(jnp.int32), WD), {}, T,
         r"linear: `x.dtype` \(='int32'\)"),
    case("linear-w-float16", linear, (XD, WD.astype(jnp.float16)), {}, T,
         r"linear: `w.dtype` \(='float16'\)"),
    case("mse-loss-t-shape", mse_loss, (ones((3,)), ones((4,))), {}, V,
         r"mse_loss: `t.shape` \(=\(4,\)\) must be \(3,\)"),
    case("mse-loss-reduction-unknown", mse_loss, (ones((3,)), ones((3,)), "max"), {}, V,
         r"mse_loss: `reduction` \(='max'\) must be one of \['sum', 'mean'\]"),
    case("mse-loss-y-int", mse_loss, (jnp.arange(3), ones((3,))), {}, T, r"mse_loss: `y.dtype`"),
    case("xent-labels-float", softmax_cross_entropy, (ones((2, 3)), ones((2,))), {}, T,
         r"softmax_cross_entropy: `labels.dtype` \(='float.*'\) must be an integer dtype"),
    case("xent-labels-shape", softmax_cross_entropy, (ones((2, 3)), jnp.zeros(3, jnp.int32)),
         {}, V, r"softmax_cross_entropy: `labels.shape` \(=\(3,\)\) must be \(2,\)"),
    case("xent-logits-rank-1", softmax_cross_entropy, (ones((3,)), jnp.zeros(3, jnp.int32)),
         {}, V, r"softmax_cross_entropy: `logits.shape` \(=\(3,\)\) must be \(N, K\)"),
]


_i = "interpolate"
XI, XI1 = ones((1, 4, 4, 2)), ones((1, 4, 2))
RESAMPLING = [
    case("interp-size-and-scale", interpolate, (XI, 8), {"scale_factor": 2}, V,
         say(_i, "scale_factor", 2, rest=r".*when `size`")),
    case("interp-neither", interpolate, (XI,), {}, V,
         say(_i, "size", None, rest=r".*`scale_factor` must be given")),
    case("interp-recompute-with-size", interpolate, (XI, 8),
         {"mode": "linear", "recompute_scale_factor": True}, V,
         say(_i, "recompute_scale_factor", True, rest=r".*with `size`")),
    case("interp-corners-nearest", interpolate, (XI, 8), {"align_corners": False}, V,
         say(_i, "align_corners", False, rest=r".*nearest")),
    case("interp-corners-area", interpolate, (XI, 8), {"mode": "area", "align_corners": True},
         V, say(_i, "align_corners", True)),
    case("interp-bilinear-rank", interpolate, (XI1, 8), {"mode": "bilinear"}, V,
         say(_i, "mode", "bilinear", rest=r".*2 spatial dims")),
    case("interp-trilinear-rank", interpolate, (XI, 8), {"mode": "trilinear"}, V,
         say(_i, "mode", "trilinear", rest=r".*3 spatial dims")),
    case("interp-bad-mode", interpolate, (XI, 8), {"mode": "cubic"}, V,
         say(_i, "mode", "cubic", rest=r".*one of")),
    case("interp-antialias-nearest", interpolate, (XI, 8), {"antialias": True}, V,
         say(_i, "antialias", True, rest=r".*'nearest'")),
    case("interp-antialias-int", interpolate, (XI, 8), {"mode": "linear", "antialias": 1}, T,
         say(_i, "antialias", 1)),
    case("interp-size-zero", interpolate, (XI, 0), {}, V, say(_i, "size", 0, rest=r".*>= 1")),
    case("interp-size-dims", interpolate, (XI, (4, 4, 4)), {}, V,
         say(_i, "size", (4, 4, 4), rest=r".*one entry per spatial dim")),
    case("interp-size-float", interpolate, (XI, 2.5), {}, T, say(_i, "size", 2.5)),
    case("interp-scale-empty", interpolate, (XI,), {"scale_factor": 0.1}, V,
         say(_i, "scale_factor", 0.1, rest=r".*empty output")),
    case("interp-scale-negative", interpolate, (XI,), {"scale_factor": -2}, V,
         say(_i, "scale_factor", -2, rest=r".*> 0")),
    case("interp-scale-dims", interpolate, (XI,), {"scale_factor": (2, 2, 2)}, V,
         say(_i, "scale_factor", (2, 2, 2))),
    case("interp-scale-str", interpolate, (XI,), {"scale_factor": "2"}, T,
         say(_i, "scale_factor", "2")),
    case("interp-scale-bool", interpolate, (XI,), {"scale_factor": True}, T,
         say(_i, "scale_factor", True)),
    case("interp-int-x", interpolate, (ones((1, 4, 4, 2), jnp.int32), 8), {}, T,
         say(_i, "x.dtype", "int32")),
    case("interp-empty-spatial", interpolate, (ones((1, 0, 4, 2)), 8), {}, V,
         say(_i, "x.shape", (1, 0, 4, 2))),
]

SPATIAL = [
    case("pixel-shuffle-channels", pixel_shuffle, (ones((1, 2, 2, 6)), 2), {}, V,
         say("pixel_shuffle", "x.shape", (1, 2, 2, 6),
             rest=r" must have channels \(=6\) divisible by prod\(`upscale_factor`\) \(=4")),
    case("pixel-shuffle-factor-zero", pixel_shuffle, (ones((1, 2, 4)), 0), {}, V,
         say("pixel_shuffle", "upscale_factor", 0)),
    case("pixel-shuffle-factor-float", pixel_shuffle, (ones((1, 2, 4)), 2.0), {}, T,
         say("pixel_shuffle", "upscale_factor", 2.0)),
    case("pixel-unshuffle-indivisible", pixel_unshuffle, (ones((1, 5, 4, 1)), 2), {}, V,
         say("pixel_unshuffle", "x.shape", (1, 5, 4, 1),
             rest=r" must have spatial sizes \(5, 4\) divisible")),
    case("unfold-window-too-large", unfold, (ones((1, 4, 4, 2)), 5), {}, V,
         say("unfold", "window", (5, 5), rest=r" has a window")),
    case("unfold-stride-zero", unfold, (ones((1, 4, 4, 2)), 2), {"stride": 0}, V,
         say("unfold", "stride", 0)),
    case("unfold-padding-negative", unfold, (ones((1, 4, 4, 2)), 2), {"padding": -1}, V,
         say("unfold", "padding", -1)),
    case("fold-columns-not-divisible", fold, (ones((1, 10, 9)), (4, 4), 2),
         {"layout": "channels_first"}, V,
         say("fold", "cols.shape", (1, 10, 9), rest=r" must have C \* prod\(window\) columns")),
    case("fold-block-count", fold, (ones((1, 8, 8)), (4, 4), 2), {"layout": "channels_first"},
         V, say("fold", "cols.shape", (1, 8, 8), rest=r" must have 3 \* 3 = 9 blocks")),
    case("fold-rank", fold, (ones((1, 3, 8)), (4, 4), 2), {}, V,
         say("fold", "cols.shape", (1, 3, 8))),
    case("conv-local-grid", conv_local, (ones((1, 4, 4, 2)), ones((2, 2, 2, 2, 2, 5))), {}, V,
         say("conv_local", "w.shape", (2, 2, 2, 2, 2, 5),
             rest=r" must have one kernel per output position")),
    case("conv-local-channels", conv_local, (ones((1, 4, 4, 2)), ones((3, 3, 2, 2, 3, 5))), {},
         V, say("conv_local", "w.shape", rest=r".*3 input channels but x has 2")),
    case("conv-local-bias", conv_local,
         (ones((1, 4, 4, 2)), ones((3, 3, 2, 2, 2, 5)), ones((4,))), {}, V,
         say("conv_local", "bias.shape", (4,))),
    case("local-dropin-rhs", conv_general_dilated_local,
         (ones((1, 2, 4, 4)), ones((5, 8, 2, 2)), (1, 1), "VALID", (2, 2)), {}, V,
         say("conv_general_dilated_local", "rhs.shape", (5, 8, 2, 2))),
    case("local-dropin-string-pad-lhs-dil", conv_general_dilated_local,
         (ones((1, 2, 4, 4)), ones((5, 8, 3, 3)), (1, 1), "SAME", (2, 2), (2, 1)), {}, V,
         say("conv_general_dilated_local", "padding", "SAME", rest=r" must be explicit")),
]

XA, UA = ones((1, 6, 6, 2)), jnp.full((1, 2, 2), 0.5, F32)
ADAPTIVE = [
    case("aap-out-zero", adaptive_avg_pool, (XA, 0), {}, V,
         r"adaptive_avg_pool: `output_size` \(=0\) must be >= 1 in every dim"),
    case("aap-out-rank", adaptive_avg_pool, (XA, (2, 2, 2)), {}, V,
         r"adaptive_avg_pool: `output_size` \(=\(2, 2, 2\)\) must have one entry per spatial "
         r"dim \(2\)"),
    case("aap-out-float", adaptive_avg_pool, (XA, 2.5), {}, T,
         r"adaptive_avg_pool: `output_size` \(=2.5\) must be an int"),
    case("aap-int-x", adaptive_avg_pool, (XA.astype(jnp.int32), 2), {}, T,
         r"adaptive_avg_pool: `x.dtype` \(='int32'\) must be a floating dtype"),
    case("aap-empty", adaptive_avg_pool, (ones((1, 0, 2)), 2), {}, V,
         r"adaptive_avg_pool: `x.shape` \(=\(1, 0, 2\)\) must have at least one cell"),
    case("amp-ties", adaptive_max_pool, (XA, 2), {"ties": "random"}, V,
         r"adaptive_max_pool: `ties` \(='random'\) must be one of"),
    case("amp-complex", adaptive_max_pool, (XA.astype(jnp.complex64), 2), {}, T,
         r"adaptive_max_pool: `x.dtype` \(='complex64'\) must be a real floating, integer "
         r"or bool"),
    case("fmp-no-samples", fractional_max_pool, (XA, 2), {"output_size": 3}, V,
         r"fractional_max_pool: `samples` \(=None\) must be given, or a `key` to draw them"),
    case("fmp-size-and-ratio", fractional_max_pool, (XA, 2),
         {"output_size": 3, "output_ratio": 0.5, "samples": UA}, V,
         r"fractional_max_pool: .*exactly one must be given"),
    case("fmp-not-fit", fractional_max_pool, (XA, 4), {"output_size": 4, "samples": UA}, V,
         r"fractional_max_pool: `window` \(=4\) does not fit: output size \+ window - 1 "
         r"\(=4 \+ 4 - 1\)"),
    case("fmp-ratio", fractional_max_pool, (XA, 2), {"output_ratio": 1.5, "samples": UA}, V,
         r"fractional_max_pool: `output_ratio` \(=1.5\) must be in \(0, 1\)"),
    case("fmp-ratio-empty", fractional_max_pool, (XA, 2), {"output_ratio": 0.1, "samples": UA},
         V, r"fractional_max_pool: .*gives an empty output"),
    case("fmp-samples-shape", fractional_max_pool, (XA, 2),
         {"output_size": 3, "samples": jnp.full((1, 2, 3), 0.5, F32)}, V,
         r"fractional_max_pool: `samples.shape` \(=\(1, 2, 3\)\) must be \(1, 2, 2\)"),
    case("fmp-samples-range", fractional_max_pool, (XA, 2),
         {"output_size": 3, "samples": jnp.full((1, 2, 2), 1.0, F32)}, V,
         r"fractional_max_pool: .*must be >= 0 and < 1 \(found 1.0\)"),
    case("fmp-ties", fractional_max_pool, (XA, 2), {"output_size": 3, "samples": UA,
         "ties": "random"}, V, r"fractional_max_pool: `ties` \(='random'\) must be one of"),
    case("fmp-complex", fractional_max_pool, (XA.astype(jnp.complex64), 2),
         {"output_size": 3, "samples": UA}, T,
         r"fractional_max_pool: `x.dtype` \(='complex64'\) must be a real floating, integer "),
]

# fmt: on

CASES = CONV + CT + IG + WG + CGD + POOL + DENSE + RESAMPLING + SPATIAL + ADAPTIVE


def _params(cases):
    return [pytest.param(c, id=c.id) for c in cases]


def test_every_public_op_has_bad_calls():
    """The table covers every op of the registry (tests/support/registry.py)."""
    assert sorted({c.fn.__name__ for c in CASES}) == registry.PUBLIC


def test_case_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def _call(c: Case, mode: str = "eager"):
    """Run a case eagerly, under jit (arrays traced) or under eval_shape (no computation)."""
    if mode == "eager":
        return c.fn(*c.args, **c.kwargs)
    is_array = [isinstance(a, (jax.Array, np.ndarray)) for a in c.args]
    arrays = [a for a, flag in zip(c.args, is_array) if flag]

    def f(*traced):
        it = iter(traced)
        return c.fn(*[next(it) if flag else a for a, flag in zip(c.args, is_array)], **c.kwargs)

    if mode == "jit":
        return jax.jit(f)(*arrays)
    return jax.eval_shape(f, *arrays)


def _raise(c: Case, mode: str = "eager") -> BaseException:
    with pytest.raises(c.exc, match=c.match) as info:
        _call(c, mode)
    assert type(info.value) is c.exc, (type(info.value), str(info.value))
    return info.value


@pytest.mark.parametrize("c", _params(CASES))
def test_bad_call_raises(c: Case):
    _raise(c)


@pytest.mark.parametrize("mode", ["jit", "eval_shape"])
@pytest.mark.parametrize("c", _params(CASES))
def test_raised_at_trace_time(c: Case, mode: str):
    eager = _raise(c)
    traced = _raise(c, mode)
    assert type(traced) is type(eager)
    assert str(traced) == str(eager)


_NUMPY_OR_TRACER_REPR = re.compile(r"np\.\w+\(|array\(|Array\(|Tracer|Traced|dtype\(")


def check_message(fn: str, msg: str, none_ok: bool = False) -> None:
    """One line, starts with "fn: `", no placeholder/numpy reprs, balanced brackets."""
    assert "\n" not in msg, msg
    assert msg.startswith(f"{fn}: `"), msg
    assert none_ok or "(=None)" not in msg, msg
    assert not _NUMPY_OR_TRACER_REPR.search(msg), msg
    depth = {"(": 0, "[": 0}
    close = {")": "(", "]": "["}
    for ch in msg:
        if ch in depth:
            depth[ch] += 1
        elif ch in close:
            depth[close[ch]] -= 1
            assert depth[close[ch]] >= 0, f"unbalanced {ch!r} in {msg!r}"
    assert depth == {"(": 0, "[": 0}, f"unbalanced brackets in {msg!r}"
    assert "``" not in msg and msg.count("`") % 2 == 0, msg


@pytest.mark.parametrize("c", _params(CASES))
def test_messages_read_well(c: Case):
    msg = str(_raise(c))
    print(f"[{c.id}] {msg}")  # pytest -s tests/test_errors.py -k read_well shows them all
    check_message(c.fn.__name__, msg, none_ok=r"\(=None\)" in c.match)
    # A setting passed as one scalar is echoed as that scalar, not as a tuple of several
    # settings. (`padding` is exempt: its normalised (lo, hi) pairs are the informative echo.)
    head = re.match(r"\w+: `(\w+)` \(=(.)", msg)
    if head and head[1] in c.kwargs and head[1] != "padding":
        if not isinstance(c.kwargs[head[1]], (tuple, list)):
            assert head[2] != "(", f"`{head[1]}` passed as a scalar but echoed as a tuple: {msg}"


def test_traced_setting_is_a_type_error():
    """Settings are static: a traced stride/groups is reported as such, at trace time."""
    with pytest.raises(TypeError, match=r"^conv: `stride` \(=.*\) must be an int"):
        jax.jit(lambda x, s: conv(x, W, stride=s))(X, 2)
    with pytest.raises(TypeError, match=r"^conv: `groups` \(=.*\) must be an int"):
        jax.jit(lambda x, s: conv(x, W, groups=s))(X, 1)


def test_errors_under_vmap_and_grad():
    c = next(c for c in CASES if c.id == "conv-groups-not-dividing-out")
    x, w = c.args
    with pytest.raises(ValueError, match=c.match):
        jax.vmap(lambda x: conv(x, w, groups=3))(x[None])
    with pytest.raises(ValueError, match=c.match):
        jax.grad(lambda x: conv(x, w, groups=3).sum())(x)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: conv(X1, W1, padding=7, padding_mode="circular"), id="circular-eq"),
        pytest.param(lambda: conv(X1, W1, padding=6, padding_mode="reflect"), id="reflect-n-1"),
        pytest.param(lambda: conv(X1, W1, padding=50, padding_mode="replicate"), id="replicate"),
        pytest.param(lambda: conv(X, W, padding="same"), id="padding-lowercase"),
        pytest.param(lambda: conv(X, W, padding=((0, 0), 1)), id="padding-mixed-forms"),
        pytest.param(lambda: conv(X, W, flip=np.bool_(True)), id="flip-numpy-bool"),
        pytest.param(lambda: conv(X, W, stride=np.int64(2), groups=np.int32(1)), id="np-ints"),
        pytest.param(lambda: conv(ones((2, 3, 3, 4)), W), id="kernel-equals-input"),
        pytest.param(lambda: conv(ones((2, 1, 1, 4)), W, padding=1), id="kernel-fits-padded"),
        pytest.param(lambda: conv(X, W, jnp.ones((6,), jnp.float16)), id="bias-other-float"),
        pytest.param(lambda: conv(X.astype(jnp.bfloat16), W.astype(jnp.bfloat16)), id="bfloat16"),
        pytest.param(
            lambda: conv_transpose(G, W, dilation=2, output_padding=1), id="ct-op-below-dilation"
        ),
        pytest.param(
            lambda: conv_transpose(G, W, stride=2, output_size=(8, 7)), id="ct-output-size-max"
        ),
        pytest.param(
            lambda: conv_general_dilated(XC, WC, S11, ((-1, 0), (0, 0))), id="cgd-negative-crop"
        ),
        pytest.param(lambda: conv_general_dilated(XC, WC, 1, "SAME_LOWER"), id="cgd-int-stride"),
    ],
)
def test_boundary_calls_are_accepted(call):
    """The edges of each check: the largest legal value passes (no off-by-one in the checks)."""
    out = jax.eval_shape(call)
    assert all(d > 0 for d in out.shape), out.shape
