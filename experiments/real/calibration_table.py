"""The emulate -> compare -> fit -> simulate-again loop on real runs, as one markdown table.

    python experiments/real/calibration_table.py REAL_RUN [REAL_RUN ...]

For each real run directory (written by ``gcsim emulate``): simulate its config as it is
(uncalibrated: the config's network), fit the network to its trace (``network_fit``: latency,
time per float and the PS's per-message overhead), simulate again with the fitted network, and
compare both simulations with the real run trial by trial (``compare``). Prints one table row
per scheme: median / p95 relative error of the completion time, uncalibrated, calibrated, and
held out (the network fitted on the first half of the trials only, the errors of the second
half: a prediction, not a fit), and the share of trials whose upload count equals the
simulator's (uncalibrated / calibrated); then the fitted network. The simulations go to
REAL_RUN-calibration/ beside it.
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


def _errors(pairs: pd.DataFrame, trials=None) -> pd.DataFrame:
    """Per scheme: median and p95 relative error over the trials both decoded (of ``trials``),
    and the share of trials whose upload count equals the simulator's."""
    if trials is not None:
        pairs = pairs[pairs["trial"].isin(trials)]
    rows = []
    for scheme, group in pairs.groupby("scheme", sort=False):
        both = group[group["decoded_real"] & group["decoded_sim"]]["rel_error"]
        equal = (group["messages_real"] == group["messages_sim"]).mean()
        rows.append({"scheme": scheme, "median": both.median(), "p95": both.quantile(0.95),
                     "equal": equal})  # fmt: skip
    return pd.DataFrame(rows).set_index("scheme")


def rows(real: Path) -> tuple[dict[str, pd.DataFrame], dict[str, float], dict[str, float]]:
    """Per scheme: the errors uncalibrated, calibrated on the whole run, and held out
    (the network fitted on the first half of the trials, the errors of the second half);
    the network fitted on the whole run and its quality."""
    events = pd.read_parquet(real / "events.parquet")
    network, quality = fit_network(events)
    trials = sorted(set(events["trial"]))
    first, second = trials[: len(trials) // 2], trials[len(trials) // 2 :]
    half, _ = fit_network(events[events["trial"].isin(first)])

    def pairs(net: dict[str, float] | None, name: str) -> pd.DataFrame:
        out = real.parent / f"{real.name}-calibration" / name  # beside it: the run stays whole
        return compare(_simulate(real, net, out), real)["pairs"]

    tables = {
        "uncalibrated": _errors(pairs(None, "uncalibrated")),
        "calibrated": _errors(pairs(network, "calibrated")),
        "held out": _errors(pairs(half, "held_out"), second),
    }
    return tables, network, quality


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x < 1 else f"{100 * x:.0f}%"


def main(paths: list[str]) -> None:
    for path in paths:
        real = Path(path)
        tables, network, quality = rows(real)
        print(f"\n{real}:\n")
        print("| scheme | " + " | ".join(f"{name} median / p95" for name in tables)
              + " | msgs equal (uncal. / cal.) |")  # fmt: skip
        print("|---|" + "---|" * (len(tables) + 1))
        # msgs equal: the share of trials whose upload count equals the simulator's,
        # uncalibrated / calibrated
        plain, fitted = tables["uncalibrated"], tables["calibrated"]
        for scheme in plain.index:
            cells = [f"{_pct(t.at[scheme, 'median'])} / {_pct(t.at[scheme, 'p95'])}"
                     for t in tables.values()]  # fmt: skip
            equal = f"{_pct(plain.at[scheme, 'equal'])} / {_pct(fitted.at[scheme, 'equal'])}"
            print(f"| {scheme} | {' | '.join(cells)} | {equal} |")
        print(
            f"\nfitted {network_block(network)}; arrival instants within "
            f"{quality['queue']:.3g} (median), {quality['delays']:.3g} by delays alone"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or sys.exit(__doc__))
