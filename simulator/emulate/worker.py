"""One real worker: a Dask actor, living in its own process for the whole emulation.

Per trial it walks its chunk list in the protocol's order on a thread of its own: it waits out
the chunk's drawn compute time x the time scale (injected straggling) and asks the protocol's
own ``Trial`` what to send (``chunk_done``: the same reaction the event engine plays). The
chunk gradients it encodes are its own: in a training run (``training:``) it holds its chunks
of the training data (loaded once, with the trainer's loader, so chunk j is the trainer's chunk
j) and computes each chunk's gradient at the parameters the PS broadcasts with ``prepare``,
timing each one; a chunk then lasts max(drawn time x scale, its measured computation), so with
a time scale of 0 the chunk times are this machine's own. Without training the gradients are
the config's (drawn from the round's stream as the simulator draws them), and a chunk lasts
its drawn time. Messages travel on the worker's own stream to the PS (``wire``: opened once by
``connect``): messages for the PS are written to it as they are sent; messages from the PS
(partial_gc's downloads, and the PS's stop) are read from it and a download is answered at once
with ``worker_receive``. An injected crash makes the worker fall silent: it
computes and answers nothing more in that trial, and the only trace of it the PS gets is the
failure detector's notice (an item ``crash`` on the stream), which the PS holds back for
``failures.detect_timeout``.

Times are this process's wall clock (``time.time``); the PS maps them onto its own with the
offset it measured (``ping``), so the same code runs on separate machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..cluster import gradients
from ..coding.base import Message, Protocol, Trial
from ..tuning import simulating
from .wire import frame, no_delay, read_frame

if TYPE_CHECKING:
    from ..config import Experiment

#: How long ``finish`` waits for the compute thread to notice the stop (it waits on an event,
#: so it returns at once unless the protocol's own reaction is still computing).
JOIN_SECONDS = 30.0


@dataclass
class WorkerRun:
    """This worker's part of one (scheme, trial)."""

    key: tuple[int, int]
    trial: Trial
    order: list[int]
    times: list[float]  # seconds, already scaled
    computed: list[float] | None  # seconds each chunk's gradient took (None: config gradients)
    grads: np.ndarray | None  # (chunks, dim): this worker's chunk gradients, other rows 0
    crash_at: float  # this clock; inf: never
    down: bool
    scale: float
    start: float = math.inf  # this clock
    stop: threading.Event = field(default_factory=threading.Event)
    rows: list[tuple[float, str, int, int]] = field(default_factory=list)
    crashed: bool = False
    thread: threading.Thread | None = None


