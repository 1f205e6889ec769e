"""One traced trial as a Chrome / Perfetto trace (Trace Event Format, JSON object form).

Open the file in https://ui.perfetto.dev (or chrome://tracing) to scroll through a trial: one
process per scheme, one thread per worker plus the parameter server, a slice per chunk computation
and an instant per message, crash, fail-stop, deadline and decode.

Time scale: **one simulated time unit is 1e6 microseconds** (the format's ``ts`` and ``dur`` are in
microseconds), so one time unit reads as one second in the viewer, whatever unit the compute-time
distribution stands for.

Mapping (documented here because viewers show raw ids):

- ``pid`` = 1 + the scheme's position in the config (the ``process_name`` is its label);
- ``tid`` = 0 for the parameter server, ``worker + 1`` for each worker (``thread_name`` names them);
- ``"X"`` complete events: chunk computations, ``args.end`` says how they ended (``done``,
  ``interrupt``: cut off when the PS decoded, ``crash``, ``open``: still running at the trial's
  last event);
- ``"i"`` instant events: messages on the sender's thread when sent and the receiver's when
  received (uploads and control messages go to the PS, downloads come from it), ``down``, ``crash``
  and ``interrupt`` on the worker's thread, ``crash_detected``, ``deadline`` and ``decoded`` on the
  PS thread. They are thread-scoped (``"s": "t"``), except ``decoded`` and ``deadline`` in a trace
  of a single scheme, which are global (``"s": "g"``) so the viewer draws them across every worker.
  ``args`` carries ``worker``, ``chunk`` (-1: none) and ``size`` (floats).

The trace only exists for traced trials: a run records events for its first
``output.events_trials`` trials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

#: Trace microseconds per simulated time unit.
US_PER_TIME_UNIT = 1e6

#: Event kinds that are drawn on the parameter server's thread even though ``worker`` names a
#: worker (the worker is the sender of what the PS receives, or the receiver of what it sends).
PS_SIDE = {
    "upload_received",
    "upload_lost",
    "control_received",
    "control_lost",
    "download_sent",
}
#: Kinds drawn as the span of a chunk rather than as instants.
SPAN_KINDS = {"chunk_start", "chunk_done"}
#: Instants that mark the whole scheme (global when only one scheme is in the trace).
SCHEME_WIDE = {"decoded", "deadline"}


@dataclass(frozen=True)
class ChunkSpan:
    """One chunk computation: from its chunk_start to how it ended."""

    worker: int
    chunk: int
    start: float
    end: float
    status: str  # done | interrupt | crash | open


def chunk_spans(events: pd.DataFrame) -> list[ChunkSpan]:
    """Pair each chunk_start of one (scheme, trial) trace with its end.

    The end is the matching chunk_done, an interrupt (the PS decoded and cut the work off) or a
    crash of that worker; a start with none of these stays ``open`` until the trace's last event.
    There is exactly one span per chunk_start. Events at equal times keep their recorded order.
    """
    if events.empty:
        return []
    ordered = events.sort_values("time", kind="stable")
    t_end = float(ordered["time"].max())
    running: dict[tuple[int, int], float] = {}
    spans: list[ChunkSpan] = []
    for time, kind, worker, chunk in zip(
        ordered["time"].to_numpy(float),
        ordered["kind"].to_numpy(),
        ordered["worker"].to_numpy(int),
        ordered["chunk"].to_numpy(int),
        strict=True,
    ):
        worker, chunk, time = int(worker), int(chunk), float(time)
        if kind == "chunk_start":
            if (worker, chunk) in running:  # restarted without an end: keep both visible
                spans.append(ChunkSpan(worker, chunk, running.pop((worker, chunk)), time, "open"))
            running[(worker, chunk)] = time
        elif kind in ("chunk_done", "interrupt"):
            key = (worker, chunk)
            if key not in running:  # an end naming another chunk: close what the worker runs
                key = next((k for k in running if k[0] == worker), key)
            if key in running:
                status = "done" if kind == "chunk_done" else "interrupt"
                spans.append(ChunkSpan(worker, key[1], running.pop(key), time, status))
        elif kind == "crash":
            for key in [k for k in running if k[0] == worker]:
                spans.append(ChunkSpan(worker, key[1], running.pop(key), time, "crash"))
    for (worker, chunk), start in running.items():
        spans.append(ChunkSpan(worker, chunk, start, max(t_end, start), "open"))
    return sorted(spans, key=lambda s: (s.worker, s.start, s.chunk))


@dataclass(frozen=True)
class TrialTrace:
    """The events of one traced trial, with what is needed to lay them out."""

    trial: int
    schemes: list[str]  # in config order; only the selected one when a scheme was named
    workers: int
    events: pd.DataFrame  # every event of the trial for ``schemes``
    config: dict[str, Any]

    def of(self, scheme: str) -> pd.DataFrame:
        return self.events[self.events["scheme"] == scheme]


def load_trial(run_dir: Path | str, trial: int, scheme: str | None = None) -> TrialTrace:
    """Read one trial's events from a run directory, or explain why there are none.

    Raises ValueError when the scheme is not in the run (naming the ones that are) or the trial
    was not traced (naming the traced trials and the key that controls tracing).
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    config = (
        yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    )
    config = config or {}
    events_path = run_dir / "events.parquet"
    if not events_path.is_file():
        raise ValueError(f"{run_dir} has no events.parquet: it is not a run directory")
    events = pd.read_parquet(events_path)
    labels = [s.get("label") for s in config.get("schemes", []) if isinstance(s, dict)]
    summary_path = run_dir / "summary.parquet"
    if summary_path.is_file():
        labels += list(pd.read_parquet(summary_path, columns=["scheme"])["scheme"])
    known = list(dict.fromkeys([*labels, *events["scheme"]]))
    known = [k for k in known if k is not None]
    if scheme is not None and scheme not in known:
        raise ValueError(
            f"unknown scheme {scheme!r}; the run has: " + ", ".join(repr(k) for k in known)
        )
    traced = sorted(int(t) for t in events["trial"].unique())
    selected = events[events["trial"] == trial]
    if scheme is not None:
        selected = selected[selected["scheme"] == scheme]
    if selected.empty:
        limit = config.get("output", {}).get("events_trials")
        trials = config.get("trials")
        where = (
            f"events exist only for the first {limit} trials (output.events_trials = {limit})"
            if limit is not None
            else "events exist only for the first output.events_trials trials"
        )
        span = _ranges(traced) if traced else "none"
        hint = (
            f"; the run has {trials} trials (0..{trials - 1})"
            if isinstance(trials, int) and not 0 <= trial < trials
            else f"; re-run with --set output.events_trials={trial + 1} to trace it"
        )
        raise ValueError(f"trial {trial} was not traced: {where}; traced trials: {span}{hint}")
    schemes = [k for k in known if k in set(selected["scheme"])]
    workers = config.get("cluster", {}).get("workers")
    if not isinstance(workers, int):
        workers = int(events["worker"].max()) + 1 if not events.empty else 0
    workers = max(workers, int(selected["worker"].max()) + 1)
    return TrialTrace(trial, schemes, workers, selected, config)


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``."""
    parts: list[str] = []
    start = prev = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ", ".join(parts)


def _us(time: float) -> float:
    return round(float(time) * US_PER_TIME_UNIT, 3)


def chrome_trace(run_dir: Path | str, trial: int, scheme: str | None = None) -> dict[str, Any]:
    """The Trace Event Format object of one traced trial: every scheme (one process each), or
    only ``scheme``. See the module docstring for the mapping and the time scale."""
    trace = load_trial(run_dir, trial, scheme)
    single = len(trace.schemes) == 1
    out: list[dict[str, Any]] = []
    pids = {}
    for index, name in enumerate(_config_order(trace)):
        if name in trace.schemes:
            pids[name] = index + 1
    for name in trace.schemes:
        pid = pids[name]
        out.append(_meta("process_name", pid, 0, f"{name} (trial {trial})"))
        out.append(_meta("thread_name", pid, 0, "PS"))
        for worker in range(trace.workers):
            out.append(_meta("thread_name", pid, worker + 1, f"worker {worker}"))
    timed: list[dict[str, Any]] = []
    for name in trace.schemes:
        pid = pids[name]
        events = trace.of(name)
        for span in chunk_spans(events):
            timed.append(
                {
                    "name": f"chunk {span.chunk}",
                    "cat": "compute",
                    "ph": "X",
                    "ts": _us(span.start),
                    "dur": max(0.0, round(_us(span.end) - _us(span.start), 3)),
                    "pid": pid,
                    "tid": span.worker + 1,
                    "args": {"chunk": span.chunk, "worker": span.worker, "end": span.status},
                }
            )
        for time, kind, worker, chunk, size in zip(
            events["time"],
            events["kind"],
            events["worker"],
            events["chunk"],
            events["size"],
            strict=True,
        ):
            if kind in SPAN_KINDS:
                continue
            worker = int(worker)
            on_ps = worker < 0 or kind in PS_SIDE
            scope = "g" if single and kind in SCHEME_WIDE else "t"
            timed.append(
                {
                    "name": str(kind),
                    "cat": _category(str(kind)),
                    "ph": "i",
                    "s": scope,
                    "ts": _us(time),
                    "pid": pid,
                    "tid": 0 if on_ps else worker + 1,
                    "args": {"worker": worker, "chunk": int(chunk), "size": int(size)},
                }
            )
    timed.sort(key=lambda e: (e["ts"], e["pid"], e["tid"]))
    return {
        "traceEvents": out + timed,
        "displayTimeUnit": "ms",
        "otherData": {
            "run": str(Path(run_dir)),
            "trial": trial,
            "schemes": trace.schemes,
            "time_scale": "1 simulated time unit = 1e6 us (reads as 1 s)",
        },
    }


def _config_order(trace: TrialTrace) -> list[str]:
    labels = [s.get("label") for s in trace.config.get("schemes", []) if isinstance(s, dict)]
    labels = [label for label in labels if label is not None]
    return labels + [s for s in trace.schemes if s not in labels]


def _meta(name: str, pid: int, tid: int, value: str) -> dict[str, Any]:
    return {"name": name, "ph": "M", "ts": 0, "pid": pid, "tid": tid, "args": {"name": value}}


def _category(kind: str) -> str:
    if kind.startswith(("upload", "control", "download")):
        return "message"
    if kind in ("down", "crash", "crash_detected"):
        return "failure"
    return "ps" if kind in SCHEME_WIDE else "worker"


def write_chrome_trace(
    run_dir: Path | str, trial: int, scheme: str | None, out_path: Path | str
) -> Path:
    """Write :func:`chrome_trace` as strict JSON (no NaN) and return the path."""
    data = chrome_trace(run_dir, trial, scheme)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(data, allow_nan=False), encoding="utf-8")
    return out_path
