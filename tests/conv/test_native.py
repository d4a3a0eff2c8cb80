"""The native CPU kernels (oneDNN through XLA's FFI, `backward="native"`) against the pure-JAX
lowerings: the same values and gradients in float32 for every layer the conv tests draw, under
the transformations, with the fallback where the kernels do not apply or are not installed.

The tests that run the kernels skip where the native package is not built (the oldest-jax venv
of CI, a machine without a compiler); `JAXCONV_NATIVE=0` and the fallback are tested everywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxconv as jc
from tests.conv.test_conv import conv_cases
from tests.support.devices import host_devices_env
from tests.support.numerics import assert_close

STATUS = jc.native_available()
built = pytest.mark.skipif(not STATUS, reason=f"native kernels unavailable: {STATUS.reason}")
F32 = 1e-5  # float32 against float32: relative to the largest entry


def _pair(x_shape, w_shape, bias, padding, kw, seed, dtype=jnp.float32):
    """(y, dx, dw[, db]) of backward="native" and of backward="transpose" (XLA's convs)."""
    rng = np.random.default_rng(seed)
    x, w = (jnp.asarray(rng.standard_normal(s), dtype) for s in (x_shape, w_shape))
    args = (x, w) + (
        (
            jnp.asarray(
                rng.standard_normal(w_shape[-1 if kw["layout"] == "channels_last" else 0]), dtype
            ),
        )
        if bias
        else ()
    )

    def run(backward):
        f = lambda *a: jc.conv(*a[:2], *a[2:], padding=padding, **{**kw, "backward": backward})  # noqa: E731
        y, vjp = jax.vjp(f, *args)
        return y, vjp(jnp.asarray(np.random.default_rng(seed + 1).standard_normal(y.shape), dtype))

    return jax.jit(lambda: (run("native"), run("transpose")))()


@built
@settings(max_examples=30)
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_native_equals_xla_for_drawn_layers(case, seed):
    """Every layer shape, stride, padding form and mode, dilation, group count, flip and layout
    the conv tests draw: float32 values and gradients within 1e-5 of XLA's convolutions."""
    x_shape, w_shape, bias, padding, _, kw = case
    ours, ref = _pair(x_shape, w_shape, bias, padding, kw, seed)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert_close(a, b, tol=F32)


LAYERS = {  # the benchmark's conv layers (experiments/layers.py), batch cut to 2
    "resnet_3x3": ((2, 32, 32, 64), (3, 3, 64, 64), dict(padding="SAME")),
    "resnet_down": ((2, 32, 32, 64), (3, 3, 64, 128), dict(stride=2, padding=1)),
    "dilated": ((2, 32, 32, 32), (3, 3, 32, 32), dict(dilation=2, padding=2)),
    "depthwise": ((2, 32, 32, 64), (3, 3, 1, 64), dict(padding=1, groups=64)),
    "stem_7x7_s2": ((2, 56, 56, 3), (7, 7, 3, 64), dict(stride=2, padding=3)),
    "conv3d_small": ((2, 8, 8, 8, 8), (3, 3, 3, 8, 16), dict(padding=1)),
    "conv1d_mnist1d": ((8, 40, 1), (5, 1, 32), dict(stride=2, padding=2)),
}


@built
@pytest.mark.parametrize("name", list(LAYERS))
def test_native_equals_xla_on_benchmark_layers(name):
    x_shape, w_shape, kw = LAYERS[name]
    kw = {"layout": "channels_last", **kw}
    padding = kw.pop("padding")
    ours, ref = _pair(x_shape, w_shape, False, padding, kw, 0)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        assert_close(a, b, tol=F32)


@built
def test_compiled_program_calls_the_kernels():
    """The forward, input and weight gradients of a native layer are the three custom calls, and
    no XLA convolution is left."""
    x, w = jnp.ones((2, 9, 9, 4), jnp.float32), jnp.ones((3, 3, 4, 5), jnp.float32)
    f = lambda x, w: jnp.sum(jc.conv(x, w, stride=2, padding=1, backward="native") ** 2)  # noqa: E731
    hlo = jax.jit(jax.grad(f, (0, 1))).lower(x, w).compile().as_text()
    for target in (
        "jaxconv_conv_fwd_f32",
        "jaxconv_conv_bwd_data_f32",
        "jaxconv_conv_bwd_weights_f32",
    ):
        assert target in hlo, target
    assert " convolution(" not in hlo


@built
def test_workspace_is_an_xla_buffer_in_the_memory_analysis():
    """Each call's temporary memory (oneDNN's scratchpad and reordered weights) is the call's
    second result, of the size `conv_workspace_bytes` gives, and the compiled program's
    memory analysis counts it; invalid layers get -1, empty ones 0."""
    from jaxconv._core.native import conv_workspace_bytes

    x, w = jnp.ones((4, 16, 16, 32), jnp.float32), jnp.ones((3, 3, 32, 32), jnp.float32)
    f = lambda x, w: jnp.sum(jc.conv(x, w, padding=1, backward="native") ** 2)  # noqa: E731
    lowered = jax.jit(jax.grad(f, (0, 1))).lower(x, w)
    sizes = [int(n) for n in re.findall(r"tensor<(\d+)xui8>", lowered.as_text())]
    assert len(sizes) == 3 and max(sizes) > 0, sizes
    temp = lowered.compile().memory_analysis().temp_size_in_bytes
    assert temp >= max(sizes), (temp, sizes)
    attrs = dict(
        stride=np.ones(2, np.int64),
        pad_lo=np.ones(2, np.int64),
        pad_hi=np.ones(2, np.int64),
        dilation=np.ones(2, np.int64),
        groups=np.int64(1),
    )
    shapes = (x.shape, w.shape, x.shape)
    fwd = conv_workspace_bytes(0, False, *shapes, attrs)
    assert fwd in sizes
    assert conv_workspace_bytes(0, False, *shapes, {**attrs, "groups": np.int64(3)}) == -1
    assert conv_workspace_bytes(0, False, (0, 16, 16, 32), w.shape, (0, 16, 16, 32), attrs) == 0


@built
def test_a_workspace_too_small_is_allocated_by_the_call():
    """A call handed a smaller workspace than its plan needs (as with another thread count than
    the one it was sized for) allocates its own and computes the same."""
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.standard_normal((4, 16, 16, 32)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 32, 32)), jnp.float32)
    ones = np.ones(2, np.int64)
    out = (
        jax.ShapeDtypeStruct(x.shape, jnp.float32),
        jax.ShapeDtypeStruct((0,), jnp.uint8),
    )
    call = jax.ffi.ffi_call("jaxconv_conv_fwd_f32", out)
    y = jax.jit(
        lambda x, w: call(x, w, stride=ones, pad_lo=ones, pad_hi=ones, dilation=ones,
                          groups=np.int64(1))[0]
    )(x, w)  # fmt: skip
    assert_close(y, jc.conv(x, w, padding=1, backward="transpose"), tol=1e-5)


