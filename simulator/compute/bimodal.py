"""A mixture of two distributions: each draw is slow with probability ``p_slow``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import Field, SerializationInfo, field_serializer

from .base import Dist, Sampler


class Bimodal(Dist):
    dist: Literal["bimodal"]
    p_slow: Annotated[float, Field(ge=0, le=1)]
    # "Distribution" is the union of every registered model: the registry resolves it (an
    # import of it here would be a cycle).
    fast: Distribution  # noqa: F821
    slow: Distribution  # noqa: F821

    EXAMPLE: ClassVar[dict] = {
        "p_slow": 0.2,
        "fast": {"dist": "exponential", "rate": 2.0},
        "slow": {"dist": "shifted_exponential", "shift": 2.0, "rate": 1.0},
    }

    @field_serializer("fast", "slow")
    def _component(self, law: Dist, info: SerializationInfo) -> dict:
        """A component without ``per`` (only the mixture says it; a component that did would
        be refused when the written config is read again)."""
        return law.model_dump(mode=info.mode, exclude={"per"})

    def sampler(self, source_dir: Path) -> Mixture:
        return Mixture(self.p_slow, self.fast.sampler(source_dir), self.slow.sampler(source_dir))

    def _law(self) -> Mixture:
        return Mixture(self.p_slow, self.fast, self.slow)

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return self._law().draw(rng, shape)

    def mean(self) -> float | None:
        return self._law().mean()

    def var(self) -> float | None:
        return self._law().var()

    def cdf(self, x: ArrayLike) -> np.ndarray | None:
        return self._law().cdf(x)

    def sf(self, x: ArrayLike) -> np.ndarray | None:
        return self._law().sf(x)

    def tail_time(self) -> float:
        return self._law().tail_time()

    def atoms(self, key: str) -> list[tuple[str, str]]:
        return self.fast.atoms(f"{key}.fast") + self.slow.atoms(f"{key}.slow")

    def problems(self, key: str, nested: bool) -> list[tuple[str, str]]:
        return (
            super().problems(key, nested)
            + self.fast.problems(f"{key}.fast", nested=True)
            + self.slow.problems(f"{key}.slow", nested=True)
        )

    def data_problems(self, key: str, source_dir: Path) -> list[tuple[str, str]]:
        return self.fast.data_problems(f"{key}.fast", source_dir) + self.slow.data_problems(
            f"{key}.slow", source_dir
        )


class Mixture:
    """Two laws mixed: slow with probability ``p``. Unknown (None) where a part is."""

    def __init__(self, p: float, fast: Sampler, slow: Sampler):
        self.p, self.fast, self.slow = p, fast, slow

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        slow = rng.random(shape) < self.p
        return np.where(slow, self.slow.draw(rng, shape), self.fast.draw(rng, shape))

    def mean(self) -> float | None:
        a, b = self.fast.mean(), self.slow.mean()
        if a is None or b is None:
            return None
        return (1 - self.p) * a + self.p * b

    def var(self) -> float | None:
        a, b, mean = self.fast.var(), self.slow.var(), self.mean()
        if a is None or b is None or mean is None:
            return None
        if math.isinf(mean):
            return math.inf  # a part without a mean has no variance either
        second = (1 - self.p) * (a + self.fast.mean() ** 2) + self.p * (b + self.slow.mean() ** 2)
        return second - mean**2

    def cdf(self, x: ArrayLike) -> np.ndarray | None:
        a, b = self.fast.cdf(x), self.slow.cdf(x)
        if a is None or b is None:
            return None
        return (1 - self.p) * a + self.p * b

    def sf(self, x: ArrayLike) -> np.ndarray | None:
        a, b = self.fast.sf(x), self.slow.sf(x)
        if a is None or b is None:
            return None
        return (1 - self.p) * a + self.p * b

    def tail_time(self) -> float:
        return max(self.fast.tail_time(), self.slow.tail_time())
