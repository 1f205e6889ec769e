"""The vectorised engine: every trial of a realization block evaluated at once with NumPy.

Where the outcome of a trial is a function of its realization alone, the event engine
(``des.py``, the reference) is not needed to find it: with fail-stop failures, no crashes and
a network whose delay depends only on the message size, every event time is a fixed sum of
the drawn chunk times and constant delays, and each protocol's stopping rule is an order
statistic of those sums. This module evaluates those formulas for a whole block of trials and
gives the same summary rows as ``runner.run_trials``, trial by trial and column by column.

What the event engine does, restated as the formulas used here (``C[j, k]``: the time worker j
finishes its k-th chunk, the sequential float sum of its step times, as SimPy's clock adds
them; a message sent at ``t`` arrives at ``t + delay(size)``, again one float addition):

- the PS handles messages in arrival order, ties in the order they were sent (SimPy orders
  equal-time events by scheduling order);
- the trial stops at the decode instant ``t*``; what was sent at or before ``t*`` is counted
  (zero-delay cascades at ``t*`` happen before the stop), nothing after; an undecoded trial
  runs until nothing is left, so everything a live worker does is counted;
- a deadline is inclusive: everything at ``t <= T`` happens before the PS decodes at ``T``;
- ``partial_gc`` workers keep computing (and reporting) after they upload.

Ties between independent continuous draws have probability zero, but exact float coincidences
are not impossible, and chunk times can underflow to 0. Every trial in which a comparison that
decides an outcome ties exactly (or a worker's clock does not strictly advance) is replayed by
the event engine instead, so the rows are the event engine's in every case. Distributions with
atoms (deterministic, empirical) tie all the time: ``fast_problems`` refuses them unless every
scheme is insensitive to ties (uncoded).

Numbers (``rel_error``, ``decode_cond``, ``residual`` of least-squares decoders) come from the
same protocol objects and functions the event engine calls, on the same matrices, so they
agree to the last bit in practice. What is vectorised is batched SVDs of the same matrices
(original_gc's condition numbers, asked of the protocol once per distinct set of uploaders;
partial_gc's, where a closed form first picks the chunks whose SVD can be the largest).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import config as cfg
from ..cluster import Cluster, Realization, TrialDraw, gradients
from ..coding.base import Protocol
from ..coding.numerics import block_length, join_blocks, rel_error, split_blocks
from ..coding.partial_gc import coefficients
from ..coding.registry import build
from ..streams import TRIAL_BLOCK

#: Protocols this engine evaluates (by config name).
SUPPORTED = ("uncoded", "fastest_k", "frc", "multi_message", "original_gc", "partial_gc")
#: Protocols whose outcome does not depend on how simultaneous events are ordered.
TIE_SAFE = ("uncoded",)
#: Least-squares decoders cached per ordered tuple of uploading workers (bounded).
_DECODER_CACHE = 4096
#: Trials evaluated together (a slice) are cut so that one (trials, m, steps) array holds
#: about this many numbers (1 MiB of floats, so a scheme's arrays stay in cache: about 1.5x
#: faster at m = 20 and 200 than slices of 2**20 numbers) ...
_SLICE_ELEMENTS = 2**17
#: ... but at least this many trials (the trial axis is NumPy's inner loop; fewer trials made
#: large clusters slower) ...
_SLICE_TRIALS = 128
#: ... and never more than this many numbers, so peak memory stays bounded.
_SLICE_MAX_ELEMENTS = 2**20
#: Largest (subsets, chunks, holders) array partial_gc with ell = 2 builds its table of closed
#: forms from, once per run (beyond it, the closed form is computed per block).
_TABLE_ELEMENTS = 2**20

#: Settings whose meaning the formulas below implement, per config model; a setting not
#: listed here that differs from its default is reported by ``fast_problems`` (it may change
#: what happens in a trial, and fast would silently ignore it).
_KNOWN = {
    "Cluster": {"workers", "compute", "slowdown", "failures", "network"},
    "Failures": {"prob", "workers", "crash_rate", "detect_timeout"},
    "Network": {"latency", "time_per_float", "ps_ingress"},
    "Data": {"chunks", "dim", "gradients"},
    "UncodedScheme": {"label", "protocol"},
    "FastestKScheme": {"label", "protocol", "k", "fraction"},
    "FRCScheme": {"label", "protocol", "load"},
    "MultiMessageScheme": {"label", "protocol", "load", "assignment", "assignment_file",
                           "ordering"},
    "OriginalGCScheme": {"label", "protocol", "load", "ell", "mode", "deadline",
                         "construction", "candidates", "points", "assignment",
                         "assignment_file", "ordering"},
    "PartialGCScheme": {"label", "protocol", "load", "ell", "mode", "deadline", "assignment",
                        "assignment_file", "ordering"},
}  # fmt: skip

INF = math.inf


# --------------------------------------------------------------------------------------------
# When the fast engine is exact


def fast_problems(exp: cfg.Experiment) -> list[tuple[str, str]]:
    """(dotted key, reason) for everything that keeps ``engine: fast`` from giving the event
    engine's rows for ``exp``; an empty list means the fast engine is exact here."""
    problems: list[tuple[str, str]] = []
    cluster = exp.cluster
    if cluster.failures.crash_rate > 0:
        problems.append(
            (
                "cluster.failures.crash_rate",
                "crashes need the event engine: a crash interrupts a worker mid-chunk and "
                "partial_gc re-plans when the PS notices it, a history the vectorised "
                "evaluation does not model; set crash_rate: 0 or engine: des",
            )
        )
    if cluster.network.ps_ingress == "shared":
        problems.append(
            (
                "cluster.network.ps_ingress",
                "a shared PS link queues uploads first come first served, so a message's "
                "arrival depends on every earlier one; needs the event engine "
                "(ps_ingress: parallel for fast)",
            )
        )
    for i, scheme in enumerate(exp.schemes):
        if scheme.protocol not in SUPPORTED:
            problems.append(
                (
                    f"schemes.{i}.protocol",
                    f"no vectorised evaluation of protocol {scheme.protocol!r}; fast "
                    f"supports {', '.join(SUPPORTED)}",
                )
            )
    problems += _unknown(cluster, "cluster")
    problems += _unknown(cluster.failures, "cluster.failures")
    problems += _unknown(cluster.network, "cluster.network")
    problems += _unknown(exp.data, "data")
    for i, scheme in enumerate(exp.schemes):
        if scheme.protocol in SUPPORTED:
            problems += _unknown(scheme, f"schemes.{i}")
    sensitive = [s.protocol for s in exp.schemes if s.protocol not in TIE_SAFE]
    atoms = _atoms(cluster.compute, "cluster.compute")
    if atoms and sensitive:
        key, kind = atoms[0]
        problems.append(
            (
                key,
                f"{kind} compute times make events simultaneous; the event engine orders "
                "them by scheduling order, which decides what "
                f"{', '.join(sorted(set(sensitive)))} count at the decode instant and is not "
                "reproduced by fast; use a continuous distribution or engine: des",
            )
        )
    return problems


