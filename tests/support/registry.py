"""The op registry: every public jaxconv op once (some in several variants), with its plain-JAX
reference, its domain and example arguments. The cross-cutting tests iterate it -- the forward-
mode matrix, check_grads, jit/vmap against plain calls and the rules-off runs
(tests/properties/), non-finite propagation, the fuzz's and the error table's coverage -- so a
new op joins all of them by one entry here.

Each `Op`:

- ``fn``: the jaxconv call, every array argument positional and differentiated (settings fixed
  in the lambda);
- ``ref``: the same computation from `jaxconv.testing.oracle` / lax (JAX's autodiff of it is what
  jaxconv's rules are held to);
- ``args``: float64 example arguments drawn from the op's domain (positive for `lp_pool`,
  distinct values for the max-type ops so no tie sits on a kink);
- ``nonfinite``: the non-finite values that may be planted in each argument (within the domain:
  none below zero for a positive-domain op) for tests/properties/test_nonfinite.py; ``()`` where
  a dedicated test owns the topic (the conv family's grouping and padding models);
  ``nonfinite_g``: whether a non-finite cotangent is planted too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxconv as jc
from jaxconv.testing import oracle, random_inputs

NAN_INF = (np.nan, np.inf, -np.inf)


@dataclass(frozen=True)
class Op:
    name: str  # the variant's name (a test id)
    public: str  # the public function it exercises: jaxconv.<public>
    fn: Callable
    ref: Callable
    args: tuple
    nonfinite: tuple = ()
    # False where a non-finite cotangent meets zero-weight taps (interpolate: 0 * inf = NaN
    # wherever a formulation keeps such a tap), so its NaN pattern is the formulation's
    nonfinite_g: bool = True


def vjp_x(f, x_shape):
    """The input gradient of f as a function of (kernel, g): JAX's autodiff of the forward."""
    return lambda w, g: jax.vjp(lambda x: f(x, w), jnp.zeros(x_shape))[1](g)[0]


def vjp_w(f, w_shape):
    return lambda x, g: jax.vjp(lambda w: f(x, w), jnp.zeros(w_shape))[1](g)[0]


CONV = dict(stride=(2, 1), padding=((1, 0), (1, 1)), groups=2, dilation=(1, 2))
CT = dict(stride=2, padding=1, output_padding=1, groups=2)
DN = ("NCHW", "OIHW", "NHWC")
LABELS = jnp.asarray([2, 0, 1])
(_IDX_X,) = random_inputs(100, (1, 4, 4, 2))
_, IDX = jc.max_pool(_IDX_X, 2, return_indices=True)
SAMPLES = jnp.asarray([[[0.3, 0.7], [0.6, 0.1]]])  # fractional_max_pool's u, (N, C, 2)


