"""The random cluster: compute times, fail-stop failures and crashes, drawn once per trial.

A realization is shared by every scheme of a run (common random numbers): worker j's k-th chunk
computation takes ``step_times[t, j, k]`` whatever chunk it is and whatever scheme runs, so scheme
comparisons are paired trial by trial. Draws are made in blocks of ``TRIAL_BLOCK`` trials (of
whole trials of about that many rounds with ``iterations``: ``Cluster``), each
block from its own named stream, so any split of a run on block boundaries gives the same numbers.
With ``per: chunk`` every step k has its own stream: a scheme with a larger load only reads more
steps, it never changes the steps a smaller load reads.

A block is drawn in three layers: each worker's compute law (``compute/``; one for all, or
one per group) draws every time, then ``WorkerStates`` models multiply each (trial, iteration,
worker) by a factor (slowdowns, slow racks, a straggler chain: ``workers.py``; see
``WorkerStates`` for the rule that keeps blocks independent), then a load-independent delay is
added to each worker's first chunk.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import ConfigError
from .streams import block_trials, generator

if TYPE_CHECKING:
    from .config import Experiment


@dataclass(frozen=True)
class Realization:
    """Draws for trials ``first .. first + n - 1``."""

    first: int
    step_times: np.ndarray  # (n, workers, steps): time of a worker's k-th chunk computation
    down: np.ndarray  # (n, workers) bool: fail-stop, never starts
    crash_time: np.ndarray  # (n, workers): when a live worker crashes (inf: never)

    @property
    def trials(self) -> int:
        return self.down.shape[0]

    def trial(self, index: int) -> TrialDraw:
        t = index - self.first
        return TrialDraw(index, self.step_times[t], self.down[t], self.crash_time[t])


@dataclass(frozen=True)
class TrialDraw:
    """One trial's realization, as the engines consume it."""

    trial: int
    step_times: np.ndarray  # (workers, steps)
    down: np.ndarray  # (workers,)
    crash_time: np.ndarray  # (workers,)

    @functools.cached_property
    def lists(self) -> tuple[list[list[float]], list[bool], list[float]]:
        """(step_times, down, crash_time) as Python lists, the event engine's clock values:
        converted once per trial, shared by every scheme."""
        return self.step_times.tolist(), self.down.tolist(), self.crash_time.tolist()


class WorkerStates(Protocol):
    """The seam for a model of each worker's state: per-(trial, iteration, worker) factors
    multiplying the compute times the distributions drew for a block (a fixed slowdown, a
    random slow set per trial, slow racks, a two-state straggler chain: ``workers.py``).

    ``factors_of(block)`` gives the factors of the block's trials, one row per (trial,
    iteration), trial-major, shape (block_trials(N) * N, workers), or (1, workers) when
    every trial has the same ones. It must be a function of the block alone (no state carried
    between calls), so that any range of trials can still be drawn on its own, by any process,
    in any order: a model keys its random streams by block (``streams.generator(seed,
    "<its name>", block)``), starts each trial's state afresh from a law that does not depend on
    earlier trials (a chain's stationary law), and carries state only over the iterations of a
    trial, which lie inside the block.
    """

    def factors_of(self, block: int) -> np.ndarray: ...


class Cluster:
    """Draws realizations for an experiment; ``steps`` is how many chunk computations any
    worker of any scheme may need.

    With ``iterations: N`` a trial is N iterations, and the engines see one row per (trial,
    iteration), a *round*: round ``trial * N + i``. ``draw`` takes rounds; blocks are
    ``streams.block_trials(N)`` whole trials (about ``TRIAL_BLOCK`` rounds), so a trial's
    iterations are drawn together (a straggler chain is carried over them), memory does not
    grow with N, and N = 1 draws what it always drew."""

    def __init__(self, exp: Experiment, steps: int):
        from .workers import factor_models, laws

        self.exp = exp
        self.workers = exp.cluster.workers
        self.steps = steps
        self.iterations = exp.iterations
        self.laws = [
            (first, count, law.per, law.sampler(exp.source_dir))
            for _, law, first, count in laws(exp.cluster)
        ]
        delay = exp.cluster.delay
        self.delay = None if delay is None else delay.sampler(exp.source_dir)
        self.states: list[WorkerStates] = factor_models(exp.cluster, exp.seed, self.iterations)
        self.fixed_down = np.zeros(self.workers, dtype=bool)
        self.fixed_down[list(exp.cluster.failures.workers)] = True
        self._last: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def draw(self, first: int, count: int) -> Realization:
        """Realization of rounds ``first .. first+count-1`` (any range; blocks are internal)."""
        size = block_trials(self.iterations) * self.iterations
        blocks = range(first // size, (first + count - 1) // size + 1)
        parts = [self._block(b) for b in blocks]
        lo = first - blocks[0] * size
        cut = slice(lo, lo + count)
        if len(parts) == 1:
            times, down, crash = parts[0]
        else:
            times, down, crash = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return Realization(first=first, step_times=times[cut], down=down[cut],
                           crash_time=crash[cut])  # fmt: skip

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One block's draws; the last one is kept, as the engines ask for a block's rounds
        in several slices when a trial has many iterations."""
        if self._last is None or self._last[0] != block:
            self._last = None  # the old block goes before the new one is drawn
            self._last = (block, self._draw_block(block))
        return self._last[1]

    def _draw_block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seed, m = self.exp.seed, self.workers
        n = block_trials(self.iterations) * self.iterations
        single = len(self.laws) == 1
        times = np.empty((n, m, self.steps))
        for g, (lo, width, per, sampler) in enumerate(self.laws):
            # One law for every worker: the streams of a homogeneous cluster, as they always
            # were; with groups, each group's streams are keyed by its place in the list.
            key = ("compute", block) if single else ("compute", "group", g, block)
            part = times[:, lo : lo + width]
            if per == "worker":
                part[:] = sampler.draw(generator(seed, *key), (n, width))[:, :, None]
            else:
                for k in range(self.steps):
                    part[:, :, k] = sampler.draw(generator(seed, *key, k), (n, width))
        factors = self._factors(block)
        if factors is not None:
            with np.errstate(over="ignore"):  # an overflow is reported just below, by its key
                times *= factors[:, :, None]
        if self.delay is not None:
            times[:, :, 0] += self.delay.draw(generator(seed, "delay", block), (n, m))
        if not np.isfinite(times).all():  # finite parameters whose draws overflow float64
            raise ConfigError(
                [("cluster.compute", "draws times that overflow float64 (inf or NaN); use "
                  "smaller times or slowdowns (or larger rates)")]
            )  # fmt: skip

        failures = self.exp.cluster.failures
        down = generator(seed, "down", block).random((n, m)) < failures.prob
        down |= self.fixed_down[None, :]
        if failures.crash_rate > 0:
            crash = generator(seed, "crash", block).exponential(1.0 / failures.crash_rate, (n, m))
        else:
            crash = np.full((n, m), np.inf)
        return times, down, crash

    def _factors(self, block: int) -> np.ndarray | None:
        """The product of every state model's factors (None: all 1)."""
        product = None
        for model in self.states:
            factors = model.factors_of(block)
            product = factors if product is None else product * factors
        return product


def gradients(exp: Experiment, trial: int) -> np.ndarray | None:
    """The per-chunk gradients g_i of one trial (chunks x dim), or None when numerics are off."""
    if exp.data.gradients == "none":
        return None
    return generator(exp.seed, "gradients", trial).standard_normal((exp.chunks, exp.data.dim))
