"""The numerics rows of the benchmark: every scheme with gradients, against a bare NumPy decode
that does decode, with planning timed cold and warm."""

from __future__ import annotations

import json
import math

import numpy as np

from simulator import bench
from simulator.coding.registry import build

from .conftest import run_clirunner


def test_bare_decode_recovers_the_gradient_for_every_exact_scheme():
    exp = bench.numerics_experiment(12, 3, 6)
    exp.data.dim = 40
    protocols = build(exp)
    errors = bench.BareDecode(exp, protocols).run(0, 6)
    assert errors.shape == (6, len(protocols))
    for label, column in zip(exp.labels(), errors.T, strict=True):
        if label == "fastest_k":  # an approximation: its error is a number, not rounding
            assert np.all(column > 1e-6)
        else:
            assert np.all(column < 1e-20), (label, column.max())


def test_numerics_rows_report_planning_and_both_timings():
    result = bench.run_numerics(sizes=((8, 2),), trials=3, repeats=1, quick=True)
    (entry,) = result["sizes"]
    rows = entry["schemes"]
    exp = bench.numerics_experiment(8, 2, 3)
    assert list(rows) == [*exp.labels(), "all"]
    for row in rows.values():
        for key in ("fast_seconds_per_trial", "bare_numpy_seconds_per_trial", "plan_seconds"):
            assert math.isfinite(row[key]) and row[key] > 0
        assert row["fast_vs_bare_numpy"] > 0 and 0 <= row["plan_share_1000_trials"] < 1
        assert row["plan_seconds_warm"] >= 0
    assert entry["original_gc_candidates"] == 16
    assert bench.format_numerics_table(result).row_count == len(rows)


def test_bench_cli_numerics_only(tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "--quick", "--numerics-only", "--sizes", "6:2", "--repeats", "1"]
    result = run_clirunner([*args, "--json", str(out)], tmp_path)
    assert result.exit_code == 0, result.output[-2000:]
    data = json.loads(out.read_text())
    assert "sizes" not in data  # the engine rows were not run
    assert data["numerics"]["sizes"][0]["workers"] == 6
    assert "fast/bare" in result.stdout
