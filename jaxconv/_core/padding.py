"""Padding and window arithmetic shared by convolution and pooling: every padding form to
(lo, hi) pairs, the dilated window, the output size, and the checks that a window fits.

One spatial dim (each is alike): input size n, window k with dilation d, so the window spans
``k_eff = (k - 1) d + 1`` cells; stride s; padding (lo, hi); outputs
``o = (n + lo + hi - k_eff) // s + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxconv._core.validate import PADDING_MODES, PADDING_STRINGS, as_int, check_choice, fail


def padding_pairs(fn: str, padding, nd: int, k_eff, stride, size) -> tuple[tuple[int, int], ...]:
    """Every padding form of the API (docs/semantics.md) -> one (lo, hi) pair per spatial dim.

    "VALID": none. "SAME": output size ceil(n / stride), the extra cell high (as lax/TF).
    "FULL": k_eff - 1 on each side. "CAUSAL": k_eff - 1 low, none high (Flax's causal
    padding, in every spatial dim: output i sees inputs up to i * stride, ceil(n / stride)
    outputs). An int, one int per dim, or one (lo, hi) pair per dim.
    """
    if isinstance(padding, str):
        p = padding.upper()
        if p == "VALID":
            return ((0, 0),) * nd
        if p == "FULL":
            return tuple((k - 1, k - 1) for k in k_eff)
        if p == "CAUSAL":
            return tuple((k - 1, 0) for k in k_eff)
        if p == "SAME":
            pairs = []
            for n, k, s in zip(size, k_eff, stride):
                total = max((-(-n // s) - 1) * s + k - n, 0)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        fail(
            fn,
            "padding",
            padding,
            f"must be one of {list(PADDING_STRINGS)}, an int, "
            "one int per dim or one (lo, hi) pair per dim",
        )
    if isinstance(padding, Sequence):
        if len(padding) != nd:
            fail(fn, "padding", padding, f"must have one entry per spatial dim ({nd})")
        pairs = []
        for p in padding:
            if isinstance(p, Sequence) and not isinstance(p, str):
                if len(p) != 2:
                    fail(fn, "padding", padding, "pairs must be (lo, hi)")
                pairs.append((as_int(fn, "padding", p[0]), as_int(fn, "padding", p[1])))
            else:
                v = as_int(fn, "padding", p)
                pairs.append((v, v))
        out = tuple(pairs)
    else:
        v = as_int(fn, "padding", padding)
        out = ((v, v),) * nd
    if any(lo < 0 or hi < 0 for lo, hi in out):
        fail(fn, "padding", padding, "must be >= 0")
    return out


def effective_kernel(k, dilation):
    return tuple((kk - 1) * d + 1 for kk, d in zip(k, dilation))


def out_size(n, k_eff, stride, pad) -> tuple[int, ...]:
    return tuple((nn + lo + hi - k) // s + 1 for nn, k, s, (lo, hi) in zip(n, k_eff, stride, pad))


def check_window_fits(fn: str, size, pads, k_eff, arg: str = "w.shape", value=None) -> None:
    value = tuple(k_eff) if value is None else value
    for n, (lo, hi), k in zip(size, pads, k_eff):
        if n + lo + hi < k:
            fail(
                fn,
                arg,
                value,
                f"has a window (dilated: {tuple(k_eff)}) larger than the "
                f"padded input (spatial {tuple(size)}, padding {tuple(pads)})",
            )


def check_padding_mode(fn: str, mode, pads, size) -> None:
    check_choice(fn, "padding_mode", mode, PADDING_MODES)
    if mode == "reflect":
        for n, (lo, hi) in zip(size, pads):
            if lo >= n or hi >= n:
                fail(
                    fn,
                    "padding",
                    tuple(pads),
                    f"must be < the input size {tuple(size)} with padding_mode='reflect'",
                )
    if mode == "replicate" and any(n < 1 and (lo or hi) for n, (lo, hi) in zip(size, pads)):
        fail(
            fn,
            "padding_mode",
            mode,
            f"has no cell to replicate in an empty input dim "
            f"(spatial {tuple(size)}, padding {tuple(pads)})",
        )
    if mode == "circular":
        for n, (lo, hi) in zip(size, pads):
            if lo > n or hi > n:
                fail(
                    fn,
                    "padding",
                    tuple(pads),
                    f"must be <= the input size {tuple(size)} with padding_mode='circular'",
                )


def check_pool_padding(fn: str, padding, pads, k_eff) -> None:
    """PyTorch's rule, measured on the dilated window: each side pads at most k_eff // 2."""
    for (lo, hi), k in zip(pads, k_eff):
        if max(lo, hi) > k // 2:
            fail(
                fn,
                "padding",
                padding,
                f"must be at most half the window (={tuple(k_eff)}) "
                f"on each side, got {tuple(pads)}",
            )
