"""Running an experiment: trials of every scheme on shared realizations, into plain tables.

``run(exp)`` is the Python API behind ``gcsim run``; it writes nothing but the files it is
asked to stream the summary and traces to (``summary_to``, ``events_to``; see ``results.py``).
Trials are independent given their realization, so ``run_trials`` evaluates any range of them
and the result for a trial never depends on which range, process or machine computed it.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import math
import operator
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from . import config as cfg
from .cluster import Cluster
from .coding.base import Protocol
from .coding.registry import build
from .engine.choice import engine_description, scheme_engines
from .engine.des import EventRecorder, simulate_row
from .engine.fast import run_trials_fast
from .engine.numbers import GradientSource, source_of
from .iterations import events_as_trials, summary_as_trials, traced_rounds
from .parquet import ParquetStream, schema_of
from .schema import (
    ENGINE_EVENT_COLUMNS,
    ENGINE_SUMMARY_COLUMNS,
    EVENT_COLUMNS,
    SUMMARY,
    SUMMARY_COLUMNS,
    TABLE_COLUMNS,
    TRAINING_COLUMNS,
)
from .statistics import column_stats
from .streams import TRIAL_BLOCK
from .tuning import simulating


@dataclass
class RunResult:
    """What a run produced: one summary row per (scheme, trial), the event traces, timings.
    A run that streamed its traces to disk (``run(..., events_to=path)``) has an empty
    ``events`` frame and the file in ``events_file``. A run that streamed its summary
    (``run(..., summary_to=path)``) holds none (``held_summary`` is None): ``summary_file``
    names the file, ``summary`` reads it back whole and ``table()`` reads it a column at a
    time. ``results.write_run`` moves streamed files into the run directory and points these
    attributes at them there."""

    config: cfg.Experiment
    held_summary: pd.DataFrame | None
    events: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    engine: str = "des"
    #: The engine that ran each scheme's untraced trials, by label ("fast" or "des").
    engines: dict[str, str] = field(default_factory=dict)
    executor: str = "in process"
    #: A training run's rows (``schema.TRAINING``; None without ``training:``).
    training: pd.DataFrame | None = None
    events_file: Path | None = None
    summary_file: Path | None = None
    #: Set by ``results.write_run`` once the streamed files are in a run directory: writing
    #: the result again copies them instead of moving them out of it.
    files_placed: bool = field(default=False, repr=False)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per (scheme, trial) (SUMMARY_COLUMNS, trial-major). When the run streamed
        its summary, every access reads the WHOLE file into memory (about 260 bytes a row) and
        the result does not keep it: keep the frame if you need it twice. ``table()`` gives
        the per-scheme statistics without loading it."""
        if self.held_summary is None:
            return read_summary(self.summary_file)
        return self.held_summary

    def table(self) -> pd.DataFrame:
        """Per-scheme statistics, in config order: the numbers the terminal table shows. A
        streamed summary is read from ``summary_file`` one column at a time
        (``scheme_table_of_file``), giving the same numbers as ``scheme_table`` of the frame."""
        if self.held_summary is None:
            return scheme_table_of_file(self.summary_file)
        return scheme_table(self.held_summary)


def read_summary(path: Path) -> pd.DataFrame:
    """A summary parquet file as the frame ``run`` would have held (same dtypes)."""
    return pd.read_parquet(path).astype(SUMMARY_COLUMNS)


