"""Benchmarks: how many trials per second each engine runs, against bare baselines.

For each cluster size (workers m, load) an experiment with every protocol is run by the event
engine (``runner.run_trials``) and by the fast engine (``engine.fast.run_trials_fast``), and
each is compared with a baseline written for the purpose:

- bare SimPy: a model with no protocol logic that processes as many events as the event engine
  did on the very trials that were timed (counted by instrumenting ``simpy.Environment.step``):
  one callback chain of timeouts per live worker, the chunks spread over them, and the message
  arrivals as timeouts with a callback that only counts. That is the cheapest way SimPy offers
  (no process, no generator), so its cost per event is the floor for any SimPy model of these
  trials; target: des within 2x of it. The event engine's time per event leaves out what a
  run pays once (``run_trials`` on zero trials: building the protocols), which no event causes.
- bare SimPy processes: the same events, the workers written the usual way, as generator
  processes. Reported beside the floor: it is what a straightforward SimPy model costs.
- bare NumPy: per scheme, one cumulative sum over the realization's (trials, m, steps) step
  times and one ``np.partition`` over workers: the least an order-statistic evaluation has to
  do. Target: fast within 3x of it per trial.

The targets are judged on every scheme with the numerics off, as a large sweep would run them:
no gradients (``data.gradients: none``) and no condition numbers (``output.decode_cond:
false``). Numerics are not events: they cost the same in both engines and neither baseline has
them, so they would hide the engines' own costs. Every size is also timed with ``decode_cond``
on (the default), to show what the numbers cost: original_gc's is a dense SVD of an
(m - s) x m matrix per trial in both engines.

BLAS runs single-threaded while benchmarking (restored afterwards): the matrices here are
small, and on a busy machine OpenBLAS threads made a 200 x 200 SVD 300x slower.

The numerics rows (``run_numerics``, issue 17) time what the rows above leave out: every scheme
with real gradients (dim 1,200, condition numbers off), alone and all together, in the fast
engine against ``BareDecode``, the least NumPy that decodes the same trials (the same gradient
draws, uploads and solves on the same shapes). Planning (building the protocols: original_gc
scores 16 candidate codes) is timed apart, cold and then warm from the plan cache
(``plan_cache``) in a temporary directory, and is not in the per-trial times.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from . import config as cfg
from .cluster import Cluster
from .coding.numerics import join_blocks, split_blocks
from .coding.registry import build
from .engine.fast import run_trials_fast
from .runner import run_trials, simulate_row
from .tuning import blas_threads

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((20, 4), (200, 10), (1000, 10))
TARGETS = {"des_per_event_vs_bare_simpy": 2.0, "fast_per_trial_vs_bare_numpy": 3.0}
#: Each size is timed twice, every scheme both times: key -> output.decode_cond. The targets are
#: judged on "all" (numerics off); "all_decode_cond" shows what the condition numbers cost.
SCENARIOS = {"all": False, "all_decode_cond": True}
SCENARIO_NAMES = {"all": "all", "all_decode_cond": "all + decode_cond"}

#: (des trials, fast trials) per number of workers; quick mode and the full run. Timings include
#: building the protocols and drawing a 256-trial block (about 0.05-0.1 s at m = 1000), so each
#: size gets enough trials for that to stay a small share.
_TRIALS = {
    "quick": {20: (60, 2048), 200: (6, 512), 1000: (3, 32)},
    "full": {20: (400, 8192), 200: (30, 2048), 1000: (12, 256)},
}
#: A timed repeat is not started once this many seconds went into one measurement.
_BUDGET = {"quick": 3.0, "full": 30.0}


def bench_experiment(
    workers: int, load: int, trials: int, decode_cond: bool = False, seed: int = 1
) -> cfg.Experiment:
    """The benchmark experiment: every protocol on one cluster (partial_gc with ell 1 and 2).

    Shifted-exponential speeds per worker, no failures (so every scheme decodes and pays its
    decoder), a network with latency and finite bandwidth (every message has a cost), no
    gradients and no event traces; condition numbers only with ``decode_cond``. ``original_gc``
    uses one random code (``candidates: 1``): choosing the best of 16 costs 4096 SVDs of an
    (m - s) x m matrix at setup.
    """
    schemes: list[dict[str, Any]] = [
        {"protocol": "uncoded"},
        {"protocol": "fastest_k", "fraction": 0.9},
        {"protocol": "frc", "load": load},
        {"protocol": "multi_message", "load": load},
        {"protocol": "original_gc", "load": load, "ell": 1, "candidates": 1},
        {"protocol": "partial_gc", "load": load, "ell": 1, "label": "partial_gc ell=1"},
        {"protocol": "partial_gc", "load": load, "ell": 2, "label": "partial_gc ell=2"},
    ]
    return cfg.from_dict(
        {
            "name": f"bench-m{workers}",
            "seed": seed,
            "trials": trials,
            "cluster": {
                "workers": workers,
                "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0},
                "failures": {"prob": 0.0},
                "network": {"latency": 0.001, "time_per_float": 1e-6},
            },
            "data": {"dim": 1000, "gradients": "none"},
            "output": {"events_trials": 0, "decode_cond": decode_cond},
            "schemes": schemes,
        }
    )


# --------------------------------------------------------------------------------------------
# Timing helpers


def _best(fn: Callable[[], Any], repeats: int, budget: float) -> float:
    """The fastest of up to ``repeats`` runs (at least one; no new run once ``budget``
    seconds were spent): the least disturbed by whatever else the machine does."""
    best, spent = math.inf, 0.0
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - started
        best, spent = min(best, elapsed), spent + elapsed
        if spent >= budget:
            break
    return best


@contextlib.contextmanager
def counting_events() -> Iterator[Counter]:
    """Count the events every ``simpy.Environment`` processes while open, by event class; a
    timeout carrying a callback is counted under the callback's name (``Timeout:chunk_done``),
    so chunk completions and message arrivals can be told apart."""
    counts: Counter = Counter()
    original = simpy.Environment.step

    def step(env: simpy.Environment) -> None:
        if env._queue:
            event = env._queue[0][3]
            kind = type(event).__name__
            if kind == "Timeout" and event.callbacks:
                kind += ":" + getattr(event.callbacks[0], "__name__", "?")
            counts[kind] += 1
        original(env)

    simpy.Environment.step = step  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        simpy.Environment.step = original  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------------
# The event engine and bare SimPy


def des_events(exp: cfg.Experiment, first: int, count: int) -> list[tuple[int, Counter]]:
    """(live workers, events by kind) of each (trial, scheme) as the event engine processes
    them, on the same path as ``runner.run_trials`` (same protocols, realizations, network)."""
    protocols = build(exp)
    cluster = Cluster(exp, steps=max(p.steps for p in protocols))
    realization = cluster.draw(first, count)
    out = []
    for trial in range(first, first + count):
        draw = realization.trial(trial)
        live = int((~draw.down).sum())
        for protocol in protocols:
            with counting_events() as counts:
                simulate_row(exp, protocol, draw, None, None)
            out.append((live, Counter(counts)))
    return out


#: Events of the event engine that are message arrivals (the rest are chunks, crashes, ...).
_ARRIVALS = ("Timeout:deliver_to_ps", "Timeout:deliver_to_worker")


def _bare_shape(live: int, counts: Counter) -> tuple[int, int, int]:
    """(workers, chunk events, message events) of the bare model matching a counted trial:
    every event that is not a message arrival counts as a chunk."""
    messages = sum(counts[kind] for kind in _ARRIVALS)
    return max(1, live), sum(counts.values()) - messages, messages


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (p < total % parts) for p in range(parts)]


def bare_simpy_trial(workers: int, chunks: int, messages: int) -> None:
    """The floor of a SimPy model of a trial: ``workers`` callback chains of timeouts (the
    cheapest way SimPy offers to advance a worker) that together compute ``chunks`` chunks and
    send ``messages`` messages (timeouts whose callback only counts them). No protocol."""
    env = simpy.Environment()
    left = _spread(chunks, workers)
    sends = _spread(messages, workers)
    received = [0]

    def arrive(event: simpy.Event) -> None:
        received[0] += 1

    def send(worker: int) -> None:
        sends[worker] -= 1
        env.timeout(0.01, worker).callbacks.append(arrive)

    def chunk_done(event: simpy.Event) -> None:
        worker = event.value
        left[worker] -= 1
        if sends[worker] and (sends[worker] >= left[worker] or left[worker] % 2 == 0):
            send(worker)
        if left[worker]:
            env.timeout(1.0 + 0.001 * worker, worker).callbacks.append(chunk_done)
        else:
            while sends[worker]:  # more messages than chunks: send the rest now
                send(worker)

    for worker in range(workers):
        if left[worker]:
            env.timeout(1.0 + 0.001 * worker, worker).callbacks.append(chunk_done)
        else:
            while sends[worker]:
                send(worker)
    env.run()


def bare_simpy_processes_trial(workers: int, chunks: int, messages: int) -> None:
    """The same trial written the usual SimPy way, one generator process per worker (a
    process resume per chunk): what a straightforward SimPy model costs."""
    env = simpy.Environment()
    left = _spread(chunks, workers)
    sends = _spread(messages, workers)
    received = [0]

    def arrive(event: simpy.Event) -> None:
        received[0] += 1

    def worker_process(worker: int):
        for step in range(left[worker]):
            yield env.timeout(1.0 + 0.001 * worker)
            todo = left[worker] - step - 1
            if sends[worker] and (sends[worker] >= todo or todo % 2 == 0):
                sends[worker] -= 1
                env.timeout(0.01, worker).callbacks.append(arrive)
        for _ in range(sends[worker]):
            env.timeout(0.01, worker).callbacks.append(arrive)

    for worker in range(workers):
        env.process(worker_process(worker))
    env.run()


# --------------------------------------------------------------------------------------------
# Bare NumPy


def bare_numpy(exp: cfg.Experiment, step_times: np.ndarray) -> None:
    """One cumulative sum and one partition over workers per scheme, on realization arrays."""
    protocols = build(exp)
    for protocol in protocols:
        steps = protocol.steps
        done = np.cumsum(step_times[:, :, :steps], axis=2)
        kth = min(protocol.workers - 1, getattr(protocol, "needed", protocol.workers) - 1)
        np.partition(done[:, :, -1], kth, axis=1)


# --------------------------------------------------------------------------------------------
# One size


def _measure(
    exp: cfg.Experiment, des_trials: int, fast_trials: int, repeats: int, budget: float
) -> dict[str, Any]:
    """Both engines and both baselines on one experiment."""
    des_seconds = _best(lambda: run_trials(exp, 0, des_trials), repeats, budget)
    # What a run pays once, whatever its length (building the protocols: about 0.1 s at
    # m = 1000), is not a cost per event: it is timed apart and left out of the event ratios.
    setup_seconds = _best(lambda: run_trials(exp, 0, 0), repeats, budget)
    simulate_seconds = max(des_seconds - setup_seconds, 1e-12)
    events = des_events(exp, 0, des_trials)
    total_events = sum(sum(counts.values()) for _, counts in events)
    shapes = [_bare_shape(live, counts) for live, counts in events]
    bare = {}
    for name, model in (
        ("bare_simpy", bare_simpy_trial),
        ("bare_processes", bare_simpy_processes_trial),
    ):

        def bare_des(model=model) -> None:
            for shape in shapes:
                model(*shape)

        seconds = _best(bare_des, repeats, budget)
        with counting_events() as bare_counts:
            bare_des()
        bare[name] = {
            "events_per_trial": sum(bare_counts.values()) / des_trials,
            "events_by_kind": dict(bare_counts),
            "seconds": seconds,
            "seconds_per_event": seconds / sum(bare_counts.values()),
        }

    fast_seconds = _best(lambda: run_trials_fast(exp, 0, fast_trials, build(exp)), repeats, budget)
    protocols = build(exp)
    cluster = Cluster(exp, steps=max(p.steps for p in protocols))
    draw_seconds = _best(lambda: cluster.draw(0, fast_trials), repeats, budget)
    step_times = cluster.draw(0, fast_trials).step_times
    numpy_seconds = _best(lambda: bare_numpy(exp, step_times), repeats, budget)

    des_per_event = simulate_seconds / total_events
    fast_per_trial = fast_seconds / fast_trials
    numpy_per_trial = numpy_seconds / fast_trials
    by_kind = dict(sum((counts for _, counts in events), Counter()))
    return {
        "schemes": exp.labels(),
        "des": {
            "trials": des_trials,
            "seconds": des_seconds,
            "setup_seconds": setup_seconds,
            "trials_per_second": des_trials / des_seconds,
            "events_per_trial": total_events / des_trials,
            "events_by_kind": by_kind,
            "seconds_per_event": des_per_event,  # setup left out
            "seconds_per_event_with_setup": des_seconds / total_events,
        },
        **bare,
        "fast": {
            "trials": fast_trials,
            "seconds": fast_seconds,
            "trials_per_second": fast_trials / fast_seconds,
            "seconds_per_trial": fast_per_trial,
            "draw_seconds_per_trial": draw_seconds / fast_trials,
        },
        "bare_numpy": {"seconds": numpy_seconds, "seconds_per_trial": numpy_per_trial},
        "des_per_event_vs_bare_simpy": des_per_event / bare["bare_simpy"]["seconds_per_event"],
        "des_per_event_vs_bare_processes": (
            des_per_event / bare["bare_processes"]["seconds_per_event"]
        ),
        "fast_per_trial_vs_bare_numpy": fast_per_trial / numpy_per_trial,
        "fast_speedup_over_des": (des_seconds / des_trials) / fast_per_trial,
    }


def _per_scheme(
    exp: cfg.Experiment, des_trials: int, fast_trials: int, repeats: int, budget: float
) -> dict[str, dict[str, float]]:
    """Trials per second of each scheme alone, in both engines."""
    out = {}
    for spec, label in zip(list(exp.schemes), exp.labels(), strict=True):
        alone = exp.model_copy(deep=True)
        alone.schemes[:] = [spec.model_copy(update={"label": label})]
        des = _best(lambda e=alone: run_trials(e, 0, des_trials), repeats, budget)
        fast = _best(lambda e=alone: run_trials_fast(e, 0, fast_trials, build(e)), repeats, budget)
        out[label] = {
            "des_trials_per_second": des_trials / des,
            "fast_trials_per_second": fast_trials / fast,
        }
    return out


def summary_memory(
    des_trials: tuple[int, int] = (512, 5120), fast_trials: tuple[int, int] = (131072, 393216)
) -> dict[str, float]:
    """Memory per summary row, marginal: (peak at the larger trial count - peak at the
    smaller) / (rows between them), traced by ``tracemalloc``, on m = 20 with two schemes.

    The event engine's runner keeps every row as a Python tuple until the end of its range,
    then builds the frame (both alive at the peak). The fast engine keeps NumPy columns and
    bounded temporaries (slices of ``_SLICE_ELEMENTS`` numbers), so its counts are taken past
    one slice."""
    exp = bench_experiment(20, 4, max(*des_trials, *fast_trials))
    exp.schemes[:] = exp.schemes[:2]  # uncoded and fastest_k: cheap trials, same row width
    schemes = len(exp.schemes)
    out: dict[str, float] = {}
    for name, engine, sizes in (
        ("des", lambda n: run_trials(exp, 0, n), des_trials),
        ("fast", lambda n: run_trials_fast(exp, 0, n, build(exp)), fast_trials),
    ):
        peaks = []
        for trials in sizes:
            tracemalloc.start()
            try:
                engine(trials)
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
        out[f"{name}_bytes_per_row"] = (peaks[1] - peaks[0]) / ((sizes[1] - sizes[0]) * schemes)
        out[f"{name}_peak_bytes"] = peaks[1]
        out[f"{name}_rows"] = sizes[1] * schemes
    return out


def _growth(points: list[tuple[int, float]]) -> list[dict[str, float]]:
    """Exponent b of cost ~ m^b between consecutive sizes."""
    out = []
    for (m0, c0), (m1, c1) in zip(points, points[1:], strict=False):
        out.append({"from": m0, "to": m1, "exponent": math.log(c1 / c0) / math.log(m1 / m0)})
    return out


# --------------------------------------------------------------------------------------------
# The benchmark


def run_benchmark(
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES,
    trials: tuple[int, int] | None = None,
    repeats: int = 3,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Trials per second of both engines for each (workers, load) in ``sizes``, with the
    baselines and ratios (see the module docstring). ``trials`` = (des trials, fast trials)
    for every size; by default they depend on the size and on ``quick``. Returns plain data
    (JSON-ready)."""
    mode = "quick" if quick else "full"
    budget = _BUDGET[mode]
    say = progress or (lambda _: None)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "mode": mode,
        "targets": TARGETS,
        "machine": _machine(),
        "gradients": "none",
        "sizes": [],
    }
    with blas_threads(1) as previous:
        result["machine"]["blas_threads_before"] = previous
        for workers, load in sizes:
            des_trials, fast_trials = trials or _default_trials(mode, workers)
            entry: dict[str, Any] = {"workers": workers, "load": load}
            for key, decode_cond in SCENARIOS.items():
                say(f"m={workers} load={load}: {SCENARIO_NAMES[key]}")
                exp = bench_experiment(workers, load, max(des_trials, fast_trials), decode_cond)
                fast_n = _fast_cap(mode, workers, fast_trials) if decode_cond else fast_trials
                entry[key] = _measure(exp, des_trials, fast_n, repeats, budget)
            if not quick:
                say(f"m={workers} load={load}: each scheme alone, with decode_cond")
                exp = bench_experiment(workers, load, max(des_trials, fast_trials), True)
                fast_n = _fast_cap(mode, workers, fast_trials)
                entry["per_scheme"] = _per_scheme(exp, des_trials, fast_n, 1, budget)
            result["sizes"].append(entry)
        say("memory per summary row")
        if quick:
            result["memory"] = summary_memory((256, 1280))
        else:
            result["memory"] = summary_memory()
    result["growth"] = {}
    for key in SCENARIOS:
        for engine, field in (("des", "trials_per_second"), ("fast", "trials_per_second")):
            points = [(e["workers"], 1.0 / e[key][engine][field]) for e in result["sizes"]]
            result["growth"][f"{engine}_{key}"] = _growth(points)
    result["seconds"] = time.perf_counter() - started
    return result


