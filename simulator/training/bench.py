"""How fast ``loop.train`` replays training runs, against a bare NumPy gradient-descent loop.

For each cluster size m (= chunks) the same synthetic logistic-regression problem is trained
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
