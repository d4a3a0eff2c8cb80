"""Type aliases of the public API (annotations only: nothing here runs).

Arrays come in as `ArrayLike` (jax arrays, numpy arrays, scalars) and go out as `jax.Array`.
"""

from __future__ import annotations

from collections.abc import Sequence

from jax import Array as Array
from jax.typing import ArrayLike as ArrayLike
from jax.typing import DTypeLike as DTypeLike

Ints = int | Sequence[int]  # one int for every spatial dim, or one per dim
Padding = str | int | Sequence[int] | Sequence[tuple[int, int]]  # "VALID", "SAME", "FULL", ...
Shape = Sequence[int]
