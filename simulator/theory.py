"""What the simulator must agree with (PROTOCOLS.md section 6).

With ``per: worker`` compute times, no network and no failures, a worker with load L finishes at
L times its draw, so completion times are scaled order statistics of m iid draws. The generic
functions take any law with a cdf and sf (a registered distribution, or its sampler: see
``compute.base.Sampler``): order-statistic CDFs by the binomial formula, means by integrating
the survival function. The closed forms below them (shifted exponential, Pareto) are kept as
checks of the generic ones. ``experiments/validation`` and the tests compare the simulator with
these.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from .compute.base import Sampler

# --------------------------------------------------------------------------------------------
# Any law with a cdf


def order_cdf(law: Sampler, x: ArrayLike, n: int, k: int) -> np.ndarray:
    """P(k-th smallest of n iid draws <= x): at least k of the n are <= x."""
    return stats.binom.sf(k - 1, n, _known(law.cdf(x)))


def order_sf(law: Sampler, x: ArrayLike, n: int, k: int) -> np.ndarray:
    """P(k-th smallest of n iid draws > x): at least n - k + 1 of the n are > x (from the sf,
    so it keeps its digits where the cdf rounds to 1)."""
    return special.bdtrc(n - k, n, _known(law.sf(x)))


def order_mean(law: Sampler, n: int, k: int) -> float:
    """E of the k-th smallest of n iid non-negative draws (inf where it diverges)."""
    return mean_from_sf(lambda x: order_sf(law, x, n, k))


def frc_group_cdf(law: Sampler, x: ArrayLike, m: int, load: int) -> np.ndarray:
    """P(frc done by x): every one of the m / load groups has a worker done by x, a worker's
    time being load x its draw."""
    y = np.asarray(x, dtype=float) / load
    none_done = _known(law.sf(y)) ** load
    return (1.0 - none_done) ** (m // load)


def frc_group_mean(law: Sampler, m: int, load: int) -> float:
    def sf(x: np.ndarray) -> np.ndarray:
        return 1.0 - frc_group_cdf(law, x, m, load)

    return mean_from_sf(sf)


def _known(values: np.ndarray | None) -> np.ndarray:
    if values is None:
        raise ValueError("this law's cdf is unknown (an empirical part without its data?)")
    return values


#: Survival levels at which the mean's integral is cut into pieces: the bulk, the shoulder and
#: each decade of the tail get their own (a step or kink at the bottom of the support falls on a
#: cut), so each piece is smooth at its own scale.
_CUTS = (1.0 - 1e-9, 0.5, 1e-2, 1e-4, 1e-6, 1e-9, 1e-12, 1e-16, 1e-24, 1e-40)
#: Where the integral stops: a survival function still above ``_DIVERGES`` x the median at this
#: time is taken to have no finite mean (it decays too slowly to be integrated in float64).
_X_MAX, _DIVERGES = 1e300, 1e-9
#: Each piece is halved until two Gauss-Legendre estimates agree to this, relative to the median
#: (the closed forms then agree to about 1e-13).
_TOLERANCE = 1e-13
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(32)
#: Bounds on the halving (a jump the pieces do not fall on converges slowly: stop, it is small).
_MAX_DEPTH, _MAX_PIECES = 60, 4000


def mean_from_sf(sf: Callable[[np.ndarray], np.ndarray]) -> float:
    """E[T] = integral over [0, inf) of P(T > x), for a non-negative T given its (vectorised)
    survival function: adaptive Gauss-Legendre on pieces cut at survival levels, the last piece
    in log time (a power tail is then an exponential one). inf when the tail decays too slowly
    to have a mean."""

    with np.errstate(all="ignore"):  # scipy's sf overflows on its way to 0 far in a tail
        return _mean_from_sf(sf)


def _mean_from_sf(sf: Callable[[np.ndarray], np.ndarray]) -> float:
    def at(x: float) -> float:
        return float(sf(np.asarray(x, dtype=float)))

    cuts = [0.0, *_levels(sf, np.asarray(_CUTS)).tolist()]
    if math.isinf(cuts[-1]):
        return math.inf
    tolerance = _TOLERANCE * max(cuts[2], 1e-300)  # cuts[2]: the median
    if at(_X_MAX) * _X_MAX > _DIVERGES * max(cuts[2], 1e-300):
        return math.inf
    total = sum(
        _integral(sf, a, b, tolerance) for a, b in zip(cuts, cuts[1:], strict=False) if b > a
    )

    def log_time(u: np.ndarray) -> np.ndarray:
        x = np.exp(u)
        return sf(x) * x

    lo = math.log(max(cuts[-1], 1e-300))
    return total + _integral(log_time, lo, math.log(_X_MAX), tolerance)


def _integral(f: Callable[[np.ndarray], np.ndarray], a: float, b: float, tol: float) -> float:
    """Integral of f over [a, b], halving until two estimates agree within ``tol``."""

    def gauss(lo: float, hi: float) -> float:
        half = 0.5 * (hi - lo)
        return half * float(np.dot(_WEIGHTS, f(half * _NODES + (lo + half))))

    stack = [(a, b, gauss(a, b), 0)]
    total, pieces = 0.0, 0
    while stack:
        lo, hi, whole, depth = stack.pop()
        mid = 0.5 * (lo + hi)
        left, right = gauss(lo, mid), gauss(mid, hi)
        if not math.isfinite(left + right):
            raise ValueError(f"the survival function is not finite on [{lo}, {hi}]")
        pieces += 1
        if (
            abs(left + right - whole) <= tol * (hi - lo) / (b - a)
            or depth >= _MAX_DEPTH
            or pieces >= _MAX_PIECES
        ):
            total += left + right
        else:
            stack += [(lo, mid, left, depth + 1), (mid, hi, right, depth + 1)]
    return total


def _levels(sf: Callable[[np.ndarray], np.ndarray], levels: np.ndarray) -> np.ndarray:
    """The times where the survival function falls to each level (inf beyond 1e300): bracketed
    on a grid of powers of two, then bisected, all levels at once (one call of sf per step)."""
    grid = np.concatenate([[0.0], 2.0 ** np.arange(-1074, 997)])
    above = sf(grid)[None, :] > levels[:, None]  # (levels, grid): not yet down to the level
    first = above.sum(axis=1)  # sf is non-increasing: the first grid point at or below
    found = first < grid.size
    hi = np.where(found, grid[np.minimum(first, grid.size - 1)], np.inf)
    lo = np.where(found, grid[np.maximum(first - 1, 0)], np.inf)
    for _ in range(64):
        mid = np.where(found, 0.5 * (lo + hi), np.inf)
        down = sf(mid) <= levels
        hi, lo = np.where(down, mid, hi), np.where(down, lo, mid)
    return hi


# --------------------------------------------------------------------------------------------
# Closed forms: shift + Exp(rate), Pareto, fail-stop


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
