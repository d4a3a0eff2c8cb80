"""fractional_max_pool: PyTorch's windows given the same samples, rules, indices, errors.

How it is proven:
- hypothesis over ranks 1-3, sizes, windows, output sizes, layouts, samples: values, indices
  and VJP against the literal NumPy loops (`jaxconv/reference/_adaptive.py`, float64);
- `check_rules(order=2)` against JAX's autodiff of the plain jnp oracle (`oracle_adaptive.py`);
  ties "last" and "split" over inputs full of ties against the NumPy loops (hypothesis), and
  "split"'s rules at such a point against jnp.max's autodiff; integer and bool inputs;
- PyTorch's fractional_max_pool2d/3d (values, gradients, indices; 16-bit starts too);
- max_unpool of the indices is the VJP; jvp/hessian with JAX's own rules switched off; vmap of
  x and of samples (incl. size 0), jit; keys; output_ratio; every bad argument;
- windows on a grid (a whole alpha): `max_pool`'s winners equal the gathered ones (values,
  indices, ties, NaN, integers, hypothesis), a sample whose rounding moves a start off the
  grid takes the gathered path, the conditional in the jaxpr, vmap of the samples.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxconv.pooling import fractional as fr
from jaxconv.pooling.fractional import fractional_max_pool
from jaxconv.pooling.unpool import max_unpool
from jaxconv.reference import _adaptive as ref
from jaxconv.testing import check_rules, oracle
from tests.properties.test_forward_mode import jax_rules_off
from tests.support.numerics import assert_close

F0 = jax.dtypes.float0


def _value_vjp(f, x, g):
    y, vjp = jax.vjp(f, x)
    return y, vjp((g, np.zeros(y[1].shape, F0)))[0]


@st.composite
def fractional_cases(draw):
    nd = draw(st.integers(1, 3))
    window = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    out = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    size = tuple(o + k - 1 + draw(st.integers(0, 4)) for o, k in zip(out, window))
    return dict(
        window=window,
        out=out,
        size=size,
        layout=draw(st.sampled_from(["channels_last", "channels_first"])),
        n=draw(st.integers(1, 2)),
        c=draw(st.integers(1, 2)),
        seed=draw(st.integers(0, 2**16)),
    )


@settings(max_examples=12)  # CI time: 12 draws (the profile's 18 elsewhere)
@given(fractional_cases())
def test_against_numpy_reference(case):
    rng = np.random.default_rng(case["seed"])
    n, c, lay = case["n"], case["c"], case["layout"]
    shape_cl = (n, *case["size"], c)
    xc = rng.permutation(int(np.prod(shape_cl))).reshape(shape_cl).astype(np.float64)
    x = jnp.asarray(xc if lay == "channels_last" else np.moveaxis(xc, -1, 1))
    u = rng.uniform(size=(n, c, len(case["size"])))
    k, o = case["window"], case["out"]
    f = lambda x: fractional_max_pool(  # noqa: E731
        x, k, output_size=o, samples=u, return_indices=True, layout=lay
    )
    y_shape = jax.eval_shape(f, x)[0].shape
    g = jnp.asarray(rng.normal(size=y_shape))
    (y, idx), dx = jax.jit(lambda x, g: _value_vjp(f, x, g))(x, g)
    to_cl = (
        (lambda a: np.asarray(a))
        if lay == "channels_last"
        else (lambda a: np.moveaxis(np.asarray(a), 1, -1))
    )
    y_ref, idx_ref = ref.fractional_max_pool(xc, k, o, u)
    assert_close(to_cl(y), y_ref)
    np.testing.assert_array_equal(to_cl(idx), idx_ref)
    assert_close(to_cl(dx), ref.fractional_max_pool_grad(xc.shape, idx_ref, to_cl(g)))
    np.testing.assert_allclose(max_unpool(g, idx, x.shape, layout=lay), dx, rtol=1e-12)


@settings(max_examples=8)  # CI time
@given(fractional_cases(), st.sampled_from(["first", "last", "split"]))
def test_ties_against_numpy_reference(case, ties):
    """Values from {0, 1, 2}, so most windows hold several maxima: values, indices (the first
    or last maximum; "split": the first), the VJP (to that winner; "split": g / |T| to each
    tied cell) against the NumPy loops, and the JVP as the VJP's transpose (<Jt, g> =
    <t, J^T g> with the reference's J^T)."""
    rng = np.random.default_rng(case["seed"])
    n, c, lay = case["n"], case["c"], case["layout"]
    xc = rng.integers(0, 3, size=(n, *case["size"], c)).astype(np.float64)
    x = jnp.asarray(xc if lay == "channels_last" else np.moveaxis(xc, -1, 1))
    u = rng.uniform(size=(n, c, len(case["size"])))
    k, o = case["window"], case["out"]
    f = lambda x: fractional_max_pool(  # noqa: E731
        x, k, output_size=o, samples=u, ties=ties, return_indices=True, layout=lay
    )
    y_shape = jax.eval_shape(f, x)[0].shape
    g, t = jnp.asarray(rng.normal(size=y_shape)), jnp.asarray(rng.normal(size=x.shape))

    @jax.jit
    def run(x, g, t):
        return _value_vjp(f, x, g), jax.jvp(lambda x: f(x)[0], (x,), (t,))[1]

    ((y, idx), dx), ty = run(x, g, t)

    def to_cl(a):
        return np.asarray(a) if lay == "channels_last" else np.moveaxis(np.asarray(a), 1, -1)

    y_ref, idx_ref = ref.fractional_max_pool(xc, k, o, u, ties=ties)
    assert_close(to_cl(y), y_ref)
    np.testing.assert_array_equal(to_cl(idx), idx_ref)
    if ties == "split":
        dx_ref = ref.fractional_max_pool_split_grad(xc, to_cl(g), k, o, u)
    else:
        dx_ref = ref.fractional_max_pool_grad(xc.shape, idx_ref, to_cl(g))
    assert_close(to_cl(dx), dx_ref)
    assert_close(jnp.vdot(ty, g), np.vdot(to_cl(t), dx_ref))


