"""What a scheme entry of a config is: the shared parts of every protocol's config model.

Each protocol module defines its own model (``protocol: Literal[name]`` plus its parameters) on
one of these bases; ``config.Scheme`` is the union of the registered protocols' models. A model
also says what its parameters cannot be given the cluster (``problems``): checks that need the
assignment built or the engines are made a step above, in ``config``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from ..models import Label, PositiveFloat, Strict
from .assignment import CONFIG_ASSIGNMENTS

if TYPE_CHECKING:
    from ..budget import Estimate
    from ..config import Experiment

Problems = list[tuple[str, str]]


class SchemeConfig(Strict):
    label: Label | None = None
    """Name of the scheme in outputs (defaults to the protocol name, made unique)."""

    protocol: str  # each protocol's model narrows it to Literal[its name]

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        """What this entry's values cannot be on ``workers`` workers and ``chunks`` chunks,
        as (dotted key, message); ``key`` is the entry's own (``schemes.3``)."""
        return []

    def active_deadline(self) -> float | None:
        """When the PS decodes with what it has (None: it waits until it can decode)."""
        return None

    def most_steps(self, workers: int, chunks: int) -> int:
        """The most chunks a worker of this scheme may compute (sizes the 64-bit counts)."""
        return -(-chunks // workers)

    def costs(self, est: Estimate, exp: Experiment, key: str, m: float, n: float) -> float:
        """Add what only this protocol costs (its code, its decoder's matrices) to a run's
        budget estimate (``budget.Estimate``: the assignment, order, engine and gradients are
        counted there); return its CPU seconds per trial beyond the engine's."""
        return 0.0


class SplitScheme(SchemeConfig):
    """Chunks split evenly over the workers, each computed once."""

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        problems = super().problems(key, workers, chunks)
        if chunks < workers:
            message = (
                f"{self.protocol} ({key}) splits chunks over workers: needs chunks >= workers "
                f"({workers}), got {chunks}"
            )
            problems.insert(0, ("data.chunks", message))
        return problems


class FirstUploads(SchemeConfig):
    """A PS that decodes from the first k uploads: ``k``, or a ``fraction`` of the workers."""

    k: Annotated[int, Field(ge=1)] | None = None
    """Uploads to wait for; or give ``fraction`` instead."""
    fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    """k as a fraction of the workers (rounded up), so a sweep over workers keeps it valid."""

    def wait_for(self, workers: int) -> int:
        return self.k if self.k is not None else math.ceil(self.fraction * workers - 1e-9)

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        problems = super().problems(key, workers, chunks)
        if (self.k is None) == (self.fraction is None):
            problems.append(
                (f"{key}.k", "give exactly one of k (uploads) or fraction (of workers)")
            )
        elif self.k is not None and self.k > workers:
            problems.append((f"{key}.k", f"k must be at most workers ({workers}), got {self.k}"))
        return problems


class LoadedScheme(SchemeConfig):
    load: Annotated[int, Field(ge=1)]
    """Chunks per worker (and, for the regular assignments, workers per chunk)."""

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        problems = super().problems(key, workers, chunks)
        if self.load > workers:
            problems.append(
                (f"{key}.load", f"load must be at most workers ({workers}), got {self.load}")
            )
        if chunks != workers and getattr(self, "assignment", "cyclic") != "explicit":
            problems.append(
                (
                    "data.chunks",
                    f"{self.protocol} ({key}) gives each worker `load` of m chunks, which needs "
                    f"chunks == workers ({workers}), got {chunks}; remove data.chunks or set it to "
                    f"{workers}",
                )
            )
        return problems

    def most_steps(self, workers: int, chunks: int) -> int:
        return self.load


class AssignedScheme(LoadedScheme):
    assignment: Literal[CONFIG_ASSIGNMENTS] = "cyclic"  # type: ignore[valid-type]
    """cyclic: worker j holds j..j+load-1; random_regular: seeded, every worker load chunks and
    every chunk on load workers; graph: closed neighbourhoods of a (load-1)-regular graph
    (random, or the edge list in assignment_file); explicit: a 0/1 matrix or per-worker chunk
    lists from assignment_file."""
    assignment_file: str | None = None
    """Edge list (graph) or assignment (explicit), relative to the config file."""
    ordering: Literal["natural", "random", "optimal"] | list[list[int]] = "natural"
    """Processing order: natural, random (seeded), optimal (minimizes Q_max(ell)), or one list
    per worker."""

    def copies_needed(self) -> int:
        """Holders every chunk needs for the scheme to decode (``ell`` where it has one)."""
        return 1

    def assignment_problems(self, held: list[list[int]], key: str) -> Problems:
        """What this protocol cannot run on the built assignment ``held`` (the generic
        checks, files, replication and orderings, are ``layout.layout_problems``)."""
        return []

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        problems = super().problems(key, workers, chunks)
        if self.assignment == "explicit" and not self.assignment_file:
            problems.append((f"{key}.assignment_file", "assignment: explicit needs a file"))
        if self.assignment_file and self.assignment not in ("explicit", "graph"):
            problems.append(
                (
                    f"{key}.assignment_file",
                    f"only used with assignment: explicit or graph, not {self.assignment}",
                )
            )
        return problems


class CodedScheme(AssignedScheme):
    """A scheme whose uploads are coded combinations of dim / ell floats, decoded exactly or,
    in approximate mode, at a deadline."""

    ell: Annotated[int, Field(ge=1)] = 1
    mode: Literal["exact", "approximate"] = "exact"
    """exact: wait until the gradient is determined; approximate: decode at ``deadline`` with
    what has arrived (earlier if the gradient is determined first)."""
    deadline: PositiveFloat | None = None

    def active_deadline(self) -> float | None:
        return self.deadline if self.mode == "approximate" else None

    def copies_needed(self) -> int:
        return self.ell

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        problems = super().problems(key, workers, chunks)
        if self.ell > self.load:
            problems.append(
                (f"{key}.ell", f"ell must be at most load ({self.load}), got {self.ell}")
            )
        if self.mode == "approximate" and self.deadline is None:
            problems.append((f"{key}.deadline", "approximate mode needs a deadline (a time > 0)"))
        if self.mode == "exact" and self.deadline is not None:
            problems.append(
                (
                    f"{key}.deadline",
                    "a deadline only applies to mode: approximate; "
                    "remove it or set mode: approximate",
                )
            )
        return problems
