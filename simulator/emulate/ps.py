"""The parameter server of an emulation: this process, driving the real workers.

For each (trial, scheme) it hands every worker its drawn chunk times (the realization the
simulator draws for that trial: ``Cluster.draw``), starts them together, and then plays the
protocol's own PS reactions (``Trial.ps_receive``, ``at_deadline``, ``worker_failed``) on what
actually arrives, in the order it arrives: the stopping rule and the decoder are the ones the
event engine runs, so the comparison with the simulator is of timing, not of two
implementations. When the PS decodes, the trial ends for everyone; a trial in which nothing is
left to happen (every worker idle or crashed, no message or timer pending) ends undecoded.

Times: the PS's wall clock, from the common start, divided by the time scale (so they are in
the config's units, comparable with the simulator's); worker-side events are mapped onto the
PS's clock with the offset measured per worker at set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np

from ..cluster import TrialDraw
from ..coding.base import CONTROL, PS, UPLOAD, Message, Protocol, Reaction
from ..coding.numerics import rel_error
from ..statistics import accurate
from .wire import frame, no_delay, read_frame

#: Seconds between sending the start and the common start instant (every worker must have it).
START_LEAD = 0.03
#: The most the start lead grows to.
MAX_LEAD = 1.0
#: Seconds without any news from a busy cluster before the emulation gives up on it.
SILENCE_LIMIT = 120.0
#: Seconds the workers have to open their streams to the PS.
CONNECT_SECONDS = 60.0


class EmulationError(RuntimeError):
    """The real cluster misbehaved (a worker stopped answering): not the user's input."""


@dataclass
class Link:
    """One worker as the PS sees it: its actor and its clock's offset (worker - PS)."""

    actor: object
    offset: float


class ParameterServer:
    """Plays trials on the workers behind ``links`` (one per simulated worker).

    The PS runs on the Dask client's event loop. Each worker opens one stream to it (``wire``)
    at set-up; what a worker sends is read there and handed straight to the trial's reaction,
    and downloads are written from there, so a message costs no thread hand-off on this side
    (under load every hand-off is a wait for a core). The caller's thread only waits for
    each trial (``Client.sync``), so an interrupt still reaches it at once."""

    def __init__(
        self,
        client,
        links: list[Link],
        scale: float,
        detect_timeout: float,
        host: str,
        tolerance: float,
    ) -> None:
        self.client = client
        self.tolerance = tolerance  # data.tolerance: the ``accurate`` rule
        self.links = links
        self.scale = scale
        self.unit = scale if scale > 0 else 1.0
        self.detect_timeout = detect_timeout
        self.host = host  # where the workers reach this process
        self.current: TrialPlay | None = None
        self.server: asyncio.base_events.Server | None = None
        self.writers: list[asyncio.StreamWriter | None] = [None] * len(links)
        self.connected: asyncio.Event | None = None
        self.late_starts = 0  # trials whose start reached some worker after the start instant
        self.lead = START_LEAD  # grows to twice the slowest start seen (a loaded machine)
        client.sync(self._open)

    async def _open(self) -> None:
        """Listen, have every worker connect, and wait until each has said who it is."""
        self.connected = asyncio.Event()
        self.server = await asyncio.start_server(self._accept, self.host, 0)
        port = self.server.sockets[0].getsockname()[1]
        await asyncio.gather(*(link.actor.connect(self.host, port) for link in self.links))
        try:
            await asyncio.wait_for(self.connected.wait(), CONNECT_SECONDS)
        except TimeoutError:
            missing = [w for w, writer in enumerate(self.writers) if writer is None]
            where = f"{self.host}:{port}"
            raise EmulationError(
                f"workers {missing} did not connect to the PS at {where} within "
                f"{CONNECT_SECONDS:.0f} s (is this machine reachable from the cluster?)"
            ) from None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One worker's stream: its first frame names it; every later one is handled at once."""
        no_delay(writer)
        try:
            _, worker = await read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, TypeError):
            writer.close()
            return
        self.writers[worker] = writer
        if all(w is not None for w in self.writers):
            self.connected.set()
        while True:
            try:
                item = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if self.current is not None:
                    self.current.fail(EmulationError(f"worker {worker}'s stream closed: {exc!r}"))
                return
            play = self.current
            if play is not None and item[1] == play.key and not play.over:
                play.handle(worker, item, time.time())

    def send(self, worker: int, item: tuple) -> None:
        """An item for ``worker`` (a download, or the PS's stop), on its stream."""
        self.writers[worker].write(frame(item))

    def close(self) -> None:
        async def shut() -> None:
            for writer in self.writers:
                if writer is not None:
                    writer.close()
            if self.server is not None:
                self.server.close()

        with contextlib.suppress(Exception):
            self.client.sync(shut)

    def play(
        self,
        index: int,
        protocol: Protocol,
        draw: TrialDraw,
        grads: np.ndarray | None,
        truth: np.ndarray | None,
        theta: np.ndarray | None = None,
    ) -> tuple[dict[str, object], list[tuple[float, str, int, int, int]]]:
        """One (scheme, trial): its summary row by column name, and its trace rows. ``grads``
        only tell the PS's own ``Trial`` that numbers are on (no protocol's PS side reads the
        chunk gradients: it decodes what arrives) and ``truth`` is what ``rel_error`` compares
        the estimate with; the workers compute their own gradients: at ``theta``, the training
        model's parameters that the PS broadcasts with ``prepare`` (None: the config's)."""
        play = TrialPlay(self, index, protocol, draw, grads, truth, theta)
        return self.client.sync(play.play)


