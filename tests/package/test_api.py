"""The public names of jaxconv and their signatures, pinned to the API table (docs/semantics.md).

Names and signatures are the contract users (and tests written by others) depend on: keep
them exactly, add freely. So each signature below must start with exactly the
listed parameters (names, order, positional vs keyword-only, defaults); anything added after
them must be keyword-only with a default, so no existing call changes meaning.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import jaxconv

P = inspect.Parameter
POS = P.POSITIONAL_OR_KEYWORD
KW = P.KEYWORD_ONLY
REQUIRED = P.empty
ROOT = Path(__file__).resolve().parents[2]

CONV_FAMILY = [
    "conv",
    "conv_transpose",
    "conv_input_grad",
    "conv_weight_grad",
    "conv_general_dilated",
]
# Being written in parallel; exported later (then test_later_names_exist becomes a hard check).
LATER = [
    "max_pool",
    "max_unpool",
    "avg_pool",
    "lp_pool",
    "global_avg_pool",
    "global_max_pool",
    "relu",
    "linear",
    "mse_loss",
    "softmax_cross_entropy",
    "reference",
]

# (name, kind, default) in order, as the API table writes them.
CONV = [
    ("x", POS, REQUIRED),
    ("w", POS, REQUIRED),
    ("bias", POS, None),
    ("stride", KW, 1),
    ("padding", KW, "VALID"),
    ("dilation", KW, 1),
    ("groups", KW, 1),
    ("flip", KW, False),
    ("padding_mode", KW, "zeros"),
    ("layout", KW, "channels_last"),
    ("backward", KW, "auto"),
    ("precision", KW, None),
    ("preferred_element_type", KW, None),
]
CONV_TRANSPOSE = [
    ("y", POS, REQUIRED),
    ("w", POS, REQUIRED),
    ("bias", POS, None),
    ("stride", KW, 1),
    ("padding", KW, 0),
    ("output_padding", KW, 0),
    ("output_size", KW, None),
    ("dilation", KW, 1),
    ("groups", KW, 1),
    ("flip", KW, False),
    ("layout", KW, "channels_last"),
    ("backward", KW, "auto"),
]
# The API table lists `*, stride, padding, dilation, groups, ...` without defaults: they are the
# forward convolution's settings, so they (and the "...") default to what `conv` defaults to,
# and conv_input_grad(x.shape, w, g) is the dL/dx of conv(x, w).
_CONV_DEFAULT = {name: default for name, _, default in CONV}
_GRAD_SETTINGS = ["stride", "padding", "dilation", "groups"]
CONV_INPUT_GRAD = [("input_shape", POS, REQUIRED), ("w", POS, REQUIRED), ("g", POS, REQUIRED)] + [
    (n, KW, _CONV_DEFAULT[n]) for n in _GRAD_SETTINGS
]
CONV_WEIGHT_GRAD = [("x", POS, REQUIRED), ("weight_shape", POS, REQUIRED), ("g", POS, REQUIRED)] + [
    (n, KW, _CONV_DEFAULT[n]) for n in _GRAD_SETTINGS
]
CONV_GENERAL_DILATED = [
    ("lhs", POS, REQUIRED),
    ("rhs", POS, REQUIRED),
    ("window_strides", POS, REQUIRED),
    ("padding", POS, REQUIRED),
    ("lhs_dilation", POS, None),
    ("rhs_dilation", POS, None),
    ("dimension_numbers", POS, None),
    ("feature_group_count", POS, 1),
    ("batch_group_count", POS, 1),
    ("precision", POS, None),
    ("preferred_element_type", POS, None),
]
# `explain(f, *args)`: the function and its positional arguments; keyword arguments go to f.
EXPLAIN = [("f", POS, REQUIRED), ("args", P.VAR_POSITIONAL, REQUIRED)]
SIGNATURES = {
    "conv": CONV,
    "conv_transpose": CONV_TRANSPOSE,
    "conv_input_grad": CONV_INPUT_GRAD,
    "conv_weight_grad": CONV_WEIGHT_GRAD,
    "conv_general_dilated": CONV_GENERAL_DILATED,
    "explain": EXPLAIN,
}


def params(fn) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def check_prefix(name: str, fn, expected) -> None:
    """`fn`'s signature starts with `expected`; what follows is keyword-only with a default.

    (conv_general_dilated's additions follow lax's signature instead, pinned separately.)
    """
    got = params(fn)
    assert got[: len(expected)] == expected, (name, got[: len(expected)])
    if name == "conv_general_dilated":
        return
    for p in list(inspect.signature(fn).parameters.values())[len(expected) :]:
        ok = p.kind is P.VAR_KEYWORD or (p.kind is KW and p.default is not REQUIRED)
        assert ok, f"{name}: added parameter {p} must be keyword-only with a default"


def test_conv_family_is_exported():
    for name in CONV_FAMILY:
        fn = getattr(jaxconv, name, None)
        assert callable(fn), name
        assert fn.__name__ == name, (name, fn.__name__)
        assert fn.__doc__ and fn.__doc__.strip(), f"{name} has no docstring"


def test_version_is_a_string():
    assert isinstance(jaxconv.__version__, str) and jaxconv.__version__


def test_all_lists_only_real_names():
    """`__all__` is optional; where it exists it names real attributes, the conv family first."""
    names = getattr(jaxconv, "__all__", None)
    if names is None:
        pytest.fail("jaxconv defines no __all__")
    assert all(hasattr(jaxconv, n) for n in names), [n for n in names if not hasattr(jaxconv, n)]
    assert set(CONV_FAMILY) <= set(names), sorted(set(CONV_FAMILY) - set(names))


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_signature_matches_design(name):
    check_prefix(name, getattr(jaxconv, name), SIGNATURES[name])


def test_conv_signature_is_complete():
    """The API table lists conv's parameters in full (no "..."): nothing hides behind **kwargs."""
    assert [p[0] for p in params(jaxconv.conv)][: len(CONV)] == [p[0] for p in CONV]
    assert not any(k is P.VAR_KEYWORD or k is P.VAR_POSITIONAL for _, k, _ in params(jaxconv.conv))