def test_split_check_rules_at_ties():
    """At a point full of ties: every rule of ties="split" (both modes, order 2, vmap, jit)
    against JAX's autodiff of jnp.max over each window's gathered cells."""
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.integers(0, 3, size=(2, 2, 7, 6)), jnp.float64)
    u = jnp.asarray(rng.uniform(size=(2, 2, 2)))
    kw = dict(ties="split", layout="channels_first")
    check_rules(
        lambda x: fractional_max_pool(x, (3, 2), output_size=(3, 3), samples=u, **kw),
        x,
        reference=lambda x: oracle.fractional_max_pool(x, (3, 2), (3, 3), u, **kw),
        order=2,
    )


def test_split_ties_by_hand():
    """Windows [0, 2), [2, 4), [4, 6) (u = 0, alpha = 2): g / |T| to each tied cell, the
    tangent the mean over them; a window's two NaNs share too; "last" takes the last."""
    x = jnp.array([5.0, 5.0, 1.0, 2.0, 3.0, 3.0]).reshape(1, 6, 1)
    u = jnp.zeros((1, 1, 1))

    def f(x, ties="split"):
        return fractional_max_pool(x, 2, output_size=3, samples=u, ties=ties)

    g = jnp.array([2.0, 1.0, 4.0]).reshape(1, 3, 1)
    t = jnp.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]).reshape(x.shape)

    @jax.jit
    def run(x, g, t):
        return (
            jax.vjp(f, x)[1](g)[0],
            jax.vjp(partial(f, ties="last"), x)[1](g)[0],
            jax.jvp(f, (x,), (t,))[1],
            jax.grad(lambda x: f(x)[0, 0, 0])(x.at[0, :2, 0].set(jnp.nan)),
        )

    split, last, ty, nan = run(x, g, t)
    assert split.ravel().tolist() == [1, 1, 0, 1, 2, 2]
    assert last.ravel().tolist() == [0, 2, 0, 1, 0, 4]
    assert ty.ravel().tolist() == [1.5, 8, 24]
    assert nan.ravel().tolist() == [0.5, 0.5, 0, 0, 0, 0]


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
def test_integer_and_bool(dtype):
    """lax's max values and the reference's indices for every tie policy ("split": the first
    maximum's), the starts in the samples' dtype; a key draws float32 samples; the tangent
    JAX gives an integer input (float0)."""
    rng = np.random.default_rng(10)
    x = jnp.asarray(rng.integers(-3, 3, size=(2, 9, 8, 3))).astype(dtype)
    u = rng.uniform(size=(2, 3, 2)).astype(np.float32)
    xr = np.asarray(x).astype(np.float64)
    for ties in ("first", "last", "split"):
        kw = dict(output_size=(4, 5), samples=u, ties=ties, return_indices=True)
        y, i = jax.jit(lambda x, kw=kw: fractional_max_pool(x, (3, 2), **kw))(x)
        y_ref, i_ref = ref.fractional_max_pool(xr, (3, 2), (4, 5), u, np.float32, ties)
        assert y.dtype == dtype
        np.testing.assert_array_equal(np.asarray(y).astype(np.float64), y_ref)
        np.testing.assert_array_equal(i, i_ref)
    key = jax.random.key(3)
    drawn = jax.random.uniform(key, (2, 3, 2), jnp.float32)
    for ties in ("first", "split"):
        kw = dict(output_size=(4, 5), ties=ties)
        np.testing.assert_array_equal(
            fractional_max_pool(x, (3, 2), key=key, **kw),
            fractional_max_pool(x, (3, 2), samples=drawn, **kw),
        )
        _, t = jax.jvp(
            lambda x, kw=kw: fractional_max_pool(x, (3, 2), samples=u, **kw),
            (x,),
            (np.zeros(x.shape, F0),),
        )
        assert t.dtype == F0