@built
def test_transformations_run_on_the_native_lowering():
    """jvp, vmap (the batch folded into N and groups, the kernels chosen again), the HVP and
    jacfwd of a native layer equal the same of XLA's, in float32."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 7, 7, 4)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 2, 6)), jnp.float32)
    xs, ws = jnp.stack([x, 0.5 * x]), jnp.stack([w, -w])

    def transforms(backward):
        f = lambda x, w: jc.conv(x, w, stride=2, padding=1, groups=2, backward=backward)  # noqa: E731
        s = lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
        return (
            jax.jvp(f, (x, w), (w.sum() * x, 0.3 * w)),
            jax.vmap(f)(xs, ws),
            jax.vmap(f, in_axes=(0, None))(xs, w),
            jax.jvp(jax.grad(s, (0, 1)), (x, w), (x, w)),
            jax.jacfwd(lambda x: f(x, w)[0, 0, 0])(x),
        )

    ours, ref = jax.jit(lambda: (transforms("native"), transforms("transpose")))()
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        assert_close(a, b, tol=1e-4)


@built
def test_a_jitted_loop_of_native_calls_grows_no_memory():
    """10,000 native forward + backward calls in one jitted loop: the kernels' primitive cache
    is bounded and nothing leaks per call (resident memory grows by < 32 MiB)."""
    x, w = jnp.ones((2, 8, 8, 4), jnp.float32), jnp.ones((3, 3, 4, 4), jnp.float32) * 0.01

    def step(_, c):
        return (
            c + jax.grad(lambda x: jnp.sum(jc.conv(x, w, padding=1, backward="native")))(c) * 1e-6
        )

    loop = jax.jit(lambda x, n: jax.lax.fori_loop(0, n, step, x))
    jax.block_until_ready(loop(x, 10))

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = rss()
    jax.block_until_ready(loop(x, 10_000))
    assert rss() - before < 32 * 2**20, (before, rss())


def test_native_falls_back_where_the_kernels_do_not_apply():
    """float64 (and anywhere the kernels are missing): backward="native" computes "auto"'s
    algorithms, says why in `explain`, and equals XLA's convolutions."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 3)))
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)))
    f = lambda b: jax.vjp(lambda x, w: jc.conv(x, w, padding=1, backward=b), x, w)  # noqa: E731
    (y, vjp), (y_ref, vjp_ref) = f("native"), f("transpose")
    assert y.dtype == jnp.float64
    assert_close(y, y_ref)
    for a, b in zip(vjp(y), vjp_ref(y)):
        assert_close(a, b)
    (row,) = [r for r in jc.explain(lambda x, w: jc.conv(x, w, padding=1, backward="native"), x, w)]
    text = str(row)
    assert "native" in text and (
        "float32 only" in text or "not installed" in text or "JAXCONV_NATIVE" in text
    ), text


