"""Training runs replayed from decode weights, vectorized over every (trial, scheme) of a range.

Runs today train through ``trainer.py`` (the engines' gradient source: real chunk gradients,
one (scheme, round) at a time). This module is the vectorized alternative, used by no run:
``bench.bench_training`` measures it as the route to a faster trainer. It holds only for
decoders with one weight per chunk (an approximate ell > 1 decoder mixes gradient blocks), and
the engines do not hand out decode weights today. If the engines run each (trial,
iteration, scheme) with the gradient matrix replaced by the identity, what the PS decodes is
the decode-weight vector ``w`` (one weight per chunk): every decoder is linear in the chunk
gradients, so from real chunk gradients ``g_j`` it decodes
``sum_j w_j g_j``, with the decoder's own round-off carried in ``w`` (an ill-conditioned
decode gives a wrong ``w``, hence a wrong gradient here). ``train`` replays those weights on a
real model: all (trial, scheme) pairs of a range are trained at once as the columns of one
parameter matrix, and a chunk's weight reaches its samples as a per-sample weight, so the
decoded gradient is ``X.T @ (R * W)`` (R: the per-sample loss derivatives): no loop over
chunks, trials or schemes, only over iterations.

Rows (``schema.TRAINING``), ordered by trial, scheme, iteration: iteration 0 is the initial
state (time 0, parameters 0), iteration i >= 1 the state after the i-th attempted step, at the
simulated wall-clock time when it ended. What a step that gives no gradient does is
``config.Training``'s docstring (timeout: abandoned and retried; none: the run stalls).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..schema import TRAINING_COLUMNS
from ..tuning import simulating
from .config import Training
from .datasets import Dataset, load
from .models import Model, model

#: Columns of the (samples, B) work arrays are processed this many floats at a time at most
#: (32 MiB each; a step holds about five of them), whatever the range of trials handed in.
_WORK_FLOATS = 1 << 22


class Replay:
    """One experiment's training problem (dataset, model, step rule), ready to replay the
    decode weights of ranges of trials; build it once per process and call ``run`` per range."""

    def __init__(self, training: Training, chunks: int, seed: int):
        self.training = training
        self.data: Dataset = load(training, chunks, seed)
        self.model: Model = model(training.model)
        #: 1 on the weights, 0 on the intercept (the last feature): where l2 applies.
        self.penalized = np.ones((self.data.features, 1))
        self.penalized[-1] = 0.0
        self.Xt = np.ascontiguousarray(self.data.X.T)

    # ----------------------------------------------------------------------------------------
    def run(
        self,
        first_trial: int,
        durations: np.ndarray,
        decoded: np.ndarray,
        weights: np.ndarray,
        schemes: list[str],
    ) -> pd.DataFrame:
        """The rows of ``training.parquet`` for trials ``first_trial ...`` (see ``train``)."""
        trials, iterations, S = _check_shapes(durations, decoded, weights, schemes, self.data)
        B = trials * S
        # (iterations, B) with B = trial * S + scheme: a trial's schemes side by side.
        dur = np.asarray(durations, dtype=np.float64).transpose(1, 0, 2).reshape(iterations, B)
        ok = np.asarray(decoded, dtype=bool).transpose(1, 0, 2).reshape(iterations, B)
        W = np.asarray(weights, dtype=np.float64).transpose(1, 0, 2, 3)
        W = W.reshape(iterations, B, self.data.chunks)
        time, used = _clock(dur, ok, self.training.timeout)
        loss = np.empty((iterations + 1, B))
        accuracy = np.empty((iterations + 1, B))
        error = np.full((iterations + 1, B), np.nan)
        step = max(1, _WORK_FLOATS // self.data.samples)
        with simulating():  # one BLAS thread: small products, and the same bits on any machine
            for lo in range(0, B, step):
                cols = slice(lo, min(B, lo + step))
                self._descend(
                    W[:, cols], used[:, cols], loss[:, cols], accuracy[:, cols], error[:, cols]
                )
        return _frame(first_trial, schemes, trials, time, loss, accuracy, error, used)

    def _descend(self, W, used, loss, accuracy, error) -> None:
        """Gradient descent on the columns of one batch, filling its rows of the outputs."""
        X, Xt, y, n = self.data.X, self.Xt, self.data.y, self.data.samples
        lr, l2 = self.training.learning_rate, self.training.l2
        sizes = self.data.chunk_sizes()
        theta = np.zeros((self.data.features, used.shape[1]))
        state = self.model.evaluate(X @ theta, y)
        loss[0], accuracy[0] = state.loss, state.accuracy
        for i in range(used.shape[0]):
            R = state.residual
            true = Xt @ R
            # The decoded gradient is true + Xt @ (R * (w - 1)) (w spread over each chunk's
            # samples): the deviation is computed directly, so an exact scheme's round-off is
            # measured, not lost in the difference of two nearly equal gradients, and weights
            # of exactly 1 give the true gradient bit for bit.
            off = np.where(used[i][:, None], W[i] - 1.0, 0.0)
            if np.isnan(off).any():
                raise ValueError(
                    "a decoded iteration has NaN decode weights (the engines' weights must be "
                    "finite wherever decoded is true)"
                )
            spread = np.repeat(off.T, sizes, axis=0)
            spread *= R
            deviation = Xt @ spread
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.einsum("ij,ij->j", deviation, deviation) / np.einsum(
                    "ij,ij->j", true, true
                )
            error[i + 1] = np.where(used[i], ratio, np.nan)
            grad = true + deviation
            grad /= n
            if l2:
                grad += l2 * self.penalized * theta
            # A step that gave no gradient leaves theta where it was.
            theta -= np.where(used[i], lr * grad, 0.0)
            state = self.model.evaluate(X @ theta, y)
            loss[i + 1], accuracy[i + 1] = state.loss, state.accuracy


def train(
    exp: Any,
    first_trial: int,
    durations: np.ndarray,
    decoded: np.ndarray,
    weights: np.ndarray,
    schemes: list[str],
) -> pd.DataFrame:
    """The rows of ``training.parquet`` for trials ``first_trial .. first_trial + trials - 1``.

    ``durations`` (trials, N, S): each iteration's completion time (inf: never decoded);
    ``decoded`` (trials, N, S) bool; ``weights`` (trials, N, S, chunks): the decode weights
    (NaN where not decoded); ``schemes``: the S labels in summary order. Reads
    ``exp.training``, ``exp.chunks`` and ``exp.seed``. Deterministic: the same inputs give the
    same rows, so any split of a run into ranges gives the same table.
    """
    return Replay(exp.training, exp.chunks, exp.seed).run(
        first_trial, durations, decoded, weights, schemes
    )


def _check_shapes(durations, decoded, weights, schemes, data: Dataset) -> tuple[int, int, int]:
    """(trials, iterations, schemes) after checking the arrays agree (a mismatch is a bug in
    the caller, not the user's input: ValueError)."""
    shape = np.shape(durations)
    if len(shape) != 3 or np.shape(decoded) != shape:
        raise ValueError(f"durations {shape} and decoded {np.shape(decoded)} must be (T, N, S)")
    if np.shape(weights) != (*shape, data.chunks):
        raise ValueError(f"weights {np.shape(weights)} must be {(*shape, data.chunks)}")
    if len(schemes) != shape[2]:
        raise ValueError(f"{len(schemes)} scheme labels for {shape[2]} schemes")
    return shape


def _clock(dur: np.ndarray, ok: np.ndarray, timeout: float | None) -> tuple[np.ndarray, ...]:
    """(iterations + 1, B) cumulative wall-clock time at the end of each iteration (row 0:
    time 0), and (iterations, B) whether each iteration's gradient was applied.

    With a timeout, an iteration decoded by ``timeout`` costs its duration, any other costs
    ``timeout``; without one, the first iteration that never decodes makes the time inf from
    there on and no later gradient is applied (the PS waits for it forever)."""
    decoded = ok & np.isfinite(dur)
    if timeout is None:
        used = np.logical_and.accumulate(decoded, axis=0)
        cost = np.where(used, dur, np.inf)
    else:
        used = decoded & (dur <= timeout)
        cost = np.where(used, dur, timeout)
    time = np.zeros((dur.shape[0] + 1, dur.shape[1]))
    np.cumsum(cost, axis=0, out=time[1:])
    return time, used


def _frame(first_trial, schemes, trials, time, loss, accuracy, error, used) -> pd.DataFrame:
    """The rows as a frame typed by ``schema.TRAINING``, trial-major, then scheme, iteration."""
    steps, B = time.shape
    S = len(schemes)
    skipped = np.zeros((steps, B), dtype=bool)
    skipped[1:] = ~used
    codes = np.repeat(np.tile(np.arange(S), trials), steps)
    columns = {
        "scheme": pd.Categorical.from_codes(codes, categories=list(schemes)).astype(str),
        "trial": np.repeat(np.arange(first_trial, first_trial + trials, dtype=np.int64), S * steps),
        "iteration": np.tile(np.arange(steps, dtype=np.int64), B),
        "time": time.T.ravel(),
        "loss": loss.T.ravel(),
        "accuracy": accuracy.T.ravel(),
        "grad_error": error.T.ravel(),
        "skipped": skipped.T.ravel(),
    }
    return pd.DataFrame(columns).astype(TRAINING_COLUMNS)