def _unknown(model: object, key: str) -> list[tuple[str, str]]:
    """Settings of a config model that this engine does not know and that are not at their
    defaults."""
    known = _KNOWN.get(type(model).__name__)
    if known is None:
        return [(key, f"fast does not know {type(model).__name__} settings; use engine: des")]
    out = []
    for name, info in type(model).model_fields.items():
        if name in known:
            continue
        if getattr(model, name) != info.get_default(call_default_factory=True):
            out.append((f"{key}.{name}", f"fast does not model {name!r}; use engine: des"))
    return out


def _atoms(dist: cfg.Distribution, key: str) -> list[tuple[str, str]]:
    """Where a distribution puts probability on single values (so draws tie): (key, kind)."""
    if isinstance(dist, cfg.Deterministic):
        return [(f"{key}.dist", "deterministic")]
    if isinstance(dist, cfg.Empirical):
        return [(f"{key}.dist", "empirical (resampled, so repeated)")]
    if isinstance(dist, cfg.Bimodal):
        return _atoms(dist.fast, f"{key}.fast") + _atoms(dist.slow, f"{key}.slow")
    return []


# --------------------------------------------------------------------------------------------
# The block: what every protocol reads


@dataclass
class _Block:
    """Trials evaluated together: ``done[t, j, k]`` is when worker j finishes its k-th chunk.

    Arrays are indexed (trials, ...) but stored with the trial axis fastest in memory: ``done``
    is a view of ``flat``, a (workers * steps + 1, trials) buffer whose last row is +inf (what
    chunk holders are padded with). Reductions over workers, steps and holders then run over
    whole rows of trials. In (trials, ...) order they ran over axes of 1-20 numbers per trial,
    where NumPy's cost per row, not per number, dominated at small m.
    """

    pieces: list[Realization]  # the draws, in trial order (for replays)
    flat: np.ndarray  # (m * steps + 1, n): done by (worker, step) position, then +inf
    done: np.ndarray  # (n, m, steps), a view of flat
    live: np.ndarray  # (n, m)
    stalled: np.ndarray  # (n,) some live worker's clock does not strictly advance
    cache: dict = field(default_factory=dict)  # per scheme shape: see _Evaluator.masked

    @property
    def first(self) -> int:
        return self.pieces[0].first

    @property
    def n(self) -> int:
        return self.live.shape[0]

    @property
    def steps(self) -> int:
        return self.done.shape[2]

    def trial(self, index: int) -> TrialDraw:
        for piece in self.pieces:
            if index < piece.first + piece.trials:
                return piece.trial(index)
        raise IndexError(index)


