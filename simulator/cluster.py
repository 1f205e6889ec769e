"""The random cluster: compute times, fail-stop failures and crashes, drawn once per trial.

A realization is shared by every scheme of a run (common random numbers): worker j's k-th chunk
computation takes ``step_times[t, j, k]`` whatever chunk it is and whatever scheme runs, so scheme
comparisons are paired trial by trial. Draws are made in blocks of ``TRIAL_BLOCK`` trials, each
block from its own named stream, so any split of a run on block boundaries gives the same numbers.
With ``per: chunk`` every step k has its own stream: a scheme with a larger load only reads more
steps, it never changes the steps a smaller load reads.

A block is drawn in two layers: the configured distribution (``compute/``, one model per
``dist``) draws every time, then a ``WorkerStates`` model multiplies each (trial, worker) by a
factor. Today's is ``IndependentWorkers`` (the configured slowdowns, no state); a model of
persistent stragglers plugs in there (see ``WorkerStates`` for the rule that keeps blocks
independent).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import ConfigError
from .streams import TRIAL_BLOCK, generator

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
    """The seam for a model of each worker's state: per-(trial, worker) factors multiplying the
    compute times the distribution drew for a block (a state that persists, a slowdown that
    drifts, a two-state straggler chain...).

    ``factors(block, trials)`` gives the factors of trials ``block * TRIAL_BLOCK`` onwards,
    shape (trials, workers), or (1, workers) when every trial has the same ones. It must be a
    function of the block alone (no state carried between calls), so that any range of trials
    can still be drawn on its own, by any process, in any order. A model whose state evolves
    over trials keeps that property by keying its random streams by block
    (``streams.generator(seed, "<its name>", block)``) and starting each block's chain afresh
    from a law that does not depend on earlier blocks (its stationary distribution, drawn from
    that block's stream); a model of state carried over the iterations of one training run
    keeps it by making the iterations an axis within a trial, never across trials.
    """

    def factors(self, block: int, trials: int) -> np.ndarray: ...


@dataclass(frozen=True)
class IndependentWorkers:
    """No state: trials are independent, and worker j's times are multiplied by its configured
    ``slowdown`` factor in every trial."""

    slowdown: np.ndarray  # (workers,)

    def factors(self, block: int, trials: int) -> np.ndarray:
        return self.slowdown[None, :]


class Cluster:
    """Draws realizations for an experiment; ``steps`` is how many chunk computations any
    worker of any scheme may need."""

    def __init__(self, exp: Experiment, steps: int):
        self.exp = exp
        self.workers = exp.cluster.workers
        self.steps = steps
        self.sampler = exp.cluster.compute.sampler(exp.source_dir)
        slowdown = exp.cluster.slowdown or [1.0] * self.workers
        self.states: WorkerStates = IndependentWorkers(np.asarray(slowdown, dtype=float))
        self.fixed_down = np.zeros(self.workers, dtype=bool)
        self.fixed_down[list(exp.cluster.failures.workers)] = True

    def draw(self, first: int, count: int) -> Realization:
        """Realization of trials ``first .. first+count-1`` (any range; blocks are internal)."""
        blocks = range(first // TRIAL_BLOCK, (first + count - 1) // TRIAL_BLOCK + 1)
        parts = [self._draw_block(b) for b in blocks]
        lo = first - blocks[0] * TRIAL_BLOCK
        cut = slice(lo, lo + count)
        return Realization(
            first=first,
            step_times=np.concatenate([p[0] for p in parts])[cut],
            down=np.concatenate([p[1] for p in parts])[cut],
            crash_time=np.concatenate([p[2] for p in parts])[cut],
        )

    def _draw_block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seed, n, m = self.exp.seed, TRIAL_BLOCK, self.workers
        if self.exp.cluster.compute.per == "worker":
            per_worker = self.sampler.draw(generator(seed, "compute", block), (n, m))
            times = np.repeat(per_worker[:, :, None], self.steps, axis=2)
        else:
            times = np.empty((n, m, self.steps))
            for k in range(self.steps):
                times[:, :, k] = self.sampler.draw(generator(seed, "compute", block, k), (n, m))
        factors = self.states.factors(block, n)
        with np.errstate(over="ignore"):  # an overflow is reported just below, by its key
            times *= factors[:, :, None]
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


def gradients(exp: Experiment, trial: int) -> np.ndarray | None:
    """The per-chunk gradients g_i of one trial (chunks x dim), or None when numerics are off."""
    if exp.data.gradients == "none":
        return None
    return generator(exp.seed, "gradients", trial).standard_normal((exp.chunks, exp.data.dim))
