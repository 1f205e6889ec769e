"""What a protocol is, as the engines see it.

A protocol is planned once per run (``Protocol``: assignment, processing order, code) and plays
each trial through a ``Trial`` object that reacts to three things: a worker finished a chunk, a
message reached the PS or a worker, the deadline passed. Each reaction says which messages to send,
which workers stop computing and whether the PS has decoded. The engine owns time, the network and
the trace; the protocol owns the math and knows nothing about SimPy. Messages carry real numbers
(``payload``) when gradients are materialized, and ``None`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .scheme_config import SchemeConfig

if TYPE_CHECKING:
    from ..config import Experiment
    from ..engine.fast import Evaluator

PS = -1  #: the parameter server's id in messages and traces

# Message kinds. Control messages (a chunk index) count as size 1.
CONTROL, UPLOAD, DOWNLOAD = "control", "upload", "download"


@dataclass(slots=True)
class Message:
    kind: str
    worker: int  # the worker that sends it (control, upload) or receives it (download)
    size: int  # floats on the wire
    chunk: int = -1
    payload: object = None


@dataclass(slots=True)
class Reaction:
    send: list[Message] = field(default_factory=list)
    stop: tuple[int, ...] | list[int] = ()  # workers that stop computing now
    decoded: bool = False  # the PS has its estimate: the trial ends now


NOTHING = Reaction()
DECODED = Reaction(decoded=True)


def decoded_if(flag: bool) -> Reaction:
    """DECODED or NOTHING: shared reactions, so a PS that is still waiting costs the engine no
    allocation and no reaction to play (the engines never modify a Reaction)."""
    return DECODED if flag else NOTHING


@dataclass(slots=True)
class Decoded:
    """What the PS ends a trial with."""

    estimate: np.ndarray | None  # g_hat (length dim), None when gradients are off
    chunks_used: int  # chunk computations that entered the estimate
    cond: float = float("nan")  # worst condition number of a matrix the decoder inverted
    residual: float = 0.0
    """Coefficient-space residual of the decoder (0: exact in exact arithmetic). For partial_gc
    sum_i max(0, ell - r_i); for least-squares decoders the squared Frobenius residual of the
    combination; for fastest_k the number of chunks it did not see."""


class Trial:
    """One trial of one protocol: the workers' and the PS's state, and their reactions."""

    deadline: float | None = None

    def chunk_done(self, worker: int, chunk: int, now: float) -> Reaction:
        return NOTHING

    def ps_receive(self, msg: Message, now: float) -> Reaction:
        return NOTHING

    def worker_receive(self, worker: int, msg: Message, now: float) -> Reaction:
        return NOTHING

    def at_deadline(self, now: float) -> Reaction:
        return NOTHING

    def worker_failed(self, worker: int, now: float) -> Reaction:
        """The PS has noticed that ``worker`` crashed (``failures.detect_timeout`` after it)."""
        return NOTHING

    def result(self) -> Decoded:
        """The PS's estimate; called once, after it reported ``decoded``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Tags:
    """What a protocol can do, declared once (as scikit-learn estimators declare tags): the
    engine choice, the conformance suite (``simulator.testing``) and the docs read these
    instead of lists of protocol names."""

    fast: bool = True
    """Has a vectorised evaluator (``Protocol.evaluator``) giving the event engine's rows."""
    tie_safe: bool = False
    """Its rows do not depend on the order of simultaneous events, so the fast engine may run
    it on compute times with atoms (deterministic, empirical)."""
    control: bool = False
    """Workers send control messages (chunk reports)."""
    downloads: bool = False
    """The PS sends workers messages (download_floats can be positive)."""
    approximate: bool = False
    """May decode an approximation in exact mode too (fastest_k): rel_error > 0 by design."""
    replans: bool = False
    """Reacts to crashes the PS notices (``Trial.worker_failed``)."""
    random_layout: bool = False
    """The plan is a random draw in which ``load`` is only an expectation: a worker may hold
    any number of chunks and a chunk may have no holder (bernoulli_gc)."""


class Protocol:
    """A scheme planned for one run: ``orders[j]`` is worker j's chunks in processing order.

    A protocol module holds everything about its scheme: its config model (``config``), its
    plan (this class), its event-engine reactions (a ``Trial``), its vectorised evaluator for
    the fast engine (``evaluator``) and the decoder both of them call. Registering it is one
    line in ``registry.py``."""

    name: ClassVar[str]
    config: ClassVar[type[SchemeConfig]]
    """The scheme entry's config model (``protocol: Literal[name]`` and the parameters)."""
    tags: ClassVar[Tags] = Tags()
    exact: bool
    """Whether a decoded estimate is the exact gradient (up to floating point)."""
    examples: ClassVar[tuple[dict, ...]] = ()
    """Representative scheme parameters on 12 workers: the conformance suite runs each."""

    def __init__(self, spec: SchemeConfig, exp: Experiment, label: str):
        self.spec = spec
        self.label = label
        self.workers = exp.cluster.workers
        self.chunks = exp.chunks
        self.dim = exp.data.dim
        self.seed = exp.seed
        self.conditioning = exp.output.decode_cond
        """Whether decodes report their condition number (``output.decode_cond``)."""
        self.orders: list[list[int]] = []
        self.deadline = spec.active_deadline()
        """When the PS decodes with what it has (None: no deadline)."""
        self.upload_size = self.dim
        """Floats in one data upload."""

    def new_trial(self, down: np.ndarray, grads: np.ndarray | None) -> Trial:
        raise NotImplementedError

    def evaluator(self, exp: Experiment) -> Evaluator:
        """The fast engine's vectorised evaluation of this plan (``tags.fast``)."""
        raise NotImplementedError(f"{self.name} has no vectorised evaluator")

    def error_bound(self) -> float:
        """The rel_error a decoded trial stays below: 1e-20 for an exact, stable decoder (the
        default), inf for approximate schemes; subclasses with unstable decoders say more."""
        return 1e-20 if self.exact else float("inf")

    @property
    def steps(self) -> int:
        """The most chunk computations any worker may do (at least 1: the engines' arrays
        keep a step axis even when every worker is idle)."""
        return max(1, max(len(order) for order in self.orders))
