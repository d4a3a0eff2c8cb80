"""`jaxconv.explain`: one row per jaxconv op, the conv family's algorithms and the rule's reasons,
and every residual reverse mode keeps, counted exactly (the leaves of `jax.vjp`'s function)."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import Primitive

import jaxconv as jc
from jaxconv import RESIDUAL_NAMES
from jaxconv._core.native import pure_jax
from jaxconv.convolution.lowering.choice import (
    XLA_CONVOLUTIONS,
    auto_algorithms,
    choose_algorithms,
)
from jaxconv.convolution.lowering.geometry import ConvParams, dimension_numbers

ex = sys.modules["jaxconv.explain"]  # the module (`jaxconv.explain` is the function)
F32 = jnp.float32
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture(autouse=True)
def _pure_rule():
    """The rule's reasons and picks as without the native kernels, whether or not this
    machine has them (`explain` of the native picks: tests/conv/test_native.py)."""
    with pure_jax():
        yield


@pytest.fixture(scope="module")
def mnist1d():
    """experiments/train_mnist1d.py as a module: its network, init and layer table (importing it
    defines them and puts experiments/ on sys.path for its `_common`; nothing runs)."""
    spec = importlib.util.spec_from_file_location(
        "_jaxconv_train_mnist1d", EXPERIMENTS / "train_mnist1d.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vjp_bytes(f, *args) -> int:
    """Bytes of everything `jax.vjp(f, *args)` keeps: its VJP function's leaves, returned from
    `jax.jit` (eagerly, a residual that is an operand itself, e.g. a kernel named by two ops,
    is the same array twice)."""
    pullback = jax.jit(lambda *a: jax.vjp(f, *a)[1])(*args)
    return sum(leaf.nbytes for leaf in jax.tree.leaves(pullback))


def sds(*shape, dtype=F32):
    return jax.ShapeDtypeStruct(shape, dtype)


def shapes(structs):
    return [tuple(s.shape) for s in structs]


def test_mnist1d_network(mnist1d):
    """The MNIST-1D CNN: a row per conv, relu, linear and loss; `auto_algorithms`' picks for
    each conv's shapes; each residual's bytes its abstract value's; nothing else kept."""
    params = mnist1d.init_params(jax.random.key(0))
    x, y = jnp.zeros((100, 40), F32), jnp.zeros((100,), jnp.int32)
    e = jc.explain(mnist1d.loss_jaxconv, params, x=x, y=y)  # training params: x, y held fixed

    ops = ["conv", "relu"] * 3 + ["linear", "softmax_cross_entropy"]
    assert [r.op for r in e] == ops and len(e) == 8
    assert {r.part for r in e} == {"forward"} and {r.scope for r in e} == {""}
    length = 40
    for i, (k, s, p, cin, cout) in enumerate(mnist1d.CONVS):
        conv, relu = e[2 * i], e[2 * i + 1]
        out = (length + 2 * p - k) // s + 1
        x_cl, w_cl = (100, length, cin), (k, cin, cout)
        assert shapes(conv.inputs) == [x_cl, w_cl] and shapes(conv.outputs) == [(100, out, cout)]
        assert conv.cpu == auto_algorithms(x_cl, w_cl, (s,), (1,), 1, pads=((p, p),))
        assert conv.elsewhere == XLA_CONVOLUTIONS and conv.backward == "auto"
        assert conv.reason and "XLA:CPU only" in conv.reason_elsewhere
        # the first layer's data is held fixed: only x is kept (for dw), w too further on
        kept = ["jaxconv.conv.x"] + ["jaxconv.conv.w"] * (i > 0)
        assert [r.name for r in conv.residuals] == kept
        assert conv.residuals[0].shape == x_cl and conv.residuals[0].nbytes == 4 * np.prod(x_cl)
        if i:
            assert conv.residuals[1].nbytes == 4 * np.prod(w_cl)
        (mask,) = relu.residuals
        assert (mask.name, mask.dtype, mask.shape) == (
            "jaxconv.relu.mask",
            np.bool_,
            (100, out, cout),
        )
        assert mask.nbytes == 100 * out * cout and relu.cpu is None and relu.reason == ""
        length = out
    assert e[0].reason.startswith("one input channel (25 outputs <= 64): shifted multiply-adds")
    assert e[2].reason == e[4].reason == "1-D: im2col forward and dw, per-tap dx"
    assert [(r.what, r.nbytes) for r in e[6].residuals] == [("x", 100 * 125 * 4), ("w", 125 * 40)]
    assert [(r.what, r.nbytes) for r in e[7].residuals] == [("probs", 100 * 10 * 4)]
    (labels,) = e.unattributed  # softmax_cross_entropy's integer labels: an input, no name
    assert (labels.name, labels.shape, labels.dtype) == (None, (100,), np.int32)
    assert e.residual_bytes == vjp_bytes(partial(mnist1d.loss_jaxconv, x=x, y=y), params)

    text = str(e)
    assert text == e.table() == repr(e)
    lines = text.splitlines()
    head = ["#", "op", "in", "out", "CPU", "fwd/dx/dw", "GPU/TPU", "fwd/dx/dw", "keeps", "bytes"]
    assert lines[0].split() == head
    assert lines[1].split()[:2] == ["1", "conv"] and "x:f32" in lines[1]
    assert lines[0].index("CPU") == lines[1].index("shift/matmul/matmul")  # aligned columns
    assert lines[0].index("keeps") == lines[2].index("mask:bool")
    assert "why, CPU, rows 3, 5: 1-D: im2col forward and dw, per-tap dx" in lines
    assert "unattributed: i32[100] (400 B)" in lines[9]


