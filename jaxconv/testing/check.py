r"""`jaxconv.testing.check`: `check_rules`, which holds a function's hand-written derivative
rules (``jax.custom_vjp``, ``jax.custom_jvp``, a primitive's JVP / transpose / batching rules)
to a reference, to any order, under ``jit`` and ``vmap``, and says which check failed.

``jax.test_util.check_grads`` compares derivatives with finite differences, eagerly; it says
that something is off, not which rule. `check_rules` runs the checks below at one point,
compiles them together (one program for the derivatives of f and of the reference, the
``vmap`` check included), and reports every failing check by name, argument, order and error.

What each check proves (x the arguments, J the Jacobian of f at x; t, u random tangents and c
a random cotangent, drawn once per call from `seed`):

- **values**: f(x) = reference(x): the forward pass is right.
- **jit**: ``jit(f)(x)`` equals the eager f(x), and so do the first-order JVP and VJP: no
  Python-side state read at trace time, no branch that differs between tracing and running,
  lowerings that agree with the eager implementation.
- **forward mode, order k**: the k-th directional derivative, the JVP of the JVP ... of f,

  .. math:: D^k f(x)[t_1, \ldots, t_k], \qquad
            D^k f(x)[t_1, \ldots, t_k] = \frac{\partial}{\partial \epsilon}
            D^{k-1} f(x + \epsilon t_k)[t_1, \ldots, t_{k-1}] \Big|_{\epsilon=0},

  equals the reference's. Order 1 checks f's JVP rule; order 2 checks that the JVP rule is
  itself differentiated right (its derivative with respect to the primal, the second
  derivative of f), and so on.
- **reverse mode, order k**: order 1 is the VJP for a random cotangent,
  :math:`F_1(x) = J(x)^\top c`; order k is the VJP of the previous order's,

  .. math:: F_k(x) = \nabla_x \langle F_{k-1}(x), u_{k-1} \rangle ,

  i.e. the derivative of the backward pass itself (its residuals, and rules that read their
  primal inputs): a backward pass that is right at order 1 but treats its saved input as a
  constant (``stop_gradient``) gives :math:`F_2 = 0`.
- **transpose identity** (both modes asked): f's own JVP and VJP are transposes of each other,

  .. math:: \langle J t, c \rangle = \sum_j (J t)_j\, c_j
            = \sum_i t_i\, (J^\top c)_i = \langle t, J^\top c \rangle ,

  (for complex values the real part of these bilinear sums: JAX's convention). It needs no
  reference: it catches a VJP inconsistent with the JVP, e.g. a primitive whose transpose rule
  is not the transpose of its JVP.
- **vmap**: ``vmap(f)`` over two stacked copies of the arguments (the second 0.5 x + 0.25,
  which keeps positive inputs positive and distinct inputs distinct, in the same order) equals
  f of each copy, and so do the first-order JVP and VJP under ``vmap``: the batching rules.

Why random directions suffice: a linear map L that agrees with the right one L* on a random
t, :math:`L t = L^* t`, equals it with probability 1 (:math:`(L - L^*) t = 0` only on the null
space of :math:`L - L^*`, of measure zero unless :math:`L = L^*`).

With ``reference=None`` the forward and reverse checks use finite differences instead
(``jax.test_util.check_grads``, with its tolerances unless `atol` / `rtol` are given), per
argument where one fails; the other checks are the same.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads
from jax.tree_util import keystr

from jaxconv.testing.inputs import tolerance

_MODE_NAMES = {"fwd": "forward mode", "rev": "reverse mode"}


@dataclass(frozen=True)
class _Failure:
    check: str  # e.g. "reverse mode, order 2"
    where: str  # e.g. "argument 0 (`x`)"
    detail: str  # the error found


@dataclass(frozen=True)
class _Args:
    """The flattened arguments: differentiable (inexact) leaves and those held constant."""

    treedef: Any
    leaves: tuple
    names: tuple  # one description per leaf: "argument 1 (`w`)", "argument 0 (`p`)['b']"
    diff: tuple  # positions of the inexact leaves

    @property
    def const(self) -> tuple:
        return tuple(i for i in range(len(self.leaves)) if i not in self.diff)

    def split(self, leaves):
        return [leaves[i] for i in self.diff], [leaves[i] for i in self.const]

    def merge(self, d, c):
        leaves = [None] * len(self.leaves)
        for i, x in zip(self.diff, d):
            leaves[i] = x
        for i, x in zip(self.const, c):
            leaves[i] = x
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def _arg_names(f, n: int) -> list[str]:
    """The names of f's first n positional parameters, from its signature where it has one."""
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return [""] * n
    names = []
    for i in range(n):
        if i < len(params) and params[i].kind in (
            params[i].POSITIONAL_ONLY,
            params[i].POSITIONAL_OR_KEYWORD,
        ):
            names.append(params[i].name)
        else:
            star = [p for p in params[: i + 1] if p.kind is p.VAR_POSITIONAL]
            names.append(f"{star[0].name}[{i - params.index(star[0])}]" if star else "")
    return names