@pytest.mark.parametrize("name", ["conv_transpose", "conv_input_grad", "conv_weight_grad"])
def test_shared_settings_default_like_conv(name):
    """The "..." of the API table: every setting the conv family shares with `conv` is keyword-only
    and defaults as in `conv` (flip, layout, backward, precision, preferred_element_type, ...)."""
    got = {n: (k, d) for n, k, d in params(getattr(jaxconv, name))}
    shared = [n for n, kind, _ in CONV if kind is KW and n in got]
    assert {"flip", "layout", "backward", "precision", "preferred_element_type"} <= set(shared)
    for n in shared:
        if name == "conv_transpose" and n == "padding":
            continue  # PyTorch's ConvTranspose default: padding=0 (the same as "VALID")
        assert got[n] == (KW, _CONV_DEFAULT[n]), (name, n, got[n])


def test_conv_general_dilated_has_every_lax_parameter():
    """Drop-in for jax.lax.conv_general_dilated: same names, order, kinds and defaults
    (out_sharding included), so any positional or keyword call of lax's works unchanged."""
    lax_params = params(jax.lax.conv_general_dilated)
    assert "out_sharding" in [n for n, _, _ in lax_params]  # the jax this is pinned against
    ours = params(jaxconv.conv_general_dilated)
    assert ours[: len(lax_params)] == lax_params, (ours, lax_params)


def test_later_names_exist():
    """Pooling, activation, linear, loss and `reference` (the API table)."""
    missing = [n for n in LATER if not hasattr(jaxconv, n)]
    if missing:
        pytest.fail(f"not exported from jaxconv: {', '.join(missing)}")
    for n in LATER:
        obj = getattr(jaxconv, n)
        assert inspect.ismodule(obj) if n == "reference" else callable(obj), n


