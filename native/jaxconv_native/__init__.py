"""jaxconv's optional native CPU kernels: where the shared library is, and loading its oneDNN.

jaxconv (`jaxconv._core.native`) loads the library with ctypes and registers its handlers with
XLA; this package only ships the library and says where it is. See ../README.md.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

__version__ = "0.1.0"

_HERE = Path(__file__).resolve().parent


def library_path() -> str:
    """The absolute path of the built shared library (``libjaxconv_native.so``)."""
    found = sorted(_HERE.glob("libjaxconv_native*.so*"))
    if not found:
        raise OSError(f"libjaxconv_native.so is not in {_HERE}: the package was not built")
    return str(found[0])


def preload() -> None:
    """Load oneDNN (``libdnnl.so.3`` of the onednn-cpu-gomp wheel, in this environment's lib/)
    globally, so that the library finds it even where its RPATH does not point there."""
    lib = Path(sys.prefix) / "lib" / "libdnnl.so.3"
    if lib.exists():
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)


def _onednn_version() -> str:
    preload()
    v = ctypes.CDLL(library_path()).jaxconv_native_onednn_version()
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


try:
    ONEDNN_VERSION = _onednn_version()
except OSError:  # not built: jaxconv reports why when it tries to load the library
    ONEDNN_VERSION = None
