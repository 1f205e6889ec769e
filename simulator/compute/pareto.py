"""Heavy-tailed chunk times (Pareto type I): rare, very slow stragglers."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from ..models import PositiveFloat
from .base import LOG_TAIL, Dist, capped_exp


class Pareto(Dist):
    dist: Literal["pareto"]
    scale: PositiveFloat
    alpha: PositiveFloat

    EXAMPLE: ClassVar[dict] = {"scale": 1.0, "alpha": 3.5}

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self.scale * (1.0 + rng.pareto(self.alpha, shape))  # numpy's pareto is Lomax

    def frozen(self) -> Any:
        from scipy import stats

        return stats.pareto(self.alpha, scale=self.scale)

    def tail_time(self) -> float:
        return self.scale * capped_exp(LOG_TAIL / self.alpha)