# (name, positional parameters with defaults, keyword-only parameters with defaults) from
# the API table; `layout=...` there: only its presence is pinned, its default follows `conv`.
LATER_SIGNATURES = {
    "max_pool": (
        [("x", REQUIRED), ("window", REQUIRED)],
        [
            ("stride", None),
            ("padding", "VALID"),
            ("dilation", 1),
            ("ceil_mode", False),
            ("ties", "first"),
            ("return_indices", False),
        ],
    ),
    "max_unpool": ([("y", REQUIRED), ("indices", REQUIRED), ("output_shape", REQUIRED)], []),
    "avg_pool": (
        [("x", REQUIRED), ("window", REQUIRED)],
        [
            ("stride", None),
            ("padding", "VALID"),
            ("ceil_mode", False),
            ("count_include_pad", True),
            ("divisor_override", None),
        ],
    ),
    "lp_pool": (
        [("x", REQUIRED), ("p", REQUIRED), ("window", REQUIRED)],
        [("stride", None), ("padding", "VALID"), ("ceil_mode", False)],
    ),
    "global_avg_pool": ([("x", REQUIRED)], []),
    "global_max_pool": ([("x", REQUIRED)], []),
    "relu": ([("x", REQUIRED)], []),
    "linear": ([("x", REQUIRED), ("w", REQUIRED), ("bias", None)], []),
    "mse_loss": ([("y", REQUIRED), ("t", REQUIRED), ("reduction", "sum")], []),
    "softmax_cross_entropy": ([("logits", REQUIRED), ("labels", REQUIRED)], []),
    # the spatial toolbox (issue 22's table: "signature to keep exactly")
    "min_pool": (
        [("x", REQUIRED), ("window", REQUIRED)],
        [
            ("stride", None),
            ("padding", "VALID"),
            ("dilation", 1),
            ("ceil_mode", False),
            ("ties", "first"),
            ("return_indices", False),
        ],
    ),
    "adaptive_avg_pool": ([("x", REQUIRED), ("output_size", REQUIRED)], []),
    "adaptive_max_pool": (
        [("x", REQUIRED), ("output_size", REQUIRED)],
        [("ties", "first"), ("return_indices", False)],
    ),
    "fractional_max_pool": (
        [("x", REQUIRED), ("window", REQUIRED)],
        [
            ("output_size", None),
            ("output_ratio", None),
            ("samples", None),
            ("key", None),
            ("ties", "first"),
            ("return_indices", False),
        ],
    ),
    "interpolate": (
        [("x", REQUIRED), ("size", None)],
        [
            ("scale_factor", None),
            ("mode", "nearest"),
            ("align_corners", None),
            ("recompute_scale_factor", None),
            ("antialias", False),
        ],
    ),
    "pixel_shuffle": ([("x", REQUIRED), ("upscale_factor", REQUIRED)], []),
    "pixel_unshuffle": ([("x", REQUIRED), ("downscale_factor", REQUIRED)], []),
    "unfold": (
        [("x", REQUIRED), ("window", REQUIRED)],
        [("stride", 1), ("padding", 0), ("dilation", 1)],
    ),
    "fold": (
        [("cols", REQUIRED), ("output_size", REQUIRED), ("window", REQUIRED)],
        [("stride", 1), ("padding", 0), ("dilation", 1)],
    ),
    "conv_local": (
        [("x", REQUIRED), ("w", REQUIRED), ("bias", None)],
        [("stride", 1), ("padding", "VALID"), ("dilation", 1)],
    ),
}
POOLS_WITH_LAYOUT = [
    "max_pool",
    "max_unpool",
    "avg_pool",
    "lp_pool",
    "min_pool",
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "fractional_max_pool",
    "interpolate",
    "pixel_shuffle",
    "pixel_unshuffle",
    "unfold",
    "fold",
    "conv_local",
]


def test_local_dropin_signature_is_lax():
    """conv_general_dilated_local: lax.conv_general_dilated_local's parameters, in order."""
    ours = [(n, k, d) for n, k, d in params(jaxconv.conv_general_dilated_local)]
    want = [
        (p.name, p.kind, p.default)
        for p in inspect.signature(jax.lax.conv_general_dilated_local).parameters.values()
    ]
    assert ours[: len(want)] == want, (ours, want)


@pytest.mark.parametrize("name", list(LATER_SIGNATURES))
def test_later_signatures_match_design(name):
    fn = getattr(jaxconv, name, None)
    if fn is None:
        pytest.fail(f"jaxconv.{name} not exported")
    positional, keyword = LATER_SIGNATURES[name]
    got = params(fn)
    assert [(n, d) for n, k, d in got[: len(positional)]] == positional, (name, got)
    assert all(k is POS for _, k, _ in got[: len(positional)]), (name, got)
    kw = {n: d for n, k, d in got if k is KW}
    for n, d in keyword:
        assert n in kw and kw[n] == d, (name, n, kw.get(n, "missing"))
    if name in POOLS_WITH_LAYOUT:
        assert kw.get("layout") == "channels_last", (name, kw.get("layout", "missing"))


