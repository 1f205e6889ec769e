"""The emulate -> compare -> fit -> simulate-again loop on real runs, as one markdown table.

    python experiments/real/calibration_table.py REAL_RUN [REAL_RUN ...]

For each real run directory (written by ``gcsim emulate``): simulate its config as it is
(uncalibrated: the config's network), fit the network to its trace (``network_fit``: latency,
time per float and the PS's per-message overhead), simulate again with the fitted network, and
compare both simulations with the real run trial by trial (``compare``). Prints one table row
per scheme: median / p95 relative error of the completion time, uncalibrated and calibrated,
and the share of trials whose upload count equals the simulator's (both ways); then the
fitted network.
The simulations go to REAL_RUN/calibration/ (uncalibrated, calibrated).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from simulator.compare import compare
from simulator.config import load_config
from simulator.network_fit import fit_network, network_block
from simulator.results import write_run
from simulator.runner import run


def _simulate(real: Path, network: dict[str, float] | None, out: Path) -> Path:
    overrides = []
    if network is not None:
        inner = ", ".join(f"{k}: {v!r}" for k, v in network.items())
        overrides = [f"cluster.network={{{inner}}}"]
    exp = load_config(real / "config.yaml", overrides)
    return write_run(run(exp), out, argv=["calibration_table.py", str(real)], force=True)


def rows(real: Path) -> tuple[pd.DataFrame, dict[str, float], dict[str, float]]:
    """Per scheme: uncalibrated and calibrated errors; the fitted network and its quality."""
    network, quality = fit_network(pd.read_parquet(real / "events.parquet"))
    plain = compare(_simulate(real, None, real / "calibration" / "uncalibrated"), real)["table"]
    fitted = compare(_simulate(real, network, real / "calibration" / "calibrated"), real)["table"]
    table = plain[["scheme", "median_rel_error", "p95_rel_error", "messages_equal"]].merge(
        fitted[["scheme", "median_rel_error", "p95_rel_error", "messages_equal"]], on="scheme",
        suffixes=("", "_calibrated"))  # fmt: skip
    return table, network, quality


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x < 1 else f"{100 * x:.0f}%"


def main(paths: list[str]) -> None:
    for path in paths:
        real = Path(path)
        table, network, quality = rows(real)
        print(f"\n{real}:\n")
        print("| scheme | uncalibrated median / p95 | calibrated median / p95 | msgs equal |")
        print("|---|---|---|---|")
        # msgs equal: the share of trials whose upload count equals the simulator's,
        # uncalibrated / calibrated
        for r in table.itertuples():
            plain = f"{_pct(r.median_rel_error)} / {_pct(r.p95_rel_error)}"
            fitted = f"{_pct(r.median_rel_error_calibrated)} / {_pct(r.p95_rel_error_calibrated)}"
            equal = f"{_pct(r.messages_equal)} / {_pct(r.messages_equal_calibrated)}"
            print(f"| {r.scheme} | {plain} | {fitted} | {equal} |")
        print(
            f"\nfitted {network_block(network)}; arrival instants within "
            f"{quality['queue']:.3g} (median), {quality['delays']:.3g} by delays alone"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or sys.exit(__doc__))
