"""Chrome / Perfetto traces of a traced trial, checked against the Trace Event Format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from simulator.config import load_config
from simulator.perfetto import US_PER_TIME_UNIT, chrome_trace, chunk_spans, write_chrome_trace
from simulator.results import write_run
from simulator.runner import run

pytestmark = pytest.mark.filterwarnings("error")

ROOT = Path(__file__).resolve().parents[1]
PHASES = {"X", "i", "M"}
METADATA = {"process_name", "thread_name"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all_schemes: crashes, fail-stop workers, interrupts, deadlines; trials 0-4 traced."""
    exp = load_config(ROOT / "configs" / "all_schemes.yaml", ["trials=8"])
    return write_run(run(exp), tmp_path_factory.mktemp("trace") / "run", argv=["test"])


@pytest.fixture(scope="module")
def events(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "events.parquet")


def check_format(trace: dict) -> None:
    """The Trace Event Format's required fields, for the phases this module emits."""
    assert set(trace) >= {"traceEvents", "displayTimeUnit"}
    assert trace["displayTimeUnit"] in ("ms", "ns")
    assert trace["traceEvents"], "empty trace"
    for event in trace["traceEvents"]:
        assert {"name", "ph", "ts", "pid", "tid"} <= set(event), event
        assert event["ph"] in PHASES, event
        assert isinstance(event["name"], str) and event["name"]
        assert isinstance(event["ts"], int | float) and not isinstance(event["ts"], bool)
        assert math.isfinite(event["ts"]) and event["ts"] >= 0, event
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        assert event["tid"] >= 0 and event["pid"] >= 1
        if event["ph"] == "X":
            assert isinstance(event["dur"], int | float) and event["dur"] >= 0, event
        if event["ph"] == "M":
            assert event["name"] in METADATA
            assert isinstance(event["args"]["name"], str) and event["args"]["name"]
        if event["ph"] == "i":
            assert event["s"] in ("t", "g", "p"), event
        if "args" in event:
            assert isinstance(event["args"], dict)


def traced(events: pd.DataFrame, trial: int, scheme: str) -> pd.DataFrame:
    return events[(events["trial"] == trial) & (events["scheme"] == scheme)]


@pytest.mark.parametrize("trial", [0, 2])
def test_one_scheme_trace_is_valid_and_complete(run_dir: Path, events: pd.DataFrame, trial: int):
    scheme = "partial ell=2 T=8"
    trace = chrome_trace(run_dir, trial, scheme)
    check_format(trace)
    mine = traced(events, trial, scheme)
    all_events = trace["traceEvents"]
    # One slice per chunk computation, one instant per other event.
    slices = [e for e in all_events if e["ph"] == "X"]
    assert len(slices) == (mine["kind"] == "chunk_start").sum()
    instants = [e for e in all_events if e["ph"] == "i"]
    assert len(instants) == (~mine["kind"].isin(["chunk_start", "chunk_done"])).sum()
    # One process; the PS is thread 0, worker w is thread w + 1, every thread is named.
    assert {e["pid"] for e in all_events} == {1 + 9}  # the tenth scheme of the config
    names = {(e["tid"]): e["args"]["name"] for e in all_events if e["name"] == "thread_name"}
    assert names[0] == "PS" and names[1] == "worker 0" and names[24] == "worker 23"
    assert {e["tid"] for e in all_events} <= set(names)
    [process] = [e for e in all_events if e["name"] == "process_name"]
    assert process["args"]["name"].startswith(scheme)
    # Time scale: 1 simulated time unit = 1e6 us; slices start at their chunk_start.
    starts = sorted(mine.loc[mine["kind"] == "chunk_start", "time"] * US_PER_TIME_UNIT)
    assert sorted(e["ts"] for e in slices) == pytest.approx(starts, abs=1e-3)
    end = mine["time"].max() * US_PER_TIME_UNIT
    assert all(e["ts"] + e["dur"] <= end + 1e-3 for e in slices)
    for event in slices:
        assert event["name"] == f"chunk {event['args']['chunk']}"
        assert event["tid"] == event["args"]["worker"] + 1
        assert event["args"]["end"] in {"done", "interrupt", "crash", "open"}
    # PS-side events on thread 0, decode and deadline global in a one-scheme trace.
    for event in instants:
        assert {"chunk", "size", "worker"} <= set(event["args"])
        if event["name"] in ("decoded", "deadline", "crash_detected", "upload_received"):
            assert event["tid"] == 0
        if event["name"] in ("crash", "down", "upload_sent", "download_received"):
            assert event["tid"] == event["args"]["worker"] + 1
        assert event["s"] == ("g" if event["name"] in ("decoded", "deadline") else "t")
    assert [e["name"] for e in instants].count("deadline") == (mine["kind"] == "deadline").sum()


