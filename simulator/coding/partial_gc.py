"""``partial_gc``: the partial-straggler protocol (Ramamoorthy, Meng, Girimaji, NeurIPS 2024).

Workers report each finished chunk with a control message, so the PS knows r_i, the number of
workers that have processed chunk i. Exact decoding with one d/ell upload per worker needs
r_i >= ell for every chunk; the PS stops waiting at the first instant that holds. It then fixes a
decoding matrix C (ell x m, Gaussian, drawn once per run) and gives chunk i the encoding
coefficients A_i = pinv(C[:, R_i]), R_i the workers known to have processed it, so that
C[:, R_i] A_i = I. Workers receive their coefficients, stop computing and upload
y_j = sum_i sum_k A_i[j, k] g_i^(k); block k of the gradient is sum_j C[k, j] y_j. No
interpolation, so the decoder is as well conditioned as the small matrices C[:, R_i].

Approximate mode delivers its estimate by the deadline T, as every protocol's does: the PS plans
with whatever r_i it has at T minus the time its download and the answering uploads can take
(``plan_instant``; earlier if exact decoding becomes possible first), so the last upload is at
the PS by T. Chunks with 0 < r_i < ell are recovered in projection, chunks with r_i = 0 are
missing, and the coefficient residual is sum_i max(0, ell - r_i).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..budget import SVD_SECONDS, Estimate, Part, as_float, num
from ..engine.fast import (
    INF,
    Block,
    Evaluator,
    Holders,
    Rows,
    distinct,
    per_worker,
    second_smallest,
)
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
    Tags,
    Trial,
    decoded_if,
)
from .layout import scheme_orders
from .numerics import block_length, join_blocks, split_blocks
from .scheme_config import CodedScheme


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
        self.deadline = protocol.plan_at  # the PS plans then, to deliver by the deadline
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
        p = self.protocol
        vector = None if self.blocks is None else p.upload(coefs, chunks, self.blocks)
        return Reaction(send=[Message(UPLOAD, worker, p.upload_size, payload=(round_, vector))])

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
        plan = p.assignments(self.known)
        self.used = sum(self.counts)
        self.plan_residual = residual(self.counts, self.ell)
        send = []
        for worker in sorted(plan):
            pairs = plan[worker]
            chunks = [chunk for chunk, _ in pairs]
            matrix = None if coefs is None else p.worker_coefficients(coefs, pairs)
            payload = (self.round, chunks, matrix)
            send.append(Message(DOWNLOAD, worker, len(pairs) * self.ell, payload=payload))
        self.expected = set(plan)
        # Nothing processed at all (approximate mode, early deadline): the estimate is zero.
        return Reaction(send=send, decoded=not self.expected)

    def result(self) -> Decoded:
        p = self.protocol
        estimate = None if self.blocks is None else p.estimate(self.uploads.items())
        return Decoded(
            estimate, chunks_used=self.used, cond=self.cond, residual=float(self.plan_residual)
        )


if TYPE_CHECKING:
    from ..config import Experiment

#: Largest (subsets, chunks, holders) array the fast engine builds its table of ell = 2 closed
#: forms from, once per run (beyond it, the closed form is computed per block).
_TABLE_ELEMENTS = 2**20
#: partial_gc keeps the condition numbers of C[:, R_i] while there are at most this many
#: ordered holder lists.
_COND_CACHE = 2**16
#: Numbers one gather of chunk blocks may hold while computing uploads together (512 KiB, so
#: that it stays in cache; original_gc uses the same bound).
_GATHER_FLOATS = 2**16


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


def plan_instant(deadline: float, protocol: PartialGC, exp: Experiment) -> float:
    """The latest instant at which a plan still delivers by ``deadline`` (at least 0).

    After the PS plans, a download of ell floats per chunk asked (at most the most chunks any
    worker holds) travels to each planned worker, which answers at once with one upload of
    ``upload_size`` floats. On a shared PS link that upload may queue behind every other
    message to the PS: at most the other uploads and one report per chunk any worker computes.
    A PS with a per-message overhead spends it, one message at a time, on at most every
    download, every upload and one report per (worker, chunk).
    The instant is stepped down by ulps until the engines' own sums (plan + download + upload,
    added in that order) stay within the deadline. A crash noticed after the plan makes the PS
    re-plan, which may deliver later: crashes are outside this guarantee.
    """
    net = exp.cluster.network
    down = net.delay(protocol.spec.ell * protocol.steps)
    up = net.delay(protocol.upload_size)
    if net.ps_ingress == "shared":
        queued = (protocol.workers - 1) * protocol.upload_size + protocol.workers * protocol.steps
        up += queued * net.time_per_float
    if net.ps_overhead > 0:  # the PS's turns: every download and upload, and every report
        up += (2 * protocol.workers + protocol.workers * protocol.steps) * net.ps_overhead
    if down == 0 and up == 0:
        return deadline
    at = deadline - (down + up)
    while at > 0 and at + down + up > deadline:
        at = math.nextafter(at, -math.inf)
    return max(0.0, at)


class PartialGCConfig(CodedScheme):
    """The partial-straggler protocol: processed chunks count even if a worker has not finished."""

    protocol: Literal["partial_gc"]

    def costs(self, est: Estimate, exp: Experiment, key: str, m: float, n: float) -> float:
        """Its decode: a pseudo-inverse or SVD per chunk of an ell x holders matrix (holders =
        load on the regular assignments)."""
        ell, load = as_float(self.ell), as_float(self.load)
        size = n * ell * load
        est.working.append(
            Part(
                key,
                f"{key} (partial_gc): one decode, {num(n)} chunks x {num(ell)} x "
                f"{num(load)} matrices, 3 copies",
                3 * size * 8,
                "lower cluster.workers or the load",
            )
        )
        return SVD_SECONDS * size * ell if exp.data.gradients != "none" else 0.0


class PartialGC(Protocol):
    name = "partial_gc"
    config = PartialGCConfig
    tags = Tags(control=True, downloads=True, replans=True)
    exact = True
    examples = (
        {"load": 4, "ell": 1},
        {"load": 4, "ell": 3},
        {"load": 4, "ell": 2, "mode": "approximate", "deadline": 3.0},
    )

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.orders = scheme_orders(spec, exp, label)
        self.upload_size = block_length(self.dim, spec.ell)
        self.decoder = generator(self.seed, "decoder", label).standard_normal(
            (spec.ell, self.workers)
        )
        if spec.ell == 1:
            self.decoder = np.abs(self.decoder) + 0.5  # no near-zero weight for any worker
        self.exact = spec.mode == "exact"
        self.plan_at = None if self.deadline is None else plan_instant(self.deadline, self, exp)
        """When an approximate PS plans at the latest: the deadline less the longest its
        download and the answering upload can take, so the estimate is at the PS by then."""
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

    def evaluator(self, exp) -> Evaluator:
        return PartialEvaluator(self, exp)

    # The decoder, called by both engines ----------------------------------------------------

    @staticmethod
    def assignments(known: list[list[int]]) -> dict[int, list[tuple[int, int]]]:
        """worker -> its (chunk, row of A_chunk) pairs in a plan from the holders R_i, chunk by
        chunk (workers in the order they first appear)."""
        per_worker: dict[int, list[tuple[int, int]]] = {}
        for chunk, rows in enumerate(known):
            for position, worker in enumerate(rows):
                per_worker.setdefault(worker, []).append((chunk, position))
        return per_worker

    @staticmethod
    def worker_coefficients(coefs: list[np.ndarray], pairs: list[tuple[int, int]]) -> np.ndarray:
        """A worker's coefficients, one row of ell per chunk it is asked for."""
        return np.array([coefs[chunk][position] for chunk, position in pairs])

    @staticmethod
    def upload(matrix: np.ndarray, chunks: list[int], blocks: np.ndarray) -> np.ndarray:
        """y_j = sum_i sum_k A_i[j, k] g_i^(k) over the chunks the worker is asked for."""
        return np.einsum("ck,ckb->b", matrix, blocks[chunks])

    def estimate(self, uploads) -> np.ndarray:
        """Block k of the gradient is sum_j C[k, j] y_j, over (worker, y_j) in arrival order."""
        total = np.zeros((self.spec.ell, self.upload_size))
        for worker, vector in uploads:
            total += np.outer(self.decoder[:, worker], vector)
        return join_blocks(total, self.dim)

    def per_upload_estimate(
        self,
        plan: dict[int, list[tuple[int, int]]],
        coefs: list[np.ndarray],
        blocks: np.ndarray,
        up_at: np.ndarray,
        down_at: np.ndarray,
    ) -> np.ndarray:
        """``planned_estimate`` the plain way, from the plan (``assignments``): each planned
        worker's ``worker_coefficients`` and ``upload``, summed by ``estimate`` in arrival order
        (``up_at``, ties by ``down_at``, then by worker)."""
        uploads = []
        for worker in sorted(plan, key=lambda w: (up_at[w], down_at[w], w)):
            chunks = [chunk for chunk, _ in plan[worker]]
            matrix = self.worker_coefficients(coefs, plan[worker])
            uploads.append((worker, self.upload(matrix, chunks, blocks)))
        return self.estimate(uploads)

    def planned_estimate(
        self,
        known: list[list[int]],
        coefs: list[np.ndarray],
        blocks: np.ndarray,
        up_at: np.ndarray,
        down_at: np.ndarray,
    ) -> np.ndarray:
        """``estimate`` of the uploads answering the plan from ``known`` with coefficients
        ``coefs``, the uploads reaching the PS by ``up_at``, ties by ``down_at``, then by worker:
        the same numbers as building each worker's ``worker_coefficients`` and ``upload`` and
        summing in arrival order, computed as a few einsums (each worker's chunks in chunk order,
        padded with zero weights at the end, which adds exact zeros) and one sequential sum.
        Blocks of length 1 take the per-worker route: einsum sums them with another kernel."""
        plan = self.assignments(known)
        if blocks.shape[2] < 2 or not plan:
            return self.per_upload_estimate(plan, coefs, blocks, up_at, down_at)
        sizes = np.fromiter((len(rows) for rows in known), np.int64, len(known))
        workers = np.fromiter((w for rows in known for w in rows), np.int64, int(sizes.sum()))
        chunks = np.repeat(np.arange(len(known)), sizes)
        rows = np.concatenate(coefs)  # (chunk, position) order, as workers and chunks
        by_worker = np.argsort(workers, kind="stable")  # each worker's chunks in chunk order
        present, first, counts = np.unique(
            workers[by_worker], return_index=True, return_counts=True
        )
        slot = np.repeat(np.arange(present.size), counts)
        rank = np.arange(workers.size) - np.repeat(first, counts)
        ell = blocks.shape[1]
        weights = np.zeros((present.size, int(counts.max()), ell))
        weights[slot, rank] = rows[by_worker]
        held = np.zeros(weights.shape[:2], dtype=np.int64)
        held[slot, rank] = chunks[by_worker]
        arrival = np.lexsort((present, down_at[present], up_at[present]))
        total = np.zeros((ell, self.upload_size))
        step = max(1, _GATHER_FLOATS // max(1, weights.shape[1] * blocks[0].size))
        for lo in range(0, arrival.size, step):
            part = arrival[lo : lo + step]
            uploads = np.einsum("wck,wckb->wb", weights[part], blocks[held[part]])
            terms = self.decoder[:, present[part]].T[:, :, None] * uploads[:, None, :]
            for term in terms:  # in arrival order, one at a time, as estimate adds them
                total += term
        return join_blocks(total, self.dim)

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


# --------------------------------------------------------------------------------------------
# The fast engine's evaluation


class PartialEvaluator(Holders):
    """A control message per chunk; the plan when every chunk has ell copies (or at T)."""

    def __init__(self, protocol: PartialGC, exp):
        super().__init__(protocol, exp)
        spec = protocol.spec
        self.ell, self.size, self.deadline = spec.ell, protocol.upload_size, protocol.plan_at
        decoder = protocol.decoder
        weights = np.where(self.padding[None], 0.0, decoder[:, self.holder_worker])
        self.table: np.ndarray | None = None
        if self.ell == 2:  # Gram entries of C[:, R_i] per holder, for the closed form
            self.gram = (weights[0] ** 2, weights[0] * weights[1], weights[1] ** 2)
            chunks, width = self.holder_worker.shape
            if 2**width * chunks * width <= _TABLE_ELEMENTS:
                # The closed form of every chunk and every subset of its holders (bit r: the
                # r-th holder is known), chunk-major: per block it is then a lookup.
                subsets = (np.arange(2**width)[:, None] >> np.arange(width)) & 1 == 1
                every = np.broadcast_to(subsets[:, None, :], (2**width, chunks, width))
                self.table = self.closed_form(every).T.ravel()

    def evaluate(self, block: Block) -> Rows:
        p, n, ell = self.p, block.n, self.ell
        done = self.times(block)
        d_control, d_upload = self.delay(1), self.delay(self.size)
        free = d_control == 0 and d_upload == 0 and self.delay(ell) == 0
        # Control messages all have size 1, so they arrive in the order they were sent: the
        # PS learns of chunk i's holders in order of their completion times.
        held, lowest = self.per_chunk(block)  # (n, chunks, holders), unsorted; their minimum
        if ell == 1:
            covered_at = lowest
        elif ell == 2 and held.shape[2] >= 2:
            covered_at = second_smallest(held)
        elif ell <= held.shape[2]:
            covered_at = np.partition(held, ell - 1, axis=2)[:, :, ell - 1]
        else:
            covered_at = np.full(held.shape[:2], INF)
        root = covered_at.max(axis=1)  # the completion whose report makes min_i r_i >= ell
        planned_at = root + d_control
        if self.deadline is None:
            exact = decoded = np.isfinite(root)
            plan_time = planned_at
        else:
            exact = planned_at <= self.deadline
            decoded = np.ones(n, dtype=bool)
            plan_time = np.where(exact, planned_at, self.deadline)
        # What the PS knows when it plans: the reports sent up to the root (exact plan), or
        # those arrived by the deadline (inclusive).
        sent_by = np.where(exact & decoded, root, -INF)[:, None, None]
        known = held <= sent_by
        known_pos = done <= sent_by
        if self.deadline is not None:
            arrived_by = np.where(exact, -INF, plan_time)[:, None, None]
            known |= held + d_control <= arrived_by
            known_pos |= done + d_control <= arrived_by
        copies = per_worker(known).astype(np.int64)  # r_i, (n, chunks)
        asked = per_worker(known_pos).astype(np.int64)  # chunks each worker is asked for
        net = self.network

        def download_at(asked: np.ndarray, sent: np.ndarray) -> np.ndarray:
            """When a download sent at ``sent`` that asks for ``asked`` chunks arrives."""
            return sent + (net.latency + (ell * asked) * net.time_per_float)

        # The more chunks a download asks for, the later it (and the upload answering it)
        # arrives: the last upload answers the largest download.
        most = asked.max(axis=1)
        stop = np.where(most > 0, download_at(most, plan_time) + d_upload, plan_time)
        stop = np.where(decoded, stop, INF)
        rows = Rows(n)
        rows["completion_time"] = stop
        rows["decoded"] = decoded
        rows["chunks_computed"] = self.count_until(done, stop)
        # Every finished chunk is reported at once.
        rows["control_messages"] = rows["chunks_computed"]
        used = copies.sum(axis=1).astype(np.int64)
        rows["chunks_used"] = np.where(decoded, used, 0)
        rows["download_floats"] = np.where(decoded, ell * used, 0)
        rows["messages"] = np.where(decoded, np.count_nonzero(asked, axis=1), 0).astype(np.int64)
        rows["upload_floats"] = rows["messages"] * self.size
        short = np.maximum(0, ell - copies).sum(axis=1)
        rows["residual"] = np.where(decoded, short.astype(float), np.nan)
        if p.conditioning:
            rows["decode_cond"] = np.where(
                decoded, self.worst_conditions(held, known, copies), np.nan
            )
        # An exact plan is unambiguous when the root is the only completion at its instant;
        # at the decode instant only the zero-delay cascade of the root may share the time
        # (a deadline is inclusive: nothing at T is ambiguous).
        ambiguous = exact & (self.at(done, np.where(exact, root, -INF)) > 1)
        at_stop = self.at(done, stop)
        if free:
            ambiguous |= exact & (at_stop > 1)
        else:
            ambiguous |= (at_stop > 0) & (exact | (stop > plan_time))
        rows.suspect = decoded & ambiguous

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            known_t = self.known_lists(held[t], copies[t])
            coefs = coefficients(p.decoder, known_t)
            blocks = split_blocks(grads, ell)
            # Uploads reach the PS by arrival; ties in the order downloads were processed,
            # which is by download arrival, then by worker (the order they were sent).
            down_at = download_at(asked[t], plan_time[t])
            return p.planned_estimate(known_t, coefs, blocks, down_at + d_upload, down_at)

        rows.estimate = estimate
        return rows

    def closed_form(self, known: np.ndarray) -> np.ndarray:
        """ell = 2: each chunk's condition number from the 2 x 2 Gram matrix of its known
        holders' columns, (..., chunks) from (..., chunks, holders) bools; 1 with one holder
        known (a 2 x 1 matrix has one singular value), -inf with none."""
        weights = known.astype(float)  # einsum casting bools itself was 3x slower
        uu, uv, vv = (np.einsum("...ir,ir->...i", weights, w) for w in self.gram)
        with np.errstate(divide="ignore", invalid="ignore"):
            half = (uu + vv) / 2
            big = half + np.sqrt(((uu - vv) / 2) ** 2 + uv**2)
            approx = big / np.sqrt(uu * vv - uv**2)
        copies = known.sum(axis=-1)
        return np.where(copies >= 2, approx, np.where(copies >= 1, 1.0, -INF))

    def worst_conditions(
        self, held: np.ndarray, known: np.ndarray, copies: np.ndarray
    ) -> np.ndarray:
        """Worst condition number of the C[:, R_i] (at least 1), as ``worst_condition`` computes
        it: the SVD of the same matrices (columns in the order the PS learned of them).

        ell = 1: a 1 x r matrix has one singular value, so every ratio is exactly 1. ell = 2:
        a closed form (2 x 2 Gram matrix) ranks the chunks of each trial and only the top
        ones, within its error bound, get the SVD; the maximum is then the SVD's number.
        ell >= 3: the SVD of every chunk's matrix, batched over the block. Either way each
        distinct matrix is decomposed once.
        """
        n = copies.shape[0]
        worst = np.ones(n)
        if self.ell == 1:
            return worst
        candidate = copies >= 1
        if self.ell == 2:
            if self.table is None:
                approx = self.closed_form(known)
            else:
                chunks, width = self.holder_worker.shape
                subset = (known << np.arange(width, dtype=np.uint16)).sum(axis=2, dtype=np.uint16)
                index = subset + np.arange(chunks) * 2**width
                approx = self.table.take(index.T).T  # trials last, as known
            top = approx.max(axis=1)
            # Relative error of the closed form: about eps * cond^2 (the Gram determinant).
            slack = 1e-9 + 64 * np.finfo(float).eps * top**2
            everything = ~np.isfinite(top) | (top > 1e6)
            candidate &= (approx >= (top * (1 - slack))[:, None]) | everything[:, None]
        chunk, trial = np.nonzero(candidate.T)  # any order: only maxima are taken below
        if trial.size == 0:
            return worst
        rank_order = np.argsort(held[trial, chunk], axis=1, kind="stable")
        workers = np.take_along_axis(self.holder_worker[chunk], rank_order, axis=1)
        sizes = copies[trial, chunk]
        for size in np.unique(sizes):
            pick = sizes == size
            matrices, which = distinct(workers[pick, :size], self.m)
            stack = np.moveaxis(self.p.decoder[:, matrices], 1, 0)
            singular = np.linalg.svd(stack, compute_uv=False)
            rank = min(self.ell, int(size))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (singular[:, 0] / singular[:, rank - 1])[which]
            # The event engine keeps max(worst, np.max(ratios of one size)): a NaN ratio
            # makes np.max NaN, which max() then ignores.
            group = np.full(n, -INF)
            np.maximum.at(group, trial[pick], ratio)
            worst = np.where(group > worst, group, worst)
        return worst
