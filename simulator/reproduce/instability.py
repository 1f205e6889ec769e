"""Polynomial interpolation at working precision: why Lagrange/Vandermonde decoding is unstable.

The original polynomial codes decode by interpolating a degree-D polynomial from D + 1
evaluations. This measures, for random polynomials, the relative squared error of the recovered
coefficients when the whole computation (evaluations and the solve) runs with a given number of
decimal digits (mpmath), at Chebyshev points of the first kind on [-1, 1]. The error is measured
against the exact coefficients in 3x the working precision.
"""

from __future__ import annotations

import mpmath
import numpy as np

from ..streams import generator


def interpolation_error(degree: int, digits: int, trials: int, seed: int = 0) -> np.ndarray:
    """Relative squared coefficient errors of ``trials`` random degree-``degree`` polynomials
    interpolated at ``digits`` decimal digits of working precision."""
    rng = generator(seed, "interpolation", degree)
    coefficients = rng.standard_normal((trials, degree + 1))  # the same polys at every precision
    n = degree + 1
    errors = np.empty(trials)
    with mpmath.workdps(digits):
        points = [mpmath.cos((2 * j + 1) * mpmath.pi / (2 * n)) for j in range(n)]
        vandermonde = mpmath.matrix([[x**c for c in range(n)] for x in points])
        for t in range(trials):
            truth = [mpmath.mpf(float(c)) for c in coefficients[t]]
            values = vandermonde * mpmath.matrix(truth)
            solved = mpmath.lu_solve(vandermonde, values)
            with mpmath.workdps(3 * digits):
                num = sum((solved[c] - truth[c]) ** 2 for c in range(n))
                den = sum(c**2 for c in truth)
                errors[t] = float(num / den)
    return errors


def precision_sweep(
    degrees=(20, 25, 30), digits=(16, 20, 24, 32, 40, 48), trials: int = 100, seed: int = 0
) -> dict[int, dict[int, float]]:
    """Mean relative squared error per degree and working precision (decimal digits)."""
    return {
        degree: {d: float(np.mean(interpolation_error(degree, d, trials, seed))) for d in digits}
        for degree in degrees
    }