RULE_CASES = [
    ((2, 7, 2), 2, 4, "channels_last"),
    ((1, 9, 8, 2), (3, 2), (4, 5), "channels_first"),
    ((1, 5, 6, 5, 1), 2, (3, 3, 2), "channels_last"),
]


@pytest.mark.parametrize("shape, k, o, layout", RULE_CASES)
def test_check_rules(shape, k, o, layout):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.permutation(int(np.prod(shape))).reshape(shape) / 7.0)
    if layout == "channels_first":
        x = jnp.moveaxis(x, -1, 1)
    u = jnp.asarray(rng.uniform(size=(shape[0], shape[-1], len(shape) - 2)))
    check_rules(
        lambda x, u: fractional_max_pool(x, k, output_size=o, samples=u, layout=layout),
        x,
        u,
        reference=lambda x, u: oracle.fractional_max_pool(x, k, o, u, layout=layout),
        order=2,
    )


@pytest.mark.parametrize(
    "nd, size, k, o",
    [(2, (10, 13), 2, (6, 7)), (2, (25, 17), (3, 2), (10, 13)), (3, (7, 8, 9), 2, (4, 5, 6))],
)
def test_against_torch(nd, size, k, o):
    torch = pytest.importorskip("torch")
    tf = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")
    rng = np.random.default_rng(nd)
    x = rng.normal(size=(2, 3, *size))
    u = rng.uniform(size=(2, 3, nd))
    xt = torch.tensor(x, requires_grad=True)
    yt, it = tf(xt, k, output_size=o, return_indices=True, _random_samples=torch.tensor(u))
    g = rng.normal(size=tuple(yt.shape))
    yt.backward(torch.tensor(g))
    f = lambda x: fractional_max_pool(  # noqa: E731
        x, k, output_size=o, samples=u, return_indices=True, layout="channels_first"
    )
    (y, idx), dx = jax.jit(lambda x, g: _value_vjp(f, x, g))(jnp.asarray(x), jnp.asarray(g))
    assert_close(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    assert_close(dx, xt.grad.numpy())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_window_starts_in_input_dtype_match_torch(dtype):
    """PyTorch computes the starts in x's type: so do we (16-bit included)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 4, 37, 41))
    u = rng.uniform(size=(3, 4, 2)) * 0.99
    tdt = getattr(torch, dtype)
    _, it = torch.nn.functional.fractional_max_pool2d(
        torch.tensor(x).to(tdt),
        2,
        output_size=(23, 29),
        return_indices=True,
        _random_samples=torch.tensor(u).to(tdt),
    )
    jdt = jnp.dtype(dtype)
    f = jax.jit(
        lambda x, u: fractional_max_pool(
            x, 2, output_size=(23, 29), samples=u, return_indices=True, layout="channels_first"
        )[1]
    )
    np.testing.assert_array_equal(f(jnp.asarray(x, jdt), jnp.asarray(u, jdt)), it.numpy())


def test_sample_columns_and_whole_alpha():
    """2-D: samples[..., 0] moves W (last dim), [..., 1] H; where alpha is whole, no sample
    moves anything; 3-D reads its samples in order."""
    # increasing row-major: each box's winner is its last cell, so the index shows the window
    x = jnp.arange(2 * 10 * 10, dtype=float).reshape(2, 10, 10, 1)

    def idx(u, o=(4, 4), k=2, x=x):
        u = jnp.asarray(u, float).reshape(x.shape[0], 1, x.ndim - 2)
        return fractional_max_pool(x, k, output_size=o, samples=u, return_indices=True)[1]

    a, b = idx([[0.1, 0.1], [0.1, 0.1]]), idx([[0.9, 0.1], [0.9, 0.1]])
    rows = lambda i: np.asarray(i) // 10  # noqa: E731
    np.testing.assert_array_equal(rows(a), rows(b))  # column 0 left H alone
    assert not np.array_equal(np.asarray(a) % 10, np.asarray(b) % 10)  # and moved W
    # (10 - 2) / (5 - 1) = 2: a whole alpha, the samples move nothing
    np.testing.assert_array_equal(idx([[0.1, 0.7]] * 2, o=5), idx([[0.9, 0.2]] * 2, o=5))
    x3 = x.reshape(2, 10, 10, 1, 1)[:, :, :, :, :].repeat(3, axis=3)  # (2, 10, 10, 3, 1)
    a = fractional_max_pool(
        x3, (2, 2, 1), output_size=(4, 4, 3), samples=jnp.full((2, 1, 3), 0.1), return_indices=True
    )[1]
    b = fractional_max_pool(
        x3,
        (2, 2, 1),
        output_size=(4, 4, 3),
        samples=jnp.asarray([[[0.1, 0.9, 0.5]]] * 2),
        return_indices=True,
    )[1]
    assert np.array_equal(np.asarray(a) // 30, np.asarray(b) // 30)  # dim 0 unmoved
    assert not np.array_equal(np.asarray(a) // 3 % 10, np.asarray(b) // 3 % 10)  # dim 1 moved


def test_runs_with_jax_rules_off():
    x = jnp.asarray(np.random.default_rng(5).permutation(40).reshape(1, 5, 4, 2) / 10.0)
    u = jnp.full((1, 2, 2), 0.3)
    jax.clear_caches()
    with jax_rules_off():
        for ties in ("first", "split"):
            f = lambda x, t=ties: fractional_max_pool(  # noqa: E731
                x, 2, output_size=(3, 2), samples=u, ties=t
            )
            s = lambda x, f=f: jnp.sum(jnp.sin(f(x)))  # noqa: E731
            jax.jit(lambda x, f=f: jax.jvp(f, (x,), (x,)))(x)
            jax.jit(jax.hessian(s))(x)
            jax.jit(jax.grad(lambda x, s=s: jnp.sum(jax.grad(s)(x) ** 2)))(x)
    jax.clear_caches()


@pytest.mark.parametrize("size, ties", [(0, "split"), (3, "first"), (3, "split")])
def test_vmap_of_x_and_samples(size, ties):
    """vmap of x and of the samples (the split residual's starts mapped too), size 0 too."""
    rng = np.random.default_rng(6)
    xs = jnp.asarray(rng.normal(size=(size, 2, 7, 6, 3)))
    if ties == "split":
        xs = jnp.round(xs)  # ties
    us = jnp.asarray(rng.uniform(size=(size, 2, 3, 2)))
    f = lambda x, u: fractional_max_pool(x, 2, output_size=(4, 3), samples=u, ties=ties)  # noqa: E731
    loss = lambda x, u: jnp.sum(f(x, u) ** 2)  # noqa: E731

    @jax.jit
    def run(xs, us):
        batched = (
            jax.vmap(f)(xs, us),
            jax.vmap(f, (None, 0))(xs[0] if size else xs[:0].sum(0), us),
            jax.vmap(jax.grad(loss))(xs, us),
            jax.vmap(lambda x, u: jax.jvp(lambda x: f(x, u), (x,), (x,))[1])(xs, us),
        )
        single = [
            (f(x, u), f(xs[0], u), jax.grad(loss)(x, u), jax.jvp(partial(f, u=u), (x,), (x,))[1])
            for x, u in zip(xs, us)
        ]
        return batched, single

    batched, single = run(xs, us)
    assert batched[0].shape == (size, 2, 4, 3, 3)
    for b, one in enumerate(single):
        for a, e in zip(batched, one):
            assert_close(a[b], e)
    du = jax.grad(lambda u: jnp.sum(f(xs[0] if size else xs.sum(0), u)))(
        us[0] if size else us.sum(0)
    )
    assert not np.any(du)


def test_key_and_output_ratio():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 9, 11, 3)))
    key = jax.random.key(0)
    y1 = fractional_max_pool(x, 2, output_ratio=0.5, key=key)
    y2 = fractional_max_pool(x, 2, output_ratio=(0.5, 0.5), key=key)
    u = jax.random.uniform(key, (2, 3, 2), x.dtype)
    y3 = fractional_max_pool(x, 2, output_size=(4, 5), samples=u)
    assert y1.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(y1, y3)


