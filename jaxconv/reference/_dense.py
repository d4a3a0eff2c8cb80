"""ReLU, linear, the MSE and softmax cross-entropy losses and their gradients."""

from __future__ import annotations

from itertools import product

import numpy as np

from ._grid import _f64


def relu(x):
    """max(0, x), elementwise (Jefkine's f(x) = max(0, x))."""
    x = _f64(x)
    return np.where(x > 0, x, 0.0)


def relu_grad(x, g):
    """Seed 002: the gradient passes only where the input was positive; relu'(0) = 0."""
    return np.where(_f64(x) > 0, _f64(g), 0.0)


def linear(x, w, b=None):
    """``y[n, o] = Σ_i x[n, i] · w[i, o] + b[o]``; x ``(..., I)``, w ``(I, O)`` -> ``(..., O)``."""
    x, w = _f64(x), _f64(w)
    y = np.zeros((*x.shape[:-1], w.shape[1]))
    for n, o in product(np.ndindex(*x.shape[:-1]), range(w.shape[1])):
        for i in range(w.shape[0]):
            y[(*n, o)] += x[(*n, i)] * w[i, o]
        if b is not None:
            y[(*n, o)] += _f64(b)[o]
    return y


def linear_grad(x, w, g):
    """(dx, dw, db) of `linear`: the transposed matrix products ``g wᵀ``, ``xᵀ g``, ``Σ_n g``."""
    x, w, g = _f64(x), _f64(w), _f64(g)
    dx, dw, db = np.zeros(x.shape), np.zeros(w.shape), np.zeros(w.shape[1])
    for n, i, o in product(np.ndindex(*x.shape[:-1]), range(w.shape[0]), range(w.shape[1])):
        dx[(*n, i)] += g[(*n, o)] * w[i, o]
        dw[i, o] += x[(*n, i)] * g[(*n, o)]
    for n in np.ndindex(*x.shape[:-1]):
        db += g[n]
    return dx, dw, db


def mse_loss(y, t):
    """Jefkine Eq. 9: ``E = ½ Σ_p (t_p − y_p)²``."""
    y, t = _f64(y), _f64(t)
    return float(sum(0.5 * (t[idx] - y[idx]) ** 2 for idx in np.ndindex(*y.shape)))


def mse_loss_grad(y, t, g=1.0):
    """dE/dy of Eq. 9: ``−(t − y)``, times the incoming scalar g."""
    return g * (_f64(y) - _f64(t))


def softmax_cross_entropy(logits, labels):
    """Mean over the batch of ``−log softmax(z)[label]``; logits (..., K), int labels (...)."""
    z, labels = _f64(logits), np.asarray(labels)
    total = 0.0
    for n in np.ndindex(*z.shape[:-1]):
        zmax = max(z[n])
        total += zmax + np.log(sum(np.exp(zk - zmax) for zk in z[n])) - z[n][labels[n]]
    return float(total / max(1, labels.size))


def softmax_cross_entropy_grad(logits, labels, g=1.0):
    """d/dz of `softmax_cross_entropy`: ``(softmax(z) − onehot(label)) / N``, times g."""
    z, labels = _f64(logits), np.asarray(labels)
    dz = np.zeros(z.shape)
    for n in np.ndindex(*z.shape[:-1]):
        e = np.exp(z[n] - max(z[n]))
        dz[n] = e / e.sum()
        dz[n][labels[n]] -= 1.0
    return g * dz / max(1, labels.size)
