"""Float64 values and derivatives of every public op on a fixed corpus of configurations.

A refactoring check: ``python tools/values_corpus.py save before.npz`` on the old tree,
``python tools/values_corpus.py compare before.npz`` on the new one; every array (forward,
VJP of a fixed cotangent, JVP of a fixed tangent, each under ``jax.jit``) must be bitwise equal.
Uses the public API only, so it runs unchanged across any reorganisation of the package.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxconv as jc  # noqa: E402

BACKWARDS = ("auto", "lean", "transpose", "phase", "matmul")


def _a(r, *shape):
    return jnp.asarray(r.standard_normal(shape))


def _conv_layers():
    """(name, x shape, w shape, kwargs) of conv layers: ranks 1-3, strides, dilations, groups,
    padding forms and modes, layouts, flip."""
    yield "1d_s2_p2", (2, 11, 3), (5, 3, 4), dict(stride=2, padding=2)
    yield "1d_depthwise", (2, 9, 3), (5, 1, 6), dict(stride=2, padding=2, groups=3)
    yield "2d_same", (2, 6, 7, 3), (3, 3, 3, 4), dict(padding="SAME")
    yield "2d_s2_pairs", (2, 7, 6, 4), (3, 2, 4, 6), dict(stride=(2, 1), padding=((1, 0), (1, 1)))
    yield "2d_groups_dil", (2, 7, 8, 4), (2, 3, 2, 6), dict(groups=2, dilation=(1, 2), padding=1)
    yield "2d_full_flip", (1, 5, 5, 2), (3, 3, 2, 3), dict(padding="FULL", flip=True)
    yield (
        "2d_reflect_cf",
        (2, 3, 6, 5),
        (4, 3, 3, 3),
        dict(padding=1, padding_mode="reflect", layout="channels_first"),
    )
    yield "2d_circular", (1, 5, 6, 2), (3, 3, 2, 2), dict(padding=(1, 2), padding_mode="circular")
    yield (
        "2d_replicate_s2",
        (2, 7, 7, 3),
        (3, 3, 3, 2),
        dict(stride=2, padding=1, padding_mode="replicate"),
    )
    yield "2d_one_channel", (3, 9, 9, 1), (5, 5, 1, 4), dict(stride=2)
    yield "3d", (1, 5, 4, 6, 2), (3, 2, 3, 2, 3), dict(stride=(1, 2, 1), padding=1)
    yield "2d_bias", (2, 5, 5, 3), (3, 3, 3, 4), dict(stride=2, padding=1, bias=True)


def cases():
    r = np.random.default_rng(1234)
    for name, xs, ws, kw in _conv_layers():
        kw = dict(kw)
        bias = (
            _a(r, ws[-1] if kw.get("layout") != "channels_first" else ws[0])
            if kw.pop("bias", False)
            else None
        )
        x, w = _a(r, *xs), _a(r, *ws)
        for backward in BACKWARDS:
            args = (x, w) if bias is None else (x, w, bias)
            yield (
                f"conv/{name}/{backward}",
                (lambda *a, kw=kw, b=backward: jc.conv(*a, backward=b, **kw)),
                args,
            )
    for name, ys, ws, kw in [
        (
            "s2_p1_op1_g2",
            (2, 3, 3, 4),
            (3, 3, 1, 4),
            dict(stride=2, padding=1, output_padding=1, groups=2),
        ),
        ("1d_dil", (2, 6, 3), (3, 2, 3), dict(dilation=2, padding=1)),
        ("cf", (2, 4, 3, 3), (4, 2, 2, 2), dict(stride=2, layout="channels_first")),
    ]:
        y, w, b = (
            _a(r, *ys),
            _a(r, *ws),
            _a(r, ws[-2] * kw.get("groups", 1) if kw.get("layout") != "channels_first" else ws[1]),
        )
        for backward in BACKWARDS:
            yield (
                f"conv_transpose/{name}/{backward}",
                (lambda *a, kw=kw, bk=backward: jc.conv_transpose(*a, backward=bk, **kw)),
                (y, w, b),
            )
    g_kw = dict(stride=(2, 1), padding=((1, 0), (1, 1)), groups=2, dilation=(1, 2))
    for backward in BACKWARDS:
        yield (
            f"input_grad/{backward}",
            (lambda w, g, b=backward: jc.conv_input_grad((2, 5, 6, 4), w, g, backward=b, **g_kw)),
            (_a(r, 3, 2, 2, 6), _a(r, 2, 2, 6, 6)),
        )
        yield (
            f"weight_grad/{backward}",
            (lambda x, g, b=backward: jc.conv_weight_grad(x, (3, 2, 2, 6), g, backward=b, **g_kw)),
            (_a(r, 2, 5, 6, 4), _a(r, 2, 2, 6, 6)),
        )
    dn = ("NCHW", "OIHW", "NHWC")
    yield (
        "general/lhs_dil",
        (
            lambda x, w: jc.conv_general_dilated(
                x, w, (1, 2), ((1, 2), (0, 1)), (2, 1), (1, 2), dn, 2
            )
        ),
        (_a(r, 2, 4, 3, 4), _a(r, 6, 2, 2, 2)),
    )
    yield (
        "general/batch_groups",
        (lambda x, w: jc.conv_general_dilated(x, w, (1, 1), "SAME", None, None, dn, 1, 2)),
        (_a(r, 4, 3, 4, 3), _a(r, 4, 3, 2, 2)),
    )
    yield (
        "general/plain",
        (
            lambda x, w: jc.conv_general_dilated(
                x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        ),
        (_a(r, 2, 7, 7, 3), _a(r, 3, 3, 3, 5)),
    )
    xp = _a(r, 2, 7, 6, 3)
    for ties in ("first", "split", "last"):
        yield (
            f"max_pool/3s2p1/{ties}",
            (lambda x, t=ties: jc.max_pool(x, 3, stride=2, padding=1, ties=t)),
            (xp,),
        )
        yield (
            f"max_pool/2_ceil_cf/{ties}",
            (lambda x, t=ties: jc.max_pool(x, 2, ceil_mode=True, ties=t, layout="channels_first")),
            (xp,),
        )
        yield (
            f"max_pool/dil/{ties}",
            (lambda x, t=ties: jc.max_pool(x, 2, stride=1, dilation=2, ties=t)),
            (xp,),
        )
    yield "max_pool/1d", (lambda x: jc.max_pool(x, 3, stride=2)), (_a(r, 2, 9, 3),)
    yield "max_pool/3d", (lambda x: jc.max_pool(x, 2, padding=1)), (_a(r, 1, 4, 5, 3, 2),)
    for cip in (True, False):
        yield (
            f"avg_pool/3s2p1/{cip}",
            (lambda x, c=cip: jc.avg_pool(x, 3, stride=2, padding=1, count_include_pad=c)),
            (xp,),
        )
    yield (
        "avg_pool/div_ceil",
        (lambda x: jc.avg_pool(x, 2, ceil_mode=True, divisor_override=3)),
        (xp,),
    )
    yield "avg_pool/1d", (lambda x: jc.avg_pool(x, 3, stride=1, padding=1)), (_a(r, 2, 8, 2),)
    xl = jnp.abs(xp) + 0.5
    yield "lp_pool/p3", (lambda x: jc.lp_pool(x, 3.0, 2)), (xl,)
    yield "lp_pool/p2_s1", (lambda x: jc.lp_pool(x, 2, 3, stride=1, padding=1)), (xl,)
    yield "global_avg_pool", jc.global_avg_pool, (xp,)
    yield "global_max_pool", jc.global_max_pool, (xp,)
    _, idx = jc.max_pool(_a(r, 1, 4, 4, 2), 2, return_indices=True)
    yield "max_unpool", (lambda y: jc.max_unpool(y, idx, (1, 4, 4, 2))), (_a(r, 1, 2, 2, 2),)
    yield "relu", jc.relu, (_a(r, 3, 4, 5),)
    yield "linear", jc.linear, (_a(r, 3, 4), _a(r, 4, 5), _a(r, 5))
    yield "linear/nobias", jc.linear, (_a(r, 2, 3, 4), _a(r, 4, 5))
    yield "mse_loss/sum", jc.mse_loss, (_a(r, 3, 4), _a(r, 3, 4))
    yield (
        "mse_loss/mean",
        (lambda y, t: jc.mse_loss(y, t, reduction="mean")),
        (_a(r, 3, 4), _a(r, 3, 4)),
    )
    labels = jnp.asarray([2, 0, 1])
    yield "softmax_cross_entropy", (lambda z: jc.softmax_cross_entropy(z, labels)), (_a(r, 3, 4),)


def _scalar(f):
    return lambda *a: jnp.sum(jnp.sin(f(*a)))


def arrays():
    out = {}
    for name, f, args in cases():
        r = np.random.default_rng(len(name))
        y = jax.eval_shape(f, *args)
        g = jnp.asarray(r.standard_normal(y.shape))
        t = tuple(jnp.asarray(r.standard_normal(a.shape)) for a in args)

        @jax.jit
        def run(args, g, t, f=f):
            y, vjp = jax.vjp(f, *args)
            _, dy = jax.jvp(f, args, t)
            hvp = jax.jvp(jax.grad(_scalar(f)), args, t)[1]
            return y, vjp(g), dy, hvp

        for k, leaf in enumerate(jax.tree.leaves(run(args, g, t))):
            out[f"{name}#{k}"] = np.asarray(leaf)
    return out


def main(argv):
    cmd, path = argv[1], argv[2]
    got = arrays()
    n_cfg = len({k.split("#")[0] for k in got})
    if cmd == "save":
        np.savez(path, **got)
        print(f"saved {len(got)} arrays of {n_cfg} configurations to {path}")
        return 0
    want = np.load(path)
    bad = [
        k
        for k in want.files
        if k not in got
        or got[k].tobytes() != want[k].tobytes()
        or got[k].dtype != want[k].dtype
        or got[k].shape != want[k].shape
    ]
    extra = sorted(set(got) - set(want.files))
    print(
        f"{len(want.files)} arrays of {n_cfg} configurations: {len(bad)} differ, {len(extra)} new"
    )
    for k in bad[:20]:
        a, b = got.get(k), want[k]
        diff = "missing" if a is None else float(np.max(np.abs(a - b), initial=0))
        print("  differs:", k, diff)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
