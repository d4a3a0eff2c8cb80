"""Exact lowerings of the three convolutions of a conv layer (forward, dx, dw), by algorithm,
and `compute`, which runs the one chosen for the platform being compiled for.

All are channels-last (`_geometry.Geometry`), pure jnp/lax, with no derivative rules: the rules in
`_backward.py` call them, so how a value is computed never changes how it is differentiated.

| role | algorithm | module | what |
|---|---|---|---|
| fwd | "xla" | `_lax_rules` | one `lax.conv_general_dilated` |
| fwd | "matmul" | `_im2col` | patches (M, K C) times w (K C, F) |
| fwd | "shift" | `_depthwise` | sum of K shifted slices times w[m] (C // G == 1) |
| dx | "transpose" | `_lax_rules` | dilate_s(g) correlated with rot180(w), channels regrouped |
| dx | "phase" | `_polyphase` | s^D stride-1 correlations with the sub-kernels, interleaved |
| dx | "matmul" | `_im2col` | col2im of g w^T |
| dx | "taps" | `_im2col` | one product per tap, placed at its offset |
| dx | "shift" | `_depthwise` | sum of K placed g * w[m] |
| dw | "xla" | `_lax_rules` | x correlated with g (batch and feature axes swapped) |
| dw | "matmul" | `_im2col` | patches^T g |
| dw | "shift" | `_depthwise` | per tap, slice_m(x_p) * g summed over batch and space |
"""

from __future__ import annotations

from jax import lax

from jaxconv._depthwise import dw_shift, dx_shift, fwd_shift
from jaxconv._geometry import Geometry
from jaxconv._im2col import dw_matmul, dx_matmul, dx_taps, fwd_matmul
from jaxconv._lax_rules import dw_xla, dx_transpose, fwd_xla
from jaxconv._polyphase import dx_phase

FWD = {"xla": fwd_xla, "matmul": fwd_matmul, "shift": fwd_shift}

DX = {
    "transpose": dx_transpose,
    "phase": dx_phase,
    "matmul": dx_matmul,
    "taps": dx_taps,
    "shift": dx_shift,
}

DW = {"xla": dw_xla, "matmul": dw_matmul, "shift": dw_shift}

_ROLES = {"fwd": (0, FWD), "dx": (1, DX), "dw": (2, DW)}


def compute(role: str, geo: Geometry, a, b, dtype):
    """`role` ("fwd", "dx" or "dw") of the convolution `geo` applied to (a, b), cast to `dtype`,
    by the algorithm chosen for the platform the computation is compiled for: ``geo.<role>`` on
    CPU, ``geo.elsewhere`` on every other platform. With two different choices both are staged
    by `jax.lax.platform_dependent`; each lowering keeps only its own platform's branch (no
    conditional reaches the compiler), so one jitted, exported or AOT-compiled function is
    right on every platform."""
    i, table = _ROLES[role]
    cpu = (geo.fwd, geo.dx, geo.dw)[i]
    other = cpu if geo.elsewhere is None else geo.elsewhere[i]

    def by(algorithm):
        return lambda a, b: table[algorithm](a, b, geo).astype(dtype)

    if other == cpu:
        return by(cpu)(a, b)
    return lax.platform_dependent(a, b, cpu=by(cpu), default=by(other))
