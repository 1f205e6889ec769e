"""Fitting the compute-time laws to measured times: ``gcsim fit`` (the network: ``network_fit``).

The simulator is only as good as its compute-time distribution. This module takes what a real
cluster measured (a run directory's chunk durations, or a column of times) and fits every
registered parametric law by maximum likelihood (``scipy.stats``), with each law's parameters
mapped onto the config keys of its module in ``simulator/compute/``, so the block it prints
pastes into a config unchanged. Fits are ranked by AIC (likelihood, penalised per parameter)
and shown with their Kolmogorov-Smirnov distance; standard errors come from a parametric
bootstrap (refits of samples drawn from the fitted law with the simulator's own ``draw``).

A law with no fitter here (a mixture, the empirical law) is listed as such: a distribution
added to the registry without one shows up in ``unfitted()``, and the tests ask for one.

Censoring: in a trace, the chunks in progress when the PS decodes are cut (``interrupt``), and
the slow ones are the likeliest to be cut. Leaving them out biases every fit towards short
times (a shifted exponential's rate came out 2.4 for 2 injected). They are kept as
right-censored times (the chunk took at least this long): each fitter maximizes the censored
likelihood (densities of the completed times, survival functions of the cut ones), the
goodness of fit compares the fitted CDF with the Kaplan-Meier estimate, and the bootstrap
censors its samples at the same instants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .compute.registry import DISTRIBUTIONS, by_name
from .errors import ConfigError

#: Fewest samples a fit is attempted on: below this, the ranking is noise.
MIN_SAMPLES = 10

#: No censored times.
NONE = np.zeros(0)


def _censored_fit(law: Any, data: np.ndarray, censored: np.ndarray) -> tuple:
    """scipy's MLE with the location pinned at 0 (our laws start at 0 unless they say shift),
    on completed times ``data`` and right-censored ones ``censored``."""
    from scipy import stats

    if censored.size == 0:
        return law.fit(data, floc=0)
    return law.fit(stats.CensoredData(uncensored=data, right=censored), floc=0)


def _exponential(data: np.ndarray, censored: np.ndarray = NONE) -> dict[str, float]:
    # Closed form, censored too: completed count over total time observed.
    return {"rate": data.size / float(np.sum(data) + np.sum(censored))}


def _shifted_exponential(data: np.ndarray, censored: np.ndarray = NONE) -> dict[str, float]:
    # The MLE: shift at the smallest completed time, rate = completed count over the total
    # excess observed (a time cut before the shift adds none). A sample whose excess is all
    # zero is constant, refused before any fit.
    shift = float(np.min(data))
    excess = float(np.sum(data - shift) + np.sum(np.maximum(censored - shift, 0.0)))
    return {"shift": shift, "rate": data.size / excess}


def _pareto(data: np.ndarray, censored: np.ndarray = NONE) -> dict[str, float]:
    from scipy import stats

    alpha, _, scale = _censored_fit(stats.pareto, data, censored)
    return {"scale": float(scale), "alpha": float(alpha)}


def _weibull(data: np.ndarray, censored: np.ndarray = NONE) -> dict[str, float]:
    from scipy import stats

    shape, _, scale = _censored_fit(stats.weibull_min, data, censored)
    return {"scale": float(scale), "shape": float(shape)}


def _lognormal(data: np.ndarray, censored: np.ndarray = NONE) -> dict[str, float]:
    from scipy import stats

    if censored.size:
        sigma, _, scale = _censored_fit(stats.lognorm, data, censored)
        return {"mu": float(np.log(scale)), "sigma": float(sigma)}
    logs = np.log(data)  # the closed-form MLE: mean and (biased) sd of the logs
    return {"mu": float(np.mean(logs)), "sigma": float(np.std(logs))}


def _gamma(data: np.ndarray, censored: np.ndarray = NONE) -> dict[str, float]:
    from scipy import stats

    shape, _, scale = _censored_fit(stats.gamma, data, censored)
    return {"shape": float(shape), "scale": float(scale)}


def _inverse_gaussian(data: np.ndarray, censored: np.ndarray = NONE) -> dict[str, float]:
    from scipy import stats

    if censored.size:  # scipy's invgauss(m, scale=lambda) is IG(mean m * lambda, shape lambda)
        m, _, shape = _censored_fit(stats.invgauss, data, censored)
        return {"mu": float(m * shape), "shape": float(shape)}
    # The closed-form MLE of IG(mu, lambda): mu = mean, 1/lambda = mean(1/x - 1/mu).
    mu = float(np.mean(data))
    return {"mu": mu, "shape": 1.0 / float(np.mean(1.0 / data - 1.0 / mu))}


#: dist name -> maximum-likelihood fit giving that module's config keys, from completed times
#: and (optionally) right-censored ones.
FITTERS: dict[str, Callable[..., dict[str, float]]] = {
    "exponential": _exponential,
    "shifted_exponential": _shifted_exponential,
    "pareto": _pareto,
    "weibull": _weibull,
    "lognormal": _lognormal,
    "gamma": _gamma,
    "inverse_gaussian": _inverse_gaussian,
}

#: Registered laws deliberately not fitted, and what to do instead.
NOT_FITTED: dict[str, str] = {
    "deterministic": "has no spread: constant data are refused with a pointer to it",
    "bimodal": "a mixture: split the data at the gap and fit each mode on its own",
    "empirical": "needs no fit: point it at the data file ({dist: empirical, file: F, column: C})",
}


def unfitted() -> list[str]:
    """Registered distributions that neither have a fitter nor a reason not to."""
    names = [d.name() for d in DISTRIBUTIONS]
    return [n for n in names if n not in FITTERS and n not in NOT_FITTED]


@dataclass
class Fit:
    """One law fitted to the data: its config keys, goodness of fit and standard errors."""

    dist: str
    params: dict[str, float]
    loglik: float
    aic: float
    ks: float
    ks_pvalue: float
    stderr: dict[str, float] = field(default_factory=dict)

    def model(self, per: str = "chunk") -> Any:
        """The compute-time model (``simulator.compute``) with the fitted parameters."""
        return by_name(self.dist).model_validate({"dist": self.dist, **self.params, "per": per})

    def block(self, per: str = "chunk") -> str:
        """The one-line YAML ``compute:`` block (flow style), loadable by the config."""
        values = ", ".join(f"{k}: {format_number(v)}" for k, v in self.params.items())
        return f"compute: {{dist: {self.dist}, {values}, per: {per}}}"


def format_number(value: float) -> str:
    """Seven significant digits: enough to reproduce the fit, short enough to read."""
    return f"{value:.7g}"


def check_times(values: np.ndarray, what: str) -> np.ndarray:
    """The samples as float64, or ConfigError naming what cannot be fitted and the fix."""
    data = np.asarray(values, dtype=float).ravel()
    problems = []
    if data.size < MIN_SAMPLES:
        problems.append((what, f"{data.size} samples; a fit needs at least {MIN_SAMPLES} "
                         "(measure more chunks or trials)"))  # fmt: skip
    elif not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        problems.append((what, f"{bad} values are not finite (NaN or inf); drop them first"))
    elif (data <= 0).any():
        bad = int((data <= 0).sum())
        problems.append((what, f"{bad} values are <= 0; compute times must be positive "
                         "(check the column and its units)"))  # fmt: skip
    elif np.ptp(data) <= 1e-12 * abs(float(data[0])):
        problems.append((what, f"all {data.size} values equal {format_number(float(data[0]))}: no "
                         "continuous law fits constant data; use compute: {dist: "
                         f"deterministic, value: {format_number(float(data[0]))}}}"))  # fmt: skip
    if problems:
        raise ConfigError(problems)
    return data


def fit_one(dist: str, data: np.ndarray, censored: np.ndarray = NONE) -> Fit:
    """Fit one law by maximum likelihood; goodness of fit from its own scipy law. With
    censored times the likelihood has their survival terms, and the KS distance is to the
    Kaplan-Meier estimate (no p-value: the KS law does not hold under censoring)."""
    from scipy import stats

    params = FITTERS[dist](data, censored)
    law = by_name(dist).model_validate({"dist": dist, **params}).frozen()
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = float(np.sum(law.logpdf(data)) + np.sum(law.logsf(censored)))
    if not math.isfinite(loglik):
        loglik = -math.inf
    if censored.size:
        km = stats.ecdf(stats.CensoredData(uncensored=data, right=censored)).cdf
        at, below = km.quantiles, np.concatenate([[0.0], km.probabilities[:-1]])
        fitted = law.cdf(at)
        ks = float(max(np.max(np.abs(km.probabilities - fitted)), np.max(np.abs(below - fitted))))
        pvalue = math.nan
    else:
        test = stats.kstest(data, law.cdf)
        ks, pvalue = float(test.statistic), float(test.pvalue)
    return Fit(dist, params, loglik, 2 * len(params) - 2 * loglik, ks, pvalue)


def fit_all(
    values: np.ndarray,
    what: str = "TIMES",
    bootstrap: int = 50,
    seed: int = 0,
    censored: np.ndarray = NONE,
) -> list[Fit]:
    """Every fittable law, best (lowest AIC) first, on completed times ``values`` and
    right-censored ``censored`` ones. ``bootstrap`` refits per law give the standard errors
    (0: none). A law whose fit fails numerically is left out."""
    data = check_times(values, what)
    censored = np.asarray(censored, dtype=float).ravel()
    censored = censored[np.isfinite(censored) & (censored > 0)]  # a cut at 0 says nothing
    fits = []
    for dist in FITTERS:
        try:
            fit = fit_one(dist, data, censored)
        except (ValueError, FloatingPointError, RuntimeError, ArithmeticError):
            continue
        if bootstrap:
            fit.stderr = standard_errors(fit, data.size, bootstrap, seed, censored)
        fits.append(fit)
    return sorted(fits, key=lambda f: (f.aic, f.ks))


def standard_errors(
    fit: Fit, n: int, reps: int, seed: int = 0, censored: np.ndarray = NONE
) -> dict[str, float]:
    """Parametric bootstrap: the spread of refits of ``reps`` samples drawn from the fitted
    law by the simulator's own ``draw``: ``n`` completed times, plus one draw per censored time
    that is cut at that time if it is longer (so a sample is censored as the data were)."""
    rng = np.random.default_rng([seed, n])
    model = fit.model()
    refits: dict[str, list[float]] = {k: [] for k in fit.params}
    for _ in range(reps):
        sample = model.draw(rng, (n,))
        cut = NONE
        if censored.size:
            extra = model.draw(rng, (censored.size,))
            longer = extra > censored
            sample, cut = np.concatenate([sample, extra[~longer]]), censored[longer]
        try:
            again = FITTERS[fit.dist](sample, cut)
        except (ValueError, FloatingPointError, RuntimeError, ArithmeticError):
            continue
        for key, value in again.items():
            refits[key].append(value)
    return {k: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan for k, v in refits.items()}


# -- reading measured times -----------------------------------------------------------------


def _worker_keys(events: pd.DataFrame) -> list[str]:
    """One worker's trace within one trial (and iteration: each iteration's clock restarts)."""
    return [k for k in ("scheme", "trial", "iteration", "worker") if k in events.columns]


def is_events(frame: pd.DataFrame) -> bool:
    return {"kind", "time", "worker", "chunk", "trial", "scheme"} <= set(frame.columns)


def read_table(path: Path) -> pd.DataFrame:
    """A parquet or CSV file (by its suffix; parquet first when it is unclear)."""
    path = Path(path)
    if path.is_dir():
        path = path / "events.parquet"
    if not path.is_file():
        raise ConfigError([("TIMES", f"{path} does not exist; give a run directory, its "
                            "events.parquet, or a CSV/parquet file of times")])  # fmt: skip
    try:
        if path.suffix.lower() in (".csv", ".txt"):
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise ConfigError([("TIMES", f"cannot read {path} ({type(exc).__name__}); give a "
                            "parquet or CSV file")]) from None  # fmt: skip


#: Trace events that end a chunk before it is done: the time so far is a lower bound.
CUTS = ("interrupt", "crash")


def chunk_durations(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """Each completed chunk's duration (``chunk_done`` minus its ``chunk_start``), each cut
    chunk's time so far (``interrupt`` at the decode, or ``crash``, minus its start: censored),
    and ``per``: 'worker' when every worker's completed chunks within a trial took the same
    time, else 'chunk'."""
    rows = events[events["kind"].isin(["chunk_start", "chunk_done", *CUTS])]
    keys = _worker_keys(rows)
    rows = rows.sort_values([*keys, "time"], kind="stable")
    durations, censored, constant = [], [], True
    for _, group in rows.groupby(keys, sort=False):
        started: dict[int, float] = {}
        mine = []
        for kind, chunk, time in zip(group["kind"], group["chunk"], group["time"], strict=True):
            if kind == "chunk_start":
                started[int(chunk)] = float(time)
            elif int(chunk) in started:
                took = float(time) - started.pop(int(chunk))
                if kind == "chunk_done":
                    mine.append(took)
                elif took > 0:  # cut the instant it started: says nothing
                    censored.append(took)
        if len(mine) > 1 and np.ptp(mine) > 1e-9 * max(mine):
            constant = False
        durations.extend(mine)
    per = "worker" if constant and durations else "chunk"
    return np.asarray(durations, dtype=float), np.asarray(censored, dtype=float), per


def default_out(times: Path) -> Path:
    """Where a fit's report goes: inside the run directory it came from (``fit/``, beside
    ``compare/``), else ``results/fit/<file name>``."""
    times = Path(times)
    run = times if times.is_dir() else times.parent
    if times.is_dir() or times.name == "events.parquet":
        if (run / "manifest.json").is_file():
            return run / "fit"
    return Path("results") / "fit" / times.stem


def measured_times(path: Path, column: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """The times to fit from ``path``, the censored ones, and the ``per`` they suggest: a column
    of a table (nothing censored), or the chunk durations of an events table (a run
    directory's events.parquet)."""
    frame = read_table(path)
    if column is not None:
        if column not in frame.columns:
            shown = ", ".join(map(str, frame.columns[:12]))
            raise ConfigError([("--column", f"{column!r} is not a column of {path} (it has: "
                                f"{shown})")])  # fmt: skip
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
        return values, NONE, "chunk"
    if is_events(frame):
        return chunk_durations(frame)
    if len(frame.columns) == 1:
        return pd.to_numeric(frame.iloc[:, 0], errors="coerce").to_numpy(float), NONE, "chunk"
    raise ConfigError([("--column", f"{path} has {len(frame.columns)} columns and no event "
                        "trace; name the column of times with --column")])  # fmt: skip


# -- the figure -------------------------------------------------------------------------------


def plot_fits(
    data: np.ndarray, fits: list[Fit], out: Path, shown: int = 4, censored: np.ndarray = NONE
) -> Path:
    """Histogram with the fitted densities, and the ECDF (Kaplan-Meier with censored times)
    with the fitted CDFs (best ``shown``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    data = np.sort(data)
    grid = np.linspace(0, float(np.quantile(data, 0.995)) * 1.1, 400)[1:]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    done = "completed" if censored.size else "measured"
    shown_range = (0.0, float(grid[-1]))  # the bulk: a few stalls would make one wide bin
    left.hist(data, bins=min(60, max(10, data.size // 20)), range=shown_range, density=True,
              color="0.8", label=f"{done} (n={data.size})")  # fmt: skip
    if censored.size:
        km = stats.ecdf(stats.CensoredData(uncensored=data, right=censored)).cdf
        right.step(km.quantiles, km.probabilities, where="post", color="k", lw=1.5,
                   label=f"Kaplan-Meier ({censored.size} cut by the decode)")  # fmt: skip
        left.set_title(
            "completed chunks (biased short: the cut ones are only in the fit)", fontsize=10
        )
        right.set_title("Kaplan-Meier estimate (with the cut chunks) and fitted CDFs", fontsize=10)
    else:
        right.step(data, np.arange(1, data.size + 1) / data.size, where="post", color="k",
                   lw=1.5, label="measured ECDF")  # fmt: skip
    for fit in fits[:shown]:
        law = fit.model().frozen()
        name = f"{fit.dist} (KS {fit.ks:.3f})"
        with np.errstate(divide="ignore", invalid="ignore"):
            left.plot(grid, law.pdf(grid), lw=1.3, label=name)
        right.plot(grid, law.cdf(grid), lw=1.3, label=name)
    left.set(xlabel="chunk time (time units)", ylabel="density")
    if not censored.size:
        left.set_title("histogram and fitted densities")
        right.set_title("ECDF and fitted CDFs")
    right.set(xlabel="chunk time (time units)", ylabel="P(time <= x)", xlim=(grid[0], grid[-1]))
    left.set_xlim(grid[0], grid[-1])
    for axis in (left, right):  # times of a few microseconds or of hours: powers of ten
        axis.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    left.legend(fontsize=8)
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# -- the report -------------------------------------------------------------------------------


def fits_frame(fits: list[Fit]) -> pd.DataFrame:
    rows = []
    for rank, fit in enumerate(fits, 1):
        params = ", ".join(
            f"{k}={format_number(v)} ± {fit.stderr[k]:.2g}"
            if k in fit.stderr
            else f"{k}={format_number(v)}"
            for k, v in fit.params.items()
        )
        rows.append({"rank": rank, "dist": fit.dist, "parameters": params, "aic": fit.aic,
                     "ks": fit.ks, "ks_pvalue": fit.ks_pvalue})  # fmt: skip
    return pd.DataFrame(rows)


def fits_table(fits: list[Fit], data: np.ndarray, censored: np.ndarray = NONE) -> Any:
    """The ranking as a rich table (the CLI prints it)."""
    from rich.table import Table

    cut = (
        f" + {censored.size} cut by the decode (censored; KS to Kaplan-Meier)"
        if censored.size
        else ""
    )
    table = Table(title=f"{np.asarray(data).size} times{cut}, best (lowest AIC) first; "
                  "± is a bootstrap standard error")  # fmt: skip
    for name in ("rank", "dist", "parameters", "AIC", "KS", "KS p"):
        table.add_column(name, justify="left" if name in ("dist", "parameters") else "right")
    for row in fits_frame(fits).itertuples():
        pvalue = "n/a" if math.isnan(row.ks_pvalue) else f"{row.ks_pvalue:.3g}"
        table.add_row(str(row.rank), row.dist, row.parameters, f"{row.aic:.1f}", f"{row.ks:.4f}",
                      pvalue)  # fmt: skip
    return table


def write_report(fits: list[Fit], data: np.ndarray, out: Path, censored: np.ndarray = NONE) -> None:
    """fits.csv (the ranking) and fit.png (the figure) under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fits_frame(fits).to_csv(out / "fits.csv", index=False)
    plot_fits(np.asarray(data, dtype=float), fits, out / "fit.png", censored=censored)
