"""`backward="auto"`'s rule (jaxconv/_auto.py) on the benchmark's layers: the picks the README
and experiments/results/benchmark.md report, so a rule change shows up here first."""

from __future__ import annotations

import pytest

from jaxconv._auto import auto_algorithms, lean_algorithms

# name: (x (N, *n, C), w (*k, C/G, F), stride, pads, dilation, groups) -> (fwd, dx, dw)
CASES = {
    "lenet_c1": (((64, 28, 28, 1), (5, 5, 1, 6), 1, 0, 1, 1), ("shift", "matmul", "xla")),
    "lenet_c2": (((64, 12, 12, 6), (5, 5, 6, 16), 1, 0, 1, 1), ("matmul", "matmul", "matmul")),
    "resnet_3x3": (((32, 32, 32, 64), (3, 3, 64, 64), 1, 1, 1, 1), ("matmul", "taps", "matmul")),
    "resnet_down": (((32, 32, 32, 64), (3, 3, 64, 128), 2, 1, 1, 1), ("matmul", "taps", "matmul")),
    "stem_7x7_s2": (
        ((8, 112, 112, 3), (7, 7, 3, 64), 2, 3, 1, 1),
        ("matmul", "transpose", "matmul"),
    ),
    "dilated": (((16, 32, 32, 32), (3, 3, 32, 32), 1, 2, 2, 1), ("xla", "transpose", "xla")),
    "depthwise": (((32, 32, 32, 64), (3, 3, 1, 64), 1, 1, 1, 64), ("shift", "shift", "shift")),
    "conv1d": (((512, 40, 1), (5, 1, 32), 2, 2, 1, 1), ("shift", "matmul", "matmul")),
    "conv3d": (((4, 16, 16, 16, 8), (3, 3, 3, 8, 16), 1, 1, 1, 1), ("matmul", "taps", "matmul")),
    # conv_transpose_up's adjoint convolution
    "conv_t_up": (((16, 32, 32, 32), (4, 4, 32, 64), 2, 1, 1, 1), ("matmul", "taps", "matmul")),
    # patches over 256 MiB: XLA throughout
    "huge": (((64, 128, 128, 64), (3, 3, 64, 64), 1, 1, 1, 1), ("xla", "transpose", "xla")),
}


@pytest.mark.parametrize("name", CASES)
def test_auto_picks(name):
    (x, w, s, p, d, groups), want = CASES[name]
    nd = len(x) - 2
    got = auto_algorithms(x, w, (s,) * nd, (d,) * nd, groups, pads=((p, p),) * nd)
    assert got == want


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
