"""The benchmark's layers: one list shared by the benchmarks (experiments/benchmark.py,
benchmark_gpu.py), the tests of the `backward="auto"` rule and of memory (tests/test_auto.py,
tests/test_memory.py) and the documentation of that rule (the table in
jaxconv/convolution/lowering/choice.py; a test checks its names are these).

Shapes are channels-last, kernels ``(*k, C_in // groups, C_out)``. Plain Python (no jax), so
anything can load it. `SPATIAL` holds the cases of benchmark.py's second table (the spatial ops:
interpolate, adaptive/fractional pools, pixel shuffle, unfold, conv_local), kept out of `LAYERS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class SpatialCase:
    """One case of the spatial ops' table (experiments/benchmark.py): `op` names the function
    in `jaxconv` and in `jaxconv.testing.oracle`, called as ``op(x, *args, **kwargs)`` (and
    ``op(x, w, ...)`` when `w` is given); shapes channels-last, float32."""

    name: str
    op: str  # "interpolate", "adaptive_avg_pool", "pixel_shuffle", "unfold", ...
    x: tuple
    args: tuple = ()  # positional settings after the arrays
    kwargs: dict = field(default_factory=dict)  # keyword settings
    w: tuple | None = None  # conv_local's kernel (*o, *k, C_in, C_out)
    label: str = ""

    @property
    def nd(self) -> int:
        return len(self.x) - 2


# The spatial ops of issue 22; not in LAYERS (whose users expect conv/pool layers).
SPATIAL = {
    c.name: c
    for c in (
        SpatialCase(
            "interp_bilinear_2x",
            "interpolate",
            (8, 64, 64, 32),
            kwargs=dict(scale_factor=2, mode="bilinear", align_corners=False),
            label="N8 64² C32 bilinear ×2",
        ),
        SpatialCase(
            "interp_bilinear_2x_ac",
            "interpolate",
            (8, 64, 64, 32),
            kwargs=dict(scale_factor=2, mode="bilinear", align_corners=True),
            label="N8 64² C32 bilinear ×2 align_corners",
        ),
        SpatialCase(
            "adaptive_avg_7x7",
            "adaptive_avg_pool",
            (32, 14, 14, 256),
            args=(7,),
            label="N32 14² C256 → 7²",
        ),
        SpatialCase(
            "adaptive_avg_1x1",
            "adaptive_avg_pool",
            (32, 7, 7, 512),
            args=(1,),
            label="N32 7² C512 → 1²",
        ),
        SpatialCase(
            "adaptive_avg_5x5",
            "adaptive_avg_pool",
            (32, 14, 14, 256),
            args=(5,),
            label="N32 14² C256 → 5² (overlapping)",
        ),
        SpatialCase(
            "pixel_shuffle_2x",
            "pixel_shuffle",
            (16, 32, 32, 64),
            args=(2,),
            label="N16 32² C64 ×2",
        ),
        SpatialCase(
            "unfold_3x3",
            "unfold",
            (16, 32, 32, 16),
            args=(3,),
            kwargs=dict(padding=1),
            label="N16 32² C16 k3 p1",
        ),
        SpatialCase(
            "adaptive_max_7x7",
            "adaptive_max_pool",
            (32, 14, 14, 256),
            args=(7,),
            label="N32 14² C256 → 7²",
        ),
        SpatialCase(
            "fractional_max_2x2",
            "fractional_max_pool",
            (16, 32, 32, 32),
            args=(2,),
            kwargs=dict(output_ratio=0.5),
            label="N16 32² C32 k2 ratio 0.5",
        ),
        SpatialCase(
            "conv_local_3x3",
            "conv_local",
            (16, 16, 16, 16),
            w=(14, 14, 3, 3, 16, 16),
            label="N16 16² 16→16 k3 (unshared)",
        ),
    )
}
