"""The models a training run fits, each vectorized over B parameter vectors at once.

Parameters are a (features, B) matrix ``theta`` (one column per (trial, scheme) being trained),
so a forward pass is one matrix product ``Z = X @ theta`` (samples, B) and every quantity below
is a function of ``Z`` column by column. Losses are MEANS over samples; ``residual`` is the
derivative of one sample's loss with respect to its ``z``, so the SUM over a chunk's samples of
``residual * x`` is that chunk's gradient and the full gradient of the mean loss is
``X.T @ residual / samples`` (``loop.train`` adds the PS's l2 term).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


class Model:
    """A generalized linear model: one sample's loss is a function of z = x . theta."""

    name = ""
    has_accuracy = False

    def loss(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(B,) mean loss of each column of ``Z``."""
        raise NotImplementedError

    def residual(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(samples, B) derivative of each sample's loss with respect to its z."""
        raise NotImplementedError

    def accuracy(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(B,) fraction of samples classified right (NaN: the model does not classify)."""
        return np.full(Z.shape[1], np.nan)


class LeastSquares(Model):
    """Loss (z - y)^2 / 2 per sample; its minimizer is the least-squares solution."""

    name = "least_squares"

    def loss(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        diff = Z - y[:, None]
        return 0.5 * np.einsum("ij,ij->j", diff, diff) / Z.shape[0]

    def residual(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return Z - y[:, None]


class Logistic(Model):
    """Cross-entropy of a 0/1 label with P(y = 1) = sigmoid(z), computed as
    log(1 + e^z) - y z with ``logaddexp`` (no overflow for large |z|)."""

    name = "logistic"
    has_accuracy = True

    def loss(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        per_sample = np.logaddexp(0.0, Z)
        per_sample -= Z * y[:, None]
        return per_sample.mean(axis=0)

    def residual(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        R = expit(Z)
        R -= y[:, None]
        return R

    def accuracy(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ((Z > 0) == (y[:, None] > 0.5)).mean(axis=0)


MODELS: dict[str, type[Model]] = {"least_squares": LeastSquares, "logistic": Logistic}


def model(name: str) -> Model:
    """The model called ``name`` (``training.model``)."""
    return MODELS[name]()


def gradient(model: Model, X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(features, B) gradient of the mean loss at each column of ``theta`` (no l2): the
    reference the loop's decoded gradients are compared with in tests."""
    return X.T @ model.residual(X @ theta, y) / X.shape[0]
