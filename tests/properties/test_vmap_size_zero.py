"""vmap over an axis of size 0: every public op, every array argument.

A batching rule that folds the mapped axis into a batch, channel or group axis cannot do so
with an empty axis (its extent is lost: a modulo by zero; a group count of 0); `jax.vmap` of a
jaxconv op over a size-0 axis must still give what vmap of the plain lax/jnp reference gives:
an empty result of the unbatched result's shape and dtype. Checked for each array argument
mapped alone and all mapped together (at axis 0 and at the last axis), for the forward, for
`jax.grad` and `jax.jvp` under vmap, each case one `jax.jit`.

The drop-in `conv_general_dilated` is checked over the parameter space of JAX's own
``lax_vmap_test.testConvGeneralDilatedBatching`` (operand shapes, four dimension numbers,
feature and batch groups, strides, padding incl. cropping, lhs and rhs dilation, every pair of
mapped axes incl. None) against ``jax.vmap(lax.conv_general_dilated)``, with mapped sizes 0 and
1..4 (values compared for the non-empty ones).
"""

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxconv as jc
from jaxconv.testing import oracle
from tests.support import registry
from tests.support.numerics import assert_close


def _insert(a, axis: int, size: int, rng):
    """NumPy: `a` with a new axis of `size` at `axis`, size copies each scaled differently
    (integer arrays: plain copies)."""
    a = np.asarray(a)
    scale = rng.uniform(0.5, 1.5, size) if a.dtype.kind == "f" else np.ones(size, a.dtype)
    stacked = (scale.reshape((size,) + (1,) * a.ndim) * a[None]).astype(a.dtype)
    return np.moveaxis(stacked, 0, axis)


def _spec(tree):
    return jax.tree.map(lambda a: (tuple(a.shape), jnp.dtype(a.dtype)), tree)


def _assert_same(got, want):
    """Same structure, shapes and dtypes, and values (empty arrays: nothing more to compare)."""
    assert _spec(got) == _spec(want), (_spec(got), _spec(want))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        if w.size and jnp.issubdtype(w.dtype, jnp.inexact):
            assert_close(g, w)


# --------------------------------------------------------------------------- conv_general_dilated

_DIMENSION_NUMBERS = [  # (lhs, rhs, out) specs, and the permutations of NCHW / OIHW shapes
    (("NCHW", "OIHW", "NCHW"), ([0, 1, 2, 3], [0, 1, 2, 3])),
    (("NHWC", "HWIO", "NHWC"), ([0, 2, 3, 1], [2, 3, 1, 0])),
    (("NHWC", "OIHW", "NCHW"), ([0, 2, 3, 1], [0, 1, 2, 3])),
    (("HWCN", "HWIO", "HWCN"), ([2, 3, 1, 0], [2, 3, 1, 0])),
]
_GROUPS = [(1, 1), (2, 1), (1, 2)]  # (batch_group_count, feature_group_count)
_STRIDES = [(1, 1), (1, 2), (2, 1)]
_PADDING = [((0, 0), (0, 0)), ((1, 0), (0, 1)), ((0, -1), (0, 0))]
_LHS_DIL = [(1, 1), (2, 1)]
_RHS_DIL = [(1, 1), (2, 2)]
_BDIMS = [  # every pair of mapped axes of the rank-5 batched operands, None: not mapped
    (bl, br) for bl in (None, *range(5)) for br in (None, *range(5)) if (bl, br) != (None, None)
]


