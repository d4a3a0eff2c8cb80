"""Sphinx configuration of jaxconv's documentation site.

Build (warnings are errors; the tutorials execute during the build)::

    pip install -e '.[docs]'
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The MyST notebooks under tutorials/ run in a Jupyter kernel of this Python (myst-nb, cached
under docs/_build/.jupyter_cache between builds). The four figures of the derivation pages are
drawn from experiments/figures.py at the start of every build (``_ext/jaxconv_docs.py``), so
their numbers are those of the installed jaxconv.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # the jaxconv of this tree, installed or not

os.environ.setdefault("MPLBACKEND", "Agg")
# The notebooks' kernels inherit the environment: keep them on the CPU and quiet.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jaxconv  # noqa: E402

project = "jaxconv"
author = "the jaxconv authors"
copyright = "the jaxconv authors"  # noqa: A001
release = jaxconv.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # MyST markdown pages and executed MyST notebooks (loads myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style Args:/Returns:/Example: sections
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from _static/: the site renders math offline
    "jaxconv_docs",  # figures from experiments/figures.py; every public name documented
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
templates_path = []

# ------------------------------------------------------------------------------ MyST, myst-nb
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

nb_execution_mode = "cache"  # re-run a notebook only when its code changed
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 180
nb_execution_in_temp = True  # files a notebook writes (the GIF) stay out of the source tree
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_kernel_rgx_aliases = {".*": "python3"}

# ----------------------------------------------------------------------- autodoc, napoleon
autodoc_member_order = "bysource"
# Signatures without annotations: the docstrings say what each argument is (shapes, forms),
# and the annotated unions (ArrayLike, Padding, ...) would fill several lines per function.
autodoc_typehints = "none"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Single backticks in docstrings (`conv_input_grad`) name Python objects: cross-links where the
# object is documented here, literal text otherwise (no warning: nitpicky stays off).
default_role = "py:obj"
add_module_names = False
python_display_short_literal_types = True

# ---------------------------------------------------------------------------------- HTML
html_theme = "sphinx_book_theme"
html_title = f"jaxconv {release}"
html_static_path = ["_static"]
html_css_files = ["jaxconv.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "home_page_in_toc": True,
    "use_download_button": False,
    "use_fullscreen_button": False,
    # pydata-sphinx-theme 0.20 adds a search field to a top navbar that sphinx-book-theme
    # leaves empty (its search is in the sidebar): keep that navbar empty.
    "navbar_persistent": [],
}
html_last_updated_fmt = None
html_copy_source = False
html_show_sourcelink = False
