"""The discrete-event engine (SimPy): the reference model of one trial of one protocol.

One process per live worker walks its ordered chunk list. A message of ``size`` floats arrives
``latency + size * time_per_float`` after it is sent, and the PS handles it at that instant
(messages arriving together in the order they were sent: SimPy's order of equal-time events).
After every arrival the protocol says what happens next; when the PS has decoded, remaining work is
interrupted and the trial ends at that instant. A trial in which the PS can never decode ends when
nothing is left to happen, with ``completion_time = inf``. The engine knows no protocol.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import simpy

from .. import config as cfg
from ..cluster import TrialDraw
from ..coding.base import CONTROL, PS, UPLOAD, Decoded, Message, Reaction, Trial

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


def simulate(
    trial: Trial,
    orders: list[list[int]],
    draw: TrialDraw,
    network: cfg.Network,
    trace: Tracer | None = None,
    detect_timeout: float = 0.0,
) -> Outcome:
    """Play one trial of one protocol on one realization. A worker that crashes is noticed by
    the PS ``detect_timeout`` later (the protocol may then re-plan)."""
    env = simpy.Environment()
    finished = env.event()
    workers = len(orders)
    processes: dict[int, simpy.Process] = {}
    current = [-1] * workers  # the chunk each worker is computing
    crashed = [False] * workers
    counts = {"upload": 0, "download": 0, "messages": 0, "control": 0, "computed": 0}
    ingress = simpy.Resource(env, capacity=1) if network.ps_ingress == "shared" else None

    def send(msg: Message, from_ps: bool) -> None:
        if msg.kind == CONTROL:
            counts["control"] += 1
        elif msg.kind == UPLOAD:
            counts["messages"] += 1
            counts["upload"] += msg.size
        if from_ps:
            counts["download"] += msg.size
        if trace:
            trace(env.now, f"{msg.kind}_sent", msg.worker, msg.chunk, msg.size)
        if ingress is not None and not from_ps:
            env.process(through_ingress(msg))
            return
        arrival = env.timeout(network.delay(msg.size), msg)
        arrival.callbacks.append(deliver_to_worker if from_ps else deliver_to_ps)

    def through_ingress(msg: Message):
        """A shared PS link: messages to the PS are transmitted one at a time."""
        with ingress.request() as turn:
            yield turn
            yield env.timeout(msg.size * network.time_per_float)
        yield env.timeout(network.latency)
        receive(msg)

    def deliver_to_ps(event: simpy.Event) -> None:
        receive(event.value)

    def receive(msg: Message) -> None:
        """The PS handles a message at its arrival: no inbox and no PS process (which cost a
        store put, a get and a generator resume per message)."""
        if finished.triggered:
            return
        if trace:
            trace(env.now, f"{msg.kind}_received", msg.worker, msg.chunk, msg.size)
        react(trial.ps_receive(msg, env.now), from_ps=True)

    def deliver_to_worker(event: simpy.Event) -> None:
        msg: Message = event.value
        if finished.triggered:
            return
        if crashed[msg.worker]:
            if trace:
                trace(env.now, f"{msg.kind}_lost", msg.worker, msg.chunk, msg.size)
            return
        if trace:
            trace(env.now, f"{msg.kind}_received", msg.worker, msg.chunk, msg.size)
        react(trial.worker_receive(msg.worker, msg, env.now), from_ps=False)

    def react(reaction: Reaction, from_ps: bool) -> None:
        for worker in reaction.stop:
            stop(worker, "stop")
        for msg in reaction.send:
            send(msg, from_ps)
        if reaction.decoded and not finished.triggered:
            if trace:
                trace(env.now, "decoded", PS, -1, 0)
                for worker in processes:  # the interruptions only show in the trace
                    stop(worker, "stop")
            finished.succeed(env.now)

    def stop(worker: int, cause: str) -> None:
        process = processes.get(worker)
        if process is not None and process.is_alive and process is not env.active_process:
            process.interrupt(cause)

    def work(worker: int):
        times = draw.step_times[worker].tolist()  # Python floats on the clock: same values
        try:
            for step, chunk in enumerate(orders[worker]):
                current[worker] = chunk
                if trace:
                    trace(env.now, "chunk_start", worker, chunk, 0)
                yield env.timeout(times[step])
                if finished.triggered:  # decoded at this very instant: as if interrupted
                    return
                counts["computed"] += 1
                current[worker] = -1
                if trace:
                    trace(env.now, "chunk_done", worker, chunk, 0)
                react(trial.chunk_done(worker, chunk, env.now), from_ps=False)
        except simpy.Interrupt as interrupt:
            if trace and interrupt.cause == "stop" and current[worker] >= 0:
                trace(env.now, "interrupt", worker, current[worker], 0)

    def crash(worker: int) -> Callable[[simpy.Event], None]:
        def happen(_: simpy.Event) -> None:
            if finished.triggered:
                return
            crashed[worker] = True
            if trace:
                trace(env.now, "crash", worker, current[worker], 0)
            stop(worker, "crash")
            env.timeout(detect_timeout).callbacks.append(notice)

        def notice(_: simpy.Event) -> None:
            if finished.triggered:
                return
            if trace:
                trace(env.now, "crash_detected", PS, -1, 0)
            react(trial.worker_failed(worker, env.now), from_ps=True)

        return happen

    def deadline(at: float):
        """The PS decodes with what has arrived by ``at``, inclusive: events at exactly ``at``
        (a chunk finishing, a zero-delay message) happen first."""
        yield env.timeout(at)
        while env.peek() == env.now and not finished.triggered:
            yield env.timeout(0)
        if not finished.triggered:
            if trace:
                trace(env.now, "deadline", PS, -1, 0)
            react(trial.at_deadline(env.now), from_ps=True)

    for worker in range(workers):
        if draw.down[worker]:
            if trace:
                trace(0.0, "down", worker, -1, 0)
            continue
        processes[worker] = env.process(work(worker))
        if math.isfinite(draw.crash_time[worker]):
            env.timeout(draw.crash_time[worker]).callbacks.append(crash(worker))
    if trial.deadline is not None:
        env.process(deadline(trial.deadline))

    try:
        env.run(until=finished)
    except RuntimeError:
        if env.peek() != math.inf:  # a real error, not "nothing left to happen"
            raise
    decoded = finished.triggered
    return Outcome(
        completion_time=env.now if decoded else math.inf,
        decoded=decoded,
        upload_floats=counts["upload"],
        download_floats=counts["download"],
        messages=counts["messages"],
        control_messages=counts["control"],
        chunks_computed=counts["computed"],
        result=trial.result() if decoded else None,
    )