def _describe_args(f, args) -> _Args:
    flat, treedef = jax.tree_util.tree_flatten_with_path(args)
    names = _arg_names(f, len(args))
    leaves, descriptions, diff = [], [], []
    for j, (path, leaf) in enumerate(flat):
        try:
            leaf = jnp.asarray(leaf)
        except TypeError as e:
            raise TypeError(
                f"check_rules: `args` (argument {path[0].idx}{keystr(path[1:])}: {leaf!r}) is "
                "not an array: close over settings (a lambda or functools.partial) and pass "
                "only arrays"
            ) from e
        i = path[0].idx
        name = f" (`{names[i]}`)" if names[i] else ""
        descriptions.append(f"argument {i}{name}{keystr(path[1:])}")
        leaves.append(leaf)
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            diff.append(j)
    return _Args(treedef, tuple(leaves), tuple(descriptions), tuple(diff))


def _output_names(struct) -> tuple[list[str], list, Any]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(struct)
    names = [f"output{keystr(p)}" for p, _ in flat]
    return names, [s for _, s in flat], treedef


def _inexact(struct) -> list[int]:
    return [i for i, s in enumerate(struct) if jnp.issubdtype(s.dtype, jnp.inexact)]


def _draw(r: np.random.Generator, like) -> jax.Array:
    shape, dtype = tuple(like.shape), like.dtype
    x = r.standard_normal(shape)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        x = x + 1j * r.standard_normal(shape)
    return jnp.asarray(x, dtype=dtype)


@dataclass(frozen=True)
class _Draws:
    t: list  # order x [one tangent per differentiable leaf]
    c: list  # one cotangent per inexact output leaf
    u: list  # (order - 1) x [one per differentiable leaf]: the VJP of the VJP's cotangents


def _draws(seed: int, d, out_struct, out_inexact, order: int) -> _Draws:
    r = np.random.default_rng(seed)
    t = [[_draw(r, x) for x in d] for _ in range(order)]
    c = [_draw(r, out_struct[i]) for i in out_inexact]
    u = [[_draw(r, x) for x in d] for _ in range(max(order - 1, 0))]
    return _Draws(t, c, u)


jax.tree_util.register_dataclass(_Draws, data_fields=["t", "c", "u"], meta_fields=[])


# ---------------------------------------------------------------------------- derivatives


def _forward(g, d, ts):
    """[g(d), Dg(d)[t1], D²g(d)[t1, t2], ...]: nested JVPs, each order's primal reused."""

    def h(d):
        return [g(d)]

    for t in ts:

        def h(d, h=h, t=t):
            primal, tangent = jax.jvp(h, (d,), (t,))
            return [*primal, tangent[-1]]

    return h(d)


def _reverse(g, d, c, us):
    """[g(d), F1 = vjp(c), F2 = VJP of <F1, u1>, ...]: nested VJPs, each order's primal reused."""

    def r(d):
        y, pull = jax.vjp(g, d)
        return [y, pull(c)[0]]

    for u in us:

        def r(d, r=r, u=u):
            def top(d):
                out = r(d)
                return out[-1], out[:-1]

            last, pull, rest = jax.vjp(top, d, has_aux=True)
            return [*rest, last, pull(u)[0]]

    return r(d)


