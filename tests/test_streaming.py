"""Event traces and the summary stream to parquet: same bytes as written whole, the same
per-scheme table, bounded memory, no staging file left behind."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import executors, parquet, runner
from simulator.cli import cli
from simulator.config import load_config
from simulator.parquet import ParquetStream, schema_of, write_parquet
from simulator.results import run_problem, write_run
from simulator.runner import EVENT_COLUMNS, SUMMARY_COLUMNS, run
from simulator.streams import TRIAL_BLOCK


def _events(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    frame = pd.DataFrame(
        {
            "scheme": rng.choice(["a", "partial_gc ell=2"], rows),
            "trial": np.arange(rows) // 7,
            "time": rng.random(rows),
            "kind": rng.choice(["chunk_done", "upload_sent"], rows),
            "worker": rng.integers(-1, 20, rows),
            "chunk": rng.integers(-1, 20, rows),
            "size": rng.integers(0, 1000, rows),
            "iteration": np.zeros(rows, dtype=np.int64),
        }
    )
    return frame.astype(EVENT_COLUMNS)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(0, 120),
    cuts=st.lists(st.integers(0, 120), max_size=6),
    group=st.integers(1, 50),
)
def test_batches_give_the_bytes_of_the_whole_frame(tmp_path_factory, rows, cuts, group):
    folder = tmp_path_factory.mktemp("stream")
    frame = _events(rows)
    whole, streamed = folder / "whole.parquet", folder / "streamed.parquet"
    stream = ParquetStream(whole, schema_of(EVENT_COLUMNS), rows_per_group=group)
    stream.append(frame)
    stream.close()
    stream = ParquetStream(streamed, schema_of(EVENT_COLUMNS), rows_per_group=group)
    bounds = [0, *sorted(c for c in cuts if c <= rows), rows]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        stream.append(frame.iloc[lo:hi])
    stream.close()
    assert streamed.read_bytes() == whole.read_bytes()
    back = pd.read_parquet(streamed)
    assert len(back) == rows
    if rows:
        pd.testing.assert_frame_equal(back, frame, check_dtype=False)


@pytest.mark.parametrize("batch", [1_000, 16_384])
def test_batches_give_the_bytes_of_the_whole_frame_past_a_dictionary_page(tmp_path, batch):
    """A float column whose dictionary overflows falls back to plain encoding at a point that
    depends on where batches were cut, unless each row group is written as one chunk (a
    --jobs 2 summary of 50,000 trials once differed from --jobs 1 this way)."""
    frame = _events(300_000)
    whole, streamed = tmp_path / "whole.parquet", tmp_path / "streamed.parquet"
    write_parquet(frame, whole, EVENT_COLUMNS)
    stream = ParquetStream(streamed, schema_of(EVENT_COLUMNS))
    for lo in range(0, len(frame), batch):
        stream.append(frame.iloc[lo : lo + batch])
    stream.close()
    assert streamed.read_bytes() == whole.read_bytes()


def test_a_streamed_run_has_the_events_of_a_held_run(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "EVENT_BATCH", 500)
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 700)
    exp = load_config("configs/quickstart.yaml", ["trials=300", "output.events_trials=40"])
    held = run(exp)
    streamed = run(exp, jobs=2, events_to=tmp_path / "events.parquet")
    assert streamed.events.empty and streamed.events_file == tmp_path / "events.parquet"
    pd.testing.assert_frame_equal(streamed.summary, held.summary)
    write_parquet(held.events, tmp_path / "held.parquet", EVENT_COLUMNS)
    assert (tmp_path / "events.parquet").read_bytes() == (tmp_path / "held.parquet").read_bytes()
    assert len(held.events) > 5 * 700  # several row groups


def test_streaming_bounds_the_memory_of_traces(tmp_path, monkeypatch):
    """Traces of every trial: held, they grow with the run; streamed, they stay at a batch."""
    monkeypatch.setattr(runner, "EVENT_BATCH", 2000)
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 5000)
    exp = load_config(
        "configs/quickstart.yaml", ["trials=200", "output.events_trials=200", "engine=des"]
    )
    peaks = {}
    for name, target in (("held", None), ("streamed", tmp_path / "events.parquet")):
        tracemalloc.start()
        try:
            result = run(exp, events_to=target)
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(pd.read_parquet(tmp_path / "events.parquet")) > 50_000
    assert peaks["streamed"] < peaks["held"] / 3, peaks
    del result


def test_gcsim_run_leaves_no_hidden_file(tmp_path):
    out = tmp_path / "runs" / "one"
    answer = CliRunner().invoke(
        cli, ["run", "configs/quickstart.yaml", "--out", str(out), "--set", "trials=50"]
    )
    assert answer.exit_code == 0, answer.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["one"]  # no staging file left
    assert len(pd.read_parquet(out / "events.parquet")) > 0
    assert len(pd.read_parquet(out / "summary.parquet")) == 50 * 4
    assert "partial_gc" in answer.output  # the table, computed from the moved file


# --------------------------------------------------------------------------------------------
# The summary streams too: run(..., summary_to=path)

# Fast engine, one traced trial range on the event engine, no gradients: cheap.
QUICK = ["data.gradients=none", "output.events_trials=20"]


@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of two realization blocks and row groups of 700 rows, so that a few hundred
    trials cross range and row-group boundaries (the parent computes the ranges and writes)."""
    monkeypatch.setattr(runner, "STREAM_RANGE_TRIALS", 2 * TRIAL_BLOCK)
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 700)