def _default_trials(mode: str, workers: int) -> tuple[int, int]:
    table = _TRIALS[mode]
    if workers in table:
        return table[workers]
    near = min(table, key=lambda m: abs(math.log(m / workers)))
    des, fast = table[near]
    scale = near / workers
    return max(1, round(des * scale)), max(16, round(fast * scale))


def _fast_cap(mode: str, workers: int, fast_trials: int) -> int:
    """Fewer fast trials with original_gc at large m: its exact decode_cond is a dense SVD
    of an (m - s) x m matrix per trial (about 0.1 s at m = 1000), in any engine."""
    if workers <= 200:
        return fast_trials
    return min(fast_trials, 32 if mode == "quick" else 128)


def _machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "simpy": simpy.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# The table


def format_table(result: dict[str, Any]) -> Any:
    """A ``rich.table.Table`` of the result (a plain string if rich is missing)."""
    header = [
        "m",
        "load",
        "schemes",
        "des trials/s",
        "fast trials/s",
        "fast/des",
        "des events/trial",
        "des us/event",
        "bare SimPy us/event",
        "des/bare (<=2)",
        "des/bare processes",
        "fast us/trial",
        "bare NumPy us/trial",
        "fast/bare (<=3)",
    ]
    lines = []
    for entry in result["sizes"]:
        for key, name in SCENARIO_NAMES.items():
            r = entry[key]
            lines.append(
                [
                    str(entry["workers"]),
                    str(entry["load"]),
                    name,
                    f"{r['des']['trials_per_second']:.3g}",
                    f"{r['fast']['trials_per_second']:.3g}",
                    f"{r['fast_speedup_over_des']:.3g}x",
                    f"{r['des']['events_per_trial']:.3g}",
                    f"{r['des']['seconds_per_event'] * 1e6:.3g}",
                    f"{r['bare_simpy']['seconds_per_event'] * 1e6:.3g}",
                    f"{r['des_per_event_vs_bare_simpy']:.2f}",
                    f"{r['des_per_event_vs_bare_processes']:.2f}",
                    f"{r['fast']['seconds_per_trial'] * 1e6:.3g}",
                    f"{r['bare_numpy']['seconds_per_trial'] * 1e6:.3g}",
                    f"{r['fast_per_trial_vs_bare_numpy']:.2f}",
                ]
            )
    title = (
        f"gcsim engines, every scheme, gradients off ({result['mode']} mode); "
        "targets on the rows without decode_cond"
    )
    try:
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(header)]
        out = [title, "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
        out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
        return "\n".join(out)
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 2 else "right")
    for row in lines:
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------------------------
# Numerics: every scheme with gradients on, against a bare NumPy decode (issue 17)