@dataclass(frozen=True)
class _Setup:
    """One call of check_rules: the functions, the point, the draws and the options."""

    f: Callable
    reference: Callable | None
    spec: _Args
    out_names: list  # one per output leaf: "output", "output[1]", "output['a']"
    out_inexact: list  # positions of the inexact output leaves (the differentiated ones)
    d: list  # the differentiable argument leaves
    c: list  # the constant ones
    draws: _Draws
    order: int
    modes: tuple
    jit: bool
    vmap: bool
    rtol: float | None
    atol: float | None

    @property
    def diff_names(self) -> list[str]:
        return [self.spec.names[i] for i in self.spec.diff]

    @property
    def inexact_names(self) -> list[str]:
        return [self.out_names[i] for i in self.out_inexact]

    def outputs(self, fun):
        """g(d, c): fun's inexact output leaves as a function of the argument leaves."""

        def g(d, c):
            leaves = jax.tree_util.tree_leaves(fun(*self.spec.merge(d, c)))
            return [leaves[i] for i in self.out_inexact]

        return g

    def derivatives(self, fun, d, c, order: int, draws: _Draws) -> dict:
        """fun's value (every output leaf) and its derivatives of orders 1..order:
        {"value": [...], "fwd": [order 1, order 2, ...], "rev": [...]}. (The draws are passed,
        not read from self, so that a compiled program takes them as arguments.)"""
        res = {"value": jax.tree_util.tree_leaves(fun(*self.spec.merge(d, c)))}
        if order == 0:
            return res
        g = self.outputs(fun)
        if "fwd" in self.modes:
            res["fwd"] = _forward(lambda d: g(d, c), d, draws.t[:order])[1:]
        if "rev" in self.modes:
            res["rev"] = _reverse(lambda d: g(d, c), d, draws.c, draws.u[: order - 1])[1:]
        return res

    def forward_per_argument(self, fun, d, c, order: int, draws: _Draws) -> list:
        """Per differentiable leaf i: the forward derivatives with tangents in leaf i alone."""
        g = self.outputs(fun)
        out = []
        for i in range(len(d)):
            ts = [[t if j == i else jnp.zeros_like(t) for j, t in enumerate(tk)] for tk in draws.t]
            out.append(_forward(lambda d: g(d, c), d, ts[:order])[1:])
        return out

    def run(self, program, *args):
        """program(*args), compiled (with jit) as one program, fetched to NumPy."""
        return jax.device_get((jax.jit(program) if self.jit else program)(*args))

    def compare(self, check, wheres, actual, expected, names=("f", "reference")) -> list:
        out = []
        for where, a, e in zip(wheres, actual, expected):
            detail = _compare(a, e, self.rtol, self.atol, names)
            if detail:
                out.append(_Failure(check, where, detail))
        return out


# ---------------------------------------------------------------------------- comparisons


def _fmt(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    return f"{v:.6g}" if isinstance(v, float | complex) else repr(v)


def _tolerances(dtype, rtol, atol) -> tuple[float, float, str]:
    d_rtol, d_atol = tolerance(dtype)
    given = [n for n, v in (("rtol", rtol), ("atol", atol)) if v is not None]
    source = f"{np.dtype(dtype)} defaults" if not given else f"{' and '.join(given)} given"
    return (d_rtol if rtol is None else rtol), (d_atol if atol is None else atol), source


def _compare(actual, expected, rtol, atol, names=("f", "reference")) -> str | None:
    """None where max |a - e| <= atol + rtol * max(1, max |e|), else what differs and where."""
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return f"shape {a.shape} from {names[0]}, {e.shape} from {names[1]}"
    if a.dtype != e.dtype:
        return f"dtype {a.dtype} from {names[0]}, {e.dtype} from {names[1]}"
    if a.size == 0:
        return None
    rtol, atol, source = _tolerances(e.dtype, rtol, atol)
    wide = np.complex128 if np.iscomplexobj(a) else np.float64
    a64, e64 = a.astype(wide), e.astype(wide)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a64 - e64)
    same = (a64 == e64) | (np.isnan(a64) & np.isnan(e64))  # equal infinities and NaNs agree
    diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
    scale = max(1.0, float(np.max(np.abs(e64[np.isfinite(e64)]), initial=0.0)))
    bound = atol + rtol * scale
    worst = int(np.argmax(diff))
    err = float(diff.flat[worst])
    if err <= bound:
        return None
    at = tuple(int(i) for i in np.unravel_index(worst, a.shape))
    return (
        f"max abs error {err:.3g} at index {at} ({names[0]} {_fmt(a[at])}, {names[1]} "
        f"{_fmt(e[at])}); max relative error {err / scale:.3g} (relative to "
        f"max(1, max|{names[1]}|) = {scale:.3g}); tolerance atol + rtol * {scale:.3g} = "
        f"{bound:.3g} (rtol {rtol:.3g}, atol {atol:.3g}: {source})"
    )


