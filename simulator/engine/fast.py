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
atoms (deterministic, empirical) tie all the time: ``engine/choice.py`` runs such schemes on
the event engine unless their protocol declares itself insensitive to ties (``tags.tie_safe``).

This module is the protocol-agnostic machinery: the block of completion times, masks and
chunk-holder indices, counting helpers, the arrival order, the slices a range is cut into and
the replay of tied trials. Each protocol's formulas live in its own module, as an ``Evaluator``
subclass its ``Protocol.evaluator`` returns; it names no protocol.

Numbers (``rel_error``, ``decode_cond``, ``residual`` of least-squares decoders) come from the
same protocol objects and decoders the event engine calls, on the same matrices in the same
order, so they agree by construction. What is vectorised is batched SVDs of the same matrices
(original_gc's condition numbers, asked of the protocol once per distinct set of uploaders;
partial_gc's, where a closed form first picks the chunks whose SVD can be the largest).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..cluster import Cluster, Realization, TrialDraw
from ..coding.base import Protocol
from ..coding.numerics import rel_error
from ..schema import ENGINE_SUMMARY, ENGINE_SUMMARY_COLUMNS
from ..statistics import accurate
from ..streams import TRIAL_BLOCK
from .des import simulate_row
from .numbers import GradientSource, source_of

if TYPE_CHECKING:
    from ..config import Experiment

#: Trials evaluated together (a slice) are cut so that one (trials, m, steps) array holds
#: about this many numbers (1 MiB of floats, so a scheme's arrays stay in cache: about 1.5x
#: faster at m = 20 and 200 than slices of 2**20 numbers) ...
_SLICE_ELEMENTS = 2**17
#: ... but at least this many trials (the trial axis is NumPy's inner loop; fewer trials made
#: large clusters slower) ...
_SLICE_TRIALS = 128
#: ... and never more than this many numbers, so peak memory stays bounded.
_SLICE_MAX_ELEMENTS = 2**20

INF = math.inf

# --------------------------------------------------------------------------------------------
# The block: what every protocol reads


@dataclass
class Block:
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
    cache: dict = field(default_factory=dict)  # per scheme shape: see Evaluator.masked

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


def make_block(pieces: list[Realization]) -> Block:
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
    return Block(pieces, flat, done, live, stalled)


class Rows:
    """One scheme's result columns over a block, by name (``schema.SUMMARY``, after the three
    that identify a row), plus which trials to replay on the event engine (``suspect``) and how
    to decode one trial (``estimate(trial index, grads)``). Every column starts at its schema
    ``fill`` (the dtype's zero where none); an evaluator sets what its formulas give."""

    def __init__(self, n: int):
        self.columns: dict[str, np.ndarray] = {
            c.name: np.full(n, 0 if c.fill is None else c.fill, dtype=_DTYPES[c.dtype])
            for c in ENGINE_SUMMARY[3:]
        }
        self.suspect = np.zeros(n, dtype=bool)
        self.estimate: Callable[[int, np.ndarray], np.ndarray] | None = None

    def __getitem__(self, column: str) -> np.ndarray:
        return self.columns[column]

    def __setitem__(self, column: str, values: np.ndarray) -> None:
        if column not in self.columns:
            raise KeyError(f"{column!r} is not a summary column (simulator/schema.py)")
        self.columns[column] = values


_DTYPES = {"bool": bool, "int64": np.int64, "float64": float}


class Evaluator:
    """A protocol's formulas. Subclasses (in the protocol's module) fill ``Rows`` for a block."""

    def __init__(self, protocol: Protocol, exp: Experiment):
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

    def masked(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
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

    def times(self, block: Block) -> np.ndarray:
        """(n, m, steps) completion times, +inf where nothing is computed (down worker, no
        such step)."""
        return self.masked(block)[0]

    def last(self, block: Block) -> np.ndarray:
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
        return per_worker(done <= bound).sum(axis=1, dtype=np.int64)

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
        return per_worker(done == when[:, None, None]).sum(axis=1, dtype=np.int64)

    def evaluate(self, block: Block) -> Rows:
        raise NotImplementedError


def per_worker(mask: np.ndarray) -> np.ndarray:
    """How many of ``mask[t, j, :]`` are true, (n, m), in the smallest unsigned type that holds
    the count: on trials-last arrays, summing bools into int64 cost 2-3x the comparison that
    made them. Convert before doing arithmetic with the result."""
    return mask.sum(axis=2, dtype=np.min_scalar_type(mask.shape[2]))


def arrival_order(arrival: np.ndarray, sent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The PS's processing order of one message per worker: by arrival, ties by sending time
    (a message sent earlier was scheduled earlier). Returns (order, suspect): suspect where
    two messages tie in both (their order would be SimPy's scheduling order of the senders)."""
    order = np.lexsort((sent, arrival), axis=-1)
    a = np.take_along_axis(arrival, order, axis=-1)
    s = np.take_along_axis(sent, order, axis=-1)
    both = (a[..., 1:] == a[..., :-1]) & (s[..., 1:] == s[..., :-1]) & np.isfinite(a[..., 1:])
    return order, both.any(axis=-1)


# --------------------------------------------------------------------------------------------
# Chunk holders: for protocols whose PS tracks who computed each chunk


class Holders(Evaluator):
    """Index arrays from chunks to the (worker, step) positions that compute them."""

    def __init__(self, protocol: Protocol, exp: Experiment):
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

    def per_chunk(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """(held, first): completion times by chunk, (n, chunks, holders), +inf for padding and
        for what is never computed; and their minimum over holders, (n, chunks). Shared by the
        schemes of a block with the same holders (two schemes on one assignment)."""
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


def distinct(rows: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, index of each row among them) of small non-negative integers below
    ``base``: the SVD of a matrix is taken once however many trials share it (at m = 20, 8,000
    candidates were 80 matrices). Each row is keyed by one integer, when that fits in int64."""
    if rows.shape[1] * math.log2(max(base, 2)) > 62:
        return rows, np.arange(len(rows))
    keys = rows @ base ** np.arange(rows.shape[1], dtype=np.int64)
    _, first, which = np.unique(keys, return_index=True, return_inverse=True)
    return rows[first], which


def second_smallest(values: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# Running


def run_trials_fast(
    exp: Experiment,
    first: int,
    count: int,
    protocols: list[Protocol],
    progress: Callable[[int], None] | None = None,
    source: GradientSource | None = None,
) -> pd.DataFrame:
    """Summary rows of rounds ``first .. first+count-1`` (a round is one iteration of a trial,
    ``cluster.Cluster``; the ``trial`` column holds it) of ``protocols`` (planned by
    ``registry.build``; a subset of the run's schemes, in config order, when the others run on
    the event engine): the same rows, order, columns and dtypes as the event engine's
    (``runner.run_trials``). ``progress(n)`` is told of finished trials. The caller checks
    that the fast engine is exact for these schemes (``engine.choice``). ``source``: where the
    gradients come from (``engine/numbers.py``; the config's by default)."""
    source = source_of(exp) if source is None else source
    evaluators = [p.evaluator(exp) for p in protocols]
    cluster = Cluster(exp, steps=max(p.steps for p in protocols))
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
        # a copy of every step time that make_block makes anyway.
        cuts = [start, *range((start // TRIAL_BLOCK + 1) * TRIAL_BLOCK, end, TRIAL_BLOCK), end]
        draws = [cluster.draw(lo, hi - lo) for lo, hi in zip(cuts, cuts[1:], strict=False)]
        for lo in range(start, end, per_slice):
            pieces = _cut(draws, lo, min(end, lo + per_slice))
            parts.append(_run_block(exp, protocols, evaluators, pieces, source))
            if progress is not None:
                progress(sum(piece.trials for piece in pieces))
        start = end
    data = {}
    for column, dtype in ENGINE_SUMMARY_COLUMNS.items():
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
    return pd.DataFrame(data, columns=list(ENGINE_SUMMARY_COLUMNS))


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
    exp: Experiment,
    protocols: list[Protocol],
    evaluators: list[Evaluator],
    pieces: list[Realization],
    source: GradientSource,
) -> dict[str, np.ndarray]:
    block = make_block(pieces)
    n = block.n
    results = [ev.evaluate(block) for ev in evaluators]
    for protocol, result in zip(protocols, results, strict=True):
        if not protocol.conditioning:  # also where it is free (1.0): "not computed", uniformly
            result["decode_cond"] = np.full(n, np.nan)
    table = {
        column.name: np.stack([r[column.name] for r in results], axis=1).astype(column.dtype)
        for column in ENGINE_SUMMARY[3:]
    }
    replay = np.stack([r.suspect for r in results], axis=1) | block.stalled[:, None]
    # Rounds in order, each scheme's in order: a training source carries state over them.
    for t in np.nonzero(replay.any(axis=1) | source.active)[0] if n else []:
        round_ = block.first + int(t)
        draw = block.trial(round_)
        for s, (protocol, result) in enumerate(zip(protocols, results, strict=True)):
            grads, truth = source.get(round_, protocol)
            estimate = None
            if replay[t, s]:
                row = simulate_row(exp, protocol, draw, grads, truth)
                for column in table:
                    table[column][t, s] = row[column]
                estimate = row["estimate"]
            elif truth is not None and result["decoded"][t]:
                estimate = result.estimate(int(t), grads)
                table["rel_error"][t, s] = rel_error(estimate, truth)
            source.done(round_, protocol, estimate, float(table["completion_time"][t, s]))
    columns = (table[c] for c in ("decoded", "rel_error", "residual", "decode_cond"))
    table["accurate"] = accurate(*columns, exp.data.tolerance)  # as des.simulate_row
    return {column: values.reshape(-1) for column, values in table.items()}
