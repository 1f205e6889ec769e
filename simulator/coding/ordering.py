"""Chunk orderings and the worst-case work Q_max(ell) they imply (PROTOCOLS.md section 4).

An order is an assignment whose per-worker lists are permuted: worker j processes ``order[j][0]``
first. With partial work the order decides how much the cluster can compute while some chunk still
lacks ``ell`` processed copies; ``q_max`` measures that worst case and ``optimal`` minimizes it.
The math, the proofs and the measured gaps are in docs/ordering.md.

Notation used below: load_j = len(order[j]); p_j(i) the 0-based position of chunk i at worker j;
r_j(i) = load_j - p_j(i) in 1..load_j the work left at j when it starts chunk i; H_i the holders of
chunk i, h_i = |H_i|; Total = sum_j load_j. For one chunk the worst progress vector leaves it with
ell - 1 copies: the ell - 1 holders with the most work left finish, the others stop just before
it, so with k_i = h_i - ell + 1

    f_i(ell) = Total - B_i(ell),   B_i(ell) = sum of the k_i smallest r_j(i) over j in H_i,

and Q_max(ell) = 1 + max_i f_i(ell) (infinite if some h_i < ell).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog
from scipy.optimize import milp as _scipy_milp
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import maximum_bipartite_matching

from simulator.coding import assignment as asg
from simulator.streams import generator

Order = list[list[int]]

#: ``optimal(method="auto")`` uses the integer program when it has at most this many 0/1 variables.
AUTO_MILP_BINARIES = 300
#: Time limit (seconds) of the integer program inside ``optimal(method="auto")``.
AUTO_MILP_SECONDS = 20.0
#: The counting-LP bound is skipped (simpler bounds only) above this many network nodes.
COUNTING_LP_MAX_NODES = 40_000
#: Solver and per-solve time limit of the counting LP (an undecided solve weakens the bound only).
_LP_METHOD = "highs-ipm"
_LP_SECONDS = 10.0
#: Progress vectors beyond which ``q_max_brute_force`` refuses to run.
BRUTE_FORCE_LIMIT = 2_000_000


# --------------------------------------------------------------------------- basic orders


def natural(assignment: asg.Assignment) -> Order:
    """The construction's own order (a copy, so callers may mutate it)."""
    return [[int(c) for c in held] for held in assignment]


def random_order(assignment: asg.Assignment, seed: int) -> Order:
    """Each worker's list shuffled; worker j uses stream ("ordering.random", j) so adding
    workers does not change the others' orders."""
    out: Order = []
    for worker, held in enumerate(assignment):
        perm = generator(seed, "ordering.random", worker).permutation(len(held))
        out.append([int(held[k]) for k in perm])
    return out


# --------------------------------------------------------------------------- Q_max


def _check_order(order: Sequence[Sequence[int]], chunks: int) -> None:
    asg.validate([list(w) for w in order], chunks)


def _check_ell(ell: int) -> None:
    if isinstance(ell, bool) or not isinstance(ell, int | np.integer) or ell < 1:
        raise ValueError(f"ell must be an integer >= 1, got {ell!r}")


def _remaining(order: Sequence[Sequence[int]], chunks: int) -> list[list[int]]:
    """Per chunk, the r_j(i) = load_j - p_j(i) of its holders, ascending."""
    rem: list[list[int]] = [[] for _ in range(chunks)]
    for held in order:
        load = len(held)
        for position, chunk in enumerate(held):
            rem[chunk].append(load - position)
    for values in rem:
        values.sort()
    return rem


def q_max(order: Sequence[Sequence[int]], chunks: int, ell: int = 1) -> int | float:
    """Q_max(ell) of an order by the per-chunk closed form (module docstring); math.inf if a
    chunk has fewer than ``ell`` holders, since then no amount of work guarantees decoding."""
    _check_order(order, chunks)
    _check_ell(ell)
    total = sum(len(w) for w in order)
    worst = -1
    for values in _remaining(order, chunks):
        if len(values) < ell:
            return math.inf
        worst = max(worst, total - sum(values[: len(values) - ell + 1]))
    return 1 + worst


def q_max_all(order: Sequence[Sequence[int]], chunks: int) -> list[int | float]:
    """[Q_max(1), ..., Q_max(max load)] in one pass (prefix sums of the sorted r values)."""
    _check_order(order, chunks)
    total = sum(len(w) for w in order)
    top = max((len(w) for w in order), default=0)
    worst: list[int | float] = [-1] * top
    for values in _remaining(order, chunks):
        prefix = [0, *itertools.accumulate(values)]
        h = len(values)
        for ell in range(1, top + 1):
            f = total - prefix[h - ell + 1] if ell <= h else math.inf
            worst[ell - 1] = max(worst[ell - 1], f)
    return [1 + w for w in worst]


def q_max_brute_force(order: Sequence[Sequence[int]], chunks: int, ell: int = 1) -> int | float:
    """Q_max(ell) by enumerating every progress vector (tests only: product of (load_j + 1))."""
    _check_order(order, chunks)
    _check_ell(ell)
    size = math.prod(len(w) + 1 for w in order)
    if size > BRUTE_FORCE_LIMIT:
        raise ValueError(f"brute force over {size} progress vectors is too slow; use q_max")
    total = sum(len(w) for w in order)
    best = -1
    for progress in itertools.product(*(range(len(w) + 1) for w in order)):
        copies = [0] * chunks
        for held, k in zip(order, progress, strict=True):
            for chunk in held[:k]:
                copies[chunk] += 1
        if min(copies) < ell:
            best = max(best, sum(progress))
    return math.inf if best == total else best + 1


