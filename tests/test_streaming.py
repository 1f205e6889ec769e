"""Event traces stream to parquet in batches: same bytes as written whole, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import parquet, runner
from simulator.cli import cli
from simulator.config import load_config
from simulator.parquet import ParquetStream, schema_of, write_parquet
from simulator.runner import EVENT_COLUMNS, run


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
        cli, ["run", "configs/quickstart.yaml", "--out", str(out), "-q", "--set", "trials=50"]
    )
    assert answer.exit_code == 0, answer.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["one"]
    assert len(pd.read_parquet(out / "events.parquet")) > 0