#: (workers, load) of the numerics rows.
NUMERIC_SIZES: tuple[tuple[int, int], ...] = ((20, 4), (200, 10), (1000, 10))
#: Gradient length: the issue's measurements at m = 200 used 1,200.
NUMERIC_DIM = 1200
#: Trials per scheme per size, by mode; the run's blocks are drawn in the timed call.
_NUMERIC_TRIALS = {
    "quick": {20: 128, 200: 16, 1000: 2},
    "full": {20: 256, 200: 32, 1000: 4},
}
#: Timed repeats of each numerics measurement at most (each row runs both engines' worth of
#: linear algebra: at m = 1000 a trial of original_gc is about a second).
_NUMERIC_REPEATS = 2
#: Candidate codes original_gc scores: the default up to m = 200; one beyond (the first of 16
#: candidates alone is 256 SVDs of 991 x 1000 at m = 1000, about a minute).
NUMERIC_CANDIDATES_UP_TO = 200
NUMERIC_TARGET = 3.0


def numerics_experiment(workers: int, load: int, trials: int, seed: int = 1) -> cfg.Experiment:
    """``bench_experiment`` with real gradients (dim ``NUMERIC_DIM``), no condition numbers,
    and original_gc's default candidate scoring up to ``NUMERIC_CANDIDATES_UP_TO`` workers."""
    exp = bench_experiment(workers, load, trials, decode_cond=False, seed=seed)
    exp.data.gradients = "gaussian"
    exp.data.dim = NUMERIC_DIM
    candidates = 16 if workers <= NUMERIC_CANDIDATES_UP_TO else 1
    for i, spec in enumerate(exp.schemes):
        if spec.protocol == "original_gc":
            exp.schemes[i] = spec.model_copy(update={"candidates": candidates})
    return exp


