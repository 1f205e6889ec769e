"""``uncoded``: chunks split evenly, no redundancy, the PS waits for every worker."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..engine.fast import INF, Block, Evaluator, Rows
from .assignment import contiguous
from .base import NOTHING, UPLOAD, Decoded, Message, Protocol, Reaction, Tags, Trial, decoded_if
from .scheme_config import SplitScheme


class UncodedConfig(SplitScheme):
    """Chunks split evenly, no redundancy, the PS waits for every worker."""

    protocol: Literal["uncoded"]


class SplitTrial(Trial):
    """A worker uploads the plain sum of its chunk gradients once it has computed them all."""

    def __init__(self, protocol: Uncoded, grads: np.ndarray | None):
        self.protocol = protocol
        self.grads = grads
        self.received: list[Message] = []

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        p = self.protocol
        if chunk != p.orders[worker][-1]:
            return NOTHING
        payload = None if self.grads is None else p.payload(worker, self.grads)
        return Reaction(send=[Message(UPLOAD, worker, p.upload_size, payload=payload)])

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.received.append(msg)
        return decoded_if(len(self.received) == self.protocol.waits_for)

    def result(self) -> Decoded:
        p = self.protocol
        covered = p.covered([msg.worker for msg in self.received])
        estimate = None
        if self.grads is not None:
            estimate = p.estimate([msg.payload for msg in self.received], covered)
        return p.decoded(estimate, covered)


class Uncoded(Protocol):
    name = "uncoded"
    config = UncodedConfig
    tags = Tags(tie_safe=True)  # waits for everyone: nothing depends on an order
    exact = True
    examples = ({},)

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.orders = self.plan_orders()
        self.waits_for = self.workers
        """Uploads the PS decodes from (the first that arrive)."""

    def plan_orders(self) -> list[list[int]]:
        """Each worker's chunks: an even contiguous split."""
        return contiguous(self.workers, self.chunks)

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return SplitTrial(self, grads)

    def evaluator(self, exp) -> Evaluator:
        return SplitEvaluator(self, exp)

    # The decoder, called by both engines ----------------------------------------------------

    def payload(self, worker: int, grads: np.ndarray) -> np.ndarray:
        """A worker's upload: the plain sum of its chunks' gradients."""
        return grads[self.orders[worker]].sum(axis=0)

    def covered(self, senders: list[int]) -> int:
        """Chunks the uploads of ``senders`` sum over."""
        return sum(len(self.orders[w]) for w in senders)

    def estimate(self, payloads: list[np.ndarray], covered: int) -> np.ndarray:
        """The PS's estimate from the uploads in arrival order: their sum."""
        return np.sum(payloads, axis=0)

    def decoded(self, estimate: np.ndarray | None, covered: int) -> Decoded:
        """residual: the chunks the uploads do not cover (0 when everyone uploaded)."""
        return Decoded(
            estimate, chunks_used=covered, cond=1.0, residual=float(self.chunks - covered)
        )


class SplitEvaluator(Evaluator):
    """One upload per worker after its whole (contiguous) share; the PS decodes from the first
    ``waits_for`` to arrive."""

    def evaluate(self, block: Block) -> Rows:
        p, n, m = self.p, block.n, self.m
        done = self.times(block)
        finish = self.last(block)
        d = self.delay(p.upload_size)
        arrival = finish + d
        k = p.waits_for
        decoded = block.live.sum(axis=1) >= k
        rows = Rows(n)
        if k == m:
            stop = np.where(decoded, arrival.max(axis=1), INF)
            covered = np.full(n, int(self.lengths.sum()))
            tied = np.zeros(n, dtype=bool)
        else:
            # A sort of each trial's m arrivals was faster than an argpartition at every m.
            ranked = np.sort(np.ascontiguousarray(arrival), axis=1)
            kth, after = ranked[:, k - 1], ranked[:, k]
            tied = kth == after  # which worker is k-th would be decided by sending order
            stop = np.where(decoded, kth, INF)
            # Without a tie (tied trials are replayed) the k first are those arrived by kth.
            covered = ((arrival <= kth[:, None]) * self.lengths).sum(axis=1)
        rows["completion_time"] = stop
        rows["decoded"] = decoded
        rows["messages"] = self.sent_by(finish, stop)
        rows["upload_floats"] = rows["messages"] * p.upload_size
        rows["chunks_computed"] = self.count_until(done, stop)
        rows["chunks_used"] = np.where(decoded, covered, 0)
        rows["decode_cond"] = np.where(decoded, 1.0, np.nan)
        rows["residual"] = np.where(decoded, (p.chunks - covered).astype(float), np.nan)
        if not p.tags.tie_safe:  # waiting for everyone, nothing depends on an order
            allowed = 1 if d == 0 else 0  # zero delay: the k-th upload's own completion
            rows.suspect = decoded & (tied | (self.at(done, stop) > allowed))

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            workers = np.arange(m) if k == m else np.flatnonzero(arrival[t] <= stop[t])
            workers = workers[np.lexsort((finish[t, workers], arrival[t, workers]))]
            payloads = [p.payload(int(w), grads) for w in workers]
            return p.estimate(payloads, int(covered[t]))

        rows.estimate = estimate
        return rows
