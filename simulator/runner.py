"""Running an experiment: trials of every scheme on shared realizations, into plain tables.

``run(exp)`` is the Python API behind ``gcsim run``; it writes nothing (see ``results.py``).
Trials are independent given their realization, so ``run_trials`` evaluates any range of them
and the result for a trial never depends on which range, process or machine computed it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import config as cfg
from .cluster import Cluster, gradients
from .coding.base import Protocol
from .coding.numerics import rel_error
from .coding.registry import build
from .engine.des import EventRecorder, simulate
from .streams import TRIAL_BLOCK

SUMMARY_COLUMNS = {
    "scheme": "str",
    "protocol": "str",
    "trial": "int64",
    "completion_time": "float64",
    "decoded": "bool",
    "rel_error": "float64",
    "upload_floats": "int64",
    "download_floats": "int64",
    "messages": "int64",
    "control_messages": "int64",
    "chunks_computed": "int64",
    "chunks_used": "int64",
    "decode_cond": "float64",
    "residual": "float64",
}
EVENT_COLUMNS = {
    "scheme": "str",
    "trial": "int64",
    "time": "float64",
    "kind": "str",
    "worker": "int64",
    "chunk": "int64",
    "size": "int64",
}


@dataclass
class RunResult:
    """What a run produced: one summary row per (scheme, trial), the event traces, timings."""

    config: cfg.Experiment
    summary: pd.DataFrame
    events: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    engine: str = "des"

    def table(self) -> pd.DataFrame:
        """Per-scheme statistics, in config order: the numbers the terminal table shows."""
        return scheme_table(self.summary)


def scheme_table(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for scheme, group in summary.groupby("scheme", sort=False):
        times = group["completion_time"].to_numpy()
        finite = times[np.isfinite(times)]
        rows.append(
            {
                "scheme": scheme,
                "protocol": group["protocol"].iloc[0],
                # Mean and quantiles over all trials: inf where undecoded trials weigh in.
                "mean_time": float(np.mean(times)),
                "median_time": _quantile(times, 0.5),
                "p95_time": _quantile(times, 0.95),
                "mean_time_decoded": float(np.mean(finite)) if finite.size else float("nan"),
                "decode_rate": float(group["decoded"].mean()),
                "mean_upload_floats": float(group["upload_floats"].mean()),
                "mean_download_floats": float(group["download_floats"].mean()),
                "mean_rel_error": float(group["rel_error"].mean()),
                "max_rel_error": float(group["rel_error"].max()),
            }
        )
    return pd.DataFrame(rows)


def _quantile(values: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile that treats inf (never decoded) as larger than anything."""
    with np.errstate(invalid="ignore"):
        value = float(np.quantile(values, q))
    return math.inf if math.isnan(value) else value


def run(
    exp: cfg.Experiment,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Run every trial of every scheme of ``exp``; ``progress(n)`` is told of finished trials."""
    started = time.perf_counter()
    summary, events = run_trials(exp, 0, exp.trials, progress)
    elapsed = time.perf_counter() - started
    timings = {"simulate_seconds": elapsed, "trials_per_second": exp.trials / elapsed}
    return RunResult(exp, summary, events, timings)


def run_trials(
    exp: cfg.Experiment,
    first: int,
    count: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials ``first .. first+count-1`` of every scheme: (summary rows, event rows)."""
    protocols = build(exp)
    cluster = Cluster(exp, steps=max(p.steps for p in protocols))
    rows: list[tuple] = []
    traces: list[tuple] = []
    start, stop = first, first + count
    while start < stop:  # one realization block at a time: bounded memory
        n = min(TRIAL_BLOCK - start % TRIAL_BLOCK, stop - start)
        realization = cluster.draw(start, n)
        for trial in range(start, start + n):
            _run_one(exp, protocols, realization.trial(trial), rows, traces)
            if progress is not None:
                progress(1)
        start += n
    return _frame(rows, SUMMARY_COLUMNS), _frame(traces, EVENT_COLUMNS)


def _run_one(exp, protocols: list[Protocol], draw, rows: list, traces: list) -> None:
    grads = gradients(exp, draw.trial)
    truth = None if grads is None else grads.sum(axis=0)
    keep_events = draw.trial < exp.output.events_trials
    for protocol in protocols:
        recorder = EventRecorder() if keep_events else None
        trial = protocol.new_trial(draw.down, grads)
        outcome = simulate(
            trial,
            protocol.orders,
            draw,
            exp.cluster.network,
            recorder,
            exp.cluster.failures.detect_timeout,
        )
        error, used, condition, left = float("nan"), 0, float("nan"), float("nan")
        if outcome.result is not None:
            used, condition = outcome.result.chunks_used, outcome.result.cond
            left = outcome.result.residual
            if truth is not None:
                error = rel_error(outcome.result.estimate, truth)
        rows.append(
            (
                protocol.label,
                protocol.name,
                draw.trial,
                outcome.completion_time,
                outcome.decoded,
                error,
                outcome.upload_floats,
                outcome.download_floats,
                outcome.messages,
                outcome.control_messages,
                outcome.chunks_computed,
                used,
                condition,
                left,
            )
        )
        if recorder is not None:
            traces.extend((protocol.label, draw.trial, *row) for row in recorder.rows)


def _frame(rows: list[tuple], columns: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    return frame.astype(columns)
