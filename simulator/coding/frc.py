"""``frc``: fractional repetition (Tandon et al. 2017). Workers form m / load groups; every worker
of a group holds the same ``load`` chunks and uploads their plain sum once it has computed them
all. The opportunistic decoder is done as soon as every group has one upload, so it tolerates any
straggler pattern that leaves one finished worker per group (at least s = load - 1 of them)."""

from __future__ import annotations

import numpy as np

from .base import Decoded, Message, Protocol, Reaction, Trial, decoded_if
from .uncoded import SplitTrial


def frc_groups(workers: int, load: int) -> list[list[int]]:
    """Worker j is in group j // load and holds that group's chunks, in natural order."""
    if workers % load:
        raise ValueError(f"frc needs load to divide workers, got load={load}, workers={workers}")
    return [[(j // load) * load + k for k in range(load)] for j in range(workers)]


class FRCTrial(SplitTrial):
    """Uploads as in uncoded (the plain sum once a worker is done); one per group suffices."""

    def __init__(self, protocol: FRC, grads: np.ndarray | None):
        super().__init__(protocol, grads)
        self.first: dict[int, Message] = {}  # group -> its first upload

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        self.first.setdefault(msg.worker // self.protocol.spec.load, msg)
        return decoded_if(len(self.first) == self.protocol.groups)

    def result(self) -> Decoded:
        estimate = None
        if self.grads is not None:
            estimate = np.sum([msg.payload for msg in self.first.values()], axis=0)
        return Decoded(estimate, chunks_used=self.protocol.chunks, cond=1.0, residual=0.0)


class FRC(Protocol):
    name = "frc"
    exact = True
    examples = ({"load": 3},)

    def __init__(self, spec, exp, label):
        super().__init__(spec, exp, label)
        self.orders = frc_groups(self.workers, spec.load)
        self.groups = self.workers // spec.load

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        return FRCTrial(self, grads)
