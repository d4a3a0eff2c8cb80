"""Environments for the tests that emulate several devices in a subprocess."""

from __future__ import annotations

import os


def host_devices_env(n: int = 4, **extra: str) -> dict[str, str]:
    """os.environ plus XLA's flag for `n` emulated CPU devices and ``JAX_PLATFORMS=cpu``: on a
    machine with a GPU, JAX's default backend would otherwise be the one GPU, not the `n` host
    devices the sharded tests lay their meshes over."""
    return dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
        JAX_PLATFORMS="cpu",
        **extra,
    )
