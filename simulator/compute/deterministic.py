"""Every chunk takes the same time: no stragglers but the configured slowdowns."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike

from ..models import NonNegFloat
from .base import Dist


class Deterministic(Dist):
    dist: Literal["deterministic"]
    value: NonNegFloat

    EXAMPLE: ClassVar[dict] = {"value": 1.5}

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, self.value)

    def mean(self) -> float:
        return self.value

    def var(self) -> float:
        return 0.0

    def cdf(self, x: ArrayLike) -> np.ndarray:
        return (np.asarray(x, dtype=float) >= self.value).astype(float)

    def sf(self, x: ArrayLike) -> np.ndarray:
        return (np.asarray(x, dtype=float) < self.value).astype(float)

    def tail_time(self) -> float:
        return self.value

    def atoms(self, key: str) -> list[tuple[str, str]]:
        return [(f"{key}.dist", "deterministic")]
