"""Figures of a run or a sweep directory, ready for a paper (PNG at 200 dpi and PDF).

Everything here reads the files a run or sweep wrote, never the simulator: a figure can be redrawn
from results on another machine. Figures are built on ``matplotlib.figure.Figure`` with an Agg
canvas, not through ``pyplot``, so nothing touches the global backend or pyplot's figure registry,
and the paper style is applied with ``matplotlib.rc_context`` (a style context), never by editing
the global ``rcParams``.

Every scheme keeps one colour, marker and line style in every figure of a directory (its position
in the config), from the Okabe-Ito palette, which stays distinguishable under the common forms of
colour blindness; markers and line styles tell schemes apart in greyscale print too.

Completion time is ``inf`` for a trial that never decoded. Means and spreads of completion time
are taken over decoded trials only, and every figure that shows them also shows the decode rate,
because a scheme that decodes quickly but rarely would otherwise look best.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import stats

from .parameters import read_schemes
from .perfetto import chunk_spans, load_trial
from .schema import SCHEME_COLUMNS

#: Okabe & Ito (2008), "Color Universal Design": safe for deuteranopia, protanopia, tritanopia.
#: Ordered for contrast on white; yellow (weakest on white) last.
OKABE_ITO: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish_green": "#009E73",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "black": "#000000",
    "yellow": "#F0E442",
}
PALETTE: tuple[str, ...] = tuple(OKABE_ITO.values())
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))

#: The paper style, applied per figure through ``rc_context``.
PAPER_STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.4,
    "lines.markersize": 5,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by publishers
    "ps.fonttype": 42,
    "savefig.dpi": 200,
}
DPI = 200
TIME_LABEL = "completion time (time units)"
MEAN_TIME_LABEL = "mean completion time (time units)"
UPLOAD_LABEL = "upload (floats per trial)"
ERROR_LABEL = r"relative error $\|\hat g - g\|^2 / \|g\|^2$"
UNDECODED_NOTE = "curves end below 1: the missing fraction never decoded (time = inf)"


@dataclass(frozen=True)
class Style:
    """How one scheme is drawn, in every figure of a directory."""

    color: str
    marker: str
    linestyle: Any

    def line(self) -> dict[str, Any]:
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}


def scheme_style(index: int) -> Style:
    """Colour, marker and line style of the ``index``-th scheme; unique for the first 40."""
    return Style(
        PALETTE[index % len(PALETTE)],
        MARKERS[index % len(MARKERS)],
        LINESTYLES[index % len(LINESTYLES)],
    )


# --------------------------------------------------------------------------------------------
# Entry points


def plot_any(path: Path | str, out_dir: Path | str | None = None) -> list[Path]:
    """Figures of a run or a sweep directory (a sweep has ``sweep.json``).

    ``out_dir`` defaults to ``<path>/figures``. Returns every file written (PNG and PDF).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory (expected a run or a sweep directory)")
    out = Path(out_dir) if out_dir is not None else path / "figures"
    if (path / "sweep.json").is_file():
        return plot_sweep(path, out)
    if (path / "summary.parquet").is_file():
        return plot_run(path, out)
    raise FileNotFoundError(
        f"{path} is neither a run directory (no summary.parquet) nor a sweep directory "
        "(no sweep.json)"
    )


def plot_run(
    run_dir: Path | str,
    out_dir: Path | str,
    trial: int | None = None,
    timeline_schemes: Sequence[str] | None = None,
) -> list[Path]:
    """Every figure of one run: completion-time CDF, communication vs time, error vs deadline
    (when the run has approximate schemes), and a timeline of ``trial`` (default: the first
    traced) for each scheme in ``timeline_schemes`` (default: every traced scheme).

    Everything is read and checked before the first figure is written: an unknown scheme, an
    untraced ``trial`` asked for, or an unreadable file raises ValueError with nothing written."""
    run_dir, out = Path(run_dir), Path(out_dir)
    summary = pd.read_parquet(run_dir / "summary.parquet")
    schemes = _run_schemes(run_dir)
    order = _scheme_order(summary, schemes)
    events = _read_events(run_dir)
    traced_trials = sorted(set(events["trial"])) if not events.empty else []
    if timeline_schemes is not None:
        unknown = [scheme for scheme in timeline_schemes if scheme not in order]
        if unknown:
            raise ValueError(
                f"--timelines: no scheme {', '.join(map(repr, unknown))} in this run; its "
                f"schemes: {', '.join(order)}"
            )
    if trial is not None and trial not in traced_trials:
        where = (f"the traced trials are {traced_trials[0]}..{traced_trials[-1]}"
                 if traced_trials else "no trial was traced")  # fmt: skip
        raise ValueError(
            f"--trial {trial}: not traced ({where}); rerun with a larger output.events_trials"
        )
    if trial is None:
        trial = traced_trials[0] if traced_trials else 0
    written: list[Path] = []
    shown, shown_order = _renamed(summary, order, display_names(schemes, order))
    written += _completion_cdf(shown, shown_order, out, _run_name(run_dir))
    written += _communication_vs_time(_scheme_stats(shown), shown_order, out, sweep=False)
    approx = _approximate_rows(summary, schemes, {})
    if not approx.empty:
        written += _error_vs_deadline(approx, out, "mse_vs_deadline")
    traced = set(events.loc[events["trial"] == trial, "scheme"]) if not events.empty else set()
    for scheme in timeline_schemes if timeline_schemes is not None else order:
        if scheme in traced:
            written += plot_timeline(run_dir, trial=trial, scheme=scheme, out_dir=out)
    return written


