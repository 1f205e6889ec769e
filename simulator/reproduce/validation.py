"""The simulator against theory (experiments/validation/*.yaml vs ``simulator.theory``).

The analytic values come from the generic order-statistic formulas applied to the configured
distribution's own cdf (``compute/``), so a config with another distribution needs no new
formula; tests/test_compute.py checks the generic values against the closed forms.

Every check is a row: the simulated statistic with its standard error, the analytic value, the
z-score, a KS p-value where a whole distribution is compared, and whether it holds (|z| < 4 and
p > 0.001). Figures overlay simulated and analytic CDFs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from .. import theory
from ..config import Experiment, load_config
from ..runner import run
from .common import EXPERIMENTS, figure, save

Z_LIMIT, P_LIMIT = 4.0, 1e-3


@dataclass
class Check:
    name: str
    simulated: float
    stderr: float
    analytic: float
    ks_p: float = float("nan")

    @property
    def z(self) -> float:
        return (self.simulated - self.analytic) / self.stderr if self.stderr > 0 else 0.0

    @property
    def holds(self) -> bool:
        return abs(self.z) < Z_LIMIT and (math.isnan(self.ks_p) or self.ks_p > P_LIMIT)


def _times(exp: Experiment, quick: bool) -> dict[str, np.ndarray]:
    if quick:
        exp = exp.model_copy(update={"trials": min(exp.trials, 4000)})
    summary = run(exp).summary
    return {s: g.completion_time.to_numpy() for s, g in summary.groupby("scheme", sort=False)}


def _mean_check(name, times, analytic, cdf=None) -> Check:
    finite = times[np.isfinite(times)]
    p = stats.kstest(finite, cdf).pvalue if cdf is not None else float("nan")
    return Check(name, finite.mean(), finite.std(ddof=1) / math.sqrt(finite.size), analytic, p)


def shifted_exponential(quick: bool, out: Path) -> tuple[list[Check], list[Path]]:
    exp = load_config(EXPERIMENTS / "validation" / "shifted_exponential.yaml")
    m, law = exp.cluster.workers, exp.cluster.compute.sampler(exp.source_dir)
    times = _times(exp, quick)
    load_o, load_f = exp.schemes[1].load, exp.schemes[2].load
    k = m - (load_o - 1)
    cdfs = {
        "uncoded": lambda x: theory.order_cdf(law, x, m, m),
        "original_gc": lambda x: theory.order_cdf(law, np.asarray(x) / load_o, m, k),
        "frc": lambda x: theory.frc_group_cdf(law, x, m, load_f),
    }
    checks = [
        _mean_check(f"uncoded mean, m={m}: shift + H_m/rate", times["uncoded"],
                    theory.order_mean(law, m, m), cdfs["uncoded"]),
        _mean_check(f"original_gc mean, m={m}, L={load_o}: L(shift + (H_m - H_s)/rate)",
                    times["original_gc"], load_o * theory.order_mean(law, m, k),
                    cdfs["original_gc"]),
        _mean_check(f"frc mean, m={m}, L={load_f}: L(shift + H_g/(L rate))", times["frc"],
                    theory.frc_group_mean(law, m, load_f), cdfs["frc"]),
    ]  # fmt: skip
    return checks, _cdf_figure(
        times, cdfs, "shift + Exp(rate) per worker", out / "validation_cdf_exp"
    )


def pareto(quick: bool, out: Path) -> tuple[list[Check], list[Path]]:
    exp = load_config(EXPERIMENTS / "validation" / "pareto.yaml")
    m, dist = exp.cluster.workers, exp.cluster.compute
    law = dist.sampler(exp.source_dir)
    times = _times(exp, quick)
    load = exp.schemes[1].load
    k = m - (load - 1)
    cdfs = {
        "uncoded": lambda x: theory.order_cdf(law, x, m, m),
        "original_gc": lambda x: theory.order_cdf(law, np.asarray(x) / load, m, k),
    }
    checks = [
        _mean_check(f"Pareto(alpha={dist.alpha}) max of {m}", times["uncoded"],
                    theory.order_mean(law, m, m), cdfs["uncoded"]),
        _mean_check(f"Pareto original_gc: L x {k}-th of {m}", times["original_gc"],
                    load * theory.order_mean(law, m, k), cdfs["original_gc"]),
    ]  # fmt: skip
    return checks, _cdf_figure(
        times, cdfs, f"Pareto(alpha={dist.alpha})", out / "validation_cdf_pareto"
    )


def fail_stop(quick: bool) -> list[Check]:
    exp = load_config(EXPERIMENTS / "validation" / "fail_stop.yaml")
    m, p = exp.cluster.workers, exp.cluster.failures.prob
    times = _times(exp, quick)
    load = exp.schemes[0].load
    analytic = {
        "original_gc": theory.original_gc_decodable(m, load - 1, p),
        "frc": theory.frc_decodable(m, exp.schemes[1].load, p),
        "uncoded": (1 - p) ** m,
    }
    checks = []
    for scheme, value in analytic.items():
        decoded = np.isfinite(times[scheme])
        rate = decoded.mean()
        stderr = math.sqrt(value * (1 - value) / decoded.size)
        checks.append(Check(f"P(decodable) {scheme}, p={p}", rate, stderr, value))
    return checks


def _cdf_figure(times, cdfs, title, stem: Path) -> list[Path]:
    fig, ax = figure()
    for i, (scheme, cdf) in enumerate(cdfs.items()):
        data = np.sort(times[scheme][np.isfinite(times[scheme])])
        grid = np.linspace(data[0], np.quantile(data, 0.995), 300)
        ax.plot(grid, cdf(grid), color=f"C{i}", lw=2.5, alpha=0.45, label=f"{scheme} (analytic)")
        ax.step(
            data,
            np.arange(1, data.size + 1) / data.size,
            where="post",
            color=f"C{i}",
            lw=1.0,
            ls="--",
            label=f"{scheme} (simulated)",
        )
    ax.set_xlabel("completion time (time units)")
    ax.set_ylabel("P(T <= t)")
    ax.set_title(f"Simulated vs analytic CDF: {title}")
    ax.legend(fontsize=8)
    return save(fig, stem)


def run_validation(out: Path, quick: bool) -> tuple[list[Check], list[Path]]:
    checks, figures = [], []
    for experiment in (shifted_exponential, pareto):
        rows, files = experiment(quick, out)
        checks += rows
        figures += files
    checks += fail_stop(quick)
    return checks, figures
