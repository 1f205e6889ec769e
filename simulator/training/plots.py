"""Figures of a training run: loss (and accuracy) against simulated wall-clock time per scheme,
and the time to the target loss per scheme.

Trials of one scheme finish iteration i at different times, so each trial's loss is read as a
step function of time (the loss of its last finished iteration) on a common time grid before
the median and the band (25-75% of trials, said in every legend) are taken. A curve ends at its
scheme's median finishing time (half its trials have done every iteration by then; a trial that
finished earlier holds its last loss until there). A stalled trial (time inf) holds its loss
for ever. Colours, markers and the paper style are those of ``simulator.plots``, so a scheme
looks the same here as in the run's other figures.

The caller (``gcsim plot`` in cli.py) calls ``plot_training`` after ``plots.plot_any`` when the
run directory holds ``training.parquet``; this module imports ``simulator.plots``, not the
other way round.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import yaml

from ..plots import PAPER_STYLE, _save, scheme_style
from ..plots import _new_figure as _figure
from .target import INTERVAL, target_summary

#: Points of the common time grid the trials' step curves are read on.
GRID_POINTS = 400
#: The band's quantiles over trials.
BAND = (0.25, 0.75)
BAND_NOTE = "line: median over trials; band: 25-75% of trials"
TIME_LABEL = "simulated wall-clock time (time units)"
#: The same axis for a real run (``gcsim emulate``: measured times / the time scale).
REAL_TIME_LABEL = "measured wall-clock time (time units)"


def plot_training(
    source: Path | str | pd.DataFrame,
    out_dir: Path | str,
    target: float | None = None,
    name: str | None = None,
    real: bool = False,
) -> list[Path]:
    """Figures of a training run; returns the files written (PNG and PDF of each).

    ``source``: a run directory (reads ``training.parquet``; the target loss, unless given,
    from its ``config.yaml``) or the rows themselves. Writes ``training_loss`` (loss and, for a
    model that classifies, accuracy against time) and, with a target loss,
    ``time_to_target``. ``real``: the times were measured (a run directory says so itself,
    in its manifest)."""
    frame, target, name, real = _read(source, target, name, real)
    if frame.empty:
        raise ValueError("no training rows to plot (training.parquet is empty)")
    order = list(dict.fromkeys(frame["scheme"]))
    out = Path(out_dir)
    written = _loss_figure(frame, order, target, name, out, real)
    if target is not None:
        written += _target_figure(frame, order, target, name, out, real)
    return written


def _read(source, target, name, real) -> tuple[pd.DataFrame, float | None, str | None, bool]:
    if isinstance(source, pd.DataFrame):
        return source, target, name, real
    run_dir = Path(source)
    path = run_dir / "training.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no training.parquet (not a training run)")
    frame = pd.read_parquet(path)
    config_path = run_dir / "config.yaml"
    if config_path.is_file() and (target is None or name is None):
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        training = config.get("training") or {}
        target = target if target is not None else training.get("target_loss")
        name = name if name is not None else config.get("name")
    manifest_path = run_dir / "manifest.json"
    if manifest_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            real = real or json.loads(manifest_path.read_text(encoding="utf-8")).get("real") is True
    return frame, target, name, real


# ------------------------------------------------------------------------------------------
# Loss (and accuracy) against time


def step_values(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(trials, grid) each trial's value at each grid time: the value of its last row with
    time <= the grid time (rows in iteration order; times non-decreasing, inf after a stall).
    Row 0 is at time 0, so every grid time >= 0 has a value."""
    trials = times.shape[0]
    out = np.empty((trials, grid.size))
    for t in range(trials):
        at = np.searchsorted(times[t], grid, side="right") - 1
        out[t] = values[t, np.maximum(at, 0)]
    return out


def _curves(frame: pd.DataFrame, column: str, order: Sequence[str]):
    """Per scheme: (grid, median, low, high) of ``column`` over its trials on a grid up to
    the scheme's median finishing time."""
    out = {}
    for scheme in order:
        rows = frame[frame["scheme"] == scheme].sort_values(["trial", "iteration"], kind="stable")
        steps = int(rows["iteration"].max()) + 1
        times = rows["time"].to_numpy(float).reshape(-1, steps)
        values = rows[column].to_numpy(float).reshape(-1, steps)
        end = float(np.median(times[:, -1]))
        if not math.isfinite(end):  # most trials stalled: show up to the last finite time
            finite = times[np.isfinite(times)]
            end = float(finite.max()) if finite.size else 0.0
        grid = np.linspace(0.0, end if end > 0 else 1.0, GRID_POINTS)
        on_grid = step_values(times, values, grid)
        low, mid, high = np.quantile(on_grid, [BAND[0], 0.5, BAND[1]], axis=0)
        out[scheme] = (grid, mid, low, high)
    return out


