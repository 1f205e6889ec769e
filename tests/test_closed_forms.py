"""The simulator against the closed forms of PROTOCOLS.md section 6 (statistically).

With ``per: worker`` shifted-exponential speeds, no network and no failures, a worker with load L
finishes at L (shift + X_j), X_j ~ Exp(rate) iid. So
- uncoded (load 1, waits for every worker): T = max_j (shift + X_j);
- original_gc (cyclic, ell = 1, s = L - 1, decodes from any m - s uploads):
  T / L = the (m - s)-th smallest of m iid shift + Exp(rate).
Means are compared within 4 standard errors, whole distributions with a KS test, and fail-stop
decode rates with the binomial formulas.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simulator.cluster import Cluster
from simulator.config import from_dict
from simulator.runner import run

Z = 4.0  # standard errors allowed for a mean
P_MIN = 1e-3  # KS p-value threshold


def harmonic(n: int) -> float:
    return sum(1.0 / j for j in range(1, n + 1))


def order_stat_mean(n: int, k: int, shift: float, rate: float) -> float:
    """E of the k-th smallest of n iid shift + Exp(rate)."""
    return shift + (harmonic(n) - harmonic(n - k)) / rate


def order_stat_var(n: int, k: int, rate: float) -> float:
    return sum(1.0 / (j * rate) ** 2 for j in range(n - k + 1, n + 1))


def order_stat_cdf(x: np.ndarray, n: int, k: int, shift: float, rate: float) -> np.ndarray:
    """P(k-th smallest of n iid shift + Exp(rate) <= x) = P(at least k of n are <= x)."""
    x = np.asarray(x, dtype=float)
    g = -np.expm1(-rate * np.clip(x - shift, 0.0, None))
    return stats.binom.sf(k - 1, n, g)


def max_cdf(x: np.ndarray, n: int, shift: float, rate: float) -> np.ndarray:
    """(1 - exp(-rate (x - shift)))^n: the maximum of n iid shift + Exp(rate)."""
    x = np.asarray(x, dtype=float)
    return (-np.expm1(-rate * np.clip(x - shift, 0.0, None))) ** n


def experiment(
    workers: int, load: int, trials: int, shift: float, rate: float, seed: int, prob: float = 0.0
):
    return from_dict(
        {
            "name": "closed_forms",
            "seed": seed,
            "trials": trials,
            "cluster": {
                "workers": workers,
                "compute": {
                    "dist": "shifted_exponential",
                    "shift": shift,
                    "rate": rate,
                    "per": "worker",
                },
                "failures": {"prob": prob},
                "network": {"latency": 0.0, "time_per_float": 0.0},
            },
            "data": {"chunks": workers, "dim": 8, "gradients": "none"},
            "output": {"events_trials": 0},
            "schemes": [
                {"protocol": "uncoded"},
                {"protocol": "original_gc", "load": load, "ell": 1, "construction": "random"},
            ],
        }
    )


@cache
def summary(
    workers: int, load: int, trials: int, shift: float, rate: float, seed: int, prob: float = 0.0
) -> pd.DataFrame:
    """One run (both schemes on the same realizations), shared by the tests of a case."""
    return run(experiment(workers, load, trials, shift, rate, seed, prob)).summary


def times(frame: pd.DataFrame, scheme: str) -> np.ndarray:
    rows = frame[frame["scheme"] == scheme].sort_values("trial")
    return rows["completion_time"].to_numpy()


# (workers m, load L, shift, rate, seed); trials per case
CASES = [
    pytest.param(20, 4, 1.0, 1.0, 11, id="m20-L4-shift1-rate1"),
    pytest.param(12, 3, 0.5, 2.0, 12, id="m12-L3-shift0.5-rate2"),
    pytest.param(8, 2, 0.0, 0.5, 13, id="m8-L2-shift0-rate0.5"),
    pytest.param(6, 6, 2.0, 3.0, 14, id="m6-L6-s5-min"),  # s = m - 1: the fastest worker
    pytest.param(5, 1, 1.0, 1.5, 15, id="m5-L1-s0-all"),  # s = 0: wait for every worker
]
TRIALS = 3000


def mean_within(sample: np.ndarray, mean: float, var: float) -> tuple[bool, str]:
    """Sample mean within Z standard errors (the closed-form variance) of the closed form."""
    se = math.sqrt(var / sample.size)
    got = float(sample.mean())
    return abs(got - mean) <= Z * se, f"mean {got:.5f}, closed form {mean:.5f}, se {se:.5f}"


def variance_within(sample: np.ndarray, var: float) -> tuple[bool, str]:
    """Sample variance within Z standard errors, the SE from the sample's fourth moment."""
    centered = sample - sample.mean()
    got = float(np.mean(centered**2))
    se = math.sqrt((np.mean(centered**4) - got**2) / sample.size)
    return abs(got - var) <= Z * se, f"var {got:.5f}, closed form {var:.5f}, se {se:.5f}"


@pytest.mark.parametrize(("m", "load", "shift", "rate", "seed"), CASES)
def test_uncoded_is_the_maximum_of_m_workers(m, load, shift, rate, seed):
    t = times(summary(m, load, TRIALS, shift, rate, seed), "uncoded")
    assert t.size == TRIALS and np.all(np.isfinite(t))
    assert t.min() >= shift
    ok, why = mean_within(t, shift + harmonic(m) / rate, order_stat_var(m, m, rate))
    assert ok, why
    ok, why = variance_within(t, order_stat_var(m, m, rate))
    assert ok, why
    ks = stats.kstest(t, lambda x: max_cdf(x, m, shift, rate))
    assert ks.pvalue > P_MIN, ks
    # The test has power: the second largest of m (one straggler ignored) is rejected.
    wrong = stats.kstest(t, lambda x: order_stat_cdf(x, m, m - 1, shift, rate))
    assert wrong.pvalue < 1e-6, wrong


