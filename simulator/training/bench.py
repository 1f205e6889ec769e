"""What training costs: the runs' own path (``bench_training_runs``) and the vectorized replay
of decode weights (``bench_training``), each against bare NumPy gradient descent.

``bench_training_runs`` times ``runner.run`` on a training experiment (every protocol kind,
synthetic logistic regression) and on the same experiment without ``training:`` (random
gradients of the same dimension): the difference is what training adds to the engines, the
trainer's cost (``training/trainer.py``: each (scheme, round) gets its model's chunk gradients
and steps with the protocol's estimate). It is compared with two bare loops doing the same
number of gradient updates on the same data: one parameter vector at a time (as the engines
ask for them), and all of them at once as the columns of one matrix (the least any
implementation can do). Target: training's added time within ``TARGET`` times the bare loop's.

``bench_training`` measures ``loop.train`` (the replay of decode weights, vectorized over
every (trial, scheme) of a range; not what runs use today, see its module): for each cluster
size m (= chunks) the same synthetic logistic-regression problem is trained
on B = trials x 5 parameter vectors, one per (trial, scheme), with decode weights of the
right shape for five kinds of scheme: uncoded (all 1), fastest_k (m/k on the k covered chunks,
0 elsewhere), original_gc and partial_gc exact (1 plus decoder-sized round-off), and an
approximate scheme (1 plus 30% noise). The weights are synthesized, since what is measured is
the training loop's own cost (the engines' cost is ``gcsim bench``'s other rows); every
iteration decodes, so every step is paid.

The baseline is the least a vectorized gradient-descent loop on the same data and the same B
parameter vectors does: one forward product, the sigmoid, one backward product, the update;
no loss, no accuracy, no gradient error, no clock, no rows. ``train`` additionally computes the
decoded gradient's deviation (a second backward product), the loss and accuracy after every
step and the output table. Both run with one BLAS thread, timed in the same process, best of
``repeats``. Target: ``train`` within ``TARGET`` times the baseline's time.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..tuning import blas_threads
from .config import Synthetic, Training
from .loop import Replay

TARGET = 3.0
#: Scheme kinds whose weights are synthesized (see the module docstring).
SCHEMES = ("uncoded", "fastest_k", "original_gc", "partial_gc", "partial approx")
#: (trials, iterations, repeats) per mode.
MODES = {"quick": (40, 20, 2), "full": (100, 100, 3)}


def bench_training(
    sizes: tuple[int, ...] = (20, 100),
    mode: str = "full",
    samples: int = 2000,
    features: int = 20,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """One dict per size m: the shape measured, the best times of ``train`` and of the bare
    loop, their rates (parameter updates per second: B x iterations / seconds), the ratio and
    whether it meets ``TARGET``."""
    trials, iterations, repeats = MODES[mode]
    training = Training(
        model="logistic",
        dataset="synthetic",
        synthetic=Synthetic(samples=samples, features=features),
        learning_rate=0.5,
    )
    rows = []
    for m in sizes:
        replay = Replay(training, m, seed)
        durations, decoded, weights = synthetic_iterations(trials, iterations, m, seed)
        train_s = _best(repeats, lambda t=replay, d=durations, o=decoded, w=weights: t.run(
            0, d, o, w, list(SCHEMES)))  # fmt: skip
        B = trials * len(SCHEMES)
        bare_s = _best(repeats, lambda t=replay, b=B: bare_descent(t, b, iterations))
        updates = B * iterations
        ratio = train_s / bare_s
        rows.append(
            {
                "workers": m,
                "schemes": len(SCHEMES),
                "trials": trials,
                "iterations": iterations,
                "samples": samples,
                "features": features + 1,
                "train_s": train_s,
                "bare_s": bare_s,
                "train_updates_per_s": updates / train_s,
                "bare_updates_per_s": updates / bare_s,
                "train_iterations_per_s": iterations / train_s,
                "ratio": ratio,
                "target": TARGET,
                "meets_target": bool(ratio <= TARGET),
            }
        )
    return rows


def synthetic_iterations(
    trials: int, iterations: int, m: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(durations, decoded, weights) as the engines hand them to ``train``, for ``SCHEMES``."""
    rng = np.random.default_rng(seed)
    shape = (trials, iterations, len(SCHEMES))
    durations = 1.0 + rng.exponential(1.0, shape)
    decoded = np.ones(shape, dtype=bool)
    weights = np.ones((*shape, m))
    k = max(1, (4 * m) // 5)
    covered = rng.random((trials, iterations, m)).argsort(axis=2) < k
    weights[:, :, 1] = np.where(covered, m / k, 0.0)
    weights[:, :, 2:4] += 1e-15 * rng.standard_normal((trials, iterations, 2, m))
    weights[:, :, 4] += 0.3 * rng.standard_normal((trials, iterations, m))
    return durations, decoded, weights


def bare_descent(replay: Replay, columns: int, iterations: int) -> np.ndarray:
    """Plain gradient descent of the logistic loss on ``columns`` parameter vectors at once."""
    X, y = replay.data.X, replay.data.y
    Xt = replay.Xt
    step = replay.training.learning_rate / X.shape[0]
    theta = np.zeros((X.shape[1], columns))
    with blas_threads(1):
        for _ in range(iterations):
            R = 1.0 / (1.0 + np.exp(-(X @ theta)))
            R -= y[:, None]
            theta -= step * (Xt @ R)
    return theta


def _best(repeats: int, work) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


#: (trials, iterations) per mode for ``bench_training_runs``.
RUN_MODES = {"quick": (4, 10), "full": (10, 30)}


def training_experiment(
    workers: int,
    trials: int,
    iterations: int,
    training: bool,
    samples: int = 2000,
    features: int = 20,
    seed: int = 1,
) -> Any:
    """The benchmark's experiment: every protocol kind on ``workers`` workers, numerics on
    (condition numbers off, as for sweeps); with ``training`` a synthetic logistic regression,
    without it random gradients of the model's dimension (what the engines decode either
    way)."""
    from ..config import from_dict

    data: dict[str, Any] = {
        "name": f"bench-training-{workers}",
        "seed": seed,
        "trials": trials,
        "iterations": iterations,
        "cluster": {
            "workers": workers,
            "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0,
                        "per": "worker"},
            "stragglers": {"model": "markov", "p_slow": 0.05, "p_recover": 0.2, "factor": 4.0},
        },
        "output": {"events_trials": 0, "decode_cond": False},
        "schemes": [
            {"protocol": "uncoded"},
            {"protocol": "fastest_k", "fraction": 0.8},
            {"protocol": "original_gc", "load": 4},
            {"protocol": "partial_gc", "load": 4},
            {"protocol": "partial_gc", "load": 4, "mode": "approximate", "deadline": 6.0,
             "label": "partial_gc approx"},
        ],
    }  # fmt: skip
    if training:
        data["training"] = {
            "model": "logistic",
            "dataset": "synthetic",
            "synthetic": {"samples": samples, "features": features},
            "learning_rate": 0.5,
        }
    else:
        data["data"] = {"dim": features + 1, "gradients": "gaussian"}
    return from_dict(data)


