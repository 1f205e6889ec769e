"""Time to a target loss: the number a training run answers (how long until the model is good
enough, per scheme), read off the rows of ``training.parquet``.

Per (scheme, trial): the first simulated time at which the loss is at or below the target
(0 if the initial parameters already are; inf if the run never gets there within its
iterations). Per scheme: the median over trials, the 2.5% and 97.5% quantiles over trials (the
spread of the runs, not a confidence interval of the median) and the fraction of trials that
reached the target. A quantile that falls among the trials that never reached it is inf.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: The quantiles over trials that bound the per-scheme interval.
INTERVAL = (0.025, 0.975)


def time_to_target(frame: pd.DataFrame, target: float) -> pd.DataFrame:
    """One row per (scheme, trial) in order of first appearance: ``time_to_target``."""
    keys = ["scheme", "trial"]
    reached = frame["loss"].to_numpy() <= target
    times = frame["time"].where(reached, np.inf)
    first = times.groupby([frame[k] for k in keys], sort=False).min()
    return first.rename("time_to_target").reset_index()


def quantile(values: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile in which inf (never reached) is larger than any time; an
    interpolation that touches an inf is inf (numpy's gives NaN where the weight is 0)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if ordered.size == 0:
        return math.nan
    at = (ordered.size - 1) * q
    lo, hi = math.floor(at), math.ceil(at)
    frac = at - lo
    if frac == 0.0:
        return float(ordered[lo])
    if math.isinf(ordered[hi]):
        return math.inf
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * frac)


def target_summary(frame: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per scheme (in order of first appearance): ``median``, ``low`` and ``high`` (the
    ``INTERVAL`` quantiles over trials), ``reached`` (fraction of trials) and ``trials``."""
    per_trial = time_to_target(frame, target)
    rows = []
    for scheme, group in per_trial.groupby("scheme", sort=False):
        t = group["time_to_target"].to_numpy()
        rows.append(
            {
                "scheme": scheme,
                "median": quantile(t, 0.5),
                "low": quantile(t, INTERVAL[0]),
                "high": quantile(t, INTERVAL[1]),
                "reached": float(np.isfinite(t).mean()),
                "trials": int(t.size),
            }
        )
    return pd.DataFrame(rows, columns=["scheme", "median", "low", "high", "reached", "trials"])


def _time(value: float) -> str:
    return "never" if math.isinf(value) else ("n/a" if math.isnan(value) else f"{value:.4g}")


def format_time_to_target(frame: pd.DataFrame, target: float | None) -> str:
    """The text ``gcsim run`` prints for a training run: one line per scheme (in the run's
    order, as every other table) with the median time to ``target`` loss, its 2.5-97.5% range
    over trials and the share of trials that reached it."""
    if target is None:
        return "time to target loss: no training.target_loss set"
    summary = target_summary(frame, target)
    width = max([len("scheme"), *(len(s) for s in summary["scheme"])])
    lines = [
        f"time to loss <= {target:g} (median and 2.5-97.5% range over trials)",
        f"{'scheme':<{width}}  {'median':>10}  {'range':>23}  {'reached':>8}",
    ]
    for row in summary.itertuples(index=False):
        span = f"{_time(row.low)} - {_time(row.high)}"
        lines.append(
            f"{row.scheme:<{width}}  {_time(row.median):>10}  {span:>23}  "
            f"{100 * row.reached:>7.0f}%"
        )
    return "\n".join(lines)