def test_depthwise_and_huge_reasons():
    """The rule's reasons, read from the shapes: nothing is computed (abstract arguments)."""
    (row,) = jc.explain(partial(jc.conv, groups=4), sds(2, 8, 8, 4), sds(3, 3, 1, 4))
    assert row.cpu == ("shift",) * 3
    assert row.reason == "depthwise: shifted multiply-adds for all three"
    huge = (sds(64, 128, 128, 64), sds(3, 3, 64, 64))  # test_auto's "huge": 2.25 GiB of patches
    (row,) = jc.explain(jc.conv, *huge, padding=1)
    assert row.cpu == ("xla", "transpose", "xla")
    assert row.reason == "patches 2.25 GiB > 256 MiB limit: XLA"
    assert [r.nbytes for r in row.residuals] == [2**28, 9 * 64 * 64 * 4]


@pytest.mark.parametrize("backward", ["transpose", "matmul", "lean", "phase"])
def test_explicit_backward_gives_its_reason(backward):
    x, w = sds(2, 9, 9, 8), sds(3, 3, 8, 8)
    e = jc.explain(partial(jc.conv, stride=2, backward=backward), x, w)
    (row,) = e
    params = ConvParams(
        window_strides=(2, 2),
        padding=((0, 0), (0, 0)),
        lhs_dilation=(1, 1),
        rhs_dilation=(1, 1),
        dimension_numbers=dimension_numbers(2, "channels_last"),
        feature_group_count=1,
        batch_group_count=1,
        precision=None,
        preferred_element_type=None,
    )
    cpu, elsewhere = choose_algorithms(backward, x.shape, w.shape, params, dtype=F32)
    assert (row.cpu, row.elsewhere, row.backward) == (cpu, elsewhere, backward)
    if backward in ("transpose", "matmul"):
        assert row.reason == row.reason_elsewhere == f"backward={backward!r}: as asked"
    else:
        assert row.reason.startswith(f"backward={backward!r}: ")
        assert row.reason_elsewhere.startswith(f"backward={backward!r}: ")
    assert f"why, CPU, row 1: {row.reason}" in str(e).splitlines()


def test_jit_and_vmap_still_explain(mnist1d):
    params = mnist1d.init_params(jax.random.key(0))
    x, y = jnp.zeros((100, 40), F32), jnp.zeros((100,), jnp.int32)
    plain = jc.explain(mnist1d.loss_jaxconv, params, x, y)
    jitted = jc.explain(jax.jit(mnist1d.loss_jaxconv), params, x, y)
    assert jitted.rows == plain.rows and jitted.unattributed == plain.unattributed
    assert plain.residual_bytes == vjp_bytes(mnist1d.loss_jaxconv, params, x, y)

    batched = jax.vmap(mnist1d.loss_jaxconv, in_axes=(None, 0, 0))
    xs, ys = x.reshape(4, 25, 40), y.reshape(4, 25)
    e = jc.explain(batched, params, xs, ys)
    assert [r.op for r in e] == [r.op for r in plain]
    # the mapped axis folded into the convolutions' batch: its shapes, and its algorithms
    assert shapes(e[0].inputs) == [(100, 40, 1), (5, 1, 25)] and e[0].cpu == plain[0].cpu
    assert shapes(e[1].inputs) == [(4, 25, 19, 25)]
    assert [r.name for r in e[2].residuals] == ["jaxconv.conv.x", "jaxconv.conv.w"]
    assert e.residual_bytes == vjp_bytes(batched, params, xs, ys)
    assert [r.name for r in e.unattributed] == [None]  # the labels


def test_no_jaxconv_op_gives_an_empty_table():
    e = jc.explain(jnp.sin, jnp.ones((3,), F32))
    assert len(e) == 0 and e.rows == () and list(e) == []
    assert str(e).splitlines()[0] == "no jaxconv op"
    assert e.residual_bytes == 12  # cos(x), which no jaxconv name accounts for


