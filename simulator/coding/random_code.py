"""A random original-class gradient code for any ell: the polynomial code's random counterpart.

Ye & Abbe's communication-efficient framework, with the polynomial structure replaced by random
real entries. Cyclic assignment, N = m, communication split ell, s = load - ell stragglers
tolerated, n = m - s uploads decode. The polynomial code writes the upload of worker j as
f(a_j) = V_j F, V the m x n Vandermonde matrix of the points and F the coefficients of
f = sum_i p_i, where p_i vanishes at the m - load workers not holding chunk i and its top ell
coefficients are the blocks of g_i. Here:

- G (m x n) is Gaussian instead of Vandermonde (any n of its rows are invertible with
  probability 1, and far better conditioned than Vandermonde rows: cond grows like n, not
  exponentially);
- U (ell x n) is Gaussian instead of "the top ell coefficients";
- chunk i's coefficient matrix X_i (n x ell) solves the square system
  [G_{not holding i}; U] X_i = [0; I]: m - load rows that vanish plus ell that fix the blocks;
- the encoder is E[j, i, k] = (G X_i)[j, k]: zero unless worker j holds chunk i, so every worker
  needs only its own chunks, and worker j uploads y_j = G_j F with F = sum_i X_i g_i (d/ell
  floats, as the polynomial code's);
- from any n uploads S the PS solves G_S F = Y_S and reads the block sums as U F = sum_i g_i:
  D = U G_S^-1 (ell x n). Fewer uploads (approximate mode) go through the same least-squares
  combination of encoder rows as every original_gc construction.

A draw is verified numerically and redrawn if it fails: every system [G_{not holding i}; U] and
the G_S of ``PROBES`` random straggler sets must be invertible with a condition number below
``MAX_COND``; of the ``candidates`` draws that pass, the one with the best worst probed
condition number is kept (as for Tandon's code, a careful baseline).

The interface mirrors ``polynomial.PolynomialCode`` (``encoder``, ``decoder``, ``decode``,
``decode_cond``, ``least_squares_decoder``, ``needed``) so original_gc runs both through one path;
``system(sets)`` gives the matrices whose condition numbers ``decode_cond`` reports (G_S here,
Vandermonde matrices there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .numerics import block_sum_target, cond, least_squares_combination
from .polynomial import checked_workers, cyclic_holds

#: Straggler sets each candidate draw is scored on.
PROBES = 256
#: A draw whose systems are worse conditioned than this is redrawn.
MAX_COND = 1e10
#: Draws tried per candidate before giving up (failures have probability 0 in exact arithmetic).
ATTEMPTS = 8


class RandomCode:
    """The random code for m workers = chunks, cyclic assignment, given load and ell.

    Attributes: ``m``, ``load``, ``ell``, ``stragglers`` (s), ``needed`` (n = m - s),
    ``holds`` (m x m bool, worker x chunk), ``generator`` (G, m x n), ``reader`` (U, ell x n),
    ``encoder`` (m, m, ell) and ``worst_cond`` (the kept draw's worst probed cond(G_S)).
    """

    def __init__(self, m: int, load: int, ell: int, rng: np.random.Generator, candidates: int = 16):
        if not 1 <= ell <= load <= m:
            raise ValueError(f"need 1 <= ell <= load <= m, got m={m}, load={load}, ell={ell}")
        if candidates < 1:
            raise ValueError(f"need at least one candidate, got {candidates}")
        self.m, self.load, self.ell = m, load, ell
        self.stragglers = load - ell
        self.needed = m - self.stragglers
        self.holds = cyclic_holds(m, load)
        probes = np.sort(np.argsort(rng.random((PROBES, m)), axis=1)[:, : self.needed], axis=1)
        best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
        kept, tries = 0, 0
        while kept < candidates:
            tries += 1
            if tries > ATTEMPTS * candidates:
                raise RuntimeError(
                    f"no well-conditioned random code in {tries - 1} draws "
                    f"(m={m}, load={load}, ell={ell})"
                )
            drawn = self._draw(rng, probes)
            if drawn is None:
                continue
            kept += 1
            if best is None or drawn[0] < best[0]:
                best = drawn
        assert best is not None
        self.worst_cond, self.generator, self.reader, self.encoder = best

    def _draw(
        self, rng: np.random.Generator, probes: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray] | None:
        """One draw (score, G, U, encoder), or None if it fails the numerical checks."""
        m, n, ell, load = self.m, self.needed, self.ell, self.load
        g = rng.standard_normal((m, n))
        u = rng.standard_normal((ell, n))
        # Chunk i's system: the rows of its m - load non-holders, then U.
        right = np.zeros((n, ell))
        right[m - load :] = np.eye(ell)
        systems = np.stack([np.vstack([g[~self.holds[:, i]], u]) for i in range(m)])
        singular = np.linalg.svd(systems, compute_uv=False)
        if not (singular[:, -1] > 0).all() or (singular[:, 0] / singular[:, -1]).max() > MAX_COND:
            return None
        coefficients = np.linalg.solve(systems, np.broadcast_to(right, (m, n, ell)))  # X_i
        encoder = np.einsum("jn,ink->jik", g, coefficients)
        encoder[~self.holds] = 0.0  # exactly zero off the support (it is rounding there)
        singular = np.linalg.svd(g[probes], compute_uv=False)
        if not (singular[:, -1] > 0).all():
            return None
        score = float((singular[:, 0] / singular[:, -1]).max())
        if score > MAX_COND:
            return None
        return score, g, u, encoder

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, blocks: np.ndarray) -> np.ndarray:
        """All workers' uploads (m, d/ell) from the chunk blocks (m, ell, d/ell)."""
        return np.einsum("jik,ikb->jb", self.encoder, blocks)

    # -- exact decoding ---------------------------------------------------------------------

    def _check_workers(self, workers: Sequence[int], at_least: int) -> np.ndarray:
        return checked_workers(workers, self.m, at_least)

    def system(self, sets: np.ndarray) -> np.ndarray:
        """G_S for one set of workers or a stack of them ((..., k) -> (..., k, n)): the matrix
        an exact decode solves, whose condition number is ``decode_cond``."""
        return self.generator[np.asarray(sets, dtype=int)]

    def decoder(self, workers: Sequence[int]) -> np.ndarray:
        """D (ell, len(workers)): block k of g = sum_j D[k, j] y_{workers[j]}.

        D = U G_S^-1 for exactly n workers (one LU solve); with more, all of them are used in
        the least-squares sense, D = U G_S^+ (QR), still exact since the uploads are consistent.
        """
        rows = self._check_workers(workers, self.needed)
        g = self.generator[rows]
        if rows.size == self.needed:
            return np.linalg.solve(g.T, self.reader.T).T
        q, r = np.linalg.qr(g)
        return (q @ np.linalg.solve(r.T, self.reader.T)).T

    def decode(self, workers: Sequence[int], uploads: np.ndarray) -> np.ndarray:
        """The block sums (ell, d/ell) from uploads (len(workers), d/ell): solve G_S F = Y_S
        (least squares for more than n workers), then U F."""
        rows = self._check_workers(workers, self.needed)
        uploads = np.asarray(uploads, dtype=float)
        if uploads.shape[0] != rows.size:
            raise ValueError(f"{rows.size} workers but {uploads.shape[0]} uploads")
        g = self.generator[rows]
        if rows.size == self.needed:
            coeffs = np.linalg.solve(g, uploads)
        else:
            coeffs = np.linalg.lstsq(g, uploads, rcond=None)[0]
        return self.reader @ coeffs

    def decode_cond(self, workers: Sequence[int]) -> float:
        """2-norm condition number of G_S, rows in worker order (a function of the set)."""
        rows = np.sort(self._check_workers(workers, self.needed))
        return cond(self.generator[rows])

    # -- approximate decoding ---------------------------------------------------------------

    def target(self) -> np.ndarray:
        """T (ell, m * ell): block k of g = T @ (all blocks flattened over (chunk, block))."""
        return block_sum_target(self.m, self.ell)

    def least_squares_decoder(self, workers: Sequence[int]) -> tuple[np.ndarray, float]:
        """Best combination D of any set of uploads and its residual ||D E_S - T||_F^2, as
        ``PolynomialCode.least_squares_decoder``."""
        rows = self._check_workers(workers, 0)
        return least_squares_combination(self.encoder[rows])
