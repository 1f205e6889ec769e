"""Small pure functions for the numbers: block splitting, errors, Tandon's cyclic code."""

from __future__ import annotations

import math
import sys

import numpy as np


def block_length(dim: int, ell: int) -> int:
    """Length of one of the ell blocks of a gradient (dim padded up to a multiple of ell)."""
    return math.ceil(dim / ell)


def split_blocks(grads: np.ndarray, ell: int) -> np.ndarray:
    """(chunks, dim) -> (chunks, ell, dim/ell), zero-padding dim up to a multiple of ell."""
    chunks, dim = grads.shape
    b = block_length(dim, ell)
    if b * ell != dim:
        grads = np.concatenate([grads, np.zeros((chunks, b * ell - dim))], axis=1)
    return grads.reshape(chunks, ell, b)


def join_blocks(blocks: np.ndarray, dim: int) -> np.ndarray:
    """(ell, dim/ell) -> (dim,), dropping the padding."""
    return blocks.reshape(-1)[:dim]


def rel_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """||g_hat - g||^2 / ||g||^2."""
    diff = estimate - truth
    return float(diff @ diff) / float(truth @ truth)


def cond(matrix: np.ndarray) -> float:
    """2-norm condition number (ratio of extreme singular values) of any rectangular matrix."""
    singular = np.linalg.svd(matrix, compute_uv=False)
    return float(singular[0] / singular[-1]) if singular[-1] > 0 else math.inf


def tandon_cyclic_code(workers: int, stragglers: int, rng: np.random.Generator) -> np.ndarray:
    """Tandon et al.'s random cyclic code B (workers x chunks, N = m).

    Row j is supported on chunks j..j+s (mod m) and lies in the null space of a random s x m
    matrix H with H 1 = 0. That null space has dimension m - s and contains the all-ones vector;
    generic rows make any m - s of them a basis of it, so any m - s uploads determine the sum.
    """
    m, s = workers, stragglers
    code = np.zeros((m, m))
    if s == 0:
        np.fill_diagonal(code, 1.0)
        return code
    h = rng.standard_normal((s, m))
    h[:, -1] = -h[:, :-1].sum(axis=1)
    for j in range(m):
        others = [(j + k) % m for k in range(1, s + 1)]
        code[j, j] = 1.0
        code[j, others] = np.linalg.solve(h[:, others], -h[:, j])
    return code


def best_tandon_code(
    workers: int, stragglers: int, rng: np.random.Generator, candidates: int, probes: int = 256
) -> np.ndarray:
    """The best conditioned of ``candidates`` random cyclic codes.

    A single random draw can be badly conditioned on some straggler patterns (worst sampled
    condition numbers range over three orders of magnitude between draws at m = 20, s = 3), which
    would make the baseline look worse than a careful implementation of it. Each candidate is
    scored by the worst condition number of its (m - s)-row submatrices over ``probes`` random
    straggler sets, the same sets for every candidate; the first of the lowest scores wins.

    The choice is that of scoring every candidate on every probe (``tandon_scores``), made with
    less work: candidates are scored in the order of a cheap prediction of their scores
    (``_predicted_hardness``), each on its likely hardest probes first, and a candidate is
    dropped as soon as one of its probes is at least as bad as the best score so far (its score
    could then only tie or lose; ties go to the earlier candidate, as with ``np.argmin``). A
    probe's number is the same SVD of the same matrix whichever probes it is batched with, so
    the same bits. At m = 200, s = 9: about 300 SVDs of 191 x 200 instead of 4,096, plus one
    full SVD per candidate (``tests/test_plan_cache.py`` checks the choice on many seeds and
    sizes, ties included).
    """
    m, s = workers, stragglers
    codes = [tandon_cyclic_code(m, s, rng) for _ in range(candidates)]
    if s == 0 or candidates == 1:
        return codes[0]
    subsets = np.sort(np.argsort(rng.random((probes, m)), axis=1)[:, : m - s], axis=1)
    hardness = _predicted_hardness(codes, subsets)
    if hardness is None:
        return codes[int(np.argmin(tandon_scores(codes, subsets)))]
    best, best_score = -1, math.inf
    for index in np.argsort(hardness.max(axis=1), kind="stable").tolist():
        order = np.argsort(-hardness[index], kind="stable")  # likely hardest probes first
        worst, lo, step = -math.inf, 0, 2
        while lo < probes and not _loses(worst, index, best_score, best):
            part = _conditions(codes[index][subsets[order[lo : lo + step]]])
            if np.isnan(part).any():  # np.max and argmin propagate NaN: score everything
                return codes[int(np.argmin(tandon_scores(codes, subsets)))]
            worst = max(worst, float(part.max()))
            lo, step = lo + step, step * 2
        if not _loses(worst, index, best_score, best):
            best, best_score = index, worst
    return codes[best]


def _loses(worst: float, index: int, best_score: float, best: int) -> bool:
    """Whether a candidate whose score is at least ``worst`` cannot beat the best so far: ties go
    to the lower index, as ``np.argmin`` gives them."""
    return worst > best_score or (worst == best_score and index > best)


