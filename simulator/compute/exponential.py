"""Memoryless chunk times: the textbook straggler model."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from ..models import PositiveFloat
from .base import LOG_TAIL, Dist


class Exponential(Dist):
    dist: Literal["exponential"]
    rate: PositiveFloat

    EXAMPLE: ClassVar[dict] = {"rate": 2.0}

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.exponential(1.0 / self.rate, shape)

    def frozen(self) -> Any:
        from scipy import stats

        return stats.expon(scale=1.0 / self.rate)

    def tail_time(self) -> float:
        return LOG_TAIL / self.rate
