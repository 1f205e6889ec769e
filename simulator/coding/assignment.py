"""Assignments: which chunks each worker holds, as one list of chunk ids per worker.

A list's order is the worker's processing order (see ``ordering.py`` for reorderings); the
functions here return the natural order of each construction. All ids are 0-based. Constructions
that draw random numbers take a ``seed`` and use ``simulator.streams.generator`` only, so the same
arguments give the same assignment in any process.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import maximum_bipartite_matching

from simulator.streams import generator

Assignment = list[list[int]]
Edge = tuple[int, int]

#: Consecutive failed draws before the random-graph generator checks whether it is stuck.
_STUCK_CHECK = 64
#: Restarts of a randomized construction before giving up (never reached in practice).
_MAX_RESTARTS = 1000


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


def replication(assignment: Assignment, chunks: int) -> list[int]:
    """How many workers hold each chunk; a 0 means the chunk can never be recovered."""
    counts = [0] * chunks
    for held in assignment:
        for chunk in held:
            counts[chunk] += 1
    return counts


def validate(assignment: Assignment, chunks: int) -> None:
    """Raise ValueError unless every id is an int in [0, chunks) and no worker repeats a chunk.

    It does not require every chunk to be held: callers that need that check ``replication``.
    """
    if chunks < 1:
        raise ValueError(f"need at least one chunk, got chunks={chunks}")
    for worker, held in enumerate(assignment):
        for chunk in held:
            if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer):
                raise ValueError(f"worker {worker}: chunk id {chunk!r} is not an integer")
            if not 0 <= chunk < chunks:
                raise ValueError(
                    f"worker {worker}: chunk id {chunk} outside 0..{chunks - 1} (chunks={chunks})"
                )
        if len(set(held)) != len(held):
            raise ValueError(f"worker {worker} holds a chunk twice: {list(held)}")


def frc(workers: int, load: int, chunks: int | None = None) -> Assignment:
    """Fractional repetition (Tandon et al. 2017): identical workers within disjoint groups.

    Parameters: ``workers`` m, ``load`` chunks per worker, ``chunks`` N (default N = m). The N
    chunks are cut into N / load blocks of ``load`` consecutive ids, the m workers into as many
    groups of g = m * load / N consecutive workers; group k holds block k, every worker the same
    chunks in ascending order. The scheme tolerates s = g - 1 stragglers; with N = m the group
    size is ``load`` (s + 1 = load). Needs load | N and (N / load) | m.
    """
    n_chunks = workers if chunks is None else chunks
    if workers < 1 or n_chunks < 1:
        raise ValueError(f"frc needs workers >= 1 and chunks >= 1, got {workers}, {n_chunks}")
    if not 1 <= load <= n_chunks:
        raise ValueError(f"frc needs 1 <= load <= chunks, got load={load}, chunks={n_chunks}")
    if n_chunks % load:
        raise ValueError(
            f"frc needs load to divide chunks (each group holds a block of `load` chunks): "
            f"load={load}, chunks={n_chunks}"
        )
    groups = n_chunks // load
    if workers % groups:
        raise ValueError(
            f"frc needs chunks/load = {groups} groups to divide workers={workers} "
            f"(groups of s+1 identical workers); with chunks = workers this means load | workers"
        )
    size = workers // groups
    return [list(range((j // size) * load, (j // size + 1) * load)) for j in range(workers)]


def random_regular(workers: int, load: int, seed: int) -> Assignment:
    """A random load-regular assignment with N = m: every worker holds ``load`` distinct chunks
    and every chunk sits on exactly ``load`` workers.

    Built as the union of ``load`` disjoint random perfect matchings (worker -> chunk), each a
    random permutation repaired by swaps, with a matching in the complement as the fallback that
    always succeeds (the complement of a k-regular bipartite graph is (m-k)-regular, so it has a
    perfect matching). Not exactly uniform over regular graphs, but seeded and fast at m = 1000.
    Each worker's natural order is ascending chunk id, so it carries no hidden balance.
    """
    if not 1 <= load <= workers:
        raise ValueError(f"random_regular needs 1 <= load <= workers, got load={load}")
    rng = generator(seed, "assignment.random_regular", workers, load)
    held: list[set[int]] = [set() for _ in range(workers)]
    for _ in range(load):
        perm = _repaired_permutation(held, rng)
        if perm is None:
            perm = _complement_matching(held, rng)
        for worker, chunk in enumerate(perm):
            held[worker].add(int(chunk))
    return [sorted(h) for h in held]


def _repaired_permutation(held: list[set[int]], rng: np.random.Generator) -> list[int] | None:
    """A random permutation avoiding the edges in ``held``, or None if swaps do not find one."""
    m = len(held)
    perm = rng.permutation(m).tolist()
    for row in range(m):
        if perm[row] not in held[row]:
            continue
        for _ in range(4 * m + 64):
            other = int(rng.integers(m))
            if perm[other] not in held[row] and perm[row] not in held[other]:
                perm[row], perm[other] = perm[other], perm[row]
                break
        else:
            return None
    return perm


def _complement_matching(held: list[set[int]], rng: np.random.Generator) -> list[int]:
    """A perfect matching avoiding ``held`` (exists by Konig), found on randomly relabelled ids."""
    m = len(held)
    rows_perm = rng.permutation(m)
    cols_perm = rng.permutation(m)
    dense = np.ones((m, m), dtype=bool)
    for worker, chunks_held in enumerate(held):
        dense[worker, list(chunks_held)] = False
    permuted = csr_array(dense[rows_perm][:, cols_perm].astype(np.int8))
    match = maximum_bipartite_matching(permuted, perm_type="column")
    if (match < 0).any():
        raise RuntimeError("no perfect matching in the complement; the assignment is not regular")
    perm = [0] * m
    for new_row, new_col in enumerate(match):
        perm[int(rows_perm[new_row])] = int(cols_perm[new_col])
    return perm


def graph(
    workers: int,
    degree: int | None,
    seed: int | None = None,
    edges: Iterable[Sequence[int]] | None = None,
) -> Assignment:
    """Graph-based assignment: worker j holds the chunks of its closed neighbourhood {j} U N(j).

    With ``edges`` None, the graph is a random ``degree``-regular simple graph on m = ``workers``
    vertices drawn from ``seed`` (so load = degree + 1 and every chunk has degree + 1 holders).
    With ``edges`` (pairs of vertex ids), that graph is used; if ``degree`` is given every vertex
    must have it, if ``degree`` is None any simple graph is accepted (an irregular assignment).
    Natural order: the worker's own chunk first, then its neighbours ascending.
    """
    if workers < 1:
        raise ValueError(f"graph assignment needs workers >= 1, got {workers}")
    if edges is None:
        if degree is None:
            raise ValueError("graph assignment needs a degree (random graph) or an edge list")
        if seed is None:
            raise ValueError("a random graph needs a seed; pass seed=... or edges=...")
        adjacency = random_regular_graph(workers, degree, seed)
    else:
        adjacency = _adjacency_from_edges(workers, edges)
        if degree is not None:
            wrong = [v for v, nb in enumerate(adjacency) if len(nb) != degree]
            if wrong:
                v = wrong[0]
                raise ValueError(
                    f"edge list is not {degree}-regular: vertex {v} has degree "
                    f"{len(adjacency[v])} ({len(wrong)} vertices differ); pass degree=None to "
                    f"accept an irregular graph"
                )
    return [[j, *sorted(nb)] for j, nb in enumerate(adjacency)]


def random_regular_graph(vertices: int, degree: int, seed: int) -> list[set[int]]:
    """Adjacency sets of a random ``degree``-regular simple graph (Steger-Wormald pairing).

    Points (``degree`` per vertex) are paired uniformly among the pairs that keep the graph simple;
    if that gets stuck the attempt restarts. Dense cases build the sparser complement.
    """
    if vertices < 1:
        raise ValueError(f"need at least one vertex, got {vertices}")
    if not 0 <= degree < vertices:
        raise ValueError(f"a simple {degree}-regular graph needs 0 <= degree < vertices={vertices}")
    if (vertices * degree) % 2:
        raise ValueError(
            f"no {degree}-regular graph on {vertices} vertices: vertices * degree must be even"
        )
    rng = generator(seed, "assignment.graph", vertices, degree)
    complement = degree > (vertices - 1) // 2
    target = vertices - 1 - degree if complement else degree
    for _ in range(_MAX_RESTARTS):
        adjacency = _pairing_attempt(vertices, target, rng)
        if adjacency is not None:
            break
    else:  # pragma: no cover - the pairing succeeds with high probability on every attempt
        raise RuntimeError(f"could not draw a {degree}-regular graph on {vertices} vertices")
    if complement:
        everyone = set(range(vertices))
        adjacency = [everyone - nb - {v} for v, nb in enumerate(adjacency)]
    return adjacency


def _pairing_attempt(vertices: int, degree: int, rng: np.random.Generator) -> list[set[int]] | None:
    """One Steger-Wormald run: pair random points while the pair is simple; None if stuck."""
    points = np.repeat(np.arange(vertices), degree).tolist()
    adjacency: list[set[int]] = [set() for _ in range(vertices)]
    failures = 0
    while points:
        n = len(points)
        a, b = rng.integers(n, size=2).tolist()
        u, v = points[a], points[b]
        if a != b and u != v and v not in adjacency[u]:
            adjacency[u].add(v)
            adjacency[v].add(u)
            for idx in sorted((a, b), reverse=True):
                points[idx] = points[-1]
                points.pop()
            failures = 0
            continue
        failures += 1
        if failures >= _STUCK_CHECK:
            if not _has_simple_pair(points, adjacency):
                return None
            failures = 0
    return adjacency


def _has_simple_pair(points: list[int], adjacency: list[set[int]]) -> bool:
    """Whether some pair of remaining points can still be joined without a loop or multi-edge."""
    distinct = sorted(set(points))
    return any(v not in adjacency[u] for i, u in enumerate(distinct) for v in distinct[i + 1 :])


def _adjacency_from_edges(vertices: int, edges: Iterable[Sequence[int]]) -> list[set[int]]:
    adjacency: list[set[int]] = [set() for _ in range(vertices)]
    for number, edge in enumerate(edges):
        if len(edge) != 2:
            raise ValueError(f"edge {number} is {tuple(edge)!r}, expected a pair (u, v)")
        u, v = (int(x) for x in edge)
        if not (0 <= u < vertices and 0 <= v < vertices):
            raise ValueError(
                f"edge {number} ({u}, {v}) has a vertex outside 0..{vertices - 1} "
                f"(workers={vertices})"
            )
        if u == v:
            raise ValueError(f"edge {number} is a self-loop at {u}; the graph must be simple")
        if v in adjacency[u]:
            raise ValueError(f"edge ({u}, {v}) appears twice; the graph must be simple")
        adjacency[u].add(v)
        adjacency[v].add(u)
    return adjacency


_SPLIT = re.compile(r"[\s,;]+")


#: Largest assignment file read (a dense 0/1 matrix at m = 4,000 is about 32 MB).
MAX_FILE_BYTES = 64 << 20


def _data_lines(path: str | Path) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of the non-blank lines, '#' starting a comment. Only a regular
    file of at most ``MAX_FILE_BYTES`` is read: a FIFO would block, ``/dev/zero`` never ends."""
    out = []
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not a regular file; give a text file of assignments")
    if info.st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {info.st_size:,} bytes, more than an assignment file may "
                         f"hold ({MAX_FILE_BYTES >> 20} MiB)")  # fmt: skip
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((number, [t for t in _SPLIT.split(line) if t]))
    return out


