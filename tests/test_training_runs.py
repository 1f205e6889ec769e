"""Training runs through the engines: each scheme's model steps with what its protocol decoded.

Exact schemes must follow plain gradient descent on the full data; the engines must agree; a
range of trials must train on its own; an iteration without a gradient is skipped as stated;
the files are the same bytes whatever the executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from simulator.config import ConfigError, from_dict
from simulator.results import write_run
from simulator.runner import run, run_range
from simulator.training.datasets import load
from simulator.training.models import model

pytest.importorskip("sklearn")


def _config(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "seed": 3,
        "trials": 4,
        "iterations": 12,
        "cluster": {
            "workers": 8,
            "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 2.0},
            "stragglers": {"p_slow": 0.1, "p_recover": 0.3, "factor": 4.0},
        },
        "training": {"model": "logistic", "dataset": "breast_cancer", "learning_rate": 1.0,
                     "target_loss": 0.15},
        "output": {"events_trials": 1},
        "schemes": [
            {"protocol": "uncoded"},
            {"protocol": "fastest_k", "k": 6},
            {"protocol": "original_gc", "load": 3},
            {"protocol": "partial_gc", "load": 3},
            {"protocol": "partial_gc", "load": 3, "ell": 2},
            {"protocol": "partial_gc", "load": 3, "mode": "approximate", "deadline": 2.5},
        ],
    }  # fmt: skip
    spec.update(changes)
    return spec


def _plain_descent(exp, steps: int) -> np.ndarray:
    """Losses of plain gradient descent on the full data: the reference trajectory."""
    data = load(exp.training, exp.chunks, exp.seed)
    law = model(exp.training.model)
    theta = np.zeros((data.features, 1))
    losses = []
    for _ in range(steps + 1):
        state = law.evaluate(data.X @ theta, data.y)
        losses.append(state.loss[0])
        theta = theta - exp.training.learning_rate * (data.X.T @ state.residual) / data.samples
    return np.array(losses)


def test_exact_schemes_follow_plain_gradient_descent_and_approximate_ones_do_not() -> None:
    exp = from_dict(_config())
    frame = run(exp).training
    plain = _plain_descent(exp, exp.iterations)
    for scheme in ("uncoded", "original_gc", "partial_gc", "partial_gc#2"):
        for _, rows in frame[frame["scheme"] == scheme].groupby("trial"):
            np.testing.assert_allclose(rows["loss"], plain, rtol=1e-12, atol=0)
            assert (rows["grad_error"].iloc[1:] < 1e-20).all()
    approximate = frame[frame["scheme"].isin(["fastest_k", "partial_gc#3"])]
    assert (approximate["grad_error"].iloc[1:] > 1e-6).any()
    losses = approximate.groupby("trial")["loss"].apply(lambda x: x.iloc[-1])
    assert not np.allclose(losses, plain[-1], rtol=1e-9)


def test_a_rows_time_is_its_iterations_completion_times_summed() -> None:
    result = run(from_dict(_config()))
    summary, frame = result.summary, result.training
    for scheme in ("uncoded", "partial_gc"):
        times = summary[summary["scheme"] == scheme]
        rows = frame[(frame["scheme"] == scheme) & (frame["iteration"] > 0)]
        np.testing.assert_array_equal(rows["time"].to_numpy(), times["elapsed"].to_numpy())


def test_the_engines_agree_on_training_runs() -> None:
    fast = run(from_dict(_config())).training
    des = run(from_dict(_config(engine="des"))).training
    pd.testing.assert_frame_equal(fast, des, rtol=1e-9, atol=1e-25)


def test_a_range_of_trials_trains_on_its_own() -> None:
    exp = from_dict(_config())
    whole = run(exp).training
    part = run_range(exp, 2, 2).training
    expected = whole[whole["trial"].isin([2, 3])].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected)


def test_the_files_are_the_same_bytes_with_two_jobs(tmp_path: Path) -> None:
    exp = from_dict(_config(trials=300, iterations=2))
    write_run(run(exp), tmp_path / "one")
    write_run(run(exp, jobs=2), tmp_path / "two")
    for name in ("training.parquet", "summary.parquet"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_an_iteration_without_a_gradient_is_abandoned_at_the_timeout_or_stalls_the_run() -> None:
    """Worker 0 is down: uncoded never decodes. With a timeout each iteration costs it and the
    parameters stay; without one the run stalls at inf."""
    spec = _config(schemes=[{"protocol": "uncoded"}, {"protocol": "partial_gc", "load": 2}])
    spec["cluster"]["failures"] = {"workers": [0]}
    spec["training"]["timeout"] = 40.0
    frame = run(from_dict(spec)).training
    uncoded = frame[frame["scheme"] == "uncoded"]
    steps = uncoded[uncoded["iteration"] > 0]
    assert steps["skipped"].all()
    np.testing.assert_allclose(steps.groupby("trial")["time"].max(), 40.0 * 12)
    assert (uncoded["loss"] == uncoded["loss"].iloc[0]).all()
    assert not frame[frame["scheme"] == "partial_gc"]["skipped"].any()
    spec["training"]["timeout"] = None
    stalled = run(from_dict(spec)).training
    steps = stalled[(stalled["scheme"] == "uncoded") & (stalled["iteration"] > 0)]
    assert np.isinf(steps["time"]).all() and steps["skipped"].all()


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"dataset": "mnist"}, "training.dataset", "digits"),
        ({"learning_rate": -1.0}, "training.learning_rate", "must be > 0"),
        ({"dataset": "synthetic", "synthetic": {"samples": 5}}, "training.dataset",
         "fewer than the 8 chunks"),
    ],
)  # fmt: skip
def test_bad_training_settings_are_named_by_key(change, key, words) -> None:
    spec = _config()
    spec["training"].update(change)
    with pytest.raises(ConfigError) as caught:
        from_dict(spec)
    lines = str(caught.value).splitlines()
    assert any(line.startswith(key) and words in line for line in lines), lines


def test_the_gradient_length_is_the_models() -> None:
    exp = from_dict(_config())
    assert exp.data.dim == 31  # breast_cancer's 30 features and the intercept
    spec = _config()
    spec["data"] = {"dim": 100}
    with pytest.raises(ConfigError, match="data.dim"):
        from_dict(spec)


def test_a_sweep_of_training_runs_combines_their_rows(tmp_path: Path) -> None:
    import yaml

    from simulator.sweep import run_sweep

    spec = _config(trials=2, iterations=3)
    spec["training"] = {
        "model": "least_squares",
        "dataset": "synthetic",
        "synthetic": {"samples": 200, "features": 4},
        "learning_rate": 0.5,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    report = run_sweep(path, ["cluster.stragglers.p_slow=0.0,0.3"], out=tmp_path / "out", jobs=1)
    assert report.failed == {}
    combined = pd.read_parquet(tmp_path / "out" / "training.parquet")
    assert list(combined.columns[:2]) == ["point", "cluster.stragglers.p_slow"]
    assert len(combined) == 2 * 2 * 6 * (3 + 1)  # points x trials x schemes x (iterations + 1)
    for point in report.ran:
        one = pd.read_parquet(tmp_path / "out" / "points" / point / "training.parquet")
        mine = combined[combined["point"] == point].drop(columns=combined.columns[:2])
        pd.testing.assert_frame_equal(mine.reset_index(drop=True), one)