class BareDecode:
    """The least NumPy that decodes a trial of a scheme with real gradients: the same solves on
    the same shapes as the protocol, written directly (no protocol objects, no per-upload
    Python calls), from the same gradients.

    Per trial: one draw of the chunk gradients (shared by all schemes), then per scheme
    - uncoded, fastest_k, frc, multi_message: the sum of the chunk gradients decoded (the
      uploads are partial sums; the estimate is their sum);
    - original_gc: the uploads of the m - s first finishers as one gathered multiply-sum, the
      least-squares weights of their code rows (one (m - s) x m ``lstsq``, as the decoder) and
      the combination;
    - partial_gc: each chunk's holders known at the root (all that finished it by the report
      that completes min_i r_i >= ell), the pseudo-inverses of C[:, R_i] batched by |R_i| as
      the protocol batches them, the uploads as a scatter-add of A_i g_i, and the decode C Y;
    and the relative error. Which workers finish first comes from the trial's realization.
    """

    def __init__(self, exp: cfg.Experiment, protocols: list[Any]):
        self.exp, self.protocols = exp, protocols
        self.cluster = Cluster(exp, steps=max(p.steps for p in protocols))

    def run(self, first: int, count: int) -> np.ndarray:
        """Decode trials ``first .. first + count - 1``; their relative errors (trials, schemes)
        (a check that the baseline does decode)."""
        from .cluster import gradients

        done = np.cumsum(self.cluster.draw(first, count).step_times, axis=2)
        plans = [self._plan(p, done) for p in self.protocols]
        errors = np.empty((count, len(plans)))
        for t in range(count):
            grads = gradients(self.exp, first + t)
            truth = grads.sum(axis=0)
            for s, plan in enumerate(plans):
                diff = plan(t, grads) - truth
                errors[t, s] = float(diff @ diff) / float(truth @ truth)
        return errors

    def _plan(self, p: Any, done: np.ndarray) -> Callable[[int, np.ndarray], np.ndarray]:
        name = p.name
        if name == "original_gc" and getattr(p.spec, "construction", None) == "random":
            orders = np.array(p.orders)
            finish = done[:, :, orders.shape[1] - 1]
            fastest = np.argsort(finish, axis=1)[:, : p.needed]
            coef = np.take_along_axis(p.code, orders, axis=1)  # (m, load)
            ones = np.ones(p.code.shape[1])

            def original(t: int, grads: np.ndarray) -> np.ndarray:
                workers = fastest[t]
                uploads = np.einsum("wc,wcb->wb", coef[workers], grads[orders[workers]])
                weights = np.linalg.lstsq(p.code[workers].T, ones, rcond=None)[0]
                return weights @ uploads

            return original
        if name == "partial_gc":
            ell = p.spec.ell
            orders = np.array(p.orders)  # (m, load): worker j's k-th chunk
            m, load = orders.shape
            by_chunk = np.argsort(orders.ravel(), kind="stable").reshape(p.chunks, -1)
            times = done[:, :, :load].reshape(done.shape[0], -1)[:, by_chunk]  # (n, chunks, r)
            rank = np.argsort(times, axis=2, kind="stable")
            ranked = np.take_along_axis(times, rank, axis=2)
            holders = np.take_along_axis(by_chunk[None], rank, axis=2) // load  # by time
            # What the PS knows at the root (the report completing min_i r_i >= ell): every
            # holder that finished its chunk by then, as the protocol plans with.
            root = ranked[:, :, min(ell, ranked.shape[2]) - 1].max(axis=1)
            known = (ranked <= root[:, None, None]).sum(axis=2)  # (n, chunks)
            decoder = p.decoder

            def partial(t: int, grads: np.ndarray) -> np.ndarray:
                blocks = split_blocks(grads, ell)  # (chunks, ell, b)
                uploads = np.zeros((m, blocks.shape[2]))
                for size in np.unique(known[t]).tolist():
                    chunks = np.flatnonzero(known[t] == size)
                    rows = holders[t, chunks, :size]  # (c, size)
                    inverses = np.linalg.pinv(decoder[:, rows].transpose(1, 0, 2))  # (c, size, ell)
                    parts = np.einsum("crk,ckb->crb", inverses, blocks[chunks])  # each holder's
                    np.add.at(uploads, rows.ravel(), parts.reshape(-1, blocks.shape[2]))
                return join_blocks(decoder @ uploads, grads.shape[1])

            return partial
        if name == "fastest_k":
            k = getattr(p, "waits_for", p.workers)

            def some(t: int, grads: np.ndarray) -> np.ndarray:
                return grads[:k].sum(axis=0) * (p.chunks / k)

            return some
        return lambda t, grads: grads.sum(axis=0)


