"""``fastest_k``: ignore stragglers. The PS rescales the sum of the first k uploads by
N / (chunks they cover); an unbiased-in-spirit approximation whose error is measured."""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import Tags
from .scheme_config import FirstUploads, SplitScheme
from .uncoded import Uncoded


class FastestKConfig(SplitScheme, FirstUploads):
    """Same split as uncoded; the PS rescales the sum of the first k uploads (approximate)."""

    protocol: Literal["fastest_k"]


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
