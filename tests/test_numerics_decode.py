"""The batched decode routes give the bits of the per-upload routes they replace: original_gc's
``payloads`` (every upload as a few einsums) and partial_gc's ``planned_estimate`` (the plan's
uploads and their sum in arrival order)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import config as cfg
from simulator.coding.numerics import split_blocks
from simulator.coding.partial_gc import coefficients
from simulator.coding.registry import build


def _experiment(workers: int, dim: int, schemes: list[dict]) -> cfg.Experiment:
    return cfg.from_dict(
        {
            "name": "decode-routes",
            "seed": 3,
            "trials": 2,
            "cluster": {
                "workers": workers,
                "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0},
                "failures": {"prob": 0.0},
            },
            "data": {"dim": dim, "gradients": "gaussian"},
            "output": {"events_trials": 0},
            "schemes": schemes,
        }
    )


@pytest.mark.parametrize("dim", [1, 2, 3, 7, 64, 301])
@pytest.mark.parametrize(
    "scheme",
    [
        {"protocol": "original_gc", "load": 3, "ell": 1},
        {"protocol": "original_gc", "load": 4, "ell": 2},
        {"protocol": "original_gc", "load": 4, "ell": 3, "construction": "polynomial"},
        {"protocol": "original_gc", "load": 3, "ell": 1, "construction": "generic"},
    ],
)
def test_original_gc_uploads_together_are_the_uploads_one_by_one(scheme: dict, dim: int):
    (p,) = build(_experiment(11, dim, [scheme]))
    rng = np.random.default_rng(dim)
    blocks = split_blocks(rng.standard_normal((p.chunks, dim)), p.spec.ell)
    for count in (1, 5, 11):
        workers = rng.permutation(p.workers)[:count].tolist()
        one_by_one = np.array([p.payload(w, blocks) for w in workers])
        together = p.payloads(workers, blocks)
        assert together.shape == one_by_one.shape
        assert together.tobytes() == one_by_one.tobytes()
        combination = rng.standard_normal((p.spec.ell, count))
        assert (
            p.estimate(combination, together).tobytes()
            == p.estimate(combination, list(one_by_one)).tobytes()
        )


def test_original_gc_uploads_in_small_groups(monkeypatch: pytest.MonkeyPatch):
    """Groups of a few workers (a large cluster's gather bound) give the same bits."""
    import simulator.coding.original_gc as module

    (p,) = build(_experiment(13, 50, [{"protocol": "original_gc", "load": 4, "ell": 1}]))
    blocks = split_blocks(np.random.default_rng(1).standard_normal((p.chunks, 50)), 1)
    workers = list(range(13))
    whole = p.payloads(workers, blocks)
    monkeypatch.setattr(module, "_GATHER_FLOATS", 4 * 50 * 3)  # three workers per group
    assert p.payloads(workers, blocks).tobytes() == whole.tobytes()


@pytest.mark.parametrize("dim", [1, 2, 5, 120])
@pytest.mark.parametrize("ell, load", [(1, 3), (2, 4), (3, 4)])
def test_partial_gc_planned_estimate_is_the_per_upload_estimate(ell: int, load: int, dim: int):
    scheme = {"protocol": "partial_gc", "load": load, "ell": ell}
    (p,) = build(_experiment(10, dim, [scheme]))
    rng = np.random.default_rng(ell * 100 + dim)
    holders = [[] for _ in range(p.chunks)]
    for worker, order in enumerate(p.orders):
        for chunk in order:
            holders[chunk].append(worker)
    for case in range(12):
        # What the PS knew: for each chunk some of its holders, in the order it learned them
        # (approximate plans may leave a chunk with fewer than ell, or none).
        known = []
        for rows in holders:
            take = int(rng.integers(0 if case % 3 == 0 else ell, len(rows) + 1))
            known.append([int(w) for w in rng.permutation(rows)[:take]])
        coefs = coefficients(p.decoder, known)
        blocks = split_blocks(rng.standard_normal((p.chunks, dim)), ell)
        down_at = rng.integers(0, 3, p.workers).astype(float)  # ties on purpose
        up_at = down_at + rng.integers(0, 2, p.workers)
        expected = p.per_upload_estimate(p.assignments(known), coefs, blocks, up_at, down_at)
        got = p.planned_estimate(known, coefs, blocks, up_at, down_at)
        assert got.tobytes() == expected.tobytes(), case


def test_partial_gc_planned_estimate_with_nothing_known():
    (p,) = build(_experiment(6, 8, [{"protocol": "partial_gc", "load": 2, "ell": 1}]))
    known: list[list[int]] = [[] for _ in range(p.chunks)]
    blocks = split_blocks(np.ones((p.chunks, 8)), 1)
    zeros = np.zeros(p.workers)
    got = p.planned_estimate(known, coefficients(p.decoder, known), blocks, zeros, zeros)
    assert got.tobytes() == np.zeros(8).tobytes()
