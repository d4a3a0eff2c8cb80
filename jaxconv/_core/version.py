"""The jax versions jaxconv runs on: an import on an older jax says what it needs.

`MIN_JAX` is pyproject.toml's lower bound, the oldest release on which the test suite passes
(.ci/run installs exactly that release in a second virtual environment and runs a subset of
the suite on it). 0.7.2 is the first with `out_sharding=` on `lax.conv_general_dilated` and a
public `jax.sharding.use_abstract_mesh`, both of which jaxconv uses.
"""

from __future__ import annotations

import re

import jax

MIN_JAX = (0, 7, 2)


def release(text: str) -> tuple[int, ...]:
    """The (major, minor, patch) of a version string: "0.10.2.dev20260101" -> (0, 10, 2)."""
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check(jax_version: str) -> None:
    """Raise ImportError naming the needed version when `jax_version` is older than MIN_JAX."""
    if release(jax_version) < MIN_JAX:
        need = ".".join(map(str, MIN_JAX))
        raise ImportError(
            f"jaxconv needs jax >= {need} and jaxlib >= {need} (found jax {jax_version}): "
            f"pip install -U 'jax>={need}' 'jaxlib>={need}'"
        )


check(jax.__version__)