class EmulatedWorker:
    """The actor. Its async methods run on the Dask worker's event loop; the chunks run on a
    thread, so that a long reaction never delays the answer to a download."""

    def __init__(self, worker: int, protocols: list[Protocol], exp: Experiment) -> None:
        self.worker = worker
        self.protocols = protocols
        self.exp = exp
        self.run: WorkerRun | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.writer: asyncio.StreamWriter | None = None  # the stream to the PS
        self.listening: asyncio.Task | None = None
        self.grads: tuple[int, np.ndarray | None] | None = None  # (round, config gradients)
        self.held: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # chunk -> its (X, y)
        self.model = None
        if exp.training is not None:
            self._load(exp)
        # For the life of the process, as a simulation runs: one BLAS thread (OpenBLAS's idle
        # threads spin, taking the cores that the other workers' wake-ups need) and a lazy
        # cycle collector (no pause of a full collection in the middle of a message).
        self.tuning = contextlib.ExitStack()
        self.tuning.enter_context(simulating())

    # -- set-up --------------------------------------------------------------------------------

    async def ping(self) -> tuple[float, str]:
        """This process's clock and host, for the PS's offset estimate."""
        self._bind()
        return time.time(), socket.gethostname()

    async def connect(self, host: str, port: int) -> None:
        """Open this worker's stream to the PS (its first frame says which worker it is) and
        listen on it for the PS's messages."""
        self._bind()
        reader, self.writer = await asyncio.open_connection(host, port)
        no_delay(self.writer)
        self.writer.write(frame(("hello", self.worker)))
        await self.writer.drain()
        self.listening = asyncio.ensure_future(self._listen(reader))

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """The PS's messages: a download (``deliver``) or the PS's stop (``halt``)."""
        while True:
            try:
                item = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the PS closed the stream: the emulation is over
            if item[0] == "deliver":
                self._deliver(item[1], item[2])
            elif item[0] == "halt":
                self._halt(item[1])

    def _load(self, exp: Experiment) -> None:
        """The training data of the chunks this worker holds in any scheme (copies: the rest
        of the set is not kept), and the model whose gradients it computes."""
        from ..training.datasets import load
        from ..training.models import model

        data = load(exp.training, exp.chunks, exp.seed)
        chunks = {chunk for protocol in self.protocols for chunk in protocol.orders[self.worker]}
        for chunk in sorted(chunks):
            X, y = data.chunk_data(chunk)
            self.held[chunk] = (X.copy(), y.copy())
        self.model = model(exp.training.model)

    def _model_gradients(
        self, protocol: Protocol, order: list[int], theta: np.ndarray
    ) -> tuple[np.ndarray, list[float]]:
        """The model's gradient of each chunk in ``order`` at ``theta`` from this worker's own
        data (each chunk's residual, then X_chunk^T residual: the model's ``evaluate``, as the
        trainer computes it), and the seconds each took. Rows of other chunks stay zero: no
        protocol reads them on this worker."""
        grads = np.zeros((protocol.chunks, protocol.dim))
        column = np.asarray(theta, dtype=np.float64).reshape(-1, 1)
        took = []
        for chunk in order:
            began = time.perf_counter()
            X, y = self.held[chunk]
            residual = self.model.evaluate(X @ column, y).residual
            grads[chunk] = (X.T @ residual)[:, 0]
            took.append(time.perf_counter() - began)
        return grads, took

    def _bind(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()

    async def prepare(
        self,
        key: tuple[int, int],
        times: list[float],
        crash_in: float,
        down: bool,
        scale: float,
        theta: np.ndarray | None = None,
    ) -> None:
        """Make the trial's state, ready to start. ``times``: this worker's drawn chunk times,
        scaled; ``crash_in``: seconds after the start at which it crashes (inf: never);
        ``theta``: a training run's current parameters (the PS's broadcast), at which this
        worker computes its chunks' gradients now, before the start (None: the config's
        gradients, drawn here from the round's stream)."""
        self._bind()
        self._end_run()
        scheme, round_ = key
        protocol = self.protocols[scheme]
        order = list(protocol.orders[self.worker])
        computed = None
        if theta is None:
            if self.grads is None or self.grads[0] != round_:
                self.grads = (round_, gradients(self.exp, round_))
            grads = self.grads[1]
        elif down:  # down for the whole trial: it computes nothing
            grads, computed = np.zeros((protocol.chunks, protocol.dim)), [0.0] * len(order)
        else:
            grads, computed = self._model_gradients(protocol, order, theta)
        run_trial = protocol.new_trial(np.zeros(protocol.workers, dtype=bool), grads)
        self.run = WorkerRun(key, run_trial, order, times, computed, grads, crash_in, down,
                             scale)  # fmt: skip

    async def start(self, key: tuple[int, int], start_at: float) -> None:
        """Begin the trial at ``start_at`` (this clock): the chunks start then."""
        run = self.run
        if run is None or run.key != key or run.down:
            return
        run.start = start_at
        run.crash_at = start_at + run.crash_at  # crash_in becomes an instant
        run.thread = threading.Thread(target=self._compute, args=(run,), daemon=True,
                                      name=f"gcsim-worker-{self.worker}")  # fmt: skip
        run.thread.start()

    # -- the chunks (compute thread) -----------------------------------------------------------

    def _push(self, item: tuple) -> None:
        """An item for the PS, written by the event loop (from any thread, in call order)."""
        self.loop.call_soon_threadsafe(self._write, item)

    def _write(self, item: tuple) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(frame(item))

    def _compute(self, run: WorkerRun) -> None:
        wait = run.start - time.time()
        if wait > 0 and run.stop.wait(wait):
            return
        ended = self._chunks(run)
        if ended == "stopped":
            return
        if ended == "done":
            self._push(("idle", run.key, time.time()))
        if math.isfinite(run.crash_at):  # a crash still to come, computing or not
            if run.stop.wait(max(0.0, run.crash_at - time.time())):
                return
            run.crashed = True
            run.rows.append((run.crash_at, "crash", -1, 0))
            self._push(("crash", run.key, run.crash_at))

    def _chunks(self, run: WorkerRun) -> str:
        """The worker's chunks: 'done' (its list, or its own stop), 'stopped' (by the PS or the
        end of the trial) or 'crash' (the crash came first)."""
        grads = run.grads
        for step, chunk in enumerate(run.order):
            began = time.time()
            if began >= run.crash_at:
                return "crash"
            run.rows.append((began, "chunk_start", chunk, 0))
            if run.computed is None:
                if grads is not None:  # a touch of the config's chunk gradient
                    float(np.dot(grads[chunk], grads[chunk]))
                end = began + run.times[step]
            else:  # computed in prepare: the chunk lasts at least that long
                end = began + max(run.times[step], run.computed[step])
            if run.stop.wait(max(0.0, min(end, run.crash_at) - time.time())):
                return "stopped"  # the chunk is abandoned
            now = time.time()
            if end > run.crash_at:
                return "crash"
            run.rows.append((now, "chunk_done", chunk, 0))
            reaction = run.trial.chunk_done(self.worker, chunk, (now - run.start) / _unit(run))
            self._send(run, reaction.send, now)
            if self.worker in reaction.stop:
                break
        return "done"

    def _send(self, run: WorkerRun, messages: list[Message], now: float) -> None:
        for msg in messages:
            run.rows.append((now, f"{msg.kind}_sent", msg.chunk, msg.size))
            self._push(("msg", run.key, now, msg))

    # -- the PS's messages and calls -----------------------------------------------------------

    def _deliver(self, key: tuple[int, int], msg: Message) -> None:
        """A message from the PS: answered at once with the protocol's ``worker_receive``
        (lost if this worker has crashed). Then ``delivered`` tells the PS it is handled."""
        run, now = self.run, time.time()
        if run is None or run.key != key:
            return
        if run.crashed or now >= run.crash_at or run.down:
            run.rows.append((now, f"{msg.kind}_lost", msg.chunk, msg.size))
        else:
            run.rows.append((now, f"{msg.kind}_received", msg.chunk, msg.size))
            reaction = run.trial.worker_receive(self.worker, msg, (now - run.start) / _unit(run))
            self._send(run, reaction.send, time.time())
        # On the same stream as the answer, after it: the PS counts a download as handled only
        # once its answer is in (call_soon_threadsafe keeps the order of its callers).
        self._push(("delivered", key, time.time()))

    def _halt(self, key: tuple[int, int]) -> None:
        """The PS's ``stop``: compute nothing more in this trial (messages are still answered)."""
        if self.run is not None and self.run.key == key:
            self.run.stop.set()

    async def finish(self, key: tuple[int, int]) -> list[tuple[float, str, int, int]]:
        """End the trial; its trace rows, on this clock."""
        run = self.run
        if run is None or run.key != key:
            return []
        await asyncio.get_running_loop().run_in_executor(None, self._end_run)
        return list(run.rows)

    def _end_run(self) -> None:
        run = self.run
        if run is None:
            return
        run.stop.set()
        if run.thread is not None:
            run.thread.join(JOIN_SECONDS)


def _unit(run: WorkerRun) -> float:
    """Seconds per simulated time unit (1 with no time scale: times are then seconds)."""
    return run.scale if run.scale > 0 else 1.0
