"""Trials of several iterations: how the engines' rounds become (trial, iteration) rows.

With ``iterations: N`` a trial is a run of N iterations. The engines know nothing of it: they
evaluate *rounds*, round ``trial * N + i`` being iteration i of the trial, each on its own
draws (``cluster.Cluster`` draws a trial's iterations together, so worker states carry over
them). The runner hands them whole trials' rounds and turns their rows back into trials here:
``trial``, ``iteration``, and ``elapsed``, the trial's time at the end of each iteration. With
N = 1 a round is a trial, so every pre-existing column keeps its values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .schema import EVENT_COLUMNS, SUMMARY_COLUMNS

if TYPE_CHECKING:
    from .config import Experiment


def rounds(exp: Experiment, trials: int) -> int:
    """The rounds of ``trials`` trials."""
    return trials * exp.iterations


def traced_rounds(exp: Experiment) -> int:
    """Rounds whose events are traced: every iteration of the first ``output.events_trials``
    trials."""
    return min(exp.output.events_trials, exp.trials) * exp.iterations


def summary_as_trials(summary: pd.DataFrame, iterations: int, schemes: int) -> pd.DataFrame:
    """The engines' rows of whole trials' rounds (round-major, schemes in config order) as the
    run's rows: ``trial`` and ``iteration`` from the round, ``elapsed`` the running sum of each
    (scheme, trial)'s completion times over its iterations."""
    rounds_ = summary["trial"].to_numpy()
    times = summary["completion_time"].to_numpy()
    if iterations == 1:
        trial, iteration, elapsed = rounds_, np.zeros_like(rounds_), times.copy()
    else:
        trial, iteration = rounds_ // iterations, rounds_ % iterations
        elapsed = np.cumsum(times.reshape(-1, iterations, schemes), axis=1).reshape(-1)
    summary = summary.assign(trial=trial, iteration=iteration, elapsed=elapsed)
    return summary[list(SUMMARY_COLUMNS)].astype(SUMMARY_COLUMNS)


def events_as_trials(events: pd.DataFrame, iterations: int) -> pd.DataFrame:
    """The engine's trace rows of rounds as the run's: ``trial`` and ``iteration``."""
    traced = events["trial"].to_numpy()
    events = events.assign(trial=traced // iterations, iteration=traced % iterations)
    return events[list(EVENT_COLUMNS)].astype(EVENT_COLUMNS)