def _int_token(token: str, path: str | Path, number: int) -> int:
    try:
        value = int(token)
    except ValueError:
        raise ValueError(f"{path}:{number}: {token!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{path}:{number}: ids are 0-based and non-negative, got {value}")
    return value


def read_edge_list(path: str | Path) -> list[Edge]:
    """Edges ``u v`` one per line (whitespace or comma separated, '#' comments, 0-based ids)."""
    edges: list[Edge] = []
    for number, tokens in _data_lines(path):
        if len(tokens) != 2:
            raise ValueError(
                f"{path}:{number}: expected two vertex ids 'u v', got {len(tokens)} fields"
            )
        u, v = (_int_token(t, path, number) for t in tokens)
        edges.append((u, v))
    if not edges:
        raise ValueError(f"{path}: no edges found")
    return edges


def explicit_from_file(path: str | Path, layout: str = "auto") -> Assignment:
    """An explicit assignment from a text file, one line per worker (whitespace/comma separated).

    ``layout="matrix"``: each line is a 0/1 row of the workers x chunks incidence matrix (chunk ids
    ascending). ``layout="lists"``: each line lists the worker's chunk ids in processing order.
    ``"auto"`` picks the one that parses; if both do (e.g. rows like ``0 1``) it raises and asks.
    Blank lines and '#' comments are skipped, so a worker with no chunks cannot be written.
    """
    if layout not in ("auto", "matrix", "lists"):
        raise ValueError(f"layout must be 'auto', 'matrix' or 'lists', got {layout!r}")
    lines = _data_lines(path)
    if not lines:
        raise ValueError(f"{path}: empty assignment file")
    as_matrix = _parse_matrix(lines, path) if layout in ("auto", "matrix") else None
    as_lists = _parse_lists(lines, path) if layout in ("auto", "lists") else None
    if layout == "auto":
        if isinstance(as_matrix, list) and isinstance(as_lists, list) and as_matrix != as_lists:
            raise ValueError(
                f"{path}: ambiguous, the file reads both as a 0/1 matrix and as chunk lists; "
                f"pass layout='matrix' or layout='lists'"
            )
        if isinstance(as_matrix, list):
            return as_matrix
        if isinstance(as_lists, list):
            return as_lists
        raise ValueError(f"{path}: neither a 0/1 matrix ({as_matrix}) nor chunk lists ({as_lists})")
    result = as_matrix if layout == "matrix" else as_lists
    if isinstance(result, str):
        raise ValueError(f"{path}: {result}")
    return result


