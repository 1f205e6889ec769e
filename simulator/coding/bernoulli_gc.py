"""``bernoulli_gc``: the Bernoulli gradient code of Charles, Papailiopoulos & Ellenberg
("Approximate gradient coding via sparse random graphs", 2017).

Each chunk is on each worker independently with probability p = load / m (a seeded draw, once
per run), so worker j holds a random set of chunks, load on average. It computes them in natural
order and uploads their plain sum y_j = sum_{i in row j} g_i (dim floats); a worker that holds
nothing sends nothing. The PS decodes from the first k uploads (``k`` or a ``fraction`` of the
workers) with ``decoding``:

- ``one_step``: g_hat = (m / (k load)) sum_{j in S} y_j. The constant is 1 / (k p), the
  reciprocal of the expected number of received copies of a chunk, so each chunk's coefficient
  has expectation 1 for any set S of k workers chosen independently of the draw;
- ``optimal``: g_hat = sum_j w_j y_j with w = argmin ||A_S^T w - 1|| (least squares, minimum
  norm; A_S the received workers' rows of the 0/1 assignment). Exact (residual 0) exactly when
  the all-ones vector is in the row span of A_S.

The decoder works on the set S in worker order (not arrival order), so both engines and any
order of simultaneous arrivals give the same bits; see docs/PROTOCOLS.md section 3.7.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import Field

from ..budget import SVD_SECONDS, Estimate, Part, as_float, num
from ..engine.fast import INF, Block, Evaluator, Rows
from ..streams import generator
from .base import NOTHING, UPLOAD, Decoded, Message, Protocol, Reaction, Tags, Trial, decoded_if
from .numerics import cond, sum_weights
from .scheme_config import FirstUploads, LoadedScheme

if TYPE_CHECKING:
    from ..config import Experiment

#: Decodes (weights, cond, residual) kept per set of senders; beyond this many sets new ones are
#: solved each time (at m = 12, k = 9 there are 220 sets; at m = 20, k = 16, 4,845).
_SET_CACHE = 8192


class BernoulliGCConfig(FirstUploads, LoadedScheme):
    """Each chunk on each worker with probability load / m; the PS decodes the first k uploads
    with the one-step or the optimal (least-squares) decoder (approximate)."""

    protocol: Literal["bernoulli_gc"]
    load: Annotated[int, Field(ge=1)]
    """Expected chunks per worker (and workers per chunk): each chunk is on each worker with
    probability load / m."""
    decoding: Literal["one_step", "optimal"] = "optimal"
    """one_step: the received sum times m / (k load); optimal: least-squares weights."""

    def most_steps(self, workers: int, chunks: int) -> int:
        return chunks  # a draw may give one worker every chunk

    def costs(self, est: Estimate, exp: Experiment, key: str, m: float, n: float) -> float:
        """The optimal decoder's least squares: a k x N solve per trial (sets of senders
        rarely repeat); the one-step decoder costs a sum."""
        if self.decoding != "optimal":
            return 0.0
        # Costs are estimated before the values are checked: k and fraction may both be unset.
        k = as_float(self.k) if self.k is not None else (self.fraction or 1.0) * m
        est.working.append(
            Part(key, f"{key} ({self.protocol}): one decode, {num(k)} x {num(n)} matrices, "
                 "3 copies", 3 * k * n * 8, "lower cluster.workers")
        )  # fmt: skip
        return SVD_SECONDS * k * n * n


class BernoulliTrial(Trial):
    """A worker uploads the plain sum of its chunk gradients once it has computed them all; the
    PS decodes from the first k."""

    def __init__(self, protocol: BernoulliGC, grads: np.ndarray | None):
        self.protocol = protocol
        self.grads = grads
        self.senders: list[int] = []
        self.payloads: list[np.ndarray] = []

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        p = self.protocol
        if chunk != p.orders[worker][-1]:
            return NOTHING
        payload = None if self.grads is None else p.payload(worker, self.grads)
        return Reaction(send=[Message(UPLOAD, worker, p.upload_size, payload=payload)])

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.senders.append(msg.worker)
        self.payloads.append(msg.payload)
        return decoded_if(len(self.senders) == self.protocol.k)

    def result(self) -> Decoded:
        payloads = None if self.grads is None else self.payloads
        return self.protocol.decode(self.senders, payloads)


class BernoulliGC(Protocol):
    name = "bernoulli_gc"
    config = BernoulliGCConfig
    tags = Tags(approximate=True, random_layout=True)
    exact = False
    examples = (
        {"load": 3, "k": 8},
        {"load": 3, "fraction": 0.75, "decoding": "one_step"},
        {"load": 6, "k": 10},
    )

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.k = spec.wait_for(self.workers)
        self.decoding = spec.decoding
        self.scale = self.workers / (self.k * spec.load)
        """The one-step decoder's constant m / (k load) = 1 / (k p)."""
        self.sets: dict[tuple[int, ...], tuple[np.ndarray, float, float]] = {}
        self.use(self.draw_assignment())

    def draw_assignment(self) -> np.ndarray:
        """The (workers, chunks) 0/1 matrix: each entry 1 with probability load / m. Keyed by
        what defines the draw, as the random_regular assignment is, not by the label: every
        bernoulli_gc scheme of a run with the same load gets the same matrix, so decoders and
        k are compared on the same code (docs/design.md)."""
        rng = generator(self.seed, "layout", f"bernoulli:load={self.spec.load}", "assignment")
        return rng.random((self.workers, self.chunks)) < self.spec.load / self.workers

    def use(self, assignment: np.ndarray) -> None:
        """Plan on this assignment: each worker's chunks in natural (increasing) order."""
        self.assignment = np.asarray(assignment, dtype=bool)
        self.orders = [np.flatnonzero(row).tolist() for row in self.assignment]
        self.lengths = self.assignment.sum(axis=1)
        self.sets.clear()

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return BernoulliTrial(self, grads)

    def evaluator(self, exp) -> Evaluator:
        return BernoulliEvaluator(self, exp)

    # The decoder, called by both engines ----------------------------------------------------

    def payload(self, worker: int, grads: np.ndarray) -> np.ndarray:
        """A worker's upload: the plain sum of its chunks' gradients."""
        return grads[self.orders[worker]].sum(axis=0)

    def solve(self, workers: tuple[int, ...]) -> tuple[np.ndarray, float, float]:
        """(weights w, decode_cond, residual ||A_S^T w - 1||^2) for the senders ``workers``
        (sorted). one_step: w = m / (k load) for every sender, cond 1; optimal: least squares,
        cond of A_S (NaN without ``output.decode_cond``)."""
        hit = self.sets.get(workers)
        if hit is None:
            rows = self.assignment[list(workers)].astype(float)
            if self.decoding == "one_step":
                weights, condition = np.full(len(workers), self.scale), 1.0
            else:
                weights = sum_weights(rows)
                condition = cond(rows) if self.conditioning and workers else math.nan
            miss = weights @ rows - 1.0
            hit = (weights, condition, float(miss @ miss))
            if len(self.sets) < _SET_CACHE:
                self.sets[workers] = hit
        return hit

    def decode(self, senders: list[int], payloads: list[np.ndarray] | None) -> Decoded:
        """The PS's estimate from the uploads of ``senders`` (``payloads`` in the same order, or
        None without gradients): sum_j w_j y_j over the senders in worker order.
        chunks_used: the chunk computations the uploads sum over."""
        order = sorted(range(len(senders)), key=senders.__getitem__)
        workers = tuple(senders[i] for i in order)
        weights, condition, residual = self.solve(workers)
        estimate = None
        if payloads is not None:
            estimate = weights @ np.array([payloads[i] for i in order])
        used = int(self.lengths[list(workers)].sum())
        return Decoded(estimate, chunks_used=used, cond=condition, residual=residual)


