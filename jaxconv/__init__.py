"""jaxconv: convolution and pooling layers for JAX with hand-written, proven backward passes."""

from importlib.metadata import PackageNotFoundError, version

from jaxconv import _version  # noqa: F401  (first: a too-old jax fails here, by name)
from jaxconv import reference as reference
from jaxconv._activation import relu as relu
from jaxconv._avgpool import avg_pool as avg_pool
from jaxconv._avgpool import global_avg_pool as global_avg_pool
from jaxconv._avgpool import lp_pool as lp_pool
from jaxconv._conv import conv as conv
from jaxconv._conv_grads import conv_input_grad as conv_input_grad
from jaxconv._conv_grads import conv_weight_grad as conv_weight_grad
from jaxconv._conv_transpose import conv_transpose as conv_transpose
from jaxconv._general import conv_general_dilated as conv_general_dilated
from jaxconv._linear import linear as linear
from jaxconv._loss import mse_loss as mse_loss
from jaxconv._loss import softmax_cross_entropy as softmax_cross_entropy
from jaxconv._maxpool import max_pool as max_pool
from jaxconv._remat import RESIDUAL_NAMES as RESIDUAL_NAMES
from jaxconv._unpool import global_max_pool as global_max_pool
from jaxconv._unpool import max_unpool as max_unpool

try:
    __version__ = version("jaxconv")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "RESIDUAL_NAMES",
    "avg_pool",
    "conv",
    "conv_general_dilated",
    "conv_input_grad",
    "conv_transpose",
    "conv_weight_grad",
    "global_avg_pool",
    "global_max_pool",
    "linear",
    "lp_pool",
    "max_pool",
    "max_unpool",
    "mse_loss",
    "reference",
    "relu",
    "softmax_cross_entropy",
]
