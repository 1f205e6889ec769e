"""``optimal`` for the ell it is given, and the array-based local search against a plain one.

The plain search below is the one-sort-per-trial version the array version replaced; the array
version must make the same moves (same orders, so runs that use ``ordering: optimal`` keep their
bytes), only faster.
"""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simulator.cli import cli
from simulator.coding import assignment as asg
from simulator.coding import ordering as od

from .test_ordering import irregular


def q_star(m: int, load: int, ell: int) -> int:
    """Q_max(ell) of a balanced order on the regular class (PROTOCOLS.md section 4)."""
    t = load - ell + 1
    return 1 + m * load - t * (t + 1) // 2


def brute_minimum(assignment: asg.Assignment, chunks: int, ell: int) -> int | float:
    """Q_max(ell) minimized over every ordering (tiny cases only)."""
    orders = itertools.product(*(itertools.permutations(w) for w in assignment))
    return min(od.q_max([list(w) for w in o], chunks, ell) for o in orders)


# --------------------------------------------------------------------------- the plain search


class PlainSearch:
    """Positions in dicts; f_i recomputed by sorting for every trial swap."""

    def __init__(self, order: od.Order, chunks: int, ell: int) -> None:
        self.order = [list(w) for w in order]
        self.ell = ell
        self.loads = [len(w) for w in order]
        self.total = sum(self.loads)
        self.owners = asg.holders(self.order, chunks)
        self.pos = [{c: p for p, c in enumerate(w)} for w in self.order]
        self.f = [self.value(i) for i in range(chunks)]

    def value(self, i: int) -> int:
        values = sorted(self.loads[j] - self.pos[j][i] for j in self.owners[i])
        return self.total - sum(values[: len(values) - self.ell + 1])

    def swap(self, j: int, p: int, q: int) -> None:
        a, b = self.order[j][p], self.order[j][q]
        self.order[j][p], self.order[j][q] = b, a
        self.pos[j][a], self.pos[j][b] = q, p
        self.f[a], self.f[b] = self.value(a), self.value(b)

    def trial(self, j: int, p: int, q: int) -> tuple[int, int]:
        a, b = self.order[j][p], self.order[j][q]
        self.pos[j][a], self.pos[j][b] = q, p
        result = self.value(a), self.value(b)
        self.pos[j][a], self.pos[j][b] = p, q
        return result


def plain_local_search(
    state: PlainSearch, rng: random.Random, iterations: int, target: int | float
) -> tuple[int, od.Order]:
    best = (max(state.f), state.f.count(max(state.f)))
    best_order = [list(w) for w in state.order]
    for _ in range(iterations):
        top = max(state.f)
        if top + 1 <= target:
            break
        critical = [i for i, f in enumerate(state.f) if f == top]
        rng.shuffle(critical)
        move = None
        for i in critical:
            candidates = []
            for j in state.owners[i]:
                p = state.pos[j][i]
                for q in range(state.loads[j]):
                    if q != p:
                        fa, fb = state.trial(j, p, q)
                        if max(fa, fb) < top:
                            candidates.append((max(fa, fb), fa * fa + fb * fb, j, p, q))
            if candidates:
                move = min(candidates)[2:]
                break
        if move is None:
            i = rng.choice(critical)
            sideways = [
                (j, state.pos[j][i], q)
                for j in state.owners[i]
                for q in range(state.loads[j])
                if q != state.pos[j][i] and max(state.trial(j, state.pos[j][i], q)) <= top
            ]
            if not sideways:
                break
            move = rng.choice(sideways)
        state.swap(*move)
        now = (max(state.f), state.f.count(max(state.f)))
        if now < best:
            best, best_order = now, [list(w) for w in state.order]
    return best[0], best_order


CASES = [
    *[("irregular", 7 + s % 5, 6 + s % 7, s) for s in range(12)],
    *[("regular", m, load, s) for s, (m, load) in enumerate([(12, 5), (20, 6), (15, 7), (9, 3)])],
]


