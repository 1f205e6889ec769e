"""``partial_gc``: the partial-straggler protocol (Ramamoorthy, Meng, Girimaji, NeurIPS 2024).

Workers report each finished chunk with a control message, so the PS knows r_i, the number of
workers that have processed chunk i. Exact decoding with one d/ell upload per worker needs
r_i >= ell for every chunk; the PS stops waiting at the first instant that holds. It then fixes a
decoding matrix C (ell x m, Gaussian, drawn once per run) and gives chunk i the encoding
coefficients A_i = pinv(C[:, R_i]), R_i the workers known to have processed it, so that
C[:, R_i] A_i = I. Workers receive their coefficients, stop computing and upload
y_j = sum_i sum_k A_i[j, k] g_i^(k); block k of the gradient is sum_j C[k, j] y_j. No
interpolation, so the decoder is as well conditioned as the small matrices C[:, R_i].

Approximate mode decodes at the deadline with whatever r_i the PS has (earlier if exact decoding
becomes possible first): chunks with 0 < r_i < ell are recovered in projection, chunks with
r_i = 0 are missing, and the coefficient residual is sum_i max(0, ell - r_i).
"""

from __future__ import annotations

import numpy as np

from ..streams import generator
from .base import (
    CONTROL,
    DOWNLOAD,
    NOTHING,
    UPLOAD,
    Decoded,
    Message,
    Protocol,
    Reaction,
    Trial,
    decoded_if,
)
from .layout import scheme_orders
from .numerics import block_length, join_blocks, split_blocks


def coefficients(
    decoder: np.ndarray,
    holders: list[list[int]],
    inverses: bool = True,
    conditioning: bool = True,
) -> tuple[list[np.ndarray] | None, float]:
    """A_i = pinv(C[:, R_i]) for every chunk, and the worst condition number of the C[:, R_i].

    Chunks with no holder get an empty (0 x ell) block. Chunks are batched by |R_i| so the
    pseudo-inverses are computed as stacks. ``inverses=False`` returns None for the A_i: without
    gradients only the condition number is reported, and the pseudo-inverses cost as much again.
    ``conditioning=False`` returns NaN for the condition number and skips its SVDs.
    """
    ell = decoder.shape[0]
    if not conditioning and not inverses:
        return None, float("nan")
    if ell == 1 and not inverses:
        return None, 1.0  # a 1 x |R_i| row has one singular value: cond is exactly 1
    out: list[np.ndarray] = [np.zeros((0, ell))] * len(holders)
    worst = 1.0 if conditioning else float("nan")
    by_size: dict[int, list[int]] = {}
    for chunk, rows in enumerate(holders):
        if rows:
            by_size.setdefault(len(rows), []).append(chunk)
    for size, chunks in by_size.items():
        stack = decoder[:, np.array([holders[c] for c in chunks])]  # (ell, n, size)
        stack = stack.transpose(1, 0, 2)  # (n, ell, size): np.moveaxis's view, without its checks
        if conditioning:
            singular = np.linalg.svd(stack, compute_uv=False)
            rank = min(ell, size)
            worst = max(worst, float(np.max(singular[:, 0] / singular[:, rank - 1])))
        if inverses:
            for chunk, inverse in zip(chunks, np.linalg.pinv(stack), strict=True):
                out[chunk] = inverse  # (size, ell)
    return (out if inverses else None), worst


def residual(counts: list[int], ell: int) -> int:
    """sum_i max(0, ell - r_i): the rank the coefficients miss; zero exactly when decodable."""
    return sum(max(0, ell - count) for count in counts)


