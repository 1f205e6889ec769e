"""Log-normal chunk times: the product of many small slowdowns."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np

from ..models import PositiveFloat
from .base import Dist, capped_exp

#: P(Z > 7.035) < 1e-12 = TAIL for a standard normal Z.
_Z_TAIL = 7.035


class Lognormal(Dist):
    dist: Literal["lognormal"]
    mu: float
    sigma: PositiveFloat

    EXAMPLE: ClassVar[dict] = {"mu": 0.2, "sigma": 0.6}

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, shape)

    def frozen(self) -> Any:
        from scipy import stats

        return stats.lognorm(self.sigma, scale=math.exp(self.mu))

    def tail_time(self) -> float:
        return capped_exp(self.mu + self.sigma * _Z_TAIL)
