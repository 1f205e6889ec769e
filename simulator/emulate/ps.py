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

import heapq
import math
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..cluster import TrialDraw
from ..coding.base import CONTROL, PS, UPLOAD, Message, Protocol, Reaction
from ..coding.numerics import rel_error

#: Seconds between sending the start and the common start instant (every worker must have it).
START_LEAD = 0.03
#: The most the start lead grows to.
MAX_LEAD = 1.0
#: Seconds without any news from a busy cluster before the emulation gives up on it.
SILENCE_LIMIT = 120.0


class EmulationError(RuntimeError):
    """The real cluster misbehaved (a worker stopped answering): not the user's input."""


@dataclass
class Link:
    """One worker as the PS sees it: its actor and its clock's offset (worker - PS)."""

    actor: object
    offset: float


class Poller(threading.Thread):
    """Long-polls one worker's outbox and queues what it says, stamped with the PS's clock at
    arrival (a daemon: it blocks in Dask and ends with the process)."""

    def __init__(self, worker: int, link: Link, inbox: queue.Queue) -> None:
        super().__init__(daemon=True, name=f"gcsim-poll-{worker}")
        self.worker, self.link, self.inbox = worker, link, inbox
        self.closing = threading.Event()

    def run(self) -> None:
        while not self.closing.is_set():
            try:
                items = self.link.actor.next_messages().result()
            except Exception as exc:  # noqa: BLE001 - reported to the PS loop, which raises
                if not self.closing.is_set():
                    self.inbox.put((time.time(), self.worker, ("error", None, repr(exc))))
                return
            now = time.time()
            for item in items:
                self.inbox.put((now, self.worker, item))


class ParameterServer:
    """Plays trials on the workers behind ``links`` (one per simulated worker)."""

    def __init__(self, links: list[Link], scale: float, detect_timeout: float) -> None:
        self.links = links
        self.scale = scale
        self.unit = scale if scale > 0 else 1.0
        self.detect_timeout = detect_timeout
        self.inbox: queue.Queue = queue.Queue()
        self.pollers = [Poller(w, link, self.inbox) for w, link in enumerate(links)]
        for poller in self.pollers:
            poller.start()
        self.late_starts = 0  # trials whose start reached some worker after the start instant
        self.lead = START_LEAD  # grows to twice the slowest start seen (a loaded machine)

    def close(self) -> None:
        for poller in self.pollers:
            poller.closing.set()

    def play(
        self,
        index: int,
        protocol: Protocol,
        draw: TrialDraw,
        grads: np.ndarray | None,
        truth: np.ndarray | None,
    ) -> tuple[dict[str, object], list[tuple[float, str, int, int, int]]]:
        """One (scheme, trial): its summary row by column name, and its trace rows."""
        return TrialPlay(self, index, protocol, draw, grads, truth).play()


