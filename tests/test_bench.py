"""The benchmark's baselines do the work they claim, and the benchmark reports what it says."""

from __future__ import annotations

import math

import pytest

from simulator import bench
from simulator.runner import run_trials
from simulator.tuning import _blas_libraries, blas_threads


@pytest.mark.parametrize(
    "workers, chunks, messages", [(1, 5, 0), (4, 37, 11), (6, 3, 9), (3, 0, 4)]
)
def test_bare_models_process_exactly_the_events_asked_for(workers, chunks, messages):
    with bench.counting_events() as floor:
        bench.bare_simpy_trial(workers, chunks, messages)
    assert floor["Timeout:chunk_done"] == chunks
    assert floor["Timeout:arrive"] == messages
    assert sum(floor.values()) == chunks + messages
    with bench.counting_events() as processes:
        bench.bare_simpy_processes_trial(workers, chunks, messages)
    assert processes["Initialize"] == workers
    assert processes["Timeout:_resume"] == chunks
    assert processes["Timeout:arrive"] == messages


def test_event_counts_cover_the_engine_work():
    """Every chunk the event engine counts is a processed chunk timeout, every upload and control
    message a processed arrival or one still on the wire when the trial ended."""
    exp = bench.bench_experiment(12, 3, 6, decode_cond=True)
    counted = bench.des_events(exp, 0, 6)
    summary, _ = run_trials(exp, 0, 6)
    assert len(counted) == len(summary)
    for (live, counts), row in zip(counted, summary.itertuples(), strict=True):
        assert live == 12  # no failures in the benchmark experiment
        assert counts["Timeout:chunk_done"] >= row.chunks_computed
        workers, chunks, messages = bench._bare_shape(live, counts)
        assert chunks + messages == sum(counts.values())
        assert messages <= row.messages + row.control_messages + 12  # + at most one download each


def test_benchmark_reports_both_engines_and_all_ratios():
    result = bench.run_benchmark(sizes=((8, 2),), trials=(3, 64), repeats=1, quick=True)
    (entry,) = result["sizes"]
    for key in ("all", "all_decode_cond"):
        r = entry[key]
        assert "original_gc" in r["schemes"]
        for ratio in (
            "des_per_event_vs_bare_simpy",
            "des_per_event_vs_bare_processes",
            "fast_per_trial_vs_bare_numpy",
        ):
            assert math.isfinite(r[ratio]) and r[ratio] > 0
        assert r["des"]["events_per_trial"] == pytest.approx(
            r["bare_simpy"]["events_per_trial"], rel=0.02
        )
        assert r["des"]["trials_per_second"] > 0 and r["fast"]["trials_per_second"] > 0
    assert result["memory"]["fast_bytes_per_row"] > 0
    table = bench.format_table(result)
    assert table.row_count == 2


def test_blas_threads_are_set_and_restored():
    libraries = _blas_libraries()
    if not libraries:
        pytest.skip("no OpenBLAS loaded")
    lib, pattern = libraries[0]
    get = getattr(lib, pattern % "get")
    before = get()
    with blas_threads(1) as previous:
        assert get() == 1
        assert previous == before
    assert get() == before


def test_counting_events_restores_simpy():
    import simpy

    def two_timeouts(env):
        yield env.timeout(1.0)
        yield env.timeout(1.0)

    def play() -> None:
        env = simpy.Environment()
        env.process(two_timeouts(env))
        env.run()

    step = simpy.Environment.step
    with bench.counting_events() as counts:
        assert simpy.Environment.step is not step
        play()
        assert sum(n for kind, n in counts.items() if kind.startswith("Timeout")) == 2, counts
        seen = dict(counts)
    assert simpy.Environment.step is step
    play()  # once restored, nothing is counted any more
    assert dict(counts) == seen


def test_simulating_restores_the_collector_even_across_threads():
    import gc
    import threading

    from simulator.tuning import GC_THRESHOLD, simulating

    before = gc.get_threshold()
    inside = threading.Barrier(3)
    seen = []

    def run():
        with simulating():
            inside.wait()
            seen.append(gc.get_threshold()[0])
            inside.wait()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    inside.wait()
    for thread in threads:
        thread.join()
    assert seen == [max(before[0], GC_THRESHOLD)] * 2
    assert gc.get_threshold() == before