def _pairing(a, b) -> tuple[float, float]:
    """(Re Σ a·b, Σ |a·b|) over two lists of arrays, in float64."""
    total, size = 0.0, 0.0
    for x, y in zip(a, b):
        xy = (
            np.asarray(x).astype(np.complex128).ravel()
            * np.asarray(y).astype(np.complex128).ravel()
        )
        total += float(np.sum(xy).real)
        size += float(np.sum(np.abs(xy)))
    return total, size


def _transpose_gap(jt, c, t, vjp, rtol, atol) -> str | None:
    """None where <J t, c> = <t, J^T c> within tolerance (relative to the sum of |terms|)."""
    lhs, lsize = _pairing(jt, c)
    rhs, rsize = _pairing(t, vjp)
    dtypes = [np.dtype(np.asarray(x).dtype) for x in (*jt, *vjp)] or [np.dtype(np.float64)]
    least = max(dtypes, key=lambda dt: float(jnp.finfo(dt).eps))
    rtol, atol, source = _tolerances(least, rtol, atol)
    scale = max(1.0, lsize, rsize)
    err, bound = abs(lhs - rhs), atol + rtol * scale
    if err <= bound:
        return None
    return (
        f"<J t, c> = {lhs:.10g} (f's JVP), <t, J^T c> = {rhs:.10g} (f's VJP): abs error "
        f"{err:.3g}, relative error {err / scale:.3g} (relative to max(1, sum |terms|) = "
        f"{scale:.3g}); tolerance {bound:.3g} (rtol {rtol:.3g}, atol {atol:.3g}: {source})"
    )


# ---------------------------------------------------------------------------- the checks


def _program(s: _Setup):
    """Everything one compiled program computes: f's values and derivatives (to `order`
    against a reference, to order 1 otherwise: transpose identity, jit, vmap), the
    reference's, and vmap of f's first order over two stacked copies."""
    f_order = s.order if s.reference is not None else min(s.order, 1)

    def program(d, c, d2, draws):
        res = {"f": s.derivatives(s.f, d, c, f_order, draws)}
        if s.reference is not None:
            res["reference"] = s.derivatives(s.reference, d, c, s.order, draws)
        if s.vmap:
            first = lambda d, c: s.derivatives(s.f, d, c, min(s.order, 1), draws)  # noqa: E731
            pair = lambda x, y: jnp.stack([x, y])  # noqa: E731
            res["vmap"] = jax.vmap(first)(
                [pair(x, y) for x, y in zip(d, d2)], [pair(x, x) for x in c]
            )
            res["copy 1"] = first(d2, c)
        return res

    return program


def _no_forward_rule(s: _Setup, error: Exception) -> None:
    """Raise the clear error where forward mode is asked of a function that has none."""
    for fun, who in ((s.f, "f"), (s.reference, "the reference")):
        if fun is None:
            continue
        try:
            g = s.outputs(fun)
            jax.jvp(lambda d, g=g: g(d, s.c), (s.d,), (s.draws.t[0],))  # eagerly: jit defers it
        except TypeError as e:
            if "forward-mode" in str(e):
                raise TypeError(
                    f"check_rules: `modes` (={s.modes!r}) asks for forward mode, but {who} has "
                    "no forward-mode rule (a jax.custom_vjp function has none: jax.jvp, jacfwd "
                    "and hessian of it fail too): pass modes=('rev',), or write it as a "
                    "jax.custom_jvp"
                ) from error


