"""Every output column, once: name, dtype, unit, meaning, and how the two engines must agree.

The runner's frames, the fast engine's buffers, the parquet types, the terminal table and the
engine-equality tests all read these tuples, so a new column is one entry here plus the code
that fills it; a column the engines fill differently then fails ``tests/test_fast_engine.py``.

``agree`` says how the fast engine must reproduce the event engine's value:

- ``exact``: the same value (integers, flags, names);
- ``time``: the same float to 1e-12 relative (sums of the same drawn times, in the same order,
  are bitwise equal in practice; the tolerance only admits a different but equally valid order
  of additions);
- ``numeric``: the same float to 1e-9 relative or 1e-25 absolute (decoded estimates and
  condition numbers of the same matrices; exact decodes have rounding-level errors whose
  relative noise means nothing).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # a pandas dtype name: str, int64, float64, bool
    unit: str  # "" where the value has none
    meaning: str
    agree: str = "exact"  # exact | time | numeric (see the module docstring)
    fill: object = None  # an engine's value before it knows better (None: the dtype's zero)
    stats: str = ""  # the per-scheme statistics of the run table: time | rate | error | mean
    short: str = ""  # the name its statistics are keyed by (mean_<short>...); "" = its name
    by: str = "engine"  # who fills it: engine (both engines, compared) | runner (from their rows)


#: Tolerances (rtol, atol) of the ``agree`` kinds that are not exact.
TOLERANCES = {"time": (1e-12, 0.0), "numeric": (1e-9, 1e-25)}

#: One row per (scheme, trial). The first three identify the row; the engines fill the rest.
SUMMARY = (
    Column("scheme", "str", "", "the scheme's label (unique within a run)"),
    Column("protocol", "str", "", "the protocol the scheme runs"),
    Column("trial", "int64", "", "trial index; schemes share the trial's draws"),
    Column("completion_time", "float64", "time",
           "when the PS has its estimate (inf: never decoded)", "time", float("inf"), "time",
           "time"),
    Column("decoded", "bool", "", "whether the PS produced an estimate", stats="rate",
           short="decode"),
    Column("rel_error", "float64", "",
           "||g_hat - g||^2 / ||g||^2 of the decoded estimate (NaN: undecoded or gradients off)",
           "numeric", float("nan"), "error"),
    Column("upload_floats", "int64", "floats", "floats sent worker -> PS, data uploads",
           stats="mean"),
    Column("download_floats", "int64", "floats", "floats sent PS -> workers", stats="mean"),
    Column("messages", "int64", "", "data uploads worker -> PS", stats="mean"),
    Column("control_messages", "int64", "", "control messages (chunk reports)", stats="mean"),
    Column("chunks_computed", "int64", "chunks", "chunk computations finished by the stop"),
    Column("chunks_used", "int64", "chunks", "chunk computations that entered the estimate"),
    Column("decode_cond", "float64", "",
           "worst condition number of a matrix the decoder inverted (NaN: not computed)",
           "numeric", float("nan")),
    Column("residual", "float64", "",
           "coefficient-space residual of the decoder (0: exact in exact arithmetic)",
           "numeric", float("nan")),
    Column("accurate", "bool", "",
           "decoded and the estimate is the gradient to data.tolerance (the rule: "
           "statistics.accurate)", stats="rate"),
    # Filled by the runner from the engines' rows of a trial's iterations (runner.py).
    Column("iteration", "int64", "", "iteration within the trial (0 .. iterations - 1)",
           by="runner"),
    Column("elapsed", "float64", "time",
           "the trial's time at the end of this iteration: its iterations' completion times "
           "summed (inf once one never decoded)", "time", by="runner"),
)  # fmt: skip

#: One row per traced event of the first ``output.events_trials`` trials (event engine only).
EVENTS = (
    Column("scheme", "str", "", "the scheme's label"),
    Column("trial", "int64", "", "trial index"),
    Column("time", "float64", "time", "when the event happens"),
    Column("kind", "str", "", "chunk, control, upload, download, *_lost, interrupt, decode..."),
    Column("worker", "int64", "", "the worker (-1: the PS)"),
    Column("chunk", "int64", "", "the chunk (-1: none)"),
    Column("size", "int64", "floats", "floats on the wire (0 for computations)"),
    Column("iteration", "int64", "", "iteration within the trial (times start at 0 in each)",
           by="runner"),
)  # fmt: skip

#: One row per scheme (``schemes.parquet``): its parameters, so that outputs are joined on
#: ``scheme`` instead of parsing labels or re-reading config.yaml. Missing values: "" for
#: strings, -1 for integers, NaN for floats (a protocol without that parameter).
SCHEMES = (
    Column("scheme", "str", "", "the scheme's label"),
    Column("protocol", "str", "", "the protocol"),
    Column("load", "int64", "chunks", "chunks per worker (-1: not a parameter)"),
    Column("ell", "int64", "", "communication reduction: uploads are dim / ell floats"),
    Column("mode", "str", "", "exact or approximate"),
    Column("deadline", "float64", "time", "approximate mode's deadline (NaN: none)"),
    Column("assignment", "str", "", "who holds which chunks"),
    Column("ordering", "str", "", "processing order (explicit: lists given in the config)"),
    Column("construction", "str", "", "original_gc's code construction"),
    Column(
        "parameters",
        "str",
        "",
        "every parameter of the scheme entry as JSON (keys sorted, label left out), those "
        "without a column of their own included (k, fraction, decoding, candidates...)",
    ),
    Column("engine", "str", "", "the engine that ran the scheme's untraced trials"),
)

SUMMARY_COLUMNS = {c.name: c.dtype for c in SUMMARY}
EVENT_COLUMNS = {c.name: c.dtype for c in EVENTS}
#: What the engines make, one row per (scheme, round): the columns they fill, in schema order
#: (the runner adds the rest, ``by="runner"``).
ENGINE_SUMMARY = tuple(c for c in SUMMARY if c.by == "engine")
ENGINE_SUMMARY_COLUMNS = {c.name: c.dtype for c in ENGINE_SUMMARY}
ENGINE_EVENT_COLUMNS = {c.name: c.dtype for c in EVENTS if c.by == "engine"}
SCHEME_COLUMNS = {c.name: c.dtype for c in SCHEMES}
#: Summary columns the run table summarises per scheme (``runner.scheme_table``): in schema
#: order, errors last (the table's columns read times, rates, traffic, then accuracy).
TABLE_COLUMNS = tuple(
    c.name for c in sorted((c for c in SUMMARY if c.stats), key=lambda c: c.stats == "error")
)
#: Summary columns the engines compute (the first three identify the row).
RESULT_COLUMNS = tuple(c.name for c in ENGINE_SUMMARY[3:])

#: One row per (scheme, trial, iteration) of a training run (``training.parquet``, written when
#: the config has ``training:``; ``simulator.training.loop``). Iteration 0 is the initial state
#: at time 0; iteration i the state after the i-th attempted gradient step.
TRAINING = (
    Column("scheme", "str", "", "the scheme's label"),
    Column("trial", "int64", "", "trial index: one training run per trial"),
    Column("iteration", "int64", "", "0: before training; i: after the i-th attempted step"),
    Column("time", "float64", "time",
           "simulated wall-clock time at the end of the iteration, cumulative (inf: stalled)"),
    Column("loss", "float64", "",
           "mean training loss on the full data after the iteration (no l2 term)"),
    Column("accuracy", "float64", "",
           "fraction of samples classified right (NaN: the model does not classify)"),
    Column("grad_error", "float64", "",
           "||decoded - true||^2 / ||true||^2 of the iteration's gradient (NaN: none applied)"),
    Column("skipped", "bool", "",
           "no gradient applied: abandoned at the timeout, or stalled without one"),
)  # fmt: skip
TRAINING_COLUMNS = {c.name: c.dtype for c in TRAINING}
