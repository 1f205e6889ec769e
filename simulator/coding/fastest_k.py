"""``fastest_k``: ignore stragglers. The PS rescales the sum of the first k uploads by
N / (chunks they cover); an unbiased-in-spirit approximation whose error is measured."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .base import Tags
from .scheme_config import Problems, SplitScheme
from .uncoded import Uncoded


class FastestKConfig(SplitScheme):
    """Same split as uncoded; the PS rescales the sum of the first k uploads (approximate)."""

    protocol: Literal["fastest_k"]
    k: Annotated[int, Field(ge=1)] | None = None
    """Uploads to wait for; or give ``fraction`` instead."""
    fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    """k as a fraction of the workers (rounded up), so a sweep over workers keeps it valid."""

    def wait_for(self, workers: int) -> int:
        return self.k if self.k is not None else math.ceil(self.fraction * workers - 1e-9)

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        problems = super().problems(key, workers, chunks)
        if (self.k is None) == (self.fraction is None):
            problems.append(
                (f"{key}.k", "give exactly one of k (uploads) or fraction (of workers)")
            )
        elif self.k is not None and self.k > workers:
            problems.append((f"{key}.k", f"k must be at most workers ({workers}), got {self.k}"))
        return problems


class FastestK(Uncoded):
    name = "fastest_k"
    config = FastestKConfig
    tags = Tags(approximate=True)
    exact = False
    examples = ({"k": 9},)

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.k = self.waits_for = spec.wait_for(self.workers)

    def estimate(self, payloads: list[np.ndarray], covered: int) -> np.ndarray:
        """The sum of the first k uploads, rescaled to the N chunks."""
        total = super().estimate(payloads, covered)
        total *= self.chunks / covered
        return total
