"""Sphinx extension of jaxconv's docs: build-time figures, docstring escaping and a completeness
check of the API.

- ``builder-inited``: draw the four figures of ``experiments/figures.py`` (the seeds' backward
  passes on real numbers, each checked against ``jax.vjp``) into ``docs/_generated/figures/``,
  redrawn whenever figures.py or a jaxconv source is newer than the images. The derivation
  pages include them from there, so the site never shows numbers of an older jaxconv.
- ``autodoc-process-docstring``: the docstrings are written for ``help()``, with plain-text
  formulas that reST would misread: shapes written the way Python unpacks them,
  ``(N, *spatial, C)`` (a star that opens an emphasis that never ends), absolute values
  ``|x|`` (a substitution), ```Residual`s`` (markup followed by a letter). Outside literals,
  roles, math, code and doctest blocks these are escaped, so they render as written.
- ``env-check-consistency``: every public name -- ``jaxconv.__all__``, the public functions of
  ``jaxconv.reference`` and ``jaxconv.testing.__all__`` -- must be documented by an autodoc
  directive somewhere; a missing one is a warning, i.e. an error under ``-W``.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
FIGURES_OUT = DOCS / "_generated" / "figures"


# --------------------------------------------------------------------------------- figures
def _newest_source_mtime() -> float:
    sources = [ROOT / "experiments" / "figures.py", ROOT / "experiments" / "_common.py"]
    sources += list((ROOT / "jaxconv").rglob("*.py"))
    return max(p.stat().st_mtime for p in sources if p.exists())


def draw_figures(app) -> None:
    import jax

    spec = importlib.util.spec_from_file_location(
        "jaxconv_experiments_figures", ROOT / "experiments" / "figures.py"
    )
    FIGURES_OUT.mkdir(parents=True, exist_ok=True)
    module = importlib.util.module_from_spec(spec)
    names = list(_figure_names(module, spec))
    targets = [FIGURES_OUT / n for n in names]
    if (
        all(t.exists() for t in targets)
        and min(t.stat().st_mtime for t in targets) > _newest_source_mtime()
    ):
        logger.info("jaxconv_docs: figures up to date in %s", FIGURES_OUT)
        return
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # as figures.main: exact small integers
    try:
        for name, fn in module.FIGURES.items():
            err = fn(FIGURES_OUT)
            if err > 1e-9:
                logger.warning("jaxconv_docs: %s: NumPy and jax.vjp disagree by %.2e", name, err)
            logger.info("jaxconv_docs: drew %s (max |NumPy - jax.vjp| = %.1e)", name, err)
    finally:
        jax.config.update("jax_enable_x64", x64)


def _figure_names(module, spec):
    sys.path.insert(0, str(ROOT / "experiments"))  # figures.py imports _common
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    return module.FIGURES.keys()


# ------------------------------------------------------------------------------ docstrings
# Inline markup tokens: ``literal``, :role:`text`, `interpreted` (and its link forms).
_INLINE = re.compile(r"(``.+?``|:[\w.:+-]+:`[^`]+`|`[^`]+`_{0,2})")
_EMPHASIS = re.compile(r"(?<![^\s(\[])\*{1,2}[^\s*][^*]*?(?<=\S)\*{1,2}(?=$|[\s).,;:!?'\"\]-])")
_STAR_START = re.compile(r"(?<=[\s(\[])\*(?=[A-Za-z_])|^\*(?=[A-Za-z_])")
_BARS = re.compile(r"(?<![\w|\\])\|(?=\S)([^|]*?\S)\|(?![\w|])")
_BLOCK_DIRECTIVE = re.compile(r"^\s*\.\. (math|code-block|code|sourcecode|doctest|testcode)::")


def _plain(text: str) -> str:
    """Escape what reST would misread in plain-text formulas: a star that opens no emphasis
    (``(N, *spatial, C)``; ``*y*`` and ``**b**`` stay) and bars around a word (``|x|``, an
    absolute value, not a substitution)."""
    out, last = [], 0
    for m in _EMPHASIS.finditer(text):
        out += [_STAR_START.sub(r"\\*", text[last : m.start()]), m.group()]
        last = m.end()
    out.append(_STAR_START.sub(r"\\*", text[last:]))
    return _BARS.sub(r"\\|\1\\|", "".join(out))


def _escape_line(line: str) -> str:
    parts = _INLINE.split(line)
    for j in range(1, len(parts), 2):  # `Residual`s: markup must end before a letter
        if j + 1 < len(parts) and parts[j + 1][:1].isalnum():
            parts[j + 1] = "\\ " + parts[j + 1]
    return "".join(p if j % 2 else _plain(p) for j, p in enumerate(parts))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def escape_plain_text(app, what, name, obj, options, lines) -> None:
    """autodoc-process-docstring: the docstrings are written for ``help()``; make their
    plain-text formulas valid reST, leaving literal, math, code and doctest blocks alone."""
    skip_indent = None  # inside an indented block (math, code, literal) deeper than this
    doctest = False
    for i, line in enumerate(lines):
        if doctest:
            doctest = bool(line.strip())
            continue
        if skip_indent is not None:
            if not line.strip() or _indent(line) > skip_indent:
                continue
            skip_indent = None
        if line.lstrip().startswith(">>>"):
            doctest = True
            continue
        if _BLOCK_DIRECTIVE.match(line):
            skip_indent = _indent(line)
            continue
        lines[i] = _escape_line(line)
        if line.rstrip().endswith("::"):
            skip_indent = _indent(line)


# ------------------------------------------------------------------------ API completeness
def public_names() -> list[str]:
    """Every name the package makes public, fully qualified."""
    import jaxconv
    import jaxconv.reference
    import jaxconv.testing

    names = [f"jaxconv.{n}" for n in jaxconv.__all__]
    ref = jaxconv.reference
    names += [
        f"jaxconv.reference.{n}"
        for n, obj in vars(ref).items()
        if not n.startswith("_") and inspect.isfunction(obj)
    ]
    names += [f"jaxconv.testing.{n}" for n in jaxconv.testing.__all__]
    return names


def check_api_documented(app, env) -> None:
    documented = set(env.get_domain("py").objects)
    missing = [n for n in public_names() if n not in documented]
    if missing:
        logger.warning(
            "jaxconv_docs: public names without API documentation (add them to docs/api/): %s",
            ", ".join(missing),
        )


def setup(app):
    app.connect("builder-inited", draw_figures)
    app.connect("autodoc-process-docstring", escape_plain_text)
    app.connect("env-check-consistency", check_api_documented)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
