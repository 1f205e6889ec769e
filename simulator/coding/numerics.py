"""Small pure functions for the numbers: block splitting, errors, Tandon's cyclic code."""

from __future__ import annotations

import math

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
    straggler sets, the same sets for every candidate.
    """
    m, s = workers, stragglers
    codes = [tandon_cyclic_code(m, s, rng) for _ in range(candidates)]
    if s == 0 or candidates == 1:
        return codes[0]
    subsets = np.sort(np.argsort(rng.random((probes, m)), axis=1)[:, : m - s], axis=1)
    scores = []
    for code in codes:
        singular = np.linalg.svd(code[subsets], compute_uv=False)
        scores.append(np.max(singular[:, 0] / singular[:, -1]))
    return codes[int(np.argmin(scores))]


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
