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
from pathlib import Path

import numpy as np
import pandas as pd

from . import config as cfg
from .cluster import Cluster, gradients
from .coding.base import Protocol
from .coding.numerics import rel_error
from .coding.registry import build
from .engine.des import EventRecorder, simulate
from .parquet import ParquetStream, schema_of
from .streams import TRIAL_BLOCK
from .tuning import simulating

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
    """What a run produced: one summary row per (scheme, trial), the event traces, timings.
    A run that streamed its traces to disk (``run(..., events_to=path)``) has an empty
    ``events`` frame and the file in ``events_file``."""

    config: cfg.Experiment
    summary: pd.DataFrame
    events: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    engine: str = "des"
    executor: str = "in process"
    events_file: Path | None = None

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
                "mean_messages": float(group["messages"].mean()),
                "mean_control_messages": float(group["control_messages"].mean()),
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
    jobs: int = 1,
    dask: str | None = None,
    events_to: Path | None = None,
) -> RunResult:
    """Run every trial of every scheme of ``exp``; ``progress(n)`` is told of finished trials.

    With ``jobs > 1`` or ``dask``, trials are split into ranges on realization-block boundaries
    and run on an executor (``executors.open_executor``); the rows are the same bytes either way.
    With ``events_to``, the event traces are written to that parquet file as they are made, in
    batches, instead of being held: the traced trials (the first ``output.events_trials``) then
    run in this process, the rest wherever ``jobs``/``dask`` say. Same bytes either way.
    """
    started = time.perf_counter()
    traced = min(exp.output.events_trials, exp.trials) if events_to is not None else 0
    head = None  # the traced trials' rows, when their traces stream to disk
    stream = ParquetStream(events_to, schema_of(EVENT_COLUMNS)) if events_to else None
    try:
        if traced:
            head, _ = run_range(exp, 0, traced, progress, on_events=stream.append)
        if jobs == 1 and dask is None:
            summary, events = run_range(exp, traced, exp.trials - traced, progress)
            executor = "in process"
        else:
            summary, events, executor = _run_split(exp, traced, jobs, dask, progress)
    finally:
        if stream is not None:
            stream.close()
    if head is not None:
        summary = pd.concat([head, summary], ignore_index=True)
    elapsed = time.perf_counter() - started
    timings = {"simulate_seconds": elapsed, "trials_per_second": exp.trials / elapsed}
    result = RunResult(exp, summary, events, timings)
    result.executor = executor
    result.engine = engine_description(exp)
    result.events_file = events_to
    return result


def chosen_engine(exp: cfg.Experiment) -> str:
    """'fast' or 'des': ``auto`` takes the fast engine wherever it gives the event engine's
    results exactly (``engine.fast.fast_problems`` is empty)."""
    if exp.engine != "auto":
        return exp.engine
    from .engine.fast import fast_problems

    return "des" if fast_problems(exp) else "fast"


def engine_description(exp: cfg.Experiment) -> str:
    engine = chosen_engine(exp)
    if engine == "fast" and exp.output.events_trials:
        traced = min(exp.output.events_trials, exp.trials)
        return f"fast (event engine for the {traced} traced trials)"
    return engine


