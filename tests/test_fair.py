"""Fair comparisons (issue 14, item 2): a deadline means the estimate is at the PS by then for
every protocol; the random original-class code for ell > 1; sweeps paired across grid points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
