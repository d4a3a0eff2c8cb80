"""The pooling maps on native CPU kernels of our own (native/src/pool.cc, through XLA's FFI).

One spatial dim shown (window k, dilation d, stride s, low padding lo; window i reads input
positions i*s + m*d - lo, padding outside [0, n)); r[i] is the winner's flat offset in its
window, N_i the divisor of window i::

    max   (``jaxconv_max_pool_f32``):         y[i] = max_m x~[i*s + m*d],  r[i] = first argmax
    pick  (``jaxconv_max_pool_pick_f32``):    t_y[i] = t~[i*s + r[i]*d]
    spread (``jaxconv_max_pool_spread_f32``): dx[p] = sum_{i : i*s + r[i]*d - lo = p} g[i]
    average (``jaxconv_avg_pool_f32``):       y[i] = (1 / N_i) sum_m x~[i*s + m*d]
    adjoint (``jaxconv_avg_pool_adjoint_f32``): dx[p] = sum_{i : p in window i} g[i] / N_i

the same maps as the pure-JAX algorithms (`pooling.reduce`, `max_pool._reduce`), with their
conventions: ties="first" (the first maximum in row-major window order), a padding cell never
wins against an input cell, NaN above every number (the first NaN wins), a window of padding
only gives -inf (+inf for min) and offset 0; padding cells are zeros for the sums.

Only the lowering changes: `max_pool.winners_p`, `winner_pick_p`, `winner_spread_p`,
`avg_pool.average_p` and `adjoint_p` carry a static ``native`` param chosen when they are bound
(`usable`: float32, channels-last, 1 to 3 spatial dims, at least `MIN_CHANNELS` channels, the
kernels loaded on an AVX-512 CPU, no `pure_jax()` block active, no mesh of several devices in
the types), which their transposes and batching rules keep; `cpu_lowering` lowers a primitive
to its kernel where ``native`` is set, the kernel is adopted (`ADOPTED`) and a custom call can
go (`lowering_blocker`: not under jax.export, one device), and to its pure-JAX algorithm
everywhere else (every other platform, dtype, layout and tie rule). Their JVP, transpose and
batching rules are the same either way, so every transformation runs on them.

`ADOPTED` says which kernels run by default: those measured faster than the pure-JAX algorithms,
some only for tiling windows (stride >= the dilated window: `tiles`) or only for overlapping
ones (the numbers are in `max_pool` and `avg_pool`'s docstrings). Tests switch them all on.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.interpreters import mlir

from jaxconv._core.native import (
    lowering_blocker,
    on_a_mesh,
    pool_kernels,
    use_native,
)
from jaxconv._core.primitive import cpu_lowering as register_cpu
from jaxconv._core.window import Window

# The kernels that lower by default, by map and, for the average's pair, by whether the windows
# tile the input (`tiles`) or overlap: those measured faster than the pure-JAX algorithms
# (`max_pool` and `avg_pool`'s docstrings have the numbers).
ADOPTED = {
    "max": True,  # y and the offsets, under differentiation (against the pure one-loop pair)
    "max/inference/tiling": True,  # y alone, no derivative: 2-D and 3-D tiling windows
    "max/inference/other": False,  # (against the pure forward, which skips the offsets)
    "pick/tiling": False,
    "pick/overlapping": True,
    "spread": True,
    "average/tiling": True,
    "average/overlapping": False,
    "adjoint/tiling": True,
    "adjoint/overlapping": True,
}
# Fewer channels than one 16-lane chunk run lane by lane in the kernels: 4-6x slower than XLA's
# loops (N64 64² C3 2x2 max), so those keep the pure-JAX algorithms.
MIN_CHANNELS = 16


def usable(x, win: Window) -> bool:
    """Whether the kernels can compute this pooling of x (static, at bind time): float32,
    channels-last with 1 to 3 spatial dims and at least `MIN_CHANNELS` channels, the kernels
    loaded, an AVX-512 CPU (`pool_kernels`), not inside `pure_jax()`, not partitioned over a
    mesh in the types."""
    return (
        jnp.dtype(x.dtype) == jnp.float32
        and win.layout == "channels_last"
        and 1 <= len(win.axes) <= 3
        and x.shape[-1] >= MIN_CHANNELS
        and use_native()
        and pool_kernels()
        and not on_a_mesh(x)
    )


def tiles(win: Window) -> bool:
    """No input cell lies in two windows: stride >= the dilated window in every dim (the
    kernels' `Tiling`: their backward maps then write each window's cells from the window)."""
    return all(s >= (k - 1) * d + 1 for k, s, d in zip(win.window, win.stride, win.dilation))


def key(name: str):
    """The lowering's `ADOPTED` key of map `name` as a function of a primitive's params (its
    windows in ``win`` or ``cfg.win``): ``name/tiling`` or ``name/overlapping``."""

    def of(params) -> str:
        win = params["win"] if "win" in params else params["cfg"].win
        return f"{name}/{'tiling' if tiles(win) else 'overlapping'}"

    return of


def _attrs(win: Window) -> dict:
    i64 = lambda v: np.asarray(v, np.int64)  # noqa: E731
    return dict(
        window=i64(win.window),
        stride=i64(win.stride),
        dilation=i64(win.dilation),
        pad_lo=i64([lo for lo, _ in win.pads]),
    )


def _shape(win: Window, like, spatial):
    """`like`'s shape (N, *, C) with the spatial sizes `spatial`, as a float32 struct."""
    return jax.ShapeDtypeStruct((like.shape[0], *spatial, like.shape[-1]), jnp.float32)