def test_doc_example():
    x = jnp.array([1.0, 5.0, 2.0, 0.0, 3.0, 4.0]).reshape(1, 6, 1)
    u = jnp.full((1, 1, 1), 0.5)
    assert fractional_max_pool(x, 2, output_size=3, samples=u).ravel().tolist() == [5, 2, 4]


X = jnp.ones((1, 6, 6, 2))
U = jnp.full((1, 2, 2), 0.5)
FN = fractional_max_pool
ERRORS = [
    (
        (X, 2),
        {"output_size": 3},
        ValueError,
        r"fractional_max_pool: `samples` \(=None\) must be given, or a `key` to draw them",
    ),
    (
        (X, 2),
        {"samples": U},
        ValueError,
        r"fractional_max_pool: `output_size` \(=None\) and `output_ratio` \(=None\): exactly one",
    ),
    (
        (X, 2),
        {"output_size": 3, "output_ratio": 0.5, "samples": U},
        ValueError,
        r"`output_size` \(=3\) and `output_ratio` \(=0.5\): exactly one must be given",
    ),
    (
        (X, 4),
        {"output_size": 4, "samples": U},
        ValueError,
        r"`window` \(=4\) does not fit: output size \+ window - 1 \(=4 \+ 4 - 1\)",
    ),
    ((X, 7), {"output_size": 1, "samples": U}, ValueError, r"`window` \(=7\) does not fit"),
    (
        (X, 2),
        {"output_size": 0, "samples": U},
        ValueError,
        r"`output_size` \(=0\) must be >= 1 in every dim",
    ),
    (
        (X, 2),
        {"output_ratio": 1.5, "samples": U},
        ValueError,
        r"`output_ratio` \(=1.5\) must be in \(0, 1\) in every dim",
    ),
    (
        (X, 2),
        {"output_ratio": (0.5,), "samples": U},
        ValueError,
        r"`output_ratio` \(=\(0.5,\)\) must have one entry per spatial dim \(2\)",
    ),
    (
        (X, 2),
        {"output_ratio": "half", "samples": U},
        TypeError,
        r"`output_ratio` \(='half'\) must be a number or one per dim",
    ),
    (
        (X, 2),
        {"output_ratio": 0.1, "samples": U},
        ValueError,
        r"`output_ratio` \(=0.1\) gives an empty output",
    ),
    (
        (X, 2),
        {"output_size": 3, "samples": jnp.full((1, 2, 3), 0.5)},
        ValueError,
        r"`samples.shape` \(=\(1, 2, 3\)\) must be \(1, 2, 2\)",
    ),
    (
        (X, 2),
        {"output_size": 3, "samples": jnp.full((1, 2, 2), 1.0)},
        ValueError,
        r"`samples` \(=.*\) must be >= 0 and < 1 \(found 1.0\)",
    ),
    (
        (X, 2),
        {"output_size": 3, "samples": jnp.full((1, 2, 2), -0.1)},
        ValueError,
        r"must be >= 0 and < 1 \(found -0.1",
    ),
    (
        (X, 2),
        {"output_size": 3, "samples": jnp.zeros((1, 2, 2), jnp.int32)},
        TypeError,
        r"`samples.dtype` \(='int32'\) must be a floating dtype",
    ),
    (
        (X, 2),
        {"output_size": 3, "samples": U, "key": jax.random.key(0)},
        ValueError,
        r"`key` \(=.*\) must be None when `samples` is given",
    ),
    (
        (X.astype(jnp.complex64), 2),
        {"output_size": 3, "samples": U},
        TypeError,
        r"`x.dtype` \(='complex64'\) must be a real floating, integer or bool",
    ),
    (
        (X, 2),
        {"output_size": 3, "samples": U, "ties": "random"},
        ValueError,
        r"fractional_max_pool: `ties` \(='random'\) must be one of \['first', 'last', 'split'\]",
    ),
    (
        (X, (2, 2, 2)),
        {"output_size": 3, "samples": U},
        ValueError,
        r"`window` \(=\(2, 2, 2\)\) must have one entry per spatial dim \(2\)",
    ),
    (
        (X, 2),
        {"output_size": 3, "samples": U, "layout": "NHWC"},
        ValueError,
        r"`layout` \(='NHWC'\) must be one of",
    ),
    (
        (X, 2),
        {"output_size": 3, "samples": U, "return_indices": None},
        TypeError,
        r"`return_indices` \(=None\) must be True or False",
    ),
]


