"""Repeated runs give bitwise-identical values and gradients on CPU.

Every jaxconv backward pass is a fixed sequence of XLA ops (no scatter with colliding indices,
no atomics): the same inputs give the same bits, call after call and compile after compile.
On GPU, XLA's convolution and reduction kernels may pick different algorithms or split sums
differently from run to run; set ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` there for
bitwise repeatability (docs/semantics.md, "Errors and edge cases").
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv as jc


def cnn_loss(params, x, labels, backward):
    w1, w2, w3 = params
    h = jc.relu(jc.conv(x, w1, stride=2, padding=1, backward=backward))
    h = jc.max_pool(h, 3, stride=2, padding=1)
    h = jc.relu(jc.conv(h, w2, padding="SAME", groups=2, backward=backward))
    h = jc.avg_pool(h, 2)
    h = jc.conv_transpose(h, w2[..., :4, :], stride=2, padding=1)
    h = jc.global_avg_pool(h) + jc.global_max_pool(jc.lp_pool(h, 2, 2))
    return jc.softmax_cross_entropy(jc.linear(h, w3), labels)


@pytest.mark.parametrize(
    "backward, dtype",
    [
        ("auto", jnp.float32),
        ("matmul", jnp.float32),
        ("phase", jnp.float32),
        ("auto", jnp.bfloat16),
    ],
)
def test_gradients_bitwise_repeatable(backward, dtype):
    rng = np.random.default_rng(0)
    params = [
        jnp.asarray(rng.standard_normal(s) * 0.3, dtype)
        for s in ((3, 3, 3, 8), (3, 3, 4, 8), (4, 10))
    ]
    x = jnp.asarray(rng.standard_normal((8, 16, 16, 3)), dtype)
    labels = jnp.arange(8) % 10

    def grad_fn():
        return jax.jit(jax.value_and_grad(cnn_loss), static_argnums=3)

    runs = [grad_fn()(params, x, labels, backward) for _ in range(2)]
    jax.clear_caches()  # a fresh trace and compile
    runs.append(grad_fn()(params, x, labels, backward))
    first = jax.tree.leaves(runs[0])
    for other in runs[1:]:
        for a, b in zip(first, jax.tree.leaves(other)):
            assert np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
