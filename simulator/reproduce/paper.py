"""The paper's experiments, reconstructed (configs and assumptions in experiments/paper/).

Each function runs one figure's experiment, saves the figure and returns the numbers the claims
are judged on. Deadline and m sweeps go through ``sweep.run_sweep`` (parallel, resumable: a
rerun of ``gcsim reproduce --out DIR`` reuses finished points). Schemes are grouped by their
parameters (``parameters.scheme_table``, a sweep's ``schemes.parquet``), joined on the scheme
column: a label is only a name to show.
"""

from __future__ import annotations

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
from .common import EXPERIMENTS, figure, save
from .instability import precision_sweep

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

    @staticmethod
    def named(name: str, jobs: int = 2) -> Budget:
        deadlines = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
        if name == "full":
            return Budget(2000, 600, deadlines, 200, 100, (16, 20, 24, 32, 40, 48), jobs)
        if name == "quick":
            return Budget(500, 150, deadlines, 60, 25, (16, 24, 32, 48), jobs)
        if name == "test":
            return Budget(150, 40, (2.0, 4.0, 8.0), 15, 4, (16, 32), jobs)
        raise ValueError(f"unknown budget {name!r}")


@dataclass
class PaperResults:
    exact: pd.DataFrame = field(default_factory=pd.DataFrame)
    approx: pd.DataFrame = field(default_factory=pd.DataFrame)
    ordering_mse: pd.DataFrame = field(default_factory=pd.DataFrame)
    precision: dict = field(default_factory=dict)
    poly_double: pd.DataFrame = field(default_factory=pd.DataFrame)
    qmax: pd.DataFrame = field(default_factory=pd.DataFrame)
    figures: dict[str, list[Path]] = field(default_factory=dict)


#: The scheme families the paper compares, by (protocol, ordering); the partial-straggler
#: protocol with a random order is the ordering experiment's baseline.
FAMILIES = {("original_gc", None): "original", ("partial_gc", "random"): "random order",
            ("partial_gc", None): "partial"}  # fmt: skip


def _family(protocol: str, ordering: str) -> str:
    """A scheme's family from its parameters (the protocol name for any other protocol)."""
    return FAMILIES.get((protocol, ordering), FAMILIES.get((protocol, None), protocol))