def _parse_matrix(lines: list[tuple[int, list[str]]], path: str | Path) -> Assignment | str:
    """The matrix reading, or a message saying why the file is not one."""
    width = len(lines[0][1])
    rows = []
    for number, tokens in lines:
        if len(tokens) != width:
            return f"line {number} has {len(tokens)} entries, line {lines[0][0]} has {width}"
        if any(t not in ("0", "1") for t in tokens):
            return f"line {number} has an entry other than 0/1"
        rows.append([c for c, t in enumerate(tokens) if t == "1"])
    return rows


def _parse_lists(lines: list[tuple[int, list[str]]], path: str | Path) -> Assignment | str:
    """The per-worker-list reading, or a message saying why the file is not one."""
    rows = []
    for number, tokens in lines:
        try:
            row = [_int_token(t, path, number) for t in tokens]
        except ValueError as exc:
            return str(exc)
        if len(set(row)) != len(row):
            return f"line {number} repeats a chunk id"
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- names


FileUse = Literal["never", "optional", "required"]


def _build_cyclic(request: _Request) -> Assignment:
    return cyclic(request.workers, request.load)


def _build_random_regular(request: _Request) -> Assignment:
    return random_regular(request.workers, request.load, request.need_seed())


def _build_graph(request: _Request) -> Assignment:
    if request.file:
        edges = read_edge_list(request.path())
        return graph(request.workers, request.load - 1, edges=edges)
    return graph(request.workers, request.load - 1, seed=request.need_seed())


