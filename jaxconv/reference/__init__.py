"""Slow, literal NumPy transcriptions of the source documents' equations: the tests' oracle.

Each function is a plain loop over indices that reads like the equation its docstring cites,
computed in float64. jaxconv's conventions throughout: channels_last, x ``(N, *spatial, C)``,
kernel ``(*k, C_in // groups, C_out)``, cross-correlation (no kernel flip), zero padding only. Any
number of spatial dims share one code path (``np.ndindex`` over spatial indices). ``stride``,
``dilation``, ``window``: an int or one int per spatial dim; ``padding``: an int, one int per dim,
or one ``(lo, hi)`` pair per dim. This module never imports jax: it shares no code with what it
judges.

Sources (``/work/shared/seeds``): Jefkine 2016 (seed 001: Eq. 4 forward, Eq. 9 MSE, Eq. 13/14 weight
gradient, Eq. 20/21 input gradient, pooling backward); the lecture slides (seed 002: ReLU backward,
the strided 1-D conv as a matrix C, backward Cᵀ); the Q&A on dE/dW (seed 003: G1..G4); Schmidt 2017
(seed 004: "multiple kernels with stride" forward, backward and gradient step).
"""

from ._adaptive import adaptive_avg_pool as adaptive_avg_pool
from ._adaptive import adaptive_avg_pool_grad as adaptive_avg_pool_grad
from ._adaptive import adaptive_max_pool as adaptive_max_pool
from ._adaptive import adaptive_max_pool_grad as adaptive_max_pool_grad
from ._adaptive import adaptive_max_pool_split_grad as adaptive_max_pool_split_grad
from ._adaptive import fractional_max_pool as fractional_max_pool
from ._adaptive import fractional_max_pool_grad as fractional_max_pool_grad
from ._adaptive import fractional_max_pool_split_grad as fractional_max_pool_split_grad
from ._conv import conv as conv
from ._conv import conv_bias_grad as conv_bias_grad
from ._conv import conv_input_grad as conv_input_grad
from ._conv import conv_matrix as conv_matrix
from ._conv import conv_weight_grad as conv_weight_grad
from ._conv import rot180 as rot180
from ._dense import linear as linear
from ._dense import linear_grad as linear_grad
from ._dense import mse_loss as mse_loss
from ._dense import mse_loss_grad as mse_loss_grad
from ._dense import relu as relu
from ._dense import relu_grad as relu_grad
from ._dense import softmax_cross_entropy as softmax_cross_entropy
from ._dense import softmax_cross_entropy_grad as softmax_cross_entropy_grad
from ._interpolate import interpolate as interpolate
from ._interpolate import interpolate_grad as interpolate_grad
from ._pool import avg_pool as avg_pool
from ._pool import avg_pool_grad as avg_pool_grad
from ._pool import lp_pool as lp_pool
from ._pool import lp_pool_grad as lp_pool_grad
from ._pool import max_pool as max_pool
from ._pool import max_pool_grad as max_pool_grad
from ._spatial import conv_local as conv_local
from ._spatial import conv_local_grad as conv_local_grad
from ._spatial import fold as fold
from ._spatial import pixel_shuffle as pixel_shuffle
from ._spatial import pixel_unshuffle as pixel_unshuffle
from ._spatial import unfold as unfold
