"""How workers differ from one another and over time: the config of a heterogeneous cluster
and the per-worker factors it multiplies compute times by.

- ``groups``: workers in groups with their own compute law (two instance types, a bad batch);
  a group has a ``count``, a ``fraction`` of the cluster, or neither (it takes the rest), so
  a sweep over ``cluster.workers`` keeps the same mix.
- ``slowdown``: fixed factors, in three forms: a list with one factor per worker, a mapping
  ``{worker: factor}`` (unlisted workers: 1), or a ``fraction`` of the workers slowed by a
  ``factor``, picked at random once per run (``pick: fixed``) or afresh in every trial
  (``pick: per_trial``). The last two survive a sweep over ``cluster.workers``.
- ``racks``: consecutive workers share a rack, and a slow rack (probability ``prob`` per
  trial) slows all its workers by ``factor`` (a bad switch, a noisy neighbour).
- ``stragglers``: a two-state (normal/slow) Markov chain per worker over the iterations of a
  trial; a slow worker's times are multiplied by ``factor``. The chain starts from its
  stationary law, so with ``iterations: 1`` it is an independent straggler with probability
  ``p_slow / (p_slow + p_recover)``.
- ``delay``: a load-independent delay per worker and iteration (start-up, a pause), drawn from
  any compute law and added to the worker's first chunk, so it does not scale with its load
  (ErasureHead's injected delays).

Every random factor is drawn per realization block of trials (``streams.block_trials``) from a
stream of its own, with the iterations of a trial inside the block (``cluster.WorkerStates``):
any range of trials is still drawn on its own, and every scheme sees the same states (common
random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from .compute.registry import Distribution
from .models import PositiveFloat, Strict
from .streams import block_trials, generator

if TYPE_CHECKING:
    from .compute.base import Dist

Probability = Annotated[float, Field(ge=0, le=1)]


class Group(Strict):
    """Workers that share a compute law. ``count`` or ``fraction`` (of ``cluster.workers``,
    rounded to the nearest worker) says how many; with neither, the group takes the workers the
    others leave (at most one such group). Groups take workers in the order they are listed."""

    count: Annotated[int, Field(ge=0)] | None = None
    fraction: Probability | None = None
    compute: Distribution

    @model_validator(mode="after")
    def _one_size(self) -> Group:
        if self.count is not None and self.fraction is not None:
            raise ValueError("give count or fraction, not both")
        return self


class SlowFraction(Strict):
    """A fraction of the workers (rounded to the nearest worker) slowed by ``factor``."""

    fraction: Probability
    factor: PositiveFloat
    pick: Literal["per_trial", "fixed"] = "per_trial"
    """per_trial: a fresh random set in every trial (kept for all its iterations); fixed: one
    random set drawn from the seed, the same in every trial."""


class Racks(Strict):
    """Workers 0..size-1 are rack 0, and so on; each rack is slow in a trial with probability
    ``prob`` (for all its iterations), multiplying its workers' times by ``factor``."""

    size: Annotated[int, Field(ge=1)]
    prob: Probability
    factor: PositiveFloat


class MarkovStragglers(Strict):
    """A two-state chain per worker, stepping once per iteration: normal -> slow with
    probability ``p_slow``, slow -> normal with ``p_recover``. Mean sojourns: 1/p_slow
    iterations normal, 1/p_recover slow."""

    model: Literal["markov"] = "markov"
    p_slow: Probability
    p_recover: Probability
    factor: PositiveFloat
    """What a slow worker's compute times are multiplied by."""

    def slow_fraction(self) -> float:
        """The stationary probability of being slow (0 when neither state is ever left)."""
        total = self.p_slow + self.p_recover
        return self.p_slow / total if total > 0 else 0.0


#: The forms of ``cluster.slowdown`` (see the module docstring).
Slowdown = list[PositiveFloat] | SlowFraction | dict[Annotated[int, Field(ge=0)], PositiveFloat]


