"""Fair comparisons (issue 14, item 2): a deadline means the estimate is at the PS by then for
every protocol; the random original-class code for ell > 1; sweeps paired across grid points."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.axes
import numpy as np
import pandas as pd
import pytest

from simulator import plots
from simulator.coding.polynomial import PolynomialCode, cyclic_holds
from simulator.coding.random_code import RandomCode
from simulator.coding.registry import PROTOCOLS
from simulator.engine.choice import fast_problems
from simulator.sweep import run_sweep
from simulator.testing import _des, _fast, experiment

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"

DEADLINE = 2.5
APPROXIMATE = [
    (name, example)
    for name, cls in PROTOCOLS.items()
    for example in cls.examples
    if example.get("mode") == "approximate"
]
NETWORKS = {
    "latency 0.1": {"latency": 0.1},
    "latency 0.5": {"latency": 0.5},
    "latency 1.5": {"latency": 1.5},
    "bandwidth": {"latency": 0.05, "time_per_float": 0.01},
    "shared link": {"latency": 0.1, "time_per_float": 0.01, "ps_ingress": "shared"},
}


@pytest.mark.parametrize("network", NETWORKS.values(), ids=NETWORKS.keys())
@pytest.mark.parametrize(("name", "example"), APPROXIMATE, ids=[n for n, _ in APPROXIMATE])
def test_approximate_estimates_arrive_by_the_deadline(name, example, network):
    """Every protocol's estimate is at the PS by its deadline, whatever the network costs:
    partial_gc plans early enough for its download and upload (it used to plan at T and
    deliver at T + 2L or later, a head start over original_gc, which delivers at T)."""
    example = {**example, "deadline": DEADLINE}
    exp = experiment(name, example, trials=40, network=network, failures={"prob": 0.08})
    des, _ = _des(exp)
    assert des.decoded.all()
    assert (des.completion_time <= DEADLINE).all(), des.completion_time.max()
    if not fast_problems(exp):
        fast = _fast(exp)
        assert (fast.completion_time <= DEADLINE).all(), fast.completion_time.max()
        np.testing.assert_array_equal(fast.completion_time, des.completion_time)


def uncoded_times(out: Path, grids: list[str]) -> dict:
    """uncoded's completion times at each grid point of a small quickstart sweep."""
    overrides = ["trials=80", "data.dim=16", "schemes.*.ell=1"]
    run_sweep(QUICKSTART, grids, out=out, overrides=overrides)
    summary = pd.read_parquet(out / "summary.parquet")
    keys = [grid.split("=")[0] for grid in grids]
    uncoded = summary[summary.protocol == "uncoded"]
    return {
        key: group.sort_values("trial").completion_time.to_numpy()
        for key, group in uncoded.groupby(keys if len(keys) > 1 else keys[0])
    }


def test_sweeps_pair_schemes_across_grid_points(tmp_path):
    """Common random numbers: uncoded has no ell, so it gets identical completion times at
    ell = 1 and ell = 2 (each point used to draw its own seed: 3.886 vs 4.284 on the issue's
    run). A grid over the seed itself still gives independent replicates."""
    times = uncoded_times(tmp_path / "ell", ["schemes.2.ell=1,2"])
    np.testing.assert_array_equal(times[1], times[2])
    times = uncoded_times(tmp_path / "seed", ["seed=3,4"])
    assert not np.array_equal(times[3], times[4]), "a grid over seed must redraw"


def test_random_code_for_ell_above_one_matches_the_polynomial_code_and_decodes_better():
    """construction: random for ell > 1 (rejected before with "supports ell = 1 only"): the
    same support as the cyclic assignment, the same tolerance s = load - ell and upload size
    d/ell as the polynomial code; exact from any m - s uploads; and under least squares with
    fewer uploads a far smaller residual (the issue: 0.27 vs 0.77 with 16 of 20 at ell = 3),
    so the reported MSE gap over partial_gc is not inflated by a poor baseline."""
    m, load, ell = 20, 4, 3
    code = RandomCode(m, load, ell, np.random.default_rng(5), candidates=4)
    polynomial = PolynomialCode(m, load, ell)
    support = np.abs(code.encoder).sum(axis=2) > 0
    np.testing.assert_array_equal(support, cyclic_holds(m, load))
    assert code.needed == polynomial.needed == m - (load - ell)
    rng = np.random.default_rng(6)
    blocks = rng.standard_normal((m, ell, 7))
    uploads, truth = code.encode(blocks), blocks.sum(axis=0)
    for _ in range(20):
        workers = np.sort(rng.permutation(m)[: code.needed])
        estimate = code.decoder(workers) @ uploads[workers]
        assert np.sum((estimate - truth) ** 2) / np.sum(truth**2) < 1e-20
        np.testing.assert_allclose(code.decode(workers, uploads[workers]), truth, atol=1e-9)
    residuals = {"random": [], "polynomial": []}
    for _ in range(40):
        workers = np.sort(rng.permutation(m)[:16])
        for name, c in (("random", code), ("polynomial", polynomial)):
            residuals[name].append(c.least_squares_decoder(workers)[1] / (m * ell))
    assert np.mean(residuals["random"]) < 0.45 < 0.7 < np.mean(residuals["polynomial"])