def _with_parameters(stats: pd.DataFrame, schemes: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """Per-scheme statistics with the scheme's parameters (ell, ordering, deadline, protocol)
    and family beside them, joined on ``on`` (the scheme, and a sweep's point)."""
    params = schemes[[*on, "protocol", "ell", "ordering", "deadline"]]
    out = stats.merge(params, on=on, how="left", validate="one_to_one")
    out["family"] = [_family(p, o) for p, o in zip(out.protocol, out.ordering, strict=True)]
    return out


def _stats(summary: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    rows = []
    for values, group in summary.groupby(keys, sort=False):
        times = group.completion_time.to_numpy()
        finite = times[np.isfinite(times)]
        rows.append({**dict(zip(keys, values if isinstance(values, tuple) else (values,),
                                strict=True)),
                     "mean": finite.mean() if finite.size else np.nan,
                     "std": finite.std(ddof=1) if finite.size > 1 else np.nan,
                     "decode_rate": finite.size / times.size,
                     "mse": group.rel_error.mean()})  # fmt: skip
    return pd.DataFrame(rows)


def exact_experiments(budget: Budget, out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Mean and std of exact completion time per scheme and ell on the three assignments."""
    frames = []
    for kind in ASSIGNMENTS:
        exp = load_config(PAPER / f"exact_{kind}.yaml", [f"trials={budget.exact_trials}"])
        result = run(exp, jobs=budget.jobs)
        stats = _stats(result.summary, ["scheme"])
        stats["assignment"] = kind
        stats = _with_parameters(stats, scheme_table(exp, result.engines), ["scheme"])
        frames.append(stats.drop(columns=["protocol", "ordering", "deadline"]))
    table = pd.concat(frames, ignore_index=True)
    fig, axes = figure(ncols=3, width=4.2, height=3.6)
    styles = {"partial": ("o", "-"), "original": ("s", "--"), "random order": ("^", ":")}
    for ax, kind in zip(axes, ASSIGNMENTS, strict=True):
        part = table[table.assignment == kind]
        for i, (family, group) in enumerate(part.groupby("family", sort=False)):
            marker, line = styles.get(family, ("d", "-."))
            name = "partial (optimal order)" if family == "partial" and kind != "cyclic" else family
            ax.errorbar(
                group.ell,
                group["mean"],
                yerr=group["std"],
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
    axes[0].set_ylabel("exact completion time (time units)\nmean, error bars = std")
    return table, save(fig, out / "figures" / "paper_exact_vs_ell")


def _deadline_sweep(config: Path, budget: Budget, out: Path) -> pd.DataFrame:
    grid = "schemes.*.deadline=" + ",".join(str(t) for t in budget.deadlines)
    report = run_sweep(
        config,
        [grid],
        overrides=[f"trials={budget.approx_trials}"],
        jobs=budget.jobs,
        out=out / "data" / config.stem,
    )
    stats = _stats(report.summary, ["point", "scheme"])
    stats = _with_parameters(stats, report.schemes, ["point", "scheme"])
    columns = ["deadline", "scheme", "mean", "std", "decode_rate", "mse", "ell", "family"]
    return stats[[*columns, "ordering"]]


def approximate_experiment(budget: Budget, out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """MSE (mean rel_error) against the deadline, partial vs original, ell = 1..3, cyclic."""
    stats = _deadline_sweep(PAPER / "approximate_cyclic.yaml", budget, out)
    fig, ax = figure(width=6.2, height=4.2)
    for i, ell in enumerate(sorted(stats.ell.unique())):
        for family, line, marker in (("partial", "-", "o"), ("original", "--", "s")):
            group = stats[(stats.ell == ell) & (stats.family == family)]
            ax.plot(
                group.deadline,
                group.mse,
                ls=line,
                marker=marker,
                color=f"C{i}",
                label=f"{family}, ell={ell}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("deadline T (time units)")
    ax.set_ylabel("MSE = mean ||g_hat - g||^2 / ||g||^2")
    ax.set_title("Approximate recovery, cyclic assignment (m = 20, load 4)")
    ax.legend(fontsize=7, ncol=2)
    return stats, save(fig, out / "figures" / "paper_mse_vs_deadline")


def ordering_experiment(budget: Budget, out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """MSE against T for the optimal and a random order on the two graph-based assignments."""
    frames = []
    fig, axes = figure(ncols=2, width=4.6, height=3.8)
    for ax, kind in zip(axes, ASSIGNMENTS[1:], strict=True):
        stats = _deadline_sweep(PAPER / f"approximate_{kind}.yaml", budget, out)
        stats["assignment"] = kind
        frames.append(stats)
        for i, (scheme, group) in enumerate(stats.groupby("scheme", sort=False)):
            ax.plot(
                group.deadline, group.mse, marker="os"[i], ls="-:"[i], color=f"C{i}", label=scheme
            )
        ax.set_yscale("log")
        ax.set_title(f"{kind}, partial_gc ell = 2")
        ax.set_xlabel("deadline T (time units)")
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


def run_paper(budget: Budget, out: Path) -> PaperResults:
    results = PaperResults()
    results.exact, results.figures["exact"] = exact_experiments(budget, out)
    results.approx, results.figures["approx"] = approximate_experiment(budget, out)
    results.ordering_mse, results.figures["ordering"] = ordering_experiment(budget, out)
    precision, double, files = instability_experiment(budget, out)
    results.precision, results.poly_double, results.figures["instability"] = (
        precision,
        double,
        files,
    )
    results.qmax = qmax_table()
    return results