def plot_sweep(sweep_dir: Path | str, out_dir: Path | str) -> list[Path]:
    """Every figure of a sweep: mean completion time against each grid key (with decode rate),
    communication vs time over all points, error vs deadline (when a grid key or the schemes
    themselves vary an approximate deadline) and completion-time CDFs, one panel per point
    (only up to 12 points; a bigger grid gets them from ``plot_run`` on ``points/<id>``).

    Reads ``sweep.json`` (grid, points with id, params and dir), the combined
    ``summary.parquet`` (one column per grid key) and the combined ``schemes.parquet`` (the
    schemes' parameters per point; for a sweep written before it, each point's scheme table)."""
    sweep_dir, out = Path(sweep_dir), Path(out_dir)
    meta = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    grid: dict[str, list[Any]] = dict(meta.get("grid", {}))
    summary = pd.read_parquet(sweep_dir / "summary.parquet")
    summary = summary.assign(_point=_assign_points(summary, meta.get("points", [])))
    summary = summary[summary["_point"].notna()]
    # Points without rows (failed or not yet run) are left out of every figure.
    points = [p for p in meta.get("points", []) if p["id"] in set(summary["_point"])]
    params = {p["id"]: dict(p.get("params", {})) for p in points}
    keys = [key for key in grid if all(key in params[p] for p in params)]
    schemes = _sweep_schemes(sweep_dir, points)
    order = _scheme_order(summary, schemes)
    written: list[Path] = []
    if summary.empty:
        return written
    independent = {key: _independent_schemes(summary, schemes, key, keys, order) for key in keys}
    names = display_names(schemes, order)
    shown, shown_order = _renamed(summary, order, names)
    for key in keys:
        fixed = {names[s] for s in independent[key]}
        written += _sweep_time_vs_key(shown, key, keys, grid[key], params, shown_order, out, fixed)
    written += _communication_vs_time(
        _scheme_stats(shown, ["_point"]), shown_order, out, sweep=True, params=params
    )
    approx = [
        _approximate_rows(
            summary[summary["_point"] == p["id"]],
            schemes[schemes["point"] == p["id"]],
            params[p["id"]],
        )
        for p in points
    ]
    approx = [frame for frame in approx if not frame.empty]
    if approx:
        written += _error_vs_deadline(
            pd.concat(approx, ignore_index=True), out, "sweep_mse_vs_deadline"
        )
    if 0 < len(points) <= 12:
        written += _sweep_cdfs(shown, points, shown_order, out)
    return written


def _independent_schemes(
    summary: pd.DataFrame,
    schemes: pd.DataFrame,
    key: str,
    keys: Sequence[str],
    order: Sequence[str],
) -> set[str]:
    """Schemes that do not depend on the grid key: a ``schemes.*.X`` key the scheme has no
    parameter X for (its table value is empty at every point), or, for any key, identical
    completion times at every value of it, the other grid keys held (sweeps pair schemes on
    common random numbers, so a scheme the key does not touch gets the same rows)."""
    out = set()
    leaf = key.split(".")[-1]
    others = [k for k in keys if k != key and k in summary.columns]
    for scheme in order:
        if key.startswith("schemes.") and leaf in schemes.columns:
            values = schemes.loc[schemes["scheme"] == scheme, leaf]
            if values.isna().all() or values.astype(str).isin(["", "-1", "nan", "None"]).all():
                out.add(scheme)
                continue
        rows = summary[summary["scheme"] == scheme]
        if key not in rows.columns or rows[key].astype(str).nunique() < 2:
            continue
        arrays = [
            group.sort_values([*others, "trial"])["completion_time"].to_numpy()
            for _, group in rows.groupby(rows[key].astype(str), sort=False)
        ]
        if all(a.shape == arrays[0].shape and np.array_equal(a, arrays[0]) for a in arrays):
            out.add(scheme)
    return out


# --------------------------------------------------------------------------------------------
# Reading


def _run_schemes(run_dir: Path) -> pd.DataFrame:
    """The run's scheme table (``parameters.read_schemes``: its ``schemes.parquet``, or built
    from the config of a run written before that file); an empty table for a directory with
    neither (only a summary: figures in summary order, no error-vs-deadline figure)."""
    try:
        return read_schemes(run_dir)
    except FileNotFoundError:
        return _no_schemes()


def _no_schemes() -> pd.DataFrame:
    return pd.DataFrame(columns=list(SCHEME_COLUMNS)).astype(SCHEME_COLUMNS)


def _sweep_schemes(sweep_dir: Path, points: list[dict[str, Any]]) -> pd.DataFrame:
    """Every point's scheme table with a ``point`` column: the sweep's combined
    ``schemes.parquet``, or (a sweep written before it) each point directory's table."""
    path = Path(sweep_dir) / "schemes.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    frames = [
        _run_schemes(Path(sweep_dir) / p.get("dir", f"points/{p['id']}")).assign(point=p["id"])
        for p in points
    ]
    return pd.concat(frames, ignore_index=True) if frames else _no_schemes().assign(point="")


def _run_name(run_dir: Path) -> str | None:
    """The run's name, from its manifest (None when it has none)."""
    try:
        manifest = json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest.get("name") if isinstance(manifest, dict) else None


