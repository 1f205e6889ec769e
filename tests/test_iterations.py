"""Trials of several iterations and workers that differ: persistent (Markov) stragglers, groups
with their own compute law, slowdown forms that survive a sweep, slow racks, start-up delays.

The Markov chain is checked against its closed forms (stationary slow fraction, mean sojourns);
the engines against each other and against hand-computed times; ranges against whole runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.cluster import Cluster
from simulator.config import ConfigError, from_dict
from simulator.runner import run, run_range
from simulator.sweep import run_sweep
from simulator.testing import assert_same_rows
from simulator.workers import MarkovChain, MarkovStragglers


def _config(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seed": 5,
        "trials": 12,
        "iterations": 6,
        "cluster": {
            "workers": 6,
            "groups": [
                {"count": 2, "compute": {"dist": "shifted_exponential", "shift": 2.0, "rate": 1.0}},
                {"compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 2.0,
                             "per": "chunk"}},
            ],
            "slowdown": {"fraction": 0.2, "factor": 2.0},
            "racks": {"size": 3, "prob": 0.2, "factor": 1.5},
            "stragglers": {"p_slow": 0.1, "p_recover": 0.3, "factor": 4.0},
            "delay": {"dist": "exponential", "rate": 4.0},
        },
        "data": {"dim": 8},
        "schemes": [
            {"protocol": "uncoded"},
            {"protocol": "fastest_k", "k": 4},
            {"protocol": "original_gc", "load": 3},
            {"protocol": "partial_gc", "load": 3},
            {"protocol": "partial_gc", "load": 3, "mode": "approximate", "deadline": 4.0},
        ],
    }  # fmt: skip
    for key, value in changes.items():
        target = base
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    return base


# --------------------------------------------------------------------------------------------
# The two-state chain against its closed forms


def test_markov_chain_matches_its_stationary_fraction_and_mean_sojourns() -> None:
    p, q, n = 0.1, 0.3, 1200
    chain = MarkovChain(seed=11, workers=8, model=MarkovStragglers(p_slow=p, p_recover=q,
                        factor=3.0), iterations=n)  # fmt: skip
    # A block holds whole trials (one of 1,200 iterations here): 64 blocks, 512 chains.
    states = np.concatenate([chain.states(block) for block in range(64)])
    slow = states.transpose(0, 2, 1).reshape(-1, n)  # one chain per row
    # Chains are independent (trials x workers); steps within one are not: the standard error
    # of the slow fraction comes from the chains' own means.
    means = slow.mean(axis=1)
    se = means.std(ddof=1) / np.sqrt(len(means))
    assert abs(means.mean() - p / (p + q)) < 4 * se

    # Sojourns: runs that start after an observed switch and before the last `margin` steps
    # (a run that long has probability < 1e-9, so none is cut off by the window's end).
    margin = 200
    for state, rate in ((True, q), (False, p)):
        lengths = []
        for row in slow:
            switches = np.flatnonzero(row[1:] != row[:-1]) + 1
            starts = switches[(row[switches] == state) & (switches < n - margin)]
            ends = np.append(switches, n)
            for start in starts:
                lengths.append(ends[np.searchsorted(ends, start, side="right")] - start)
        lengths = np.asarray(lengths, dtype=float)
        se = lengths.std(ddof=1) / np.sqrt(len(lengths))
        assert abs(lengths.mean() - 1 / rate) < 4 * se, (state, lengths.mean(), 1 / rate, se)


def test_a_chain_that_never_moves_has_no_stragglers_and_an_absorbing_one_is_all_slow() -> None:
    frozen = MarkovStragglers(p_slow=0.0, p_recover=0.0, factor=2.0)
    assert frozen.slow_fraction() == 0.0
    assert not MarkovChain(1, 4, frozen, 5).states(0).any()
    absorbing = MarkovStragglers(p_slow=0.2, p_recover=0.0, factor=2.0)
    assert MarkovChain(1, 4, absorbing, 5).states(0).all()


def test_the_drawn_times_carry_the_chain_state_over_the_iterations() -> None:
    spec = _config(**{"cluster.groups": [], "cluster.slowdown": [], "cluster.racks": None,
                      "cluster.delay": None, "iterations": 40,
                      "cluster.compute": {"dist": "deterministic", "value": 1.0}})  # fmt: skip
    exp = from_dict(spec)
    times = Cluster(exp, steps=1).draw(0, exp.trials * 40).step_times[:, :, 0]
    chain = MarkovChain(exp.seed, 6, exp.cluster.stragglers, 40)
    slow = np.concatenate([chain.states(0), chain.states(1)])  # 6 trials of 40 a block
    expected = np.where(slow[: exp.trials].reshape(-1, 6), 4.0, 1.0)
    np.testing.assert_array_equal(times, expected)
    # Persistence: a slow worker stays slow for 1 / p_recover iterations on average, so the
    # same worker is slow in consecutive iterations far more often than by chance.
    s = slow.reshape(-1, 40, 6)
    both = (s[:, 1:] & s[:, :-1]).mean()
    assert both > 2 * s.mean() ** 2


# --------------------------------------------------------------------------------------------
# Runs of several iterations


def test_the_engines_agree_on_multi_iteration_runs_with_every_kind_of_difference() -> None:
    exp = from_dict(_config())
    des = run(from_dict(_config(engine="des"))).summary
    fast = run(exp).summary
    assert_same_rows(fast, des)
    assert len(fast) == 12 * 6 * 5
    assert list(fast["iteration"].iloc[:10]) == [0] * 5 + [1] * 5


def test_elapsed_is_the_running_sum_of_each_trials_iteration_times() -> None:
    summary = run(from_dict(_config())).summary
    for (_, _), rows in summary.groupby(["scheme", "trial"]):
        np.testing.assert_array_equal(rows["iteration"], np.arange(6))
        np.testing.assert_allclose(rows["elapsed"], np.cumsum(rows["completion_time"]), rtol=0)


def test_any_range_of_trials_gives_the_rows_of_the_whole_run() -> None:
    exp = from_dict(_config(trials=9))
    whole = run(exp).summary
    part = run_range(exp, 4, 3).summary
    expected = whole[whole["trial"].between(4, 6)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part.reset_index(drop=True), expected)


def test_events_are_traced_for_every_iteration_of_the_traced_trials() -> None:
    exp = from_dict(_config(output={"events_trials": 2}))
    events = run(exp).events
    assert set(events["trial"]) == {0, 1}
    assert set(events["iteration"]) == set(range(6))


def test_hand_computed_times_with_groups_and_a_delay() -> None:
    """Uncoded, one chunk each: worker j takes its group's time plus the delay; the PS waits
    for the slowest. Groups: 2 workers at 3.0, the rest at 1.0; delay 0.5; no other factor."""
    spec = _config(**{"cluster.slowdown": [], "cluster.racks": None, "cluster.stragglers": None,
                      "cluster.delay": {"dist": "deterministic", "value": 0.5},
                      "cluster.groups": [
                          {"fraction": 0.34, "compute": {"dist": "deterministic", "value": 3.0}},
                          {"compute": {"dist": "deterministic", "value": 1.0}}],
                      "schemes": [{"protocol": "uncoded"},
                                  {"protocol": "fastest_k", "k": 4}]})  # fmt: skip
    summary = run(from_dict(spec)).summary
    uncoded = summary[summary["scheme"] == "uncoded"]
    fastest = summary[summary["scheme"] == "fastest_k"]
    np.testing.assert_array_equal(uncoded["completion_time"], 3.5)
    np.testing.assert_array_equal(fastest["completion_time"], 1.5)
    np.testing.assert_array_equal(uncoded["elapsed"].iloc[:6], 3.5 * np.arange(1, 7))


def test_one_iteration_without_new_keys_keeps_every_column_and_stream() -> None:
    """``iterations: 1`` is a run as it always was: the same rows as a config that does not
    name it (the regression corpus checks the values against the committed baseline)."""
    plain = _config(iterations=1)
    for key in ("groups", "slowdown", "racks", "stragglers", "delay"):
        plain["cluster"].pop(key)
    plain["cluster"]["compute"] = {"dist": "exponential", "rate": 1.0}
    named = run(from_dict(plain)).summary
    plain.pop("iterations")
    unnamed = run(from_dict(plain)).summary
    pd.testing.assert_frame_equal(named, unnamed)
    assert (named["iteration"] == 0).all()
    np.testing.assert_array_equal(named["elapsed"], named["completion_time"])


# --------------------------------------------------------------------------------------------
# Slowdown forms that survive a sweep over the cluster size


def test_slowdown_mapping_and_fraction_apply_the_factors() -> None:
    spec = _config(**{"iterations": 1, "cluster.groups": [], "cluster.racks": None,
                      "cluster.stragglers": None, "cluster.delay": None,
                      "cluster.compute": {"dist": "deterministic", "value": 1.0}})  # fmt: skip
    spec["cluster"]["slowdown"] = {4: 3.0}
    times = Cluster(from_dict(spec), steps=1).draw(0, 5).step_times[:, :, 0]
    np.testing.assert_array_equal(times, np.tile([1, 1, 1, 1, 3.0, 1], (5, 1)))
    for pick in ("fixed", "per_trial"):
        spec["cluster"]["slowdown"] = {"fraction": 0.5, "factor": 2.0, "pick": pick}
        times = Cluster(from_dict(spec), steps=1).draw(0, 200).step_times[:, :, 0]
        assert ((times == 2.0).sum(axis=1) == 3).all()  # round(0.5 * 6) slow in every trial
        sets = {tuple(row) for row in times == 2.0}
        assert len(sets) == 1 if pick == "fixed" else len(sets) > 10


def test_a_sweep_over_the_cluster_size_works_with_the_new_slowdown_forms(tmp_path: Path) -> None:
    spec = _config(trials=4, iterations=2)
    spec["cluster"]["slowdown"] = {1: 2.0}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    report = run_sweep(path, ["cluster.workers=6,9"], out=tmp_path / "out", jobs=1)
    summary = pd.read_parquet(tmp_path / "out" / "summary.parquet")
    assert report.failed == {}
    assert set(summary["cluster.workers"]) == {6, 9}
    assert len(summary) == 2 * 4 * 2 * 5


# --------------------------------------------------------------------------------------------
# Bad input: one line per problem, naming the key


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"cluster.stragglers": {"p_slow": 1.5, "p_recover": 0.2, "factor": 2.0}},
         "cluster.stragglers.p_slow", "less than or equal to 1"),
        ({"cluster.stragglers": {"p_slow": 0.1, "p_recover": -0.1, "factor": 2.0}},
         "cluster.stragglers.p_recover", "greater than or equal to 0"),
        ({"cluster.groups": [{"count": 5, "compute": {"dist": "exponential", "rate": 1.0}},
                             {"count": 3, "compute": {"dist": "exponential", "rate": 2.0}}]},
         "cluster.groups", "hold 8 workers but the cluster has 6"),
        ({"cluster.groups": [{"count": 2, "compute": {"dist": "exponential", "rate": 1.0}}]},
         "cluster.compute", "cover 2 of 6 workers"),
        ({"cluster.groups": [{"compute": {"dist": "exponential", "rate": 1.0}},
                             {"compute": {"dist": "exponential", "rate": 2.0}}]},
         "cluster.groups.1", "only one group may take the rest"),
        ({"cluster.groups": [{"count": 2, "fraction": 0.5,
                              "compute": {"dist": "exponential", "rate": 1.0}}]},
         "cluster.groups.0", "count or fraction, not both"),
        ({"cluster.slowdown": {9: 2.0}}, "cluster.slowdown.9", "not in the cluster"),
        ({"cluster.slowdown": [1.0, 2.0]}, "cluster.slowdown", "one factor per worker (6)"),
        ({"cluster.delay": {"dist": "exponential", "rate": 1.0, "per": "chunk"}},
         "cluster.delay.per", "remove per"),
        ({"iterations": 0}, "iterations", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_worker_settings_are_named_by_key(change, key, words) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(_config(**change))
    lines = str(caught.value).splitlines()
    assert any(line.startswith(key) and words in line for line in lines), lines
