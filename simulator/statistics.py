"""The statistics every table reports, in one place, each with its uncertainty.

A table that prints a number a reader compares across schemes must say how sure it is and
what it averaged over. The rules, stated once here and in every table's caption
(``RULES``) and in the README:

- P(decoded) and P(accurate): the fraction of trials, with a 95% Wilson score interval (it
  stays inside [0, 1] and is honest at 0% and 100%, where the normal interval collapses).
- mean T: over the **decoded** trials only, with its standard error, and always shown beside
  the decoded fraction (a mean over the 21% of trials that decoded is not comparable with one
  over 100%).
- median T and p95 T: over **all** trials, a never-decoded trial counting as slower than any
  (``inf``), printed ``inf`` when the quantile lands there; a distribution-free 95% interval
  from order statistics (binomial ranks), which also reaches ``inf`` honestly.
- rel_error: mean over decoded trials with its standard error, the median and the maximum.

``accurate`` (a summary column; both engines fill it with ``accurate``) says whether a decode
is the gradient to ``data.tolerance``. A decode is a number the PS hands to the
optimizer; a decode of a badly conditioned system (original_gc's polynomial code at m >= 48:
condition numbers 1e18 and more) is garbage even though it "decoded", and must not be counted
as a success.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054

#: float64 unit round-off: a decode that inverts a matrix of condition number c loses up to
#: c * EPS of relative accuracy in the estimate's norm, so its rel_error (a squared ratio) is
#: up to (c * EPS)**2.
EPS = float(np.finfo(np.float64).eps)

#: What every table's caption says about how its numbers were made.
RULES = (
    "decoded/accurate: fraction of trials [95% Wilson interval]; accurate = decoded and "
    "rel_error <= data.tolerance. mean T: over decoded trials only, ± its standard error. "
    "median/p95 T: over all trials, a never-decoded trial counts as slowest (inf) "
    "[95% order-statistic interval]. rel_error = ||g_hat - g||^2 / ||g||^2 over decoded "
    "trials: mean ± standard error, max."
)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (NaN, NaN with no trials)."""
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At p = 0 or 1 the formula gives that bound itself, up to rounding: exactly, here.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def quantile(values: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile that treats inf (never decoded) as larger than anything."""
    with np.errstate(invalid="ignore"):
        value = float(np.quantile(values, q))
    return math.inf if math.isnan(value) else value


def binomial_quantile(p: float, n: int, q: float) -> int:
    """The smallest k with P(Binomial(n, q) <= k) >= p (scipy's ``binom.ppf``, which costs
    milliseconds a call): the probabilities within 12 standard deviations of the mean (the
    rest weighs under 1e-30), the first from log-gamma, the others by their ratios."""
    if q <= 0.0:
        return 0
    if q >= 1.0:
        return n
    spread = 12 * math.sqrt(n * q * (1 - q)) + 1
    first, last = max(0, int(n * q - spread)), min(n, int(n * q + spread) + 1)
    k = np.arange(first, last, dtype=float)
    start = (math.lgamma(n + 1) - math.lgamma(first + 1) - math.lgamma(n - first + 1)
             + first * math.log(q) + (n - first) * math.log1p(-q))  # fmt: skip
    steps = np.log((n - k) / (k + 1)) + math.log(q / (1 - q))
    log_pmf = np.concatenate([[start], start + np.cumsum(steps)])
    cdf = np.cumsum(np.exp(log_pmf))
    # Rounding can leave the total a hair under 1: the last k then stands for the rest.
    return min(first + int(np.searchsorted(cdf, p * (1 - 1e-12))), n)


def quantile_interval(
    values: np.ndarray, q: float, level: float = 0.95, ordered: np.ndarray | None = None
) -> tuple[float, float]:
    """A distribution-free interval for the q-quantile: the order statistics whose ranks are
    the binomial(n, q) quantiles at (1 -+ level) / 2. inf values sort last, so an interval
    that reaches the undecoded trials says inf. (NaN, NaN) without values. ``ordered``: the
    values sorted already."""
    n = values.size
    if n == 0:
        return math.nan, math.nan
    ordered = np.sort(values) if ordered is None else ordered
    tail = (1 - level) / 2
    low = binomial_quantile(tail, n, q)  # 1-based rank of the lower bound
    high = binomial_quantile(1 - tail, n, q) + 1
    return float(ordered[min(max(low, 1), n) - 1]), float(ordered[min(max(high, 1), n) - 1])


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean (NaN below two values)."""
    if values.size < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(values.size))


