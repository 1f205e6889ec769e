"""``original_gc``: the original gradient codes. A worker uploads one coded vector only after it
has processed all its chunks; the PS decodes from any m - s uploads (s = load - ell). Work of a
worker that has not finished is wasted: this is what the partial-straggler protocol improves on.

``construction: random`` is Tandon et al.'s cyclic code (ell = 1), drawn once per run from the
scheme's own stream (the best conditioned of ``candidates`` draws) and decoded by least squares.
"""

from __future__ import annotations

import numpy as np

from ..streams import generator
from .assignment import cyclic
from .base import NOTHING, UPLOAD, Decoded, Message, Protocol, Reaction, Trial
from .numerics import best_tandon_code, sum_weights


class OriginalTrial(Trial):
    def __init__(self, protocol: OriginalGC, grads: np.ndarray | None):
        self.protocol = protocol
        self.grads = grads
        self.received: list[Message] = []

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        order = self.protocol.orders[worker]
        if chunk != order[-1]:
            return NOTHING
        payload = None
        if self.grads is not None:
            payload = self.protocol.code[worker, order] @ self.grads[order]
        return Reaction(send=[Message(UPLOAD, worker, self.protocol.dim, payload=payload)])

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.received.append(msg)
        p = self.protocol
        return Reaction(decoded=len(self.received) == p.workers - p.stragglers)

    def result(self) -> Decoded:
        p = self.protocol
        rows = [msg.worker for msg in self.received]
        weights, condition = sum_weights(p.code[rows])
        estimate = None
        if self.grads is not None:
            estimate = weights @ np.array([msg.payload for msg in self.received])
        return Decoded(estimate, chunks_used=len(rows) * p.spec.load, cond=condition)


class OriginalGC(Protocol):
    name = "original_gc"
    exact = True

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.stragglers = spec.load - spec.ell
        self.orders = cyclic(self.workers, spec.load)
        rng = generator(self.seed, "code", label)
        self.code = best_tandon_code(self.workers, self.stragglers, rng, spec.candidates)

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return OriginalTrial(self, grads)
