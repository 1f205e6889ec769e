"""Orderings: Q_max against brute force, the worked examples, bounds, and the optimizers."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from simulator.coding import assignment as asg
from simulator.coding import ordering as od
from simulator.streams import generator


def q_star(m: int, load: int, ell: int) -> int:
    """PROTOCOLS.md section 4: Q_max(ell) of a position-balanced order on the regular class."""
    return 1 + (m - load + ell - 1) * load + load * (load - 1) // 2 - (ell - 1) * (ell - 2) // 2


def all_orderings(assignment: asg.Assignment):
    for combo in itertools.product(*(itertools.permutations(w) for w in assignment)):
        yield [list(w) for w in combo]


def min_over_orderings(assignment: asg.Assignment, chunks: int, ell: int) -> int | float:
    return min(od.q_max(o, chunks, ell) for o in all_orderings(assignment))


def irregular(
    workers: int, chunks: int, low: int, high: int, seed: int, holders: int = 2
) -> asg.Assignment:
    """A seeded assignment with unequal loads in which every chunk has at least ``holders``
    holders."""
    rng = generator(seed, "test.irregular", workers, chunks)
    while True:
        sizes = rng.integers(low, high + 1, size=workers)
        a = [sorted(rng.choice(chunks, size=int(k), replace=False).tolist()) for k in sizes]
        if min(asg.replication(a, chunks)) >= holders:
            return a


def same_sets(order: od.Order, assignment: asg.Assignment) -> bool:
    return [sorted(w) for w in order] == [sorted(w) for w in assignment]


# --------------------------------------------------------------------------- worked examples


@pytest.mark.parametrize(
    ("m", "load", "expected"),
    [(3, 2, [4, 6]), (4, 3, [7, 10, 12]), (6, 3, [13, 16, 18])],
)
def test_worked_examples_cyclic_natural(m: int, load: int, expected: list[int]) -> None:
    order = od.natural(asg.cyclic(m, load))
    assert od.q_max_all(order, m) == expected
    for ell, value in enumerate(expected, start=1):
        assert od.q_max(order, m, ell) == value
        assert od.q_max_brute_force(order, m, ell) == value
        assert value == q_star(m, load, ell)


def test_worked_example_bad_order() -> None:
    order = [[0, 1], [2, 1], [2, 0]]  # W0 (D0, D1), W1 (D2, D1), W2 (D2, D0)
    assert od.q_max(order, 3, 1) == 5
    assert od.q_max_brute_force(order, 3, 1) == 5
    assert od.lower_bound(order, 3, 1) == 4  # the natural order reaches 4


def test_infinite_when_too_few_holders() -> None:
    order = [[0, 1], [1]]
    assert od.q_max(order, 2, 1) == od.q_max_brute_force(order, 2, 1) == 2
    assert od.q_max(order, 2, 2) == math.inf
    assert od.q_max_brute_force(order, 2, 2) == math.inf
    assert od.q_max_all(order, 2) == [2, math.inf]
    assert od.lower_bound(order, 2, 2) == math.inf
    assert od.q_max([[0]], 2, 1) == math.inf  # chunk 1 held by nobody


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="ell must be an integer >= 1"):
        od.q_max([[0]], 1, 0)
    with pytest.raises(ValueError, match="outside 0..1"):
        od.q_max([[0, 2]], 2, 1)
    with pytest.raises(ValueError, match="twice"):
        od.lower_bound([[0, 0]], 1, 1)
    with pytest.raises(ValueError, match="method must be one of"):
        od.optimal(asg.cyclic(3, 2), 3, method="best")
    with pytest.raises(ValueError, match="regular assignment"):
        od.balanced([[0, 1], [1]], 2)
    with pytest.raises(ValueError, match="too slow"):
        od.q_max_brute_force(asg.cyclic(12, 6), 12, 1)


# --------------------------------------------------------------------------- brute force


@st.composite
def small_orders(draw: st.DrawFn) -> tuple[od.Order, int]:
    chunks = draw(st.integers(1, 6))
    workers = draw(st.integers(1, 6))
    order = [
        draw(st.permutations(range(chunks)).map(lambda p, k=k: list(p[:k])))
        for k in draw(st.lists(st.integers(0, min(chunks, 4)), min_size=workers, max_size=workers))
    ]
    assume(math.prod(len(w) + 1 for w in order) <= 3000)
    return order, chunks


@settings(max_examples=300, deadline=None)
@given(small_orders())
def test_q_max_equals_brute_force(case: tuple[od.Order, int]) -> None:
    order, chunks = case
    top = max((len(w) for w in order), default=0)
    closed = od.q_max_all(order, chunks)
    assert len(closed) == top
    for ell in range(1, top + 2):
        exact = od.q_max_brute_force(order, chunks, ell)
        assert od.q_max(order, chunks, ell) == exact
        if ell <= top:
            assert closed[ell - 1] == exact
        bound = od.lower_bound(order, chunks, ell)
        assert bound <= exact


def test_q_max_brute_force_on_regular_orders() -> None:
    """Random orders of regular assignments, the class the protocol uses (deterministic)."""
    checked = 0
    for seed in range(40):
        m, load = [(5, 3), (6, 2), (4, 4), (5, 4)][seed % 4]
        base = asg.random_regular(m, load, seed)
        order = od.random_order(base, seed)
        assert od.q_max_all(order, m) == [
            od.q_max_brute_force(order, m, ell) for ell in range(1, load + 1)
        ]
        checked += 1
    assert checked == 40


def test_q_max_all_at_1000() -> None:
    a = asg.random_regular(1000, 20, seed=0)
    values = od.q_max_all(a, 1000)
    assert values[0] == od.q_max(a, 1000, 1)
    assert values[-1] == od.q_max(a, 1000, 20)


# --------------------------------------------------------------------------- regular class


@pytest.mark.parametrize(
    ("m", "load"), [(5, 1), (7, 3), (20, 4), (60, 7), (200, 10), (500, 6), (500, 16)]
)
def test_optimal_meets_bound_on_random_regular(m: int, load: int) -> None:
    a = asg.random_regular(m, load, seed=m + load)
    order = od.optimal(a, m)
    assert same_sets(order, a)
    assert od.is_balanced(order, m)
    q1 = 1 + m * load - load * (load + 1) // 2
    assert od.q_max(order, m, 1) == q1
    assert od.lower_bound(a, m, 1) == q1
    assert od.q_max_all(order, m) == [q_star(m, load, ell) for ell in range(1, load + 1)]
    assert od.q_max(a, m, 1) >= q1  # the ascending natural order is no better


def test_balanced_fixes_a_bad_order() -> None:
    a = asg.graph(30, 5, seed=4)
    natural_q = od.q_max(a, 30, 1)
    order = od.balanced(a, 30)
    assert same_sets(order, a)
    assert od.q_max(order, 30, 1) == 1 + 30 * 6 - 21 < natural_q


def test_optimal_keeps_already_balanced_cyclic() -> None:
    a = asg.cyclic(9, 4)
    assert od.optimal(a, 9) == a
    frc = asg.frc(6, 3)  # identical orders within a group: far from balanced
    order = od.optimal(frc, 6)
    assert od.is_balanced(order, 6)
    assert od.q_max(order, 6, 1) == 1 + 18 - 6 < od.q_max(frc, 6, 1)


@pytest.mark.parametrize(("m", "load"), [(3, 2), (4, 2), (4, 3), (5, 2), (5, 3)])
def test_q_star_is_optimal_for_small_loads_by_exhaustion(m: int, load: int) -> None:
    """Every ordering of cyclic(m, load), load <= 3: the optimum is Q*(ell) = the lower bound."""
    a = asg.cyclic(m, load)
    for ell in range(1, load + 1):
        best = min_over_orderings(a, m, ell)
        assert best == q_star(m, load, ell)
        assert od.lower_bound(a, m, ell) == best


def test_q_star_is_beaten_for_load_5() -> None:
    """Counterexample to 'Q*(ell) is optimal': cyclic m = 6, load = 5, ell = 3."""
    a = asg.cyclic(6, 5)
    order = [
        [0, 4, 2, 3, 1],
        [1, 4, 2, 5, 3],
        [0, 3, 5, 2, 4],
        [0, 3, 5, 4, 1],
        [1, 4, 5, 2, 0],
        [1, 3, 2, 5, 0],
    ]
    assert same_sets(order, a)
    assert od.q_max_brute_force(order, 6, 3) == od.q_max(order, 6, 3) == 24
    assert q_star(6, 5, 3) == 25
    assert od.lower_bound(a, 6, 3) == 24  # so this order is optimal for ell = 3
    assert od.q_max(order, 6, 1) > q_star(6, 5, 1)  # ... at the price of ell = 1


def test_regular_lower_bound_values() -> None:
    """Proven cases equal Q*(ell); the counting LP is below Q* exactly where orders can beat it."""
    for load in range(1, 5):
        m = load + 3
        a = asg.cyclic(m, load)
        assert [od.lower_bound(a, m, e) for e in range(1, load + 1)] == [
            q_star(m, load, e) for e in range(1, load + 1)
        ]
    for load in (5, 9, 12):
        m = 2 * load
        a = asg.random_regular(m, load, seed=1)
        bounds = [od.lower_bound(a, m, e) for e in range(1, load + 1)]
        stars = [q_star(m, load, e) for e in range(1, load + 1)]
        for e in (1, load - 1, load):
            assert bounds[e - 1] == stars[e - 1]
        assert all(b <= s for b, s in zip(bounds, stars, strict=True))
        assert bounds[load - 3] == stars[load - 3] - 1  # ell = load - 2: one below Q*
    assert [od.lower_bound(asg.cyclic(12, 9), 12, e) for e in range(1, 10)] == [
        64,
        72,
        78,
        85,
        91,
        97,
        102,
        106,
        108,
    ]


# --------------------------------------------------------------------------- integer program


@pytest.mark.parametrize("seed", range(8))
def test_integer_program_matches_exhaustion(seed: int) -> None:
    workers = 4 if seed % 2 else 5
    a = irregular(workers, 5, 1, 3, seed)
    for ell in (1, 2):
        best = min_over_orderings(a, 5, ell)
        solved = od.integer_program(a, 5, ell, time_limit=30)
        assert solved.optimal
        assert solved.q_max == best == od.q_max(solved.order, 5, ell)
        assert same_sets(solved.order, a)
        assert solved.bound == best
        assert od.lower_bound(a, 5, ell) <= best


def test_integer_program_on_irregular_graph() -> None:
    """Closed neighbourhoods of an irregular graph (a 4-cycle plus a pendant vertex)."""
    a = asg.graph(5, None, edges=[(0, 1), (1, 2), (2, 3), (3, 0), (3, 4)])
    for ell in (1, 2):
        best = min_over_orderings(a, 5, ell)
        assert od.integer_program(a, 5, ell).q_max == best
        assert od.q_max(od.optimal(a, 5, ell), 5, ell) == best  # auto picks the MILP here
    # averaging: 1 + 15 - 31 // 5
    assert min_over_orderings(a, 5, 1) == 10 == od.lower_bound(a, 5, 1)


def test_integer_program_beats_q_star_on_a_regular_instance() -> None:
    a = asg.random_regular(6, 5, seed=1)
    solved = od.integer_program(a, 6, 3, time_limit=60)
    assert solved.q_max == 24 < q_star(6, 5, 3)
    assert solved.optimal


# --------------------------------------------------------------------------- heuristic


@pytest.mark.parametrize("seed", range(6))
def test_heuristic_small_instances(seed: int) -> None:
    a = irregular(7, 7, 2, 5, seed)
    for ell in (1, 2):
        order = od.heuristic(a, 7, ell, seed=seed)
        assert same_sets(order, a)
        value = od.q_max(order, 7, ell)
        best = od.integer_program(a, 7, ell, time_limit=30).q_max
        assert best <= value <= od.q_max(a, 7, ell)
        assert value <= best + 1
        if ell == 1:
            assert value == best


def test_heuristic_large_irregular_meets_bound() -> None:
    a = irregular(200, 200, 3, 10, seed=0)
    order = od.heuristic(a, 200, 1)
    assert same_sets(order, a)
    assert od.q_max(order, 200, 1) == od.lower_bound(a, 200, 1) < od.q_max(a, 200, 1)


@pytest.mark.parametrize(("m", "load", "ell"), [(40, 5, 1), (40, 5, 2), (100, 8, 1)])
def test_local_search_repairs_a_random_order(m: int, load: int, ell: int) -> None:
    a = asg.random_regular(m, load, seed=1)
    start = od.random_order(a, seed=2)
    order = od.heuristic(a, m, ell, start=start)
    assert same_sets(order, a)
    assert od.q_max(order, m, ell) == od.lower_bound(a, m, ell) == q_star(m, load, ell)
    assert od.q_max(start, m, ell) > q_star(m, load, ell)
    with pytest.raises(ValueError, match="same sets"):
        od.heuristic(a, m, ell, start=asg.cyclic(m, load))


def test_heuristic_reproducible() -> None:
    a = irregular(12, 12, 2, 6, seed=3)
    assert od.heuristic(a, 12, 2, seed=1) == od.heuristic(a, 12, 2, seed=1)


# --------------------------------------------------------------------------- orders and report


def test_random_order_seeded_per_worker() -> None:
    a = asg.cyclic(8, 4)
    order = od.random_order(a, seed=3)
    assert same_sets(order, a)
    assert order == od.random_order(a, seed=3)
    assert order != od.random_order(a, seed=4)
    assert od.random_order(a[:5], seed=3) == order[:5]  # worker j's stream depends on j only
    assert od.natural(a) == a and od.natural(a) is not a


def test_ordering_report_cyclic() -> None:
    report = od.ordering_report(20, 4)
    assert report["q_max"] == [71, 75, 78, 80]
    assert report["lower_bound"] == [71, 75, 78, 80]
    assert report["assignment"] == asg.cyclic(20, 4) == report["order"]
    json.dumps(report)


@pytest.mark.parametrize("name", ["cyclic", "frc", "random_regular", "graph"])
def test_ordering_report_optimal(name: str) -> None:
    report = od.ordering_report(20, 4, assignment=name, ordering="optimal", seed=2)
    text = json.dumps(report)
    assert json.loads(text) == report
    assert report["q_max"] == [q_star(20, 4, e) for e in range(1, 5)] == report["lower_bound"]
    assert same_sets(report["order"], report["assignment"])
    for row in report["order"]:
        assert all(type(c) is int for c in row)


def test_ordering_report_random_is_worse() -> None:
    report = od.ordering_report(30, 5, assignment="random_regular", ordering="random", seed=7)
    assert report["q_max"][0] > report["lower_bound"][0] == 1 + 150 - 15
    assert all(q >= b for q, b in zip(report["q_max"], report["lower_bound"], strict=True))


def test_ordering_report_errors() -> None:
    with pytest.raises(ValueError, match="'bernoulli' is unknown"):
        od.ordering_report(10, 3, assignment="bernoulli")
    with pytest.raises(ValueError, match="'explicit' reads a file"):
        od.ordering_report(10, 3, assignment="explicit")
    with pytest.raises(ValueError, match="unknown ordering"):
        od.ordering_report(10, 3, ordering="best")
    with pytest.raises(ValueError, match="load = degree \\+ 1"):
        od.ordering_report(10, 3, assignment="graph", degree=3)
