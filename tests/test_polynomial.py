"""Polynomial (Ye & Abbe style) gradient code: exactness, support, instability, least squares."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.coding.numerics import rel_error, split_blocks
from simulator.coding.polynomial import PolynomialCode, cyclic_holds, evaluation_points


def small_cases(max_m: int = 8):
    for m in range(3, max_m + 1):
        for load in range(1, m + 1):
            for ell in range(1, load + 1):
                yield m, load, ell


def subsets(m: int, size: int, rng: np.random.Generator, cap: int = 40) -> list[np.ndarray]:
    """Every subset of ``size`` workers if there are at most ``cap``, else ``cap`` random ones
    (in random order: the decoder must not depend on the workers being sorted)."""
    if math.comb(m, size) <= cap:
        return [rng.permutation(np.array(s)) for s in itertools.combinations(range(m), size)]
    return [rng.permutation(m)[:size] for _ in range(cap)]


def mean_error(m: int, load: int, ell: int, trials: int, seed: int, dim: int = 16) -> float:
    """Mean relative squared error of the decoded gradient over random Gaussian gradients and
    random sets of m - s workers (Chebyshev points, float64)."""
    rng = np.random.default_rng(seed)
    code = PolynomialCode(m, load, ell)
    errors = []
    for _ in range(trials):
        blocks = split_blocks(rng.standard_normal((m, dim)), ell)
        uploads = code.encode(blocks)
        workers = rng.permutation(m)[: code.needed]
        estimate = code.decode(workers, uploads[workers])
        errors.append(rel_error(estimate.ravel(), blocks.sum(axis=0).ravel()))
    return float(np.mean(errors))


def test_evaluation_points():
    for m in (1, 2, 5, 32):
        for kind in ("chebyshev", "equispaced"):
            pts = evaluation_points(m, kind)
            assert pts.shape == (m,)
            assert np.unique(pts).size == m
            assert np.all(np.abs(pts) <= 1.0)
    np.testing.assert_allclose(evaluation_points(2), [math.sqrt(0.5), -math.sqrt(0.5)])
    np.testing.assert_allclose(evaluation_points(3, "equispaced"), [-1.0, 0.0, 1.0])
    with pytest.raises(ValueError):
        evaluation_points(4, "random")
    with pytest.raises(ValueError):
        PolynomialCode(4, 2, 3)
    with pytest.raises(ValueError):
        PolynomialCode(4, 2, 1, points=[0.0, 0.5, 0.5, 1.0])


def test_encoder_support_is_cyclic():
    for m, load, ell in small_cases():
        code = PolynomialCode(m, load, ell)
        holds = cyclic_holds(m, load)
        assert holds.sum(axis=1).tolist() == [load] * m
        assert holds.sum(axis=0).tolist() == [load] * m
        for j in range(m):
            assert sorted(np.flatnonzero(holds[j]).tolist()) == sorted(
                (j + k) % m for k in range(load)
            )
        assert np.all(code.encoder[~holds] == 0.0), (m, load, ell)
        # and the holders do carry the chunk: each held chunk has a nonzero weight
        assert np.all(np.abs(code.encoder[holds]).max(axis=1) > 0), (m, load, ell)


def test_construction_matches_the_polynomial():
    """Uploads are evaluations of f, whose top ell coefficients are the block sums."""
    rng = np.random.default_rng(1)
    for m, load, ell in small_cases(7):
        code = PolynomialCode(m, load, ell)
        blocks = rng.standard_normal((m, ell, 3))
        coeffs = code.coefficients(blocks)
        assert coeffs.shape == (m - (load - ell), 3)
        top = coeffs[code.needed - 1 - np.arange(ell)]
        np.testing.assert_allclose(top, blocks.sum(axis=0), atol=1e-11)
        values = np.vander(code.points, code.needed, increasing=True) @ coeffs
        np.testing.assert_allclose(code.encode(blocks), values, atol=1e-10)


def test_exact_for_small_m():
    """m = 3..8, every load and ell <= load, many sets of m - s workers: rel. sq. error < 1e-20."""
    rng = np.random.default_rng(2)
    worst = 0.0
    for m, load, ell in small_cases():
        code = PolynomialCode(m, load, ell)
        assert code.stragglers == load - ell and code.needed == m - load + ell
        dim = 2 * ell + 1  # not a multiple of ell when ell > 1: exercises the padding
        grads = rng.standard_normal((m, dim))
        blocks = split_blocks(grads, ell)
        truth = grads.sum(axis=0)
        uploads = code.encode(blocks)
        for workers in subsets(m, code.needed, rng):
            estimate = code.decode(workers, uploads[workers])
            worst = max(worst, rel_error(estimate.reshape(-1)[:dim], truth))
            via_matrix = code.decoder(workers) @ uploads[workers]
            worst = max(worst, rel_error(via_matrix.reshape(-1)[:dim], truth))
            assert np.isfinite(code.decode_cond(workers))
    assert worst < 1e-20, worst


def test_more_uploads_than_needed():
    """With more than m - s uploads all are used (least squares); still exact."""
    rng = np.random.default_rng(3)
    code = PolynomialCode(8, 4, 2)
    blocks = rng.standard_normal((8, 2, 5))
    uploads = code.encode(blocks)
    for size in range(code.needed, 9):
        workers = rng.permutation(8)[:size]
        for estimate in (
            code.decode(workers, uploads[workers]),
            code.decoder(workers) @ uploads[workers],
        ):
            assert rel_error(estimate.ravel(), blocks.sum(axis=0).ravel()) < 1e-20
    with pytest.raises(ValueError):
        code.decoder([0, 1, 2, 3, 4])  # m - s = 6
    with pytest.raises(ValueError):
        code.decoder([0, 1, 2, 3, 4, 4])


def test_error_grows_with_m():
    """The monomial-basis interpolation loses accuracy exponentially in m - s.

    load = 4, ell = 2 (s = 2, so m - s = m - 2 uploads), Chebyshev points, float64, mean relative
    squared error over 60 random (Gaussian gradients, random m - s workers) draws, seed 0.
    Measured: m = 8: 9.9e-29, m = 16: 1.5e-23, m = 24: 1.2e-17, m = 32: 1.7e-11 (median
    Vandermonde condition numbers 8e1, 1e5, 1e8, 2e11). PROTOCOLS.md quotes about 1e-29, 1e-17,
    1e-9 for m = 8, 24, 32 with unstated load and ell; with the same measurement this
    implementation gives 1.0e-29, 1.5e-23, 1.2e-15, 7.9e-8 for load = m/4, ell = m/8 and
    1.0e-29, 3.7e-24, 1.1e-18, 6.0e-12 for load = m/4, ell = 1.
    """
    errors = {m: mean_error(m, 4, 2, trials=60, seed=0) for m in (8, 16, 24, 32)}
    assert errors[8] < 1e-25, errors
    assert errors[32] > 1e-15, errors
    assert errors[32] > 1e6 * errors[8], errors
    assert errors[8] < errors[16] < errors[24] < errors[32], errors
    code = PolynomialCode(32, 4, 2)
    assert code.decode_cond(range(30)) > 1e9


def test_least_squares_matches_exact_decoder():
    rng = np.random.default_rng(4)
    for m, load, ell in small_cases(7):
        code = PolynomialCode(m, load, ell)
        for workers in subsets(m, code.needed, rng, cap=5):
            dec, residual = code.least_squares_decoder(workers)
            assert residual < 1e-18, (m, load, ell, residual)
            exact = code.decoder(workers)
            np.testing.assert_allclose(dec, exact, rtol=1e-7, atol=1e-9 * np.abs(exact).max())


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=2, max_value=10).flatmap(
        lambda m: st.tuples(
            st.just(m),
            st.integers(min_value=1, max_value=m).flatmap(
                lambda load: st.tuples(st.just(load), st.integers(1, load))
            ),
            st.permutations(list(range(m))),
        )
    )
)
def test_least_squares_residual_is_monotone(case):
    """Adding a worker never increases the residual; positive below m - s, ~0 from m - s on."""
    m, (load, ell), order = case
    code = PolynomialCode(m, load, ell)
    residuals = [code.least_squares_decoder(order[:k])[1] for k in range(m + 1)]
    assert residuals[0] == pytest.approx(m * ell)
    for before, after in itertools.pairwise(residuals):
        assert after <= before + 1e-9
    assert all(r > 1e-6 for r in residuals[: code.needed]), residuals
    assert all(r < 1e-15 for r in residuals[code.needed :]), residuals


def test_least_squares_estimate():
    """With fewer uploads the estimate D @ y is what the residual says: exact on the span."""
    rng = np.random.default_rng(5)
    code = PolynomialCode(8, 4, 2)
    workers = [0, 2, 3, 5, 6]  # m - s = 6 needed
    dec, residual = code.least_squares_decoder(workers)
    assert residual > 0.1
    flat = code.encoder[workers].reshape(len(workers), -1)
    miss = dec @ flat - code.target()
    blocks = rng.standard_normal((8, 2, 4))
    estimate = dec @ code.encode(blocks)[workers]
    np.testing.assert_allclose(
        estimate - blocks.sum(axis=0), miss @ blocks.reshape(16, 4), atol=1e-12
    )


def _mp_decode(mp, points, holds, load, ell, blocks, workers):
    """The same construction and Vandermonde LU solve in mpmath at the current precision."""
    m = len(points)
    n = m - (load - ell)
    a = [mp.mpf(float(p)) for p in points]
    width = blocks.shape[2]
    uploads = []
    for j in range(m):
        y = [mp.mpf(0)] * width
        for i in range(m):
            if not holds[j, i]:
                continue
            roots = [a[r] for r in range(m) if not holds[r, i]]
            z = [mp.mpf(1)]  # descending coefficients of prod (x - r)
            for r in roots:
                z = [*z, mp.mpf(0)]
                z = [z[t] - (r * z[t - 1] if t else 0) for t in range(len(z))]
            z_at = mp.fprod([a[j] - r for r in roots])
            for col in range(width):
                g = [mp.mpf(float(v)) for v in blocks[i, :, col]]
                b = []
                for k in range(ell):  # forward substitution with the unit Toeplitz matrix
                    b.append(g[k] - mp.fsum(z[k - t] * b[t] for t in range(k) if k - t < len(z)))
                q_at = mp.mpf(0)
                for coef in b:  # Horner, descending
                    q_at = q_at * a[j] + coef
                y[col] += z_at * q_at
        uploads.append(y)
    vander = mp.matrix([[a[j] ** c for c in range(n)] for j in workers])
    out = np.empty((ell, width), dtype=object)
    for col in range(width):
        coeffs = mp.lu_solve(vander, mp.matrix([uploads[j][col] for j in workers]))
        for k in range(ell):
            out[k, col] = coeffs[n - 1 - k]
    return out


def test_instability_is_rounding():
    """At m = 24, load = 4, ell = 2 the float64 error is large, the identical computation at 50
    digits is exact to < 1e-40 (so the construction is right and the loss is rounding), and the
    same computation at 53 bits in mpmath loses about as much as numpy does.

    Measured (seed 6, three draws): float64 5e-19..4e-18, mpmath 53 bits 4e-20..3e-19, mpmath
    50 digits 1e-90..6e-90 relative squared error.
    """
    mpmath = pytest.importorskip("mpmath")
    m, load, ell, width = 24, 4, 2, 2
    code = PolynomialCode(m, load, ell)
    rng = np.random.default_rng(6)
    f64, mp53, mp50 = [], [], []
    for _ in range(3):
        blocks = rng.standard_normal((m, ell, width))
        workers = rng.permutation(m)[: code.needed].tolist()
        with mpmath.workdps(60):  # the true block sums of the float64 inputs, exactly
            truth = [
                [mpmath.fsum(mpmath.mpf(float(v)) for v in blocks[:, k, c]) for c in range(width)]
                for k in range(ell)
            ]
            norm = mpmath.fsum(t**2 for row in truth for t in row)

        def sq_err(est, truth=truth, norm=norm):
            with mpmath.workdps(60):
                diff = [
                    (mpmath.mpf(est[k][c]) - truth[k][c]) ** 2
                    for k in range(ell)
                    for c in range(width)
                ]
                return float(mpmath.fsum(diff) / norm)

        with mpmath.workdps(50):
            mp50.append(
                sq_err(
                    _mp_decode(
                        mpmath.mp, code.points, code.holds, load, ell, blocks, workers
                    ).tolist()
                )
            )
        with mpmath.workprec(53):
            mp53.append(
                sq_err(
                    _mp_decode(
                        mpmath.mp, code.points, code.holds, load, ell, blocks, workers
                    ).tolist()
                )
            )
        f64.append(sq_err(code.decode(workers, code.encode(blocks)[workers]).tolist()))
    assert max(mp50) < 1e-40, mp50
    assert min(f64) > 1e-24, f64
    assert 1e-3 < np.mean(mp53) / np.mean(f64) < 1e3, (mp53, f64)
