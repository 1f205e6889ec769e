"""What a run will cost, estimated from its config alone, and the refusals that follow.

``config.from_dict`` asks ``problems`` once the types and values check out and before it
builds any assignment: a config whose run cannot fit in this machine's memory, or would spend
hours planning, is refused up front with the key to change and the estimate, instead of
running until memory or patience runs out (``workers: 10**7`` filled memory drawing one block
of trials; ``trials: 10**12`` 8 GB building its list of trial ranges; original_gc at 2,000
workers planned for hours).

The estimates are products of the config's sizes with constants measured on a 2-core machine
(numbers below); they aim at the right order of magnitude, not at a byte. Memory is the peak
of three phases (``Estimate.memory``): planning the schemes one at a time, simulating trials
(what the plans hold, a realization block, one trial's gradients and decodes, one range of
summary rows), and reading the summary back for the table. Time is planning, which every
process that runs trials does again and nothing spreads, and the CPU time of the trials,
which ``--jobs`` and Dask spread; its constants are the cheapest measured (a lower bound),
so only a run that is absurd whatever the executor is refused. One process is assumed: each
worker of ``--jobs`` holds its own plans and blocks. The summary is assumed streamed, as
``gcsim run`` and sweeps do; ``runner.run(exp)`` without ``summary_to`` holds every row
instead (about 260 bytes each), which the estimate does not count.

Measured (2 cores, under load; peaks above the interpreter from ru_maxrss, times best of a
few):

- realization block: m = 20,000 uncoded, 256 trials (41 MB of step times): 170 MiB on both
  engines, about 4 copies (``BLOCK_COPIES``);
- gradients: 200 chunks x 100,000 floats (160 MB a trial), partial_gc and uncoded: 465 MiB,
  about 3 copies (``GRADIENT_COPIES``);
- plans: partial_gc and multi_message at m = 2,000, load 10 hold 279 bytes per (worker,
  chunk) entry (orders, control reports; ``ENTRY_BYTES``); original_gc also its dense m x m
  code; the polynomial code an m x m x ell encoder;
- planning: NumPy's SVD (values only) of a k x m matrix takes 0.34-0.58 ns x k m^2 at
  m = 100-1,000 with one BLAS thread (``SVD_SECONDS``); the random construction scores each
  of ``candidates`` codes on 256 straggler sets (m = 200, 4 candidates: 4.5 s and an 80 MB
  stack); the polynomial code takes about 35 us x m^2 (m = 300: 3.2 s, m = 600: 12.7 s); a
  random graph assignment about 10 us per entry, random_regular 2-13 us;
- trials: the fast engine runs 0.9 us a trial at m = 1 and 8 us at m = 100 (uncoded), the
  event engine 91 us at m = 1 and 270 us at m = 20 (about 10 us an event);
- the summary read back for the table (``runner.scheme_table_of_file``): 8 bytes a row plus
  16 a trial.

Checked against whole runs (estimate beyond ``BASELINE_BYTES`` / peak above the interpreter's
160 MiB): original_gc m = 400, load 10, 16 candidates: 389 / 338 MiB, planning 77 / 83 s;
partial_gc m = 2,000, load 10, ell 2, dim 10,000 gradients: 623 / 384 MiB; polynomial
original_gc m = 300 and uncoded, 300 trials: 36 / 106 MiB (fixed costs the baseline covers).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .streams import block_trials

if TYPE_CHECKING:
    from .config import Experiment

#: Copies of a realization block alive at once (draw, concatenation, the fast engine's buffer
#: and its masked copy).
BLOCK_COPIES = 4
#: Copies of one trial's gradients (the draw, split blocks, a protocol's working arrays).
GRADIENT_COPIES = 3
#: Bytes a scheme holds per (worker, chunk) entry of its assignment, rounded up.
ENTRY_BYTES = 400
#: Bytes per summary row while a range of trials is held (runner: about 260).
ROW_BYTES = 300
#: Bytes per summary row, and per trial, when the table is computed from the file.
TABLE_ROW_BYTES, TABLE_TRIAL_BYTES = 8, 16
#: Trials in one range of a streamed run (runner.STREAM_RANGE_TRIALS) and bytes per range
#: in the list of ranges.
RANGE_TRIALS, RANGE_BYTES = 1 << 14, 200
#: Bytes of the interpreter and its libraries before anything is simulated.
BASELINE_BYTES = 300 * 2**20
#: Straggler sets each candidate random code is scored on (coding.numerics.best_tandon_code).
PROBES = 256
#: Seconds per k m^2 of an SVD or least-squares solve of a k x m matrix.
SVD_SECONDS = 0.3e-9
#: Seconds per m^2 to build the polynomial code.
POLYNOMIAL_SECONDS = 35e-6
#: Seconds per assignment entry to draw or build a layout (the slowest, a random graph, x 2:
#: validation builds it once and planning again).
LAYOUT_SECONDS = 20e-6
#: Seconds per entry and per search step of the optimal-order heuristic (3 starts x 2,000
#: steps, each scanning every chunk) and per entry and load of the balanced order.
HEURISTIC_SECONDS, BALANCED_SECONDS = 3 * 2000 * 0.5e-6, 1e-6
#: Cheapest CPU seconds a trial costs: per scheme, per (worker, step) on the fast engine, per
#: event on the event engine, per gradient float drawn.
FAST_TRIAL_SECONDS, FAST_STEP_SECONDS = 0.3e-6, 2e-9
DES_EVENT_SECONDS = 1e-6
GRADIENT_SECONDS = 2e-9
#: Planning a run may take (every process that runs trials plans again).
PLAN_LIMIT_SECONDS = 2 * 3600.0
#: CPU time the trials may take, whatever executor spreads it (a lower bound is compared).
RUN_LIMIT_SECONDS = 7 * 86400.0
#: original_gc keeps the condition number per set of uploaders while there are at most this
#: many sets (coding.original_gc._SET_CACHE_SETS): then a trial costs no SVD.
CACHED_SETS = 2**15
#: Sizes are capped here before floating-point arithmetic (a valid int may have 4,000 digits).
_HUGE = 1e300


@dataclass(frozen=True)
class Part:
    """One cost: the key that changes it, what it is (with its numbers), how much (bytes or
    seconds) and how to lower it."""

    key: str
    what: str
    amount: float
    fix: str


@dataclass
class Estimate:
    """A run's costs by phase (see the module docstring)."""

    held: list[Part] = field(default_factory=list)  # plans: from planning to the end
    planning: list[list[Part]] = field(default_factory=list)  # per scheme, while it is planned
    working: list[Part] = field(default_factory=list)  # while trials run
    table: list[Part] = field(default_factory=list)  # reading the summary back
    plan_seconds: list[Part] = field(default_factory=list)
    run_seconds: list[Part] = field(default_factory=list)  # CPU, spread by --jobs and Dask

    def phases(self) -> list[list[Part]]:
        """The parts alive together in each phase (of planning, the costliest scheme's)."""
        biggest = max(self.planning, key=_total, default=[])
        return [self.held + biggest, self.held + self.working, self.table]

    @property
    def memory(self) -> float:
        """Peak bytes: the interpreter plus the costliest phase."""
        return BASELINE_BYTES + max(_total(parts) for parts in self.phases())

    def peak_parts(self) -> list[Part]:
        """The parts of the costliest phase, largest first."""
        parts = max(self.phases(), key=_total)
        return sorted(parts, key=lambda p: p.amount, reverse=True)