def test_original_gc_runs_the_random_code_at_ell_above_one():
    """The config is accepted and runs on both engines with the same rows; uploads are d/ell
    floats; in approximate mode its least-squares estimates beat the polynomial code's."""
    example = {"load": 4, "ell": 3, "construction": "random"}
    exp = experiment("original_gc", example, trials=40)
    des, _ = _des(exp)
    assert des.decoded.any() and (des[des.decoded].rel_error < 1e-20).all()
    assert (des.upload_floats == des.messages * 4).all()  # dim 12 / ell 3
    approximate = {"load": 4, "ell": 3, "mode": "approximate", "deadline": 6.0}
    exp = experiment(
        "original_gc",
        {**approximate, "construction": "random", "label": "random"},
        trials=200,
        others=[{"protocol": "original_gc", **approximate, "construction": "polynomial"}],
    )
    fast = _fast(exp).groupby("scheme").rel_error.mean()
    assert fast["random"] < 0.75 * fast["original_gc"], fast


# Figures (issue 14, item 4: readable, no degenerate plots) -----------------------------------


def test_figure_labels_are_readable_names_not_config_keys():
    """Axes and titles said "schemes.*.ell=1"; legends said "partial_gc#2"."""
    assert plots.readable_key("schemes.*.ell") == "communication split ell"
    assert plots.readable_key("cluster.workers") == "workers m"
    assert plots.readable_key("schemes.2.deadline", short=True) == "T of scheme 2"
    table = pd.DataFrame(
        {
            "scheme": ["partial_gc", "partial_gc#2", "uncoded"],
            "protocol": ["partial_gc", "partial_gc", "uncoded"],
            "load": [4, 4, -1],
            "ell": [1, 2, -1],
            "engine": ["fast"] * 3,
        }
    )
    names = plots.display_names(table, list(table.scheme))
    assert names["partial_gc#2"] == "partial_gc ell=2" and names["uncoded"] == "uncoded"
    assert not any("#" in name for name in names.values())


def test_sweep_figures_draw_schemes_without_the_key_as_references(tmp_path):
    """uncoded and fastest_k have no ell: horizontal reference lines, not lines against ell;
    time bars are percentiles (never below zero); markers of the communication plot are
    labelled; a single deadline gets no MSE-vs-deadline figure."""
    out = tmp_path / "s"
    overrides = ["trials=60", "data.dim=16", "schemes.*.ell=1"]
    run_sweep(QUICKSTART, ["schemes.*.ell=1,2"], out=out, overrides=overrides)
    summary = pd.read_parquet(out / "summary.parquet")
    summary = summary.assign(_point=summary["point"])
    schemes = pd.read_parquet(out / "schemes.parquet")
    order = list(dict.fromkeys(summary.scheme))
    fixed = plots._independent_schemes(summary, schemes, "schemes.*.ell", ["schemes.*.ell"], order)
    assert fixed == {"uncoded", "fastest_k"}
    with matplotlib.rc_context():
        seen = []
        original = matplotlib.axes.Axes.errorbar

        def spy(ax, x, y, yerr=None, **kwargs):
            seen.append((np.asarray(y, float), np.asarray(yerr, float)))
            return original(ax, x, y, yerr=yerr, **kwargs)

        matplotlib.axes.Axes.errorbar = spy
        try:
            paths = plots.plot_sweep(out, tmp_path / "figs")
        finally:
            matplotlib.axes.Axes.errorbar = original
    assert len(seen) == 2  # original_gc and partial_gc only: the others are reference lines
    for means, bars in seen:
        assert (bars >= 0).all() and (means - bars[0] > 0).all()
    stems = {p.stem for p in paths}
    assert "sweep_mse_vs_deadline" not in stems
    approx = pd.DataFrame({"series": "a", "deadline": 3.0, "rel_error": [0.1, 0.2],
                           "decoded": True})  # fmt: skip
    assert plots._error_vs_deadline(approx, tmp_path, "single") == []