# --------------------------------------------------------------------------- lower bounds


@dataclass(frozen=True)
class _Shape:
    """What a lower bound may use: the sets (not the order) of an assignment."""

    loads: tuple[int, ...]
    holder_loads: tuple[tuple[int, ...], ...]  # per chunk, its holders' loads ascending

    @property
    def total(self) -> int:
        return sum(self.loads)


def _shape(assignment: Sequence[Sequence[int]], chunks: int) -> _Shape:
    loads = tuple(len(w) for w in assignment)
    per_chunk: list[list[int]] = [[] for _ in range(chunks)]
    for held in assignment:
        for chunk in held:
            per_chunk[chunk].append(len(held))
    return _Shape(loads, tuple(tuple(sorted(x)) for x in per_chunk))


def _simple_bound(shape: _Shape, ell: int) -> int:
    """max of three proven bounds (docs/ordering.md, section 2): averaging of the k smallest,
    one chunk placed first everywhere, and Q(ell) >= Q(ell - 1) + 1 chained from ell = 1."""
    total = shape.total
    work = sum(load * (load + 1) // 2 for load in shape.loads)  # sum over all (i, j) of r_j(i)

    def averaging(e: int) -> int:
        # min_i B_i <= min_i (k_i / h_i) R_i <= sum_i R_i / sum_i (h_i / k_i)
        weight = sum(len(h) / (len(h) - e + 1) for h in shape.holder_loads)
        if e == 1:
            return 1 + total - work // len(shape.holder_loads)
        return 1 + total - math.floor(work / weight + 1e-9)

    first = 1 + total - min(sum(h[: len(h) - ell + 1]) for h in shape.holder_loads)
    return max(averaging(ell), first, averaging(1) + ell - 1)


def _counting_feasible(shape: _Shape, ell: int, w: int) -> bool | None:
    """Is the counting relaxation feasible with every chunk at B_i >= w? None if too large.

    Relaxation: each worker contributes the r values 1..load_j once; each chunk receives h_i of
    them; only the global count of each value is kept. A chunk's values form a monotone path
    (value v, values <= v so far, B so far capped at w) in a layered network; a fractional flow
    of N_h units per replication class h, with the value counts as side constraints, exists
    whenever a real ordering has min_i B_i >= w. Infeasible => every ordering has B_i < w.
    """
    top = max(shape.loads)
    classes: dict[int, int] = {}
    for h in shape.holder_loads:
        classes[len(h)] = classes.get(len(h), 0) + 1
    nodes = sum((top + 1) * (h + 1) * (w + 1) for h in classes)
    if nodes > COUNTING_LP_MAX_NODES:
        return None
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    rhs_parts: list[np.ndarray] = []
    marg_rows: list[np.ndarray] = []
    marg_cols: list[np.ndarray] = []
    marg_vals: list[np.ndarray] = []
    n_var = 0
    n_row = 0
    for h, count in sorted(classes.items()):
        t = h - ell + 1
        v, b, a = np.meshgrid(np.arange(top + 1), np.arange(h + 1), np.arange(w + 1), indexing="ij")
        # keep only nodes on some source-sink path: B so far lies between its least and most
        # possible values (b_0 = 0 forces t at value 0) and can still reach w
        short = np.maximum(0, t - b)
        least = np.where(v == 0, 0, np.minimum(w, t + (v - 1) * short))
        most = np.minimum(w, t * v)
        alive = (a >= least) & (a <= most) & ((a == w) | (a + (top - v) * short >= w))
        alive &= (v > 0) | (b == 0)
        node = np.full(alive.shape, -1)
        node[alive] = np.arange(int(alive.sum())) + n_row
        # add edges: one more element of value v (v >= 1), same layer
        add = alive & (v >= 1) & (b < h)
        add_dst = np.full(alive.shape, -1)
        add_dst[add] = node[v[add], b[add] + 1, a[add]]
        add &= add_dst >= 0
        src_add, dst_add = node[add], add_dst[add]
        # advance edges: close value v, B grows by max(0, t - b)
        adv = alive & (v < top)
        adv_dst = np.full(alive.shape, -1)
        adv_dst[adv] = node[v[adv] + 1, b[adv], np.minimum(w, a[adv] + short[adv])]
        adv &= adv_dst >= 0
        src_adv, dst_adv = node[adv], adv_dst[adv]
        src = np.concatenate([src_add, src_adv])
        dst = np.concatenate([dst_add, dst_adv])
        edge_ids = np.arange(len(src)) + n_var
        rows += [src, dst]
        cols += [edge_ids, edge_ids]
        vals += [-np.ones(len(src)), np.ones(len(src))]
        rhs = np.zeros(int(alive.sum()))
        if node[top, h, w] < 0:
            return False  # no chunk of this class can reach B >= w at all
        rhs[node[0, 0, 0] - n_row] = -count  # source (0, 0, 0) sends the class's chunks
        rhs[node[top, h, w] - n_row] = count  # sink (top, h, w) absorbs them
        rhs_parts.append(rhs)
        layer = v[adv]
        inner = layer >= 1
        marg_rows.append(layer[inner] - 1)
        marg_cols.append(edge_ids[len(src_add) :][inner])
        marg_vals.append(b[adv][inner].astype(float))
        n_var += len(src)
        n_row += len(rhs)
    if top > 1:
        targets = np.array(
            [sum(min(value, load) for load in shape.loads) for value in range(1, top)], float
        )
        rows.append(np.concatenate(marg_rows) + n_row)
        cols.append(np.concatenate(marg_cols))
        vals.append(np.concatenate(marg_vals))
        rhs_parts.append(targets)
        n_row += top - 1
    matrix = coo_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_row, n_var)
    ).tocsr()
    # a path has at most top + h + 1 edges: a bound on the total flow for the certificate check
    flow_cap = sum(count * (top + h + 1) for h, count in classes.items())
    return not _proved_infeasible(matrix, np.concatenate(rhs_parts), flow_cap)