def _build_explicit(request: _Request) -> Assignment:
    if not request.file:
        raise ValueError("assignment: explicit needs a file (assignment_file)")
    held = explicit_from_file(request.path())
    if len(held) != request.workers:
        raise ValueError(
            f"{request.file} has {len(held)} rows, expected one per worker ({request.workers})"
        )
    validate(held, request.chunks)
    return held


def _build_frc(request: _Request) -> Assignment:
    return frc(request.workers, request.load, request.chunks)


@dataclass(frozen=True)
class _Request:
    """The arguments of one ``build_assignment`` call, as every builder sees them."""

    name: str
    workers: int
    load: int
    chunks: int
    seed: int | None
    file: str | Path | None
    base_dir: Path | None

    def need_seed(self) -> int:
        """The seed of a random construction; refusing None rather than drawing unseeded."""
        if self.seed is None:
            raise ValueError(f"the {self.name} assignment is random: it needs a seed")
        return self.seed

    def path(self) -> Path:
        """The file to read (only called when there is one)."""
        assert self.file is not None
        return Path(self.file) if self.base_dir is None else self.base_dir / self.file


@dataclass(frozen=True)
class AssignmentKind:
    """What an assignment name means: how it is built and what it needs.

    One entry per name so that the config, the layout code, ``gcsim ordering`` and their error
    messages agree on which names exist and what each requires (they used to keep four lists).
    """

    name: str
    build: Callable[[_Request], Assignment]
    about: str
    #: Whether it reads ``assignment_file``: never, optionally (graph: an edge list instead of a
    #: random graph), or always (explicit).
    file: FileUse = "never"
    #: Draws random numbers from a seed (when it reads no file).
    random: bool = False
    #: Needs load to divide workers (frc's groups of identical workers, with N = m).
    load_divides_workers: bool = False
    #: Works with chunks N != workers m (the others give each worker ``load`` of N = m chunks).
    any_chunks: bool = False
    #: A config's ``assignment:`` key may name it (frc is only the frc protocol's own layout).
    in_config: bool = True

    def needs_seed(self, has_file: bool) -> bool:
        """Whether building it draws random numbers, so the caller must derive a seed."""
        return self.random and not (has_file and self.file != "never")


