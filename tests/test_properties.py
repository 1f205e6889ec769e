"""Invariants of whole runs: pairing, exactness, determinism, and agreement with the trace."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config import from_dict
from simulator.results import write_run
from simulator.runner import run, run_trials

from .scenarios import play


def random_run(trials=300, seed=7, prob=0.1, dist=None, gradients="gaussian", ell=1, **cluster):
    schemes = [
        {"protocol": "uncoded"},
        {"protocol": "fastest_k", "k": 10},
        {"protocol": "original_gc", "load": 4, "ell": 1},
        {"protocol": "partial_gc", "load": 4, "ell": ell},
    ]
    data = {
        "seed": seed,
        "trials": trials,
        "cluster": {
            "workers": 12,
            "compute": dist or {"dist": "pareto", "scale": 1.0, "alpha": 1.5, "per": "chunk"},
            "failures": {"prob": prob},
            **cluster,
        },
        "data": {"dim": 40, "gradients": gradients},
        "output": {"events_trials": 5},
        "schemes": schemes,
    }
    return from_dict(data)


@pytest.fixture(scope="module")
def pareto_run():
    return run(random_run())


def by_scheme(summary: pd.DataFrame, scheme: str) -> pd.DataFrame:
    return summary[summary.scheme == scheme].set_index("trial").sort_index()


def test_partial_never_later_than_original_on_the_same_realization(pareto_run):
    partial = by_scheme(pareto_run.summary, "partial_gc")
    original = by_scheme(pareto_run.summary, "original_gc")
    assert (partial.completion_time <= original.completion_time).all()
    assert (partial.completion_time < original.completion_time).mean() > 0.9
    # Where the original decodes, the partial protocol does too.
    assert (partial.decoded | ~original.decoded).all()


@pytest.mark.parametrize("per", ["worker", "chunk"])
def test_partial_never_later_than_original_under_other_speeds(per):
    dist = {
        "dist": "bimodal",
        "p_slow": 0.2,
        "per": per,
        "fast": {"dist": "exponential", "rate": 2.0},
        "slow": {"dist": "shifted_exponential", "shift": 3.0, "rate": 0.5},
    }
    result = run(random_run(trials=200, seed=3, prob=0.15, dist=dist))
    partial = by_scheme(result.summary, "partial_gc")
    original = by_scheme(result.summary, "original_gc")
    assert (partial.completion_time <= original.completion_time).all()


def test_exact_schemes_recover_the_gradient_and_undecoded_are_reported(pareto_run):
    summary = pareto_run.summary
    exact = summary[summary.protocol.isin(["uncoded", "original_gc", "partial_gc"])]
    decoded = exact[exact.decoded]
    assert len(decoded) > 0.5 * len(exact)
    assert (decoded.rel_error < 1e-20).all(), decoded.rel_error.max()
    assert np.isfinite(decoded.completion_time).all()
    undecoded = summary[~summary.decoded]
    assert len(undecoded) > 0  # 10% failures: uncoded fails often
    assert np.isinf(undecoded.completion_time).all()
    assert undecoded.rel_error.isna().all()
    assert (undecoded.chunks_used == 0).all()


def test_fastest_k_is_approximate_but_sensible(pareto_run):
    fastest = by_scheme(pareto_run.summary, "fastest_k")
    decoded = fastest[fastest.decoded]
    # 10 of 12 single-chunk uploads rescaled by 12/10: error is that of a subsample sum.
    assert 0.01 < decoded.rel_error.mean() < 1.0
    assert (decoded.chunks_used == 10).all()


def test_undecodable_trials_when_too_many_are_down():
    result = run(random_run(trials=50, prob=0.0, workers=12, failures={"workers": [0, 1, 2, 3]}))
    summary = result.summary
    original = by_scheme(summary, "original_gc")  # s = 3 < 4 down
    assert not original.decoded.any()
    partial = by_scheme(summary, "partial_gc")  # chunk 3 is held by workers 0..3 only
    assert not partial.decoded.any()


def test_same_seed_gives_identical_summary_bytes(tmp_path):
    exp = random_run(trials=120)
    first = write_run(run(exp), tmp_path / "a", argv=["test"])
    second = write_run(run(exp), tmp_path / "b", argv=["test"])
    for name in ("summary.parquet", "events.parquet"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_other_seed_gives_other_numbers():
    a = run(random_run(trials=50, seed=1)).summary
    b = run(random_run(trials=50, seed=2)).summary
    assert not np.array_equal(a.completion_time.to_numpy(), b.completion_time.to_numpy())


def test_any_split_into_trial_ranges_gives_the_same_rows():
    exp = random_run(trials=600)
    whole, whole_events = run_trials(exp, 0, 600)
    parts = [run_trials(exp, a, b - a) for a, b in [(0, 100), (100, 357), (357, 600)]]
    pd.testing.assert_frame_equal(whole, pd.concat([p[0] for p in parts], ignore_index=True))
    pd.testing.assert_frame_equal(whole_events, pd.concat([p[1] for p in parts], ignore_index=True))


def test_adding_a_scheme_does_not_change_the_others():
    exp = random_run(trials=100)
    fewer = from_dict({**exp.resolved(), "schemes": exp.resolved()["schemes"][2:]})
    full = run(exp).summary
    part = run(fewer).summary
    for scheme in ("original_gc", "partial_gc"):
        pd.testing.assert_frame_equal(
            by_scheme(full, scheme).reset_index(), by_scheme(part, scheme).reset_index()
        )


def test_counts_in_the_summary_equal_sums_over_the_trace(pareto_run):
    events = pareto_run.events
    summary = pareto_run.summary
    traced = summary[summary.trial < 5]
    assert set(events.trial) == set(range(5))
    for row in traced.itertuples():
        ev = events[(events.scheme == row.scheme) & (events.trial == row.trial)]
        uploads = ev[ev.kind == "upload_sent"]
        assert row.upload_floats == uploads["size"].sum()
        assert row.messages == len(uploads)
        assert row.control_messages == (ev.kind == "control_sent").sum()
        assert row.download_floats == ev[ev.kind == "download_sent"]["size"].sum()
        assert row.chunks_computed == (ev.kind == "chunk_done").sum()
        if row.decoded:
            (decode_time,) = ev[ev.kind == "decoded"].time
            assert decode_time == row.completion_time
            assert ev.time.max() == row.completion_time


def test_no_chunk_is_done_by_a_down_worker(pareto_run):
    events = pareto_run.events
    down = events[events.kind == "down"][["scheme", "trial", "worker"]]
    done = events[events.kind == "chunk_done"][["scheme", "trial", "worker"]]
    assert len(down.merge(done)) == 0


def test_numerics_off_gives_nan_errors_and_same_times(pareto_run):
    off = run(random_run(gradients="none")).summary
    assert off.rel_error.isna().all()
    np.testing.assert_array_equal(off.completion_time, pareto_run.summary.completion_time)


@settings(max_examples=60, deadline=None)
@given(
    workers=st.integers(3, 14),
    data=st.data(),
)
def test_partial_gc_exact_on_random_progress(workers, data):
    """Random speeds and failures: whenever partial_gc decodes, it is exact; and it decodes
    exactly when every chunk has ell live holders."""
    load = data.draw(st.integers(1, workers), label="load")
    ell = data.draw(st.integers(1, load), label="ell")
    speeds = data.draw(st.lists(st.floats(0.1, 10.0), min_size=workers, max_size=workers))
    down = data.draw(st.sets(st.integers(0, workers - 1), max_size=workers - 1))
    outcome, error, _ = play(
        {"protocol": "partial_gc", "load": load, "ell": ell}, workers, speeds, down=sorted(down)
    )
    live_holders = [
        sum(1 for j in range(workers) if j not in down and (i - j) % workers < load)
        for i in range(workers)
    ]
    assert outcome.decoded == (min(live_holders) >= ell)
    if outcome.decoded:
        assert error < 1e-20
        # It stops at the ell-th earliest copy of the slowest-covered chunk.
        finish = []
        for i in range(workers):
            copies = sorted(
                speeds[j] * ((i - j) % workers + 1)
                for j in range(workers)
                if j not in down and (i - j) % workers < load
            )
            finish.append(copies[ell - 1])
        assert math.isclose(outcome.completion_time, max(finish), rel_tol=1e-12)
