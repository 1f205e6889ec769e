"""The paper's experiments, reconstructed (configs and assumptions in experiments/paper/).

Each function runs one figure's experiment, saves the figure and returns the numbers the claims
are judged on. Deadline and m sweeps go through ``sweep.run_sweep`` (parallel, resumable: a
rerun of ``gcsim reproduce --out DIR`` reuses finished points). Schemes are grouped by their
parameters (``parameters.scheme_table``, a sweep's ``schemes.parquet``), joined on the scheme
column: a label is only a name to show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..coding import assignment as asg
from ..coding import ordering as ordr
from ..config import load_config
from ..parameters import scheme_table
from ..runner import run
from ..sweep import run_sweep
from .common import EXPERIMENTS, STYLE, figure, plt, save
from .instability import precision_sweep
from .training_claim import TrainingResult, training_experiment

PAPER = EXPERIMENTS / "paper"
ASSIGNMENTS = ("cyclic", "graph", "random_regular")


@dataclass
class Budget:
    """How much to simulate: ``quick`` must finish in minutes on 2 cores."""

    exact_trials: int
    approx_trials: int
    deadlines: tuple[float, ...]
    poly_trials: int
    mp_trials: int
    mp_digits: tuple[int, ...]
    jobs: int = 2
    sensitivity_trials: int = 200
    quantiles: tuple[float, ...] = (0.5, 0.9)
    """Each protocol's exact-time quantiles (cyclic, per ell) added to the deadline grid."""
    training_trials: int = 30
    """Trials (training runs of configs/training.yaml) behind the time-to-accuracy claim."""

    @staticmethod
    def named(name: str, jobs: int = 2) -> Budget:
        deadlines = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 14.0, 20.0)
        if name == "full":
            return Budget(2000, 600, deadlines, 200, 100, (16, 20, 24, 32, 40, 48), jobs, 1000,
                          training_trials=60)  # fmt: skip
        if name == "quick":
            return Budget(500, 150, deadlines, 60, 25, (16, 24, 32, 48), jobs, 200,
                          training_trials=20)  # fmt: skip
        if name == "test":
            return Budget(150, 40, (2.0, 4.0, 8.0), 15, 4, (16, 32), jobs, 60, (0.5,),
                          training_trials=6)  # fmt: skip
        raise ValueError(f"unknown budget {name!r}")


@dataclass
class PaperResults:
    exact: pd.DataFrame = field(default_factory=pd.DataFrame)
    approx: pd.DataFrame = field(default_factory=pd.DataFrame)
    ordering_mse: pd.DataFrame = field(default_factory=pd.DataFrame)
    precision: dict = field(default_factory=dict)
    poly_double: pd.DataFrame = field(default_factory=pd.DataFrame)
    qmax: pd.DataFrame = field(default_factory=pd.DataFrame)
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)
    exact_trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per-trial completion times of the exact runs (for paired intervals)."""
    approx_trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per-trial rel_error and residual of the cyclic deadline sweep (for paired intervals)."""
    quantiles: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Exact-time quantiles per (family, ell) on the cyclic assignment."""
    approx_verdicts: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (ell, T): partial against the better original-class code (``report.judge``)."""
    training: TrainingResult | None = None
    """The time-to-accuracy experiment (``training_claim``)."""
    figures: dict[str, list[Path]] = field(default_factory=dict)


#: The scheme families the paper compares, by (protocol, ordering); the partial-straggler
#: protocol with a random order is the ordering experiment's baseline.
FAMILIES = {("original_gc", None): "original", ("partial_gc", "random"): "random order",
            ("partial_gc", None): "partial"}  # fmt: skip
#: original_gc's random original-class code for ell > 1 (Tandon's code is "original" at ell = 1).
RANDOM_CODE = "original (random code)"
#: A mean rel_error at or below this is round-off: an exact decode, never a ratio's side.
ROUND_OFF = 1e-20
#: Trials whose coefficient residual is this small decoded exactly.
EXACT_RESIDUAL = 1e-12


def _family(protocol: str, ordering: str, construction: str = "", ell: int = 1) -> str:
    """A scheme's family from its parameters (the protocol name for any other protocol)."""
    if protocol == "original_gc" and construction == "random" and ell > 1:
        return RANDOM_CODE
    return FAMILIES.get((protocol, ordering), FAMILIES.get((protocol, None), protocol))


