"""``multi_message`` (Ozfatura, Gunduz, Ulukus 2019): every chunk gradient is uploaded (d floats)
as soon as it is computed, and the PS is done when every chunk has arrived once. Under a free
network it finishes exactly when ``partial_gc`` with ell = 1 does; it pays for that in upload
traffic, which costs time once bandwidth is finite."""

from __future__ import annotations

import numpy as np

from .base import UPLOAD, Decoded, Message, Protocol, Reaction, Trial, decoded_if
from .layout import scheme_orders


class MultiMessageTrial(Trial):
    def __init__(self, protocol: MultiMessage, grads: np.ndarray | None):
        self.protocol = protocol
        self.grads = grads
        self.first: dict[int, Message] = {}  # chunk -> its first arrival

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        if self.grads is None:
            return self.protocol.uploads[worker][chunk]
        msg = Message(UPLOAD, worker, self.protocol.dim, chunk=chunk, payload=self.grads[chunk])
        return Reaction(send=[msg])

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.first.setdefault(msg.chunk, msg)
        return decoded_if(len(self.first) == self.protocol.chunks)

    def result(self) -> Decoded:
        estimate = None
        if self.grads is not None:
            estimate = np.sum([msg.payload for msg in self.first.values()], axis=0)
        return Decoded(estimate, chunks_used=len(self.first), cond=1.0, residual=0.0)


class MultiMessage(Protocol):
    name = "multi_message"
    exact = True
    examples = ({"load": 3},)

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.orders = scheme_orders(spec, exp, label)
        # Without gradients an upload carries no numbers: one shared per (worker, chunk).
        self.uploads = [
            {c: Reaction(send=[Message(UPLOAD, w, self.dim, chunk=c)]) for c in order}
            for w, order in enumerate(self.orders)
        ]

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return MultiMessageTrial(self, grads)
