"""A PS that spends ``network.ps_overhead`` on each message, one at a time: closed forms on
equal workers, the engine choice, the approximate deadline, and ``gcsim fit`` reading the three
network parameters back from a trace."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config import ConfigError, from_dict, load_config
from simulator.engine.choice import fast_problems
from simulator.network_fit import fit_network, network_block
from simulator.runner import run

from .conftest import make_config, write_config
from .scenarios import play

CHUNK = 10.0  # long enough that no second chunk finishes before these trials decode


@settings(max_examples=40, deadline=None)
@given(
    workers=st.integers(2, 10),
    latency=st.floats(0.0, 0.5),
    overhead=st.floats(0.001, 0.1),
)
def test_equal_workers_match_the_queue_closed_forms(workers, latency, overhead) -> None:
    """All m workers finish their first chunk at c. uncoded: m uploads queue at the PS,
    T = c + L + m h. partial_gc (ell 1): the m reports are handled by c + L + m h, when the PS
    plans; its m downloads leave h apart (the k-th at c + L + (m + k) h), each answered by an
    upload arriving 2L later; the PS serves those uploads after its downloads:
    T = max(c + 3L + (m + 1) h, c + L + 2 m h) + m h."""
    network = {"network": {"latency": latency, "ps_overhead": overhead}}
    m, c, L, h = workers, CHUNK, latency, overhead
    uncoded, error, _ = play({"protocol": "uncoded"}, m, [c] * m, cluster_extra=network)
    assert uncoded.completion_time == pytest.approx(c + L + m * h, rel=1e-12)
    assert error < 1e-20
    partial, error, _ = play({"protocol": "partial_gc", "load": 2, "ell": 1}, m, [c] * m,
                             cluster_extra=network)  # fmt: skip
    expected = max(c + 3 * L + (m + 1) * h, c + L + 2 * m * h) + m * h
    assert partial.completion_time == pytest.approx(expected, rel=1e-12)
    assert error < 1e-20
    assert (partial.messages, partial.control_messages) == (m, m)


def test_the_worked_example_trace() -> None:
    """m = 4, c = 1, L = 0.1, h = 0.05: reports handled at 1.15, 1.2, 1.25, 1.3; downloads reach
    the workers at 1.45 ... 1.6; uploads handled at 1.6 ... 1.75 (the first waits for the PS)."""
    network = {"network": {"latency": 0.1, "ps_overhead": 0.05}}
    scheme = {"protocol": "partial_gc", "load": 2, "ell": 1}
    outcome, _, rows = play(scheme, 4, [1.0] * 4, trace=True, cluster_extra=network)
    times = {kind: [t for t, k, *_ in rows if k == kind] for kind in
             ("control_received", "download_received", "upload_received")}  # fmt: skip
    assert times["control_received"] == pytest.approx([1.15, 1.2, 1.25, 1.3])
    assert times["download_received"] == pytest.approx([1.45, 1.5, 1.55, 1.6])
    assert times["upload_received"] == pytest.approx([1.6, 1.65, 1.7, 1.75])
    assert outcome.completion_time == pytest.approx(1.75)


def _experiment(network: dict, schemes: list[dict], trials: int = 40, **extra):
    return from_dict({
        "seed": 3, "trials": trials, **extra,
        "cluster": {"workers": 8, "network": network,
                    "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 2.0,
                                "per": "chunk"}},
        "data": {"dim": 24},
        "schemes": schemes,
    })  # fmt: skip


SCHEMES = [
    {"protocol": "uncoded"},
    {"protocol": "fastest_k", "fraction": 0.75},
    {"protocol": "original_gc", "load": 3, "ell": 1},
    {"protocol": "partial_gc", "load": 3, "ell": 2},
    {"protocol": "multi_message", "load": 3},
]


def test_a_busy_ps_only_delays() -> None:
    """Messages can only wait longer: every trial of every scheme decodes no earlier than on
    the same network without the overhead, and exact decodes stay exact."""
    free = run(_experiment({"latency": 0.05}, SCHEMES)).summary
    busy = run(_experiment({"latency": 0.05, "ps_overhead": 0.03}, SCHEMES)).summary
    assert (busy["completion_time"] >= free["completion_time"] - 1e-12).all()
    assert (busy["completion_time"] > free["completion_time"]).mean() > 0.9
    exact = busy["protocol"] != "fastest_k"
    assert (busy.loc[exact, "rel_error"] < 1e-20).all()


def test_only_the_event_engine_models_it() -> None:
    """auto runs every scheme on the event engine; fast is refused, naming the key."""
    exp = _experiment({"ps_overhead": 0.01}, SCHEMES[:2], trials=4)
    assert [key for key, _ in fast_problems(exp)] == ["cluster.network.ps_overhead"]
    assert set(run(exp).engines.values()) == {"des"}
    with pytest.raises(ConfigError, match="ps_overhead"):
        run(_experiment({"ps_overhead": 0.01}, SCHEMES[:2], trials=4, engine="fast"))


def test_approximate_partial_gc_still_delivers_by_its_deadline() -> None:
    """The plan instant leaves room for the PS's turns: the estimate is in by the deadline."""
    scheme = {"protocol": "partial_gc", "load": 3, "ell": 2, "mode": "approximate",
              "deadline": 2.5}  # fmt: skip
    summary = run(_experiment({"latency": 0.02, "ps_overhead": 0.01}, [scheme])).summary
    assert summary["decoded"].all()
    assert (summary["completion_time"] <= 2.5).all()