class PartialTrial(Trial):
    """Workers keep computing (and reporting) after they upload: if a planned worker crashes,
    the PS re-plans with everything reported since, and may need that later work."""

    def __init__(self, protocol: PartialGC, grads: np.ndarray | None):
        self.protocol = protocol
        spec = protocol.spec
        self.ell = spec.ell
        self.deadline = spec.deadline if spec.mode == "approximate" else None
        self.past_deadline = False
        self.blocks = None if grads is None else split_blocks(grads, self.ell)
        self.counts = [0] * protocol.chunks  # r_i as the PS knows it (a list: scalar updates)
        self.known: list[list[int]] = [[] for _ in range(protocol.chunks)]
        self.short = protocol.chunks  # chunks with r_i < ell
        self.failed: set[int] = set()  # crashes the PS has noticed
        self.round = 0  # plans made so far; uploads name the round they answer
        self.planned = False  # a plan is out and its uploads are awaited
        self.expected: set[int] = set()
        self.uploads: dict[int, np.ndarray | None] = {}
        self.cond = float("nan")
        self.used = 0
        self.plan_residual = 0

    # worker side ---------------------------------------------------------------------------

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        return self.protocol.reports[worker][chunk]

    def worker_receive(self, worker: int, msg: Message, now: float) -> Reaction:
        round_, chunks, coefs = msg.payload
        vector = None
        if self.blocks is not None:
            vector = np.einsum("ck,ckb->b", coefs, self.blocks[chunks])
        size = block_length(self.protocol.dim, self.ell)
        return Reaction(send=[Message(UPLOAD, worker, size, payload=(round_, vector))])

    # PS side -------------------------------------------------------------------------------

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        if msg.worker in self.failed:
            return NOTHING  # sent before its crash, arrived after the PS wrote it off
        if msg.kind == CONTROL:
            self.known[msg.chunk].append(msg.worker)
            self.counts[msg.chunk] += 1
            if self.counts[msg.chunk] == self.ell:
                self.short -= 1
            return self._plan() if self._ready() else NOTHING
        round_, vector = msg.payload
        if not self.planned or round_ != self.round:
            return NOTHING  # answers a plan that a crash made obsolete
        self.uploads[msg.worker] = vector
        return decoded_if(self.uploads.keys() == self.expected)

    def at_deadline(self, now: float) -> Reaction:
        self.past_deadline = True
        return self._plan() if self._ready() else NOTHING

    def worker_failed(self, worker: int, now: float) -> Reaction:
        """A crash is noticed: forget the worker's chunks; re-plan if its upload was awaited."""
        self.failed.add(worker)
        for chunk, rows in enumerate(self.known):
            if worker in rows:
                rows.remove(worker)
                self.counts[chunk] -= 1
                if self.counts[chunk] == self.ell - 1:
                    self.short += 1
        if self.planned and worker in self.expected and worker not in self.uploads:
            self.planned = False
            return self._plan() if self._ready() else NOTHING
        return NOTHING

    def _ready(self) -> bool:
        return not self.planned and (self.short == 0 or self.past_deadline)

    def _plan(self) -> Reaction:
        """Fix the coefficients from what the PS knows now and send each worker its own."""
        self.planned = True
        self.round += 1
        self.uploads = {}
        p = self.protocol
        coefs, self.cond = coefficients(
            p.decoder, self.known, self.blocks is not None, p.conditioning
        )
        per_worker: dict[int, list[tuple[int, int]]] = {}  # worker -> (chunk, row of A_chunk)
        for chunk, rows in enumerate(self.known):
            for position, worker in enumerate(rows):
                per_worker.setdefault(worker, []).append((chunk, position))
        self.used = sum(self.counts)
        self.plan_residual = residual(self.counts, self.ell)
        send = []
        for worker in sorted(per_worker):
            pairs = per_worker[worker]
            chunks = [chunk for chunk, _ in pairs]
            matrix = None  # the worker's coefficients, one row of ell per chunk
            if coefs is not None:
                matrix = np.array([coefs[chunk][position] for chunk, position in pairs])
            payload = (self.round, chunks, matrix)
            send.append(Message(DOWNLOAD, worker, len(pairs) * self.ell, payload=payload))
        self.expected = set(per_worker)
        # Nothing processed at all (approximate mode, early deadline): the estimate is zero.
        return Reaction(send=send, decoded=not self.expected)

    def result(self) -> Decoded:
        p = self.protocol
        estimate = None
        if self.blocks is not None:
            blocks = np.zeros((self.ell, self.blocks.shape[2]))
            for worker, upload in self.uploads.items():
                blocks += np.outer(p.decoder[:, worker], upload)
            estimate = join_blocks(blocks, p.dim)
        return Decoded(
            estimate, chunks_used=self.used, cond=self.cond, residual=float(self.plan_residual)
        )


class PartialGC(Protocol):
    name = "partial_gc"
    exact = True
    examples = (
        {"load": 4, "ell": 1},
        {"load": 4, "ell": 3},
        {"load": 4, "ell": 2, "mode": "approximate", "deadline": 3.0},
    )

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.orders = scheme_orders(spec, exp, label)
        self.decoder = generator(self.seed, "decoder", label).standard_normal(
            (spec.ell, self.workers)
        )
        if spec.ell == 1:
            self.decoder = np.abs(self.decoder) + 0.5  # no near-zero weight for any worker
        self.exact = spec.mode == "exact"
        # The control report of each (worker, chunk), shared by all trials: reporting a chunk,
        # the most frequent event, allocates nothing.
        self.reports = [
            {chunk: Reaction(send=[Message(CONTROL, worker, 1, chunk=chunk)]) for chunk in order}
            for worker, order in enumerate(self.orders)
        ]

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return PartialTrial(self, grads)