@pytest.mark.parametrize(("kind", "m", "size", "seed"), CASES)
def test_array_search_makes_the_plain_search_moves(kind: str, m: int, size: int, seed: int) -> None:
    """Same start, same seed: the same (best max f, order) after each tested number of steps,
    for the smallest, middle and largest ell the assignment can decode, including plateaus and
    early stops."""
    if kind == "regular":
        a, chunks = asg.random_regular(m, size, seed), m
        starts = [od.random_order(a, seed), od.balanced(a, m)]
    else:
        a, chunks = irregular(m, size, 1, min(size, 5), seed, holders=1), size
        starts = [od.natural(a), od.random_order(a, seed)]
    top_ell = min(asg.replication(a, chunks))
    ells = sorted({1, min(2, top_ell), (top_ell + 1) // 2, top_ell})
    for start, ell, steps in itertools.product(starts, ells, (7, 150)):
        target = od.lower_bound(a, chunks, ell)
        plain = plain_local_search(
            PlainSearch(start, chunks, ell), random.Random(seed), steps, target
        )
        fast = od._local_search(od._Search(start, chunks, ell), random.Random(seed), steps, target)
        assert fast == plain, (ell, steps)


def test_search_state_scores_match_sorting() -> None:
    """The (base, thr) shortcut gives the f of both chunks for every possible swap."""
    a = irregular(6, 7, 1, 5, seed=3, holders=1)
    order = od.random_order(a, 1)
    for ell in (1, 2):
        state = od._Search(order, 7, ell)
        plain = PlainSearch(order, 7, ell)
        assert state.f.tolist() == plain.f
        for i in range(7):
            if len(plain.owners[i]) < ell:
                continue
            moved, other, exists = state.score(od.np.array([i]))
            for k, j in enumerate(plain.owners[i]):
                p = plain.pos[j][i]
                for q in range(len(order[j])):
                    assert bool(exists[0, k, q]) == (q != p)
                    if q != p:
                        assert (moved[0, k, q], other[0, k, q]) == plain.trial(j, p, q)


# --------------------------------------------------------------------------- optimal for ell


def test_optimal_reaches_the_bound_for_ell_3_on_cyclic_6_5() -> None:
    """Issue 14: optimal used to return the balanced order (Q*(3) = 25) whatever ell."""
    a = asg.cyclic(6, 5)
    assert od.lower_bound(a, 6, 3) == 24 < q_star(6, 5, 3)
    for method in ("auto", "regular"):
        order = od.optimal(a, 6, 3, method=method)
        assert sorted(map(sorted, order)) == sorted(map(sorted, a))
        assert od.q_max(order, 6, 3) == od.q_max_brute_force(order, 6, 3) == 24
    # ell = 1 keeps the cyclic natural order, which is balanced and optimal there
    assert od.optimal(a, 6, 1) == a


def test_gcsim_ordering_optimizes_the_given_ell() -> None:
    result = CliRunner().invoke(
        cli, ["ordering", "-m", "6", "--load", "5", "--ordering", "optimal", "--ell", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ell"] == 3
    assert report["q_max"][2] == report["lower_bound"][2] == 24
    table = CliRunner().invoke(
        cli, ["ordering", "-m", "6", "--load", "5", "--ordering", "optimal", "--ell", "3"]
    )
    assert table.exit_code == 0
    assert "for ell = 3" in table.output
    plain = json.loads(
        CliRunner()
        .invoke(cli, ["ordering", "-m", "6", "--load", "5", "--ordering", "optimal", "--json"])
        .output
    )
    assert plain["ell"] == 1 and plain["q_max"][0] == plain["lower_bound"][0] == 16


def test_regular_method_beats_q_star_at_m_30() -> None:
    """The deterministic path a run uses: random_regular m = 30, load 6, ell 3 meets the
    counting bound 170 < Q*(3) = 171, and is the same order on every call."""
    a = asg.random_regular(30, 6, seed=1)
    order = od.optimal(a, 30, 3, method="regular", seed=5)
    assert od.q_max(order, 30, 3) == od.lower_bound(a, 30, 3) == 170 < q_star(30, 6, 3)
    assert order == od.optimal(a, 30, 3, method="regular", seed=5)


@pytest.mark.parametrize(("m", "load", "ell"), [(10, 4, 2), (12, 5, 2), (20, 6, 6), (20, 6, 1)])
def test_balanced_kept_where_it_meets_the_bound(m: int, load: int, ell: int) -> None:
    """Where Q*(ell) is the bound (load <= 4, ell in {1, load - 1, load}, (5, 2)), the regular
    method still returns the balanced order: configs that used it keep their bytes."""
    a = asg.random_regular(m, load, seed=2)
    assert od.optimal(a, m, ell, method="regular") == od.balanced(a, m)
    assert od.lower_bound(a, m, ell) == q_star(m, load, ell)


@st.composite
def small_regular(draw: st.DrawFn) -> tuple[asg.Assignment, int, int, int]:
    load = draw(st.integers(2, 5))
    m = draw(st.integers(load, 6))
    kind = draw(st.sampled_from(["cyclic", "random_regular"]))
    seed = draw(st.integers(0, 50))
    a = asg.cyclic(m, load) if kind == "cyclic" else asg.random_regular(m, load, seed)
    return a, m, draw(st.integers(1, load)), seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_regular())
def test_optimal_between_bound_and_balanced_and_heuristic(
    case: tuple[asg.Assignment, int, int, int],
) -> None:
    a, m, ell, seed = case
    bound = od.lower_bound(a, m, ell)
    heuristic = od.q_max(od.heuristic(a, m, ell, seed=seed), m, ell)
    balanced = od.q_max(od.balanced(a, m), m, ell)
    assert balanced == q_star(m, len(a[0]), ell)
    for method in ("regular", "auto"):
        # auto may end in the integer program; a short limit keeps the property (it only replaces
        # a strictly worse order) and the test fast
        order = od.optimal(a, m, ell, method=method, seed=seed, time_limit=2.0)
        value = od.q_max(order, m, ell)
        assert bound <= value <= min(balanced, heuristic)


@st.composite
def tiny_assignments(draw: st.DrawFn) -> tuple[asg.Assignment, int]:
    chunks = draw(st.integers(2, 5))
    workers = draw(st.integers(2, 5))
    a = [
        sorted(draw(st.permutations(range(chunks)))[: draw(st.integers(1, min(chunks, 4)))])
        for _ in range(workers)
    ]
    assume(math.prod(math.factorial(len(w)) for w in a) <= 1500)
    return a, chunks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_assignments(), st.integers(1, 3))
def test_optimal_agrees_with_brute_force(case: tuple[asg.Assignment, int], ell: int) -> None:
    a, chunks = case
    best = brute_minimum(a, chunks, ell)
    assert od.q_max(od.optimal(a, chunks, ell), chunks, ell) == best
    assert od.lower_bound(a, chunks, ell) <= best
    assert od.q_max(od.heuristic(a, chunks, ell), chunks, ell) >= best
    if od.is_regular(a, chunks):
        assert od.q_max(od.optimal(a, chunks, ell, method="regular"), chunks, ell) >= best


def test_regular_tiny_cases_by_brute_force() -> None:
    """Every ordering of a few regular assignments: optimal (auto) is the minimum at every ell."""
    for a, m in [(asg.cyclic(4, 3), 4), (asg.random_regular(5, 3, 4), 5), (asg.cyclic(5, 2), 5)]:
        for ell in range(1, len(a[0]) + 1):
            assert od.q_max(od.optimal(a, m, ell), m, ell) == brute_minimum(a, m, ell)


def test_balanced_is_optimal_matches_the_bound() -> None:
    """The cost model's rule of thumb is the counting bound's verdict for every load <= 8."""
    for load in range(1, 9):
        m = load + 2
        a = asg.random_regular(m, load, seed=load)
        for ell in range(1, load + 1):
            proven = od.lower_bound(a, m, ell) == q_star(m, load, ell)
            assert od.balanced_is_optimal(load, ell) == proven, (load, ell)


def test_ordering_command_counts_the_search_in_its_cost() -> None:
    """m = 50,000, load 10: the report alone fits the 120 s limit, the ell = 4 search does not,
    so the command refuses it up front (exit 2, naming --workers) instead of running minutes."""
    assert od.report_cost(50_000, 10).seconds < od.REPORT_LIMIT_SECONDS
    assert od.report_cost(50_000, 10, optimize_ell=9).seconds < od.REPORT_LIMIT_SECONDS
    assert od.report_cost(50_000, 10, optimize_ell=4).seconds > od.REPORT_LIMIT_SECONDS
    args = ["ordering", "-m", "50000", "--load", "10", "--ordering", "optimal", "--json"]
    result = CliRunner().invoke(cli, [*args, "--ell", "4"])
    assert result.exit_code == 2
    assert "--workers" in result.output and "Traceback" not in result.output


def test_a_config_order_uses_its_ell() -> None:
    """The path a run takes (``layout.build_order``, method "regular"): a partial_gc scheme with
    ``ordering: optimal``, load 5, ell 3 on cyclic m = 6 gets Q_max 24, not the balanced 25;
    with ell 2 (balanced proven optimal) it keeps the balanced order."""
    from types import SimpleNamespace

    from simulator.coding import layout

    held = asg.cyclic(6, 5)
    for ell, expected in ((3, 24), (2, q_star(6, 5, 2))):
        spec = SimpleNamespace(ordering="optimal", ell=ell)
        order = layout.build_order(spec, held, 6, seed=1, label="s")
        assert od.q_max(order, 6, ell) == expected
        assert order == layout.build_order(spec, held, 6, seed=1, label="s")
    assert layout.build_order(spec, held, 6, seed=1, label="s") == od.balanced(held, 6)