def bench_training_runs(
    sizes: tuple[int, ...] = (20, 100),
    mode: str = "full",
    samples: int = 2000,
    features: int = 20,
    repeats: int = 2,
) -> list[dict[str, Any]]:
    """One dict per size m: best times of the run with and without training, of the bare loops
    (one vector at a time; all at once), the updates per second of each, and the ratios of
    training's added time to each bare loop."""
    from ..runner import run

    trials, iterations = RUN_MODES[mode]
    rows = []
    for m in sizes:
        with_training = training_experiment(m, trials, iterations, True, samples, features)
        without = training_experiment(m, trials, iterations, False, samples, features)
        vectors = trials * len(with_training.schemes)
        run_s = _best(repeats, lambda e=with_training: run(e))
        plain_s = _best(repeats, lambda e=without: run(e))
        replay = Replay(with_training.training, m, with_training.seed)
        one_s = _best(repeats, lambda r=replay, v=vectors: bare_one_at_a_time(r, v, iterations))
        all_s = _best(repeats, lambda r=replay, v=vectors: bare_descent(r, v, iterations))
        added = max(run_s - plain_s, 0.0)
        updates = vectors * iterations
        rows.append(
            {
                "workers": m,
                "schemes": len(with_training.schemes),
                "trials": trials,
                "iterations": iterations,
                "samples": samples,
                "features": features + 1,
                "run_s": run_s,
                "run_without_training_s": plain_s,
                "training_added_s": added,
                "bare_one_at_a_time_s": one_s,
                "bare_vectorized_s": all_s,
                "training_updates_per_s": updates / added if added > 0 else float("inf"),
                "bare_one_at_a_time_updates_per_s": updates / one_s,
                "bare_vectorized_updates_per_s": updates / all_s,
                "ratio_vs_one_at_a_time": added / one_s,
                "ratio_vs_vectorized": added / all_s,
                "target": TARGET,
            }
        )
    return rows