def scheme_table(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for scheme, group in summary.groupby("scheme", sort=False):
        row = {"scheme": scheme, "protocol": group["protocol"].iloc[0]}
        for column in TABLE_COLUMNS:
            row.update(_column_stats(column, group[column]))
        rows.append(row)
    return pd.DataFrame(rows)


def _column_stats(column: str, values: pd.Series) -> dict[str, float]:
    """One scheme's statistics of one summary column (``values``: its rows, in file order),
    as the column's ``stats`` in ``schema.SUMMARY`` asks (``statistics.column_stats``)."""
    return column_stats(*_STATS[column], values)


_STATS = {c.name: (c.stats, c.short or c.name) for c in SUMMARY if c.stats}


def scheme_table_of_file(path: Path) -> pd.DataFrame:
    """``scheme_table`` of a summary parquet file without loading it: one column at a time,
    split by scheme into contiguous arrays, so the same code computes the statistics on the
    same values in the same order (the same numbers, to the bit; summing them as they stream
    would change the order, hence the last bits). Peak, only while it runs: one column of
    every row (8 bytes a row) plus copies of one scheme's part of it (about 14 bytes a row in
    all with two schemes, 8 + 16 / schemes in general), and a batch of rows."""
    file = pq.ParquetFile(path, read_dictionary=["scheme", "protocol"])
    protocols: dict[str, str] = {}  # scheme -> its protocol, in order of first appearance
    for batch in file.iter_batches(columns=["scheme", "protocol"]):
        names, _, firsts = _batch_schemes(batch)
        for name, first in zip(names, firsts, strict=True):
            protocols.setdefault(name, batch.column(1)[int(first)].as_py())
    rows = {name: {"scheme": name, "protocol": protocol} for name, protocol in protocols.items()}
    for column in TABLE_COLUMNS:
        pieces: dict[str, list[np.ndarray]] = {name: [] for name in protocols}
        for batch in file.iter_batches(columns=["scheme", column]):
            names, codes, _ = _batch_schemes(batch)
            values = batch.column(1).to_numpy(zero_copy_only=False)
            for code, name in enumerate(names):
                pieces[name].append(values[codes == code])
        for name in protocols:  # one scheme's array at a time
            values = pd.Series(np.concatenate(pieces.pop(name)))
            rows[name].update(_column_stats(column, values))
    return pd.DataFrame(list(rows.values()))


def _batch_schemes(batch) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A record batch's schemes in order of first appearance, each row's index into them, and
    the row where each first appears (the scheme column read dictionary-encoded)."""
    scheme = batch.column(0)
    local = scheme.indices.to_numpy()
    present, firsts = np.unique(local, return_index=True)
    order = np.argsort(firsts, kind="stable")
    present, firsts = present[order], firsts[order]
    remap = np.full(len(scheme.dictionary), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    names = [scheme.dictionary[int(code)].as_py() for code in present]
    return names, remap[local], firsts


#: Most trials in one range when the summary streams (``run(..., summary_to=...)``): 2**14,
#: 64 realization blocks. A range's summary rows are what a streamed run holds at once (per
#: range in flight): 2**14 trials x about 260 bytes (fast; 220-440 des) = 4-7 MB per scheme,
#: the order of the fast engine's own working set (15-66 MiB) and, up to 16 schemes, no more
#: rows than the row group a ParquetStream holds anyway (2**18). A range costs a few ms of
#: set-up (cluster, the fast engine's evaluators, frames; the protocols are planned once per
#: run), about 0.2-0.3 us a trial at this size: under 10% even of the cheapest fast-engine
#: trials (2-6 us).
STREAM_RANGE_TRIALS = 1 << 14


def run(
    exp: cfg.Experiment,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
    dask: str | None = None,
    events_to: Path | None = None,
    summary_to: Path | None = None,
) -> RunResult:
    """Run every trial of every scheme of ``exp``; ``progress(n)`` is told of finished trials.

    With ``jobs > 1`` or ``dask``, trials are split into ranges on realization-block boundaries
    and run on an executor (``executors.open_executor``); the rows are the same bytes either way.
    With ``events_to``, the event traces are written to that parquet file as they are made, in
    batches, instead of being held: the traced trials (the first ``output.events_trials``) then
    run in this process, the rest wherever ``jobs``/``dask`` say. Same bytes either way.

    With ``summary_to``, the summary rows are written to that parquet file instead of being
    held (``RunResult.summary_file``; ``summary`` reads it back, ``table()`` computes from it):
    the trials run in ranges of at most ``STREAM_RANGE_TRIALS``, each range's rows written, in
    trial order, as soon as it and every range before it are done. On an executor at most
    ``2 * jobs`` ranges are submitted and not yet written at any time (with a remote Dask
    scheduler, ``jobs`` is that window: give the number of workers). Memory then does not
    grow with ``exp.trials``, and the file has the bytes ``write_run`` writes from a held
    summary. On an error the files are closed, holding what was written so far. Both paths
    must be new: an existing file (or link) there is never overwritten (FileExistsError).
    """
    started = time.perf_counter()
    traced = min(exp.output.events_trials, exp.trials) if events_to is not None else 0
    bound = STREAM_RANGE_TRIALS if summary_to is not None else None
    summaries: list[pd.DataFrame] = []  # held rows (summary_to None)
    event_parts: list[pd.DataFrame] = []  # held traces (events_to None)
    training_parts: list[pd.DataFrame] = []  # a training run's rows (small: held)
    executor = "in process"
    with contextlib.ExitStack() as files:  # closes the streams on any exit
        events = summary = None
        if events_to is not None:
            events = ParquetStream(events_to, schema_of(EVENT_COLUMNS))
            files.callback(events.close)
        if summary_to is not None:
            summary = ParquetStream(summary_to, schema_of(SUMMARY_COLUMNS))
            files.callback(summary.close)
        keep = summary.append if summary is not None else summaries.append

        def done(rows: pd.DataFrame, traces: pd.DataFrame, training=None) -> None:
            keep(rows)
            if not traces.empty:
                event_parts.append(traces)
            if training is not None:
                training_parts.append(training)

        plan: list[Protocol] = []  # planned once for every range run in this process

        def here(first: int, count: int, on_events=None) -> None:
            with simulating():
                plan[:] = plan or build(exp)
                done(*run_range(exp, first, count, progress, on_events, plan))

        # The traced trials, when their traces stream: in this process, before the rest.
        for first, count in _ranges(0, traced, bound):
            here(first, count, events.append)
        if jobs == 1 and dask is None:
            for first, count in _ranges(traced, exp.trials, bound):
                here(first, count)
        else:
            executor = _run_split(exp, traced, jobs, dask, progress, done, streaming=bound)
    elapsed = time.perf_counter() - started
    timings = {"simulate_seconds": elapsed, "trials_per_second": exp.trials / elapsed}
    result = RunResult(exp, _joined(summaries, SUMMARY_COLUMNS) if summary is None else None,
                       _joined(event_parts, EVENT_COLUMNS), timings)  # fmt: skip
    if exp.training is not None:
        result.training = _joined(training_parts, TRAINING_COLUMNS)
    result.executor = executor
    result.engine = engine_description(exp)
    result.engines = dict(zip(exp.labels(), scheme_engines(exp), strict=True))
    result.events_file = None if events_to is None else Path(events_to)
    result.summary_file = None if summary_to is None else Path(summary_to)
    return result


def _joined(parts: list[pd.DataFrame], columns: dict[str, str]) -> pd.DataFrame:
    if not parts:
        return _frame([], columns)
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _ranges(start: int, stop: int, most: int | None) -> list[tuple[int, int]]:
    """start..stop-1 whole (``most`` None), or in block-aligned ranges of at most ``most``."""
    if most is None:
        return [(start, stop - start)] if stop > start else []
    return trial_ranges(stop, 1, start, most)


def chosen_engine(exp: cfg.Experiment) -> str:
    """'fast', 'des', or 'mixed' when ``engine: auto`` runs some schemes on each."""
    engines = set(scheme_engines(exp))
    return engines.pop() if len(engines) == 1 else "mixed"


def run_range(
    exp: cfg.Experiment,
    first: int,
    count: int,
    progress: Callable[[int], None] | None = None,
    on_events: Callable[[pd.DataFrame], None] | None = None,
    protocols: list[Protocol] | None = None,
) -> RangeRows:
    """Trials ``first .. first+count-1`` on the chosen engine: the rounds of their iterations
    (``iterations.py``), turned back into the run's rows. ``protocols``: ``build(exp)`` made
    already (planning original_gc's code takes seconds at m = 200, so a run plans once for all
    its ranges); built here otherwise."""
    n, schemes = exp.iterations, len(exp.schemes)
    streamed = None if on_events is None else lambda rows: on_events(events_as_trials(rows, n))
    source = source_of(exp)  # a training run's state lives for the range's trials
    summary, events = run_rounds(
        exp, first * n, count * n, _per_trial(progress, n), streamed, protocols, source
    )
    training = source.frame() if exp.training is not None else None
    return RangeRows(summary_as_trials(summary, n, schemes), events_as_trials(events, n), training)


class RangeRows(NamedTuple):
    """What a range of trials produced: summary and event rows, and a training run's rows
    (None without ``training:``)."""

    summary: pd.DataFrame
    events: pd.DataFrame
    training: pd.DataFrame | None = None


def _per_trial(progress: Callable[[int], None] | None, n: int) -> Callable[[int], None] | None:
    """``progress`` told of whole trials while the engines count rounds."""
    if progress is None or n == 1:
        return progress
    rounds = [0]

    def tell(more: int) -> None:
        before = rounds[0] // n
        rounds[0] += more
        if rounds[0] // n > before:
            progress(rounds[0] // n - before)

    return tell


def run_rounds(
    exp: cfg.Experiment,
    first: int,
    count: int,
    progress: Callable[[int], None] | None = None,
    on_events: Callable[[pd.DataFrame], None] | None = None,
    protocols: list[Protocol] | None = None,
    source: GradientSource | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rounds ``first .. first+count-1`` on the chosen engine, as the engines' rows. The fast
    engine keeps no event traces, so the traced rounds (every iteration of the first
    ``output.events_trials`` trials) always run on the event engine; the two engines give the
    same rows, so the split never shows in the results. BLAS runs on one thread meanwhile, and
    the cycle collector lazily (``tuning.simulating``). A row that decoded at a time that is not
    finite is refused (``ConfigError``): float64 overflowed."""
    with simulating():
        if protocols is None:
            protocols = build(exp)
        source = source_of(exp) if source is None else source
        engines = scheme_engines(exp)
        fast = [p for p, engine in zip(protocols, engines, strict=True) if engine == "fast"]
        if not fast:
            summary, events = run_trials(exp, first, count, progress, on_events, protocols, source)
            return _finite(summary), events
        traced_end = min(first + count, max(first, traced_rounds(exp)))
        summary = _frame([], ENGINE_SUMMARY_COLUMNS)
        events = _frame([], ENGINE_EVENT_COLUMNS)
        if traced_end > first:  # traced rounds: every scheme on the event engine
            summary, events = run_trials(
                exp, first, traced_end - first, progress, on_events, protocols, source
            )
        rest = first + count - traced_end
        slow = [p for p, engine in zip(protocols, engines, strict=True) if engine == "des"]
        told = progress if not slow else None
        quick = run_trials_fast(exp, traced_end, rest, fast, told, source)
        if slow:
            untraced, _ = run_trials(exp, traced_end, rest, progress, None, slow, source)
            quick = _interleaved(quick, untraced, [e == "fast" for e in engines])
        parts = [summary, quick] if len(summary) else [quick]
        return _finite(parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)), events


