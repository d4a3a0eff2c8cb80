"""jaxconv: convolution and pooling layers for JAX with hand-written, proven backward passes."""

from importlib.metadata import PackageNotFoundError, version

from jaxconv import reference as reference
from jaxconv._core import version as _version  # noqa: F401  (first: a too-old jax fails here, by name)
from jaxconv._core.native import native_available as native_available
from jaxconv._core.residuals import RESIDUAL_NAMES as RESIDUAL_NAMES
from jaxconv.convolution.api import conv as conv
from jaxconv.convolution.api import conv_input_grad as conv_input_grad
from jaxconv.convolution.api import conv_transpose as conv_transpose
from jaxconv.convolution.api import conv_weight_grad as conv_weight_grad
from jaxconv.convolution.general import conv_general_dilated as conv_general_dilated
from jaxconv.convolution.local import conv_general_dilated_local as conv_general_dilated_local
from jaxconv.convolution.local import conv_local as conv_local
from jaxconv.convolution.unfold import fold as fold
from jaxconv.convolution.unfold import unfold as unfold
from jaxconv.dense.activation import relu as relu
from jaxconv.dense.linear import linear as linear
from jaxconv.dense.losses import mse_loss as mse_loss
from jaxconv.dense.losses import softmax_cross_entropy as softmax_cross_entropy
from jaxconv.explain import explain as explain
from jaxconv.pooling.adaptive import adaptive_avg_pool as adaptive_avg_pool
from jaxconv.pooling.adaptive import adaptive_max_pool as adaptive_max_pool
from jaxconv.pooling.avg_pool import avg_pool as avg_pool
from jaxconv.pooling.avg_pool import global_avg_pool as global_avg_pool
from jaxconv.pooling.fractional import fractional_max_pool as fractional_max_pool
from jaxconv.pooling.lp_pool import lp_pool as lp_pool
from jaxconv.pooling.max_pool import max_pool as max_pool
from jaxconv.pooling.max_pool import min_pool as min_pool
from jaxconv.pooling.unpool import global_max_pool as global_max_pool
from jaxconv.pooling.unpool import max_unpool as max_unpool
from jaxconv.resampling.interpolate import interpolate as interpolate
from jaxconv.resampling.pixel_shuffle import pixel_shuffle as pixel_shuffle
from jaxconv.resampling.pixel_shuffle import pixel_unshuffle as pixel_unshuffle

try:
    __version__ = version("jaxconv")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "RESIDUAL_NAMES",
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "avg_pool",
    "conv",
    "conv_general_dilated",
    "conv_general_dilated_local",
    "conv_input_grad",
    "conv_local",
    "conv_transpose",
    "conv_weight_grad",
    "explain",
    "fold",
    "fractional_max_pool",
    "global_avg_pool",
    "global_max_pool",
    "interpolate",
    "linear",
    "lp_pool",
    "max_pool",
    "max_unpool",
    "min_pool",
    "mse_loss",
    "native_available",
    "pixel_shuffle",
    "pixel_unshuffle",
    "reference",
    "relu",
    "softmax_cross_entropy",
    "unfold",
]