def test_jaxconv_native_0_turns_the_kernels_off():
    """JAXCONV_NATIVE=0 at import: native_available() is false and says so; backward="native"
    runs the pure-JAX algorithms (no custom call in the program)."""
    code = (
        "import jax, jax.numpy as jnp, jaxconv as jc\n"
        "s = jc.native_available()\n"
        "assert not s and 'JAXCONV_NATIVE=0' in s.reason, s\n"
        "x, w = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 2))\n"
        "hlo = jax.jit(lambda x, w: jc.conv(x, w, backward='native')).lower(x, w).as_text()\n"
        "assert 'jaxconv_conv' not in hlo\n"
        "print('ok')\n"
    )
    env = dict(os.environ, JAXCONV_NATIVE="0")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_status_reads_as_a_bool_with_a_reason():
    """True with the library and oneDNN's version, or false with the reason; where the
    environment says JAXCONV_REQUIRE_NATIVE=1 (CI's main run), the kernels must be there."""
    if os.environ.get("JAXCONV_REQUIRE_NATIVE") == "1":
        assert STATUS, STATUS.reason
    assert bool(STATUS) == STATUS.available
    if STATUS:
        assert STATUS.reason == "" and STATUS.library and STATUS.onednn
    else:
        assert STATUS.reason and STATUS.library is None


