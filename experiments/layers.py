"""The benchmark's layers: one list shared by the benchmarks (experiments/benchmark.py,
benchmark_gpu.py), the tests of the `backward="auto"` rule and of memory (tests/test_auto.py,
tests/test_memory.py) and the documentation of that rule (the table in
jaxconv/convolution/lowering/choice.py; a test checks its names are these).

Shapes are channels-last, kernels ``(*k, C_in // groups, C_out)``. Plain Python (no jax), so
anything can load it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    """One benchmark case; shapes channels-last, kernel (*k, C_in // groups, C_out)."""

    name: str
    op: str  # "conv", "conv_transpose", "max_pool", "avg_pool"
    x: tuple  # the op's input (for conv_transpose: y, with the kernel's C_out channels)
    w: tuple | None = None
    stride: int = 1
    padding: int | str = 0
    dilation: int = 1
    groups: int = 1
    window: int = 2
    label: str = ""

    @property
    def nd(self) -> int:
        return len(self.x) - 2


LAYERS = {
    c.name: c
    for c in (
        Config("lenet_c1", "conv", (64, 28, 28, 1), (5, 5, 1, 6), label="N64 28² 1→6 k5"),
        Config("lenet_c2", "conv", (64, 12, 12, 6), (5, 5, 6, 16), label="N64 12² 6→16 k5"),
        Config(
            "resnet_3x3",
            "conv",
            (32, 32, 32, 64),
            (3, 3, 64, 64),
            padding="SAME",
            label="N32 32² 64→64 k3 SAME",
        ),
        Config(
            "resnet_down",
            "conv",
            (32, 32, 32, 64),
            (3, 3, 64, 128),
            stride=2,
            padding=1,
            label="N32 32² 64→128 k3 s2 p1",
        ),
        Config(
            "stem_7x7_s2",
            "conv",
            (8, 112, 112, 3),
            (7, 7, 3, 64),
            stride=2,
            padding=3,
            label="N8 112² 3→64 k7 s2 p3",
        ),
        Config(
            "dilated",
            "conv",
            (16, 32, 32, 32),
            (3, 3, 32, 32),
            padding=2,
            dilation=2,
            label="N16 32² 32→32 k3 d2 p2",
        ),
        Config(
            "depthwise",
            "conv",
            (32, 32, 32, 64),
            (3, 3, 1, 64),
            padding=1,
            groups=64,
            label="N32 32² 64ch k3 p1 groups=64",
        ),
        Config(
            "conv1d_mnist1d",
            "conv",
            (512, 40, 1),
            (5, 1, 32),
            stride=2,
            padding=2,
            label="N512 L40 1→32 k5 s2 p2",
        ),
        Config(
            "conv3d_small",
            "conv",
            (4, 16, 16, 16, 8),
            (3, 3, 3, 8, 16),
            padding=1,
            label="N4 16³ 8→16 k3 p1",
        ),
        Config(
            "conv_transpose_up",
            "conv_transpose",
            (16, 16, 16, 64),
            (4, 4, 32, 64),
            stride=2,
            padding=1,
            label="N16 16² 64→32 k4 s2 p1",
        ),
        Config(
            "maxpool_2x2", "max_pool", (64, 32, 32, 64), window=2, stride=2, label="N64 32² C64"
        ),
        Config(
            "maxpool_3x3_s2_p1",
            "max_pool",
            (32, 56, 56, 64),
            window=3,
            stride=2,
            padding=1,
            label="N32 56² C64 k3 s2 p1",
        ),
        Config(
            "avgpool_2x2", "avg_pool", (64, 32, 32, 64), window=2, stride=2, label="N64 32² C64"
        ),
    )
}


def pad_pairs(cfg: Config) -> list[tuple[int, int]]:
    """Explicit (lo, hi) per spatial dim of the layer's convolution or pool (SAME as lax and
    TF: ceil(n / stride) outputs, the odd cell high)."""
    if cfg.padding == "SAME":
        pairs = []
        for n, k in zip(cfg.x[1:-1], cfg.w[:-2]):
            total = max((-(-n // cfg.stride) - 1) * cfg.stride + cfg.dilation * (k - 1) + 1 - n, 0)
            pairs.append((total // 2, total - total // 2))
        return pairs
    return [(cfg.padding, cfg.padding)] * cfg.nd


def conv_layer(cfg: Config):
    """The channels-last convolution of a conv layer: (x shape, w shape, stride, pads, dilation,
    groups) per spatial dim. For conv_transpose, the convolution it is the adjoint of (input n,
    C_in channels), whose algorithms `backward=` chooses."""
    x, nd = cfg.x, cfg.nd
    if cfg.op == "conv_transpose":
        k_eff = [cfg.dilation * (k - 1) + 1 for k in cfg.w[:-2]]
        n = [
            (o - 1) * cfg.stride + ke - lo - hi
            for o, ke, (lo, hi) in zip(x[1:-1], k_eff, pad_pairs(cfg))
        ]
        x = (x[0], *n, cfg.w[-2] * cfg.groups)
    stride, dilation = (cfg.stride,) * nd, (cfg.dilation,) * nd
    return x, cfg.w, stride, tuple(pad_pairs(cfg)), dilation, cfg.groups


def is_conv(cfg: Config) -> bool:
    return cfg.op in ("conv", "conv_transpose")