def share(fraction: float, workers: int) -> int:
    """How many of ``workers`` a fraction names: the nearest count (halves round up)."""
    return int(np.floor(fraction * workers + 0.5))


def laws(cluster) -> list[tuple[str, Dist, int, int]]:
    """(config key, law, first worker, workers) of each run of workers sharing a compute law,
    in worker order; groups first, then ``cluster.compute`` for any workers they leave.
    Assumes ``problems`` found nothing."""
    m, out, first = cluster.workers, [], 0
    sizes = group_sizes(cluster)
    for i, (group, size) in enumerate(zip(cluster.groups, sizes, strict=True)):
        if size:
            out.append((f"cluster.groups.{i}.compute", group.compute, first, size))
        first += size
    if first < m:
        out.append(("cluster.compute", cluster.compute, first, m - first))
    return out


def group_sizes(cluster) -> list[int]:
    """Workers in each group, the rest-taking group given what the others leave (>= 0)."""
    m = cluster.workers
    fixed = [
        g.count if g.count is not None else share(g.fraction, m) if g.fraction is not None else None
        for g in cluster.groups
    ]
    taken = sum(size for size in fixed if size is not None)
    return [size if size is not None else max(m - taken, 0) for size in fixed]


def problems(cluster) -> list[tuple[str, str]]:
    """What the types cannot say about how workers differ, one (key, message) per problem."""
    m, out = cluster.workers, []
    rests = [i for i, g in enumerate(cluster.groups) if g.count is None and g.fraction is None]
    if len(rests) > 1:
        out.append(
            (f"cluster.groups.{rests[1]}", "only one group may take the rest (no count or "
             "fraction); give this one a count or a fraction")
        )  # fmt: skip
    sizes = group_sizes(cluster)
    covered = sum(sizes)
    if cluster.groups and covered > m:
        out.append(
            ("cluster.groups", f"the groups hold {covered} workers but the cluster has {m} "
             "(cluster.workers); lower their counts or fractions")
        )  # fmt: skip
    elif covered < m and cluster.compute is None:
        what = f"the groups cover {covered} of {m} workers" if cluster.groups else "no law"
        out.append(
            ("cluster.compute", f"{what}: give cluster.compute for the other workers, or a "
             "group without count or fraction that takes the rest")
        )  # fmt: skip
    slowdown = cluster.slowdown
    if isinstance(slowdown, list) and slowdown and len(slowdown) != m:
        out.append(
            ("cluster.slowdown", f"expected one factor per worker ({m}), got {len(slowdown)}; "
             "a mapping {worker: factor} or {fraction: f, factor: x} survives a change of "
             "cluster.workers")
        )  # fmt: skip
    if isinstance(slowdown, dict):
        for worker in sorted(slowdown):
            if worker >= m:
                out.append(
                    (f"cluster.slowdown.{worker}", f"worker {worker} is not in the cluster "
                     f"(workers 0..{m - 1})")
                )  # fmt: skip
    if cluster.delay is not None and "per" in cluster.delay.model_fields_set:
        out.append(
            ("cluster.delay.per", "a delay is drawn once per worker and iteration; remove per")
        )
    return out


def slowest(cluster) -> float:
    """The largest factor any worker's times can be multiplied by (for overflow checks)."""
    slowdown = cluster.slowdown
    if isinstance(slowdown, SlowFraction):
        worst = max(slowdown.factor, 1.0)
    elif isinstance(slowdown, dict):
        worst = max([1.0, *slowdown.values()])
    else:
        worst = max([1.0, *slowdown])
    for part in (cluster.racks, cluster.stragglers):
        if part is not None:
            worst *= max(part.factor, 1.0)
    return worst


# --------------------------------------------------------------------------------------------
# Factors: each model gives, for a realization block, one row per (trial, iteration) and a
# column per worker (or a single row when every trial has the same ones).