def test_trial_with_down_worker_and_crash(run_dir: Path, events: pd.DataFrame) -> None:
    kinds = events.groupby(["trial", "scheme"])["kind"].agg(set)
    (trial, scheme) = next(k for k, v in kinds.items() if {"down", "crash"} <= v)
    trace = chrome_trace(run_dir, trial, scheme)
    check_format(trace)
    names = [e["name"] for e in trace["traceEvents"] if e["ph"] == "i"]
    mine = traced(events, trial, scheme)
    assert names.count("down") == (mine["kind"] == "down").sum() >= 1
    assert names.count("crash") == (mine["kind"] == "crash").sum() >= 1
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    crashed = set(mine.loc[(mine["kind"] == "crash") & (mine["chunk"] >= 0), "worker"])
    assert {e["args"]["worker"] for e in slices if e["args"]["end"] == "crash"} == crashed
    down = set(mine.loc[mine["kind"] == "down", "worker"])
    assert not {e["args"]["worker"] for e in slices} & down  # a fail-stop worker computes nothing


def test_every_scheme_is_a_process(run_dir: Path, events: pd.DataFrame) -> None:
    trace = chrome_trace(run_dir, 1)
    check_format(trace)
    processes = {
        e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"
    }
    assert len(processes) == 10 and sorted(processes) == list(range(1, 11))
    assert processes[1].startswith("uncoded")
    slices = sum(e["ph"] == "X" for e in trace["traceEvents"])
    assert slices == ((events["trial"] == 1) & (events["kind"] == "chunk_start")).sum()
    # Several schemes in one trace: no instant is global (it would cross every process).
    assert all(e.get("s") == "t" for e in trace["traceEvents"] if e["ph"] == "i")
    # Metadata first, then events in time order.
    phases = [e["ph"] for e in trace["traceEvents"]]
    assert phases.index("X") > max(i for i, p in enumerate(phases) if p == "M")
    timed = [e["ts"] for e in trace["traceEvents"] if e["ph"] != "M"]
    assert timed == sorted(timed)


def test_write_round_trips(run_dir: Path, tmp_path: Path) -> None:
    out = write_chrome_trace(run_dir, 0, "uncoded", tmp_path / "deep" / "trace.json")
    assert out == tmp_path / "deep" / "trace.json"
    loaded = json.loads(out.read_text(encoding="utf-8"))
    assert loaded == chrome_trace(run_dir, 0, "uncoded")
    assert json.loads(json.dumps(loaded)) == loaded
    check_format(loaded)


def test_untraced_trial_is_a_helpful_error(run_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"trial 6 was not traced.*events_trials = 5.*0-4"):
        chrome_trace(run_dir, 6)
    with pytest.raises(ValueError, match=r"the run has 8 trials"):
        chrome_trace(run_dir, 99, "uncoded")


def test_unknown_scheme_lists_the_known_ones(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown scheme 'partial'.*'uncoded'.*'partial ell=2'"):
        chrome_trace(run_dir, 0, "partial")
    with pytest.raises(ValueError, match="unknown scheme"):
        write_chrome_trace(run_dir, 0, "partial", tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


def test_chunk_spans_pair_every_start() -> None:
    rows = [
        (0.0, "chunk_start", 0, 0),
        (0.0, "chunk_start", 1, 1),
        (0.0, "chunk_start", 2, 2),
        (1.0, "chunk_done", 0, 0),
        (1.0, "chunk_start", 0, 1),
        (1.5, "crash", 1, 1),
        (2.0, "decoded", -1, -1),
        (2.0, "interrupt", 0, 1),
        (0.0, "chunk_start", 3, 3),
        (2.5, "upload_received", 3, -1),
    ]
    frame = pd.DataFrame(rows, columns=["time", "kind", "worker", "chunk"])
    spans = {(s.worker, s.chunk): (s.start, s.end, s.status) for s in chunk_spans(frame)}
    assert spans == {
        (0, 0): (0.0, 1.0, "done"),
        (0, 1): (1.0, 2.0, "interrupt"),
        (1, 1): (0.0, 1.5, "crash"),
        (2, 2): (0.0, 2.5, "open"),
        (3, 3): (0.0, 2.5, "open"),
    }