class TrialPlay:
    """The PS's state during one (scheme, trial); every method runs on the client's loop."""

    def __init__(self, ps, index, protocol, draw, grads, truth, theta=None) -> None:
        self.ps = ps
        self.key = (index, draw.trial)
        self.protocol = protocol
        self.draw = draw
        self.truth = truth
        self.theta = theta  # the broadcast parameters: a download that is no protocol message
        self.trial = protocol.new_trial(draw.down, grads)
        workers = len(ps.links)
        self.down = [bool(d) for d in draw.down]
        self.busy = {w for w in range(workers) if not self.down[w]}
        self.crashing = {w for w in self.busy if math.isfinite(draw.crash_time[w])}
        self.pending = 0  # downloads sent and not yet handled by their worker
        self.timers: set[asyncio.TimerHandle] = set()
        self.rows: list[tuple[float, str, int, int, int]] = []  # PS-side trace, PS clock
        self.downloaded = 0
        self.ps_controls = 0
        self.decided_at: float | None = None
        self.start = math.inf
        self.over = False
        self.done: asyncio.Future | None = None
        self.heard = time.time()

    # -- the trial -----------------------------------------------------------------------------

    async def play(self):
        ps, key, unit = self.ps, self.key, self.ps.unit
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        orders, times = self.protocol.orders, self.draw.step_times
        await asyncio.gather(*(
            link.actor.prepare(key, [float(t) * ps.scale for t in times[w][: len(orders[w])]],
                               float(self.draw.crash_time[w]) * ps.scale, self.down[w],
                               ps.scale, self.theta)
            for w, link in enumerate(ps.links)
        ))  # fmt: skip
        ps.current = self
        sent = time.time()
        self.start = sent + ps.lead
        started = [link.actor.start(key, self.start + link.offset) for link in ps.links]
        if self.trial.deadline is not None:
            self._timer(self.start + self.trial.deadline * unit, "deadline", PS)
        await asyncio.gather(*started)
        took = time.time() - sent
        if took > ps.lead:
            ps.late_starts += 1
        ps.lead = min(MAX_LEAD, max(ps.lead, 2 * took))
        try:
            self._check()
            while not self.done.done():
                await asyncio.wait([self.done], timeout=SILENCE_LIMIT)
                if not self.done.done() and time.time() - self.heard >= SILENCE_LIMIT:
                    raise EmulationError(
                        f"no message from any worker for {SILENCE_LIMIT:.0f} s in trial "
                        f"{self.key[1]} (workers busy: {sorted(self.busy)})"
                    )
            self.done.result()  # an error a poll reported
        finally:
            self.over = True
            ps.current = None
            for handle in self.timers:
                handle.cancel()
        return await self._finish()

    def fail(self, error: Exception) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(error)

    def _check(self) -> None:
        """Decoded, or nothing left that could make the PS decode: the trial is over."""
        quiet = not (self.busy or self.pending or self.timers or self.crashing)
        if (self.decided_at is not None or quiet) and not self.done.done():
            self.done.set_result(None)

    def _timer(self, at: float, what: str, worker: int) -> None:
        loop = asyncio.get_running_loop()
        handle = None

        def fire() -> None:
            self.timers.discard(handle)
            if not self.over:
                self._fire(at, what, worker)

        handle = loop.call_later(max(0.0, at - time.time()), fire)
        self.timers.add(handle)

    def handle(self, worker: int, item: tuple, arrived: float) -> None:
        self.heard = arrived
        kind = item[0]
        if kind == "idle":
            self.busy.discard(worker)
        elif kind == "delivered":
            self.pending -= 1
        elif kind == "crash":
            self.busy.discard(worker)
            crashed_at = item[2] - self.ps.links[worker].offset
            self._timer(crashed_at + self.ps.detect_timeout * self.ps.unit, "detect", worker)
        elif kind == "msg" and self.decided_at is None:
            msg: Message = item[3]
            self.rows.append((arrived, f"{msg.kind}_received", msg.worker, msg.chunk, msg.size))
            self._react(self.trial.ps_receive(msg, self._now(arrived)))
        self._check()

    def _fire(self, at: float, what: str, worker: int) -> None:
        if self.decided_at is None:
            if what == "deadline":
                self.rows.append((at, "deadline", PS, -1, 0))
                self._react(self.trial.at_deadline(self._now(at)))
            else:
                self.crashing.discard(worker)
                self.rows.append((at, "crash_detected", PS, -1, 0))
                self._react(self.trial.worker_failed(worker, self._now(at)))
        self._check()

    def _now(self, at: float) -> float:
        return (at - self.start) / self.ps.unit

    def _react(self, reaction: Reaction) -> None:
        for worker in reaction.stop:
            self.ps.send(worker, ("halt", self.key))
        for msg in reaction.send:
            now = time.time()
            self.downloaded += msg.size
            if msg.kind == CONTROL:
                self.ps_controls += 1
            self.rows.append((now, f"{msg.kind}_sent", msg.worker, msg.chunk, msg.size))
            self.pending += 1
            self.ps.send(msg.worker, ("deliver", self.key, msg))
        if reaction.decoded and self.decided_at is None:
            self.decided_at = time.time()
            self.rows.append((self.decided_at, "decoded", PS, -1, 0))

    # -- the row and the trace -----------------------------------------------------------------

    async def _finish(self):
        ps, unit, start = self.ps, self.ps.unit, self.start
        finished = await asyncio.gather(*(link.actor.finish(self.key) for link in ps.links))
        trace: list[tuple[float, str, int, int, int]] = []
        for w, rows in enumerate(finished):
            offset = ps.links[w].offset
            for at, kind, chunk, size in rows:
                trace.append(((at - offset - start) / unit, kind, w, chunk, size))
        if self.decided_at is None:
            end = math.inf
        else:
            end = (self.decided_at - start) / unit
            trace = [row for row in trace if row[0] <= end]
            trace.extend(_interrupted(trace, end))
        trace.extend(((at - start) / unit, kind, w, c, s) for at, kind, w, c, s in self.rows)
        trace.extend((0.0, "down", w, -1, 0) for w in range(len(self.down)) if self.down[w])
        trace.sort(key=lambda row: row[0])
        return self._row(trace, end), trace

    def _row(self, trace, end: float) -> dict[str, object]:
        """The summary row, as ``engine.des.simulate_row`` assembles it from the same
        ``Decoded``; the counts are what was sent (computed) up to the decode."""
        protocol, decoded = self.protocol, self.decided_at is not None
        uploads = [row for row in trace if row[1] == f"{UPLOAD}_sent" and row[2] != PS]
        controls = [row for row in trace if row[1] == f"{CONTROL}_sent" and row[2] != PS]
        error, used, condition, left, estimate = math.nan, 0, math.nan, math.nan, None
        if decoded:
            result = self.trial.result()
            used, condition, left = result.chunks_used, result.cond, result.residual
            estimate = result.estimate
            if not protocol.conditioning:
                condition = math.nan
            if self.truth is not None:
                error = rel_error(result.estimate, self.truth)
        return {
            "scheme": protocol.label,
            "protocol": protocol.name,
            "trial": self.draw.trial,
            "completion_time": end,
            "decoded": decoded,
            "rel_error": error,
            "upload_floats": sum(row[4] for row in uploads),
            "download_floats": self.downloaded,
            "messages": len(uploads),
            "control_messages": len(controls) + self.ps_controls,
            "chunks_computed": sum(1 for row in trace if row[1] == "chunk_done"),
            "chunks_used": used,
            "decode_cond": condition,
            "residual": left,
            "accurate": bool(accurate(decoded, error, left, condition, self.ps.tolerance)),
            "estimate": estimate,
        }


def _interrupted(trace, end: float) -> list[tuple[float, str, int, int, int]]:
    """The chunks in progress at the decode (started, neither done nor cut by a crash), as the
    event engine traces them: ``interrupt`` at the decode instant."""
    current: dict[int, int] = {}
    for _, kind, worker, chunk, _ in sorted(trace, key=lambda row: row[0]):
        if kind == "chunk_start":
            current[worker] = chunk
        elif kind in ("chunk_done", "crash"):
            current.pop(worker, None)
    return [(end, "interrupt", worker, chunk, 0) for worker, chunk in sorted(current.items())]