def _whole(exp, path):
    """The summary as write_run writes a held one."""
    held = run(exp)
    write_parquet(held.summary, path, SUMMARY_COLUMNS)
    return held


def _same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal to the bit, NaN equal to NaN, inf to inf."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for column in a.columns:
        for x, y in zip(a[column], b[column], strict=True):
            if isinstance(x, float) and math.isnan(x):
                assert isinstance(y, float) and math.isnan(y), (column, x, y)
            else:
                assert x == y and type(x) is type(y), (column, x, y)


@pytest.mark.parametrize(
    ("trials", "jobs", "events"),
    [(1, 1, False), (255, 1, True), (513, 1, False), (1100, 1, True), (1100, 2, False),
     (700, 2, True)],
)  # fmt: skip
def test_a_streamed_summary_has_the_bytes_of_the_whole_frame(
    tmp_path, small_ranges, trials, jobs, events
):
    exp = load_config("configs/quickstart.yaml", [*QUICK, f"trials={trials}"])
    held = _whole(exp, tmp_path / "whole.parquet")
    streamed = run(
        exp,
        jobs=jobs,
        events_to=tmp_path / "events.parquet" if events else None,
        summary_to=tmp_path / "summary.parquet",
    )
    assert streamed.summary_file == tmp_path / "summary.parquet"
    assert streamed.held_summary is None  # nothing held
    assert (tmp_path / "summary.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    pd.testing.assert_frame_equal(streamed.summary, held.summary)  # read back, same dtypes
    _same_numbers(streamed.table(), held.table())
    if not events:
        pd.testing.assert_frame_equal(streamed.events, held.events)


def test_a_streamed_summary_of_the_event_engine(tmp_path, small_ranges):
    """Crashes and a shared link: every trial on the event engine, every protocol."""
    exp = load_config("configs/all_schemes.yaml", ["trials=300", "data.gradients=none"])
    held = _whole(exp, tmp_path / "whole.parquet")
    streamed = run(exp, summary_to=tmp_path / "summary.parquet")
    assert (tmp_path / "summary.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    _same_numbers(streamed.table(), held.table())


class _LazyExecutor:
    """Runs nothing until a result is waited for, then every task submitted so far, the last
    first: ranges finish out of order. Counts the ranges submitted and not yet consumed."""

    def __init__(self):
        self.queue, self.submitted, self.consumed, self.most = [], 0, 0, 0

    def submit(self, fn, *args):
        future = _LazyFuture(self)
        self.queue.append((future, fn, args))
        self.submitted += 1
        self.most = max(self.most, self.submitted - self.consumed)
        return future

    def drain(self):
        while self.queue:
            future, fn, args = self.queue.pop()
            future.set_result(fn(*args))


class _LazyFuture(cf.Future):
    def __init__(self, executor):
        super().__init__()
        self.executor = executor

    def result(self, timeout=None):
        self.executor.drain()
        self.executor.consumed += 1
        return super().result(timeout)


def test_ranges_finished_out_of_order_are_written_in_order_from_a_bounded_window(
    tmp_path, small_ranges, monkeypatch
):
    lazy = _LazyExecutor()

    @contextlib.contextmanager
    def open_lazy(jobs, dask):
        yield lazy, "lazy"

    monkeypatch.setattr(executors, "open_executor", open_lazy)
    exp = load_config("configs/quickstart.yaml", [*QUICK, "trials=3000"])
    _whole(exp, tmp_path / "whole.parquet")
    done = []
    result = run(exp, done.append, jobs=3, summary_to=tmp_path / "summary.parquet")
    assert result.executor == "lazy"
    assert lazy.submitted == len(runner.trial_ranges(3000, 4 * 3, 0, 2 * TRIAL_BLOCK)) == 12
    assert lazy.most == 2 * 3  # never more than 2 x jobs ranges held or running
    assert sum(done) == 3000
    assert (tmp_path / "summary.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


def test_bounded_trial_ranges():
    for trials, start, most in [(10_000, 0, 1024), (10_000, 300, 1024), (5000, 0, 100)]:
        ranges = runner.trial_ranges(trials, 1, start, most)
        assert ranges[0][0] == start and sum(count for _, count in ranges) == trials - start
        assert all(count <= max(most, TRIAL_BLOCK) for _, count in ranges)
        assert all(first % TRIAL_BLOCK == 0 for first, _ in ranges[1:])
    assert runner.trial_ranges(1000, 3) == runner.trial_ranges(1000, 3, 0, None)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(0, 60),
    schemes=st.lists(st.sampled_from(["b", "a", "partial_gc ell=2", "c"]), min_size=1,
                     max_size=4, unique=True),
    group=st.integers(1, 25),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_the_table_of_a_file_is_the_table_of_the_frame(
    tmp_path_factory, rows, schemes, group, seed
):
    """Any rows (schemes in any order, a scheme first seen late, inf and NaN, row groups that
    hold some schemes only): the same numbers, to the bit, as scheme_table of the frame."""
    rng = np.random.default_rng(seed)
    times = rng.exponential(1.0, rows)
    times[rng.random(rows) < 0.2] = math.inf
    errors = rng.random(rows) * 1e-3
    errors[rng.random(rows) < 0.3] = math.nan
    names = rng.choice(schemes, rows)
    values = {
        "scheme": names,
        "protocol": [f"p-{name}" for name in names],
        "trial": np.arange(rows),
        "completion_time": times,
        "decoded": np.isfinite(times),
        "rel_error": errors,
    }
    for column, dtype in SUMMARY_COLUMNS.items():  # the rest, whatever the schema holds
        if column not in values:
            values[column] = (rng.integers(0, 10**6, rows) if dtype == "int64"
                              else rng.random(rows) < 0.5 if dtype == "bool"
                              else rng.random(rows))  # fmt: skip
    frame = pd.DataFrame(values).astype(SUMMARY_COLUMNS)
    path = tmp_path_factory.mktemp("table") / "summary.parquet"
    stream = ParquetStream(path, schema_of(SUMMARY_COLUMNS), rows_per_group=group)
    stream.append(frame)
    stream.close()
    _same_numbers(runner.scheme_table_of_file(path), runner.scheme_table(frame))


def test_write_run_moves_a_streamed_summary_and_the_result_follows_it(tmp_path):
    exp = load_config("configs/quickstart.yaml", [*QUICK, "trials=300"])
    held = run(exp)
    staged = tmp_path / ".summary.parquet"
    result = run(exp, events_to=tmp_path / ".events.parquet", summary_to=staged)
    first = write_run(result, tmp_path / "one")
    assert not staged.exists() and not (tmp_path / ".events.parquet").exists()
    assert result.summary_file == first / "summary.parquet"
    assert result.events_file == first / "events.parquet"
    pd.testing.assert_frame_equal(result.summary, held.summary)
    second = write_run(result, tmp_path / "two")  # copies: the first run stays whole
    assert run_problem(first) is None and run_problem(second) is None
    assert (first / "summary.parquet").read_bytes() == (second / "summary.parquet").read_bytes()
    write_run(held, tmp_path / "held")
    for name in ("summary.parquet", "events.parquet"):
        assert (first / name).read_bytes() == (tmp_path / "held" / name).read_bytes()
    assert "held_summary=None" in repr(result)  # the repr reads no file


def test_streaming_bounds_the_memory_of_the_summary(tmp_path, monkeypatch):
    """Peak memory of a streamed run does not grow with the trials; of a held run it does.
    tracemalloc sees NumPy and Python; Arrow allocates from its own pool (the string
    columns, the rows a ParquetStream holds), sampled at every progress report."""
    monkeypatch.setattr(runner, "STREAM_RANGE_TRIALS", 2048)
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 4096)
    settings = ["engine=fast", "data.gradients=none", "output.events_trials=0",
                "schemes=[{protocol: uncoded}]"]  # fmt: skip
    run(load_config("configs/quickstart.yaml", [*settings, "trials=300"]))  # warm caches

    def peak(trials: int, target) -> int:
        exp = load_config("configs/quickstart.yaml", [*settings, f"trials={trials}"])
        start = pa.total_allocated_bytes()
        arrow = [start]
        tracemalloc.start()
        try:
            result = run(exp, lambda n: arrow.append(pa.total_allocated_bytes()),
                         summary_to=target)  # fmt: skip
            traced = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        del result
        return traced + max(arrow) - start

    n = 8192
    streamed = [peak(trials, tmp_path / f"summary-{trials}.parquet") for trials in (n, 8 * n)]
    held = [peak(trials, None) for trials in (n, 8 * n)]
    rows = 7 * n  # one scheme: the rows 8n trials add
    assert streamed[1] - streamed[0] < 8 * rows, streamed  # < 8 bytes a row (measured: ~1)
    assert held[1] - held[0] > 100 * rows, held  # the held frame (measured: ~220 bytes a row)
    assert len(pd.read_parquet(tmp_path / f"summary-{8 * n}.parquet")) == 8 * n


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failing_gcsim_run_leaves_no_hidden_file(tmp_path, monkeypatch, small_ranges, error):
    """The run fails after its first ranges were streamed: the staging files are removed."""
    calls = []
    real = runner.run_range

    def failing(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise error("stop")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_range", failing)
    out = tmp_path / "runs" / "one"
    argv = ["run", "configs/quickstart.yaml", "--out", str(out), "-q", "--set", "trials=2000"]
    answer = CliRunner().invoke(cli, argv)
    if error is KeyboardInterrupt:  # click reports it ("Aborted!") and exits with 1
        assert answer.exit_code == 1 and "Aborted" in answer.output
    else:
        assert answer.exit_code != 0 and isinstance(answer.exception, RuntimeError)
    assert len(calls) == 3  # two ranges were written first
    assert list(tmp_path.iterdir()) == []  # runs/ was made for the run: it goes too