def _numeric_trials(mode: str, workers: int) -> int:
    table = _NUMERIC_TRIALS[mode]
    if workers in table:
        return table[workers]
    near = min(table, key=lambda m: abs(math.log(m / workers)))
    return max(2, round(table[near] * min(1.0, near / workers)))


@contextlib.contextmanager
def _fresh_plan_cache() -> Iterator[Path]:
    """A temporary plan-cache directory and an empty memo, restored afterwards: planning is
    timed cold, then warm from disk as a second process would see it."""
    import tempfile

    from . import plan_cache

    before = {key: os.environ.get(key) for key in ("GCSIM_CACHE_DIR", "GCSIM_CACHE")}
    with tempfile.TemporaryDirectory(prefix="gcsim-bench-plans-") as directory:
        os.environ["GCSIM_CACHE_DIR"] = directory
        os.environ.pop("GCSIM_CACHE", None)
        plan_cache.clear_memo()
        try:
            yield Path(directory)
        finally:
            plan_cache.clear_memo()
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _alone(exp: cfg.Experiment, index: int) -> cfg.Experiment:
    alone = exp.model_copy(deep=True)
    label = exp.labels()[index]
    alone.schemes[:] = [exp.schemes[index].model_copy(update={"label": label})]
    return alone


def measure_numerics(
    workers: int, load: int, trials: int, repeats: int, budget: float
) -> dict[str, Any]:
    """Per scheme and for all schemes together: planning (cold, then warm from the plan cache),
    fast seconds per trial with gradients (planning excluded) and the bare NumPy decode's."""
    from . import plan_cache

    exp = numerics_experiment(workers, load, trials)
    rows: dict[str, Any] = {}
    with _fresh_plan_cache():
        for index, label in enumerate(exp.labels()):
            alone = _alone(exp, index)
            plan_cache.clear_memo()
            started, cpu_started = time.perf_counter(), time.process_time()
            protocols = build(alone)
            cold = time.perf_counter() - started
            cold_cpu = time.process_time() - cpu_started
            plan_cache.clear_memo()
            started = time.perf_counter()
            build(alone)
            warm = time.perf_counter() - started
            rows[label] = _time_numerics(alone, protocols, trials, repeats, budget)
            rows[label].update(plan_seconds=cold, plan_cpu_seconds=cold_cpu, plan_seconds_warm=warm)
        protocols = build(exp)  # from the memo: planned above
        rows["all"] = _time_numerics(exp, protocols, trials, repeats, budget)
        rows["all"]["plan_seconds"] = sum(rows[label]["plan_seconds"] for label in exp.labels())
        rows["all"]["plan_seconds_warm"] = sum(
            rows[label]["plan_seconds_warm"] for label in exp.labels()
        )
    rows["all"]["plan_cpu_seconds"] = sum(rows[label]["plan_cpu_seconds"] for label in exp.labels())
    for row in rows.values():
        row["plan_share_1000_trials"] = row["plan_seconds"] / (
            row["plan_seconds"] + 1000 * row["fast_seconds_per_trial"]
        )
        row["plan_share_1000_trials_cpu"] = row["plan_cpu_seconds"] / (
            row["plan_cpu_seconds"] + 1000 * row["fast_cpu_seconds_per_trial"]
        )
    return {
        "workers": workers,
        "load": load,
        "dim": NUMERIC_DIM,
        "trials": trials,
        "original_gc_candidates": 16 if workers <= NUMERIC_CANDIDATES_UP_TO else 1,
        "schemes": rows,
    }


