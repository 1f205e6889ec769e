"""``uncoded``: chunks split evenly, no redundancy, the PS waits for every worker."""

from __future__ import annotations

import numpy as np

from .assignment import contiguous
from .base import NOTHING, UPLOAD, Decoded, Message, Protocol, Reaction, Trial, decoded_if


class SplitTrial(Trial):
    """A worker uploads the plain sum of its chunk gradients once it has computed them all."""

    def __init__(self, protocol: Protocol, grads: np.ndarray | None):
        self.protocol = protocol
        self.grads = grads
        self.received: list[Message] = []

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        order = self.protocol.orders[worker]
        if chunk != order[-1]:
            return NOTHING
        payload = None if self.grads is None else self.grads[order].sum(axis=0)
        return Reaction(send=[Message(UPLOAD, worker, self.protocol.dim, payload=payload)])

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.received.append(msg)
        return decoded_if(self.enough())

    def enough(self) -> bool:
        return len(self.received) == self.protocol.workers

    def covered(self) -> int:
        return sum(len(self.protocol.orders[msg.worker]) for msg in self.received)

    def result(self) -> Decoded:
        estimate = None
        if self.grads is not None:
            estimate = np.sum([msg.payload for msg in self.received], axis=0)
        return Decoded(estimate, chunks_used=self.covered(), cond=1.0)


class Uncoded(Protocol):
    name = "uncoded"
    exact = True
    examples = ({},)

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.orders = contiguous(self.workers, self.chunks)

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return SplitTrial(self, grads)