def test_reference_does_not_import_jax():
    """`jaxconv.reference` is plain NumPy. Loaded by file path (importing `jaxconv.reference`
    would run jaxconv/__init__.py, which imports jax) in a fresh interpreter."""
    path = ROOT / "jaxconv" / "reference" / "__init__.py"
    if not path.exists():
        pytest.fail("jaxconv/reference/__init__.py does not exist")
    assert importlib.util.find_spec("numpy") is not None
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('reference_alone', {str(path)!r}, "
        f"submodule_search_locations=[{str(path.parent)!r}])\n"
        "sys.modules['reference_alone'] = mod = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "bad = sorted(m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'jaxlib')))\n"
        "assert not bad, bad\n"
        "assert 'jaxconv' not in sys.modules\n"
        "print('ok', len([n for n in dir(mod) if not n.startswith('_')]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok"), out.stdout


def test_too_old_jax_is_refused_by_name():
    """An import on a jax older than pyproject.toml's bound says which version it needs."""
    from jaxconv._core import version as _version

    with pytest.raises(ImportError, match=r"jaxconv needs jax >= 0\.7\.2 .*found jax 0\.7\.1"):
        _version.check("0.7.1")
    with pytest.raises(ImportError, match="0.4.30"):
        _version.check("0.4.30")
    for ok in ("0.7.2", "0.10.2", "0.11.2.dev20261201", "1.0"):
        _version.check(ok)
    assert _version.release("0.10.2.dev20260101") == (0, 10, 2)


def test_version_bound_matches_pyproject():
    """jaxconv._core.version.MIN_JAX is the `jax>=` and `jaxlib>=` bound of pyproject.toml."""
    import pathlib
    import re

    from jaxconv._core import version as _version

    text = (pathlib.Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    need = ".".join(map(str, _version.MIN_JAX))
    assert re.search(rf'"jax>={re.escape(need)}"', text), need
    assert re.search(rf'"jaxlib>={re.escape(need)}"', text), need


PUBLIC_FUNCTIONS = [n for n in jaxconv.__all__ if n not in ("reference", "RESIDUAL_NAMES")]


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_public_function_is_typed_and_has_a_runnable_example(name):
    """Every public function: annotated (ArrayLike in, Array out) and a `>>>` example in its
    docstring (run by the README's test command: pytest's --doctest-modules over jaxconv/)."""
    fn = getattr(jaxconv, name)
    sig = inspect.signature(fn)
    assert sig.return_annotation is not inspect.Signature.empty, name
    for p in sig.parameters.values():
        assert p.annotation is not inspect.Parameter.empty, (name, p.name)
    assert ">>> " in (fn.__doc__ or ""), name


def test_ships_py_typed():
    import pathlib

    assert (pathlib.Path(jaxconv.__file__).parent / "py.typed").is_file()


def _module_imports():
    """{module: [jaxconv modules it imports]}, and the function-local jaxconv imports.

    Modules are named relative to the package, e.g. ``convolution.api`` or ``reference._pool``."""
    import ast
    import pathlib

    root = pathlib.Path(jaxconv.__file__).parent

    def module_name(path):
        parts = path.relative_to(root).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)

    names = {module_name(p) for p in root.rglob("*.py")}
    graph, local = {}, []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        here = module_name(path)
        package = here.rsplit(".", 1)[0] if path.stem != "__init__" and "." in here else here
        deps = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:  # relative, inside a subpackage
                base = package if node.level == 1 else ""
                mod = ".".join(p for p in (base, node.module or "") if p)
            elif (node.module or "").startswith("jaxconv"):
                mod = node.module.split(".", 1)[1] if "." in node.module else ""
            else:
                continue
            cands = [mod] if mod else []
            cands += [".".join(p for p in (mod, a.name) if p) for a in node.names]
            deps |= {c for c in cands if c in names}
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    local.append(f"{path.name}:{node.lineno}")
        graph[here] = deps - {here}
    return graph, local


FAMILIES = ("convolution", "pooling", "dense", "resampling")


