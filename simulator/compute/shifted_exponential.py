"""A fixed minimum time plus a memoryless delay (Lee et al.'s model of a worker's time)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from ..models import NonNegFloat, PositiveFloat
from .base import LOG_TAIL, Dist


class ShiftedExponential(Dist):
    dist: Literal["shifted_exponential"]
    shift: NonNegFloat
    rate: PositiveFloat

    EXAMPLE: ClassVar[dict] = {"shift": 1.0, "rate": 1.5}

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self.shift + rng.exponential(1.0 / self.rate, shape)

    def frozen(self) -> Any:
        from scipy import stats

        return stats.expon(loc=self.shift, scale=1.0 / self.rate)

    def tail_time(self) -> float:
        return self.shift + LOG_TAIL / self.rate