@built
def test_native_results_are_the_same_run_to_run():
    """Bitwise: the same inputs give the same y, dx and dw on every call (oneDNN's reductions
    over its fixed threads have a fixed order)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((4, 16, 16, 32)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 32, 32)), jnp.float32)

    @jax.jit
    def run(x, w):
        y, vjp = jax.vjp(lambda x, w: jc.conv(x, w, stride=2, padding=1, backward="native"), x, w)
        return y, vjp(jnp.cos(y))

    first = jax.tree.map(np.asarray, run(x, w))
    for _ in range(3):
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(run(x, w))):
            np.testing.assert_array_equal(a, np.asarray(b))


# --------------------------------------------------------------------------- "auto" and where
# `backward="auto"` runs the kernels for float32 layers on CPU (not for one input channel per
# group outside depthwise: measured slower there), and lowers its pure-JAX fallback where a
# custom call cannot go: jax.export, a program partitioned over several devices.


def _sds(*shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype)


@built
@pytest.mark.parametrize(
    "x, w, kw, native",
    [
        ((2, 16, 16, 8), (3, 3, 8, 16), dict(stride=2, padding=1), True),
        ((2, 16, 16, 8), (3, 3, 1, 8), dict(padding=1, groups=8), True),  # depthwise
        ((2, 8, 8, 8, 4), (3, 3, 3, 4, 8), dict(padding=1), True),  # 3-D
        ((2, 28, 28, 1), (5, 5, 1, 6), dict(), False),  # one input channel, 0.2 M MACs
        ((64, 28, 28, 1), (5, 5, 1, 6), dict(), True),  # lenet_c1: one input channel, 5.3 M
        ((8, 40, 1), (5, 1, 32), dict(stride=2, padding=2), False),  # conv1d_mnist1d's first
    ],
)
def test_auto_picks_the_kernels_for_float32(x, w, kw, native):
    """`explain` shows what `auto` runs: the kernels for all three convolutions (with the
    fallback named) where measured faster, the pure-JAX rule elsewhere and for float64."""
    (row,) = jc.explain(lambda x, w: jc.conv(x, w, **kw), _sds(*x), _sds(*w))
    assert (row.cpu == ("native",) * 3) == native, row
    if native:
        assert row.reason.startswith("native oneDNN kernels") and "jax.export" in row.reason
    (row64,) = jc.explain(
        lambda x, w: jc.conv(x, w, **kw), _sds(*x, dtype=jnp.float64), _sds(*w, dtype=jnp.float64)
    )
    assert "native" not in row64.cpu


@built
def test_export_lowers_the_pure_jax_fallback():
    """jax.export of a layer `auto` runs natively: the serialized module has no custom call
    of this build (no compatibility guarantee; the loading machine may lack the kernels) and
    computes the same values and gradients."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 9, 8)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 8, 8)), jnp.float32)
    loss = lambda x, w: jnp.sum(jnp.sin(jc.conv(x, w, stride=2, padding=1)))  # noqa: E731
    grad = jax.jit(jax.grad(loss, (0, 1)))
    assert "jaxconv_conv" in grad.lower(x, w).as_text()
    exported = jax.export.export(grad)(x, w)
    assert "jaxconv_conv" not in exported.mlir_module()
    for a, b in zip(exported.call(x, w), grad(x, w)):
        assert_close(a, b, tol=F32)


SHARDED = """
import jax, jax.numpy as jnp, numpy as np, jaxconv as jc
from jax.sharding import NamedSharding, PartitionSpec as P, AxisType
rng = np.random.default_rng(0)
x = jnp.asarray(rng.standard_normal((8, 9, 9, 8)), jnp.float32)
w = jnp.asarray(rng.standard_normal((3, 3, 8, 8)), jnp.float32)
loss = lambda x, w: jnp.sum(jnp.sin(jc.conv(x, w, stride=2, padding=1)))
grad = jax.jit(jax.grad(loss, (0, 1)))
ref = grad(x, w)
assert "jaxconv_conv" in grad.lower(x, w).as_text()
def close(got):
    for a, b in zip(got, ref):
        scale = float(jnp.max(jnp.abs(b)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5 * scale)
for types in (AxisType.Auto, AxisType.Explicit):
    mesh = jax.make_mesh((4,), ("data",), axis_types=(types,))
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    ws = jax.device_put(w, NamedSharding(mesh, P()))
    hlo = grad.lower(xs, ws).compile().as_text()
    # explicit axes: the kernels on each batch shard (dw summed over them); automatic: the
    # pure-JAX fallback XLA partitions. Either way nothing is gathered.
    assert ("jaxconv_conv" in hlo) == (types == AxisType.Explicit), types
    assert "all-gather" not in hlo, types
    close(grad(xs, ws))
    if types == AxisType.Explicit:
        got = grad(xs, ws)
        assert got[0].sharding.spec[0] == "data" and got[1].sharding.spec == P(*[None] * 4)
        hvp = jax.jit(lambda x, w: jax.jvp(lambda x: grad(x, w)[1], (x,), (x,))[1])
        np.testing.assert_allclose(hvp(xs, ws), hvp(x, w), rtol=1e-4, atol=1e-4)
        # sharded along channels: the fallback (the kernels would need the whole channel axis)
        xc = jax.device_put(x, NamedSharding(mesh, P(None, None, None, "data")))
        assert "jaxconv_conv" not in grad.lower(xc, ws).compile().as_text()
        close(grad(xc, ws))
    # a shard_map body manual over every axis is one device's program: the kernels run there
    body = jax.shard_map(lambda x, w: jax.grad(loss, (0, 1))(x, w), mesh=mesh,
                         in_specs=(P("data"), P()), out_specs=(P("data"), P()), check_vma=False)
    text = jax.jit(body).lower(xs, ws).compile().as_text()
    assert "jaxconv_conv" in text and "all-gather" not in text, types
print("ok")
"""