def _total(parts: list[Part]) -> float:
    return math.fsum(p.amount for p in parts)


def as_float(value: int | float) -> float:
    """A size as a float that cannot overflow on conversion (a valid int may be enormous)."""
    return float(min(value, _HUGE))


def estimate(exp: Experiment) -> Estimate:
    """The costs of running ``exp`` (a validated config)."""
    est = Estimate()
    m, n = as_float(exp.cluster.workers), as_float(exp.chunks)
    # Costs go with rows: one per (trial, iteration) and scheme.
    iterations = exp.iterations
    trials, schemes = as_float(exp.trials) * iterations, len(exp.schemes)
    steps = [_steps(scheme, m, n) for scheme in exp.schemes]
    most = max(steps)
    # Steps beyond every load come from splitting the chunks (uncoded, fastest_k).
    by_chunks = most > max((as_float(s.load) for s in exp.schemes if hasattr(s, "load")), default=0)
    est.working.append(
        Part(
            "data.chunks" if by_chunks else "cluster.workers",
            f"realization blocks of {block_trials(iterations) * iterations} rounds x {num(m)} "
            f"workers x {num(most)} chunk computations, {BLOCK_COPIES} copies",
            BLOCK_COPIES * block_trials(iterations) * iterations * m * most * 8,
            "lower cluster.workers, or the chunks a worker computes (load, data.chunks)",
        )
    )
    dim = as_float(exp.data.dim)
    if exp.data.gradients != "none":
        est.working.append(
            Part(
                "data.dim",
                f"one trial's gradients, {num(n)} chunks x {num(dim)} floats, "
                f"{GRADIENT_COPIES} copies",
                GRADIENT_COPIES * n * dim * 8,
                "lower data.dim or data.chunks, or set data.gradients: none",
            )
        )
    est.working.append(
        Part(
            "schemes" if schemes > 1 else "trials",
            f"the summary rows of one range of trials ({num(min(trials, RANGE_TRIALS))} "
            f"trials x {schemes} schemes) and the list of ranges",
            min(trials, RANGE_TRIALS) * schemes * ROW_BYTES
            + math.ceil(trials / RANGE_TRIALS) * RANGE_BYTES,
            "use fewer schemes in one run",
        )
    )
    est.table.append(
        Part(
            "trials",
            f"reading the summary back ({num(trials)} trials x {schemes} schemes) for its table",
            trials * (schemes * TABLE_ROW_BYTES + TABLE_TRIAL_BYTES),
            "lower trials (a sweep over seed splits a long run into points)",
        )
    )
    for i, (scheme, scheme_steps) in enumerate(zip(exp.schemes, steps, strict=True)):
        decode = _scheme_costs(est, exp, scheme, f"schemes.{i}", m, n, scheme_steps)
        if decode > 0:
            est.run_seconds.append(
                Part(
                    f"schemes.{i}",
                    f"schemes.{i} ({scheme.protocol}): its decodes, {format_duration(decode)} "
                    "a trial",
                    trials * decode,
                    "lower cluster.workers (or switch off output.decode_cond, data.gradients)",
                )
            )
    traced = min(as_float(exp.output.events_trials) * iterations, trials)
    events = sum(m * s for s in steps) * DES_EVENT_SECONDS
    fast = sum(FAST_TRIAL_SECONDS + FAST_STEP_SECONDS * m * s for s in steps)
    engine = events if exp.engine == "des" else fast
    est.run_seconds.append(
        Part(
            "trials",
            f"simulating {num(trials)} trials of {schemes} schemes, "
            f"{format_duration(engine)} or more each",
            (trials - traced) * engine + traced * events,
            "lower trials",
        )
    )
    if exp.data.gradients != "none":
        est.run_seconds.append(
            Part(
                "data.dim",
                f"drawing {num(n)} x {num(dim)} gradient floats a trial",
                trials * GRADIENT_SECONDS * n * dim,
                "lower data.dim, or set data.gradients: none",
            )
        )
    return est