def run_range(
    exp: cfg.Experiment,
    first: int,
    count: int,
    progress: Callable[[int], None] | None = None,
    on_events: Callable[[pd.DataFrame], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials ``first .. first+count-1`` on the chosen engine. The fast engine keeps no event
    traces, so the traced trials (the first ``output.events_trials``) always run on the event
    engine; the two engines give the same rows, so the split never shows in the results. BLAS
    runs on one thread meanwhile, and the cycle collector lazily (``tuning.simulating``)."""
    with simulating():
        if chosen_engine(exp) == "des":
            return run_trials(exp, first, count, progress, on_events)
        from .engine.fast import run_trials_fast

        traced_end = min(first + count, max(first, exp.output.events_trials))
        summary, events = run_trials(exp, first, traced_end - first, progress, on_events)
        rest = run_trials_fast(exp, traced_end, first + count - traced_end, progress)
        return pd.concat([summary, rest], ignore_index=True), events


def trial_ranges(trials: int, parts: int, start: int = 0) -> list[tuple[int, int]]:
    """(first, count) ranges covering start..trials-1, cut on realization-block boundaries
    (the first range may start inside a block)."""
    blocks = math.ceil(trials / TRIAL_BLOCK) - start // TRIAL_BLOCK
    per_part = max(1, math.ceil(blocks / max(parts, 1)))
    ranges, first = [], start
    while first < trials:
        end = min(trials, (first // TRIAL_BLOCK + per_part) * TRIAL_BLOCK)
        ranges.append((first, end - first))
        first = end
    return ranges


def _run_split(exp, start, jobs, dask, progress):
    from .executors import open_executor

    # several ranges per worker: balance, progress
    ranges = trial_ranges(exp.trials, 4 * jobs, start)
    with open_executor(jobs, dask) as (executor, description):
        futures = [executor.submit(run_range, exp, first, count) for first, count in ranges]
        parts = []
        for (_, count), future in zip(ranges, futures, strict=True):
            parts.append(future.result())
            if progress is not None:
                progress(count)
    if not parts:  # everything ran in process (all trials traced)
        return _frame([], SUMMARY_COLUMNS), _frame([], EVENT_COLUMNS), description
    summary = pd.concat([p[0] for p in parts], ignore_index=True)
    events = pd.concat([p[1] for p in parts], ignore_index=True)
    return summary, events, description


def run_trials(
    exp: cfg.Experiment,
    first: int,
    count: int,
    progress: Callable[[int], None] | None = None,
    on_events: Callable[[pd.DataFrame], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials ``first .. first+count-1`` of every scheme on the event engine: (summary rows,
    event rows). With ``on_events`` the event rows are handed to it in batches of at most
    ``EVENT_BATCH`` rows (plus one trial's) instead, and the returned event frame is empty."""
    with simulating():
        return _run_trials(exp, first, count, progress, on_events)


#: Event rows collected before they go to ``on_events``.
EVENT_BATCH = 1 << 16


def _run_trials(exp, first, count, progress, on_events) -> tuple[pd.DataFrame, pd.DataFrame]:
    protocols = build(exp)
    cluster = Cluster(exp, steps=max(p.steps for p in protocols))
    summaries: list[pd.DataFrame] = []
    traces: list[tuple] = []  # bounded: only the first output.events_trials trials are traced
    start, stop = first, first + count
    while start < stop:  # one realization block at a time
        n = min(TRIAL_BLOCK - start % TRIAL_BLOCK, stop - start)
        realization = cluster.draw(start, n)
        rows: list[tuple] = []
        for trial in range(start, start + n):
            _run_one(exp, protocols, realization.trial(trial), rows, traces)
            if on_events is not None and len(traces) >= EVENT_BATCH:
                on_events(_frame(traces, EVENT_COLUMNS))
                traces = []
            if progress is not None:
                progress(1)
        # Columnar per block: ~100 bytes a row instead of ~575 as Python tuples.
        summaries.append(_frame(rows, SUMMARY_COLUMNS))
        start += n
    summary = pd.concat(summaries, ignore_index=True) if summaries else _frame([], SUMMARY_COLUMNS)
    if on_events is not None:
        if traces:
            on_events(_frame(traces, EVENT_COLUMNS))
        traces = []
    return summary, _frame(traces, EVENT_COLUMNS)


def _run_one(exp, protocols: list[Protocol], draw, rows: list, traces: list) -> None:
    grads = gradients(exp, draw.trial)
    truth = None if grads is None else grads.sum(axis=0)
    keep_events = draw.trial < exp.output.events_trials
    for protocol in protocols:
        recorder = EventRecorder() if keep_events else None
        rows.append(simulate_row(exp, protocol, draw, grads, truth, recorder))
        if recorder is not None:
            traces.extend((protocol.label, draw.trial, *row) for row in recorder.rows)


def simulate_row(exp, protocol: Protocol, draw, grads, truth, recorder=None) -> tuple:
    """One (scheme, trial) on the event engine, as a summary row (SUMMARY_COLUMNS order).
    The fast engine replays tied trials through this too."""
    outcome = simulate(
        protocol.new_trial(draw.down, grads),
        protocol.orders,
        draw,
        exp.cluster.network,
        recorder,
        exp.cluster.failures.detect_timeout,
    )
    error, used, condition, left = float("nan"), 0, float("nan"), float("nan")
    if outcome.result is not None:
        used, condition = outcome.result.chunks_used, outcome.result.cond
        if not protocol.conditioning:
            condition = float("nan")  # also where it is free (1.0): "not computed", uniformly
        left = outcome.result.residual
        if truth is not None:
            error = rel_error(outcome.result.estimate, truth)
    return (
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


def _frame(rows: list[tuple], columns: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    return frame.astype(columns)
