"""Names on the residuals each op's reverse mode keeps, for `jax.checkpoint` remat policies.

Every residual a jaxconv forward keeps for its backward is tagged with
`jax.ad_checkpoint.checkpoint_name`, so a remat policy can choose what to store and what to
recompute::

    policy = jax.checkpoint_policies.save_only_these_names("jaxconv.relu.mask",
                                                           "jaxconv.max_pool.offsets")
    loss = jax.checkpoint(loss, policy=policy)

keeps only ReLU's boolean masks and max-pool's int8 winner offsets (the cheap residuals) and
recomputes the rest in the backward pass. Outside `jax.checkpoint` the names change nothing.
"""

from __future__ import annotations

from jax.ad_checkpoint import checkpoint_name

RESIDUAL_NAMES = (
    "jaxconv.conv.x",  # conv / conv_general_dilated: the (padded-mode) input
    "jaxconv.conv.w",  # conv: the kernel
    "jaxconv.conv_transpose.y",  # conv_transpose: its input
    "jaxconv.conv_local.x",  # conv_local / conv_general_dilated_local: the input
    "jaxconv.conv_local.w",  # their kernels
    "jaxconv.max_pool.offsets",  # max_pool: int8/int16 winner offsets (or tie bitmasks)
    "jaxconv.min_pool.offsets",  # min_pool: the same, for the minimum
    "jaxconv.global_max_pool.index",  # global_max_pool: the winner's flat index
    "jaxconv.adaptive_max_pool.offsets",  # adaptive_max_pool, tiling windows: max_pool's
    "jaxconv.adaptive_max_pool.index",  # uneven windows: int32 winner indices (split: bitmasks)
    "jaxconv.fractional_max_pool.index",  # the same (split: bitmasks and the window starts)
    "jaxconv.lp_pool.x",
    "jaxconv.lp_pool.y",
    "jaxconv.relu.mask",  # relu: boolean x > 0
    "jaxconv.linear.x",
    "jaxconv.linear.w",
    "jaxconv.mse_loss.diff",  # mse_loss: y - t
    "jaxconv.softmax_cross_entropy.probs",  # softmax(z)
)


def name(value, op: str, what: str):
    """Tag `value` (an array or a tuple of arrays) as the residual ``jaxconv.<op>.<what>``."""
    label = f"jaxconv.{op}.{what}"
    assert label in RESIDUAL_NAMES, label
    if isinstance(value, tuple):
        return tuple(checkpoint_name(a, label) for a in value)
    return checkpoint_name(value, label)
