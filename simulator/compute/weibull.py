"""Weibull chunk times: lighter (shape > 1) or heavier (shape < 1) tails than exponential."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np

from ..models import PositiveFloat
from .base import LOG_TAIL, Dist, capped_exp


class Weibull(Dist):
    dist: Literal["weibull"]
    scale: PositiveFloat
    shape: PositiveFloat

    EXAMPLE: ClassVar[dict] = {"scale": 1.0, "shape": 1.7}

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self.scale * rng.weibull(self.shape, shape)

    def frozen(self) -> Any:
        from scipy import stats

        return stats.weibull_min(self.shape, scale=self.scale)

    def tail_time(self) -> float:
        return self.scale * capped_exp(math.log(LOG_TAIL) / self.shape)