@pytest.mark.parametrize("args, kwargs, exc, match", ERRORS)
def test_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        FN(*args, **kwargs)


@st.composite
def grid_cases(draw):
    """Geometries whose windows lie on a grid: L = (O - 1) a + k (O = 1: L = k)."""
    nd = draw(st.integers(1, 3))
    window = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    out = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    size = tuple(k if o == 1 else (o - 1) * a + k for k, o, a in zip(window, out, stride))
    return dict(
        window=window,
        out=out,
        size=size,
        layout=draw(st.sampled_from(["channels_last", "channels_first"])),
        dtype=draw(st.sampled_from([np.float32, np.float64, np.int32])),
        ties=draw(st.sampled_from(["first", "last"])),
        seed=draw(st.integers(0, 2**16)),
    )


@given(grid_cases())
def test_windows_on_a_grid_take_max_pools_winners(case):
    """Where alpha is whole in every dim the forward takes `max_pool`'s winners: y and the
    indices equal the gathered path's bit for bit (ties, NaN, integers), and so do the VJP."""
    rng = np.random.default_rng(case["seed"])
    n, c = 2, 3
    shape = (n, *case["size"], c) if case["layout"] == "channels_last" else (n, c, *case["size"])
    x = rng.integers(-2, 3, size=shape).astype(case["dtype"])  # many ties
    if case["dtype"] != np.int32:
        x[rng.random(shape) < 0.1] = np.nan
    x = jnp.asarray(x)
    u = jnp.asarray(rng.uniform(size=(n, c, len(case["size"]))), jnp.float32)
    cfg = fr.FractionalCfg(
        case["layout"],
        tuple(range(1, len(shape) - 1)) if case["layout"] == "channels_last" else
        tuple(range(2, len(shape))),
        case["size"], case["window"], case["out"], fr.sample_columns(len(case["size"])),
    )  # fmt: skip
    assert fr.grid_strides(cfg) is not None
    uu = u.astype(x.dtype) if case["dtype"] != np.int32 else u
    assert bool(fr._on_grid(uu, cfg, fr.grid_strides(cfg)))
    jaxpr = str(jax.make_jaxpr(lambda x, u: fr._winners(x, u, cfg, case["ties"]))(x, uu))
    assert "cond" in jaxpr
    y, idx = jax.jit(lambda x, u: fr._winners(x, u, cfg, case["ties"]))(x, uu)
    y0, idx0 = jax.jit(lambda x, u: fr._gathered(x, u, cfg, case["ties"]))(x, uu)
    np.testing.assert_array_equal(y, y0)  # NaN where NaN
    np.testing.assert_array_equal(idx, idx0)
    if case["dtype"] == np.int32:
        return
    x = jnp.nan_to_num(x)  # the VJP: g on the gathered path's winners
    idx = fr._gathered(x, uu, cfg, case["ties"])[1]
    kw = dict(output_size=case["out"], samples=u, ties=case["ties"], layout=case["layout"])
    f = lambda x: fractional_max_pool(x, case["window"], **kw)  # noqa: E731
    g = jnp.asarray(rng.normal(size=y.shape), x.dtype)
    dx = jax.vjp(f, x)[1](g)[0]
    assert_close(dx, max_unpool_like(g, idx, x.shape, case["layout"]), tol=1e-6)


