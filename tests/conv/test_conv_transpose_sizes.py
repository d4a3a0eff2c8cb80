"""`transpose_sizes`: conv_transpose's output size and the padding of its forward conv, alone.

One dim: the conv maps input size n to o = (n + lo + hi - d(k-1) - 1) // s + 1; conv_transpose
picks n = (o-1)s - lo - hi + d(k-1) + 1 + output_padding with output_padding < max(s, d)
(PyTorch's rule), or n = output_size. Checked against that formula, against the round trip
(a lax convolution of an n-sized input with the returned padding has o outputs, for every
output_padding in range) and against PyTorch's conv_transpose1d/2d output shapes.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxconv
from jaxconv.convolution.api import SizeError, transpose_sizes

# One dim: (o, k, s, d, lo, hi), every combination of small sizes.
DIMS = list(
    itertools.product(range(1, 5), range(1, 4), range(1, 4), range(1, 4), range(3), range(3))
)


def _n(o, k, s, d, lo, hi, op):
    return (o - 1) * s - lo - hi + d * (k - 1) + 1 + op


def _in_range(dims):
    """(o, k, s, d, lo, hi, output_padding) for every output_padding < max(s, d) giving n >= 1."""
    for o, k, s, d, lo, hi in dims:
        for op in range(max(s, d)):
            if _n(o, k, s, d, lo, hi, op) >= 1:
                yield o, k, s, d, lo, hi, op


def _one(o, k, s, d, lo, hi, op=0, size=None):
    n, pads = transpose_sizes(
        (o,), (k,), (s,), (d,), ((lo, hi),), (op,), None if size is None else (size,)
    )
    return n[0], pads[0]


def test_the_formula():
    for o, k, s, d, lo, hi, op in _in_range(DIMS):
        n, (lo_f, hi_f) = _one(o, k, s, d, lo, hi, op)
        assert n == _n(o, k, s, d, lo, hi, op)
        assert (lo_f, hi_f) == (lo, hi - op)  # output_padding comes off the high padding


def test_dims_are_independent():
    o, k, s, d = (3, 4, 2), (3, 1, 2), (2, 1, 3), (1, 2, 1)
    pads, op = ((1, 0), (0, 2), (1, 1)), (1, 0, 2)
    n, fwd = transpose_sizes(o, k, s, d, pads, op)
    want = [_one(*args) for args in zip(o, k, s, d, *zip(*pads), op)]
    assert n == tuple(w[0] for w in want) and fwd == tuple(w[1] for w in want)


def _lax_out(n, k, s, d, lo, hi):
    """The output size of a lax convolution of an n-sized input (shapes only)."""
    x = jax.ShapeDtypeStruct((1, 1, n), jnp.float32)
    w = jax.ShapeDtypeStruct((1, 1, k), jnp.float32)
    y = jax.eval_shape(
        lambda x, w: lax.conv_general_dilated(x, w, (s,), ((lo, hi),), rhs_dilation=(d,)), x, w
    )
    return y.shape[-1]


def test_round_trip():
    """The conv of an input of the chosen size, padded as returned, has exactly o outputs for
    every output_padding in range; with the user's own padding too while output_padding < s
    (the floor of the stride), and more than o beyond it (d > s)."""
    dims = [(o, k, s, d, lo, hi) for o, k, s, d, lo, hi in DIMS if o <= 3 and d <= 2 and hi <= 1]
    for o, k, s, d, lo, hi, op in _in_range(dims):
        n, (lo_f, hi_f) = _one(o, k, s, d, lo, hi, op)
        assert _lax_out(n, k, s, d, lo_f, hi_f) == o
        if op < s:
            assert _lax_out(n, k, s, d, lo, hi) == o
        else:
            assert _lax_out(n, k, s, d, lo, hi) > o


def test_output_size_picks_output_padding():
    """Every output_size in [n_min, n_min + max(s, d)) is returned as asked, as the output_padding
    it stands for; sizes outside that range are refused."""
    for o, k, s, d, lo, hi in DIMS:
        n_min, room = _n(o, k, s, d, lo, hi, 0), max(s, d)
        for size in range(max(n_min, 1), n_min + room):
            assert _one(o, k, s, d, lo, hi, size=size) == _one(o, k, s, d, lo, hi, size - n_min)
        for size in (n_min - 1, n_min + room):
            with pytest.raises(SizeError, match="must lie between") as e:
                _one(o, k, s, d, lo, hi, size=size)
            assert e.value.arg == "output_size"


def test_refusals():
    with pytest.raises(SizeError, match=r"smaller than max\(stride, dilation\) \(=\(2,\)\)") as e:
        _one(3, 3, 2, 1, 1, 1, 2)
    assert e.value.arg == "output_padding"
    with pytest.raises(SizeError, match="must be 0 when `output_size` is given") as e:
        _one(3, 3, 2, 1, 1, 1, 1, size=6)
    assert e.value.arg == "output_padding"
    with pytest.raises(SizeError, match=r"too large: the output would have size \(0,\)") as e:
        _one(1, 1, 1, 1, 1, 0)
    assert e.value.arg == "padding"


def test_conv_transpose_output_shape():
    """conv_transpose's output has the helper's size (2-D, per dim settings)."""
    y, w = jnp.zeros((1, 3, 4, 2)), jnp.zeros((3, 2, 5, 2))
    kw = dict(stride=(2, 3), dilation=(1, 2), padding=((1, 0), (2, 1)), output_padding=(1, 2))
    n, _ = transpose_sizes((3, 4), (3, 2), (2, 3), (1, 2), ((1, 0), (2, 1)), (1, 2))
    assert jaxconv.conv_transpose(y, w, **kw).shape == (1, *n, 5)


def test_pytorch_output_shapes():
    """PyTorch's conv_transpose1d / 2d give the same sizes (its padding is symmetric)."""
    torch = pytest.importorskip("torch")
    dims = [(o, k, s, d, lo, hi) for o, k, s, d, lo, hi in DIMS if lo == hi]
    for o, k, s, d, p, _, op in _in_range(dims):  # output_padding < max(s, d), as torch asks
        n, _ = _one(o, k, s, d, p, p, op)
        y = torch.nn.functional.conv_transpose1d(
            torch.zeros(1, 1, o), torch.zeros(1, 1, k), None, s, p, op, 1, d
        )
        assert y.shape[-1] == n, (o, k, s, d, p, op)
    for (o, k, s, d, p, op), (o2, k2, s2, d2, p2, op2) in [
        ((3, 3, 2, 1, 1, 1), (4, 2, 3, 2, 0, 1)),
        ((5, 1, 1, 3, 0, 2), (2, 3, 2, 2, 2, 0)),
    ]:
        n, _ = transpose_sizes((o, o2), (k, k2), (s, s2), (d, d2), ((p, p), (p2, p2)), (op, op2))
        y = torch.nn.functional.conv_transpose2d(
            torch.zeros(1, 1, o, o2), torch.zeros(1, 1, k, k2), None, (s, s2), (p, p2),
            (op, op2), 1, (d, d2),
        )  # fmt: skip
        assert tuple(y.shape[-2:]) == n
