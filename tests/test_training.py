"""Training runs (simulator.training): the PS's steps replayed from decode weights.

The loop is checked against plain gradient descent written here independently (scipy's expit
and numpy's logaddexp, the loop's own formulas are not reused), the least-squares solution
(numpy's lstsq), and hand-built clocks; real datasets only where scikit-learn is installed
(the ``test`` extra installs it).
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.special import expit

from simulator.schema import TRAINING_COLUMNS
from simulator.training import config as tconfig
from simulator.training.config import Synthetic, Training
from simulator.training.datasets import chunk_assignment, load
from simulator.training.loop import Replay, train
from simulator.training.target import (
    format_time_to_target,
    quantile,
    target_summary,
    time_to_target,
)


def _exp(chunks: int = 7, seed: int = 3, **training) -> types.SimpleNamespace:
    """What ``train`` and ``problems`` read of an Experiment (the lead adds the field)."""
    training.setdefault("dataset", "synthetic")
    training.setdefault("synthetic", Synthetic(samples=203, features=5))
    return types.SimpleNamespace(training=Training(**training), chunks=chunks, seed=seed)


def _inputs(trials, iterations, schemes, chunks, duration=1.0):
    shape = (trials, iterations, schemes)
    return (
        np.full(shape, duration),
        np.ones(shape, dtype=bool),
        np.ones((*shape, chunks)),
    )


def _plain_logistic(X, y, lr, iterations):
    theta = np.zeros(X.shape[1])
    losses = [np.mean(np.logaddexp(0, X @ theta) - y * (X @ theta))]
    for _ in range(iterations):
        theta = theta - lr * X.T @ (expit(X @ theta) - y) / len(y)
        z = X @ theta
        losses.append(np.mean(np.logaddexp(0, z) - y * z))
    return np.array(losses)


# ------------------------------------------------------------------------------ trajectories


@pytest.mark.parametrize("model", ["logistic", "least_squares"])
def test_uncoded_weights_give_plain_gradient_descent(model):
    exp = _exp(model=model, learning_rate=0.3)
    data = load(exp.training, exp.chunks, exp.seed)
    rows = train(exp, 0, *_inputs(2, 40, 2, exp.chunks), ["a", "b"])
    if model == "logistic":
        expected = _plain_logistic(data.X, data.y, 0.3, 40)
    else:
        theta, expected = np.zeros(data.features), []
        for _ in range(41):
            expected.append(0.5 * np.mean((data.X @ theta - data.y) ** 2))
            theta = theta - 0.3 * data.X.T @ (data.X @ theta - data.y) / data.samples
        expected = np.array(expected)
    for (_, _), run in rows.groupby(["trial", "scheme"]):
        np.testing.assert_allclose(run["loss"].to_numpy(), expected, rtol=1e-12, atol=0)
        assert (run["grad_error"].iloc[1:] == 0).all()  # weights of exactly 1: no deviation
    assert rows["loss"].iloc[-1] < 0.9 * rows["loss"].iloc[0]
    assert rows["accuracy"].isna().all() == (model == "least_squares")


def test_l2_is_the_ps_own_and_spares_the_intercept():
    exp = _exp(model="least_squares", learning_rate=0.2, l2=0.5)
    data = load(exp.training, exp.chunks, exp.seed)
    rows = train(exp, 0, *_inputs(1, 25, 1, exp.chunks), ["uncoded"])
    penalty = np.r_[np.ones(data.features - 1), 0.0]
    theta = np.zeros(data.features)
    for _ in range(25):
        grad = data.X.T @ (data.X @ theta - data.y) / data.samples + 0.5 * penalty * theta
        theta = theta - 0.2 * grad
    # The reported loss is the data's (what time to target measures), without the penalty.
    loss = 0.5 * np.mean((data.X @ theta - data.y) ** 2)
    assert rows["loss"].iloc[-1] == pytest.approx(loss, rel=1e-12)


def test_a_dropped_chunk_gives_the_gradient_without_it():
    exp = _exp(model="logistic", learning_rate=0.7)
    data = load(exp.training, exp.chunks, exp.seed)
    durations, decoded, weights = _inputs(1, 1, 1, exp.chunks)
    weights[0, 0, 0, 2] = 0.0
    rows = train(exp, 0, durations, decoded, weights, ["drop"])
    residual = expit(np.zeros(data.samples)) - data.y
    per_chunk = np.stack([data.X[data.chunk_of == j].T @ residual[data.chunk_of == j]
                          for j in range(exp.chunks)])  # fmt: skip
    full = per_chunk.sum(axis=0)
    decoded_grad = full - per_chunk[2]
    z = data.X @ (-0.7 * decoded_grad / data.samples)
    after = rows.iloc[1]
    assert after["loss"] == pytest.approx(np.mean(np.logaddexp(0, z) - data.y * z), rel=1e-12)
    error = np.sum(per_chunk[2] ** 2) / np.sum(full**2)
    assert after["grad_error"] == pytest.approx(error, rel=1e-10)


def test_least_squares_converges_to_the_lstsq_solution():
    exp = _exp(
        chunks=10,
        model="least_squares",
        synthetic=Synthetic(samples=400, features=6, noise=0.5),
        learning_rate=0.5,
    )
    data = load(exp.training, exp.chunks, exp.seed)
    assert np.linalg.cond(data.X) < 3  # well-conditioned: gradient descent contracts fast
    solution = np.linalg.lstsq(data.X, data.y, rcond=None)[0]
    best = 0.5 * np.mean((data.X @ solution - data.y) ** 2)
    rows = train(exp, 0, *_inputs(1, 300, 1, exp.chunks), ["uncoded"])
    assert rows["loss"].iloc[-1] == pytest.approx(best, rel=1e-12)
    assert rows["loss"].iloc[-1] <= rows["loss"].iloc[-2]


def test_logistic_on_breast_cancer_learns():
    pytest.importorskip("sklearn")
    training = Training(model="logistic", dataset="breast_cancer", learning_rate=0.5)  # fmt: skip
    exp = types.SimpleNamespace(training=training, chunks=20, seed=0)
    rows = train(exp, 0, *_inputs(1, 60, 1, 20), ["uncoded"])
    loss = rows["loss"].to_numpy()
    assert (np.diff(loss) < 0).all()
    assert loss[-1] < 0.1 < 0.69 < loss[0]  # log 2 at theta = 0
    assert rows["accuracy"].iloc[-1] > 0.97
    assert rows["accuracy"].iloc[0] == pytest.approx(357 / 569)  # z = 0 predicts 1 (benign)


def test_digits_target_is_binary_for_logistic():
    pytest.importorskip("sklearn")
    data = load(Training(model="logistic", dataset="digits"), 30, 0)
    assert set(np.unique(data.y)) == {0.0, 1.0}
    assert data.X.shape == (1797, 65) and np.all(data.X[:, -1] == 1)
    regression = load(Training(model="least_squares", dataset="digits"), 30, 0)
    assert set(np.unique(regression.y)) == set(range(10))


# ------------------------------------------------------------------------------ data


def test_chunks_are_contiguous_and_even():
    of = chunk_assignment(23, 5)
    assert list(np.bincount(of)) == [5, 5, 5, 4, 4]
    assert (np.diff(of) >= 0).all()


def test_dataset_is_deterministic_in_the_seed():
    training = Training(model="least_squares", dataset="synthetic")
    a, b, c = load(training, 8, 1), load(training, 8, 1), load(training, 8, 2)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    np.testing.assert_allclose(a.X[:, :-1].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(a.X[:, :-1].std(axis=0), 1, rtol=1e-12)


@pytest.mark.parametrize("samples", [203, 210])  # 7 chunks: uneven, even
def test_chunk_gradients_are_the_per_chunk_sums(samples):
    training = Training(model="logistic", dataset="synthetic",
                        synthetic=Synthetic(samples=samples, features=4))  # fmt: skip
    data = load(training, 7, 0)
    r = np.random.default_rng(2).standard_normal(samples)
    expected = np.stack([data.X[data.chunk_of == j].T @ r[data.chunk_of == j] for j in range(7)])
    np.testing.assert_allclose(data.chunk_gradients(r), expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(data.chunk_gradients(r[:, None]), data.chunk_gradients(r))


# ------------------------------------------------------------------------------ clock and skips


def _clocked(timeout, durations, decoded):
    exp = _exp(model="least_squares", learning_rate=0.3, timeout=timeout)
    d = np.array(durations, dtype=float).reshape(1, -1, 1)
    ok = np.array(decoded).reshape(1, -1, 1)
    w = np.where(ok[..., None], 1.0, np.nan) * np.ones((1, len(durations), 1, exp.chunks))
    return train(exp, 5, d, ok, w, ["s"])


def test_time_is_cumulative_and_a_timeout_abandons_the_iteration():
    rows = _clocked(3.0, [1.0, 5.0, 2.0, np.inf, 3.0], [True, True, True, False, True])
    assert rows["time"].tolist() == [0.0, 1.0, 4.0, 6.0, 9.0, 12.0]
    assert rows["skipped"].tolist() == [False, False, True, False, True, False]
    loss = rows["loss"].to_numpy()
    assert loss[2] == loss[1] and loss[4] == loss[3]  # abandoned: parameters kept
    assert loss[3] < loss[2] and loss[5] < loss[4]  # retried: the next one steps
    assert rows["grad_error"].isna().tolist() == [True, False, True, False, True, False]
    assert rows["trial"].eq(5).all() and rows["iteration"].tolist() == list(range(6))


def test_without_timeout_an_undecodable_iteration_stalls_the_run():
    rows = _clocked(None, [1.0, 5.0, np.inf, 1.0], [True, True, False, True])
    assert rows["time"].tolist() == [0.0, 1.0, 6.0, np.inf, np.inf]
    assert rows["skipped"].tolist() == [False, False, False, True, True]
    loss = rows["loss"].to_numpy()
    assert loss[2] < loss[1] and loss[2] == loss[3] == loss[4]


def test_any_split_into_ranges_gives_the_same_rows():
    exp = _exp(model="logistic")
    rng = np.random.default_rng(0)
    durations = rng.exponential(1, (4, 6, 3))
    decoded = rng.random((4, 6, 3)) < 0.8
    weights = np.where(decoded[..., None], 1 + 0.2 * rng.standard_normal((4, 6, 3, 7)), np.nan)
    whole = train(exp, 0, durations, decoded, weights, ["a", "b", "c"])
    replay = Replay(exp.training, exp.chunks, exp.seed)
    parts = [replay.run(first, durations[first:stop], decoded[first:stop],
                         weights[first:stop], ["a", "b", "c"])
             for first, stop in ((0, 1), (1, 4))]  # fmt: skip
    pd.testing.assert_frame_equal(whole, pd.concat(parts, ignore_index=True))
    assert dict(whole.dtypes.astype(str)) == TRAINING_COLUMNS
    assert whole[["trial", "scheme"]].drop_duplicates().apply(tuple, axis=1).tolist() == [
        (t, s) for t in range(4) for s in "abc"
    ]


def test_nan_weights_on_a_decoded_iteration_are_refused():
    exp = _exp()
    durations, decoded, weights = _inputs(1, 1, 1, exp.chunks)
    weights[0, 0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN decode weights"):
        train(exp, 0, durations, decoded, weights, ["s"])


# ------------------------------------------------------------------------------ bad input


def _problems(chunks=7, **training):
    return dict(tconfig.problems(_exp(chunks=chunks, **training)))


def test_problems_name_their_keys():
    assert _problems() == {}
    assert "training.learning_rate" in _problems(learning_rate=0.0)
    assert "training.learning_rate" in _problems(learning_rate=-1.0)
    small = _problems(chunks=50, synthetic=Synthetic(samples=20))
    assert "20 samples, fewer than the 50 chunks" in small["training.dataset"]
    assert "training.synthetic" in _problems(dataset="breast_cancer")
    assert tconfig.problems(types.SimpleNamespace(training=None, chunks=3)) == []


def test_real_dataset_smaller_than_the_chunks(monkeypatch):
    monkeypatch.setattr(tconfig.importlib.util, "find_spec", lambda name: object())
    found = dict(tconfig.problems(types.SimpleNamespace(
        training=Training(dataset="breast_cancer"), chunks=600)))  # fmt: skip
    assert "569 samples, fewer than the 600 chunks" in found["training.dataset"]


def test_missing_scikit_learn_is_named(monkeypatch):
    monkeypatch.setattr(tconfig.importlib.util, "find_spec", lambda name: None)
    found = dict(tconfig.problems(types.SimpleNamespace(
        training=Training(dataset="digits"), chunks=20)))  # fmt: skip
    assert found["training.dataset"].startswith(
        "digits needs scikit-learn: pip install -e '.[datasets]'"
    )


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValidationError) as caught:
        Training.model_validate({"dataset": "mnist"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("dataset",)
    assert all(name in error["msg"] for name in ("digits", "breast_cancer", "synthetic"))


# ------------------------------------------------------------------------------ time to target


def _frame():
    """Two schemes, three trials; loss 1 -> 0.5 -> 0.2 at per-trial times."""
    rows = []
    ends = {"fast": [(1, 2), (2, 3), (1, 9)], "slow": [(4, 8), (5, 10), (6, np.inf)]}
    for trial in range(3):
        for scheme, pairs in ends.items():
            t1, t2 = pairs[trial]
            losses = (1.0, 0.5, 0.2) if (scheme, trial) != ("slow", 2) else (1.0, 0.5, 0.5)
            for it, (time, loss) in enumerate(zip((0, t1, t2), losses, strict=True)):
                rows.append((scheme, trial, it, float(time), loss))
    return pd.DataFrame(rows, columns=["scheme", "trial", "iteration", "time", "loss"])


def test_time_to_target_per_trial_and_scheme():
    per_trial = time_to_target(_frame(), 0.3)
    assert per_trial["scheme"].tolist() == ["fast", "slow"] * 3  # order of first appearance
    got = {(r.scheme, r.trial): r.time_to_target for r in per_trial.itertuples()}
    assert got == {("fast", 0): 2, ("fast", 1): 3, ("fast", 2): 9,
                   ("slow", 0): 8, ("slow", 1): 10, ("slow", 2): np.inf}  # fmt: skip
    assert time_to_target(_frame(), 1.0)["time_to_target"].eq(0).all()  # already there
    summary = target_summary(_frame(), 0.3).set_index("scheme")
    assert summary.loc["fast", "median"] == 3 and summary.loc["slow", "median"] == 10
    assert summary.loc["fast", "reached"] == 1 and summary.loc["slow", "reached"] == 2 / 3
    assert summary.loc["slow", "high"] == np.inf
    assert summary.loc["fast", "low"] == pytest.approx(2 + 0.05 * 1)
    text = format_time_to_target(_frame(), 0.3)
    assert "loss <= 0.3" in text and "never" in text and "67%" in text


def test_quantile_treats_never_as_largest():
    assert quantile(np.array([1.0, 3.0, np.inf]), 0.5) == 3.0
    assert quantile(np.array([1.0, np.inf]), 0.5) == np.inf
    assert quantile(np.array([1.0, np.inf]), 0.0) == 1.0
    assert quantile(np.array([1.0, 2.0]), 0.25) == 1.25


# ------------------------------------------------------------------------------ figures, bench


def test_plot_training_from_rows_and_from_a_run_directory(tmp_path):
    from simulator.training.plots import _read, plot_training, step_values

    exp = _exp(model="logistic", learning_rate=0.5)
    rng = np.random.default_rng(1)
    durations = 1 + rng.exponential(1, (6, 30, 3))
    durations[:, :, 1] *= 3
    decoded = np.ones((6, 30, 3), dtype=bool)
    decoded[:3, 10, 2] = False  # half the trials of "stalls" never finish iteration 11
    durations[~decoded] = np.inf
    weights = np.where(decoded[..., None], 1.0, np.nan) * np.ones((6, 30, 3, 7))
    rows = train(exp, 0, durations, decoded, weights, ["quick", "slow", "stalls"])
    target = float(rows.loc[rows["scheme"] == "quick", "loss"].median())
    written = plot_training(rows, tmp_path / "a", target=target, name="test")
    assert [p.name for p in written] == [
        "training_loss.png", "training_loss.pdf", "time_to_target.png", "time_to_target.pdf"
    ]  # fmt: skip
    assert all(p.read_bytes()[:4] in (b"\x89PNG", b"%PDF") for p in written)
    run = tmp_path / "run"
    run.mkdir()
    rows.to_parquet(run / "training.parquet")
    (run / "config.yaml").write_text("name: r\ntraining: {target_loss: 0.5}\n")
    assert _read(run, None, None, False)[1:] == (0.5, "r", False)  # from config.yaml
    assert _read(run, 0.2, "x", False)[1:] == (0.2, "x", False)  # unless given
    (run / "manifest.json").write_text('{"real": true, "time_scale": 0.01}')
    assert _read(run, None, None, False)[3] is True  # an emulation's times are measured
    (run / "config.yaml").write_text("name: r\ntraining: {target_loss: null}\n")
    assert [p.name for p in plot_training(run, run / "figures")] == [
        "training_loss.png", "training_loss.pdf"
    ]  # fmt: skip
    # A step curve holds each value until the next row's time; inf never arrives.
    held = step_values(np.array([[0.0, 1.0, np.inf]]), np.array([[3.0, 2.0, 1.0]]),
                       np.array([0.0, 0.5, 1.0, 1e9]))  # fmt: skip
    assert held.tolist() == [[3.0, 3.0, 2.0, 2.0]]


def test_bench_training_measures_both_loops():
    from simulator.training.bench import bench_training, format_bench_training

    rows = bench_training(sizes=(4,), mode="quick", samples=200, features=4)
    (row,) = rows
    assert row["workers"] == 4 and row["schemes"] == 5
    assert row["ratio"] == pytest.approx(row["train_s"] / row["bare_s"])
    assert row["train_updates_per_s"] > 0 and row["bare_updates_per_s"] > 0
    assert "ratio" in format_bench_training(rows)


def test_the_bare_loop_takes_the_same_steps_as_train():
    from simulator.training.bench import bare_descent, bare_one_at_a_time

    exp = _exp(model="logistic", learning_rate=0.5)
    replay = Replay(exp.training, exp.chunks, exp.seed)
    theta = bare_descent(replay, 2, 12)
    np.testing.assert_allclose(bare_one_at_a_time(replay, 2, 12), theta[:, 1], rtol=1e-12)
    z = replay.data.X @ theta[:, 0]
    rows = replay.run(0, *_inputs(1, 12, 1, exp.chunks), ["uncoded"])
    loss = np.mean(np.logaddexp(0, z) - replay.data.y * z)
    assert rows["loss"].iloc[-1] == pytest.approx(loss, rel=1e-12)


def test_bench_of_training_runs_times_the_real_path():
    from simulator.training.bench import (
        bench_training_runs,
        format_bench_training_runs,
        training_experiment,
    )

    assert training_experiment(4, 2, 3, True).training is not None
    plain = training_experiment(4, 2, 3, False)
    assert plain.training is None and plain.data.dim == 21  # the model's parameter count
    (row,) = bench_training_runs(sizes=(4,), mode="quick", samples=100, features=20, repeats=1)
    assert row["training_added_s"] == max(row["run_s"] - row["run_without_training_s"], 0)
    assert row["ratio_vs_vectorized"] == pytest.approx(
        row["training_added_s"] / row["bare_vectorized_s"]
    )
    assert "x 1-by-1" in format_bench_training_runs([row])


def test_logistic_loss_is_finite_and_right_for_huge_margins():
    from simulator.training.models import Logistic

    Z = np.array([[-1000.0, 0.3], [800.0, -2.0], [-30.0, 40.0]])
    y = np.array([0.0, 1.0, 1.0])
    state = Logistic().evaluate(Z, y)
    expected = (np.logaddexp(0, Z) - y[:, None] * Z).mean(axis=0)
    np.testing.assert_allclose(state.loss, expected, rtol=1e-13)
    np.testing.assert_allclose(state.residual, expit(Z) - y[:, None], atol=1e-16)
    assert state.accuracy.tolist() == [2 / 3, 1 / 3]