def max_pool(x, win: Window, op: str, offset_dtype):
    """(y, r) of x: the window maxima (minima for ``op="min"``) and the first winner's offset,
    of `offset_dtype` (int8, int16 or int32)."""
    y = _shape(win, x, win.out)
    r = jax.ShapeDtypeStruct(y.shape, offset_dtype)
    return tuple(jax.ffi.ffi_call("jaxconv_max_pool_f32", (y, r))(x, op=op, **_attrs(win)))


def pick(t, r, win: Window):
    """t at each window's winner: t_y of y's shape."""
    out = _shape(win, t, win.out)
    return jax.ffi.ffi_call("jaxconv_max_pool_pick_f32", out)(t, r, **_attrs(win))


def spread(g, r, win: Window):
    """g routed to each window's winner, overlapping windows accumulating: dx of x's shape."""
    out = _shape(win, g, win.size)
    return jax.ffi.ffi_call("jaxconv_max_pool_spread_f32", out)(g, r, **_attrs(win))


def _divisor(win: Window, counts, override) -> np.ndarray:
    """The per-dim divisor factors, concatenated: N_i = prod_d factor_d[i_d]."""
    if counts is None:
        counts = [(override,) * win.out[0], *((1,) * o for o in win.out[1:])]
    return np.concatenate([np.asarray(c, np.float32) for c in counts])


def average(x, win: Window, counts, override):
    """y: the window sums divided by N_i (per-dim `counts`, or `override` everywhere)."""
    out = _shape(win, x, win.out)
    div = _divisor(win, counts, override)
    return jax.ffi.ffi_call("jaxconv_avg_pool_f32", out)(x, divisor=div, **_attrs(win))


def average_adjoint(g, win: Window, counts, override):
    """dx: every input cell gets the sum of g / N_i over the windows that hold it."""
    out = _shape(win, g, win.size)
    div = _divisor(win, counts, override)
    return jax.ffi.ffi_call("jaxconv_avg_pool_adjoint_f32", out)(g, divisor=div, **_attrs(win))


def _native_param(params) -> bool:
    return params["native"]


def cpu_lowering(kernel, pure, native, *, multiple_results=False, chosen=_native_param):
    """The CPU lowering rule of a pooling primitive: ``native(*args, **params)`` (the custom
    call) where the kernels were chosen at bind time (``chosen(params)``: by default the
    ``native`` param), the kernel is adopted (`ADOPTED`: `kernel` is its key, or a function of
    the params giving it), the operands are float32, a custom call can go here
    (`lowering_blocker`) and the kernels are loaded and run on this CPU; otherwise
    ``pure(*args, **params)``, the pure-JAX algorithm every other platform lowers."""

    def rule(ctx, *args, **params):
        key = kernel(params) if callable(kernel) else kernel
        fun = pure
        if (
            chosen(params)
            and ADOPTED[key]
            and ctx.avals_in[0].dtype == np.float32
            and not lowering_blocker(ctx)
            and pool_kernels()  # loads them (a jaxpr from elsewhere); this CPU runs them
        ):
            fun = native
        lower = mlir.lower_fun(partial(fun, **params), multiple_results=multiple_results)
        return lower(ctx, *args)

    return rule


def register(prim, kernel, pure, native, static: tuple[str, ...], chosen=_native_param):
    """`prim`'s CPU lowering (`cpu_lowering`), and an eager evaluation that runs the primitive
    under jit, so that it lowers as inside a jit (the kernel included) rather than evaluating
    the pure algorithm."""
    rule = cpu_lowering(kernel, pure, native, multiple_results=prim.multiple_results, chosen=chosen)
    register_cpu(prim, rule, static)