class TrialPlay:
    """The PS's state during one (scheme, trial)."""

    def __init__(self, ps, index, protocol, draw, grads, truth) -> None:
        self.ps = ps
        self.key = (index, draw.trial)
        self.protocol = protocol
        self.draw = draw
        self.truth = truth
        self.trial = protocol.new_trial(draw.down, grads)
        workers = len(ps.links)
        self.down = [bool(d) for d in draw.down]
        self.busy = {w for w in range(workers) if not self.down[w]}
        self.crashing = {w for w in self.busy if math.isfinite(draw.crash_time[w])}
        self.failed: set[int] = set()
        self.pending = 0  # downloads sent and not yet handled by their worker
        self.timers: list[tuple[float, int, str, int]] = []  # (PS time, seq, what, worker)
        self.rows: list[tuple[float, str, int, int, int]] = []  # PS-side trace, PS clock
        self.downloaded = 0
        self.ps_controls = 0
        self.decided_at: float | None = None
        self.start = math.inf

    # -- the trial -----------------------------------------------------------------------------

    def play(self):
        ps, key, unit = self.ps, self.key, self.ps.unit
        orders = self.protocol.orders
        times = self.draw.step_times
        ready = [
            link.actor.prepare(
                key,
                [float(t) * ps.scale for t in times[w][: len(orders[w])]],
                float(self.draw.crash_time[w]) * ps.scale,
                self.down[w],
                ps.scale,
            )  # fmt: skip
            for w, link in enumerate(ps.links)
        ]
        for future in ready:
            future.result()
        sent = time.time()
        self.start = sent + ps.lead
        started = [link.actor.start(key, self.start + link.offset) for link in ps.links]
        if self.trial.deadline is not None:
            self._timer(self.start + self.trial.deadline * unit, "deadline", PS)
        for future in started:
            future.result()
        took = time.time() - sent
        if took > ps.lead:
            ps.late_starts += 1
        ps.lead = min(MAX_LEAD, max(ps.lead, 2 * took))
        self._loop()
        return self._finish()

    def _timer(self, at: float, what: str, worker: int) -> None:
        heapq.heappush(self.timers, (at, len(self.rows) + len(self.timers), what, worker))

    def _quiet(self) -> bool:
        """Nothing left that could make the PS decode."""
        return not (self.busy or self.pending or self.timers or self.crashing)

    def _loop(self) -> None:
        heard = time.time()
        while self.decided_at is None and not self._quiet():
            wait = SILENCE_LIMIT
            if self.timers:
                wait = min(wait, max(0.0, self.timers[0][0] - time.time()))
            try:
                arrived, worker, item = self.ps.inbox.get(timeout=wait)
            except queue.Empty:
                if self.timers and self.timers[0][0] <= time.time():
                    self._fire(heapq.heappop(self.timers))
                    continue
                if time.time() - heard >= SILENCE_LIMIT:
                    raise EmulationError(
                        f"no message from any worker for {SILENCE_LIMIT:.0f} s in trial "
                        f"{self.key[1]} (workers busy: {sorted(self.busy)})"
                    ) from None
                continue
            heard = time.time()
            kind, key = item[0], item[1]
            if kind == "error":
                raise EmulationError(f"worker {worker} failed: {item[2]}")
            if key != self.key:
                continue  # a late item of an earlier trial
            # A timer that fell due before this arrival goes first (the PS's own order).
            while self.timers and self.timers[0][0] <= arrived and self.decided_at is None:
                self._fire(heapq.heappop(self.timers))
            if self.decided_at is not None:
                break
            self._handle(worker, item, arrived)

    def _handle(self, worker: int, item: tuple, arrived: float) -> None:
        kind = item[0]
        if kind == "idle":
            self.busy.discard(worker)
        elif kind == "delivered":
            self.pending -= 1
        elif kind == "crash":
            self.busy.discard(worker)
            crashed_at = item[2] - self.ps.links[worker].offset
            self._timer(crashed_at + self.ps.detect_timeout * self.ps.unit, "detect", worker)
        elif kind == "msg":
            msg: Message = item[3]
            self.rows.append((arrived, f"{msg.kind}_received", msg.worker, msg.chunk, msg.size))
            self._react(self.trial.ps_receive(msg, self._now(arrived)))

    def _fire(self, timer: tuple[float, int, str, int]) -> None:
        at, _, what, worker = timer
        if what == "deadline":
            self.rows.append((at, "deadline", PS, -1, 0))
            self._react(self.trial.at_deadline(self._now(at)))
        else:
            self.crashing.discard(worker)
            self.failed.add(worker)
            self.rows.append((at, "crash_detected", PS, -1, 0))
            self._react(self.trial.worker_failed(worker, self._now(at)))

    def _now(self, at: float) -> float:
        return (at - self.start) / self.ps.unit

    def _react(self, reaction: Reaction) -> None:
        for worker in reaction.stop:
            self.ps.links[worker].actor.halt(self.key)
        for msg in reaction.send:
            now = time.time()
            self.downloaded += msg.size
            if msg.kind == CONTROL:
                self.ps_controls += 1
            self.rows.append((now, f"{msg.kind}_sent", msg.worker, msg.chunk, msg.size))
            self.pending += 1
            self.ps.links[msg.worker].actor.deliver(self.key, msg)
        if reaction.decoded and self.decided_at is None:
            self.decided_at = time.time()
            self.rows.append((self.decided_at, "decoded", PS, -1, 0))

    # -- the row and the trace -----------------------------------------------------------------

    def _finish(self):
        ps, unit, start = self.ps, self.ps.unit, self.start
        finished = [link.actor.finish(self.key) for link in ps.links]
        trace: list[tuple[float, str, int, int, int]] = []
        for w, future in enumerate(finished):
            offset = ps.links[w].offset
            for at, kind, chunk, size in future.result():
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
        error, used, condition, left = math.nan, 0, math.nan, math.nan
        if decoded:
            result = self.trial.result()
            used, condition, left = result.chunks_used, result.cond, result.residual
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