@pytest.mark.parametrize(("m", "load", "shift", "rate", "seed"), CASES)
def test_original_gc_is_the_m_minus_s_order_statistic(m, load, shift, rate, seed):
    s = load - 1
    t = times(summary(m, load, TRIALS, shift, rate, seed), "original_gc")
    assert t.size == TRIALS and np.all(np.isfinite(t))
    mean = load * (shift + (harmonic(m) - harmonic(s)) / rate)
    assert mean == pytest.approx(load * order_stat_mean(m, m - s, shift, rate))
    var = load**2 * order_stat_var(m, m - s, rate)
    ok, why = mean_within(t, mean, var)
    assert ok, why
    ok, why = variance_within(t, var)
    assert ok, why
    ks = stats.kstest(t / load, lambda x: order_stat_cdf(x, m, m - s, shift, rate))
    assert ks.pvalue > P_MIN, ks
    # Power: waiting for one upload more or less than m - s is rejected.
    for k in (m - s - 1, m - s + 1):
        if 1 <= k <= m:
            wrong = stats.kstest(t / load, lambda x, k=k: order_stat_cdf(x, m, k, shift, rate))
            assert wrong.pvalue < 1e-6, (k, wrong)


def test_original_gc_with_load_one_equals_uncoded_trial_by_trial():
    """s = 0: the same realization gives the same time (same per-worker draws, one chunk)."""
    frame = summary(5, 1, TRIALS, 1.0, 1.5, 15)
    np.testing.assert_allclose(times(frame, "original_gc"), times(frame, "uncoded"), rtol=1e-12)


def test_completion_times_are_the_order_statistics_of_the_drawn_speeds():
    """Exactly, trial by trial: T_uncoded = max_j x_j and T_original = L x_(m-s) where x_j are
    the per-worker chunk times the cluster drew (no statistics needed)."""
    m, load, trials = 12, 3, 200
    exp = experiment(m, load, trials, 0.5, 2.0, seed=21)
    frame = run(exp).summary
    draws = Cluster(exp, steps=load).draw(0, trials).step_times  # (trials, workers, steps)
    per_worker = draws[:, :, 0]
    np.testing.assert_allclose(draws, per_worker[:, :, None].repeat(load, axis=2))
    ordered = np.sort(per_worker, axis=1)
    np.testing.assert_allclose(times(frame, "uncoded"), ordered[:, -1], rtol=1e-12)
    np.testing.assert_allclose(times(frame, "original_gc"), load * ordered[:, m - load], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Fail-stop


def p_at_most(m: int, s: int, p: float) -> float:
    """sum_{j <= s} C(m, j) p^j (1 - p)^(m - j): at most s of m workers down."""
    return sum(math.comb(m, j) * p**j * (1 - p) ** (m - j) for j in range(s + 1))


FAIL_CASES = [
    pytest.param(12, 3, 0.1, 31, id="m12-L3-p0.1"),
    pytest.param(20, 4, 0.15, 32, id="m20-L4-p0.15"),
]
FAIL_TRIALS = 4000


def rate_within(decoded: np.ndarray, prob: float) -> tuple[bool, str]:
    se = math.sqrt(prob * (1 - prob) / decoded.size)
    got = float(decoded.mean())
    return abs(got - prob) <= Z * se, f"decoded {got:.4f}, closed form {prob:.4f}, se {se:.4f}"


@pytest.mark.parametrize(("m", "load", "p", "seed"), FAIL_CASES)
def test_fail_stop_decode_rates(m, load, p, seed):
    s = load - 1
    frame = summary(m, load, FAIL_TRIALS, 1.0, 1.0, seed, p)
    for scheme, expected in (("original_gc", p_at_most(m, s, p)), ("uncoded", (1 - p) ** m)):
        rows = frame[frame["scheme"] == scheme]
        decoded = rows["decoded"].to_numpy()
        assert decoded.size == FAIL_TRIALS
        ok, why = rate_within(decoded, expected)
        assert ok, f"{scheme}: {why}"
        # Undecoded trials are reported as never finishing, decoded ones finish in finite time.
        t = rows["completion_time"].to_numpy()
        assert np.all(np.isinf(t[~decoded])) and np.all(np.isfinite(t[decoded]))
    # Paired on the same realization: uncoded decodes only where original_gc does.
    orig = frame[frame["scheme"] == "original_gc"].sort_values("trial")["decoded"].to_numpy()
    unc = frame[frame["scheme"] == "uncoded"].sort_values("trial")["decoded"].to_numpy()
    assert not np.any(unc & ~orig)
    # The formula distinguishes s from s +- 1 at these sizes (the check has power).
    for wrong_s in (s - 1, s + 1):
        assert not rate_within(orig, p_at_most(m, wrong_s, p))[0]


def test_fail_stop_decodes_exactly_when_at_most_s_are_down():
    m, load, p, trials = 12, 3, 0.2, 300
    exp = experiment(m, load, trials, 1.0, 1.0, seed=41, prob=p)
    frame = run(exp).summary
    down = Cluster(exp, steps=load).draw(0, trials).down.sum(axis=1)
    orig = frame[frame["scheme"] == "original_gc"].sort_values("trial")["decoded"].to_numpy()
    unc = frame[frame["scheme"] == "uncoded"].sort_values("trial")["decoded"].to_numpy()
    np.testing.assert_array_equal(orig, down <= load - 1)
    np.testing.assert_array_equal(unc, down == 0)
    assert 0 < (down > load - 1).sum() < trials  # both outcomes occur
