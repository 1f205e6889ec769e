"""Hand-built trials: a protocol played by the event engine on a realization the test chooses."""

from __future__ import annotations

import numpy as np

from simulator.cluster import TrialDraw
from simulator.coding.registry import build
from simulator.config import from_dict
from simulator.engine.des import EventRecorder, Outcome, simulate


def experiment(
    workers: int, schemes: list[dict], cluster_extra: dict | None = None, **extra
) -> object:
    data = {
        "trials": 1,
        "cluster": {
            "workers": workers,
            "compute": {"dist": "deterministic", "value": 1.0},
            **(cluster_extra or {}),
        },
        "data": {"dim": 12, "gradients": "gaussian"},
        "schemes": schemes,
    }
    for key, value in extra.items():
        data[key] = value
    return from_dict(data)


def play(
    scheme: dict,
    workers: int,
    chunk_time: list[float] | np.ndarray,
    down: list[int] = (),
    crash: dict[int, float] | None = None,
    seed: int = 0,
    trace: bool = False,
    cluster_extra: dict | None = None,
    **extra,
) -> tuple[Outcome, float, list]:
    """Play one trial where worker j needs chunk_time[j] per chunk; returns
    (outcome, rel_error or nan, trace rows)."""
    exp = experiment(workers, [scheme], cluster_extra, seed=seed, **extra)
    (protocol,) = build(exp)
    times = np.repeat(np.asarray(chunk_time, dtype=float)[:, None], protocol.steps, axis=1)
    down_mask = np.zeros(workers, dtype=bool)
    down_mask[list(down)] = True
    crash_time = np.full(workers, np.inf)
    for worker, at in (crash or {}).items():
        crash_time[worker] = at
    draw = TrialDraw(0, times, down_mask, crash_time)
    grads = np.random.default_rng(seed).standard_normal((exp.chunks, exp.data.dim))
    recorder = EventRecorder() if trace else None
    outcome = simulate(
        protocol.new_trial(down_mask, grads),
        protocol.orders,
        draw,
        exp.cluster.network,
        recorder,
        exp.cluster.failures.detect_timeout,
    )
    error = float("nan")
    if outcome.result is not None:
        truth = grads.sum(axis=0)
        diff = outcome.result.estimate - truth
        error = float(diff @ diff / (truth @ truth))
    return outcome, error, recorder.rows if recorder else []
