"""Figures that explain jaxconv's backward passes on real numbers (PNGs under experiments/results/).

fig_rot180.png             a kernel and its 180-degree rotation; true convolution (flip=True) of x
                           with w equals cross-correlation with rot180(w) (seed 001 Eq. 1-3).
fig_strided_input_grad.png the stride-2 input gradient (seeds 000, 001 Eq. 20-21, 002): dilate the
                           output gradient with s-1 zeros, pad by k-1, full correlation with
                           rot180(w); compared with jax.vjp of jaxconv.conv and of lax.
fig_polyphase.png          the same gradient without inserted zeros (seed 004's i % stride, seed
                           002's "two convolutions"): phase r of dx is a stride-1 full convolution
                           of g with the sub-kernel w[r::2]; the phases interleave to dx.
fig_pool_routing.png       max-pool backward routes each gradient to its window's winner; average
                           pooling spreads g/N over the window (seed 001's pooling section).

Every number drawn is computed here: with NumPy loops written from the documents' equations, and
with jax.vjp through jaxconv; each figure states the largest difference between the two.

Usage::

    python experiments/figures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

_common.use_agg()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import jaxconv as jc  # noqa: E402

# Cell background colours by role.
DATA, ZERO_INSERTED, ZERO_PAD, RESULT = "#9ecae1", "#fdd0a2", "#e0e0e0", "#a1d99b"
KERNEL = "#dadaeb"


# --------------------------------------------------------------------------------- drawing
def grid(ax, a, title, colors=None, fmt=None, highlight=None, labels=None, fontsize=11, box=None):
    """Draw a 1-D or 2-D array as a table of annotated cells.

    colors: one colour for all cells, or an array of colours (same shape as `a`);
    highlight: boolean mask of cells outlined in red; labels: per-cell text under the value;
    box: (row, col, height, width) of a block outlined in red.
    """
    a = np.asarray(a, dtype=float)
    a2 = a[None, :] if a.ndim == 1 else a
    rows, cols = a2.shape
    col = np.full(a2.shape, DATA, dtype=object) if colors is None else np.asarray(colors, object)
    if col.ndim == 0:
        col = np.full(a2.shape, col.item(), dtype=object)
    col = col.reshape(a2.shape)
    hi = None if highlight is None else np.asarray(highlight).reshape(a2.shape)
    lab = None if labels is None else np.asarray(labels, object).reshape(a2.shape)
    if fmt is None:
        ints = np.all(np.abs(a2 - np.round(a2)) < 1e-9)
        fmt = "{:.0f}" if ints else "{:.2f}"
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=col[r, c], edgecolor="white", lw=1.5))
            v = a2[r, c]
            text = fmt.format(0.0 if v == 0 else v)
            y = r + 0.5 if lab is None else r + 0.4
            ax.text(c + 0.5, y, text, ha="center", va="center", fontsize=fontsize)
            if lab is not None and lab[r, c]:
                ax.text(
                    c + 0.5,
                    r + 0.78,
                    lab[r, c],
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#444444",
                )
            if hi is not None and hi[r, c]:
                ax.add_patch(
                    Rectangle(
                        (c + 0.05, r + 0.05), 0.9, 0.9, fill=False, edgecolor="#d62728", lw=2.5
                    )
                )
    if box is not None:
        r, c, h, w = box
        ax.add_patch(
            Rectangle(
                (c + 0.03, r + 0.03), w - 0.06, h - 0.06, fill=False, edgecolor="#d62728", lw=3
            )
        )
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title(title, fontsize=10)


def legend(fig, entries, y=0.01):
    handles = [Rectangle((0, 0), 1, 1, facecolor=c) for c, _ in entries]
    fig.legend(
        handles,
        [t for _, t in entries],
        loc="lower center",
        ncol=len(entries),
        frameon=False,
        fontsize=9,
        bbox_to_anchor=(0.5, y),
    )


# --------------------------------------------------------------------------- NumPy equations
def correlate2d_valid(x, k):
    """Cross-correlation, no padding: out[i, j] = sum_{m, n} k[m, n] x[i + m, j + n]."""
    kh, kw = k.shape
    out = np.zeros((x.shape[0] - kh + 1, x.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(k * x[i : i + kh, j : j + kw])
    return out


def dilate(g, s):
    """Insert s-1 zeros between the elements of g along every axis."""
    out = np.zeros(tuple((n - 1) * s + 1 for n in g.shape))
    out[tuple(slice(None, None, s) for _ in g.shape)] = g
    return out


def vjp_input(f, x, g):
    """dL/dx of f at x for the cotangent g, via jax.vjp (float64)."""
    _, pull = jax.vjp(f, jnp.asarray(x))
    return np.asarray(pull(jnp.asarray(g))[0])


# --------------------------------------------------------------------------------- figures
def fig_rot180(out: Path) -> float:
    w = np.arange(1, 10, dtype=float).reshape(3, 3)
    x = np.array([[1, 0, 2, 1], [0, 1, 3, 0], [2, 1, 0, 1], [1, 2, 1, 0]], float)
    rot = w[::-1, ::-1]
    y_corr = correlate2d_valid(x, rot)
    y_jc = np.asarray(
        jc.conv(jnp.asarray(x)[None, :, :, None], jnp.asarray(w)[:, :, None, None], flip=True)
    )[0, :, :, 0]
    err = float(np.max(np.abs(y_jc - y_corr)))
    labels = np.array([[f"w[{i},{j}]" for j in range(3)] for i in range(3)], object)
    cmap = plt.get_cmap("Pastel1")
    cols = np.array([[cmap(i * 3 + j) for j in range(3)] for i in range(3)], object)
    cols_obj = np.empty((3, 3), object)
    for i in range(3):
        for j in range(3):
            cols_obj[i, j] = cols[i, j]

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), gridspec_kw={"width_ratios": [3, 3, 4, 2]})
    grid(axes[0], w, "kernel w (3x3)", colors=cols_obj, labels=labels)
    grid(
        axes[1],
        rot,
        "rot180(w) = w[::-1, ::-1]\n(w[i,j] moves to w[2-i, 2-j])",
        colors=cols_obj[::-1, ::-1],
        labels=labels[::-1, ::-1],
    )
    grid(axes[2], x, "input x (4x4)")
    grid(axes[3], y_jc, "y = conv(x, w, flip=True)\n= correlate(x, rot180(w))", colors=RESULT)
    fig.suptitle(
        "Convolution flips the kernel: true convolution with w (the documents' *) is the "
        f"cross-correlation with rot180(w)   [max |jaxconv - NumPy| = {err:.0e}]",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out / "fig_rot180.png", dpi=130)
    plt.close(fig)
    return err


def fig_strided_input_grad(out: Path) -> float:
    """dx of a 5x5 input, 3x3 kernel, stride 2, no padding: output 2x2."""
    s, k, n = 2, 3, 5
    w = np.array([[1, 0, -1], [2, 1, 0], [0, -1, 2]], float)
    g = np.array([[1, 2], [3, -1]], float)
    gd = dilate(g, s)  # 3x3
    p = k - 1  # full correlation: pad k-1 on each side
    gp = np.pad(gd, p)  # 7x7
    dx = correlate2d_valid(gp, w[::-1, ::-1])  # 5x5
    assert dx.shape == (n, n), dx.shape

    x = np.zeros((1, n, n, 1))
    wj = jnp.asarray(w)[:, :, None, None]
    dx_jc = vjp_input(lambda a: jc.conv(a, wj, stride=s), x, g[None, :, :, None])[0, :, :, 0]
    dx_lax = vjp_input(
        lambda a: lax.conv_general_dilated(
            a, wj, (s, s), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        ),
        x,
        g[None, :, :, None],
    )[0, :, :, 0]
    err = float(max(np.max(np.abs(dx_jc - dx)), np.max(np.abs(dx_lax - dx))))

    dil_col = np.full(gd.shape, ZERO_INSERTED, object)
    dil_col[::s, ::s] = DATA
    pad_col = np.full(gp.shape, ZERO_PAD, object)
    pad_col[p:-p, p:-p] = dil_col

    fig, axes = plt.subplots(2, 3, figsize=(12, 7.6))
    grid(
        axes[0, 0],
        w,
        "kernel w (3x3), forward stride 2:\ny = correlate(x 5x5, w)[::2, ::2] (2x2)",
        colors=KERNEL,
    )
    grid(axes[0, 1], g, "g = dL/dy (2x2)")
    grid(
        axes[0, 2],
        gd,
        f"1. dilate g: insert s-1 = {s - 1} zero\nbetween elements (3x3)",
        colors=dil_col,
    )
    grid(
        axes[1, 0],
        gp,
        f"2. pad by k-1 = {p} on every side (7x7)\n(red: the window giving dx[0,0])",
        colors=pad_col,
        box=(0, 0, k, k),
        fontsize=10,
    )
    grid(axes[1, 1], w[::-1, ::-1], "3. rot180(w)", colors=KERNEL)
    grid(
        axes[1, 2], dx, "4. dx = full correlation of\npadded g with rot180(w) (5x5)", colors=RESULT
    )
    fig.suptitle(
        "Input gradient of a stride-2 convolution (seeds 000, 001 Eq. 20-21): "
        "dilate, pad, correlate with rot180(w)\n"
        f"max |NumPy - jax.vjp(jaxconv.conv)| and |NumPy - jax.vjp(lax.conv)| = {err:.0e}",
        fontsize=11,
    )
    legend(
        fig,
        [
            (KERNEL, "kernel"),
            (DATA, "values of g"),
            (ZERO_INSERTED, "zeros inserted by the stride"),
            (ZERO_PAD, "zero padding (k-1)"),
            (RESULT, "dx"),
        ],
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(out / "fig_strided_input_grad.png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return err


def fig_polyphase(out: Path) -> float:
    """1-D: n = 11 inputs, k = 5 kernel, stride 2 -> 4 outputs; dx from two stride-1 convs."""
    s, n = 2, 11
    w = np.array([1, -2, 3, 1, 2], float)
    g = np.array([2, -1, 1, 3], float)
    # Phase r: dx[s q + r] = sum_t w[r + s t] g[q - t]: full convolution of g with w[r::s].
    phases = [np.convolve(g, w[r::s])[: len(range(r, n, s))] for r in range(s)]
    dx = np.zeros(n)
    for r in range(s):
        dx[r::s] = phases[r]
    x = np.zeros((1, n, 1))
    dx_jc = vjp_input(
        lambda a: jc.conv(a, jnp.asarray(w)[:, None, None], stride=s), x, g[None, :, None]
    )[0, :, 0]
    err = float(np.max(np.abs(dx_jc - dx)))

    phase_cols = ["#9ecae1", "#fdae6b"]
    w_cols = np.array([phase_cols[m % s] for m in range(len(w))], object)
    dx_cols = np.array([phase_cols[i % s] for i in range(n)], object)
    w_lab = np.array([f"w[{m}]" for m in range(len(w))], object)
    dx_lab = np.array([f"dx[{i}]" for i in range(n)], object)

    fig = plt.figure(figsize=(12, 7.6))
    gs = fig.add_gridspec(5, 12, hspace=1.1)
    grid(
        fig.add_subplot(gs[0, 0:5]),
        w,
        "kernel w (k = 5), stride 2; n = 11 inputs, 4 outputs",
        colors=w_cols,
        labels=w_lab,
    )
    grid(fig.add_subplot(gs[0, 6:10]), g, "g = dL/dy (4 outputs)")
    grid(
        fig.add_subplot(gs[1, 0:3]),
        w[0::2],
        "phase 0 sub-kernel w[0::2]",
        colors=phase_cols[0],
        labels=w_lab[0::2],
    )
    grid(
        fig.add_subplot(gs[1, 6:8]),
        w[1::2],
        "phase 1 sub-kernel w[1::2]",
        colors=phase_cols[1],
        labels=w_lab[1::2],
    )
    grid(
        fig.add_subplot(gs[2, 0:6]),
        phases[0],
        "phase 0: full stride-1 convolution g * w[0::2]\n"
        "= correlation with rot180(w[0::2])  ->  dx[0::2]",
        colors=phase_cols[0],
        labels=dx_lab[0::2],
    )
    grid(
        fig.add_subplot(gs[2, 6:11]),
        phases[1],
        "phase 1: g * w[1::2]  ->  dx[1::2]",
        colors=phase_cols[1],
        labels=dx_lab[1::2],
    )
    grid(
        fig.add_subplot(gs[3, 0:11]),
        dx,
        "interleave the phases: dx[i] comes from phase i % 2",
        colors=dx_cols,
        labels=dx_lab,
    )
    grid(
        fig.add_subplot(gs[4, 0:11]),
        dx_jc,
        "jax.vjp(jaxconv.conv, stride=2) for comparison",
        colors=RESULT,
    )
    fig.suptitle(
        "Polyphase input gradient (seed 004's i % stride; seed 002's 'two convolutions'): "
        "no multiplications by inserted zeros\n"
        f"dx[2q + r] = sum_t w[r + 2t] g[q - t]      max |phases - jax.vjp| = {err:.0e}",
        fontsize=11,
    )
    fig.savefig(out / "fig_polyphase.png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    return err


def fig_pool_routing(out: Path) -> float:
    x = np.array([[1, 3, 2, 0], [4, 2, 1, 5], [0, 1, 3, 2], [2, 6, 1, 1]], float)
    g = np.array([[1, 2], [3, 4]], float)
    # NumPy: each window's gradient goes to its (first) maximum; or spreads g/4 over it.
    dx_max, dx_avg, winners = np.zeros_like(x), np.zeros_like(x), np.zeros(x.shape, bool)
    for i in range(2):
        for j in range(2):
            win = x[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            a, b = np.unravel_index(np.argmax(win), win.shape)
            dx_max[2 * i + a, 2 * j + b] += g[i, j]
            winners[2 * i + a, 2 * j + b] = True
            dx_avg[2 * i : 2 * i + 2, 2 * j : 2 * j + 2] += g[i, j] / 4
    x4, g4 = x[None, :, :, None], g[None, :, :, None]
    y_max = np.asarray(jc.max_pool(jnp.asarray(x4), 2, stride=2))[0, :, :, 0]
    y_avg = np.asarray(jc.avg_pool(jnp.asarray(x4), 2, stride=2))[0, :, :, 0]
    jmax = vjp_input(lambda a: jc.max_pool(a, 2, stride=2), x4, g4)[0, :, :, 0]
    javg = vjp_input(lambda a: jc.avg_pool(a, 2, stride=2), x4, g4)[0, :, :, 0]
    err = float(max(np.max(np.abs(jmax - dx_max)), np.max(np.abs(javg - dx_avg))))

    pal = ["#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb"]
    win_cols = np.empty((4, 4), object)
    for r in range(4):
        for c in range(4):
            win_cols[r, c] = pal[(r // 2) * 2 + c // 2]
    g_cols = np.array([[pal[0], pal[1]], [pal[2], pal[3]]], object)
    fig, axes = plt.subplots(2, 3, figsize=(11.5, 7.6))
    grid(
        axes[0, 0],
        x,
        "x (4x4), 2x2 windows, stride 2\n(red: each window's maximum)",
        colors=win_cols,
        highlight=winners,
    )
    grid(axes[0, 1], y_max, "y = max_pool(x)", colors=g_cols)
    grid(
        axes[0, 2],
        jmax,
        "max-pool dx: g routed to the winners\n(jax.vjp of jaxconv.max_pool)",
        colors=win_cols,
        highlight=winners,
    )
    grid(axes[1, 0], g, "incoming g = dL/dy (both pools)", colors=g_cols)
    grid(axes[1, 1], y_avg, "y = avg_pool(x)", colors=g_cols)
    grid(
        axes[1, 2],
        javg,
        "avg-pool dx: g/4 spread over each window\n(jax.vjp of jaxconv.avg_pool)",
        colors=win_cols,
    )
    fig.suptitle(
        "Pooling backward (seed 001): max routes g to the recorded winner, average spreads g/N\n"
        f"max |NumPy - jax.vjp(jaxconv)| = {err:.0e}",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out / "fig_pool_routing.png", dpi=130)
    plt.close(fig)
    return err


FIGURES = {
    "fig_rot180.png": fig_rot180,
    "fig_strided_input_grad.png": fig_strided_input_grad,
    "fig_polyphase.png": fig_polyphase,
    "fig_pool_routing.png": fig_pool_routing,
}


def main(argv=None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="output folder (default experiments/results/)")
    ap.add_argument("--quick", action="store_true", help="accepted for symmetry; figures are fast")
    args = ap.parse_args(argv)
    out = _common.results_dir(args.out)
    jax.config.update("jax_enable_x64", True)  # float64: exact small integers in every panel
    _common.print_banner("figures of the backward passes", _common.environment(("matplotlib",)))
    errors = {}
    for name, fn in FIGURES.items():
        errors[name] = fn(out)
        print(f"wrote {out / name}   (max |NumPy - jax.vjp| = {errors[name]:.1e})")
    worst = max(errors.values())
    if worst > 1e-9:
        raise SystemExit(f"figures: numbers disagree with jax.vjp (max error {worst:.2e})")
    return errors


if __name__ == "__main__":
    main()
