"""``original_gc``: the original gradient codes. A worker uploads one coded vector (length
dim/ell) only after it has processed all its chunks; the PS decodes from any m - s uploads
(s = load - ell). Work of a worker that has not finished is wasted: this is what the
partial-straggler protocol improves on.

Constructions, both written as an encoder E (workers x chunks x ell) so that worker j uploads
y_j = sum_i sum_k E[j, i, k] g_i^(k):
- ``random``: Tandon et al.'s cyclic code (ell = 1), the best conditioned of ``candidates`` seeded
  draws, decoded by least squares; for ell > 1 the random counterpart of the polynomial code
  (``random_code.RandomCode``: same support, tolerance and upload size), decoded as it is;
- ``polynomial``: Ye & Abbe style (any ell), decoded by interpolation at the evaluation points;
  numerically unstable as m - s grows, which ``rel_error`` and ``decode_cond`` show;
- ``generic``: Tandon's null-space construction on any equal-load assignment (ell = 1), decoded
  by least squares as soon as the received uploads determine the sum (checked numerically).

Approximate mode: at the deadline, with fewer than m - s uploads, the PS takes the least-squares
best combination of what arrived; ``residual`` is its coefficient-space residual.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from ..budget import (
    LAYOUT_SECONDS,
    POLYNOMIAL_SECONDS,
    PROBES,
    SVD_SECONDS,
    Estimate,
    Part,
    as_float,
    few_sets,
    num,
)
from ..engine.fast import INF, Block, Evaluator, Rows, arrival_order
from ..streams import generator
from .base import (
    DECODED,
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
from .numerics import (
    block_length,
    join_blocks,
    least_squares_combination,
    null_space_code,
    planned_tandon_code,
    split_blocks,
    sum_weights,
)
from .polynomial import PolynomialCode, evaluation_points, vandermonde
from .random_code import RandomCode
from .scheme_config import CodedScheme, Problems

if TYPE_CHECKING:
    from ..config import Experiment

#: Exact decodes' condition numbers are kept per set of uploaders while there are at most this
#: many sets, holding at most _SET_CACHE_INDICES worker indices in all (about 12 MiB): 1,140 sets
#: of 17 at m = 20, s = 3; none at m = 1000, s = 9.
_SET_CACHE_SETS = 2**15
_SET_CACHE_INDICES = 2**20
#: Bytes of matrices one batched SVD may hold.
_SVD_BATCH_BYTES = 32 * 2**20
#: Least-squares decoders the fast engine caches per ordered tuple of uploading workers.
_DECODER_CACHE = 4096
#: Numbers one gather of chunk blocks may hold while computing uploads together (512 KiB, so
#: that it stays in cache: at m = 200 this took original_gc from 19 to 12 ms of CPU a trial).
_GATHER_FLOATS = 2**16


class OriginalGCConfig(CodedScheme):
    """Original gradient codes: a worker uploads one coded vector after finishing all its chunks;
    any m - s uploads decode (Tandon et al.; Ye & Abbe for ell > 1)."""

    protocol: Literal["original_gc"]
    construction: Literal["random", "polynomial", "generic"] | None = None
    """random: Tandon's cyclic code (ell = 1), a random Ye & Abbe style code (ell > 1);
    polynomial: Ye & Abbe style, any ell; generic: Tandon's null-space construction on any
    assignment (ell = 1), checked numerically. Default: random for ell = 1, polynomial
    otherwise."""
    candidates: Annotated[int, Field(ge=1)] = 16
    """random construction: draw this many codes and keep the best conditioned one."""
    points: Literal["chebyshev", "equispaced"] = "chebyshev"
    """polynomial construction: the evaluation points on [-1, 1]."""

    @model_validator(mode="after")
    def _default_construction(self) -> OriginalGCConfig:
        if self.construction is None:
            construction = "random" if self.ell == 1 else "polynomial"
            object.__setattr__(self, "construction", construction)
        return self

    def assignment_problems(self, held: list[list[int]], key: str) -> Problems:
        uneven = [j for j, mine in enumerate(held) if len(mine) != self.load]
        if uneven:
            return [
                (
                    f"{key}.assignment",
                    f"original_gc needs every worker to hold load = "
                    f"{self.load} chunks; worker {uneven[0]} holds {len(held[uneven[0]])}",
                )
            ]
        return []

    def costs(self, est: Estimate, exp: Experiment, key: str, m: float, n: float) -> float:
        """Its code (held while trials run; candidates scored while planning) and its decodes
        (a solve or factorization of (m - s) x m matrices per trial)."""
        what = f"{key} ({self.protocol})"
        ell = as_float(self.ell)
        s = max(0.0, as_float(self.load) - ell)
        rows = max(1.0, m - s)
        if self.construction == "polynomial":
            est.held.append(
                Part(
                    key,
                    f"{what}: its polynomial encoder, {num(m)} x {num(m)} x {num(ell)} floats",
                    m * m * ell * 8 * 2,
                    "lower cluster.workers",
                )
            )
            est.plan_seconds.append(
                Part(
                    key,
                    f"{what}: building the polynomial code for {num(m)} workers",
                    POLYNOMIAL_SECONDS * m * m,
                    "lower cluster.workers",
                )
            )
        else:
            est.held.append(
                Part(
                    key,
                    f"{what}: its code, a dense {num(m)} x {num(n)} matrix",
                    m * n * 8,
                    "lower cluster.workers",
                )
            )
        if self.construction == "random":
            candidates = as_float(self.candidates)
            scored = candidates > 1 and s > 0
            transient = [
                Part(
                    f"{key}.candidates",
                    f"{what}: {num(candidates)} candidate codes of {num(m)} x {num(m)} floats",
                    candidates * m * m * 8,
                    f"lower {key}.candidates (1 keeps the first code)",
                )
            ]
            if scored:
                transient.append(
                    Part(
                        "cluster.workers",
                        f"{what}: scoring its candidate codes, {PROBES} matrices of {num(rows)} x "
                        f"{num(m)}",
                        PROBES * rows * m * 8 * 1.2,
                        f"lower cluster.workers, or {key}.candidates to 1 (no scoring)",
                    )
                )
            est.planning.append(transient)
            est.plan_seconds.append(
                Part(
                    f"{key}.candidates",
                    f"{what}: drawing {num(candidates)} random codes"
                    + (f" and scoring each by {PROBES} SVDs of {num(rows)} x {num(m)} matrices"
                       if scored else ""),
                    candidates * m * LAYOUT_SECONDS
                    + (candidates * PROBES * SVD_SECONDS * rows * m * m if scored else 0.0),
                    f"lower {key}.candidates (1 keeps the first code) or cluster.workers",
                )
            )  # fmt: skip
        # A decode solves or factors (rows x m) matrices (x ell for least squares over blocks).
        width = m * (ell if self.mode == "approximate" or self.construction == "generic" else 1.0)
        est.working.append(
            Part(
                key,
                f"{what}: one decode, {num(rows)} x {num(width)} matrices, 3 copies",
                3 * rows * width * 8,
                "lower cluster.workers",
            )
        )
        solves = 0.0
        if exp.output.decode_cond and not few_sets(m, s):
            solves += 1
        if exp.data.gradients != "none":
            solves += 1
        if self.construction == "generic":
            solves += s + 1  # a least-squares check per upload once m - s have arrived
        return solves * SVD_SECONDS * rows * width * width / max(ell, 1.0)

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        problems = super().problems(key, workers, chunks)
        if self.construction in ("random", "polynomial") and self.assignment != "cyclic":
            problems.append(
                (
                    f"{key}.assignment",
                    f"construction '{self.construction}' ({key}.construction) needs the "
                    f"cyclic assignment, got {self.assignment}; use construction: "
                    "generic for other assignments",
                )
            )
        if self.construction == "generic" and self.ell != 1:
            problems.append(
                (
                    f"{key}.ell",
                    f"construction 'generic' (Tandon's code) supports ell = 1 only, got "
                    f"{self.ell}; use construction: random or polynomial (cyclic assignment)",
                )
            )
        return problems


class OriginalTrial(Trial):
    def __init__(self, protocol: OriginalGC, grads: np.ndarray | None):
        self.protocol = protocol
        spec = protocol.spec
        self.deadline = protocol.deadline
        self.blocks = None if grads is None else split_blocks(grads, spec.ell)
        self.received: list[Message] = []
        self.senders: list[int] = []  # the workers of received, in order

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        p = self.protocol
        order = p.orders[worker]
        if chunk != order[-1]:
            return NOTHING
        payload = None if self.blocks is None else p.payload(worker, self.blocks)
        return Reaction(send=[Message(UPLOAD, worker, p.upload_size, payload=payload)])

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.received.append(msg)
        self.senders.append(msg.worker)
        return decoded_if(self.protocol.determined(self.senders))

    def at_deadline(self, now: float) -> Reaction:
        return DECODED  # decode with what has arrived

    def result(self) -> Decoded:
        p = self.protocol
        workers = [msg.worker for msg in self.received]
        combination, condition, left = p.decoder(workers, weights=self.blocks is not None)
        estimate = None
        if self.blocks is not None:
            estimate = p.estimate(combination, [msg.payload for msg in self.received])
        used = len(workers) * p.spec.load
        return Decoded(estimate, chunks_used=used, cond=condition, residual=left)


class OriginalGC(Protocol):
    name = "original_gc"
    config = OriginalGCConfig
    tags = Tags()
    exact = True
    examples = (
        {"load": 4, "ell": 1},
        {"load": 4, "ell": 2},
        {"load": 4, "ell": 3, "construction": "polynomial", "points": "equispaced"},
        {"load": 4, "ell": 2, "mode": "approximate", "deadline": 6.0},
        {"load": 3, "ell": 1, "construction": "generic"},
        {"load": 4, "ell": 3, "construction": "random"},
    )

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.exact = spec.mode == "exact"
        self.needed = self.workers - (spec.load - spec.ell)
        self.upload_size = block_length(self.dim, spec.ell)
        self.orders = scheme_orders(spec, exp, label)
        # Every worker holds ``load`` chunks (assignment_problems): the orders as one array.
        self.order_array = np.array(self.orders, dtype=np.int64).reshape(self.workers, -1)
        self.set_conds: dict[tuple[int, ...], float] = {}  # see exact_condition
        sets = math.comb(self.workers, self.workers - self.needed)
        few = sets <= _SET_CACHE_SETS and sets * self.needed <= _SET_CACHE_INDICES
        self.cached_sets = sets if few else 0
        self.polynomial = None
        if spec.construction == "random" and spec.ell > 1:
            # Decoded as the polynomial code is (through ``self.polynomial``), G for V.
            rng = generator(self.seed, "code", label)
            self.polynomial = RandomCode(
                self.workers, spec.load, spec.ell, rng, candidates=spec.candidates
            )
            self.encoder = self.polynomial.encoder
        elif spec.construction == "random":
            rng = generator(self.seed, "code", label)
            self.code = planned_tandon_code(self.workers, spec.load - 1, rng, spec.candidates)
            self.encoder = self.code[:, :, None]
        elif spec.construction == "generic":
            rng = generator(self.seed, "code", label)
            self.code = null_space_code(self.orders, self.chunks, spec.load - 1, rng)
            self.encoder = self.code[:, :, None]
        else:
            points = evaluation_points(self.workers, spec.points)
            self.polynomial = PolynomialCode(self.workers, spec.load, spec.ell, points)
            self.encoder = self.polynomial.encoder

    def error_bound(self) -> float:
        """Interpolation loses accuracy fast as m - s grows (mean rel_error about 1e-23 at
        m - s = 14 and 1e-17 at m - s = 22 with load 4, ell 2): no bound is claimed beyond 14."""
        if not self.exact:
            return float("inf")
        if isinstance(self.polynomial, RandomCode):  # rel_error ~ (eps cond)^2
            return 1e-20 if self.polynomial.worst_cond <= 1e4 else float("inf")
        return 1e-20 if self.polynomial is None or self.needed <= 14 else float("inf")

    def determined(self, workers: list[int]) -> bool:
        """Whether these uploads determine the gradient: any m - s do for the cyclic codes; the
        generic code is checked numerically once there are m - s."""
        if len(workers) < self.needed:
            return False
        if self.spec.construction != "generic":
            return True
        _, left = least_squares_combination(self.encoder[workers])
        return left < 1e-18 * self.chunks

    def decoder(
        self, workers: list[int], weights: bool = True
    ) -> tuple[np.ndarray | None, float, float]:
        """(combination D, condition number, coefficient residual) for these uploads.

        ``weights=False`` skips D where it is a separate solve (no gradients: only the condition
        number reaches the summary; the least-squares branch needs D for its residual). Without
        ``conditioning`` the condition number is NaN and its SVD is skipped."""
        if len(workers) < self.needed or self.spec.construction == "generic":
            combination, left = least_squares_combination(self.encoder[workers])
            condition = float("nan")
            if workers and self.conditioning:
                flat = self.encoder[workers].reshape(len(workers), -1)
                singular = np.linalg.svd(flat, compute_uv=False)
                condition = float(singular[0] / singular[-1]) if singular[-1] > 0 else np.inf
            return combination, condition, left
        condition = float("nan")
        if self.polynomial is not None:
            combination = self.polynomial.decoder(workers) if weights else None
            if self.conditioning:
                condition = self.exact_condition(workers)
            return combination, condition, 0.0
        if self.conditioning:
            condition = self.exact_condition(workers)
        if not weights:
            return None, condition, 0.0
        return sum_weights(self.code[workers])[None, :], condition, 0.0

    def exact_condition(self, workers: list[int]) -> float:
        """decode_cond of an exact decode of the cyclic codes: the condition number of the
        received rows of the code (random), or of the Vandermonde matrix of their points
        (polynomial). It is a property of the set of uploaders, so it is taken with the rows in
        worker order, not arrival order (which would move only its last bits), and computed
        once per set while the sets are few (at m = 20, s = 3 there are 1,140)."""
        key = tuple(sorted(workers))
        hit = self.set_conds.get(key)
        if hit is None:
            hit = float(self._svd_conditions(np.array([key]))[0])
            if len(self.set_conds) < self.cached_sets:
                self.set_conds[key] = hit
        return hit

    def exact_conditions(self, sets: np.ndarray) -> np.ndarray:
        """``exact_condition`` of each row of ``sets`` ((count, k) workers, each row sorted),
        through the same cache; the sets not in it get batched SVDs."""
        if not self.cached_sets:
            return self._svd_conditions(sets)
        keys = [tuple(row) for row in sets.tolist()]
        known = self.set_conds
        missing = [i for i, key in enumerate(keys) if key not in known]
        fresh = dict(zip(missing, self._svd_conditions(sets[missing]).tolist(), strict=True))
        for i, value in fresh.items():
            if len(known) < self.cached_sets:
                known[keys[i]] = value
        return np.array([fresh[i] if i in fresh else known[key] for i, key in enumerate(keys)])

    def _svd_conditions(self, sets: np.ndarray) -> np.ndarray:
        """cond (ratio of extreme singular values, inf if singular) of the matrix of each set."""
        count, k = sets.shape
        width = self.code.shape[1] if self.polynomial is None else self.needed
        out = np.empty(count)
        step = max(1, _SVD_BATCH_BYTES // (8 * max(k, 1) * width))
        for lo in range(0, count, step):
            part = sets[lo : lo + step]
            if self.polynomial is None:
                stack = self.code[part]
            elif isinstance(self.polynomial, RandomCode):
                stack = self.polynomial.system(part)
            else:
                stack = vandermonde(self.polynomial.points[part], self.needed)
            singular = np.linalg.svd(stack, compute_uv=False)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = singular[:, 0] / singular[:, -1]
            out[lo : lo + step] = np.where(singular[:, -1] > 0, ratio, np.inf)
        return out

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return OriginalTrial(self, grads)

    def evaluator(self, exp) -> Evaluator:
        return OriginalEvaluator(self, exp)

    # The decoder's two halves, called by both engines ---------------------------------------

    def payload(self, worker: int, blocks: np.ndarray) -> np.ndarray:
        """Worker j's upload y_j = sum_i sum_k E[j, i, k] g_i^(k) (blocks: split_blocks)."""
        order = self.orders[worker]
        return np.einsum("ck,ckb->b", self.encoder[worker, order], blocks[order])

    def payloads(self, workers: list[int], blocks: np.ndarray) -> np.ndarray:
        """The uploads of ``workers``, (len, dim/ell): ``payload`` of each, as einsums over
        groups of workers (the same sum in the same order per worker, so the same bits:
        ``tests/test_numerics_decode.py``; blocks of length 1 excepted, where einsum picks
        another kernel), without a Python call per upload. Groups hold about
        ``_GATHER_FLOATS`` gathered numbers."""
        if blocks.shape[2] < 2:  # einsum sums a length-1 axis with another kernel
            return np.array([self.payload(w, blocks) for w in workers]).reshape(-1, 1)
        order = self.order_array
        rows = np.asarray(workers, dtype=np.int64)
        out = np.empty((rows.size, blocks.shape[2]))
        step = max(1, _GATHER_FLOATS // max(1, order.shape[1] * blocks[0].size))
        for lo in range(0, rows.size, step):
            part = rows[lo : lo + step]
            chunks = order[part]
            weights = self.encoder[part[:, None], chunks]
            out[lo : lo + step] = np.einsum("wck,wckb->wb", weights, blocks[chunks])
        return out

    def estimate(self, combination: np.ndarray, uploads: list[np.ndarray]) -> np.ndarray:
        """The gradient from the uploads in arrival order and their combination D."""
        stacked = np.asarray(uploads).reshape(len(uploads), self.upload_size)
        return join_blocks(combination @ stacked, self.dim)


# --------------------------------------------------------------------------------------------
# The fast engine's evaluation


class OriginalEvaluator(Evaluator):
    """One coded upload after all chunks; any m - s decode, or least squares at T."""

    def __init__(self, protocol: OriginalGC, exp):
        super().__init__(protocol, exp)
        spec = protocol.spec
        self.ell, self.size, self.deadline = spec.ell, protocol.upload_size, protocol.deadline
        self.cache: dict[tuple[int, ...], tuple[np.ndarray, float, float]] = {}
        # The cyclic codes decode from any m - s uploads, with a decoder whose condition
        # number is one SVD (batched here); other constructions are asked, upload by upload,
        # whether what arrived determines the gradient, as the PS asks them.
        self.any_needed = spec.construction in ("random", "polynomial")

    def decoder(self, workers: tuple[int, ...]) -> tuple[np.ndarray, float, float]:
        """The protocol's own decoder (same call, same argument order as the event engine)."""
        hit = self.cache.get(workers)
        if hit is None:
            hit = self.p.decoder(list(workers))
            if len(self.cache) >= _DECODER_CACHE:
                self.cache.pop(next(iter(self.cache)))
            self.cache[workers] = hit
        return hit

    def first_determined(self, arrivals: np.ndarray) -> int:
        """How many of these uploads (in arrival order) the PS has when it first finds the
        gradient determined (0: never): the protocol's own test, on every prefix from m - s."""
        workers = [int(w) for w in arrivals]
        for count in range(self.p.needed, len(workers) + 1):
            if self.p.determined(workers[:count]):
                return count
        return 0

    def exact_conditions(self, rows: np.ndarray) -> np.ndarray:
        """decode_cond of exact decodes from m - s uploads (rows: (count, m - s) workers in
        arrival order): the protocol's own, a function of each set, computed once per set."""
        sets, which = np.unique(np.sort(rows, axis=1), axis=0, return_inverse=True)
        return self.p.exact_conditions(sets)[which.ravel()]

    def evaluate(self, block: Block) -> Rows:
        p, n = self.p, block.n
        done = self.times(block)
        finish = np.ascontiguousarray(self.last(block))  # sorted per trial: one row each
        d = self.delay(self.size)
        arrival = finish + d
        order, tied = arrival_order(arrival, finish)
        ranked = np.take_along_axis(arrival, order, axis=1)
        needed = p.needed
        sent = np.isfinite(finish).sum(axis=1)  # uploads that are ever sent
        if self.any_needed:
            enough = np.where(sent >= needed, needed, 0)
        else:
            enough = np.array([self.first_determined(order[t, : sent[t]]) for t in range(n)])
        last_needed = np.take_along_axis(ranked, np.maximum(enough, 1)[:, None] - 1, axis=1)
        exact_at = np.where(enough > 0, last_needed[:, 0], INF)
        rows = Rows(n)
        if self.deadline is None:
            exact = decoded = np.isfinite(exact_at)
            stop = exact_at
        else:
            exact = exact_at <= self.deadline
            decoded = np.ones(n, dtype=bool)
            stop = np.where(exact, exact_at, self.deadline)
        rows["completion_time"] = stop
        rows["decoded"] = decoded
        rows["messages"] = self.sent_by(finish, stop)
        rows["upload_floats"] = rows["messages"] * self.size
        rows["chunks_computed"] = self.count_until(done, stop)
        allowed = 1 if d == 0 else 0
        # At an exact decode, what was sent by then depends on order; at the deadline all
        # events at T happen first (inclusive), so only the order of the uploads matters.
        rows.suspect = decoded & tied | exact & (self.at(done, stop) > allowed)
        count = np.where(exact, enough, np.count_nonzero(ranked <= stop[:, None], axis=1))
        rows["chunks_used"] = np.where(decoded, count * p.spec.load, 0)
        solve = decoded & ~exact  # least squares on what arrived by T
        if self.any_needed:
            rows["residual"] = np.where(exact, 0.0, rows["residual"])
            if p.conditioning:
                rows["decode_cond"][exact] = self.exact_conditions(order[exact, :needed])
        else:
            solve = decoded
        for t in np.nonzero(solve)[0]:
            _, condition, left = self.decoder(tuple(int(w) for w in order[t, : count[t]]))
            rows["decode_cond"][t] = condition
            rows["residual"][t] = left

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            workers = tuple(int(w) for w in order[t, : count[t]])
            combination, _, _ = self.decoder(workers)
            blocks = split_blocks(grads, self.ell)
            return p.estimate(combination, p.payloads(list(workers), blocks))

        rows.estimate = estimate
        return rows