def _block(pieces: list[Realization]) -> _Block:
    """The block of consecutive realizations ``pieces`` (drawn separately: concatenating the
    draws first cost a copy of every step time)."""
    m, steps = pieces[0].step_times.shape[1:]
    n = sum(piece.trials for piece in pieces)
    flat = np.empty((m * steps + 1, n))
    flat[-1] = INF
    by_step = flat[:-1].reshape(m, steps, n)
    at = 0
    for piece in pieces:
        np.copyto(by_step[:, :, at : at + piece.trials], piece.step_times.transpose(1, 2, 0))
        at += piece.trials
    # The sequential float sum that np.cumsum makes and the SimPy clock adds (now + delay, one
    # step at a time), in place.
    for k in range(1, steps):
        np.add(by_step[:, k - 1], by_step[:, k], out=by_step[:, k])
    done = by_step.transpose(2, 0, 1)
    live = np.empty((m, n), dtype=bool).T  # trials last, as done
    np.logical_not(np.concatenate([piece.down for piece in pieces]), out=live)
    # A zero (or, next to a large clock, absorbed) chunk time makes a worker tie with itself.
    still = (done[:, :, 0] <= 0) | np.any(done[:, :, 1:] <= done[:, :, :-1], axis=2)
    stalled = np.any(still & live, axis=1)
    return _Block(pieces, flat, done, live, stalled)


@dataclass
class _Rows:
    """The summary columns of one scheme over a block, plus what the numerics need."""

    completion: np.ndarray
    decoded: np.ndarray
    upload: np.ndarray
    download: np.ndarray
    messages: np.ndarray
    control: np.ndarray
    computed: np.ndarray
    used: np.ndarray
    cond: np.ndarray
    residual: np.ndarray
    suspect: np.ndarray  # replay these trials with the event engine
    estimate: Callable[[int, np.ndarray], np.ndarray] | None = None  # (trial index, grads)

    @classmethod
    def empty(cls, n: int) -> _Rows:
        zeros = np.zeros(n, dtype=np.int64)
        return cls(
            completion=np.full(n, INF),
            decoded=np.zeros(n, dtype=bool),
            upload=zeros.copy(),
            download=zeros.copy(),
            messages=zeros.copy(),
            control=zeros.copy(),
            computed=zeros.copy(),
            used=zeros.copy(),
            cond=np.full(n, np.nan),
            residual=np.full(n, np.nan),
            suspect=np.zeros(n, dtype=bool),
        )


