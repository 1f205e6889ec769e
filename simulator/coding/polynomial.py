"""Ye & Abbe style polynomial gradient code for the cyclic assignment, as plain linear algebra.

Cyclic assignment, N = m: worker j holds chunks j, ..., j+load-1 (mod m), so chunk i is held by
workers i-load+1, ..., i (mod m). With the communication split ell (1 <= ell <= load) each chunk
gradient g_i is cut into ell blocks g_i^(k), k = 0..ell-1 (0-based, ``numerics.split_blocks``
layout), and s = load - ell stragglers are tolerated.

Construction (PROTOCOLS.md 3.4, ``construction: polynomial``), with n = m - s:

- distinct real evaluation points a_0..a_{m-1} (Chebyshev points of the first kind by default);
- z_i(x) = prod over the m - load workers j NOT holding chunk i of (x - a_j): monic, degree
  m - load;
- q_i(x) = sum_t b_{i,t} x^(ell-1-t), a vector polynomial of degree ell - 1 chosen so that the top
  ell coefficients of p_i = z_i q_i are the blocks: coefficient of x^(n-1-k) in p_i is g_i^(k).
  Writing z_i = x^(m-load) + c_1 x^(m-load-1) + ..., that is Z_i b_i = g_i with Z_i the unit lower
  triangular Toeplitz matrix of (1, c_1, ..., c_{ell-1}): a triangular solve;
- worker j uploads y_j = f(a_j), f = sum_i p_i, a polynomial of degree n - 1. p_i(a_j) = 0 unless
  j holds i, so worker j only needs its own chunks;
- the PS interpolates f from any n uploads (a Vandermonde solve in the monomial basis) and reads
  block k of g = sum_i g_i as the coefficient of x^(n-1-k).

Everything is linear in the blocks, so :class:`PolynomialCode` exposes it as matrices:
``encoder[j, i, k]`` (worker j's weight on g_i^(k)) and decoding matrices D (ell x |S|) with
block k of g = sum_j D[k, j] y_j.

Numerics, deliberately plain float64: the interpolation is an LU solve with the monomial
Vandermonde matrix of the received points, whose condition number grows exponentially in n even
for Chebyshev points. The resulting loss of accuracy as m grows is the result the simulator must
show (see ``decode_cond``); nothing here uses extended precision or a better-conditioned basis.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import scipy.linalg

from .numerics import block_sum_target, cond, least_squares_combination

POINT_KINDS = ("chebyshev", "equispaced")


def evaluation_points(m: int, kind: str = "chebyshev") -> np.ndarray:
    """m distinct evaluation points on [-1, 1].

    ``chebyshev``: first-kind Chebyshev points cos((2j + 1) pi / (2m)), j = 0..m-1 (decreasing,
    strictly inside (-1, 1)). ``equispaced``: linspace(-1, 1, m) (just 0 for m = 1).
    """
    if m < 1:
        raise ValueError(f"need at least one evaluation point, got m={m}")
    if kind == "chebyshev":
        return np.cos((2 * np.arange(m) + 1) * np.pi / (2 * m))
    if kind == "equispaced":
        return np.linspace(-1.0, 1.0, m) if m > 1 else np.zeros(1)
    raise ValueError(f"unknown evaluation point kind {kind!r}, expected one of {POINT_KINDS}")


def cyclic_holds(m: int, load: int) -> np.ndarray:
    """Boolean (workers x chunks) incidence of the cyclic assignment: j holds i iff
    (i - j) mod m < load."""
    j = np.arange(m)[:, None]
    i = np.arange(m)[None, :]
    return (i - j) % m < load


def vandermonde(points: np.ndarray, columns: int) -> np.ndarray:
    """V[..., r, c] = points[..., r] ** c, c = 0..columns-1 (monomial basis, ascending powers),
    for one set of points or a stack of them. The powers are sequential products, as
    ``np.vander(points, columns, increasing=True)`` computes them: the same bits."""
    out = np.empty(points.shape + (columns,))
    if columns > 0:
        out[..., 0] = 1
    if columns > 1:
        out[..., 1:] = points[..., None]
        np.multiply.accumulate(out[..., 1:], out=out[..., 1:], axis=-1)
    return out


def checked_workers(workers: Sequence[int], m: int, at_least: int) -> np.ndarray:
    """The uploaders as an int array: distinct ids in 0..m-1, at least ``at_least`` of them
    (ValueError otherwise). Shared by the codes that decode from any m - s uploads."""
    rows = np.asarray(workers, dtype=int).reshape(-1)
    out_of_range = rows.size > 0 and not (0 <= rows.min() and rows.max() < m)
    if out_of_range or np.unique(rows).size != rows.size:
        raise ValueError(f"workers must be distinct ids in 0..{m - 1}, got {workers}")
    if rows.size < at_least:
        raise ValueError(
            f"exact decoding needs at least m - s = {at_least} uploads, got {rows.size}; "
            "use least_squares_decoder for approximate decoding"
        )
    return rows


class PolynomialCode:
    """The polynomial code for m workers = chunks, cyclic assignment, given load and ell.

    Attributes: ``m``, ``load``, ``ell``, ``stragglers`` (s = load - ell), ``needed``
    (n = m - s uploads for exact decoding), ``points`` (a_j), ``holds`` (m x m bool, worker x
    chunk) and ``encoder`` (m, m, ell).
    """

    def __init__(self, m: int, load: int, ell: int, points: np.ndarray | None = None):
        if not 1 <= ell <= load <= m:
            raise ValueError(f"need 1 <= ell <= load <= m, got m={m}, load={load}, ell={ell}")
        self.m, self.load, self.ell = m, load, ell
        self.stragglers = load - ell
        self.needed = m - self.stragglers
        pts = evaluation_points(m) if points is None else np.asarray(points, dtype=float)
        if pts.shape != (m,):
            raise ValueError(f"need {m} evaluation points, got shape {pts.shape}")
        if np.unique(pts).size != m:
            raise ValueError("evaluation points must be distinct")
        self.points = pts
        self.holds = cyclic_holds(m, load)
        # Building the encoder is O(m^3) (9 s at m = 1000): planned once per machine.
        from .. import plan_cache

        self.encoder = plan_cache.cached_array(
            "polynomial_encoder",
            "1",
            {"m": m, "load": load, "ell": ell, "points": pts},
            self._build_encoder,
            functions=(sys.modules[__name__],),
        )

    # -- encoding ---------------------------------------------------------------------------

    def _build_encoder(self) -> np.ndarray:
        """encoder[j, i, k] = p_i(a_j) per unit block g_i^(k) = z_i(a_j) * (Z_i^-T w_j)[k].

        q_i(a_j) = w_j . b_i with w_j = (a_j^(ell-1), ..., a_j, 1) and b_i = Z_i^-1 g_i, so the
        weight of g_i on worker j is z_i(a_j) Z_i^-T w_j: one triangular solve per chunk with all
        workers as right-hand sides. z_i(a_j) is evaluated as the product of its factors, which
        makes it exactly 0 for the workers that do not hold chunk i.
        """
        m, ell, a = self.m, self.ell, self.points
        w = np.vander(a, ell)  # (m, ell): a_j^(ell-1), ..., 1
        encoder = np.zeros((m, m, ell))
        for i in range(m):
            roots = a[~self.holds[:, i]]  # the m - load non-holders
            z_at = np.prod(a[:, None] - roots[None, :], axis=1)  # z_i(a_j), exact 0 off support
            coeffs = np.poly(roots) if roots.size else np.ones(1)  # descending, monic
            top = np.zeros(ell)
            top[: min(ell, coeffs.size)] = coeffs[:ell]
            toeplitz = scipy.linalg.toeplitz(top, np.zeros(ell))  # unit lower triangular
            weights = scipy.linalg.solve_triangular(
                toeplitz.T, w.T, lower=False, unit_diagonal=True
            )  # (ell, m)
            encoder[:, i, :] = z_at[:, None] * weights.T
        return encoder

    def encode(self, blocks: np.ndarray) -> np.ndarray:
        """All workers' uploads (m, d/ell) from the chunk blocks (m, ell, d/ell)."""
        return np.einsum("jik,ikb->jb", self.encoder, blocks)

    def coefficients(self, blocks: np.ndarray) -> np.ndarray:
        """Coefficients of f = sum_i z_i q_i, ascending powers: (n, d/ell), n = m - s.

        Computed directly (polynomial products), independent of ``encoder``; f's top ell
        coefficients, F[n-1-k], are the block sums. Used to check the construction.
        """
        m, ell, a = self.m, self.ell, self.points
        out = np.zeros((self.needed, blocks.shape[2]))
        for i in range(m):
            coeffs = np.poly(a[~self.holds[:, i]]) if self.load < m else np.ones(1)
            top = np.zeros(ell)
            top[: min(ell, coeffs.size)] = coeffs[:ell]
            toeplitz = scipy.linalg.toeplitz(top, np.zeros(ell))
            q = scipy.linalg.solve_triangular(toeplitz, blocks[i], lower=True, unit_diagonal=True)
            for b in range(blocks.shape[2]):
                out[:, b] += np.convolve(coeffs, q[:, b])[::-1]
        return out

    # -- exact decoding ---------------------------------------------------------------------

    def _check_workers(self, workers: Sequence[int], at_least: int) -> np.ndarray:
        return checked_workers(workers, self.m, at_least)

    def vandermonde(self, workers: Sequence[int]) -> np.ndarray:
        """The interpolation matrix of the received workers: (len, n), ascending powers."""
        rows = self._check_workers(workers, 0)
        return vandermonde(self.points[rows], self.needed)

    def decoder(self, workers: Sequence[int]) -> np.ndarray:
        """D (ell, len(workers)): block k of g = sum_j D[k, j] y_{workers[j]}.

        D is the rows n-1-k of the (pseudo-)inverse of the Vandermonde matrix V of the received
        points. With exactly n = m - s workers, D^T = V^-T E (E picks the top ell coefficients)
        is one LU solve, no explicit inverse. With more than n workers ALL of them are used, in
        the least-squares sense: D = E^T V^+ through a QR factorization of V (the uploads are
        consistent in exact arithmetic, so this is still exact; it is not the same numbers as
        using only the first n).
        """
        rows = self._check_workers(workers, self.needed)
        v = vandermonde(self.points[rows], self.needed)
        select = np.zeros((self.needed, self.ell))
        select[self.needed - 1 - np.arange(self.ell), np.arange(self.ell)] = 1.0
        if rows.size == self.needed:
            return np.linalg.solve(v.T, select).T
        q, r = np.linalg.qr(v)  # reduced: q (len, n), r (n, n)
        return (q @ scipy.linalg.solve_triangular(r.T, select, lower=True)).T

    def decode(self, workers: Sequence[int], uploads: np.ndarray) -> np.ndarray:
        """The block sums (ell, d/ell) from uploads (len(workers), d/ell), row j from worker
        workers[j].

        The PS interpolation itself: solve V F = Y for f's coefficients (LU with partial pivoting
        for exactly n workers, least squares over all of them for more) and read F[n-1-k].
        Mathematically ``decoder(workers) @ uploads``; numerically the same order of error
        (load = 4, ell = 2: this route was about 2x / 5x worse on average at m = 24 / 32).
        """
        rows = self._check_workers(workers, self.needed)
        uploads = np.asarray(uploads, dtype=float)
        if uploads.shape[0] != rows.size:
            raise ValueError(f"{rows.size} workers but {uploads.shape[0]} uploads")
        v = vandermonde(self.points[rows], self.needed)
        if rows.size == self.needed:
            coeffs = np.linalg.solve(v, uploads)
        else:
            coeffs = np.linalg.lstsq(v, uploads, rcond=None)[0]
        return coeffs[self.needed - 1 - np.arange(self.ell)]

    def decode_cond(self, workers: Sequence[int]) -> float:
        """2-norm condition number of the system the PS solves: the monomial Vandermonde matrix
        (len(workers) x n) of the received points (rectangular for more than n workers), rows
        in worker order: a function of the set, as original_gc reports it."""
        rows = np.sort(self._check_workers(workers, self.needed))
        return cond(vandermonde(self.points[rows], self.needed))

    # -- approximate decoding ---------------------------------------------------------------

    def target(self) -> np.ndarray:
        """T (ell, m * ell): block k of g = T @ (all blocks flattened over (chunk, block))."""
        return block_sum_target(self.m, self.ell)

    def least_squares_decoder(self, workers: Sequence[int]) -> tuple[np.ndarray, float]:
        """Best combination of any set of uploads, and its coefficient residual.

        Minimizes ||D E_S - T||_F over D (ell x |S|), E_S the encoder rows of the received
        workers flattened to (|S|, m * ell) over (chunk, block) and T the target map
        (``target``). Returns (D, residual) with residual = ||D E_S - T||_F^2 (squared Frobenius
        norm: m * ell with no uploads, 0 up to rounding once |S| >= m - s). Solved with
        ``numpy.linalg.lstsq`` (SVD, default cutoff for tiny singular values). Estimate of the
        block sums: D @ uploads.
        """
        rows = self._check_workers(workers, 0)
        return least_squares_combination(self.encoder[rows])