def layer_violations(graph) -> list[str]:
    """The imports of `graph` ({module: modules it imports}) that break the package's layers:

    - ``_core`` (what every family shares) imports only ``_core``;
    - a family (``convolution``, ``pooling``, ``dense``, ``resampling``) imports only ``_core``
      and itself,
      never another family;
    - a family's ``lowering`` modules (how a value is computed) never import the rules or the
      public functions above them;
    - ``reference`` (NumPy only) imports only ``reference``;
    - nothing but the package's ``__init__`` imports it.
    """
    bad = []
    for m, deps in graph.items():
        top = m.split(".")[0]
        for d in sorted(deps):
            dtop = d.split(".")[0]
            if d == "__init__":
                ok = False
            elif top == "_core" or top == "reference":
                ok = dtop == top
            elif top in FAMILIES:
                ok = dtop == "_core" or dtop == top
                if ok and ".lowering" in m:
                    ok = dtop == "_core" or ".lowering" in d
            else:
                ok = True
            if not ok:
                bad.append(f"{m} -> {d}")
    return bad


def find_cycle(graph) -> list[str]:
    """One import cycle of `graph` as a path (first module repeated at the end), or []."""
    done, active = set(), []

    def visit(m):
        if m in active:
            return [*active[active.index(m) :], m]
        if m in done:
            return []
        active.append(m)
        for d in sorted(graph[m]):
            if cycle := visit(d):
                return cycle
        active.pop()
        done.add(m)
        return []

    for m in sorted(graph):
        if cycle := visit(m):
            return cycle
    return []


def test_modules_import_only_downward():
    """The folders are the layers: no import cycle, no function-local import to hide one, and
    every import points down (`layer_violations`)."""
    graph, local = _module_imports()
    assert local == [], local
    assert find_cycle(graph) == []
    assert layer_violations(graph) == []
    assert {"_core.validate", "convolution.rules", "pooling.max_pool", "dense.linear"} <= set(graph)


@pytest.mark.parametrize(
    "module, imports",
    [
        ("_core.layout", "convolution.rules"),  # the core importing a family
        ("pooling.max_pool", "convolution.api"),  # one family importing another
        ("convolution.lowering.im2col", "convolution.rules"),  # a lowering importing its rules
        ("reference._conv", "_core.padding"),  # the NumPy reference importing jax code
        ("dense.linear", "__init__"),  # a module importing the package's top
    ],
)
def test_layer_check_rejects_a_planted_wrong_import(module, imports):
    """The direction check fails on each kind of wrong edge, planted into the real graph."""
    graph, _ = _module_imports()
    planted = {**graph, module: graph[module] | {imports}}
    assert layer_violations(planted) == [f"{module} -> {imports}"]


def test_cycle_check_finds_a_planted_cycle():
    graph, _ = _module_imports()
    assert "_core.validate" in graph["_core.padding"]
    planted = {**graph, "_core.validate": graph["_core.validate"] | {"_core.padding"}}
    assert find_cycle(planted)[0] == find_cycle(planted)[-1]


# One interpreter imports jax and NumPy (no jaxconv), then forks a child per module, which
# imports that module first: a fresh jaxconv each time without paying jax's import per module.
_FORK_IMPORTS = r"""
import importlib, os, sys, traceback
import jax, numpy
failed = []
for m in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module("jaxconv." + m)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        failed.append(m)
print("failed:", " ".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first_in_a_fresh_interpreter():
    """Each jaxconv module imported on its own, before anything else of jaxconv's (a cycle that
    only loads in one order fails here): a forked child per module (a fresh interpreter where
    fork is missing)."""
    graph, _ = _module_imports()
    modules = [m for m in sorted(graph) if m != "__init__"]
    if hasattr(os, "fork"):
        out = subprocess.run(
            [sys.executable, "-c", _FORK_IMPORTS, *modules],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, (out.stdout[-500:], out.stderr[-3000:])
        assert out.stdout.strip() == "failed:", out.stdout
        return
    code = "import importlib, sys; importlib.import_module('jaxconv.' + sys.argv[1])"
    for m in modules:
        out = subprocess.run([sys.executable, "-c", code, m], capture_output=True, text=True)
        assert out.returncode == 0, (m, out.stderr[-2000:])
