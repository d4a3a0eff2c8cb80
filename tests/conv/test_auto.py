"""`backward="auto"`'s rule (jaxconv/convolution/lowering/choice.py) on the benchmark's layers:
the picks the README
and experiments/results/benchmark.md report, so a rule change shows up here first."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import jaxconv
from jaxconv.convolution.lowering import choice as _auto
from jaxconv.convolution.lowering.choice import auto_algorithms, lean_algorithms

_spec = importlib.util.spec_from_file_location(
    "_jaxconv_layers", Path(__file__).resolve().parents[2] / "experiments" / "layers.py"
)
layers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = layers  # dataclasses look their module up
_spec.loader.exec_module(layers)

# The benchmark's conv layers (experiments/layers.py; conv_transpose_up: its adjoint
# convolution) -> the (fwd, dx, dw) the rule picks for them.
PICKS = {
    "lenet_c1": ("shift", "matmul", "xla"),
    "lenet_c2": ("matmul", "matmul", "matmul"),
    "resnet_3x3": ("matmul", "taps", "matmul"),
    "resnet_down": ("matmul", "taps", "matmul"),
    "stem_7x7_s2": ("matmul", "transpose", "matmul"),
    "dilated": ("xla", "transpose", "xla"),
    "depthwise": ("shift", "shift", "shift"),
    "conv1d_mnist1d": ("shift", "matmul", "matmul"),
    "conv3d_small": ("matmul", "taps", "matmul"),
    "conv_transpose_up": ("matmul", "taps", "matmul"),
}
# name: ((x (N, *n, C), w (*k, C/G, F), stride, pads, dilation, groups), (fwd, dx, dw))
CASES = {name: (layers.conv_layer(layers.LAYERS[name]), want) for name, want in PICKS.items()}
# not a benchmark layer: patches over 256 MiB, XLA throughout
CASES["huge"] = (
    ((64, 128, 128, 64), (3, 3, 64, 64), (1, 1), ((1, 1),) * 2, (1, 1), 1),
    ("xla", "transpose", "xla"),
)


def test_picks_cover_every_benchmark_conv_layer():
    assert set(PICKS) == {n for n, c in layers.LAYERS.items() if layers.is_conv(c)}


def test_rule_table_names_the_benchmark_layers():
    """The per-op table in `auto_algorithms`' docstring is measured on the benchmark's layers,
    under their names."""
    doc = _auto.auto_algorithms.__doc__
    rows = doc.split("=====\n", 2)[2].split("    =====")[0]  # between the header rules
    names = [line.split()[0] for line in rows.strip().splitlines()]
    assert names and set(names) <= set(layers.LAYERS), names


@pytest.mark.parametrize("name", CASES)
def test_auto_picks(name):
    (x, w, s, p, d, groups), want = CASES[name]
    assert auto_algorithms(x, w, s, d, groups, pads=p) == want


def test_exact_output_size_decides_col2im():
    """lenet_c2's columns are 2.5 MB with its real 8x8 output (col2im) but would count as
    13.8 MB with ceil(n / stride) = 12 rows (per-tap): `pads` makes the estimate exact."""
    args = ((64, 12, 12, 6), (5, 5, 6, 16), (1, 1), (1, 1), 1)
    assert auto_algorithms(*args, pads=((0, 0), (0, 0)))[1] == "matmul"
    assert auto_algorithms(*args)[1] == "taps"


def test_lean_picks():
    assert lean_algorithms((3, 3, 1, 64), 64) == ("shift", "shift", "shift")
    assert lean_algorithms((5, 5, 1, 6), 1) == ("shift", "phase", "xla")
    assert lean_algorithms((3, 3, 64, 64), 1) == ("xla", "phase", "xla")
    assert lean_algorithms((3, 3, 64, 128), 1, (2, 2)) == ("xla", "transpose", "xla")
    assert lean_algorithms((7, 7, 3, 64), 1, (2, 2)) == ("xla", "phase", "xla")


# --------------------------------------------------------------------------- per platform
# The rules above were measured on XLA:CPU only. Lowered for any other platform, "auto" and
# "lean" keep XLA's own convolutions (cuDNN, the TPU's convolution units); explicit algorithms
# run as asked everywhere. Lowering needs no device: these run on the CPU-only CI.


def _layer(case, backward="auto", dropin=False):
    """(forward + backward (y, dx, dw) of one `CASES` layer, its argument shapes)."""
    (x, w, s, p, d, groups), _ = CASES[case]
    nd = len(x) - 2

    def conv(x, w):
        if dropin:  # the same layer through the lax drop-in (NH..C / H..IO)
            return jaxconv.conv_general_dilated(
                x,
                w,
                s,
                p,
                None,
                d,
                ("N" + "HWD"[:nd] + "C", "HWD"[:nd] + "IO", "N" + "HWD"[:nd] + "C"),
                feature_group_count=groups,
            )
        return jaxconv.conv(x, w, stride=s, padding=p, dilation=d, groups=groups, backward=backward)

    def f(x, w, g):
        y, pullback = jax.vjp(conv, x, w)
        return (y, *pullback(g))

    xs, ws = jax.ShapeDtypeStruct(x, jnp.float32), jax.ShapeDtypeStruct(w, jnp.float32)
    return f, (xs, ws, jax.eval_shape(conv, xs, ws))


def _ops(case, backward="auto", platforms=("cpu",), dropin=False):
    """(convolutions, matrix products) in the StableHLO lowered for `platforms`."""
    f, args = _layer(case, backward, dropin)
    text = jax.jit(f).trace(*args).lower(lowering_platforms=platforms).as_text()
    return text.count("stablehlo.convolution"), text.count("stablehlo.dot_general")


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
@pytest.mark.parametrize("backward", ["auto", "lean"])
@pytest.mark.parametrize("name", CASES)
def test_accelerators_keep_xla_convolutions(name, backward, platform):
    """Forward, input and weight gradient: three XLA convolutions, no matrix products."""
    assert _ops(name, backward, (platform,)) == (3, 0)


@pytest.mark.parametrize("name", ["resnet_3x3", "lenet_c2", "conv3d_small", "depthwise"])
def test_cpu_keeps_its_rule(name):
    """Lowered for CPU, the same layer runs the measured rule: im2col / per-tap products
    (depthwise: shifted multiply-adds, neither convolutions nor products)."""
    convs, dots = _ops(name)
    assert convs == 0 and (dots == 0 if name == "depthwise" else dots >= 2)


@pytest.mark.parametrize("platform", ["cpu", "cuda", "tpu"])
def test_explicit_algorithms_everywhere(platform):
    """An explicit `backward=` is honoured on every platform."""
    assert _ops("resnet_down", "transpose", (platform,)) == (3, 0)
    assert _ops("resnet_down", "matmul", (platform,)) == (0, 3)
    convs, dots = _ops("resnet_down", "phase", (platform,))  # 2 x 2 stride phases
    assert (convs, dots) == ((4, 2) if platform == "cpu" else (6, 0))


def test_one_function_lowers_per_platform():
    """Lowered for cpu and cuda together, the module carries both rules (and a conditional on
    the platform, resolved before compilation); each single-platform lowering keeps only its own
    branch."""
    cpu, cuda = _ops("resnet_3x3"), _ops("resnet_3x3", platforms=("cuda",))
    both = _ops("resnet_3x3", platforms=("cpu", "cuda"))
    assert cpu == (0, 11) and cuda == (3, 0)
    assert both[0] >= cuda[0] and both[1] >= cpu[1]


@pytest.mark.parametrize(
    "name", ["lenet_c2", "resnet_down", "conv1d_mnist1d", "conv3d_small", "depthwise"]
)
def test_dropin_chooses_like_conv(name):
    """The drop-in builds its layer with `conv`'s geometry builder: the same algorithms."""
    for platforms in (("cpu",), ("cuda",)):
        assert _ops(name, platforms=platforms, dropin=True) == _ops(name, platforms=platforms)
