"""PROTOCOLS.md section 5, worked examples 1, 3 and 4, exactly."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from simulator.coding.numerics import cond, sum_weights
from simulator.coding.partial_gc import residual

from .scenarios import play

# Example 1: m = N = 3, load = 2, cyclic natural order: W0 {D0, D1}, W1 {D1, D2}, W2 {D2, D0}.
# W2 down; at time 1, W0 has finished D0 only (chunk time 1) and W1 both (chunk time 0.5).


def test_example1_partial_decodes_when_every_chunk_has_a_copy():
    outcome, error, _ = play(
        {"protocol": "partial_gc", "load": 2, "ell": 1}, 3, [1.0, 0.5, 1.0], down=[2]
    )
    assert outcome.decoded and outcome.completion_time == 1.0
    assert error < 1e-20


def test_example1_original_cannot_decode_until_a_second_worker_finishes():
    outcome, error, _ = play(
        {"protocol": "original_gc", "load": 2, "ell": 1}, 3, [1.0, 0.5, 1.0], down=[2]
    )
    # At t = 1 only W1 has finished: s = 1 needs 2 uploads; W0 finishes its second chunk at 2.
    assert outcome.decoded and outcome.completion_time == 2.0
    assert error < 1e-20


def test_example1_ell2_not_decodable_with_residual_3():
    # Progress at t = 1: W0 {D0}, W1 {D1, D2}, W2 down -> r = (1, 1, 1), residual 3 for ell = 2.
    assert residual(np.array([1, 1, 1]), 2) == 3
    outcome, _, _ = play(
        {"protocol": "partial_gc", "load": 2, "ell": 2}, 3, [1.0, 0.5, 1.0], down=[2]
    )
    assert not outcome.decoded and math.isinf(outcome.completion_time)
    assert outcome.result is None


def test_example1_ell2_approximate_residual_at_time_1():
    scheme = {"protocol": "partial_gc", "load": 2, "ell": 2, "mode": "approximate", "deadline": 1.0}
    outcome, error, _ = play(scheme, 3, [1.0, 0.5, 1.0], down=[2])
    assert outcome.decoded and outcome.completion_time == 1.0
    assert outcome.result.chunks_used == 3  # r = (1, 1, 1)
    assert 0.05 < error < 1.0  # each chunk recovered only in projection


# Example 3: equal speeds, chunk time 1, cyclic m = 12, load = 4, natural order.


@pytest.mark.parametrize("ell", [1, 2, 3, 4])
def test_example3_equal_speeds(ell):
    partial, error, _ = play({"protocol": "partial_gc", "load": 4, "ell": ell}, 12, [1.0] * 12)
    assert partial.completion_time == ell and error < 1e-20
    if ell == 1:
        original, error, _ = play({"protocol": "original_gc", "load": 4, "ell": 1}, 12, [1.0] * 12)
        assert original.completion_time == 4.0 and error < 1e-20


@pytest.mark.parametrize("ell, expected", [(1, 3.0), (2, 4.0), (3, math.inf)])
def test_example3_workers_2_and_3_down(ell, expected):
    outcome, error, _ = play(
        {"protocol": "partial_gc", "load": 4, "ell": ell}, 12, [1.0] * 12, down=[2, 3]
    )
    assert outcome.completion_time == expected
    assert outcome.decoded == math.isfinite(expected)
    if outcome.decoded:
        assert error < 1e-20


def test_example3_original_with_two_down_still_decodes_at_4():
    outcome, error, _ = play(
        {"protocol": "original_gc", "load": 4, "ell": 1}, 12, [1.0] * 12, down=[2, 3]
    )
    assert outcome.completion_time == 4.0 and error < 1e-20


# Example 4: Tandon's m = 3, s = 1 code.

TANDON_3 = np.array([[0.5, 1.0, 0.0], [0.0, 1.0, -1.0], [0.5, 0.0, 1.0]])


@pytest.mark.parametrize("pair", list(itertools.combinations(range(3), 2)))
def test_example4_any_two_messages_recover_the_sum(pair):
    rng = np.random.default_rng(4)
    grads = rng.standard_normal((3, 50))
    messages = TANDON_3 @ grads
    weights = sum_weights(TANDON_3[list(pair)])
    condition = cond(TANDON_3[list(pair)])
    np.testing.assert_allclose(weights @ TANDON_3[list(pair)], np.ones(3), atol=1e-14)
    np.testing.assert_allclose(weights @ messages[list(pair)], grads.sum(axis=0), atol=1e-13)
    assert condition < 10


def test_example4_weights_are_the_known_ones():
    # g0 + g1 + g2 = 2 (g0/2 + g1) - (g1 - g2) = (g1 - g2) + 2 (g0/2 + g2) = ...
    weights = sum_weights(TANDON_3[[0, 1]])
    np.testing.assert_allclose(weights, [2.0, -1.0], atol=1e-14)
    weights = sum_weights(TANDON_3[[1, 2]])
    np.testing.assert_allclose(weights, [1.0, 2.0], atol=1e-14)
    weights = sum_weights(TANDON_3[[0, 2]])
    np.testing.assert_allclose(weights, [1.0, 1.0], atol=1e-14)
