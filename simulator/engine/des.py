"""The discrete-event engine (SimPy): the reference model of one trial of one protocol.

Each live worker walks its ordered chunk list, one timeout per chunk. A message of ``size``
floats arrives ``latency + size * time_per_float`` after it is sent, and the PS handles it at
that instant (messages arriving together in the order they were sent: SimPy's order of
equal-time events).
After every arrival the protocol says what happens next; when the PS has decoded, remaining work is
interrupted and the trial ends at that instant. A trial in which the PS can never decode ends when
nothing is left to happen, with ``completion_time = inf``. The engine knows no protocol.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import simpy
from simpy.events import Timeout

from ..cluster import TrialDraw
from ..coding.base import CONTROL, NOTHING, PS, UPLOAD, Decoded, Message, Protocol, Reaction, Trial
from ..coding.numerics import rel_error
from ..statistics import accurate

if TYPE_CHECKING:
    from ..config import Experiment, Network

#: A trace sink: (time, kind, worker, chunk, size). Worker -1 is the PS, chunk -1 is none.
Tracer = Callable[[float, str, int, int, int], None]


@dataclass(slots=True)
class Outcome:
    completion_time: float
    decoded: bool
    upload_floats: int
    download_floats: int
    messages: int  # data uploads, worker -> PS
    control_messages: int
    chunks_computed: int
    result: Decoded | None  # the PS's estimate when decoded


class EventRecorder:
    """Collects trace rows of one (scheme, trial) as plain column lists."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, str, int, int, int]] = []

    def __call__(self, time: float, kind: str, worker: int, chunk: int, size: int) -> None:
        self.rows.append((time, kind, worker, chunk, size))


def simulate_row(
    exp: Experiment,
    protocol: Protocol,
    draw: TrialDraw,
    grads: np.ndarray | None,
    truth: np.ndarray | None,
    recorder: Tracer | None = None,
) -> dict[str, object]:
    """One (scheme, trial) as a summary row by column name (``schema.SUMMARY``), plus
    ``estimate``: the PS's estimate (None when undecoded or gradients are off). The runner
    calls it for every trial it runs on this engine, the fast engine for the trials it
    replays."""
    outcome = simulate(
        protocol.new_trial(draw.down, grads),
        protocol.orders,
        draw,
        exp.cluster.network,
        recorder,
        exp.cluster.failures.detect_timeout,
    )
    error, used, condition, left, estimate = math.nan, 0, math.nan, math.nan, None
    if outcome.result is not None:
        estimate = outcome.result.estimate
        used, condition = outcome.result.chunks_used, outcome.result.cond
        if not protocol.conditioning:
            condition = math.nan  # also where it is free (1.0): "not computed", uniformly
        left = outcome.result.residual
        if truth is not None:
            error = rel_error(outcome.result.estimate, truth)
    return {
        "scheme": protocol.label,
        "protocol": protocol.name,
        "trial": draw.trial,
        "completion_time": outcome.completion_time,
        "decoded": outcome.decoded,
        "rel_error": error,
        "upload_floats": outcome.upload_floats,
        "download_floats": outcome.download_floats,
        "messages": outcome.messages,
        "control_messages": outcome.control_messages,
        "chunks_computed": outcome.chunks_computed,
        "chunks_used": used,
        "decode_cond": condition,
        "residual": left,
        "accurate": bool(accurate(outcome.decoded, error, left, condition, exp.data.tolerance)),
        "estimate": estimate,
    }


def simulate(
    trial: Trial,
    orders: list[list[int]],
    draw: TrialDraw,
    network: Network,
    trace: Tracer | None = None,
    detect_timeout: float = 0.0,
) -> Outcome:
    """Play one trial of one protocol on one realization. A worker that crashes is noticed by
    the PS ``detect_timeout`` later (the protocol may then re-plan)."""
    return TrialRun(trial, orders, draw, network, trace, detect_timeout).play()