def max_unpool_like(g, idx, shape, layout):
    """g placed on the flat spatial indices idx of each (n, c) (windows sharing a winner add)."""
    g, idx = np.asarray(g, np.float64), np.asarray(idx)
    if layout == "channels_last":
        g, idx = np.moveaxis(g, -1, 1), np.moveaxis(idx, -1, 1)
        shape = (shape[0], shape[-1], *shape[1:-1])
    out = np.zeros((shape[0], shape[1], int(np.prod(shape[2:]))))
    for i in range(shape[0]):
        for j in range(shape[1]):
            np.add.at(out[i, j], idx[i, j].ravel(), g[i, j].ravel())
    out = out.reshape(shape)
    return np.moveaxis(out, 1, -1) if layout == "channels_last" else out


def test_a_sample_rounded_off_the_grid_takes_the_gathered_windows():
    """L = 10, k = 2, O = 5: alpha = 2, but u = 1 - 2**-24 in float32 rounds i + u up to i + 1
    for i >= 1, so windows 1-3 start at 3, 5, 7, not 2, 4, 6: the run-time check sends them to
    the gathered windows."""
    x = jnp.arange(10, dtype=jnp.float32)[::-1].reshape(1, 10, 1)  # decreasing: winner = start
    u = jnp.full((1, 1, 1), np.nextafter(np.float32(1), np.float32(0)), jnp.float32)
    y, idx = jax.jit(
        lambda x, u: fractional_max_pool(x, 2, output_size=5, samples=u, return_indices=True)
    )(x, u)
    assert idx.ravel().tolist() == [0, 3, 5, 7, 8]  # as PyTorch's float32 arithmetic gives
    assert y.ravel().tolist() == [9.0, 6.0, 4.0, 2.0, 1.0]
    u_on = jnp.full((1, 1, 1), 0.5, jnp.float32)
    idx_on = fractional_max_pool(x, 2, output_size=5, samples=u_on, return_indices=True)[1]
    assert idx_on.ravel().tolist() == [0, 2, 4, 6, 8]


def test_grid_windows_under_vmap_of_the_samples():
    """A batched sample makes the conditional a select of both paths: the same values."""
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 3)), jnp.float32)
    us = jnp.asarray(rng.uniform(size=(4, 2, 3, 2)), jnp.float32)
    us = us.at[1, 0, 0, 0].set(np.nextafter(np.float32(1), np.float32(0)))  # off the grid
    f = lambda u: fractional_max_pool(x, 2, output_size=4, samples=u, return_indices=True)  # noqa: E731
    ys, idxs = jax.jit(jax.vmap(f))(us)
    for b in range(4):
        y, idx = f(us[b])
        np.testing.assert_array_equal(ys[b], y)
        np.testing.assert_array_equal(idxs[b], idx)
