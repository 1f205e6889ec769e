"""Shared by the reproduction experiments: where configs live, how figures look and are saved."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402

#: The repository's experiments/ folder (configs of the paper and validation figures).
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

#: Okabe-Ito, a colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
STYLE = {
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 10,
    "pdf.fonttype": 42,
}


def figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=True)
    return fig, axes


def save(fig, stem: Path) -> list[Path]:
    """Save as PNG and PDF; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    with plt.rc_context(STYLE):
        fig.tight_layout()
        for path in paths:
            fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths
