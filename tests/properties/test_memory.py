"""Memory: compiled temp bytes of forward+backward against autodiff, residuals, remat names.

- ``backward="lean"`` keeps every benchmark config's compiled forward+backward temp memory
  (`memory_analysis().temp_size_in_bytes`) at or below JAX autodiff's; pools have one algorithm
  and meet it as they are. (``"auto"`` trades memory for speed where im2col pays: the table in
  experiments/results/benchmark.md lists both.)
- The residuals every custom VJP keeps are never larger than autodiff's; max pooling keeps
  at most a quarter of x's bytes, relu a boolean mask.
- Each residual carries a `checkpoint_name` (jaxconv.RESIDUAL_NAMES) that remat policies see.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv as jc
from jaxconv.testing import oracle

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture(scope="module")
def bench():
    """experiments/benchmark.py as a module: its configs and its autodiff/jaxconv forwards."""
    for mod in ("matplotlib", "tqdm"):
        pytest.importorskip(mod)
    spec = importlib.util.spec_from_file_location(
        "_jaxconv_bench_mem", EXPERIMENTS / "benchmark.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _operands(bench, cfg):
    x = jax.ShapeDtypeStruct(cfg.x, jnp.float32)
    ops = [x] if not bench.is_conv(cfg) else [x, jax.ShapeDtypeStruct(cfg.w, jnp.float32)]
    y = jax.eval_shape(bench.lax_forward(cfg), *ops)
    return ops, y


def _temp_bytes(f, args):
    return int(jax.jit(f).lower(*args).compile().memory_analysis().temp_size_in_bytes)


_spec = importlib.util.spec_from_file_location("_jaxconv_layers_mem", EXPERIMENTS / "layers.py")
_layers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _layers  # dataclasses look their module up
_spec.loader.exec_module(_layers)
CONFIG_NAMES = list(_layers.LAYERS)  # every benchmark layer (experiments/layers.py)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_lean_temp_memory_at_most_autodiff(bench, name):
    cfg = bench.CONFIGS[name]
    ops, y = _operands(bench, cfg)
    args = (*ops, y)
    n = len(ops)
    autodiff = _temp_bytes(bench.vjp_function(bench.lax_forward(cfg), n), args)
    algo = "lean" if bench.is_conv(cfg) else "auto"
    ours = _temp_bytes(bench.vjp_function(bench.jaxconv_forward(cfg, algo), n), args)
    assert ours <= autodiff, (
        f"{name}: jaxconv {algo} {ours / 2**20:.2f} MB > autodiff {autodiff / 2**20:.2f} MB"
    )


def _residual_bytes(f, *args):
    """Bytes of the arrays jax.vjp's pullback keeps alive (inputs it holds on to included)."""
    _, pullback = jax.vjp(f, *args)
    leaves = {id(a): a for a in jax.tree.leaves(pullback) if hasattr(a, "nbytes")}
    return sum(a.nbytes for a in leaves.values())


RESIDUAL_CASES = {
    "conv": (
        lambda x, w: jc.conv(x, w, stride=2, padding=1),
        lambda x, w: oracle.conv(x, w, stride=2, padding=1),
        [(8, 16, 16, 8), (3, 3, 8, 16)],
    ),
    "max_pool_2x2": (
        lambda x: jc.max_pool(x, 2),
        lambda x: oracle.max_pool(x, 2),
        [(8, 16, 16, 8)],
    ),
    "max_pool_3x3_s1": (
        lambda x: jc.max_pool(x, 3, stride=1, padding=1),
        lambda x: oracle.max_pool(x, 3, stride=1, padding=1),
        [(8, 16, 16, 8)],
    ),
    "avg_pool": (lambda x: jc.avg_pool(x, 2), lambda x: oracle.avg_pool(x, 2), [(8, 16, 16, 8)]),
    "relu": (jc.relu, oracle.relu, [(8, 16, 16, 8)]),
    "linear": (jc.linear, oracle.linear, [(32, 64), (64, 10)]),
}


@pytest.mark.parametrize("name", sorted(RESIDUAL_CASES))
def test_residuals_at_most_autodiff(name):
    ours, plain, shapes = RESIDUAL_CASES[name]
    rng = np.random.default_rng(0)
    args = [jnp.asarray(rng.standard_normal(s), jnp.float32) for s in shapes]
    mine, theirs = _residual_bytes(ours, *args), _residual_bytes(plain, *args)
    assert mine <= theirs, (name, mine, theirs)
    if name.startswith("max_pool"):
        assert mine <= args[0].nbytes // 4, (name, mine, args[0].nbytes)


