"""Closed forms the simulator must agree with (PROTOCOLS.md section 6).

Compute times are ``shift + Exp(rate)`` per chunk with ``per: worker`` (a worker's full time is
load x that), so completion times are scaled order statistics of m iid draws. Every function
here is a pure formula; ``experiments/validation`` and the tests compare the simulator with them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats


def harmonic(n: int) -> float:
    return float(np.sum(1.0 / np.arange(1, n + 1))) if n > 0 else 0.0


def exp_order_mean(n: int, k: int, shift: float, rate: float) -> float:
    """E of the k-th smallest of n iid shift + Exp(rate)."""
    return shift + (harmonic(n) - harmonic(n - k)) / rate


def exp_order_var(n: int, k: int, rate: float) -> float:
    return float(sum(1.0 / (j * rate) ** 2 for j in range(n - k + 1, n + 1)))


def exp_order_cdf(x: np.ndarray, n: int, k: int, shift: float, rate: float) -> np.ndarray:
    """P(k-th smallest of n iid shift + Exp(rate) <= x): at least k of n below x."""
    p = np.where(np.asarray(x) > shift, -np.expm1(-rate * (np.asarray(x) - shift)), 0.0)
    return stats.binom.sf(k - 1, n, p)


def uncoded_mean(m: int, shift: float, rate: float) -> float:
    """Wait for all m workers, one chunk each."""
    return exp_order_mean(m, m, shift, rate)


def original_gc_mean(m: int, load: int, shift: float, rate: float, ell: int = 1) -> float:
    """Any m - s of m workers, each taking load x (shift + X): L (shift + (H_m - H_s) / rate)."""
    s = load - ell
    return load * exp_order_mean(m, m - s, shift, rate)


def frc_mean(m: int, load: int, shift: float, rate: float) -> float:
    """One finished worker per group: the max over g = m / load groups of the min of load
    draws, times load: L (shift + H_g / (load rate))."""
    groups = m // load
    return load * (shift + harmonic(groups) / (load * rate))


def frc_cdf(x: np.ndarray, m: int, load: int, shift: float, rate: float) -> np.ndarray:
    groups = m // load
    y = np.asarray(x) / load
    p_group = np.where(y > shift, -np.expm1(-load * rate * (y - shift)), 0.0)
    return p_group**groups


def original_gc_decodable(m: int, stragglers: int, p: float) -> float:
    """P(at most s of m workers are down) with independent fail-stop probability p."""
    return float(stats.binom.cdf(stragglers, m, p))


def frc_decodable(m: int, load: int, p: float) -> float:
    """P(every group of ``load`` workers has one that is up)."""
    return (1.0 - p**load) ** (m // load)


def pareto_order_mean(n: int, k: int, scale: float, alpha: float) -> float:
    """E of the k-th smallest of n iid Pareto(scale, alpha); inf unless alpha (n-k+1) > 1."""
    if alpha * (n - k + 1) <= 1:
        return math.inf
    log = (
        special.gammaln(n + 1)
        + special.gammaln(n - k + 1 - 1 / alpha)
        - special.gammaln(n - k + 1)
        - special.gammaln(n + 1 - 1 / alpha)
    )
    return scale * math.exp(log)


def pareto_order_cdf(x: np.ndarray, n: int, k: int, scale: float, alpha: float) -> np.ndarray:
    p = np.where(np.asarray(x) > scale, 1.0 - (scale / np.asarray(x)) ** alpha, 0.0)
    return stats.binom.sf(k - 1, n, p)
