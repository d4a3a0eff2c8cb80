"""Tools for testing derivative rules against JAX's own: `oracle`, plain-JAX forwards of every
jaxconv op (JAX's autodiff of them is the reference jaxconv's hand-written rules are held to)."""

from jaxconv.testing import oracle as oracle

__all__ = ["oracle"]
