"""A scheme's layout: its assignment (who holds which chunks) and its processing order.

The config names them (``assignment``, ``assignment_file``, ``ordering``); this turns the names
into one list of chunk ids per worker, in the order the worker processes them. A random
assignment comes from a stream keyed by its kind and load (schemes asking for the same one get the
same one); random and optimized orders from streams keyed by the scheme's label.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..streams import generator
from . import assignment as asg
from . import ordering as ordr

if TYPE_CHECKING:  # annotations only: config imports this module to check layouts
    from ..config import Experiment


def layout_seed(seed: int, name: str, what: str) -> int:
    return int(generator(seed, "layout", name, what).integers(2**62))


def _assignment_seed(seed: int, spec) -> int:
    """Keyed by what defines the assignment, not by the scheme: schemes with the same random
    assignment parameters share one assignment, so their orderings and protocols are compared
    on the same graph."""
    return layout_seed(seed, f"{spec.assignment}:load={spec.load}", "assignment")


def scheme_assignment(spec, workers: int, chunks: int, seed: int, label: str, source_dir: Path):
    """The scheme's assignment in its natural order (ValueError on a file or shape problem):
    ``assignment.build_assignment`` with the config's file and the seed keyed by kind and load."""
    name = getattr(spec, "assignment", "cyclic")
    file = getattr(spec, "assignment_file", None)
    kind = asg.ASSIGNMENT_KINDS.get(name)
    random = kind is not None and kind.needs_seed(has_file=bool(file))
    return asg.build_assignment(
        name,
        workers,
        spec.load,
        _assignment_seed(seed, spec) if random else None,
        chunks=chunks,
        file=file,
        base_dir=source_dir,
    )


def build_order(spec, held: list[list[int]], chunks: int, seed: int, label: str):
    """The processing order the scheme asks for, over the assignment ``held``."""
    ordering = getattr(spec, "ordering", "natural")
    if isinstance(ordering, list):
        return [list(worker) for worker in ordering]
    if ordering == "natural":
        return ordr.natural(held)
    if ordering == "random":
        return ordr.random_order(held, layout_seed(seed, label, "ordering"))
    if ordering == "optimal":
        # Never the time-limited integer program here: its answer could depend on the machine's
        # speed, and a run must give the same bytes anywhere. The regular class gets the
        # balanced order, or the seeded heuristic's where it beats it for this ell
        # (ordering.optimal, method "regular"); anything else the seeded heuristic.
        ell = getattr(spec, "ell", 1)
        method = "regular" if ordr.is_regular(held, chunks) else "heuristic"
        return _cached_optimal(held, chunks, ell, method, layout_seed(seed, label, "optimal"))
    raise ValueError(f"unknown ordering {ordering!r}")


def _cached_optimal(
    held: list[list[int]], chunks: int, ell: int, method: str, seed: int
) -> list[list[int]]:
    """``ordering.optimal`` through the plan cache (it can take tens of seconds on large
    irregular assignments): stored as the workers' lengths followed by their chunks, keyed by
    the assignment, the arguments and the source of the ordering and assignment modules."""
    from .. import plan_cache

    def compute() -> np.ndarray:
        orders = ordr.optimal(held, chunks, ell=ell, method=method, seed=seed)
        return _flat(orders)

    inputs = {"held": _flat(held), "chunks": chunks, "ell": ell, "method": method, "seed": seed}
    flat = plan_cache.cached_array("optimal_order", "1", inputs, compute, functions=(ordr, asg))
    lengths = flat[: len(held)].tolist()
    ends = np.cumsum(lengths) + len(held)
    return [flat[end - n : end].tolist() for n, end in zip(lengths, ends, strict=True)]


def _flat(lists: list[list[int]]) -> np.ndarray:
    """Ragged integer lists as one array: their lengths, then their items."""
    return np.array([len(x) for x in lists] + [i for x in lists for i in x], dtype=np.int64)


def scheme_orders(spec, exp: Experiment, label: str) -> list[list[int]]:
    held = scheme_assignment(spec, exp.cluster.workers, exp.chunks, exp.seed, label, exp.source_dir)
    return build_order(spec, held, exp.chunks, exp.seed, label)


def layout_problems(
    spec, key: str, exp_workers: int, chunks: int, seed: int, label: str, source_dir: Path
) -> list[tuple[str, str]]:
    """What is wrong with a scheme's assignment and ordering, as (dotted key, message)."""
    try:
        held = scheme_assignment(spec, exp_workers, chunks, seed, label, source_dir)
    except (ValueError, OSError) as exc:
        where = "assignment_file" if getattr(spec, "assignment_file", None) else "assignment"
        return [(f"{key}.{where}", str(exc))]
    problems: list[tuple[str, str]] = []
    need = getattr(spec, "ell", 1)
    counts = asg.replication(held, chunks)
    short = [i for i, c in enumerate(counts) if c < need]
    if short:
        problems.append(
            (
                f"{key}.assignment",
                f"chunk {short[0]} is held by {counts[short[0]]} workers "
                f"({len(short)} chunks short) but {spec.protocol} needs {need} (ell)",
            )
        )
    problems += spec.assignment_problems(held, key)
    ordering = getattr(spec, "ordering", "natural")
    if isinstance(ordering, list):
        if len(ordering) != len(held):
            problems.append(
                (
                    f"{key}.ordering",
                    f"expected one list per worker ({len(held)}), got {len(ordering)}",
                )
            )
        else:
            for worker, (order, mine) in enumerate(zip(ordering, held, strict=True)):
                if sorted(order) != sorted(mine):
                    problems.append(
                        (
                            f"{key}.ordering.{worker}",
                            f"must be a permutation of "
                            f"worker {worker}'s chunks {sorted(mine)}, got {order}",
                        )
                    )
                    break
    return problems