def _steps(scheme: Any, m: float, n: float) -> float:
    """The most chunks one worker of this scheme computes."""
    load = getattr(scheme, "load", None)
    return as_float(load) if load is not None else math.ceil(n / m)


def _scheme_costs(
    est: Estimate, exp: Experiment, scheme: Any, key: str, m: float, n: float, steps: float
) -> float:
    """Add one scheme's memory and planning time to ``est``; return its CPU seconds per trial
    beyond the engine's (decodes)."""
    entries = m * steps
    what = f"{key} ({scheme.protocol})"
    est.held.append(
        Part(
            key,
            f"{what}: its assignment and order, {num(m)} workers x {num(steps)} chunks",
            entries * ENTRY_BYTES,
            "lower cluster.workers or the load",
        )
    )
    if hasattr(scheme, "assignment"):
        est.plan_seconds.append(
            Part(
                f"{key}.assignment",
                f"{what}: building its {scheme.assignment} assignment of {num(entries)} entries",
                entries * LAYOUT_SECONDS,
                "lower cluster.workers or the load",
            )
        )
    ordering = getattr(scheme, "ordering", None)
    if ordering == "optimal":
        regular = scheme.assignment in ("cyclic", "random_regular") or (
            scheme.assignment == "graph" and not scheme.assignment_file
        )
        cost = (
            entries * steps * BALANCED_SECONDS
            if regular
            else (entries + n) * HEURISTIC_SECONDS + entries * steps * BALANCED_SECONDS
        )
        method = "the balanced order" if regular else "the order-search heuristic"
        est.plan_seconds.append(
            Part(
                f"{key}.ordering",
                f"{what}: {method} over {num(entries)} entries",
                cost,
                "use ordering: natural or random, or fewer workers",
            )
        )
    # What only the protocol knows (its code, its decoder) it adds itself.
    return scheme.costs(est, exp, key, m, n)


