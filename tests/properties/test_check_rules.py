"""Every op of the registry (tests/support/registry.py) through the public rule checker
`jaxconv.testing.check_rules`: values, forward and reverse mode to order 2 (JVP of JVP, VJP of
VJP) against JAX's autodiff of the plain-JAX reference, the transpose identity of the op's own
JVP and VJP, jit against eager, and vmap against the copies one by one -- one compiled program
per op (about 30-40 s for the whole registry on 2 cores; the max pools and conv_transpose,
3-5 s each, are the slowest, much of it their first eager call for the jit check)."""

import contextlib

import jax
import pytest

from jaxconv.testing import check_rules
from tests.support.registry import OPS

# Off the CPU, JAX's own float64 derivative of reduce_window max/min (the max pools' plain-JAX
# reference) packs value and tangent into 64 bits: reduced precision, with a warning. Those ops
# are checked on the host CPU there; the forward-mode matrix checks them on the device against
# the host's reference.
REDUCED_OFF_HOST = ("max_pool", "min_pool")


@pytest.mark.parametrize("name", list(OPS))
def test_rules_of_every_op(name):
    op = OPS[name]
    on_host = jax.default_backend() == "cpu" or not any(p in name for p in REDUCED_OFF_HOST)
    with contextlib.nullcontext() if on_host else jax.default_device(jax.devices("cpu")[0]):
        check_rules(
            op.fn, *op.args, reference=op.ref, order=2, modes=("fwd", "rev"), vmap=True, jit=True
        )
