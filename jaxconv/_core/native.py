"""The optional native CPU kernels: finding, loading and registering them, once.

The kernels live in a separate package, ``jaxconv-native`` (the repository's ``native/`` folder:
C++ against oneDNN and XLA's FFI headers, built with scikit-build-core), so that installing
jaxconv never needs a compiler. When it is installed, its shared library is loaded with ctypes
and each handler is registered with XLA as a CPU custom-call target (`jax.ffi`); the lowerings
that use them (`convolution.lowering.native`; `_core.axis_map`'s CPU lowering, the sparse
map every `interpolate` mode chains, through ``jaxconv_axis_map_f32``) are chosen at trace time
only where `native_available()` is true, and every other path stays pure JAX.

``JAXCONV_NATIVE=0`` in the environment when jaxconv is imported turns every native lowering
off (for debugging and for comparing); the package is then never loaded.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import math
import os
from dataclasses import dataclass

import jax

# The FFI targets the native package exports: the convolutions (one per kernel and input type,
# float32 and bfloat16; the results are float32 in both), the axis maps, the max-unpooling
# scatter and the pools (float32), and the pixel shuffles (any dtype of 2, 4 or 8 bytes).
TARGETS = (
    "jaxconv_conv_fwd_f32",
    "jaxconv_conv_bwd_data_f32",
    "jaxconv_conv_bwd_weights_f32",
    "jaxconv_conv_fwd_bf16",
    "jaxconv_conv_bwd_data_bf16",
    "jaxconv_conv_bwd_weights_bf16",
    "jaxconv_axis_map_f32",
    "jaxconv_axis_map2_f32",
    "jaxconv_unpool_scatter_f32",
    "jaxconv_max_pool_f32",
    "jaxconv_max_pool_pick_f32",
    "jaxconv_max_pool_spread_f32",
    "jaxconv_avg_pool_f32",
    "jaxconv_avg_pool_adjoint_f32",
    "jaxconv_pixel_shuffle",
)

# Read once, at import: a later change of the environment does not switch kernels mid-program.
_OFF = os.environ.get("JAXCONV_NATIVE", "").strip() == "0"
# Set by `pure_jax()` while tracing: choices made meanwhile ignore the kernels.
_PURE = contextvars.ContextVar("jaxconv_pure_jax", default=False)

try:  # the optional package: a small Python module; its shared library loads on first use
    import jaxconv_native as _package
except ImportError as e:
    _package, _MISSING = None, e


@dataclass(frozen=True)
class NativeStatus:
    """Whether the native kernels can run here (true as a bool when they can) and why not.

    Attributes:
      available: the package is installed, its library loaded and its kernels registered.
      reason: why not, in words ("" when available).
      library: the path of the loaded shared library (None when not loaded).
      onednn: oneDNN's version the kernels were built against, "major.minor.patch".
    """

    available: bool
    reason: str = ""
    library: str | None = None
    onednn: str | None = None

    def __bool__(self) -> bool:
        return self.available


@functools.cache
def native_status() -> NativeStatus:
    """Load and register the native kernels on first call; the same answer afterwards."""
    if _OFF:
        return NativeStatus(False, "turned off by JAXCONV_NATIVE=0 (read when jaxconv loaded)")
    if _package is None:
        return NativeStatus(
            False,
            f"the native package is not installed ({_MISSING}); build it with "
            "`pip install -e '.[native]' && pip install --no-build-isolation ./native` "
            "(Linux x86-64, g++; see README)",
        )
    global _LIB
    try:
        _package.preload()
        path = _package.library_path()
        lib = ctypes.cdll.LoadLibrary(path)
        for name in TARGETS:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
        size = lib.jaxconv_conv_workspace_bytes
        size.restype = ctypes.c_int64
        i64, dims = ctypes.c_int64, ctypes.POINTER(ctypes.c_int64)
        size.argtypes = [i64, i64, i64, dims, dims, dims, dims, dims, dims, dims, i64]
    except (OSError, AttributeError, RuntimeError, ValueError) as e:
        return NativeStatus(False, f"the native library failed to load: {e}")
    _LIB = lib
    return NativeStatus(True, "", path, _package.ONEDNN_VERSION)


_LIB = None  # the loaded library (ctypes), once `native_status` succeeded


def conv_workspace_bytes(kind: int, bf16: bool, x_shape, w_shape, y_shape, attrs) -> int:
    """The bytes of temporary memory (oneDNN's scratchpad and reordered weights) one call of
    the convolution handler `kind` (0 forward, 1 backward data, 2 backward weights) needs for
    these channels-last shapes and settings (`attrs`: the handlers' stride, pad_lo, pad_hi,
    dilation, groups); the call's second result, XLA-allocated, gets this size. Makes the
    layer's oneDNN plan (cached by the library) while tracing. -1: the library rejects the
    layer (the call will report why)."""
    if not native_status():
        raise RuntimeError("conv_workspace_bytes: the native kernels are not available")
    arr = lambda v: (ctypes.c_int64 * len(v))(*(int(i) for i in v))  # noqa: E731
    return int(
        _LIB.jaxconv_conv_workspace_bytes(
            kind,
            int(bf16),
            len(x_shape),
            arr(x_shape),
            arr(w_shape),
            arr(y_shape),
            arr(attrs["stride"]),
            arr(attrs["pad_lo"]),
            arr(attrs["pad_hi"]),
            arr(attrs["dilation"]),
            int(attrs["groups"]),
        )
    )


@functools.cache
def pool_kernels() -> bool:
    """Whether the native pooling kernels run on this CPU: the library is loaded and the CPU
    has AVX-512 (F, BW, VL, DQ) and FMA, the one instruction set they are built and measured
    for (native/src/pool.cc). Elsewhere the pools lower their pure-JAX algorithms."""
    if not native_status():
        return False
    return bool(_LIB.jaxconv_pool_kernels_supported())


def native_available() -> NativeStatus:
    """Whether jaxconv's native CPU kernels are installed and usable here.

    Returns a `NativeStatus`, true as a bool when ``backward="native"`` runs the native
    kernels on CPU; otherwise its ``reason`` says why not (the package is not installed, it
    failed to load, or ``JAXCONV_NATIVE=0`` turned it off). The first call loads and registers
    the kernels (a few milliseconds); GPU and TPU never use them.

    Example:
      >>> import jaxconv
      >>> status = jaxconv.native_available()
      >>> bool(status) == status.available and (status.available or status.reason != "")
      True
    """
    return native_status()


def use_native() -> bool:
    """Whether algorithm choices made now may pick the native kernels: they are available and
    no `pure_jax()` block is active."""
    return not _PURE.get() and bool(native_status())


@contextlib.contextmanager
def pure_jax():
    """Within this block, layers *traced* choose their algorithms as if the native kernels were
    not installed (``backward="auto"`` its pure-JAX picks, ``"native"`` its fallback).

    For side-by-side measurements in one process (experiments/benchmark.py's "auto (pure)"
    column) and tests. It acts at trace time only: a function jitted and traced before keeps
    its kernels (jax.jit caches the trace), so wrap the first call of a fresh function.
    """
    token = _PURE.set(True)
    try:
        yield
    finally:
        _PURE.reset(token)


def lowering_blocker(ctx) -> str:
    """Why the native kernels cannot be lowered in the lowering context `ctx` (a
    `jax.interpreters.mlir.LoweringRuleContext`), "" when they can.

    - exporting (`jax.export`): a custom call of this build has no compatibility guarantee
      and the machine that loads the artifact may not have the kernels;
    - a computation partitioned over several devices (a sharded `jit`, or a `shard_map` with
      some axes left automatic): XLA would replicate the custom call's operands, gathering a
      sharded batch onto every device; XLA partitions its own convolutions instead.
    A single device, and a `shard_map` body manual over every mesh axis (one shard per call),
    can use the kernels.
    """
    module = ctx.module_context
    if getattr(module.lowering_parameters, "for_export", False):
        return "exported with jax.export (custom calls have no compatibility guarantee)"
    axis = module.axis_context
    manual = getattr(axis, "manual_axes", None)
    if manual is not None:  # shard_map: per-device bodies only when every axis is manual
        names = set(axis.mesh.axis_names)
        return "" if set(manual) == names else "partitioned over several devices (shard_map)"
    if getattr(axis, "num_devices", 1) > 1:
        return f"partitioned over {axis.num_devices} devices"
    return ""


def _type(a):
    """The abstract value of an array or tracer (an abstract value: itself)."""
    return a if isinstance(a, jax.core.AbstractValue) else jax.typeof(a)


def on_a_mesh(*arrays) -> bool:
    """Whether an operand's type (an array, tracer or abstract value) carries a mesh of several
    devices (explicit sharding): such a program is partitioned over them, where a custom call
    cannot simply go (`lowering_blocker`); the conv family then runs its kernels per shard or its
    pure-JAX fallback (`convolution.lowering.native.per_shard`), decided from the types."""
    for a in arrays:
        mesh = getattr(_type(a).sharding, "mesh", None)
        if mesh is None or mesh.empty:
            continue
        manual = jax.sharding.AxisType.Manual  # a shard_map body: one shard per call
        free = [n for n, t in zip(mesh.axis_sizes, mesh.axis_types) if t != manual]
        if math.prod(free) > 1:
            return True
    return False


def batch_sharding(a, b, both: bool):
    """``(mesh, names, shards)`` where the types of `a` and `b` (arrays, tracers or abstract
    values, channels-last) shard only their batch axis, over the mesh axes `names` (explicit
    axes, none manual) into `shards` even parts: `a` alone (`b` replicated) or, with `both`,
    `a` and `b` alike; else None."""
    ta, tb = _type(a), _type(b)
    sa, sb = getattr(ta, "sharding", None), getattr(tb, "sharding", None)
    mesh = getattr(sa, "mesh", None)
    if mesh is None or mesh.empty or getattr(sb, "mesh", None) != mesh:
        return None
    if any(t != jax.sharding.AxisType.Explicit for t in mesh.axis_types):
        return None
    spec_a = tuple(sa.spec) + (None,) * (ta.ndim - len(sa.spec))
    spec_b = tuple(sb.spec) + (None,) * (tb.ndim - len(sb.spec))
    first = spec_a[0]
    if first is None or any(e is not None for e in spec_a[1:]):
        return None
    if spec_b != ((first,) + (None,) * (tb.ndim - 1) if both else (None,) * tb.ndim):
        return None
    names = first if isinstance(first, tuple) else (first,)
    shards = math.prod(dict(zip(mesh.axis_names, mesh.axis_sizes))[n] for n in names)
    if ta.shape[0] % shards or (both and tb.shape[0] % shards):
        return None
    return mesh, names, shards