def _ops():
    conv_ref = lambda x, w: oracle.conv(x, w, **CONV)  # noqa: E731
    yield Op(
        "conv",
        "conv",
        lambda x, w, b: jc.conv(x, w, b, **CONV),
        lambda x, w, b: oracle.conv(x, w, b, **CONV),
        random_inputs(1, (2, 5, 6, 4), (3, 2, 2, 6), (6,)),
    )
    reflect = dict(padding=1, padding_mode="reflect", flip=True, layout="channels_first")
    yield Op(
        "conv_reflect_flip_cf",
        "conv",
        lambda x, w: jc.conv(x, w, **reflect),
        lambda x, w: oracle.conv(x, w, **reflect),
        random_inputs(2, (2, 3, 5, 4), (4, 3, 3, 2)),
    )
    yield Op(
        "conv1d_depthwise",
        "conv",
        lambda x, w: jc.conv(x, w, stride=2, padding=2, groups=3),
        lambda x, w: oracle.conv(x, w, stride=2, padding=2, groups=3),
        random_inputs(3, (2, 9, 3), (5, 1, 6)),
    )
    yield Op(
        "conv_transpose",
        "conv_transpose",
        lambda y, w, b: jc.conv_transpose(y, w, b, **CT),
        lambda y, w, b: oracle.conv_transpose(y, w, b, **CT),
        random_inputs(4, (2, 3, 3, 4), (3, 3, 1, 4), (2,)),
    )
    yield Op(
        "conv_input_grad",
        "conv_input_grad",
        lambda w, g: jc.conv_input_grad((2, 5, 6, 4), w, g, **CONV),
        vjp_x(conv_ref, (2, 5, 6, 4)),
        random_inputs(5, (3, 2, 2, 6), (2, 2, 6, 6)),
    )
    yield Op(
        "conv_weight_grad",
        "conv_weight_grad",
        lambda x, g: jc.conv_weight_grad(x, (3, 2, 2, 6), g, **CONV),
        vjp_w(conv_ref, (3, 2, 2, 6)),
        random_inputs(6, (2, 5, 6, 4), (2, 2, 6, 6)),
    )
    general = ((1, 2), ((1, 2), (0, 1)), (2, 1), (1, 2), DN, 2)
    yield Op(
        "conv_general_dilated",
        "conv_general_dilated",
        lambda x, w: jc.conv_general_dilated(x, w, *general),
        lambda x, w: lax.conv_general_dilated(x, w, *general),
        random_inputs(7, (2, 4, 3, 4), (6, 2, 2, 2)),
    )
    batch_groups = ((1, 1), "SAME", None, None, DN, 1, 2)
    yield Op(
        "conv_general_batch_groups",
        "conv_general_dilated",
        lambda x, w: jc.conv_general_dilated(x, w, *batch_groups),
        lambda x, w: lax.conv_general_dilated(x, w, *batch_groups),
        random_inputs(8, (4, 3, 4, 3), (4, 3, 2, 2)),
    )
    yield Op(
        "max_pool",
        "max_pool",
        lambda x: jc.max_pool(x, 3, stride=2, padding=1),
        lambda x: oracle.max_pool(x, 3, stride=2, padding=1),
        random_inputs(9, (2, 5, 6, 3)),
        nonfinite=(np.inf, -np.inf),  # NaN: PyTorch's rule (NaN wins), tests/pool/
    )
    yield Op(
        "max_pool_split_cf",
        "max_pool",
        lambda x: jc.max_pool(x, 2, ties="split", ceil_mode=True, layout="channels_first"),
        lambda x: oracle.max_pool(x, 2, ceil_mode=True, layout="channels_first"),
        random_inputs(10, (2, 3, 5, 5)),
    )
    yield Op(
        "max_pool_dilated",
        "max_pool",
        lambda x: jc.max_pool(x, 2, stride=1, dilation=2, ties="last"),
        lambda x: oracle.max_pool(x, 2, stride=1, dilation=2, ties="last"),
        random_inputs(11, (1, 6, 5, 2)),
    )
    mn = dict(stride=2, padding=1, ties="last", layout="channels_first")
    yield Op(
        "min_pool",
        "min_pool",
        lambda x: jc.min_pool(x, 3, **mn),
        lambda x: oracle.min_pool(x, 3, **mn),
        random_inputs(21, (2, 3, 5, 6)),
        nonfinite=(np.inf, -np.inf),  # NaN: max_pool's rule (NaN wins), tests/pool/
    )
    avg = dict(stride=2, padding=1, count_include_pad=False)
    yield Op(
        "avg_pool",
        "avg_pool",
        lambda x: jc.avg_pool(x, 3, **avg),
        lambda x: oracle.avg_pool(x, 3, **avg),
        random_inputs(12, (2, 5, 6, 3)),
        nonfinite=NAN_INF,
    )
    yield Op(
        "lp_pool",
        "lp_pool",
        lambda x: jc.lp_pool(x, 3.0, 2),
        lambda x: oracle.lp_pool(x, 3.0, 2),
        random_inputs(13, (2, 4, 6, 3), positive=True),
        nonfinite=(np.nan, np.inf),
    )
    yield Op(
        "global_avg_pool",
        "global_avg_pool",
        jc.global_avg_pool,
        oracle.global_avg_pool,
        random_inputs(14, (2, 3, 4, 3)),
        nonfinite=NAN_INF,
    )
    yield Op(
        "global_max_pool",
        "global_max_pool",
        jc.global_max_pool,
        oracle.global_max_pool,
        random_inputs(15, (2, 3, 4, 3)),
        nonfinite=(np.inf, -np.inf),  # NaN: PyTorch's rule (NaN wins), tests/pool/
    )
    yield Op(
        "max_unpool",
        "max_unpool",
        lambda y: jc.max_unpool(y, IDX, (1, 4, 4, 2)),
        lambda y: oracle.max_unpool(y, IDX, (4, 4)),
        random_inputs(16, (1, 2, 2, 2)),
        nonfinite=NAN_INF,
    )
    for name, seed, shape, f in (
        (
            "interpolate_bicubic_corners_cf",
            31,
            (2, 3, 5, 4),
            dict(size=(7, 3), mode="bicubic", align_corners=True, layout="channels_first"),
        ),
        (
            "interpolate_antialias_3d",
            33,
            (1, 5, 6, 4, 2),
            dict(size=(2, 3, 2), mode="trilinear", antialias=True),
        ),
    ):
        yield Op(
            name,
            "interpolate",
            lambda x, f=f: jc.interpolate(x, **f),
            lambda x, f=f: oracle.interpolate(x, **f),
            random_inputs(seed, shape),
            # NaN only: a zero-weight tap turns inf into NaN (as PyTorch's kernels do), so
            # infinities need not land where autodiff of the gathers puts them
            nonfinite=(np.nan,),
            nonfinite_g=False,
        )
    yield Op(
        "interpolate_area_nearest_exact_1d",
        "interpolate",
        lambda x: jc.interpolate(
            jc.interpolate(x, 3, mode="area"), scale_factor=1.3, mode="nearest-exact"
        ),
        lambda x: oracle.interpolate(
            oracle.interpolate(x, 3, mode="area"), scale_factor=1.3, mode="nearest-exact"
        ),
        random_inputs(32, (2, 7, 3)),
        nonfinite=(np.nan,),
        nonfinite_g=False,
    )
    yield Op(
        "adaptive_avg_pool",
        "adaptive_avg_pool",
        lambda x: jc.adaptive_avg_pool(x, (3, 2)),
        lambda x: oracle.adaptive_avg_pool(x, (3, 2)),
        random_inputs(40, (2, 7, 5, 3)),
        nonfinite=NAN_INF,
    )
    yield Op(
        "adaptive_max_pool",
        "adaptive_max_pool",
        lambda x: jc.adaptive_max_pool(x, (3, 2)),
        lambda x: oracle.adaptive_max_pool(x, (3, 2)),
        random_inputs(42, (2, 7, 5, 3)),
        nonfinite=(np.inf, -np.inf),
    )
    ams = dict(ties="split", layout="channels_first")  # uneven windows (5 -> 4)
    yield Op(
        "adaptive_max_pool_split_cf",
        "adaptive_max_pool",
        lambda x: jc.adaptive_max_pool(x, (3, 4), **ams),
        lambda x: oracle.adaptive_max_pool(x, (3, 4), **ams),
        random_inputs(43, (2, 3, 7, 5)),
    )
    yield Op(
        "fractional_max_pool",
        "fractional_max_pool",
        lambda x: jc.fractional_max_pool(x, 2, output_size=(4, 3), samples=SAMPLES),
        lambda x: oracle.fractional_max_pool(x, 2, (4, 3), SAMPLES),
        random_inputs(44, (1, 8, 7, 2)),
        nonfinite=(np.inf, -np.inf),
    )
    fms = dict(ties="split", layout="channels_first")
    yield Op(
        "fractional_max_pool_split_cf",
        "fractional_max_pool",
        lambda x: jc.fractional_max_pool(x, (3, 2), output_size=(4, 3), samples=SAMPLES, **fms),
        lambda x: oracle.fractional_max_pool(x, (3, 2), (4, 3), SAMPLES, **fms),
        random_inputs(45, (1, 2, 8, 7)),
    )
    yield Op(
        "pixel_shuffle",
        "pixel_shuffle",
        lambda x: jc.pixel_shuffle(x, (2, 3)),
        lambda x: oracle.pixel_shuffle(x, (2, 3)),
        random_inputs(50, (2, 2, 3, 12)),
        nonfinite=NAN_INF,
    )
    yield Op(
        "pixel_unshuffle_cf",
        "pixel_unshuffle",
        lambda x: jc.pixel_unshuffle(x, 2, layout="channels_first"),
        lambda x: oracle.pixel_unshuffle(x, 2, layout="channels_first"),
        random_inputs(51, (2, 3, 4, 6)),
        nonfinite=NAN_INF,
    )
    unf = dict(stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2))
    yield Op(
        "unfold",
        "unfold",
        lambda x: jc.unfold(x, (3, 2), **unf),
        lambda x: oracle.unfold(x, (3, 2), **unf),
        random_inputs(52, (2, 5, 6, 3)),
        nonfinite=NAN_INF,
    )
    yield Op(
        "fold",
        "fold",
        lambda c: jc.fold(c, (5, 6), (3, 2), **unf),
        lambda c: oracle.fold(c, (5, 6), (3, 2), **unf),
        random_inputs(54, (2, 2, 6, 18)),
        nonfinite=NAN_INF,
    )
    loc = dict(stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2))
    yield Op(
        "conv_local",
        "conv_local",
        lambda x, w, b: jc.conv_local(x, w, b, **loc),
        lambda x, w, b: oracle.conv_local(x, w, b, **loc),
        random_inputs(55, (2, 5, 4, 2), (3, 3, 2, 2, 2, 3), (3,)),
        # no non-finite values: lax's local conv (the oracle) spreads inf as NaN through its
        # identity-kernel patches, where the rules keep it in place
    )
    gl = ((1, 2), ((1, -1), (0, 2)), (2, 3), (2, 1), None, ("NWHC", "WHIO", "CNHW"))
    yield Op(
        "conv_general_dilated_local",
        "conv_general_dilated_local",
        lambda lhs, rhs: jc.conv_general_dilated_local(lhs, rhs, *gl),
        lambda lhs, rhs: lax.conv_general_dilated_local(
            lhs, rhs, *gl, precision=lax.Precision.HIGHEST
        ),
        random_inputs(56, (2, 3, 4, 2), (4, 2, 12, 3)),
    )
    yield Op("relu", "relu", jc.relu, oracle.relu, random_inputs(17, (3, 4, 5)), nonfinite=NAN_INF)
    yield Op(
        "linear",
        "linear",
        jc.linear,
        oracle.linear,
        random_inputs(18, (3, 4), (4, 5), (5,)),
        nonfinite=NAN_INF,
    )
    yield Op(
        "mse_loss",
        "mse_loss",
        lambda y, t: jc.mse_loss(y, t, reduction="mean"),
        lambda y, t: oracle.mse_loss(y, t, reduction="mean"),
        random_inputs(19, (3, 4), (3, 4)),
        nonfinite=NAN_INF,
    )
    yield Op(
        "softmax_cross_entropy",
        "softmax_cross_entropy",
        lambda z: jc.softmax_cross_entropy(z, LABELS),
        lambda z: oracle.softmax_cross_entropy(z, LABELS),
        random_inputs(20, (3, 4)),
        nonfinite=NAN_INF,
    )


ALL_OPS: dict[str, Op] = {op.name: op for op in _ops()}
# One variant per public op (its first): what tests that trace every op in one test iterate,
# and, with JAXCONV_TEST_VARIANTS=first, the whole registry (.ci/run's oldest-jax subset: the
# primitives' rules are what differs between jax versions, not the variants' settings).
FIRST: dict[str, Op] = {}
for _op in ALL_OPS.values():
    FIRST.setdefault(_op.public, _op)
FIRST = {op.name: op for op in FIRST.values()}
OPS = FIRST if os.environ.get("JAXCONV_TEST_VARIANTS") == "first" else ALL_OPS

# Every callable public name of jaxconv (tests/package checks that the registry covers them)
# but the two that are no array op: `explain`, which reads a traced function
# (tests/package/test_explain.py), and `native_available` (tests/conv/test_native.py).
NOT_OPS = ("explain", "native_available")
PUBLIC = sorted(n for n in jc.__all__ if callable(getattr(jc, n)) and n not in NOT_OPS)