def _proved_infeasible(matrix: csr_array, rhs: np.ndarray, flow_cap: float) -> bool:
    """True only if {matrix x = rhs, x >= 0} is infeasible *and* a Farkas certificate checks out.

    The solver's verdict is not trusted alone: we solve max rhs.y s.t. matrix^T y <= 0, |y| <= 1,
    and accept y if rhs.y exceeds what any x >= 0 with sum(x) <= flow_cap could produce through
    the (floating-point) violations of matrix^T y <= 0. Undecided or unverified means "maybe
    feasible", which only weakens the bound.
    """
    n_row, n_var = matrix.shape
    options = {"time_limit": _LP_SECONDS}
    primal = linprog(
        np.zeros(n_var),
        A_eq=matrix,
        b_eq=rhs,
        bounds=(0, None),
        method=_LP_METHOD,
        options=options,
    )
    if primal.status != 2:
        return False
    farkas = linprog(
        -rhs,
        A_ub=matrix.T.tocsr(),
        b_ub=np.zeros(n_var),
        bounds=(-1, 1),
        method=_LP_METHOD,
        options=options,
    )
    if farkas.status != 0 or farkas.x is None:
        return False
    y = farkas.x
    violation = max(0.0, float(np.max(matrix.T @ y, initial=0.0)))
    return float(rhs @ y) - violation * flow_cap > 1e-7 * (1.0 + float(np.abs(rhs).sum()))


def _search_w(shape: _Shape, ell: int, known_w: int) -> int | None:
    """Largest w <= the simple ceiling at which the counting LP is feasible (None: too big)."""
    lo, hi = known_w, shape.total + 1 - _simple_bound(shape, ell)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        feasible = _counting_feasible(shape, ell, mid)
        if feasible is None:
            return None
        if feasible:
            lo = mid
        else:
            hi = mid - 1
    return lo


@lru_cache(maxsize=1024)
def _regular_w(load: int, ell: int) -> int | None:
    """The counting LP of the regular class scaled to one worker and one chunk: it depends on
    (load, ell) only, so one solve serves every m. The balanced order's B = t(t+1)/2 is feasible."""
    shape = _Shape((load,), ((load,) * load,))
    t = load - ell + 1
    return _search_w(shape, ell, t * (t + 1) // 2)


@lru_cache(maxsize=256)
def _shape_bound(shape: _Shape, ell: int, known_w: int) -> int:
    """The best bound for ``shape``: simple bounds, improved by the counting LP when it fits."""
    simple = _simple_bound(shape, ell)
    loads = set(shape.loads) | {len(h) for h in shape.holder_loads}
    if len(shape.loads) == len(shape.holder_loads) and len(loads) == 1:
        best = _regular_w(shape.loads[0], ell)
    else:
        best = _search_w(shape, ell, known_w)
    return simple if best is None else max(simple, shape.total + 1 - best)


def lower_bound(
    order_or_assignment: Sequence[Sequence[int]], chunks: int, ell: int = 1
) -> int | float:
    """A proven lower bound on Q_max(ell) over every ordering of this assignment.

    ell = 1: 1 + ceil(mean_i f_i), the averaging bound (sum_i of the positions term does not
    depend on the order); on the regular class 1 + m*load - load(load+1)/2, met by ``balanced``.
    ell > 1: the best of simple averaging/chaining bounds and the counting relaxation (an LP on
    the global count of each r value; see ``_counting_feasible`` and docs/ordering.md). On the
    regular class this equals PROTOCOLS.md's Q*(ell) when load <= 4, ell in {1, load-1, load} or
    (load, ell) = (5, 2), so Q* is optimal there; for every other (load, ell) with load <= 16 it
    is lower, and orders below Q*(ell) do exist (cyclic m=6, load=5, ell=3: 24 < 25): Q*(ell) is
    not a lower bound in general. math.inf if a chunk has fewer than ``ell`` holders (no ordering
    can decode). The LP runs in floating point (HiGHS); infeasibility is only used after its
    Farkas certificate checks out, so numerical trouble can weaken the bound but not break it.
    """
    _check_order(order_or_assignment, chunks)
    _check_ell(ell)
    shape = _shape(order_or_assignment, chunks)
    if any(len(h) < ell for h in shape.holder_loads):
        return math.inf
    if ell == 1:
        return _simple_bound(shape, 1)
    # any real ordering is feasible for the relaxation: start the search at the given one
    known = shape.total + 1 - q_max(order_or_assignment, chunks, ell)
    return _shape_bound(shape, ell, int(known))


# --------------------------------------------------------------------------- regular class


def is_regular(assignment: Sequence[Sequence[int]], chunks: int) -> bool:
    """N = m, every worker holds ``load`` chunks and every chunk is on ``load`` workers."""
    if chunks != len(assignment) or not assignment:
        return False
    load = len(assignment[0])
    if load == 0 or any(len(w) != load for w in assignment):
        return False
    return all(r == load for r in asg.replication([list(w) for w in assignment], chunks))


def is_balanced(order: Sequence[Sequence[int]], chunks: int) -> bool:
    """Whether every chunk appears exactly once at every position (regular class only)."""
    if not is_regular(order, chunks):
        return False
    load = len(order[0])
    return all(sorted(w[k] for w in order) == list(range(chunks)) for k in range(load))


def balanced(assignment: asg.Assignment, chunks: int) -> Order:
    """The position-balanced order of a regular assignment.

    The worker/chunk incidence is a load-regular bipartite graph, so it has a perfect matching
    (Konig/Hall) and removing one leaves a (load-1)-regular graph: ``load`` rounds of maximum
    matching split it into perfect matchings M_0..M_{load-1}; worker j processes at step k its
    chunk in M_k. Every chunk then sits once at every position, all f_i are equal, and Q_max(1)
    meets the averaging bound.
    """
    _check_order(assignment, chunks)
    if not is_regular(assignment, chunks):
        raise ValueError(
            "balanced order needs a regular assignment (chunks = workers, every worker holds "
            "`load` chunks and every chunk is on `load` workers); use method='milp' or "
            "'heuristic' otherwise"
        )
    m = len(assignment)
    load = len(assignment[0])
    rows = np.repeat(np.arange(m), load)
    cols = np.array([c for held in assignment for c in held])
    steps: list[np.ndarray] = []
    for _ in range(load):
        graph = csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(m, m))
        match = maximum_bipartite_matching(graph, perm_type="column")
        if (match < 0).any():  # pragma: no cover - impossible for a regular graph
            raise RuntimeError("matching decomposition failed on a regular assignment")
        steps.append(match)
        keep = match[rows] != cols
        rows, cols = rows[keep], cols[keep]
    return [[int(steps[k][j]) for k in range(load)] for j in range(m)]


