"""Gamma chunk times: the sum of ``shape`` exponential stages."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np

from ..models import PositiveFloat
from .base import LOG_TAIL, Dist


class Gamma(Dist):
    dist: Literal["gamma"]
    shape: PositiveFloat
    scale: PositiveFloat

    EXAMPLE: ClassVar[dict] = {"shape": 2.5, "scale": 0.4}

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.gamma(self.shape, self.scale, shape)

    def frozen(self) -> Any:
        from scipy import stats

        return stats.gamma(self.shape, scale=self.scale)

    def tail_time(self) -> float:
        # Sub-gamma tail: P(X > k + sqrt(2kt) + t) <= e^-t at scale 1.
        t = LOG_TAIL
        return self.scale * (self.shape + math.sqrt(2 * self.shape * t) + t)
