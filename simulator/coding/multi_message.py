"""``multi_message`` (Ozfatura, Gunduz, Ulukus 2019): every chunk gradient is uploaded (d floats)
as soon as it is computed, and the PS is done when every chunk has arrived once. Under a free
network it finishes exactly when ``partial_gc`` with ell = 1 does; it pays for that in upload
traffic, which costs time once bandwidth is finite."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..engine.fast import INF, Block, Evaluator, Holders, Rows
from .base import UPLOAD, Decoded, Message, Protocol, Reaction, Tags, Trial, decoded_if
from .layout import scheme_orders
from .scheme_config import AssignedScheme


class MultiMessageConfig(AssignedScheme):
    """Every chunk gradient is uploaded as soon as it is computed; done when all have arrived."""

    protocol: Literal["multi_message"]


class MultiMessageTrial(Trial):
    def __init__(self, protocol: MultiMessage, grads: np.ndarray | None):
        self.protocol = protocol
        self.grads = grads
        self.first: dict[int, Message] = {}  # chunk -> its first arrival

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        p = self.protocol
        if self.grads is None:
            return p.uploads[worker][chunk]
        msg = Message(UPLOAD, worker, p.upload_size, chunk=chunk, payload=self.grads[chunk])
        return Reaction(send=[msg])

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.first.setdefault(msg.chunk, msg)
        return decoded_if(len(self.first) == self.protocol.chunks)

    def result(self) -> Decoded:
        estimate = None
        if self.grads is not None:
            estimate = self.protocol.estimate([msg.payload for msg in self.first.values()])
        return Decoded(estimate, chunks_used=len(self.first), cond=1.0, residual=0.0)


class MultiMessage(Protocol):
    name = "multi_message"
    config = MultiMessageConfig
    tags = Tags()
    exact = True
    examples = ({"load": 3},)

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.orders = scheme_orders(spec, exp, label)
        # Without gradients an upload carries no numbers: one shared per (worker, chunk).
        self.uploads = [
            {c: Reaction(send=[Message(UPLOAD, w, self.upload_size, chunk=c)]) for c in order}
            for w, order in enumerate(self.orders)
        ]

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return MultiMessageTrial(self, grads)

    def evaluator(self, exp) -> Evaluator:
        return MultiMessageEvaluator(self, exp)

    def estimate(self, first_uploads: list[np.ndarray]) -> np.ndarray:
        """The sum of each chunk's first upload, in arrival order (both engines call this)."""
        return np.sum(first_uploads, axis=0)


class MultiMessageEvaluator(Holders):
    """Each chunk's first upload; done when every chunk has one."""

    def evaluate(self, block: Block) -> Rows:
        p, n = self.p, block.n
        done = self.times(block)
        d = self.delay(p.upload_size)
        # Uploads all have one size: a chunk's first arrival is its first completion.
        first_sent = self.per_chunk(block)[1]
        first_arrival = first_sent + d
        decoded = np.isfinite(first_sent).all(axis=1)
        stop = np.where(decoded, first_arrival.max(axis=1), INF)
        rows = Rows(n)
        rows["completion_time"] = stop
        rows["decoded"] = decoded
        rows["chunks_computed"] = self.count_until(done, stop)
        rows["messages"] = rows["chunks_computed"]  # every computed chunk is uploaded at once
        rows["upload_floats"] = rows["messages"] * p.upload_size
        rows["chunks_used"] = np.where(decoded, p.chunks, 0)
        rows["decode_cond"] = np.where(decoded, 1.0, np.nan)
        rows["residual"] = np.where(decoded, 0.0, np.nan)
        allowed = 1 if d == 0 else 0
        rows.suspect = decoded & (self.at(done, stop) > allowed)

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            chunk_order = np.lexsort((first_sent[t], first_arrival[t]))
            return p.estimate([grads[c] for c in chunk_order])

        rows.estimate = estimate
        return rows