# --------------------------------------------------------------------------- integer program


@dataclass(frozen=True)
class IntegerProgramResult:
    """The integer program's order and what it proved."""

    order: Order
    q_max: int | float
    optimal: bool  # HiGHS proved optimality (else the time limit stopped it)
    bound: int | float  # best proven lower bound on Q_max(ell) (HiGHS's or ``lower_bound``)


def milp_size(assignment: Sequence[Sequence[int]]) -> int:
    """Number of 0/1 variables x[j, i, p] of the integer program: sum_j load_j^2."""
    return sum(len(w) ** 2 for w in assignment)


def integer_program(
    assignment: asg.Assignment, chunks: int, ell: int = 1, time_limit: float = 60.0
) -> IntegerProgramResult:
    """Minimize Q_max(ell) exactly with scipy.optimize.milp (HiGHS).

    x[j,i,p] = 1 iff worker j processes chunk i at position p (assignment constraints both ways);
    z >= f_i for every chunk, with the top-(ell-1) sum of r_j(i) linearized by its dual
    (u_i, v_ij >= 0, v_ij >= r_j(i) - u_i): f_i = A_i + sum_j p_j(i) + (ell-1) u_i + sum_j v_ij.
    z starts at ``lower_bound`` - 1, so HiGHS stops as soon as it meets the bound.
    """
    _check_order(assignment, chunks)
    _check_ell(ell)
    bound = lower_bound(assignment, chunks, ell)
    if math.isinf(bound):
        order = natural(assignment)
        return IntegerProgramResult(order, math.inf, True, bound)
    loads = [len(w) for w in assignment]
    total = sum(loads)
    owners = asg.holders(assignment, chunks)
    x_index: dict[tuple[int, int, int], int] = {}
    for j, held in enumerate(assignment):
        for i in held:
            for p in range(loads[j]):
                x_index[(j, i, p)] = len(x_index)
    n_x = len(x_index)
    u_index = {i: n_x + i for i in range(chunks)}
    n_var = n_x + chunks
    v_index: dict[tuple[int, int], int] = {}
    if ell > 1:
        for i in range(chunks):
            for j in owners[i]:
                v_index[(i, j)] = n_var
                n_var += 1
    z = n_var
    n_var += 1
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lower: list[float] = []
    upper: list[float] = []

    def constraint(entries: list[tuple[int, float]], lo: float, hi: float) -> None:
        row = len(lower)
        for col, val in entries:
            rows.append(row)
            cols.append(col)
            vals.append(val)
        lower.append(lo)
        upper.append(hi)

    for j, held in enumerate(assignment):
        for i in held:
            constraint([(x_index[(j, i, p)], 1.0) for p in range(loads[j])], 1, 1)
        for p in range(loads[j]):
            constraint([(x_index[(j, i, p)], 1.0) for i in held], 1, 1)
    for i in range(chunks):
        outside = total - sum(loads[j] for j in owners[i])
        entries: list[tuple[int, float]] = [(z, 1.0)]
        for j in owners[i]:
            entries += [(x_index[(j, i, p)], -float(p)) for p in range(loads[j])]
            if ell > 1:
                entries.append((v_index[(i, j)], -1.0))
                # v_ij + u_i + p_j(i) >= load_j, i.e. v_ij >= r_j(i) - u_i
                constraint(
                    [(v_index[(i, j)], 1.0), (u_index[i], 1.0)]
                    + [(x_index[(j, i, p)], float(p)) for p in range(loads[j])],
                    loads[j],
                    np.inf,
                )
        if ell > 1:
            entries.append((u_index[i], -(ell - 1.0)))
        constraint(entries, outside, np.inf)
    matrix = coo_array((vals, (rows, cols)), shape=(len(lower), n_var)).tocsr()
    cost = np.zeros(n_var)
    cost[z] = 1.0
    integrality = np.zeros(n_var)
    integrality[:n_x] = 1
    lb = np.zeros(n_var)
    ub = np.full(n_var, np.inf)
    ub[:n_x] = 1
    lb[n_x : n_x + chunks] = -np.inf
    lb[z] = bound - 1
    result = _scipy_milp(
        cost,
        constraints=LinearConstraint(matrix, lower, upper),
        integrality=integrality,
        bounds=Bounds(lb, ub),
        options={"time_limit": float(time_limit)},
    )
    if result.x is None:
        raise RuntimeError(
            f"integer program found no ordering within {time_limit} s ({result.message})"
        )
    order: Order = []
    for j, held in enumerate(assignment):
        slots = [-1] * loads[j]
        for i in held:
            p = max(range(loads[j]), key=lambda q, i=i, j=j: result.x[x_index[(j, i, q)]])
            slots[p] = int(i)
        if sorted(slots) != sorted(held):  # pragma: no cover - HiGHS returned a non-integral x
            raise RuntimeError(f"integer program returned no permutation for worker {j}")
        order.append(slots)
    value = q_max(order, chunks, ell)
    proven = result.status == 0
    dual = getattr(result, "mip_dual_bound", None)
    best_bound = int(bound)
    if dual is not None and np.isfinite(dual):
        best_bound = max(best_bound, math.ceil(dual - 1e-6) + 1)
    if proven:
        best_bound = max(best_bound, int(value))
    return IntegerProgramResult(order, value, bool(proven), min(best_bound, int(value)))