def few_sets(m: float, s: float) -> bool:
    """Whether original_gc keeps a condition number per set of m - s uploaders: at most
    ``CACHED_SETS`` sets (C(m, s)), so that trials then cost no SVD."""
    if s > m:
        return True
    k, count = int(min(s, m - s)), 1
    for j in range(k):
        count = count * (m - j) / (j + 1)
        if count > CACHED_SETS:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Refusals


def available_memory() -> float:
    """Bytes this process may use: the machine's physical memory (``os.sysconf``), or less
    under an address-space limit (RLIMIT_AS): that limit minus what is mapped already. Where
    neither can be read (not a POSIX system), no limit: nothing is refused for memory."""
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        limit = float(page * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return math.inf
    try:
        import resource
    except ImportError:
        return limit
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        mapped = 0.0
        try:
            with open("/proc/self/statm", encoding="ascii") as file:
                mapped = float(file.read().split()[0]) * page
        except (OSError, ValueError, IndexError):
            pass
        limit = min(limit, max(0.0, soft - mapped))
    return limit


def problems(exp: Experiment, memory: float | None = None) -> list[tuple[str, str]]:
    """(key, message) for each way ``exp`` is too large to run here: memory beyond
    ``memory`` (default ``available_memory()``), planning beyond ``PLAN_LIMIT_SECONDS``, trial
    CPU time beyond ``RUN_LIMIT_SECONDS``. Empty when it fits."""
    est = estimate(exp)
    limit = available_memory() if memory is None else memory
    out: list[tuple[str, str]] = []
    if est.memory > limit:
        top, *rest = est.peak_parts()
        also = f"; {rest[0].what}: {format_bytes(rest[0].amount)}" if rest else ""
        out.append(
            (
                top.key,
                f"the run would need about {format_bytes(est.memory)} of memory, more than "
                f"the {format_bytes(limit)} this process may use ({top.what}: "
                f"{format_bytes(top.amount)}{also}); {top.fix}",
            )
        )
    planning = _total(est.plan_seconds)
    if planning > PLAN_LIMIT_SECONDS:
        top = max(est.plan_seconds, key=lambda p: p.amount)
        out.append(
            (
                top.key,
                f"planning would take about {format_duration(planning)} ({top.what}: "
                f"{format_duration(top.amount)}), more than the "
                f"{format_duration(PLAN_LIMIT_SECONDS)} a run may plan for (every process "
                f"that runs its trials plans again); {top.fix}",
            )
        )
    running = _total(est.run_seconds)
    if running > RUN_LIMIT_SECONDS:
        top = max(est.run_seconds, key=lambda p: p.amount)
        out.append(
            (
                top.key,
                f"the trials would take at least {format_duration(running)} of CPU time "
                f"({top.what}: {format_duration(top.amount)}), more than the "
                f"{format_duration(RUN_LIMIT_SECONDS)} a run may take however many processes "
                f"share it; {top.fix}",
            )
        )
    return out


def num(value: float) -> str:
    """A count for a message: 10,000,000 (or 1.0e+40 when it is astronomical)."""
    value = as_float(value)
    return f"{value:,.0f}" if value < 1e15 else f"{value:.1e}"


def format_bytes(value: float) -> str:
    """1.5 GiB, 300.0 KiB, 12 bytes."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            amount = value / size
            return f"{amount:,.1f} {unit}" if amount < 1e6 else f"{amount:.1e} {unit}"
    return f"{value:.0f} bytes"


def format_duration(seconds: float) -> str:
    """0.6 us, 12 s, 45 min, 2.7 h, 8 days."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    days = seconds / 86400
    return f"{days:,.0f} days" if days < 1e6 else f"{days:.1e} days"