def bare_one_at_a_time(replay: Replay, vectors: int, iterations: int) -> np.ndarray:
    """Plain gradient descent of the logistic loss, one parameter vector after the other (all
    from zero: the same steps each time); returns the last one."""
    X, y, Xt = replay.data.X, replay.data.y, replay.Xt
    step = replay.training.learning_rate / X.shape[0]
    theta = np.zeros(X.shape[1])
    with blas_threads(1):
        for _ in range(vectors):
            theta = np.zeros(X.shape[1])
            for _ in range(iterations):
                r = 1.0 / (1.0 + np.exp(-(X @ theta)))
                r -= y
                theta -= step * (Xt @ r)
    return theta


def format_bench_training_runs(rows: list[dict[str, Any]]) -> str:
    """The rows as text for ``gcsim bench``: one line per size."""
    lines = [
        "training runs: time training adds to runner.run vs bare NumPy gradient descent "
        "(same updates, same data)",
        f"{'m':>5} {'updates':>8} {'added s':>8} {'upd/s':>9} {'bare 1-by-1':>12} "
        f"{'bare all':>10} {'x 1-by-1':>9} {'x all':>7}  target",
    ]
    for row in rows:
        updates = row["trials"] * row["schemes"] * row["iterations"]
        lines.append(
            f"{row['workers']:>5} {updates:>8} {row['training_added_s']:>8.2f} "
            f"{row['training_updates_per_s']:>9,.0f} "
            f"{row['bare_one_at_a_time_updates_per_s']:>12,.0f} "
            f"{row['bare_vectorized_updates_per_s']:>10,.0f} "
            f"{row['ratio_vs_one_at_a_time']:>9.1f} {row['ratio_vs_vectorized']:>7.1f}  "
            f"<= {row['target']:g}x"
        )
    return "\n".join(lines)


def format_bench_training(rows: list[dict[str, Any]]) -> str:
    """The rows as text for ``gcsim bench``: one line per size."""
    lines = [
        "training loop (loop.train) vs bare NumPy gradient descent, same data, one BLAS thread",
        f"{'m':>5} {'B':>6} {'iters':>6} {'train upd/s':>12} {'bare upd/s':>12} "
        f"{'ratio':>6}  target",
    ]
    for row in rows:
        verdict = "ok" if row["meets_target"] else "MISSED"
        lines.append(
            f"{row['workers']:>5} {row['trials'] * row['schemes']:>6} {row['iterations']:>6} "
            f"{row['train_updates_per_s']:>12,.0f} {row['bare_updates_per_s']:>12,.0f} "
            f"{row['ratio']:>6.2f}  <= {row['target']:g}x {verdict}"
        )
    return "\n".join(lines)