def _general_cases(bgc: int, fgc: int, dn_index: int):
    """One case per pair of mapped axes, the other settings cycled through their values (every
    value of each appears), at size 0; a quarter of them (a different quarter per groups and
    dimension numbers: every pair thrice over the 12 tests) also at a size in 1..4."""
    dn, (lhs_perm, rhs_perm) = _DIMENSION_NUMBERS[dn_index]
    shift = dn_index + _GROUPS.index((bgc, fgc))
    shapes = list(itertools.product([1, 2], repeat=3))  # (b, i, j) as in JAX's test
    for k, (bl, br) in enumerate(_BDIMS):
        b, i, j = shapes[k % len(shapes)]
        lhs_shape = tuple(np.take((b * bgc, i * fgc, 6, 7), lhs_perm))
        rhs_shape = tuple(np.take((j * bgc * fgc, i, 1, 2), rhs_perm))
        kw = dict(
            window_strides=_STRIDES[k % 3],
            padding=_PADDING[(k // 3) % 3],
            lhs_dilation=_LHS_DIL[k % 2],
            rhs_dilation=_RHS_DIL[(k // 2) % 2],
            dimension_numbers=dn,
            feature_group_count=fgc,
            batch_group_count=bgc,
            precision=lax.Precision.HIGHEST,
        )
        for size in (0, 1 + (k // 4) % 4) if (k + shift) % 4 == 0 else (0,):
            yield lhs_shape, rhs_shape, kw, (bl, br), size


@pytest.mark.parametrize("dn_index", range(len(_DIMENSION_NUMBERS)))
@pytest.mark.parametrize("groups", _GROUPS, ids=lambda g: f"bgc{g[0]}_fgc{g[1]}")
def test_conv_general_dilated_batching(groups, dn_index):
    """``jax.vmap(jaxconv.conv_general_dilated)`` equals ``jax.vmap(lax.conv_general_dilated)``
    over JAX's batching test space, mapped sizes 0 and 1..4, all cases of one (groups,
    dimension numbers) in one jit."""
    rng = np.random.default_rng(dn_index)
    cases = list(_general_cases(*groups, dn_index))
    operands = []
    for lhs_shape, rhs_shape, _, (bl, br), size in cases:
        lhs, rhs = rng.standard_normal(lhs_shape), rng.standard_normal(rhs_shape)
        operands.append(
            (
                lhs if bl is None else _insert(lhs, bl, size, rng),
                rhs if br is None else _insert(rhs, br, size, rng),
            )
        )

    @jax.jit
    def run(operands):
        return [
            [
                jax.vmap(partial(conv, **kw), in_axes=bdims)(*ops)
                for (_, _, kw, bdims, _), ops in zip(cases, operands)
            ]
            for conv in (jc.conv_general_dilated, lax.conv_general_dilated)
        ]

    got, want = run(operands)
    for case, g, w in zip(cases, got, want):
        lhs_shape, rhs_shape, kw, bdims, size = case
        if size == 0:  # JAX's expectation: zeros of the unbatched result's shape and dtype
            out = jax.eval_shape(
                partial(lax.conv_general_dilated, **kw),
                jax.ShapeDtypeStruct(lhs_shape, jnp.float64),
                jax.ShapeDtypeStruct(rhs_shape, jnp.float64),
            )
            assert _spec(g) == ((0, *out.shape), jnp.dtype(out.dtype)), case
        _assert_same(g, w)


def test_conv_general_dilated_size_zero_eager_and_nested():
    """Outside jit too, and a size-0 axis inside or outside another vmap."""
    kw = dict(window_strides=(1, 1), padding="SAME", feature_group_count=2)
    lhs, rhs = jnp.ones((0, 2, 4, 5, 5)), jnp.ones((6, 2, 3, 3))
    f = partial(jc.conv_general_dilated, **kw)
    want = jax.vmap(partial(lax.conv_general_dilated, **kw), (0, None))(lhs, rhs)
    _assert_same(jax.vmap(f, (0, None))(lhs, rhs), want)
    rhs_b = jnp.ones((0, 6, 2, 3, 3))
    want = jax.vmap(partial(lax.conv_general_dilated, **kw))(lhs, rhs_b)
    _assert_same(jax.vmap(f)(lhs, rhs_b), want)
    for outer, inner in ((0, 3), (3, 0)):
        lhs2 = jnp.ones((outer, inner, 2, 4, 5, 5))
        rhs2 = jnp.ones((outer, inner, 6, 2, 3, 3))
        g = jax.jit(jax.vmap(jax.vmap(f)))(lhs2, rhs2)
        want = jax.vmap(jax.vmap(partial(lax.conv_general_dilated, **kw)))(lhs2, rhs2)
        _assert_same(g, want)


# --------------------------------------------------------------------------- every public op


def _input_grad_ref(w, g, shape, **kw):
    return jax.vjp(lambda x: oracle.conv(x, w, **kw), jnp.zeros(shape, g.dtype))[1](g)[0]


def _weight_grad_ref(x, g, shape, **kw):
    return jax.vjp(lambda w: oracle.conv(x, w, **kw), jnp.zeros(shape, g.dtype))[1](g)[0]


_G2 = dict(stride=2, padding=1, groups=2)
_CF = dict(padding=1, layout="channels_first")
_CGD = dict(window_strides=(2, 1), padding=((1, 0), (0, 2)), lhs_dilation=(1, 2))


def _ops():
    """name -> (jaxconv function, reference function, argument shapes/dtypes)."""
    f64, i32 = jnp.float64, jnp.int32
    return {
        "conv_groups": (
            lambda x, w, b: jc.conv(x, w, b, **_G2),
            lambda x, w, b: oracle.conv(x, w, b, **_G2),
            [((2, 6, 5, 4), f64), ((3, 3, 2, 6), f64), ((6,), f64)],
        ),
        "conv_channels_first_flip": (
            lambda x, w: jc.conv(x, w, flip=True, **_CF),
            lambda x, w: oracle.conv(x, w, flip=True, **_CF),
            [((2, 3, 5, 6), f64), ((4, 3, 3, 2), f64)],
        ),
        "conv_reflect": (
            lambda x, w: jc.conv(x, w, padding=1, padding_mode="reflect"),
            lambda x, w: oracle.conv(x, w, padding=1, padding_mode="reflect"),
            [((2, 5, 4, 2), f64), ((3, 3, 2, 3), f64)],
        ),
        "conv_transpose": (
            lambda y, w, b: jc.conv_transpose(y, w, b, **_G2),
            lambda y, w, b: oracle.conv_transpose(y, w, b, **_G2),
            [((2, 3, 3, 6), f64), ((3, 3, 2, 6), f64), ((4,), f64)],
        ),
        "conv_input_grad": (
            lambda w, g: jc.conv_input_grad((2, 6, 5, 4), w, g, **_G2),
            lambda w, g: _input_grad_ref(w, g, (2, 6, 5, 4), **_G2),
            [((3, 3, 2, 6), f64), ((2, 3, 3, 6), f64)],
        ),
        "conv_weight_grad": (
            lambda x, g: jc.conv_weight_grad(x, (3, 3, 2, 6), g, **_G2),
            lambda x, g: _weight_grad_ref(x, g, (3, 3, 2, 6), **_G2),
            [((2, 6, 5, 4), f64), ((2, 3, 3, 6), f64)],
        ),
        "conv_general_dilated_fgc": (  # the general path (lhs dilation), feature groups
            lambda l, r: jc.conv_general_dilated(l, r, feature_group_count=2, **_CGD),
            lambda l, r: lax.conv_general_dilated(l, r, feature_group_count=2, **_CGD),
            [((2, 4, 5, 4), f64), ((6, 2, 2, 3), f64)],
        ),
        "conv_general_dilated_bgc": (
            lambda l, r: jc.conv_general_dilated(l, r, batch_group_count=2, **_CGD),
            lambda l, r: lax.conv_general_dilated(l, r, batch_group_count=2, **_CGD),
            [((4, 3, 5, 4), f64), ((6, 3, 2, 3), f64)],
        ),
        "conv_general_dilated_layer": (  # an ordinary layer: runs on the conv family's rules
            lambda l, r: jc.conv_general_dilated(l, r, (1, 1), "SAME", feature_group_count=2),
            lambda l, r: lax.conv_general_dilated(l, r, (1, 1), "SAME", feature_group_count=2),
            [((2, 4, 5, 4), f64), ((6, 2, 3, 3), f64)],
        ),
        "max_pool": (
            lambda x: jc.max_pool(x, 2, padding=1),
            lambda x: oracle.max_pool(x, 2, padding=1, ties="first"),
            [((2, 5, 6, 3), f64)],
        ),
        "max_pool_split_dilated": (
            lambda x: jc.max_pool(x, 2, stride=1, dilation=2, ties="split"),
            lambda x: oracle.max_pool(x, 2, stride=1, dilation=2, ties="split"),
            [((2, 5, 6, 3), f64)],
        ),
        "max_pool_return_indices": (  # the reference's indices: their shape and dtype only
            lambda x: jc.max_pool(x, 2, return_indices=True),
            lambda x: (oracle.max_pool(x, 2, ties="first"), jnp.zeros((2, 2, 3, 3), i32)),
            [((2, 5, 6, 3), f64)],
        ),
        "avg_pool": (
            lambda x: jc.avg_pool(x, 3, stride=2, padding=1, count_include_pad=False),
            lambda x: oracle.avg_pool(x, 3, stride=2, padding=1, count_include_pad=False),
            [((2, 5, 6, 3), f64)],
        ),
        "lp_pool": (
            lambda x: jc.lp_pool(x, 2, 2, ceil_mode=True),
            lambda x: oracle.lp_pool(x, 2, 2, ceil_mode=True),
            [((2, 5, 6, 3), f64)],
        ),
        "global_avg_pool": (
            lambda x: jc.global_avg_pool(x, layout="channels_first"),
            lambda x: oracle.global_avg_pool(x, layout="channels_first"),
            [((2, 3, 5, 6), f64)],
        ),
        "global_max_pool": (jc.global_max_pool, oracle.global_max_pool, [((2, 5, 6, 3), f64)]),
        "max_unpool": (
            lambda y, i: jc.max_unpool(y, i, (5, 6)),
            lambda y, i: oracle.max_unpool(y, i, (5, 6)),
            [((2, 3, 3, 3), f64), ((2, 3, 3, 3), i32)],
        ),
        "relu": (jc.relu, oracle.relu, [((2, 5, 3), f64)]),
        "linear": (jc.linear, oracle.linear, [((2, 3), f64), ((3, 4), f64), ((4,), f64)]),
        "linear_rank1": (jc.linear, oracle.linear, [((3,), f64), ((3, 4), f64)]),
        "linear_rank3": (jc.linear, oracle.linear, [((2, 5, 3), f64), ((3, 4), f64)]),
        "mse_loss": (jc.mse_loss, oracle.mse_loss, [((2, 3), f64), ((2, 3), f64)]),
        "mse_loss_mean": (
            lambda y, t: jc.mse_loss(y, t, reduction="mean"),
            lambda y, t: oracle.mse_loss(y, t, reduction="mean"),
            [((2, 3), f64), ((2, 3), f64)],
        ),
        "softmax_cross_entropy": (
            jc.softmax_cross_entropy,
            oracle.softmax_cross_entropy,
            [((2, 5), f64), ((2,), i32)],
        ),
    }


OPS = _ops()


def _in_axes(n: int):
    """Each argument mapped alone (at axis 0, and at its last axis), then all of them."""
    alone = [tuple(0 if j == i else None for j in range(n)) for i in range(n)]
    last = [tuple(-1 if j == i else None for j in range(n)) for i in range(n)]
    return alone + last + ([(0,) * n] if n > 1 else [])


_CASES = [(name, axes) for name, (_, _, specs) in OPS.items() for axes in _in_axes(len(specs))]


def _args(specs, rng):
    out = []
    for shape, dtype in specs:
        if jnp.issubdtype(dtype, jnp.integer):  # labels in [0, 5), unpool indices in [0, 30)
            out.append(jnp.asarray(rng.integers(0, 5 if len(shape) == 1 else 30, shape), dtype))
        else:
            out.append(jnp.asarray(rng.uniform(0.5, 1.5, shape), dtype))  # lp_pool: x > 0
    return out


def _transforms(f, args):
    """f, `jax.grad` of a scalar of f (w.r.t. every float argument) and `jax.jvp` of f."""
    floats = tuple(i for i, a in enumerate(args) if jnp.issubdtype(a.dtype, jnp.floating))

    def scalar(*a):
        y = f(*a)
        y = y[0] if isinstance(y, tuple) else y
        return jnp.sum(y * y)

    def jvp(*a):
        tangents = tuple(
            jnp.ones_like(x) if i in floats else np.zeros(x.shape, jax.dtypes.float0)
            for i, x in enumerate(a)
        )
        return jax.jvp(f, a, tangents)

    return {"fwd": f, "grad": jax.grad(scalar, argnums=floats), "jvp": jvp}


# shapes and dtypes only: the reduced precision of JAX's float64 max-pool JVP off the CPU (its
# warning) does not matter for empty arrays
@pytest.mark.filterwarnings("ignore:Using reduced precision for gradient of reduce-window")
@pytest.mark.parametrize(("name", "in_axes"), _CASES, ids=[f"{n}-{a}" for n, a in _CASES])
def test_vmap_size_zero(name, in_axes):
    """vmap over a size-0 axis of f, grad(f) and jvp(f), under jit: the shapes and dtypes of
    vmap of the reference (empty arrays), each equal to the unbatched result's with 0 in
    front."""
    f, ref, specs = OPS[name]
    rng = np.random.default_rng(0)
    args = _args(specs, rng)
    batched = [
        a if d is None else _insert(a, a.ndim if d == -1 else d, 0, rng)
        for a, d in zip(args, in_axes)
    ]

    @jax.jit
    def run(batched):
        return [
            {k: jax.vmap(g, in_axes=in_axes)(*batched) for k, g in _transforms(fn, args).items()}
            for fn in (f, ref)
        ]

    got, want = run(batched)
    _assert_same(got, want)
    unbatched = jax.eval_shape(lambda: {k: g(*args) for k, g in _transforms(f, args).items()})
    assert _spec(got) == jax.tree.map(lambda s: ((0, *s.shape), jnp.dtype(s.dtype)), unbatched)


@pytest.mark.parametrize("name", list(registry.OPS))
def test_registry_ops_vmap_size_zero(name):
    """Every op of the registry (tests/support/registry.py), each argument mapped alone and all
    together over an empty axis: the result of vmap of its plain-JAX reference (shape, dtype)."""
    op = registry.OPS[name]
    n = len(op.args)
    for axes in [*(tuple(0 if j == i else None for j in range(n)) for i in range(n)), (0,) * n]:
        args = tuple(
            jnp.zeros((0, *a.shape), a.dtype) if ax == 0 else a for a, ax in zip(op.args, axes)
        )
        got = jax.eval_shape(jax.vmap(op.fn, in_axes=axes), *args)
        want = jax.eval_shape(jax.vmap(op.ref, in_axes=axes), *args)
        assert (got.shape, got.dtype) == (want.shape, want.dtype), (name, axes)
        out = jax.jit(jax.vmap(op.fn, in_axes=axes))(*args)
        assert out.shape == want.shape and out.size == 0, (name, axes)
