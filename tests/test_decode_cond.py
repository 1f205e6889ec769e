"""decode_cond: what each protocol reports, and that the caches behind it change no number.

original_gc's condition number of an exact decode is a function of the set of uploaders (the
rows are taken in worker order); partial_gc's is the worst over the plan's C[:, R_i]. Both are
kept per key while the keys are few; a cached value must be the value computed afresh.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.coding.numerics import cond
from simulator.coding.registry import build
from simulator.config import from_dict
from simulator.engine.fast import run_trials_fast
from simulator.runner import run_trials


def protocol(scheme: dict, workers: int = 12):
    exp = from_dict(
        {
            "trials": 1,
            "cluster": {"workers": workers, "compute": {"dist": "exponential", "rate": 1.0}},
            "data": {"dim": 8},
            "schemes": [scheme],
        }
    )
    (built,) = build(exp)
    return built


RANDOM = protocol({"protocol": "original_gc", "load": 4, "ell": 1})
POLYNOMIAL = protocol({"protocol": "original_gc", "load": 4, "ell": 2})
PARTIAL = protocol({"protocol": "partial_gc", "load": 4, "ell": 2})


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([RANDOM, POLYNOMIAL]), st.randoms(use_true_random=False))
def test_original_condition_is_a_function_of_the_set(p, random):
    workers = random.sample(range(p.workers), p.needed)  # in some arrival order
    in_order = sorted(workers)
    if p.polynomial is None:
        expected = cond(p.code[in_order])
    else:
        expected = cond(np.vander(p.polynomial.points[in_order], p.needed, increasing=True))
    shuffled = list(workers)
    random.shuffle(shuffled)
    assert p.exact_condition(workers) == expected  # computed, or kept from an earlier draw
    assert p.exact_condition(shuffled) == expected
    assert p.decoder(shuffled, weights=False)[1] == expected
    stack = p.exact_conditions(np.array([in_order, in_order]))
    assert stack.tolist() == [expected, expected]


def test_original_caches_only_while_the_sets_are_few():
    assert RANDOM.cached_sets == 220  # C(12, 3)
    many = protocol({"protocol": "original_gc", "load": 11, "ell": 1, "candidates": 1}, 20)
    assert many.cached_sets == 0  # C(20, 10) = 184,756 sets: not kept
    big = protocol({"protocol": "original_gc", "load": 10, "ell": 1, "candidates": 1}, 200)
    assert big.cached_sets == 0
    workers = list(range(3, 194))
    assert big.exact_condition(workers) == cond(big.code[workers])
    assert big.set_conds == {}


def test_original_batched_and_single_agree_without_the_cache():
    p = protocol({"protocol": "original_gc", "load": 4, "ell": 1})
    p.cached_sets = 0
    rng = np.random.default_rng(3)
    sets = np.sort(np.array([rng.permutation(12)[: p.needed] for _ in range(40)]), axis=1)
    batched = p.exact_conditions(sets)
    assert p.set_conds == {}
    assert batched.tolist() == [cond(p.code[row]) for row in sets]


def fresh_worst(p, holders) -> float:
    """partial_gc's decode_cond, matrix by matrix: the largest sigma_1 / sigma_rank."""
    worst = 1.0
    for rows in holders:
        if rows:
            singular = np.linalg.svd(p.decoder[:, rows], compute_uv=False)
            with np.errstate(invalid="ignore", divide="ignore"):
                worst = max(worst, singular[0] / singular[min(p.spec.ell, len(rows)) - 1])
    return worst


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_partial_worst_condition_is_the_largest_ratio(random):
    holders = []
    for chunk in range(PARTIAL.chunks):
        owners = [w for w, order in enumerate(PARTIAL.orders) if chunk in order]
        random.shuffle(owners)
        holders.append(owners[: random.randint(0, len(owners))])
    expected = fresh_worst(PARTIAL, holders)
    assert PARTIAL.worst_condition(holders) == expected
    assert PARTIAL.worst_condition(holders) == expected  # now from the cache
    assert expected >= 1.0


def test_partial_caches_only_while_the_holder_lists_are_few():
    # 12 chunks, 4 holders each: ordered lists of 2, 3 or 4 holders, 12 + 24 + 24 per chunk
    assert PARTIAL.cached_conds == 12 * 60
    # approximate plans may hold lists shorter than ell: those count too (4 + 12 + 24 + 24)
    deadline = {"mode": "approximate", "deadline": 3.0}
    assert protocol({"protocol": "partial_gc", "load": 4, "ell": 3, **deadline}).cached_conds == (
        12 * 64
    )
    big = protocol({"protocol": "partial_gc", "load": 10, "ell": 2}, 200)
    assert big.cached_conds == 0
    holders = [[c, (c + 1) % 200, (c + 2) % 200] for c in range(200)]
    assert big.worst_condition(holders) == fresh_worst(big, holders)
    assert big.conds == {}


def batched_worst(p, holders) -> float:
    """The batched form ``worst_condition`` replaced: per holder-set size, np.max of the ratios
    (NaN if any is), then the Python max (which ignores a NaN after a number)."""
    worst = 1.0
    by_size: dict[int, list[list[int]]] = {}
    for rows in holders:
        if rows:
            by_size.setdefault(len(rows), []).append(rows)
    for size, lists in by_size.items():
        stack = np.moveaxis(p.decoder[:, np.array(lists)], 1, 0)
        singular = np.linalg.svd(stack, compute_uv=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = singular[:, 0] / singular[:, min(p.spec.ell, size) - 1]
        worst = max(worst, float(np.max(ratios)))
    return worst


def test_partial_nan_ratio_voids_its_size_group_as_before():
    p = protocol({"protocol": "partial_gc", "load": 4, "ell": 2})
    p.decoder[:, [0, 1]] = 0.0  # C[:, (0, 1)] is all zero: its ratio is 0 / 0
    rng = np.random.default_rng(7)
    voided = 0
    for _ in range(300):
        holders = []
        for chunk in range(p.chunks):
            owners = [w for w, order in enumerate(p.orders) if chunk in order]
            holders.append(list(rng.permutation(owners)[: rng.integers(0, len(owners) + 1)]))
        if rng.random() < 0.5:
            holders[0] = [0, 1]
        expected = batched_worst(p, holders)
        voided += expected != fresh_worst(p, holders)
        assert p.worst_condition(holders) == expected
    assert voided > 0  # the rule mattered in some draws


def test_engines_report_the_same_bits():
    """fast asks original_gc per distinct sorted set and partial_gc per distinct matrix; the
    event engine asks per trial: every condition number is the same float."""
    exp = from_dict(
        {
            "seed": 11,
            "trials": 300,
            "cluster": {
                "workers": 16,
                "compute": {"dist": "pareto", "scale": 1.0, "alpha": 2.0},
                "failures": {"prob": 0.1},
            },
            "data": {"dim": 8, "gradients": "none"},
            "output": {"events_trials": 0},
            "schemes": [
                {"protocol": "original_gc", "load": 4, "ell": 1},
                {"protocol": "original_gc", "load": 4, "ell": 2},
                {"protocol": "partial_gc", "load": 4, "ell": 2},
                {"protocol": "partial_gc", "load": 4, "ell": 3},
            ],
        }
    )
    des, _ = run_trials(exp, 0, exp.trials)
    fast = run_trials_fast(exp, 0, exp.trials, build(exp))
    assert des.decode_cond.notna().sum() > 900
    np.testing.assert_array_equal(fast.decode_cond.to_numpy(), des.decode_cond.to_numpy())
