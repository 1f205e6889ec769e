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

import math
from collections.abc import Iterator

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


def coefficients(decoder: np.ndarray, holders: list[list[int]]) -> list[np.ndarray]:
    """A_i = pinv(C[:, R_i]) for every chunk (size |R_i| x ell).

    Chunks with no holder get an empty (0 x ell) block. Chunks are batched by |R_i| so the
    pseudo-inverses are computed as stacks.
    """
    ell = decoder.shape[0]
    out: list[np.ndarray] = [np.zeros((0, ell))] * len(holders)
    for chunks, stack in _stacks(decoder, holders):
        for chunk, inverse in zip(chunks, np.linalg.pinv(stack), strict=True):
            out[chunk] = inverse
    return out


def _stacks(
    decoder: np.ndarray, holders: list[list[int]]
) -> Iterator[tuple[list[int], np.ndarray]]:
    """(chunks, their C[:, R_i] as an (n, ell, size) stack) for each holder-set size."""
    by_size: dict[int, list[int]] = {}
    for chunk, rows in enumerate(holders):
        if rows:
            by_size.setdefault(len(rows), []).append(chunk)
    for chunks in by_size.values():
        stack = decoder[:, np.array([holders[c] for c in chunks])]  # (ell, n, size)
        yield chunks, stack.transpose(1, 0, 2)  # np.moveaxis's view, without its checks


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
        coefs = None if self.blocks is None else coefficients(p.decoder, self.known)
        if p.conditioning:
            self.cond = p.worst_condition(self.known)
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


#: partial_gc keeps the condition numbers of C[:, R_i] while there are at most this many
#: ordered holder lists.
_COND_CACHE = 2**16


def _ordered_lists(orders: list[list[int]], chunks: int, shortest: int, limit: int) -> int:
    """How many ordered holder lists R_i of at least ``shortest`` workers the chunks have (the
    keys ``worst_condition`` may keep), or 0 once that passes ``limit``."""
    holders = [0] * chunks
    for order in orders:
        for chunk in order:
            holders[chunk] += 1
    total = 0
    for h in holders:
        for k in range(shortest, h + 1):
            total += math.perm(h, k)
            if total > limit:
                return 0
    return total


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
        self.conds: dict[tuple[int, ...], float] = {}  # see worst_condition
        # An approximate plan may hold chunks with fewer than ell known holders.
        shortest = spec.ell if self.exact else 1
        self.cached_conds = _ordered_lists(self.orders, self.chunks, shortest, _COND_CACHE)

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return PartialTrial(self, grads)

    def worst_condition(self, holders: list[list[int]]) -> float:
        """decode_cond of a plan: the worst condition number of the C[:, R_i] (at least 1).

        Ratios of the extreme singular values (rank ell, or |R_i| when fewer), as NumPy's SVD
        gives them. C[:, R_i] depends only on the ordered R_i, and with few possible holder
        lists (1,200 at m = 20, load 4, ell = 2) each ratio is kept once computed. As the
        batched form this replaces, a NaN ratio voids the maximum of its holder-set size.
        """
        ell = self.spec.ell
        if ell == 1:
            return 1.0  # a 1 x |R_i| row has one singular value
        known, caching = self.conds, self.cached_conds > 0
        ratios: dict[int, list[float]] = {}
        missing: list[list[int]] = []
        for rows in holders:
            if not rows:
                continue
            hit = known.get(tuple(rows)) if caching else None  # no keys where none are kept
            if hit is None:
                missing.append(rows)
            else:
                ratios.setdefault(len(rows), []).append(hit)
        for chunks, stack in _stacks(self.decoder, missing):
            singular = np.linalg.svd(stack, compute_uv=False)
            rank = min(ell, stack.shape[2])
            with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero C[:, R_i]
                fresh = (singular[:, 0] / singular[:, rank - 1]).tolist()
            ratios.setdefault(stack.shape[2], []).extend(fresh)
            for chunk, ratio in zip(chunks, fresh, strict=True):
                if len(known) >= self.cached_conds:
                    break
                known[tuple(missing[chunk])] = ratio
        worst = 1.0
        for values in ratios.values():
            if not any(math.isnan(v) for v in values):
                worst = max(worst, max(values))
        return worst
