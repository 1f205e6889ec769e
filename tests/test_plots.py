"""Figures from real run directories and a sweep directory built from real runs.

Every test turns warnings into errors: a figure that renders with a warning (an empty legend, a
log axis with nothing positive, a collapsed layout, a NaN mean) fails here.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml

from simulator import plots
from simulator.config import load_config
from simulator.parameters import read_schemes
from simulator.results import write_parquet, write_run
from simulator.runner import run

pytestmark = pytest.mark.filterwarnings("error")

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"

SWEEP_CONFIG = {
    "name": "plot_sweep",
    "seed": 11,
    "trials": 40,
    "cluster": {
        "workers": 8,
        "compute": {"dist": "shifted_exponential", "shift": 1.0, "rate": 1.0, "per": "worker"},
        "failures": {"prob": 0.05, "crash_rate": 0.02, "detect_timeout": 0.5},
        "network": {"latency": 0.01, "time_per_float": 1.0e-4},
    },
    "data": {"dim": 48, "gradients": "gaussian"},
    "output": {"events_trials": 2},
    "schemes": [
        {"protocol": "uncoded"},
        {"protocol": "original_gc", "load": 3, "ell": 1},
        {"protocol": "partial_gc", "load": 3, "ell": 1, "label": "partial"},
        {
            "protocol": "partial_gc",
            "load": 3,
            "ell": 1,
            "mode": "approximate",
            "deadline": 3.0,
            "label": "partial T",
        },
    ],
}


def build_sweep(root: Path, config: Path, grid: dict[str, list]) -> Path:
    """A sweep directory as ``gcsim sweep`` writes it: sweep.json, a combined summary with a
    ``point`` column and one column per grid key, and one real run directory per point of the
    product grid."""
    points, frames = [], []
    for index, values in enumerate(itertools.product(*grid.values())):
        params = dict(zip(grid, values, strict=True))
        result = run(load_config(config, [f"{k}={v}" for k, v in params.items()]))
        point_id = f"p{index:03d}"
        write_run(result, root / "points" / point_id, argv=["test"])
        frames.append(result.summary.assign(point=point_id, **params))
        points.append({"id": point_id, "params": params, "dir": f"points/{point_id}"})
    meta = {"grid": grid, "mode": "product", "points": points}
    (root / "sweep.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    write_parquet(pd.concat(frames, ignore_index=True), root / "summary.parquet")
    return root


RUN_SCHEMES = ["uncoded", "partial ell=1", "original ell=2 T=8", "partial ell=2 T=8"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all_schemes (crashes, fail-stop, interrupts), 60 trials, 5 traced, with four of its
    schemes and one more: partial ell=2 at a second deadline, so the error-vs-deadline figure
    has a curve."""
    root = tmp_path_factory.mktemp("plots")
    data = yaml.safe_load((ROOT / "configs" / "all_schemes.yaml").read_text(encoding="utf-8"))
    schemes = [s for s in data["schemes"] if s.get("label", s["protocol"]) in RUN_SCHEMES]
    extra = dict(schemes[-1], deadline=5.0, label="partial ell=2 T=5")
    data["schemes"] = [*schemes[:-1], extra, schemes[-1]]
    config = root / "all_schemes.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return write_run(run(load_config(config, ["trials=60"])), root / "run", argv=["test"])


@pytest.fixture(scope="module")
def run_figures(run_dir: Path) -> dict:
    """Every figure of the run through plot_any (default out dir), and the global state of
    matplotlib before and after."""
    import matplotlib.pyplot as plt

    before = (plt.get_fignums(), dict(matplotlib.rcParams))
    paths = plots.plot_any(run_dir)
    after = (plt.get_fignums(), dict(matplotlib.rcParams))
    return {"paths": paths, "before": before, "after": after}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    config = root / "sweep.yaml"
    config.write_text(yaml.safe_dump(SWEEP_CONFIG, sort_keys=False), encoding="utf-8")
    grid = {"cluster.workers": [8, 12], "schemes.3.deadline": [2.0, 4.0]}
    return build_sweep(root / "out", config, grid)


