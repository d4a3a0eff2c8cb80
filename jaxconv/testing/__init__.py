"""Tools for testing derivative rules: `check_rules`, which holds a function's hand-written
JVP / VJP / batching rules to a reference (or finite differences) to any order under jit and
vmap and names the check that fails; the inputs it needs (`random_inputs`, `without_ties`,
`distinct`, `tolerance`); and `oracle`, plain-JAX forwards of every jaxconv op (JAX's autodiff of
them is the reference jaxconv's hand-written rules are held to)."""

from jaxconv.testing import oracle as oracle
from jaxconv.testing.check import check_rules as check_rules
from jaxconv.testing.inputs import distinct as distinct
from jaxconv.testing.inputs import random_inputs as random_inputs
from jaxconv.testing.inputs import tolerance as tolerance
from jaxconv.testing.inputs import without_ties as without_ties

__all__ = ["check_rules", "distinct", "oracle", "random_inputs", "tolerance", "without_ties"]
