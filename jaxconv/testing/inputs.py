r"""`jaxconv.testing.inputs`: the inputs and tolerances a derivative check needs.

A derivative check is only as good as the point it is made at. Three helpers pick points where
the derivative exists and is well conditioned, and one says how close two floating results must
be:

- `random_inputs`: normal draws (or uniform on [0.5, 1.5) for positive-domain functions such as
  ``log`` or a p-norm): of order 1, so no entry sits near an overflow, an underflow or 0 where a
  rule divides by the input;
- `without_ties` and `distinct`: values with no two equal and a minimum gap between any two.
  ``max`` (max pooling, ReLU of a difference, sorting, top-k) is piecewise linear; where two
  candidates tie, ``max`` sits on a kink: its left and right derivatives differ,

  .. math:: \frac{\partial}{\partial a}\max(a, b)\Big|_{a=b^-} = 0, \qquad
            \frac{\partial}{\partial a}\max(a, b)\Big|_{a=b^+} = 1,

  so the derivative is not defined there; a rule's choice (first winner, last winner, split),
  the reference's and a finite difference (which straddles the kink) may all legitimately
  disagree. Random normal draws are distinct almost surely, but two of them may lie closer
  than a finite-difference step; a spaced permutation cannot.
- `tolerance`: the default (rtol, atol) per dtype that `jaxconv.testing.check_rules` uses.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxconv.testing import random_inputs, tolerance, without_ties
  >>> x, w = random_inputs(0, (2, 3), (3,), dtype=jnp.float32)
  >>> x.shape, w.dtype
  ((2, 3), dtype('float32'))
  >>> tolerance(jnp.float32)
  (1e-05, 1e-06)
  >>> sorted(without_ties((5,), dtype=jnp.float32).tolist())
  [-1.0, -0.5, 0.0, 0.5, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike, DTypeLike

# (rtol, atol) per dtype. Errors are measured against max(1, max |expected|), so rtol bounds the
# error relative to the result's largest entry (cancellation in single entries does not inflate
# it) and atol is a floor for all-tiny results.
_TOLERANCE = {
    np.dtype(np.float64): (1e-10, 1e-12),
    np.dtype(np.complex128): (1e-10, 1e-12),
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.complex64): (1e-5, 1e-6),
    np.dtype(np.float16): (1e-2, 1e-3),
    np.dtype(jnp.bfloat16): (2e-2, 1e-3),
}

Seed = int | Array  # an int seed for NumPy's default_rng, or a jax.random key


def _dtype(fn: str, dtype) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{fn}: `dtype` (={dtype!r}) is not a dtype") from e


def tolerance(dtype: DTypeLike) -> tuple[float, float]:
    r"""The default (rtol, atol) for comparing results of `dtype` in `check_rules`.

    A result passes when

    .. math:: \max_i |a_i - e_i| \le \mathrm{atol} + \mathrm{rtol} \cdot \max(1, \max_i |e_i|)

    (a actual, e expected): the error is measured against the largest entry of the expected
    result, so a derivative whose entries cancel to near 0 is not held to a relative error it
    cannot meet.

    Args:
      dtype: any dtype (or dtype-like: ``jnp.float32``, ``"bfloat16"``).
    Returns:
      (rtol, atol): float64 and complex128 ``(1e-10, 1e-12)``; float32 and complex64
      ``(1e-5, 1e-6)``; float16 ``(1e-2, 1e-3)``; bfloat16 ``(2e-2, 1e-3)``; other floating
      dtypes (float8 ...) ten times their machine epsilon and epsilon itself; integers and bools
      ``(0.0, 0.0)``: compared exactly.

    Example:
      >>> import jax.numpy as jnp
      >>> tolerance(jnp.float64), tolerance(jnp.bfloat16), tolerance(jnp.int32)
      ((1e-10, 1e-12), (0.02, 0.001), (0.0, 0.0))
    """
    dt = _dtype("tolerance", dtype)
    if dt in _TOLERANCE:
        return _TOLERANCE[dt]
    if jnp.issubdtype(dt, jnp.inexact):
        eps = float(jnp.finfo(dt).eps)
        return (10 * eps, eps)
    return (0.0, 0.0)


def _shape(fn: str, arg: str, shape) -> tuple[int, ...]:
    try:
        out = tuple(int(n) for n in shape)
    except TypeError as e:
        raise TypeError(f"{fn}: `{arg}` (={shape!r}) is not a shape (a sequence of ints)") from e
    if any(n < 0 for n in out):
        raise ValueError(f"{fn}: `{arg}` (={shape!r}) has a negative extent")
    return out


def _is_seed(key_or_seed) -> bool:
    return isinstance(key_or_seed, int | np.integer) and not isinstance(key_or_seed, bool)


def _float_dtype(fn: str, dtype, positive: bool) -> np.dtype:
    dt = _dtype(fn, dtype)
    if not jnp.issubdtype(dt, jnp.inexact):
        raise ValueError(f"{fn}: `dtype` (={dt}) is not a floating or complex dtype")
    if positive and jnp.issubdtype(dt, jnp.complexfloating):
        raise ValueError(f"{fn}: `positive` (=True) needs a real dtype, not {dt}")
    return dt


def random_inputs(
    key_or_seed: Seed,
    *shapes: Sequence[int],
    dtype: DTypeLike = jnp.float64,
    positive: bool = False,
) -> tuple[Array, ...]:
    r"""Well-conditioned random arrays, one per shape, for checking derivatives.

    .. math:: x_i \sim \mathcal N(0, 1) \quad\text{or, with positive,}\quad
              x_i \sim \mathcal U[0.5, 1.5)

    Normal draws are of order 1 (no overflow, underflow or near-zero divisor in a rule) and
    distinct almost surely; ``positive`` keeps a positive-domain function (log, sqrt, a p-norm
    ``(Σ x^p)^{1/p}``) away from 0, where its derivatives blow up.

    Args:
      key_or_seed: an int seed (NumPy's ``default_rng(seed)``, drawn in float64 and cast, so
        the same seed gives the same values in every dtype up to rounding) or a ``jax.random``
        key (split once per shape).
      *shapes: one shape per array.
      dtype: floating or complex (complex: independent real and imaginary parts). float64
        needs ``jax_enable_x64``.
      positive: uniform on [0.5, 1.5) instead of normal (real dtypes only).
    Returns:
      A tuple of arrays, one per shape (``(x,) = random_inputs(0, (3,))`` for one).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x, w = random_inputs(0, (2, 4), (4, 3), dtype=jnp.float32)
      >>> (x @ w).shape
      (2, 3)
      >>> (p,) = random_inputs(jax.random.key(1), (5,), dtype=jnp.float32, positive=True)
      >>> bool(((p >= 0.5) & (p < 1.5)).all())
      True
    """
    dt = _float_dtype("random_inputs", dtype, positive)
    shapes = tuple(_shape("random_inputs", "shapes", s) for s in shapes)
    complex_ = jnp.issubdtype(dt, jnp.complexfloating)
    if _is_seed(key_or_seed):
        r = np.random.default_rng(int(key_or_seed))

        def draw(s):
            if positive:
                return r.uniform(0.5, 1.5, s)
            if complex_:
                return r.standard_normal(s) + 1j * r.standard_normal(s)
            return r.standard_normal(s)

        return tuple(jnp.asarray(draw(s), dtype=dt) for s in shapes)
    keys = jax.random.split(key_or_seed, len(shapes))
    if positive:
        return tuple(jax.random.uniform(k, s, dt, 0.5, 1.5) for k, s in zip(keys, shapes))
    return tuple(jax.random.normal(k, s, dt) for k, s in zip(keys, shapes))


def _spaced(fn: str, ranks: np.ndarray, lo: float, gap: float, dt: np.dtype) -> Array:
    """lo + gap * ranks in `dt`, refused where `dt` cannot hold them `gap` apart."""
    values = lo + gap * ranks.astype(np.float64)
    out = jnp.asarray(values, dtype=dt)
    if values.size > 1:
        held = np.sort(np.asarray(out, dtype=np.float64).ravel())
        smallest = float(np.min(np.diff(held)))
        if not smallest >= 0.5 * gap:
            raise ValueError(
                f"{fn}: `gap` (={gap:.3g}) cannot be held in {dt} by {values.size} values "
                f"up to {float(np.max(np.abs(values))):.3g} (the smallest gap left is "
                f"{smallest:.3g}): use a wider dtype, a larger gap or fewer values"
            )
    return out


def without_ties(
    shape: Sequence[int],
    key_or_seed: Seed = 0,
    *,
    dtype: DTypeLike = jnp.float64,
    gap: float | None = None,
    positive: bool = False,
) -> Array:
    r"""A random array with no two entries equal and every two at least `gap` apart.

    A random permutation of an evenly spaced range:

    .. math:: x = \mathrm{lo} + \mathrm{gap} \cdot \pi(0, 1, \ldots, n - 1)

    For max-type functions (max pooling, max over an axis, sort): at a tie ``max(a, b)`` with
    ``a = b`` sits on a kink, where the derivative does not exist and rules, references and
    finite differences may each pick a different one-sided derivative. With every two entries
    ``gap`` apart, the winner of every window is unique and a finite-difference step
    ``eps · |t|`` smaller than ``gap / 2`` cannot change it. (Normal draws are distinct almost
    surely but may lie arbitrarily close.)

    Args:
      shape: the array's shape (n entries).
      key_or_seed: an int seed (NumPy's ``default_rng``) or a ``jax.random`` key.
      dtype: a real floating dtype. float64 needs ``jax_enable_x64``.
      gap: the spacing. Default: the range spans [-1, 1] (``gap = 2 / (n - 1)``), or
        [0.5, 1.5] with ``positive``. Choose it larger than a few finite-difference steps
        (``jax.test_util.check_grads``: eps = 1e-4 by default).
      positive: start at 0.5 instead of centring on 0.
    Returns:
      An array of `shape` and `dtype`.
    Raises:
      ValueError: where `dtype` cannot hold n values `gap` apart (e.g. thousands of values in
        [-1, 1] in bfloat16).

    Example:
      >>> import jax.numpy as jnp
      >>> x = without_ties((2, 2), 0, dtype=jnp.float32)
      >>> sorted(x.ravel().tolist())
      [-1.0, -0.3333333432674408, 0.3333333432674408, 1.0]
      >>> sorted(without_ties((2, 2), 0, dtype=jnp.float32, gap=0.5).ravel().tolist())
      [-0.75, -0.25, 0.25, 0.75]
    """
    dt = _float_dtype("without_ties", dtype, positive)
    if jnp.issubdtype(dt, jnp.complexfloating):
        raise ValueError(f"without_ties: `dtype` (={dt}) has no order: use a real dtype")
    shape = _shape("without_ties", "shape", shape)
    n = math.prod(shape)
    if gap is not None and not gap > 0:
        raise ValueError(f"without_ties: `gap` (={gap!r}) must be positive")
    if _is_seed(key_or_seed):
        ranks = np.random.default_rng(int(key_or_seed)).permutation(n)
    else:
        ranks = np.asarray(jax.random.permutation(key_or_seed, n))
    span = 1.0 if positive else 2.0
    step = float(gap) if gap is not None else span / max(n - 1, 1)
    lo = 0.5 if positive else -step * (n - 1) / 2
    return _spaced("without_ties", ranks.reshape(shape), lo, step, dt)


def distinct(x: ArrayLike, *, gap: float | None = None) -> Array:
    r"""`x` with its ties broken and its values evenly spaced, in the same order.

    Each entry is replaced by its rank (ties broken by position, first is smaller) on an evenly
    spaced range spanning x's own range:

    .. math:: y_i = \min x + \mathrm{gap} \cdot \mathrm{rank}(x_i), \qquad
              \mathrm{gap} = \frac{\max x - \min x}{n - 1}

    so every window's winner (argmax) of ``y`` is the winner of ``x`` where that was unique,
    and no two entries are closer than `gap`. Why: see `without_ties` (a tie sits on a kink of
    ``max``, where no derivative exists).

    Args:
      x: a real floating array with finite values.
      gap: the spacing (default: x's range over n - 1, or 2 / (n - 1) centred on x's value
        where all of x is equal).
    Returns:
      An array of x's shape and dtype.
    Raises:
      ValueError: non-finite or non-floating x, or a dtype that cannot hold the gap.

    Example:
      >>> import jax.numpy as jnp
      >>> distinct(jnp.array([0.0, 1.0, 1.0, 3.0], jnp.float32)).tolist()
      [0.0, 1.0, 2.0, 3.0]
    """
    a = np.asarray(x)
    dt = a.dtype
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"distinct: `x` (dtype {dt}) is not a real floating array")
    if not np.all(np.isfinite(a)):
        raise ValueError("distinct: `x` has non-finite values, which cannot be spaced")
    if gap is not None and not gap > 0:
        raise ValueError(f"distinct: `gap` (={gap!r}) must be positive")
    flat = a.astype(np.float64).ravel()
    n = flat.size
    ranks = np.empty(n, np.int64)
    ranks[np.argsort(flat, kind="stable")] = np.arange(n)
    lo, hi = (float(flat.min()), float(flat.max())) if n else (0.0, 0.0)
    if gap is None:
        gap = (hi - lo) / (n - 1) if n > 1 and hi > lo else 2.0 / max(n - 1, 1)
        if hi == lo:
            lo -= gap * (n - 1) / 2
    return _spaced("distinct", ranks.reshape(a.shape), lo, float(gap), dt)
