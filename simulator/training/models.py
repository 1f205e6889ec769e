"""The models a training run fits, each vectorized over B parameter vectors at once.

Parameters are a (features, B) matrix ``theta`` (one column per (trial, scheme) being trained),
so a forward pass is one matrix product ``Z = X @ theta`` (samples, B) and everything below is a
function of ``Z`` column by column. Losses are MEANS over samples; the residual is the
derivative of one sample's loss with respect to its ``z``, so the SUM over a chunk's samples of
``residual * x`` is that chunk's gradient and the gradient of the mean loss is
``X.T @ residual / samples`` (``loop`` adds the PS's l2 term).

``evaluate`` gives the loss, the accuracy and the residual of one ``Z`` in one pass: the loop
evaluates the parameters after each step, and the residual it gets there is the next step's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Evaluation(NamedTuple):
    loss: np.ndarray  # (B,) mean loss
    accuracy: np.ndarray  # (B,) fraction classified right; NaN: the model does not classify
    residual: np.ndarray  # (samples, B) d(sample loss) / dz


class Model:
    """A generalized linear model: one sample's loss is a function of z = x . theta."""

    name = ""
    has_accuracy = False

    def evaluate(self, Z: np.ndarray, y: np.ndarray) -> Evaluation:
        raise NotImplementedError


class LeastSquares(Model):
    """Loss (z - y)^2 / 2 per sample; its minimizer is the least-squares solution."""

    name = "least_squares"

    def evaluate(self, Z: np.ndarray, y: np.ndarray) -> Evaluation:
        R = Z - y[:, None]
        loss = 0.5 * np.einsum("ij,ij->j", R, R) / Z.shape[0]
        return Evaluation(loss, np.full(Z.shape[1], np.nan), R)


class Logistic(Model):
    """Cross-entropy of a 0/1 label with P(y = 1) = sigmoid(z).

    Per sample, loss = max(z, 0) + log(1 + e) - y z and sigmoid(z) = (1 if z >= 0 else e) /
    (1 + e), with e = exp(-|z|) in (0, 1]: no overflow for any z, one exponential shared by
    both (``numpy.logaddexp`` and ``scipy.special.expit`` each cost several times more). log(1
    + e) rounds to 0 once e < 1e-16, an absolute error below 1e-16 in a loss of order 0.01-1.
    """

    name = "logistic"
    has_accuracy = True

    def evaluate(self, Z: np.ndarray, y: np.ndarray) -> Evaluation:
        n = Z.shape[0]
        e = np.abs(Z)
        np.negative(e, out=e)
        np.exp(e, out=e)
        one = e + 1.0
        positive = Z >= 0
        total = np.log(one).sum(axis=0)
        total += np.maximum(Z, 0.0).sum(axis=0)
        total -= y @ Z
        R = np.where(positive, 1.0, e)
        R /= one
        R -= y[:, None]
        right = positive == (y[:, None] > 0.5)
        return Evaluation(total / n, right.mean(axis=0), R)


MODELS: dict[str, type[Model]] = {"least_squares": LeastSquares, "logistic": Logistic}


def model(name: str) -> Model:
    """The model called ``name`` (``training.model``)."""
    return MODELS[name]()