def test_relu_residual_is_a_boolean_mask():
    x = jnp.linspace(-1, 1, 24, dtype=jnp.float32).reshape(2, 3, 4)
    _, pullback = jax.vjp(jc.relu, x)
    leaves = [a for a in jax.tree.leaves(pullback) if hasattr(a, "dtype")]
    assert [(a.dtype, a.shape) for a in leaves] == [(jnp.dtype(bool), x.shape)]


def _saved(f, *args):
    from jax._src.ad_checkpoint import saved_residuals  # the data print_saved_residuals shows

    return [why for _, why in saved_residuals(f, *args)]


def test_checkpoint_names_drive_remat_policies():
    """With a policy saving only the relu masks and the max-pool offsets, those (and the
    arguments) are all a checkpointed network keeps; every name is in RESIDUAL_NAMES."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((4, 12, 12, 3)), jnp.float32)
    w1 = jnp.asarray(rng.standard_normal((3, 3, 3, 8)), jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((8, 10)), jnp.float32)

    def loss(x, w1, w2):
        h = jc.max_pool(jc.relu(jc.conv(x, w1, padding=1)), 2)
        h = jc.lp_pool(jc.relu(h), 2, 2)
        z = jc.linear(jc.global_avg_pool(h), w2)
        return jc.softmax_cross_entropy(z, jnp.arange(4)) + jc.mse_loss(z, jnp.zeros_like(z))

    everything = _saved(loss, x, w1, w2)
    names = {why.split("'")[1] for why in everything if why.startswith("named '")}
    assert names and names <= set(jc.RESIDUAL_NAMES), names
    keep = ("jaxconv.relu.mask", "jaxconv.max_pool.offsets")
    policy = jax.checkpoint_policies.save_only_these_names(*keep)
    lean = _saved(jax.checkpoint(loss, policy=policy), x, w1, w2)
    kept = {why.split("'")[1] for why in lean if why.startswith("named '")}
    assert kept == set(keep), lean
    assert all(why.startswith(("named '", "from the argument")) for why in lean), lean


SPATIAL_NAMES = (
    "jaxconv.conv_local.x",
    "jaxconv.conv_local.w",
    "jaxconv.adaptive_max_pool.offsets",
    "jaxconv.adaptive_max_pool.index",
    "jaxconv.fractional_max_pool.index",
)


def test_checkpoint_names_of_conv_local_and_the_adaptive_and_fractional_max_pools():
    """conv_local keeps x and w, the adaptive max pool max_pool's offsets (tiling windows) or
    its winner indices (uneven ones; "split": tie bitmasks), the fractional one its winner
    indices ("split": bitmasks and window starts): all named, and with a policy saving only
    these names they (and the arguments) are all a checkpointed function keeps."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 9, 9, 2)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((8, 8, 2, 2, 2, 3)), jnp.float32)
    u = jnp.asarray(rng.uniform(size=(2, 3, 2)), jnp.float32)

    def loss(x, w):
        h = jc.conv_local(x, w)  # (2, 8, 8, 3)
        pools = [jc.adaptive_max_pool(h, 4), jc.adaptive_max_pool(h, 3, ties="split")]
        pools += [jc.adaptive_max_pool(h, 3, ties="last")]
        pools += [jc.fractional_max_pool(h, 2, output_size=5, samples=u, ties=t)
                  for t in ("first", "split")]  # fmt: skip
        return sum(jnp.sum(p) for p in pools)  # (linear: nothing else to keep)

    everything = _saved(loss, x, w)
    names = {why.split("'")[1] for why in everything if why.startswith("named '")}
    assert names == set(SPATIAL_NAMES), names
    assert all(why.startswith(("named '", "from the argument")) for why in everything), everything
    policy = jax.checkpoint_policies.save_only_these_names(*SPATIAL_NAMES[2:])
    lean = _saved(jax.checkpoint(loss, policy=policy), x, w)
    kept = {why.split("'")[1] for why in lean if why.startswith("named '")}
    assert kept == set(SPATIAL_NAMES[2:]), lean
    assert all(why.startswith(("named '", "from the argument")) for why in lean), lean
