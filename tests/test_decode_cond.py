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
    big = protocol({"protocol": "partial_gc", "load": 10, "ell": 2}, 200)
    assert big.cached_conds == 0
    holders = [[c, (c + 1) % 200, (c + 2) % 200] for c in range(200)]
    assert big.worst_condition(holders) == fresh_worst(big, holders)
    assert big.conds == {}
