"""``frc``: fractional repetition (Tandon et al. 2017). Workers form m / load groups; every worker
of a group holds the same ``load`` chunks and uploads their plain sum once it has computed them
all. The opportunistic decoder is done as soon as every group has one upload, so it tolerates any
straggler pattern that leaves one finished worker per group (at least s = load - 1 of them)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from ..engine.fast import INF, Block, Evaluator, Rows
from .assignment import frc
from .base import Decoded, Message, Reaction, Tags, Trial, decoded_if
from .scheme_config import LoadedScheme, Problems
from .uncoded import SplitTrial, Uncoded


class FRCConfig(LoadedScheme):
    """Fractional repetition: groups of `load` workers share their chunks; one upload per group."""

    protocol: Literal["frc"]
    load: Annotated[int, Field(ge=1)]

    def problems(self, key: str, workers: int, chunks: int) -> Problems:
        problems = super().problems(key, workers, chunks)
        if self.load <= workers and workers % self.load:
            problems.insert(
                0, (f"{key}.load", f"frc needs load to divide workers ({workers}), got {self.load}")
            )
        return problems


class FRCTrial(SplitTrial):
    """Uploads as in uncoded (the plain sum once a worker is done); one per group suffices."""

    def __init__(self, protocol: FRC, grads: np.ndarray | None):
        super().__init__(protocol, grads)
        self.first: dict[int, Message] = {}  # group -> its first upload

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.first.setdefault(msg.worker // self.protocol.spec.load, msg)
        return decoded_if(len(self.first) == self.protocol.groups)

    def result(self) -> Decoded:
        p = self.protocol
        estimate = None
        if self.grads is not None:
            estimate = p.estimate([msg.payload for msg in self.first.values()], p.chunks)
        return Decoded(estimate, chunks_used=p.chunks, cond=1.0, residual=0.0)


class FRC(Uncoded):
    name = "frc"
    config = FRCConfig
    tags = Tags()
    exact = True
    examples = ({"load": 3},)

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.groups = self.workers // spec.load

    def plan_orders(self) -> list[list[int]]:
        """Worker j holds the chunks of its group j // load (``assignment.frc``)."""
        return frc(self.workers, self.spec.load)

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return FRCTrial(self, grads)

    def evaluator(self, exp) -> Evaluator:
        return FRCEvaluator(self, exp)


class FRCEvaluator(Evaluator):
    """The first upload of each group of identical workers."""

    def evaluate(self, block: Block) -> Rows:
        p, n = self.p, block.n
        done = self.times(block)
        finish = self.last(block)
        d = self.delay(p.upload_size)
        # The PS keys groups by worker // load: consecutive runs of load workers. All uploads
        # have one size, so the first to arrive is the first to finish (ties: same payload).
        load, groups = p.spec.load, p.groups
        by_group = finish.reshape(n, groups, load)
        first_sent = by_group.min(axis=2)
        first_arrival = first_sent + d
        decoded = np.isfinite(first_sent).all(axis=1)
        stop = np.where(decoded, first_arrival.max(axis=1), INF)
        rows = Rows(n)
        rows["completion_time"] = stop
        rows["decoded"] = decoded
        rows["messages"] = self.sent_by(finish, stop)
        rows["upload_floats"] = rows["messages"] * p.upload_size
        rows["chunks_computed"] = self.count_until(done, stop)
        rows["chunks_used"] = np.where(decoded, p.chunks, 0)
        rows["decode_cond"] = np.where(decoded, 1.0, np.nan)
        rows["residual"] = np.where(decoded, 0.0, np.nan)
        allowed = 1 if d == 0 else 0
        rows.suspect = decoded & (self.at(done, stop) > allowed)

        def estimate(t: int, grads: np.ndarray) -> np.ndarray:
            group_order = np.lexsort((first_sent[t], first_arrival[t]))
            workers = group_order * load + np.argmin(by_group[t], axis=1)[group_order]
            return p.estimate([p.payload(int(w), grads) for w in workers], p.chunks)

        rows.estimate = estimate
        return rows