@built
def test_sharded_programs_keep_xla_partitioning():
    """Batch-sharded over 4 emulated devices: with explicit mesh axes the kernels run on each
    device's shard (a shard_map from the types; dw summed over the batch axis), with automatic
    axes the pure-JAX fallback that XLA partitions; neither gathers the activations, both give
    the single-device values (a second derivative too). Sharded along channels: the fallback.
    A `shard_map` body runs the kernels per shard."""
    out = subprocess.run(
        [sys.executable, "-c", SHARDED],
        env=host_devices_env(4),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


# ---- bfloat16
# bfloat16 operands run the `_bf16` handlers: bf16 x bf16 products accumulated in float32 (as
# the pure-JAX lowerings' preferred_element_type=float32), float32 results that the rules round
# to bfloat16. The two paths differ only in float32 summation order (~1e-6 relative) before
# that rounding, so an entry can land one bfloat16 ulp apart (<= 2**-7 of its magnitude); a
# second rounding (a bias, a padding mode's adjoint summing the padded border back) can add
# another: 2 * 2**-7 ~ 1.6e-2 < BF16, relative to the largest entry (measured: <= 5.4e-3).
BF16 = 2e-2


@built
@pytest.mark.parametrize("name", list(LAYERS))
def test_native_equals_xla_on_benchmark_layers_in_bfloat16(name):
    """Every benchmark layer in bfloat16: values and gradients within BF16 of XLA's
    convolutions, all of them bfloat16."""
    x_shape, w_shape, kw = LAYERS[name]
    kw = {"layout": "channels_last", **kw}
    padding = kw.pop("padding")
    ours, ref = _pair(x_shape, w_shape, False, padding, kw, 0, dtype=jnp.bfloat16)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        assert a.dtype == b.dtype == jnp.bfloat16
        assert_close(a, b, tol=BF16)


@built
@settings(max_examples=15)
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_native_equals_xla_for_drawn_layers_in_bfloat16(case, seed):
    """The drawn layers of `test_native_equals_xla_for_drawn_layers` in bfloat16: values and
    gradients bfloat16, within BF16 of XLA's convolutions."""
    x_shape, w_shape, bias, padding, _, kw = case
    ours, ref = _pair(x_shape, w_shape, bias, padding, kw, seed, dtype=jnp.bfloat16)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        assert a.shape == b.shape and a.dtype == b.dtype == jnp.bfloat16
        assert_close(a, b, tol=BF16)


@built
def test_compiled_bfloat16_program_calls_the_bf16_kernels():
    """A bfloat16 layer's forward, input and weight gradients are the three `_bf16` custom
    calls (no float32 kernel, no XLA convolution left)."""
    x, w = jnp.ones((2, 9, 9, 4), jnp.bfloat16), jnp.ones((3, 3, 4, 5), jnp.bfloat16)
    f = lambda x, w: jnp.sum(  # noqa: E731
        jc.conv(x, w, stride=2, padding=1, backward="native").astype(jnp.float32) ** 2
    )
    hlo = jax.jit(jax.grad(f, (0, 1))).lower(x, w).compile().as_text()
    for kernel in ("fwd", "bwd_data", "bwd_weights"):
        assert f"jaxconv_conv_{kernel}_bf16" in hlo, kernel
        assert f"jaxconv_conv_{kernel}_f32" not in hlo, kernel
    assert " convolution(" not in hlo


@built
def test_float16_falls_back_with_the_reason():
    """float16 has no kernels: backward="native" runs "auto"'s pure-JAX picks and says why."""
    x, w = _sds(2, 8, 8, 4, dtype=jnp.float16), _sds(3, 3, 4, 4, dtype=jnp.float16)
    (row,) = jc.explain(lambda x, w: jc.conv(x, w, padding=1, backward="native"), x, w)
    assert "native" not in row.cpu
    assert "bfloat16 or float32 only (operands are float16)" in row.reason, row.reason