class TrialRun:
    """The SimPy model of one trial. What makes it fast (docs/performance.md):

    - Workers are chains of timeout callbacks, not SimPy processes: a process costs a generator
      resume per chunk. Each chunk is one timeout, each message one timeout; nothing else is
      scheduled but crashes and the deadline.
    - The run is an object, not nested closures, and the event queue is emptied at the end: the
      closures referenced one another, so every trial left a reference cycle holding the
      protocol state and all pending timeouts, and Python's cycle collector took 40% of the time.
    - The two callbacks that run for nearly every event (``chunk_done``, ``deliver_to_ps``) read
      SimPy's ``_value`` and ``_now`` instead of their checked properties (SimPy 4.x, pinned).
    """

    __slots__ = (
        "uploaded",
        "on_chunk",
        "on_ps",
        "downloaded",
        "uploads",
        "controls",
        "computed",
        "crash_time",
        "crashed",
        "current",
        "decided",
        "delays",
        "detect_timeout",
        "down",
        "env",
        "finished",
        "ingress",
        "ps_busy",
        "network",
        "orders",
        "position",
        "running",
        "step_times",
        "trace",
        "trial",
        "workers",
    )

    def __init__(
        self,
        trial: Trial,
        orders: list[list[int]],
        draw: TrialDraw,
        network: Network,
        trace: Tracer | None,
        detect_timeout: float,
    ) -> None:
        self.trial = trial
        self.orders = orders
        self.network = network
        self.trace = trace
        self.detect_timeout = detect_timeout
        self.env = simpy.Environment()
        self.finished = self.env.event()
        self.decided = False  # finished.triggered, as a plain attribute (read on every event)
        self.workers = workers = len(orders)
        # Python floats on the clock (the same values), converted once per trial for all schemes
        self.step_times, self.down, self.crash_time = draw.lists
        self.position = [0] * workers  # index in its order of the chunk each worker is on
        self.current = [-1] * workers  # the chunk each worker is computing
        self.running = [not down for down in self.down]  # live and not stopped
        self.crashed = [False] * workers
        # What the summary counts: floats up and down, upload and control messages, chunks.
        self.uploaded = self.downloaded = self.uploads = self.controls = self.computed = 0
        # The two callbacks of nearly every event, bound once; play() unbinds them at the end
        # (a bound method refers back to the run: kept, it would be a reference cycle).
        self.on_chunk = self.chunk_done
        shared = network.ps_ingress == "shared"
        self.ingress = simpy.Resource(self.env, capacity=1) if shared else None
        # A PS that spends time on each message handles them one at a time (network.ps_overhead)
        busy = network.ps_overhead > 0
        self.ps_busy = simpy.Resource(self.env, capacity=1) if busy else None
        self.on_ps = self.queue_at_ps if busy else self.deliver_to_ps
        self.delays: dict[int, float] = {}  # network delay by message size

    def play(self) -> Outcome:
        env, trace = self.env, self.trace
        for worker in range(self.workers):
            if self.down[worker]:
                if trace:
                    trace(0.0, "down", worker, -1, 0)
            elif math.isfinite(self.crash_time[worker]):
                Timeout(env, self.crash_time[worker], worker).callbacks.append(self.crash)
        for worker in range(self.workers):
            if self.running[worker]:
                self.start(worker)
        if self.trial.deadline is not None:
            env.process(self.deadline(self.trial.deadline))
        try:
            env.run(until=self.finished)
        except RuntimeError:
            if env.peek() != math.inf:  # a real error, not "nothing left to happen"
                raise
        finally:
            env._queue.clear()  # pending timeouts point back at this run: free them now
            del self.on_chunk, self.on_ps
        decoded = self.finished.triggered
        return Outcome(
            completion_time=env.now if decoded else math.inf,
            decoded=decoded,
            upload_floats=self.uploaded,
            download_floats=self.downloaded,
            messages=self.uploads,
            control_messages=self.controls,
            chunks_computed=self.computed,
            result=self.trial.result() if decoded else None,
        )

    # workers -------------------------------------------------------------------------------

    def start(self, worker: int) -> None:
        """Start the worker's next chunk, if it has one."""
        step, order = self.position[worker], self.orders[worker]
        if step == len(order):
            self.running[worker] = False
            self.current[worker] = -1
            return
        self.current[worker] = order[step]
        if self.trace:
            self.trace(self.env.now, "chunk_start", worker, order[step], 0)
        Timeout(self.env, self.step_times[worker][step], worker).callbacks.append(self.on_chunk)

    def chunk_done(self, event: simpy.Event) -> None:
        """The worker's current chunk is done: report it, then start the next (``start``
        inlined: this runs once per chunk, the hottest path of the engine)."""
        worker = event._value  # the worker; ``.value`` is a checked property
        if not self.running[worker] or self.decided:  # stopped, crashed or decoded
            return
        current = self.current
        chunk = current[worker]
        self.computed += 1
        current[worker] = -1
        now = self.env._now
        if self.trace:
            self.trace(now, "chunk_done", worker, chunk, 0)
        reaction = self.trial.chunk_done(worker, chunk, now)
        if reaction is not NOTHING:
            self.react(reaction, from_ps=False)
        if not self.running[worker]:
            return
        step = self.position[worker] = self.position[worker] + 1
        order = self.orders[worker]
        if step == len(order):
            self.running[worker] = False
            return
        current[worker] = order[step]
        if self.trace:
            self.trace(now, "chunk_start", worker, order[step], 0)
        Timeout(self.env, self.step_times[worker][step], worker).callbacks.append(self.on_chunk)

    def stop(self, worker: int) -> None:
        """The worker computes nothing more; the chunk it was computing is abandoned."""
        if not self.running[worker]:
            return
        self.running[worker] = False
        if self.trace and self.current[worker] >= 0:
            self.trace(self.env.now, "interrupt", worker, self.current[worker], 0)

    def crash(self, event: simpy.Event) -> None:
        worker = event.value
        if self.decided:
            return
        self.crashed[worker] = True
        if self.trace:
            self.trace(self.env.now, "crash", worker, self.current[worker], 0)
        self.running[worker] = False
        Timeout(self.env, self.detect_timeout, worker).callbacks.append(self.crash_noticed)

    def crash_noticed(self, event: simpy.Event) -> None:
        if self.decided:
            return
        if self.trace:
            self.trace(self.env.now, "crash_detected", PS, -1, 0)
        self.react(self.trial.worker_failed(event.value, self.env.now), from_ps=True)

    # messages ------------------------------------------------------------------------------

    def send(self, msg: Message, from_ps: bool) -> None:
        kind, size = msg.kind, msg.size
        if kind == CONTROL:
            self.controls += 1
        elif kind == UPLOAD:
            self.uploads += 1
            self.uploaded += size
        if from_ps:
            self.downloaded += size
        if self.trace:
            self.trace(self.env.now, f"{kind}_sent", msg.worker, msg.chunk, size)
        if self.ingress is not None and not from_ps:
            self.env.process(self.through_ingress(msg))
            return
        delay = self.delays.get(size)
        if delay is None:
            delay = self.delays[size] = self.network.delay(size)
        if from_ps and self.ps_busy is not None:
            self.env.process(self.leave_ps(msg, delay))
            return
        arrival = Timeout(self.env, delay, msg)
        arrival.callbacks.append(self.deliver_to_worker if from_ps else self.on_ps)

    def through_ingress(self, msg: Message):
        """A shared PS link: messages to the PS are transmitted one at a time, then travel for
        the latency like any other message."""
        with self.ingress.request() as turn:
            yield turn
            yield self.env.timeout(msg.size * self.network.time_per_float)
        Timeout(self.env, self.network.latency, msg).callbacks.append(self.on_ps)

    def queue_at_ps(self, event: simpy.Event) -> None:
        """A message has reached a PS that handles one message at a time: it waits its turn."""
        if not self.decided:
            self.env.process(self.handled_by_ps(event._value))

    def handled_by_ps(self, msg: Message):
        """The PS spends ``ps_overhead`` on the message (first come, first served), then reacts."""
        with self.ps_busy.request() as turn:
            yield turn
            spent = self.env.timeout(self.network.ps_overhead, msg)
            yield spent
        self.deliver_to_ps(spent)

    def leave_ps(self, msg: Message, delay: float):
        """A message from a PS that handles one message at a time: it leaves once the PS has
        spent ``ps_overhead`` on it, in turn with every other message, then travels."""
        with self.ps_busy.request() as turn:
            yield turn
            yield self.env.timeout(self.network.ps_overhead)
        Timeout(self.env, delay, msg).callbacks.append(self.deliver_to_worker)

    def deliver_to_ps(self, event: simpy.Event) -> None:
        """The PS handles a message at its arrival: no inbox and no PS process (which cost a
        store put, a get and a generator resume per message)."""
        if self.decided:
            return
        msg: Message = event._value
        now = self.env._now
        if self.trace:
            self.trace(now, f"{msg.kind}_received", msg.worker, msg.chunk, msg.size)
        reaction = self.trial.ps_receive(msg, now)
        if reaction is not NOTHING:
            self.react(reaction, from_ps=True)

    def deliver_to_worker(self, event: simpy.Event) -> None:
        msg: Message = event.value
        if self.decided:
            return
        if self.crashed[msg.worker]:
            if self.trace:
                self.trace(self.env.now, f"{msg.kind}_lost", msg.worker, msg.chunk, msg.size)
            return
        if self.trace:
            self.trace(self.env.now, f"{msg.kind}_received", msg.worker, msg.chunk, msg.size)
        self.react(self.trial.worker_receive(msg.worker, msg, self.env.now), from_ps=False)

    # the protocol's answers ----------------------------------------------------------------

    def react(self, reaction: Reaction, from_ps: bool) -> None:
        if reaction.stop:
            for worker in reaction.stop:
                self.stop(worker)
        for msg in reaction.send:
            self.send(msg, from_ps)
        if reaction.decoded and not self.decided:
            if self.trace:
                self.trace(self.env.now, "decoded", PS, -1, 0)
                for worker in range(self.workers):  # cut-off chunks only show in the trace
                    self.stop(worker)
            self.decided = True
            self.finished.succeed(self.env.now)

    def deadline(self, at: float):
        """The PS decodes with what has arrived by ``at``, inclusive: events at exactly ``at``
        (a chunk finishing, a zero-delay message) happen first."""
        env = self.env
        yield env.timeout(at)
        while env.peek() == env.now and not self.decided:
            yield env.timeout(0)
        if not self.decided:
            if self.trace:
                self.trace(env.now, "deadline", PS, -1, 0)
            self.react(self.trial.at_deadline(env.now), from_ps=True)