# --------------------------------------------------------------------------- heuristic


#: Stands for "no K-th smallest value" in ``_Search.thr``: above every r value.
_FAR = 1 << 40


class _Search:
    """Mutable state of the local search, held in arrays so that every swap touching a set of
    chunks is scored at once (numpy) instead of one sort per trial.

    Chunk i's holders are ``holders[i, :count[i]]`` (ascending, as ``asg.holders``), i sits at
    position ``pos[i, k]`` of its k-th holder, and ``order[j, p]`` is worker j's p-th chunk, the
    ``slot[j, p]``-th holder slot of that chunk. The score of a swap needs f_i after one r value
    of a chunk changes: with S the sorted r values of chunk i and K = h_i - ell + 1, removing its
    k-th holder's value x from S and inserting y gives B_i = base[i, k] + min(y, thr[i, k]),
    where (base, thr) = (sum of S[:K] - x, S[K]) if x <= S[K - 1] (x was among the K smallest;
    S[K] is _FAR when K = h_i) and (sum of S[:K - 1], S[K - 1]) otherwise. ``base_at`` and
    ``thr_at`` hold the same two numbers indexed by (worker, position).

    ``stuck[i] == top`` records that chunk i had no improving swap the last time the maximum f was
    ``top``. Its swaps are scored from its own row and from ``base_at``/``thr_at`` at its holders,
    which a swap changes only at the holders of the two chunks it touches, so ``swap`` forgets the
    record of every chunk held there; plateaus then rescore a few hundred chunks, not all of them.
    """

    def __init__(self, order: Order, chunks: int, ell: int) -> None:
        self.ell = ell
        self.loads = np.array([len(w) for w in order], dtype=np.int64)
        self.total = int(self.loads.sum())
        self.width = max(1, int(self.loads.max(initial=0)))
        owners = asg.holders(order, chunks)
        self.count = [len(w) for w in owners]
        span = max(1, max(self.count, default=1))
        workers = len(order)
        self.holders = np.full((chunks, span), -1, dtype=np.int64)
        self.pos = np.zeros((chunks, span), dtype=np.int64)
        self.order = np.full((workers, self.width), -1, dtype=np.int64)
        self.slot = np.zeros((workers, self.width), dtype=np.int64)
        slot_of: dict[tuple[int, int], int] = {}
        for i, held_by in enumerate(owners):
            self.holders[i, : len(held_by)] = held_by
            for k, j in enumerate(held_by):
                slot_of[(j, i)] = k
        for j, held in enumerate(order):
            for p, i in enumerate(held):
                k = slot_of[(j, i)]
                self.order[j, p], self.slot[j, p], self.pos[i, k] = i, k, p
        self.base = np.zeros((chunks, span), dtype=np.int64)
        self.thr = np.full((chunks, span), _FAR, dtype=np.int64)
        self.base_at = np.zeros((workers, self.width), dtype=np.int64)
        self.thr_at = np.full((workers, self.width), _FAR, dtype=np.int64)
        self.f = np.zeros(chunks, dtype=np.int64)
        self.stuck = np.full(chunks, -1, dtype=np.int64)
        for i in range(chunks):
            self._refresh(i)

    def _refresh(self, i: int) -> None:
        """Recompute f_i and chunk i's (base, thr) after its positions changed."""
        h = self.count[i]
        workers = self.holders[i, :h].tolist()
        positions = self.pos[i, :h].tolist()
        values = [int(self.loads[j]) - p for j, p in zip(workers, positions, strict=True)]
        ranked = sorted(values)
        k_small = h - self.ell + 1
        kept = sum(ranked[:k_small])
        self.f[i] = self.total - kept
        cut = ranked[k_small - 1]
        above = ranked[k_small] if k_small < h else _FAR
        for k, (j, p, x) in enumerate(zip(workers, positions, values, strict=True)):
            base, thr = (kept - x, above) if x <= cut else (kept - cut, cut)
            self.base[i, k] = self.base_at[j, p] = base
            self.thr[i, k] = self.thr_at[j, p] = thr

    def score(self, chunks: np.ndarray) -> tuple[np.ndarray, ...]:
        """For every swap of each given chunk with another position at one of its holders:
        (f of the moved chunk, f of the chunk it swaps with, whether the swap exists), each of
        shape (len(chunks), holder slot, new position q)."""
        held_by = self.holders[chunks]
        live = held_by >= 0
        workers = np.where(live, held_by, 0)
        here = self.pos[chunks]
        loads = self.loads[workers]
        q = np.arange(self.width)
        moved = self.total - (
            self.base[chunks][..., None]
            + np.minimum(loads[..., None] - q, self.thr[chunks][..., None])
        )
        other = self.total - (
            self.base_at[workers] + np.minimum((loads - here)[..., None], self.thr_at[workers])
        )
        exists = live[..., None] & (q < loads[..., None]) & (q != here[..., None])
        return moved, other, exists

    def swap(self, j: int, p: int, q: int) -> None:
        a, b = int(self.order[j, p]), int(self.order[j, q])
        ka, kb = int(self.slot[j, p]), int(self.slot[j, q])
        self.order[j, p], self.order[j, q] = b, a
        self.slot[j, p], self.slot[j, q] = kb, ka
        self.pos[a, ka], self.pos[b, kb] = q, p
        self._refresh(a)
        self._refresh(b)
        touched = np.concatenate(
            [self.holders[a, : self.count[a]], self.holders[b, : self.count[b]]]
        )
        near = self.order[touched]
        self.stuck[near[near >= 0]] = -1

    def orders(self) -> Order:
        return [
            row[:load] for row, load in zip(self.order.tolist(), self.loads.tolist(), strict=True)
        ]