def test_pools_losses_and_transpose_keep_what_their_rules_name():
    x, w = jnp.ones((2, 8, 8, 4), F32), jnp.ones((3, 3, 4, 6), F32)

    def f(x, w):
        y = jc.conv_transpose(jc.conv(x, w, padding=1), w, padding=1)
        pooled = jc.max_pool(y, 2) + jc.avg_pool(y, 2) + jc.lp_pool(y, 2.0, 2)
        loss = jc.mse_loss(jc.global_max_pool(pooled), jc.global_avg_pool(pooled))
        return loss + jc.softmax_cross_entropy(pooled.reshape(2, -1), jnp.zeros((2,), jnp.int32))

    e = jc.explain(f, x, w)
    ops = ["conv", "conv_transpose", "max_pool", "avg_pool", "lp_pool", "global_max_pool"]
    assert [r.op for r in e] == [*ops, "global_avg_pool", "mse_loss", "softmax_cross_entropy"]
    kept = {r.op: [(k.what, k.dtype) for k in r.residuals] for r in e}
    assert kept["conv_transpose"] == [("w", np.float32), ("y", np.float32)]
    assert kept["max_pool"] == [("offsets", np.int8)]  # int8 winner offsets
    assert kept["lp_pool"] == [("x", np.float32), ("y", np.float32)]
    assert kept["global_max_pool"] == [("index", np.int32)]
    assert kept["avg_pool"] == kept["global_avg_pool"] == []
    assert e[2].residuals[0].shape == (2, 4, 4, 4) and e[2].residuals[0].nbytes == 128
    assert e.residual_bytes == vjp_bytes(f, x, w)
    named = {k.name for r in e for k in r.residuals}
    assert named <= set(RESIDUAL_NAMES) and "jaxconv.mse_loss.diff" in named


def test_spatial_ops_name_their_residuals():
    """conv_local, and the adaptive (tiling and uneven windows) and fractional max pools with
    each tie policy: every residual belongs to its op's row, none unattributed."""
    x, w = jnp.ones((2, 9, 9, 2), F32), jnp.ones((8, 8, 2, 2, 2, 3), F32)
    u = jnp.full((2, 3, 2), 0.3, F32)

    def f(x, w):
        h = jc.conv_local(x, w)
        a = jc.adaptive_max_pool(h, 4).sum() + jc.adaptive_max_pool(h, 3, ties="split").sum()
        b = jc.fractional_max_pool(h, 2, output_size=5, samples=u, ties="last").sum()
        c = jc.fractional_max_pool(h, 2, output_size=5, samples=u, ties="split").sum()
        return a + b + c

    e = jc.explain(f, x, w)
    kept = [(r.op, [(k.what, k.dtype) for k in r.residuals]) for r in e]
    u8, i32 = np.dtype(np.uint8), np.dtype(np.int32)
    assert kept == [
        ("conv_local", [("x", np.float32), ("w", np.float32)]),
        ("adaptive_max_pool", [("offsets", np.int8)]),
        ("adaptive_max_pool", [("index", u8), ("index", u8)]),  # 4x4 windows: 16 tie bits
        ("fractional_max_pool", [("index", i32)]),
        ("fractional_max_pool", [("index", u8), ("index", i32), ("index", i32)]),
    ]
    assert e.unattributed == () and e.residual_bytes == vjp_bytes(f, x, w)


def test_drop_in_is_named_as_called():
    """The drop-in's conv layers run on conv's primitive but are named `conv_general_dilated`
    (its source traceback); its general convolutions give lax's algorithms."""
    lhs, rhs = jnp.ones((2, 4, 8, 8), F32), jnp.ones((6, 4, 3, 3), F32)

    def f(lhs, rhs):
        layer = jc.conv_general_dilated(lhs, rhs, (1, 1), "SAME")
        general = jc.conv_general_dilated(lhs, rhs, (1, 1), [(1, 1)] * 2, lhs_dilation=(2, 1))
        return layer.sum() + general.sum()

    layer, general = jc.explain(f, lhs, rhs)
    assert (layer.op, general.op) == ("conv_general_dilated",) * 2
    assert [r.what for r in layer.residuals] == ["x", "w"] and layer.backward == "auto"
    assert general.cpu == general.elsewhere == ("xla", "transpose", "xla")
    assert general.reason.startswith("not a conv layer")


