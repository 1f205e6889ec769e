"""Where the engines get each round's chunk gradients, and whom they tell what was decoded.

Both engines ask ``source.get(round, protocol)`` for the chunk gradients a scheme's workers
compute in a round (and their true sum), and tell ``source.done(...)`` what the PS decoded.
The default source is the config's random gradients (``data.gradients``): one draw per round,
shared by every scheme. A training run's source (``training/trainer.py``) instead gives each
(scheme, trial) the gradients of its model at its current parameters, and updates them with the
estimate the protocol decoded: the engines ask in round order within a trial, per scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..cluster import gradients

if TYPE_CHECKING:
    from ..coding.base import Protocol as Scheme
    from ..config import Experiment


class GradientSource(Protocol):
    #: Whether there are numbers at all (every round's decode is then evaluated).
    active: bool

    def get(self, round_: int, scheme: Scheme) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(chunk gradients (chunks x dim), their sum) for ``scheme`` in round ``round_``."""
        ...

    def done(
        self, round_: int, scheme: Scheme, estimate: np.ndarray | None, completion_time: float
    ) -> None:
        """What the PS decoded in that round (None: nothing) and when."""
        ...


class RandomGradients:
    """The config's gradients: iid N(0, 1) chunk gradients per round, the same for every scheme
    (``cluster.gradients``), or none (``data.gradients: none``)."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.active = exp.data.gradients != "none"
        self._round: int | None = None
        self._value: tuple[np.ndarray | None, np.ndarray | None] = (None, None)

    def get(self, round_: int, scheme: Scheme) -> tuple[np.ndarray | None, np.ndarray | None]:
        if round_ != self._round:  # drawn once per round, whichever scheme asks first
            grads = gradients(self.exp, round_)
            self._round, self._value = round_, (grads, None if grads is None else grads.sum(0))
        return self._value

    def done(self, round_, scheme, estimate, completion_time) -> None:
        return None


def source_of(exp: Experiment) -> GradientSource:
    """The run's gradient source: its training (``training:``) or the config's gradients."""
    if getattr(exp, "training", None) is not None:
        from ..training.trainer import Trainer

        return Trainer(exp)
    return RandomGradients(exp)