def _with_parameters(stats: pd.DataFrame, schemes: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """Per-scheme statistics with the scheme's parameters (ell, ordering, deadline, protocol)
    and family beside them, joined on ``on`` (the scheme, and a sweep's point)."""
    params = schemes[[*on, "protocol", "ell", "ordering", "deadline", "construction"]]
    out = stats.merge(params, on=on, how="left", validate="one_to_one")
    out["family"] = [
        _family(p, o, c, e)
        for p, o, c, e in zip(out.protocol, out.ordering, out.construction, out.ell, strict=True)
    ]
    return out.drop(columns=["construction"])


def mean_interval(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95% bootstrap percentile interval. Percentiles, not
    mean -+ 1.96 se: a mean MSE is often a few large trials among exact ones, and the normal
    interval would run below zero."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan
    picks = np.random.default_rng(seed).integers(0, values.size, (400, values.size))
    low, high = np.quantile(values[picks].mean(axis=1), [0.025, 0.975])
    return float(values.mean()), float(low), float(high)


def _stats(summary: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: time mean and std over decoded trials, P(decoded); mean rel_error (MSE) with
    its 95% interval; P(exact) (coefficient residual at rounding level) and the MSE of the
    trials that were not exact (conditional MSE)."""
    rows = []
    for values, group in summary.groupby(keys, sort=False):
        times = group.completion_time.to_numpy()
        finite = times[np.isfinite(times)]
        errors = group.rel_error.to_numpy()
        exact = (group.decoded & (group.residual <= EXACT_RESIDUAL)).to_numpy()
        mse, low, high = mean_interval(errors)
        inexact = errors[~exact]
        conditional = float(np.nanmean(inexact)) if inexact.size else np.nan
        rows.append({**dict(zip(keys, values if isinstance(values, tuple) else (values,),
                                strict=True)),
                     "mean": finite.mean() if finite.size else np.nan,
                     "std": finite.std(ddof=1) if finite.size > 1 else np.nan,
                     "decode_rate": finite.size / times.size,
                     "p10": np.quantile(finite, 0.1) if finite.size else np.nan,
                     "p90": np.quantile(finite, 0.9) if finite.size else np.nan,
                     "mse": mse, "mse_low": low, "mse_high": high,
                     "p_exact": float(exact.mean()),
                     "mse_inexact": conditional})  # fmt: skip
    return pd.DataFrame(rows)


def _trials(summary: pd.DataFrame, schemes: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """The per-trial columns the intervals need, with each scheme's family and ell."""
    columns = [*on, "trial", "completion_time", "rel_error", "residual", "decoded"]
    trials = summary[[c for c in columns if c in summary.columns]]
    params = schemes[[*on, "protocol", "ell", "ordering", "construction"]]
    out = trials.merge(params, on=on, how="left", validate="many_to_one")
    out["family"] = [
        _family(p, o, c, e)
        for p, o, c, e in zip(out.protocol, out.ordering, out.construction, out.ell, strict=True)
    ]
    return out.drop(columns=["protocol", "ordering", "construction"])


def exact_experiments(budget: Budget, out: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """Mean, 10th and 90th percentiles of exact completion time per scheme and ell on the three
    assignments; and the cyclic runs' per-trial times."""
    frames, cyclic = [], pd.DataFrame()
    for kind in ASSIGNMENTS:
        exp = load_config(PAPER / f"exact_{kind}.yaml", [f"trials={budget.exact_trials}"])
        result = run(exp, jobs=budget.jobs)
        schemes = scheme_table(exp, result.engines)
        stats = _stats(result.summary, ["scheme"])
        stats["assignment"] = kind
        stats = _with_parameters(stats, schemes, ["scheme"])
        frames.append(stats.drop(columns=["protocol", "ordering", "deadline"]))
        if kind == "cyclic":
            cyclic = _trials(result.summary, schemes, ["scheme"])
    table = pd.concat(frames, ignore_index=True)
    fig, axes = figure(ncols=3, width=4.2, height=3.6)
    styles = {"partial": ("o", "-"), "original": ("s", "--"), "random order": ("^", ":")}
    for ax, kind in zip(axes, ASSIGNMENTS, strict=True):
        part = table[table.assignment == kind]
        for i, (family, group) in enumerate(part.groupby("family", sort=False)):
            marker, line = styles.get(family, ("d", "-."))
            name = "partial (optimal order)" if family == "partial" and kind != "cyclic" else family
            # Percentile bars (10th to 90th): asymmetric, never below the fastest time.
            spread = [group["mean"] - group["p10"], group["p90"] - group["mean"]]
            ax.errorbar(
                group.ell,
                group["mean"],
                yerr=np.clip(np.array(spread, dtype=float), 0, None),
                marker=marker,
                ls=line,
                capsize=3,
                color=f"C{i}",
                label=name,
            )
        ax.set_title(f"{kind} assignment")
        ax.set_xlabel("communication split ell")
        ax.set_xticks(range(1, 5))
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("exact completion time (time units)\nmean, bars = 10th to 90th pct.")
    return table, cyclic, save(fig, out / "figures" / "paper_exact_vs_ell")


def exact_quantiles(trials: pd.DataFrame, levels: tuple[float, ...]) -> pd.DataFrame:
    """Exact completion-time quantiles per (family, ell): where deadlines are placed."""
    rows = []
    for (family, ell), group in trials.groupby(["family", "ell"], sort=True):
        times = group.completion_time.to_numpy()
        times = times[np.isfinite(times)]
        for level in levels:
            rows.append({"family": family, "ell": int(ell), "level": level,
                         "time": float(np.quantile(times, level))})  # fmt: skip
    return pd.DataFrame(rows)


def deadline_grid(budget: Budget, quantiles: pd.DataFrame) -> tuple[float, ...]:
    """The fixed grid plus each protocol's exact-time quantiles for every ell below load
    (rounded to 0.1), so every curve is sampled where that protocol starts to be exact."""
    placed = quantiles[quantiles.ell < quantiles.ell.max()].time.round(1).tolist()
    return tuple(sorted({float(t) for t in (*budget.deadlines, *placed) if t > 0}))


def _deadline_sweep(
    config: Path, budget: Budget, out: Path, deadlines: tuple[float, ...] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    deadlines = deadlines or budget.deadlines
    grid = "schemes.*.deadline=" + ",".join(f"{t:g}" for t in deadlines)
    report = run_sweep(
        config,
        [grid],
        overrides=[f"trials={budget.approx_trials}"],
        jobs=budget.jobs,
        out=out / "data" / config.stem,
    )
    stats = _stats(report.summary, ["point", "scheme"])
    stats = _with_parameters(stats, report.schemes, ["point", "scheme"])
    columns = ["deadline", "scheme", "mean", "std", "decode_rate", "mse", "mse_low", "mse_high",
               "p_exact", "mse_inexact", "ell", "family"]  # fmt: skip
    trials = _trials(report.summary, report.schemes, ["point", "scheme"])
    trials = trials.merge(stats[["point", "scheme", "deadline"]], on=["point", "scheme"])
    return stats[[*columns, "ordering"]], trials


#: How the approximate figure draws each family.
APPROX_STYLES = {"partial": ("-", "o", "C0"), "original": ("--", "s", "C3"),
                 RANDOM_CODE: (":", "^", "C1")}  # fmt: skip


def approximate_experiment(
    budget: Budget, out: Path, quantiles: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """MSE (mean rel_error, 95% band) and P(exact) against the deadline, partial vs original
    (polynomial and random original-class codes for ell > 1), one column per ell, cyclic; the
    deadlines include each protocol's exact-time quantiles, marked on the T axis."""
    deadlines = deadline_grid(budget, quantiles)
    stats, trials = _deadline_sweep(PAPER / "approximate_cyclic.yaml", budget, out, deadlines)
    ells = sorted(int(e) for e in stats.ell.unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            2, len(ells), figsize=(4.2 * len(ells), 6.4), sharex=True, sharey="row",
            squeeze=False, height_ratios=[2, 1],
        )  # fmt: skip
    for col, ell in enumerate(ells):
        top, bottom = axes[0, col], axes[1, col]
        for family, (line, marker, color) in APPROX_STYLES.items():
            group = stats[(stats.ell == ell) & (stats.family == family)].sort_values("deadline")
            if group.empty:
                continue
            mse = np.maximum(group.mse, ROUND_OFF)
            bars = [mse - np.maximum(group.mse_low, ROUND_OFF),
                    np.maximum(group.mse_high, ROUND_OFF) - mse]  # fmt: skip
            top.errorbar(group.deadline, mse, yerr=np.clip(np.array(bars), 0, None), ls=line,
                         marker=marker, color=color, label=family, capsize=2, lw=1.2,
                         elinewidth=0.8)  # fmt: skip
            bottom.plot(group.deadline, group.p_exact, ls=line, marker=marker, color=color)
        for family, (line, _, color) in APPROX_STYLES.items():
            marks = quantiles[(quantiles.family == family) & (quantiles.ell == ell)]
            for row in marks.itertuples():
                for ax in (top, bottom):
                    ax.axvline(row.time, color=color, ls=line, lw=0.8, alpha=0.6)
                # Labels run along their line (partial's to its left, the other's to its
                # right), so close quantiles do not print over each other.
                label = f"{family} q{row.level * 100:.0f} = {row.time:.1f}"
                top.annotate(label, (row.time, 0.45), xycoords=("data", "axes fraction"),
                             fontsize=6, color=color, rotation=90, va="center",
                             ha="right" if family == "partial" else "left")  # fmt: skip
        top.set_yscale("log")
        top.set_ylim(ROUND_OFF / 3, 3)
        top.set_title(f"ell = {ell}")
        bottom.set_xlabel("deadline T (time units)")
        bottom.set_ylim(-0.03, 1.03)
    axes[0, 0].set_ylabel("MSE, mean ||g_hat - g||^2/||g||^2\n(95% interval; 1e-20 = exact)")
    axes[1, 0].set_ylabel("P(exact decode)")
    handles = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    axes[0, -1].legend(handles.values(), handles.keys(), fontsize=7, loc="lower left")
    fig.suptitle(
        "Approximate recovery, cyclic assignment (m = 20, load 4); vertical lines: each "
        "protocol's exact-time quantiles",
        fontsize=9,
    )
    return stats, trials, save(fig, out / "figures" / "paper_mse_vs_deadline")


def ordering_experiment(budget: Budget, out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """MSE against T for the optimal and a random order on the two graph-based assignments."""
    frames = []
    with plt.rc_context(STYLE):  # the panels share both scales, so they compare at a glance
        fig, axes = plt.subplots(1, 2, figsize=(9.2, 3.8), sharex=True, sharey=True)
    for ax, kind in zip(axes, ASSIGNMENTS[1:], strict=True):
        stats, _ = _deadline_sweep(PAPER / f"approximate_{kind}.yaml", budget, out)
        stats["assignment"] = kind
        frames.append(stats)
        for i, (scheme, group) in enumerate(stats.groupby("scheme", sort=False)):
            ax.plot(
                group.deadline,
                np.maximum(group.mse, ROUND_OFF),
                marker="os"[i],
                ls="-:"[i],
                color=f"C{i}",
                label=scheme,
            )
        ax.set_yscale("log")
        ax.set_title(f"{kind}, partial_gc ell = 2")
        ax.set_xlabel("deadline T (time units)")
    # Shared scale, floored at round-off (1e-20: exact), no lower than the data needs.
    lowest = min(float(np.maximum(f.mse, ROUND_OFF).min()) for f in frames)
    axes[0].set_ylim(max(ROUND_OFF / 3, lowest / 10), 3)
    axes[0].set_ylabel("MSE (mean rel_error)")
    axes[0].legend(fontsize=8)
    return pd.concat(frames, ignore_index=True), save(fig, out / "figures" / "paper_ordering_mse")


def instability_experiment(budget: Budget, out: Path) -> tuple[dict, pd.DataFrame, list[Path]]:
    """Interpolation error against working precision (mpmath), and original_gc's polynomial
    decoder in double precision against m."""
    precision = precision_sweep(digits=budget.mp_digits, trials=budget.mp_trials)
    report = run_sweep(
        PAPER / "polynomial_double.yaml",
        ["cluster.workers=8,16,24,32"],
        overrides=[f"trials={budget.poly_trials}"],
        jobs=budget.jobs,
        out=out / "data" / "polynomial_double",
    )
    double = _stats(report.summary, ["point", "cluster.workers", "scheme"])
    double = _with_parameters(double, report.schemes, ["point", "scheme"])
    double = double.drop(columns=["point", "ell", "ordering", "deadline", "family"])
    double = double.rename(columns={"cluster.workers": "workers"})
    fig, (left, right) = figure(ncols=2, width=4.6, height=3.8)
    for i, (degree, by_digits) in enumerate(precision.items()):
        left.plot(
            list(by_digits),
            list(by_digits.values()),
            marker="o",
            color=f"C{i}",
            label=f"degree {degree}",
        )
    left.set_yscale("log")
    left.set_xlabel("working precision (decimal digits)")
    left.set_ylabel("relative squared error of coefficients")
    left.set_title("Vandermonde interpolation, Chebyshev points")
    left.legend(fontsize=8)
    for i, (scheme, group) in enumerate(double.groupby("scheme", sort=False)):
        right.plot(
            group.workers, group.mse.clip(lower=1e-34), marker="os"[i], color=f"C{i}", label=scheme
        )
    right.set_yscale("log")
    right.set_xlabel("workers m (load 4, ell 2)")
    right.set_ylabel("mean rel_error, float64")
    right.set_title("Decoders in double precision")
    right.legend(fontsize=8)
    return precision, double, save(fig, out / "figures" / "paper_instability")


def qmax_table(workers: int = 20, load: int = 4, seed: int = 0) -> pd.DataFrame:
    """Q_max(ell) of natural, random and optimal orders on the three assignments, and the bound."""
    rows = []
    for kind in ASSIGNMENTS:
        held = asg.build_assignment(kind, workers, load, seed)
        orders = {
            "natural": ordr.natural(held),
            "random": ordr.random_order(held, seed),
            "optimal": ordr.optimal(held, workers, 1, seed=seed),
        }
        for ell in range(1, load + 1):
            row = {"assignment": kind, "ell": ell,
                   "bound": ordr.lower_bound(held, workers, ell)}  # fmt: skip
            for name, order in orders.items():
                row[name] = ordr.q_max(order, workers, ell)
            rows.append(row)
    assert all(len(h) == load for h in asg.cyclic(workers, load))
    return pd.DataFrame(rows)


#: Straggler models of the sensitivity figure (per-chunk compute time laws, mean about 2).
MODELS = {
    "shifted exp.\nper worker": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0,
                                  "per": "worker"},
    "shifted exp.\nper chunk": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0,
                                 "per": "chunk"},
    "Pareto(1, 2)\nper worker": {"dist": "pareto", "scale": 1.0, "alpha": 2.0, "per": "worker"},
    "exponential\nper worker": {"dist": "exponential", "rate": 0.5, "per": "worker"},
    "bimodal\nper worker": {"dist": "bimodal", "p_slow": 0.2, "per": "worker",
                             "fast": {"dist": "deterministic", "value": 1.0},
                             "slow": {"dist": "deterministic", "value": 5.0}},
}  # fmt: skip
LATENCIES = (0.0, 0.1, 0.5, 1.0)
WORKERS = (10, 20, 40)
SENSITIVITY_ELLS = (1, 2, 4)


def speedup_interval(original: np.ndarray, partial: np.ndarray, seed: int = 0) -> tuple:
    """mean T_original / mean T_partial over paired trials, with a 95% bootstrap interval
    (trials resampled together: both schemes saw the same realization); and the fraction of
    trials in which partial_gc is slower."""
    ok = np.isfinite(original) & np.isfinite(partial)
    original, partial = original[ok], partial[ok]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, original.size, (400, original.size))
    ratios = original[picks].mean(axis=1) / partial[picks].mean(axis=1)
    low, high = np.quantile(ratios, [0.025, 0.975])
    slower = float(np.mean(partial > original))
    return float(original.mean() / partial.mean()), float(low), float(high), slower


def sensitivity_experiment(budget: Budget, out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Exact speed-up of partial_gc over original_gc (cyclic, load 4, ell 1, 2 and load) across
    straggler models, network latency and the number of workers, one factor at a time from
    the paper's setting (shifted exponential per worker, free network, m = 20)."""
    schemes = [
        {"protocol": protocol, "load": 4, "ell": ell, "label": f"{protocol} ell={ell}"}
        for ell in SENSITIVITY_ELLS
        for protocol in ("original_gc", "partial_gc")
    ]
    base = [f"trials={budget.sensitivity_trials}", "data.gradients=none", "output.events_trials=0",
            "output.decode_cond=false", f"schemes={json.dumps(schemes)}"]  # fmt: skip
    settings = [("straggler model", name, [f"cluster.compute={json.dumps(law)}"])
                for name, law in MODELS.items()]  # fmt: skip
    settings += [
        ("network latency L", f"{lat:g}", [f"cluster.network.latency={lat}"]) for lat in LATENCIES
    ]
    settings += [("workers m", str(m), [f"cluster.workers={m}"]) for m in WORKERS]
    rows = []
    for factor, value, overrides in settings:
        exp = load_config(PAPER / "exact_cyclic.yaml", [*base, *overrides])
        summary = run(exp, jobs=1).summary
        for ell in SENSITIVITY_ELLS:
            times = {
                protocol: summary[summary.scheme == f"{protocol} ell={ell}"]
                .sort_values("trial")
                .completion_time.to_numpy()
                for protocol in ("original_gc", "partial_gc")
            }
            ratio, low, high, slower = speedup_interval(times["original_gc"], times["partial_gc"])
            rows.append({"factor": factor, "value": value, "ell": ell, "speedup": ratio,
                         "low": low, "high": high, "partial_slower": slower})  # fmt: skip
    table = pd.DataFrame(rows)
    factors = list(dict.fromkeys(table.factor))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, len(factors), figsize=(4.0 * len(factors), 3.8), sharey=True,
            width_ratios=[len(table[table.factor == f]) for f in factors],
        )  # fmt: skip
    for ax, factor in zip(axes, factors, strict=True):
        part = table[table.factor == factor]
        values = list(dict.fromkeys(part.value))
        x = np.arange(len(values))
        for i, ell in enumerate(SENSITIVITY_ELLS):
            group = part[part.ell == ell].set_index("value").loc[values]
            spread = np.clip([group.speedup - group.low, group.high - group.speedup], 0, None)
            label = f"ell = {ell}" + (" (= load)" if ell == 4 else "")
            ax.errorbar(x + (i - 1) * 0.2, group.speedup, yerr=spread, fmt="os^"[i],
                        capsize=3, color=f"C{i}", label=label)  # fmt: skip
        ax.axhline(1.0, color="0.3", lw=0.8)
        ax.set_xticks(x, values, fontsize=8)
        ax.set_xlabel(factor)
        ax.set_xlim(-0.5, len(values) - 0.5)
    axes[0].set_ylabel("speed-up T_original / T_partial\n(mean ratio, 95% bootstrap interval)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Where the speed-up holds: one factor at a time from the paper's setting "
                 "(cyclic, load 4; 1 = no gain)", fontsize=9)  # fmt: skip
    return table, save(fig, out / "figures" / "paper_sensitivity")


def run_paper(budget: Budget, out: Path) -> PaperResults:
    results = PaperResults()
    results.exact, results.exact_trials, results.figures["exact"] = exact_experiments(budget, out)
    results.quantiles = exact_quantiles(results.exact_trials, budget.quantiles)
    results.approx, results.approx_trials, results.figures["approx"] = approximate_experiment(
        budget, out, results.quantiles
    )
    results.sensitivity, results.figures["sensitivity"] = sensitivity_experiment(budget, out)
    results.ordering_mse, results.figures["ordering"] = ordering_experiment(budget, out)
    precision, double, files = instability_experiment(budget, out)
    results.precision, results.poly_double, results.figures["instability"] = (
        precision,
        double,
        files,
    )
    results.qmax = qmax_table()
    results.training = training_experiment(budget.training_trials, out)
    results.figures["training"] = results.training.figures
    return results