def _best_wall_and_cpu(fn: Callable[[], Any], repeats: int, budget: float) -> tuple[float, float]:
    """``_best`` of the wall time, and the process CPU time of the same runs' best: with BLAS
    on one thread, CPU time is what a run costs, however busy the machine is."""
    wall, cpu, spent = math.inf, math.inf, 0.0
    for _ in range(max(1, repeats)):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn()
        elapsed = time.perf_counter() - started
        wall, cpu = min(wall, elapsed), min(cpu, time.process_time() - cpu_started)
        spent += elapsed
        if spent >= budget:
            break
    return wall, cpu


def _time_numerics(
    exp: cfg.Experiment, protocols: list[Any], trials: int, repeats: int, budget: float
) -> dict[str, float]:
    fast, fast_cpu = _best_wall_and_cpu(
        lambda: run_trials_fast(exp, 0, trials, protocols), repeats, budget
    )
    bare = BareDecode(exp, protocols)
    numpy_seconds, numpy_cpu = _best_wall_and_cpu(lambda: bare.run(0, trials), repeats, budget)
    return {
        "fast_seconds_per_trial": fast / trials,
        "bare_numpy_seconds_per_trial": numpy_seconds / trials,
        "fast_vs_bare_numpy": fast / numpy_seconds,
        "fast_cpu_seconds_per_trial": fast_cpu / trials,
        "bare_numpy_cpu_seconds_per_trial": numpy_cpu / trials,
        "fast_vs_bare_numpy_cpu": fast_cpu / max(numpy_cpu, 1e-9),
    }