ASSIGNMENT_KINDS: dict[str, AssignmentKind] = {
    kind.name: kind
    for kind in (
        AssignmentKind("cyclic", _build_cyclic, "worker j holds j..j+load-1 (mod m)"),
        AssignmentKind(
            "random_regular",
            _build_random_regular,
            "seeded; every worker holds load chunks, every chunk sits on load workers",
            random=True,
        ),
        AssignmentKind(
            "graph",
            _build_graph,
            "closed neighbourhoods of a (load-1)-regular graph: random, or the file's edge list",
            file="optional",
            random=True,
        ),
        AssignmentKind(
            "explicit",
            _build_explicit,
            "a 0/1 matrix or per-worker chunk lists from the file",
            file="required",
            any_chunks=True,
        ),
        AssignmentKind(
            "frc",
            _build_frc,
            "fractional repetition: groups of identical workers (the frc protocol's own)",
            load_divides_workers=True,
            any_chunks=True,
            in_config=False,
        ),
    )
}
"""Every assignment name, in the order help texts and error messages list them."""

#: The names a config's ``assignment:`` key accepts.
CONFIG_ASSIGNMENTS: tuple[str, ...] = tuple(
    k.name for k in ASSIGNMENT_KINDS.values() if k.in_config
)
#: The names built from (workers, load, seed) alone: what ``gcsim ordering`` offers.
GENERATED_ASSIGNMENTS: tuple[str, ...] = tuple(
    k.name for k in ASSIGNMENT_KINDS.values() if k.file != "required"
)


def build_assignment(
    name: str,
    workers: int,
    load: int,
    seed: int | None = None,
    *,
    chunks: int | None = None,
    file: str | Path | None = None,
    base_dir: Path | None = None,
) -> Assignment:
    """The named assignment in its natural order; ValueError (or OSError reading the file) when
    it cannot be built, saying why.

    ``chunks`` defaults to ``workers``. ``seed`` is the final seed of a random construction (the
    caller decides how it is keyed). ``file`` is read relative to ``base_dir``; messages name it
    as given.
    """
    kind = ASSIGNMENT_KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown assignment {name!r}; choose one of {tuple(ASSIGNMENT_KINDS)}")
    if file and kind.file == "never":
        raise ValueError(f"the {name} assignment reads no file, got {str(file)!r}")
    n_chunks = workers if chunks is None else chunks
    if n_chunks != workers and not kind.any_chunks:
        raise ValueError(
            f"the {name} assignment gives each worker `load` of m chunks: it needs chunks == "
            f"workers ({workers}), got {n_chunks}"
        )
    return kind.build(_Request(name, workers, load, n_chunks, seed, file, base_dir))
