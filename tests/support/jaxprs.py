"""Walking jaxprs in the tests: every equation, nested sub-jaxprs included (jit, custom rules,
checkpoint, loops), on every supported jax (0.7.2 to 0.11)."""

from __future__ import annotations

from collections.abc import Iterator

try:
    from jax.extend.core import jaxprs_in_params
except ImportError:  # jax < 0.10 (the oldest supported is 0.7.2; CI's second venv)
    from jax.core import jaxprs_in_params


def eqns(jaxpr) -> Iterator:
    """Every equation of `jaxpr` (a core Jaxpr, not a ClosedJaxpr), depth first."""
    for e in jaxpr.eqns:
        yield e
        for sub in jaxprs_in_params(e.params):
            yield from eqns(sub)


def primitive_names(jaxpr) -> set[str]:
    """The names of every primitive `jaxpr` binds, at any depth."""
    return {e.primitive.name for e in eqns(jaxpr)}
