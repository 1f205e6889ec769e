"""One suite every registered protocol must pass (the way scikit-learn checks every estimator).

Each protocol declares ``examples`` (scheme parameters on 12 workers); every example is run on
random Pareto speeds with fail-stop failures and mid-trial crashes, and checked for: decoded
implies rel_error below the protocol's bound; no decode before the data it needs was computed;
summary counts equal sums over the event trace; same seed, same results; in approximate mode, a
later deadline never leaves a larger coefficient residual.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.coding.registry import PROTOCOLS, build
from simulator.config import from_dict
from simulator.runner import run

WORKERS = 12
CASES = [
    pytest.param(name, example, id=f"{name}-{i}")
    for name, cls in PROTOCOLS.items()
    for i, example in enumerate(cls.examples)
]


def experiment(name: str, example: dict, trials: int = 120, seed: int = 11, crash_rate=0.02):
    return from_dict(
        {
            "seed": seed,
            "trials": trials,
            "cluster": {
                "workers": WORKERS,
                "compute": {"dist": "pareto", "scale": 1.0, "alpha": 2.0, "per": "worker"},
                "failures": {"prob": 0.08, "crash_rate": crash_rate, "detect_timeout": 0.5},
                "network": {"latency": 0.01, "time_per_float": 1e-4},
            },
            "data": {"dim": 30, "gradients": "gaussian"},
            "output": {"events_trials": 40},
            "schemes": [{"protocol": name, **example}],
        }
    )


@pytest.fixture(scope="module")
def results():
    cache = {}

    def get(name, example):
        key = (name, repr(sorted(example.items())))
        if key not in cache:
            cache[key] = run(experiment(name, example))
        return cache[key]

    return get


def test_every_protocol_declares_examples():
    for name, cls in PROTOCOLS.items():
        assert cls.examples, f"{name} declares no examples for the conformance suite"


@pytest.mark.parametrize("name, example", CASES)
def test_decoded_means_error_below_the_bound(results, name, example):
    result = results(name, example)
    (protocol,) = build(result.config)
    summary = result.summary
    decoded = summary[summary.decoded]
    assert len(decoded) >= 20, "too few decoded trials to check anything"
    assert (decoded.rel_error <= protocol.error_bound()).all()
    assert (decoded.rel_error >= 0).all()
    undecoded = summary[~summary.decoded]
    assert np.isinf(undecoded.completion_time).all() and undecoded.rel_error.isna().all()


@pytest.mark.parametrize("name, example", CASES)
def test_never_decodes_before_its_data_exists(results, name, example):
    result = results(name, example)
    (protocol,) = build(result.config)
    summary, events = result.summary, result.events
    assert (summary.chunks_used <= summary.chunks_computed).all()
    for row in summary[summary.decoded & (summary.trial < 40)].itertuples():
        ev = events[events.trial == row.trial]
        done = ev[(ev.kind == "chunk_done") & (ev.time <= row.completion_time)]
        assert len(done) == row.chunks_computed
        if protocol.exact:  # an exact decode needs every chunk computed somewhere
            assert set(done.chunk) == set(range(WORKERS)), row.trial
        # Nothing reaches the PS before it was computed and sent.
        first_upload = ev[ev.kind == "upload_received"].time.min()
        first_done = ev[ev.kind == "chunk_done"].time.min()
        if np.isfinite(first_upload):
            assert first_upload >= first_done


@pytest.mark.parametrize("name, example", CASES)
def test_counts_equal_sums_over_the_trace(results, name, example):
    result = results(name, example)
    summary, events = result.summary, result.events
    for row in summary[summary.trial < 40].itertuples():
        ev = events[events.trial == row.trial]
        uploads = ev[ev.kind == "upload_sent"]
        assert row.upload_floats == uploads["size"].sum()
        assert row.messages == len(uploads)
        assert row.control_messages == (ev.kind == "control_sent").sum()
        assert row.download_floats == ev[ev.kind == "download_sent"]["size"].sum()
        assert row.chunks_computed == (ev.kind == "chunk_done").sum()
        assert (ev.time <= row.completion_time).all()
        crashed = set(ev[ev.kind == "crash"].worker)
        by_worker = ev.kind.isin(["control_sent", "upload_sent"])  # (downloads name the receiver)
        sent_after_crash = ev[ev.worker.isin(crashed) & by_worker]
        for crash in ev[ev.kind == "crash"].itertuples():
            assert not (
                (sent_after_crash.worker == crash.worker) & (sent_after_crash.time > crash.time)
            ).any()


@pytest.mark.parametrize("name, example", CASES)
def test_same_seed_same_results(results, name, example):
    again = run(experiment(name, example))
    pd.testing.assert_frame_equal(results(name, example).summary, again.summary)
    pd.testing.assert_frame_equal(results(name, example).events, again.events)


APPROXIMATE = [
    pytest.param(name, example, id=f"{name}-{i}")
    for name, cls in PROTOCOLS.items()
    for i, example in enumerate(cls.examples)
    if example.get("mode") == "approximate"
]


@pytest.mark.parametrize("name, example", APPROXIMATE)
def test_later_deadline_never_leaves_a_larger_residual(name, example):
    residuals = []
    for deadline in (0.5, 1.5, 3.0, 6.0, 12.0):
        exp = experiment(name, {**example, "deadline": deadline}, trials=80, crash_rate=0.0)
        summary = run(exp).summary.sort_values("trial")
        residuals.append(summary.residual.to_numpy())
    residuals = np.array(residuals)
    assert np.all(np.diff(residuals, axis=0) <= 1e-9), "residual increased with the deadline"
    assert residuals[0].mean() > residuals[-1].mean()