def _interleaved(fast: pd.DataFrame, des: pd.DataFrame, is_fast: list[bool]) -> pd.DataFrame:
    """The rows of schemes run on two engines, back in the run's order: trial-major, schemes
    in config order (``is_fast[i]``: whether scheme i's rows are in ``fast``)."""
    schemes = len(is_fast)
    position = np.arange(schemes)
    fast_at, des_at = position[np.array(is_fast)], position[~np.array(is_fast)]
    trials = len(fast) // len(fast_at)
    base = np.arange(trials)[:, None] * schemes
    where = np.concatenate([(base + fast_at).ravel(), (base + des_at).ravel()])
    both = pd.concat([fast, des], ignore_index=True)
    return both.take(np.argsort(where, kind="stable")).reset_index(drop=True)


def _finite(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows``, unless one decoded at a non-finite time: the config's times overflow float64
    (a finite ``1e308`` shift, a ``5e-324`` rate...), and such a row would read as a success."""
    bad = rows["decoded"].to_numpy(bool) & ~np.isfinite(rows["completion_time"].to_numpy(float))
    if bad.any():
        trial = int(rows["trial"].to_numpy()[bad][0])
        raise cfg.ConfigError(
            [("cluster", f"times overflow float64 (trial {trial} decoded at time inf): compute "
              "times, slowdown, latency or time_per_float are too large (or rates too small); "
              "scale them down")]
        )  # fmt: skip
    return rows


def _range_task(exp: cfg.Experiment, first: int, count: int) -> RangeRows:
    """``run_range`` on an executor's worker, which plans once per config: the protocols of
    the last config a worker thread ran stay with it (``_plans``) for the run's next ranges."""
    key = (exp.model_dump_json(), str(exp.source_dir))
    if getattr(_plans, "key", None) != key:
        _plans.key, _plans.protocols = None, None  # the old plan goes before the new is made
        with simulating():  # planned as run_range would (one BLAS thread: same bits)
            _plans.protocols = build(exp)
        _plans.key = key
    return run_range(exp, first, count, protocols=_plans.protocols)


_plans = threading.local()


def trial_ranges(
    trials: int, parts: int, start: int = 0, most: int | None = None
) -> list[tuple[int, int]]:
    """(first, count) ranges covering start..trials-1, cut on realization-block boundaries
    (the first range may start inside a block): about ``parts`` of them, more if that is what
    keeps each at most ``most`` trials (rounded down to whole blocks, at least one)."""
    blocks = math.ceil(trials / TRIAL_BLOCK) - start // TRIAL_BLOCK
    per_part = max(1, math.ceil(blocks / max(parts, 1)))
    if most is not None:
        per_part = max(1, min(per_part, most // TRIAL_BLOCK))
    ranges, first = [], start
    while first < trials:
        end = min(trials, (first // TRIAL_BLOCK + per_part) * TRIAL_BLOCK)
        ranges.append((first, end - first))
        first = end
    return ranges


def _run_split(exp, start, jobs, dask, progress, done, streaming: int | None) -> str:
    """Trials start.. on an executor; ``done(summary, events)`` gets each range's rows in trial
    order. ``streaming`` (the most trials a range may hold) also bounds what is in flight:
    at most 2 x jobs ranges submitted and not yet handed to ``done``, so a range finished out
    of order waits for the ones before it, and nothing grows with the trials. Without it,
    every range is submitted at once (4 x jobs ranges: balance, progress). An exception on the
    way (a failing range, an interrupt) stops the executor at once (``open_executor``): what
    is queued never starts, and the workers are ended rather than waited for."""
    from .executors import open_executor

    ranges = trial_ranges(exp.trials, 4 * jobs, start, streaming)
    if not ranges:  # every trial was traced, in this process
        return "in process"
    window = len(ranges) if streaming is None else 2 * jobs
    # No more workers than ranges: a pool starts all of its workers up front.
    with open_executor(min(jobs, len(ranges)), dask) as (executor, description):
        pending = iter(ranges)
        flight: collections.deque = collections.deque()  # (count, future), in trial order
        for first, count in itertools.islice(pending, window):
            flight.append((count, executor.submit(_range_task, exp, first, count)))
        while flight:
            count, future = flight.popleft()
            done(*future.result())
            del future  # its rows are written (or kept): no longer held here
            if progress is not None:
                progress(count)
            for first, more in itertools.islice(pending, 1):
                flight.append((more, executor.submit(_range_task, exp, first, more)))
    return description


def run_trials(
    exp: cfg.Experiment,
    first: int,
    count: int,
    progress: Callable[[int], None] | None = None,
    on_events: Callable[[pd.DataFrame], None] | None = None,
    protocols: list[Protocol] | None = None,
    source: GradientSource | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rounds ``first .. first+count-1`` (trials when ``iterations`` is 1) of every scheme on
    the event engine: (summary rows, event rows), the engine's columns. With ``on_events``
    the event rows are handed to it in batches of at most ``EVENT_BATCH`` rows (plus one
    trial's) instead, and the returned event frame is empty.
    ``protocols``: ``build(exp)`` made already, else built here; ``source``: where gradients
    come from (``engine/numbers.py``), the config's by default."""
    with simulating():
        return _run_trials(exp, first, count, progress, on_events, protocols, source)


#: Event rows collected before they go to ``on_events``.
EVENT_BATCH = 1 << 16


def _run_trials(
    exp, first, count, progress, on_events, protocols=None, source=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    protocols = build(exp) if protocols is None else protocols
    source = source_of(exp) if source is None else source
    cluster = Cluster(exp, steps=max(p.steps for p in protocols))
    summaries: list[pd.DataFrame] = []
    traces: list[tuple] = []  # bounded: only the first output.events_trials trials are traced
    start, stop = first, first + count
    while start < stop:  # one realization block at a time
        n = min(TRIAL_BLOCK - start % TRIAL_BLOCK, stop - start)
        realization = cluster.draw(start, n)
        rows: list[tuple] = []
        for trial in range(start, start + n):
            _run_one(exp, protocols, realization.trial(trial), rows, traces, source)
            if on_events is not None and len(traces) >= EVENT_BATCH:
                on_events(_frame(traces, ENGINE_EVENT_COLUMNS))
                traces = []
            if progress is not None:
                progress(1)
        # Columnar per block: ~100 bytes a row instead of ~575 as Python tuples.
        summaries.append(_frame(rows, ENGINE_SUMMARY_COLUMNS))
        start += n
    summary = (
        pd.concat(summaries, ignore_index=True) if summaries else _frame([], ENGINE_SUMMARY_COLUMNS)
    )
    if on_events is not None:
        if traces:
            on_events(_frame(traces, ENGINE_EVENT_COLUMNS))
        traces = []
    return summary, _frame(traces, ENGINE_EVENT_COLUMNS)


def _run_one(exp, protocols: list[Protocol], draw, rows: list, traces: list, source) -> None:
    keep_events = draw.trial < traced_rounds(exp)
    for protocol in protocols:
        recorder = EventRecorder() if keep_events else None
        grads, truth = source.get(draw.trial, protocol)
        row = simulate_row(exp, protocol, draw, grads, truth, recorder)
        source.done(draw.trial, protocol, row["estimate"], row["completion_time"])
        rows.append(_row(row))
        if recorder is not None:
            traces.extend((protocol.label, draw.trial, *row) for row in recorder.rows)


#: A row by column name as the tuple ``_frame`` takes.
_ROW = operator.itemgetter(*ENGINE_SUMMARY_COLUMNS)


def _row(values: dict[str, object]) -> tuple:
    try:
        return _ROW(values)
    except KeyError as missing:
        raise KeyError(
            f"engine/des.py:simulate_row gives no value for the summary column {missing} "
            "(every column of simulator/schema.py SUMMARY filled by the engine needs one)"
        ) from None


def _frame(rows: list[tuple], columns: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    return frame.astype(columns)