def _jit_failures(s: _Setup, res) -> list[_Failure]:
    """jit(f) and its first-order JVP / VJP (from the compiled program) vs eager runs."""
    eager = jax.device_get(s.derivatives(s.f, s.d, s.c, min(s.order, 1), s.draws))
    names = ("jit", "eager")
    out = s.compare("jit", s.out_names, res["f"]["value"], eager["value"], names)
    for mode, wheres in (("fwd", s.inexact_names), ("rev", s.diff_names)):
        if mode in eager:
            check = f"jit ({_MODE_NAMES[mode]}, order 1)"
            out += s.compare(check, wheres, res["f"][mode][0], eager[mode][0], names)
    return out


def _reference_failures(s: _Setup, res) -> list[_Failure]:
    """Values and forward / reverse derivatives of each order, f's vs the reference's."""
    mine, theirs = res["f"], res["reference"]
    out = s.compare("values", s.out_names, mine["value"], theirs["value"])
    for k in range(1, s.order + 1):
        if "fwd" in s.modes:
            check = f"forward mode, order {k}"
            found = s.compare(check, s.inexact_names, mine["fwd"][k - 1], theirs["fwd"][k - 1])
            out += _localize_forward(s, k, found) if found else []
        if "rev" in s.modes:
            check = f"reverse mode, order {k}"
            out += s.compare(check, s.diff_names, mine["rev"][k - 1], theirs["rev"][k - 1])
    return out


def _localize_forward(s: _Setup, k: int, found: list[_Failure]) -> list[_Failure]:
    """The argument whose tangent alone reproduces a forward-mode failure of order k."""

    def program(d, c, draws):
        return (
            s.forward_per_argument(s.f, d, c, k, draws),
            s.forward_per_argument(s.reference, d, c, k, draws),
        )

    mine, theirs = s.run(program, s.d, s.c, s.draws)
    for i, arg in enumerate(s.diff_names):
        alone = s.compare(found[0].check, s.inexact_names, mine[i][k - 1], theirs[i][k - 1])
        if alone:
            return [
                _Failure(x.check, f"{arg} (its tangent alone), {x.where}", x.detail) for x in alone
            ]
    cross = "all arguments together (each alone passes: a cross derivative)"
    return [_Failure(x.check, f"{cross}, {x.where}", x.detail) for x in found]


def _finite_difference_failures(s: _Setup) -> list[_Failure]:
    """check_grads per mode; where it fails, again per argument and order, to name them."""
    g = s.outputs(s.f)

    def whole(*d):
        return g(list(d), s.c)

    run = jax.jit(whole) if s.jit else whole

    def grads(fun, args, k, mode):
        try:
            check_grads(fun, args, k, modes=[mode], atol=s.atol, rtol=s.rtol)
        except AssertionError as e:
            return f"finite differences (jax.test_util.check_grads): {str(e).strip()}"
        return None

    out = []
    for mode in s.modes:
        if grads(run, tuple(s.d), s.order, mode) is None:
            continue
        out.append(_localize_finite_differences(s, run, grads, mode))
    return out


def _localize_finite_differences(s: _Setup, run, grads, mode) -> _Failure:
    d = s.d
    for i, arg in enumerate(s.diff_names):

        def alone(x, i=i):
            return run(*d[:i], x, *d[i + 1 :])

        for k in range(1, s.order + 1):
            detail = grads(alone, (d[i],), k, mode)
            if detail:
                return _Failure(f"{_MODE_NAMES[mode]}, order {k}", arg, detail)
    cross = "all arguments together (each alone passes: a cross derivative)"
    for k in range(1, s.order + 1):
        detail = grads(run, tuple(d), k, mode)
        if detail:
            return _Failure(f"{_MODE_NAMES[mode]}, order {k}", cross, detail)
    raise AssertionError(f"check_rules: {_MODE_NAMES[mode]}: check_grads failed, then passed")


