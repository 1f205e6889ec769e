"""``gcsim compare SIM_RUN REAL_RUN``: the simulator's predictions against a real run, trial by
trial.

Both run directories come from the same config and seed, so trial t of either ran on the same
drawn compute times, fail-stops and crashes (common random numbers): the difference between
their completion times is what the simulator does not model (message overheads, scheduling,
the decode itself). Per scheme: the median and 95th percentile of the relative error
|measured - predicted| / predicted, whether the decodes agree, how often the message and float
counts are equal, and the measured per-message delay (received minus sent, in the config's
time units) that ``gcsim fit`` turns into ``network.latency``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .errors import ConfigError
from .network_fit import message_overheads
from .replace import COMPARE_FILES
from .runner import read_summary

#: Columns compared for equality (communication).
COUNTS = ("messages", "upload_floats", "download_floats", "control_messages")


def _run(path: Path, what: str) -> tuple[pd.DataFrame, dict, dict]:
    """A run directory's summary, resolved config and manifest (ConfigError if it is not one)."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
        summary = read_summary(path / "summary.parquet")
    except (OSError, ValueError) as exc:
        why = f"{path} is not a run directory ({type(exc).__name__}: {exc})"
        raise ConfigError([(what, f"{why}; give the directory gcsim run/emulate wrote")]) from None
    return summary, config, manifest


def _comparable(sim: dict, real: dict) -> list[tuple[str, str]]:
    """The configs must agree (the same draws) but for ``trials`` (an emulation may run
    fewer), ``engine``, ``name``, ``output`` and ``cluster.network``: a simulation calibrated
    with the measured latency (``gcsim fit``) is compared with the run it was calibrated on."""
    skip = ("trials", "engine", "name", "output")
    a = {k: v for k, v in sim.items() if k not in skip}
    b = {k: v for k, v in real.items() if k not in skip}
    for config in (a, b):
        if isinstance(config.get("cluster"), dict):
            config["cluster"] = {k: v for k, v in config["cluster"].items() if k != "network"}
    if a == b:
        return []
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [("REAL_RUN", f"made from another config than SIM_RUN (differs in: {', '.join(keys)})"
             "; simulate the real run's config.yaml (gcsim run REAL_RUN/config.yaml)")]  # fmt: skip


