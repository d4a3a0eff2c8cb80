"""jaxconv: convolution and pooling layers for JAX with hand-written, proven backward passes."""

from importlib.metadata import PackageNotFoundError, version

from jaxconv import reference as reference
from jaxconv._backward import conv_input_grad as conv_input_grad
from jaxconv._backward import conv_weight_grad as conv_weight_grad
from jaxconv._conv import conv as conv
from jaxconv._conv_transpose import conv_transpose as conv_transpose
from jaxconv._general import conv_general_dilated as conv_general_dilated

try:
    __version__ = version("jaxconv")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
