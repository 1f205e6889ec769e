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
    """Cross-entropy of a 0/1 label with P(y = 1) = sigmoid(z); predicts 1 where z >= 0
    (so the initial parameters, all 0, predict 1 everywhere).

    Per sample, with u = 1 + exp(-z): sigmoid(z) = 1 / u and loss = log(u) + (1 - y) z, so one
    exponential serves both and the label term is one matrix-vector product (``logaddexp`` and
    ``expit`` each cost several passes more). Both are accurate to a few ulps of |z|, and
    sigmoid is exact in the limits (u = inf gives 0); only the loss of a sample with z < -709
    (u overflows) needs the stable form max(z, 0) + log1p(exp(-|z|)) - y z, which the columns
    holding one get instead.
    """

    name = "logistic"
    has_accuracy = True

    def evaluate(self, Z: np.ndarray, y: np.ndarray) -> Evaluation:
        n = Z.shape[0]
        u = np.negative(Z)
        with np.errstate(over="ignore"):
            np.exp(u, out=u)
        u += 1.0
        total = np.log(u).sum(axis=0)
        total += (1.0 - y) @ Z
        overflowed = ~np.isfinite(total)
        if overflowed.any():
            total[overflowed] = _stable_total(Z[:, overflowed], y)
        R = np.reciprocal(u, out=u)
        R -= y[:, None]
        right = (Z >= 0) == (y[:, None] > 0.5)
        return Evaluation(total / n, right.mean(axis=0), R)


def _stable_total(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Summed logistic loss of the columns of ``Z`` in the form that never overflows."""
    per_sample = np.log1p(np.exp(-np.abs(Z))) + np.maximum(Z, 0.0) - Z * y[:, None]
    return per_sample.sum(axis=0)


MODELS: dict[str, type[Model]] = {"least_squares": LeastSquares, "logistic": Logistic}


def model(name: str) -> Model:
    """The model called ``name`` (``training.model``)."""
    return MODELS[name]()