def _read_events(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "events.parquet"
    if not path.is_file():
        return pd.DataFrame(columns=["scheme", "trial", "time", "kind", "worker", "chunk", "size"])
    return pd.read_parquet(path)


def _scheme_order(summary: pd.DataFrame, schemes: pd.DataFrame) -> list[str]:
    """Schemes in config order (the scheme table's: the order styles are assigned in), then
    any others."""
    present = list(dict.fromkeys(summary["scheme"]))
    ordered = [label for label in dict.fromkeys(schemes["scheme"]) if label in present]
    return ordered + [s for s in present if s not in ordered]


def _styles(order: Sequence[str]) -> dict[str, Style]:
    return {scheme: scheme_style(i) for i, scheme in enumerate(order)}


def _assign_points(summary: pd.DataFrame, points: list[dict[str, Any]]) -> pd.Series:
    """The sweep point id of every row of the combined summary.

    ``gcsim sweep`` writes a ``point`` column; without one, rows are matched to points by the
    grid-key columns (numbers compared with a tolerance, anything else by its text).
    """
    ids = {p["id"] for p in points}
    if "point" in summary.columns:
        return summary["point"].where(summary["point"].isin(ids))
    assigned = pd.Series([None] * len(summary), index=summary.index, dtype=object)
    for point in points:
        mask = np.ones(len(summary), dtype=bool)
        for key, value in point.get("params", {}).items():
            if key not in summary.columns:
                continue
            column = summary[key]
            if _is_number(value) and pd.api.types.is_numeric_dtype(column):
                mask &= np.isclose(column.to_numpy(dtype=float), float(value))
            else:
                mask &= (column.astype(str) == str(value)).to_numpy()
        assigned[mask & assigned.isna().to_numpy()] = point["id"]
    return assigned


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


# --------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class TimeStats:
    """Completion time over decoded trials, with the decode rate beside it."""

    trials: int
    decoded: int
    mean: float
    std: float
    ci95: float  # half-width of the 95% confidence interval of the mean (Student t)

    @property
    def decode_rate(self) -> float:
        return self.decoded / self.trials if self.trials else math.nan


def time_stats(times: Iterable[float]) -> TimeStats:
    """Mean, std and 95% CI of the mean over the finite (decoded) completion times."""
    values = np.asarray(list(times), dtype=float)
    finite = values[np.isfinite(values)]
    n = finite.size
    if n == 0:
        return TimeStats(values.size, 0, math.nan, math.nan, math.nan)
    mean = float(finite.mean())
    if n == 1:
        return TimeStats(values.size, 1, mean, 0.0, math.nan)
    std = float(finite.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return TimeStats(values.size, n, mean, std, half)


def _scheme_stats(summary: pd.DataFrame, keys: Sequence[str] = ()) -> pd.DataFrame:
    """One row per scheme (and grid point): mean time over decoded trials, decode rate,
    mean upload floats over all trials."""
    rows = []
    group_keys = ["scheme", *keys]
    for values, group in summary.groupby(group_keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        ts = time_stats(group["completion_time"])
        rows.append(
            dict(zip(group_keys, values, strict=True))
            | {
                "mean_time": ts.mean,
                "decode_rate": ts.decode_rate,
                "mean_upload": float(group["upload_floats"].mean()),
            }
        )
    return pd.DataFrame(rows)


def _approximate_rows(
    summary: pd.DataFrame, schemes: pd.DataFrame, point: dict[str, Any]
) -> pd.DataFrame:
    """Summary rows of approximate schemes with their deadline and a series name.

    A series is one scheme definition with its deadline left out: its protocol and the
    parameters (columns of the scheme table) that tell apart the approximate schemes of that
    protocol, so a run listing the same scheme at several deadlines, and a sweep over
    ``schemes.N.deadline``, both give one curve per scheme. Grid keys other than a deadline or
    label split series further. Schemes whose parameters all agree but that share a deadline
    (they differ only in what the table does not hold) are told apart by their labels.
    ``schemes``: the scheme table of the run (or of the sweep point).
    """
    approx = schemes[(schemes["mode"] == "approximate") & schemes["deadline"].notna()]
    if approx.empty or summary.empty or summary["rel_error"].isna().all():
        return pd.DataFrame()
    ignore = {"scheme", "mode", "deadline", "engine", "parameters"}  # parameters: holds deadline
    params = [c for c in SCHEME_COLUMNS if c not in ignore]
    others = [
        f"{k}={v}"
        for k, v in point.items()
        if not re.fullmatch(r"schemes\.(\d+|\*)\.(deadline|label)", k)
    ]
    names = {}
    for protocol, same in approx.groupby("protocol", sort=False):
        varying = sorted(c for c in params if c != "protocol" and same[c].nunique(dropna=False) > 1)
        for row in same.itertuples(index=False):
            values = row._asdict()
            name = " ".join([protocol, *(f"{c}={values[c]}" for c in varying), *others])
            names[row.scheme] = name
    series = pd.DataFrame({"scheme": list(names), "series": list(names.values())})
    series = series.merge(approx[["scheme", "deadline"]], on="scheme")
    clash = series.duplicated(["series", "deadline"], keep=False)
    clashing = set(series.loc[clash, "series"])
    series.loc[series["series"].isin(clashing), "series"] += " (" + series["scheme"] + ")"
    frames = []
    for row in series.itertuples(index=False):
        rows = summary[summary["scheme"] == row.scheme]
        if rows.empty:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "series": row.series,
                    "deadline": float(row.deadline),
                    "rel_error": rows["rel_error"].to_numpy(),
                    "decoded": rows["decoded"].to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------------------------
# Figures


def _legend_columns(labels: Sequence[str], fig: Figure, fontsize: float = 8) -> int:
    """As many legend columns as fit across the figure (estimated from the longest label)."""
    char = 0.5 * fontsize / 72  # average glyph width of DejaVu Sans, inches
    entry = 0.6 + char * max((len(str(label)) for label in labels), default=1)
    fits = int(fig.get_figwidth() * 0.95 // entry)
    return max(1, min(len(labels), fits, 6))


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: Path, stem: str) -> list[Path]:
    """PNG (200 dpi) and PDF side by side; then release the figure's artists."""
    out.mkdir(parents=True, exist_ok=True)
    png, pdf = out / f"{stem}.png", out / f"{stem}.pdf"
    fig.savefig(png, dpi=DPI, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    fig.clear()
    return [png, pdf]


def slug(text: str) -> str:
    """A file-name-safe form of a scheme label or grid key."""
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower() or "x"


def _percent(rate: float) -> str:
    if math.isnan(rate):
        return "n/a"
    if 0.995 <= rate < 1.0:
        return f"{100 * rate:.1f}%"
    return f"{100 * rate:.0f}%"


def _ecdf_points(times: np.ndarray, x_min: float, x_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Step coordinates of the empirical CDF over all trials: undecoded trials (inf) never
    arrive, so the curve stops at the decode rate and runs flat to ``x_max``."""
    n = times.size
    finite = np.sort(times[np.isfinite(times)])
    xs = np.concatenate([[x_min], finite, [x_max]])
    ys = np.concatenate([[0.0], np.arange(1, finite.size + 1) / n, [finite.size / n]])
    return xs, ys


@dataclass(frozen=True)
class TimeAxis:
    """The x range of completion-time plots: log scale when decoded times span a decade."""

    low: float
    high: float
    log: bool


def time_axis(times: np.ndarray) -> TimeAxis:
    finite = np.asarray(times, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return TimeAxis(0.0, 1.0, False)
    low, high = float(finite.min()), float(finite.max())
    if low > 0 and high / low >= 10:
        return TimeAxis(low / 1.1, high * 1.1, True)
    return TimeAxis(0.0, high * 1.03 if high > 0 else 1.0, False)


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks (1-2-3-5 over a short range) inside [low, high] for a log time axis."""
    for mantissas in ((1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 7)):
        ticks = [
            m * 10.0**e
            for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
            for m in mantissas
            if low <= m * 10.0**e <= high
        ]
        if len(ticks) >= 5:
            break
    return ticks


def _draw_cdfs(ax, summary: pd.DataFrame, order: Sequence[str], axis: TimeAxis, rates: bool):
    styles = _styles(order)
    for scheme in order:
        times = summary.loc[summary["scheme"] == scheme, "completion_time"].to_numpy(float)
        if times.size == 0:
            continue
        xs, ys = _ecdf_points(times, axis.low, axis.high)
        style = styles[scheme]
        rate = np.isfinite(times).mean()
        label = f"{scheme} (decoded {_percent(rate)})" if rates else scheme
        ax.step(
            xs,
            ys,
            where="post",
            label=label,
            markevery=0.12,  # evenly spaced along the drawn curve, not over trials
            markersize=4,
            **style.line(),
        )
    if axis.log:
        ax.set_xscale("log")
        ticks = _log_ticks(axis.low, axis.high)
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlim(axis.low, axis.high)


def _completion_cdf(
    summary: pd.DataFrame, order: Sequence[str], out: Path, name: str | None
) -> list[Path]:
    with matplotlib.rc_context(PAPER_STYLE):
        fig = _new_figure(7.0, 4.0)
        ax = fig.add_subplot()
        axis = time_axis(summary["completion_time"].to_numpy(float))
        _draw_cdfs(ax, summary, order, axis, True)
        ax.set_xlabel(TIME_LABEL + (", log scale" if axis.log else ""))
        ax.set_ylabel("fraction of trials decoded by time")
        trials = summary["trial"].nunique()
        ax.set_title(f"Completion-time CDF{f' — {name}' if name else ''} ({trials} trials)")
        fig.legend(loc="outside right upper", title="scheme")
        fig.text(0.01, 0.005, UNDECODED_NOTE, fontsize=7, style="italic", ha="left", va="bottom")
        fig.get_layout_engine().set(h_pad=0.12)
        return _save(fig, out, "completion_cdf")


def _sweep_cdfs(
    summary: pd.DataFrame, points: list[dict[str, Any]], order: Sequence[str], out: Path
) -> list[Path]:
    columns = min(math.ceil(math.sqrt(len(points))), 3)
    rows = math.ceil(len(points) / columns)
    axis = time_axis(summary["completion_time"].to_numpy(float))
    with matplotlib.rc_context(PAPER_STYLE):
        fig = _new_figure(7.5, 0.6 + 2.3 * rows)
        axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
        for ax, point in zip(axes.flat, points, strict=False):
            rows_of_point = summary[summary["_point"] == point["id"]]
            _draw_cdfs(ax, rows_of_point, order, axis, False)
            ax.set_title(_params_text(point["params"], "\n"), fontsize=7)
        for ax in axes.flat[len(points) :]:
            ax.set_visible(False)
        for index, ax in enumerate(axes.flat[: len(points)]):
            if index + columns >= len(points):  # nothing below: this panel carries the x axis
                ax.xaxis.set_tick_params(labelbottom=True, labelsize=7)
        # One x label for the grid: a label per column ran into its neighbours.
        fig.supxlabel(TIME_LABEL + (", log scale" if axis.log else ""), fontsize=9)
        for ax in axes[:, 0]:
            ax.set_ylabel("fraction decoded")
        fig.suptitle(f"Completion-time CDF per sweep point\n({UNDECODED_NOTE})", fontsize=9)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=_legend_columns(labels, fig))
        return _save(fig, out, "sweep_completion_cdf")


#: Readable names of config keys (their last part) on axes, titles and labels.
KEY_NAMES = {
    "ell": "communication split ell",
    "load": "load (chunks per worker)",
    "deadline": "deadline T (time units)",
    "workers": "workers m",
    "chunks": "chunks N",
    "latency": "network latency (time units)",
    "time_per_float": "time per float (time units)",
    "prob": "fail-stop probability",
    "crash_rate": "crash rate",
    "seed": "seed",
    "trials": "trials",
    "dim": "gradient dimension d",
    "k": "uploads waited for k",
    "fraction": "fraction of uploads waited for",
}
#: Shorter forms for compact labels (point titles, marker labels).
SHORT_NAMES = {"workers": "m", "chunks": "N", "deadline": "T", "latency": "L", "prob": "p_fail",
               "time_per_float": "t/float", "dim": "d"}  # fmt: skip


def readable_key(key: str, short: bool = False) -> str:
    """A grid key in words: ``schemes.*.ell`` -> "communication split ell",
    ``cluster.workers`` -> "workers m", ``schemes.2.load`` -> "load (chunks per worker) of
    scheme 2"; ``short``: "ell", "m", "load of scheme 2"."""
    parts = key.split(".")
    leaf = parts[-1]
    name = SHORT_NAMES.get(leaf, leaf) if short else KEY_NAMES.get(leaf, leaf.replace("_", " "))
    if len(parts) >= 3 and parts[0] == "schemes" and parts[1] != "*":
        name += f" of scheme {parts[1]}"
    elif parts[0] == "compute" or (len(parts) > 1 and parts[1] == "compute"):
        name = f"compute {name}"
    return name


def _params_text(params: dict[str, Any], sep: str = ", ") -> str:
    return sep.join(f"{readable_key(k, short=True)}={v}" for k, v in params.items())


def display_names(schemes: pd.DataFrame, order: Sequence[str]) -> dict[str, str]:
    """Legend names: a scheme's label, except the generated ``protocol#n`` labels, which are
    replaced by the protocol and the parameters telling it apart from the other schemes of
    that protocol (from the scheme table: ``partial_gc ell=2``, not ``partial_gc#2``)."""
    names = {scheme: scheme for scheme in order}
    if schemes.empty or not any("#" in scheme for scheme in order):
        return names
    table = schemes.drop_duplicates("scheme").set_index("scheme")
    ignore = {"protocol", "engine", "parameters", "point"}
    columns = [c for c in table.columns if c not in ignore]
    for scheme in order:
        if "#" not in scheme or scheme not in table.index:
            continue
        protocol = table.loc[scheme, "protocol"]
        same = table[table.protocol == protocol]
        varying = [c for c in columns if same[c].astype(str).nunique() > 1]
        text = " ".join(f"{c}={table.loc[scheme, c]}" for c in varying)
        names[scheme] = f"{protocol} {text}" if text else scheme.replace("#", " no. ")
    if len(set(names.values())) < len(names):  # two schemes the table cannot tell apart
        return {scheme: scheme.replace("#", " no. ") for scheme in order}
    return names


def _renamed(
    summary: pd.DataFrame, order: Sequence[str], names: dict[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    """The summary and the scheme order under the display names."""
    return summary.assign(scheme=summary["scheme"].map(names)), [names[s] for s in order]


def _communication_vs_time(
    table: pd.DataFrame,
    order: Sequence[str],
    out: Path,
    sweep: bool,
    params: dict[str, dict[str, Any]] | None = None,
) -> list[Path]:
    """Mean upload against mean completion time, one marker per scheme (and sweep point: each
    marker labelled with its point's grid values)."""
    styles = _styles(order)
    table = table[np.isfinite(table["mean_time"])]
    with matplotlib.rc_context(PAPER_STYLE):
        fig = _new_figure(7.0, 4.0)
        ax = fig.add_subplot()
        for scheme in order:
            rows = table[table["scheme"] == scheme]
            if rows.empty:
                continue
            style = styles[scheme]
            if sweep:
                label = scheme
            else:
                label = f"{scheme} (decoded {_percent(float(rows['decode_rate'].iloc[0]))})"
            ax.plot(
                rows["mean_time"],
                rows["mean_upload"],
                linestyle="none",
                marker=style.marker,
                color=style.color,
                markersize=7,
                markeredgecolor="black",
                markeredgewidth=0.5,
                label=label,
            )
            if sweep and params:
                labels: dict[tuple[float, float], list[str]] = {}
                for row in rows.to_dict("records"):  # coinciding markers share one label
                    point = params.get(row.get("_point", ""), {})
                    at = (row["mean_time"], row["mean_upload"])
                    labels.setdefault(at, []).append(",".join(str(v) for v in point.values()))
                for at, texts in labels.items():
                    ax.annotate("; ".join(texts), at, xytext=(4, 3), textcoords="offset points",
                                fontsize=6, color=style.color)  # fmt: skip
        uploads = table["mean_upload"].to_numpy(float)
        if uploads.size and uploads.min() > 0 and uploads.max() / uploads.min() > 20:
            ax.set_yscale("log")
        ax.set_xlabel(f"{MEAN_TIME_LABEL}, decoded trials")
        ax.set_ylabel(UPLOAD_LABEL)
        what = "one marker per scheme and sweep point" if sweep else "one marker per scheme"
        keys = list(next(iter(params.values()), {})) if sweep and params else []
        marks = (
            f"\nmarkers labelled {', '.join(readable_key(k, True) for k in keys)}" if keys else ""
        )
        ax.set_title(f"Communication versus completion time ({what}){marks}", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            fig.legend(loc="outside right upper", title="scheme")
        return _save(fig, out, "sweep_communication_vs_time" if sweep else "communication_vs_time")


def _short(value: Any, limit: int = 18) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _categorical(values: Sequence[Any]) -> bool:
    return not all(_is_number(v) for v in values)


def _sweep_time_vs_key(
    summary: pd.DataFrame,
    key: str,
    keys: Sequence[str],
    grid_values: Sequence[Any],
    params: dict[str, dict[str, Any]],
    order: Sequence[str],
    out: Path,
    fixed: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[Path]:
    """Mean completion time (bars: 10th to 90th percentile of the decoded trials, so never
    below the fastest time; band: 95% CI of the mean) and decode rate against one grid key;
    one panel per combination of the other keys when they vary independently (a product
    grid), a single panel when they move together (a zipped grid). Schemes in ``fixed`` do not
    depend on the key: they are drawn as horizontal reference lines, not lines against it."""
    others = [k for k in keys if k != key]
    values: list[Any] = []
    for value in [*grid_values, *(p[key] for p in params.values())]:
        if repr(value) not in map(repr, values):
            values.append(value)
    categorical = _categorical(values)
    if categorical:
        labels = [repr(v) for v in values]
        x_of = {pid: float(labels.index(repr(p[key]))) for pid, p in params.items()}
    else:
        x_of = {pid: float(p[key]) for pid, p in params.items()}
    facet_of = {pid: _params_text({k: p[k] for k in others}) for pid, p in params.items()}
    data = summary.assign(
        _x=summary["_point"].map(x_of).astype(float), _facet=summary["_point"].map(facet_of)
    )
    facets: list[tuple[str, pd.DataFrame]] = [("", data)]
    if others:
        grouped = list(data.groupby("_facet", sort=False))
        if all(group["_x"].nunique() > 1 for _, group in grouped):
            facets = grouped
    facets = facets[:6]
    numeric_x = np.array([float(v) for v in values]) if not categorical else None
    log_x = bool(
        numeric_x is not None and numeric_x.min() > 0 and numeric_x.max() / numeric_x.min() >= 50
    )
    # Schemes are dodged sideways (a fraction of the closest spacing of the grid values, in log
    # space on a log axis) so error bars do not hide each other.
    if categorical:
        base = np.arange(len(values), dtype=float)
    else:
        base = np.log10(numeric_x) if log_x else numeric_x.astype(float)
    gaps = np.diff(np.unique(base))
    spacing = float(gaps.min()) if gaps.size else 1.0
    step = 0.16 * spacing / max(len(order), 1)
    limits = (base.min() - 0.35 * spacing, base.max() + 0.35 * spacing)

    def dodged(xs: np.ndarray, i: int) -> np.ndarray:
        shift = (i - (len(order) - 1) / 2) * step
        return xs * 10.0**shift if log_x else xs + shift

    styles = _styles(order)
    with matplotlib.rc_context(PAPER_STYLE):
        fig = _new_figure(min(max(7.0, 3.0 + 3.2 * len(facets)), 12.0), 4.8 + 0.15 * len(order))
        axes = fig.subplots(
            2,
            len(facets),
            sharex=True,
            sharey="row",
            squeeze=False,
            gridspec_kw={"height_ratios": [3, 1]},
        )
        for column, (title, group) in enumerate(facets):
            top, bottom = axes[0, column], axes[1, column]
            for i, scheme in enumerate(order):
                rows = group[group["scheme"] == scheme]
                if rows.empty:
                    continue
                style = styles[scheme]
                if scheme in fixed:  # one value whatever the key: a reference line
                    ts = time_stats(rows["completion_time"])
                    line = {**style.line(), "marker": None}
                    top.axhline(ts.mean, label=f"{scheme} (no {readable_key(key, True)})",
                                **line)  # fmt: skip
                    bottom.axhline(100 * ts.decode_rate, **line)
                    continue
                xs, means, spreads, cis, rates = [], [], [], [], []
                for x, at_x in rows.groupby("_x", sort=True):
                    ts = time_stats(at_x["completion_time"])
                    times = at_x["completion_time"].to_numpy(float)
                    finite = times[np.isfinite(times)]
                    low, high = np.quantile(finite, [0.1, 0.9]) if finite.size else (np.nan, np.nan)
                    xs.append(x)
                    means.append(ts.mean)
                    spreads.append((ts.mean - low, high - ts.mean))
                    cis.append(ts.ci95)
                    rates.append(100 * ts.decode_rate)
                xs_a, means_a = dodged(np.array(xs, dtype=float), i), np.array(means)
                top.errorbar(
                    xs_a,
                    means_a,
                    yerr=np.clip(np.nan_to_num(np.array(spreads).T), 0, None),
                    capsize=2,
                    elinewidth=0.8,
                    markersize=4,
                    label=scheme,
                    **style.line(),
                )
                ci_a = np.array(cis)
                if np.isfinite(ci_a).any():
                    top.fill_between(
                        xs_a,
                        means_a - ci_a,
                        means_a + ci_a,
                        color=style.color,
                        alpha=0.15,
                        linewidth=0,
                    )
                bottom.plot(
                    xs_a,
                    rates,
                    markersize=3.5,
                    **style.line(),
                )
            if title:
                top.set_title(title, fontsize=8)
            bottom.set_ylim(-5, 105)
            bottom.set_xlabel(readable_key(key))
            if log_x:
                bottom.set_xscale("log")
            if categorical:
                bottom.set_xticks(range(len(values)), [_short(v) for v in values])
            else:
                bottom.set_xticks(numeric_x, [f"{v:g}" for v in numeric_x])
                bottom.minorticks_off()
            bottom.set_xlim(*(10.0 ** np.array(limits) if log_x else limits))
        axes[0, 0].set_ylabel(f"{MEAN_TIME_LABEL}\n(decoded trials)")
        axes[1, 0].set_ylabel("decoded (%)")
        fig.suptitle(
            f"Mean completion time against {readable_key(key)}\n"
            "bars: 10th to 90th percentile of decoded trials; band: 95% CI of the mean",
            fontsize=9,
        )
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles:
            fig.legend(
                handles, labels, loc="outside lower center", ncols=_legend_columns(labels, fig)
            )
        return _save(fig, out, f"sweep_time_vs_{slug(key)}")


#: Errors at or below this are round-off (an exact decode): MSE axes stop here.
ROUND_OFF = 1e-20


def _error_vs_deadline(approx: pd.DataFrame, out: Path, stem: str) -> list[Path]:
    """Mean error against the deadline, one curve per approximate scheme; floored at round-off
    (1e-20: "exact"), and not drawn at all for a single deadline (a curve needs two)."""
    if approx["deadline"].nunique() < 2:
        return []
    series = list(dict.fromkeys(approx["series"]))
    with matplotlib.rc_context(PAPER_STYLE):
        fig = _new_figure(6.0, 4.2)
        ax = fig.add_subplot()
        drawn = False
        for i, name in enumerate(series):
            rows = approx[(approx["series"] == name) & approx["decoded"]]
            rows = rows[np.isfinite(rows["rel_error"])]
            xs, means, lows, highs = [], [], [], []
            for deadline, at in rows.groupby("deadline", sort=True):
                errors = at["rel_error"].to_numpy(float)
                mean = max(float(errors.mean()), ROUND_OFF)  # round-off is drawn as exact
                half = (
                    float(
                        stats.t.ppf(0.975, errors.size - 1)
                        * errors.std(ddof=1)
                        / math.sqrt(errors.size)
                    )
                    if errors.size > 1
                    else 0.0
                )
                xs.append(deadline)
                means.append(mean)
                lows.append(max(mean - half, mean * 1e-3, ROUND_OFF))
                highs.append(max(mean + half, ROUND_OFF))
            if not xs:
                continue
            style = scheme_style(i)
            ax.plot(xs, means, label=name, **style.line())
            ax.fill_between(xs, lows, highs, color=style.color, alpha=0.15, linewidth=0)
            drawn = True
        if drawn:
            ax.set_yscale("log")
            low, high = ax.get_ylim()
            ax.set_ylim(max(low, ROUND_OFF / 3), max(high, 1.0))
            if low <= ROUND_OFF:
                ax.axhline(ROUND_OFF, color="0.5", lw=0.8, ls=":")
                ax.annotate("exact (round-off)", (0.01, ROUND_OFF), xycoords=("axes fraction",
                            "data"), fontsize=7, color="0.4", va="bottom")  # fmt: skip
        else:
            ax.text(0.5, 0.5, "no positive error to show", transform=ax.transAxes, ha="center")
        deadlines = sorted(set(approx["deadline"]))
        if len(deadlines) <= 10:
            ax.set_xticks(deadlines, [f"{d:g}" for d in deadlines])
        if len(deadlines) == 1:
            ax.set_xlim(deadlines[0] * 0.8, deadlines[0] * 1.2)
        ax.set_xlabel("deadline T (time units)")
        ax.set_ylabel(f"mean {ERROR_LABEL}")
        ax.set_title(
            "Error of approximate decoding against the deadline\n"
            "(mean over decoded trials; band: 95% CI)",
            fontsize=9,
        )
        if drawn:
            fig.legend(
                loc="outside lower center",
                title="approximate scheme",
                ncols=_legend_columns(series, fig),
            )
        return _save(fig, out, stem)


# --------------------------------------------------------------------------------------------
# Timeline of one trial

MESSAGE_STYLE: dict[str, dict[str, Any]] = {
    "upload": {"marker": "^", "color": OKABE_ITO["orange"], "markersize": 4.5},
    "control": {
        "marker": "|",
        "color": OKABE_ITO["bluish_green"],
        "markersize": 5,
        "markeredgewidth": 1.2,
    },
    "download": {"marker": "v", "color": OKABE_ITO["reddish_purple"], "markersize": 4.5},
}
BAR_STYLE: dict[str, dict[str, Any]] = {
    "done": {"color": OKABE_ITO["blue"], "edgecolor": "white", "hatch": None},
    "interrupt": {"color": OKABE_ITO["sky_blue"], "edgecolor": "white", "hatch": "////"},
    "crash": {"color": OKABE_ITO["vermillion"], "edgecolor": "white", "hatch": "xxxx"},
    "open": {"color": "#BBBBBB", "edgecolor": "white", "hatch": "...."},
}
BAR_LEGEND = {
    "done": "chunk computed",
    "interrupt": "cut off at decode",
    "crash": "cut off by crash",
    "open": "unfinished at end",
}


def plot_timeline(
    run_dir: Path | str,
    trial: int = 0,
    scheme: str | None = None,
    out_dir: Path | str | None = None,
) -> list[Path]:
    """A Gantt chart of one traced trial of one scheme (default: the first scheme).

    Workers are rows (the PS on top); each chunk computation is a bar from chunk_start to its
    end, styled by how it ended; messages are ticks above the bars (sent on the sender's row,
    received on the PS row for uploads and control messages); fail-stop workers are shaded,
    crashes are crosses, the decode instant is a solid line and the deadline a dashed one.
    Raises ValueError (from :func:`simulator.perfetto.load_trial`) for an untraced trial or an
    unknown scheme. ``out_dir`` defaults to ``<run_dir>/figures``.
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "figures"
    trace = load_trial(run_dir, trial, scheme)
    name = scheme if scheme is not None else trace.schemes[0]
    events = trace.of(name).sort_values("time", kind="stable")
    spans = chunk_spans(events)
    params = _run_schemes(run_dir).set_index("scheme")
    approximate = name in params.index and params.at[name, "mode"] == "approximate"
    deadline = float(params.at[name, "deadline"]) if approximate else None
    deadline = None if deadline is not None and math.isnan(deadline) else deadline
    decoded = events.loc[events["kind"] == "decoded", "time"]
    t_decode = float(decoded.iloc[0]) if not decoded.empty else None
    t_end = max(
        [float(events["time"].max()), t_decode or 0.0, float(deadline or 0.0)]
        + [s.end for s in spans]
    )
    t_end = t_end if t_end > 0 else 1.0
    workers = trace.workers
    ps_row = -1
    x_right = t_end * 1.02

    def times(kinds: Iterable[str]) -> pd.DataFrame:
        return events[events["kind"].isin(list(kinds))]

    with matplotlib.rc_context(PAPER_STYLE | {"axes.grid": False}):
        fig = _new_figure(7.5, 1.9 + 0.24 * (workers + 1))
        ax = fig.add_subplot()
        # Fail-stop workers: the whole row shaded; crashed workers: shaded from the crash on.
        down = sorted(set(times(["down"])["worker"].astype(int)))
        if down:
            ax.barh(
                down,
                x_right,
                left=0,
                height=0.9,
                color="#E5E5E5",
                edgecolor="#999999",
                hatch="\\\\\\",
                linewidth=0,
                zorder=0,
            )
            for worker in down:
                ax.text(
                    t_end * 0.01,
                    worker,
                    "down (fail-stop)",
                    fontsize=6,
                    va="center",
                    ha="left",
                    color="#333333",
                    zorder=4,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},
                )
        crashes = times(["crash"])
        if not crashes.empty:
            starts = crashes["time"].to_numpy(float)
            ax.barh(
                crashes["worker"].astype(int),
                x_right - starts,
                left=starts,
                height=0.9,
                color="#F2F2F2",
                linewidth=0,
                zorder=0,
            )
        # Chunk bars, one barh call per ending.
        for status, style in BAR_STYLE.items():
            chosen = [s for s in spans if s.status == status]
            if not chosen:
                continue
            ax.barh(
                [s.worker for s in chosen],
                [max(s.end - s.start, t_end * 1e-4) for s in chosen],
                left=[s.start for s in chosen],
                height=0.56,
                color=style["color"],
                edgecolor=style["edgecolor"],
                hatch=style["hatch"],
                linewidth=0.5,
                zorder=2,
            )
        for span in spans:
            if span.end - span.start >= 0.028 * t_end * max(1, len(str(span.chunk))) / 1.5:
                ax.text(
                    (span.start + span.end) / 2,
                    span.worker,
                    str(span.chunk),
                    fontsize=5.5,
                    ha="center",
                    va="center",
                    zorder=3,
                    color="white" if span.status in ("done", "crash") else "black",
                )
        # Messages: ticks above the bars.
        lift = 0.42
        for family, style in MESSAGE_STYLE.items():
            sent = (
                times([f"{family}_sent"]) if family != "download" else times(["download_received"])
            )
            ps_side = (
                times([f"{family}_received"]) if family != "download" else times(["download_sent"])
            )
            ax.plot(
                sent["time"],
                sent["worker"].astype(float) - lift,
                linestyle="none",
                zorder=4,
                **style,
            )
            ax.plot(
                ps_side["time"],
                np.full(len(ps_side), ps_row, dtype=float),
                linestyle="none",
                zorder=4,
                alpha=0.7,
                **style,
            )
        lost = times(["upload_lost", "control_lost", "download_lost"])
        if not lost.empty:
            rows = [
                ps_row if k != "download_lost" else w
                for k, w in zip(lost["kind"], lost["worker"].astype(int), strict=True)
            ]
            ax.plot(
                lost["time"],
                np.array(rows, dtype=float) - lift,
                linestyle="none",
                marker="v",
                markerfacecolor="white",
                markeredgecolor=OKABE_ITO["reddish_purple"],
                markersize=4.5,
                zorder=4,
            )
        if not crashes.empty:
            ax.plot(
                crashes["time"],
                crashes["worker"].astype(float),
                linestyle="none",
                marker="x",
                color="black",
                markersize=7,
                markeredgewidth=1.8,
                zorder=5,
            )
        detected = times(["crash_detected"])
        if not detected.empty:
            ax.plot(
                detected["time"],
                np.full(len(detected), ps_row, dtype=float),
                linestyle="none",
                marker="x",
                color="#666666",
                markersize=5,
                markeredgewidth=1.2,
                zorder=5,
            )
        if t_decode is not None:
            ax.axvline(t_decode, color="black", linewidth=1.4, zorder=6)
        if deadline is not None:
            ax.axvline(
                float(deadline),
                color=OKABE_ITO["vermillion"],
                linewidth=1.4,
                linestyle=(0, (4, 2)),
                zorder=6,
            )
        ax.set_yticks(range(ps_row, workers), ["PS", *(str(w) for w in range(workers))])
        ax.tick_params(axis="y", labelsize=6 if workers > 16 else 8, length=0)
        ax.set_ylim(workers - 0.5, ps_row - 0.7)
        ax.set_xlim(0, x_right)
        ax.axhline(ps_row + 0.5, color="#999999", linewidth=0.6)
        ax.grid(True, axis="x", alpha=0.3, linewidth=0.6)
        ax.set_xlabel("time (time units)")
        ax.set_ylabel("worker")
        outcome = f"decoded at t = {t_decode:.3g}" if t_decode is not None else "never decoded"
        ax.set_title(f"Timeline of trial {trial} — {name} ({outcome})")
        present = {s.status for s in spans}
        handles: list[Any] = [
            Patch(
                facecolor=BAR_STYLE[k]["color"],
                edgecolor="white",
                hatch=BAR_STYLE[k]["hatch"],
                label=BAR_LEGEND[k],
            )
            for k in BAR_STYLE
            if k in present
        ]
        for family, style in MESSAGE_STYLE.items():
            if not times([f"{family}_sent", f"{family}_received"]).empty:
                handles.append(Line2D([], [], linestyle="none", label=f"{family} message", **style))
        if not lost.empty:
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="v",
                    markerfacecolor="white",
                    markeredgecolor=OKABE_ITO["reddish_purple"],
                    label="message lost",
                )
            )
        if down:
            handles.append(
                Patch(
                    facecolor="#E5E5E5",
                    edgecolor="#999999",
                    hatch="\\\\\\",
                    label="fail-stop (down)",
                )
            )
        if not crashes.empty:
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="x",
                    color="black",
                    markeredgewidth=1.8,
                    label="crash",
                )
            )
        if not detected.empty:
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="x",
                    color="#666666",
                    label="crash detected (PS)",
                )
            )
        if t_decode is not None:
            handles.append(Line2D([], [], color="black", linewidth=1.4, label="decoded"))
        if deadline is not None:
            handles.append(
                Line2D(
                    [],
                    [],
                    color=OKABE_ITO["vermillion"],
                    linewidth=1.4,
                    linestyle=(0, (4, 2)),
                    label=f"deadline T = {deadline:g}",
                )
            )
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=_legend_columns([h.get_label() for h in handles], fig, 7),
            fontsize=7,
        )
        return _save(fig, out, f"timeline_trial{trial}_{slug(name)}")