def run_numerics(
    sizes: tuple[tuple[int, int], ...] = NUMERIC_SIZES,
    trials: int | None = None,
    repeats: int = 3,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The numerics rows for each (workers, load): see ``measure_numerics``. Plain data."""
    mode = "quick" if quick else "full"
    say = progress or (lambda _: None)
    started = time.perf_counter()
    out: dict[str, Any] = {"mode": mode, "target": NUMERIC_TARGET, "sizes": []}
    with blas_threads(1):
        for workers, load in sizes:
            say(f"m={workers} load={load}: every scheme with gradients, and bare NumPy decodes")
            count = trials or _numeric_trials(mode, workers)
            repeat = min(repeats, _NUMERIC_REPEATS)
            out["sizes"].append(measure_numerics(workers, load, count, repeat, _BUDGET[mode]))
    out["seconds"] = time.perf_counter() - started
    return out


def format_numerics_table(result: dict[str, Any]) -> Any:
    """A ``rich.table.Table`` of ``run_numerics``'s result."""
    from rich.table import Table

    table = Table(
        title=f"numerics: gradients on (dim {NUMERIC_DIM}), decode_cond off "
        f"({result['mode']} mode); target fast/bare <= {result['target']:g}"
    )
    header = [
        "m", "load", "scheme", "plan s", "plan s (cached)", "plan share of 1,000 trials",
        "fast ms/trial", "bare NumPy ms/trial", "fast/bare", "fast/bare (CPU time)",
    ]  # fmt: skip
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 2 else "right")
    for entry in result["sizes"]:
        for label, row in entry["schemes"].items():
            table.add_row(
                str(entry["workers"]),
                str(entry["load"]),
                label,
                f"{row['plan_seconds']:.3g}",
                f"{row['plan_seconds_warm']:.3g}",
                f"{100 * row['plan_share_1000_trials']:.2g}%",
                f"{row['fast_seconds_per_trial'] * 1e3:.3g}",
                f"{row['bare_numpy_seconds_per_trial'] * 1e3:.3g}",
                f"{row['fast_vs_bare_numpy']:.2f}",
                f"{row['fast_vs_bare_numpy_cpu']:.2f}",
            )
    return table
