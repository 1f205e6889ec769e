"""Assignments: invariants of every construction, seeds, files and helpful errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.coding import assignment as asg


def _is_regular(a: asg.Assignment, chunks: int, load: int) -> bool:
    return (
        all(len(w) == load and len(set(w)) == load for w in a)
        and asg.replication(a, chunks) == [load] * chunks
    )


# --------------------------------------------------------------------------- basics


def test_cyclic_and_helpers() -> None:
    a = asg.cyclic(4, 3)
    assert a == [[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 1]]
    assert asg.holders(a, 4) == [[0, 2, 3], [0, 1, 3], [0, 1, 2], [1, 2, 3]]
    assert asg.replication(a, 4) == [3, 3, 3, 3]
    assert asg.incidence(a, 4).sum(axis=0).tolist() == [3, 3, 3, 3]
    assert asg.replication([[0], [0, 2]], 4) == [2, 0, 1, 0]
    with pytest.raises(ValueError, match="1 <= load <= workers"):
        asg.cyclic(3, 4)


def test_contiguous() -> None:
    assert asg.contiguous(3, 7) == [[0, 1, 2], [3, 4], [5, 6]]
    with pytest.raises(ValueError, match="chunks >= workers"):
        asg.contiguous(4, 3)


def test_validate_rejects_bad_ids() -> None:
    asg.validate([[0, 1], [1]], 2)
    with pytest.raises(ValueError, match="outside 0..1"):
        asg.validate([[0, 2]], 2)
    with pytest.raises(ValueError, match="twice"):
        asg.validate([[1, 1]], 2)
    with pytest.raises(ValueError, match="not an integer"):
        asg.validate([[0.5]], 2)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one chunk"):
        asg.validate([[]], 0)


# --------------------------------------------------------------------------- frc


def test_frc_groups_hold_identical_blocks() -> None:
    a = asg.frc(6, 3)  # N = m = 6: two groups of 3 workers, blocks {0,1,2} and {3,4,5}
    assert a == [[0, 1, 2]] * 3 + [[3, 4, 5]] * 3
    assert _is_regular(a, 6, 3)
    b = asg.frc(6, 2, chunks=4)  # two blocks of 2 chunks, groups of 3 workers (s = 2)
    assert b == [[0, 1]] * 3 + [[2, 3]] * 3
    assert asg.replication(b, 4) == [3, 3, 3, 3]


def test_frc_errors_say_what_to_fix() -> None:
    with pytest.raises(ValueError, match="load to divide chunks"):
        asg.frc(6, 4)
    with pytest.raises(ValueError, match="divide workers"):
        asg.frc(6, 1, chunks=4)
    with pytest.raises(ValueError, match="1 <= load <= chunks"):
        asg.frc(6, 0)


# --------------------------------------------------------------------------- random regular


@pytest.mark.parametrize(("workers", "load"), [(1, 1), (5, 1), (5, 5), (7, 3), (40, 39), (60, 8)])
def test_random_regular_is_regular(workers: int, load: int) -> None:
    a = asg.random_regular(workers, load, seed=11)
    assert _is_regular(a, workers, load)
    assert all(w == sorted(w) for w in a)


def test_random_regular_seeded() -> None:
    assert asg.random_regular(30, 4, seed=5) == asg.random_regular(30, 4, seed=5)
    assert asg.random_regular(30, 4, seed=5) != asg.random_regular(30, 4, seed=6)
    # different from a relabelled cyclic: some pair of workers shares other than load-1 chunks
    a = asg.random_regular(30, 4, seed=5)
    overlaps = Counter(len(set(a[0]) & set(a[j])) for j in range(1, 30))
    assert overlaps[0] > 0


def test_random_regular_at_1000() -> None:
    a = asg.random_regular(1000, 12, seed=0)  # its speed is measured by `gcsim bench`
    assert _is_regular(a, 1000, 12)


def test_random_regular_errors() -> None:
    with pytest.raises(ValueError, match="load <= workers"):
        asg.random_regular(3, 4, seed=0)
    with pytest.raises(ValueError, match="1 <= load"):
        asg.random_regular(3, 0, seed=0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 25), st.data())
def test_random_regular_property(workers: int, data: st.DataObject) -> None:
    load = data.draw(st.integers(1, workers))
    seed = data.draw(st.integers(0, 2**32 - 1))
    assert _is_regular(asg.random_regular(workers, load, seed), workers, load)


# --------------------------------------------------------------------------- graphs


def _check_closed_neighbourhoods(a: asg.Assignment) -> None:
    for j, held in enumerate(a):
        assert held[0] == j  # own chunk first
        assert held[1:] == sorted(held[1:])
        for i in held[1:]:
            assert j in a[i]  # the graph is undirected


@pytest.mark.parametrize(
    ("workers", "degree"), [(1, 0), (6, 0), (10, 3), (12, 11), (20, 15), (50, 4)]
)
def test_random_graph_closed_neighbourhoods(workers: int, degree: int) -> None:
    a = asg.graph(workers, degree, seed=3)
    _check_closed_neighbourhoods(a)
    assert _is_regular(a, workers, degree + 1)


def test_graph_seeded_and_at_1000() -> None:
    assert asg.graph(40, 5, seed=1) != asg.graph(40, 5, seed=2)
    assert asg.graph(40, 5, seed=1) == asg.graph(40, 5, seed=1)
    a = asg.graph(1000, 10, seed=0)
    assert _is_regular(a, 1000, 11)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 30), st.data())
def test_random_graph_property(workers: int, data: st.DataObject) -> None:
    degree = data.draw(st.integers(0, workers - 1).filter(lambda d: d * workers % 2 == 0))
    seed = data.draw(st.integers(0, 2**32 - 1))
    adjacency = asg.random_regular_graph(workers, degree, seed)
    assert all(len(nb) == degree and v not in nb for v, nb in enumerate(adjacency))
    assert all(u in adjacency[v] for u, nb in enumerate(adjacency) for v in nb)


def test_graph_from_edges() -> None:
    ring = [(j, (j + 1) % 5) for j in range(5)]
    a = asg.graph(5, 2, edges=ring)
    assert a[0] == [0, 1, 4] and a[2] == [2, 1, 3]
    assert _is_regular(a, 5, 3)
    # the same sets as cyclic(5, 3) shifted by one
    assert sorted(map(sorted, a)) == sorted(map(sorted, asg.cyclic(5, 3)))
    star = asg.graph(4, None, edges=[(0, 1), (0, 2), (0, 3)])  # irregular accepted
    assert star == [[0, 1, 2, 3], [1, 0], [2, 0], [3, 0]]


def test_graph_errors() -> None:
    with pytest.raises(ValueError, match="must be even"):
        asg.graph(5, 3, seed=0)
    with pytest.raises(ValueError, match="degree < vertices"):
        asg.graph(5, 5, seed=0)
    with pytest.raises(ValueError, match="needs a seed"):
        asg.graph(6, 3)
    with pytest.raises(ValueError, match="degree"):
        asg.graph(6, None)
    with pytest.raises(ValueError, match="not 2-regular: vertex 0 has degree 3"):
        asg.graph(4, 2, edges=[(0, 1), (0, 2), (0, 3)])
    with pytest.raises(ValueError, match="self-loop"):
        asg.graph(4, None, edges=[(1, 1)])
    with pytest.raises(ValueError, match="appears twice"):
        asg.graph(4, None, edges=[(1, 2), (2, 1)])
    with pytest.raises(ValueError, match="outside 0..3"):
        asg.graph(4, None, edges=[(1, 4)])


# --------------------------------------------------------------------------- files


def test_read_edge_list(tmp_path) -> None:
    path = tmp_path / "g.txt"
    path.write_text("# ring\n0 1\n1,2\n\n2\t0  # closing edge\n")
    assert asg.read_edge_list(path) == [(0, 1), (1, 2), (2, 0)]
    assert asg.graph(3, 2, edges=asg.read_edge_list(path)) == [[0, 1, 2], [1, 0, 2], [2, 0, 1]]
    path.write_text("0 1 2\n")
    with pytest.raises(ValueError, match=r"g.txt:1: expected two vertex ids"):
        asg.read_edge_list(path)
    path.write_text("0 x\n")
    with pytest.raises(ValueError, match="'x' is not an integer"):
        asg.read_edge_list(path)
    path.write_text("0 -1\n")
    with pytest.raises(ValueError, match="non-negative"):
        asg.read_edge_list(path)
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no edges"):
        asg.read_edge_list(path)


def test_explicit_matrix_and_lists(tmp_path) -> None:
    matrix = tmp_path / "m.csv"
    matrix.write_text("1,1,0,0\n0,1,1,0\n0,0,1,1\n1,0,0,1\n")
    assert asg.explicit_from_file(matrix) == [[0, 1], [1, 2], [2, 3], [0, 3]]
    lists = tmp_path / "l.txt"
    lists.write_text("# order matters\n2 0 1\n3 1\n0\n")
    assert asg.explicit_from_file(lists) == [[2, 0, 1], [3, 1], [0]]
    assert asg.explicit_from_file(lists, layout="lists") == [[2, 0, 1], [3, 1], [0]]


def test_explicit_errors(tmp_path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("0 1\n1 0\n")  # a matrix and chunk lists at the same time
    with pytest.raises(ValueError, match="ambiguous"):
        asg.explicit_from_file(path)
    assert asg.explicit_from_file(path, layout="matrix") == [[1], [0]]
    assert asg.explicit_from_file(path, layout="lists") == [[0, 1], [1, 0]]
    path.write_text("1 0 1\n1 1\n")
    with pytest.raises(ValueError, match="line 2 has 2 entries"):
        asg.explicit_from_file(path, layout="matrix")
    path.write_text("0 0 1\n")
    with pytest.raises(ValueError, match="repeats a chunk id"):
        asg.explicit_from_file(path, layout="lists")
    path.write_text("0 2 x\n")
    with pytest.raises(ValueError, match="neither a 0/1 matrix"):
        asg.explicit_from_file(path)
    path.write_text("\n# only a comment\n")
    with pytest.raises(ValueError, match="empty assignment"):
        asg.explicit_from_file(path)
    with pytest.raises(ValueError, match="layout must be"):
        asg.explicit_from_file(path, layout="csv")


def test_incidence_round_trip() -> None:
    a = asg.random_regular(12, 4, seed=9)
    matrix = asg.incidence(a, 12)
    assert [np.flatnonzero(row).tolist() for row in matrix] == a


# --------------------------------------------------------------------------- names


def test_names_a_config_and_the_ordering_command_may_use() -> None:
    assert asg.CONFIG_ASSIGNMENTS == ("cyclic", "random_regular", "graph", "explicit")
    assert asg.GENERATED_ASSIGNMENTS == ("cyclic", "random_regular", "graph", "frc")
    assert set(asg.ASSIGNMENT_KINDS) == {*asg.CONFIG_ASSIGNMENTS, *asg.GENERATED_ASSIGNMENTS}
    with pytest.raises(ValueError, match="unknown assignment 'ring'; choose one of"):
        asg.build_assignment("ring", 6, 3)


def _lists_file(tmp_path, rows: asg.Assignment) -> str:
    (tmp_path / "held.txt").write_text("".join(" ".join(map(str, r)) + "\n" for r in rows))
    return "held.txt"


@pytest.mark.parametrize("name", list(asg.ASSIGNMENT_KINDS))
def test_each_name_needs_what_it_declares(name: str, tmp_path) -> None:
    """A name's declared needs (file, seed, load | workers, chunks != workers) are what its
    builder actually requires, so callers can check them from the registry alone."""
    kind = asg.ASSIGNMENT_KINDS[name]
    file = _lists_file(tmp_path, asg.cyclic(6, 3)) if kind.file == "required" else None
    where = {"file": file, "base_dir": tmp_path}
    seed = 5 if kind.needs_seed(has_file=file is not None) else None
    held = asg.build_assignment(name, 6, 3, seed, **where)
    assert len(held) == 6 and all(len(h) == 3 for h in held)
    assert asg.build_assignment(name, 6, 3, seed, **where) == held
    if seed is not None:
        with pytest.raises(ValueError, match="needs a seed"):
            asg.build_assignment(name, 6, 3, **where)
    if kind.file == "required":
        with pytest.raises(ValueError, match="needs a file"):
            asg.build_assignment(name, 6, 3)
    else:
        (tmp_path / "g.txt").write_text("0 1\n1 2\n2 3\n3 4\n4 5\n5 0\n")  # a 6-cycle
        if kind.file == "never":
            with pytest.raises(ValueError, match="reads no file"):
                asg.build_assignment(name, 6, 3, seed, file="g.txt", base_dir=tmp_path)
        else:  # the edge list replaces the random graph: no seed
            assert not kind.needs_seed(has_file=True)
            ring = asg.build_assignment(name, 6, 3, file="g.txt", base_dir=tmp_path)
            assert ring == [[j, *sorted({(j - 1) % 6, (j + 1) % 6})] for j in range(6)]
        if kind.load_divides_workers:
            with pytest.raises(ValueError, match="divide"):
                asg.build_assignment(name, 8, 3, seed)
        else:
            assert len(asg.build_assignment(name, 8, 3, seed)) == 8
    chunks = 4 if name == "frc" else 8  # frc needs load | chunks
    if kind.any_chunks:
        rows = [[j % chunks, (j + 2) % chunks, (j + 1) % chunks] for j in range(6)]
        if kind.file == "required":
            _lists_file(tmp_path, rows)
        wide = asg.build_assignment(name, 6, 2 if name == "frc" else 3, seed, chunks=chunks,
                                     **where)  # fmt: skip
        assert {c for h in wide for c in h} == set(range(chunks))
    else:
        with pytest.raises(ValueError, match="needs chunks == workers"):
            asg.build_assignment(name, 6, 3, seed, chunks=chunks, **where)


def test_frc_groups_are_consecutive_workers_on_consecutive_blocks() -> None:
    """The grouping the frc protocol uses (N = m): worker j in group j // load, holding that
    group's block of load consecutive chunks in ascending order."""
    for workers in range(1, 25):
        for load in range(1, workers + 1):
            if workers % load:
                with pytest.raises(ValueError, match="divide"):
                    asg.frc(workers, load)
                continue
            held = asg.frc(workers, load)
            assert asg.build_assignment("frc", workers, load) == held
            for j, mine in enumerate(held):
                group = j // load
                assert mine == list(range(group * load, (group + 1) * load))