def assert_figures(paths: list[Path], stems: set[str]) -> None:
    """Each stem written once as a PNG and once as a PDF, real files of those formats."""
    names = sorted(p.name for p in paths)
    assert len(names) == len(set(names)), names
    assert {p.stem for p in paths} == stems
    for stem in stems:
        assert {p.suffix for p in paths if p.stem == stem} == {".png", ".pdf"}
    for path in paths:
        assert path.is_file() and path.stat().st_size > 2000, path
        magic = PNG_MAGIC if path.suffix == ".png" else PDF_MAGIC
        assert path.read_bytes()[: len(magic)] == magic, path


def png_size(path: Path) -> tuple[int, int]:
    """Pixel width and height from the PNG header (IHDR)."""
    data = path.read_bytes()[16:24]
    return int.from_bytes(data[:4], "big"), int.from_bytes(data[4:], "big")


def test_plot_run_writes_every_figure(run_dir: Path, run_figures: dict) -> None:
    paths = run_figures["paths"]
    labels = [*RUN_SCHEMES[:-1], "partial ell=2 T=5", RUN_SCHEMES[-1]]
    assert_figures(
        paths,
        {"completion_cdf", "communication_vs_time", "mse_vs_deadline"}
        | {f"timeline_trial0_{plots.slug(label)}" for label in labels},
    )
    assert all(p.parent == run_dir / "figures" for p in paths)
    # 200 dpi: the 7 x 4 inch CDF is 1400 x 800 pixels (constrained layout keeps the size).
    assert png_size(run_dir / "figures" / "completion_cdf.png") == (1400, 800)
    # No global state touched: no pyplot figure left open, rcParams as they were.
    assert run_figures["after"][0] == run_figures["before"][0]
    assert run_figures["after"][1] == run_figures["before"][1]


def test_plot_run_to_another_directory(run_dir: Path, tmp_path: Path) -> None:
    paths = plots.plot_run(run_dir, tmp_path / "figs", timeline_schemes=[])
    assert_figures(paths, {"completion_cdf", "communication_vs_time", "mse_vs_deadline"})
    assert all(p.parent == tmp_path / "figs" for p in paths)


def test_error_vs_deadline_groups_a_scheme_over_its_deadlines(run_dir: Path) -> None:
    summary = pd.read_parquet(run_dir / "summary.parquet")
    rows = plots._approximate_rows(summary, read_schemes(run_dir), {})
    deadlines = rows.groupby("series")["deadline"].agg(lambda d: sorted(set(d)))
    assert deadlines.to_dict() == {"original_gc": [8.0], "partial_gc": [5.0, 8.0]}
    assert len(rows) == 3 * 60


def test_timeline_of_a_trial_with_down_worker_and_crashes(run_dir: Path, tmp_path: Path) -> None:
    events = pd.read_parquet(run_dir / "events.parquet")
    kinds = events.groupby("trial")["kind"].agg(set)
    trial = next(t for t, k in kinds.items() if {"down", "crash", "interrupt"} <= k)
    scheme = events.loc[(events["trial"] == trial) & (events["kind"] == "crash"), "scheme"].iloc[0]
    paths = plots.plot_timeline(run_dir, trial=trial, scheme=scheme, out_dir=tmp_path)
    assert_figures(paths, {f"timeline_trial{trial}_{plots.slug(scheme)}"})
    # Default scheme: the first in config order; default trial 0.
    default = plots.plot_timeline(run_dir, out_dir=tmp_path / "default")
    assert [p.name for p in default] == [
        "timeline_trial0_uncoded.png",
        "timeline_trial0_uncoded.pdf",
    ]