def _transpose_failures(s: _Setup, res) -> list[_Failure]:
    """<J t, c> = <t, J^T c> with f's own JVP and VJP; per argument where it fails."""
    mine = res["f"]
    gap = _transpose_gap(mine["fwd"][0], s.draws.c, s.draws.t[0], mine["rev"][0], s.rtol, s.atol)
    if gap is None:
        return []
    first = lambda d, c, draws: s.forward_per_argument(s.f, d, c, 1, draws)  # noqa: E731
    per_arg = s.run(first, s.d, s.c, s.draws)
    for i, arg in enumerate(s.diff_names):
        t_i, vjp_i = [s.draws.t[0][i]], [mine["rev"][0][i]]
        alone = _transpose_gap(per_arg[i][0], s.draws.c, t_i, vjp_i, s.rtol, s.atol)
        if alone:
            return [_Failure("transpose identity, order 1", arg, alone)]
    return [_Failure("transpose identity, order 1", "all arguments together", gap)]


def _vmap_failures(s: _Setup, res) -> list[_Failure]:
    """vmap(f) and its first-order JVP / VJP vs each of the two copies alone."""
    copies = [
        (k, single, jax.tree_util.tree_map(lambda x, k=k: x[k], res["vmap"]))
        for k, single in enumerate((res["f"], res["copy 1"]))
    ]
    out = []
    for kind, check, leaves in (
        ("value", "vmap", s.out_names),
        ("fwd", "vmap (forward mode, order 1)", s.inexact_names),
        ("rev", "vmap (reverse mode, order 1)", s.diff_names),
    ):
        for k, single, batched in copies:
            if kind not in batched:
                continue
            wheres = [f"{n}, copy {k}" for n in leaves]
            a, e = (
                (batched[kind], single[kind])
                if kind == "value"
                else (batched[kind][0], single[kind][0])
            )
            out += s.compare(check, wheres, a, e, ("vmap", f"copy {k} alone"))
    return out


# ---------------------------------------------------------------------------- messages


def _name(f) -> str:
    return getattr(f, "__name__", None) or type(f).__name__


def _does(check: str, finite: bool) -> str:
    """What a check compares, for the message."""
    against = "finite differences" if finite else "the reference's"
    if check.startswith(("forward mode", "reverse mode")):
        k = int(check.rsplit(" ", 1)[1])
        if check.startswith("forward"):
            if k == 1:
                return f"f's JVP J t for a random tangent t vs {against}"
            ts = "t1, t2" if k == 2 else f"t1, ..., t{k}"
            return f"f's JVP of the order-{k - 1} JVP, D^{k} f[{ts}], vs {against}"
        if k == 1:
            return f"f's VJP J^T c for a random cotangent c vs {against}"
        return f"f's VJP of the order-{k - 1} VJP, d/dx <F{k - 1}(x), u{k - 1}>, vs {against}"
    if check == "values":
        return "f(*args) vs reference(*args)"
    if check.startswith("jit"):
        return "jit(f) vs f run eagerly"
    if check.startswith("vmap"):
        return "vmap(f) over two stacked copies of the args (the second 0.5 x + 0.25) vs each copy"
    return "<J t, c> from f's JVP vs <t, J^T c> from f's VJP"


def _hints(failures: list[_Failure]) -> list[str]:
    checks = {x.check for x in failures}
    hints = []
    if "values" in checks:
        hints.append("the values differ, so derivatives are compared between different functions")
    second = sorted(
        c for c in checks if c.startswith("reverse mode, order ") and not c.endswith(" 1")
    )
    if second and "reverse mode, order 1" not in checks:
        hints.append(
            f"reverse mode passes at order 1 and fails at {second[0].split(', ')[1]}: the backward "
            "pass computes the right values but is not differentiated right -- it treats an input "
            "or residual as a constant (stop_gradient, a value computed outside JAX), or a rule "
            "of an op inside it is wrong"
        )
    return hints