def compare(sim_dir: Path, real_dir: Path) -> dict[str, object]:
    """Per-trial pairs, per-scheme statistics and measured message delays."""
    sim, sim_config, _ = _run(sim_dir, "SIM_RUN")
    real, real_config, manifest = _run(real_dir, "REAL_RUN")
    problems = _comparable(sim_config, real_config)
    if not manifest.get("real"):
        problems.append(("REAL_RUN", f"{real_dir} is a simulation (its manifest is not marked "
                         "real); give the directory gcsim emulate wrote (gcsim compare "
                         "SIM_RUN REAL_RUN: the simulation first)"))  # fmt: skip
    elif manifest.get("time_scale") == 0:
        problems.append(("REAL_RUN", f"{real_dir} was emulated with --time-scale 0: its times "
                         "are the machines' own seconds, not the config's drawn times, so no "
                         "trial has a prediction; emulate with --time-scale > 0 to compare, "
                         "or fit its times (gcsim fit)"))  # fmt: skip
    if problems:
        raise ConfigError(problems)
    keys = [k for k in ("scheme", "trial", "iteration") if k in real and k in sim]
    pairs = real.merge(sim, on=keys, suffixes=("_real", "_sim"), sort=False)
    predicted = pairs["completion_time_sim"].to_numpy(float)
    measured = pairs["completion_time_real"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs["rel_error"] = np.abs(measured - predicted) / predicted
    rows = []
    for scheme, group in pairs.groupby("scheme", sort=False):
        both = group[group["decoded_real"] & group["decoded_sim"]]
        errors = both["rel_error"].to_numpy(float)
        row = {
            "scheme": scheme,
            "trials": len(group),
            "decoded_agree": float((group["decoded_real"] == group["decoded_sim"]).mean()),
            "median_rel_error": float(np.median(errors)) if errors.size else math.nan,
            "p95_rel_error": float(np.quantile(errors, 0.95)) if errors.size else math.nan,
            "mean_bias": float(np.mean(both["completion_time_real"] - both["completion_time_sim"]))
            if len(both) else math.nan,
        }  # fmt: skip
        for column in COUNTS:
            same = group[f"{column}_real"] == group[f"{column}_sim"]
            row[f"{column}_equal"] = float(same.mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    delays = _delays(Path(real_dir))
    return {"pairs": pairs, "table": table, "delays": delays, "manifest": manifest}


def _delays(real_dir: Path) -> pd.DataFrame:
    """Measured delay per message kind: count, median, p95 (config time units)."""
    events_path = real_dir / "events.parquet"
    if not events_path.is_file():
        return pd.DataFrame(columns=["kind", "count", "median", "p95"])
    overheads = message_overheads(pd.read_parquet(events_path))
    rows = []
    for kind, group in overheads.groupby("kind", sort=False):
        values = group["delay"].to_numpy(float)
        if values.size:
            rows.append({"kind": kind, "count": values.size, "median": float(np.median(values)),
                         "p95": float(np.quantile(values, 0.95))})  # fmt: skip
    return pd.DataFrame(rows, columns=["kind", "count", "median", "p95"])


def write_comparison(result: dict[str, object], out: Path) -> list[Path]:
    """pairs.csv, table.csv, delays.csv and the two figures under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result["pairs"].to_csv(out / "pairs.csv", index=False)
    result["table"].to_csv(out / "table.csv", index=False)
    result["delays"].to_csv(out / "delays.csv", index=False)
    written = _figures(result["pairs"], out)
    assert {p.name for p in written} | {"pairs.csv", "table.csv", "delays.csv"} <= COMPARE_FILES
    return written


def _figures(pairs: pd.DataFrame, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schemes = list(dict.fromkeys(pairs["scheme"]))
    fig, ax = plt.subplots(figsize=(6, 5.5))
    finite = pairs[np.isfinite(pairs["completion_time_real"]) & np.isfinite(
        pairs["completion_time_sim"])]  # fmt: skip
    for scheme in schemes:
        part = finite[finite["scheme"] == scheme]
        ax.scatter(part["completion_time_sim"], part["completion_time_real"], s=14, alpha=0.7,
                   label=scheme)  # fmt: skip
    if len(finite):
        lo = float(min(finite["completion_time_sim"].min(), finite["completion_time_real"].min()))
        hi = float(max(finite["completion_time_sim"].max(), finite["completion_time_real"].max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=1, label="measured = predicted")
        ax.plot([lo, hi], [1.1 * lo, 1.1 * hi], color="k", lw=0.8, ls=":", label="±10%")
        ax.plot([lo, hi], [0.9 * lo, 0.9 * hi], color="k", lw=0.8, ls=":")
    ax.set(xlabel="predicted completion time (simulator; time units)",
           ylabel="measured completion time (time units)",
           title="each trial of each scheme")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    scatter = out / "scatter.png"
    fig.savefig(scatter, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9.5, 5))
    for i, scheme in enumerate(schemes):
        part = pairs[pairs["scheme"] == scheme]
        color = f"C{i % 10}"
        for column, style, label in (("completion_time_real", "-", "measured"),
                                     ("completion_time_sim", "--", "predicted")):  # fmt: skip
            values = np.sort(part[column].to_numpy(float))
            values = values[np.isfinite(values)]
            if values.size:  # from 0 at the first value: no trial has decoded before it
                shares = np.arange(values.size + 1) / len(part)
                ax.step(np.concatenate([values[:1], values]), shares, where="post",
                        color=color, ls=style, label=f"{scheme} {label}")  # fmt: skip
    ax.set(xlabel="completion time (time units)", ylabel="fraction of trials decoded by then",
           title="completion time CDF: measured (solid) vs predicted (dashed)")  # fmt: skip
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside, not over
    fig.tight_layout()
    cdf = out / "cdf.png"
    fig.savefig(cdf, dpi=110)
    plt.close(fig)
    return [scatter, cdf]