def test_timeline_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not traced.*output.events_trials"):
        plots.plot_timeline(run_dir, trial=50, out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown scheme 'nope'.*'partial ell=1'"):
        plots.plot_timeline(run_dir, scheme="nope", out_dir=tmp_path)
    assert not tmp_path.joinpath("timeline_trial50_uncoded.png").exists()


def test_plot_sweep_writes_every_figure(sweep_dir: Path, tmp_path: Path) -> None:
    paths = plots.plot_any(sweep_dir, tmp_path / "figs")
    assert_figures(
        paths,
        {
            "sweep_time_vs_cluster-workers",
            "sweep_time_vs_schemes-3-deadline",
            "sweep_communication_vs_time",
            "sweep_mse_vs_deadline",
            "sweep_completion_cdf",
        },
    )
    # Two panels (one per value of the other key) in the time-vs-key figure: wider than tall.
    width, height = png_size(tmp_path / "figs" / "sweep_time_vs_cluster-workers.png")
    assert width > height


def test_plot_sweep_with_categorical_key_and_no_approximate_scheme(
    sweep_dir: Path, tmp_path: Path
) -> None:
    """A sweep over a non-numeric key, without approximate schemes: categorical x, no MSE."""
    root = tmp_path / "cat"
    root.mkdir()
    summary = pd.read_parquet(sweep_dir / "summary.parquet")
    summary = summary[(summary["schemes.3.deadline"] == 2.0) & (summary["scheme"] != "partial T")]
    summary = summary.drop(columns=["schemes.3.deadline"])
    summary["cluster.compute.per"] = np.where(summary["cluster.workers"] == 8, "worker", "chunk")
    # No point column: rows are matched to points by their grid-key column.
    summary = summary.drop(columns=["cluster.workers", "point"])
    points = [
        {"id": "a", "params": {"cluster.compute.per": "worker"}, "dir": "points/a"},
        {"id": "b", "params": {"cluster.compute.per": "chunk"}, "dir": "points/b"},
        # A point that failed: listed, but without rows or a directory.
        {"id": "c", "params": {"cluster.compute.per": "other"}, "dir": "points/c"},
    ]
    meta = {"grid": {"cluster.compute.per": ["worker", "chunk", "other"]}, "mode": "product"}
    (root / "sweep.json").write_text(json.dumps(meta | {"points": points}), encoding="utf-8")
    write_parquet(summary, root / "summary.parquet")
    paths = plots.plot_sweep(root, root / "figures")
    assert_figures(
        paths,
        {
            "sweep_time_vs_cluster-compute-per",
            "sweep_communication_vs_time",
            "sweep_completion_cdf",
        },
    )


def test_time_stats_ignore_undecoded_trials() -> None:
    stats = plots.time_stats([1.0, 3.0, math.inf, 2.0])
    assert (stats.trials, stats.decoded) == (4, 3)
    assert stats.mean == pytest.approx(2.0)
    assert stats.std == pytest.approx(1.0)
    assert stats.ci95 == pytest.approx(4.302652729911275 / math.sqrt(3))  # t(0.975, 2) = 4.3027
    assert stats.decode_rate == pytest.approx(0.75)
    empty = plots.time_stats([math.inf])
    assert empty.decoded == 0 and math.isnan(empty.mean) and empty.decode_rate == 0.0
    single = plots.time_stats([5.0])
    assert single.mean == 5.0 and single.std == 0.0 and math.isnan(single.ci95)


def test_ecdf_plateaus_at_the_decode_rate() -> None:
    xs, ys = plots._ecdf_points(np.array([2.0, math.inf, 1.0, 3.0]), 0.0, 10.0)
    assert list(xs) == [0.0, 1.0, 2.0, 3.0, 10.0]
    assert list(ys) == [0.0, 0.25, 0.5, 0.75, 0.75]


def test_styles_are_distinct_and_colour_blind_safe() -> None:
    styles = [plots.scheme_style(i) for i in range(40)]
    assert len({(s.color, s.marker, str(s.linestyle)) for s in styles}) == 40
    assert set(plots.PALETTE) == {
        "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
    }  # fmt: skip


def test_plot_any_rejects_what_is_not_a_result(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        plots.plot_any(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        plots.plot_any(tmp_path / "missing")