def _message(f, failures: list[_Failure], seed: int) -> str:
    first, n = failures[0], len(failures)
    lines = [
        f"check_rules({_name(f)}): {n} check{'s' if n > 1 else ''} failed; the first: "
        f"{first.check}, {first.where}",
        f"(random tangents and cotangents drawn with seed={seed})",
    ]
    for x in failures:
        does = _does(x.check, x.detail.startswith("finite differences"))
        detail = x.detail.replace("\n", "\n    ")
        lines.append(f"- {x.check}, {x.where} [{does}]:\n    {detail}")
    lines += [f"hint: {h}" for h in _hints(failures)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- check_rules


def _validate(f, reference, order, modes, atol, rtol, seed) -> tuple[str, ...]:
    if not callable(f):
        raise TypeError(f"check_rules: `f` (={f!r}) is not callable")
    if reference is not None and not callable(reference):
        raise TypeError(f"check_rules: `reference` (={reference!r}) is neither None nor callable")
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or order < 0:
        raise ValueError(f"check_rules: `order` (={order!r}) must be an int >= 0")
    if isinstance(modes, str) or not all(m in _MODE_NAMES for m in modes):
        raise ValueError(
            f"check_rules: `modes` (={modes!r}) must be a sequence of 'fwd' and/or 'rev', "
            "e.g. ('rev',)"
        )
    for name, v in (("atol", atol), ("rtol", rtol)):
        number = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        if v is not None and not (number and v >= 0):
            raise ValueError(f"check_rules: `{name}` (={v!r}) must be None or a number >= 0")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"check_rules: `seed` (={seed!r}) must be an int")
    return tuple(m for m in _MODE_NAMES if m in modes)


def _setup(f, args, reference, order, modes, vmap, jit, atol, rtol, seed) -> _Setup:
    spec = _describe_args(f, args)
    d, c = spec.split(list(spec.leaves))
    if order and modes and not d:
        raise ValueError(
            "check_rules: `args` has no floating or complex array to differentiate: pass "
            "modes=() (or order=0) to check values, jit and vmap only"
        )
    out_struct = jax.eval_shape(lambda d, c: f(*spec.merge(d, c)), d, c)
    out_names, out_leaves, out_tree = _output_names(out_struct)
    if reference is not None:
        ref_struct = jax.eval_shape(lambda d, c: reference(*spec.merge(d, c)), d, c)
        ref_tree = jax.tree_util.tree_structure(ref_struct)
        ref_shapes = [s.shape for s in jax.tree_util.tree_leaves(ref_struct)]
        if ref_tree != out_tree or ref_shapes != [s.shape for s in out_leaves]:
            raise AssertionError(
                f"check_rules({_name(f)}): values: f returns {out_tree} of shapes "
                f"{[s.shape for s in out_leaves]}, the reference {ref_tree} of {ref_shapes}"
            )
    out_inexact = _inexact(out_leaves)
    draws = _draws(seed, d, out_leaves, out_inexact, order)
    return _Setup(
        f, reference, spec, out_names, out_inexact, d, c, draws, order, modes, jit, vmap, rtol, atol
    )