def _greedy(assignment: asg.Assignment, chunks: int, rng: random.Random) -> Order:
    """Fill positions 0, 1, ...; each worker takes the held chunk whose f_i would be largest if
    all its unplaced copies went at the current position (the most urgent one)."""
    loads = [len(w) for w in assignment]
    total = sum(loads)
    owners = asg.holders(assignment, chunks)
    acc = [total - sum(loads[j] for j in owners[i]) for i in range(chunks)]
    unplaced = [len(owners[i]) for i in range(chunks)]
    left = [set(w) for w in assignment]
    order: Order = [[] for _ in assignment]
    workers = list(range(len(assignment)))
    for p in range(max(loads, default=0)):
        rng.shuffle(workers)
        for j in workers:
            if p >= loads[j]:
                continue
            pick = max(sorted(left[j]), key=lambda c: (acc[c] + unplaced[c] * p, rng.random()))
            left[j].discard(pick)
            order[j].append(pick)
            acc[pick] += p
            unplaced[pick] -= 1
    return order


def _improving_move(state: _Search, critical: list[int], top: int) -> tuple[int, int, int] | None:
    """The first chunk of ``critical`` (in its order) with a swap at one of its holders that
    brings both swapped chunks below ``top``; of its swaps the one with the smallest new max,
    then smallest sum of squares, then (worker, position, new position). Chunks already known to
    have none at this ``top`` (``_Search.stuck``) are skipped; the others are scored in growing
    blocks: usually the first few have a move."""
    order = np.array(critical, dtype=np.int64)
    unknown = order[state.stuck[order] != top]
    # at most about 2^20 scored swaps (a few arrays of 8 MB) at once, whatever m and load are
    cap = max(8, (1 << 20) // (state.holders.shape[1] * state.width))
    start, block = 0, 8
    while start < len(unknown):
        ids = unknown[start : start + block]
        moved, other, exists = state.score(ids)
        worst = np.maximum(moved, other)
        better = exists & (worst < top)
        has = better.any(axis=(1, 2))
        state.stuck[ids[~has]] = top
        if has.any():
            c = int(np.argmax(has))
            slots, targets = np.nonzero(better[c])
            chunk = int(ids[c])
            candidates = []
            for k, q in zip(slots.tolist(), targets.tolist(), strict=True):
                fa, fb = int(moved[c, k, q]), int(other[c, k, q])
                j = int(state.holders[chunk, k])
                p = int(state.pos[chunk, k])
                candidates.append((max(fa, fb), fa * fa + fb * fb, j, p, q))
            return min(candidates)[2:]
        start += block
        block = min(4 * block, cap)
    return None


def _local_search(
    state: _Search, rng: random.Random, iterations: int, target: int | float
) -> tuple[int, Order]:
    """Lower the number of chunks at the maximum f until it drops; random plateau moves when
    stuck. Returns (best max f, its order)."""
    best_f = int(state.f.max())
    best_count = int((state.f == best_f).sum())
    best_order = state.order.copy()
    for _ in range(iterations):
        top = int(state.f.max())
        if top + 1 <= target:
            break
        critical = np.flatnonzero(state.f == top).tolist()
        rng.shuffle(critical)
        move = _improving_move(state, critical, top)
        if move is None:  # plateau: a random swap of a critical chunk that keeps max f <= top
            i = rng.choice(critical)
            moved, other, exists = state.score(np.array([i], dtype=np.int64))
            slots, targets = np.nonzero(exists[0] & (np.maximum(moved, other)[0] <= top))
            sideways = [
                (int(state.holders[i, k]), int(state.pos[i, k]), q)
                for k, q in zip(slots.tolist(), targets.tolist(), strict=True)
            ]
            if not sideways:
                break
            move = rng.choice(sideways)
        state.swap(*move)
        top = int(state.f.max())
        count = int((state.f == top).sum())
        if (top, count) < (best_f, best_count):
            best_f, best_count = top, count
            best_order = state.order.copy()
    state.order = best_order
    return best_f, state.orders()


def heuristic(
    assignment: asg.Assignment,
    chunks: int,
    ell: int = 1,
    seed: int = 0,
    iterations: int = 2000,
    start: Order | None = None,
) -> Order:
    """Greedy start + local search on single-worker swaps, minimizing Q_max(ell).

    Starts from the balanced order (regular class), the greedy order and the natural order, or
    only from ``start`` when given (to improve an existing order). Each run takes up to
    ``iterations`` steps that move a chunk at the maximum f_i earlier at one holder while the
    chunk it swaps with stays below the maximum, with random sideways moves on plateaus. Stops
    early at ``lower_bound``. Deterministic for a given seed (no wall-clock limits).
    """
    _check_order(assignment, chunks)
    _check_ell(ell)
    bound = lower_bound(assignment, chunks, ell)
    if math.isinf(bound):
        return natural(assignment)
    rng = random.Random(int(generator(seed, "ordering.heuristic").integers(2**63)))
    if start is not None:
        if [sorted(w) for w in start] != [sorted(w) for w in assignment]:
            raise ValueError("start must be an ordering of the assignment (same sets per worker)")
        starts = [natural(start)]
    else:
        starts = [_greedy(assignment, chunks, rng), natural(assignment)]
        if is_regular(assignment, chunks):
            starts.insert(0, balanced(assignment, chunks))
    best: tuple[int, Order] | None = None
    for start in starts:
        found = _local_search(_Search(start, chunks, ell), rng, iterations, bound)
        if best is None or found[0] < best[0]:
            best = found
        if best[0] + 1 <= bound:
            break
    assert best is not None
    return best[1]


# --------------------------------------------------------------------------- front door

METHODS = ("auto", "regular", "milp", "heuristic")


def _improve_for_ell(
    assignment: asg.Assignment, chunks: int, ell: int, start: Order, seed: int
) -> Order:
    """``start`` (a balanced order of a regular assignment) if it meets ``lower_bound`` at this
    ell, else the heuristic's order when that is strictly better for this ell.

    A balanced order gives every chunk the r values 1..load, so Q_max(ell) = Q*(ell), which is
    optimal for ell = 1 and ell >= load - 1 but can be beaten in between (docs/ordering.md,
    section 2). The heuristic includes the balanced order among its starts and keeps its best,
    so the result is never worse than ``start``; it is seeded and iteration-bounded, so the same
    inputs give the same order on every machine.
    """
    if ell == 1 or q_max(start, chunks, ell) <= lower_bound(assignment, chunks, ell):
        return start
    found = heuristic(assignment, chunks, ell, seed)
    return found if q_max(found, chunks, ell) < q_max(start, chunks, ell) else start


def optimal(
    assignment: asg.Assignment,
    chunks: int,
    ell: int = 1,
    method: str = "auto",
    seed: int = 0,
    time_limit: float = AUTO_MILP_SECONDS,
) -> Order:
    """An ordering minimizing (or, where no proof is at hand, trying to minimize) Q_max(ell).

    ``"regular"`` (regular class only; deterministic, what a run's ``ordering: optimal`` uses):
    the balanced order, which meets ``lower_bound`` for ell = 1, ell >= load - 1 and every ell
    when load <= 4; at any other ell where it misses the bound, the seeded local search's order
    if that is better for this ell (never worse; it may still miss the bound: m = 7, load 5,
    ell 3 stays at Q* = 30 against a bound of 29, docs/ordering.md). ``"milp"``: the exact
    integer program (small cases). ``"heuristic"``: greedy + local search. ``"auto"``: on the
    regular class the natural order if it is already balanced, else ``balanced``, improved for
    ell as in ``"regular"`` and then, if still above the bound and small enough
    (<= AUTO_MILP_BINARIES variables), by the time-limited integer program; on other assignments
    the integer program when small (falling back to the better of it and the heuristic on
    timeout), the heuristic otherwise.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_order(assignment, chunks)
    _check_ell(ell)
    if any(r < ell for r in asg.replication([list(w) for w in assignment], chunks)):
        return natural(assignment)  # Q_max is infinite for every ordering
    if method == "regular":
        return _improve_for_ell(assignment, chunks, ell, balanced(assignment, chunks), seed)
    if method == "milp":
        return integer_program(assignment, chunks, ell, time_limit).order
    if method == "heuristic":
        return heuristic(assignment, chunks, ell, seed)
    if is_regular(assignment, chunks):
        start = (
            natural(assignment) if is_balanced(assignment, chunks) else balanced(assignment, chunks)
        )
        order = _improve_for_ell(assignment, chunks, ell, start, seed)
        value = q_max(order, chunks, ell)
        if value <= lower_bound(assignment, chunks, ell) or milp_size(assignment) > (
            AUTO_MILP_BINARIES
        ):
            return order
        solved = integer_program(assignment, chunks, ell, time_limit)
        return solved.order if solved.q_max < value else order
    if milp_size(assignment) <= AUTO_MILP_BINARIES:
        solved = integer_program(assignment, chunks, ell, time_limit)
        if solved.optimal:
            return solved.order
        fallback = heuristic(assignment, chunks, ell, seed)
        return min((solved.order, fallback), key=lambda o: q_max(o, chunks, ell))
    return heuristic(assignment, chunks, ell, seed)


ORDERINGS = ("natural", "random", "optimal")


#: What ``ordering_report`` costs, measured on 2 busy cores: about 20 us and 600 bytes per
#: assignment entry (m x load: lists, the Q_max pass, JSON; m = 1,000,000, load 1: 26 s and
#: 780 MB) plus 1.6 us per m x load^2 for the lower bounds of every ell (cyclic m = 300,
#: load 300: 48 s), whose cached shapes hold up to 40 bytes per entry for each of up to 256
#: ells (1 GB there); printing the table (``gcsim ordering`` without --json) about 1.2 ms a
#: worker (m = 50,000: 57 s).
REPORT_ENTRY_SECONDS, REPORT_BOUND_SECONDS, REPORT_TABLE_SECONDS = 20e-6, 1.6e-6, 1.2e-3
#: ``--ordering optimal --ell E`` where the balanced order misses the bound runs the local search:
#: about 300 us CPU per assignment entry (random_regular, load 5 and 10: m = 1000, 3.3 s;
#: m = 5000, 7.6 s and 10.9 s).
REPORT_SEARCH_SECONDS = 300e-6
REPORT_ENTRY_BYTES, REPORT_SHAPE_BYTES = 600, 40
#: ``gcsim ordering`` refuses a size expected to take longer than this: an inspection command
#: that answers in seconds at any size worth printing (m = 1,000,000, load 1: 26 s).
REPORT_LIMIT_SECONDS = 120.0


class ReportCost(NamedTuple):
    """What ``gcsim ordering`` is expected to cost: seconds computing, seconds printing the
    table (0 with --json), bytes."""

    seconds: float
    table_seconds: float
    bytes: float


def balanced_is_optimal(load: int, ell: int) -> bool:
    """Whether the balanced order is proven optimal at this (load, ell) on the regular class
    (docs/ordering.md section 2: ell = 1, ell >= load - 1, load <= 4, (5, 2)); elsewhere
    ``optimal`` searches below Q*(ell)."""
    return ell == 1 or ell >= load - 1 or load <= 4 or (load, ell) == (5, 2)


def report_cost(workers: int, load: int, table: bool = False, optimize_ell: int = 1) -> ReportCost:
    """The cost of ``ordering_report(workers, load)``, plus printing its table when ``table``
    and the search of an optimal order for ``optimize_ell`` where the balanced one is not proven
    optimal (see the constants above): so the command can refuse a size that would not finish or
    fit before it starts."""
    m, load = float(min(workers, 10**300)), float(min(load, 10**300))
    entries = m * load
    seconds = REPORT_ENTRY_SECONDS * entries + REPORT_BOUND_SECONDS * entries * load
    if not balanced_is_optimal(int(load), optimize_ell):
        seconds += REPORT_SEARCH_SECONDS * entries
    size = entries * (REPORT_ENTRY_BYTES + REPORT_SHAPE_BYTES * min(load, 256.0))
    return ReportCost(seconds, REPORT_TABLE_SECONDS * m if table else 0.0, size)


def _json_number(x: int | float) -> int | None:
    """ints stay ints; infinity becomes None (JSON has no infinity)."""
    return None if math.isinf(x) else int(x)


def ordering_report(
    workers: int,
    load: int,
    assignment: str = "cyclic",
    ordering: str = "natural",
    seed: int = 0,
    degree: int | None = None,
    ell: int = 1,
) -> dict:
    """Q_max and its lower bound for ell = 1..load of a named assignment and ordering.

    Backs ``gcsim ordering``. Keys: ``assignment`` (natural lists), ``order``, ``q_max`` and
    ``lower_bound`` (lists indexed by ell - 1; None would mean infinite), ``ell`` (the ell an
    optimal order was optimized for), plus the inputs. Plain ints only, so ``json.dumps`` works.
    ``ordering="optimal"`` minimizes Q_max(ell) for the given ``ell`` (``optimal``, method
    auto): one order need not be best for every ell at once (docs/ordering.md, section 2).
    """
    if ordering not in ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}; choose one of {ORDERINGS}")
    _check_ell(ell)
    if assignment not in asg.GENERATED_ASSIGNMENTS:
        what = "reads a file" if assignment in asg.ASSIGNMENT_KINDS else "is unknown"
        raise ValueError(
            f"assignment {assignment!r} {what}; an ordering report builds one of "
            f"{asg.GENERATED_ASSIGNMENTS} from workers, load and seed"
        )
    if assignment == "graph" and degree is not None and degree + 1 != load:
        raise ValueError(
            f"graph assignment has load = degree + 1, got degree={degree}, load={load}"
        )
    held = asg.build_assignment(assignment, workers, load, seed)
    chunks = workers
    if ordering == "natural":
        order = natural(held)
    elif ordering == "random":
        order = random_order(held, seed)
    else:
        order = optimal(held, chunks, ell, seed=seed)
    return {
        "workers": int(workers),
        "load": int(load),
        "chunks": int(chunks),
        "assignment_name": assignment,
        "ordering_name": ordering,
        "seed": int(seed),
        "ell": int(ell),
        "assignment": natural(held),
        "order": natural(order),
        "q_max": [_json_number(q) for q in q_max_all(order, chunks)[:load]],
        "lower_bound": [_json_number(lower_bound(held, chunks, ell)) for ell in range(1, load + 1)],
    }