@dataclass(frozen=True)
class FixedFactors:
    """The same factor per worker in every trial (a list, a mapping, or a fixed pick)."""

    factors: np.ndarray  # (workers,)

    def factors_of(self, block: int) -> np.ndarray:
        return self.factors[None, :]


@dataclass(frozen=True)
class PerTrialPick:
    """A fresh random set of ``count`` workers slowed by ``factor`` in every trial."""

    seed: int
    workers: int
    count: int
    factor: float
    iterations: int

    def factors_of(self, block: int) -> np.ndarray:
        trials = block_trials(self.iterations)
        keys = generator(self.seed, "slowdown", block).random((trials, self.workers))
        # The `count` smallest keys of a trial are its slow workers (a uniform random set).
        rank = np.argsort(keys, axis=1, kind="stable").argsort(axis=1, kind="stable")
        out = np.where(rank < self.count, self.factor, 1.0)
        return np.repeat(out, self.iterations, axis=0)


@dataclass(frozen=True)
class SlowRacks:
    seed: int
    workers: int
    racks: Racks
    iterations: int

    def factors_of(self, block: int) -> np.ndarray:
        count = -(-self.workers // self.racks.size)
        trials = block_trials(self.iterations)
        slow = generator(self.seed, "racks", block).random((trials, count)) < self.racks.prob
        per_worker = np.repeat(slow, self.racks.size, axis=1)[:, : self.workers]
        out = np.where(per_worker, self.racks.factor, 1.0)
        return np.repeat(out, self.iterations, axis=0)


@dataclass(frozen=True)
class MarkovChain:
    """Each trial's chain starts from the stationary law (its block's stream), so blocks stay
    independent; the state is carried over the iterations within the trial."""

    seed: int
    workers: int
    model: MarkovStragglers
    iterations: int

    def states(self, block: int) -> np.ndarray:
        """(trials of a block, iterations, workers) bool: slow."""
        rng = generator(self.seed, "stragglers", block)
        trials = block_trials(self.iterations)
        shape = (trials, self.workers)
        slow = np.empty((trials, self.iterations, self.workers), dtype=bool)
        slow[:, 0] = rng.random(shape) < self.model.slow_fraction()
        for i in range(1, self.iterations):
            u = rng.random(shape)
            before = slow[:, i - 1]
            slow[:, i] = np.where(before, u >= self.model.p_recover, u < self.model.p_slow)
        return slow

    def factors_of(self, block: int) -> np.ndarray:
        slow = self.states(block).reshape(-1, self.workers)
        return np.where(slow, self.model.factor, 1.0)


def factor_models(cluster, seed: int, iterations: int) -> list:
    """The factor models of a cluster config, each with ``factors_of(block)``: rows
    (block_trials(iterations) * iterations, workers), trial-major, or a single row."""
    m, models = cluster.workers, []
    slowdown = cluster.slowdown
    if isinstance(slowdown, SlowFraction):
        count = share(slowdown.fraction, m)
        if count and slowdown.factor != 1.0:
            if slowdown.pick == "fixed":
                keys = generator(seed, "slowdown", "fixed").random(m)
                fixed = np.ones(m)
                fixed[np.argsort(keys, kind="stable")[:count]] = slowdown.factor
                models.append(FixedFactors(fixed))
            else:
                models.append(PerTrialPick(seed, m, count, slowdown.factor, iterations))
    elif isinstance(slowdown, dict):
        if slowdown:
            fixed = np.ones(m)
            for worker, factor in slowdown.items():
                fixed[worker] = factor
            models.append(FixedFactors(fixed))
    elif slowdown:
        models.append(FixedFactors(np.asarray(slowdown, dtype=float)))
    if cluster.racks is not None:
        models.append(SlowRacks(seed, m, cluster.racks, iterations))
    if cluster.stragglers is not None:
        models.append(MarkovChain(seed, m, cluster.stragglers, iterations))
    return models