class _Evaluator:
    """A protocol's formulas. Subclasses fill ``_Rows`` for a block."""

    def __init__(self, protocol: Protocol, exp: cfg.Experiment):
        self.p = protocol
        self.network = exp.cluster.network
        self.dim = exp.data.dim
        orders = protocol.orders
        self.m = len(orders)
        self.lengths = np.array([len(o) for o in orders], dtype=np.int64)
        self.steps = max(1, int(self.lengths.max()))
        # valid[j, k]: worker j has a k-th chunk to compute.
        self.valid = np.arange(self.steps)[None, :] < self.lengths[:, None]
        self.shape_key = ("times", self.steps, self.lengths.tobytes())

    def delay(self, size: int) -> float:
        return self.network.delay(size)

    def masked(self, block: _Block) -> tuple[np.ndarray, np.ndarray]:
        """(times, flat): the block's ``done`` and ``flat`` with +inf where this scheme computes
        nothing (a down worker, a step past a worker's list); ``times`` is (n, m, steps).
        Shared by the schemes of a block with the same list lengths. Where there is nothing
        to mask, these are views of the block's own buffer (read only)."""
        if self.shape_key not in block.cache:
            flat, steps = block.flat, block.steps
            invalid = ~self.valid
            down = not block.live.all()
            if down or invalid.any():
                flat = flat.copy()
                by_step = flat[:-1].reshape(self.m, steps, block.n)
                by_step[:, : self.steps][invalid] = INF
                if down:
                    np.copyto(by_step, INF, where=~block.live.T[:, None, :])
            done = flat[:-1].reshape(self.m, steps, block.n)[:, : self.steps].transpose(2, 0, 1)
            block.cache[self.shape_key] = (done, flat)
        return block.cache[self.shape_key]

    def times(self, block: _Block) -> np.ndarray:
        """(n, m, steps) completion times, +inf where nothing is computed (down worker, no
        such step)."""
        return self.masked(block)[0]

    def last(self, block: _Block) -> np.ndarray:
        """(n, m): when each worker finishes its whole list (+inf when down or idle)."""
        done = self.times(block)
        if (self.lengths == self.steps).all():
            return done[:, :, -1]
        finish = done[:, np.arange(self.m), np.maximum(self.lengths - 1, 0)]
        finish[:, self.lengths == 0] = INF  # an empty list: nothing to compute or send
        return finish

    @staticmethod
    def count_until(done: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """Chunk completions at or before ``stop`` (per trial; all of them when stop is inf)."""
        bound = np.where(np.isinf(stop), np.finfo(float).max, stop)[:, None, None]
        return _per_worker(done <= bound).sum(axis=1, dtype=np.int64)

    @staticmethod
    def sent_by(finish: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """Workers (one upload each, sent at ``finish``) that sent by ``stop``."""
        return np.count_nonzero(np.isfinite(finish) & (finish <= stop[:, None]), axis=1).astype(
            np.int64
        )

    @staticmethod
    def at(done: np.ndarray, when: np.ndarray) -> np.ndarray:
        """How many chunk completions happen exactly at ``when`` (per trial; none at inf)."""
        when = np.where(np.isfinite(when), when, np.nan)
        return _per_worker(done == when[:, None, None]).sum(axis=1, dtype=np.int64)

    def evaluate(self, block: _Block) -> _Rows:
        raise NotImplementedError


def _per_worker(mask: np.ndarray) -> np.ndarray:
    """How many of ``mask[t, j, :]`` are true, (n, m), in the smallest unsigned type that holds
    the count: on trials-last arrays, summing bools into int64 cost 2-3x the comparison that
    made them. Convert before doing arithmetic with the result."""
    return mask.sum(axis=2, dtype=np.min_scalar_type(mask.shape[2]))


def _arrival_order(arrival: np.ndarray, sent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The PS's processing order of one message per worker: by arrival, ties by sending time
    (a message sent earlier was scheduled earlier). Returns (order, suspect): suspect where
    two messages tie in both (their order would be SimPy's scheduling order of the senders)."""
    order = np.lexsort((sent, arrival), axis=-1)
    a = np.take_along_axis(arrival, order, axis=-1)
    s = np.take_along_axis(sent, order, axis=-1)
    both = (a[..., 1:] == a[..., :-1]) & (s[..., 1:] == s[..., :-1]) & np.isfinite(a[..., 1:])
    return order, both.any(axis=-1)


# --------------------------------------------------------------------------------------------
# uncoded and fastest_k: one upload per worker after its whole (contiguous) share


class _Split(_Evaluator):
    def evaluate(self, block: _Block) -> _Rows:
        p, n, m = self.p, block.n, self.m
        done = self.times(block)
        finish = self.last(block)
        d = self.delay(self.dim)
        arrival = finish + d
        k = getattr(p, "k", m)  # fastest_k waits for k uploads, uncoded for all
        decoded = block.live.sum(axis=1) >= k
        rows = _Rows.empty(n)
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
        rows.completion = stop
        rows.decoded = decoded
        rows.messages = self.sent_by(finish, stop)
        rows.upload = rows.messages * self.dim
        rows.computed = self.count_until(done, stop)
        rows.used = np.where(decoded, covered, 0)
        rows.cond = np.where(decoded, 1.0, np.nan)
        if p.name == "fastest_k":
            rows.residual = np.where(decoded, (p.chunks - covered).astype(float), np.nan)
            allowed = 1 if d == 0 else 0  # zero delay: the k-th upload's own completion
            rows.suspect = decoded & (tied | (self.at(done, stop) > allowed))
        else:
            # Waiting for everyone: what is sent by the end does not depend on any order.
            rows.residual = np.where(decoded, 0.0, np.nan)
        orders = p.orders

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            workers = np.arange(m) if k == m else np.flatnonzero(arrival[t] <= stop[t])
            workers = workers[np.lexsort((finish[t, workers], arrival[t, workers]))]
            total = np.sum([grads[orders[w]].sum(axis=0) for w in workers], axis=0)
            if p.name == "fastest_k":
                total *= p.chunks / int(covered[t])
            return total

        rows.estimate = estimate
        return rows


# --------------------------------------------------------------------------------------------
# frc: groups of identical workers; the first upload of each group


class _FRC(_Evaluator):
    def evaluate(self, block: _Block) -> _Rows:
        p, n = self.p, block.n
        done = self.times(block)
        finish = self.last(block)
        d = self.delay(self.dim)
        # The PS keys groups by worker // load: consecutive runs of load workers. All uploads
        # have one size, so the first to arrive is the first to finish (ties: same payload).
        load, groups = p.spec.load, p.groups
        by_group = finish.reshape(n, groups, load)
        first_sent = by_group.min(axis=2)
        first_arrival = first_sent + d
        decoded = np.isfinite(first_sent).all(axis=1)
        stop = np.where(decoded, first_arrival.max(axis=1), INF)
        rows = _Rows.empty(n)
        rows.completion = stop
        rows.decoded = decoded
        rows.messages = self.sent_by(finish, stop)
        rows.upload = rows.messages * self.dim
        rows.computed = self.count_until(done, stop)
        rows.used = np.where(decoded, p.chunks, 0)
        rows.cond = np.where(decoded, 1.0, np.nan)
        rows.residual = np.where(decoded, 0.0, np.nan)
        allowed = 1 if d == 0 else 0
        rows.suspect = decoded & (self.at(done, stop) > allowed)
        orders = p.orders

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            group_order = np.lexsort((first_sent[t], first_arrival[t]))
            workers = group_order * load + np.argmin(by_group[t], axis=1)[group_order]
            return np.sum([grads[orders[w]].sum(axis=0) for w in workers], axis=0)

        rows.estimate = estimate
        return rows


# --------------------------------------------------------------------------------------------
# Chunk holders: for multi_message and partial_gc


class _Holders(_Evaluator):
    """Index arrays from chunks to the (worker, step) positions that compute them."""

    def __init__(self, protocol: Protocol, exp: cfg.Experiment):
        super().__init__(protocol, exp)
        chunks, lengths = protocol.chunks, self.lengths
        # Every (worker, step) position and its chunk, in worker-major order; a stable sort by
        # chunk lists each chunk's holders in that order (a Python loop cost 25 ms at m = 1000).
        worker = np.repeat(np.arange(self.m), lengths)
        step = np.arange(len(worker)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        chunk = np.array([c for order in protocol.orders for c in order], dtype=np.int64)
        by_chunk = np.argsort(chunk, kind="stable")
        counts = np.bincount(chunk, minlength=chunks)
        rank = np.arange(len(chunk)) - np.repeat(np.cumsum(counts) - counts, counts)
        width = max(1, int(counts.max(initial=0)))
        self.holder_worker = np.full((chunks, width), -1, dtype=np.int64)
        self.holder_step = np.zeros((chunks, width), dtype=np.int64)
        self.holder_worker[chunk[by_chunk], rank] = worker[by_chunk]
        self.holder_step[chunk[by_chunk], rank] = step[by_chunk]
        self.padding = self.holder_worker < 0
        self.holder_key = ("held", self.shape_key, self.holder_worker.tobytes(),
                           self.holder_step.tobytes())  # fmt: skip

    def per_chunk(self, block: _Block) -> tuple[np.ndarray, np.ndarray]:
        """(held, first): completion times by chunk, (n, chunks, holders), +inf for padding and
        for what is never computed; and their minimum over holders, (n, chunks). Shared by the
        schemes of a block with the same holders (multi_message and partial_gc on one
        assignment)."""
        if self.holder_key not in block.cache:
            flat = self.masked(block)[1]
            pad = len(flat) - 1  # the +inf row
            rows = np.where(self.padding, pad, self.holder_worker * block.steps + self.holder_step)
            held = flat[rows].transpose(2, 0, 1)
            block.cache[self.holder_key] = (held, held.min(axis=2))
        return block.cache[self.holder_key]

    def known_lists(self, held: np.ndarray, copies: np.ndarray) -> list[list[int]]:
        """One trial's holders of each chunk in the order the PS learned of them (by
        completion time: reports all have one size) and cut to the first ``copies``."""
        order = np.argsort(held, axis=1, kind="stable")
        workers = np.take_along_axis(self.holder_worker, order, axis=1)
        return [list(map(int, workers[i, : copies[i]])) for i in range(workers.shape[0])]


class _MultiMessage(_Holders):
    def evaluate(self, block: _Block) -> _Rows:
        p, n = self.p, block.n
        done = self.times(block)
        d = self.delay(self.dim)
        # Uploads all have one size: a chunk's first arrival is its first completion.
        first_sent = self.per_chunk(block)[1]
        first_arrival = first_sent + d
        decoded = np.isfinite(first_sent).all(axis=1)
        stop = np.where(decoded, first_arrival.max(axis=1), INF)
        rows = _Rows.empty(n)
        rows.completion = stop
        rows.decoded = decoded
        rows.computed = self.count_until(done, stop)
        rows.messages = rows.computed  # every computed chunk is uploaded at once
        rows.upload = rows.messages * self.dim
        rows.used = np.where(decoded, p.chunks, 0)
        rows.cond = np.where(decoded, 1.0, np.nan)
        rows.residual = np.where(decoded, 0.0, np.nan)
        allowed = 1 if d == 0 else 0
        rows.suspect = decoded & (self.at(done, stop) > allowed)

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            chunk_order = np.lexsort((first_sent[t], first_arrival[t]))
            return np.sum([grads[c] for c in chunk_order], axis=0)

        rows.estimate = estimate
        return rows


def _coded(spec: cfg._Scheme, dim: int) -> tuple[int, int, float | None]:
    """(ell, floats per upload, deadline or None) of an original_gc or partial_gc scheme."""
    deadline = spec.deadline if spec.mode == "approximate" else None
    return spec.ell, block_length(dim, spec.ell), deadline


# --------------------------------------------------------------------------------------------
# original_gc: one coded upload after all chunks; any m - s decode, or least squares at T


class _Original(_Evaluator):
    def __init__(self, protocol: Protocol, exp: cfg.Experiment):
        super().__init__(protocol, exp)
        spec = protocol.spec
        self.ell, self.size, self.deadline = _coded(spec, self.dim)
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

    def evaluate(self, block: _Block) -> _Rows:
        p, n = self.p, block.n
        done = self.times(block)
        finish = np.ascontiguousarray(self.last(block))  # sorted per trial: one row each
        d = self.delay(self.size)
        arrival = finish + d
        order, tied = _arrival_order(arrival, finish)
        ranked = np.take_along_axis(arrival, order, axis=1)
        needed = p.needed
        sent = np.isfinite(finish).sum(axis=1)  # uploads that are ever sent
        if self.any_needed:
            enough = np.where(sent >= needed, needed, 0)
        else:
            enough = np.array([self.first_determined(order[t, : sent[t]]) for t in range(n)])
        last_needed = np.take_along_axis(ranked, np.maximum(enough, 1)[:, None] - 1, axis=1)
        exact_at = np.where(enough > 0, last_needed[:, 0], INF)
        rows = _Rows.empty(n)
        if self.deadline is None:
            exact = decoded = np.isfinite(exact_at)
            stop = exact_at
        else:
            exact = exact_at <= self.deadline
            decoded = np.ones(n, dtype=bool)
            stop = np.where(exact, exact_at, self.deadline)
        rows.completion = stop
        rows.decoded = decoded
        rows.messages = self.sent_by(finish, stop)
        rows.upload = rows.messages * self.size
        rows.computed = self.count_until(done, stop)
        allowed = 1 if d == 0 else 0
        # At an exact decode, what was sent by then depends on order; at the deadline all
        # events at T happen first (inclusive), so only the order of the uploads matters.
        rows.suspect = decoded & tied | exact & (self.at(done, stop) > allowed)
        count = np.where(exact, enough, np.count_nonzero(ranked <= stop[:, None], axis=1))
        rows.used = np.where(decoded, count * p.spec.load, 0)
        solve = decoded & ~exact  # least squares on what arrived by T
        if self.any_needed:
            rows.residual = np.where(exact, 0.0, rows.residual)
            if p.conditioning:
                rows.cond[exact] = self.exact_conditions(order[exact, :needed])
        else:
            solve = decoded
        for t in np.nonzero(solve)[0]:
            _, condition, left = self.decoder(tuple(int(w) for w in order[t, : count[t]]))
            rows.cond[t] = condition
            rows.residual[t] = left
        orders, ell = p.orders, self.ell

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            workers = tuple(int(w) for w in order[t, : count[t]])
            combination, _, _ = self.decoder(workers)
            blocks = split_blocks(grads, ell)
            payloads = [
                np.einsum("ck,ckb->b", p.encoder[w, orders[w]], blocks[orders[w]]) for w in workers
            ]
            uploads = np.array(payloads).reshape(len(workers), blocks.shape[2])
            return join_blocks(combination @ uploads, p.dim)

        rows.estimate = estimate
        return rows


# --------------------------------------------------------------------------------------------
# partial_gc: control message per chunk; plan when every chunk has ell copies (or at T)


class _Partial(_Holders):
    def __init__(self, protocol: Protocol, exp: cfg.Experiment):
        super().__init__(protocol, exp)
        spec = protocol.spec
        self.ell, self.size, self.deadline = _coded(spec, self.dim)
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

    def evaluate(self, block: _Block) -> _Rows:
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
            covered_at = _second_smallest(held)
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
        copies = _per_worker(known).astype(np.int64)  # r_i, (n, chunks)
        per_worker = _per_worker(known_pos).astype(np.int64)  # chunks each worker is asked for
        net = self.network

        def download_at(asked: np.ndarray, sent: np.ndarray) -> np.ndarray:
            """When a download sent at ``sent`` that asks for ``asked`` chunks arrives."""
            return sent + (net.latency + (ell * asked) * net.time_per_float)

        # The more chunks a download asks for, the later it (and the upload answering it)
        # arrives: the last upload answers the largest download.
        most = per_worker.max(axis=1)
        stop = np.where(most > 0, download_at(most, plan_time) + d_upload, plan_time)
        stop = np.where(decoded, stop, INF)
        rows = _Rows.empty(n)
        rows.completion = stop
        rows.decoded = decoded
        rows.computed = self.count_until(done, stop)
        rows.control = rows.computed  # every finished chunk is reported at once
        used = copies.sum(axis=1).astype(np.int64)
        rows.used = np.where(decoded, used, 0)
        rows.download = np.where(decoded, ell * used, 0)
        rows.messages = np.where(decoded, np.count_nonzero(per_worker, axis=1), 0).astype(np.int64)
        rows.upload = rows.messages * self.size
        short = np.maximum(0, ell - copies).sum(axis=1)
        rows.residual = np.where(decoded, short.astype(float), np.nan)
        if p.conditioning:
            rows.cond = np.where(decoded, self.worst_conditions(held, known, copies), np.nan)
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
        decoder = p.decoder

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            known_t = self.known_lists(held[t], copies[t])
            coefs = coefficients(decoder, known_t)
            by_worker: dict[int, tuple[list[int], list[np.ndarray]]] = {}
            for chunk, workers in enumerate(known_t):
                for position, worker in enumerate(workers):
                    chunks, rows_of_a = by_worker.setdefault(worker, ([], []))
                    chunks.append(chunk)
                    rows_of_a.append(coefs[chunk][position])
            blocks = split_blocks(grads, ell)
            # Uploads reach the PS by arrival; ties in the order downloads were processed,
            # which is by download arrival, then by worker (the order they were sent).
            down_at = download_at(per_worker[t], plan_time[t])
            up_at = down_at + d_upload
            order = sorted(by_worker, key=lambda w: (up_at[w], down_at[w], w))
            total = np.zeros((ell, blocks.shape[2]))
            for worker in order:
                chunks, rows_of_a = by_worker[worker]
                vector = np.einsum("ck,ckb->b", np.array(rows_of_a), blocks[chunks])
                total += np.outer(decoder[:, worker], vector)
            return join_blocks(total, p.dim)

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
            matrices, which = _distinct(workers[pick, :size], self.m)
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


def _distinct(rows: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, index of each row among them) of small non-negative integers below
    ``base``: the SVD of a matrix is taken once however many trials share it (at m = 20, 8,000
    candidates were 80 matrices). Each row is keyed by one integer, when that fits in int64."""
    if rows.shape[1] * math.log2(max(base, 2)) > 62:
        return rows, np.arange(len(rows))
    keys = rows @ base ** np.arange(rows.shape[1], dtype=np.int64)
    _, first, which = np.unique(keys, return_index=True, return_inverse=True)
    return rows[first], which


def _second_smallest(values: np.ndarray) -> np.ndarray:
    """The second smallest along the last axis (counting repeats, as a partition does), by
    np.minimum and np.maximum over its columns: branch-free, where a masked minimum was one
    of the slowest steps at small m."""
    low = np.minimum(values[..., 0], values[..., 1])
    second = np.maximum(values[..., 0], values[..., 1])
    for r in range(2, values.shape[-1]):
        column = values[..., r]
        np.minimum(second, np.maximum(low, column), out=second)
        np.minimum(low, column, out=low)
    return second


_EVALUATORS: dict[str, type[_Evaluator]] = {
    "uncoded": _Split,
    "fastest_k": _Split,
    "frc": _FRC,
    "multi_message": _MultiMessage,
    "original_gc": _Original,
    "partial_gc": _Partial,
}


# --------------------------------------------------------------------------------------------
# Running


def run_trials_fast(
    exp: cfg.Experiment,
    first: int,
    count: int,
    progress: Callable[[int], None] | None = None,
    protocols: list[Protocol] | None = None,
) -> pd.DataFrame:
    """Summary rows of trials ``first .. first+count-1``: the same rows, order, columns and
    dtypes as ``runner.run_trials(exp, first, count)[0]``; ``progress(n)`` is told of finished
    trials; ``protocols``: ``build(exp)`` made already (planned once for several ranges).
    Raises ``ConfigError`` with ``fast_problems`` when the fast engine would not be exact."""
    problems = fast_problems(exp)
    if problems:
        raise cfg.ConfigError(problems)
    return _run(exp, first, count, progress, protocols)


def _run(
    exp: cfg.Experiment,
    first: int,
    count: int,
    progress: Callable[[int], None] | None = None,
    protocols: list[Protocol] | None = None,
) -> pd.DataFrame:
    from ..runner import SUMMARY_COLUMNS  # the runner imports this module: no cycle at load

    protocols = build(exp) if protocols is None else protocols
    cluster = Cluster(exp, steps=max(p.steps for p in protocols))
    evaluators = [_EVALUATORS[p.name](p, exp) for p in protocols]
    parts: list[dict[str, np.ndarray]] = []
    start, stop = first, first + count
    # Draws do not depend on how a range is cut, so trials are evaluated together in slices
    # (see _SLICE_ELEMENTS): several realization blocks at once for small clusters (NumPy's
    # per-call overhead is paid once), part of one block for large ones.
    numbers = cluster.workers * cluster.steps  # per trial, in a (trials, m, steps) array
    per_slice = max(
        1, _SLICE_ELEMENTS // numbers, min(_SLICE_TRIALS, _SLICE_MAX_ELEMENTS // numbers)
    )
    blocks = max(1, per_slice // TRIAL_BLOCK)
    while start < stop:
        end = min((start // TRIAL_BLOCK + blocks) * TRIAL_BLOCK, stop)
        # One draw per realization block: drawing the range at once concatenates the blocks,
        # a copy of every step time that _block makes anyway.
        cuts = [start, *range((start // TRIAL_BLOCK + 1) * TRIAL_BLOCK, end, TRIAL_BLOCK), end]
        draws = [cluster.draw(lo, hi - lo) for lo, hi in zip(cuts, cuts[1:], strict=False)]
        for lo in range(start, end, per_slice):
            pieces = _cut(draws, lo, min(end, lo + per_slice))
            parts.append(_run_block(exp, protocols, evaluators, pieces))
            if progress is not None:
                progress(sum(piece.trials for piece in pieces))
        start = end
    data = {}
    for column, dtype in SUMMARY_COLUMNS.items():
        if column == "scheme":
            data[column] = _repeated([p.label for p in protocols], count)
        elif column == "protocol":
            data[column] = _repeated([p.name for p in protocols], count)
        elif column == "trial":
            data[column] = np.repeat(np.arange(first, stop, dtype=np.int64), len(protocols))
        elif parts:
            data[column] = np.concatenate([part[column] for part in parts])
        else:
            data[column] = np.empty(0, dtype=dtype)
    return pd.DataFrame(data, columns=list(SUMMARY_COLUMNS))


def _repeated(labels: list[str], count: int) -> pd.api.extensions.ExtensionArray:
    """``labels`` repeated ``count`` times as the runner's string column ("str"): taken from a
    short string array, where converting one Python string per row cost milliseconds."""
    return pd.array(labels, dtype="str").take(np.tile(np.arange(len(labels)), count))


def _cut(draws: list[Realization], lo: int, hi: int) -> list[Realization]:
    """The parts of consecutive realizations that hold trials ``lo .. hi-1``."""
    pieces = []
    for draw in draws:
        a, b = max(lo, draw.first), min(hi, draw.first + draw.trials)
        if a < b:
            pieces.append(_slice(draw, a - draw.first, b - draw.first))
    return pieces


def _slice(realization: Realization, lo: int, hi: int) -> Realization:
    if lo == 0 and hi == realization.trials:
        return realization
    return Realization(
        first=realization.first + lo,
        step_times=realization.step_times[lo:hi],
        down=realization.down[lo:hi],
        crash_time=realization.crash_time[lo:hi],
    )


def _run_block(
    exp: cfg.Experiment,
    protocols: list[Protocol],
    evaluators: list[_Evaluator],
    pieces: list[Realization],
) -> dict[str, np.ndarray]:
    block = _block(pieces)
    n, schemes = block.n, len(protocols)
    results = [ev.evaluate(block) for ev in evaluators]
    table = {
        "completion_time": np.stack([r.completion for r in results], axis=1).astype(float),
        "decoded": np.stack([r.decoded for r in results], axis=1),
        "rel_error": np.full((n, schemes), np.nan),
        "upload_floats": np.stack([r.upload for r in results], axis=1),
        "download_floats": np.stack([r.download for r in results], axis=1),
        "messages": np.stack([r.messages for r in results], axis=1),
        "control_messages": np.stack([r.control for r in results], axis=1),
        "chunks_computed": np.stack([r.computed for r in results], axis=1),
        "chunks_used": np.stack([r.used for r in results], axis=1),
        "decode_cond": np.stack([r.cond for r in results], axis=1).astype(float)
        if exp.output.decode_cond
        else np.full((n, schemes), np.nan),
        "residual": np.stack([r.residual for r in results], axis=1).astype(float),
    }
    replay = np.stack([r.suspect for r in results], axis=1) | block.stalled[:, None]
    numerics = exp.data.gradients != "none"
    for t in np.nonzero(replay.any(axis=1) | numerics)[0] if n else []:
        trial = block.first + int(t)
        grads = gradients(exp, trial)
        truth = None if grads is None else grads.sum(axis=0)
        draw = block.trial(trial)
        for s, (protocol, result) in enumerate(zip(protocols, results, strict=True)):
            if replay[t, s]:
                _replay(exp, protocol, draw, grads, truth, table, t, s)
            elif truth is not None and result.decoded[t]:
                table["rel_error"][t, s] = rel_error(result.estimate(int(t), grads), truth)
    return {column: values.reshape(-1) for column, values in table.items()}


def _replay(
    exp: cfg.Experiment,
    protocol: Protocol,
    draw: TrialDraw,
    grads: np.ndarray | None,
    truth: np.ndarray | None,
    table: dict[str, np.ndarray],
    t: int,
    s: int,
) -> None:
    """One (scheme, trial) by the event engine, exactly as ``runner`` does it, into the table."""
    from ..runner import SUMMARY_COLUMNS, simulate_row

    row = simulate_row(exp, protocol, draw, grads, truth)
    values = dict(zip(SUMMARY_COLUMNS, row, strict=True))
    for key in ("scheme", "protocol", "trial"):
        del values[key]
    for column, value in values.items():
        table[column][t, s] = value