def test_a_differentiating_function_shows_its_backward_parts():
    x, w = jnp.ones((2, 8, 8, 4), F32), jnp.ones((3, 3, 4, 6), F32)
    e = jc.explain(jax.grad(lambda x, w: jc.relu(jc.conv(x, w)).sum(), argnums=1), x, w)
    parts = [(r.op, r.part) for r in e]
    assert parts[:2] == [("conv", "forward"), ("relu", "forward")]
    assert ("relu", "relu_mask") in parts and ("conv", "weight_grad") in parts
    assert "conv (weight_grad)" in str(e) and "relu (mask)" in str(e)


def test_remat_policy_and_control_flow():
    x, w = jnp.ones((2, 8, 8, 4), F32), jnp.ones((3, 3, 4, 4), F32)

    def layer(x, w):
        return jc.relu(jc.conv(x, w, padding=1))

    policy = jax.checkpoint_policies.save_only_these_names("jaxconv.relu.mask")
    remat = jax.checkpoint(lambda x, w: layer(x, w).sum(), policy=policy)
    conv, relu = jc.explain(remat, x, w)
    assert conv.residuals == () and [r.what for r in relu.residuals] == ["mask"]

    def scanned(x, w):
        return jax.lax.scan(lambda h, _: (layer(h, w), None), x, None, length=3)[0].sum()

    e = jc.explain(scanned, x, w)
    (conv,) = [r for r in e if r.op == "conv"]
    assert conv.scope == "scan"
    x_kept, w_kept = conv.residuals  # x stacked over the iterations, w hoisted out of the loop
    assert (x_kept.shape, w_kept.shape) == ((3, 2, 8, 8, 4), (3, 3, 4, 4))
    assert e.residual_bytes == vjp_bytes(scanned, x, w)
    assert any("a scan's residuals are stacked" in n for n in e.notes)

    def branches(x, p):
        return jax.lax.cond(p > 0, lambda x: jc.relu(x).sum(), lambda x: jc.max_pool(x, 2).sum(), x)

    pool, relu = jc.explain(branches, x, 1.0)
    assert (pool.scope, pool.op, relu.scope, relu.op) == (
        "cond branch 0",
        "max_pool",
        "cond branch 1",
        "relu",
    )
    assert [r.what for r in pool.residuals] == ["offsets"] and [r.what for r in relu.residuals] == [
        "mask"
    ]


def test_keyword_arguments_are_held_fixed():
    x, w = jnp.ones((2, 8, 8, 4), F32), jnp.ones((3, 3, 4, 6), F32)
    (row,) = jc.explain(lambda x, w, stride: jc.conv(x, w, stride=stride).sum(), x, w=w, stride=2)
    assert shapes(row.outputs) == [(2, 3, 3, 6)]
    assert [r.what for r in row.residuals] == ["w"]  # x's cotangent needs w; w is fixed


def test_every_jaxconv_primitive_is_classified():
    """Each primitive of the package has a row kind or is a piece of an op (`INTERNAL`), and
    each residual name belongs to ops."""
    found = set()
    for name, module in list(sys.modules.items()):
        if name.startswith("jaxconv.") and inspect.ismodule(module):
            found |= {v for v in vars(module).values() if isinstance(v, Primitive)}
    assert found and {p.name for p in found} >= {"jaxconv_conv", "jaxconv_relu_mask"}
    for prim in found:
        assert prim in ex._PRIMITIVES or prim.name in ex._INTERNAL, prim.name
    assert set(ex._LABELS) == set(RESIDUAL_NAMES)
    public = {n for n in jc.__all__ if callable(getattr(jc, n))} - {"explain", "native_available"}
    assert set(ex._PUBLIC.values()) == public


def test_every_residual_name_is_documented():
    """The API reference's table of residual names (docs/api/dense.md) lists exactly
    RESIDUAL_NAMES."""
    text = (EXPERIMENTS.parent / "docs" / "api" / "dense.md").read_text()
    assert set(re.findall(r"`(jaxconv\.[a-z_]+\.[a-z]+)`", text)) == set(RESIDUAL_NAMES)


def test_rows_are_frozen_and_typed():
    (row,) = jc.explain(jc.relu, jnp.ones((3,), F32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.op = "conv"
    assert isinstance(row, ex.OpRow) and isinstance(row.residuals[0], ex.Residual)
    assert str(row.residuals[0]) == "mask:bool[3]" and row.residual_bytes == 3


def test_without_reverse_mode_the_forward_is_explained():
    """A function JAX cannot differentiate (a callback without a JVP): rows, no residuals."""

    def f(x):
        y = jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
        return jc.relu(y).sum()

    e = jc.explain(f, jnp.ones((2, 3), F32))
    assert [r.op for r in e] == ["relu"] and not e.reverse_mode and e.residual_bytes == 0
    assert e.notes[0].startswith("no reverse mode for f: ")
    assert "no reverse mode: no residuals" in str(e).splitlines()