def _loss_figure(frame, order, target, name, out: Path, real: bool = False) -> list[Path]:
    accuracy = bool(frame["accuracy"].notna().any())
    trials = frame["trial"].nunique()
    with matplotlib.rc_context(PAPER_STYLE):
        fig = _figure(7.0 if accuracy else 6.0, 3.4)
        axes = fig.subplots(1, 2 if accuracy else 1, squeeze=False)[0]
        panels = [("loss", axes[0], "training loss (mean over samples)")]
        note = f"{BAND_NOTE}; each curve ends at its scheme's median finishing time"
        if accuracy:
            panels.append(("accuracy", axes[1], "training accuracy"))
        for column, ax, label in panels:
            curves = _curves(frame, column, order)
            for index, scheme in enumerate(order):
                grid, mid, low, high = curves[scheme]
                style = scheme_style(index)
                ax.fill_between(grid, low, high, color=style.color, alpha=0.18, linewidth=0)
                ax.plot(
                    grid,
                    mid,
                    color=style.color,
                    linestyle=style.linestyle,
                    marker=style.marker,
                    markevery=(index * 13 % 40 + 10, 80),
                    label=scheme,
                )
            ax.set_xlabel(REAL_TIME_LABEL if real else TIME_LABEL)
            ax.set_ylabel(label)
            ax.set_xlim(left=0)
            if column == "loss":
                medians = np.concatenate([curves[s][1] for s in order])
                low_all = np.concatenate([curves[s][2] for s in order])
                positive = low_all[low_all > 0]
                if positive.size and np.nanmax(medians) / positive.min() >= 10:
                    ax.set_yscale("log")
                    # Plain numbers; minor ticks labelled only while the axis spans few decades.
                    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
                    ax.yaxis.set_minor_formatter(
                        matplotlib.ticker.FuncFormatter(lambda v, _, a=ax: _minor_label(v, a))
                    )
                if target is not None:
                    ax.axhline(
                        target,
                        color="0.3",
                        linestyle=(0, (4, 3)),
                        linewidth=1.0,
                        label=f"target loss {target:.3g}",
                    )
            else:
                bottom = _accuracy_floor(curves, order)
                if bottom is not None:
                    top = max(float(np.nanmax(curves[s][3])) for s in order)
                    ax.set_ylim(bottom, min(1.0, top + 0.1 * (top - bottom)))
                    note += f";\naccuracy axis from {bottom:.3g} (the first steps are below)"
        title = f"Training loss against {'measured' if real else 'simulated'} time"
        fig.suptitle(f"{title}{f' — {name}' if name else ''} ({trials} trials)", x=0.02, ha="left")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper", title="scheme")
        fig.supxlabel(note, x=0.01, ha="left", fontsize=7, style="italic")
        return _save(fig, out, "training_loss")


def _minor_label(value: float, ax) -> str:
    """A log axis's minor tick label: every one within about a decade, 2 and 5 within two and
    a half, none beyond (they would overlap)."""
    low, high = ax.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else math.inf
    digit = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
    if decades <= 1.3 or (decades <= 2.5 and digit in (2, 5)):
        return f"{value:g}"
    return ""


def _accuracy_floor(curves, order) -> float | None:
    """Where the accuracy axis starts: below every median and band once the first 5% of each
    curve's time has passed, so the part where schemes differ fills the panel (the initial
    accuracy, a majority-class guess, would squeeze it into a sliver); None to keep the full
    range when that hides little."""
    later = []
    for scheme in order:
        grid, _, low, _ = curves[scheme]
        later.append(low[grid >= 0.05 * grid[-1]])
    values = np.concatenate(later)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    floor = float(values.min())
    floor -= 0.1 * (1.0 - floor)
    everything = np.concatenate([curves[s][2] for s in order])
    return floor if floor - float(np.nanmin(everything)) > 0.1 * (1.0 - floor) else None


# ------------------------------------------------------------------------------------------
# Time to the target loss


def _target_figure(frame, order, target, name, out: Path, real: bool = False) -> list[Path]:
    summary = target_summary(frame, target).set_index("scheme").loc[list(order)]
    finite = summary[["median", "low", "high"]].to_numpy(float)
    finite = finite[np.isfinite(finite)]
    right = float(finite.max()) * 1.05 if finite.size else 1.0
    low_q, high_q = (f"{100 * q:g}%" for q in INTERVAL)
    with matplotlib.rc_context(PAPER_STYLE | {"axes.grid.axis": "x"}):
        fig = _figure(6.0, 1.1 + 0.36 * len(order))
        ax = fig.add_subplot()
        for index, scheme in enumerate(order):
            row = summary.loc[scheme]
            style = scheme_style(index)
            y = len(order) - 1 - index
            ax.annotate(
                f"{100 * row['reached']:.0f}%",
                (1.0, y),
                xycoords=("axes fraction", "data"),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
            if not math.isfinite(row["median"]):
                ax.annotate(
                    "median: never reached",
                    (0, y),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color=style.color,
                )
                continue
            high = row["high"] if math.isfinite(row["high"]) else right
            ax.plot(
                [row["low"], high], [y, y], color=style.color, linewidth=2.2, solid_capstyle="butt"
            )
            if not math.isfinite(row["high"]):  # the bar runs off: some trials never reach it
                ax.plot(right, y, marker=">", color=style.color, clip_on=False)
            ax.plot(
                row["median"],
                y,
                marker=style.marker,
                color=style.color,
                markersize=7,
                markeredgecolor="white",
                linestyle="none",
            )
        ax.annotate(
            "reached",
            (1.0, len(order) - 0.45),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            fontsize=8,
            style="italic",
        )
        ax.set_yticks(range(len(order)), list(reversed(order)))
        ax.set_ylim(-0.6, len(order) - 0.3)
        ax.set_xlim(0, right)
        ax.set_xlabel(REAL_TIME_LABEL if real else TIME_LABEL)
        ax.set_title(f"Time to loss <= {target:.3g}{f' — {name}' if name else ''}")
        fig.supxlabel(
            f"marker: median over trials; bar: {low_q}-{high_q} of trials (an arrow: "
            "some never reach it);\nreached: share of trials that reach the target",
            x=0.01,
            ha="left",
            fontsize=7,
            style="italic",
        )
        return _save(fig, out, "time_to_target")
