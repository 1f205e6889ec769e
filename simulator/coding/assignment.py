"""Assignments: which chunks each worker holds, as one list of chunk ids per worker.

A list's order is the worker's processing order (see ``ordering.py`` for reorderings); the
functions here return the natural order of each construction.
"""

from __future__ import annotations

import numpy as np

Assignment = list[list[int]]


def cyclic(workers: int, load: int) -> Assignment:
    """Worker j holds chunks j, j+1, ..., j+load-1 (mod m), in that order (N = m)."""
    if not 1 <= load <= workers:
        raise ValueError(f"cyclic assignment needs 1 <= load <= workers, got load={load}")
    return [[(j + k) % workers for k in range(load)] for j in range(workers)]


def contiguous(workers: int, chunks: int) -> Assignment:
    """Chunks split into ``workers`` contiguous, near-equal blocks, no redundancy (uncoded)."""
    if chunks < workers:
        raise ValueError(f"contiguous split needs chunks >= workers, got {chunks} < {workers}")
    return [block.tolist() for block in np.array_split(np.arange(chunks), workers)]


def holders(assignment: Assignment, chunks: int) -> list[list[int]]:
    """For each chunk, the workers holding it (ascending)."""
    out: list[list[int]] = [[] for _ in range(chunks)]
    for worker, held in enumerate(assignment):
        for chunk in held:
            out[chunk].append(worker)
    return out


def incidence(assignment: Assignment, chunks: int) -> np.ndarray:
    """The 0/1 matrix (workers x chunks) of the assignment."""
    matrix = np.zeros((len(assignment), chunks), dtype=np.int8)
    for worker, held in enumerate(assignment):
        matrix[worker, held] = 1
    return matrix