def _predicted_hardness(codes: list[np.ndarray], subsets: np.ndarray) -> np.ndarray | None:
    """A cheap predictor of each probe's condition number, (candidates, probes), used only to
    choose the order probes are scored in (never a score), or None if it is not defined.

    B (m x m) has rank m - s; with B = U S V^T and U_perp its s left null vectors, a probe
    keeping rows R and dropping rows D has cond(B[R]) between 1 / (c mu) and c / mu, where
    mu = sigma_min(U_perp[D]) (an s x s matrix: the CS decomposition of [U U_perp]) and c the
    condition number of B on its row space. The bounds are loose, but 1 / mu ranks the probes
    much as the exact numbers do (rank correlation about 0.85 at m = 50 and 200).
    """
    m = codes[0].shape[0]
    keep = subsets.shape[1]
    dropped = m - keep
    if dropped > keep:
        return None
    mask = np.ones((len(subsets), m), dtype=bool)
    np.put_along_axis(mask, subsets, False, axis=1)
    gone = np.nonzero(mask)[1].reshape(len(subsets), dropped)
    out = np.empty((len(codes), len(subsets)))
    for index, code in enumerate(codes):
        left = np.linalg.svd(code)[0][:, keep:]  # the left null space, s columns
        mu = np.linalg.svd(left[gone], compute_uv=False)[:, -1]
        with np.errstate(divide="ignore"):
            out[index] = 1.0 / mu
    return None if np.isnan(out).any() else out


def _conditions(stack: np.ndarray) -> np.ndarray:
    """Ratio of the extreme singular values of each matrix of a stack (inf if singular)."""
    singular = np.linalg.svd(stack, compute_uv=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        return singular[:, 0] / singular[:, -1]


def tandon_scores(codes: list[np.ndarray], subsets: np.ndarray) -> list[float]:
    """Every candidate's score, the worst ratio over all the probes (the reference the early
    rejection in ``best_tandon_code`` must agree with)."""
    return [float(np.max(_conditions(code[subsets]))) for code in codes]


def planned_tandon_code(
    workers: int, stragglers: int, rng: np.random.Generator, candidates: int
) -> np.ndarray:
    """``best_tandon_code`` through the plan cache (``simulator.plan_cache``): keyed by the sizes
    and the state of ``rng``, so the same code comes back without scoring again."""
    from .. import plan_cache  # the cache imports nothing of the coding package

    state = rng.bit_generator.state
    return plan_cache.cached_array(
        "tandon_code",
        "1",
        {"workers": workers, "stragglers": stragglers, "candidates": candidates, "rng": state},
        lambda: best_tandon_code(workers, stragglers, rng, candidates),
        functions=(sys.modules[__name__],),  # any edit of this module invalidates
    )


def null_space_code(
    assignment: list[list[int]], chunks: int, stragglers: int, rng: np.random.Generator
) -> np.ndarray:
    """Tandon's construction on any assignment: B (workers x chunks), row j supported on worker
    j's chunks and in the null space of a random s x N matrix H with H 1 = 0.

    With load s + 1 each row is determined up to scale (a 1-dimensional null space). The rows
    then lie in an (N - s)-dimensional space containing the all-ones vector; on the cyclic
    assignment any m - s of them span it, on other assignments usually but not always, so the
    decoder checks. Rows are scaled to unit largest entry.
    """
    h = rng.standard_normal((stragglers, chunks))
    if stragglers:
        h[:, -1] = -h[:, :-1].sum(axis=1)
    code = np.zeros((len(assignment), chunks))
    for worker, held in enumerate(assignment):
        if len(held) != stragglers + 1:
            raise ValueError(
                f"worker {worker} holds {len(held)} chunks; this code needs load = s + 1"
            )
        if stragglers == 0:
            code[worker, held] = 1.0
            continue
        _, _, vt = np.linalg.svd(h[:, held])
        row = vt[-1]
        code[worker, held] = row / row[np.argmax(np.abs(row))]
    return code


def sum_weights(code_rows: np.ndarray) -> np.ndarray:
    """Weights a with a @ code_rows = 1 (least squares).

    With coded uploads y = code_rows @ G, ``a @ y`` is the sum of the chunk gradients whenever
    the all-ones vector lies in the row span.
    """
    weights, *_ = np.linalg.lstsq(code_rows.T, np.ones(code_rows.shape[1]), rcond=None)
    return weights


def block_sum_target(chunks: int, ell: int) -> np.ndarray:
    """T (ell x chunks*ell): the linear map from all chunk blocks, flattened over (chunk, block),
    to the ell block sums of the gradient."""
    return np.tile(np.eye(ell), chunks)


def least_squares_combination(encoder_rows: np.ndarray) -> tuple[np.ndarray, float]:
    """The best linear combination D (ell x rows) of the received uploads, and its residual.

    ``encoder_rows`` (rows, chunks, ell) says how each received upload combines chunk blocks.
    D minimizes ||D E - T||_F (E the rows flattened to (rows, chunks*ell), T the block-sum map);
    the residual is ||D E - T||_F^2: zero when the uploads determine the gradient, chunks*ell with
    no upload at all.
    """
    rows, chunks, ell = encoder_rows.shape
    target = block_sum_target(chunks, ell)
    if rows == 0:
        return np.zeros((ell, 0)), float(np.sum(target**2))
    flat = encoder_rows.reshape(rows, chunks * ell)
    combination = np.linalg.lstsq(flat.T, target.T, rcond=None)[0].T
    miss = combination @ flat - target
    return combination, float(np.sum(miss**2))