def check_rules(
    f: Callable,
    *args: Any,
    reference: Callable | None = None,
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    vmap: bool = True,
    jit: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
) -> None:
    r"""Check f's derivative rules against `reference`'s automatic derivatives (or finite
    differences), to `order`, in `modes`, under ``jit`` and ``vmap``; raise on any difference.

    The checks (the module docstring of `jaxconv.testing.check` says what each proves), with
    random tangents t and cotangents c, u drawn from `seed`:

    - values: f(*args) vs reference(*args);
    - ``jit``: jit(f) and its first-order JVP and VJP vs the same run eagerly;
    - forward mode, order k = 1..order: :math:`D^k f[t_1, \ldots, t_k]` (the JVP of the JVP
      ...) vs the reference's;
    - reverse mode, order k: :math:`F_1 = J^\top c`, then
      :math:`F_k = \nabla_x \langle F_{k-1}, u_{k-1}\rangle` (the VJP of the VJP ...), per
      argument, vs the reference's;
    - transpose identity (both modes): :math:`\langle J t, c\rangle = \langle t, J^\top c\rangle`
      with f's own JVP and VJP;
    - ``vmap``: vmap(f) and its first-order JVP and VJP over two stacked copies of the
      arguments (the second 0.5 x + 0.25) vs each copy alone.

    f's and the reference's values and derivatives and the vmap check are one compiled program
    (with ``jit=True``; the jit check adds an eager run of the first order): 1-2 s for
    a convolution to order 2 on 2 CPU cores. A result passes when
    :math:`\max |a - e| \le \mathrm{atol} + \mathrm{rtol} \cdot \max(1, \max |e|)`, with
    `jaxconv.testing.tolerance` of its dtype unless `atol` / `rtol` are given.

    Args:
      f: the function under test; every positional argument an array or a pytree of arrays
        (close over settings with a lambda or functools.partial). Outputs may be pytrees.
      *args: the point to check at. Inexact (floating, complex) leaves are differentiated;
        integer and bool leaves are held constant. Pick a point where f is differentiable:
        `random_inputs`, and `without_ties` for max-type functions.
      reference: the same function written with plain JAX (its autodiff is the reference),
        or None: finite differences (``jax.test_util.check_grads``, with its own tolerances
        unless `atol` / `rtol` are given), one argument at a time where one fails.
      order: the highest derivative order checked (0: values, jit and vmap only).
      modes: ``"fwd"`` and / or ``"rev"``. A ``jax.custom_vjp`` function has no forward
        mode: pass ``modes=("rev",)``.
      vmap: run the vmap check.
      jit: run the jit check, and compile the others (False: everything eagerly, for
        functions that cannot be compiled).
      atol: absolute tolerance of every comparison (default: per dtype).
      rtol: relative tolerance, relative to max(1, max |expected|) (default: per dtype).
      seed: NumPy seed of the random tangents and cotangents.
    Returns:
      None, when every check passes.
    Raises:
      AssertionError: listing every failing check (e.g. "reverse mode, order 2"), the argument
        (index and name) or output it concerns, and the error: max absolute and relative
        error, the index of the worst entry, the tolerance used; the first line names the
        first failure.
      TypeError, ValueError: invalid options (worded ``check_rules: `arg` (=value) reason``),
        or forward mode asked of a function that has none.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxconv.testing import check_rules
      >>> @jax.custom_vjp
      ... def softplus(x):
      ...     return jnp.logaddexp(x, 0.0)
      >>> softplus.defvjp(lambda x: (softplus(x), x), lambda x, g: (g * jax.nn.sigmoid(x),))
      >>> x = jnp.linspace(-2.0, 2.0, 5)
      >>> check_rules(softplus, x, reference=jax.nn.softplus, modes=("rev",))
      >>> check_rules(softplus, x, modes=("rev",))  # against finite differences
      >>> @jax.custom_vjp
      ... def bad(x):
      ...     return jnp.logaddexp(x, 0.0)
      >>> bad.defvjp(lambda x: (bad(x), x), lambda x, g: (2 * g * jax.nn.sigmoid(x),))
      >>> try:
      ...     check_rules(bad, x, reference=jax.nn.softplus, modes=("rev",))
      ... except AssertionError as e:
      ...     print(str(e).splitlines()[0])
      check_rules(bad): 2 checks failed; the first: reverse mode, order 1, argument 0 (`x`)
    """
    modes = _validate(f, reference, order, modes, atol, rtol, seed)
    s = _setup(f, args, reference, int(order), modes, vmap, jit, atol, rtol, seed)
    try:
        res = s.run(_program(s), s.d, s.c, [0.5 * x + 0.25 for x in s.d], s.draws)
    except Exception as e:
        if s.order and "fwd" in s.modes:
            _no_forward_rule(s, e)
        raise
    failures = _jit_failures(s, res) if jit else []
    if reference is not None:
        failures += _reference_failures(s, res)
    elif s.order and s.modes:
        failures += _finite_difference_failures(s)
    if s.order and s.modes == ("fwd", "rev"):
        failures += _transpose_failures(s, res)
    if vmap:
        failures += _vmap_failures(s, res)
    if failures:
        raise AssertionError(_message(f, failures, seed))
