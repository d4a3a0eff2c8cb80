"""`explain(f, *args, **kwargs)`: the jaxconv ops `f` runs, what computes them, what they keep.

Like ``torch.backends.cudnn``'s choices or a profiler's "what ran", without running anything:
`f` is traced once, as ``jax.vjp(f, *args)`` (its forward pass with reverse mode set up, under
`jax.make_jaxpr`), and the trace is read.

- Rows: one per jaxconv equation of the trace, in program order, found by walking the jaxpr
  and every jaxpr inside it (jit, custom_jvp / custom_vjp calls, checkpoint, cond, scan,
  while). A row's public op is the outermost jaxconv function on the equation's source
  traceback (so `conv_general_dilated`'s ordinary layers, which run on `conv`'s primitive,
  are named as called); without one, the primitive's own op. `part` is "forward" for an op's
  own forward equation, else the derivative primitive's name (``f`` that differentiates
  itself, e.g. ``jax.grad(loss)``, shows its backward passes too: ``conv`` part
  ``input_grad``, ``relu`` part ``relu_mask``, ...). Shapes are the equation's operands and
  results: channels-last for the conv family (after any `padding_mode` padding), with a vmapped
  axis folded in as it runs.
- Algorithms (the conv family): the (fwd, dx, dw) its `Geometry` carries for CPU and for every
  other platform, and the rule's reason for each (`lowering.choice.explain_geometry`).
- Residuals: the arrays ``jax.vjp`` keeps for the backward pass (the pytree leaves of its
  VJP function), traced back through the calls that produced them (jit, checkpoint, scan, the
  one branch of a cond that names it) to a ``jaxconv.<op>.<what>`` `checkpoint_name`
  (`RESIDUAL_NAMES`). A name belongs to the nearest op of its kind in the same jaxpr, before
  it or after it as that op's rule emits it (`_LABELS`); its bytes are the residual's abstract
  value's (a scan's residuals stacked over its iterations). Residuals without a jaxconv name
  (inputs of `f` such as labels, constants, values kept by other code) are listed apart, in
  `Explanation.unattributed`.

Positional arguments are differentiated where they are floating (pytrees of arrays, or
`jax.ShapeDtypeStruct`: nothing is computed); keyword arguments are held fixed (closed over,
so they may be any Python value): ``explain(loss, params, x=x, y=y)`` shows what training
``params`` keeps.

What it cannot attribute, and says so (`Explanation.notes`): ops in a cond, scan or while body
are listed once (a scan's run once per iteration); JAX's partial evaluation of a scan inlines
the custom_jvp functions in its body (relu, the max pools, lp_pool, the losses), which then
have no row, and their named residuals are listed unattributed. A residual that is
one of `f`'s inputs (a weight, the data) is counted like any other, though inside one jitted
training step it is no memory beyond that input.

``jaxconv.explain`` is this function; its result types are `Explanation`, `OpRow` and
`Residual` (``from jaxconv.explain import Explanation``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
from jax.extend.core import Literal

from jaxconv._core import axis_map
from jaxconv._core.residuals import RESIDUAL_NAMES
from jaxconv._core.validate import byte_size
from jaxconv.convolution import local, unfold
from jaxconv.convolution.api import conv, conv_input_grad, conv_transpose, conv_weight_grad
from jaxconv.convolution.general import conv_general_dilated, general_p
from jaxconv.convolution.lowering.choice import explain_geometry
from jaxconv.convolution.rules import conv_p, input_grad_p, weight_grad_p
from jaxconv.dense import activation, linear, losses
from jaxconv.pooling import adaptive, avg_pool, fractional, lp_pool, max_pool, split, unpool
from jaxconv.resampling import interpolate, pixel_shuffle

try:
    from jax.extend.core import jaxprs_in_params
except ImportError:  # jax < 0.10 (the oldest supported is 0.7.2)
    from jax.core import jaxprs_in_params

# The public functions, by code object: the outermost of them on an equation's traceback names
# its op.
_PUBLIC = {
    fn.__code__: fn.__name__
    for fn in (
        conv,
        conv_transpose,
        conv_input_grad,
        conv_weight_grad,
        conv_general_dilated,
        unfold.unfold,
        unfold.fold,
        local.conv_local,
        local.conv_general_dilated_local,
        avg_pool.avg_pool,
        avg_pool.global_avg_pool,
        lp_pool.lp_pool,
        max_pool.max_pool,
        max_pool.min_pool,
        unpool.global_max_pool,
        unpool.max_unpool,
        adaptive.adaptive_avg_pool,
        adaptive.adaptive_max_pool,
        fractional.fractional_max_pool,
        interpolate.interpolate,
        pixel_shuffle.pixel_shuffle,
        pixel_shuffle.pixel_unshuffle,
        activation.relu,
        linear.linear,
        losses.mse_loss,
        losses.softmax_cross_entropy,
    )
}

# Every jaxconv primitive that gets a row: (its op when no traceback names one, and the ops
# whose own forward it is; for the others it is a derivative part).
_PRIMITIVES = {
    conv_p: ("conv", ("conv", "conv_general_dilated")),
    input_grad_p: ("conv_input_grad", ("conv_input_grad", "conv_transpose")),
    weight_grad_p: ("conv_weight_grad", ("conv_weight_grad",)),
    general_p: ("conv_general_dilated", ("conv_general_dilated",)),
    unfold.unfold_p: ("unfold", ("unfold",)),
    unfold.fold_p: ("fold", ("fold",)),
    local.local_p: ("conv_local", ("conv_local", "conv_general_dilated_local")),
    local.input_grad_p: ("conv_local", ()),
    local.weight_grad_p: ("conv_local", ()),
    avg_pool.average_p: ("avg_pool", ("avg_pool",)),
    avg_pool.adjoint_p: ("avg_pool", ()),
    avg_pool.mean_p: ("global_avg_pool", ("global_avg_pool",)),
    avg_pool.spread_mean_p: ("global_avg_pool", ()),
    max_pool.winner_pick_p: ("max_pool", ()),
    max_pool.winner_spread_p: ("max_pool", ()),
    unpool.scatter_p: ("max_unpool", ("max_unpool",)),
    unpool.unpool_gather_p: ("max_unpool", ()),
    unpool.flat_pick_p: ("global_max_pool", ()),
    unpool.place_p: ("global_max_pool", ()),
    lp_pool.tangent_p: ("lp_pool", ()),
    lp_pool.backward_p: ("lp_pool", ()),
    adaptive.adaptive_average_p: ("adaptive_avg_pool", ("adaptive_avg_pool",)),
    adaptive.adaptive_adjoint_p: ("adaptive_avg_pool", ()),
    split.split_pick_p: ("adaptive_max_pool", ()),  # (and fractional_max_pool's)
    split.split_spread_p: ("adaptive_max_pool", ()),
    axis_map.axis_map_p: ("interpolate", ("interpolate", "adaptive_avg_pool")),
    pixel_shuffle.shuffle_p: ("pixel_shuffle", ("pixel_shuffle",)),
    pixel_shuffle.unshuffle_p: ("pixel_unshuffle", ("pixel_unshuffle",)),
    activation.masked_p: ("relu", ()),
    linear.matmul_p: ("linear", ("linear",)),
    linear.dx_p: ("linear", ()),
    linear.dw_p: ("linear", ()),
    losses.dot_p: ("mse_loss", ()),
    losses.scale_p: ("mse_loss", ()),
    losses.xent_p: ("softmax_cross_entropy", ()),
    losses.xent_t_p: ("softmax_cross_entropy", ()),
}
# jaxconv primitives that are a piece of an op with a row of its own: bias addition (conv,
# conv_transpose, linear), the border copies of conv's `padding_mode`, and max pooling's
# forward with its winner offsets (always inside the max_pool / min_pool custom_jvp).
_INTERNAL = (
    "jaxconv_bias_add",
    "jaxconv_pad_gather",
    "jaxconv_pad_fold",
    "jaxconv_max_pool_winners",
)

# The custom_jvp functions that are an op's forward, by (name, file) of their traced function
# (a custom_jvp_call's debug info). Their jvp rules call `_with_residual` (max_pool, when
# differentiated) and the internal `_softmax` and `one_pass`, which are no op.
_CUSTOM = {
    (fn.fun.__name__, fn.fun.__code__.co_filename): op
    for fn, op in (
        (activation._relu, "relu"),
        (max_pool._max_pool, "max_pool"),
        (max_pool._min_pool, "min_pool"),
        (adaptive._adaptive_max, "adaptive_max_pool"),
        (fractional._fractional_max, "fractional_max_pool"),
        (max_pool._with_residual, "max_pool"),
        (lp_pool._lp_pool, "lp_pool"),
        (unpool._global_max_pool, "global_max_pool"),
        (losses._mse_loss, "mse_loss"),
        (losses._softmax_cross_entropy, "softmax_cross_entropy"),
    )
}

# Each residual name: the ops it belongs to, and whether their rule emits it after the op's
# forward equation (True) or before it (False).
_LABELS = {
    "jaxconv.conv.x": (("conv", "conv_general_dilated"), False),
    "jaxconv.conv.w": (("conv", "conv_general_dilated", "conv_transpose"), False),
    "jaxconv.conv_transpose.y": (("conv_transpose",), False),
    "jaxconv.conv_local.x": (("conv_local", "conv_general_dilated_local"), False),
    "jaxconv.conv_local.w": (("conv_local", "conv_general_dilated_local"), False),
    "jaxconv.max_pool.offsets": (("max_pool",), True),
    "jaxconv.min_pool.offsets": (("min_pool",), True),
    "jaxconv.global_max_pool.index": (("global_max_pool",), True),
    "jaxconv.adaptive_max_pool.offsets": (("adaptive_max_pool",), True),
    "jaxconv.adaptive_max_pool.index": (("adaptive_max_pool",), True),
    "jaxconv.fractional_max_pool.index": (("fractional_max_pool",), True),
    "jaxconv.lp_pool.x": (("lp_pool",), True),
    "jaxconv.lp_pool.y": (("lp_pool",), True),
    "jaxconv.relu.mask": (("relu",), False),
    "jaxconv.linear.x": (("linear",), False),
    "jaxconv.linear.w": (("linear",), False),
    "jaxconv.mse_loss.diff": (("mse_loss",), False),
    "jaxconv.softmax_cross_entropy.probs": (("softmax_cross_entropy",), False),
}

_GENERAL = (
    "not a conv layer (lhs dilation, batch groups, cropping, other dimension numbers or a "
    "rank-2 product): lax's convolutions"
)
# Primitives that only lay out their first operand anew: a residual they make of a named value
# is that value's (vmap's batching rules fold axes into a named operand).
_LAYOUT = (
    "reshape",
    "transpose",
    "squeeze",
    "expand_dims",
    "broadcast_in_dim",
    "copy",
    "copy_p",
    "convert_element_type",
)
# Control flow whose body runs several times or conditionally: its rows name it.
_SCOPES = ("cond", "scan", "while")


def _short(dtype) -> str:
    """float32 -> f32, int8 -> i8, bfloat16 -> bf16, bool -> bool (JAX's key types as named)."""
    name = getattr(dtype, "name", str(dtype))
    for long, short in (("complex", "c"), ("float", "f"), ("uint", "u"), ("int", "i")):
        name = name.replace(long, short)
    return name


def _aval(shape, dtype) -> str:
    return f"{_short(dtype)}[{','.join(map(str, shape))}]"


@dataclass(frozen=True)
class Residual:
    """One array reverse mode keeps: `name` its ``jaxconv.<op>.<what>`` checkpoint name (None:
    not named by jaxconv), its shape, dtype and bytes."""

    name: str | None
    shape: tuple[int, ...]
    dtype: Any  # a NumPy dtype (or one of JAX's key types)
    nbytes: int

    @property
    def what(self) -> str:
        """The name's last part ("x", "w", "mask", "offsets", ...), "?" without a name."""
        return "?" if self.name is None else self.name.rsplit(".", 1)[1]

    def __str__(self) -> str:
        aval = _aval(self.shape, self.dtype)
        return aval if self.name is None else f"{self.what}:{aval}"


@dataclass(frozen=True)
class OpRow:
    """One jaxconv op in the trace.

    Attributes:
      op: the public function ("conv", "max_pool", ...).
      part: "forward" for the op's own forward equation, else the derivative primitive's name
        ("input_grad", "weight_grad", "relu_mask", "max_pool_spread", ...).
      inputs, outputs: the equation's operands and results (`jax.ShapeDtypeStruct`s).
      cpu, elsewhere: the conv family's (fwd, dx, dw) on CPU and on every other platform
        (GPU, TPU); None for the other ops (one algorithm each).
      reason, reason_elsewhere: why, in the words of the rule (`lowering.choice`); "" if None.
      backward: the conv family's ``backward=`` setting; None for the other ops.
      residuals: what its reverse mode keeps (`Residual`s named for this op).
      scope: "" at the top, or the control flow it runs in ("scan", "cond branch 1", ...).
    """

    op: str
    part: str
    inputs: tuple[jax.ShapeDtypeStruct, ...]
    outputs: tuple[jax.ShapeDtypeStruct, ...]
    cpu: tuple[str, str, str] | None = None
    elsewhere: tuple[str, str, str] | None = None
    reason: str = ""
    reason_elsewhere: str = ""
    backward: str | None = None
    residuals: tuple[Residual, ...] = ()
    scope: str = ""

    @property
    def residual_bytes(self) -> int:
        return sum(r.nbytes for r in self.residuals)


_HEAD = ("#", "op", "in", "out", "CPU fwd/dx/dw", "GPU/TPU fwd/dx/dw", "keeps", "bytes")


@dataclass(frozen=True)
class Explanation:
    """`explain`'s result: `rows` (an `OpRow` per jaxconv op, in program order), `unattributed`
    (residuals no jaxconv name accounts for), `notes` (what else to know about the trace) and
    `reverse_mode` (False when `f` has none: its forward alone was traced).

    Iterates, indexes and sizes as its rows; prints, and displays in a REPL, as its `table`.
    """

    rows: tuple[OpRow, ...]
    unattributed: tuple[Residual, ...] = ()
    notes: tuple[str, ...] = ()
    reverse_mode: bool = True  # False: f has no reverse mode (its notes say why), no residuals

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[OpRow]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> OpRow:
        return self.rows[i]

    @property
    def residual_bytes(self) -> int:
        """Bytes of every residual reverse mode keeps, named or not."""
        named = sum(r.residual_bytes for r in self.rows)
        return named + sum(r.nbytes for r in self.unattributed)

    def table(self) -> str:
        """The rows as an aligned text table; then the residual total, the conv family's
        reasons on CPU and on GPU/TPU (rows with the same reason together), and the notes."""
        lines = []
        if self.rows:
            cells = [_HEAD, *(_cells(i, r) for i, r in enumerate(self.rows, 1))]
            widths = [max(len(c[j]) for c in cells) for j in range(len(_HEAD))]
            for c in cells:
                first = c[0].rjust(widths[0])
                rest = (c[j].ljust(widths[j]) for j in range(1, len(c)))
                lines.append("  ".join((first, *rest)).rstrip())
        else:
            lines.append("no jaxconv op")
        kept = [r for row in self.rows for r in row.residuals] + list(self.unattributed)
        arrays = f"{len(kept)} array" + ("" if len(kept) == 1 else "s")
        total = f"reverse mode keeps {byte_size(self.residual_bytes)} in {arrays}"
        if self.unattributed:
            others = " ".join(map(str, self.unattributed))
            size = byte_size(sum(r.nbytes for r in self.unattributed))
            total += f"; unattributed: {others} ({size})"
        lines.append(total if self.reverse_mode else "no reverse mode: no residuals")
        for where, attr in (("CPU", "reason"), ("GPU/TPU", "reason_elsewhere")):
            why: dict[str, list[int]] = {}
            for i, r in enumerate(self.rows, 1):
                if getattr(r, attr):
                    why.setdefault(getattr(r, attr), []).append(i)
            for text, rows in why.items():
                which = f"row {rows[0]}" if len(rows) == 1 else f"rows {', '.join(map(str, rows))}"
                lines.append(f"why, {where}, {which}: {text}")
        lines.extend(self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()


def _cells(i: int, r: OpRow) -> tuple[str, ...]:
    op = r.op if r.part == "forward" else f"{r.op} ({r.part.removeprefix(r.op + '_')})"
    if r.scope:
        op = f"{r.scope}: {op}"
    keeps = " ".join(f"{x.what}:{_short(x.dtype)}" for x in r.residuals)
    return (
        str(i),
        op,
        " ".join(_aval(a.shape, a.dtype) for a in r.inputs),
        " ".join(_aval(a.shape, a.dtype) for a in r.outputs),
        "/".join(r.cpu) if r.cpu else "-",
        "/".join(r.elsewhere) if r.elsewhere else "-",
        keeps or "-",
        byte_size(r.residual_bytes) if r.residuals else "-",
    )


def explain(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Explanation:
    """The jaxconv ops `f(*args, **kwargs)` runs: shapes, algorithms and why, residuals.

    `f` is traced (never run) as ``jax.vjp(f, *args)``: reverse mode with respect to the
    floating leaves of the positional `args` (arrays, pytrees of them or
    `jax.ShapeDtypeStruct`s); keyword arguments are held fixed and may be any Python value. The
    result has one `OpRow` per jaxconv op, in program order, with the conv family's
    algorithms for CPU and for GPU/TPU and the rule's reasons, and the residuals each op's
    reverse mode keeps (from their `jaxconv.RESIDUAL_NAMES`), with their bytes; residuals no
    jaxconv name accounts for are in `Explanation.unattributed`. How it is read: the
    module docstring of jaxconv/explain.py. Print the result (or call `.table()`) for the table.

    Args:
      f: the function, e.g. a loss.
      *args: its positional arguments (differentiated where floating).
      **kwargs: its keyword arguments (not differentiated).
    Returns:
      an `Explanation`: ``.rows`` (`OpRow`s), ``.unattributed``, ``.notes``, ``.table()``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxconv as jc
      >>> x, w = jnp.ones((2, 16, 1), jnp.float32), jnp.ones((3, 1, 8), jnp.float32)
      >>> e = jc.explain(lambda x, w: jc.relu(jc.conv(x, w, padding=1)).sum(), x, w)
      >>> print(e)
      #  op    in                      out          CPU fwd/dx/dw        GPU/TPU fwd/dx/dw  keeps        bytes
      1  conv  f32[2,16,1] f32[3,1,8]  f32[2,16,8]  shift/matmul/matmul  xla/transpose/xla  x:f32 w:f32  224 B
      2  relu  f32[2,16,8]             f32[2,16,8]  -                    -                  mask:bool    256 B
      reverse mode keeps 480 B in 3 arrays
      why, CPU, row 1: one input channel (8 outputs <= 64): shifted multiply-adds forward, col2im dx (patches 384 B <= 32 MiB), im2col dw (1-D)
      why, GPU/TPU, row 1: XLA's own convolutions off CPU (the rule was measured on XLA:CPU only)
      >>> [(r.op, r.residual_bytes) for r in e]
      [('conv', 224), ('relu', 256)]
    """  # noqa: E501  (the example's table)
    fun = functools.partial(f, **kwargs) if kwargs else f
    notes, reverse_mode = [], True
    try:
        closed, (out, _) = jax.make_jaxpr(lambda *a: jax.vjp(fun, *a), return_shape=True)(*args)
        n_out = len(jax.tree.leaves(out))
    except Exception as e:  # no reverse mode for f (e.g. a pure_callback): its forward alone
        closed = jax.make_jaxpr(fun)(*args)
        n_out = len(closed.jaxpr.outvars)
        first = str(e).strip().split("\n")[0]
        notes.append(f"no reverse mode for f: {type(e).__name__}: {first}")
        reverse_mode = False
    rows: list[OpRow] = []
    top = _walk(closed.jaxpr, "", rows)
    kept: dict[int, list[Residual]] = {}
    unattributed = []
    seen = set()
    for var in closed.jaxpr.outvars[n_out:]:
        if isinstance(var, Literal) or var in seen:
            continue
        seen.add(var)
        aval = var.aval
        nbytes = math.prod(aval.shape) * aval.dtype.itemsize
        row, label = _resolve(var, top) or (None, None)
        res = Residual(label, tuple(aval.shape), aval.dtype, nbytes)
        if row is None:
            unattributed.append(res)
        else:
            kept.setdefault(row, []).append(res)
    for i, res in kept.items():
        res.sort(key=lambda r: RESIDUAL_NAMES.index(r.name))
        rows[i] = dataclasses.replace(rows[i], residuals=tuple(res))
    orphans = sorted({r.name for r in unattributed if r.name is not None})
    if orphans:
        notes.append(
            f"named but without a row: {', '.join(orphans)} (JAX's partial evaluation of a scan "
            "inlines the custom_jvp functions of relu, the max pools, lp_pool and the losses "
            "in its body)"
        )
    if any(r.scope for r in rows):
        notes.append(
            "ops in a cond, scan or while body are listed once (a scan's residuals are "
            "stacked over its iterations)"
        )
    return Explanation(tuple(rows), tuple(unattributed), tuple(notes), reverse_mode)


@dataclass
class _Node:
    """One occurrence of a jaxpr in the trace: where its variables come from, its sub-jaxprs'
    nodes per equation, its ops' forward equations and its residual names, with their rows."""

    jaxpr: Any
    producer: dict = dataclasses.field(default_factory=dict)  # var -> equation index
    children: dict = dataclasses.field(default_factory=dict)  # equation index -> [_Node]
    anchors: dict = dataclasses.field(default_factory=dict)  # equation index -> row
    names: dict = dataclasses.field(default_factory=dict)  # equation index -> (row, label)


def _walk(jaxpr, scope: str, rows: list[OpRow]) -> _Node:
    """Append a row per jaxconv equation of `jaxpr` (and of the jaxprs inside it) to `rows`;
    attribute its residual names to them."""
    node = _Node(jaxpr)
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.outvars:
            node.producer[v] = i
        found = _classify(eqn)
        if found is not None:
            rows.append(_row(eqn, *found, scope))
            if rows[-1].part == "forward":
                node.anchors[i] = len(rows) - 1
            continue
        subs = list(jaxprs_in_params(eqn.params))
        name = eqn.primitive.name
        node.children[i] = [
            _walk(sub, _scope(scope, name, k, len(subs)), rows) for k, sub in enumerate(subs)
        ]
    for i, eqn in enumerate(jaxpr.eqns):
        label = eqn.params.get("name") if eqn.primitive.name == "name" else None
        if label in _LABELS:
            ops, after = _LABELS[label]
            mine = [(j, r) for j, r in node.anchors.items() if rows[r].op in ops]
            near = (
                [r for j, r in mine if j < i][-1:] if after else [r for j, r in mine if j > i][:1]
            )
            row = near[0] if near else _consumer(eqn.outvars[0], node, ops, rows)
            node.names[i] = (row, label)
    return node


def _consumer(var, node: _Node, ops, rows: list[OpRow]) -> int | None:
    """The row of the one op of `ops` that takes `var` as an operand, directly, laid out anew
    or inside a call (a loop-invariant residual JAX hoisted out of a scan); None if not one."""
    found = set()
    for i, eqn in enumerate(node.jaxpr.eqns):
        uses = [k for k, v in enumerate(eqn.invars) if v is var]
        if not uses:
            continue
        if i in node.anchors:
            found.add(node.anchors[i] if rows[node.anchors[i]].op in ops else None)
        elif eqn.primitive.name in _LAYOUT:
            found.add(_consumer(eqn.outvars[0], node, ops, rows))
        elif eqn.primitive.name != "while":  # its two jaxprs take different operands
            for child in node.children.get(i, ()):
                skip = len(eqn.invars) - len(child.jaxpr.invars)  # a cond's branch index
                for k in (k - skip for k in uses if k >= skip):
                    found.add(_consumer(child.jaxpr.invars[k], child, ops, rows))
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _scope(scope: str, primitive: str, k: int, n: int) -> str:
    if primitive not in _SCOPES:
        return scope
    here = f"{primitive} branch {k}" if primitive == "cond" else primitive
    return f"{scope}/{here}" if scope else here


def _classify(eqn) -> tuple[str, str] | None:
    """(op, part) of a jaxconv equation; None for any other (and for `INTERNAL` pieces)."""
    prim = eqn.primitive
    if prim in _PRIMITIVES:
        default, forward_of = _PRIMITIVES[prim]
        op = _caller(eqn) or default
        return op, "forward" if op in forward_of else prim.name.removeprefix("jaxconv_")
    if prim.name != "custom_jvp_call":
        return None
    info = getattr(eqn.params["call_jaxpr"].jaxpr, "debug_info", None)
    src = getattr(info, "func_src_info", None) or ""
    fn_name, _, where = src.partition(" at ")
    op = _CUSTOM.get((fn_name, where.rpartition(":")[0]))
    return None if op is None else (_caller(eqn) or op, "forward")


def _caller(eqn) -> str | None:
    """The outermost public jaxconv function on `eqn`'s source traceback, if any."""
    tb = getattr(eqn.source_info, "traceback", None)
    if tb is None:
        return None
    found = None
    for code in tb.raw_frames()[0]:  # innermost first
        found = _PUBLIC.get(code, found)
    return found


def _row(eqn, op: str, part: str, scope: str) -> OpRow:
    def structs(vs):
        return tuple(jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in vs)

    row = OpRow(op, part, structs(eqn.invars), structs(eqn.outvars), scope=scope)
    geo = eqn.params.get("geo")
    if eqn.primitive in (conv_p, input_grad_p, weight_grad_p):
        e = explain_geometry(geo)
        return dataclasses.replace(
            row,
            cpu=e["cpu"],
            elsewhere=e["elsewhere"],
            reason=e["cpu_reason"],
            reason_elsewhere=e["elsewhere_reason"],
            backward=e["backward"],
        )
    if eqn.primitive is general_p:
        xla = ("xla", "transpose", "xla")
        return dataclasses.replace(
            row, cpu=xla, elsewhere=xla, reason=_GENERAL, reason_elsewhere=_GENERAL
        )
    return row


def _resolve(var, node: _Node) -> tuple[int | None, str] | None:
    """(row, name) of the residual `var` of `node`'s jaxpr: its `checkpoint_name`, found
    through the calls that produced it; None when it has none."""
    if isinstance(var, Literal) or var not in node.producer:
        return None  # an input or a constant of this jaxpr
    i = node.producer[var]
    if i in node.names:
        return node.names[i]
    eqn = node.jaxpr.eqns[i]
    if eqn.primitive.name in _LAYOUT:  # e.g. vmap folding a named x into the batch axis
        return _resolve(eqn.invars[0], node)
    k = next(j for j, v in enumerate(eqn.outvars) if v is var)
    found = set()
    for child in node.children.get(i, ()):
        if len(child.jaxpr.outvars) == len(eqn.outvars):
            hit = _resolve(child.jaxpr.outvars[k], child)
            if hit is not None:
                found.add(hit)
    return found.pop() if len(found) == 1 else None
