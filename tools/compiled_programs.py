"""What XLA compiles for the benchmark layers: a refactoring check for performance.

``python tools/compiled_programs.py save before.json`` on the old tree, ``... compare
before.json`` on the new one: for every layer of experiments/layers.py (conv layers with
``backward="auto"`` and ``"lean"``, the pools with their one algorithm), the jitted forward +
VJP is compiled for this machine and summarised by its histogram of HLO instructions and its
compiled temp bytes. Equal summaries mean the benchmark's numbers cannot have moved.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from layers import LAYERS  # noqa: E402

import jaxconv as jc  # noqa: E402


def _layer(cfg, backward):
    kw = dict(stride=cfg.stride, padding=cfg.padding)
    if cfg.op in ("conv", "conv_transpose"):
        op = getattr(jc, cfg.op)
        conv_kw = dict(dilation=cfg.dilation, groups=cfg.groups, backward=backward, **kw)
        args = (jnp.zeros(cfg.x, jnp.float32), jnp.zeros(cfg.w, jnp.float32))
        return (lambda a, w: op(a, w, **conv_kw)), args
    pool = getattr(jc, cfg.op)
    return (lambda x: pool(x, cfg.window, **kw)), (jnp.zeros(cfg.x, jnp.float32),)


def summaries() -> dict:
    out = {}
    for name, cfg in LAYERS.items():
        for backward in ("auto", "lean") if cfg.op.startswith("conv") else ("-",):
            f, args = _layer(cfg, backward)

            def run(*a, f=f):
                y, vjp = jax.vjp(f, *a)
                return y, vjp(jnp.ones_like(y))

            exe = jax.jit(run).lower(*args).compile()
            hist: dict[str, int] = {}
            for op in re.findall(r"= \S+ (\w[\w-]*)\(", exe.as_text()):
                hist[op] = hist.get(op, 0) + 1
            digest = hashlib.sha1(json.dumps(hist, sort_keys=True).encode()).hexdigest()[:12]
            temp = exe.memory_analysis().temp_size_in_bytes
            out[f"{name}/{backward}"] = [digest, temp, sum(hist.values())]
    return out


def main(argv) -> int:
    cmd, path = argv[1], argv[2]
    got = summaries()
    if cmd == "save":
        Path(path).write_text(json.dumps(got, indent=1))
        print(f"saved {len(got)} compiled programs to {path}")
        return 0
    want = json.loads(Path(path).read_text())
    bad = sorted(k for k in want if got.get(k) != want[k])
    print(f"{len(want)} compiled programs: {len(bad)} differ")
    for k in bad:
        print("  differs:", k, want[k], "->", got.get(k))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
