"""Fitting the simulator's network to the messages of a real run's trace (``gcsim fit``).

The network model (``config.Network``): a message of ``size`` floats travels for ``latency +
size * time_per_float``, and a PS with ``ps_overhead`` > 0 spends that much on every message it
receives or sends, one at a time, first come first served. The overhead is what a real PS is
made of (one process deserializing, reacting, serializing): it is invisible in a message's own
delay when messages are rare, and dominant in a burst (partial_gc's m coefficient downloads
followed by m uploads: the last one waits for all the others). A fit of the delays alone
(``fit_delays``) folds the queueing into a larger latency, charged once per hop, which is wrong
both for isolated messages and for bursts; ``fit_network`` replays the PS's queue over the
measured send instants and fits all three parameters to the measured arrival instants.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize

from .coding.base import DOWNLOAD
from .errors import ConfigError
from .fit import format_number

#: Starting points of the fit: the share of the typical delay first put on the PS's overhead.
STARTS = (0.05, 0.25, 0.6)

#: Message kinds a trace records sent and received, and which way each travels.
KINDS = ("upload", "control", DOWNLOAD)


def _keys(events: pd.DataFrame) -> list[str]:
    """What identifies one trial's trace: (scheme, trial) and, in a run of several
    iterations, the iteration (each iteration's clock starts at 0)."""
    return [k for k in ("scheme", "trial", "iteration") if k in events.columns]


def message_pairs(events: pd.DataFrame) -> pd.DataFrame:
    """One row per delivered message: its trial keys, ``kind``, ``size``, ``sent`` and
    ``received`` instants and ``to_ps``. The n-th send of a (trial, worker, kind, chunk) is
    matched with its n-th receipt (messages are not reordered on one worker's channel)."""
    keys = [*_keys(events), "worker", "chunk"]
    out = []
    for kind in KINDS:
        sent = events[events["kind"] == f"{kind}_sent"]
        got = events[events["kind"] == f"{kind}_received"]
        sent = sent.assign(n=sent.groupby(keys).cumcount())
        got = got.assign(n=got.groupby(keys).cumcount())
        both = sent.merge(got, on=[*keys, "n"], suffixes=("_sent", "_got"))
        frame = both[keys].copy()
        frame["kind"] = kind
        frame["size"] = both["size_sent"].to_numpy(float)
        frame["sent"] = both["time_sent"].to_numpy(float)
        frame["received"] = both["time_got"].to_numpy(float)
        frame["to_ps"] = kind != DOWNLOAD
        out.append(frame)
    pairs = pd.concat(out, ignore_index=True)
    if pairs.empty or not np.isfinite(pairs[["sent", "received"]].to_numpy()).all():
        why = "no measured messages (no matching *_sent/*_received events)"
        raise ConfigError([("TIMES", f"{why}; give a real run's events.parquet")])
    return pairs


def message_overheads(events: pd.DataFrame) -> pd.DataFrame:
    """One row per delivered message: ``kind``, ``size`` and ``delay`` (received - sent)."""
    pairs = message_pairs(events)
    return pd.DataFrame({"kind": pairs["kind"], "size": pairs["size"],
                         "delay": pairs["received"] - pairs["sent"]})  # fmt: skip


def fit_delays(overheads: pd.DataFrame) -> dict[str, float]:
    """``latency`` and ``time_per_float`` of ``latency + size * tpf`` from the delays alone
    (no PS queue). Robust to the stalls of a loaded machine (a few messages delayed 10-100x):
    the median delay of each message size, then a line through those medians (least squares
    weighted by the messages of each size) when there are several sizes; both kept >= 0."""
    delays = overheads["delay"].to_numpy(float)
    frame = pd.DataFrame({"size": overheads["size"].to_numpy(float), "delay": delays})
    medians = frame.groupby("size")["delay"].agg(["median", "size"])
    sizes = medians.index.to_numpy(float)
    typical = medians["median"].to_numpy(float)
    weights = medians["size"].to_numpy(float)
    overall = float(np.median(delays))
    if sizes.size < 2 or np.ptp(typical) <= 1e-9 * abs(overall):
        return {"latency": max(0.0, overall), "time_per_float": 0.0}
    slope, intercept = np.polyfit(sizes, typical, 1, w=np.sqrt(weights))
    if slope <= 0:
        return {"latency": max(0.0, overall), "time_per_float": 0.0}
    if intercept < 0:
        through_zero = float(np.sum(weights * sizes * typical) / np.sum(weights * sizes**2))
        return {"latency": 0.0, "time_per_float": through_zero}
    return {"latency": float(intercept), "time_per_float": float(slope)}


class QueueReplay:
    """The arrival instants the network model predicts for a trace's messages, given their
    measured send instants: per trial, the PS serves its messages first come first served
    (a message to the PS once it has travelled, a message from it at once), ``ps_overhead``
    each; a message to the PS is received when served, one from it travels after."""

    def __init__(self, pairs: pd.DataFrame) -> None:
        self.received = pairs["received"].to_numpy(float)
        self.sent = pairs["sent"].to_numpy(float)
        self.size = pairs["size"].to_numpy(float)
        self.to_ps = pairs["to_ps"].to_numpy(bool)
        codes = pairs.groupby(_keys(pairs), sort=False).ngroup().to_numpy()
        self.trials = [np.flatnonzero(codes == c) for c in range(int(codes.max()) + 1)]

    def predict(self, latency: float, time_per_float: float, overhead: float) -> np.ndarray:
        travel = latency + self.size * time_per_float
        ready = np.where(self.to_ps, self.sent + travel, self.sent)
        served = np.empty_like(ready)
        for rows in self.trials:
            free = -np.inf
            for i in rows[np.argsort(ready[rows], kind="stable")]:
                free = max(ready[i], free) + overhead
                served[i] = free
        return np.where(self.to_ps, served, served + travel)

    def errors(self, params: dict[str, float]) -> np.ndarray:
        """Predicted minus measured arrival instant, per message."""
        predicted = self.predict(params["latency"], params["time_per_float"],
                                 params.get("ps_overhead", 0.0))  # fmt: skip
        return predicted - self.received


def fit_network(events: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """(``latency``, ``time_per_float``, ``ps_overhead``) fitted to a trace's arrival instants
    by robust least squares (soft L1: a few stalled messages do not drag the fit) over the PS
    queue's replay, started from the delay-only fit; and the median and mean |error| of the
    arrival instants under the delay-only fit ('delays', 'delays_mean') and under the full one
    ('queue', 'queue_mean'). The full fit is kept unless its mean |error| (what it minimizes)
    is larger: the burst a queue explains may be a few messages of many, invisible in a
    median."""
    pairs = message_pairs(events)
    replay = QueueReplay(pairs)
    start = fit_delays(message_overheads(events))
    typical = float(np.median(pairs["received"] - pairs["sent"]))
    if typical <= 0:  # most messages took no time (a simulation of a free network, say)
        zero = {"latency": 0.0, "time_per_float": 0.0, "ps_overhead": 0.0}
        error = float(np.median(np.abs(replay.errors(zero))))
        mean = float(np.mean(np.abs(replay.errors(zero))))
        return zero, {"delays": error, "queue": error, "delays_mean": mean, "queue_mean": mean}
    scale = typical
    floats = max(float(pairs["size"].max()), 1.0)
    names = ("latency", "time_per_float", "ps_overhead")
    x_scale = np.array([scale, scale / floats, scale / 10])

    def residuals(x: np.ndarray) -> np.ndarray:
        return replay.errors(dict(zip(names, x * x_scale, strict=True))) / scale

    best = None
    for share in STARTS:  # the replay is piecewise linear in the parameters: a few starts
        x0 = np.array([start["latency"] * (1 - share) / x_scale[0],
                       start["time_per_float"] / x_scale[1], 10 * share])  # fmt: skip
        solution = optimize.least_squares(residuals, x0, bounds=(0.0, np.inf), loss="soft_l1",
                                          f_scale=0.5, diff_step=1e-3)  # fmt: skip
        if best is None or solution.cost < best.cost:
            best = solution

    # Polish on the sum of |errors| (robust, and Nelder-Mead steps across the kinks that stop
    # a gradient method short of the exact fit of a trace the model explains exactly).
    def total(x: np.ndarray) -> float:
        return float(np.abs(residuals(np.abs(x))).sum())

    options = {"xatol": 1e-9, "fatol": 1e-12, "maxiter": 3000}
    polished = optimize.minimize(total, best.x, method="Nelder-Mead", options=options)
    x = np.abs(polished.x) if polished.fun <= total(best.x) else best.x
    fitted = {name: float(v) for name, v in zip(names, x * x_scale, strict=True)}
    # A part adding under a millionth of a typical delay to any message is rounding: 0.
    if fitted["time_per_float"] * floats < 1e-6 * typical:
        fitted["time_per_float"] = 0.0
    if fitted["ps_overhead"] < 1e-6 * typical:
        fitted["ps_overhead"] = 0.0
    by_delays, by_queue = np.abs(replay.errors(start)), np.abs(replay.errors(fitted))
    if by_queue.mean() > by_delays.mean():  # the fit's own criterion: the queue explains less
        fitted, by_queue = {**start, "ps_overhead": 0.0}, by_delays
    return fitted, {
        "delays": float(np.median(by_delays)),
        "queue": float(np.median(by_queue)),
        "delays_mean": float(by_delays.mean()),
        "queue_mean": float(by_queue.mean()),
    }


def network_block(params: dict[str, float]) -> str:
    """The ``network:`` block to paste into a config's cluster section."""
    parts = [f"latency: {format_number(params['latency'])}",
             f"time_per_float: {format_number(params['time_per_float'])}"]  # fmt: skip
    if params.get("ps_overhead", 0.0) > 0:
        parts.append(f"ps_overhead: {format_number(params['ps_overhead'])}")
    return "network: {" + ", ".join(parts) + "}"
