"""``fastest_k``: ignore stragglers. The PS rescales the sum of the first k uploads by
N / (chunks they cover); an unbiased-in-spirit approximation whose error is measured."""

from __future__ import annotations

import numpy as np

from .base import Decoded, Trial
from .uncoded import SplitTrial, Uncoded


class FastestKTrial(SplitTrial):
    def enough(self) -> bool:
        return len(self.received) == self.protocol.k

    def result(self) -> Decoded:
        decoded = super().result()
        decoded.residual = float(self.protocol.chunks - decoded.chunks_used)
        if decoded.estimate is not None:
            decoded.estimate *= self.protocol.chunks / decoded.chunks_used
        return decoded


class FastestK(Uncoded):
    name = "fastest_k"
    exact = False
    examples = ({"k": 9},)

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.k = spec.wait_for(self.workers)

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return FastestKTrial(self, grads)