class BernoulliEvaluator(Evaluator):
    """One upload per worker that holds a chunk, after its whole list; the PS decodes from the
    first k to arrive (the set, not their order, decides the numbers)."""

    def evaluate(self, block: Block) -> Rows:
        p, n, m, k = self.p, block.n, self.m, self.p.k
        done = self.times(block)
        finish = self.last(block)  # +inf: down, or holds nothing (never uploads)
        d = self.delay(p.upload_size)
        arrival = finish + d
        ranked = np.sort(np.ascontiguousarray(arrival), axis=1)
        kth = ranked[:, k - 1]
        decoded = np.isfinite(kth)
        stop = np.where(decoded, kth, INF)
        # Which upload is the k-th would be decided by sending order: replayed.
        tied = np.zeros(n, dtype=bool) if k == m else ranked[:, k] == kth
        received = decoded[:, None] & (arrival <= kth[:, None])
        rows = Rows(n)
        rows["completion_time"] = stop
        rows["decoded"] = decoded
        rows["messages"] = self.sent_by(finish, stop)
        rows["upload_floats"] = rows["messages"] * p.upload_size
        rows["chunks_computed"] = self.count_until(done, stop)
        allowed = 1 if d == 0 else 0  # zero delay: the k-th upload's own completion
        rows.suspect = decoded & (tied | (self.at(done, stop) > allowed))
        senders: dict[int, list[int]] = {}
        for t in np.flatnonzero(decoded).tolist():
            senders[t] = np.flatnonzero(received[t]).tolist()
            result = p.decode(senders[t], None)
            rows["chunks_used"][t] = result.chunks_used
            rows["decode_cond"][t] = result.cond
            rows["residual"][t] = result.residual

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            workers = senders[t]
            return p.decode(workers, [p.payload(w, grads) for w in workers]).estimate

        rows.estimate = estimate
        return rows
