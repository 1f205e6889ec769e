"""A training run's gradients: each scheme's model learns from what its protocol decoded.

The trainer is the engines' gradient source (``engine/numbers.py``) when the config has
``training:``. In every round (one iteration of one trial) it gives each scheme's workers the
real chunk gradients of the model at that scheme's current parameters; the protocol encodes,
sends and decodes them exactly as it would any gradient (exact, least-squares approximate,
rescaled, with its real round-off), and the trainer steps the parameters with the estimate the
PS ended the round with. The round's simulated completion time is its duration. Every scheme
of a trial starts from the same parameters (zero) and sees the same cluster draws, so the
trajectories are paired as the completion times are.

Each (scheme, trial) is a training run of ``iterations`` steps, asked for in round order (the
engines' contract), so a trial's state lives only while its rounds run: any range of trials
trains on its own. Rows (``schema.TRAINING``): iteration 0 is the initial state at time 0,
iteration i the state after the i-th attempted step. What a step without a gradient does is
``config.Training``'s docstring (timeout: abandoned and retried; none: the run stalls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..coding.numerics import rel_error
from ..schema import TRAINING_COLUMNS
from .datasets import load
from .models import model

if TYPE_CHECKING:
    from ..coding.base import Protocol
    from ..config import Experiment


@dataclass
class _Run:
    """One (scheme, trial)'s training so far."""

    trial: int
    theta: np.ndarray  # (features, 1)
    residual: np.ndarray  # (samples, 1): d(sample loss)/dz at theta
    time: float = 0.0
    stalled: bool = False
    pending: tuple[np.ndarray, np.ndarray] | None = None  # this round's (chunk grads, sum)


@dataclass
class _Rows:
    scheme: list[str] = field(default_factory=list)
    trial: list[int] = field(default_factory=list)
    iteration: list[int] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    grad_error: list[float] = field(default_factory=list)
    skipped: list[bool] = field(default_factory=list)


class Trainer:
    """The gradient source of a training run (``engine/numbers.GradientSource``)."""

    active = True

    def __init__(self, exp: Experiment):
        self.training = exp.training
        self.iterations = exp.iterations
        self.data = load(self.training, exp.chunks, exp.seed)
        self.model = model(self.training.model)
        self.labels = exp.labels()
        self.X = self.data.X
        self.penalized = np.ones((self.data.features, 1))
        self.penalized[-1] = 0.0  # the intercept (last feature) is not penalized
        self.runs: dict[str, _Run] = {}
        self.rows = _Rows()

    # -- the engines' side ------------------------------------------------------------------

    def get(self, round_: int, scheme: Protocol) -> tuple[np.ndarray, np.ndarray]:
        trial, iteration = divmod(round_, self.iterations)
        run = self.runs.get(scheme.label)
        if run is None or run.trial != trial:
            run = self._start(scheme.label, trial)
        if run.pending is None:  # a scheme replayed by the event engine asks twice
            grads = self.data.chunk_gradients(run.residual)
            run.pending = (grads, grads.sum(axis=0))
        return run.pending

    def parameters(self, round_: int, scheme: Protocol) -> np.ndarray:
        """The parameters (features,) at which ``scheme``'s workers compute round ``round_``'s
        chunk gradients: what a real PS broadcasts before the round (``gcsim emulate``, whose
        workers compute the gradients themselves). Asked after ``get`` of that round."""
        run = self.runs.get(scheme.label)
        if run is None or run.trial != round_ // self.iterations or run.pending is None:
            raise LookupError(f"{scheme.label}: round {round_} is not under way (get it first)")
        return run.theta[:, 0].copy()

    def done(
        self, round_: int, scheme: Protocol, estimate: np.ndarray | None, completion_time: float
    ) -> None:
        trial, iteration = divmod(round_, self.iterations)
        run = self.runs[scheme.label]
        _, truth = run.pending
        run.pending = None
        timeout = self.training.timeout
        decoded = estimate is not None and math.isfinite(completion_time)
        if timeout is None:
            used = decoded and not run.stalled
            run.stalled = not used
            run.time = completion_time + run.time if used else math.inf
        else:
            used = decoded and completion_time <= timeout
            run.time += completion_time if used else timeout
        error = rel_error(estimate, truth) if used else math.nan
        if used:
            step = estimate[:, None] / self.data.samples
            if self.training.l2:
                step = step + self.training.l2 * self.penalized * run.theta
            run.theta = run.theta - self.training.learning_rate * step
        state = self.model.evaluate(self.X @ run.theta, self.data.y)
        run.residual = state.residual
        self._row(scheme.label, trial, iteration + 1, run.time, state, error, not used)

    # -- rows -------------------------------------------------------------------------------

    def _start(self, label: str, trial: int) -> _Run:
        theta = np.zeros((self.data.features, 1))
        state = self.model.evaluate(self.X @ theta, self.data.y)
        run = _Run(trial, theta, state.residual)
        self.runs[label] = run
        self._row(label, trial, 0, 0.0, state, math.nan, False)
        return run

    def _row(self, label, trial, iteration, time, state, error, skipped) -> None:
        rows = self.rows
        rows.scheme.append(label)
        rows.trial.append(trial)
        rows.iteration.append(iteration)
        rows.time.append(time)
        rows.loss.append(float(state.loss[0]))
        rows.accuracy.append(float(state.accuracy[0]))
        rows.grad_error.append(error)
        rows.skipped.append(skipped)

    def frame(self) -> pd.DataFrame:
        """The rows so far (``schema.TRAINING``): trial-major, then scheme (config order), then
        iteration, whichever order the engines ran them in."""
        frame = pd.DataFrame(vars(self.rows)).astype(TRAINING_COLUMNS)
        order = {label: i for i, label in enumerate(self.labels)}
        key = frame["scheme"].map(order).to_numpy()
        at = np.lexsort((frame["iteration"].to_numpy(), key, frame["trial"].to_numpy()))
        return frame.take(at).reset_index(drop=True)
