"""Inverse Gaussian (Wald) chunk times: the first time a drifting random walk reaches a goal.

A chunk's work as a noisy process that progresses at a steady rate: the time to finish is the
first passage of a Brownian motion with drift, ``IG(mu, shape)``, mean ``mu`` and variance
``mu**3 / shape``. Its right tail is exponential (lighter than Pareto's or the log-normal's) but,
unlike the shifted exponential, it has no hard minimum and a smooth mode, which fits measured
task times well (it is the model behind many service-time and reaction-time traces).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike

from ..models import PositiveFloat
from .base import LOG_TAIL, Dist


class InverseGaussian(Dist):
    dist: Literal["inverse_gaussian"]
    mu: PositiveFloat
    """The mean time."""
    shape: PositiveFloat
    """lambda: larger is less variable (variance mu**3 / shape)."""

    EXAMPLE: ClassVar[dict] = {"mu": 1.0, "shape": 3.0}

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.wald(self.mu, self.shape, shape)

    def frozen(self) -> Any:
        from scipy import stats

        return stats.invgauss(self.mu / self.shape, scale=self.shape)

    def sf(self, x: ArrayLike) -> np.ndarray:
        """scipy's sf gives NaN far in the tail (x of 1e10 at mu 1, shape 3: an overflow in its
        log1p), where the survival is 0 in float64."""
        x = np.asarray(x, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.frozen().sf(x)
        return np.where(np.isnan(out) & (x > self.mu), 0.0, out)

    def tail_time(self) -> float:
        # Chernoff at s = shape / (2 mu^2), where the moment generating function is still
        # finite (exp(shape / mu)): P(X > x) <= exp(shape / mu - s x) <= TAIL from
        # x = 2 mu + 2 mu^2 log(1 / TAIL) / shape on (products, not **, overflow to inf).
        return 2 * self.mu * (1 + self.mu * LOG_TAIL / self.shape)