def column_stats(kind: str, short: str, values: pd.Series) -> dict[str, float | int]:
    """One scheme's statistics of one summary column (``values``: its rows, in file order), as
    the column's ``stats`` in ``schema.SUMMARY`` asks, keyed by its ``short`` name:

    - time: mean_<s> (all trials, inf when any is undecoded), median_<s>, p95_<s> (+ _lo, _hi:
      95% intervals), mean_<s>_decoded and se_<s>_decoded (decoded trials), trials;
    - rate: <s>_rate with <s>_rate_lo, <s>_rate_hi (Wilson), <s>_count;
    - error: mean_<s> (NaN rows, undecoded or no gradients, left out), se_<s>, median_<s>,
      max_<s>;
    - mean: mean_<s>.
    """
    if kind == "time":
        times = values.to_numpy(dtype=float)
        finite = times[np.isfinite(times)]
        ordered = np.sort(times)
        median_lo, median_hi = quantile_interval(times, 0.5, ordered=ordered)
        p95_lo, p95_hi = quantile_interval(times, 0.95, ordered=ordered)
        return {
            # Mean and quantiles over all trials: inf where undecoded trials weigh in.
            f"mean_{short}": float(np.mean(times)) if times.size else math.nan,
            f"median_{short}": quantile(times, 0.5) if times.size else math.nan,
            f"median_{short}_lo": median_lo,
            f"median_{short}_hi": median_hi,
            f"p95_{short}": quantile(times, 0.95) if times.size else math.nan,
            f"p95_{short}_lo": p95_lo,
            f"p95_{short}_hi": p95_hi,
            f"mean_{short}_decoded": float(np.mean(finite)) if finite.size else math.nan,
            f"se_{short}_decoded": standard_error(finite),
            "trials": int(times.size),
        }
    if kind == "rate":
        flags = values.to_numpy(dtype=bool)
        count = int(flags.sum())
        low, high = wilson(count, flags.size)
        return {
            f"{short}_rate": float(flags.mean()) if flags.size else math.nan,
            f"{short}_rate_lo": low,
            f"{short}_rate_hi": high,
            f"{short}_count": count,
        }
    if kind == "error":
        errors = values.to_numpy(dtype=float)
        known = errors[~np.isnan(errors)]
        return {
            f"mean_{short}": float(values.mean()),
            f"se_{short}": standard_error(known),
            f"median_{short}": float(np.median(known)) if known.size else math.nan,
            f"max_{short}": float(values.max()),
        }
    return {f"mean_{short}": float(values.mean())}


def accurate(decoded, rel_error, residual, decode_cond, tolerance: float):
    """Whether each decode is the gradient to ``tolerance`` (the ``accurate`` column): numbers
    or arrays of the other columns' values, as both engines call it on their rows (the event
    engine one row at a time, the fast engine a block at once), so they agree by construction.

    accurate = decoded and:

    - with a measured ``rel_error`` (gradients on): ``rel_error <= tolerance``. The same rule
      for every scheme: an approximate scheme (mode: approximate, fastest_k, bernoulli_gc) is
      accurate exactly when its estimate happened to be exact, so its accurate rate is
      P(exact) and its rel_error column says how far off the rest are;
    - without one (``data.gradients: none``): nothing was decoded numerically, so the decode is
      judged by what would have been: ``residual <= tolerance`` (the decoder is exact in exact
      arithmetic; NaN counts as exact) and ``(decode_cond * EPS)**2 <= tolerance`` (round-off
      in the matrices it inverts cannot exceed the tolerance; NaN, nothing inverted or
      ``output.decode_cond: false``, passes).
    """
    error = np.asarray(rel_error, dtype=float)
    residual = np.asarray(residual, dtype=float)
    cond = np.asarray(decode_cond, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = np.isnan(residual) | (residual <= tolerance)
        stable = np.isnan(cond) | ((cond * EPS) ** 2 <= tolerance)
        judged = np.where(np.isnan(error), exact & stable, error <= tolerance)
    return np.asarray(decoded, dtype=bool) & judged


def judge_accuracy(rows: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Fill ``accurate`` in summary rows from their other columns (``accurate``), in place;
    for frames made without the engines (tests, old files)."""
    rows["accurate"] = accurate(
        rows["decoded"], rows["rel_error"], rows["residual"], rows["decode_cond"], tolerance
    )
    return rows