def test_an_infinite_overhead_is_refused(tmp_path) -> None:
    data = make_config({"cluster.network": {"ps_overhead": math.inf}})
    with pytest.raises(ConfigError, match="ps_overhead"):
        load_config(write_config(tmp_path / "c.yaml", data))


def test_fit_reads_the_network_back_from_a_trace() -> None:
    """A simulated trace is the model exactly: the queue replay recovers latency, time per float
    and overhead, where the delays alone could not (they fold the queueing into the latency)."""
    truth = {"latency": 0.07, "time_per_float": 2e-3, "ps_overhead": 0.02}
    events = run(_experiment(truth, SCHEMES, trials=15, output={"events_trials": 15})).events
    fitted, quality = fit_network(events)
    for key, value in truth.items():
        assert fitted[key] == pytest.approx(value, rel=1e-5), (key, fitted)
    assert quality["queue"] < 1e-8 < quality["delays"]
    assert network_block(fitted) == (
        "network: {latency: 0.07, time_per_float: 0.002, ps_overhead: 0.02}"
    )


def test_fit_finds_no_overhead_where_there_is_none() -> None:
    truth = {"latency": 0.05, "time_per_float": 0.0}
    events = run(_experiment(truth, SCHEMES, trials=10, output={"events_trials": 10})).events
    fitted, _ = fit_network(events)
    assert fitted["latency"] == pytest.approx(0.05, rel=1e-6)
    assert fitted["ps_overhead"] <= 1e-6 * 0.05
    assert "ps_overhead" not in network_block({**fitted, "ps_overhead": 0.0})


def test_fit_pairs_messages_within_each_iteration() -> None:
    """Iterations restart the clock: a message is matched within its own iteration."""
    truth = {"latency": 0.04, "ps_overhead": 0.01}
    exp = _experiment(truth, SCHEMES[3:4], trials=3, iterations=4, output={"events_trials": 3})
    events = run(exp).events
    assert set(events["iteration"]) == {0, 1, 2, 3}
    fitted, quality = fit_network(events)
    assert fitted["ps_overhead"] == pytest.approx(0.01, rel=1e-5)
    assert quality["queue"] < 1e-8
    assert isinstance(events, pd.DataFrame) and np.isfinite(events["time"]).all()


def test_fit_of_a_free_network_is_zero() -> None:
    """Messages that take no time: every parameter 0, not the optimizer's 1e-22."""
    events = run(_experiment({}, SCHEMES, trials=5, output={"events_trials": 5})).events
    fitted, quality = fit_network(events)
    assert fitted == {"latency": 0.0, "time_per_float": 0.0, "ps_overhead": 0.0}
    assert set(quality.values()) == {0.0}
    assert network_block(fitted) == "network: {latency: 0, time_per_float: 0}"
